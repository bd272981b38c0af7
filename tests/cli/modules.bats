#!/usr/bin/env bats
# The token's module when nobody names one: Bit4id's libbit4xpki.so or
# libbit4ipki.so (the TokenME's Linux middleware), then p11-kit's
# registrations, then OpenSC's opensc-pkcs11.so, looked for in the
# directories of psrenew.conf's module-search-path; ps-status --modules.
# The "vendor modules" here are symlinks to SoftHSM in a directory of the
# test's own, named by module-search-path (a documented key, not a
# test-only switch); nothing outside the test's directory is touched.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
	demo_token
	LIBS=$BATS_TEST_TMPDIR/libs
	mkdir -p "$LIBS/bit4id" "$LIBS/opensc" "$LIBS/empty"
}

# conf PATH: psrenew.conf with module-search-path = PATH
conf() {
	(umask 077 && printf '[defaults]\nmodule-search-path = %s\n%s' "$1" "${2:-}" \
		>"$BATS_TEST_TMPDIR/psrenew.conf")
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/psrenew.conf
}

status_nomod() { # ps-status with no module named anywhere
	run --separate-stderr env -u PKCS11_MODULE ps-status --token "$TOKEN_URI" "$@"
}

@test "a TokenME's Bit4id module in the search path is used without --module, and says so" {
	ln -s "$SOFTHSM_MODULE" "$LIBS/bit4id/libbit4ipki.so"
	conf "$LIBS/empty:$LIBS/bit4id"
	status_nomod --json -v
	[ "$status" -eq 0 ]
	[ "$(grep -c . <<<"$output")" -eq 4 ]
	[ "$(jfield module <<<"$output" | sort -u)" = "$LIBS/bit4id/libbit4ipki.so" ]
	[[ $stderr == *"module: "*"$LIBS/bit4id/libbit4ipki.so, from the search for the TokenME's Bit4id module"* ]]
	# the module found is the run's: a record naming it is taken; one
	# naming another module found is worked on with the run's module, the
	# other is not loaded (nothing named by data is; a copy: another file,
	# as a real OpenSC module would be)
	cp "$SOFTHSM_MODULE" "$LIBS/opensc/opensc-pkcs11.so"
	conf "$LIBS/opensc:$LIBS/bit4id"
	rec=$(jq -c "select(.id == \"$COMM_ID\")" <<<"$output")
	run --separate-stderr env -u PKCS11_MODULE ps-renew --dry-run --ca helper:/bin/false <<<"$rec"
	[ "$status" -eq 0 ]
	[ "$(jfield state <<<"$output")" = planned ]
	other=$(jq -c --arg m "$LIBS/opensc/opensc-pkcs11.so" '.module = $m' <<<"$rec")
	run --separate-stderr env -u PKCS11_MODULE ps-renew --dry-run --ca helper:/bin/false <<<"$other"
	[ "$status" -eq 0 ]
	[ "$(jfield module <<<"$output")" = "$LIBS/bit4id/libbit4ipki.so" ]
}

@test "libbit4xpki.so comes before libbit4ipki.so and OpenSC's module; --modules lists them all" {
	# copies: three files, as three vendors' modules would be
	cp "$SOFTHSM_MODULE" "$LIBS/opensc/opensc-pkcs11.so"
	cp "$SOFTHSM_MODULE" "$LIBS/bit4id/libbit4ipki.so"
	ln -s "$SOFTHSM_MODULE" "$LIBS/libbit4xpki.so"
	conf "$LIBS/opensc:$LIBS/bit4id:$LIBS"
	status_nomod --json
	[ "$status" -eq 0 ]
	[ "$(jfield module <<<"$output" | sort -u)" = "$LIBS/libbit4xpki.so" ]
	run --separate-stderr env -u PKCS11_MODULE ps-status --modules --json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.name, .used, .allowed] | join(" ")' <<<"$output")" = "libbit4xpki.so true true
libbit4ipki.so false false
opensc-pkcs11.so false false" ]
	[ "$(jfield kind <<<"$output" | sort -u)" = module ]
	[ "$(jq -r 'select(.name == "opensc-pkcs11.so") | .vendor' <<<"$output")" = OpenSC ]
	run --separate-stderr env -u PKCS11_MODULE ps-status --modules --human
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == MODULE*VENDOR*USED*ALLOWED*PATH ]]
	[[ ${lines[1]} == libbit4xpki.so*yes*yes*"$LIBS/libbit4xpki.so" ]]
}

@test "a module named by --module, PKCS11_MODULE or the configuration wins over the search" {
	ln -s /nonexistent/libbit4xpki.so "$LIBS/bit4id/libbit4xpki.so.dangling"
	ln -s "$SOFTHSM_MODULE" "$LIBS/bit4id/libbit4xpki.so"
	conf "$LIBS/bit4id" "module = $SOFTHSM_MODULE
"
	status_nomod --json
	[ "$status" -eq 0 ]
	[ "$(jfield module <<<"$output" | sort -u)" = "$SOFTHSM_MODULE" ]
	conf "$LIBS/bit4id"
	run --separate-stderr env PKCS11_MODULE="$SOFTHSM_MODULE" ps-status --token "$TOKEN_URI" --json
	[ "$(jfield module <<<"$output" | sort -u)" = "$SOFTHSM_MODULE" ]
	run --separate-stderr env -u PKCS11_MODULE ps-status --module "$SOFTHSM_MODULE" --token "$TOKEN_URI" --json
	[ "$(jfield module <<<"$output" | sort -u)" = "$SOFTHSM_MODULE" ]
	# --modules: the Bit4id module found, not the one in use
	run --separate-stderr env PKCS11_MODULE="$SOFTHSM_MODULE" ps-status --modules --json
	[ "$(jq -r '[.name, .used] | join(" ")' <<<"$output")" = "libbit4xpki.so false" ]
}

@test "OpenSC's module alone does not win over p11-kit's registrations (SoftHSM's here)" {
	ls /usr/share/p11-kit/modules/*.module /etc/pkcs11/modules/*.module 2>/dev/null |
		grep -vq 'p11-kit-trust.module$' || skip "no module registered with p11-kit"
	ln -s "$SOFTHSM_MODULE" "$LIBS/opensc/opensc-pkcs11.so"
	conf "$LIBS/opensc"
	status_nomod --json -v
	[[ $stderr == *"p11-kit-proxy"* ]]
	[ "$(jfield module <<<"$output" | sort -u)" != "$LIBS/opensc/opensc-pkcs11.so" ]
	run --separate-stderr env -u PKCS11_MODULE ps-status --modules --json
	[ "$(jq -r '[.name, .used, .allowed] | join(" ")' <<<"$output")" = "opensc-pkcs11.so false false" ]
}

#!/usr/bin/env bats
# Token faults: every binary that writes to a token runs again and again
# through the p11fault shim with one PKCS#11 call failing (call 1, 2, ...
# until a run no longer reaches the failing call; the codes
# CKR_DEVICE_MEMORY, CKR_DEVICE_REMOVED, CKR_SESSION_HANDLE_INVALID,
# CKR_PIN_LOCKED and CKR_GENERAL_ERROR in turn). After each run the token
# holds the old state or the new, complete one (never an orphan key pair or
# a certificate without its key), the state store says the same, and the
# exit status and error record are the documented ones (exit 6 and the
# code of lib/ckr.c). See tests/p11fault/faultloop.bash.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../p11fault/faultloop

setup() {
	psrenew_setup
	: >"$BATS_TEST_TMPDIR/empty.conf"
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/empty.conf
	demo_token
	LS_CA="helper:$LOCAL_SUBMIT -d $BATS_TEST_TMPDIR/ca"
	mkdir -p "$BATS_TEST_TMPDIR/ca"
}

# requests: "STATE KEY_ID" of every request in the state store, sorted.
requests() {
	local f
	for f in "$PSRENEW_STATE_DIR"/requests/*.json; do
		[[ -e $f ]] || continue
		jq -r '"\(.state) \(.key_id)"' "$f"
	done | sort
}

# ps-renew of a batch of $WANT certificates: each one either untouched
# (no key pair, no request) or renewed (a new key pair K and a request for
# K that the CA, local-submit, issued); all renewed: exit 0, else the
# documented error.
check_renew() {
	local new gone k keys=() n
	new=$(new_objects) gone=$(gone_objects)
	[ -z "$gone" ] || { echo "objects gone: $gone"; return 1; }
	for k in $(awk '{ print $2 }' <<<"$new" | sort -u); do
		[ "$(grep -c " $k\$" <<<"$new")" -eq 2 ] &&
			grep -qx "privkey $k" <<<"$new" && grep -qx "pubkey $k" <<<"$new" ||
			{ echo "not a key pair: $new"; return 1; }
		keys+=("issued $k")
	done
	[ "$(requests)" = "$(printf '%s\n' "${keys[@]}" | sed '/^$/d' | sort)" ] ||
		{ echo "key pairs: ${keys[*]}; requests: $(requests)"; return 1; }
	n=${#keys[@]}
	if ((n == WANT)); then
		[ "$status" -eq 0 ] || { echo "all renewed, exit $status"; return 1; }
		[ "$(jq -r 'select(.kind == "request") | .state' <<<"$output" | grep -c issued)" -eq "$WANT" ]
		return
	fi
	((FAULT_N > 0)) || { echo "a clean run renewed $n of $WANT"; return 1; }
	fault_check_error
}

@test "ps-renew: a failing PKCS#11 call leaves each renewal undone or whole" {
	ps-status --module "$SOFTHSM_MODULE" --token "$TOKEN_URI" --expiring 30 \
		--json >"$BATS_TEST_TMPDIR/expiring" || [ $? -eq 3 ]
	WANT=$(grep -c . "$BATS_TEST_TMPDIR/expiring")
	[ "$WANT" -eq 2 ]
	FAULT_STDIN=$BATS_TEST_TMPDIR/expiring fault_loop check_renew \
		ps-renew --pin "file:$PIN_FILE" --ca "$LS_CA" --key-type "${FAULT_KEY_TYPE:-ec:prime256v1}"
}

# ps-fetch --pending with $WANT issued requests: a request is installed
# (state installed) exactly when its certificate is on the token beside
# its key; nothing else changes.
check_fetch() {
	local new gone r k st n=0
	new=$(new_objects) gone=$(gone_objects)
	[ -z "$gone" ] || { echo "objects gone: $gone"; return 1; }
	while read -r st k; do
		if grep -qx "cert $k" <<<"$new"; then
			[ "$st" = installed ] || { echo "cert $k on the token, request $st"; return 1; }
			n=$((n + 1))
		else
			[ "$st" = issued ] || { echo "no cert $k on the token, request $st"; return 1; }
		fi
	done < <(requests)
	[ "$(grep -c . <<<"$new")" -eq "$n" ] || { echo "more than the certificates: $new"; return 1; }
	if ((n == WANT)); then
		[ "$status" -eq 0 ] || { echo "all installed, exit $status"; return 1; }
		return
	fi
	((FAULT_N > 0)) || { echo "a clean run installed $n of $WANT"; return 1; }
	fault_check_error
}

@test "ps-fetch: a failing PKCS#11 call at install leaves each request installed or issued" {
	for id in "$QUAL_ID" "$COMM_ID"; do
		ps-renew --module "$SOFTHSM_MODULE" --pin "file:$PIN_FILE" --token "$TOKEN_URI" \
			--id "$id" --ca "$LS_CA" --key-type ec:prime256v1 >/dev/null
	done
	WANT=2
	[ "$(requests | grep -c '^issued ')" -eq 2 ]
	fault_loop check_fetch ps-fetch --pin "file:$PIN_FILE" --pending --accept-type
}

# ps-token-clean --yes: the expired certificate and its key pair all go,
# with a copy of the certificate in the state store, or nothing goes.
check_clean() {
	local serial
	fault_all_or_nothing || return 1
	[ "$FAULT_OUTCOME" = new ] || return 0
	serial=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$EXPIRED_ID.pem")
	cmp "$PSRENEW_STATE_DIR/removed/$serial.der" \
		<(openssl x509 -in "$BATS_TEST_TMPDIR/certs/$EXPIRED_ID.pem" -outform DER) ||
		{ echo "removed without its copy"; return 1; }
}

@test "ps-token-clean: a failing PKCS#11 call removes a certificate with its key pair or nothing" {
	FAULT_PARTIAL_OK=1 fault_loop check_clean ps-token-clean --pin "file:$PIN_FILE" --token "$TOKEN_URI" --yes
	[ "$FAULT_REF_GONE" = "$(printf 'cert %s\nprivkey %s\npubkey %s' "$EXPIRED_ID" "$EXPIRED_ID" "$EXPIRED_ID")" ]
}

@test "ps-pfx-import: a failing PKCS#11 call imports the key with its certificate or nothing" {
	local d=$BATS_TEST_TMPDIR/pfx
	mkdir -p "$d"
	_fx_genpkey rsa "$d/k.pem"
	openssl pkey -in "$d/k.pem" -pubout -out "$d/k.pub"
	"$MKPKI" issue "$(pki_dir)" qualified "$d/k.pub" "$d/c.pem" -1d +365d >/dev/null 2>&1
	PW=Zq8-pfx openssl pkcs12 -export -inkey "$d/k.pem" -in "$d/c.pem" -passout env:PW -out "$d/x.p12"
	export PW=Zq8-pfx
	fault_loop fault_all_or_nothing ps-pfx-import --pin "file:$PIN_FILE" --token "$TOKEN_URI" \
		--pass env:PW "$d/x.p12"
	id=$(cert_key_id "$d/c.pem")
	[ "$FAULT_REF_NEW" = "$(printf 'cert %s\nprivkey %s\npubkey %s' "$id" "$id" "$id")" ]
}

@test "ps-fetch: a token that refuses the certificate keeps it issued, never asks the CA again" {
	ps-renew --module "$SOFTHSM_MODULE" --pin "file:$PIN_FILE" --token "$TOKEN_URI" \
		--id "$QUAL_ID" --ca "$LS_CA" --key-type ec:prime256v1 >/dev/null
	key=$(requests | awk '{ print $2 }')
	[ "$(requests)" = "issued $key" ]
	for code in CKR_TEMPLATE_INCONSISTENT CKR_OPERATION_ACTIVE; do
		run --separate-stderr env P11FAULT_MODULE="$SOFTHSM_MODULE" \
			P11FAULT_FAIL="C_CreateObject:1:$code" ps-fetch --module "$P11FAULT" \
			--pin "file:$PIN_FILE" --pending --accept-type
		[ "$status" -eq 1 ]
		[ "$(requests)" = "issued $key" ]
		[ "$(jq -r .cert "$PSRENEW_STATE_DIR"/requests/*.json)" != null ]
	done
	run --separate-stderr ps-fetch --module "$SOFTHSM_MODULE" --pin "file:$PIN_FILE" --pending --accept-type
	[ "$status" -eq 0 ]
	[ "$(requests)" = "installed $key" ]
}

@test "a token that fails while asked about a mechanism is not the guide's error 622" {
	run --separate-stderr env P11FAULT_MODULE="$SOFTHSM_MODULE" \
		P11FAULT_FAIL=C_GetMechanismInfo:1:CKR_DEVICE_REMOVED ps-renew --module "$P11FAULT" \
		--pin "file:$PIN_FILE" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LS_CA"
	[ "$status" -eq 6 ]
	[ "$(jq -r 'select(.kind == "error") | .code' <<<"$output")" = token-absent ]
	[[ $stderr != *622* ]]
}

@test "ps-token-clean stopped between a certificate and its keys: a re-run removes the keys" {
	OLD_OBJS=$(p11_objects)
	run --separate-stderr env P11FAULT_MODULE="$SOFTHSM_MODULE" \
		P11FAULT_FAIL=C_DestroyObject:2:CKR_DEVICE_REMOVED ps-token-clean --module "$P11FAULT" \
		--pin "file:$PIN_FILE" --token "$TOKEN_URI" --yes
	[ "$status" -eq 6 ]
	[ "$(gone_objects | grep -c "^cert $EXPIRED_ID")" -eq 1 ]
	grep -q "^privkey $EXPIRED_ID" <<<"$(p11_objects)"
	# a plain re-run finishes: the key pair whose certificate was removed
	# (a copy is in the state store) goes too; other orphans would stay
	run --separate-stderr ps-token-clean --module "$SOFTHSM_MODULE" \
		--pin "file:$PIN_FILE" --token "$TOKEN_URI" --yes
	[ "$status" -eq 0 ]
	[ -z "$(p11_objects | grep " $EXPIRED_ID\$")" ]
	[ "$(gone_objects | wc -l)" -eq 3 ]
}

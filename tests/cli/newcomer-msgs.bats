#!/usr/bin/env bats
# Messages a newcomer meets first: each says what is wrong and what to do.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
}

@test "ps-pfx-import without --pass and without a terminal asks for the PFX password, not the PIN" {
	softhsm_token
	local d=$BATS_TEST_TMPDIR
	_fx_genpkey rsa "$d/k.pem"
	openssl req -new -x509 -key "$d/k.pem" -subj /CN=x -days 2 -out "$d/c.pem"
	PW=secret openssl pkcs12 -export -inkey "$d/k.pem" -in "$d/c.pem" \
		-passout env:PW -out "$d/x.p12"
	run --separate-stderr setsid -w ps-pfx-import --module "$PKCS11_MODULE" \
		--token "$TOKEN_URI" --pin "file:$PIN_FILE" "$d/x.p12" </dev/null
	[ "$status" -eq 2 ]
	[[ $stderr == *"a secret is needed (Password for $d/x.p12)"* ]]
	[[ $stderr == *"--pass env:VAR"* ]]
	[[ $stderr != *"PIN is needed"* ]]
	[[ $stderr != *"--pin"* ]]
	[ "$(token_objects privkey)" -eq 0 ]
}

@test "ps-jip-setserial run from the build tree finds its default profile" {
	printf 'pw\n' >"$BATS_TEST_TMPDIR/pw"
	chmod 600 "$BATS_TEST_TMPDIR/pw"
	run --separate-stderr "$PSRENEW_BUILD/bin/ps-jip-setserial" --jip-url "https://127.0.0.1:1" \
		--user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --serial 0A0B --type commercial --ca PostSignum
	[[ $stderr != *jip-czechpoint.json* ]]
	[[ $stderr != *jip-profile* ]]
	[ "$status" -eq 4 ]
}

@test "an unreadable JIP profile is exit 2 and the hint names the file looked for" {
	printf 'pw\n' >"$BATS_TEST_TMPDIR/pw"
	chmod 600 "$BATS_TEST_TMPDIR/pw"
	printf '[jip]\nprofile = %s\n' "$BATS_TEST_TMPDIR/nope.json" >"$BATS_TEST_TMPDIR/conf"
	run --separate-stderr ps-jip-setserial --config "$BATS_TEST_TMPDIR/conf" --jip-url "https://127.0.0.1:1" \
		--user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --serial 0A0B --type commercial --ca PostSignum
	[ "$status" -eq 2 ]
	[[ $stderr == *"looked for in $BATS_TEST_TMPDIR/nope.json"* ]]
	[[ $stderr != *"the portal changed"* ]]
}

# conf TEXT: a psrenew.conf of ours, mode 0600.
conf() {
	printf '%s\n' "$@" >"$BATS_TEST_TMPDIR/psrenew.conf"
	chmod 600 "$BATS_TEST_TMPDIR/psrenew.conf"
	CONF=$BATS_TEST_TMPDIR/psrenew.conf
}

@test "unknown sections and keys of the configuration are warned about with file and line" {
	conf '# mine' '[defaults]' 'modul = /x.so' 'state-dir = /tmp/s' '' '[Defaults]' 'token = pkcs11:token=x' \
		'[ca.mine]' 'channel = est://h/' 'tsl = required' '[jip-ca]' 'Foo* = FOO'
	run --separate-stderr ps-status --config "$CONF" --module /nonexistent.so
	[[ $stderr == *"$CONF, line 3: unknown key 'modul' in [defaults]"* ]]
	[[ $stderr == *"$CONF, line 7: unknown key 'token' in [Defaults]"* ]]
	[[ $stderr == *"$CONF, line 10: unknown key 'tsl' in [ca.mine]"* ]]
	[[ $stderr != *"state-dir"* && $stderr != *"channel"* && $stderr != *"Foo"* ]]
}

@test "a bad secret source in the configuration names the file, line and key" {
	conf '[defaults]' '' 'pin = 1234'
	run --separate-stderr ps-status --config "$CONF"
	[ "$status" -eq 2 ]
	[[ $stderr == *"$CONF, line 3, [defaults] pin: "* ]]
	[[ $stderr != *1234* ]]
	conf '[token.me]' 'uri = pkcs11:token=x' 'pin = env:PIN' 'pin = pass:1234'
	run --separate-stderr ps-status --config "$CONF"
	[ "$status" -eq 2 ]
	[[ $stderr == *"$CONF, line 4, [token.me] pin: "* ]]
	[[ $stderr != *1234* ]]
}

@test "a literal smtp-pass without smtp-user is refused, naming the line" {
	conf '[ca.mail]' 'channel = mail:-' 'smtp-pass = hunter2'
	run --separate-stderr ps-status --config "$CONF"
	[ "$status" -eq 2 ]
	[ "$(jfield code <<<"$output")" = bad-secret-source ] || [[ $stderr == *bad-secret-source* ]]
	[[ $stderr == *"$CONF, line 3, [ca.mail] smtp-pass: "* ]]
	[[ $stderr != *hunter2* ]]
}

@test "an empty state-dir in the configuration names the file and line" {
	conf '[defaults]' 'state-dir ='
	run --separate-stderr ps-status --config "$CONF"
	[ "$status" -eq 2 ]
	[[ $stderr == *"$CONF, line 2, [defaults] state-dir: empty"* ]]
}

@test "output that cannot be written is said, not a silent exit 1" {
	softhsm_token
	token_cert qualified -1d +300d >/dev/null
	run bash -c 'ps-status --human --module "$1" --token "$2" >/dev/full' _ \
		"$PKCS11_MODULE" "$TOKEN_URI"
	[ "$status" -eq 1 ]
	[[ $output == *"cannot write the output to stdout: No space left on device"* ]]
}

@test "ps-fetch --pending --dry-run into a full disk says the output could not be written" {
	demo_token
	mkdir -p "$BATS_TEST_TMPDIR/sh"
	echo pending >"$BATS_TEST_TMPDIR/sh/answers"
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$QUAL_ID" --ca "helper:$SCRIPTED_HELPER $BATS_TEST_TMPDIR/sh"
	[ "$status" -eq 3 ]
	run bash -c 'ps-fetch --module "$1" --pin "file:$2" --pending --dry-run >/dev/full' _ \
		"$PKCS11_MODULE" "$PIN_FILE"
	[ "$status" -ne 0 ]
	[[ $output == *"cannot write the output to stdout: No space left on device"* ]]
}

# error_codes: every code string the sources pass to ps_err_set (literals,
# also both sides of a ?:) or assign to a variable named code, and
# ps_err_nomem's, one a line.
error_codes() {
	perl -0777 -ne '
		while (/ps_err_set\s*\(\s*[^,]+,\s*[^,]+,\s*([^,]*),/g) {
			my $a = $1; print "$1\n" while $a =~ /"([a-z0-9-]+)"/g }
		while (/\bcode\s*=\s*([^;]*);/g) {
			my $a = $1; print "$1\n" while $a =~ /"([a-z0-9-]+)"/g }' \
		"$FIXTURE_ROOT"/lib/*.c "$FIXTURE_ROOT"/cmd/*.c "$FIXTURE_ROOT"/cmd/common/*.c
	# the CKR_* table of lib/ckr.c (CKR_OK is no error)
	perl -ne 'print "$1\n" if /^\s*E\(CKR_\w+,\s*[1-9],\s*"([a-z0-9-]+)"/' \
		"$FIXTURE_ROOT/lib/ckr.c"
	echo no-memory
}

@test "every error code the tools can emit is in psrenew(7)" {
	local page codes c missing=
	page=$(sed 's/\\-/-/g' "$FIXTURE_ROOT/man/psrenew.7")
	codes=$(error_codes | sort -u)
	[ "$(wc -l <<<"$codes")" -ge 100 ]
	grep -qx pin-incorrect <<<"$codes" # a ?: side
	grep -qx secret-unsafe <<<"$codes" # a code variable
	grep -qx token-session-lost <<<"$codes" # the CKR_* table
	for c in $codes; do
		grep -qE -- "(^|[^a-z0-9-])$c([^a-z0-9-]|\$)" <<<"$page" || missing+=" $c"
	done
	[ -z "$missing" ] || { echo "not in psrenew(7):$missing"; false; }
}

@test "--help lists the short options -q -v -h -V" {
	for p in ps-status ps-renew ps-fetch ps-token-clean ps-jip-setserial ps-pfx-import; do
		run --separate-stderr "$p" --help
		[ "$status" -eq 0 ]
		for o in "-q, --quiet" "-v, --verbose" "-h, --help" "-V, --version"; do
			[[ $output == *"  $o "* ]] || { echo "$p: no '$o'"; false; }
		done
	done
	run --separate-stderr ps-renew -h
	[[ $output == "Usage: ps-renew --ca CHANNEL [[--token URI] (--id HEX"* ]]
}

@test "a missing option argument is told apart from an unknown option" {
	run --separate-stderr ps-status --module
	[ "$status" -eq 2 ]
	[[ $stderr == *"--module needs an argument: --module PATH"* ]]
	run --separate-stderr ps-status --modulx x
	[ "$status" -eq 2 ]
	[[ $stderr == *"unknown option: --modulx"* && $stderr != *argument* ]]
	run --separate-stderr ps-status -x
	[[ $stderr == *"unknown option: -x"* ]]
}

@test "bad secret sources are told plainly: a bare PIN, env: without a name" {
	run --separate-stderr ps-status --pin 1234
	[ "$status" -eq 2 ]
	[[ $stderr == *"a PIN or password is never given as such"*"use prompt, env:, file: or fd:"* ]]
	[[ $stderr != *1234* ]]
	softhsm_token
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --pin env:
	[ "$status" -eq 2 ]
	[[ $stderr == *"'env:' names no variable: give env:VAR"* ]]
}

@test "a NUL byte in the input is called binary data" {
	run --separate-stderr bash -c 'printf "{\"kind\":\"cert\"}\0\n" |
		ps-renew --ca "helper:/bin/false" --state-dir "$1"' _ "$BATS_TEST_TMPDIR/st"
	[ "$status" -ne 0 ]
	[[ $stderr == *"input line 1 has a NUL byte: binary data, not a record"* ]]
}

@test "a key pair that could not be removed after a failed id is said to be left for the next run" {
	softhsm_token
	local id
	id=$(token_cert qualified -300d +10d)
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" \
		P11FAULT_FAIL=C_SetAttributeValue:*:CKR_DEVICE_ERROR,C_DestroyObject:*:CKR_DEVICE_ERROR \
		ps-renew --module "$P11FAULT" --token "$TOKEN_URI" --pin "file:$PIN_FILE" \
		--id "$id" --ca "helper:/bin/false"
	[ "$status" -ne 0 ]
	[[ $stderr == *"could not be removed now: the next ps-renew removes it"* ]]
	[[ $stderr != *"the key pair was removed"* ]]
	[ "$(token_objects privkey)" -eq 2 ]
	# and so it does
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --token "$TOKEN_URI" \
		--pin "file:$PIN_FILE" --id "$id" --ca "helper:/bin/false"
	[[ $stderr == *"removed 2 key object(s) that an interrupted run had generated"* ]]
}

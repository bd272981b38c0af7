#!/usr/bin/env bats
# ps-jip-setserial against the JIP test portal (tests/jip, behind nginx),
# which behaves as the guide shows.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

setup_file() {
	export BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR
	PKI=$(pki_dir)
	start_jip "$BATS_FILE_TMPDIR/portal" "$PKI" || return 1
	export PKI
}

teardown_file() {
	stop_servers
}

setup() {
	psrenew_setup
	demo_token
	PORTAL=$BATS_FILE_TMPDIR/portal
	PROFILE=$FIXTURE_ROOT/tests/jip/profile-test.json
	cp "$FIXTURE_ROOT/tests/jip/portal-default.json" "$PORTAL/portal.json"
	: > "$PORTAL/log"
	(umask 077 && printf 'Heslo-123' > "$BATS_TEST_TMPDIR/pw")
	(umask 077 && printf 'Admin-456' > "$BATS_TEST_TMPDIR/apw")
	COMM_SERIAL=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem")
	accounts '[]'
}

# accounts JNOVAK_CERTS_JSON [MORE_USERS_JSON]: writes accounts.json
accounts() {
	cat > "$PORTAL/accounts.json" <<EOF_ACC
{"session_timeout_seconds": ${TIMEOUT:-1200}, "users": [
 {"name": "jnovak", "password": "Heslo-123", "otp": "246810", "role": "user", "office": "MV",
  "certificates": $1},
 {"name": "admin", "password": "Admin-456", "role": "admin", "office": "MV", "certificates": []},
 {"name": "cizi", "password": "x", "role": "user", "office": "MF", "certificates": []}
 ${2:-}
]}
EOF_ACC
}

jip() {
	run --separate-stderr ps-jip-setserial --profile "$PROFILE" --jip-url "$JIP_URL" \
		--ca-bundle "$JIP_TLS_CA" "$@"
}

registered() { # registered USER: the serials JIP has for USER
	jq -r --arg u "$1" '.users[] | select(.name == $u) | .certificates[] | "\(.type) \(.ca) \(.serial)"' \
		"$PORTAL/accounts.json"
}

@test "the whole pipeline: ps-renew | ps-fetch | ps-jip-setserial registers the new certificate" {
	mkdir -p "$BATS_TEST_TMPDIR/ca"
	ln -sfn "$PKI" "$BATS_TEST_TMPDIR/ca/pki"
	echo pki > "$BATS_TEST_TMPDIR/ca/answers"
	run bash -c "ps-renew --module '$PKCS11_MODULE' --pin 'file:$PIN_FILE' --token '$TOKEN_URI' \
		--id '$QUAL_ID' --ca 'helper:$SCRIPTED_HELPER $BATS_TEST_TMPDIR/ca' 2>/dev/null |
		ps-fetch --pin 'file:$PIN_FILE' 2>/dev/null |
		ps-jip-setserial --profile '$PROFILE' --jip-url '$JIP_URL' --ca-bundle '$JIP_TLS_CA' \
			--user jnovak --password 'file:$BATS_TEST_TMPDIR/pw' 2>/dev/null"
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = jip ]
	[ "$(jfield result <<<"$output")" = set ]
	[ "$(jfield type <<<"$output")" = qualified ]
	[ "$(jfield ca <<<"$output")" = PostSignum ]
	serial=$(jfield serial_hex <<<"$output")
	[ "$(registered jnovak)" = "kvalifikovaný PostSignum $serial" ]
	# the request id travels along, and the confirmation is kept for ps-token-clean
	[ "$(jfield request_id <<<"$output")" != null ]
	[ "$(jq -r .result "$PSRENEW_STATE_DIR/jip/$serial.json")" = set ]
}

@test "ps-fetch --pending | ps-jip-setserial --login cert: the old commercial certificate logs in" {
	accounts "[{\"type\": \"komerční\", \"ca\": \"PostSignum\", \"serial\": \"$COMM_SERIAL\"}]"
	mkdir -p "$BATS_TEST_TMPDIR/ca"
	ln -sfn "$PKI" "$BATS_TEST_TMPDIR/ca/pki"
	echo pki > "$BATS_TEST_TMPDIR/ca/answers"
	ps-status --module "$PKCS11_MODULE" --expiring 30 --json 2>/dev/null |
		ps-renew --pin "file:$PIN_FILE" --ca "helper:$SCRIPTED_HELPER $BATS_TEST_TMPDIR/ca" \
		>/dev/null 2>&1 || true
	run bash -c "ps-fetch --module '$PKCS11_MODULE' --pin 'file:$PIN_FILE' --pending 2>/dev/null |
		ps-jip-setserial --login cert --module '$PKCS11_MODULE' --pin 'file:$PIN_FILE' \
			--token '$TOKEN_URI' --profile '$PROFILE' --jip-url '$JIP_URL' \
			--ca-bundle '$JIP_TLS_CA' --user jnovak --password 'file:$BATS_TEST_TMPDIR/pw' 2>&1"
	[ "$status" -eq 0 ]
	[ "$(grep -c '"kind":"jip"' <<<"$output")" -eq 2 ]
	grep -q 'login-ok-cert' "$PORTAL/log"
	[ "$(registered jnovak | grep -c kvalifikovaný)" -eq 1 ]
	[ "$(registered jnovak | grep -c komerční)" -eq 2 ]
}

@test "a serial already registered is success, never a duplicate" {
	accounts "[{\"type\": \"komerční\", \"ca\": \"PostSignum\", \"serial\": \"$COMM_SERIAL\"}]"
	jip --user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output")" = already-set ]
	[ "$(registered jnovak | wc -l)" -eq 1 ]
	! grep -q 'POST /spravadat/muj-profil/certifikaty' "$PORTAL/log"
}

@test "type, CA and serial come from the certificate; colons and case in --serial do not matter" {
	jip --user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 0 ]
	[ "$(registered jnovak)" = "komerční PostSignum $COMM_SERIAL" ]
	jip --user jnovak --password "file:$BATS_TEST_TMPDIR/pw" \
		--serial "$(sed 's/../&:/g; s/:$//' <<<"$COMM_SERIAL" | tr A-F a-f)" --type commercial --ca PostSignum
	[ "$(jfield result <<<"$output")" = already-set ]
}

@test "a wrong password is exit 5 with JIP's message; three lock the account" {
	(umask 077 && printf 'spatne' > "$BATS_TEST_TMPDIR/bad")
	for i in 1 2; do
		jip --user jnovak --password "file:$BATS_TEST_TMPDIR/bad" --serial 0A0B --type commercial --ca PostSignum
		[ "$status" -eq 5 ]
		[ "$(jfield code <<<"$output")" = jip-login ]
	done
	jip --user jnovak --password "file:$BATS_TEST_TMPDIR/bad" --serial 0A0B --type commercial --ca PostSignum
	[ "$status" -eq 5 ]
	jip --user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --serial 0A0B --type commercial --ca PostSignum
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output")" = jip-locked ]
	[[ "$stderr" == *"local administrator"* ]]
	[ -z "$(registered jnovak)" ]
}

@test "OTP login with a code from a secret source" {
	jip --login otp --user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --otp env:CODE \
		--serial 0A0B --type commercial --ca PostSignum
	[ "$status" -eq 2 ] # CODE is not set
	CODE=246810 jip --login otp --user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --otp env:CODE \
		--serial 0A0B --type commercial --ca PostSignum
	[ "$status" -eq 0 ]
	grep -q 'login-ok-otp' "$PORTAL/log"
}

@test "certificate login with the registered commercial certificate's key on the token" {
	accounts "[{\"type\": \"komerční\", \"ca\": \"PostSignum\", \"serial\": \"$COMM_SERIAL\"}]"
	jip --login cert --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --token "$TOKEN_URI" \
		--user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --serial 0A0B --type qualified --ca PostSignum
	[ "$status" -eq 0 ]
	grep -q 'login-ok-cert' "$PORTAL/log"
	[ "$(registered jnovak | wc -l)" -eq 2 ]
}

@test "certificate login with a certificate JIP does not know is refused" {
	jip --login cert --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --token "$TOKEN_URI" \
		--user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --serial 0A0B --type qualified --ca PostSignum
	[ "$status" -eq 5 ]
	[ -z "$(registered jnovak)" ]
}

@test "--verify-login proves the new commercial certificate logs in" {
	jip --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --token "$TOKEN_URI" --id "$COMM_ID" \
		--user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --verify-login
	[ "$status" -eq 0 ]
	[ "$(jfield login_verified <<<"$output")" = true ]
	grep -q 'login-ok-cert' "$PORTAL/log"
}

@test "the local administrator registers serials for 50 users with one login" {
	more=""
	for i in $(seq -w 1 50); do
		more+=", {\"name\": \"u$i\", \"password\": \"x\", \"role\": \"user\", \"office\": \"MV\", \"certificates\": []}"
	done
	accounts '[]' "$more"
	for i in $(seq -w 1 50); do
		printf '{"kind":"cert","user":"u%s","serial_hex":"%s","type":"commercial","jip_ca":"PostSignum"}\n' \
			"$i" "$(printf '%032X' "$((16#$i + 4096))")"
	done > "$BATS_TEST_TMPDIR/batch.jsonl"
	run --separate-stderr ps-jip-setserial --profile "$PROFILE" --jip-url "$JIP_URL" \
		--ca-bundle "$JIP_TLS_CA" --user admin --password "file:$BATS_TEST_TMPDIR/apw" \
		< "$BATS_TEST_TMPDIR/batch.jsonl"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output" | grep -c '^set$')" -eq 50 ]
	[ "$(grep -c 'login-ok' "$PORTAL/log")" -eq 1 ]
	# stored as JIP keeps serials: no leading zero bytes
	[ "$(registered u37)" = "komerční PostSignum $(printf '%X' $((16#37 + 4096)))" ]
}

@test "an administrator cannot touch another office; every certificate gets its own record" {
	printf '{"kind":"cert","user":"cizi","serial_hex":"0A","type":"commercial","jip_ca":"PostSignum"}\n{"kind":"cert","user":"jnovak","serial_hex":"0B","type":"commercial","jip_ca":"PostSignum"}\n' \
		> "$BATS_TEST_TMPDIR/two.jsonl"
	run --separate-stderr ps-jip-setserial --profile "$PROFILE" --jip-url "$JIP_URL" \
		--ca-bundle "$JIP_TLS_CA" --user admin --password "file:$BATS_TEST_TMPDIR/apw" \
		< "$BATS_TEST_TMPDIR/two.jsonl"
	[ "$status" -eq 5 ]
	[ "$(grep -c . <<<"$output")" -eq 2 ]
	[ "$(head -1 <<<"$output" | jfield kind)" = error ]
	[ "$(tail -1 <<<"$output" | jfield result)" = set ]
	[ -z "$(registered cizi)" ]
}

@test "a session that expires mid-batch is renewed once; one that keeps expiring fails" {
	accounts '[]' ', {"name": "u1", "password": "x", "role": "user", "office": "MV", "certificates": []}'
	jq '.expire_after_requests = 12' "$PORTAL/accounts.json" > "$PORTAL/a.json" && mv "$PORTAL/a.json" "$PORTAL/accounts.json"
	printf '{"kind":"cert","user":"u1","serial_hex":"0A","type":"commercial","jip_ca":"PostSignum"}\n{"kind":"cert","user":"jnovak","serial_hex":"0B","type":"commercial","jip_ca":"PostSignum"}\n' \
		> "$BATS_TEST_TMPDIR/two.jsonl"
	run --separate-stderr ps-jip-setserial --profile "$PROFILE" --jip-url "$JIP_URL" \
		--ca-bundle "$JIP_TLS_CA" --user admin --password "file:$BATS_TEST_TMPDIR/apw" \
		< "$BATS_TEST_TMPDIR/two.jsonl"
	[ "$status" -eq 0 ]
	[ "$(grep -c 'login-ok' "$PORTAL/log")" -ge 2 ]
	[ "$(registered u1)" = "komerční PostSignum 0A" ]
	[ "$(registered jnovak)" = "komerční PostSignum 0B" ]
	# a session that dies at once after every login: log in again once, then exit 4
	jq '.expire_after_requests = 3' "$PORTAL/accounts.json" > "$PORTAL/a.json" && mv "$PORTAL/a.json" "$PORTAL/accounts.json"
	jip --user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --serial 0C --type commercial --ca PostSignum
	[ "$status" -eq 4 ]
	[ "$(jfield code <<<"$output")" = jip-session ]
}

@test "the portal down is exit 4; nothing registered" {
	jq '.down = true' "$PORTAL/portal.json" > "$PORTAL/p.json" && mv "$PORTAL/p.json" "$PORTAL/portal.json"
	jip --user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --serial 0A0B --type commercial --ca PostSignum
	[ "$status" -eq 4 ]
	[ "$(jfield code <<<"$output")" = jip-unavailable ]
	run --separate-stderr ps-jip-setserial --profile "$PROFILE" --jip-url "https://127.0.0.1:1" \
		--user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --serial 0A0B --type commercial --ca PostSignum
	[ "$status" -eq 4 ]
}

@test "a profile that no longer matches the portal is exit 1 naming the field and the profile" {
	jq '.edit.form = "//form[@id=\"gone\"]"' "$PROFILE" > "$BATS_TEST_TMPDIR/bad.json"
	run --separate-stderr ps-jip-setserial --profile "$BATS_TEST_TMPDIR/bad.json" --jip-url "$JIP_URL" \
		--ca-bundle "$JIP_TLS_CA" --user jnovak --password "file:$BATS_TEST_TMPDIR/pw" \
		--serial 0A0B --type commercial --ca PostSignum
	[ "$status" -eq 1 ]
	[[ "$stderr" == *'//form[@id="gone"]'* && "$stderr" == *bad.json* ]]
	jq 'del(.list.rows)' "$PROFILE" > "$BATS_TEST_TMPDIR/bad2.json"
	run --separate-stderr ps-jip-setserial --profile "$BATS_TEST_TMPDIR/bad2.json" --jip-url "$JIP_URL" \
		--ca-bundle "$JIP_TLS_CA" --user jnovak --password "file:$BATS_TEST_TMPDIR/pw" \
		--serial 0A0B --type commercial --ca PostSignum
	[ "$status" -eq 2 ]
	[[ "$stderr" == *'"list.rows"'* ]]
}

@test "renamed fields and paths need only a profile edit" {
	cp "$FIXTURE_ROOT/tests/jip/portal-renamed.json" "$PORTAL/portal.json"
	jip --user jnovak --password "file:$BATS_TEST_TMPDIR/pw" --serial 0A0B --type commercial --ca PostSignum
	[ "$status" -ne 0 ] # the default profile no longer fits
	run --separate-stderr ps-jip-setserial --profile "$FIXTURE_ROOT/tests/jip/profile-renamed.json" \
		--jip-url "$JIP_URL" --ca-bundle "$JIP_TLS_CA" --user jnovak \
		--password "file:$BATS_TEST_TMPDIR/pw" --serial 0A0B --type commercial --ca PostSignum
	[ "$status" -eq 0 ]
	[ "$(registered jnovak)" = "komerční PostSignum 0A0B" ]
}

@test "NIA cannot be scripted: exit 2 with what to do" {
	jip --login nia --serial 0A0B --type commercial --ca PostSignum
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"NIA"* && "$stderr" == *"lokálního administrátora"* ]]
}

@test "the password never shows in argv, stderr, records or the state store" {
	(umask 077 && printf 'Velmi-Tajne-Heslo-9' > "$BATS_TEST_TMPDIR/pw2")
	accounts '[]' ', {"name": "tajny", "password": "Velmi-Tajne-Heslo-9", "role": "user", "office": "MV", "certificates": []}'
	jq '.slow_seconds = 0.5' "$PORTAL/portal.json" > "$PORTAL/p.json" && mv "$PORTAL/p.json" "$PORTAL/portal.json"
	ps-jip-setserial --profile "$PROFILE" --jip-url "$JIP_URL" --ca-bundle "$JIP_TLS_CA" \
		--user tajny --password "file:$BATS_TEST_TMPDIR/pw2" --serial 0A0B --type commercial \
		--ca PostSignum > "$BATS_TEST_TMPDIR/out" 2> "$BATS_TEST_TMPDIR/err" &
	pid=$!
	sleep 0.3
	cmdline=$(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null || true)
	wait $pid
	[[ "$cmdline" != *Velmi-Tajne* ]]
	! grep -q Velmi-Tajne "$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/err"
	! grep -rq Velmi-Tajne "$PSRENEW_STATE_DIR"
	[ "$(jfield result < "$BATS_TEST_TMPDIR/out")" = set ]
}

#!/usr/bin/env bats
# ps-jip-setserial --verify-login: the proof logs in with the NEW
# certificate's own key (nginx's tls.log of the JIP test portal shows which
# client certificate each TLS login presented), and a verification that
# failed confirms nothing to ps-token-clean.

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
	: > "$PORTAL/tls.log"
	(umask 077 && printf 'Heslo-123' > "$BATS_TEST_TMPDIR/pw")
	COMM_SERIAL=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem")
	# JIP knows the old commercial certificate (the one logins use today)
	cat > "$PORTAL/accounts.json" <<EOF_ACC
{"users": [{"name": "jnovak", "password": "Heslo-123", "role": "user", "office": "MV",
  "certificates": [{"type": "komerční", "ca": "PostSignum", "serial": "$COMM_SERIAL"}]}]}
EOF_ACC
}

# renewed: the renewed commercial certificate, its key on the token under a
# CKA_ID that is not the SHA-1 of its public key; NEW_ID, NEW_SERIAL, NEW_PEM.
renewed() {
	NEW_ID=$(token_cert commercial -1d +365d commercial-new c0ffee01)
	NEW_PEM=$BATS_TEST_TMPDIR/certs/$NEW_ID.pem
	NEW_SERIAL=$(cert_serial_hex "$NEW_PEM")
}

jip() {
	run --separate-stderr ps-jip-setserial --profile "$PROFILE" --jip-url "$JIP_URL" \
		--ca-bundle "$JIP_TLS_CA" --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --user jnovak --password "file:$BATS_TEST_TMPDIR/pw" "$@"
}

# tls_logins: the serials (no leading zeros) of the client certificates the
# TLS connections of the login POSTs presented, one a line (none: nothing).
tls_logins() {
	awk '$2 == "POST" && $3 ~ /prihlaseni/ && $4 != "client_serial=-" {
		sub(/^client_serial=/, "", $4); print $4 }' \
		"$PORTAL/tls.log" | sed 's/^0*//'
}

nozero() { sed 's/^0*//' <<<"$1"; }

@test "--verify-login with --cert logs in with the new certificate's own key" {
	renewed
	jip --cert "$NEW_PEM" --verify-login
	[ "$status" -eq 0 ]
	[ "$(jfield login_verified <<<"$output")" = true ]
	# one password login (the registration), one with the NEW certificate
	[ "$(tls_logins | grep -c .)" -eq 1 ]
	[ "$(tls_logins)" = "$(nozero "$NEW_SERIAL")" ]
	grep -q 'login-ok-certifikat' "$PORTAL/log"
}

@test "--verify-login with --serial finds the certificate on the token, then its key" {
	renewed
	jip --serial "$NEW_SERIAL" --type commercial --ca PostSignum --verify-login
	[ "$status" -eq 0 ]
	[ "$(jfield login_verified <<<"$output")" = true ]
	[ "$(tls_logins)" = "$(nozero "$NEW_SERIAL")" ]
	! grep -q "client_serial=0*$(nozero "$COMM_SERIAL") " "$PORTAL/tls.log"
}

@test "--verify-login with a certificate whose key is on no token: login_verified null, exit 1" {
	id=$(token_cert_only commercial -1d +365d commercial-keyless)
	pem=$BATS_TEST_TMPDIR/certs/$id.pem
	serial=$(cert_serial_hex "$pem")
	jip --cert "$pem" --verify-login
	[ "$status" -eq 1 ]
	rec=$(jq -c 'select(.kind == "jip")' <<<"$output")
	[ "$(jq -r '.login_verified' <<<"$rec")" = null ]
	[ "$(jq -r 'has("login_verified")' <<<"$rec")" = true ]
	[[ "$(jfield login_verify_reason <<<"$rec")" == *"no token"* ]]
	[ "$(jq -r 'select(.kind == "error") | .code' <<<"$output")" = verify-no-key ]
	# no certificate login was tried with the old certificate instead
	[ -z "$(tls_logins | grep .)" ]
	[ "$(jq -r '.login_verified' "$PSRENEW_STATE_DIR/jip/$serial.json")" = null ]
	# --serial of a certificate on no token: null as well
	jip --serial 7A7B7C --type commercial --ca PostSignum --verify-login
	[ "$status" -eq 1 ]
	[ "$(jq -r 'select(.kind == "jip") | .login_verified' <<<"$output")" = null ]
	[ "$(jq -r 'select(.kind == "error") | .code' <<<"$output")" = verify-no-cert ]
}

@test "a refused verification: ps-jip-setserial --verify-login | ps-token-clean keeps the old certificate" {
	renewed
	# registered under another CA (--ca I.CA): the portal keeps the serial,
	# but refuses the new certificate's login (it is not PostSignum's there)
	before=$(p11_count_certs)
	run --separate-stderr bash -c "ps-jip-setserial --profile '$PROFILE' --jip-url '$JIP_URL' \
		--ca-bundle '$JIP_TLS_CA' --module '$PKCS11_MODULE' --pin 'file:$PIN_FILE' \
		--token '$TOKEN_URI' --user jnovak --password 'file:$BATS_TEST_TMPDIR/pw' \
		--id '$NEW_ID' --ca I.CA --verify-login --json |
		ps-token-clean --module '$PKCS11_MODULE' --pin 'file:$PIN_FILE' --superseded --yes --json"
	[ "$status" -eq 5 ]
	grep -q 'login-cert-not-registered' "$PORTAL/log"
	[ "$(jq -r '.login_verified' "$PSRENEW_STATE_DIR/jip/$NEW_SERIAL.json")" = false ]
	# the old commercial certificate stays, and ps-token-clean says why
	p11_list_certs | grep -q 'commercial-expiring'
	[ "$(p11_count_certs)" -eq "$before" ]
	err=$(jq -c 'select(.kind == "error" and .code == "refused-jip-unconfirmed")' <<<"$output")
	[ "$(jfield serial_hex <<<"$err")" = "$COMM_SERIAL" ]
	[[ "$(jfield message <<<"$err")" == *"login with it was refused"* ]]
}

@test "a jip record on stdin whose verification failed confirms nothing" {
	renewed
	for v in false null; do
		jq -nc --arg s "$NEW_SERIAL" --argjson v "$v" \
			'{kind:"jip",serial_hex:$s,result:"set",type:"commercial",user:"jnovak",login_verified:$v,login_verify_reason:"test"}' |
			{ run --separate-stderr ps-token-clean --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
				--superseded --yes --json; echo "$status" > "$BATS_TEST_TMPDIR/st"; }
		[ "$(cat "$BATS_TEST_TMPDIR/st")" -eq 5 ]
		p11_list_certs | grep -q 'commercial-expiring'
	done
	# a verified one does
	jq -nc --arg s "$NEW_SERIAL" \
		'{kind:"jip",serial_hex:$s,result:"set",type:"commercial",user:"jnovak",login_verified:true}' |
		ps-token-clean --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --superseded --yes --json
	! p11_list_certs | grep -q 'commercial-expiring'
}

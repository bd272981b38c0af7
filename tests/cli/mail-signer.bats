#!/usr/bin/env bats
# Who signs the renewal e-mail (ps-renew --sign-with): PostSignum asks for
# the applicant's qualified certificate, so the holder's valid qualified
# certificate on the token signs by default, else the one being renewed.
# And the organisation's placeholders of the text, from psrenew.conf.
# Checked with the openssl CLI, not our code.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

setup() {
	psrenew_setup
	demo_token
	PKI=$(pki_dir)
	MSG=$BATS_TEST_TMPDIR/msg.eml
}

teardown() {
	stop_servers
}

# renew_mail ID [ARGS...]: ps-renew --ca mail:- for certificate ID, the
# message in $MSG.
renew_mail() {
	local id=$1
	shift
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$id" --ca mail:- "$@"
	printf '%s' "$output" >"$MSG"
}

# signer_is FILE: the message in $MSG verifies and its signer is FILE.
signer_is() {
	openssl cms -verify -in "$MSG" -CAfile "$PKI/chain.pem" -out "$BATS_TEST_TMPDIR/inner" \
		-signer "$BATS_TEST_TMPDIR/signer.pem"
	[ "$(openssl x509 -in "$BATS_TEST_TMPDIR/signer.pem" -noout -fingerprint -sha256)" = \
	  "$(openssl x509 -in "$1" -noout -fingerprint -sha256)" ]
}

# body: the text part of the signed message in $MSG, decoded.
body() {
	openssl cms -verify -in "$MSG" -CAfile "$PKI/chain.pem" -out "$BATS_TEST_TMPDIR/inner" 2>/dev/null
	awk '/^Content-Type: text\/plain/ { p = 1; next } p && /^\r?$/ { q = 1; next }
	     q && /^--/ { exit } q { print }' "$BATS_TEST_TMPDIR/inner" | tr -d '\r' | base64 -d | tr -d '\r'
}

@test "renewing the commercial certificate, the holder's qualified one signs the e-mail" {
	renew_mail "$COMM_ID"
	[ "$status" -eq 3 ]
	signer_is "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem"
	# the request is the commercial certificate's, for its new key
	req=$(ls "$PSRENEW_STATE_DIR"/requests/*.json)
	[ "$(jq -r .old_id "$req")" = "$COMM_ID" ]
	body | grep -q "Typ certifikátu: *komerční"
	body | grep -q "kvalifikovaný, sériové"
	body | grep -q "číslo $(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")"
	[[ $stderr != *"sign"*"error"* ]]
}

@test "--sign-with current, id:HEX and serial:S choose the signer" {
	renew_mail "$COMM_ID" --sign-with current
	[ "$status" -eq 3 ]
	signer_is "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	body | grep -q "komerční, sériové"
	rm -rf "$PSRENEW_STATE_DIR"
	renew_mail "$COMM_ID" --sign-with "id:$COMM_ID"
	[ "$status" -eq 3 ]
	signer_is "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	rm -rf "$PSRENEW_STATE_DIR"
	renew_mail "$COMM_ID" --sign-with "serial:$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")"
	[ "$status" -eq 3 ]
	signer_is "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem"
}

@test "another holder's qualified certificate never signs: without the holder's own, the renewed one does" {
	softhsm_token other
	comm=$(token_cert commercial -300d +10d)
	token_cert qualified -1d +364d "" "" "$PETRA_SUBJECT" >/dev/null
	renew_mail "$comm"
	[ "$status" -eq 3 ]
	signer_is "$BATS_TEST_TMPDIR/certs/$comm.pem"
	# and the text says which certificate signed
	body | grep -q "komerční, sériové"
	body | grep -q "číslo $(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$comm.pem")"
}

@test "--sign-with qualified without one, or an expired signer: exit 2, nothing left on the token" {
	softhsm_token other
	comm=$(token_cert commercial -300d +10d)
	keys=$(token_objects privkey)
	renew_mail "$comm" --sign-with qualified
	[ "$status" -eq 2 ]
	[ -z "$output" ] # stdout is the message's, and there is none
	[[ $stderr == *"no valid qualified certificate"* ]]
	[ "$(token_objects privkey)" -eq "$keys" ]
	[ -z "$(ls "$PSRENEW_STATE_DIR"/requests/ 2>/dev/null)" ]
	# the demo token's expired certificate cannot sign
	softhsm_token demo2
	demo_token
	run --separate-stderr ps-renew --json --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$COMM_ID" --ca mail:- --sign-with "id:$EXPIRED_ID"
	[ "$status" -eq 2 ]
	[[ $stderr == *"not valid now"* ]]
	[ "$(token_objects privkey)" -eq 4 ]
}

@test "--sign-with with a channel that sends no e-mail is a usage error" {
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$COMM_ID" --ca "helper:$SCRIPTED_HELPER" --sign-with qualified
	[ "$status" -eq 2 ]
	[[ $stderr == *"--sign-with chooses who signs the renewal e-mail"* ]]
	[ "$(token_objects privkey)" -eq 4 ]
}

@test "the contract number, organisation and employee number come from [ca.NAME]; unset lines are left out" {
	renew_mail "$QUAL_ID"
	[ "$status" -eq 3 ]
	body >"$BATS_TEST_TMPDIR/plain"
	! grep -q 'Číslo smlouvy\|Organizace\|Osobní číslo\|{' "$BATS_TEST_TMPDIR/plain"
	rm -rf "$PSRENEW_STATE_DIR"
	cat >"$BATS_TEST_TMPDIR/c.conf" <<-EOF_CONF
		[ca.postsignum]
		channel = mail:-
		contract-number = 2024/0815-PS
		organisation = Městský úřad Dolní Lhota
		employee-number = 4711
		sign-with = current
	EOF_CONF
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--config "$BATS_TEST_TMPDIR/c.conf" --token "$TOKEN_URI" --id "$COMM_ID" --ca postsignum
	[ "$status" -eq 3 ]
	printf '%s' "$output" >"$MSG"
	# sign-with = current in the section: the commercial one signs
	signer_is "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	body >"$BATS_TEST_TMPDIR/plain"
	grep -q '^Číslo smlouvy: *2024/0815-PS$' "$BATS_TEST_TMPDIR/plain"
	grep -q '^Organizace: *Městský úřad Dolní Lhota$' "$BATS_TEST_TMPDIR/plain"
	grep -q '^Osobní číslo: *4711$' "$BATS_TEST_TMPDIR/plain"
	! grep -q '{' "$BATS_TEST_TMPDIR/plain"
}

@test "SMTP: the message the server receives is signed by the qualified certificate" {
	start_smtp "$BATS_TEST_TMPDIR/smtp"
	printf '[ca.postsignum]\nchannel = mail:%s\norganisation = MV ČR\n' "$SMTP_URL" \
		>"$BATS_TEST_TMPDIR/c.conf"
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--config "$BATS_TEST_TMPDIR/c.conf" --token "$TOKEN_URI" --id "$COMM_ID" --ca postsignum
	[ "$status" -eq 3 ]
	[[ "$(jfield message <<<"$output")" == *"signed by the qualified certificate $(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")"* ]]
	MSG=$SMTP_MAILDIR/001.eml
	signer_is "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem"
	body | grep -q '^Organizace: *MV ČR$'
}

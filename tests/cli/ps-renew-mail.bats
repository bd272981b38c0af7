#!/usr/bin/env bats
# The mail: channel: PostSignum's documented route, an S/MIME-signed e-mail
# with the request attached. Checked with the openssl CLI, not our code.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

setup() {
	psrenew_setup
	demo_token
	PKI=$(pki_dir)
	OLD=$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem
}

# mail_out: ps-renew --ca mail:- for the qualified certificate, message in $MSG
mail_out() {
	MSG=$BATS_TEST_TMPDIR/msg.eml
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$QUAL_ID" --ca mail:- "$@"
	printf '%s' "$output" > "$MSG"
}

@test "mail:- writes a message that openssl cms -verify accepts, signed by the old certificate" {
	mail_out
	[ "$status" -eq 3 ]
	openssl cms -verify -in "$MSG" -CAfile "$PKI/chain.pem" -out "$BATS_TEST_TMPDIR/inner" \
		-signer "$BATS_TEST_TMPDIR/signer.pem"
	[ "$(openssl x509 -in "$BATS_TEST_TMPDIR/signer.pem" -noout -fingerprint -sha256)" = \
	  "$(openssl x509 -in "$OLD" -noout -fingerprint -sha256)" ]
	# RFC 5322 headers
	grep -q $'^To: <podatelna.postsignum@cpost.cz>\r$' "$MSG"
	grep -q $'^From: =?UTF-8?B?SmFuIE5vdsOhaw==?= <jan.novak@example.cz>\r$' "$MSG"
	grep -q '^Date: ' "$MSG"
	grep -q '^Message-ID: <psrenew\.' "$MSG"
	grep -q 'micalg="sha-256"' "$MSG"
	# the SignedData: SHA-256 and signing-time
	openssl smime -pk7out -in "$MSG" | openssl pkcs7 -print | grep -q 'signingTime'
	openssl smime -pk7out -in "$MSG" | openssl pkcs7 -print | grep -q 'sha256'
}

@test "the attachment is a PKCS#10 for the new token key with the old subject" {
	mail_out
	openssl cms -verify -in "$MSG" -CAfile "$PKI/chain.pem" -out "$BATS_TEST_TMPDIR/inner"
	inner=$BATS_TEST_TMPDIR/inner
	# (the parameters may be on a folded line of their own)
	grep -q '^Content-Type: application/pkcs10;' "$inner"
	grep -q ' name="zadost-.*\.req"' "$inner"
	grep -q 'filename="zadost-.*\.req"' "$inner"
	# the base64 part after the attachment headers
	awk '/^Content-Type: application\/pkcs10/ { p = 1; next } p && /^\r?$/ { q = 1; next }
	     q && /^--/ { exit } q { print }' "$inner" | tr -d '\r' | base64 -d > "$BATS_TEST_TMPDIR/req.der"
	openssl req -inform DER -in "$BATS_TEST_TMPDIR/req.der" -noout -verify
	key_id=$(jq -r .key_id "$PSRENEW_STATE_DIR"/requests/*.json)
	openssl req -inform DER -in "$BATS_TEST_TMPDIR/req.der" -pubkey -noout > "$BATS_TEST_TMPDIR/pub.pem"
	[ "$(cert_key_id "$BATS_TEST_TMPDIR/pub.pem")" = "$key_id" ]
	[ "$(openssl req -inform DER -in "$BATS_TEST_TMPDIR/req.der" -noout -subject -nameopt RFC2253,dump_all,dump_der)" = \
	  "$(openssl x509 -in "$OLD" -noout -subject -nameopt RFC2253,dump_all,dump_der)" ]
}

@test "the text body is UTF-8 Czech with the placeholders filled" {
	mail_out
	openssl cms -verify -in "$MSG" -CAfile "$PKI/chain.pem" -out "$BATS_TEST_TMPDIR/inner"
	awk '/^Content-Type: text\/plain/ { p = 1; next } p && /^\r?$/ { q = 1; next }
	     q && /^--/ { exit } q { print }' "$BATS_TEST_TMPDIR/inner" | tr -d '\r' | base64 -d > "$BATS_TEST_TMPDIR/body"
	iconv -f UTF-8 -t UTF-8 "$BATS_TEST_TMPDIR/body" >/dev/null
	grep -q 'žádám o vydání následného certifikátu PostSignum' "$BATS_TEST_TMPDIR/body"
	grep -q "Držitel: *Jan Novák" "$BATS_TEST_TMPDIR/body"
	grep -q "Typ certifikátu: *kvalifikovaný" "$BATS_TEST_TMPDIR/body"
	grep -q "$(cert_serial_hex "$OLD")" "$BATS_TEST_TMPDIR/body"
	grep -q "$(cert_not_after_iso "$OLD")" "$BATS_TEST_TMPDIR/body"
	! grep -q '{name}\|{serial}\|{type}' "$BATS_TEST_TMPDIR/body"
}

@test "a byte changed in the signed body makes verification fail" {
	mail_out
	openssl cms -verify -in "$MSG" -CAfile "$PKI/chain.pem" -out /dev/null
	# change one letter of the base64 text body
	line=$(grep -n '^Content-Transfer-Encoding: base64' "$MSG" | head -1 | cut -d: -f1)
	sed "$((line + 2))s/^\(.\)\(.\)/\2\1/" "$MSG" > "$BATS_TEST_TMPDIR/tampered.eml"
	! cmp -s "$MSG" "$BATS_TEST_TMPDIR/tampered.eml"
	run openssl cms -verify -in "$BATS_TEST_TMPDIR/tampered.eml" -CAfile "$PKI/chain.pem" -out /dev/null
	[ "$status" -ne 0 ]
	[[ "$output" == *"digest failure"* || "$output" == *"Verification failure"* ]]
}

@test "the request waits for the CA's e-mail, then ps-fetch --cert installs the certificate" {
	mail_out
	[ "$status" -eq 3 ]
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --pending
	[ "$status" -eq 3 ] # nothing to poll, no PIN needed
	req=$(ls "$PSRENEW_STATE_DIR"/requests/*.json)
	jq -r .csr "$req" | openssl req -pubkey -noout > "$BATS_TEST_TMPDIR/pub.pem"
	"$MKPKI" issue "$PKI" qualified "$BATS_TEST_TMPDIR/pub.pem" "$BATS_TEST_TMPDIR/new.crt" \
		-1m +365d "$JAN_SUBJECT"
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--cert "$BATS_TEST_TMPDIR/new.crt"
	[ "$status" -eq 0 ]
	[ "$(jfield type <<<"$output")" = qualified ]
	[ "$(jq -r .state "$req")" = installed ]
}

@test "a named postsignum channel with a template and a sender from the configuration" {
	printf 'Zdravím, {name} ({type}) prosí o certifikát, soubor {file}.\n' > "$BATS_TEST_TMPDIR/t.txt"
	cat > "$BATS_TEST_TMPDIR/c.conf" <<EOF_CONF
[ca.postsignum]
channel = mail:-
from = podatelna@urad.example.cz
to = test-registry@example.cz
template = $BATS_TEST_TMPDIR/t.txt
EOF_CONF
	MSG=$BATS_TEST_TMPDIR/msg.eml
	ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --config "$BATS_TEST_TMPDIR/c.conf" \
		--token "$TOKEN_URI" --id "$COMM_ID" --ca postsignum > "$MSG" 2>/dev/null || [ $? -eq 3 ]
	grep -q $'^To: <test-registry@example.cz>\r$' "$MSG"
	grep -q '<podatelna@urad.example.cz>' "$MSG"
	openssl cms -verify -in "$MSG" -CAfile "$PKI/chain.pem" -out "$BATS_TEST_TMPDIR/inner"
	awk '/^Content-Type: text\/plain/ { p = 1; next } p && /^\r?$/ { q = 1; next }
	     q && /^--/ { exit } q { print }' "$BATS_TEST_TMPDIR/inner" | tr -d '\r' | base64 -d |
		grep -q 'Zdravím, Jan Novák (komerční) prosí o certifikát, soubor zadost-'
}

@test "without the current key on the token the mail channel is refused, nothing generated" {
	softhsm_token nokey
	id=$(token_cert_only commercial -300d +10d)
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$id" --ca mail:-
	[ "$status" -eq 5 ]
	[ -z "$output" ] # stdout is the message's, and there is none
	[[ "$stderr" == *"key of certificate"*"not on the token"* ]]
	[ "$(token_objects privkey)" -eq 0 ]
}

# The SMTP tests run a real SMTP server (aiosmtpd) on loopback (start_smtp).
teardown() {
	stop_servers
}

smtp_conf() { # smtp_conf URL [EXTRA LINES...]
	local url=$1
	shift
	{
		printf '[ca.postsignum]\nchannel = mail:%s\n' "$url"
		printf '%s\n' "$@"
	} > "$BATS_TEST_TMPDIR/c.conf"
}

smtp_renew() {
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--config "$BATS_TEST_TMPDIR/c.conf" --token "$TOKEN_URI" --id "$QUAL_ID" \
		--ca postsignum "$@"
}

@test "SMTP: the server receives the message, which verifies with openssl" {
	start_smtp "$BATS_TEST_TMPDIR/smtp"
	smtp_conf "$SMTP_URL"
	smtp_renew
	[ "$status" -eq 3 ]
	[ "$(jfield state <<<"$output")" = pending ]
	[[ "$(jfield cookie <<<"$output")" == "<psrenew."* ]]
	[ "$(ls "$SMTP_MAILDIR"/*.eml | wc -l)" -eq 1 ]
	[ "$(jq -r '.rcpt_tos[0]' "$SMTP_MAILDIR"/001.json)" = podatelna.postsignum@cpost.cz ]
	[ "$(jq -r .mail_from "$SMTP_MAILDIR"/001.json)" = jan.novak@example.cz ]
	openssl cms -verify -in "$SMTP_MAILDIR/001.eml" -CAfile "$PKI/chain.pem" -out /dev/null
	# the Message-ID the record keeps is the one that was sent
	grep -q "^Message-ID: $(jfield cookie <<<"$output")" "$SMTP_MAILDIR/001.eml"
}

@test "SMTP with STARTTLS and a login from a secret source; the password never shows" {
	start_smtp "$BATS_TEST_TMPDIR/smtp" --tls --require-starttls --user 'jnovak:Tajné-heslo-77'
	(umask 077 && printf 'Tajné-heslo-77' > "$BATS_TEST_TMPDIR/smtp.pass")
	smtp_conf "$SMTP_URL" "smtp-user = jnovak" "smtp-pass = file:$BATS_TEST_TMPDIR/smtp.pass" \
		"ca-bundle = $SMTP_TLS_CA"
	smtp_renew
	[ "$status" -eq 3 ]
	[ "$(jq -r .auth_user "$SMTP_MAILDIR"/001.json)" = jnovak ]
	[ "$(jq -r .tls "$SMTP_MAILDIR"/001.json)" = starttls ]
	openssl cms -verify -in "$SMTP_MAILDIR/001.eml" -CAfile "$PKI/chain.pem" -out /dev/null
	! grep -rq 'Tajné-heslo-77' "$PSRENEW_STATE_DIR"
	[[ "$output$stderr" != *Tajné-heslo-77* ]]
}

@test "SMTP: a wrong login is exit 5 with the server's reply; the key pair is removed" {
	start_smtp "$BATS_TEST_TMPDIR/smtp" --tls --user 'jnovak:right'
	(umask 077 && printf 'wrong' > "$BATS_TEST_TMPDIR/smtp.pass")
	smtp_conf "$SMTP_URL" "smtp-user = jnovak" "smtp-pass = file:$BATS_TEST_TMPDIR/smtp.pass" \
		"ca-bundle = $SMTP_TLS_CA"
	smtp_renew
	[ "$status" -eq 5 ]
	[ "$(jfield state <<<"$output")" = rejected ]
	[[ "$(jfield message <<<"$output")" == *"535"* ]]
	[ "$(token_objects privkey)" -eq 4 ]
	[ -z "$(ls "$SMTP_MAILDIR" 2>/dev/null)" ]
}

@test "SMTP: a rejected recipient is exit 5 with the server's reply" {
	start_smtp "$BATS_TEST_TMPDIR/smtp" --reject-rcpt podatelna.postsignum@cpost.cz
	smtp_conf "$SMTP_URL"
	smtp_renew
	[ "$status" -eq 5 ]
	[[ "$(jfield message <<<"$output")" == *"550"* ]]
	[ "$(token_objects privkey)" -eq 4 ]
}

@test "SMTP: a server that is down or says try later is exit 4; the request is sent again later" {
	smtp_conf "smtp://127.0.0.1:1"
	smtp_renew
	[ "$status" -eq 4 ]
	[ "$(jfield state <<<"$output")" = unsubmitted ]
	[ "$(token_objects privkey)" -eq 5 ]
	start_smtp "$BATS_TEST_TMPDIR/smtp" --tempfail
	smtp_conf "$SMTP_URL"
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--config "$BATS_TEST_TMPDIR/c.conf" --pending
	[ "$status" -eq 4 ]
	stop_smtp "$BATS_TEST_TMPDIR/smtp"
	start_smtp "$BATS_TEST_TMPDIR/smtp2"
	# the request remembers the channel spec it was made with: point it at
	# the new server through the same name
	req=$(ls "$PSRENEW_STATE_DIR"/requests/*.json)
	jq --arg c "mail:$SMTP_URL" '.channel = $c' "$req" > "$req.new" && mv "$req.new" "$req"
	chmod 600 "$req"
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --pending
	[ "$status" -eq 3 ]
	[ "$(jfield state <<<"$output")" = pending ]
	openssl cms -verify -in "$SMTP_MAILDIR/001.eml" -CAfile "$PKI/chain.pem" -out /dev/null
	[ "$(token_objects privkey)" -eq 5 ]
}

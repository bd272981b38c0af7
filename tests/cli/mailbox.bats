#!/usr/bin/env bats
# ps-fetch --maildir and --imap: the CA's e-mail brings the issued
# certificate as an attachment or a link; ps-fetch installs every
# certificate of a pending request and marks those messages as read, and
# leaves every other message as it was. Against a Dovecot of our own
# (tests/imap), a Maildir written as an MTA writes one, and a local web
# server for the links.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

IMAP_JAN_PASS='Tajné-heslo-IMAP-1'
IMAP_PETR_PASS='Heslo-petr-2'

setup_file() {
	pki_dir >/dev/null
	start_imap "$BATS_FILE_TMPDIR/imap" "jan:$IMAP_JAN_PASS" "petr:$IMAP_PETR_PASS"
	WWW=$BATS_FILE_TMPDIR/www
	mkdir -p "$WWW"
	cp "$(pki_dir)/chain.pem" "$WWW/postsignum-ca.crt"
	/usr/bin/python3 -u -m http.server --bind 127.0.0.1 --directory "$WWW" 0 \
		</dev/null >"$BATS_FILE_TMPDIR/web.log" 2>&1 3>&- &
	echo $! >"$BATS_FILE_TMPDIR/web.pid"
	for ((i = 0; i < 300; i++)); do
		WEB_PORT=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' "$BATS_FILE_TMPDIR/web.log")
		[[ -n $WEB_PORT ]] && break
		sleep 0.1
	done
	[[ -n $WEB_PORT ]]
	export WWW WEB_PORT
}

teardown_file() {
	kill "$(cat "$BATS_FILE_TMPDIR/web.pid")" 2>/dev/null || true
	stop_servers
}

setup() {
	psrenew_setup
	demo_token
	PKI=$(pki_dir)
	CA_MAIL=$FIXTURE_ROOT/tests/imap/ca-mail
}

# requests: mail: requests for the qualified and the commercial
# certificate; the CA's answers to them in $QUAL_CERT (DER) and
# $COMM_CERT (PEM, served by the web server at $COMM_URL).
requests() {
	local id req type
	for id in "$QUAL_ID" "$COMM_ID"; do
		run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
			--token "$TOKEN_URI" --id "$id" --ca mail:-
		[ "$status" -eq 3 ]
	done
	for req in "$PSRENEW_STATE_DIR"/requests/*.json; do
		jq -r .csr "$req" | openssl req -pubkey -noout >"$BATS_TEST_TMPDIR/pub.pem"
		type=commercial
		[[ $(jq -r .old_id "$req") == "$QUAL_ID" ]] && type=qualified
		"$MKPKI" issue "$PKI" "$type" "$BATS_TEST_TMPDIR/pub.pem" \
			"$BATS_TEST_TMPDIR/$type.pem" -1m +385d "$JAN_SUBJECT"
	done
	QUAL_CERT=$BATS_TEST_TMPDIR/qualified.cer
	openssl x509 -in "$BATS_TEST_TMPDIR/qualified.pem" -outform DER -out "$QUAL_CERT"
	COMM_CERT=$WWW/$BATS_TEST_NUMBER-certifikat.crt
	cp "$BATS_TEST_TMPDIR/commercial.pem" "$COMM_CERT"
	COMM_URL=http://127.0.0.1:$WEB_PORT/$BATS_TEST_NUMBER-certifikat.crt
}

# mails: the four messages m1..m4 ($BATS_TEST_TMPDIR/mN.eml):
#   m1 the qualified certificate attached (application/pkix-cert, .cer)
#   m2 a notice with a link to the commercial one, and the CA's own
#      certificates linked in the footer
#   m3 a newsletter: no certificate
#   m4 someone else's certificate attached: no request of ours
mails() {
	"$CA_MAIL" --subject "Certifikát vydán – příloha" \
		--attach "$QUAL_CERT:application/pkix-cert:certifikat.cer" >"$BATS_TEST_TMPDIR/m1.eml"
	"$CA_MAIL" --subject "Certifikát vydán – odkaz" --text "Dobrý den,

Váš certifikát si stáhněte zde: $COMM_URL

Certifikáty certifikační autority: http://127.0.0.1:$WEB_PORT/postsignum-ca.crt
S pozdravem, PostSignum" >"$BATS_TEST_TMPDIR/m2.eml"
	"$CA_MAIL" --subject "Novinky PostSignum" \
		--text "Novinky na https://www.postsignum.cz/ a nic víc." >"$BATS_TEST_TMPDIR/m3.eml"
	"$CA_MAIL" --subject "Certifikát jiné osoby" \
		--attach "$BATS_TEST_TMPDIR/certs/$FRESH_ID.pem:application/x-x509-user-cert:petra.crt" \
		>"$BATS_TEST_TMPDIR/m4.eml"
}

# installed SERIAL_HEX: the token holds a certificate with that serial.
installed() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" -O --type cert 2>/dev/null |
		tr -d ' :' | grep -qi "serial$1\$"
}

# snapshot DIR: every file under DIR with its checksum.
snapshot() {
	(cd "$1" && find . -type f ! -name 'dovecot*' -print0 | sort -z | xargs -0 -r sha1sum)
}

@test "--maildir: the certificates of an attachment and of a link are installed, those messages marked read, the others left alone; a second run does nothing" {
	requests
	mails
	MD=$BATS_TEST_TMPDIR/Maildir
	mkdir -p "$MD"/{new,cur,tmp}
	for m in 1 2 3 4; do maildir_deliver "$MD" "$BATS_TEST_TMPDIR/m$m.eml" >"$BATS_TEST_TMPDIR/m$m.name"; done
	certs=$(p11_count_certs)
	run --separate-stderr ps-fetch --json --verbose --module "$PKCS11_MODULE" \
		--pin "file:$PIN_FILE" --maildir "$MD"
	[ "$status" -eq 0 ] || { echo "$output $stderr"; false; }
	records_valid
	[ "$(jq -s 'map(select(.kind == "cert")) | length' <<<"$output")" -eq 2 ]
	[ "$(jq -r 'select(.type == "qualified") | .cert_source' <<<"$output")" = certifikat.cer ]
	[ "$(jq -r 'select(.type == "commercial") | .cert_source' <<<"$output")" = "$COMM_URL" ]
	[[ "$(jq -r 'select(.type == "qualified") | .message_id' <<<"$output")" == *@postsignum.example ]]
	[ "$(p11_count_certs)" -eq $((certs + 2)) ]
	installed "$(cert_serial_hex "$QUAL_CERT")"
	installed "$(cert_serial_hex "$COMM_CERT")"
	[ "$(jq -r .state "$PSRENEW_STATE_DIR"/requests/*.json | sort -u)" = installed ]
	# m1 and m2: moved to cur/ with the S flag, content unchanged
	for m in 1 2; do
		name=$(cat "$BATS_TEST_TMPDIR/m$m.name")
		[ ! -e "$MD/new/$name" ]
		cmp "$MD/cur/$name:2,S" "$BATS_TEST_TMPDIR/m$m.eml"
	done
	# m3 and m4: still new, unchanged
	for m in 3 4; do
		cmp "$MD/new/$(cat "$BATS_TEST_TMPDIR/m$m.name")" "$BATS_TEST_TMPDIR/m$m.eml"
	done
	[ "$(ls "$MD/cur" | wc -l)" -eq 2 ]
	[[ $stderr == *"4 unread message(s): 2 marked as read, 2 left as they were; 2 certificate(s) installed"* ]]
	# a second run changes nothing
	before=$(snapshot "$MD")
	run --separate-stderr ps-fetch --json --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--maildir "$MD"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$(snapshot "$MD")" = "$before" ]
	[ "$(p11_count_certs)" -eq $((certs + 2)) ]
}

@test "--maildir: a message read before (cur/ without S) counts as unread; a certificate already installed marks its message read without a second copy" {
	requests
	mails
	MD=$BATS_TEST_TMPDIR/Maildir
	mkdir -p "$MD"/{new,cur,tmp}
	# the qualified one installed by hand first
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --cert "$QUAL_CERT"
	[ "$status" -eq 0 ]
	certs=$(p11_count_certs)
	# a mail reader has seen the folder: m1 in cur/ with flag F, not S
	name=$(maildir_deliver "$MD" "$BATS_TEST_TMPDIR/m1.eml")
	mv "$MD/new/$name" "$MD/cur/$name:2,F"
	run --separate-stderr ps-fetch --json --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--maildir "$MD"
	# the commercial request still waits for its certificate
	[ "$status" -eq 3 ]
	[ -z "$output" ]
	[ "$(p11_count_certs)" -eq "$certs" ]
	[ -e "$MD/cur/$name:2,FS" ]
	[ ! -e "$MD/cur/$name:2,F" ]
}

@test "--maildir: not a Maildir is a usage error; a message without a certificate is left alone (exit 3: still pending)" {
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --maildir "$BATS_TEST_TMPDIR"
	[ "$status" -eq 2 ]
	[[ $stderr == *"is not a Maildir"* ]]
	requests
	mails
	MD=$BATS_TEST_TMPDIR/Maildir
	mkdir -p "$MD"/{new,cur,tmp}
	name=$(maildir_deliver "$MD" "$BATS_TEST_TMPDIR/m3.eml")
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --maildir "$MD"
	[ "$status" -eq 3 ]
	cmp "$MD/new/$name" "$BATS_TEST_TMPDIR/m3.eml"
	[ "$(jq -r .state "$PSRENEW_STATE_DIR"/requests/*.json | sort -u)" = pending ]
}

@test "--imap against Dovecot: attachment and link installed, those messages \\Seen, the others unread; a second run does nothing" {
	requests
	mails
	for m in 1 2 3 4; do maildir_deliver "$IMAP_MAILDIR" "$BATS_TEST_TMPDIR/m$m.eml" >/dev/null; done
	(umask 077 && printf '%s' "$IMAP_JAN_PASS" >"$BATS_TEST_TMPDIR/imap.pass")
	printf '[mailbox]\nimap-pass = file:%s\nca-bundle = %s\n' \
		"$BATS_TEST_TMPDIR/imap.pass" "$IMAP_TLS_CA" >"$BATS_TEST_TMPDIR/c.conf"
	chmod 600 "$BATS_TEST_TMPDIR/c.conf"
	certs=$(p11_count_certs)
	run --separate-stderr ps-fetch --json --config "$BATS_TEST_TMPDIR/c.conf" \
		--module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --imap "imaps://jan@$IMAP_HOST/INBOX" </dev/null
	[ "$status" -eq 0 ] || { echo "$output $stderr"; false; }
	[ "$(jq -s 'map(select(.kind == "cert")) | length' <<<"$output")" -eq 2 ]
	[ "$(p11_count_certs)" -eq $((certs + 2)) ]
	installed "$(cert_serial_hex "$QUAL_CERT")"
	installed "$(cert_serial_hex "$COMM_CERT")"
	flags=$("$FIXTURE_ROOT/tests/imap/imap-flags" "$IMAP_HOST" "$IMAP_TLS_CA" jan "$IMAP_JAN_PASS")
	[ "$(grep -c . <<<"$flags")" -eq 4 ]
	grep -qx $'Certifikát vydán – příloha\t\\\\Seen' <<<"$flags"
	grep -qx $'Certifikát vydán – odkaz\t\\\\Seen' <<<"$flags"
	grep -qx $'Novinky PostSignum\t' <<<"$flags"
	grep -qx $'Certifikát jiné osoby\t' <<<"$flags"
	[[ "$output$stderr" != *"$IMAP_JAN_PASS"* ]]
	# a second run changes nothing
	run --separate-stderr ps-fetch --json --config "$BATS_TEST_TMPDIR/c.conf" \
		--module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --imap "imaps://jan@$IMAP_HOST/INBOX"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$("$FIXTURE_ROOT/tests/imap/imap-flags" "$IMAP_HOST" "$IMAP_TLS_CA" jan "$IMAP_JAN_PASS")" = "$flags" ]
	[ "$(p11_count_certs)" -eq $((certs + 2)) ]
}

@test "--imap: a wrong password is exit 5 with a clear error; nothing is installed, read or lost" {
	requests
	mails
	maildir_deliver "$IMAP_STATE/mail/petr" "$BATS_TEST_TMPDIR/m1.eml" >/dev/null
	(umask 077 && printf 'wrong-password' >"$BATS_TEST_TMPDIR/imap.pass")
	certs=$(p11_count_certs)
	run --separate-stderr ps-fetch --json --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--ca-bundle "$IMAP_TLS_CA" --imap "imaps://petr@$IMAP_HOST/INBOX" \
		--imap-pass "file:$BATS_TEST_TMPDIR/imap.pass"
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output")" = imap-login ]
	[[ $stderr == *"the IMAP server refused the login of petr at 127.0.0.1:$IMAP_PORT"* ]]
	[[ "$output$stderr" != *wrong-password* ]]
	[ "$(p11_count_certs)" -eq "$certs" ]
	[ "$(jq -r .state "$PSRENEW_STATE_DIR"/requests/*.json | sort -u)" = pending ]
	[ "$("$FIXTURE_ROOT/tests/imap/imap-flags" "$IMAP_HOST" "$IMAP_TLS_CA" petr "$IMAP_PETR_PASS")" = \
	  $'Certifikát vydán – příloha\t' ]
	# a password in the URL is refused before anything is sent
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --imap "imaps://petr:x@$IMAP_HOST/INBOX"
	[ "$status" -eq 2 ]
	[[ $stderr == *"a password in the URL"* ]]
}

#!/usr/bin/env bats
# The SMTP test server (tests/smtp/smtp-start, smtp-stop, smtp-server.py)
# does what it promises, checked with independent clients: curl's SMTP
# client (plain, STARTTLS, SMTPS), Python's smtplib and openssl.

SMTP=$BATS_TEST_DIRNAME/../smtp
PY=/usr/bin/python3

# servers shared by the tests: plain (no auth, one rejected recipient),
# STARTTLS + AUTH, SMTPS + AUTH
setup_file() {
	export PLAIN_DIR=$BATS_FILE_TMPDIR/plain TLS_DIR=$BATS_FILE_TMPDIR/tls \
		SMTPS_DIR=$BATS_FILE_TMPDIR/smtps
	"$SMTP/smtp-start" "$PLAIN_DIR" --reject-rcpt nobody@example.cz >/dev/null
	"$SMTP/smtp-start" "$TLS_DIR" --tls --user jan.novak:Tajné-heslo1 \
		--user 'robot:pass:with:colons' --reject-rcpt nobody@example.cz >/dev/null
	"$SMTP/smtp-start" "$SMTPS_DIR" --smtps --user jan.novak:Tajné-heslo1 \
		--user 'robot:pass:with:colons' >/dev/null
}

teardown_file() {
	local d
	for d in "$PLAIN_DIR" "$TLS_DIR" "$SMTPS_DIR"; do
		"$SMTP/smtp-stop" "$d"
	done
	no_servers_under "$BATS_RUN_TMPDIR"
}

setup() {
	W=$BATS_TEST_TMPDIR/w
	mkdir -p "$W"
	FROM=jan.novak@example.cz
	TO=zadosti@postsignum.example
}

teardown() {
	local d
	for d in "$BATS_TEST_TMPDIR"/srv*; do
		[[ -d $d ]] && "$SMTP/smtp-stop" "$d"
	done
	no_servers_under "$BATS_TEST_TMPDIR"
}

# no_servers_under DIR: no smtp-server.py runs with a --maildir below DIR
no_servers_under() {
	local d argv=()
	for d in /proc/[0-9]*; do
		# builtins only: a fork per process would be slow
		mapfile -d '' -t argv 2>/dev/null <"$d/cmdline" || continue
		if [[ " ${argv[*]} " == *smtp-server.py*" --maildir $1/"* ]]; then
			echo "still running: ${d#/proc/}: ${argv[*]}" >&2
			return 1
		fi
	done
}

# env_of DIR: the assignments smtp-start printed for DIR
env_of() {
	eval "$(cat "$1/env")"
}

# start_own NAME OPTIONS...: a server of this test only (stopped by teardown)
start_own() {
	local dir=$BATS_TEST_TMPDIR/srv-$1
	shift
	# the shared servers' TLS files: smtp-start keeps them (no openssl run)
	if [[ ! -d $dir ]]; then
		mkdir -p "$dir"
		cp -p "$TLS_DIR"/tls-ca.crt "$TLS_DIR"/tls-ca.key "$TLS_DIR"/tls-server.* "$dir/"
	fi
	"$SMTP/smtp-start" "$dir" "$@" >"$W/start.out"
	eval "$(cat "$W/start.out")"
}

# a message with CRLF line ends, lines that need SMTP dot-stuffing, a lone
# dot, 8-bit UTF-8, a bare LF inside a line and no header/body
# normalisation expected
make_message() {
	printf '%s\r\n' \
		"From: Jan Novák <$FROM>" \
		"To: <$TO>" \
		"Subject: =?UTF-8?Q?=C5=BE=C3=A1dost?=" \
		"MIME-Version: 1.0" \
		"Content-Type: text/plain; charset=UTF-8" \
		"Content-Transfer-Encoding: 8bit" \
		"" \
		"Žádost o obnovení certifikátu." \
		".a line starting with a dot" \
		"..two dots" \
		"." \
		"trailing spaces   " >"$1"
	printf 'bare\nLF inside a line\r\nlast line\r\n' >>"$1"
}

# curl_send URL [CURL OPTIONS...]: sends $W/msg.eml from $FROM to $TO
curl_send() {
	local url=$1
	shift
	curl -sS -v --max-time 20 --url "$url" --mail-from "$FROM" --mail-rcpt "$TO" \
		--upload-file "$W/msg.eml" "$@"
}

# count of messages in a maildir
n_mail() {
	find "$1" -maxdepth 1 -name '*.eml' | wc -l
}

# the newest message in a maildir (NNN.eml: the glob sorts them)
last_eml() {
	local all=("$1"/*.eml)
	[[ -e ${all[-1]} ]] && echo "${all[-1]}"
}

# json FILE EXPR: jq -c
json() {
	jq -c "$2" "$1"
}

# --------------------------------------------------------------- smtp-start

@test "smtp-start prints the assignments, listens on 127.0.0.1 only and writes pid and ready files" {
	env_of "$PLAIN_DIR"
	[[ $SMTP_PORT =~ ^[0-9]+$ ]]
	[ "$SMTP_URL" = "smtp://127.0.0.1:$SMTP_PORT" ]
	[ "$SMTP_TLS_CA" = "$PLAIN_DIR/tls-ca.crt" ]
	[ "$SMTP_MAILDIR" = "$PLAIN_DIR/mail" ]
	[ "$SMTP_STATE" = "$PLAIN_DIR" ]
	[ -d "$SMTP_MAILDIR" ]
	[ "$(cat "$PLAIN_DIR/ready")" = "$SMTP_PORT" ]
	pid=$(cat "$PLAIN_DIR/smtp-server.pid")
	kill -0 "$pid"
	[[ $(tr '\0' ' ' <"/proc/$pid/cmdline") == *smtp-server.py*"--maildir $PLAIN_DIR/mail "* ]]
	# the listening socket: 127.0.0.1:PORT, nothing else of that process
	run ss -Hltnp
	[ "$status" -eq 0 ]
	mine=$(grep "pid=$pid," <<<"$output")
	[ "$(wc -l <<<"$mine")" -eq 1 ]
	[[ $mine == *" 127.0.0.1:$SMTP_PORT "* ]]
	# the greeting
	run curl -sS -v --max-time 10 --url "$SMTP_URL" -X NOOP
	[ "$status" -eq 0 ]
	[[ $output == *"< 220 localhost "* ]]
}

@test "smtp-start makes a TLS CA and a server certificate for localhost and 127.0.0.1" {
	run openssl verify -CAfile "$TLS_DIR/tls-ca.crt" "$TLS_DIR/tls-server.crt"
	[ "$status" -eq 0 ]
	run openssl x509 -in "$TLS_DIR/tls-server.crt" -noout -ext subjectAltName,extendedKeyUsage
	[[ $output == *"DNS:localhost, IP Address:127.0.0.1"* ]]
	[[ $output == *"TLS Web Server Authentication"* ]]
	run openssl x509 -in "$TLS_DIR/tls-ca.crt" -noout -ext basicConstraints
	[[ $output == *"CA:TRUE"* ]]
	# the server presents it (openssl's own STARTTLS client)
	env_of "$TLS_DIR"
	run openssl s_client -connect "127.0.0.1:$SMTP_PORT" -starttls smtp \
		-CAfile "$SMTP_TLS_CA" -verify_return_error -verify_ip 127.0.0.1 </dev/null
	[ "$status" -eq 0 ]
	[[ $output == *"Verify return code: 0 (ok)"* ]]
	# the keys are not world-readable
	[ "$(stat -c %a "$TLS_DIR/tls-server.key")" = 600 ]
	[ "$(stat -c %a "$TLS_DIR/tls-ca.key")" = 600 ]
}

# -------------------------------------------------------------- plain SMTP

@test "curl over plain SMTP: the .eml is byte for byte what was sent, the .json has the envelope" {
	env_of "$PLAIN_DIR"
	make_message "$W/msg.eml"
	before=$(n_mail "$SMTP_MAILDIR")
	run curl_send "$SMTP_URL" --mail-rcpt kopie@example.cz
	[ "$status" -eq 0 ]
	[[ $output == *"< 250 2.0.0 OK queued as "* ]]
	[ "$(n_mail "$SMTP_MAILDIR")" -eq $((before + 1)) ]
	eml=$(last_eml "$SMTP_MAILDIR")
	cmp "$W/msg.eml" "$eml"
	grep -q $'^\\.\\.two dots\r$' "$eml"
	grep -q $'^\\.\r$' "$eml"
	base=${eml%.eml}
	[ "$(json "$base.json" .mail_from)" = "\"$FROM\"" ]
	[ "$(json "$base.json" .rcpt_tos)" = "[\"$TO\",\"kopie@example.cz\"]" ]
	[ "$(json "$base.json" .auth_user)" = null ]
	[ "$(json "$base.json" .tls)" = null ]
	[ "$(json "$base.json" .size)" -eq "$(stat -c %s "$W/msg.eml")" ]
	[ "$(json "$base.json" .peer)" = '"127.0.0.1"' ]
	[ "$(json "$base.json" .n)" -eq "$(basename "$base" | sed 's/^0*//')" ]
	[[ $(basename "$base") =~ ^[0-9]{3}$ ]]
}

@test "a message without a final CRLF is saved as curl sends it: with CRLF added" {
	env_of "$PLAIN_DIR"
	printf 'Subject: no final newline\r\n\r\nbody' >"$W/msg.eml"
	run curl_send "$SMTP_URL"
	[ "$status" -eq 0 ]
	eml=$(last_eml "$SMTP_MAILDIR")
	cmp <(printf 'Subject: no final newline\r\n\r\nbody\r\n') "$eml"
}

@test "the plain server offers neither STARTTLS nor AUTH and needs no login" {
	env_of "$PLAIN_DIR"
	make_message "$W/msg.eml"
	run curl_send "$SMTP_URL"
	[ "$status" -eq 0 ]
	[[ $output != *"STARTTLS"* ]]
	[[ $output != *"250-AUTH"* ]]
	run curl_send "$SMTP_URL" --ssl-reqd
	[ "$status" -eq 64 ] # CURLE_USE_SSL_FAILED
	[[ $output == *"STARTTLS not supported"* ]]
}

@test "a rejected recipient gets 550 5.1.1; the other recipients are accepted" {
	env_of "$PLAIN_DIR"
	make_message "$W/msg.eml"
	before=$(n_mail "$SMTP_MAILDIR")
	TO=NoBody@Example.CZ
	run curl_send "$SMTP_URL"
	[ "$status" -eq 55 ]
	[[ $output == *"RCPT failed: 550"* ]]
	[[ $output == *"< 550 5.1.1 mailbox unavailable"* ]]
	[ "$(n_mail "$SMTP_MAILDIR")" -eq "$before" ]
	# with --mail-rcpt-allowfails the good recipient gets it
	run curl_send "$SMTP_URL" --mail-rcpt good@example.cz --mail-rcpt-allowfails
	[ "$status" -eq 0 ]
	eml=$(last_eml "$SMTP_MAILDIR")
	[ "$(json "${eml%.eml}.json" .rcpt_tos)" = '["good@example.cz"]' ]
	# smtplib sees the code and the text
	run "$PY" - "$SMTP_PORT" <<-'EOF'
		import smtplib, sys
		s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
		try:
		    s.sendmail("a@example.cz", ["nobody@example.cz"], b"Subject: x\r\n\r\nx\r\n")
		except smtplib.SMTPRecipientsRefused as e:
		    print(e.recipients)
		s.quit()
	EOF
	[ "$status" -eq 0 ]
	[ "$output" = "{'nobody@example.cz': (550, b'5.1.1 mailbox unavailable')}" ]
}

# ---------------------------------------------------------- STARTTLS + AUTH

@test "curl with STARTTLS and AUTH: delivered, the .json names the user and the TLS" {
	env_of "$TLS_DIR"
	make_message "$W/msg.eml"
	run curl_send "$SMTP_URL" --ssl-reqd --cacert "$SMTP_TLS_CA" --user 'jan.novak:Tajné-heslo1'
	[ "$status" -eq 0 ]
	[[ $output == *"> STARTTLS"* ]]
	[[ $output == *"< 250-AUTH LOGIN PLAIN"* ]]
	[[ $output == *"< 235 2.7.0 Authentication successful"* ]]
	eml=$(last_eml "$SMTP_MAILDIR")
	cmp "$W/msg.eml" "$eml"
	[ "$(json "${eml%.eml}.json" .auth_user)" = '"jan.novak"' ]
	[ "$(json "${eml%.eml}.json" .tls)" = '"starttls"' ]
	[ "$(json "${eml%.eml}.json" .rcpt_tos)" = "[\"$TO\"]" ]
	# AUTH LOGIN too, a password with colons, and the name localhost
	run curl_send "smtp://localhost:$SMTP_PORT" --ssl-reqd --cacert "$SMTP_TLS_CA" \
		--user 'robot:pass:with:colons' --login-options AUTH=LOGIN
	[ "$status" -eq 0 ]
	[[ $output == *"> AUTH LOGIN"* ]]
	eml=$(last_eml "$SMTP_MAILDIR")
	[ "$(json "${eml%.eml}.json" .auth_user)" = '"robot"' ]
}

@test "STARTTLS: the certificate does not verify without the test CA" {
	env_of "$TLS_DIR"
	make_message "$W/msg.eml"
	run curl_send "$SMTP_URL" --ssl-reqd --user 'jan.novak:Tajné-heslo1'
	[ "$status" -eq 60 ] # CURLE_PEER_FAILED_VERIFICATION
}

@test "a wrong password or user gets 535: curl exits 67 (login denied), nothing is saved" {
	env_of "$TLS_DIR"
	make_message "$W/msg.eml"
	before=$(n_mail "$SMTP_MAILDIR")
	run curl_send "$SMTP_URL" --ssl-reqd --cacert "$SMTP_TLS_CA" --user 'jan.novak:wrong'
	[ "$status" -eq 67 ] # CURLE_LOGIN_DENIED
	[[ $output == *"curl: (67) Login denied"* ]]
	[[ $output == *"< 535 5.7.8 Authentication credentials invalid"* ]]
	run curl_send "$SMTP_URL" --ssl-reqd --cacert "$SMTP_TLS_CA" --user 'nobody:Tajné-heslo1' \
		--login-options AUTH=LOGIN
	[ "$status" -eq 67 ]
	[[ $output == *"< 535 5.7.8"* ]]
	[ "$(n_mail "$SMTP_MAILDIR")" -eq "$before" ]
	grep -q "AUTH PLAIN user='jan.novak' failed" "$TLS_DIR/smtp-server.log"
}

@test "with users, MAIL FROM without AUTH gets 530; AUTH is not offered before STARTTLS (538)" {
	env_of "$TLS_DIR"
	make_message "$W/msg.eml"
	before=$(n_mail "$SMTP_MAILDIR")
	# TLS but no login
	run curl_send "$SMTP_URL" --ssl-reqd --cacert "$SMTP_TLS_CA"
	[ "$status" -eq 55 ]
	[[ $output == *"MAIL failed: 530"* ]]
	[[ $output == *"< 530 5.7.0 Authentication required"* ]]
	# no TLS: the EHLO lists no AUTH, curl goes on without and gets 530
	run curl_send "$SMTP_URL" --user 'jan.novak:Tajné-heslo1'
	[ "$status" -eq 55 ]
	[[ $output != *"250-AUTH"* ]]
	[[ $output == *"< 530 5.7.0 Authentication required"* ]]
	[ "$(n_mail "$SMTP_MAILDIR")" -eq "$before" ]
	# and AUTH itself is refused without TLS
	run "$PY" - "$SMTP_PORT" <<-'EOF'
		import smtplib, sys
		s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
		s.ehlo()
		print(s.docmd("AUTH", "PLAIN AGphbi5ub3ZhawBUYWpuw6ktaGVzbG8x"))
		s.quit()
	EOF
	[ "$status" -eq 0 ]
	[[ $output == "(538, b'5.7.11 Encryption required"* ]]
}

# (smtplib encodes user and password as ASCII: the robot logs in there)
@test "smtplib: STARTTLS with hostname verification, AUTH PLAIN and LOGIN, bytes kept" {
	env_of "$TLS_DIR"
	make_message "$W/msg.eml"
	run "$PY" - "$SMTP_PORT" "$SMTP_TLS_CA" "$W/msg.eml" "$FROM" "$TO" <<-'EOF'
		import smtplib, ssl, sys
		port, ca, msg, frm, to = sys.argv[1:]
		data = open(msg, "rb").read()
		for mech in ("PLAIN", "LOGIN"):
		    ctx = ssl.create_default_context(cafile=ca)  # verifies "localhost"
		    s = smtplib.SMTP("localhost", int(port), timeout=10)
		    s.starttls(context=ctx)
		    s.ehlo()
		    s.user, s.password = "robot", "pass:with:colons"
		    print(mech, s.auth(mech, getattr(s, "auth_" + mech.lower())))
		    print(s.sendmail(frm, [to], data))
		    s.quit()
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "PLAIN (235, b'2.7.0 Authentication successful')" ]
	[ "${lines[1]}" = "{}" ]
	[ "${lines[2]}" = "LOGIN (235, b'2.7.0 Authentication successful')" ]
	all=("$SMTP_MAILDIR"/*.eml)
	for eml in "${all[@]: -2}"; do
		cmp "$W/msg.eml" "$eml"
		[ "$(json "${eml%.eml}.json" .auth_user)" = '"robot"' ]
		[ "$(json "${eml%.eml}.json" .tls)" = '"starttls"' ]
	done
}

@test "an S/MIME signed message survives the trip and still verifies; bare-LF lines over 1000 octets get 500" {
	env_of "$TLS_DIR"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$W/k.pem" -out "$W/c.pem" -days 2 -subj "/CN=Jan Novak" \
		-addext "subjectAltName=email:$FROM" 2>/dev/null
	printf 'Content-Type: text/plain\r\n\r\nrenewal request\r\n.\r\n' >"$W/body"
	openssl cms -sign -signer "$W/c.pem" -inkey "$W/k.pem" -in "$W/body" \
		-crlfeol -out "$W/signed"
	{ printf 'From: <%s>\r\nTo: <%s>\r\nSubject: renewal\r\n' "$FROM" "$TO"; cat "$W/signed"; } >"$W/msg.eml"
	# OpenSSL 3.0's -crlfeol leaves bare LFs in the base64 signature: to SMTP
	# that is one line of over 1000 octets, which aiosmtpd refuses (RFC 5321
	# 4.5.3.1.6) after the final dot
	[ "$(grep -c $'[^\r]$' "$W/msg.eml")" -gt 15 ] # lines ending in a bare LF
	run curl_send "$SMTP_URL" --ssl-reqd --cacert "$SMTP_TLS_CA" --user 'jan.novak:Tajné-heslo1'
	[ "$status" -eq 8 ] # CURLE_WEIRD_SERVER_REPLY
	[[ $output == *"< 500 Line too long"* ]]
	# with CRLF everywhere, as psrenew must send it
	sed -i -e 's/\r$//' -e 's/$/\r/' "$W/msg.eml"
	run curl_send "$SMTP_URL" --ssl-reqd --cacert "$SMTP_TLS_CA" --user 'jan.novak:Tajné-heslo1'
	[ "$status" -eq 0 ]
	eml=$(last_eml "$SMTP_MAILDIR")
	cmp "$W/msg.eml" "$eml"
	run openssl cms -verify -in "$eml" -CAfile "$W/c.pem" -purpose any -out "$W/got"
	[ "$status" -eq 0 ]
	cmp "$W/body" "$W/got"
}

# -------------------------------------------------------------------- SMTPS

@test "curl and smtplib over SMTPS (implicit TLS) with AUTH" {
	env_of "$SMTPS_DIR"
	[ "$SMTP_URL" = "smtps://127.0.0.1:$SMTP_PORT" ]
	make_message "$W/msg.eml"
	run curl_send "$SMTP_URL" --cacert "$SMTP_TLS_CA" --user 'jan.novak:Tajné-heslo1'
	[ "$status" -eq 0 ]
	[[ $output != *"STARTTLS"* ]]
	eml=$(last_eml "$SMTP_MAILDIR")
	cmp "$W/msg.eml" "$eml"
	[ "$(json "${eml%.eml}.json" .tls)" = '"smtps"' ]
	[ "$(json "${eml%.eml}.json" .auth_user)" = '"jan.novak"' ]
	# wrong password: 535 here too
	run curl_send "$SMTP_URL" --cacert "$SMTP_TLS_CA" --user 'jan.novak:wrong'
	[ "$status" -eq 67 ]
	# plain SMTP on the SMTPS port does not work
	run curl_send "smtp://127.0.0.1:$SMTP_PORT" --max-time 2
	[ "$status" -ne 0 ]
	run "$PY" - "$SMTP_PORT" "$SMTP_TLS_CA" "$W/msg.eml" <<-'EOF'
		import smtplib, ssl, sys
		port, ca, msg = sys.argv[1:]
		ctx = ssl.create_default_context(cafile=ca)
		with smtplib.SMTP_SSL("localhost", int(port), context=ctx, timeout=10) as s:
		    s.login("robot", "pass:with:colons")
		    print(s.sendmail("a@example.cz", ["b@example.cz"], open(msg, "rb").read()))
	EOF
	[ "$status" -eq 0 ]
	[ "$output" = "{}" ]
	eml=$(last_eml "$SMTP_MAILDIR")
	cmp "$W/msg.eml" "$eml"
	[ "$(json "${eml%.eml}.json" .rcpt_tos)" = '["b@example.cz"]' ]
}

# ------------------------------------------------- servers of one test each

@test "--tempfail: every MAIL FROM gets 451 4.3.0, nothing is saved" {
	start_own tempfail --tempfail
	make_message "$W/msg.eml"
	run curl_send "$SMTP_URL"
	[ "$status" -eq 55 ]
	[[ $output == *"MAIL failed: 451"* ]]
	[[ $output == *"< 451 4.3.0 try again later"* ]]
	run "$PY" - "$SMTP_PORT" <<-'EOF'
		import smtplib, sys
		s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
		try:
		    s.sendmail("a@example.cz", ["b@example.cz"], b"Subject: x\r\n\r\nx\r\n")
		except smtplib.SMTPSenderRefused as e:
		    print(e.smtp_code, e.smtp_error)
	EOF
	[ "$output" = "451 b'4.3.0 try again later'" ]
	[ "$(n_mail "$SMTP_MAILDIR")" -eq 0 ]
}

@test "--max-size: a larger message gets 552 (at MAIL FROM with SIZE=, else after DATA)" {
	start_own small --max-size 200
	head -c 300 /dev/zero | tr '\0' x >"$W/body"
	{ printf 'Subject: big\r\n\r\n'; cat "$W/body"; printf '\r\n'; } >"$W/msg.eml"
	run curl_send "$SMTP_URL"
	[ "$status" -eq 55 ]
	[[ $output == *"< 250-SIZE 200"* ]]
	[[ $output == *"< 552 "* ]]
	run "$PY" - "$SMTP_PORT" "$W/msg.eml" <<-'EOF'
		import smtplib, sys
		s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
		s.ehlo()
		print(s.mail("a@example.cz")[0], s.rcpt("b@example.cz")[0])
		print(s.data(open(sys.argv[2], "rb").read()))
	EOF
	[ "${lines[0]}" = "250 250" ]
	[ "${lines[1]}" = "(552, b'Error: Too much mail data')" ]
	[ "$(n_mail "$SMTP_MAILDIR")" -eq 0 ]
	# a small one passes
	printf 'Subject: small\r\n\r\nok\r\n' >"$W/msg.eml"
	run curl_send "$SMTP_URL"
	[ "$status" -eq 0 ]
	[ "$(n_mail "$SMTP_MAILDIR")" -eq 1 ]
}

@test "--allow-plain-auth: AUTH over plain SMTP; --require-starttls: 530 before STARTTLS" {
	start_own plainauth --user u:p --allow-plain-auth
	make_message "$W/msg.eml"
	run curl_send "$SMTP_URL" --user u:p
	[ "$status" -eq 0 ]
	[[ $output == *"< 250-AUTH LOGIN PLAIN"* ]]
	[ "$(json "$SMTP_MAILDIR/001.json" .auth_user)" = '"u"' ]
	[ "$(json "$SMTP_MAILDIR/001.json" .tls)" = null ]
	cmp "$W/msg.eml" "$SMTP_MAILDIR/001.eml"
	run curl_send "$SMTP_URL"
	[ "$status" -eq 55 ]
	[[ $output == *"< 530 5.7.0 Authentication required"* ]]

	start_own mustls --tls --require-starttls
	run curl_send "$SMTP_URL"
	[ "$status" -eq 55 ]
	[[ $output == *"< 530 Must issue a STARTTLS command first"* ]]
	run curl_send "$SMTP_URL" --ssl-reqd --cacert "$SMTP_TLS_CA"
	[ "$status" -eq 0 ]
	[ "$(json "$SMTP_MAILDIR/001.json" .tls)" = '"starttls"' ]
}

@test "a stopped server refuses connections and leaves no process, pid or ready file" {
	start_own stopme
	make_message "$W/msg.eml"
	run curl_send "$SMTP_URL"
	[ "$status" -eq 0 ]
	pid=$(cat "$SMTP_STATE/smtp-server.pid")
	run "$SMTP/smtp-stop" "$SMTP_STATE"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	! kill -0 "$pid" 2>/dev/null || [ -z "$(tr -d '\0' <"/proc/$pid/cmdline" 2>/dev/null)" ]
	[ ! -e "$SMTP_STATE/smtp-server.pid" ]
	[ ! -e "$SMTP_STATE/ready" ]
	no_servers_under "$SMTP_STATE"
	run curl_send "$SMTP_URL"
	[ "$status" -eq 7 ] # CURLE_COULDNT_CONNECT
	[[ $output == *"Connection refused"* ]]
	run "$PY" -c 'import smtplib, sys
try:
    smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=5)
except ConnectionRefusedError as e:
    print("refused")' "$SMTP_PORT"
	[ "$output" = refused ]
	# the mail and the log stay
	[ -s "$SMTP_MAILDIR/001.eml" ]
	grep -q stopping "$SMTP_STATE/smtp-server.log"
	# stopping again is fine
	run "$SMTP/smtp-stop" "$SMTP_STATE"
	[ "$status" -eq 0 ]
}

@test "smtp-start refuses a second server in the same directory; a restart goes on numbering" {
	start_own again
	make_message "$W/msg.eml"
	run curl_send "$SMTP_URL"
	[ "$status" -eq 0 ]
	run "$SMTP/smtp-start" "$SMTP_STATE"
	[ "$status" -eq 1 ]
	[[ $output == *"a server runs there already"* ]]
	"$SMTP/smtp-stop" "$SMTP_STATE"
	ca=$(sha1sum <"$SMTP_STATE/tls-ca.crt")
	start_own again
	[ "$(sha1sum <"$SMTP_STATE/tls-ca.crt")" = "$ca" ] # certificates kept
	run curl_send "$SMTP_URL"
	[ "$status" -eq 0 ]
	[ -s "$SMTP_MAILDIR/001.eml" ]
	[ -s "$SMTP_MAILDIR/002.eml" ]
	[ "$(json "$SMTP_MAILDIR/002.json" .n)" -eq 2 ]
}

@test "smtp-stop also stops a server whose pid file was lost" {
	start_own lost
	pid=$(cat "$SMTP_STATE/smtp-server.pid")
	rm "$SMTP_STATE/smtp-server.pid"
	run "$SMTP/smtp-stop" "$SMTP_STATE"
	[ "$status" -eq 0 ]
	no_servers_under "$SMTP_STATE"
	run curl -sS --max-time 5 --url "$SMTP_URL" -X NOOP
	[ "$status" -eq 7 ]
}

@test "smtp-start fails cleanly: bad options, a port in use" {
	run "$SMTP/smtp-start" "$BATS_TEST_TMPDIR/srv-bad" --tls-cert /nonexistent
	[ "$status" -eq 1 ]
	[[ $output == *"smtp-server.py exited"* ]]
	[[ $output == *"--tls-cert and --tls-key go together"* ]]
	no_servers_under "$BATS_TEST_TMPDIR"
	env_of "$PLAIN_DIR"
	run "$SMTP/smtp-start" "$BATS_TEST_TMPDIR/srv-busy" --port "$SMTP_PORT"
	[ "$status" -eq 1 ]
	[[ $output == *"cannot listen on 127.0.0.1:$SMTP_PORT"* ]]
	no_servers_under "$BATS_TEST_TMPDIR"
	run "$SMTP/smtp-start" "$BATS_TEST_TMPDIR/srv-bad2" --user nocolon
	[ "$status" -eq 1 ]
	[[ $output == *"not USER:PASSWORD"* ]]
}

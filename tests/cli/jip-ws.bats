#!/usr/bin/env bats
# ps-jip-setserial over the JIP/KAAS and CAAIS editing web service ([jip]
# backend = ws) against the local test service (tests/jip-ws, behind nginx).

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup_file() {
	export BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR
	PKI=$(pki_dir)
	eval "$("$FIXTURE_ROOT/tests/jip-ws/ws-start" "$BATS_FILE_TMPDIR/ws" "$PKI")"
	export JIPWS_URL JIPWS_TLS_CA PKI
}

teardown_file() {
	"$FIXTURE_ROOT/tests/jip-ws/ws-stop" "$BATS_FILE_TMPDIR/ws"
}

OTHER='{"type": "V", "number": "1234ABCD", "issuer": "CN=Jiná CA, O=Někdo, C=CZ"}'

setup() {
	psrenew_setup
	demo_token
	WS=$BATS_FILE_TMPDIR/ws
	: >"$WS/log"
	rm -f "$WS/mode.json"
	(umask 077 && printf 'Admin-456' >"$BATS_TEST_TMPDIR/apw")
	COMM_SERIAL=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem")
	ISSUER=$(openssl x509 -noout -issuer -nameopt RFC2253,-esc_msb -in "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem" |
		sed 's/^issuer=//; s/,\([A-Za-z]\)/, \1/g')
	COMM_NUM=$(sed 's/^0*//' <<<"$COMM_SERIAL")
	users "[$OTHER]"
	conf 1.0 "$JIPWS_URL/spravadat/ws/call/MV/"
}

# users JNOVAK_CERTS_JSON [MORE_USERS_JSON]: writes the service's data.json
users() {
	cat >"$WS/data.json" <<EOF_DATA
{"subjects": ["MV"], "admins": {"admin": "Admin-456"}, "users": {
 "jnovak": {"certs": $1, "cas": 1700000000}
 ${2:-}
}}
EOF_DATA
}

entry() { # entry TYPE NUMBER ISSUER: one clientCertificate item as JSON
	jq -nc --arg t "$1" --arg n "$2" --arg i "$3" '{type: $t, number: $n, issuer: $i}'
}

# mode JSON: the service's fault switches (mode.json)
mode() {
	printf '%s\n' "$1" >"$WS/mode.json"
}

# conf VERSION URL [MORE LINES]: psrenew.conf with [jip] backend = ws
conf() {
	(umask 077 && printf '[jip]\nbackend = ws\nws-version = %s\nws-url = %s\nca-bundle = %s\n%s' \
		"$1" "$2" "$JIPWS_TLS_CA" "${3:-}" >"$BATS_TEST_TMPDIR/psrenew.conf")
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/psrenew.conf
}

setserial() {
	run --separate-stderr ps-jip-setserial "$@"
}

admin() {
	setserial --user admin --password "file:$BATS_TEST_TMPDIR/apw" "$@"
}

certs_of() { # certs_of LOGIN: "TYPE NUMBER ISSUER" lines of the service's data
	jq -r --arg u "$1" '.users[$u].certs[] | "\(.type) \(.number) \(.issuer)"' "$WS/data.json"
}

logged() { # logged METHOD: how many METHOD requests the service saw
	jq -r .method "$WS/log" | grep -c "^$1\$" || true
}

# renew_all: renewals of the demo token's two expiring certificates
# issued and waiting for ps-fetch --pending
renew_all() {
	mkdir -p "$BATS_TEST_TMPDIR/ca"
	ln -sfn "$PKI" "$BATS_TEST_TMPDIR/ca/pki"
	echo pki >"$BATS_TEST_TMPDIR/ca/answers"
	PSRENEW_CONFIG=/dev/null ps-status --module "$PKCS11_MODULE" --expiring 30 --json 2>/dev/null |
		PSRENEW_CONFIG=/dev/null ps-renew --pin "file:$PIN_FILE" \
			--ca "helper:$SCRIPTED_HELPER $BATS_TEST_TMPDIR/ca" >/dev/null 2>&1 || true
}

@test "ps-fetch --pending | ps-jip-setserial over WS 1.0 registers both, keeps the others; ps-token-clean trusts it" {
	users "[$OTHER, $(entry V "$COMM_SERIAL" "$ISSUER")]"
	renew_all
	run bash -c "PSRENEW_CONFIG=/dev/null ps-fetch --module '$PKCS11_MODULE' --pin 'file:$PIN_FILE' --pending 2>/dev/null |
		ps-jip-setserial --user admin --password 'file:$BATS_TEST_TMPDIR/apw' --for jnovak 2>/dev/null"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output" | sort | uniq -c | awk '{print $1, $2}')" = "2 set" ]
	# the user's other certificates are still there, and both new ones
	[ "$(certs_of jnovak | wc -l)" -eq 4 ]
	certs_of jnovak | grep -Fqx 'V 1234ABCD CN=Jiná CA, O=Někdo, C=CZ'
	certs_of jnovak | grep -Fqx "V $COMM_SERIAL $ISSUER"
	[ "$(certs_of jnovak | grep -c '^Q ')" -eq 1 ]
	# every request valid against the schema, over one connection
	[ "$(jq -r .valid "$WS/log" | sort -u)" = true ]
	[ "$(jq -r .conn "$WS/log" | sort -u | wc -l)" -eq 1 ]
	[ "$(logged UpdateUser)" -eq 2 ]
	# each UpdateUser carried the whole list (3 then 4 entries)
	[ "$(jq -r 'select(.method == "UpdateUser") | .body' "$WS/log" | grep -o '<item>' | wc -l)" -eq 7 ]
	# ps-token-clean accepts the JIP rule for the old commercial certificate
	PSRENEW_CONFIG=/dev/null run --separate-stderr ps-token-clean --module "$PKCS11_MODULE" \
		--pin "file:$PIN_FILE" --superseded --yes
	[ "$status" -eq 0 ]
	[ "$(jq -r 'select(.label == "commercial-expiring" and .class == "cert") | "\(.kind) \(.jip_confirmation)"' \
		<<<"$output")" = "removed state" ]
}

@test "an equal entry in another form (decimal number, spaced DN in X.500 order) is already-set" {
	dec=$(python3 -c "print(int('$COMM_SERIAL', 16))")
	x500=$(python3 -c 'import re, sys
print(" ,  ".join(reversed(re.split(r"(?<!\\),\s*", sys.argv[1]))).replace("CN=", "cn=").replace("PostSignum", "POSTSIGNUM"))' "$ISSUER")
	users "[$OTHER, $(entry V "$dec" "$x500")]"
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output")" = already-set ]
	[ "$(logged UpdateUser)" -eq 0 ]
	[ "$(certs_of jnovak | wc -l)" -eq 2 ]
	[ -f "$PSRENEW_STATE_DIR/jip/$COMM_SERIAL.json" ]
}

@test "a wrong password is exit 5; nothing changed" {
	(umask 077 && printf 'spatne' >"$BATS_TEST_TMPDIR/bad")
	setserial --user admin --password "file:$BATS_TEST_TMPDIR/bad" --for jnovak \
		--cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output")" = jip-login ]
	[ "$(certs_of jnovak)" = 'V 1234ABCD CN=Jiná CA, O=Někdo, C=CZ' ]
	[ ! -e "$PSRENEW_STATE_DIR/jip/$COMM_SERIAL.json" ]
}

@test "an ErrorResponse with HTTP 200 is a refusal (exit 5), with HTTP 500 temporary (exit 4)" {
	mode '{"error": {"status": 200, "code": "CSAV-0001", "message": "Uživatel nemá právo", "method": "GetUser"}}'
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output")" = jip-ws-refused ]
	[[ "$(jfield message <<<"$output")" == *CSAV-0001* ]]
	mode '{"error": {"status": 500, "code": "CLDP-0000", "message": "Jiná chyba", "method": "UpdateUser"}}'
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 4 ]
	[ "$(jfield code <<<"$output")" = jip-ws-unavailable ]
	[ "$(logged UpdateUser)" -eq 1 ]
	[ "$(certs_of jnovak)" = 'V 1234ABCD CN=Jiná CA, O=Někdo, C=CZ' ]
	[ ! -e "$PSRENEW_STATE_DIR/jip/$COMM_SERIAL.json" ]
	# an ErrorResponse of validation is a failure (exit 1)
	mode '{"error": {"status": 200, "code": "SREN-3070", "message": "Nelze zpracovat", "method": "UpdateUser"}}'
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output")" = jip-ws-error ]
}

@test "the service down is exit 4; nothing registered" {
	mode '{"down": true}'
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 4 ]
	[ "$(jfield code <<<"$output")" = jip-unavailable ]
	conf 1.0 "https://127.0.0.1:1/spravadat/ws/call/MV/"
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 4 ]
	[ ! -e "$PSRENEW_STATE_DIR/jip/$COMM_SERIAL.json" ]
}

@test "a change between the read and the write is noticed: read again, the other change is kept" {
	mode '{"change_after_reads": 1}'
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output")" = set ]
	# the certificate someone else added after the first read survives
	certs_of jnovak | grep -q '^V 77AB CN=Jina CA'
	certs_of jnovak | grep -Fqx "V $COMM_NUM $ISSUER"
	[ "$(certs_of jnovak | wc -l)" -eq 3 ]
}

@test "a user that keeps changing: exit 4 after a bounded number of rounds, nothing written" {
	mode '{"change_after_reads": 1000}'
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 4 ]
	[ "$(jfield code <<<"$output")" = jip-ws-conflict ]
	[ "$(logged UpdateUser)" -eq 0 ]
	[ "$(logged GetUser)" -eq 6 ]
	! certs_of jnovak | grep -q "$COMM_NUM"
	[ ! -e "$PSRENEW_STATE_DIR/jip/$COMM_SERIAL.json" ]
}

@test "an update accepted but not visible afterwards is exit 1, no confirmation" {
	mode '{"lose_updates": true}'
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output")" = jip-ws-not-visible ]
	[ "$(logged UpdateUser)" -eq 1 ]
	[ ! -e "$PSRENEW_STATE_DIR/jip/$COMM_SERIAL.json" ]
}

@test "the password never shows in argv, child environments, stderr, records or the state store" {
	(umask 077 && printf 'Velmi-Tajne-Heslo-9' >"$BATS_TEST_TMPDIR/pw2")
	jq '.admins.tajny = "Velmi-Tajne-Heslo-9"' "$WS/data.json" >"$WS/d.json" && mv "$WS/d.json" "$WS/data.json"
	ps-jip-setserial --user tajny --password "file:$BATS_TEST_TMPDIR/pw2" --for jnovak \
		--cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
	[ "$(jfield result <"$BATS_TEST_TMPDIR/out")" = set ]
	! grep -q Velmi-Tajne "$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/err"
	! grep -rq Velmi-Tajne "$PSRENEW_STATE_DIR"
	! grep -q Velmi-Tajne "$WS/log"
	# argv and environment of the process, while it waits on the service
	mode '{"slow": 1}'
	ps-jip-setserial --user tajny --password "file:$BATS_TEST_TMPDIR/pw2" --for jnovak \
		--cert "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem" >"$BATS_TEST_TMPDIR/out2" 2>&1 &
	pid=$!
	sleep 0.5
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
	environ=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null || true)
	wait $pid
	[ -n "$cmdline" ]
	[[ "$cmdline" != *Velmi-Tajne* && "$environ" != *Velmi-Tajne* ]]
	! grep -q Velmi-Tajne "$BATS_TEST_TMPDIR/out2"
}

@test "CAAIS (no trailing slash): a qualified certificate is skipped with a message, commercial registered" {
	conf 1.0 "$JIPWS_URL/spravadat/ws/call/MV"
	mode '{"caais": true}'
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output")" = skipped ]
	[[ "$stderr" == *"CAAIS keeps only commercial"* ]]
	[ "$(logged UpdateUser)" -eq 0 ]
	[ "$(logged GetUser)" -eq 0 ]
	QUAL_SERIAL=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")
	[ ! -e "$PSRENEW_STATE_DIR/jip/$QUAL_SERIAL.json" ]
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output")" = set ]
	# the same qualified certificate for JIP (trailing slash) is sent: the
	# CAAIS-mode service refuses it, which is what the skip avoids
	conf 1.0 "$JIPWS_URL/spravadat/ws/call/MV/"
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem"
	[ "$status" -eq 1 ]
	[[ "$(jfield message <<<"$output")" == *SREN-3070* ]]
}

@test "WS 1.1: TLS client authentication with the key on the token" {
	conf 1.1 "$JIPWS_URL/spravadat/ws-edit/1/call/MV"
	setserial --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --token "$TOKEN_URI" \
		--login-cert "$COMM_ID" --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output")" = set ]
	[ "$(jq -r .version "$WS/log" | sort -u)" = 1.1 ]
	[ "$(jq -r .auth "$WS/log" | sort -u)" = "cert:$COMM_SERIAL" ]
	grep -q 'WS-LA-1.1' "$WS/log"
	certs_of jnovak | grep -Fqx "V $COMM_NUM $ISSUER"
	# without a client certificate the 1.1 endpoint refuses (nginx: 403)
	conf 1.0 "$JIPWS_URL/spravadat/ws-edit/1/call/MV"
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output")" = jip-forbidden ]
}

@test "200 users in one run over one connection" {
	more=""
	for i in $(seq -w 1 200); do
		more+=", \"u$i\": {\"certs\": [$OTHER], \"cas\": 1}"
	done
	users '[]' "$more"
	for i in $(seq -w 1 200); do
		jq -nc --arg u "u$i" --arg s "$(printf '%032X' "$((10#$i + 4096))")" --arg i "$ISSUER" \
			'{kind: "cert", user: $u, serial_hex: $s, type: "commercial", issuer: $i}'
	done >"$BATS_TEST_TMPDIR/batch.jsonl"
	admin <"$BATS_TEST_TMPDIR/batch.jsonl"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output" | grep -c '^set$')" -eq 200 ]
	[ "$(jq -r .conn "$WS/log" | sort -u | wc -l)" -eq 1 ]
	[ "$(jq -r .valid "$WS/log" | sort -u)" = true ]
	[ "$(certs_of u137 | wc -l)" -eq 2 ]
	certs_of u137 | grep -Fqx "V $(printf '%X' $((137 + 4096))) $ISSUER"
}



@test "the test service: bodies off the schema are refused, CreateUser refuses Q in CAAIS mode" {
	post() { # post PATH BODY: the HTTP status and the answer
		curl -s -w '\n%{http_code}' --cacert "$JIPWS_TLS_CA" -u admin:Admin-456 \
			-H 'Content-Type: text/xml' --data-raw "$2" "$JIPWS_URL$1"
	}
	ns=http://userportal.novell.com/ws/WS-LA-1.0
	out=$(post /spravadat/ws/call/MV/ "<UpdateUserRequest xmlns=\"$ns\" object-id=\"jnovak\"><clientCertificate><item><type>X</type><number>0A</number><issuer>CN=x</issuer></item></clientCertificate></UpdateUserRequest>")
	[[ "$out" == *CVAL-0010*400 ]]
	[ "$(jq -r .valid "$WS/log")" = false ]
	mode '{"caais": true}'
	out=$(post /spravadat/ws/call/MV "<CreateUserRequest xmlns=\"$ns\" object-id=\"pnova\"><clientCertificate><item><type>Q</type><number>0A</number><issuer>CN=x</issuer></item></clientCertificate></CreateUserRequest>")
	[[ "$out" == *SREN-3070*200 ]]
	[ "$(jq -r '.users.pnova' "$WS/data.json")" = null ]
	out=$(post /spravadat/ws/call/MV "<CreateUserRequest xmlns=\"$ns\" object-id=\"pnova\"><clientCertificate><item><type>V</type><number>0A</number><issuer>CN=x</issuer></item></clientCertificate></CreateUserRequest>")
	[[ "$out" == *'<CreateUserResponse object-id="pnova"'*200 ]]
	# the whole set: an update with one certificate leaves one
	out=$(post /spravadat/ws/call/MV/ "<UpdateUserRequest xmlns=\"$ns\" object-id=\"jnovak\"><clientCertificate><item><type>V</type><number>0B</number><issuer>CN=y</issuer></item></clientCertificate></UpdateUserRequest>")
	[ "$(certs_of jnovak)" = "V 0B CN=y" ]
	# WS 1.1 without a client certificate: nginx refuses
	out=$(post /spravadat/ws-edit/1/call/MV "<GetUserRequest xmlns=\"${ns%1.0}1.1\" object-id=\"jnovak\"/>")
	[[ "$out" == *403 ]]
}

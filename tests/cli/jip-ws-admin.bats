#!/usr/bin/env bats
# ps-jip-setserial for the local administrator over the editing web service:
# the options on the command line (--backend, --jip-ws, --ws-version,
# --client-cert/--client-key), --remove-superseded, --list, the tables of
# --human, and a bulk run on a terminal over one connection.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

setup_file() {
	export BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR
	PKI=$(pki_dir)
	eval "$("$FIXTURE_ROOT/tests/jip-ws/ws-start" "$BATS_FILE_TMPDIR/ws" "$PKI")"
	start_jip "$BATS_FILE_TMPDIR/portal" "$PKI" || return 1
	export JIPWS_URL JIPWS_TLS_CA PKI
}

teardown_file() {
	"$FIXTURE_ROOT/tests/jip-ws/ws-stop" "$BATS_FILE_TMPDIR/ws"
	stop_servers
}

OTHER='{"type": "V", "number": "1234ABCD", "issuer": "CN=Jiná CA, O=Někdo, C=CZ"}'

setup() {
	psrenew_setup
	demo_token
	WS=$BATS_FILE_TMPDIR/ws
	: >"$WS/log"
	: >"$WS/nginx/access.log"
	rm -f "$WS/mode.json"
	(umask 077 && printf 'Admin-456' >"$BATS_TEST_TMPDIR/apw")
	COMM_SERIAL=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem")
	QUAL_SERIAL=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")
	EXP_SERIAL=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$EXPIRED_ID.pem")
	ISSUER=$(issuer_of "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem")
	QISSUER=$(issuer_of "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")
	WS10=$JIPWS_URL/spravadat/ws/call/MV/
	WS11=$JIPWS_URL/spravadat/ws-edit/1/call/MV
	users "[$OTHER]"
	# only the trust of the test service: everything else on the command line
	(umask 077 && printf '[jip]\nca-bundle = %s\n' "$JIPWS_TLS_CA" >"$BATS_TEST_TMPDIR/psrenew.conf")
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/psrenew.conf
}

issuer_of() { # issuer_of PEM: the issuer as the documentation writes it
	openssl x509 -noout -issuer -nameopt RFC2253,-esc_msb -in "$1" |
		sed 's/^issuer=//; s/,\([A-Za-z]\)/, \1/g'
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

mode() { printf '%s\n' "$1" >"$WS/mode.json"; }

setserial() { run --separate-stderr ps-jip-setserial "$@"; }

admin() { # admin ARGS: over WS 1.0 as the local administrator
	setserial --jip-ws "$WS10" --user admin --password "file:$BATS_TEST_TMPDIR/apw" "$@"
}

certs_of() { # certs_of LOGIN: "TYPE NUMBER ISSUER" lines of the service's data
	jq -r --arg u "$1" '.users[$u].certs[] | "\(.type) \(.number) \(.issuer)"' "$WS/data.json"
}

logged() { # logged METHOD: how many METHOD requests the service saw
	jq -r .method "$WS/log" | grep -c "^$1\$" || true
}

# renew_all: renewals of the demo token's two expiring certificates issued,
# then installed by ps-fetch --pending, whose cert records go to fetched.jsonl
renew_all() {
	mkdir -p "$BATS_TEST_TMPDIR/ca"
	ln -sfn "$PKI" "$BATS_TEST_TMPDIR/ca/pki"
	echo pki >"$BATS_TEST_TMPDIR/ca/answers"
	PSRENEW_CONFIG=/dev/null ps-status --module "$PKCS11_MODULE" --expiring 30 --json 2>/dev/null |
		PSRENEW_CONFIG=/dev/null ps-renew --pin "file:$PIN_FILE" \
			--ca "helper:$SCRIPTED_HELPER $BATS_TEST_TMPDIR/ca" >/dev/null 2>&1 || true
	PSRENEW_CONFIG=/dev/null ps-fetch --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --pending \
		--json >"$BATS_TEST_TMPDIR/fetched.jsonl" 2>/dev/null || true
	NEW_COMM=$(jq -r 'select(.kind == "cert" and .type == "commercial") | .serial_hex' "$BATS_TEST_TMPDIR/fetched.jsonl")
	NEW_QUAL=$(jq -r 'select(.kind == "cert" and .type == "qualified") | .serial_hex' "$BATS_TEST_TMPDIR/fetched.jsonl")
	[ -n "$NEW_COMM" ] && [ -n "$NEW_QUAL" ]
}

# client_files DIR: a commercial certificate of the test PKI and its
# software key (mode 600), as an administrator's system certificate
client_files() {
	mkdir -p "$1"
	(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1/key.pem" 2>/dev/null)
	openssl pkey -in "$1/key.pem" -pubout -out "$1/pub.pem"
	"$FIXTURE_ROOT/tests/pki/mkpki" issue "$PKI" commercial "$1/pub.pem" "$1/cert.pem" -1d +30d \
		'/C=CZ/O=Ministerstvo vnitra/CN=Systém MV' >/dev/null 2>&1
	cert_serial_hex "$1/cert.pem"
}

@test "--jip-ws and --ws-version on the command line, no backend in psrenew.conf; bad values are exit 2" {
	admin --ws-version 1.0 --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output")" = set ]
	certs_of jnovak | grep -Fqx "V ${COMM_SERIAL#0} $ISSUER"
	[ "$(jq -r .version "$WS/log" | sort -u)" = 1.0 ]
	# --backend ws with --jip-url names the service too
	: >"$WS/log"
	setserial --backend ws --jip-url "$WS10" --user admin --password "file:$BATS_TEST_TMPDIR/apw" \
		--for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output")" = already-set ]
	[ "$(logged GetUser)" -eq 1 ]
	# --backend html wins over backend = ws in psrenew.conf: the web form
	printf 'backend = ws\nws-url = %s\n' "$WS10" >>"$PSRENEW_CONFIG"
	: >"$WS/log"
	setserial --backend html --jip-url "$JIP_URL" --profile "$FIXTURE_ROOT/tests/jip/profile-test.json" \
		--user admin --password "file:$BATS_TEST_TMPDIR/apw" --for jnovak \
		--cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem" --ca-bundle "$JIP_TLS_CA"
	[ ! -s "$WS/log" ]
	for bad in "--backend soap" "--ws-version 2.0" "--backend html --remove-superseded" "--jip-ws $WS10 --backend html"; do
		# shellcheck disable=SC2086
		setserial $bad --user admin --password "file:$BATS_TEST_TMPDIR/apw" --for jnovak \
			--cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
		[ "$status" -eq 2 ] || { echo "$bad: $status"; false; }
	done
	[ ! -s "$WS/log" ]
}

@test "WS 1.1 with --client-cert and --client-key files; an unsafe or wrong key is exit 2, sends nothing" {
	serial=$(client_files "$BATS_TEST_TMPDIR/sys")
	setserial --jip-ws "$WS11" --ws-version 1.1 --client-cert "$BATS_TEST_TMPDIR/sys/cert.pem" \
		--client-key "$BATS_TEST_TMPDIR/sys/key.pem" --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output")" = set ]
	[ "$(jq -r .auth "$WS/log" | sort -u)" = "cert:$serial" ]
	[ "$(jq -r .version "$WS/log" | sort -u)" = 1.1 ]
	certs_of jnovak | grep -Fqx "V ${COMM_SERIAL#0} $ISSUER"
	: >"$WS/log"
	# a key others may read is refused as other secret files are
	chmod 644 "$BATS_TEST_TMPDIR/sys/key.pem"
	setserial --jip-ws "$WS11" --ws-version 1.1 --client-cert "$BATS_TEST_TMPDIR/sys/cert.pem" \
		--client-key "$BATS_TEST_TMPDIR/sys/key.pem" --for jnovak --serial 0A --type commercial --ca "$ISSUER"
	[ "$status" -eq 2 ]
	[ "$(jfield code <<<"$output")" = secret-unsafe ]
	chmod 600 "$BATS_TEST_TMPDIR/sys/key.pem"
	# an encrypted key: its passphrase from a source, never from argv
	(umask 077 && printf 'Tajna-Fraze-7\n' >"$BATS_TEST_TMPDIR/sys/pp")
	(umask 077 && openssl pkey -in "$BATS_TEST_TMPDIR/sys/key.pem" -aes256 \
		-passout "file:$BATS_TEST_TMPDIR/sys/pp" -out "$BATS_TEST_TMPDIR/sys/enc.pem")
	setserial --jip-ws "$WS11" --ws-version 1.1 --client-cert "$BATS_TEST_TMPDIR/sys/cert.pem" \
		--client-key "$BATS_TEST_TMPDIR/sys/enc.pem" --client-key-password pass:Tajna-Fraze-7 \
		--for jnovak --serial 0A --type commercial --ca "$ISSUER"
	[ "$status" -eq 2 ]
	(umask 077 && printf 'spatne\n' >"$BATS_TEST_TMPDIR/sys/bad")
	setserial --jip-ws "$WS11" --ws-version 1.1 --client-cert "$BATS_TEST_TMPDIR/sys/cert.pem" \
		--client-key "$BATS_TEST_TMPDIR/sys/enc.pem" --client-key-password "file:$BATS_TEST_TMPDIR/sys/bad" \
		--for jnovak --serial 0A --type commercial --ca "$ISSUER"
	[ "$status" -eq 2 ]
	[ "$(jfield code <<<"$output")" = client-key ]
	# another key than the certificate's
	(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$BATS_TEST_TMPDIR/sys/other.pem" 2>/dev/null)
	setserial --jip-ws "$WS11" --ws-version 1.1 --client-cert "$BATS_TEST_TMPDIR/sys/cert.pem" \
		--client-key "$BATS_TEST_TMPDIR/sys/other.pem" --for jnovak --serial 0A --type commercial --ca "$ISSUER"
	[ "$status" -eq 2 ]
	[ "$(jfield code <<<"$output")" = client-key ]
	[ ! -s "$WS/log" ]
	setserial --jip-ws "$WS11" --ws-version 1.1 --client-cert "$BATS_TEST_TMPDIR/sys/cert.pem" \
		--client-key "$BATS_TEST_TMPDIR/sys/enc.pem" --client-key-password "file:$BATS_TEST_TMPDIR/sys/pp" \
		--for jnovak --serial 0A --type commercial --ca "$ISSUER"
	[ "$status" -eq 0 ]
	[ "$(jq -r .auth "$WS/log" | sort -u)" = "cert:$serial" ]
	certs_of jnovak | grep -Fqx "V A $ISSUER"
	# the same from psrenew.conf alone
	printf 'backend = ws\nws-url = %s\nws-version = 1.1\nws-client-cert = %s\nws-client-key = %s\nws-client-key-password = file:%s\n' \
		"$WS11" "$BATS_TEST_TMPDIR/sys/cert.pem" "$BATS_TEST_TMPDIR/sys/enc.pem" "$BATS_TEST_TMPDIR/sys/pp" >>"$PSRENEW_CONFIG"
	setserial --for jnovak --serial 0B --type commercial --ca "$ISSUER"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output")" = set ]
	[[ "$stderr" != *unknown* ]]
	certs_of jnovak | grep -Fqx "V B $ISSUER"
}

@test "--remove-superseded: the old entries go in the UpdateUser that adds the new ones; others stay" {
	users "[$OTHER, $(entry V "$COMM_SERIAL" "$ISSUER"), $(entry Q "$QUAL_SERIAL" "$QISSUER"), $(entry V "$EXP_SERIAL" "$ISSUER")]"
	renew_all
	admin --for jnovak --remove-superseded <"$BATS_TEST_TMPDIR/fetched.jsonl"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output" | sort | uniq -c | awk '{print $1, $2}')" = "2 set" ]
	[ "$(jq -r 'select(.kind == "jip") | "\(.serial_hex) \(.removed_serial_hex)"' <<<"$output" | sort)" = \
		"$(printf '%s %s\n%s %s\n' "$NEW_COMM" "$COMM_SERIAL" "$NEW_QUAL" "$QUAL_SERIAL" | sort)" ]
	# the service's data: the other CA's and the expired entry stay, the
	# superseded ones went, the new ones came
	[ "$(certs_of jnovak | wc -l)" -eq 4 ]
	certs_of jnovak | grep -Fqx 'V 1234ABCD CN=Jiná CA, O=Někdo, C=CZ'
	certs_of jnovak | grep -Fqx "V $EXP_SERIAL $ISSUER"
	! certs_of jnovak | grep -q "$COMM_SERIAL"
	! certs_of jnovak | grep -q "$QUAL_SERIAL"
	[ "$(certs_of jnovak | grep -c "${NEW_COMM#0}\|${NEW_QUAL#0}")" -eq 2 ]
	# one UpdateUser per certificate, each with the new entry and without
	# the old one: never a list without either
	[ "$(logged UpdateUser)" -eq 2 ]
	while read -r body; do
		[[ ( "$body" == *"${NEW_COMM#0}"* && "$body" != *"$COMM_SERIAL"* ) ||
			( "$body" == *"${NEW_QUAL#0}"* && "$body" != *"$QUAL_SERIAL"* ) ]]
	done < <(jq -c 'select(.method == "UpdateUser") | .body' "$WS/log")
	[ "$(jq -r .valid "$WS/log" | sort -u)" = true ]
}

@test "--remove-superseded removes nothing unless the new entry is written with it" {
	old="[$OTHER, $(entry V "$COMM_SERIAL" "$ISSUER"), $(entry Q "$QUAL_SERIAL" "$QISSUER")]"
	users "$old"
	renew_all
	# the update that would add the new one fails: the old one stays
	mode '{"error": {"status": 500, "code": "CLDP-0000", "message": "Jiná chyba", "method": "UpdateUser"}}'
	admin --for jnovak --remove-superseded <"$BATS_TEST_TMPDIR/fetched.jsonl"
	[ "$status" -eq 4 ]
	[ "$(certs_of jnovak | wc -l)" -eq 3 ]
	certs_of jnovak | grep -q "^V $COMM_SERIAL "
	# CAAIS skips the qualified one: its predecessor stays as well
	mode '{"caais": true}'
	setserial --jip-ws "${WS10%/}" --user admin --password "file:$BATS_TEST_TMPDIR/apw" --for jnovak \
		--remove-superseded <"$BATS_TEST_TMPDIR/fetched.jsonl"
	[ "$status" -eq 0 ]
	[ "$(jq -r 'select(.kind == "jip") | "\(.type) \(.result) \(.removed_serial_hex)"' <<<"$output" | sort)" = \
		"$(printf 'commercial set %s\nqualified skipped null' "$COMM_SERIAL")" ]
	certs_of jnovak | grep -q "^Q $QUAL_SERIAL "
	! certs_of jnovak | grep -q "^V $COMM_SERIAL "
	# the new one already there, the old one still listed: it goes (already-set)
	users "$old"
	rm -f "$WS/mode.json"
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem" >/dev/null
	jq -c 'select(.type == "qualified")' "$BATS_TEST_TMPDIR/fetched.jsonl" >"$BATS_TEST_TMPDIR/q.jsonl"
	admin --for jnovak <"$BATS_TEST_TMPDIR/q.jsonl"
	[ "$(jfield result <<<"$output")" = set ]
	: >"$WS/log"
	admin --for jnovak --remove-superseded <"$BATS_TEST_TMPDIR/q.jsonl"
	[ "$status" -eq 0 ]
	[ "$(jfield result <<<"$output")" = already-set ]
	[ "$(jfield removed_serial_hex <<<"$output")" = "$QUAL_SERIAL" ]
	[ "$(logged UpdateUser)" -eq 1 ]
	! certs_of jnovak | grep -q "^Q $QUAL_SERIAL "
	certs_of jnovak | grep -q "^Q ${NEW_QUAL#0} "
	# without --remove-superseded nothing goes (the default is unchanged)
	[ "$(certs_of jnovak | wc -l)" -eq 3 ]
}

@test "--list --for USER...: each entry marked on-this-token, superseded, expired or unknown" {
	renew_all
	users "[$OTHER, $(entry V "$COMM_SERIAL" "$ISSUER"), $(entry V "$NEW_COMM" "$ISSUER"), $(entry V "$EXP_SERIAL" "$ISSUER")]" \
		", \"pdvorak\": {\"certs\": [$(entry Q "$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$FRESH_ID.pem")" "$QISSUER")], \"cas\": 1}"
	admin --list --for jnovak pdvorak --module "$PKCS11_MODULE" --json
	[ "$status" -eq 0 ]
	[ "$(jq -r 'select(.kind == "jip-entry") | "\(.user) \(.number) \(.mark)"' <<<"$output")" = "$(printf '%s\n' \
		"jnovak 1234ABCD unknown" "jnovak $COMM_SERIAL superseded" "jnovak $NEW_COMM on-this-token" \
		"jnovak $EXP_SERIAL expired" "pdvorak $(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$FRESH_ID.pem") on-this-token")" ]
	[ "$(jq -r 'select(.number == "'"$COMM_SERIAL"'") | .superseded_by' <<<"$output")" = "$NEW_COMM" ]
	[ "$(logged UpdateUser)" -eq 0 ]
	[ "$(logged GetUser)" -eq 2 ]
	# without a token, the state store still knows what the renewals superseded
	env -u PKCS11_MODULE ps-jip-setserial --jip-ws "$WS10" --user admin --password "file:$BATS_TEST_TMPDIR/apw" \
		--list --for jnovak --json >"$BATS_TEST_TMPDIR/list.jsonl"
	[ "$(jq -r '"\(.number) \(.mark)"' "$BATS_TEST_TMPDIR/list.jsonl")" = "$(printf '%s\n' \
		"1234ABCD unknown" "$COMM_SERIAL superseded" "$NEW_COMM unknown" "$EXP_SERIAL unknown")" ]
	# as a table, and a user the service does not give is an error of its own
	admin --list --for jnovak --for nikdo --module "$PKCS11_MODULE" --human
	[ "$status" -eq 5 ]
	head -1 <<<"$output" | grep -Eq '^USER +TYPE +NUMBER +MARK +NOT AFTER +TOKEN +CA$'
	grep -Eq "^jnovak +commercial +$COMM_SERIAL +superseded +20[0-9-]+T" <<<"$output"
	[ "$(grep -c '^jnovak ' <<<"$output")" -eq 4 ]
	[[ "$stderr" == *CSAV-0001* ]]
	! grep -q 'jip-entry:' <<<"$output"
	setserial --jip-ws "$WS10" --user admin --password "file:$BATS_TEST_TMPDIR/apw" --list
	[ "$status" -eq 2 ]
}

@test "--list with the web form: what the portal lists for the user, marked" {
	PORTAL=$BATS_FILE_TMPDIR/portal
	cp "$FIXTURE_ROOT/tests/jip/portal-default.json" "$PORTAL/portal.json"
	cat >"$PORTAL/accounts.json" <<EOF_ACC
{"users": [
 {"name": "jnovak", "password": "x", "role": "user", "office": "MV", "certificates": [
  {"type": "komerční", "ca": "PostSignum", "serial": "$COMM_SERIAL"},
  {"type": "komerční", "ca": "PostSignum", "serial": "0BADC0DE"}]},
 {"name": "admin", "password": "Admin-456", "role": "admin", "office": "MV", "certificates": []}]}
EOF_ACC
	setserial --profile "$FIXTURE_ROOT/tests/jip/profile-test.json" --jip-url "$JIP_URL" \
		--ca-bundle "$JIP_TLS_CA" --user admin --password "file:$BATS_TEST_TMPDIR/apw" \
		--list --for jnovak --module "$PKCS11_MODULE" --json
	[ "$status" -eq 0 ]
	[ "$(jq -r '"\(.user) \(.type) \(.ca) \(.mark)"' <<<"$output")" = "$(printf '%s\n' \
		"jnovak commercial PostSignum on-this-token" "jnovak commercial PostSignum unknown")" ]
	[ "$(jq -r 'select(.mark == "on-this-token") | .serial_hex' <<<"$output")" = "$COMM_SERIAL" ]
}

@test "--human of a registration is a table, as ps-status and ps-fetch print" {
	admin --for jnovak --cert "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem" --human
	[ "$status" -eq 0 ]
	head -1 <<<"$output" | grep -Eq '^USER +TYPE +SERIAL +RESULT +REMOVED +LOGIN +CA$'
	grep -Eq "^jnovak +commercial +$COMM_SERIAL +set +- +- +CN=" <<<"$output"
	[ "$(wc -l <<<"$output")" -eq 2 ]
	! grep -q '^jip:' <<<"$output"
}

@test "200 users over WS 1.1 (system certificate in files) in one run: one connection in nginx's log, progress on the terminal" {
	serial=$(client_files "$BATS_TEST_TMPDIR/sys")
	more=""
	for i in $(seq -w 1 200); do
		more+=", \"u$i\": {\"certs\": [$OTHER], \"cas\": 1}"
	done
	users '[]' "$more"
	for i in $(seq -w 1 200); do
		jq -nc --arg u "u$i" --arg s "$(printf '%032X' "$((10#$i + 4096))")" --arg i "$ISSUER" \
			'{kind: "cert", user: $u, serial_hex: $s, type: "commercial", issuer: $i}'
	done >"$BATS_TEST_TMPDIR/batch.jsonl"
	run timeout 300 script -qec "stty cols 200 2>/dev/null; ps-jip-setserial --jip-ws '$WS11' --ws-version 1.1 \
		--client-cert '$BATS_TEST_TMPDIR/sys/cert.pem' --client-key '$BATS_TEST_TMPDIR/sys/key.pem' \
		--json <'$BATS_TEST_TMPDIR/batch.jsonl' >'$BATS_TEST_TMPDIR/out'" "$BATS_TEST_TMPDIR/tty.log" </dev/null
	[ "$status" -eq 0 ]
	[ "$(jfield result <"$BATS_TEST_TMPDIR/out" | grep -c '^set$')" -eq 200 ]
	[ "$(certs_of u137 | wc -l)" -eq 2 ]
	# the progress line went through all 200 users
	tr '\r' '\n' <"$BATS_TEST_TMPDIR/tty.log" | grep -q '^ps-jip-setserial: \[200/200\] commercial 0*10C8: set'
	# nginx's access log: every request on one connection, numbered on it
	[ "$(wc -l <"$WS/nginx/access.log")" -eq 800 ]
	[ "$(awk '{print $1}' "$WS/nginx/access.log" | sort -u | wc -l)" -eq 1 ]
	[ "$(tail -1 "$WS/nginx/access.log" | awk '{print $2}')" -eq 800 ]
	[ "$(jq -r .auth "$WS/log" | sort -u)" = "cert:$serial" ]
}

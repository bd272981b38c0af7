#!/usr/bin/env bats
# The EST test server (tests/est/): nginx terminating TLS with client
# certificates in front of est-server.py. Proven here with independent
# clients -- curl with software keys, openssl s_client -- never psrenew.
# One server for the whole file (setup_file); each test uses its own EST
# label, so its control file is STATE/answers.LABEL.

# shellcheck disable=SC2030,SC2031 # (a test sets LABEL for itself)
bats_require_minimum_version 1.5.0
load ../lib/fixture
load ../lib/servers

EST=$FIXTURE_ROOT/tests/est

setup_file() {
	# One server, one control file per label, shared counters: keep it serial.
	export BATS_NO_PARALLELIZE_WITHIN_FILE=true
	command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || skip "no nginx"
	command -v curl >/dev/null || skip "no curl"
	PKI=$(pki_dir) || return 1
	C=$BATS_FILE_TMPDIR/clients
	mkdir -p "$C"
	# client KEY_TYPE NAME TYPE NB NA SUBJECT [PKI]: C/NAME.key, C/NAME.crt
	client() {
		_fx_genpkey "$1" "$C/$2.key" || return 1
		openssl pkey -in "$C/$2.key" -pubout -out "$C/$2.pub" || return 1
		"$MKPKI" issue "${7:-$PKI}" "$3" "$C/$2.pub" "$C/$2.crt" "$4" "$5" "$6" >/dev/null
	}
	client rsa jan-q qualified -10d +10d "$JAN_SUBJECT" || return 1
	client ec jan-c commercial -10d +10d "$JAN_SUBJECT" || return 1
	client ec jan-old commercial -400d -35d "$JAN_SUBJECT" || return 1
	client ec petra qualified -1d +364d "$PETRA_SUBJECT" || return 1
	# An impostor: a second test PKI, same names, other keys.
	"$MKPKI" "$BATS_FILE_TMPDIR/other-pki" || return 1
	client ec impostor qualified -10d +10d "$JAN_SUBJECT" "$BATS_FILE_TMPDIR/other-pki" || return 1
	# A subject mkpki cannot write (C as PrintableString), from the real CA.
	_fx_genpkey ec "$C/pavel.key" || return 1
	openssl pkey -in "$C/pavel.key" -pubout -out "$C/pavel.pub" || return 1
	MKPKI_EMAIL=pavel@example.cz openssl x509 -new -subj "/C=CZ/O=Test/CN=Printable Pavel" \
		-force_pubkey "$C/pavel.pub" -CA "$PKI/qualified-ca.crt" \
		-CAkey "$PKI/qualified-ca.key" -days 30 -sha256 -extfile "$PKI/pki.cnf" \
		-extensions qualified -out "$C/pavel.crt" 2>/dev/null || return 1
	# Self-signed, no CA at all.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$C/self.key" -out "$C/self.crt" -utf8 -subj "$JAN_SUBJECT" \
		-days 3 2>/dev/null || return 1

	start_est "$BATS_FILE_TMPDIR/est" "$PKI" || return 1
	export PKI C
}

teardown_file() {
	[[ -n ${EST_STATE:-} ]] || return 0
	stop_servers || return 1
	local left
	left=$(est_procs "$EST_STATE")
	[[ -z $left ]] || { echo "left running: $left" >&2; return 1; }
}

setup() {
	W=$BATS_TEST_TMPDIR
	JANQ=(--cert "$C/jan-q.crt" --key "$C/jan-q.key")
	JANC=(--cert "$C/jan-c.crt" --key "$C/jan-c.key")
	LABEL=t$BATS_TEST_NUMBER
}

teardown() {
	stop_servers
}

# ----------------------------------------------------------------- helpers

# est_procs STATE: pids of nginx / est-server.py processes of that state
# directory (read from /proc in bash: no grep that would match itself).
est_procs() {
	local d cmd out=''
	local -a argv
	for d in /proc/[0-9]*; do
		mapfile -d '' -t argv 2>/dev/null <"$d/cmdline" || continue
		((${#argv[@]})) || continue
		cmd=" ${argv[*]} "
		if [[ $cmd == *" $1/nginx.conf "* || $cmd == *"est-server.py"*" --state $1 "* ]]; then
			out+="${d#/proc/} "
		fi
	done
	printf '%s' "$out"
}

# answers LINE...: this test's control file (STATE/answers.$LABEL).
answers() {
	printf '%s\n' "$@" >"$EST_STATE/answers.$LABEL"
}

# csr KEY NAME [MKCSR_ARGS...]: a base64 CSR for KEY with the subject copied
# from the client certificate jan-q (default), into $W/NAME.b64.
csr() {
	local key=$1 name=$2
	shift 2
	[[ " $* " == *" --subject"* ]] || set -- "$@" --subject-from "$C/jan-q.crt"
	"$EST/mkcsr" "$key" "$W/$name.b64" --base64 "$@"
}

newkey() { # NAME [rsa|ec]: $W/NAME.key
	_fx_genpkey "${2:-ec}" "$W/$1.key"
}

# post CSR_B64 [CURL_ARGS...]: POST simplereenroll (labelled $LABEL unless
# LABEL is empty); STATUS = the HTTP status ("000": no HTTP answer), body in
# $W/body, headers in $W/hdrs.
post() {
	local csr=$1 path=/.well-known/est/simplereenroll
	shift
	[[ -z $LABEL ]] || path=/.well-known/est/$LABEL/simplereenroll
	rm -f "$W/body" "$W/hdrs"
	STATUS=$(curl -sS --cacert "$EST_TLS_CA" -o "$W/body" -D "$W/hdrs" \
		-w '%{http_code}' -H 'Content-Type: application/pkcs10' \
		--data-binary "@$csr" "$@" "$EST_URL$path" 2>"$W/curl.err") || true
	[[ -n $STATUS ]] || STATUS=000
}

# header NAME: a response header's value (from $W/hdrs).
header() {
	sed -n "s/^$1: *//Ip" "$W/hdrs" | tr -d '\r'
}

want_status() {
	[[ $STATUS == "$1" ]] || {
		echo "HTTP status $STATUS, want $1"
		cat "$W/hdrs" "$W/body" "$W/curl.err" 2>/dev/null
		return 1
	}
}

# issued OUT: $W/body, base64 of a DER PKCS#7 certs-only, holds exactly one
# certificate; it goes (PEM) to OUT.
issued() {
	[[ $(header Content-Type) == application/pkcs7-mime* ]] || { echo "Content-Type: $(header Content-Type)"; return 1; }
	[[ $(header Content-Transfer-Encoding) == base64 ]] || return 1
	base64 -d "$W/body" >"$W/p7.der" || return 1
	openssl pkcs7 -inform DER -in "$W/p7.der" -print_certs -out "$1" || return 1
	[[ $(grep -c -- '-----BEGIN CERTIFICATE-----' "$1") == 1 ]]
}

# der_subject FILE: the subject Name of a certificate or CSR (PEM, DER or
# base64 DER) as DER hex -- a DER walk of its own, not est-server.py's.
der_subject() {
	/usr/bin/python3 - "$1" <<-'PY'
		import base64, re, sys
		d = open(sys.argv[1], "rb").read()
		m = re.search(rb"-----BEGIN [A-Z0-9 ]+-----(.*?)-----END", d, re.S)
		if m:
		    d = base64.b64decode(b"".join(m.group(1).split()))
		elif re.fullmatch(rb"[A-Za-z0-9+/=\s]+", d):
		    d = base64.b64decode(b"".join(d.split()))
		def hdr(o):
		    n = d[o + 1]
		    if n < 0x80:
		        return o + 2, n
		    k = n & 0x7F
		    return o + 2 + k, int.from_bytes(d[o + 2:o + 2 + k], "big")
		def kids(o):
		    c, n = hdr(o)
		    e, out = c + n, []
		    while c < e:
		        out.append(c)
		        cc, nn = hdr(c)
		        c = cc + nn
		    return out
		f = kids(kids(0)[0])
		if d[f[0]] == 0xA0:
		    f = f[1:]
		i = 4 if len(f) > 4 else 1  # TBSCertificate : CertificationRequestInfo
		c, n = hdr(f[i])
		print(d[f[i]:c + n].hex())
	PY
}

pubkey_of() { # FILE: the public key (PEM) of a certificate, CSR or key
	if grep -q -- '-----BEGIN CERTIFICATE' "$1"; then
		openssl x509 -in "$1" -noout -pubkey
	elif grep -q -- 'PRIVATE KEY-----' "$1"; then
		openssl pkey -in "$1" -pubout
	else
		tr -d '\r' <"$1" | base64 -d | openssl req -inform DER -noout -pubkey
	fi
}

# check_issued CERT KEY CSR TYPE: CERT chains to the test root, is for KEY,
# has CSR's subject DER, is TYPE (qualified|commercial), valid ~-1m..+385d.
check_issued() {
	local cert=$1 key=$2 csr=$3 type=$4 nb na now
	run openssl verify -CAfile "$PKI/root.crt" -untrusted "$PKI/chain.pem" "$cert"
	[[ $status == 0 && $output == "$cert: OK" ]] || { echo "verify: $output"; return 1; }
	[[ $(pubkey_of "$cert") == "$(pubkey_of "$key")" ]] || { echo "not the key's"; return 1; }
	[[ $(pubkey_of "$cert") == "$(pubkey_of "$csr")" ]] || { echo "not the CSR's key"; return 1; }
	[[ $(der_subject "$cert") == "$(der_subject "$csr")" ]] || { echo "subject DER differs"; return 1; }
	if [[ $type == qualified ]]; then
		openssl x509 -in "$cert" -noout -issuer | grep -q 'DEMO PostSignum Qualified CA 5' || return 1
		cert_qc_statements "$cert" | grep -qx 0.4.0.1862.1.1 || { echo "no QcCompliance"; return 1; }
	else
		openssl x509 -in "$cert" -noout -issuer | grep -q 'DEMO PostSignum Public CA 5' || return 1
		[[ -z $(cert_qc_statements "$cert") ]] || { echo "commercial with QCStatements"; return 1; }
	fi
	now=$EPOCHSECONDS
	nb=$(date -d "$(cert_not_before_iso "$cert")" +%s)
	na=$(date -d "$(cert_not_after_iso "$cert")" +%s)
	((nb <= now && nb >= now - 300)) || { echo "notBefore $nb, now $now"; return 1; }
	((na >= now + 385 * 86400 - 300 && na <= now + 385 * 86400 + 300)) ||
		{ echo "notAfter $na, now $now"; return 1; }
}

# ------------------------------------------------------------------- tests

@test "est-start: the interface, both processes running, 127.0.0.1 only" {
	[[ $EST_URL == "https://localhost:$EST_PORT" ]]
	[[ $EST_TLS_CA == "$EST_STATE/tls-ca.crt" && -s $EST_TLS_CA ]]
	[[ $EST_STATE == "$(cd "$BATS_FILE_TMPDIR/est" && pwd -P)" ]]
	grep -qx "EST_URL=https://localhost:$EST_PORT" "$EST_STATE/env"
	kill -0 "$(<"$EST_STATE/nginx.pid")"
	kill -0 "$(<"$EST_STATE/est-server.pid")"
	run ss -Hltn "( sport = :$EST_PORT or sport = :$EST_BACKEND_PORT )"
	[[ $(grep -c LISTEN <<<"$output") == 2 ]]
	run ! grep -v '127\.0\.0\.1:' <<<"$output"
	# everything nginx writes is in the state directory
	grep -q "error_log \"$EST_STATE/nginx-error.log\"" "$EST_STATE/nginx.conf"
	[ -s "$EST_STATE/nginx-access.log" ]
	run ! grep -n '@[A-Z_]*@' "$EST_STATE/nginx.conf"
}

@test "est-start refuses a state directory whose server runs; that one keeps running" {
	run "$EST/est-start" "$EST_STATE" "$PKI"
	[ "$status" -eq 1 ]
	[[ $output == *"runs there already"* ]]
	run curl -sS --cacert "$EST_TLS_CA" -o /dev/null -w '%{http_code}' "$EST_URL/.well-known/est/cacerts"
	[ "$output" = 200 ]
}

@test "TLS: the server certificate verifies for localhost and 127.0.0.1; TLS 1.3 and 1.2" {
	local v
	for v in 1_3 1_2; do
		run openssl s_client -connect "127.0.0.1:$EST_PORT" -servername localhost \
			-CAfile "$EST_TLS_CA" -verify_return_error -verify_hostname localhost "-tls$v" </dev/null
		[ "$status" -eq 0 ]
		[[ $output == *"New, TLSv${v/_/.}, Cipher is "* ]]
		[[ $output == *"Verify return code: 0 (ok)"* ]]
		# the client CAs it asks for: the test PKI's
		[[ $output == *"Acceptable client certificate CA names"*"DEMO PostSignum Qualified CA 5"* ]]
	done
	run openssl s_client -connect "127.0.0.1:$EST_PORT" -CAfile "$EST_TLS_CA" \
		-verify_return_error -verify_ip 127.0.0.1 </dev/null
	[ "$status" -eq 0 ]
	[[ $output == *"New, TLSv1.3, Cipher is "* ]]
	run openssl s_client -connect "127.0.0.1:$EST_PORT" -servername localhost -tls1_1 </dev/null
	[ "$status" -ne 0 ]
}

@test "cacerts: a base64 PKCS#7 certs-only with both issuing CAs and the root, no client certificate needed" {
	local path
	for path in /.well-known/est/cacerts "/.well-known/est/$LABEL/cacerts"; do
		rm -f "$W/body" "$W/hdrs"
		run curl -sS --cacert "$EST_TLS_CA" -o "$W/body" -D "$W/hdrs" -w '%{http_code}' "$EST_URL$path"
		[ "$output" = 200 ]
		[[ $(header Content-Type) == application/pkcs7-mime* ]]
		[ "$(header Content-Transfer-Encoding)" = base64 ]
		base64 -d "$W/body" >"$W/p7.der"
		run openssl pkcs7 -inform DER -in "$W/p7.der" -print_certs -noout
		[ "$status" -eq 0 ]
		[[ $(grep -c '^subject=' <<<"$output") == 3 ]]
		[[ $output == *"CN = DEMO PostSignum Qualified CA 5"* ]]
		[[ $output == *"CN = DEMO PostSignum Public CA 5"* ]]
		[[ $output == *"CN = DEMO PostSignum Root QCA 4"* ]]
		openssl pkcs7 -inform DER -in "$W/p7.der" -print_certs -out "$W/cas.pem"
		openssl verify -CAfile "$PKI/root.crt" "$W/cas.pem"
	done
}

@test "simplereenroll: a qualified client gets a qualified certificate for the CSR's key and exact subject" {
	newkey n rsa
	csr "$W/n.key" n
	grep -q $'\r$' "$W/n.b64" # a MIME-style body: 64 columns, CRLF
	post "$W/n.b64" "${JANQ[@]}"
	want_status 200
	issued "$W/new.pem"
	check_issued "$W/new.pem" "$W/n.key" "$W/n.b64" qualified
	[[ $(der_subject "$W/new.pem") == "$(der_subject "$C/jan-q.crt")" ]]
	# subjectAltName: the client certificate's e-mail (the CSR asks none)
	openssl x509 -in "$W/new.pem" -noout -ext subjectAltName | grep -q 'email:jan.novak@example.cz'
	# the server keeps what it got and what it gave
	local n
	n=$(<"$EST_STATE/seq")
	cmp <(tr -d '\r' <"$W/n.b64" | base64 -d) "$EST_STATE/requests/$n.csr"
	cmp <(openssl x509 -in "$W/new.pem" -outform DER) <(openssl x509 -in "$EST_STATE/requests/$n.crt" -outform DER)
}

@test "simplereenroll: a commercial client (EC key, unlabelled path, one-line base64) gets a commercial certificate" {
	local LABEL=''
	newkey n ec
	"$EST/mkcsr" "$W/n.key" "$W/n.der" --subject-from "$C/jan-c.crt" --email novak@example.org
	base64 -w0 "$W/n.der" >"$W/n.b64"
	post "$W/n.b64" "${JANC[@]}"
	want_status 200
	issued "$W/new.pem"
	check_issued "$W/new.pem" "$W/n.key" "$W/n.b64" commercial
	# subjectAltName: the one the CSR asks for
	openssl x509 -in "$W/new.pem" -noout -ext subjectAltName | grep -q 'email:novak@example.org'
}

@test "simplereenroll: a subject mkpki cannot write (PrintableString C) is copied byte for byte" {
	newkey n
	csr "$W/n.key" n --subject-from "$C/pavel.crt"
	post "$W/n.b64" --cert "$C/pavel.crt" --key "$C/pavel.key"
	want_status 200
	issued "$W/new.pem"
	check_issued "$W/new.pem" "$W/n.key" "$W/n.b64" qualified
	[[ $(der_subject "$W/new.pem") == "$(der_subject "$C/pavel.crt")" ]]
	openssl x509 -in "$W/new.pem" -noout -subject -nameopt show_type | grep -q 'C=PRINTABLESTRING:CZ'
}

@test "answers: issue TYPE overrides the client certificate's type" {
	answers "issue commercial"
	newkey n
	csr "$W/n.key" n
	post "$W/n.b64" "${JANQ[@]}"
	want_status 200
	issued "$W/new.pem"
	check_issued "$W/new.pem" "$W/n.key" "$W/n.b64" commercial
}

@test "answers: pending 1 gives 202 with Retry-After: 1; the same CSR sent again gets 200" {
	answers "pending 1" issue
	newkey n
	csr "$W/n.key" n
	post "$W/n.b64" "${JANQ[@]}"
	want_status 202
	[ "$(header Retry-After)" = 1 ]
	sleep 1
	post "$W/n.b64" "${JANQ[@]}"
	want_status 200
	issued "$W/new.pem"
	check_issued "$W/new.pem" "$W/n.key" "$W/n.b64" qualified
	# the last line repeats
	post "$W/n.b64" "${JANQ[@]}"
	want_status 200
}

@test "answers: counted per CSR -- pending, pending, issue for each new CSR; a changed file starts afresh" {
	answers "pending 7" "pending 1" issue
	newkey a
	newkey b
	csr "$W/a.key" a
	csr "$W/b.key" b
	post "$W/a.b64" "${JANQ[@]}"
	want_status 202
	[ "$(header Retry-After)" = 7 ]
	post "$W/b.b64" "${JANQ[@]}" # a new CSR: line 1 again
	want_status 202
	[ "$(header Retry-After)" = 7 ]
	post "$W/a.b64" "${JANQ[@]}"
	want_status 202
	[ "$(header Retry-After)" = 1 ]
	post "$W/a.b64" "${JANQ[@]}"
	want_status 200
	issued "$W/a.pem"
	check_issued "$W/a.pem" "$W/a.key" "$W/a.b64" qualified
	post "$W/b.b64" "${JANQ[@]}"
	want_status 202
	[ "$(header Retry-After)" = 1 ]
	# a new control file: every CSR starts at its first line
	answers reject
	post "$W/b.b64" "${JANQ[@]}"
	want_status 400
	answers issue
	post "$W/b.b64" "${JANQ[@]}"
	want_status 200
}

@test "answers: reject gives 400 with a message, error 500, an unknown answer 500" {
	answers "reject the CA says no" error bogus
	newkey n
	csr "$W/n.key" n
	post "$W/n.b64" "${JANQ[@]}"
	want_status 400
	grep -q 'the CA says no' "$W/body"
	[[ $(header Content-Type) == text/plain* ]]
	post "$W/n.b64" "${JANQ[@]}"
	want_status 500
	post "$W/n.b64" "${JANQ[@]}"
	want_status 500
	grep -q "unknown answer 'bogus'" "$W/body"
}

@test "answers: garbage gives 200 with a body that is no PKCS#7; wrongkey a certificate for another key" {
	answers garbage wrongkey
	newkey n
	csr "$W/n.key" n
	post "$W/n.b64" "${JANQ[@]}"
	want_status 200
	[[ $(header Content-Type) == application/pkcs7-mime* ]]
	base64 -d "$W/body" >"$W/p7.der"
	run openssl pkcs7 -inform DER -in "$W/p7.der" -print_certs -noout
	[ "$status" -ne 0 ]
	post "$W/n.b64" "${JANQ[@]}"
	want_status 200
	issued "$W/new.pem"
	openssl verify -CAfile "$PKI/root.crt" -untrusted "$PKI/chain.pem" "$W/new.pem"
	[[ $(pubkey_of "$W/new.pem") != "$(pubkey_of "$W/n.key")" ]]
	[[ $(der_subject "$W/new.pem") == "$(der_subject "$W/n.b64")" ]]
}

@test "no client certificate: cacerts yes, simplereenroll 401" {
	newkey n
	csr "$W/n.key" n
	post "$W/n.b64"
	want_status 401
	# forged headers do not help: nginx sets them itself
	post "$W/n.b64" -H 'X-SSL-Client-Verify: SUCCESS' \
		-H "X-SSL-Client-Cert: $(/usr/bin/python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(open(sys.argv[1]).read()))' "$C/jan-q.crt")"
	want_status 401
	grep -q 'NONE' "$W/body"
}

@test "a client certificate from an unknown CA (same names, other keys) or self-signed: 401" {
	newkey n
	csr "$W/n.key" n --subject-from "$C/impostor.crt"
	post "$W/n.b64" --cert "$C/impostor.crt" --key "$C/impostor.key"
	want_status 401
	csr "$W/n.key" n --subject-from "$C/self.crt"
	post "$W/n.b64" --cert "$C/self.crt" --key "$C/self.key"
	want_status 401
	# nginx passed them on (495) and the server's own check refused them
	run grep -c "$LABEL/simplereenroll.*status=401.*refused:unauthenticated" "$EST_STATE/log"
	[ "$output" -eq 2 ]
	run ! grep "$LABEL/simplereenroll.*status=20" "$EST_STATE/log"
}

@test "an expired client certificate: 401" {
	newkey n
	csr "$W/n.key" n --subject-from "$C/jan-old.crt"
	post "$W/n.b64" --cert "$C/jan-old.crt" --key "$C/jan-old.key"
	want_status 401
	grep -q 'expired' "$W/body"
}

@test "a CSR whose subject is not the client certificate's: 400, and it consumes no answer" {
	answers issue
	newkey n
	csr "$W/n.key" n --subject-from "$C/petra.crt" # another person
	post "$W/n.b64" "${JANQ[@]}"
	want_status 400
	grep -q 'subject' "$W/body"
	# the same text, but from openssl req: C and serialNumber PrintableString
	openssl req -new -key "$W/n.key" -utf8 -subj "$JAN_SUBJECT" -outform DER -out "$W/r.der"
	base64 "$W/r.der" >"$W/r.b64"
	[[ $(der_subject "$W/r.b64") != "$(der_subject "$C/jan-q.crt")" ]]
	post "$W/r.b64" "${JANQ[@]}"
	want_status 400
	# the subject of the commercial certificate is the same DER: fine
	csr "$W/n.key" n --subject-from "$C/jan-c.crt"
	post "$W/n.b64" "${JANQ[@]}"
	want_status 200
	run grep -c "$LABEL/simplereenroll.*answer=issue" "$EST_STATE/log"
	[ "$output" = 1 ]
}

@test "a CSR whose signature does not verify, or a body that is no CSR: 400" {
	newkey n rsa
	csr "$W/n.key" n --bad-signature
	post "$W/n.b64" "${JANQ[@]}"
	want_status 400
	grep -q 'signature' "$W/body"
	newkey e ec
	csr "$W/e.key" e --bad-signature
	post "$W/e.b64" "${JANQ[@]}"
	want_status 400
	printf 'not base64 at all!\n' >"$W/junk"
	post "$W/junk" "${JANQ[@]}"
	want_status 400
	printf 'bm90IGEgQ1NS\n' >"$W/junk" # base64 of "not a CSR"
	post "$W/junk" "${JANQ[@]}"
	want_status 400
}

@test "the log: method, path, status, answer, client subject per request" {
	answers "pending 2" issue
	newkey n
	csr "$W/n.key" n
	post "$W/n.b64" "${JANQ[@]}"
	post "$W/n.b64" "${JANQ[@]}"
	run grep -F "/.well-known/est/$LABEL/simplereenroll" "$EST_STATE/log"
	[ "${#lines[@]}" -eq 2 ]
	[[ ${lines[0]} == *$'\tPOST\t'*$'\tstatus=202\tanswer=pending 2\t'*$'\tclient=serialNumber=P123456,CN=Jan Novák,OU=Odbor eGovernmentu,organizationIdentifier=NTRCZ-00007064,O=Ministerstvo vnitra,C=CZ' ]]
	[[ ${lines[1]} == *$'\tstatus=200\tanswer=issue\t'* ]]
	grep -q $'\tGET\t/.well-known/est/cacerts\tstatus=200\tanswer=cacerts' "$EST_STATE/log"
}

@test "est-start with EST_START_PORT, est-stop: no process left, est-stop again is harmless" {
	local port state out
	mkdir "$BATS_TEST_TMPDIR/est2"
	state=$(cd "$BATS_TEST_TMPDIR/est2" && pwd -P)
	port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	server_started est "$state"
	out=$(EST_START_PORT=$port "$EST/est-start" "$state" "$PKI")
	grep -qx "EST_PORT=$port" <<<"$out"
	(
		eval "$out"
		[[ $EST_URL == "https://localhost:$port" && $EST_STATE == "$state" ]]
		curl -sSf --cacert "$EST_TLS_CA" -o /dev/null "$EST_URL/.well-known/est/cacerts"
	)
	[ -n "$(est_procs "$state")" ]
	run "$EST/est-stop" "$state"
	[ "$status" -eq 0 ]
	[ -z "$(est_procs "$state")" ]
	[ ! -e "$state/nginx.pid" ]
	[ ! -e "$state/est-server.pid" ]
	run curl -sS --cacert "$state/tls-ca.crt" "https://localhost:$port/.well-known/est/cacerts"
	[ "$status" -ne 0 ]
	run "$EST/est-stop" "$state"
	[ "$status" -eq 0 ]
	# the main server is untouched
	[ -n "$(est_procs "$EST_STATE")" ]
}

#!/usr/bin/env bats
# The cmp: channel (RFC 4210 key update over HTTP) against the test CMP CA
# (tests/cmp/cmp-ca.c, OpenSSL's server API: it checks the request's
# signature protection and the proof of possession, issues from the test
# PKI, can wait and reject), against OpenSSL's own mock server, and the test
# CA against OpenSSL's own client.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

setup_file() {
	export BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR
	PKI=$(pki_dir)
	start_cmp --tls "$BATS_FILE_TMPDIR/cmp" "$PKI" || return 1
	export PKI
}

teardown_file() {
	stop_servers
}

setup() {
	psrenew_setup
	demo_token
	CMP="cmp://127.0.0.1:$CMP_PORT/pkix/"
	BUNDLE=$PKI/chain.pem
	rm -f "$CMP_STATE/answers"
	: >"$CMP_STATE/log"
}

teardown() {
	if [[ -n ${MOCK_PID:-} ]]; then kill "$MOCK_PID" 2>/dev/null || true; fi
}

answers() {
	printf '%s\n' "$@" >"$CMP_STATE/answers"
}

renew() {
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --ca-bundle "$BUNDLE" "$@"
}

fetch() {
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--ca-bundle "$BUNDLE" "$@"
}

# The transaction IDs the CA saw, one per line.
tids() {
	sed -n 's/.* tid=\([0-9a-f]*\) .*/\1/p' "$CMP_STATE/log" | sort -u
}

@test "a kur is issued at once and confirmed; the certificate is for the new key on the token" {
	answers issue
	renew --id "$QUAL_ID" --ca "$CMP"
	[ "$status" -eq 0 ]
	[ "$(jfield state <<<"$output")" = issued ]
	[ "$(jfield channel <<<"$output")" = "$CMP" ]
	jq -r .cert <<<"$output" >"$BATS_TEST_TMPDIR/new.pem"
	[ "$(cert_key_id "$BATS_TEST_TMPDIR/new.pem")" = "$(jfield key_id <<<"$output")" ]
	[ "$(jfield key_id <<<"$output")" != "$QUAL_ID" ]
	# still qualified, same subject, chains to the test root
	[ -n "$(cert_qc_statements "$BATS_TEST_TMPDIR/new.pem")" ]
	[ "$(openssl x509 -in "$BATS_TEST_TMPDIR/new.pem" -noout -subject -nameopt RFC2253)" = \
		"$(openssl x509 -in "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem" -noout -subject -nameopt RFC2253)" ]
	openssl verify -CAfile "$PKI/root.crt" -untrusted "$PKI/chain.pem" "$BATS_TEST_TMPDIR/new.pem"
	# one transaction: kur -> kup, certConf -> pkiconf
	grep -q '^kur tid=.* -> kup$' "$CMP_STATE/log"
	grep -q '^certConf tid=.* -> pkiconf$' "$CMP_STATE/log"
	[ "$(tids | wc -l)" -eq 1 ]
	fetch --pending
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
	[ "$(jfield type <<<"$output")" = qualified ]
	[ "$(token_objects cert)" -eq 5 ]
}

@test "waiting: ps-fetch polls in new processes (pollReq of the same transaction) until issued" {
	answers 'wait 3 30'
	renew --id "$COMM_ID" --ca "$CMP"
	[ "$status" -eq 3 ]
	[ "$(jfield state <<<"$output")" = pending ]
	id=$(jfield request_id <<<"$output")
	[[ "$(jq -r .cookie "$PSRENEW_STATE_DIR/requests/$id.json")" == cmp1:* ]]
	# ps-renew sent the kur and (as OpenSSL does) one pollReq at once
	[ "$(grep -c '^pollReq' "$CMP_STATE/log")" -eq 1 ]
	# not due yet: nothing is sent
	fetch --pending
	[ "$status" -eq 3 ]
	[ "$(grep -c '^pollReq' "$CMP_STATE/log")" -eq 1 ]
	[ "$(jq -r .next_poll_at "$PSRENEW_STATE_DIR/requests/$id.json")" \> "$(date -u -d +20sec +%FT%TZ)" ]
	for try in 1 2 3 4 5 6 7 8; do
		# checkAfter (30 s) has passed
		jq '.next_poll_at = "2000-01-01T00:00:00Z"' "$PSRENEW_STATE_DIR/requests/$id.json" \
			>"$BATS_TEST_TMPDIR/r.json"
		cp "$BATS_TEST_TMPDIR/r.json" "$PSRENEW_STATE_DIR/requests/$id.json"
		fetch --pending
		[ "$status" -eq 3 ] || break
	done
	[ "$status" -eq 0 ]
	[ "$(jfield request_id <<<"$output")" = "$id" ]
	[ "$(jq -r .state "$PSRENEW_STATE_DIR/requests/$id.json")" = installed ]
	# one transaction from the first kur to the certConf, polled 4 times
	[ "$(tids | wc -l)" -eq 1 ]
	[ "$(grep -c '^pollReq' "$CMP_STATE/log")" -eq 4 ]
	tail -1 "$CMP_STATE/log" | grep -q '^certConf .* -> pkiconf$'
	[ "$(token_objects cert)" -eq 5 ]
}

@test "ps-renew | ps-fetch --wait waits out checkAfter" {
	answers 'wait 2 1'
	run bash -c "ps-renew --module '$PKCS11_MODULE' --pin 'file:$PIN_FILE' --token '$TOKEN_URI' \
		--id '$QUAL_ID' --ca '$CMP' --ca-bundle '$BUNDLE' 2>/dev/null |
		ps-fetch --pin 'file:$PIN_FILE' --ca-bundle '$BUNDLE' --wait=60 2>/dev/null"
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
	[ "$(jfield type <<<"$output")" = qualified ]
	[ "$(tids | wc -l)" -eq 1 ]
}

@test "a rejection is exit 5 with the CA's status string and failInfo; the new key pair is removed" {
	answers 'reject the holder left the office'
	renew --id "$QUAL_ID" --ca "$CMP"
	[ "$status" -eq 5 ]
	[ "$(jfield state <<<"$output")" = rejected ]
	[ "$(jfield message <<<"$output")" = "the holder left the office" ]
	[ "$(jfield fail_info <<<"$output")" = badCertTemplate ]
	[ "$(token_objects privkey)" -eq 4 ]
	[ "$(token_objects cert)" -eq 4 ]
}

@test "a CA that forgot the transaction (restart): the next poll starts a new one, the request goes on" {
	answers 'wait 1 1'
	renew --id "$QUAL_ID" --ca "$CMP"
	[ "$status" -eq 3 ]
	[ "$(token_objects privkey)" -eq 5 ]
	id=$(jfield request_id <<<"$output")
	key=$(jfield key_id <<<"$output")
	"$FIXTURE_ROOT/tests/cmp/cmp-stop" "$CMP_STATE"
	CMP_START_PORT=$CMP_PORT "$FIXTURE_ROOT/tests/cmp/cmp-start" --tls "$PKI" "$CMP_STATE" >/dev/null
	answers issue
	sleep 1.2
	fetch --pending
	[ "$status" -eq 0 ]
	[ "$(jfield request_id <<<"$output")" = "$id" ]
	[ "$(jq -r .state "$PSRENEW_STATE_DIR/requests/$id.json")" = installed ]
	[ "$(jfield id <<<"$output")" = "$key" ]
	# the old transaction got an error, a new kur was issued
	grep -q '^pollReq .* -> error' "$CMP_STATE/log"
	[ "$(tids | wc -l)" -ge 2 ]
	[ "$(token_objects privkey)" -eq 5 ]
}

@test "a real rejection while polling ends the request and removes its key pair" {
	answers 'wait 1 1'
	renew --id "$QUAL_ID" --ca "$CMP"
	[ "$status" -eq 3 ]
	id=$(jfield request_id <<<"$output")
	"$FIXTURE_ROOT/tests/cmp/cmp-stop" "$CMP_STATE"
	CMP_START_PORT=$CMP_PORT "$FIXTURE_ROOT/tests/cmp/cmp-start" --tls "$PKI" "$CMP_STATE" >/dev/null
	answers 'reject not any more'
	sleep 1.2
	fetch --pending
	[ "$status" -eq 5 ]
	[ "$(jq -r .state "$PSRENEW_STATE_DIR/requests/$id.json")" = rejected ]
	[ "$(jq -r .message "$PSRENEW_STATE_DIR/requests/$id.json")" = "not any more" ]
	[ "$(token_objects privkey)" -eq 4 ]
}

@test "a poll answered but not saved (ps-fetch killed): the stale nonce is refused, a new transaction finishes" {
	answers 'wait 3 30'
	renew --id "$QUAL_ID" --ca "$CMP"
	[ "$status" -eq 3 ]
	id=$(jfield request_id <<<"$output")
	f=$PSRENEW_STATE_DIR/requests/$id.json
	jq '.next_poll_at = "2000-01-01T00:00:00Z"' "$f" >"$BATS_TEST_TMPDIR/before.json"
	cp "$BATS_TEST_TMPDIR/before.json" "$f"
	fetch --pending
	[ "$status" -eq 3 ]
	# as if that run had died before saving the CA's answer
	cp "$BATS_TEST_TMPDIR/before.json" "$f"
	answers issue
	fetch --pending
	[ "$status" -eq 0 ]
	[ "$(jq -r .state "$f")" = installed ]
	# OpenSSL's server refused the stale nonce with an error message
	grep -q '^pollReq .* -> error' "$CMP_STATE/log"
	[ "$(token_objects cert)" -eq 5 ]
}

@test "a CA that is down is exit 4; the request is kept and ps-fetch submits it later" {
	renew --id "$QUAL_ID" --ca "cmp://127.0.0.1:1/pkix/"
	[ "$status" -eq 4 ]
	[ "$(jfield state <<<"$output")" = unsubmitted ]
	[ "$(token_objects privkey)" -eq 5 ]
	id=$(jfield request_id <<<"$output")
	# the same request, sent to the CA that runs
	jq --arg c "$CMP" '.channel = $c | .ca = $c' "$PSRENEW_STATE_DIR/requests/$id.json" >"$BATS_TEST_TMPDIR/r.json"
	cp "$BATS_TEST_TMPDIR/r.json" "$PSRENEW_STATE_DIR/requests/$id.json"
	fetch --pending
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
	[ "$(token_objects cert)" -eq 5 ]
}

@test "an HTTP 500 is exit 4 with the server's words, the request kept" {
	answers http500 issue
	renew --id "$QUAL_ID" --ca "$CMP"
	[ "$status" -eq 4 ]
	[[ "$(jfield message <<<"$output")" == *"HTTP 500"* ]]
	[ "$(token_objects privkey)" -eq 5 ]
	fetch --pending
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
}

@test "answers protected by a CA we do not trust are refused (exit 1); nothing is left behind" {
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$BATS_TEST_TMPDIR/o.key" \
		-subj /CN=Other-CA -days 30 -out "$BATS_TEST_TMPDIR/other.crt" 2>/dev/null
	answers issue
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$QUAL_ID" --ca "$CMP" --ca-bundle "$BATS_TEST_TMPDIR/other.crt"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"--ca-bundle"* ]]
	[ "$(token_objects privkey)" -eq 4 ]
	[ -z "$(ls "$PSRENEW_STATE_DIR/requests" 2>/dev/null)" ]
}

@test "without --ca-bundle the answers are checked against the system's CAs: refused, with OpenSSL's reason" {
	answers issue
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$QUAL_ID" --ca "$CMP"
	[ "$status" -eq 1 ]
	# the cause, not OpenSSL's last words ("passed a null parameter")
	[[ "$stderr" == *"no suitable sender cert"* ]]
	[[ "$stderr" != *"null parameter"* ]]
	[[ "$stderr" == *"hint: check --ca-bundle"* ]]
	[ "$(token_objects privkey)" -eq 4 ]
	[ -z "$(ls "$PSRENEW_STATE_DIR/requests" 2>/dev/null)" ]
}

@test "a request signed by a certificate the CA does not trust is refused (exit 5), key removed" {
	stranger_token stranger
	answers issue
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token 'pkcs11:token=stranger' --id 5a --ca "$CMP" --ca-bundle "$BUNDLE"
	[ "$status" -eq 5 ]
	[ "$(jfield state <<<"$output")" = rejected ]
	[ -n "$(jfield fail_info <<<"$output")" ]
	[ "$(pkcs11-tool --module "$PKCS11_MODULE" --token-label stranger --login --pin "$PIN" \
		-O --type privkey 2>/dev/null | grep -c '^Private Key')" -eq 1 ]
	! grep -q ' -> kup' "$CMP_STATE/log"
}

@test "an expired current certificate cannot sign a kur: refused before anything is made" {
	renew --id "$EXPIRED_ID" --ca "$CMP"
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output")" = expired ]
	[ "$(token_objects privkey)" -eq 4 ]
	[ ! -s "$CMP_STATE/log" ]
}

@test "https:// needs --ca-type; --ca-type cmp and a named [ca.NAME] with type = cmp work" {
	renew --id "$QUAL_ID" --ca "https://127.0.0.1:$CMP_PORT/pkix/"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--ca-type"* ]]
	renew --id "$QUAL_ID" --ca "cmp://127.0.0.1:$CMP_PORT/pkix/" --ca-type est
	[ "$status" -eq 2 ]
	[ "$(token_objects privkey)" -eq 4 ]
	answers issue
	renew --id "$QUAL_ID" --ca "http://127.0.0.1:$CMP_PORT/pkix/" --ca-type cmp
	[ "$status" -eq 0 ]
	[ "$(jfield channel <<<"$output")" = "cmp:http://127.0.0.1:$CMP_PORT/pkix/" ]
	printf '[ca.office]\nchannel = http://127.0.0.1:%s/pkix/\ntype = cmp\nca-bundle = %s\n' \
		"$CMP_PORT" "$BUNDLE" >"$BATS_TEST_TMPDIR/psrenew.conf"
	run --separate-stderr ps-renew --config "$BATS_TEST_TMPDIR/psrenew.conf" \
		--module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --token "$TOKEN_URI" \
		--id "$COMM_ID" --ca office
	[ "$status" -eq 0 ]
	[ "$(jfield ca <<<"$output")" = office ]
	[ "$(grep -c '^kur' "$CMP_STATE/log")" -eq 2 ]
}

@test "CMP over https (nginx in front): --ca-type cmp; the server's TLS certificate must verify" {
	. "$CMP_STATE/env" # a test above restarts the servers
	answers issue
	renew --id "$QUAL_ID" --ca "$CMP_TLS_URL" --ca-type cmp
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"--ca-bundle"* ]]
	[ "$(token_objects privkey)" -eq 4 ]
	cat "$CMP_TLS_CA" "$PKI/chain.pem" >"$BATS_TEST_TMPDIR/tls-bundle.pem"
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --ca-bundle "$BATS_TEST_TMPDIR/tls-bundle.pem" \
		--id "$QUAL_ID" --ca "$CMP_TLS_URL" --ca-type cmp
	[ "$status" -eq 0 ]
	[ "$(jfield channel <<<"$output")" = "cmp:$CMP_TLS_URL" ]
	grep -q '"POST /pkix/' "$CMP_STATE/nginx-access.log"
	[ "$(grep -c '^kur' "$CMP_STATE/log")" -eq 1 ]
}

@test "interop: OpenSSL's cmp client (kur, then kur with polling) against the test CA" {
	id=$(token_cert_only qualified -300d +20d)
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$BATS_TEST_TMPDIR/new.key" 2>/dev/null
	answers issue 'wait 2 1'
	for n in 1 2; do
		run openssl cmp -cmd kur -server "127.0.0.1:$CMP_PORT" -path pkix/ \
			-trusted "$PKI/root.crt" -untrusted "$PKI/chain.pem" \
			-cert "$BATS_TEST_TMPDIR/certs/$id.pem" -key "$BATS_TEST_TMPDIR/certs/$id.key" \
			-newkey "$BATS_TEST_TMPDIR/new.key" -certout "$BATS_TEST_TMPDIR/out$n.pem"
		[ "$status" -eq 0 ]
		[ "$(openssl x509 -in "$BATS_TEST_TMPDIR/out$n.pem" -noout -pubkey)" = \
			"$(openssl pkey -in "$BATS_TEST_TMPDIR/new.key" -pubout)" ]
		openssl verify -CAfile "$PKI/root.crt" -untrusted "$PKI/chain.pem" "$BATS_TEST_TMPDIR/out$n.pem"
	done
	[ "$(tids | wc -l)" -eq 2 ]
	[ "$(grep -c '^pollReq' "$CMP_STATE/log")" -eq 3 ]
}

@test "interop: OpenSSL's mock CMP server accepts our kur (ps-renew --key with a pre-made key)" {
	# The 3.0 mock server returns one fixed certificate and wants it to
	# carry the old certificate's issuer and serial.
	pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --pin "$PIN" \
		--keypairgen --key-type rsa:2048 --id 5b --label next >/dev/null 2>&1
	pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --read-object --type pubkey \
		--id 5b -o "$BATS_TEST_TMPDIR/pub.der" 2>/dev/null
	openssl pkey -pubin -inform DER -in "$BATS_TEST_TMPDIR/pub.der" -out "$BATS_TEST_TMPDIR/pub.pem"
	serial=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")
	"$MKPKI" issue "$PKI" qualified "$BATS_TEST_TMPDIR/pub.pem" "$BATS_TEST_TMPDIR/rsp.crt" \
		-1m +365d "" "$serial"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	openssl cmp -port "$port" -max_msgs 4 -srv_cert "$PKI/cmp-ra.crt" -srv_key "$PKI/cmp-ra.key" \
		-srv_trusted "$PKI/root.crt" -srv_untrusted "$PKI/chain.pem" \
		-rsp_cert "$BATS_TEST_TMPDIR/rsp.crt" -rsp_extracerts "$PKI/chain.pem" \
		</dev/null >"$BATS_TEST_TMPDIR/mock.log" 2>&1 3>&- &
	MOCK_PID=$!
	for i in $(seq 50); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && break
		sleep 0.1
	done
	renew --id "$QUAL_ID" --key 5b --ca "cmp://127.0.0.1:$port/pkix/"
	[ "$status" -eq 0 ]
	[ "$(jfield state <<<"$output")" = issued ]
	[ "$(jq -r .cert <<<"$output" | openssl x509 -noout -fingerprint -sha256)" = \
		"$(openssl x509 -in "$BATS_TEST_TMPDIR/rsp.crt" -noout -fingerprint -sha256)" ]
	# the key pair was ours before and stays
	[ "$(token_objects privkey)" -eq 5 ]
}

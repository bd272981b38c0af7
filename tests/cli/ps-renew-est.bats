#!/usr/bin/env bats
# The est: channel against nginx (TLS, client certificates checked against
# the test PKI) in front of the EST test server: the TLS client key never
# leaves the token.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

setup_file() {
	export BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR
	PKI=$(pki_dir)
	start_est "$BATS_FILE_TMPDIR/est" "$PKI" || return 1
	cat "$EST_TLS_CA" "$PKI/chain.pem" > "$BATS_FILE_TMPDIR/bundle.pem"
	export PKI
}

teardown_file() {
	stop_servers
}

setup() {
	psrenew_setup
	demo_token
	BUNDLE=$BATS_FILE_TMPDIR/bundle.pem
	EST="est://localhost:$EST_PORT"
	rm -f "$EST_STATE"/answers* "$EST_STATE"/counters* 2>/dev/null || true
}

answers() {
	printf '%s\n' "$@" > "$EST_STATE/answers"
}

renew() {
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --ca-bundle "$BUNDLE" "$@"
}

fetch() {
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--ca-bundle "$BUNDLE" "$@"
}

@test "simplereenroll issues at once; the TLS client was the current certificate" {
	answers issue
	renew --id "$QUAL_ID" --ca "$EST"
	[ "$status" -eq 0 ]
	[ "$(jfield state <<<"$output")" = issued ]
	jq -r .cert <<<"$output" > "$BATS_TEST_TMPDIR/new.pem"
	[ "$(cert_key_id "$BATS_TEST_TMPDIR/new.pem")" = "$(jfield key_id <<<"$output")" ]
	[ -n "$(cert_qc_statements "$BATS_TEST_TMPDIR/new.pem")" ]
	# the old certificate was the TLS client: nginx refused its purpose (a
	# qualified certificate has no clientAuth), the server verified it
	tail -1 "$EST_STATE/log" | grep -q 'simplereenroll.*status=200.*client=serialNumber=P123456,'
	grep -q 'verify=FAILED:unsuitable certificate purpose' "$EST_STATE/nginx-access.log"
	fetch --pending
	[ "$status" -eq 0 ]
	[ "$(jfield type <<<"$output")" = qualified ]
}

@test "202 with Retry-After is pending; ps-fetch in a new process sends it again and installs" {
	answers 'pending 1' 'pending 1' issue
	renew --id "$COMM_ID" --ca "$EST"
	[ "$status" -eq 3 ]
	[ "$(jfield state <<<"$output")" = pending ]
	id=$(jfield request_id <<<"$output")
	sleep 1
	fetch --pending
	[ "$status" -eq 3 ]
	sleep 1
	fetch --pending
	[ "$status" -eq 0 ]
	[ "$(jfield request_id <<<"$output")" = "$id" ]
	[ "$(jq -r .state "$PSRENEW_STATE_DIR/requests/$id.json")" = installed ]
	[ "$(grep -c simplereenroll "$EST_STATE/log")" -ge 3 ]
}

@test "ps-renew | ps-fetch --wait waits out the Retry-After" {
	answers 'pending 1' issue
	run bash -c "ps-renew --module '$PKCS11_MODULE' --pin 'file:$PIN_FILE' --token '$TOKEN_URI' \
		--id '$QUAL_ID' --ca '$EST' --ca-bundle '$BUNDLE' 2>/dev/null |
		ps-fetch --pin 'file:$PIN_FILE' --ca-bundle '$BUNDLE' --wait=60 2>/dev/null"
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
	[ "$(jfield type <<<"$output")" = qualified ]
}

@test "a refusal is exit 5 with the server's words; the new key pair is removed" {
	answers reject
	renew --id "$QUAL_ID" --ca "$EST"
	[ "$status" -eq 5 ]
	[ "$(jfield state <<<"$output")" = rejected ]
	[[ "$(jfield message <<<"$output")" == "HTTP 400"* ]]
	[ "$(token_objects privkey)" -eq 4 ]
}

@test "a server error is exit 4 and the request is kept for a later try" {
	answers error issue
	renew --id "$QUAL_ID" --ca "$EST"
	[ "$status" -eq 4 ]
	[ "$(jfield state <<<"$output")" = unsubmitted ]
	[ "$(token_objects privkey)" -eq 5 ]
	fetch --pending
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
}

@test "a server that is down is exit 4, nothing lost" {
	renew --id "$QUAL_ID" --ca "est://127.0.0.1:1"
	[ "$status" -eq 4 ]
	[ "$(jfield state <<<"$output")" = unsubmitted ]
	[ "$(ls "$PSRENEW_STATE_DIR/requests" | wc -l)" -eq 1 ]
	[ "$(token_objects privkey)" -eq 5 ]
}

@test "a server certificate that does not verify is refused; verification stays on" {
	answers issue
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$QUAL_ID" --ca "$EST"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"does not verify"* && "$stderr" == *"--ca-bundle"* ]]
	[ "$(token_objects privkey)" -eq 4 ]
}

@test "an expired current certificate cannot authenticate: refused before anything is made" {
	renew --id "$EXPIRED_ID" --ca "$EST"
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output")" = expired ]
	[ "$(token_objects privkey)" -eq 4 ]
}

@test "a client certificate the server does not trust is refused (exit 5), key removed" {
	# Jan's certificate from a CA the server does not know, its key on the token
	stranger_token stranger
	answers issue
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token 'pkcs11:token=stranger' --id 5a --ca "$EST" --ca-bundle "$BUNDLE"
	[ "$status" -eq 5 ]
	[ "$(jfield state <<<"$output")" = rejected ]
	[ "$(pkcs11-tool --module "$PKCS11_MODULE" --token-label stranger --login --pin "$PIN" \
		-O --type privkey 2>/dev/null | grep -c '^Private Key')" -eq 1 ]
}

@test "https:// with --ca-type est is the same channel as est://" {
	answers issue
	renew --id "$QUAL_ID" --ca "https://localhost:$EST_PORT/.well-known/est" --ca-type est
	[ "$status" -eq 0 ]
	[ "$(jfield channel <<<"$output")" = "est://localhost:$EST_PORT" ]
	[ "$(jfield state <<<"$output")" = issued ]
	renew --id "$COMM_ID" --ca "https://localhost:$EST_PORT/other/path" --ca-type est
	[ "$status" -eq 2 ]
	[ "$(token_objects privkey)" -eq 5 ]
}

@test "--cacerts fetches /cacerts, checks them against the trust anchors and writes them" {
	run --separate-stderr ps-renew --ca "est://localhost:$EST_PORT" --ca-bundle "$BUNDLE" \
		--cacerts "$BATS_TEST_TMPDIR/cacerts.pem" </dev/null
	[ "$status" -eq 0 ]
	[ "$(grep -c 'BEGIN CERTIFICATE' "$BATS_TEST_TMPDIR/cacerts.pem")" -eq 3 ]
	openssl verify -CAfile "$PKI/root.crt" -untrusted "$BATS_TEST_TMPDIR/cacerts.pem" \
		"$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem"
	# trust for TLS only, not for the CA: they do not check, nothing written
	run --separate-stderr ps-renew --ca "est://localhost:$EST_PORT" --ca-bundle "$EST_TLS_CA" \
		--cacerts "$BATS_TEST_TMPDIR/no.pem" </dev/null
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"does not verify"* ]]
	[ ! -e "$BATS_TEST_TMPDIR/no.pem" ]
	# with a certificate: the CA certificates first, then the renewal
	answers issue
	renew --id "$QUAL_ID" --ca "est://localhost:$EST_PORT" --cacerts "$BATS_TEST_TMPDIR/c2.pem"
	[ "$status" -eq 0 ]
	[ -s "$BATS_TEST_TMPDIR/c2.pem" ]
	[ "$(jfield state <<<"$output")" = issued ]
	# a channel without /cacerts
	renew --id "$COMM_ID" --ca mail:- --cacerts "$BATS_TEST_TMPDIR/c3.pem"
	[ "$status" -eq 2 ]
	[ "$(token_objects privkey)" -eq 5 ]
}

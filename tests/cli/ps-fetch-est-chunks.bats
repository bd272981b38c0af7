#!/usr/bin/env bats
# ps-fetch --pending polls many due EST requests in chunks (lib/fetch.c,
# POLL_CHUNK) over the same TLS connections (lib/http.c keeps
# ps_http_parallel's connection cache from one chunk to the next): every
# request is polled and recorded once, and no chunk opens connections of
# its own (each TLS handshake signs once with the key on the token).

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

polls() {
	grep -c 'simplereenroll' "$EST_STATE/log" || true
}

# N pending requests for the commercial certificate (new EC keys).
pending_requests() {
	local n=$1 i
	ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --json --quiet |
		jq -c --arg id "$COMM_ID" 'select(.id == $id)' > "$BATS_TEST_TMPDIR/cert.json"
	for ((i = 0; i < n; i++)); do cat "$BATS_TEST_TMPDIR/cert.json"; done \
		> "$BATS_TEST_TMPDIR/in.jsonl"
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--ca "$EST" --ca-bundle "$BUNDLE" --key-type ec:prime256v1 --force \
		< "$BATS_TEST_TMPDIR/in.jsonl"
	[ "$status" -eq 3 ]
	[ "$(grep -c '"state":"pending"' <<<"$output")" -eq "$n" ]
}

@test "more due EST requests than one chunk: each polled and recorded once, over the first chunk's 8 connections" {
	echo 'pending 600' > "$EST_STATE/answers"
	pending_requests 70 # two chunks: 64 and 6
	before=$(polls)
	count=$BATS_TEST_TMPDIR/count
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" \
		P11FAULT_COUNT_FILE="$count" ps-fetch --module "$P11FAULT" \
		--pin "file:$PIN_FILE" --ca-bundle "$BUNDLE" --pending --now
	[ "$status" -eq 3 ] || { echo "$stderr"; false; }
	[ "$(( $(polls) - before ))" -eq 70 ]
	[ "$(grep -c '"state":"pending"' <<<"$output")" -eq 70 ]
	[ "$(jq -r .request_id <<<"$output" | sort -u | wc -l)" -eq 70 ]
	for f in "$PSRENEW_STATE_DIR"/requests/*.json; do
		[ "$(jq -r '"\(.state) \(.polls)"' "$f")" = "pending 2" ]
	done
	# one TLS handshake per lane (8), each signed once on the token: the
	# later chunks went over the connections the first one opened
	cat "$count"
	[ "$(awk '$1 == "C_SignInit" { print $2 }' "$count")" -eq 8 ]
}

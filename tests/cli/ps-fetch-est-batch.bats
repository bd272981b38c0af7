#!/usr/bin/env bats
# ps-fetch --pending polls due EST requests together (several polls in
# flight over several TLS connections, lib/ca_est.c ps_est_poll_many):
# each request still gets its own answer, each once. More due requests
# than one chunk (lib/fetch.c POLL_CHUNK) go over the connections the first
# chunk opened (lib/http.c keeps ps_http_parallel's connection cache).

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

polls() {
	grep -c 'simplereenroll' "$EST_STATE/log" || true
}

# N pending requests for the commercial certificate (tests/lib/psrenew.bash).
pending_requests() { renew_pending "$1" "$EST" "$BUNDLE"; }

fetch() {
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--ca-bundle "$BUNDLE" "$@"
}

@test "12 due EST requests: one poll each, every one installs its own certificate" {
	answers 'pending 1' issue
	pending_requests 12
	before=$(polls)
	fetch --pending --now
	[ "$status" -eq 0 ]
	[ "$(( $(polls) - before ))" -eq 12 ]
	[ "$(grep -c '"kind":"cert"' <<<"$output")" -eq 12 ]
	# twelve certificates, twelve keys: each went to the request of its key
	[ "$(jq -r .serial_hex <<<"$output" | sort -u | wc -l)" -eq 12 ]
	[ "$(jq -r .id <<<"$output" | sort -u | wc -l)" -eq 12 ]
	for f in "$PSRENEW_STATE_DIR"/requests/*.json; do
		[ "$(jq -r .state "$f")" = installed ]
	done
}

@test "still pending: each request keeps its own Retry-After, then installs" {
	answers 'pending 1' 'pending 1' issue
	pending_requests 5
	before=$(polls)
	fetch --pending --now
	[ "$status" -eq 3 ]
	[ "$(( $(polls) - before ))" -eq 5 ]
	[ "$(grep -c '"state":"pending"' <<<"$output")" -eq 5 ]
	sleep 1
	fetch --pending
	[ "$status" -eq 0 ]
	[ "$(( $(polls) - before ))" -eq 10 ]
	[ "$(grep -c '"kind":"cert"' <<<"$output")" -eq 5 ]
}

@test "the server fails (HTTP 500): every request stays pending, exit 4" {
	answers 'pending 1' error issue
	pending_requests 4
	before=$(polls)
	fetch --pending --now
	[ "$status" -eq 4 ]
	[ "$(( $(polls) - before ))" -eq 4 ]
	for f in "$PSRENEW_STATE_DIR"/requests/*.json; do
		[ "$(jq -r .state "$f")" = pending ]
	done
	fetch --pending --now
	[ "$status" -eq 0 ]
	[ "$(grep -c '"kind":"cert"' <<<"$output")" -eq 4 ]
}

@test "still pending, recorded by the batch: each record once, its next poll from Retry-After" {
	answers 'pending 600'
	pending_requests 6
	before=$(polls)
	t0=$EPOCHSECONDS
	fetch --pending --now
	[ "$status" -eq 3 ]
	[ "$(( $(polls) - before ))" -eq 6 ]
	[ "$(grep -c '"state":"pending"' <<<"$output")" -eq 6 ]
	for f in "$PSRENEW_STATE_DIR"/requests/*.json; do
		[ "$(jq -r '"\(.state) \(.polls) \(.ca_answer)"' "$f")" = "pending 2 pending" ]
		next=$(date -d "$(jq -r .next_poll_at "$f")" +%s)
		((next >= t0 + 600 && next <= EPOCHSECONDS + 600))
	done
	# what was printed is what was recorded
	for id in $(jq -r .request_id <<<"$output"); do
		[ "$(jq -c 'del(.kind)' "$PSRENEW_STATE_DIR/requests/$id.json")" = \
			"$(jq -c --arg id "$id" 'select(.request_id == $id) | del(.kind)' <<<"$output")" ]
	done
	# not due for 10 minutes: a plain --pending asks nothing
	fetch --pending
	[ "$status" -eq 3 ]
	[ "$(( $(polls) - before ))" -eq 6 ]
	ls -A "$PSRENEW_STATE_DIR"/requests/ | { ! grep -v "\.json$"; } # no temporary file left
}

@test "more due EST requests than one chunk: each polled and recorded once, over the first chunk's 8 connections" {
	answers 'pending 600'
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

#!/usr/bin/env bats
# ps-fetch --pending polls waiting CMP requests together (several polls in
# flight over several connections, lib/ca_cmp.c cmp_poll_many) against the
# test CMP CA, which serves each connection on a thread of its own: each
# request still gets its own answer, each once, and an HTTP 500 on some
# polls leaves the others' transactions as they should be.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

setup_file() {
	export BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR
	PKI=$(pki_dir)
	start_cmp "$BATS_FILE_TMPDIR/cmp" "$PKI" || return 1
	export PKI
}

teardown_file() {
	stop_servers
}

setup() {
	psrenew_setup
	demo_token
	CMP="cmp://127.0.0.1:$CMP_PORT/pkix/"
	rm -f "$CMP_STATE/answers" "$CMP_STATE/delay"
	: >"$CMP_STATE/log"
}

answers() {
	printf '%s\n' "$@" >"$CMP_STATE/answers"
}

# N pending requests for the commercial certificate (tests/lib/psrenew.bash).
pending_requests() { renew_pending "$1" "$CMP" "$PKI/chain.pem"; }

fetch() {
	: >"$CMP_STATE/conns"
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--ca-bundle "$PKI/chain.pem" "$@"
}

# pollReqs in the CA's log, and those it answered with an HTTP 500.
polls() { grep -c '^pollReq tid=' "$CMP_STATE/log" || true; }
polls500() { grep -c '^pollReq tid=.* -> http500$' "$CMP_STATE/log" || true; }
# The most connections the CA served at once during the last fetch.
most_at_once() { sort -n "$CMP_STATE/conns" | tail -1; }

state_of() { jq -r .state "$PSRENEW_STATE_DIR/requests/$1.json"; }
cookie_of() { jq -r .cookie "$PSRENEW_STATE_DIR/requests/$1.json"; }

@test "12 waiting CMP requests: polled over several connections at once, each once, each installs its own certificate" {
	answers 'wait 2 30'
	pending_requests 12
	echo 200 >"$CMP_STATE/delay" # each answer takes 0.2 s: polls overlap
	: >"$CMP_STATE/log"
	fetch --pending --now
	[ "$status" -eq 3 ]
	[ "$(polls)" -eq 12 ]
	[ "$(most_at_once)" -ge 2 ]
	# each transaction polled once
	[ "$(sed -n 's/^pollReq tid=\([0-9a-f]*\) .*/\1/p' "$CMP_STATE/log" | sort -u | wc -l)" -eq 12 ]
	[ "$(grep -c '"state":"pending"' <<<"$output")" -eq 12 ]
	rm -f "$CMP_STATE/delay"
	: >"$CMP_STATE/log"
	fetch --pending --now
	[ "$status" -eq 0 ]
	[ "$(polls)" -eq 12 ]
	[ "$(grep -c '^certConf tid=.* -> pkiconf$' "$CMP_STATE/log")" -eq 12 ]
	[ "$(grep -c '"kind":"cert"' <<<"$output")" -eq 12 ]
	# twelve certificates for twelve keys: each went to its own request
	[ "$(jq -r .serial_hex <<<"$output" | sort -u | wc -l)" -eq 12 ]
	[ "$(jq -r .id <<<"$output" | sort -u | wc -l)" -eq 12 ]
	for f in "$PSRENEW_STATE_DIR"/requests/*.json; do
		[ "$(jq -r .state "$f")" = installed ]
	done
	[ "$(token_objects cert)" -eq 16 ]
}

@test "an HTTP 500 on some parallel polls: those stay pending with their transaction, the others go on; all install later" {
	# every third transaction: its second pollReq (the first of ps-fetch's;
	# ps-renew sends one at once) is answered HTTP 500
	answers 'wait 2 30' 'wait 2 30' 'wait 2 30 http500 2' 'wait 2 30' 'wait 2 30' \
		'wait 2 30 http500 2' 'wait 2 30' 'wait 2 30' 'wait 2 30 http500 2'
	pending_requests 9
	declare -A before
	for f in "$PSRENEW_STATE_DIR"/requests/*.json; do
		before[$(basename "$f" .json)]=$(jq -r .cookie "$f")
	done
	: >"$CMP_STATE/log"
	fetch --pending --now
	[ "$status" -eq 4 ]
	[ "$(polls)" -eq 9 ]
	[ "$(polls500)" -eq 3 ]
	# the three answered 500: pending, the stored transaction unchanged;
	# the six others: pending with the CA's new pollRep stored
	same=0 moved=0
	for id in "${!before[@]}"; do
		[ "$(state_of "$id")" = pending ]
		if [ "$(cookie_of "$id")" = "${before[$id]}" ]; then
			same=$((same + 1))
		else
			moved=$((moved + 1))
		fi
	done
	[ "$same" -eq 3 ]
	[ "$moved" -eq 6 ]
	[ "$(grep -c '"state":"pending"' <<<"$output")" -eq 9 ]
	# next pass: the six get their certificates, the three their pollRep
	: >"$CMP_STATE/log"
	fetch --pending --now
	[ "$status" -eq 3 ]
	[ "$(polls500)" -eq 0 ]
	[ "$(grep -c '"kind":"cert"' <<<"$output")" -eq 6 ]
	fetch --pending --now
	[ "$status" -eq 0 ]
	[ "$(grep -c '"kind":"cert"' <<<"$output")" -eq 3 ]
	for f in "$PSRENEW_STATE_DIR"/requests/*.json; do
		[ "$(jq -r .state "$f")" = installed ]
	done
	[ "$(token_objects cert)" -eq 13 ]
	# one transaction per request, from kur to certConf
	[ "$(grep -c '^kur tid=' "$CMP_STATE/log")" -eq 0 ]
}

#!/usr/bin/env bats
# What a batch of polls costs the CA and the token: a batch of CMP polls
# keeps its connections open (HTTP/1.1 keep-alive, counted from the test
# CA's STATE/conns: one line per connection), and reads its trust anchors
# once.

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

# N pending requests for the commercial certificate (tests/lib/psrenew.bash).
cmp_pending() { renew_pending "$1" "$CMP" "$PKI/chain.pem"; }

cmp_fetch() {
	: >"$CMP_STATE/conns"
	: >"$CMP_STATE/log"
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--ca-bundle "$PKI/chain.pem" "$@"
}

conns() { grep -c . "$CMP_STATE/conns" || true; }
exchanges() { grep -c . "$CMP_STATE/log" || true; }

@test "20 CMP polls, then 20 issued certificates with their certConf: at most 8 connections to the CA each time" {
	echo 'wait 2 30' >"$CMP_STATE/answers"
	cmp_pending 20
	cmp_fetch --pending --now
	[ "$status" -eq 3 ]
	[ "$(grep -c '"state":"pending"' <<<"$output")" -eq 20 ]
	[ "$(grep -c '^pollReq tid=' "$CMP_STATE/log")" -eq 20 ]
	[ "$(conns)" -ge 1 ]
	[ "$(conns)" -le 8 ]
	# pollReq and certConf: 40 exchanges over the same connections
	cmp_fetch --pending --now
	[ "$status" -eq 0 ]
	[ "$(grep -c '"kind":"cert"' <<<"$output")" -eq 20 ]
	[ "$(exchanges)" -eq 40 ]
	[ "$(conns)" -ge 1 ]
	[ "$(conns)" -le 8 ]
}

# The depth-1 elements of a stored CMP message (the cookie's Nth, from 1).
cookie_msg_tags() {
	jq -r .cookie "$1" | sed 's/^cmp1://' | cut -d' ' -f"$2" | base64 -d |
		openssl asn1parse -inform DER | grep ':d=1 '
}

@test "a waiting CMP request keeps the CA's certificates once: in the stored kup, not again in the stored pollRep" {
	echo 'wait 3 30' >"$CMP_STATE/answers"
	cmp_pending 2
	cmp_fetch --pending --now
	[ "$status" -eq 3 ]
	local f
	for f in "$PSRENEW_STATE_DIR"/requests/*.json; do
		cookie_msg_tags "$f" 1 >"$BATS_TEST_TMPDIR/kup"
		cookie_msg_tags "$f" 2 >"$BATS_TEST_TMPDIR/pollrep"
		grep -q 'cont \[ 1 \]' "$BATS_TEST_TMPDIR/kup"
		grep -q 'cont \[ 0 \]' "$BATS_TEST_TMPDIR/pollrep" # its protection
		run ! grep -q 'cont \[ 1 \]' "$BATS_TEST_TMPDIR/pollrep"
	done
	# the next poll resumes from it, and the one after installs
	cmp_fetch --pending --now
	[ "$status" -eq 3 ]
	cmp_fetch --pending --now
	[ "$status" -eq 0 ]
	[ "$(grep -c '"kind":"cert"' <<<"$output")" -eq 2 ]
}

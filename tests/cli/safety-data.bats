#!/usr/bin/env bats
# Safety rules about code and files named by data, and about what the tools
# leave behind: a signal stops the CA helper's processes, a record never
# chooses a PKCS#11 module, configuration and secret files others can write
# (or read) are refused, --cert URL, and the cert records JIP still needs.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
	demo_token
	CA_DIR=$BATS_TEST_TMPDIR/ca
	mkdir -p "$CA_DIR"
}

teardown() {
	# a helper group the tool under test left running (the base build)
	if [[ -s $BATS_TEST_TMPDIR/helper.pid ]]; then
		kill -KILL -- "-$(cat "$BATS_TEST_TMPDIR/helper.pid")" 2>/dev/null || true
	fi
}

# slow_helper DIR: a CA helper that starts a child which would write
# DIR/marker after 3 s, says it started (DIR/started), and waits.
slow_helper() {
	cat >"$1/slow-helper" <<'SH'
#!/bin/sh
echo $$ >"$1/../helper.pid"
(sleep 3; touch "$1/marker") &
touch "$1/started"
sleep 60
exit 3
SH
	chmod 755 "$1/slow-helper"
	echo "helper:$1/slow-helper $1"
}

# wait_for FILE: until FILE exists (at most about 30 s).
wait_for() {
	local i
	for ((i = 0; i < 300; i++)); do
		[[ -e $1 ]] && return 0
		sleep 0.1
	done
	echo "no $1" >&2
	return 1
}

# --- 13: a signal stops the CA helper and what it started ----------------

@test "SIGTERM to ps-renew stops the CA helper's process group: exit 143, the request kept" {
	ca=$(slow_helper "$CA_DIR")
	ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$QUAL_ID" --ca "$ca" \
		>"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	wait_for "$CA_DIR/started"
	kill -TERM "$pid"
	status=0
	wait "$pid" || status=$?
	cat "$BATS_TEST_TMPDIR/err"
	[ "$status" -eq 143 ]
	grep -q 'interrupted by SIGTERM' "$BATS_TEST_TMPDIR/err"
	grep -q 'run the same command again' "$BATS_TEST_TMPDIR/err"
	[ "$(jfield code <"$BATS_TEST_TMPDIR/out")" = interrupted ]
	# the request stays, unsubmitted, for the re-run
	[ "$(cat "$PSRENEW_STATE_DIR"/requests/*.json | jfield state)" = unsubmitted ]
	# past the child's delay: it was stopped with the helper
	sleep 4
	[ ! -e "$CA_DIR/marker" ]
	# the same command again finishes that request
	id=$(basename "$PSRENEW_STATE_DIR"/requests/*.json .json)
	mkdir -p "$CA_DIR/local"
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$QUAL_ID" --ca "helper:$LOCAL_SUBMIT -d $CA_DIR/local"
	[ "$status" -eq 0 ]
	[ "$(jfield request_id <<<"$output")" = "$id" ]
	[ "$(jfield state <<<"$output")" = issued ]
}

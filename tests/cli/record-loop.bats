#!/usr/bin/env bats
# The stdin record loop every binary that reads records shares: an
# upstream error record is passed on unchanged and its status counts in the
# exit status (the most severe wins, psrenew(7) "EXIT STATUS"); records a
# binary does not use are passed on unchanged.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
	# An empty configuration file (/dev/null is not a regular file).
	: >"$BATS_TEST_TMPDIR/empty.conf"
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/empty.conf
	demo_token
	E6='{"kind":"error","code":"token-full","status":6,"message":"full","office":"MV"}'
	E4='{"kind":"error","code":"ca-unreachable","status":4,"message":"later"}'
}

# each BINARY: the binary with what it needs to run on records alone.
each() {
	case $1 in
	ps-renew) echo ps-renew --dry-run ;;
	ps-fetch) echo ps-fetch ;;
	ps-jip-setserial) echo ps-jip-setserial --user jnovak ;;
	ps-token-clean)
		echo ps-token-clean --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --dry-run ;;
	esac
}

# errors_out: the error records of $output, compact and sorted.
errors_out() {
	grep '"kind": *"error"' <<<"$output" | jq -cS . || true
}

@test "an upstream error record is passed on unchanged and its status is the exit status" {
	local b
	for b in ps-renew ps-fetch ps-jip-setserial ps-token-clean; do
		# shellcheck disable=SC2046
		run --separate-stderr $(each "$b") <<<"$E6"
		echo "$b: status $status: $output" >&2
		[ "$status" -eq 6 ]
		[ "$(errors_out)" = "$(jq -cS . <<<"$E6")" ]
	done
}

@test "several upstream error records: the most severe status wins" {
	local b
	for b in ps-renew ps-fetch ps-jip-setserial ps-token-clean; do
		# shellcheck disable=SC2046
		run --separate-stderr $(each "$b") <<<"$E4"$'\n'"$E6"$'\n'"$E4"
		echo "$b: status $status: $output" >&2
		[ "$status" -eq 6 ]
		[ "$(errors_out | wc -l)" -eq 3 ]
	done
}

@test "records a binary does not use are passed on unchanged" {
	local b rec='{"kind":"note","text":"from an administrator","n":1}'
	for b in ps-fetch ps-jip-setserial; do
		# shellcheck disable=SC2046
		run --separate-stderr $(each "$b") <<<"$rec"
		echo "$b: status $status: $output" >&2
		[ "$status" -eq 0 ]
		[ "$(jq -cS . <<<"$output")" = "$(jq -cS . <<<"$rec")" ]
	done
}

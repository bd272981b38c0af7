#!/usr/bin/env bats
# README's "Start from nothing": its commands, taken from the README as
# written (the lines indented by four spaces), run in a fresh directory
# with the build's binaries, from an empty SoftHSM token to a renewal.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

# readme_start: the commands of the section, one script.
readme_start() {
	awk '/^Start from nothing/ { on = 1; next }
	     on && /^---/ && ++rules == 2 { exit }
	     on && /^    / { sub(/^    /, ""); print }' "$FIXTURE_ROOT/README"
}

@test "README \"Start from nothing\": every command works as written, and the renewal is made" {
	local script=$BATS_TEST_TMPDIR/start.sh
	readme_start >"$script"
	# the section is there and has what the issue asks for
	grep -q '^softhsm2-util --init-token' "$script"
	grep -q 'OID:0.4.0.1862.1.1' "$script"
	grep -q '^ps-status --expiring 30 | ps-renew --ca test | ps-fetch$' "$script"
	# as a person would: the environment of a shell, no test settings
	run --separate-stderr env -u PSRENEW_STATE_DIR -u PSRENEW_CONFIG -u SOFTHSM2_CONF \
		-u PKCS11_MODULE TMPDIR="$BATS_TEST_TMPDIR" bash -e "$script"
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	# step 4: one qualified certificate with its key; --expiring said 3
	[[ $output == *"exit status 3: something to renew"* ]]
	# the last ps-status: the old one superseded by the new, both qualified
	local last
	last=$(grep '^{' <<<"$output" | tail -2)
	[ "$(jq -r '.type' <<<"$last" | sort -u)" = qualified ]
	[ "$(jq -r 'select(.id == "01") | .state' <<<"$last")" = superseded ]
	[ "$(jq -r 'select(.id != "01") | .state' <<<"$last")" = valid ]
	[ "$(jq -r 'select(.id != "01") | .has_key' <<<"$last")" = true ]
	[ "$(jq -r 'select(.id != "01") | .days_left' <<<"$last")" -ge 364 ]
	[ "$(jq -r 'select(.id == "01") | .superseded_by' <<<"$last")" = \
		"$(jq -r 'select(.id != "01") | .serial_hex' <<<"$last")" ]
}

@test "psrenew(7) says what makes a certificate qualified, as the README's certificate has it" {
	local page
	page=$(sed 's/\\-/-/g' "$FIXTURE_ROOT/man/psrenew.7" | tr -s ' \n' ' ')
	[[ $page == *"QcCompliance (0.4.0.1862.1.1"* ]]
	[[ $page == *"QCStatements extension (1.3.6.1.5.5.7.1.3"* ]]
	grep -q 'statementId = OID:0.4.0.1862.1.1' "$FIXTURE_ROOT/README"
}

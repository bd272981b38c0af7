#!/usr/bin/env bats
# Dry runs are read-only and say what the real run would do; the state
# directory's messages say which directory is wrong and how.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
	: >"$BATS_TEST_TMPDIR/empty.conf"
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/empty.conf
	SH_DIR=$BATS_TEST_TMPDIR/script
	SH_CA="helper:$SCRIPTED_HELPER $SH_DIR"
	mkdir -p "$SH_DIR"
}

# token: the demo token and the options to use it.
token() {
	demo_token
	P11=(--module "$PKCS11_MODULE" --pin "file:$PIN_FILE")
}

# pending CERT_ID: a request for CERT_ID that the CA keeps pending; sets REQ.
pending() {
	printf '%s\n' pending >"$SH_DIR/answers"
	run --separate-stderr ps-renew "${P11[@]}" --token "$TOKEN_URI" \
		--id "$1" --ca "$SH_CA"
	[ "$status" -eq 3 ] || { echo "ps-renew: $status $output $stderr"; return 1; }
	REQ=$(jq -r 'select(.kind == "request") | .request_id' <<<"$output")
	[ -f "$PSRENEW_STATE_DIR/requests/$REQ.json" ]
}

# tree DIR: every path under DIR with its type and mode.
tree() {
	find "$1" -mindepth 1 -printf '%P %y %m\n' | sort
}

# ro CMD...: CMD with the state directory mounted read-only (a private
# mount namespace: nothing stays mounted).
ro() {
	unshare -m sh -c 'mount --bind "$1" "$1" &&
		mount -o remount,bind,ro "$1" && shift && exec "$@"' \
		sh "$PSRENEW_STATE_DIR" "$@"
}

need_ro() {
	unshare -m sh -c 'mount --bind "$1" "$1" &&
		mount -o remount,bind,ro "$1"' sh "$BATS_TEST_TMPDIR" \
		2>/dev/null || skip "no read-only bind mounts here"
}

# ------------------------------------------------------------------ item 3

@test "ps-fetch --pending --dry-run on a mistyped --state-dir creates nothing and says it does not exist" {
	run --separate-stderr ps-fetch --pending --dry-run \
		--state-dir "$BATS_TEST_TMPDIR/typo/state"
	[ "$status" -eq 2 ]
	[[ $stderr == *"$BATS_TEST_TMPDIR/typo/state does not exist"* ]]
	[[ $stderr != *"nothing pending"* ]]
	[ ! -e "$BATS_TEST_TMPDIR/typo" ]
}

@test "ps-fetch --pending --dry-run on a state directory without sub-directories creates none" {
	mkdir -m 0700 "$PSRENEW_STATE_DIR"
	run --separate-stderr ps-fetch --pending --dry-run
	[ "$status" -eq 0 ]
	[ -z "$(tree "$PSRENEW_STATE_DIR")" ]
}

@test "ps-fetch --dry-run takes no lock: a pending request on a read-only state directory" {
	need_ro
	token
	pending "$QUAL_ID"
	rm -rf "$PSRENEW_STATE_DIR/locks"
	before=$(tree "$PSRENEW_STATE_DIR")
	run --separate-stderr ro ps-fetch "${P11[@]}" --pending --dry-run
	[ "$status" -eq 3 ]
	[ "$(jfield request_id <<<"$output")" = "$REQ" ]
	run --separate-stderr ro ps-fetch "${P11[@]}" --dry-run "$REQ"
	[ "$status" -eq 3 ]
	[ "$(jfield request_id <<<"$output")" = "$REQ" ]
	[ "$(tree "$PSRENEW_STATE_DIR")" = "$before" ]
	# without the read-only mount too: no locks/ made, no lock file
	run --separate-stderr ps-fetch "${P11[@]}" --pending --dry-run
	[ "$status" -eq 3 ]
	[ "$(tree "$PSRENEW_STATE_DIR")" = "$before" ]
}

@test "ps-token-clean --dry-run creates no state sub-directory" {
	token
	mkdir -m 0700 "$PSRENEW_STATE_DIR"
	run --separate-stderr ps-token-clean "${P11[@]}" --token "$TOKEN_URI" \
		--orphans --dry-run
	[ -z "$(tree "$PSRENEW_STATE_DIR")" ]
}

# ---------------------------------------------- item 6: the state directory

@test "a state sub-directory with a wrong mode: the message names it, its mode and the mode wanted" {
	for sub in requests locks; do
		rm -rf "$PSRENEW_STATE_DIR"
		mkdir -m 0700 -p "$PSRENEW_STATE_DIR/requests" "$PSRENEW_STATE_DIR/locks"
		chmod 0775 "$PSRENEW_STATE_DIR/$sub"
		run --separate-stderr ps-fetch --pending
		[ "$status" -eq 2 ]
		[[ $stderr == *"refusing $PSRENEW_STATE_DIR/$sub: it has mode 0775, wants 0700"* ]]
		[[ $stderr != *"File exists"* && $stderr != *" or "*"/locks"* ]]
		[[ $stderr != *"Operation not permitted"* ]]
	done
}

@test "a state directory that is a symlink: the message says it is a symlink" {
	mkdir -m 0700 "$BATS_TEST_TMPDIR/real"
	ln -s "$BATS_TEST_TMPDIR/real" "$PSRENEW_STATE_DIR"
	run --separate-stderr ps-fetch --pending
	[ "$status" -eq 2 ]
	[[ $stderr == *"refusing the state directory $PSRENEW_STATE_DIR: it is a symlink"* ]]
	[[ $stderr != *"Not a directory"* ]]
	[ -z "$(find "$BATS_TEST_TMPDIR/real" -mindepth 1)" ]
}

# ------------------------------------------------------------------ item 4

@test "ps-renew --dry-run refuses a certificate that already has a pending request, as the real run does" {
	token
	pending "$QUAL_ID"
	before=$(tree "$PSRENEW_STATE_DIR")
	run --separate-stderr ps-renew "${P11[@]}" --token "$TOKEN_URI" \
		--id "$QUAL_ID" --dry-run
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output")" = already-pending ]
	[[ $(jfield message <<<"$output") == *"already has request $REQ (pending)"* ]]
	[ "$(tree "$PSRENEW_STATE_DIR")" = "$before" ]
	# the real run says the same
	run --separate-stderr ps-renew "${P11[@]}" --token "$TOKEN_URI" \
		--id "$QUAL_ID" --ca "$SH_CA"
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output")" = already-pending ]
}

@test "ps-renew --dry-run plans a record given twice once, and refuses the second as the real run does" {
	token
	run --separate-stderr ps-status "${P11[@]}" --token "$TOKEN_URI" --json
	rec=$(jq -c --arg id "$QUAL_ID" 'select(.kind == "cert" and .id == $id)' <<<"$output")
	[ -n "$rec" ]
	run --separate-stderr ps-renew "${P11[@]}" --dry-run <<<"$rec"$'\n'"$rec"
	[ "$status" -eq 5 ]
	[ "$(jfield state <<<"$output" | grep -c planned)" -eq 1 ]
	[ "$(jfield code <<<"$output" | grep -c already-pending)" -eq 1 ]
	[ ! -e "$PSRENEW_STATE_DIR" ]
	printf '%s\n' pending >"$SH_DIR/answers"
	run --separate-stderr ps-renew "${P11[@]}" --ca "$SH_CA" <<<"$rec"$'\n'"$rec"
	[ "$status" -eq 5 ]
	[ "$(jfield state <<<"$output" | grep -c pending)" -eq 1 ]
	[ "$(jfield code <<<"$output" | grep -c already-pending)" -eq 1 ]
}

# ----------------------------------------------------------------- item 11

@test "ps-renew --all-expiring says \"1 day\" and that the records on stdin were not read" {
	token
	run --separate-stderr ps-status "${P11[@]}" --token "$TOKEN_URI" --json
	rec=$(jq -c --arg id "$QUAL_ID" 'select(.kind == "cert" and .id == $id)' <<<"$output")
	[ -n "$rec" ]
	run --separate-stderr ps-renew "${P11[@]}" --all-expiring 1 --dry-run <<<"$rec"
	[ "$status" -eq 0 ]
	[[ $stderr == *"nothing expires within 1 day"* ]]
	[[ $stderr != *"1 days"* ]]
	[[ $stderr == *"the records on stdin were not read"* ]]
	[ -z "$output" ]
	# from a pipe too, once its records are there
	run --separate-stderr bash -c 'printf "%s\n" "$1" |
		{ while ! read -r -t 0; do :; done; exec "${@:2}"; }' _ "$rec" \
		ps-renew "${P11[@]}" --all-expiring 1 --dry-run
	[[ $stderr == *"the records on stdin were not read"* ]]
	# nothing on stdin: no word about it
	run --separate-stderr ps-renew "${P11[@]}" --all-expiring 1 --dry-run </dev/null
	[ "$status" -eq 0 ]
	[[ $stderr != *"stdin"* ]]
}

# ----------------------------------------------------------------- item 12

@test "ps-token-clean --orphans leaves the key of a request waiting on the CA alone, exit 0, every run" {
	token
	pending "$QUAL_ID"
	key=$(jq -r .key_id "$PSRENEW_STATE_DIR/requests/$REQ.json")
	for i in 1 2; do
		run --separate-stderr ps-token-clean "${P11[@]}" --token "$TOKEN_URI" --orphans --yes
		[ "$status" -eq 0 ]
		[ -z "$(jq -c 'select(.kind == "error")' <<<"$output")" ]
	done
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" \
		--login --pin "$PIN" -O 2>/dev/null | grep -qi "ID: *$key"
	# named with --id it is refused, with a hint for a pending request
	run --separate-stderr ps-token-clean "${P11[@]}" --token "$TOKEN_URI" --id "$key" --yes
	[ "$status" -eq 5 ]
	[[ $(jq -r 'select(.kind == "error") | .hint' <<<"$output") == *"has not issued its certificate yet"* ]]
}

@test "ps-token-clean: the hint for an issued request's key says it is issued and how to install it" {
	token
	pending "$QUAL_ID"
	# as a CA answer psrenew did not install leaves it
	jq '.state = "issued"' "$PSRENEW_STATE_DIR/requests/$REQ.json" >"$BATS_TEST_TMPDIR/r"
	cp "$BATS_TEST_TMPDIR/r" "$PSRENEW_STATE_DIR/requests/$REQ.json"
	run --separate-stderr ps-token-clean "${P11[@]}" --token "$TOKEN_URI" --orphans --yes
	[ "$status" -eq 5 ]
	hint=$(jq -r 'select(.kind == "error") | .hint' <<<"$output")
	[[ $hint == *"issued its certificate, which is not installed yet: ps-fetch $REQ installs it"* ]]
	[[ $hint != *"has not issued"* ]]
}

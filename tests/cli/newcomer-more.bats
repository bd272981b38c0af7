#!/usr/bin/env bats
# A newcomer's rough edges, continued: configuration errors with file, line
# and key; cert records that lack a field; progress lines on a terminal the
# tools of a pipeline share; tokens with the same label; notes for people
# in cron; days counted as the page says.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
}

# conf LINE...: a psrenew.conf of ours (mode 0600) in $CONF.
conf() {
	CONF=$BATS_TEST_TMPDIR/psrenew.conf
	printf '%s\n' "$@" >"$CONF"
	chmod 600 "$CONF"
}

@test "a cert record without token or serial_hex says which field is missing" {
	local in
	for in in '{"kind":"cert"}' '{"kind":"cert","token":"pkcs11:token=x"}' \
		'{"kind":"cert","serial_hex":"0A"}'; do
		run --separate-stderr ps-renew --json --ca helper:/bin/false \
			--module /nonexistent.so <<<"$in"
		[ "$status" -eq 1 ]
		[ "$(jfield code <<<"$output")" = bad-record ]
		[[ $stderr != *"?"* ]]
		[[ $in == *token* || $stderr == *'no "token"'* ]]
		[[ $in == *serial_hex* || $stderr == *'"serial_hex"'* ]]
		[[ $stderr == *"does not say which certificate to renew"* ]]
	done
}

@test "a bad value in the configuration names the file, line and key, whichever command reads it" {
	local c
	for c in "[ca.x]|channel = https://h/|timeout = 5s|timeout|a number of seconds" \
		"[ca.x]|channel = https://h/|type = cmq|type|one of the values" \
		"[jip]|user = jnovak|backend = wss|backend|one of the values" \
		"[jip]||ws-version = 2|ws-version|one of the values"; do
		IFS='|' read -r sec l2 l3 key what <<<"$c"
		conf "$sec" "$l2" "$l3"
		run --separate-stderr ps-status --json --config "$CONF" --module /nonexistent.so
		[ "$status" -eq 2 ]
		[ "$(jfield code <<<"$output")" = bad-config ]
		[[ $stderr == *"$CONF, line 3, $sec $key: '${l3#* = }' is not $what"* ]]
	done
}

@test "a [token.NAME] without uri, or with a bad uri, names the file and line" {
	conf '[token.me]' '' 'pin = env:X'
	run --separate-stderr ps-status --config "$CONF" --module /nonexistent.so
	[ "$status" -eq 2 ]
	[[ $stderr == *"$CONF, line 3, [token.me] needs both uri and pin: it has no uri"* ]]
	conf '[token.me]' '' 'uri = foo:bar' 'pin = env:X'
	run --separate-stderr ps-status --config "$CONF" --module /nonexistent.so
	[ "$status" -eq 2 ]
	[[ $stderr == *"$CONF, line 3, [token.me] uri: invalid PKCS#11 URI 'foo:bar'"* ]]
	conf '[token.me]' 'uri = pkcs11:object=x' 'pin = env:X'
	run --separate-stderr ps-status --config "$CONF" --module /nonexistent.so
	[ "$status" -eq 2 ]
	[[ $stderr == *"$CONF, line 2, [token.me] uri: names no token"* ]]
}

@test "a [ca.NAME] channel that does not work names the file, line and key" {
	conf '[ca.x]' '' 'channel = https://h/x'
	run --separate-stderr ps-renew --config "$CONF" --ca x --token pkcs11:token=x --id 00 \
		--module /nonexistent.so </dev/null
	[ "$status" -eq 2 ]
	[[ $stderr == *"$CONF, line 3, [ca.x] channel: https://h/x does not say which protocol to speak"* ]]
	[[ $stderr == *"hint: add type = cmp or type = est"* && $stderr != *--ca-type* ]]
	conf '[ca.x]' 'type = est' 'channel = https://h/x'
	run --separate-stderr ps-renew --config "$CONF" --ca x --token pkcs11:token=x --id 00 \
		--module /nonexistent.so </dev/null
	[ "$status" -eq 2 ]
	[[ $stderr == *"$CONF, line 3, [ca.x] channel: an EST URL's path is"* ]]
	conf '[ca.x]' 'channel = ftp:h'
	run --separate-stderr ps-renew --config "$CONF" --ca x --token pkcs11:token=x --id 00 \
		--module /nonexistent.so </dev/null
	[ "$status" -eq 2 ]
	[[ $stderr == *"$CONF, line 2, [ca.x] channel: unknown CA channel 'ftp:h'"* ]]
}

@test "ps-status --human: two tokens with the same label are told apart by their serial" {
	local out slot s1 s2
	softhsm_token TokenME
	token_cert qualified -1d +300d >/dev/null
	softhsm_token other
	out=$(softhsm2-util --init-token --free --label TokenME --so-pin "$SO_PIN" --pin "$PIN")
	slot=${out##* slot }
	pkcs11-tool --module "$SOFTHSM_MODULE" --slot "$slot" --login --pin "$PIN" \
		--write-object "$(ls "$BATS_TEST_TMPDIR"/certs/*.pem)" --type cert --id 01 >/dev/null
	token_cert commercial -1d +300d >/dev/null
	run --separate-stderr ps-status --human --module "$PKCS11_MODULE"
	[ "$status" -eq 0 ]
	s1=$(grep -o 'TokenME (serial [^)]*)' <<<"$output" | sort -u | sed -n 1p)
	s2=$(grep -o 'TokenME (serial [^)]*)' <<<"$output" | sort -u | sed -n 2p)
	[ -n "$s1" ]
	[ -n "$s2" ]
	[ "$s1" != "$s2" ]
	# a label no other token has stays as it is; records are unchanged
	grep -q '^other  ' <<<"$output"
	run --separate-stderr ps-status --json --module "$PKCS11_MODULE"
	[ "$(jfield token_label <<<"$output" | grep -cx TokenME)" -eq 2 ]
	[ "$(jfield token_label <<<"$output" | grep -cx other)" -eq 1 ]
}

@test "DAYS counts whole days, rounded down, as ps-status(1) says" {
	softhsm_token
	token_cert qualified -1d +9d23h >/dev/null
	run --separate-stderr ps-status --json --module "$PKCS11_MODULE" --token "$TOKEN_URI"
	[ "$(jfield days_left <<<"$output")" = 9 ]
	run --separate-stderr ps-status --human --module "$PKCS11_MODULE" --token "$TOKEN_URI"
	[[ $(sed -n 2p <<<"$output") =~ Z\ +9\ +- ]]
	# --expiring 10 takes it (10 times 24 hours), --expiring 9 does not
	run ps-status --expiring 10 --json --module "$PKCS11_MODULE" --token "$TOKEN_URI"
	[ "$status" -eq 3 ]
	run ps-status --expiring 9 --json --module "$PKCS11_MODULE" --token "$TOKEN_URI"
	[ "$status" -eq 0 ]
	grep -q 'expires in 9 days and 23 hours shows 9' "$FIXTURE_ROOT/man/ps-status.1"
}

@test "from cron (stdout a file) the \"not logged in\" note stays off stderr; on a terminal and with --verbose it is there" {
	softhsm_token
	token_cert qualified -1d +300d >/dev/null
	# cron: stdout into a file, stderr mailed
	run bash -c 'ps-status --json --module "$1" --token "$2" >"$3/out"' _ \
		"$PKCS11_MODULE" "$TOKEN_URI" "$BATS_TEST_TMPDIR"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$(jfield has_key <"$BATS_TEST_TMPDIR/out")" = null ]
	run bash -c 'ps-status --json --verbose --module "$1" --token "$2" >/dev/null' _ \
		"$PKCS11_MODULE" "$TOKEN_URI"
	[[ $output == *"not logged in to token '$TOKEN_LABEL'"* ]]
	# a person at a terminal
	run script -qec "ps-status --module '$PKCS11_MODULE' --token '$TOKEN_URI'" /dev/null </dev/null
	[ "$status" -eq 0 ]
	[[ $output == *"not logged in to token '$TOKEN_LABEL': private keys are not shown"* ]]
	# a PIN source that was not used is a warning, from cron too
	softhsm_token second
	token_cert qualified -1d +300d >/dev/null
	run bash -c 'ps-status --json --pin "file:$2" --module "$1" >/dev/null' _ \
		"$PKCS11_MODULE" "$PIN_FILE"
	[[ $output == *"the PIN source is not known to belong to it"* ]]
}

# on_tty CMDLINE: runs CMDLINE (bash) on a pty (script(1)); what the
# terminal got goes to $TTY_LOG, the exit status to $status.
on_tty() {
	TTY_LOG=$BATS_TEST_TMPDIR/tty.log
	run timeout 300 script -qec "stty cols 100 2>/dev/null; $1" "$TTY_LOG" </dev/null
	sed -i -e '1{/^Script started/d}' -e '${/^Script done/d}' "$TTY_LOG"
}

# renew_setup: a demo token and a CA helper that issues at once.
renew_setup() {
	demo_token
	mkdir -p "$BATS_TEST_TMPDIR/ca"
	ln -sfn "$(pki_dir)" "$BATS_TEST_TMPDIR/ca/pki"
	echo pki >"$BATS_TEST_TMPDIR/ca/answers"
	CA="helper:$SCRIPTED_HELPER $BATS_TEST_TMPDIR/ca"
}

@test "progress: while another tool of the pipeline draws on the terminal, ps-renew draws nothing and ends that line before its messages" {
	renew_setup
	# the other tool: holds the terminal's lock and has a line on the screen
	on_tty "flock -n \$(tty) -c \"printf 'ps-other: [1/9] busy'; ps-renew --verbose \
		--module '$PKCS11_MODULE' --pin file:$PIN_FILE --all-expiring 30 --ca '$CA' --json \
		>'$BATS_TEST_TMPDIR/out'\""
	[ "$status" -eq 0 ]
	[ "$(wc -l <"$BATS_TEST_TMPDIR/out")" -eq 2 ]
	! grep -q 'ps-renew: \[[0-9]/2\]' "$TTY_LOG" || { cat -A "$TTY_LOG"; false; }
	# its first message does not go on after "busy": the line was erased
	grep -q "busy"$'\r'" \{99\}"$'\r'"ps-renew: " "$TTY_LOG" || { cat -A "$TTY_LOG"; false; }
	! grep -q 'busyps-renew' "$TTY_LOG"
	# and with the terminal to itself, it draws
	on_tty "ps-renew --force --module '$PKCS11_MODULE' --pin file:$PIN_FILE --all-expiring 30 \
		--ca '$CA' --json >'$BATS_TEST_TMPDIR/out'"
	[ "$status" -eq 0 ]
	grep -q 'ps-renew: \[2/2\]' "$TTY_LOG"
}

# codes_through_variables: the codes a source hands to ps_err_set through a
# variable (not a literal, not a "code" one, which newcomer-msgs.bats
# reads): every string literal assigned to that variable in the same file
# ("*rc = \"jip-ws-refused\"").
codes_through_variables() {
	local f v
	for f in "$FIXTURE_ROOT"/lib/*.c "$FIXTURE_ROOT"/cmd/*.c "$FIXTURE_ROOT"/cmd/common/*.c; do
		for v in $(perl -0777 -ne 'while (/ps_err_set\s*\(\s*[^,]+,\s*[^,]+,\s*([a-z_]\w*)\s*,/g) {
			print "$1\n" unless $1 eq "code" }' "$f" | sort -u); do
			perl -0777 -ne 'while (/\*?\b'"$v"'\s*=\s*([^;]*);/g) {
				my $a = $1; print "$1\n" while $a =~ /"([a-z0-9-]+)"/g }' "$f"
		done
	done
}

@test "psrenew(7) has the codes the existing check does not read: through other variables, the CA channels' names, the default" {
	local page codes c missing=
	page=$(sed 's/\\-/-/g' "$FIXTURE_ROOT/man/psrenew.7")
	codes=$(codes_through_variables | sort -u)
	grep -qx jip-ws-refused <<<"$codes" # *rc = "..." in lib/jipws.c
	# lib/request.c: an issued answer that is no certificate has the
	# channel's name as its code; lib/record.c: "error" when none is set
	codes+=$'\n'"helper"$'\n'"est"$'\n'"cmp"$'\n'"mail"$'\n'"error"
	for c in $codes; do
		grep -qE -- "^\.BR? $c( ,)?\$" <<<"$page" || missing+=" $c"
	done
	[ -z "$missing" ] || { echo "not in psrenew(7)'s list:$missing"; false; }
}

#!/usr/bin/env bats
# Progress of a batch on a terminal: one line on stderr redrawn with "\r",
# erased at the end; nothing when stderr is not a terminal, with --quiet,
# or for a single item. The terminal is a pty from script(1).

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

setup_file() {
	export BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR
	PKI=$(pki_dir)
	start_jip "$BATS_FILE_TMPDIR/portal" "$PKI" || return 1
	export PKI
}

teardown_file() {
	stop_servers
}

setup() {
	psrenew_setup
	demo_token
	export PKCS11_MODULE PIN_FILE
	mkdir -p "$BATS_TEST_TMPDIR/ca"
	ln -sfn "$PKI" "$BATS_TEST_TMPDIR/ca/pki"
	echo pki >"$BATS_TEST_TMPDIR/ca/answers"
	CA="helper:$SCRIPTED_HELPER $BATS_TEST_TMPDIR/ca"
	TTY_LOG=$BATS_TEST_TMPDIR/tty.log
}

# on_tty CMDLINE: runs CMDLINE (bash) with stdin, stdout and stderr on a
# pty; what the terminal got goes to $TTY_LOG, and $status is the exit
# status. Redirect stdout inside CMDLINE to keep the records apart.
on_tty() {
	run timeout 300 script -qec "stty cols 200 2>/dev/null; $1" "$TTY_LOG" </dev/null
	# what the command wrote, without script's own first and last lines
	sed -i -e '1{/^Script started/d}' -e '${/^Script done/d}' "$TTY_LOG"
}

# progress_lines LOG PROG: the progress lines of PROG in LOG, one per line.
progress_lines() {
	tr '\r' '\n' <"$1" | grep -E "^$2: \[[0-9]+/[0-9]+\] " || true
}

@test "ps-renew: a batch shows [k/n] on the terminal, erased at the end; the records are unchanged" {
	on_tty "ps-renew --pin file:$PIN_FILE --all-expiring 30 --ca '$CA' --json >'$BATS_TEST_TMPDIR/out'"
	[ "$status" -eq 0 ]
	lines=$(progress_lines "$TTY_LOG" ps-renew)
	grep -q '^ps-renew: \[1/2\] ' <<<"$lines" || { cat -A "$TTY_LOG"; false; }
	grep -q '^ps-renew: \[2/2\] Jan Novák commercial .*: issued' <<<"$lines"
	# redrawn in place, never a new line; the last thing is the erasing
	[ "$(grep -c . "$TTY_LOG")" -eq 1 ]
	[[ "$(cat "$TTY_LOG")" == *"issued"*$' \r' ]]
	# stdout has the two records and nothing else
	[ "$(wc -l <"$BATS_TEST_TMPDIR/out")" -eq 2 ]
	[ "$(jfield kind <"$BATS_TEST_TMPDIR/out" | sort -u)" = request ]
}

@test "ps-renew: no progress when stderr is a file, with --quiet, or for one item" {
	run --separate-stderr ps-renew --pin "file:$PIN_FILE" --all-expiring 30 --ca "$CA" --dry-run
	[ "$status" -eq 0 ]
	[[ "$stderr" != *$'\r'* && "$stderr" != *"[1/2]"* ]]
	# on a terminal, but stderr into a file
	on_tty "ps-renew --pin file:$PIN_FILE --all-expiring 30 --ca '$CA' --json \
		>'$BATS_TEST_TMPDIR/out' 2>'$BATS_TEST_TMPDIR/err'"
	[ "$status" -eq 0 ]
	[ "$(wc -l <"$BATS_TEST_TMPDIR/out")" -eq 2 ]
	! grep -q $'\r' "$BATS_TEST_TMPDIR/err"
	! grep -q '\[1/2\]' "$BATS_TEST_TMPDIR/err" "$TTY_LOG"
	# --quiet on a terminal
	on_tty "ps-renew --quiet --force --pin file:$PIN_FILE --all-expiring 30 --ca '$CA' --json >/dev/null"
	[ "$status" -eq 0 ]
	[ -z "$(progress_lines "$TTY_LOG" ps-renew)" ]
	# one item on a terminal
	on_tty "ps-renew --force --pin file:$PIN_FILE --token '$TOKEN_URI' --id $QUAL_ID --ca '$CA' --json >/dev/null"
	[ "$status" -eq 0 ]
	[ -z "$(progress_lines "$TTY_LOG" ps-renew)" ]
}

@test "ps-fetch --pending: each request on the terminal" {
	printf '%s\n' pending pending pki >"$BATS_TEST_TMPDIR/ca/answers"
	run ps-renew --pin "file:$PIN_FILE" --all-expiring 30 --ca "$CA"
	[ "$status" -eq 3 ] # pending
	on_tty "ps-fetch --pin file:$PIN_FILE --pending --json >'$BATS_TEST_TMPDIR/out'"
	[ "$status" -eq 0 ]
	lines=$(progress_lines "$TTY_LOG" ps-fetch)
	grep -q '^ps-fetch: \[1/2\] request [0-9]\{8\}-' <<<"$lines" || { cat -A "$TTY_LOG"; false; }
	grep -q '^ps-fetch: \[2/2\] Jan Novák .*: valid' <<<"$lines"
	[ "$(jfield kind <"$BATS_TEST_TMPDIR/out" | sort -u)" = cert ]
}

@test "ps-token-clean --yes: each removed object on the terminal" {
	on_tty "ps-token-clean --pin file:$PIN_FILE --expired --yes --json >'$BATS_TEST_TMPDIR/out'"
	[ "$status" -eq 0 ]
	lines=$(progress_lines "$TTY_LOG" ps-token-clean)
	grep -q '^ps-token-clean: \[3/3\] Jan Novák commercial .*: removed' <<<"$lines" ||
		{ cat -A "$TTY_LOG"; false; }
	# the summary message is on a line of its own, not glued to the progress
	tr '\r' '\n' <"$TTY_LOG" | grep -q "^ps-token-clean: token '$TOKEN_LABEL': 3 object(s) removed"
	# a dry run removes nothing and shows no progress
	on_tty "ps-token-clean --pin file:$PIN_FILE --superseded --dry-run --json >/dev/null"
	[ -z "$(progress_lines "$TTY_LOG" ps-token-clean)" ]
}

@test "ps-jip-setserial: each certificate on the terminal" {
	PORTAL=$BATS_FILE_TMPDIR/portal
	cp "$FIXTURE_ROOT/tests/jip/portal-default.json" "$PORTAL/portal.json"
	echo '{"users": [{"name": "jnovak", "password": "Heslo-123", "role": "user", "office": "MV",
		"certificates": []}]}' >"$PORTAL/accounts.json"
	(umask 077 && printf 'Heslo-123' >"$BATS_TEST_TMPDIR/pw")
	ps-status --pin "file:$PIN_FILE" --expiring 30 --json >"$BATS_TEST_TMPDIR/certs.jsonl" || true
	[ "$(wc -l <"$BATS_TEST_TMPDIR/certs.jsonl")" -eq 2 ]
	on_tty "ps-jip-setserial --profile '$FIXTURE_ROOT/tests/jip/profile-test.json' \
		--jip-url '$JIP_URL' --ca-bundle '$JIP_TLS_CA' --user jnovak \
		--password 'file:$BATS_TEST_TMPDIR/pw' <'$BATS_TEST_TMPDIR/certs.jsonl' \
		--json >'$BATS_TEST_TMPDIR/out'"
	[ "$status" -eq 0 ]
	lines=$(progress_lines "$TTY_LOG" ps-jip-setserial)
	grep -q '^ps-jip-setserial: \[1/2\] qualified ' <<<"$lines" || { cat -A "$TTY_LOG"; false; }
	grep -q '^ps-jip-setserial: \[2/2\] commercial [0-9A-F]*: set' <<<"$lines"
	[ "$(jfield result <"$BATS_TEST_TMPDIR/out" | sort -u)" = set ]
}

@test "--quiet and --verbose: every binary takes both" {
	for b in "$PSRENEW_BUILD"/bin/ps-*; do
		"$b" --help | grep -q -- '--quiet' || { echo "${b##*/}: no --quiet"; false; }
		"$b" --help | grep -q -- '--verbose' || { echo "${b##*/}: no --verbose"; false; }
		for o in --quiet -q --verbose -v; do
			run "$b" "$o" --version
			[ "$status" -eq 0 ] || { echo "${b##*/} $o: $status"; false; }
		done
	done
	# --verbose says more, --quiet less
	run --separate-stderr ps-status --verbose --json
	[[ "$stderr" == *"module: "* ]]
	run --separate-stderr ps-status --quiet --json
	[ -z "$stderr" ]
}

#!/usr/bin/env bats
# Secret hygiene: a PIN or password given by any source (a prompt on a
# terminal, env:, file:, fd:) never shows in the command line or the
# environment of the process or its children (the CA helper), on stderr,
# in records, in the state store; no core dump can hold it (RLIMIT_CORE 0
# and not dumpable while it is held, checked while the process waits at a
# prompt and on a hanging CA helper). The state store: files 0600 in a 0700
# directory; a symlink planted in it is refused, never followed.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

PIN2='Zq8-pin-SECRET-4711'

setup() {
	psrenew_setup
	: >"$BATS_TEST_TMPDIR/empty.conf"
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/empty.conf
	demo_token
	# a PIN unlike anything else the token, the records or the files hold
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" --login --pin "$PIN" \
		--change-pin --new-pin "$PIN2" >/dev/null 2>&1
	PIN=$PIN2
	printf '%s' "$PIN" >"$PIN_FILE"
	SCRIPT=$BATS_TEST_TMPDIR/script
	mkdir -p "$SCRIPT"
	echo hang >"$SCRIPT/answers"
	HELPER_CA="helper:$SCRIPTED_HELPER $SCRIPT"
}

# stops a hanging helper and its sleep
teardown() {
	local p c
	for p in $(pgrep -f -- "$BATS_TEST_TMPDIR/script" || true); do
		for c in $(pgrep -P "$p" || true); do kill "$c" 2>/dev/null || true; done
		kill "$p" 2>/dev/null || true
	done
}

# no_secret FILE...: none of the files holds the PIN.
no_secret() {
	local f
	for f in "$@"; do
		[[ -e $f ]] || continue
		if grep -aqF -- "$PIN" "$f"; then echo "the PIN is in $f"; return 1; fi
	done
}

# held_checks PID: the process PID holds the PIN and waits (its CA helper
# hangs): its command line, its environment and the helper's are clean;
# core dumps are off.
held_checks() {
	local pid=$1 helper
	for _ in $(seq 1 100); do
		helper=$(pgrep -P "$pid" -f -- "$SCRIPT" | head -n 1)
		[[ -n $helper ]] && break
		sleep 0.1
	done
	[[ -n $helper ]] || { echo "the helper never started"; return 1; }
	no_secret /proc/"$pid"/cmdline /proc/"$helper"/cmdline /proc/"$helper"/environ
	grep -q '^Max core file size *0 *0 ' /proc/"$pid"/limits ||
		{ grep 'core' /proc/"$pid"/limits; echo "core dumps are on"; return 1; }
	# not dumpable: /proc/PID/environ of the holder is root's only
	# (a ptrace-style read by another user would be refused)
	[ "$(stat -c %U /proc/"$pid"/environ)" = root ]
}

# renew_held SOURCE [ENV...]: ps-renew with --pin SOURCE and a hanging
# helper; runs held_checks while it waits, then kills it.
renew_held() {
	local src=$1 pid st=0
	shift
	env "$@" ps-renew --module "$SOFTHSM_MODULE" --pin "$src" --token "$TOKEN_URI" \
		--id "$QUAL_ID" --ca "$HELPER_CA" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" 9<"$PIN_FILE" &
	pid=$!
	held_checks "$pid" || st=1
	# the environment variable named by env: is not passed to the helper
	if [[ $src == env:* ]]; then
		helper=$(pgrep -P "$pid" -f -- "$SCRIPT" | head -n 1)
		! tr '\0' '\n' <"/proc/$helper/environ" | grep -q "^${src#env:}=" ||
			{ echo "the helper inherits ${src#env:}"; st=1; }
	fi
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	teardown
	no_secret "$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/err" || st=1
	no_secret $(find "$PSRENEW_STATE_DIR" -type f 2>/dev/null) || st=1
	return $st
}

@test "PIN from env: held while the CA helper runs: nowhere to be read" {
	renew_held env:PSRENEW_TEST_PIN PSRENEW_TEST_PIN="$PIN"
}

@test "PIN from file: held while the CA helper runs: nowhere to be read" {
	renew_held "file:$PIN_FILE"
}

@test "PIN from fd: held while the CA helper runs: nowhere to be read" {
	renew_held fd:9
}

@test "PIN at a prompt on a terminal: not echoed, core dumps off while waiting for it" {
	# a pty: the PIN typed at the prompt; while the prompt waits, the
	# process's limits are read
	run --separate-stderr python3 - "$PIN" ps-status --module "$SOFTHSM_MODULE" \
		--token "$TOKEN_URI" --pin prompt --json <<'PY'
import os, pty, sys, time
pin = sys.argv[1].encode()
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
out = b""
deadline = time.time() + 30
while b"PIN" not in out and time.time() < deadline:
    out += os.read(fd, 4096)
limits = open("/proc/%d/limits" % pid).read()
core = [l for l in limits.splitlines() if l.startswith("Max core file size")][0]
print("limits:", core.split()[4], core.split()[5])
os.write(fd, pin + b"\n")
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, st = os.waitpid(pid, 0)
print("exit:", os.waitstatus_to_exitcode(st))
sys.stdout.write(out.decode("utf-8", "replace"))
PY
	echo "$output"
	[ "$status" -eq 0 ]
	grep -q '^limits: 0 0$' <<<"$output"
	grep -Eq '^exit: (0|3)$' <<<"$output"
	grep -q '"kind":"cert"' <<<"$output"
	[[ $output != *"$PIN"* ]]
}

@test "a JIP password from every source never shows in argv or the helper-free path" {
	# ps-jip-setserial against a portal that does not exist: the password
	# is read (file:, env:, fd:) and must not show on stderr or stdout
	local src
	(umask 077 && printf 'Heslo-SECRET-99' >"$BATS_TEST_TMPDIR/pw")
	for src in "file:$BATS_TEST_TMPDIR/pw" env:JPW fd:8; do
		run --separate-stderr env JPW=Heslo-SECRET-99 ps-jip-setserial \
			--profile "$FIXTURE_ROOT/tests/jip/profile-test.json" --jip-url https://127.0.0.1:9 \
			--user jnovak --password "$src" --type qualified --ca PostSignum --serial 0A1B2C \
			8<"$BATS_TEST_TMPDIR/pw"
		[ "$status" -eq 4 ]
		[[ $output != *Heslo-SECRET-99* && $stderr != *Heslo-SECRET-99* ]]
	done
}

@test "state files are 0600 in 0700 directories" {
	echo pending >"$SCRIPT/answers"
	run --separate-stderr ps-renew --module "$SOFTHSM_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$QUAL_ID" --ca "$HELPER_CA"
	[ "$status" -eq 3 ]
	[ -n "$(find "$PSRENEW_STATE_DIR" -type f)" ]
	[ -z "$(find "$PSRENEW_STATE_DIR" -type f ! -perm 0600)" ]
	[ -z "$(find "$PSRENEW_STATE_DIR" -type d ! -perm 0700)" ]
	no_secret $(find "$PSRENEW_STATE_DIR" -type f)
}

@test "a symlink planted in the state store is refused, its target never touched" {
	echo pending >"$SCRIPT/answers"
	run --separate-stderr ps-renew --module "$SOFTHSM_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$QUAL_ID" --ca "$HELPER_CA"
	[ "$status" -eq 3 ]
	req=$(ls "$PSRENEW_STATE_DIR/requests/")
	# the request file replaced by a symlink to a copy elsewhere
	cp "$PSRENEW_STATE_DIR/requests/$req" "$BATS_TEST_TMPDIR/target.json"
	before=$(sha256sum <"$BATS_TEST_TMPDIR/target.json")
	ln -sf "$BATS_TEST_TMPDIR/target.json" "$PSRENEW_STATE_DIR/requests/$req"
	echo issue >"$SCRIPT/answers"
	run --separate-stderr ps-fetch --module "$SOFTHSM_MODULE" --pin "file:$PIN_FILE" --pending --now
	echo "$status $output $stderr"
	[ "$status" -ne 0 ] || [ -z "$(jq -r 'select(.kind == "cert") | .id' <<<"$output")" ]
	[ "$(sha256sum <"$BATS_TEST_TMPDIR/target.json")" = "$before" ]
	[ -L "$PSRENEW_STATE_DIR/requests/$req" ]
	# a state directory that is itself a symlink is refused
	mv "$PSRENEW_STATE_DIR" "$BATS_TEST_TMPDIR/real-state"
	ln -s "$BATS_TEST_TMPDIR/real-state" "$PSRENEW_STATE_DIR"
	run --separate-stderr ps-fetch --module "$SOFTHSM_MODULE" --pin "file:$PIN_FILE" --pending
	echo "$status $output $stderr"
	[ "$status" -ne 0 ]
	[ "$status" -ne 3 ]
}

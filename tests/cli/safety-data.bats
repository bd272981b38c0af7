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
	[[ -z ${HTTP_PID:-} ]] || kill "$HTTP_PID" 2>/dev/null || true
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

# --- 14: a record never chooses the PKCS#11 module -------------------------

# evil_module: builds $EVIL, a shared object whose constructor writes
# $EVIL_MARKER (it is no PKCS#11 module at all).
evil_module() {
	EVIL=$BATS_TEST_TMPDIR/evil.so
	EVIL_MARKER=$BATS_TEST_TMPDIR/evil-ran
	printf '%s\n' '#include <stdio.h>' \
		'__attribute__((constructor)) static void evil(void)' \
		"{ FILE *f = fopen(\"$EVIL_MARKER\", \"w\"); if (f) fclose(f); }" \
		>"$BATS_TEST_TMPDIR/evil.c"
	cc -shared -fPIC -o "$EVIL" "$BATS_TEST_TMPDIR/evil.c"
}

# evil_records: ps-status's cert records with "module" set to $EVIL.
evil_records() {
	ps-status --module "$PKCS11_MODULE" --json --token "$TOKEN_URI" |
		jq -c --arg m "$EVIL" 'select(.kind == "cert") | .module = $m'
}

@test "ps-renew --dry-run never loads a module named by an input record" {
	evil_module
	evil_records >"$BATS_TEST_TMPDIR/recs"
	[ -s "$BATS_TEST_TMPDIR/recs" ]
	# with PKCS11_MODULE set, and without
	run --separate-stderr ps-renew --dry-run <"$BATS_TEST_TMPDIR/recs"
	echo "$stderr"
	[ "$status" -eq 2 ]
	[ ! -e "$EVIL_MARKER" ]
	[[ $stderr == *"the input record of certificate "*"on token '$TOKEN_LABEL' names the PKCS#11 module $EVIL"* ]]
	[[ $stderr == *"--module"* ]]
	[[ $stderr != *"from --module"* ]]
	[ "$(jfield code <<<"$output" | sort -u)" = untrusted-module ]
	unset PKCS11_MODULE
	run --separate-stderr ps-renew --dry-run <"$BATS_TEST_TMPDIR/recs"
	[ "$status" -eq 2 ]
	[ ! -e "$EVIL_MARKER" ]
	[[ $stderr == *"names the PKCS#11 module $EVIL"* ]]
}

@test "a record naming the module a person named too is used; --module overrides records" {
	evil_module
	ps-status --module "$PKCS11_MODULE" --json --token "$TOKEN_URI" |
		jq -c --arg q "$QUAL_ID" 'select(.kind == "cert" and .id == $q)' \
		>"$BATS_TEST_TMPDIR/recs"
	# the record's module is PKCS11_MODULE's
	run --separate-stderr ps-renew --dry-run <"$BATS_TEST_TMPDIR/recs"
	[ "$status" -eq 0 ]
	[ "$(jfield state <<<"$output")" = planned ]
	# without PKCS11_MODULE, nobody named SoftHSM: refused
	run --separate-stderr env -u PKCS11_MODULE ps-renew --dry-run <"$BATS_TEST_TMPDIR/recs"
	[ "$status" -eq 2 ]
	[[ $stderr == *"names the PKCS#11 module $PKCS11_MODULE"* ]]
	# --module wins over whatever the records say
	jq -c --arg m "$EVIL" '.module = $m' "$BATS_TEST_TMPDIR/recs" \
		>"$BATS_TEST_TMPDIR/evil-recs"
	run --separate-stderr env -u PKCS11_MODULE ps-renew --dry-run \
		--module "$SOFTHSM_MODULE" <"$BATS_TEST_TMPDIR/evil-recs"
	[ "$status" -eq 0 ]
	[ ! -e "$EVIL_MARKER" ]
}

@test "ps-fetch never loads a module named by a request file" {
	evil_module
	script=$BATS_TEST_TMPDIR/script
	mkdir -p "$script"
	printf '%s\n' pending issue >"$script/answers"
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$QUAL_ID" --ca "helper:$SCRIPTED_HELPER $script"
	[ "$status" -eq 3 ]
	id=$(jfield request_id <<<"$output")
	f=$PSRENEW_STATE_DIR/requests/$id.json
	jq --arg m "$EVIL" '.module = $m' "$f" >"$BATS_TEST_TMPDIR/edited"
	cat "$BATS_TEST_TMPDIR/edited" >"$f"
	run --separate-stderr ps-fetch --pin "file:$PIN_FILE" "$id"
	echo "$stderr"
	[ "$status" -eq 2 ]
	[ ! -e "$EVIL_MARKER" ]
	[[ $stderr == *"a request file names the PKCS#11 module $EVIL"* ]]
	[ "$(jfield request_id <<<"$output")" = "$id" ]
	unset PKCS11_MODULE
	run --separate-stderr ps-fetch --pin "file:$PIN_FILE" --pending
	[ "$status" -eq 2 ]
	[ ! -e "$EVIL_MARKER" ]
	[[ $stderr == *"names the PKCS#11 module $EVIL"* ]]
	# the request is kept; with --module it is installed
	run --separate-stderr ps-fetch --module "$SOFTHSM_MODULE" --pin "file:$PIN_FILE" \
		--accept-type "$id"
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
}

# --- 16: configuration and secret files others can write (or read) --------

@test "a PIN file readable or writable by others, or another user's, is refused with the chmod/chown to run" {
	for mode in 644 640 604 620 602; do
		chmod "$mode" "$PIN_FILE"
		run --separate-stderr ps-status --module "$PKCS11_MODULE" --json \
			--token "$TOKEN_URI" --pin "file:$PIN_FILE"
		echo "$mode: $stderr"
		[ "$status" -eq 2 ]
		[[ $stderr == *"the secret file $PIN_FILE may be "*"refused"* ]]
		[[ $stderr == *"run: chmod 600 $PIN_FILE"* ]]
		[ "$(jq -r 'select(.kind == "error") | .code' <<<"$output")" = secret-unsafe ]
	done
	chmod 600 "$PIN_FILE"
	chown nobody "$PIN_FILE"
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --json \
		--token "$TOKEN_URI" --pin "file:$PIN_FILE"
	[ "$status" -eq 2 ]
	[[ $stderr == *"belongs to another user"* ]]
	[[ $stderr == *"chown $(id -un) $PIN_FILE"* ]]
	chown "$(id -u)" "$PIN_FILE"
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --json \
		--token "$TOKEN_URI" --pin "file:$PIN_FILE"
	[ "$status" -eq 0 ]
}

@test "a configuration writable by others, or another user's, is refused before its module is loaded" {
	evil_module
	conf=$BATS_TEST_TMPDIR/my\ psrenew.conf
	printf '[defaults]\nmodule = %s\n' "$EVIL" >"$conf"
	chmod 666 "$conf"
	run --separate-stderr ps-status --config "$conf"
	echo "$stderr"
	[ "$status" -eq 2 ]
	[ ! -e "$EVIL_MARKER" ]
	[[ $stderr == *"the configuration file $conf may be written by its group"* ]]
	[[ $stderr == *"run: chmod go-w '$conf'"* ]]
	chmod 602 "$conf"
	run --separate-stderr ps-status --config "$conf"
	[ "$status" -eq 2 ]
	[[ $stderr == *"may be written by other users"* ]]
	chmod 644 "$conf"
	chown nobody "$conf"
	PSRENEW_CONFIG=$conf run --separate-stderr ps-status
	[ "$status" -eq 2 ]
	[ ! -e "$EVIL_MARKER" ]
	[[ $stderr == *"belongs to another user"* ]]
	[[ $stderr == *"chown $(id -un) '$conf'"* ]]
	[ "$(jq -r .code <<<"$output")" = config-unsafe ] || [ -z "$output" ]
	# readable by all is fine for a configuration (it holds no secret)
	chown "$(id -u)" "$conf"
	printf '[defaults]\nmodule = %s\n' "$SOFTHSM_MODULE" >"$conf"
	run --separate-stderr ps-status --config "$conf" --token "$TOKEN_URI"
	[ "$status" -eq 0 ]
}

# --- 20: ps-fetch --cert URL -----------------------------------------------

# http_server DIR: serves DIR on 127.0.0.1 (HTTP_URL); a path under /503/
# answers 503. Stopped by teardown_http.
http_server() {
	rm -f "$BATS_TEST_TMPDIR/http.port"
	python3 - "$1" "$BATS_TEST_TMPDIR/http.port" >/dev/null 2>&1 <<'PY' &
import functools, http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/503/"):
            self.send_error(503, "down for maintenance")
            return
        super().do_GET()
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
        functools.partial(H, directory=sys.argv[1]))
open(sys.argv[2] + ".tmp", "w").write(str(s.server_address[1]))
import os; os.rename(sys.argv[2] + ".tmp", sys.argv[2])
s.serve_forever()
PY
	HTTP_PID=$!
	wait_for "$BATS_TEST_TMPDIR/http.port"
	HTTP_URL=http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/http.port")
}

@test "ps-fetch --cert http://... installs the certificate; unreachable or 5xx is exit 4, junk exit 1" {
	script=$BATS_TEST_TMPDIR/script web=$BATS_TEST_TMPDIR/web
	mkdir -p "$script" "$web"
	echo pending >"$script/answers"
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$QUAL_ID" --ca "helper:$SCRIPTED_HELPER $script"
	[ "$status" -eq 3 ]
	id=$(jfield request_id <<<"$output")
	jq -r .csr "$PSRENEW_STATE_DIR/requests/$id.json" | openssl req -pubkey -noout >"$web/req.pub"
	"$MKPKI" issue "$(pki_dir)" qualified "$web/req.pub" "$web/new.pem" -1h +365d >/dev/null 2>&1
	echo 'not a certificate' >"$web/junk.txt"
	http_server "$web"
	P=(--module "$PKCS11_MODULE" --pin "file:$PIN_FILE")
	# nobody listens: temporary
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	run --separate-stderr ps-fetch "${P[@]}" --cert "http://127.0.0.1:$port/new.pem"
	kill "$HTTP_PID" 2>/dev/null || true
	echo "$stderr"
	[ "$status" -eq 4 ]
	http_server "$web"
	run --separate-stderr ps-fetch "${P[@]}" --cert "$HTTP_URL/503/new.pem"
	[ "$status" -eq 4 ]
	[[ $stderr == *"answered HTTP 503"* ]]
	run --separate-stderr ps-fetch "${P[@]}" --cert "$HTTP_URL/junk.txt"
	[ "$status" -eq 1 ]
	[ "$(jq -r .state "$PSRENEW_STATE_DIR/requests/$id.json")" = pending ]
	run --separate-stderr ps-fetch "${P[@]}" --cert "$HTTP_URL/new.pem"
	kill "$HTTP_PID"
	echo "$stderr"
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
	[ "$(jfield request_id <<<"$output")" = "$id" ]
	[ "$(jq -r .state "$PSRENEW_STATE_DIR/requests/$id.json")" = installed ]
}

# --- 21: a pipeline that feeds ps-jip-setserial nothing says so ------------

@test "ps-jip-setserial says on stderr when its input held nothing to register (exit 0)" {
	run --separate-stderr ps-jip-setserial --user jnovak --password env:NOPE </dev/null
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[[ $stderr == *"nothing to register: the input held no cert record"* ]]
	# a request record (what ps-fetch --pending prints for a request it
	# did not install) is passed on, and still nothing is registered
	run --separate-stderr ps-jip-setserial --user jnovak --password env:NOPE \
		<<<'{"kind":"request","request_id":"r1","state":"installed"}'
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = request ]
	[[ $stderr == *"nothing to register"* ]]
}

#!/usr/bin/env bats
# Network faults for every channel that talks to a server (est:, mail:
# SMTP) and for the JIP client, from tests/netfault/netfault.py: server
# down, connection closed or reset mid-response, a server that accepts and
# never answers (bounded by the configured timeout), HTTP 500 and 503 with
# Retry-After, truncated and garbage bodies, a TLS certificate that does
# not verify. The helper: channel's faults (a helper that hangs, crashes or
# says unreachable) are run here too. Every run must end by itself with
# the documented status (4: try again later; 1: a bad answer or an
# untrusted server), never a crash, and leave no key pair without its
# request and no request without its key pair.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup_file() {
	local d=$BATS_FILE_TMPDIR/nf
	mkdir -p "$d/srv" "$d/bad"
	# a CA of its own and a server certificate for localhost / 127.0.0.1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-subj '/CN=netfault test CA' -days 2 -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
		-keyout "$d/srv.key" -out "$d/srv.csr" 2>/dev/null
	openssl x509 -req -in "$d/srv.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -days 2 \
		-extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n') \
		-out "$d/srv.pem" 2>/dev/null
	# a server certificate nobody trusts
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
		-addext 'subjectAltName=DNS:localhost' -days 2 -keyout "$d/bad.key" -out "$d/bad.pem" 2>/dev/null
	start_server "$d/srv" --tls "$d/srv.pem" "$d/srv.key"
	start_server "$d/bad" --tls "$d/bad.pem" "$d/bad.key"
	mkdir -p "$d/plain" && start_server "$d/plain"
	# a port nobody listens on
	DOWN_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	export NF=$d DOWN_PORT
}

start_server() {
	local dir=$1
	shift
	echo close >"$dir/mode"
	python3 "$FIXTURE_ROOT/tests/netfault/netfault.py" "$dir" "$@" >/dev/null 2>&1 3>&- &
	echo $! >"$dir/pid"
	for _ in $(seq 1 100); do [[ -e $dir/port ]] && return; sleep 0.1; done
	echo "netfault server did not start" >&2
	return 1
}

teardown_file() {
	local p
	for p in "$NF"/*/pid; do kill "$(cat "$p")" 2>/dev/null || true; done
}

setup() {
	psrenew_setup
	demo_token
	SRV_PORT=$(cat "$NF/srv/port") BAD_PORT=$(cat "$NF/bad/port") PLAIN_PORT=$(cat "$NF/plain/port")
	CONF=$BATS_TEST_TMPDIR/psrenew.conf
	cat >"$CONF" <<EOF_CONF
[ca.est]
channel = est://localhost:$SRV_PORT
timeout = 3
ca-bundle = $NF/ca.pem

[ca.est-untrusted]
channel = est://localhost:$BAD_PORT
timeout = 3
ca-bundle = $NF/ca.pem

[ca.est-down]
channel = est://localhost:$DOWN_PORT
timeout = 3
ca-bundle = $NF/ca.pem

[ca.smtp]
channel = mail:smtp://127.0.0.1:$PLAIN_PORT
timeout = 3
to = ca@example.cz

[ca.smtp-down]
channel = mail:smtp://127.0.0.1:$DOWN_PORT
timeout = 3
to = ca@example.cz

[ca.helper]
channel = helper:$SCRIPTED_HELPER $BATS_TEST_TMPDIR/script
timeout = 3

[jip]
timeout = 3
EOF_CONF
	export PSRENEW_CONFIG=$CONF
	mkdir -p "$BATS_TEST_TMPDIR/script"
}

mode() { echo "$1" >"$NF/$2/mode"; }

# consistent: every new key pair on the token has a request in the state
# store and every request its key pair; no certificate was written.
consistent() {
	local objs keys reqs f
	objs=$(pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" \
		--login --pin "$PIN" -O 2>/dev/null)
	[ "$(grep -c '^Certificate Object' <<<"$objs")" -eq 4 ] ||
		{ echo "certificates changed"; return 1; }
	keys=$(awk '/^Private Key Object/ { p = 1; next } /^[A-Z]/ { p = 0 } p && $1 == "ID:" { print $2 }' <<<"$objs" |
		grep -vxF -e "$QUAL_ID" -e "$COMM_ID" -e "$EXPIRED_ID" -e "$FRESH_ID" | sort)
	reqs=$(for f in "$PSRENEW_STATE_DIR"/requests/*.json; do
		[[ -e $f ]] && jq -r .key_id "$f"; done | sort)
	[ "$keys" = "$reqs" ] || { echo "new keys: [$keys] requests: [$reqs]"; return 1; }
}

# renew_via CA WANT...: ps-renew of the qualified certificate through the
# channel named CA, bounded by 60 s; the exit status is one of WANT and the
# token and the state store agree.
renew_via() {
	local ca=$1 t0=$SECONDS e
	shift
	run --separate-stderr timeout 60 ps-renew --module "$PKCS11_MODULE" \
		--pin "file:$PIN_FILE" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$ca"
	echo "ps-renew --ca $ca: exit $status in $((SECONDS - t0)) s: $output $stderr"
	[ "$status" -ne 124 ] || { echo "did not end by itself"; return 1; }
	[[ " $* " == *" $status "* ]] || { echo "exit $status, want one of: $*"; return 1; }
	records_valid
	# an error record says the status; a request kept for a later try
	# (exit 4) is a request record, unsubmitted
	e=$(jq -r 'select(.kind == "error") | .status' <<<"$output" | head -n 1)
	if [ -n "$e" ]; then
		[ "$e" = "$status" ] || { echo "error record status $e"; return 1; }
	else
		[ "$status" -eq 4 ] && [ "$(jq -r 'select(.kind == "request") | .state' <<<"$output")" = unsubmitted ] ||
			{ echo "exit $status without an error record"; return 1; }
	fi
	# a message for people: on stderr, or in the kept request's record
	[[ -n $stderr || -n $(jq -r 'select(.kind == "request") | .message // empty' <<<"$output") ]]
	[[ $stderr != *Sanitizer* && $stderr != *"runtime error"* ]]
	consistent
}

@test "est: a server that is down is exit 4, nothing lost" {
	renew_via est-down 4
}

@test "est: a connection closed or reset mid-response is exit 4, nothing lost" {
	for m in close reset; do
		mode "$m" srv
		renew_via est 4
	done
}

@test "est: a server that never answers is exit 4 after the configured timeout" {
	mode hang srv
	renew_via est 4
	[[ "$output$stderr" == *"timed out"* ]]
}

@test "est: HTTP 500 and 503 with Retry-After are exit 4, the request kept for later" {
	for m in http500 http503; do
		mode "$m" srv
		renew_via est 4
	done
}

@test "est: a truncated or garbage body is exit 4 or 1, never a crash" {
	for m in truncated garbage; do
		mode "$m" srv
		renew_via est 1 4
	done
}

@test "est: a server certificate that does not verify is exit 1; nothing generated is kept" {
	mode http500 bad
	renew_via est-untrusted 1
	[ -z "$(ls "$PSRENEW_STATE_DIR/requests" 2>/dev/null)" ]
}

@test "mail: an SMTP server down, silent, saying 421 or resetting is exit 4, nothing lost" {
	renew_via smtp-down 4
	for m in smtp-hang smtp-421 smtp-reset; do
		mode "$m" plain
		renew_via smtp 4
	done
}

@test "helper: a helper that hangs is stopped at the timeout (exit 4); one that crashes is exit 1" {
	echo hang >"$BATS_TEST_TMPDIR/script/answers"
	renew_via helper 4
	# stopped with whatever it started (the helper's sleep)
	for p in $(pgrep -x sleep || true); do
		! tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qxF "PSRENEW_STATE_DIR=$PSRENEW_STATE_DIR" ||
			{ echo "the helper's sleep $p is still running"; kill "$p"; return 1; }
	done
	echo crash >"$BATS_TEST_TMPDIR/script/answers"
	renew_via helper 1
}

# jip MODE DIR WANT...: ps-jip-setserial against the fault server.
jip_via() {
	local port=$1 t0=$SECONDS
	shift
	(umask 077 && printf 'Heslo-123' >"$BATS_TEST_TMPDIR/pw")
	run --separate-stderr timeout 60 ps-jip-setserial --profile "$FIXTURE_ROOT/tests/jip/profile-test.json" \
		--jip-url "https://localhost:$port" --ca-bundle "$NF/ca.pem" --user jnovak \
		--password "file:$BATS_TEST_TMPDIR/pw" --type qualified --ca PostSignum --serial 0A1B2C
	echo "ps-jip-setserial: exit $status in $((SECONDS - t0)) s: $output $stderr"
	[ "$status" -ne 124 ] || { echo "did not end by itself"; return 1; }
	[[ " $* " == *" $status "* ]] || { echo "exit $status, want one of: $*"; return 1; }
	[[ $stderr != *Sanitizer* && $stderr != *"runtime error"* ]]
	records_valid
	[ -z "$(ls "$PSRENEW_STATE_DIR/jip" 2>/dev/null)" ]
}

@test "jip: down, closed, reset, silent, 500 and 503 are exit 4; truncated or garbage pages exit 4 or 1" {
	jip_via "$DOWN_PORT" 4
	for m in close reset hang http500 http503; do
		mode "$m" srv
		jip_via "$SRV_PORT" 4
	done
	for m in truncated garbage; do
		mode "$m" srv
		jip_via "$SRV_PORT" 1 4
	done
}

@test "jip: a portal certificate that does not verify is exit 1" {
	mode http500 bad
	jip_via "$BAD_PORT" 1
}

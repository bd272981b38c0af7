# shellcheck shell=bash
# The test servers (tests/est, tests/cmp, tests/jip, tests/smtp,
# tests/prometheus, tests/imap), started and stopped the same way by every
# test file (load ../lib/fixture first; the psrenew helpers load it):
#
#   load ../lib/servers
#   setup_file()    { start_est "$BATS_FILE_TMPDIR/est" "$PKI"; }
#   teardown_file() { stop_servers; }
#   teardown()      { stop_servers; }   # when tests start servers themselves
#
# start_KIND DIR ... starts the server whose state directory is DIR, evals the
# assignments its start script prints and exports them. Before it starts, it
# registers the server in the scope it runs in (setup_file: the file; setup
# or a test: the test), so stop_servers in teardown_file or teardown stops it
# even when the test or the start itself failed halfway. stop_KIND DIR stops
# one server at once. Each stop script is harmless on a server already gone.
#
#   start_est DIR [PKI]          EST_URL EST_PORT EST_TLS_CA EST_STATE
#                                EST_BACKEND_PORT (port: EST_START_PORT)
#   start_cmp [--tls] DIR [PKI]  CMP_URL CMP_PORT CMP_STATE, with --tls also
#                                CMP_TLS_URL CMP_TLS_CA (port: CMP_START_PORT)
#   start_jip DIR [PKI]          JIP_URL JIP_TLS_CA JIP_PORT
#                                (port: JIP_START_PORT)
#   start_smtp DIR [OPTIONS...]  SMTP_PORT SMTP_URL SMTP_TLS_CA SMTP_MAILDIR
#                                SMTP_STATE
#   start_prometheus DIR TEXTDIR NODE_EXPORTER_URL NODE_EXPORTER_PORT
#                                (node_exporter's textfile collector)
#   start_imap DIR USER:PASS...  IMAP_PORT IMAP_HOST IMAP_TLS_CA IMAP_MAILDIR
#                                (the first user's) IMAP_STATE: a Dovecot
#                                of its own (tests/imap/imap-start)
#   start_jipws DIR [PKI]        JIPWS_URL JIPWS_TLS_CA JIPWS_PORT (the JIP
#                                editing web service, tests/jip-ws)
# PKI defaults to the test PKI (pki_dir).

# The registry of the current scope: one "KIND DIR" line per server.
_srv_list() {
	if [[ -n ${BATS_TEST_NAME:-} ]]; then
		printf '%s/servers.list\n' "$BATS_TEST_TMPDIR"
	else
		printf '%s/servers.list\n' "$BATS_FILE_TMPDIR"
	fi
}

_srv_script() { # KIND start|stop
	case $1 in
	jip-ws) printf '%s/tests/jip-ws/ws-%s\n' "$FIXTURE_ROOT" "$2" ;;
	*) printf '%s/tests/%s/%s-%s\n' "$FIXTURE_ROOT" "$1" "$1" "$2" ;;
	esac
}

# server_started KIND DIR: stop_servers stops the server of KIND (est, cmp,
# jip, smtp, imap) in DIR; for tests that run a start script themselves.
server_started() {
	local list
	list=$(_srv_list)
	grep -qxF -- "$1 $2" "$list" 2>/dev/null || printf '%s %s\n' "$1" "$2" >>"$list"
}

# _srv_start KIND DIR "VARS" [NAME=VALUE...] START_ARGS...: registers,
# starts (with NAME=VALUE in its environment), evals, exports.
_srv_start() {
	local kind=$1 dir=$2 vars=$3 out
	local -a envs=()
	shift 3
	while [[ ${1:-} == [A-Z_]*=* ]]; do envs+=("$1") && shift; done
	server_started "$kind" "$dir"
	out=$(env "${envs[@]}" "$(_srv_script "$kind" start)" "$@") ||
		{ echo "servers: $kind-start $dir failed" >&2; return 1; }
	eval "$out"
	# shellcheck disable=SC2086,SC2163 # a list of names
	export $vars
}

_srv_pki() { # [PKI]: PKI, or the test PKI
	if [[ -n ${1:-} ]]; then printf '%s\n' "$1"; else pki_dir; fi
}

start_est() {
	local pki
	pki=$(_srv_pki "${2:-}") || return 1
	_srv_start est "$1" "EST_URL EST_PORT EST_TLS_CA EST_STATE EST_BACKEND_PORT" \
		"$1" "$pki"
}

start_cmp() {
	local tls=() vars="CMP_URL CMP_PORT CMP_STATE" pki
	if [[ ${1:-} == --tls ]]; then
		tls=(--tls) vars+=" CMP_TLS_URL CMP_TLS_CA"
		shift
	fi
	pki=$(_srv_pki "${2:-}") || return 1
	_srv_start cmp "$1" "$vars" "${tls[@]}" "$pki" "$1"
}

start_jip() {
	local pki
	pki=$(_srv_pki "${2:-}") || return 1
	_srv_start jip "$1" "JIP_URL JIP_TLS_CA JIP_PORT" "JIP_PORT=${JIP_START_PORT:-}" \
		"$1" "$pki"
}

start_jipws() {
	local pki
	pki=$(_srv_pki "${2:-}") || return 1
	_srv_start jip-ws "$1" "JIPWS_URL JIPWS_TLS_CA JIPWS_PORT" "$1" "$pki"
}

start_smtp() {
	local dir=$1
	shift
	_srv_start smtp "$dir" "SMTP_PORT SMTP_URL SMTP_TLS_CA SMTP_MAILDIR SMTP_STATE" \
		"$dir" "$@"
}

start_imap() {
	local dir=$1
	shift
	_srv_start imap "$dir" "IMAP_PORT IMAP_HOST IMAP_TLS_CA IMAP_MAILDIR IMAP_STATE" \
		"$dir" "$@"
}

# maildir_deliver MAILDIR FILE: delivers the message FILE into MAILDIR the
# way an MTA does (maildir(5)): written under a unique name in tmp/, then
# renamed into new/; the file gets the owner of the Maildir (the test IMAP
# server's mail user when run as root). Prints the name.
maildir_deliver() {
	local dir=$1 name
	_SRV_MAIL_SEQ=$((${_SRV_MAIL_SEQ:-0} + 1))
	name="$(date +%s).M$(_fx_rand_hex 4)P$$Q$_SRV_MAIL_SEQ.$(uname -n)"
	cp "$2" "$dir/tmp/$name" && chmod 644 "$dir/tmp/$name" &&
		chown --reference="$dir" "$dir/tmp/$name" &&
		mv "$dir/tmp/$name" "$dir/new/$name" || return 1
	printf '%s\n' "$name"
}

# _srv_stop KIND DIR: stops it; forgets it once it is stopped.
_srv_stop() {
	local list rest
	"$(_srv_script "$1" stop)" "$2" || { echo "servers: $1-stop $2 failed" >&2; return 1; }
	list=$(_srv_list)
	[[ -f $list ]] || return 0
	rest=$(grep -vxF -- "$1 $2" "$list") || true
	if [[ -n $rest ]]; then printf '%s\n' "$rest" >"$list"; else rm -f "$list"; fi
}

stop_est() { _srv_stop est "$1"; }
stop_cmp() { _srv_stop cmp "$1"; }
stop_jip() { _srv_stop jip "$1"; }
stop_smtp() { _srv_stop smtp "$1"; }
stop_imap() { _srv_stop imap "$1"; }
stop_jipws() { _srv_stop jip-ws "$1"; }

# stop_servers: stops every server of this scope, the last started first;
# fails when one of them would not stop.
stop_servers() {
	local list i kind dir rc=0
	local -a srv
	list=$(_srv_list)
	[[ -f $list ]] || return 0
	mapfile -t srv <"$list"
	for ((i = ${#srv[@]} - 1; i >= 0; i--)); do
		kind=${srv[i]%% *} dir=${srv[i]#* }
		"$(_srv_script "$kind" stop)" "$dir" ||
			{ echo "servers: $kind-stop $dir failed" >&2; rc=1; }
	done
	rm -f "$list"
	return "$rc"
}

# start_prometheus DIR TEXTFILE_DIR: node_exporter's textfile collector over
# TEXTFILE_DIR (tests/prometheus/prometheus-start): NODE_EXPORTER_URL
# NODE_EXPORTER_PORT. stop_prometheus DIR.
start_prometheus() {
	_srv_start prometheus "$1" "NODE_EXPORTER_URL NODE_EXPORTER_PORT" "$1" "$2"
}

stop_prometheus() { _srv_stop prometheus "$1"; }

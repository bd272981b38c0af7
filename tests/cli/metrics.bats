#!/usr/bin/env bats
# ps-status --metrics and --metrics-file: the Prometheus metrics of the
# certificates on a token, the state store's requests and JIP confirmations,
# the tokens and the run; the real node_exporter serving them; the alert
# rules (data/prometheus) under promtool; the unit, timer and crontab line.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

# One token and one state store for the file: the demo token; its
# commercial certificate renewed and installed (JIP has not confirmed the
# new one), its expiring qualified one renewed and pending (the CA said:
# ask again in an hour), Petra's confirmed in JIP.
setup_file() {
	export BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR
	export PSRENEW_STATE_DIR=$BATS_FILE_TMPDIR/state
	: >"$BATS_FILE_TMPDIR/empty.conf"
	export PSRENEW_CONFIG=$BATS_FILE_TMPDIR/empty.conf
	demo_token
	local pki ca p11=(--module "$PKCS11_MODULE" --token "$TOKEN_URI")
	pki=$(pki_dir)
	ca=$BATS_FILE_TMPDIR/ca-issue
	mkdir -p "$ca" && ln -sfn "$pki" "$ca/pki" && echo pki >"$ca/answers"
	ps-renew "${p11[@]}" --pin "file:$PIN_FILE" --id "$COMM_ID" \
		--ca "helper:$SCRIPTED_HELPER $ca" --quiet >/dev/null
	ps-fetch "${p11[@]}" --pin "file:$PIN_FILE" --pending --now --quiet >/dev/null
	ca=$BATS_FILE_TMPDIR/ca-wait
	mkdir -p "$ca" && echo 'delay 3600' >"$ca/answers"
	ps-renew "${p11[@]}" --pin "file:$PIN_FILE" --id "$QUAL_ID" \
		--ca "helper:$SCRIPTED_HELPER $ca" --quiet >/dev/null || true
	INSTALLED=$(jq -r 'select(.state == "installed") | .request_id' \
		"$PSRENEW_STATE_DIR"/requests/*.json)
	PENDING=$(jq -r 'select(.state == "pending") | .request_id' \
		"$PSRENEW_STATE_DIR"/requests/*.json)
	[[ -n $INSTALLED && -n $PENDING ]]
	local c
	for c in QUAL COMM EXPIRED FRESH; do
		local id=${c}_ID
		export "${c}_SERIAL=$(cert_serial_hex "$BATS_FILE_TMPDIR/certs/${!id}.pem")"
	done
	NEW_SERIAL=$(jq -r .new_serial_hex "$PSRENEW_STATE_DIR/requests/$INSTALLED.json")
	mkdir -p -m 700 "$PSRENEW_STATE_DIR/jip"
	jq -cn --arg s "$FRESH_SERIAL" '{kind: "jip", serial_hex: $s, type: "qualified",
		user: "pdvorakova", result: "set", ca: "PostSignum",
		confirmed_at: "2026-01-01T00:00:00Z"}' >"$PSRENEW_STATE_DIR/jip/$FRESH_SERIAL.json"
	TOKEN_SERIAL=$(ps-status "${p11[@]}" --json | jq -r .token | head -n 1 |
		sed -n 's/.*serial=\([^;]*\).*/\1/p')
	[ -n "$TOKEN_SERIAL" ]
	export INSTALLED PENDING NEW_SERIAL TOKEN_SERIAL
}

setup() {
	P11=(--module "$PKCS11_MODULE" --token "$TOKEN_URI")
}

teardown() {
	stop_servers
}

# epoch ISO_TIME: Unix time.
epoch() {
	date -u -d "$1" +%s
}

# mval NAME [LABEL="VALUE"]...: the value of the one sample of NAME in
# $metrics whose labels include each LABEL="VALUE", as an integer (node
# exporter writes 1.7e+09). Fails unless exactly one sample matches.
mval() {
	local name=$1 line v='' n=0 l
	shift
	while IFS= read -r line; do
		[[ $line == "$name{"* || $line == "$name "* ]] || continue
		for l in "$@"; do [[ $line == *"$l"* ]] || continue 2; done
		v=${line##* }
		n=$((n + 1))
	done <<<"$metrics"
	((n == 1)) || { echo "mval $name $*: $n samples" >&2; return 1; }
	awk -v v="$v" 'BEGIN { printf "%.0f\n", v }'
}

# msamples NAME [LABEL="VALUE"]...: how many samples of NAME match.
msamples() {
	local name=$1 line n=0 l
	shift
	while IFS= read -r line; do
		[[ $line == "$name{"* || $line == "$name "* ]] || continue
		for l in "$@"; do [[ $line == *"$l"* ]] || continue 2; done
		n=$((n + 1))
	done <<<"$metrics"
	echo "$n"
}

# cert_is SERIAL NAME VALUE: the certificate's sample of NAME is VALUE.
cert_is() {
	local v
	v=$(mval "$2" "serial_hex=\"$1\"") || return 1
	[ "$v" = "$3" ] || { echo "$2 of $1: $v, want $3" >&2; return 1; }
}

# promtool_clean: promtool check metrics finds nothing to say of $metrics.
promtool_clean() {
	local out
	out=$(promtool check metrics <<<"$metrics" 2>&1) || { echo "$out"; return 1; }
	[ -z "$out" ] || { echo "promtool: $out"; return 1; }
}

@test "ps-status --metrics: each certificate's expiry, key, successor, renewal and JIP confirmation, without a login" {
	count=$BATS_TEST_TMPDIR/count
	run --separate-stderr env P11FAULT_COUNT_FILE="$count" \
		ps-status --module "$P11FAULT" --token "$TOKEN_URI" --metrics
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	[ -z "$stderr" ]
	metrics=$output
	promtool_clean
	# nothing private was needed: no login
	[ -s "$count" ]
	run ! grep -q '^C_Login' "$count"
	[ "$(mval psrenew_token_logged_in "token_serial=\"$TOKEN_SERIAL\"")" = 0 ]
	# five certificates: the four of the demo token and the new commercial one
	[ "$(msamples psrenew_certificate_not_after_timestamp_seconds)" -eq 5 ]
	for c in QUAL COMM EXPIRED FRESH; do
		id=${c}_ID serial=${c}_SERIAL
		cert_is "${!serial}" psrenew_certificate_not_after_timestamp_seconds \
			"$(epoch "$(cert_not_after_iso "$BATS_FILE_TMPDIR/certs/${!id}.pem")")"
		cert_is "${!serial}" psrenew_certificate_not_before_timestamp_seconds \
			"$(epoch "$(cert_not_before_iso "$BATS_FILE_TMPDIR/certs/${!id}.pem")")"
		cert_is "${!serial}" psrenew_certificate_key_on_token 1
	done
	cert_is "$NEW_SERIAL" psrenew_certificate_key_on_token 1
	# the labels of the issue, escaped as the format wants them
	[ "$(msamples psrenew_certificate_info "token=\"$TOKEN_LABEL\"" \
		"token_serial=\"$TOKEN_SERIAL\"" 'type="qualified"' 'qc_type="esign"' \
		"serial_hex=\"$FRESH_SERIAL\"" 'holder="Petra Dvořáková"' \
		'jip_ca="PostSignum"' "id=\"$FRESH_ID\"" 'state="valid"' \
		'key_type="rsa:2048"')" -eq 1 ]
	[ "$(msamples psrenew_certificate_info 'type="commercial"' 'state="superseded"')" -eq 1 ]
	[ "$(msamples psrenew_certificate_info 'type="commercial"' 'state="expired"')" -eq 1 ]
	# qc_type: esign for the qualified ones, empty for every commercial one
	[ "$(msamples psrenew_certificate_info 'type="qualified"' 'qc_type="esign"')" -eq \
		"$(msamples psrenew_certificate_info 'type="qualified"')" ]
	[ "$(msamples psrenew_certificate_info 'type="commercial"' 'qc_type=""')" -eq \
		"$(msamples psrenew_certificate_info 'type="commercial"')" ]
	[ "$(msamples psrenew_certificate_info 'type="commercial"')" -ge 2 ]
	# successors: the renewed commercial one and the expired one are superseded
	cert_is "$COMM_SERIAL" psrenew_certificate_successor_installed 1
	cert_is "$EXPIRED_SERIAL" psrenew_certificate_successor_installed 1
	cert_is "$QUAL_SERIAL" psrenew_certificate_successor_installed 0
	cert_is "$NEW_SERIAL" psrenew_certificate_successor_installed 0
	# the pending request renews the qualified one, and only that one
	cert_is "$QUAL_SERIAL" psrenew_certificate_renewal_pending 1
	[ "$(grep -c '^psrenew_certificate_renewal_pending{.*} 1$' <<<"$metrics")" -eq 1 ]
	# psrenew installed the new one (when its request says); JIP confirmed Petra's
	cert_is "$NEW_SERIAL" psrenew_certificate_installed_timestamp_seconds \
		"$(epoch "$(jq -r .installed_at "$PSRENEW_STATE_DIR/requests/$INSTALLED.json")")"
	[ "$(msamples psrenew_certificate_installed_timestamp_seconds)" -eq 1 ]
	cert_is "$FRESH_SERIAL" psrenew_certificate_jip_confirmed 1
	cert_is "$NEW_SERIAL" psrenew_certificate_jip_confirmed 0
	cert_is "$QUAL_SERIAL" psrenew_certificate_jip_confirmed 0
	[ "$(grep -c '^psrenew_certificate_jip_confirmed{.*} 1$' <<<"$metrics")" -eq 1 ]
	# the pending request: its state, age and next poll; the installed one
	# is finished, with no series of its own
	req=$PSRENEW_STATE_DIR/requests/$PENDING.json
	r="request_id=\"$PENDING\""
	[ "$(mval psrenew_request_state "$r" 'state="pending"')" = 1 ]
	[ "$(mval psrenew_request_state "$r" 'state="unsubmitted"')" = 0 ]
	[ "$(mval psrenew_request_state "$r" 'state="issued"')" = 0 ]
	[ "$(msamples psrenew_request_state "$r" "serial_hex=\"$QUAL_SERIAL\"" \
		'type="qualified"' "token_serial=\"$TOKEN_SERIAL\"" 'holder="Jan Novák"')" -eq 3 ]
	created=$(epoch "$(jq -r .created_at "$req")")
	[ "$(mval psrenew_request_created_timestamp_seconds "$r")" = "$created" ]
	[ "$(mval psrenew_request_next_poll_timestamp_seconds "$r")" = \
		"$(epoch "$(jq -r .next_poll_at "$req")")" ]
	[ "$(mval psrenew_request_age_seconds "$r")" = \
		"$(($(mval psrenew_run_timestamp_seconds) - created))" ]
	[ "$(msamples psrenew_request_state "request_id=\"$INSTALLED\"")" -eq 0 ]
	[ "$(mval psrenew_requests 'state="pending"')" = 1 ]
	[ "$(mval psrenew_requests 'state="installed"')" = 1 ]
	[ "$(mval psrenew_requests 'state="rejected"')" = 0 ]
	# the run
	[ "$(mval psrenew_run_success)" = 1 ]
	[ "$(mval psrenew_state_damaged_files)" = 0 ]
	version=$(ps-status --version | awk '{ print $NF; exit }')
	[ "$(msamples psrenew_build_info "version=\"$version\"")" -eq 1 ]
	# HELP and TYPE once per family, before its samples
	[ "$(grep -c '^# TYPE ' <<<"$metrics")" -eq "$(grep -c '^# HELP ' <<<"$metrics")" ]
	[ -z "$(grep '^# TYPE ' <<<"$metrics" | awk '{ print $3 }' | sort | uniq -d)" ]
}

@test "ps-status --metrics logs in only with --pin on its command line, never with the configuration's PIN source" {
	count=$BATS_TEST_TMPDIR/count
	printf '[defaults]\npin = file:%s\n' "$PIN_FILE" >"$BATS_TEST_TMPDIR/pin.conf"
	run --separate-stderr env P11FAULT_COUNT_FILE="$count" \
		ps-status --config "$BATS_TEST_TMPDIR/pin.conf" --module "$P11FAULT" \
		--token "$TOKEN_URI" --metrics
	[ "$status" -eq 0 ]
	metrics=$output
	[ -s "$count" ]
	run ! grep -q '^C_Login' "$count"
	[ "$(mval psrenew_token_logged_in)" = 0 ]
	run --separate-stderr env P11FAULT_COUNT_FILE="$count" \
		ps-status --module "$P11FAULT" --token "$TOKEN_URI" --pin "file:$PIN_FILE" --metrics
	[ "$status" -eq 0 ]
	grep -qx 'C_Login 1' "$count"
	metrics=$output
	[ "$(mval psrenew_token_logged_in)" = 1 ]
	cert_is "$QUAL_SERIAL" psrenew_certificate_key_on_token 1
	promtool_clean
}

@test "ps-status --metrics: free memory and room for renewals as the token reports them" {
	run --separate-stderr env P11FAULT_FREE_MEMORY=20000 \
		ps-status --module "$P11FAULT" --token "$TOKEN_URI" --metrics
	[ "$status" -eq 0 ]
	metrics=$output
	t="token_serial=\"$TOKEN_SERIAL\""
	[ "$(mval psrenew_token_free_memory_bytes "$t" "token=\"$TOKEN_LABEL\"")" = 20000 ]
	[ "$(mval psrenew_token_room_renewals "$t")" = 3 ] # 6144 bytes a renewal
	[ "$(msamples psrenew_token_info "$t" 'manufacturer="SoftHSM project"' 'model="SoftHSM v2"')" -eq 1 ]
	promtool_clean
	run --separate-stderr env P11FAULT_FREE_MEMORY=6000 \
		ps-status --module "$P11FAULT" --token "$TOKEN_URI" --metrics
	metrics=$output
	[ "$(mval psrenew_token_room_renewals "$t")" = 0 ]
	# SoftHSM itself does not say: no series rather than a made-up one
	run --separate-stderr ps-status "${P11[@]}" --metrics
	metrics=$output
	[ "$(msamples psrenew_token_free_memory_bytes)" -eq 0 ]
	[ "$(msamples psrenew_token_room_renewals)" -eq 0 ]
	run ! grep -q 'psrenew_token_room_renewals' <<<"$metrics"
}

@test "ps-status --metrics: label values are escaped (quote, backslash) and kept valid UTF-8" {
	softhsm_token 'we"ird\lab'
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --metrics
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	metrics=$output
	grep -qF 'psrenew_token_info{token="we\"ird\\lab",' <<<"$metrics"
	promtool_clean
	softhsm_token $'bad\xffbyte'
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --metrics
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	metrics=$output
	grep -qF 'psrenew_token_info{token="bad?byte",' <<<"$metrics"
	promtool_clean
}

@test "ps-status --metrics-file: the same text, written whole, mode 0644 whatever the umask, never through a symlink" {
	dir=$BATS_TEST_TMPDIR/textfile
	mkdir -p "$dir"
	echo 'old target' >"$BATS_TEST_TMPDIR/target"
	ln -s "$BATS_TEST_TMPDIR/target" "$dir/psrenew.prom"
	run --separate-stderr bash -c "umask 077 && ps-status --module '$PKCS11_MODULE' \
		--token '$TOKEN_URI' --metrics-file '$dir/psrenew.prom'"
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	[ -z "$output" ] # nothing on stdout
	[ -f "$dir/psrenew.prom" ]
	[ ! -L "$dir/psrenew.prom" ]
	[ "$(stat -c %a "$dir/psrenew.prom")" = 644 ]
	[ "$(cat "$BATS_TEST_TMPDIR/target")" = 'old target' ]
	[ "$(ls -A "$dir")" = psrenew.prom ] # no temporary file left
	metrics=$(<"$dir/psrenew.prom")
	promtool_clean
	# what --metrics prints, but for the run's own time
	run --separate-stderr ps-status "${P11[@]}" --metrics
	diff <(grep -v '_timestamp_seconds\|_age_seconds' <<<"$output") \
		<(grep -v '_timestamp_seconds\|_age_seconds' "$dir/psrenew.prom")
	# a directory that cannot be written: exit 1, code io, the old file stays
	run --separate-stderr ps-status "${P11[@]}" --json --metrics-file "$BATS_TEST_TMPDIR/none/psrenew.prom"
	[ "$status" -eq 1 ]
	[ -z "$output" ] # no record on stdout: it is not the metrics
	grep -q 'cannot write .*/none/psrenew.prom' <<<"$stderr"
}

@test "a failed run still writes the file, with psrenew_run_success 0, and exits with its status" {
	dir=$BATS_TEST_TMPDIR/textfile
	mkdir -p "$dir"
	# no such token: exit 6; the store's requests are still there
	run --separate-stderr ps-status --module "$PKCS11_MODULE" \
		--token 'pkcs11:token=absent' --metrics-file "$dir/psrenew.prom"
	[ "$status" -eq 6 ]
	[ -n "$stderr" ]
	metrics=$(<"$dir/psrenew.prom")
	promtool_clean
	[ "$(mval psrenew_run_success)" = 0 ]
	[ "$(mval psrenew_run_timestamp_seconds)" -gt 0 ]
	[ "$(msamples psrenew_certificate_info)" -eq 0 ]
	[ "$(mval psrenew_requests 'state="pending"')" = 1 ]
	# a damaged file of the store: exit 1, counted; the certificates are there
	cp -a "$PSRENEW_STATE_DIR" "$BATS_TEST_TMPDIR/state"
	echo 'not json' >"$BATS_TEST_TMPDIR/state/requests/20260101-000000-deadbeef.json"
	run --separate-stderr ps-status "${P11[@]}" --state-dir "$BATS_TEST_TMPDIR/state" \
		--metrics-file "$dir/psrenew.prom"
	[ "$status" -eq 1 ]
	grep -q '20260101-000000-deadbeef' <<<"$stderr"
	metrics=$(<"$dir/psrenew.prom")
	promtool_clean
	[ "$(mval psrenew_run_success)" = 0 ]
	[ "$(mval psrenew_state_damaged_files)" = 1 ]
	[ "$(msamples psrenew_certificate_info)" -eq 5 ]
	[ "$(mval psrenew_requests 'state="pending"')" = 1 ]
}

@test "node_exporter's textfile collector serves the psrenew series with the token's values" {
	command -v prometheus-node-exporter >/dev/null || skip "prometheus-node-exporter is not installed"
	dir=$BATS_TEST_TMPDIR/textfile
	start_prometheus "$BATS_TEST_TMPDIR/node-exporter" "$dir"
	run --separate-stderr env P11FAULT_FREE_MEMORY=13000 ps-status --module "$P11FAULT" \
		--token "$TOKEN_URI" --metrics-file "$dir/psrenew.prom"
	[ "$status" -eq 0 ]
	metrics=$(curl -sf "$NODE_EXPORTER_URL")
	# the file was read without an error
	[ "$(mval node_textfile_scrape_error)" = 0 ]
	[ "$(mval node_textfile_mtime_seconds "file=\"$dir/psrenew.prom\"")" -gt 0 ] ||
		[ "$(mval node_textfile_mtime_seconds 'file="psrenew.prom"')" -gt 0 ]
	# node_exporter's HELP is ours, the values the token's
	grep -qx '# HELP psrenew_run_success .*' <<<"$metrics"
	grep -qx '# TYPE psrenew_certificate_not_after_timestamp_seconds gauge' <<<"$metrics"
	[ "$(mval psrenew_run_success)" = 1 ]
	cert_is "$QUAL_SERIAL" psrenew_certificate_not_after_timestamp_seconds \
		"$(epoch "$(cert_not_after_iso "$BATS_FILE_TMPDIR/certs/$QUAL_ID.pem")")"
	cert_is "$QUAL_SERIAL" psrenew_certificate_renewal_pending 1
	cert_is "$COMM_SERIAL" psrenew_certificate_successor_installed 1
	cert_is "$NEW_SERIAL" psrenew_certificate_jip_confirmed 0
	cert_is "$FRESH_SERIAL" psrenew_certificate_jip_confirmed 1
	[ "$(mval psrenew_certificate_key_on_token "serial_hex=\"$NEW_SERIAL\"" \
		'holder="Jan Novák"' 'jip_ca="PostSignum"' 'type="commercial"' \
		"token=\"$TOKEN_LABEL\"" "token_serial=\"$TOKEN_SERIAL\"")" = 1 ]
	[ "$(mval psrenew_token_free_memory_bytes "token_serial=\"$TOKEN_SERIAL\"")" = 13000 ]
	[ "$(mval psrenew_token_room_renewals "token_serial=\"$TOKEN_SERIAL\"")" = 2 ]
	[ "$(mval psrenew_request_state "request_id=\"$PENDING\"" 'state="pending"')" = 1 ]
	# a failed run: node_exporter sees success 0 at the next scrape
	run --separate-stderr ps-status --module "$PKCS11_MODULE" \
		--token 'pkcs11:token=absent' --metrics-file "$dir/psrenew.prom"
	[ "$status" -eq 6 ]
	metrics=$(curl -sf "$NODE_EXPORTER_URL")
	[ "$(mval node_textfile_scrape_error)" = 0 ]
	[ "$(mval psrenew_run_success)" = 0 ]
}

@test "ps-status --metrics goes with neither --expiring nor --unregistered" {
	run --separate-stderr ps-status "${P11[@]}" --metrics --expiring 30
	[ "$status" -eq 2 ]
	grep -q 'go with neither --expiring nor --unregistered' <<<"$stderr"
	run --separate-stderr ps-status "${P11[@]}" --metrics-file "$BATS_TEST_TMPDIR/m.prom" --unregistered
	[ "$status" -eq 2 ]
	grep -q 'go with neither --expiring nor --unregistered' <<<"$stderr"
	[ ! -e "$BATS_TEST_TMPDIR/m.prom" ]
}

@test "the alert rules: promtool checks them, their unit tests pass, a broken rule fails them, and they use only metrics ps-status writes" {
	command -v promtool >/dev/null || skip "promtool (Debian's prometheus) is not installed"
	rules=$FIXTURE_ROOT/data/prometheus/psrenew-rules.yml
	run promtool check rules "$rules"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	grep -q 'SUCCESS: 6 rules found' <<<"$output"
	run promtool test rules "$FIXTURE_ROOT/tests/prometheus/psrenew-rules.test.yml"
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	# each rule has a test that fires it; a rule that is wrong fails its test
	for a in $(sed -n 's/^ *- alert: //p' "$rules"); do
		grep -q "alertname: $a\$" "$FIXTURE_ROOT/tests/prometheus/psrenew-rules.test.yml" ||
			{ echo "no test for $a"; false; }
	done
	t=$BATS_TEST_TMPDIR/tree
	mkdir -p "$t/data/prometheus" "$t/tests/prometheus"
	cp "$FIXTURE_ROOT/tests/prometheus/psrenew-rules.test.yml" "$t/tests/prometheus/"
	for broken in '/and psrenew_certificate_renewal_pending == 0/d' \
		's/psrenew_token_room_renewals < 1/psrenew_token_room_renewals < 4/'; do
		sed "$broken" "$rules" >"$t/data/prometheus/psrenew-rules.yml"
		run ! cmp -s "$rules" "$t/data/prometheus/psrenew-rules.yml"
		run promtool test rules "$t/tests/prometheus/psrenew-rules.test.yml"
		[ "$status" -ne 0 ] || { echo "passes although broken: $broken"; false; }
	done
	# every metric a rule names is one ps-status writes
	run --separate-stderr env P11FAULT_FREE_MEMORY=20000 \
		ps-status --module "$P11FAULT" --token "$TOKEN_URI" --metrics
	[ "$status" -eq 0 ]
	for m in $(grep -o 'psrenew_[a-z_]*' "$rules" | sort -u); do
		grep -qx "# TYPE $m gauge" <<<"$output" || { echo "$m: not written by ps-status"; false; }
	done
}

@test "the metrics unit, its timer and the crontab line write node_exporter's file with the installed ps-status" {
	prefix=$BATS_TEST_TMPDIR/prefix
	# -o all: the build is used as it is, never remade (it may be another tree's)
	make -C "$FIXTURE_ROOT" -s -o all install B="$PSRENEW_BUILD" PREFIX="$prefix" >/dev/null
	units=$prefix/share/psrenew/systemd
	prom=/var/lib/prometheus/node-exporter/psrenew.prom
	[ "$(sed -n 's/^ExecStart=//p' "$units/psrenew-metrics.service")" = \
		"$prefix/bin/ps-status --metrics-file $prom --quiet" ]
	[ "$(sed -n 's/^OnCalendar=//p' "$units/psrenew-metrics.timer")" = '*:0/15' ]
	[ "$(sed -n 's/^WantedBy=//p' "$units/psrenew-metrics.timer")" = timers.target ]
	[ -f "$prefix/share/psrenew/prometheus/psrenew-rules.yml" ]
	if command -v systemd-analyze >/dev/null; then
		run env MANPATH="$prefix/share/man" systemd-analyze verify \
			"$units/psrenew-metrics.service" "$units/psrenew-metrics.timer"
		[ "$status" -eq 0 ] && [ -z "$output" ] || { echo "$output"; false; }
	fi
	# the unit's and the crontab's command, with a file of the test's
	printf '[defaults]\nmodule = %s\ntoken = %s\nstate-dir = %s\n' \
		"$PKCS11_MODULE" "$TOKEN_URI" "$PSRENEW_STATE_DIR" >"$BATS_TEST_TMPDIR/psrenew.conf"
	mkdir -p "$BATS_TEST_TMPDIR/textfile"
	line=$(grep -- '--metrics-file' "$prefix/share/psrenew/cron/psrenew.crontab")
	[[ $line == '*/15 * '* ]]
	for cmd in "$(sed -n 's/^ExecStart=//p' "$units/psrenew-metrics.service")" \
		"$(read -r _ _ _ _ _ c <<<"$line" && echo "$c")"; do
		[[ $cmd == "$prefix/bin/ps-status "*" $prom "* ]]
		rm -f "$BATS_TEST_TMPDIR/textfile/psrenew.prom"
		run --separate-stderr env PSRENEW_CONFIG="$BATS_TEST_TMPDIR/psrenew.conf" \
			bash -c "${cmd//$prom/$BATS_TEST_TMPDIR/textfile/psrenew.prom}"
		[ "$status" -eq 0 ] && [ -z "$stderr" ] && [ -z "$output" ] ||
			{ echo "$cmd: $status $stderr"; false; }
		metrics=$(<"$BATS_TEST_TMPDIR/textfile/psrenew.prom")
		[ "$(mval psrenew_run_success)" = 1 ]
		[ "$(msamples psrenew_certificate_info)" -eq 5 ]
	done
}

@test "ps-status(1), psrenew(7) and the README name every metric ps-status writes" {
	run --separate-stderr env P11FAULT_FREE_MEMORY=20000 \
		ps-status --module "$P11FAULT" --token "$TOKEN_URI" --metrics
	[ "$status" -eq 0 ]
	names=$(sed -n 's/^# TYPE \([a-z_]*\) .*/\1/p' <<<"$output")
	[ "$(wc -l <<<"$names")" -ge 20 ]
	st=$(MANWIDTH=200 man -l "$FIXTURE_ROOT/man/ps-status.1" 2>/dev/null)
	seven=$(MANWIDTH=200 man -l "$FIXTURE_ROOT/man/psrenew.7" 2>/dev/null)
	for n in $names; do
		grep -qF -- "$n" <<<"$st" || { echo "ps-status(1) lacks $n"; false; }
		grep -qF -- "$n" <<<"$seven" || { echo "psrenew(7) lacks $n"; false; }
	done
	for w in '--metrics-file' psrenew-metrics.timer psrenew-rules.yml \
		/var/lib/prometheus/node-exporter/psrenew.prom; do
		grep -qF -- "$w" <<<"$st" || { echo "ps-status(1) lacks $w"; false; }
	done
	readme=$(<"$FIXTURE_ROOT/README")
	for w in 'Many workstations' '### Ansible' '### The Debian package' '### Prometheus' \
		'ps-status --metrics-file' psrenew-metrics.timer psrenew-rules.yml; do
		grep -qF -- "$w" <<<"$readme" || { echo "README lacks $w"; false; }
	done
}

#!/usr/bin/env bats
# The Ansible role and playbooks of data/ansible against a fleet of
# PSRENEW_FLEET_HOSTS (20) workstations: local users over one sshd on
# 127.0.0.1, each with its own SoftHSM token, state directory and
# certificates (expiring, pending, installed and not confirmed in JIP), and
# the JIP editing web service test server (tests/jip-ws). See fleet.bash.
# The tests run in order on one fleet: deploy, inventory, register.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers
load fleet

setup_file() {
	[[ $(id -u) == 0 ]] || skip "the fleet tests need root (test users, sshd)"
	export BATS_TEST_TMPDIR=$BATS_FILE_TMPDIR
	fleet_setup
}

teardown_file() {
	fleet_teardown
}

# want_* NN: what the fixture made of host NN (fleet.bash)
want_certs() { echo $((10#$1 % 4 >= 2 ? 5 : 4)); }
want_expiring() { echo $((10#$1 % 4 >= 2 ? 1 : 2)); }
want_pending() { echo $((10#$1 % 2)); }
want_unconfirmed() { echo $((10#$1 % 4 >= 2 ? 1 : 0)); }

# host_count NN ARGS...: how many cert/request records the host's own
# command prints (ps-status or ps-fetch ARGS).
host_count() {
	local n=$1
	shift
	local cmd=$1
	shift
	as_host "$n" "$FLEET/psrenew/bin/$cmd" "$@" --json 2>/dev/null |
		jq -r 'select(.kind == "cert" or .kind == "request") | .kind' | grep -c . || true
}

# csv_table FILE: the cert rows of the fleet CSV as "HOST SERIAL EXPIRING
# UNCONFIRMED" lines (Python's csv module reads it)
csv_table() {
	/usr/bin/python3 -c 'import csv, sys
for r in csv.DictReader(open(sys.argv[1], newline="")):
    if r["kind"] == "cert":
        print(r["host"], r["serial_hex"], r["expiring"], r["unconfirmed"])' "$1"
}

# csv_serials HOST [expiring|unconfirmed]: the serials of HOST's cert rows
# (with that column "yes"), sorted
csv_serials() {
	awk -v h="$1" -v f="${2:-}" '$1 == h && (f == "" || (f == "expiring" ? $3 : $4) == "yes") { print $2 }' \
		"$BATS_FILE_TMPDIR/csv.txt" | sort
}

# summary_of HOST COLUMN: a number of summary.txt
summary_of() {
	awk -v h="$1" -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
		$1 == h { print $col[toupper(c)] }' "$FLEET/ctl/out/summary.txt"
}

# jip_numbers LOGIN: the numbers of the service's entries for LOGIN, as
# upper-case hex without leading zeros, sorted
jip_numbers() {
	jq -r --arg u "$1" '.users[$u].certs[].number' "$FLEET/ws/data.json" |
		/usr/bin/python3 -c 'import sys
for l in sys.stdin:
    l = l.strip()
    print(format(int(l, 16), "X"))' | sort
}

@test "ansible-lint: the role and the playbooks are clean (production profile, offline)" {
	cd "$FLEET_PLAYBOOKS"
	run ansible-lint --nocolor
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output == *"Passed with production profile: 0 failure(s), 0 warning(s)"* ]]
}

@test "deploy: the role writes each host's psrenew.conf and state directory; a second run changes nothing" {
	playbook psrenew-deploy
	[ "$status" -eq 0 ]
	[ "$(recap failed)" -eq 0 ]
	[ "$(recap unreachable)" -eq 0 ]
	[ "$(recap changed)" -ge "$FLEET_N" ]
	first_ms=$PLAY_MS
	for n in $(fleet_hosts); do
		conf=/home/psfleet$n/.config/psrenew/psrenew.conf
		[ "$(stat -c '%U %a' "$conf")" = "psfleet$n 600" ]
		grep -qx "pin = file:$FLEET/h$n/softhsm/pin" "$conf"
		grep -qx "state-dir = $FLEET/h$n/state" "$conf"
		grep -qx "module = $FLEET_MODULE" "$conf"
		[ "$(stat -c '%U %a' "$FLEET/h$n/state")" = "psfleet$n 700" ]
	done
	# the host's own commands take the token, PIN and state from it
	run as_host 03 "$FLEET/psrenew/bin/ps-status" --json
	[ "$status" -eq 0 ]
	[ "$(jq -r .has_key <<<"$output" | sort -u)" = true ]

	playbook psrenew-deploy
	[ "$status" -eq 0 ]
	[ "$(recap changed)" -eq 0 ]
	[ "$(recap failed)" -eq 0 ]
	echo "# figure: psrenew-deploy.yml over $FLEET_N hosts: $first_ms ms (a second run: $PLAY_MS ms)" >&3
}

@test "inventory: --check writes no file on the controller" {
	playbook psrenew-inventory --check
	[ "$status" -eq 0 ]
	[ "$(recap failed)" -eq 0 ]
	[ "$(recap changed)" -eq 4 ]
	[ ! -e "$FLEET/ctl/out/fleet.csv" ]
	[ ! -e "$FLEET/ctl/out/summary.txt" ]
}

@test "inventory: the fleet's JSON Lines, CSV and summary match each host's own ps-status and ps-fetch; a second run changes nothing" {
	playbook psrenew-inventory
	[ "$status" -eq 0 ]
	[ "$(recap failed)" -eq 0 ]
	[ "$(recap unreachable)" -eq 0 ]
	[ "$(recap_hosts)" -eq "$FLEET_N" ]
	first_ms=$PLAY_MS
	out=$FLEET/ctl/out
	[ "$(stat -c %a "$out/fleet.csv")" = 600 ]
	csv_table "$out/fleet.csv" >"$BATS_FILE_TMPDIR/csv.txt"
	head -n 1 "$out/fleet.csv" | grep -q '^host,kind,token_label,label,type,serial_hex,'
	for n in $(fleet_hosts); do
		h=ws$n
		# the host's own view, and what the fixture made
		certs=$(host_count "$n" ps-status)
		expiring=$(host_count "$n" ps-status --expiring 30)
		pending=$(host_count "$n" ps-fetch --pending --dry-run)
		unconfirmed=$(host_count "$n" ps-status --unregistered)
		[ "$certs" -eq "$(want_certs "$n")" ]
		[ "$expiring" -eq "$(want_expiring "$n")" ]
		[ "$pending" -eq "$(want_pending "$n")" ]
		[ "$unconfirmed" -eq "$(want_unconfirmed "$n")" ]
		# the summary says the same
		[ "$(summary_of "$h" certs)" -eq "$certs" ] || { echo "$h certs"; false; }
		[ "$(summary_of "$h" expiring)" -eq "$expiring" ] || { echo "$h expiring"; false; }
		[ "$(summary_of "$h" pending)" -eq "$pending" ] || { echo "$h pending"; false; }
		[ "$(summary_of "$h" unconfirmed)" -eq "$unconfirmed" ] || { echo "$h unconfirmed"; false; }
		[ "$(summary_of "$h" errors)" -eq 0 ]
		# the CSV has the host's certificates, serial by serial, flagged as
		# its ps-status --expiring and --unregistered list them
		as_host "$n" "$FLEET/psrenew/bin/ps-status" --json 2>/dev/null |
			jq -r '.serial_hex' | sort >"$BATS_FILE_TMPDIR/own"
		diff "$BATS_FILE_TMPDIR/own" <(csv_serials "$h")
		for flag in expiring unconfirmed; do
			case $flag in
			expiring) args=(--expiring 30) ;;
			unconfirmed) args=(--unregistered) ;;
			esac
			as_host "$n" "$FLEET/psrenew/bin/ps-status" "${args[@]}" --json 2>/dev/null |
				jq -r 'select(.kind == "cert") | .serial_hex' | sort >"$BATS_FILE_TMPDIR/own"
			diff "$BATS_FILE_TMPDIR/own" <(csv_serials "$h" "$flag")
		done
		# and the JSON Lines every record of the host's ps-status
		[ "$(jq -r --arg h "$h" 'select(.host == $h and .kind == "cert") | .serial_hex' \
			"$out/fleet.jsonl" | grep -c .)" -eq "$certs" ]
	done
	total=$(awk '$1 == "TOTAL" { print $3 }' "$out/summary.txt")
	[ "$total" -eq "$(grep -c '"expiring":true' "$out/fleet.jsonl")" ]
	cp "$out/fleet.jsonl" "$BATS_FILE_TMPDIR/jsonl.1"
	# the CSV is RFC 4180: every row has the header's number of fields
	/usr/bin/python3 -c 'import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
assert len({len(r) for r in rows}) == 1, "ragged CSV"' "$out/fleet.csv"

	playbook psrenew-inventory
	[ "$status" -eq 0 ]
	[ "$(recap changed)" -eq 0 ]
	[ "$(recap failed)" -eq 0 ]
	cmp "$out/fleet.jsonl" "$BATS_FILE_TMPDIR/jsonl.1"
	echo "# figure: psrenew-inventory.yml over $FLEET_N hosts: $first_ms ms (a second run: $PLAY_MS ms)" >&3
}

@test "register: --check registers nothing and says what it would" {
	cp "$FLEET/ws/data.json" "$BATS_FILE_TMPDIR/data.before"
	: >"$FLEET/ws/log"
	playbook psrenew-register --check -e "@$FLEET/ctl/secret.yml" \
		--vault-password-file "$FLEET/ctl/vault" \
		-e "psrenew_jip_config=$FLEET/ctl/jip.conf" -e psrenew_jip_admin=admin \
		-e "psrenew_controller_bindir=$FLEET/psrenew/bin"
	[ "$status" -eq 0 ]
	[ "$(recap failed)" -eq 0 ]
	[ "$(recap changed)" -eq 1 ]
	# every host with a certificate to register is named
	for n in $(fleet_hosts); do
		if [ "$(want_unconfirmed "$n")" -eq 1 ]; then
			grep -q "\"ws$n [0-9A-F]*\"" <<<"$output"
		fi
	done
	[ ! -s "$FLEET/ws/log" ]
	cmp "$FLEET/ws/data.json" "$BATS_FILE_TMPDIR/data.before"
}

@test "register: every unconfirmed serial set in JIP in one batch and kept on its host; a second run changes nothing" {
	: >"$FLEET/ws/log"
	for n in $(fleet_hosts); do
		as_host "$n" "$FLEET/psrenew/bin/ps-status" --unregistered --json 2>/dev/null |
			jq -r '.serial_hex' | sed 's/^0*//' >"$BATS_FILE_TMPDIR/want.$n"
	done
	reg=(-e "@$FLEET/ctl/secret.yml" --vault-password-file "$FLEET/ctl/vault"
		-e "psrenew_jip_config=$FLEET/ctl/jip.conf" -e psrenew_jip_admin=admin
		-e "psrenew_controller_bindir=$FLEET/psrenew/bin")
	playbook psrenew-register "${reg[@]}"
	[ "$status" -eq 0 ]
	[ "$(recap failed)" -eq 0 ]
	[ "$(recap unreachable)" -eq 0 ]
	first_ms=$PLAY_MS
	# the Vault password appears nowhere
	[[ $output != *Admin-456* ]]
	run grep -c Admin-456 "$FLEET/ws/log"
	[ "$output" = 0 ]
	n_want=0
	for n in $(fleet_hosts); do
		diff <(sort "$BATS_FILE_TMPDIR/want.$n") <(jip_numbers "fleet$n")
		n_want=$((n_want + $(grep -c . "$BATS_FILE_TMPDIR/want.$n" || true)))
		# the host keeps the confirmation: nothing unregistered any more
		[ "$(host_count "$n" ps-status --unregistered)" -eq 0 ]
	done
	[ "$n_want" -eq $((FLEET_N / 2)) ]
	# one batch: one login, one connection, one UpdateUser per serial
	[ "$(jq -r .conn "$FLEET/ws/log" | sort -u | wc -l)" -eq 1 ]
	[ "$(jq -r 'select(.method == "UpdateUser") | .object' "$FLEET/ws/log" | grep -c .)" -eq "$n_want" ]
	[ "$(jq -r .auth "$FLEET/ws/log" | sort -u)" = admin ]
	[ "$(jq -r .valid "$FLEET/ws/log" | sort -u)" = true ]

	: >"$FLEET/ws/log"
	playbook psrenew-register "${reg[@]}"
	[ "$status" -eq 0 ]
	[ "$(recap changed)" -eq 0 ]
	[ "$(recap failed)" -eq 0 ]
	[ ! -s "$FLEET/ws/log" ]
	echo "# figure: psrenew-register.yml over $FLEET_N hosts: $first_ms ms ($n_want serials registered in one batch; a second run: $PLAY_MS ms)" >&3

}

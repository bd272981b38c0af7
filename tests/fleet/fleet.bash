# shellcheck shell=bash disable=SC2034,SC2154
# (SC2154: $output is bats' run)
# The fleet of the Ansible tests: local users psfleet01..NN, each a
# "workstation" reached over one sshd on 127.0.0.1 (tests/fleet/sshd-start),
# each with its own SoftHSM token, state directory and certificates; the JIP
# editing web service test server; an inventory and an ansible.cfg of the
# test's own (nothing under ~root/.ansible).
#
#   load fleet          (after ../lib/psrenew and ../lib/servers)
#   setup_file() { fleet_setup; }   teardown_file() { fleet_teardown; }
#
# Layout of $FLEET (a directory of its own under /tmp, mode 0755, so that
# the test users reach their parts; removed by fleet_teardown):
#   psrenew/bin, psrenew/share/psrenew   a copy of the build's binaries
#   hNN/                host NN (owned by psfleetNN, mode 0700): softhsm/
#                       (token, pin), state/ (psrenew's state directory)
#   fixture/hNN/        what the fixture keeps of host NN (root's):
#                       certs/, sh-pending/, sh-pki/ (scripted CA helpers)
#   sshd/               tests/fleet/sshd-start's directory
#   ws/                 the JIP editing web service (tests/jip-ws)
#   ctl/                the controller: ansible.cfg, hosts.yml, jip.conf,
#                       vault (password file), secret.yml (Vault), out/
#                       (the playbooks' fleet files), logs
# Host NN's state (NN counted from 1): NN % 4 == 0 as demo_token makes it
# (two certificates expiring in 10 days); 1: also the qualified one's
# renewal pending at the CA; 2: the commercial one renewed, installed and
# not confirmed in JIP; 3: both.
#
# Environment: PSRENEW_FLEET_HOSTS (default 20), PSRENEW_FLEET_KEEP=1
# (keep $FLEET after the tests).

FLEET_N=${PSRENEW_FLEET_HOSTS:-20}
FLEET_PLAYBOOKS=$FIXTURE_ROOT/data/ansible
FLEET_MODULE=/usr/lib/softhsm/libsofthsm2.so

fleet_hosts() { # the host numbers, 01..NN
	seq -f '%02g' 1 "$FLEET_N"
}

# fleet_users: makes the users psfleet01..NN that are missing (home
# directory, bash, no password: key login only). Existing ones are kept.
fleet_users() {
	local n u
	for n in $(fleet_hosts); do
		u=psfleet$n
		id "$u" >/dev/null 2>&1 && continue
		useradd -m -s /bin/bash -c "psrenew fleet test $n" "$u" || return 1
		# "*": no password, and not a locked account ("!"), which sshd
		# without PAM refuses even for a key
		usermod -p '*' "$u" || return 1
	done
}

# fleet_host_fixture NN: host NN's token, certificates and requests (as
# root, then handed to psfleetNN).
fleet_host_fixture() (
	local n=$1
	local h=$FLEET/h$n fx=$FLEET/fixture/h$n pki
	set -e
	mkdir -p "$h" "$fx"
	export BATS_TEST_TMPDIR=$h
	export PSRENEW_STATE_DIR=$h/state
	: >"$fx/empty.conf"
	export PSRENEW_CONFIG=$fx/empty.conf
	demo_token
	pki=$(pki_dir)
	local p11=(--module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --token "$TOKEN_URI")
	mkdir -p "$fx/sh-pending" "$fx/sh-pki"
	echo pending >"$fx/sh-pending/answers"
	echo pki >"$fx/sh-pki/answers"
	ln -sfn "$pki" "$fx/sh-pki/pki"
	if ((10#$n % 2 == 1)); then
		ps-renew "${p11[@]}" --id "$QUAL_ID" \
			--ca "helper:$SCRIPTED_HELPER $fx/sh-pending" >/dev/null || [ $? -eq 3 ]
	fi
	if ((10#$n % 4 >= 2)); then
		ps-renew "${p11[@]}" --id "$COMM_ID" --ca "helper:$SCRIPTED_HELPER $fx/sh-pki" >/dev/null
		ps-fetch "${p11[@]}" --pending >/dev/null || [ $? -eq 3 ]
	fi
	mv "$h/certs" "$fx/certs"
	chown -R "psfleet$n:" "$h"
	chmod 0700 "$h"
)

# fleet_fixtures: every host's fixture, two at a time (the first alone: it
# builds the demo token the others copy).
fleet_fixtures() {
	local n pids=() bad=0 p
	fleet_host_fixture 01 || { echo "fixture of host 01 failed" >&2; return 1; }
	for n in $(fleet_hosts | tail -n +2); do
		fleet_host_fixture "$n" &
		pids+=($!)
		if ((${#pids[@]} == 2)); then
			for p in "${pids[@]}"; do wait "$p" || bad=1; done
			pids=()
		fi
	done
	for p in "${pids[@]}"; do wait "$p" || bad=1; done
	((bad == 0)) || { echo "a host's fixture failed" >&2; return 1; }
}

# fleet_setup: everything above; exports FLEET, the servers' variables and
# the ansible-playbook environment (ANSIBLE_CONFIG ...).
fleet_setup() {
	local n
	[[ $(id -u) == 0 ]] || { echo "the fleet tests need root (test users, sshd)" >&2; return 1; }
	FLEET=$(mktemp -d /tmp/psrenew-fleet.XXXXXX) || return 1
	chmod 0755 "$FLEET"
	export FLEET
	mkdir -p "$FLEET/psrenew/share" "$FLEET/ctl/out" "$FLEET/ctl/tmp" "$FLEET/fixture"
	cp -a "$PSRENEW_BUILD/bin" "$FLEET/psrenew/" || return 1
	cp -a "$PSRENEW_BUILD/share/psrenew" "$FLEET/psrenew/share/" || return 1
	chmod -R a+rX "$FLEET/psrenew"
	fleet_users || return 1
	fleet_fixtures || return 1
	local logins
	mapfile -t logins < <(fleet_hosts | sed 's/^/psfleet/')
	eval "$("$FIXTURE_ROOT/tests/fleet/sshd-start" "$FLEET/sshd" "${logins[@]}")" || return 1
	export SSHD_PORT SSHD_CLIENT_KEY SSHD_KNOWN_HOSTS
	start_jipws "$FLEET/ws" || return 1
	fleet_jip_data
	fleet_controller
}

fleet_teardown() {
	[[ -n ${FLEET:-} && -d $FLEET ]] || return 0
	"$FIXTURE_ROOT/tests/fleet/sshd-stop" "$FLEET/sshd"
	stop_servers
	# PSRENEW_FLEET_KEEP=1 keeps the fleet's files (logs) to look at
	[[ ${PSRENEW_FLEET_KEEP:-} == 1 ]] || rm -rf "$FLEET"
}

# fleet_jip_data: the JIP test service's users fleetNN (no certificate yet)
# and its local administrator admin / Admin-456.
fleet_jip_data() {
	local n users=
	for n in $(fleet_hosts); do
		users+="${users:+,}\"fleet$n\": {\"certs\": [], \"cas\": 1700000000}"
	done
	printf '{"subjects": ["MV"], "admins": {"admin": "Admin-456"}, "users": {%s}}\n' \
		"$users" >"$FLEET/ws/data.json"
}

# fleet_controller: ansible.cfg, the inventory, the controller's
# psrenew.conf for the web service, the Vault-encrypted admin password.
fleet_controller() {
	local c=$FLEET/ctl n
	cat >"$c/ansible.cfg" <<EOF_CFG
[defaults]
forks = 10
inventory = $c/hosts.yml
local_tmp = $c/tmp
host_key_checking = True
retry_files_enabled = False
interpreter_python = /usr/bin/python3
nocolor = True
[ssh_connection]
pipelining = True
control_path_dir = $c/cp
ssh_args = -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=$SSHD_KNOWN_HOSTS -o BatchMode=yes
EOF_CFG
	{
		echo 'all:'
		echo '  vars:'
		echo '    ansible_python_interpreter: /usr/bin/python3'
		echo '  children:'
		echo '    psrenew:'
		echo '      vars:'
		echo '        ansible_host: 127.0.0.1'
		echo "        ansible_port: $SSHD_PORT"
		echo "        ansible_ssh_private_key_file: $SSHD_CLIENT_KEY"
		echo '        psrenew_install: none'
		echo "        psrenew_bindir: $FLEET/psrenew/bin"
		echo "        psrenew_datadir: $FLEET/psrenew/share/psrenew"
		echo "        psrenew_module: $FLEET_MODULE"
		echo '        psrenew_token: pkcs11:token=psrenew-test'
		echo '      hosts:'
		for n in $(fleet_hosts); do
			echo "        ws$n:"
			echo "          ansible_user: psfleet$n"
			echo "          psrenew_pin_file: $FLEET/h$n/softhsm/pin"
			echo "          psrenew_state_dir: $FLEET/h$n/state"
			echo "          psrenew_jip_user: fleet$n"
			echo "          psrenew_environment: {SOFTHSM2_CONF: $FLEET/h$n/softhsm/softhsm2.conf}"
		done
	} >"$c/hosts.yml"
	(umask 077 && printf '[jip]\nbackend = ws\nws-version = 1.0\nws-url = %s\nca-bundle = %s\n' \
		"$JIPWS_URL/spravadat/ws/call/MV/" "$JIPWS_TLS_CA" >"$c/jip.conf")
	(umask 077 && printf 'fleet-vault-test\n' >"$c/vault")
	printf 'Admin-456' | ANSIBLE_CONFIG=$c/ansible.cfg ansible-vault encrypt_string \
		--vault-password-file "$c/vault" --stdin-name psrenew_jip_password \
		>"$c/secret.yml" 2>/dev/null || return 1
	chmod 0600 "$c/secret.yml"
	export ANSIBLE_CONFIG=$c/ansible.cfg ANSIBLE_HOME=$c/home
}

# playbook NAME [ARGS...]: ansible-playbook data/ansible/NAME.yml with the
# test's inventory; output in $output and $FLEET/ctl/NAME.TEST.N.log, the wall
# time in ms in $PLAY_MS.
playbook() {
	local name=$1 t0 log
	shift
	log=$FLEET/ctl/$name.$BATS_TEST_NUMBER.$((++FLEET_RUNS)).log
	t0=$(date +%s%N)
	run ansible-playbook "$FLEET_PLAYBOOKS/$name.yml" \
		-e "psrenew_fleet_dir=$FLEET/ctl/out" "$@"
	PLAY_MS=$((($(date +%s%N) - t0) / 1000000))
	printf '%s\n# %s ms\n' "$output" "$PLAY_MS" >"$log"
}
FLEET_RUNS=0

# recap FIELD: the sum of FIELD=N over the PLAY RECAP lines of $output.
recap() {
	sed -n '/^PLAY RECAP/,$p' <<<"$output" | grep -o "$1=[0-9]*" |
		awk -F= '{ s += $2 } END { print s + 0 }'
}

# recap_hosts: how many hosts the PLAY RECAP lists.
recap_hosts() {
	sed -n '/^PLAY RECAP/,$p' <<<"$output" | grep -c ' : ok='
}

# as_host NN CMD...: CMD as psfleetNN, in that host's environment.
as_host() {
	local n=$1
	shift
	runuser -u "psfleet$n" -- env -i HOME="/home/psfleet$n" PATH=/usr/bin:/bin \
		LC_ALL=C.UTF-8 SOFTHSM2_CONF="$FLEET/h$n/softhsm/softhsm2.conf" "$@"
}

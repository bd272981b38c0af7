#!/usr/bin/env bats
# The Debian package of make deb (mk/deb.mk): lintian finds no error; it
# installs on this machine with dpkg -i, its binaries and man pages work
# from /usr, the Ansible role installs it too, and dpkg -r leaves the
# system as it was. Needs root; PSRENEW_DEB names the package (make
# check-fleet sets it), else build/deb/psrenew_*.deb.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup_file() {
	[[ $(id -u) == 0 ]] || skip "dpkg -i needs root"
	DEB=${PSRENEW_DEB:-}
	if [[ -z $DEB ]]; then
		DEB=$(find "$FIXTURE_ROOT/build/deb" -maxdepth 1 -name 'psrenew_*.deb' 2>/dev/null | sort | tail -n 1)
	fi
	export DEB
}

setup() {
	[[ $(id -u) == 0 ]] || skip "dpkg -i needs root"
	[[ -f $DEB ]] || { echo "no package: run make deb (or set PSRENEW_DEB)" >&2; return 1; }
	# a psrenew the machine had before is not ours to remove
	if [[ $(pkg_status) != not-installed ]]; then
		skip "a psrenew package is installed already: left alone"
	fi
	# what the package's files are, and which of them the system had
	dpkg-deb -c "$DEB" | awk '{ print $NF }' | sed 's|^\./|/|; s|/$||' | grep -v '^$' |
		sort >"$BATS_TEST_TMPDIR/files"
	existing >"$BATS_TEST_TMPDIR/before"
}

teardown() {
	[[ $(id -u) == 0 ]] || return 0
	if [[ $(pkg_status) != not-installed ]] && [[ -z ${KEEP_PKG:-} ]]; then
		dpkg -r psrenew >/dev/null 2>&1 || true
	fi
}

# pkg_status: dpkg's status of psrenew (not-installed when unknown)
pkg_status() {
	local s
	s=$(dpkg-query -W -f='${db:Status-Status}' psrenew 2>/dev/null) || s=
	echo "${s:-not-installed}"
}

# existing: the package's paths that exist now (its directories too), with
# their type
existing() {
	local p
	while IFS= read -r p; do
		if [[ -L $p ]]; then echo "link $p"
		elif [[ -d $p ]]; then echo "dir $p"
		elif [[ -e $p ]]; then echo "file $p"
		fi
	done <"$BATS_TEST_TMPDIR/files"
}

@test "lintian: no error in the package" {
	run lintian "$DEB"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^E: ' <<<"$output" || true)" -eq 0 ]
}

@test "dpkg -i: ps-status --version runs from /usr/bin, man finds the pages; dpkg -r leaves the system as it was" {
	run dpkg -i "$DEB"
	[ "$status" -eq 0 ]
	[ "$(pkg_status)" = installed ]
	run /usr/bin/ps-status --version
	[ "$status" -eq 0 ]
	[[ $output == *"$(sed -n 's/.*PSRENEW_VERSION "\(.*\)"/\1/p' "$FIXTURE_ROOT/lib/psrenew/version.h")"* ]]
	run man -w ps-status
	[ "$status" -eq 0 ]
	[ "$output" = /usr/share/man/man1/ps-status.1.gz ]
	man -w psrenew.conf
	# the shared library is known to the dynamic linker (ldconfig trigger)
	ldconfig -p | grep -q 'libpsrenew.so.0 '
	# the data: units with /usr/bin, JIP profile, Ansible content
	grep -qx 'ExecStart=/usr/bin/ps-fetch --pending --quiet --human' \
		/usr/share/psrenew/systemd/psrenew-fetch.service
	[ -f /usr/share/psrenew/jip-czechpoint.json ]
	[ -f /usr/share/psrenew/ansible/psrenew-inventory.yml ]
	[ -f /usr/share/psrenew/ansible/roles/psrenew/tasks/main.yml ]
	# ps-status finds its profile and module defaults as installed: a run
	# on a SoftHSM token
	psrenew_setup
	: >"$BATS_TEST_TMPDIR/empty.conf"
	demo_token
	run env PSRENEW_CONFIG="$BATS_TEST_TMPDIR/empty.conf" /usr/bin/ps-status \
		--module "$PKCS11_MODULE" --json
	[ "$status" -eq 0 ]
	[ "$(grep -c '"kind":"cert"' <<<"$output")" -eq 4 ]

	run dpkg -r psrenew
	[ "$status" -eq 0 ]
	[ "$(pkg_status)" = not-installed ]
	[ ! -e /usr/bin/ps-status ]
	existing >"$BATS_TEST_TMPDIR/after"
	diff "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
	[ "$(ldconfig -p | grep -c 'libpsrenew.so.0 ' || true)" -eq 0 ]
}

@test "the Ansible role installs the package file (psrenew_install: deb); a second run changes nothing" {
	conf=$BATS_TEST_TMPDIR/conf/psrenew.conf
	pb=(ansible-playbook -i 'localhost,' -c local "$FIXTURE_ROOT/data/ansible/psrenew-deploy.yml"
		-e psrenew_hosts=localhost -e ansible_python_interpreter=/usr/bin/python3
		-e psrenew_install=deb -e "psrenew_deb=$DEB" -e "psrenew_config_path=$conf"
		-e psrenew_module=/usr/lib/softhsm/libsofthsm2.so)
	export ANSIBLE_LOCAL_TEMP=$BATS_TEST_TMPDIR/ansible-tmp ANSIBLE_HOME=$BATS_TEST_TMPDIR/ansible
	export ANSIBLE_NOCOLOR=1
	run "${pb[@]}"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(pkg_status)" = installed ]
	run /usr/bin/ps-status --version
	[ "$status" -eq 0 ]
	grep -qx 'module = /usr/lib/softhsm/libsofthsm2.so' "$conf"
	[ "$(stat -c %a "$conf")" = 600 ]
	run "${pb[@]}"
	[ "$status" -eq 0 ]
	grep -q 'localhost *: ok=[0-9]* *changed=0 .*failed=0' <<<"$output"

	run dpkg -r psrenew
	[ "$status" -eq 0 ]
	rm -f "/var/cache/psrenew/${DEB##*/}"
	rmdir /var/cache/psrenew 2>/dev/null || true
	[ "$(pkg_status)" = not-installed ]
	existing >"$BATS_TEST_TMPDIR/after"
	diff "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
}

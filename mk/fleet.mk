# The fleet stage: the slow tests of tests/fleet, as root.
#
# make check-fleet     the Ansible role and playbooks (data/ansible) against
#                      20 local workstations (users psfleet01..20, made when
#                      missing, over one sshd on 127.0.0.1), and the Debian
#                      package (make deb) installed with dpkg -i and removed
#                      again (tests/run --fleet). Part of make check, after
#                      the valgrind stage; about 5 minutes on 2 cores.
#                      PSRENEW_FLEET_HOSTS=N for another number of hosts.

.PHONY: check-fleet

check-fleet:
	scripts/install-deps
	$(MAKE) tests
	$(MAKE) --no-print-directory deb
	PSRENEW_BUILD=$(abspath $(B)) PSRENEW_DEB=$(abspath $(DEB_FILE)) \
		tests/run --fleet

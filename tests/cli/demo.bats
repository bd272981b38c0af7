#!/usr/bin/env bats
# make demo: the README's second command runs the guide's whole workflow.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

DEMO=$FIXTURE_ROOT/scripts/demo

setup() {
	DEMO_DIR=$PSRENEW_BUILD/demo
}

# the portal a test starts itself, should the demo not stop it
teardown() {
	stop_servers
}

# after STEP: the demo's output from the header of STEP on.
after() {
	printf '%s\n' "${output#*"== $1"}"
}

# between A B: the output from step A to step B.
between() {
	local s=${output#*"== $1"}
	printf '%s\n' "${s%%"== $2"*}"
}

# portal_processes: processes whose command line names the demo's portal.
portal_processes() {
	local f n=0 args
	for f in /proc/[0-9]*/cmdline; do
		{ mapfile -d '' args <"$f"; } 2>/dev/null || continue
		[[ " ${args[*]} " == *"$DEMO_DIR/jip"* ]] && n=$((n + 1))
	done
	echo "$n"
}

# new_serials: the serials the demo registered in JIP, sorted.
new_serials() {
	jq -r .serial_hex "$DEMO_DIR"/state/jip/*.json | sort
}

check_run() {
	[ "$status" -eq 0 ] || { echo "$output"; false; }
	# every step, with the command a user would type
	for cmd in 'ps-status --human' 'ps-status --expiring 30 --human' \
		'ps-token-clean --for-room 2 --human' 'ps-token-clean --for-room 2 --yes --human' \
		'ps-status --expiring 30 | ps-renew --ca postsignum-test --human' \
		'ps-fetch --pending --human' \
		'ps-fetch --pending --now --human' \
		'ps-status --unregistered | ps-jip-setserial --login cert --password env:JIP_PASSWORD --human' \
		'ps-token-clean --superseded --yes --human'; do
		grep -qxF "\$ $cmd" <<<"$output" || { echo "missing step: $cmd"; false; }
	done
	# the password never appears
	[[ "$output" != *"Heslo.123"* ]]
	# 2: two certificates expire soon
	[[ "$(between "2. " "3. ")" == *"Exit status 3: 2 certificates expire within 30 days"* ]]
	# 3: the dry run removes nothing, the second run removes the expired one
	dry=$(between "3. " "4. ")
	[[ "$dry" == *"dry run, 3 object(s) would be removed; nothing was"* ]]
	[[ "$dry" == *"3 object(s) removed"* ]]
	[ "$(grep -c '^TokenME  cert     expired' <<<"$dry")" -eq 2 ]
	# 4: two requests, qualified first
	renew=$(between "4. " "5. ")
	[ "$(grep -cE '^[0-9]{8}-[0-9]{6}-[0-9a-f]{8} +pending +qualified' <<<"$renew")" -eq 1 ]
	[[ "$(grep -E '^[0-9]{8}-' <<<"$renew" | head -1)" == *" qualified "* ]]
	# 5: still pending
	[[ "$(between "5. " "6. ")" == *"Exit status 3: still pending"* ]]
	# 6: cron installed both; ps-status --unregistered gave them to JIP, from a
	# certificate login
	[[ "$(between "6. " "7. ")" == *"the 2 certificates psrenew installed that JIP has not confirmed yet"* ]]
	[ "$(grep -cE '^jnovak +(qualified|commercial) +[0-9A-F]+ +set ' <<<"$(between "6. " "7. ")")" -eq 2 ]
	[ "$(new_serials | wc -l)" -eq 2 ]
	for s in $(new_serials); do
		jq -e --arg s "$s" '.users[] | select(.name == "jnovak") | .certificates[] | select(.serial == $s)' \
			"$DEMO_DIR/jip/accounts.json" >/dev/null || { echo "JIP lacks $s"; false; }
	done
	grep -q 'outcome=login-ok-certifikat' "$DEMO_DIR/jip/log"
	# 7: the two superseded certificates went, with their keys
	[[ "$(between "7. " "8. ")" == *"6 object(s) removed"* ]]
	# 8: three valid certificates, the new ones among them
	final=$(between "8. " "Summary")
	[ "$(grep -c '^TokenME  .* valid  ' <<<"$final")" -eq 3 ]
	[ "$(grep -cE 'superseded|expired' <<<"$final")" -eq 0 ]
	for s in $(new_serials); do grep -q "$s" <<<"$final"; done
	[[ "$final" == *"Exit status 0: nothing expires within 30 days"* ]]
	# the summary, and every server stopped
	summary=$(after "Summary")
	[[ "$summary" == *"The token holds 3 valid certificates and 0 others."* ]]
	[[ "$summary" == *"Stopped the JIP test portal"* ]]
	[ "$(portal_processes)" -eq 0 ]
	[ ! -e "$DEMO_DIR/jip/nginx.pid" ] && [ ! -e "$DEMO_DIR/jip/portal.pid" ]
}

@test "make demo renews Jan Novák's certificates end to end, and again on a re-run" {
	run "$DEMO"
	check_run
	first=$(new_serials)
	# a run interrupted hard leaves its portal running: the next run stops it
	server_started jip "$DEMO_DIR/jip"
	"$FIXTURE_ROOT/tests/jip/jip-start" "$DEMO_DIR/jip" "$DEMO_DIR/ca/pki" >/dev/null
	old=$(<"$DEMO_DIR/jip/portal.pid")
	[ "$(portal_processes)" -gt 0 ]
	run "$DEMO"
	check_run
	[ ! -e "/proc/$old" ] || [[ "$(tr '\0' ' ' <"/proc/$old/cmdline")" != *"$DEMO_DIR"* ]]
	# a new token, new certificates: the re-run started over
	[ "$(new_serials)" != "$first" ]
}

@test "the demo says how to build when the binaries are missing" {
	run env PSRENEW_BUILD="$BATS_TEST_TMPDIR/nothing" "$DEMO"
	[ "$status" -eq 1 ]
	[[ "$output" == *"run 'make demo'"* ]]
	[ ! -e "$BATS_TEST_TMPDIR/nothing/demo" ]
}

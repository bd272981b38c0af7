#!/usr/bin/env bats
# A newcomer's rough edges, continued: configuration errors with file, line
# and key; cert records that lack a field; progress lines on a terminal the
# tools of a pipeline share; tokens with the same label; notes for people
# in cron; days counted as the page says.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
}

# conf LINE...: a psrenew.conf of ours (mode 0600) in $CONF.
conf() {
	CONF=$BATS_TEST_TMPDIR/psrenew.conf
	printf '%s\n' "$@" >"$CONF"
	chmod 600 "$CONF"
}

@test "a cert record without token or serial_hex says which field is missing" {
	local in
	for in in '{"kind":"cert"}' '{"kind":"cert","token":"pkcs11:token=x"}' \
		'{"kind":"cert","serial_hex":"0A"}'; do
		run --separate-stderr ps-renew --json --ca helper:/bin/false \
			--module /nonexistent.so <<<"$in"
		[ "$status" -eq 1 ]
		[ "$(jfield code <<<"$output")" = bad-record ]
		[[ $stderr != *"?"* ]]
		[[ $in == *token* || $stderr == *'no "token"'* ]]
		[[ $in == *serial_hex* || $stderr == *'"serial_hex"'* ]]
		[[ $stderr == *"does not say which certificate to renew"* ]]
	done
}

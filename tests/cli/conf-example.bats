#!/usr/bin/env bats
# data/psrenew.conf.example: it parses, names every key the code reads, and
# psrenew.conf(5) documents every one of them; make install puts it under
# the data directory.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

EXAMPLE=$FIXTURE_ROOT/data/psrenew.conf.example

# config_keys: every key the sources read from the configuration, one a line.
config_keys() {
	{
		grep -ohE 'ps_config_get\([^;]*' "$FIXTURE_ROOT"/lib/*.c "$FIXTURE_ROOT"/cmd/*.c |
			grep -oE '"[a-z-]+"\)'
		grep -ohE '\bopt\(ca, "[a-z-]+"\)' "$FIXTURE_ROOT"/lib/ca_*.c | grep -oE '"[a-z-]+"\)'
	} | tr -d '")' | sort -u
}

# check_parses FILE: a binary reads FILE and does its (harmless) job.
check_parses() {
	# a dry run reads the state directory and makes none (ps-fetch(1))
	mkdir -p -m 700 "$BATS_TEST_TMPDIR/state"
	run --separate-stderr ps-fetch --config "$1" --state-dir "$BATS_TEST_TMPDIR/state" \
		--pending --dry-run
	[ "$status" -eq 0 ] || { echo "$1: status $status: $stderr"; false; }
	run --separate-stderr env PSRENEW_CONFIG="$1" ps-fetch \
		--state-dir "$BATS_TEST_TMPDIR/state" --pending --dry-run
	[ "$status" -eq 0 ] || { echo "PSRENEW_CONFIG=$1: status $status: $stderr"; false; }
}

@test "the example configuration parses, as it is and with every key uncommented" {
	check_parses "$EXAMPLE"
	sed -E 's/^;([a-z-]+ = )/\1/' "$EXAMPLE" >"$BATS_TEST_TMPDIR/all.conf"
	[ "$(grep -cE '^[a-z-]+ = ' "$BATS_TEST_TMPDIR/all.conf")" -gt \
		"$(grep -cE '^[a-z-]+ = ' "$EXAMPLE")" ]
	check_parses "$BATS_TEST_TMPDIR/all.conf"
	# and a broken copy does not: the check can fail
	{ cat "$EXAMPLE"; echo "this line has no equals sign"; } >"$BATS_TEST_TMPDIR/bad.conf"
	run --separate-stderr ps-fetch --config "$BATS_TEST_TMPDIR/bad.conf" \
		--state-dir "$BATS_TEST_TMPDIR/state" --pending --dry-run
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"bad.conf, line $(wc -l <"$BATS_TEST_TMPDIR/bad.conf"): syntax error"* ]]
}

@test "the example's CA channels are what ps-renew --ca NAME finds" {
	psrenew_setup
	demo_token
	for name in postsignum office; do
		run --separate-stderr ps-renew --config "$EXAMPLE" --module "$PKCS11_MODULE" \
			--token "$TOKEN_URI" --pin "file:$PIN_FILE" --state-dir "$BATS_TEST_TMPDIR/state" \
			--ca "$name" --dry-run --all-expiring 30
		[ "$status" -eq 0 ] || { echo "$name: $status $stderr"; false; }
		[ "$(jfield state <<<"$output" | sort -u)" = planned ]
		[ "$(jfield ca <<<"$output" | sort -u)" = "$name" ]
	done
	[ "$(jfield channel <<<"$output" | sort -u)" = \
		"helper:/usr/lib/certmonger/local-submit -d /var/lib/testca" ]
	run --separate-stderr ps-renew --config "$EXAMPLE" --module "$PKCS11_MODULE" \
		--token "$TOKEN_URI" --pin "file:$PIN_FILE" --ca nosuchname --dry-run --all-expiring 30
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"no CA channel named 'nosuchname'"* ]]
}

@test "every configuration key the code reads is in the example and in psrenew.conf(5)" {
	keys=$(config_keys)
	[ "$(wc -l <<<"$keys")" -ge 15 ]
	text=$(MANWIDTH=200 man -l "$FIXTURE_ROOT/man/psrenew.conf.5" 2>/dev/null)
	for k in $keys; do
		grep -qE "^;?$k = " "$EXAMPLE" || { echo "$k: not in the example"; false; }
		grep -qE "^ {7}$k\b|^ {7}.*, $k\b" <<<"$text" || { echo "$k: not in psrenew.conf(5)"; false; }
	done
	for s in defaults ca.postsignum jip jip-ca; do
		grep -qx "\[$s\]" "$EXAMPLE" || { echo "[$s] missing"; false; }
	done
}

@test "make install puts the example under the data directory" {
	make -C "$FIXTURE_ROOT" -s install B="$PSRENEW_BUILD" DESTDIR="$BATS_TEST_TMPDIR/dest" \
		PREFIX=/opt/psr >/dev/null
	cmp "$EXAMPLE" "$BATS_TEST_TMPDIR/dest/opt/psr/share/psrenew/psrenew.conf.example"
}

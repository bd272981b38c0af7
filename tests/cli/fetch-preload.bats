#!/usr/bin/env bats
# ps-renew | ps-fetch: ps-fetch starts its module while the records are on
# their way (lib/fetch.c ps_fetch_preload), without a login, and the
# renewal's state store ends as before.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
	demo_token
	CA_DIR=$BATS_TEST_TMPDIR/ca
	LOCAL_CA="helper:$LOCAL_SUBMIT -d $CA_DIR"
	mkdir -p "$CA_DIR"
}

calls() { awk -v f="$1" '$1 == f { print $2 }' "$BATS_TEST_TMPDIR/calls"; }

@test "ps-fetch with --module loads it before reading stdin: no record, no login" {
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" \
		P11FAULT_COUNT_FILE="$BATS_TEST_TMPDIR/calls" \
		ps-fetch --module "$P11FAULT" --pin "file:$PIN_FILE" </dev/null
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ "$(calls C_Initialize)" -eq 1 ]
	[ -z "$(calls C_Login)" ]
	# a module that cannot be loaded is no error while nothing needs it
	run --separate-stderr ps-fetch --module /nonexistent/module.so </dev/null
	[ "$status" -eq 0 ]
}

@test "ps-renew | ps-fetch: one module start and one login in ps-fetch; the request ends installed" {
	run --separate-stderr bash -o pipefail -c 'ps-renew --module "$1" --pin "file:$2" --token "$3" --id "$4" \
			--ca "$5" --key-type ec:prime256v1 |
		env P11FAULT_MODULE="$1" P11FAULT_COUNT_FILE="$6" \
			ps-fetch --module "$7" --pin "file:$2"' _ \
		"$PKCS11_MODULE" "$PIN_FILE" "$TOKEN_URI" "$COMM_ID" "$LOCAL_CA" \
		"$BATS_TEST_TMPDIR/calls" "$P11FAULT"
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
	[ "$(calls C_Initialize)" -eq 1 ]
	[ "$(calls C_Login)" -eq 1 ]
	f=$(ls "$PSRENEW_STATE_DIR"/requests/*.json)
	[ "$(jq -r .state "$f")" = installed ]
	[ "$(jq -r 'has("install_leftovers_before")' "$f")" = false ]
}

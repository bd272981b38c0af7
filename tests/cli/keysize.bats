#!/usr/bin/env bats
# ps-renew's key size when nobody chose one: RSA-4096 where the token can
# make it (iSignum's default since 2023), else RSA-2048, never smaller than
# the current key; a slow key generation shows its time on a terminal.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
	demo_token
	CA_DIR=$BATS_TEST_TMPDIR/ca
	LOCAL_CA="helper:$LOCAL_SUBMIT -d $CA_DIR"
	mkdir -p "$CA_DIR"
	# these tests are about the default: nothing chooses the key here
	unset PSRENEW_KEY_TYPE
}

# renew_via_fault ARGS: ps-renew through p11fault (its variables set by
# the caller) on the demo token's commercial certificate.
renew_via_fault() {
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" \
		ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$COMM_ID" --ca "$LOCAL_CA" "$@"
}

csr_bits() { # the modulus size of the request's CSR
	jq -r .csr <<<"$output" | openssl req -noout -text |
		sed -n 's/.*Public-Key: (\([0-9]*\) bit).*/\1/p'
}

@test "a token that makes 4096-bit RSA keys gets one by default, and says why" {
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$COMM_ID" --ca "$LOCAL_CA" --verbose
	[ "$status" -eq 0 ]
	[ "$(jfield state <<<"$output")" = issued ]
	[ "$(jfield key_type <<<"$output")" = rsa:4096 ]
	[ "$(jfield key_bits <<<"$output")" = 4096 ]
	[ "$(jfield key_choice <<<"$output")" = token-4096 ]
	[ "$(jfield token_rsa_max_bits <<<"$output")" -ge 4096 ]
	[ "$(csr_bits)" = 4096 ]
	jq -r .cert <<<"$output" | openssl x509 -noout -text | grep -q 'Public-Key: (4096 bit)'
	[[ $stderr == *"rsa:4096 key (token-4096: the token makes RSA keys of up to"*CKM_RSA_PKCS_KEY_PAIR_GEN* ]]
}

@test "a token that makes RSA keys of at most 2048 bits gets 2048" {
	P11FAULT_RSA_MAX_BITS=2048 renew_via_fault --verbose
	[ "$status" -eq 0 ]
	[ "$(jfield key_type <<<"$output")" = rsa:2048 ]
	[ "$(jfield key_bits <<<"$output")" = 2048 ]
	[ "$(jfield key_choice <<<"$output")" = token-2048 ]
	[ "$(jfield token_rsa_max_bits <<<"$output")" = 2048 ]
	[ "$(csr_bits)" = 2048 ]
	[[ $stderr == *"rsa:2048 key (token-2048: the token makes RSA keys of up to 2048 bits"* ]]
}

@test "the key is never smaller than the current one: a 4096-bit holder on a 2048-bit token is told, nothing generated" {
	id=$(token_cert commercial -300d +20d big "" "" rsa:4096)
	keys=$(token_objects privkey)
	P11FAULT_RSA_MAX_BITS=2048 P11FAULT_COUNT_FILE=$BATS_TEST_TMPDIR/count \
		run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" \
		ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$id" --ca "$LOCAL_CA" --verbose
	[ "$status" -eq 6 ]
	[[ $stderr == *"rsa:4096 key (current-key: never smaller than the current key)"* ]]
	[[ $stderr == *"only for keys of"*"not 4096"* ]]
	! grep -q C_GenerateKeyPair "$BATS_TEST_TMPDIR/count"
	[ "$(token_objects privkey)" -eq "$keys" ]
}

@test "key-type in psrenew.conf, PSRENEW_KEY_TYPE and --key-type choose the key, in that order of strength" {
	printf '[defaults]\nkey-type = ec:prime256v1\n' >"$BATS_TEST_TMPDIR/psrenew.conf"
	chmod 600 "$BATS_TEST_TMPDIR/psrenew.conf"
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/psrenew.conf
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$COMM_ID" --ca "$LOCAL_CA" --dry-run
	[ "$status" -eq 0 ]
	[ "$(jfield key_type <<<"$output")" = ec:prime256v1 ]
	[ "$(jfield key_choice <<<"$output")" = config ]
	PSRENEW_KEY_TYPE=ec:secp384r1 run --separate-stderr ps-renew --module "$PKCS11_MODULE" \
		--pin "file:$PIN_FILE" --token "$TOKEN_URI" --id "$COMM_ID" --ca "$LOCAL_CA" --dry-run
	[ "$(jfield key_type <<<"$output")" = ec:secp384r1 ]
	[ "$(jfield key_choice <<<"$output")" = environment ]
	PSRENEW_KEY_TYPE=ec:secp384r1 run --separate-stderr ps-renew --module "$PKCS11_MODULE" \
		--pin "file:$PIN_FILE" --token "$TOKEN_URI" --id "$COMM_ID" --ca "$LOCAL_CA" --dry-run \
		--key-type rsa:3072
	[ "$(jfield key_type <<<"$output")" = rsa:3072 ]
	[ "$(jfield key_bits <<<"$output")" = 3072 ]
	[ "$(jfield key_choice <<<"$output")" = option ]
}

# The one slow test: a key generation of 65 s (a TokenME's RSA-4096 takes
# minutes) shows an updating line on a terminal, and nothing times out.
@test "a slow key generation shows its time on a terminal and completes" {
	printf '%s\n' "$PIN" >"$BATS_TEST_TMPDIR/pin"
	cmd=$(printf '%q ' env P11FAULT_MODULE="$PKCS11_MODULE" \
		P11FAULT_DELAY=C_GenerateKeyPair:65000 P11FAULT_RSA_MAX_BITS=2048 \
		ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" --token "$TOKEN_URI" \
		--id "$COMM_ID" --ca "$LOCAL_CA" --json)
	run script -q -e -c "$cmd 2>&1 >$BATS_TEST_TMPDIR/out" "$BATS_TEST_TMPDIR/tty" </dev/null
	[ "$status" -eq 0 ]
	[ "$(jfield state <"$BATS_TEST_TMPDIR/out")" = issued ]
	grep -aq "ps-renew: generating a 2048-bit key on $TOKEN_LABEL: 0 s" "$BATS_TEST_TMPDIR/tty"
	grep -aEq "ps-renew: generating a 2048-bit key on $TOKEN_LABEL: 1 min [0-9]+ s" "$BATS_TEST_TMPDIR/tty"
	# not on a pipe: the records alone, no line
	P11FAULT_RSA_MAX_BITS=2048 renew_via_fault --force
	[ "$status" -eq 0 ]
	[[ $stderr != *generating* ]]
}

#!/usr/bin/env bats
# ps-status: what is on the token, what expires.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
	demo_token
}

@test "lists every certificate as one JSON record each" {
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --json
	[ "$status" -eq 0 ]
	records_valid
	[ "$(grep -c . <<<"$output")" -eq 4 ]
	[ "$(jfield kind <<<"$output" | sort -u)" = cert ]
	for f in token token_label uri id label subject issuer serial_hex \
		serial_dec type jip_ca not_before not_after days_left has_key \
		superseded_by state module key_type sha256; do
		[ "$(jq -c "has(\"$f\")" <<<"$output" | sort -u)" = true ] ||
			{ echo "missing $f"; false; }
	done
}

@test "serials, dates and ids match openssl and pkcs11-tool" {
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --json
	[ "$status" -eq 0 ]
	for id in "$QUAL_ID" "$COMM_ID" "$EXPIRED_ID" "$FRESH_ID"; do
		rec=$(jq -c "select(.id == \"$id\")" <<<"$output")
		pem=$BATS_TEST_TMPDIR/certs/$id.pem
		[ "$(jfield serial_hex <<<"$rec")" = "$(cert_serial_hex "$pem")" ]
		[ "$(jfield not_after <<<"$rec")" = "$(cert_not_after_iso "$pem")" ]
		[ "$(jfield not_before <<<"$rec")" = "$(cert_not_before_iso "$pem")" ]
		dec=$(openssl x509 -in "$pem" -noout -serial | sed 's/serial=//' |
			tr a-f A-F | sed 's/^/ibase=16; /' | BC_LINE_LENGTH=0 bc)
		[ "$(jfield serial_dec <<<"$rec")" = "$dec" ]
		want=$(openssl x509 -in "$pem" -noout -fingerprint -sha256 |
			sed 's/.*=//; s/://g' | tr A-F a-f)
		[ "$(jfield sha256 <<<"$rec")" = "$want" ]
	done
	# pkcs11-tool lists the same ids and serials on the token
	p11=$(p11_list_certs)
	for id in $(jfield id <<<"$output"); do
		grep -q "ID: *$id" <<<"$p11"
	done
	for s in $(jfield serial_hex <<<"$output"); do
		grep -qi "serial: *$s" <<<"$p11"
	done
}

@test "p11tool sees the same certificates" {
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --json
	list=$(p11tool --provider "$PKCS11_MODULE" --list-all-certs "$TOKEN_URI" 2>/dev/null)
	[ "$(grep -c 'Type: X.509 Certificate' <<<"$list")" -eq 4 ]
	for id in $(jfield id <<<"$output"); do
		grep -qi "ID: $(sed 's/../&:/g; s/:$//' <<<"$id")" <<<"$list"
	done
}

@test "type, holder and JIP CA come from the certificate" {
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --json
	[ "$(jq -r "select(.id == \"$QUAL_ID\") | .type" <<<"$output")" = qualified ]
	[ "$(jq -r "select(.id == \"$COMM_ID\") | .type" <<<"$output")" = commercial ]
	[ "$(jq -r "select(.id == \"$QUAL_ID\") | .cn" <<<"$output")" = "Jan Novák" ]
	[ "$(jq -r "select(.id == \"$FRESH_ID\") | .cn" <<<"$output")" = "Petra Dvořáková" ]
	[ "$(jq -r "select(.id == \"$FRESH_ID\") | .email" <<<"$output")" = petra.dvorakova@example.cz ]
	[ "$(jq -r "select(.id == \"$QUAL_ID\") | .jip_ca" <<<"$output")" = PostSignum ]
	[ "$(jq -r "select(.id == \"$QUAL_ID\") | .days_left" <<<"$output")" -eq 10 ]
	[ "$(jq -r "select(.id == \"$EXPIRED_ID\") | .state" <<<"$output")" = expired ]
	[ "$(jq -r "select(.id == \"$EXPIRED_ID\") | .days_left" <<<"$output")" -lt 0 ]
	[[ "$(jq -r "select(.id == \"$QUAL_ID\") | .subject" <<<"$output")" == *"CN=Jan Novák"* ]]
}

@test "the JIP CA mapping comes from the configuration" {
	printf '[jip-ca]\nDEMO PostSignum Qualified* = Kvalifikovaná autorita\n' > "$BATS_TEST_TMPDIR/c.conf"
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --json --config "$BATS_TEST_TMPDIR/c.conf"
	[ "$(jq -r "select(.id == \"$QUAL_ID\") | .jip_ca" <<<"$output")" = "Kvalifikovaná autorita" ]
	[ "$(jq -r "select(.id == \"$COMM_ID\") | .jip_ca" <<<"$output")" = PostSignum ]
}

@test "without a PIN keys are unknown and stderr says a login shows more" {
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --json --verbose
	[ "$status" -eq 0 ]
	[ "$(jfield has_key <<<"$output" | sort -u)" = null ]
	[[ "$stderr" == *"log in with --pin"* ]]
}

@test "with a PIN every certificate is paired with its key" {
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --json
	[ "$status" -eq 0 ]
	[ "$(jfield has_key <<<"$output" | sort -u)" = true ]
	token_cert_only commercial -1d +300d lonely >/dev/null
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --json
	[ "$(jq -r 'select(.label == "lonely") | .has_key' <<<"$output")" = false ]
}

@test "every PIN source works and none is echoed" {
	run --separate-stderr env PINVAR=1234 ps-status --module "$PKCS11_MODULE" --pin env:PINVAR --json
	[ "$status" -eq 0 ]
	[ "$(jfield has_key <<<"$output" | sort -u)" = true ]
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --pin fd:3 --json 3<"$PIN_FILE"
	[ "$status" -eq 0 ]
	[ "$(jfield has_key <<<"$output" | sort -u)" = true ]
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --pin pass:1234
	[ "$status" -eq 2 ]
	[[ "$output$stderr" != *1234* ]]
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --pin 1234
	[ "$status" -eq 2 ]
	[[ "$output$stderr" != *1234* ]]
}

@test "--expiring 30 exits 3 and shows only what must be renewed" {
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --expiring 30 --json
	[ "$status" -eq 3 ]
	[ "$(jfield id <<<"$output" | sort)" = "$(printf '%s\n' "$QUAL_ID" "$COMM_ID" | sort)" ]
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --expiring 5 --json
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "--expiring exits 0 on a token with only fresh certificates" {
	softhsm_token fresh-only
	token_cert qualified -1d +300d >/dev/null
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --expiring 30 --json
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --json
	[ "$(grep -c . <<<"$output")" -eq 1 ]
}

@test "a newer certificate of the same holder and type supersedes the old one" {
	new=$(token_cert qualified -1d +365d qualified-new)
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --json
	newserial=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$new.pem")
	[ "$(jq -r "select(.id == \"$QUAL_ID\") | .superseded_by" <<<"$output")" = "$newserial" ]
	[ "$(jq -r "select(.id == \"$QUAL_ID\") | .state" <<<"$output")" = superseded ]
	[ "$(jq -r "select(.id == \"$new\") | .superseded_by" <<<"$output")" = null ]
	# Petra's qualified certificate and Jan's commercial one are not affected
	[ "$(jq -r "select(.id == \"$COMM_ID\") | .superseded_by" <<<"$output")" = null ]
	[ "$(jq -r "select(.id == \"$FRESH_ID\") | .superseded_by" <<<"$output")" = null ]
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --expiring 30 --json
	[ "$status" -eq 3 ]
	[ "$(jfield id <<<"$output")" = "$COMM_ID" ]
}

@test "a table for people, aligned with Czech names" {
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --human
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == TOKEN*TYPE*SERIAL*"NOT AFTER"*DAYS*KEY*STATE*HOLDER ]]
	[ "${#lines[@]}" -eq 5 ]
	# the HOLDER column starts at the same character in every row
	col=$(awk 'NR==1 { print index($0, "HOLDER") }' <<<"$output")
	for i in 1 2 3 4; do
		row=${lines[$i]}
		[[ "${row:col-1}" == "Jan Novák" || "${row:col-1}" == "Petra Dvořáková" ]]
	done
}

@test "a wrong PIN is exit 6 with a clear message and an error record" {
	(umask 077 && printf 0000 > "$BATS_TEST_TMPDIR/bad")
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --pin "file:$BATS_TEST_TMPDIR/bad" --json
	[ "$status" -eq 6 ]
	[[ "$stderr" == *"wrong PIN for token '$TOKEN_LABEL'"* ]]
	[ "$(jfield code <<<"$output")" = pin-incorrect ]
	[ "$(jfield kind <<<"$output")" = error ]
}

@test "a locked PIN is exit 6 and is not tried" {
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" P11FAULT_TOKEN_FLAGS=CKF_USER_PIN_LOCKED \
		P11FAULT_COUNT_FILE="$BATS_TEST_TMPDIR/calls" \
		ps-status --module "$P11FAULT" --pin "file:$PIN_FILE" --json
	[ "$status" -eq 6 ]
	[ "$(jfield code <<<"$output")" = pin-locked ]
	! grep -q '^C_Login' "$BATS_TEST_TMPDIR/calls"
}

@test "few tries left is said when the token says so" {
	(umask 077 && printf 0000 > "$BATS_TEST_TMPDIR/bad")
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" P11FAULT_TOKEN_FLAGS=CKF_USER_PIN_FINAL_TRY \
		ps-status --module "$P11FAULT" --pin "file:$BATS_TEST_TMPDIR/bad"
	[ "$status" -eq 6 ]
	[[ "$stderr" == *"one try left"* ]]
}

@test "no module is exit 2 with a hint naming how to give one" {
	run --separate-stderr env PKCS11_MODULE=/nonexistent/module.so ps-status
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"cannot load the PKCS#11 module /nonexistent/module.so"* ]]
	[[ "$stderr" == *"--module PATH"* ]]
	[ "$(jfield code <<<"$output")" = no-module ]
	run --separate-stderr ps-status --module /etc/passwd
	[ "$status" -eq 2 ]
}

@test "garbage in --token is exit 2, never a crash" {
	for uri in garbage 'pkcs11:' 'pkcs11:foo=bar' 'pkcs11:id=%zz' 'pkcs11:id=%4' \
		'pkcs11:token=a;token=b' 'pkcs11:type=banana' 'pkcs11:slot-id=x' \
		'pkcs11:token=x?pin-value=1234' "pkcs11:token=$(head -c 5000 /dev/zero | tr '\0' a)"; do
		run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$uri"
		if [ "$uri" = 'pkcs11:' ]; then
			[ "$status" -eq 0 ] # selects every token
		else
			[ "$status" -eq 2 ] || { echo "uri $uri gave $status"; false; }
			[[ "$output$stderr" != *1234* ]]
		fi
	done
}

@test "--token picks one of several tokens; an absent one is exit 6" {
	softhsm_token second
	token_cert commercial -1d +100d >/dev/null
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --json
	[ "$(grep -c . <<<"$output")" -eq 5 ]
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token 'pkcs11:token=second' --json
	[ "$status" -eq 0 ]
	[ "$(grep -c . <<<"$output")" -eq 1 ]
	[ "$(jfield token_label <<<"$output")" = second ]
	# the token URI in a record selects that token
	uri=$(jfield token <<<"$output")
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$uri" --json
	[ "$(grep -c . <<<"$output")" -eq 1 ]
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token 'pkcs11:token=nosuch'
	[ "$status" -eq 6 ]
	[[ "$stderr" == *"no token matches"* ]]
}

@test "a token pulled out is exit 6" {
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" P11FAULT_REMOVED=1 ps-status --module "$P11FAULT" --json
	[ "$status" -eq 6 ]
	[ "$(jfield code <<<"$output")" = token-absent ]
}

@test "the module comes from PKCS11_MODULE or p11-kit's proxy" {
	run --separate-stderr env PKCS11_MODULE="$SOFTHSM_MODULE" ps-status --json
	[ "$status" -eq 0 ]
	[ "$(grep -c . <<<"$output")" -eq 4 ]
	# SoftHSM is registered with p11-kit; its proxy finds this token
	run --separate-stderr env -u PKCS11_MODULE ps-status --token "$TOKEN_URI" --json -v
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"p11-kit-proxy"* ]]
	[ "$(grep -c . <<<"$output")" -eq 4 ]
}

@test "--help, --version and bad options" {
	run --separate-stderr ps-status --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"--expiring DAYS"* && "$output" == *"--pin SOURCE"* ]]
	run --separate-stderr ps-status --version
	[ "$status" -eq 0 ]
	[[ "$output" == "ps-status (psrenew) "[0-9]* ]]
	run --separate-stderr ps-status --bogus
	[ "$status" -eq 2 ]
	run --separate-stderr ps-status --expiring soon
	[ "$status" -eq 2 ]
	run --separate-stderr ps-status extra-argument
	[ "$status" -eq 2 ]
}

@test "550 certificates: one record each, the same count as pkcs11-tool" {
	token_fill_certs 550
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --json
	[ "$status" -eq 0 ]
	[ "$(grep -c . <<<"$output")" -eq 554 ]
	[ "$(p11_count_certs)" -eq 554 ]
	[ "$(jfield id <<<"$output" | sort -u | wc -l)" -eq 554 ]
}

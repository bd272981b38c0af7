#!/usr/bin/env bats
# ps-renew: following-certificate requests (the guide's §2).

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
	demo_token
	CA_DIR=$BATS_TEST_TMPDIR/ca
	LOCAL_CA="helper:$LOCAL_SUBMIT -d $CA_DIR"
	SCRIPT=$BATS_TEST_TMPDIR/script
	mkdir -p "$CA_DIR" "$SCRIPT"
}

# scripted ANSWER...: the scripted CA helper answers these, in order.
scripted() {
	printf '%s\n' "$@" > "$SCRIPT/answers"
	echo "helper:$SCRIPTED_HELPER $SCRIPT"
}

renew() {
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" "$@"
}

subject_der() { # the subject with every value's DER, for byte equality
	openssl "$1" -in "$2" -noout -subject -nameopt RFC2253,dump_all,dump_der
}

@test "renews a certificate with certmonger's local-submit as the CA" {
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LOCAL_CA"
	[ "$status" -eq 0 ]
	records_valid
	[ "$(jfield kind <<<"$output")" = request ]
	[ "$(jfield state <<<"$output")" = issued ]
	[ "$(jfield old_id <<<"$output")" = "$QUAL_ID" ]
	[ "$(jfield type <<<"$output")" = qualified ]
	jq -r .cert <<<"$output" > "$BATS_TEST_TMPDIR/new.pem"
	jq -r .csr <<<"$output" > "$BATS_TEST_TMPDIR/req.pem"
	key_id=$(jfield key_id <<<"$output")
	# the issued certificate's key is the new key on the token
	[ "$(cert_key_id "$BATS_TEST_TMPDIR/new.pem")" = "$key_id" ]
	pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" \
		--read-object --type pubkey --id "$key_id" -o "$BATS_TEST_TMPDIR/pub.der"
	[ "$(openssl pkey -pubin -inform DER -in "$BATS_TEST_TMPDIR/pub.der" -outform PEM)" = \
	  "$(openssl x509 -in "$BATS_TEST_TMPDIR/new.pem" -noout -pubkey)" ]
	# the subject is the old one, byte for byte (UTF8String values kept)
	old=$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem
	[ "$(subject_der x509 "$BATS_TEST_TMPDIR/new.pem")" = "$(subject_der x509 "$old")" ]
	[ "$(subject_der req "$BATS_TEST_TMPDIR/req.pem")" = "$(subject_der x509 "$old")" ]
	# the request verifies and carries the old subjectAltName
	openssl req -in "$BATS_TEST_TMPDIR/req.pem" -noout -verify
	[ "$(openssl req -in "$BATS_TEST_TMPDIR/req.pem" -noout -text | grep -A1 'Subject Alternative' | tail -1 | tr -d ' ')" = \
	  "$(openssl x509 -in "$old" -noout -ext subjectAltName | tail -1 | tr -d ' ')" ]
	openssl req -in "$BATS_TEST_TMPDIR/req.pem" -noout -text | grep -q 'sha256WithRSAEncryption'
}

@test "the new private key is sensitive, never extractable, and paired by CKA_ID" {
	renew --token "$TOKEN_URI" --id "$COMM_ID" --ca "$LOCAL_CA"
	[ "$status" -eq 0 ]
	key_id=$(jfield key_id <<<"$output")
	objs=$(pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" \
		--login --pin "$PIN" -O 2>/dev/null |
		awk -v id="$key_id" '/Object;/ { if (o != "" && o ~ "ID: *" id) printf "%s", o; o = "" }
			{ o = o $0 "\n" } END { if (o ~ "ID: *" id) printf "%s", o }')
	priv=$(awk '/^Private Key Object/ { p = 1 } p && /Access:/ { print; exit }' <<<"$objs")
	[[ "$priv" == *"sensitive"* && "$priv" == *"never extractable"* ]]
	[[ "$priv" != *"extractable,"* || "$priv" == *"never extractable"* ]]
	[ "$(grep -c '^Private Key Object' <<<"$objs")" -eq 1 ]
	[ "$(grep -c '^Public Key Object' <<<"$objs")" -eq 1 ]
	grep -q "label: *commercial Jan Novák $(date -u +%Y-%m-%d)" <<<"$objs"
}

@test "the request is kept in the state store, 0600 in a 0700 directory" {
	# a PIN unlike anything a certificate holds
	pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --pin "$PIN" \
		--change-pin --new-pin 'Zq8-PIN-never-stored' >/dev/null 2>&1
	PIN='Zq8-PIN-never-stored'
	printf %s "$PIN" > "$PIN_FILE"
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LOCAL_CA"
	id=$(jfield request_id <<<"$output")
	f=$PSRENEW_STATE_DIR/requests/$id.json
	[ -f "$f" ]
	[ "$(stat -c %a "$f")" = 600 ]
	[ "$(stat -c %a "$PSRENEW_STATE_DIR")" = 700 ]
	[ "$(jq -r .state "$f")" = issued ]
	[ "$(jq -r .old_serial_hex "$f")" = "$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")" ]
	! grep -q "$PIN" "$f"
}

@test "the pipeline from ps-status renews every expiring certificate, qualified first" {
	run bash -c "ps-status --module '$PKCS11_MODULE' --expiring 30 --json 2>/dev/null |
		ps-renew --pin 'file:$PIN_FILE' --ca '$LOCAL_CA' 2>/dev/null"
	[ "$status" -eq 0 ]
	[ "$(grep -c . <<<"$output")" -eq 2 ]
	[ "$(jfield type <<<"$output" | head -1)" = qualified ]
	[ "$(jfield type <<<"$output" | tail -1)" = commercial ]
	[ "$(jfield state <<<"$output" | sort -u)" = issued ]
	[ "$(token_objects privkey)" -eq 6 ]
}

@test "fields the suite does not define pass through; its own do not" {
	rec=$(ps-status --module "$PKCS11_MODULE" --json 2>/dev/null |
		jq -c "select(.id == \"$QUAL_ID\") | .office = \"Praha 3\"")
	run --separate-stderr ps-renew --pin "file:$PIN_FILE" --ca "$LOCAL_CA" <<<"$rec"
	[ "$status" -eq 0 ]
	[ "$(jfield office <<<"$output")" = "Praha 3" ]
	# the old certificate's serial is old_serial_hex, never serial_hex
	[ "$(jq -r 'has("serial_hex")' <<<"$output")" = false ]
}

@test "helper answers: pending is exit 3 with the cookie kept" {
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$(scripted pending)"
	[ "$status" -eq 3 ]
	[ "$(jfield state <<<"$output")" = pending ]
	[ "$(jfield cookie <<<"$output")" = cookie-1 ]
	id=$(jfield request_id <<<"$output")
	[ "$(jq -r .cookie "$PSRENEW_STATE_DIR/requests/$id.json")" = cookie-1 ]
	[ "$(token_objects privkey)" -eq 5 ]
	grep -q '^SUBMIT cookie=$' "$SCRIPT/calls"
}

@test "helper answers: a delay sets the next poll time" {
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$(scripted 'delay 7200')"
	[ "$status" -eq 3 ]
	next=$(date -d "$(jfield next_poll_at <<<"$output")" +%s)
	now=$(date +%s)
	[ "$next" -ge $((now + 7100)) ] && [ "$next" -le $((now + 7300)) ]
}

@test "helper answers: rejected is exit 5 and the new key pair is removed" {
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$(scripted reject)"
	[ "$status" -eq 5 ]
	[ "$(jfield state <<<"$output")" = rejected ]
	[[ "$(jfield message <<<"$output")" == *"rejected by the test CA"* ]]
	[ "$(jfield key_removed <<<"$output")" = true ]
	[ "$(token_objects privkey)" -eq 4 ]
	[ "$(token_objects pubkey)" -eq 4 ]
}

@test "helper answers: unreachable is exit 4, key and request kept, a re-run resubmits" {
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$(scripted unreachable issue)"
	[ "$status" -eq 4 ]
	[ "$(jfield state <<<"$output")" = unsubmitted ]
	id=$(jfield request_id <<<"$output")
	[ -f "$PSRENEW_STATE_DIR/requests/$id.json" ]
	[ "$(token_objects privkey)" -eq 5 ]
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$(scripted issue)"
	[ "$status" -eq 0 ]
	[ "$(jfield request_id <<<"$output")" = "$id" ]
	[ "$(jfield state <<<"$output")" = issued ]
	[ "$(token_objects privkey)" -eq 5 ] # the same key, not a second one
}

@test "helper answers: a crashing or unconfigured helper leaves nothing behind" {
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$(scripted crash)"
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output")" = ca-failed ]
	[ "$(token_objects privkey)" -eq 4 ]
	[ "$(token_objects pubkey)" -eq 4 ]
	[ -z "$(ls "$PSRENEW_STATE_DIR/requests")" ]
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$(scripted unconfigured)"
	[ "$status" -eq 2 ]
	[ "$(token_objects privkey)" -eq 4 ]
	[ -z "$(ls "$PSRENEW_STATE_DIR/requests")" ]
}

@test "an expired certificate is refused with the guide's §6 advice, nothing generated" {
	renew --token "$TOKEN_URI" --id "$EXPIRED_ID" --ca "$LOCAL_CA"
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output")" = expired ]
	[[ "$stderr" == *"first-time certificate"* && "$stderr" == *"NIA"* ]]
	[ "$(token_objects privkey)" -eq 4 ]
}

@test "a second renewal while one is pending is refused unless --force" {
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$(scripted pending)"
	[ "$status" -eq 3 ]
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$(scripted pending)"
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output")" = already-pending ]
	[ "$(token_objects privkey)" -eq 5 ]
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$(scripted pending)" --force
	[ "$status" -eq 3 ]
	[ "$(token_objects privkey)" -eq 6 ]
}

@test "room for one key pair: the qualified one is renewed, the commercial one reported" {
	count=$(pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" \
		--login --pin "$PIN" -O 2>/dev/null | grep -c 'Object;')
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" P11FAULT_CAPACITY=$((count + 3)) \
		ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" --all-expiring 30 --ca "$LOCAL_CA"
	[ "$status" -eq 6 ]
	[ "$(grep -c . <<<"$output")" -eq 2 ]
	[ "$(head -1 <<<"$output" | jfield type)" = qualified ]
	[ "$(head -1 <<<"$output" | jfield state)" = issued ]
	[ "$(tail -1 <<<"$output" | jfield code)" = token-full ]
	[ "$(tail -1 <<<"$output" | jfield type)" = commercial ]
	[[ "$stderr" == *"ps-token-clean"* ]]
	[ "$(token_objects privkey)" -eq 5 ]
}

@test "a full token that does not report its memory: caught at key generation, nothing left" {
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" \
		P11FAULT_FAIL=C_GenerateKeyPair:*:CKR_DEVICE_MEMORY \
		ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" --all-expiring 30 --ca "$LOCAL_CA"
	[ "$status" -eq 6 ]
	[ "$(jfield code <<<"$output" | sort -u)" = token-full ]
	[ "$(grep -c . <<<"$output")" -eq 2 ]
	[ "$(token_objects privkey)" -eq 4 ]
	[ -z "$(ls "$PSRENEW_STATE_DIR/requests")" ]
}

@test "a module without the key mechanism is exit 6 naming it (the guide's error 622)" {
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" P11FAULT_HIDE_MECHS=CKM_RSA_PKCS_KEY_PAIR_GEN \
		ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LOCAL_CA"
	[ "$status" -eq 6 ]
	[ "$(jfield code <<<"$output")" = mechanism-missing ]
	[[ "$stderr" == *"CKM_RSA_PKCS_KEY_PAIR_GEN"* && "$stderr" == *"SoftHSM"* && "$stderr" == *"622"* ]]
	[ "$(token_objects privkey)" -eq 4 ]
}

@test "the token pulled out after the key was made leaves no key pair behind" {
	# fail the CSR signature: the key pair exists, the request does not
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" P11FAULT_FAIL=C_Sign:*:CKR_DEVICE_ERROR \
		ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LOCAL_CA"
	[ "$status" -eq 6 ]
	[ "$(token_objects privkey)" -eq 4 ]
	[ "$(token_objects pubkey)" -eq 4 ]
	[ -z "$(ls "$PSRENEW_STATE_DIR/requests")" ]
}

@test "an EC certificate is renewed with an EC key" {
	softhsm_token ec
	id=$(token_cert commercial -300d +20d ec-cert "" "" ec)
	PSRENEW_KEY_TYPE= renew --token "$TOKEN_URI" --id "$id" --ca "$LOCAL_CA"
	[ "$status" -eq 0 ]
	[ "$(jfield key_type <<<"$output")" = ec:prime256v1 ]
	jq -r .cert <<<"$output" | openssl x509 -noout -text | grep -q 'prime256v1'
}

@test "--key-type overrides the key algorithm" {
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LOCAL_CA" --key-type ec:secp384r1
	[ "$status" -eq 0 ]
	[ "$(jfield key_type <<<"$output")" = ec:secp384r1 ]
	renew --token "$TOKEN_URI" --id "$COMM_ID" --ca "$LOCAL_CA" --key-type dsa:1024
	[ "$status" -eq 2 ]
}

@test "--key uses an existing key pair and never removes it" {
	pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --pin "$PIN" \
		--keypairgen --key-type rsa:2048 --id a1b2c3 --label spare >/dev/null 2>&1
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$(scripted reject)" --key a1b2c3
	[ "$status" -eq 5 ]
	[ "$(token_objects privkey)" -eq 5 ]
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$LOCAL_CA" --key a1b2c3 --force
	[ "$status" -eq 0 ]
	[ "$(jfield key_id <<<"$output")" = a1b2c3 ]
	[ "$(token_objects privkey)" -eq 5 ]
}

@test "--dry-run touches neither the token nor the CA" {
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --all-expiring 30 --dry-run --json
	[ "$status" -eq 0 ]
	[ "$(jfield state <<<"$output" | sort -u)" = planned ]
	[ "$(grep -c . <<<"$output")" -eq 2 ]
	[ "$(token_objects privkey)" -eq 4 ]
	[ ! -e "$PSRENEW_STATE_DIR" ]
}

@test "one login for a batch of renewals" {
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" P11FAULT_COUNT_FILE="$BATS_TEST_TMPDIR/calls" \
		ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" --all-expiring 30 --ca "$LOCAL_CA"
	[ "$status" -eq 0 ]
	[ "$(awk '$1 == "C_Login" { print $2 }' "$BATS_TEST_TMPDIR/calls")" -eq 1 ]
}

@test "usage errors are exit 2 and say what to do" {
	renew --token "$TOKEN_URI" --id "$QUAL_ID"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--ca"* ]]
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "helper:/nonexistent/helper"
	[ "$status" -eq 2 ]
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "nosuchname"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"ca.nosuchname"* ]]
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca 'helper:$(touch /tmp/pwned)'
	[ "$status" -eq 2 ]
	[ ! -e /tmp/pwned ]
	renew --token "$TOKEN_URI" --type qualified --ca "$LOCAL_CA" --serial nothex
	[ "$status" -eq 2 ]
	renew --token "$TOKEN_URI" --serial 01 --ca "$LOCAL_CA"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"no certificate"* ]]
	run --separate-stderr ps-renew --ca "$LOCAL_CA" </dev/null
	[ "$status" -eq 0 ] # nothing on stdin: nothing to do
	run --separate-stderr ps-renew --ca "$LOCAL_CA" <<<'not json'
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"not a record"* ]]
}

@test "a named channel from the configuration" {
	printf '[ca.office]\nchannel = %s\n' "$LOCAL_CA" > "$BATS_TEST_TMPDIR/c.conf"
	renew --token "$TOKEN_URI" --type commercial --ca office --config "$BATS_TEST_TMPDIR/c.conf"
	[ "$status" -eq 0 ]
	[ "$(jfield ca <<<"$output")" = office ]
	[ "$(jfield channel <<<"$output")" = "$LOCAL_CA" ]
}

@test "a PostSignum-like CA keeps the type; the renewal verifies against the test PKI" {
	ln -s "$(pki_dir)" "$SCRIPT/pki"
	renew --token "$TOKEN_URI" --id "$QUAL_ID" --ca "$(scripted pki)"
	[ "$status" -eq 0 ]
	jq -r .cert <<<"$output" > "$BATS_TEST_TMPDIR/new.pem"
	[ -n "$(cert_qc_statements "$BATS_TEST_TMPDIR/new.pem")" ]
	openssl verify -CAfile "$(pki_dir)/root.crt" -untrusted "$(pki_dir)/chain.pem" \
		"$BATS_TEST_TMPDIR/new.pem"
	[ "$(subject_der x509 "$BATS_TEST_TMPDIR/new.pem")" = \
	  "$(subject_der x509 "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")" ]
	# and ps-fetch installs it after checking the chain
	run --separate-stderr ps-fetch --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--ca-bundle "$(pki_dir)/chain.pem" --pending
	[ "$status" -eq 0 ]
	[ "$(jfield type <<<"$output")" = qualified ]
	[ "$(jfield replaces_serial_hex <<<"$output")" = "$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")" ]
}

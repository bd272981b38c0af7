#!/usr/bin/env bats
# ps-token-clean: room on a full token, made safely (the guide's §7).

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
	demo_token
}

# tc [VAR=VALUE]... ARGS...: ps-token-clean ARGS in that environment, with
# no sanitizer report on stderr (for the -fsanitize build).
tc() {
	local vars=()
	while [[ $1 == *=* ]]; do vars+=("$1"); shift; done
	run --separate-stderr env "${vars[@]}" ps-token-clean "$@"
	no_sanitizer_report
}

clean() {
	tc --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" "$@"
}

# no_sanitizer_report: $stderr has no report of ASan/UBSan (a build with
# -fsanitize) in it.
no_sanitizer_report() {
	[[ "$stderr" != *"Sanitizer"* && "$stderr" != *"runtime error:"* ]]
}

# counts: certificates, private keys, public keys on the token, as
# pkcs11-tool sees them logged in (token_objects, in one run).
counts() {
	local out
	out=$(pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" \
		--login --pin "$PIN" -O 2>/dev/null)
	echo "$(grep -c '^Certificate Object' <<<"$out") $(grep -c '^Private Key Object' <<<"$out")" \
		"$(grep -c '^Public Key Object' <<<"$out")"
}

# on_token CLASS ID: pkcs11-tool sees an object of CLASS with this CKA_ID.
on_token() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" \
		--login --pin "$PIN" -O --type "$1" 2>/dev/null | grep -qx " *ID: *$2"
}

# all_objects: every object pkcs11-tool sees, logged in.
all_objects() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" \
		--login --pin "$PIN" -O 2>/dev/null | grep -c 'Object;'
}

# renewed: Jan Novák's renewed commercial certificate is installed (it
# supersedes COMM_ID); NEW_ID, NEW_SERIAL.
renewed() {
	NEW_ID=$(token_cert commercial -1d +365d commercial-new)
	NEW_SERIAL=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$NEW_ID.pem")
}

# pending_request CERT_ID: a renewal of CERT_ID waiting at the CA; KEY_ID.
pending_request() {
	mkdir -p "$BATS_TEST_TMPDIR/ca"
	echo pending > "$BATS_TEST_TMPDIR/ca/answers"
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--token "$TOKEN_URI" --id "$1" --ca "helper:$SCRIPTED_HELPER $BATS_TEST_TMPDIR/ca"
	[ "$status" -eq 3 ]
	KEY_ID=$(jfield key_id <<<"$output")
}

# sel FILTER: the records of $output that jq FILTER selects, compact.
sel() {
	jq -c "select($1)" <<<"$output"
}

@test "a dry run by default: says what it would remove and why, removes nothing" {
	before=$(counts)
	clean
	[ "$status" -eq 0 ]
	records_valid
	[ "$(sel '.kind == "removable"' | wc -l)" -eq 3 ]
	[ "$(sel '.kind == "removable"' | jq -r .id | sort -u)" = "$EXPIRED_ID" ]
	[ "$(sel '.kind == "removable"' | jq -r .class | sort | tr '\n' ' ')" = "cert private public " ]
	[ "$(sel '.kind == "removable"' | jq -r '.reason, .dry_run' | sort -u | tr '\n' ' ')" = "expired true " ]
	[ "$(sel '.class == "cert"' | jfield serial_hex)" = "$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$EXPIRED_ID.pem")" ]
	[ "$(sel '.class == "cert"' | jfield type)" = commercial ]
	[ "$(sel '.class == "cert"' | jfield cn)" = "Jan Novák" ]
	[ "$(sel '.class == "cert"' | jfield label)" = commercial-expired ]
	[ "$(sel '.class == "cert"' | jfield token)" = "$(ps-status --module "$PKCS11_MODULE" --json 2>/dev/null | jq -r .token | head -1)" ]
	[ "$(sel '.kind == "space"' | jfield objects)" -eq 3 ]
	[[ "$stderr" == *"--yes"* ]]
	[ "$(counts)" = "$before" ]
	[ ! -e "$PSRENEW_STATE_DIR" ]
	# valid certificates are not even mentioned
	[ -z "$(sel '.id == "'"$QUAL_ID"'" or .id == "'"$FRESH_ID"'"')" ]
}

@test "--yes removes the expired certificate with its key pair and keeps a copy first" {
	[ "$(counts)" = "4 4 4" ]
	clean --yes
	[ "$status" -eq 0 ]
	[ "$(counts)" = "3 3 3" ]
	[ "$(token_objects privkey)" -eq 3 ] && [ "$(token_objects pubkey)" -eq 3 ]
	! on_token cert "$EXPIRED_ID"
	! on_token privkey "$EXPIRED_ID"
	! on_token pubkey "$EXPIRED_ID"
	on_token cert "$COMM_ID" && on_token privkey "$COMM_ID"
	[ "$(sel '.kind == "removed"' | wc -l)" -eq 3 ]
	[ "$(sel '.kind == "removed"' | jq -r .dry_run | sort -u)" = false ]
	serial=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$EXPIRED_ID.pem")
	copy=$PSRENEW_STATE_DIR/removed/$serial.der
	[ "$(sel '.class == "cert"' | jfield backup)" = "$copy" ]
	cmp "$copy" <(openssl x509 -in "$BATS_TEST_TMPDIR/certs/$EXPIRED_ID.pem" -outform DER)
	[ "$(stat -c %a "$copy")" = 600 ]
	[ "$(stat -c %a "$PSRENEW_STATE_DIR/removed")" = 700 ]
	[ -z "$(find "$PSRENEW_STATE_DIR/removed" -name '*.tmp')" ]
	[[ "$stderr" == *"3 object(s) removed"* ]]
	# nothing left to do: a second run is a no-op
	clean --yes
	[ "$status" -eq 0 ]
	[ -z "$(sel '.kind == "removed"')" ]
	[ "$(counts)" = "3 3 3" ]
}

@test "refuses a valid certificate nothing supersedes, even with --yes" {
	clean --id "$QUAL_ID" --yes
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output" | head -1)" = refused-valid ]
	[ "$(sel '.kind == "error"' | jfield id)" = "$QUAL_ID" ]
	[ "$(sel '.kind == "error"' | jfield reason)" = valid ]
	[ "$(sel '.kind == "error"' | jfield class)" = cert ]
	[ "$(sel '.kind == "error"' | jfield hint)" != null ]
	[ "$(grep -c 'keeping' <<<"$stderr")" -eq 1 ]
	[ "$(counts)" = "4 4 4" ]
	on_token cert "$QUAL_ID"
}

@test "--force-valid removes a valid certificate only with --yes" {
	renewed
	before=$(counts)
	clean --id "$NEW_ID" --force-valid
	[ "$status" -eq 0 ]
	[ "$(sel '.kind == "removable"' | jfield reason | sort -u)" = valid ]
	[ "$(counts)" = "$before" ]
	clean --id "$NEW_ID" --force-valid --yes
	[ "$status" -eq 0 ]
	! on_token cert "$NEW_ID"
	! on_token privkey "$NEW_ID"
	on_token cert "$COMM_ID" # the other valid commercial one stays
}

@test "never the last valid certificate of its type, not even with --force-valid --yes" {
	before=$(counts)
	clean --id "$COMM_ID" --force-valid --yes
	[ "$status" -eq 5 ]
	[ "$(sel '.kind == "error"' | jfield code)" = refused-last-valid ]
	[ "$(counts)" = "$before" ]
	on_token cert "$COMM_ID"
	# Petra's only qualified certificate, by serial
	serial=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$FRESH_ID.pem")
	clean --serial "$serial" --force-valid --yes
	[ "$status" -eq 5 ]
	[ "$(sel '.kind == "error"' | jfield code)" = refused-last-valid ]
	[ "$(counts)" = "$before" ]
	# both commercial ones at once (JIP has the new one): the newer stays
	renewed
	clean --id "$COMM_ID" --id "$NEW_ID" --force-valid --yes --jip-confirmed "$NEW_SERIAL"
	[ "$status" -eq 5 ]
	[ "$(sel '.kind == "error"' | jfield id)" = "$NEW_ID" ]
	[ "$(sel '.kind == "removed" and .class == "cert"' | jfield id)" = "$COMM_ID" ]
	on_token cert "$NEW_ID"
}

@test "the old commercial certificate stays until JIP confirms its successor; the rest is done" {
	renewed
	clean --yes
	[ "$status" -eq 5 ]
	[ "$(sel '.kind == "error"' | jfield code)" = refused-jip-unconfirmed ]
	[ "$(sel '.kind == "error"' | jfield serial_hex)" = "$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem")" ]
	[ "$(sel '.kind == "error"' | jfield superseded_by)" = "$NEW_SERIAL" ]
	[[ "$stderr" == *"$NEW_SERIAL"* && "$stderr" == *"JIP"* ]]
	on_token cert "$COMM_ID" && on_token privkey "$COMM_ID" && on_token pubkey "$COMM_ID"
	! on_token cert "$EXPIRED_ID" # the expired one needs no confirmation
	[ "$(counts)" = "4 4 4" ]
}

@test "a jip record on stdin confirms the successor" {
	renewed
	jq -nc --arg s "$NEW_SERIAL" '{kind:"jip",serial_hex:$s,result:"set",type:"commercial",user:"jnovak"}' \
		> "$BATS_TEST_TMPDIR/jip.jsonl"
	tc --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --yes \
		< "$BATS_TEST_TMPDIR/jip.jsonl"
	[ "$status" -eq 0 ]
	! on_token cert "$COMM_ID" && ! on_token privkey "$COMM_ID" && ! on_token pubkey "$COMM_ID"
	on_token cert "$NEW_ID"
	[ "$(sel '.id == "'"$COMM_ID"'"' | jfield reason | sort -u)" = superseded ]
	[ "$(sel '.id == "'"$COMM_ID"'" and .class == "cert"' | jfield jip_confirmation)" = stdin ]
	[ "$(sel '.id == "'"$COMM_ID"'" and .class == "cert"' | jfield jip_serial_hex)" = "$NEW_SERIAL" ]
	[ "$(counts)" = "3 3 3" ]
}

@test "a jip record for another serial, or one JIP did not set, confirms nothing" {
	renewed
	old=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem")
	for rec in "{\"kind\":\"jip\",\"serial_hex\":\"$old\",\"result\":\"set\"}" \
		"{\"kind\":\"jip\",\"serial_hex\":\"$NEW_SERIAL\",\"result\":\"refused\"}" \
		"{\"kind\":\"jip\",\"serial_hex\":\"$NEW_SERIAL\",\"result\":\"set\",\"type\":\"qualified\"}"; do
		tc --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
			--superseded --yes <<<"$rec"
		[ "$status" -eq 5 ]
		[ "$(sel '.kind == "error"' | jfield code)" = refused-jip-unconfirmed ]
		on_token cert "$COMM_ID"
	done
	[ "$(counts)" = "5 5 5" ]
}

@test "a confirmation file in the state store confirms the successor" {
	renewed
	mkdir -p -m 700 "$PSRENEW_STATE_DIR/jip"
	printf '{"kind":"jip","serial_hex":"%s","type":"commercial","user":"jnovak","result":"set","confirmed_at":"2026-11-24T10:00:00Z"}\n' \
		"$NEW_SERIAL" > "$PSRENEW_STATE_DIR/jip/$NEW_SERIAL.json"
	clean --superseded --yes
	[ "$status" -eq 0 ]
	! on_token cert "$COMM_ID"
	[ "$(sel '.class == "cert"' | jfield jip_confirmation)" = state ]
	on_token cert "$EXPIRED_ID" # --superseded alone: the expired one stays
}

@test "a damaged or foreign confirmation file confirms nothing" {
	renewed
	mkdir -p -m 700 "$PSRENEW_STATE_DIR/jip"
	f=$PSRENEW_STATE_DIR/jip/$NEW_SERIAL.json
	echo '{"kind":"jip","serial_hex":"0102"}' > "$f"
	clean --superseded --yes
	[ "$status" -eq 5 ]
	[[ "$stderr" == *"not a JIP confirmation"* ]]
	printf '{"kind":"jip","serial_hex":"%s","type":"commercial","user":"x","confirmed_at":"2026-11-24T10:00:00Z"}\n' \
		"$NEW_SERIAL" > "$BATS_TEST_TMPDIR/elsewhere.json"
	ln -sf "$BATS_TEST_TMPDIR/elsewhere.json" "$f"
	clean --superseded --yes
	[ "$status" -eq 5 ]
	[[ "$stderr" == *"symlink"* ]]
	on_token cert "$COMM_ID"
}

@test "--jip-confirmed confirms the successor" {
	renewed
	clean --superseded --yes --jip-confirmed "$(sed 's/../&:/g; s/:$//' <<<"$NEW_SERIAL")"
	[ "$status" -eq 0 ]
	! on_token cert "$COMM_ID"
	[ "$(sel '.class == "cert"' | jfield jip_confirmation)" = option ]
}

@test "a superseded qualified certificate needs no JIP confirmation" {
	token_cert qualified -1d +365d qualified-new >/dev/null
	clean --yes
	[ "$status" -eq 0 ]
	! on_token cert "$QUAL_ID" && ! on_token privkey "$QUAL_ID"
	! on_token cert "$EXPIRED_ID"
	[ "$(sel '.id == "'"$QUAL_ID"'" and .class == "cert"' | jfield reason)" = superseded ]
}

@test "--orphans removes a key pair without certificate; the default leaves it" {
	pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --pin "$PIN" \
		--keypairgen --key-type rsa:2048 --id a1b2c3 --label leftover >/dev/null 2>&1
	clean --yes
	[ "$status" -eq 0 ]
	on_token privkey a1b2c3 && on_token pubkey a1b2c3
	clean --orphans
	[ "$status" -eq 0 ]
	[ "$(sel '.kind == "removable"' | jfield reason | sort -u)" = orphan-key ]
	[ "$(sel '.kind == "removable"' | jfield serial_hex | sort -u)" = null ]
	clean --orphans --yes
	[ "$status" -eq 0 ]
	! on_token privkey a1b2c3 && ! on_token pubkey a1b2c3
	[ "$(sel '.kind == "removed"' | jq -r .class | sort | tr '\n' ' ')" = "private public " ]
	[ "$(sel '.kind == "removed"' | jfield label | sort -u)" = leftover ]
	[ "$(counts)" = "3 3 3" ]
}

@test "a key pair a pending request waits on is never removed" {
	pending_request "$QUAL_ID"
	before=$(counts)
	[ "$before" = "4 5 5" ]
	# waiting on the CA: no orphan, left alone without an error
	clean --orphans --yes
	[ "$status" -eq 0 ]
	[ -z "$(sel '.kind == "error"')" ]
	[ "$(counts)" = "$before" ]
	clean --id "$KEY_ID" --yes --force-valid
	[ "$status" -eq 5 ]
	[ "$(sel '.kind == "error"' | jfield code)" = refused-pending-key ]
	[ "$(sel '.kind == "error"' | jfield reason)" = pending-key ]
	[ "$(sel '.kind == "error"' | jfield id)" = "$KEY_ID" ]
	[ "$(sel '.kind == "error"' | jfield request_id)" != null ]
	[ "$(counts)" = "$before" ]
	on_token privkey "$KEY_ID" && on_token pubkey "$KEY_ID"
}

@test "the key of a certificate that a request reuses stays; --keep-keys removes the certificate alone" {
	# ps-renew --key: the expired certificate's key pair is the new request's key
	mkdir -p "$BATS_TEST_TMPDIR/ca"
	echo pending > "$BATS_TEST_TMPDIR/ca/answers"
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --token "$TOKEN_URI" \
		--id "$COMM_ID" --key "$EXPIRED_ID" --ca "helper:$SCRIPTED_HELPER $BATS_TEST_TMPDIR/ca"
	[ "$status" -eq 3 ]
	clean --expired --yes
	[ "$status" -eq 5 ]
	[ "$(sel '.kind == "error"' | jfield code)" = refused-pending-key ]
	[ "$(counts)" = "4 4 4" ]
	clean --expired --yes --keep-keys
	[ "$status" -eq 0 ]
	[ "$(counts)" = "3 4 4" ]
	on_token privkey "$EXPIRED_ID"
}

@test "--keep-keys keeps the key pairs" {
	clean --expired --yes --keep-keys
	[ "$status" -eq 0 ]
	[ "$(counts)" = "3 4 4" ]
	[ "$(sel '.kind == "removed"' | jfield class)" = cert ]
	on_token privkey "$EXPIRED_ID" && on_token pubkey "$EXPIRED_ID"
}

@test "a key pair another certificate still uses stays with it" {
	# a second, expired certificate under the qualified certificate's CKA_ID
	token_cert_only qualified -400d -30d old-qualified "$QUAL_ID" >/dev/null
	clean --yes
	[ "$status" -eq 0 ]
	[ "$(counts)" = "3 3 3" ] # the expired commercial one went with its keys
	on_token cert "$QUAL_ID" && on_token privkey "$QUAL_ID" && on_token pubkey "$QUAL_ID"
	[ "$(sel '.kind == "removed" and .id == "'"$QUAL_ID"'"' | jfield class)" = cert ]
}

@test "--for-room 1 on a full token removes just enough, then ps-renew and ps-fetch succeed" {
	count=$(all_objects)
	export P11FAULT_MODULE=$PKCS11_MODULE P11FAULT_CAPACITY=$count
	# an older expired certificate too: only the oldest one goes
	OLDEST_ID=$(token_cert commercial -800d -400d commercial-oldest)
	P11FAULT_CAPACITY=$((count + 3))
	tc --module "$P11FAULT" --pin "file:$PIN_FILE" --for-room 1
	[ "$status" -eq 0 ]
	[ "$(sel '.kind == "removable"' | jfield id | sort -u)" = "$OLDEST_ID" ]
	[ "$(sel '.kind == "space"' | jfield free_before)" -eq 0 ]
	[ "$(sel '.kind == "space"' | jfield room_after)" -eq 1 ]
	[ "$(counts)" = "5 5 5" ]
	tc --module "$P11FAULT" --pin "file:$PIN_FILE" --for-room 1 --yes
	[ "$status" -eq 0 ]
	[ "$(sel '.kind == "removed"' | jfield id | sort -u)" = "$OLDEST_ID" ]
	[ "$(sel '.kind == "space"' | jfield free_before)" -eq 0 ]
	[ "$(sel '.kind == "space"' | jfield free_after)" -eq 6144 ]
	[ "$(sel '.kind == "space"' | jfield room_after)" -eq 1 ]
	[[ "$stderr" == *"free memory 0 -> 6144 bytes"* ]]
	[ "$(counts)" = "4 4 4" ]
	on_token cert "$EXPIRED_ID"
	mkdir -p "$BATS_TEST_TMPDIR/lsca"
	run --separate-stderr ps-renew --module "$P11FAULT" --pin "file:$PIN_FILE" --token "$TOKEN_URI" \
		--id "$QUAL_ID" --ca "helper:$LOCAL_SUBMIT -d $BATS_TEST_TMPDIR/lsca"
	[ "$status" -eq 0 ]
	[ "$(jfield state <<<"$output")" = issued ]
	# and the certificate fits on the token that was full
	run --separate-stderr ps-fetch --module "$P11FAULT" --pin "file:$PIN_FILE" --pending --accept-type
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
	[ "$(jfield replaces_serial_hex <<<"$output")" = "$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")" ]
	# there is room already: nothing more goes
	P11FAULT_CAPACITY=$((count + 6))
	tc --module "$P11FAULT" --pin "file:$PIN_FILE" --for-room 1 --yes
	[ "$status" -eq 0 ]
	[ -z "$(sel '.kind == "removed"')" ]
}

@test "--for-room: when even everything removable is not enough, exit 6 and nothing removed" {
	count=$(all_objects)
	tc P11FAULT_MODULE="$PKCS11_MODULE" P11FAULT_CAPACITY="$count" \
		--module "$P11FAULT" --pin "file:$PIN_FILE" --for-room 2 --yes
	[ "$status" -eq 6 ]
	[ "$(sel '.kind == "error"' | jfield code)" = token-full ]
	[ -z "$(sel '.kind == "removed"')" ]
	[[ "$stderr" == *"nothing was removed"* ]]
	[ "$(counts)" = "4 4 4" ]
}

@test "--for-room leaves what the safety rules keep out, quietly" {
	renewed # COMM_ID superseded, not confirmed in JIP
	count=$(all_objects)
	tc P11FAULT_MODULE="$PKCS11_MODULE" P11FAULT_CAPACITY="$count" \
		--module "$P11FAULT" --pin "file:$PIN_FILE" --for-room 1 --yes
	[ "$status" -eq 0 ]
	[ "$(sel '.kind == "removed"' | jfield id | sort -u)" = "$EXPIRED_ID" ]
	[ -z "$(sel '.kind == "error"')" ]
	tc P11FAULT_MODULE="$PKCS11_MODULE" P11FAULT_CAPACITY="$count" \
		--module "$P11FAULT" --pin "file:$PIN_FILE" --for-room 2 --yes
	[ "$status" -eq 6 ]
	[[ "$stderr" == *"safety rules"* ]]
	on_token cert "$COMM_ID"
}

@test "a removal the token fails is exit 6; the certificate and its copy stay consistent" {
	tc P11FAULT_MODULE="$PKCS11_MODULE" P11FAULT_FAIL=C_DestroyObject:1:CKR_DEVICE_REMOVED \
		--module "$P11FAULT" --pin "file:$PIN_FILE" --yes
	[ "$status" -eq 6 ]
	[ "$(sel '.kind == "error"' | jfield code)" = token-absent ]
	[ -z "$(sel '.kind == "removed"')" ]
	[ "$(counts)" = "4 4 4" ]
	# the run again finishes the job; the copy is the same file
	clean --yes
	[ "$status" -eq 0 ]
	[ "$(counts)" = "3 3 3" ]
	[ "$(ls "$PSRENEW_STATE_DIR/removed" | wc -l)" -eq 1 ]
}

@test "a copy that cannot be written: the certificate is not removed" {
	mkdir -p -m 700 "$PSRENEW_STATE_DIR/removed"
	serial=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$EXPIRED_ID.pem")
	echo "another certificate" > "$PSRENEW_STATE_DIR/removed/$serial.der"
	mkdir "$PSRENEW_STATE_DIR/removed/$serial.$(openssl x509 -in "$BATS_TEST_TMPDIR/certs/$EXPIRED_ID.pem" \
		-outform DER | sha256sum | cut -c1-16).der"
	clean --yes
	[ "$status" -eq 1 ]
	[ "$(sel '.kind == "error"' | jfield code)" = state-write ]
	[ "$(counts)" = "4 4 4" ]
}

@test "an unsafe state directory: nothing is removed" {
	mkdir -p "$PSRENEW_STATE_DIR"
	chmod 777 "$PSRENEW_STATE_DIR"
	clean --yes
	[ "$status" -eq 2 ]
	[ "$(counts)" = "4 4 4" ]
}

@test "selectors that match nothing are usage errors and nothing is removed" {
	clean --yes --id 0badc0de
	[ "$status" -eq 2 ]
	[ "$(jfield code <<<"$output")" = no-such-object ]
	[ "$(counts)" = "4 4 4" ]
	clean --yes --expired --serial 01:02:03
	[ "$status" -eq 2 ]
	[ "$(counts)" = "4 4 4" ]
	clean --yes --id xyz
	[ "$status" -eq 2 ]
	clean --yes --for-room many
	[ "$status" -eq 2 ]
	clean --yes --dry-run
	[ "$status" -eq 2 ]
	tc --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --yes <<<'not json'
	[ "$status" -eq 1 ]
	[ "$(counts)" = "4 4 4" ]
}

@test "without a PIN and without a terminal nothing is removed" {
	tc --module "$PKCS11_MODULE" --yes
	[ "$status" -ne 0 ]
	[ "$(counts)" = "4 4 4" ]
}

@test "error records on stdin are passed on and count" {
	tc --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		<<<'{"kind":"error","code":"ca-unreachable","status":4,"message":"x"}'
	[ "$status" -eq 4 ]
	[ "$(sel '.kind == "error"' | jfield code)" = ca-unreachable ]
}

@test "on a terminal it asks, and removes only after yes" {
	cmd="ps-token-clean --module $PKCS11_MODULE --pin file:$PIN_FILE"
	run bash -c "printf 'n\n' | script -qec '$cmd' /dev/null"
	[ "$status" -eq 0 ]
	stderr=$output no_sanitizer_report
	[[ "$output" == *"Remove 3 objects from token $TOKEN_LABEL? [y/N]"* ]]
	[ "$(counts)" = "4 4 4" ]
	run bash -c "printf 'y\n' | script -qec '$cmd' /dev/null"
	[ "$status" -eq 0 ]
	stderr=$output no_sanitizer_report
	[[ "$output" == *"commercial-expired"* ]] # its label, in the output
	[ "$(counts)" = "3 3 3" ]
}

@test "--dry-run never asks, even on a terminal" {
	run bash -c "printf 'y\n' | script -qec 'ps-token-clean --module $PKCS11_MODULE --pin file:$PIN_FILE --dry-run' /dev/null"
	[ "$status" -eq 0 ]
	[[ "$output" != *"[y/N]"* ]]
	stderr=$output no_sanitizer_report
	[ "$(counts)" = "4 4 4" ]
}

@test "a table for people shows one line per object" {
	clean --human
	[ "$status" -eq 0 ]
	[ "$(grep -c 'expired' <<<"$output")" -eq 3 ]
	[[ "$output" != *'"kind"'* ]]
}

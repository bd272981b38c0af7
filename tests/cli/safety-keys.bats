#!/usr/bin/env bats
# Keys that are still needed: what supersedes a certificate, what a
# rejection or a cleanup may remove, which certificate ps-fetch installs,
# and how it finds a key pair (by the public key, whatever its CKA_ID).
# SoftHSM demo token; the CA is certmonger's local-submit (issues at once,
# without QcCompliance) or tests/ca/scripted-helper.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

setup() {
	psrenew_setup
	: >"$BATS_TEST_TMPDIR/empty.conf"
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/empty.conf
	demo_token
	P11=(--module "$PKCS11_MODULE" --pin "file:$PIN_FILE")
	LS_CA="helper:$LOCAL_SUBMIT -d $BATS_TEST_TMPDIR/ca"
	SH_DIR=$BATS_TEST_TMPDIR/script
	SH_CA="helper:$SCRIPTED_HELPER $SH_DIR"
	W=$BATS_TEST_TMPDIR/work
	mkdir -p "$BATS_TEST_TMPDIR/ca" "$SH_DIR" "$W"
}

# ----------------------------------------------------------------- helpers

# p11 ARGS...: pkcs11-tool on the demo token, logged in.
p11() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" \
		--login --pin "$PIN" "$@"
}

# all_objects: every object the token holds (as a logged-in user sees it).
all_objects() {
	p11 -O 2>/dev/null | grep -c 'Object;' || true
}

# has_obj CLASS ID: the token has an object of CLASS (privkey, pubkey,
# cert) with CKA_ID = ID.
has_obj() {
	local head
	case $1 in
	cert) head='Certificate Object' ;;
	privkey) head='Private Key Object' ;;
	pubkey) head='Public Key Object' ;;
	esac
	p11 -O 2>/dev/null | awk -v head="$head" -v id="$2" '
		/^[^ \t]/ { inb = index($0, head) == 1; next }
		inb && $1 == "ID:" && $2 == id { found = 1 }
		END { exit !found }'
}

# no_obj CLASS ID: it has none (a plain command, so that a failure fails
# the test: bats does not stop at a failing "! cmd").
no_obj() {
	! has_obj "$1" "$2"
}

# renew CERT_ID CA [EXIT]: ps-renew for one certificate; sets REQ and KEY.
renew() {
	run --separate-stderr ps-renew "${P11[@]}" --token "$TOKEN_URI" \
		--id "$1" --ca "$2"
	[ "$status" -eq "${3:-0}" ] ||
		{ echo "ps-renew: exit $status: $output $stderr"; return 1; }
	REQ=$(jq -r 'select(.kind == "request") | .request_id' <<<"$output")
	KEY=$(jq -r 'select(.kind == "request") | .key_id' <<<"$output")
	[[ $REQ =~ ^[A-Za-z0-9._-]+$ && $KEY =~ ^[0-9a-f]{40}$ ]]
}

# req FIELD: a field of $REQ's state file.
req() {
	jq -r ".$1 // \"null\"" "$PSRENEW_STATE_DIR/requests/$REQ.json"
}

# edit_req JQ: changes $REQ's state file in place (same file, same mode).
edit_req() {
	local f=$PSRENEW_STATE_DIR/requests/$REQ.json
	jq -c "$1" "$f" >"$W/rec" && cat "$W/rec" >"$f"
}

# status_of ID [ARGS...]: "STATE SUPERSEDED_BY" of the certificate with
# CKA_ID = ID in ps-status's records.
status_of() {
	local id=$1
	shift
	ps-status --module "$PKCS11_MODULE" "$@" --json 2>/dev/null |
		jq -r "select(.id == \"$id\") | \"\(.state) \(.superseded_by)\""
}

# keyless_successor [ID]: a qualified certificate of Jan Novák (QUAL_ID's
# holder and type), newer and valid for a year, written alone with
# pkcs11-tool --write-object: its key is a software key, not on the token.
# CKA_ID: ID, else the SHA-1 of that key. Prints the CKA_ID.
keyless_successor() {
	token_cert_only qualified -1d +365d newer-without-key "${1:-}"
}

# ------------------------------------------------------------- item 7

@test "a newer certificate without its key on the token supersedes nothing; --superseded removes nothing" {
	new=$(keyless_successor)
	# with a login: the older certificate, which has its key, stays valid
	[ "$(status_of "$QUAL_ID" --pin "file:$PIN_FILE")" = "valid null" ]
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --json
	[ "$(jq -r "select(.id == \"$new\") | .has_key" <<<"$output")" = false ]
	# without a login too (no public key object says it is there)
	[ "$(status_of "$QUAL_ID")" = "valid null" ]
	# and nothing is due for removal
	before=$(all_objects)
	run --separate-stderr ps-token-clean "${P11[@]}" --superseded --yes
	[ "$status" -eq 0 ]
	[ -z "$(jq -r 'select(.kind == "removed") | .id' <<<"$output")" ]
	[ "$(all_objects)" -eq "$before" ]
	has_obj privkey "$QUAL_ID"
	has_obj cert "$QUAL_ID"
}

@test "a newer certificate that borrows another key's CKA_ID supersedes nothing either" {
	# its CKA_ID pairs it with the expired certificate's key pair, whose
	# public key is another one: checked by the public key, not the id
	keyless_successor "$EXPIRED_ID" >/dev/null
	[ "$(status_of "$QUAL_ID" --pin "file:$PIN_FILE")" = "valid null" ]
	[ "$(status_of "$QUAL_ID")" = "valid null" ]
	before=$(all_objects)
	run --separate-stderr ps-token-clean "${P11[@]}" --superseded --yes
	[ "$status" -eq 0 ]
	[ "$(all_objects)" -eq "$before" ]
	has_obj privkey "$QUAL_ID"
}

@test "the last valid certificate of its type counts only certificates with their key" {
	keyless_successor >/dev/null
	before=$(all_objects)
	run --separate-stderr ps-token-clean "${P11[@]}" --id "$QUAL_ID" --force-valid --yes
	[ "$status" -eq 5 ]
	[ "$(jq -r 'select(.kind == "error") | .code' <<<"$output")" = refused-last-valid ]
	[ "$(all_objects)" -eq "$before" ]
	has_obj privkey "$QUAL_ID"
}

@test "a successor whose key is on the token still supersedes (control)" {
	new=$(token_cert qualified -1d +365d newer-with-key)
	serial=$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$new.pem")
	[ "$(status_of "$QUAL_ID" --pin "file:$PIN_FILE")" = "superseded $serial" ]
	[ "$(status_of "$QUAL_ID")" = "superseded $serial" ]
}

# ------------------------------------------------------------- item 8

@test "a certificate of another type than the request's: exit 5 type-mismatch, kept with its key, --accept-type installs it" {
	renew "$QUAL_ID" "$LS_CA"
	[ "$(req state)" = issued ]
	certs=$(p11 -O --type cert 2>/dev/null | grep -c 'Object;')
	run --separate-stderr ps-fetch "${P11[@]}" --pending
	[ "$status" -eq 5 ]
	[ "$(jfield kind <<<"$output")" = error ]
	[ "$(jfield code <<<"$output")" = type-mismatch ]
	[ "$(jfield request_id <<<"$output")" = "$REQ" ]
	[[ $stderr == *"commercial certificate for a qualified request"* ]]
	[[ $stderr == *--accept-type* ]]
	# nothing installed; the certificate is in the request, the key on the token
	[ "$(p11 -O --type cert 2>/dev/null | grep -c 'Object;')" -eq "$certs" ]
	no_obj cert "$KEY"
	has_obj privkey "$KEY"
	has_obj pubkey "$KEY"
	[ -f "$PSRENEW_STATE_DIR/requests/$REQ.json" ]
	[ "$(req state)" = issued ]
	[ "$(req code)" = type-mismatch ]
	[ "$(req cert)" = null ]
	req rejected_cert | openssl x509 -noout
	# the old qualified certificate is not superseded
	[ "$(status_of "$QUAL_ID" --pin "file:$PIN_FILE")" = "valid null" ]
	# the request's key is no cleanup candidate
	run --separate-stderr ps-token-clean "${P11[@]}" --orphans --yes
	[ "$status" -eq 5 ]
	[ "$(jq -r 'select(.kind == "error") | .code' <<<"$output")" = refused-pending-key ]
	has_obj privkey "$KEY"
	# a second run refuses again, changing nothing
	run --separate-stderr ps-fetch "${P11[@]}" --pending
	[ "$status" -eq 5 ]
	no_obj cert "$KEY"
	# a person decides: --accept-type installs it
	run --separate-stderr ps-fetch "${P11[@]}" --accept-type "$REQ"
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
	[ "$(jfield type <<<"$output")" = commercial ]
	[[ $(jfield warning <<<"$output") == *accept-type* ]]
	has_obj cert "$KEY"
	[ "$(req state)" = installed ]
	[ "$(req rejected_cert)" = null ]
	[ "$(req code)" = null ]
}

@test "a key pair a rejected request names is never a cleanup candidate" {
	printf '%s\n' pending >"$SH_DIR/answers"
	renew "$QUAL_ID" "$SH_CA" 3
	edit_req '.state = "rejected" | .ca_answer = "rejected"'
	before=$(all_objects)
	run --separate-stderr ps-token-clean "${P11[@]}" --orphans --yes
	[ "$status" -eq 5 ]
	[ "$(jq -r 'select(.kind == "error") | .code' <<<"$output")" = refused-pending-key ]
	[ "$(jq -r 'select(.kind == "error") | .request_id' <<<"$output")" = "$REQ" ]
	[ "$(all_objects)" -eq "$before" ]
	has_obj privkey "$KEY"
	has_obj pubkey "$KEY"
}

# ------------------------------------------------------------- item 9

@test "a rejection keeps a key pair that is not provably the request's own (key_id edited to the current key)" {
	printf '%s\n' pending reject >"$SH_DIR/answers"
	renew "$QUAL_ID" "$SH_CA" 3
	edit_req ".key_id = \"$QUAL_ID\""
	before=$(all_objects)
	run --separate-stderr ps-fetch "${P11[@]}" "$REQ"
	[ "$status" -eq 5 ]
	[ "$(req state)" = rejected ]
	# the current certificate's key pair is still there, and nothing else went
	has_obj privkey "$QUAL_ID"
	has_obj pubkey "$QUAL_ID"
	[ "$(all_objects)" -eq "$before" ]
	[ "$(req key_removed)" = null ]
	[[ $(req key_kept) == *"$QUAL_ID"* ]]
	[ "$(jfield key_kept <<<"$output")" = "$(req key_kept)" ]
	[[ $stderr == *"key pair stays on the token"* ]]
	# and the current certificate still signs: ps-status pairs it
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --json
	[ "$(jq -r "select(.id == \"$QUAL_ID\") | .has_key" <<<"$output")" = true ]
}

@test "a rejection still removes the request's own key pair (control)" {
	printf '%s\n' pending reject >"$SH_DIR/answers"
	renew "$QUAL_ID" "$SH_CA" 3
	run --separate-stderr ps-fetch "${P11[@]}" "$REQ"
	[ "$status" -eq 5 ]
	no_obj privkey "$KEY"
	no_obj pubkey "$KEY"
	[ "$(req key_removed)" = true ]
	[ "$(req key_kept)" = null ]
	has_obj privkey "$QUAL_ID"
}

# ------------------------------------------------------------ item 19

# foreign_key ID KEYTYPE: a key pair made by pkcs11-tool under CKA_ID ID
# (not the SHA-1 of its public key) and a qualified certificate for it
# from the test PKI in $W/ID.pem.
foreign_key() {
	p11 --keypairgen --key-type "$2" --id "$1" --label "foreign-$1" >/dev/null 2>&1
	p11 --read-object --type pubkey --id "$1" -o "$W/$1.pub.der" >/dev/null 2>&1
	openssl pkey -pubin -inform DER -in "$W/$1.pub.der" -out "$W/$1.pub"
	MKPKI_EMAIL=petra.dvorakova@example.cz "$MKPKI" issue "$(pki_dir)" qualified \
		"$W/$1.pub" "$W/$1.pem" -1h +365d "$PETRA_SUBJECT" >/dev/null 2>&1
	[ "$(cert_key_id "$W/$1.pem")" != "$1" ]
}

@test "--cert finds a key pair pkcs11-tool made under CKA_ID 01 (RSA) and says already_installed the next time" {
	foreign_key 01 rsa:2048
	before=$(all_objects)
	run --separate-stderr ps-fetch "${P11[@]}" --cert "$W/01.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield kind <<<"$output")" = cert ]
	[ "$(jfield id <<<"$output")" = 01 ]
	[ "$(jfield already_installed <<<"$output")" = null ]
	has_obj cert 01
	[ "$(all_objects)" -eq $((before + 1)) ]
	p11 --read-object --type cert --id 01 -o "$W/token.der" >/dev/null 2>&1
	openssl x509 -in "$W/01.pem" -outform DER | cmp - "$W/token.der"
	run --separate-stderr ps-fetch "${P11[@]}" --cert "$W/01.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield already_installed <<<"$output")" = true ]
	[ "$(all_objects)" -eq $((before + 1)) ]
}

@test "--cert finds an EC key pair by its public key point, whatever its CKA_ID" {
	foreign_key 02 EC:prime256v1
	before=$(all_objects)
	run --separate-stderr ps-fetch "${P11[@]}" --cert "$W/02.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield id <<<"$output")" = 02 ]
	has_obj cert 02
	[ "$(all_objects)" -eq $((before + 1)) ]
	run --separate-stderr ps-fetch "${P11[@]}" --cert "$W/02.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield already_installed <<<"$output")" = true ]
	[ "$(all_objects)" -eq $((before + 1)) ]
}

@test "--cert for a certificate already on the token beside a foreign key says already_installed" {
	foreign_key 03 rsa:2048
	openssl x509 -in "$W/03.pem" -outform DER -out "$W/03.der"
	p11 --write-object "$W/03.der" --type cert --id 03 --label foreign-03 >/dev/null 2>&1
	before=$(all_objects)
	run --separate-stderr ps-fetch "${P11[@]}" --cert "$W/03.pem"
	[ "$status" -eq 0 ]
	[ "$(jfield already_installed <<<"$output")" = true ]
	[ "$(jfield id <<<"$output")" = 03 ]
	[ "$(all_objects)" -eq "$before" ]
}

#!/usr/bin/env bats
# ps-pfx-import: a PFX exported from Windows (or OpenSSL, GnuTLS, NSS) onto
# the token (the guide's §8).

bats_require_minimum_version 1.5.0
load ../lib/psrenew

# The PFX files, made once per file: a qualified RSA certificate of Jan
# Novák (with the test PKI's chain) in every flavour people have, an EC
# certificate, and the broken cases. The password is Czech, with a space.
setup_file() {
	local d=$BATS_FILE_TMPDIR/pfx pki ct
	export PFX_DIR=$d PFX_PASS='Záloha 2024 Zq8!'
	mkdir -p "$d"
	pki=$(pki_dir) || return 1
	cp "$pki/chain.pem" "$d/chain.pem"
	_fx_genpkey rsa "$d/rsa.key" || return 1
	openssl pkey -in "$d/rsa.key" -pubout -out "$d/rsa.pub" || return 1
	"$MKPKI" issue "$pki" qualified "$d/rsa.pub" "$d/rsa.crt" -1d +365d || return 1
	_fx_genpkey ec "$d/ec.key" || return 1
	openssl pkey -in "$d/ec.key" -pubout -out "$d/ec.pub" || return 1
	"$MKPKI" issue "$pki" commercial "$d/ec.pub" "$d/ec.crt" -1d +365d || return 1
	_fx_genpkey rsa "$d/other.key" || return 1
	export PW=$PFX_PASS
	# OpenSSL 3 default: AES-256-CBC, PBKDF2, SHA-256 MAC.
	openssl pkcs12 -export -name 'Jan Novák (kvalifikovaný)' -inkey "$d/rsa.key" \
		-in "$d/rsa.crt" -certfile "$d/chain.pem" -passout env:PW -out "$d/modern.p12" || return 1
	# openssl -legacy: RC2-40 certificates, 3DES key, SHA-1 MAC.
	openssl pkcs12 -export -legacy -name 'Jan Novák (kvalifikovaný)' -inkey "$d/rsa.key" \
		-in "$d/rsa.crt" -passout env:PW -out "$d/legacy.p12" || return 1
	# As Windows (Edge, certmgr) exports: 3DES everywhere, SHA-1 MAC, a
	# CSP name, no friendlyName, "include all certificates in the path".
	openssl pkcs12 -export -legacy -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES \
		-macalg sha1 -CSP 'Microsoft Enhanced RSA and AES Cryptographic Provider' -LMK \
		-inkey "$d/rsa.key" -in "$d/rsa.crt" -certfile "$d/chain.pem" \
		-passout env:PW -out "$d/windows.pfx" || return 1
	# GnuTLS certtool: its default (AES, PBKDF2) and RC2-40. certtool takes
	# the password on its command line only (this test's child, not ours).
	for ct in default rc2-40; do
		certtool --to-p12 --load-privkey "$d/rsa.key" --load-certificate "$d/rsa.crt" \
			--p12-name 'Jan Novák' --password "$PFX_PASS" --outder \
			$([ $ct = default ] || echo "--pkcs-cipher $ct") \
			--outfile "$d/certtool-$ct.p12" </dev/null >/dev/null 2>&1 || return 1
	done
	# EC P-256.
	openssl pkcs12 -export -inkey "$d/ec.key" -in "$d/ec.crt" -passout env:PW \
		-out "$d/ec.p12" || return 1
	# No private key; a key that is not the certificate's; no password.
	openssl pkcs12 -export -nokeys -in "$d/rsa.crt" -passout env:PW -out "$d/nokey.p12" || return 1
	certtool --to-p12 --load-privkey "$d/other.key" --load-certificate "$d/rsa.crt" \
		--p12-name x --password "$PFX_PASS" --outder --outfile "$d/mismatch.p12" \
		</dev/null >/dev/null 2>&1 || return 1
	openssl pkcs12 -export -inkey "$d/rsa.key" -in "$d/rsa.crt" -passout pass: \
		-out "$d/nopass.p12" || return 1
	# OpenSSL before 1.1.0 took each byte of a UTF-8 password for a
	# character: what OpenSSL 3 makes of the password re-read as Latin-1.
	PW=$(printf '%s' "$PFX_PASS" | iconv -f latin1 -t utf-8) || return 1
	openssl pkcs12 -export -legacy -inkey "$d/rsa.key" -in "$d/rsa.crt" -passout env:PW \
		-out "$d/old-openssl.p12" || return 1
	RSA_ID=$(cert_key_id "$d/rsa.crt") EC_ID=$(cert_key_id "$d/ec.crt")
	export RSA_ID EC_ID
}

setup() {
	psrenew_setup
	softhsm_token
	export PFX_PASS='Záloha 2024 Zq8!'
}

import() {
	run --separate-stderr ps-pfx-import --module "$PKCS11_MODULE" --token "$TOKEN_URI" \
		--pin "file:$PIN_FILE" --pass env:PFX_PASS "$@"
}

p11() {
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label "$TOKEN_LABEL" "$@"
}

objects() { # every object on the token, logged in
	p11 --login --pin "$PIN" -O 2>/dev/null
}

# section CLASS: the pkcs11-tool -O block of the first object of a class
# ("Private Key", "Public Key", "Certificate").
section() {
	objects | awk -v c="^$1 Object" '$0 ~ c { p = 1; print; next }
		p && /Object;/ { exit } p { print }'
}

nothing_on_token() {
	[ "$(token_objects privkey)" -eq 0 ] && [ "$(token_objects pubkey)" -eq 0 ] &&
		[ "$(token_objects cert)" -eq 0 ]
}

one_of_each() {
	[ "$(token_objects privkey)" -eq 1 ] && [ "$(token_objects pubkey)" -eq 1 ] &&
		[ "$(token_objects cert)" -eq "${1:-1}" ]
}

# field NAME: a field of the record in $output, false and null as such
# (the fixture's jfield turns false into "null").
field() {
	jq -r ".$1" <<<"$output"
}

# fault ARGS...: ps-pfx-import through the fault-injecting module, with the
# environment given before it (VAR=VALUE ...).
fault() {
	local envs=()
	while [[ $1 == *=* ]]; do envs+=("$1"); shift; done
	run --separate-stderr env P11FAULT_MODULE="$PKCS11_MODULE" "${envs[@]}" \
		ps-pfx-import --module "$P11FAULT" --token "$TOKEN_URI" --pin "file:$PIN_FILE" \
		--pass env:PFX_PASS "$@"
}

@test "imports a modern OpenSSL PFX: the key is sensitive, not extractable, and paired by CKA_ID" {
	import "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	records_valid
	[ "$(jfield kind <<<"$output")" = cert ]
	[ "$(jfield id <<<"$output")" = "$RSA_ID" ]
	[ "$(field imported)" = true ]
	[ "$(field already_installed)" = false ]
	[ "$(field has_key)" = true ]
	[ "$(jfield label <<<"$output")" = 'Jan Novák (kvalifikovaný)' ]
	one_of_each
	priv=$(section 'Private Key')
	grep -q "ID: *$RSA_ID" <<<"$priv"
	grep -q 'Access: *sensitive' <<<"$priv"
	# CKA_EXTRACTABLE false (pkcs11-tool prints "extractable" when true)
	! grep -Eq '(^|[ ,])extractable' <<<"$(grep Access <<<"$priv")"
	grep -Eq 'Usage:.*decrypt' <<<"$priv" && grep -Eq 'Usage:.*sign' <<<"$priv"
	! grep -Eq 'Usage:.*(wrap|derive)' <<<"$priv"
	grep -q "label: *Jan Novák (kvalifikovaný)" <<<"$priv"
	grep -q "ID: *$RSA_ID" <<<"$(section 'Public Key')"
	grep -q "ID: *$RSA_ID" <<<"$(section Certificate)"
	# the certificate on the token is the one in the PFX
	p11 --read-object --type cert --id "$RSA_ID" -o "$BATS_TEST_TMPDIR/c.der" 2>/dev/null
	[ "$(openssl x509 -inform DER -in "$BATS_TEST_TMPDIR/c.der" -outform PEM)" = \
	  "$(openssl x509 -in "$PFX_DIR/rsa.crt")" ]
	# p11tool agrees, and cannot export the private key
	keys=$(GNUTLS_PIN=$PIN p11tool --provider "$PKCS11_MODULE" --login --list-privkeys \
		"$TOKEN_URI" 2>/dev/null)
	grep -q 'Flags:.*CKA_SENSITIVE' <<<"$keys"
	! grep -q 'CKA_EXTRACTABLE' <<<"$keys"
	! GNUTLS_PIN=$PIN p11tool --provider "$PKCS11_MODULE" --login --export \
		"$TOKEN_URI;type=private" 2>/dev/null
}

@test "the record is ps-status's cert record for the certificate, plus imported" {
	import "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	[ "$(jfield pfx_file <<<"$output")" = "$PFX_DIR/modern.p12" ]
	[ "$(jfield chain_imported <<<"$output")" = 0 ]
	mine=$(jq -S -c 'del(.imported, .already_installed, .chain_imported, .pfx_file)' <<<"$output")
	theirs=$(ps-status --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --json |
		jq -S -c "select(.id == \"$RSA_ID\")")
	[ "$mine" = "$theirs" ]
	[ "$(jfield type <<<"$theirs")" = qualified ]
	[ "$(jfield has_key <<<"$theirs")" = true ]
	[ "$(jfield serial_hex <<<"$theirs")" = "$(cert_serial_hex "$PFX_DIR/rsa.crt")" ]
}

@test "p11tool sees the imported key and certificate" {
	import "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	gid=$(sed 's/../&:/g; s/:$//' <<<"$RSA_ID")
	certs=$(p11tool --provider "$PKCS11_MODULE" --list-all-certs "$TOKEN_URI" 2>/dev/null)
	grep -q "ID: $gid" <<<"$certs"
	grep -q 'Label: Jan Novák (kvalifikovaný)' <<<"$certs"
	keys=$(GNUTLS_PIN=$PIN p11tool --provider "$PKCS11_MODULE" --login --list-privkeys \
		"$TOKEN_URI" 2>/dev/null)
	grep -q "ID: $gid" <<<"$keys"
	grep -q 'Type: Private key (RSA-2048)' <<<"$keys"
	grep -q 'CKA_SENSITIVE' <<<"$keys"
}

@test "the imported key signs and decrypts on the token; the certificate verifies it" {
	import "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	cd "$BATS_TEST_TMPDIR"
	printf 'Žádost o následný certifikát\n' > data
	openssl x509 -in "$PFX_DIR/rsa.crt" -noout -pubkey > pub.pem
	p11 --login --pin "$PIN" --sign --mechanism SHA256-RSA-PKCS --id "$RSA_ID" \
		-i data -o sig 2>/dev/null
	openssl dgst -sha256 -verify pub.pem -signature sig data
	openssl pkeyutl -encrypt -pubin -inkey pub.pem -in data -out enc
	p11 --login --pin "$PIN" --decrypt --mechanism RSA-PKCS --id "$RSA_ID" \
		-i enc -o dec 2>/dev/null
	cmp data dec
}

@test "reads a PFX as Windows exports it: 3DES, SHA-1 MAC, no friendlyName (label from the CN)" {
	import --verbose "$PFX_DIR/windows.pfx"
	[ "$status" -eq 0 ]
	[ "$(jfield id <<<"$output")" = "$RSA_ID" ]
	[ "$(jfield label <<<"$output")" = 'Jan Novák' ]
	[ "$(field has_key)" = true ]
	one_of_each # the chain stays off the token without --with-chain
}

@test "reads openssl -legacy (RC2-40, 3DES), loading OpenSSL's legacy provider only then" {
	import --verbose "$PFX_DIR/legacy.p12"
	[ "$status" -eq 0 ]
	[ "$(field imported)" = true ]
	[[ "$stderr" == *"legacy provider was loaded"* ]]
	one_of_each
	softhsm_token second
	import --verbose "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	[[ "$stderr" != *"legacy"* ]]
}

@test "reads GnuTLS certtool exports, default and RC2-40" {
	for f in certtool-default certtool-rc2-40; do
		softhsm_token "$f"
		import "$PFX_DIR/$f.p12"
		[ "$status" -eq 0 ] || { echo "$f: $stderr"; false; }
		[ "$(jfield id <<<"$output")" = "$RSA_ID" ]
		[ "$(jfield label <<<"$output")" = 'Jan Novák' ]
		one_of_each
	done
}

@test "reads NSS pk12util exports (Firefox, Thunderbird)" {
	command -v pk12util >/dev/null || skip "pk12util (libnss3-tools) is not installed"
	db=$BATS_TEST_TMPDIR/nss pw=$BATS_TEST_TMPDIR/pw
	mkdir "$db"
	(umask 077 && printf '%s' "$PFX_PASS" > "$pw")
	certutil -N -d "sql:$db" --empty-password
	pk12util -i "$PFX_DIR/modern.p12" -d "sql:$db" -w "$pw" </dev/null >/dev/null
	nick=$(certutil -L -d "sql:$db" | sed -n 's/ *u,u,u$//p') # the one with a key
	[ "$nick" = 'Jan Novák (kvalifikovaný)' ]
	pk12util -o "$BATS_TEST_TMPDIR/nss.p12" -n "$nick" -d "sql:$db" -w "$pw" </dev/null >/dev/null
	pk12util -o "$BATS_TEST_TMPDIR/nss-rc2.p12" -n "$nick" -d "sql:$db" -w "$pw" \
		-C 'PKCS #12 V2 PBE With SHA-1 And 40 Bit RC2 CBC' \
		-c 'PKCS #12 V2 PBE With SHA-1 And 3KEY Triple DES-CBC' </dev/null >/dev/null
	for f in nss nss-rc2; do
		softhsm_token "$f"
		import "$BATS_TEST_TMPDIR/$f.p12"
		[ "$status" -eq 0 ] || { echo "$f: $stderr"; false; }
		[ "$(jfield id <<<"$output")" = "$RSA_ID" ]
		[ "$(field has_key)" = true ]
		one_of_each
	done
}

@test "an EC key is imported, signs on the token, and verifies with its certificate" {
	import "$PFX_DIR/ec.p12"
	[ "$status" -eq 0 ]
	[ "$(jfield id <<<"$output")" = "$EC_ID" ]
	[ "$(jfield key_type <<<"$output")" = ec:prime256v1 ]
	[ "$(jfield type <<<"$output")" = commercial ]
	[ "$(field has_key)" = true ]
	one_of_each
	grep -q 'Access: *sensitive' <<<"$(section 'Private Key')"
	cd "$BATS_TEST_TMPDIR"
	printf 'data\n' | openssl dgst -sha256 -binary > hash # SoftHSM has plain ECDSA only
	openssl x509 -in "$PFX_DIR/ec.crt" -noout -pubkey > pub.pem
	p11 --login --pin "$PIN" --sign --mechanism ECDSA --signature-format openssl \
		--id "$EC_ID" -i hash -o sig 2>/dev/null
	openssl pkeyutl -verify -pubin -inkey pub.pem -in hash -sigfile sig
	# the public key object carries the certificate's point
	p11 --read-object --type pubkey --id "$EC_ID" -o pub.der 2>/dev/null
	[ "$(openssl pkey -pubin -inform DER -in pub.der)" = "$(cat pub.pem)" ]
}

@test "--with-chain stores the CA certificates as authority certificates, each once" {
	import --with-chain "$PFX_DIR/windows.pfx"
	[ "$status" -eq 0 ]
	[ "$(jfield chain_imported <<<"$output")" = 3 ]
	one_of_each 4
	certs=$(p11tool --provider "$PKCS11_MODULE" --list-all-certs "$TOKEN_URI" 2>/dev/null)
	[ "$(grep -c 'CKA_CERTIFICATE_CATEGORY=CA' <<<"$certs")" -eq 3 ]
	grep -q 'Label: DEMO PostSignum Root QCA 4' <<<"$certs"
	grep -q 'Label: DEMO PostSignum Qualified CA 5' <<<"$certs"
	# ps-status still pairs the personal certificate with its key
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" --json
	[ "$(jq -r "select(.id == \"$RSA_ID\") | .has_key" <<<"$output")" = true ]
	# again: nothing new, the chain included
	import --with-chain "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	[ "$(jfield chain_imported <<<"$output")" = 0 ]
	[ "$(field imported)" = false ]
	one_of_each 4
}

@test "importing the same PFX again writes nothing and says it was there" {
	import "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	import "$PFX_DIR/windows.pfx" # the same key and certificate, another file
	[ "$status" -eq 0 ]
	[ "$(field imported)" = false ]
	[ "$(field already_installed)" = true ]
	[ "$(field has_key)" = true ]
	one_of_each
}

@test "a key already on the token gets its missing certificate back" {
	import "$PFX_DIR/modern.p12"
	p11 --login --pin "$PIN" --delete-object --type cert --id "$RSA_ID" >/dev/null 2>&1
	[ "$(token_objects cert)" -eq 0 ]
	import "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	[ "$(field imported)" = true ]
	[ "$(field already_installed)" = false ]
	one_of_each
}

@test "a certificate already on the token under another id gets its key under that id" {
	openssl x509 -in "$PFX_DIR/rsa.crt" -outform DER -out "$BATS_TEST_TMPDIR/c.der"
	p11 --login --pin "$PIN" --write-object "$BATS_TEST_TMPDIR/c.der" --type cert \
		--id 0102 --label 'z Windows' >/dev/null 2>&1
	import "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	[ "$(jfield id <<<"$output")" = 0102 ]
	[ "$(field has_key)" = true ]
	[ "$(field already_installed)" = true ]
	[ "$(field imported)" = true ]
	one_of_each
}

@test "another key under the same id is refused, exit 5, nothing written" {
	p11 --login --pin "$PIN" --keypairgen --key-type EC:prime256v1 --id "$RSA_ID" \
		--label squatter >/dev/null 2>&1
	import "$PFX_DIR/modern.p12"
	[ "$status" -eq 5 ]
	[ "$(jfield code <<<"$output")" = id-conflict ]
	[ "$(token_objects privkey)" -eq 1 ] && [ "$(token_objects cert)" -eq 0 ]
}

@test "--label names the key and the certificate" {
	import --label 'Komerční certifikát VCA' "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	[ "$(jfield label <<<"$output")" = 'Komerční certifikát VCA' ]
	grep -q 'label: *Komerční certifikát VCA' <<<"$(section 'Private Key')"
}

@test "a PFX without a password is imported without asking for one" {
	run --separate-stderr ps-pfx-import --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		"$PFX_DIR/nopass.p12" </dev/null
	[ "$status" -eq 0 ]
	[ "$(field imported)" = true ]
}

@test "the password comes from a file or a descriptor as well" {
	pw=$BATS_TEST_TMPDIR/pw
	(umask 077 && printf '%s\n' "$PFX_PASS" > "$pw")
	run --separate-stderr ps-pfx-import --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--pass "file:$pw" "$PFX_DIR/legacy.p12"
	[ "$status" -eq 0 ]
	softhsm_token second
	run --separate-stderr ps-pfx-import --module "$PKCS11_MODULE" --token "$TOKEN_URI" \
		--pin "file:$PIN_FILE" --pass fd:5 "$PFX_DIR/certtool-default.p12" 5<"$pw"
	[ "$status" -eq 0 ]
}

@test "a Czech password works in a file made by OpenSSL before 1.1.0 too" {
	import "$PFX_DIR/old-openssl.p12"
	[ "$status" -eq 0 ]
	[ "$(field imported)" = true ]
}

@test "a wrong password is exit 5, code bad-password, nothing written" {
	for f in modern.p12 legacy.p12 windows.pfx certtool-default.p12 ec.p12; do
		PFX_PASS='Zaloha 2024 Zq8!' import "$PFX_DIR/$f" # no accent
		[ "$status" -eq 5 ] || { echo "$f: $status $stderr"; false; }
		[ "$(jfield code <<<"$output")" = bad-password ]
		[[ "$stderr" == *"$f: wrong password"* ]]
	done
	nothing_on_token
}

@test "a truncated, damaged or foreign file is exit 1 with a clear message, never a crash" {
	f=$PFX_DIR/windows.pfx t=$BATS_TEST_TMPDIR/t.pfx
	size=$(stat -c %s "$f")
	for n in 1 2 4 16 64 100 500 1000 $((size / 2)) $((size - 100)) $((size - 20)) $((size - 1)); do
		head -c "$n" "$f" > "$t"
		import "$t"
		[ "$status" -eq 1 ] || { echo "cut at $n: $status $stderr"; false; }
		[ "$(jfield code <<<"$output")" = bad-pfx ]
		[[ "$stderr" == *"t.pfx: the PFX file is damaged or truncated"* ]]
	done
	# flipped bytes inside: damaged structure or a MAC that fails
	for n in 40 300 900 $((size - 40)); do
		cp "$f" "$t"
		printf '\xff\x00\xa5' | dd of="$t" bs=1 seek="$n" conv=notrunc 2>/dev/null
		import "$t"
		[ "$status" -eq 1 ] || [ "$status" -eq 5 ] || { echo "flip at $n: $status $stderr"; false; }
	done
	for i in 1 2 3 4 5 6 7 8; do
		head -c $((i * 397)) /dev/urandom > "$t"
		import "$t"
		[ "$status" -eq 1 ] || { echo "garbage $i: $status $stderr"; false; }
	done
	head -c 1100000 /dev/zero > "$t"
	import "$t"
	[ "$status" -eq 1 ] && [[ "$stderr" == *"larger than 1 MiB"* ]]
	: > "$t"
	import "$t"
	[ "$status" -eq 1 ] && [[ "$stderr" == *"empty"* ]]
	import "$PFX_DIR/rsa.crt"
	[ "$status" -eq 1 ] && [[ "$stderr" == *"PEM text file"* ]]
	nothing_on_token
}

# The files are the pfx harness's regression inputs (tests/fuzz/regress):
# before the bounds, the first took about a minute, the second hours.
@test "a file that asks for too much work is refused at once: key derivation rounds, scrypt, a huge RSA key" {
	local r=$BATS_TEST_DIRNAME/../fuzz/regress
	SECONDS=0
	import "$r/pfx-mac-10M-rounds"
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output")" = bad-pfx ]
	[[ "$stderr" == *"asks for 10000000 key derivation rounds at once; psrenew takes at most 1000000"* ]]
	import "$r/pfx-scrypt-kdf"
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output")" = unsupported-pfx ]
	[[ "$stderr" == *"key derivation psrenew does not take (scrypt)"* ]]
	PFX_PASS='Záloha Zq8!' import "$r/pfx-rsa-8200-bits"
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output")" = unsupported-key ]
	[[ "$stderr" == *"an RSA key of 8200 bits; tokens take RSA keys of at most 8192 bits"* ]]
	[ "$SECONDS" -lt 10 ]
	nothing_on_token
}

@test "a PFX without its private key, or with another one, is refused" {
	import "$PFX_DIR/nokey.p12"
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output")" = no-key ]
	[[ "$stderr" == *"export the private key"* ]]
	import "$PFX_DIR/mismatch.p12"
	[ "$status" -eq 1 ]
	[ "$(jfield code <<<"$output")" = key-mismatch ]
	nothing_on_token
}

@test "a full token is exit 6 with the guide's error 621 advice, nothing written" {
	fault P11FAULT_CAPACITY=2 "$PFX_DIR/modern.p12"
	[ "$status" -eq 6 ]
	[ "$(jfield code <<<"$output")" = token-full ]
	[[ "$stderr" == *"621"* && "$stderr" == *"ps-token-clean"* ]]
	nothing_on_token
	fault P11FAULT_CAPACITY=3 "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	one_of_each
}

@test "the key is removed again when its certificate cannot be stored: never half an import" {
	fault P11FAULT_FAIL=C_CreateObject:3:CKR_DEVICE_MEMORY "$PFX_DIR/modern.p12"
	[ "$status" -eq 6 ]
	[ "$(jfield code <<<"$output")" = token-full ]
	[[ "$stderr" == *"nothing was left on the token"* ]]
	nothing_on_token
	fault P11FAULT_FAIL=C_CreateObject:2:CKR_DEVICE_ERROR "$PFX_DIR/ec.p12"
	[ "$status" -ne 0 ]
	nothing_on_token
	# a token that says it has room, and has none for the third object
	fault P11FAULT_CAPACITY=2 P11FAULT_FREE_MEMORY=1000000 "$PFX_DIR/modern.p12"
	[ "$status" -eq 6 ]
	nothing_on_token
	# the chain: the third CA certificate fails, everything goes
	fault P11FAULT_FAIL=C_CreateObject:6:CKR_DEVICE_MEMORY --with-chain "$PFX_DIR/windows.pfx"
	[ "$status" -eq 6 ]
	nothing_on_token
}

@test "objects that cannot be removed again are named, with the command that removes them" {
	fault P11FAULT_FAIL=C_CreateObject:3:CKR_DEVICE_MEMORY,C_DestroyObject:*:CKR_DEVICE_ERROR \
		"$PFX_DIR/modern.p12"
	[ "$status" -eq 6 ]
	[[ "$stderr" == *"could not be removed"*"pkcs11-tool"*"$RSA_ID"* ]]
}

@test "an interrupted import is finished by the next run, which removes what it half-wrote and nothing else" {
	half_written none # there before the import: kept
	[ "$(objects | grep -c '^Data object')" -eq 1 ]
	# a run that stops after the key pair and cannot remove it: its
	# record in the state store stays
	fault P11FAULT_FAIL=C_CreateObject:3:CKR_DEVICE_MEMORY,C_DestroyObject:*:CKR_DEVICE_ERROR \
		"$PFX_DIR/modern.p12"
	[ "$status" -eq 6 ]
	ls "$PSRENEW_STATE_DIR/imports/$RSA_ID"-*.json
	[ "$(token_objects privkey)" -eq 1 ] && [ "$(token_objects cert)" -eq 0 ]
	# and what a kill inside C_CreateObject leaves
	half_written pubkey
	half_written none
	[ "$(token_objects pubkey)" -eq 2 ]
	import "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	[[ $stderr == *"interrupted import"*"2 half-written"* ]]
	# as one run would say: the key and the certificate were written
	[ "$(field imported)" = true ]
	[ "$(field already_installed)" = false ]
	one_of_each
	[ "$(objects | grep -c '^Data object')" -eq 1 ]
	[ -z "$(ls -A "$PSRENEW_STATE_DIR/imports")" ]
	# the next run has nothing to finish
	import "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	[ "$(field imported)" = false ]
	[[ $stderr != *interrupted* ]]
	one_of_each
}

@test "a run that fails after an interrupted one removes what both wrote" {
	fault P11FAULT_FAIL=C_CreateObject:3:CKR_DEVICE_MEMORY,C_DestroyObject:*:CKR_DEVICE_ERROR \
		"$PFX_DIR/modern.p12"
	[ "$status" -eq 6 ]
	half_written pubkey
	# the certificate fails: the key pair goes too, and the half key
	fault P11FAULT_FAIL=C_CreateObject:1:CKR_DEVICE_MEMORY "$PFX_DIR/modern.p12"
	[ "$status" -eq 6 ]
	[[ $stderr == *"nothing was left on the token"* ]]
	nothing_on_token
	[ "$(objects | grep -c '^Data object')" -eq 0 ]
	[ -z "$(ls -A "$PSRENEW_STATE_DIR/imports")" ]
}

@test "an import of the key onto the token under way elsewhere is exit 3, busy" {
	import "$PFX_DIR/modern.p12"
	[ "$status" -eq 0 ]
	lock=$(ls "$PSRENEW_STATE_DIR/locks/import-$RSA_ID"-*.lock)
	run --separate-stderr flock -n "$lock" ps-pfx-import --module "$PKCS11_MODULE" \
		--token "$TOKEN_URI" --pin "file:$PIN_FILE" --pass env:PFX_PASS "$PFX_DIR/modern.p12"
	[ "$status" -eq 3 ]
	[ "$(jfield code <<<"$output")" = busy ]
	[[ $stderr == *"another process is importing this key"* ]]
}

@test "a token that cannot sign with RSA keys is exit 6 (the guide's error 622)" {
	fault P11FAULT_HIDE_MECHS=CKM_RSA_PKCS "$PFX_DIR/modern.p12"
	[ "$status" -eq 6 ]
	[ "$(jfield code <<<"$output")" = mechanism-missing ]
	[[ "$stderr" == *"622"* ]]
	nothing_on_token
}

@test "a wrong PIN is exit 6 and writes nothing" {
	(umask 077 && printf '9999' > "$BATS_TEST_TMPDIR/badpin")
	run --separate-stderr ps-pfx-import --module "$PKCS11_MODULE" \
		--pin "file:$BATS_TEST_TMPDIR/badpin" --pass env:PFX_PASS "$PFX_DIR/modern.p12"
	[ "$status" -eq 6 ]
	[ "$(jfield code <<<"$output")" = pin-incorrect ]
	nothing_on_token
}

@test "the password never appears in argv, in stderr or in records" {
	command -v strace >/dev/null || skip "strace is not installed"
	trace=$BATS_TEST_TMPDIR/trace
	# (LeakSanitizer cannot run under ptrace: leaks are checked elsewhere)
	run --separate-stderr env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		strace -f -qq -s 4096 -e trace=execve -o "$trace" \
		ps-pfx-import --verbose --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--pass env:PFX_PASS "$PFX_DIR/windows.pfx"
	[ "$status" -eq 0 ]
	[ "$(grep -c 'execve(' "$trace")" -eq 1 ] # no child process at all
	! grep -qF "$PFX_PASS" "$trace"
	! grep -qF "$PFX_PASS" <<<"$output$stderr"
	PFX_PASS='Zaloha 2024 Zq8!' import "$PFX_DIR/windows.pfx"
	! grep -qF 'Zaloha 2024' <<<"$output$stderr"
	# a password on the command line is refused, and not repeated
	run --separate-stderr ps-pfx-import --module "$PKCS11_MODULE" --pass 'pass:Tajne123' \
		"$PFX_DIR/modern.p12"
	[ "$status" -eq 2 ]
	[ "$(jfield code <<<"$output")" = secret-in-argv ]
	! grep -qF 'Tajne123' <<<"$output$stderr"
}

@test "usage errors: no file, two files, a file that is not there" {
	run --separate-stderr ps-pfx-import --module "$PKCS11_MODULE"
	[ "$status" -eq 2 ]
	run --separate-stderr ps-pfx-import --module "$PKCS11_MODULE" a.pfx b.pfx
	[ "$status" -eq 2 ]
	import "$BATS_TEST_TMPDIR/missing.pfx"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"cannot open"*"missing.pfx"* ]]
}

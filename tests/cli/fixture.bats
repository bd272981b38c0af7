#!/usr/bin/env bats
# The fixtures themselves: tests/pki/mkpki and tests/lib/fixture.bash do what
# they promise, checked with openssl, pkcs11-tool and p11tool rather than with
# the fixture's own code.

load ../lib/fixture

setup() {
	softhsm_token
	PKI=$(pki_dir)
	W=$BATS_TEST_TMPDIR/w
	mkdir -p "$W"
}

# a software key and its public half in $W
soft_key() {
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/k.pem" 2>/dev/null
	openssl pkey -in "$W/k.pem" -pubout -out "$W/pub.pem"
}

# der_hex FILE: a PEM certificate's DER in hex
der_hex() {
	openssl x509 -in "$1" -outform DER | od -An -v -tx1 | tr -d ' \n'
}

verify() {
	openssl verify -CAfile "$PKI/root.crt" -untrusted "$PKI/chain.pem" "$@"
}

# ------------------------------------------------------------------- mkpki

@test "mkpki builds a root and two issuing CAs named like PostSignum's" {
	for f in root.key root.crt qualified-ca.key qualified-ca.crt \
		public-ca.key public-ca.crt chain.pem .done; do
		[ -s "$PKI/$f" ] || { [ "$f" = .done ] && [ -e "$PKI/$f" ]; }
	done
	run openssl x509 -in "$PKI/root.crt" -noout -subject -issuer -nameopt utf8,sep_comma_plus_space
	[ "${lines[0]}" = "subject=C=CZ, O=Česká pošta, s.p., CN=DEMO PostSignum Root QCA 4" ]
	[ "${lines[1]}" = "issuer=C=CZ, O=Česká pošta, s.p., CN=DEMO PostSignum Root QCA 4" ]
	run openssl x509 -in "$PKI/qualified-ca.crt" -noout -subject -issuer -nameopt utf8,sep_comma_plus_space
	[ "${lines[0]}" = "subject=C=CZ, O=Česká pošta, s.p., CN=DEMO PostSignum Qualified CA 5" ]
	[ "${lines[1]}" = "issuer=C=CZ, O=Česká pošta, s.p., CN=DEMO PostSignum Root QCA 4" ]
	run openssl x509 -in "$PKI/public-ca.crt" -noout -subject -nameopt utf8,sep_comma_plus_space
	[ "$output" = "subject=C=CZ, O=Česká pošta, s.p., CN=DEMO PostSignum Public CA 5" ]
	# O is a UTF8String (Č = c4 8c)
	[[ $(der_hex "$PKI/public-ca.crt") == *0c14c48c65736bc3a120706fc5a174612c20732e702e* ]]
	run verify "$PKI/qualified-ca.crt" "$PKI/public-ca.crt"
	[ "$status" -eq 0 ]
	[ "$(grep -c 'BEGIN CERTIFICATE' "$PKI/chain.pem")" -eq 3 ]
	run openssl x509 -in "$PKI/qualified-ca.crt" -noout -ext basicConstraints
	[[ $output == *"CA:TRUE, pathlen:0"* ]]
	# the CAs were valid long before any "past" personal certificate
	run openssl x509 -in "$PKI/qualified-ca.crt" -noout -checkend $((-2000 * 86400))
	[ "$status" -eq 0 ]
}

@test "mkpki DIR does nothing when DIR/.done exists and refuses a foreign directory" {
	before=$(sha1sum "$PKI"/*.crt "$PKI"/*.key)
	run "$MKPKI" "$PKI"
	[ "$status" -eq 0 ]
	[ "$(sha1sum "$PKI"/*.crt "$PKI"/*.key)" = "$before" ]
	mkdir "$W/foreign" && touch "$W/foreign/keep-me"
	run "$MKPKI" "$W/foreign"
	[ "$status" -ne 0 ]
	[[ $output == *"not an empty directory or a test PKI"* ]]
	[ "$(ls -A "$W/foreign")" = keep-me ]
	[ -z "$(ls -d "$W"/foreign.tmp.* 2>/dev/null)" ]
}

@test "a qualified certificate carries QCStatements with QcCompliance and QcSSCD" {
	soft_key
	"$MKPKI" issue "$PKI" qualified "$W/pub.pem" "$W/q.crt" -1d +365d
	run cert_qc_statements "$W/q.crt"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = 0.4.0.1862.1.1 ] # QcCompliance
	[ "${lines[1]}" = 0.4.0.1862.1.4 ] # QcSSCD
	[ "${lines[2]}" = 0.4.0.1862.1.6 ] # QcType
	# cross-check without the helper: the extension OID and the statement
	# OIDs' DER (06 06 04 00 8e 46 01 01 / 01 04) are in the certificate
	run openssl asn1parse -in "$W/q.crt"
	[[ $output == *":qcStatements"* ]]
	hex=$(der_hex "$W/q.crt")
	[[ $hex == *06082b06010505070103* ]]
	[[ $hex == *060604008e460101* ]]
	[[ $hex == *060604008e460104* ]]
	[[ $hex == *060704008e46010601* ]] # QcType esign (0.4.0.1862.1.6.1)
	run openssl x509 -in "$W/q.crt" -noout -ext keyUsage,extendedKeyUsage,certificatePolicies,subjectAltName
	[[ $output == *"Digital Signature, Non Repudiation"* ]]
	# the real profile: e-mail and document signing, no TLS client
	[[ $output == *"E-mail Protection, 1.3.6.1.4.1.311.10.3.12"* ]]
	[[ $output != *"TLS Web Client Authentication"* ]]
	[[ $output == *"Policy: 2.23.134.1.4.1.17.200"* ]]
	[[ $output == *"Policy: 0.4.0.194112.1.0"* ]]
	[[ $output == *"email:jan.novak@example.cz"* ]]
	run openssl x509 -in "$W/q.crt" -noout -issuer -nameopt utf8,sep_comma_plus_space
	[ "$output" = "issuer=C=CZ, O=Česká pošta, s.p., CN=DEMO PostSignum Qualified CA 5" ]
}

@test "a seal comes from the qualified CA with QcType eseal, QCP-l and an S... serialNumber" {
	soft_key
	"$MKPKI" issue "$PKI" seal "$W/pub.pem" "$W/s.crt" -1d +385d
	run cert_qc_statements "$W/s.crt"
	[ "${lines[0]}" = 0.4.0.1862.1.1 ]
	[ "${lines[2]}" = 0.4.0.1862.1.6 ]
	hex=$(der_hex "$W/s.crt")
	[[ $hex == *060704008e46010602* ]] # eseal (0.4.0.1862.1.6.2)
	[[ $hex != *060704008e46010601* ]] # not esign
	run openssl x509 -in "$W/s.crt" -noout -ext certificatePolicies,extendedKeyUsage
	[[ $output == *"Policy: 0.4.0.194112.1.1"* ]]
	[[ $output != *"TLS Web Client Authentication"* ]]
	run openssl x509 -in "$W/s.crt" -noout -subject -issuer -nameopt utf8,sep_comma_plus_space
	[[ ${lines[0]} == "subject=C=CZ, O=Ministerstvo vnitra, organizationIdentifier=NTRCZ-00007064, CN="*", serialNumber=S654321" ]]
	[ "${lines[1]}" = "issuer=C=CZ, O=Česká pošta, s.p., CN=DEMO PostSignum Qualified CA 5" ]
	# 385 days, as PostSignum issues them
	run "$MKPKI" issue "$PKI" seal "$W/pub.pem" "$W/s2.crt" now +385d
	run openssl x509 -in "$W/s2.crt" -noout -startdate -enddate
	nb=$(date -d "${lines[0]#notBefore=}" +%s) na=$(date -d "${lines[1]#notAfter=}" +%s)
	[ $((na - nb)) -eq $((385 * 86400)) ]
}

@test "a commercial certificate has no QCStatements, and has its EKU and key usage" {
	soft_key
	"$MKPKI" issue "$PKI" commercial "$W/pub.pem" "$W/c.crt" -1d +365d
	run cert_qc_statements "$W/c.crt"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	run openssl asn1parse -in "$W/c.crt"
	[[ $output != *qcStatements* ]]
	[[ $(der_hex "$W/c.crt") != *06082b06010505070103* ]]
	run openssl x509 -in "$W/c.crt" -noout -ext keyUsage,extendedKeyUsage,certificatePolicies
	[[ $output == *"Digital Signature, Key Encipherment"* ]]
	[[ $output == *"E-mail Protection, TLS Web Client Authentication"* ]]
	[[ $output == *"Policy: 1.3.6.1.4.1.21385.1.2.1.1"* ]]
	[[ $output != *"1.3.6.1.4.1.21385.1.1.1.1"* ]]
	run openssl x509 -in "$W/c.crt" -noout -issuer -nameopt utf8,sep_comma_plus_space
	[ "$output" = "issuer=C=CZ, O=Česká pošta, s.p., CN=DEMO PostSignum Public CA 5" ]
}

@test "the subject CN is the UTF8String \"Jan Novák\" (c3 a1) and every attribute is a UTF8String" {
	soft_key
	"$MKPKI" issue "$PKI" qualified "$W/pub.pem" "$W/q.crt" -1d +365d
	# commonName OID, then UTF8String (0c) of 10 bytes: J a n ' ' N o v c3 a1 k
	[[ $(der_hex "$W/q.crt") == *06035504030c0a4a616e204e6f76c3a16b* ]]
	run openssl x509 -in "$W/q.crt" -noout -subject -nameopt utf8,sep_comma_plus_space
	[ "$output" = "subject=C=CZ, O=Ministerstvo vnitra, organizationIdentifier=NTRCZ-00007064, OU=Odbor eGovernmentu, CN=Jan Novák, serialNumber=P123456" ]
	# the subject's six values, C and serialNumber included, are UTF8STRING
	# (asn1parse: the subject is what follows the two validity times)
	run bash -c "openssl asn1parse -in '$W/q.crt' | awk '/UTCTIME/ { n++; next }
		n == 2 && /OBJECT +:rsaEncryption/ { exit }
		n == 2 && /prim: .*STRING/ { print }'"
	[ "${#lines[@]}" -eq 6 ]
	for l in "${lines[@]}"; do [[ $l == *"UTF8STRING"* ]]; done
	# and the whole Name is exactly what `mkpki subject-der` encodes
	subj=$("$MKPKI" subject-der "$JAN_SUBJECT")
	[[ $(der_hex "$W/q.crt") == *"$subj"* ]]
	# the comma form gives the same bytes
	[ "$("$MKPKI" subject-der "C=CZ, O=Ministerstvo vnitra, organizationIdentifier=NTRCZ-00007064, OU=Odbor eGovernmentu, CN=Jan Novák, serialNumber=P123456")" = "$subj" ]
}

@test "SKI is the SHA-1 of the key bits and AKI the issuing CA's SKI" {
	soft_key
	"$MKPKI" issue "$PKI" commercial "$W/pub.pem" "$W/c.crt" -1d +365d
	ski=$(openssl x509 -in "$W/c.crt" -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' :' | tr A-F a-f)
	# independent computation: the BIT STRING of the SubjectPublicKeyInfo
	# (asn1parse's second element), minus its unused-bits octet
	openssl pkey -pubin -in "$W/pub.pem" -outform DER -out "$W/spki.der"
	off=$(openssl asn1parse -inform DER -in "$W/spki.der" | awk '/BIT STRING/ { sub(/:.*/, ""); gsub(/ /, ""); print }')
	hl=$(openssl asn1parse -inform DER -in "$W/spki.der" | awk '/BIT STRING/ { sub(/.*hl=/, ""); sub(/ .*/, ""); print }')
	tail -c +$((off + hl + 2)) "$W/spki.der" >"$W/bits"
	[ "$(sha1sum <"$W/bits" | cut -d' ' -f1)" = "$ski" ]
	[ "$(cert_key_id "$W/c.crt")" = "$ski" ]
	aki=$(openssl x509 -in "$W/c.crt" -noout -ext authorityKeyIdentifier | tail -1 | tr -d ' :')
	caski=$(openssl x509 -in "$PKI/public-ca.crt" -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' :')
	[ -n "$aki" ] && [ "$aki" = "$caski" ]
}

@test "absolute dates: UTCTime before 2050, GeneralizedTime from 2050" {
	soft_key
	"$MKPKI" issue "$PKI" commercial "$W/pub.pem" "$W/c.crt" 20200101000000Z 20510630120000Z
	[ "$(cert_not_before_iso "$W/c.crt")" = 2020-01-01T00:00:00Z ]
	[ "$(cert_not_after_iso "$W/c.crt")" = 2051-06-30T12:00:00Z ]
	run openssl asn1parse -in "$W/c.crt"
	[[ $output == *"UTCTIME           :200101000000Z"* ]]
	[[ $output == *"GENERALIZEDTIME   :20510630120000Z"* ]]
}

@test "relative dates count from now: past, expiring and fresh certificates" {
	soft_key
	now=$(date +%s)
	MKPKI_NOW=$now "$MKPKI" issue "$PKI" commercial "$W/pub.pem" "$W/old.crt" -400d -35d
	MKPKI_NOW=$now "$MKPKI" issue "$PKI" qualified "$W/pub.pem" "$W/exp.crt" -355d +10d1h
	MKPKI_NOW=$now "$MKPKI" issue "$PKI" qualified "$W/pub.pem" "$W/new.crt" now +365d
	iso() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
	[ "$(cert_not_before_iso "$W/old.crt")" = "$(iso $((now - 400 * 86400)))" ]
	[ "$(cert_not_after_iso "$W/old.crt")" = "$(iso $((now - 35 * 86400)))" ]
	[ "$(cert_not_after_iso "$W/exp.crt")" = "$(iso $((now + 10 * 86400 + 3600)))" ]
	[ "$(cert_not_before_iso "$W/new.crt")" = "$(iso "$now")" ]
	# openssl agrees on which is expired and which expires within 11 days
	run openssl x509 -in "$W/old.crt" -noout -checkend 0
	[ "$status" -eq 1 ]
	run openssl x509 -in "$W/exp.crt" -noout -checkend $((11 * 86400))
	[ "$status" -eq 1 ]
	run openssl x509 -in "$W/exp.crt" -noout -checkend $((10 * 86400))
	[ "$status" -eq 0 ]
	run openssl x509 -in "$W/new.crt" -noout -checkend $((364 * 86400))
	[ "$status" -eq 0 ]
}

@test "openssl verify passes for valid certificates and fails for an expired one" {
	soft_key
	"$MKPKI" issue "$PKI" qualified "$W/pub.pem" "$W/q.crt" -1d +10d
	"$MKPKI" issue "$PKI" commercial "$W/pub.pem" "$W/c.crt" -1d +10d
	"$MKPKI" issue "$PKI" commercial "$W/pub.pem" "$W/x.crt" -400d -35d
	run verify "$W/q.crt" "$W/c.crt"
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "$W/q.crt: OK" ]
	[ "${lines[1]}" = "$W/c.crt: OK" ]
	run verify "$W/x.crt"
	[ "$status" -ne 0 ]
	[[ $output == *"certificate has expired"* ]]
	# a certificate claiming the wrong issuer does not verify against it
	run openssl verify -CAfile "$PKI/root.crt" -untrusted "$PKI/public-ca.crt" "$W/q.crt"
	[ "$status" -ne 0 ]
	# EC public keys are certified too
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$W/ec.pem"
	openssl pkey -in "$W/ec.pem" -pubout -out "$W/ecpub.pem"
	"$MKPKI" issue "$PKI" qualified "$W/ecpub.pem" "$W/e.crt" -1d +10d
	run verify "$W/e.crt"
	[ "$status" -eq 0 ]
	[ "$(cert_key_id "$W/e.crt")" = "$(cert_key_id "$W/ec.pem")" ]
}

@test "a given SERIAL_HEX is used; the default serial is 16 random bytes, positive" {
	soft_key
	"$MKPKI" issue "$PKI" qualified "$W/pub.pem" "$W/s.crt" -1d +10d "" 0x7A:bc:00:01
	[ "$(cert_serial_hex "$W/s.crt")" = 7ABC0001 ]
	"$MKPKI" issue "$PKI" qualified "$W/pub.pem" "$W/a.crt" -1d +10d
	"$MKPKI" issue "$PKI" qualified "$W/pub.pem" "$W/b.crt" -1d +10d
	a=$(cert_serial_hex "$W/a.crt")
	b=$(cert_serial_hex "$W/b.crt")
	[ "$a" != "$b" ]
	[[ $a =~ ^[0-7][0-9A-F]{31}$ && $a != 00* ]]
	[[ $b =~ ^[0-7][0-9A-F]{31}$ && $b != 00* ]]
	# DER: INTEGER of exactly 16 content bytes
	[[ $(der_hex "$W/a.crt") == *0210${a,,}* ]]
}

@test "mkpki refuses a bad type, date or subject attribute" {
	soft_key
	run "$MKPKI" issue "$PKI" personal "$W/pub.pem" "$W/x.crt" -1d +1d
	[ "$status" -ne 0 ]
	[[ $output == *"qualified, seal or commercial"* ]]
	run "$MKPKI" issue "$PKI" qualified "$W/pub.pem" "$W/x.crt" 2026-01-01 +1d
	[ "$status" -ne 0 ]
	[[ $output == *"bad date"* ]]
	run "$MKPKI" issue "$PKI" qualified "$W/pub.pem" "$W/x.crt" -1d +1y
	[ "$status" -ne 0 ]
	run "$MKPKI" issue "$PKI" qualified "$W/pub.pem" "$W/x.crt" -1d +1d "/CN=x/XX=y"
	[ "$status" -ne 0 ]
	[[ $output == *"unknown subject attribute 'XX'"* ]]
	[ ! -e "$W/x.crt" ]
	run "$MKPKI" issue "$W/nowhere" qualified "$W/pub.pem" "$W/x.crt" -1d +1d
	[ "$status" -ne 0 ]
	[[ $output == *"no test PKI"* ]]
}

# ------------------------------------------------------------------ tokens

@test "softhsm_token: own softhsm2.conf, PIN file, URI, and a token pkcs11-tool sees" {
	[ "$SOFTHSM2_CONF" = "$BATS_TEST_TMPDIR/softhsm/softhsm2.conf" ]
	grep -qx "directories.tokendir = $BATS_TEST_TMPDIR/softhsm/tokens" "$SOFTHSM2_CONF"
	grep -qx 'objectstore.backend = file' "$SOFTHSM2_CONF"
	grep -qx 'log.level = ERROR' "$SOFTHSM2_CONF"
	[ "$PKCS11_MODULE" = /usr/lib/softhsm/libsofthsm2.so ]
	[ "$TOKEN_LABEL" = psrenew-test ]
	[ "$TOKEN_URI" = "pkcs11:token=psrenew-test" ]
	[ "$PIN" = 1234 ]
	[ "$(stat -c %a "$PIN_FILE")" = 600 ]
	[ "$(stat -c %s "$PIN_FILE")" -eq 4 ]
	[ "$(cat "$PIN_FILE")" = 1234 ]
	[ -e "$TOKEN_DIR/token.object" ]
	run pkcs11-tool --module "$PKCS11_MODULE" -L
	[[ $output == *"token label        : psrenew-test"* ]]
	[[ $output == *"PIN initialized"* ]]
	# the user PIN and the SO PIN work
	run pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --pin "$PIN" -O
	[ "$status" -eq 0 ]
	run pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --login-type so --so-pin 12345678 --init-pin --new-pin "$PIN"
	[ "$status" -eq 0 ]
	run pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --login-type so --so-pin 87654321 --init-pin --new-pin "$PIN"
	[ "$status" -ne 0 ]
	run pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --pin 9999 -O
	[ "$status" -ne 0 ]
}

@test "softhsm_token twice: two tokens in one store; a label cannot be reused" {
	softhsm_token "second token"
	[ "$TOKEN_LABEL" = "second token" ]
	[ "$TOKEN_URI" = "pkcs11:token=second%20token" ]
	[ "$SOFTHSM2_CONF" = "$BATS_TEST_TMPDIR/softhsm/softhsm2.conf" ]
	run p11tool --provider "$PKCS11_MODULE" --list-tokens
	[[ $output == *"Label: psrenew-test"* ]]
	[[ $output == *"Label: second token"* ]]
	dirs=("$BATS_TEST_TMPDIR"/softhsm/tokens/*/)
	[ "${#dirs[@]}" -eq 2 ]
	run softhsm_token psrenew-test
	[ "$status" -ne 0 ]
	[[ $output == *"labelled 'psrenew-test' already"* ]]
}

@test "token_cert: the key pair is on the token and shares the certificate's ID (SHA-1 of the public key)" {
	id=$(token_cert qualified -1d +365d)
	[[ $id =~ ^[0-9a-f]{40}$ ]]
	cert=$BATS_TEST_TMPDIR/certs/$id.pem
	[ -s "$cert" ]
	[ "$(cert_key_id "$cert")" = "$id" ]
	# SKI (hash method) is the same SHA-1: an independent check of the ID
	ski=$(openssl x509 -in "$cert" -noout -ext subjectKeyIdentifier | tail -1 | tr -d ' :' | tr A-F a-f)
	[ "$ski" = "$id" ]
	run pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" -O --login --pin "$PIN"
	[ "$status" -eq 0 ]
	[ "$(grep -c "ID:  *$id\$" <<<"$output")" -eq 3 ] # private key, public key, certificate
	[[ $output == *"Private Key Object; RSA"* ]]
	[[ $output == *"Certificate Object; type = X.509 cert"* ]]
	[[ $output == *"label:      qualified-1"* ]]
	# nothing left under the temporary ID
	[ "$(grep -c 'ID:' <<<"$output")" -eq 3 ]
	# the certificate on the token is the one in certs/
	pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" \
		--read-object --type cert --id "$id" -o "$W/read.der"
	[ "$(openssl x509 -inform DER -in "$W/read.der" -outform DER | sha1sum)" = \
		"$(openssl x509 -in "$cert" -outform DER | sha1sum)" ]
	# the private key on the token signs, and the certificate verifies it
	echo "hello" >"$W/data"
	pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --pin "$PIN" \
		--sign --id "$id" -m SHA256-RSA-PKCS --input-file "$W/data" --output-file "$W/sig" 2>/dev/null
	openssl x509 -in "$cert" -noout -pubkey >"$W/certpub.pem"
	run openssl dgst -sha256 -verify "$W/certpub.pem" -signature "$W/sig" "$W/data"
	[ "$output" = "Verified OK" ]
	run verify "$cert"
	[ "$status" -eq 0 ]
}

@test "token_cert: EC key, given label, ID and subject" {
	id=$(MKPKI_EMAIL=petra.dvorakova@example.cz token_cert commercial -1d +30d "Petra EC" A1B2C3 "$PETRA_SUBJECT" ec)
	[ "$id" = a1b2c3 ]
	cert=$BATS_TEST_TMPDIR/certs/a1b2c3.pem
	run openssl x509 -in "$cert" -noout -subject -ext subjectAltName -nameopt utf8,sep_comma_plus_space
	[[ ${lines[0]} == *"CN=Petra Dvořáková, serialNumber=P654321" ]]
	[[ $output == *"email:petra.dvorakova@example.cz"* ]]
	run openssl x509 -in "$cert" -noout -text
	[[ $output == *"ASN1 OID: prime256v1"* ]]
	run pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" -O --login --pin "$PIN"
	[[ $output == *"Private Key Object; EC"* ]]
	[ "$(grep -c 'ID:  *a1b2c3$' <<<"$output")" -eq 3 ]
	[ "$(grep -c 'label:      Petra EC$' <<<"$output")" -eq 3 ]
}

@test "token_cert_only: the certificate is on the token, the key is not" {
	id=$(token_cert_only commercial -1d +30d)
	cert=$BATS_TEST_TMPDIR/certs/$id.pem
	[ -s "$BATS_TEST_TMPDIR/certs/$id.key" ]
	[ "$(cert_key_id "$BATS_TEST_TMPDIR/certs/$id.key")" = "$id" ]
	[ "$(cert_key_id "$cert")" = "$id" ]
	run pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" -O --login --pin "$PIN"
	[ "$(grep -c '^Certificate Object' <<<"$output")" -eq 1 ]
	[ "$(grep -c 'Key Object' <<<"$output")" -eq 0 ]
	[[ $output == *"ID:         $id"* ]]
	[[ $output == *"label:      commercial-1"* ]]
	[ "$(p11_count_certs)" -eq 1 ]
}

@test "demo_token: qualified and commercial expiring in 10 days, one expired, one fresh for another holder" {
	demo_token
	ids="$QUAL_ID $COMM_ID $EXPIRED_ID $FRESH_ID"
	[ "$(tr ' ' '\n' <<<"$ids" | sort -u | grep -c '^[0-9a-f]\{40\}$')" -eq 4 ]
	c=$BATS_TEST_TMPDIR/certs
	# types
	[ "$(cert_qc_statements "$c/$QUAL_ID.pem" | head -1)" = 0.4.0.1862.1.1 ]
	[ "$(cert_qc_statements "$c/$FRESH_ID.pem" | head -1)" = 0.4.0.1862.1.1 ]
	[ -z "$(cert_qc_statements "$c/$COMM_ID.pem")" ]
	[ -z "$(cert_qc_statements "$c/$EXPIRED_ID.pem")" ]
	# dates: 10 days (and an hour) left; expired; fresh
	for id in $QUAL_ID $COMM_ID; do
		run openssl x509 -in "$c/$id.pem" -noout -checkend $((10 * 86400))
		[ "$status" -eq 0 ]
		run openssl x509 -in "$c/$id.pem" -noout -checkend $((11 * 86400))
		[ "$status" -eq 1 ]
	done
	run openssl x509 -in "$c/$EXPIRED_ID.pem" -noout -checkend 0
	[ "$status" -eq 1 ]
	run openssl x509 -in "$c/$FRESH_ID.pem" -noout -checkend $((300 * 86400))
	[ "$status" -eq 0 ]
	# holders
	run openssl x509 -in "$c/$FRESH_ID.pem" -noout -subject -ext subjectAltName -nameopt utf8,sep_comma_plus_space
	[[ ${lines[0]} == *"CN=Petra Dvořáková, serialNumber=P654321" ]]
	[[ $output == *"email:petra.dvorakova@example.cz"* ]]
	for id in $QUAL_ID $COMM_ID $EXPIRED_ID; do
		run openssl x509 -in "$c/$id.pem" -noout -subject -nameopt utf8,sep_comma_plus_space
		[[ $output == *"CN=Jan Novák, serialNumber=P123456" ]]
	done
	run verify "$c/$QUAL_ID.pem" "$c/$COMM_ID.pem" "$c/$FRESH_ID.pem"
	[ "$status" -eq 0 ]
	# on the token: four certificates, each with its private key
	run pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" -O --login --pin "$PIN"
	[ "$(grep -c '^Certificate Object' <<<"$output")" -eq 4 ]
	[ "$(grep -c '^Private Key Object' <<<"$output")" -eq 4 ]
	for id in $ids; do
		[ "$(grep -c "ID:  *$id\$" <<<"$output")" -eq 3 ]
	done
	for l in qualified-expiring commercial-expiring commercial-expired qualified-fresh; do
		[[ $output == *"label:      $l"* ]]
	done
}

@test "demo_token copies a kept demo token into an empty token, and builds anew on a used one" {
	demo_token # builds, or restores what an earlier test kept
	first="$QUAL_ID $COMM_ID $EXPIRED_ID $FRESH_ID"
	cache=$(echo "$BATS_RUN_TMPDIR"/demo-token/*/psrenew-test)
	[ -e "$cache/.done" ]
	# a new store with an empty token of the same label: restored from the cache
	rm -rf "$BATS_TEST_TMPDIR/softhsm" "$BATS_TEST_TMPDIR/certs"
	unset TOKEN_LABEL QUAL_ID COMM_ID EXPIRED_ID FRESH_ID
	softhsm_token
	demo_token
	[ "$QUAL_ID $COMM_ID $EXPIRED_ID $FRESH_ID" = "$first" ]
	[ -s "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem" ]
	run pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" -O --login --pin "$PIN"
	[ "$(grep -c '^Certificate Object' <<<"$output")" -eq 4 ]
	[ "$(grep -c '^Private Key Object' <<<"$output")" -eq 4 ]
	# the restored private key works with the user PIN and matches its certificate
	echo "hello" >"$W/data"
	pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --pin "$PIN" \
		--sign --id "$COMM_ID" -m SHA256-RSA-PKCS --input-file "$W/data" --output-file "$W/sig" 2>/dev/null
	openssl x509 -in "$BATS_TEST_TMPDIR/certs/$COMM_ID.pem" -noout -pubkey >"$W/pub.pem"
	run openssl dgst -sha256 -verify "$W/pub.pem" -signature "$W/sig" "$W/data"
	[ "$output" = "Verified OK" ]
	# a token that already holds something is never overwritten
	softhsm_token used
	other=$(token_cert_only commercial -1d +30d)
	demo_token
	[ "$QUAL_ID" != "${first%% *}" ]
	[ "$(p11_count_certs)" -eq 5 ]
	p11_list_certs | grep -q "ID:  *$other\$"
}

@test "p11tool --list-all-certs sees the certificates token_cert wrote" {
	demo_token
	run p11tool --provider "$PKCS11_MODULE" --list-all-certs "$TOKEN_URI"
	[ "$status" -eq 0 ]
	[ "$(grep -c '^Object ' <<<"$output")" -eq 4 ]
	for id in $QUAL_ID $COMM_ID $EXPIRED_ID $FRESH_ID; do
		colons=$(sed 's/../&:/g; s/:$//' <<<"$id")
		[[ $output == *"ID: $colons"* ]]
	done
	[[ $output == *"Label: qualified-expiring"* ]]
	[[ $output == *"Type: X.509 Certificate (RSA-2048)"* ]]
	# p11tool reads the same DER back
	p11tool --provider "$PKCS11_MODULE" --export "$TOKEN_URI;object=qualified-fresh;type=cert" >"$W/fresh.pem"
	[ "$(der_hex "$W/fresh.pem")" = "$(der_hex "$BATS_TEST_TMPDIR/certs/$FRESH_ID.pem")" ]
}

@test "token_fill_certs 50 writes 50 certificates with distinct IDs that the tools read" {
	token_fill_certs 50
	[ "$(p11_count_certs)" -eq 50 ]
	run p11_list_certs
	[ "$(grep -c 'label:      fill-00[0-9][0-9]$' <<<"$output")" -eq 50 ]
	[ "$(grep 'ID:' <<<"$output" | sort -u | wc -l)" -eq 50 ]
	[[ $output == *"label:      fill-0001"* && $output == *"label:      fill-0050"* ]]
	index=$BATS_TEST_TMPDIR/certs/fill/index
	[ "$(wc -l <"$index")" -eq 50 ]
	# one entry: the token's object has the ID, serial and subject of its file
	IFS=$'\t' read -r id label file < <(sed -n 17p "$index")
	[ "$label" = fill-0017 ]
	[ "$(openssl x509 -in "$file" -outform DER | sha1sum | cut -d' ' -f1)" = "$id" ]
	block=$(grep -B4 "ID:  *$id\$" <<<"$output")
	[[ $block == *"label:      fill-0017"* ]]
	[[ $block == *"serial:     $(cert_serial_hex "$file")"* ]]
	[[ $block == *"CN=V\xC3\xBDpl\xC5\x88ov\xC3\xBD Certifik\xC3\xA1t/serialNumber=P000000"* ]]
	pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" \
		--read-object --type cert --id "$id" -o "$W/read.der"
	cmp "$W/read.der" <(openssl x509 -in "$file" -outform DER)
	run verify "$file"
	[ "$status" -eq 0 ]
	# p11tool sees them as well; a second call numbers on
	[ "$(p11tool --provider "$PKCS11_MODULE" --list-all-certs "$TOKEN_URI" | grep -c '^Object ')" -eq 50 ]
	token_fill_certs 2 qualified
	[ "$(p11_count_certs)" -eq 52 ]
	p11_list_certs | grep -q 'label:      fill-0052$'
	[ -n "$(cert_qc_statements "$(tail -1 "$index" | cut -f3)")" ]
}

@test "cert_serial_hex and cert_not_after_iso print what openssl and pkcs11-tool say" {
	id=$(token_cert_only commercial 20240229235959Z 20300102030405Z "" "" "" ec)
	cert=$BATS_TEST_TMPDIR/certs/$id.pem
	[ "$(cert_not_after_iso "$cert")" = 2030-01-02T03:04:05Z ]
	[ "$(cert_not_before_iso "$cert")" = 2024-02-29T23:59:59Z ]
	serial=$(cert_serial_hex "$cert")
	[[ $serial =~ ^[0-9A-F]{32}$ ]]
	[ "serial=$serial" = "$(openssl x509 -in "$cert" -noout -serial)" ]
	# DER input too
	openssl x509 -in "$cert" -outform DER -out "$W/c.der"
	[ "$(cert_serial_hex "$W/c.der")" = "$serial" ]
	run p11_list_certs
	[[ $output == *"serial:     $serial"* ]]
}

@test "pki_dir builds the PKI once and honours PSRENEW_TEST_CACHE" {
	[ "$(pki_dir)" = "$PKI" ]
	[[ $PKI == "$BATS_RUN_TMPDIR"/pki-* ]]
	root=$(sha1sum <"$PKI/root.crt")
	[ "$(sha1sum <"$(pki_dir)/root.crt")" = "$root" ]
	# parallel builders of one cache: all succeed, one PKI results
	export PSRENEW_TEST_CACHE=$W/cache
	for i in 1 2 3; do (pki_dir >"$W/p$i") & done
	wait
	p=$(cat "$W/p1")
	[[ $p == "$W/cache/pki-"* ]]
	[ "$(cat "$W"/p[1-3] | sort -u)" = "$p" ]
	[ "$(ls -A "$W/cache")" = "${p##*/}" ] # no temporary directories left
	[ "$(sha1sum <"$p/root.crt")" != "$root" ]
	openssl verify -CAfile "$p/root.crt" "$p/qualified-ca.crt" "$p/public-ca.crt"
	# later calls find it
	stamp=$(stat -c %Y.%i "$p/root.crt")
	[ "$(pki_dir)" = "$p" ]
	[ "$(stat -c %Y.%i "$p/root.crt")" = "$stamp" ]
}

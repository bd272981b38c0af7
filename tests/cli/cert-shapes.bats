#!/usr/bin/env bats
# What a certificate can do, from its own extensions: QcType (esign, eseal,
# web; ETSI EN 319 412-5), login (clientAuth in the EKU, or no EKU) and the
# holder's id (subject serialNumber), on certificates shaped like
# PostSignum's: a qualified personal one (QcCompliance, QcType esign,
# emailProtection and MS document signing, no clientAuth), a seal (QcType
# eseal, serialNumber S...), a commercial one with clientAuth, a website's,
# and one without any EKU.

bats_require_minimum_version 1.5.0
load ../lib/psrenew

# shape NAME SUBJECT EXTENSIONS: a certificate from the file's own CA,
# with a software key, in $SHAPES/NAME.pem and .der, valid from now for
# $SHAPE_DAYS days (385, PostSignum's, by default)
shape() {
	local name=$1 subj=$2 ext=$3
	openssl req -utf8 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$SHAPES/$name.key" -subj "$subj" -out "$SHAPES/$name.csr" 2>/dev/null
	printf '%s\n' "[ext]" "$ext" "$QC_SECTIONS" >"$SHAPES/$name.ext"
	openssl x509 -req -in "$SHAPES/$name.csr" -CA "$SHAPES/ca.pem" -CAkey "$SHAPES/ca.key" \
		-set_serial "0x$(openssl rand -hex 8)" -days "${SHAPE_DAYS:-385}" -extfile "$SHAPES/$name.ext" \
		-extensions ext -out "$SHAPES/$name.pem" 2>/dev/null
	openssl x509 -in "$SHAPES/$name.pem" -outform DER -out "$SHAPES/$name.der"
}

# QCStatements: QcCompliance plus a QcType (RFC 3739, ETSI EN 319 412-5)
QC_SECTIONS='
[qc_esign]
compliance = SEQUENCE:qcc
type = SEQUENCE:qct_esign
[qc_eseal]
compliance = SEQUENCE:qcc
type = SEQUENCE:qct_eseal
[qc_web]
type = SEQUENCE:qct_web
[qcc]
id = OID:0.4.0.1862.1.1
[qct_esign]
id = OID:0.4.0.1862.1.6
types = SEQUENCE:esign
[qct_eseal]
id = OID:0.4.0.1862.1.6
types = SEQUENCE:eseal
[qct_web]
id = OID:0.4.0.1862.1.6
types = SEQUENCE:web
[esign]
t = OID:0.4.0.1862.1.6.1
[eseal]
t = OID:0.4.0.1862.1.6.2
[web]
t = OID:0.4.0.1862.1.6.3'

setup_file() {
	SHAPES=$BATS_FILE_TMPDIR/shapes
	mkdir -p "$SHAPES"
	openssl req -utf8 -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$SHAPES/ca.key" -subj "/C=CZ/O=Česká pošta, s.p./CN=DEMO PostSignum Qualified CA 5" \
		-days 3650 -out "$SHAPES/ca.pem" 2>/dev/null
	local o="/C=CZ/O=Ministerstvo vnitra/organizationIdentifier=NTRCZ-00007064"
	shape qualified "$o/CN=Jan Novák/serialNumber=P564839" "keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = emailProtection, 1.3.6.1.4.1.311.10.3.12
certificatePolicies = 2.23.134.1.4.1.17.200, 0.4.0.194112.1.0
1.3.6.1.5.5.7.1.3 = ASN1:SEQUENCE:qc_esign"
	shape seal "$o/CN=Podatelna MV/serialNumber=S12345678" "keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = emailProtection, 1.3.6.1.4.1.311.10.3.12
1.3.6.1.5.5.7.1.3 = ASN1:SEQUENCE:qc_eseal"
	shape commercial "$o/CN=Jan Novák/serialNumber=P564839" "keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth, emailProtection"
	shape web "$o/CN=www.example.cz" "extendedKeyUsage = serverAuth
1.3.6.1.5.5.7.1.3 = ASN1:SEQUENCE:qc_web"
	shape plain "/CN=Karel Bez EKU" "keyUsage = critical, digitalSignature"
	export SHAPES
}

setup() {
	psrenew_setup
	softhsm_token shapes
	local i=1 n
	for n in qualified seal commercial web plain; do
		pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --pin "$PIN" \
			--write-object "$SHAPES/$n.der" --type cert --id "0$i" --label "$n" >/dev/null 2>&1
		i=$((i + 1))
	done
}

status_json() {
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --json
	[ "$status" -eq 0 ]
}

of() { # of LABEL FIELD: FIELD of the cert record labelled LABEL
	jq -r --arg l "$1" "select(.label == \$l) | .$2" <<<"$output"
}

@test "cert records say qc_type, can_login and holder_id, from each shape's extensions" {
	status_json
	[ "$(of qualified type)" = qualified ]
	[ "$(of qualified qc_type)" = esign ]
	[ "$(of qualified can_login)" = false ]
	[ "$(of qualified holder_id)" = P564839 ]
	[ "$(of seal type)" = qualified ]
	[ "$(of seal qc_type)" = eseal ]
	[ "$(of seal can_login)" = false ]
	[ "$(of seal holder_id)" = S12345678 ]
	[ "$(of commercial type)" = commercial ]
	[ "$(of commercial qc_type)" = null ]
	[ "$(of commercial can_login)" = true ]
	[ "$(of commercial holder_id)" = P564839 ]
	[ "$(of web qc_type)" = web ]
	[ "$(of web type)" = commercial ] # a QcType without QcCompliance
	[ "$(of web can_login)" = false ]
	[ "$(of web holder_id)" = null ]
	[ "$(of plain can_login)" = true ]
	[ "$(of plain qc_type)" = null ]
	# present as null, not left out
	[ "$(jq -r 'select(.label == "plain") | has("qc_type") and has("holder_id")' <<<"$output")" = true ]
}

@test "ps-status --human shows seals in a table of their own, after the personal certificates" {
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --human
	[ "$status" -eq 0 ]
	seal_head=$(grep -n '^TOKEN .*SEAL *ID$' <<<"$output" | cut -d: -f1)
	[ -n "$seal_head" ]
	seal_row=$(grep -n 'Podatelna MV' <<<"$output" | cut -d: -f1)
	[ "$seal_row" -gt "$seal_head" ]
	[[ $(sed -n "${seal_row}p" <<<"$output") == *S12345678* ]]
	# the personal ones come first, under the HOLDER table
	[ "$(head -1 <<<"$output" | grep -c 'HOLDER')" -eq 1 ]
	for n in "Jan Novák" "Karel Bez EKU"; do
		row=$(grep -n "$n" <<<"$output" | head -1 | cut -d: -f1)
		[ "$row" -lt "$seal_head" ]
	done
	[ "$(grep -c 'Podatelna MV' <<<"$output")" -eq 1 ]
}

@test "ps-jip-setserial --cert passes can_login on; CAAIS refuses a commercial certificate that cannot log in, with the reason" {
	PKI=$(pki_dir)
	WS=$BATS_TEST_TMPDIR/ws
	eval "$("$FIXTURE_ROOT/tests/jip-ws/ws-start" "$WS" "$PKI")"
	# a commercial certificate (no QcCompliance) with no clientAuth
	shape nologin "/C=CZ/O=Ministerstvo vnitra/CN=Jan Novák/serialNumber=P564839" \
		"extendedKeyUsage = emailProtection, 1.3.6.1.4.1.311.10.3.12"
	printf '%s\n' '{"subjects": ["MV"], "admins": {"admin": "Admin-456"}, "users": {"jnovak": {"certs": [], "cas": 1700000000}}}' >"$WS/data.json"
	(umask 077 && printf 'Admin-456' >"$BATS_TEST_TMPDIR/apw")
	(umask 077 && printf '[jip]\nbackend = ws\nws-version = 1.0\nws-url = %s\nca-bundle = %s\n' \
		"$JIPWS_URL/spravadat/ws/call/MV" "$JIPWS_TLS_CA" >"$BATS_TEST_TMPDIR/psrenew.conf")
	export PSRENEW_CONFIG=$BATS_TEST_TMPDIR/psrenew.conf
	run --separate-stderr ps-jip-setserial --user admin --password "file:$BATS_TEST_TMPDIR/apw" \
		--for jnovak --ca "DEMO PostSignum" --cert "$SHAPES/nologin.pem"
	"$FIXTURE_ROOT/tests/jip-ws/ws-stop" "$WS"
	[ "$status" -eq 5 ]
	[ "$(jfield kind <<<"$output")" = error ]
	[ "$(jfield code <<<"$output")" = cannot-login ]
	[[ $(jfield message <<<"$output") == *"cannot log in"*clientAuth* ]]
	! jq -r .method "$WS/log" | grep -q UpdateUser
	[ "$(jq -c '.users.jnovak.certs' "$WS/data.json")" = '[]' ]
}

@test "ps-status --expiring 30,21,7: each certificate says the threshold it crossed, and whether it did so today" {
	softhsm_token reminders
	local d i=1
	for d in 40 25 21 5; do
		SHAPE_DAYS=$d shape "left$d" "/CN=Jan Novák $d/serialNumber=P564839" "extendedKeyUsage = clientAuth"
		pkcs11-tool --module "$PKCS11_MODULE" --token-label "$TOKEN_LABEL" --login --pin "$PIN" \
			--write-object "$SHAPES/left$d.der" --type cert --id "1$i" --label "left$d" >/dev/null 2>&1
		i=$((i + 1))
	done
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --json --expiring 30,21,7
	[ "$status" -eq 3 ]
	[ "$(wc -l <<<"$output")" -eq 3 ]
	[ -z "$(of left40 label)" ]
	[ "$(of left25 threshold_days)" = 30 ]
	[ "$(of left25 threshold_new)" = false ]
	[ "$(of left21 threshold_days)" = 21 ]
	[ "$(of left21 threshold_new)" = true ] # 21 days less the seconds since
	[ "$(of left5 threshold_days)" = 7 ]
	[ "$(of left5 threshold_new)" = false ]
	# in any order; one threshold is still one
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --json --expiring 7,30
	[ "$(of left21 threshold_days)" = 30 ]
	run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --json --expiring 10
	[ "$status" -eq 3 ]
	[ "$(of left5 threshold_days)" = 10 ]
	[ "$(wc -l <<<"$output")" -eq 1 ]
	for bad in 30,,7 30,x 30, -1 36501 1,2,3,4,5,6,7,8,9; do
		run --separate-stderr ps-status --module "$PKCS11_MODULE" --token "$TOKEN_URI" --expiring "$bad"
		[ "$status" -eq 2 ] || { echo "$bad: $status"; false; }
	done
}

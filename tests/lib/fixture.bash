# shellcheck shell=bash disable=SC2034,SC2119,SC2120
# (SC2034: the subjects are for the tests; SC2119/SC2120: optional arguments)
# Test fixtures for psrenew's bats tests: SoftHSM2 tokens holding PostSignum-
# shaped certificates from the test PKI (tests/pki/mkpki).
#
#   load ../lib/fixture          (from tests/cli/*.bats)
#
#   setup() {
#       softhsm_token            # a fresh token for this test
#       demo_token               # QUAL_ID COMM_ID EXPIRED_ID FRESH_ID
#   }
#
# Functions report failures on stderr and return non-zero; they never rely on
# `set -e` (bats turns it off inside `if`, `||` and `$(...)`).
#
# Layout of $BATS_TEST_TMPDIR:
#   softhsm/softhsm2.conf softhsm/tokens/   the SoftHSM2 store of this test
#   softhsm/pin                             PIN_FILE
#   certs/<ID>.pem                          every certificate put on a token
#   certs/<ID>.key                          software keys (token_cert_only)
#   certs/fill/<SERIAL>.pem, certs/fill/index   token_fill_certs
#
# Environment read: PSRENEW_TEST_CACHE (where pki_dir keeps the test PKI
# across runs), PSRENEW_SOFTHSM_MODULE (default
# /usr/lib/softhsm/libsofthsm2.so), MKPKI_EMAIL (subjectAltName of the next
# certificates; see tests/pki/mkpki).

FIXTURE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
MKPKI=$FIXTURE_ROOT/tests/pki/mkpki
SOFTHSM_MODULE=${PSRENEW_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}

# Subjects used by demo_token (DER order, every value a UTF8String).
JAN_SUBJECT='/C=CZ/O=Ministerstvo vnitra/organizationIdentifier=NTRCZ-00007064/OU=Odbor eGovernmentu/CN=Jan Novák/serialNumber=P123456'
PETRA_SUBJECT='/C=CZ/O=Ministerstvo vnitra/organizationIdentifier=NTRCZ-00007064/OU=Odbor eGovernmentu/CN=Petra Dvořáková/serialNumber=P654321'
FILL_SUBJECT='/C=CZ/O=Testovací úřad/CN=Výplňový Certifikát/serialNumber=P000000'

# ------------------------------------------------------------------ internals

_fx_fail() {
	printf 'fixture: %s\n' "$*" >&2
	return 1
}

# _fx_run CMD...: runs CMD with its output kept aside; shows it on failure.
_fx_run() {
	local out
	if ! out=$("$@" 2>&1); then
		printf 'fixture: command failed: %s\n%s\n' "$*" "$out" >&2
		return 1
	fi
}

# _fx_p11 ARGS...: pkcs11-tool on the current token (SoftHSM even when a test
# has unset PKCS11_MODULE to test the tools' own default).
_fx_p11() {
	pkcs11-tool --module "${PKCS11_MODULE:-$SOFTHSM_MODULE}" --token-label "$TOKEN_LABEL" "$@"
}

_fx_need_token() {
	[[ -n ${TOKEN_LABEL:-} && -n ${SOFTHSM2_CONF:-} ]] ||
		_fx_fail "${FUNCNAME[1]}: no token; call softhsm_token first"
}

# _fx_pct STRING: STRING percent-encoded for a pkcs11: URI path attribute.
_fx_pct() {
	local LC_ALL=C s=$1 i c out=''
	for ((i = 0; i < ${#s}; i++)); do
		c=${s:i:1}
		case $c in
		[A-Za-z0-9._~-]) out+=$c ;;
		*) printf -v c '%%%02X' "'$c"; out+=$c ;;
		esac
	done
	printf '%s' "$out"
}

# _fx_rand_hex BYTES: random hex (lower case).
_fx_rand_hex() {
	local n=$1 out='' w
	if [[ -z ${SRANDOM:-} ]]; then
		openssl rand -hex "$n"
		return
	fi
	while ((${#out} < 2 * n)); do
		printf -v w '%08x' "$SRANDOM"
		out+=$w
	done
	printf '%s' "${out:0:2*n}"
}

# _fx_norm_id HEX: lower-case hex, no "0x" or ":".
_fx_norm_id() {
	local s=${1,,}
	s=${s#0x}
	s=${s//:/}
	[[ $s =~ ^([0-9a-f]{2})+$ ]] || _fx_fail "bad ID '$1' (want hex bytes)" || return 1
	printf '%s' "$s"
}

# _fx_next_label PREFIX: PREFIX-N, N counting up within the test.
_fx_next_label() {
	local f=$BATS_TEST_TMPDIR/softhsm/.seq n=0
	[[ -r $f ]] && n=$(<"$f")
	n=$((n + 1))
	printf '%s\n' "$n" >"$f"
	printf '%s-%d' "$1" "$n"
}

# _fx_keytype KEYTYPE: pkcs11-tool's --key-type for rsa, rsa:N, ec, ec:CURVE.
_fx_keytype() {
	case ${1,,} in
	'' | rsa) printf 'rsa:2048' ;;
	rsa:[0-9]*) printf 'rsa:%s' "${1#*:}" ;;
	ec) printf 'EC:prime256v1' ;;
	ec:*) printf 'EC:%s' "${1#*:}" ;;
	*) _fx_fail "key type '$1': want rsa, rsa:BITS, ec or ec:CURVE" ;;
	esac
}

# _fx_genpkey KEYTYPE OUT: a software key like _fx_keytype's.
_fx_genpkey() {
	local kt
	kt=$(_fx_keytype "$1") || return 1
	case $kt in
	rsa:*) _fx_run openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:${kt#rsa:}" -out "$2" ;;
	EC:*) _fx_run openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:${kt#EC:}" -out "$2" ;;
	esac
}

_fx_check_type() {
	[[ $1 == qualified || $1 == commercial ]] ||
		_fx_fail "${FUNCNAME[1]}: TYPE must be qualified or commercial, not '$1'"
}

# _fx_issue_and_store TYPE NB NA LABEL ID SUBJECT PUB.pem WORKDIR: issues the
# certificate for PUB.pem, writes it onto the token with ID and LABEL and
# keeps it as certs/<ID>.pem.
_fx_issue_and_store() {
	local type=$1 nb=$2 na=$3 label=$4 id=$5 subject=$6 pub=$7 work=$8 pki
	pki=$(pki_dir) || return 1
	_fx_run "$MKPKI" issue "$pki" "$type" "$pub" "$work/cert.pem" "$nb" "$na" "$subject" || return 1
	_fx_run openssl x509 -in "$work/cert.pem" -outform DER -out "$work/cert.der" || return 1
	_fx_run _fx_p11 --login --pin "$PIN" --write-object "$work/cert.der" \
		--type cert --id "$id" --label "$label" || return 1
	mv "$work/cert.pem" "$BATS_TEST_TMPDIR/certs/$id.pem"
}

# The bulk writer: one PKCS#11 session, one C_CreateObject per certificate,
# with the attributes pkcs11-tool --write-object sets (class, cert type,
# token, private=false, label, id, value, subject, issuer, serial number).
# A pkcs11-tool process per certificate costs 40-100 ms, growing as the token
# fills (SoftHSM reads every object file at start-up): 39 s for 550. Here a
# certificate costs about 7 ms, nearly all of it SoftHSM writing its file.
# argv: MODULE TOKEN_LABEL PIN_FILE MANIFEST [KEY.der]; MANIFEST lines:
# LABEL<TAB>PATH (PEM or DER); prints ID<TAB>LABEL<TAB>PATH for each
# certificate written, the ID being the SHA-1 of the certificate's DER. With
# KEY.der (an RSAPrivateKey, the key every certificate was issued for), each
# certificate also gets its key pair: a private and a public key object with
# the same CKA_ID and CKA_LABEL.
_FX_BULK_WRITER=$(
	cat <<'PY'
import base64, ctypes, hashlib, sys

mod, token, pin_file, manifest = sys.argv[1:5]
keyder = open(sys.argv[5], "rb").read() if len(sys.argv) > 5 else None
lib = ctypes.CDLL(mod)
UL = ctypes.c_ulong

class Attr(ctypes.Structure):
    _fields_ = [("type", UL), ("p", ctypes.c_void_p), ("n", UL)]

def ck(rv, what):
    if rv not in (0, 0x100):  # CKR_OK, CKR_USER_ALREADY_LOGGED_IN
        sys.exit("bulk writer: %s: CKR 0x%x" % (what, rv))

def tlv(d, o):
    """(offset of contents, end) of the DER element at o."""
    n = d[o + 1]
    if n < 0x80:
        return o + 2, o + 2 + n
    k = n & 0x7F
    n = int.from_bytes(d[o + 2:o + 2 + k], "big")
    return o + 2 + k, o + 2 + k + n

def fields(der):
    c, e = tlv(der, 0)          # Certificate
    c, e = tlv(der, c)          # TBSCertificate
    out = []
    while c < e:
        s, t = tlv(der, c)
        out.append(der[c:t])
        c = t
    if out[0][0] == 0xA0:       # [0] version
        out = out[1:]
    return out[0], out[2], out[4]   # serial, issuer, subject

def load(path):
    data = open(path, "rb").read()
    if b"-----BEGIN" in data:
        b64 = data.split(b"-----")[2]
        data = base64.b64decode(b"".join(b64.split()))
    return data

for f in ("C_Initialize", "C_GetSlotList", "C_GetTokenInfo", "C_OpenSession",
          "C_Login", "C_CreateObject", "C_CloseSession", "C_Finalize"):
    getattr(lib, f).restype = UL
ck(lib.C_Initialize(None), "C_Initialize")
n = UL(0)
ck(lib.C_GetSlotList(ctypes.c_ubyte(1), None, ctypes.byref(n)), "C_GetSlotList")
slots = (UL * max(n.value, 1))()
ck(lib.C_GetSlotList(ctypes.c_ubyte(1), slots, ctypes.byref(n)), "C_GetSlotList")
info = ctypes.create_string_buffer(1024)  # CK_TOKEN_INFO starts with label[32]
slot = None
for s in slots[:n.value]:
    ck(lib.C_GetTokenInfo(UL(s), info), "C_GetTokenInfo")
    if info.raw[:32].rstrip(b" ") == token.encode():
        slot = s
        break
if slot is None:
    sys.exit("bulk writer: no token labelled %r" % token)
h = UL(0)
ck(lib.C_OpenSession(UL(slot), UL(6), None, None, ctypes.byref(h)), "C_OpenSession")
pin = open(pin_file, "rb").read()
ck(lib.C_Login(h, UL(1), ctypes.c_char_p(pin), UL(len(pin))), "C_Login")

def attr(t, v):
    buf = ctypes.create_string_buffer(v, len(v))
    keep.append(buf)
    return Attr(t, ctypes.cast(buf, ctypes.c_void_p), len(v))

ulong = lambda v: bytes(UL(v))

def rsa_ints(der):
    """n, e, d, p, q, dp, dq, qinv of an RSAPrivateKey (unsigned bytes)."""
    c, e = tlv(der, 0)
    out = []
    while c < e:
        s, t = tlv(der, c)
        out.append(der[s:t].lstrip(b"\x00") or b"\x00")
        c = t
    return out[1:9]

def write_keys(label, cid, subject):
    n, e, d, p, q, dp, dq, qi = rsa_ints(keyder)
    common = [attr(0x001, b"\x01"), attr(0x003, label), attr(0x102, cid),
              attr(0x100, ulong(0)), attr(0x120, n), attr(0x122, e)]
    priv = common + [attr(0x000, ulong(3)), attr(0x002, b"\x01"),
                     attr(0x103, b"\x01"), attr(0x108, b"\x01"),
                     attr(0x101, subject), attr(0x123, d), attr(0x124, p),
                     attr(0x125, q), attr(0x126, dp), attr(0x127, dq),
                     attr(0x128, qi)]
    pub = common + [attr(0x000, ulong(2)), attr(0x002, b"\x00"),
                    attr(0x10A, b"\x01"), attr(0x101, subject)]
    for t, what in ((priv, "private"), (pub, "public")):
        arr = (Attr * len(t))(*t)
        obj = UL(0)
        ck(lib.C_CreateObject(h, arr, UL(len(t)), ctypes.byref(obj)),
           "C_CreateObject %s key %s" % (what, label.decode()))

for line in open(manifest, encoding="utf-8"):
    label, path = line.rstrip("\n").split("\t")
    der = load(path)
    serial, issuer, subject = fields(der)
    cid = hashlib.sha1(der).digest()
    keep = []
    tmpl = [attr(0x000, ulong(1)),       # CKA_CLASS = CKO_CERTIFICATE
            attr(0x080, ulong(0)),       # CKA_CERTIFICATE_TYPE = CKC_X_509
            attr(0x001, b"\x01"),        # CKA_TOKEN
            attr(0x002, b"\x00"),        # CKA_PRIVATE
            attr(0x003, label.encode()), # CKA_LABEL
            attr(0x102, cid),            # CKA_ID
            attr(0x011, der),            # CKA_VALUE
            attr(0x101, subject),        # CKA_SUBJECT
            attr(0x081, issuer),         # CKA_ISSUER
            attr(0x082, serial)]         # CKA_SERIAL_NUMBER (DER INTEGER)
    arr = (Attr * len(tmpl))(*tmpl)
    obj = UL(0)
    ck(lib.C_CreateObject(h, arr, UL(len(tmpl)), ctypes.byref(obj)), "C_CreateObject " + path)
    if keyder:
        write_keys(label.encode(), cid, subject)
    print("%s\t%s\t%s" % (cid.hex(), label, path))
lib.C_CloseSession(h)
lib.C_Finalize(None)
PY
)

# ------------------------------------------------------------------- tokens

# softhsm_token [LABEL]
#   Creates (once per test) $BATS_TEST_TMPDIR/softhsm/ with its own
#   softhsm2.conf (directories.tokendir, objectstore.backend = file,
#   log.level = ERROR), exports SOFTHSM2_CONF and initialises a token in a
#   free slot: label LABEL (default psrenew-test), SO PIN 12345678, user PIN
#   1234. Exports PKCS11_MODULE (the SoftHSM2 module), TOKEN_LABEL, TOKEN_URI
#   ("pkcs11:token=<label>", percent-encoded), PIN=1234, SO_PIN=12345678 and
#   PIN_FILE (mode 0600, the PIN without a newline). Each call adds a token to
#   the same store and makes it the current one (the one the other functions
#   use); a label can be used once per test. Also exports TOKEN_DIR, the
#   token's directory in the store.
softhsm_token() {
	local label=${1:-psrenew-test} dir=${BATS_TEST_TMPDIR:-}/softhsm out d
	local -A old=()
	[[ -n ${BATS_TEST_TMPDIR:-} ]] ||
		_fx_fail "softhsm_token: call it from a test or setup() (no BATS_TEST_TMPDIR)" || return 1
	mkdir -p "$dir/tokens" "$BATS_TEST_TMPDIR/certs" || return 1
	if [[ ! -e $dir/softhsm2.conf ]]; then
		printf '%s\n' "directories.tokendir = $dir/tokens" \
			'objectstore.backend = file' 'log.level = ERROR' \
			>"$dir/softhsm2.conf" || return 1
	fi
	export SOFTHSM2_CONF=$dir/softhsm2.conf
	if [[ -e $dir/labels ]] && grep -qxF -- "$label" "$dir/labels"; then
		_fx_fail "softhsm_token: this test has a token labelled '$label' already"
		return 1
	fi
	for d in "$dir"/tokens/*/; do old[$d]=1; done
	out=$(softhsm2-util --init-token --free --label "$label" \
		--so-pin 12345678 --pin 1234 2>&1) ||
		{ _fx_fail "softhsm_token: softhsm2-util: $out"; return 1; }
	TOKEN_DIR=
	for d in "$dir"/tokens/*/; do
		[[ -n ${old[$d]:-} ]] || TOKEN_DIR=${d%/}
	done
	[[ -n $TOKEN_DIR ]] || _fx_fail "softhsm_token: where did the token go?" || return 1
	printf '%s\n' "$label" >>"$dir/labels"
	export PKCS11_MODULE=$SOFTHSM_MODULE TOKEN_LABEL=$label PIN=1234 SO_PIN=12345678 TOKEN_DIR
	TOKEN_URI="pkcs11:token=$(_fx_pct "$label")"
	PIN_FILE=$dir/pin
	(umask 077 && printf '%s' "$PIN" >"$PIN_FILE") || return 1
	export TOKEN_URI PIN_FILE
}

# softhsm_torn_login COPY
#   For kill tests. SoftHSM 2.6.1's file store rewrites the token's
#   token.object (label, serial, flags, the wrapped PIN blobs) in place at
#   every C_Login: it truncates the file to 0 bytes, then writes it again in
#   one write(2). A process killed between the two leaves it empty, and the
#   token then reads as an uninitialised one without a label (no client can
#   rebuild it: the PIN blobs are gone). When the current token's
#   token.object is empty and COPY (the file as it was before the run) is
#   not, puts COPY back and returns 0; otherwise changes nothing and returns
#   1. A login with the right PIN changes nothing in the file but its
#   generation counter, so the copy is the token as the killed run found it.
softhsm_torn_login() {
	local f=$TOKEN_DIR/token.object
	[[ -f $f && ! -s $f && -s $1 ]] || return 1
	cp -p "$1" "$f"
}

# pki_dir
#   Prints the directory of the test PKI (tests/pki/mkpki), building it on
#   first use: in $PSRENEW_TEST_CACHE when set (kept across runs), else in
#   bats' run directory (once per run; $BATS_FILE_TMPDIR when that is
#   unknown). The directory name carries a hash of mkpki and pki.cnf, so a
#   changed PKI recipe never reuses an old cache; mkpki renames a finished PKI
#   into place, so parallel test files racing to build it are safe.
pki_dir() {
	local base dir
	base=${PSRENEW_TEST_CACHE:-${BATS_RUN_TMPDIR:-${BATS_FILE_TMPDIR:-}}}
	[[ -n $base ]] || _fx_fail "pki_dir: not running under bats and no PSRENEW_TEST_CACHE" || return 1
	if [[ -z ${_FX_PKI_HASH:-} ]]; then
		_FX_PKI_HASH=$(cat "$MKPKI" "$FIXTURE_ROOT/tests/pki/pki.cnf" | cksum) || return 1
		_FX_PKI_HASH=${_FX_PKI_HASH%% *}
	fi
	dir=$base/pki-$_FX_PKI_HASH
	if [[ ! -e $dir/.done ]]; then
		_fx_run "$MKPKI" "$dir" || return 1
	fi
	printf '%s\n' "$dir"
}

# token_cert TYPE NOT_BEFORE NOT_AFTER [LABEL] [ID_HEX] [SUBJECT] [KEYTYPE]
#   Generates a key pair ON the current token (pkcs11-tool --keypairgen; KEYTYPE
#   rsa (= rsa:2048, default), rsa:BITS, ec (= EC:prime256v1) or ec:CURVE),
#   issues a TYPE (qualified|commercial) certificate for it from the test PKI
#   (dates and SUBJECT as in `mkpki issue`; empty SUBJECT = Jan Novák) and
#   writes the certificate onto the token with the key's ID and LABEL
#   (default TYPE-N). The ID is ID_HEX when given; otherwise the SHA-1 of the
#   public key (the BIT STRING contents of its SubjectPublicKeyInfo), as
#   PKCS#11 tools and psrenew pair keys and certificates: the key is generated
#   under a random temporary ID, read back, and both halves get the real ID
#   with pkcs11-tool --set-id. Prints the ID (lower-case hex); the certificate
#   stays in $BATS_TEST_TMPDIR/certs/<ID>.pem. Takes 0.6-1.5 s (RSA key
#   generation on SoftHSM varies).
#   MKPKI_EMAIL=... before the call sets the subjectAltName e-mail.
token_cert() {
	local type=$1 nb=$2 na=$3 label=${4:-} id=${5:-} subject=${6:-} kt work genid t
	(($# >= 3)) || _fx_fail "usage: token_cert TYPE NOT_BEFORE NOT_AFTER [LABEL] [ID_HEX] [SUBJECT] [KEYTYPE]" || return 1
	_fx_need_token || return 1
	_fx_check_type "$type" || return 1
	kt=$(_fx_keytype "${7:-}") || return 1
	[[ -n $label ]] || label=$(_fx_next_label "$type")
	if [[ -n $id ]]; then
		id=$(_fx_norm_id "$id") || return 1
		genid=$id
	else
		genid=$(_fx_rand_hex 20)
	fi
	work=$(mktemp -d "$BATS_TEST_TMPDIR/certs/.work.XXXXXX") || return 1
	_fx_run _fx_p11 --login --pin "$PIN" --keypairgen --key-type "$kt" \
		--id "$genid" --label "$label" || return 1
	_fx_run _fx_p11 --read-object --type pubkey --id "$genid" -o "$work/pub.der" || return 1
	_fx_run openssl pkey -pubin -inform DER -in "$work/pub.der" -out "$work/pub.pem" || return 1
	if [[ -z $id ]]; then
		id=$("$MKPKI" keyid "$work/pub.pem") || return 1
		for t in privkey pubkey; do
			_fx_run _fx_p11 --login --pin "$PIN" --type "$t" --id "$genid" \
				--set-id "$id" || return 1
		done
	fi
	_fx_issue_and_store "$type" "$nb" "$na" "$label" "$id" "$subject" \
		"$work/pub.pem" "$work" || return 1
	rm -rf "$work"
	printf '%s\n' "$id"
}

# token_cert_only TYPE NOT_BEFORE NOT_AFTER [LABEL] [ID_HEX] [SUBJECT] [KEYTYPE]
#   Like token_cert, but the key is a software key (openssl genpkey), kept in
#   $BATS_TEST_TMPDIR/certs/<ID>.key and NOT put on the token: only the
#   certificate is written. Default ID: SHA-1 of that key's public key bits.
#   Prints the ID.
token_cert_only() {
	local type=$1 nb=$2 na=$3 label=${4:-} id=${5:-} subject=${6:-} work
	(($# >= 3)) || _fx_fail "usage: token_cert_only TYPE NOT_BEFORE NOT_AFTER [LABEL] [ID_HEX] [SUBJECT] [KEYTYPE]" || return 1
	_fx_need_token || return 1
	_fx_check_type "$type" || return 1
	[[ -n $label ]] || label=$(_fx_next_label "$type")
	work=$(mktemp -d "$BATS_TEST_TMPDIR/certs/.work.XXXXXX") || return 1
	_fx_genpkey "${7:-}" "$work/key.pem" || return 1
	_fx_run openssl pkey -in "$work/key.pem" -pubout -out "$work/pub.pem" || return 1
	if [[ -n $id ]]; then
		id=$(_fx_norm_id "$id") || return 1
	else
		id=$("$MKPKI" keyid "$work/pub.pem") || return 1
	fi
	_fx_issue_and_store "$type" "$nb" "$na" "$label" "$id" "$subject" \
		"$work/pub.pem" "$work" || return 1
	mv "$work/key.pem" "$BATS_TEST_TMPDIR/certs/$id.key"
	rm -rf "$work"
	printf '%s\n' "$id"
}

# token_fill_certs N [TYPE] [NOT_BEFORE] [NOT_AFTER] [SUBJECT]
#   Writes N certificates (no keys) onto the current token, fast: all for one
#   software RSA key (certs/fill/fill.key), issued in one `openssl ca` run
#   (mkpki issue-many) and written in one PKCS#11 session by a small python3
#   ctypes writer (pkcs11-tool per certificate when python3 is missing).
#   Defaults: commercial, -30d, +355d (385 days, as PostSignum), subject "Výplňový Certifikát"
#   ($FILL_SUBJECT: a holder of its own, so the fill never supersedes the
#   demo certificates). Labels fill-0001, fill-0002, ... (counting on across
#   calls). Each CKA_ID is the SHA-1 of the certificate's DER -- NOT of the
#   key, which all of them share: distinct IDs keep the objects apart.
#   Certificates: $BATS_TEST_TMPDIR/certs/fill/<SERIAL>.pem; the file
#   certs/fill/index gets a line "ID<TAB>LABEL<TAB>PATH" per certificate.
#   550 certificates take 5-6 s (one pkcs11-tool per certificate: 40 s).
#   With _FX_FILL_KEYS=1 (token_fill_keyed_certs), each certificate also gets
#   a key pair on the token (fill.key's private and public key under its
#   CKA_ID and label).
token_fill_certs() {
	local n=${1:-} type=${2:-commercial} nb=${3:--30d} na=${4:-+355d} subject=${5:-$FILL_SUBJECT}
	local fill=$BATS_TEST_TMPDIR/certs/fill batch f i=0 label id py
	[[ $n =~ ^[0-9]+$ ]] || _fx_fail "usage: token_fill_certs N [TYPE] [NOT_BEFORE] [NOT_AFTER] [SUBJECT]" || return 1
	_fx_need_token || return 1
	_fx_check_type "$type" || return 1
	((n > 0)) || return 0
	mkdir -p "$fill" || return 1
	if [[ ! -e $fill/fill.key ]]; then
		_fx_genpkey rsa "$fill/fill.key" || return 1
	fi
	[[ -r $fill/.seq ]] && i=$(<"$fill/.seq")
	batch=$(mktemp -d "$fill/.batch.XXXXXX") || return 1
	_fx_run "$MKPKI" issue-many "$(pki_dir)" "$type" "$fill/fill.key" \
		"$batch/out" "$n" "$nb" "$na" "$subject" || return 1
	for f in "$batch"/out/*.pem; do
		i=$((i + 1))
		printf -v label 'fill-%04d' "$i"
		printf '%s\t%s\n' "$label" "$fill/${f##*/}"
	done >"$batch/manifest"
	mv "$batch"/out/*.pem "$fill/" || return 1
	printf '%s\n' "$i" >"$fill/.seq"
	# Debian's python3 first: a pyenv shim in PATH costs 0.3 s per start.
	py=/usr/bin/python3
	[[ -x $py ]] || py=$(command -v python3) || py=
	local keyargs=()
	if [[ ${_FX_FILL_KEYS:-0} == 1 ]]; then
		_fx_run openssl rsa -in "$fill/fill.key" -traditional -outform DER \
			-out "$batch/key.der" || return 1
		_fx_run openssl rsa -in "$fill/fill.key" -pubout -outform DER \
			-out "$batch/pub.der" || return 1
		keyargs=("$batch/key.der")
	fi
	if [[ -n $py ]]; then
		"$py" -c "$_FX_BULK_WRITER" "${PKCS11_MODULE:-$SOFTHSM_MODULE}" "$TOKEN_LABEL" \
			"$PIN_FILE" "$batch/manifest" "${keyargs[@]}" >>"$fill/index" || return 1
	else
		while IFS=$'\t' read -r label f; do
			openssl x509 -in "$f" -outform DER -out "$batch/c.der" || return 1
			id=$(sha1sum <"$batch/c.der") || return 1
			id=${id%% *}
			_fx_run _fx_p11 --write-object "$batch/c.der" --type cert \
				--id "$id" --label "$label" || return 1
			if ((${#keyargs[@]})); then
				_fx_run _fx_p11 --login --pin "$PIN" --write-object "$batch/key.der" \
					--type privkey --id "$id" --label "$label" || return 1
				_fx_run _fx_p11 --login --pin "$PIN" --write-object "$batch/pub.der" \
					--type pubkey --id "$id" --label "$label" || return 1
			fi
			printf '%s\t%s\t%s\n' "$id" "$label" "$f" >>"$fill/index"
		done <"$batch/manifest"
	fi
	rm -rf "$batch"
}

# token_fill_keyed_certs N [TYPE] [NOT_BEFORE] [NOT_AFTER] [SUBJECT]
#   token_fill_certs, each certificate with its key pair on the token (the
#   shared fill key, under the certificate's CKA_ID): a well-filled token of
#   N holders. 60 of them take about 2 s.
token_fill_keyed_certs() {
	_FX_FILL_KEYS=1 token_fill_certs "$@"
}

# stranger_token LABEL
#   Makes the token LABEL (softhsm_token) holding Jan Novák's certificate
#   from "Unknown-CA", a CA outside the test PKI, with its RSA key pair on
#   the token under CKA_ID 5a: a holder no server of the test PKI trusts.
#   The token stays the current one.
stranger_token() {
	local label=$1 w
	softhsm_token "$label" || return 1
	w=$(mktemp -d "$BATS_TEST_TMPDIR/.stranger.XXXXXX") || return 1
	_fx_run openssl req -x509 -newkey rsa:2048 -nodes -keyout "$w/ca.key" \
		-subj /CN=Unknown-CA -days 30 -out "$w/ca.crt" || return 1
	_fx_run _fx_p11 --login --pin "$PIN" --keypairgen --key-type rsa:2048 \
		--id 5a --label s || return 1
	_fx_run _fx_p11 --read-object --type pubkey --id 5a -o "$w/pub.der" || return 1
	_fx_run openssl pkey -pubin -inform DER -in "$w/pub.der" -out "$w/pub.pem" || return 1
	_fx_run openssl req -new -key "$w/ca.key" -subj "/CN=Jan Novák" -utf8 \
		-out "$w/r.pem" || return 1
	_fx_run openssl x509 -req -in "$w/r.pem" -force_pubkey "$w/pub.pem" \
		-CA "$w/ca.crt" -CAkey "$w/ca.key" -days 20 -outform DER -out "$w/c.der" || return 1
	_fx_run _fx_p11 --login --pin "$PIN" --write-object "$w/c.der" --type cert \
		--id 5a --label s || return 1
	rm -rf "$w"
}

# demo_token
#   The token most tests and the demo use (on the current token; calls
#   softhsm_token first when there is none). Four certificates, keys on the
#   token, IDs exported:
#     QUAL_ID     qualified,  Jan Novák, expires in 10 days (+10d1h: whole
#                 days left is 10 for an hour), label qualified-expiring
#     COMM_ID     commercial, Jan Novák, expires in 10 days (+10d1h),
#                 label commercial-expiring
#     EXPIRED_ID  commercial, Jan Novák, expired 35 days ago, label
#                 commercial-expired
#     FRESH_ID    qualified,  Petra Dvořáková (serialNumber=P654321,
#                 petra.dvorakova@example.cz), valid from yesterday for 385
#                 days, label qualified-fresh
#   Certificates in $BATS_TEST_TMPDIR/certs/<ID>.pem.
#   Building it takes 3-6 s (four RSA key pairs on SoftHSM), so the first
#   demo token built on an EMPTY token of a given label is kept for the rest
#   of the bats run ($BATS_RUN_TMPDIR/demo-token/<PKI>/<label>/), and later
#   calls on an empty token of that label (and the same PKI) copy those token
#   files instead (0.1 s): same keys, serials and IDs in every test of a run,
#   dates relative to the run's first build. A token that holds anything is
#   never replaced. FIXTURE_DEMO_CACHE=0 turns the copy off.
demo_token() {
	local cache='' empty=0 pki
	if [[ -z ${TOKEN_LABEL:-} ]]; then softhsm_token || return 1; fi
	if [[ ${FIXTURE_DEMO_CACHE:-1} != 0 && -n ${BATS_RUN_TMPDIR:-} ]]; then
		pki=$(pki_dir | cksum) || return 1 # kept per PKI: a test may switch
		cache=$BATS_RUN_TMPDIR/demo-token/${pki%% *}/$(_fx_pct "$TOKEN_LABEL")
		_fx_token_empty && empty=1
		if ((empty)) && [[ -e $cache/.done ]]; then
			_fx_demo_restore "$cache"
			return
		fi
	fi
	QUAL_ID=$(token_cert qualified -375d +10d1h qualified-expiring) || return 1
	COMM_ID=$(token_cert commercial -375d +10d1h commercial-expiring) || return 1
	EXPIRED_ID=$(token_cert commercial -400d -35d commercial-expired) || return 1
	FRESH_ID=$(MKPKI_EMAIL=petra.dvorakova@example.cz token_cert qualified \
		-1d +384d qualified-fresh "" "$PETRA_SUBJECT") || return 1
	export QUAL_ID COMM_ID EXPIRED_ID FRESH_ID
	if ((empty)); then _fx_demo_save "$cache"; fi
	return 0
}

# _fx_token_empty: true when the current token holds no objects (SoftHSM's
# file store: one OBJECT.object file per object beside token.object).
_fx_token_empty() {
	local f
	for f in "$TOKEN_DIR"/*.object; do
		[[ ${f##*/} == token.object || ! -e $f ]] || return 1
	done
	return 0
}

# _fx_demo_save CACHE: keeps the current (demo) token for _fx_demo_restore.
# Built aside and renamed into place: parallel tests may race; one wins.
_fx_demo_save() {
	local cache=$1 tmp id ok=1
	mkdir -p "${cache%/*}" || return 0
	tmp=$(mktemp -d "$cache.XXXXXX") || return 0
	cp -a "$TOKEN_DIR" "$tmp/" || ok=0
	for id in "$QUAL_ID" "$COMM_ID" "$EXPIRED_ID" "$FRESH_ID"; do
		cp "$BATS_TEST_TMPDIR/certs/$id.pem" "$tmp/" || ok=0
	done
	printf 'QUAL_ID=%s\nCOMM_ID=%s\nEXPIRED_ID=%s\nFRESH_ID=%s\n' \
		"$QUAL_ID" "$COMM_ID" "$EXPIRED_ID" "$FRESH_ID" >"$tmp/ids" || ok=0
	if ((ok)) && touch "$tmp/.done" && mv -T "$tmp" "$cache" 2>/dev/null; then
		return 0
	fi
	rm -rf "$tmp" # another test saved it first, or the copy failed: the
	return 0      # next demo_token is only slower
}

# _fx_demo_restore CACHE: replaces the (empty) current token by the kept one.
_fx_demo_restore() {
	local cache=$1 src name line
	for src in "$cache"/*/; do name=${src%/}; name=${name##*/}; done
	[[ -e $cache/$name/token.object ]] || _fx_fail "demo_token: bad cache $cache" || return 1
	rm -rf "$TOKEN_DIR" || return 1
	TOKEN_DIR=${TOKEN_DIR%/*}/$name
	cp -a "$cache/$name" "$TOKEN_DIR" || return 1
	cp "$cache"/*.pem "$BATS_TEST_TMPDIR/certs/" || return 1
	while IFS= read -r line; do
		case $line in
		QUAL_ID=* | COMM_ID=* | EXPIRED_ID=* | FRESH_ID=*) export "${line%%=*}=${line#*=}" ;;
		esac
	done <"$cache/ids"
	export TOKEN_DIR
}

# --------------------------------------------------------- assertion helpers

# p11_list_certs [ARGS...]
#   `pkcs11-tool -O --type cert` on the current token (ARGS appended, e.g.
#   --login --pin "$PIN").
p11_list_certs() {
	_fx_need_token || return 1
	_fx_p11 -O --type cert "$@"
}

# p11_count_certs: the number of certificate objects on the current token.
p11_count_certs() {
	local out
	out=$(p11_list_certs 2>/dev/null) || return 1
	grep -c '^Certificate Object' <<<"$out" || true
}

# cert_serial_hex FILE: the serial, upper-case hex without separators (as
# openssl prints it: whole bytes, so it may start with 0). FILE: PEM or DER.
cert_serial_hex() {
	local s
	s=$(openssl x509 -in "$1" -noout -serial) || return 1
	printf '%s\n' "${s#serial=}"
}

# cert_not_after_iso FILE / cert_not_before_iso FILE: YYYY-MM-DDTHH:MM:SSZ.
cert_not_after_iso() {
	local s
	s=$(openssl x509 -in "$1" -noout -enddate -dateopt iso_8601) || return 1
	s=${s#notAfter=}
	printf '%s\n' "${s/ /T}"
}

cert_not_before_iso() {
	local s
	s=$(openssl x509 -in "$1" -noout -startdate -dateopt iso_8601) || return 1
	s=${s#notBefore=}
	printf '%s\n' "${s/ /T}"
}

# cert_key_id FILE: SHA-1 (lower-case hex) of the public key bits of a
# certificate or key file -- the CKA_ID token_cert gives its objects.
cert_key_id() {
	"$MKPKI" keyid "$1"
}

# cert_qc_statements FILE: the statementId OIDs in a certificate's (PEM or
# DER) QCStatements extension, one per line; nothing when it has none.
cert_qc_statements() {
	local off form=PEM
	grep -q -- '-----BEGIN' "$1" || form=DER
	off=$(openssl asn1parse -inform "$form" -in "$1" |
		awk '/:qcStatements$/ { q = 1; next }
		     q && /OCTET STRING/ { sub(/:.*/, ""); gsub(/ /, ""); print; exit }') || return 1
	[[ -n $off ]] || return 0
	openssl asn1parse -inform "$form" -in "$1" -strparse "$off" |
		awk '/d=2 .*prim: OBJECT/ { sub(/.*:/, ""); print }'
}

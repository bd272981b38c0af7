#!/usr/bin/env bats
# The renewal e-mail follows the mail RFCs: CRLF text under the signature
# (RFC 8551 3.1.1, RFC 2046 4.1.1), encoded-words of at most 75 characters
# in folded header lines of at most 78 (RFC 2047 2, RFC 5322 2.1.1, 2.2.3),
# display names as quoted-strings or encoded-words (RFC 5322 3.4), and
# SMIMECapabilities without DES or RC2 (RFC 8551 2.5.2). Checked with
# Python's email package (policy=default) and the openssl CLI, not our code.

bats_require_minimum_version 1.5.0
load ../lib/psrenew
load ../lib/servers

setup() {
	psrenew_setup
	demo_token
	PKI=$(pki_dir)
	MSG=$BATS_TEST_TMPDIR/msg.eml
}

teardown() {
	stop_servers
}

# conf LINES...: a [ca.postsignum] mail:- section with these lines
conf() {
	{
		printf '[ca.postsignum]\nchannel = mail:-\n'
		printf '%s\n' "$@"
	} >"$BATS_TEST_TMPDIR/c.conf"
}

# renew ID [CA]: ps-renew through the configuration, the message in $MSG
renew() {
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--config "$BATS_TEST_TMPDIR/c.conf" --token "$TOKEN_URI" --id "$1" \
		--ca "${2:-postsignum}"
	printf '%s' "$output" >"$MSG"
	[ "$status" -eq 3 ]
}

# verify FILE: both openssl readers accept the signature with the test CA
verify() {
	openssl cms -verify -in "$1" -CAfile "$PKI/chain.pem" -out /dev/null
	openssl smime -verify -in "$1" -CAfile "$PKI/chain.pem" -out /dev/null
}

# pymail CHECK FILE ARGS...: a check of the message with Python's email
# package (policy=default); prints what is wrong and fails.
pymail() {
	python3 - "$@" <<'PY'
import base64, re, sys
from email import message_from_bytes
from email.policy import default

check, path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
raw = open(path, "rb").read()
msg = message_from_bytes(raw, policy=default)
bad = []

def header_lines():
    """Every physical header line of every entity (top level and parts)."""
    bounds = {b"--" + p.get_boundary().encode() for p in msg.walk()
              if p.is_multipart()}
    out, in_header = [], True
    for line in raw.split(b"\r\n"):
        if in_header:
            if line == b"":
                in_header = False
            else:
                out.append(line)
        elif line in bounds:
            in_header = True
    return out

if check == "text-crlf":
    texts = [p for p in msg.walk() if p.get_content_type() == "text/plain"]
    if len(texts) != 1:
        bad.append("%d text/plain parts" % len(texts))
    else:
        body = texts[0].get_payload(decode=True)
        if b"\r\n" not in body:
            bad.append("no CRLF in the text")
        if re.search(rb"(?<!\r)\n", body):
            bad.append("a bare LF in the text")
        if re.search(rb"\r(?!\n)", body):
            bad.append("a bare CR in the text")
elif check == "lines":
    for line in header_lines():
        if len(line) > 78:
            bad.append("header line of %d: %r" % (len(line), line))
    if b"\n" in raw.replace(b"\r\n", b""):
        bad.append("a bare LF in the message")
elif check == "subject":
    want = args[0]
    if str(msg["Subject"]) != want:
        bad.append("Subject decodes to %r" % str(msg["Subject"]))
    if msg["Subject"].defects:
        bad.append("Subject defects %r" % (msg["Subject"].defects,))
    m = re.search(rb"^Subject:(.*?)\r\n(?![ \t])", raw, re.M | re.S)
    field = m.group(0)
    for line in field.split(b"\r\n"):
        if len(line) > 78:
            bad.append("Subject line of %d: %r" % (len(line), line))
    for w in re.findall(rb"=\?[^?]*\?[bBqQ]\?[^?]*\?=", field):
        if len(w) > 75:
            bad.append("encoded-word of %d: %r" % (len(w), w))
        try:  # whole characters in every word (RFC 2047 section 5)
            base64.b64decode(w.split(b"?")[3]).decode("utf-8", "strict")
        except UnicodeDecodeError:
            bad.append("encoded-word splits a character: %r" % w)
    if len(args) > 1 and len(re.findall(rb"=\?", field)) < int(args[1]):
        bad.append("fewer than %s encoded-words: %r" % (args[1], field))
elif check == "mailbox":
    name, want_name, want_addr = args
    h = msg[name]
    addrs = h.addresses
    if len(addrs) != 1:
        bad.append("%s has %d mailboxes: %r" % (name, len(addrs), str(h)))
    elif (addrs[0].display_name, addrs[0].addr_spec) != (want_name, want_addr):
        bad.append("%s is %r <%s>" % (name, addrs[0].display_name,
                                       addrs[0].addr_spec))
    if h.defects:
        bad.append("%s defects %r" % (name, h.defects))
else:
    bad.append("unknown check " + check)
for b in bad:
    print(path + ": " + b)
sys.exit(1 if bad else 0)
PY
}

# caps FILE: the OBJECTs of the signature's SMIMECapabilities, one a line
caps() {
	openssl cms -cmsout -print -in "$1" >"$BATS_TEST_TMPDIR/cms.txt"
	awk '/object: S\/MIME Capabilities/ { p = 1; next }
	     p && (/object:/ || /signatureAlgorithm:/) { exit }
	     p && /OBJECT|INTEGER/ { sub(/^:/, "", $NF); print $NF }' "$BATS_TEST_TMPDIR/cms.txt"
}

@test "mail:- canonicalises the text part to CRLF before signing; openssl verifies it" {
	conf
	renew "$QUAL_ID"
	pymail text-crlf "$MSG"
	verify "$MSG"
	# the signed entity as openssl hands it out has the same CRLF text
	openssl cms -verify -in "$MSG" -CAfile "$PKI/chain.pem" -out "$BATS_TEST_TMPDIR/inner.eml"
	pymail text-crlf "$BATS_TEST_TMPDIR/inner.eml"
}

@test "a template with LF, CRLF and lone CR line ends is sent with CRLF only" {
	printf 'Dobrý den,\nřádek dvě\r\nřádek tři\rkonec {name}\n' >"$BATS_TEST_TMPDIR/t.txt"
	conf "template = $BATS_TEST_TMPDIR/t.txt"
	renew "$COMM_ID"
	pymail text-crlf "$MSG"
	verify "$MSG"
	python3 - "$MSG" <<-'PY'
		import sys
		from email import message_from_bytes
		from email.policy import default
		m = message_from_bytes(open(sys.argv[1], "rb").read(), policy=default)
		t = [p for p in m.walk() if p.get_content_type() == "text/plain"][0]
		body = t.get_payload(decode=True).decode()
		assert body == "Dobrý den,\r\nřádek dvě\r\nřádek tři\r\nkonec Jan Novák\r\n", repr(body)
	PY
}

@test "SMTP: the delivered message has CRLF text, folded headers, one From, and verifies" {
	start_smtp "$BATS_TEST_TMPDIR/smtp"
	printf '[ca.postsignum]\nchannel = mail:%s\nfrom-name = Novák, Jan\n' "$SMTP_URL" \
		>"$BATS_TEST_TMPDIR/c.conf"
	run --separate-stderr ps-renew --module "$PKCS11_MODULE" --pin "file:$PIN_FILE" \
		--config "$BATS_TEST_TMPDIR/c.conf" --token "$TOKEN_URI" --id "$QUAL_ID" \
		--ca postsignum
	[ "$status" -eq 3 ]
	got=$SMTP_MAILDIR/001.eml
	pymail text-crlf "$got"
	verify "$got"
	pymail lines "$got"
	pymail subject "$got" "Žádost o následný certifikát PostSignum – Jan Novák" 2
	pymail mailbox "$got" From "Novák, Jan" jan.novak@example.cz
	pymail mailbox "$got" To "" podatelna.postsignum@cpost.cz
	[ "$(jq -r .mail_from "$SMTP_MAILDIR"/001.json)" = jan.novak@example.cz ]
	[ "$(caps "$got" | paste -sd' ')" = "aes-256-cbc aes-128-cbc sha256" ]
}

@test "the default subject is split into encoded-words of at most 75 characters" {
	conf
	renew "$QUAL_ID"
	pymail subject "$MSG" "Žádost o následný certifikát PostSignum – Jan Novák" 2
	pymail lines "$MSG"
	verify "$MSG"
}

@test "a long subject of 1- to 4-byte characters is split between characters, never inside one" {
	# 1+2+3+4 bytes a round: the 42/45-byte cuts fall inside characters
	s="Žádost {name}: "
	for i in $(seq 1 14); do s+="aé€🔐"; done
	s+=" – obnova certifikátu"
	conf "subject = $s"
	renew "$QUAL_ID"
	pymail subject "$MSG" "${s/\{name\}/Jan Novák}" 4
	pymail lines "$MSG"
	verify "$MSG"
}

@test "a long plain-ASCII subject is folded at its spaces and decodes unchanged" {
	s="Request for a subsequent certificate for {name} -- please issue it for the"
	s+=" holder named in the attached PKCS#10 request, type {type}, serial {serial}"
	conf "subject = $s"
	renew "$QUAL_ID"
	want=${s/\{name\}/Jan Novák}
	want=${want/\{type\}/kvalifikovaný}
	want=${want/\{serial\}/$(cert_serial_hex "$BATS_TEST_TMPDIR/certs/$QUAL_ID.pem")}
	pymail subject "$MSG" "$want"
	pymail lines "$MSG"
}

@test "display names with specials are one mailbox: a quoted-string, escapes kept" {
	{
		printf '[ca.a]\nchannel = mail:-\nfrom-name = Ing. Petr Novotny, Ph.D.\n'
		printf 'from = petr.novotny@urad.example.cz\n'
		printf '[ca.b]\nchannel = mail:-\nfrom-name = Jan "Honza" Novak \\ IT <odbor>\n'
	} >"$BATS_TEST_TMPDIR/c.conf"
	renew "$QUAL_ID" a
	pymail mailbox "$MSG" From "Ing. Petr Novotny, Ph.D." petr.novotny@urad.example.cz
	grep -q $'^From: "Ing. Petr Novotny, Ph.D." <petr.novotny@urad.example.cz>\r$' "$MSG"
	pymail mailbox "$MSG" To "" podatelna.postsignum@cpost.cz
	verify "$MSG"
	renew "$COMM_ID" b
	pymail mailbox "$MSG" From 'Jan "Honza" Novak \ IT <odbor>' jan.novak@example.cz
	pymail lines "$MSG"
}

@test "a plain name stays as it is; \"Novak, Jan\" is quoted; a long non-ASCII name is folded words" {
	{
		printf '[ca.a]\nchannel = mail:-\nfrom-name = Novak, Jan\n'
		printf '[ca.b]\nchannel = mail:-\nfrom-name = %s\n' \
			"Ing. Jiří Dvořák-Nováková, Ph.D., Odbor eGovernmentu, Ministerstvo vnitra ČR"
		printf '[ca.c]\nchannel = mail:-\nfrom-name = Jan Novak\n'
	} >"$BATS_TEST_TMPDIR/c.conf"
	renew "$QUAL_ID" a
	pymail mailbox "$MSG" From "Novak, Jan" jan.novak@example.cz
	renew "$COMM_ID" b
	pymail mailbox "$MSG" From \
		"Ing. Jiří Dvořák-Nováková, Ph.D., Odbor eGovernmentu, Ministerstvo vnitra ČR" \
		jan.novak@example.cz
	pymail lines "$MSG"
	verify "$MSG"
	id=$(token_cert commercial -355d +10d)
	renew "$id" c
	grep -q $'^From: Jan Novak <jan.novak@example.cz>\r$' "$MSG"
	pymail mailbox "$MSG" From "Jan Novak" jan.novak@example.cz
}

@test "SMIMECapabilities list AES-256-CBC, AES-128-CBC and SHA-256 only: no DES, RC2 or 40/64-bit" {
	conf
	renew "$QUAL_ID"
	caps "$MSG" >"$BATS_TEST_TMPDIR/caps"
	cat "$BATS_TEST_TMPDIR/caps"
	[ "$(paste -sd' ' "$BATS_TEST_TMPDIR/caps")" = "aes-256-cbc aes-128-cbc sha256" ]
	! grep -Eqi 'des|rc2|rc4|:(28|40|80)$' "$BATS_TEST_TMPDIR/caps"
	! sed -n '/S\/MIME Capabilities/,/signatureAlgorithm/p' "$BATS_TEST_TMPDIR/cms.txt" |
		grep -Eqi 'des|rc2|INTEGER'
	# still SHA-256 and a signing time, and it verifies
	grep -q 'signingTime' "$BATS_TEST_TMPDIR/cms.txt"
	grep -q 'digestAlgorithm:' "$BATS_TEST_TMPDIR/cms.txt"
	grep -q 'sha256' "$BATS_TEST_TMPDIR/cms.txt"
	verify "$MSG"
}

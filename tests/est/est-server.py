#!/usr/bin/python3
"""A small EST (RFC 7030) server for psrenew's tests, behind nginx.

    est-server.py --pki DIR --state DIR --port N

Binds to 127.0.0.1:N (N = 0: a free port; the port is written to
STATE/backend.port either way). nginx (tests/est/nginx.conf.in) terminates
TLS, verifies the client certificate against the test PKI and passes it on in
X-SSL-Client-Cert ($ssl_client_escaped_cert, URL-escaped PEM) and
X-SSL-Client-Verify ($ssl_client_verify); nginx keeps its connections to
this server open (HTTP/1.1 keep-alive). The Python standard library, the
openssl CLI and, when installed, python3-cryptography are used; certificates
are issued with tests/pki/mkpki.

A request that is not issued costs no process: the CSR's signature is
verified in-process with python3-cryptography (openssl req -verify when that
is missing or cannot read the CSR), and the verdict is kept per CSR (the same
DER bytes verify the same way every time); the client certificate's subject
text for the log is kept per certificate. So a pending poll is answered from
memory and a few small file writes, as a CA answers a request it already
holds.

Endpoints (LABEL: an optional path segment of [A-Za-z0-9_-]):

  GET  /.well-known/est[/LABEL]/cacerts
       200, application/pkcs7-mime, base64 of a DER PKCS#7 certs-only with
       the test PKI's chain.pem (both issuing CAs and the root). No client
       certificate needed.

  POST /.well-known/est[/LABEL]/simplereenroll
       Body: base64 of a DER PKCS#10 (whitespace ignored). Checks, in order:
         401  no client certificate, or X-SSL-Client-Verify is not SUCCESS
              and `openssl verify -purpose any` against the PKI's chain
              fails too (a certificate without clientAuth, such as a
              qualified one, fails nginx's purpose check only)
         400  body is not base64 of a PKCS#10; the CSR's self-signature does
              not verify; the CSR's subject (DER) is not
              byte-for-byte the client certificate's (RFC 7030 4.2.2)
       Then the answer comes from the control file (below):
         issue [qualified|commercial]
                  200, base64 DER PKCS#7 certs-only holding the new
                  certificate: mkpki issue for the CSR's public key, valid
                  -1m..+385d, subject = the CSR's subject DER exactly,
                  qualified when the client certificate has QCStatements
                  (else commercial) unless the type is given, subjectAltName
                  e-mail from the CSR's extensionRequest, else from the client
                  certificate, else mkpki's default
         pending N   202 with Retry-After: N (N defaults to 1)
         reject [MESSAGE]
                  400 with a text/plain message
         error       500 with a text/plain message
         garbage     200 with pkcs7-mime headers and a base64 body that does
                  not decode to a PKCS#7
         wrongkey    200 with a proper PKCS#7 and certificate, but for another
                  public key than the CSR's

Control file: STATE/answers.LABEL for a labelled request when that file
exists, else STATE/answers; no file: "issue". One answer per line (blank
lines and lines starting with # are skipped). Answers are counted PER CSR:
the k-th request carrying a given CSR (the same DER bytes: an RFC 7030 client
re-sends the same CSR while polling) gets line k; the last line repeats. So
"pending 1 / pending 1 / issue" gives 202, 202, 200 to one client polling,
and every new CSR starts again at line 1. The counts (STATE/counters.jsonl)
start afresh whenever the control file's content changes, or when
STATE/counters.jsonl is removed. Requests refused by the checks above
(401/400) consume no answer.

State written:
  STATE/log                one line per request, tab-separated:
                           TIME METHOD PATH status=N answer=A n=SEQ client=SUBJECT
                           (client: RFC 2253, "-" when none; answer for
                           refusals: refused:REASON)
  STATE/requests/SEQ.csr   the DER CSR of simplereenroll request SEQ
  STATE/requests/SEQ.crt   the certificate answered to it (PEM), if any
  STATE/counters.jsonl     one line per answered request (control file,
                           its SHA-256, the CSR's SHA-256): the counts above
  STATE/backend.port       the port bound
"""

import argparse
import base64
import binascii
import datetime
import hashlib
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import urllib.parse

try:  # python3-cryptography: the CSR signature checked in-process
    from cryptography import x509 as crypto_x509
    from cryptography.exceptions import UnsupportedAlgorithm
except ImportError:  # pragma: no cover - openssl req -verify instead
    crypto_x509 = None

HERE = os.path.dirname(os.path.abspath(__file__))
MKPKI = os.path.join(HERE, "..", "pki", "mkpki")
PREFIX = "/.well-known/est/"
LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

OID_QC_STATEMENTS = bytes.fromhex("2b06010505070103")       # 1.3.6.1.5.5.7.1.3
OID_SAN = bytes.fromhex("551d11")                            # 2.5.29.17
OID_EXT_REQ = bytes.fromhex("2a864886f70d01090e")            # 1.2.840.113549.1.9.14

# mkpki's subject attribute names (tests/pki/mkpki: attr_oid).
MKPKI_ATTRS = {
    "550406": "C", "550408": "ST", "550407": "L", "55040a": "O",
    "55040b": "OU", "550403": "CN", "550405": "serialNumber",
    "550404": "SN", "55042a": "GN", "55040c": "title", "550409": "street",
    "550461": "organizationIdentifier", "550441": "pseudonym",
    "2a864886f70d010901": "emailAddress",
}


# ------------------------------------------------------------------ DER

class DerError(ValueError):
    pass


def der_elem(d, o, end=None):
    """(tag, contents start, element end) of the DER element at offset o."""
    end = len(d) if end is None else end
    if o + 2 > end:
        raise DerError("truncated")
    tag, n = d[o], d[o + 1]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags not supported")
    if n < 0x80:
        c = o + 2
    else:
        k = n & 0x7F
        if k == 0 or k > 4 or o + 2 + k > end:
            raise DerError("bad length")
        n = int.from_bytes(d[o + 2:o + 2 + k], "big")
        c = o + 2 + k
    if c + n > end:
        raise DerError("element overruns its container")
    return tag, c, c + n


def der_kids(d, o=0, end=None):
    """The elements inside the constructed element at o: list of
    (tag, start, contents start, end)."""
    _, c, e = der_elem(d, o, end)
    out = []
    while c < e:
        t, cc, ee = der_elem(d, c, e)
        out.append((t, c, cc, ee))
        c = ee
    return out


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def der_tlv(tag, content):
    return bytes([tag]) + der_len(len(content)) + content


def der_whole(d):
    """d must be exactly one DER element."""
    _, _, e = der_elem(d, 0)
    if e != len(d):
        raise DerError("trailing bytes")
    return d


def pem_to_der(text):
    m = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S)
    if not m:
        raise DerError("no PEM certificate")
    return base64.b64decode("".join(m.group(1).split()), validate=True)


def csr_parts(csr):
    """(subject DER, SubjectPublicKeyInfo DER, attributes list) of a PKCS#10."""
    der_whole(csr)
    top = der_kids(csr)
    if len(top) != 3 or top[0][0] != 0x30:
        raise DerError("not a PKCS#10 CertificationRequest")
    cri = der_kids(csr, top[0][1])
    if len(cri) < 3 or cri[0][0] != 0x02 or cri[1][0] != 0x30 or cri[2][0] != 0x30:
        raise DerError("not a PKCS#10 CertificationRequestInfo")
    subject = csr[cri[1][1]:cri[1][3]]
    spki = csr[cri[2][1]:cri[2][3]]
    attrs = []
    if len(cri) > 3 and cri[3][0] == 0xA0:
        for _, s, _, e in der_kids(csr, cri[3][1]):
            a = der_kids(csr, s)
            if len(a) == 2 and a[0][0] == 0x06:
                attrs.append((csr[a[0][2]:a[0][3]], csr[a[1][1]:a[1][3]]))
    return subject, spki, attrs


def cert_tbs_fields(cert):
    """(TBS field list [(tag, start, cstart, end)], index of serial)."""
    top = der_kids(cert)
    if len(top) != 3:
        raise DerError("not a certificate")
    f = der_kids(cert, top[0][1])
    i = 1 if f and f[0][0] == 0xA0 else 0
    if len(f) < i + 6:
        raise DerError("not a TBSCertificate")
    return top, f, i


def cert_subject(cert):
    _, f, i = cert_tbs_fields(cert)
    return cert[f[i + 4][1]:f[i + 4][3]]


def cert_spki(cert):
    _, f, i = cert_tbs_fields(cert)
    return cert[f[i + 5][1]:f[i + 5][3]]


def extensions_in(d, o):
    """{OID bytes: extnValue contents} of the Extensions SEQUENCE at o."""
    out = {}
    for _, s, _, _ in der_kids(d, o):
        k = der_kids(d, s)
        if k and k[0][0] == 0x06 and k[-1][0] == 0x04:
            out[d[k[0][2]:k[0][3]]] = d[k[-1][2]:k[-1][3]]
    return out


def cert_extensions(cert):
    _, f, i = cert_tbs_fields(cert)
    for t, s, c, e in f[i + 6:]:
        if t == 0xA3:
            return extensions_in(cert, c)
    return {}


def csr_extensions(attrs):
    for oid, values in attrs:
        if oid == OID_EXT_REQ:
            kids = der_kids(values)  # SET OF Extensions
            if kids:
                return extensions_in(values, kids[0][1])
    return {}


def san_email(ext_value):
    """The first rfc822Name of a subjectAltName extension value."""
    if not ext_value:
        return None
    try:
        for t, _, c, e in der_kids(ext_value):
            if t == 0x81:
                return ext_value[c:e].decode("ascii")
    except (DerError, UnicodeDecodeError):
        pass
    return None


def subject_as_mkpki(subject):
    """The subject as mkpki's "/A=v/B=v" text when mkpki would encode that
    text into exactly these bytes (one attribute per RDN, known attribute,
    UTF8String or, for emailAddress, IA5String); else None."""
    parts = []
    for t, s, _, _ in der_kids(subject):
        atvs = der_kids(subject, s)
        if t != 0x31 or len(atvs) != 1:
            return None
        atv = der_kids(subject, atvs[0][1])
        if len(atv) != 2 or atv[0][0] != 0x06:
            return None
        name = MKPKI_ATTRS.get(subject[atv[0][2]:atv[0][3]].hex())
        want = 0x16 if name == "emailAddress" else 0x0C
        if name is None or atv[1][0] != want:
            return None
        try:
            value = subject[atv[1][2]:atv[1][3]].decode("utf-8")
        except UnicodeDecodeError:
            return None
        if "/" in value or "\n" in value or "\0" in value:
            return None
        parts.append("/%s=%s" % (name, value))
    return "".join(parts) or None


# ---------------------------------------------------------------- openssl

def run(args, data=None, env=None):
    p = subprocess.run(args, input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env)
    return p.returncode, p.stdout, p.stderr


def must(args, data=None, env=None):
    rc, out, err = run(args, data, env)
    if rc != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(args), rc,
                                                 err.decode(errors="replace").strip()))
    return out


def pkcs7_of(pem_files):
    args = ["openssl", "crl2pkcs7", "-nocrl", "-outform", "DER"]
    for f in pem_files:
        args += ["-certfile", f]
    return must(args)


class Memo:
    """A bounded map of results that depend only on their key (the DER
    bytes of a CSR or certificate): computed once, then read."""

    def __init__(self, limit=65536):
        self.limit = limit
        self.lock = threading.Lock()
        self.d = {}

    def get(self, key, compute):
        k = hashlib.sha256(key).digest()
        with self.lock:
            if k in self.d:
                return self.d[k]
        v = compute(key)
        with self.lock:
            if len(self.d) >= self.limit:
                self.d.clear()
            self.d[k] = v
        return v


def subject_text_of(cert_der):
    rc, out, _ = run(["openssl", "x509", "-inform", "DER", "-noout", "-subject",
                      "-nameopt", "RFC2253,-esc_msb"], cert_der)
    if rc != 0:
        return "?"
    s = out.decode("utf-8", "replace").strip()
    return s[len("subject="):] if s.startswith("subject=") else s


SUBJECT_TEXTS = Memo(1024)


def subject_text(cert_der):
    """The certificate's subject as openssl prints it in RFC 2253 (one
    openssl process per certificate, then from memory)."""
    return SUBJECT_TEXTS.get(cert_der, subject_text_of)


def csr_signature_openssl(csr):
    # openssl req -inform DER reads stdin; a file of our own is not needed.
    rc, out, err = run(["openssl", "req", "-inform", "DER", "-verify", "-noout"], csr)
    # OpenSSL 3.0 exits 0 on a bad signature: read its verdict.
    return rc == 0 and b"verify OK" in out + err


def csr_signature_verdict(csr):
    """Whether the PKCS#10's self-signature verifies with its public key."""
    if crypto_x509 is not None:
        try:
            req = crypto_x509.load_der_x509_csr(csr)
        except (ValueError, UnsupportedAlgorithm):
            req = None  # not for cryptography: let openssl judge it
        if req is not None:
            try:
                return bool(req.is_signature_valid)
            except UnsupportedAlgorithm:
                pass
            except (ValueError, TypeError):
                return False  # a signature that does not even decode
    return csr_signature_openssl(csr)


CSR_VERDICTS = Memo()


def csr_signature_ok(csr):
    return CSR_VERDICTS.get(csr, csr_signature_verdict)


def resign_subject(cert_pem_path, ca_key, subject, tmp):
    """Puts SUBJECT (DER) into the certificate's TBSCertificate and signs it
    again with CA_KEY (sha256; the algorithm mkpki used). Returns PEM."""
    with open(cert_pem_path, encoding="ascii") as fh:
        der = pem_to_der(fh.read())
    top, f, i = cert_tbs_fields(der)
    fields = [der[s:e] for _, s, _, e in f]
    fields[i + 4] = subject
    tbs = der_tlv(0x30, b"".join(fields))
    tbs_path = os.path.join(tmp, "tbs.der")
    with open(tbs_path, "wb") as fh:
        fh.write(tbs)
    sig = must(["openssl", "dgst", "-sha256", "-sign", ca_key, "-binary", tbs_path])
    alg = der[top[1][1]:top[1][3]]
    cert = der_tlv(0x30, tbs + alg + der_tlv(0x03, b"\0" + sig))
    return must(["openssl", "x509", "-inform", "DER"], cert)


# ------------------------------------------------------------------ server

class Est:
    def __init__(self, pki, state):
        self.pki = pki
        self.state = state
        self.lock = threading.Lock()
        self.reqdir = os.path.join(state, "requests")
        self.tmpdir = os.path.join(state, "tmp")
        os.makedirs(self.reqdir, exist_ok=True)
        os.makedirs(self.tmpdir, exist_ok=True)
        self.verified = {}  # sha256 of a client certificate -> verdict
        for f in ("chain.pem", "qualified-ca.key", "public-ca.key", ".done"):
            if not os.path.exists(os.path.join(pki, f)):
                raise RuntimeError("%s: not a test PKI (no %s)" % (pki, f))
        self.cacerts = pkcs7_of([os.path.join(pki, "chain.pem")])
        # The counts of counters.jsonl, kept in memory while the file is the
        # one this server last wrote (removed or changed: read it again).
        self.cpath = os.path.join(state, "counters.jsonl")
        self.counters = None
        self.counters_stat = None

    # --- bookkeeping (callers hold self.lock)

    def verify_any_purpose(self, der):
        """"SUCCESS" when the certificate verifies against the PKI's chain
        for any purpose (now, signatures, CA flags), else None. Cached."""
        key = hashlib.sha256(der).hexdigest()
        with self.lock:
            if key in self.verified:
                return self.verified[key]
        chain = os.path.join(self.pki, "chain.pem")
        pem = ("-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n"
               % base64.encodebytes(der).decode().strip())
        r = subprocess.run(["openssl", "verify", "-purpose", "any",
                            "-CAfile", chain, "-x509_strict"],
                           input=pem.encode(), capture_output=True, check=False)
        verdict = "SUCCESS" if r.returncode == 0 else None
        with self.lock:
            self.verified[key] = verdict
        return verdict

    def next_seq(self):
        """The next request number (STATE/seq). Written in place, not
        replaced: the number only grows, so the file never gets shorter,
        and replacing it freed a block per request, which costs a
        synchronous discard on some disks (1-2 ms, with est.lock held)."""
        path = os.path.join(self.state, "seq")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                n = int(os.pread(fd, 64, 0).strip() or 0)
            except ValueError:
                n = 0
            n += 1
            text = b"%d\n" % n
            os.pwrite(fd, text, 0)
            os.ftruncate(fd, len(text))
        finally:
            os.close(fd)
        return n

    def log(self, method, path, status, answer, seq, client):
        t = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        line = "\t".join([t, method, path, "status=%d" % status,
                          "answer=%s" % answer, "n=%s" % (seq or "-"),
                          "client=%s" % (client or "-")])
        with self.lock, open(os.path.join(self.state, "log"), "a", encoding="utf-8") as f:
            f.write(line.replace("\n", " ") + "\n")

    @staticmethod
    def count(counters, name, digest, key):
        """Counts one request of CSR KEY under control file NAME whose
        content has SHA-256 DIGEST; returns how many came before it."""
        entry = counters.get(name)
        if not entry or entry[0] != digest:
            entry = counters[name] = (digest, {})
        k = entry[1].get(key, 0)
        entry[1][key] = k + 1
        return k

    def stat_key(self, path):
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def load_counters(self):
        """{control file: (its SHA-256, {CSR SHA-256: requests})}, from
        memory while counters.jsonl is what this server last wrote."""
        if self.counters is not None and self.stat_key(self.cpath) == self.counters_stat:
            return self.counters
        counters = {}
        try:
            with open(self.cpath, encoding="utf-8") as f:
                for line in f:
                    try:
                        r = json.loads(line)
                        self.count(counters, r["answers"], r["answers_sha256"], r["csr"])
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn or foreign line counts nothing
        except OSError:
            pass
        self.counters = counters
        return counters

    def answer_for(self, label, csr):
        """The control-file line for this request of this CSR (consumes it)."""
        name = "answers"
        if label and os.path.exists(os.path.join(self.state, "answers." + label)):
            name = "answers." + label
        try:
            with open(os.path.join(self.state, name), encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        lines = [l.strip() for l in text.splitlines()]
        lines = [l for l in lines if l and not l.startswith("#")] or ["issue"]
        counters = self.load_counters()
        digest = hashlib.sha256(text.encode()).hexdigest()
        key = hashlib.sha256(csr).hexdigest()
        k = self.count(counters, name, digest, key)
        with open(self.cpath, "a", encoding="utf-8") as f:
            f.write(json.dumps({"answers": name, "answers_sha256": digest, "csr": key},
                               sort_keys=True) + "\n")
        self.counters_stat = self.stat_key(self.cpath)
        return lines[min(k, len(lines) - 1)]

    # --- issuing

    def issue(self, csr, subject, spki, attrs, client, cert_type, wrongkey=False):
        with tempfile.TemporaryDirectory(dir=self.tmpdir) as tmp:
            return self.issue_in(tmp, csr, subject, spki, attrs, client, cert_type, wrongkey)

    def issue_in(self, tmp, csr, subject, spki, attrs, client, cert_type, wrongkey):
        if cert_type is None:
            cert_type = "qualified" if OID_QC_STATEMENTS in cert_extensions(client) else "commercial"
        pub = os.path.join(tmp, "pub.pem")
        if wrongkey:
            key = os.path.join(tmp, "other.key")
            must(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-out", key])
            must(["openssl", "pkey", "-in", key, "-pubout", "-out", pub])
        else:
            with open(pub, "wb") as f:
                f.write(must(["openssl", "pkey", "-pubin", "-inform", "DER"], spki))
        email = san_email(csr_extensions(attrs).get(OID_SAN)) or \
            san_email(cert_extensions(client).get(OID_SAN))
        env = dict(os.environ)
        if email:
            env["MKPKI_EMAIL"] = email
        text = subject_as_mkpki(subject)
        out = os.path.join(tmp, "cert.pem")
        args = [MKPKI, "issue", self.pki, cert_type, pub, out, "-1m", "+385d"]
        if text:
            args.append(text)
        must(args, env=env)
        with open(out, "rb") as f:
            pem = f.read()
        if cert_subject(pem_to_der(pem.decode("ascii"))) != subject:
            # Not expressible in mkpki's subject syntax: copy the DER in.
            ca = "qualified-ca" if cert_type == "qualified" else "public-ca"
            pem = resign_subject(out, os.path.join(self.pki, ca + ".key"), subject, tmp)
            with open(out, "wb") as f:
                f.write(pem)
        return pem, pkcs7_of([out])


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "psrenew-est-test/1"
    # HTTP/1.1: nginx keeps its upstream connections open (every answer has
    # a Content-Length), so a request costs no connect and no new thread.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the body
    # waits for the ACK of the headers, which nginx delays by 40 ms on a
    # connection it keeps open.
    disable_nagle_algorithm = True
    est = None  # set in main()

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))

    def reply(self, status, body=b"", ctype="text/plain; charset=utf-8", headers=()):
        """Sets the response; flush() sends it (after the log line is written,
        so a client that got its answer finds the request in STATE/log)."""
        if isinstance(body, str):
            body = body.encode()
        self.response = (status, body, ctype, list(headers))

    def flush(self):
        status, body, ctype, headers = self.response
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reply_pkcs7(self, der):
        body = base64.encodebytes(der)  # 76-column lines
        self.reply(200, body, "application/pkcs7-mime; smime-type=certs-only",
                   [("Content-Transfer-Encoding", "base64")])

    def route(self):
        """(label or None, operation) of the request path, or None."""
        path = urllib.parse.urlsplit(self.path).path
        if not path.startswith(PREFIX):
            return None
        seg = path[len(PREFIX):].split("/")
        if len(seg) == 1:
            return None, seg[0]
        if len(seg) == 2 and LABEL_RE.match(seg[0]):
            return seg[0], seg[1]
        return None

    def do_GET(self):
        r = self.route()
        est = self.est
        if r and r[1] == "cacerts":
            self.reply_pkcs7(est.cacerts)
            est.log("GET", self.path, 200, "cacerts", None, None)
        elif r and r[1] == "simplereenroll":
            self.reply(405, "use POST\n", headers=[("Allow", "POST")])
            est.log("GET", self.path, 405, "refused:method", None, None)
        else:
            self.reply(404, "not found\n")
            est.log("GET", self.path, 404, "refused:not-found", None, None)
        self.flush()

    def do_POST(self):
        est = self.est
        r = self.route()
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = 0
        body = self.rfile.read(n) if n > 0 else b""
        if not r or r[1] != "simplereenroll":
            status = 405 if r and r[1] == "cacerts" else 404
            self.reply(status, "not supported here\n")
            est.log("POST", self.path, status, "refused:not-found", None, None)
            self.flush()
            return
        label = r[0]
        try:
            status, answer, seq, client_name = self.reenroll(label, body)
        except Exception as e:  # a bug here: answer, and say it loudly
            sys.stderr.write("est-server: %s: %r\n" % (self.path, e))
            self.reply(500, "est-server fixture error: %s\n" % e)
            status, answer, seq, client_name = 500, "fixture-error", None, None
        est.log("POST", self.path, status, answer, seq, client_name)
        self.flush()

    def refuse(self, status, reason, message):
        self.reply(status, "est: %s\n" % message)
        return status, "refused:" + reason

    def reenroll(self, label, body):
        """Answers a simplereenroll; returns (status, answer, seq, client)."""
        est = self.est
        verify = self.headers.get("X-SSL-Client-Verify", "")
        escaped = self.headers.get("X-SSL-Client-Cert", "")
        client = None
        client_name = None
        if escaped:
            try:
                client = pem_to_der(urllib.parse.unquote(escaped))
                client_name = subject_text(client)
            except (DerError, binascii.Error, ValueError):
                client = None
        if client is not None and verify.startswith("FAILED:"):
            verify = est.verify_any_purpose(client) or verify
        if verify != "SUCCESS" or client is None:
            why = verify or "no client certificate"
            return self.refuse(401, "unauthenticated",
                               "a verified client certificate is required (%s)" % why) + (None, client_name)
        try:
            csr = base64.b64decode(b"".join(body.split()), validate=True)
            subject, spki, attrs = csr_parts(csr)
        except (binascii.Error, ValueError, DerError):
            return self.refuse(400, "bad-csr", "the body is not a base64 DER PKCS#10 request") + (None, client_name)
        if not csr_signature_ok(csr):
            return self.refuse(400, "bad-signature", "the request's signature does not verify") + (None, client_name)
        try:
            same = subject == cert_subject(client)
        except DerError:
            same = False
        if not same:
            return self.refuse(400, "subject-mismatch",
                               "the request's subject differs from the client certificate's "
                               "(RFC 7030 4.2.2)") + (None, client_name)

        with est.lock:
            seq = est.next_seq()
            answer = est.answer_for(label, csr)
            with open(os.path.join(est.reqdir, "%d.csr" % seq), "wb") as f:
                f.write(csr)
            word, _, arg = answer.partition(" ")
            arg = arg.strip()
            try:
                if word == "issue" or word == "wrongkey":
                    cert_type = None
                    if word == "issue" and arg:
                        if arg not in ("qualified", "commercial"):
                            raise ValueError("issue: type must be qualified or commercial")
                        cert_type = arg
                    pem, p7 = est.issue(csr, subject, spki, attrs, client, cert_type,
                                        wrongkey=(word == "wrongkey"))
                    with open(os.path.join(est.reqdir, "%d.crt" % seq), "wb") as f:
                        f.write(pem)
                    self.reply_pkcs7(p7)
                    return 200, answer, seq, client_name
                if word == "pending":
                    secs = int(arg or "1")
                    self.reply(202, "request %d pending, retry after %d s\n" % (seq, secs),
                               headers=[("Retry-After", str(secs))])
                    return 202, answer, seq, client_name
                if word == "reject":
                    self.reply(400, "est: %s\n" % (arg or "request rejected by the test CA"))
                    return 400, answer, seq, client_name
                if word == "error":
                    self.reply(500, "est: internal error (scripted)\n")
                    return 500, answer, seq, client_name
                if word == "garbage":
                    self.reply(200, base64.encodebytes(b"this is not a PKCS#7 certs-only\n"),
                               "application/pkcs7-mime; smime-type=certs-only",
                               [("Content-Transfer-Encoding", "base64")])
                    return 200, answer, seq, client_name
                raise ValueError("unknown answer %r" % answer)
            except Exception as e:  # a broken fixture: say so loudly
                sys.stderr.write("est-server: request %d: %s\n" % (seq, e))
                self.reply(500, "est-server fixture error: %s\n" % e)
                return 500, "fixture-error:" + answer, seq, client_name


def main():
    ap = argparse.ArgumentParser(description="EST test server (behind nginx)")
    ap.add_argument("--pki", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--port", type=int, required=True)
    a = ap.parse_args()
    state = os.path.abspath(a.state)
    os.makedirs(state, exist_ok=True)
    Handler.est = Est(os.path.abspath(a.pki), state)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    with open(os.path.join(state, "backend.port.tmp"), "w") as f:
        f.write("%d\n" % port)
    os.replace(os.path.join(state, "backend.port.tmp"), os.path.join(state, "backend.port"))
    sys.stderr.write("est-server: listening on 127.0.0.1:%d\n" % port)
    sys.stderr.flush()
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

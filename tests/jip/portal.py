#!/usr/bin/python3
# -*- coding: utf-8 -*-
"""Local test emulator of the JIP "Správa dat" portal (Czech POINT).

Built from the guide "JIP Následné certifikáty PostSignum" (§5, §6, the
"lokální administrátor"), for the tests of ps-jip-setserial. It is NOT the
real portal and talks to nothing outside this machine. Python standard
library only. It listens on plain HTTP on 127.0.0.1; nginx (tests/jip/
nginx.conf.in) terminates TLS in front of it, verifies the client
certificate and passes the result in X-SSL-Client-* headers.

    portal.py --state STATE_DIR [--port-file FILE] [--port N]
    portal.py --print-defaults          the default portal.json, on stdout

Files in STATE_DIR, re-read on every request (a test changes them between
requests, no restart needed):
    accounts.json   the users (see tests/jip/README.md); the portal writes
                    it back (atomically) when a login fails, an account
                    locks, a login succeeds or a certificate is saved
    portal.json     URL paths, form ids, field names, element ids, option
                    values, fault switches; missing keys take the defaults
                    (DEFAULTS below, or --print-defaults)
    log             written: one line per request
                    TIME METHOD PATH user=USER outcome=OUTCOME status=CODE
"""

import argparse
import base64
import copy
import hashlib
import hmac
import html
import http.server
import json
import os
import re
import secrets
import signal
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

DEFAULTS = {
    "paths": {
        "login": "/spravadat/",
        "login_post": "/spravadat/prihlaseni",
        "nia": "/spravadat/nia",
        "logout": "/spravadat/odhlaseni",
        "profile": "/spravadat/muj-profil",
        "cert_edit": "/spravadat/muj-profil/certifikaty",
        "cert_list": "/spravadat/muj-profil/seznam-certifikatu",
        "users": "/spravadat/uzivatele",
    },
    "forms": {
        "password": "frmJmenoHeslo",
        "cert": "frmCertifikat",
        "otp": "frmOtp",
        "nia": "frmNia",
        "logout": "frmOdhlaseni",
        "cert_edit": "frmCertifikaty",
    },
    "fields": {
        "csrf": "__RequestVerificationToken",
        "method": "metoda",
        "user": "UzivatelskeJmeno",
        "password": "Heslo",
        "otp": "OtpKod",
        "login_submit": "btnPrihlasit",
        "type": "TypCertifikatu",
        "ca": "CertifikacniAutorita",
        "serial": "SerioveCislo",
        "save": "btnUlozitZmeny",
        "target_user": "uzivatel",
    },
    "ids": {
        "error": "chyba",
        "message": "zprava",
        "user_box": "prihlasenyUzivatel",
        "profile_table": "tblProfil",
        "cert_table": "tblCertifikaty",
        "users_table": "tblUzivatele",
        "target_user": "cilovyUzivatel",
    },
    "session_cookie": "SpravaDat.SessionId",
    "type_options": [["1", "komerční"], ["2", "kvalifikovaný"]],
    "ca_options": [["1", "PostSignum"], ["2", "I.CA"], ["3", "eIdentity"]],
    "nia_url": "https://nia.identitaobcana.cz/IdP/",
    "down": False,
    "retry_after": 60,
    "slow_seconds": 0,
    "drop_saves": False,
}

TYPE_LABELS = ("komerční", "kvalifikovaný")
MAX_BODY = 64 * 1024
MAX_SERIAL_DIGITS = 40  # RFC 5280: at most 20 octets

STATE_DIR = None
LOCK = threading.RLock()
SESSIONS = {}  # sid -> {"user", "csrf", "last", "method"}
EXPIRED = {}  # sid -> time it expired (to tell "expired" from "unknown")


# ------------------------------------------------------------------ files

def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


class ConfigError(Exception):
    pass


def load_config():
    path = os.path.join(STATE_DIR, "portal.json")
    try:
        with open(path, encoding="utf-8") as f:
            over = json.load(f)
    except FileNotFoundError:
        over = {}
    except (OSError, ValueError) as e:
        raise ConfigError("portal.json: %s" % e)
    if not isinstance(over, dict):
        raise ConfigError("portal.json: not an object")
    cfg = deep_merge(DEFAULTS, over)
    for k, v in cfg["paths"].items():
        if not isinstance(v, str) or not v.startswith("/"):
            raise ConfigError("portal.json: paths.%s must start with /" % k)
    for grp in ("forms", "fields", "ids"):
        for k, v in cfg[grp].items():
            if not isinstance(v, str) or not v:
                raise ConfigError("portal.json: %s.%s must be a non-empty string" % (grp, k))
    for grp in ("type_options", "ca_options"):
        opts = cfg[grp]
        if (not isinstance(opts, list) or not opts or
                not all(isinstance(o, list) and len(o) == 2 and all(isinstance(x, str) for x in o)
                        for o in opts)):
            raise ConfigError("portal.json: %s must be a list of [value, label]" % grp)
    if sorted(lbl for _, lbl in cfg["type_options"]) != sorted(TYPE_LABELS):
        raise ConfigError("portal.json: type_options labels must be %s" % "/".join(TYPE_LABELS))
    return cfg


def load_accounts():
    path = os.path.join(STATE_DIR, "accounts.json")
    try:
        with open(path, encoding="utf-8") as f:
            acc = json.load(f)
    except FileNotFoundError:
        acc = {"users": []}
    except (OSError, ValueError) as e:
        raise ConfigError("accounts.json: %s" % e)
    if not isinstance(acc, dict) or not isinstance(acc.get("users", []), list):
        raise ConfigError("accounts.json: want an object with a list \"users\"")
    acc.setdefault("users", [])
    for u in acc["users"]:
        if not isinstance(u, dict) or not isinstance(u.get("name"), str):
            raise ConfigError("accounts.json: every user needs a \"name\"")
        u.setdefault("certificates", [])
    return acc


def save_accounts(acc):
    path = os.path.join(STATE_DIR, "accounts.json")
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(acc, f, ensure_ascii=False, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def find_user(acc, name):
    for u in acc["users"]:
        if u.get("name") == name:
            return u
    return None


def log_line(method, path, user, outcome, status):
    line = "%s %s %s user=%s outcome=%s status=%d\n" % (
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), method,
        path.replace(" ", "%20") or "-",
        urllib.parse.quote(user, safe="@.-_>") if user else "-", outcome, status)
    with LOCK:
        with open(os.path.join(STATE_DIR, "log"), "a", encoding="utf-8") as f:
            f.write(line)


# ------------------------------------------------------------------ logic

def normalise_serial(text):
    """Upper-case hex, no separators, no leading zero octets, even length.
    Accepts spaces, ':' and '-' between digits and a leading 0x.
    Returns (serial, None) or (None, error message)."""
    s = (text or "").strip()
    if s[:2].lower() == "0x":
        s = s[2:]
    s = re.sub(r"[\s:-]", "", s)
    if not s:
        return None, "Zadejte sériové číslo certifikátu."
    if not re.fullmatch(r"[0-9A-Fa-f]+", s):
        return None, ("Sériové číslo smí obsahovat pouze hexadecimální číslice "
                      "(0–9, A–F).")
    s = s.upper().lstrip("0")
    if not s:
        return None, "Sériové číslo certifikátu nesmí být nulové."
    if len(s) % 2:
        s = "0" + s
    if len(s) > MAX_SERIAL_DIGITS:
        return None, "Sériové číslo je příliš dlouhé (nejvýše 20 bajtů)."
    return s, None


def serial_value(s):
    try:
        return int(re.sub(r"[\s:-]", "", s), 16)
    except (TypeError, ValueError):
        return None


def otp_ok(user, code):
    """user["otp"]: a fixed code (string), or {"totp": BASE32, "digits": 6,
    "period": 30} (RFC 6238, SHA-1; the current and the previous step)."""
    spec = user.get("otp")
    code = (code or "").strip()
    if not spec or not code:
        return False
    if isinstance(spec, str):
        return hmac.compare_digest(spec.encode(), code.encode())
    if isinstance(spec, dict) and isinstance(spec.get("totp"), str):
        key = base64.b32decode(spec["totp"].upper() + "=" * (-len(spec["totp"]) % 8))
        digits = int(spec.get("digits", 6))
        period = int(spec.get("period", 30))
        now = int(time.time()) // period
        for step in (now, now - 1):
            mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
            off = mac[-1] & 15
            val = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 10 ** digits
            if hmac.compare_digest(("%0*d" % (digits, val)).encode(), code.encode()):
                return True
    return False


def dn_text(dn):
    """nginx's RFC 2253 DN with \\XX escapes of UTF-8 bytes, made readable."""
    if not dn:
        return ""
    raw = re.sub(rb"\\([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]),
                 dn.encode("latin-1", "replace"))
    return raw.decode("utf-8", "replace").replace("\\,", ",")


def role_label(u):
    return "Lokální administrátor" if u.get("role") == "admin" else "Uživatel"


def count_label(n):
    if n == 1:
        return "1 certifikát"
    if 2 <= n <= 4:
        return "%d certifikáty" % n
    return "%d certifikátů" % n


# ------------------------------------------------------------------ HTML

CSS = """
body{font-family:Arial,Helvetica,sans-serif;margin:0;background:#eef1f5;color:#1b1b1b}
#stranka{max-width:980px;margin:0 auto;background:#fff}
.hlavicka{background:#003a70;color:#fff;padding:12px 20px;overflow:hidden}
.hlavicka a{color:#fff;text-decoration:none}
.logo{font-size:22px;font-weight:bold;margin-right:16px}
.uzivatel{float:right;font-size:13px}
.uzivatel form{display:inline}
.navigace{background:#dde6f0;padding:6px 20px}
.navigace ul{list-style:none;margin:0;padding:0}
.navigace li{display:inline;margin-right:18px}
.drobecky{font-size:12px;color:#555;padding:6px 20px}
.obsah{padding:10px 20px 30px}
.paticka{font-size:12px;color:#555;padding:10px 20px;border-top:1px solid #ccc}
.chyba{background:#fde8e8;border:1px solid #c00;color:#900;padding:8px;margin:8px 0}
.zprava{background:#e8f5e8;border:1px solid #080;color:#060;padding:8px;margin:8px 0}
.zalozky{list-style:none;padding:0;margin:6px 0}
.zalozky li{display:inline;margin-right:12px}
.prihlasovaci-formular{display:none;border:1px solid #ccc;padding:10px;margin:8px 0}
.prihlasovaci-formular:target,.prihlasovaci-formular.vychozi{display:block}
label{display:inline-block;min-width:170px}
.radek{margin:6px 0}
table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #bbb;padding:4px 8px;text-align:left}
"""


def esc(s):
    return html.escape("" if s is None else str(s), quote=True)


def hidden(name, value):
    return '<input type="hidden" name="%s" value="%s">' % (esc(name), esc(value))


def page(cfg, title, body, user=None, sess=None, crumbs=()):
    p = cfg["paths"]
    top = []
    if user is not None:
        top.append(
            '<div id="%s" class="uzivatel">Přihlášen: <strong>%s</strong> (%s), %s '
            '<form id="%s" method="post" action="%s">%s'
            '<button type="submit">Odhlásit</button></form></div>' % (
                esc(cfg["ids"]["user_box"]), esc(user.get("full_name") or user["name"]),
                esc(user["name"]), esc(user.get("office", "")), esc(cfg["forms"]["logout"]),
                esc(p["logout"]), hidden(cfg["fields"]["csrf"], sess["csrf"])))
    nav = ['<li><a href="%s">Úvod</a></li>' % esc(p["login"])]
    if user is not None:
        nav.append('<li><a href="%s">Můj profil</a></li>' % esc(p["profile"]))
        nav.append('<li><a href="%s">Seznam certifikátů</a></li>' % esc(p["cert_list"]))
        if user.get("role") == "admin":
            nav.append('<li><a href="%s">Uživatelé</a></li>' % esc(p["users"]))
    else:
        nav.append('<li><a href="%s">Přihlášení</a></li>' % esc(p["login"]))
    nav.append('<li><a href="%s#napoveda">Nápověda</a></li>' % esc(p["login"]))
    crumb = " › ".join(["Správa dat"] + [esc(c) for c in crumbs])
    return (
        '<!DOCTYPE html>\n<html lang="cs">\n<head>\n<meta charset="utf-8">\n'
        '<title>%s – Správa dat – Czech POINT</title>\n<style>%s</style>\n</head>\n<body>\n'
        '<div id="stranka">\n'
        '<div id="hlavicka" class="hlavicka"><a class="logo" href="%s">Czech POINT</a>'
        '<span class="nazev">Správa dat – Jednotný identitní prostor</span>%s</div>\n'
        '<div id="navigace" class="navigace"><ul>%s</ul></div>\n'
        '<div id="drobecky" class="drobecky">%s</div>\n'
        '<div id="obsah" class="obsah">\n<h1>%s</h1>\n%s\n</div>\n'
        '<div id="paticka" class="paticka">© Digitální a informační agentura · '
        'Czech POINT – Správa dat · <em>testovací prostředí psrenew, nejde o skutečný portál</em>'
        '</div>\n</div>\n</body>\n</html>\n' % (
            esc(title), CSS, esc(p["login"]), "".join(top), "".join(nav), crumb,
            esc(title), body))


def error_box(cfg, msg):
    return '<div id="%s" class="chyba" role="alert"><p>%s</p></div>' % (
        esc(cfg["ids"]["error"]), esc(msg))


def message_box(cfg, msg):
    return '<div id="%s" class="zprava" role="status"><p>%s</p></div>' % (
        esc(cfg["ids"]["message"]), esc(msg))


def options_html(opts, selected):
    out = ['<option value="">-- vyberte --</option>']
    for val, label in opts:
        out.append('<option value="%s"%s>%s</option>' % (
            esc(val), ' selected="selected"' if val == selected else "", esc(label)))
    return "".join(out)


def cert_table(cfg, target):
    rows = []
    for c in target.get("certificates", []):
        rows.append(
            '<tr><td class="typ">%s</td><td class="autorita">%s</td>'
            '<td class="serial"><code>%s</code></td><td class="pridano">%s</td></tr>' % (
                esc(c.get("type")), esc(c.get("ca")), esc(c.get("serial")),
                esc(c.get("added", "")) or "–"))
    body = (
        '<h2>Seznam certifikátů komerčních a kvalifikovaných certifikátů uživatele</h2>\n'
        '<table id="%s" class="seznam">\n<thead><tr><th>Typ certifikátu</th>'
        '<th>Certifikační autorita</th><th>Sériové číslo</th><th>Přidáno</th></tr></thead>\n'
        '<tbody>%s</tbody>\n</table>\n' % (esc(cfg["ids"]["cert_table"]), "\n".join(rows)))
    if not rows:
        body += '<p class="prazdny">Uživatel nemá v JIP žádné certifikáty.</p>\n'
    return body


# ------------------------------------------------------------------ server

class Reply(Exception):
    """Raised to send a response: status, body (str) or a redirect."""

    def __init__(self, status, body="", location=None, outcome="page", headers=()):
        super().__init__(outcome)
        self.status = status
        self.body = body
        self.location = location
        self.outcome = outcome
        self.headers = list(headers)


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "SpravaDat-Test/1.0"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # the portal keeps its own log
        pass

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_HEAD(self):
        self.handle_any("HEAD")

    # -------------------------------------------------------------- frame

    def handle_any(self, method):
        self.user_name = None
        self.new_cookie = None
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        try:
            self.query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        except ValueError:
            self.query = {}
        try:
            cfg = load_config()
        except ConfigError as e:
            self.send_page(500, "<h1>500</h1><p>%s</p>" % esc(e), "config-error", method, path)
            return
        self.cfg = cfg
        try:
            slow = float(cfg.get("slow_seconds") or 0)
        except (TypeError, ValueError):
            slow = 0
        if slow > 0:
            time.sleep(min(slow, 600))
        form = {}
        if method == "POST":
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                n = -1
            if n < 0 or n > MAX_BODY:
                self.close_connection = True
                self.send_page(413, "<h1>413</h1>", "too-large", method, path)
                return
            raw = self.rfile.read(n)
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype == "application/x-www-form-urlencoded":
                try:
                    form = urllib.parse.parse_qs(raw.decode("utf-8"), keep_blank_values=True,
                                                 strict_parsing=False)
                except (UnicodeDecodeError, ValueError):
                    form = {}
        self.form = form
        if cfg.get("down"):
            body = page(cfg, "Služba je dočasně nedostupná",
                        error_box(cfg, "Správa dat je z důvodu údržby dočasně nedostupná. "
                                  "Zkuste to prosím později."))
            self.send_page(503, body, "down", method, path,
                           headers=[("Retry-After", str(cfg.get("retry_after", 60)))])
            return
        try:
            self.route(method, path)
        except Reply as r:
            if r.location:
                self.send_redirect(r.status, r.location, r.outcome, method, path)
            else:
                self.send_page(r.status, r.body, r.outcome, method, path, headers=r.headers)
        except ConfigError as e:
            self.send_page(500, "<h1>500</h1><p>%s</p>" % esc(e), "config-error", method, path)
        except Exception as e:  # a bug in the emulator: say so, keep serving
            import traceback
            traceback.print_exc()
            self.send_page(500, "<h1>500</h1><p>%s</p>" % esc(repr(e)), "bug", method, path)

    def common_headers(self, headers):
        for k, v in headers:
            self.send_header(k, v)
        if self.new_cookie is not None:
            self.send_header("Set-Cookie", self.new_cookie)
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Frame-Options", "DENY")

    # The log line is written before the answer leaves, so that the request
    # a client makes next (a redirect followed) is always logged after it.
    def send_page(self, status, body, outcome, method, path, headers=()):
        data = body.encode("utf-8")
        log_line(method, self.path, self.user_name, outcome, status)
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.common_headers(headers)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)

    def send_redirect(self, status, location, outcome, method, path):
        log_line(method, self.path, self.user_name, outcome, status)
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.common_headers(())
        self.end_headers()

    # -------------------------------------------------------------- sessions

    def cookie_sid(self):
        name = self.cfg["session_cookie"]
        for part in (self.headers.get("Cookie") or "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name and v:
                return v
        return None

    def session(self, acc):
        """(sid, session, state): state is "ok", "none" or "expired"."""
        sid = self.cookie_sid()
        timeout = float(acc.get("session_timeout_seconds", 1200))
        now = time.monotonic()
        with LOCK:
            for k in [k for k, s in SESSIONS.items() if now - s["last"] > timeout]:
                del SESSIONS[k]
                EXPIRED[k] = now
            for k in [k for k, t in EXPIRED.items() if now - t > 86400]:
                del EXPIRED[k]
            if sid and sid in SESSIONS:
                s = SESSIONS[sid]
                # accounts.json "expire_after_requests": N drops a logged-in
                # session at its Nth request (tests of a session expiring in
                # the middle of a batch, without waiting on the clock).
                limit = int(acc.get("expire_after_requests", 0) or 0)
                if s.get("user"):
                    s["requests"] = s.get("requests", 0) + 1
                if limit and s.get("user") and s["requests"] >= limit:
                    del SESSIONS[sid]
                    EXPIRED[sid] = now
                    return None, None, "expired"
                s["last"] = now
                return sid, s, "ok"
            if sid and sid in EXPIRED:
                return None, None, "expired"
        return None, None, "none"

    def new_session(self, user=None, method=None):
        sid = secrets.token_urlsafe(24)
        s = {"user": user, "csrf": secrets.token_urlsafe(32), "last": time.monotonic(),
             "method": method}
        with LOCK:
            SESSIONS[sid] = s
        self.new_cookie = "%s=%s; Path=/; Secure; HttpOnly; SameSite=Lax" % (
            self.cfg["session_cookie"], sid)
        return sid, s

    def drop_session(self, sid):
        with LOCK:
            SESSIONS.pop(sid, None)

    def field(self, key):
        v = self.form.get(self.cfg["fields"][key])
        return v[0] if v else None

    def check_csrf(self, sess):
        sent = self.field("csrf")
        if not sess or not sent or not hmac.compare_digest(sent.encode(), sess["csrf"].encode()):
            raise Reply(403, page(self.cfg, "Neplatný požadavek", error_box(
                self.cfg, "Neplatný nebo chybějící bezpečnostní token formuláře. "
                "Načtěte stránku znovu a akci opakujte.")), outcome="csrf-refused")

    def to_login(self, expired):
        p = self.cfg["paths"]["login"]
        raise Reply(303 if self.command == "POST" else 302,
                    location=p + ("?vyprsela=1" if expired else ""),
                    outcome="session-expired" if expired else "login-required")

    def require_login(self, acc):
        sid, sess, state = self.session(acc)
        if state != "ok" or not sess["user"]:
            self.to_login(state == "expired")
        user = find_user(acc, sess["user"])
        if user is None or user.get("locked"):
            self.drop_session(sid)
            self.to_login(False)
        self.user_name = user["name"]
        return sid, sess, user

    # -------------------------------------------------------------- routing

    def route(self, method, path):
        p = self.cfg["paths"]
        if method == "HEAD":
            method = "GET"
        if path == p["login"].rstrip("/") and p["login"].endswith("/") and path:
            raise Reply(301, location=p["login"], outcome="redirect")
        table = {
            ("GET", p["login"]): self.get_login,
            ("POST", p["login_post"]): self.post_login,
            ("GET", p["nia"]): self.get_nia,
            ("POST", p["logout"]): self.post_logout,
            ("GET", p["profile"]): self.get_profile,
            ("GET", p["cert_edit"]): self.get_cert_edit,
            ("POST", p["cert_edit"]): self.post_cert_edit,
            ("GET", p["cert_list"]): self.get_cert_list,
            ("GET", p["users"]): self.get_users,
        }
        fn = table.get((method, path))
        if fn is None:
            if any(path == k[1] for k in table):
                raise Reply(405, page(self.cfg, "Nepovolená metoda", error_box(
                    self.cfg, "Tato adresa tuto metodu nepodporuje.")), outcome="bad-method",
                    headers=[("Allow", ", ".join(sorted({k[0] for k in table if k[1] == path})))])
            raise Reply(404, page(self.cfg, "Stránka nenalezena", error_box(
                self.cfg, "Požadovaná stránka neexistuje.")), outcome="not-found")
        fn()

    # -------------------------------------------------------------- login

    def tls_client(self):
        return {
            "verify": self.headers.get("X-SSL-Client-Verify") or "NONE",
            "serial": (self.headers.get("X-SSL-Client-Serial") or "").strip(),
            "subject": dn_text(self.headers.get("X-SSL-Client-S-DN")),
            "issuer": dn_text(self.headers.get("X-SSL-Client-I-DN")),
            "not_after": self.headers.get("X-SSL-Client-V-End") or "",
        }

    def login_page(self, sess, error=None, message=None, status=200, outcome="page",
                   user_value=""):
        cfg = self.cfg
        f, fo, p = cfg["fields"], cfg["forms"], cfg["paths"]
        tok = hidden(f["csrf"], sess["csrf"])

        def creds(form_id, extra=""):
            return (
                '<div class="radek"><label for="%(id)s-jmeno">Uživatelské jméno</label>'
                '<input type="text" id="%(id)s-jmeno" name="%(u)s" value="%(uv)s" '
                'autocomplete="username" maxlength="100"></div>\n'
                '<div class="radek"><label for="%(id)s-heslo">Heslo</label>'
                '<input type="password" id="%(id)s-heslo" name="%(pw)s" '
                'autocomplete="current-password" maxlength="200"></div>\n%(extra)s'
                '<div class="radek"><input type="submit" name="%(sb)s" value="Přihlásit"></div>\n' % {
                    "id": esc(form_id), "u": esc(f["user"]), "pw": esc(f["password"]),
                    "sb": esc(f["login_submit"]), "uv": esc(user_value), "extra": extra})

        tls = self.tls_client()
        if tls["verify"] == "SUCCESS":
            cert_info = ('<p class="certifikat-info">Prohlížeč předložil certifikát '
                         '<strong>%s</strong>, vydal %s, sériové číslo <code>%s</code>.</p>' % (
                             esc(tls["subject"]), esc(tls["issuer"]), esc(tls["serial"])))
        elif tls["verify"] == "NONE":
            cert_info = ('<p class="certifikat-info">Prohlížeč nepředložil žádný klientský '
                         'certifikát.</p>')
        else:
            cert_info = ('<p class="certifikat-info">Předložený certifikát nelze ověřit: %s</p>'
                         % esc(tls["verify"]))
        otp_field = (
            '<div class="radek"><label for="%s-kod">Jednorázový kód (OTP)</label>'
            '<input type="text" id="%s-kod" name="%s" inputmode="numeric" '
            'autocomplete="one-time-code" maxlength="10"></div>\n' % (
                esc(fo["otp"]), esc(fo["otp"]), esc(f["otp"])))

        def form(form_id, meth, legend, inner, default=False):
            return (
                '<form id="%s" class="prihlasovaci-formular%s" method="post" action="%s">\n'
                '%s%s<fieldset><legend>%s</legend>\n%s</fieldset>\n</form>\n' % (
                    esc(form_id), " vychozi" if default else "", esc(p["login_post"]), tok,
                    hidden(f["method"], meth), esc(legend), inner))

        body = [
            '<div class="seznam-ovm"><a href="#napoveda">SEZNAM ORGÁNŮ VEŘEJNÉ MOCI</a></div>\n',
            '<div class="metody"><span>Přihlášení:</span>\n<ul class="zalozky">'
            '<li><a href="#%s"><strong>Jménem a heslem</strong></a></li>'
            '<li><a href="#%s">Certifikátem</a></li>'
            '<li><a href="#%s">OTP Autentizace</a></li>'
            '<li><a href="%s"><strong>NIA Autentizace</strong></a></li></ul></div>\n' % (
                esc(fo["password"]), esc(fo["cert"]), esc(fo["otp"]), esc(p["nia"])),
            '<h2>Zadejte přihlašovací údaje</h2>\n',
        ]
        if message:
            body.append(message_box(cfg, message) + "\n")
        if error:
            body.append(error_box(cfg, error) + "\n")
        body.append(form(fo["password"], "heslo", "Jménem a heslem", creds(fo["password"]), True))
        body.append(form(fo["cert"], "certifikat", "Certifikátem",
                         cert_info + "\n" + creds(fo["cert"])))
        body.append(form(fo["otp"], "otp", "OTP Autentizace", creds(fo["otp"], otp_field)))
        body.append(
            '<div id="napoveda" class="napoveda"><h2>Nápověda</h2>\n<p>Nemůžete-li se přihlásit '
            'kombinací certifikát, jméno a heslo, přihlaste se prostřednictvím NIA '
            '(Národní identitní autority). Pokud nic nepomáhá, certifikát vám může nahrát '
            'i váš lokální administrátor.</p></div>\n')
        raise Reply(status, page(cfg, "Přihlášení do Správy dat", "".join(body),
                                 crumbs=("Přihlášení",)), outcome=outcome)

    def get_login(self):
        acc = load_accounts()
        sid, sess, state = self.session(acc)
        if state == "ok" and sess["user"] and find_user(acc, sess["user"]):
            self.user_name = sess["user"]
            raise Reply(302, location=self.cfg["paths"]["profile"], outcome="already-logged-in")
        if state != "ok":
            sid, sess = self.new_session()
        msg = None
        if state == "expired" or self.query.get("vyprsela"):
            msg = "Platnost vaší relace vypršela. Přihlaste se prosím znovu."
        elif self.query.get("odhlaseno"):
            msg = "Byli jste odhlášeni."
        self.login_page(sess, message=msg)

    def post_login(self):
        cfg = self.cfg
        with LOCK:  # one read-modify-write of accounts.json at a time
            acc = load_accounts()
            sid, sess, state = self.session(acc)
            if state == "expired":
                self.to_login(True)
            self.check_csrf(sess)
            method = self.field("method") or "heslo"
            name = (self.field("user") or "").strip()
            password = self.field("password") or ""
            self.user_name = name or None
            if method not in ("heslo", "certifikat", "otp"):
                self.login_page(sess, error="Neznámý způsob přihlášení.", outcome="login-bad-method")
            user = find_user(acc, name) if name else None
            bad = "Neplatné uživatelské jméno nebo heslo."
            if user is None:
                self.login_page(sess, error=bad, outcome="login-unknown-user", user_value=name)
            limit = int(acc.get("max_failed_logins", 3))
            if user.get("locked"):
                self.login_page(sess, error=(
                    "Účet je zablokován po opakovaném zadání chybného hesla. "
                    "Odblokovat jej může váš lokální administrátor."), outcome="login-locked",
                    user_value=name)
            if not hmac.compare_digest(str(user.get("password", "")).encode(), password.encode()):
                user["failed_logins"] = int(user.get("failed_logins", 0)) + 1
                outcome = "login-bad-password"
                err = bad + " Zbývající počet pokusů: %d." % max(limit - user["failed_logins"], 0)
                if user["failed_logins"] >= limit:
                    user["locked"] = True
                    outcome = "login-locked-now"
                    err = ("Účet je zablokován po opakovaném zadání chybného hesla. "
                           "Odblokovat jej může váš lokální administrátor.")
                save_accounts(acc)
                self.login_page(sess, error=err, outcome=outcome, user_value=name)
            if method == "otp" and not otp_ok(user, self.field("otp")):
                user["failed_logins"] = int(user.get("failed_logins", 0)) + 1
                if user["failed_logins"] >= limit:
                    user["locked"] = True
                save_accounts(acc)
                self.login_page(sess, error="Neplatný jednorázový kód (OTP).",
                                outcome="login-bad-otp", user_value=name)
            if method == "certifikat":
                tls = self.tls_client()
                if tls["verify"] == "NONE":
                    self.login_page(sess, error="Nebyl předložen žádný klientský certifikát.",
                                    outcome="login-no-cert", user_value=name)
                if tls["verify"] != "SUCCESS":
                    self.login_page(sess, error="Předložený certifikát není platný (%s)." %
                                    tls["verify"], outcome="login-invalid-cert", user_value=name)
                want = serial_value(tls["serial"])
                ok = "PostSignum" in tls["issuer"] and any(
                    c.get("ca") == "PostSignum" and serial_value(c.get("serial", "")) == want
                    for c in user.get("certificates", []))
                if want is None or not ok:
                    self.login_page(sess, error="Předložený certifikát není přiřazen "
                                    "k tomuto uživatelskému účtu.",
                                    outcome="login-cert-not-registered", user_value=name)
            if user.get("failed_logins"):
                user["failed_logins"] = 0
            user["last_login"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            save_accounts(acc)
            self.drop_session(sid)
            self.new_session(user=user["name"], method=method)
            raise Reply(303, location=cfg["paths"]["profile"], outcome="login-ok-" + method)

    def get_nia(self):
        cfg = self.cfg
        acc = load_accounts()
        _, sess, state = self.session(acc)
        if state != "ok":
            _, sess = self.new_session()
        saml = base64.b64encode(
            ('<samlp:AuthnRequest ID="_%s" Destination="%s"/>' % (
                secrets.token_hex(8), cfg["nia_url"])).encode()).decode()
        body = (
            '<p>Přihlášení prostřednictvím <strong>Národního bodu pro identifikaci a '
            'autentizaci (NIA)</strong> probíhá na stránkách Národní identitní autority.</p>\n'
            '<p>Budete přesměrováni na externího poskytovatele identity '
            '<a href="%(u)s">%(u)s</a>, kde se přihlásíte svým prostředkem pro elektronickou '
            'identifikaci (eObčanka, Identita občana, bankovní identita, …). Po přihlášení se '
            'vrátíte zpět do Správy dat.</p>\n'
            '<form id="%(f)s" method="post" action="%(u)s">%(s)s<noscript><p>Váš prohlížeč '
            'nemá zapnutý JavaScript, pokračujte tlačítkem.</p></noscript>'
            '<input type="submit" value="Pokračovat na NIA"></form>\n'
            '<p><a href="%(l)s">Zpět na jiné způsoby přihlášení</a></p>\n' % {
                "u": esc(cfg["nia_url"]), "f": esc(cfg["forms"]["nia"]),
                "s": hidden("SAMLRequest", saml) + hidden("RelayState", sess["csrf"][:16]),
                "l": esc(cfg["paths"]["login"])})
        raise Reply(200, page(cfg, "NIA Autentizace", body, crumbs=("Přihlášení", "NIA")),
                    outcome="nia")

    def post_logout(self):
        acc = load_accounts()
        sid, sess, state = self.session(acc)
        if state == "expired":
            self.to_login(True)
        self.check_csrf(sess)
        self.user_name = sess.get("user")
        self.drop_session(sid)
        raise Reply(303, location=self.cfg["paths"]["login"] + "?odhlaseno=1", outcome="logout")

    # -------------------------------------------------------------- pages

    def get_profile(self):
        cfg = self.cfg
        acc = load_accounts()
        _, sess, user = self.require_login(acc)
        p = cfg["paths"]
        note = ""
        if self.query.get("upravit") == ["heslo"]:
            note = message_box(cfg, "Změna hesla není v testovacím prostředí k dispozici; "
                               "nové heslo vám nastaví lokální administrátor.")
        otp = "Nastaveno" if user.get("otp") else "Nenastaveno"
        rows = [
            ("Uživatelské jméno", esc(user["name"]), ""),
            ("Jméno a příjmení", esc(user.get("full_name", "")), ""),
            ("Orgán veřejné moci", esc(user.get("office", "")), ""),
            ("Role", esc(role_label(user)), ""),
            ("E-mail", esc(user.get("email", "")), ""),
            ("Heslo", "••••••••", '<a href="%s?upravit=heslo">Upravit</a>' % esc(p["profile"])),
            ("Certifikáty", esc(count_label(len(user.get("certificates", [])))),
             '<a href="%s">Upravit</a>' % esc(p["cert_edit"])),
            ("OTP", otp, ""),
        ]
        table = '<table id="%s" class="profil">\n<tbody>\n%s</tbody>\n</table>\n' % (
            esc(cfg["ids"]["profile_table"]),
            "".join('<tr><th scope="row">%s</th><td>%s</td><td class="akce">%s</td></tr>\n' % r
                    for r in rows))
        raise Reply(200, page(cfg, "Můj profil", note + table, user, sess, ("Můj profil",)),
                    outcome="profile")

    def target(self, acc, user, source):
        """The user whose certificates are shown/edited: the logged-in user,
        or (admin only) the one named by the target_user parameter."""
        v = source.get(self.cfg["fields"]["target_user"])
        name = v[0].strip() if v and v[0].strip() else None
        if not name or name == user["name"]:
            return user
        forbidden = Reply(403, page(self.cfg, "Přístup odepřen", error_box(
            self.cfg, "Nemáte oprávnění spravovat certifikáty tohoto uživatele. Lokální "
            "administrátor spravuje jen uživatele svého orgánu veřejné moci.")),
            outcome="forbidden")
        if user.get("role") != "admin":
            raise forbidden
        t = find_user(acc, name)
        if t is None or t.get("office") != user.get("office"):
            raise forbidden
        return t

    def edit_page(self, user, sess, target, error=None, message=None, values=None,
                  outcome="cert-edit"):
        cfg = self.cfg
        f = cfg["fields"]
        values = values or {}
        extra = ""
        who = ""
        if target is not user:
            extra = hidden(f["target_user"], target["name"])
            who = ('<p id="%s" class="cilovy-uzivatel">Uživatel: <strong>%s</strong> (%s), %s</p>\n'
                   % (esc(cfg["ids"]["target_user"]), esc(target.get("full_name", "")),
                      esc(target["name"]), esc(target.get("office", ""))))
        fid = cfg["forms"]["cert_edit"]
        body = [who]
        if message:
            body.append(message_box(cfg, message) + "\n")
        if error:
            body.append(error_box(cfg, error) + "\n")
        body.append(
            '<form id="%(fid)s" method="post" action="%(act)s">\n%(tok)s%(extra)s'
            '<fieldset><legend>Certifikáty</legend>\n'
            '<div class="radek"><label for="%(fid)s-typ">Typ certifikátu:</label>'
            '<select id="%(fid)s-typ" name="%(tn)s">%(to)s</select></div>\n'
            '<div class="radek"><label for="%(fid)s-ca">Certifikační autorita:</label>'
            '<select id="%(fid)s-ca" name="%(cn)s">%(co)s</select></div>\n'
            '<div class="radek"><label for="%(fid)s-serial">Sériové číslo:</label>'
            '<input type="text" id="%(fid)s-serial" name="%(sn)s" value="%(sv)s" '
            'maxlength="100"></div>\n'
            '<div class="tlacitka"><input type="submit" name="%(sb)s" value="Uložit změny"> '
            '<a href="%(back)s">Zpět</a></div>\n</fieldset>\n</form>\n' % {
                "fid": esc(fid), "act": esc(cfg["paths"]["cert_edit"]),
                "tok": hidden(f["csrf"], sess["csrf"]), "extra": extra,
                "tn": esc(f["type"]), "to": options_html(cfg["type_options"], values.get("type")),
                "cn": esc(f["ca"]), "co": options_html(cfg["ca_options"], values.get("ca")),
                "sn": esc(f["serial"]), "sv": esc(values.get("serial", "")),
                "sb": esc(f["save"]),
                "back": esc(cfg["paths"]["users"] if target is not user else cfg["paths"]["profile"])})
        body.append(cert_table(cfg, target))
        crumbs = ("Uživatelé", target["name"], "Certifikáty") if target is not user else (
            "Můj profil", "Certifikáty")
        raise Reply(200, page(cfg, "Certifikáty", "".join(body), user, sess, crumbs),
                    outcome=outcome)

    def get_cert_edit(self):
        acc = load_accounts()
        _, sess, user = self.require_login(acc)
        target = self.target(acc, user, self.query)
        msg = "Změny byly uloženy." if self.query.get("ulozeno") else None
        self.edit_page(user, sess, target, message=msg)

    def post_cert_edit(self):
        cfg = self.cfg
        with LOCK:
            acc = load_accounts()
            _, sess, user = self.require_login(acc)
            self.check_csrf(sess)
            target = self.target(acc, user, self.form)
            values = {"type": self.field("type") or "", "ca": self.field("ca") or "",
                      "serial": self.field("serial") or ""}
            if self.field("save") is None:  # no "Uložit změny": a plain re-post
                self.edit_page(user, sess, target, values=values, outcome="cert-edit-no-submit")
            types = dict(cfg["type_options"])
            cas = dict(cfg["ca_options"])
            if values["type"] not in types:
                self.edit_page(user, sess, target, values=values,
                               error="Vyberte typ certifikátu.", outcome="cert-invalid-type")
            if values["ca"] not in cas:
                self.edit_page(user, sess, target, values=values,
                               error="Vyberte certifikační autoritu.", outcome="cert-invalid-ca")
            serial, err = normalise_serial(values["serial"])
            if err:
                self.edit_page(user, sess, target, values=values, error=err,
                               outcome="cert-invalid-serial")
            entry = {"type": types[values["type"]], "ca": cas[values["ca"]], "serial": serial}
            want = serial_value(serial)
            exists = any(c.get("type") == entry["type"] and c.get("ca") == entry["ca"] and
                         serial_value(c.get("serial", "")) == want
                         for c in target["certificates"])
            outcome = "cert-exists" if exists else "cert-saved"
            if not exists:
                if cfg.get("drop_saves"):
                    outcome = "cert-dropped"
                else:
                    entry["added"] = time.strftime("%Y-%m-%d", time.gmtime())
                    target["certificates"].append(entry)
                    save_accounts(acc)
            loc = cfg["paths"]["cert_edit"] + "?ulozeno=1"
            if target is not user:
                loc += "&" + urllib.parse.urlencode({cfg["fields"]["target_user"]: target["name"]})
            self.user_name = "%s->%s" % (user["name"], target["name"]) if target is not user \
                else user["name"]
            raise Reply(303, location=loc, outcome=outcome)

    def get_cert_list(self):
        cfg = self.cfg
        acc = load_accounts()
        _, sess, user = self.require_login(acc)
        target = self.target(acc, user, self.query)
        who = ""
        link = cfg["paths"]["cert_edit"]
        if target is not user:
            who = ('<p id="%s" class="cilovy-uzivatel">Uživatel: <strong>%s</strong> (%s)</p>\n'
                   % (esc(cfg["ids"]["target_user"]), esc(target.get("full_name", "")),
                      esc(target["name"])))
            link += "?" + urllib.parse.urlencode({cfg["fields"]["target_user"]: target["name"]})
        body = who + cert_table(cfg, target) + '<p><a href="%s">Upravit</a></p>\n' % esc(link)
        raise Reply(200, page(cfg, "Seznam certifikátů", body, user, sess,
                              ("Můj profil", "Seznam certifikátů")), outcome="cert-list")

    def get_users(self):
        cfg = self.cfg
        acc = load_accounts()
        _, sess, user = self.require_login(acc)
        if user.get("role") != "admin":
            raise Reply(403, page(cfg, "Přístup odepřen", error_box(
                cfg, "Seznam uživatelů je přístupný jen lokálnímu administrátorovi.")),
                outcome="forbidden")
        rows = []
        for u in sorted(acc["users"], key=lambda u: u["name"]):
            if u.get("office") != user.get("office"):
                continue
            link = cfg["paths"]["cert_edit"] + "?" + urllib.parse.urlencode(
                {cfg["fields"]["target_user"]: u["name"]})
            rows.append(
                '<tr><td class="jmeno">%s</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td>'
                '<td class="akce"><a href="%s">Upravit certifikáty</a></td></tr>' % (
                    esc(u["name"]), esc(u.get("full_name", "")), esc(role_label(u)),
                    "Zablokován" if u.get("locked") else "Aktivní",
                    len(u.get("certificates", [])), esc(link)))
        body = (
            '<p>Orgán veřejné moci: <strong>%s</strong></p>\n'
            '<table id="%s" class="uzivatele">\n<thead><tr><th>Uživatelské jméno</th>'
            '<th>Jméno a příjmení</th><th>Role</th><th>Stav</th><th>Certifikáty</th>'
            '<th>Akce</th></tr></thead>\n<tbody>%s</tbody>\n</table>\n' % (
                esc(user.get("office", "")), esc(cfg["ids"]["users_table"]), "\n".join(rows)))
        raise Reply(200, page(cfg, "Uživatelé", body, user, sess, ("Uživatelé",)),
                    outcome="users")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global STATE_DIR
    ap = argparse.ArgumentParser(description="local JIP 'Správa dat' test portal")
    ap.add_argument("--state", help="state directory (accounts.json, portal.json, log)")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    ap.add_argument("--port-file", help="write the port chosen here once listening")
    ap.add_argument("--print-defaults", action="store_true", help="print the default portal.json")
    a = ap.parse_args()
    if a.print_defaults:
        json.dump(DEFAULTS, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        return 0
    if not a.state:
        ap.error("--state is required")
    STATE_DIR = os.path.abspath(a.state)
    srv = Server(("127.0.0.1", a.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

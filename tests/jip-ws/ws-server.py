#!/usr/bin/env python3
"""A local test stand-in for the JIP/KAAS and CAAIS editing web service.

    ws-server.py --state STATE_DIR [--port N] [--port-file FILE]

Written from the CAAIS integration documentation (api-idm/editacni-ws:
2-komunikace-ws.rst, 3-metody-edit-1.rst, 7-chybove-zpravy.rst): plain XML
POSTed to one endpoint per subject, not SOAP. Plain HTTP on 127.0.0.1:
nginx (tests/jip-ws/nginx.conf.in) does TLS in front of it and, for WS
1.1, the client certificate. Its markup and behaviour are our own reading
of the documents, not a copy of the real service.

Endpoints:
  /spravadat/ws/call/SUBJECT[/]         WS 1.0, HTTP Basic (the admins)
  /spravadat/ws-edit/1/call/SUBJECT     WS 1.1, a client certificate that
                                        nginx verified (X-SSL-Client-Verify)
Methods: GetUser, UpdateUser (clientCertificate set as a whole set),
CreateUser, GetVersion. Every request body is checked with xmllint
against ws-test.xsd (the namespace of the endpoint's version); a body
that does not validate gets ErrorResponse CVAL-0010 (HTTP 400).

STATE_DIR/data.json, read on every request, written after changes:
  {"subjects": ["MV"], "admins": {"admin": "Admin-456"},
   "users": {"jnovak": {"certs": [{"type": "V", "number": "0A",
                                   "issuer": "CN=..., O=..., C=CZ"}],
                        "cas": 1700000000}}}
STATE_DIR/mode.json (optional, read on every request):
  "caais": true            refuse new Q certificates (CreateUser and
                           UpdateUser: ErrorResponse SREN-3070)
  "error": {"status": 200, "code": "CSAV-0001", "message": "...",
            "method": "GetUser"}    answer that method (or "*") with it
  "change_after_reads": N  after each of the next N GetUser answers,
                           someone else adds a certificate to that user
  "lose_updates": true     UpdateUser answers OK and changes nothing
  "down": true             every request gets HTTP 503
  "slow": SECONDS          wait that long before answering
STATE_DIR/log: one JSON line per request: method, object (the login),
  version, auth (the Basic user or "cert:SERIAL"), conn (nginx's
  connection number), valid (the schema check), status, body. The
  password is never logged.
"""
import argparse
import base64
import http.server
import json
import os
import re
import signal
import socketserver
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

STATE = None
HERE = os.path.dirname(os.path.abspath(__file__))
NS = {"1.0": "http://userportal.novell.com/ws/WS-LA-1.0",
      "1.1": "http://userportal.novell.com/ws/WS-LA-1.1"}
LOCK = threading.Lock()
OTHER = {"type": "V", "number": "77AA", "issuer": "CN=Jina CA, O=Jinde, C=CZ"}


def load(name, default):
    try:
        with open(os.path.join(STATE, name), encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def save(name, obj):
    tmp = os.path.join(STATE, name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
    os.replace(tmp, os.path.join(STATE, name))


def log(entry):
    with open(os.path.join(STATE, "log"), "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def esc(s):
    return (str(s).replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&quot;"))


def schema(version):
    """ws-test.xsd with the namespace of the version, kept in STATE."""
    path = os.path.join(STATE, "ws-%s.xsd" % version)
    if not os.path.exists(path):
        with open(os.path.join(HERE, "ws-test.xsd"), encoding="utf-8") as f:
            text = f.read().replace(NS["1.0"], NS[version])
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return path


def valid(body, version):
    r = subprocess.run(["xmllint", "--noout", "--nonet", "--schema", schema(version), "-"],
                       input=body, capture_output=True)
    return r.returncode == 0, r.stderr.decode("utf-8", "replace")[-400:]


class Reply(Exception):
    def __init__(self, status, body, headers=()):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, list(headers)


def error(ns, code, message, status=200):
    # 7-chybove-zpravy.rst: the HTTP status is not defined, 200 included.
    raise Reply(status, '<ErrorResponse xmlns="%s"><Code>%s</Code><Message>%s</Message>'
                '</ErrorResponse>' % (ns, esc(code), esc(message)))


def now_cas(prev):
    return max(int(prev or 0) + 1, int(time.time()))


def user_xml(ns, u):
    items = "".join(
        "<item><type text=\"%s\">%s</type><number>%s</number><issuer>%s</issuer></item>" % (
            "QUALIFIED" if c["type"] == "Q" else "COMMERCIAL", esc(c["type"]),
            esc(c["number"]), esc(c["issuer"])) for c in u.get("certs", []))
    return ('<GetUserResponse xmlns="%s"><firstname>%s</firstname><surname>%s</surname>'
            '<loginDisabled text="Ne">FALSE</loginDisabled>'
            '<clientCertificate>%s</clientCertificate>'
            '<casPosledniZmeny>%d</casPosledniZmeny></GetUserResponse>' % (
                ns, esc(u.get("firstname", "Jan")), esc(u.get("surname", "Novák")),
                items, int(u.get("cas", 0))))


def certs_of(root, ns):
    cc = root.find("{%s}clientCertificate" % ns)
    if cc is None:
        return None
    return [{"type": it.findtext("{%s}type" % ns, "").strip(),
             "number": it.findtext("{%s}number" % ns, "").strip(),
             "issuer": it.findtext("{%s}issuer" % ns, "").strip()}
            for it in cc.findall("{%s}item" % ns)]


def handle(method, login, root, ns, data, mode):
    users = data.setdefault("users", {})
    if method == "GetVersion":
        raise Reply(200, '<ns2:GetVersionResponse xmlns:ns2="%s">%s</ns2:GetVersionResponse>'
                    % (ns, ns.rsplit("/", 1)[1]))
    if method == "CreateUser":
        certs = certs_of(root, ns) or []
        if mode.get("caais") and any(c["type"] == "Q" for c in certs):
            error(ns, "SREN-3070", "Nelze zpracovat zaslaný certifikát (CAAIS: jen typ V).")
        if login in users:
            error(ns, "CVAL-0110", "Uvedené uživatelské jméno je již použito.")
        users[login] = {"certs": certs, "cas": now_cas(0)}
        save("data.json", data)
        raise Reply(200, '<CreateUserResponse object-id="%s" xmlns="%s">OK</CreateUserResponse>'
                    % (esc(login), ns))
    if login not in users:
        error(ns, "CSAV-0001", "Uživatel nemá právo přistupovat k danému objektu.")
    u = users[login]
    if method == "GetUser":
        body = user_xml(ns, u)
        if mode.get("change_after_reads", 0) > 0:
            # someone else edits the user right after this read
            mode["change_after_reads"] -= 1
            save("mode.json", mode)
            extra = dict(OTHER, number="%X" % (0x77AA + len(u.get("certs", []))))
            u.setdefault("certs", []).append(extra)
            u["cas"] = now_cas(u.get("cas"))
            save("data.json", data)
        raise Reply(200, body)
    if method == "UpdateUser":
        certs = certs_of(root, ns)
        if certs is not None:
            old = u.get("certs", [])
            if mode.get("caais") and any(c["type"] == "Q" and c not in old for c in certs):
                error(ns, "SREN-3070", "Nelze zpracovat zaslaný certifikát (CAAIS: jen typ V).")
            if not mode.get("lose_updates"):
                u["certs"] = certs  # the whole set (3-metody-edit-1.rst)
                u["cas"] = now_cas(u.get("cas"))
                save("data.json", data)
        raise Reply(200, '<UpdateUserResponse object-id="%s" xmlns="%s">OK</UpdateUserResponse>'
                    % (esc(login), ns))
    error(ns, "CAPP-0003", "Funkce nebyla implementována.")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, headers=()):
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/xml; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.send(404, "<nic/>")

    def auth(self, version, data):
        if version == "1.1":
            if self.headers.get("X-SSL-Client-Verify") != "SUCCESS":
                raise Reply(403, "<forbidden/>")
            return "cert:" + (self.headers.get("X-SSL-Client-Serial") or "?")
        h = self.headers.get("Authorization", "")
        if h.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(h[6:]).decode("utf-8").partition(":")
            except ValueError:
                user, pw = "", None
            if data.get("admins", {}).get(user) == pw and pw is not None:
                return user
        raise Reply(401, "<unauthorized/>", [("WWW-Authenticate", 'Basic realm="ws"')])

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        entry = {"path": self.path, "conn": self.headers.get("X-Connection"),
                 "body": body.decode("utf-8", "replace")}
        m = re.fullmatch(r"/spravadat/ws(-edit/1)?/call/([A-Za-z._]+)(/?)", self.path)
        version = "1.1" if m and m.group(1) else "1.0"
        ns = NS[version]
        entry["version"] = version
        time.sleep(float(load("mode.json", {}).get("slow", 0)))
        try:
            with LOCK:
                data = load("data.json", {})
                mode = load("mode.json", {})
                if mode.get("down"):
                    raise Reply(503, "<down/>")
                if not m:
                    raise Reply(404, "<nic/>")
                entry["auth"] = self.auth(version, data)
                if m.group(2) not in data.get("subjects", []):
                    error(ns, "CURL-003", "Bylo voláno URL s nepřístupným subjektem.")
                ok, why = valid(body, version)
                entry["valid"] = ok
                if not ok:
                    entry["why"] = why
                    error(ns, "CVAL-0010", "Požadavek neodpovídá schématu deskriptoru.", 400)
                root = ET.fromstring(body)
                method = root.tag.split("}")[1].replace("Request", "")
                login = root.get("object-id", "")
                entry.update(method=method, object=login)
                err = mode.get("error")
                if err and err.get("method") in ("*", method):
                    error(ns, err["code"], err.get("message", ""), err.get("status", 200))
                handle(method, login, root, ns, data, mode)
        except Reply as r:
            entry["status"] = r.status
            log(entry)
            self.send(r.status, r.body, r.headers)
        except Exception as e:  # a bug here: say so, in the log too
            entry.update(status=500, bug=repr(e))
            log(entry)
            self.send(500, "<bug/>")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global STATE
    ap = argparse.ArgumentParser(description="local editing web service test server")
    ap.add_argument("--state", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    a = ap.parse_args()
    STATE = os.path.abspath(a.state)
    srv = Server(("127.0.0.1", a.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(a.port_file + ".tmp", a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

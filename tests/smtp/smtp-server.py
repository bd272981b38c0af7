#!/usr/bin/python3
"""A real SMTP server for psrenew's tests (aiosmtpd, Debian's python3-aiosmtpd).

    smtp-server.py --maildir DIR [--port N] [--pid-file FILE] [--ready-file FILE]
                   [--tls-cert FILE --tls-key FILE [--smtps] [--require-starttls]]
                   [--users FILE [--allow-plain-auth]]
                   [--reject-rcpt ADDR]... [--tempfail] [--max-size N]

Listens on 127.0.0.1 only (never another address), port N (default 0: a free
one chosen by the kernel; the real port is written to the ready file).

  --maildir DIR     every accepted message is saved as DIR/NNN.eml: exactly
                    the message bytes the client sent in DATA (after SMTP
                    dot-unstuffing, CRLF kept, final CRLF included; aiosmtpd's
                    envelope.original_content), and DIR/NNN.json:
                      {"n": 1, "mail_from": "a@b", "rcpt_tos": ["c@d"],
                       "auth_user": "user" | null, "tls": "starttls" |
                       "smtps" | null, "helo": "...", "mail_options": [...],
                       "rcpt_options": [...], "peer": "127.0.0.1",
                       "size": BYTES, "received": "ISO-8601 UTC"}
                    NNN counts from 001 (3 digits or more), continuing after
                    the highest number already in DIR. The .json is written
                    before the .eml, both atomically (temporary name, rename),
                    and before the server answers 250 to the final dot: when
                    the client sees success, the files are there.
  --tls-cert FILE, --tls-key FILE
                    PEM certificate (chain) and key: offers STARTTLS.
  --smtps           with --tls-cert/--tls-key: implicit TLS (SMTPS) on the
                    port instead of STARTTLS.
  --require-starttls
                    with STARTTLS: every command but EHLO/HELO/NOOP/QUIT/
                    STARTTLS gets "530 Must issue a STARTTLS command first"
                    until TLS is up.
  --users FILE      lines "user:password" (split at the first colon; blank
                    lines and lines starting with # skipped). AUTH PLAIN and
                    AUTH LOGIN are offered, and MAIL/RCPT/DATA before a
                    successful AUTH get "530 5.7.0 Authentication required";
                    a wrong user or password gets "535 5.7.8 Authentication
                    credentials invalid". AUTH is offered only on an
                    encrypted connection (STARTTLS done, or --smtps); on plain
                    SMTP the EHLO does not list AUTH and AUTH gets "538 5.7.11
                    Encryption required ..." unless --allow-plain-auth.
                    Without --users no AUTH is offered and none is needed.
  --allow-plain-auth
                    allows AUTH without TLS (aiosmtpd's auth_require_tls=False).
  --reject-rcpt ADDR
                    (repeatable) RCPT TO:<ADDR> gets "550 5.1.1 mailbox
                    unavailable" (compared case-insensitively); the other
                    recipients are accepted.
  --tempfail        every MAIL FROM gets "451 4.3.0 try again later".
  --max-size N      the largest message in bytes (EHLO SIZE N; MAIL FROM with
                    SIZE=larger gets 552 at once, a larger DATA gets 552 after
                    the final dot). 0: no limit. Default: aiosmtpd's 33554432.
  --pid-file FILE   the server's pid, written at start, removed at exit.
  --ready-file FILE the port number and a newline, written once the server
                    accepts connections (atomically), removed at exit.

Runs until SIGTERM or SIGINT, then stops listening, removes the pid and ready
files and exits 0. Logs to stderr (one line per connection, command outcome
and saved message). Exit status 2: bad options or files.

aiosmtpd limits: lines longer than 1000 octets (998 + CRLF) in DATA get
"500 Line too long"; SMTPUTF8 is not offered; the EHLO greeting name is
"localhost".
"""

import argparse
import datetime
import json
import logging
import os
import re
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

log = logging.getLogger("smtp-server")

REJECT_RCPT = "550 5.1.1 mailbox unavailable"
TEMPFAIL = "451 4.3.0 try again later"


def die(msg):
    print(f"smtp-server.py: {msg}", file=sys.stderr)
    sys.exit(2)


def write_atomic(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def read_users(path):
    users = {}
    try:
        with open(path, encoding="utf-8") as f:
            for no, line in enumerate(f, 1):
                line = line.rstrip("\r\n")
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                user, sep, password = line.partition(":")
                if not sep or not user:
                    die(f"{path}:{no}: not user:password")
                users[user] = password
    except OSError as e:
        die(f"{path}: {e.strerror}")
    if not users:
        die(f"{path}: no users")
    return users


class Handler:
    """aiosmtpd hooks: the policy (--tempfail, --reject-rcpt) and the maildir."""

    def __init__(self, maildir, reject, tempfail, smtps, offer_auth):
        self.maildir = maildir
        self.reject = {a.lower() for a in reject}
        self.tempfail = tempfail
        self.smtps = smtps
        self.offer_auth = offer_auth
        self.lock = threading.Lock()
        self.seq = 0
        for name in os.listdir(maildir):
            m = re.fullmatch(r"([0-9]+)\.(eml|json)", name)
            if m:
                self.seq = max(self.seq, int(m.group(1)))

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # The 5-argument hook must do what aiosmtpd does without one.
        session.host_name = hostname
        if not self.offer_auth:
            responses = [r for r in responses if not r.startswith("250-AUTH")]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):
        if self.tempfail:
            log.info("%s MAIL FROM:<%s> -> %s", peer(session), address, TEMPFAIL)
            return TEMPFAIL
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.lower() in self.reject:
            log.info("%s RCPT TO:<%s> -> %s", peer(session), address, REJECT_RCPT)
            return REJECT_RCPT
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content
        with self.lock:
            self.seq += 1
            n = self.seq
        if session.ssl is not None:
            tls = "starttls"
        elif self.smtps:
            tls = "smtps"
        else:
            tls = None
        meta = {
            "n": n,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": session.auth_data if session.authenticated else None,
            "tls": tls,
            "helo": session.host_name,
            "mail_options": list(envelope.mail_options),
            "rcpt_options": list(envelope.rcpt_options),
            "peer": session.peer[0] if session.peer else None,
            "size": len(data),
            "received": datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec="seconds"),
        }
        base = os.path.join(self.maildir, f"{n:03d}")
        try:
            write_atomic(base + ".json",
                         (json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
                         .encode("utf-8"))
            write_atomic(base + ".eml", data)
        except OSError as e:
            log.error("%s cannot save message %03d: %s", peer(session), n, e)
            return "451 4.3.0 cannot save the message"
        log.info("%s saved %s.eml (%d bytes) from <%s> to %s", peer(session),
                 base, len(data), envelope.mail_from,
                 ", ".join(f"<{r}>" for r in envelope.rcpt_tos))
        return f"250 2.0.0 OK queued as {n:03d}"


def peer(session):
    return f"{session.peer[0]}:{session.peer[1]}" if session.peer else "?"


class Authenticator:
    def __init__(self, users):
        self.users = users

    def __call__(self, server, session, envelope, mechanism, auth_data):
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = user in self.users and self.users[user] == password
        log.info("%s AUTH %s user=%r %s", peer(session), mechanism, user,
                 "ok" if ok else "failed")
        if ok:
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)


class LocalController(Controller):
    """aiosmtpd's Controller, but it works with port 0 (the kernel picks a
    free port) and reports a failed bind at once (aiosmtpd 1.4 waits for
    ready_timeout first)."""

    def _run(self, ready_event):
        try:
            super()._run(ready_event)
        finally:
            ready_event.set()

    def _trigger_server(self):
        if self._thread_exception is not None:
            raise self._thread_exception
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def main():
    ap = argparse.ArgumentParser(prog="smtp-server.py",
                                 description="SMTP test server on 127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--maildir", required=True)
    ap.add_argument("--pid-file")
    ap.add_argument("--ready-file")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--smtps", action="store_true")
    ap.add_argument("--require-starttls", action="store_true")
    ap.add_argument("--users")
    ap.add_argument("--allow-plain-auth", action="store_true")
    ap.add_argument("--reject-rcpt", action="append", default=[])
    ap.add_argument("--tempfail", action="store_true")
    ap.add_argument("--max-size", type=int)
    a = ap.parse_args()

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    # aiosmtpd warns about "auth without TLS", which --allow-plain-auth asks for
    logging.captureWarnings(True)

    if not 0 <= a.port <= 65535:
        die(f"--port {a.port}: not a port")
    if a.max_size is not None and a.max_size < 0:
        die("--max-size must be >= 0")
    if bool(a.tls_cert) != bool(a.tls_key):
        die("--tls-cert and --tls-key go together")
    if (a.smtps or a.require_starttls) and not a.tls_cert:
        die("--smtps and --require-starttls need --tls-cert and --tls-key")
    if a.smtps and a.require_starttls:
        die("--smtps and --require-starttls exclude each other")
    if not os.path.isdir(a.maildir):
        try:
            os.makedirs(a.maildir, exist_ok=True)
        except OSError as e:
            die(f"{a.maildir}: {e.strerror}")

    tls = None
    if a.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            tls.load_cert_chain(a.tls_cert, a.tls_key)
        except (OSError, ssl.SSLError) as e:
            die(f"{a.tls_cert}, {a.tls_key}: {e}")

    users = read_users(a.users) if a.users else None
    if users and not tls and not a.allow_plain_auth:
        log.warning("--users without TLS or --allow-plain-auth: "
                    "no client can authenticate, every MAIL gets 530")

    kwargs = {
        "server_hostname": "localhost",  # no getfqdn() (DNS) per connection
        "decode_data": False,
        "enable_SMTPUTF8": False,
    }
    if a.max_size is not None:
        kwargs["data_size_limit"] = a.max_size or None
    if tls and not a.smtps:
        kwargs["tls_context"] = tls
        kwargs["require_starttls"] = a.require_starttls
    if users:
        kwargs["authenticator"] = Authenticator(users)
        kwargs["auth_required"] = True
        # aiosmtpd only counts STARTTLS as "TLS" (not implicit TLS), so
        # SMTPS needs auth_require_tls=False: the connection is TLS anyway.
        kwargs["auth_require_tls"] = not (a.allow_plain_auth or a.smtps)
    else:
        kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN"]

    handler = Handler(a.maildir, a.reject_rcpt, a.tempfail, a.smtps,
                      offer_auth=bool(users))

    # SIGTERM/SIGINT are only recorded here, the main thread does the stopping.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    if a.pid_file:
        write_atomic(a.pid_file, f"{os.getpid()}\n".encode())
    controller = LocalController(handler, hostname="127.0.0.1", port=a.port,
                                 ssl_context=tls if a.smtps else None,
                                 ready_timeout=10, **kwargs)
    try:
        controller.start()
    except Exception as e:  # bind failed (port in use), timeout...
        if a.pid_file:
            try:
                os.unlink(a.pid_file)
            except OSError:
                pass
        print(f"smtp-server.py: cannot listen on 127.0.0.1:{a.port}: {e}",
              file=sys.stderr, flush=True)
        # Out at once: the half-started controller's event loop would
        # otherwise be collected at exit with a traceback of its own
        # (asyncio's BaseEventLoop.__del__), burying this message.
        os._exit(1)
    port = controller.port
    log.info("listening on 127.0.0.1:%d (%s%s%s%s)", port,
             "smtps" if a.smtps else ("starttls" if tls else "plain"),
             ", auth" if users else "",
             ", tempfail" if a.tempfail else "",
             (", reject " + " ".join(a.reject_rcpt)) if a.reject_rcpt else "")
    if a.ready_file:
        write_atomic(a.ready_file, f"{port}\n".encode())
    try:
        while not stop.wait(1):
            pass
    finally:
        log.info("stopping")
        controller.stop()
        for f in (a.ready_file, a.pid_file):
            if f:
                try:
                    os.unlink(f)
                except OSError:
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

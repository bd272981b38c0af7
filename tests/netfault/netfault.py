#!/usr/bin/env python3
"""A server that fails the way networks and servers fail, for the CLI tests
(tests/cli/netfault.bats).

    netfault.py DIR [--tls CERT KEY]

Listens on 127.0.0.1 (a free port, written to DIR/port once listening) and
answers every connection as DIR/mode says (read at each connection, so a
test switches faults without a restart):

  close       accepts and closes at once
  reset       reads the request, sends half a status line, resets (RST)
  hang        accepts, reads, never answers (until the client gives up)
  http500     HTTP 500 Internal Server Error
  http503     HTTP 503 with Retry-After: 120
  truncated   HTTP 200 announcing 4000 bytes, sends 20, closes
  garbage     HTTP 200 with 3000 random bytes (content-type as EST's)
  smtp-hang   accepts, never greets
  smtp-421    greets with 421 (service not available) and closes
  smtp-reset  greets, resets at the first command

With --tls the connection is TLS (the certificate and key given), before
the mode applies; "close" and "reset" then happen after the handshake.
Each connection appends its mode to DIR/log. Stops on SIGTERM.
"""
import os
import signal
import socket
import ssl
import struct
import sys
import threading


def read_request(c):
    data = b""
    c.settimeout(5)
    try:
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, OSError):
        pass
    return data


def rst(c):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


def answer(c, mode, stop):
    if mode == "close":
        c.close()
        return
    if mode.startswith("smtp"):
        if mode == "smtp-hang":
            stop.wait(600)
        elif mode == "smtp-421":
            c.sendall(b"421 netfault: service not available, try later\r\n")
        elif mode == "smtp-reset":
            c.sendall(b"220 netfault ESMTP\r\n")
            c.settimeout(5)
            try:
                c.recv(1024)
            except OSError:
                pass
            rst(c)
            return
        c.close()
        return
    read_request(c)
    if mode == "reset":
        c.sendall(b"HTTP/1.1 200 O")
        rst(c)
        return
    if mode == "hang":
        stop.wait(600)
    elif mode == "http500":
        c.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 6\r\n"
                  b"Connection: close\r\n\r\nbroken")
    elif mode == "http503":
        c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\n"
                  b"Content-Length: 4\r\nConnection: close\r\n\r\nbusy")
    elif mode == "truncated":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pkcs7-mime\r\n"
                  b"Content-Length: 4000\r\nConnection: close\r\n\r\n"
                  b"MIIBxTCCAWugAwIBAgIU")
    elif mode == "garbage":
        body = os.urandom(3000)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pkcs7-mime; "
                  b"smime-type=certs-only\r\nContent-Transfer-Encoding: base64\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    try:
        c.close()
    except OSError:
        pass


def main():
    d = sys.argv[1]
    ctx = None
    if len(sys.argv) >= 5 and sys.argv[2] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: (stop.set(), os._exit(0)))
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    with open(os.path.join(d, "port.tmp"), "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(os.path.join(d, "port.tmp"), os.path.join(d, "port"))

    def handle(c):
        try:
            with open(os.path.join(d, "mode")) as f:
                mode = f.read().strip()
        except OSError:
            mode = "close"
        with open(os.path.join(d, "log"), "a") as f:
            f.write(mode + "\n")
        try:
            if ctx and not mode.startswith("smtp"):
                c.settimeout(10)
                c = ctx.wrap_socket(c, server_side=True)
                c.settimeout(None)
            answer(c, mode, stop)
        except (OSError, ssl.SSLError):
            try:
                c.close()
            except OSError:
                pass

    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""drain_probe.py - what clients of a draining quorumd see (test_drain.sh).

    drain_probe.py drain PORT CA PID PROJECT TOKEN
        Opens a kept-alive connection (one GET /healthz answered), asks
        GET /readyz (so the broker knows a health checker watches), parks a
        long poll (POST .../leases, wait_ms 20000), then sends PID SIGTERM
        and reports, one "key=value" a line: the long poll's status, leases,
        Connection header and how long it took; whether the idle connection
        was closed; /readyz on a new connection during the drain; whether a
        new connection is refused once the listening window is over.
    drain_probe.py hold PORT CA
        Opens a connection, sends half a request head, prints "held" and
        keeps it until stdin closes: a client the drain waits for.
"""
import json
import os
import signal
import socket
import ssl
import sys
import time


def connect(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw)


def send(s, method, path, token=None, body=None):
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    data = b""
    if body is not None:
        data = json.dumps(body).encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    s.sendall(head.encode() + b"\r\n" + data)


def read_response(s):
    """(status, headers dict lower-cased, body bytes); status 0 when the
    connection closed before a response."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return 0, {}, b""
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:n]


def closed_within(s, seconds):
    s.settimeout(seconds)
    try:
        return s.recv(1) == b""
    except (socket.timeout, TimeoutError):
        return False
    except (ConnectionError, ssl.SSLError):
        return True


def drain(port, ca, pid, project, token):
    idle = connect(port, ca)
    send(idle, "GET", "/healthz")
    print(f"idle_first={read_response(idle)[0]}")
    r = connect(port, ca)
    send(r, "GET", "/readyz")
    print(f"readyz_before={read_response(r)[0]}")
    r.close()
    poll = connect(port, ca)
    send(poll, "POST", f"/v1/projects/{project}/leases", token, {"max": 1, "wait_ms": 20000})
    time.sleep(0.5)  # parked by now
    t0 = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    st, hd, body = read_response(poll)
    took = int((time.monotonic() - t0) * 1000)
    leases = json.loads(body).get("leases") if st == 200 else None
    print(f"poll_status={st}")
    print(f"poll_leases={json.dumps(leases)}")
    print(f"poll_connection={hd.get('connection', '')}")
    print(f"poll_ms={took}")
    print(f"poll_closed_after={int(closed_within(poll, 3))}")
    print(f"idle_closed={int(closed_within(idle, 3))}")
    try:
        r = connect(port, ca)
        send(r, "GET", "/readyz")
        st, hd, body = read_response(r)
        doc = json.loads(body) if body else {}
        print(f"readyz_during={st} draining={json.dumps(doc.get('draining'))}"
              f" connection={hd.get('connection', '')}")
    except OSError as e:
        print(f"readyz_during=error {e}")
    time.sleep(2.5)  # past the listening window (2000 ms)
    try:
        connect(port, ca).close()
        print("refused_after_window=0")
    except OSError:
        print("refused_after_window=1")


def hold(port, ca):
    s = connect(port, ca)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127")
    print("held", flush=True)
    sys.stdin.read()
    s.close()


if __name__ == "__main__":
    if sys.argv[1] == "drain":
        drain(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    elif sys.argv[1] == "hold":
        hold(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(f"drain_probe.py: unknown command {sys.argv[1]}")

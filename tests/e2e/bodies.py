"""bodies.py - many connections sending large bodies to quorumd at once, while
/healthz is timed on a connection of its own and the broker's resident memory
is sampled from /proc (used by test_bodies.sh).

usage: bodies.py PORT CA PID CONNS KIND TOKEN PATH BYTES [ROUNDS]
  KIND json: a body of BYTES bytes of '[],' inside {"max":1,"x":[...]};
  KIND jsonl: BYTES bytes of JSON lines whose first line is not JSON;
  TOKEN "-" sends no Authorization header; each sender sends ROUNDS
  bodies (default 1), one after the other, each on a new connection.
Prints one JSON object: statuses seen (or "reset"), healthz p50/p99/max in
ms, the broker's peak VmRSS in MiB during the run, and the seconds taken.
"""
import json, multiprocessing, os, socket, ssl, sys, threading, time

port, ca, pid, conns = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
kind, token, path, size = sys.argv[5], sys.argv[6], sys.argv[7], int(sys.argv[8])
rounds = int(sys.argv[9]) if len(sys.argv) > 9 else 1
ctx = ssl.create_default_context(cafile=ca)

def connect():
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    return ctx.wrap_socket(s, server_hostname="127.0.0.1")

def make_body():
    if kind == "json":
        head, tail = b'{"max":1,"x":[', b"[]]}"
        n = (size - len(head) - len(tail)) // 3
        return head + b"[]," * n + tail
    line = b'{"text":"' + b"x" * 100 + b'"}\n'
    return b"not json\n" + line * ((size - 9) // len(line))

body = make_body()
statuses, lock = [], threading.Lock()

def read_status(t):
    data = b""
    while b"\r\n" not in data:
        chunk = t.recv(4096)
        if not chunk:
            break
        data += chunk
    line = data.split(b"\r\n", 1)[0].split()
    return line[1].decode() if len(line) > 1 else "eof"

def sender():
    for _ in range(rounds):
        send_one()

def send_one():
    st = "reset"
    try:
        t = connect()
        hdr = "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" % path
        if token != "-":
            hdr += "Authorization: Bearer %s\r\n" % token
        hdr += "Content-Length: %d\r\n\r\n" % len(body)
        t.sendall(hdr.encode())
        try:
            view = memoryview(body)
            for off in range(0, len(view), 1 << 20):
                t.sendall(view[off:off + (1 << 20)])
        except OSError:
            pass  # refused from the head: the server closed; its answer may be readable
        st = read_status(t)
        t.close()
    except OSError as e:
        st = st if st != "reset" else "reset"
    with lock:
        statuses.append(st)

# The prober runs in a process of its own, so that the senders' threads
# (and the interpreter lock they share) do not delay its measurements.
def sample_rss(done, out):
    peak = 0
    while not done.is_set():
        try:
            with open("/proc/%d/status" % pid) as f:
                for l in f:
                    if l.startswith("VmRSS:"):
                        peak = max(peak, int(l.split()[1]))
        except OSError:
            pass
        time.sleep(0.02)
    out.put(peak)

def healthz(done, out):
    lat = []
    t = connect()
    while not done.is_set():
        t0 = time.perf_counter()
        t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b'{"status":"ok"}'):
            chunk = t.recv(4096)
            if not chunk:
                raise SystemExit("healthz connection closed")
            data += chunk
        lat.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)
    out.put(lat)

t0 = time.time()
done = multiprocessing.Event()
rss_q, lat_q = multiprocessing.Queue(), multiprocessing.Queue()
aux = [multiprocessing.Process(target=sample_rss, args=(done, rss_q)),
       multiprocessing.Process(target=healthz, args=(done, lat_q))]
for a in aux:
    a.start()
# The senders stand for clients on other machines: on this one they must
# not take the CPU from the broker and the prober (which keep nice 0).
os.nice(10)
time.sleep(0.3)
senders = [threading.Thread(target=sender) for _ in range(conns)]
for s in senders:
    s.start()
for s in senders:
    s.join()
time.sleep(0.3)
done.set()
rss_peak, lat = [rss_q.get()], lat_q.get()
for a in aux:
    a.join()
lat.sort()
pick = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 2)
counts = {}
for s in statuses:
    counts[s] = counts.get(s, 0) + 1
print(json.dumps({"statuses": counts, "healthz_n": len(lat), "healthz_p50_ms": pick(0.5),
                  "healthz_p99_ms": pick(0.99), "healthz_max_ms": round(lat[-1], 2),
                  "rss_peak_mib": round(rss_peak[0] / 1024, 1),
                  "seconds": round(time.time() - t0, 1)}))

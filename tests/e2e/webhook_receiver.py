#!/usr/bin/env python3
"""A webhook receiver for tests/e2e/test_webhooks.sh.

  webhook_receiver.py serve PORT LOG        answer 200 to every POST and append
                                            one JSON line per request to LOG
  webhook_receiver.py check LOG SECRET...   verify every logged request's
                                            signature with one of the secrets;
                                            print a JSON summary

Each log line: {"event_id", "event", "signature", "body"} (body as text), as
received. The check recomputes HMAC-SHA256 over "t.body" and compares it
with v1 in X-Quorum-Signature; it prints the number of requests, of distinct
event ids, of bad signatures, and the events by type (distinct ids).
"""
import hashlib
import hmac
import http.server
import json
import sys
import threading


def serve(port, log):
    lock = threading.Lock()
    out = open(log, "a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n).decode("utf-8")
            rec = {
                "event_id": self.headers.get("X-Quorum-Event-Id"),
                "event": self.headers.get("X-Quorum-Event"),
                "signature": self.headers.get("X-Quorum-Signature"),
                "body": body,
            }
            with lock:
                out.write(json.dumps(rec) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        allow_reuse_address = True
        daemon_threads = True

    Server(("127.0.0.1", int(port)), Handler).serve_forever()


def check(log, secrets):
    n = bad = 0
    ids = {}
    for line in open(log):
        rec = json.loads(line)
        n += 1
        sig = dict(p.split("=", 1) for p in (rec["signature"] or "").split(","))
        ok = False
        for s in secrets:
            mac = hmac.new(s.encode(), (sig.get("t", "") + "." + rec["body"]).encode(),
                           hashlib.sha256).hexdigest()
            if hmac.compare_digest(mac, sig.get("v1", "")):
                ok = True
        body = json.loads(rec["body"])
        if not ok or body["id"] != rec["event_id"] or body["type"] != rec["event"]:
            bad += 1
        ids[rec["event_id"]] = body
    by_type = {}
    for b in ids.values():
        by_type[b["type"]] = by_type.get(b["type"], 0) + 1
    annotations = sorted(b["data"]["annotation_id"] for b in ids.values()
                         if b["type"] == "annotation.created")
    tasks = sorted(b["data"]["task_id"] for b in ids.values() if b["type"] == "task.completed")
    print(json.dumps({
        "requests": n,
        "distinct": len(ids),
        "bad_signatures": bad,
        "by_type": by_type,
        "annotation_ids_distinct": len(set(annotations)) == len(annotations),
        "task_ids_distinct": len(set(tasks)) == len(tasks),
        "event_ids": sorted(ids),
    }))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 4 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3:])
    else:
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(2)

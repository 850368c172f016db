#!/usr/bin/env python3
"""A reviewer crew for tests/e2e/test_review.sh and test_review_select.sh.

  review_crew.py URL[,URL2...] CA PROJECT LOG NAME=TOKEN...

Each reviewer, in a thread of its own, leases review items (3 at a time,
alternating between the brokers' URLs) until a grant is empty and decides
each by the task's truth (its data's _true_label): accept the consensus
when it is the truth, else pick an annotation that is, else correct the
value to it. Each decision is appended to LOG as "task reviewer decision
value". Any refusal, or a decided value other than the truth, fails the
crew (exit 1, the errors printed).
"""
import json, ssl, sys, threading, urllib.request, urllib.error
urls, ca, project, log = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4]
crew = [t.split("=", 1) for t in sys.argv[5:]]
ctx = ssl.create_default_context(cafile=ca)
lock = threading.Lock()
out = open(log, "a")
errors = []
def call(url, path, token, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)
def reviewer(k, name, token):
    # Each reviewer alternates between the brokers, all at once.
    n = 0
    while True:
        url = urls[n % len(urls)]
        n += 1
        st, body = call(url, "/v1/projects/%s/reviews/leases" % project, token, {"max": 3})
        if st != 200:
            errors.append((name, st, body))
            return
        if not body["leases"]:
            return
        for l in body["leases"]:
            truth = l["data"]["_true_label"]
            cons = l["consensus"]
            if not cons["tie"] and cons["value"] == truth:
                d = {"decision": "accept"}
            else:
                picks = [a["annotation_id"] for a in l["annotations"] if a["value"] == truth]
                d = {"decision": "pick", "annotation_id": picks[0]} if picks else \
                    {"decision": "correct", "value": truth}
            st, r = call(url, "/v1/projects/%s/reviews/leases/%s/submit" % (project, l["lease"]),
                         token, d)
            if st != 200 or r["value"] != truth:
                errors.append((name, st, r))
                continue
            with lock:
                out.write("%d %s %s %s\n" % (l["task_id"], name, d["decision"], r["value"]))
                out.flush()
threads = [threading.Thread(target=reviewer, args=(k, n, t)) for k, (n, t) in enumerate(crew)]
for t in threads:
    t.start()
for t in threads:
    t.join()
for e in errors:
    print("crew error:", e)
sys.exit(1 if errors else 0)

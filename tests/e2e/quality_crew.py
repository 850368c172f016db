#!/usr/bin/env python3
"""quality_crew.py URL CA TOKEN PROJECT KEY [LIMIT]: one annotator labels a
project's tasks as their data says: the label of each task is its data's
value under KEY (a string for a plain project, a labels object for a schema
project; a task whose data has no KEY is skipped). Leases 10 at a time and
submits each in a batch, until the broker has no task left for them or
LIMIT tasks are labeled. Prints how many were submitted. Used by
tests/e2e/test_quality_api.sh and tests/e2e/test_ui_dashboard.sh, whose
expected agreement figures follow from the data alone."""
import json
import ssl
import sys
import urllib.request


def call(url, ca, token, method, path, body=None):
    ctx = ssl.create_default_context(cafile=ca)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        return json.loads(r.read())


def main():
    url, ca, token, project, key = sys.argv[1:6]
    limit = int(sys.argv[6]) if len(sys.argv) > 6 else 1 << 30
    done = 0
    while done < limit:
        got = call(url, ca, token, "POST", f"/v1/projects/{project}/leases",
                   {"max": min(10, limit - done)})
        leases = got["leases"]
        if not leases:
            break
        results = []
        for l in leases:
            v = l["data"].get(key)
            if v is None:
                call(url, ca, token, "POST", f"/v1/projects/{project}/leases/{l['lease']}/skip", {})
                continue
            results.append({"lease": l["lease"], **({"labels": v} if isinstance(v, dict) else {"label": v})})
        if results:
            r = call(url, ca, token, "POST", f"/v1/projects/{project}/submit", {"results": results})
            bad = [x for x in r["results"] if x.get("status") not in (200, 201)]
            if bad:
                sys.exit("submit refused: %s" % json.dumps(bad))
            done += len(results)
    print(done)


if __name__ == "__main__":
    main()

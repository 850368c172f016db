#!/usr/bin/env bash
# The dashboard at /ui/ (issue 17, point 1). First the pages as HTTP: served
# without a token from the bytes built into quorumd, with their types and a
# strict Content-Security-Policy, /ui redirected to /ui/, any other name
# (../, percent-encoded dots, a NUL) 404, anything but GET and HEAD 405.
# Then in a real browser (Debian's chromium, headless, driven by
# chromium-driver through python3-selenium: tests/ui/dashboard.py): a
# project worked by an owner's crew and a vendor's crew (quorum-agent
# simulate), a bad token refused at the login, the dashboard's numbers
# equal to the API's, a vendor manager's dashboard with only their crew, and
# the token in no URL and not in localStorage; the quality view's confusion
# matrix and agreement over time equal to the API's; a low-agreement task
# clicked open, its annotations the per-task route's and PostgreSQL's, and
# the same task as a vendor's manager sees it (their crew only). Screenshots
# of each view go to build/ui-screenshots/ under the source root.
. "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3 # Debian's, which has python3-selenium
start_broker
CTL="$QR_BIN_DIR/quorumctl"

# --- the pages over HTTP --------------------------------------------------------------------
hdr() { curl -sS --cacert "$CA" --path-as-is -o /dev/null -D - "$@" | tr -d '\r'; }
code() { curl -sS --cacert "$CA" --path-as-is -o /dev/null -w '%{http_code}' "$@"; }

h=$(hdr "$URL/ui/")
check "GET /ui/ without a token: 200" 1 "$(grep -c '^HTTP/1.1 200' <<<"$h")"
check "/ui/ is HTML" "content-type: text/html; charset=utf-8" "$(grep -i '^content-type:' <<<"$h" | tr A-Z a-z)"
csp=$(grep -i '^content-security-policy:' <<<"$h")
check "CSP: scripts of this origin only, no inline, no eval" 1 \
    "$(grep -c "script-src 'self';" <<<"$csp")"
check "CSP: no 'unsafe-inline' or 'unsafe-eval' anywhere" 0 "$(grep -c 'unsafe' <<<"$csp" || true)"
check "CSP: frame-ancestors 'none'" 1 "$(grep -c "frame-ancestors 'none'" <<<"$csp")"
check "nosniff" 1 "$(grep -ci '^x-content-type-options: nosniff' <<<"$h")"
check "Cache-Control: no-cache" 1 "$(grep -ci '^cache-control: no-cache' <<<"$h")"
check "app.js is JavaScript" "content-type: text/javascript; charset=utf-8" \
    "$(hdr "$URL/ui/app.js" | grep -i '^content-type:' | tr A-Z a-z)"
check "style.css is CSS" "content-type: text/css; charset=utf-8" \
    "$(hdr "$URL/ui/style.css" | grep -i '^content-type:' | tr A-Z a-z)"
check "the served app.js is the source's, byte for byte" "$(sha256sum <"$QR_SOURCE_DIR/broker/ui/app.js")" \
    "$(curl -sS --cacert "$CA" "$URL/ui/app.js" | sha256sum)"
h=$(hdr "$URL/ui")
check "/ui: 308 to /ui/" "HTTP/1.1 308 Permanent Redirect|location: /ui/" \
    "$(grep '^HTTP' <<<"$h")|$(grep -i '^location:' <<<"$h" | tr A-Z a-z)"
h=$(hdr -I "$URL/ui/views.js")
check "HEAD /ui/views.js: 200 with the length and no body" \
    "HTTP/1.1 200 OK|$(wc -c <"$QR_SOURCE_DIR/broker/ui/views.js")" \
    "$(grep '^HTTP' <<<"$h")|$(grep -i '^content-length:' <<<"$h" | awk '{print $2}')"
for p in /ui/nope.js /ui/../v1/whoami /ui/%2e%2e/v1/whoami /ui/..%2fv1%2fwhoami /ui/%2e%2e \
    /ui/app.js/ /ui//app.js /ui/./app.js /ui/app.js%00 /ui/APP.JS /ui/index.html.bak; do
    check "GET $p: 404" 404 "$(code "$URL$p")"
done
check "the 404 of a page still has the CSP" 1 "$(hdr "$URL/ui/nope" | grep -ci '^content-security-policy:')"
check "POST /ui/: 405" 405 "$(code -X POST --data x "$URL/ui/")"
check "DELETE /ui/app.js: 405" 405 "$(code -X DELETE "$URL/ui/app.js")"
check "/uix is no page: the API's 404" 404 "$(code "$URL/uix")"
check "the pages are no route: quorumd routes has none" 0 \
    "$("$QR_BIN_DIR/quorumd" routes | grep -c '"/ui' || true)"

# --- a project worked by two crews ------------------------------------------------------------
tok() { # ORG-NAME (empty: the admin's) USER ROLE -> a token
    local r body
    body="{\"user\":\"$2\",\"role\":\"$3\"${1:+,\"organization\":\"$1\"}}"
    r=$(api POST /v1/tokens "$ADMIN_TOKEN" "$body")
    [ "${r%% *}" = 201 ] || { echo "token for $2: $r" >&2; return 1; }
    echo "${r#* }" | jq -r .token
}
api POST /v1/organizations "$ADMIN_TOKEN" '{"name":"vendor-v"}' >/dev/null
VMGR=$(tok vendor-v vmgr manager)
P=$("$CTL" project create --name "news topics" --labels sports,technology,cooking,weather \
    --annotations-per-task 3)
"$CTL" project share --project "$P" --org vendor-v >/dev/null
"$PY" -c '
import json, random
r = random.Random(5)
L = ["sports", "technology", "cooking", "weather"]
for i in range(300):
    print(json.dumps({"data": {"text": "item %d" % i, "_true_label": r.choice(L)}}))
' | "$CTL" import --project "$P" - >/dev/null
P2=$("$CTL" project create --name "paused one" --labels yes,no)
echo '{"data":{"n":1}}' | "$CTL" import --project "$P2" - >/dev/null
"$CTL" project pause --project "$P2" >/dev/null

# Each crew works a few seconds and stops with part of the queue left.
QUORUM_TOKEN=$VMGR timeout 60 "$QR_BIN_DIR/quorum-agent" simulate --project "$P" --annotators 2 \
    --accuracy 0.7 --think-ms 20-60 --duration 3 --skip-rate 0.05 --seed 1 --no-spool >/dev/null
timeout 60 "$QR_BIN_DIR/quorum-agent" simulate --project "$P" --annotators 4 --accuracy 0.6-0.95 \
    --think-ms 20-60 --duration 4 --skip-rate 0.05 --seed 2 --no-spool >/dev/null
n=$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P")
check "the crews left part of the work: some annotations, not all 900" true \
    "$([ "$n" -gt 20 ] && [ "$n" -lt 900 ] && echo true || echo "$n")"
check "two of the annotators are the vendor's" 2 \
    "$(sql "SELECT count(*) FROM users u JOIN organizations o ON o.id = u.org_id WHERE o.name = 'vendor-v' AND u.role = 'annotator'")"

# The tasks completed so far are spread over the last 5 minutes (by task id),
# so the quality view's agreement over time has several points.
sql "UPDATE annotations a SET created_at = a.created_at - (t.id % 5) * interval '1 minute'
     FROM tasks t WHERE t.id = a.task_id AND t.project_id = $P AND t.state = 'complete'" >/dev/null

# --- in the browser -----------------------------------------------------------------------------
SHOTS="$QR_SOURCE_DIR/build/ui-screenshots"
mkdir -p "$SHOTS"
if out=$(timeout 120 "$PY" "$QR_SOURCE_DIR/tests/ui/dashboard.py" --url "$URL" --ca "$CA" \
    --admin "$ADMIN_TOKEN" --vendor "$VMGR" --project "$P" --shots "$SHOTS" --dump "$E2E_DIR/shown.json" \
    2>"$E2E_DIR/browser.log"); then
    :
else
    fail "tests/ui/dashboard.py exited $?: $(tail -20 "$E2E_DIR/browser.log")"
fi
echo "$out"
PASSES=$((PASSES + $(grep -c '^ok - ' <<<"$out" || true)))
FAILS=$((FAILS + $(grep -c '^not ok - ' <<<"$out" || true)))
check "the browser checks ran" true "$([ "$(grep -c '^ok - ' <<<"$out" || true)" -ge 10 ] && echo true || echo false)"
# The task the browser opened: its annotations as PostgreSQL holds them.
T=$(jq .task "$E2E_DIR/shown.json" 2>/dev/null || echo 0)
check "the task view showed the task's annotations as PostgreSQL holds them" \
    "$(sql "SELECT coalesce(json_object_agg(id, label), '{}') FROM annotations WHERE task_id = $T" | jq -cS .)" \
    "$(jq -cS .admin "$E2E_DIR/shown.json" 2>/dev/null)"
check "the vendor's manager's: their crew's, as PostgreSQL holds them" \
    "$(sql "SELECT coalesce(json_object_agg(a.id, a.label), '{}') FROM annotations a JOIN users u ON u.id = a.annotator_id
            JOIN organizations o ON o.id = u.org_id WHERE a.task_id = $T AND o.name = 'vendor-v'" | jq -cS .)" \
    "$(jq -cS .vendor "$E2E_DIR/shown.json" 2>/dev/null)"
check "the task has annotations of both organizations (the vendor's view is a true subset)" true \
    "$(sql "SELECT count(DISTINCT u.org_id) = 2 FROM annotations a JOIN users u ON u.id = a.annotator_id WHERE a.task_id = $T" | sed 's/^t$/true/; s/^f$/false/')"
for s in login projects project quality task vendor-project vendor-quality vendor-task; do
    check "screenshot $s.png written" true "$([ -s "$SHOTS/$s.png" ] && echo true || echo false)"
done
finish

#!/usr/bin/env bash
# Isolation: every route of the router's own table (quorumd routes), tried
# with no token, a revoked token, an expired token, and a token of each role
# in the project's organization (A, the owner), in a vendor organization the
# project is shared with (V) and in a vendor organization it is not shared
# with (W). The expected status of every (route, caller) is in the one table
# below; a route missing from the table, or in the table but not in the
# router, fails the test, so a new route cannot be forgotten.
. "$(dirname "$0")/lib.sh"

# The table's requests go one after another over one kept-alive connection
# (one curl, below): the failed authentications of its token-less, revoked
# and expired callers would pass --auth-fail-rate, a limit test_limits tries.
start_broker --auth-fail-rate 0

# --- the expected outcomes ------------------------------------------------------------
# A project the caller's organization neither owns nor shares answers 403,
# whether it exists or not (ids cannot be enumerated). A vendor (V) may lease
# and read the project, its progress and its own crew's throughput, report
# and export; it may not import, see or change shares, or read the agreement
# report (every organization's annotators). PUT/DELETE of a share name the
# organization 999999, which does not exist (404 for the owner). Only the
# owner's admins and managers pause and resume (the resume row follows the
# pause row, so the project runs again for what comes after the table), and
# so for archive and unarchive. Every caller lists its own organization's
# projects (GET /v1/projects) and, but for annotators, its users. A delete
# by the owner answers 409 tasks_leased: the lease rows above left leases
# live (their TTL of 10 minutes outlasts the table; the project is still
# needed below).
# A predictions update (PUT .../predictions) is an import's kin: the
# owner's admins and managers only (the body sets one task's prediction).
# Webhooks receive every organization's annotations: only the owner's admins
# and managers make, list or delete them (POST with "{}" is 422: no url; the
# webhook 999999 does not exist: 404).
# Only the owner's admins and managers reinstate a paused annotator (user
# 999999 is not paused: 404).
# Review (issue 16): the owner's admins, managers and reviewers lease review
# items and decide them; annotators and every vendor are refused (a reviewer
# sees every organization's answers). The project reviews nothing, so a
# grant is empty; the review lease 999999 does not exist (submit 404,
# heartbeat and release 409). Selecting tasks for review (reviews/select)
# is the owner's admins' and managers' (nothing is complete: 200, none
# selected).
# Relabel rounds (issue 16): only the owner's admins and managers open one
# (no task is complete, so the selection is empty: 422); its reviewers may
# list them too; no vendor (a round reopens every organization's work).
# One task with its annotations (issue 17): the owner's and a sharing
# vendor's admins, managers and reviewers (a vendor sees its crew's
# annotations only), never an annotator; task 999999 does not exist: 404.
# columns: none revoked expired | A:admin A:manager A:reviewer A:annotator | V:admin V:manager V:reviewer V:annotator | W:admin W:manager W:reviewer W:annotator
read -r -d '' EXPECTED <<'TABLE' || true
GET /healthz                                  200 200 200  200 200 200 200  200 200 200 200  200 200 200 200
GET /readyz                                   200 200 200  200 200 200 200  200 200 200 200  200 200 200 200
GET /v1/openapi.json                          200 200 200  200 200 200 200  200 200 200 200  200 200 200 200
GET /v1/whoami                                401 401 401  200 200 200 200  200 200 200 200  200 200 200 200
POST /v1/users                                401 401 401  201 201 403 403  201 201 403 403  201 201 403 403
POST /v1/projects                             401 401 401  201 201 403 403  201 201 403 403  201 201 403 403
POST /v1/tokens                               401 401 401  201 201 403 403  201 201 403 403  201 201 403 403
GET /v1/tokens                                401 401 401  200 200 403 403  200 200 403 403  200 200 403 403
DELETE /v1/tokens/*                           401 401 401  404 404 403 403  404 404 403 403  404 404 403 403
POST /v1/certs                                401 401 401  422 422 403 403  422 422 403 403  422 422 403 403
GET /v1/certs                                 401 401 401  200 200 403 403  200 200 403 403  200 200 403 403
DELETE /v1/certs/*                            401 401 401  404 404 403 403  404 404 403 403  404 404 403 403
POST /v1/organizations                        401 401 401  201 403 403 403  403 403 403 403  403 403 403 403
GET /v1/organizations                         401 401 401  200 403 403 403  200 403 403 403  200 403 403 403
GET /v1/projects/*                            401 401 401  200 200 200 200  200 200 200 200  403 403 403 403
POST /v1/projects/*/tasks                     401 401 401  201 201 403 403  403 403 403 403  403 403 403 403
GET /v1/projects/*/shares                     401 401 401  200 200 403 403  403 403 403 403  403 403 403 403
GET /v1/projects/*/imports                    401 401 401  200 200 403 403  403 403 403 403  403 403 403 403
PUT /v1/projects/*/predictions                401 401 401  200 200 403 403  403 403 403 403  403 403 403 403
PUT /v1/projects/*/shares/*                   401 401 401  404 404 403 403  403 403 403 403  403 403 403 403
DELETE /v1/projects/*/shares/*                401 401 401  404 404 403 403  403 403 403 403  403 403 403 403
POST /v1/projects/*/leases                    401 401 401  200 200 403 200  200 200 403 200  403 403 403 403
POST /v1/projects/*/leases/*/heartbeat        401 401 401  409 409 403 409  409 409 403 409  403 403 403 403
POST /v1/projects/*/leases/*/submit           401 401 401  409 409 403 409  409 409 403 409  403 403 403 403
POST /v1/projects/*/leases/*/release          401 401 401  409 409 403 409  409 409 403 409  403 403 403 403
POST /v1/projects/*/leases/*/skip             401 401 401  409 409 403 409  409 409 403 409  403 403 403 403
POST /v1/projects/*/submit                    401 401 401  200 200 403 200  200 200 403 200  403 403 403 403
POST /v1/projects/*/annotations/*/undo        401 401 401  409 409 403 409  409 409 403 409  403 403 403 403
GET /v1/projects/*/progress                   401 401 401  200 200 200 200  200 200 200 200  403 403 403 403
GET /v1/projects/*/agreement                  401 401 401  200 200 200 403  403 403 403 403  403 403 403 403
GET /v1/projects/*/tasks/*                    401 401 401  404 404 404 403  404 404 404 403  403 403 403 403
GET /v1/projects/*/throughput                 401 401 401  200 200 200 403  200 200 200 403  403 403 403 403
GET /metrics                                  401 401 401  200 403 403 403  403 403 403 403  403 403 403 403
GET /v1/projects/*/export                     401 401 401  200 200 200 403  200 200 200 403  403 403 403 403
GET /v1/projects/*/report                     401 401 401  200 200 200 403  200 200 200 403  403 403 403 403
POST /v1/projects/*/pause                     401 401 401  200 200 403 403  403 403 403 403  403 403 403 403
POST /v1/projects/*/resume                    401 401 401  200 200 403 403  403 403 403 403  403 403 403 403
POST /v1/projects/*/annotators/*/reinstate    401 401 401  404 404 403 403  403 403 403 403  403 403 403 403
GET /v1/projects                              401 401 401  200 200 200 200  200 200 200 200  200 200 200 200
GET /v1/users                                 401 401 401  200 200 200 403  200 200 200 403  200 200 200 403
PATCH /v1/projects/*                          401 401 401  200 200 403 403  403 403 403 403  403 403 403 403
POST /v1/projects/*/archive                   401 401 401  200 200 403 403  403 403 403 403  403 403 403 403
POST /v1/projects/*/unarchive                 401 401 401  200 200 403 403  403 403 403 403  403 403 403 403
DELETE /v1/projects/*                         401 401 401  409 409 403 403  403 403 403 403  403 403 403 403
POST /v1/projects/*/webhooks                  401 401 401  422 422 403 403  403 403 403 403  403 403 403 403
GET /v1/projects/*/webhooks                   401 401 401  200 200 403 403  403 403 403 403  403 403 403 403
DELETE /v1/projects/*/webhooks/*              401 401 401  404 404 403 403  403 403 403 403  403 403 403 403
GET /v1/projects/*/webhooks/*/deliveries      401 401 401  404 404 403 403  403 403 403 403  403 403 403 403
POST /v1/projects/*/reviews/leases            401 401 401  200 200 200 403  403 403 403 403  403 403 403 403
POST /v1/projects/*/reviews/leases/*/submit   401 401 401  404 404 404 403  403 403 403 403  403 403 403 403
POST /v1/projects/*/reviews/leases/*/heartbeat 401 401 401 409 409 409 403  403 403 403 403  403 403 403 403
POST /v1/projects/*/reviews/leases/*/release  401 401 401  409 409 409 403  403 403 403 403  403 403 403 403
POST /v1/projects/*/reviews/select            401 401 401  200 200 403 403  403 403 403 403  403 403 403 403
POST /v1/projects/*/rounds                     401 401 401  422 422 403 403  403 403 403 403  403 403 403 403
GET /v1/projects/*/rounds                      401 401 401  200 200 200 403  403 403 403 403  403 403 403 403
TABLE

# --- callers ----------------------------------------------------------------------------
# The owner's admin makes the vendor organizations and a user of each role
# in them ("organization" in POST /v1/tokens).
declare -A TOK ORG
TOK[A:admin]=$ADMIN_TOKEN
for org in V W; do
    r=$(api POST /v1/organizations "$ADMIN_TOKEN" "{\"name\":\"vendor-$org\",\"kind\":\"vendor\"}")
    check "the owner's admin creates vendor $org" 201 "${r%% *}"
    ORG[$org]=$(echo "${r#* }" | jq .id)
    for role in admin manager reviewer annotator; do
        r=$(api POST /v1/tokens "$ADMIN_TOKEN" \
            "{\"user\":\"$org-$role\",\"role\":\"$role\",\"organization\":\"vendor-$org\"}")
        TOK[$org:$role]=$(echo "${r#* }" | jq -r .token)
    done
done
for role in manager reviewer annotator; do
    r=$(api POST /v1/tokens "$ADMIN_TOKEN" "{\"user\":\"A-$role\",\"role\":\"$role\"}")
    TOK[A:$role]=$(echo "${r#* }" | jq -r .token)
done
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"gone","role":"annotator"}')
REVOKED=$(echo "${r#* }" | jq -r .token)
api DELETE "/v1/tokens/$(echo "${r#* }" | jq .id)" >/dev/null
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"late","role":"annotator","expires":"1s"}')
EXPIRED=$(echo "${r#* }" | jq -r .token)
sleep 1.2

r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"iso","labels":["a","b"],"annotations_per_task":3,"lease_ttl_ms":600000}')
P=$(echo "${r#* }" | jq .id)
seq 1 50 | sed 's/.*/{"n":&}/' | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
FIRST_TASK=$(sql "SELECT min(id) FROM tasks WHERE project_id = $P")
r=$(api PUT "/v1/projects/$P/shares/${ORG[V]}" "$ADMIN_TOKEN" '{}')
check "the project is shared with V" 201 "${r%% *}"

# body_for ROUTE TAG: a valid body for ROUTE in BODY. (The table's requests
# are built without a subshell or pipe each: 830 of them took longer to write
# with some 3,000 forks than to send.)
body_for() {
    case "$1" in
    "POST /v1/users") BODY="{\"name\":\"u-$2\",\"role\":\"annotator\"}" ;;
    "POST /v1/projects") BODY="{\"name\":\"p-$2\",\"labels\":[\"x\"]}" ;;
    "POST /v1/tokens") BODY="{\"user\":\"t-$2\",\"role\":\"annotator\"}" ;;
    "POST /v1/organizations") BODY="{\"name\":\"o-$2\",\"kind\":\"vendor\"}" ;;
    "POST /v1/projects/*/tasks") BODY="{\"text\":\"new-$2\"}" ;; # a file imported twice is 409
    "POST /v1/projects/*/leases") BODY='{"max":1}' ;;
    "POST /v1/projects/*/leases/*/submit") BODY='{"label":"a"}' ;;
    "POST /v1/projects/*/submit") BODY='{"results":[{"lease":"999999","label":"a"}]}' ;;
    "PATCH /v1/projects/*") BODY='{"name":"iso"}' ;;
    "POST /v1/projects/*/reviews/leases") BODY='{"max":1}' ;;
    "POST /v1/projects/*/reviews/leases/*/submit") BODY='{"decision":"accept"}' ;;
    "POST /v1/projects/*/rounds") BODY='{"agreement_below":0.5}' ;;
    "POST /v1/projects/*/reviews/select") BODY='{"method":"dawid_skene","support_below":0.5}' ;;
    "PUT /v1/projects/*/predictions") BODY="{\"task_id\":$FIRST_TASK,\"value\":\"a\",\"score\":0.5}" ;;
    POST*) BODY='{}' ;;
    *) BODY="" ;;
    esac
}

# --- the routes of the router itself ------------------------------------------------------
"$QR_BIN_DIR/quorumd" routes | jq -r '"\(.method) \(.path)"' | sort >"$E2E_DIR/routes"
echo "$EXPECTED" | awk 'NF {print $1 " " $2}' | sort >"$E2E_DIR/table"
check "every route of the router is in the table, and no other" "" "$(diff "$E2E_DIR/routes" "$E2E_DIR/table")"

CALLERS=(none revoked expired A:admin A:manager A:reviewer A:annotator V:admin V:manager V:reviewer V:annotator
    W:admin W:manager W:reviewer W:annotator)
# cfg_line KEY VALUE: the line KEY = "VALUE" of a curl config file, VALUE quoted.
cfg_line() {
    local s=${2//\\/\\\\}
    printf '%s = "%s"\n' "$1" "${s//\"/\\\"}"
}
# curl_op FILE METHOD URL TOKEN BODY: one request (an operation of its own:
# `next`) appended to the curl config FILE; curl -K FILE prints its status
# on a line.
curl_op() {
    {
        cfg_line url "$3"
        echo "request = $2"
        cfg_line cacert "$CA"
        echo 'output = "/dev/null"'
        echo 'write-out = "%{http_code}\n"'
        [ -z "$4" ] || cfg_line header "Authorization: Bearer $4"
        if [ -n "$5" ]; then
            echo 'header = "Content-Type: application/json"'
            cfg_line data-binary "$5"
        fi
        echo next
    } >>"$1"
}
# Every (route, caller) request in the table's order, into one curl config
# (each request an operation of its own: `next`), sent by one curl, in order,
# over one connection; then each status against the table.
CFG=$E2E_DIR/table.curl
: >"$CFG"
OUTCOMES=()
while read -r method path rest; do
    [ -n "$method" ] || continue
    read -r -a want <<<"$rest"
    route="$method $path"
    # The first '*' is the project (or a token id); a second is a lease.
    concrete=${path/\/v1\/projects\/\*//v1/projects/$P}
    concrete=${concrete/\*/999999}
    for k in "${!CALLERS[@]}"; do
        who=${CALLERS[$k]}
        case "$who" in
        none) tok="" ;;
        revoked) tok=$REVOKED ;;
        expired) tok=$EXPIRED ;;
        *) tok=${TOK[$who]} ;;
        esac
        body_for "$route" "${who//:/-}"
        curl_op "$CFG" "$method" "$URL$concrete" "$tok" "$BODY"
        OUTCOMES+=("${want[$k]} $route as $who")
    done
done <<<"$EXPECTED"
mapfile -t GOT < <(curl -sS -K "$CFG" 2>"$E2E_DIR/table.err")
check "one answer a (route, caller) request" "${#OUTCOMES[@]}" "${#GOT[@]}"
for i in "${!OUTCOMES[@]}"; do
    o=${OUTCOMES[$i]}
    if [ "${GOT[$i]-none}" = "${o%% *}" ]; then
        PASSES=$((PASSES + 1))
    else
        fail "${o#* }: expected ${o%% *}, got ${GOT[$i]-none}"
    fi
done
echo "ok - $PASSES (route, caller) outcomes as the table says"

# --- taking over existing users -----------------------------------------------------------------
# Every caller tries to reach an existing user: POST /v1/users with its name
# (a name that exists is 409, never a token) and POST /v1/tokens for it with
# another role than its own (the bare role check would let a manager ask
# for an "annotator" token of its admin). The targets are the admins of the
# owner A, of the vendor V and of another owner organization B; the body
# names the target's organization when it is not the caller's (only admins
# may, and only an owner's admin finds another organization: else 404).
# Nothing may answer 2xx, and no user or token may change.
r=$(api POST /v1/organizations "$ADMIN_TOKEN" '{"name":"owner-B","kind":"owner"}')
check "the owner's admin creates another owner organization B" 201 "${r%% *}"
for role in admin manager reviewer annotator; do
    r=$(api POST /v1/tokens "$ADMIN_TOKEN" \
        "{\"user\":\"B-$role\",\"role\":\"$role\",\"organization\":\"owner-B\"}")
    TOK[B:$role]=$(echo "${r#* }" | jq -r .token)
done
A_ADMIN=$(sql "SELECT name FROM users WHERE role = 'admin' ORDER BY id LIMIT 1")
A_ORG=$(sql "SELECT o.name FROM organizations o JOIN users u ON u.org_id = o.id WHERE u.name = '$A_ADMIN'")
declare -A ORGNAME=([A]=$A_ORG [V]=vendor-V [W]=vendor-W [B]=owner-B)
declare -A TARGET=([A]=$A_ADMIN [V]=V-admin [B]=B-admin)
# columns: A:admin A:manager A:reviewer A:annotator | V:... | W:... | B:...
read -r -d '' TAKEOVER <<'TABLE' || true
users A   409 409 403 403  404 403 403 403  404 403 403 403  409 403 403 403
tokens A  409 403 403 403  404 403 403 403  404 403 403 403  403 403 403 403
users V   409 403 403 403  409 409 403 403  404 403 403 403  409 403 403 403
tokens V  403 403 403 403  409 403 403 403  404 403 403 403  403 403 403 403
users B   409 403 403 403  404 403 403 403  404 403 403 403  409 409 403 403
tokens B  403 403 403 403  404 403 403 403  404 403 403 403  409 403 403 403
TABLE
counts() { sql "SELECT (SELECT count(*) FROM api_tokens) || ' ' || (SELECT string_agg(id || ':' || org_id || ':' || name || ':' || role, ',' ORDER BY id) FROM users)"; }
before=$(counts)
TAKERS=(A:admin A:manager A:reviewer A:annotator V:admin V:manager V:reviewer V:annotator
    W:admin W:manager W:reviewer W:annotator B:admin B:manager B:reviewer B:annotator)
# One curl again, in the table's order over one connection.
CFG=$E2E_DIR/takeover.curl
: >"$CFG"
OUTCOMES=()
while read -r what target rest; do
    [ -n "$what" ] || continue
    read -r -a want <<<"$rest"
    for k in "${!TAKERS[@]}"; do
        who=${TAKERS[$k]}
        org=""
        [ "${who%%:*}" = "$target" ] || org=",\"organization\":\"${ORGNAME[$target]}\""
        if [ "$what" = users ]; then
            curl_op "$CFG" POST "$URL/v1/users" "${TOK[$who]}" "{\"name\":\"${TARGET[$target]}\",\"role\":\"annotator\"$org}"
        else
            curl_op "$CFG" POST "$URL/v1/tokens" "${TOK[$who]}" "{\"user\":\"${TARGET[$target]}\",\"role\":\"annotator\"$org}"
        fi
        OUTCOMES+=("${want[$k]} $what of $target's admin as $who")
    done
done <<<"$TAKEOVER"
mapfile -t GOT < <(curl -sS -K "$CFG" 2>"$E2E_DIR/takeover.err")
n=0
for i in "${!OUTCOMES[@]}"; do
    o=${OUTCOMES[$i]}
    if [ "${GOT[$i]-none}" = "${o%% *}" ]; then
        n=$((n + 1))
    else
        fail "${o#* }: expected ${o%% *}, got ${GOT[$i]-none}"
    fi
done
check "every takeover attempt refused as the table says" 96 "$n"
check "no user or token changed by them" "$before" "$(counts)"
# Nor with the target's own role: only an admin mints an admin's token.
for who in A:manager V:manager B:manager; do
    r=$(api POST /v1/tokens "${TOK[$who]}" "{\"user\":\"${TARGET[${who%%:*}]}\",\"role\":\"admin\"}")
    check "$who cannot mint its admin's token" 403 "${r%% *}"
done
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"V-admin","role":"admin","organization":"vendor-V"}')
check "A's admin cannot mint V's admin's token" 403 "${r%% *}"
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"B-manager","role":"manager","organization":"owner-B"}')
check "nor a token of another owner's manager" 403 "${r%% *}"
check "still no user or token changed" "$before" "$(counts)"

# --- no enumeration of other organizations' projects ---------------------------------------
# The same status, code and message (but for the id asked) whether the
# project exists or not, for every role of W.
for role in admin manager reviewer annotator; do
    a=$(api GET "/v1/projects/$P" "${TOK[W:$role]}")
    b=$(api GET "/v1/projects/987654" "${TOK[W:$role]}")
    check "W:$role: a project not shared with W looks like no project at all" \
        "$(echo "${b#* }" | jq -r '.error.code + " " + .error.message' | sed 's/987654/N/') ${b%% *}" \
        "$(echo "${a#* }" | jq -r '.error.code + " " + .error.message' | sed "s/$P/N/") ${a%% *}"
done

# --- an annotator cannot act on a lease someone else holds ------------------------------------
r=$(api POST "/v1/projects/$P/leases" "${TOK[A:annotator]}" '{"max":1}')
L=$(echo "${r#* }" | jq -r '.leases[0].lease')
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"other-ann","role":"annotator"}')
O=$(echo "${r#* }" | jq -r .token)
for step in submit skip release heartbeat; do
    body='{}'; [ $step = submit ] && body='{"label":"a"}'
    r=$(api POST "/v1/projects/$P/leases/$L/$step" "$O" "$body")
    check "another annotator of A cannot $step a held lease" 409 "${r%% *}"
    r=$(api POST "/v1/projects/$P/leases/$L/$step" "${TOK[V:annotator]}" "$body")
    check "V's annotator cannot $step A's annotator's lease" 409 "${r%% *}"
    # W cannot tell a live lease from a made-up one, nor the project from none.
    a=$(api POST "/v1/projects/$P/leases/$L/$step" "${TOK[W:annotator]}" "$body")
    b=$(api POST "/v1/projects/$P/leases/999999/$step" "${TOK[W:annotator]}" "$body")
    check "W's annotator gets the same answer for a held lease and none ($step)" "${b}" "${a}"
done
check "and nothing was stored" 0 "$(sql "SELECT count(*) FROM annotations")"
r=$(api POST "/v1/projects/$P/leases/$L/submit" "${TOK[A:annotator]}" '{"label":"a"}')
check "its holder can" 201 "${r%% *}"
ANN=$(echo "${r#* }" | jq .annotation_id)
# Nor undo someone else's annotation (annotation ids are not enumerable either).
r=$(api POST "/v1/projects/$P/annotations/$ANN/undo" "$O" '{}')
c=$(api POST "/v1/projects/$P/annotations/999999/undo" "$O" '{}')
check "another annotator cannot undo it, and cannot tell it from no annotation" \
    "409 $(echo "${c#* }" | jq -r .error.code)" "${r%% *} $(echo "${r#* }" | jq -r .error.code)"
check "still one annotation" 1 "$(sql "SELECT count(*) FROM annotations")"
# An annotator sees task data only in the leases it is granted: the one
# route that reads a task by id (issue 17, the quality view's task view)
# refuses every annotator, of the owner and of the vendor, for a real task
# as for none (every route is in the table above).
check "one route reads a task by its id" "/v1/projects/*/tasks/*" \
    "$("$QR_BIN_DIR/quorumd" routes | jq -r 'select(.path | test("tasks/\\*")) | .path')"
for who in A:annotator V:annotator; do
    check "$who may not read a task it labeled, by its id" 403 \
        "$(api GET "/v1/projects/$P/tasks/$FIRST_TASK" "${TOK[$who]}" | cut -d' ' -f1)"
done
check "the owner's manager reads it" 200 "$(api GET "/v1/projects/$P/tasks/$FIRST_TASK" "${TOK[A:manager]}" | cut -d' ' -f1)"

finish

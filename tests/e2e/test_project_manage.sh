#!/usr/bin/env bash
# Managing projects and users (issue 14, point 5): GET /v1/projects (own
# organization's, and shared ones for a vendor; paged), PATCH
# /v1/projects/{id} (name; labels only added; overlap only upward; lease
# TTL; sampling), archive and unarchive (no new leases, data kept, the
# agent stops with a message), DELETE (409 tasks_leased while a lease is
# live, ?force=true drops them; every row and Redis key of the project
# goes), GET /v1/users, a user name wherever a user id is taken (ambiguous
# names refused, naming each), and quorumctl project
# list|show|update|archive|unarchive|delete and user list. Each refusal is
# checked to change nothing.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"
AGENT="$QR_BIN_DIR/quorum-agent"
code() { echo "${1%% *} $(echo "${1#* }" | jq -r '.error.code // empty')"; }
msg() { echo "${1#* }" | jq -r '.error.message // empty'; }
body() { echo "${1#* }"; }

tok() { # USER ROLE [ORGANIZATION] -> a token
    local r b="{\"user\":\"$1\",\"role\":\"$2\"${3:+,\"organization\":\"$3\"}}"
    r=$(api POST /v1/tokens "$ADMIN_TOKEN" "$b")
    [ "${r%% *}" = 201 ] || { echo "token for $1: $r" >&2; return 1; }
    echo "${r#* }" | jq -r .token
}
A_ORG=$(sql "SELECT o.name FROM organizations o JOIN users u ON u.org_id = o.id ORDER BY u.id LIMIT 1")
MGR=$(tok mgr manager)
REV=$(tok rev reviewer)
ALICE=$(tok alice annotator)
BOB=$(tok bob annotator)
for org in vendor-V vendor-W; do
    r=$(api POST /v1/organizations "$ADMIN_TOKEN" "{\"name\":\"$org\",\"kind\":\"vendor\"}")
    check "vendor $org created" 201 "${r%% *}"
done
V_ID=$(sql "SELECT id FROM organizations WHERE name = 'vendor-V'")
V_ADMIN=$(tok v-admin admin vendor-V)
V_ALICE=$(tok alice annotator vendor-V) # a second "alice", in the vendor
W_ADMIN=$(tok w-admin admin vendor-W)

P=$(new_project '{"name":"reviews","labels":["pos","neg"],"annotations_per_task":2,"lease_ttl_ms":600000}')
Q=$(new_project '{"name":"spare","labels":["x","y"]}')
seq 1 10 | sed 's/.*/{"n":&}/' | "$CTL" import --project "$P" - >/dev/null
seq 1 3 | sed 's/.*/{"m":&}/' | "$CTL" import --project "$Q" - >/dev/null
r=$(api PUT "/v1/projects/$P/shares/$V_ID" "$ADMIN_TOKEN" '{}')
check "P is shared with vendor V" 201 "${r%% *}"
row() { sql "SELECT name, labels::text, annotations_per_task, overlap_annotations, overlap_fraction, lease_ttl_ms, sampling, coalesce(stratify_field, '-'), archived_at IS NOT NULL FROM projects WHERE id = $1"; }

# --- GET /v1/projects ------------------------------------------------------------------------
r=$(api GET /v1/projects "$REV")
check "a reviewer lists the organization's projects" "200 $P,$Q null" \
    "${r%% *} $(body "$r" | jq -r '[.projects[].id] | map(tostring) | join(",")') $(body "$r" | jq -r .next_after)"
check "each in the shape of GET /v1/projects/{id}" \
    "$(api GET "/v1/projects/$P" | cut -d' ' -f2- | jq -cS .)" "$(body "$r" | jq -cS '.projects[0]')"
r=$(api GET "/v1/projects?limit=1" "$ALICE")
check "paged: limit=1 gives the first and where to go on" "200 $P $P" \
    "${r%% *} $(body "$r" | jq -r '.projects[].id') $(body "$r" | jq -r .next_after)"
r=$(api GET "/v1/projects?limit=1&after=$P" "$ALICE")
check "the next page: the second, and no more" "200 $Q null" \
    "${r%% *} $(body "$r" | jq -r '.projects[].id') $(body "$r" | jq -r .next_after)"
r=$(api GET /v1/projects "$V_ADMIN")
check "vendor V sees only the project shared with it" "200 $P" "${r%% *} $(body "$r" | jq -r '[.projects[].id] | map(tostring) | join(",")')"
r=$(api GET /v1/projects "$W_ADMIN")
check "vendor W sees none" "200 0" "${r%% *} $(body "$r" | jq '.projects | length')"
for q in "limit=0" "limit=1001" "limit=x" "after=-1" "colour=red"; do
    r=$(api GET "/v1/projects?$q" "$MGR")
    check "GET /v1/projects?$q: 422 invalid" "422 invalid" "$(code "$r")"
done
r=$(api GET /v1/projects "")
check "no token: 401" 401 "${r%% *}"

# --- GET /v1/users ---------------------------------------------------------------------------
r=$(api GET /v1/users "$MGR")
check "a manager lists the organization's users, none of the vendors'" \
    "200 0 true" \
    "${r%% *} $(body "$r" | jq '[.users[] | select(.name | startswith("v-") or startswith("w-"))] | length') $(body "$r" | jq '[.users[].name] | index("bob") != null')"
check "with role and live tokens" "annotator 1" "$(body "$r" | jq -r '.users[] | select(.name == "bob") | "\(.role) \(.tokens)"')"
r=$(api GET /v1/users "$V_ADMIN")
check "vendor V's admin sees its own users only" "alice,v-admin" "$(body "$r" | jq -r '[.users[].name] | sort | join(",")')"
r=$(api GET "/v1/users?limit=2" "$MGR")
N2=$(body "$r" | jq -r .next_after)
check "paged: 2 users and where to go on" "2 yes" "$(body "$r" | jq '.users | length') $([ "$N2" != null ] && echo yes)"
r=$(api GET /v1/users "$ALICE")
check "an annotator may not list users" "403 forbidden" "$(code "$r")"
r=$(api GET "/v1/users?limit=-5" "$MGR")
check "GET /v1/users?limit=-5: 422" "422 invalid" "$(code "$r")"

# --- PATCH /v1/projects/{id} -----------------------------------------------------------------
before=$(row "$P")
refuse() { # DESCRIPTION STATUS CODE TOKEN BODY
    local r
    r=$(api PATCH "/v1/projects/$P" "$4" "$5")
    check "$1: $2 $3" "$2 $3" "$(code "$r")"
    check "$1: nothing changed" "$before" "$(row "$P")"
}
refuse "a label dropped" 422 invalid "$MGR" '{"labels":["pos"]}'
check "the message names the missing label" 'labels can only be added: "neg" is missing' \
    "$(api PATCH "/v1/projects/$P" "$MGR" '{"labels":["pos","maybe"]}' | cut -d' ' -f2- | jq -r .error.message | cut -d'(' -f1 | sed 's/ $//')"
refuse "annotations_per_task lowered" 422 invalid "$MGR" '{"annotations_per_task":1}'
refuse "overlap_annotations lowered" 422 invalid "$MGR" '{"overlap_annotations":1}'
refuse "overlap_fraction out of range" 422 invalid "$MGR" '{"overlap_fraction":1.5}'
refuse "lease_ttl_ms too short" 422 invalid "$MGR" '{"lease_ttl_ms":5}'
refuse "stratified without a field" 422 invalid "$MGR" '{"sampling":"stratified"}'
refuse "an unknown sampling" 422 invalid "$MGR" '{"sampling":"best"}'
refuse "stratify_field without stratified sampling" 422 invalid "$MGR" '{"stratify_field":"n"}'
refuse "an unknown field" 422 invalid "$MGR" '{"overlap_first":true}'
refuse "an empty object" 422 invalid "$MGR" '{}'
refuse "a name with a control character" 422 invalid "$MGR" '{"name":"a\u0007b"}'
refuse "a duplicate label" 422 invalid "$MGR" '{"labels":["pos","neg","pos"]}'
refuse "not JSON" 400 invalid_json "$MGR" '{"name":'
refuse "the reviewer" 403 forbidden "$REV" '{"name":"x"}'
refuse "the vendor's admin (shared, not its own)" 403 forbidden "$V_ADMIN" '{"name":"x"}'
refuse "vendor W's admin" 403 forbidden "$W_ADMIN" '{"name":"x"}'

r=$(api PATCH "/v1/projects/$P" "$MGR" '{"name":"reviews v2","labels":[" pos","neg","sarcastic "],"annotations_per_task":3,"overlap_annotations":3,"lease_ttl_ms":900000}')
check "the manager renames, adds a label (trimmed), raises overlap and the TTL" \
    '200 reviews v2 ["pos","neg","sarcastic"] 3 900000' \
    "${r%% *} $(body "$r" | jq -rc '"\(.name) \(.labels) \(.annotations_per_task) \(.lease_ttl_ms)"')"
check "stored so" 'reviews v2|["pos", "neg", "sarcastic"]|3|3|0|900000|sequential|-|f' "$(row "$P")"
r=$(api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" '{"sampling":"stratified","stratify_field":"n"}')
check "the admin switches to stratified sampling with its field" "200 stratified n" \
    "${r%% *} $(body "$r" | jq -r '"\(.sampling) \(.stratify_field)"')"
r=$(api PATCH "/v1/projects/$P" "$ADMIN_TOKEN" '{"sampling":"sequential"}')
check "and back: the field goes with it" "200 sequential null" \
    "${r%% *} $(body "$r" | jq -r '"\(.sampling) \(.stratify_field)"')"
# The change reaches the lease path at once: the new label is accepted, the TTL applies.
t0=$(date +%s%3N)
r=$(api POST "/v1/projects/$P/leases" "$ALICE" '{"max":1}')
L=$(body "$r" | jq -r '.leases[0].lease')
ttl=$(( $(body "$r" | jq -r '.leases[0].expires_at_ms') - t0 ))
check "a lease granted now lasts the new TTL (900 s)" yes "$([ "$ttl" -gt 890000 ] && [ "$ttl" -le 901000 ] && echo yes || echo "no: $ttl ms")"
r=$(api POST "/v1/projects/$P/leases/$L/submit" "$ALICE" '{"label":"sarcastic"}')
check "the added label is accepted" 201 "${r%% *}"

# --- archive / unarchive ---------------------------------------------------------------------
r=$(api POST "/v1/projects/$P/leases" "$BOB" '{"max":1}')
LB=$(body "$r" | jq -r '.leases[0].lease')
counts() { sql "SELECT (SELECT count(*) FROM tasks WHERE project_id = $P) || ' ' || (SELECT count(*) FROM annotations WHERE project_id = $P)"; }
kept=$(counts)
r=$(api POST "/v1/projects/$P/archive" "$REV")
check "a reviewer may not archive" "403 forbidden" "$(code "$r")"
r=$(api POST "/v1/projects/$P/archive" "$V_ADMIN")
check "nor the vendor's admin" "403 forbidden" "$(code "$r")"
r=$(api POST "/v1/projects/$P/archive" "$MGR")
AT=$(body "$r" | jq -r .archived_at)
check "the manager archives: 200, archived, since when" "200 true yes" \
    "${r%% *} $(body "$r" | jq -r .archived) $([ "$AT" != null ] && echo yes)"
r=$(api POST "/v1/projects/$P/archive" "$MGR")
check "archiving again keeps the first time (idempotent)" "200 $AT" "${r%% *} $(body "$r" | jq -r .archived_at)"
r=$(api POST "/v1/projects/$P/leases" "$ALICE" '{"max":1}')
check "no new lease: 409 project_archived" "409 project_archived" "$(code "$r")"
check "the message says so" "project $P is archived: it hands out no more tasks" "$(msg "$r")"
r=$(api POST "/v1/projects/$P/leases" "$V_ALICE" '{"max":1,"wait_ms":5000}')
check "a long poll does not wait on an archived project" "409 project_archived" "$(code "$r")"
r=$(api POST "/v1/projects/$P/leases/$LB/submit" "$BOB" '{"label":"neg"}')
check "a lease held before the archive may still be submitted" 201 "${r%% *}"
check "the data is kept (tasks, and annotations plus that one)" \
    "$(echo "$kept" | awk '{print $1, $2 + 1}')" "$(counts)"
r=$(api GET "/v1/projects/$P/progress" "$MGR")
check "reports still read" 200 "${r%% *}"
r=$(api GET /v1/projects "$MGR")
check "the list shows it archived" "true" "$(body "$r" | jq -r ".projects[] | select(.id == $P) | .archived")"
rc=0
QUORUM_TOKEN=$ALICE timeout 60 "$AGENT" exec --project "$P" --idle-exit 1 --spool "$E2E_DIR/spool" \
    -- cat >"$E2E_DIR/exec.out" 2>"$E2E_DIR/exec.err" || rc=$?
check "quorum-agent exec on an archived project: exit 8" 8 "$rc"
case "$(grep archived "$E2E_DIR/exec.err")" in
"quorum-agent: project $P is archived: it hands out no more tasks; "*) pass "it says: $(grep archived "$E2E_DIR/exec.err")" ;;
*) fail "the agent's line: $(cat "$E2E_DIR/exec.err")" ;;
esac
rc=0
QUORUM_TOKEN=$MGR timeout 60 "$AGENT" simulate --project "$P" --annotators 2 --accuracy 1 \
    --wait-ms 500 --no-spool >"$E2E_DIR/sim.out" 2>"$E2E_DIR/sim.err" || rc=$?
check "quorum-agent simulate on an archived project: exit 8, one line" "8 1" \
    "$rc $(grep -c "^quorum-agent: project $P is archived: " "$E2E_DIR/sim.err")"
r=$(api POST "/v1/projects/$P/unarchive" "$ADMIN_TOKEN")
check "unarchive: 200, in use" "200 false null" "${r%% *} $(body "$r" | jq -r '"\(.archived) \(.archived_at)"')"
r=$(api POST "/v1/projects/$P/leases" "$ALICE" '{"max":1}')
check "leases again after unarchive" "200 1" "${r%% *} $(body "$r" | jq '.leases | length')"

# --- a user name where a user id goes ---------------------------------------------------------
r=$(api GET "/v1/projects/$P/throughput?annotator=alice" "$MGR")
check "annotator=alice names two users (A's and V's): 422 ambiguous_user" "422 ambiguous_user" "$(code "$r")"
case "$(msg "$r")" in
*"alice@$A_ORG (id "*"alice@vendor-V (id "*"give name@organization or the id") pass "the message names each: $(msg "$r")" ;;
*) fail "the ambiguity message: $(msg "$r")" ;;
esac
ALICE_ID=$(sql "SELECT u.id FROM users u JOIN organizations o ON o.id = u.org_id WHERE u.name = 'alice' AND o.name = '$A_ORG'")
r1=$(api GET "/v1/projects/$P/throughput?annotator=alice@$A_ORG&window=1d" "$MGR")
r2=$(api GET "/v1/projects/$P/throughput?annotator=$ALICE_ID&window=1d" "$MGR")
check "alice@ORG gives what her id gives" "200 $(body "$r2" | jq -c '.totals.annotations')" \
    "${r1%% *} $(body "$r1" | jq -c '.totals.annotations')"
check "and it is hers (one annotation)" 1 "$(body "$r1" | jq -c '.totals.annotations')"
r=$(api GET "/v1/projects/$P/throughput?annotator=alice&window=1d" "$V_ADMIN")
check "to vendor V, alice is its own alice (it sees no other)" 200 "${r%% *}"
r=$(api GET "/v1/projects/$P/throughput?annotator=nobody" "$MGR")
check "an unknown name: 422 naming it" "422 invalid yes" \
    "$(code "$r") $(msg "$r" | grepq '"nobody"' && echo yes)"
r=$(api GET "/v1/projects/$P/throughput?annotator=w-admin" "$MGR")
check "a user of an organization the project is not shared with is not found" "422 invalid" "$(code "$r")"
out=$("$CTL" throughput --project "$P" --annotator bob --window 1d --json 2>&1) && rc=0 || rc=$?
check "quorumctl throughput --annotator bob (a name)" "0 1" "$rc $(echo "$out" | jq -c '.totals.annotations')"
out=$("$CTL" throughput --project "$P" --annotator alice 2>&1) && rc=0 || rc=$?
check "quorumctl throughput --annotator alice: exit 2 saying it is ambiguous" "2 yes" \
    "$rc $(echo "$out" | grepq 'names 2 users' && echo yes)"

# --- DELETE /v1/projects/{id} ----------------------------------------------------------------
r=$(api POST "/v1/projects/$P/leases" "$ALICE" '{"max":1}')
r=$(api POST "/v1/projects/$P/leases/$(body "$r" | jq -r '.leases[0].lease')/release" "$ALICE" '{}')
check "a lease released (a row of leases)" 200 "${r%% *}"
r=$(api POST "/v1/projects/$P/leases" "$BOB" '{"max":1}')
check "a lease is live on P" "200 1" "${r%% *} $(body "$r" | jq '.leases | length')"
wait_sql yes "SELECT CASE WHEN count(*) > 0 THEN 'yes' END FROM lease_events WHERE project_id = $P" >/dev/null
tables="tasks annotations leases lease_events imports project_shares"
rows() { local t out=""; for t in $tables; do out+="$t=$(sql "SELECT count(*) FROM $t WHERE project_id = $1") "; done; echo "$out"; }
before=$(rows "$P")
check "P has rows in every table ($before)" "" "$(echo "$before" | tr ' ' '\n' | grep '=0$' || true)"
for who in REV V_ADMIN W_ADMIN ALICE; do
    r=$(api DELETE "/v1/projects/$P" "${!who}")
    check "$who may not delete P: 403" "403 forbidden" "$(code "$r")"
done
r=$(api DELETE "/v1/projects/$P" "$MGR")
check "with a live lease: 409 tasks_leased" "409 tasks_leased" "$(code "$r")"
check "the message counts the leases and says what to do" yes \
    "$(msg "$r" | grepq "live lease(s).*force=true" && echo yes)"
r=$(api DELETE "/v1/projects/$P?force=maybe" "$MGR")
check "?force=maybe: 422" "422 invalid" "$(code "$r")"
r=$(api DELETE "/v1/projects/$P?forse=true" "$MGR")
check "an unknown parameter: 422" "422 invalid" "$(code "$r")"
check "none of those deleted anything" "$before" "$(rows "$P")"
check "nor touched Redis" yes "$([ "$(redis-cli -p "$QR_REDIS_PORT" --scan --pattern "{p:$P}:*" | wc -l)" -gt 0 ] && echo yes)"
r=$(api DELETE "/v1/projects/$P?force=true" "$MGR")
check "?force=true: 200, deleted, what it held (alice's and bob's leases live)" "200 true 10 2 2" \
    "${r%% *} $(body "$r" | jq -r '"\(.deleted) \(.tasks) \(.annotations) \(.leases_dropped)"')"
check "every row of the project is gone" "$(echo "$tables" | sed 's/\([a-z_]*\)/\1=0/g') " "$(rows "$P")"
check "and its lease-log rollups" 0 "$(sql "SELECT (SELECT count(*) FROM lease_event_minutes WHERE project_id = $P) + (SELECT count(*) FROM lease_event_hours WHERE project_id = $P) + (SELECT count(*) FROM annotation_hours WHERE project_id = $P)")"
check "every Redis key of the project is gone" 0 "$(redis-cli -p "$QR_REDIS_PORT" --scan --pattern "{p:$P}:*" | wc -l)"
check "and the reaper's registry forgot it" 0 "$(redis-cli -p "$QR_REDIS_PORT" sismember quorum:projects "$P")"
r=$(api GET "/v1/projects/$P" "$MGR")
check "the project answers as none at all: 403" "403 forbidden" "$(code "$r")"
r=$(api POST "/v1/projects/$P/leases" "$BOB" '{"max":1}')
check "a lease request on it: 403" "403 forbidden" "$(code "$r")"
check "Q is untouched" "3" "$(sql "SELECT count(*) FROM tasks WHERE project_id = $Q")"
check "users are untouched" 2 "$(sql "SELECT count(*) FROM users WHERE name = 'alice'")"

# --- quorumctl ---------------------------------------------------------------------------------
for sub in "project list" "project show" "project update" "project archive" "project unarchive" \
    "project delete" "user list"; do
    # shellcheck disable=SC2086
    "$CTL" $sub --help >"$E2E_DIR/help" 2>&1 && rc=0 || rc=$?
    check "quorumctl $sub --help: exit 0 and a usage line" "0 1" "$rc $(grep -qE "^(Usage:)? +quorumctl $sub( |$)" "$E2E_DIR/help" && echo 1)"
done
out=$("$CTL" project list)
check "quorumctl project list: a header and Q" "yes yes" \
    "$(echo "$out" | head -1 | grepq '^id *state *per-task *name *labels' && echo yes) $(echo "$out" | grepq "^$Q *active *1 *spare *x,y$" && echo yes)"
out=$("$CTL" project update "$Q" --name "spare 2" --add-label z --lease-ttl-ms 120000)
check "quorumctl project update --add-label keeps the old labels" "name: spare 2|labels: x,y,z|lease_ttl_ms: 120000" \
    "$(echo "$out" | grep -E '^(name|labels|lease_ttl_ms):' | paste -sd'|')"
"$CTL" project update "$Q" --labels x >/dev/null 2>"$E2E_DIR/err" && rc=0 || rc=$?
check "quorumctl project update --labels dropping one: exit 1, the broker's reason" "1 yes" \
    "$rc $(grep -q 'labels can only be added' "$E2E_DIR/err" && echo yes)"
"$CTL" project update "$Q" >/dev/null 2>&1 && rc=0 || rc=$?
check "quorumctl project update with nothing to change: exit 2" 2 "$rc"
check "quorumctl project show" "state: active" "$("$CTL" project show --project "$Q" | grep '^state:')"
"$CTL" project archive "$Q" 2>"$E2E_DIR/err"
check "quorumctl project archive says so" yes "$(grep -q "^project $Q archived (since " "$E2E_DIR/err" && echo yes)"
check "quorumctl project list shows it archived" yes "$("$CTL" project list | grepq "^$Q *archived" && echo yes)"
"$CTL" project unarchive "$Q" 2>/dev/null
check "quorumctl project unarchive" "state: active" "$("$CTL" project show "$Q" | grep '^state:')"
"$CTL" project delete "$Q" </dev/null >/dev/null 2>"$E2E_DIR/err" && rc=0 || rc=$?
check "quorumctl project delete without a terminal or --yes: exit 2, nothing deleted" "2 3" \
    "$rc $(sql "SELECT count(*) FROM tasks WHERE project_id = $Q")"
rc=0
echo "12345" | script -qec "$CTL project delete $Q" /dev/null >"$E2E_DIR/tty" 2>&1 || rc=$?
check "on a terminal, a wrong answer keeps the project (exit 1)" "1 3" \
    "$rc $(sql "SELECT count(*) FROM tasks WHERE project_id = $Q")"
check "it asked first" yes "$(grep -q "Type the project's id to confirm" "$E2E_DIR/tty" && echo yes)"
rc=0
echo "$Q" | script -qec "$CTL project delete $Q" /dev/null >"$E2E_DIR/tty" 2>&1 || rc=$?
check "typing the id deletes it" "0 0" "$rc $(sql "SELECT count(*) FROM projects WHERE id = $Q")"
R=$(new_project '{"name":"third","labels":["a"]}')
seq 1 2 | sed 's/.*/{"k":&}/' | "$CTL" import --project "$R" - >/dev/null
r=$(api POST "/v1/projects/$R/leases" "$BOB" '{"max":1}')
"$CTL" project delete "$R" --yes >/dev/null 2>"$E2E_DIR/err" && rc=0 || rc=$?
check "quorumctl project delete --yes with a live lease: exit 1, tasks_leased" "1 yes" \
    "$rc $(grep -q tasks_leased "$E2E_DIR/err" && echo yes)"
"$CTL" project delete "$R" --yes --force 2>"$E2E_DIR/err" && rc=0 || rc=$?
check "--yes --force deletes it" "0 yes 0" \
    "$rc $(grep -q "^project $R deleted: 2 tasks, 0 annotations, 1 live leases dropped" "$E2E_DIR/err" && echo yes) $(sql "SELECT count(*) FROM projects WHERE id = $R")"
out=$("$CTL" user list)
check "quorumctl user list: a header and bob" "yes yes" \
    "$(echo "$out" | head -1 | grepq '^id *name *role *tokens *created' && echo yes) $(echo "$out" | grepq ' bob *annotator *1 ' && echo yes)"
out=$("$CTL" user list --json | jq -r '.users[].name' | sort | paste -sd,)
check "quorumctl user list --json" "$(sql "SELECT string_agg(name, ',' ORDER BY name) FROM users u WHERE org_id = (SELECT org_id FROM users WHERE name = 'mgr')")" "$out"

finish

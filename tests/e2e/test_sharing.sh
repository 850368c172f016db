#!/usr/bin/env bash
# Sharing a project with vendor organizations (issue 7): organizations and
# shares over the API and quorumctl, the bad inputs of each, the vendor's
# quota of annotations and the per-annotator cap of tasks enforced exactly
# while a crew leases hard through two brokers, the counters rebuilt after
# Redis lost them, a share's removal taking effect on both brokers, and a
# vendor manager seeing only their own crew in every throughput endpoint.
. "$(dirname "$0")/lib.sh"

start_broker
start_second_broker
CTL="$QR_BIN_DIR/quorumctl"
ctl_rc() { "$CTL" "$@" >/dev/null 2>&1 && echo 0 || echo $?; } # the exit code of quorumctl ARGS

# --- organizations ------------------------------------------------------------------------
r=$(api POST /v1/organizations "$ADMIN_TOKEN" '{"name":"vendor-v"}')
check "an owner's admin creates an organization (vendor by default)" "201 vendor" \
    "${r%% *} $(echo "${r#* }" | jq -r .kind)"
V=$(echo "${r#* }" | jq .id)
W=$("$CTL" org create vendor-w --kind vendor)
check "quorumctl org create prints the new id" 1 "$(sql "SELECT count(*) FROM organizations WHERE id = '$W' AND name = 'vendor-w' AND kind = 'vendor'")"
r=$(api POST /v1/organizations "$ADMIN_TOKEN" '{"name":"vendor-v"}')
check "a second organization of that name: 409" 409 "${r%% *}"
r=$(api POST /v1/organizations "$ADMIN_TOKEN" '{"name":"x","kind":"partner"}')
check "an unknown kind: 422" 422 "${r%% *}"
r=$(api POST /v1/organizations "$ADMIN_TOKEN" '{"kind":"vendor"}')
check "no name: 422" 422 "${r%% *}"
r=$(api POST /v1/organizations "$ADMIN_TOKEN" '{"name":')
check "not JSON: 400" 400 "${r%% *}"
check "quorumctl org create with an empty name: usage error" 2 "$(ctl_rc org create "")"
check "quorumctl org create --kind partner: usage error" 2 "$(ctl_rc org create x --kind partner)"
check "quorumctl org list shows both vendors" "vendor-v vendor-w" \
    "$("$CTL" org list --json | jq -r '[.organizations[] | select(.kind == "vendor") | .name] | join(" ")')"
"$CTL" org --help | grepq 'org create NAME' && pass "quorumctl org --help" || fail "quorumctl org --help"
"$CTL" project share --help | grepq -- '--quota N' && pass "quorumctl project share --help" ||
    fail "quorumctl project share --help"

# Users of a vendor: the owner's admin names the organization.
tok() { # ORG-NAME USER ROLE [ADMIN-TOKEN] -> a token
    local r
    r=$(api POST /v1/tokens "${4:-$ADMIN_TOKEN}" "{\"user\":\"$2\",\"role\":\"$3\",\"organization\":\"$1\"}")
    [ "${r%% *}" = 201 ] || { echo "token for $2: $r" >&2; return 1; }
    echo "${r#* }" | jq -r .token
}
VADMIN=$(tok vendor-v v-admin admin)
VMGR=$(tok vendor-v v-manager manager)
WMGR=$(tok vendor-w w-manager manager)
r=$(api POST /v1/users "$ADMIN_TOKEN" "{\"name\":\"v-rev\",\"role\":\"reviewer\",\"organization\":\"vendor-v\"}")
check "POST /v1/users with an organization makes the user there" "201 $V" \
    "${r%% *} $(sql "SELECT org_id FROM users WHERE name = 'v-rev'")"
r=$(api POST /v1/tokens "$VMGR" '{"user":"x","role":"annotator","organization":"vendor-v"}')
check "only an admin may name an organization" 403 "${r%% *}"
r=$(api POST /v1/tokens "$VADMIN" '{"user":"x","role":"annotator","organization":"vendor-w"}')
check "a vendor's admin may not make users in another organization" 404 "${r%% *}"
r=$(api POST /v1/tokens "$VADMIN" '{"user":"v-ann-0","role":"annotator","organization":"vendor-v"}')
check "a vendor's admin may name their own" 201 "${r%% *}"
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"x","role":"annotator","organization":"nobody"}')
check "an unknown organization: 404" 404 "${r%% *}"
r=$(api POST /v1/tokens "$ADMIN_TOKEN" '{"user":"x","role":"annotator","organization":7}')
check "organization not a string: 422" 422 "${r%% *}"
r=$(api POST /v1/organizations "$VADMIN" '{"name":"vendor-z"}')
check "a vendor's admin creates no organization" 403 "${r%% *}"
check "a vendor's admin lists only their own" "vendor-v" \
    "$(api GET /v1/organizations "$VADMIN" | cut -d' ' -f2- | jq -r '[.organizations[].name] | join(" ")')"

# --- shares: bad input ------------------------------------------------------------------------
P=$("$CTL" project create --name quota --labels a,b)
seq 1 40 | sed 's/.*/{"n":&}/' | "$CTL" import --project "$P" - >/dev/null
OWNER=$(sql "SELECT org_id FROM projects WHERE id = $P")
r=$(api PUT "/v1/projects/$P/shares/$V" "$ADMIN_TOKEN" '{"quota_annotations":-1}')
check "a negative quota: 422" 422 "${r%% *}"
r=$(api PUT "/v1/projects/$P/shares/$V" "$ADMIN_TOKEN" '{"max_tasks_per_annotator":"2"}')
check "a cap that is not an integer: 422" 422 "${r%% *}"
r=$(api PUT "/v1/projects/$P/shares/$V" "$ADMIN_TOKEN" '[1]')
check "a body that is not an object: 400" 400 "${r%% *}"
shares_before=$(sql "SELECT count(*) FROM project_shares")
r=$(api PUT "/v1/projects/$P/shares/$OWNER" "$ADMIN_TOKEN" '{}')
check "sharing with an owner organization: 404" 404 "${r%% *}"
b=$(api PUT "/v1/projects/$P/shares/987654" "$ADMIN_TOKEN" '{}')
check "sharing with no organization: 404" 404 "${b%% *}"
check "an owner organization and none get the same answer (but for the id)" \
    "$(echo "${b#* }" | sed 's/987654/N/')" "$(echo "${r#* }" | sed "s/$OWNER/N/")"
check "and no share was made" "$shares_before" "$(sql "SELECT count(*) FROM project_shares")"
r=$(api DELETE "/v1/projects/$P/shares/$W" "$ADMIN_TOKEN")
check "removing a share that is not there: 404" 404 "${r%% *}"
check "quorumctl project share --org with an unknown name fails" 1 "$(ctl_rc project share --project "$P" --org nobody)"
check "quorumctl project share --quota -3: usage error" 2 "$(ctl_rc project share --project "$P" --org vendor-v --quota -3)"
check "quorumctl project share without --project: usage error" 2 "$(ctl_rc project share --org vendor-v)"
check "quorumctl project unshare --quota: usage error" 2 "$(ctl_rc project unshare --project "$P" --org vendor-v --quota 1)"
check "quorumctl project share --cap x: usage error" 2 "$(ctl_rc project share --project "$P" --org vendor-v --cap x)"
check "quorumctl org frob: usage error" 2 "$(ctl_rc org frob)"
check "quorumctl org create a b: usage error" 2 "$(ctl_rc org create a b)"
check "quorumctl org list as a manager: broker error (403)" 1 "$(ctl_rc org list --token "$VMGR")"
check "nothing was shared" 0 "$(sql "SELECT count(*) FROM project_shares")"

# --- the quota: 5 annotations for V, 3 annotators leasing hard from two brokers ---------------
"$CTL" project share --project "$P" --org vendor-v --quota 5 >/dev/null
check "quorumctl project share records the quota" "$V 5" \
    "$(api GET "/v1/projects/$P/shares" | cut -d' ' -f2- | jq -r '.shares[0] | "\(.org_id) \(.quota_annotations)"')"
r=$(api GET "/v1/projects/$P/shares" "$VMGR")
check "a vendor does not read the shares" 403 "${r%% *}"
for i in 1 2 3; do VANN[$i]=$(tok vendor-v "v-ann-$i" annotator); done
OWN_ANN=$("$CTL" token create --user own-ann --role annotator 2>/dev/null)

crew_member() { # TOKEN ROUNDS LOG: lease (max 2) and submit, alternating brokers
    local t=$1 n=$2 log=$3 i r lease
    for i in $(seq 1 "$n"); do
        if [ $((i % 2)) = 0 ]; then API_URL=$URL2; else API_URL=$URL; fi
        export API_URL
        r=$(api POST "/v1/projects/$P/leases" "$t" '{"max":2}')
        echo "${r%% *} $(echo "${r#* }" | jq -c '{n: (.leases | length), reason}')" >>"$log"
        for lease in $(echo "${r#* }" | jq -r '.leases[]?.lease'); do
            api POST "/v1/projects/$P/leases/$lease/submit" "$t" '{"label":"a"}' >/dev/null
        done
    done
    unset API_URL
}
# (wait on the crew only: the second broker is a child of this shell too)
PIDS=()
for i in 1 2 3; do crew_member "${VANN[$i]}" 8 "$E2E_DIR/crew-$i.log" & PIDS+=($!); done
crew_member "$OWN_ANN" 6 "$E2E_DIR/own.log" & PIDS+=($!)
wait "${PIDS[@]}"
V_ANN="SELECT count(*) FROM annotations a JOIN users u ON u.id = a.annotator_id
       WHERE a.project_id = $P AND u.org_id = $V"
check "exactly 5 annotations from V's crew, never more" 5 "$(sql "$V_ANN")"
check "V's crew was granted 5 leases in all" 5 \
    "$(cat "$E2E_DIR"/crew-*.log | awk '{print $2}' | jq -s 'map(.n) | add')"
check "every lease request answered 200" "" "$(cat "$E2E_DIR"/crew-*.log | awk '$1 != 200')"
# An empty answer may also come while the window is loading (no reason).
check "the empty answers that give a reason say quota_reached, and some do" "quota_reached" \
    "$(cat "$E2E_DIR"/crew-*.log | awk '{print $2}' | jq -r 'select(.n == 0) | .reason // empty' | sort -u)"
OWN_N=$(sql "SELECT count(*) FROM annotations a JOIN users u ON u.id = a.annotator_id WHERE a.project_id = $P AND u.name = 'own-ann'")
check "the owner's annotator is not bound by V's quota (more than 5, every lease submitted, no reason)" \
    "yes $OWN_N" \
    "$([ "$OWN_N" -gt 5 ] && echo yes || echo no) $(awk '{print $2}' "$E2E_DIR/own.log" | jq -s 'map(select(.reason == null) | .n) | add')"
check "the share list counts V's annotations" 5 \
    "$(api GET "/v1/projects/$P/shares" | cut -d' ' -f2- | jq '.shares[0].annotations')"

# Redis loses everything: the counters are rebuilt from PostgreSQL.
redis-cli -p "$QR_REDIS_PORT" flushall >/dev/null
r=$(api POST "/v1/projects/$P/leases" "${VANN[1]}" '{"max":1}')
check "after FLUSHALL the quota still holds (counters rebuilt)" "0 quota_reached" \
    "$(echo "${r#* }" | jq -r '"\(.leases | length) \(.reason)"')"
r=$(api POST "/v1/projects/$P/leases" "$OWN_ANN" '{"max":1}')
check "and the owner's annotator still gets work" 1 "$(echo "${r#* }" | jq '.leases | length')"
# Raising the quota lets V work again, at once on the broker that changed it.
r=$(api PUT "/v1/projects/$P/shares/$V" "$ADMIN_TOKEN" '{"quota_annotations":6}')
check "a changed share answers 200" "200 6 false" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.quota_annotations) \(.created)"')"
r=$(api POST "/v1/projects/$P/leases" "${VANN[2]}" '{"max":3}')
check "one more lease under the raised quota" 1 "$(echo "${r#* }" | jq '.leases | length')"
L=$(echo "${r#* }" | jq -r '.leases[0].lease')
r=$(api POST "/v1/projects/$P/leases" "${VANN[3]}" '{"max":1}')
check "and then none" "0 quota_reached" "$(echo "${r#* }" | jq -r '"\(.leases | length) \(.reason)"')"
# A release gives the unit back to the vendor.
api POST "/v1/projects/$P/leases/$L/release" "${VANN[2]}" '{}' >/dev/null
r=$(api POST "/v1/projects/$P/leases" "${VANN[3]}" '{"max":1}')
check "a released lease frees its unit of the quota" 1 "$(echo "${r#* }" | jq '.leases | length')"

# --- the cap: 2 tasks per annotator -----------------------------------------------------------
P2=$("$CTL" project create --name cap --labels a,b)
seq 1 40 | sed 's/.*/{"n":&}/' | "$CTL" import --project "$P2" - >/dev/null
"$CTL" project share --project "$P2" --org "$V" --cap 2 >/dev/null
P_SAVE=$P
P=$P2
rm -f "$E2E_DIR"/crew-*.log
PIDS=()
for i in 1 2 3; do crew_member "${VANN[$i]}" 6 "$E2E_DIR/crew-$i.log" & PIDS+=($!); done
wait "${PIDS[@]}"
check "each of V's annotators did exactly 2 tasks" "2 2 2" \
    "$(sql "SELECT string_agg(n::text, ' ') FROM (SELECT count(*) AS n FROM annotations a JOIN users u ON u.id = a.annotator_id WHERE a.project_id = $P2 AND u.org_id = $V GROUP BY a.annotator_id) x")"
check "the empty answers that give a reason say cap_reached, and some do" "cap_reached" \
    "$(cat "$E2E_DIR"/crew-*.log | awk '{print $2}' | jq -r 'select(.n == 0) | .reason // empty' | sort -u)"
# A skip does not count: a skipped task is not one done.
"$CTL" project share --project "$P2" --org vendor-v --cap 3 >/dev/null
r=$(api POST "/v1/projects/$P2/leases" "${VANN[1]}" '{"max":5}')
check "a raised cap grants up to it" 1 "$(echo "${r#* }" | jq '.leases | length')"
L=$(echo "${r#* }" | jq -r '.leases[0].lease')
api POST "/v1/projects/$P2/leases/$L/skip" "${VANN[1]}" '{}' >/dev/null
r=$(api POST "/v1/projects/$P2/leases" "${VANN[1]}" '{"max":5}')
check "a skipped lease frees its unit of the cap" 1 "$(echo "${r#* }" | jq '.leases | length')"
P=$P_SAVE

# A quota set again while leases granted without one are live: a share with
# neither quota nor cap is not counted in Redis (issue 18), so the PUT drops
# the counters and the next counted grant rebuilds them from PostgreSQL's
# annotations and the live leases; the quota then holds exactly.
lease_n() { # PROJECT TOKEN MAX -> "granted reason"
    local r; r=$(api POST "/v1/projects/$1/leases" "$2" "{\"max\":$3}")
    echo "${r#* }" | jq -r '"\(.leases | length) \(.reason)"'
}
P5=$("$CTL" project create --name late-quota --labels a,b)
seq 1 20 | sed 's/.*/{"n":&}/' | "$CTL" import --project "$P5" - >/dev/null
"$CTL" project share --project "$P5" --org vendor-v --quota 100 >/dev/null
r=$(api POST "/v1/projects/$P5/leases" "${VANN[1]}" '{"max":1}')
api POST "/v1/projects/$P5/leases/$(echo "${r#* }" | jq -r '.leases[0].lease')/submit" "${VANN[1]}" \
    '{"label":"a"}' >/dev/null
"$CTL" project share --project "$P5" --org vendor-v >/dev/null
r=$(api POST "/v1/projects/$P5/leases" "${VANN[1]}" '{"max":2}')
check "no bound: leases granted uncounted" 2 "$(echo "${r#* }" | jq '.leases | length')"
api POST "/v1/projects/$P5/leases/$(echo "${r#* }" | jq -r '.leases[0].lease')/submit" "${VANN[1]}" \
    '{"label":"a"}' >/dev/null
LIVE=$(echo "${r#* }" | jq -r '.leases[1].lease')
"$CTL" project share --project "$P5" --org vendor-v --quota 4 >/dev/null
check "quota 4 after 2 annotations and 1 live lease: one more lease" "1 null" \
    "$(lease_n "$P5" "${VANN[2]}" 5)"
check "and then none" "0 quota_reached" "$(lease_n "$P5" "${VANN[3]}" 1)"
api POST "/v1/projects/$P5/leases/$LIVE/release" "${VANN[1]}" '{}' >/dev/null
check "the lease granted uncounted frees its unit when released" "1 null" \
    "$(lease_n "$P5" "${VANN[3]}" 1)"

# An expired lease and an undone annotation keep the count right: with a cap
# of 1, lease and submit (1 used), refused, undo (the annotation goes, its
# task comes back as a new lease: still 1), let that lease expire (0), lease.
# (4 s leases: lease, submit, undo and lease again take over 1 s on two
# cores shared with other tests.)
P4=$("$CTL" project create --name expiry --labels a,b --lease-ttl-ms 4000)
seq 1 5 | sed 's/.*/{"n":&}/' | "$CTL" import --project "$P4" - >/dev/null
"$CTL" project share --project "$P4" --org vendor-v --cap 1 >/dev/null
r=$(api POST "/v1/projects/$P4/leases" "${VANN[1]}" '{"max":1}')
L=$(echo "${r#* }" | jq -r '.leases[0].lease')
r=$(api POST "/v1/projects/$P4/leases/$L/submit" "${VANN[1]}" '{"label":"a"}')
A=$(echo "${r#* }" | jq .annotation_id)
r=$(api POST "/v1/projects/$P4/leases" "${VANN[1]}" '{"max":1}')
check "cap 1: after one submit, cap_reached" "0 cap_reached" \
    "$(echo "${r#* }" | jq -r '"\(.leases | length) \(.reason)"')"
r=$(api POST "/v1/projects/$P4/annotations/$A/undo" "${VANN[1]}" '{}')
check "undo gives the task back as a lease" "200 true" "${r%% *} $(echo "${r#* }" | jq '.lease != null')"
r=$(api POST "/v1/projects/$P4/leases" "${VANN[1]}" '{"max":1}')
check "the undone task's lease still counts" "0 cap_reached" \
    "$(echo "${r#* }" | jq -r '"\(.leases | length) \(.reason)"')"
sleep 5.5 # the lease expires (4 s) and the reaper (every 1 s) returns it
r=$(api POST "/v1/projects/$P4/leases" "${VANN[1]}" '{"max":1}')
check "an expired lease gives its unit back" 1 "$(echo "${r#* }" | jq '.leases | length')"

# --- removing a share: 403 on the next request, on both brokers ---------------------------------
r=$(api GET "/v1/projects/$P/progress" "${VANN[1]}")
check "V's annotator reads the progress of the shared project" 200 "${r%% *}"
r=$(API_URL=$URL2 api GET "/v1/projects/$P/progress" "${VANN[1]}")
check "through the second broker too (it caches the project now)" 200 "${r%% *}"
"$CTL" project unshare --project "$P" --org vendor-v >/dev/null
r=$(api POST "/v1/projects/$P/leases" "${VANN[1]}" '{"max":1}')
check "unshared: V's annotator gets 403 at once from the broker that changed it" \
    "403 forbidden" "${r%% *} $(echo "${r#* }" | jq -r .error.code)"
t0=$(date +%s%N)
for _ in $(seq 1 100); do
    r=$(API_URL=$URL2 api POST "/v1/projects/$P/leases" "${VANN[1]}" '{"max":1}')
    [ "${r%% *}" = 403 ] && break
    sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
# Redis pub/sub tells the other broker to drop its copy; were the message
# lost, the copy would still expire within the project cache's 5 s.
check "and from the other broker at once (under a second)" "403 yes" \
    "${r%% *} $([ "$ms" -le 1000 ] && echo yes || echo "no: ${ms} ms")"
echo "# the second broker refused ${ms} ms after the share was removed"

# --- a vendor manager sees only their crew --------------------------------------------------------
P3=$("$CTL" project create --name crews --labels a,b)
seq 1 30 | sed 's/.*/{"n":&}/' | "$CTL" import --project "$P3" - >/dev/null
"$CTL" project share --project "$P3" --org vendor-v >/dev/null
"$CTL" project share --project "$P3" --org vendor-w >/dev/null
W1=$(tok vendor-w w-ann-1 annotator)
work() { # TOKEN N: lease and submit N tasks of P3
    local r lease
    r=$(api POST "/v1/projects/$P3/leases" "$1" "{\"max\":$2}")
    for lease in $(echo "${r#* }" | jq -r '.leases[]?.lease'); do
        api POST "/v1/projects/$P3/leases/$lease/submit" "$1" '{"label":"b"}' >/dev/null
    done
}
work "${VANN[1]}" 3
work "${VANN[2]}" 2
work "$W1" 4
work "$OWN_ANN" 1
sleep 1.5 # the lease log is written in batches (every second)
V_NAMES='["v-ann-1","v-ann-2"]'
for q in "by=annotator&window=15m" "by=annotator&window=1h" "by=annotator&window=1d" \
    "by=vendor&window=1h" "by=hour&window=1d" \
    "window=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M)Z..$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M)Z"; do
    r=$(api GET "/v1/projects/$P3/throughput?$q" "$VMGR")
    body=${r#* }
    check "throughput?$q answers V's manager" 200 "${r%% *}"
    check "throughput?$q counts V's 5 annotations only" 5 "$(echo "$body" | jq .totals.annotations)"
    check "throughput?$q names no one outside V" "" \
        "$(echo "$body" | jq -r --argjson v "$V_NAMES" --arg o "$V" '.. | objects | (select(has("annotator")) | .annotator | strings | select(. as $n | $v | index($n) | not)), (select(has("organization_id")) | .organization_id | numbers | select(tostring != $o))')"
done
r=$(api GET "/v1/projects/$P3/throughput?by=vendor&window=1h" "$VMGR")
check "by=vendor lists V alone" "vendor-v" "$(echo "${r#* }" | jq -r '[.rows[]?.organization] | join(" ")')"
r=$(api GET "/v1/projects/$P3/throughput?by=vendor&window=1h")
check "the owner's admin sees every organization by=vendor" 3 "$(echo "${r#* }" | jq '.rows | length')"
r=$(api GET "/v1/projects/$P3/report" "$VMGR")
check "report: V's manager sees V's annotators only" "5 v-ann-1,v-ann-2 null" \
    "$(echo "${r#* }" | jq -r '"\(.annotations) \([.per_annotator[].annotator] | join(",")) \(.agreement)"')"
r=$(api GET "/v1/projects/$P3/export?format=jsonl" "$VMGR")
check "export: V's manager gets V's annotations only" "5 v-ann-1,v-ann-2" \
    "$(echo "${r#* }" | jq -rs '"\(length) \([.[].annotator] | unique | join(","))"')"
r=$(api GET "/v1/projects/$P3/report" "$WMGR")
check "report: W's manager sees W's annotator only" "4 w-ann-1" \
    "$(echo "${r#* }" | jq -r '"\(.annotations) \([.per_annotator[].annotator] | join(","))"')"
r=$(api GET "/v1/projects/$P3/agreement" "$VMGR")
check "the agreement report (every crew) is not a vendor's" 403 "${r%% *}"
r=$(api GET "/v1/projects/$P3/report")
check "the owner's report counts every crew" 10 "$(echo "${r#* }" | jq .annotations)"
r=$(api POST "/v1/projects/$P3/tasks" "$VMGR" '{"n":1}')
check "a vendor's manager imports nothing" 403 "${r%% *}"
for q in "by=annotator" "by=vendor" "by=hour&window=1d"; do
    r=$(api GET "/v1/projects/$P/throughput?$q" "$VMGR")
    check "throughput?$q of a project no longer shared with V: 403" 403 "${r%% *}"
    r=$(api GET "/v1/projects/987654/throughput?$q" "$VMGR")
    check "throughput?$q of no project: the same 403" 403 "${r%% *}"
done
r=$(api GET "/v1/projects/$P/report" "$VMGR")
check "report of a project not shared with V: 403" 403 "${r%% *}"
# Another vendor's own project (W made it; vendors may run projects too).
r=$(api POST /v1/projects "$WMGR" '{"name":"w-own","labels":["a"]}')
PW=$(echo "${r#* }" | jq .id)
for q in "by=annotator" "by=vendor" "by=hour&window=1d"; do
    r=$(api GET "/v1/projects/$PW/throughput?$q" "$VMGR")
    check "throughput?$q of W's own project, asked by V's manager: 403" 403 "${r%% *}"
done
r=$(api GET "/v1/projects/$PW/report" "$VMGR")
check "report of W's own project, asked by V's manager: 403" 403 "${r%% *}"
r=$(api GET "/v1/projects/$PW/throughput" "$WMGR")
check "W's manager reads its own project's throughput" 200 "${r%% *}"

kill -TERM "$QUORUMD2_PID"
st=0
wait "$QUORUMD2_PID" || st=$?
QUORUMD2_PID=""
check "the second broker stopped cleanly, no sanitizer report" "0 0" \
    "$st $(grep -c 'Sanitizer\|runtime error' "$E2E_DIR/quorumd2.log")"
finish

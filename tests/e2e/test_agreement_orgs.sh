#!/usr/bin/env bash
# Annotators are told apart by id, not by name: an owner's annotator "alice"
# and a vendor's annotator also named "alice" label the same tasks of a
# shared project and disagree on half of them. The owner's agreement report
# counts two annotators and the disagreements; every report, the export and
# quorumctl's tables show two distinguishable rows; reading changes nothing
# in PostgreSQL.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"

tok() { # ORG-NAME (empty: the admin's) USER ROLE -> a token
    local r body
    body="{\"user\":\"$2\",\"role\":\"$3\"${1:+,\"organization\":\"$1\"}}"
    r=$(api POST /v1/tokens "$ADMIN_TOKEN" "$body")
    [ "${r%% *}" = 201 ] || { echo "token for $2: $r" >&2; return 1; }
    echo "${r#* }" | jq -r .token
}

r=$(api POST /v1/organizations "$ADMIN_TOKEN" '{"name":"vendor-v"}')
V=$(echo "${r#* }" | jq .id)
OWN_ALICE=$(tok "" alice annotator)
V_ALICE=$(tok vendor-v alice annotator)
check "two users named alice, one per organization" 2 "$(sql "SELECT count(DISTINCT id) FROM users WHERE name = 'alice'")"

# Four tasks, each labeled by both (two annotations per task), gold "a".
P=$("$CTL" project create --name twins --labels a,b --annotations-per-task 2)
seq 1 4 | sed 's/.*/{"data":{"n":&},"gold":"a"}/' | "$CTL" import --project "$P" - >/dev/null
"$CTL" project share --project "$P" --org vendor-v >/dev/null
OWNER=$(sql "SELECT org_id FROM projects WHERE id = $P")

label_all() { # TOKEN JQ-LABEL-OF-.data.n: lease and submit until 4 are done
    local t=$1 f=$2 i r lease label done=0
    for i in $(seq 1 20); do
        r=$(api POST "/v1/projects/$P/leases" "$t" '{"max":4,"wait_ms":2000}')
        for lease in $(echo "${r#* }" | jq -r '.leases[]? | "\(.lease)=\(.data.n)"'); do
            label=$(jq -rn --argjson n "${lease#*=}" "$f")
            api POST "/v1/projects/$P/leases/${lease%=*}/submit" "$t" "{\"label\":\"$label\"}" >/dev/null
            done=$((done + 1))
        done
        [ "$done" -ge 4 ] && return 0
    done
    echo "label_all: only $done submitted" >&2
}
label_all "$OWN_ALICE" '"a"'
label_all "$V_ALICE" 'if $n <= 2 then "a" else "b" end'
check "8 annotations, 4 by each alice" "4 4" \
    "$(sql "SELECT string_agg(n::text, ' ') FROM (SELECT count(*) AS n FROM annotations WHERE project_id = $P GROUP BY annotator_id) x")"

# What PostgreSQL holds (api_tokens.last_used_at moves with every request).
state() {
    sql "SELECT md5(concat_ws('|',
        (SELECT string_agg(a::text, ',' ORDER BY id) FROM annotations a),
        (SELECT string_agg(t::text, ',' ORDER BY id) FROM tasks t),
        (SELECT string_agg(l::text, ',' ORDER BY project_id, fencing_token) FROM leases l),
        (SELECT string_agg(u::text, ',' ORDER BY id) FROM users u),
        (SELECT string_agg(o::text, ',' ORDER BY id) FROM organizations o),
        (SELECT string_agg(p::text, ',' ORDER BY id) FROM projects p),
        (SELECT string_agg(s::text, ',' ORDER BY org_id) FROM project_shares s),
        (SELECT count(*) FROM lease_events),
        (SELECT string_agg(concat_ws(' ', id, user_id, revoked_at), ',' ORDER BY id) FROM api_tokens)))"
}
# The lease log is written in batches a moment after each request: wait
# until it holds all 8 submits and stops moving, so only reading is measured.
settled() {
    local i n prev=x
    for i in $(seq 1 50); do
        n=$(sql "SELECT count(*) FILTER (WHERE kind = 'submit') || ' ' || count(*) FROM lease_events")
        [ "${n%% *}" = 8 ] && [ "$n" = "$prev" ] && return 0
        prev=$n
        sleep 0.5
    done
    echo "lease log did not settle: $n" >&2
}
settled
BEFORE=$(state)

# By hand: one pair of annotators, 4 shared tasks, agreeing on tasks 1 and 2:
# percent agreement 2/4 = 0.5. Cohen's kappa: p_o 0.5, p_e 1 x 0.5 = 0.5, so 0.
# Krippendorff's alpha (nominal): 8 values, n_a 6, n_b 2; D_o = 4/8,
# D_e = 2 x 6 x 2 / (8 x 7) = 3/7; alpha = 1 - (1/2) / (3/7) = -1/6.
LIVE=$(api GET "/v1/projects/$P/agreement?fresh=1")
check "agreement: 200" 200 "${LIVE%% *}"
LIVE=${LIVE#* }
check "agreement counts two annotators and 8 judgements" "2 8 4" \
    "$(echo "$LIVE" | jq -r '"\(.counts.annotators) \(.counts.judgements) \(.counts.pairable_items)"')"
check "percent agreement is 0.5 (the vendor's disagreements count)" 0.5 \
    "$(echo "$LIVE" | jq '.metrics.percent_agreement.value')"
check "Krippendorff's alpha is -1/6" -166667 \
    "$(echo "$LIVE" | jq '.metrics.krippendorff_alpha_nominal.value * 1e6 | round')"
check "one pair, alice and alice of two organizations, 4 items, 2 agreeing, kappa 0" \
    "alice alice 4 2 0 true $OWNER $V" \
    "$(echo "$LIVE" | jq -r '.pairwise[] | "\(.a) \(.b) \(.items) \(.agree) \(.cohen_kappa.value)
        \(.a_id != .b_id) \(.a_organization_id) \(.b_organization_id)"' | tr -s ' \n' ' ' | sed 's/ $//')"
check "per annotator: two rows told apart by id and organization" \
    "alice $OWNER 4|alice $V 4" \
    "$(echo "$LIVE" | jq -r '[.per_annotator[] | "\(.annotator) \(.organization_id) \(.judgements)"] | join("|")')"
check "per annotator ids are the users'" \
    "$(sql "SELECT string_agg(id::text, ' ' ORDER BY id) FROM users WHERE name = 'alice'")" \
    "$(echo "$LIVE" | jq -r '[.per_annotator[].annotator_id] | join(" ")')"
check "per annotator rows name the organization" "true" \
    "$(echo "$LIVE" | jq '[.per_annotator[].organization] | .[1] == "vendor-v" and .[0] != "vendor-v"')"
check "gold: the owner's alice 4/4, the vendor's 2/4" "$OWNER 4 4|$V 2 4" \
    "$(echo "$LIVE" | jq -r '[.gold.per_annotator[] | "\(.organization_id) \(.agree) \(.compared)"] | join("|")')"
check "agreement carries the project's organization" "$OWNER" "$(echo "$LIVE" | jq .project_org_id)"

r=$(api GET "/v1/projects/$P/report")
check "report: two annotators, agreement 0.5" "200 2 0.5" \
    "${r%% *} $(echo "${r#* }" | jq -r '"\(.annotators) \(.agreement.percent_agreement)"')"
check "report rows told apart" "alice $OWNER 4|alice $V 4" \
    "$(echo "${r#* }" | jq -r '[.per_annotator[] | "\(.annotator) \(.organization_id) \(.annotations)"] | join("|")')"
check "report rows carry distinct annotator ids" 2 \
    "$(echo "${r#* }" | jq '[.per_annotator[].annotator_id] | unique | length')"

r=$(api GET "/v1/projects/$P/throughput?window=1h")
check "throughput: one row per alice" "alice $OWNER 4|alice $V 4" \
    "$(echo "${r#* }" | jq -r '[.rows[] | "\(.annotator) \(.organization_id) \(.annotations)"] | join("|")')"

"$CTL" export --project "$P" >"$E2E_DIR/export.csv"
check "CSV export names the vendor's alice with her organization" \
    "task_id,annotator,label,created_at,annotator_id,organization,external_id,lead_time,annotation_id,event alice:4 alice@vendor-v:4" \
    "$(head -n 1 "$E2E_DIR/export.csv" | tr -d '\r') $(tail -n +2 "$E2E_DIR/export.csv" | cut -d, -f2 | sort | uniq -c | awk '{printf "%s:%s ", $2, $1}' | sed 's/ $//')"
"$CTL" agreement "$E2E_DIR/export.csv" --json >"$E2E_DIR/offline.json"
check "offline agreement of the export = live (2 annotators, 0.5)" "2 0.5" \
    "$(jq -r '"\(.counts.annotators) \(.metrics.percent_agreement.value)"' "$E2E_DIR/offline.json")"
check "JSON lines export: two annotator ids, plain names" "alice alice 2" \
    "$("$CTL" export --project "$P" --format jsonl | jq -rs '"\(map(.annotator) | unique | .[0]) \(.[0].annotator) \(map(.annotator_id) | unique | length)"')"

OUT=$("$CTL" report --project "$P")
check "quorumctl report: a row for each alice" "alice 4|alice@vendor-v 4" \
    "$(echo "$OUT" | awk '$1 ~ /^alice/ && NF == 2 {print $1, $2}' | paste -sd'|')"
OUT=$("$CTL" agreement --project "$P")
check "quorumctl agreement: a row for each alice" "alice 4|alice@vendor-v 4" \
    "$(echo "$OUT" | awk '$1 ~ /^alice/ {print $1, $2}' | paste -sd'|')"
echo "$OUT" | grepq '^percent_agreement  *0.5000$' && pass "quorumctl agreement: percent agreement 0.5000" ||
    fail "quorumctl agreement: percent agreement 0.5000"

check "reading changed nothing in PostgreSQL" "$BEFORE" "$(state)"

finish

#!/usr/bin/env bash
# The Redis window under a tiny size (5 tasks, refill below 2) on two brokers:
# Redis never holds more fresh tasks than the window (tasks in progress stay
# until their last annotation is in), a lease request finding the window
# empty while PostgreSQL still has work gets work (the refill runs, once at a
# time across brokers), and every task ends with exactly its annotations.
. "$(dirname "$0")/lib.sh"

start_broker --window-tasks 5 --window-low 2
start_second_broker --window-tasks 5 --window-low 2

r=$("$QR_BIN_DIR/quorumd" serve --window-tasks 5 --window-low 5 2>&1) && st=0 || st=$?
check "window-low not below window-tasks: usage error" "2" "$st"

r=$(api POST /v1/projects "$ADMIN_TOKEN" '{"name":"win","labels":["a","b"],"annotations_per_task":2}')
P=$(echo "${r#* }" | jq .id)
seq 1 30 | sed 's/.*/{"n":&}/' | "$QR_BIN_DIR/quorumctl" import --project "$P" - >/dev/null
declare -A TOK
for a in ann1 ann2; do
    r=$(api POST /v1/tokens "$ADMIN_TOKEN" "{\"user\":\"$a\",\"role\":\"annotator\"}")
    TOK[$a]=$(echo "${r#* }" | jq -r .token)
done

max_ready=0 empty_early=0 rounds=0
for a in ann1 ann2; do
    done_n=0
    while :; do
        rounds=$((rounds + 1))
        [ $((rounds % 2)) = 0 ] && base=$URL2 || base=$URL
        r=$(API_URL=$base api POST "/v1/projects/$P/leases" "${TOK[$a]}" '{"max":3}')
        n=$(echo "${r#* }" | jq '.leases | length')
        ready=$(redis-cli -p "$QR_REDIS_PORT" zcard "{p:$P}:ready")
        # Fresh tasks (all slots free: nobody holds or did them) are the window;
        # tasks in progress stay besides, until their last annotation is in.
        fresh=$(redis-cli -p "$QR_REDIS_PORT" hgetall "{p:$P}:free" | awk 'NR % 2 == 0 && $1 == 2' | wc -l)
        [ "$fresh" -gt "$max_ready" ] && max_ready=$fresh
        if [ "$n" = 0 ]; then
            [ "$done_n" -lt 30 ] && empty_early=$((empty_early + 1))
            break
        fi
        body=$(echo "${r#* }" | jq -c '{results: [.leases[] | {lease, label: "a"}]}')
        r=$(API_URL=$base api POST "/v1/projects/$P/submit" "${TOK[$a]}" "$body")
        done_n=$((done_n + $(echo "${r#* }" | jq '[.results[] | select(.status == 201)] | length')))
        [ "$rounds" -lt 200 ] || { fail "no end after 200 rounds"; break; }
    done
    check "$a labeled all 30 tasks, 3 at a time through both brokers" 30 "$done_n"
done
check "no lease request came back empty while its annotator still had work" 0 "$empty_early"
check "Redis never held more fresh tasks than the window" true "$([ "$max_ready" -ge 1 ] && [ "$max_ready" -le 5 ] && echo true || echo "false ($max_ready)")"
check "every task holds exactly its 2 annotations" "0 60" \
    "$(sql "SELECT count(*) FILTER (WHERE done_count <> 2) FROM tasks WHERE project_id = $P") $(sql "SELECT count(*) FROM annotations WHERE project_id = $P")"
check "no (task, annotator) pair twice" 0 \
    "$(sql "SELECT count(*) FROM (SELECT 1 FROM annotations WHERE project_id = $P GROUP BY task_id, annotator_id HAVING count(*) > 1) d")"
check "the window is empty at the end" 0 "$(redis-cli -p "$QR_REDIS_PORT" hlen "{p:$P}:free")"
check "and so are who did what and the leases" "0 0" \
    "$(redis-cli -p "$QR_REDIS_PORT" exists "{p:$P}:seen") $(redis-cli -p "$QR_REDIS_PORT" hlen "{p:$P}:lease")"

finish

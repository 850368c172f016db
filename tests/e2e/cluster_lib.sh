# shellcheck shell=bash
# cluster_lib.sh - a Redis Cluster of the test's own, sourced after lib.sh by
# the cluster tests: Debian's redis-server with --cluster-enabled on
# loopback ports, joined with redis-cli --cluster create, killed at exit.

# cluster_node_port N BASE: a port P of 127.0.0.1 for node N, nothing
# listening on P nor on its cluster bus port P + 10000 (an ephemeral port
# above 55535 would have none). Each node gets its own slice of 1500 ports
# from BASE (tests running side by side pick different BASEs).
cluster_node_port() {
    local p
    for _ in $(seq 1 200); do
        p=$(($2 + ($1 - 1) * 1500 + RANDOM % 1500))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
            ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 10000))") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# cluster_start DIR NODES REPLICAS BASE: NODES nodes in DIR/n1.. started side
# by side (cluster-node-timeout 1000 ms), made one cluster with REPLICAS
# replicas a primary, killed (SIGKILL) at exit; sets PORTS (node i's port
# at i - 1) once every node says cluster_state:ok. Fails the test if not.
cluster_start() {
    local dir=$1 nodes=$2 replicas=$3 base=$4 i p starts=()
    for i in $(seq 1 "$nodes"); do
        (start_redis "$dir/n$i" "$(cluster_node_port "$i" "$base")" --save '' --appendonly no \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 1000 \
            --repl-diskless-sync-delay 0 && echo "$RPORT_UP" >"$dir/n$i.port") &
        starts+=($!)
    done
    for i in "${starts[@]}"; do wait "$i" || { fail "a node did not start"; finish; }; done
    PORTS=()
    for i in $(seq 1 "$nodes"); do PORTS+=("$(cat "$dir/n$i.port")"); done
    CLUSTER_DIR=$dir CLUSTER_NODES=$nodes
    at_exit cluster_kill_nodes
    # shellcheck disable=SC2046 # one argument a node
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "${PORTS[@]}") --cluster-replicas "$replicas" \
        --cluster-yes >"$dir/create.log" 2>&1 || { cat "$dir/create.log"; fail "cluster create"; finish; }
    for p in "${PORTS[@]}"; do
        for _ in $(seq 1 200); do
            redis-cli -p "$p" cluster info | grepq 'cluster_state:ok' && break
            sleep 0.1
        done
    done
    check "the cluster is up" ok "$(redis-cli -p "${PORTS[0]}" cluster info | tr -d '\r' | sed -n 's/^cluster_state://p')"
}

cluster_kill_nodes() {
    local i p
    for i in $(seq 1 "$CLUSTER_NODES"); do
        p=$(cat "$CLUSTER_DIR/n$i/redis.pid" 2>/dev/null || true)
        [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
    done
}

# cluster_chaos_checks NODE_PORT PROJECTS...: after the crews, the chaos
# checks over every project of the test's database: exact overlap, no
# duplicate (task, annotator) pair, every annotation the crews' ack logs
# ($E2E_DIR/acks-*.tsv) acknowledged present, and no lease in Redis (asked
# through NODE_PORT, following redirections) past its expiry by more than
# the reaper's turn (TTL_MS of the test).
cluster_chaos_checks() {
    local node=$1 p n stale=0 missing acked now_ms
    shift
    sleep 1
    check "exact overlap: every task holds its required annotations" 0 \
        "$(sql "SELECT count(*) FROM tasks t WHERE t.required <> (SELECT count(*) FROM annotations a WHERE a.task_id = t.id)")"
    check "no duplicate (task, annotator) pairs" 0 \
        "$(sql "SELECT count(*) FROM (SELECT 1 FROM annotations GROUP BY task_id, annotator_id HAVING count(*) > 1) d")"
    missing=$(acks_missing "$E2E_DIR"/acks-*.tsv)
    acked=$(wc -l <"$E2E_DIR/acks.csv")
    check "every acknowledged annotation is present ($acked acknowledged)" 0 "$missing"
    now_ms=$(($(date +%s%N) / 1000000))
    for p in "$@"; do
        n=$(redis-cli -c -p "$node" zcount "{p:$p}:leases" -inf $((now_ms - TTL_MS - 1200)))
        stale=$((stale + n))
    done
    check "no stale lease in any project" 0 "$stale"
}

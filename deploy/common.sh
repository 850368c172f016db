# common.sh - shell functions shared by deploy/*.sh and the tests (sourced).

# A loopback port nothing listens on now (checked by trying to connect), for
# servers that cannot bind port 0 and report it (PostgreSQL, redis-server).
# Something else may still take it before the server binds it: callers
# retry with another port when the server fails to start. The port is drawn
# below the kernel's ephemeral range, so the ports the kernel hands out
# (port-0 binds, outgoing connections) never collide with it.
free_port() {
    local p i lo=20000 hi=32767 eph
    if read -r eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && [ "$eph" -gt 11024 ]; then
        hi=$((eph - 1))
        lo=$((hi - 10000))
    fi
    for i in $(seq 1 500); do
        p=$(( (RANDOM * 32768 + RANDOM) % (hi - lo + 1) + lo ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

# wait_port_file FILE PID: prints the port a server wrote to FILE (quorumd
# --port-file writes it atomically once listening); fails if PID exits
# first or after 60 s (sanitizer builds start slowly on a loaded machine).
wait_port_file() {
    local i
    for i in $(seq 1 600); do
        if [ -s "$1" ]; then
            cat "$1"
            return 0
        fi
        kill -0 "$2" 2>/dev/null || { [ -s "$1" ] && { cat "$1"; return 0; }; return 1; }
        sleep 0.1
    done
    return 1
}

# start_quorumd BIN LOG [serve flags...]: `BIN serve` in the background on
# 127.0.0.1 and a port the kernel picks (--listen 127.0.0.1:0 --port-file
# LOG.port), so no other process can take the port between choosing and
# binding it; on $QD_LISTEN instead if set (a fixed HOST:PORT). Appends
# quorumd's output to LOG. Sets QD_PID and QD_PORT; returns 1 (LOG on
# stderr) if quorumd exits before listening.
start_quorumd() {
    local bin=$1 log=$2
    shift 2
    rm -f "$log.port"
    "$bin" serve --listen "${QD_LISTEN:-127.0.0.1:0}" --port-file "$log.port" "$@" >>"$log" 2>&1 &
    QD_PID=$!
    QD_PORT=$(wait_port_file "$log.port" "$QD_PID") || {
        cat "$log" >&2
        return 1
    }
}

# wait_accept_line FILE PID: the port `openssl s_server -accept 127.0.0.1:0`
# bound, from the "ACCEPT 127.0.0.1:PORT" line it prints to FILE (its
# stdout; not with -quiet, which drops that line); fails if PID exits first.
wait_accept_line() {
    local i line
    for i in $(seq 1 300); do
        line=$(grep -m1 '^ACCEPT ' "$1" 2>/dev/null || true)
        if [ -n "$line" ]; then
            echo "${line##*:}"
            return 0
        fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# hold_dead_port: a loopback port bound but not listening, held by a small
# background process until it is killed: connecting to it is refused, and
# no other process can start listening on it meanwhile. Sets DEAD_PORT and
# DEAD_PID (the caller kills DEAD_PID when done).
hold_dead_port() {
    local d
    d=$(mktemp -d "${TMPDIR:-/tmp}/quorum-dead-port.XXXXXX")
    python3 -c '
import os, signal, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d\n" % s.getsockname()[1])
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
signal.pause()
' "$d/port" </dev/null >/dev/null 2>&1 &
    DEAD_PID=$!
    local i
    for i in $(seq 1 100); do
        [ -s "$d/port" ] && break
        sleep 0.05
    done
    DEAD_PORT=$(cat "$d/port" 2>/dev/null || true)
    rm -rf "$d"
    [ -n "$DEAD_PORT" ]
}

# make_certs DIR DAYS: a private CA (DIR/ca.crt) and a server certificate
# for localhost and 127.0.0.1 signed by it (DIR/server.crt, DIR/server.key).
make_certs() {
    local d=$1 days=${2:-30}
    [ -f "$d/server.crt" ] && return 0
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days "$days" \
        -subj "/CN=Quorum private CA" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj "/CN=localhost" -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$d/ext.cnf"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days "$days" -extfile "$d/ext.cnf" -out "$d/server.crt" 2>/dev/null
    chmod 600 "$d"/*.key
}

# make_client_cert DIR NAME: a client certificate (CN=NAME, clientAuth) for
# mutual TLS, signed by the CA of `make_certs DIR`: DIR/NAME.crt, DIR/NAME.key.
make_client_cert() {
    local d=$1 n=$2
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$n" \
        -keyout "$d/$n.key" -out "$d/$n.csr" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >"$d/client.cnf"
    openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -days 2 -extfile "$d/client.cnf" -out "$d/$n.crt" 2>/dev/null
    chmod 600 "$d/$n.key"
}

# wait_https URL CA [PID]: until URL/healthz answers (10 s); fails early if
# PID (the server) exits.
wait_https() {
    local i
    for i in $(seq 1 100); do
        curl -fsS --cacert "$2" "$1/healthz" >/dev/null 2>&1 && return 0
        if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then return 1; fi
        sleep 0.1
    done
    return 1
}

# start_redis RDIR FIRST_PORT [redis-server flags...]: a redis-server with
# its files in RDIR, on FIRST_PORT if given and free, else on a free port;
# sets RPORT_UP; fails (status 1) when no port would do.
start_redis() {
    local rdir=$1 port=$2 try ok
    shift 2
    mkdir -p "$rdir"
    for try in $(seq 1 10); do
        [ -n "$port" ] && [ "$try" = 1 ] || port=$(free_port)
        rm -f "$rdir/redis.pid"
        if redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --dir "$rdir" \
            --pidfile "$rdir/redis.pid" --logfile "$rdir/redis.log" "$@" >/dev/null; then
            # --daemonize returns before the bind: wait until a server answers
            # and is ours (its dir is rdir), not one that holds the port.
            ok=0
            for _ in $(seq 1 100); do
                if [ "$(redis-cli -p "$port" config get dir 2>/dev/null | sed -n 2p)" = "$rdir" ]; then
                    ok=1
                    break
                fi
                grep -q 'Address already in use\|Could not create server TCP' "$rdir/redis.log" 2>/dev/null && break
                sleep 0.1
            done
            [ $ok = 1 ] && { RPORT_UP=$port; return 0; }
            if [ -f "$rdir/redis.pid" ]; then kill "$(cat "$rdir/redis.pid")" 2>/dev/null || true; fi
            : >"$rdir/redis.log"
        fi
    done
    echo "redis-server did not start (see $rdir/redis.log)" >&2
    return 1
}

# stop_redis PORT RDIR NOSAVE: asks the server on PORT to shut down (a kept
# Redis writes its append-only file out first), then makes sure the process
# named in RDIR/redis.pid is gone.
stop_redis() {
    local port=$1 rdir=$2 rpid
    [ -z "$port" ] || redis-cli -p "$port" shutdown $3 >/dev/null 2>&1 || true
    rpid=$(cat "$rdir/redis.pid" 2>/dev/null || true)
    [ -n "$rpid" ] || return 0
    for _ in $(seq 1 50); do grep -qs redis "/proc/$rpid/comm" || return 0; sleep 0.1; done
    kill "$rpid" 2>/dev/null || true
}

# common.sh - shell functions shared by deploy/*.sh and the tests (sourced).

# A loopback port nothing listens on (checked by trying to connect).
free_port() {
    local p i
    for i in $(seq 1 500); do
        p=$(( (RANDOM * 32768 + RANDOM) % 30000 + 20000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
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

# hermetic.sh - sourced first by every end-to-end test (through lib.sh, or
# directly by the tests that run without the shared stack): a test sees only
# the settings it makes itself, whatever the shell that started ctest holds.
#
# Sourcing it unsets every QUORUM_* variable: quorumd takes its settings
# from them (QUORUM_CLIENT_CA, QUORUM_MAX_CONNECTIONS, QUORUM_LOG_LEVEL, ...)
# and quorumctl and quorum-agent their broker, token and certificate
# (QUORUM_URL, QUORUM_TOKEN, QUORUM_CERT, ...), so a developer's `source
# .quorum/env` or QUORUM_TOKEN would otherwise leak into every test. It also
# unsets the PG* variables libpq reads and keeps psql from reading a psqlrc:
# the tests parse psql's output.

# shellcheck disable=SC2046
unset $(compgen -v QUORUM_ || true) $(compgen -v PG || true) 2>/dev/null || true
export PSQLRC=/dev/null

# hermetic_home DIR: makes DIR (a private, empty folder) the test's home for
# the clients. The profile (`quorum-agent login`) and the default spool go
# under DIR/xdg, not the user's; the test runs in DIR, which holds a
# .quorum/env naming no broker. Clients read only the nearest .quorum/env, so
# they never read the one `deploy/dev.sh up` writes into the checkout (nor
# any other above DIR); a test that wants one writes its own, nearer.
hermetic_home() {
    local dir=$1
    mkdir -p "$dir/xdg/config" "$dir/xdg/state" "$dir/.quorum"
    export XDG_CONFIG_HOME="$dir/xdg/config" XDG_STATE_HOME="$dir/xdg/state"
    (
        umask 077
        echo "# no broker here: clients look no further up for a .quorum/env" >"$dir/.quorum/env"
    )
    cd "$dir"
}

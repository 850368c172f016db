#!/usr/bin/env bash
# test_package.sh - issue 19 point 5: the Debian package. CPack's DEB
# generator over this build (what `deploy/dev.sh package` runs over a
# Release build) gives quorum_<version>_amd64.deb, the version being
# CMakeLists.txt's; `dpkg -i` installs the three binaries, the migrations
# (quorumd's default --sql-dir), the systemd unit (`systemd-analyze verify`
# passes, a broken copy does not), the config file as a conffile readable by
# the quorum system user the package makes, which `quorumd --config
# /etc/quorum/quorumd.conf --check-config` finds "config ok"; a broken line
# is exit 2 naming it; `dpkg -r` leaves only the conffile, `dpkg -P` nothing,
# not the user either.
#
# It installs into the machine's own /: it runs as root only (CI does) and
# only on a machine without a quorum package, user or /etc/quorum, and it
# purges what it installed whatever happens. Offline: no database.
set -euo pipefail
: "${QR_BIN_DIR:?}" "${QR_SOURCE_DIR:?}"
. "$(dirname "$0")/hermetic.sh"
if [ "$(id -u)" != 0 ]; then
    echo "ok - SKIPPED: dpkg -i into / needs root (CI runs as root); nothing was checked"
    exit 0
fi
DIR=$(mktemp -d /tmp/quorum-package.XXXXXX)
INSTALLED=""
cleanup() {
    local rc=$?
    if [ -n "$INSTALLED" ]; then
        dpkg -P quorum >/dev/null 2>&1 || true
        if getent passwd quorum >/dev/null; then deluser --system quorum >/dev/null 2>&1 || true; fi
    fi
    rm -rf "$DIR"
    exit $rc
}
trap cleanup EXIT
cd "$DIR"
FAILS=0
PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then pass "$1"; else fail "$1 (expected '$2', got '$3')"; fi
}
# Two runs on one machine take turns (dpkg's own lock would fail the second).
exec 8>/tmp/quorum-test-package.lock
flock -w 300 8 || { echo "not ok - another test_package.sh held the lock for 300 s"; exit 1; }
if dpkg-query -W -f='${Status}' quorum 2>/dev/null | grep -q 'installed\|config-files' ||
    getent passwd quorum >/dev/null || [ -e /etc/quorum ]; then
    echo "ok - SKIPPED: this machine already has a quorum package, user or /etc/quorum: left alone"
    exit 0
fi
for t in cpack dpkg-deb systemd-analyze adduser runuser; do
    command -v "$t" >/dev/null || { echo "not ok - no $t (deploy/dev.sh deps installs it)"; exit 1; }
done

# --- The package --------------------------------------------------------------
B=$(dirname "$QR_BIN_DIR")
VERSION=$(sed -n 's/^project(quorum VERSION \([0-9.]*\).*/\1/p' "$QR_SOURCE_DIR/CMakeLists.txt")
t0=$SECONDS
(cd "$B" && cpack --config "$B/CPackConfig.cmake" -G DEB -B "$DIR/pkg") >"$DIR/cpack.log" 2>&1 ||
    { cat "$DIR/cpack.log"; fail "cpack failed"; exit 1; }
DEB="$DIR/pkg/quorum_${VERSION}_amd64.deb"
[ -f "$DEB" ] && pass "cpack wrote quorum_${VERSION}_amd64.deb in $((SECONDS - t0)) s" ||
    { fail "no $DEB: $(ls "$DIR/pkg")"; exit 1; }
check "its version is CMakeLists.txt's" "$VERSION" "$(dpkg-deb -f "$DEB" Version)"
deps=$(dpkg-deb -f "$DEB" Depends)
for d in adduser libuv1 libpq5 libhiredis0.14 libssl3 libjansson4 libcurl4; do
    grep -qE "(^|, )$d( |,|$)" <<<"$deps" && pass "depends on $d" || fail "Depends lacks $d: $deps"
done
dpkg-deb -c "$DEB" | awk '{print $NF}' | sed 's|^\.||' >"$DIR/contents"
for f in /usr/bin/quorumd /usr/bin/quorumctl /usr/bin/quorum-agent /usr/share/quorum/sql/0001_init.sql \
    /usr/lib/systemd/system/quorumd.service /etc/quorum/quorumd.conf \
    /usr/share/doc/quorum/OPERATIONS.md /usr/share/doc/quorum/quorum.rules.yml; do
    grep -qx "$f" "$DIR/contents" && pass "holds $f" || fail "does not hold $f"
done
dpkg-deb -e "$DEB" "$DIR/control"
check "its conffile" /etc/quorum/quorumd.conf "$(cat "$DIR/control/conffiles")"

# --- Installed ------------------------------------------------------------------
INSTALLED=1
dpkg -i "$DEB" >"$DIR/dpkg-i.log" 2>&1 && pass "dpkg -i" || { cat "$DIR/dpkg-i.log"; fail "dpkg -i"; exit 1; }
IFS=: read -r _ _ uid _ _ home shell <<<"$(getent passwd quorum)"
[ -n "$uid" ] && [ "$uid" -lt 1000 ] && pass "a system user quorum (uid $uid)" || fail "user quorum: '$uid'"
check "... without a home or a shell" "/nonexistent /usr/sbin/nologin" "$home $shell"
check "... and its group" quorum "$(id -gn quorum)"
check "the config file: 0640 root:quorum (it may hold a password)" "640 root:quorum" \
    "$(stat -c '%a %U:%G' /etc/quorum/quorumd.conf)"
U=/usr/lib/systemd/system/quorumd.service
rc=0
systemd-analyze verify "$U" >"$DIR/verify.log" 2>&1 || rc=$?
check "systemd-analyze verify quorumd.service: exit 0, nothing said" "0 " "$rc $(cat "$DIR/verify.log")"
sed 's/^NoNewPrivileges=yes/NoNewPrivileges=perhaps/; s|^ExecStart=/usr/bin/quorumd|ExecStart=/usr/bin/quorumd-none|' \
    "$U" >"$DIR/broken.service"
rc=0
systemd-analyze verify "$DIR/broken.service" >"$DIR/verify.log" 2>&1 || rc=$?
[ "$rc" != 0 ] && pass "... which fails a broken copy: $(grep -c . "$DIR/verify.log") complaints" ||
    fail "systemd-analyze verify passed a broken unit"
for l in User=quorum NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes LimitNOFILE=65536 \
    Restart=on-failure 'ExecReload=/bin/kill -HUP $MAINPID' \
    'ExecStart=/usr/bin/quorumd --config /etc/quorum/quorumd.conf'; do
    grep -qx -- "$l" "$U" && pass "the unit: $l" || fail "the unit lacks $l"
done
r=$(/usr/bin/quorumd --config /etc/quorum/quorumd.conf --check-config 2>/dev/null) && rc=0 || rc=$?
check "quorumd --config /etc/quorum/quorumd.conf --check-config" "0 config ok" "$rc $r"
r=$(runuser -u quorum -- /usr/bin/quorumd --config /etc/quorum/quorumd.conf --check-config 2>/dev/null) &&
    rc=0 || rc=$?
check "... as the quorum user too" "0 config ok" "$rc $r"
/usr/bin/quorumd --help | grep -q -- '--sql-dir DIR .*(/usr/share/quorum/sql:' &&
    pass "installed, quorumd's default --sql-dir is /usr/share/quorum/sql" ||
    fail "--sql-dir default: $(/usr/bin/quorumd --help | grep -- '--sql-dir DIR')"
for b in quorumctl quorum-agent; do
    /usr/bin/$b --help >/dev/null 2>&1 && pass "/usr/bin/$b --help" || fail "/usr/bin/$b --help"
done
# A broken line in the installed file (a local change: dpkg -r keeps it).
echo "max-connections = many" >>/etc/quorum/quorumd.conf
n=$(wc -l </etc/quorum/quorumd.conf)
r=$(/usr/bin/quorumd --config /etc/quorum/quorumd.conf --check-config 2>&1) && rc=0 || rc=$?
check "a broken line: exit 2, naming the file and line $n" \
    "2 quorumd: /etc/quorum/quorumd.conf:$n: bad value 'many' for max-connections" "$rc $r"

# --- Removed, then purged -------------------------------------------------------
dpkg -r quorum >"$DIR/dpkg-r.log" 2>&1 && pass "dpkg -r" || { cat "$DIR/dpkg-r.log"; fail "dpkg -r"; }
left=$(while read -r f; do if [ -f "$f" ]; then echo "$f"; fi; done <"$DIR/contents" | tr '\n' ' ')
check "removed: of its files only the conffile is left" "/etc/quorum/quorumd.conf " "$left"
dpkg -P quorum >"$DIR/dpkg-p.log" 2>&1 && pass "dpkg -P" || { cat "$DIR/dpkg-p.log"; fail "dpkg -P"; }
left=$(while read -r f; do if [ -e "$f" ] && [ ! -d "$f" ]; then echo "$f"; fi; done <"$DIR/contents" |
    tr '\n' ' ')
check "purged: none of its files is left" "" "$left"
left=$(for d in /etc/quorum /usr/share/quorum /usr/share/doc/quorum; do if [ -e "$d" ]; then echo "$d"; fi; done |
    tr '\n' ' ')
check "... nor its folders" "" "$left"
getent passwd quorum >/dev/null && fail "the user quorum is left" || pass "the user quorum is gone"
getent group quorum >/dev/null && fail "the group quorum is left" || pass "the group quorum is gone"
check "dpkg knows no quorum package" "" "$(dpkg-query -W -f='${Status}' quorum 2>/dev/null || true)"
INSTALLED=""

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]

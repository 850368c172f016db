#!/usr/bin/env bash
# test_alert_rules.sh - issue 19 point 6: deploy/prometheus/quorum.rules.yml
# passes `promtool check rules`; its alerts fire on the series that should
# fire them and stay quiet on healthy ones (`promtool test rules` over
# quorum.rules.test.yml); and every quorum_* metric it names is one quorumd
# exports (its name is in the sources of GET /metrics), so a renamed metric
# fails here instead of silencing an alert.
#
# Offline: promtool (Debian's prometheus package) only.
set -euo pipefail
: "${QR_SOURCE_DIR:?}"
. "$(dirname "$0")/hermetic.sh"
P="$QR_SOURCE_DIR/deploy/prometheus"
FAILS=0
PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
fail() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }
command -v promtool >/dev/null || { echo "not ok - no promtool (deploy/dev.sh deps installs prometheus)"; exit 1; }

out=$(promtool check rules "$P/quorum.rules.yml" 2>&1) && pass "promtool check rules: $(echo "$out" | grep -o 'SUCCESS.*')" ||
    fail "promtool check rules: $out"
out=$(cd "$P" && promtool test rules quorum.rules.test.yml 2>&1) && pass "promtool test rules: the alerts fire as expected" ||
    fail "promtool test rules: $out"
n=0
for m in $(grep -oE '\bquorum_[a-z_]+' "$P/quorum.rules.yml" | sed -E 's/_(bucket|count|sum)$//' | sort -u); do
    n=$((n + 1))
    grep -rqF "\"$m" "$QR_SOURCE_DIR/broker/metrics" "$QR_SOURCE_DIR/broker/core/scrape.c" ||
        fail "the rules name $m, which quorumd does not export"
done
[ "$n" -ge 10 ] && pass "the $n quorum_* metrics the rules name are all exported" || fail "only $n metrics named"
grep -oE 'alert: [A-Za-z]+' "$P/quorum.rules.yml" | cut -d' ' -f2 | while read -r a; do
    grep -q "^### $a\$\|\`$a\`" "$QR_SOURCE_DIR/docs/OPERATIONS.md" || echo "$a"
done >"${TMPDIR:-/tmp}/undocumented.$$"
undoc=$(tr '\n' ' ' <"${TMPDIR:-/tmp}/undocumented.$$")
rm -f "${TMPDIR:-/tmp}/undocumented.$$"
[ -z "$undoc" ] && pass "docs/OPERATIONS.md says what each alert means" || fail "undocumented alerts: $undoc"

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" = 0 ]

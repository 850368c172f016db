#!/usr/bin/env bash
# The Label Studio round trip, end to end: a Label Studio export written by
# hand to Label Studio's documented task shape (tasks with ids, nested data,
# predictions with model_version, score and result, annotations with id,
# result, completed_by, lead_time, was_cancelled, ground_truth, created_at)
# -> `quorumctl import` -> two annotators label every task with
# `quorum-agent exec` -> `quorumctl export --format ls` -> every original id,
# data field, prediction and annotation is there, field by field, and the new
# annotations are in Label Studio's result shape (ground_truth: the label is
# the task's gold answer, which task 101 carries as Quorum's "gold" key). Then the export itself is
# imported into a second project: the source's ids survive a second trip.
. "$(dirname "$0")/lib.sh"

start_broker
CTL="$QR_BIN_DIR/quorumctl"
AGENT="$QR_BIN_DIR/quorum-agent"
P=$(new_project '{"name":"ls-roundtrip","labels":["positive","negative","neutral"],"annotations_per_task":2}')
ALICE=$(new_annotator alice)
BOB=$(new_annotator bob)

# Label Studio's task format (labelstud.io/guide/task_format): what its
# "Export -> JSON" writes for a Choices config named sentiment on text.
cat >"$E2E_DIR/source.json" <<'JSON'
[
  {
    "id": 101,
    "gold": "positive",
    "data": {"text": "I love it", "meta_info": {"source": "app", "stars": 5, "tags": ["a", "b"]}},
    "predictions": [
      {"model_version": "m1", "score": 0.55,
       "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                   "value": {"choices": ["neutral"]}}]},
      {"model_version": "m2", "score": 0.93,
       "result": [{"id": "r1", "from_name": "sentiment", "to_name": "text", "type": "choices",
                   "value": {"choices": ["positive"]}}]}
    ],
    "annotations": [
      {"id": 9001, "completed_by": 3, "lead_time": 4.25, "was_cancelled": false,
       "ground_truth": true, "created_at": "2024-05-01T12:00:00.000000Z",
       "result": [{"id": "a1", "from_name": "sentiment", "to_name": "text", "type": "choices",
                   "value": {"choices": ["positive"]}}]}
    ]
  },
  {
    "id": 102,
    "data": {"text": "meh", "n": 2.5},
    "annotations": [
      {"id": 9002, "completed_by": 4, "lead_time": 1.5, "was_cancelled": true,
       "ground_truth": false, "created_at": "2024-05-02T08:30:00.000000Z", "result": []},
      {"id": 9003, "completed_by": 5, "lead_time": 0.75, "was_cancelled": false,
       "ground_truth": false, "created_at": "2024-05-02T09:00:00.000000Z",
       "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                   "value": {"choices": ["neutral"]}}]}
    ]
  },
  {"id": 103, "data": {"text": "awful"}, "predictions": [], "annotations": []},
  {"id": 104, "data": {"text": "so-so", "lang": "en"},
   "predictions": [{"model_version": "m2", "score": 0.4,
                    "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                                "value": {"choices": ["negative"]}}]}]}
]
JSON

out=$("$CTL" import --project "$P" "$E2E_DIR/source.json" 2>"$E2E_DIR/import.err")
check "quorumctl imports the Label Studio file" "imported 4 tasks" "${out%% (*}"

# Two annotators label every task: alice says what data.text suggests, bob
# always "negative". A short think time gives each a time on task.
cat >"$E2E_DIR/alice.sh" <<'EOF'
#!/usr/bin/env bash
task=$(cat)
sleep 0.2
case "$(jq -r .data.text <<<"$task")" in
"I love it") echo '{"label":"positive"}' ;;
awful) echo '{"label":"negative"}' ;;
*) echo '{"label":"neutral"}' ;;
esac
EOF
printf '#!/usr/bin/env bash\ncat >/dev/null\nsleep 0.2\necho %s\n' "'{\"label\":\"negative\"}'" >"$E2E_DIR/bob.sh"
chmod +x "$E2E_DIR/alice.sh" "$E2E_DIR/bob.sh"
for who in alice bob; do
    tok=$ALICE
    [ "$who" = bob ] && tok=$BOB
    rc=0
    QUORUM_TOKEN=$tok timeout 120 "$AGENT" exec --project "$P" --idle-exit 2 \
        --spool "$E2E_DIR/$who.spool" -- "$E2E_DIR/$who.sh" 2>"$E2E_DIR/$who.err" || rc=$?
    check "$who's exec labels every task and exits 0" 0 "$rc"
done
check "8 annotations stored (2 per task)" 8 \
    "$(sql "SELECT count(*) FROM annotations a JOIN tasks t ON t.id = a.task_id WHERE t.project_id = $P")"

rc=0
"$CTL" export --project "$P" --format ls >"$E2E_DIR/export.json" 2>"$E2E_DIR/export.err" || rc=$?
check "quorumctl export --format ls exits 0" 0 "$rc"
grep -q '^X-Quorum-Cursor: ' "$E2E_DIR/export.err" && pass "the export's cursor is on stderr" ||
    fail "no cursor on stderr: $(cat "$E2E_DIR/export.err")"

# Field by field, in Python (each check prints ok/not ok like the others).
users=$(sql "SELECT string_agg(name || '=' || id, ',') FROM users WHERE name IN ('alice', 'bob', 'imported')")
python3 - "$E2E_DIR/source.json" "$E2E_DIR/export.json" "$users" >"$E2E_DIR/checks" <<'PY' || true
import json, sys, re
src = json.load(open(sys.argv[1]))
out = json.load(open(sys.argv[2]))
users = dict(kv.split('=') for kv in sys.argv[3].split(','))
def check(what, ok):
    print(("ok - " if ok else "not ok - ") + what)
check("the export is a JSON array of 4 tasks", isinstance(out, list) and len(out) == 4)
by_ext = {}
for t in out:
    ext = (t.get("meta") or {}).get("external_id")
    by_ext[ext] = t
check("every original id is there as meta.external_id: 101 102 103 104",
      sorted(by_ext) == ["101", "102", "103", "104"])
alice, bob = int(users["alice"]), int(users["bob"])
want_alice = {"101": "positive", "102": "neutral", "103": "negative", "104": "neutral"}
for s in src:
    ext = str(s["id"])
    t = by_ext.get(ext)
    if t is None:
        check(f"task {ext} exported", False)
        continue
    check(f"task {ext}: id is Quorum's task id (an integer, also meta.quorum_task_id)",
          isinstance(t["id"], int) and t["meta"].get("quorum_task_id") == t["id"])
    # data: every field, nested ones and number types too
    check(f"task {ext}: data equal field by field", t["data"] == s["data"])
    for k, v in s["data"].items():
        check(f"task {ext}: data.{k} = {json.dumps(v)}", t["data"].get(k) == v)
    # predictions: all of them, in order, every field
    sp = s.get("predictions", [])
    tp = t.get("predictions")
    check(f"task {ext}: {len(sp)} predictions", isinstance(tp, list) and len(tp) == len(sp))
    for i, p in enumerate(sp):
        q = tp[i] if tp and i < len(tp) else {}
        for k in ("model_version", "score", "result"):
            check(f"task {ext}: prediction {i + 1} {k} = {json.dumps(p[k])}", q.get(k) == p[k])
    anns = t.get("annotations", [])
    sa = s.get("annotations", [])
    # (by id: an imported annotation's completed_by is a user id of the
    # source, which may be any number, bob's Quorum id too)
    source_ids = {a["id"] for a in s.get("annotations", [])}
    imported = [a for a in anns if a.get("id") in source_ids]
    mine = [a for a in anns if a.get("id") not in source_ids]
    check(f"task {ext}: {len(sa)} imported annotations and 2 new ones",
          len(imported) == len(sa) and len(mine) == 2)
    for a in sa:
        got = [b for b in imported if b.get("id") == a["id"]]
        check(f"task {ext}: imported annotation {a['id']} kept (by its id)", len(got) == 1)
        b = got[0] if got else {}
        for k in ("result", "completed_by", "lead_time", "was_cancelled", "ground_truth"):
            check(f"task {ext}: annotation {a['id']} {k} = {json.dumps(a[k])}", b.get(k) == a[k])
        # created_at: the same instant (PostgreSQL may write it with fewer digits)
        norm = lambda x: re.sub(r"(\.\d*?)0*Z$", r"\1Z", x or "").replace(".Z", "Z")
        check(f"task {ext}: annotation {a['id']} created_at = {a['created_at']}",
              norm(b.get("created_at")) == norm(a["created_at"]))
    for who, uid, label in (("alice", alice, want_alice[ext]), ("bob", bob, "negative")):
        got = [b for b in mine if b.get("completed_by") == uid]
        b = got[0] if got else {}
        r = b.get("result")
        check(f"task {ext}: {who}'s annotation: id an integer", isinstance(b.get("id"), int))
        check(f"task {ext}: {who}'s result in Label Studio's shape, choices [{label}]",
              r == [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                     "value": {"choices": [label]}}])
        check(f"task {ext}: {who}'s completed_by is the user's id {uid}", b.get("completed_by") == uid)
        lt = b.get("lead_time")
        check(f"task {ext}: {who}'s lead_time in seconds (>= 0.2, < 60): {lt}",
              isinstance(lt, (int, float)) and 0.2 <= lt < 60)
        truth = s.get("gold") == label
        check(f"task {ext}: {who}'s was_cancelled false, ground_truth {str(truth).lower()}"
              f" (gold {s.get('gold')})",
              b.get("was_cancelled") is False and b.get("ground_truth") is truth)
        check(f"task {ext}: {who}'s created_at an ISO time",
              re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$",
                       b.get("created_at") or "") is not None)
PY
cat "$E2E_DIR/checks"
PASSES=$((PASSES + $(grep -c '^ok - ' "$E2E_DIR/checks" || true)))
FAILS=$((FAILS + $(grep -c '^not ok - ' "$E2E_DIR/checks" || true)))
check "the field-by-field checks ran (100 or more)" yes \
    "$([ "$(wc -l <"$E2E_DIR/checks")" -ge 100 ] && echo yes || echo "no: $(wc -l <"$E2E_DIR/checks")")"

# A second trip: the export imported into a new project keeps the source's
# ids (meta.external_id wins over Quorum's id), data and predictions, and
# every annotation of the export comes along as an imported one.
P2=$(new_project '{"name":"ls-again","labels":["positive","negative","neutral"],"annotations_per_task":1}')
out=$("$CTL" import --project "$P2" "$E2E_DIR/export.json" 2>"$E2E_DIR/import2.err")
check "the export imports again into a new project" "imported 4 tasks" "${out%% (*}"
check "the second trip keeps the source's ids" "101 102 103 104" \
    "$(sql "SELECT string_agg(external_id, ' ' ORDER BY external_id) FROM tasks WHERE project_id = $P2")"
check "and the data" \
    "$(sql "SELECT string_agg(data::text, '|' ORDER BY external_id) FROM tasks WHERE project_id = $P")" \
    "$(sql "SELECT string_agg(data::text, '|' ORDER BY external_id) FROM tasks WHERE project_id = $P2")"
check "and the predictions" \
    "$(sql "SELECT string_agg(coalesce(predictions::text, '-'), '|' ORDER BY external_id) FROM tasks WHERE project_id = $P")" \
    "$(sql "SELECT string_agg(coalesce(predictions::text, '-'), '|' ORDER BY external_id) FROM tasks WHERE project_id = $P2")"
check "and every annotation of the export (3 imported + 8 new = 11)" 11 \
    "$(sql "SELECT count(*) FROM imported_annotations WHERE project_id = $P2")"
finish

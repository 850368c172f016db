#!/usr/bin/env python3
"""The layering check (docs/DESIGN.md, "Layers"): fails when a file
includes across a forbidden line, when SQL text appears outside the store,
or when files include each other in a circle.

  tests/layering.py sources [ROOT]     the include rules over the source tree
  tests/layering.py objects BUILD      the same rules over the symbols the
                                       built object files use of each other
  tests/layering.py selftest [ROOT]    plants one violation of each rule in a
                                       copy of the tree and checks it is caught

Each layer is a folder; a file may include headers of its own layer and of
the layers listed for it in ALLOWED, nothing else of the project. A header
is found by its name (every project header name is unique; the check fails
if one is not). Circles are looked for between files (headers including
each other, directly or through others) and, over the objects, between
layers.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

# folder (relative to the root) -> layer; the longest matching prefix wins.
LAYERS = {
    "common": "common",
    "common/agreement": "agreement",
    "broker/http": "http",
    "broker/metrics": "metrics",
    "broker/store": "store",
    "broker/lease": "lease",
    "broker/reports": "reports",
    "broker/import": "import",
    "broker/webhook": "webhook",
    "broker/core": "core",
    "broker/api": "api",
    "broker/ctl": "ctl",
    "broker": "main",  # quorumd_main.c, the composition root
    "worker-agent": "agent",
}

BROKER = ["http", "metrics", "store", "lease", "reports", "import", "webhook", "core", "api"]

# layer -> the other layers it may use.
ALLOWED = {
    "common": [],
    "agreement": ["common"],
    "http": ["common"],
    "metrics": ["common"],
    "store": ["common", "metrics"],
    "lease": ["common"],
    "reports": ["common", "agreement", "store"],
    "import": ["common", "agreement"],
    "webhook": ["common", "store"],
    "core": ["common", "http", "metrics", "store", "lease", "reports", "import", "webhook"],
    "api": ["common", "agreement"] + [l for l in BROKER if l != "api"],
    "main": ["common", "agreement"] + BROKER,
    "ctl": ["common", "agreement"],
    "agent": ["common"],
}

# layer -> system headers it may not include (the event loop and backends
# stay out of the code every binary shares).
BACKENDS = re.compile(r"^(uv\.h|uv/.*|libpq-fe\.h|hiredis/.*|http_parser\.h)$")
NO_SYSTEM = {"common": BACKENDS, "agreement": BACKENDS}

# SQL statements in a string literal; allowed only in the store (and sql/).
SQL = re.compile(
    r"\b(SELECT\s+[\w*(]|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b|"
    r"CREATE\s+(TABLE|INDEX|FUNCTION)\b|ALTER\s+TABLE\b|COPY\s+\w+\s*\(|WITH\s+\w+\s+AS\s*\()"
)
SQL_LAYERS = {"store"}

# layer -> symbols of other layers it may not call even where it may use
# the layer: the API talks to Redis through the lease engine only.
FORBIDDEN_SYMBOLS = {"api": re.compile(r"^(qr_redis_|redis)")}

SOURCE_DIRS = ["common", "broker", "worker-agent"]
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
STRING = re.compile(r'"(?:\\.|[^"\\\n])*"')
COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)


def layer_of(rel):
    d = os.path.dirname(rel)
    best = None
    for prefix, layer in LAYERS.items():
        if d == prefix or d.startswith(prefix + "/"):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, layer)
    return best[1] if best else None


def source_files(root):
    out = []
    for top in SOURCE_DIRS:
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for n in sorted(names):
                if n.endswith((".c", ".h")):
                    out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)


def strip_comments(text):
    # Strings first, so that "/*" inside a string does not open a comment.
    return re.sub(
        r'"(?:\\.|[^"\\\n])*"|/\*.*?\*/|//[^\n]*',
        lambda m: m.group(0) if m.group(0)[0] == '"' else " ",
        text,
        flags=re.S,
    )


def find_cycle(graph):
    """A list of nodes forming a circle in graph (node -> set), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in graph}
    stack = []

    def visit(n):
        colour[n] = GREY
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if colour.get(m, WHITE) == GREY:
                return stack[stack.index(m):] + [m]
            if colour.get(m, WHITE) == WHITE:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        colour[n] = BLACK
        return None

    sys.setrecursionlimit(10000)
    for n in sorted(graph):
        if colour[n] == WHITE:
            c = visit(n)
            if c:
                return c
    return None


def check_sources(root):
    files = source_files(root)
    by_name = {}
    problems = []
    for f in files:
        if f.endswith(".h"):
            by_name.setdefault(os.path.basename(f), []).append(f)
    for name, paths in by_name.items():
        if len(paths) > 1:
            problems.append("header name %s is not unique: %s" % (name, ", ".join(paths)))
    uses = 0
    graph = {}  # file -> the project files it includes
    for f in files:
        layer = layer_of(f)
        text = open(os.path.join(root, f), encoding="utf-8", errors="replace").read()
        code = strip_comments(text)
        module = f
        graph.setdefault(module, set())
        for kind, inc in INCLUDE.findall(code):
            if kind == "<":
                rule = NO_SYSTEM.get(layer)
                if rule and rule.match(inc):
                    problems.append("%s: the %s layer may not include <%s>" % (f, layer, inc))
                continue
            target = by_name.get(os.path.basename(inc))
            if not target:
                continue  # a generated or system header in quotes
            target = target[0]
            tl = layer_of(target)
            uses += 1
            if target != module:
                graph[module].add(target)
            if tl != layer and tl not in ALLOWED.get(layer, []):
                problems.append('%s: the %s layer may not include "%s" (%s layer)'
                                % (f, layer, inc, tl))
        if layer not in SQL_LAYERS:
            for s in STRING.findall(code):
                if SQL.search(s):
                    problems.append("%s: SQL outside the store: %s" % (f, s[:60]))
                    break
    cycle = find_cycle(graph)
    if cycle:
        problems.append("include circle: " + " -> ".join(cycle))
    return problems, "%d includes between %d files" % (uses, len(files))


def check_objects(build):
    objs = []
    for dirpath, _, names in os.walk(build):
        for n in names:
            if n.endswith(".c.o") and "/CMakeFiles/" in dirpath + "/":
                p = os.path.join(dirpath, n)
                # broker/CMakeFiles/qr_api.dir/api/router.c.o -> broker/api/router.c
                m = re.search(r"(?:^|/)([\w-]+)/CMakeFiles/[^/]+\.dir/(.+)\.o$", p)
                if not m:
                    continue
                rel = m.group(1) + "/" + m.group(2)
                if m.group(1) not in SOURCE_DIRS:
                    continue
                objs.append((rel, p))
    if not objs:
        return ["no object files under %s: build first" % build], ""
    defined, undefined = {}, {}
    for rel, p in objs:
        out = subprocess.run(["nm", "-P", p], capture_output=True, text=True, check=True).stdout
        undefined[rel] = set()
        for line in out.splitlines():
            parts = line.split()
            if len(parts) < 2:
                continue
            sym, t = parts[0], parts[1]
            if t == "U":
                undefined[rel].add(sym)
            elif t in "TDBR":
                defined.setdefault(sym, set()).add(rel)
    problems = []
    graph = {}
    uses = 0
    for rel, syms in undefined.items():
        layer = layer_of(rel)
        graph.setdefault(layer, set())
        for s in syms:
            for d in defined.get(s, ()):
                tl = layer_of(d)
                if tl == layer:
                    continue
                # Two executables' objects define main(); only library code counts.
                uses += 1
                graph[layer].add(tl)
                bad = FORBIDDEN_SYMBOLS.get(layer)
                if bad and bad.match(s):
                    problems.append("%s calls %s of %s: the %s layer goes through the lease engine"
                                    % (rel, s, d, layer))
                elif tl not in ALLOWED.get(layer, []):
                    problems.append("%s uses %s of %s (the %s layer may not use the %s layer)"
                                    % (rel, s, d, layer, tl))
    cycle = find_cycle(graph)
    if cycle:
        problems.append("circle between layers: " + " -> ".join(cycle))
    return problems, "%d uses across layers between %d object files" % (uses, len(objs))


PLANTS = [
    ("common -> broker", "common/util.c", '#include "pg.h"\n'),
    ("common -> agent", "common/log.c", '#include "spool.h"\n'),
    ("common -> libuv", "common/text_out.c", "#include <uv.h>\n"),
    ("http -> store", "broker/http/http.c", '#include "store.h"\n'),
    ("http -> lease", "broker/http/http.c", '#include "lease.h"\n'),
    ("lease -> http", "broker/lease/lease.c", '#include "http.h"\n'),
    ("lease -> api", "broker/lease/notify.c", '#include "api.h"\n'),
    ("store -> http", "broker/store/pg.c", '#include "http.h"\n'),
    ("store -> api", "broker/store/events.c", '#include "api_int.h"\n'),
    ("agreement -> libpq", "common/agreement/agreement.c", "#include <libpq-fe.h>\n"),
    ("agreement -> hiredis", "common/agreement/agreement.c", "#include <hiredis/hiredis.h>\n"),
    ("agent -> broker", "worker-agent/exec.c", '#include "broker.h"\n'),
    ("metrics -> store", "broker/metrics/metrics.c", '#include "events.h"\n'),
    ("webhook -> lease", "broker/webhook/webhook.c", '#include "lease.h"\n'),
    ("webhook -> http", "broker/webhook/webhook_crypto.c", '#include "http.h"\n'),
    ("SQL outside the store", "broker/api/api_ops.c",
     'static const char *planted = "SELECT id FROM tasks WHERE project_id = $1";\n'),
    ("include circle", "common/log.h", '#include "text_out.h"\n'),
]


def selftest(root):
    problems, _ = check_sources(root)
    if problems:
        print("the tree itself fails the check:\n  " + "\n  ".join(problems))
        return 1
    failed = 0
    for name, path, line in PLANTS:
        tmp = tempfile.mkdtemp(prefix="layering.")
        try:
            for top in SOURCE_DIRS:
                shutil.copytree(os.path.join(root, top), os.path.join(tmp, top))
            p = os.path.join(tmp, path)
            text = open(p).read()
            if name == "include circle":
                # text_out.h includes util.h; util.h including log.h and
                # log.h including text_out.h closes a circle.
                u = os.path.join(tmp, "common/util.h")
                ut = open(u).read()
                open(u, "w").write(ut.replace("#include <stdint.h>\n",
                                              '#include <stdint.h>\n#include "log.h"\n', 1))
            # After the first include, or at the top.
            m = re.search(r"^#include[^\n]*\n", text, re.M)
            at = m.end() if m else 0
            open(p, "w").write(text[:at] + line + text[at:])
            found, _ = check_sources(tmp)
            if found:
                print("caught  %-24s %s" % (name, found[0]))
            else:
                print("MISSED  %-24s (planted in %s)" % (name, path))
                failed += 1
        finally:
            shutil.rmtree(tmp)
    print("%d of %d planted violations caught" % (len(PLANTS) - failed, len(PLANTS)))
    return 1 if failed else 0


def main(argv):
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    mode = argv[1]
    if mode == "sources":
        problems, summary = check_sources(argv[2] if len(argv) > 2 else here)
    elif mode == "objects" and len(argv) > 2:
        problems, summary = check_objects(argv[2])
    elif mode == "selftest":
        return selftest(argv[2] if len(argv) > 2 else here)
    else:
        print("layering.py: unknown mode %r (sources, objects BUILD, selftest); see --help"
              % " ".join(argv[1:]), file=sys.stderr)
        return 2
    for p in problems:
        print("layering: " + p)
    if problems:
        print("layering: %d problem(s)" % len(problems))
        return 1
    print("layering: %s, no forbidden use, no circle" % summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""spool_file.py - the agent's spool format (worker-agent/spool.h) read and
written by an encoder of its own (zlib's CRC-32), so a test can make spools
the agent did not write: of another deployment, of an older format.

usage: spool_file.py read SPOOL    prints the pending results, one JSON line
                                   each: {"id": N, "result": {...}}
       spool_file.py write SPOOL   writes such lines (stdin) as a new spool
"""
import json, os, struct, sys, zlib

MAGIC = b"QRSPOOL1"


def read(path):
    data = open(path, "rb").read()
    assert data[:8] == MAGIC, "not a spool"
    off, pending = 8, {}
    while off + 17 <= len(data):
        length, crc = struct.unpack_from("<II", data, off)
        kind, rid = data[off + 8:off + 9], struct.unpack_from("<Q", data, off + 9)[0]
        payload = data[off + 17:off + 17 + length]
        assert zlib.crc32(data[off + 8:off + 17] + payload) == crc, "checksum mismatch"
        off += 17 + length
        if kind == b"R":
            pending[rid] = json.loads(payload)
        else:
            pending.pop(rid, None)
    return pending


def write(path, records):
    out = MAGIC
    for rid, rec in records:
        p = json.dumps(rec).encode()
        body = b"R" + struct.pack("<Q", rid) + p
        out += struct.pack("<II", len(p), zlib.crc32(body)) + body
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(out)


if sys.argv[1] == "read":
    for rid, rec in sorted(read(sys.argv[2]).items()):
        print(json.dumps({"id": rid, "result": rec}))
else:
    rows = [json.loads(l) for l in sys.stdin if l.strip()]
    write(sys.argv[2], [(r["id"], r["result"]) for r in rows])

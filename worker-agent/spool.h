/*
 * spool.h - the agent's durable outbox: every result is appended to a local
 * file and flushed to disk before it is sent, and leaves the file only once
 * the broker has acknowledged it. A power loss at any moment loses nothing
 * that qr_spool_sync returned for.
 *
 * File format (all integers little-endian):
 *
 *   header   8 bytes "QRSPOOL1"
 *   record   u32 len | u32 crc | u8 type | u64 id | len bytes of payload
 *
 * crc is the CRC-32 (IEEE, as zlib's crc32) of type, id and payload. type is
 * 'R' (a result; the payload is opaque to the spool, the agent stores JSON)
 * or 'A' (the result with this id was acknowledged; no payload). The file is
 * only ever appended to, except by compaction: when nothing is pending it is
 * truncated back to its header, and when acknowledged records dominate it is
 * rewritten (to a temporary file, fsync, rename, fsync of the directory) with
 * only the pending results.
 *
 * Reading stops at the first record that is incomplete, longer than
 * QR_SPOOL_MAX_PAYLOAD, of an unknown type, or whose CRC does not match: a
 * torn tail. Everything before it is kept. Opened for writing, the spool
 * copies the torn bytes to "<path>.torn-<epoch ms>" for inspection, truncates
 * the file at the last good record, and reports the fact in torn_offset,
 * torn_bytes and torn_reason; opened read-only it only reports.
 *
 * Acknowledgement records are not fsynced: one lost to a power cut only
 * makes the agent resend that result with its idempotency key, which the
 * broker answers with the stored annotation, writing nothing twice.
 *
 * A writable spool holds an exclusive flock on "<path>.lock" so two agents
 * never share one spool. A spool is not thread-safe: callers serialise.
 */
#ifndef QR_SPOOL_H
#define QR_SPOOL_H

#include <stddef.h>
#include <stdint.h>

/* Largest payload of one record (bytes); a longer length field is corruption. */
#define QR_SPOOL_MAX_PAYLOAD (1u << 20)
/* Bytes of the file header and of a record's fixed part. */
#define QR_SPOOL_HEADER_SIZE 8
#define QR_SPOOL_RECORD_HEAD 17

/* Flags for qr_spool_open. */
#define QR_SPOOL_READONLY 1 /* only read: no lock, no repair, no writes */

/* A result still waiting for the broker's acknowledgement. */
typedef struct qr_spool_record_s {
    uint64_t id;    /* assigned by qr_spool_append, increasing */
    char *payload;  /* owned by the spool; NUL-terminated (not counted in len) */
    size_t len;     /* payload bytes */
    int64_t offset; /* where the record starts in the file (bytes) */
} qr_spool_record_t;

typedef struct qr_spool_s {
    char *path;                 /* owned */
    int fd;                     /* the spool file, -1 when closed */
    int lock_fd;                /* "<path>.lock", -1 when read-only */
    int readonly;               /* opened with QR_SPOOL_READONLY */
    uint64_t next_id;           /* id the next append gets */
    qr_spool_record_t *pending; /* in id order; owned */
    size_t npending;            /* records in pending[] */
    size_t cap;                 /* slots allocated in pending[] */
    int64_t size;               /* bytes of valid data in the file */
    size_t acked;               /* ack records in the file since the last compaction */
    int unsynced;               /* appended records not yet fsynced */
    int64_t torn_offset;        /* where a torn tail began at open, or -1 */
    int64_t torn_bytes;         /* its length (bytes) */
    char torn_reason[128];      /* what was wrong with it, e.g. "checksum mismatch" */
    char *torn_copy;            /* owned; file the torn bytes were saved to, or NULL */
    char errstr[512];           /* one-line reason of the last failure */
} qr_spool_t;

/*
 * Opens (creating, mode 0600, if missing unless read-only) the spool at path
 * and loads its pending results. The parent directory must exist. A torn
 * tail is repaired as described above and is not an error. Returns 0, or a
 * negative errno or QR_E* code with sp->errstr set (then sp needs no close).
 * Refuses with -EWOULDBLOCK when another process holds the spool.
 */
int qr_spool_open(qr_spool_t *sp, const char *path, int flags) __attribute__((warn_unused_result));

/* Closes the file and frees everything; sp may be opened again. */
void qr_spool_close(qr_spool_t *sp);

/*
 * Appends a result (payload of len bytes, at most QR_SPOOL_MAX_PAYLOAD) and
 * stores its id in *id. It is pending at once but durable only after
 * qr_spool_sync: append several, then sync once. On a failed write the file
 * is cut back to its previous end. Returns 0 or a negative code.
 */
int qr_spool_append(qr_spool_t *sp, const void *payload, size_t len, uint64_t *id)
    __attribute__((warn_unused_result));

/* Makes every appended record durable (fdatasync). Returns 0 or -errno. */
int qr_spool_sync(qr_spool_t *sp) __attribute__((warn_unused_result));

/* qr_spool_append then qr_spool_sync. */
int qr_spool_put(qr_spool_t *sp, const void *payload, size_t len, uint64_t *id)
    __attribute__((warn_unused_result));

/*
 * Marks result id acknowledged: appends an ack record, drops it from the
 * pending list, and compacts the file when worthwhile. An unknown id is
 * ignored (returns 0). Returns 0 or a negative code (the result then stays
 * pending in memory too, and will be resent: harmless).
 */
int qr_spool_ack(qr_spool_t *sp, uint64_t id) __attribute__((warn_unused_result));

/* The pending result with this id, or NULL. Valid until the next call that
 * changes the spool. */
const qr_spool_record_t *qr_spool_find(const qr_spool_t *sp, uint64_t id);

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32): start with crc = 0. */
uint32_t qr_spool_crc32(uint32_t crc, const void *p, size_t n);

#endif

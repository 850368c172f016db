/*
 * spool.c - the agent's append-only, checksummed outbox (see spool.h for the
 * file format and the durability contract).
 *
 * The whole file is read once at open; afterwards the pending results live
 * in memory and the file is only appended to (or compacted), so a spool
 * costs one write and, per batch, one fdatasync per result.
 */
#include "spool.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char magic[QR_SPOOL_HEADER_SIZE] = {'Q', 'R', 'S', 'P', 'O', 'O', 'L', '1'};

/* Compaction rewrites the file once this many acks are in it and they
 * outnumber the pending results this many times. */
#define COMPACT_MIN_ACKS 1024
#define COMPACT_RATIO    4

uint32_t qr_spool_crc32(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    crc = ~crc;
    while (n--) {
        crc ^= *b++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int set_err(qr_spool_t *sp, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats sp->errstr and returns code. */
static int set_err(qr_spool_t *sp, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sp->errstr, sizeof sp->errstr, fmt, ap);
    va_end(ap);
    return code;
}

/* Writes all n bytes at the current offset, retrying on EINTR and short
 * writes. Returns 0 or -errno. */
static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsyncs the directory holding path, so a created or renamed entry survives
 * a power loss. Returns 0 or -errno. */
static int sync_dir(const char *path)
{
    char *copy = qr_xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    free(copy);
    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0 && errno != EINVAL)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* Reads the whole file into *out (NUL-terminated). Returns 0 or -errno. */
static int read_file(int fd, qr_buf_t *out)
{
    char chunk[65536];
    if (lseek(fd, 0, SEEK_SET) < 0)
        return -errno;
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            return 0;
        qr_buf_append(out, chunk, (size_t)r);
    }
}

static void push_pending(qr_spool_t *sp, uint64_t id, const void *payload, size_t len,
                         int64_t offset)
{
    if (sp->npending == sp->cap) {
        sp->cap = sp->cap ? sp->cap * 2 : 16;
        sp->pending = qr_xrealloc(sp->pending, sp->cap * sizeof *sp->pending);
    }
    qr_spool_record_t *r = &sp->pending[sp->npending++];
    r->id = id;
    r->len = len;
    r->offset = offset;
    r->payload = qr_xmalloc(len + 1);
    memcpy(r->payload, payload, len);
    r->payload[len] = '\0';
}

/* Index of the pending record with this id (binary search: ids increase), or
 * npending when there is none. */
static size_t find_index(const qr_spool_t *sp, uint64_t id)
{
    size_t lo = 0, hi = sp->npending;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sp->pending[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < sp->npending && sp->pending[lo].id == id ? lo : sp->npending;
}

static void drop_pending(qr_spool_t *sp, size_t i)
{
    free(sp->pending[i].payload);
    memmove(&sp->pending[i], &sp->pending[i + 1], (sp->npending - i - 1) * sizeof *sp->pending);
    sp->npending--;
}

const qr_spool_record_t *qr_spool_find(const qr_spool_t *sp, uint64_t id)
{
    size_t i = find_index(sp, id);
    return i < sp->npending ? &sp->pending[i] : NULL;
}

/* Encodes a record's fixed part into head[QR_SPOOL_RECORD_HEAD]. */
static void encode_head(unsigned char *head, char type, uint64_t id, const void *payload,
                        size_t len)
{
    put32(head, (uint32_t)len);
    head[8] = (unsigned char)type;
    put64(head + 9, id);
    uint32_t crc = qr_spool_crc32(0, head + 8, 9);
    crc = qr_spool_crc32(crc, payload, len);
    put32(head + 4, crc);
}

/*
 * Parses the file image in buf: fills the pending list and next_id, and sets
 * *good_end to the end of the last good record. Stops at the first bad
 * record and records why in torn_reason.
 */
static void parse_records(qr_spool_t *sp, const unsigned char *buf, size_t n, size_t *good_end)
{
    size_t off = QR_SPOOL_HEADER_SIZE;
    while (off < n) {
        const unsigned char *h = buf + off;
        if (n - off < QR_SPOOL_RECORD_HEAD) {
            snprintf(sp->torn_reason, sizeof sp->torn_reason, "incomplete record header");
            break;
        }
        uint32_t len = get32(h), crc = get32(h + 4);
        char type = (char)h[8];
        uint64_t id = get64(h + 9);
        if (len > QR_SPOOL_MAX_PAYLOAD) {
            snprintf(sp->torn_reason, sizeof sp->torn_reason, "implausible length %u", len);
            break;
        }
        if (n - off - QR_SPOOL_RECORD_HEAD < len) {
            snprintf(sp->torn_reason, sizeof sp->torn_reason,
                     "incomplete record (%zu of %u payload bytes)", n - off - QR_SPOOL_RECORD_HEAD,
                     len);
            break;
        }
        uint32_t want = qr_spool_crc32(qr_spool_crc32(0, h + 8, 9), h + QR_SPOOL_RECORD_HEAD, len);
        if (want != crc) {
            snprintf(sp->torn_reason, sizeof sp->torn_reason, "checksum mismatch");
            break;
        }
        if (type == 'R') {
            if (sp->npending && id <= sp->pending[sp->npending - 1].id) {
                snprintf(sp->torn_reason, sizeof sp->torn_reason, "result id %llu out of order",
                         (unsigned long long)id);
                break;
            }
            push_pending(sp, id, h + QR_SPOOL_RECORD_HEAD, len, (int64_t)off);
        } else if (type == 'A') {
            size_t i = find_index(sp, id);
            if (i < sp->npending)
                drop_pending(sp, i);
            sp->acked++;
        } else {
            snprintf(sp->torn_reason, sizeof sp->torn_reason, "unknown record type 0x%02x",
                     (unsigned)(unsigned char)type);
            break;
        }
        if (id >= sp->next_id)
            sp->next_id = id + 1;
        off += QR_SPOOL_RECORD_HEAD + len;
    }
    *good_end = off < n ? off : n;
}

/* Copies the torn bytes to "<path>.torn-<ms>" (fsynced) so nothing is thrown
 * away unseen. Returns 0 or a negative code. */
static int save_torn(qr_spool_t *sp, const unsigned char *p, size_t n)
{
    char *copy = qr_xasprintf("%s.torn-%lld", sp->path, (long long)qr_now_ms());
    int fd = open(copy, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc;
    if (fd < 0) {
        rc = set_err(sp, -errno, "cannot save the torn tail of %s to %s: %s", sp->path, copy,
                     strerror(errno));
        free(copy);
        return rc;
    }
    rc = write_all(fd, p, n);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0) {
        set_err(sp, rc, "cannot save the torn tail of %s to %s: %s", sp->path, copy, strerror(-rc));
        free(copy);
        return rc;
    }
    sp->torn_copy = copy;
    return 0;
}

static void init_fields(qr_spool_t *sp)
{
    memset(sp, 0, sizeof *sp);
    sp->fd = -1;
    sp->lock_fd = -1;
    sp->next_id = 1;
    sp->torn_offset = -1;
}

int qr_spool_open(qr_spool_t *sp, const char *path, int flags)
{
    qr_buf_t img;
    int rc, created = 0;
    char errsave[sizeof sp->errstr];

    init_fields(sp);
    qr_buf_init(&img);
    sp->path = qr_xstrdup(path);
    sp->readonly = (flags & QR_SPOOL_READONLY) != 0;

    if (!sp->readonly) {
        char *lock = qr_xasprintf("%s.lock", path);
        sp->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (sp->lock_fd < 0) {
            rc = set_err(sp, -errno, "cannot open %s: %s", lock, strerror(errno));
            free(lock);
            goto fail;
        }
        if (flock(sp->lock_fd, LOCK_EX | LOCK_NB) < 0) {
            int e = errno;
            rc = set_err(sp, -e, "spool %s is in use by another agent (%s)", path,
                         e == EWOULDBLOCK ? "locked" : strerror(e));
            free(lock);
            goto fail;
        }
        free(lock);
        sp->fd = open(path, O_RDWR | O_CLOEXEC, 0600);
        if (sp->fd < 0 && errno == ENOENT) {
            sp->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            created = 1;
        }
    } else {
        sp->fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (sp->fd < 0) {
        rc = set_err(sp, -errno, "cannot open spool %s: %s", path, strerror(errno));
        goto fail;
    }
    if ((rc = read_file(sp->fd, &img)) < 0) {
        set_err(sp, rc, "cannot read spool %s: %s", path, strerror(-rc));
        goto fail;
    }

    /* An empty file, or a header cut short while the file was created. */
    size_t n = img.len;
    const unsigned char *buf = (const unsigned char *)img.data;
    if (n < QR_SPOOL_HEADER_SIZE && (n == 0 || memcmp(buf, magic, n) == 0)) {
        if (sp->readonly) {
            sp->size = 0;
            qr_buf_free(&img);
            return 0;
        }
        if (ftruncate(sp->fd, 0) < 0 || lseek(sp->fd, 0, SEEK_SET) < 0 ||
            (rc = write_all(sp->fd, magic, sizeof magic)) < 0 || fsync(sp->fd) < 0) {
            rc = rc < 0 ? rc : -errno;
            set_err(sp, rc, "cannot initialise spool %s: %s", path, strerror(-rc));
            goto fail;
        }
        if (created && (rc = sync_dir(path)) < 0) {
            set_err(sp, rc, "cannot sync the directory of %s: %s", path, strerror(-rc));
            goto fail;
        }
        sp->size = QR_SPOOL_HEADER_SIZE;
        qr_buf_free(&img);
        return 0;
    }
    if (n < QR_SPOOL_HEADER_SIZE || memcmp(buf, magic, QR_SPOOL_HEADER_SIZE) != 0) {
        rc = set_err(sp, QR_EINVAL, "%s is not a quorum-agent spool (bad header); not touched",
                     path);
        goto fail;
    }

    size_t good_end;
    parse_records(sp, buf, n, &good_end);
    sp->size = (int64_t)good_end;
    if (good_end < n) {
        sp->torn_offset = (int64_t)good_end;
        sp->torn_bytes = (int64_t)(n - good_end);
        if (!sp->readonly) {
            if ((rc = save_torn(sp, buf + good_end, n - good_end)) < 0)
                goto fail;
            if (ftruncate(sp->fd, (off_t)good_end) < 0 || fsync(sp->fd) < 0) {
                rc = set_err(sp, -errno, "cannot cut the torn tail of %s: %s", path,
                             strerror(errno));
                goto fail;
            }
        }
    }
    if (!sp->readonly && lseek(sp->fd, (off_t)sp->size, SEEK_SET) < 0) {
        rc = set_err(sp, -errno, "cannot seek in %s: %s", path, strerror(errno));
        goto fail;
    }
    qr_buf_free(&img);
    return 0;

fail:
    qr_buf_free(&img);
    memcpy(errsave, sp->errstr, sizeof errsave);
    qr_spool_close(sp);
    memcpy(sp->errstr, errsave, sizeof errsave);
    return rc;
}

void qr_spool_close(qr_spool_t *sp)
{
    if (sp->fd >= 0)
        close(sp->fd); /* read-only or already synced: nothing to report */
    if (sp->lock_fd >= 0)
        close(sp->lock_fd); /* releases the flock */
    for (size_t i = 0; i < sp->npending; i++)
        free(sp->pending[i].payload);
    free(sp->pending);
    free(sp->path);
    free(sp->torn_copy);
    init_fields(sp);
}

/* Appends one record of the given type; on failure cuts the file back. */
static int append_record(qr_spool_t *sp, char type, uint64_t id, const void *payload, size_t len)
{
    unsigned char head[QR_SPOOL_RECORD_HEAD];
    qr_buf_t rec;
    int rc;

    if (sp->readonly || sp->fd < 0)
        return set_err(sp, QR_EINVAL, "spool %s is not open for writing",
                       sp->path ? sp->path : "(none)");
    if (len > QR_SPOOL_MAX_PAYLOAD)
        return set_err(sp, QR_ETOOBIG, "result of %zu bytes is over the spool's limit", len);
    encode_head(head, type, id, payload, len);
    /* One write() per record: a crash leaves at most this record torn. */
    qr_buf_init(&rec);
    qr_buf_append(&rec, head, sizeof head);
    qr_buf_append(&rec, payload, len);
    rc = write_all(sp->fd, rec.data, rec.len);
    qr_buf_free(&rec);
    if (rc < 0) {
        set_err(sp, rc, "cannot write to spool %s: %s", sp->path, strerror(-rc));
        if (ftruncate(sp->fd, (off_t)sp->size) < 0 || lseek(sp->fd, (off_t)sp->size, SEEK_SET) < 0)
            set_err(sp, rc, "cannot write to spool %s (%s), nor cut it back: %s", sp->path,
                    strerror(-rc), strerror(errno));
        return rc;
    }
    sp->size += (int64_t)(sizeof head + len);
    return 0;
}

int qr_spool_append(qr_spool_t *sp, const void *payload, size_t len, uint64_t *id)
{
    uint64_t next = sp->next_id;
    int64_t offset = sp->size;
    int rc = append_record(sp, 'R', next, payload, len);
    if (rc < 0)
        return rc;
    sp->next_id++;
    sp->unsynced = 1;
    push_pending(sp, next, payload, len, offset);
    *id = next;
    return 0;
}

int qr_spool_sync(qr_spool_t *sp)
{
    if (!sp->unsynced)
        return 0;
    if (fdatasync(sp->fd) < 0)
        return set_err(sp, -errno, "cannot flush spool %s to disk: %s", sp->path, strerror(errno));
    sp->unsynced = 0;
    return 0;
}

int qr_spool_put(qr_spool_t *sp, const void *payload, size_t len, uint64_t *id)
{
    int rc = qr_spool_append(sp, payload, len, id);
    return rc < 0 ? rc : qr_spool_sync(sp);
}

/* Rewrites the file with only the pending results. Returns 0 or a negative
 * code; on failure the old file stays as it was. */
static int rewrite(qr_spool_t *sp)
{
    char *tmp = qr_xasprintf("%s.tmp", sp->path);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int64_t size = QR_SPOOL_HEADER_SIZE;
    qr_buf_t img;
    int rc;

    if (fd < 0) {
        rc = set_err(sp, -errno, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    qr_buf_init(&img);
    qr_buf_append(&img, magic, sizeof magic);
    for (size_t i = 0; i < sp->npending; i++) {
        unsigned char head[QR_SPOOL_RECORD_HEAD];
        const qr_spool_record_t *r = &sp->pending[i];
        encode_head(head, 'R', r->id, r->payload, r->len);
        qr_buf_append(&img, head, sizeof head);
        qr_buf_append(&img, r->payload, r->len);
    }
    rc = write_all(fd, img.data, img.len);
    if (rc == 0 && fsync(fd) < 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, sp->path) < 0)
        rc = -errno;
    if (rc < 0) {
        set_err(sp, rc, "cannot compact spool %s: %s", sp->path, strerror(-rc));
        close(fd); /* the failure being reported is the one above */
        unlink(tmp);
        free(tmp);
        qr_buf_free(&img);
        return rc;
    }
    /* Offsets now follow the new layout. */
    for (size_t i = 0; i < sp->npending; i++) {
        sp->pending[i].offset = size;
        size += QR_SPOOL_RECORD_HEAD + (int64_t)sp->pending[i].len;
    }
    close(sp->fd); /* its data was fsynced; the file is replaced */
    sp->fd = fd;
    sp->size = (int64_t)img.len;
    sp->acked = 0;
    sp->unsynced = 0;
    free(tmp);
    qr_buf_free(&img);
    /* The new file is in place and in use either way; if the rename is not
     * yet durable, a crash brings back the old file, whose content is a
     * superset (acknowledged results are resent, harmlessly). */
    if ((rc = sync_dir(sp->path)) < 0)
        return set_err(sp, rc, "cannot sync the directory of %s: %s", sp->path, strerror(-rc));
    if (lseek(sp->fd, (off_t)sp->size, SEEK_SET) < 0)
        return set_err(sp, -errno, "cannot seek in %s: %s", sp->path, strerror(errno));
    return 0;
}

int qr_spool_ack(qr_spool_t *sp, uint64_t id)
{
    size_t i = find_index(sp, id);
    int rc;
    if (i >= sp->npending)
        return 0;
    if ((rc = append_record(sp, 'A', id, "", 0)) < 0)
        return rc;
    drop_pending(sp, i);
    sp->acked++;

    if (sp->npending == 0) {
        /* Nothing pending: back to the bare header. Unsynced results cannot
         * exist here (all were acknowledged), so this is safe. */
        if (ftruncate(sp->fd, QR_SPOOL_HEADER_SIZE) < 0 ||
            lseek(sp->fd, QR_SPOOL_HEADER_SIZE, SEEK_SET) < 0)
            return set_err(sp, -errno, "cannot truncate spool %s: %s", sp->path, strerror(errno));
        sp->size = QR_SPOOL_HEADER_SIZE;
        sp->acked = 0;
        sp->unsynced = 0;
        return 0;
    }
    if (sp->acked >= COMPACT_MIN_ACKS && sp->acked > COMPACT_RATIO * sp->npending) {
        /* Make pending appends durable first: the rewrite replaces the file. */
        if ((rc = qr_spool_sync(sp)) < 0)
            return rc;
        return rewrite(sp);
    }
    return 0;
}

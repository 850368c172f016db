/*
 * util.c - allocation, buffers, clocks and hashing shared by every binary.
 */
#include "util.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(size_t n)
{
    fprintf(stderr, "quorum: out of memory allocating %zu bytes\n", n);
    abort();
}

void *qr_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *qr_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *qr_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *qr_xstrdup(const char *s)
{
    return qr_xstrndup(s, strlen(s));
}

char *qr_xstrndup(const char *s, size_t n)
{
    char *p = qr_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *qr_xasprintf(const char *fmt, ...)
{
    /* One formatting pass for the short strings most calls make. */
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        oom(0);
    char *out = qr_xmalloc((size_t)n + 1);
    if ((size_t)n < sizeof small) {
        memcpy(out, small, (size_t)n + 1);
        return out;
    }
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* v in decimal, NUL-terminated, ending at end[-1]: returns its start. */
static char *i64_digits(int64_t v, char *end)
{
    char *p = end;
    *--p = '\0';
    /* Through the unsigned magnitude: -INT64_MIN does not fit an int64_t. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return p;
}

char *qr_xi64(int64_t v)
{
    char tmp[24];
    char *p = i64_digits(v, tmp + sizeof tmp);
    size_t n = (size_t)(tmp + sizeof tmp - p);
    char *out = qr_xmalloc(n);
    memcpy(out, p, n);
    return out;
}

void qr_buf_init(qr_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void qr_buf_free(qr_buf_t *b)
{
    free(b->data);
    qr_buf_init(b);
}

void qr_buf_reset(qr_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static void reserve(qr_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = qr_xrealloc(b->data, cap);
    b->cap = cap;
}

void qr_buf_reserve(qr_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    b->data = qr_xrealloc(b->data, need);
    b->cap = need;
}

void qr_buf_append(qr_buf_t *b, const void *p, size_t n)
{
    reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void qr_buf_appends(qr_buf_t *b, const char *s)
{
    qr_buf_append(b, s, strlen(s));
}

void qr_buf_appendf(qr_buf_t *b, const char *fmt, ...)
{
    /* Straight into the room left when it fits (one formatting pass), else
     * grow and format again. */
    reserve(b, 0);
    size_t room = b->cap - b->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->data[b->len] = '\0';
        return;
    }
    if ((size_t)n >= room) {
        reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void qr_buf_append_i64(qr_buf_t *b, int64_t v)
{
    char tmp[24];
    char *p = i64_digits(v, tmp + sizeof tmp);
    qr_buf_append(b, p, (size_t)(tmp + sizeof tmp - 1 - p));
}

char *qr_buf_steal(qr_buf_t *b)
{
    char *d = b->data ? b->data : qr_xstrdup("");
    qr_buf_init(b);
    return d;
}

int64_t qr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t qr_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void qr_sha256_hex(const void *s, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(s, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        fprintf(stderr, "quorum: SHA-256 failed\n");
        abort();
    }
    to_hex(md, 32, out);
}

int qr_random_hex(size_t n, char *out)
{
    unsigned char raw[64];
    if (n > sizeof raw)
        return QR_EINVAL;
    if (RAND_bytes(raw, (int)n) != 1)
        return QR_EIO;
    to_hex(raw, n, out);
    return 0;
}

void qr_thread_background(void)
{
    static _Thread_local int done;
    if (done)
        return;
    done = 1;
    /* Linux: a thread is a process to setpriority. Failure only means the
     * thread keeps the loop's priority. */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
}

void qr_assert_failed(const char *file, int line, const char *func, const char *cond)
{
    fprintf(stderr, "quorum: invariant failed at %s:%d in %s(): %s\n", file, line, func, cond);
    fflush(stderr);
    abort();
}

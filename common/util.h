/*
 * util.h - small helpers every Quorum module uses: allocation that aborts on
 * out-of-memory (for small, program-driven sizes only), a growable byte
 * buffer, a monotonic/wall clock in milliseconds, and hex/SHA-256 helpers.
 *
 * Sizes driven by user input (request bodies, imports) must be checked by the
 * caller against a limit before they reach qr_buf_append.
 */
#ifndef QR_UTIL_H
#define QR_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Our own error codes; libuv/errno codes are negative too, so ours start far below. */
#define QR_EINVAL   (-10001) /* bad input */
#define QR_ENOTFND  (-10002) /* no such thing */
#define QR_ECONFLCT (-10003) /* conflicts with current state */
#define QR_EIO      (-10004) /* a backend (PostgreSQL, Redis) failed */
#define QR_ETOOBIG  (-10005) /* over a configured limit */

/* On a fallible function whose result is easy to drop: the compiler warns
 * (an error under -Werror) when a caller ignores it; a (void) cast does not
 * silence it, so handle or log the failure. */
#ifndef QR_MUST_CHECK
#define QR_MUST_CHECK __attribute__((warn_unused_result))
#endif

/* An invariant that must hold whatever the input: when it does not, the
 * process logs where and what, and aborts (in every build type: a broker
 * that goes on with a broken invariant can lose or duplicate work). Not for
 * input checks, which answer an error instead. */
#define QR_ASSERT(cond) ((cond) ? (void)0 : qr_assert_failed(__FILE__, __LINE__, __func__, #cond))
__attribute__((noreturn, cold)) void qr_assert_failed(const char *file, int line, const char *func,
                                                      const char *cond);

void *qr_xmalloc(size_t n);
void *qr_xcalloc(size_t n, size_t size);
void *qr_xrealloc(void *p, size_t n);
char *qr_xstrdup(const char *s);
char *qr_xstrndup(const char *s, size_t n);
/* printf into a fresh heap string; the caller frees it. */
char *qr_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* v in decimal, in a fresh heap string (what qr_xasprintf("%" PRId64, v)
 * gives, without printf's cost); the caller frees it. */
char *qr_xi64(int64_t v);

/* Lowers the calling thread's priority (nice 10), once per thread: for
 * libuv's thread-pool work (parsing large bodies, agreement reports), so
 * that on a machine with few cores it yields to the event loop's thread,
 * whose latency every client feels. */
void qr_thread_background(void);

/* A growable byte buffer; data is always NUL-terminated (not counted in len). */
typedef struct qr_buf_s {
    char *data;
    size_t len;
    size_t cap;
} qr_buf_t;

void qr_buf_init(qr_buf_t *b);
void qr_buf_free(qr_buf_t *b);
void qr_buf_reset(qr_buf_t *b);
void qr_buf_append(qr_buf_t *b, const void *p, size_t n);
/* Makes room for exactly extra more bytes (and the NUL) at once, for a
 * size known in advance: appending grows by doubling instead. */
void qr_buf_reserve(qr_buf_t *b, size_t extra);
void qr_buf_appends(qr_buf_t *b, const char *s);
void qr_buf_appendf(qr_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends v in decimal (as "%" PRId64 would, without printf's cost: the
 * group commit's parameter arrays are thousands of numbers a second). */
void qr_buf_append_i64(qr_buf_t *b, int64_t v);
/* Takes ownership of the bytes: returns data and leaves b empty. */
char *qr_buf_steal(qr_buf_t *b);

/* Milliseconds: wall clock since the epoch, and a monotonic clock. */
int64_t qr_now_ms(void);
int64_t qr_mono_ms(void);

/* SHA-256 of s as 64 lowercase hex characters plus NUL into out[65]. */
void qr_sha256_hex(const void *s, size_t n, char out[65]);
/* n random bytes from the OS CSPRNG as 2n hex characters + NUL; 0 or negative. */
int qr_random_hex(size_t n, char *out);

#endif

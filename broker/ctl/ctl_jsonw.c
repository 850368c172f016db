/*
 * ctl_jsonw.c - a JSON document written in pieces, byte for byte as
 * json_dumpf(JSON_INDENT(2)) prints the whole (ctl_jsonw.h): a 64 KiB
 * buffer over a FILE *, the writers of strings and numbers (jansson
 * formats each one), and the dump that splices the callers' arrays in at
 * their slots.
 */
#include "ctl_jsonw.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define NONCE_BYTES 16
#define SLOT_PREFIX "qr-jsonw-"

/* Per-item agreements take few distinct values: each is formatted by
 * jansson once and then served from this cache. */
typedef struct {
    double v;
    int set;
    char s[40];
} real_memo_t;

struct qr_jsonw_s {
    FILE *out;
    char buf[64 * 1024];
    size_t n;             /* bytes in buf */
    int failed;           /* a write failed, or a dump stopped half-way */
    real_memo_t memo[64]; /* by a hash of the double's bits */
    char nonce[2 * NONCE_BYTES + 1];
    int slots; /* slots handed out */
};

qr_jsonw_t *qr_jsonw_new(FILE *out)
{
    qr_jsonw_t *w = qr_xcalloc(1, sizeof(*w));

    if (qr_random_hex(NONCE_BYTES, w->nonce) != 0) {
        free(w);
        return NULL;
    }
    w->out = out;
    return w;
}

static void w_flush(qr_jsonw_t *w)
{
    if (w->n && fwrite(w->buf, 1, w->n, w->out) != w->n)
        w->failed = 1;
    w->n = 0;
}

int qr_jsonw_free(qr_jsonw_t *w)
{
    if (!w)
        return 0;
    w_flush(w);
    int rc = w->failed ? QR_EIO : 0;
    free(w);
    return rc;
}

void qr_jsonw_put(qr_jsonw_t *w, const char *s, size_t n)
{
    if (n > sizeof(w->buf) - w->n) {
        w_flush(w);
        if (n > sizeof(w->buf)) {
            if (fwrite(s, 1, n, w->out) != n)
                w->failed = 1;
            return;
        }
    }
    memcpy(w->buf + w->n, s, n);
    w->n += n;
}

void qr_jsonw_puts(qr_jsonw_t *w, const char *s)
{
    qr_jsonw_put(w, s, strlen(s));
}

void qr_jsonw_newline(qr_jsonw_t *w, int indent)
{
    static const char spaces[] = "                                ";
    const int chunk = (int)sizeof(spaces) - 1;

    qr_jsonw_put(w, "\n", 1);
    for (; indent > 0; indent -= chunk)
        qr_jsonw_put(w, spaces, (size_t)(indent < chunk ? indent : chunk));
}

/* Dumps j (a string or number) through jansson into w. */
static void w_json(qr_jsonw_t *w, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;

    if (!s)
        w->failed = 1;
    else
        qr_jsonw_puts(w, s);
    free(s);
    json_decref(j);
}

void qr_jsonw_string(qr_jsonw_t *w, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') {
            w_json(w, json_stringn_nocheck(s, n));
            return;
        }
    }
    qr_jsonw_put(w, "\"", 1);
    qr_jsonw_put(w, s, n);
    qr_jsonw_put(w, "\"", 1);
}

void qr_jsonw_real(qr_jsonw_t *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    real_memo_t *m = &w->memo[(bits * UINT64_C(0x9e3779b97f4a7c15)) >> 58];
    if (!m->set || memcmp(&m->v, &v, sizeof(v)) != 0) {
        json_t *j = json_real(v);
        size_t n = j ? json_dumpb(j, m->s, sizeof(m->s) - 1, JSON_ENCODE_ANY) : 0;
        json_decref(j);
        if (n == 0 || n >= sizeof(m->s)) {
            w->failed = 1;
            return;
        }
        m->s[n] = '\0';
        m->v = v;
        m->set = 1;
    }
    qr_jsonw_puts(w, m->s);
}

void qr_jsonw_value(qr_jsonw_t *w, const json_t *v, int indent)
{
    char num[32];

    switch (json_typeof(v)) {
    case JSON_STRING:
        qr_jsonw_string(w, json_string_value(v), json_string_length(v));
        return;
    case JSON_REAL:
        qr_jsonw_real(w, json_real_value(v));
        return;
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        qr_jsonw_puts(w, num);
        return;
    case JSON_TRUE:
        qr_jsonw_puts(w, "true");
        return;
    case JSON_FALSE:
        qr_jsonw_puts(w, "false");
        return;
    case JSON_NULL:
        qr_jsonw_puts(w, "null");
        return;
    default:
        break;
    }
    /* An array or object: jansson's lines, each moved indent spaces in (a
     * line break is never inside a string, where it is escaped). */
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_ENCODE_ANY);
    const char *p = s, *nl;
    if (!s) {
        w->failed = 1;
        return;
    }
    for (; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        qr_jsonw_put(w, p, (size_t)(nl - p));
        qr_jsonw_newline(w, indent);
    }
    qr_jsonw_puts(w, p);
    free(s);
}

json_t *qr_jsonw_slot(qr_jsonw_t *w)
{
    char s[64];
    snprintf(s, sizeof(s), SLOT_PREFIX "%s-%d", w->nonce, w->slots++);
    return json_string(s);
}

/* The slot whose placeholder starts at m (its opening quote), or -1; *end:
 * past its closing quote (past the number when there is none). */
static long slot_at(const qr_jsonw_t *w, const char *m, size_t keylen, const char **end)
{
    char *e;
    long k = strtol(m + keylen, &e, 10);
    *end = e;
    if (e == m + keylen || *e != '"' || k < 0 || k >= w->slots)
        return -1;
    *end = e + 1;
    return k;
}

int qr_jsonw_dump(qr_jsonw_t *w, const json_t *doc, qr_jsonw_fill_cb fill, void *data)
{
    char key[sizeof(SLOT_PREFIX) + sizeof(w->nonce) + 2];
    size_t keylen = (size_t)snprintf(key, sizeof(key), "\"" SLOT_PREFIX "%s-", w->nonce);
    char *s = json_dumps(doc, JSON_INDENT(2));
    unsigned char *seen = qr_xcalloc((size_t)w->slots + 1, 1);
    const char *p, *m, *end;
    int rc = 0, found = 0;
    long k;

    if (!s) {
        rc = QR_EIO;
        goto fail;
    }
    /* Every slot once, before anything is written. */
    for (p = s; (m = strstr(p, key)) != NULL; p = end) {
        if ((k = slot_at(w, m, keylen, &end)) < 0 || seen[k]++) {
            rc = QR_EIO;
            goto fail;
        }
        found++;
    }
    if (found != w->slots) {
        rc = QR_EIO;
        goto fail;
    }
    for (p = s; (m = strstr(p, key)) != NULL; p = end) {
        const char *line = m;
        int indent = 0;
        while (line > s && line[-1] != '\n')
            line--;
        while (line[indent] == ' ')
            indent++;
        k = slot_at(w, m, keylen, &end);
        qr_jsonw_put(w, p, (size_t)(m - p));
        if ((rc = fill(w, (int)k, indent, data)) < 0) {
            w->failed = 1;
            goto fail;
        }
    }
    qr_jsonw_puts(w, p);
fail:
    free(seen);
    free(s);
    return rc;
}

/*
 * analytics.c - the throughput and workforce report (analytics.h,
 * docs/THROUGHPUT.md) and the Prometheus text of queue sizes.
 *
 * The report is one SQL statement: the window's lease events of the crew in
 * scope are read once (a CTE over the (project_id, at) index) and every
 * figure is an aggregate over them, over the annotations table (the record
 * of what was completed) and over tasks (the queue). Windows longer than
 * QR_ANALYTICS_EXACT_MAX_MS read the per-minute rollup instead, with the
 * raw events of the two partial edge minutes (SQL_HEAD_ROLLUP). PostgreSQL builds the
 * JSON; this file parses the query string, binds the parameters and hands
 * the result to the caller. The SQL lives in the store
 * (store/sql_analytics.h); all parameters are bound, never pasted.
 */
#include "analytics.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sql_analytics.h"
#include "util.h"

/* --- the query string ---------------------------------------------------------- */

/* Percent-decodes src[0..n) into dst (dst_size bytes, NUL-terminated), '+'
 * as a space. -1 on a bad escape, an embedded NUL or a value too long. */
static int url_decode(const char *src, size_t n, char *dst, size_t dst_size)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)src[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return -1;
            if (!isxdigit((unsigned char)src[i + 1]) || !isxdigit((unsigned char)src[i + 2]))
                return -1;
            char hex[3] = {src[i + 1], src[i + 2], 0};
            c = (int)strtol(hex, NULL, 16);
            i += 2;
            if (c == 0)
                return -1;
        }
        if (o + 1 >= dst_size)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Reads exactly n digits at *p into *v and advances; -1 if they are not. */
static int digits(const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        x = x * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *v = x;
    return 0;
}

/*
 * Parses an ISO 8601 instant: YYYY-MM-DD[(T|space)HH:MM[:SS[.fraction]]]
 * [Z | (+|-|space)HH[:MM]] into epoch ms (UTC when no offset; a space
 * stands for '+' because form decoding turns '+' into a space). 0 or -1.
 */
static int parse_iso(const char *s, int64_t *out)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, off = 0;
    if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' ||
        digits(&p, 2, &d) < 0)
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)))
        return -1;
    if (*p == 'T' || *p == 't' || (*p == ' ' && isdigit((unsigned char)p[1]))) {
        p++;
        if (digits(&p, 2, &h) < 0 || *p++ != ':' || digits(&p, 2, &mi) < 0 || h > 23 || mi > 59)
            return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec) < 0 || sec > 59)
                return -1;
            if (*p == '.' || *p == ',') {
                p++;
                if (!isdigit((unsigned char)*p))
                    return -1;
                for (int scale = 100; isdigit((unsigned char)*p); p++, scale /= 10)
                    ms += (*p - '0') * scale;
            }
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-' || *p == ' ') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (digits(&p, 2, &oh) < 0 || oh > 23)
                return -1;
            if (*p == ':')
                p++;
            if (isdigit((unsigned char)*p) && (digits(&p, 2, &om) < 0 || om > 59))
                return -1;
            off = sign * (oh * 60 + om);
        }
    }
    if (*p)
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off * 60;
    *out = secs * 1000 + ms;
    return 0;
}

/* "15m", "1h", "7d": a positive count of minutes, hours or days, in ms. */
static int parse_relative(const char *s, int64_t *out)
{
    int64_t n = 0;
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        n = n * 10 + (*p - '0');
        if (n > 1000000)
            return -1;
    }
    int64_t unit = *p == 'm' ? 60000 : *p == 'h' ? 3600000 : *p == 'd' ? 86400000 : 0;
    if (!unit || p[1] || n == 0)
        return -1;
    *out = n * unit;
    return 0;
}

/* 1 when s holds no ASCII control character (a name to look up). */
static int no_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

int qr_analytics_parse_query(const char *query, int64_t now_ms, qr_throughput_query_t *out,
                             char *msg, size_t msg_size)
{
    memset(out, 0, sizeof *out);
    snprintf(out->window, sizeof out->window, "1h");
    snprintf(out->by, sizeof out->by, "annotator");
    out->from_ms = now_ms - 3600000;
    out->to_ms = now_ms;
    out->idle_gap_ms = QR_ANALYTICS_IDLE_GAP_MS;
    const char *p = query ? query : "";
    while (*p) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        char key[32], val[256];
        if (len == 0) {
            p++;
            continue;
        }
        if (!eq || url_decode(p, (size_t)(eq - p), key, sizeof key) < 0 ||
            url_decode(eq + 1, len - (size_t)(eq - p) - 1, val, sizeof val) < 0) {
            snprintf(msg, msg_size, "malformed query string near \"%.*s\"",
                     (int)(len > 40 ? 40 : len), p);
            return QR_EINVAL;
        }
        p += len;
        if (*p == '&')
            p++;
        if (!strcmp(key, "window")) {
            const char *dots = strstr(val, "..");
            int64_t span;
            if (dots) {
                char from[128];
                size_t fl = (size_t)(dots - val);
                if (fl >= sizeof from) {
                    snprintf(msg, msg_size, "window: the start is too long");
                    return QR_EINVAL;
                }
                memcpy(from, val, fl);
                from[fl] = '\0';
                if (parse_iso(from, &out->from_ms) < 0 || parse_iso(dots + 2, &out->to_ms) < 0) {
                    snprintf(msg, msg_size,
                             "window must be 15m, 1h, 1d (N followed by m, h or d) or FROM..TO in "
                             "ISO 8601 (2030-01-01T00:00:00Z)");
                    return QR_EINVAL;
                }
                if (out->to_ms <= out->from_ms) {
                    snprintf(msg, msg_size, "window: FROM must be before TO");
                    return QR_EINVAL;
                }
            } else if (parse_relative(val, &span) == 0) {
                out->from_ms = now_ms - span;
                out->to_ms = now_ms;
            } else {
                snprintf(msg, msg_size,
                         "window must be 15m, 1h, 1d (N followed by m, h or d) or FROM..TO in "
                         "ISO 8601 (2030-01-01T00:00:00Z)");
                return QR_EINVAL;
            }
            if (out->to_ms - out->from_ms > QR_ANALYTICS_MAX_WINDOW_MS) {
                snprintf(msg, msg_size, "window: at most 92 days");
                return QR_EINVAL;
            }
            snprintf(out->window, sizeof out->window, "%s", val);
        } else if (!strcmp(key, "by")) {
            if (strcmp(val, "annotator") && strcmp(val, "vendor") && strcmp(val, "hour")) {
                snprintf(msg, msg_size, "by must be annotator, vendor or hour");
                return QR_EINVAL;
            }
            memcpy(out->by, val, strlen(val) + 1); /* one of the three names above */
        } else if (!strcmp(key, "idle_gap_ms")) {
            char *end;
            long long v = strtoll(val, &end, 10);
            if (!isdigit((unsigned char)val[0]) || *end || v < 1000 || v > 86400000) {
                snprintf(msg, msg_size, "idle_gap_ms must be an integer from 1000 to 86400000");
                return QR_EINVAL;
            }
            out->idle_gap_ms = v;
        } else if (!strcmp(key, "exact")) {
            if (strcmp(val, "0") && strcmp(val, "1")) {
                snprintf(msg, msg_size, "exact must be 0 or 1");
                return QR_EINVAL;
            }
            out->exact = val[0] == '1';
        } else if (!strcmp(key, "annotator")) {
            char *end;
            long long id = strtoll(val, &end, 10);
            if (isdigit((unsigned char)val[0]) && !*end && id > 0) {
                out->annotator = id;
            } else if (val[0] && strlen(val) <= 200 && !isdigit((unsigned char)val[0]) &&
                       no_control(val)) {
                /* A user name (or name@organization): the API resolves it. */
                snprintf(out->annotator_name, sizeof out->annotator_name, "%s", val);
            } else {
                snprintf(msg, msg_size, "annotator must be a user id or a user name");
                return QR_EINVAL;
            }
        } else {
            snprintf(msg, msg_size,
                     "unknown parameter \"%.31s\" (window, by, annotator, exact, idle_gap_ms)",
                     key);
            return QR_EINVAL;
        }
    }
    return 0;
}

/* --- the report ------------------------------------------------------------------ */

typedef struct report_s {
    qr_analytics_cb cb;
    void *arg;
    int64_t project;
} report_t;

static void on_report(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    report_t *r = arg;
    qr_analytics_cb cb = r->cb;
    void *cb_arg = r->arg;
    int64_t project = r->project;
    free(r);
    if (!res) {
        qr_warn("throughput report of project %" PRId64 " failed: %s%s%s", project, err ? err : "?",
                sqlstate && sqlstate[0] ? " SQLSTATE " : "", sqlstate ? sqlstate : "");
        cb(QR_REPORT_UNAVAILABLE, NULL, "PostgreSQL is not available right now; retry", cb_arg);
        return;
    }
    if (PQntuples(res) == 0) {
        cb(QR_REPORT_NOT_FOUND, NULL, "no such project", cb_arg);
        return;
    }
    json_error_t jerr;
    json_t *body = json_loads(PQgetvalue(res, 0, 0), 0, &jerr);
    if (!body) {
        qr_warn("throughput report of project %" PRId64 ": bad JSON from PostgreSQL: %s", project,
                jerr.text);
        cb(QR_REPORT_UNAVAILABLE, NULL, "the report could not be built; retry", cb_arg);
        return;
    }
    cb(QR_REPORT_OK, body, NULL, cb_arg);
}

int qr_analytics_throughput(qr_read_t *rd, int64_t project_id, int64_t only_org_id,
                            const qr_throughput_query_t *qp, int64_t now_ms, qr_analytics_cb cb,
                            void *arg)
{
    const qr_throughput_query_t q = *qp;
    if (q.annotator_name[0] && !q.annotator)
        return QR_EINVAL;
    char proj[24], org[24], ann[24], from[24], to[24], now[24], idle[24], fast_n[24], ratio[32],
        eta[24], pace[24];
    snprintf(proj, sizeof proj, "%" PRId64, project_id);
    snprintf(org, sizeof org, "%" PRId64, only_org_id);
    snprintf(ann, sizeof ann, "%" PRId64, q.annotator);
    snprintf(from, sizeof from, "%" PRId64, q.from_ms);
    snprintf(to, sizeof to, "%" PRId64, q.to_ms);
    snprintf(now, sizeof now, "%" PRId64, now_ms);
    snprintf(idle, sizeof idle, "%" PRId64, q.idle_gap_ms);
    snprintf(fast_n, sizeof fast_n, "%d", QR_ANALYTICS_FAST_MIN_N);
    snprintf(ratio, sizeof ratio, "%.17g", QR_ANALYTICS_FAST_RATIO);
    snprintf(eta, sizeof eta, "%d", QR_ANALYTICS_ETA_WINDOW_MS);
    snprintf(pace, sizeof pace, "%d", QR_ANALYTICS_PACE_SPAN_MS);
    /* The source: every raw event; the minute rollup (an idle threshold
     * other than the default, which the hour rows assume); or the hour
     * rollup with minutes and raw events at the edges. */
    int rollup =
        !q.exact && q.idle_gap_ms >= 60000 && q.to_ms - q.from_ms > QR_ANALYTICS_EXACT_MAX_MS;
    const char *source = !rollup                                     ? "events"
                         : q.idle_gap_ms == QR_ANALYTICS_IDLE_GAP_MS ? "hourly"
                                                                     : "rollup";
    const char *params[] = {proj, org,    ann,   from, to,       now,    idle,
                            q.by, fast_n, ratio, eta,  q.window, source, pace};
    report_t *r = qr_xmalloc(sizeof *r);
    r->cb = cb;
    r->arg = arg;
    r->project = project_id;
    /* Unprepared: the best plan depends on the window (see qr_pg_query_unprepared). */
    int rc = qr_read_query(rd, 1, rollup ? SQL_THROUGHPUT_ROLLUP : SQL_THROUGHPUT, 14, params,
                           on_report, r);
    if (rc < 0)
        free(r);
    return rc;
}

/* --- the queue of every project (GET /metrics) ------------------------------------- */

typedef struct queue_req_s {
    qr_analytics_queue_cb cb;
    void *arg;
} queue_req_t;

static void on_queue(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    queue_req_t *q = arg;
    qr_analytics_queue_cb cb = q->cb;
    void *cb_arg = q->arg;
    free(q);
    if (!res) {
        qr_warn("metrics: the queue query failed: %s", err ? err : "?");
        cb(NULL, 0, err ? err : "PostgreSQL failed", cb_arg);
        return;
    }
    int n = PQntuples(res);
    qr_analytics_queue_t *rows = qr_xcalloc(n > 0 ? (size_t)n : 1, sizeof *rows);
    for (int i = 0; i < n; i++) {
        int64_t *f[] = {&rows[i].project,       &rows[i].waiting,   &rows[i].in_progress,
                        &rows[i].complete,      &rows[i].remaining, &rows[i].annotations,
                        &rows[i].auto_accepted, &rows[i].reviewed};
        for (int k = 0; k < 8; k++)
            *f[k] = strtoll(PQgetvalue(res, i, k), NULL, 10);
        rows[i].complete -= rows[i].reviewed;
    }
    cb(rows, n, NULL, cb_arg);
    free(rows);
}

int qr_analytics_queue(qr_pg_t *pg, qr_analytics_queue_cb cb, void *arg)
{
    queue_req_t *q = qr_xmalloc(sizeof *q);
    q->cb = cb;
    q->arg = arg;
    int rc = qr_pg_query(pg, SQL_QUEUE, 0, NULL, on_queue, q);
    if (rc < 0)
        free(q);
    return rc;
}

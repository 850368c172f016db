/*
 * import.c - JSONL import bodies to COPY rows (see import.h).
 */
#include "import.h"
#include "import_int.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Overlap tasks' priority shift with overlap_first: beyond any other
 * priority (ids stay below 2^53). */
#define OVERLAP_FIRST_SHIFT 1e16

void qr_import_copy_escape(qr_buf_t *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '\\':
            qr_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            qr_buf_append(b, "\\n", 2);
            break;
        case '\r':
            qr_buf_append(b, "\\r", 2);
            break;
        case '\t':
            qr_buf_append(b, "\\t", 2);
            break;
        default:
            qr_buf_append(b, s, 1);
        }
    }
}

/* The stratify field's value as text: a string as it is, anything else as
 * compact JSON; NULL when the field is missing. */
static char *stratum_of(json_t *data, const char *field)
{
    json_t *v = field ? json_object_get(data, field) : NULL;
    if (!v)
        return NULL;
    if (json_is_string(v))
        return qr_xstrdup(json_string_value(v));
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* The row's top-level "external_id" into t (taken out of o when o is the
 * data itself); 0 or a message in err. */
static int take_external_id(json_t *o, int is_data, qr_import_task_t *t, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, "external_id");
    if (!v || json_is_null(v))
        goto done;
    if (json_is_integer(v)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        t->external_id = qr_xstrdup(buf);
    } else if (json_is_string(v) && json_string_length(v) > 0 &&
               json_string_length(v) <= QR_IMPORT_MAX_EXTERNAL_ID) {
        t->external_id = qr_xstrdup(json_string_value(v));
    } else {
        snprintf(err, errlen, "\"external_id\" must be an integer or a string of 1 to %d bytes",
                 QR_IMPORT_MAX_EXTERNAL_ID);
        return -1;
    }
done:
    if (is_data)
        json_object_del(o, "external_id");
    return 0;
}

/* Reads one task line into t; 0 or a message in err. */
static int parse_task(json_t *o, const char *stratify_field, qr_import_task_t *t, char *err,
                      size_t errlen)
{
    json_t *data = json_object_get(o, "data");
    if (data && !json_is_object(data)) {
        snprintf(err, errlen, "\"data\" must be a JSON object");
        return -1;
    }
    if (take_external_id(o, !data, t, err, errlen) < 0)
        return -1;
    t->score = NAN;
    if (data) {
        json_t *pred = json_object_get(o, "prediction");
        json_t *preds = json_object_get(o, "predictions");
        json_t *gold = json_object_get(o, "gold");
        if (!pred && json_is_array(preds) && json_array_size(preds) > 0)
            pred = json_array_get(preds, 0); /* Label Studio's format */
        if (pred && !json_is_null(pred)) {
            if (!json_is_object(pred)) {
                snprintf(err, errlen, "\"prediction\" must be a JSON object");
                return -1;
            }
            json_t *score = json_object_get(pred, "score");
            if (score && !json_is_null(score)) {
                if (!json_is_number(score) || !isfinite(json_number_value(score))) {
                    snprintf(err, errlen, "the prediction's \"score\" must be a number");
                    return -1;
                }
                t->score = json_number_value(score);
            }
            t->prediction = json_dumps(pred, JSON_COMPACT);
        }
        if (gold && !json_is_null(gold)) {
            if (!json_is_string(gold) || json_string_length(gold) == 0) {
                snprintf(err, errlen, "\"gold\" must be a non-empty string");
                return -1;
            }
            t->gold = qr_xstrdup(json_string_value(gold));
        }
    }
    json_t *d = data ? data : o;
    t->data = json_dumps(d, JSON_COMPACT);
    t->stratum = stratum_of(d, stratify_field);
    if (!t->data) {
        snprintf(err, errlen, "cannot encode the task");
        return -1;
    }
    return 0;
}

/* Walks one JSON value from p to at most end, outside strings counting
 * containers and separators, and line feeds everywhere. With stop, ends at
 * the first ',', ']' or '}' at depth 0 (the end of an array element); the
 * value is not validated here: jansson does that. Returns where it ended. */
typedef struct scan_s {
    size_t containers, separators;
    int64_t newlines;
} scan_t;

static const char *scan_json(const char *p, const char *end, int stop, scan_t *st)
{
    size_t depth = 0;
    int in_string = 0;
    for (; p < end; p++) {
        char ch = *p;
        if (ch == '\n')
            st->newlines++;
        if (in_string) {
            if (ch == '\\' && p + 1 < end) {
                p++;
                st->newlines += *p == '\n';
            } else if (ch == '"') {
                in_string = 0;
            }
            continue;
        }
        switch (ch) {
        case '"':
            in_string = 1;
            break;
        case '{':
        case '[':
            depth++;
            st->containers++;
            break;
        case '}':
        case ']':
            if (depth == 0 && stop)
                return p;
            if (depth)
                depth--;
            break;
        case ',':
            if (depth == 0 && stop)
                return p;
            st->separators++;
            break;
        case ':':
            st->separators++;
            break;
        default:
            break;
        }
    }
    return p;
}

static size_t cost_of(size_t n, const scan_t *st)
{
    return 3 * n + 256 * st->containers + 160 * st->separators + 512;
}

size_t qr_import_json_cost(const char *p, size_t n)
{
    scan_t st = {0};
    scan_json(p, p + n, 0, &st);
    return cost_of(n, &st);
}

/* Parses one task (n bytes at p) into the sink: 0, QR_EINVAL or QR_ETOOBIG
 * with "<unit> <where>: reason" in err. */
static int parse_one(qr_import_sink_t *s, const char *p, size_t n, size_t transient,
                     const char *stratify_field, int64_t where, char *err, size_t errlen)
{
    int rc = qr_import_sink_admit(s, transient, where, err, errlen);
    if (rc < 0)
        return rc;
    json_error_t e;
    /* jansson refuses "\u0000" unless JSON_ALLOW_NUL is given, which
     * suits jsonb: it cannot hold NUL characters either. */
    json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    if (!o) {
        snprintf(err, errlen, "%s %" PRId64 ": %s", s->unit, where, e.text);
        return QR_EINVAL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(err, errlen, "%s %" PRId64 ": a task must be a JSON object", s->unit, where);
        return QR_EINVAL;
    }
    qr_import_task_t *t = qr_import_sink_add(s, transient, where, err, errlen);
    if (!t) {
        json_decref(o);
        return QR_ETOOBIG;
    }
    char why[256];
    rc = parse_task(o, stratify_field, t, why, sizeof why);
    json_decref(o);
    if (rc < 0) {
        snprintf(err, errlen, "%s %" PRId64 ": %s", s->unit, where, why);
        return QR_EINVAL;
    }
    return qr_import_sink_charge(s, transient, where, err, errlen);
}

static int parse_jsonl(const char *body, size_t len, const char *stratify_field,
                       qr_import_sink_t *s, char *err, size_t errlen)
{
    const char *p = body, *end = body + len;
    int64_t lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        const char *q = p;
        while (q < le && isspace((unsigned char)*q))
            q++;
        if (q < le) {
            size_t n = (size_t)(le - p);
            int rc =
                parse_one(s, p, n, qr_import_json_cost(p, n), stratify_field, lineno, err, errlen);
            if (rc < 0)
                return rc;
        }
        p = nl ? nl + 1 : end;
    }
    if (s->imp->n == 0) {
        snprintf(err, errlen, "the body holds no task");
        return QR_EINVAL;
    }
    return 0;
}

static const char *skip_blanks(const char *p, const char *end, int64_t *line)
{
    for (; p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'); p++)
        *line += *p == '\n';
    return p;
}

/* The array element by element: each is cut out by scan_json and parsed
 * alone, so what is held at a time is one element's tree. */
static int parse_array(const char *body, size_t len, const char *stratify_field,
                       qr_import_sink_t *s, char *err, size_t errlen)
{
    const char *p = body, *end = body + len;
    int64_t line = 1, task = 0;
    p = skip_blanks(p, end, &line);
    if (p == end || *p != '[') {
        snprintf(err, errlen, "the body must be a JSON array of tasks");
        return QR_EINVAL;
    }
    p = skip_blanks(p + 1, end, &line);
    if (p < end && *p == ']') {
        snprintf(err, errlen, "the array holds no task");
        return QR_EINVAL;
    }
    for (;;) {
        task++;
        p = skip_blanks(p, end, &line);
        int64_t first = line;
        scan_t st = {0};
        const char *e = scan_json(p, end, 1, &st);
        line += st.newlines;
        if (p == e) {
            snprintf(err, errlen, "task %" PRId64 " (line %" PRId64 "): %s", task, line,
                     e == end ? "the array is not closed" : "a task is missing here");
            return QR_EINVAL;
        }
        char where[512];
        int rc = parse_one(s, p, (size_t)(e - p), cost_of((size_t)(e - p), &st), stratify_field,
                           task, where, sizeof where);
        if (rc < 0) {
            /* "task N: why" becomes "task N (line L): why". */
            const char *why = strchr(where, ':');
            snprintf(err, errlen, "task %" PRId64 " (line %" PRId64 ")%s", task, first,
                     why ? why : ": invalid");
            return rc;
        }
        p = skip_blanks(e, end, &line);
        if (p == end) {
            snprintf(err, errlen, "line %" PRId64 ": the array is not closed after task %" PRId64,
                     line, task);
            return QR_EINVAL;
        }
        if (*p == ']')
            break;
        if (*p != ',') {
            snprintf(err, errlen, "line %" PRId64 ": expected ',' or ']' after task %" PRId64, line,
                     task);
            return QR_EINVAL;
        }
        p++;
    }
    p = skip_blanks(p + 1, end, &line);
    if (p != end) {
        snprintf(err, errlen, "line %" PRId64 ": text after the array's closing ']'", line);
        return QR_EINVAL;
    }
    return 0;
}

static int by_external_id(const void *a, const void *b)
{
    const qr_import_task_t *x = *(const qr_import_task_t *const *)a;
    const qr_import_task_t *y = *(const qr_import_task_t *const *)b;
    int c = strcmp(x->external_id, y->external_id);
    return c ? c : (x->where > y->where) - (x->where < y->where);
}

int qr_import_check_external_ids(const qr_import_t *imp, const char *unit, char *err, size_t errlen)
{
    size_t n = 0;
    for (int64_t i = 0; i < imp->n; i++)
        n += imp->tasks[i].external_id != NULL;
    if (n < 2)
        return 0;
    const qr_import_task_t **v = qr_xcalloc(n, sizeof *v);
    n = 0;
    for (int64_t i = 0; i < imp->n; i++)
        if (imp->tasks[i].external_id)
            v[n++] = &imp->tasks[i];
    qsort(v, n, sizeof *v, by_external_id);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++) {
        if (strcmp(v[i - 1]->external_id, v[i]->external_id) == 0) {
            snprintf(err, errlen,
                     "%s %" PRId64 ": external_id \"%.200s\" is also on %s %" PRId64
                     "; each task's external_id must be unique",
                     unit, v[i]->where, v[i]->external_id, unit, v[i - 1]->where);
            rc = QR_EINVAL;
        }
    }
    free(v);
    return rc;
}

char *qr_import_external_ids(const qr_import_t *imp)
{
    json_t *a = json_array();
    for (int64_t i = 0; i < imp->n; i++)
        if (imp->tasks[i].external_id)
            json_array_append_new(a, json_string(imp->tasks[i].external_id));
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s ? s : qr_xstrdup("[]");
}

qr_import_format_t qr_import_sniff(const char *body, size_t len)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)body[i]))
        i++;
    return i < len && body[i] == '[' ? QR_IMPORT_JSON_ARRAY : QR_IMPORT_JSONL;
}

int qr_import_parse_bounded(qr_import_format_t format, const char *body, size_t len,
                            const char *stratify_field, const qr_import_limits_t *limits,
                            qr_import_t *imp, char *err, size_t errlen)
{
    qr_import_sink_t s;
    int rc;
    if (format == QR_IMPORT_JSON_ANY)
        format = qr_import_sniff(body, len);
    switch (format) {
    case QR_IMPORT_CSV:
        return qr_import_parse_csv_bounded(body, len, stratify_field, limits, imp, err, errlen);
    case QR_IMPORT_JSON_ARRAY:
        qr_import_sink_init(&s, imp, limits, "task");
        rc = parse_array(body, len, stratify_field, &s, err, errlen);
        break;
    default:
        qr_import_sink_init(&s, imp, limits, "line");
        rc = parse_jsonl(body, len, stratify_field, &s, err, errlen);
        break;
    }
    if (rc == 0)
        rc = qr_import_check_external_ids(imp, s.unit, err, errlen);
    if (rc < 0)
        qr_import_free(imp);
    return rc;
}

int qr_import_parse(const char *body, size_t len, const char *stratify_field, qr_import_t *imp,
                    char *err, size_t errlen)
{
    return qr_import_parse_bounded(QR_IMPORT_JSONL, body, len, stratify_field, NULL, imp, err,
                                   errlen);
}

int qr_import_parse_json_array(const char *body, size_t len, const char *stratify_field,
                               qr_import_t *imp, char *err, size_t errlen)
{
    return qr_import_parse_bounded(QR_IMPORT_JSON_ARRAY, body, len, stratify_field, NULL, imp, err,
                                   errlen);
}

/* splitmix64: small, fast, good enough to draw tasks and orders. */
static uint64_t next_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rand_unit(uint64_t *s)
{
    return (double)(next_rand(s) >> 11) * 0x1.0p-53;
}

static const qr_import_t *sort_imp; /* qsort has no context argument in C11 */

static int by_stratum(const void *a, const void *b)
{
    const char *x = sort_imp->tasks[*(const int64_t *)a].stratum;
    const char *y = sort_imp->tasks[*(const int64_t *)b].stratum;
    int c = strcmp(x ? x : "", y ? y : "");
    if (c)
        return c;
    return (*(const int64_t *)a > *(const int64_t *)b) -
           (*(const int64_t *)a < *(const int64_t *)b);
}

static int64_t prior_count(const qr_strata_t *prior, const char *name)
{
    if (!prior)
        return 0;
    size_t lo = 0, hi = prior->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(prior->names[mid], name);
        if (c == 0)
            return prior->counts[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Stratified priorities: (k + 0.5) / n_s over every task of the stratum. */
static void stratified_priorities(const qr_import_t *imp, const qr_strata_t *prior,
                                  double *priority)
{
    int64_t *order = qr_xcalloc((size_t)imp->n, sizeof *order);
    for (int64_t i = 0; i < imp->n; i++)
        order[i] = i;
    sort_imp = imp;
    qsort(order, (size_t)imp->n, sizeof *order, by_stratum);
    for (int64_t g = 0; g < imp->n;) {
        const char *name = imp->tasks[order[g]].stratum;
        int64_t h = g;
        while (h < imp->n &&
               !strcmp(imp->tasks[order[h]].stratum ? imp->tasks[order[h]].stratum : "",
                       name ? name : ""))
            h++;
        int64_t before = prior_count(prior, name ? name : "");
        double total = (double)(before + (h - g));
        for (int64_t k = g; k < h; k++)
            priority[order[k]] = ((double)(before + (k - g)) + 0.5) / total;
        g = h;
    }
    free(order);
}

void qr_import_rows(const qr_import_t *imp, const int64_t *ids, const qr_import_policy_t *pol,
                    const qr_strata_t *prior, uint64_t seed, qr_buf_t *out)
{
    int64_t n = imp->n;
    double *priority = qr_xcalloc((size_t)n, sizeof *priority);
    char *overlap = qr_xcalloc((size_t)n, 1);
    uint64_t rng = seed;

    /* Exactly round(fraction * n) tasks of the batch, drawn uniformly
     * (a partial Fisher-Yates shuffle over the indices). */
    int64_t k = (int64_t)llround(pol->overlap_fraction * (double)n);
    if (pol->overlap_annotations == pol->annotations_per_task)
        k = 0;
    if (k > 0) {
        int64_t *idx = qr_xcalloc((size_t)n, sizeof *idx);
        for (int64_t i = 0; i < n; i++)
            idx[i] = i;
        for (int64_t i = 0; i < k; i++) {
            int64_t j = i + (int64_t)(next_rand(&rng) % (uint64_t)(n - i));
            int64_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
            overlap[idx[i]] = 1;
        }
        free(idx);
    }

    const char *s = pol->sampling ? pol->sampling : "sequential";
    if (!strcmp(s, "stratified")) {
        stratified_priorities(imp, prior, priority);
    } else {
        for (int64_t i = 0; i < n; i++) {
            if (!strcmp(s, "random"))
                priority[i] = rand_unit(&rng);
            else if (!strcmp(s, "uncertainty"))
                priority[i] = isnan(imp->tasks[i].score) ? -1.0 : imp->tasks[i].score;
            else
                priority[i] = (double)ids[i];
        }
    }

    for (int64_t i = 0; i < n; i++) {
        const qr_import_task_t *t = &imp->tasks[i];
        double pr = priority[i] - (pol->overlap_first && overlap[i] ? OVERLAP_FIRST_SHIFT : 0);
        qr_buf_appendf(out, "%" PRId64 "\t%" PRId64 "\t", ids[i], pol->project_id);
        qr_import_copy_escape(out, t->data);
        qr_buf_appendf(out, "\t%d\t%.17g\t%s\t",
                       overlap[i] ? pol->overlap_annotations : pol->annotations_per_task, pr,
                       overlap[i] ? "t" : "f");
        if (t->prediction)
            qr_import_copy_escape(out, t->prediction);
        else
            qr_buf_appends(out, "\\N");
        if (isnan(t->score))
            qr_buf_appends(out, "\t\\N\t");
        else
            qr_buf_appendf(out, "\t%.17g\t", t->score);
        if (t->gold)
            qr_import_copy_escape(out, t->gold);
        else
            qr_buf_appends(out, "\\N");
        qr_buf_appends(out, "\t");
        if (t->stratum)
            qr_import_copy_escape(out, t->stratum);
        else
            qr_buf_appends(out, "\\N");
        if (pol->import_id)
            qr_buf_appendf(out, "\t%" PRId64 "\t", pol->import_id);
        else
            qr_buf_appends(out, "\t\\N\t");
        if (t->external_id)
            qr_import_copy_escape(out, t->external_id);
        else
            qr_buf_appends(out, "\\N");
        qr_buf_appends(out, "\n");
    }
    free(priority);
    free(overlap);
}

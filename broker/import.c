/*
 * import.c - JSONL import bodies to COPY rows (see import.h).
 */
#include "import.h"

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

void qr_import_free(qr_import_t *imp)
{
    for (int64_t i = 0; i < imp->n; i++) {
        free(imp->tasks[i].data);
        free(imp->tasks[i].prediction);
        free(imp->tasks[i].gold);
        free(imp->tasks[i].stratum);
    }
    free(imp->tasks);
    imp->tasks = NULL;
    imp->n = 0;
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

/* Reads one task line into t; 0 or a message in err. */
static int parse_task(json_t *o, const char *stratify_field, qr_import_task_t *t, char *err,
                      size_t errlen)
{
    json_t *data = json_object_get(o, "data");
    if (data && !json_is_object(data)) {
        snprintf(err, errlen, "\"data\" must be a JSON object");
        return -1;
    }
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

int qr_import_parse(const char *body, size_t len, const char *stratify_field, qr_import_t *imp,
                    char *err, size_t errlen)
{
    const char *p = body, *end = body + len;
    int64_t lineno = 0, cap = 0;
    imp->tasks = NULL;
    imp->n = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        const char *q = p;
        while (q < le && isspace((unsigned char)*q))
            q++;
        if (q == le) {
            p = nl ? nl + 1 : end;
            continue;
        }
        json_error_t e;
        /* jansson refuses "\u0000" unless JSON_ALLOW_NUL is given, which
         * suits jsonb: it cannot hold NUL characters either. */
        json_t *o = json_loadb(p, (size_t)(le - p), JSON_REJECT_DUPLICATES, &e);
        char why[256];
        if (!o) {
            snprintf(err, errlen, "line %" PRId64 ": %s", lineno, e.text);
            goto fail;
        }
        if (!json_is_object(o)) {
            json_decref(o);
            snprintf(err, errlen, "line %" PRId64 ": a task must be a JSON object", lineno);
            goto fail;
        }
        if (imp->n == cap) {
            cap = cap ? 2 * cap : 256;
            imp->tasks = qr_xrealloc(imp->tasks, (size_t)cap * sizeof *imp->tasks);
        }
        qr_import_task_t *t = &imp->tasks[imp->n++];
        memset(t, 0, sizeof *t);
        int rc = parse_task(o, stratify_field, t, why, sizeof why);
        json_decref(o);
        if (rc < 0) {
            snprintf(err, errlen, "line %" PRId64 ": %s", lineno, why);
            goto fail;
        }
        p = nl ? nl + 1 : end;
    }
    if (imp->n == 0) {
        snprintf(err, errlen, "the body holds no task");
        return QR_EINVAL;
    }
    return 0;
fail:
    qr_import_free(imp);
    return QR_EINVAL;
}

int qr_import_parse_json_array(const char *body, size_t len, const char *stratify_field,
                               qr_import_t *imp, char *err, size_t errlen)
{
    imp->tasks = NULL;
    imp->n = 0;
    json_error_t e;
    json_t *a = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (!a) {
        snprintf(err, errlen, "line %d: %s", e.line, e.text);
        return QR_EINVAL;
    }
    size_t n = json_array_size(a);
    if (!json_is_array(a) || n == 0) {
        snprintf(err, errlen,
                 json_is_array(a) ? "the array holds no task"
                                  : "the body must be a JSON array of tasks");
        json_decref(a);
        return QR_EINVAL;
    }
    imp->tasks = qr_xcalloc(n, sizeof *imp->tasks);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(a, i);
        char why[256];
        imp->n++;
        if (!json_is_object(o)) {
            snprintf(err, errlen, "task %zu: a task must be a JSON object", i + 1);
            goto fail;
        }
        if (parse_task(o, stratify_field, &imp->tasks[i], why, sizeof why) < 0) {
            snprintf(err, errlen, "task %zu: %s", i + 1, why);
            goto fail;
        }
    }
    json_decref(a);
    return 0;
fail:
    json_decref(a);
    qr_import_free(imp);
    return QR_EINVAL;
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
        qr_buf_appends(out, "\n");
    }
    free(priority);
    free(overlap);
}

/*
 * api_export.c - GET /v1/projects/{id}/export: a project's annotations, or
 * its consensus per task, as JSON lines, CSV or Label Studio tasks, whole
 * or as the increment after a cursor an earlier export printed.
 *
 * The answer is streamed (chunked transfer): the export takes a snapshot
 * first (its cursor, sent at once in the X-Quorum-Cursor header), then reads
 * pages of rows as of that snapshot (keyset paging, sql_export.h), writing
 * each page before asking for the next, and waiting for the client to read
 * when more than QR_HTTP_STREAM_LOW_WATER bytes are queued. So memory holds
 * one page whatever the size of the project, and a slow client slows only
 * its own export. No transaction stays open between pages: each page is
 * one statement on whatever connection of the pool is free.
 *
 * A failure after the head was sent cannot change the status: the
 * connection is closed without the last chunk, so the client sees a
 * truncated transfer, never a short export that looks whole.
 */
#include "api_int.h"

#include <math.h>

#include "agreement_fields.h"
#include "ds_fit.h"
#include "ls_result.h"

/* Rows per page. A Label Studio task carries its data and annotations:
 * fewer of them per page. */
#define PAGE_ROWS    1000
#define PAGE_LS_ROWS 200

/* The longest cursor accepted: a snapshot lists the transactions in
 * progress when it was taken, some 20 bytes each. */
#define CURSOR_MAX 8192

enum ex_format { EX_JSONL, EX_CSV, EX_LS };
enum ex_kind { EX_ANNOTATIONS, EX_CONSENSUS };
enum ex_phase { PH_ANNOTATIONS, PH_UNDOS, PH_TASKS, PH_DONE };
enum ex_wait { W_NONE, W_QUERY, W_DRAIN, W_WORK };

struct export_s {
    int format; /* enum ex_format */
    int kind;   /* enum ex_kind */
    int phase;  /* enum ex_phase: which rows the next page reads */
    int wait;   /* enum ex_wait: what the export waits for */
    int gone;   /* the client went away */
    int rows;   /* rows written so far (for Label Studio's commas) */
    int schema; /* a label schema project: labels are canonical JSON (label_schema.h) */
    qr_label_schema_t *fields; /* its schema, for the consensus per field (owned) */
    json_t *ls_fields;         /* its "fields" JSON, for Label Studio's shapes (owned) */
    char *ls_to_name; /* what choice, rating and text results describe when no imported result
                         names it: the first span or box field's data key, else "text" */
    char *snapshot;   /* the export's snapshot S, the next cursor (owned) */
    char *since;      /* the cursor given, or NULL (owned) */
    char org[24];     /* crew scope: 0, or a vendor's organization */
    char after[24];   /* the page's key: the last id of the page before */
    char page[24];    /* the page size */
    qr_buf_t out;     /* the page being formatted */
    /* method=dawid_skene: the crew's model, fitted off the loop on every
     * judgement as of the export's snapshot before the first row is
     * written (ds_fit.h); owned, else NULL */
    qr_ds_fit_t *ds;
};

void export_free(ctx_t *c)
{
    struct export_s *e = c->exp;
    if (!e)
        return;
    free(e->snapshot);
    free(e->since);
    if (e->fields)
        qr_label_schema_free(e->fields);
    json_decref(e->ls_fields);
    free(e->ls_to_name);
    if (e->ds) {
        qr_ds_fit_free(e->ds);
        free(e->ds);
    }
    qr_buf_free(&e->out);
    free(e);
    c->exp = NULL;
}

/* A cursor is a snapshot as PostgreSQL prints it: "xmin:xmax:xip,xip...".
 * Checked here, so that a bad one gets a clear 422 and not a cast error. */
static int valid_cursor(const char *s)
{
    int colons = 0, digits = 0;
    for (; *s; s++) {
        if (*s >= '0' && *s <= '9') {
            digits++;
        } else if (*s == ':' || *s == ',') {
            if (!digits)
                return 0;
            if (*s == ':' && ++colons > 2)
                return 0;
            if (*s == ',' && colons < 2)
                return 0;
            digits = 0;
        } else {
            return 0;
        }
    }
    return colons == 2 && (digits || s[-1] == ':');
}

static void next_page(ctx_t *c);

/* Ends the stream (the last chunk, or nothing for a client that is gone)
 * and frees c. */
static void finish(ctx_t *c)
{
    if (c->timed)
        qr_metrics_request((qr_metric_request_t)(c->timed - 1), uv_hrtime() - c->start_ns, 200);
    qr_http_stream_end(c->req);
    ctx_free(c);
}

/* A failure after the head: a truncated transfer, and c freed. */
static void fail_stream(ctx_t *c, const char *err)
{
    qr_warn("%s %s: export failed after %d rows: %s", c->req->method, c->req->path, c->exp->rows,
            err ? err : "?");
    qr_http_stream_abort(c->req);
    ctx_free(c);
}

static void on_gone(qr_http_request_t *req, void *arg)
{
    (void)req;
    ctx_t *c = arg;
    c->exp->gone = 1;
    /* Waiting on the client that left: no write callback will come. A
     * query in flight sees gone when it answers. */
    if (c->exp->wait == W_DRAIN)
        finish(c);
}

static void on_drain(qr_http_request_t *req, void *arg)
{
    (void)req;
    ctx_t *c = arg;
    c->exp->wait = W_NONE;
    next_page(c);
}

static json_t *int_or_null(const PGresult *res, int i, int k)
{
    return PQgetisnull(res, i, k)
               ? json_null()
               : json_integer((json_int_t)strtoll(PQgetvalue(res, i, k), NULL, 10));
}

static json_t *str_or_null(const PGresult *res, int i, int k)
{
    return PQgetisnull(res, i, k) ? json_null() : json_string(PQgetvalue(res, i, k));
}

static json_t *real_or_null(const PGresult *res, int i, int k)
{
    return PQgetisnull(res, i, k) ? json_null() : json_real(strtod(PQgetvalue(res, i, k), NULL));
}

/* One JSON value as a line of JSON lines (j taken). */
static void put_line(qr_buf_t *b, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(j);
    if (s)
        qr_buf_appends(b, s);
    qr_buf_append(b, "\n", 1);
    free(s);
}

/* CSV cells: NULL is an empty cell; event, if any, follows them. A schema
 * project's row ends with its labels (the canonical JSON text, column
 * labels_col) and leaves the label column (label_col) empty. */
static void put_cells(qr_buf_t *b, const PGresult *res, int i, const int *cols, size_t n,
                      const char *event, int schema, int label_col)
{
    for (size_t k = 0; k < n; k++) {
        if (k)
            qr_buf_append(b, ",", 1);
        if (cols[k] >= 0 && !PQgetisnull(res, i, cols[k]) && !(schema && cols[k] == label_col))
            qr_csv_cell(b, PQgetvalue(res, i, cols[k]));
    }
    if (event) {
        qr_buf_append(b, ",", 1);
        qr_csv_cell(b, event);
    }
    if (schema) {
        qr_buf_append(b, ",", 1);
        if (!PQgetisnull(res, i, label_col))
            qr_csv_cell(b, PQgetvalue(res, i, label_col));
    }
    qr_buf_appends(b, "\r\n");
}

/* A stored label as the JSON export shows it: label, and for a schema
 * project label null and labels the parsed object (the stored text as a
 * string should it not parse: it always does, the broker wrote it). */
static void set_label(json_t *o, const char *key, struct export_s *e, const PGresult *res, int i,
                      int k)
{
    if (!e->schema) {
        json_object_set_new(o, key, str_or_null(res, i, k));
        return;
    }
    json_t *labels = NULL;
    if (!PQgetisnull(res, i, k)) {
        labels = json_loads(PQgetvalue(res, i, k), 0, NULL);
        if (!labels)
            labels = json_string(PQgetvalue(res, i, k));
    }
    json_object_set_new(o, key, json_null());
    json_object_set_new(o, "labels", labels ? labels : json_null());
}

/* The CSV header of each kind. The annotations' first six columns are
 * those of the export before it had kinds (the item is named task_id now),
 * so that scripts reading columns by position keep working; the undo rows
 * of an increment fill the same columns. */
static const char csv_annotations[] = "task_id,annotator,label,created_at,annotator_id,"
                                      "organization,external_id,lead_time,annotation_id,event\r\n";
static const char csv_consensus[] =
    "task_id,external_id,consensus,support,annotators,gold,data\r\n";
/* A schema project's CSV adds one last column: labels, the canonical JSON
 * text of the value (label and consensus stay empty). */
static const char csv_labels_column[] = ",labels\r\n";

/* Formats a page of QR_SQL_EXPORT_ANNOTATIONS. */
static void put_annotations(struct export_s *e, const PGresult *res)
{
    for (int i = 0; i < PQntuples(res); i++) {
        if (e->format == EX_CSV) {
            static const int cols[] = {1, 3, 4, 6, 7, 8, 2, 5, 0};
            put_cells(&e->out, res, i, cols, sizeof cols / sizeof cols[0], "annotation", e->schema,
                      4);
            continue;
        }
        json_t *o = json_object();
        json_object_set_new(o, "event", json_string("annotation"));
        json_object_set_new(o, "annotation_id", int_or_null(res, i, 0));
        json_object_set_new(o, "task_id", int_or_null(res, i, 1));
        json_object_set_new(o, "external_id", str_or_null(res, i, 2));
        json_object_set_new(o, "annotator", str_or_null(res, i, 10));
        set_label(o, "label", e, res, i, 4);
        json_object_set_new(o, "lead_time", real_or_null(res, i, 5));
        json_object_set_new(o, "created_at", str_or_null(res, i, 6));
        json_object_set_new(o, "annotator_id", int_or_null(res, i, 7));
        json_object_set_new(o, "organization", str_or_null(res, i, 8));
        json_object_set_new(o, "organization_id", int_or_null(res, i, 9));
        json_object_set_new(o, "round", int_or_null(res, i, 11));
        put_line(&e->out, o);
    }
}

/* Formats a page of QR_SQL_EXPORT_UNDOS. */
static void put_undos(struct export_s *e, const PGresult *res)
{
    for (int i = 0; i < PQntuples(res); i++) {
        if (e->format == EX_CSV) {
            /* undone_at as created_at; no lead time */
            static const int cols[] = {2, 4, 5, 6, 7, 8, 3, -1, 1};
            put_cells(&e->out, res, i, cols, sizeof cols / sizeof cols[0], "undo", e->schema, 5);
            continue;
        }
        json_t *o = json_object();
        json_object_set_new(o, "event", json_string("undo"));
        json_object_set_new(o, "annotation_id", int_or_null(res, i, 1));
        json_object_set_new(o, "task_id", int_or_null(res, i, 2));
        json_object_set_new(o, "external_id", str_or_null(res, i, 3));
        json_object_set_new(o, "annotator", str_or_null(res, i, 10));
        set_label(o, "label", e, res, i, 5);
        json_object_set_new(o, "undone_at", str_or_null(res, i, 6));
        json_object_set_new(o, "annotator_id", int_or_null(res, i, 7));
        json_object_set_new(o, "organization", str_or_null(res, i, 8));
        json_object_set_new(o, "organization_id", int_or_null(res, i, 9));
        put_line(&e->out, o);
    }
}

/* Field f's consensus among a task's labels objects into consensus and
 * support (null when there is none). */
static void field_consensus(const qr_label_field_t *f, json_t *all, size_t need, json_t *consensus,
                            json_t *support)
{
    qr_field_type_t type;
    json_t *vals[256];
    size_t n = 0, i;
    json_t *one, *out = NULL;
    double share = 0;
    json_array_foreach(all, i, one)
    {
        json_t *v = json_object_get(one, f->name);
        if (v && !json_is_null(v) && n < sizeof vals / sizeof vals[0])
            vals[n++] = v;
    }
    size_t lens[QR_LABEL_CHOICES_MAX];
    qr_consensus_opts_t opts = {.iou_threshold = 0.5};
    if (f->type == QR_LABEL_RATING) {
        opts.has_grid = 1;
        opts.grid_min = f->min;
        opts.grid_step = f->step;
    }
    if (f->type == QR_LABEL_MULTI_CHOICE) {
        for (int k = 0; k < f->nchoices && k < QR_LABEL_CHOICES_MAX; k++)
            lens[k] = strlen(f->choices[k]);
        opts.choices = (const char *const *)f->choices;
        opts.choice_lens = lens;
        opts.nchoices = (size_t)f->nchoices;
    }
    char err[160];
    if (n >= need && n > 0 && qr_field_type_parse(qr_label_type_name(f->type), &type) == 0 &&
        qr_field_consensus(type, &opts, vals, n, &out, &share, err, sizeof err) == 0 && out) {
        json_object_set_new(consensus, f->name, out);
        json_object_set_new(support, f->name, json_real(round(share * 1e4) / 1e4));
        return;
    }
    json_decref(out);
    json_object_set_new(consensus, f->name, json_null());
    json_object_set_new(support, f->name, json_null());
}

/* Formats a page of QR_SQL_EXPORT_CONSENSUS_FIELDS: each field's consensus
 * (agreement_fields.h) and its support, by field name. */
/* A reviewed task's line (sql/0031_review.sql) says so: reviewed, the
 * reviewer and the decision, when column k (the reviewed value) is set;
 * an unreviewed task's line is as it was. */
static void mark_review(json_t *o, const PGresult *res, int i, int k)
{
    if (PQgetisnull(res, i, k))
        return;
    json_object_set_new(o, "reviewed", json_true());
    json_object_set_new(o, "reviewer", str_or_null(res, i, k + 1));
    json_object_set_new(o, "review_decision", str_or_null(res, i, k + 2));
}

static void put_consensus_fields(struct export_s *e, const PGresult *res)
{
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *all =
            PQgetisnull(res, i, 2) ? json_array() : json_loads(PQgetvalue(res, i, 2), 0, NULL);
        long required = strtol(PQgetvalue(res, i, 3), NULL, 10);
        size_t need = required < 2 ? (size_t)(required > 0 ? required : 1) : 2;
        json_t *consensus = json_object(), *support = json_object();
        int accepted = !strcmp(PQgetvalue(res, i, 7), "t");
        json_t *predicted =
            accepted && !PQgetisnull(res, i, 8) ? json_loads(PQgetvalue(res, i, 8), 0, NULL) : NULL;
        for (int f = 0; f < e->fields->nfields; f++) {
            const char *name = e->fields->fields[f].name;
            json_t *v = json_object_get(predicted, name);
            if (!accepted) {
                field_consensus(&e->fields->fields[f], all, need, consensus, support);
                continue;
            }
            /* Auto-accepted: the prediction's value, backed by its score. */
            json_object_set_new(consensus, name, v ? json_incref(v) : json_null());
            json_object_set_new(support, name,
                                v ? json_real(round(atof(PQgetvalue(res, i, 9)) * 1e4) / 1e4)
                                  : json_null());
        }
        json_decref(predicted);
        json_decref(all);
        json_t *reviewed =
            PQgetisnull(res, i, 10) ? NULL : json_loads(PQgetvalue(res, i, 10), 0, NULL);
        if (reviewed) {
            /* The reviewer's value is the answer, every field of it. */
            json_decref(consensus);
            consensus = reviewed;
            json_object_clear(support);
            for (int f = 0; f < e->fields->nfields; f++)
                json_object_set_new(support, e->fields->fields[f].name, json_null());
        }
        if (e->format == EX_CSV) {
            static const int cols[] = {0, 1, -1, -1, 4, 5, 6};
            char *c = json_dumps(consensus, JSON_COMPACT), *s = json_dumps(support, JSON_COMPACT);
            for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
                if (k)
                    qr_buf_append(&e->out, ",", 1);
                if (k == 2 || k == 3)
                    qr_csv_cell(&e->out, k == 2 ? c : s);
                else if (!PQgetisnull(res, i, cols[k]))
                    qr_csv_cell(&e->out, PQgetvalue(res, i, cols[k]));
            }
            qr_buf_appends(&e->out, ",\r\n"); /* the labels column: none for a consensus */
            free(c);
            free(s);
            json_decref(consensus);
            json_decref(support);
            continue;
        }
        json_t *data = json_loads(PQgetvalue(res, i, 6), JSON_DECODE_ANY, NULL);
        json_t *o = json_object();
        json_object_set_new(o, "task_id", int_or_null(res, i, 0));
        json_object_set_new(o, "external_id", str_or_null(res, i, 1));
        json_object_set_new(o, "consensus", consensus);
        json_object_set_new(o, "support", support);
        json_object_set_new(o, "annotators", int_or_null(res, i, 4));
        json_object_set_new(o, "gold", str_or_null(res, i, 5));
        json_object_set_new(o, "data", data ? data : json_null());
        json_object_set_new(o, "auto_accepted", json_boolean(accepted));
        mark_review(o, res, i, 10);
        json_object_set_new(o, "round", int_or_null(res, i, 13));
        put_line(&e->out, o);
    }
}

/* Row i of QR_SQL_EXPORT_CONSENSUS with the Dawid-Skene consensus: the
 * label of highest posterior and that posterior as its support (an
 * auto-accepted task keeps its prediction; a task nobody labeled has none). */
static void put_consensus_ds(struct export_s *e, const PGresult *res, int i)
{
    const qr_ds_fit_t *d = e->ds;
    int64_t item = qr_ds_fit_item(d, strtoll(PQgetvalue(res, i, 0), NULL, 10));
    int accepted = !strcmp(PQgetvalue(res, i, 7), "t");
    const char *label = NULL;
    char support[32] = "";
    int reviewed = !PQgetisnull(res, i, 8);
    if (reviewed) {
        /* The reviewer's value, not a vote: no support. */
        label = PQgetvalue(res, i, 8);
    } else if (accepted) {
        label = PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2);
        snprintf(support, sizeof support, "%s", PQgetvalue(res, i, 3));
    } else if (item >= 0 && d->fit.label[item] >= 0) {
        label = d->labels[d->fit.label[item]];
        snprintf(support, sizeof support, "%.4f", d->fit.support[item]);
    }
    if (e->format == EX_CSV) {
        static const int cols[] = {0, 1, -1, -1, 4, 5, 6};
        for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
            if (k)
                qr_buf_append(&e->out, ",", 1);
            if (k == 2 && label)
                qr_csv_cell(&e->out, label);
            else if (k == 3 && label && !reviewed)
                qr_csv_cell(&e->out, support);
            else if (cols[k] >= 0 && !PQgetisnull(res, i, cols[k]))
                qr_csv_cell(&e->out, PQgetvalue(res, i, cols[k]));
        }
        qr_buf_appends(&e->out, "\r\n");
        return;
    }
    json_t *data = json_loads(PQgetvalue(res, i, 6), JSON_DECODE_ANY, NULL);
    json_t *o = json_object();
    json_object_set_new(o, "task_id", int_or_null(res, i, 0));
    json_object_set_new(o, "external_id", str_or_null(res, i, 1));
    json_object_set_new(o, "consensus", label ? json_string(label) : json_null());
    json_object_set_new(o, "support", label && !reviewed ? json_real(atof(support)) : json_null());
    json_object_set_new(o, "annotators", int_or_null(res, i, 4));
    json_object_set_new(o, "gold", str_or_null(res, i, 5));
    json_object_set_new(o, "data", data ? data : json_null());
    json_object_set_new(o, "auto_accepted", json_boolean(accepted));
    mark_review(o, res, i, 8);
    json_object_set_new(o, "round", int_or_null(res, i, 11));
    put_line(&e->out, o);
}

/* Formats a page of QR_SQL_EXPORT_CONSENSUS. */
static void put_consensus(struct export_s *e, const PGresult *res)
{
    if (e->fields) {
        put_consensus_fields(e, res);
        return;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        if (e->ds) {
            put_consensus_ds(e, res, i);
            continue;
        }
        if (e->format == EX_CSV) {
            static const int cols[] = {0, 1, 2, 3, 4, 5, 6};
            put_cells(&e->out, res, i, cols, sizeof cols / sizeof cols[0], NULL, e->schema, 2);
            continue;
        }
        json_t *data = json_loads(PQgetvalue(res, i, 6), JSON_DECODE_ANY, NULL);
        json_t *o = json_object();
        json_object_set_new(o, "task_id", int_or_null(res, i, 0));
        json_object_set_new(o, "external_id", str_or_null(res, i, 1));
        /* A schema project's consensus is, for now, the labels object a
         * unique plurality gave whole (per-field consensus is issue 15's
         * agreement library). */
        set_label(o, "consensus", e, res, i, 2);
        json_object_set_new(o, "support", real_or_null(res, i, 3));
        json_object_set_new(o, "annotators", int_or_null(res, i, 4));
        json_object_set_new(o, "gold", str_or_null(res, i, 5));
        json_object_set_new(o, "data", data ? data : json_null());
        json_object_set_new(o, "auto_accepted", json_boolean(!strcmp(PQgetvalue(res, i, 7), "t")));
        mark_review(o, res, i, 8);
        json_object_set_new(o, "round", int_or_null(res, i, 11));
        put_line(&e->out, o);
    }
}

/* A row of QR_SQL_EXPORT_LS_FIELDS: the task object with each of the
 * broker's annotations' "labels" turned into Label Studio's "result". */
static void put_ls_fields(struct export_s *e, const PGresult *res, int i)
{
    json_t *task = json_loads(PQgetvalue(res, i, 1), 0, NULL);
    const char *to_name = PQgetisnull(res, i, 2) ? e->ls_to_name : PQgetvalue(res, i, 2);
    json_t *data = json_object_get(task, "data");
    size_t k;
    json_t *a;
    json_array_foreach(json_object_get(task, "annotations"), k, a)
    {
        json_t *labels = json_object_get(a, "labels");
        if (!labels)
            continue; /* an imported annotation: its result as it came */
        json_object_set_new(a, "result",
                            qr_ls_labels_to_result(e->ls_fields, labels, data, to_name));
        json_object_del(a, "labels");
    }
    char *text = task ? json_dumps(task, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    /* PostgreSQL wrote the object: it parses, unless memory ran out. */
    qr_buf_appends(&e->out, text ? text : PQgetvalue(res, i, 1));
    free(text);
    json_decref(task);
}

/* Formats a page of QR_SQL_EXPORT_LS: the task objects of one JSON array,
 * one per line. */
static void put_ls(struct export_s *e, const PGresult *res)
{
    for (int i = 0; i < PQntuples(res); i++) {
        qr_buf_appends(&e->out, e->rows + i ? ",\n" : "\n");
        if (e->ls_fields)
            put_ls_fields(e, res, i);
        else
            qr_buf_appends(&e->out, PQgetvalue(res, i, 1));
    }
}

static void on_page(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    (void)sqlstate;
    ctx_t *c = arg;
    struct export_s *e = c->exp;
    e->wait = W_NONE;
    if (e->gone) {
        finish(c);
        return;
    }
    if (!res) {
        fail_stream(c, err);
        return;
    }
    int n = PQntuples(res);
    qr_buf_reset(&e->out);
    switch (e->phase) {
    case PH_ANNOTATIONS:
        put_annotations(e, res);
        break;
    case PH_UNDOS:
        put_undos(e, res);
        break;
    default:
        if (e->format == EX_LS)
            put_ls(e, res);
        else
            put_consensus(e, res);
        break;
    }
    if (n > 0)
        snprintf(e->after, sizeof e->after, "%s", PQgetvalue(res, n - 1, 0));
    e->rows += n;
    if (n < atoi(e->page)) {
        /* The last page of this phase: the undos follow the annotations
         * of an increment. */
        e->phase = e->phase == PH_ANNOTATIONS && e->since ? PH_UNDOS : PH_DONE;
        snprintf(e->after, sizeof e->after, "0");
    }
    if (e->phase == PH_DONE && e->format == EX_LS)
        qr_buf_appends(&e->out, e->rows ? "\n]\n" : "]\n");
    if (e->out.len && qr_http_stream_write(c->req, e->out.data, e->out.len) < 0) {
        /* The connection is gone (on_gone ran and saw us busy). */
        finish(c);
        return;
    }
    if (e->phase == PH_DONE) {
        finish(c);
        return;
    }
    if (qr_http_stream_busy(c->req)) {
        e->wait = W_DRAIN;
        qr_http_stream_on_drain(c->req, on_drain, c);
        return;
    }
    next_page(c);
}

/* Asks for the next page of the current phase. */
static void next_page(ctx_t *c)
{
    struct export_s *e = c->exp;
    char proj[24];
    const char *sql = e->phase == PH_ANNOTATIONS ? QR_SQL_EXPORT_ANNOTATIONS
                      : e->phase == PH_UNDOS     ? QR_SQL_EXPORT_UNDOS
                      : e->ls_fields             ? QR_SQL_EXPORT_LS_FIELDS
                      : e->format == EX_LS       ? QR_SQL_EXPORT_LS
                      : e->fields                ? QR_SQL_EXPORT_CONSENSUS_FIELDS
                                                 : QR_SQL_EXPORT_CONSENSUS;
    const char *params[] = {
        i64(c->project->id, proj), e->snapshot, e->since, e->org, e->after, e->page};
    e->wait = W_QUERY;
    /* Unprepared: the best plan of a full export and of a small increment
     * differ, and a page costs far more than its planning. */
    if (report_query(c, 1, sql, 6, params, on_page) < 0) {
        e->wait = W_NONE;
        fail_stream(c, "pool closing");
    }
}

static void start_stream(ctx_t *c);

/* --- method=dawid_skene ---------------------------------------------------------------------- */

/* The fit is in (or failed); the rows follow. */
static void on_ds_fit(qr_ds_fit_t *f, int status, void *arg)
{
    ctx_t *c = arg;
    c->exp->wait = W_NONE;
    if (status < 0) {
        respond_backend(c, f->failed, f->err);
        return;
    }
    qr_info("project %" PRId64 ": Dawid-Skene over %u tasks, %u annotators, %u labels: %u "
            "iterations%s",
            c->project->id, f->fit.items, f->fit.annotators, f->fit.labels, f->fit.iterations,
            f->fit.converged ? ", converged" : ", at the cap");
    start_stream(c);
}

/* Reads every judgement as of the snapshot, then fits the model. */
static void ds_load(ctx_t *c)
{
    struct export_s *e = c->exp;
    e->wait = W_WORK;
    if (qr_ds_fit_start(e->ds, c->b->loop, c->read.pg, c->project->id, e->snapshot,
                        strtoll(e->org, NULL, 10), on_ds_fit, c) < 0) {
        e->wait = W_NONE;
        respond_backend(c, "PostgreSQL", "pool closing");
    }
}

static void on_begin(const PGresult *res, const char *err, const char *sqlstate, void *arg)
{
    ctx_t *c = arg;
    struct export_s *e = c->exp;
    e->wait = W_NONE;
    /* Class 22 (data exception): a cursor PostgreSQL cannot read as a
     * snapshot (a number out of range, xmin past xmax...). */
    if (!res && !strncmp(sqlstate, "22", 2)) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "since is not a cursor of this broker (give the X-Quorum-Cursor an "
                      "earlier export printed)");
        return;
    }
    if (!res || PQntuples(res) != 1) {
        respond_backend(c, "PostgreSQL", err ? err : "no snapshot");
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 1), "t") != 0 && c->read.from == QR_READ_REPLICA) {
        /* A cursor the primary printed, which the replica has not reached
         * yet: the primary holds it. */
        c->read = (qr_read_t){.pg = c->b->pg, .primary = c->b->pg, .from = QR_READ_PRIMARY};
        const char *params[] = {e->since};
        e->wait = W_QUERY;
        if (report_query(c, 0, QR_SQL_EXPORT_BEGIN, 1, params, on_begin) < 0) {
            e->wait = W_NONE;
            respond_backend(c, "PostgreSQL", "pool closing");
        }
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 1), "t") != 0) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "since is a cursor from after the database's present: not one this "
                      "broker's database printed");
        return;
    }
    e->snapshot = qr_xstrdup(PQgetvalue(res, 0, 0));
    if (e->ds) {
        ds_load(c);
        return;
    }
    start_stream(c);
}

/* Sends the head (200, the cursor) and the format's opening, then asks for
 * the first page. */
static void start_stream(ctx_t *c)
{
    struct export_s *e = c->exp;
    /* Not JSON: where it was read is said in headers, as the JSON reports
     * say it in keys (put_read_from). */
    char from[96] = "";
    if (c->read.from == QR_READ_REPLICA)
        snprintf(from, sizeof from,
                 "X-Quorum-Read-From: replica\r\nX-Quorum-Stale-Seconds-Max: %.3f\r\n",
                 qr_read_stale_s(&c->read));
    else if (c->read.from == QR_READ_PRIMARY)
        snprintf(from, sizeof from, "X-Quorum-Read-From: primary\r\n");
    char *headers =
        qr_xasprintf("X-Quorum-Cursor: %s\r\n%s%s", e->snapshot, from, c->b->deployment_header);
    const char *ctype = e->format == EX_CSV  ? "text/csv; charset=utf-8"
                        : e->format == EX_LS ? "application/json"
                                             : "application/x-ndjson";
    int rc = qr_http_stream_start(c->req, 200, ctype, headers);
    free(headers);
    if (rc < 0 || e->gone) {
        finish(c);
        return;
    }
    qr_http_on_gone(c->req, on_gone, c);
    qr_buf_reset(&e->out);
    if (e->format == EX_CSV) {
        const char *head = e->kind == EX_CONSENSUS ? csv_consensus : csv_annotations;
        qr_buf_append(&e->out, head, strlen(head) - (e->schema ? 2 : 0));
        if (e->schema)
            qr_buf_appends(&e->out, csv_labels_column);
    } else if (e->format == EX_LS)
        qr_buf_appends(&e->out, "[");
    if (qr_http_stream_write(c->req, e->out.data, e->out.len) < 0) {
        finish(c);
        return;
    }
    next_page(c);
}

/* The value of a query parameter that must be one of a list, as its index
 * into *out; 0 when absent. Responds 422 and returns -1 when it is none. */
static int choice_param(ctx_t *c, const char *key, const char *const *names, size_t n, int *out)
{
    char v[32];
    const char *s = query_param(c->req->query, key, v, sizeof v);
    *out = 0;
    if (!s)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(s, names[i])) {
            *out = (int)i;
            return 0;
        }
    }
    qr_buf_t list;
    qr_buf_init(&list);
    for (size_t i = 0; i < n; i++)
        qr_buf_appendf(&list, "%s%s", i ? (i + 1 == n ? " or " : ", ") : "", names[i]);
    respond_error(c, 422, QR_CODE_INVALID, "%s must be %s", key, list.data);
    qr_buf_free(&list);
    return -1;
}

void h_export(ctx_t *c)
{
    static const char *const formats[] = {"jsonl", "csv", "ls"};
    static const char *const kinds[] = {"annotations", "consensus"};
    static const char *const methods[] = {"majority", "dawid_skene"};
    int format, kind, method;
    if (choice_param(c, "format", formats, 3, &format) < 0 ||
        choice_param(c, "kind", kinds, 2, &kind) < 0 ||
        choice_param(c, "method", methods, 2, &method) < 0)
        return;
    if (method == 1 && kind != EX_CONSENSUS) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "method=dawid_skene is how the consensus is taken: it goes with "
                      "kind=consensus");
        return;
    }
    if (method == 1 && !c->project->schema->implied) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "method=dawid_skene takes a project of one choice (labels); this project "
                      "has a label schema: use method=majority (each field's consensus)");
        return;
    }
    char fv[8];
    if (!query_param(c->req->query, "format", fv, sizeof fv))
        format = EX_CSV; /* what the export gave before it had formats */
    if (format == EX_LS && kind == EX_CONSENSUS) {
        respond_error(c, 422, QR_CODE_INVALID,
                      "format=ls exports tasks with their annotations: use kind=annotations "
                      "(or format=jsonl|csv for the consensus)");
        return;
    }
    char *since = qr_xmalloc(CURSOR_MAX + 1);
    if (!query_param(c->req->query, "since", since, CURSOR_MAX + 1)) {
        free(since);
        since = NULL;
    } else if (strlen(since) >= CURSOR_MAX || !valid_cursor(since)) {
        free(since);
        respond_error(c, 422, QR_CODE_INVALID,
                      "since must be a cursor an earlier export printed (its X-Quorum-Cursor, "
                      "e.g. 1042:1050:1044)");
        return;
    }
    struct export_s *e = qr_xmalloc(sizeof *e);
    memset(e, 0, sizeof *e);
    e->format = format;
    e->kind = kind;
    e->ds = method == 1 ? qr_xcalloc(1, sizeof *e->ds) : NULL;
    e->schema = !c->project->schema->implied;
    if (e->schema && kind == EX_CONSENSUS) {
        /* A copy: the project cache may replace its entry while we stream. */
        json_t *sj = qr_label_schema_to_json(c->project->schema);
        qr_label_error_t lerr;
        if (!sj || qr_label_schema_parse(sj, &e->fields, &lerr) < 0)
            e->fields = NULL;
        json_decref(sj);
    }
    if (e->schema && format == EX_LS) {
        /* Copies: the project cache may replace its entry while we stream. */
        json_t *sj = qr_label_schema_to_json(c->project->schema);
        e->ls_fields = json_incref(json_object_get(sj, "fields"));
        const qr_label_schema_t *s = c->project->schema;
        for (int i = 0; i < s->nfields && !e->ls_to_name; i++)
            if (s->fields[i].over)
                e->ls_to_name = qr_xstrdup(s->fields[i].over);
        if (!e->ls_to_name)
            e->ls_to_name = qr_xstrdup("text");
        json_decref(sj);
    }
    e->phase = kind == EX_CONSENSUS || format == EX_LS ? PH_TASKS : PH_ANNOTATIONS;
    e->since = since;
    /* A vendor (another organization than the project's) exports its crew's. */
    i64(c->user.org_id == c->project->org_id ? 0 : c->user.org_id, e->org);
    snprintf(e->after, sizeof e->after, "0");
    snprintf(e->page, sizeof e->page, "%d", format == EX_LS ? PAGE_LS_ROWS : PAGE_ROWS);
    qr_buf_init(&e->out);
    c->exp = e;
    const char *params[] = {since};
    e->wait = W_QUERY;
    /* The snapshot, every page and the fit read the one server chosen
     * here: a snapshot of the primary is not yet whole on a replica. (A
     * page the replica fails is read on the primary, and so are the
     * rest: the primary holds every row a snapshot of its replica sees.) */
    if (report_query(c, 0, QR_SQL_EXPORT_BEGIN, 1, params, on_begin) < 0) {
        e->wait = W_NONE;
        respond_backend(c, "PostgreSQL", "pool closing");
    }
}

/*
 * fuzz_import.c - libFuzzer harness for task imports (broker/import/import.c,
 * import_csv.c): JSONL, a JSON array or CSV (chosen by the first byte) is
 * validated, then qr_import_rows writes the COPY
 * rows under every sampling policy, with and without overlap.
 *
 * Checked beyond the sanitizers: a failed parse leaves the import empty and
 * says why; under tight limits (half the inputs) the parse never counts
 * more than its budget nor keeps more tasks than its cap; a successful one has at least one task,
 * each with its data; and every COPY row is one line of exactly thirteen tab-separated columns
 * (those of QR_SQL_TASKS_COPY) (anything else would let a task's text inject rows or columns into
 * COPY). A quarter of the inputs parse as for a project with a label schema of
 * every field type: then every gold answer and imported annotation's label
 * kept is a labels object's canonical text, which the schema's check gives
 * back unchanged.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "import.h"
#include "label_schema.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static qr_import_schema_t *schema;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    qr_log_init("fuzz_import", QR_LOG_ERROR);
    json_t *j = json_loads(
        "{\"fields\": [{\"name\": \"sentiment\", \"type\": \"choice\", \"choices\": [\"pos\", "
        "\"neg\"]}, {\"name\": \"tags\", \"type\": \"multi_choice\", \"choices\": [\"a\", \"b\"], "
        "\"required\": false}, {\"name\": \"score\", \"type\": \"rating\", \"min\": 1, \"max\": 5, "
        "\"required\": false}, {\"name\": \"ents\", \"type\": \"spans\", \"over\": \"text\", "
        "\"labels\": [\"ORG\"], \"required\": false}, {\"name\": \"objects\", \"type\": \"boxes\", "
        "\"over\": \"image\", \"labels\": [\"car\"], \"required\": false}, {\"name\": \"note\", "
        "\"type\": \"text\", \"required\": false}]}",
        0, NULL);
    qr_label_schema_t *s = NULL;
    qr_label_error_t e;
    if (!j || qr_label_schema_parse(j, &s, &e) < 0)
        abort();
    schema = qr_import_schema_new(s);
    qr_label_schema_free(s);
    json_decref(j);
    return 0;
}

/* A kept label of a schema project: canonical text the check keeps as it
 * is (span ends are not checked again: that needs the task's text). */
static void check_canonical(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    char *again = NULL;
    qr_label_error_t e;
    if (!json_is_object(j) || qr_label_check(schema->schema, j, NULL, &again, &e) < 0 ||
        strcmp(again, text) != 0) {
        fprintf(stderr, "fuzz_import: kept label %s is not canonical\n", text);
        abort();
    }
    free(again);
    json_decref(j);
}

static void check_rows(const qr_buf_t *out, int64_t n)
{
    int64_t rows = 0;
    int tabs = 0;
    for (size_t i = 0; i < out->len; i++) {
        if (out->data[i] == '\t') {
            tabs++;
        } else if (out->data[i] == '\n') {
            if (tabs != 12) {
                fprintf(stderr, "fuzz_import: row %lld has %d columns, not 13\n",
                        (long long)rows + 1, tabs + 1);
                abort();
            }
            rows++;
            tabs = 0;
        } else if (out->data[i] == '\r' || out->data[i] == '\0') {
            fprintf(stderr, "fuzz_import: raw CR or NUL in a COPY row\n");
            abort();
        }
    }
    if (rows != n || (out->len && out->data[out->len - 1] != '\n')) {
        fprintf(stderr, "fuzz_import: %lld rows for %lld tasks\n", (long long)rows, (long long)n);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The stratify field varies with the input, so that inputs without it
     * cover the path where no task has one. */
    const char *field = size && (data[0] & 1) ? "category" : NULL;
    qr_import_t imp;
    char err[256] = "";
    /* The importer the broker would pick: a JSON array, JSON lines (a task
     * line starts with '{' or blanks), else CSV. */
    const char *s = (const char *)data;
    qr_import_format_t fmt =
        size && s[0] == '[' ? QR_IMPORT_JSON_ARRAY
        : size == 0 || s[0] == '{' || s[0] == ' ' || s[0] == '\n' || s[0] == '\r' || s[0] == '\t'
            ? QR_IMPORT_JSONL
            : QR_IMPORT_CSV;
    /* Half the inputs (by their last byte) parse under tight limits, which
     * must hold whatever the input: never more than the budget counted,
     * never more tasks than the cap. */
    qr_import_limits_t tight = {4096, 5};
    int limited = size && (data[size - 1] & 2);
    int with_schema = size && (data[size - 1] & 12) == 4;
    qr_import_opts_t opts = {.stratify_field = field, .schema = schema};
    int rc = with_schema ? qr_import_parse_opts(fmt, s, size, &opts, limited ? &tight : NULL, &imp,
                                                err, sizeof err)
             : limited ? qr_import_parse_bounded(fmt, s, size, field, &tight, &imp, err, sizeof err)
             : fmt == QR_IMPORT_JSON_ARRAY
                 ? qr_import_parse_json_array(s, size, field, &imp, err, sizeof err)
             : fmt == QR_IMPORT_JSONL ? qr_import_parse(s, size, field, &imp, err, sizeof err)
                                      : qr_import_parse_csv(s, size, field, &imp, err, sizeof err);
    if (limited && (imp.peak_bytes > tight.max_bytes || imp.n > tight.max_tasks)) {
        fprintf(stderr, "fuzz_import: %zu bytes and %lld tasks held, over the limits\n",
                imp.peak_bytes, (long long)imp.n);
        abort();
    }
    if (rc != 0) {
        /* QR_IMPORT_EREJECT: a task against a rule that needs no project
         * (an empty gold answer, a score outside [0, 1]). */
        if ((rc != QR_EINVAL && rc != QR_ETOOBIG && rc != QR_IMPORT_EREJECT) || imp.n != 0 ||
            imp.tasks != NULL || err[0] == '\0')
            abort();
        return 0;
    }
    if (imp.n < 1)
        abort();
    int64_t *ids = calloc((size_t)imp.n, sizeof *ids);
    if (!ids)
        abort();
    for (int64_t i = 0; i < imp.n; i++) {
        if (!imp.tasks[i].data)
            abort();
        ids[i] = 1000 + 3 * i;
        if (with_schema && imp.tasks[i].gold)
            check_canonical(imp.tasks[i].gold);
        json_t *anns = with_schema && imp.tasks[i].annotations
                           ? json_loads(imp.tasks[i].annotations, 0, NULL)
                           : NULL;
        size_t k;
        json_t *a;
        json_array_foreach(anns, k, a)
        {
            const char *l = json_string_value(json_object_get(a, "label"));
            if (l)
                check_canonical(l);
        }
        json_decref(anns);
    }

    /* A prior count per stratum, sorted with strcmp as the API reads it. */
    char *names[] = {"", "a", "cat", "dog", "{}"};
    int64_t counts[] = {1, 5, 0, 1000000, 2};
    qr_strata_t prior = {names, counts, sizeof names / sizeof names[0]};

    static const char *const samplings[] = {"sequential", "random", "uncertainty", "stratified",
                                            NULL};
    for (size_t s = 0; s < sizeof samplings / sizeof samplings[0]; s++) {
        qr_import_policy_t pol = {
            .project_id = 7,
            .annotations_per_task = 1,
            .overlap_fraction = s % 2 ? 0.5 : 1.0,
            .overlap_annotations = s == 2 ? 1 : 3,
            .overlap_first = (int)(s % 2),
            .sampling = samplings[s],
            .stratify_field = field,
        };
        qr_buf_t out;
        qr_buf_init(&out);
        qr_import_rows(&imp, ids, &pol, s == 3 ? &prior : NULL, (uint64_t)size * 2654435761u, &out);
        check_rows(&out, imp.n);
        qr_buf_free(&out);
    }
    free(ids);
    qr_import_free(&imp);
    return 0;
}

/*
 * fuzz_agreement_jsonl.c - libFuzzer harness for agreement per field (issue
 * 15, common/agreement/agreement_fields*.c): the JSONL reader over the input
 * through fmemopen, then the report of every field with per-item entries
 * (metrics of every type, consensus, token alpha over the lines' texts).
 *
 * Checked beyond the sanitizers: an error names a line ("line N: ...") and
 * is the negative of that N; the report is a JSON object with one entry per
 * field, each with "type", "counts", "metrics" and "per_item"; every figure
 * under a non-choice field's metrics has a status, and a defined value is a
 * finite number.
 */
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement_fields.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    qr_log_init("fuzz_agreement_jsonl", QR_LOG_ERROR);
    return 0;
}

static void check_figure(const json_t *m)
{
    const char *status = json_string_value(json_object_get(m, "status"));
    if (!status)
        abort();
    if (strcmp(status, "defined") == 0) {
        const json_t *v = json_object_get(m, "value");
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            abort();
    } else if (!json_is_null(json_object_get(m, "value")) ||
               !json_is_string(json_object_get(m, "reason"))) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    qr_fields_t *fs = qr_fields_new();
    char err[512];
    int rc = qr_fields_read_jsonl(f, fs, err, sizeof(err));
    fclose(f);
    if (rc < 0) {
        char want[32];
        snprintf(want, sizeof(want), "line %d: ", -rc);
        if (strncmp(err, want, strlen(want)) != 0)
            abort();
        qr_fields_free(fs);
        return 0;
    }
    if (rc != 0)
        abort();
    json_t *r = qr_fields_json(fs, 1);
    const json_t *fields = json_object_get(r, "fields"), *fo;
    const char *name;
    if (!json_is_object(r) || json_object_size(fields) != qr_fields_count(fs))
        abort();
    json_object_foreach((json_t *)fields, name, fo)
    {
        const char *type = json_string_value(json_object_get(fo, "type"));
        const json_t *metrics = json_object_get(fo, "metrics"), *m;
        const char *key;
        if (!type || !json_is_object(json_object_get(fo, "counts")) || !json_is_object(metrics) ||
            !json_is_array(json_object_get(fo, "per_item")))
            abort();
        if (strcmp(type, "choice") == 0 || strcmp(type, "rating") == 0)
            continue; /* issue 4's coefficients: fuzz_agreement_csv */
        if (json_object_size(metrics) < 2)
            abort();
        json_object_foreach((json_t *)metrics, key, m)
        {
            if (strcmp(key, "per_choice_alpha") == 0) {
                const json_t *c;
                const char *choice;
                json_object_foreach((json_t *)m, choice, c)
                {
                    check_figure(c);
                }
            } else {
                check_figure(m);
            }
        }
    }
    char *text = json_dumps(r, JSON_COMPACT);
    if (!text)
        abort();
    free(text);
    json_decref(r);
    qr_fields_free(fs);
    return 0;
}

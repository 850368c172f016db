/*
 * fuzz_agreement_csv.c - libFuzzer harness for the agreement CSV reader
 * (common/agreement/agreement_csv.c, libcsv underneath) and the report built from
 * what it read (common/agreement*.c): qr_agreement_read_csv over the input
 * through fmemopen, then qr_agreement_json with and without per-item
 * entries, and the per-item iterator of qr_agreement_report.
 *
 * Checked beyond the sanitizers: an error names a line ("line N: ...") and
 * is the negative of that N; the report is a JSON object that encodes; the
 * iterator lists as many items as "per_item" does, with agreements in
 * [0, 1]; the reader's fast path gives what libcsv alone gives (the same
 * result, message and report).
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement.h"
#include "agreement_internal.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    qr_log_init("fuzz_agreement_csv", QR_LOG_ERROR);
    return 0;
}

/* The compact JSON report with per-item entries (caller frees). */
static char *report_text(qr_agreement_t *a)
{
    json_t *full = qr_agreement_json(a, 1);
    char *text = full ? json_dumps(full, JSON_COMPACT) : NULL;
    if (!text)
        abort();
    json_decref(full);
    return text;
}

/* Reads the input again with libcsv alone: the same outcome as the fast
 * path's (rc, err and the set read, a) or abort. */
static void check_reference(const uint8_t *data, size_t size, int rc, const char *err,
                            qr_agreement_t *a)
{
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        abort();
    qr_agreement_t *ref = qr_agreement_new();
    char ref_err[512];
    int ref_rc = qr_agr_read_csv_mode(f, ref, ref_err, sizeof ref_err, 0);
    fclose(f);
    char *x = report_text(a), *y = report_text(ref);
    if (rc != ref_rc || strcmp(err, ref_err) != 0 || strcmp(x, y) != 0) {
        fprintf(stderr, "fuzz_agreement_csv: fast path %d \"%s\", libcsv %d \"%s\"\n", rc, err,
                ref_rc, ref_err);
        abort();
    }
    free(x);
    free(y);
    qr_agreement_free(ref);
}

static void check_report(qr_agreement_t *a)
{
    json_t *full = qr_agreement_json(a, 1);
    if (!json_is_object(full))
        abort();
    char *text = json_dumps(full, JSON_COMPACT);
    if (!text)
        abort();
    free(text);
    size_t listed = json_array_size(json_object_get(full, "per_item"));
    json_decref(full);

    qr_agreement_items_t *it = NULL;
    json_t *report = qr_agreement_report(a, &it);
    if (!json_is_object(report) || !it)
        abort();
    if (qr_agreement_items_count(it) != listed) {
        fprintf(stderr, "fuzz_agreement_csv: iterator has %zu items, per_item %zu\n",
                qr_agreement_items_count(it), listed);
        abort();
    }
    qr_agreement_item_t item;
    size_t seen = 0;
    while (qr_agreement_items_next(it, &item)) {
        seen++;
        if (!item.item || strlen(item.item) != item.item_len || item.judgements == 0)
            abort();
        if (item.has_agreement && !(item.agreement >= 0.0 && item.agreement <= 1.0))
            abort();
        if (item.majority && strlen(item.majority) != item.majority_len)
            abort();
    }
    if (seen != listed)
        abort();
    qr_agreement_items_free(it);
    json_decref(report);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0; /* size 0 on an old libc */
    qr_agreement_t *a = qr_agreement_new();
    char err[512];
    int rc = qr_agreement_read_csv(f, a, err, sizeof err);
    fclose(f);
    if (rc > 0)
        abort();
    if (rc < 0) {
        char want[32];
        snprintf(want, sizeof want, "line %d: ", -rc);
        if (strncmp(err, want, strlen(want)) != 0) {
            fprintf(stderr, "fuzz_agreement_csv: returned %d with \"%s\"\n", rc, err);
            abort();
        }
    } else if (err[0] != '\0') {
        abort();
    }
    check_reference(data, size, rc, err, a);
    /* Rows read before an error are a valid set too: report on them all. */
    check_report(a);
    qr_agreement_free(a);
    return 0;
}

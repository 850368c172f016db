/*
 * ctl_agreement.c - `quorumctl agreement FILE.csv [--json] [--per-item]`:
 * inter-annotator agreement on a CSV of judgements, offline (issue 4).
 *
 * Reading is qr_agreement_read_csv() and the math is qr_agreement_json(), both
 * in common/agreement*.c; this file parses flags and renders the report as
 * plain text drawn from that same JSON, so the two never disagree; the JSON
 * is written by ctl_agreement_json.c.
 * On bad input nothing is printed on stdout: only the error, on stderr.
 */
#include "ctl_agreement.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement.h"
#include "ctl_agreement_ds.h"
#include "ctl_agreement_fields.h"
#include "ctl_agreement_json.h"
#include "cli.h"
#include "protocol.h"
#include "text_out.h"
#include "util.h"

static const char help_text[] =
    "Usage: quorumctl agreement FILE.csv|FILE.jsonl|- [--json] [--per-item]\n"
    "         [--format csv|jsonl] [--schema FILE] [--iou-threshold X]\n"
    "         [--method majority|dawid_skene]\n"
    "\n"
    "Computes inter-annotator agreement on a CSV or JSONL file of judgements,\n"
    "offline. The format is told by the first byte ('{': JSONL) unless --format\n"
    "says it.\n"
    "\n"
    "CSV: one field, named label. The header names the columns item (or\n"
    "task_id), annotator and label (any order; other columns are ignored); RFC\n"
    "4180 quoting, UTF-8 with or without a byte-order mark, LF or CRLF. `-`\n"
    "reads stdin. Labels are strings; when every label is a number the numeric\n"
    "coefficients (weighted kappa, Krippendorff's ordinal, interval and ratio\n"
    "alpha) apply too.\n"
    "\n"
    "JSONL: a judgement a line, {\"item\": ..., \"annotator\": ..., \"field\": \"tags\",\n"
    "\"value\": ...} (item and annotator strings or integers), for any number of\n"
    "fields of the types of a project schema: choice (a string), multi_choice (an\n"
    "array of strings), rating (a number), spans ([{\"start\", \"end\", \"label\"}];\n"
    "an optional \"text\" key on the line gives the item's text, for the token\n"
    "alpha), boxes ([{\"x\", \"y\", \"width\", \"height\", \"label\"}]) and text\n"
    "(a string; needs --schema, else a string is a choice). Without --schema the\n"
    "type of a field comes from its values. Per field: choice and rating get the\n"
    "coefficients below; multi_choice Krippendorff's alpha with the MASI and the\n"
    "Jaccard distance and per choice; spans F1 (exact and overlap) and token\n"
    "alpha; boxes F1 and mean IoU of matches; text exact agreement and mean\n"
    "similarity after normalization (NFC, case fold, whitespace).\n"
    "\n"
    "Prints counts; percent agreement, Cohen's kappa (plain, linear, quadratic),\n"
    "Scott's pi, Fleiss' kappa, Davies-Fleiss kappa, Krippendorff's alpha\n"
    "(nominal, ordinal, interval, ratio) and Gwet's AC1, each with its value or\n"
    "why it is undefined or not applicable; every annotator pair with shared\n"
    "items; each annotator's agreement with the majority of the others; the label\n"
    "distribution.\n"
    "\n"
    "  --json       print the report as JSON (full precision)\n"
    "  --per-item   also list each item's agreement and majority label (per\n"
    "               field: agreement, consensus and its support)\n"
    "  --format F   csv or jsonl, instead of telling by the first byte\n"
    "  --schema FILE  field types of JSONL input: {\"fields\": [...]} as in a\n"
    "               project schema, or {\"schema\": {\"fields\": [...]}}\n"
    "  --iou-threshold X  IoU at which two boxes match (default 0.5)\n"
    "  --method M   the consensus beside the agreement: majority (default: the\n"
    "               report above) or dawid_skene (CSV only), which adds the\n"
    "               Dawid-Skene model of the crew: EM over each annotator's\n"
    "               confusion matrix, started from the majority vote, until the\n"
    "               log-likelihood changes by at most 1e-6 per judgement (or 100\n"
    "               iterations), smoothing 0.01; each annotator's estimated\n"
    "               accuracy and, with --per-item, each item's consensus and\n"
    "               its posterior probability (support)\n"
    "  --project ID the live agreement of a broker project instead (see\n"
    "               `quorumctl agreement --project ID --help`)\n"
    "  --help       show this help\n"
    "\n"
    "Reads:  FILE.csv (or stdin), for example what `quorumctl export` writes:\n"
    "          item,annotator,label\n"
    "          1,alice,positive\n"
    "          1,bob,negative\n"
    "        or FILE.jsonl:\n"
    "          {\"item\": 1, \"annotator\": \"alice\", \"field\": \"tags\", \"value\": [\"a\"]}\n"
    "Writes: stdout: the report as text (one coefficient a line, then the\n"
    "        tables), for example\n"
    "          krippendorff_alpha_nominal    0.7312\n"
    "        with --json one JSON object {\"counts\":{...},\"metrics\":{...},...,\n"
    "        \"fields\":{\"label\":{...}}}; JSONL: a section per field, and in JSON\n"
    "        \"fields\":{\"tags\":{\"type\":...,\"counts\":...,\"metrics\":...}}.\n"
    "        --method dawid_skene: a Dawid-Skene section; in JSON\n"
    "        \"dawid_skene\":{\"iterations\":...,\"converged\":...,\"per_annotator\":\n"
    "        [{\"annotator\":...,\"estimated_accuracy\":...}]} and, in each entry of\n"
    "        \"per_item\", \"consensus\" and \"support\" (the majority's stay under\n"
    "        \"fields\").\n"
    "\n"
    "Examples:\n"
    "  quorumctl agreement judgements.csv --per-item\n"
    "  quorumctl export --project 7 | quorumctl agreement - --json\n"
    "  quorumctl agreement judgements.jsonl --schema schema.json --json\n"
    "  quorumctl agreement judgements.csv --method dawid_skene --per-item\n"
    "\n"
    "Exit codes: 0 success, 1 output error, 2 usage error or bad input (a\n"
    "duplicate (item, annotator), an empty label, invalid UTF-8, a missing\n"
    "column or bad quoting; in JSONL a line that is not JSON, a value of the\n"
    "wrong type or a duplicate (item, annotator, field); the error names the\n"
    "line).\n";

/* How messages start: "quorumctl agreement: ...". */
static const char *const prog = "quorumctl agreement";

/* Columns s takes once escaped for the terminal (UTF-8 code points). */
static int name_width(const char *s)
{
    qr_buf_t b;
    qr_buf_init(&b);
    qr_term_escape(&b, s ? s : "");
    int cols = 0;
    for (size_t i = 0; i < b.len; i++)
        cols += ((unsigned char)b.data[i] & 0xc0) != 0x80;
    qr_buf_free(&b);
    return cols;
}

/* Prints s escaped for the terminal (text_out.h: a name cannot forge rows),
 * padded with spaces to width columns. */
static void put_name(FILE *out, const char *s, int width)
{
    qr_buf_t b;
    qr_buf_init(&b);
    qr_term_escape(&b, s ? s : "");
    fwrite(b.data, 1, b.len, out);
    qr_buf_free(&b);
    for (int cols = name_width(s); cols < width; cols++)
        fputc(' ', out);
}

/* "0.7430", "undefined (reason)" or "n/a (reason)" for a metric object. */
static void put_metric(FILE *out, const json_t *m, int with_reason)
{
    const char *status = json_string_value(json_object_get(m, "status"));
    const char *reason = json_string_value(json_object_get(m, "reason"));

    if (status && strcmp(status, "defined") == 0) {
        fprintf(out, "%.4f", json_real_value(json_object_get(m, "value")));
        return;
    }
    fputs(status && strcmp(status, "undefined") == 0 ? "undefined" : "n/a", out);
    if (with_reason && reason)
        fprintf(out, " (%s)", reason);
}

static json_int_t count_of(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static void items_head(FILE *out, int w)
{
    fprintf(out, "\nPer item (share of agreeing pairs; unique most common label)\n  ");
    put_name(out, "ITEM", w);
    fprintf(out, "  %10s  %9s  %s\n", "judgements", "agreement", "majority");
}

static void item_row(FILE *out, int w, const char *item, size_t judgements, int has_agreement,
                     double agreement, const char *majority)
{
    fputs("  ", out);
    put_name(out, item ? item : "?", w);
    fprintf(out, "  %10zu  ", judgements);
    if (has_agreement)
        fprintf(out, "%9.4f  ", agreement);
    else
        fprintf(out, "%9s  ", "-");
    if (majority)
        put_name(out, majority, 0);
    else
        fputs("(tie)", out);
    fputc('\n', out);
}

static void print_text(FILE *out, const json_t *r, qr_agreement_items_t *items, const char *source)
{
    const json_t *counts = json_object_get(r, "counts");
    const json_t *metrics = json_object_get(r, "metrics");
    const json_t *labels = json_object_get(r, "labels");
    const json_t *pairs = json_object_get(r, "pairwise");
    const json_t *anns = json_object_get(r, "per_annotator");
    const json_t *v;
    const char *key;
    size_t i;
    int w;

    fprintf(out, "Agreement on %s\n", source);
    fprintf(out,
            "  %" JSON_INTEGER_FORMAT " judgements, %" JSON_INTEGER_FORMAT
            " items (%" JSON_INTEGER_FORMAT " with two or more judgements), %" JSON_INTEGER_FORMAT
            " annotators, %zu labels%s\n",
            count_of(counts, "judgements"), count_of(counts, "items"),
            count_of(counts, "pairable_items"), count_of(counts, "annotators"),
            json_object_size(labels),
            json_is_true(json_object_get(r, "labels_numeric")) ? " (numeric)" : "");

    fprintf(out, "\nCoefficients\n");
    json_object_foreach((json_t *)metrics, key, v)
    {
        fprintf(out, "  %-29s ", key);
        put_metric(out, v, 1);
        fputc('\n', out);
    }

    fprintf(out, "\nLabels (judgements)\n");
    w = 5;
    json_object_foreach((json_t *)labels, key, v)
    {
        if (name_width(key) > w)
            w = name_width(key);
    }
    w = w > 40 ? 40 : w;
    json_object_foreach((json_t *)labels, key, v)
    {
        fputs("  ", out);
        put_name(out, key, w);
        fprintf(out, "  %" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
    }

    w = 9;
    json_array_foreach(anns, i, v)
    {
        int n = name_width(json_string_value(json_object_get(v, "annotator")));
        w = n > w ? n : w;
    }
    w = w > 32 ? 32 : w;

    fprintf(out, "\nPairwise (annotator pairs with shared items)\n  ");
    put_name(out, "A", w);
    fputs("  ", out);
    put_name(out, "B", w);
    fprintf(out, "  %8s  %9s  %s\n", "items", "agreement", "cohen_kappa");
    if (json_array_size(pairs) == 0)
        fprintf(out, "  (no two annotators labeled the same item)\n");
    json_array_foreach(pairs, i, v)
    {
        fputs("  ", out);
        put_name(out, json_string_value(json_object_get(v, "a")), w);
        fputs("  ", out);
        put_name(out, json_string_value(json_object_get(v, "b")), w);
        fprintf(out, "  %8" JSON_INTEGER_FORMAT "  %9.4f  ", count_of(v, "items"),
                json_real_value(json_object_get(v, "percent_agreement")));
        put_metric(out, json_object_get(v, "cohen_kappa"), 0);
        fputc('\n', out);
    }

    fprintf(out, "\nPer annotator (agreement with the unique majority of the others)\n  ");
    put_name(out, "ANNOTATOR", w);
    fprintf(out, "  %10s  %9s  %s\n", "judgements", "agreement", "agree/compared");
    json_array_foreach(anns, i, v)
    {
        const json_t *maj = json_object_get(v, "majority_agreement");
        fputs("  ", out);
        put_name(out, json_string_value(json_object_get(v, "annotator")), w);
        fprintf(out, "  %10" JSON_INTEGER_FORMAT "  ", count_of(v, "judgements"));
        if (json_is_real(json_object_get(maj, "value")))
            fprintf(out, "%9.4f", json_real_value(json_object_get(maj, "value")));
        else
            fprintf(out, "%9s", "undefined");
        fprintf(out, "  %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT "\n",
                count_of(maj, "agree"), count_of(maj, "compared"));
    }

    if (items) {
        qr_agreement_item_t e;
        w = 4;
        while (qr_agreement_items_next(items, &e)) {
            int n = name_width(e.item);
            w = n > w ? n : w;
        }
        qr_agreement_items_rewind(items);
        w = w > 32 ? 32 : w;
        items_head(out, w);
        while (qr_agreement_items_next(items, &e))
            item_row(out, w, e.item, e.judgements, e.has_agreement, e.agreement, e.majority);
    } else if (json_is_array(json_object_get(r, "per_item"))) {
        const json_t *list = json_object_get(r, "per_item");
        w = 4;
        json_array_foreach(list, i, v)
        {
            int n = name_width(json_string_value(json_object_get(v, "item")));
            w = n > w ? n : w;
        }
        w = w > 32 ? 32 : w;
        items_head(out, w);
        json_array_foreach(list, i, v)
        {
            const json_t *agr = json_object_get(v, "agreement");
            item_row(out, w, json_string_value(json_object_get(v, "item")),
                     (size_t)count_of(v, "judgements"), json_is_number(agr), json_number_value(agr),
                     json_string_value(json_object_get(v, "majority_label")));
        }
    }
}

void qr_ctl_agreement_text(FILE *out, const json_t *report, const char *source)
{
    print_text(out, report, NULL, source);
}

int qr_ctl_agreement(int argc, char **argv)
{
    const char *path = NULL, *schema = NULL, *format = NULL;
    int as_json = 0, per_item = 0, only_files = 0, jsonl = 0, dawid_skene = 0;
    double iou = 0.5;
    char err[512];
    FILE *f;
    int rc = QR_EXIT_OK;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_files && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            fputs(help_text, stdout);
            return QR_EXIT_OK;
        } else if (!only_files && strcmp(arg, "--json") == 0) {
            as_json = 1;
        } else if (!only_files && strcmp(arg, "--per-item") == 0) {
            per_item = 1;
        } else if (!only_files &&
                   (strcmp(arg, "--format") == 0 || strcmp(arg, "--schema") == 0 ||
                    strcmp(arg, "--iou-threshold") == 0 || strcmp(arg, "--method") == 0)) {
            if (i + 1 >= argc)
                return qr_cli_usage_error(prog, "", "%s needs a value", arg);
            const char *val = argv[++i];
            if (strcmp(arg, "--format") == 0) {
                if (strcmp(val, "csv") != 0 && strcmp(val, "jsonl") != 0)
                    return qr_cli_usage_error(prog, "", "--format is csv or jsonl; got %s", val);
                format = val;
            } else if (strcmp(arg, "--schema") == 0) {
                schema = val;
            } else if (strcmp(arg, "--method") == 0) {
                if (strcmp(val, "majority") != 0 && strcmp(val, "dawid_skene") != 0)
                    return qr_cli_usage_error(prog, "",
                                              "--method is majority or dawid_skene; got %s", val);
                dawid_skene = strcmp(val, "dawid_skene") == 0;
            } else {
                char *end;
                errno = 0;
                iou = strtod(val, &end);
                if (errno || end == val || *end || !(iou > 0 && iou <= 1))
                    return qr_cli_usage_error(prog, "",
                                              "--iou-threshold is a number in (0, 1]; "
                                              "got %s",
                                              val);
            }
        } else if (!only_files &&
                   (strcmp(arg, "--project") == 0 || strncmp(arg, "--project=", 10) == 0)) {
            /* quorumctl's main routes `agreement --project` to the live
             * command before this one is reached. */
            return qr_cli_usage_error(prog, "", "%s",
                                      "--project goes to the live command; run quorumctl agreement "
                                      "--project ID");
        } else if (!only_files && strcmp(arg, "--") == 0) {
            only_files = 1;
        } else if (!only_files && arg[0] == '-' && arg[1] != '\0') {
            return qr_cli_usage_error(prog, "", "unknown flag %s", arg);
        } else if (path) {
            return qr_cli_usage_error(prog, "", "one file only; got a second: %s", arg);
        } else {
            path = arg;
        }
    }
    if (!path)
        return qr_cli_usage_error(prog, "", "%s",
                                  "missing FILE.csv or FILE.jsonl (or - for stdin)");

    if (strcmp(path, "-") == 0) {
        f = stdin;
    } else if (!(f = fopen(path, "rb"))) {
        fprintf(stderr, "%s: cannot open %s: %s\n", prog, path, strerror(errno));
        return QR_EXIT_USAGE;
    }
    const char *source = strcmp(path, "-") ? path : "stdin";
    FILE *in = f;
    if (!format) {
        if (!(in = qr_ctl_agreement_sniff(f, &jsonl))) {
            fprintf(stderr, "%s: cannot read %s: %s\n", prog, source, strerror(errno));
            if (f != stdin)
                fclose(f);
            return QR_EXIT_USAGE;
        }
    } else {
        jsonl = strcmp(format, "jsonl") == 0;
    }
    const char *mismatch = NULL;
    if (schema && !jsonl)
        mismatch = "--schema goes with JSONL input (a CSV is one choice field, label)";
    else if (jsonl && dawid_skene)
        mismatch = "--method dawid_skene goes with CSV input for now (JSONL fields have their "
                   "own consensus per type)";
    if (mismatch) {
        if (in != f)
            fclose(in);
        if (f != stdin)
            fclose(f);
        return qr_cli_usage_error(prog, "", "%s", mismatch);
    }
    if (jsonl) {
        rc = qr_ctl_agreement_jsonl(in, source, schema, iou, as_json, per_item);
        if (in != f)
            fclose(in);
        if (f != stdin)
            fclose(f);
        return rc;
    }
    qr_agreement_t *a = qr_agreement_new();
    int r = qr_agreement_read_csv(in, a, err, sizeof(err));
    if (in != f)
        fclose(in);
    if (f != stdin)
        fclose(f);
    if (r < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, strcmp(path, "-") ? path : "stdin", err);
        qr_agreement_free(a);
        return QR_EXIT_USAGE;
    }
    qr_agreement_items_t *items = NULL;
    json_t *report = qr_agreement_report(a, per_item ? &items : NULL);
    qr_ctl_ds_t *ds = NULL;
    if (dawid_skene && (rc = qr_ctl_agreement_ds_new(a, &ds)) != QR_EXIT_OK) {
        qr_agreement_items_free(items);
        qr_agreement_free(a);
        json_decref(report);
        return rc;
    }
    if (as_json) {
        if (qr_ctl_agreement_json_csv(stdout, report, items, ds) != 0)
            rc = QR_EXIT_ERROR;
        fputc('\n', stdout);
    } else {
        print_text(stdout, report, items, strcmp(path, "-") ? path : "stdin");
        if (ds)
            qr_ctl_agreement_ds_text(stdout, ds, report, items);
    }
    qr_ctl_agreement_ds_free(ds);
    qr_agreement_items_free(items);
    qr_agreement_free(a);
    json_decref(report);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: cannot write the report: %s\n", prog, strerror(errno));
        rc = QR_EXIT_ERROR;
    }
    return rc;
}

int qr_ctl_agreement_name_width(const char *s)
{
    return name_width(s);
}

void qr_ctl_agreement_put_name(FILE *out, const char *s, int width)
{
    put_name(out, s, width);
}

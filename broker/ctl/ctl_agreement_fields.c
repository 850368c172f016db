/*
 * ctl_agreement_fields.c - the field side of `quorumctl agreement` (issue
 * 15): telling JSONL from CSV by the first byte and the JSONL path
 * (schema, reading, the report of every field as text; the JSON is written
 * by ctl_agreement_json.c). The math is agreement_fields.h.
 */
#include "ctl_agreement_fields.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agreement_fields.h"
#include "cli.h"
#include "ctl_agreement_json.h"
#include "protocol.h"
#include "text_out.h"
#include "util.h"

static const char *const prog = "quorumctl agreement";

/* ---- a FILE * that first gives back the bytes peeked off another ---------- */

typedef struct {
    FILE *f;
    char head[64];
    size_t n, pos;
} peek_t;

static ssize_t peek_read(void *cookie, char *buf, size_t size)
{
    peek_t *p = cookie;
    if (p->pos < p->n) {
        size_t k = p->n - p->pos < size ? p->n - p->pos : size;
        memcpy(buf, p->head + p->pos, k);
        p->pos += k;
        return (ssize_t)k;
    }
    size_t k = fread(buf, 1, size, p->f);
    return k == 0 && ferror(p->f) ? -1 : (ssize_t)k;
}

static int peek_close(void *cookie)
{
    free(cookie);
    return 0;
}

FILE *qr_ctl_agreement_sniff(FILE *f, int *jsonl)
{
    peek_t *p = qr_xcalloc(1, sizeof(*p));
    cookie_io_functions_t io = {.read = peek_read, .close = peek_close};
    int c;
    size_t bom = 0; /* bytes of a byte-order mark seen at the very start */

    p->f = f;
    *jsonl = 0;
    /* Skip a byte-order mark and whitespace, up to the first other byte. */
    while (p->n < sizeof(p->head) && (c = getc(f)) != EOF) {
        p->head[p->n++] = (char)c;
        if (bom == p->n - 1 && bom < 3 && (unsigned char)c == (unsigned char)"\xef\xbb\xbf"[bom]) {
            bom++;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        *jsonl = c == '{';
        break;
    }
    /* A file that seeks is read again from its start, as it is (the CSV
     * reader may read it its own way); a pipe through the peeked bytes. */
    if (fseek(f, 0, SEEK_SET) == 0) {
        free(p);
        return f;
    }
    clearerr(f);
    FILE *g = fopencookie(p, "r", io);
    if (!g)
        free(p);
    return g;
}

/* ---- text ------------------------------------------------------------------ */

static void put_figure(FILE *out, const json_t *m)
{
    const char *status = json_string_value(json_object_get(m, "status"));
    const char *reason = json_string_value(json_object_get(m, "reason"));

    if (status && strcmp(status, "defined") == 0) {
        fprintf(out, "%.4f", json_number_value(json_object_get(m, "value")));
        return;
    }
    fputs(status && strcmp(status, "undefined") == 0 ? "undefined" : "n/a", out);
    if (reason)
        fprintf(out, " (%s)", reason);
}

static void put_value(FILE *out, const json_t *v)
{
    if (json_is_null(v)) {
        fputs("(none)", out);
        return;
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    qr_buf_t b;
    qr_buf_init(&b);
    qr_term_escape(&b, s ? s : "");
    fwrite(b.data, 1, b.len, out);
    qr_buf_free(&b);
    free(s);
}

static void put_name(FILE *out, const char *s)
{
    qr_buf_t b;
    qr_buf_init(&b);
    qr_term_escape(&b, s ? s : "");
    fwrite(b.data, 1, b.len, out);
    qr_buf_free(&b);
}

static void print_field(FILE *out, const char *name, const json_t *fo)
{
    const json_t *counts = json_object_get(fo, "counts"), *metrics = json_object_get(fo, "metrics");
    const json_t *anns = json_object_get(fo, "per_annotator"),
                 *items = json_object_get(fo, "per_item");
    const json_t *v;
    const char *key;
    size_t i;

    fputs("\nField ", out);
    put_name(out, name);
    fprintf(out, " (%s)\n", json_string_value(json_object_get(fo, "type")));
    fprintf(out,
            "  %" JSON_INTEGER_FORMAT " judgements, %" JSON_INTEGER_FORMAT
            " items (%" JSON_INTEGER_FORMAT " with two or more judgements), %" JSON_INTEGER_FORMAT
            " annotators\n",
            json_integer_value(json_object_get(counts, "judgements")),
            json_integer_value(json_object_get(counts, "items")),
            json_integer_value(json_object_get(counts, "pairable_items")),
            json_integer_value(json_object_get(counts, "annotators")));
    json_object_foreach((json_t *)metrics, key, v)
    {
        if (strcmp(key, "per_choice_alpha") == 0) {
            const json_t *c;
            const char *choice;
            fprintf(out, "  %-29s\n", key);
            json_object_foreach((json_t *)v, choice, c)
            {
                fputs("    ", out);
                put_name(out, choice);
                fputs("  ", out);
                put_figure(out, c);
                fputc('\n', out);
            }
            continue;
        }
        fprintf(out, "  %-29s ", key);
        put_figure(out, v);
        fputc('\n', out);
    }
    fprintf(out, "  Per annotator (judgements, %s)\n",
            json_object_get(json_array_get(anns, 0), "majority_agreement")
                ? "agreement with the majority of the others"
                : "mean pair score");
    json_array_foreach(anns, i, v)
    {
        const json_t *fig = json_object_get(v, "pair_score");
        if (!fig)
            fig = json_object_get(v, "majority_agreement");
        fputs("    ", out);
        put_name(out, json_string_value(json_object_get(v, "annotator")));
        fprintf(out, "  %" JSON_INTEGER_FORMAT "  ",
                json_integer_value(json_object_get(v, "judgements")));
        put_figure(out, fig);
        fputc('\n', out);
    }
    if (items) {
        fputs("  Per item (judgements, agreement, consensus, support)\n", out);
        json_array_foreach(items, i, v)
        {
            const json_t *agr = json_object_get(v, "agreement"),
                         *sup = json_object_get(v, "support");
            fputs("    ", out);
            put_name(out, json_string_value(json_object_get(v, "item")));
            fprintf(out, "  %" JSON_INTEGER_FORMAT "  ",
                    json_integer_value(json_object_get(v, "judgements")));
            if (json_is_number(agr))
                fprintf(out, "%.4f  ", json_number_value(agr));
            else
                fputs("-  ", out);
            put_value(out, json_object_get(v, "consensus"));
            if (json_is_number(sup))
                fprintf(out, "  %.4f", json_number_value(sup));
            fputc('\n', out);
        }
    }
}

int qr_ctl_agreement_jsonl(FILE *f, const char *source, const char *schema_path, double iou,
                           int as_json, int per_item)
{
    qr_fields_t *fs = qr_fields_new();
    char err[512];
    int rc = QR_EXIT_OK;

    qr_fields_set_iou_threshold(fs, iou);
    if (schema_path) {
        json_error_t jerr;
        json_t *schema = json_load_file(schema_path, JSON_REJECT_DUPLICATES, &jerr);
        if (!schema) {
            fprintf(stderr, "%s: --schema %s: line %d: %s\n", prog, schema_path, jerr.line,
                    jerr.text);
            qr_fields_free(fs);
            return QR_EXIT_USAGE;
        }
        int r = qr_fields_load_schema(fs, schema, err, sizeof(err));
        json_decref(schema);
        if (r < 0) {
            fprintf(stderr, "%s: --schema %s: %s\n", prog, schema_path, err);
            qr_fields_free(fs);
            return QR_EXIT_USAGE;
        }
    }
    if (qr_fields_read_jsonl(f, fs, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, source, err);
        qr_fields_free(fs);
        return QR_EXIT_USAGE;
    }
    if (as_json) {
        if (qr_ctl_agreement_json_fields(stdout, fs, per_item) != 0)
            rc = QR_EXIT_ERROR;
        fputc('\n', stdout);
    } else {
        json_t *report = qr_fields_json(fs, per_item);
        const json_t *fields = json_object_get(report, "fields"), *fo;
        const char *name;
        fprintf(stdout, "Agreement on ");
        put_name(stdout, source);
        fprintf(stdout, " (%zu field%s)\n", json_object_size(fields),
                json_object_size(fields) == 1 ? "" : "s");
        json_object_foreach((json_t *)fields, name, fo)
        {
            print_field(stdout, name, fo);
        }
        json_decref(report);
    }
    qr_fields_free(fs);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: cannot write the report: %s\n", prog, strerror(errno));
        rc = QR_EXIT_ERROR;
    }
    return rc;
}

/*
 * import.c - JSONL import bodies to COPY rows (see import.h).
 */
#include "import.h"

#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int qr_import_jsonl(const char *body, size_t len, int64_t project, int required, qr_buf_t *out,
                    int64_t *ntasks, char *err, size_t errlen)
{
    const char *p = body, *end = body + len;
    int64_t lineno = 0;
    *ntasks = 0;
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
        if (!o) {
            snprintf(err, errlen, "line %" PRId64 ": %s", lineno, e.text);
            return QR_EINVAL;
        }
        if (!json_is_object(o)) {
            json_decref(o);
            snprintf(err, errlen, "line %" PRId64 ": a task must be a JSON object", lineno);
            return QR_EINVAL;
        }
        json_t *data = json_object_get(o, "data");
        if (data && !json_is_object(data)) {
            json_decref(o);
            snprintf(err, errlen, "line %" PRId64 ": \"data\" must be a JSON object", lineno);
            return QR_EINVAL;
        }
        char *text = json_dumps(data ? data : o, JSON_COMPACT);
        json_decref(o);
        if (!text) {
            snprintf(err, errlen, "line %" PRId64 ": cannot encode the task", lineno);
            return QR_EINVAL;
        }
        qr_buf_appendf(out, "\t%" PRId64 "\t", project);
        qr_import_copy_escape(out, text);
        qr_buf_appendf(out, "\t%d\n", required);
        free(text);
        (*ntasks)++;
        p = nl ? nl + 1 : end;
    }
    if (*ntasks == 0) {
        snprintf(err, errlen, "the body holds no task");
        return QR_EINVAL;
    }
    return 0;
}

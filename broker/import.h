/*
 * import.h - turns a JSONL import body into COPY text-format rows for the
 * tasks table. Pure: no I/O, so the whole validation is unit-tested.
 */
#ifndef QR_IMPORT_H
#define QR_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Parses body (len bytes): one task per line, {"data": {...}} or a bare
 * object taken as the data; blank lines are skipped. For each task appends
 * "\t<project>\t<data, COPY-escaped>\t<required>\n" to out (the caller puts
 * the task id in front of each line once ids are allocated) and counts it in
 * *ntasks. Returns 0, or QR_EINVAL with "line N: reason" in err (out is then
 * meaningless and nothing must be imported). */
int qr_import_jsonl(const char *body, size_t len, int64_t project, int required, qr_buf_t *out,
                    int64_t *ntasks, char *err, size_t errlen);

/* Appends s to out escaped for COPY's text format (\\, \n, \r, \t). */
void qr_import_copy_escape(qr_buf_t *out, const char *s);

#endif

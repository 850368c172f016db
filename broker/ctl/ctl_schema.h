/*
 * ctl_schema.h - a project's label schema (issue 15) on quorumctl's side:
 * read from a file for `project create --schema`, and shown by `project
 * show` and `project list`. The broker checks the schema (docs/API.md,
 * "Label schemas"); quorumctl only carries it.
 */
#ifndef QR_CTL_SCHEMA_H
#define QR_CTL_SCHEMA_H

#include <jansson.h>
#include <stddef.h>

#include "util.h"

/*
 * Reads the schema from path ("-": stdin): a JSON object that is either the
 * schema itself ({"fields": [...]}) or holds it under "schema" ({"schema":
 * {"fields": [...]}}, as a project's JSON does). Returns a new reference, or
 * NULL with a one-line reason in err.
 */
json_t *qr_ctl_schema_load(const char *path, char *err, size_t errlen);

/* Prints a project's schema as "key: value" lines on stdout ("schema: 3
 * fields", then one "field: NAME TYPE ..." line per field, terminal-safe);
 * nothing for a plain project (schema null). */
void qr_ctl_schema_show(json_t *project);

/* Appends a schema project's fields to b as "schema:name,name" for the
 * project list's labels column; nothing for a plain project. Returns 1 when
 * the project has a schema. */
int qr_ctl_schema_summary(qr_buf_t *b, json_t *project);

#endif

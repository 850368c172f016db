/*
 * conf.h - a generic `key = value` file reader (a service's config file).
 *
 * It knows no program and no key: it splits a file into (key, value, line)
 * entries and refuses what no reading could make sense of, naming the file
 * and the line. Which keys exist and what their values mean is the
 * caller's business (quorumd maps each key to its long option).
 *
 * The format, one entry a line:
 *   key = value        (or `key value`: the `=` is optional)
 *   # a comment        (`#` starts a comment only as a line's first
 *                      non-blank character: `#` inside a value is kept,
 *                      libpq passwords may hold one)
 *   blank lines are skipped; spaces around the key and the value are trimmed;
 *   a value wrapped in double quotes has them removed (to keep spaces at
 *   its ends; there are no escapes inside).
 * A key is letters, digits, '-', '_' and '.'. A key without a value, a key
 * given twice, a line that starts with '=', an unterminated quote, a NUL
 * byte and a file over 1 MiB are errors.
 */
#ifndef QR_CONF_H
#define QR_CONF_H

#include <stddef.h>

typedef struct {
    char *key;   /* owned by the qr_conf_t */
    char *value; /* owned by the qr_conf_t; never NULL, may be "" only if quoted */
    int line;    /* 1-based line number in the file */
} qr_conf_entry_t;

typedef struct {
    qr_conf_entry_t *entries; /* in file order */
    size_t n;
} qr_conf_t;

/* Largest file qr_conf_read accepts, in bytes. */
#define QR_CONF_MAX_BYTES (1024 * 1024)

/*
 * Reads and parses the file at path into *out (emptied first). Returns 0,
 * or -1 with one line in err: "PATH: reason" when the file cannot be read,
 * "PATH:LINE: reason" when a line is wrong; *out is then empty. The caller
 * frees *out with qr_conf_free either way. Blocking (file I/O): call it
 * before any event loop runs.
 */
int qr_conf_read(const char *path, qr_conf_t *out, char *err, size_t errlen);

/*
 * Parses len bytes of text as the file `name` (used in messages only).
 * Same contract as qr_conf_read.
 */
int qr_conf_parse(const char *name, const char *text, size_t len, qr_conf_t *out, char *err,
                  size_t errlen);

/* Frees the entries and leaves c empty; safe on an empty or zeroed c. */
void qr_conf_free(qr_conf_t *c);

#endif

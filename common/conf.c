/*
 * conf.c - the generic `key = value` file reader (conf.h gives the format).
 */
#include "conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void qr_conf_free(qr_conf_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->entries[i].key);
        free(c->entries[i].value);
    }
    free(c->entries);
    c->entries = NULL;
    c->n = 0;
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

/* ch as text for a message: "'x'", or "byte 0xNN" when it does not print. */
static const char *shown(char ch, char buf[16])
{
    unsigned char u = (unsigned char)ch;
    if (u > 0x20 && u < 0x7f)
        snprintf(buf, 16, "'%c'", ch);
    else
        snprintf(buf, 16, "byte 0x%02x", u);
    return buf;
}

static int is_key_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.';
}

/*
 * Parses one line (s, n bytes, no '\n') numbered lineno into *c.
 * Returns 0 (an entry added, or nothing for a blank or comment line), or -1
 * with "NAME:LINE: reason" in err.
 */
static int parse_line(const char *name, int lineno, const char *s, size_t n, qr_conf_t *c,
                      char *err, size_t errlen)
{
    char ch[16];
    size_t i = 0;
    while (i < n && is_blank(s[i]))
        i++;
    if (i == n || s[i] == '#')
        return 0;
    size_t k0 = i;
    while (i < n && is_key_char(s[i]))
        i++;
    size_t k1 = i;
    if (k1 == k0) {
        snprintf(err, errlen, "%s:%d: expected `key = value`, not a line starting with %s", name,
                 lineno, shown(s[i], ch));
        return -1;
    }
    if (i < n && !is_blank(s[i]) && s[i] != '=') {
        snprintf(err, errlen, "%s:%d: %s cannot be part of a key (letters, digits, '-', '_', '.')",
                 name, lineno, shown(s[i], ch));
        return -1;
    }
    while (i < n && is_blank(s[i]))
        i++;
    if (i < n && s[i] == '=') {
        i++;
        while (i < n && is_blank(s[i]))
            i++;
    }
    size_t v0 = i, v1 = n;
    while (v1 > v0 && is_blank(s[v1 - 1]))
        v1--;
    char *key = qr_xstrndup(s + k0, k1 - k0);
    if (v1 == v0) {
        snprintf(err, errlen, "%s:%d: %s has no value", name, lineno, key);
        free(key);
        return -1;
    }
    if (s[v0] == '"') {
        if (v1 - v0 < 2 || s[v1 - 1] != '"' || memchr(s + v0 + 1, '"', v1 - v0 - 2)) {
            snprintf(err, errlen, "%s:%d: %s: a quoted value is one \"...\" (no quote inside)",
                     name, lineno, key);
            free(key);
            return -1;
        }
        v0++;
        v1--;
    }
    for (size_t j = 0; j < c->n; j++) {
        if (!strcmp(c->entries[j].key, key)) {
            snprintf(err, errlen, "%s:%d: %s is already set on line %d", name, lineno, key,
                     c->entries[j].line);
            free(key);
            return -1;
        }
    }
    c->entries = qr_xrealloc(c->entries, (c->n + 1) * sizeof *c->entries);
    c->entries[c->n].key = key;
    c->entries[c->n].value = qr_xstrndup(s + v0, v1 - v0);
    c->entries[c->n].line = lineno;
    c->n++;
    return 0;
}

int qr_conf_parse(const char *name, const char *text, size_t len, qr_conf_t *out, char *err,
                  size_t errlen)
{
    qr_conf_free(out);
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        int lineno = 1;
        for (const char *p = text; p < nul; p++)
            lineno += *p == '\n';
        snprintf(err, errlen, "%s:%d: a NUL byte (not a text file?)", name, lineno);
        return -1;
    }
    size_t pos = 0;
    for (int lineno = 1; pos < len; lineno++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        if (parse_line(name, lineno, text + pos, n, out, err, errlen) < 0) {
            qr_conf_free(out);
            return -1;
        }
        pos += n + 1;
    }
    return 0;
}

int qr_conf_read(const char *path, qr_conf_t *out, char *err, size_t errlen)
{
    qr_conf_free(out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *text = qr_xmalloc(QR_CONF_MAX_BYTES + 1);
    size_t len = fread(text, 1, QR_CONF_MAX_BYTES + 1, f);
    int rc = -1;
    if (ferror(f))
        snprintf(err, errlen, "%s: %s", path, strerror(errno ? errno : EIO));
    else if (len > QR_CONF_MAX_BYTES)
        snprintf(err, errlen, "%s: larger than %d bytes", path, QR_CONF_MAX_BYTES);
    else
        rc = qr_conf_parse(path, text, len, out, err, errlen);
    fclose(f);
    free(text);
    return rc;
}

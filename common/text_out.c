/*
 * text_out.c - CSV cells neutralized against formula injection and text
 * escaped for terminals (text_out.h).
 */
#include "text_out.h"

#include <stdio.h>
#include <string.h>

/* A cell a spreadsheet would take for a formula when it starts with c. */
static int formula_start(char c)
{
    return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r';
}

/* 1 when s (len bytes) is quotes, then a formula start: "=x", "'=x", "''=x". */
static int needs_quote(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && s[i] == '\'')
        i++;
    return i < len && formula_start(s[i]);
}

void qr_csv_cell(qr_buf_t *b, const char *s)
{
    int quote = needs_quote(s, strlen(s));
    if (!strpbrk(s, ",\"\r\n")) {
        if (quote)
            qr_buf_append(b, "'", 1);
        qr_buf_appends(b, s);
        return;
    }
    qr_buf_append(b, quote ? "\"'" : "\"", quote ? 2 : 1);
    for (; *s; s++) {
        if (*s == '"')
            qr_buf_append(b, "\"", 1);
        qr_buf_append(b, s, 1);
    }
    qr_buf_append(b, "\"", 1);
}

size_t qr_csv_cell_value(const char *s, size_t len)
{
    return len > 1 && s[0] == '\'' && needs_quote(s + 1, len - 1);
}

/* The length of the valid UTF-8 character at p (1 to 4), or 0. */
static size_t utf8_len(const unsigned char *p)
{
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        return (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (p[0] >= 0xe0 && p[0] <= 0xef) {
        if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))
            return 0; /* overlong, or a UTF-16 surrogate */
        return 3;
    }
    if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
            return 0; /* overlong, or above U+10FFFF */
        return 4;
    }
    return 0;
}

/* The next piece of s as the terminal should see it: a character copied
 * (returned 1, *n its bytes) or an escape written to esc (returned 0). */
static int next_piece(const unsigned char *p, size_t *n, char esc[8])
{
    size_t k = utf8_len(p);
    if (k == 1 && (p[0] < 0x20 || p[0] == 0x7f)) {
        snprintf(esc, 8, "\\x%02x", p[0]);
        *n = 1;
        return 0;
    }
    if (k == 2 && p[0] == 0xc2 && p[1] <= 0x9f) {
        snprintf(esc, 8, "\\u%04x", p[1]);
        *n = 2;
        return 0;
    }
    if (k == 0) {
        snprintf(esc, 8, "\\x%02x", p[0]);
        *n = 1;
        return 0;
    }
    *n = k;
    return 1;
}

void qr_term_escape(qr_buf_t *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n;
        char esc[8];
        if (next_piece(p, &n, esc))
            qr_buf_append(b, p, n);
        else
            qr_buf_appends(b, esc);
        p += n;
    }
}

const char *qr_term_escape_to(char *out, size_t size, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t used = 0;
    if (!size)
        return out;
    while (*p) {
        size_t n;
        char esc[8];
        const char *piece = next_piece(p, &n, esc) ? (const char *)p : esc;
        size_t len = piece == esc ? strlen(esc) : n;
        if (used + len >= size)
            break;
        memcpy(out + used, piece, len);
        used += len;
        p += n;
    }
    out[used] = '\0';
    return out;
}

/*
 * agreement_text.c - the text side of field agreement (issue 15): the
 * normalization that decides when two free-text values are equal (NFC, case
 * fold, collapsed whitespace; libutf8proc), the Levenshtein distance over
 * code points behind text_mean_similarity, and the whitespace tokens of an
 * item's text behind the token alpha of span fields.
 */
#include "agreement_fields_internal.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "util.h"

/* Unicode White_Space (the characters utf8proc classes as separators, plus
 * the C0/C1 controls that are whitespace). */
static int is_space(utf8proc_int32_t c)
{
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || c == 0x85)
        return 1;
    if (c < 0x80)
        return 0;
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL ||
           cat == UTF8PROC_CATEGORY_ZP;
}

int qr_text_normalize_cp(const char *s, size_t n, int32_t **cp, size_t *ncp, char **out,
                         size_t *nout)
{
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t m;

    if (n == 0) {
        mapped = (utf8proc_uint8_t *)qr_xstrdup("");
        m = 0;
    } else {
        m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &mapped,
                         UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD);
        if (m < 0)
            return QR_EINVAL;
    }
    /* Collapse and trim whitespace while decoding to code points. */
    int32_t *c = qr_xmalloc(((size_t)m + 1) * sizeof(int32_t));
    char *o = qr_xmalloc((size_t)m + 1);
    size_t nc = 0, no = 0;
    int pending = 0;
    for (utf8proc_ssize_t i = 0; i < m;) {
        utf8proc_int32_t ch;
        utf8proc_ssize_t k = utf8proc_iterate(mapped + i, m - i, &ch);
        if (k <= 0) {
            free(mapped);
            free(c);
            free(o);
            return QR_EINVAL;
        }
        if (is_space(ch)) {
            pending = nc > 0;
        } else {
            if (pending) {
                c[nc++] = ' ';
                o[no++] = ' ';
                pending = 0;
            }
            c[nc++] = ch;
            memcpy(o + no, mapped + i, (size_t)k);
            no += (size_t)k;
        }
        i += k;
    }
    o[no] = '\0';
    free(mapped);
    *cp = c;
    *ncp = nc;
    *out = o;
    *nout = no;
    return 0;
}

char *qr_text_normalize(const char *s, size_t n, size_t *len)
{
    int32_t *cp;
    size_t ncp;
    char *out;

    if (qr_text_normalize_cp(s, n, &cp, &ncp, &out, len) < 0)
        return NULL;
    free(cp);
    return out;
}

/*
 * Levenshtein distance (unit costs) by the classic dynamic programme over one
 * row of the shorter string, after the common prefix and suffix are cut
 * (they never change the distance). O(na nb) time, O(min) memory.
 */
size_t qr_text_lev_cp(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    while (na && nb && a[0] == b[0])
        a++, b++, na--, nb--;
    while (na && nb && a[na - 1] == b[nb - 1])
        na--, nb--;
    if (na < nb) {
        const int32_t *t = a;
        a = b, b = t;
        size_t tn = na;
        na = nb, nb = tn;
    }
    if (nb == 0)
        return na;
    size_t small[256], *row = nb + 1 <= 256 ? small : qr_xmalloc((nb + 1) * sizeof(size_t));
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t d = row[nb];
    if (row != small)
        free(row);
    return d;
}

/* Decodes valid UTF-8 into code points (*n of them; free the result). */
static int32_t *decode(const char *s, size_t n, size_t *count)
{
    int32_t *c = qr_xmalloc((n + 1) * sizeof(int32_t));
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t ch;
        utf8proc_ssize_t len =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &ch);
        if (len <= 0) {
            ch = 0xfffd;
            len = 1;
        }
        c[k++] = ch;
        i += (size_t)len;
    }
    *count = k;
    return c;
}

size_t qr_text_levenshtein(const char *a, size_t na, const char *b, size_t nb)
{
    size_t ka, kb;
    int32_t *ca = decode(a, na, &ka), *cb = decode(b, nb, &kb);
    size_t d = qr_text_lev_cp(ca, ka, cb, kb);
    free(ca);
    free(cb);
    return d;
}

size_t qr_text_tokens(const char *s, size_t n, int64_t **starts, int64_t **ends)
{
    size_t k;
    int32_t *c = decode(s, n, &k);
    int64_t *st = qr_xmalloc((2 * (k / 2 + 1)) * sizeof(int64_t));
    size_t cap = k / 2 + 1, t = 0;
    int64_t *en = st + cap;

    for (size_t i = 0; i < k;) {
        while (i < k && is_space(c[i]))
            i++;
        if (i >= k)
            break;
        st[t] = (int64_t)i;
        while (i < k && !is_space(c[i]))
            i++;
        en[t++] = (int64_t)i;
    }
    free(c);
    *starts = st;
    *ends = en;
    return t;
}

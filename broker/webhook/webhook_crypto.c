/*
 * webhook_crypto.c - webhook secrets and signatures: making a secret,
 * sealing it for the database under the broker's key (AES-256-GCM, a fresh
 * 96-bit nonce each time), opening it again to sign, the HMAC-SHA256
 * signature, and the checks of a receiver URL (its shape, and whether it
 * points into the broker's own networks) and of event names.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "webhook.h"

#define NONCE_BYTES 12
#define TAG_BYTES   16
/* Binds a sealed secret to its use: the same key sealing anything else
 * cannot be mistaken for a webhook secret. */
static const unsigned char AAD[] = "quorum webhook secret v1";

const char *const qr_webhook_event_types[] = {"annotation.created", "task.completed",
                                              "project.completed", NULL};

int qr_webhook_event_known(const char *name)
{
    for (int i = 0; qr_webhook_event_types[i]; i++)
        if (!strcmp(name, qr_webhook_event_types[i]))
            return 1;
    return 0;
}

int qr_webhook_url_check(const char *url, char *err, size_t errlen)
{
    size_t n = strlen(url);
    if (n > QR_WEBHOOK_MAX_URL) {
        snprintf(err, errlen, "url is longer than %d bytes", QR_WEBHOOK_MAX_URL);
        return QR_EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] == 0x7f) {
            snprintf(err, errlen, "url holds a space or control character at byte %zu", i + 1);
            return QR_EINVAL;
        }
    if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8)) {
        snprintf(err, errlen, "url must start with http:// or https://");
        return QR_EINVAL;
    }
    CURLU *u = curl_url();
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return QR_EIO;
    }
    int rc = QR_EINVAL;
    char *host = NULL, *user = NULL, *fragment = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        snprintf(err, errlen, "url is not a valid URL");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
        snprintf(err, errlen, "url has no host");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK && user) {
        snprintf(err, errlen, "url may not carry a user or password (the body is signed instead)");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK && fragment) {
        snprintf(err, errlen, "url may not have a #fragment");
        goto done;
    }
    rc = 0;
done:
    curl_free(host);
    curl_free(user);
    curl_free(fragment);
    curl_url_cleanup(u);
    return rc;
}

/* The kind of a private IPv4 address (host order), or NULL. */
static const char *v4_kind(uint32_t a)
{
    static const struct {
        uint32_t net, mask;
        const char *kind;
    } nets[] = {
        {0x00000000u, 0xff000000u, "an unspecified (0.0.0.0/8)"},
        {0x0a000000u, 0xff000000u, "a private (10/8)"},
        {0x64400000u, 0xffc00000u, "a shared (100.64/10)"},
        {0x7f000000u, 0xff000000u, "a loopback"},
        {0xa9fe0000u, 0xffff0000u, "a link-local (169.254/16)"},
        {0xac100000u, 0xfff00000u, "a private (172.16/12)"},
        {0xc0000000u, 0xffffff00u, "a reserved (192.0.0/24)"},
        {0xc0a80000u, 0xffff0000u, "a private (192.168/16)"},
        {0xc6120000u, 0xfffe0000u, "a benchmarking (198.18/15)"},
        {0xe0000000u, 0xf0000000u, "a multicast"},
        {0xf0000000u, 0xf0000000u, "a reserved (240/4)"},
    };
    for (size_t i = 0; i < sizeof nets / sizeof nets[0]; i++)
        if ((a & nets[i].mask) == nets[i].net)
            return nets[i].kind;
    return NULL;
}

/* The kind of a private IPv6 address, or NULL (IPv4-mapped and NAT64
 * addresses are judged by the IPv4 address they carry). */
static const char *v6_kind(const unsigned char *b)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    static const unsigned char zero[16] = {0};
    if (!memcmp(b, mapped, 12) || !memcmp(b, nat64, 12))
        return v4_kind((uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 |
                       b[15]);
    if (!memcmp(b, zero, 15))
        return b[15] == 1 ? "a loopback" : b[15] == 0 ? "an unspecified" : "a reserved (::/96)";
    if ((b[0] & 0xfe) == 0xfc)
        return "a private (fc00::/7)";
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return "a link-local (fe80::/10)";
    if (b[0] == 0xff)
        return "a multicast";
    return NULL;
}

int qr_webhook_addr_private(const struct sockaddr *sa, char *why, size_t whylen)
{
    char text[INET6_ADDRSTRLEN] = "?";
    const char *kind = NULL;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        kind = v4_kind(ntohl(in->sin_addr.s_addr));
        if (kind && !inet_ntop(AF_INET, &in->sin_addr, text, sizeof text))
            snprintf(text, sizeof text, "?");
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        kind = v6_kind(in6->sin6_addr.s6_addr);
        if (kind && !inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text))
            snprintf(text, sizeof text, "?");
    } else {
        snprintf(why, whylen, "an address of family %d is not IPv4 or IPv6", sa->sa_family);
        return 1;
    }
    if (!kind)
        return 0;
    snprintf(why, whylen, "%s is %s address", text, kind);
    return 1;
}

int qr_webhook_url_private(const char *url, char *why, size_t whylen)
{
    CURLU *u = curl_url();
    char *host = NULL;
    int priv = 0;
    if (!u)
        return 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host)
        goto done;
    size_t n = strlen(host);
    if (n && host[n - 1] == '.')
        host[--n] = '\0'; /* "localhost." is localhost */
    if (!strcasecmp(host, "localhost") || (n > 10 && !strcasecmp(host + n - 10, ".localhost"))) {
        snprintf(why, whylen, "%s is a loopback name", host);
        priv = 1;
        goto done;
    }
    struct sockaddr_in in = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET, host, &in.sin_addr) == 1) {
        priv = qr_webhook_addr_private((struct sockaddr *)&in, why, whylen);
    } else if (n > 2 && host[0] == '[' && host[n - 1] == ']') {
        host[n - 1] = '\0';
        char *zone = strchr(host + 1, '%');
        if (zone)
            *zone = '\0';
        if (inet_pton(AF_INET6, host + 1, &in6.sin6_addr) == 1)
            priv = qr_webhook_addr_private((struct sockaddr *)&in6, why, whylen);
    }
done:
    curl_free(host);
    curl_url_cleanup(u);
    return priv;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes exactly n bytes of hex from s (2n digits, nothing after). */
static int unhex(const char *s, unsigned char *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return QR_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return QR_EINVAL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

static void tohex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

int qr_webhook_key_load(const char *path, unsigned char key[QR_WEBHOOK_KEY_BYTES], char *err,
                        size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "cannot read the webhook key %s: %s", path, strerror(e));
        return -e;
    }
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int rd_err = ferror(f);
    fclose(f);
    if (rd_err) {
        snprintf(err, errlen, "cannot read the webhook key %s", path);
        return QR_EINVAL;
    }
    buf[n] = 0;
    char *s = buf;
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    int rc = unhex(s, key, QR_WEBHOOK_KEY_BYTES);
    OPENSSL_cleanse(buf, sizeof buf);
    if (rc < 0) {
        snprintf(err, errlen,
                 "the webhook key %s must hold 64 hex digits (e.g. `openssl rand -hex 32`)", path);
        return rc;
    }
    return 0;
}

int qr_webhook_secret_new(char out[QR_WEBHOOK_SECRET_LEN + 1])
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return QR_EIO;
    memcpy(out, "whsec_", 6);
    tohex(raw, sizeof raw, out + 6);
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

char *qr_webhook_seal(const unsigned char key[QR_WEBHOOK_KEY_BYTES], const char *secret)
{
    size_t n = strlen(secret);
    size_t total = NONCE_BYTES + n + TAG_BYTES;
    unsigned char *raw = qr_xmalloc(total);
    char *out = NULL;
    int len = 0, fin = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || RAND_bytes(raw, NONCE_BYTES) != 1 ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &len, AAD, (int)sizeof AAD - 1) != 1 ||
        EVP_EncryptUpdate(ctx, raw + NONCE_BYTES, &len, (const unsigned char *)secret, (int)n) !=
            1 ||
        EVP_EncryptFinal_ex(ctx, raw + NONCE_BYTES + len, &fin) != 1 || (size_t)(len + fin) != n ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, raw + NONCE_BYTES + n) != 1)
        goto done;
    out = qr_xmalloc(3 + 2 * total + 1);
    memcpy(out, "v1:", 3);
    tohex(raw, total, out + 3);
done:
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    return out;
}

char *qr_webhook_unseal(const unsigned char key[QR_WEBHOOK_KEY_BYTES], const char *sealed)
{
    if (strncmp(sealed, "v1:", 3))
        return NULL;
    size_t hexlen = strlen(sealed + 3);
    if (hexlen % 2 || hexlen / 2 <= NONCE_BYTES + TAG_BYTES || hexlen / 2 > 4096)
        return NULL;
    size_t total = hexlen / 2, n = total - NONCE_BYTES - TAG_BYTES;
    unsigned char *raw = qr_xmalloc(total);
    char *out = qr_xmalloc(n + 1);
    int ok = 0, len = 0, fin = 0;
    EVP_CIPHER_CTX *ctx = NULL;
    if (unhex(sealed + 3, raw, total) < 0)
        goto done;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, raw) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &len, AAD, (int)sizeof AAD - 1) != 1 ||
        EVP_DecryptUpdate(ctx, (unsigned char *)out, &len, raw + NONCE_BYTES, (int)n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, raw + NONCE_BYTES + n) != 1 ||
        EVP_DecryptFinal_ex(ctx, (unsigned char *)out + len, &fin) != 1 || (size_t)(len + fin) != n)
        goto done;
    out[n] = 0;
    ok = 1;
done:
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    if (!ok) {
        OPENSSL_cleanse(out, n + 1);
        free(out);
        return NULL;
    }
    return out;
}

int qr_webhook_sign(const char *secret, int64_t t, const char *body, size_t len, char out[65])
{
    char ts[24];
    int tn = snprintf(ts, sizeof ts, "%lld.", (long long)t);
    unsigned char mac[EVP_MAX_MD_SIZE];
    int rc = QR_EIO;
    /* EVP_MAC: OpenSSL 3 deprecates HMAC_CTX. */
    EVP_MAC *mac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac_alg ? EVP_MAC_CTX_new(mac_alg) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t outl = 0;
    if (!ctx || EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)tn) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)body, len) != 1 ||
        EVP_MAC_final(ctx, mac, &outl, sizeof mac) != 1 || outl != 32)
        goto done;
    tohex(mac, outl, out);
    rc = 0;
done:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac_alg);
    return rc;
}

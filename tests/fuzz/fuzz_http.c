/*
 * fuzz_http.c - libFuzzer harness for quorumd's HTTP request parsing
 * (broker/http/http_parse.c: http-parser callbacks, head and body limits,
 * keep-alive and pipelining), through qr_http_fuzz_parse: the server's own
 * per-connection parser run over plain bytes, without TLS or a socket.
 *
 * Each input is parsed twice: all at once, and in slices whose size comes
 * from a hash of the input (1 to 64 bytes), as a client trickling bytes
 * over several reads would send it. Both runs must parse the same number of
 * requests. And a first head with whitespace before a header's colon or a
 * folded header line (what a proxy may read differently) must never give a
 * request.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "http.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    qr_log_init("fuzz_http", QR_LOG_ERROR);
    return 0;
}

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

/*
 * 1 if the first request's head (after any empty lines, up to the empty
 * line that ends it) has a header line that starts with a space or tab
 * (obsolete folding) or whitespace between a header name and its colon.
 * Written from RFC 9112 5.1 and 5.2, apart from the scanner in
 * broker/http/http_parse.c.
 */
static int first_head_smuggles(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n && (p[i] == '\r' || p[i] == '\n'))
        i++;
    while (i < n && p[i] != '\n') /* the request line */
        i++;
    while (++i < n) {
        size_t start = i;
        while (i < n && p[i] == '\r')
            i++;
        if (i >= n || p[i] == '\n')
            return 0; /* the end of the head */
        if (p[i] == ' ' || p[i] == '\t')
            return 1;
        int in_name = 1;
        for (; i < n && p[i] != '\n'; i++) {
            if (in_name && p[i] == ':')
                in_name = 0;
            else if (in_name && (p[i] == ' ' || p[i] == '\t') && i > start)
                return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int whole = qr_http_fuzz_parse(data, size, 0);
    if (whole < 0)
        abort(); /* the setup failed: not the input's fault, but fatal here */
    size_t chunk = 1 + fnv1a(data, size) % 64;
    int sliced = qr_http_fuzz_parse(data, size, chunk);
    if (sliced < 0)
        abort();
    /* The split must not change the outcome: http-parser is incremental, and
     * the head limit applies to the bytes of the head, whatever the sizes of
     * the reads that brought them. */
    if (whole > 0 && first_head_smuggles(data, size)) {
        fprintf(stderr, "fuzz_http: a head with whitespace before a colon or a folded line "
                        "was parsed as a request\n");
        abort();
    }
    if (whole != sliced) {
        fprintf(stderr, "fuzz_http: %d request(s) parsed whole, %d in slices of %zu bytes\n", whole,
                sliced, chunk);
        abort();
    }
    return 0;
}

/*
 * fuzz_http.c - libFuzzer harness for quorumd's HTTP request parsing
 * (broker/http.c: http-parser callbacks, head and body limits, keep-alive
 * and pipelining), through qr_http_fuzz_parse: the server's own
 * per-connection parser run over plain bytes, without TLS or a socket.
 *
 * Each input is parsed twice: all at once, and in slices whose size comes
 * from a hash of the input (1 to 64 bytes), as a client trickling bytes
 * over several reads would send it. Both runs must parse the same number of
 * requests.
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
    if (whole != sliced) {
        fprintf(stderr, "fuzz_http: %d request(s) parsed whole, %d in slices of %zu bytes\n", whole,
                sliced, chunk);
        abort();
    }
    return 0;
}

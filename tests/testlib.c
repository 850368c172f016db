/*
 * testlib.c - shared helpers for integration tests (see testlib.h).
 */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *qr_test_stack_get(const char *key)
{
    static char values[16][512];
    static int used;
    const char *dir = getenv("QR_TEST_STACK");
    if (!dir)
        return NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/env", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char line[1024];
    const char *found = NULL;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        const char *p = line;
        if (!strncmp(p, "export ", 7))
            p += 7;
        if (strncmp(p, key, klen) || p[klen] != '=')
            continue;
        p += klen + 1;
        char *slot = values[used++ % 16];
        snprintf(slot, 512, "%s", p);
        size_t n = strlen(slot);
        if (n >= 2 && (slot[0] == '\'' || slot[0] == '"') && slot[n - 1] == slot[0]) {
            memmove(slot, slot + 1, n - 2);
            slot[n - 2] = '\0';
        }
        found = slot;
        break;
    }
    fclose(f);
    return found;
}

static void on_deadline(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

int qr_test_run_until(uv_loop_t *loop, volatile int *done, int timeout_ms)
{
    uv_timer_t timer;
    int expired = 0;
    uv_timer_init(loop, &timer);
    timer.data = &expired;
    uv_timer_start(&timer, on_deadline, (uint64_t)timeout_ms, 0);
    while (!*done && !expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *done ? 1 : 0;
}

void qr_test_loop_close(uv_loop_t *loop)
{
    /* Everything the test opened must already be closing: run the loop dry,
     * then uv_loop_close fails with UV_EBUSY if any handle is still open. */
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

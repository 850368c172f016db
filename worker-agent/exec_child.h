/*
 * exec_child.h - the process `quorum-agent exec` runs for a task: CMD
 * started in its own process group with pipes for its stdin and stdout,
 * waited for, and killed with everything it started. See exec_child.c.
 */
#ifndef QR_EXEC_CHILD_H
#define QR_EXEC_CHILD_H

#include "util.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct exec_child_s {
    pid_t pid;    /* -1 when none */
    int in_fd;    /* our end of CMD's stdin, -1 once closed */
    int out_fd;   /* our end of CMD's stdout, -1 once closed */
    qr_buf_t out; /* what CMD wrote and we have not consumed */
} exec_child_t;

void exec_child_init(exec_child_t *c);

/*
 * Starts CMD (argv, NULL-terminated, looked up in PATH) with non-blocking
 * pipes for stdin and stdout, the default signal dispositions and an empty
 * signal mask. Returns 0, or -1 with why it could not be started in err
 * ("No such file or directory", "pipe: Too many open files"); the caller
 * then calls exec_child_kill, which reaps a child started before a later
 * step failed.
 */
int exec_child_start(exec_child_t *c, char *const argv[], char *err, size_t err_size);

/* Waits for CMD until deadline (monotonic ms). Returns 1 with *status when
 * it exited (or was reaped already), 0 if it still runs at the deadline. */
int exec_child_wait(exec_child_t *c, int64_t deadline, int *status);

/* Kills CMD's whole process group, reaps it, closes the pipes and drops
 * unread output. Safe to call with no child. */
void exec_child_kill(exec_child_t *c);

/* exec_child_kill, and frees the output buffer. */
void exec_child_free(exec_child_t *c);

/* Closes *fd if open and sets it to -1. */
void exec_close_fd(int *fd);

#endif

/*
 * exec_child.c - CMD's process for `quorum-agent exec` (see exec_child.h).
 *
 * CMD runs in its own process group, with the default signal dispositions,
 * and nothing of ours but stdin/stdout/stderr (every descriptor we open is
 * close-on-exec). Killing it kills the whole group, so nothing it started
 * outlives its task, and every child is reaped: no zombie is left behind.
 */
#include "exec_child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

void exec_child_init(exec_child_t *c)
{
    c->pid = -1;
    c->in_fd = c->out_fd = -1;
    qr_buf_init(&c->out);
}

void exec_close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd); /* a pipe end: nothing buffered to lose */
    *fd = -1;
}

int exec_child_start(exec_child_t *c, char *const argv[], char *err, size_t err_size)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int fa_ok = 0, attr_ok = 0, rc;
    sigset_t def, none;

    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        snprintf(err, err_size, "pipe: %s", strerror(errno));
        goto fail;
    }
    if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
        snprintf(err, err_size, "posix_spawn_file_actions_init: %s", strerror(rc));
        goto fail;
    }
    fa_ok = 1;
    if ((rc = posix_spawnattr_init(&attr)) != 0) {
        snprintf(err, err_size, "posix_spawnattr_init: %s", strerror(rc));
        goto fail;
    }
    attr_ok = 1;
    /* dup2 clears close-on-exec on the copies; the originals close at exec. */
    sigfillset(&def);
    sigemptyset(&none);
    if ((rc = posix_spawn_file_actions_adddup2(&fa, in[0], 0)) != 0 ||
        (rc = posix_spawn_file_actions_adddup2(&fa, out[1], 1)) != 0 ||
        (rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                                  POSIX_SPAWN_SETSIGMASK)) != 0 ||
        (rc = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
        (rc = posix_spawnattr_setsigdefault(&attr, &def)) != 0 ||
        (rc = posix_spawnattr_setsigmask(&attr, &none)) != 0) {
        snprintf(err, err_size, "posix_spawn setup: %s", strerror(rc));
        goto fail;
    }
    rc = posix_spawnp(&c->pid, argv[0], &fa, &attr, argv, environ);
    if (rc != 0) {
        c->pid = -1;
        snprintf(err, err_size, "%s", strerror(rc));
        goto fail;
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    exec_close_fd(&in[0]);
    exec_close_fd(&out[1]);
    c->in_fd = in[1];
    c->out_fd = out[0];
    if (fcntl(c->in_fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(c->out_fd, F_SETFL, O_NONBLOCK) < 0) {
        snprintf(err, err_size, "fcntl: %s", strerror(errno));
        return -1; /* the caller kills and reaps the child */
    }
    qr_buf_reset(&c->out);
    return 0;
fail:
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
    exec_close_fd(&in[0]);
    exec_close_fd(&in[1]);
    exec_close_fd(&out[0]);
    exec_close_fd(&out[1]);
    return -1;
}

int exec_child_wait(exec_child_t *c, int64_t deadline, int *status)
{
    for (;;) {
        pid_t p = waitpid(c->pid, status, WNOHANG);
        if (p == c->pid || (p < 0 && errno == ECHILD)) {
            c->pid = -1;
            return 1;
        }
        if (p < 0 && errno != EINTR)
            return 0;
        if (qr_mono_ms() >= deadline)
            return 0;
        (void)poll(NULL, 0, 5);
    }
}

void exec_child_kill(exec_child_t *c)
{
    exec_close_fd(&c->in_fd);
    exec_close_fd(&c->out_fd);
    if (c->pid > 0) {
        int status;
        if (kill(-c->pid, SIGKILL) < 0 && errno != ESRCH)
            (void)kill(c->pid, SIGKILL);
        while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
            ;
        c->pid = -1;
    }
    qr_buf_reset(&c->out);
}

void exec_child_free(exec_child_t *c)
{
    exec_child_kill(c);
    qr_buf_free(&c->out);
}

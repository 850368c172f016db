/*
 * log.c - timestamped, leveled logging to stderr.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *prog = "quorum";
static int threshold = QR_LOG_INFO;

void qr_log_init(const char *program, int level)
{
    prog = program;
    threshold = level;
    const char *env = getenv("QUORUM_LOG_LEVEL");
    if (env) {
        if (!strcmp(env, "debug"))
            threshold = QR_LOG_DEBUG;
        else if (!strcmp(env, "info"))
            threshold = QR_LOG_INFO;
        else if (!strcmp(env, "warn"))
            threshold = QR_LOG_WARN;
        else if (!strcmp(env, "error"))
            threshold = QR_LOG_ERROR;
    }
}

void qr_log(int level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (level < threshold)
        return;
    struct timespec ts;
    struct tm tm;
    char when[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ %s %s: %s\n", when, ts.tv_nsec / 1000000, prog,
            names[level < 0   ? 0
                  : level > 3 ? 3
                              : level],
            line);
}

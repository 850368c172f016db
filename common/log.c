/*
 * log.c - leveled logging to stderr, one line per event in key=value pairs
 * (logfmt), which journald stores as one entry each and grep, awk or a
 * log shipper split without guessing:
 *
 *   ts=2026-11-27T17:40:07.123Z level=warn prog=quorumd msg="redis: reconnecting"
 *
 * The message is always quoted, with '"' and '\' escaped and line breaks
 * and other control bytes written as \n, \r, \t or \xNN, so an event never
 * spans two lines. Under systemd (stderr is the journal's stream: the
 * JOURNAL_STREAM variable names its device and inode) the line starts with
 * the syslog priority, "<6>level=info msg=...", which journald turns into
 * the entry's PRIORITY and strips; ts and prog are left out there since the
 * journal records both itself.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *prog = "quorum";
static int threshold = QR_LOG_INFO;
static int journal; /* stderr is journald's stream */

/* JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected; it is
 * inherited by children whose stderr may be elsewhere, so it counts only
 * when it matches stderr itself. */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void qr_log_init(const char *program, int level)
{
    prog = program;
    threshold = level;
    journal = stderr_is_journal();
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

/* Appends s quoted and escaped (see the top) to out, which has room for
 * cap bytes; stops short, closing the quote, when it would overflow.
 * Returns the new length. */
static size_t append_quoted(char *out, size_t len, size_t cap, const char *s)
{
    size_t end = strlen(s);
    while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r'))
        end--; /* libpq's messages end in a newline */
    if (len + 2 >= cap)
        return len;
    out[len++] = '"';
    for (size_t i = 0; i < end; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        size_t n;
        if (c == '"' || c == '\\')
            n = (size_t)snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n')
            n = (size_t)snprintf(esc, sizeof esc, "\\n");
        else if (c == '\r')
            n = (size_t)snprintf(esc, sizeof esc, "\\r");
        else if (c == '\t')
            n = (size_t)snprintf(esc, sizeof esc, "\\t");
        else if (c < 0x20 || c == 0x7f)
            n = (size_t)snprintf(esc, sizeof esc, "\\x%02x", c);
        else {
            esc[0] = (char)c;
            n = 1;
        }
        if (len + n + 1 >= cap)
            break;
        memcpy(out + len, esc, n);
        len += n;
    }
    out[len++] = '"';
    return len;
}

void qr_log(int level, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    static const int priorities[] = {7, 6, 4, 3}; /* syslog: debug, info, warning, err */
    if (level < threshold)
        return;
    int l = level < 0 ? 0 : level > 3 ? 3 : level;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char line[4608];
    int n;
    if (journal) {
        n = snprintf(line, sizeof line, "<%d>level=%s msg=", priorities[l], names[l]);
    } else {
        struct timespec ts;
        struct tm tm;
        char when[32];
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        n = snprintf(line, sizeof line, "ts=%s.%03ldZ level=%s prog=%s msg=", when,
                     ts.tv_nsec / 1000000, names[l], prog);
    }
    if (n < 0 || (size_t)n >= sizeof line)
        return;
    size_t len = append_quoted(line, (size_t)n, sizeof line - 1, msg);
    line[len++] = '\n';
    /* One write per event, so lines of two threads never interleave. */
    fwrite(line, 1, len, stderr);
}

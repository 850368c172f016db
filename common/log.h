/*
 * log.h - one line per event on stderr, in key=value pairs:
 *   ts=2026-11-27T17:40:07.123Z level=warn prog=quorumd msg="text"
 * or, when stderr is journald's stream, "<4>level=warn msg="text"" (log.c
 * says why). The level threshold comes from qr_log_init (QUORUM_LOG_LEVEL
 * overrides). Thread-safe: each event is one fwrite.
 */
#ifndef QR_LOG_H
#define QR_LOG_H

enum { QR_LOG_DEBUG = 0, QR_LOG_INFO = 1, QR_LOG_WARN = 2, QR_LOG_ERROR = 3 };

void qr_log_init(const char *program, int level);
void qr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define qr_debug(...) qr_log(QR_LOG_DEBUG, __VA_ARGS__)
#define qr_info(...)  qr_log(QR_LOG_INFO, __VA_ARGS__)
#define qr_warn(...)  qr_log(QR_LOG_WARN, __VA_ARGS__)
#define qr_error(...) qr_log(QR_LOG_ERROR, __VA_ARGS__)

#endif

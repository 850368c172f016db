/*
 * log.h - one-line logs to stderr: "2026-11-27T17:40:07.123Z quorumd warn: text".
 * The level threshold comes from qr_log_init (QUORUM_LOG_LEVEL overrides).
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

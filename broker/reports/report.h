/*
 * report.h - how the reports answer: data and a status, never an HTTP
 * status (the API maps them: 200, 404, 422, 503).
 */
#ifndef QR_REPORT_H
#define QR_REPORT_H

typedef enum qr_report_status_e {
    QR_REPORT_OK = 0,      /* the data */
    QR_REPORT_NOT_FOUND,   /* no such project */
    QR_REPORT_INVALID,     /* the parameters cannot be answered */
    QR_REPORT_UNAVAILABLE, /* PostgreSQL failed or answered nonsense: retry */
} qr_report_status_t;

#endif

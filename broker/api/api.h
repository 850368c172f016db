/*
 * api.h - the HTTP API as the composition root sees it: the handlers and
 * wake the core calls (qr_api, given to qr_broker_start), and the route
 * table for `quorumd routes`.
 */
#ifndef QR_API_H
#define QR_API_H

#include <stdio.h>

#include "broker.h"

/* The head and request handlers and the long-poll wake (broker.h). */
extern const qr_broker_api_t qr_api;

/* Writes the route table, one JSON object a line (method, path with '*'
 * for ids, project, roles): what the isolation test enumerates. */
void qr_api_print_routes(FILE *f);

#endif

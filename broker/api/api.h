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

/* Writes the OpenAPI 3.1 document of the routes (GET /v1/openapi.json);
 * -1 (and why, on stderr) when a route has no description or a
 * description no route. */
int qr_api_print_openapi(FILE *f);

#endif

/*
 * routes.c - the route table: method, path, handler, roles, flags.
 */
#include "api_int.h"

const route_t qr_api_routes[] = {
    {"GET", "/healthz", h_healthz, 0, 0, 0},
    {"GET", "/readyz", h_readyz, 0, 0, 0},
    {"POST", "/v1/users", h_user_create, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"POST", "/v1/projects", h_project_create, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"POST", "/v1/tokens", h_token_create, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"GET", "/v1/tokens", h_token_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"DELETE", "/v1/tokens/*", h_token_revoke, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"POST", "/v1/certs", h_cert_add, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"GET", "/v1/certs", h_cert_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"DELETE", "/v1/certs/*", h_cert_revoke, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"GET", "/v1/projects/*", h_project_get, QR_ROLE_ANY, 1, 0},
    {"POST", "/v1/projects/*/pause", h_project_pause, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"POST", "/v1/projects/*/resume", h_project_pause, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"POST", "/v1/projects/*/tasks", h_import, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_IMPORT | ROUTE_NOT_VENDOR},
    {"POST", "/v1/projects/*/leases", h_lease, QR_ROLE_LEASE, 1, 0},
    {"POST", "/v1/projects/*/leases/*/heartbeat", h_heartbeat, QR_ROLE_LEASE, 1, 0},
    {"POST", "/v1/projects/*/leases/*/submit", h_submit, QR_ROLE_LEASE, 1, 0},
    {"POST", "/v1/projects/*/leases/*/release", h_release, QR_ROLE_LEASE, 1, 0},
    {"POST", "/v1/projects/*/leases/*/skip", h_release, QR_ROLE_LEASE, 1, 0},
    {"POST", "/v1/projects/*/submit", h_batch_submit, QR_ROLE_LEASE, 1, 0},
    {"POST", "/v1/projects/*/annotations/*/undo", h_undo, QR_ROLE_LEASE, 1, 0},
    {"GET", "/v1/projects/*/progress", h_progress, QR_ROLE_ANY, 1, 0},
    {"GET", "/v1/projects/*/agreement", h_agreement,
     QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER, 1, ROUTE_NOT_VENDOR},
    {"GET", "/v1/projects/*/throughput", h_throughput,
     QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER, 1, 0},
    /* Metrics cover every organization's projects: admins only. */
    {"GET", "/metrics", h_metrics, QR_ROLE_ADMIN, 0, ROUTE_METRICS},
    {"GET", "/v1/projects/*/export", h_export, QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER,
     1, 0},
    {"GET", "/v1/projects/*/report", h_report, QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER,
     1, 0},
    {"POST", "/v1/organizations", h_org_create, QR_ROLE_ADMIN, 0, 0},
    {"GET", "/v1/organizations", h_org_list, QR_ROLE_ADMIN, 0, 0},
    {"GET", "/v1/projects/*/shares", h_share_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"PUT", "/v1/projects/*/shares/*", h_share_put, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"DELETE", "/v1/projects/*/shares/*", h_share_delete, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
};

const size_t qr_api_nroutes = sizeof qr_api_routes / sizeof qr_api_routes[0];

/*
 * routes.c - the route table: method, path, handler, roles, flags.
 */
#include "api_int.h"
#include "protocol.h"

const route_t qr_api_routes[] = {
    {"GET", QR_API_HEALTHZ, h_healthz, 0, 0, 0},
    {"GET", QR_API_READYZ, h_readyz, 0, 0, 0},
    {"GET", QR_API_WHOAMI, h_whoami, QR_ROLE_ANY, 0, 0},
    {"POST", QR_API_USERS, h_user_create, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"POST", QR_API_PROJECTS, h_project_create, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"POST", QR_API_TOKENS, h_token_create, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"GET", QR_API_TOKENS, h_token_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"DELETE", QR_API_TOKEN("*"), h_token_revoke, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"POST", QR_API_CERTS, h_cert_add, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"GET", QR_API_CERTS, h_cert_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"DELETE", QR_API_CERT("*"), h_cert_revoke, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 0, 0},
    {"GET", QR_API_PROJECT("*"), h_project_get, QR_ROLE_ANY, 1, 0},
    {"POST", QR_API_PAUSE("*"), h_project_pause, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"POST", QR_API_RESUME("*"), h_project_pause, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"POST", QR_API_TASKS("*"), h_import, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_IMPORT | ROUTE_NOT_VENDOR},
    {"GET", QR_API_IMPORTS("*"), h_import_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"POST", QR_API_LEASES("*"), h_lease, QR_ROLE_LEASE, 1, 0},
    {"POST", QR_API_LEASE_HEARTBEAT("*", "*"), h_heartbeat, QR_ROLE_LEASE, 1, 0},
    {"POST", QR_API_LEASE_SUBMIT("*", "*"), h_submit, QR_ROLE_LEASE, 1, 0},
    {"POST", QR_API_LEASE_RELEASE("*", "*"), h_release, QR_ROLE_LEASE, 1, 0},
    {"POST", QR_API_LEASE_SKIP("*", "*"), h_release, QR_ROLE_LEASE, 1, 0},
    {"POST", QR_API_BATCH_SUBMIT("*"), h_batch_submit, QR_ROLE_LEASE, 1, 0},
    {"POST", QR_API_UNDO("*", "*"), h_undo, QR_ROLE_LEASE, 1, 0},
    {"GET", QR_API_PROGRESS("*"), h_progress, QR_ROLE_ANY, 1, 0},
    {"GET", QR_API_AGREEMENT("*"), h_agreement, QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER,
     1, ROUTE_NOT_VENDOR},
    {"GET", QR_API_THROUGHPUT("*"), h_throughput,
     QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER, 1, 0},
    /* Metrics cover every organization's projects: admins only. */
    {"GET", QR_API_METRICS, h_metrics, QR_ROLE_ADMIN, 0, ROUTE_METRICS},
    {"GET", QR_API_EXPORT("*"), h_export, QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER, 1, 0},
    {"GET", QR_API_REPORT("*"), h_report, QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER, 1, 0},
    {"POST", QR_API_ORGANIZATIONS, h_org_create, QR_ROLE_ADMIN, 0, 0},
    {"GET", QR_API_ORGANIZATIONS, h_org_list, QR_ROLE_ADMIN, 0, 0},
    {"GET", QR_API_SHARES("*"), h_share_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1, ROUTE_NOT_VENDOR},
    {"PUT", QR_API_SHARE("*", "*"), h_share_put, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"DELETE", QR_API_SHARE("*", "*"), h_share_delete, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    /* Webhooks see every organization's annotations: the owner's admins and managers only. */
    {"POST", QR_API_WEBHOOKS("*"), h_webhook_create, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"GET", QR_API_WEBHOOKS("*"), h_webhook_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"DELETE", QR_API_WEBHOOK("*", "*"), h_webhook_delete, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"GET", QR_API_DELIVERIES("*", "*"), h_webhook_deliveries, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
};

const size_t qr_api_nroutes = sizeof qr_api_routes / sizeof qr_api_routes[0];

/*
 * routes.c - the route table: method, path, handler, roles, flags.
 */
#include "api_int.h"
#include "protocol.h"

const route_t qr_api_routes[] = {
    {"GET", QR_API_HEALTHZ, h_healthz, 0, 0, 0},
    {"GET", QR_API_READYZ, h_readyz, 0, 0, 0},
    {"GET", QR_API_OPENAPI, h_openapi, 0, 0, 0},
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
    {"POST", QR_API_REINSTATE("*", "*"), h_annotator_reinstate, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"POST", QR_API_TASKS("*"), h_import, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_IMPORT | ROUTE_NOT_VENDOR},
    {"GET", QR_API_IMPORTS("*"), h_import_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"PUT", QR_API_PREDICTIONS("*"), h_predictions, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_STREAM | ROUTE_NOT_VENDOR},
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
    /* One task and its annotations (api_task.c): a vendor's crew's only. */
    {"GET", QR_API_TASK("*", "*"), h_task_get, QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER,
     1, 0},
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
    /* Project and user management (api_manage.c). */
    {"GET", QR_API_PROJECTS, h_project_list, QR_ROLE_ANY, 0, 0},
    {"PATCH", QR_API_PROJECT("*"), h_project_update, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"DELETE", QR_API_PROJECT("*"), h_project_delete, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"POST", QR_API_ARCHIVE("*"), h_project_archive, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"POST", QR_API_UNARCHIVE("*"), h_project_archive, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"GET", QR_API_USERS, h_user_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER, 0, 0},
    /* Webhooks see every organization's annotations: the owner's admins and managers only. */
    {"POST", QR_API_WEBHOOKS("*"), h_webhook_create, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"GET", QR_API_WEBHOOKS("*"), h_webhook_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"DELETE", QR_API_WEBHOOK("*", "*"), h_webhook_delete, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"GET", QR_API_DELIVERIES("*", "*"), h_webhook_deliveries, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    /* Review (api_review.c): the owner's reviewers, managers and admins; a
     * reviewer sees every annotator's answer, so no vendor. */
    {"POST", QR_API_REVIEW_LEASES("*"), h_review_lease, QR_ROLE_REVIEW, 1, ROUTE_NOT_VENDOR},
    {"POST", QR_API_REVIEW_LEASE_SUBMIT("*", "*"), h_review_submit, QR_ROLE_REVIEW, 1,
     ROUTE_NOT_VENDOR},
    {"POST", QR_API_REVIEW_LEASE_HEARTBEAT("*", "*"), h_review_heartbeat, QR_ROLE_REVIEW, 1,
     ROUTE_NOT_VENDOR},
    {"POST", QR_API_REVIEW_LEASE_RELEASE("*", "*"), h_review_release, QR_ROLE_REVIEW, 1,
     ROUTE_NOT_VENDOR},
    /* Selecting tasks for review is the owner's managers' and admins'. */
    {"POST", QR_API_REVIEW_SELECT("*"), h_review_select, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    /* Relabel rounds (api_rounds.c): the owner's managers and admins open
     * them; its reviewers may read the list too. */
    {"POST", QR_API_ROUNDS("*"), h_round_open, QR_ROLE_ADMIN | QR_ROLE_MANAGER, 1,
     ROUTE_NOT_VENDOR},
    {"GET", QR_API_ROUNDS("*"), h_round_list, QR_ROLE_ADMIN | QR_ROLE_MANAGER | QR_ROLE_REVIEWER, 1,
     ROUTE_NOT_VENDOR},
};

const size_t qr_api_nroutes = sizeof qr_api_routes / sizeof qr_api_routes[0];

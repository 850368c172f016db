/*
 * ctl_openapi.c - `quorumctl openapi`.
 */
#include "ctl_openapi.h"

#include <string.h>

#include "cli.h"
#include "protocol.h"

static const char *const prog = "quorumctl";

static const char openapi_help[] =
    "Usage: quorumctl openapi [CONNECTION FLAGS]\n"
    "\n"
    "Prints the broker's OpenAPI 3.1 document: every route of the API with its\n"
    "parameters, request body, answers and error codes, and the roles that may\n"
    "call it (x-quorum-roles). Feed it to a code generator or an API client.\n"
    "\n"
    "Reads:  GET /v1/openapi.json of the broker.\n"
    "Writes: the document (JSON) on stdout, as the broker sent it.\n"
    "\n"
    "Examples:\n"
    "  quorumctl openapi > quorum-openapi.json\n"
    "  quorumctl openapi | jq -r '.paths | keys[]'\n"
    "\n"
    "%s"
    "\n"
    "Exit codes: 0 success, 1 broker or network error, 2 usage error.\n";

int qr_ctl_openapi(int argc, char **argv, qr_client_config_t *cfg)
{
    for (int i = 1; i < argc; i++) {
        int r;
        if (qr_cli_is_help(argv[i])) {
            qr_cli_help(stdout, openapi_help);
            return QR_EXIT_OK;
        }
        if ((r = qr_cli_config_flag(cfg, prog, argc, argv, &i)) != 0) {
            if (r < 0)
                return QR_EXIT_USAGE;
            continue;
        }
        return qr_cli_usage_error(prog, "openapi ", "openapi: unexpected argument '%s'", argv[i]);
    }
    return qr_cli_request(prog, cfg, "GET", QR_API_OPENAPI, NULL, QR_CLI_ECHO, NULL);
}

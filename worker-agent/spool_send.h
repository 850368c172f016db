/*
 * spool_send.h - delivering what the spool holds: whose each record is (the
 * deployment and user it was made for; see the top of session.h), the
 * re-keying of older records, the sending of results (batch submit) and of
 * label's skips, releases and undos, and the `spool` command's listing and
 * --send.
 */
#ifndef QR_AGENT_SPOOL_SEND_H
#define QR_AGENT_SPOOL_SEND_H

#include "client.h"
#include "session.h"
#include "spool.h"

#include <stddef.h>

/* Spooled records the agent does not send, by why (agent_flush_spool). */
typedef struct agent_foreign_s {
    size_t deployment; /* made for another deployment */
    size_t user;       /* made for another user of this deployment */
    size_t old;        /* older format, for another broker URL or token, or a
                          simulate run's (no owner) */
} agent_foreign_t;

/*
 * Sends every spooled record of this deployment and user (asking whoami
 * first when not known yet): results by batch submit, 100 at a time, then
 * label's skips, releases and undos one by one, removing each that is
 * answered. Older-format records of this URL and token are re-keyed first.
 * The others stay spooled and are counted by why in *foreign (may be NULL).
 * Returns 0, AGENT_STOPPED, or a negative QR_EXIT_* code.
 */
int agent_flush_spool(agent_sess_t *s, agent_foreign_t *foreign);

/* One line on stderr per kind of spooled record not sent (none: nothing),
 * with its count and why. Returns the total. */
size_t agent_say_foreign(const agent_t *ag, const agent_foreign_t *f);

/* `quorum-agent spool`: lists the pending records of sp (a table, or one
 * JSON object per line with as_json). */
void agent_spool_list(const qr_spool_t *sp, int as_json);

/* `quorum-agent spool --send`: sends sp's records of the deployment and
 * user of cfg's broker and token, prints what happened, and returns the
 * exit code (QR_EXIT_PENDING when anything was not sent). */
int agent_spool_send(qr_spool_t *sp, const qr_client_config_t *cfg);

#endif

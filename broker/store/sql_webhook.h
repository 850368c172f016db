/*
 * sql_webhook.h - the SQL of webhooks (sql/0022_webhooks.sql): the API's
 * subscriptions and delivery log, and the dispatcher's claim and outcome
 * statements. Parameters are always bound. Events themselves are written by
 * the triggers of 0022, never from here.
 */
#ifndef QR_SQL_WEBHOOK_H
#define QR_SQL_WEBHOOK_H

#define QR_SQL_WEBHOOK_TS(col)                                                                     \
    "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* $1 project, $2 url, $3 events (text array literal), $4 sealed secret,
 * $5 creator, $6 the most webhooks a project may have -> id, created_at
 * (no row: the project has that many already). */
#define QR_SQL_WEBHOOK_CREATE                                                                      \
    "INSERT INTO webhooks (project_id, url, events, secret_sealed, created_by)"                    \
    " SELECT $1, $2, $3::text[], $4, $5"                                                           \
    " WHERE (SELECT count(*) FROM webhooks WHERE project_id = $1) < $6::int"                       \
    " RETURNING id, " QR_SQL_WEBHOOK_TS("created_at")

/* $1 project -> its webhooks as one JSON array (never the secret), with the
 * count of deliveries in each state. */
#define QR_SQL_WEBHOOK_LIST                                                                        \
    "SELECT coalesce(json_agg(json_build_object('id', w.id, 'url', w.url, 'events', w.events,"     \
    "  'created_at', " QR_SQL_WEBHOOK_TS(                                                          \
        "w.created_at") ","                                                                        \
                        "  'pending', (SELECT count(*) FROM webhook_deliveries d"                  \
                        "     WHERE d.webhook_id = w.id AND d.state = 'pending'),"                 \
                        "  'delivered', (SELECT count(*) FROM webhook_deliveries d"                \
                        "     WHERE d.webhook_id = w.id AND d.state = 'delivered'),"               \
                        "  'failed', (SELECT count(*) FROM webhook_deliveries d"                   \
                        "     WHERE d.webhook_id = w.id AND d.state = 'failed')) ORDER BY w.id), " \
                        "'[]')::text"                                                              \
                        " FROM webhooks w WHERE w.project_id = $1"

/* $1 webhook, $2 project -> its id once deleted with its deliveries (no
 * row: no such webhook in the project). */
#define QR_SQL_WEBHOOK_DELETE "DELETE FROM webhooks WHERE id = $1 AND project_id = $2 RETURNING id"

/* $1 webhook, $2 project, $3 after this delivery id, $4 limit -> the
 * webhook's deliveries after $3 in id order as one JSON array; NULL when
 * the project has no such webhook. */
#define QR_SQL_WEBHOOK_DELIVERIES                                                                                                                             \
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM webhooks WHERE id = $1 AND project_id = $2) THEN"                                                                 \
    " (SELECT coalesce(json_agg(json_build_object('id', x.id, 'event_id', x.uid,"                                                                             \
    "   'event', x.type, 'state', x.state, 'attempts', x.attempts,"                                                                                           \
    "   'last_status', x.last_status, 'last_error', x.last_error,"                                                                                            \
    "   'created_at', " QR_SQL_WEBHOOK_TS(                                                                                                                    \
        "x.created_at") ","                                                                                                                                   \
                        "   'last_attempt_at', " QR_SQL_WEBHOOK_TS(                                                                                           \
                            "x.last_attempt_at") ","                                                                                                          \
                                                 "   'next_attempt_at', CASE WHEN x.state = "                                                                 \
                                                 "'pending' THEN " QR_SQL_WEBHOOK_TS(                                                                         \
                                                     "x.next_attempt_at") " END,"                                                                             \
                                                                          "   "                                                                               \
                                                                          "'delivered_at',"                                                                   \
                                                                          " " QR_SQL_WEBHOOK_TS(                                                              \
                                                                              "x.delivered_at") ") ORDER BY x.id), '[]')"                                     \
                                                                                                "  FROM (SELECT d.*, e.uid, e.type FROM webhook_deliveries d" \
                                                                                                "   JOIN webhook_events e ON e.id = d.event_id"               \
                                                                                                "   WHERE d.webhook_id = $1 AND d.id > $3::bigint ORDER BY d.id LIMIT $4::int) x)::text END"

/* The dispatcher's claim: up to $1 due deliveries, each pushed $2 seconds
 * ahead so that no other broker takes it meanwhile (a broker that dies with
 * it in flight leaves it to be retried then: at least once), and counted as
 * an attempt -> delivery id, attempt number, url, sealed secret, event uid,
 * event type, the body to post (JSON text), event age in seconds. */
#define QR_SQL_WEBHOOK_CLAIM                                                                       \
    "WITH due AS (SELECT id FROM webhook_deliveries WHERE state = 'pending'"                       \
    "   AND next_attempt_at <= now() ORDER BY next_attempt_at, id LIMIT $1::int"                   \
    "   FOR UPDATE SKIP LOCKED),"                                                                  \
    " c AS (UPDATE webhook_deliveries d SET attempts = d.attempts + 1, last_attempt_at = now(),"   \
    "   next_attempt_at = now() + make_interval(secs => $2::double precision)"                     \
    "   FROM due WHERE d.id = due.id RETURNING d.id, d.attempts, d.webhook_id, d.event_id)"        \
    " SELECT c.id, c.attempts, w.url, w.secret_sealed, e.uid::text, e.type,"                       \
    "  json_build_object('id', e.uid, 'type', e.type, 'project_id', e.project_id,"                 \
    "   'created_at', " QR_SQL_WEBHOOK_TS(                                                         \
        "e.created_at") ", 'data', e.payload)::text,"                                              \
                        "  extract(epoch FROM now() - e.created_at)::bigint"                       \
                        " FROM c JOIN webhooks w ON w.id = c.webhook_id JOIN webhook_events e ON " \
                        "e.id = c.event_id"                                                        \
                        " ORDER BY c.id"

/* $1 a JSON array of outcomes, each {id, ok, status (absent: no answer),
 * why, delay_ms, give_up}: a delivery is delivered when ok, else its next
 * attempt is delay_ms away, or it failed for good with give_up. last_error
 * keeps why the last failed attempt failed, also once delivered (the log). */
#define QR_SQL_WEBHOOK_OUTCOMES                                                                    \
    "UPDATE webhook_deliveries d SET"                                                              \
    " state = CASE WHEN u.ok THEN 'delivered' WHEN u.give_up THEN 'failed' ELSE 'pending' END,"    \
    " delivered_at = CASE WHEN u.ok THEN now() END, last_status = u.status,"                       \
    " last_error = CASE WHEN u.ok THEN d.last_error ELSE u.why END,"                               \
    " next_attempt_at = CASE WHEN u.ok THEN d.next_attempt_at"                                     \
    "   ELSE now() + make_interval(secs => u.delay_ms / 1000.0) END"                               \
    " FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, ok boolean, status integer, why text,"    \
    "   delay_ms double precision, give_up boolean)"                                               \
    " WHERE d.id = u.id"

/* Retention: $1 seconds, $2 at most this many events -> one row per event
 * deleted (with its deliveries, by cascade): events older than $1 none of
 * whose deliveries is still pending (delivered, or failed for good). Oldest
 * first; the dispatcher runs it again while it deletes $2. */
#define QR_SQL_WEBHOOK_PRUNE                                                                       \
    "DELETE FROM webhook_events e WHERE e.id IN (SELECT o.id FROM webhook_events o"                \
    "  WHERE o.created_at < now() - make_interval(secs => $1::double precision)"                   \
    "  AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = o.id"                 \
    "    AND d.state = 'pending')"                                                                 \
    "  ORDER BY o.created_at LIMIT $2::int) RETURNING e.id"

#endif

/*
 * sql_work.h - the one definition of the crew's working time, its rate and
 * its pace, shared by the project report (store.h, QR_SQL_REPORT) and the
 * throughput report (sql_analytics.h); docs/API.md and docs/THROUGHPUT.md
 * say the same in words.
 *
 * Working time of a run of annotations (those of the crew in scope, in
 * time order): for each annotation, the time since the annotation stored
 * just before it, when that gap is at most the idle threshold; a longer
 * gap is a pause and counts for nothing. So a crew that works 40 s, stops
 * for a night and works 40 s more has worked 80 s. A rate is annotations
 * divided by working time. The pace is that rate over the annotations of a
 * short span ending at the latest one (the last 10 minutes of work); the
 * ETA divides the annotations still needed by the pace.
 */
#ifndef QR_SQL_WORK_H
#define QR_SQL_WORK_H

// clang-format off

/* The gap in ms before each row, rows ordered by the timestamp column at
 * (a window function: use it in the select list of the rows). */
#define QR_SQL_GAP_MS(at) \
    "(extract(epoch FROM " at " - lag(" at ") OVER (ORDER BY " at "))::float8 * 1000)"

/* The working time in ms of rows carrying such a gap column, pauses longer
 * than idle_ms (an SQL expression) left out (an aggregate). */
#define QR_SQL_WORK_MS(gap, idle_ms) \
    "coalesce(sum(" gap ") FILTER (WHERE " gap " <= " idle_ms "), 0)"

// clang-format on

#endif

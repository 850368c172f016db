/*
 * lease_scripts.h - the lease engine's Lua scripts, one per multi-key step
 * (see lease.h for the key layout). Private to the engine: lease.c
 * registers them with the Redis client and calls them; quorumd print-script
 * and the benchmark read their text through qr_lease_script_text.
 */
#ifndef QR_LEASE_SCRIPTS_H
#define QR_LEASE_SCRIPTS_H

/* The scripts, as indexes into qr_lease_scripts. */
typedef enum qr_lease_script_id_e {
    QR_LEASE_SCRIPT_GRANT,
    QR_LEASE_SCRIPT_SEED,
    QR_LEASE_SCRIPT_TOUCH,
    QR_LEASE_SCRIPT_REGRANT,
    QR_LEASE_SCRIPT_END,
    QR_LEASE_SCRIPT_REAP,
    QR_LEASE_SCRIPT_WINDOW_ADD,
    QR_LEASE_SCRIPT_REFILL_BEGIN,
    QR_LEASE_SCRIPT_INIT,
    QR_LEASE_SCRIPT_REFILL_END,
    QR_LEASE_NSCRIPTS
} qr_lease_script_id_t;

typedef struct qr_lease_script_def_s {
    const char *name; /* as quorumd print-script takes it */
    const char *lua;  /* the script's text */
} qr_lease_script_def_t;

/* Indexed by qr_lease_script_id_t; static storage. */
extern const qr_lease_script_def_t qr_lease_scripts[QR_LEASE_NSCRIPTS];

#endif

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
    QR_LEASE_SCRIPT_RESCORE,
    QR_LEASE_SCRIPT_REFILL_BEGIN,
    QR_LEASE_SCRIPT_INIT,
    QR_LEASE_SCRIPT_REFILL_END,
    QR_LEASE_SCRIPT_DROP,
    QR_LEASE_SCRIPT_GOLD_LOAD,
    QR_LEASE_SCRIPT_PAUSE,
    QR_LEASE_NSCRIPTS
} qr_lease_script_id_t;

/* The most keys a script takes. */
#define QR_LEASE_MAX_KEYS 24

/* A script and the keys it takes. Every key a script reads or writes is one
 * of the project's, {p:P}:<name>, passed in KEYS in the order of keys[]; a
 * script builds no key name of its own, so all of a call's keys are known
 * to Redis and lie in the project's hash slot (Redis Cluster's rule). The
 * text starts with `local <names> = unpack(KEYS)`, the same names in the
 * same order, and uses the keys by those names. */
typedef struct qr_lease_script_def_s {
    const char *name;                        /* as quorumd print-script takes it */
    const char *lua;                         /* the script's text */
    const char *keys[QR_LEASE_MAX_KEYS + 1]; /* key names, NULL-terminated */
} qr_lease_script_def_t;

/* Indexed by qr_lease_script_id_t; static storage. */
extern const qr_lease_script_def_t qr_lease_scripts[QR_LEASE_NSCRIPTS];

#endif

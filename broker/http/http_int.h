/*
 * http_int.h - what the files of quorumd's HTTPS server share, and nothing
 * outside broker/http/ may include: the server, connection and request
 * structs and the functions one file calls in another.
 *
 *   http.c          the server: listening, accepting, a connection's life
 *                   (deadline, reading, closing), the lifetime rules
 *   http_tls.c      TLS over the two memory BIOs: the handshake, decrypting
 *                   into the input buffer, encrypting and writing out
 *   http_parse.c    the http-parser callbacks, the head rules, the head
 *                   stage and the body budget (qr_http_continue), and the
 *                   parse-only entry point of the fuzz harness
 *   http_respond.c  the response: its format, the server's own error
 *                   answers, qr_http_respond
 *
 * The public interface and the limits are in http.h; the lifetime rules that
 * every callback relies on are at the top of http.c; each function below has
 * its contract above its definition.
 */
#ifndef QR_HTTP_INT_H
#define QR_HTTP_INT_H

#include <http_parser.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"
#include "util.h"

#define DEFAULT_MAX_HEADER_BYTES     16384
#define DEFAULT_MAX_BODY_BYTES       ((size_t)64 << 20)
#define DEFAULT_MAX_BODY_TOTAL_BYTES ((size_t)128 << 20)
#define DEFAULT_IDLE_TIMEOUT_MS      30000
#define DEFAULT_MAX_CONNECTIONS      10000

#define READ_BUF_BYTES 65536 /* one socket read, shared by all connections */
#define TLS_READ_BYTES 16384 /* one SSL_read: a full TLS record */

typedef struct conn_s conn_t;
typedef struct req_s req_t;

/* Where a request is: with the head handler (its body not read yet), its
 * body being read, or complete with the request handler. */
enum req_stage { STAGE_HEAD, STAGE_BODY, STAGE_FULL };

enum conn_state {
    CONN_OPEN,     /* TLS handshake or HTTP in progress */
    CONN_DRAINING, /* last bytes queued; waiting for them and for the client's EOF */
    CONN_CLOSED,   /* uv_close called; freed in the last close callback */
};

/* Which request header the value being parsed belongs to. */
enum header_slot { SLOT_NONE, SLOT_AUTH, SLOT_CTYPE, SLOT_EXPECT };

struct qr_http_server_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    SSL_CTX *ssl_ctx;
    qr_http_handler_cb handler;
    qr_http_handler_cb head_handler; /* sees each head before its body is read, or NULL */
    void *user;
    size_t max_header_bytes;
    size_t max_body_bytes;
    size_t body_budget;   /* bytes all bodies being read or held may reserve; 0 = no bound */
    size_t body_reserved; /* bytes reserved now by requests past their head */
    conn_t *parked_head;  /* connections waiting for body budget, oldest first */
    conn_t *parked_tail;  /* the newest of them */
    int waking;           /* qr_http_budget_wake is on the stack */
    uv_prepare_t tick;    /* counts the loop's turns (iteration) */
    uv_idle_t resume;     /* active while connections wait to read again */
    uint64_t iteration;   /* turns of the loop so far */
    conn_t *throttled;    /* connections that read their slice this turn */
    int aux_handles;      /* tick and resume initialised */
    uint64_t idle_timeout_ms;
    int max_connections;
    char *client_ca_file;    /* verify client certificates against it, or NULL */
    int require_client_cert; /* no client certificate: no handshake */
    uint64_t refusals;       /* connections answered 503 past max_connections */
    int port;
    conn_t *conns;                /* connections not yet closing, doubly linked */
    int nconns;                   /* entries in conns */
    int64_t accepted_ms;          /* the last connection accepted (qr_mono_ms), 0: none */
    int live;                     /* listener + connections not yet freed */
    int closing;                  /* qr_http_server_close was called */
    int draining;                 /* qr_http_server_drain: no keep-alive any more */
    int listener_closed;          /* uv_close was called on the listener */
    void (*close_cb)(void *arg);  /* run once everything is freed */
    void *close_arg;              /* its argument */
    char readbuf[READ_BUF_BYTES]; /* safe to share: each read is consumed in its callback */
};

struct conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;           /* request deadline, then lingering-close bound */
    uv_shutdown_t shutdown_req; /* our FIN, after the last write */
    qr_http_server_t *srv;      /* borrowed; outlives the connection */
    conn_t *prev, *next;        /* in srv->conns while not closing */
    SSL *ssl;                   /* owns rbio and wbio */
    BIO *rbio;                  /* ciphertext from the socket */
    BIO *wbio;                  /* ciphertext for the socket */
    http_parser parser;         /* parser.data = this connection */
    enum conn_state state;      /* see enum conn_state */
    int handles;                /* initialised handles not yet closed */
    int reading;                /* uv_read_start is in effect */
    int handshake_done;         /* TLS established */
    int tls_failed;             /* fatal TLS error: no SSL_shutdown */
    int peer_done;              /* client sent close_notify */
    int refused;                /* over max_connections: gets a 503 */
    int in_process;             /* qr_http_conn_process is on the stack */
    int in_head;                /* parsing a request line or headers */
    size_t head_bytes;          /* bytes of the current head so far */
    int fail_status;            /* a parser callback refused the request (413, 400...) */
    int head_scan;              /* where head_check is in the head (enum head_scan, http_parse.c) */
    int head_cr;                /* head_check's last byte was a CR */
    int discard_message;        /* the rest of an answered head-only request: drop it */
    int close_after_discard;    /* a streamed body answered early: close once it is dropped */
    int finish_now;             /* that body ended: qr_http_conn_process closes the connection */
    int stream_paused;          /* the handler paused a streamed body (qr_http_stream_pause) */
    size_t body_count;          /* bytes of the current body so far (held or streamed) */
    size_t body_limit;          /* the current request's body limit (qr_http_continue) */
    req_t *head_ready;          /* head parsed, not yet handed to the head handler */
    req_t *body_req;            /* head accepted, body being read */
    conn_t *park_next;          /* in srv's parked list, waiting for body budget */
    int parked;                 /* in that list */
    size_t body_need;           /* budget the parked request waits for */
    uint64_t read_turn;         /* the loop turn read_bytes counts for */
    size_t read_bytes;          /* bytes read in that turn */
    int throttled;              /* reading stopped until the next turn */
    conn_t *throttle_next;      /* in srv->throttled */
    size_t out_bytes;           /* ciphertext handed to uv_write, not yet written */
    qr_buf_t in;                /* decrypted bytes not yet parsed */
    qr_buf_t url;               /* request target of the request being parsed */
    qr_buf_t field;             /* header name being parsed */
    qr_buf_t body;              /* body of the request being parsed */
    qr_buf_t auth, ctype, expect;        /* the headers we keep */
    int has_auth, has_ctype, has_expect; /* seen in this request */
    enum header_slot slot;               /* where the current header value goes */
    int value_started;                   /* last header callback was a value */
    req_t *ready;                        /* parsed, not yet handed to the handler */
    req_t *inflight;                     /* with the handler, not yet answered */
    char peer[64];                       /* "ip:port" */
    char client_cert[65];                /* verified client certificate's SHA-256, or "" */
};

struct req_s {
    qr_http_request_t pub;     /* pub.priv_ points back here */
    conn_t *conn;              /* NULL once answered or the connection is gone */
    int keep_alive;            /* the client allows another request */
    int head;                  /* HEAD request: headers only */
    qr_http_gone_cb gone_cb;   /* run once if conn goes first (qr_http_on_gone) */
    void *gone_arg;            /* its argument */
    int stage;                 /* enum req_stage */
    int64_t content_length;    /* from the head; -1 for chunked */
    int expect_continue;       /* the client waits for 100 Continue before its body */
    size_t reserved;           /* bytes of srv->body_reserved held for this request */
    int continued;             /* between qr_http_continue and the request handler: ours */
    int stream;                /* the body goes to chunk_cb, not to memory */
    qr_http_chunk_cb chunk_cb; /* qr_http_continue_stream's callbacks and their argument */
    qr_http_end_cb end_cb;
    void *stream_arg;
    qr_http_server_t *srv; /* for the budget, when conn is gone */
    char *path, *query, *auth, *ctype, *body;
    char peer[64];
    char client_cert[65];      /* "" when the client sent no verified certificate */
    int http10;                /* an HTTP/1.0 request: no chunked encoding */
    int streaming;             /* its head was sent by qr_http_stream_start */
    int stream_keep;           /* the connection may carry another request after it */
    qr_http_drain_cb drain_cb; /* qr_http_stream_on_drain, cleared when it runs */
    void *drain_arg;           /* its argument */
};

/* --- http.c: a connection's life ------------------------------------------ */

void qr_http_conn_abort(conn_t *c);
void qr_http_conn_finish(conn_t *c, int notify);
void qr_http_conn_maybe_finish(conn_t *c);
void qr_http_conn_update_reading(conn_t *c);
void qr_http_conn_on_timer(uv_timer_t *t);

/* --- http_tls.c: TLS over the memory BIOs --------------------------------- */

int qr_http_tls_flush(conn_t *c);
int qr_http_tls_send(conn_t *c, const char *data, size_t len);
void qr_http_tls_pump(conn_t *c);
int qr_http_tls_conn_init(conn_t *c);
SSL_CTX *qr_http_tls_ctx(const char *cert_file, const char *key_file, const char *client_ca,
                         int require_client_cert, char *err, size_t errlen);

/* --- http_parse.c: requests, the head stage, the body budget -------------- */

void qr_http_conn_process(conn_t *c);
void qr_http_req_free(req_t *r);
void qr_http_unpark(conn_t *c);
void qr_http_budget_wake(qr_http_server_t *srv);

/* --- http_respond.c: responses -------------------------------------------- */

void qr_http_format_response(qr_buf_t *out, int status, const char *content_type, const char *body,
                             size_t body_len, const char *extra_headers, int keep_alive,
                             int head_only);
void qr_http_send_error(conn_t *c, int status);
void qr_http_stream_drained(conn_t *c);

#endif

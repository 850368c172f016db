/*
 * api_ui.c - the web pages at /ui/: the team lead's dashboard and the
 * annotators' labeler, served from the bytes CMake built into the binary
 * (broker/ui/, cmake/embed.cmake).
 *
 * The pages hold no data and need no authentication: they are the same for
 * everyone, and everything they show comes from the API, called by the
 * browser with the user's own token, so what the API refuses the pages
 * cannot show. They are answered from the request's head, before route
 * matching: they are not API routes (no role, no project), so they stay out
 * of the route table, `quorumd routes`, the isolation table and the OpenAPI
 * document.
 *
 * A page is found by its exact name in the embedded set (ui_files.c,
 * written by CMake from the list in broker/CMakeLists.txt), never through
 * the file system: no path, "..", percent-encoding or NUL can reach
 * anything but those files; any other name under /ui/ is 404. One name
 * stands for a page: /ui/label/N (N a project id) is the labeler.
 */
#include "api_int.h"

/* One embedded page (ui_files.c). */
typedef struct {
    const char *name;          /* "app.js": the path under /ui/ */
    const unsigned char *data; /* its bytes, NUL after them */
    const size_t *len;         /* bytes, without the NUL */
} ui_file_t;

extern const ui_file_t qr_ui_files[];
extern const size_t qr_ui_nfiles;

/* Every page's headers. The policy lets in scripts and styles of this
 * origin only (no inline script, no eval), fetches to this origin only (the
 * API), images of this origin or data: URLs, and no framing (clickjacking);
 * no-cache makes a browser ask again, so a new broker's pages show at once. */
#define UI_HEADERS_IMG(img)                                                                        \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "           \
    "img-src " img "; connect-src 'self'; base-uri 'none'; form-action 'none'; "                   \
    "frame-ancestors 'none'\r\n"                                                                   \
    "X-Content-Type-Options: nosniff\r\n"                                                          \
    "X-Frame-Options: DENY\r\n"                                                                    \
    "Referrer-Policy: no-referrer\r\n"                                                             \
    "Cache-Control: no-cache\r\n"
#define UI_HEADERS UI_HEADERS_IMG("'self' data:")
/* The labeler shows the task's image from wherever its URL points (a box
 * field's "over"): images only, never scripts or fetches. */
#define UI_HEADERS_LABELER UI_HEADERS_IMG("'self' data: https:")

static const char *type_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot)
        return "application/octet-stream";
    if (!strcmp(dot, ".html"))
        return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js"))
        return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css"))
        return "text/css; charset=utf-8";
    if (!strcmp(dot, ".svg"))
        return "image/svg+xml";
    return "application/octet-stream";
}

static void respond_json_error(qr_http_request_t *req, int status, const char *code,
                               const char *message, const char *headers)
{
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    qr_http_respond(req, status, "application/json", s, s ? strlen(s) : 0, headers);
    free(s);
}

/* 1 when s is 1 to 18 digits and nothing else (a project id). */
static int is_id(const char *s)
{
    size_t n = strspn(s, "0123456789");
    return n > 0 && n <= 18 && s[n] == '\0';
}

/* The page a name under /ui/ stands for, or NULL; "" is the dashboard,
 * "label/N" the labeler (label.html, which reads N from its address). */
static const ui_file_t *find(const char *name)
{
    if (!*name)
        name = "index.html";
    else if (!strncmp(name, "label/", 6) && is_id(name + 6))
        name = "label.html";
    for (size_t i = 0; i < qr_ui_nfiles; i++)
        if (!strcmp(qr_ui_files[i].name, name))
            return &qr_ui_files[i];
    return NULL;
}

int qr_api_ui_serve(qr_http_request_t *req)
{
    const char *p = req->path;
    if (strncmp(p, "/ui", 3) || (p[3] != '\0' && p[3] != '/'))
        return 0;
    int get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
    if (!get) {
        respond_json_error(req, 405, QR_CODE_METHOD_NOT_ALLOWED,
                           "the pages under /ui/ take GET and HEAD only",
                           "Allow: GET, HEAD\r\n" UI_HEADERS);
        return 1;
    }
    if (p[3] == '\0') {
        qr_http_respond(req, 308, NULL, NULL, 0, "Location: /ui/\r\n" UI_HEADERS);
        return 1;
    }
    const ui_file_t *f = find(p + 4);
    if (!f) {
        respond_json_error(req, 404, QR_CODE_NOT_FOUND,
                           "no such page under /ui/ (the dashboard is /ui/)", UI_HEADERS);
        return 1;
    }
    qr_http_respond(req, 200, type_of(f->name), (const char *)f->data, *f->len,
                    strcmp(f->name, "label.html") ? UI_HEADERS : UI_HEADERS_LABELER);
    return 1;
}

/*
 * client_config.c - the connection settings of quorumctl and quorum-agent
 * (see client.h): where they come from and the files they are kept in.
 *
 * The settings come from one of up to four places, the first that names a
 * broker URL: flags, the environment, the user's profile (quorum-agent),
 * the nearest `.quorum/env` file; they are never mixed field by field (see
 * resolve()). Both files are read with a small subset of shell quoting so
 * they can also be `source`d by a shell; `quorum-agent login` writes the
 * profile.
 */
#include "client.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char qr_client_help_text[] =
    "Connection (URL, token, CA and client certificate come from ONE place):\n"
    "  --url URL      broker base URL, https only    (QUORUM_URL)\n"
    "  --token TOKEN  bearer token                   (QUORUM_TOKEN)\n"
    "  --ca FILE      CA certificate (PEM) that signed the broker's certificate\n"
    "                 (QUORUM_CA); certificates are always verified\n"
    "  --cert FILE    client certificate (PEM) for brokers that require mutual TLS\n"
    "                 (QUORUM_CERT)\n"
    "  --key FILE     the client certificate's private key (QUORUM_KEY)\n"
    "  The URL comes from --url, else QUORUM_URL, else the nearest .quorum/env\n"
    "  (searched in the current directory and its parents), and the rest from\n"
    "  the same place: with --url, give --token and --ca too (QUORUM_TOKEN is\n"
    "  never sent to a URL from the command line: exit 2); flags may complete\n"
    "  QUORUM_URL's settings but never a .quorum/env's; QUORUM_TOKEN (or _CA,\n"
    "  _CERT, _KEY) without QUORUM_URL is refused rather than sent to a file's\n"
    "  URL. A .quorum/env not owned by you, or writable by group or others, is\n"
    "  ignored with a warning. Its lines look like\n"
    "  QUORUM_URL='https://127.0.0.1:8443' or export QUORUM_CA=...\n";

void qr_client_config_init(qr_client_config_t *cfg)
{
    cfg->url = NULL;
    cfg->token = NULL;
    cfg->ca = NULL;
    cfg->cert = NULL;
    cfg->key = NULL;
    cfg->insecure = 0;
}

void qr_client_config_free(qr_client_config_t *cfg)
{
    free(cfg->url);
    free(cfg->token);
    free(cfg->ca);
    free(cfg->cert);
    free(cfg->key);
    qr_client_config_init(cfg);
}

/*
 * Parses one shell-like value starting at p: a concatenation of bare words,
 * '...' (literal) and "..." (backslash escapes \ " $ `) segments, ending at
 * unquoted whitespace, '#' or the end of the line. Returns a heap string, or
 * NULL on an unterminated quote.
 */
static char *parse_value(const char *p)
{
    qr_buf_t out;
    qr_buf_init(&out);
    qr_buf_appends(&out, "");
    while (*p && *p != '\n' && *p != '\r') {
        if (*p == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end)
                goto fail;
            qr_buf_append(&out, p + 1, (size_t)(end - p - 1));
            p = end + 1;
        } else if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1] && strchr("\\\"$`", p[1]))
                    p++;
                qr_buf_append(&out, p, 1);
                p++;
            }
            if (*p != '"')
                goto fail;
            p++;
        } else if (isspace((unsigned char)*p) || *p == '#') {
            break;
        } else {
            if (*p == '\\' && p[1] && p[1] != '\n')
                p++;
            qr_buf_append(&out, p, 1);
            p++;
        }
    }
    return qr_buf_steal(&out);
fail:
    qr_buf_free(&out);
    return NULL;
}

/*
 * Parses QUORUM_URL, QUORUM_TOKEN, QUORUM_CA, QUORUM_CERT and QUORUM_KEY
 * from the env file open as f (named path in messages) into found, which
 * the caller initialised and frees. base_dir: the directory relative file
 * paths are taken from. Returns 0, or -1 with err set.
 */
static int parse_env_stream(FILE *f, const char *path, const char *base_dir,
                            qr_client_config_t *found, char *err, size_t err_size)
{
    char line[4096];
    int lineno = 0;

    while (fgets(line, sizeof line, f)) {
        const char *p = line;
        char **slot = NULL;
        lineno++;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '#' || *p == '\0')
            continue;
        if (strncmp(p, "export", 6) == 0 && isspace((unsigned char)p[6])) {
            p += 6;
            while (isspace((unsigned char)*p))
                p++;
        }
        if (strncmp(p, "QUORUM_URL=", 11) == 0) {
            slot = &found->url;
            p += 11;
        } else if (strncmp(p, "QUORUM_TOKEN=", 13) == 0) {
            slot = &found->token;
            p += 13;
        } else if (strncmp(p, "QUORUM_CA=", 10) == 0) {
            slot = &found->ca;
            p += 10;
        } else if (strncmp(p, "QUORUM_CERT=", 12) == 0) {
            slot = &found->cert;
            p += 12;
        } else if (strncmp(p, "QUORUM_KEY=", 11) == 0) {
            slot = &found->key;
            p += 11;
        } else {
            continue; /* other variables are someone else's */
        }
        char *value = parse_value(p);
        if (!value) {
            snprintf(err, err_size, "%s:%d: unterminated quote", path, lineno);
            return -1;
        }
        free(*slot);
        *slot = value[0] ? value : NULL; /* the last assignment wins, as in a shell */
        if (!*slot)
            free(value);
    }
    if (ferror(f)) {
        snprintf(err, err_size, "cannot read %s", path);
        return -1;
    }
    char **files[] = {&found->ca, &found->cert, &found->key};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char **file = files[k];
        if (*file && (*file)[0] != '/') {
            char *abs = qr_xasprintf("%s/%s", base_dir, *file);
            free(*file);
            *file = abs;
        }
    }
    return 0;
}

/*
 * Finds the nearest .quorum/env from the current directory upwards and, if
 * it is safe to trust, reads it into found. Only that nearest file is ever
 * considered. It is ignored, with one warning line on stderr naming it,
 * when it is not a regular file (a symbolic link included), is not owned by
 * the user running us, or is writable by group or others: someone else
 * could have written the URL and CA it names. The checks are made on the
 * open descriptor, so the file cannot be swapped in between. *where gets
 * the file's path (heap) when it was read. No file is not an error.
 */
static int read_nearest_env_file(qr_client_config_t *found, char **where, char *err,
                                 size_t err_size)
{
    char dir[PATH_MAX];
    if (!getcwd(dir, sizeof dir))
        return 0; /* a vanished cwd just means no file */
    for (;;) {
        char *path = qr_xasprintf("%s%s.quorum/env", dir, strcmp(dir, "/") == 0 ? "" : "/");
        struct stat st;
        if (lstat(path, &st) == 0) {
            const char *why = NULL;
            char mode[64];
            int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            if (fd < 0 || fstat(fd, &st) != 0)
                why = errno == ELOOP ? "it is a symbolic link" : strerror(errno);
            else if (!S_ISREG(st.st_mode))
                why = "it is not a regular file";
            else if (st.st_uid != geteuid())
                why = "it is owned by someone else";
            else if (st.st_mode & 022) {
                snprintf(mode, sizeof mode, "it is writable by group or others (mode %04o)",
                         (unsigned)(st.st_mode & 07777));
                why = mode;
            }
            if (why) {
                fprintf(stderr, "%s: warning: ignoring %s: %s\n", program_invocation_short_name,
                        path, why);
                if (fd >= 0)
                    close(fd);
                free(path);
                return 0;
            }
            FILE *f = fdopen(fd, "r");
            if (!f) {
                snprintf(err, err_size, "cannot read %s: %s", path, strerror(errno));
                close(fd);
                free(path);
                return -1;
            }
            int rc = parse_env_stream(f, path, dir, found, err, err_size);
            fclose(f);
            if (rc == 0)
                *where = path;
            else
                free(path);
            return rc;
        }
        free(path);
        if (strcmp(dir, "/") == 0)
            return 0;
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
}

char *qr_client_profile_path(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        return qr_xasprintf("%s/quorum/profile", xdg);
    if (home && home[0])
        return qr_xasprintf("%s/.config/quorum/profile", home);
    return NULL;
}

/* Reads the profile at path into found; a missing file is fine. A profile
 * readable by group or others is refused. Returns 0 or -1 with err set. */
static int read_profile(qr_client_config_t *found, const char *path, char *err, size_t err_size)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        snprintf(err, err_size, "cannot read profile %s: %s", path, strerror(errno));
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, err_size,
                 "profile %s holds a token but is readable by others (mode %03o); "
                 "run chmod 600 %s",
                 path, (unsigned)(st.st_mode & 0777), path);
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, err_size, "cannot read profile %s: %s", path, strerror(errno));
        return -1;
    }
    char *dir = qr_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    int rc = parse_env_stream(f, path, slash ? dir : ".", found, err, err_size);
    fclose(f);
    free(dir);
    return rc;
}

/* The five connection settings of a config, in the order of the names below. */
static void config_slots(qr_client_config_t *c, char **slots[5])
{
    slots[0] = &c->url;
    slots[1] = &c->token;
    slots[2] = &c->ca;
    slots[3] = &c->cert;
    slots[4] = &c->key;
}

static const char *const env_names[5] = {"QUORUM_URL", "QUORUM_TOKEN", "QUORUM_CA", "QUORUM_CERT",
                                         "QUORUM_KEY"};
static const char *const flag_names[5] = {"--url", "--token", "--ca", "--cert", "--key"};

/* Copies the settings of from that cfg does not have yet. */
static void complete_from(qr_client_config_t *cfg, qr_client_config_t *from)
{
    char **mine[5], **theirs[5];
    config_slots(cfg, mine);
    config_slots(from, theirs);
    for (int k = 0; k < 5; k++)
        if (!*mine[k] && *theirs[k])
            *mine[k] = qr_xstrdup(*theirs[k]);
}

/* The checks shared by both resolve functions, once every source was read. */
static int check_settings(qr_client_config_t *cfg, int need_token, char *err, size_t err_size);

/*
 * The one resolution rule (client.h, README "Connection settings"). On
 * entry cfg holds only what the command line gave. The URL's source is the
 * first of: the command line, the environment, the profile (when
 * profile_path is given), the nearest .quorum/env. The other settings come
 * from that same source; the command line may add to the environment or the
 * profile, both the user's own. Anything that would send a token (or use a
 * CA or certificate) from one source with a URL from another is refused.
 */
static int resolve(qr_client_config_t *cfg, int need_token, const char *profile_path, char *err,
                   size_t err_size)
{
    qr_client_config_t env, found;
    char **env_slots[5], **flag_slots[5];
    char *where = NULL; /* the URL's source, for messages: a profile or a .quorum/env */
    int from_file = 0;  /* the URL came from a .quorum/env */
    int rc = -1;

    qr_client_config_init(&env);
    qr_client_config_init(&found);
    config_slots(&env, env_slots);
    config_slots(cfg, flag_slots);
    for (int k = 0; k < 5; k++) {
        const char *v = getenv(env_names[k]);
        if (v && v[0])
            *env_slots[k] = qr_xstrdup(v);
        if (*flag_slots[k] && !(*flag_slots[k])[0]) {
            free(*flag_slots[k]); /* --token= is no token */
            *flag_slots[k] = NULL;
        }
    }

    if (cfg->url) {
        /* The command line named the broker: nothing else is used. */
        if (env.token && !cfg->token) {
            snprintf(err, err_size,
                     "QUORUM_TOKEN is not sent to a URL given on the command line (%s): "
                     "give --token too, or set QUORUM_URL instead of --url",
                     cfg->url);
            goto out;
        }
        if (env.ca && !cfg->ca && !cfg->insecure) {
            snprintf(err, err_size,
                     "no CA file for the URL given on the command line: give --ca too "
                     "(QUORUM_CA goes with QUORUM_URL only)");
            goto out;
        }
    } else if (env.url) {
        complete_from(cfg, &env); /* flags first, then the environment */
    } else {
        if (profile_path && read_profile(&found, profile_path, err, err_size) < 0)
            goto out;
        if (found.url) {
            where = qr_xasprintf("the profile %s", profile_path);
        } else {
            qr_client_config_free(&found);
            char *file = NULL;
            if (read_nearest_env_file(&found, &file, err, err_size) < 0)
                goto out;
            if (found.url) {
                where = file;
                from_file = 1;
            } else {
                free(file);
            }
        }
        if (where) {
            /* The environment gives no URL: any of its settings would be mixed
             * with a URL from somewhere else. */
            for (int k = 1; k < 5; k++) {
                if (*env_slots[k]) {
                    snprintf(err, err_size,
                             "%s is set but QUORUM_URL is not, and the broker URL would come "
                             "from %s: settings are never mixed across sources; set QUORUM_URL "
                             "too, give --url, or unset %s",
                             env_names[k], where, env_names[k]);
                    goto out;
                }
            }
            /* A file found by directory could be anyone's: nothing from the
             * command line goes with its URL. The profile is the user's own. */
            for (int k = 1; k < 5 && from_file; k++) {
                if (*flag_slots[k]) {
                    snprintf(err, err_size,
                             "%s given, but the broker URL would come from %s: give --url too "
                             "(the command line is never mixed with a .quorum/env)",
                             flag_names[k], where);
                    goto out;
                }
            }
            complete_from(cfg, &found);
        }
    }
    rc = check_settings(cfg, need_token, err, err_size);
out:
    qr_client_config_free(&env);
    qr_client_config_free(&found);
    free(where);
    return rc;
}

int qr_client_config_resolve_profile(qr_client_config_t *cfg, int need_token,
                                     const char *profile_path, char *err, size_t err_size)
{
    char *def = profile_path ? NULL : qr_client_profile_path();
    int rc = resolve(cfg, need_token, profile_path ? profile_path : def, err, err_size);
    free(def);
    return rc;
}

int qr_client_config_resolve(qr_client_config_t *cfg, int need_token, char *err, size_t err_size)
{
    return resolve(cfg, need_token, NULL, err, err_size);
}

static int check_settings(qr_client_config_t *cfg, int need_token, char *err, size_t err_size)
{
    if (!cfg->url || !cfg->url[0]) {
        snprintf(err, err_size, "no broker URL: give --url, set QUORUM_URL or write .quorum/env");
        return -1;
    }
    if (strncmp(cfg->url, "https://", 8) != 0) {
        snprintf(err, err_size, "broker URL must start with https:// (got '%s')", cfg->url);
        return -1;
    }
    size_t n = strlen(cfg->url);
    while (n > 8 && cfg->url[n - 1] == '/')
        cfg->url[--n] = '\0';
    if (!cfg->insecure && (!cfg->ca || !cfg->ca[0])) {
        snprintf(err, err_size,
                 "no CA file: give --ca, set QUORUM_CA or write .quorum/env "
                 "(certificates are always verified)");
        return -1;
    }
    const char *what[] = {"CA file", "client certificate", "client key"};
    const char *files[] = {cfg->ca, cfg->cert, cfg->key};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        if (files[k] && files[k][0] && access(files[k], R_OK) != 0) {
            snprintf(err, err_size, "cannot read %s %s: %s", what[k], files[k], strerror(errno));
            return -1;
        }
    }
    if (cfg->key && cfg->key[0] && !(cfg->cert && cfg->cert[0])) {
        snprintf(err, err_size, "--key given without --cert");
        return -1;
    }
    /* A client certificate the broker maps to a user (mutual TLS) stands
     * for the token. */
    if (need_token && (!cfg->token || !cfg->token[0]) && !(cfg->cert && cfg->cert[0])) {
        snprintf(err, err_size, "no token: give --token, set QUORUM_TOKEN or write .quorum/env");
        return -1;
    }
    /* The token goes into a header line: refuse anything that could split it. */
    for (const char *p = cfg->token; p && *p; p++) {
        if (*p <= ' ' || *p == 0x7f) {
            snprintf(err, err_size, "token contains a space or control character");
            return -1;
        }
    }
    return 0;
}

/* Appends KEY='value' to out, quoting value for a POSIX shell (and for
 * parse_value): ' becomes '\''. */
static void append_assignment(qr_buf_t *out, const char *key, const char *value)
{
    qr_buf_appendf(out, "%s='", key);
    for (const char *p = value; *p; p++) {
        if (*p == '\'')
            qr_buf_appends(out, "'\\''");
        else
            qr_buf_append(out, p, 1);
    }
    qr_buf_appends(out, "'\n");
}

/* mkdir -p of the directory holding path, new levels with mode 0700. */
static int make_parent_dirs(const char *path, char *err, size_t err_size)
{
    char *dir = qr_xstrdup(path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            snprintf(err, err_size, "cannot create %s: %s", dir, strerror(errno));
            free(dir);
            return -1;
        }
        *p = '/';
    }
    free(dir);
    return 0;
}

int qr_client_profile_write(const char *path, const qr_client_config_t *cfg, char *err,
                            size_t err_size)
{
    qr_buf_t text;
    char *tmp = NULL;
    int fd = -1, rc = -1;

    qr_buf_init(&text);
    qr_buf_appends(&text, "# quorum-agent profile, written by `quorum-agent login`.\n"
                          "# Holds a bearer token: keep it mode 0600.\n");
    const char *keys[] = {"QUORUM_URL", "QUORUM_TOKEN", "QUORUM_CA", "QUORUM_CERT", "QUORUM_KEY"};
    const char *values[] = {cfg->url, cfg->token, cfg->ca, cfg->cert, cfg->key};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        if (!values[k] || !values[k][0])
            continue;
        if (strchr(values[k], '\n') || strchr(values[k], '\r')) {
            snprintf(err, err_size, "%s contains a line break", keys[k]);
            goto out;
        }
        if (k >= 2 && values[k][0] != '/') {
            char abs[PATH_MAX];
            if (!realpath(values[k], abs)) {
                snprintf(err, err_size, "cannot resolve %s: %s", values[k], strerror(errno));
                goto out;
            }
            append_assignment(&text, keys[k], abs);
        } else {
            append_assignment(&text, keys[k], values[k]);
        }
    }
    if (make_parent_dirs(path, err, err_size) < 0)
        goto out;
    tmp = qr_xasprintf("%s.tmp", path);
    (void)unlink(tmp); /* a leftover of an interrupted login */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, err_size, "cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    /* 0600 whatever the umask was. */
    if (fchmod(fd, 0600) < 0) {
        snprintf(err, err_size, "cannot chmod %s: %s", tmp, strerror(errno));
        goto out;
    }
    for (size_t off = 0; off < text.len;) {
        ssize_t w = write(fd, text.data + off, text.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            snprintf(err, err_size, "cannot write %s: %s", tmp, strerror(errno));
            goto out;
        }
        off += (size_t)w;
    }
    if (fsync(fd) < 0) {
        snprintf(err, err_size, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    int cr = close(fd);
    fd = -1;
    if (cr < 0) {
        snprintf(err, err_size, "cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) < 0) {
        snprintf(err, err_size, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd); /* already failing; the error above is the one to report */
    if (rc < 0 && tmp)
        (void)unlink(tmp);
    free(tmp);
    qr_buf_free(&text);
    return rc;
}

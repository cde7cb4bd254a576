/* static.c: the storefront's files from SOUK_WEB_DIR at "/": content types, ETag,
 * Last-Modified and Cache-Control, the browser's security headers (CSP without
 * inline script, no framing, nosniff, Referrer-Policy), index.html for client-side
 * routes, and no way out of the web root (the path arrives percent-decoded: every
 * candidate file is resolved with realpath() and must still lie under the root). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"
#include "souk/log.h"
#include "souk/souk.h"

#define STATIC_PATH_MAX 1024
#define STATIC_FILE_MAX (16 * 1024 * 1024)

static char root[PATH_MAX];
static size_t root_len;

/* The storefront is plain files from this origin: scripts and styles only from
 * files (no inline script, style or event handler: web/ has none), API calls to
 * this origin, never framed (clickjacking), no plugins, no <base> rewriting, forms
 * post only here. Images may be data: URLs (none yet, but harmless). */
static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
                          "object-src 'none'; base-uri 'none'; form-action 'self'; "
                          "frame-ancestors 'none'";

static char *header(struct static_answer *a, const char *name, const char *value)
{
    struct edge_headers *h = &a->headers;
    size_t i = h->n < EDGE_HEADERS_MAX ? h->n++ : EDGE_HEADERS_MAX - 1; /* 7 at most */
    h->h[i].name = name;
    h->h[i].value = value != NULL ? value : h->h[i].buf;
    return h->h[i].buf;
}

/* On every storefront answer, the 404s and 304s too. */
static void security_headers(struct static_answer *a)
{
    header(a, "Content-Security-Policy", csp);
    header(a, "X-Content-Type-Options", "nosniff");
    header(a, "X-Frame-Options", "DENY"); /* frame-ancestors for old browsers */
    header(a, "Referrer-Policy", "strict-origin-when-cross-origin");
}

static int not_found(struct static_answer *a, const char *fmt, const char *path)
{
    a->code = "not_found";
    snprintf(a->detail, sizeof(a->detail), fmt, path);
    return a->status = 404;
}

int static_init(const char *web_dir)
{
    if (realpath(web_dir, root) == NULL) {
        souk_warn("web directory not found: no storefront", "{s:s}", "dir", web_dir);
        root[0] = '\0';
        return SOUK_ENOTFOUND;
    }
    root_len = strlen(root);
    return 0;
}

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
};

static const char *extension(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    return dot ? dot + 1 : NULL;
}

static const char *content_type(const char *path)
{
    const char *ext = extension(path);
    for (size_t i = 0; ext != NULL && i < SOUK_ARRAY_LEN(types); i++)
        if (strcasecmp(ext, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Paths that belong to the API: never a file, never the index.html fallback. */
static bool api_path(const char *p)
{
    static const char *const prefixes[] = {"/api/", "/api", "/internal", "/oauth", "/.well-known"};
    for (size_t i = 0; i < SOUK_ARRAY_LEN(prefixes); i++) {
        size_t n = strlen(prefixes[i]);
        if (strncmp(p, prefixes[i], n) == 0 &&
            (p[n] == '\0' || p[n] == '/' || prefixes[i][n - 1] == '/'))
            return true;
    }
    return false;
}

/* Resolve rel (starting with '/') under the root; the result must be a regular file
 * inside it. Returns 0, or SOUK_ENOTFOUND. */
static int resolve(const char *rel, char out[PATH_MAX], struct stat *st)
{
    char want[PATH_MAX];
    if (snprintf(want, sizeof(want), "%s%s", root, rel) >= (int)sizeof(want))
        return SOUK_ENOTFOUND;
    if (realpath(want, out) == NULL)
        return SOUK_ENOTFOUND;
    if (strncmp(out, root, root_len) != 0 || out[root_len] != '/')
        return SOUK_ENOTFOUND;
    if (stat(out, st) != 0 || !S_ISREG(st->st_mode))
        return SOUK_ENOTFOUND;
    return 0;
}

static bool has_dot_segment(const char *p)
{
    for (; *p; p++)
        if (p[0] == '/' && p[1] == '.' &&
            (p[2] == '/' || p[2] == '\0' || (p[2] == '.' && (p[3] == '/' || p[3] == '\0'))))
            return true;
    return false;
}

static int read_file(struct static_answer *a, const char *file, const struct stat *st)
{
    int rc = 500;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    if (fd < 0)
        goto out;
    buf = souk_xmalloc((size_t)st->st_size + 1);
    size_t got = 0;
    while (got < (size_t)st->st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st->st_size - got);
        if (n <= 0)
            goto out;
        got += (size_t)n;
    }
    buf[got] = '\0';
    a->type = content_type(file);
    a->body = buf;
    a->len = got;
    buf = NULL;
    rc = 200;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    if (rc != 200) {
        a->code = "internal";
        snprintf(a->detail, sizeof(a->detail), "cannot read a static file");
    }
    return a->status = rc;
}

int static_answer(const char *method, const char *path, const char *inm, const char *ims,
                  struct static_answer *a)
{
    memset(a, 0, sizeof(*a));
    security_headers(a);
    if ((strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) || root[0] == '\0' ||
        api_path(path) || strlen(path) > STATIC_PATH_MAX || has_dot_segment(path) ||
        strchr(path, '\\') != NULL)
        return not_found(a, "no route for %.200s", path);

    char file[PATH_MAX], rel[STATIC_PATH_MAX + 16];
    struct stat st;
    snprintf(rel, sizeof(rel), "%s%s", path, path[strlen(path) - 1] == '/' ? "index.html" : "");
    if (resolve(rel, file, &st) != 0) {
        /* client-side routes ("/products/prd_1") get the app; missing assets a 404 */
        if (extension(path) != NULL || resolve("/index.html", file, &st) != 0)
            return not_found(a, "no file %.200s", path);
    }
    if (st.st_size > STATIC_FILE_MAX)
        return not_found(a, "no file %.200s", path);

    char *etag = header(a, "ETag", NULL);
    snprintf(etag, EDGE_VALUE_MAX, "\"%llx-%llx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    struct tm tm;
    gmtime_r(&st.st_mtim.tv_sec, &tm);
    strftime(header(a, "Last-Modified", NULL), EDGE_VALUE_MAX, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    bool html = strcmp(content_type(file), types[0].type) == 0;
    header(a, "Cache-Control", html ? "no-cache" : "public, max-age=3600");

    if (inm != NULL) {
        if (strstr(inm, etag) != NULL || strcmp(inm, "*") == 0)
            return a->status = 304;
    } else if (ims != NULL) {
        time_t since = curl_getdate(ims, NULL);
        if (since != -1 && st.st_mtim.tv_sec <= since)
            return a->status = 304;
    }
    return read_file(a, file, &st);
}

int static_serve(struct souk_req *r)
{
    struct static_answer a;
    static_answer(souk_req_method(r), souk_req_path(r), souk_req_header(r, "If-None-Match"),
                  souk_req_header(r, "If-Modified-Since"), &a);
    for (size_t i = 0; i < a.headers.n; i++)
        souk_reply_header(r, a.headers.h[i].name, a.headers.h[i].value);
    if (a.code != NULL)
        return souk_problem(r, a.status, a.code, "%s", a.detail);
    if (a.body != NULL)
        souk_reply_raw(r, a.type, a.body, a.len, true); /* r owns it now */
    return a.status;
}

/* router.c: matches a method and path against the route table. Patterns are
 * split into segments once; matching walks the path segment by segment with no
 * allocation. A path that matches a pattern for another method gives 405. A final
 * "{*name}" segment takes the rest of the path (the gateway's prefix routes); such
 * wildcard routes are fallbacks: any exact pattern that matches wins over them. */
#include <stdlib.h>
#include <string.h>

#include "souk/log.h"
#include "souk/server.h"
#include "souk/souk.h"

#define MAX_SEGMENTS 12

struct segment {
    const char *text; /* literal, or the parameter name */
    size_t len;
    bool param;
    bool rest; /* {*name}: the rest of the path, slashes included */
};

struct compiled {
    const struct souk_route *route;
    struct segment seg[MAX_SEGMENTS];
    size_t nseg;
};

struct souk_router {
    struct compiled *r;
    size_t n;
};

static int compile(struct compiled *c, const struct souk_route *route)
{
    const char *p = route->pattern;
    c->route = route;
    c->nseg = 0;
    if (p == NULL || *p != '/')
        return SOUK_EINVAL;
    while (*p == '/') {
        p++;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 && end == NULL)
            break; /* trailing slash, or the root "/" */
        if (c->nseg == MAX_SEGMENTS || len == 0)
            return SOUK_EINVAL;
        struct segment *s = &c->seg[c->nseg++];
        s->rest = false;
        if (p[0] == '{' && p[1] == '*') {
            if (len < 4 || p[len - 1] != '}' || end != NULL)
                return SOUK_EINVAL; /* the wildcard must be the last segment */
            s->text = p + 2;
            s->len = len - 3;
            s->param = true;
            s->rest = true;
        } else if (p[0] == '{') {
            if (len < 3 || p[len - 1] != '}')
                return SOUK_EINVAL;
            s->text = p + 1;
            s->len = len - 2;
            s->param = true;
        } else {
            if (memchr(p, '{', len) != NULL || memchr(p, '}', len) != NULL)
                return SOUK_EINVAL;
            s->text = p;
            s->len = len;
            s->param = false;
        }
        p += len;
    }
    return *p == '\0' ? 0 : SOUK_EINVAL;
}

struct souk_router *souk_router_new(const struct souk_route *routes)
{
    size_t n = 0;
    while (routes[n].method != NULL)
        n++;
    struct souk_router *rt = souk_xcalloc(1, sizeof(*rt));
    rt->r = souk_xcalloc(n, sizeof(*rt->r));
    rt->n = n;
    for (size_t i = 0; i < n; i++) {
        if (compile(&rt->r[i], &routes[i]) != 0 || routes[i].handler == NULL) {
            souk_error("bad route", "{s:s,s:s}", "method", routes[i].method, "pattern",
                       routes[i].pattern ? routes[i].pattern : "(null)");
            souk_router_free(rt);
            return NULL;
        }
    }
    return rt;
}

void souk_router_free(struct souk_router *rt)
{
    if (rt == NULL)
        return;
    free(rt->r);
    free(rt);
}

size_t souk_router_count(const struct souk_router *rt) { return rt->n; }

/* Does path match c's pattern? Fills params when it does. */
static bool match_path(const struct compiled *c, const char *path, struct souk_param *params,
                       size_t *nparams)
{
    const char *p = path;
    size_t np = 0;
    for (size_t i = 0; i < c->nseg; i++) {
        if (*p != '/')
            return false;
        p++;
        const struct segment *s = &c->seg[i];
        const char *end = s->rest ? NULL : strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (s->rest) {
            /* the rest of the path, possibly empty ("/api/v1/cart/") */
            if (np == SOUK_MAX_PARAMS)
                return false;
            if (params != NULL) {
                params[np].name = s->text;
                params[np].value = p;
                params[np].len = len;
            }
            np++;
        } else if (s->param) {
            if (len == 0 || np == SOUK_MAX_PARAMS)
                return false;
            if (params != NULL) {
                params[np].name = s->text;
                params[np].value = p;
                params[np].len = len;
            }
            np++;
        } else if (len != s->len || memcmp(p, s->text, len) != 0) {
            return false;
        }
        p += len;
    }
    /* Exact match only: "/api/v1/products/" is not "/api/v1/products". The root
     * pattern "/" matches "/". */
    if (!(*p == '\0' || (c->nseg == 0 && strcmp(p, "/") == 0)))
        return false;
    if (nparams != NULL)
        *nparams = np;
    return true;
}

static bool is_wildcard(const struct compiled *c)
{
    return c->nseg > 0 && c->seg[c->nseg - 1].rest;
}

/* "*" matches every method; a GET route answers HEAD too. */
static bool method_matches(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 || strcmp(route_method, "*") == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

int souk_router_match(const struct souk_router *rt, const char *method, const char *path,
                      struct souk_param *params, size_t *nparams)
{
    bool path_seen = false;
    if (path[0] != '/')
        return -404;
    int fallback = -1; /* the first wildcard route that matches, if no exact one does */
    for (size_t i = 0; i < rt->n; i++) {
        const struct compiled *c = &rt->r[i];
        bool wild = is_wildcard(c);
        if ((wild && fallback >= 0) || !match_path(c, path, NULL, NULL))
            continue;
        if (!method_matches(c->route->method, method)) {
            path_seen = path_seen || !wild;
            continue;
        }
        if (wild) {
            fallback = (int)i;
            continue;
        }
        match_path(c, path, params, nparams);
        return (int)i;
    }
    if (fallback >= 0) {
        match_path(&rt->r[fallback], path, params, nparams);
        return fallback;
    }
    return path_seen ? -405 : -404;
}

void souk_router_allow(const struct souk_router *rt, const char *path, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < rt->n && len < cap; i++) {
        const struct compiled *c = &rt->r[i];
        if (!match_path(c, path, NULL, NULL) || strstr(buf, c->route->method) != NULL)
            continue;
        const char *extra = strcmp(c->route->method, "GET") == 0 ? ", HEAD" : "";
        int n = snprintf(buf + len, cap - len, "%s%s%s", len ? ", " : "", c->route->method, extra);
        if (n < 0)
            break;
        len += (size_t)n;
    }
}

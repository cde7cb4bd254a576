/* edge.c: what the gateway does before forwarding: token-bucket rate limits per
 * client address, per user and (stricter, per address) on the token endpoint and
 * on sign-up, each of which costs users an argon2id hash; with the IETF draft
 * RateLimit headers; and CORS for the configured origins. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/souk.h"

#define PROBE       4 /* buckets looked at per key: an aligned group */
#define STRIPES     64
#define ORIGINS_MAX 16
#define ORIGIN_MAX  256

struct bucket {
    uint64_t key; /* hash of the key; 0 = free */
    double tokens;
    uint64_t last_ns;
};

struct limiter {
    const char *name; /* the policy name in the headers */
    double rate, burst;
    struct bucket *b;
    size_t groups;
    pthread_mutex_t lock[STRIPES];
};

static struct limiter limiters[LIMIT_KINDS] = {
    [LIMIT_IP] = {.name = "ip"},
    [LIMIT_USER] = {.name = "user"},
    [LIMIT_TOKEN] = {.name = "token"},
    [LIMIT_SIGNUP] = {.name = "signup"},
};
static char origins[ORIGINS_MAX][ORIGIN_MAX];
static size_t norigins;
static bool any_origin;
static struct souk_metric *m_limited;

int edge_init(const struct edge_conf *c)
{
    for (int k = 0; k < LIMIT_KINDS; k++) {
        struct limiter *l = &limiters[k];
        l->rate = (double)c->rate[k] / (double)(c->period[k] > 0 ? c->period[k] : 1);
        l->burst = (double)(c->burst[k] > 0 ? c->burst[k] : 1);
        l->groups = (size_t)c->slots / PROBE;
        if (l->groups == 0)
            l->groups = 1;
        if (l->rate > 0)
            l->b = souk_xcalloc(l->groups * PROBE, sizeof(*l->b));
        for (int i = 0; i < STRIPES; i++)
            pthread_mutex_init(&l->lock[i], NULL);
    }
    const char *p = c->cors_origins;
    while (*p != '\0') {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        if (len == 1 && *p == '*') {
            any_origin = true;
        } else if (norigins == ORIGINS_MAX || len >= ORIGIN_MAX) {
            souk_error("SOUK_CORS_ORIGINS: too many or too long origins", NULL);
            return SOUK_EINVAL;
        } else {
            memcpy(origins[norigins], p, len);
            origins[norigins++][len] = '\0';
        }
        p += len;
    }
    m_limited = souk_metric_counter("souk_gateway_rate_limited_total",
                                    "Requests refused with 429, by limiter.", "limiter");
    return 0;
}

/* ---- token buckets ---- */

/* Small non-negative numbers only: no libm for four one-liners. */
static double dmin(double a, double b) { return a < b ? a : b; }
static double dmax(double a, double b) { return a > b ? a : b; }
static double dfloor(double a) { return (double)(int64_t)a; }
static double dceil(double a)
{
    double f = dfloor(a);
    return f < a ? f + 1 : f;
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ? h : 1;
}

struct verdict {
    bool ok;
    double remaining;   /* whole tokens left */
    double reset;       /* seconds until the bucket is full again */
    double retry_after; /* seconds until one token, when refused */
};

/* Take one token from key's bucket. A key without a bucket takes the free slot of
 * its group, or the stalest one: a forgotten client starts with a full bucket, so
 * eviction can only be generous, never unfair. */
static struct verdict take(struct limiter *l, const char *key, uint64_t now)
{
    uint64_t h = hash(key);
    size_t g = (size_t)(h % l->groups);
    struct bucket *grp = &l->b[g * PROBE], *b = NULL, *stale = &grp[0];
    pthread_mutex_t *lock = &l->lock[g % STRIPES];
    pthread_mutex_lock(lock);
    for (size_t i = 0; i < PROBE; i++) {
        if (grp[i].key == h) {
            b = &grp[i];
            break;
        }
        if (grp[i].key == 0 || grp[i].last_ns < stale->last_ns)
            stale = &grp[i];
    }
    if (b == NULL) {
        b = stale;
        b->key = h;
        b->tokens = l->burst;
        b->last_ns = now;
    }
    double dt = (double)(now - b->last_ns) / 1e9;
    b->tokens = dmin(l->burst, b->tokens + dt * l->rate);
    b->last_ns = now;
    struct verdict v = {.ok = b->tokens >= 1.0};
    if (v.ok)
        b->tokens -= 1.0;
    v.remaining = dfloor(b->tokens);
    v.reset = (l->burst - b->tokens) / l->rate;
    v.retry_after = v.ok ? 0 : (1.0 - b->tokens) / l->rate;
    pthread_mutex_unlock(lock);
    return v;
}

/* ---- what a request shows the edge, whichever engine parsed it ---- */

static void add(struct edge_headers *h, const char *name, const char *value)
{
    if (h->n == EDGE_HEADERS_MAX)
        return; /* cannot happen: the most one answer takes is 7 */
    h->h[h->n].name = name;
    if (value == NULL) { /* the value is formatted into the slot */
        h->h[h->n].value = h->h[h->n].buf;
    } else {
        h->h[h->n].value = value;
    }
    h->n++;
}

static char *slot(struct edge_headers *h, const char *name)
{
    if (h->n == EDGE_HEADERS_MAX)
        return h->h[EDGE_HEADERS_MAX - 1].buf; /* overwritten, never added */
    add(h, name, NULL);
    return h->h[h->n - 1].buf;
}

static void limit_headers(struct edge_headers *h, const struct limiter *l, const struct verdict *v)
{
    snprintf(slot(h, "RateLimit-Policy"), EDGE_VALUE_MAX, "\"%s\";q=%.0f;w=%.0f", l->name, l->burst,
             dmax(1.0, dceil(l->burst / l->rate)));
    snprintf(slot(h, "RateLimit"), EDGE_VALUE_MAX, "\"%s\";r=%.0f;t=%.0f", l->name, v->remaining,
             dceil(v->reset));
}

int edge_limit(const struct edge_view *v, enum edge_policy policy, struct edge_headers *out,
               char *detail, size_t cap)
{
    const char *keys[LIMIT_KINDS] = {
        [LIMIT_IP] = v->addr,
        [LIMIT_USER] = v->user,
        [LIMIT_TOKEN] = policy == EDGE_TOKEN ? v->addr : NULL,
        [LIMIT_SIGNUP] = policy == EDGE_SIGNUP ? v->addr : NULL,
    };
    uint64_t now = souk_now_ns();
    const struct limiter *tightest = NULL;
    struct verdict tv = {0};
    for (int k = 0; k < LIMIT_KINDS; k++) {
        struct limiter *l = &limiters[k];
        if (keys[k] == NULL || l->rate <= 0)
            continue;
        struct verdict vd = take(l, keys[k], now);
        if (!vd.ok) {
            char *secs = slot(out, "Retry-After");
            snprintf(secs, EDGE_VALUE_MAX, "%.0f", dmax(1.0, dceil(vd.retry_after)));
            limit_headers(out, l, &vd);
            souk_metric_inc(m_limited, l->name);
            edge_cors_headers(v, out);
            snprintf(detail, cap, "too many requests (%s limit); retry after %s s", l->name, secs);
            return 429;
        }
        if (tightest == NULL || vd.remaining / l->burst < tv.remaining / tightest->burst) {
            tightest = l;
            tv = vd;
        }
    }
    if (tightest != NULL)
        limit_headers(out, tightest, &tv);
    return 0;
}

/* ---- CORS ---- */

static const char *allowed_origin(const struct edge_view *v)
{
    const char *o = v->origin;
    if (o == NULL)
        return NULL;
    if (any_origin)
        return o;
    for (size_t i = 0; i < norigins; i++)
        if (strcmp(o, origins[i]) == 0)
            return o;
    return NULL;
}

void edge_cors_headers(const struct edge_view *v, struct edge_headers *out)
{
    const char *o = allowed_origin(v);
    if (o == NULL)
        return;
    add(out, "Access-Control-Allow-Origin", o);
    add(out, "Vary", "Origin");
    add(out, "Access-Control-Expose-Headers",
        "ETag, Location, Retry-After, RateLimit, RateLimit-Policy, X-Request-Id");
}

int edge_preflight_headers(const struct edge_view *v, struct edge_headers *out, char *detail,
                           size_t cap)
{
    static const char methods[] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
    if (v->origin == NULL || !v->cors_request) {
        add(out, "Allow", methods);
        return 204;
    }
    if (allowed_origin(v) == NULL) {
        snprintf(detail, cap, "origin %.200s is not allowed", v->origin);
        return 403;
    }
    edge_cors_headers(v, out);
    add(out, "Access-Control-Allow-Methods", methods);
    add(out, "Access-Control-Allow-Headers",
        "Authorization, Content-Type, Accept, Idempotency-Key, If-Match, "
        "If-None-Match, X-Request-Id, traceparent");
    add(out, "Access-Control-Max-Age", "600");
    return 204;
}

/* ---- the kit's HTTP server (SOUK_GATEWAY_ENGINE=mhd): the view of a souk_req ---- */

static struct edge_view view_of(struct souk_req *r)
{
    const struct souk_identity *who = souk_req_identity(r);
    return (struct edge_view){
        .addr = souk_req_client_addr(r),
        .user = who->authenticated && who->sub[0] ? who->sub : NULL,
        .origin = souk_req_header(r, "Origin"),
        .cors_request = souk_req_header(r, "Access-Control-Request-Method") != NULL,
    };
}

static void apply(struct souk_req *r, const struct edge_headers *h)
{
    for (size_t i = 0; i < h->n; i++)
        souk_reply_header(r, h->h[i].name, h->h[i].value);
}

int edge_rate_limit(struct souk_req *r, enum edge_policy policy)
{
    struct edge_view v = view_of(r);
    struct edge_headers h = {0};
    char detail[128];
    int status = edge_limit(&v, policy, &h, detail, sizeof(detail));
    apply(r, &h);
    return status == 0 ? 0 : souk_problem(r, status, "rate_limited", "%s", detail);
}

void edge_cors(struct souk_req *r)
{
    struct edge_view v = view_of(r);
    struct edge_headers h = {0};
    edge_cors_headers(&v, &h);
    apply(r, &h);
}

int edge_preflight(struct souk_req *r)
{
    struct edge_view v = view_of(r);
    struct edge_headers h = {0};
    char detail[256];
    int status = edge_preflight_headers(&v, &h, detail, sizeof(detail));
    apply(r, &h);
    return status == 403 ? souk_problem(r, 403, "cors_origin_denied", "%s", detail) : status;
}

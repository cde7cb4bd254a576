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

static void limit_headers(struct souk_req *r, const struct limiter *l, const struct verdict *v)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "\"%s\";q=%.0f;w=%.0f", l->name, l->burst,
             dmax(1.0, dceil(l->burst / l->rate)));
    souk_reply_header(r, "RateLimit-Policy", buf);
    snprintf(buf, sizeof(buf), "\"%s\";r=%.0f;t=%.0f", l->name, v->remaining, dceil(v->reset));
    souk_reply_header(r, "RateLimit", buf);
}

int edge_rate_limit(struct souk_req *r, enum edge_policy policy)
{
    const struct souk_identity *who = souk_req_identity(r);
    const char *addr = souk_req_client_addr(r);
    const char *keys[LIMIT_KINDS] = {
        [LIMIT_IP] = addr,
        [LIMIT_USER] = who->authenticated && who->sub[0] ? who->sub : NULL,
        [LIMIT_TOKEN] = policy == EDGE_TOKEN ? addr : NULL,
        [LIMIT_SIGNUP] = policy == EDGE_SIGNUP ? addr : NULL,
    };
    uint64_t now = souk_now_ns();
    const struct limiter *tightest = NULL;
    struct verdict tv = {0};
    for (int k = 0; k < LIMIT_KINDS; k++) {
        struct limiter *l = &limiters[k];
        if (keys[k] == NULL || l->rate <= 0)
            continue;
        struct verdict v = take(l, keys[k], now);
        if (!v.ok) {
            char secs[32];
            snprintf(secs, sizeof(secs), "%.0f", dmax(1.0, dceil(v.retry_after)));
            souk_reply_header(r, "Retry-After", secs);
            limit_headers(r, l, &v);
            souk_metric_inc(m_limited, l->name);
            edge_cors(r);
            return souk_problem(r, 429, "rate_limited",
                                "too many requests (%s limit); retry after %s s", l->name, secs);
        }
        if (tightest == NULL || v.remaining / l->burst < tv.remaining / tightest->burst) {
            tightest = l;
            tv = v;
        }
    }
    if (tightest != NULL)
        limit_headers(r, tightest, &tv);
    return 0;
}

/* ---- CORS ---- */

static const char *allowed_origin(struct souk_req *r)
{
    const char *o = souk_req_header(r, "Origin");
    if (o == NULL)
        return NULL;
    if (any_origin)
        return o;
    for (size_t i = 0; i < norigins; i++)
        if (strcmp(o, origins[i]) == 0)
            return o;
    return NULL;
}

void edge_cors(struct souk_req *r)
{
    const char *o = allowed_origin(r);
    if (o == NULL)
        return;
    souk_reply_header(r, "Access-Control-Allow-Origin", o);
    souk_reply_header(r, "Vary", "Origin");
    souk_reply_header(r, "Access-Control-Expose-Headers",
                      "ETag, Location, Retry-After, RateLimit, RateLimit-Policy, X-Request-Id");
}

int edge_preflight(struct souk_req *r)
{
    static const char methods[] = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
    const char *origin = souk_req_header(r, "Origin");
    if (origin == NULL || souk_req_header(r, "Access-Control-Request-Method") == NULL) {
        souk_reply_header(r, "Allow", methods);
        return 204;
    }
    if (allowed_origin(r) == NULL)
        return souk_problem(r, 403, "cors_origin_denied", "origin %.200s is not allowed", origin);
    edge_cors(r);
    souk_reply_header(r, "Access-Control-Allow-Methods", methods);
    souk_reply_header(r, "Access-Control-Allow-Headers",
                      "Authorization, Content-Type, Accept, Idempotency-Key, If-Match, "
                      "If-None-Match, X-Request-Id, traceparent");
    souk_reply_header(r, "Access-Control-Max-Age", "600");
    return 204;
}

/* main.c: the API gateway (DESIGN §1, §4, §7, §8): one front door. Public API
 * prefixes are forwarded to their service through the asynchronous proxy (kit
 * lib/proxy.c), after auth and rate limits at the edge; the storefront's files
 * are served at "/". /internal/... and the services' /metrics are never reachable.
 * The upstreams and their routes are services.txt's (build/gen/services.h). */
#include <string.h>

#include <string.h>

#include "gateway.h"
#include "services.h"
#include "souk/service.h"
#include "souk/log.h"
#include "souk/proxy.h"
#include "souk/souk.h"

#define UPSTREAM_ID(ident, name, port, var) UP_##ident,
enum upstream_id { SOUK_UPSTREAMS(UPSTREAM_ID) UP_COUNT };
#undef UPSTREAM_ID

static const char *urls[UP_COUNT];
static struct souk_upstream *up[UP_COUNT];
#define UPSTREAM_NAME(ident, name, port, var) name,
static const char *const up_names[UP_COUNT] = {SOUK_UPSTREAMS(UPSTREAM_NAME)};
#undef UPSTREAM_NAME

static const char *cfg_web_dir, *cfg_cors, *cfg_engine;
static int64_t cfg_timeout, cfg_connect_timeout, cfg_retries, cfg_breaker_failures, cfg_breaker_ms,
    cfg_health_ms, cfg_probe_offset, cfg_ready_wait_ms, cfg_resolve_ms, cfg_max_response,
    cfg_max_conns, cfg_proxy_threads;
static struct edge_conf edge;

/* SOUK_<NAME>_URL for each upstream, by default its port on loopback. (clang-format
 * cannot tell an X-macro's list from an expression: the lists are left as written.) */
/* clang-format off */
#define UPSTREAM_CONF(ident, name, port, var)                                                      \
    {var, SOUK_CONF_STR, "http://127.0.0.1:" #port, 1, 4096, &urls[UP_##ident],                    \
     name " instances, comma-separated"},
static const struct souk_conf config[] = {
    SOUK_UPSTREAMS(UPSTREAM_CONF)
    /* clang-format on */
    {"SOUK_GATEWAY_ENGINE", SOUK_CONF_STR, "auto", 2, 4, &cfg_engine,
     "the public listener's engine: uv (libuv loops, one per SOUK_THREADS, with "
     "http-parser and pooled upstream connections), mhd (the kit's server, curl-multi "
     "proxy), or auto: uv, and mhd when SOUK_TLS_CERT/KEY are set or an upstream is https:// "
     "(uv serves neither yet)"},
    {"SOUK_WEB_DIR", SOUK_CONF_STR, "web", 1, 4096, &cfg_web_dir, "storefront files served at /"},
    {"SOUK_CORS_ORIGINS", SOUK_CONF_STR, "", 0, 4096, &cfg_cors,
     "allowed origins, comma-separated, or *"},
    {"SOUK_UPSTREAM_TIMEOUT_MS", SOUK_CONF_INT, "15000", 100, 300000, &cfg_timeout,
     "one upstream attempt"},
    {"SOUK_UPSTREAM_CONNECT_TIMEOUT_MS", SOUK_CONF_INT, "1000", 10, 60000, &cfg_connect_timeout,
     "upstream connect"},
    {"SOUK_UPSTREAM_RETRIES", SOUK_CONF_INT, "2", 0, 5, &cfg_retries,
     "extra attempts on other instances"},
    {"SOUK_BREAKER_FAILURES", SOUK_CONF_INT, "5", 1, 1000, &cfg_breaker_failures,
     "consecutive failures that open a breaker"},
    {"SOUK_BREAKER_OPEN_MS", SOUK_CONF_INT, "5000", 100, 600000, &cfg_breaker_ms,
     "open time before a trial"},
    {"SOUK_HEALTH_INTERVAL_MS", SOUK_CONF_INT, "1000", 0, 60000, &cfg_health_ms,
     "active /readyz probes; 0 off"},
    {"SOUK_UPSTREAM_PROBE_PORT_OFFSET", SOUK_CONF_INT, "0", 0, 60000, &cfg_probe_offset,
     "probe each instance on its port + this (its SOUK_PROBE_LISTEN); 0 its own port"},
    {"SOUK_UPSTREAM_READY_WAIT_MS", SOUK_CONF_INT, "30000", 0, 600000, &cfg_ready_wait_ms,
     "at start, /readyz waits this long for every upstream; 0 not at all"},
    {"SOUK_UPSTREAM_RESOLVE_MS", SOUK_CONF_INT, "10000", 1000, 3600000, &cfg_resolve_ms,
     "upstreams named by host name are resolved again this often (and soon after a failed "
     "connection); the last good answer is kept while resolution fails"},
    {"SOUK_UPSTREAM_MAX_RESPONSE", SOUK_CONF_INT, "16777216", 1024, 1073741824, &cfg_max_response,
     "upstream body cap"},
    {"SOUK_UPSTREAM_MAX_CONNECTIONS", SOUK_CONF_INT, "512", 1, 100000, &cfg_max_conns,
     "keep-alive pool size"},
    {"SOUK_PROXY_THREADS", SOUK_CONF_INT, "1", 1, 64, &cfg_proxy_threads,
     "proxy event loops (curl multis)"},
    {"SOUK_RATE_IP_RPS", SOUK_CONF_INT, "200", 0, 1000000, &edge.rate[LIMIT_IP],
     "per client address; 0 off"},
    {"SOUK_RATE_IP_BURST", SOUK_CONF_INT, "400", 1, 10000000, &edge.burst[LIMIT_IP], "bucket size"},
    {"SOUK_RATE_USER_RPS", SOUK_CONF_INT, "100", 0, 1000000, &edge.rate[LIMIT_USER],
     "per user; 0 off"},
    {"SOUK_RATE_USER_BURST", SOUK_CONF_INT, "200", 1, 10000000, &edge.burst[LIMIT_USER],
     "bucket size"},
    {"SOUK_RATE_TOKEN_RPS", SOUK_CONF_INT, "2", 0, 1000000, &edge.rate[LIMIT_TOKEN],
     "/oauth/token per address; 0 off"},
    {"SOUK_RATE_TOKEN_BURST", SOUK_CONF_INT, "20", 1, 10000000, &edge.burst[LIMIT_TOKEN],
     "bucket size"},
    {"SOUK_RATE_SIGNUP_PER_HOUR", SOUK_CONF_INT, "30", 0, 1000000, &edge.rate[LIMIT_SIGNUP],
     "POST /api/v1/users per address per hour; 0 off"},
    {"SOUK_RATE_SIGNUP_BURST", SOUK_CONF_INT, "10", 1, 10000000, &edge.burst[LIMIT_SIGNUP],
     "bucket size"},
    {"SOUK_RATE_SLOTS", SOUK_CONF_INT, "65536", 64, 16777216, &edge.slots,
     "buckets kept per limiter"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* Edge checks, then the upstream. */
static int forward(struct souk_req *r, enum upstream_id id, enum edge_policy policy)
{
    int status = edge_rate_limit(r, policy);
    if (status != 0)
        return status;
    edge_cors(r);
    return souk_proxy_forward(r, up[id]);
}

/* to_<upstream>_<LIMIT>: one handler per upstream and rate limit its routes take */
#define FORWARD(ident, limit)                                                                      \
    static int to_##ident##_##limit(struct souk_req *r)                                            \
    {                                                                                              \
        return forward(r, UP_##ident, EDGE_##limit);                                               \
    }
SOUK_GATEWAY_FORWARDS(FORWARD)
#undef FORWARD

static int preflight(struct souk_req *r) { return edge_preflight(r); }

/* The admin's trace view (traces.c): the gateway's own, under the edge's limits. */
static int admin_trace(struct souk_req *r)
{
    int status = edge_rate_limit(r, EDGE_PLAIN);
    if (status != 0)
        return status;
    edge_cors(r);
    return traces_serve(r);
}

static int storefront(struct souk_req *r)
{
    int status = edge_rate_limit(r, EDGE_PLAIN);
    return status != 0 ? status : static_serve(r);
}

/* Bare prefixes list their methods; "{*rest}" routes take everything under a prefix.
 * Exact patterns win over wildcards, and among wildcards the first listed wins, so
 * OPTIONS (preflights carry no token) comes first, the services' routes (services.txt,
 * in its order) next, and the storefront last. The token is verified here and again
 * by the service. */
#define ANY "*"
#define ROUTE(ident, method, pattern, auth, limit)                                                 \
    {method, pattern, to_##ident##_##limit, auth, NULL, 0},
/* clang-format off */
static const struct souk_route routes[] = {
    {"OPTIONS", "/{*path}", preflight, SOUK_PUBLIC, NULL, 0},
    {"GET", "/api/v1/admin/traces/{id}", admin_trace, SOUK_ADMIN, NULL, 0},
    SOUK_GATEWAY_ROUTES(ROUTE)
    /* clang-format on */
    {ANY, "/{*path}", storefront, SOUK_PUBLIC, NULL, 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};
#undef ROUTE

/* The same table's routes for the libuv engine, index for index. */
#define TARGET(ident, method, pattern, auth, limit) {GW_FORWARD, UP_##ident, EDGE_##limit},
/* clang-format off */
static const struct gw_target targets[] = {
    {GW_PREFLIGHT, 0, EDGE_PLAIN},
    {GW_TRACES, 0, EDGE_PLAIN},
    SOUK_GATEWAY_ROUTES(TARGET)
    /* clang-format on */
    {GW_STATIC, 0, EDGE_PLAIN},
};
#undef TARGET
_Static_assert(SOUK_ARRAY_LEN(targets) == SOUK_ARRAY_LEN(routes) - 1, "a target for every route");

static int start(void)
{
    for (int i = 0; i < UP_COUNT; i++) {
        up[i] = souk_upstream_new(up_names[i], urls[i]);
        if (up[i] == NULL)
            return SOUK_EINVAL;
    }
    edge.cors_origins = cfg_cors;
    edge.period[LIMIT_SIGNUP] = 3600; /* sign-ups are counted per hour */
    if (edge_init(&edge) != 0)
        return SOUK_EINVAL;
    static_init(cfg_web_dir); /* a missing web root only means no storefront */
    traces_init(up_names, urls, UP_COUNT);
    struct souk_proxy_conf pc = {
        .timeout_ms = cfg_timeout,
        .connect_timeout_ms = cfg_connect_timeout,
        .retries = (int)cfg_retries,
        .breaker_failures = (int)cfg_breaker_failures,
        .breaker_open_ms = cfg_breaker_ms,
        .health_interval_ms = cfg_health_ms,
        .probe_port_offset = cfg_probe_offset,
        .ready_wait_ms = cfg_ready_wait_ms,
        .max_response = (size_t)cfg_max_response,
        .max_connections = (size_t)cfg_max_conns,
        .threads = (size_t)cfg_proxy_threads,
        .resolve_interval_ms = cfg_resolve_ms,
    };
    return souk_proxy_start(&pc);
}

static void stop(void) { souk_proxy_stop(); }

/* The first upstream the uv engine cannot reach: one with an https:// instance (it
 * speaks plain HTTP to upstreams; host names it resolves through lib/proxy.c). NULL
 * when it reaches all. */
static const char *uv_unreachable(void)
{
    for (int i = 0; i < UP_COUNT; i++) {
        const char *p = urls[i];
        while (*p != '\0') {
            size_t len = strcspn(p, ","), skip = strspn(p, " ");
            if (len - skip < 7 || strncmp(p + skip, "http://", 7) != 0)
                return up_names[i];
            p += len + (p[len] == ',');
        }
    }
    return NULL;
}

/* SOUK_GATEWAY_ENGINE=uv: the public listener is uv_serve.c's; mhd leaves it to the kit.
 * auto, the default, is uv unless TLS is asked for or an upstream is https://, which
 * only mhd serves so far; the start line says which. An explicit uv that cannot serve
 * the configuration is refused, never served by mhd. */
static int serve(const struct souk_serve *s)
{
    bool is_auto = strcmp(cfg_engine, "auto") == 0;
    const char *named = uv_unreachable();
    if (is_auto && (s->tls || named != NULL))
        souk_info("public listener on libmicrohttpd", "{s:s,s:s}", "why",
                  s->tls ? "SOUK_GATEWAY_ENGINE=auto with TLS: the uv engine serves no TLS yet"
                         : "SOUK_GATEWAY_ENGINE=auto with an https:// upstream: "
                           "the uv engine reaches http:// instances only",
                  "upstream", named != NULL ? named : "");
    if (strcmp(cfg_engine, "mhd") == 0 || (is_auto && (s->tls || named != NULL)))
        return 0;
    if (!is_auto && strcmp(cfg_engine, "uv") != 0) {
        souk_log_config_error("SOUK_GATEWAY_ENGINE=\"%s\": expected auto, uv or mhd", cfg_engine);
        return SOUK_EINVAL;
    }
    if (s->tls) { /* never a silent fall back to the other engine */
        souk_log_config_error("SOUK_GATEWAY_ENGINE=uv does not serve TLS yet: unset "
                              "SOUK_TLS_CERT/SOUK_TLS_KEY or use SOUK_GATEWAY_ENGINE=mhd");
        return SOUK_EINVAL;
    }
    if (named != NULL) {
        souk_log_config_error("SOUK_GATEWAY_ENGINE=uv reaches http:// instances only, and %s "
                              "has an https:// one: use SOUK_GATEWAY_ENGINE=mhd or auto",
                              named);
        return SOUK_EINVAL;
    }
    int rc = uv_serve_start(s, routes, targets, SOUK_ARRAY_LEN(targets), up, UP_COUNT);
    return rc == 0 ? 1 : rc;
}

static const struct souk_service gateway = {
    .name = "gateway",
    .listen = "127.0.0.1:8080",
    .routes = routes,
    .migrations = service_migrations,
    .config = config,
    .start = start,
    .stop = stop,
    .edge = true, /* metrics on 127.0.0.1:<port + 1100>, a per-address connection cap */
    .ready = souk_proxy_ready, /* at start: not before every upstream answered a probe */
    .serve = serve,
    .serve_drain = uv_serve_drain,
};

int main(int argc, char **argv) { return souk_main(argc, argv, &gateway); }

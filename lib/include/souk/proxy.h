/* proxy.h: the asynchronous reverse proxy the gateway is made of. An upstream is a
 * service with one or more instances; a few event-loop threads run every upstream
 * exchange on curl-multi with keep-alive pools, so a waiting client holds no pool
 * thread: souk_proxy_forward() suspends the request and resumes it with the answer.
 * Instances are chosen by least outstanding requests (ties round robin), probed on
 * /readyz, ejected on connection errors, and guarded by a circuit breaker each. An
 * instance ejected only because its probe timed out still takes requests while no
 * instance of its upstream is healthy (a slow instance is not a dead one). An instance
 * named by host name is resolved by a thread of the proxy's (at start, every
 * resolve_interval_ms, and soon after a connection to it fails), keeping the last good
 * answer while resolution fails, for a data path that connects by address. */
#ifndef SOUK_PROXY_H
#define SOUK_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

struct souk_req;
struct souk_upstream;

struct souk_proxy_conf {
    long timeout_ms; /* one attempt, connect to last byte */
    long connect_timeout_ms;
    int retries;              /* extra attempts, on another instance, for retryable requests */
    int breaker_failures;     /* consecutive failures that open an instance's breaker */
    long breaker_open_ms;     /* how long it stays open before one trial request */
    long health_interval_ms;  /* GET /readyz on every instance this often; 0: never */
    long probe_port_offset;   /* probe on the instance's port + this (plain HTTP); 0: its own */
    long ready_wait_ms;       /* at start, souk_proxy_ready() waits this long at most */
    size_t max_response;      /* cap on an upstream response body, bytes */
    size_t max_connections;   /* keep-alive connections kept open across all upstreams */
    size_t threads;           /* event loops, each its own curl multi and pool; 0: 1 */
    long resolve_interval_ms; /* instances named by host name are resolved again this often */
};

/* Declare an upstream before souk_proxy_start(): name is for logs and metrics
 * ("catalog"), urls a comma-separated list of base URLs ("http://127.0.0.1:8082,
 * http://127.0.0.1:9082"). Returns NULL on a malformed or empty list (logged). */
struct souk_upstream *souk_upstream_new(const char *name, const char *urls);
const char *souk_upstream_name(const struct souk_upstream *u);
size_t souk_upstream_instances(const struct souk_upstream *u);
/* Instances that would take a request now (healthy, breaker not open). */
size_t souk_upstream_available(const struct souk_upstream *u);

/* Start and stop the event-loop threads. Start returns 0 or a SOUK_E* code. Stop
 * after the server has drained: requests still in flight are answered 503. */
int souk_proxy_start(const struct souk_proxy_conf *conf);
void souk_proxy_stop(void);

/* Start-up readiness, for the gateway's /readyz: false until every upstream has had
 * an instance answer its /readyz probe (instances not seen up yet are probed every
 * 100 ms meanwhile), or until ready_wait_ms has passed. Once true it stays true: an
 * upstream that goes down later costs only its own routes (503 no_upstream), never
 * the gateway's readiness. True at once when probes are off (health_interval_ms 0). */
bool souk_proxy_ready(void);

/* Forward r to an instance of u: method, path (re-encoded), query, body, and the
 * headers Authorization, Content-Type, Accept, Accept-Language, Idempotency-Key,
 * If-Match, If-None-Match, If-Modified-Since, User-Agent; plus our X-Request-Id,
 * traceparent and X-Forwarded-For. Nothing else the client sent passes (identity and
 * internal headers cannot be forged). The upstream's status, body and end-to-end
 * headers become r's response; headers already set on r (CORS) are kept.
 * A request is retried on another instance when it was never sent (connection
 * refused) or when it is idempotent (GET, HEAD, PUT, DELETE, OPTIONS, or any
 * method with Idempotency-Key) and failed in transport or with 502/503/504.
 * Returns SOUK_SUSPEND: the request is resumed with the answer, 503 no_upstream
 * when no instance is available, 502 bad_gateway or 504 upstream_timeout. */
int souk_proxy_forward(struct souk_req *r, struct souk_upstream *u);

/* ---- the same instances, breakers and health for a data path of its own ----
 * (the gateway's libuv engine: services/gateway/uv_serve.c). One implementation of
 * balancing: souk_proxy_forward() goes through these too. Thread-safe. */

#define SOUK_PROXY_ADDRS_MAX 8 /* addresses kept per instance */

union souk_proxy_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

struct souk_proxy_target {
    int index;            /* the instance within its upstream (a bit in a tried mask) */
    const char *host;     /* as written in the URL, without brackets: "127.0.0.1", "::1" */
    int port;             /* 80 when the URL names none */
    const char *hostport; /* "127.0.0.1:8082": the Host header, the metrics' label */
    bool https;
    /* where to connect, port included, in the order to try them (one that failed
     * goes last): the literal address, or the host name's last good resolution.
     * naddr 0: a host name that has not resolved yet. */
    union souk_proxy_addr addr[SOUK_PROXY_ADDRS_MAX];
    size_t naddr;
};

/* How an attempt ended. */
enum souk_proxy_outcome {
    SOUK_PROXY_ANSWERED, /* a whole response: status says which */
    SOUK_PROXY_REFUSED,  /* never sent: the connection was refused */
    SOUK_PROXY_LOST,     /* the connection failed while sending or before an answer */
    SOUK_PROXY_TIMEOUT,  /* no answer in timeout_ms */
    SOUK_PROXY_FAILED,   /* another transport error (a malformed answer) */
    SOUK_PROXY_TOO_BIG,  /* the answer passed max_response: not the instance's fault */
};

/* The least-outstanding instance of u not in tried (bit i: instance i), counted as
 * outstanding until its souk_proxy_report(). False when none would take a request. */
bool souk_proxy_pick(struct souk_upstream *u, unsigned tried, struct souk_proxy_target *t);
/* The end of an attempt begun by souk_proxy_pick(): the breaker, passive ejection (a
 * refused or lost connection), metrics. status is the answer's when ANSWERED. */
void souk_proxy_report(struct souk_upstream *u, int index, enum souk_proxy_outcome o, int status,
                       uint64_t duration_ns);
/* Connecting to addr, one of a target's, failed (refused, unreachable, timed out): it
 * goes last in the instance's list, and a host name is resolved again soon (at most
 * once a second). addr NULL: the target had no address at all. Thread-safe; never
 * blocks on a lookup. */
void souk_proxy_address_failed(struct souk_upstream *u, int index, const struct sockaddr *addr);
/* A request sent again on another instance (the retries metric). */
void souk_proxy_count_retry(struct souk_upstream *u);
/* The decoded path and raw query as sent upstream: path percent-encoded again (RFC
 * 3986 pchar and "/" stay), "?query" after it. Returns the length written into out
 * (NUL-terminated), or -1 for a "." or ".." segment (never sent: 404) or when it
 * does not fit in cap (3 × the path + the query + 2 always does). */
long souk_proxy_encode_path(const char *path, const char *query, char *out, size_t cap);
/* Is this upstream response header one the gateway does not pass on: one that
 * describes the connection, one the gateway sets itself, or an internal X-Souk-*?
 * name is n bytes, any case. */
bool souk_proxy_hop_header(const char *name, size_t n);
/* The configuration souk_proxy_start() was given. */
const struct souk_proxy_conf *souk_proxy_config(void);

#endif

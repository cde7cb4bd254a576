/* proxy.h: the asynchronous reverse proxy the gateway is made of. An upstream is a
 * service with one or more instances; a few event-loop threads run every upstream
 * exchange on curl-multi with keep-alive pools, so a waiting client holds no pool
 * thread: souk_proxy_forward() suspends the request and resumes it with the answer.
 * Instances are chosen by least outstanding requests (ties round robin), probed on
 * /readyz, ejected on connection errors, and guarded by a circuit breaker each. An
 * instance ejected only because its probe timed out still takes requests while no
 * instance of its upstream is healthy (a slow instance is not a dead one). */
#ifndef SOUK_PROXY_H
#define SOUK_PROXY_H

#include <stdbool.h>
#include <stddef.h>

struct souk_req;
struct souk_upstream;

struct souk_proxy_conf {
    long timeout_ms; /* one attempt, connect to last byte */
    long connect_timeout_ms;
    int retries;             /* extra attempts, on another instance, for retryable requests */
    int breaker_failures;    /* consecutive failures that open an instance's breaker */
    long breaker_open_ms;    /* how long it stays open before one trial request */
    long health_interval_ms; /* GET /readyz on every instance this often; 0: never */
    long probe_port_offset;  /* probe on the instance's port + this (plain HTTP); 0: its own */
    long ready_wait_ms;      /* at start, souk_proxy_ready() waits this long at most */
    size_t max_response;     /* cap on an upstream response body, bytes */
    size_t max_connections;  /* keep-alive connections kept open across all upstreams */
    size_t threads;          /* event loops, each its own curl multi and pool; 0: 1 */
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

#endif

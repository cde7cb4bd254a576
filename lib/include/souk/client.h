/* client.h: outbound HTTP for handlers and workers, hiding libcurl: pooled
 * keep-alive connections (one pool per thread), a timeout on every call, retries
 * with jittered backoff for idempotent calls, a circuit breaker per upstream
 * origin, the service token injected, and the trace context passed on. */
#ifndef SOUK_CLIENT_H
#define SOUK_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct souk_req;

struct souk_call {
    const char *method;   /* "GET", "POST", … */
    const char *url;      /* absolute: "http://127.0.0.1:8082/internal/v1/…" */
    json_t *body;         /* borrowed; sent as application/json when not NULL */
    const char *raw_body; /* or a raw body with raw_type; ignored when body is set */
    const char *raw_type;
    const char *idempotency_key; /* sent as Idempotency-Key; makes a POST retryable */
    const char *bearer;          /* a token to send; NULL with service_token for ours */
    bool service_token;          /* send this service's client-credentials token */
    struct souk_req *parent;     /* pass on its traceparent and request id; may be NULL */
    long timeout_ms;             /* whole call; 0: 3000 */
    int retries;                 /* extra attempts for idempotent calls; -1: 2 */
};

struct souk_response {
    int status; /* HTTP status, or 0 when no response came */
    char *body; /* malloc'd, NUL-terminated; may be NULL */
    size_t len;
    json_t *json; /* parsed body when it was JSON, else NULL */
    char content_type[128];
};

/* Perform the call. Returns 0 when an HTTP response came (any status; see
 * res->status), or SOUK_ETIMEDOUT / SOUK_EIO / SOUK_EUNAVAIL (circuit open) with
 * res->status 0. Always call souk_response_free(res) afterwards. */
int souk_client_do(const struct souk_call *call, struct souk_response *res);
void souk_response_free(struct souk_response *res);

/* The first base URL of a comma-separated peer list (SOUK_CATALOG_URL style),
 * rotating over the entries on each call. */
const char *souk_client_pick(const char *list, char *buf, size_t cap);

#endif

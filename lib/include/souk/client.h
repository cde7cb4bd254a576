/* client.h: outbound HTTP for handlers and workers, hiding libcurl: pooled
 * keep-alive connections (one pool per thread), a timeout on every call, retries
 * with jittered backoff for idempotent calls (souk/backoff.h), a circuit breaker per
 * upstream origin (souk/breaker.h: 5 failures in a row open it for 2 s; refused
 * connections to an origin that never answered do not count), the service token
 * injected, and the trace context passed on. */
#ifndef SOUK_CLIENT_H
#define SOUK_CLIENT_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct souk_req;

struct souk_call {
    const char *method;   /* "GET", "POST", … */
    const char *url;      /* absolute, from souk_client_url(); never pasted together */
    json_t *body;         /* borrowed; sent as application/json when not NULL */
    const char *raw_body; /* or a raw body with raw_type; ignored when body is set */
    const char *raw_type;
    const char *idempotency_key; /* sent as Idempotency-Key; makes a POST retryable */
    const char *bearer;          /* a token to send; NULL with service_token for ours */
    bool service_token;          /* send this service's client-credentials token */
    struct souk_req *parent;     /* pass on its traceparent and request id; may be NULL */
    long timeout_ms;             /* whole call; 0: 3000 */
    int retries;                 /* extra attempts for idempotent calls; -1: 2 */
    /* The peer list url's base was picked from (souk_client_pick), or NULL. An attempt
     * that cannot connect (nothing was sent, whatever the method) or whose peer's
     * circuit is open goes to the next peer of the list at once, each peer once: a
     * replica that is restarting or gone costs no failed call while another answers. */
    const char *peers;
};

struct souk_response {
    int status; /* HTTP status, or 0 when no response came */
    char *body; /* malloc'd, NUL-terminated; may be NULL */
    size_t len;
    json_t *json; /* parsed body when it was JSON, else NULL */
    char content_type[128];
};

/* Perform the call (see peers above for replicas). Returns 0 when an HTTP response
 * came (any status; see
 * res->status), or SOUK_ETIMEDOUT / SOUK_EIO / SOUK_EUNAVAIL (circuit open) with
 * res->status 0, or SOUK_EINVAL (nothing sent) when the URL holds a "." or ".."
 * segment (plain or percent-encoded), a space or a control character. The path is
 * sent exactly as given: libcurl never removes dot segments. Always call
 * souk_response_free(res) afterwards. */
int souk_client_do(const struct souk_call *call, struct souk_response *res);
void souk_response_free(struct souk_response *res);

/* Build the URL of an outbound call into buf: base (a configured peer such as
 * "http://127.0.0.1:8081", trusted) followed by fmt, a literal path template in
 * which each "%s" is replaced by its argument percent-encoded, so that text from a
 * request or a peer is one path segment or one query value and nothing more: only
 * RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) stay as they are, so '/',
 * '?', '#', '&', '=' and '%' can neither add a segment nor start or extend a query.
 * "%lld" takes a long long, "%%" is a '%'; no other conversion is allowed.
 *   souk_client_url(url, sizeof(url), base, "/internal/v1/users/%s/addresses/%s",
 *                   user_id, address_id);
 * Returns 0, SOUK_EINVAL when an argument is NULL or empty, a path argument is "."
 * or "..", or fmt holds another conversion, or SOUK_ETOOBIG when the URL does not
 * fit cap. On error buf holds "" so it can never be used by mistake. */
int souk_client_url(char *buf, size_t cap, const char *base, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int souk_client_vurl(char *buf, size_t cap, const char *base, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* The first base URL of a comma-separated peer list (SOUK_CATALOG_URL style),
 * rotating over the entries on each call. */
const char *souk_client_pick(const char *list, char *buf, size_t cap);

#endif

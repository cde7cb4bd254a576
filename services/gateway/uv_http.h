/* uv_http.h: the request view of the gateway's libuv engine (uv_serve.c): a thin
 * wrapper over Debian's http-parser, which does the framing (RFC 9112: Content-Length,
 * chunked, pipelining); this keeps the target, the headers and the body, each capped,
 * and decides the early answers (400, 413, 414, 431). No libuv here: unit-tested alone. */
#ifndef GATEWAY_UV_HTTP_H
#define GATEWAY_UV_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/buf.h"

#define GW_URL_MAX     8192  /* the request target; longer is 414 */
#define GW_HEAD_MAX    32768 /* the target and every header name and value; more is 431 */
#define GW_HEADERS_MAX 64    /* headers in one request; more is 431 */

enum gw_state {
    GW_READING, /* more bytes wanted */
    GW_DONE,    /* a whole request: answer it, then gw_request_next() */
    GW_ERROR,   /* malformed or over a cap: answer q->error and close */
};

struct gw_header {
    const char *name, *value; /* NUL-terminated, in head */
};

struct gw_request;

/* Called once the headers are in: the body cap for this request (the route's), or
 * -status to refuse it before its body is read. May send "100 Continue". */
typedef long (*gw_head_fn)(struct gw_request *q, void *arg);

struct gw_request {
    http_parser p;
    enum gw_state state;
    int error;        /* the status to answer when state is GW_ERROR */
    bool bad_framing; /* ...because of RFC 9112 §6.3's rules (400 bad_framing, 501) */
    gw_head_fn on_head;
    void *arg;
    const char *method; /* "GET" */
    const char *url;    /* the target as sent, in head */
    size_t url_len;
    struct gw_header h[GW_HEADERS_MAX];
    size_t nh;
    char head[GW_HEAD_MAX];
    size_t head_len;
    bool in_value; /* the last piece was a header value */
    bool expect_continue;
    bool keep_alive;
    struct souk_buf body; /* NUL-terminated; body.max is this request's cap (on_head's) */
};

/* Start a connection's parser: every request on it calls on_head(q, arg). */
void gw_request_init(struct gw_request *q, gw_head_fn on_head, void *arg);
/* Feed bytes; returns how many were used. On GW_DONE the rest belongs to the next
 * request (pipelining): call gw_request_next() and feed it again. */
size_t gw_request_feed(struct gw_request *q, const char *data, size_t n);
/* Ready the parser for the connection's next request (keeps the body's buffer). */
void gw_request_next(struct gw_request *q);
void gw_request_free(struct gw_request *q);
/* A header's value by name (any case), or NULL; the first when sent twice. */
const char *gw_request_header(const struct gw_request *q, const char *name);

/* Split an origin-form target into the decoded path and its raw query (after '?',
 * without a fragment), both NUL-terminated in path (cap bytes): *query points after
 * the path's NUL, "" when none. Returns 0, or 400 for a target that is not
 * origin-form, a bad or NUL escape; 414 when they do not fit. */
int gw_split_target(const char *target, char *path, size_t cap, const char **query);

#endif

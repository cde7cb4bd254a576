/* server_int.h: what the files of the server module share, and nothing more: the
 * request path (server.c), the service main that sets it up and runs its listeners
 * (service.c), and the connection guard that keeps slow and misbehaving clients
 * from holding connections (server_conn.c). Not a public contract. */
#ifndef SOUK_SERVER_INT_H
#define SOUK_SERVER_INT_H

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/realip.h"
#include "souk/server.h"

/* A listening daemon: the public one (the service's routes; TLS when configured) or
 * the admin one (/healthz, /readyz, /metrics only). The daemon's callbacks get it as
 * their closure. */
struct souk__listener {
    struct MHD_Daemon *daemon;
    const struct souk_router *router;
    size_t route_base; /* router index + route_base = index into routes[] */
    bool tls;
};

/* What the service main sets before the listeners start, and the request path
 * reads (the counters and flags it also writes). */
struct souk__server {
    const struct souk_route *routes;  /* the service's, the events', then the built-ins */
    size_t nroutes;                   /* index nroutes is the "other" metrics series */
    size_t kit_routes_from;           /* routes from here on are the kit's own: not traced */
    const struct souk_router *router; /* all of routes, for requests made without HTTP */
    size_t max_body;                  /* SOUK_MAX_BODY, for routes without their own */
    bool access_log;                  /* SOUK_ACCESS_LOG */
    const struct souk_realip *trusted_proxies; /* whose X-Forwarded-For is believed */
    char hsts[64]; /* the Strict-Transport-Security value under TLS; "" for none */
    _Atomic long inflight;
    atomic_bool draining;
};
extern struct souk__server souk__srv;

/* The listeners' libmicrohttpd callbacks (MHD_AccessHandlerCallback with the
 * listener as cls, and MHD_OPTION_NOTIFY_COMPLETED). */
enum MHD_Result souk__server_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                        const char *method, const char *version, const char *upload,
                                        size_t *upload_size, void **con_cls);
void souk__server_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                               enum MHD_RequestTerminationCode toe);

/* ---- a route's access rule (server_auth.c) ---- */

/* Verify a bearer token (without "Bearer ") and fill who: 0, SOUK_EAUTH with why
 * set (an invalid token), or SOUK_EUNAVAIL (no keys to check it with now). */
typedef int (*souk__verifier)(const char *token, struct souk_identity *who, char *why,
                              size_t whycap);
/* The verifier the server uses, set by the auth module when it starts (the server
 * is below auth and never calls it by name). Until one is set, a route that needs a
 * token answers 503 auth_unavailable. */
void souk__server_set_verifier(souk__verifier fn);
/* Why access was refused: the HTTP status (401, 403, 503), the problem's code, the
 * RFC 6750 error for the challenge (NULL: a challenge without one, or none for 503)
 * and the detail. */
struct souk__denial {
    int status;
    const char *code;
    const char *error;
    char detail[128];
};
/* The decision for what requires need (and scope, for SOUK_SERVICE) given the
 * Authorization value (NULL when absent): 0 with who filled, or the status with d
 * filled. HTTP routes and gRPC methods both decide with this. */
int souk__access_check(enum souk_auth need, const char *scope, const char *authorization,
                       struct souk_identity *who, struct souk__denial *d);
/* Check r's credentials against what route requires and fill who. Returns 0 to go
 * on, or the status of the problem it set (401 with WWW-Authenticate, 403, 503 with
 * Retry-After). */
int souk__server_check_access(struct souk_req *r, const struct souk_route *route,
                              struct souk_identity *who);

/* ---- the connection guard (server_conn.c) ---- */

/* Start the guard's thread: a connection gets header_s seconds from accept to send
 * its first request's headers, and idle_s + header_s after each answer for the next
 * one (idle keep-alive alone is MHD's SOUK_CONN_TIMEOUT). Registers the
 * http_connections_closed_total counter. 0 or a negative error code. */
int souk__conn_start(int64_t header_s, int64_t idle_s);
/* Stop the thread and close lingering sockets; after the daemons have stopped. */
void souk__conn_stop(void);

/* MHD_OPTION_NOTIFY_CONNECTION callback for the listeners the guard watches. */
void souk__conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe);
/* The client address of every request on c, worked out when it opened: true with
 * *client set (c's peer, which is no trusted proxy), or false when it depends on the
 * request (a trusted proxy's X-Forwarded-For) or c is not watched by the guard. */
bool souk__conn_peer(struct MHD_Connection *c, const char **client);
/* c's peer address as text (inet_ntop), or "-" when unknown (server.c). */
void souk__server_peer(struct MHD_Connection *c, char peer[INET6_ADDRSTRLEN]);
/* A request's headers have arrived: no deadline until its answer is done. */
void souk__conn_headers_done(struct MHD_Connection *c);
/* A request on c is over (answered or abandoned): the next one's deadline starts. */
void souk__conn_request_done(struct MHD_Connection *c);
/* An answer was queued before the request body was read (MHD closes the connection
 * after it): when MHD closes, shut down our side and read the rest for a while, so
 * the close sends no reset that would destroy the answer before the client reads it. */
void souk__conn_linger(struct MHD_Connection *c);

/* ---- requests made without HTTP (server.c; the gRPC bridge in grpc_bridge.c) ---- */

struct souk__kv {
    const char *key, *value;
};

/* What a request made elsewhere carries: everything is borrowed for its life. */
struct souk__synth {
    const char *method;           /* "POST" */
    const char *path;             /* decoded, as libmicrohttpd would pass it */
    const struct souk__kv *query; /* decoded parameters, in order */
    size_t nquery;
    const struct souk__kv *headers; /* looked up in any case */
    size_t nheaders;
    json_t *body;                    /* the parsed body (souk_req_json's answer); NULL: none */
    const struct souk_identity *who; /* established by the caller's own access check */
    const char *request_id, *traceparent, *client;
    /* a handler that returned SOUK_SUSPEND resumed: the answer is ready (any thread) */
    void (*resumed)(struct souk_req *r, void *arg);
    void *arg;
};

/* What a synthesized request's handler answered: a JSON body or problem kept as
 * JSON (json, borrowed), or a rendered body (body/len, e.g. a replayed response). */
struct souk__answer {
    int status;
    json_t *json;
    const char *body;
    size_t len;
    const char *content_type;
};

/* The route method and path resolve to (an index into the full table), or -404 or
 * -405 like souk_router_match. */
int souk__server_route_find(const char *method, const char *path);
const struct souk_route *souk__server_route_at(int idx); /* NULL when out of range */
/* Run the matching route's handler for s (no access check: s->who stands). *out is
 * the request, to read with souk__server_synth_answer and free with
 * souk__server_synth_free. Returns the status, or SOUK_SUSPEND when the handler
 * waits: then s->resumed(r) is called later and nothing must touch *out before. */
int souk__server_synth_run(const struct souk__synth *s, struct souk_req **out);
void souk__server_synth_answer(struct souk_req *r, struct souk__answer *a);
void souk__server_synth_free(struct souk_req *r);

#endif

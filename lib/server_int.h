/* server_int.h: what the files of the server module share, and nothing more: the
 * request path (server.c), the service main that sets it up and runs its listeners
 * (service.c), and the connection guard that keeps slow and misbehaving clients
 * from holding connections (server_conn.c). Not a public contract. */
#ifndef SOUK_SERVER_INT_H
#define SOUK_SERVER_INT_H

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
    const struct souk_route *routes;           /* the service's, the events', then the built-ins */
    size_t nroutes;                            /* index nroutes is the "other" metrics series */
    size_t max_body;                           /* SOUK_MAX_BODY, for routes without their own */
    bool access_log;                           /* SOUK_ACCESS_LOG */
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
/* A request's headers have arrived: no deadline until its answer is done. */
void souk__conn_headers_done(struct MHD_Connection *c);
/* A request on c is over (answered or abandoned): the next one's deadline starts. */
void souk__conn_request_done(struct MHD_Connection *c);
/* An answer was queued before the request body was read (MHD closes the connection
 * after it): when MHD closes, shut down our side and read the rest for a while, so
 * the close sends no reset that would destroy the answer before the client reads it. */
void souk__conn_linger(struct MHD_Connection *c);

#endif

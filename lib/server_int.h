/* server_int.h: what server.c shares with server_conn.c, the connection guard that
 * keeps slow and misbehaving clients from holding connections (a deadline for
 * request headers, a lingering close after an early answer). Not a public contract. */
#ifndef SOUK_SERVER_INT_H
#define SOUK_SERVER_INT_H

#include <microhttpd.h>
#include <stdint.h>

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

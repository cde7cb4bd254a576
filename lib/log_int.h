/* log_int.h: what the log module offers the rest of the kit and no service: the
 * request context a thread's lines carry, the access line, buffered writes, and the
 * masking and escaping the log applies (the server and the handler kit use them).
 * Not a public contract. */
#ifndef SOUK_LOG_INT_H
#define SOUK_LOG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "souk/log.h"

/* The request context that lines logged from this thread carry: http.request.id, and
 * trace.id and span.id taken from a W3C traceparent ("00-<trace>-<span>-<flags>"; one
 * that is not well formed adds neither). NULL clears. The strings must outlive the
 * context: the caller clears it before they go. */
void souk__log_set_context(const char *request_id, const char *traceparent);
/* The context set on this thread (NULLs when none), so that code answering a request
 * from another thread can lend it the request's context and put back what was there. */
void souk__log_get_context(const char **request_id, const char **traceparent);

/* One request as the access log records it (ECS: http.*, url.path, event.duration…). */
struct souk__access {
    const char *method, *path;
    const char *route;       /* the matched pattern (souk.route), or NULL */
    const char *request_id;  /* http.request.id */
    const char *traceparent; /* ours, as passed on: trace.id and span.id */
    const char *client;      /* the peer's address, or "-" when unknown */
    int status;
    size_t bytes;            /* response body */
    uint64_t duration_ns;    /* event.duration: ECS counts nanoseconds */
    const char *grpc_status; /* a gRPC call's status name ("NOT_FOUND"), NULL for HTTP */
};

/* Write the access line of a finished request through souk__log_buffered. The path is
 * masked with souk__redact_digits first: a client may put what it should not in a URL. */
void souk__log_access(const struct souk__access *a);

/* Lines that may wait a little (the access log): kept per thread and written
 * when 16 KiB have gathered or the oldest is 100 ms old, so a busy server makes
 * one write(2) per many requests. A kill -9 loses at most the last 100 ms.
 * souk__log_flush() writes everything held (the drain calls it). */
void souk__log_buffered(const char *line, size_t len);
void souk__log_flush(void);

/* Mask in place every run of SOUK_REDACT_DIGITS or more digits (card numbers),
 * even when split by '-' or ' ': what could be a card number is never logged. */
#define SOUK_REDACT_DIGITS 13
void souk__redact_digits(char *s);

/* Append s to buf as the inside of a JSON string, escaped; never writes past cap.
 * Returns the new length (truncating, never splitting an escape). */
size_t souk__json_escape(char *buf, size_t len, size_t cap, const char *s);

#endif

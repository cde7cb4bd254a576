/* log.h: logs as JSON lines in the Elastic Common Schema (ECS), on stderr, one object per
 * line written with a single write(2) so lines from several threads never interleave.
 * Filebeat or Elastic Agent ingest them as they are (docs/operations.md, deploy/README.md). */
#ifndef SOUK_LOG_H
#define SOUK_LOG_H

#include <stddef.h>
#include <stdint.h>

/* The ECS version the lines follow; every field we write has the same name and type
 * from ECS 8.0 to 9.4. */
#define SOUK_ECS_VERSION "8.11.0"

enum souk_log_level { SOUK_LOG_DEBUG, SOUK_LOG_INFO, SOUK_LOG_WARN, SOUK_LOG_ERROR };

/* Set once at start: the service name put on every line (service.name, event.dataset)
 * and the minimum level. Before it, lines say service.name "souk". */
void souk_log_init(const char *service, enum souk_log_level min);
int souk_log_level_parse(const char *s, enum souk_log_level *out);
int souk_log_enabled(enum souk_log_level level);

/* souk_log(level, msg, fields, ...): one line with @timestamp, log.level, message (msg),
 * ecs.version, service.name, event.dataset, the request context (below) and the extra
 * fields given by fields, a jansson pack format for an object, e.g.
 *   souk_log(SOUK_LOG_INFO, "listening", "{s:s,s:i}", "addr", a, "threads", n);
 * or NULL for none. A bad format logs the message alone. The extra fields are named so:
 * - a key with a dot is an ECS field name and is written as given ("user.id", "url.full");
 * - a few plain keys have an ECS home and go there: "error" (a string) → error.message,
 *   "url" (a string) → url.full, "status" (an integer: an HTTP status) →
 *   http.response.status_code, "code" (a string) → error.code, "method" (a string) →
 *   http.request.method;
 * - every other key goes under our own field set: "order_id" → souk.order_id (ECS's
 *   advice for custom fields: nest them under a proper name).
 * A key naming a field the line already carries goes under souk. with its dots as '_'.
 * Elasticsearch maps a field once: give a key the same JSON type wherever it is used,
 * or the lines that disagree are rejected at ingestion (tests/e2e/test_log_ecs.py checks). */
void souk_log(enum souk_log_level level, const char *msg, const char *fields, ...);

#define souk_info(msg, ...)  souk_log(SOUK_LOG_INFO, msg, __VA_ARGS__)
#define souk_warn(msg, ...)  souk_log(SOUK_LOG_WARN, msg, __VA_ARGS__)
#define souk_error(msg, ...) souk_log(SOUK_LOG_ERROR, msg, __VA_ARGS__)

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

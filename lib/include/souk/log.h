/* log.h: logs as JSON lines in the Elastic Common Schema (ECS), on stderr, one object per
 * line written with a single write(2) so lines from several threads never interleave.
 * Filebeat or Elastic Agent ingest them as they are (docs/operations.md, deploy/README.md). */
#ifndef SOUK_LOG_H
#define SOUK_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "souk/souk.h" /* SOUK_ECS_VERSION: the version the lines follow */

enum souk_log_level { SOUK_LOG_DEBUG, SOUK_LOG_INFO, SOUK_LOG_WARN, SOUK_LOG_ERROR };

/* Set once at start: the service name put on every line (service.name, event.dataset)
 * and the minimum level. Before it, lines say service.name "souk". */
void souk_log_init(const char *service, enum souk_log_level min);
int souk_log_level_parse(const char *s, enum souk_log_level *out);
int souk_log_enabled(enum souk_log_level level);

/* souk_log(level, msg, fields, ...): one line with @timestamp, log.level, message (msg),
 * ecs.version, service.name, event.dataset, the request context (the request id and
 * trace of the request the thread is answering, when there is one) and the extra
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

/* souk_log_config_error(fmt, ...): the one line of a service that refuses its
 * configuration at start: log.level "error", message "configuration error", and the
 * printf-style text (which variable, what it expects; never a secret) as error.message.
 * Usable from the first moment (before souk_log_init() the line says service.name
 * "souk"); it allocates nothing. The caller still exits, with status 2. */
__attribute__((format(printf, 1, 2))) void souk_log_config_error(const char *fmt, ...);

#define souk_info(msg, ...)  souk_log(SOUK_LOG_INFO, msg, __VA_ARGS__)
#define souk_warn(msg, ...)  souk_log(SOUK_LOG_WARN, msg, __VA_ARGS__)
#define souk_error(msg, ...) souk_log(SOUK_LOG_ERROR, msg, __VA_ARGS__)

#endif

/* log.h: JSON-lines logging to stderr, one object per line, written with a single
 * write(2) so lines from several threads never interleave. Lines logged while a
 * request is being handled carry its request_id and trace_id. */
#ifndef SOUK_LOG_H
#define SOUK_LOG_H

enum souk_log_level { SOUK_LOG_DEBUG, SOUK_LOG_INFO, SOUK_LOG_WARN, SOUK_LOG_ERROR };

/* Set once at start: the service name put on every line and the minimum level. */
void souk_log_init(const char *service, enum souk_log_level min);
int souk_log_level_parse(const char *s, enum souk_log_level *out);
int souk_log_enabled(enum souk_log_level level);

/* souk_log(level, msg, fields, ...): fields is a jansson pack format for an object
 * of extra fields, e.g. souk_log(SOUK_LOG_INFO, "listening", "{s:s,s:i}", "addr", a,
 * "threads", n); or NULL for none. A bad format logs the message alone. */
void souk_log(enum souk_log_level level, const char *msg, const char *fields, ...);

#define souk_info(msg, ...)  souk_log(SOUK_LOG_INFO, msg, __VA_ARGS__)
#define souk_warn(msg, ...)  souk_log(SOUK_LOG_WARN, msg, __VA_ARGS__)
#define souk_error(msg, ...) souk_log(SOUK_LOG_ERROR, msg, __VA_ARGS__)

/* The request context that lines logged from this thread carry (NULL to clear). */
void souk__log_set_context(const char *request_id, const char *trace_id);

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

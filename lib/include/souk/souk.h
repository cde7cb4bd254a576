/* souk.h: the kit's common ground: error codes, small macros, and the umbrella
 * include a service needs. Library calls return 0 (or a count) on success and a
 * negative SOUK_E* code on failure; souk_strerror() names the code. */
#ifndef SOUK_SOUK_H
#define SOUK_SOUK_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum souk_err {
    SOUK_OK = 0,
    SOUK_ENOMEM = -1,    /* allocation failed */
    SOUK_EINVAL = -2,    /* bad argument or input */
    SOUK_ENOTFOUND = -3, /* no such thing */
    SOUK_ECONFLICT = -4, /* constraint or state conflict */
    SOUK_EDB = -5,       /* database error */
    SOUK_EIO = -6,       /* I/O or network error */
    SOUK_ETIMEDOUT = -7, /* deadline passed */
    SOUK_EBUSY = -8,     /* resource busy, try again */
    SOUK_ETOOBIG = -9,   /* input over its cap */
    SOUK_EAUTH = -10,    /* authentication failed */
    SOUK_EUNAVAIL = -11, /* peer unavailable (circuit open, refused) */
};

const char *souk_strerror(int err);

#define SOUK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SOUK_UNUSED(x)    ((void)(x))

/* The Elastic Common Schema version the log lines follow (log.h); every field we write
 * has the same name and type from ECS 8.0 to 9.4. */
#define SOUK_ECS_VERSION "8.11.0"

/* Out of memory is not recoverable in a service: say so in one ECS error line
 * ("out of memory", written without allocating) and abort. */
void *souk_xmalloc(size_t n);
void *souk_xcalloc(size_t n, size_t size);
void *souk_xrealloc(void *p, size_t n);
char *souk_xstrdup(const char *s);
void souk_oom(void) __attribute__((noreturn));
/* The service.name of souk_oom()'s line ("souk" until then): souk_log_init() sets it,
 * the logger being a layer above this one. The string must outlive the process. */
void souk_oom_set_service(const char *service);

/* n unpredictable bytes (kernel randomness, pooled per thread). */
void souk_random(void *out, size_t n);

/* Monotonic and wall clocks. */
uint64_t souk_now_ns(void); /* CLOCK_MONOTONIC */
int64_t souk_wall_ms(void); /* milliseconds since the epoch */
/* RFC 3339 UTC with milliseconds: "2026-11-25T16:27:32.123Z" (25 bytes with NUL;
 * the buffer is larger so the compiler can see any year fits). */
#define SOUK_TIME_MAX 48
void souk_time_rfc3339(int64_t ms, char out[SOUK_TIME_MAX]);
void souk_time_now(char out[SOUK_TIME_MAX]);

#endif

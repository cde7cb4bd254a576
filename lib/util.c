/* util.c: error names, allocation that aborts on failure, clocks and RFC 3339
 * time: the small things every other module needs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>
#include <unistd.h>

#include "souk/souk.h"

const char *souk_strerror(int err)
{
    switch (err) {
    case SOUK_OK:
        return "ok";
    case SOUK_ENOMEM:
        return "out of memory";
    case SOUK_EINVAL:
        return "invalid argument";
    case SOUK_ENOTFOUND:
        return "not found";
    case SOUK_ECONFLICT:
        return "conflict";
    case SOUK_EDB:
        return "database error";
    case SOUK_EIO:
        return "i/o error";
    case SOUK_ETIMEDOUT:
        return "timed out";
    case SOUK_EBUSY:
        return "busy";
    case SOUK_ETOOBIG:
        return "too big";
    case SOUK_EAUTH:
        return "authentication failed";
    case SOUK_EUNAVAIL:
        return "unavailable";
    }
    return "unknown error";
}

static const char *oom_service = "souk";

void souk_oom_set_service(const char *service) { oom_service = service; }

void souk_oom(void)
{
    /* log.c's line, built here on the stack: nothing may allocate now. A service
     * name is [a-z0-9-] (services.txt): nothing in it to escape. */
    char ts[SOUK_TIME_MAX], line[512];
    souk_time_now(ts);
    int len =
        snprintf(line, sizeof(line),
                 "{\"@timestamp\":\"%s\",\"log.level\":\"error\",\"message\":\"out of "
                 "memory\",\"ecs.version\":\"" SOUK_ECS_VERSION "\",\"service.name\":\"%.64s\","
                 "\"event.dataset\":\"%.64s\"}\n",
                 ts, oom_service, oom_service);
    if (len > 0 && (size_t)len < sizeof(line)) {
        ssize_t n = write(STDERR_FILENO, line, (size_t)len);
        (void)n;
    }
    abort();
}

void *souk_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        souk_oom();
    return p;
}

void *souk_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        souk_oom();
    return p;
}

void *souk_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL)
        souk_oom();
    return p;
}

char *souk_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(souk_xmalloc(n), s, n);
}

uint64_t souk_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t souk_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void souk_time_rfc3339(int64_t ms, char out[SOUK_TIME_MAX])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, SOUK_TIME_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

void souk_time_now(char out[SOUK_TIME_MAX]) { souk_time_rfc3339(souk_wall_ms(), out); }

/* Random bytes for ids and trace context come from a per-thread pool refilled
 * from the kernel (getrandom via libsodium) 512 bytes at a time: the same source,
 * one system call per ~20 requests instead of three per request. */
#define RANDOM_POOL 512

void souk_random(void *out, size_t n)
{
    static _Thread_local unsigned char pool[RANDOM_POOL];
    static _Thread_local size_t left;
    unsigned char *o = out;
    if (n > RANDOM_POOL / 4) {
        randombytes_buf(out, n);
        return;
    }
    if (left < n) {
        randombytes_buf(pool, sizeof(pool));
        left = sizeof(pool);
    }
    memcpy(o, pool + sizeof(pool) - left, n);
    sodium_memzero(pool + sizeof(pool) - left, n); /* handed out once only */
    left -= n;
}

/* log.c: logs as JSON lines in the Elastic Common Schema. Each line is built in a stack
 * buffer and written with one write(2); extra fields come from a jansson pack format and
 * are named by the rules in log.h; the access line is formatted here too, so every ECS
 * name the platform writes lives in this file. */
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log_int.h"
#include "souk/log.h"
#include "souk/souk.h"

/* Every string field is escaped within a cap of its own, so the fixed part of a line
 * always fits whole and a line is always one valid JSON object. */
#define LOG_LINE_MAX    4096
#define ACCESS_LINE_MAX 4096
#define MESSAGE_MAX     1024 /* escaped bytes of message, and of url.path */
#define ID_MAX          256  /* of http.request.id, souk.route, service names */
#define METHOD_MAX      32
#define DATASET_MAX     64
#define TRACEPARENT_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */

static const char *service_name = "souk";
static char dataset[DATASET_MAX] = "souk";
static char access_dataset[DATASET_MAX] = "souk.access";
static enum souk_log_level min_level = SOUK_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

static _Thread_local const char *ctx_request_id;
static _Thread_local const char *ctx_traceparent;

void souk_log_init(const char *service, enum souk_log_level min)
{
    service_name = service;
    souk_oom_set_service(service);
    snprintf(dataset, sizeof(dataset), "%s", service);
    snprintf(access_dataset, sizeof(access_dataset), "%s.access", service);
    min_level = min;
}

int souk_log_level_parse(const char *s, enum souk_log_level *out)
{
    for (size_t i = 0; i < SOUK_ARRAY_LEN(level_names); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum souk_log_level)i;
            return 0;
        }
    }
    return SOUK_EINVAL;
}

int souk_log_enabled(enum souk_log_level level) { return level >= min_level; }

void souk__log_set_context(const char *request_id, const char *traceparent)
{
    ctx_request_id = request_id;
    ctx_traceparent = traceparent;
}

void souk__log_get_context(const char **request_id, const char **traceparent)
{
    *request_id = ctx_request_id;
    *traceparent = ctx_traceparent;
}

/* The length of the well-formed UTF-8 sequence at s, or 0 if it is not one (an
 * overlong form, a surrogate, past U+10FFFF, or cut short). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80 ? 4 : 0;
    }
    return 0;
}

/* Printable ASCII but '"' and '\\': copied as it is, a run at a time. */
static bool plain(unsigned char ch) { return ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\'; }

/* Whether all 8 bytes at s are plain, in a few word operations (the exact whole-word
 * forms of "has a byte below" and "has a zero byte", Hacker's Delight 6-1). */
static bool plain8(const char *s)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t x;
    memcpy(&x, s, 8);
    uint64_t quote = x ^ (ones * '"'), backslash = x ^ (ones * '\\'), del = x ^ (ones * 0x7f);
    uint64_t flags = ((x - ones * 0x20) & ~x) | x | ((quote - ones) & ~quote) |
                     ((backslash - ones) & ~backslash) | ((del - ones) & ~del);
    return (flags & highs) == 0;
}

size_t souk__json_escape(char *buf, size_t len, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *end = s + strlen(s);
    while (s < end) {
        /* the common case (ids, paths, routes): a run of plain bytes, one byte each,
         * as many as the cap leaves room for */
        size_t run = 0;
        while ((size_t)(end - s) - run >= 8 && plain8(s + run))
            run += 8;
        while (plain((unsigned char)s[run]))
            run++;
        if (run > 0) {
            size_t room = cap > len + 1 ? cap - len - 1 : 0;
            if (run > room) {
                memcpy(buf + len, s, room);
                return len + room;
            }
            memcpy(buf + len, s, run);
            len += run;
            s += run;
            continue;
        }
        unsigned char ch = (unsigned char)*s;
        char esc[7];
        const char *out = esc;
        size_t n, in = 1;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\', esc[1] = (char)ch, n = 2;
        } else if (ch == '\n') {
            esc[0] = '\\', esc[1] = 'n', n = 2;
        } else if (ch < 0x20 || ch == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4], esc[5] = hex[ch & 15], n = 6;
        } else if ((in = utf8_len((const unsigned char *)s)) > 0) {
            out = s, n = in; /* JSON carries UTF-8 as it is */
        } else {
            /* not UTF-8 (a %FF in a URL): JSON must be, so the byte becomes U+FFFD */
            out = "\\ufffd", n = 6, in = 1;
        }
        if (len + n >= cap)
            break;
        memcpy(buf + len, out, n);
        len += n;
        s += in;
    }
    return len;
}

void souk__redact_digits(char *s)
{
    /* A run of digits, possibly split by '-' or ' ' as people write card numbers,
     * counts; 13 or more digits in one run is masked whole. */
    while (*s != '\0') {
        if (*s < '0' || *s > '9') {
            s++;
            continue;
        }
        char *start = s, *last = s;
        size_t digits = 0;
        for (; (*s >= '0' && *s <= '9') || ((*s == '-' || *s == ' ') && s[1] >= '0' && s[1] <= '9');
             s++) {
            if (*s >= '0' && *s <= '9') {
                digits++;
                last = s;
            }
        }
        if (digits >= SOUK_REDACT_DIGITS)
            for (char *p = start; p <= last; p++)
                *p = 'X';
    }
}

static size_t put(char *buf, size_t len, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (len + 1 >= cap)
        return len;
    if (len + n >= cap)
        n = cap - len - 1;
    memcpy(buf + len, s, n);
    return len + n;
}

/* ,"name":"value", the value escaped into at most max bytes */
static size_t put_str(char *buf, size_t len, size_t cap, const char *name, const char *value,
                      size_t max)
{
    len = put(buf, len, cap, ",\"");
    len = put(buf, len, cap, name);
    len = put(buf, len, cap, "\":\"");
    len = souk__json_escape(buf, len, len + max < cap ? len + max : cap, value);
    return put(buf, len, cap, "\"");
}

/* value in decimal into num (room for any long long); its length */
static size_t format_int(char num[32], long long value)
{
    char digits[24];
    size_t n = 0, len = 0;
    /* negated as unsigned: LLONG_MIN has no positive twin */
    unsigned long long u = value < 0 ? 0 - (unsigned long long)value : (unsigned long long)value;
    do
        digits[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (value < 0)
        num[len++] = '-';
    while (n > 0)
        num[len++] = digits[--n];
    num[len] = '\0';
    return len;
}

static size_t put_int(char *buf, size_t len, size_t cap, const char *name, long long value)
{
    char num[32];
    format_int(num, value);
    len = put(buf, len, cap, ",\"");
    len = put(buf, len, cap, name);
    len = put(buf, len, cap, "\":");
    return put(buf, len, cap, num);
}

/* souk_time_now's text, "2026-11-29T19:30:05.371Z", with the date and time of day
 * formatted once a second per thread (gmtime and printf cost more than the rest of
 * an access line) and only the milliseconds each time. */
static void time_now(char out[SOUK_TIME_MAX])
{
    static _Thread_local int64_t cached_sec = -1;
    static _Thread_local char cached[SOUK_TIME_MAX];
    static _Thread_local size_t cached_len; /* up to and with the '.' */
    int64_t ms = souk_wall_ms();
    int64_t sec = ms / 1000;
    int frac = (int)(ms % 1000);
    if (ms < 0 || sec != cached_sec) {
        souk_time_rfc3339(ms, out);
        size_t n = strlen(out);
        /* keep the second's part when the text is the usual one ending ".mmmZ" */
        if (ms >= 0 && n >= 5 && out[n - 5] == '.' && out[n - 1] == 'Z') {
            memcpy(cached, out, n - 4);
            cached_len = n - 4;
            cached_sec = sec;
        }
        return;
    }
    memcpy(out, cached, cached_len);
    out[cached_len] = (char)('0' + frac / 100);
    out[cached_len + 1] = (char)('0' + frac / 10 % 10);
    out[cached_len + 2] = (char)('0' + frac % 10);
    out[cached_len + 3] = 'Z';
    out[cached_len + 4] = '\0';
}

/* What every line starts with, in the order the ecs-logging spec asks for: @timestamp,
 * log.level, message; then ecs.version and who wrote it. */
static size_t put_head(char *buf, size_t cap, enum souk_log_level level, const char *msg,
                       const char *ds)
{
    char ts[SOUK_TIME_MAX];
    size_t len = 0;
    time_now(ts);
    len = put(buf, len, cap, "{\"@timestamp\":\"");
    len = put(buf, len, cap, ts);
    len = put(buf, len, cap, "\",\"log.level\":\"");
    len = put(buf, len, cap, level_names[level]);
    len = put(buf, len, cap, "\",\"message\":\"");
    len = souk__json_escape(buf, len, len + MESSAGE_MAX, msg);
    len = put(buf, len, cap, "\",\"ecs.version\":\"" SOUK_ECS_VERSION "\"");
    len = put_str(buf, len, cap, "service.name", service_name, ID_MAX);
    return put_str(buf, len, cap, "event.dataset", ds, ID_MAX);
}

/* trace.id and span.id from a W3C traceparent; nothing if it is not one. */
static size_t put_trace(char *buf, size_t len, size_t cap, const char *tp)
{
    if (tp == NULL || strlen(tp) != TRACEPARENT_LEN || tp[2] != '-' || tp[35] != '-' ||
        tp[52] != '-')
        return len;
    char id[33];
    memcpy(id, tp + 3, 32);
    id[32] = '\0';
    len = put_str(buf, len, cap, "trace.id", id, sizeof(id));
    memcpy(id, tp + 36, 16);
    id[16] = '\0';
    return put_str(buf, len, cap, "span.id", id, sizeof(id));
}

/* Plain keys with an ECS home, taken there only when the value has the type of the
 * ECS field (the same key elsewhere with another meaning keeps to souk.*). */
static const struct {
    const char *key;
    json_type type;
    const char *ecs;
} ecs_homes[] = {
    {"error", JSON_STRING, "error.message"},
    {"url", JSON_STRING, "url.full"},
    {"status", JSON_INTEGER, "http.response.status_code"},
    {"code", JSON_STRING, "error.code"},
    {"method", JSON_STRING, "http.request.method"},
};

/* What the line writes itself: a caller's key with one of these names moves aside. */
static const char *const own_fields[] = {
    "@timestamp",    "log.level",       "message",  "ecs.version", "service.name",
    "event.dataset", "http.request.id", "trace.id", "span.id",
};

static bool is_own_field(const char *name)
{
    for (size_t i = 0; i < SOUK_ARRAY_LEN(own_fields); i++)
        if (strcmp(name, own_fields[i]) == 0)
            return true;
    return false;
}

/* The field name a caller's key is written under (log.h: souk_log). */
static const char *field_name(const char *key, json_t *value, char *buf, size_t size)
{
    for (size_t i = 0; i < SOUK_ARRAY_LEN(ecs_homes); i++)
        if (strcmp(key, ecs_homes[i].key) == 0 && json_typeof(value) == ecs_homes[i].type)
            return ecs_homes[i].ecs;
    if (strchr(key, '.') != NULL && !is_own_field(key))
        return key;
    snprintf(buf, size, "souk.%s", key);
    for (char *p = buf + 5; *p != '\0'; p++)
        if (*p == '.')
            *p = '_';
    return buf;
}

/* The caller's fields, renamed, as the members of one object; NULL if there are none
 * or the pack failed (then *why says why: a string that is not UTF-8, a bad format). */
static char *extra_fields(const char *fields, va_list ap, char why[JSON_ERROR_TEXT_LENGTH])
{
    json_error_t err;
    json_t *obj = json_vpack_ex(&err, 0, fields, ap);
    json_t *named = NULL;
    char *out = NULL;
    const char *key;
    json_t *value;
    why[0] = '\0';
    if (obj == NULL)
        snprintf(why, JSON_ERROR_TEXT_LENGTH, "%s", err.text);
    if (obj == NULL || !json_is_object(obj) || json_object_size(obj) == 0)
        goto out;
    named = json_object();
    json_object_foreach(obj, key, value)
    {
        char buf[128];
        json_object_set(named, field_name(key, value, buf, sizeof(buf)), value);
    }
    out = json_dumps(named, JSON_COMPACT);
out:
    json_decref(named);
    json_decref(obj);
    return out;
}

void souk_log(enum souk_log_level level, const char *msg, const char *fields, ...)
{
    if (level < min_level)
        return;
    char line[LOG_LINE_MAX];
    const size_t cap = sizeof(line) - 2; /* room for "}\n" */
    size_t len = put_head(line, cap, level, msg, dataset);
    if (ctx_request_id != NULL)
        len = put_str(line, len, cap, "http.request.id", ctx_request_id, ID_MAX);
    len = put_trace(line, len, cap, ctx_traceparent);
    if (fields != NULL) {
        va_list ap;
        va_start(ap, fields);
        char why[JSON_ERROR_TEXT_LENGTH];
        char *extra = extra_fields(fields, ap, why);
        va_end(ap);
        if (why[0] != '\0') /* the fields are lost: say so rather than drop them silently */
            len = put_str(line, len, cap, "souk.fields_error", why, ID_MAX);
        /* splice the members of {"a":1} after our own: drop its braces */
        size_t n = extra ? strlen(extra) : 0;
        if (n > 2 && len + n < cap) {
            extra[n - 1] = '\0';
            len = put(line, len, cap, ",");
            len = put(line, len, cap, extra + 1);
        } else if (n > 2) {
            len = put(line, len, cap, ",\"souk.fields_truncated\":true");
        }
        free(extra);
    }
    line[len++] = '}';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void souk_log_config_error(const char *fmt, ...)
{
    char line[LOG_LINE_MAX], why[MESSAGE_MAX];
    const size_t cap = sizeof(line) - 2;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    size_t len = put_head(line, cap, SOUK_LOG_ERROR, "configuration error", dataset);
    len = put_str(line, len, cap, "error.message", why, MESSAGE_MAX);
    line[len++] = '}';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

/* At most max bytes of s (stopping at its end) into out at len; the new length. */
static size_t cat_n(char *out, size_t len, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    memcpy(out + len, s, n);
    return len + n;
}

void souk__log_access(const struct souk__access *a)
{
    char line[ACCESS_LINE_MAX];
    const size_t cap = sizeof(line) - 2;
    char path[MESSAGE_MAX / 2], msg[MESSAGE_MAX];
    size_t plen = cat_n(path, 0, a->path, sizeof(path) - 1);
    path[plen] = '\0';
    souk__redact_digits(path);
    /* what a person reads first in Kibana's log view: "GET /api/v1/products 200", or
     * for gRPC "POST /souk.users.v1.Users/GetAddress NOT_FOUND". Built by hand, not
     * printf (a tenth of the access line's cost): method 16, path 511 and status 24
     * bytes at most always fit msg. */
    size_t m = cat_n(msg, 0, a->method, 16);
    msg[m++] = ' ';
    memcpy(msg + m, path, plen);
    m += plen;
    msg[m++] = ' ';
    if (a->grpc_status != NULL)
        m = cat_n(msg, m, a->grpc_status, 24);
    else
        m += format_int(msg + m, a->status);
    msg[m] = '\0';
    size_t len = put_head(line, cap, SOUK_LOG_INFO, msg, access_dataset);
    len = put_str(line, len, cap, "http.request.id", a->request_id, ID_MAX);
    len = put_trace(line, len, cap, a->traceparent);
    len = put_str(line, len, cap, "http.request.method", a->method, METHOD_MAX);
    len = put_str(line, len, cap, "url.path", path, MESSAGE_MAX);
    len = put_int(line, len, cap, "http.response.status_code", a->status);
    len = put_int(line, len, cap, "http.response.body.bytes", (long long)a->bytes);
    len = put_int(line, len, cap, "event.duration", (long long)a->duration_ns);
    if (a->client != NULL && strcmp(a->client, "-") != 0)
        len = put_str(line, len, cap, "client.ip", a->client, METHOD_MAX * 2);
    if (a->route != NULL)
        len = put_str(line, len, cap, "souk.route", a->route, ID_MAX);
    if (a->grpc_status != NULL)
        len = put_str(line, len, cap, "souk.grpc_status", a->grpc_status, ID_MAX);
    line[len++] = '}';
    line[len++] = '\n';
    souk__log_buffered(line, len);
}

/* ---- buffered lines (the access log): one write(2) per 16 KiB or 100 ms ---- */

#define BUFFER_BYTES  16384
#define BUFFER_AGE_MS 100

struct line_buffer {
    pthread_mutex_t lock; /* the owner thread and the flusher */
    struct line_buffer *next;
    int64_t oldest_ms; /* when the first line still held was added; 0 if empty */
    size_t len;
    char data[BUFFER_BYTES];
};

static struct line_buffer *buffers; /* every thread's, for the flusher */
static pthread_mutex_t buffers_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t flusher_once = PTHREAD_ONCE_INIT;
static _Thread_local struct line_buffer *mine;

/* Called locked. */
static void flush_locked(struct line_buffer *b)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(STDERR_FILENO, b->data + off, b->len - off);
        if (w <= 0)
            break; /* nowhere to log to: drop rather than spin */
        off += (size_t)w;
    }
    b->len = 0;
    b->oldest_ms = 0;
}

static void flush_old(int64_t older_than_ms)
{
    pthread_mutex_lock(&buffers_lock);
    for (struct line_buffer *b = buffers; b != NULL; b = b->next) {
        pthread_mutex_lock(&b->lock);
        if (b->len > 0 && b->oldest_ms <= older_than_ms)
            flush_locked(b);
        pthread_mutex_unlock(&b->lock);
    }
    pthread_mutex_unlock(&buffers_lock);
}

static void *flusher(void *arg)
{
    (void)arg;
    for (;;) {
        usleep(BUFFER_AGE_MS * 1000 / 2);
        flush_old(souk_wall_ms() - BUFFER_AGE_MS);
    }
    return NULL;
}

static void start_flusher(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, flusher, NULL) == 0)
        pthread_detach(t);
}

void souk__log_buffered(const char *line, size_t len)
{
    if (mine == NULL) {
        pthread_once(&flusher_once, start_flusher);
        mine = souk_xcalloc(1, sizeof(*mine));
        pthread_mutex_init(&mine->lock, NULL);
        pthread_mutex_lock(&buffers_lock);
        mine->next = buffers;
        buffers = mine;
        pthread_mutex_unlock(&buffers_lock);
    }
    pthread_mutex_lock(&mine->lock);
    if (mine->len + len > sizeof(mine->data))
        flush_locked(mine);
    if (len > sizeof(mine->data)) {
        ssize_t w = write(STDERR_FILENO, line, len);
        (void)w;
    } else {
        memcpy(mine->data + mine->len, line, len);
        mine->len += len;
        if (mine->oldest_ms == 0)
            mine->oldest_ms = souk_wall_ms();
    }
    pthread_mutex_unlock(&mine->lock);
}

void souk__log_flush(void) { flush_old(INT64_MAX); }

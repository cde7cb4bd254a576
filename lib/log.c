/* log.c: JSON-lines logs. Each line is built in a stack buffer and written with
 * one write(2); extra fields come from a jansson pack format. */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "souk/log.h"
#include "souk/souk.h"

#define LOG_LINE_MAX 4096

static const char *service_name = "souk";
static enum souk_log_level min_level = SOUK_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

static _Thread_local const char *ctx_request_id;
static _Thread_local const char *ctx_trace_id;

void souk_log_init(const char *service, enum souk_log_level min)
{
    service_name = service;
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

void souk__log_set_context(const char *request_id, const char *trace_id)
{
    ctx_request_id = request_id;
    ctx_trace_id = trace_id;
}

size_t souk__json_escape(char *buf, size_t len, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[7];
        size_t n;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\', esc[1] = (char)ch, n = 2;
        } else if (ch == '\n') {
            esc[0] = '\\', esc[1] = 'n', n = 2;
        } else if (ch < 0x20 || ch == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[ch >> 4], esc[5] = hex[ch & 15], n = 6;
        } else {
            esc[0] = (char)ch, n = 1;
        }
        if (len + n >= cap)
            break;
        memcpy(buf + len, esc, n);
        len += n;
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

void souk_log(enum souk_log_level level, const char *msg, const char *fields, ...)
{
    if (level < min_level)
        return;
    char line[LOG_LINE_MAX];
    char ts[SOUK_TIME_MAX];
    const size_t cap = sizeof(line) - 2; /* room for "}\n" */
    size_t len = 0;

    souk_time_now(ts);
    len = put(line, len, cap, "{\"ts\":\"");
    len = put(line, len, cap, ts);
    len = put(line, len, cap, "\",\"level\":\"");
    len = put(line, len, cap, level_names[level]);
    len = put(line, len, cap, "\",\"svc\":\"");
    len = souk__json_escape(line, len, cap, service_name);
    len = put(line, len, cap, "\",\"msg\":\"");
    len = souk__json_escape(line, len, cap, msg);
    len = put(line, len, cap, "\"");
    if (ctx_request_id != NULL) {
        len = put(line, len, cap, ",\"request_id\":\"");
        len = souk__json_escape(line, len, cap, ctx_request_id);
        len = put(line, len, cap, "\"");
    }
    if (ctx_trace_id != NULL) {
        len = put(line, len, cap, ",\"trace_id\":\"");
        len = souk__json_escape(line, len, cap, ctx_trace_id);
        len = put(line, len, cap, "\"");
    }
    if (fields != NULL) {
        va_list ap;
        va_start(ap, fields);
        json_t *obj = json_vpack_ex(NULL, 0, fields, ap);
        va_end(ap);
        if (obj != NULL && json_is_object(obj) && json_object_size(obj) > 0) {
            char *extra = json_dumps(obj, JSON_COMPACT);
            /* splice the members of {"a":1} after our own: drop its braces */
            size_t n = extra ? strlen(extra) : 0;
            if (n > 2 && len + n < cap) {
                extra[n - 1] = '\0';
                len = put(line, len, cap, ",");
                len = put(line, len, cap, extra + 1);
            } else if (n > 2) {
                len = put(line, len, cap, ",\"fields_truncated\":true");
            }
            free(extra);
        }
        json_decref(obj);
    }
    line[len++] = '}';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
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

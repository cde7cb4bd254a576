/* trace.c: W3C Trace Context (the traceparent header parsed strictly, since it comes
 * from anyone) and spans: start with a parent or a sampling decision, attributes,
 * events and links encoded compactly into the span itself, end handing a record to
 * the ring (trace_ring.c). Also the thread's current span and slow-transaction spans.
 * The configuration and the exporter are otlp's (otlp_export.c), a layer above. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "souk/souk.h"
#include "trace_int.h"

#define TRACEPARENT_LEN SOUK_TRACEPARENT_LEN
#define KEY_MAX         64

struct souk__trace_resource souk__trace_res = {"souk", "", "", 0};

static bool enabled;             /* souk__trace_setup gave a ring: record spans */
static bool sample_all = true;   /* ratio 1 */
static uint64_t threshold;       /* ratio < 1: trace ids below this (of 2^64) are sampled */
static uint64_t db_threshold_ns; /* transactions at least this long get a span */
static _Thread_local struct souk_span *current;

/* ---- traceparent ---- */

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return false;
    return true;
}

static bool well_formed(const char *tp)
{
    return tp != NULL && strnlen(tp, TRACEPARENT_LEN + 1) == TRACEPARENT_LEN &&
           strncmp(tp, "00-", 3) == 0 && all_hex(tp + 3, 32) && tp[35] == '-' &&
           all_hex(tp + 36, 16) && tp[52] == '-' && all_hex(tp + 53, 2) && !all_zero(tp + 3, 32) &&
           !all_zero(tp + 36, 16);
}

bool souk_trace_parse(const char *tp, char trace_id[SOUK_TRACE_ID_HEX + 1], char flags[3])
{
    if (!well_formed(tp))
        return false;
    memcpy(trace_id, tp + 3, SOUK_TRACE_ID_HEX);
    trace_id[SOUK_TRACE_ID_HEX] = '\0';
    memcpy(flags, tp + 53, 2);
    flags[2] = '\0';
    return true;
}

static uint8_t hexval(char c) { return (uint8_t)(c <= '9' ? c - '0' : c - 'a' + 10); }

static void unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
}

static char *tohex(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
    return out;
}

bool souk_trace_ctx_parse(const char *tp, struct souk_span_ctx *ctx)
{
    if (!well_formed(tp))
        return false;
    unhex(tp + 3, ctx->trace_id, 16);
    unhex(tp + 36, ctx->span_id, 8);
    uint8_t f;
    unhex(tp + 53, &f, 1);
    ctx->flags = f;
    return true;
}

void souk_trace_ctx_format(const struct souk_span_ctx *ctx, char out[SOUK_TRACEPARENT_LEN + 1])
{
    /* only the sampled flag is ours to pass on (W3C: others are cleared unless known) */
    uint8_t f = ctx->flags & SOUK_TRACE_SAMPLED;
    memcpy(out, "00-", 3);
    tohex(ctx->trace_id, 16, out + 3);
    out[35] = '-';
    tohex(ctx->span_id, 8, out + 36);
    out[52] = '-';
    tohex(&f, 1, out + 53);
}

void souk_trace_id_hex(const struct souk_span_ctx *ctx, char out[SOUK_TRACE_ID_HEX + 1])
{
    tohex(ctx->trace_id, 16, out);
}

/* ---- sampling ---- */

/* TraceIdRatioBased: the last 8 bytes of the id (random) as a number below the
 * threshold, so every service that makes the decision for a trace makes the same one. */
static bool sample(const uint8_t trace_id[16])
{
    if (sample_all)
        return true;
    uint64_t v = 0;
    for (int i = 8; i < 16; i++)
        v = v << 8 | trace_id[i];
    return v < threshold;
}

/* ---- spans ---- */

uint64_t souk_trace_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void new_span_id(uint8_t id[8])
{
    static const uint8_t zero[8];
    do
        souk_random(id, 8);
    while (memcmp(id, zero, 8) == 0);
}

void souk_span_start(struct souk_span *s, enum souk_span_kind kind, const char *name,
                     const struct souk_span_ctx *parent, bool remote)
{
    s->kind = (uint8_t)kind;
    s->status = SOUK_SPAN_UNSET;
    s->dropped = 0;
    s->len = 0;
    s->ended = false;
    s->status_msg[0] = '\0';
    if (parent != NULL) {
        memcpy(s->ctx.trace_id, parent->trace_id, 16);
        memcpy(s->parent_id, parent->span_id, 8);
        s->ctx.flags = parent->flags & SOUK_TRACE_SAMPLED;
        s->has_parent = true;
        s->remote_parent = remote;
    } else {
        static const uint8_t zero[16];
        do
            souk_random(s->ctx.trace_id, 16);
        while (memcmp(s->ctx.trace_id, zero, 16) == 0);
        s->ctx.flags = sample(s->ctx.trace_id) ? SOUK_TRACE_SAMPLED : 0;
        s->has_parent = false;
        s->remote_parent = false;
    }
    new_span_id(s->ctx.span_id);
    souk_trace_ctx_format(&s->ctx, s->traceparent);
    s->recording = enabled && (s->ctx.flags & SOUK_TRACE_SAMPLED) != 0;
    s->name[0] = '\0';
    if (s->recording) {
        souk_span_set_name(s, name);
        s->start_ns = souk_trace_now();
    }
}

void souk_span_start_from(struct souk_span *s, enum souk_span_kind kind, const char *name,
                          const char *traceparent)
{
    struct souk_span_ctx parent;
    bool ok = souk_trace_ctx_parse(traceparent, &parent);
    souk_span_start(s, kind, name, ok ? &parent : NULL, ok);
}

bool souk_span_recording(const struct souk_span *s) { return s->recording && !s->ended; }

const char *souk_span_traceparent(const struct souk_span *s) { return s->traceparent; }

void souk_span_mute(struct souk_span *s)
{
    s->recording = false;
    s->ctx.flags &= (uint8_t)~SOUK_TRACE_SAMPLED;
    souk_trace_ctx_format(&s->ctx, s->traceparent);
}

const struct souk_span_ctx *souk_span_context(const struct souk_span *s) { return &s->ctx; }

void souk_span_set_name(struct souk_span *s, const char *name)
{
    if (s->recording)
        snprintf(s->name, sizeof(s->name), "%s", name ? name : "");
}

void souk_span_set_start(struct souk_span *s, uint64_t unix_ns)
{
    if (s->recording)
        s->start_ns = unix_ns;
}

/* Room for n more bytes of data; false (and the item counted as dropped) when none. */
static bool room(struct souk_span *s, size_t n)
{
    if (!souk_span_recording(s))
        return false;
    if ((size_t)s->len + n > sizeof(s->data)) {
        s->dropped++;
        return false;
    }
    return true;
}

static void put(struct souk_span *s, const void *p, size_t n)
{
    memcpy(s->data + s->len, p, n);
    s->len = (uint16_t)(s->len + n);
}

static void put_u8(struct souk_span *s, uint8_t v) { put(s, &v, 1); }

/* tag, key, type: the start of every attribute; false when the whole will not fit */
static bool attr_head(struct souk_span *s, char tag, const char *key, char type, size_t vlen)
{
    size_t klen = strnlen(key, KEY_MAX);
    if (!room(s, 3 + klen + vlen))
        return false;
    put_u8(s, (uint8_t)tag);
    put_u8(s, (uint8_t)klen);
    put(s, key, klen);
    put_u8(s, (uint8_t)type);
    return true;
}

static void attr_str(struct souk_span *s, char tag, const char *key, const char *value)
{
    if (value == NULL)
        return;
    size_t n = strnlen(value, SOUK_SPAN_VALUE_MAX);
    if (!attr_head(s, tag, key, 's', 2 + n))
        return;
    uint16_t len = (uint16_t)n;
    put(s, &len, 2);
    put(s, value, n);
}

static void attr_int(struct souk_span *s, char tag, const char *key, int64_t value)
{
    if (attr_head(s, tag, key, 'i', 8))
        put(s, &value, 8);
}

void souk_span_set_str(struct souk_span *s, const char *key, const char *value)
{
    attr_str(s, SOUK__TR_ATTR, key, value);
}

void souk_span_set_int(struct souk_span *s, const char *key, int64_t value)
{
    attr_int(s, SOUK__TR_ATTR, key, value);
}

void souk_span_set_bool(struct souk_span *s, const char *key, bool value)
{
    if (attr_head(s, SOUK__TR_ATTR, key, 'b', 1))
        put_u8(s, value ? 1 : 0);
}

void souk_span_set_double(struct souk_span *s, const char *key, double value)
{
    if (attr_head(s, SOUK__TR_ATTR, key, 'd', 8))
        put(s, &value, 8);
}

void souk_span_add_event(struct souk_span *s, const char *name)
{
    size_t n = strnlen(name, KEY_MAX);
    if (!room(s, 2 + n + 8))
        return;
    uint64_t now = souk_trace_now();
    put_u8(s, SOUK__TR_EVENT);
    put_u8(s, (uint8_t)n);
    put(s, name, n);
    put(s, &now, 8);
}

void souk_span_event_str(struct souk_span *s, const char *key, const char *value)
{
    attr_str(s, SOUK__TR_EATTR, key, value);
}

void souk_span_event_int(struct souk_span *s, const char *key, int64_t value)
{
    attr_int(s, SOUK__TR_EATTR, key, value);
}

void souk_span_add_link(struct souk_span *s, const struct souk_span_ctx *ctx)
{
    if (!room(s, 1 + 16 + 8 + 1))
        return;
    put_u8(s, SOUK__TR_LINK);
    put(s, ctx->trace_id, 16);
    put(s, ctx->span_id, 8);
    put_u8(s, ctx->flags);
}

void souk_span_set_status(struct souk_span *s, enum souk_span_status status, const char *msg)
{
    if (!souk_span_recording(s))
        return;
    s->status = (uint8_t)status;
    snprintf(s->status_msg, sizeof(s->status_msg), "%s",
             status == SOUK_SPAN_ERROR && msg ? msg : "");
}

void souk_span_end(struct souk_span *s)
{
    if (s->ended)
        return;
    s->ended = true;
    if (!s->recording)
        return;
    s->end_ns = souk_trace_now();
    if (s->end_ns < s->start_ns)
        s->end_ns = s->start_ns; /* the wall clock stepped back */
    struct souk__span_rec h;
    size_t nl = strlen(s->name), ml = strlen(s->status_msg);
    unsigned char rec[sizeof(h) + SOUK_SPAN_NAME_MAX + SOUK_SPAN_STATUS_MAX + SOUK_SPAN_DATA_MAX];
    memset(&h, 0, sizeof(h));
    h.len = (uint32_t)(sizeof(h) + nl + ml + s->len);
    h.kind = s->kind;
    h.status = s->status;
    h.flags = s->ctx.flags;
    h.has_parent = s->has_parent;
    h.remote_parent = s->remote_parent;
    h.namelen = (uint8_t)nl;
    h.msglen = (uint8_t)ml;
    h.dropped = s->dropped;
    h.datalen = s->len;
    memcpy(h.trace_id, s->ctx.trace_id, 16);
    memcpy(h.span_id, s->ctx.span_id, 8);
    if (s->has_parent)
        memcpy(h.parent_id, s->parent_id, 8);
    h.start_ns = s->start_ns;
    h.end_ns = s->end_ns;
    memcpy(rec, &h, sizeof(h));
    memcpy(rec + sizeof(h), s->name, nl);
    memcpy(rec + sizeof(h) + nl, s->status_msg, ml);
    memcpy(rec + sizeof(h) + nl + ml, s->data, s->len);
    souk__trace_ring_put(rec, h.len);
}

/* ---- the current span ---- */

struct souk_span *souk_trace_enter(struct souk_span *s)
{
    struct souk_span *prev = current;
    current = s;
    return prev;
}

void souk_trace_leave(struct souk_span *previous) { current = previous; }

struct souk_span *souk_trace_current(void) { return current; }

/* ---- slow transactions ---- */

void souk__trace_tx_begin(struct souk__tx_span *t)
{
    struct souk_span *cur = current;
    t->on = cur != NULL && souk_span_recording(cur);
    if (!t->on)
        return;
    t->parent = cur->ctx;
    t->start_ns = souk_trace_now();
}

void souk__trace_tx_end(struct souk__tx_span *t, const char *db_system, bool committed, int rc)
{
    if (!t->on)
        return;
    t->on = false;
    uint64_t now = souk_trace_now();
    if (now < t->start_ns || now - t->start_ns < db_threshold_ns)
        return;
    struct souk_span s;
    bool inproc = strcmp(db_system, "sqlite") == 0; /* semconv: INTERNAL for in-process */
    char name[SOUK_SPAN_NAME_MAX];
    snprintf(name, sizeof(name), "transaction %s", souk__trace_res.service);
    souk_span_start(&s, inproc ? SOUK_SPAN_INTERNAL : SOUK_SPAN_CLIENT, name, &t->parent, false);
    souk_span_set_start(&s, t->start_ns);
    souk_span_set_str(&s, "db.system.name", db_system);
    souk_span_set_str(&s, "db.namespace", souk__trace_res.service);
    souk_span_set_str(&s, "db.operation.name", committed ? "COMMIT" : "ROLLBACK");
    if (rc != 0) {
        souk_span_set_str(&s, "error.type", souk_strerror(rc));
        souk_span_set_status(&s, SOUK_SPAN_ERROR, souk_strerror(rc));
    }
    souk_span_end(&s);
}

/* ---- set-up ---- */

void souk__trace_setup(const char *service, const char *instance, double ratio, int64_t db_ms,
                       size_t ring_bytes)
{
    snprintf(souk__trace_res.service, sizeof(souk__trace_res.service), "%s", service);
    snprintf(souk__trace_res.instance, sizeof(souk__trace_res.instance), "%s", instance);
    gethostname(souk__trace_res.host, sizeof(souk__trace_res.host) - 1);
    souk__trace_res.pid = (long)getpid();
    sample_all = ratio >= 1.0;
    threshold = ratio <= 0.0 ? 0 : (uint64_t)ldexp(ratio, 64);
    db_threshold_ns = db_ms > 0 ? (uint64_t)db_ms * 1000000u : 0;
    souk__trace_ring_setup(ring_bytes);
    enabled = ratio > 0.0 && ring_bytes > 0;
}

/* otlp.c: the ring's span records (trace_int.h) as OTLP JSON: one
 * ExportTraceServiceRequest per batch, in protobuf's JSON mapping as OTLP/HTTP asks
 * (ids as hex, 64-bit numbers as strings, enums as numbers), for the exporter and the
 * admin's trace view. Reads records defensively: a bad item ends its list. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log_int.h"
#include "otlp_int.h"
#include "souk/souk.h"
#include "trace_int.h"

/* ---- a text buffer with a cap ---- */

void souk__tbuf_put(struct souk__tbuf *b, const char *s, size_t n)
{
    if (!b->over && souk_buf_put(&b->b, s, n) != 0)
        b->over = true;
}

void souk__tbuf_str(struct souk__tbuf *b, const char *s) { souk__tbuf_put(b, s, strlen(s)); }

void souk__tbuf_free(struct souk__tbuf *b)
{
    souk_buf_free(&b->b);
    b->over = false;
}

/* "s" as a JSON string, escaped (UTF-8 kept, anything else U+FFFD). */
static void put_json(struct souk__tbuf *b, const char *s, size_t n)
{
    char raw[SOUK_SPAN_VALUE_MAX + 1], esc[SOUK_SPAN_VALUE_MAX * 6 + 3];
    if (n > SOUK_SPAN_VALUE_MAX)
        n = SOUK_SPAN_VALUE_MAX;
    memcpy(raw, s, n);
    raw[n] = '\0';
    esc[0] = '"';
    size_t len = souk__json_escape(esc, 1, sizeof(esc) - 1, raw);
    esc[len++] = '"';
    souk__tbuf_put(b, esc, len);
}

static void put_hex(struct souk__tbuf *b, const uint8_t *id, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char out[2 * 16 + 2];
    size_t k = 0;
    out[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        out[k++] = hex[id[i] >> 4];
        out[k++] = hex[id[i] & 15];
    }
    out[k++] = '"';
    souk__tbuf_put(b, out, k);
}

/* int64 and fixed64 are strings in protobuf's JSON mapping */
static void put_u64(struct souk__tbuf *b, uint64_t v)
{
    char num[32];
    souk__tbuf_put(b, num, (size_t)snprintf(num, sizeof(num), "\"%llu\"", (unsigned long long)v));
}

static void put_int(struct souk__tbuf *b, long long v)
{
    char num[32];
    souk__tbuf_put(b, num, (size_t)snprintf(num, sizeof(num), "%lld", v));
}

static void kv_str(struct souk__tbuf *b, bool first, const char *key, const char *value)
{
    souk__tbuf_str(b, first ? "{\"key\":" : ",{\"key\":");
    put_json(b, key, strlen(key));
    souk__tbuf_str(b, ",\"value\":{\"stringValue\":");
    put_json(b, value, strlen(value));
    souk__tbuf_str(b, "}}");
}

/* A record's data, read item by item. */
struct reader {
    const unsigned char *p, *end;
};

static bool get(struct reader *r, void *out, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return false;
    memcpy(out, r->p, n);
    r->p += n;
    return true;
}

/* One attribute (after its tag) as an OTLP KeyValue; false on a malformed item. */
static bool attr_json(struct reader *r, struct souk__tbuf *b, bool first)
{
    uint8_t klen, type;
    char key[256];
    if (!get(r, &klen, 1) || !get(r, key, klen) || !get(r, &type, 1))
        return false;
    souk__tbuf_str(b, first ? "{\"key\":" : ",{\"key\":");
    put_json(b, key, klen);
    souk__tbuf_str(b, ",\"value\":{");
    if (type == 's') {
        uint16_t n;
        char v[SOUK_SPAN_VALUE_MAX];
        if (!get(r, &n, 2) || n > sizeof(v) || !get(r, v, n))
            return false;
        souk__tbuf_str(b, "\"stringValue\":");
        put_json(b, v, n);
    } else if (type == 'i') {
        int64_t v;
        if (!get(r, &v, 8))
            return false;
        char num[40];
        souk__tbuf_put(b, num,
                       (size_t)snprintf(num, sizeof(num), "\"intValue\":\"%lld\"", (long long)v));
    } else if (type == 'b') {
        uint8_t v;
        if (!get(r, &v, 1))
            return false;
        souk__tbuf_str(b, v ? "\"boolValue\":true" : "\"boolValue\":false");
    } else if (type == 'd') {
        double v;
        if (!get(r, &v, 8))
            return false;
        char num[48];
        if (isfinite(v))
            snprintf(num, sizeof(num), "\"doubleValue\":%.17g", v);
        else /* protobuf's JSON mapping spells these as strings */
            snprintf(num, sizeof(num), "\"doubleValue\":\"%s\"",
                     isnan(v) ? "NaN"
                     : v > 0  ? "Infinity"
                              : "-Infinity");
        souk__tbuf_str(b, num);
    } else {
        return false;
    }
    souk__tbuf_str(b, "}}");
    return true;
}

/* Skip one item (after its tag); false on a malformed one. */
static bool skip(struct reader *r, uint8_t tag)
{
    uint8_t n, type;
    char tmp[SOUK_SPAN_VALUE_MAX];
    switch (tag) {
    case SOUK__TR_ATTR:
    case SOUK__TR_EATTR:
        if (!get(r, &n, 1) || !get(r, tmp, n) || !get(r, &type, 1))
            return false;
        if (type == 's') {
            uint16_t len;
            return get(r, &len, 2) && len <= sizeof(tmp) && get(r, tmp, len);
        }
        return get(r, tmp, type == 'b' ? 1 : 8);
    case SOUK__TR_EVENT:
        return get(r, &n, 1) && get(r, tmp, n) && get(r, tmp, 8);
    case SOUK__TR_LINK:
        return get(r, tmp, 25);
    }
    return false;
}

/* The span's attributes (tag 'a') as a JSON array's members. */
static void attrs_json(const unsigned char *data, size_t len, struct souk__tbuf *b)
{
    struct reader r = {data, data + len};
    bool first = true;
    uint8_t tag;
    while (get(&r, &tag, 1)) {
        bool ok = tag == SOUK__TR_ATTR ? attr_json(&r, b, first) : skip(&r, tag);
        if (!ok)
            return;
        first = first && tag != SOUK__TR_ATTR;
    }
}

static void events_json(const unsigned char *data, size_t len, struct souk__tbuf *b)
{
    struct reader r = {data, data + len};
    bool first = true, open = false, first_attr = true;
    uint8_t tag;
    while (get(&r, &tag, 1)) {
        if (tag == SOUK__TR_EVENT) {
            uint8_t n;
            char name[256];
            uint64_t t;
            if (!get(&r, &n, 1) || !get(&r, name, n) || !get(&r, &t, 8))
                break;
            souk__tbuf_str(b, open ? "]}" : "");
            souk__tbuf_str(b, first ? "{\"timeUnixNano\":" : ",{\"timeUnixNano\":");
            put_u64(b, t);
            souk__tbuf_str(b, ",\"name\":");
            put_json(b, name, n);
            souk__tbuf_str(b, ",\"attributes\":[");
            first = false;
            open = true;
            first_attr = true;
        } else if (tag == SOUK__TR_EATTR && open) {
            if (!attr_json(&r, b, first_attr))
                break;
            first_attr = false;
        } else if (!skip(&r, tag)) {
            break;
        }
    }
    if (open)
        souk__tbuf_str(b, "]}");
}

static void links_json(const unsigned char *data, size_t len, struct souk__tbuf *b)
{
    struct reader r = {data, data + len};
    bool first = true;
    uint8_t tag;
    while (get(&r, &tag, 1)) {
        if (tag != SOUK__TR_LINK) {
            if (!skip(&r, tag))
                return;
            continue;
        }
        uint8_t tid[16], sid[8], flags;
        if (!get(&r, tid, 16) || !get(&r, sid, 8) || !get(&r, &flags, 1))
            return;
        souk__tbuf_str(b, first ? "{\"traceId\":" : ",{\"traceId\":");
        put_hex(b, tid, 16);
        souk__tbuf_str(b, ",\"spanId\":");
        put_hex(b, sid, 8);
        souk__tbuf_str(b, "}");
        first = false;
    }
}

static void span_json(const unsigned char *rec, struct souk__tbuf *b, bool first)
{
    struct souk__span_rec h;
    memcpy(&h, rec, sizeof(h));
    const unsigned char *name = rec + sizeof(h), *msg = name + h.namelen, *data = msg + h.msglen;
    souk__tbuf_str(b, first ? "{\"traceId\":" : ",{\"traceId\":");
    put_hex(b, h.trace_id, 16);
    souk__tbuf_str(b, ",\"spanId\":");
    put_hex(b, h.span_id, 8);
    if (h.has_parent) {
        souk__tbuf_str(b, ",\"parentSpanId\":");
        put_hex(b, h.parent_id, 8);
    }
    souk__tbuf_str(b, ",\"name\":");
    put_json(b, (const char *)name, h.namelen);
    souk__tbuf_str(b, ",\"kind\":");
    put_int(b, h.kind);
    souk__tbuf_str(b, ",\"startTimeUnixNano\":");
    put_u64(b, h.start_ns);
    souk__tbuf_str(b, ",\"endTimeUnixNano\":");
    put_u64(b, h.end_ns);
    souk__tbuf_str(b, ",\"attributes\":[");
    attrs_json(data, h.datalen, b);
    souk__tbuf_str(b, "]");
    if (h.dropped > 0) {
        souk__tbuf_str(b, ",\"droppedAttributesCount\":");
        put_int(b, h.dropped);
    }
    souk__tbuf_str(b, ",\"events\":[");
    events_json(data, h.datalen, b);
    souk__tbuf_str(b, "],\"links\":[");
    links_json(data, h.datalen, b);
    souk__tbuf_str(b, "],\"status\":{");
    if (h.status != SOUK_SPAN_UNSET) {
        souk__tbuf_str(b, "\"code\":");
        put_int(b, h.status);
        if (h.msglen > 0) {
            souk__tbuf_str(b, ",\"message\":");
            put_json(b, (const char *)msg, h.msglen);
        }
    }
    souk__tbuf_str(b, "}}");
}

void souk__otlp_encode(struct souk__tbuf *b, const unsigned char *recs, size_t len)
{
    const struct souk__trace_resource *res = &souk__trace_res;
    souk__tbuf_str(b, "{\"resourceSpans\":[");
    if (len > 0) {
        char pid[40];
        souk__tbuf_str(b, "{\"resource\":{\"attributes\":[");
        kv_str(b, true, "service.name", res->service);
        kv_str(b, false, "service.namespace", "souk");
        kv_str(b, false, "service.instance.id", res->instance);
        kv_str(b, false, "host.name", res->host);
        souk__tbuf_str(b, ",{\"key\":\"process.pid\",\"value\":{\"intValue\":");
        snprintf(pid, sizeof(pid), "\"%ld\"}}", res->pid);
        souk__tbuf_str(b, pid);
        kv_str(b, false, "telemetry.sdk.name", "souk");
        kv_str(b, false, "telemetry.sdk.language", "c");
        souk__tbuf_str(b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"souk\"},\"spans\":[");
        bool first = true;
        for (size_t off = 0; off < len;) {
            struct souk__span_rec h;
            memcpy(&h, recs + off, sizeof(h));
            span_json(recs + off, b, first);
            first = false;
            off += h.len;
        }
        souk__tbuf_str(b, "]}]}");
    }
    souk__tbuf_str(b, "]}");
}

/* trace_spans.c: tests lib/trace.c's spans (parents, sampling, muting, the room for
 * attributes), lib/trace_ring.c's ring (eviction against a model under random record
 * sizes, lookups by trace id, the exporter's cursor and what it lost) and lib/otlp.c's
 * OTLP JSON (parsed back with jansson: ids, kinds, times, attributes of every type,
 * events, links, status, escaping). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp_int.h"
#include "souk/otlp.h"
#include "souk/souk.h"
#include "souk/trace.h"
#include "test.h"
#include "trace_int.h"

static void setup_ring(size_t bytes) { souk__trace_setup("unit", "host:1", 1.0, 10, bytes); }

static void test_children_share_the_trace(void **state)
{
    (void)state;
    setup_ring(64 * 1024);
    struct souk_span root, child;
    souk_span_start(&root, SOUK_SPAN_SERVER, "GET /x", NULL, false);
    assert_true(souk_span_recording(&root));
    souk_span_start(&child, SOUK_SPAN_CLIENT, "GET", souk_span_context(&root), false);
    assert_memory_equal(child.ctx.trace_id, root.ctx.trace_id, 16);
    assert_memory_equal(child.parent_id, root.ctx.span_id, 8);
    assert_memory_not_equal(child.ctx.span_id, root.ctx.span_id, 8);
    struct souk_span_ctx back;
    assert_true(souk_trace_ctx_parse(souk_span_traceparent(&child), &back));
    assert_memory_equal(back.span_id, child.ctx.span_id, 8);
    assert_int_equal(back.flags, SOUK_TRACE_SAMPLED);
    souk_span_end(&child);
    souk_span_end(&root);
    souk_span_end(&root); /* twice: a no-op */
    char id[SOUK_TRACE_ID_HEX + 1];
    souk_trace_id_hex(souk_span_context(&root), id);
    size_t n;
    char *doc = souk_otlp_collect(id, &n);
    assert_int_equal(n, 2);
    free(doc);
    /* a remote parent's unsampled flag is followed: nothing recorded, 00 passed on */
    struct souk_span s;
    souk_span_start_from(&s, SOUK_SPAN_SERVER, "x",
                         "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    assert_false(souk_span_recording(&s));
    assert_int_equal(strncmp(souk_span_traceparent(&s), "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36),
                     0);
    assert_string_equal(souk_span_traceparent(&s) + 53, "00");
    souk_span_set_str(&s, "k", "v"); /* cheap no-ops */
    souk_span_end(&s);
    /* a malformed one starts a new, sampled trace */
    souk_span_start_from(&s, SOUK_SPAN_SERVER, "x", "00-zz");
    assert_true(souk_span_recording(&s) && !s.has_parent);
    souk_span_mute(&s);
    assert_false(souk_span_recording(&s));
    assert_string_equal(souk_span_traceparent(&s) + 53, "00");
    souk_span_end(&s);
}

static void test_ratio_zero_records_nothing(void **state)
{
    (void)state;
    souk__trace_setup("unit", "host:1", 0.0, 10, 4096);
    struct souk_span s;
    souk_span_start(&s, SOUK_SPAN_SERVER, "x", NULL, false);
    assert_false(souk_span_recording(&s));
    assert_string_equal(souk_span_traceparent(&s) + 53, "00");
    souk_span_end(&s);
    setup_ring(4096);
}

static void test_room_is_bounded_and_counted(void **state)
{
    (void)state;
    setup_ring(64 * 1024);
    struct souk_span s;
    char big[SOUK_SPAN_VALUE_MAX * 2];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    souk_span_start(&s, SOUK_SPAN_INTERNAL, "room", NULL, false);
    for (int i = 0; i < 10; i++)
        souk_span_set_str(&s, "long", big); /* cut to SOUK_SPAN_VALUE_MAX, then no room */
    assert_true(s.len <= SOUK_SPAN_DATA_MAX);
    assert_true(s.dropped > 0);
    souk_span_end(&s);
}

/* ---- the ring against a model ---- */

#define MODEL_MAX 4096

static void test_ring_keeps_the_newest_that_fit(void **state)
{
    (void)state;
    enum { RING = 3000 };
    souk__trace_ring_setup(RING);
    size_t sizes[MODEL_MAX];
    uint8_t ids[MODEL_MAX];
    size_t n = 0;
    srand(7);
    for (int round = 0; round < 2000; round++) {
        unsigned char rec[700];
        struct souk__span_rec h;
        memset(&h, 0, sizeof(h));
        size_t extra = (size_t)rand() % (sizeof(rec) - sizeof(h));
        h.len = (uint32_t)(sizeof(h) + extra);
        h.trace_id[0] = (uint8_t)(rand() % 4);
        h.trace_id[15] = 1;
        h.span_id[0] = (uint8_t)round;
        memcpy(rec, &h, sizeof(h));
        memset(rec + sizeof(h), 'a' + round % 26, extra);
        souk__trace_ring_put(rec, h.len);
        sizes[n % MODEL_MAX] = h.len;
        ids[n % MODEL_MAX] = h.trace_id[0];
        n++;
        /* the model: the newest records whose sizes sum to at most RING */
        size_t used = 0, kept = 0;
        while (kept < n && kept < MODEL_MAX && used + sizes[(n - 1 - kept) % MODEL_MAX] <= RING)
            used += sizes[(n - 1 - kept++) % MODEL_MAX];
        for (uint8_t t = 0; t < 4; t++) {
            uint8_t tid[16] = {t};
            tid[15] = 1;
            size_t want = 0;
            for (size_t k = 0; k < kept; k++)
                want += ids[(n - 1 - k) % MODEL_MAX] == t;
            unsigned char *out;
            size_t len;
            size_t got = souk__trace_ring_find(tid, &out, &len);
            assert_int_equal(got, want);
            for (size_t off = 0; off < len;) { /* whole records, each of its trace */
                struct souk__span_rec r;
                memcpy(&r, out + off, sizeof(r));
                assert_int_equal(r.trace_id[0], t);
                for (size_t b = sizeof(r); b < r.len; b++)
                    assert_int_equal(out[off + b], out[off + sizeof(r)]);
                off += r.len;
            }
            free(out);
        }
    }
}

static void test_the_exporter_takes_in_order_and_counts_what_it_lost(void **state)
{
    (void)state;
    souk__trace_ring_setup(1000);
    souk__trace_ring_export(true, 1000);
    struct souk__span_rec h;
    memset(&h, 0, sizeof(h));
    h.len = sizeof(h);
    for (int i = 0; i < 3; i++) {
        h.span_id[0] = (uint8_t)i;
        souk__trace_ring_put(&h, sizeof(h));
    }
    unsigned char buf[4096];
    size_t len;
    uint64_t lost;
    assert_int_equal(souk__trace_ring_take(buf, sizeof(buf), 2, &len, &lost), 2);
    assert_int_equal(lost, 0);
    assert_int_equal(len, 2 * sizeof(h));
    assert_int_equal(buf[offsetof(struct souk__span_rec, span_id)], 0);
    assert_int_equal(souk__trace_ring_pending(), 1);
    /* more than the ring holds while the exporter is away: the oldest are lost */
    size_t fit = 1000 / sizeof(h);
    for (size_t i = 0; i < fit + 5; i++) {
        h.span_id[0] = (uint8_t)(10 + i);
        souk__trace_ring_put(&h, sizeof(h));
    }
    size_t got = souk__trace_ring_take(buf, sizeof(buf), 1000, &len, &lost);
    assert_int_equal(got, fit);
    assert_int_equal(lost, 1 + 5); /* the one left behind, and five of the new */
    struct souk__span_rec first;
    memcpy(&first, buf, sizeof(first));
    assert_int_equal(first.span_id[0], 10 + 5);
    assert_int_equal(souk__trace_ring_take(buf, sizeof(buf), 1000, &len, &lost), 0);
    souk__trace_ring_export(false, 0);
}

/* ---- OTLP JSON ---- */

static json_t *attr(json_t *kvs, const char *key)
{
    json_t *kv;
    size_t i;
    json_array_foreach(kvs, i, kv) if (strcmp(json_string_value(json_object_get(kv, "key")), key) ==
                                       0) return json_object_get(kv, "value");
    return NULL;
}

static void test_otlp_json(void **state)
{
    (void)state;
    setup_ring(64 * 1024);
    struct souk_span p, s;
    souk_span_start(&p, SOUK_SPAN_PRODUCER, "create order.confirmed", NULL, false);
    souk_span_start(&s, SOUK_SPAN_CONSUMER, "quote \" back \\ nl \n bad \xff", &p.ctx, true);
    souk_span_set_str(&s, "s", "caf\xc3\xa9 \x01");
    souk_span_set_int(&s, "i", -42);
    souk_span_set_bool(&s, "b", true);
    souk_span_set_double(&s, "d", 0.5);
    souk_span_set_double(&s, "nan", 0.0 / 0.0);
    souk_span_add_event(&s, "retry");
    souk_span_event_str(&s, "error.type", "timeout");
    souk_span_add_link(&s, &p.ctx);
    souk_span_set_status(&s, SOUK_SPAN_ERROR, "went \"wrong\"");
    souk_span_end(&s);
    souk_span_end(&p);
    char id[SOUK_TRACE_ID_HEX + 1], sid[17], pid[17];
    souk_trace_id_hex(&s.ctx, id);
    snprintf(sid, sizeof(sid), "%.16s", s.traceparent + 36);
    snprintf(pid, sizeof(pid), "%.16s", p.traceparent + 36);
    size_t n;
    char *doc = souk_otlp_collect(id, &n);
    assert_int_equal(n, 2);
    json_error_t err;
    json_t *j = json_loads(doc, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL)
        fail_msg("not JSON: %s: %s", err.text, doc);
    json_t *rs = json_array_get(json_object_get(j, "resourceSpans"), 0);
    json_t *res = json_object_get(json_object_get(rs, "resource"), "attributes");
    assert_string_equal(
        json_string_value(json_object_get(attr(res, "service.name"), "stringValue")), "unit");
    assert_true(json_is_string(json_object_get(attr(res, "process.pid"), "intValue")));
    json_t *spans = json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans");
    assert_int_equal(json_array_size(spans), 2);
    json_t *c = json_array_get(spans, 0); /* ended first */
    assert_string_equal(json_string_value(json_object_get(c, "traceId")), id);
    assert_string_equal(json_string_value(json_object_get(c, "spanId")), sid);
    assert_string_equal(json_string_value(json_object_get(c, "parentSpanId")), pid);
    assert_int_equal(json_integer_value(json_object_get(c, "kind")), SOUK_SPAN_CONSUMER);
    assert_true(json_is_string(json_object_get(c, "startTimeUnixNano")));
    assert_true(strtoull(json_string_value(json_object_get(c, "endTimeUnixNano")), NULL, 10) >=
                strtoull(json_string_value(json_object_get(c, "startTimeUnixNano")), NULL, 10));
    const char *name = json_string_value(json_object_get(c, "name"));
    assert_non_null(strstr(name, "quote \" back \\ nl \n bad "));
    json_t *a = json_object_get(c, "attributes");
    assert_int_equal(json_array_size(a), 5);
    assert_non_null(
        strstr(json_string_value(json_object_get(attr(a, "s"), "stringValue")), "caf\xc3\xa9"));
    assert_string_equal(json_string_value(json_object_get(attr(a, "i"), "intValue")), "-42");
    assert_true(json_is_true(json_object_get(attr(a, "b"), "boolValue")));
    assert_true(json_real_value(json_object_get(attr(a, "d"), "doubleValue")) == 0.5);
    assert_string_equal(json_string_value(json_object_get(attr(a, "nan"), "doubleValue")), "NaN");
    json_t *ev = json_array_get(json_object_get(c, "events"), 0);
    assert_string_equal(json_string_value(json_object_get(ev, "name")), "retry");
    assert_string_equal(json_string_value(json_object_get(
                            attr(json_object_get(ev, "attributes"), "error.type"), "stringValue")),
                        "timeout");
    json_t *ln = json_array_get(json_object_get(c, "links"), 0);
    assert_string_equal(json_string_value(json_object_get(ln, "spanId")), pid);
    json_t *st = json_object_get(c, "status");
    assert_int_equal(json_integer_value(json_object_get(st, "code")), SOUK_SPAN_ERROR);
    assert_string_equal(json_string_value(json_object_get(st, "message")), "went \"wrong\"");
    assert_null(json_object_get(json_array_get(spans, 1), "parentSpanId"));
    json_decref(j);
    free(doc);
    /* not a trace id: NULL; one nobody holds: an empty document */
    assert_null(souk_otlp_collect("ABCD", &n));
    assert_null(souk_otlp_collect("00000000000000000000000000000000", &n));
    doc = souk_otlp_collect("0123456789abcdef0123456789abcdef", &n);
    assert_int_equal(n, 0);
    assert_string_equal(doc, "{\"resourceSpans\":[]}");
    free(doc);
}

/* The encoder's buffer cap: past it, nothing more and over set. */
static void test_tbuf_cap(void **state)
{
    (void)state;
    struct souk__tbuf b = SOUK__TBUF_INIT(10);
    souk__tbuf_str(&b, "12345");
    souk__tbuf_str(&b, "67890");
    assert_true(b.over);
    assert_string_equal(b.b.p, "12345");
    souk__tbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_children_share_the_trace),
        cmocka_unit_test(test_ratio_zero_records_nothing),
        cmocka_unit_test(test_room_is_bounded_and_counted),
        cmocka_unit_test(test_ring_keeps_the_newest_that_fit),
        cmocka_unit_test(test_the_exporter_takes_in_order_and_counts_what_it_lost),
        cmocka_unit_test(test_otlp_json),
        cmocka_unit_test(test_tbuf_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

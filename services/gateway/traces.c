/* traces.c: GET /api/v1/admin/traces/{id} (admin; docs/tracing.md). One trace as every
 * service still holds it in its ring of recent spans: the gateway's own in-process,
 * each instance of each upstream's from its GET /internal/v1/traces/{id}, put
 * together as a tree (spans in depth-first order, children by start time, each with
 * its depth) beside the OTLP documents they came from. No collector needed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "souk/client.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/otlp.h"
#include "souk/souk.h"

#define PEER_TIMEOUT_MS 2000 /* an instance that does not answer by then is listed */
#define INSTANCES_MAX   16   /* of one upstream */
#define SPANS_MAX       4096 /* of one trace: what is past it is counted, not shown */
#define URL_MAX         1024

static const char *const *names, *const *urls;
static size_t nups;

void traces_init(const char *const *up_names, const char *const *up_urls, size_t n)
{
    names = up_names;
    urls = up_urls;
    nups = n;
}

/* The value of an OTLP AnyValue as plain JSON (strings, numbers, booleans). */
static json_t *plain_value(json_t *v)
{
    json_t *x;
    if ((x = json_object_get(v, "stringValue")) != NULL)
        return json_incref(x);
    if ((x = json_object_get(v, "intValue")) != NULL) /* int64: a string in OTLP JSON */
        return json_is_string(x) ? json_integer(strtoll(json_string_value(x), NULL, 10))
                                 : json_incref(x);
    if ((x = json_object_get(v, "boolValue")) != NULL || (x = json_object_get(v, "doubleValue")))
        return json_incref(x);
    return json_null();
}

/* [{key, value}] as {key: value} */
static json_t *plain_attrs(json_t *kvs)
{
    json_t *out = json_object(), *kv;
    size_t i;
    json_array_foreach(kvs, i, kv)
    {
        const char *k = json_string_value(json_object_get(kv, "key"));
        if (k != NULL)
            json_object_set_new(out, k, plain_value(json_object_get(kv, "value")));
    }
    return out;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Each span of an OTLP document, flattened with its service, appended to spans. */
static void flatten(json_t *doc, json_t *spans, size_t *over)
{
    json_t *rs, *ss, *sp;
    size_t i, j, k;
    json_array_foreach(json_object_get(doc, "resourceSpans"), i, rs)
    {
        json_t *res = plain_attrs(json_object_get(json_object_get(rs, "resource"), "attributes"));
        json_array_foreach(json_object_get(rs, "scopeSpans"), j, ss)
            json_array_foreach(json_object_get(ss, "spans"), k, sp)
        {
            if (json_array_size(spans) >= SPANS_MAX) {
                (*over)++;
                continue;
            }
            json_t *o = json_pack(
                "{s:s,s:s,s:s,s:O?,s:O?,s:s,s:s,s:O?,s:o,s:O?,s:O?}", "span_id", str(sp, "spanId"),
                "name", str(sp, "name"), "service", str(res, "service.name"), "instance",
                json_object_get(res, "service.instance.id"), "kind", json_object_get(sp, "kind"),
                "start_time_unix_nano", str(sp, "startTimeUnixNano"), "end_time_unix_nano",
                str(sp, "endTimeUnixNano"), "status", json_object_get(sp, "status"), "attributes",
                plain_attrs(json_object_get(sp, "attributes")), "events",
                json_object_get(sp, "events"), "links", json_object_get(sp, "links"));
            if (o == NULL) /* a malformed span from a peer: left out */
                continue;
            if (json_string_length(json_object_get(sp, "parentSpanId")) > 0)
                json_object_set(o, "parent_span_id", json_object_get(sp, "parentSpanId"));
            json_array_append_new(spans, o);
        }
        json_decref(res);
    }
}

static unsigned long long start_of(json_t *span)
{
    return strtoull(str(span, "start_time_unix_nano"), NULL, 10);
}

static int by_start(const void *a, const void *b)
{
    unsigned long long x = start_of(*(json_t *const *)a), y = start_of(*(json_t *const *)b);
    return x < y ? -1 : x > y;
}

/* Depth-first from span: it, then its children by start time. */
static void walk(json_t *span, int depth, json_t *children, json_t *out)
{
    if (json_object_get(span, "depth") != NULL) /* seen: ids repeated by a bad peer */
        return;
    json_object_set_new(span, "depth", json_integer(depth));
    json_array_append(out, span);
    json_t *kids = json_object_get(children, str(span, "span_id")), *kid;
    size_t i;
    json_array_foreach(kids, i, kid) walk(kid, depth + 1, children, out);
}

/* The spans as a tree: roots (no parent, or a parent no service holds) by start,
 * each followed by its subtree. */
static json_t *tree(json_t *spans)
{
    size_t n = json_array_size(spans), i;
    json_t **v = souk_xcalloc(n ? n : 1, sizeof(*v)), *ids = json_object(),
           *children = json_object(), *out = json_array();
    for (i = 0; i < n; i++)
        v[i] = json_array_get(spans, i);
    qsort(v, n, sizeof(*v), by_start);
    for (i = 0; i < n; i++)
        json_object_set(ids, str(v[i], "span_id"), v[i]);
    for (i = 0; i < n; i++) {
        const char *p = str(v[i], "parent_span_id");
        if (p[0] == '\0' || json_object_get(ids, p) == NULL)
            continue;
        json_t *kids = json_object_get(children, p);
        if (kids == NULL)
            json_object_set_new(children, p, kids = json_array());
        json_array_append(kids, v[i]);
    }
    for (i = 0; i < n; i++) {
        const char *p = str(v[i], "parent_span_id");
        if (p[0] == '\0' || json_object_get(ids, p) == NULL)
            walk(v[i], 0, children, out);
    }
    for (i = 0; i < n; i++) /* in a cycle of parents (a bad peer): still shown */
        if (json_object_get(v[i], "depth") == NULL)
            walk(v[i], 0, children, out);
    free(v);
    json_decref(ids);
    json_decref(children);
    return out;
}

/* One instance's spans of the trace into docs; an entry in missing when it cannot
 * say. */
static void ask(struct souk_req *r, const char *name, const char *base, size_t blen, const char *id,
                json_t *docs, json_t *missing)
{
    char url[URL_MAX], inst[URL_MAX];
    snprintf(inst, sizeof(inst), "%.*s", (int)blen, base);
    struct souk_response res;
    int rc = SOUK_EINVAL;
    if (souk_client_url(url, sizeof(url), inst, "/internal/v1/traces/%s", id) == 0) {
        struct souk_call c = {.method = "GET",
                              .url = url,
                              .service_token = true,
                              .parent = r,
                              .timeout_ms = PEER_TIMEOUT_MS,
                              .retries = 0};
        rc = souk_client_do(&c, &res);
    } else {
        memset(&res, 0, sizeof(res));
    }
    if (rc == 0 && res.status == 200 && json_is_array(json_object_get(res.json, "resourceSpans"))) {
        json_array_append(docs, res.json);
    } else {
        char why[64];
        snprintf(why, sizeof(why), "%s", rc != 0 ? souk_strerror(rc) : "");
        if (rc == 0)
            snprintf(why, sizeof(why), "HTTP %d", res.status);
        json_array_append_new(
            missing, json_pack("{s:s,s:s,s:s}", "service", name, "instance", inst, "error", why));
    }
    souk_response_free(&res);
}

int traces_answer(const char *id, struct souk_req *parent, json_t **result, struct souk_check *c)
{
    size_t own_n;
    char *own = souk_otlp_collect(id, &own_n);
    souk_check_init(c);
    *result = NULL;
    if (own == NULL) {
        souk_check_fail(c, "id", "must be a trace id: 32 lower-case hex digits, not all zero");
        return 400;
    }
    struct souk_req *r = parent;
    json_t *docs = json_array(), *missing = json_array(), *spans = json_array();
    json_t *mine = json_loads(own, 0, NULL);
    free(own);
    if (mine != NULL)
        json_array_append_new(docs, mine);
    for (size_t u = 0; u < nups; u++) {
        const char *p = urls[u];
        for (int k = 0; k < INSTANCES_MAX && *p != '\0'; k++) {
            size_t len = strcspn(p, ",");
            if (len > 0)
                ask(r, names[u], p, len, id, docs, missing);
            p += len + (p[len] == ',');
        }
    }
    size_t over = 0, i;
    json_t *doc, *all = json_array();
    json_array_foreach(docs, i, doc)
    {
        flatten(doc, spans, &over);
        json_array_extend(all, json_object_get(doc, "resourceSpans"));
    }
    json_t *ordered = tree(spans);
    json_decref(spans);
    json_decref(docs);
    json_t *out = json_pack("{s:s,s:I,s:o,s:o,s:o}", "trace_id", id, "span_count",
                            (json_int_t)json_array_size(ordered), "spans", ordered, "unreachable",
                            missing, "resourceSpans", all);
    if (over > 0)
        json_object_set_new(out, "spans_not_shown", json_integer((json_int_t)over));
    *result = out;
    return 200;
}

int traces_serve(struct souk_req *r)
{
    json_t *doc;
    struct souk_check c;
    if (traces_answer(souk_req_param(r, "id"), r, &doc, &c) != 200)
        return souk_problem_check(r, &c);
    souk_reply_json(r, doc);
    return 200;
}

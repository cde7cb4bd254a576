/* otlp_export.c: spans out of the process. The SOUK_OTLP_* / SOUK_TRACE_* configuration,
 * the OTLP/HTTP exporter (a thread of its own, batches of records taken from the ring,
 * JSON POSTed to SOUK_OTLP_ENDPOINT + /v1/traces with a timeout, transient failures
 * retried twice, then dropped and counted), the span metrics, and the internal route
 * that serves one trace's spans to the gateway's admin view. Nothing here runs on a
 * request's path. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "otlp_int.h"
#include "souk/config.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/otlp.h"
#include "souk/server.h"
#include "souk/souk.h"
#include "trace_int.h"

#define REC_MAX                                                                                    \
    (sizeof(struct souk__span_rec) + SOUK_SPAN_NAME_MAX + SOUK_SPAN_STATUS_MAX + SOUK_SPAN_DATA_MAX)
#define JSON_MAX      (64u << 20) /* one export request's body */
#define RETRIES       2
#define RETRY_BASE_MS 250
#define URL_MAX       1100
#define ANSWER_MAX    65536
#define RATIO_MAX_LEN 32

/* The configuration (SOUK_OTLP_*, SOUK_TRACE_*; docs/tracing.md). */
static struct {
    const char *endpoint; /* base URL, "" for none */
    const char *ratio_text;
    double ratio; /* of new traces sampled */
    int64_t buffer_kb;
    int64_t interval_ms, timeout_ms, batch;
    int64_t db_ms; /* transactions at least this long get a span */
} cfg;

static const struct souk_conf otlp_config[] = {
    {"SOUK_OTLP_ENDPOINT", SOUK_CONF_STR, "", 0, 1024, &cfg.endpoint,
     "OTLP/HTTP collector base URL (spans POSTed to <url>/v1/traces as JSON); empty: no export"},
    {"SOUK_OTLP_INTERVAL_MS", SOUK_CONF_INT, "1000", 50, 60000, &cfg.interval_ms,
     "longest a finished span waits for export"},
    {"SOUK_OTLP_TIMEOUT_MS", SOUK_CONF_INT, "5000", 100, 60000, &cfg.timeout_ms,
     "one export request"},
    {"SOUK_OTLP_BATCH", SOUK_CONF_INT, "512", 1, 8192, &cfg.batch, "spans per export request"},
    {"SOUK_TRACE_SAMPLE_RATIO", SOUK_CONF_STR, "1", 1, RATIO_MAX_LEN, &cfg.ratio_text,
     "share of new traces recorded, 0 to 1 (parent-based: a request with a traceparent follows "
     "its sampled flag)"},
    {"SOUK_TRACE_BUFFER_KB", SOUK_CONF_INT, "0", 0, 1048576, &cfg.buffer_kb,
     "KiB of recent spans kept (the admin's trace view and the export queue); 0: 256 without a "
     "collector, 1024 with one"},
    {"SOUK_TRACE_DB_MS", SOUK_CONF_INT, "10", 0, 600000, &cfg.db_ms,
     "database transactions at least this long get a span"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static struct souk_metric *m_exported, *m_dropped;
static pthread_t thread;
static bool running;
static char url[URL_MAX];

static void metrics_register(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    m_exported = souk_metric_counter("souk_trace_spans_exported_total",
                                     "spans the OTLP collector accepted", NULL);
    m_dropped = souk_metric_counter(
        "souk_trace_spans_dropped_total",
        "spans recorded but never exported: queue_full (overwritten in the ring before the "
        "exporter took them), export_failed (the collector could not be reached or refused), "
        "rejected (the collector said so in a partial success)",
        "reason");
    souk_metric_add(m_exported, 0.0);
    souk_metric_add(m_dropped, 0.0, "queue_full");
    souk_metric_add(m_dropped, 0.0, "export_failed");
    souk_metric_add(m_dropped, 0.0, "rejected");
}

static void dropped(const char *reason, uint64_t n)
{
    if (n > 0 && m_dropped != NULL)
        souk_metric_add(m_dropped, (double)n, reason);
}

/* ---- configuration ---- */

/* "0.25" into *out: a number from 0 to 1, all of the text. */
static bool parse_ratio(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0.0 && v <= 1.0))
        return false;
    *out = v;
    return true;
}

void souk__otlp_print_config(FILE *out) { souk_config_print_table(out, otlp_config); }

int souk__otlp_init(const char *service, const char *listen)
{
    char err[512], shown[256], host[128] = "localhost", instance[300];
    if (souk_config_load(otlp_config, err, sizeof(err)) != 0) {
        souk_log_config_error("%s", err);
        return SOUK_EINVAL;
    }
    if (!parse_ratio(cfg.ratio_text, &cfg.ratio)) {
        souk_log_config_error("SOUK_TRACE_SAMPLE_RATIO=\"%s\": expected a number from 0 to 1",
                              cfg.ratio_text);
        return SOUK_EINVAL;
    }
    const char *e = cfg.endpoint;
    if (e[0] != '\0' && strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0) {
        souk_log_config_error("SOUK_OTLP_ENDPOINT=\"%s\": expected an http:// or https:// "
                              "base URL",
                              souk_config_redact_url(e, shown, sizeof(shown)));
        return SOUK_EINVAL;
    }
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    const char *port = listen != NULL ? strrchr(listen, ':') : NULL;
    snprintf(instance, sizeof(instance), "%s%s", host, port ? port : "");
    int64_t kb = cfg.buffer_kb ? cfg.buffer_kb : e[0] != '\0' ? 1024 : 256;
    souk__trace_setup(service, instance, cfg.ratio, cfg.db_ms, (size_t)kb * 1024);
    metrics_register();
    return 0;
}

/* ---- one export request ---- */

struct answer {
    char *body;
    size_t len;
};

static size_t on_answer(char *data, size_t size, size_t n, void *arg)
{
    struct answer *a = arg;
    size_t len = size * n;
    if (a->len + len > ANSWER_MAX)
        return len; /* read and forgotten: only a partial success's count matters */
    a->body = souk_xrealloc(a->body, a->len + len + 1);
    memcpy(a->body + a->len, data, len);
    a->len += len;
    a->body[a->len] = '\0';
    return len;
}

/* The spans a partial success says were rejected (OTLP: rejectedSpans, an int64 as a
 * string in JSON, or a number from lenient servers). */
static uint64_t rejected_in(const struct answer *a)
{
    json_t *j = a->body ? json_loadb(a->body, a->len, 0, NULL) : NULL;
    json_t *v = json_object_get(json_object_get(j, "partialSuccess"), "rejectedSpans");
    uint64_t n = 0;
    if (json_is_string(v))
        n = strtoull(json_string_value(v), NULL, 10);
    else if (json_is_integer(v) && json_integer_value(v) > 0)
        n = (uint64_t)json_integer_value(v);
    json_decref(j);
    return n;
}

/* POST body; 0 when the collector took it, 1 for a failure worth retrying (no answer,
 * 429, 502, 503, 504), -1 for one that is not. *rejected from a partial success. */
static int post(CURL *h, const struct souk__tbuf *body, uint64_t *rejected, char *why, size_t cap)
{
    struct answer a = {NULL, 0};
    struct curl_slist *hs = curl_slist_append(NULL, "Content-Type: application/json");
    hs = curl_slist_append(hs, "Expect:");
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->b.p);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->b.len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)cfg.timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(cfg.timeout_ms < 1000 ? cfg.timeout_ms : 1000));
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    int out;
    *rejected = 0;
    if (rc != CURLE_OK) {
        snprintf(why, cap, "%s", curl_easy_strerror(rc));
        out = 1;
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        snprintf(why, cap, "HTTP %ld", status);
        if (status >= 200 && status < 300) {
            *rejected = rejected_in(&a);
            out = 0;
        } else {
            out = status == 429 || status == 502 || status == 503 || status == 504 ? 1 : -1;
        }
    }
    curl_slist_free_all(hs);
    free(a.body);
    return out;
}

/* Export n records; retries only while not stopping. */
static void export_batch(CURL *h, const unsigned char *recs, size_t len, size_t n, bool last)
{
    static bool failing; /* log the change, not every failed batch */
    struct souk__tbuf body = SOUK__TBUF_INIT(JSON_MAX);
    char why[128] = "";
    uint64_t rejected = 0;
    int rc = -1;
    souk__otlp_encode(&body, recs, len);
    if (body.over) {
        snprintf(why, sizeof(why), "a batch over %u bytes of JSON", JSON_MAX);
    } else {
        for (int attempt = 0;; attempt++) {
            rc = post(h, &body, &rejected, why, sizeof(why));
            if (rc <= 0 || attempt == RETRIES || last)
                break;
            /* a stop cuts the backoff short, and the next attempt is the last */
            last = !souk__trace_ring_wait(UINT64_MAX, (long)RETRY_BASE_MS << attempt);
        }
    }
    souk__tbuf_free(&body);
    if (rc == 0) {
        if (rejected > n)
            rejected = n;
        souk_metric_add(m_exported, (double)(n - rejected));
        dropped("rejected", rejected);
        if (failing)
            souk_info("trace export recovered", NULL);
        failing = false;
        return;
    }
    dropped("export_failed", n);
    if (!failing) {
        char shown[URL_MAX];
        souk_warn("trace export failed; spans are dropped and counted until the collector "
                  "answers",
                  "{s:s,s:s,s:I}", "url", souk_config_redact_url(url, shown, sizeof(shown)),
                  "error", why, "spans", (json_int_t)n);
    }
    failing = true;
}

/* Take and export what is pending, batch by batch. */
static void drain_ring(CURL *h, unsigned char *buf, size_t cap, bool last)
{
    for (;;) {
        size_t len;
        uint64_t lost;
        size_t n = souk__trace_ring_take(buf, cap, (size_t)cfg.batch, &len, &lost);
        dropped("queue_full", lost);
        if (n == 0)
            return;
        export_batch(h, buf, len, n, last);
        if (last || souk__trace_ring_pending() < (uint64_t)cfg.batch)
            return; /* a part-filled batch waits for the interval */
    }
}

static void *exporter(void *arg)
{
    SOUK_UNUSED(arg);
    CURL *h = curl_easy_init();
    size_t cap = (size_t)cfg.batch * REC_MAX;
    unsigned char *buf = souk_xmalloc(cap);
    if (h == NULL)
        souk_oom();
    while (souk__trace_ring_wait((uint64_t)cfg.batch, (long)cfg.interval_ms))
        drain_ring(h, buf, cap, false);
    drain_ring(h, buf, cap, true); /* at stop: what is left, one attempt */
    free(buf);
    curl_easy_cleanup(h);
    return NULL;
}

int souk__otlp_start(void)
{
    const char *base = cfg.endpoint;
    if (base == NULL || base[0] == '\0' || running)
        return 0;
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    snprintf(url, sizeof(url), "%.*s/v1/traces", (int)n, base);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    souk__trace_ring_stop(false);
    souk__trace_ring_export(true, (uint64_t)cfg.batch);
    if (pthread_create(&thread, NULL, exporter, NULL) != 0)
        return SOUK_ENOMEM;
    running = true;
    char shown[URL_MAX];
    souk_info("exporting traces", "{s:s,s:f}", "url",
              souk_config_redact_url(url, shown, sizeof(shown)), "sample_ratio", cfg.ratio);
    return 0;
}

void souk__otlp_stop(void)
{
    if (!running)
        return;
    souk__trace_ring_stop(true);
    pthread_join(thread, NULL);
    souk__trace_ring_export(false, 0);
    running = false;
}

/* ---- one trace's spans, for the admin's view ---- */

char *souk_otlp_collect(const char *id, size_t *nspans)
{
    struct souk_span_ctx ctx;
    char tp[SOUK_TRACEPARENT_LEN + 1];
    *nspans = 0;
    /* a trace id is what a traceparent carries: reuse its strict parser */
    if (id == NULL || strlen(id) != SOUK_TRACE_ID_HEX)
        return NULL;
    snprintf(tp, sizeof(tp), "00-%s-0000000000000001-01", id);
    if (!souk_trace_ctx_parse(tp, &ctx))
        return NULL;
    unsigned char *recs;
    size_t len;
    *nspans = souk__trace_ring_find(ctx.trace_id, &recs, &len);
    struct souk__tbuf b = SOUK__TBUF_INIT(SIZE_MAX);
    souk__otlp_encode(&b, recs, len);
    free(recs);
    return b.b.p;
}

static int trace_route(struct souk_req *r)
{
    size_t n;
    char *doc = souk_otlp_collect(souk_req_param(r, "trace_id"), &n);
    if (doc == NULL) {
        struct souk_check c;
        souk_check_init(&c);
        souk_check_fail(&c, "trace_id", "must be 32 lower-case hex digits, not all zero");
        return souk_problem_check(r, &c);
    }
    souk_reply_raw(r, "application/json", doc, strlen(doc), true);
    return 200;
}

static const struct souk_route routes[] = {
    {"GET", "/internal/v1/traces/{trace_id}", trace_route, SOUK_SERVICE, "traces:read", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};

const struct souk_route *souk__otlp_routes(bool edge) { return edge ? routes + 1 : routes; }

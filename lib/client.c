/* client.c: blocking outbound HTTP on libcurl. Each thread keeps one easy handle,
 * so its connections stay alive between calls; a circuit breaker per origin
 * (souk/breaker.h) fails fast while a peer is down; idempotent calls are retried
 * with the kit's jittered exponential backoff (souk/backoff.h). */
#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "client_int.h"
#include "souk/backoff.h"
#include "souk/breaker.h"
#include "souk/client.h"
#include "souk/config.h"
#include "souk/log.h"
#include "souk/server.h"
#include "souk/souk.h"
#include "souk/trace.h"

#define DEFAULT_TIMEOUT_MS 3000
#define CONNECT_TIMEOUT_MS 1000
#define DEFAULT_RETRIES    2
#define BACKOFF_BASE_MS    100 /* before the first retry (jittered to 50..100) */
#define BACKOFF_MAX_MS     1000
#define RESPONSE_MAX       (8u << 20)
#define BREAKER_ORIGINS    32
#define BREAKER_THRESHOLD  5    /* consecutive failures that open the circuit */
#define BREAKER_OPEN_MS    2000 /* then one trial call is let through */
#define TOKEN_MAX          4096
#define LOG_URL_MAX        512
#define URL_BUF_MAX        8192 /* a call's URL, rewritten for another peer */

/* ---- building URLs: text from outside is one segment or one value, never more ---- */

struct url_out {
    char *buf;
    size_t cap, len;
    bool over;
};

static void put_char(struct url_out *o, char c)
{
    if (o->len + 1 >= o->cap) {
        o->over = true;
        return;
    }
    o->buf[o->len++] = c;
}

static void put_str(struct url_out *o, const char *s)
{
    for (; *s; s++)
        put_char(o, *s);
}

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static void put_encoded(struct url_out *o, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p)) {
            put_char(o, (char)*p);
        } else {
            put_char(o, '%');
            put_char(o, hex[*p >> 4]);
            put_char(o, hex[*p & 15]);
        }
    }
}

int souk_client_vurl(char *buf, size_t cap, const char *base, const char *fmt, va_list ap)
{
    struct url_out o = {buf, cap, 0, cap == 0};
    bool query = false; /* past the template's '?': arguments are values, not segments */
    int rc = 0;
    put_str(&o, base);
    for (const char *p = fmt; *p != '\0' && rc == 0; p++) {
        if (*p != '%') {
            query = query || *p == '?';
            put_char(&o, *p);
        } else if (p[1] == '%') {
            put_char(&o, '%');
            p++;
        } else if (p[1] == 's') {
            const char *arg = va_arg(ap, const char *);
            if (arg == NULL || arg[0] == '\0' ||
                (!query && (strcmp(arg, ".") == 0 || strcmp(arg, "..") == 0)))
                rc = SOUK_EINVAL;
            else
                put_encoded(&o, arg);
            p++;
        } else if (strncmp(p + 1, "lld", 3) == 0) {
            char num[24];
            snprintf(num, sizeof(num), "%lld", va_arg(ap, long long));
            put_str(&o, num);
            p += 3;
        } else {
            rc = SOUK_EINVAL;
        }
    }
    if (rc == 0 && o.over)
        rc = SOUK_ETOOBIG;
    if (cap > 0)
        buf[rc == 0 ? o.len : 0] = '\0';
    return rc;
}

int souk_client_url(char *buf, size_t cap, const char *base, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = souk_client_vurl(buf, cap, base, fmt, ap);
    va_end(ap);
    return rc;
}

/* Does url hold a byte that has no place in a URL, or a "." or ".." path segment
 * (also percent-encoded)? Such a URL is refused before anything is sent: with
 * CURLOPT_PATH_AS_IS libcurl removes no dot segment, but a peer might, and then
 * the path it serves is not the one the caller built. */
static bool url_unsafe(const char *url)
{
    for (const char *p = url; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return true;
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    p += strcspn(p, "/?#");
    while (*p == '/') {
        p++;
        size_t n = strcspn(p, "/?#"), dots = 0, other = 0;
        for (size_t i = 0; i < n;) {
            if (p[i] == '.') {
                dots++;
                i++;
            } else if (p[i] == '%' && i + 2 < n && p[i + 1] == '2' && (p[i + 2] | 0x20) == 'e') {
                dots++;
                i += 3;
            } else {
                other++;
                i++;
            }
        }
        if (other == 0 && (dots == 1 || dots == 2))
            return true;
        p += n;
    }
    return false;
}

/* ---- circuit breakers, one per origin (souk/breaker.h) ---- */

struct origin_breaker {
    char origin[128];
    struct souk_breaker b;
};

static struct origin_breaker breakers[BREAKER_ORIGINS];
static size_t nbreakers;
static pthread_mutex_t breaker_lock = PTHREAD_MUTEX_INITIALIZER;

static void origin_of(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    snprintf(out, cap, "%.*s", (int)((size_t)(p - url) + n), url);
}

static struct souk_breaker *breaker_get(const char *origin)
{
    for (size_t i = 0; i < nbreakers; i++)
        if (strcmp(breakers[i].origin, origin) == 0)
            return &breakers[i].b;
    if (nbreakers == BREAKER_ORIGINS)
        return NULL; /* more origins than expected: no breaker for the rest */
    struct origin_breaker *o = &breakers[nbreakers++];
    snprintf(o->origin, sizeof(o->origin), "%s", origin);
    souk_breaker_init(&o->b, BREAKER_THRESHOLD, BREAKER_OPEN_MS);
    return &o->b;
}

/* May a call to origin go ahead? */
static bool breaker_allow(const char *origin)
{
    pthread_mutex_lock(&breaker_lock);
    struct souk_breaker *b = breaker_get(origin);
    bool ok = b == NULL || souk_breaker_allow(b, souk_now_ns());
    pthread_mutex_unlock(&breaker_lock);
    return ok;
}

static void breaker_report(const char *origin, enum souk_breaker_outcome outcome)
{
    pthread_mutex_lock(&breaker_lock);
    struct souk_breaker *b = breaker_get(origin);
    bool opened = b != NULL && souk_breaker_report(b, outcome, souk_now_ns());
    pthread_mutex_unlock(&breaker_lock);
    if (opened)
        souk_warn("circuit open", "{s:s}", "origin", origin);
}

/* ---- this service's token, from above ---- */

static _Atomic souk__token_source token_source;

void souk__client_set_token_source(souk__token_source fn) { atomic_store(&token_source, fn); }

static int service_token(char *out, size_t cap)
{
    souk__token_source fn = atomic_load(&token_source);
    return fn != NULL ? fn(out, cap) : SOUK_EUNAVAIL;
}

/* ---- one easy handle per thread ---- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static pthread_key_t handle_key;

static void handle_free(void *h) { curl_easy_cleanup(h); }

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_key_create(&handle_key, handle_free);
}

static CURL *thread_handle(void)
{
    pthread_once(&global_once, global_init);
    CURL *h = pthread_getspecific(handle_key);
    if (h == NULL) {
        h = curl_easy_init();
        if (h == NULL)
            souk_oom();
        pthread_setspecific(handle_key, h);
    }
    return h;
}

struct sink {
    struct souk_response *res;
    bool overflow;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    struct souk_response *res = s->res;
    size_t len = size * n;
    if (res->len + len > RESPONSE_MAX) {
        s->overflow = true;
        return 0; /* abort the transfer */
    }
    res->body = souk_xrealloc(res->body, res->len + len + 1);
    memcpy(res->body + res->len, data, len);
    res->len += len;
    res->body[res->len] = '\0';
    return len;
}

static bool idempotent(const struct souk_call *c)
{
    const char *m = c->method ? c->method : "GET";
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 || strcmp(m, "PUT") == 0 ||
           strcmp(m, "DELETE") == 0 || c->idempotency_key != NULL;
}

/* One try at url (c->url, or another peer's base with its path). *refused: no
 * connection could be made (nothing was sent). */
static int attempt(const struct souk_call *c, const char *url, const char *body, size_t body_len,
                   struct curl_slist *headers, struct souk_response *res, bool *refused)
{
    *refused = false;
    CURL *h = thread_handle();
    struct sink sink = {res, false};
    long timeout = c->timeout_ms > 0 ? c->timeout_ms : DEFAULT_TIMEOUT_MS;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* the path as built: no ".." removed */
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method ? c->method : "GET");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout < CONNECT_TIMEOUT_MS ? timeout : CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    if (strcmp(c->method ? c->method : "GET", "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        char shown[LOG_URL_MAX];
        souk_log(SOUK_LOG_DEBUG, "call failed", "{s:s,s:s}", "url",
                 souk_config_redact_url(url, shown, sizeof(shown)), "error",
                 curl_easy_strerror(rc));
        free(res->body);
        res->body = NULL;
        res->len = 0;
        if (sink.overflow)
            return SOUK_ETOOBIG;
        *refused = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
        return rc == CURLE_OPERATION_TIMEDOUT ? SOUK_ETIMEDOUT : SOUK_EIO;
    }
    long status = 0;
    char *type = NULL;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &type);
    res->status = (int)status;
    snprintf(res->content_type, sizeof(res->content_type), "%s", type ? type : "");
    return 0;
}

static struct curl_slist *build_headers(const struct souk_call *c, const char *content_type,
                                        const struct souk_span *span)
{
    struct curl_slist *hs = NULL;
    char line[TOKEN_MAX + 64];
    hs = curl_slist_append(hs, "Accept: application/json");
    hs = curl_slist_append(hs, "Expect:"); /* no 100-continue round trip */
    if (content_type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", content_type);
        hs = curl_slist_append(hs, line);
    }
    if (c->idempotency_key != NULL) {
        snprintf(line, sizeof(line), "Idempotency-Key: %s", c->idempotency_key);
        hs = curl_slist_append(hs, line);
    }
    snprintf(line, sizeof(line), "traceparent: %s", span->traceparent);
    hs = curl_slist_append(hs, line);
    if (c->parent != NULL) {
        snprintf(line, sizeof(line), "X-Request-Id: %s", souk_req_id(c->parent));
        hs = curl_slist_append(hs, line);
    }
    return hs;
}

/* ---- the call's span (docs/tracing.md) ---- */

/* A client span for the call: a child of the thread's current span (a request, a
 * saga step, an event handler), else of the request named as parent. A call made
 * outside both (a token refresh, a feed poll) belongs to no trace: it passes on an
 * unsampled context, so the peer records nothing for it either. */
static void span_begin(const struct souk_call *c, const char *origin, struct souk_span *span)
{
    const struct souk_span *cur = souk_trace_current();
    struct souk_span_ctx ctx;
    const char *method = c->method ? c->method : "GET";
    if (cur != NULL) {
        souk_span_start(span, SOUK_SPAN_CLIENT, method, &cur->ctx, false);
    } else if (c->parent != NULL && souk_trace_ctx_parse(souk_req_traceparent(c->parent), &ctx)) {
        souk_span_start(span, SOUK_SPAN_CLIENT, method, &ctx, false);
    } else {
        memset(&ctx, 0, sizeof(ctx));
        souk_random(ctx.trace_id, sizeof(ctx.trace_id));
        souk_random(ctx.span_id, sizeof(ctx.span_id));
        souk_span_start(span, SOUK_SPAN_CLIENT, method, &ctx, true); /* flags 00 */
    }
    if (!souk_span_recording(span))
        return;
    char shown[LOG_URL_MAX], host[128];
    const char *h = strstr(origin, "://");
    snprintf(host, sizeof(host), "%s", h ? h + 3 : origin);
    char *colon = strrchr(host, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : strncmp(origin, "https", 5) == 0 ? 443 : 80;
    if (colon != NULL)
        *colon = '\0';
    souk_span_set_str(span, "http.request.method", method);
    souk_span_set_str(span, "server.address", host);
    souk_span_set_int(span, "server.port", port);
    souk_span_set_str(span, "url.full", souk_config_redact_url(c->url, shown, sizeof(shown)));
}

static void span_end(struct souk_span *span, int rc, const struct souk_response *res, int tries)
{
    if (!souk_span_recording(span)) {
        souk_span_end(span);
        return;
    }
    char code[16];
    if (tries > 1)
        souk_span_set_int(span, "http.request.resend_count", tries - 1);
    if (rc == 0) {
        souk_span_set_int(span, "http.response.status_code", res->status);
        if (res->status >= 400) { /* semconv: a client's 4xx is an error too */
            snprintf(code, sizeof(code), "%d", res->status);
            souk_span_set_str(span, "error.type", code);
            souk_span_set_status(span, SOUK_SPAN_ERROR, NULL);
        }
    } else {
        souk_span_set_str(span, "error.type", souk_strerror(rc));
        souk_span_set_status(span, SOUK_SPAN_ERROR, souk_strerror(rc));
    }
    souk_span_end(span);
}

/* The same call on the next peer of c->peers after the one url goes to: url is
 * rewritten in place (its base swapped, the rest kept). False when there is no other
 * peer, or url's base is none of them. */
static bool next_peer(const struct souk_call *c, char *url, size_t cap)
{
    if (c->peers == NULL || strchr(c->peers, ',') == NULL)
        return false;
    const char *p = c->peers, *mine = NULL;
    size_t mine_len = 0;
    while (*p != '\0') {
        size_t len = strcspn(p, ","), base = len;
        while (base > 0 && p[base - 1] == '/')
            base--;
        if (base > 0 && strncmp(url, p, base) == 0 &&
            (url[base] == '/' || url[base] == '?' || url[base] == '\0')) {
            mine = p;
            mine_len = base;
            break;
        }
        p += len + (p[len] == ',');
    }
    if (mine == NULL)
        return false;
    const char *next = mine + strcspn(mine, ",");
    next = *next == ',' ? next + 1 : c->peers; /* the last one wraps around */
    size_t next_len = strcspn(next, ",");
    while (next_len > 0 && next[next_len - 1] == '/')
        next_len--;
    char rest[URL_BUF_MAX];
    if (snprintf(rest, sizeof(rest), "%s", url + mine_len) >= (int)sizeof(rest) ||
        snprintf(url, cap, "%.*s%s", (int)next_len, next, rest) >= (int)cap)
        return false;
    return true;
}

int souk_client_do(const struct souk_call *c, struct souk_response *res)
{
    memset(res, 0, sizeof(*res));
    if (c->url == NULL || url_unsafe(c->url)) {
        char shown[LOG_URL_MAX];
        souk_error("outbound URL refused: a dot segment or a raw control character", "{s:s}", "url",
                   c->url ? souk_config_redact_url(c->url, shown, sizeof(shown)) : "");
        return SOUK_EINVAL;
    }
    char origin[128], url[URL_BUF_MAX];
    if (snprintf(url, sizeof(url), "%s", c->url) >= (int)sizeof(url))
        return SOUK_ETOOBIG;
    origin_of(url, origin, sizeof(origin));
    int peers_left = 0; /* the other replicas a failed connection may still try */
    for (const char *p = c->peers; p != NULL && *p != '\0'; p++)
        peers_left += *p == ',';

    char *owned = NULL;
    const char *body = NULL, *type = NULL;
    size_t body_len = 0;
    if (c->body != NULL) {
        owned = souk_json_dump(c->body, &body_len);
        body = owned;
        type = "application/json";
    } else if (c->raw_body != NULL) {
        body = c->raw_body;
        body_len = strlen(body);
        type = c->raw_type ? c->raw_type : "application/octet-stream";
    }
    struct curl_slist *headers = NULL;
    char token[TOKEN_MAX], auth[TOKEN_MAX + 32];
    int rc = 0, tried = 0;
    struct souk_span span;
    /* before the span: a token fetched now is its own call, not a part of this one */
    if (c->bearer == NULL && c->service_token && (rc = service_token(token, sizeof(token))) != 0)
        goto out;
    span_begin(c, origin, &span);
    headers = build_headers(c, type, &span);
    if (c->bearer != NULL || c->service_token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->bearer ? c->bearer : token);
        headers = curl_slist_append(headers, auth);
    }

    int tries = 1 + (idempotent(c) ? (c->retries >= 0 ? c->retries : DEFAULT_RETRIES) : 0);
    bool other_peer = false; /* this try goes to another replica: no backoff before it */
    for (int i = 0; i < tries; i++) {
        if (i > 0 && !other_peer) {
            static const struct souk_backoff retry = {BACKOFF_BASE_MS, BACKOFF_MAX_MS};
            souk_span_add_event(&span, "retry");
            souk_span_event_str(&span, "error.type",
                                rc != 0 ? souk_strerror(rc) : souk_status_title(res->status));
            usleep((useconds_t)souk_backoff_ms(&retry, i) * 1000u);
        }
        other_peer = false;
        bool unsent = true, reached = false; /* an open circuit sends nothing either */
        if (!breaker_allow(origin)) {
            rc = SOUK_EUNAVAIL;
        } else {
            reached = true;
            free(res->body);
            memset(res, 0, sizeof(*res));
            tried++;
            rc = attempt(c, url, body, body_len, headers, res, &unsent);
            breaker_report(origin, unsent                          ? SOUK_BREAKER_REFUSED
                                   : rc != 0 || res->status >= 500 ? SOUK_BREAKER_FAILED
                                                                   : SOUK_BREAKER_OK);
            if (rc == 0 && !(res->status == 502 || res->status == 503 || res->status == 504))
                break;
        }
        /* nothing reached this replica: the next one gets the call, as an extra try */
        if (rc != 0 && unsent && peers_left > 0 && next_peer(c, url, sizeof(url))) {
            /* said once per refused connection (an open circuit says it once itself):
             * a replica that went away is an operator's business even when the next
             * one answers */
            if (reached)
                souk_warn("peer unreachable, call sent to the next replica", "{s:s,s:s}", "origin",
                          origin, "error", souk_strerror(rc));
            peers_left--;
            origin_of(url, origin, sizeof(origin));
            other_peer = true;
            i--;
        }
    }
    if (rc == 0 && res->body != NULL && strstr(res->content_type, "json") != NULL)
        res->json = json_loadb(res->body, res->len, 0, NULL);
    span_end(&span, rc, res, tried);
out:
    curl_slist_free_all(headers);
    free(owned);
    return rc;
}

void souk_response_free(struct souk_response *res)
{
    free(res->body);
    json_decref(res->json);
    memset(res, 0, sizeof(*res));
}

const char *souk_client_pick(const char *list, char *buf, size_t cap)
{
    static _Atomic unsigned next;
    if (list == NULL)
        return NULL;
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    unsigned k = atomic_fetch_add(&next, 1) % (unsigned)n;
    const char *p = list;
    for (unsigned i = 0; i < k; i++)
        p = strchr(p, ',') + 1;
    size_t len = strcspn(p, ",");
    while (len > 0 && p[len - 1] == '/')
        len--; /* "http://h:1/" → "http://h:1": callers append paths */
    snprintf(buf, cap, "%.*s", (int)len, p);
    return buf;
}

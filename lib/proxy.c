/* proxy.c: the gateway's reverse proxy on one curl-multi event loop. Pool threads
 * only prepare a job (in the request's arena) and queue it; the loop thread owns
 * every upstream's state (health, breakers, outstanding counts), so none of it needs
 * a lock. Bodies pass through as bytes: nothing is parsed or re-encoded. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/proxy.h"
#include "souk/server.h"
#include "souk/souk.h"

#define MAX_INSTANCES 32          /* one bit each in a job's tried mask */
#define MAX_UPSTREAMS 16
#define BASE_MAX 256
#define HEADER_VALUE_MAX 8192     /* one forwarded header; longer ones are refused */
#define PASS_HEADERS_MAX 12       /* upstream response headers passed on */
#define BODY_INITIAL 4096
#define HEALTH_TIMEOUT_MS 1000
#define POLL_MAX_MS 1000

enum breaker { CLOSED, OPEN, HALF_OPEN };
enum kind { JOB, HEALTH };

struct instance {
    enum kind kind;               /* first: CURLOPT_PRIVATE points here for health checks */
    struct souk_upstream *up;
    char base[BASE_MAX];          /* "http://127.0.0.1:8082" */
    const char *label;            /* "127.0.0.1:8082", for metrics and logs */
    CURL *health;
    bool health_busy;
    bool healthy;                 /* last probe answered 200, or no connection error since */
    int outstanding;
    int failures;                 /* consecutive */
    enum breaker state;
    uint64_t open_until;
    bool available;               /* healthy and breaker not open: mirrored for other threads */
};

struct souk_upstream {
    char name[32];
    struct instance inst[MAX_INSTANCES];
    size_t n;
    size_t rr;                    /* round-robin start among equals */
    _Atomic size_t available;
};

struct pass_header { char *name, *value; };

struct job {
    enum kind kind;
    struct job *next;
    struct souk_req *r;
    struct souk_upstream *up;
    struct instance *inst;
    CURL *easy;
    struct curl_slist *headers;   /* arena nodes: never freed by curl */
    const char *method, *pathq;
    const char *body;
    size_t body_len;
    bool retryable;               /* idempotent: may be sent twice */
    int attempts;
    uint32_t tried;
    uint64_t t0;
    /* the response of the current attempt */
    long status;
    char *buf;
    size_t len, cap;
    bool too_big;
    char *content_type;
    struct pass_header pass[PASS_HEADERS_MAX];
    size_t npass;
};

static struct souk_proxy_conf conf;
static struct souk_upstream *upstreams[MAX_UPSTREAMS];
static size_t nupstreams;
static CURLM *multi;
static pthread_t loop_thread;
static atomic_bool stopping;
static atomic_bool asleep;        /* the loop is (about to be) in curl_multi_poll */
static atomic_bool running;
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static struct job *queue_head, **queue_tail = &queue_head;
static CURL *easy_free[256];      /* idle easy handles, reused (loop thread only) */
static size_t neasy_free;

static struct souk_metric *m_requests, *m_duration, *m_retries, *m_up;

/* ---- upstream declarations ---- */

struct souk_upstream *souk_upstream_new(const char *name, const char *urls)
{
    if (nupstreams == MAX_UPSTREAMS || urls == NULL)
        return NULL;
    struct souk_upstream *u = souk_xcalloc(1, sizeof(*u));
    snprintf(u->name, sizeof(u->name), "%s", name);
    const char *p = urls;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        size_t len = strcspn(p, ", ");
        if (len == 0)
            break;
        while (len > 0 && p[len - 1] == '/')
            len--;
        bool http = len > 7 && strncmp(p, "http://", 7) == 0;
        bool https = len > 8 && strncmp(p, "https://", 8) == 0;
        if (u->n == MAX_INSTANCES || len >= BASE_MAX || !(http || https)) {
            souk_error("bad upstream url", "{s:s,s:s}", "upstream", name, "urls", urls);
            free(u);
            return NULL;
        }
        struct instance *in = &u->inst[u->n++];
        in->kind = HEALTH;
        in->up = u;
        memcpy(in->base, p, len);
        in->base[len] = '\0';
        in->label = in->base + (http ? 7 : 8);
        in->healthy = true;   /* until a probe or a request says otherwise */
        in->available = true;
        p += strcspn(p, ",");
    }
    if (u->n == 0) {
        souk_error("empty upstream url list", "{s:s}", "upstream", name);
        free(u);
        return NULL;
    }
    u->available = u->n;
    upstreams[nupstreams++] = u;
    return u;
}

const char *souk_upstream_name(const struct souk_upstream *u) { return u->name; }
size_t souk_upstream_instances(const struct souk_upstream *u) { return u->n; }
size_t souk_upstream_available(const struct souk_upstream *u) { return atomic_load(&u->available); }

/* ---- instance state (loop thread) ---- */

static void publish(struct souk_upstream *u, uint64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < u->n; i++) {
        struct instance *in = &u->inst[i];
        in->available = in->healthy && !(in->state == OPEN && now < in->open_until);
        n += in->available;
    }
    atomic_store(&u->available, n);
}

static bool eligible(const struct instance *in, uint64_t now)
{
    if (!in->healthy || in->state == HALF_OPEN)
        return false;
    return in->state == CLOSED || now >= in->open_until;
}

/* Least outstanding requests among eligible instances not tried yet; ties go round
 * robin so equal instances share the load. */
static struct instance *pick(struct souk_upstream *u, uint32_t tried, uint64_t now)
{
    struct instance *best = NULL;
    size_t start = u->rr++;
    for (size_t k = 0; k < u->n; k++) {
        size_t i = (start + k) % u->n;
        struct instance *in = &u->inst[i];
        if ((tried & (1u << i)) || !eligible(in, now))
            continue;
        if (best == NULL || in->outstanding < best->outstanding)
            best = in;
    }
    if (best != NULL && best->state == OPEN)
        best->state = HALF_OPEN;   /* this request is the trial */
    return best;
}

static void breaker_success(struct instance *in)
{
    in->failures = 0;
    in->state = CLOSED;
}

static void breaker_failure(struct instance *in, uint64_t now)
{
    in->failures++;
    if (in->state == HALF_OPEN || in->failures >= conf.breaker_failures) {
        if (in->state != OPEN)
            souk_warn("upstream breaker open", "{s:s,s:s,s:i}", "upstream", in->up->name,
                      "instance", in->label, "failures", in->failures);
        in->state = OPEN;
        in->open_until = now + (uint64_t)conf.breaker_open_ms * 1000000u;
    }
}

static void set_healthy(struct instance *in, bool ok, const char *why)
{
    if (in->healthy == ok)
        return;
    in->healthy = ok;
    if (ok && in->state == OPEN)
        in->open_until = 0;   /* back: let a trial request through at once */
    souk_metric_set(m_up, ok ? 1 : 0, in->up->name, in->label);
    if (ok)
        souk_info("upstream instance up", "{s:s,s:s}", "upstream", in->up->name, "instance", in->label);
    else
        souk_warn("upstream instance down", "{s:s,s:s,s:s}", "upstream", in->up->name, "instance",
                  in->label, "why", why);
}

/* ---- the pool thread's side: prepare and queue ---- */

static struct curl_slist *add_header(struct souk_req *r, struct curl_slist *list, const char *name,
                                     const char *value)
{
    struct curl_slist *node = souk_req_alloc(r, sizeof(*node));
    node->data = souk_req_printf(r, "%s: %s", name, value);
    node->next = list;
    return node;
}

static const char *const forwarded[] = {
    "Authorization", "Content-Type", "Accept", "Accept-Language", "Idempotency-Key",
    "If-Match", "If-None-Match", "If-Modified-Since", "User-Agent",
};

/* Percent-encode the decoded path back (RFC 3986 pchar and "/" stay). Refuses "."
 * and ".." segments so no upstream ever resolves a path the router did not see. */
static char *encode_path(struct souk_req *r, const char *path, const char *query)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(path), q = strlen(query);
    char *out = souk_req_alloc(r, n * 3 + q + 2), *o = out;
    for (const char *p = path; *p; p++) {
        if (*p == '/' && p[1] == '.' && (p[2] == '/' || p[2] == '\0' ||
                                         (p[2] == '.' && (p[3] == '/' || p[3] == '\0'))))
            return NULL;
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~!$&'()*+,;=:@/", c) != NULL) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    if (q > 0) {
        *o++ = '?';
        memcpy(o, query, q);
        o += q;
    }
    *o = '\0';
    return out;
}

static bool idempotent(const char *method, bool has_key)
{
    return has_key || strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
           strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0 ||
           strcmp(method, "OPTIONS") == 0;
}

int souk_proxy_forward(struct souk_req *r, struct souk_upstream *u)
{
    if (!running)
        return souk_problem(r, 503, "no_upstream", "the proxy is not running");
    struct job *j = souk_req_alloc(r, sizeof(*j));
    memset(j, 0, sizeof(*j));
    j->kind = JOB;
    j->r = r;
    j->up = u;
    j->method = souk_req_method(r);
    j->pathq = encode_path(r, souk_req_path(r), souk_req_query_string(r));
    if (j->pathq == NULL)
        return souk_problem(r, 404, "not_found", "no route for %s", souk_req_path(r));
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < SOUK_ARRAY_LEN(forwarded); i++) {
        const char *v = souk_req_header(r, forwarded[i]);
        if (v == NULL)
            continue;
        if (strlen(v) > HEADER_VALUE_MAX)
            return souk_problem(r, 431, "header_too_large", "the %s header is too large", forwarded[i]);
        h = add_header(r, h, forwarded[i], v);
    }
    h = add_header(r, h, "X-Request-Id", souk_req_id(r));
    h = add_header(r, h, "traceparent", souk_req_traceparent(r));
    h = add_header(r, h, "X-Forwarded-For", souk_req_client_addr(r));
    /* no "Expect: 100-continue" round trip; curl adds an Accept unless told not to */
    h = add_header(r, h, "Expect", "");
    if (souk_req_header(r, "Accept") == NULL)
        h = add_header(r, h, "Accept", "");
    j->headers = h;
    j->body = souk_req_body(r, &j->body_len);
    j->retryable = idempotent(j->method, souk_req_header(r, "Idempotency-Key") != NULL);
    j->t0 = souk_now_ns();

    pthread_mutex_lock(&queue_lock);
    *queue_tail = j;
    queue_tail = &j->next;
    pthread_mutex_unlock(&queue_lock);
    /* a busy loop takes the queue on its next turn: wake it only when it sleeps
     * (a wakeup is three system calls on curl's socketpair) */
    if (atomic_exchange(&asleep, false))
        curl_multi_wakeup(multi);
    return SOUK_SUSPEND;
}

/* ---- the loop thread's side ---- */

static CURL *easy_get(void)
{
    if (neasy_free > 0) {
        CURL *e = easy_free[--neasy_free];
        curl_easy_reset(e);
        return e;
    }
    CURL *e = curl_easy_init();
    if (e == NULL)
        souk_oom();
    return e;
}

static void easy_put(CURL *e)
{
    if (neasy_free < SOUK_ARRAY_LEN(easy_free))
        easy_free[neasy_free++] = e;
    else
        curl_easy_cleanup(e);
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct job *j = arg;
    size_t len = size * n;
    if (j->len + len > conf.max_response) {
        j->too_big = true;
        return 0;   /* aborts the transfer */
    }
    if (j->len + len + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : BODY_INITIAL;
        while (cap < j->len + len + 1)
            cap *= 2;
        j->buf = souk_xrealloc(j->buf, cap);
        j->cap = cap;
    }
    memcpy(j->buf + j->len, data, len);
    j->len += len;
    return len;
}

/* Response headers that describe the connection or that the gateway sets itself
 * are not passed on; nor is anything internal. */
static bool hop_header(const char *name, size_t n)
{
    static const char *const skip[] = {
        "connection", "keep-alive", "transfer-encoding", "content-length", "date", "server",
        "x-request-id", "upgrade", "te", "trailer", "proxy-authenticate", "content-type",
        "ratelimit", "ratelimit-policy", "vary",
    };
    for (size_t i = 0; i < SOUK_ARRAY_LEN(skip); i++)
        if (strlen(skip[i]) == n && strncasecmp(name, skip[i], n) == 0)
            return true;
    return (n > 7 && strncasecmp(name, "x-souk-", 7) == 0) ||
           (n > 15 && strncasecmp(name, "access-control-", 15) == 0);
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct job *j = arg;
    size_t len = size * n;
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        j->npass = 0;   /* a new response (after a 100 Continue): start over */
        j->content_type = NULL;
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (colon == NULL)
        return len;
    size_t nlen = (size_t)(colon - data);
    const char *v = colon + 1, *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    struct souk_req *r = j->r;
    if (nlen == 12 && strncasecmp(data, "content-type", 12) == 0) {
        j->content_type = souk_arena_strndup(souk_req_arena(r), v, (size_t)(end - v));
    } else if (nlen == 14 && strncasecmp(data, "content-length", 14) == 0) {
        size_t want = strtoull(v, NULL, 10);
        if (want > 0 && want <= conf.max_response && want + 1 > j->cap) {
            j->buf = souk_xrealloc(j->buf, want + 1);
            j->cap = want + 1;
        }
    } else if (!hop_header(data, nlen) && j->npass < PASS_HEADERS_MAX) {
        j->pass[j->npass].name = souk_arena_strndup(souk_req_arena(r), data, nlen);
        j->pass[j->npass].value = souk_arena_strndup(souk_req_arena(r), v, (size_t)(end - v));
        j->npass++;
    }
    return len;
}

static void answer(struct job *j, int status)
{
    struct souk_req *r = j->r;
    j->r = NULL;
    souk_req_resume(r, status);   /* r may be gone after this */
}

static void fail(struct job *j, int status, const char *code, const char *detail)
{
    free(j->buf);
    j->buf = NULL;
    souk_problem(j->r, status, code, "%s: %s", j->up->name, detail);
    answer(j, status);
}

static void start_attempt(struct job *j, uint64_t now);

/* Another attempt on another instance, if the rules allow one. */
static bool retry(struct job *j, uint64_t now)
{
    if (j->attempts > conf.retries)
        return false;
    for (size_t i = 0; i < j->up->n; i++) {
        if (!(j->tried & (1u << i)) && eligible(&j->up->inst[i], now)) {
            souk_metric_inc(m_retries, j->up->name);
            start_attempt(j, now);
            return true;
        }
    }
    return false;
}

static void start_attempt(struct job *j, uint64_t now)
{
    struct instance *in = pick(j->up, j->tried, now);
    if (in == NULL) {
        fail(j, 503, "no_upstream", "no healthy instance");
        return;
    }
    j->inst = in;
    j->tried |= 1u << (in - j->up->inst);
    j->attempts++;
    in->outstanding++;
    j->status = 0;
    j->len = 0;
    j->npass = 0;
    j->content_type = NULL;
    j->too_big = false;

    CURL *e = j->easy = easy_get();
    char *url = souk_arena_printf(souk_req_arena(j->r), "%s%s", in->base, j->pathq);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, conf.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, conf.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (strcmp(j->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(j->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, j->method);
        if (j->body_len > 0 || strcmp(j->method, "POST") == 0 || strcmp(j->method, "PUT") == 0 ||
            strcmp(j->method, "PATCH") == 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
        }
    }
    if (curl_multi_add_handle(multi, e) != CURLM_OK) {
        in->outstanding--;
        easy_put(e);
        j->easy = NULL;
        fail(j, 502, "bad_gateway", "cannot start the upstream call");
    }
}

static const char *status_label(long status)
{
    static const char *const codes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    return status >= 100 && status < 600 ? codes[status / 100 - 1] : "error";
}

static void finish_job(struct job *j, CURLcode rc, uint64_t now)
{
    struct instance *in = j->inst;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &j->status);
    curl_multi_remove_handle(multi, j->easy);
    easy_put(j->easy);
    j->easy = NULL;
    in->outstanding--;
    double secs = (double)(now - j->t0) / 1e9;
    souk_metric_observe(m_duration, secs, j->up->name, in->label);
    j->t0 = now;

    if (rc == CURLE_OK) {
        souk_metric_inc(m_requests, j->up->name, in->label, status_label(j->status));
        bool gateway_error = j->status == 502 || j->status == 503 || j->status == 504;
        if (j->status >= 500)
            breaker_failure(in, now);
        else
            breaker_success(in);
        if (gateway_error && j->retryable && retry(j, now))
            return;
        struct souk_req *r = j->r;
        for (size_t i = 0; i < j->npass; i++)
            souk_reply_header(r, j->pass[i].name, j->pass[i].value);
        if (j->len > 0 || j->content_type != NULL) {
            if (j->buf == NULL)
                j->buf = souk_xmalloc(1);
            j->buf[j->len] = '\0';
            souk_reply_raw(r, j->content_type ? j->content_type : "application/octet-stream",
                           j->buf, j->len, true);
            j->buf = NULL;
        }
        free(j->buf);   /* an empty final answer after a retried attempt */
        j->buf = NULL;
        answer(j, (int)j->status);
        return;
    }

    souk_metric_inc(m_requests, j->up->name, in->label, "error");
    bool never_sent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
    bool conn_lost = rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR;
    if (j->too_big) {
        fail(j, 502, "bad_gateway", "the upstream response is too large");
        return;
    }
    if (never_sent || conn_lost)
        set_healthy(in, false, curl_easy_strerror(rc));   /* passive ejection */
    breaker_failure(in, now);
    publish(j->up, now);
    if ((never_sent || j->retryable) && retry(j, now))
        return;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        fail(j, 504, "upstream_timeout", "the upstream did not answer in time");
    else if (never_sent)
        fail(j, 503, "no_upstream", "no instance is reachable");
    else
        fail(j, 502, "bad_gateway", curl_easy_strerror(rc));
}

static void finish_health(struct instance *in, CURLcode rc)
{
    long status = 0;
    curl_easy_getinfo(in->health, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(multi, in->health);
    in->health_busy = false;
    set_healthy(in, rc == CURLE_OK && status == 200,
                rc != CURLE_OK ? curl_easy_strerror(rc) : "readyz not 200");
}

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    SOUK_UNUSED(data);
    SOUK_UNUSED(arg);
    return size * n;
}

static void probe_all(void)
{
    for (size_t u = 0; u < nupstreams; u++) {
        for (size_t i = 0; i < upstreams[u]->n; i++) {
            struct instance *in = &upstreams[u]->inst[i];
            if (in->health_busy)
                continue;
            if (in->health == NULL) {
                in->health = curl_easy_init();
                if (in->health == NULL)
                    souk_oom();
                char url[BASE_MAX + 16];
                snprintf(url, sizeof(url), "%s/readyz", in->base);
                curl_easy_setopt(in->health, CURLOPT_URL, url);
                curl_easy_setopt(in->health, CURLOPT_PRIVATE, in);
                curl_easy_setopt(in->health, CURLOPT_NOSIGNAL, 1L);
                curl_easy_setopt(in->health, CURLOPT_TIMEOUT_MS, (long)HEALTH_TIMEOUT_MS);
                curl_easy_setopt(in->health, CURLOPT_WRITEFUNCTION, discard);
            }
            if (curl_multi_add_handle(multi, in->health) == CURLM_OK)
                in->health_busy = true;
        }
    }
}

static void take_queue(uint64_t now)
{
    pthread_mutex_lock(&queue_lock);
    struct job *j = queue_head;
    queue_head = NULL;
    queue_tail = &queue_head;
    pthread_mutex_unlock(&queue_lock);
    while (j != NULL) {
        struct job *next = j->next;
        if (atomic_load(&stopping))
            fail(j, 503, "no_upstream", "the gateway is stopping");
        else
            start_attempt(j, now);
        j = next;
    }
}

static void *loop(void *arg)
{
    SOUK_UNUSED(arg);
    uint64_t next_probe = 0;
    while (!atomic_load(&stopping)) {
        uint64_t now = souk_now_ns();
        take_queue(now);
        if (conf.health_interval_ms > 0 && now >= next_probe) {
            probe_all();
            next_probe = now + (uint64_t)conf.health_interval_ms * 1000000u;
        }
        int still;
        curl_multi_perform(multi, &still);
        CURLMsg *msg;
        int left;
        now = souk_now_ns();
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            void *priv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&priv);
            CURLcode rc = msg->data.result;
            if (*(enum kind *)priv == HEALTH)
                finish_health(priv, rc);
            else
                finish_job(priv, rc, now);
        }
        for (size_t u = 0; u < nupstreams; u++)
            publish(upstreams[u], now);
        long wait = POLL_MAX_MS;
        curl_multi_timeout(multi, &wait);
        if (wait < 0 || wait > POLL_MAX_MS)
            wait = POLL_MAX_MS;
        if (conf.health_interval_ms > 0) {
            long to_probe = (long)((next_probe - now) / 1000000u);
            if (next_probe <= now)
                to_probe = 0;
            if (to_probe < wait)
                wait = to_probe;
        }
        /* Announce the sleep, then look at the queue once more: a job queued before
         * the announcement is seen here, one queued after it wakes us. */
        atomic_store(&asleep, true);
        pthread_mutex_lock(&queue_lock);
        bool queued = queue_head != NULL;
        pthread_mutex_unlock(&queue_lock);
        if (!queued)
            curl_multi_poll(multi, NULL, 0, (int)wait, NULL);
        atomic_store(&asleep, false);
    }
    return NULL;
}

int souk_proxy_start(const struct souk_proxy_conf *c)
{
    conf = *c;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return SOUK_EIO;
    multi = curl_multi_init();
    if (multi == NULL)
        return SOUK_ENOMEM;
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)conf.max_connections);
    m_requests = souk_metric_counter("souk_gateway_upstream_requests_total",
                                     "Upstream attempts by upstream, instance and status class.",
                                     "upstream,instance,code");
    m_duration = souk_metric_histogram("souk_gateway_upstream_duration_seconds",
                                       "Upstream attempt durations.", "upstream,instance");
    m_retries = souk_metric_counter("souk_gateway_upstream_retries_total",
                                    "Requests retried on another instance.", "upstream");
    m_up = souk_metric_gauge("souk_gateway_upstream_up",
                             "1 when the instance's last health probe passed.", "upstream,instance");
    for (size_t u = 0; u < nupstreams; u++)
        for (size_t i = 0; i < upstreams[u]->n; i++)
            souk_metric_set(m_up, 1, upstreams[u]->name, upstreams[u]->inst[i].label);
    if (pthread_create(&loop_thread, NULL, loop, NULL) != 0)
        return SOUK_EIO;
    running = true;
    return 0;
}

void souk_proxy_stop(void)
{
    if (!running)
        return;
    atomic_store(&stopping, true);
    curl_multi_wakeup(multi);   /* unconditionally: the loop may be between checks */
    pthread_join(loop_thread, NULL);
    running = false;
    take_queue(souk_now_ns());   /* answers 503 to anything queued meanwhile */
    /* transfers still in flight belong to requests the drain gave up on */
    for (size_t u = 0; u < nupstreams; u++) {
        for (size_t i = 0; i < upstreams[u]->n; i++) {
            struct instance *in = &upstreams[u]->inst[i];
            if (in->health != NULL) {
                curl_multi_remove_handle(multi, in->health);
                curl_easy_cleanup(in->health);
                in->health = NULL;
            }
        }
    }
    while (neasy_free > 0)
        curl_easy_cleanup(easy_free[--neasy_free]);
}

/* metrics.c: the Prometheus registry. HTTP series are kept per route in fixed
 * slots updated with atomics (no lock on the request path); domain metrics are
 * families of labelled children behind one mutex; process metrics are read from
 * /proc at scrape time. */
#include <ctype.h>
#include <dirent.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics_int.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/souk.h"

/* ---- a growable text buffer with no cap: the exposition is ours, not input ---- */

struct buf {
    char *p;
    size_t len, cap;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        b->p = souk_xrealloc(b->p, b->cap);
    }
}

/* ---- HTTP series ---- */

static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS   SOUK_ARRAY_LEN(buckets)
#define CODE_SLOTS 24

static const char *const methods[] = {"GET",   "HEAD",   "POST",    "PUT",
                                      "PATCH", "DELETE", "OPTIONS", "OTHER"};

struct http_series {
    const char *route;
    _Atomic uint32_t key[CODE_SLOTS]; /* method index << 16 | code; 0 = free */
    _Atomic uint64_t count[CODE_SLOTS];
    _Atomic uint64_t bucket[SOUK_ARRAY_LEN(methods)][NBUCKETS + 1]; /* cumulative at render */
    _Atomic uint64_t sum_ns[SOUK_ARRAY_LEN(methods)];
};

static struct http_series *http;
static size_t nhttp;

int souk__metrics_http_init(const char *const *route_names, size_t n)
{
    http = souk_xcalloc(n, sizeof(*http));
    nhttp = n;
    for (size_t i = 0; i < n; i++)
        http[i].route = route_names[i];
    return 0;
}

static unsigned method_index(const char *m)
{
    for (unsigned i = 0; i + 1 < SOUK_ARRAY_LEN(methods); i++)
        if (strcmp(m, methods[i]) == 0)
            return i;
    return SOUK_ARRAY_LEN(methods) - 1;
}

void souk__metrics_http_observe(size_t route, const char *method, int code, double seconds)
{
    if (route >= nhttp)
        return;
    struct http_series *s = &http[route];
    unsigned mi = method_index(method);
    uint32_t key = (uint32_t)(mi << 16 | (unsigned)code);
    for (size_t i = 0; i < CODE_SLOTS; i++) {
        uint32_t k = atomic_load_explicit(&s->key[i], memory_order_acquire);
        if (k == 0) {
            uint32_t expect = 0;
            if (atomic_compare_exchange_strong(&s->key[i], &expect, key))
                k = key;
            else
                k = expect;
        }
        if (k == key) {
            atomic_fetch_add_explicit(&s->count[i], 1, memory_order_relaxed);
            break;
        }
    }
    size_t b = 0;
    while (b < NBUCKETS && seconds > buckets[b])
        b++;
    atomic_fetch_add_explicit(&s->bucket[mi][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_ns[mi], (uint64_t)(seconds * 1e9), memory_order_relaxed);
}

static void render_http(struct buf *b)
{
    bprintf(
        b,
        "# HELP http_requests_total HTTP requests answered, by route pattern, method and status.\n"
        "# TYPE http_requests_total counter\n");
    for (size_t r = 0; r < nhttp; r++) {
        for (size_t i = 0; i < CODE_SLOTS; i++) {
            uint32_t k = atomic_load(&http[r].key[i]);
            if (k == 0)
                break;
            bprintf(b, "http_requests_total{route=\"%s\",method=\"%s\",code=\"%u\"} %llu\n",
                    http[r].route, methods[k >> 16], k & 0xffff,
                    (unsigned long long)atomic_load(&http[r].count[i]));
        }
    }
    bprintf(b, "# HELP http_request_duration_seconds Time from request start to response end.\n"
               "# TYPE http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < nhttp; r++) {
        for (size_t m = 0; m < SOUK_ARRAY_LEN(methods); m++) {
            uint64_t cum = 0;
            uint64_t counts[NBUCKETS + 1];
            for (size_t i = 0; i <= NBUCKETS; i++)
                cum += counts[i] = atomic_load(&http[r].bucket[m][i]);
            if (cum == 0)
                continue;
            const char *route = http[r].route, *meth = methods[m];
            uint64_t run = 0;
            for (size_t i = 0; i < NBUCKETS; i++) {
                run += counts[i];
                bprintf(b,
                        "http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"%g\"}"
                        " %llu\n",
                        route, meth, buckets[i], (unsigned long long)run);
            }
            bprintf(b,
                    "http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} "
                    "%llu\n",
                    route, meth, (unsigned long long)cum);
            bprintf(b, "http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.9f\n",
                    route, meth, (double)atomic_load(&http[r].sum_ns[m]) / 1e9);
            bprintf(b, "http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %llu\n",
                    route, meth, (unsigned long long)cum);
        }
    }
}

/* ---- domain metrics ---- */

enum kind { COUNTER, GAUGE, GAUGE_FN, HISTOGRAM };

struct child {
    struct child *next;
    char *values[SOUK_METRIC_MAX_LABELS];
    double v;       /* the value; for a histogram, the sum */
    uint64_t *hist; /* histogram: NBUCKETS + 1 counts, not cumulative */
};

struct souk_metric {
    struct souk_metric *next;
    enum kind kind;
    char *name, *help;
    char *labels[SOUK_METRIC_MAX_LABELS];
    size_t nlabels;
    struct child *children;
    double (*fn)(void *);
    void *arg;
    double fn_value; /* what fn said for the render in progress */
};

static struct souk_metric *families, **families_tail = &families;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static bool valid_name(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

static struct souk_metric *family(enum kind kind, const char *name, const char *help,
                                  const char *labels)
{
    if (!valid_name(name) || (kind == COUNTER && strstr(name, "_total") == NULL)) {
        souk_error("bad metric name", "{s:s}", "metric", name); /* a bug: stop here */
        abort();
    }
    struct souk_metric *m = souk_xcalloc(1, sizeof(*m));
    m->kind = kind;
    m->name = souk_xstrdup(name);
    m->help = souk_xstrdup(help);
    if (labels != NULL) {
        char *copy = souk_xstrdup(labels), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (m->nlabels == SOUK_METRIC_MAX_LABELS || !valid_name(t)) {
                souk_error("bad metric labels", "{s:s,s:s}", "metric", name, "labels", labels);
                abort();
            }
            m->labels[m->nlabels++] = souk_xstrdup(t);
        }
        free(copy);
    }
    pthread_mutex_lock(&lock);
    *families_tail = m;
    families_tail = &m->next;
    pthread_mutex_unlock(&lock);
    return m;
}

struct souk_metric *souk_metric_counter(const char *name, const char *help, const char *labels)
{
    return family(COUNTER, name, help, labels);
}

struct souk_metric *souk_metric_gauge(const char *name, const char *help, const char *labels)
{
    return family(GAUGE, name, help, labels);
}

void souk_metric_gauge_fn(const char *name, const char *help, double (*fn)(void *), void *arg)
{
    struct souk_metric *m = family(GAUGE_FN, name, help, NULL);
    m->fn = fn;
    m->arg = arg;
}

struct souk_metric *souk_metric_histogram(const char *name, const char *help, const char *labels)
{
    return family(HISTOGRAM, name, help, labels);
}

/* The child for the label values in ap; created on first use. Called locked. */
static struct child *child_of(struct souk_metric *m, va_list ap)
{
    const char *vals[SOUK_METRIC_MAX_LABELS];
    for (size_t i = 0; i < m->nlabels; i++) {
        vals[i] = va_arg(ap, const char *);
        if (vals[i] == NULL)
            vals[i] = "";
    }
    for (struct child *c = m->children; c; c = c->next) {
        size_t i = 0;
        while (i < m->nlabels && strcmp(c->values[i], vals[i]) == 0)
            i++;
        if (i == m->nlabels)
            return c;
    }
    struct child *c = souk_xcalloc(1, sizeof(*c));
    for (size_t i = 0; i < m->nlabels; i++)
        c->values[i] = souk_xstrdup(vals[i]);
    if (m->kind == HISTOGRAM)
        c->hist = souk_xcalloc(NBUCKETS + 1, sizeof(*c->hist));
    c->next = m->children;
    m->children = c;
    return c;
}

void souk_metric_add(struct souk_metric *m, double v, ...)
{
    va_list ap;
    va_start(ap, v);
    pthread_mutex_lock(&lock);
    child_of(m, ap)->v += v;
    pthread_mutex_unlock(&lock);
    va_end(ap);
}

void souk_metric_set(struct souk_metric *m, double v, ...)
{
    va_list ap;
    va_start(ap, v);
    pthread_mutex_lock(&lock);
    child_of(m, ap)->v = v;
    pthread_mutex_unlock(&lock);
    va_end(ap);
}

void souk_metric_observe(struct souk_metric *m, double v, ...)
{
    size_t b = 0;
    while (b < NBUCKETS && v > buckets[b])
        b++;
    va_list ap;
    va_start(ap, v);
    pthread_mutex_lock(&lock);
    struct child *c = child_of(m, ap);
    c->v += v;
    c->hist[b]++;
    pthread_mutex_unlock(&lock);
    va_end(ap);
}

/* Label values are ours or come from a fixed set; escape them anyway. */
static void put_label_value(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            bprintf(b, "\\%c", *s);
        else if (*s == '\n')
            bprintf(b, "\\n");
        else
            bprintf(b, "%c", *s);
    }
}

static void put_labels(struct buf *b, const struct souk_metric *m, const struct child *c)
{
    for (size_t i = 0; i < m->nlabels; i++) {
        bprintf(b, "%s%s=\"", i ? "," : "{", m->labels[i]);
        put_label_value(b, c->values[i]);
        bprintf(b, "\"");
    }
}

static void render_histogram(struct buf *b, const struct souk_metric *m)
{
    for (struct child *c = m->children; c; c = c->next) {
        uint64_t run = 0;
        for (size_t i = 0; i <= NBUCKETS; i++) {
            run += c->hist[i];
            bprintf(b, "%s_bucket", m->name);
            put_labels(b, m, c);
            if (i < NBUCKETS)
                bprintf(b, "%sle=\"%g\"} %llu\n", m->nlabels ? "," : "{", buckets[i],
                        (unsigned long long)run);
            else
                bprintf(b, "%sle=\"+Inf\"} %llu\n", m->nlabels ? "," : "{",
                        (unsigned long long)run);
        }
        bprintf(b, "%s_sum", m->name);
        put_labels(b, m, c);
        bprintf(b, "%s %.9f\n", m->nlabels ? "}" : "", c->v);
        bprintf(b, "%s_count", m->name);
        put_labels(b, m, c);
        bprintf(b, "%s %llu\n", m->nlabels ? "}" : "", (unsigned long long)run);
    }
}

/* Ask every gauge callback for its value, without the lock: a callback may query a
 * database (seconds, when the server is away) and count a metric itself (a failed
 * query does), which under the lock would stall every request or deadlock. */
static void call_gauge_fns(void)
{
    size_t n = 0, i = 0;
    pthread_mutex_lock(&lock);
    for (struct souk_metric *m = families; m; m = m->next)
        n += m->kind == GAUGE_FN;
    struct souk_metric **fns = souk_xcalloc(n + 1, sizeof(*fns));
    for (struct souk_metric *m = families; m && i < n; m = m->next)
        if (m->kind == GAUGE_FN)
            fns[i++] = m;
    pthread_mutex_unlock(&lock);
    double *values = souk_xcalloc(n + 1, sizeof(*values));
    for (i = 0; i < n; i++)
        values[i] = fns[i]->fn(fns[i]->arg);
    pthread_mutex_lock(&lock);
    for (i = 0; i < n; i++)
        fns[i]->fn_value = values[i];
    pthread_mutex_unlock(&lock);
    free(values);
    free(fns);
}

static void render_domain(struct buf *b)
{
    static const char *const types[] = {"counter", "gauge", "gauge", "histogram"};
    call_gauge_fns();
    pthread_mutex_lock(&lock);
    for (struct souk_metric *m = families; m; m = m->next) {
        bprintf(b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->kind]);
        if (m->kind == HISTOGRAM) {
            render_histogram(b, m);
            continue;
        }
        if (m->kind == GAUGE_FN) {
            bprintf(b, "%s %.17g\n", m->name, m->fn_value);
            continue;
        }
        if (m->nlabels == 0 && m->children == NULL)
            bprintf(b, "%s 0\n", m->name);
        for (struct child *c = m->children; c; c = c->next) {
            bprintf(b, "%s", m->name);
            put_labels(b, m, c);
            bprintf(b, "%s %.17g\n", m->nlabels ? "}" : "", c->v);
        }
    }
    pthread_mutex_unlock(&lock);
}

/* ---- process metrics, from /proc ---- */

static double start_time_seconds(long ticks_per_sec, unsigned long long start_ticks)
{
    FILE *f = fopen("/proc/stat", "r");
    char line[256];
    unsigned long long btime = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    if (f)
        fclose(f);
    return (double)btime + (double)start_ticks / (double)ticks_per_sec;
}

static void render_process(struct buf *b)
{
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char stat[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(stat, 1, sizeof(stat) - 1, f) : 0;
    if (f)
        fclose(f);
    stat[n] = '\0';
    /* fields after the command name, which is in parentheses and may hold spaces */
    char *p = strrchr(stat, ')');
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
    if (p != NULL)
        sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
               "%*d %*d %llu %llu %llu",
               &utime, &stime, &start, &vsize, &rss);
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            fds++;
    if (d) {
        closedir(d);
        fds--; /* the directory stream's own descriptor */
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    bprintf(b,
            "# HELP process_cpu_seconds_total User and system CPU time spent.\n"
            "# TYPE process_cpu_seconds_total counter\n"
            "process_cpu_seconds_total %.2f\n",
            (double)(utime + stime) / (double)ticks);
    bprintf(b,
            "# HELP process_resident_memory_bytes Resident memory size.\n"
            "# TYPE process_resident_memory_bytes gauge\n"
            "process_resident_memory_bytes %llu\n",
            rss * (unsigned long long)page);
    bprintf(b,
            "# HELP process_virtual_memory_bytes Virtual memory size.\n"
            "# TYPE process_virtual_memory_bytes gauge\n"
            "process_virtual_memory_bytes %llu\n",
            vsize);
    bprintf(b,
            "# HELP process_open_fds Open file descriptors.\n"
            "# TYPE process_open_fds gauge\n"
            "process_open_fds %d\n",
            fds);
    bprintf(b,
            "# HELP process_max_fds Maximum number of open file descriptors.\n"
            "# TYPE process_max_fds gauge\n"
            "process_max_fds %llu\n",
            (unsigned long long)rl.rlim_cur);
    bprintf(b,
            "# HELP process_start_time_seconds Start time since the epoch.\n"
            "# TYPE process_start_time_seconds gauge\n"
            "process_start_time_seconds %.2f\n",
            start_time_seconds(ticks, start));
}

char *souk_metrics_render(size_t *len)
{
    struct buf b = {souk_xmalloc(8192), 0, 8192};
    b.p[0] = '\0';
    render_http(&b);
    render_domain(&b);
    render_process(&b);
    *len = b.len;
    return b.p;
}

/* metrics.h: a Prometheus registry and its text exposition. The server counts
 * http_requests_total and http_request_duration_seconds itself; services add
 * domain counters and gauges here. Metric and label names must be valid
 * Prometheus names; counters end in _total. */
#ifndef SOUK_METRICS_H
#define SOUK_METRICS_H

#include <stddef.h>

#define SOUK_METRIC_MAX_LABELS 3

struct souk_metric;

/* Register (at start, before threads) a counter or gauge with up to three labels
 * named in a comma-separated list ("status,reason") or NULL. Never fails: a bad
 * name aborts, since it is a programming error. */
struct souk_metric *souk_metric_counter(const char *name, const char *help, const char *labels);
struct souk_metric *souk_metric_gauge(const char *name, const char *help, const char *labels);
/* A histogram over the kit's latency buckets (0.5 ms … 10 s), for durations in
 * seconds; fed with souk_metric_observe(m, seconds, label values…). */
struct souk_metric *souk_metric_histogram(const char *name, const char *help, const char *labels);
void souk_metric_observe(struct souk_metric *m, double v, ...);
/* A gauge read at scrape time. */
void souk_metric_gauge_fn(const char *name, const char *help, double (*fn)(void *arg), void *arg);

/* Add to (or set) the child with these label values (as many as the labels). */
void souk_metric_add(struct souk_metric *m, double v, ...);
void souk_metric_set(struct souk_metric *m, double v, ...);
#define souk_metric_inc(m, ...) souk_metric_add((m), 1.0, __VA_ARGS__)

/* Render the whole registry (process metrics included) into a malloc'd buffer. */
char *souk_metrics_render(size_t *len);

#endif

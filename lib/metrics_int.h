/* metrics_int.h: the HTTP series (http_requests_total, http_request_duration_seconds)
 * the server feeds and no service touches. Not a public contract. */
#ifndef SOUK_METRICS_INT_H
#define SOUK_METRICS_INT_H

#include <stddef.h>

#include "souk/metrics.h"

/* Name the series once, at start: one per route pattern, in route order, the last
 * one for everything unmatched ("other"). 0 or a negative code. */
int souk__metrics_http_init(const char *const *route_names, size_t n);
/* Count one finished request of route (an index into the names) and its duration. */
void souk__metrics_http_observe(size_t route, const char *method, int code, double seconds);

#endif

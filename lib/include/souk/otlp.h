/* otlp.h: this process's recorded spans in OpenTelemetry's OTLP JSON, for the
 * gateway's admin trace view (the exporter itself and its configuration are the
 * kit's own: docs/tracing.md). */
#ifndef SOUK_OTLP_H
#define SOUK_OTLP_H

#include <stddef.h>

/* The spans of the trace with this id (32 lower-case hex digits) that this process
 * still holds in its ring, as one OTLP ExportTraceServiceRequest in JSON
 * ({"resourceSpans":[…]}, empty when none), in a malloc'd string the caller frees;
 * *nspans says how many. NULL when trace_id is not a trace id. Every other service
 * serves the same document at GET /internal/v1/traces/{trace_id} (scope
 * traces:read). */
char *souk_otlp_collect(const char *trace_id, size_t *nspans);

#endif

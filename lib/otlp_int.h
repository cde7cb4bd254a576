/* otlp_int.h: the tracing configuration, the OTLP/HTTP JSON exporter and the internal
 * trace route (otlp_export.c), and the OTLP JSON encoding of the ring's records
 * (otlp.c), for the service main and the unit tests. Not a contract. */
#ifndef SOUK_OTLP_INT_H
#define SOUK_OTLP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "souk/buf.h"

struct souk_route;

/* ---- OTLP JSON (otlp.c) ---- */

/* The encoder's text: the kit's buffer (souk/buf.h), whose first refusal sets over
 * for good, so a document that lost a piece is never finished as if whole. max counts
 * the NUL: at most max - 1 bytes of text. */
struct souk__tbuf {
    struct souk_buf b;
    bool over;
};
#define SOUK__TBUF_INIT(max)                                                                       \
    {                                                                                              \
        {NULL, 0, 0, (size_t)(max)-1}, false                                                       \
    }
void souk__tbuf_put(struct souk__tbuf *b, const char *s, size_t n);
void souk__tbuf_str(struct souk__tbuf *b, const char *s); /* plain text */
void souk__tbuf_free(struct souk__tbuf *b);

/* Records of the ring (len bytes of them, as trace_int.h lays them out) as one OTLP
 * ExportTraceServiceRequest in JSON ({"resourceSpans":[{resource, scopeSpans:[{scope,
 * spans}]}]}; no resourceSpans member items when len is 0), appended to b. A
 * malformed item ends that span's attributes, events or links early; never reads past
 * len. */
void souk__otlp_encode(struct souk__tbuf *b, const unsigned char *recs, size_t len);

/* ---- configuration, exporter, route (otlp_export.c) ---- */

/* Load SOUK_OTLP_* and SOUK_TRACE_*, set up the trace core; listen ("host:port")
 * names this instance. 0, or SOUK_EINVAL after a message on stderr. */
int souk__otlp_init(const char *service, const char *listen);
/* The table of SOUK_OTLP_* and SOUK_TRACE_*, for `<service> --help`. */
void souk__otlp_print_config(FILE *out);
/* Start the exporter thread when SOUK_OTLP_ENDPOINT is set. */
int souk__otlp_start(void);
/* Send what is queued (one attempt, within the export timeout) and stop the exporter. */
void souk__otlp_stop(void);
/* The internal route GET /internal/v1/traces/{trace_id} (scope traces:read): this
 * process's spans of one trace as an OTLP JSON export request (souk_otlp_collect).
 * NULL-ended; none at the edge, whose /internal/ is never public (the gateway
 * collects its own spans in-process). */
const struct souk_route *souk__otlp_routes(bool edge);
#endif

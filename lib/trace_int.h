/* trace_int.h: what the trace core offers the rest of the kit (trace.c: contexts,
 * spans, sampling, the current span, slow-transaction spans; trace_ring.c: the ring of
 * finished spans, which is also the export queue). The exporter, the configuration
 * and the OTLP encoding sit higher, in otlp (otlp_int.h). Not a contract. */
#ifndef SOUK_TRACE_INT_H
#define SOUK_TRACE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/trace.h"

/* A finished span as the ring keeps it: this head, then name, status message and the
 * span's data (attributes, events, links, as trace.c encodes them below). Records sit
 * at any byte offset of the ring: read the head with memcpy. */
struct souk__span_rec {
    uint32_t len; /* the whole record */
    uint8_t kind, status, flags, has_parent;
    uint8_t remote_parent, namelen, msglen, pad;
    uint16_t dropped, datalen;
    uint8_t trace_id[16], span_id[8], parent_id[8];
    uint64_t start_ns, end_ns;
};

/* Items of a span's data, each led by its tag:
 *   'a' attribute of the span, 'x' attribute of the last event:
 *       u8 keylen, key, u8 type, value (type 's': u16 len + bytes; 'i': int64;
 *       'b': u8; 'd': double; numbers in host order)
 *   'e' event: u8 namelen, name, u64 time (Unix ns)
 *   'l' link: trace id (16), span id (8), u8 flags */
#define SOUK__TR_ATTR  'a'
#define SOUK__TR_EATTR 'x'
#define SOUK__TR_EVENT 'e'
#define SOUK__TR_LINK  'l'

/* The resource every span of this process belongs to (trace.c fills it at init). */
struct souk__trace_resource {
    char service[64];
    char instance[160]; /* service.instance.id: host:port */
    char host[128];
    long pid;
};
extern struct souk__trace_resource souk__trace_res;

/* ---- the ring (trace_ring.c) ---- */

/* (Re)make the ring with room for bytes of records; 0 keeps none. Not thread-safe:
 * at start, or in unit tests. */
void souk__trace_ring_setup(size_t bytes);
/* Add a record (len bytes, a head and its parts), evicting the oldest as needed.
 * A record larger than the ring is dropped. Any thread. */
void souk__trace_ring_put(const void *rec, size_t len);
/* Copies of the records of one trace, oldest first, in a malloc'd buffer (*len
 * bytes; NULL and 0 when none). Returns how many. */
size_t souk__trace_ring_find(const uint8_t trace_id[16], unsigned char **out, size_t *len);

/* The exporter's side: it alone takes records in order. take copies up to max
 * records not yet taken (at most cap bytes) into buf and returns how many, with the
 * bytes in *len; *lost counts those the writers overwrote before they were taken. */
size_t souk__trace_ring_take(unsigned char *buf, size_t cap, size_t max, size_t *len,
                             uint64_t *lost);
/* Records written and not yet taken. */
uint64_t souk__trace_ring_pending(void);
/* The exporter sleeps here: until pending reaches batch, ms pass, or stop is
 * called. Returns false once stopped. */
bool souk__trace_ring_wait(uint64_t batch, long ms);
void souk__trace_ring_stop(bool stop); /* wake the waiter for good (true) or re-arm */
/* Tell the ring an exporter takes records, and the count that wakes it. */
void souk__trace_ring_export(bool on, uint64_t batch);

/* ---- set-up and slow transactions (trace.c) ---- */

/* Name this process (service.name, service.instance.id), set the share of new traces
 * sampled (0 to 1: 0 records nothing) and the shortest transaction that gets a span,
 * and make a ring of ring_bytes. At start, before any span. */
void souk__trace_setup(const char *service, const char *instance, double ratio, int64_t db_ms,
                       size_t ring_bytes);

/* Slow database transactions (souk_db_begin … commit/rollback): begin notes the
 * time and the current span, end records a span when the transaction took at least
 * the threshold and the current span was recording. */
struct souk__tx_span {
    uint64_t start_ns;
    struct souk_span_ctx parent;
    bool on;
};
void souk__trace_tx_begin(struct souk__tx_span *t);
void souk__trace_tx_end(struct souk__tx_span *t, const char *db_system, bool committed, int rc);

#endif

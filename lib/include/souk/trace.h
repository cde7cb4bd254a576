/* trace.h: distributed tracing. W3C Trace Context (https://www.w3.org/TR/trace-context/)
 * carries one trace through every service; spans in OpenTelemetry's data model record
 * what each service did in it (requests served, calls made, saga steps, events
 * published and consumed, slow transactions). Finished spans go into a bounded ring of
 * this process's recent spans (the admin's trace view) and, when
 * SOUK_OTLP_ENDPOINT is set, to a collector over OTLP/HTTP with the JSON encoding, from
 * a thread of their own. docs/tracing.md says what is traced and how. */
#ifndef SOUK_TRACE_H
#define SOUK_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SOUK_TRACE_ID_HEX    32 /* 16 bytes, lower-case hex */
#define SOUK_SPAN_ID_HEX     16 /* 8 bytes */
#define SOUK_TRACEPARENT_LEN 55 /* "00-" 32 "-" 16 "-" 2 */

/* Parse a version-00 traceparent, "00-<32 hex trace id>-<16 hex parent id>-<2 hex
 * flags>", exactly (lower-case hex, nothing after it; an all-zero trace id or parent
 * id is invalid). On success fills trace_id (NUL-terminated) and flags and returns
 * true; on anything else returns false and leaves both untouched: the caller starts a
 * new trace. */
bool souk_trace_parse(const char *traceparent, char trace_id[SOUK_TRACE_ID_HEX + 1], char flags[3]);

/* ---- span context: what crosses process boundaries ---- */

#define SOUK_TRACE_SAMPLED 0x01 /* W3C trace flag: the trace is recorded */

struct souk_span_ctx {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags; /* W3C trace flags */
};

/* The same rules as souk_trace_parse into a context; false (ctx untouched) when
 * traceparent is NULL or not well formed. */
bool souk_trace_ctx_parse(const char *traceparent, struct souk_span_ctx *ctx);
/* ctx as a traceparent header value ("00-…-…-01"), NUL-terminated. */
void souk_trace_ctx_format(const struct souk_span_ctx *ctx, char out[SOUK_TRACEPARENT_LEN + 1]);
/* The trace id of ctx as 32 lower-case hex digits, NUL-terminated. */
void souk_trace_id_hex(const struct souk_span_ctx *ctx, char out[SOUK_TRACE_ID_HEX + 1]);

/* ---- spans ---- */

enum souk_span_kind { /* OTLP's numbering */
                      SOUK_SPAN_INTERNAL = 1,
                      SOUK_SPAN_SERVER = 2,
                      SOUK_SPAN_CLIENT = 3,
                      SOUK_SPAN_PRODUCER = 4,
                      SOUK_SPAN_CONSUMER = 5,
};

enum souk_span_status { SOUK_SPAN_UNSET = 0, SOUK_SPAN_OK = 1, SOUK_SPAN_ERROR = 2 };

#define SOUK_SPAN_NAME_MAX   96  /* longer names are cut */
#define SOUK_SPAN_STATUS_MAX 128 /* the status message */
#define SOUK_SPAN_DATA_MAX   768 /* attributes, events and links, encoded */
#define SOUK_SPAN_VALUE_MAX  256 /* one string value; longer ones are cut */

/* A span being recorded. The caller owns the memory (a request's, a job's, the
 * stack); the fields are the kit's and change without notice: use the calls below.
 * A span is used by one thread at a time; it may end on another thread than the
 * one that started it when the hand-over is synchronised (a resumed request). */
struct souk_span {
    struct souk_span_ctx ctx;
    uint8_t parent_id[8];
    bool has_parent, remote_parent;
    bool recording; /* sampled and tracing configured: attributes are kept */
    bool ended;
    uint8_t kind, status;
    uint16_t dropped;                           /* attributes, events or links that did not fit */
    uint16_t len;                               /* of data */
    uint64_t start_ns, end_ns;                  /* Unix epoch nanoseconds */
    char traceparent[SOUK_TRACEPARENT_LEN + 1]; /* ctx, to pass on */
    char name[SOUK_SPAN_NAME_MAX];
    char status_msg[SOUK_SPAN_STATUS_MAX];
    unsigned char data[SOUK_SPAN_DATA_MAX];
};

/* Start s now. parent NULL: a new trace, recorded or not as the sampler decides
 * (SOUK_TRACE_SAMPLE_RATIO of new traces, by trace id); else a child of parent, in
 * its trace, recorded when the parent is (parent-based sampling). remote says that
 * parent came from another process (a header, an event, a stored context). A span
 * that is not recording still has a context to pass on (flags 00), and every call
 * below is then a cheap no-op. Never fails. */
void souk_span_start(struct souk_span *s, enum souk_span_kind kind, const char *name,
                     const struct souk_span_ctx *parent, bool remote);
/* The same with the parent given as a traceparent value: a child of it when it is
 * well formed, else a new trace. For what arrives from outside (a request's header,
 * an event's envelope, a context stored with an order). */
void souk_span_start_from(struct souk_span *s, enum souk_span_kind kind, const char *name,
                          const char *traceparent);

bool souk_span_recording(const struct souk_span *s);
/* Record nothing of s, nor of what starts under it (its context is passed on
 * unsampled): for probes and the kit's own plumbing, traced by no one. */
void souk_span_mute(struct souk_span *s);
/* s's own context as a traceparent value, to pass on to what it calls. */
const char *souk_span_traceparent(const struct souk_span *s);
const struct souk_span_ctx *souk_span_context(const struct souk_span *s);
void souk_span_set_name(struct souk_span *s, const char *name);
/* Move the start back (Unix epoch ns): a span recorded once its duration is known. */
void souk_span_set_start(struct souk_span *s, uint64_t unix_ns);

/* Attributes, by OpenTelemetry's semantic conventions where one applies
 * ("http.route", "rpc.system"…), else under "souk." ("souk.order.id"). Keys and
 * values are copied; a string value is cut at SOUK_SPAN_VALUE_MAX bytes, and one that
 * does not fit the span's room is dropped and counted (droppedAttributesCount). */
void souk_span_set_str(struct souk_span *s, const char *key, const char *value);
void souk_span_set_int(struct souk_span *s, const char *key, int64_t value);
void souk_span_set_bool(struct souk_span *s, const char *key, bool value);
void souk_span_set_double(struct souk_span *s, const char *key, double value);
/* An event at this moment ("retry"); souk_span_event_str/int add attributes to the
 * last event added. */
void souk_span_add_event(struct souk_span *s, const char *name);
void souk_span_event_str(struct souk_span *s, const char *key, const char *value);
void souk_span_event_int(struct souk_span *s, const char *key, int64_t value);
/* A link to another span (the creation context of a consumed event). */
void souk_span_add_link(struct souk_span *s, const struct souk_span_ctx *ctx);
/* The outcome: SOUK_SPAN_ERROR with a short message (may be NULL), or OK. */
void souk_span_set_status(struct souk_span *s, enum souk_span_status status, const char *msg);

/* End s now: a recording span is handed to the ring (and the exporter's queue); s
 * may be reused or freed at once. Ending twice is a no-op. */
void souk_span_end(struct souk_span *s);

/* ---- the current span of a thread ---- */

/* Make s the thread's current span (the parent of what the thread starts next: calls
 * to peers, events published, slow transactions) and return the one it replaces, to
 * give back with souk_trace_leave. s must stay valid until then. */
struct souk_span *souk_trace_enter(struct souk_span *s);
void souk_trace_leave(struct souk_span *previous);
/* The thread's current span, or NULL. */
struct souk_span *souk_trace_current(void);

/* Unix epoch nanoseconds (CLOCK_REALTIME), the clock spans are stamped with. */
uint64_t souk_trace_now(void);

#endif

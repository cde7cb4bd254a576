/* trace.h: W3C Trace Context (https://www.w3.org/TR/trace-context/): the
 * `traceparent` header a request arrives with and passes on, so one trace id
 * follows a request through every service. */
#ifndef SOUK_TRACE_H
#define SOUK_TRACE_H

#include <stdbool.h>

#define SOUK_TRACE_ID_HEX 32 /* 16 bytes, lower-case hex */

/* Parse a version-00 traceparent, "00-<32 hex trace id>-<16 hex parent id>-<2 hex
 * flags>", exactly (lower-case hex, nothing after it; an all-zero trace id is
 * invalid). On success fills trace_id (NUL-terminated) and flags and returns true;
 * on anything else returns false and leaves both untouched: the caller starts a
 * new trace. */
bool souk_trace_parse(const char *traceparent, char trace_id[SOUK_TRACE_ID_HEX + 1], char flags[3]);

#endif

/* trace.c: W3C Trace Context: the traceparent header parsed strictly, since it
 * comes from anyone (the gateway passes it on from clients). */
#include <string.h>

#include "souk/trace.h"

#define TRACEPARENT_LEN 55 /* "00-" 32 "-" 16 "-" 2 */

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

bool souk_trace_parse(const char *tp, char trace_id[SOUK_TRACE_ID_HEX + 1], char flags[3])
{
    if (tp == NULL || strnlen(tp, TRACEPARENT_LEN + 1) != TRACEPARENT_LEN ||
        strncmp(tp, "00-", 3) != 0 || !all_hex(tp + 3, 32) || tp[35] != '-' ||
        !all_hex(tp + 36, 16) || tp[52] != '-' || !all_hex(tp + 53, 2) ||
        strncmp(tp + 3, "00000000000000000000000000000000", 32) == 0)
        return false;
    memcpy(trace_id, tp + 3, SOUK_TRACE_ID_HEX);
    trace_id[SOUK_TRACE_ID_HEX] = '\0';
    memcpy(flags, tp + 53, 2);
    flags[2] = '\0';
    return true;
}

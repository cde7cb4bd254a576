/* traceparent.c: libFuzzer driver for the W3C traceparent parser (lib/trace.c,
 * souk_trace_parse), which reads a header anyone can send. What it accepts must be
 * exactly the version-00 form, and what it returns must be what the header said. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "souk/trace.h"

static bool lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    char *tp = malloc(n + 1);
    memcpy(tp, data, n);
    tp[n] = '\0';
    char id[SOUK_TRACE_ID_HEX + 1] = "untouched", flags[3] = "u";
    if (souk_trace_parse(tp, id, flags)) {
        if (strlen(tp) != 55 || strncmp(tp, "00-", 3) != 0 || tp[35] != '-' || tp[52] != '-' ||
            strlen(id) != SOUK_TRACE_ID_HEX || !lower_hex(id, SOUK_TRACE_ID_HEX) ||
            strspn(id, "0") == SOUK_TRACE_ID_HEX || memcmp(tp + 3, id, SOUK_TRACE_ID_HEX) != 0 ||
            strlen(flags) != 2 || !lower_hex(flags, 2) || memcmp(tp + 53, flags, 2) != 0 ||
            !lower_hex(tp + 36, 16))
            abort();
    } else if (strcmp(id, "untouched") != 0 || strcmp(flags, "u") != 0) {
        abort(); /* refused: the caller's buffers are left as they were */
    }
    free(tp);
    return 0;
}

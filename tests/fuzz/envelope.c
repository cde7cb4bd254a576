/* envelope.c: libFuzzer driver for the CloudEvents envelope check every consumer
 * runs on what a feed or a broker delivers (lib/events.c,
 * souk__ev_parse_envelope): the input is parsed as JSON as delivery does, then
 * checked; an accepted envelope must point at a whole event. */
#include <stdlib.h>
#include <string.h>

#include "events_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    json_t *env = json_loadb((const char *)data, n, JSON_REJECT_DUPLICATES, NULL);
    if (env == NULL)
        return 0;
    struct souk_event ev;
    char type[SOUK__EV_TYPE_MAX + 1], source[64];
    memset(&ev, 0, sizeof(ev));
    const char *why = souk__ev_parse_envelope(env, &ev, type, source);
    if (why == NULL) {
        if (ev.id == NULL || ev.id[0] == '\0' || strlen(ev.id) > SOUK__EV_ID_MAX ||
            ev.type != type || type[0] == '\0' || ev.source != source || source[0] == '\0' ||
            ev.time == NULL || !json_is_object(ev.data))
            abort();
    } else if (why[0] == '\0') {
        abort();
    }
    json_decref(env);
    return 0;
}

/* backoff.c: the platform's one retry delay (backoff.h): exponential, capped, with
 * equal jitter. Depends on nothing of the kit (the supervisor links it alone). */
#include <sodium.h>

#include "souk/backoff.h"

int64_t souk_backoff_cap_ms(const struct souk_backoff *b, int64_t attempt)
{
    int64_t base = b->base_ms > 0 ? b->base_ms : 1;
    int64_t max = b->max_ms > base ? b->max_ms : base;
    int64_t d = base;
    /* doubling stops at the cap, so no attempt count can overflow it */
    for (int64_t i = 1; i < attempt && d < max; i++)
        d = d > max / 2 ? max : d * 2;
    return d < max ? d : max;
}

int64_t souk_backoff_jitter(int64_t d, uint32_t rnd)
{
    if (d <= 0)
        return 0;
    int64_t half = d - d / 2; /* rounded up: a delay of 1 ms stays 1 ms */
    return half + (int64_t)(rnd % (uint64_t)(d - half + 1));
}

int64_t souk_backoff_ms(const struct souk_backoff *b, int64_t attempt)
{
    return souk_backoff_jitter(souk_backoff_cap_ms(b, attempt), randombytes_random());
}

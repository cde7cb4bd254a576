/* breaker.c: the platform's one circuit breaker (breaker.h): a state machine over
 * the outcomes its caller reports, with the time passed in. */
#include "souk/breaker.h"

void souk_breaker_init(struct souk_breaker *b, int threshold, int64_t open_ms)
{
    *b = (struct souk_breaker){.threshold = threshold > 0 ? threshold : 1,
                               .open_ms = open_ms > 0 ? open_ms : 0,
                               .state = SOUK_BREAKER_CLOSED};
}

bool souk_breaker_ready(const struct souk_breaker *b, uint64_t now_ns)
{
    return b->state == SOUK_BREAKER_CLOSED ||
           (b->state == SOUK_BREAKER_OPEN && now_ns >= b->open_until_ns);
}

bool souk_breaker_is_open(const struct souk_breaker *b, uint64_t now_ns)
{
    return b->state == SOUK_BREAKER_OPEN && now_ns < b->open_until_ns;
}

bool souk_breaker_allow(struct souk_breaker *b, uint64_t now_ns)
{
    if (!souk_breaker_ready(b, now_ns))
        return false;
    if (b->state == SOUK_BREAKER_OPEN)
        b->state = SOUK_BREAKER_HALF_OPEN; /* this call is the trial */
    return true;
}

static void open_at(struct souk_breaker *b, uint64_t now_ns)
{
    b->state = SOUK_BREAKER_OPEN;
    b->open_until_ns = now_ns + (uint64_t)b->open_ms * 1000000u;
}

bool souk_breaker_report(struct souk_breaker *b, enum souk_breaker_outcome outcome, uint64_t now_ns)
{
    if (outcome == SOUK_BREAKER_OK) {
        b->reached = true;
        b->failures = 0;
        b->state = SOUK_BREAKER_CLOSED;
        return false;
    }
    if (outcome == SOUK_BREAKER_REFUSED && !b->reached) {
        /* a peer still starting: not a failure; a trial it ended leaves the breaker
         * open and due, so the next call is the next trial */
        if (b->state == SOUK_BREAKER_HALF_OPEN)
            b->state = SOUK_BREAKER_OPEN;
        return false;
    }
    b->failures++;
    if (b->state == SOUK_BREAKER_CLOSED) {
        if (b->failures < b->threshold)
            return false;
        open_at(b, now_ns);
        return true;
    }
    open_at(b, now_ns); /* a failed trial, or a late failure while open: wait again */
    return false;
}

void souk_breaker_retry_now(struct souk_breaker *b)
{
    if (b->state == SOUK_BREAKER_OPEN)
        b->open_until_ns = 0;
}

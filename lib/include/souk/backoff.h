/* backoff.h: the one delay before trying again, for every retry loop of the platform
 * (the client, the events transports, the orders saga, notify's mailer, the
 * supervisor's restarts): exponential from base_ms, capped at max_ms, with "equal
 * jitter": half of the delay fixed, half random, so replicas that failed together
 * do not retry together, and no retry comes at once. Self-contained (libsodium's
 * randomness only), so the supervisor links it without the rest of the kit. */
#ifndef SOUK_BACKOFF_H
#define SOUK_BACKOFF_H

#include <stdint.h>

struct souk_backoff {
    int64_t base_ms; /* the delay before the first retry, before jitter; >= 1 */
    int64_t max_ms;  /* no delay is longer; >= base_ms */
};

/* The delay before retry number attempt (1-based; below 1 counts as 1), before
 * jitter: base_ms · 2^(attempt − 1), at most max_ms. Never overflows. */
int64_t souk_backoff_cap_ms(const struct souk_backoff *b, int64_t attempt);

/* Equal jitter of a delay d with the random number rnd: a value in [⌈d/2⌉, d],
 * chosen by rnd. Pure, for the unit test; souk_backoff_ms() draws rnd. */
int64_t souk_backoff_jitter(int64_t d, uint32_t rnd);

/* How long to wait before retry number attempt: souk_backoff_cap_ms() jittered,
 * in [⌈cap/2⌉, cap] milliseconds. */
int64_t souk_backoff_ms(const struct souk_backoff *b, int64_t attempt);

#endif

/* breaker.c: the one circuit breaker (lib/breaker.c) as a table of sequences: each
 * step an operation at a time, what it must return and the state it must leave. */
#include <stdbool.h>
#include <stdint.h>

#include "souk/breaker.h"
#include "test.h"

#define MS 1000000ull /* the breaker's clock is the caller's, in nanoseconds */

enum op { ALLOW, OK, FAILED, REFUSED, READY, IS_OPEN, RETRY_NOW };
enum { C = SOUK_BREAKER_CLOSED, O = SOUK_BREAKER_OPEN, H = SOUK_BREAKER_HALF_OPEN };

struct step {
    enum op op;
    uint64_t at_ms;
    bool want; /* what allow/report/ready/is_open return (retry_now: ignored) */
    int state; /* the state after the step */
};

struct sequence {
    const char *name;
    int threshold;
    int64_t open_ms;
    struct step steps[16];
    int n;
};

static bool run(struct souk_breaker *b, const struct step *s)
{
    uint64_t now = s->at_ms * MS;
    switch (s->op) {
    case ALLOW:
        return souk_breaker_allow(b, now);
    case OK:
        return souk_breaker_report(b, SOUK_BREAKER_OK, now);
    case FAILED:
        return souk_breaker_report(b, SOUK_BREAKER_FAILED, now);
    case REFUSED:
        return souk_breaker_report(b, SOUK_BREAKER_REFUSED, now);
    case READY:
        return souk_breaker_ready(b, now);
    case IS_OPEN:
        return souk_breaker_is_open(b, now);
    case RETRY_NOW:
        souk_breaker_retry_now(b);
        return false;
    }
    return false;
}

static const struct sequence sequences[] = {
    {"opens after threshold failures in a row, and says so once",
     3,
     1000,
     {{OK, 0, false, C},
      {FAILED, 1, false, C},
      {FAILED, 2, false, C},
      {FAILED, 3, true, O}, /* the third: opened */
      {ALLOW, 4, false, O},
      {IS_OPEN, 500, true, O},
      {READY, 1002, false, O},
      {FAILED, 5, false, O}}, /* a late failure while open: not said again */
     8},
    {"a success in between starts the count over",
     2,
     1000,
     {{FAILED, 0, false, C}, {OK, 1, false, C}, {FAILED, 2, false, C}, {ALLOW, 3, true, C}},
     4},
    {"half-open: one trial; its success closes",
     1,
     100,
     {{FAILED, 0, true, O},
      {ALLOW, 99, false, O},
      {READY, 100, true, O},
      {ALLOW, 100, true, H},  /* the trial */
      {ALLOW, 101, false, H}, /* the others fail fast meanwhile */
      {IS_OPEN, 101, false, H},
      {OK, 150, false, C},
      {ALLOW, 151, true, C}},
     8},
    {"half-open: a failed trial opens again for open_ms from its end",
     1,
     100,
     {{FAILED, 0, true, O},
      {ALLOW, 100, true, H},
      {FAILED, 120, false, O},
      {ALLOW, 219, false, O},
      {ALLOW, 220, true, H}},
     5},
    {"refused before the peer ever answered: never counts (a peer still starting)",
     1,
     2000,
     {{ALLOW, 0, true, C},
      {REFUSED, 0, false, C},
      {REFUSED, 10, false, C},
      {REFUSED, 20, false, C},
      {ALLOW, 30, true, C},
      {OK, 31, false, C},      /* it came up: reached */
      {REFUSED, 40, true, O}}, /* now a refusal is a crash: counts */
     7},
    {"a timeout counts even before the peer ever answered",
     2,
     1000,
     {{FAILED, 0, false, C}, {FAILED, 1, true, O}},
     2},
    {"a trial refused by a peer not yet reached frees the trial at once",
     1,
     500,
     {{FAILED, 0, true, O},
      {ALLOW, 500, true, H},
      {REFUSED, 501, false, O},
      {ALLOW, 502, true, H}, /* due already: the next call is the next trial */
      {OK, 503, false, C}},
     5},
    {"retry_now: a health probe passed, the trial goes at once",
     1,
     60000,
     {{FAILED, 0, true, O},
      {ALLOW, 10, false, O},
      {RETRY_NOW, 11, false, O},
      {ALLOW, 12, true, H},
      {RETRY_NOW, 13, false, H}, /* only an open breaker is touched */
      {ALLOW, 14, false, H}},
     6},
    {"a threshold below 1 is 1", 0, 10, {{FAILED, 0, true, O}}, 1},
};

static void test_sequences(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(sequences) / sizeof(sequences[0]); i++) {
        const struct sequence *q = &sequences[i];
        struct souk_breaker b;
        souk_breaker_init(&b, q->threshold, q->open_ms);
        for (int k = 0; k < q->n; k++) {
            const struct step *s = &q->steps[k];
            bool got = run(&b, s);
            if (s->op != RETRY_NOW && got != s->want)
                fail_msg("%s: step %d returned %d, want %d", q->name, k, got, s->want);
            if ((int)b.state != s->state)
                fail_msg("%s: step %d left state %d, want %d", q->name, k, (int)b.state, s->state);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

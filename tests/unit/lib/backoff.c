/* backoff.c: the one retry delay (lib/backoff.c): the exponential cap as a table,
 * the jitter's bounds at their edges, and draws that stay in bounds and vary. */
#include <stdint.h>

#include "souk/backoff.h"
#include "test.h"

static void test_cap_table(void **state)
{
    (void)state;
    static const struct {
        int64_t base, max, attempt, want;
    } cases[] = {
        {100, 5000, 1, 100},
        {100, 5000, 2, 200},
        {100, 5000, 4, 800},
        {100, 5000, 6, 3200},
        {100, 5000, 7, 5000}, /* 6400 capped */
        {100, 5000, 1000, 5000},
        {100, 5000, INT64_MAX, 5000},
        {100, 5000, 0, 100}, /* below 1 counts as 1 */
        {100, 5000, -7, 100},
        {200, 10000, 3, 800},
        {7, 7, 9, 7},                                /* base == max */
        {500, 100, 2, 500},                          /* max below base: base it is */
        {0, 10, 2, 2},                               /* base 0 counts as 1 */
        {(int64_t)1 << 62, INT64_MAX, 2, INT64_MAX}, /* 2^63 would overflow: the cap */
        {3, 10, 3, 10},                              /* 12 capped */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct souk_backoff b = {cases[i].base, cases[i].max};
        int64_t got = souk_backoff_cap_ms(&b, cases[i].attempt);
        if (got != cases[i].want)
            fail_msg("case %zu: base %lld max %lld attempt %lld: got %lld, want %lld", i,
                     (long long)cases[i].base, (long long)cases[i].max, (long long)cases[i].attempt,
                     (long long)got, (long long)cases[i].want);
    }
}

static void test_jitter_bounds(void **state)
{
    (void)state;
    assert_int_equal(souk_backoff_jitter(100, 0), 50);   /* the floor: half */
    assert_int_equal(souk_backoff_jitter(100, 50), 100); /* the ceiling: all of it */
    assert_int_equal(souk_backoff_jitter(100, 51), 50);  /* wraps, never past d */
    assert_int_equal(souk_backoff_jitter(101, 0), 51);   /* half rounded up */
    assert_int_equal(souk_backoff_jitter(1, 0), 1);      /* never 0 for a delay */
    assert_int_equal(souk_backoff_jitter(1, UINT32_MAX), 1);
    assert_int_equal(souk_backoff_jitter(0, 12345), 0);
    for (uint32_t r = 0; r < 2000; r += 7) {
        int64_t v = souk_backoff_jitter(1000, r * 2654435761u);
        assert_in_range(v, 500, 1000);
    }
}

static void test_draws_stay_in_bounds_and_vary(void **state)
{
    (void)state;
    struct souk_backoff b = {200, 10000};
    for (int64_t attempt = 1; attempt <= 8; attempt++) {
        int64_t cap = souk_backoff_cap_ms(&b, attempt), lo = cap, hi = 0;
        for (int i = 0; i < 200; i++) {
            int64_t v = souk_backoff_ms(&b, attempt);
            assert_in_range(v, (cap + 1) / 2, cap);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        /* 200 draws over at least 50 values: all equal would mean no jitter */
        assert_true(hi > lo);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_table),
        cmocka_unit_test(test_jitter_bounds),
        cmocka_unit_test(test_draws_stay_in_bounds_and_vary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

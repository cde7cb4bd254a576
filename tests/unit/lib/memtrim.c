/* memtrim.c: when the kit gives the heap back (lib/memtrim.c): only after work, only
 * after the quiet period, once per quiet stretch, never when switched off; the
 * decision alone, on made-up clocks (no sleeping, no timing). */
#include <stdbool.h>
#include <stdint.h>

#include "memtrim_int.h"
#include "test.h"

#define MS 1000000LL /* CPU nanoseconds per millisecond */

static void test_trims_once_after_quiet(void **state)
{
    (void)state;
    souk__memtrim_configure(0, 2000);
    assert_false(souk__memtrim_decide(1000, 0));        /* the first look only records */
    assert_false(souk__memtrim_decide(2000, 1 * MS));   /* quiet for 1 s of 2 */
    assert_true(souk__memtrim_decide(3000, 2 * MS));    /* 2 s quiet after start-up's work */
    assert_false(souk__memtrim_decide(4000, 3 * MS));   /* no work since: no second trim */
    assert_false(souk__memtrim_decide(60000, 4 * MS));  /* however long it stays quiet */
    assert_false(souk__memtrim_decide(61000, 80 * MS)); /* 76 ms in a second: work */
    assert_false(souk__memtrim_decide(62000, 81 * MS));
    assert_true(souk__memtrim_decide(63000, 82 * MS)); /* 2 s quiet after it */
    assert_false(souk__memtrim_decide(64000, 83 * MS));
}

static void test_steady_work_never_trims(void **state)
{
    (void)state;
    souk__memtrim_configure(0, 2000);
    int64_t cpu = 0;
    assert_false(souk__memtrim_decide(1000, cpu));
    for (int64_t t = 2000; t < 30000; t += 1000) {
        cpu += 11 * MS; /* just over the threshold, every second */
        assert_false(souk__memtrim_decide(t, cpu));
    }
    assert_false(souk__memtrim_decide(30000, cpu)); /* 1 s quiet */
    assert_true(souk__memtrim_decide(31000, cpu));
}

static void test_off_and_stalled_clock(void **state)
{
    (void)state;
    souk__memtrim_configure(0, 0); /* SOUK_MEMORY_TRIM_MS=0: never */
    assert_false(souk__memtrim_decide(1000, 0));
    for (int64_t t = 2000; t < 20000; t += 1000)
        assert_false(souk__memtrim_decide(t, 0));
    souk__memtrim_configure(0, 2000);
    assert_false(souk__memtrim_decide(5000, 0));
    assert_false(souk__memtrim_decide(5000, 0)); /* no time passed */
    assert_false(souk__memtrim_decide(4000, 0)); /* nor backwards */
    assert_true(souk__memtrim_decide(7000, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trims_once_after_quiet),
        cmocka_unit_test(test_steady_work_never_trims),
        cmocka_unit_test(test_off_and_stalled_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* buf.c: the kit's growable byte buffer: growth keeps every byte, the cap refuses a
 * piece whole and keeps what is in, zero-length pieces, reserve, reset and free keep
 * the cap, take hands the bytes over, and size arithmetic near SIZE_MAX refuses
 * instead of wrapping. Run under the sanitizers, a write past the allocation or a
 * missing NUL would be reported. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "souk/buf.h"
#include "souk/souk.h"
#include "test.h"

static void test_growth_keeps_every_byte(void **state)
{
    (void)state;
    struct souk_buf b;
    souk_buf_init(&b, SIZE_MAX);
    assert_null(b.p);
    char piece[97];
    size_t want = 0;
    for (int i = 0; i < 1000; i++) { /* odd sizes across many doublings */
        size_t n = (size_t)(i * 31) % sizeof(piece);
        memset(piece, 'a' + i % 26, n);
        assert_int_equal(souk_buf_put(&b, piece, n), 0);
        want += n;
        assert_int_equal(b.len, want);
        if (i == 0) { /* nothing yet: nothing allocated */
            assert_null(b.p);
            continue;
        }
        assert_true(b.cap > b.len);
        assert_int_equal(b.p[b.len], '\0');
    }
    size_t off = 0;
    for (int i = 0; i < 1000; i++) {
        size_t n = (size_t)(i * 31) % sizeof(piece);
        for (size_t k = 0; k < n; k++)
            if (b.p[off + k] != 'a' + i % 26)
                fail_msg("piece %d byte %zu lost", i, k);
        off += n;
    }
    souk_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
}

static void test_cap_refuses_and_keeps_what_is_in(void **state)
{
    (void)state;
    struct souk_buf b;
    souk_buf_init(&b, 10);
    assert_int_equal(souk_buf_put(&b, "12345", 5), 0);
    assert_int_equal(souk_buf_put(&b, "678901", 6), SOUK_ETOOBIG); /* one past */
    assert_int_equal(b.len, 5);
    assert_string_equal(b.p, "12345");
    assert_int_equal(souk_buf_put(&b, "67890", 5), 0); /* exactly the cap */
    assert_string_equal(b.p, "1234567890");
    assert_true(b.cap <= 11); /* never allocates past what the cap can use */
    assert_int_equal(souk_buf_put(&b, "x", 1), SOUK_ETOOBIG);
    assert_string_equal(b.p, "1234567890");
    souk_buf_free(&b);

    souk_buf_init(&b, 0); /* a cap of nothing: only empty pieces */
    assert_int_equal(souk_buf_put(&b, "x", 1), SOUK_ETOOBIG);
    assert_int_equal(souk_buf_put(&b, "", 0), 0);
    assert_null(b.p);
    souk_buf_free(&b);
}

static void test_zero_length_puts(void **state)
{
    (void)state;
    struct souk_buf b;
    souk_buf_init(&b, 4);
    assert_int_equal(souk_buf_put(&b, NULL, 0), 0);
    assert_null(b.p); /* nothing allocated for nothing */
    assert_int_equal(souk_buf_put(&b, "abcd", 4), 0);
    assert_int_equal(souk_buf_put(&b, NULL, 0), 0); /* at the cap too */
    assert_string_equal(b.p, "abcd");
    souk_buf_free(&b);
}

static void test_reset_reserve_free_take(void **state)
{
    (void)state;
    struct souk_buf b;
    souk_buf_init(&b, 100);
    assert_int_equal(souk_buf_reserve(&b, 101), SOUK_ETOOBIG);
    assert_null(b.p);
    assert_int_equal(souk_buf_reserve(&b, 50), 0); /* exactly that, and a NUL */
    assert_int_equal(b.cap, 51);
    assert_string_equal(b.p, "");
    char *p = b.p;
    assert_int_equal(souk_buf_put(&b, "hello", 5), 0);
    assert_ptr_equal(b.p, p); /* no allocation while it fits */
    souk_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    assert_ptr_equal(b.p, p); /* memory kept */
    assert_int_equal(b.max, 100);
    assert_int_equal(souk_buf_put(&b, "again", 5), 0);

    size_t len = 0;
    char *t = souk_buf_take(&b, &len);
    assert_int_equal(len, 5);
    assert_string_equal(t, "again");
    free(t);
    assert_null(b.p); /* empty, owning nothing, same cap */
    assert_int_equal(b.len, 0);
    assert_int_equal(b.max, 100);
    t = souk_buf_take(&b, &len); /* never NULL */
    assert_int_equal(len, 0);
    assert_string_equal(t, "");
    free(t);

    assert_int_equal(souk_buf_put(&b, "x", 1), 0);
    souk_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.max, 100);
    assert_int_equal(souk_buf_put(&b, "y", 1), 0); /* usable after a free */
    assert_string_equal(b.p, "y");
    souk_buf_free(&b);
}

static void test_size_arithmetic_does_not_wrap(void **state)
{
    (void)state;
    struct souk_buf b;
    souk_buf_init(&b, SIZE_MAX);
    assert_int_equal(souk_buf_put(&b, "abc", 3), 0);
    /* len + n would wrap to a small number: refused, not a short allocation */
    assert_int_equal(souk_buf_put(&b, "x", SIZE_MAX), SOUK_ETOOBIG);
    assert_int_equal(souk_buf_put(&b, "x", SIZE_MAX - 2), SOUK_ETOOBIG);
    assert_int_equal(souk_buf_put(&b, "x", SIZE_MAX - 3), SOUK_ETOOBIG); /* no room for the NUL */
    assert_int_equal(souk_buf_reserve(&b, SIZE_MAX - 1), SOUK_ETOOBIG);
    assert_int_equal(b.len, 3);
    assert_string_equal(b.p, "abc");
    souk_buf_free(&b);

    souk_buf_init(&b, SIZE_MAX - 1); /* a cap near the top: max + 1 must not wrap */
    assert_int_equal(souk_buf_put(&b, "abc", 3), 0);
    assert_int_equal(souk_buf_put(&b, "x", SIZE_MAX - 3), SOUK_ETOOBIG);
    assert_string_equal(b.p, "abc");
    souk_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_growth_keeps_every_byte),
        cmocka_unit_test(test_cap_refuses_and_keeps_what_is_in),
        cmocka_unit_test(test_zero_length_puts),
        cmocka_unit_test(test_reset_reserve_free_take),
        cmocka_unit_test(test_size_arithmetic_does_not_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

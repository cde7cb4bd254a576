/* arena.c: the request arena: every block 16-byte aligned and its own (many
 * blocks across many chunks keep what was written in them), a block larger than
 * any chunk, the byte count, the string helpers, and reuse after a free. Run
 * under the sanitizers, a block that overlapped another or ran past its chunk
 * would be reported. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/arena.h"
#include "test.h"

#define BLOCKS 2000

static void test_blocks_are_aligned_and_their_own(void **state)
{
    (void)state;
    struct souk_arena a;
    souk_arena_init(&a);
    static unsigned char *blocks[BLOCKS];
    static size_t sizes[BLOCKS];
    size_t sum = 0;
    for (size_t i = 0; i < BLOCKS; i++) {
        sizes[i] = (i * 37) % 700; /* 0 to 699 bytes: odd sizes, many chunks */
        blocks[i] = souk_arena_alloc(&a, sizes[i]);
        assert_non_null(blocks[i]);
        assert_int_equal((uintptr_t)blocks[i] % 16, 0);
        memset(blocks[i], (int)(i & 0xff), sizes[i]);
        sum += (sizes[i] + 15) & ~(size_t)15;
    }
    assert_int_equal(a.total, sum);
    for (size_t i = 0; i < BLOCKS; i++)
        for (size_t k = 0; k < sizes[i]; k++)
            if (blocks[i][k] != (unsigned char)(i & 0xff))
                fail_msg("block %zu byte %zu was overwritten", i, k);
    souk_arena_free(&a);
    assert_null(a.head);
    assert_int_equal(a.total, 0);
}

static void test_a_block_larger_than_any_chunk(void **state)
{
    (void)state;
    struct souk_arena a;
    souk_arena_init(&a);
    char *small = souk_arena_strdup(&a, "before");
    size_t big_n = 1024 * 1024 + 3; /* over the 256 KiB chunk cap */
    unsigned char *big = souk_arena_alloc(&a, big_n);
    memset(big, 0xab, big_n);
    char *after = souk_arena_strdup(&a, "after");
    assert_string_equal(small, "before");
    assert_string_equal(after, "after");
    assert_int_equal(big[0], 0xab);
    assert_int_equal(big[big_n - 1], 0xab);
    souk_arena_free(&a);
}

static void test_strings_and_zeroes(void **state)
{
    (void)state;
    struct souk_arena a;
    souk_arena_init(&a);
    unsigned char *z = souk_arena_calloc(&a, 333);
    for (size_t i = 0; i < 333; i++)
        assert_int_equal(z[i], 0);
    assert_string_equal(souk_arena_strndup(&a, "abcdef", 3), "abc");
    assert_string_equal(souk_arena_strdup(&a, ""), "");
    assert_string_equal(souk_arena_printf(&a, "%s-%d", "order", 42), "order-42");
    /* a formatted string longer than the first chunk */
    char *long_one = souk_arena_printf(&a, "%9000d|", 7);
    assert_int_equal(strlen(long_one), 9001);
    assert_int_equal(long_one[8999], '7');
    assert_int_equal(long_one[9000], '|');
    void *empty = souk_arena_alloc(&a, 0); /* a valid pointer, nothing to use */
    assert_non_null(empty);
    souk_arena_free(&a);
}

static void test_reuse_after_free(void **state)
{
    (void)state;
    struct souk_arena a;
    souk_arena_init(&a);
    for (int round = 0; round < 3; round++) {
        char *items[100], want[64];
        for (int i = 0; i < 100; i++)
            items[i] = souk_arena_printf(&a, "round %d item %d", round, i);
        for (int i = 0; i < 100; i++) {
            snprintf(want, sizeof(want), "round %d item %d", round, i);
            assert_string_equal(items[i], want);
        }
        assert_true(a.total > 0);
        souk_arena_free(&a); /* the arena is empty and usable again */
        assert_int_equal(a.total, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_are_aligned_and_their_own),
        cmocka_unit_test(test_a_block_larger_than_any_chunk),
        cmocka_unit_test(test_strings_and_zeroes),
        cmocka_unit_test(test_reuse_after_free),
    };
    return cmocka_run_group_tests_name("arena", tests, NULL, NULL);
}

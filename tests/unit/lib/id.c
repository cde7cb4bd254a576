/* id.c: tests lib/id.c: format, known encodings, validation, time order. */
#include <string.h>
#include <unistd.h>

#include "souk/id.h"
#include "souk/souk.h"
#include "test.h"

static void test_known_encoding(void **state)
{
    (void)state;
    char id[SOUK_ID_MAX];
    uint8_t zero[10] = {0}, ones[10];
    memset(ones, 0xff, sizeof(ones));
    assert_string_equal(souk_id_make(id, "prd", 0, zero), "prd_00000000000000000000000000");
    /* the largest ULID: 48 bits of time and 80 of randomness all set */
    assert_string_equal(souk_id_make(id, "x", 0xffffffffffffLL, ones),
                        "x_7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    /* 1 ms in the time part is the last of the first ten characters */
    assert_string_equal(souk_id_make(id, "t", 1, zero), "t_00000000010000000000000000");
    assert_int_equal(souk_id_time(id), 1);
}

static void test_new_ids(void **state)
{
    (void)state;
    char a[SOUK_ID_MAX], b[SOUK_ID_MAX];
    souk_id_new(a, "ord");
    usleep(2000);
    souk_id_new(b, "ord");
    assert_int_equal(strlen(a), 4 + SOUK_ULID_LEN);
    assert_true(souk_id_valid(a, "ord"));
    assert_true(strcmp(a, b) < 0); /* time-ordered */
    int64_t now = souk_wall_ms();
    assert_true(souk_id_time(b) <= now && souk_id_time(b) > now - 5000);
    souk_id_new(b, "ord");
    assert_string_not_equal(a, b);
}

static void test_validation(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "prd_",                            /* empty */
        "prd_0000000000000000000000000",   /* 25 chars */
        "prd_000000000000000000000000000", /* 27 chars */
        "prd_0000000000000000000000000I",  /* I is not Crockford */
        "prd_0000000000000000000000000u",  /* lowercase */
        "prd_80000000000000000000000000",  /* over 128 bits */
        "ord_00000000000000000000000000",  /* wrong prefix */
        "prd00000000000000000000000000",   /* no underscore */
        "prd_00000000000000000000000000/x",
    };
    assert_true(souk_id_valid("prd_00000000000000000000000000", "prd"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (souk_id_valid(bad[i], "prd"))
            fail_msg("%s accepted", bad[i]);
    assert_int_equal(souk_id_time("nope"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_encoding),
        cmocka_unit_test(test_new_ids),
        cmocka_unit_test(test_validation),
    };
    return cmocka_run_group_tests_name("id", tests, NULL, NULL);
}

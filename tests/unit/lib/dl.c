/* tests/unit/lib/dl.c: the back-ends' libraries as lib/dl.c loads them: a missing
 * library or function is refused with a reason naming it and its Debian package, and
 * the table keeps its old values; the installed librabbitmq, librdkafka and libpq have
 * every function events_amqp.c, events_kafka.c and db_pg.c call (what make would have
 * checked when they were linked). */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "../../../lib/db_int.h"
#include "../../../lib/dl_int.h"
#include "../../../lib/events_int.h"
#include "souk/souk.h"
#include "test.h"

static struct {
    SOUK__DL_SLOT(strlen) SOUK__DL_SLOT(memchr)
} c;

static void test_missing_library_is_named(void **state)
{
    (void)state;
    static const struct souk__dl_lib lib = {"libsouk-no-such.so.7", "libsouk-no-such7"};
    static const struct souk__dl_sym syms[] = {SOUK__DL_SYM(c, strlen)};
    char why[512] = "";
    c.strlen = NULL;
    assert_int_equal(souk__dl_load(&lib, syms, 1, why, sizeof(why)), SOUK_ENOTFOUND);
    assert_non_null(strstr(why, "cannot load libsouk-no-such.so.7"));
    assert_non_null(strstr(why, "Debian package libsouk-no-such7"));
    assert_null(c.strlen);
}

static void test_missing_function_leaves_the_table_alone(void **state)
{
    (void)state;
    static const struct souk__dl_lib lib = {"libc.so.6", "libc6"};
    /* the first resolves, the second does not: neither may be filled */
    static const struct souk__dl_sym syms[] = {
        SOUK__DL_SYM(c, strlen){"souk_no_such_fn", &c.memchr}};
    char why[512] = "";
    c.strlen = NULL;
    c.memchr = NULL;
    assert_int_equal(souk__dl_load(&lib, syms, 2, why, sizeof(why)), SOUK_ENOTFOUND);
    assert_non_null(strstr(why, "libc.so.6 (Debian package libc6) has no souk_no_such_fn"));
    assert_null(c.strlen);
    assert_null(c.memchr);
}

static void test_found_functions_are_callable(void **state)
{
    (void)state;
    static const struct souk__dl_lib lib = {"libc.so.6", "libc6"};
    static const struct souk__dl_sym syms[] = {SOUK__DL_SYM(c, strlen) SOUK__DL_SYM(c, memchr)};
    char why[512] = "";
    assert_int_equal(souk__dl_load(&lib, syms, 2, why, sizeof(why)), 0);
    assert_int_equal(c.strlen("souk"), 4);
    assert_ptr_equal(c.memchr("souk", 'u', 4), (const char *)"souk" + 2);
}

static void test_backend_libraries_have_every_call(void **state)
{
    (void)state;
    char why[512] = "";
    int rc = souk__amqp_load(why, sizeof(why));
    if (rc != 0)
        fail_msg("librabbitmq: %s", why);
    rc = souk__kafka_load(why, sizeof(why));
    if (rc != 0)
        fail_msg("librdkafka: %s", why);
    rc = souk__pg_load(why, sizeof(why));
    if (rc != 0)
        fail_msg("libpq: %s", why);
    /* and a second load is a no-op */
    assert_int_equal(souk__amqp_load(why, sizeof(why)), 0);
    assert_int_equal(souk__kafka_load(why, sizeof(why)), 0);
    assert_int_equal(souk__pg_load(why, sizeof(why)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_library_is_named),
        cmocka_unit_test(test_missing_function_leaves_the_table_alone),
        cmocka_unit_test(test_found_functions_are_callable),
        cmocka_unit_test(test_backend_libraries_have_every_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/lib/dl.c: the back-ends' libraries as lib/dl.c loads them: a missing
 * library or function is refused with a reason naming it and its Debian package, and
 * the table keeps its old values; the installed librabbitmq, librdkafka and libpq have
 * every function events_amqp.c, events_kafka.c and db_pg.c call (what make would have
 * checked when they were linked). */
#include <dlfcn.h>
#include <pthread.h>
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
    static const struct souk__dl_sym syms[] = {SOUK__DL_SYM(c, strlen)};
    static struct souk__dl_lib lib = SOUK__DL_LIB("libsouk-no-such.so.7", "libsouk-no-such7", syms);
    char why[512] = "";
    c.strlen = NULL;
    assert_int_equal(souk__dl_load(&lib, why, sizeof(why)), SOUK_ENOTFOUND);
    assert_non_null(strstr(why, "cannot load libsouk-no-such.so.7"));
    assert_non_null(strstr(why, "Debian package libsouk-no-such7"));
    assert_null(c.strlen);
    /* the first answer stays, reason included */
    why[0] = '\0';
    assert_int_equal(souk__dl_load(&lib, why, sizeof(why)), SOUK_ENOTFOUND);
    assert_non_null(strstr(why, "cannot load libsouk-no-such.so.7"));
}

static void test_missing_function_leaves_the_table_alone(void **state)
{
    (void)state;
    /* the first resolves, the second does not: neither may be filled */
    static const struct souk__dl_sym syms[] = {
        SOUK__DL_SYM(c, strlen){"souk_no_such_fn", &c.memchr}};
    static struct souk__dl_lib lib = SOUK__DL_LIB("libc.so.6", "libc6", syms);
    char why[512] = "";
    c.strlen = NULL;
    c.memchr = NULL;
    assert_int_equal(souk__dl_load(&lib, why, sizeof(why)), SOUK_ENOTFOUND);
    assert_non_null(strstr(why, "libc.so.6 (Debian package libc6) has no souk_no_such_fn"));
    assert_null(c.strlen);
    assert_null(c.memchr);
}

static const struct souk__dl_sym libc_syms[] = {SOUK__DL_SYM(c, strlen) SOUK__DL_SYM(c, memchr)};
static struct souk__dl_lib libc_lib = SOUK__DL_LIB("libc.so.6", "libc6", libc_syms);

static void *load_in_thread(void *arg)
{
    char why[512] = "";
    *(int *)arg = souk__dl_load(&libc_lib, why, sizeof(why));
    return NULL;
}

/* Threads loading at once (libpq's case: every thread's first connection) all get the
 * answer, and a table that is filled: none returns before the slots are written. */
static void test_found_functions_are_callable(void **state)
{
    (void)state;
    enum { THREADS = 4 };
    pthread_t t[THREADS];
    int rc[THREADS];
    c.strlen = NULL;
    c.memchr = NULL;
    for (int i = 0; i < THREADS; i++) {
        rc[i] = -1;
        assert_int_equal(pthread_create(&t[i], NULL, load_in_thread, &rc[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(rc[i], 0);
    }
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

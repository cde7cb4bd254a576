/* tests/unit/lib/handler.c: the one mapping from a failed database step to an
 * answer (lib/handler.c), as a table: every code the db backends return. */
#include "test.h"

#include <string.h>

#include "souk/handler.h"
#include "souk/souk.h"

static void test_db_answers(void **state)
{
    (void)state;
    static const struct {
        int err;
        int status;
        const char *code, *retry_after;
    } t[] = {
        {SOUK_EBUSY, 503, "busy", "1"},           /* locked, serialization failure, lock timeout */
        {SOUK_EUNAVAIL, 503, "unavailable", "5"}, /* the connection is lost */
        {SOUK_ECONFLICT, 409, "conflict", NULL},  /* a constraint */
        {SOUK_EDB, 500, "internal", NULL},
        {SOUK_ENOMEM, 500, "internal", NULL},
        {SOUK_EINVAL, 500, "internal", NULL},
        {SOUK_ENOTFOUND, 500, "internal", NULL}, /* the caller's to answer 404, not ours */
        {SOUK_ETIMEDOUT, 500, "internal", NULL},
        {SOUK_EIO, 500, "internal", NULL},
        {-99, 500, "internal", NULL},
        {0, 500, "internal", NULL}, /* called without an error: a bug, never a success */
        {1, 500, "internal", NULL},
    };
    for (size_t i = 0; i < SOUK_ARRAY_LEN(t); i++) {
        struct souk_db_answer a = souk_handler_db_answer(t[i].err);
        assert_int_equal(a.status, t[i].status);
        assert_string_equal(a.code, t[i].code);
        if (t[i].retry_after == NULL) {
            assert_null(a.retry_after);
        } else {
            assert_non_null(a.retry_after);
            assert_string_equal(a.retry_after, t[i].retry_after);
        }
        /* what the client is told past "what": only for what it can act on */
        assert_int_equal(a.why != NULL, a.status != 500);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_db_answers),
    };
    return cmocka_run_group_tests_name("handler", tests, NULL, NULL);
}

/* log.c: tests lib/log.c: JSON escaping within a cap and the redaction of what
 * could be a card number. */
#include <string.h>

#include "souk/log.h"
#include "test.h"

static void test_escape(void **state)
{
    (void)state;
    char buf[64];
    size_t n = souk__json_escape(buf, 0, sizeof(buf), "a\"b\\c\nd\x01");
    buf[n] = '\0';
    assert_string_equal(buf, "a\\\"b\\\\c\\nd\\u0001");
    /* never writes past the cap and never splits an escape */
    n = souk__json_escape(buf, 0, 4, "ab\"cd");
    buf[n] = '\0';
    assert_string_equal(buf, "ab");
}

struct redact_case {
    const char *in, *out;
};

static void test_redact(void **state)
{
    (void)state;
    static const struct redact_case cases[] = {
        {"/api/v1/payment-methods/4242424242424242", "/api/v1/payment-methods/XXXXXXXXXXXXXXXX"},
        {"/x/4242-4242-4242-4242/y", "/x/XXXXXXXXXXXXXXXXXXX/y"},
        {"/x/4242 4242 4242 4242", "/x/XXXXXXXXXXXXXXXXXXX"},
        {"/orders/123456789012", "/orders/123456789012"}, /* 12 digits: kept */
        {"/p/prd_01JD0Z6Y2M4W3S1V8N6QH5XK7C", "/p/prd_01JD0Z6Y2M4W3S1V8N6QH5XK7C"},
        {"/a-1-2-3", "/a-1-2-3"},
        {"4000000000000002", "XXXXXXXXXXXXXXXX"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[128];
        strcpy(buf, cases[i].in);
        souk__redact_digits(buf);
        assert_string_equal(buf, cases[i].out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_redact),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}

/* trace.c: tests lib/trace.c: which traceparent headers are taken, as a table. */
#include <string.h>

#include "souk/trace.h"
#include "test.h"

static const struct {
    const char *in;
    bool ok;
} cases[] = {
    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
    {"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false}, /* zero trace id */
    {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false}, /* other version */
    {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false}, /* upper case */
    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", false},
    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0", false},
    {"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", false},
    {"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false},
    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bx-01", false},
    {"", false},
    {NULL, false},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char id[SOUK_TRACE_ID_HEX + 1] = "before", flags[3] = "b";
        bool ok = souk_trace_parse(cases[i].in, id, flags);
        if (ok != cases[i].ok)
            fail_msg("case %zu (%s): got %d", i, cases[i].in ? cases[i].in : "NULL", ok);
        if (ok) {
            assert_int_equal(strncmp(id, cases[i].in + 3, 32), 0);
            assert_int_equal(strlen(id), 32);
            assert_int_equal(strncmp(flags, cases[i].in + 53, 2), 0);
        } else { /* a refused header leaves the caller's buffers alone */
            assert_string_equal(id, "before");
            assert_string_equal(flags, "b");
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_table)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

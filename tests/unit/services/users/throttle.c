/* tests/unit/services/users/throttle.c: the users service's login backstop without
 * a server: the delay an attempt on an account waits, as a table over its failures
 * (none below the threshold, then 1 s doubling, never above the cap). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "users.h"

/* main.c's configuration, which this test links without */
int64_t cfg_access_ttl = 900, cfg_refresh_ttl = 3600, cfg_key_rotate = 86400,
        cfg_hash_concurrency = 1, cfg_hash_queue = 4, cfg_login_window = 900,
        cfg_login_max_account = 5, cfg_login_max_addr = 50, cfg_login_delay_after = 10,
        cfg_login_delay_max = 10000;
const char *cfg_clients_file = "", *cfg_public_url = "http://127.0.0.1:8080", *cfg_admin_email = "",
           *cfg_admin_password = "";

static void test_delay_table(void **state)
{
    (void)state;
    static const struct {
        int64_t failures, after, max_ms, want;
    } cases[] = {
        {0, 10, 10000, 0},        {9, 10, 10000, 0},          {10, 10, 10000, 1000},
        {11, 10, 10000, 2000},    {13, 10, 10000, 8000},      {14, 10, 10000, 10000},
        {1000, 10, 10000, 10000}, {1 << 30, 1, 60000, 60000}, {5, 1, 0, 0},
        {2, 2, 1000, 1000},       {3, 2, 1500, 1500},         {-1, 0, 1000, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(login_delay_ms(cases[i].failures, cases[i].after, cases[i].max_ms),
                         cases[i].want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delay_table),
    };
    return cmocka_run_group_tests_name("users throttle", tests, NULL, NULL);
}

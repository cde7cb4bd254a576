/* config.c: tests lib/config.c: each type's parsing and bounds, defaults, the
 * required case, that the message names the variable, and the masking of
 * credentials in configured URLs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/config.h"
#include "souk/souk.h"
#include "test.h"

struct parse_case {
    enum souk_conf_type type;
    int64_t min, max;
    const char *text;
    bool ok;
};

static void test_parse_table(void **state)
{
    (void)state;
    static const struct parse_case cases[] = {
        {SOUK_CONF_INT, 1, 256, "2", true},
        {SOUK_CONF_INT, 1, 256, "256", true},
        {SOUK_CONF_INT, 1, 256, "0", false},
        {SOUK_CONF_INT, 1, 256, "257", false},
        {SOUK_CONF_INT, 1, 256, "two", false},
        {SOUK_CONF_INT, 1, 256, "2x", false},
        {SOUK_CONF_INT, 1, 256, "", false},
        {SOUK_CONF_INT, 1, 256, " 2", false},
        {SOUK_CONF_BOOL, 0, 0, "true", true},
        {SOUK_CONF_BOOL, 0, 0, "OFF", true},
        {SOUK_CONF_BOOL, 0, 0, "2", false},
        {SOUK_CONF_STR, 1, 8, "info", true},
        {SOUK_CONF_STR, 1, 8, "", false},
        {SOUK_CONF_STR, 1, 8, "verbose-debug", false},
        {SOUK_CONF_ADDR, 1, 0, "127.0.0.1:8082", true},
        {SOUK_CONF_ADDR, 1, 0, "localhost:1", true},
        {SOUK_CONF_ADDR, 1, 0, "127.0.0.1", false},
        {SOUK_CONF_ADDR, 1, 0, "127.0.0.1:65536", false},
        {SOUK_CONF_ADDR, 1, 0, "127.0.0.1:0", false},
        {SOUK_CONF_ADDR, 0, 0, "127.0.0.1:0", true},
        {SOUK_CONF_ADDR, 1, 0, ":80", false},
        {SOUK_CONF_ADDR, 1, 0, "h:8o", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct parse_case *pc = &cases[i];
        struct souk_conf c = {"SOUK_X", pc->type, NULL, pc->min, pc->max, NULL, "x"};
        char err[256] = "";
        int rc = souk_config_parse(&c, pc->text, err, sizeof(err));
        if ((rc == 0) != pc->ok)
            fail_msg("case %zu \"%s\": rc %d (%s)", i, pc->text, rc, err);
        if (rc != 0)
            assert_non_null(strstr(err, "SOUK_X"));
    }
}

static void test_load_defaults_and_env(void **state)
{
    (void)state;
    int64_t threads = 0, limit = 0;
    bool log = false;
    const char *addr = NULL;
    const struct souk_conf table[] = {
        {"SOUK_T_THREADS", SOUK_CONF_INT, "2", 1, 64, &threads, "threads"},
        {"SOUK_T_LIMIT", SOUK_CONF_INT, "10", 1, 100, &limit, "limit"},
        {"SOUK_T_LOG", SOUK_CONF_BOOL, "false", 0, 0, &log, "log"},
        {"SOUK_T_ADDR", SOUK_CONF_ADDR, "127.0.0.1:1", 1, 0, &addr, "addr"},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    char err[256];
    unsetenv("SOUK_T_THREADS");
    setenv("SOUK_T_LIMIT", "42", 1);
    setenv("SOUK_T_LOG", "yes", 1);
    unsetenv("SOUK_T_ADDR");
    assert_int_equal(souk_config_load(table, err, sizeof(err)), 0);
    assert_int_equal(threads, 2);
    assert_int_equal(limit, 42);
    assert_true(log);
    assert_string_equal(addr, "127.0.0.1:1");

    setenv("SOUK_T_LIMIT", "101", 1);
    assert_int_not_equal(souk_config_load(table, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "SOUK_T_LIMIT=101"));
    assert_non_null(strstr(err, "1 to 100"));
    unsetenv("SOUK_T_LIMIT");
}

static void test_required(void **state)
{
    (void)state;
    const char *v = NULL;
    const struct souk_conf table[] = {
        {"SOUK_T_SECRET", SOUK_CONF_STR, NULL, 1, 64, &v, "the secret"},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    char err[256];
    unsetenv("SOUK_T_SECRET");
    assert_int_not_equal(souk_config_load(table, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "SOUK_T_SECRET is required"));
    setenv("SOUK_T_SECRET", "s3", 1);
    assert_int_equal(souk_config_load(table, err, sizeof(err)), 0);
    assert_string_equal(v, "s3");
}

static void test_split_addr(void **state)
{
    (void)state;
    char host[16];
    uint16_t port;
    assert_int_equal(souk_config_split_addr("10.0.0.1:8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_not_equal(
        souk_config_split_addr("a-very-long-host-name:1", host, sizeof(host), &port), 0);
}

static void test_redact_url(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"smtp://mailer:hunter2@mail.example:587", "smtp://***@mail.example:587"},
        {"smtps://user%40x:p%40ss@mail:465/", "smtps://***@mail:465/"},
        {"smtp://u:pa@ss/w?rd@mail:25", "smtp://***@mail:25"},
        {"amqp://souk:s3cret@127.0.0.1:5672/souk", "amqp://***@127.0.0.1:5672/souk"},
        {"postgres://app:pw@db/shop?sslmode=require&password=x2&application_name=souk",
         "postgres://***@db/shop?sslmode=require&password=***&application_name=souk"},
        {"host=db user=app password=topsecret dbname=shop",
         "host=db user=app password=*** dbname=shop"},
        {"http://127.0.0.1:8081/internal/v1/events?after=3&wait=20",
         "http://127.0.0.1:8081/internal/v1/events?after=3&wait=20"},
        {"https://h/x?access_token=abc&api_key=def&n=1",
         "https://h/x?access_token=***&api_key=***&n=1"},
        {"sqlite:var/db/users.db", "sqlite:var/db/users.db"},
        {"", ""},
    };
    char out[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(souk_config_redact_url(cases[i][0], out, sizeof(out)), cases[i][1]);
    /* truncation never shows what was masked */
    char small[12];
    souk_config_redact_url("smtp://u:secretpassword@host", small, sizeof(small));
    assert_string_equal(small, "smtp://***@");
    assert_null(
        strstr(souk_config_redact_url("smtp://u:secretpassword@host", out, sizeof(out)), "secret"));
}

/* The loaded tables are the process's configuration: one home per variable. */
static void test_one_home(void **state)
{
    (void)state;
    const char *a = NULL, *b = NULL, *c = NULL;
    int64_t n = 0;
    const struct souk_conf kit[] = {
        {"SOUK_T_HOME", SOUK_CONF_STR, "here", 1, 64, &a, "a home"},
        {"SOUK_T_REQ", SOUK_CONF_STR, "", 0, 64, &b, "maybe empty"},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    const struct souk_conf svc[] = {
        {"SOUK_T_N", SOUK_CONF_INT, "3", 1, 9, &n, "n"},
        {"SOUK_T_HOME", SOUK_CONF_STR, "there", 1, 64, &c, "a second home"},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    char err[256];
    souk_config_reset();
    unsetenv("SOUK_T_HOME");
    setenv("SOUK_T_REQ", "set", 1);
    assert_null(souk_config_value("SOUK_T_HOME"));
    assert_false(souk_config_declared("SOUK_T_HOME"));
    assert_int_equal(souk_config_load(kit, err, sizeof(err)), 0);
    assert_true(souk_config_declared("SOUK_T_HOME"));
    assert_string_equal(souk_config_value("SOUK_T_HOME"), "here"); /* the default */
    assert_string_equal(souk_config_value("SOUK_T_REQ"), "set");   /* the environment */
    assert_null(souk_config_value("SOUK_T_N"));                    /* nobody's */
    /* a second table declaring the same variable is refused, naming it */
    assert_int_equal(souk_config_load(svc, err, sizeof(err)), SOUK_EINVAL);
    assert_non_null(strstr(err, "SOUK_T_HOME is declared twice"));
    assert_null(c);
    /* loading the same table again (a copy, as the service main's) replaces it */
    struct souk_conf copy[3];
    memcpy(copy, kit, sizeof(copy));
    copy[0].def = "elsewhere";
    assert_int_equal(souk_config_load(copy, err, sizeof(err)), 0);
    assert_string_equal(souk_config_value("SOUK_T_HOME"), "elsewhere");
    souk_config_reset();
    assert_null(souk_config_value("SOUK_T_HOME"));
    unsetenv("SOUK_T_REQ");
}

/* --help's lines: a value set is marked, a secret is never shown, nor a URL's
 * password, and each variable has its help, type, bounds and default. */
static void test_print_table(void **state)
{
    (void)state;
    const char *s = NULL, *u = NULL, *r = NULL;
    int64_t n = 0;
    const struct souk_conf table[] = {
        {"SOUK_T_PW", SOUK_CONF_SECRET, "", 0, 64, &s, "a password"},
        {"SOUK_T_URL", SOUK_CONF_STR, "", 0, 256, &u, "a peer"},
        {"SOUK_T_COUNT", SOUK_CONF_INT, "7", 1, 9, &n, "how many"},
        {"SOUK_T_MUST", SOUK_CONF_STR, NULL, 1, 9, &r, "required one"},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    setenv("SOUK_T_PW", "hunter2", 1);
    setenv("SOUK_T_URL", "amqp://user:pa55@host/", 1);
    unsetenv("SOUK_T_COUNT");
    unsetenv("SOUK_T_MUST");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    souk_config_print_table(f, table);
    fclose(f);
    assert_null(strstr(text, "hunter2"));
    assert_null(strstr(text, "pa55"));
    assert_non_null(strstr(text, "* SOUK_T_PW=***\n"));
    assert_non_null(strstr(text, "* SOUK_T_URL=amqp://***@host/\n"));
    assert_non_null(strstr(text, "  SOUK_T_COUNT=7\n      how many [integer 1..9; default 7]\n"));
    assert_non_null(
        strstr(text, "  SOUK_T_MUST=\n      required one [text of 1..9 bytes; required]"));
    free(text);
    unsetenv("SOUK_T_PW");
    unsetenv("SOUK_T_URL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table), cmocka_unit_test(test_load_defaults_and_env),
        cmocka_unit_test(test_required),    cmocka_unit_test(test_split_addr),
        cmocka_unit_test(test_redact_url),  cmocka_unit_test(test_one_home),
        cmocka_unit_test(test_print_table),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}

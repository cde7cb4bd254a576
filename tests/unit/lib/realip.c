/* realip.c: tests lib/realip.c: the trusted list (addresses, CIDR blocks, IPv4 and
 * IPv6, bad entries named), and the walk over X-Forwarded-For: an untrusted peer's
 * header is ignored, trusted hops are skipped, garbage ends the walk. */
#include <string.h>

#include "souk/realip.h"
#include "souk/souk.h"
#include "test.h"

static void test_parse(void **state)
{
    (void)state;
    static const char *const good[] = {"",
                                       " ",
                                       "127.0.0.1",
                                       "10.0.0.0/8, 192.168.1.7 ,::1",
                                       "fd00::/8,0.0.0.0/0",
                                       "2001:db8::/32"};
    static const char *const bad[] = {"localhost", "10.0.0.0/33",  "10.0.0.0/", "10.0.0.0/8x",
                                      "::1/129",   "1.2.3.4,nope", "1.2.3"};
    char err[256];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct souk_realip *t = NULL;
        assert_int_equal(souk_realip_parse(good[i], &t, err, sizeof(err)), 0);
        assert_non_null(t);
        souk_realip_free(t);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct souk_realip *t = NULL;
        err[0] = '\0';
        assert_int_equal(souk_realip_parse(bad[i], &t, err, sizeof(err)), SOUK_EINVAL);
        assert_non_null(strstr(err, "SOUK_TRUSTED_PROXIES"));
    }
}

static void test_trusted(void **state)
{
    (void)state;
    struct souk_realip *t;
    char err[128];
    assert_int_equal(
        souk_realip_parse("10.1.0.0/16, 127.0.0.1, fd00::/8, 192.168.0.5/31", &t, err, sizeof(err)),
        0);
    assert_true(souk_realip_trusted(t, "10.1.255.3"));
    assert_false(souk_realip_trusted(t, "10.2.0.1"));
    assert_true(souk_realip_trusted(t, "127.0.0.1"));
    assert_false(souk_realip_trusted(t, "127.0.0.2"));
    assert_true(souk_realip_trusted(t, "::ffff:127.0.0.1")); /* the same address, mapped */
    assert_true(souk_realip_trusted(t, "fd12:3456::1"));
    assert_false(souk_realip_trusted(t, "fe80::1"));
    assert_true(souk_realip_trusted(t, "192.168.0.4"));
    assert_true(souk_realip_trusted(t, "192.168.0.5"));
    assert_false(souk_realip_trusted(t, "192.168.0.6"));
    assert_false(souk_realip_trusted(t, "not an address"));
    souk_realip_free(t);
}

struct walk_case {
    const char *peer, *xff, *want;
};

static void test_resolve(void **state)
{
    (void)state;
    struct souk_realip *t, *none;
    char err[128], out[SOUK_ADDR_MAX];
    assert_int_equal(souk_realip_parse("127.0.0.1, 10.0.0.0/8", &t, err, sizeof(err)), 0);
    assert_int_equal(souk_realip_parse("", &none, err, sizeof(err)), 0);
    static const struct walk_case cases[] = {
        {"127.0.0.1", NULL, "127.0.0.1"},                       /* no header: the peer */
        {"203.0.113.9", "1.2.3.4", "203.0.113.9"},              /* untrusted peer: header ignored */
        {"127.0.0.1", "198.51.100.7", "198.51.100.7"},          /* the gateway vouches */
        {"127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"}, /* a client's own XFF: skipped */
        {"127.0.0.1", "198.51.100.7, 10.0.0.3", "198.51.100.7"}, /* past a trusted hop */
        {"127.0.0.1", "10.0.0.9,10.0.0.3", "10.0.0.9"},          /* all trusted: the leftmost */
        {"127.0.0.1", "unknown, 10.0.0.3", "10.0.0.3"},          /* garbage ends the walk */
        {"127.0.0.1", "198.51.100.7, junk", "127.0.0.1"},
        {"127.0.0.1", "", "127.0.0.1"},
        {"127.0.0.1", " , ", "127.0.0.1"},
        {"127.0.0.1", "198.51.100.7:4711", "198.51.100.7"},
        {"127.0.0.1", "[2001:db8::1]:443", "2001:db8::1"},
        {"127.0.0.1", "2001:DB8:0:0::1", "2001:db8::1"},
        {"127.0.0.1", "[2001:db8::1", "127.0.0.1"},
        {"127.0.0.1", "1.2.3.4\r\nX: y", "127.0.0.1"},
        {"127.0.0.1", "99999999999999999999999999999999999999999999999999999999999999999999",
         "127.0.0.1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(souk_realip_resolve(t, cases[i].peer, cases[i].xff, out, sizeof(out)),
                            cases[i].want);
    /* nobody trusted: the header never counts */
    assert_string_equal(souk_realip_resolve(none, "127.0.0.1", "198.51.100.7", out, sizeof(out)),
                        "127.0.0.1");
    assert_string_equal(souk_realip_resolve(NULL, "127.0.0.1", "198.51.100.7", out, sizeof(out)),
                        "127.0.0.1");
    souk_realip_free(t);
    souk_realip_free(none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_trusted),
        cmocka_unit_test(test_resolve),
    };
    return cmocka_run_group_tests_name("realip", tests, NULL, NULL);
}

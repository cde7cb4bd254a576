/* router.c: tests lib/router.c: literal and parameter segments, 404 vs 405,
 * HEAD on GET routes, trailing slashes, malformed patterns, Allow lists. */
#include <string.h>

#include "souk/server.h"
#include "test.h"

static int h(struct souk_req *r)
{
    (void)r;
    return 200;
}

static const struct souk_route routes[] = {
    {"GET", "/api/v1/products", h, SOUK_PUBLIC, NULL, 0},
    {"POST", "/api/v1/products", h, SOUK_ADMIN, NULL, 0},
    {"GET", "/api/v1/products/{id}", h, SOUK_PUBLIC, NULL, 0},
    {"PUT", "/api/v1/products/{id}/stock", h, SOUK_ADMIN, NULL, 0},
    {"POST", "/internal/v1/reservations/{id}/commit", h, SOUK_SERVICE, "x", 0},
    {"GET", "/a/{x}/b/{y}", h, SOUK_PUBLIC, NULL, 0},
    {"GET", "/", h, SOUK_PUBLIC, NULL, 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};

struct match_case {
    const char *method, *path;
    int want;            /* route index, -404 or -405 */
    const char *p1, *p2; /* expected parameter values */
};

static const struct match_case cases[] = {
    {"GET", "/api/v1/products", 0, NULL, NULL},
    {"HEAD", "/api/v1/products", 0, NULL, NULL},
    {"POST", "/api/v1/products", 1, NULL, NULL},
    {"DELETE", "/api/v1/products", -405, NULL, NULL},
    {"GET", "/api/v1/products/prd_1", 2, "prd_1", NULL},
    {"GET", "/api/v1/products/prd_1/", -404, NULL, NULL},
    {"GET", "/api/v1/products/", -404, NULL, NULL},
    {"GET", "/api/v1/products//stock", -404, NULL, NULL},
    {"PUT", "/api/v1/products/p9/stock", 3, "p9", NULL},
    {"GET", "/api/v1/products/p9/stock", -405, NULL, NULL},
    {"POST", "/internal/v1/reservations/ord_7/commit", 4, "ord_7", NULL},
    {"GET", "/a/1/b/22", 5, "1", "22"},
    {"GET", "/a/1/b", -404, NULL, NULL},
    {"GET", "/a/1/b/22/c", -404, NULL, NULL},
    {"GET", "/", 6, NULL, NULL},
    {"GET", "", -404, NULL, NULL},
    {"GET", "/API/v1/products", -404, NULL, NULL},
    {"GET", "/api/v1/productsx", -404, NULL, NULL},
};

static void test_match_table(void **state)
{
    (void)state;
    struct souk_router *rt = souk_router_new(routes);
    assert_non_null(rt);
    assert_int_equal(souk_router_count(rt), 7);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct match_case *c = &cases[i];
        struct souk_param params[SOUK_MAX_PARAMS];
        size_t n = 0;
        int got = souk_router_match(rt, c->method, c->path, params, &n);
        if (got != c->want)
            fail_msg("%s %s: got %d, want %d", c->method, c->path, got, c->want);
        if (c->p1 != NULL) {
            assert_true(n >= 1);
            assert_int_equal(params[0].len, strlen(c->p1));
            assert_memory_equal(params[0].value, c->p1, params[0].len);
        }
        if (c->p2 != NULL) {
            assert_int_equal(n, 2);
            assert_memory_equal(params[1].value, c->p2, params[1].len);
            assert_true(strncmp(params[0].name, "x}", 2) == 0); /* names point into the pattern */
            assert_true(strncmp(params[1].name, "y}", 2) == 0);
        }
    }
    souk_router_free(rt);
}

static void test_allow(void **state)
{
    (void)state;
    struct souk_router *rt = souk_router_new(routes);
    char buf[128];
    souk_router_allow(rt, "/api/v1/products", buf, sizeof(buf));
    assert_string_equal(buf, "GET, HEAD, POST");
    souk_router_allow(rt, "/api/v1/products/x/stock", buf, sizeof(buf));
    assert_string_equal(buf, "PUT");
    souk_router_allow(rt, "/nowhere", buf, sizeof(buf));
    assert_string_equal(buf, "");
    souk_router_free(rt);
}

static void test_bad_patterns(void **state)
{
    (void)state;
    static const char *const bad[] = {"no-slash", "/a/{}", "/a/{x", "/a//b", "/a/x}y", "/a/b{c}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct souk_route one[] = {{"GET", bad[i], h, SOUK_PUBLIC, NULL, 0},
                                   {NULL, NULL, NULL, 0, NULL, 0}};
        struct souk_router *rt = souk_router_new(one);
        if (rt != NULL)
            fail_msg("pattern %s was accepted", bad[i]);
    }
    struct souk_route nohandler[] = {{"GET", "/x", NULL, SOUK_PUBLIC, NULL, 0},
                                     {NULL, NULL, NULL, 0, NULL, 0}};
    assert_null(souk_router_new(nohandler));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_allow),
        cmocka_unit_test(test_bad_patterns),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}

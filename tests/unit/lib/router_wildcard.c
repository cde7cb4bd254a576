/* router_wildcard.c: tests the router's "{*rest}" wildcard segment and "*" method
 * (the gateway's prefix routes): exact patterns beat wildcards, the first listed
 * wildcard wins, the rest of the path (slashes included) is the parameter. */
#include <string.h>

#include "souk/server.h"
#include "test.h"

static int h(struct souk_req *r)
{
    (void)r;
    return 200;
}

static const struct souk_route routes[] = {
    {"OPTIONS", "/{*path}", h, SOUK_PUBLIC, NULL, 0},             /* 0 */
    {"GET", "/api/v1/products", h, SOUK_PUBLIC, NULL, 0},         /* 1 */
    {"GET", "/api/v1/products/{*rest}", h, SOUK_PUBLIC, NULL, 0}, /* 2 */
    {"*", "/api/v1/products/{*rest}", h, SOUK_USER, NULL, 0},     /* 3 */
    {"GET", "/metrics", h, SOUK_PUBLIC, NULL, 0},                 /* 4 */
    {"*", "/{*path}", h, SOUK_PUBLIC, NULL, 0},                   /* 5 */
    {NULL, NULL, NULL, 0, NULL, 0},
};

struct wcase {
    const char *method, *path;
    int want;
    const char *param;
};

static const struct wcase cases[] = {
    {"GET", "/api/v1/products", 1, NULL},
    {"GET", "/api/v1/products/prd_1", 2, "prd_1"},
    {"HEAD", "/api/v1/products/prd_1", 2, "prd_1"},
    {"GET", "/api/v1/products/prd_1/stock", 2, "prd_1/stock"},
    {"GET", "/api/v1/products/", 2, ""},
    {"PUT", "/api/v1/products/prd_1/stock", 3, "prd_1/stock"},
    {"DELETE", "/api/v1/products/x", 3, "x"},
    {"OPTIONS", "/api/v1/products/x", 0, "api/v1/products/x"},
    {"OPTIONS", "/api/v1/products", 0, "api/v1/products"}, /* 405 of an exact loses to a wildcard */
    {"POST", "/api/v1/products", 5, "api/v1/products"},
    {"GET", "/metrics", 4, NULL},
    {"POST", "/metrics", 5, "metrics"},
    {"GET", "/", 5, ""},
    {"GET", "/index.html", 5, "index.html"},
    {"GET", "/a/b/c", 5, "a/b/c"},
};

static void test_wildcards(void **state)
{
    (void)state;
    struct souk_router *rt = souk_router_new(routes);
    assert_non_null(rt);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct souk_param p[SOUK_MAX_PARAMS];
        size_t np = 0;
        int got = souk_router_match(rt, cases[i].method, cases[i].path, p, &np);
        if (got != cases[i].want)
            fail_msg("%s %s: route %d, want %d", cases[i].method, cases[i].path, got,
                     cases[i].want);
        if (cases[i].param == NULL) {
            assert_int_equal(np, 0);
            continue;
        }
        assert_int_equal(np, 1);
        assert_int_equal(p[0].len, strlen(cases[i].param));
        assert_memory_equal(p[0].value, cases[i].param, p[0].len);
    }
    souk_router_free(rt);
}

static void test_no_wildcard_no_fallback(void **state)
{
    (void)state;
    static const struct souk_route only[] = {
        {"GET", "/api/v1/cart/{*rest}", h, SOUK_USER, NULL, 0},
        {NULL, NULL, NULL, 0, NULL, 0},
    };
    struct souk_router *rt = souk_router_new(only);
    assert_non_null(rt);
    assert_int_equal(souk_router_match(rt, "GET", "/api/v1/cart", NULL, NULL), -404);
    assert_int_equal(souk_router_match(rt, "GET", "/api/v1/cartx/1", NULL, NULL), -404);
    assert_int_equal(souk_router_match(rt, "PUT", "/api/v1/cart/items/1", NULL, NULL), -404);
    souk_router_free(rt);
}

static void test_bad_wildcards(void **state)
{
    (void)state;
    static const char *const bad[] = {"/a/{*rest}/b", "/a/{*}", "/a/{*rest"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct souk_route one[] = {{"GET", bad[i], h, SOUK_PUBLIC, NULL, 0},
                                   {NULL, NULL, NULL, 0, NULL, 0}};
        struct souk_router *rt = souk_router_new(one);
        if (rt != NULL)
            fail_msg("pattern %s was accepted", bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_no_wildcard_no_fallback),
        cmocka_unit_test(test_bad_wildcards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

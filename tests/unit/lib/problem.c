/* problem.c: tests the problem+json documents of lib/server.c (RFC 9457). */
#include <string.h>

#include "souk/server.h"
#include "test.h"

static void test_problem_document(void **state)
{
    (void)state;
    json_t *p = souk_problem_json(409, "out_of_stock", "prd_1 has 2 left");
    assert_string_equal(json_string_value(json_object_get(p, "type")),
                        "urn:souk:problem:out_of_stock");
    assert_string_equal(json_string_value(json_object_get(p, "title")), "Conflict");
    assert_int_equal(json_integer_value(json_object_get(p, "status")), 409);
    assert_string_equal(json_string_value(json_object_get(p, "code")), "out_of_stock");
    assert_string_equal(json_string_value(json_object_get(p, "detail")), "prd_1 has 2 left");
    json_decref(p);
}

static void test_no_detail(void **state)
{
    (void)state;
    json_t *p = souk_problem_json(404, "not_found", "");
    assert_null(json_object_get(p, "detail"));
    json_decref(p);
    p = souk_problem_json(400, "bad", "\xff\xfe not utf-8"); /* never a crash or bad JSON */
    assert_non_null(json_object_get(p, "detail"));
    json_decref(p);
}

static void test_titles(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *title;
    } t[] = {
        {400, "Bad Request"},       {401, "Unauthorized"},       {403, "Forbidden"},
        {404, "Not Found"},         {405, "Method Not Allowed"}, {412, "Precondition Failed"},
        {413, "Content Too Large"}, {429, "Too Many Requests"},  {503, "Service Unavailable"},
        {418, "Client Error"},      {599, "Server Error"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        assert_string_equal(souk_status_title(t[i].status), t[i].title);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_problem_document),
        cmocka_unit_test(test_no_detail),
        cmocka_unit_test(test_titles),
    };
    return cmocka_run_group_tests_name("problem", tests, NULL, NULL);
}

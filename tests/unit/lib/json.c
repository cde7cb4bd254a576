/* json.c: tests lib/json.c: checked extraction with field errors, strict query
 * parsing, enums, and base64url round trips. */
#include <string.h>

#include "souk/json.h"
#include "test.h"

static json_t *parse(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    return v;
}

/* The first error's field and message, for assertions. */
static const char *error_field(struct souk_check *c, size_t i)
{
    return json_string_value(json_object_get(json_array_get(c->errors, i), "field"));
}

static void test_strings(void **state)
{
    (void)state;
    json_t *o = parse("{\"name\":\"Ada\",\"n\":3,\"empty\":\"\",\"nul\":null}");
    struct souk_check c;
    souk_check_init(&c);
    assert_string_equal(souk_json_str(&c, o, "name", SOUK_REQUIRED, 1, 10), "Ada");
    assert_true(souk_check_ok(&c));
    assert_null(souk_json_str(&c, o, "missing", SOUK_OPTIONAL, 1, 10));
    assert_null(souk_json_str(&c, o, "nul", SOUK_OPTIONAL, 1, 10));
    assert_true(souk_check_ok(&c));
    assert_null(souk_json_str(&c, o, "n", SOUK_REQUIRED, 1, 10));       /* wrong type */
    assert_null(souk_json_str(&c, o, "empty", SOUK_REQUIRED, 1, 10));   /* too short */
    assert_null(souk_json_str(&c, o, "name", SOUK_REQUIRED, 1, 2));     /* too long */
    assert_null(souk_json_str(&c, o, "missing", SOUK_REQUIRED, 1, 10)); /* required */
    assert_false(souk_check_ok(&c));
    assert_int_equal(json_array_size(c.errors), 4);
    assert_string_equal(error_field(&c, 0), "n");
    assert_string_equal(error_field(&c, 3), "missing");
    souk_check_free(&c);
    json_decref(o);
}

struct int_case {
    const char *json;
    int64_t min, max, want;
    bool ok;
};

static void test_ints(void **state)
{
    (void)state;
    static const struct int_case cases[] = {
        {"{\"v\":5}", 0, 10, 5, true},
        {"{\"v\":0}", 0, 10, 0, true},
        {"{\"v\":11}", 0, 10, -1, false},
        {"{\"v\":-1}", 0, 10, -1, false},
        {"{\"v\":1.5}", 0, 10, -1, false},
        {"{\"v\":\"5\"}", 0, 10, -1, false},
        {"{\"v\":true}", 0, 10, -1, false},
        {"{\"v\":9007199254740993}", 0, INT64_MAX, 9007199254740993LL, true}, /* > 2^53: exact */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *o = parse(cases[i].json);
        struct souk_check c;
        souk_check_init(&c);
        int64_t got = souk_json_int(&c, o, "v", SOUK_REQUIRED, cases[i].min, cases[i].max, -1);
        if (got != cases[i].want || souk_check_ok(&c) != cases[i].ok)
            fail_msg("%s: got %lld ok=%d", cases[i].json, (long long)got, souk_check_ok(&c));
        souk_check_free(&c);
        json_decref(o);
    }
}

static void test_only_and_types(void **state)
{
    (void)state;
    json_t *o = parse("{\"a\":1,\"b\":{},\"c\":[1,2,3],\"x\":true}");
    struct souk_check c;
    souk_check_init(&c);
    static const char *const allowed[] = {"a", "b", "c", NULL};
    souk_json_only(&c, o, allowed);
    assert_int_equal(json_array_size(c.errors), 1);
    assert_string_equal(error_field(&c, 0), "x");
    souk_check_free(&c);
    assert_non_null(souk_json_object(&c, o, "b", SOUK_REQUIRED));
    assert_null(souk_json_object(&c, o, "c", SOUK_REQUIRED));
    assert_non_null(souk_json_array(&c, o, "c", SOUK_REQUIRED, 3));
    assert_null(souk_json_array(&c, o, "c", SOUK_REQUIRED, 2));
    assert_true(souk_json_bool(&c, o, "x", SOUK_REQUIRED, false));
    assert_int_equal(json_array_size(c.errors), 2);
    souk_check_free(&c);
    json_decref(o);
}

struct text_case {
    const char *text;
    int64_t want;
    bool ok;
};

static void test_query_ints(void **state)
{
    (void)state;
    static const struct text_case cases[] = {
        {"20", 20, true},
        {"1", 1, true},
        {"100", 100, true},
        {"0", -1, false},
        {"101", -1, false},
        {"", -1, false},
        {" 5", -1, false},
        {"5 ", -1, false},
        {"+5", -1, false},
        {"-5", -1, false},
        {"0x10", -1, false},
        {"1e2", -1, false},
        {"99999999999999999999999", -1, false},
        {NULL, -1, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct souk_check c;
        souk_check_init(&c);
        int64_t got = souk_check_int_text(&c, "page_size", cases[i].text, 1, 100, -1);
        if (got != cases[i].want || souk_check_ok(&c) != cases[i].ok)
            fail_msg("\"%s\": got %lld", cases[i].text ? cases[i].text : "(null)", (long long)got);
        souk_check_free(&c);
    }
    struct souk_check c;
    souk_check_init(&c);
    assert_int_equal(souk_check_int_text(&c, "x", "-5", -10, 10, 0), -5);
    assert_true(souk_check_bool_text(&c, "b", "true", false));
    assert_false(souk_check_bool_text(&c, "b", "0", true));
    assert_true(souk_check_ok(&c));
    souk_check_bool_text(&c, "b", "yes please", false);
    assert_false(souk_check_ok(&c));
    souk_check_free(&c);
}

static void test_enum(void **state)
{
    (void)state;
    static const char *const sorts[] = {"relevance", "price_asc", "newest", NULL};
    struct souk_check c;
    souk_check_init(&c);
    assert_int_equal(souk_check_enum_text(&c, "sort", "newest", sorts, 0), 2);
    assert_int_equal(souk_check_enum_text(&c, "sort", NULL, sorts, 1), 1);
    assert_true(souk_check_ok(&c));
    assert_int_equal(souk_check_enum_text(&c, "sort", "NEWEST", sorts, 0), 0);
    assert_false(souk_check_ok(&c));
    const char *msg = json_string_value(json_object_get(json_array_get(c.errors, 0), "message"));
    assert_non_null(strstr(msg, "relevance, price_asc, newest"));
    souk_check_free(&c);
}

static void test_b64url(void **state)
{
    (void)state;
    const char *inputs[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\xfd"};
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        char enc[64], dec[64];
        size_t n = strlen(inputs[i]);
        souk_b64url_enc(inputs[i], n, enc, sizeof(enc));
        assert_null(strchr(enc, '='));
        assert_int_equal(souk_b64url_dec(enc, dec, sizeof(dec)), (long)n);
        assert_memory_equal(dec, inputs[i], n);
    }
    char enc[16];
    souk_b64url_enc("foobar", 6, enc, sizeof(enc));
    assert_string_equal(enc, "Zm9vYmFy");
    char out[8];
    assert_int_equal(souk_b64url_dec("Zm9v!", out, sizeof(out)), -1); /* bad char */
    assert_int_equal(souk_b64url_dec("Zm9=", out, sizeof(out)), -1);  /* padding */
    assert_int_equal(souk_b64url_dec("Zg", out, sizeof(out)), 1);
    assert_int_equal(souk_b64url_dec("Zh", out, sizeof(out)), -1); /* non-zero spare bits */
    assert_int_equal(souk_b64url_dec("Zm9vYmFyYmF6", out, 4), -1); /* over the cap */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings),        cmocka_unit_test(test_ints),
        cmocka_unit_test(test_only_and_types), cmocka_unit_test(test_query_ints),
        cmocka_unit_test(test_enum),           cmocka_unit_test(test_b64url),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}

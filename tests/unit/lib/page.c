/* tests/unit/lib/page.c: page tokens (lib/page.c): every kind of position comes back
 * exactly; a token of another list, query or secret, one altered in any byte, of
 * another version or made up, never opens; the page secret is one per database. */
#include "test.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "souk/db.h"
#include "souk/page.h"
#include "souk/souk.h"

static const unsigned char secret_a[SOUK_PAGE_SECRET_BYTES] = "0123456789abcdef0123456789abcdef";
static const unsigned char secret_b[SOUK_PAGE_SECRET_BYTES] = "0123456789abcdef0123456789abcdeF";

static void seal(const unsigned char *secret, const char *list, const char *query,
                 const char *key_text, char out[SOUK_PAGE_TOKEN_MAX])
{
    json_t *key = json_loads(key_text, 0, NULL);
    assert_non_null(key);
    assert_int_equal(souk_page_seal(secret, list, query, key, out, SOUK_PAGE_TOKEN_MAX), 0);
    json_decref(key);
}

static void test_round_trip(void **state)
{
    (void)state;
    static const char *const keys[] = {
        "[\"ord_01JBZ4M1Q8Y7W3K9D2F6H5T0XA\"]",
        "[1999,\"prd_01JBZ4M1Q8Y7W3K9D2F6H5T0XA\"]",
        "[-4.2500000000000009,\"prd_1\"]",
        "[1e-300,\"prd_1\"]",
        "[\"2026-11-25T16:27:32.123Z\",\"prd_1\"]",
        "[-9223372036854775808,9223372036854775807,0,\"caf\\u00e9 \\\"q\\\"\"]",
    };
    for (size_t i = 0; i < SOUK_ARRAY_LEN(keys); i++) {
        char token[SOUK_PAGE_TOKEN_MAX];
        seal(secret_a, "products", "q=red", keys[i], token);
        assert_int_equal(strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                       "0123456789-_"),
                         strlen(token));
        json_t *want = json_loads(keys[i], 0, NULL), *got = NULL;
        assert_int_equal(souk_page_open(secret_a, "products", "q=red", token, &got), 0);
        assert_true(json_equal(want, got)); /* reals too: to the last bit */
        assert_int_equal(json_typeof(json_array_get(want, 0)), json_typeof(json_array_get(got, 0)));
        json_decref(want);
        json_decref(got);
    }
}

static void test_bound_to_list_query_and_secret(void **state)
{
    (void)state;
    char token[SOUK_PAGE_TOKEN_MAX];
    json_t *key = (json_t *)1;
    seal(secret_a, "orders", "user=usr_1", "[\"ord_1\"]", token);
    assert_int_equal(souk_page_open(secret_a, "payments", "user=usr_1", token, &key),
                     SOUK_ECONFLICT);
    assert_null(key);
    assert_int_equal(souk_page_open(secret_a, "orders", "user=usr_2", token, &key), SOUK_ECONFLICT);
    assert_int_equal(souk_page_open(secret_a, "orders", "", token, &key), SOUK_ECONFLICT);
    assert_int_equal(souk_page_open(secret_b, "orders", "user=usr_1", token, &key), SOUK_ECONFLICT);
    /* the list and the query are not one string: ("ab", "") is not ("a", "b") */
    seal(secret_a, "ab", "", "[\"x\"]", token);
    assert_int_equal(souk_page_open(secret_a, "a", "b", token, &key), SOUK_ECONFLICT);
    assert_int_equal(souk_page_open(secret_a, "ab", "", token, &key), 0);
    json_decref(key);
}

/* Every bit of every byte of a token, flipped alone, makes it refused. */
static void test_any_change_is_refused(void **state)
{
    (void)state;
    char token[SOUK_PAGE_TOKEN_MAX], altered[SOUK_PAGE_TOKEN_MAX];
    unsigned char raw[SOUK_PAGE_TOKEN_MAX];
    seal(secret_a, "users", "", "[\"usr_01JBZ4M1Q8Y7W3K9D2F6H5T0XA\"]", token);
    long n = souk_b64url_dec(token, raw, sizeof(raw));
    assert_true(n > 0);
    for (long i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            raw[i] ^= (unsigned char)(1u << bit);
            souk_b64url_enc(raw, (size_t)n, altered, sizeof(altered));
            json_t *key = NULL;
            int rc = souk_page_open(secret_a, "users", "", altered, &key);
            assert_true(rc == SOUK_EINVAL || rc == SOUK_ECONFLICT);
            assert_null(key);
            raw[i] ^= (unsigned char)(1u << bit);
        }
    }
    /* cut short, or one byte more */
    for (long len = 0; len < n; len++) {
        souk_b64url_enc(raw, (size_t)len, altered, sizeof(altered));
        json_t *key = NULL;
        assert_int_not_equal(souk_page_open(secret_a, "users", "", altered, &key), 0);
    }
    raw[n] = 0;
    souk_b64url_enc(raw, (size_t)n + 1, altered, sizeof(altered));
    json_t *key = NULL;
    assert_int_equal(souk_page_open(secret_a, "users", "", altered, &key), SOUK_EINVAL);
}

static void test_version(void **state)
{
    (void)state;
    char token[SOUK_PAGE_TOKEN_MAX];
    unsigned char raw[SOUK_PAGE_TOKEN_MAX];
    seal(secret_a, "users", "", "[\"usr_1\"]", token);
    long n = souk_b64url_dec(token, raw, sizeof(raw));
    assert_int_equal(raw[0], SOUK_PAGE_VERSION);
    raw[0] = SOUK_PAGE_VERSION + 1;
    souk_b64url_enc(raw, (size_t)n, token, sizeof(token));
    json_t *key = NULL;
    assert_int_equal(souk_page_open(secret_a, "users", "", token, &key), SOUK_EINVAL);
}

static void test_made_up(void **state)
{
    (void)state;
    char longest[SOUK_PAGE_TOKEN_MAX + 8];
    memset(longest, 'A', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    const char *const tokens[] = {
        "",        "!",
        "a b",     "ord_01JBZ4M1Q8Y7W3K9D2F6H5T0XA",
        "dXNyXzE", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "%00",     longest,
    };
    for (size_t i = 0; i < SOUK_ARRAY_LEN(tokens); i++) {
        json_t *key = NULL;
        int rc = souk_page_open(secret_a, "users", "", tokens[i], &key);
        assert_true(rc == SOUK_EINVAL || rc == SOUK_ECONFLICT);
        assert_null(key);
    }
}

static void test_keys_that_cannot_be_sealed(void **state)
{
    (void)state;
    static const char *const bad[] = {"[]",        "[null]",      "[true]", "[{}]",
                                      "[[\"a\"]]", "[1,2,3,4,5]", "{}"};
    char token[SOUK_PAGE_TOKEN_MAX];
    for (size_t i = 0; i < SOUK_ARRAY_LEN(bad); i++) {
        json_t *key = json_loads(bad[i], 0, NULL);
        assert_non_null(key);
        assert_int_equal(souk_page_seal(secret_a, "l", "", key, token, sizeof(token)), SOUK_EINVAL);
        json_decref(key);
    }
    /* a position too long for a token, and a buffer too small for one */
    char big[400];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    json_t *key = json_pack("[s]", big);
    assert_int_equal(souk_page_seal(secret_a, "l", "", key, token, sizeof(token)), SOUK_ETOOBIG);
    json_decref(key);
    key = json_pack("[s]", "usr_1");
    assert_int_equal(souk_page_seal(secret_a, "l", "", key, token, 20), SOUK_ETOOBIG);
    json_decref(key);
}

static void test_secret_one_per_database(void **state)
{
    (void)state;
    char dir[] = "/tmp/souk-page-XXXXXX", path[80];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "sqlite:%s/t.db", dir);
    struct souk_db *one, *two, *other;
    assert_int_equal(souk_db_open(&one, path), 0);
    assert_int_equal(souk_db_open(&two, path), 0);
    assert_int_equal(souk_db_open(&other, "sqlite::memory:"), 0);
    unsigned char a[SOUK_PAGE_SECRET_BYTES], b[SOUK_PAGE_SECRET_BYTES], c[SOUK_PAGE_SECRET_BYTES],
        zero[SOUK_PAGE_SECRET_BYTES] = {0};
    assert_int_equal(souk_page_secret(one, a), 0);
    assert_int_equal(souk_page_secret(two, b), 0); /* another replica: the same */
    assert_memory_equal(a, b, sizeof(a));
    assert_int_equal(souk_page_secret(one, b), 0); /* asked again: the same */
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, zero, sizeof(a));
    assert_int_equal(souk_page_secret(other, c), 0); /* another service: its own */
    assert_memory_not_equal(a, c, sizeof(a));
    souk_db_close(one);
    souk_db_close(two);
    souk_db_close(other);
    unlink(path + 7); /* without "sqlite:" */
    snprintf(path, sizeof(path), "%s/t.db-wal", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/t.db-shm", dir);
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bound_to_list_query_and_secret),
        cmocka_unit_test(test_any_change_is_refused),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_made_up),
        cmocka_unit_test(test_keys_that_cannot_be_sealed),
        cmocka_unit_test(test_secret_one_per_database),
    };
    return cmocka_run_group_tests_name("page", tests, NULL, NULL);
}

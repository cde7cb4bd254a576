/* Unit tests for services/catalog/demo.c: the demo catalog must be deterministic, well-formed
   (ids, timestamps, JSON attributes, clean text) and varied enough that search and stock tests
   built on top of it are meaningful. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* timegm */
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "demo.h"

static struct demo_product products[DEMO_PRODUCTS];

static int generate_all(void **state)
{
    (void)state;
    for (uint32_t i = 0; i < DEMO_PRODUCTS; i++)
        demo_product(i, &products[i]);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fails with the duplicate's text if any two of the n strings are equal. */
static void assert_all_distinct(const char **strs, size_t n)
{
    qsort(strs, n, sizeof *strs, cmp_str);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(strs[i - 1], strs[i]) == 0)
            fail_msg("duplicate: \"%s\"", strs[i]);
    }
}

/* Printable ASCII only, NUL-terminated inside the field and not filling it to the brim
   (a full field would suggest a silent truncation). */
static void assert_clean_text(const char *s, size_t cap)
{
    size_t len = strnlen(s, cap);
    assert_true(len > 0);
    assert_true(len < cap - 1);
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e)
            fail_msg("byte 0x%02x at %zu in \"%s\"", (unsigned char)s[i], i, s);
    }
}

static void test_deterministic(void **state)
{
    (void)state;
    for (uint32_t i = 0; i < DEMO_PRODUCTS; i++) {
        struct demo_product again;
        memset(&again, 0xA5, sizeof again); /* garbage must not leak into the result */
        demo_product(i, &again);
        assert_memory_equal(&again, &products[i], sizeof again);
    }
    /* Neighbours really differ: the seed is the index. */
    assert_string_not_equal(products[0].name, products[1].name);
}

static void test_text_fields_clean(void **state)
{
    (void)state;
    for (size_t i = 0; i < DEMO_PRODUCTS; i++) {
        const struct demo_product *p = &products[i];
        assert_clean_text(p->id, sizeof p->id);
        assert_clean_text(p->sku, sizeof p->sku);
        assert_clean_text(p->name, sizeof p->name);
        assert_clean_text(p->description, sizeof p->description);
        assert_clean_text(p->image_url, sizeof p->image_url);
        assert_clean_text(p->attributes, sizeof p->attributes);
        assert_clean_text(p->created_at, sizeof p->created_at);
    }
}

static int crockford_value(char c)
{
    const char *alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    const char *at = c ? strchr(alphabet, c) : NULL;
    return at ? (int)(at - alphabet) : -1;
}

/* Epoch milliseconds from an RFC 3339 "YYYY-MM-DDTHH:MM:SS.mmmZ", or -1 if malformed. */
static int64_t parse_created_at(const char *s)
{
    struct tm tm = {0};
    int ms = 0, n = 0;
    if (strlen(s) != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':' || s[19] != '.' || s[23] != 'Z')
        return -1;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 ||
        n != 23)
        return -1;
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 59)
        return -1;
    int mday = tm.tm_mday;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (tm.tm_mday != mday) /* timegm normalised an impossible date such as 02-30 */
        return -1;
    return (int64_t)t * 1000 + ms;
}

static void test_ids_are_ulids_matching_created_at(void **state)
{
    (void)state;
    const int64_t start = parse_created_at("2026-01-01T00:00:00.000Z");
    const int64_t end = parse_created_at("2026-11-01T00:00:00.000Z");
    int64_t prev_ms = -1;
    const char *ids[DEMO_PRODUCTS];

    for (size_t i = 0; i < DEMO_PRODUCTS; i++) {
        const struct demo_product *p = &products[i];
        assert_int_equal(strlen(p->id), 4 + 26);
        assert_memory_equal(p->id, "prd_", 4);
        /* The first character carries only 3 bits of a 48-bit time: at most '7'. */
        assert_in_range(crockford_value(p->id[4]), 0, 7);
        int64_t ulid_ms = 0;
        for (int c = 0; c < 26; c++) {
            int v = crockford_value(p->id[4 + c]);
            if (v < 0)
                fail_msg("bad ULID character '%c' in %s", p->id[4 + c], p->id);
            if (c < 10)
                ulid_ms = ulid_ms * 32 + v;
        }

        int64_t ms = parse_created_at(p->created_at);
        if (ms < 0)
            fail_msg("malformed created_at \"%s\"", p->created_at);
        assert_true(ms >= start && ms < end);
        assert_int_equal(ulid_ms, ms);
        assert_true(ms > prev_ms);
        if (i > 0) {
            assert_true(strcmp(p->created_at, products[i - 1].created_at) > 0);
            assert_true(strcmp(p->id, products[i - 1].id) > 0); /* ULIDs sort by time */
        }
        prev_ms = ms;
        ids[i] = p->id;
    }
    /* The spread covers the whole period, not just its start. */
    assert_true(parse_created_at(products[DEMO_PRODUCTS - 1].created_at) >
                parse_created_at("2026-10-20T00:00:00.000Z"));
    assert_all_distinct(ids, DEMO_PRODUCTS);
}

static void test_names_and_skus_unique(void **state)
{
    (void)state;
    const char *names[DEMO_PRODUCTS], *skus[DEMO_PRODUCTS];
    for (size_t i = 0; i < DEMO_PRODUCTS; i++) {
        names[i] = products[i].name;
        skus[i] = products[i].sku;
        /* SKU: three capitals, a dash, five digits. */
        const char *s = products[i].sku;
        assert_int_equal(strlen(s), 9);
        assert_true(isupper((unsigned char)s[0]) && isupper((unsigned char)s[1]) &&
                    isupper((unsigned char)s[2]));
        assert_int_equal(s[3], '-');
        assert_int_equal(strspn(s + 4, "0123456789"), 5);
    }
    assert_all_distinct(names, DEMO_PRODUCTS);
    assert_all_distinct(skus, DEMO_PRODUCTS);
}

static void test_categories(void **state)
{
    (void)state;
    const struct demo_category *cats;
    size_t n = demo_categories(&cats);
    assert_true(n >= 12);
    size_t counts[64] = {0};
    assert_true(n <= 64);

    for (size_t c = 0; c < n; c++) {
        assert_int_equal(strspn(cats[c].slug, "abcdefghijklmnopqrstuvwxyz0123456789-"),
                         strlen(cats[c].slug));
        assert_true(strlen(cats[c].name) > 0);
        size_t dlen = strlen(cats[c].description);
        assert_true(dlen > 10 && cats[c].description[dlen - 1] == '.');
        for (size_t d = 0; d < c; d++)
            assert_string_not_equal(cats[c].slug, cats[d].slug);
    }
    for (size_t i = 0; i < DEMO_PRODUCTS; i++) {
        const struct demo_product *p = &products[i];
        size_t c = 0;
        while (c < n && strcmp(cats[c].slug, p->category) != 0)
            c++;
        if (c == n)
            fail_msg("product %zu has unknown category \"%s\"", i, p->category);
        counts[c]++;

        char prefix[128];
        snprintf(prefix, sizeof prefix, "/img/products/%s/", p->category);
        assert_memory_equal(p->image_url, prefix, strlen(prefix));
        size_t len = strlen(p->image_url);
        assert_string_equal(p->image_url + len - 4, ".svg");
    }
    for (size_t c = 0; c < n; c++) {
        if (counts[c] < 30)
            fail_msg("category %s has only %zu products", cats[c].slug, counts[c]);
    }
}

static void test_prices(void **state)
{
    (void)state;
    size_t endings[3] = {0}; /* 99, 49, 00 */
    for (size_t i = 0; i < DEMO_PRODUCTS; i++) {
        int64_t p = products[i].price_cents;
        assert_true(p > 0);
        assert_true(p < 100000 * 100);
        int64_t cents = p % 100;
        assert_true(cents == 99 || cents == 49 || cents == 0);
        endings[cents == 99 ? 0 : cents == 49 ? 1 : 2]++;
        /* Books stay book-priced. */
        if (strcmp(products[i].category, "books") == 0)
            assert_in_range(p, 800, 5000);
    }
    assert_true(endings[0] > DEMO_PRODUCTS / 3);
    assert_true(endings[1] > 0 && endings[2] > 0);
}

static void test_stock(void **state)
{
    (void)state;
    size_t out = 0, low = 0;
    for (size_t i = 0; i < DEMO_PRODUCTS; i++) {
        int64_t n = products[i].on_hand;
        assert_in_range(n, 0, 500);
        out += n == 0;
        low += n >= 1 && n <= 5;
    }
    /* About 5% out of stock: 3..8% of 1200 is 36..96. */
    assert_in_range(out, DEMO_PRODUCTS * 3 / 100, DEMO_PRODUCTS * 8 / 100);
    assert_in_range(low, 10, DEMO_PRODUCTS / 10);
}

static void test_attributes_are_json_objects(void **state)
{
    (void)state;
    for (size_t i = 0; i < DEMO_PRODUCTS; i++) {
        json_error_t err;
        json_t *obj = json_loads(products[i].attributes, JSON_REJECT_DUPLICATES, &err);
        if (!obj)
            fail_msg("attributes of %zu: %s in %s", i, err.text, products[i].attributes);
        assert_true(json_is_object(obj));
        assert_true(json_object_size(obj) >= 3);
        assert_true(json_is_string(json_object_get(obj, "brand")));
        const char *key;
        json_t *value;
        json_object_foreach(obj, key, value)
        {
            assert_true(strlen(key) > 0);
            assert_true(json_is_string(value) || json_is_integer(value) || json_is_boolean(value));
        }
        json_decref(obj);
    }
}

static void test_descriptions(void **state)
{
    (void)state;
    for (size_t i = 0; i < DEMO_PRODUCTS; i++) {
        const char *d = products[i].description;
        size_t len = strlen(d), sentences = 0;
        assert_true(isupper((unsigned char)d[0]));
        assert_int_equal(d[len - 1], '.');
        for (size_t j = 0; j < len; j++)
            sentences += d[j] == '.' && (d[j + 1] == ' ' || d[j + 1] == '\0');
        assert_in_range(sentences, 1, 3);
        assert_null(strstr(d, "  "));
        assert_null(strchr(d, '{')); /* every template slot was filled */
    }
}

/* Whole-word, case-insensitive occurrence, as a full-text index would tokenize it. */
static int has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; (p = strcasestr(p, word)); p++) {
        int starts = p == text || !isalnum((unsigned char)p[-1]);
        int ends = !isalnum((unsigned char)p[n]);
        if (starts && ends)
            return 1;
    }
    return 0;
}

static void test_search_words_are_selective(void **state)
{
    (void)state;
    static const char *const words[] = {"coffee", "wireless", "leather", "tent", "mug"};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t whole = 0, substring = 0;
        for (size_t i = 0; i < DEMO_PRODUCTS; i++) {
            const struct demo_product *p = &products[i];
            whole += has_word(p->name, words[w]) || has_word(p->description, words[w]);
            /* A LIKE '%word%' search would also hit "contents" for "tent": bound that too. */
            substring += strcasestr(p->name, words[w]) || strcasestr(p->description, words[w]);
        }
        print_message("%-8s %3zu products (%zu by substring)\n", words[w], whole, substring);
        assert_in_range(whole, 20, 200);
        assert_in_range(substring, 20, 200);
    }
}

/* `catalog seed --products N`: the same generator at any size keeps names, SKUs and ids
   unique, ids and created_at increasing, every category stocked, and the demo unchanged. */
static void test_large_catalog(void **state)
{
    (void)state;
    enum { N = 200000 };
    struct demo_product *big = malloc(sizeof(*big) * N);
    const char **names = malloc(sizeof(*names) * N), **skus = malloc(sizeof(*skus) * N);
    assert_non_null(big);
    assert_non_null(names);
    assert_non_null(skus);
    const struct demo_category *cats;
    size_t ncats = demo_categories(&cats), per_cat[64] = {0}, marked = 0;
    for (uint32_t i = 0; i < N; i++) {
        demo_product_of(i, N, &big[i]);
        names[i] = big[i].name;
        skus[i] = big[i].sku;
        assert_clean_text(big[i].name, sizeof big[i].name);
        if (i > 0)
            assert_true(strcmp(big[i].id, big[i - 1].id) > 0 &&
                        strcmp(big[i].created_at, big[i - 1].created_at) > 0);
        for (size_t c = 0; c < ncats; c++)
            per_cat[c] += strcmp(cats[c].slug, big[i].category) == 0;
        marked += strstr(big[i].name, " Mk ") != NULL;
    }
    assert_true(strcmp(big[N - 1].created_at, "2026-11-01T00:00:00.000Z") < 0);
    for (size_t c = 0; c < ncats; c++)
        assert_true(per_cat[c] > N / ncats / 2);
    assert_true(marked > 0); /* the size reaches the series names and their marks */
    assert_all_distinct(names, N);
    assert_all_distinct(skus, N);
    /* the demo is the generator at its own size */
    struct demo_product a, b;
    demo_product(7, &a);
    demo_product_of(7, DEMO_PRODUCTS, &b);
    assert_memory_equal(&a, &b, sizeof a);
    free(big);
    free(names);
    free(skus);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_text_fields_clean),
        cmocka_unit_test(test_ids_are_ulids_matching_created_at),
        cmocka_unit_test(test_names_and_skus_unique),
        cmocka_unit_test(test_categories),
        cmocka_unit_test(test_prices),
        cmocka_unit_test(test_stock),
        cmocka_unit_test(test_attributes_are_json_objects),
        cmocka_unit_test(test_descriptions),
        cmocka_unit_test(test_search_words_are_selective),
        cmocka_unit_test(test_large_catalog),
    };
    return cmocka_run_group_tests(tests, generate_all, NULL);
}

/* tests/unit/lib/idempotency.c: the Idempotency-Key store against an in-memory
 * database: first run, replay, a different body, a key in use, release after a
 * transient failure, a lost lease, rollback with the effect, purging. */
#include "test.h"

#include <string.h>

#include "souk/db.h"
#include "souk/idempotency.h"
#include "souk/souk.h"

static int setup(void **state)
{
    struct souk_db *db;
    assert_int_equal(souk_db_open(&db, "sqlite::memory:"), 0);
    assert_int_equal(souk_idem_init(db), 0);
    assert_int_equal(souk_idem_init(db), 0); /* idempotent itself */
    assert_int_equal(souk_db_exec(db, "CREATE TABLE effects (n INTEGER)"), 0);
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    souk_db_close(*state);
    return 0;
}

static int begin(struct souk_db *db, struct souk_idem *k, const char *key, const char *body)
{
    return souk_idem_begin(db, k, "orders", key, "POST", "/internal/v1/payments", body,
                           strlen(body), 0);
}

/* The effect and its record in one transaction, as a handler does it. */
static void run_effect(struct souk_db *db, struct souk_idem *k, int status, const char *resp)
{
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_db_run(db, "INSERT INTO effects VALUES (1)", ""), 1);
    assert_int_equal(souk_idem_complete(db, k, status, resp), 0);
    assert_int_equal(souk_db_commit(db), 0);
}

static int64_t effects(struct souk_db *db)
{
    int64_t n = -1;
    assert_int_equal(souk_db_int(db, &n, "SELECT count(*) FROM effects", ""), 1);
    return n;
}

static void test_first_then_replay(void **state)
{
    struct souk_db *db = *state;
    struct souk_idem k;
    assert_int_equal(begin(db, &k, "k1", "{\"a\":1}"), SOUK_IDEM_PROCEED);
    assert_int_equal(k.attempts, 0);
    run_effect(db, &k, 201, "{\"id\":\"pay_1\"}");
    assert_int_equal(begin(db, &k, "k1", "{\"a\":1}"), SOUK_IDEM_REPLAY);
    assert_int_equal(k.status, 201);
    assert_string_equal(k.response, "{\"id\":\"pay_1\"}");
    souk_idem_free(&k);
    assert_int_equal(effects(db), 1);
}

static void test_different_body(void **state)
{
    struct souk_db *db = *state;
    struct souk_idem k;
    assert_int_equal(begin(db, &k, "k2", "{\"a\":1}"), SOUK_IDEM_PROCEED);
    run_effect(db, &k, 201, "{}");
    assert_int_equal(begin(db, &k, "k2", "{\"a\":2}"), SOUK_IDEM_MISMATCH);
    /* another path with the same key is another request too */
    assert_int_equal(
        souk_idem_begin(db, &k, "orders", "k2", "POST", "/elsewhere", "{\"a\":1}", 7, 0),
        SOUK_IDEM_MISMATCH);
}

static void test_scopes_are_separate(void **state)
{
    struct souk_db *db = *state;
    struct souk_idem k;
    assert_int_equal(begin(db, &k, "k3", "{}"), SOUK_IDEM_PROCEED);
    run_effect(db, &k, 200, "{}");
    assert_int_equal(
        souk_idem_begin(db, &k, "admin-cli", "k3", "POST", "/internal/v1/payments", "{}", 2, 0),
        SOUK_IDEM_PROCEED);
}

static void test_in_use_then_lost_lease(void **state)
{
    struct souk_db *db = *state;
    struct souk_idem first, second, third;
    assert_int_equal(begin(db, &first, "k4", "{}"), SOUK_IDEM_PROCEED);
    assert_int_equal(begin(db, &second, "k4", "{}"), SOUK_IDEM_IN_USE);
    /* the lease expires (a crashed first request): a retry takes the key over */
    assert_int_equal(souk_db_run(db, "UPDATE idempotency_keys SET lease_until = 0", ""), 1);
    assert_int_equal(begin(db, &third, "k4", "{}"), SOUK_IDEM_PROCEED);
    /* the first request, late, must not commit its effect beside the retry's */
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_idem_complete(db, &first, 201, "{\"late\":true}"), SOUK_ECONFLICT);
    souk_db_rollback(db);
    run_effect(db, &third, 201, "{\"retry\":true}");
    assert_int_equal(begin(db, &second, "k4", "{}"), SOUK_IDEM_REPLAY);
    assert_string_equal(second.response, "{\"retry\":true}");
    souk_idem_free(&second);
    assert_int_equal(effects(db), 1);
}

static void test_release_keeps_retryable(void **state)
{
    struct souk_db *db = *state;
    struct souk_idem k;
    assert_int_equal(begin(db, &k, "k5", "{}"), SOUK_IDEM_PROCEED);
    assert_int_equal(souk_idem_release(db, &k, false), 0);
    assert_int_equal(begin(db, &k, "k5", "{}"), SOUK_IDEM_PROCEED);
    assert_int_equal(k.attempts, 1);
    assert_int_equal(souk_idem_release(db, &k, false), 0);
    assert_int_equal(begin(db, &k, "k5", "{}"), SOUK_IDEM_PROCEED);
    assert_int_equal(k.attempts, 2);
    assert_int_equal(begin(db, &k, "k5", "{\"x\":1}"), SOUK_IDEM_MISMATCH);
}

static void test_rollback_leaves_no_record(void **state)
{
    struct souk_db *db = *state;
    struct souk_idem k;
    assert_int_equal(begin(db, &k, "k6", "{}"), SOUK_IDEM_PROCEED);
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_db_run(db, "INSERT INTO effects VALUES (1)", ""), 1);
    assert_int_equal(souk_idem_complete(db, &k, 201, "{}"), 0);
    souk_db_rollback(db); /* a crash before commit: neither effect nor record */
    assert_int_equal(effects(db), 0);
    assert_int_equal(begin(db, &k, "k6", "{}"), SOUK_IDEM_IN_USE); /* until the lease ends */
}

static void test_purge(void **state)
{
    struct souk_db *db = *state;
    struct souk_idem k;
    assert_int_equal(begin(db, &k, "old", "{}"), SOUK_IDEM_PROCEED);
    run_effect(db, &k, 201, "{}");
    assert_int_equal(begin(db, &k, "new", "{}"), SOUK_IDEM_PROCEED);
    run_effect(db, &k, 201, "{}");
    int64_t day_ago = souk_wall_ms() - SOUK_IDEM_TTL_MS - 1000;
    assert_int_equal(souk_db_run(db, "UPDATE idempotency_keys SET created_at = ? WHERE key = 'old'",
                                 "i", day_ago),
                     1);
    assert_int_equal(souk_idem_purge(db, SOUK_IDEM_TTL_MS), 1);
    assert_int_equal(begin(db, &k, "new", "{}"), SOUK_IDEM_REPLAY);
    souk_idem_free(&k);
}

static void test_key_validation(void **state)
{
    (void)state;
    char long_key[SOUK_IDEM_KEY_MAX + 2];
    memset(long_key, 'a', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    assert_true(souk_idem_key_valid("ord_01ABC:authorize"));
    assert_false(souk_idem_key_valid(""));
    assert_false(souk_idem_key_valid(NULL));
    assert_false(souk_idem_key_valid("has space"));
    assert_false(souk_idem_key_valid("tab\there"));
    assert_false(souk_idem_key_valid(long_key));
    long_key[SOUK_IDEM_KEY_MAX] = '\0';
    assert_true(souk_idem_key_valid(long_key));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_then_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_different_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scopes_are_separate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_use_then_lost_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_keeps_retryable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_leaves_no_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
        cmocka_unit_test(test_key_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

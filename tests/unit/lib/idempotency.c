/* tests/unit/lib/idempotency.c: the Idempotency-Key store against both engines (an
 * SQLite file, a private PostgreSQL cluster): first run, replay, a different body, a
 * key in use, release after a transient failure, a lost lease, a look that takes
 * nothing, rollback with the effect, purging, and two connections racing for the same
 * keys. */
#include "test.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"
#include "souk/db.h"
#include "souk/idempotency.h"
#include "souk/souk.h"

static char url[1024]; /* the group's database */

static int setup(void **state)
{
    struct souk_db *db;
    assert_int_equal(souk_db_open(&db, url), 0);
    assert_int_equal(souk_db_exec(db, "DROP TABLE IF EXISTS idempotency_keys"), 0);
    assert_int_equal(souk_db_exec(db, "DROP TABLE IF EXISTS effects"), 0);
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

static int peek(struct souk_db *db, struct souk_idem *k, const char *key, const char *body)
{
    return souk_idem_peek(db, k, "orders", key, "POST", "/internal/v1/payments", body,
                          strlen(body));
}

static int64_t records(struct souk_db *db)
{
    int64_t n = -1;
    assert_int_equal(souk_db_int(db, &n, "SELECT count(*) FROM idempotency_keys", ""), 1);
    return n;
}

/* A look takes nothing: a new key stays new; the look answers as begin would. */
static void test_peek_takes_nothing(void **state)
{
    struct souk_db *db = *state;
    struct souk_idem k, held;
    assert_int_equal(peek(db, &k, "k9", "{}"), SOUK_IDEM_PROCEED);
    assert_int_equal(peek(db, &k, "k9", "{}"), SOUK_IDEM_PROCEED);
    assert_int_equal(records(db), 0);
    assert_int_equal(begin(db, &held, "k9", "{}"), SOUK_IDEM_PROCEED);
    assert_int_equal(peek(db, &k, "k9", "{}"), SOUK_IDEM_IN_USE);
    assert_int_equal(peek(db, &k, "k9", "{\"x\":1}"), SOUK_IDEM_MISMATCH);
    assert_int_equal(souk_idem_release(db, &held, false), 0);
    assert_int_equal(peek(db, &k, "k9", "{}"), SOUK_IDEM_PROCEED); /* released: no lease taken */
    assert_int_equal(peek(db, &k, "k9", "{}"), SOUK_IDEM_PROCEED);
    /* then in the effect's transaction, as orders does it */
    assert_int_equal(souk_db_begin_mode(db, SOUK_TX_LOCKS), 0);
    assert_int_equal(
        souk_idem_begin_in_tx(db, &k, "orders", "k9", "POST", "/internal/v1/payments", "{}", 2, 0),
        SOUK_IDEM_PROCEED);
    assert_int_equal(souk_db_run(db, "INSERT INTO effects VALUES (1)", ""), 1);
    assert_int_equal(souk_idem_complete(db, &k, 201, "{\"id\":9}"), 0);
    assert_int_equal(souk_db_commit(db), 0);
    assert_int_equal(peek(db, &k, "k9", "{}"), SOUK_IDEM_REPLAY);
    assert_int_equal(k.status, 201);
    assert_string_equal(k.response, "{\"id\":9}");
    souk_idem_free(&k);
    assert_int_equal(effects(db), 1);
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

/* Two replicas take the same keys at the same moment: for each key one runs the
 * request and the other is told it is in use; neither fails. */
#define RACE_KEYS 40
struct racer {
    int proceed, in_use, failed;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct souk_db *db;
    if (souk_db_open(&db, url) != 0) {
        r->failed = RACE_KEYS;
        return NULL;
    }
    for (int i = 0; i < RACE_KEYS; i++) {
        char key[32];
        struct souk_idem k;
        snprintf(key, sizeof(key), "race-%d", i);
        int rc = begin(db, &k, key, "{}");
        r->proceed += rc == SOUK_IDEM_PROCEED;
        r->in_use += rc == SOUK_IDEM_IN_USE;
        r->failed += rc != SOUK_IDEM_PROCEED && rc != SOUK_IDEM_IN_USE;
        souk_idem_free(&k);
    }
    souk_db_close(db);
    return NULL;
}

static void test_replicas_race_for_keys(void **state)
{
    (void)state;
    struct racer r[2] = {{0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(r[0].failed + r[1].failed, 0);
    assert_int_equal(r[0].proceed + r[1].proceed, RACE_KEYS);
    assert_int_equal(r[0].in_use + r[1].in_use, RACE_KEYS);
}

/* The same race with the key looked up in the effect's own transaction
 * (souk_idem_begin_in_tx): for each key one runs the effect and the other replays
 * it, after a conflict it runs again on PostgreSQL; never both, never neither. */
static void *race_in_tx(void *arg)
{
    struct racer *r = arg;
    struct souk_db *db;
    if (souk_db_open(&db, url) != 0) {
        r->failed = RACE_KEYS;
        return NULL;
    }
    for (int i = 0; i < RACE_KEYS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "tx-%d", i);
        int rc = SOUK_ECONFLICT;
        for (int tries = 0; rc == SOUK_ECONFLICT && tries < 3; tries++) {
            struct souk_idem k = {0};
            rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
            if (rc == 0)
                rc = souk_idem_begin_in_tx(db, &k, "orders", key, "POST", "/x", "{}", 2, 0);
            if (rc == SOUK_IDEM_PROCEED) {
                rc = souk_db_run(db, "INSERT INTO effects VALUES (1)", "") == 1 ? 0 : SOUK_EDB;
                if (rc == 0)
                    rc = souk_idem_complete(db, &k, 201, "{\"n\":1}");
                if (rc == 0)
                    rc = souk_db_commit(db);
                if (rc != 0)
                    souk_db_rollback(db);
                r->proceed += rc == 0;
            } else {
                souk_db_rollback(db);
                r->in_use += rc == SOUK_IDEM_REPLAY; /* here: replayed */
                if (rc == SOUK_IDEM_REPLAY) {
                    assert_true(k.in_tx);
                    assert_string_equal(k.response, "{\"n\":1}");
                    rc = 0;
                }
            }
            souk_idem_free(&k);
        }
        r->failed += rc != 0;
    }
    souk_db_close(db);
    return NULL;
}

static void test_in_tx_race_runs_once_and_replays(void **state)
{
    struct racer r[2] = {{0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_in_tx, &r[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(r[0].failed + r[1].failed, 0);
    assert_int_equal(r[0].proceed + r[1].proceed, RACE_KEYS);
    assert_int_equal(r[0].in_use + r[1].in_use, RACE_KEYS);
    assert_int_equal(effects(*state), RACE_KEYS);
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
        cmocka_unit_test_setup_teardown(test_peek_takes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_leaves_no_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replicas_race_for_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_tx_race_runs_once_and_replays, setup, teardown),
        cmocka_unit_test(test_key_validation),
    };
    char dir[] = "/tmp/souk-test-idem-XXXXXX", cmd[128];
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(url, sizeof(url), "sqlite:%s/idem.db", dir);
    int failed = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    failed |= system(cmd);
    char *pg = test_pg_start() == 0 ? test_pg_createdb("souk_idem") : NULL;
    if (pg == NULL) {
        fprintf(stderr, "test: cannot start PostgreSQL\n");
        test_pg_destroy();
        return 1;
    }
    snprintf(url, sizeof(url), "%s", pg);
    free(pg);
    failed |= cmocka_run_group_tests_name("postgresql", tests, NULL, NULL);
    test_pg_destroy();
    return failed != 0;
}

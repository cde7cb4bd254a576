/* tests/unit/lib/events.c: the outbox and inbox of lib/events.c against an
 * in-memory database: emit commits and rolls back with the caller's transaction,
 * delivery is exactly once, failures are counted and dead-lettered, cursors move
 * with the effect, and pruning remembers what it deleted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "events_int.h"
#include "souk/db.h"
#include "souk/events.h"
#include "souk/id.h"
#include "souk/server.h"
#include "souk/souk.h"

static int calls;
static int fail_with; /* what the handler returns */

static int on_registered(struct souk_db *db, const struct souk_event *ev)
{
    calls++;
    assert_string_equal(ev->type, "user.registered");
    assert_string_equal(ev->source, "users");
    if (souk_db_run(db, "INSERT INTO effects (event_id, email) VALUES (?, ?)", "ss", ev->id,
                    json_string_value(json_object_get(ev->data, "email"))) < 0)
        return SOUK_EDB;
    return fail_with;
}

static const struct souk_subscription subs[] = {
    {"users", "user.registered", on_registered},
    {NULL, NULL, NULL},
};
static const struct souk_service svc = {.name = "users", .publishes = true, .subscriptions = subs};

static int setup(void **state)
{
    struct souk_db *db;
    setenv("SOUK_EVENTS_MAX_ATTEMPTS", "3", 1);
    setenv("SOUK_EVENTS_RETENTION", "60", 1);
    assert_int_equal(souk_db_open(&db, "sqlite::memory:"), 0);
    assert_int_equal(souk__events_init(&svc, db), 0);
    assert_int_equal(souk_db_exec(db, "CREATE TABLE effects (event_id TEXT, email TEXT)"), 0);
    calls = 0;
    fail_with = 0;
    *state = db;
    return 0;
}

static int teardown(void **state)
{
    souk_db_close(*state);
    return 0;
}

static int64_t count(struct souk_db *db, const char *sql)
{
    int64_t n = -1;
    assert_int_equal(souk_db_int(db, &n, sql, NULL), 1);
    return n;
}

/* emit one event in its own transaction; return its envelope text (malloc'd) */
static char *emit_one(struct souk_db *db, const char *email, int64_t *seq)
{
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_event_emit(db, "user.registered", "usr_1",
                                     json_pack("{s:s,s:s}", "user_id", "usr_1", "email", email)),
                     0);
    assert_int_equal(souk_db_commit(db), 0);
    struct souk_stmt *st =
        souk_db_query(db, "SELECT seq, envelope FROM souk_outbox ORDER BY seq DESC LIMIT 1", NULL);
    assert_int_equal(souk_stmt_step(st), SOUK_ROW);
    *seq = souk_stmt_int(st, 0);
    char *text = strdup(souk_stmt_text(st, 1));
    souk_stmt_done(st);
    return text;
}

static void test_emit_envelope(void **state)
{
    struct souk_db *db = *state;
    int64_t seq;
    char *text = emit_one(db, "a@example.com", &seq);
    json_t *env = json_loads(text, 0, NULL);
    assert_non_null(env);
    assert_string_equal(json_string_value(json_object_get(env, "specversion")), "1.0");
    assert_string_equal(json_string_value(json_object_get(env, "type")), "souk.user.registered");
    assert_string_equal(json_string_value(json_object_get(env, "source")), "urn:souk:users");
    assert_string_equal(json_string_value(json_object_get(env, "subject")), "usr_1");
    assert_string_equal(json_string_value(json_object_get(env, "datacontenttype")),
                        "application/json");
    assert_true(souk_id_valid(json_string_value(json_object_get(env, "id")), "evt"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(env, "data"), "email")),
                        "a@example.com");
    json_decref(env);
    free(text);
}

static void test_emit_rolls_back_with_caller(void **state)
{
    struct souk_db *db = *state;
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_event_emit(db, "user.registered", NULL, json_object()), 0);
    souk_db_rollback(db);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_outbox"), 0);
}

static void test_emit_rejects_bad_input(void **state)
{
    struct souk_db *db = *state;
    assert_int_equal(souk_event_emit(db, "User Registered", NULL, json_object()), SOUK_EINVAL);
    assert_int_equal(souk_event_emit(db, "", NULL, json_object()), SOUK_EINVAL);
    assert_int_equal(souk_event_emit(db, "user.registered", NULL, json_array()), SOUK_EINVAL);
    assert_int_equal(souk_event_emit(db, "user.registered", NULL, NULL), SOUK_EINVAL);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_outbox"), 0);
}

static void test_deliver_exactly_once(void **state)
{
    struct souk_db *db = *state;
    int64_t seq;
    char *text = emit_one(db, "b@example.com", &seq);
    assert_int_equal(souk__ev_deliver(db, "users", seq, text, strlen(text)), SOUK__EV_DONE);
    assert_int_equal(souk__ev_deliver(db, "users", seq, text, strlen(text)), SOUK__EV_DONE);
    assert_int_equal(calls, 1);
    assert_int_equal(count(db, "SELECT count(*) FROM effects"), 1);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_inbox"), 1);
    int64_t after = -1;
    assert_int_equal(
        souk_db_int(db, &after, "SELECT after FROM souk_cursors WHERE producer = 'users'", NULL),
        1);
    assert_int_equal(after, seq);
    free(text);
}

static void test_transient_failure_leaves_nothing(void **state)
{
    struct souk_db *db = *state;
    int64_t seq;
    char *text = emit_one(db, "c@example.com", &seq);
    fail_with = SOUK_EUNAVAIL;
    assert_int_equal(souk__ev_deliver(db, "users", seq, text, strlen(text)), SOUK__EV_RETRY);
    assert_int_equal(count(db, "SELECT count(*) FROM effects"), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_inbox"), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_event_attempts"), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_cursors"), 0);
    fail_with = 0;
    assert_int_equal(souk__ev_deliver(db, "users", seq, text, strlen(text)), SOUK__EV_DONE);
    assert_int_equal(count(db, "SELECT count(*) FROM effects"), 1);
    free(text);
}

static void test_permanent_failure_dead_letters(void **state)
{
    struct souk_db *db = *state;
    int64_t seq;
    char *text = emit_one(db, "d@example.com", &seq);
    fail_with = SOUK_EINVAL;
    assert_int_equal(souk__ev_deliver(db, "users", seq, text, strlen(text)), SOUK__EV_FAILED);
    assert_int_equal(souk__ev_deliver(db, "users", seq, text, strlen(text)), SOUK__EV_FAILED);
    assert_int_equal(count(db, "SELECT attempts FROM souk_event_attempts"), 2);
    assert_int_equal(souk__ev_deliver(db, "users", seq, text, strlen(text)), SOUK__EV_DEAD);
    assert_int_equal(calls, 3);
    assert_int_equal(count(db, "SELECT count(*) FROM effects"), 0); /* every try rolled back */
    assert_int_equal(count(db, "SELECT count(*) FROM souk_dead_letters"), 1);
    assert_int_equal(count(db, "SELECT after FROM souk_cursors"), seq); /* the feed moves on */
    /* a later redelivery is a duplicate, not a fourth attempt */
    assert_int_equal(souk__ev_deliver(db, "users", seq, text, strlen(text)), SOUK__EV_DONE);
    assert_int_equal(calls, 3);
    free(text);
}

static void test_malformed_is_dead_at_once(void **state)
{
    struct souk_db *db = *state;
    static const char *const bad[] = {
        "not json",
        "[1]",
        "{\"specversion\":\"0.3\",\"id\":\"e1\",\"type\":\"souk.a\",\"source\":\"urn:souk:users\","
        "\"time\":\"t\",\"data\":{}}",
        "{\"specversion\":\"1.0\",\"id\":\"e2\",\"type\":\"other.a\",\"source\":\"urn:souk:users\","
        "\"time\":\"t\",\"data\":{}}",
        "{\"specversion\":\"1.0\",\"id\":\"e3\",\"type\":\"souk.a\",\"source\":\"urn:souk:users\","
        "\"time\":\"t\",\"data\":5}",
        "{\"specversion\":\"1.0\",\"type\":\"souk.a\",\"source\":\"urn:souk:users\",\"time\":\"t\","
        "\"data\":{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(souk__ev_deliver(db, "users", (int64_t)i + 1, bad[i], strlen(bad[i])),
                         SOUK__EV_DEAD);
    assert_int_equal(calls, 0);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_dead_letters"), 6);
    assert_int_equal(count(db, "SELECT after FROM souk_cursors"), 6);
}

static void test_unsubscribed_type_only_moves_cursor(void **state)
{
    struct souk_db *db = *state;
    assert_int_equal(souk_db_begin(db), 0);
    assert_int_equal(souk_event_emit(db, "user.deleted", "usr_1", json_object()), 0);
    assert_int_equal(souk_db_commit(db), 0);
    struct souk_stmt *st = souk_db_query(db, "SELECT seq, envelope FROM souk_outbox", NULL);
    assert_int_equal(souk_stmt_step(st), SOUK_ROW);
    int64_t seq = souk_stmt_int(st, 0);
    char *text = strdup(souk_stmt_text(st, 1));
    souk_stmt_done(st);
    assert_int_equal(souk__ev_deliver(db, "users", seq, text, strlen(text)), SOUK__EV_DONE);
    assert_int_equal(calls, 0);
    assert_int_equal(count(db, "SELECT after FROM souk_cursors"), seq);
    free(text);
}

/* n events (the middle one of a type nobody here takes) as a feed page's items */
static void emit_page(struct souk_db *db, struct souk__ev_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char email[32];
        snprintf(email, sizeof(email), "p%zu@example.com", i);
        if (i == n / 2) {
            assert_int_equal(souk_db_begin(db), 0);
            assert_int_equal(souk_event_emit(db, "user.deleted", "usr_1", json_object()), 0);
            assert_int_equal(souk_db_commit(db), 0);
            struct souk_stmt *st = souk_db_query(
                db, "SELECT seq, envelope FROM souk_outbox ORDER BY seq DESC LIMIT 1", NULL);
            assert_int_equal(souk_stmt_step(st), SOUK_ROW);
            items[i].seq = souk_stmt_int(st, 0);
            items[i].text = strdup(souk_stmt_text(st, 1));
            souk_stmt_done(st);
        } else {
            items[i].text = emit_one(db, email, &items[i].seq);
        }
        items[i].len = strlen(items[i].text);
    }
}

static void free_page(struct souk__ev_item *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)items[i].text);
}

static void test_batch_delivers_a_page_once(void **state)
{
    struct souk_db *db = *state;
    struct souk__ev_item items[5];
    emit_page(db, items, 5);
    /* the first one came alone before: a duplicate in the batch */
    assert_int_equal(souk__ev_deliver(db, "users", items[0].seq, items[0].text, items[0].len),
                     SOUK__EV_DONE);
    assert_int_equal(souk__ev_deliver_batch(db, "users", items, 5), 5);
    assert_int_equal(calls, 4);
    assert_int_equal(count(db, "SELECT count(*) FROM effects"), 4);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_inbox"), 4);
    assert_int_equal(count(db, "SELECT after FROM souk_cursors"), items[4].seq);
    /* again: every one a duplicate */
    assert_int_equal(souk__ev_deliver_batch(db, "users", items, 5), 5);
    assert_int_equal(calls, 4);
    free_page(items, 5);
}

static void test_batch_keeps_nothing_when_one_fails(void **state)
{
    struct souk_db *db = *state;
    struct souk__ev_item items[4];
    emit_page(db, items, 4);
    fail_with = SOUK_EUNAVAIL;
    assert_int_equal(souk__ev_deliver_batch(db, "users", items, 4), 0);
    assert_int_equal(calls, 1); /* stopped at the first failure */
    assert_int_equal(count(db, "SELECT count(*) FROM effects"), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_inbox"), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_cursors"), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_event_attempts"), 0);
    /* a malformed envelope in the middle: nothing kept either */
    fail_with = 0;
    struct souk__ev_item bad[3] = {items[0], {items[1].seq, "not json", 8}, items[2]};
    assert_int_equal(souk__ev_deliver_batch(db, "users", bad, 3), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM effects"), 0);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_cursors"), 0);
    assert_int_equal(souk__ev_deliver_batch(db, "users", items, 4), 4);
    assert_int_equal(count(db, "SELECT count(*) FROM effects"), 3);
    assert_int_equal(count(db, "SELECT after FROM souk_cursors"), items[3].seq);
    free_page(items, 4);
}

static void test_prune_remembers_what_it_deleted(void **state)
{
    struct souk_db *db = *state;
    int64_t s1, s2;
    free(emit_one(db, "e@example.com", &s1));
    free(emit_one(db, "f@example.com", &s2));
    /* age the first row past the retention */
    assert_int_equal(
        souk_db_run(db, "UPDATE souk_outbox SET created_ms = created_ms - 3600000 WHERE seq = ?",
                    "i", s1),
        1);
    souk__ev_prune(db);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_outbox"), 1);
    assert_int_equal(count(db, "SELECT v FROM souk_outbox_meta WHERE k = 'pruned_through'"), s1);
    /* seq is never reused after a prune */
    int64_t s3;
    free(emit_one(db, "g@example.com", &s3));
    assert_true(s3 > s2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_emit_envelope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emit_rolls_back_with_caller, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emit_rejects_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deliver_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transient_failure_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_permanent_failure_dead_letters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_is_dead_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsubscribed_type_only_moves_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_delivers_a_page_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_keeps_nothing_when_one_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_remembers_what_it_deleted, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/lib/events_pg.c: the event kit on PostgreSQL with writers side by side
 * (a private cluster, tests/unit/lib/pg.h): emitting transactions commit in seq order
 * (a second emitter waits for the first's commit), replicas delivering one event at
 * once apply it once, and the leases that keep work to one replica (the relay, a
 * feed's follower) are taken, kept, refused, taken over and released. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "../../../lib/events_int.h"
#include "pg.h"
#include "souk/db.h"
#include "souk/events.h"
#include "souk/server.h"
#include "souk/souk.h"

static char *url;

static int on_registered(struct souk_db *db, const struct souk_event *ev)
{
    return souk_db_run(db, "INSERT INTO effects (event_id) VALUES (?)", "s", ev->id) < 0 ? SOUK_EDB
                                                                                         : 0;
}

static const struct souk_subscription subs[] = {
    {"users", "user.registered", on_registered},
    {NULL, NULL, NULL},
};
static const struct souk_service svc = {.name = "users", .publishes = true, .subscriptions = subs};

static struct souk_db *open_db(void)
{
    struct souk_db *db = NULL;
    assert_int_equal(souk_db_open(&db, url), 0);
    return db;
}

static int64_t count(struct souk_db *db, const char *sql)
{
    int64_t n = -1;
    assert_int_equal(souk_db_int(db, &n, sql, NULL), 1);
    return n;
}

static int setup_group(void **state)
{
    (void)state;
    if (test_pg_start() != 0 || (url = test_pg_createdb("events")) == NULL)
        return -1;
    struct souk_db *db = NULL;
    if (souk_db_open(&db, url) != 0 || souk__events_init(&svc, db) != 0 ||
        souk_db_exec(db, "CREATE TABLE effects (event_id TEXT NOT NULL)") != 0)
        return -1;
    souk_db_close(db);
    return 0;
}

static int teardown_group(void **state)
{
    (void)state;
    free(url);
    test_pg_destroy();
    return 0;
}

static void emit(struct souk_db *db, const char *email)
{
    assert_int_equal(souk_event_emit(db, "user.registered", "usr_1",
                                     json_pack("{s:s,s:s}", "user_id", "usr_1", "email", email)),
                     0);
}

struct emitter {
    pthread_t t;
    int rc;
};

static void *second_emitter(void *arg)
{
    struct emitter *e = arg;
    struct souk_db *db = open_db();
    e->rc = souk_db_begin(db);
    if (e->rc == 0)
        e->rc =
            souk_event_emit(db, "user.registered", "usr_2",
                            json_pack("{s:s,s:s}", "user_id", "usr_2", "email", "b@example.com"));
    if (e->rc == 0)
        e->rc = souk_db_commit(db);
    souk_db_close(db);
    return NULL;
}

/* Until a session waits for an advisory lock (the second emitter), or 10 s. */
static bool someone_waits(struct souk_db *db)
{
    for (int i = 0; i < 1000; i++) {
        if (count(db, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                      " AND wait_event = 'advisory'") > 0)
            return true;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

/* The first emitter holds the outbox until it commits: the second's row gets a
 * larger seq and commits after it, so a reader never sees seq n+1 without n. */
static void test_emitters_commit_in_seq_order(void **state)
{
    (void)state;
    struct souk_db *a = open_db(), *watch = open_db();
    assert_int_equal(souk_db_exec(a, "DELETE FROM souk_outbox"), 0);
    assert_int_equal(souk_db_begin(a), 0);
    emit(a, "a@example.com");
    struct emitter b = {0};
    assert_int_equal(pthread_create(&b.t, NULL, second_emitter, &b), 0);
    assert_true(someone_waits(watch));
    assert_int_equal(count(watch, "SELECT count(*) FROM souk_outbox"), 0);
    assert_int_equal(souk_db_commit(a), 0);
    pthread_join(b.t, NULL);
    assert_int_equal(b.rc, 0);
    assert_int_equal(count(watch,
                           "SELECT count(*) FROM souk_outbox WHERE subject = 'usr_2'"
                           " AND seq > (SELECT seq FROM souk_outbox WHERE subject = 'usr_1')"),
                     1);
    souk_db_close(a);
    souk_db_close(watch);
}

/* A rolled-back emitter lets the next one go at once, and leaves only a gap. */
static void test_rolled_back_emitter_leaves_a_gap(void **state)
{
    (void)state;
    struct souk_db *a = open_db(), *b = open_db();
    assert_int_equal(souk_db_begin(a), 0);
    emit(a, "gone@example.com");
    souk_db_rollback(a);
    assert_int_equal(souk_db_begin(b), 0);
    emit(b, "kept@example.com");
    assert_int_equal(souk_db_commit(b), 0);
    assert_int_equal(
        count(b, "SELECT count(*) FROM souk_outbox WHERE envelope LIKE '%gone@example.com%'"), 0);
    souk_db_close(a);
    souk_db_close(b);
}

struct deliverer {
    pthread_t t;
    const char *text;
    enum souk__outcome out;
};

static void *deliver_main(void *arg)
{
    struct deliverer *d = arg;
    struct souk_db *db = open_db();
    for (int i = 0; i < 20; i++) { /* a loser retries, as the transports do */
        d->out = souk__ev_deliver(db, NULL, -1, d->text, strlen(d->text));
        if (d->out == SOUK__EV_DONE)
            break;
    }
    souk_db_close(db);
    return NULL;
}

/* Two replicas handed the same event at once (a redelivery, a lease taken over):
 * one effect, one inbox row, both acknowledge. */
static void test_replicas_apply_an_event_once(void **state)
{
    (void)state;
    const char *text =
        "{\"specversion\":\"1.0\",\"id\":\"evt_race\",\"source\":\"urn:souk:users\","
        "\"type\":\"souk.user.registered\",\"time\":\"2026-11-29T00:00:00Z\","
        "\"subject\":\"usr_9\",\"data\":{\"user_id\":\"usr_9\",\"email\":\"r@example.com\"}}";
    struct deliverer d[4];
    for (int i = 0; i < 4; i++) {
        d[i] = (struct deliverer){.text = text};
        assert_int_equal(pthread_create(&d[i].t, NULL, deliver_main, &d[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(d[i].t, NULL);
        assert_int_equal(d[i].out, SOUK__EV_DONE);
    }
    struct souk_db *db = open_db();
    assert_int_equal(count(db, "SELECT count(*) FROM effects WHERE event_id = 'evt_race'"), 1);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_inbox WHERE event_id = 'evt_race'"), 1);
    souk_db_close(db);
}

/* A feed page of three events (one not ours), as the feed follower delivers it:
 * the batch, or one at a time when the batch is not kept. */
struct page_deliverer {
    pthread_t t;
    const struct souk__ev_item *items;
    bool ok;
};

static void *deliver_page_main(void *arg)
{
    struct page_deliverer *d = arg;
    struct souk_db *db = open_db();
    d->ok = souk__ev_deliver_batch(db, "users", d->items, 3) == 3;
    for (size_t i = 0; !d->ok && i < 3; i++) {
        enum souk__outcome out = SOUK__EV_RETRY;
        for (int tries = 0; out != SOUK__EV_DONE && tries < 20; tries++)
            out = souk__ev_deliver(db, "users", d->items[i].seq, d->items[i].text, d->items[i].len);
        d->ok = i == 2 && out == SOUK__EV_DONE;
        if (out != SOUK__EV_DONE)
            break;
    }
    souk_db_close(db);
    return NULL;
}

/* Two replicas handed the same page at once: each event applied once, the cursor
 * at the page's end, both done. */
static void test_replicas_apply_a_page_once(void **state)
{
    (void)state;
    static const char *const fmt =
        "{\"specversion\":\"1.0\",\"id\":\"evt_page%d\",\"source\":\"urn:souk:users\","
        "\"type\":\"souk.%s\",\"time\":\"2026-11-29T00:00:00Z\","
        "\"data\":{\"user_id\":\"usr_9\",\"email\":\"p@example.com\"}}";
    char text[3][512];
    struct souk__ev_item items[3];
    for (int i = 0; i < 3; i++) {
        snprintf(text[i], sizeof(text[i]), fmt, i, i == 1 ? "user.deleted" : "user.registered");
        items[i] = (struct souk__ev_item){100 + i, text[i], strlen(text[i])};
    }
    struct page_deliverer d[2];
    for (int i = 0; i < 2; i++) {
        d[i] = (struct page_deliverer){.items = items};
        assert_int_equal(pthread_create(&d[i].t, NULL, deliver_page_main, &d[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(d[i].t, NULL);
        assert_true(d[i].ok);
    }
    struct souk_db *db = open_db();
    assert_int_equal(count(db, "SELECT count(*) FROM effects WHERE event_id LIKE 'evt_page%'"), 2);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_inbox WHERE event_id LIKE 'evt_page%'"),
                     2);
    assert_int_equal(count(db, "SELECT after FROM souk_cursors WHERE producer = 'users'"), 102);
    souk_db_close(db);
}

static void test_leases(void **state)
{
    (void)state;
    struct souk_db *db = open_db();
    assert_true(souk__ev_lease(db, "relay"));
    assert_true(souk__ev_lease(db, "relay")); /* kept */
    /* another replica's live lease is refused; its expired one is taken over */
    assert_int_equal(souk_db_run(db,
                                 "INSERT INTO souk_leases (name, owner, until_ms) VALUES (?, ?, ?)",
                                 "ssi", "feed:orders", "ins_other", souk_wall_ms() + 60000),
                     1);
    assert_false(souk__ev_lease(db, "feed:orders"));
    assert_int_equal(souk_db_run(db, "UPDATE souk_leases SET until_ms = ? WHERE name = ?", "is",
                                 souk_wall_ms() - 1, "feed:orders"),
                     1);
    assert_true(souk__ev_lease(db, "feed:orders"));
    /* renewing pushes ours forward and leaves others' alone */
    assert_int_equal(souk_db_run(db, "UPDATE souk_leases SET until_ms = ? WHERE name = 'relay'",
                                 "i", souk_wall_ms() + 100),
                     1);
    assert_int_equal(souk_db_run(db,
                                 "INSERT INTO souk_leases (name, owner, until_ms) VALUES (?, ?, ?)",
                                 "ssi", "feed:users", "ins_other", souk_wall_ms() + 100),
                     1);
    souk__ev_lease_renew(db);
    assert_int_equal(count(db,
                           "SELECT count(*) FROM souk_leases WHERE until_ms > "
                           "(SELECT until_ms FROM souk_leases WHERE name = 'feed:users') + 1000"),
                     2);
    /* a replica that stops gives its leases up at once */
    souk__ev_lease_release_all(db);
    assert_int_equal(count(db, "SELECT count(*) FROM souk_leases"), 1);
    souk_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_emitters_commit_in_seq_order),
        cmocka_unit_test(test_rolled_back_emitter_leaves_a_gap),
        cmocka_unit_test(test_replicas_apply_a_page_once),
        cmocka_unit_test(test_replicas_apply_an_event_once),
        cmocka_unit_test(test_leases),
    };
    return cmocka_run_group_tests(tests, setup_group, teardown_group);
}

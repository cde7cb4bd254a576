/* events_feed.c: the "feed" transport (DESIGN §6). A producer serves its outbox at
 * GET /internal/v1/events?after=&wait=&limit= with long polls parked off the pool
 * (a waiter thread resumes them when rows commit or the wait ends); it also prunes
 * the outbox past the retention. A consumer runs one thread per producer that
 * follows the feed from the cursor kept in its own database. */
#include <ctype.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events_int.h"
#include "souk/client.h"
#include "souk/handler.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/souk.h"

#define WAIT_MAX_S     60
#define LIMIT_MAX      1000
#define POLL_MS        25   /* how often parked polls look for new rows */
#define MAX_WAITERS    4096 /* beyond this a poll is answered at once */
#define PRODUCERS_MAX  8
#define URL_MAX        2048
#define CALL_SLACK_MS  5000 /* client timeout beyond the wait asked for */
#define EMPTY_PAUSE_MS 200  /* an empty answer that came at once: do not spin */
#define PRUNE_MAX_MS   60000
#define FOLLOW_IDLE_MS 500 /* a replica without the feed's lease looks again after this */

/* ---- producer: the feed route ---- */

struct waiter {
    struct souk_req *r;
    int64_t after, limit;
    uint64_t deadline_ns;
    struct waiter *next;
};

static pthread_mutex_t wlock = PTHREAD_MUTEX_INITIALIZER;
static struct waiter *waiters;
static size_t nwaiters;
static bool waiter_running;

/* {"items":[{"seq":N,"event":{…}}…],"next_after":N}: the envelopes are stored as
 * JSON text, so they are copied in, not re-encoded. */
static int render(struct souk_req *r, struct souk_db *db, int64_t after, int64_t limit)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        souk_oom();
    int64_t next = after;
    fputs("{\"items\":[", f);
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT seq, envelope FROM souk_outbox WHERE seq > ?"
                                         " ORDER BY seq LIMIT ?",
                                         "ii", after, limit);
    int rc = SOUK_DONE, n = 0;
    while (st != NULL && (rc = souk_stmt_step(st)) == SOUK_ROW) {
        next = souk_stmt_int(st, 0);
        fprintf(f, "%s{\"seq\":%lld,\"event\":%s}", n++ ? "," : "", (long long)next,
                souk_stmt_text(st, 1));
    }
    fprintf(f, "],\"next_after\":%lld}", (long long)next);
    fclose(f);
    if (st == NULL || rc < 0) { /* a page cut short by an error is not the page */
        free(buf);
        return souk_handler_db_error(r, st == NULL ? SOUK_EDB : rc, "cannot read the outbox");
    }
    souk_reply_raw(r, "application/json", buf, len, true);
    return 200;
}

static int gone(struct souk_req *r, int64_t pruned)
{
    json_t *p = souk_problem_json(410, "cursor_expired",
                                  "the events after this cursor are past the retention");
    json_object_set_new(p, "oldest_after", json_integer(pruned));
    size_t len;
    char *s = souk_json_dump(p, &len);
    json_decref(p);
    souk_reply_raw(r, "application/problem+json", s, len, true);
    return 410;
}

static int feed_get(struct souk_req *r)
{
    struct souk_check c;
    souk_check_init(&c);
    int64_t after = souk_check_int_text(&c, "after", souk_req_query(r, "after"), 0, INT64_MAX, 0);
    int64_t wait = souk_check_int_text(&c, "wait", souk_req_query(r, "wait"), 0, WAIT_MAX_S, 0);
    int64_t limit =
        souk_check_int_text(&c, "limit", souk_req_query(r, "limit"), 1, LIMIT_MAX, souk__ev.batch);
    if (!souk_check_ok(&c))
        return souk_problem_check(r, &c);
    struct souk_db *db = souk_req_db(r);
    int64_t pruned = 0, newest = 0;
    int rc =
        souk_db_int(db, &pruned, "SELECT v FROM souk_outbox_meta WHERE k = 'pruned_through'", NULL);
    if (rc >= 0)
        rc = souk_db_int(db, &newest, "SELECT coalesce(max(seq), 0) FROM souk_outbox", NULL);
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot read the outbox");
    if (after < pruned)
        return gone(r, pruned);
    if (newest > after || wait == 0 || souk_server_draining())
        return render(r, db, after, limit);
    pthread_mutex_lock(&wlock);
    bool park = waiter_running && nwaiters < MAX_WAITERS;
    if (park) {
        struct waiter *w = souk_xcalloc(1, sizeof(*w));
        *w =
            (struct waiter){r, after, limit, souk_now_ns() + (uint64_t)wait * 1000000000u, waiters};
        waiters = w;
        nwaiters++;
    }
    pthread_mutex_unlock(&wlock);
    return park ? SOUK_SUSPEND : render(r, db, after, limit);
}

const struct souk_route souk__feed_routes[] = {
    {"GET", "/internal/v1/events", feed_get, SOUK_SERVICE, "events:read", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};

/* Delete outbox rows (amqp, kafka: only confirmed ones) and inbox rows past the
 * retention, remembering the highest seq deleted so late cursors get 410. */
void souk__ev_prune(struct souk_db *db)
{
    int64_t cutoff = souk_wall_ms() - souk__ev.retention_s * 1000;
    int64_t top = 0;
    if (souk_db_begin(db) != 0)
        return;
    if (souk_db_int(db, &top,
                    "SELECT coalesce(max(seq), 0) FROM souk_outbox WHERE created_ms < ?"
                    " AND (? = 0 OR sent_ms IS NOT NULL)",
                    "ib", cutoff, souk__ev.broker) < 0 ||
        souk_db_run(db,
                    "DELETE FROM souk_outbox WHERE seq <= ? AND created_ms < ?"
                    " AND (? = 0 OR sent_ms IS NOT NULL)",
                    "iib", top, cutoff, souk__ev.broker) < 0 ||
        (top > 0 && souk_db_run(db,
                                "INSERT INTO souk_outbox_meta (k, v) VALUES ('pruned_through', ?)"
                                " ON CONFLICT(k) DO UPDATE SET v = " SOUK_SQL_GREATEST
                                "(souk_outbox_meta.v, excluded.v)",
                                "i", top) < 0) ||
        souk_db_run(db, "DELETE FROM souk_inbox WHERE received_ms < ?", "i", cutoff) < 0 ||
        souk_db_run(db, "DELETE FROM souk_event_attempts WHERE updated_ms < ?", "i", cutoff) < 0) {
        souk_db_rollback(db);
        return;
    }
    if (souk_db_commit(db) != 0) /* nothing lost: the next round prunes again */
        souk_db_rollback(db);
}

/* Answer every parked poll that has rows to read, has waited long enough, or
 * must end because the server drains (all = true also ends the rest). */
static void wake_waiters(struct souk_db *db, bool all)
{
    int64_t newest = 0;
    if (souk_db_int(db, &newest, "SELECT coalesce(max(seq), 0) FROM souk_outbox", NULL) < 0 && !all)
        return;
    uint64_t now = souk_now_ns();
    bool drain = all || souk_server_draining();
    struct waiter *ready = NULL;
    pthread_mutex_lock(&wlock);
    for (struct waiter **pp = &waiters; *pp != NULL;) {
        struct waiter *w = *pp;
        if (drain || newest > w->after || now >= w->deadline_ns) {
            *pp = w->next;
            w->next = ready;
            ready = w;
            nwaiters--;
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&wlock);
    while (ready != NULL) {
        struct waiter *w = ready;
        ready = w->next;
        souk_req_resume(w->r, render(w->r, db, w->after, w->limit));
        free(w);
    }
}

static void *waiter_main(void *arg)
{
    SOUK_UNUSED(arg);
    struct souk_db *db = souk_db_thread();
    int64_t prune_every = souk__ev.retention_s * 1000 / 2;
    if (prune_every > PRUNE_MAX_MS)
        prune_every = PRUNE_MAX_MS;
    if (prune_every < 1000)
        prune_every = 1000;
    uint64_t next_prune = 0;
    while (db != NULL && souk__ev_sleep(POLL_MS)) {
        if (souk_now_ns() >= next_prune) {
            souk__ev_prune(db);
            next_prune = souk_now_ns() + (uint64_t)prune_every * 1000000u;
        }
        souk__ev_lease_renew(db);
        pthread_mutex_lock(&wlock);
        bool any = waiters != NULL;
        pthread_mutex_unlock(&wlock);
        if (any)
            wake_waiters(db, false);
    }
    pthread_mutex_lock(&wlock);
    waiter_running = false;
    pthread_mutex_unlock(&wlock);
    if (db != NULL)
        wake_waiters(db, true);
    return NULL;
}

/* ---- consumer: follow each producer's feed ---- */

struct follower {
    char producer[32];
    char lease[48]; /* "feed:<producer>": one replica of the service follows it */
    char urls[URL_MAX];
};

static struct follower followers[PRODUCERS_MAX];
static size_t nfollowers;

/* Our cursor for producer (0 before the first event), or -1 when the database
 * cannot say: then we wait, rather than read the whole feed again from 0. */
static int64_t cursor_of(struct souk_db *db, const char *producer)
{
    int64_t after = 0;
    if (souk_db_int(db, &after, "SELECT after FROM souk_cursors WHERE producer = ?", "s",
                    producer) < 0)
        return -1;
    return after;
}

/* A 410: the events between our cursor and the oldest kept are gone for good. */
static void skip_expired(struct souk_db *db, struct follower *fl, int64_t after, json_t *body)
{
    json_t *o = json_object_get(body, "oldest_after");
    if (!json_is_integer(o) || json_integer_value(o) <= after)
        return;
    int64_t to = json_integer_value(o);
    souk_error("event cursor behind the producer's retention: events were lost", "{s:s,s:I,s:I}",
               "producer", fl->producer, "after", (json_int_t)after, "resume_after",
               (json_int_t)to);
    souk__ev_count_expired(fl->producer);
    if (souk_db_run(db,
                    "INSERT INTO souk_cursors (producer, after, updated_ms) VALUES (?, ?, ?)"
                    " ON CONFLICT(producer) DO UPDATE SET after = " SOUK_SQL_GREATEST
                    "(souk_cursors.after, excluded.after), updated_ms = excluded.updated_ms",
                    "sii", fl->producer, to, souk_wall_ms()) < 0)
        souk_error("cannot move the event cursor", "{s:s}", "producer", fl->producer);
}

/* Deliver one page in order: up to SOUK__EV_BATCH_MAX events in one transaction
 * (souk__ev_deliver_batch), a batch that fails one event at a time. Returns the
 * retry count to back off with (0: go on). */
static int deliver_page(struct souk_db *db, struct follower *fl, json_t *items, int *attempt)
{
    size_t n = json_array_size(items), ok = 0, i;
    struct souk__ev_item *page = souk_xcalloc(n ? n : 1, sizeof(*page));
    int retry = 0;
    for (ok = 0; ok < n; ok++) { /* the envelopes as text, up to a malformed item */
        json_t *it = json_array_get(items, ok);
        json_t *seq = json_object_get(it, "seq"), *ev = json_object_get(it, "event");
        if (!json_is_integer(seq) || ev == NULL)
            break;
        page[ok].seq = json_integer_value(seq);
        page[ok].text = souk_json_dump(ev, &page[ok].len);
    }
    for (i = 0; i < ok && !souk__ev_stopping();) {
        size_t k = ok - i < SOUK__EV_BATCH_MAX ? ok - i : SOUK__EV_BATCH_MAX;
        if (k > 1 && souk__ev_deliver_batch(db, fl->producer, &page[i], k) == k) {
            *attempt = 0;
            i += k;
            continue;
        }
        for (size_t end = i + k; i < end; i++) {
            enum souk__outcome o =
                souk__ev_deliver(db, fl->producer, page[i].seq, page[i].text, page[i].len);
            if (o == SOUK__EV_RETRY || o == SOUK__EV_FAILED) {
                retry = ++*attempt; /* in order: the same event again after a pause */
                goto out;
            }
            *attempt = 0;
            if (souk__ev_stopping())
                goto out;
        }
    }
    if (ok < n && i == ok && !souk__ev_stopping()) {
        souk_error("malformed feed page", "{s:s}", "producer", fl->producer);
        retry = ++*attempt;
    }
out:
    for (i = 0; i < ok; i++)
        free((char *)page[i].text);
    free(page);
    return retry;
}

static void *follow_main(void *arg)
{
    struct follower *fl = arg;
    struct souk_db *db = souk_db_thread();
    int failures = 0, attempt = 0;
    char base[URL_MAX], url[URL_MAX + 128];
    while (db != NULL && !souk__ev_stopping()) {
        /* the cursor is the service's, shared by its replicas: one of them follows
         * (the inbox would keep effects single anyway; this keeps the work single) */
        if (!souk__ev_lease(db, fl->lease)) {
            if (!souk__ev_sleep(FOLLOW_IDLE_MS / 2 + (int64_t)randombytes_uniform(FOLLOW_IDLE_MS)))
                break;
            continue;
        }
        int64_t after = cursor_of(db, fl->producer);
        int rc = after < 0 ? SOUK_EDB /* backs off below, like a feed that failed */
                           : souk_client_url(url, sizeof(url),
                                             souk_client_pick(fl->urls, base, sizeof(base)),
                                             "/internal/v1/events?after=%lld&wait=%lld&limit=%lld",
                                             (long long)after, (long long)souk__ev.wait_s,
                                             (long long)souk__ev.batch);
        struct souk_call call = {.method = "GET",
                                 .url = url,
                                 .service_token = true,
                                 .timeout_ms = souk__ev.wait_s * 1000 + CALL_SLACK_MS,
                                 .retries = 0,
                                 .peers = fl->urls};
        struct souk_response res = {0};
        uint64_t t0 = souk_now_ns();
        if (rc == 0)
            rc = souk_client_do(&call, &res);
        int64_t pause = 0;
        if (rc == 0 && res.status == 410) {
            skip_expired(db, fl, after, res.json);
        } else if (rc != 0 || res.status != 200 ||
                   !json_is_array(json_object_get(res.json, "items"))) {
            if (failures++ % 20 == 0) /* say it, but not on every retry */
                souk_warn("event feed unavailable", "{s:s,s:i,s:s,s:i}", "producer", fl->producer,
                          "status", res.status, "error", souk_strerror(rc), "failures", failures);
            pause = souk__ev_backoff(failures);
        } else {
            failures = 0;
            json_t *items = json_object_get(res.json, "items");
            int retry = deliver_page(db, fl, items, &attempt);
            if (retry > 0)
                pause = souk__ev_backoff(retry);
            else if (json_array_size(items) == 0 &&
                     souk_now_ns() - t0 < EMPTY_PAUSE_MS * 1000000ull)
                pause = EMPTY_PAUSE_MS;
        }
        souk_response_free(&res);
        if (pause > 0 && !souk__ev_sleep(pause))
            break;
    }
    return NULL;
}

void souk__ev_producer_var(const char *producer, char *name, size_t cap)
{
    size_t n = (size_t)snprintf(name, cap, "SOUK_%s_URL", producer);
    for (size_t i = 5; i < n && i < cap; i++)
        name[i] = (char)toupper((unsigned char)name[i]);
}

int souk__feed_start(void)
{
    const struct souk_service *svc = souk__ev_svc;
    if (svc->publishes) {
        pthread_mutex_lock(&wlock);
        waiter_running = true;
        pthread_mutex_unlock(&wlock);
    }
    /* the waiter also prunes, which consumers need for their inbox */
    if ((svc->publishes || svc->subscriptions != NULL) && souk__ev_spawn(waiter_main, NULL) != 0)
        return SOUK_ENOMEM;
    if (souk__ev.broker)
        return 0; /* consumers read the broker instead */
    nfollowers = 0;
    for (const struct souk_subscription *s = svc->subscriptions; s != NULL && s->type != NULL;
         s++) {
        bool known = false;
        for (size_t i = 0; i < nfollowers; i++)
            known = known || strcmp(followers[i].producer, s->producer) == 0;
        if (known)
            continue;
        if (nfollowers == PRODUCERS_MAX || s->producer == NULL || strlen(s->producer) >= 32) {
            souk_error("too many producers or a bad producer name", NULL);
            return SOUK_EINVAL;
        }
        struct follower *fl = &followers[nfollowers++];
        char env[64];
        souk__ev_producer_var(s->producer, env, sizeof(env));
        const char *urls = souk_config_value(env); /* events.c or the service declares it */
        if (urls == NULL || strncmp(urls, "http", 4) != 0 || strlen(urls) >= URL_MAX) {
            souk_error("a consumed producer has no URL", "{s:s}", "variable", env);
            return SOUK_EINVAL;
        }
        snprintf(fl->producer, sizeof(fl->producer), "%s", s->producer);
        snprintf(fl->lease, sizeof(fl->lease), "feed:%s", s->producer);
        snprintf(fl->urls, sizeof(fl->urls), "%s", urls);
    }
    for (size_t i = 0; i < nfollowers; i++)
        if (souk__ev_spawn(follow_main, &followers[i]) != 0)
            return SOUK_ENOMEM;
    return 0;
}

void souk__feed_stop(void)
{
    /* the waiter thread ends the parked polls itself when it sees the stop */
}

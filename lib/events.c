/* events.c: the event kit's core (DESIGN §6): the CloudEvents envelope, the
 * transactional outbox (souk_event_emit), the idempotent inbox and delivery to a
 * service's subscriptions, configuration, metrics and the transports' life cycle.
 * The transports themselves are in events_feed.c and events_amqp.c. */
#include <ctype.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events_int.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/souk.h"

#define MAX_THREADS    16
#define ERROR_TEXT_MAX 200

struct souk__ev_conf souk__ev;
const struct souk_service *souk__ev_svc;
static char source_name[64] = "unknown";

static const struct souk_conf ev_config[] = {
    {"SOUK_EVENTS", SOUK_CONF_STR, "feed", 4, 1024, &souk__ev.transport,
     "feed or amqp://user:pass@host:port/vhost"},
    {"SOUK_EVENTS_RETENTION", SOUK_CONF_INT, "604800", 1, 31536000, &souk__ev.retention_s,
     "seconds events are kept in the outbox"},
    {"SOUK_EVENTS_WAIT", SOUK_CONF_INT, "10", 0, 60, &souk__ev.wait_s,
     "long-poll seconds a feed consumer asks for"},
    {"SOUK_EVENTS_MAX_ATTEMPTS", SOUK_CONF_INT, "5", 1, 100, &souk__ev.max_attempts,
     "handler failures before dead-lettering"},
    {"SOUK_EVENTS_RETRY_MS", SOUK_CONF_INT, "200", 1, 60000, &souk__ev.retry_ms,
     "first retry delay (doubles)"},
    {"SOUK_EVENTS_RETRY_MAX_MS", SOUK_CONF_INT, "10000", 1, 600000, &souk__ev.retry_max_ms,
     "longest retry delay"},
    {"SOUK_EVENTS_BATCH", SOUK_CONF_INT, "100", 1, 1000, &souk__ev.batch,
     "events per feed page or relay round"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* The kit's tables live beside the service's own; names start with souk_. */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS souk_outbox ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT," /* never reused: cursors stay valid */
    " id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, subject TEXT,"
    " created_ms INTEGER NOT NULL, envelope TEXT NOT NULL,"
    " sent_ms INTEGER);" /* amqp: confirmed by the broker */
    "CREATE INDEX IF NOT EXISTS souk_outbox_unsent ON souk_outbox(seq) WHERE sent_ms IS NULL;"
    "CREATE TABLE IF NOT EXISTS souk_outbox_meta ("
    " k TEXT PRIMARY KEY, v INTEGER NOT NULL);" /* pruned_through: highest seq deleted */
    "CREATE TABLE IF NOT EXISTS souk_inbox ("
    " event_id TEXT PRIMARY KEY, source TEXT NOT NULL, type TEXT NOT NULL,"
    " received_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS souk_cursors ("
    " producer TEXT PRIMARY KEY, after INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS souk_event_attempts ("
    " event_id TEXT PRIMARY KEY, attempts INTEGER NOT NULL, last_error TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS souk_dead_letters ("
    " event_id TEXT PRIMARY KEY, source TEXT NOT NULL, type TEXT NOT NULL,"
    " envelope TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL);";

/* ---- metrics ---- */

static struct souk_metric *m_emitted, *m_published, *m_consumed, *m_expired;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static double outbox_backlog(void *arg)
{
    SOUK_UNUSED(arg);
    struct souk_db *db = souk_db_thread();
    int64_t n = 0;
    if (db == NULL ||
        souk_db_int(db, &n,
                    souk__ev.amqp ? "SELECT count(*) FROM souk_outbox WHERE sent_ms IS NULL"
                                  : "SELECT count(*) FROM souk_outbox",
                    NULL) < 0)
        return 0;
    return (double)n;
}

static void metrics_register(void)
{
    m_emitted =
        souk_metric_counter("souk_events_emitted_total", "events written to the outbox", "type");
    m_published = souk_metric_counter("souk_events_published_total",
                                      "events confirmed by the broker", "type");
    m_consumed = souk_metric_counter("souk_events_consumed_total", "events delivered to handlers",
                                     "type,outcome");
    m_expired =
        souk_metric_counter("souk_events_cursor_expired_total",
                            "feed cursors found behind the producer's retention", "producer");
    souk_metric_gauge_fn("souk_events_outbox_backlog", "outbox rows not yet published (feed: kept)",
                         outbox_backlog, NULL);
}

void souk__ev_count_consumed(const char *type, const char *outcome)
{
    if (m_consumed != NULL)
        souk_metric_inc(m_consumed, type, outcome);
}

void souk__ev_count_expired(const char *producer)
{
    if (m_expired != NULL)
        souk_metric_inc(m_expired, producer);
}

void souk__ev_count_published(const char *type)
{
    if (m_published != NULL)
        souk_metric_inc(m_published, type);
}

/* ---- init ---- */

static const struct souk_route no_routes[] = {{NULL, NULL, NULL, 0, NULL, 0}};

int souk__events_init(const struct souk_service *svc, struct souk_db *db)
{
    char err[512];
    souk__ev_svc = svc;
    snprintf(source_name, sizeof(source_name), "%s", svc->name);
    if (souk_config_load(ev_config, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: configuration error: %s\n", svc->name, err);
        return SOUK_EINVAL;
    }
    souk__ev.amqp = strncmp(souk__ev.transport, "amqp://", 7) == 0;
    if (!souk__ev.amqp && strcmp(souk__ev.transport, "feed") != 0) {
        char shown[512]; /* an unsupported URL may still carry a password */
        fprintf(stderr, "%s: configuration error: SOUK_EVENTS=\"%s\": expected feed or amqp://…\n",
                svc->name, souk_config_redact_url(souk__ev.transport, shown, sizeof(shown)));
        return SOUK_EINVAL;
    }
    pthread_once(&metrics_once, metrics_register);
    return souk_db_exec(db, schema);
}

const struct souk_route *souk__events_routes(void)
{
    return souk__ev_svc != NULL && souk__ev_svc->publishes ? souk__feed_routes : no_routes;
}

/* ---- the outbox ---- */

static bool valid_type(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > SOUK__EV_TYPE_MAX || t[0] == '.' || t[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)t[i]) || isdigit((unsigned char)t[i]) || t[i] == '.' ||
              t[i] == '_'))
            return false;
    return true;
}

int souk_event_emit(struct souk_db *db, const char *type, const char *subject, json_t *data)
{
    int rc = SOUK_EINVAL;
    json_t *env = NULL;
    char *text = NULL;
    char id[SOUK_ID_MAX], ts[SOUK_TIME_MAX], full[SOUK__EV_TYPE_MAX + 8], src[96];
    if (db == NULL || type == NULL || !valid_type(type) || !json_is_object(data) ||
        (subject != NULL && strlen(subject) > SOUK__EV_ID_MAX)) {
        souk_error("event_emit: bad arguments", "{s:s}", "type", type ? type : "(null)");
        goto out;
    }
    int64_t ms = souk_wall_ms();
    souk_id_new(id, "evt");
    souk_time_rfc3339(ms, ts);
    snprintf(full, sizeof(full), SOUK__EV_PREFIX "%s", type);
    snprintf(src, sizeof(src), SOUK__EV_SOURCE "%s", source_name);
    env = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:O}", "specversion", "1.0", "id", id, "source", src,
                    "type", full, "time", ts, "datacontenttype", "application/json", "data", data);
    if (env == NULL)
        goto out;
    if (subject != NULL)
        json_object_set_new(env, "subject", json_string(subject));
    size_t len;
    text = souk_json_dump(env, &len);
    rc = souk_db_run(db,
                     "INSERT INTO souk_outbox (id, type, subject, created_ms, envelope)"
                     " VALUES (?, ?, ?, ?, ?)",
                     "sSSis", id, type, subject, ms, text);
    if (rc < 0)
        goto out;
    rc = 0;
    if (m_emitted != NULL)
        souk_metric_inc(m_emitted, type);
    souk__ev_nudge(); /* early: the waiters re-check after the commit anyway */
out:
    json_decref(data);
    json_decref(env);
    free(text);
    return rc;
}

/* ---- the inbox: delivery to subscriptions ---- */

const char *souk__ev_parse_envelope(json_t *env, struct souk_event *ev,
                                    char type[SOUK__EV_TYPE_MAX + 1], char source[64])
{
    const char *spec = json_string_value(json_object_get(env, "specversion"));
    const char *id = json_string_value(json_object_get(env, "id"));
    const char *t = json_string_value(json_object_get(env, "type"));
    const char *src = json_string_value(json_object_get(env, "source"));
    const char *time = json_string_value(json_object_get(env, "time"));
    json_t *subj = json_object_get(env, "subject");
    json_t *data = json_object_get(env, "data");
    if (spec == NULL || strcmp(spec, "1.0") != 0)
        return "specversion must be 1.0";
    if (id == NULL || strlen(id) == 0 || strlen(id) > SOUK__EV_ID_MAX)
        return "id must be a string of 1 to 64 characters";
    if (t == NULL || strncmp(t, SOUK__EV_PREFIX, strlen(SOUK__EV_PREFIX)) != 0 ||
        !valid_type(t + strlen(SOUK__EV_PREFIX)))
        return "type must be souk.<name>";
    if (src == NULL || strncmp(src, SOUK__EV_SOURCE, strlen(SOUK__EV_SOURCE)) != 0 ||
        strlen(src + strlen(SOUK__EV_SOURCE)) == 0 || strlen(src + strlen(SOUK__EV_SOURCE)) >= 64)
        return "source must be urn:souk:<service>";
    if (time == NULL)
        return "time is required";
    if (subj != NULL && !json_is_string(subj) && !json_is_null(subj))
        return "subject must be a string";
    if (!json_is_object(data))
        return "data must be an object";
    snprintf(type, SOUK__EV_TYPE_MAX + 1, "%s", t + strlen(SOUK__EV_PREFIX));
    snprintf(source, 64, "%s", src + strlen(SOUK__EV_SOURCE));
    ev->id = id;
    ev->type = type;
    ev->source = source;
    ev->subject = json_string_value(subj);
    ev->time = time;
    ev->data = data;
    return NULL;
}

static const struct souk_subscription *find_sub(const char *source, const char *type)
{
    const struct souk_subscription *s = souk__ev_svc ? souk__ev_svc->subscriptions : NULL;
    for (; s != NULL && s->type != NULL; s++)
        if (strcmp(s->type, type) == 0 && (s->producer == NULL || strcmp(s->producer, source) == 0))
            return s;
    return NULL;
}

static int advance_cursor(struct souk_db *db, const char *producer, int64_t seq)
{
    if (seq < 0 || producer == NULL)
        return 0;
    int rc = souk_db_run(db,
                         "INSERT INTO souk_cursors (producer, after, updated_ms) VALUES (?, ?, ?)"
                         " ON CONFLICT(producer) DO UPDATE SET after = max(after, excluded.after),"
                         " updated_ms = excluded.updated_ms",
                         "sii", producer, seq, souk_wall_ms());
    return rc < 0 ? rc : 0;
}

static bool transient(int rc)
{
    return rc == SOUK_EBUSY || rc == SOUK_EIO || rc == SOUK_EUNAVAIL || rc == SOUK_ETIMEDOUT;
}

/* Record a failed attempt outside the handler's (rolled back) transaction; when the
 * attempts reach the limit, dead-letter the event (feed: and move the cursor past
 * it). Returns FAILED or DEAD, or RETRY when the bookkeeping itself failed. */
static enum souk__outcome record_failure(struct souk_db *db, const char *producer, int64_t seq,
                                         const char *id, const char *source, const char *type,
                                         const char *text, const char *error, bool fatal)
{
    int64_t attempts = 0;
    int64_t now = souk_wall_ms();
    if (souk_db_begin(db) != 0)
        return SOUK__EV_RETRY;
    if (souk_db_run(db,
                    "INSERT INTO souk_event_attempts (event_id, attempts, last_error, updated_ms)"
                    " VALUES (?, 1, ?, ?) ON CONFLICT(event_id) DO UPDATE SET"
                    " attempts = attempts + 1, last_error = excluded.last_error,"
                    " updated_ms = excluded.updated_ms",
                    "ssi", id, error, now) < 0 ||
        souk_db_int(db, &attempts, "SELECT attempts FROM souk_event_attempts WHERE event_id = ?",
                    "s", id) < 0)
        goto fail;
    bool dead = fatal || attempts >= souk__ev.max_attempts;
    if (dead) {
        if (souk_db_run(db,
                        "INSERT OR IGNORE INTO souk_dead_letters (event_id, source, type,"
                        " envelope, error, attempts, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        "sssssii", id, source, type, text, error, attempts, now) < 0)
            goto fail;
        /* feed: nobody else will ever deliver it, so it counts as seen; amqp: the
         * broker's dead-letter queue keeps it and a redelivery must fail again */
        if (seq >= 0 && (souk_db_run(db,
                                     "INSERT OR IGNORE INTO souk_inbox (event_id, source, type,"
                                     " received_ms) VALUES (?, ?, ?, ?)",
                                     "sssi", id, source, type, now) < 0 ||
                         advance_cursor(db, producer, seq) != 0))
            goto fail;
    }
    if (souk_db_commit(db) != 0)
        return SOUK__EV_RETRY;
    souk_log(dead ? SOUK_LOG_ERROR : SOUK_LOG_WARN,
             dead ? "event dead-lettered" : "event handler failed", "{s:s,s:s,s:s,s:I,s:s}",
             "event_id", id, "type", type, "source", source, "attempts", (json_int_t)attempts,
             "error", error);
    return dead ? SOUK__EV_DEAD : SOUK__EV_FAILED;
fail:
    souk_db_rollback(db);
    return SOUK__EV_RETRY;
}

enum souk__outcome souk__ev_deliver(struct souk_db *db, const char *producer, int64_t seq,
                                    const char *text, size_t len)
{
    struct souk_event ev;
    char type[SOUK__EV_TYPE_MAX + 1], source[64], idbuf[SOUK__EV_ID_MAX + 1];
    enum souk__outcome out = SOUK__EV_RETRY;
    json_error_t jerr;
    json_t *env = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *bad = env == NULL            ? "not JSON"
                      : !json_is_object(env) ? "not an object"
                                             : souk__ev_parse_envelope(env, &ev, type, source);
    if (bad != NULL) {
        /* a poison message: keep it for a person, never retry it */
        const char *id = json_string_value(json_object_get(env, "id"));
        snprintf(idbuf, sizeof(idbuf), "%s", id && strlen(id) <= SOUK__EV_ID_MAX ? id : "");
        if (idbuf[0] == '\0') {
            char gen[SOUK_ID_MAX];
            snprintf(idbuf, sizeof(idbuf), "%s", souk_id_new(gen, "bad"));
        }
        char *copy = strndup(text, len);
        out = record_failure(db, producer, seq, idbuf, producer ? producer : "unknown", "malformed",
                             copy ? copy : "", bad, true);
        free(copy);
        souk__ev_count_consumed("malformed", "dead");
        goto out;
    }
    const struct souk_subscription *sub = find_sub(source, type);
    if (souk_db_begin(db) != 0)
        goto out;
    int64_t seen = 0;
    int rc = souk_db_int(db, &seen, "SELECT 1 FROM souk_inbox WHERE event_id = ?", "s", ev.id);
    if (rc < 0)
        goto rollback;
    if (rc == 0 && sub != NULL) {
        rc = sub->fn(db, &ev);
        if (rc != 0) {
            souk_db_rollback(db);
            if (transient(rc)) {
                souk_warn("event handler will retry", "{s:s,s:s,s:s}", "event_id", ev.id, "type",
                          type, "error", souk_strerror(rc));
                souk__ev_count_consumed(type, "retry");
                goto out;
            }
            char error[ERROR_TEXT_MAX];
            snprintf(error, sizeof(error), "handler returned %d (%s)", rc, souk_strerror(rc));
            out = record_failure(db, producer, seq, ev.id, source, type, text, error, false);
            souk__ev_count_consumed(type, out == SOUK__EV_DEAD ? "dead" : "failed");
            goto out;
        }
        if (souk_db_run(db,
                        "INSERT INTO souk_inbox (event_id, source, type, received_ms)"
                        " VALUES (?, ?, ?, ?)",
                        "sssi", ev.id, source, type, souk_wall_ms()) < 0 ||
            souk_db_run(db, "DELETE FROM souk_event_attempts WHERE event_id = ?", "s", ev.id) < 0)
            goto rollback;
    }
    if (advance_cursor(db, producer, seq) != 0)
        goto rollback;
    if (souk_db_commit(db) != 0)
        goto out;
    out = SOUK__EV_DONE;
    if (sub != NULL)
        souk__ev_count_consumed(type, seen ? "duplicate" : "ok");
    goto out;
rollback:
    souk_db_rollback(db);
out:
    json_decref(env);
    return out;
}

/* ---- threads, sleeping, nudges ---- */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t nudge_cond = PTHREAD_COND_INITIALIZER;
static bool stopping;
static uint64_t nudges;
static pthread_t threads[MAX_THREADS];
static size_t nthreads;

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}

bool souk__ev_stopping(void)
{
    pthread_mutex_lock(&lock);
    bool s = stopping;
    pthread_mutex_unlock(&lock);
    return s;
}

bool souk__ev_sleep(int64_t ms)
{
    struct timespec ts;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&lock);
    while (!stopping && pthread_cond_timedwait(&stop_cond, &lock, &ts) == 0)
        ;
    bool go_on = !stopping;
    pthread_mutex_unlock(&lock);
    return go_on;
}

int64_t souk__ev_backoff(int attempt)
{
    int64_t d = souk__ev.retry_ms;
    for (int i = 1; i < attempt && d < souk__ev.retry_max_ms; i++)
        d *= 2;
    if (d > souk__ev.retry_max_ms)
        d = souk__ev.retry_max_ms;
    /* equal jitter: half fixed, half random, so replicas do not retry in step */
    return d / 2 + (int64_t)randombytes_uniform((uint32_t)(d / 2 + 1));
}

void souk__ev_nudge(void)
{
    pthread_mutex_lock(&lock);
    nudges++;
    pthread_cond_broadcast(&nudge_cond);
    pthread_mutex_unlock(&lock);
}

void souk__ev_wait_nudge(int64_t ms)
{
    struct timespec ts;
    deadline_in(&ts, ms);
    pthread_mutex_lock(&lock);
    uint64_t seen = nudges;
    while (!stopping && nudges == seen && pthread_cond_timedwait(&nudge_cond, &lock, &ts) == 0)
        ;
    pthread_mutex_unlock(&lock);
}

int souk__ev_spawn(void *(*fn)(void *), void *arg)
{
    pthread_mutex_lock(&lock);
    int rc = nthreads < MAX_THREADS && pthread_create(&threads[nthreads], NULL, fn, arg) == 0;
    if (rc)
        nthreads++;
    pthread_mutex_unlock(&lock);
    return rc ? 0 : SOUK_ENOMEM;
}

void souk__ev_join_all(int64_t ms)
{
    struct timespec ts;
    deadline_in(&ts, ms);
    for (size_t i = 0; i < nthreads; i++) {
        /* a consumer inside a long poll may outlive the deadline: the process is
         * exiting and its transaction, if any, rolls back by itself */
        if (pthread_timedjoin_np(threads[i], NULL, &ts) != 0)
            souk_warn("events thread still busy at stop", NULL);
    }
    nthreads = 0;
}

int souk__events_start(void)
{
    pthread_mutex_lock(&lock);
    stopping = false;
    pthread_mutex_unlock(&lock);
    if (souk__ev_svc == NULL)
        return 0;
    int rc = souk__feed_start();
    if (rc == 0 && souk__ev.amqp)
        rc = souk__amqp_start();
    return rc;
}

void souk__events_stop(void)
{
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_broadcast(&stop_cond);
    pthread_cond_broadcast(&nudge_cond);
    pthread_mutex_unlock(&lock);
    souk__feed_stop();
    souk__amqp_stop();
    souk__ev_join_all(2000);
}

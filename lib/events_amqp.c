/* events_amqp.c: the "amqp" transport (DESIGN §6). A relay thread publishes the
 * outbox to a topic exchange with publisher confirms and marks rows sent only once
 * the broker confirmed them; a consumer thread reads the service's durable queue,
 * hands each message to souk__ev_deliver and acks only after its transaction
 * committed, dead-lettering through the broker after max attempts. Both reconnect. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "dl_int.h"
#include "events_int.h"
#include "souk/backoff.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/souk.h"

#define EXCHANGE           "souk.events" /* topic, routing key = event type */
#define DLX                "souk.dlx"    /* direct, routing key = the dead queue's owner */
#define QUEUE_PREFIX       "souk."       /* souk.<service>, souk.<service>.dlq */
#define DLQ_SUFFIX         ".dlq"
#define CONTENT_TYPE       "application/cloudevents+json"
#define CHANNEL            1
#define FRAME_MAX          131072
#define HEARTBEAT_S        30 /* longer than the longest handler backoff */
#define CONNECT_TIMEOUT_MS 5000
#define RPC_TIMEOUT_MS     10000
#define CONFIRM_TIMEOUT_MS 15000
#define IDLE_MS            100 /* relay: look for rows at least this often */
#define CONSUME_POLL_MS    250 /* consumer: notice a stop this fast */
#define PREFETCH           16
#define RECONNECT_MIN_MS   100
#define RECONNECT_MAX_MS   5000
#define LOG_EVERY          20 /* say a failing reconnect loop, not every turn */
#define URL_MAX            1024
#define NAME_LEN           160
#define PERSISTENT         2             /* AMQP delivery mode: written to disk */
#define BODY_MAX           (1024 * 1024) /* a bigger message is no souk event */

/* librabbitmq, loaded only when SOUK_EVENTS is amqp:// (dl_int.h): the calls this file
 * makes, each through rmq.<name> */
/* clang-format off: one call a line */
#define RMQ_CALLS(X)                                                                               \
    X(amqp_basic_ack)                                                                              \
    X(amqp_basic_consume)                                                                          \
    X(amqp_basic_publish)                                                                          \
    X(amqp_basic_qos)                                                                              \
    X(amqp_basic_reject)                                                                           \
    X(amqp_channel_close)                                                                          \
    X(amqp_channel_open)                                                                           \
    X(amqp_confirm_select)                                                                         \
    X(amqp_connection_close)                                                                       \
    X(amqp_consume_message)                                                                        \
    X(amqp_default_connection_info)                                                                \
    X(amqp_destroy_connection)                                                                     \
    X(amqp_destroy_envelope)                                                                       \
    X(amqp_error_string2)                                                                          \
    X(amqp_exchange_declare)                                                                       \
    X(amqp_get_rpc_reply)                                                                          \
    X(amqp_login)                                                                                  \
    X(amqp_maybe_release_buffers)                                                                  \
    X(amqp_new_connection)                                                                         \
    X(amqp_parse_url)                                                                              \
    X(amqp_queue_bind)                                                                             \
    X(amqp_queue_declare)                                                                          \
    X(amqp_set_handshake_timeout)                                                                  \
    X(amqp_set_rpc_timeout)                                                                        \
    X(amqp_simple_wait_frame_noblock)                                                              \
    X(amqp_socket_open_noblock)                                                                    \
    X(amqp_tcp_socket_new)
/* clang-format on */
static struct {
    RMQ_CALLS(SOUK__DL_SLOT)
} rmq;
#define RMQ_SYM(f) SOUK__DL_SYM(rmq, f)
static const struct souk__dl_sym rmq_syms[] = {RMQ_CALLS(RMQ_SYM)};
static struct souk__dl_lib rmq_lib = SOUK__DL_LIB("librabbitmq.so.4", "librabbitmq4", rmq_syms);

/* The library's data and its one-line helper, here: a variable cannot go through the
 * table, and amqp_cstring_bytes is a struct around strlen */
static const amqp_table_t no_table = {0, NULL};
static const amqp_bytes_t no_bytes = {0, NULL};

static amqp_bytes_t cstr(const char *s) { return (amqp_bytes_t){strlen(s), (void *)s}; }

static char url_buf[URL_MAX];
static struct amqp_connection_info broker;
static char queue_name[NAME_LEN], dlq_name[NAME_LEN];

/* ---- metrics ---- */

static struct souk_metric *m_sent, *m_redelivered, *m_dead, *m_connected, *m_reconnects;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_register(void)
{
    m_sent = souk_metric_counter(
        "souk_events_amqp_sent_total",
        "events handed to the broker (confirmed: souk_events_published_total)", "type");
    m_redelivered = souk_metric_counter("souk_events_amqp_redelivered_total",
                                        "messages the broker delivered again", "type");
    m_dead = souk_metric_counter("souk_events_amqp_dead_lettered_total",
                                 "messages rejected into the dead-letter queue", "type");
    m_connected =
        souk_metric_gauge("souk_events_amqp_connected", "1 while connected to the broker", "role");
    m_reconnects = souk_metric_counter("souk_events_amqp_connects_total",
                                       "connection attempts to the broker", "role,outcome");
}

static void set_connected(const char *role, bool up)
{
    souk_metric_set(m_connected, up ? 1 : 0, role);
}

/* ---- connections ---- */

static struct timeval tv_of(int64_t ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

/* Capped, jittered delay before the n-th reconnect (1-based). */
static int64_t reconnect_delay(int n)
{
    static const struct souk_backoff reconnect = {RECONNECT_MIN_MS, RECONNECT_MAX_MS};
    return souk_backoff_ms(&reconnect, n);
}

static const char *reply_text(amqp_rpc_reply_t r)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return "ok";
    case AMQP_RESPONSE_NONE:
        return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return rmq.amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD || r.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
            return "closed by the broker";
        return "broker exception";
    }
    return "unknown";
}

/* The last RPC succeeded; else log what and why. */
static bool rpc_ok(amqp_connection_state_t c, const char *role, const char *what)
{
    amqp_rpc_reply_t r = rmq.amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return true;
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *m = r.reply.decoded;
        souk_error("amqp: the broker refused", "{s:s,s:s,s:i,s:s%}", "role", role, "step", what,
                   "code", (int)m->reply_code, "text", (const char *)m->reply_text.bytes,
                   (size_t)m->reply_text.len);
        return false;
    }
    souk_warn("amqp: call failed", "{s:s,s:s,s:s}", "role", role, "step", what, "error",
              reply_text(r));
    return false;
}

/* Connect, log in, open the channel and declare the exchange. NULL on failure. */
static amqp_connection_state_t open_link(const char *role, int failures)
{
    amqp_connection_state_t c = rmq.amqp_new_connection();
    if (c == NULL)
        return NULL;
    struct timeval cto = tv_of(CONNECT_TIMEOUT_MS), rto = tv_of(RPC_TIMEOUT_MS);
    amqp_socket_t *s = rmq.amqp_tcp_socket_new(c);
    int rc = s == NULL ? AMQP_STATUS_NO_MEMORY
                       : rmq.amqp_socket_open_noblock(s, broker.host, broker.port, &cto);
    if (rc != AMQP_STATUS_OK) {
        if (failures % LOG_EVERY == 0)
            souk_warn("amqp: cannot reach the broker", "{s:s,s:s,s:i,s:s,s:i}", "role", role,
                      "host", broker.host, "port", broker.port, "error", rmq.amqp_error_string2(rc),
                      "failures", failures);
        goto fail;
    }
    rmq.amqp_set_handshake_timeout(c, &cto);
    rmq.amqp_set_rpc_timeout(c, &rto);
    amqp_rpc_reply_t r = rmq.amqp_login(c, broker.vhost, 0, FRAME_MAX, HEARTBEAT_S,
                                        AMQP_SASL_METHOD_PLAIN, broker.user, broker.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        if (failures % LOG_EVERY == 0)
            souk_warn("amqp: login failed", "{s:s,s:s,s:s}", "role", role, "vhost", broker.vhost,
                      "error", reply_text(r));
        goto fail;
    }
    rmq.amqp_channel_open(c, CHANNEL);
    if (!rpc_ok(c, role, "channel.open"))
        goto fail;
    rmq.amqp_exchange_declare(c, CHANNEL, cstr(EXCHANGE), cstr("topic"), 0, 1, 0, 0, no_table);
    if (!rpc_ok(c, role, "exchange.declare"))
        goto fail;
    souk_metric_inc(m_reconnects, role, "ok");
    return c;
fail:
    souk_metric_inc(m_reconnects, role, "failed");
    rmq.amqp_destroy_connection(c);
    return NULL;
}

/* Close politely when the link still works (broken: just drop the socket). */
static void close_link(amqp_connection_state_t c, const char *role, bool polite)
{
    set_connected(role, false);
    if (polite) {
        rmq.amqp_channel_close(c, CHANNEL, AMQP_REPLY_SUCCESS);
        rmq.amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    }
    rmq.amqp_destroy_connection(c);
}

/* ---- the relay: outbox → exchange, with confirms ---- */

struct row {
    int64_t seq;
    char *type, *id, *envelope;
};

static void free_rows(struct row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].type);
        free(rows[i].id);
        free(rows[i].envelope);
    }
    free(rows);
}

/* The oldest unsent rows, in commit (seq) order. Returns how many, or -1. */
static ssize_t load_unsent(struct souk_db *db, struct row **out)
{
    struct row *rows = souk_xcalloc((size_t)souk__ev.batch, sizeof(*rows));
    size_t n = 0;
    int rc;
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT seq, type, id, envelope FROM souk_outbox"
                                         " WHERE sent_ms IS NULL ORDER BY seq LIMIT ?",
                                         "i", souk__ev.batch);
    while (st != NULL && n < (size_t)souk__ev.batch && (rc = souk_stmt_step(st)) == SOUK_ROW) {
        rows[n] = (struct row){souk_stmt_int(st, 0), strdup(souk_stmt_text(st, 1)),
                               strdup(souk_stmt_text(st, 2)), strdup(souk_stmt_text(st, 3))};
        if (rows[n].type == NULL || rows[n].id == NULL || rows[n].envelope == NULL)
            souk_oom();
        n++;
    }
    if (st != NULL)
        souk_stmt_done(st);
    if (st == NULL) {
        free_rows(rows, n);
        return -1;
    }
    *out = rows;
    return (ssize_t)n;
}

static int publish(amqp_connection_state_t c, const struct row *r)
{
    amqp_basic_properties_t p = {
        ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                  AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_APP_ID_FLAG,
        .content_type = cstr(CONTENT_TYPE),
        .delivery_mode = PERSISTENT,
        .message_id = cstr(r->id),
        .type = cstr(r->type),
        .app_id = cstr(souk__ev_svc->name),
    };
    return rmq.amqp_basic_publish(c, CHANNEL, cstr(EXCHANGE), cstr(r->type), 0, 0, &p,
                                  cstr(r->envelope));
}

/* Wait for the broker's verdict on tags first..first+n-1. Returns how many rows
 * from the start are confirmed (a nack or a timeout stops the prefix there). */
static size_t await_confirms(amqp_connection_state_t c, uint64_t first, size_t n, bool *broken)
{
    bool *acked = souk_xcalloc(n, sizeof(*acked));
    size_t prefix = 0;
    bool nacked = false;
    uint64_t deadline = souk_now_ns() + (uint64_t)CONFIRM_TIMEOUT_MS * 1000000u;
    while (prefix < n && !nacked) {
        uint64_t now = souk_now_ns();
        if (now >= deadline) {
            souk_warn("amqp: publisher confirms timed out", "{s:I}", "waiting",
                      (json_int_t)(n - prefix));
            *broken = true;
            break;
        }
        struct timeval tv = tv_of((int64_t)((deadline - now) / 1000000u));
        amqp_frame_t f;
        int rc = rmq.amqp_simple_wait_frame_noblock(c, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            continue;
        if (rc != AMQP_STATUS_OK) {
            souk_warn("amqp: link lost while waiting for confirms", "{s:s}", "error",
                      rmq.amqp_error_string2(rc));
            *broken = true;
            break;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            for (size_t i = 0; i < n; i++)
                if (first + i == a->delivery_tag || (a->multiple && first + i < a->delivery_tag))
                    acked[i] = true;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            souk_warn("amqp: the broker refused an event; it is sent again", NULL);
            nacked = true;
        } else {
            souk_warn("amqp: unexpected frame on the relay channel", "{s:I}", "method",
                      (json_int_t)f.payload.method.id);
            *broken = true;
            break;
        }
        while (prefix < n && acked[prefix])
            prefix++;
    }
    while (prefix < n && acked[prefix])
        prefix++;
    if (nacked)
        *broken = true; /* a fresh channel resends from the first unconfirmed row, in order */
    free(acked);
    return prefix;
}

static void mark_sent(struct souk_db *db, const struct row *rows, size_t n)
{
    int64_t now = souk_wall_ms();
    if (n == 0 || souk_db_begin(db) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (souk_db_run(db, "UPDATE souk_outbox SET sent_ms = ? WHERE seq = ?", "ii", now,
                        rows[i].seq) < 0) {
            souk_db_rollback(db);
            goto fail;
        }
    if (souk_db_commit(db) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        souk__ev_count_published(rows[i].type);
    return;
fail:
    if (n > 0) /* they go out again: the consumers' inboxes drop the copies */
        souk_warn("amqp: cannot mark confirmed events sent", "{s:I}", "rows", (json_int_t)n);
}

/* The link is still usable while idle: service heartbeats, notice a close. */
static bool idle_check(amqp_connection_state_t c)
{
    struct timeval zero = {0, 0};
    amqp_frame_t f;
    int rc = rmq.amqp_simple_wait_frame_noblock(c, &f, &zero);
    if (rc == AMQP_STATUS_TIMEOUT)
        return true;
    if (rc == AMQP_STATUS_OK && f.frame_type == AMQP_FRAME_METHOD &&
        f.payload.method.id != AMQP_CONNECTION_CLOSE_METHOD &&
        f.payload.method.id != AMQP_CHANNEL_CLOSE_METHOD)
        return true; /* a late confirm from an earlier round: harmless */
    return rc == AMQP_STATUS_OK && f.frame_type != AMQP_FRAME_METHOD;
}

/* Publish until the link breaks or the service stops. Returns true when the link
 * is still fine (stopping). */
static bool relay_loop(amqp_connection_state_t c, struct souk_db *db)
{
    uint64_t next_tag = 1; /* confirm mode numbers the channel's publishes from 1 */
    while (!souk__ev_stopping()) {
        struct row *rows = NULL;
        /* one replica relays at a time: the others would publish the same rows (the
         * inboxes drop copies, but the broker and the consumers would do the work) */
        ssize_t n = souk__ev_lease(db, "relay") ? load_unsent(db, &rows) : 0;
        if (n <= 0) {
            free(rows);
            souk__ev_wait_nudge(IDLE_MS);
            if (!idle_check(c)) {
                souk_warn("amqp: relay link closed", NULL);
                return false;
            }
            continue;
        }
        uint64_t first = next_tag;
        size_t sent = 0;
        for (; sent < (size_t)n; sent++, next_tag++) {
            int rc = publish(c, &rows[sent]);
            if (rc != AMQP_STATUS_OK) {
                souk_warn("amqp: publish failed", "{s:s}", "error", rmq.amqp_error_string2(rc));
                break;
            }
            souk_metric_inc(m_sent, rows[sent].type);
        }
        bool broken = sent < (size_t)n;
        size_t ok = sent > 0 ? await_confirms(c, first, sent, &broken) : 0;
        mark_sent(db, rows, ok);
        free_rows(rows, (size_t)n);
        if (broken)
            return false;
    }
    return true;
}

static void *relay_main(void *arg)
{
    SOUK_UNUSED(arg);
    struct souk_db *db = souk_db_thread();
    int failures = 0;
    while (db != NULL && !souk__ev_stopping()) {
        amqp_connection_state_t c = open_link("relay", failures);
        if (c != NULL) {
            rmq.amqp_confirm_select(c, CHANNEL);
            if (rpc_ok(c, "relay", "confirm.select")) {
                if (failures > 0)
                    souk_info("amqp: relay connected", "{s:i}", "after_failures", failures);
                failures = 0;
                set_connected("relay", true);
                bool fine = relay_loop(c, db);
                close_link(c, "relay", fine);
                if (fine)
                    break;
            } else {
                close_link(c, "relay", false);
            }
        }
        if (!souk__ev_sleep(reconnect_delay(++failures)))
            break;
    }
    return NULL;
}

/* ---- the consumer: the service's queue → souk__ev_deliver ---- */

/* Queue souk.<service> (dead letters go to souk.dlx, key souk.<service>, into
 * souk.<service>.dlq), bound to every subscribed type; then consume with acks. */
static bool declare_queues(amqp_connection_state_t c)
{
    amqp_table_entry_t args[2] = {
        {.key = cstr("x-dead-letter-exchange"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = cstr(DLX)}},
        {.key = cstr("x-dead-letter-routing-key"),
         .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = cstr(queue_name)}},
    };
    amqp_table_t table = {.num_entries = 2, .entries = args};
    rmq.amqp_basic_qos(c, CHANNEL, 0, PREFETCH, 0);
    if (!rpc_ok(c, "consumer", "basic.qos"))
        return false;
    rmq.amqp_exchange_declare(c, CHANNEL, cstr(DLX), cstr("direct"), 0, 1, 0, 0, no_table);
    if (!rpc_ok(c, "consumer", "exchange.declare dlx"))
        return false;
    rmq.amqp_queue_declare(c, CHANNEL, cstr(dlq_name), 0, 1, 0, 0, no_table);
    if (!rpc_ok(c, "consumer", "queue.declare dlq"))
        return false;
    rmq.amqp_queue_bind(c, CHANNEL, cstr(dlq_name), cstr(DLX), cstr(queue_name), no_table);
    if (!rpc_ok(c, "consumer", "queue.bind dlq"))
        return false;
    rmq.amqp_queue_declare(c, CHANNEL, cstr(queue_name), 0, 1, 0, 0, table);
    if (!rpc_ok(c, "consumer", "queue.declare"))
        return false;
    for (const struct souk_subscription *s = souk__ev_svc->subscriptions; s->type != NULL; s++) {
        rmq.amqp_queue_bind(c, CHANNEL, cstr(queue_name), cstr(EXCHANGE), cstr(s->type), no_table);
        if (!rpc_ok(c, "consumer", "queue.bind"))
            return false;
    }
    rmq.amqp_basic_consume(c, CHANNEL, cstr(queue_name), no_bytes, 0, 0, 0, no_table);
    return rpc_ok(c, "consumer", "basic.consume");
}

/* Hand one message to its handler and settle it with the broker. Returns false
 * when the link broke or the service stops (the broker then requeues it). */
static bool handle(amqp_connection_state_t c, struct souk_db *db, const amqp_envelope_t *m,
                   int *attempt)
{
    char type[SOUK__EV_TYPE_MAX + 1];
    snprintf(type, sizeof(type), "%.*s", (int)m->routing_key.len,
             (const char *)m->routing_key.bytes);
    if (m->redelivered)
        souk_metric_inc(m_redelivered, type);
    enum souk__outcome o = SOUK__EV_DEAD;
    size_t len = m->message.body.len;
    if (len > BODY_MAX) {
        souk_error("amqp: message over the size cap, dead-lettered", "{s:s,s:I}", "type", type,
                   "bytes", (json_int_t)len);
    } else {
        /* the body is not NUL-terminated; the delivery keeps it as text */
        char *text = souk_xmalloc(len + 1);
        memcpy(text, m->message.body.bytes, len);
        text[len] = '\0';
        o = souk__ev_deliver(db, NULL, -1, text, len);
        free(text);
    }
    int rc;
    switch (o) {
    case SOUK__EV_DONE: /* committed (or a duplicate): only now may the broker forget it */
        *attempt = 0;
        rc = rmq.amqp_basic_ack(c, CHANNEL, m->delivery_tag, 0);
        break;
    case SOUK__EV_DEAD: /* the queue's dead-letter exchange moves it to souk.<service>.dlq */
        *attempt = 0;
        rc = rmq.amqp_basic_reject(c, CHANNEL, m->delivery_tag, 0);
        if (rc == AMQP_STATUS_OK)
            souk_metric_inc(m_dead, type);
        break;
    default: /* transient, or failed fewer than max attempts: again, later */
        if (!souk__ev_sleep(souk__ev_backoff(++*attempt)))
            return false;
        rc = rmq.amqp_basic_reject(c, CHANNEL, m->delivery_tag, 1);
        break;
    }
    if (rc != AMQP_STATUS_OK) {
        souk_warn("amqp: cannot settle a message; the broker will deliver it again", "{s:s}",
                  "error", rmq.amqp_error_string2(rc));
        return false;
    }
    return true;
}

static bool consume_loop(amqp_connection_state_t c, struct souk_db *db)
{
    int attempt = 0;
    while (!souk__ev_stopping()) {
        amqp_envelope_t m;
        struct timeval tv = tv_of(CONSUME_POLL_MS);
        rmq.amqp_maybe_release_buffers(c);
        amqp_rpc_reply_t r = rmq.amqp_consume_message(c, &m, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            /* a close from the broker, a lost socket or a missed heartbeat */
            souk_warn("amqp: consumer link lost", "{s:s}", "error", reply_text(r));
            return false;
        }
        bool fine = handle(c, db, &m, &attempt);
        rmq.amqp_destroy_envelope(&m);
        if (!fine)
            return false;
    }
    return true;
}

static void *consume_main(void *arg)
{
    SOUK_UNUSED(arg);
    struct souk_db *db = souk_db_thread();
    int failures = 0;
    while (db != NULL && !souk__ev_stopping()) {
        amqp_connection_state_t c = open_link("consumer", failures);
        if (c != NULL) {
            if (declare_queues(c)) {
                souk_info("amqp: consuming", "{s:s,s:i}", "queue", queue_name, "after_failures",
                          failures);
                failures = 0;
                set_connected("consumer", true);
                bool fine = consume_loop(c, db);
                close_link(c, "consumer", fine);
                if (fine)
                    break;
            } else {
                close_link(c, "consumer", false);
            }
        }
        if (!souk__ev_sleep(reconnect_delay(++failures)))
            break;
    }
    return NULL;
}

/* ---- life cycle ---- */

int souk__amqp_load(char *why, size_t whycap) { return souk__dl_load(&rmq_lib, why, whycap); }

int souk__amqp_start(void)
{
    const struct souk_service *svc = souk__ev_svc;
    pthread_once(&metrics_once, metrics_register);
    if (strlen(souk__ev.transport) >= sizeof(url_buf)) {
        souk_error("SOUK_EVENTS is too long", NULL);
        return SOUK_EINVAL;
    }
    snprintf(url_buf, sizeof(url_buf), "%s", souk__ev.transport);
    rmq.amqp_default_connection_info(&broker);
    if (rmq.amqp_parse_url(url_buf, &broker) != AMQP_STATUS_OK || broker.ssl) {
        /* never log the URL: it carries the password */
        souk_error("SOUK_EVENTS is not an amqp://user:pass@host:port/vhost URL", NULL);
        return SOUK_EINVAL;
    }
    snprintf(queue_name, sizeof(queue_name), QUEUE_PREFIX "%s", svc->name);
    snprintf(dlq_name, sizeof(dlq_name), QUEUE_PREFIX "%s" DLQ_SUFFIX, svc->name);
    bool consumes = svc->subscriptions != NULL && svc->subscriptions->type != NULL;
    if (svc->publishes) {
        set_connected("relay", false);
        if (souk__ev_spawn(relay_main, NULL) != 0)
            return SOUK_ENOMEM;
    }
    if (consumes) {
        set_connected("consumer", false);
        if (souk__ev_spawn(consume_main, NULL) != 0)
            return SOUK_ENOMEM;
    }
    souk_info("amqp: events transport", "{s:s,s:i,s:s,s:b,s:b}", "host", broker.host, "port",
              broker.port, "vhost", broker.vhost, "publishes", svc->publishes, "consumes",
              consumes);
    return 0;
}

void souk__amqp_stop(void)
{
    /* the threads see the stop within CONSUME_POLL_MS / IDLE_MS and close their links;
     * souk__events_stop joins them */
}

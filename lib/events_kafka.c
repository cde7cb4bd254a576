/* events_kafka.c: the "kafka" transport (DESIGN §6) on librdkafka. A relay thread hands
 * the outbox to an idempotent producer (topic souk.<service>, key = the event's subject,
 * CloudEvents in structured mode) and marks rows sent only on their delivery report. A
 * consumer thread reads the producers' topics in the group souk.<service>, hands each
 * record to souk__ev_deliver and commits its offset only after that transaction
 * committed; a record that failed max attempts goes to souk.<service>.dlq first. A
 * failing record holds its partition back (pause, seek) while the others flow.
 * librdkafka reconnects by itself; a fatal producer error makes a fresh producer. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_int.h"
#include "events_int.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/souk.h"

#define SCHEME        "kafka://"
#define TOPIC_PREFIX  "souk." /* souk.<producer>; groups souk.<consumer> */
#define DLQ_SUFFIX    ".dlq"  /* souk.<consumer>.dlq, the name amqp's queue has */
#define CONTENT_TYPE  "application/cloudevents+json"
#define BROKERS_MAX   32
#define BOOTSTRAP_MAX 1024
#define NAME_LEN      160
#define IDLE_MS       50    /* relay: look for committed rows at least this often */
#define DR_POLL_MS    20    /* relay: wait for delivery reports this long per turn */
#define INFLIGHT_MAX  1000  /* rows handed to librdkafka and not yet reported */
#define STOP_FLUSH_MS 500   /* at a stop, let reports in flight arrive this long */
#define CONSUME_MS    100   /* consumer: notice a stop (and due retries) this fast */
#define SEEK_MS       2000  /* a seek is local; this bounds a wedged client */
#define DLQ_WAIT_MS   30000 /* a dead letter must be delivered before its offset commits */
#define HELD_MAX      256   /* partitions held back by a failing record at once */
#define RECREATE_MIN  100   /* ms before making a fresh client after a failure */
#define RECREATE_MAX  5000
#define LOG_EVERY     20            /* say a repeating error, not every turn */
#define BODY_MAX      (1024 * 1024) /* a bigger record is no souk event */
#define STATS_MS      "1000"
#define PROPS_MAX     64   /* lines of SOUK_EVENTS_KAFKA_CONFIG that set something */
#define PROP_LINE_MAX 4096 /* a longer line is refused, not grown */

/* librdkafka, loaded only when SOUK_EVENTS is kafka:// (dl_int.h): the calls this file
 * makes, each through rdk.<name> */
/* clang-format off: one call a line */
#define RDK_CALLS(X)                                                                               \
    X(rd_kafka_assign)                                                                             \
    X(rd_kafka_assignment_lost)                                                                    \
    X(rd_kafka_commit)                                                                             \
    X(rd_kafka_conf_destroy)                                                                       \
    X(rd_kafka_conf_new)                                                                           \
    X(rd_kafka_conf_set)                                                                           \
    X(rd_kafka_conf_set_dr_msg_cb)                                                                 \
    X(rd_kafka_conf_set_error_cb)                                                                  \
    X(rd_kafka_conf_set_log_cb)                                                                    \
    X(rd_kafka_conf_set_offset_commit_cb)                                                          \
    X(rd_kafka_conf_set_opaque)                                                                    \
    X(rd_kafka_conf_set_rebalance_cb)                                                              \
    X(rd_kafka_conf_set_stats_cb)                                                                  \
    X(rd_kafka_consumer_close)                                                                     \
    X(rd_kafka_consumer_poll)                                                                      \
    X(rd_kafka_destroy)                                                                            \
    X(rd_kafka_destroy_flags)                                                                      \
    X(rd_kafka_err2name)                                                                           \
    X(rd_kafka_error_destroy)                                                                      \
    X(rd_kafka_error_string)                                                                       \
    X(rd_kafka_fatal_error)                                                                        \
    X(rd_kafka_flush)                                                                              \
    X(rd_kafka_header_add)                                                                         \
    X(rd_kafka_headers_copy)                                                                       \
    X(rd_kafka_headers_destroy)                                                                    \
    X(rd_kafka_headers_new)                                                                        \
    X(rd_kafka_incremental_assign)                                                                 \
    X(rd_kafka_incremental_unassign)                                                               \
    X(rd_kafka_message_destroy)                                                                    \
    X(rd_kafka_message_errstr)                                                                     \
    X(rd_kafka_message_headers)                                                                    \
    X(rd_kafka_new)                                                                                \
    X(rd_kafka_offsets_store)                                                                      \
    X(rd_kafka_pause_partitions)                                                                   \
    X(rd_kafka_poll)                                                                               \
    X(rd_kafka_poll_set_consumer)                                                                  \
    X(rd_kafka_producev)                                                                           \
    X(rd_kafka_purge)                                                                              \
    X(rd_kafka_rebalance_protocol)                                                                 \
    X(rd_kafka_resume_partitions)                                                                  \
    X(rd_kafka_seek_partitions)                                                                    \
    X(rd_kafka_subscribe)                                                                          \
    X(rd_kafka_topic_name)                                                                         \
    X(rd_kafka_topic_partition_list_add)                                                           \
    X(rd_kafka_topic_partition_list_destroy)                                                       \
    X(rd_kafka_topic_partition_list_find)                                                          \
    X(rd_kafka_topic_partition_list_new)                                                           \
    X(rd_kafka_version_str)
/* clang-format on */
static struct {
    RDK_CALLS(SOUK__DL_SLOT)
} rdk;
#define RDK_SYM(f) SOUK__DL_SYM(rdk, f)
static const struct souk__dl_sym rdk_syms[] = {RDK_CALLS(RDK_SYM)};
static struct souk__dl_lib rdk_lib = SOUK__DL_LIB("librdkafka.so.1", "librdkafka1", rdk_syms);

static char bootstrap[BOOTSTRAP_MAX];
static char topic_name[NAME_LEN], group_name[NAME_LEN], dlq_name[NAME_LEN];
static char *prop_key[PROPS_MAX], *prop_val[PROPS_MAX]; /* the operator's properties */
static size_t nprops;

/* ---- metrics ---- */

static struct souk_metric *m_sent, *m_failed, *m_retried, *m_dead, *m_rebalances, *m_errors,
    *m_brokers, *m_lag;
static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

static void metrics_register(void)
{
    m_sent = souk_metric_counter(
        "souk_events_kafka_sent_total",
        "events handed to the producer (delivered: souk_events_published_total)", "type");
    m_failed =
        souk_metric_counter("souk_events_kafka_delivery_failed_total",
                            "delivery reports with an error (the row is sent again)", "type");
    m_retried =
        souk_metric_counter("souk_events_kafka_retried_total",
                            "records read again after their handler asked to retry", "topic");
    m_dead = souk_metric_counter("souk_events_kafka_dead_lettered_total",
                                 "records written to the dead-letter topic", "topic");
    m_rebalances = souk_metric_counter("souk_events_kafka_rebalances_total",
                                       "partition assignments and revocations", "kind");
    m_errors =
        souk_metric_counter("souk_events_kafka_errors_total",
                            "errors librdkafka reported (it retries by itself)", "role,error");
    m_brokers = souk_metric_gauge("souk_events_kafka_brokers_up",
                                  "brokers the client holds a connection to", "role");
    m_lag = souk_metric_gauge("souk_events_kafka_consumer_lag",
                              "records on the topic not yet committed by this group", "topic");
}

/* ---- configuration: the URL and the properties file ---- */

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

int souk__kafka_parse_url(const char *url, char *out, size_t cap, char *why, size_t whycap)
{
    size_t n = 0, brokers = 0;
    const char *p = url;
    if (strncmp(p, SCHEME, strlen(SCHEME)) != 0) {
        snprintf(why, whycap, "it does not start with kafka://");
        return SOUK_EINVAL;
    }
    p += strlen(SCHEME);
    if (strpbrk(p, "@") != NULL) {
        /* said without echoing the URL: what precedes the @ is a secret */
        snprintf(why, whycap,
                 "credentials do not belong in the URL: set sasl.username and sasl.password "
                 "in the SOUK_EVENTS_KAFKA_CONFIG file");
        return SOUK_EINVAL;
    }
    for (;;) {
        const char *start = p;
        if (*p == '[') { /* [v6]:port */
            p++;
            while (isxdigit((unsigned char)*p) || *p == ':' || *p == '.')
                p++;
            if (*p != ']' || p == start + 1) {
                snprintf(why, whycap, "broker %zu: a bracketed host must be an IPv6 address",
                         brokers + 1);
                return SOUK_EINVAL;
            }
            p++;
        } else {
            while (host_char(*p))
                p++;
            if (p == start) {
                snprintf(why, whycap, "broker %zu: the host is missing", brokers + 1);
                return SOUK_EINVAL;
            }
        }
        if (*p != ':') {
            snprintf(why, whycap, "broker %zu: expected host:port", brokers + 1);
            return SOUK_EINVAL;
        }
        const char *port = ++p;
        long v = 0;
        while (isdigit((unsigned char)*p) && p - port < 6)
            v = v * 10 + (*p++ - '0');
        if (p == port || v < 1 || v > 65535 || isdigit((unsigned char)*p)) {
            snprintf(why, whycap, "broker %zu: the port must be a number from 1 to 65535",
                     brokers + 1);
            return SOUK_EINVAL;
        }
        size_t len = (size_t)(p - start);
        if (++brokers > BROKERS_MAX || n + len + 2 > cap) {
            snprintf(why, whycap, "more than %d brokers, or a list over %zu characters",
                     BROKERS_MAX, cap - 1);
            return SOUK_EINVAL;
        }
        if (n > 0)
            out[n++] = ',';
        memcpy(out + n, start, len);
        n += len;
        out[n] = '\0';
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '/' && p[1] == '\0')
            p++;
        break;
    }
    if (*p != '\0') {
        snprintf(why, whycap, "broker %zu: unexpected text after the port (no path or query)",
                 brokers);
        return SOUK_EINVAL;
    }
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static void free_props(void)
{
    for (size_t i = 0; i < nprops; i++) {
        free(prop_key[i]);
        if (prop_val[i] != NULL) /* secrets among them: wipe before freeing */
            memset(prop_val[i], 0, strlen(prop_val[i]));
        free(prop_val[i]);
    }
    nprops = 0;
}

/* Read "key=value" lines ('#' and '!' start comments) into prop_key/prop_val. The
 * values are never logged: sasl.password and ssl.key.password live here. */
static int load_props(const char *path, char *why, size_t whycap)
{
    int rc = SOUK_EINVAL;
    char *line = souk_xmalloc(PROP_LINE_MAX + 2);
    FILE *f = fopen(path, "re");
    int lineno = 0;
    if (f == NULL) {
        snprintf(why, whycap, "SOUK_EVENTS_KAFKA_CONFIG: cannot read %s: %s", path,
                 strerror(errno));
        goto out;
    }
    while (fgets(line, PROP_LINE_MAX + 2, f) != NULL) {
        lineno++;
        if (strlen(line) > PROP_LINE_MAX) {
            snprintf(why, whycap, "SOUK_EVENTS_KAFKA_CONFIG line %d: longer than %d characters",
                     lineno, PROP_LINE_MAX);
            goto out;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == '!')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(why, whycap, "SOUK_EVENTS_KAFKA_CONFIG line %d: expected key=value", lineno);
            goto out;
        }
        *eq = '\0';
        if (nprops == PROPS_MAX) {
            snprintf(why, whycap, "SOUK_EVENTS_KAFKA_CONFIG: more than %d properties", PROPS_MAX);
            goto out;
        }
        prop_key[nprops] = souk_xstrdup(trim(s));
        prop_val[nprops] = souk_xstrdup(trim(eq + 1));
        nprops++;
    }
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    memset(line, 0, PROP_LINE_MAX + 2);
    free(line);
    return rc;
}

/* ---- clients ---- */

struct kclient {
    const char *role; /* relay, consumer, dlq */
    rd_kafka_t *rk;
    bool fatal;          /* librdkafka gave up on this instance: make a fresh one */
    unsigned errors;     /* for LOG_EVERY */
    struct relay *relay; /* the relay's bookkeeping, for its delivery reports */
};

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kclient *c = opaque;
    char name[64];
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char text[256];
        err = rdk.rd_kafka_fatal_error(rk, text, sizeof(text));
        c->fatal = true;
        souk_error("kafka: fatal client error; a fresh client takes over", "{s:s,s:s,s:s}", "role",
                   c->role, "error", rdk.rd_kafka_err2name(err), "reason", text);
    } else if (c->errors++ % LOG_EVERY == 0) {
        souk_warn("kafka: client error (librdkafka retries)", "{s:s,s:s,s:s,s:i}", "role", c->role,
                  "error", rdk.rd_kafka_err2name(err), "reason", reason, "count", (int)c->errors);
    }
    snprintf(name, sizeof(name), "%s", rdk.rd_kafka_err2name(err));
    souk_metric_inc(m_errors, c->role, name);
}

/* librdkafka's own lines (syslog levels), from its threads; debug lines come only
 * when the properties file sets `debug`, and show with SOUK_LOG_LEVEL=debug. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    SOUK_UNUSED(rk);
    enum souk_log_level l = level <= 3   ? SOUK_LOG_ERROR
                            : level == 4 ? SOUK_LOG_WARN
                            : level <= 6 ? SOUK_LOG_INFO
                                         : SOUK_LOG_DEBUG;
    if (souk_log_enabled(l))
        souk_log(l, "kafka: librdkafka says", "{s:s,s:s}", "facility", fac, "text", buf);
}

/* Statistics (every second, from the polling thread): brokers connected, and for the
 * consumer its lag per topic. */
static int on_stats(rd_kafka_t *rk, char *text, size_t len, void *opaque)
{
    SOUK_UNUSED(rk);
    struct kclient *c = opaque;
    json_t *st = json_loadb(text, len, 0, NULL);
    json_t *b, *t;
    const char *k;
    int up = 0;
    json_object_foreach(json_object_get(st, "brokers"), k, b)
    {
        /* the cluster's brokers (bootstrap entries take their node id once known),
         * not the logical group coordinator, which shares one of their connections */
        const char *source = json_string_value(json_object_get(b, "source"));
        const char *state = json_string_value(json_object_get(b, "state"));
        if (json_integer_value(json_object_get(b, "nodeid")) >= 0 && source != NULL &&
            strcmp(source, "logical") != 0 && state != NULL && strcmp(state, "UP") == 0)
            up++;
    }
    souk_metric_set(m_brokers, up, c->role);
    if (strcmp(c->role, "consumer") == 0) {
        json_object_foreach(json_object_get(st, "topics"), k, t)
        {
            const char *pk;
            json_t *part;
            int64_t lag = 0;
            json_object_foreach(json_object_get(t, "partitions"), pk, part)
            {
                json_int_t v = json_integer_value(json_object_get(part, "consumer_lag"));
                if (strcmp(pk, "-1") != 0 && v > 0)
                    lag += v;
            }
            souk_metric_set(m_lag, (double)lag, k);
        }
    }
    json_decref(st);
    return 0; /* librdkafka frees the text */
}

/* The roles with a brokers_up gauge: the long-lived clients. */
static bool stats_role(const char *role)
{
    return strcmp(role, "relay") == 0 || strcmp(role, "consumer") == 0;
}

static bool set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rdk.rd_kafka_conf_set(conf, k, v, err, sizeof(err)) == RD_KAFKA_CONF_OK)
        return true;
    souk_error("kafka: cannot set a client property", "{s:s,s:s}", "property", k, "error", err);
    return false;
}

/* A client's configuration: our defaults, then the operator's properties, then what
 * the transport's guarantees rest on (which the properties cannot change). */
static rd_kafka_conf_t *make_conf(struct kclient *c, rd_kafka_type_t type, char *why, size_t whycap)
{
    char id[NAME_LEN + 16];
    rd_kafka_conf_t *conf = rdk.rd_kafka_conf_new();
    snprintf(id, sizeof(id), "souk-%s-%s", souk__ev_svc->name, c->role);
    bool ok = set(conf, "client.id", id) && set(conf, "reconnect.backoff.ms", "100") &&
              set(conf, "reconnect.backoff.max.ms", "2000") &&
              set(conf, "socket.keepalive.enable", "true") &&
              set(conf, "statistics.interval.ms", stats_role(c->role) ? STATS_MS : "0");
    if (ok && type == RD_KAFKA_PRODUCER)
        /* no local timeout: librdkafka retries (in order, idempotently) until the broker
         * has it; a row whose report never comes stays unsent and goes out after a restart */
        ok = set(conf, "message.timeout.ms", strcmp(c->role, "dlq") == 0 ? "30000" : "0") &&
             set(conf, "linger.ms", "5") && set(conf, "partitioner", "murmur2_random");
    if (ok && type == RD_KAFKA_CONSUMER)
        ok = set(conf, "auto.offset.reset", "earliest") &&
             set(conf, "allow.auto.create.topics", "true") &&
             set(conf, "fetch.wait.max.ms", "100") && set(conf, "session.timeout.ms", "10000") &&
             set(conf, "heartbeat.interval.ms", "1000");
    for (size_t i = 0; ok && i < nprops; i++) {
        char err[512];
        rd_kafka_conf_res_t r =
            rdk.rd_kafka_conf_set(conf, prop_key[i], prop_val[i], err, sizeof(err));
        if (r == RD_KAFKA_CONF_UNKNOWN) {
            snprintf(why, whycap, "SOUK_EVENTS_KAFKA_CONFIG: unknown property %s", prop_key[i]);
            ok = false;
        } else if (r != RD_KAFKA_CONF_OK) { /* librdkafka's text may quote the value */
            snprintf(why, whycap, "SOUK_EVENTS_KAFKA_CONFIG: invalid value for %s", prop_key[i]);
            ok = false;
        }
    }
    if (ok)
        ok = set(conf, "bootstrap.servers", bootstrap);
    if (ok && type == RD_KAFKA_PRODUCER)
        ok = set(conf, "enable.idempotence", "true") && set(conf, "acks", "all");
    if (ok && type == RD_KAFKA_CONSUMER)
        ok = set(conf, "group.id", group_name) && set(conf, "enable.auto.commit", "false") &&
             set(conf, "enable.auto.offset.store", "false");
    if (!ok) {
        if (why[0] == '\0')
            snprintf(why, whycap, "a client property was refused");
        rdk.rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rdk.rd_kafka_conf_set_opaque(conf, c);
    rdk.rd_kafka_conf_set_error_cb(conf, on_error);
    rdk.rd_kafka_conf_set_log_cb(conf, on_log);
    rdk.rd_kafka_conf_set_stats_cb(conf, on_stats);
    return conf;
}

/* conf is consumed either way. NULL on failure (logged). */
static rd_kafka_t *open_client(struct kclient *c, rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char err[512];
    c->fatal = false;
    c->rk = rdk.rd_kafka_new(type, conf, err, sizeof(err));
    if (c->rk == NULL) {
        rdk.rd_kafka_conf_destroy(conf);
        souk_error("kafka: cannot create a client", "{s:s,s:s}", "role", c->role, "error", err);
    }
    return c->rk;
}

static int64_t recreate_delay(int n)
{
    int64_t d = RECREATE_MIN;
    for (int i = 1; i < n && d < RECREATE_MAX; i++)
        d *= 2;
    return d > RECREATE_MAX ? RECREATE_MAX : d;
}

/* ---- the relay: outbox → souk.<service>, marked sent on delivery reports ---- */

struct pending { /* one row in librdkafka's hands; the message's opaque */
    int64_t seq;
    char type[SOUK__EV_TYPE_MAX + 1];
    struct pending *next;
};

struct relay {
    int64_t next_after;   /* the highest seq handed to librdkafka */
    size_t outstanding;   /* handed and not yet reported */
    bool resend;          /* a report failed: start again at the first unsent row */
    struct pending *done; /* delivered, to be marked sent */
    unsigned failures_logged;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    SOUK_UNUSED(rk);
    struct relay *r = ((struct kclient *)opaque)->relay;
    struct pending *p = m->_private;
    r->outstanding--;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        p->next = r->done;
        r->done = p;
        return;
    }
    /* a stop purges what is still queued: not a failure, the row just stays unsent */
    if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE && m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) {
        souk_metric_inc(m_failed, p->type);
        if (r->failures_logged++ % LOG_EVERY == 0)
            souk_warn("kafka: delivery failed; the event is sent again", "{s:s,s:I,s:s}", "type",
                      p->type, "seq", (json_int_t)p->seq, "error", rdk.rd_kafka_err2name(m->err));
    }
    r->resend = true;
    free(p);
}

/* Mark the delivered rows sent in one transaction. On failure they are sent again
 * (the consumers' inboxes drop the copies). */
static void mark_done(struct souk_db *db, struct relay *r)
{
    struct pending *list = r->done;
    r->done = NULL;
    if (list == NULL)
        return;
    int64_t now = souk_wall_ms();
    bool ok = souk_db_begin(db) == 0;
    if (ok) {
        for (struct pending *p = list; ok && p != NULL; p = p->next)
            ok = souk_db_run(db, "UPDATE souk_outbox SET sent_ms = ? WHERE seq = ?", "ii", now,
                             p->seq) >= 0;
        if (ok)
            ok = souk_db_commit(db) == 0;
        else
            souk_db_rollback(db);
    }
    if (!ok) {
        souk_warn("kafka: cannot mark delivered events sent; they go out again", NULL);
        r->resend = true;
    }
    while (list != NULL) {
        struct pending *p = list;
        list = p->next;
        if (ok)
            souk__ev_count_published(p->type);
        free(p);
    }
}

/* Hand the next unsent rows (seq > next_after) to librdkafka. Returns how many. */
static size_t produce_rows(rd_kafka_t *rk, struct souk_db *db, struct relay *r)
{
    int64_t room = INFLIGHT_MAX - (int64_t)r->outstanding;
    if (room > souk__ev.batch)
        room = souk__ev.batch;
    /* one replica relays at a time: the others would produce the same rows (the inboxes
     * drop copies, but the brokers and the consumers would do the work) */
    if (room <= 0 || r->resend || !souk__ev_lease(db, "relay"))
        return 0;
    size_t n = 0;
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT seq, type, subject, envelope FROM souk_outbox"
                                         " WHERE sent_ms IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                                         "ii", r->next_after, room);
    while (st != NULL && souk_stmt_step(st) == SOUK_ROW) {
        struct pending *p = souk_xcalloc(1, sizeof(*p));
        p->seq = souk_stmt_int(st, 0);
        snprintf(p->type, sizeof(p->type), "%s", souk_stmt_text(st, 1));
        const char *subject = souk_stmt_text(st, 2);
        const char *env = souk_stmt_text(st, 3);
        size_t key_len = subject != NULL ? strlen(subject) : 0; /* no subject: no key */
        rd_kafka_resp_err_t err = rdk.rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic_name), RD_KAFKA_V_KEY(subject, key_len),
            RD_KAFKA_V_VALUE((void *)env, strlen(env)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("content-type", CONTENT_TYPE, -1), RD_KAFKA_V_OPAQUE(p),
            RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            /* a full queue or a fatal error: this row waits for the next turn */
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                souk_warn("kafka: cannot hand an event to the producer", "{s:s}", "error",
                          rdk.rd_kafka_err2name(err));
            free(p);
            break;
        }
        souk_metric_inc(m_sent, p->type);
        r->next_after = p->seq;
        r->outstanding++;
        n++;
    }
    if (st != NULL)
        souk_stmt_done(st);
    return n;
}

/* Relay until the service stops (true) or the client is beyond repair (false). */
static bool relay_loop(struct kclient *c, struct souk_db *db, struct relay *r)
{
    int resends = 0;
    while (!souk__ev_stopping() && !c->fatal) {
        size_t n = produce_rows(c->rk, db, r);
        /* reports come within a round trip; while none come (brokers away), look for
         * new rows no more often than when idle */
        rdk.rd_kafka_poll(c->rk, r->outstanding == 0 ? 0 : n > 0 ? DR_POLL_MS : IDLE_MS);
        mark_done(db, r);
        if (r->resend && r->outstanding == 0) {
            /* everything reported: go again from the first row still unsent, in order */
            if (!souk__ev_sleep(souk__ev_backoff(++resends)))
                break;
            r->next_after = 0;
            r->resend = false;
            continue;
        }
        if (!r->resend && r->outstanding == 0)
            resends = 0;
        if (n == 0 && r->outstanding == 0) {
            souk__ev_wait_nudge(IDLE_MS);
            rdk.rd_kafka_poll(c->rk, 0); /* statistics and errors while idle */
        }
    }
    return !c->fatal;
}

static void relay_close(struct kclient *c, struct souk_db *db, struct relay *r)
{
    if (!c->fatal) {
        rdk.rd_kafka_flush(c->rk, STOP_FLUSH_MS);
        mark_done(db, r);
    }
    /* what is left stays unsent in the outbox and goes out after the restart */
    rdk.rd_kafka_purge(c->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rdk.rd_kafka_poll(c->rk, 0); /* the purged reports free their rows' bookkeeping */
    mark_done(db, r);
    rdk.rd_kafka_destroy(c->rk);
    c->rk = NULL;
    r->outstanding = 0;
    r->next_after = 0;
    r->resend = false;
    souk_metric_set(m_brokers, 0, c->role);
}

static void *relay_main(void *arg)
{
    SOUK_UNUSED(arg);
    struct souk_db *db = souk_db_thread();
    struct relay r = {0};
    struct kclient c = {.role = "relay", .relay = &r};
    int failures = 0;
    while (db != NULL && !souk__ev_stopping()) {
        char why[256] = "";
        rd_kafka_conf_t *conf = make_conf(&c, RD_KAFKA_PRODUCER, why, sizeof(why));
        if (conf != NULL) {
            rdk.rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
            if (open_client(&c, RD_KAFKA_PRODUCER, conf) != NULL) {
                failures = 0;
                bool fine = relay_loop(&c, db, &r);
                relay_close(&c, db, &r);
                if (fine)
                    break;
            }
        }
        if (!souk__ev_sleep(recreate_delay(++failures)))
            break;
    }
    return NULL;
}

/* ---- the consumer: souk.<producer> topics → souk__ev_deliver ---- */

/* A partition held back by a failing record: paused, its position set back to the
 * record, resumed when the backoff is over. The attempt count lives on until that
 * record is done, so the backoff grows. */
struct held {
    char topic[NAME_LEN];
    int32_t partition;
    int64_t offset;
    int attempt;
    uint64_t until_ns; /* 0: resumed, waiting for the record to come back */
};

struct consumer {
    struct kclient c;
    struct kclient dlq; /* made on the first dead letter */
    struct held held[HELD_MAX];
    size_t nheld;
};

static struct held *find_held(struct consumer *k, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < k->nheld; i++)
        if (k->held[i].partition == partition && strcmp(k->held[i].topic, topic) == 0)
            return &k->held[i];
    return NULL;
}

static void drop_held(struct consumer *k, struct held *h) { *h = k->held[--k->nheld]; }

static rd_kafka_topic_partition_list_t *one_partition(const char *topic, int32_t partition,
                                                      int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rdk.rd_kafka_topic_partition_list_new(1);
    rdk.rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    return l;
}

/* Resume the partitions whose backoff is over. */
static void resume_due(struct consumer *k)
{
    uint64_t now = souk_now_ns();
    for (size_t i = 0; i < k->nheld; i++) {
        struct held *h = &k->held[i];
        if (h->until_ns == 0 || h->until_ns > now)
            continue;
        rd_kafka_topic_partition_list_t *l = one_partition(h->topic, h->partition, h->offset);
        rdk.rd_kafka_resume_partitions(k->c.rk, l);
        rdk.rd_kafka_topic_partition_list_destroy(l);
        h->until_ns = 0;
    }
}

/* Hold the record's partition back: pause first (that purges what was prefetched),
 * then seek back to the record, so it is the next one read after the resume. Returns
 * false when the hold could not be set up (the caller goes on; librdkafka's position
 * is then unknown, so the record would be skipped: the client is remade instead). */
static bool hold(struct consumer *k, const rd_kafka_message_t *m, const char *topic)
{
    struct held *h = find_held(k, topic, m->partition);
    if (h != NULL && h->offset != m->offset) {
        h->attempt = 0;
        h->offset = m->offset;
    }
    if (h == NULL) {
        if (k->nheld == HELD_MAX) {
            souk_error("kafka: too many partitions held back at once", NULL);
            return false;
        }
        h = &k->held[k->nheld++];
        snprintf(h->topic, sizeof(h->topic), "%s", topic);
        h->partition = m->partition;
        h->offset = m->offset;
        h->attempt = 0;
    }
    h->until_ns = souk_now_ns() + (uint64_t)souk__ev_backoff(++h->attempt) * 1000000u;
    rd_kafka_topic_partition_list_t *l = one_partition(topic, m->partition, m->offset);
    rdk.rd_kafka_pause_partitions(k->c.rk, l);
    rd_kafka_error_t *err = rdk.rd_kafka_seek_partitions(k->c.rk, l, SEEK_MS);
    bool ok = err == NULL && l->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!ok)
        souk_warn("kafka: cannot hold a partition back", "{s:s,s:i,s:s}", "topic", topic,
                  "partition", (int)m->partition, "error",
                  err != NULL ? rdk.rd_kafka_error_string(err)
                              : rdk.rd_kafka_err2name(l->elems[0].err));
    if (err != NULL)
        rdk.rd_kafka_error_destroy(err);
    rdk.rd_kafka_topic_partition_list_destroy(l);
    souk_metric_inc(m_retried, topic);
    return ok;
}

/* The record is done with (handled, a duplicate, or dead-lettered): store its offset
 * and commit it (asynchronously: a lost commit only means a copy the inbox drops). */
static void commit(struct consumer *k, const rd_kafka_message_t *m, const char *topic)
{
    struct held *h = find_held(k, topic, m->partition);
    if (h != NULL)
        drop_held(k, h);
    rd_kafka_topic_partition_list_t *l = one_partition(topic, m->partition, m->offset + 1);
    rdk.rd_kafka_offsets_store(k->c.rk, l);
    rdk.rd_kafka_commit(k->c.rk, l, 1);
    rdk.rd_kafka_topic_partition_list_destroy(l);
}

static void on_dlq_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    SOUK_UNUSED(rk);
    SOUK_UNUSED(opaque);
    *(int *)m->_private = m->err == RD_KAFKA_RESP_ERR_NO_ERROR ? 1 : -1;
}

/* Write the record to souk.<service>.dlq (its key, value and headers, plus where it
 * came from) and wait for the broker to have it. An oversized record goes without its
 * value: the pointer to it is in the headers. Returns true once delivered. */
static bool dead_letter(struct consumer *k, const rd_kafka_message_t *m, const char *topic,
                        const char *reason)
{
    char why[256] = "", num[32];
    if (k->dlq.rk == NULL) {
        rd_kafka_conf_t *conf = make_conf(&k->dlq, RD_KAFKA_PRODUCER, why, sizeof(why));
        if (conf == NULL)
            return false;
        rdk.rd_kafka_conf_set_dr_msg_cb(conf, on_dlq_delivery);
        if (open_client(&k->dlq, RD_KAFKA_PRODUCER, conf) == NULL)
            return false;
    }
    rd_kafka_headers_t *src = NULL, *hdrs;
    if (rdk.rd_kafka_message_headers(m, &src) == RD_KAFKA_RESP_ERR_NO_ERROR)
        hdrs = rdk.rd_kafka_headers_copy(src);
    else
        hdrs = rdk.rd_kafka_headers_new(5);
    rdk.rd_kafka_header_add(hdrs, "souk.dlq.topic", -1, topic, -1);
    snprintf(num, sizeof(num), "%d", (int)m->partition);
    rdk.rd_kafka_header_add(hdrs, "souk.dlq.partition", -1, num, -1);
    snprintf(num, sizeof(num), "%lld", (long long)m->offset);
    rdk.rd_kafka_header_add(hdrs, "souk.dlq.offset", -1, num, -1);
    rdk.rd_kafka_header_add(hdrs, "souk.dlq.group", -1, group_name, -1);
    rdk.rd_kafka_header_add(hdrs, "souk.dlq.reason", -1, reason, -1);
    bool oversized = m->len > BODY_MAX;
    int result = 0;
    rd_kafka_resp_err_t err = rdk.rd_kafka_producev(
        k->dlq.rk, RD_KAFKA_V_TOPIC(dlq_name), RD_KAFKA_V_KEY(m->key, m->key_len),
        RD_KAFKA_V_VALUE(oversized ? NULL : m->payload, oversized ? 0 : m->len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_OPAQUE(&result), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rdk.rd_kafka_headers_destroy(hdrs); /* ours again when producev fails */
        souk_warn("kafka: cannot write a dead letter", "{s:s}", "error",
                  rdk.rd_kafka_err2name(err));
        return false;
    }
    uint64_t deadline = souk_now_ns() + (uint64_t)DLQ_WAIT_MS * 1000000u;
    while (result == 0 && souk_now_ns() < deadline && !souk__ev_stopping())
        rdk.rd_kafka_poll(k->dlq.rk, 100);
    if (result == 0) {
        /* the report must not land on a stack frame that is gone */
        rdk.rd_kafka_purge(k->dlq.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rdk.rd_kafka_poll(k->dlq.rk, 0);
        rdk.rd_kafka_flush(k->dlq.rk, 1000);
    }
    if (result != 1 || k->dlq.fatal) {
        souk_warn("kafka: a dead letter was not delivered; the record is read again", "{s:s,s:i}",
                  "topic", topic, "partition", (int)m->partition);
        if (k->dlq.fatal || result == 0) {
            rdk.rd_kafka_destroy(k->dlq.rk);
            k->dlq.rk = NULL;
        }
        return false;
    }
    souk_metric_inc(m_dead, topic);
    return true;
}

/* One record: deliver it, then commit, dead-letter or hold its partition back.
 * Returns false when the client must be remade. */
static bool handle(struct consumer *k, struct souk_db *db, const rd_kafka_message_t *m)
{
    const char *topic = rdk.rd_kafka_topic_name(m->rkt);
    const char *producer = topic + strlen(TOPIC_PREFIX);
    struct held *h = find_held(k, topic, m->partition);
    if (h != NULL && h->until_ns != 0)
        return true; /* prefetched before the pause: it comes again after the resume */
    if (h != NULL && m->offset != h->offset) {
        /* resumed, and not at the held record: never go past it (librdkafka drops
         * what was fetched before a seek, so this is a guard, not a path) */
        souk_warn("kafka: a held partition resumed elsewhere; seeking back", "{s:s,s:i,s:I,s:I}",
                  "topic", topic, "partition", (int)m->partition, "at", (json_int_t)m->offset,
                  "held", (json_int_t)h->offset);
        rd_kafka_topic_partition_list_t *l = one_partition(topic, m->partition, h->offset);
        rd_kafka_error_t *err = rdk.rd_kafka_seek_partitions(k->c.rk, l, SEEK_MS);
        bool ok = err == NULL && l->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR;
        if (err != NULL)
            rdk.rd_kafka_error_destroy(err);
        rdk.rd_kafka_topic_partition_list_destroy(l);
        return ok;
    }
    enum souk__outcome o = SOUK__EV_DEAD;
    const char *reason = "handler failed, or the envelope is malformed";
    if (m->len > BODY_MAX) {
        souk_error("kafka: record over the size cap, dead-lettered unread", "{s:s,s:I}", "topic",
                   topic, "bytes", (json_int_t)m->len);
        reason = "over the size cap";
    } else {
        /* the payload is not NUL-terminated; the delivery keeps it as text */
        char *text = souk_xmalloc(m->len + 1);
        if (m->len > 0)
            memcpy(text, m->payload, m->len);
        text[m->len] = '\0';
        o = souk__ev_deliver(db, producer, -1, text, m->len);
        free(text);
    }
    switch (o) {
    case SOUK__EV_DONE: /* committed (or a duplicate): only now may the group move on */
        commit(k, m, topic);
        return true;
    case SOUK__EV_DEAD:
        if (dead_letter(k, m, topic, reason)) {
            commit(k, m, topic);
            return true;
        }
        return hold(k, m, topic); /* read again later: dead again, and written then */
    default: /* transient, or failed fewer than max attempts: again, after a pause */
        return hold(k, m, topic);
    }
}

static void destroy_error(rd_kafka_error_t *e)
{
    if (e != NULL) {
        souk_warn("kafka: incremental rebalance step failed", "{s:s}", "error",
                  rdk.rd_kafka_error_string(e));
        rdk.rd_kafka_error_destroy(e);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct consumer *k = opaque;
    bool cooperative = strcmp(rdk.rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        souk_metric_add(m_rebalances, parts->cnt, "assigned");
        souk_info("kafka: partitions assigned", "{s:i}", "partitions", parts->cnt);
        if (cooperative)
            destroy_error(rdk.rd_kafka_incremental_assign(rk, parts));
        else
            rdk.rd_kafka_assign(rk, parts);
        return;
    }
    /* Revoked (or lost). This runs inside consumer_poll, on the one thread that also
     * handles records, so no record is between its inbox commit and its offset: every
     * finished record's offset is stored. Commit them now, while the partitions are
     * still ours; a record held back for a retry has no stored offset and is read
     * again by whoever gets the partition (its inbox row, if any, drops the copy). */
    souk_metric_add(m_rebalances, parts->cnt, "revoked");
    if (!rdk.rd_kafka_assignment_lost(rk))
        rdk.rd_kafka_commit(rk, NULL, 0);
    for (int i = 0; i < parts->cnt; i++) {
        struct held *h = find_held(k, parts->elems[i].topic, parts->elems[i].partition);
        if (h != NULL) {
            rd_kafka_topic_partition_list_t *l = one_partition(h->topic, h->partition, h->offset);
            rdk.rd_kafka_resume_partitions(rk, l); /* no pause outlives the assignment */
            rdk.rd_kafka_topic_partition_list_destroy(l);
            drop_held(k, h);
        }
    }
    if (cooperative)
        destroy_error(rdk.rd_kafka_incremental_unassign(rk, parts));
    else
        rdk.rd_kafka_assign(rk, NULL);
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    SOUK_UNUSED(rk);
    SOUK_UNUSED(offsets);
    struct consumer *k = opaque;
    /* a lost commit costs a redelivery the inbox drops, nothing more */
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET &&
        k->c.errors++ % LOG_EVERY == 0)
        souk_warn("kafka: offset commit failed", "{s:s}", "error", rdk.rd_kafka_err2name(err));
}

static bool consume_loop(struct consumer *k, struct souk_db *db)
{
    while (!souk__ev_stopping() && !k->c.fatal) {
        resume_due(k);
        rd_kafka_message_t *m = rdk.rd_kafka_consumer_poll(k->c.rk, CONSUME_MS);
        if (m == NULL)
            continue;
        bool fine = true;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            fine = handle(k, db, m);
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && k->c.errors++ % LOG_EVERY == 0)
            souk_warn("kafka: consumer error (librdkafka retries)", "{s:s,s:s}", "error",
                      rdk.rd_kafka_err2name(m->err), "text", rdk.rd_kafka_message_errstr(m));
        rdk.rd_kafka_message_destroy(m);
        if (!fine)
            return false;
    }
    return !k->c.fatal;
}

_Static_assert(offsetof(struct consumer, c) == 0, "callbacks cast the opaque both ways");
static struct consumer consumer;

static void *consume_main(void *arg)
{
    rd_kafka_topic_partition_list_t *topics = arg;
    struct souk_db *db = souk_db_thread();
    struct consumer *k = &consumer;
    int failures = 0;
    *k = (struct consumer){.c = {.role = "consumer"}, .dlq = {.role = "dlq"}};
    while (db != NULL && !souk__ev_stopping()) {
        char why[256] = "";
        rd_kafka_conf_t *conf = make_conf(&k->c, RD_KAFKA_CONSUMER, why, sizeof(why));
        if (conf != NULL) {
            /* the callbacks' opaque is &k->c, which is k: the rebalance one reads it whole */
            rdk.rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
            rdk.rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
            if (open_client(&k->c, RD_KAFKA_CONSUMER, conf) != NULL) {
                rdk.rd_kafka_poll_set_consumer(k->c.rk);
                rd_kafka_resp_err_t err = rdk.rd_kafka_subscribe(k->c.rk, topics);
                bool fine = false;
                if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                    souk_error("kafka: cannot subscribe", "{s:s}", "error",
                               rdk.rd_kafka_err2name(err));
                } else {
                    souk_info("kafka: consuming", "{s:s,s:i}", "group", group_name, "topics",
                              topics->cnt);
                    failures = 0;
                    fine = consume_loop(k, db);
                }
                /* leaves the group: the revoke above commits what is finished */
                rdk.rd_kafka_consumer_close(k->c.rk);
                rdk.rd_kafka_destroy(k->c.rk);
                k->c.rk = NULL;
                k->nheld = 0;
                souk_metric_set(m_brokers, 0, k->c.role);
                if (fine)
                    break;
            }
        }
        if (!souk__ev_sleep(recreate_delay(++failures)))
            break;
    }
    if (k->dlq.rk != NULL) {
        rdk.rd_kafka_flush(k->dlq.rk, STOP_FLUSH_MS);
        rdk.rd_kafka_destroy(k->dlq.rk);
        k->dlq.rk = NULL;
    }
    rdk.rd_kafka_topic_partition_list_destroy(topics);
    return NULL;
}

/* ---- life cycle ---- */

int souk__kafka_load(char *why, size_t whycap) { return souk__dl_load(&rdk_lib, why, whycap); }

int souk__kafka_start(void)
{
    const struct souk_service *svc = souk__ev_svc;
    char why[320] = "";
    rd_kafka_topic_partition_list_t *topics = NULL;
    pthread_once(&metrics_once, metrics_register);
    free_props();
    if (souk__kafka_parse_url(souk__ev.transport, bootstrap, sizeof(bootstrap), why, sizeof(why)) !=
        0) {
        souk_error("SOUK_EVENTS is not a kafka://host:port[,host:port…] URL", "{s:s}", "why", why);
        goto fail;
    }
    if (souk__ev.kafka_config[0] != '\0' &&
        load_props(souk__ev.kafka_config, why, sizeof(why)) != 0)
        goto bad_props;
    snprintf(topic_name, sizeof(topic_name), TOPIC_PREFIX "%s", svc->name);
    snprintf(group_name, sizeof(group_name), TOPIC_PREFIX "%s", svc->name);
    snprintf(dlq_name, sizeof(dlq_name), TOPIC_PREFIX "%s" DLQ_SUFFIX, svc->name);
    bool consumes = svc->subscriptions != NULL && svc->subscriptions->type != NULL;
    if (!svc->publishes && !consumes)
        goto done; /* no events here: the URL is checked, nothing connects */
    /* try the properties on a client now: a typo stops the start, not a thread. (What
     * rd_kafka_new says names properties and values such as a SASL mechanism or a
     * file path; the secrets among the values are never checked there, so never said.) */
    struct kclient probe = {.role = "probe"};
    rd_kafka_conf_t *conf = make_conf(&probe, RD_KAFKA_CONSUMER, why, sizeof(why));
    if (conf == NULL)
        goto bad_props;
    char err[256];
    rd_kafka_t *rk = rdk.rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (rk == NULL) {
        rdk.rd_kafka_conf_destroy(conf);
        snprintf(why, sizeof(why), "librdkafka refused the configuration: %s", err);
        goto bad_props;
    }
    rdk.rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    topics = rdk.rd_kafka_topic_partition_list_new(4);
    for (const struct souk_subscription *s = svc->subscriptions; s != NULL && s->type != NULL;
         s++) {
        char t[NAME_LEN];
        if (s->producer == NULL || strlen(s->producer) >= 64) {
            souk_error("kafka: a subscription names no producer (its topic)", "{s:s}", "type",
                       s->type);
            goto fail;
        }
        snprintf(t, sizeof(t), TOPIC_PREFIX "%s", s->producer);
        if (rdk.rd_kafka_topic_partition_list_find(topics, t, RD_KAFKA_PARTITION_UA) == NULL)
            rdk.rd_kafka_topic_partition_list_add(topics, t, RD_KAFKA_PARTITION_UA);
    }
    if (svc->publishes && souk__ev_spawn(relay_main, NULL) != 0)
        goto fail;
    if (consumes) {
        if (souk__ev_spawn(consume_main, topics) != 0)
            goto fail;
        topics = NULL; /* the consumer thread owns it */
    }
    if (topics != NULL)
        rdk.rd_kafka_topic_partition_list_destroy(topics);
done:
    souk_info("kafka: events transport", "{s:s,s:s,s:b,s:b,s:s}", "brokers", bootstrap, "topic",
              topic_name, "publishes", svc->publishes, "consumes", consumes, "librdkafka",
              rdk.rd_kafka_version_str());
    return 0;
bad_props:
    souk_error("SOUK_EVENTS_KAFKA_CONFIG is not usable", "{s:s}", "why", why);
fail:
    if (topics != NULL)
        rdk.rd_kafka_topic_partition_list_destroy(topics);
    free_props();
    return SOUK_EINVAL;
}

void souk__kafka_stop(void)
{
    /* the threads see the stop within CONSUME_MS / IDLE_MS, flush or leave the group
     * and close their clients; souk__events_stop joins them */
}

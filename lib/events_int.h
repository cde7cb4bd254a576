/* events_int.h: what the events modules share (events.c: envelope, outbox,
 * inbox and delivery; events_feed.c: the HTTP feed and its consumers;
 * events_amqp.c: the RabbitMQ relay and consumers; events_kafka.c: the Kafka
 * relay and consumers). Not a public contract. */
#ifndef SOUK_EVENTS_INT_H
#define SOUK_EVENTS_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "souk/events.h"
#include "souk/server.h"

#define SOUK__EV_TYPE_MAX 64 /* "order.confirmed" */
#define SOUK__EV_ID_MAX   64
#define SOUK__EV_PREFIX   "souk."     /* envelope types are "souk.<type>" */
#define SOUK__EV_SOURCE   "urn:souk:" /* envelope sources are "urn:souk:<service>" */

struct souk__ev_conf {
    const char *transport; /* "feed", an amqp:// or a kafka:// URL */
    bool amqp, kafka;
    bool broker;              /* amqp or kafka: outbox rows are relayed, sent_ms marks them */
    const char *kafka_config; /* a librdkafka properties file, or "" */
    int64_t retention_s;      /* outbox (and inbox) rows kept this long */
    int64_t wait_s;           /* long-poll wait a feed consumer asks for */
    int64_t max_attempts;     /* permanent failures before dead-lettering */
    int64_t retry_ms;         /* first retry delay; doubles up to retry_max_ms */
    int64_t retry_max_ms;
    int64_t batch; /* events per feed page / relay round */
};

extern struct souk__ev_conf souk__ev;
extern const struct souk_service *souk__ev_svc;

/* What became of one delivered event. */
enum souk__outcome {
    SOUK__EV_DONE,   /* effect committed, or a duplicate / unwanted: advance or ack */
    SOUK__EV_RETRY,  /* transient: try the same event again later */
    SOUK__EV_FAILED, /* the handler failed; retried until max_attempts */
    SOUK__EV_DEAD,   /* failed max_attempts times (or malformed): dead-letter it */
};

/* The life cycle, for the service main: create the outbox/inbox tables (and load
 * the events configuration), give the feed route when the service publishes, and
 * start/stop the relay and consumers. */
int souk__events_init(const struct souk_service *svc, struct souk_db *db);
/* The configuration part of souk__events_init alone (SOUK_EVENTS… read and checked, the
 * broker's library loaded): 0, or SOUK_EINVAL after a message on stderr. */
int souk__events_configure(const struct souk_service *svc);
/* The events configuration as svc would load it, for `<service> --help`. */
void souk__events_print_config(FILE *out, const struct souk_service *svc);
/* The variable naming a producer's feed: "orders" → "SOUK_ORDERS_URL". */
void souk__ev_producer_var(const char *producer, char *name, size_t cap);
const struct souk_route *souk__events_routes(void); /* NULL-ended, may be empty */
int souk__events_start(void);
void souk__events_stop(void);

/* Deliver one envelope (JSON text) to the matching subscription, exactly once: the
 * inbox row, the handler's effect and (feed: seq >= 0) the cursor for producer
 * commit together. In feed mode a dead event is recorded in souk_dead_letters and
 * the cursor moves past it (the outcome is then DEAD, the caller just goes on). */
enum souk__outcome souk__ev_deliver(struct souk_db *db, const char *producer, int64_t seq,
                                    const char *text, size_t len);

/* One event of a feed page: its seq and its envelope's JSON text. */
struct souk__ev_item {
    int64_t seq;
    const char *text;
    size_t len;
};
#define SOUK__EV_BATCH_MAX 32 /* events per delivery transaction */

/* Deliver the first n events of a feed page (at most SOUK__EV_BATCH_MAX) in one
 * transaction, in order, each exactly as souk__ev_deliver would (inbox, handler,
 * consumed metric, consumer span), the cursor moved once to the last: one write
 * transaction a page instead of one an event. Returns how many were delivered: n,
 * or 0 when one of them could not be (a malformed envelope, a handler's failure, a
 * database error): then nothing of the batch was kept and the caller delivers them
 * with souk__ev_deliver, which records what failed. */
size_t souk__ev_deliver_batch(struct souk_db *db, const char *producer,
                              const struct souk__ev_item *items, size_t n);

/* Check a CloudEvents envelope (specversion 1.0, id, type "souk.<name>", source
 * "urn:souk:<service>", time, subject, object data) and point ev into it (type and
 * source are copied into the buffers given). Returns NULL when it is good, else
 * what is wrong. The libFuzzer driver tests/fuzz/envelope.c drives it. */
const char *souk__ev_parse_envelope(json_t *env, struct souk_event *ev,
                                    char type[SOUK__EV_TYPE_MAX + 1], char source[64]);

/* Sleep up to ms, waking early when the events machinery stops. Returns false
 * when stopping. */
bool souk__ev_sleep(int64_t ms);
bool souk__ev_stopping(void);
int64_t souk__ev_backoff(int attempt); /* jittered delay for the n-th retry (1-based) */

/* Leases (souk_leases): work one replica of a service does at a time (the relay,
 * following a producer's feed). souk__ev_lease takes the named lease, or keeps it
 * when this process holds it; true while held. The waiter thread renews what this
 * process holds every second; a holder that dies loses its leases after 5 s, one
 * that stops releases them at once. */
bool souk__ev_lease(struct souk_db *db, const char *name);
void souk__ev_lease_renew(struct souk_db *db);
void souk__ev_lease_release_all(struct souk_db *db);

/* Wake whoever waits for new outbox rows (feed long polls, the amqp relay). */
void souk__ev_nudge(void);
/* Wait until nudged or ms passed. */
void souk__ev_wait_nudge(int64_t ms);

/* The feed: route, long-poll waiter and pruner, consumers. */
extern const struct souk_route souk__feed_routes[];
int souk__feed_start(void);
void souk__feed_stop(void);
void souk__ev_prune(struct souk_db *db);

/* RabbitMQ. souk__amqp_load opens librabbitmq (dl_int.h), once, before the start:
 * 0, or SOUK_ENOTFOUND with why naming the library and what failed. */
int souk__amqp_load(char *why, size_t whycap);
int souk__amqp_start(void);
void souk__amqp_stop(void);

/* Kafka. The URL parser is separate for the unit tests: "kafka://h:p[,h:p…]" into
 * librdkafka's "h:p,h:p"; 0, or SOUK_EINVAL with why (which never quotes the URL). */
int souk__kafka_load(char *why, size_t whycap); /* librdkafka, as souk__amqp_load */
int souk__kafka_start(void);
void souk__kafka_stop(void);
int souk__kafka_parse_url(const char *url, char *out, size_t cap, char *why, size_t whycap);

/* Thread bookkeeping shared by the transports. */
int souk__ev_spawn(void *(*fn)(void *), void *arg);
void souk__ev_join_all(int64_t ms);

/* Metrics. */
void souk__ev_count_consumed(const char *type, const char *outcome);
void souk__ev_count_expired(const char *producer);
void souk__ev_count_published(const char *type);

#endif

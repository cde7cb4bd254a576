/* events.h: domain events between services (DESIGN §6). A producer writes events
 * to its outbox in the same transaction as the change; consumers register a
 * handler per event type and get each event's effect exactly once (the inbox
 * records the event id in the handler's transaction). CloudEvents 1.0 envelope;
 * transport "feed" (HTTP long poll, default) or "amqp" (RabbitMQ). */
#ifndef SOUK_EVENTS_H
#define SOUK_EVENTS_H

#include <jansson.h>

#include "souk/db.h"

struct souk_event {
    const char *id;      /* evt_… */
    const char *type;    /* "order.confirmed" (the envelope says "souk.order.confirmed") */
    const char *source;  /* producing service, "orders" */
    const char *subject; /* the entity id, "ord_…" */
    const char *time;    /* RFC 3339 */
    json_t *data;        /* borrowed */
};

/* Write an event into the outbox. Must be called inside the caller's open
 * transaction on db, so it commits or rolls back with the change. data is stolen.
 * Returns 0 or a negative code. */
int souk_event_emit(struct souk_db *db, const char *type, const char *subject, json_t *data);

/* A consumer's handler. It runs inside a transaction on db that also records the
 * event as seen: return 0 to commit; SOUK_EBUSY/SOUK_EIO/SOUK_EUNAVAIL to retry
 * later (rolled back); any other negative code for a permanent failure (rolled back,
 * retried up to a limit, then dead-lettered). */
typedef int (*souk_event_fn)(struct souk_db *db, const struct souk_event *ev);

struct souk_subscription {
    const char *producer; /* "users": whose feed (SOUK_USERS_URL) or which source */
    const char *type;     /* "user.registered"; NULL ends the table */
    souk_event_fn fn;
};

#endif

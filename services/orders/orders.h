/* orders.h: what the orders service's files share: configuration, the saga's
 * state machine (machine.c, pure and unit-tested), the saga engine (saga.c), the
 * bounded wait of a suspended request (wait.c) and the handlers (api.c). */
#ifndef ORDERS_H
#define ORDERS_H

#include <stdbool.h>
#include <stdint.h>

#include "souk/events.h"
#include "souk/metrics.h"
#include "souk/server.h"

/* ---- configuration (main.c) ---- */
extern const char *orders_catalog_url, *orders_payments_url, *orders_cart_url, *orders_users_url;
/* SOUK_<PEER>_GRPC_URL: "" or a grpc:// list; orders_peer() picks what a call uses */
extern const char *orders_catalog_rpc, *orders_payments_rpc, *orders_cart_rpc, *orders_users_rpc;
/* Where a call to a peer goes: its gRPC list when one is set, else its URL (REST,
 * or gRPC when it is a grpc:// list itself). */
static inline const char *orders_peer(const char *rpc, const char *url)
{
    return rpc[0] != '\0' ? rpc : url;
}
extern int64_t orders_wait_ms;         /* bounded wait of POST /orders and cancel */
extern int64_t orders_workers;         /* saga worker threads */
extern int64_t orders_reservation_ttl; /* seconds a reservation holds stock */
extern int64_t orders_call_timeout_ms; /* one call to a peer */

/* Shipping: a flat rule (README "Totals"): free from $50 of goods, else $4.99. */
#define SHIPPING_FREE_FROM_CENTS 5000
#define SHIPPING_FLAT_CENTS      499
int64_t orders_shipping_cents(int64_t subtotal_cents);

/* ---- the saga's state machine (machine.c) ---- */

enum saga_step {
    STEP_RESERVE,   /* catalog: hold the stock (reservation id = order id) */
    STEP_AUTHORIZE, /* payments: authorize the total */
    STEP_COMMIT,    /* catalog: take the held stock */
    STEP_CAPTURE,   /* payments: capture; then confirmed */
    STEP_RELEASE,   /* compensation: give the held stock back; then rejected */
    STEP_VOID,      /* compensation: void the authorization; then release */
    STEP_REFUND,    /* cancellation of a confirmed order: refund; then cancelled */
    STEP_DONE,
    STEP_COUNT
};

const char *saga_step_name(enum saga_step s);
int saga_step_parse(const char *name); /* the step, or -1 */

/* What a peer answered: rc from souk_client_do (0 when an HTTP answer came), the
 * HTTP status, the problem "code" (or NULL) and, for payments, the payment
 * "status" (authorized/declined) or NULL. */
struct saga_answer {
    int rc;
    int http;
    const char *code;
    const char *pay_status;
};

/* The decision after a step. */
struct saga_move {
    bool retry;           /* transient: run the same step again after a backoff */
    enum saga_step next;  /* the step to persist */
    const char *status;   /* the order's new status, or NULL to keep it */
    const char *reason;   /* the reason to record with it, or NULL */
    bool stock_committed; /* the commit step succeeded */
};

/* Decide what follows step given the answer. reason is the reason already
 * recorded for a compensation in progress (release after a decline…). Pure. */
void saga_decide(enum saga_step step, const struct saga_answer *a, const char *reason,
                 struct saga_move *m);
/* Is the answer a transient failure (no answer, 5xx, 408, 429, 401/403 from a token
 * being renewed, a key still in use)? */
bool saga_transient(const struct saga_answer *a);

/* ---- the saga engine (saga.c) ---- */

/* A saga is driven under a lease (orders.lease_owner, lease_until): one worker of one
 * replica at a time, renewed at every step; a dead replica's sagas are taken over by
 * the others' scanners once their lease runs out. */
#define SAGA_LEASE_MS 10000
/* The lease an order is written with when this replica is about to run its saga (a
 * new order, a cancellation): this replica's workers may claim it at once, other
 * replicas only after SAGA_LEASE_MS, so the request waiting here is answered by the
 * saga run here. */
const char *saga_handover(void);
int saga_start(void);
void saga_stop(void);
/* Ask a worker to run order id's saga now (a no-op if it is settled). */
void saga_kick(const char *order_id);
extern struct souk_metric *orders_transitions, *orders_step_seconds, *orders_by_status;

/* ---- the bounded wait (wait.c) ---- */

/* Suspend r until order id is settled (or orders_wait_ms passed): then reply with
 * the order, settled_status when settled, 202 when still pending. Returns
 * SOUK_SUSPEND for the handler to return. */
int wait_for_order(struct souk_req *r, const char *order_id, int settled_status);
/* The saga moved order id: wake its waiters whose answer is ready. */
void wait_notify(const char *order_id);
int wait_start(void);
void wait_stop(void);

/* ---- orders (api.c) ---- */

/* The order as the API shows it into *out: 0, or SOUK_ENOTFOUND when there is
 * none, or the database's error (SOUK_EUNAVAIL for no connection); *settled (may
 * be NULL) tells whether its saga has nothing left to run. */
int order_read(struct souk_db *db, const char *id, bool *settled, json_t **out);

int orders_create(struct souk_req *r);
int orders_list(struct souk_req *r);
int orders_get(struct souk_req *r);
int orders_cancel(struct souk_req *r);
int orders_ship(struct souk_req *r);

#endif

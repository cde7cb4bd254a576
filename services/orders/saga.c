/* saga.c: the checkout saga's engine (DESIGN §5). Worker threads run one order at a
 * time under a lease in the database (so two workers, or two replicas, never run
 * the same saga); each step is one idempotent call to a peer, and its outcome is
 * persisted with the next step in one transaction before the next call (but a
 * commit's, written with the capture's: run()). A scanner
 * resumes every unsettled order whose backoff has passed: at start, after a crash
 * (when the dead worker's lease runs out) and after transient failures. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orders.h"
#include "souk/backoff.h"
#include "souk/catalog/v1/catalog.pb-c.h"
#include "souk/client.h"
#include "souk/grpc.h"
#include "souk/id.h"
#include "souk/log.h"
#include "souk/payments/v1/payments.pb-c.h"
#include "souk/souk.h"
#include "souk/trace.h"

#define LEASE_MS          SAGA_LEASE_MS /* longer than one step's call; renewed by each step's commit */
#define SCAN_MS           200           /* how often due sagas are looked for */
#define STATS_EVERY_SCANS 10            /* orders_by_status refreshed every 2 s */
#define SCAN_BATCH        64
#define QUEUE_MAX         1024
#define STEPS_PER_RUN     16 /* a run ends after this many steps (there are at most 6) */
#define URL_MAX           512
#define KEY_MAX           96

/* a transient failure is retried after 50-100 ms, then twice that, up to 2.5-5 s */
static const struct souk_backoff saga_retry = {100, 5000};

struct souk_metric *orders_transitions, *orders_step_seconds, *orders_by_status;
static char handover[SOUK_ID_MAX + 8]; /* "new:ins_…": this replica's hand-over lease */

const char *saga_handover(void) { return handover; }

/* ---- the run queue: order ids, each at most once ---- */

static char queue[QUEUE_MAX][SOUK_ID_MAX];
static size_t q_head, q_len;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static bool stopping;
static pthread_t *workers, scanner;
static size_t nworkers;
static bool scanner_started;

void saga_kick(const char *order_id)
{
    pthread_mutex_lock(&q_lock);
    bool dup = false;
    for (size_t i = 0; i < q_len && !dup; i++)
        dup = strcmp(queue[(q_head + i) % QUEUE_MAX], order_id) == 0;
    if (!dup && q_len < QUEUE_MAX) { /* full: the scanner finds it again later */
        snprintf(queue[(q_head + q_len) % QUEUE_MAX], SOUK_ID_MAX, "%s", order_id);
        q_len++;
        pthread_cond_signal(&q_cond);
    }
    pthread_mutex_unlock(&q_lock);
}

static bool dequeue(char out[SOUK_ID_MAX])
{
    pthread_mutex_lock(&q_lock);
    while (q_len == 0 && !stopping)
        pthread_cond_wait(&q_cond, &q_lock);
    bool got = q_len > 0 && !stopping;
    if (got) {
        memcpy(out, queue[q_head], SOUK_ID_MAX);
        q_head = (q_head + 1) % QUEUE_MAX;
        q_len--;
    }
    pthread_mutex_unlock(&q_lock);
    return got;
}

/* ---- the orders this replica's workers run now, each at most once ---- */

/* One worker per order in this process, whatever lease the row carries: a run on
 * the hand-over lease (below) takes no lease of its own in the database, and this
 * replica's claim() would take that one over. Other replicas are kept out by the
 * row's lease. At most one entry per worker. */
static char (*running)[SOUK_ID_MAX];

static bool running_take(const char *id)
{
    bool taken = false;
    size_t free_slot = nworkers;
    pthread_mutex_lock(&q_lock);
    for (size_t i = 0; i < nworkers && !taken; i++) {
        taken = strcmp(running[i], id) == 0;
        if (running[i][0] == '\0' && free_slot == nworkers)
            free_slot = i;
    }
    if (!taken && free_slot < nworkers) /* always one: each worker holds at most one */
        snprintf(running[free_slot], SOUK_ID_MAX, "%s", id);
    pthread_mutex_unlock(&q_lock);
    return !taken && free_slot < nworkers;
}

static void running_drop(const char *id)
{
    pthread_mutex_lock(&q_lock);
    for (size_t i = 0; i < nworkers; i++)
        if (strcmp(running[i], id) == 0)
            running[i][0] = '\0';
    pthread_mutex_unlock(&q_lock);
}

/* ---- one order's saga state ---- */

struct saga {
    char id[SOUK_ID_MAX], user_id[SOUK_SUB_MAX], payment_method_id[SOUK_ID_MAX];
    char payment_id[SOUK_ID_MAX], currency[8], reason[64], status[16], created_at[SOUK_TIME_MAX];
    enum saga_step step;
    int64_t subtotal, shipping, total, attempts, refunded;
    bool stock_committed;
    json_t *items; /* [{product_id,name,unit_price_cents,quantity,line_total_cents}] */
    char lease[sizeof(handover)];       /* ours: claim()'s, or the hand-over lease */
    char lease_owner[sizeof(handover)]; /* the row's lease as load() read it */
    int64_t lease_until;
    char traceparent[SOUK_TRACEPARENT_LEN + 1]; /* the steps' parent: checkout or cancel */
};

static void copy(char *dst, size_t cap, const char *src)
{
    if (src == dst) /* a move keeping the reason it was given points at it */
        return;
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Load the saga of id; 1 when found, 0 when not, negative on error. */
static int load(struct souk_db *db, const char *id, struct saga *s)
{
    struct souk_stmt *st = souk_db_query(
        db,
        "SELECT user_id, payment_method_id, payment_id, currency, reason, status, step,"
        " subtotal_cents, shipping_cents, total_cents, attempts, refunded_cents, stock_committed,"
        " items_json, created_at, traceparent, lease_owner, lease_until FROM orders WHERE id = ?",
        "s", id);
    if (st == NULL)
        return SOUK_EDB;
    int rc = souk_stmt_step(st);
    if (rc != SOUK_ROW)
        return rc == SOUK_DONE ? 0 : rc;
    copy(s->id, sizeof(s->id), id);
    copy(s->user_id, sizeof(s->user_id), souk_stmt_text(st, 0));
    copy(s->payment_method_id, sizeof(s->payment_method_id), souk_stmt_text(st, 1));
    copy(s->payment_id, sizeof(s->payment_id), souk_stmt_text(st, 2));
    copy(s->currency, sizeof(s->currency), souk_stmt_text(st, 3));
    copy(s->reason, sizeof(s->reason), souk_stmt_text(st, 4));
    copy(s->status, sizeof(s->status), souk_stmt_text(st, 5));
    int step = saga_step_parse(souk_stmt_text(st, 6));
    s->step = step < 0 ? STEP_DONE : (enum saga_step)step;
    s->subtotal = souk_stmt_int(st, 7);
    s->shipping = souk_stmt_int(st, 8);
    s->total = souk_stmt_int(st, 9);
    s->attempts = souk_stmt_int(st, 10);
    s->refunded = souk_stmt_int(st, 11);
    s->stock_committed = souk_stmt_int(st, 12) != 0;
    json_decref(s->items);
    s->items = json_loads(souk_stmt_text(st, 13), 0, NULL);
    copy(s->created_at, sizeof(s->created_at), souk_stmt_text(st, 14));
    copy(s->traceparent, sizeof(s->traceparent), souk_stmt_text(st, 15));
    copy(s->lease_owner, sizeof(s->lease_owner), souk_stmt_text(st, 16));
    s->lease_until = souk_stmt_int(st, 17);
    souk_stmt_done(st);
    return s->items != NULL ? 1 : SOUK_EDB;
}

/* ---- the calls, one per step ---- */

struct call_out {
    struct saga_answer a;
    json_t *body; /* the answer's JSON (owned) */
};

/* What came back, the same from either transport: the rc, the HTTP status (the
 * equivalent one over gRPC), the problem's code and the payment's status. */
static void take_answer(struct call_out *out, struct souk_response *res)
{
    out->a.http = res->status;
    if (json_is_object(res->json)) {
        out->body = json_incref(res->json);
        out->a.code = json_string_value(json_object_get(out->body, "code"));
        out->a.pay_status = json_string_value(json_object_get(out->body, "status"));
    }
    souk_response_free(res);
}

/* One call of a step over REST: the path is fmt with each "%s" argument
 * percent-encoded as one segment (souk_client_url); a path that cannot be built is
 * a failed call. */
static void call(const char *method, const char *peers, json_t *body, const char *key,
                 struct call_out *out, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void call(const char *method, const char *peers, json_t *body, const char *key,
                 struct call_out *out, const char *fmt, ...)
{
    char base[URL_MAX], url[URL_MAX * 2];
    struct souk_response res = {0};
    va_list ap;
    memset(out, 0, sizeof(*out));
    va_start(ap, fmt);
    out->a.rc =
        souk_client_vurl(url, sizeof(url), souk_client_pick(peers, base, sizeof(base)), fmt, ap);
    va_end(ap);
    if (out->a.rc != 0)
        return;
    struct souk_call c = {.method = method,
                          .url = url,
                          .body = body,
                          .idempotency_key = key,
                          .service_token = true,
                          .timeout_ms = orders_call_timeout_ms,
                          .retries = 0, /* the saga retries with its own backoff */
                          .peers = peers};
    out->a.rc = souk_client_do(&c, &res);
    take_answer(out, &res);
}

/* The same call over gRPC (the peer list is grpc://…): req is the REST body with
 * the path's ids and the idempotency key as fields (api/proto: the names are the
 * REST names), so the answer and its problem read as over REST. */
static void call_rpc(const char *peers, const char *rpc, const ProtobufCMessageDescriptor *type,
                     const ProtobufCMessageDescriptor *resp_type, json_t *req, struct call_out *out)
{
    struct souk_response res = {0};
    memset(out, 0, sizeof(*out));
    struct souk_grpc_call c = {.method = rpc,
                               .response_type = resp_type,
                               .service_token = true,
                               .timeout_ms = orders_call_timeout_ms,
                               .retries = 0 /* the saga retries with its own backoff */};
    out->a.rc = souk_grpc_call_json(peers, &c, type, req, &res);
    take_answer(out, &res);
}

/* A step's call on the peer's transport. body (taken) is the REST body or NULL;
 * id_field/id fill the path's one id; key is the Idempotency-Key or NULL. */
struct step_call {
    const char *method, *path; /* REST: "POST", "/internal/v1/payments/%s/capture" */
    const char *rpc;           /* "/souk.payments.v1.Payments/CapturePayment" */
    const ProtobufCMessageDescriptor *type, *resp_type;
    const char *id_field; /* the path's id as a request field; NULL: none */
};

static void step_call(const struct step_call *sc, const char *peers, json_t *body, const char *id,
                      const char *key, struct call_out *out)
{
    if (souk_grpc_url(peers)) {
        json_t *req = body != NULL ? json_incref(body) : json_object();
        if (sc->id_field != NULL)
            json_object_set_new(req, sc->id_field, json_string(id));
        if (key != NULL)
            json_object_set_new(req, "idempotency_key", json_string(key));
        call_rpc(peers, sc->rpc, sc->type, sc->resp_type, req, out);
        json_decref(req);
    } else { /* the path has a "%s" for the id when there is one */
        call(sc->method, peers, body, key, out, sc->path, id != NULL ? id : "");
    }
    json_decref(body);
}

static const struct step_call reserve_call = {"POST",
                                              "/internal/v1/reservations",
                                              "/souk.catalog.v1.CatalogInternal/Reserve",
                                              &souk__catalog__v1__reserve_request__descriptor,
                                              &souk__catalog__v1__reservation__descriptor,
                                              NULL};
static const struct step_call commit_call = {
    "POST",
    "/internal/v1/reservations/%s/commit",
    "/souk.catalog.v1.CatalogInternal/CommitReservation",
    &souk__catalog__v1__commit_reservation_request__descriptor,
    &souk__catalog__v1__reservation_state__descriptor,
    "reservation_id"};
static const struct step_call release_call = {
    "DELETE",
    "/internal/v1/reservations/%s",
    "/souk.catalog.v1.CatalogInternal/ReleaseReservation",
    &souk__catalog__v1__release_reservation_request__descriptor,
    &souk__catalog__v1__reservation_state__descriptor,
    "reservation_id"};
static const struct step_call authorize_call = {
    "POST",
    "/internal/v1/payments",
    "/souk.payments.v1.Payments/AuthorizePayment",
    &souk__payments__v1__authorize_payment_request__descriptor,
    &souk__payments__v1__payment__descriptor,
    NULL};
static const struct step_call capture_call = {
    "POST",
    "/internal/v1/payments/%s/capture",
    "/souk.payments.v1.Payments/CapturePayment",
    &souk__payments__v1__capture_payment_request__descriptor,
    &souk__payments__v1__payment__descriptor,
    "payment_id"};
static const struct step_call void_call = {"POST",
                                           "/internal/v1/payments/%s/void",
                                           "/souk.payments.v1.Payments/VoidPayment",
                                           &souk__payments__v1__void_payment_request__descriptor,
                                           &souk__payments__v1__payment__descriptor,
                                           "payment_id"};
static const struct step_call refund_call = {
    "POST",
    "/internal/v1/payments/%s/refunds",
    "/souk.payments.v1.Payments/RefundPayment",
    &souk__payments__v1__refund_payment_request__descriptor,
    &souk__payments__v1__refund__descriptor,
    "payment_id"};

/* [{product_id, quantity}] for the catalog. */
static json_t *reservation_items(const json_t *items)
{
    json_t *out = json_array(), *it;
    size_t i;
    json_array_foreach(items, i, it) json_array_append_new(
        out, json_pack("{s:O,s:O}", "product_id", json_object_get(it, "product_id"), "quantity",
                       json_object_get(it, "quantity")));
    return out;
}

static void run_step(const struct saga *s, struct call_out *out)
{
    char key[KEY_MAX];
    json_t *body = NULL;
    snprintf(key, sizeof(key), "%s:%s", s->id, saga_step_name(s->step));
    switch (s->step) {
    case STEP_RESERVE:
        body = json_pack("{s:s,s:o,s:I}", "reservation_id", s->id, "items",
                         reservation_items(s->items), "ttl_seconds",
                         (json_int_t)orders_reservation_ttl);
        step_call(&reserve_call, orders_peer(orders_catalog_rpc, orders_catalog_url), body, NULL,
                  NULL, out);
        break;
    case STEP_AUTHORIZE:
        body = json_pack("{s:s,s:s,s:s,s:I,s:s}", "order_id", s->id, "user_id", s->user_id,
                         "payment_method_id", s->payment_method_id, "amount_cents",
                         (json_int_t)s->total, "currency", s->currency);
        step_call(&authorize_call, orders_peer(orders_payments_rpc, orders_payments_url), body,
                  NULL, key, out);
        break;
    case STEP_COMMIT:
        step_call(&commit_call, orders_peer(orders_catalog_rpc, orders_catalog_url), NULL, s->id,
                  NULL, out);
        break;
    case STEP_RELEASE:
        step_call(&release_call, orders_peer(orders_catalog_rpc, orders_catalog_url), NULL, s->id,
                  NULL, out);
        break;
    case STEP_CAPTURE:
    case STEP_VOID:
    case STEP_REFUND:
        if (s->payment_id[0] == '\0') {
            /* never authorized: nothing to void or refund, and nothing to capture */
            memset(out, 0, sizeof(*out));
            out->a.http = s->step == STEP_CAPTURE ? 409 : 200;
            out->a.code = s->step == STEP_CAPTURE ? "no_payment" : NULL;
            break;
        }
        if (s->step == STEP_REFUND)
            body = json_pack("{s:I}", "amount_cents", (json_int_t)(s->total - s->refunded));
        step_call(s->step == STEP_CAPTURE ? &capture_call
                  : s->step == STEP_VOID  ? &void_call
                                          : &refund_call,
                  orders_peer(orders_payments_rpc, orders_payments_url), body, s->payment_id, key,
                  out);
        break;
    case STEP_DONE:
    case STEP_COUNT:
        memset(out, 0, sizeof(*out));
        out->a.http = 200;
        break;
    }
}

/* The reservation's prices into the order's lines and totals. False when the
 * answer is not a usable reservation of exactly our products. */
static bool apply_prices(struct saga *s, const json_t *resv, json_t **lines_out)
{
    json_t *items = json_object_get(resv, "items"), *lines = json_array(), *mine;
    int64_t subtotal = 0;
    size_t i;
    bool ok = json_is_array(items) && json_array_size(items) == json_array_size(s->items);
    json_array_foreach(s->items, i, mine)
    {
        const char *pid = json_string_value(json_object_get(mine, "product_id"));
        json_t *hit = NULL, *it;
        size_t j;
        json_array_foreach(
            items, j, it) if (pid && json_string_value(json_object_get(it, "product_id")) &&
                              strcmp(pid, json_string_value(json_object_get(it, "product_id"))) ==
                                  0) hit = it;
        json_t *price = json_object_get(hit, "unit_price_cents");
        const char *cur = json_string_value(json_object_get(hit, "currency"));
        const char *name = json_string_value(json_object_get(hit, "name"));
        int64_t qty = json_integer_value(json_object_get(mine, "quantity"));
        if (!ok || hit == NULL || !json_is_integer(price) || json_integer_value(price) < 0 ||
            (cur != NULL && strcmp(cur, s->currency) != 0)) {
            ok = false;
            break;
        }
        int64_t unit = json_integer_value(price);
        subtotal += unit * qty;
        if (name == NULL)
            name = json_string_value(json_object_get(mine, "name"));
        json_array_append_new(lines, json_pack("{s:s,s:s,s:I,s:I,s:I}", "product_id", pid, "name",
                                               name ? name : "", "unit_price_cents",
                                               (json_int_t)unit, "quantity", (json_int_t)qty,
                                               "line_total_cents", (json_int_t)(unit * qty)));
    }
    if (!ok) {
        json_decref(lines);
        return false;
    }
    s->subtotal = subtotal;
    s->shipping = orders_shipping_cents(subtotal);
    s->total = subtotal + s->shipping;
    *lines_out = lines;
    return true;
}

/* ---- settling: the event of the final status ---- */

static json_t *event_items(const json_t *items)
{
    json_t *out = json_array(), *it;
    size_t i;
    json_array_foreach(items, i, it) json_array_append_new(
        out, json_pack("{s:O,s:O,s:O,s:O}", "product_id", json_object_get(it, "product_id"), "name",
                       json_object_get(it, "name"), "quantity", json_object_get(it, "quantity"),
                       "unit_price_cents", json_object_get(it, "unit_price_cents")));
    return out;
}

static int emit_final(struct souk_db *db, const struct saga *s, const char *status,
                      const char *reason)
{
    json_t *d;
    const char *type;
    if (strcmp(status, "confirmed") == 0) {
        type = "order.confirmed";
        /* placed_at lets the cart keep lines the buyer changed after placing it */
        d = json_pack("{s:s,s:s,s:I,s:I,s:I,s:s,s:o,s:s}", "order_id", s->id, "user_id", s->user_id,
                      "subtotal_cents", (json_int_t)s->subtotal, "shipping_cents",
                      (json_int_t)s->shipping, "total_cents", (json_int_t)s->total, "currency",
                      s->currency, "items", event_items(s->items), "placed_at", s->created_at);
    } else if (strcmp(status, "rejected") == 0) {
        type = "order.rejected";
        d = json_pack("{s:s,s:s,s:s}", "order_id", s->id, "user_id", s->user_id, "reason",
                      reason ? reason : "rejected");
    } else {
        type = "order.cancelled";
        d = json_pack("{s:s,s:s,s:s,s:I,s:s,s:o,s:b}", "order_id", s->id, "user_id", s->user_id,
                      "reason", reason ? reason : "cancelled", "refunded_cents",
                      (json_int_t)s->refunded, "currency", s->currency, "items",
                      event_items(s->items), "stock_committed", s->stock_committed);
    }
    return souk_event_emit(db, type, s->id, d);
}

/* ---- persisting a step's outcome ---- */

/* The step's line in saga_log, in the step's transaction: 0 or a negative code
 * (then the step is not persisted either, and runs again). */
static int log_step_as(struct souk_db *db, const struct saga *s, enum saga_step step,
                       const char *outcome, const struct saga_answer *a, const char *now)
{
    int rc = souk_db_run(
        db,
        "INSERT INTO saga_log (order_id, step, outcome, http, code, at) VALUES (?, ?, ?, ?, ?, ?)",
        "sssiSs", s->id, saga_step_name(step), outcome, (int64_t)a->http,
        a->code ? a->code : (a->rc ? souk_strerror(a->rc) : a->pay_status), now);
    return rc < 0 ? rc : 0;
}

static int log_step(struct souk_db *db, const struct saga *s, const char *outcome,
                    const struct saga_answer *a, const char *now)
{
    return log_step_as(db, s, s->step, outcome, a, now);
}

/* Write the move in one transaction, provided we still hold the lease, and renew
 * the lease with it for the next step's call (claim() took it for the first), or
 * give it back when the move settles the order: a renewal before each call and a
 * release after the last were a write transaction each (bench/profile-notes.md).
 * Returns 0, 1 when the lease was lost (stop), or a negative code (retry later). */
static int persist(struct souk_db *db, struct saga *s, const struct saga_move *m,
                   const struct call_out *out, const struct saga_answer *held)
{
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    json_t *lines = NULL;
    struct saga_move mv = *m;
    if (!mv.retry && s->step == STEP_RESERVE && mv.next == STEP_AUTHORIZE &&
        !apply_prices(s, out->body, &lines)) {
        souk_error("reservation answer does not match the order", "{s:s}", "order_id", s->id);
        mv.next = STEP_RELEASE;
        mv.reason = "reservation_failed";
    }
    /* the order's row, locked, decides: is the lease still ours (another replica may
     * have taken over a lease that ran out), then the step's outcome is written */
    if (souk_db_begin_mode(db, SOUK_TX_LOCKS) != 0) {
        json_decref(lines);
        return SOUK_EBUSY;
    }
    int64_t mine = 0;
    int rc = souk_db_int(
        db, &mine,
        "SELECT 1 FROM orders WHERE id = ? AND lease_owner = ?" SOUK_IF_PG(" FOR UPDATE"), "ss",
        s->id, s->lease);
    if (rc < 0 || mine == 0) {
        souk_db_rollback(db);
        json_decref(lines);
        return rc < 0 ? rc : 1;
    }
    /* the commit's line, held over the capture's call (run()); the row's step and
     * stock_committed are written below from s, which has them */
    if (held != NULL && (rc = log_step_as(db, s, STEP_COMMIT, "ok", held, now)) < 0)
        goto fail;
    if (mv.retry) {
        int64_t delay = souk_backoff_ms(&saga_retry, s->attempts + 1);
        rc = souk_db_run(db,
                         "UPDATE orders SET step = ?, stock_committed = ?, attempts = ?,"
                         " next_attempt_ms = ?, lease_until = 0, lease_owner = '' WHERE id = ?",
                         "siiis", saga_step_name(s->step), (int64_t)s->stock_committed,
                         s->attempts + 1, souk_wall_ms() + delay, s->id);
        if (rc >= 0)
            rc = log_step(db, s, "retry", &out->a, now);
        goto commit;
    }
    if (lines != NULL) {
        char *text = souk_json_dump(lines, NULL);
        rc = souk_db_run(db,
                         "UPDATE orders SET items_json = ?, subtotal_cents = ?, shipping_cents = ?,"
                         " total_cents = ? WHERE id = ?",
                         "siiis", text, s->subtotal, s->shipping, s->total, s->id);
        free(text);
        json_decref(s->items);
        s->items = lines;
        lines = NULL;
        if (rc < 0)
            goto fail;
    }
    if (s->step == STEP_AUTHORIZE && mv.next == STEP_COMMIT) {
        const char *pid = json_string_value(json_object_get(out->body, "id"));
        if (pid == NULL || !souk_id_valid(pid, "pay")) { /* a 2xx without a payment id */
            mv.next = STEP_RELEASE;
            mv.reason = "payment_failed";
        } else {
            copy(s->payment_id, sizeof(s->payment_id), pid);
        }
    }
    if (mv.stock_committed)
        s->stock_committed = true;
    if (s->step == STEP_REFUND && out->a.http >= 200 && out->a.http < 300 && s->payment_id[0])
        s->refunded = s->total;
    if (mv.reason != NULL)
        copy(s->reason, sizeof(s->reason), mv.reason);
    bool done = mv.next == STEP_DONE; /* settled: the lease goes back with it */
    rc = souk_db_run(
        db,
        "UPDATE orders SET step = ?, status = COALESCE(?, status), reason = ?, payment_id = ?,"
        " stock_committed = ?, refunded_cents = ?, attempts = 0, next_attempt_ms = 0, updated_at = "
        "?,"
        " cancelled_at = CASE WHEN ? = 'cancelled' THEN ? ELSE cancelled_at END, lease_until = ?,"
        " lease_owner = ? WHERE id = ?",
        "sSSSiisssiss", saga_step_name(mv.next), mv.status, s->reason[0] ? s->reason : NULL,
        s->payment_id[0] ? s->payment_id : NULL, (int64_t)s->stock_committed, s->refunded, now,
        mv.status ? mv.status : "", now, done ? (int64_t)0 : souk_wall_ms() + LEASE_MS,
        done ? "" : s->lease, s->id);
    if (rc < 0)
        goto fail;
    if (mv.status != NULL &&
        (rc = emit_final(db, s, mv.status, s->reason[0] ? s->reason : NULL)) < 0)
        goto fail;
    rc = log_step(db, s, "ok", &out->a, now);
commit:
    if (rc < 0 || souk_db_commit(db) != 0)
        goto fail;
    if (!mv.retry) {
        if (mv.status != NULL) {
            souk_metric_inc(orders_transitions, mv.status);
            souk_info("order settled", "{s:s,s:s,s:s}", "order_id", s->id, "status", mv.status,
                      "reason", s->reason);
        }
        s->step = mv.next;
        s->attempts = 0;
    }
    return mv.retry ? 1 : 0;
fail:
    souk_db_rollback(db);
    json_decref(lines);
    return rc < 0 ? rc : SOUK_EDB;
}

/* ---- a run: claim, step until settled or a transient failure, let go ---- */

static bool claim(struct souk_db *db, const char *id, char *lease)
{
    souk_id_new(lease, "lse");
    int64_t now = souk_wall_ms();
    /* free, run out, or handed over to this replica (saga_handover) */
    int rc = souk_db_run(db,
                         "UPDATE orders SET lease_until = ?, lease_owner = ? WHERE id = ?"
                         " AND step <> 'done' AND (lease_until <= ? OR lease_owner = ?)"
                         " AND next_attempt_ms <= ?",
                         "issisi", now + LEASE_MS, lease, id, now, handover, now);
    return rc == 1;
}

/* The saga of id into s with a lease of ours: 1, or 0 when it is not ours to run
 * now (settled, another replica's, waiting for its backoff), or a negative code.
 * A new order and a cancellation are written leased to this replica (saga_handover)
 * for SAGA_LEASE_MS: a run that finds that lease with half its time or more left
 * runs on it (persist() renews it with the first step) without a write of its own,
 * the claim that was one write transaction per checkout (bench/profile-notes.md);
 * running_take() keeps this replica's workers apart. Any other run claims the row
 * first and reads it again, since another replica may have moved it meanwhile. */
static int take(struct souk_db *db, const char *id, struct saga *s)
{
    int rc = load(db, id, s);
    if (rc != 1 || s->step == STEP_DONE)
        return rc < 0 ? rc : 0;
    if (strcmp(s->lease_owner, handover) == 0 && s->lease_until - souk_wall_ms() >= LEASE_MS / 2) {
        copy(s->lease, sizeof(s->lease), handover);
        return 1;
    }
    if (!claim(db, id, s->lease))
        return 0;
    rc = load(db, id, s);
    return rc == 1 && s->step != STEP_DONE ? 1 : rc < 0 ? rc : 0;
}

static void run(const char *id)
{
    struct souk_db *db = souk_db_thread();
    struct saga s = {0};
    if (db == NULL || !running_take(id))
        return; /* another worker here runs it, and answers its waiters */
    if (take(db, id, &s) != 1) {
        json_decref(s.items);
        running_drop(id);
        return;
    }
    /* a commit's answer held over the capture's call, and its body (owned) */
    struct saga_answer held_answer;
    json_t *held_body = NULL;
    bool held = false;
    for (int n = 0; n < STEPS_PER_RUN; n++) {
        /* read once per run (take()): while the lease is ours nothing else writes
         * the row (cancel and ship wait for a settled order), and persist() keeps s
         * as it wrote it */
        /* each step is a span of the trace of the request that set the saga going
         * (the checkout, a cancel), however late it runs: its call to the peer and the
         * event of the final status are its children */
        struct souk_span span, *prev;
        char name[48];
        snprintf(name, sizeof(name), "saga %s", saga_step_name(s.step));
        souk_span_start_from(&span, SOUK_SPAN_INTERNAL, name, s.traceparent);
        souk_span_set_str(&span, "souk.order.id", id);
        souk_span_set_str(&span, "souk.saga.step", saga_step_name(s.step));
        souk_span_set_int(&span, "souk.saga.attempt", s.attempts + 1);
        prev = souk_trace_enter(&span);
        struct call_out out;
        uint64_t t0 = souk_now_ns();
        run_step(&s, &out);
        souk_metric_observe(orders_step_seconds, (double)(souk_now_ns() - t0) / 1e9,
                            saga_step_name(s.step));
        struct saga_move m;
        saga_decide(s.step, &out.a, s.reason[0] ? s.reason : NULL, &m);
        if (m.retry)
            souk_warn("saga step failed transiently", "{s:s,s:s,s:i,s:s,s:s}", "order_id", id,
                      "step", saga_step_name(s.step), "http", out.a.http, "code",
                      out.a.code ? out.a.code : "", "error", souk_strerror(out.a.rc));
        /* The commit's outcome is written with the capture's, in its transaction: the
         * capture needs nothing the commit returns, and a crash between the two
         * calls runs the commit again, which the catalog answers as before for a
         * committed reservation (idempotent by id). One write transaction less per
         * checkout. A failed commit, or one whose capture would end the run, is
         * written at once as every other step. */
        bool hold = s.step == STEP_COMMIT && !m.retry && m.next == STEP_CAPTURE &&
                    m.status == NULL && m.reason == NULL && n + 1 < STEPS_PER_RUN;
        int rc = 0;
        if (hold) {
            held = true;
            held_answer = out.a;
            held_body = out.body; /* the answer's strings point into it */
            out.body = NULL;
            s.stock_committed = true;
            s.step = STEP_CAPTURE;
            s.attempts = 0;
        } else {
            rc = persist(db, &s, &m, &out, held ? &held_answer : NULL);
            held = false;
            json_decref(held_body);
            held_body = NULL;
        }
        souk_trace_leave(prev);
        souk_span_set_str(&span, "souk.saga.outcome", m.retry ? "retry" : saga_step_name(m.next));
        if (m.status != NULL)
            souk_span_set_str(&span, "souk.order.status", m.status);
        if (m.retry || rc < 0)
            souk_span_set_status(&span, SOUK_SPAN_ERROR,
                                 m.retry ? "transient failure" : "not saved");
        souk_span_end(&span);
        json_decref(out.body);
        /* retry scheduled or settled (the lease given back with either), lease lost,
         * or db error; only a settled order answers a waiter, at out */
        if (rc != 0 || s.step == STEP_DONE)
            goto out;
    }
    if (souk_db_run(db,
                    "UPDATE orders SET lease_until = 0, lease_owner = '' WHERE id = ?"
                    " AND lease_owner = ?",
                    "ss", id, s.lease) < 0) /* not lost: the lease runs out by itself */
        souk_warn("cannot give back a saga lease", "{s:s}", "order_id", id);
out:
    json_decref(held_body);
    json_decref(s.items);
    running_drop(id);
    wait_notify(id);
}

static void *worker_main(void *arg)
{
    SOUK_UNUSED(arg);
    char id[SOUK_ID_MAX];
    while (dequeue(id))
        run(id);
    return NULL;
}

/* ---- the scanner: due sagas, and the orders_by_status gauge ---- */

static void refresh_stats(struct souk_db *db)
{
    static const char *const statuses[] = {"pending", "confirmed", "shipped", "rejected",
                                           "cancelled"};
    for (size_t i = 0; i < SOUK_ARRAY_LEN(statuses); i++) {
        int64_t n = 0;
        if (souk_db_int(db, &n, "SELECT count(*) FROM orders WHERE status = ?", "s", statuses[i]) >=
            0)
            souk_metric_set(orders_by_status, (double)n, statuses[i]);
    }
}

static void scan(struct souk_db *db)
{
    int64_t now = souk_wall_ms();
    struct souk_stmt *st = souk_db_query(
        db,
        "SELECT id FROM orders WHERE step <> 'done' AND next_attempt_ms <= ? AND lease_until <= ?"
        " ORDER BY next_attempt_ms LIMIT ?",
        "iii", now, now, (int64_t)SCAN_BATCH);
    if (st == NULL)
        return;
    char ids[SCAN_BATCH][SOUK_ID_MAX];
    int n = 0, rc = SOUK_DONE;
    while (n < SCAN_BATCH && (rc = souk_stmt_step(st)) == SOUK_ROW)
        copy(ids[n++], SOUK_ID_MAX, souk_stmt_text(st, 0));
    souk_stmt_done(st);
    if (rc < 0) /* those read are run; the rest are found by the next scan */
        souk_warn("saga scan cut short", "{s:s}", "error", souk_strerror(rc));
    for (int i = 0; i < n; i++)
        saga_kick(ids[i]);
}

static void *scanner_main(void *arg)
{
    SOUK_UNUSED(arg);
    struct souk_db *db = souk_db_thread();
    for (unsigned tick = 0;; tick++) {
        pthread_mutex_lock(&q_lock);
        bool stop = stopping;
        pthread_mutex_unlock(&q_lock);
        if (stop)
            break;
        if (db != NULL) {
            scan(db);
            if (tick % STATS_EVERY_SCANS == 0)
                refresh_stats(db);
        }
        usleep(SCAN_MS * 1000);
    }
    return NULL;
}

int saga_start(void)
{
    orders_transitions =
        souk_metric_counter("orders_transitions_total", "orders reaching a status", "status");
    orders_step_seconds = souk_metric_histogram(
        "orders_saga_step_duration_seconds", "time of one saga step (one call to a peer)", "step");
    orders_by_status = souk_metric_gauge("orders_by_status", "orders by current status", "status");
    char ins[SOUK_ID_MAX];
    snprintf(handover, sizeof(handover), "new:%s", souk_id_new(ins, "ins"));
    nworkers = (size_t)orders_workers;
    workers = souk_xcalloc(nworkers, sizeof(*workers));
    running = souk_xcalloc(nworkers, sizeof(*running));
    for (size_t i = 0; i < nworkers; i++)
        if (pthread_create(&workers[i], NULL, worker_main, NULL) != 0)
            return SOUK_ENOMEM;
    if (pthread_create(&scanner, NULL, scanner_main, NULL) != 0)
        return SOUK_ENOMEM;
    scanner_started = true;
    return 0;
}

void saga_stop(void)
{
    pthread_mutex_lock(&q_lock);
    stopping = true;
    pthread_cond_broadcast(&q_cond);
    pthread_mutex_unlock(&q_lock);
    for (size_t i = 0; i < nworkers; i++)
        pthread_join(workers[i], NULL);
    if (scanner_started)
        pthread_join(scanner, NULL);
    free(workers);
    workers = NULL;
    free(running);
    running = NULL;
    nworkers = 0;
}

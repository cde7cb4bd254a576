/* payments.c: the payment lifecycle. The internal money calls (authorize, capture,
 * void, refund) run under an Idempotency-Key: the key's lease is taken first, the
 * processor is asked outside any transaction, then the state change, its ledger
 * posting, its event and the key's stored response commit in one transaction.
 * Also the card holder's own list of payments. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "payments.h"
#include "souk/events.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/page.h"
#include "souk/souk.h"

#define REF_MAX             64 /* order and user ids from our peers */
#define RETRY_AFTER_SECONDS "1"
/* How long a request holds its key. Everything between begin and complete is local
 * and fast here (the processor is simulated), so a short lease lets a retry after a
 * crash run within seconds; a request that outlives it loses the key at complete()
 * and rolls back, so it can never commit twice. */
#define IDEM_LEASE_MS 5000

struct souk_metric *payments_total;

static const char *const status_names[PAY_STATUS_COUNT] = {
    [PAY_AUTHORIZED] = "authorized", [PAY_DECLINED] = "declined",
    [PAY_CAPTURED] = "captured",     [PAY_PARTIALLY_REFUNDED] = "partially_refunded",
    [PAY_REFUNDED] = "refunded",     [PAY_VOIDED] = "voided",
};
static const char *const op_names[] = {
    [OP_CAPTURE] = "capture", [OP_VOID] = "void", [OP_REFUND] = "refund"};

const char *pay_status_name(enum pay_status s)
{
    return s < PAY_STATUS_COUNT ? status_names[s] : "unknown";
}

int pay_status_parse(const char *name)
{
    for (int i = 0; name != NULL && i < PAY_STATUS_COUNT; i++)
        if (strcmp(name, status_names[i]) == 0)
            return i;
    return -1;
}

enum pay_verdict pay_next(enum pay_status s, enum pay_op op, int64_t amount, int64_t captured,
                          int64_t refunded, enum pay_status *next)
{
    bool was_captured = s == PAY_CAPTURED || s == PAY_PARTIALLY_REFUNDED || s == PAY_REFUNDED;
    *next = s;
    switch (op) {
    case OP_CAPTURE:
        if (s == PAY_AUTHORIZED) {
            *next = PAY_CAPTURED;
            return PAY_OK;
        }
        return was_captured ? PAY_NOOP : PAY_ILLEGAL;
    case OP_VOID:
        if (s == PAY_AUTHORIZED) {
            *next = PAY_VOIDED;
            return PAY_OK;
        }
        return s == PAY_VOIDED ? PAY_NOOP : PAY_ILLEGAL;
    case OP_REFUND:
        if (!was_captured)
            return PAY_ILLEGAL;
        if (amount <= 0 || amount > captured - refunded)
            return PAY_TOO_MUCH;
        *next = refunded + amount == captured ? PAY_REFUNDED : PAY_PARTIALLY_REFUNDED;
        return PAY_OK;
    }
    return PAY_ILLEGAL;
}

static void count(const char *operation, const char *outcome)
{
    if (payments_total != NULL)
        souk_metric_inc(payments_total, operation, outcome);
}

/* The outbox, in the caller's transaction: the event commits with the change. */
static int emit(struct souk_db *db, const char *type, const char *subject, json_t *data)
{
    return souk_event_emit(db, type, subject, data);
}

/* Payment id as the API shows it into *out: 0, or the database's error (one we
 * wrote in this transaction is there: none is an error too). */
static int payment_read(struct souk_db *db, const char *id, json_t **out)
{
    *out = NULL;
    struct souk_stmt *st = souk_db_query(
        db,
        "SELECT id, order_id, user_id, payment_method_id, status, decline_code, amount_cents,"
        " captured_cents, refunded_cents, currency, created_at, updated_at FROM payments"
        " WHERE id = ?",
        "s", id);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return rc < 0 ? rc : SOUK_EDB;
    json_t *p = souk_stmt_row_json(st);
    souk_stmt_done(st);
    if (json_is_null(json_object_get(p, "decline_code")))
        json_object_del(p, "decline_code");
    *out = p;
    return 0;
}

/* A write that must change exactly one row: 0, or an error (none changed is one). */
static int one_row(int changed) { return changed == 1 ? 0 : changed < 0 ? changed : SOUK_EDB; }

/* ---- the Idempotency-Key around every internal money call ---- */

#define NOT_DONE "payments could not complete the request"

/* The request's Idempotency-Key and scope, checked: 0, or the status of the 400
 * reply set. */
static int request_key(struct souk_req *r, const char **key, const char **scope)
{
    *key = souk_req_header(r, "Idempotency-Key");
    *scope = souk_req_identity(r)->sub[0] ? souk_req_identity(r)->sub : "-";
    if (*key == NULL)
        return souk_problem(r, 400, "idempotency_key_required", "send an Idempotency-Key header");
    if (!souk_idem_key_valid(*key))
        return souk_problem(r, 400, "invalid_idempotency_key",
                            "Idempotency-Key must be 1 to %d printable characters",
                            SOUK_IDEM_KEY_MAX);
    return 0;
}

/* What souk_idem_begin said (rc) as the request's fate: 0 to run it, or the status
 * of a response set (the replayed first response, or why it cannot run). */
static int idem_outcome(struct souk_req *r, struct souk_idem *k, int rc)
{
    switch (rc) {
    case SOUK_IDEM_PROCEED:
        return 0;
    case SOUK_IDEM_REPLAY:
        souk_reply_raw(r, k->status >= 400 ? "application/problem+json" : "application/json",
                       k->response, strlen(k->response), false);
        souk_reply_header(r, "Idempotent-Replayed", "true");
        rc = k->status;
        souk_idem_free(k);
        return rc;
    case SOUK_IDEM_MISMATCH:
        return souk_problem(r, 409, "idempotency_key_reused",
                            "this Idempotency-Key was used with a different request");
    case SOUK_IDEM_IN_USE:
        souk_reply_header(r, "Retry-After", RETRY_AFTER_SECONDS);
        return souk_problem(r, 409, "idempotency_key_in_use",
                            "a request with this Idempotency-Key is still running");
    }
    return souk_handler_db_error(r, rc, "cannot check the Idempotency-Key");
}

/* Take the key for this request in a transaction of its own. Returns 0 to run it,
 * or the status of a response already set (idem_outcome). */
static int idem_start(struct souk_req *r, struct souk_db *db, struct souk_idem *k, json_t *body)
{
    const char *key, *scope;
    int status = request_key(r, &key, &scope);
    if (status != 0)
        return status;
    /* the canonical form, so key order and spacing do not make a different request */
    char *canon = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    int rc = souk_idem_begin(db, k, scope, key, souk_req_method(r), souk_req_path(r), canon,
                             canon ? strlen(canon) : 0, IDEM_LEASE_MS);
    free(canon);
    return idem_outcome(r, k, rc);
}

/* In the open transaction: store (status, body) as the key's response, commit the
 * effect with it, and reply with exactly what was stored. Takes body. */
static int idem_finish(struct souk_req *r, struct souk_db *db, struct souk_idem *k, int status,
                       json_t *body)
{
    size_t len;
    char *text = souk_json_dump(body, &len);
    json_decref(body);
    int rc = souk_idem_complete(db, k, status, text);
    if (rc == 0)
        rc = souk_db_commit(db);
    else
        souk_db_rollback(db);
    if (rc != 0) {
        free(text);
        if (k->in_tx) /* the key's lease went with the rollback; a conflict runs again */
            return rc == SOUK_ECONFLICT ? SOUK_ECONFLICT : souk_handler_db_error(r, rc, NOT_DONE);
        souk_idem_release(db, k, false);
        return souk_handler_db_error(r, rc, NOT_DONE);
    }
    souk_reply_raw(r, status >= 400 ? "application/problem+json" : "application/json", text, len,
                   true);
    return status;
}

/* A final error answer, stored under the key like a success. tx: already open. */
static int idem_fail(struct souk_req *r, struct souk_db *db, struct souk_idem *k, bool tx,
                     int status, const char *code, const char *detail)
{
    int rc = tx ? 0 : souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc != 0) {
        souk_idem_release(db, k, false);
        return souk_handler_db_error(r, rc, NOT_DONE);
    }
    return idem_finish(r, db, k, status, souk_problem_json(status, code, detail));
}

/* A database failure (rc) with nothing decided: roll back, keep the key retryable. */
static int idem_abort(struct souk_req *r, struct souk_db *db, struct souk_idem *k, int rc)
{
    souk_db_rollback(db);
    if (k->in_tx) /* the key's lease went with the rollback; a conflict runs again */
        return rc == SOUK_ECONFLICT ? SOUK_ECONFLICT : souk_handler_db_error(r, rc, NOT_DONE);
    souk_idem_release(db, k, false);
    return souk_handler_db_error(r, rc, NOT_DONE);
}

/* ---- POST /internal/v1/payments ---- */

struct auth_in {
    const char *order_id, *user_id, *method_id, *currency;
    int64_t amount;
};

static const char *const auth_fields[] = {"order_id",     "user_id",  "payment_method_id",
                                          "amount_cents", "currency", NULL};

/* The body past its opening (souk_handler_open with auth_fields). */
static bool check_auth_in(struct souk_check *c, json_t *body, struct auth_in *in)
{
    in->order_id = souk_json_str(c, body, "order_id", SOUK_REQUIRED, 1, REF_MAX);
    in->user_id = souk_json_str(c, body, "user_id", SOUK_REQUIRED, 1, REF_MAX);
    in->method_id = souk_json_str(c, body, "payment_method_id", SOUK_REQUIRED, 1, REF_MAX);
    in->amount = souk_json_int(c, body, "amount_cents", SOUK_REQUIRED, 1, AMOUNT_MAX, 0);
    in->currency = souk_json_str(c, body, "currency", SOUK_REQUIRED, 3, 3);
    /* ids of their kind only: they are stored, listed and matched on */
    if (in->order_id != NULL && !souk_id_valid(in->order_id, "ord"))
        souk_check_fail(c, "order_id", "must be an order id (ord_…)");
    if (in->user_id != NULL && !souk_id_valid(in->user_id, "usr"))
        souk_check_fail(c, "user_id", "must be a user id (usr_…)");
    if (in->method_id != NULL && !souk_id_valid(in->method_id, "pm"))
        souk_check_fail(c, "payment_method_id", "must be a payment method id (pm_…)");
    if (in->currency != NULL &&
        strspn(in->currency, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(in->currency))
        souk_check_fail(c, "currency", "must be an ISO 4217 code in capitals, like USD");
    return souk_check_ok(c);
}

/* Ask the processor about the method's card: the number is opened only here, in
 * memory, and wiped. Returns 0 with the outcome, or a negative code. */
static int ask_processor(struct souk_db *db, const struct auth_in *in, int64_t attempt,
                         enum proc_outcome *out, const char **code)
{
    char digits[CARD_DIGITS_MAX + 1];
    struct souk_stmt *st =
        souk_db_query(db, "SELECT number_box FROM payment_methods WHERE id = ? AND user_id = ?",
                      "ss", in->method_id, in->user_id);
    if (st == NULL)
        return SOUK_EDB;
    int rc = souk_stmt_step(st);
    if (rc != SOUK_ROW)
        return rc == SOUK_DONE ? SOUK_ENOTFOUND : rc;
    rc = vault_open(souk_stmt_text(st, 0), digits, sizeof(digits));
    souk_stmt_done(st);
    if (rc != 0) {
        souk_error("cannot open a sealed card (wrong SOUK_PAYMENTS_KEY?)", "{s:s}",
                   "payment_method_id", in->method_id);
        return rc;
    }
    *out = processor_authorize(digits, attempt, code);
    sodium_memzero(digits, sizeof(digits));
    return 0;
}

static int record_authorization(struct souk_req *r, struct souk_db *db, struct souk_idem *k,
                                const struct auth_in *in, bool approved, const char *code)
{
    char id[SOUK_ID_MAX], now[SOUK_TIME_MAX];
    souk_id_new(id, "pay");
    souk_time_now(now);
    const char *status = approved ? "authorized" : "declined";
    json_t *p = NULL;
    /* a new payment, its ledger lines, our key's row: each atomic, no read decides */
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc == 0)
        rc = one_row(souk_db_run(db,
                                 "INSERT INTO payments (id, order_id, user_id, payment_method_id,"
                                 " status, decline_code, amount_cents, currency, created_at,"
                                 " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                                 "ssssssisss", id, in->order_id, in->user_id, in->method_id, status,
                                 code, in->amount, in->currency, now, now));
    if (rc == 0 && approved)
        rc = ledger_post(db, id, "authorize", ACCT_CUSTOMER, ACCT_HOLDS, in->amount, in->currency);
    if (rc == 0)
        rc = payment_read(db, id, &p);
    if (rc == 0)
        rc = emit(db, approved ? "payment.authorized" : "payment.declined", id, json_deep_copy(p));
    if (rc != 0) {
        json_decref(p);
        return idem_abort(r, db, k, rc);
    }
    souk_info(approved ? "payment authorized" : "payment declined", "{s:s,s:s,s:I,s:s}",
              "payment_id", id, "order_id", in->order_id, "amount_cents", (json_int_t)in->amount,
              "decline_code", code ? code : "");
    count("authorize", status);
    return idem_finish(r, db, k, 201, p);
}

int payments_authorize(struct souk_req *r)
{
    struct souk_db *db = souk_req_db(r);
    struct auth_in in;
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, auth_fields);
    if (body == NULL)
        return souk_req_status(r);
    if (!check_auth_in(&c, body, &in))
        return souk_problem_check(r, &c); /* not stored: the request never ran */
    struct souk_idem k;
    int status = idem_start(r, db, &k, body);
    if (status != 0)
        return status;
    enum proc_outcome outcome;
    const char *code = NULL;
    int rc = ask_processor(db, &in, k.attempts, &outcome, &code);
    if (rc == SOUK_ENOTFOUND) {
        count("authorize", "rejected");
        return idem_fail(r, db, &k, false, 404, "payment_method_not_found",
                         "no such payment method for this user");
    }
    if (rc != 0)
        return idem_abort(r, db, &k, rc);
    if (outcome == PROC_TRANSIENT) {
        /* not stored: the same key must stay retryable (see processor_authorize) */
        count("authorize", "processing_error");
        souk_warn("processor failed transiently", "{s:s,s:I}", "order_id", in.order_id, "attempt",
                  (json_int_t)k.attempts);
        souk_idem_release(db, &k, false);
        souk_reply_header(r, "Retry-After", RETRY_AFTER_SECONDS);
        return souk_problem(r, 503, "processing_error",
                            "the card processor failed; retry with the same Idempotency-Key");
    }
    return record_authorization(r, db, &k, &in, outcome == PROC_APPROVED, code);
}

/* ---- capture, void, refund ---- */

struct payment_row {
    enum pay_status status;
    int64_t amount, captured, refunded;
    char currency[8];
};

static int load_payment(struct souk_db *db, const char *id, struct payment_row *p)
{
    struct souk_stmt *st = souk_db_query(
        db,
        "SELECT status, amount_cents, captured_cents, refunded_cents, currency FROM payments"
        " WHERE id = ?" SOUK_IF_PG(" FOR UPDATE"),
        "s", id);
    if (st == NULL)
        return SOUK_EDB;
    int rc = souk_stmt_step(st);
    if (rc != SOUK_ROW)
        return rc == SOUK_DONE ? SOUK_ENOTFOUND : rc;
    int s = pay_status_parse(souk_stmt_text(st, 0));
    p->status = s < 0 ? PAY_DECLINED : (enum pay_status)s;
    p->amount = souk_stmt_int(st, 1);
    p->captured = souk_stmt_int(st, 2);
    p->refunded = souk_stmt_int(st, 3);
    snprintf(p->currency, sizeof(p->currency), "%s", souk_stmt_text(st, 4));
    souk_stmt_done(st);
    return 0;
}

/* Apply an allowed transition: the row, the ledger, the event. 0 with *out, the
 * reply body (payment, or refund for refunds), or the database's error. */
static int apply(struct souk_db *db, const char *id, enum pay_op op, enum pay_status next,
                 const struct payment_row *p, int64_t amount, json_t **out)
{
    char now[SOUK_TIME_MAX], rid[SOUK_ID_MAX];
    const char *status = pay_status_name(next);
    int rc;
    *out = NULL;
    souk_time_now(now);
    switch (op) {
    case OP_CAPTURE:
        rc = one_row(souk_db_run(db,
                                 "UPDATE payments SET status = ?, captured_cents = amount_cents,"
                                 " updated_at = ? WHERE id = ?",
                                 "sss", status, now, id));
        if (rc == 0)
            rc = ledger_post(db, id, "capture", ACCT_HOLDS, ACCT_REVENUE, p->amount, p->currency);
        break;
    case OP_VOID:
        rc = one_row(souk_db_run(db, "UPDATE payments SET status = ?, updated_at = ? WHERE id = ?",
                                 "sss", status, now, id));
        if (rc == 0)
            rc = ledger_post(db, id, "void", ACCT_HOLDS, ACCT_CUSTOMER, p->amount, p->currency);
        break;
    case OP_REFUND:
        souk_id_new(rid, "rfd");
        rc = one_row(souk_db_run(db,
                                 "INSERT INTO refunds (id, payment_id, amount_cents, created_at)"
                                 " VALUES (?, ?, ?, ?)",
                                 "ssis", rid, id, amount, now));
        if (rc == 0)
            rc = one_row(souk_db_run(db,
                                     "UPDATE payments SET status = ?,"
                                     " refunded_cents = refunded_cents + ?, updated_at = ?"
                                     " WHERE id = ?",
                                     "siss", status, amount, now, id));
        if (rc == 0)
            rc = ledger_post(db, id, "refund", ACCT_REVENUE, ACCT_REFUNDS, amount, p->currency);
        break;
    default:
        rc = SOUK_EINVAL;
    }
    json_t *pay = NULL;
    if (rc == 0)
        rc = payment_read(db, id, &pay);
    if (rc != 0)
        return rc;
    json_t *reply = pay;
    if (op == OP_REFUND)
        reply = json_pack("{s:s,s:s,s:I,s:s,s:O}", "id", rid, "payment_id", id, "amount_cents",
                          (json_int_t)amount, "created_at", now, "payment", pay);
    const char *type = op == OP_CAPTURE  ? "payment.captured"
                       : op == OP_REFUND ? "payment.refunded"
                                         : NULL;
    if (type != NULL) {
        json_t *data = json_deep_copy(pay);
        if (op == OP_REFUND)
            json_object_set_new(
                data, "refund",
                json_pack("{s:s,s:I}", "id", rid, "amount_cents", (json_int_t)amount));
        rc = emit(db, type, id, data);
    }
    if (reply != pay)
        json_decref(pay);
    if (rc != 0) {
        json_decref(reply);
        return rc;
    }
    *out = reply;
    return 0;
}

/* One try of a capture, void or refund: its key, the payment's row and the change
 * in one transaction. Nothing outside this service sits between them (no processor
 * is asked, the ledger is ours), so the key needs no lease that outlives the
 * transaction, where one taken first was a write transaction of its own
 * (bench/profile-notes.md); a duplicate waits for our commit and replays. Returns
 * the status of the reply set, or SOUK_ECONFLICT with none set: on PostgreSQL a
 * request with the same key committed first; run again, it replays. */
static int op_status(enum pay_op op) { return op == OP_REFUND ? 201 : 200; }

static int transition_once(struct souk_req *r, struct souk_db *db, enum pay_op op, const char *key,
                           const char *scope, const char *canon, int64_t amount)
{
    const char *id = souk_req_param(r, "id");
    struct souk_idem k;
    struct payment_row p;
    /* the payment's row is locked as it is read (PostgreSQL; SQLite: the write lock):
     * the transition is decided on it, so two calls under different keys queue */
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc != 0)
        return souk_handler_db_error(r, rc, NOT_DONE);
    rc = souk_idem_begin_in_tx(db, &k, scope, key, souk_req_method(r), souk_req_path(r), canon,
                               canon ? strlen(canon) : 0, IDEM_LEASE_MS);
    if (rc != SOUK_IDEM_PROCEED) {
        souk_db_rollback(db);
        return rc == SOUK_ECONFLICT ? SOUK_ECONFLICT : idem_outcome(r, &k, rc);
    }
    rc = souk_id_valid(id, "pay") ? load_payment(db, id, &p) : SOUK_ENOTFOUND;
    if (rc == SOUK_ENOTFOUND)
        return idem_fail(r, db, &k, true, 404, "not_found", "no such payment");
    if (rc != 0)
        return idem_abort(r, db, &k, rc);
    enum pay_status next;
    char detail[160];
    int status;
    switch (pay_next(p.status, op, amount, p.captured, p.refunded, &next)) {
    case PAY_ILLEGAL:
        snprintf(detail, sizeof(detail), "cannot %s a payment that is %s", op_names[op],
                 pay_status_name(p.status));
        status = idem_fail(r, db, &k, true, 409, "illegal_transition", detail);
        if (status != SOUK_ECONFLICT)
            count(op_names[op], "rejected");
        return status;
    case PAY_TOO_MUCH:
        snprintf(detail, sizeof(detail), "at most %lld cents can be refunded",
                 (long long)(p.captured - p.refunded));
        status = idem_fail(r, db, &k, true, 400, "refund_exceeds_captured", detail);
        if (status != SOUK_ECONFLICT)
            count(op_names[op], "rejected");
        return status;
    case PAY_NOOP: {
        json_t *pay;
        rc = payment_read(db, id, &pay);
        return rc == 0 ? idem_finish(r, db, &k, 200, pay) : idem_abort(r, db, &k, rc);
    }
    case PAY_OK:
        break;
    }
    json_t *out;
    rc = apply(db, id, op, next, &p, amount, &out);
    if (rc != 0)
        return idem_abort(r, db, &k, rc);
    status = idem_finish(r, db, &k, op_status(op), out);
    if (status == op_status(op)) {
        count(op_names[op], "succeeded");
        souk_info("payment changed", "{s:s,s:s,s:s,s:I}", "payment_id", id, "operation",
                  op_names[op], "status", pay_status_name(next), "amount_cents",
                  (json_int_t)(op == OP_REFUND ? amount : p.amount));
    }
    return status;
}

/* A duplicate that raced ours to a new key on PostgreSQL: the first try conflicts,
 * the next replays; more than that is a key in use. */
#define CONFLICT_TRIES 3

static int transition(struct souk_req *r, enum pay_op op)
{
    struct souk_db *db = souk_req_db(r);
    struct souk_check c;
    json_t *body = NULL;
    int64_t amount = 0;
    size_t len = 0;
    souk_req_body(r, &len);
    if (op == OP_REFUND || len > 0) { /* capture and void take no fields: {} or nothing */
        static const char *const refund_fields[] = {"amount_cents", NULL};
        static const char *const none[] = {NULL};
        body = souk_handler_open(r, &c, op == OP_REFUND ? refund_fields : none);
        if (body == NULL)
            return souk_req_status(r);
        if (op == OP_REFUND)
            amount = souk_json_int(&c, body, "amount_cents", SOUK_REQUIRED, 1, AMOUNT_MAX, 0);
        if (!souk_check_ok(&c))
            return souk_problem_check(r, &c);
    }
    const char *key, *scope;
    int status = request_key(r, &key, &scope);
    if (status != 0)
        return status;
    /* the canonical form, so key order and spacing do not make a different request */
    char *canon = body ? json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    for (int tries = 1;
         (status = transition_once(r, db, op, key, scope, canon, amount)) == SOUK_ECONFLICT &&
         tries < CONFLICT_TRIES;
         tries++)
        ;
    free(canon);
    if (status == SOUK_ECONFLICT) {
        souk_reply_header(r, "Retry-After", RETRY_AFTER_SECONDS);
        return souk_problem(r, 409, "idempotency_key_in_use",
                            "a request with this Idempotency-Key is still running");
    }
    return status;
}

int payments_capture(struct souk_req *r) { return transition(r, OP_CAPTURE); }
int payments_void(struct souk_req *r) { return transition(r, OP_VOID); }
int payments_refund(struct souk_req *r) { return transition(r, OP_REFUND); }

/* ---- GET /api/v1/payments?order_id= (the caller's own) ---- */

/* A payment as the list shows it: no decline_code unless declined. */
static json_t *list_row(struct souk_stmt *st)
{
    json_t *p = souk_stmt_row_json(st);
    if (json_is_null(json_object_get(p, "decline_code")))
        json_object_del(p, "decline_code");
    return p;
}

int payments_list(struct souk_req *r)
{
    const char *user = souk_req_identity(r)->sub, *order = souk_req_query(r, "order_id");
    struct souk_check c;
    struct souk_page pg;
    souk_check_init(&c);
    if (order != NULL && !souk_id_valid(order, "ord"))
        souk_check_fail(&c, "order_id", "must be an order id (ord_…)");
    int status =
        souk_page_start(&pg, r, &c, "payments", "user=%s order=%s", user, order ? order : "*");
    if (status != 0)
        return status;
    struct souk_stmt *st = souk_db_query(
        souk_req_db(r),
        "SELECT id, order_id, status, decline_code, amount_cents, captured_cents, refunded_cents,"
        " currency, created_at FROM payments WHERE user_id = ?1 AND (?2 IS NULL OR order_id = ?2)"
        " AND id > coalesce(?3, '') ORDER BY id LIMIT ?4",
        "sSSi", user, order, pg.after, pg.limit);
    return souk_page_reply(&pg, r, st, list_row, "cannot read the payments");
}

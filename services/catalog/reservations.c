/* reservations.c: stock held for a checkout (DESIGN §4 catalog internal, §5).
 * Reserve, commit and release are idempotent by reservation id and atomic over
 * all lines; held stock expires by itself after its TTL (the sweeper below);
 * a cancelled order's sold stock comes back when order.cancelled arrives. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalog.h"
#include "souk/events.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/souk.h"

#define MAX_LINES          50
#define MAX_QUANTITY       1000
#define TTL_DEFAULT        600
#define TTL_MAX            3600
#define RESERVATION_ID_MAX 64
#define SWEEP_INTERVAL_MS  500
#define SWEEP_BATCH        100
#define STOCK_LOW_BELOW    5

struct line {
    const char *product_id;
    int64_t quantity;
};

static bool valid_reservation_id(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n == RESERVATION_ID_MAX || !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                                         (c >= 'A' && c <= 'Z') || c == '_' || c == '-'))
            return false;
    }
    return n > 0;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(((const struct line *)a)->product_id, ((const struct line *)b)->product_id);
}

/* The reservation as the API shows it into *out: 0, or the failed step's error
 * (SOUK_EDB when there is none: it is only asked for once it exists). */
static int reservation_json(struct souk_db *db, const char *id, json_t **out)
{
    *out = NULL;
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT id AS reservation_id, status, expires_at,"
                                         " created_at FROM reservations WHERE id = ?",
                                         "s", id);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return rc < 0 ? rc : SOUK_EDB;
    json_t *r = souk_stmt_row_json(st);
    souk_stmt_done(st);
    char expires[SOUK_TIME_MAX];
    souk_time_rfc3339(json_integer_value(json_object_get(r, "expires_at")), expires);
    json_object_set_new(r, "expires_at", json_string(expires));
    json_t *items = json_array();
    st = souk_db_query(db,
                       "SELECT product_id, name, quantity, unit_price_cents, currency"
                       " FROM reservation_items WHERE reservation_id = ? ORDER BY product_id",
                       "s", id);
    json_object_set_new(r, "items", items);
    rc = st != NULL ? SOUK_ROW : SOUK_EDB;
    while (rc == SOUK_ROW && (rc = souk_stmt_step(st)) == SOUK_ROW)
        json_array_append_new(items, souk_stmt_row_json(st));
    if (rc < 0) { /* a reservation without some of its lines is not the reservation */
        json_decref(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Do the stored lines equal these (sorted) lines? 1 or 0, or the failed step's error. */
static int same_lines(struct souk_db *db, const char *id, const struct line *lines, size_t n)
{
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT product_id, quantity FROM reservation_items"
                                         " WHERE reservation_id = ? ORDER BY product_id",
                                         "s", id);
    if (st == NULL)
        return SOUK_EDB;
    size_t i = 0;
    bool same = true;
    int rc;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW) {
        same = same && i < n && strcmp(souk_stmt_text(st, 0), lines[i].product_id) == 0 &&
               souk_stmt_int(st, 1) == lines[i].quantity;
        i++;
    }
    return rc < 0 ? rc : same && i == n;
}

/* Release held stock back to available (reason: requested or expired). */
static int release_held(struct souk_db *db, const char *id, const char *reason)
{
    int rc =
        souk_db_run(db,
                    "UPDATE products SET reserved = reserved - ri.quantity, version = version + 1"
                    " FROM reservation_items ri"
                    " WHERE ri.reservation_id = ? AND products.id = ri.product_id",
                    "s", id);
    if (rc < 0)
        return rc;
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    rc = souk_db_run(db,
                     "UPDATE reservations SET status = 'released', release_reason = ?,"
                     " updated_at = ? WHERE id = ?",
                     "sss", reason, now, id);
    return rc < 0 ? rc : 0;
}

static int parse_lines(struct souk_check *c, json_t *body, struct line *lines, size_t *n)
{
    json_t *items = souk_json_array(c, body, "items", SOUK_REQUIRED, MAX_LINES);
    *n = 0;
    if (items == NULL)
        return SOUK_EINVAL;
    if (json_array_size(items) == 0)
        souk_check_fail(c, "items", "must have at least one item");
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        char field[32];
        snprintf(field, sizeof(field), "items[%zu]", i);
        const char *pid = souk_json_str(c, it, "product_id", SOUK_REQUIRED, 1, SOUK_ID_MAX);
        int64_t q = souk_json_int(c, it, "quantity", SOUK_REQUIRED, 1, MAX_QUANTITY, 0);
        if (!json_is_object(it))
            souk_check_fail(c, field, "must be an object");
        if (pid != NULL && q > 0)
            lines[(*n)++] = (struct line){pid, q};
    }
    qsort(lines, *n, sizeof(*lines), cmp_line);
    for (size_t k = 1; k < *n; k++)
        if (strcmp(lines[k].product_id, lines[k - 1].product_id) == 0)
            souk_check_fail(c, "items", "product %s is listed twice", lines[k].product_id);
    return souk_check_ok(c) ? 0 : SOUK_EINVAL;
}

/* Check every line against stock; on success take it and record the reservation.
 * Returns the HTTP status; on 409/404 the problem is set. Runs in the transaction. */
static int take_stock(struct souk_req *r, struct souk_db *db, const char *id,
                      const struct line *lines, size_t n, int64_t ttl)
{
    json_t *short_items = json_array();
    int status = 0;
    for (size_t i = 0; i < n && status == 0; i++) {
        /* each line's row locked as it is read, in product id order (the lines are
         * sorted): reservations on other catalog replicas queue, never deadlock, and
         * never both take the last unit (the CHECKs would refuse it anyway) */
        struct souk_stmt *st =
            souk_db_query(db,
                          "SELECT on_hand - reserved FROM products"
                          " WHERE id = ? AND archived = 0" SOUK_IF_PG(" FOR UPDATE"),
                          "s", lines[i].product_id);
        int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
        if (rc < 0) {
            status = souk_handler_db_error(r, rc, "cannot hold stock");
            break;
        }
        if (rc != SOUK_ROW) {
            status = souk_problem_with(r, 404, "product_not_found",
                                       json_pack("{s:s}", "product_id", lines[i].product_id),
                                       "no product %s", lines[i].product_id);
            break;
        }
        int64_t available = souk_stmt_int(st, 0);
        souk_stmt_done(st);
        if (available < lines[i].quantity)
            json_array_append_new(short_items,
                                  json_pack("{s:s,s:I,s:I}", "product_id", lines[i].product_id,
                                            "requested", (json_int_t)lines[i].quantity, "available",
                                            (json_int_t)(available > 0 ? available : 0)));
    }
    if (status == 0 && json_array_size(short_items) > 0) {
        size_t nshort = json_array_size(short_items);
        return souk_problem_with(r, 409, "out_of_stock", json_pack("{s:o}", "items", short_items),
                                 "%zu item(s) are short of stock", nshort);
    }
    json_decref(short_items);
    if (status != 0)
        return status;

    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    int rc = souk_db_run(db,
                         "INSERT INTO reservations (id, status, expires_at, created_at, updated_at)"
                         " VALUES (?, 'held', ?, ?, ?)",
                         "siss", id, souk_wall_ms() + ttl * 1000, now, now);
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot record the reservation");
    for (size_t i = 0; i < n; i++) {
        /* each changes the one row read above, in this transaction */
        rc = souk_db_run(db,
                         "UPDATE products SET reserved = reserved + ?, version = version + 1"
                         " WHERE id = ?",
                         "is", lines[i].quantity, lines[i].product_id);
        if (rc == 1)
            rc = souk_db_run(db,
                             "INSERT INTO reservation_items (reservation_id, product_id, quantity,"
                             " name, unit_price_cents, currency) SELECT ?, id, ?, name,"
                             " price_cents, currency FROM products WHERE id = ?",
                             "sis", id, lines[i].quantity, lines[i].product_id);
        if (rc != 1)
            return souk_handler_db_error(r, rc < 0 ? rc : SOUK_EDB, "cannot hold stock");
    }
    return 201;
}

int reservations_create(struct souk_req *r)
{
    static const char *const fields[] = {"reservation_id", "items", "ttl_seconds", NULL};
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, fields);
    if (body == NULL)
        return souk_req_status(r);
    struct line lines[MAX_LINES];
    size_t n;
    const char *id =
        souk_json_str(&c, body, "reservation_id", SOUK_REQUIRED, 1, RESERVATION_ID_MAX);
    if (id != NULL && !valid_reservation_id(id))
        souk_check_fail(&c, "reservation_id", "may hold only letters, digits, '_' and '-'");
    int64_t ttl = souk_json_int(&c, body, "ttl_seconds", SOUK_OPTIONAL, 1, TTL_MAX, TTL_DEFAULT);
    parse_lines(&c, body, lines, &n);
    if (!souk_check_ok(&c))
        return souk_problem_check(r, &c);

    struct souk_db *db = souk_req_db(r);
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc != 0)
        return souk_handler_db_error(r, rc, "cannot reserve");
    int status;
    char *existing = NULL;
    struct souk_stmt *st = souk_db_query(
        db, "SELECT status FROM reservations WHERE id = ?" SOUK_IF_PG(" FOR UPDATE"), "s", id);
    rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc == SOUK_ROW) {
        existing = souk_req_printf(r, "%s", souk_stmt_text(st, 0));
        souk_stmt_done(st);
    }
    if (rc < 0) {
        status = souk_handler_db_error(r, rc, "cannot reserve");
    } else if (existing != NULL && strcmp(existing, "released") == 0) {
        status = souk_problem(r, 409, "reservation_released", "reservation %s was released", id);
    } else if (existing != NULL) {
        rc = same_lines(db, id, lines, n);
        status = rc < 0    ? souk_handler_db_error(r, rc, "cannot reserve")
                 : rc == 1 ? 200
                           : souk_problem(r, 409, "reservation_mismatch",
                                          "reservation %s exists with other items", id);
    } else {
        status = take_stock(r, db, id, lines, n, ttl);
    }
    rc = status == 201 ? souk_db_commit(db) : 0;
    if (status != 201 || rc != 0) {
        souk_db_rollback(db);
        if (rc != 0)
            return souk_handler_db_error(r, rc, "cannot reserve");
    }
    if (status != 200 && status != 201)
        return status;
    json_t *doc;
    rc = reservation_json(db, id, &doc);
    if (rc != 0) /* held all the same: a retry with the same id answers it */
        return souk_handler_db_error(r, rc, "cannot read the reservation");
    souk_reply_json(r, doc);
    return status;
}

/* Sold: the stock leaves on_hand. An expired reservation is taken again if the
 * stock is still there, so a slow payment does not lose a sale it could make. */
static int commit_locked(struct souk_req *r, struct souk_db *db, const char *id)
{
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT status, release_reason FROM reservations"
                                         " WHERE id = ?" SOUK_IF_PG(" FOR UPDATE"),
                                         "s", id);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot commit");
    if (rc != SOUK_ROW)
        return souk_problem(r, 404, "reservation_not_found", "no reservation %s", id);
    char *status = souk_req_printf(r, "%s", souk_stmt_text(st, 0));
    bool expired = !souk_stmt_null(st, 1) && strcmp(souk_stmt_text(st, 1), "expired") == 0;
    souk_stmt_done(st);
    if (strcmp(status, "committed") == 0 || strcmp(status, "restocked") == 0)
        return 200;
    if (strcmp(status, "released") == 0 && !expired)
        return souk_problem(r, 409, "reservation_released", "reservation %s was released", id);
    const char *take;
    if (strcmp(status, "held") == 0) {
        take = "UPDATE products SET on_hand = on_hand - ri.quantity, reserved = reserved - "
               "ri.quantity,"
               " version = version + 1 FROM reservation_items ri"
               " WHERE ri.reservation_id = ? AND products.id = ri.product_id";
    } else {
        take = "UPDATE products SET on_hand = on_hand - ri.quantity, version = version + 1"
               " FROM reservation_items ri WHERE ri.reservation_id = ? AND products.id = "
               "ri.product_id";
    }
    /* the CHECK (reserved <= on_hand) refuses an expired line whose stock is gone */
    rc = souk_db_run(db, take, "s", id);
    if (rc == SOUK_ECONFLICT)
        return souk_problem(r, 409, "reservation_expired",
                            "reservation %s expired and its stock has been sold", id);
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    if (rc >= 0)
        rc = souk_db_run(db,
                         "UPDATE reservations SET status = 'committed', release_reason = NULL,"
                         " updated_at = ? WHERE id = ?",
                         "ss", now, id);
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot commit");
    /* tell whoever restocks that some lines are running low */
    st = souk_db_query(
        db,
        "SELECT p.id, p.on_hand - p.reserved FROM products p JOIN reservation_items ri"
        " ON ri.product_id = p.id WHERE ri.reservation_id = ?"
        " AND p.on_hand - p.reserved < ?",
        "si", id, (int64_t)STOCK_LOW_BELOW);
    /* the events go out with the commit or not at all: a lost one is a failed commit */
    rc = st != NULL ? SOUK_ROW : SOUK_EDB;
    while (rc == SOUK_ROW && (rc = souk_stmt_step(st)) == SOUK_ROW) {
        json_t *data = json_pack("{s:s,s:I}", "product_id", souk_stmt_text(st, 0),
                                 "stock_available", (json_int_t)souk_stmt_int(st, 1));
        int erc = souk_event_emit(db, "stock.low", souk_stmt_text(st, 0), data);
        if (erc < 0) {
            souk_stmt_done(st);
            rc = erc;
        }
    }
    return rc < 0 ? souk_handler_db_error(r, rc, "cannot commit") : 200;
}

int reservations_commit(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    struct souk_db *db = souk_req_db(r);
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc != 0)
        return souk_handler_db_error(r, rc, "cannot commit");
    int status = commit_locked(r, db, id);
    rc = status == 200 ? souk_db_commit(db) : 0;
    if (status != 200 || rc != 0) {
        souk_db_rollback(db);
        return rc != 0 ? souk_handler_db_error(r, rc, "cannot commit") : status;
    }
    souk_reply_json(r, json_pack("{s:s,s:s}", "reservation_id", id, "status", "committed"));
    return 200;
}

/* Release held stock; an unknown id leaves a tombstone so a reserve that arrives
 * late (after its caller gave up and released) cannot hold stock forever. */
static int release_locked(struct souk_req *r, struct souk_db *db, const char *id)
{
    struct souk_stmt *st = souk_db_query(
        db, "SELECT status FROM reservations WHERE id = ?" SOUK_IF_PG(" FOR UPDATE"), "s", id);
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot release");
    if (rc != SOUK_ROW) {
        rc = souk_db_run(db,
                         "INSERT INTO reservations (id, status, release_reason, expires_at,"
                         " created_at, updated_at) VALUES (?, 'released', 'requested', 0, ?, ?)",
                         "sss", id, now, now);
        return rc < 0 ? souk_handler_db_error(r, rc, "cannot release") : 200;
    }
    char *status = souk_req_printf(r, "%s", souk_stmt_text(st, 0));
    souk_stmt_done(st);
    if (strcmp(status, "released") == 0)
        return 200;
    if (strcmp(status, "held") != 0)
        return souk_problem(r, 409, "already_committed", "reservation %s is committed", id);
    rc = release_held(db, id, "requested");
    return rc == 0 ? 200 : souk_handler_db_error(r, rc, "cannot release");
}

int reservations_release(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    if (!valid_reservation_id(id))
        return souk_problem(r, 404, "reservation_not_found", "no reservation %s", id);
    struct souk_db *db = souk_req_db(r);
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc != 0)
        return souk_handler_db_error(r, rc, "cannot release");
    int status = release_locked(r, db, id);
    rc = status == 200 ? souk_db_commit(db) : 0;
    if (status != 200 || rc != 0) {
        souk_db_rollback(db);
        return rc != 0 ? souk_handler_db_error(r, rc, "cannot release") : status;
    }
    souk_reply_json(r, json_pack("{s:s,s:s}", "reservation_id", id, "status", "released"));
    return 200;
}

/* order.cancelled: stock that was sold comes back on hand; held stock is released. */
int reservations_on_order_cancelled(struct souk_db *db, const struct souk_event *ev)
{
    const char *id = json_string_value(json_object_get(ev->data, "order_id"));
    if (id == NULL)
        id = ev->subject;
    if (id == NULL)
        return SOUK_EINVAL;
    struct souk_stmt *st = souk_db_query(
        db, "SELECT status FROM reservations WHERE id = ?" SOUK_IF_PG(" FOR UPDATE"), "s", id);
    if (st == NULL || souk_stmt_step(st) != SOUK_ROW)
        return 0; /* never reserved: nothing to give back */
    char status[16];
    snprintf(status, sizeof(status), "%s", souk_stmt_text(st, 0));
    souk_stmt_done(st);
    if (strcmp(status, "held") == 0)
        return release_held(db, id, "requested");
    if (strcmp(status, "committed") != 0)
        return 0;
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    int rc =
        souk_db_run(db,
                    "UPDATE products SET on_hand = on_hand + ri.quantity, version = version + 1"
                    " FROM reservation_items ri WHERE ri.reservation_id = ?"
                    " AND products.id = ri.product_id",
                    "s", id);
    if (rc >= 0)
        rc = souk_db_run(
            db, "UPDATE reservations SET status = 'restocked', updated_at = ? WHERE id = ?", "ss",
            now, id);
    return rc < 0 ? rc : 0;
}

/* ---- the sweeper: expired held reservations give their stock back ---- */

static pthread_t sweeper;
static volatile bool sweeping;
static struct souk_metric *expired_total;

static void sweep_once(struct souk_db *db)
{
    char ids[SWEEP_BATCH][RESERVATION_ID_MAX + 1];
    size_t n = 0;
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT id FROM reservations WHERE status = 'held'"
                                         " AND expires_at < ? LIMIT ?",
                                         "ii", souk_wall_ms(), (int64_t)SWEEP_BATCH);
    while (st != NULL && n < SWEEP_BATCH && souk_stmt_step(st) == SOUK_ROW)
        snprintf(ids[n++], sizeof(ids[0]), "%s", souk_stmt_text(st, 0));
    souk_stmt_done(st);
    for (size_t i = 0; i < n; i++) {
        if (souk_db_begin_mode(db, SOUK_TX_LOCKS) != 0)
            return;
        /* re-check with the row locked: a commit (here or on another replica) may
         * have won the race */
        int64_t still = 0;
        if (souk_db_int(db, &still,
                        "SELECT 1 FROM reservations WHERE id = ? AND status = 'held'" SOUK_IF_PG(
                            " FOR UPDATE"),
                        "s", ids[i]) < 0 ||
            !still || release_held(db, ids[i], "expired") != 0 || souk_db_commit(db) != 0) {
            souk_db_rollback(db);
            continue;
        }
        souk_metric_add(expired_total, 1.0);
        souk_info("reservation expired", "{s:s}", "reservation_id", ids[i]);
    }
}

static void *sweep_loop(void *arg)
{
    SOUK_UNUSED(arg);
    struct souk_db *db = souk_db_thread();
    while (sweeping && db != NULL) {
        sweep_once(db);
        usleep(SWEEP_INTERVAL_MS * 1000);
    }
    return NULL;
}

int reservations_start(void)
{
    expired_total = souk_metric_counter("catalog_reservations_expired_total",
                                        "Held reservations whose TTL ran out.", NULL);
    sweeping = true;
    return pthread_create(&sweeper, NULL, sweep_loop, NULL) == 0 ? 0 : SOUK_ENOMEM;
}

void reservations_stop(void)
{
    sweeping = false;
    pthread_join(sweeper, NULL);
}

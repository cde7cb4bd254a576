/* api.c: the orders API (DESIGN §4): place the cart as an order (Idempotency-Key,
 * then the saga with a bounded wait), list and read with ownership, cancel, and
 * the admin's ship. The saga itself is saga.c. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orders.h"
#include "souk/client.h"
#include "souk/cart/v1/cart.pb-c.h"
#include "souk/config.h"
#include "souk/grpc.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/idempotency.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/page.h"
#include "souk/souk.h"
#include "souk/trace.h"
#include "souk/users/v1/users.pb-c.h"

#define REF_MAX   64
#define LINES_MAX 50
#define URL_MAX   512

#define ORDER_COLUMNS                                                                              \
    "id, user_id, status, reason, items_json, subtotal_cents, shipping_cents, total_cents,"        \
    " currency, shipping_address_json, payment_method_id, refunded_cents, created_at,"             \
    " updated_at, shipped_at, cancelled_at, step"

/* Render the row of an ORDER_COLUMNS query. */
static json_t *row_json(struct souk_stmt *st, bool *settled)
{
    json_t *o = souk_stmt_row_json(st);
    const char *step = souk_stmt_text(st, 16);
    const char *status = souk_stmt_text(st, 2);
    if (settled != NULL)
        *settled = strcmp(step, "done") == 0 && strcmp(status, "pending") != 0;
    if (strcmp(step, "refund") == 0) /* a cancellation is under way */
        json_object_set_new(o, "cancellation_pending", json_true());
    json_object_del(o, "step");
    static const char *const optional[] = {"reason", "shipped_at", "cancelled_at"};
    for (size_t i = 0; i < SOUK_ARRAY_LEN(optional); i++)
        if (json_is_null(json_object_get(o, optional[i])))
            json_object_del(o, optional[i]);
    return o;
}

int order_read(struct souk_db *db, const char *id, bool *settled, json_t **out)
{
    *out = NULL;
    if (db == NULL)
        return SOUK_EUNAVAIL;
    struct souk_stmt *st =
        souk_db_query(db, "SELECT " ORDER_COLUMNS " FROM orders WHERE id = ?", "s", id);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return rc < 0 ? rc : SOUK_ENOTFOUND;
    *out = row_json(st, settled);
    souk_stmt_done(st);
    return 0;
}

/* 0 when order id exists and the caller may see it (own, or an admin); else the
 * problem's status: 404, or the database error's when it cannot say. */
static int visible(struct souk_req *r, const char *id)
{
    const struct souk_identity *who = souk_req_identity(r);
    int64_t n = 0;
    int rc =
        souk_id_valid(id, "ord")
            ? souk_db_int(souk_req_db(r), &n,
                          "SELECT count(*) FROM orders WHERE id = ? AND (? <> 0 OR user_id = ?)",
                          "sis", id, (int64_t)who->admin, who->sub)
            : 1;
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot read the order");
    if (n != 1)
        return souk_problem(r, 404, "order_not_found", "no order %.64s", id);
    return 0;
}

/* ---- GET ---- */

/* The admin sees the trace of the order's checkout (docs/tracing.md): trace_id, the
 * id GET /api/v1/admin/traces/{id} takes. An order placed before it was recorded has
 * none. */
static int add_trace_id(struct souk_db *db, const char *id, json_t *o)
{
    struct souk_stmt *st = souk_db_query(db, "SELECT trace_id FROM orders WHERE id = ?", "s", id);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return rc < 0 ? rc : SOUK_ENOTFOUND;
    const char *trace_id = souk_stmt_text(st, 0);
    if (trace_id != NULL && trace_id[0] != '\0')
        json_object_set_new(o, "trace_id", json_string(trace_id));
    souk_stmt_done(st);
    return 0;
}

/* Answer with the order as it is now. */
static int reply_order(struct souk_req *r, const char *id, int status)
{
    json_t *o;
    int rc = order_read(souk_req_db(r), id, NULL, &o);
    if (rc == 0 && souk_req_identity(r)->admin && (rc = add_trace_id(souk_req_db(r), id, o)) != 0)
        json_decref(o);
    if (rc != 0)
        return souk_handler_db_error(r, rc, "cannot read the order");
    souk_reply_json(r, o);
    return status;
}

int orders_get(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    int status = visible(r, id);
    return status != 0 ? status : reply_order(r, id, 200);
}

/* The row of a list: an order as GET shows it. */
static json_t *list_row(struct souk_stmt *st) { return row_json(st, NULL); }

int orders_list(struct souk_req *r)
{
    const struct souk_identity *who = souk_req_identity(r);
    const char *user = who->admin ? souk_req_query(r, "user_id") : who->sub;
    struct souk_check c;
    struct souk_page pg;
    souk_check_init(&c);
    if (user != NULL && !souk_id_valid(user, "usr"))
        souk_check_fail(&c, "user_id", "must be a user id (usr_…)");
    int status = souk_page_start(&pg, r, &c, "orders", "user=%s", user ? user : "*");
    if (status != 0)
        return status;
    struct souk_stmt *st =
        souk_db_query(souk_req_db(r),
                      "SELECT " ORDER_COLUMNS " FROM orders WHERE (?1 IS NULL OR user_id = ?1)"
                      " AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
                      "SSi", user, pg.after, pg.limit);
    return souk_page_reply(&pg, r, st, list_row, "cannot read the orders");
}

/* ---- POST: validating the request ---- */

struct place_in {
    const char *payment_method_id, *address_id;
    json_t *address;           /* inline shipping_address, validated; borrowed */
    const char *key, *request; /* the Idempotency-Key; the body as its record hashes it */
};

/* Validate an address object into a clean copy (only known fields), recording
 * errors under prefix. Same rules as the users service's addresses. */
static json_t *check_address(struct souk_check *c, json_t *a, const char *prefix)
{
    struct souk_check sub;
    souk_check_init(&sub);
    static const char *const allowed[] = {"name",        "line1",   "line2", "city", "region",
                                          "postal_code", "country", "phone", NULL};
    souk_json_only(&sub, a, allowed);
    const char *f[] = {
        souk_json_str(&sub, a, "name", SOUK_REQUIRED, 1, 100),
        souk_json_str(&sub, a, "line1", SOUK_REQUIRED, 1, 200),
        souk_json_str(&sub, a, "line2", SOUK_OPTIONAL, 0, 200),
        souk_json_str(&sub, a, "city", SOUK_REQUIRED, 1, 100),
        souk_json_str(&sub, a, "region", SOUK_OPTIONAL, 0, 100),
        souk_json_str(&sub, a, "postal_code", SOUK_REQUIRED, 1, 20),
        souk_json_str(&sub, a, "country", SOUK_REQUIRED, 2, 2),
        souk_json_str(&sub, a, "phone", SOUK_OPTIONAL, 0, 32),
    };
    const char *country = f[6];
    if (country != NULL &&
        !(isupper((unsigned char)country[0]) && isupper((unsigned char)country[1])))
        souk_check_fail(&sub, "country", "must be an ISO 3166-1 alpha-2 code such as \"US\"");
    json_t *out = NULL;
    if (souk_check_ok(&sub)) {
        out = json_object();
        for (size_t i = 0; i < SOUK_ARRAY_LEN(f); i++)
            if (f[i] != NULL)
                json_object_set_new(out, allowed[i], json_string(f[i]));
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(sub.errors, i, e)
        {
            char field[96];
            snprintf(field, sizeof(field), "%s.%s", prefix,
                     json_string_value(json_object_get(e, "field")));
            souk_check_fail(c, field, "%s", json_string_value(json_object_get(e, "message")));
        }
    }
    souk_check_free(&sub);
    return out;
}

static const char *const place_fields[] = {"payment_method_id", "address_id", "shipping_address",
                                           NULL};

/* The body past its opening (souk_handler_open with place_fields). */
static bool check_place(struct souk_check *c, json_t *body, struct place_in *in)
{
    in->payment_method_id = souk_json_str(c, body, "payment_method_id", SOUK_REQUIRED, 1, REF_MAX);
    in->address_id = souk_json_str(c, body, "address_id", SOUK_OPTIONAL, 1, REF_MAX);
    json_t *a = souk_json_object(c, body, "shipping_address", SOUK_OPTIONAL);
    in->address = NULL;
    if (in->payment_method_id != NULL && !souk_id_valid(in->payment_method_id, "pm"))
        souk_check_fail(c, "payment_method_id", "must be a payment method id (pm_…)");
    /* it becomes a path segment of the call to users: only an address id gets there */
    if (in->address_id != NULL && !souk_id_valid(in->address_id, "adr"))
        souk_check_fail(c, "address_id", "must be an address id (adr_…)");
    json_t *sent = json_object_get(body, "shipping_address");
    bool has_inline = sent != NULL && !json_is_null(sent);
    if (in->address_id == NULL && !has_inline && json_object_get(body, "address_id") == NULL)
        souk_check_fail(c, "address_id", "send address_id or shipping_address");
    else if (in->address_id != NULL && has_inline)
        souk_check_fail(c, "address_id", "send address_id or shipping_address, not both");
    if (a != NULL)
        in->address = check_address(c, a, "shipping_address");
    return souk_check_ok(c);
}

/* GET a peer's internal resource with our service token; the path is fmt with
 * each "%s" argument percent-encoded as one segment (souk_client_url). Returns the
 * HTTP status (0 when no answer came) and *out on 200. */
static int peer_get(struct souk_req *r, const char *peers, json_t **out, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int peer_get(struct souk_req *r, const char *peers, json_t **out, const char *fmt, ...)
{
    char base[URL_MAX], url[URL_MAX * 2], shown[URL_MAX * 2];
    struct souk_response res = {0};
    va_list ap;
    va_start(ap, fmt);
    int rc =
        souk_client_vurl(url, sizeof(url), souk_client_pick(peers, base, sizeof(base)), fmt, ap);
    va_end(ap);
    if (rc == 0) {
        struct souk_call call = {.method = "GET",
                                 .url = url,
                                 .service_token = true,
                                 .parent = r,
                                 .timeout_ms = orders_call_timeout_ms,
                                 .retries = -1,
                                 .peers = peers};
        rc = souk_client_do(&call, &res);
    }
    int status = rc == 0 ? res.status : 0;
    *out = status == 200 && json_is_object(res.json) ? json_incref(res.json) : NULL;
    if (status == 200 && *out == NULL)
        status = 502;
    if (status != 200 && status != 404)
        souk_warn("peer call failed", "{s:s,s:i,s:s}", "url",
                  souk_config_redact_url(url, shown, sizeof(shown)), "status", status, "error",
                  souk_strerror(rc));
    souk_response_free(&res);
    return status;
}

/* The same read over gRPC (peers is a grpc:// list): the RPC rpc with req (REST
 * names; taken). The same answer as peer_get: the HTTP-equivalent status, *out on 200. */
static int peer_rpc(struct souk_req *r, const char *peers, json_t **out, const char *rpc,
                    const ProtobufCMessageDescriptor *type,
                    const ProtobufCMessageDescriptor *resp_type, json_t *req)
{
    struct souk_response res = {0};
    struct souk_grpc_call call = {.method = rpc,
                                  .response_type = resp_type,
                                  .service_token = true,
                                  .parent = r,
                                  .timeout_ms = orders_call_timeout_ms,
                                  .retries = 1 /* a read: another replica may answer */};
    int rc = souk_grpc_call_json(peers, &call, type, req, &res);
    json_decref(req);
    int status = rc == 0 ? res.status : 0;
    *out = status == 200 && json_is_object(res.json) ? json_incref(res.json) : NULL;
    if (status == 200 && *out == NULL)
        status = 502;
    if (status != 200 && status != 404)
        souk_warn("peer call failed", "{s:s,s:i,s:s}", "rpc", rpc, "status", status, "error",
                  souk_strerror(rc));
    souk_response_free(&res);
    return status;
}

/* The cart's lines as order lines, checked; NULL (with *empty) when there are none
 * or they are malformed. */
static json_t *cart_lines(json_t *cart, bool *empty)
{
    json_t *items = json_object_get(cart, "items"), *lines = json_array(), *it;
    size_t i;
    *empty = !json_is_array(items) || json_array_size(items) == 0;
    if (*empty || json_array_size(items) > LINES_MAX)
        goto bad;
    json_array_foreach(items, i, it)
    {
        const char *pid = json_string_value(json_object_get(it, "product_id"));
        const char *name = json_string_value(json_object_get(it, "name"));
        json_t *q = json_object_get(it, "quantity"), *p = json_object_get(it, "unit_price_cents");
        if (pid == NULL || !souk_id_valid(pid, "prd") || !json_is_integer(q) ||
            json_integer_value(q) < 1 || json_integer_value(q) > 99 || !json_is_integer(p) ||
            json_integer_value(p) < 0)
            goto bad;
        json_array_append_new(lines,
                              json_pack("{s:s,s:s,s:I,s:I,s:I}", "product_id", pid, "name",
                                        name ? name : "", "unit_price_cents", json_integer_value(p),
                                        "quantity", json_integer_value(q), "line_total_cents",
                                        json_integer_value(p) * json_integer_value(q)));
    }
    return lines;
bad:
    json_decref(lines);
    return NULL;
}

/* The Idempotency-Key's look-up (rc) as the request's fate: 0 with id empty to place
 * the order, 0 with id filled to answer as for that order (a replay), or the status
 * sent. Frees k. */
static int key_outcome(struct souk_req *r, struct souk_idem *k, int rc, char id[SOUK_ID_MAX])
{
    int status = 0;
    id[0] = '\0';
    switch (rc) {
    case SOUK_IDEM_PROCEED:
        break;
    case SOUK_IDEM_REPLAY: {
        json_t *first = json_loads(k->response ? k->response : "", 0, NULL);
        const char *was = json_string_value(json_object_get(first, "order_id"));
        snprintf(id, SOUK_ID_MAX, "%s", was != NULL ? was : "");
        json_decref(first);
        souk_reply_header(r, "Idempotent-Replayed", "true");
        if (id[0] == '\0')
            status = souk_problem(r, 500, "internal", "the first response was lost");
        break;
    }
    case SOUK_IDEM_MISMATCH:
        status = souk_problem(r, 409, "idempotency_key_reused",
                              "this Idempotency-Key was used with a different request");
        break;
    case SOUK_IDEM_IN_USE:
        souk_reply_header(r, "Retry-After", "1");
        status = souk_problem(r, 409, "idempotency_key_in_use",
                              "a request with this Idempotency-Key is still running");
        break;
    default:
        status = souk_handler_db_error(r, rc, "cannot check the Idempotency-Key");
    }
    souk_idem_free(k);
    return status;
}

/* Take the key in the open transaction: PROCEED, another outcome, or a code. */
static int take_key(struct souk_req *r, struct souk_idem *k, const struct place_in *in)
{
    return souk_idem_begin_in_tx(souk_req_db(r), k, souk_req_identity(r)->sub, in->key, "POST",
                                 "/api/v1/orders", in->request, strlen(in->request), 0);
}

/* Step 1 of the saga: the order, pending, with the idempotency record, in one
 * transaction that also takes the key (a duplicate that placed its order meanwhile
 * is answered with the replay). Returns 0 with id filled, or a problem status. */
static int insert_order(struct souk_req *r, const struct place_in *in, json_t *lines,
                        const char *currency, json_t *address, char id[SOUK_ID_MAX])
{
    struct souk_db *db = souk_req_db(r);
    int64_t subtotal = 0;
    size_t i;
    json_t *it;
    json_array_foreach(lines, i, it) subtotal +=
        json_integer_value(json_object_get(it, "line_total_cents"));
    int64_t shipping = orders_shipping_cents(subtotal);
    char now[SOUK_TIME_MAX], response[SOUK_ID_MAX + 32], trace_id[SOUK_TRACE_ID_HEX + 1], flags[3];
    const char *tp = souk_req_traceparent(r);
    if (!souk_trace_parse(tp, trace_id, flags)) /* the kit's own: always well formed */
        trace_id[0] = '\0';
    souk_id_new(id, "ord");
    souk_time_now(now);
    char *items_text = souk_json_dump(lines, NULL), *addr_text = souk_json_dump(address, NULL);
    snprintf(response, sizeof(response), "{\"order_id\":\"%s\"}", id);
    /* the key's look-up and two writes (a new row, our key's row): row locks are
     * enough. On PostgreSQL a duplicate that raced us to a new key fails at its insert
     * and runs again, to find our record. The order is born leased to this replica,
     * which runs its saga and answers the wait; another replica's scanner takes it
     * only if this one dies first (saga.c) */
    struct souk_idem k = {0};
    int rc, outcome = SOUK_IDEM_PROCEED;
    for (int tries = 0;; tries++) {
        rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
        if (rc == 0)
            rc = outcome = take_key(r, &k, in);
        if (rc == SOUK_IDEM_PROCEED) {
            rc = souk_db_run(
                db,
                "INSERT INTO orders (id, user_id, status, step, items_json, "
                "subtotal_cents, shipping_cents,"
                " total_cents, currency, shipping_address_json, payment_method_id, "
                "created_at, updated_at, trace_id, traceparent, lease_owner, lease_until)"
                " VALUES (?, ?, 'pending', 'reserve', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                "sssiiissssssssi", id, souk_req_identity(r)->sub, items_text, subtotal, shipping,
                subtotal + shipping, currency, addr_text, in->payment_method_id, now, now, trace_id,
                tp, saga_handover(), souk_wall_ms() + SAGA_LEASE_MS);
            if (rc >= 0)
                rc = souk_idem_complete(db, &k, 201, response);
            if (rc >= 0)
                rc = souk_db_commit(db);
        }
        if (rc != SOUK_ECONFLICT || tries == 2)
            break;
        souk_db_rollback(db);
        souk_idem_free(&k);
    }
    free(items_text);
    free(addr_text);
    if (rc < 0) {
        souk_db_rollback(db);
        souk_idem_free(&k);
        return souk_handler_db_error(r, rc, "cannot save the order");
    }
    if (outcome != SOUK_IDEM_PROCEED) { /* a duplicate placed its order meanwhile, or a 409 */
        souk_db_rollback(db);
        return key_outcome(r, &k, outcome, id);
    }
    souk_idem_free(&k);
    souk_metric_inc(orders_transitions, "pending");
    souk_info("order placed", "{s:s,s:s,s:I}", "order_id", id, "user_id", souk_req_identity(r)->sub,
              "subtotal_cents", (json_int_t)subtotal);
    return 0;
}

/* Read the cart and the address (nothing is written, so a failure leaves the key as
 * it was, usable for a retry once the cause is fixed), then create the order. */
static int place(struct souk_req *r, const struct place_in *in, char id[SOUK_ID_MAX])
{
    const char *user = souk_req_identity(r)->sub;
    json_t *cart = NULL, *address = in->address ? json_incref(in->address) : NULL, *lines = NULL;
    const char *cart_peer = orders_peer(orders_cart_rpc, orders_cart_url);
    const char *users_peer = orders_peer(orders_users_rpc, orders_users_url);
    int status =
        souk_grpc_url(cart_peer)
            ? peer_rpc(r, cart_peer, &cart, "/souk.cart.v1.Carts/GetCart",
                       &souk__cart__v1__get_cart_request__descriptor,
                       &souk__cart__v1__cart__descriptor, json_pack("{s:s}", "user_id", user))
            : peer_get(r, orders_cart_url, &cart, "/internal/v1/carts/%s", user);
    if (status != 200) {
        status = souk_problem(r, 503, "cart_unavailable", "the cart cannot be read; retry");
        goto out;
    }
    bool empty;
    if ((lines = cart_lines(cart, &empty)) == NULL) {
        status = empty ? souk_problem(r, 409, "cart_empty", "the cart is empty")
                       : souk_problem(r, 502, "bad_gateway", "the cart sent malformed lines");
        goto out;
    }
    if (address == NULL) {
        status =
            souk_grpc_url(users_peer)
                ? peer_rpc(r, users_peer, &address, "/souk.users.v1.Users/GetAddress",
                           &souk__users__v1__get_address_request__descriptor,
                           &souk__users__v1__address__descriptor,
                           json_pack("{s:s,s:s}", "user_id", user, "address_id", in->address_id))
                : peer_get(r, orders_users_url, &address, "/internal/v1/users/%s/addresses/%s",
                           user, in->address_id);
        if (status == 404) {
            struct souk_check c;
            souk_check_init(&c);
            souk_check_fail(&c, "address_id", "is not one of your addresses");
            status = souk_problem_check(r, &c);
            goto out;
        }
        if (status != 200) {
            status = souk_problem(r, 503, "users_unavailable", "the address cannot be read; retry");
            goto out;
        }
        json_object_del(address, "created_at");
    }
    const char *currency = json_string_value(json_object_get(cart, "currency"));
    status = insert_order(r, in, lines, currency && strlen(currency) == 3 ? currency : "USD",
                          address, id);
out:
    json_decref(cart);
    json_decref(lines);
    json_decref(address);
    return status;
}

int orders_create(struct souk_req *r)
{
    struct souk_db *db = souk_req_db(r);
    const char *key = souk_req_header(r, "Idempotency-Key");
    struct place_in in;
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, place_fields);
    if (body == NULL)
        return souk_req_status(r);
    bool ok = check_place(&c, body, &in);
    json_t *clean_address = in.address;
    if (!ok) {
        json_decref(clean_address);
        return souk_problem_check(r, &c);
    }
    if (key == NULL || !souk_idem_key_valid(key)) {
        json_decref(clean_address);
        return key == NULL ? souk_problem(r, 400, "idempotency_key_required",
                                          "send an Idempotency-Key header")
                           : souk_problem(r, 400, "invalid_idempotency_key",
                                          "Idempotency-Key must be 1 to %d printable characters",
                                          SOUK_IDEM_KEY_MAX);
    }
    /* a look first, so a retry of a placed order replays without reading the cart (it
     * is emptied by then); the key is taken in the order's own transaction */
    struct souk_idem k;
    char *canon = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    in.key = key;
    in.request = canon != NULL ? canon : "";
    char id[SOUK_ID_MAX] = "";
    int rc = souk_idem_peek(db, &k, souk_req_identity(r)->sub, key, "POST", "/api/v1/orders",
                            in.request, strlen(in.request));
    int status = key_outcome(r, &k, rc, id);
    if (status == 0 && id[0] == '\0')
        status = place(r, &in, id);
    free(canon);
    json_decref(clean_address);
    if (status != 0)
        return status;
    int waited = wait_for_order(r, id, 201);
    saga_kick(id);
    return waited;
}

/* ---- cancel and ship ---- */

/* Read status and step inside the open transaction. 0, or the database's error. */
static int order_state(struct souk_db *db, const char *id, char status[16], char step[16])
{
    struct souk_stmt *st = souk_db_query(
        db, "SELECT status, step FROM orders WHERE id = ?" SOUK_IF_PG(" FOR UPDATE"), "s", id);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW) /* none: it was there a moment ago (visible()), orders are never deleted */
        return rc < 0 ? rc : SOUK_EDB;
    snprintf(status, 16, "%s", souk_stmt_text(st, 0));
    snprintf(step, 16, "%s", souk_stmt_text(st, 1));
    souk_stmt_done(st);
    return 0;
}

/* For cancel and ship: the caller may see the order; lock it (SQLite: the write lock;
 * PostgreSQL: its row) and read its status and step. 0 with the transaction open, or
 * a problem's status. */
static int lock_order(struct souk_req *r, struct souk_db *db, const char *id, char status[16],
                      char step[16])
{
    int seen = visible(r, id);
    if (seen != 0)
        return seen;
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc == 0)
        rc = order_state(db, id, status, step);
    if (rc != 0) {
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, "cannot read the order");
    }
    return 0;
}

int orders_cancel(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    struct souk_db *db = souk_req_db(r);
    char status[16], step[16], now[SOUK_TIME_MAX];
    int locked = lock_order(r, db, id, status, step);
    if (locked != 0)
        return locked;
    if (strcmp(status, "cancelled") == 0 ||
        (strcmp(status, "confirmed") == 0 && strcmp(step, "refund") == 0)) {
        souk_db_rollback(db); /* already cancelled or being cancelled: the same answer */
        return wait_for_order(r, id, 200);
    }
    if (strcmp(status, "pending") == 0 || strcmp(step, "done") != 0) {
        souk_db_rollback(db);
        souk_reply_header(r, "Retry-After", "1");
        return souk_problem(r, 409, "order_pending",
                            "the order is still being placed; retry when it is settled");
    }
    if (strcmp(status, "confirmed") != 0) {
        souk_db_rollback(db);
        return souk_problem(r, 409, "not_cancellable", "a %s order cannot be cancelled", status);
    }
    souk_time_now(now);
    const char *reason =
        souk_req_identity(r)->admin ? "cancelled_by_admin" : "cancelled_by_customer";
    int rc = souk_db_run(
        db,
        "UPDATE orders SET step = 'refund', reason = ?, attempts = 0, next_attempt_ms = 0,"
        " updated_at = ?, traceparent = ?, lease_owner = ?, lease_until = ? WHERE id = ?",
        /* the refund: this request's trace, run by this replica */
        "ssssis", reason, now, souk_req_traceparent(r), saga_handover(),
        souk_wall_ms() + SAGA_LEASE_MS, id);
    if (rc >= 0)
        rc = rc == 1 ? souk_db_commit(db) : SOUK_EDB; /* locked and read: it is there */
    if (rc != 0) {
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, "cannot cancel the order");
    }
    souk_info("order cancellation started", "{s:s,s:s}", "order_id", id, "by",
              souk_req_identity(r)->sub);
    int waited = wait_for_order(r, id, 200);
    saga_kick(id);
    return waited;
}

int orders_ship(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    struct souk_db *db = souk_req_db(r);
    char status[16], step[16], now[SOUK_TIME_MAX];
    int locked = lock_order(r, db, id, status, step);
    if (locked != 0)
        return locked;
    if (strcmp(status, "shipped") == 0) {
        souk_db_rollback(db);
        return reply_order(r, id, 200);
    }
    if (strcmp(status, "confirmed") != 0 || strcmp(step, "done") != 0) {
        souk_db_rollback(db);
        return souk_problem(r, 409, "not_shippable",
                            "only a confirmed order can ship (this one is %s%s)", status,
                            strcmp(step, "refund") == 0 ? ", being cancelled" : "");
    }
    souk_time_now(now);
    json_t *o = NULL;
    int rc = souk_db_run(db,
                         "UPDATE orders SET status = 'shipped', shipped_at = ?, updated_at = ?"
                         " WHERE id = ?",
                         "sss", now, now, id);
    if (rc >= 0)
        rc = rc == 1 ? order_read(db, id, NULL, &o) : SOUK_EDB; /* locked and read: it is there */
    const char *user = json_string_value(json_object_get(o, "user_id"));
    if (rc == 0)
        rc = user != NULL ? souk_event_emit(db, "order.shipped", id,
                                            json_pack("{s:s,s:s,s:s}", "order_id", id, "user_id",
                                                      user, "shipped_at", now))
                          : SOUK_EDB;
    if (rc == 0)
        rc = souk_db_commit(db);
    json_decref(o);
    if (rc != 0) {
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, "cannot ship the order");
    }
    souk_metric_inc(orders_transitions, "shipped");
    souk_info("order shipped", "{s:s}", "order_id", id);
    return reply_order(r, id, 200);
}

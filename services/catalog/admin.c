/* admin.c: the catalog's admin writes (DESIGN §4): create, edit (optimistic
 * concurrency: If-Match against the ETag "v<version>"), archive, and set stock.
 * Every change bumps version and updated_at and emits product.updated in the same
 * transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "search.h"
#include "souk/events.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/souk.h"

#define PRICE_MAX      1000000000
#define STOCK_MAX      1000000000
#define ATTRIBUTES_MAX 64
#define ETAG_MAX       48

/* The product (PRODUCT_COLUMNS plus version) as JSON into *out, archived or not: 1,
 * or 0 when there is none (*out NULL), or the failed step's error. */
static int load(struct souk_db *db, const char *id, json_t **out, int64_t *version, bool *archived)
{
    *out = NULL;
    struct souk_stmt *st =
        souk_db_query(db,
                      "SELECT " PRODUCT_COLUMNS ", p.version, p.archived"
                      " FROM products p WHERE p.id = ?" SOUK_IF_PG(" FOR UPDATE"),
                      "s", id);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return rc < 0 ? rc : 0;
    json_t *p = souk_stmt_row_json(st);
    souk_stmt_done(st);
    *version = json_integer_value(json_object_get(p, "version"));
    *archived = json_integer_value(json_object_get(p, "archived")) != 0;
    json_object_del(p, "version");
    json_object_del(p, "archived");
    *out = p;
    return 1;
}

static void set_etag(struct souk_req *r, int64_t version)
{
    char etag[ETAG_MAX];
    snprintf(etag, sizeof(etag), "\"v%lld\"", (long long)version);
    souk_reply_header(r, "ETag", etag);
}

/* Does an If-Match list name this version? "*" matches any existing product. */
static bool etag_matches(const char *if_match, int64_t version)
{
    char etag[ETAG_MAX];
    snprintf(etag, sizeof(etag), "\"v%lld\"", (long long)version);
    if (strcmp(if_match, "*") == 0)
        return true;
    size_t n = strlen(etag);
    for (const char *p = if_match; (p = strstr(p, etag)) != NULL; p += n) {
        char after = p[n];
        if ((p == if_match || p[-1] == ' ' || p[-1] == ',') &&
            (after == '\0' || after == ',' || after == ' '))
            return true;
    }
    return false;
}

/* Emit product.updated inside the open transaction: 0 or the outbox write's error. */
static int emit_updated(struct souk_db *db, const char *id, json_t *product, int64_t version,
                        bool archived)
{
    json_t *data = json_pack("{s:s,s:O,s:O,s:O,s:O,s:I,s:b}", "id", id, "name",
                             json_object_get(product, "name"), "price_cents",
                             json_object_get(product, "price_cents"), "currency",
                             json_object_get(product, "currency"), "stock_available",
                             json_object_get(product, "stock_available"), "version",
                             (json_int_t)version, "archived", archived);
    return souk_event_emit(db, "product.updated", id, data);
}

/* Commit with the event, then answer with the product and its new ETag. */
static int finish(struct souk_req *r, struct souk_db *db, const char *id, int status)
{
    int64_t version;
    bool archived;
    json_t *p;
    int rc = load(db, id, &p, &version, &archived);
    if (rc == 0) /* written in this very transaction: never */
        rc = SOUK_EDB;
    if (rc > 0)
        rc = emit_updated(db, id, p, version, archived);
    if (rc == 0)
        rc = souk_db_commit(db);
    if (rc != 0) {
        json_decref(p);
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, "cannot save the product");
    }
    souk_info("product changed", "{s:s,s:I,s:s}", "id", id, "version", (json_int_t)version, "by",
              souk_req_identity(r)->sub);
    if (status == 204) {
        json_decref(p);
        return 204;
    }
    set_etag(r, version);
    souk_reply_json(r, p);
    return status;
}

/* The members a product's body may have; on_hand only on create (read_fields). */
static const char *const product_fields[] = {"sku",      "name",     "description", "price_cents",
                                             "currency", "category", "image_url",   "attributes",
                                             "on_hand",  NULL};

/* Validate the writable fields; required ones only on create. */
struct fields {
    const char *sku, *name, *description, *currency, *category, *image_url;
    int64_t price_cents, on_hand;
    char *attributes; /* compact JSON, malloc'd; NULL when absent */
};

/* Read body (opened with product_fields) into f and its errors into c. 0, or the error
 * of the step that looks the category up (f->attributes is the caller's to free). */
static int read_fields(struct souk_check *c, json_t *body, struct fields *f, bool create,
                       struct souk_db *db)
{
    if (!create && json_object_get(body, "on_hand") != NULL)
        souk_check_fail(c, "on_hand", "is set with PUT /api/v1/products/{id}/stock");
    int req = create ? SOUK_REQUIRED : SOUK_OPTIONAL;
    f->sku = souk_json_str(c, body, "sku", req, 1, 64);
    f->name = souk_json_str(c, body, "name", req, 1, 200);
    f->description = souk_json_str(c, body, "description", SOUK_OPTIONAL, 0, 4000);
    f->price_cents = souk_json_int(c, body, "price_cents", req, 0, PRICE_MAX, -1);
    f->currency = souk_json_str(c, body, "currency", SOUK_OPTIONAL, 3, 3);
    if (f->currency != NULL && strcmp(f->currency, "USD") != 0)
        souk_check_fail(c, "currency", "must be USD");
    f->category = souk_json_str(c, body, "category", req, 1, 64);
    f->image_url = souk_json_str(c, body, "image_url", SOUK_OPTIONAL, 0, 1024);
    if (f->image_url != NULL && f->image_url[0] != '\0' &&
        strncmp(f->image_url, "https://", 8) != 0 && strncmp(f->image_url, "http://", 7) != 0 &&
        f->image_url[0] != '/')
        souk_check_fail(c, "image_url", "must be an http(s) URL or a path");
    f->on_hand = create ? souk_json_int(c, body, "on_hand", SOUK_OPTIONAL, 0, STOCK_MAX, 0) : -1;
    json_t *attrs = souk_json_object(c, body, "attributes", SOUK_OPTIONAL);
    f->attributes = NULL;
    if (attrs != NULL) {
        const char *k;
        json_t *v;
        bool ok = json_object_size(attrs) <= ATTRIBUTES_MAX;
        json_object_foreach(attrs, k, v) ok =
            ok && strlen(k) <= 64 &&
            (json_is_string(v) ? json_string_length(v) <= 256
                               : json_is_number(v) || json_is_boolean(v));
        if (!ok)
            souk_check_fail(c, "attributes",
                            "must be at most 64 members of short strings, numbers or booleans");
        else
            f->attributes = souk_json_dump(attrs, NULL);
    }
    if (f->category != NULL) {
        int64_t known = 0;
        int rc = souk_db_int(db, &known, "SELECT count(*) FROM categories WHERE slug = ?", "s",
                             f->category);
        if (rc < 0)
            return rc;
        if (known == 0)
            souk_check_fail(c, "category", "is not a known category");
    }
    return 0;
}

/* Open a product's body and read it: NULL with the answer's status in *status, for a
 * body that is not a JSON object, a bad field or a failed lookup (f->attributes freed). */
static json_t *open_fields(struct souk_req *r, struct fields *f, bool create, int *status)
{
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, product_fields);
    if (body == NULL) {
        *status = souk_req_status(r);
        return NULL;
    }
    int rc = read_fields(&c, body, f, create, souk_req_db(r));
    if (rc == 0 && souk_check_ok(&c))
        return body;
    free(f->attributes);
    f->attributes = NULL;
    if (rc < 0) {
        souk_check_free(&c);
        *status = souk_handler_db_error(r, rc, "cannot look the category up");
    } else {
        *status = souk_problem_check(r, &c);
    }
    return NULL;
}

/* The words of a new name or description join the search vocabulary (search.h), in the
 * write's transaction, so prefix search finds the product as soon as it is committed. */
static int add_words(struct souk_db *db, const struct fields *f)
{
    int rc = f->name != NULL ? search_words_add(db, f->name) : 0;
    if (rc == 0 && f->description != NULL)
        rc = search_words_add(db, f->description);
    return rc;
}

int products_create(struct souk_req *r)
{
    struct fields f;
    int status;
    if (open_fields(r, &f, true, &status) == NULL)
        return status;
    struct souk_db *db = souk_req_db(r);
    char id[SOUK_ID_MAX], now[SOUK_TIME_MAX];
    souk_id_new(id, "prd");
    souk_time_now(now);
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc != 0) {
        free(f.attributes);
        return souk_handler_db_error(r, rc, "cannot create the product");
    }
    rc = souk_db_run(
        db,
        "INSERT INTO products (id, sku, name, description, price_cents, currency, category,"
        " image_url, attributes, on_hand, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "ssssissssiss", id, f.sku, f.name, f.description ? f.description : "", f.price_cents,
        f.currency ? f.currency : "USD", f.category, f.image_url ? f.image_url : "",
        f.attributes ? f.attributes : "{}", f.on_hand, now, now);
    free(f.attributes);
    if (rc >= 0)
        rc = add_words(db, &f);
    if (rc < 0) {
        souk_db_rollback(db);
        return rc == SOUK_ECONFLICT
                   ? souk_problem(r, 409, "sku_taken", "a product with SKU %s exists", f.sku)
                   : souk_handler_db_error(r, rc, "cannot create the product");
    }
    souk_reply_header(r, "Location", souk_req_printf(r, "/api/v1/products/%s", id));
    return finish(r, db, id, 201);
}

/* Open a transaction and check the product exists and If-Match. Returns 0 with the
 * transaction open, or the error status with it closed (what: for a failed step). */
static int begin_checked(struct souk_req *r, struct souk_db *db, const char *id, bool need_match,
                         const char *what)
{
    const char *if_match = souk_req_header(r, "If-Match");
    if (need_match && if_match == NULL)
        return souk_problem(r, 428, "precondition_required",
                            "send If-Match with the ETag of the product you read");
    if (!souk_id_valid(id, "prd"))
        return souk_problem(r, 404, "product_not_found", "no product %s", id);
    /* the product's row is locked as load() reads it (PostgreSQL; SQLite: the write
     * lock): If-Match and the stock check decide on it */
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc != 0)
        return souk_handler_db_error(r, rc, what);
    int64_t version;
    bool archived;
    json_t *p;
    rc = load(db, id, &p, &version, &archived);
    json_decref(p);
    if (rc < 0) {
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, what);
    }
    if (rc == 0 || archived) {
        souk_db_rollback(db);
        return souk_problem(r, 404, "product_not_found", "no product %s", id);
    }
    if (if_match != NULL && !etag_matches(if_match, version)) {
        souk_db_rollback(db);
        set_etag(r, version);
        return souk_problem(r, 412, "precondition_failed",
                            "the product changed since it was read (now \"v%lld\")",
                            (long long)version);
    }
    return 0;
}

int products_update(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    struct fields f;
    int status;
    if (open_fields(r, &f, false, &status) == NULL)
        return status;
    struct souk_db *db = souk_req_db(r);
    status = begin_checked(r, db, id, true, "cannot update the product");
    if (status != 0) {
        free(f.attributes);
        return status;
    }
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    /* COALESCE keeps what the PATCH did not mention */
    int rc =
        souk_db_run(db,
                    "UPDATE products SET sku = COALESCE(?, sku), name = COALESCE(?, name),"
                    " description = COALESCE(?, description),"
                    " price_cents = CASE WHEN ? < 0 THEN price_cents ELSE ? END,"
                    " currency = COALESCE(?, currency), category = COALESCE(?, category),"
                    " image_url = COALESCE(?, image_url), attributes = COALESCE(?, attributes),"
                    " version = version + 1, updated_at = ? WHERE id = ?",
                    "SSSiiSSSSss", f.sku, f.name, f.description, f.price_cents, f.price_cents,
                    f.currency, f.category, f.image_url, f.attributes, now, id);
    free(f.attributes);
    if (rc >= 0)
        rc = add_words(db, &f);
    if (rc < 0) {
        souk_db_rollback(db);
        return rc == SOUK_ECONFLICT
                   ? souk_problem(r, 409, "sku_taken", "another product has that SKU")
                   : souk_handler_db_error(r, rc, "cannot update the product");
    }
    return finish(r, db, id, 200);
}

int products_archive(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    struct souk_db *db = souk_req_db(r);
    /* If-Match honoured when sent */
    int status = begin_checked(r, db, id, false, "cannot archive the product");
    if (status != 0)
        return status;
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    int rc = souk_db_run(
        db, "UPDATE products SET archived = 1, version = version + 1, updated_at = ? WHERE id = ?",
        "ss", now, id);
    if (rc < 0) {
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, "cannot archive the product");
    }
    return finish(r, db, id, 204);
}

int products_set_stock(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    static const char *const allowed[] = {"on_hand", NULL};
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, allowed);
    if (body == NULL)
        return souk_req_status(r);
    int64_t on_hand = souk_json_int(&c, body, "on_hand", SOUK_REQUIRED, 0, STOCK_MAX, 0);
    if (!souk_check_ok(&c))
        return souk_problem_check(r, &c);
    struct souk_db *db = souk_req_db(r);
    int status = begin_checked(r, db, id, false, "cannot set the stock");
    if (status != 0)
        return status;
    int64_t reserved = 0;
    int rc = souk_db_int(db, &reserved, "SELECT reserved FROM products WHERE id = ?", "s", id);
    if (rc < 0) {
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, "cannot set the stock");
    }
    if (on_hand < reserved) {
        souk_db_rollback(db);
        return souk_problem(r, 409, "below_reserved",
                            "on_hand %lld is below the %lld units reserved", (long long)on_hand,
                            (long long)reserved);
    }
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    rc = souk_db_run(
        db, "UPDATE products SET on_hand = ?, version = version + 1, updated_at = ? WHERE id = ?",
        "iss", on_hand, now, id);
    if (rc < 0) {
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, "cannot set the stock");
    }
    return finish(r, db, id, 200);
}

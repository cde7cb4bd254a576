/* products.c: the public catalog reads besides the list (listing.c): one product with
 * its ETag, and the categories with their counts (kept by triggers, never counted). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "listing.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/souk.h"

int products_get(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    if (!souk_id_valid(id, "prd"))
        return souk_problem(r, 404, "product_not_found", "no product %s", id);
    struct souk_stmt *st = souk_db_query(souk_req_db(r),
                                         "SELECT " PRODUCT_JSON ", p.version FROM products p"
                                         " WHERE p.id = ? AND p.archived = 0",
                                         "s", id);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return rc < 0 ? souk_handler_db_error(r, rc, "cannot read the product")
                      : souk_problem(r, 404, "product_not_found", "no product %s", id);
    char etag[48];
    snprintf(etag, sizeof(etag), "\"v%lld\"", (long long)souk_stmt_int(st, 1));
    souk_reply_header(r, "ETag", etag);
    const char *inm = souk_req_header(r, "If-None-Match");
    if (inm != NULL && (strstr(inm, etag) != NULL || strcmp(inm, "*") == 0)) {
        souk_stmt_done(st);
        return 304;
    }
    const char *doc = souk_stmt_text(st, 0);
    souk_reply_raw(r, "application/json", (char *)doc, strlen(doc), false);
    souk_stmt_done(st);
    return 200;
}

/* POST /internal/v1/products/lookup {ids}: several products at once, in the order
 * asked, for the cart (GetProducts over gRPC). Unknown, archived or malformed ids
 * are listed in missing_ids, not an error. */
int products_lookup(struct souk_req *r)
{
    static const char *const fields[] = {"ids", NULL};
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, fields);
    if (body == NULL)
        return souk_req_status(r);
    json_t *ids = souk_json_array(&c, body, "ids", SOUK_REQUIRED, LOOKUP_MAX), *it;
    size_t i;
    json_array_foreach(ids, i, it) if (!json_is_string(it))
        souk_check_fail(&c, souk_req_printf(r, "ids[%zu]", i), "must be a string");
    if (!souk_check_ok(&c))
        return souk_problem_check(r, &c);
    souk_check_free(&c);
    json_t *items = json_array(), *missing = json_array();
    int rc = 0;
    json_array_foreach(ids, i, it)
    {
        const char *id = json_string_value(it);
        json_t *doc = NULL;
        if (souk_id_valid(id, "prd")) {
            struct souk_stmt *st = souk_db_query(souk_req_db(r),
                                                 "SELECT " PRODUCT_JSON " FROM products p"
                                                 " WHERE p.id = ? AND p.archived = 0",
                                                 "s", id);
            if (st == NULL) {
                rc = SOUK_EDB;
                break;
            }
            rc = souk_stmt_step(st);
            if (rc == SOUK_ROW)
                doc = json_loads(souk_stmt_text(st, 0), 0, NULL);
            souk_stmt_done(st);
            if (rc < 0)
                break;
            rc = 0;
        }
        json_array_append_new(doc != NULL ? items : missing, doc != NULL ? doc : json_incref(it));
    }
    if (rc < 0) {
        json_decref(items);
        json_decref(missing);
        return souk_handler_db_error(r, rc, "cannot read the products");
    }
    souk_reply_json(r, json_pack("{s:o,s:o}", "items", items, "missing_ids", missing));
    return 200;
}

int categories_list(struct souk_req *r)
{
    struct souk_stmt *st = souk_db_query(souk_req_db(r), list_statements[L_CATEGORIES].sql, NULL);
    if (st == NULL)
        return souk_handler_db_error(r, SOUK_EDB, "cannot read the categories");
    json_t *items = json_array();
    int rc;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW)
        json_array_append_new(items, souk_stmt_row_json(st));
    if (rc < 0) {
        json_decref(items);
        return souk_handler_db_error(r, rc, "cannot read the categories");
    }
    souk_reply_json(r, json_pack("{s:o,s:n}", "items", items, "next_page_token"));
    return 200;
}

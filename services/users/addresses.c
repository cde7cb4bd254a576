/* addresses.c: the caller's shipping addresses (list, add, delete), and one
 * address for a service holding users:read (orders, when placing an order). */
#include <ctype.h>
#include <string.h>

#include "souk/handler.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/page.h"
#include "souk/souk.h"
#include "users.h"

#define ADDRESSES_MAX 20
#define ADDRESS_COLUMNS                                                                            \
    "id, name, line1, line2, city, region, postal_code, country, phone, created_at"

int addresses_list(struct souk_req *r)
{
    const char *user = souk_req_identity(r)->sub;
    struct souk_page pg;
    int status = souk_page_start(&pg, r, NULL, "addresses", "user=%s", user);
    if (status != 0)
        return status;
    struct souk_stmt *st = souk_db_query(souk_req_db(r),
                                         "SELECT " ADDRESS_COLUMNS " FROM addresses"
                                         " WHERE user_id = ?1 AND id > coalesce(?2, '')"
                                         " ORDER BY id LIMIT ?3",
                                         "sSi", user, pg.after, pg.limit);
    return souk_page_reply(&pg, r, st, NULL, "cannot read the addresses");
}

int addresses_create(struct souk_req *r)
{
    static const char *const allowed[] = {"name",        "line1",   "line2", "city", "region",
                                          "postal_code", "country", "phone", NULL};
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, allowed);
    if (body == NULL)
        return souk_req_status(r);
    const char *name = souk_json_str(&c, body, "name", SOUK_REQUIRED, 1, 100);
    const char *line1 = souk_json_str(&c, body, "line1", SOUK_REQUIRED, 1, 200);
    const char *line2 = souk_json_str(&c, body, "line2", SOUK_OPTIONAL, 0, 200);
    const char *city = souk_json_str(&c, body, "city", SOUK_REQUIRED, 1, 100);
    const char *region = souk_json_str(&c, body, "region", SOUK_OPTIONAL, 0, 100);
    const char *postal = souk_json_str(&c, body, "postal_code", SOUK_REQUIRED, 1, 20);
    const char *country = souk_json_str(&c, body, "country", SOUK_REQUIRED, 2, 2);
    const char *phone = souk_json_str(&c, body, "phone", SOUK_OPTIONAL, 0, 32);
    if (country != NULL &&
        !(isupper((unsigned char)country[0]) && isupper((unsigned char)country[1])))
        souk_check_fail(&c, "country", "must be an ISO 3166-1 alpha-2 code such as \"US\"");
    if (!souk_check_ok(&c))
        return souk_problem_check(r, &c);
    const char *user = souk_req_identity(r)->sub;
    struct souk_db *db = souk_req_db(r);
    char id[SOUK_ID_MAX], now[SOUK_TIME_MAX];
    souk_id_new(id, "adr");
    souk_time_now(now);
    int64_t count = 0, one = 0;
    /* the count and the insert decide together: the user's row, locked, queues the
     * user's other additions behind this one (SQLite's write lock does that alone) */
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS);
    if (rc == 0)
        rc = souk_db_int(db, &one, "SELECT 1 FROM users WHERE id = ?" SOUK_IF_PG(" FOR UPDATE"),
                         "s", user);
    if (rc >= 0)
        rc = souk_db_int(db, &count, "SELECT count(*) FROM addresses WHERE user_id = ?", "s", user);
    if (rc >= 0 && count >= ADDRESSES_MAX) {
        souk_db_rollback(db);
        return souk_problem(r, 409, "too_many_addresses", "at most %d addresses", ADDRESSES_MAX);
    }
    if (rc >= 0)
        rc = souk_db_run(
            db,
            "INSERT INTO addresses (id, user_id, name, line1, line2, city, region, postal_code,"
            " country, phone, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            "sssssssssss", id, user, name, line1, line2 ? line2 : "", city, region ? region : "",
            postal, country, phone ? phone : "", now);
    if (rc >= 0)
        rc = souk_db_commit(db);
    if (rc < 0) {
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, "cannot store the address");
    }
    struct souk_stmt *st =
        souk_db_query(db, "SELECT " ADDRESS_COLUMNS " FROM addresses WHERE id = ?", "s", id);
    rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return souk_handler_db_error(r, rc < 0 ? rc : SOUK_EDB,
                                     "the address was stored; list them");
    json_t *a = souk_stmt_row_json(st);
    souk_stmt_done(st);
    souk_reply_json(r, a);
    return 201;
}

int addresses_delete(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    int rc = souk_id_valid(id, "adr")
                 ? souk_db_run(souk_req_db(r), "DELETE FROM addresses WHERE id = ? AND user_id = ?",
                               "ss", id, souk_req_identity(r)->sub)
                 : 0;
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot delete the address");
    if (rc == 0) /* someone else's address is as unknown as a missing one */
        return souk_problem(r, 404, "address_not_found", "no address %s", id);
    return 204;
}

int addresses_internal_get(struct souk_req *r)
{
    const char *user = souk_req_param(r, "id"), *id = souk_req_param(r, "address_id");
    if (!souk_id_valid(user, "usr") || !souk_id_valid(id, "adr"))
        return souk_problem(r, 404, "address_not_found", "no address %.64s for user %.64s", id,
                            user);
    struct souk_stmt *st = souk_db_query(
        souk_req_db(r), "SELECT " ADDRESS_COLUMNS " FROM addresses WHERE id = ? AND user_id = ?",
        "ss", id, user);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot read the address");
    if (rc != SOUK_ROW)
        return souk_problem(r, 404, "address_not_found", "no address %s for user %s", id, user);
    json_t *a = souk_stmt_row_json(st);
    souk_stmt_done(st);
    souk_reply_json(r, a);
    return 200;
}

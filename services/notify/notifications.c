/* notifications.c: a user's in-app notifications: the list (own only, newest
 * first, keyset pages by id) and marking one read. */
#include <string.h>

#include "notify.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/souk.h"

#define PAGE_DEFAULT 20
#define PAGE_MAX     100

#define NTF_COLUMNS "id, type, subject, body, read, created_at"

static json_t *row(struct souk_stmt *st)
{
    json_t *o = souk_stmt_row_json(st);
    json_object_set_new(o, "read", json_boolean(json_integer_value(json_object_get(o, "read"))));
    return o;
}

int notifications_list(struct souk_req *r)
{
    struct souk_check c;
    souk_check_init(&c);
    int64_t size = souk_check_int_text(&c, "page_size", souk_req_query(r, "page_size"), 1, PAGE_MAX,
                                       PAGE_DEFAULT);
    const char *token = souk_req_query(r, "page_token");
    if (token != NULL && !souk_id_valid(token, "ntf"))
        souk_check_fail(&c, "page_token", "is malformed");
    if (!souk_check_ok(&c))
        return souk_problem_check(r, &c);
    const char *user = souk_req_identity(r)->sub;
    /* one row more than the page tells whether another page follows */
    struct souk_stmt *st = souk_db_query(
        souk_req_db(r),
        "SELECT " NTF_COLUMNS " FROM notifications WHERE user_id = ? AND (? IS NULL OR id < ?)"
        " ORDER BY id DESC LIMIT ?",
        "sSSi", user, token, token, size + 1);
    if (st == NULL)
        return souk_problem(r, 503, "unavailable", "notifications cannot be read now");
    json_t *items = json_array();
    int rc;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW && (int64_t)json_array_size(items) < size)
        json_array_append_new(items, row(st));
    json_t *next = json_null();
    if (rc == SOUK_ROW) {
        souk_stmt_done(st);
        json_t *last = json_array_get(items, json_array_size(items) - 1);
        next = json_incref(json_object_get(last, "id"));
    } else if (rc < 0) {
        json_decref(items);
        return souk_problem(r, 503, "unavailable", "notifications cannot be read now");
    }
    souk_reply_json(r, json_pack("{s:o,s:o}", "items", items, "next_page_token", next));
    return 200;
}

int notifications_read(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    const char *user = souk_req_identity(r)->sub;
    struct souk_db *db = souk_req_db(r);
    if (!souk_id_valid(id, "ntf"))
        return souk_problem(r, 404, "not_found", "no notification %s", id);
    /* another user's notification is 404, like a missing one */
    int rc = souk_db_run(db, "UPDATE notifications SET read = 1 WHERE id = ? AND user_id = ?", "ss",
                         id, user);
    if (rc < 0)
        return souk_problem(r, 503, "unavailable", "notifications cannot be written now");
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT " NTF_COLUMNS " FROM notifications"
                                         " WHERE id = ? AND user_id = ?",
                                         "ss", id, user);
    rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc < 0)
        return souk_problem(r, 503, "unavailable", "notifications cannot be read now");
    if (rc != SOUK_ROW)
        return souk_problem(r, 404, "not_found", "no notification %s", id);
    json_t *o = row(st);
    souk_stmt_done(st);
    souk_reply_json(r, o);
    return 200;
}

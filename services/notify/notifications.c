/* notifications.c: a user's in-app notifications: the list (own only, newest
 * first, keyset pages by id) and marking one read. */
#include <string.h>

#include "notify.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/page.h"
#include "souk/souk.h"

#define NTF_COLUMNS "id, type, subject, body, read, created_at"

static json_t *row(struct souk_stmt *st)
{
    json_t *o = souk_stmt_row_json(st);
    json_object_set_new(o, "read", json_boolean(json_integer_value(json_object_get(o, "read"))));
    return o;
}

int notifications_list(struct souk_req *r)
{
    const char *user = souk_req_identity(r)->sub;
    struct souk_page pg;
    int status = souk_page_start(&pg, r, NULL, "notifications", "user=%s", user);
    if (status != 0)
        return status;
    struct souk_stmt *st = souk_db_query(
        souk_req_db(r),
        "SELECT " NTF_COLUMNS " FROM notifications WHERE user_id = ? AND (? IS NULL OR id < ?)"
        " ORDER BY id DESC LIMIT ?",
        "sSSi", user, pg.after, pg.after, pg.limit);
    return souk_page_reply(&pg, r, st, row, "cannot read the notifications");
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
        return souk_handler_db_error(r, rc, "cannot mark the notification read");
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT " NTF_COLUMNS " FROM notifications"
                                         " WHERE id = ? AND user_id = ?",
                                         "ss", id, user);
    rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot read the notification");
    if (rc != SOUK_ROW)
        return souk_problem(r, 404, "not_found", "no notification %s", id);
    json_t *o = row(st);
    souk_stmt_done(st);
    souk_reply_json(r, o);
    return 200;
}

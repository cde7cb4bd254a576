/* handlers.c: what notify does with each event, inside the event's transaction:
 * remember the user (user.registered), keep an in-app notification, and queue a
 * mail to the user's address (or park it until the address is known). */
#include <stdlib.h>
#include <string.h>

#include "notify.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/souk.h"

#define EMAIL_MAX    254
#define NAME_MAX_LEN 200

/* The user's email and name as an object ({} when unknown) into *out; 0, or a
 * negative code when the database could not say (the event is then retried, not
 * parked as if the address were unknown). */
static int user_row(struct souk_db *db, const char *user_id, json_t **out)
{
    *out = NULL;
    struct souk_stmt *st =
        souk_db_query(db, "SELECT email, name FROM users WHERE user_id = ?", "s", user_id);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc == SOUK_ROW) {
        *out = souk_stmt_row_json(st);
        souk_stmt_done(st);
    } else if (rc == SOUK_DONE) {
        *out = json_object();
    }
    return *out != NULL ? 0 : rc < 0 ? rc : SOUK_EDB;
}

/* Notifications made while the user was unknown were rendered without a name:
 * render them again from their event data now that the user is known. */
static int rerender_parked(struct souk_db *db, const char *user_id)
{
    json_t *user;
    int rc = user_row(db, user_id, &user);
    if (rc < 0)
        return rc;
    struct souk_stmt *st = souk_db_query(db,
                                         "SELECT n.id, n.type, n.data FROM notifications n"
                                         " JOIN deliveries d ON d.notification_id = n.id"
                                         " WHERE n.user_id = ? AND d.status = 'no_address'",
                                         "s", user_id);
    json_t *parked = json_array();
    rc = st != NULL ? SOUK_ROW : SOUK_EDB;
    while (rc == SOUK_ROW && (rc = souk_stmt_step(st)) == SOUK_ROW)
        json_array_append_new(parked,
                              json_pack("{s:s,s:s,s:s}", "id", souk_stmt_text(st, 0), "type",
                                        souk_stmt_text(st, 1), "data", souk_stmt_text(st, 2)));
    if (rc < 0) { /* a part of the list is not the list: the event is retried */
        json_decref(parked);
        json_decref(user);
        return rc;
    }
    rc = 0;
    size_t i;
    json_t *p;
    json_array_foreach(parked, i, p)
    {
        json_t *data = json_loads(json_string_value(json_object_get(p, "data")), 0, NULL);
        char *subject = NULL, *body = NULL;
        if (data != NULL && notify_render(json_string_value(json_object_get(p, "type")), data, user,
                                          &subject, &body) == 0)
            rc = souk_db_run(db, "UPDATE notifications SET subject = ?, body = ? WHERE id = ?",
                             "sss", subject, body, json_string_value(json_object_get(p, "id")));
        free(subject);
        free(body);
        json_decref(data);
        if (rc < 0)
            break;
    }
    json_decref(parked);
    json_decref(user);
    return rc < 0 ? rc : 0;
}

/* user.registered carries the address; later events find it in our users table. */
static int remember_user(struct souk_db *db, const char *user_id, json_t *data, const char *now)
{
    const char *email = json_string_value(json_object_get(data, "email"));
    const char *name = json_string_value(json_object_get(data, "name"));
    if (email == NULL || strlen(email) > EMAIL_MAX || strchr(email, '@') == NULL ||
        strpbrk(email, "\r\n<> ,") != NULL || (name != NULL && strlen(name) > NAME_MAX_LEN))
        return SOUK_EINVAL;
    int rc = souk_db_run(db,
                         "INSERT INTO users (user_id, email, name, updated_at) VALUES (?, ?, ?, ?)"
                         " ON CONFLICT(user_id) DO UPDATE SET email = excluded.email,"
                         " name = excluded.name, updated_at = excluded.updated_at",
                         "ssss", user_id, email, name ? name : "", now);
    if (rc < 0)
        return rc;
    rc = rerender_parked(db, user_id);
    if (rc < 0)
        return rc;
    /* mails that waited for this address can go now */
    rc = souk_db_run(db,
                     "UPDATE deliveries SET recipient = ?, status = 'pending', next_attempt_ms = ?"
                     " WHERE user_id = ? AND status = 'no_address'",
                     "sis", email, souk_wall_ms(), user_id);
    return rc < 0 ? rc : 0;
}

int notify_on_event(struct souk_db *db, const struct souk_event *ev)
{
    char now[SOUK_TIME_MAX], id[SOUK_ID_MAX];
    char *subject = NULL, *body = NULL;
    json_t *user = NULL;
    int rc = SOUK_EINVAL;
    const char *user_id = json_string_value(json_object_get(ev->data, "user_id"));
    if (user_id == NULL || strlen(user_id) == 0 || strlen(user_id) >= SOUK_SUB_MAX)
        goto out; /* permanent: retried a few times, then dead-lettered */
    souk_time_now(now);
    if (strcmp(ev->type, "user.registered") == 0 &&
        (rc = remember_user(db, user_id, ev->data, now)) != 0)
        goto out;
    if ((rc = user_row(db, user_id, &user)) != 0 ||
        (rc = notify_render(ev->type, ev->data, user, &subject, &body)) != 0)
        goto out;
    souk_id_new(id, "ntf");
    char *data = souk_json_dump(ev->data, NULL);
    rc = souk_db_run(
        db,
        "INSERT INTO notifications (id, user_id, event_id, type, subject, body, data, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        "ssssssss", id, user_id, ev->id, ev->type, subject, body, data, now);
    free(data);
    if (rc < 0)
        goto out;
    const char *email = json_string_value(json_object_get(user, "email"));
    rc = souk_db_run(
        db,
        "INSERT INTO deliveries (notification_id, user_id, recipient, status, next_attempt_ms)"
        " VALUES (?, ?, ?, ?, ?)",
        "ssSsi", id, user_id, email, email ? "pending" : "no_address", souk_wall_ms());
    if (rc < 0)
        goto out;
    rc = 0;
    notify_mailer_nudge();
out:
    free(subject);
    free(body);
    json_decref(user);
    return rc;
}

/* accounts.c: registration, the caller's own profile, and the admin views of
 * accounts. Emails are unique ignoring case; the password hash never leaves the
 * database; role and email are not writable through /users/me. */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "souk/events.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/page.h"
#include "souk/souk.h"
#include "users.h"

#define LOCAL_MAX 64

bool users_email_norm(const char *email, char *out, size_t cap)
{
    size_t n = strlen(email);
    const char *at = strchr(email, '@');
    if (n < 3 || n > EMAIL_MAX || n >= cap || at == NULL || strchr(at + 1, '@') != NULL)
        return false;
    size_t local = (size_t)(at - email);
    const char *domain = at + 1;
    if (local == 0 || local > LOCAL_MAX || strchr(domain, '.') == NULL || domain[0] == '.' ||
        domain[strlen(domain) - 1] == '.' || strstr(domain, "..") != NULL || email[0] == '.' ||
        at[-1] == '.' || strstr(email, "..") != NULL)
        return false;
    for (const char *p = email; p < at; p++) /* dot-atom: printable, no specials */
        if (*p <= ' ' || *p > '~' || strchr("\"(),:;<>[\\]", *p) != NULL)
            return false;
    for (const char *p = domain; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return false;
    for (size_t i = 0; i <= n; i++)
        out[i] = (char)tolower((unsigned char)email[i]);
    return true;
}

int users_load(struct souk_db *db, const char *id, json_t **out)
{
    *out = NULL;
    struct souk_stmt *st =
        souk_db_query(db, "SELECT " USER_COLUMNS " FROM users WHERE id = ?", "s", id);
    int rc = st != NULL ? souk_stmt_step(st) : SOUK_EDB;
    if (rc != SOUK_ROW)
        return rc == SOUK_DONE ? 0 : rc;
    *out = souk_stmt_row_json(st);
    souk_stmt_done(st);
    return 1;
}

/* The answer for a user that could not be read: gone (404) or a database failure. */
static int unreadable(struct souk_req *r, int rc, const char *id)
{
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot read the account");
    return souk_problem(r, 404, "user_not_found", "no user %.64s", id);
}

/* A sign-up waiting for its hash: what the worker needs, in the request's arena. */
struct signup {
    struct hash_job job;
    struct souk_req *r;
    const char *email, *norm, *name, *password; /* the body's, alive until the answer */
};

/* On a hashing worker: hash, store the account and its event, answer. */
static int finish_signup(struct signup *s)
{
    struct souk_req *r = s->r;
    char hash[crypto_pwhash_STRBYTES], id[SOUK_ID_MAX], now[SOUK_TIME_MAX];
    if (password_hash_now(s->password, hash) != 0)
        return souk_problem(r, 500, "internal", "cannot hash the password");
    struct souk_db *db = souk_db_thread();
    souk_id_new(id, "usr");
    souk_time_now(now);
    /* the email's uniqueness is the table's: row locks are enough (docs/db.md) */
    int rc = db != NULL ? souk_db_begin_mode(db, SOUK_TX_LOCKS) : SOUK_EUNAVAIL;
    if (rc != 0)
        return souk_handler_db_error(r, rc, "cannot create the account");
    rc = souk_db_run(
        db,
        "INSERT INTO users (id, email, email_norm, name, password_hash, role, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, ?, 'customer', ?, ?)",
        "sssssss", id, s->email, s->norm, s->name, hash, now, now);
    if (rc == SOUK_ECONFLICT) {
        souk_db_rollback(db);
        return souk_problem(r, 409, "email_taken", "an account with this email exists");
    }
    if (rc >= 0) {
        rc = souk_event_emit(
            db, "user.registered", id,
            json_pack("{s:s,s:s,s:s}", "user_id", id, "email", s->email, "name", s->name));
        if (rc == SOUK_EUNAVAIL) /* no events module yet */
            rc = 0;
    }
    if (rc >= 0)
        rc = souk_db_commit(db);
    if (rc < 0) {
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, "cannot create the account");
    }
    souk_info("user registered", "{s:s}", "user_id", id);
    json_t *u;
    rc = users_load(db, id, &u);
    if (rc != 1) /* stored, but not readable back: say so */
        return souk_handler_db_error(r, rc < 0 ? rc : SOUK_EDB, "the account was created; sign in");
    souk_reply_header(r, "Location", "/api/v1/users/me");
    souk_reply_json(r, u);
    return 201;
}

static void run_signup(struct hash_job *job)
{
    struct signup *s = (struct signup *)job;
    souk_req_resume(s->r, finish_signup(s));
}

int users_register(struct souk_req *r)
{
    static const char *const allowed[] = {"email", "password", "name", NULL};
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, allowed);
    if (body == NULL)
        return souk_req_status(r);
    const char *email = souk_json_str(&c, body, "email", SOUK_REQUIRED, 3, EMAIL_MAX);
    const char *password = souk_json_str(&c, body, "password", SOUK_REQUIRED, 1, 1024);
    const char *name = souk_json_str(&c, body, "name", SOUK_REQUIRED, 1, NAME_MAX_LEN);
    char norm[EMAIL_MAX + 1];
    if (email != NULL && !users_email_norm(email, norm, sizeof(norm)))
        souk_check_fail(&c, "email", "is not a valid email address");
    const char *weak = password != NULL ? password_weakness(password, email) : NULL;
    if (weak != NULL)
        souk_check_fail(&c, "password", "%s", weak);
    if (!souk_check_ok(&c))
        return souk_problem_check(r, &c);

    int64_t exists = 0;
    int rc = souk_db_int(souk_req_db(r), &exists, "SELECT count(*) FROM users WHERE email_norm = ?",
                         "s", norm);
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot read the accounts");
    if (exists > 0)
        return souk_problem(r, 409, "email_taken", "an account with this email exists");
    struct signup *s = souk_req_alloc(r, sizeof(*s));
    *s = (struct signup){.job = {.run = run_signup, .kind = HASH_SIGNUP},
                         .r = r,
                         .email = email,
                         .norm = souk_arena_strdup(souk_req_arena(r), norm),
                         .name = name,
                         .password = password};
    if (password_submit(&s->job) != 0) {
        souk_reply_header(r, "Retry-After", "1");
        return souk_problem(r, 503, "busy", "too many sign-ups at once; retry shortly");
    }
    return SOUK_SUSPEND; /* run_signup answers */
}

/* The caller's addresses, oldest first, into *out: 0, or the database's error (a
 * part of the list is not the list). */
static int load_addresses(struct souk_db *db, const char *user_id, json_t **out)
{
    *out = NULL;
    struct souk_stmt *st = souk_db_query(
        db,
        "SELECT id, name, line1, line2, city, region, postal_code, country, phone, created_at"
        " FROM addresses WHERE user_id = ? ORDER BY id",
        "s", user_id);
    if (st == NULL)
        return SOUK_EDB;
    json_t *items = json_array();
    int rc;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW)
        json_array_append_new(items, souk_stmt_row_json(st));
    if (rc < 0) {
        json_decref(items);
        return rc;
    }
    *out = items;
    return 0;
}

int users_me_get(struct souk_req *r)
{
    const struct souk_identity *who = souk_req_identity(r);
    json_t *u, *addresses;
    int rc = users_load(souk_req_db(r), who->sub, &u);
    if (rc != 1)
        return rc < 0 ? unreadable(r, rc, who->sub)
                      : souk_problem(r, 404, "user_not_found", "the account no longer exists");
    rc = load_addresses(souk_req_db(r), who->sub, &addresses);
    if (rc != 0) {
        json_decref(u);
        return souk_handler_db_error(r, rc, "cannot read the addresses");
    }
    json_object_set_new(u, "addresses", addresses);
    souk_reply_json(r, u);
    return 200;
}

int users_me_patch(struct souk_req *r)
{
    static const char *const allowed[] = {"name", NULL}; /* role, email, password: not here */
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, allowed);
    if (body == NULL)
        return souk_req_status(r);
    const char *name = souk_json_str(&c, body, "name", SOUK_REQUIRED, 1, NAME_MAX_LEN);
    if (!souk_check_ok(&c))
        return souk_problem_check(r, &c);
    const struct souk_identity *who = souk_req_identity(r);
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    int rc = souk_db_run(souk_req_db(r), "UPDATE users SET name = ?, updated_at = ? WHERE id = ?",
                         "sss", name, now, who->sub);
    if (rc < 0)
        return souk_handler_db_error(r, rc, "cannot update the account");
    if (rc == 0)
        return souk_problem(r, 404, "user_not_found", "the account no longer exists");
    json_t *u;
    if ((rc = users_load(souk_req_db(r), who->sub, &u)) != 1)
        return unreadable(r, rc, who->sub);
    souk_reply_json(r, u);
    return 200;
}

int users_admin_list(struct souk_req *r)
{
    struct souk_page pg;
    int status = souk_page_start(&pg, r, NULL, "users", "all");
    if (status != 0)
        return status;
    struct souk_stmt *st = souk_db_query(
        souk_req_db(r),
        "SELECT " USER_COLUMNS " FROM users WHERE id > coalesce(?1, '') ORDER BY id LIMIT ?2", "Si",
        pg.after, pg.limit);
    return souk_page_reply(&pg, r, st, NULL, "cannot read the accounts");
}

int users_admin_patch(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    if (!souk_id_valid(id, "usr"))
        return souk_problem(r, 404, "user_not_found", "no user %s", id);
    static const char *const allowed[] = {"role", NULL};
    struct souk_check c;
    json_t *body = souk_handler_open(r, &c, allowed);
    if (body == NULL)
        return souk_req_status(r);
    const char *role = souk_json_str(&c, body, "role", SOUK_REQUIRED, 1, 16);
    if (role != NULL && strcmp(role, "customer") != 0 && strcmp(role, "admin") != 0)
        souk_check_fail(&c, "role", "must be customer or admin");
    if (!souk_check_ok(&c))
        return souk_problem_check(r, &c);
    struct souk_db *db = souk_req_db(r);
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS); /* two row updates, each atomic */
    if (rc != 0)
        return souk_handler_db_error(r, rc, "cannot update the account");
    rc = souk_db_run(db, "UPDATE users SET role = ?, updated_at = ? WHERE id = ? AND role <> ?",
                     "ssss", role, now, id, role);
    /* a changed role ends the account's sessions: new tokens carry the new role */
    if (rc > 0)
        rc = souk_db_run(
            db, "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
            "is", souk_wall_ms() / 1000, id);
    if (rc >= 0)
        rc = souk_db_commit(db);
    if (rc < 0) {
        souk_db_rollback(db);
        return souk_handler_db_error(r, rc, "cannot update the account");
    }
    json_t *u;
    if ((rc = users_load(db, id, &u)) != 1)
        return unreadable(r, rc, id);
    souk_info("role set", "{s:s,s:s,s:s}", "user_id", id, "role", role, "by",
              souk_req_identity(r)->sub);
    souk_reply_json(r, u);
    return 200;
}

/* For services holding users:read (notify's mail, orders' receipts). */
int users_internal_get(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    json_t *u = NULL;
    int rc = souk_id_valid(id, "usr") ? users_load(souk_req_db(r), id, &u) : 0;
    if (rc != 1)
        return unreadable(r, rc, id);
    souk_reply_json(r, u);
    return 200;
}

/* seed.c: `users seed` creates the admin account from SOUK_ADMIN_EMAIL and
 * SOUK_ADMIN_PASSWORD. Without a password it makes a random one, keeps it in
 * SOUK_VAR/admin-password (0600) and prints it. It never touches an account that
 * exists: an admin is left as it is, and an email taken by a customer is refused
 * (whoever registered it first would otherwise become the admin). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "souk/id.h"
#include "souk/log.h"
#include "souk/souk.h"
#include "users.h"

#define GENERATED_LEN 20
#define DEFAULT_ADMIN "admin@souk.local"

/* The saved password, or a new random one written to path (0600). */
static int saved_or_new(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        bool ok = fgets(out, (int)cap, f) != NULL;
        fclose(f);
        out[strcspn(out, "\r\n")] = '\0';
        if (ok && strlen(out) >= PASSWORD_MIN)
            return 0;
    }
    static const char alphabet[] = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    for (size_t i = 0; i < GENERATED_LEN && i + 1 < cap; i++)
        out[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
    out[GENERATED_LEN < cap ? GENERATED_LEN : cap - 1] = '\0';
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "users seed: cannot write %s: %s\n", path, strerror(errno));
        return SOUK_EIO;
    }
    fchmod(fd, 0600);
    size_t n = strlen(out);
    bool ok = write(fd, out, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
    close(fd);
    return ok ? 0 : SOUK_EIO;
}

/* Is there an account with this email? 1 and its role, 0, or a negative code. */
static int existing_role(struct souk_db *db, const char *norm, char role[16])
{
    struct souk_stmt *st =
        souk_db_query(db, "SELECT role FROM users WHERE email_norm = ?", "s", norm);
    if (st == NULL)
        return SOUK_EDB;
    int rc = souk_stmt_step(st);
    if (rc == SOUK_ROW) {
        snprintf(role, 16, "%s", souk_stmt_text(st, 0));
        souk_stmt_done(st);
        return 1;
    }
    return rc == SOUK_DONE ? 0 : rc;
}

int users_seed(struct souk_db *db)
{
    const char *var = souk_config_value("SOUK_VAR");
    const char *email = cfg_admin_email, *given = cfg_admin_password;
    char path[PATH_MAX], password[PASSWORD_MAX + 2], norm[EMAIL_MAX + 1], role[16] = "";
    if (email == NULL || email[0] == '\0')
        email = DEFAULT_ADMIN;
    if (!users_email_norm(email, norm, sizeof(norm))) {
        fprintf(stderr, "users seed: SOUK_ADMIN_EMAIL=\"%s\" is not an email address\n", email);
        return SOUK_EINVAL;
    }
    int found = existing_role(db, norm, role);
    if (found < 0) {
        fprintf(stderr, "users seed: cannot read the accounts: %s\n", souk_strerror(found));
        return found;
    }
    if (found > 0 && strcmp(role, "admin") == 0) {
        printf("users: admin account %s already exists; left unchanged\n", email);
        return 0;
    }
    if (found > 0) {
        fprintf(stderr,
                "users seed: SOUK_ADMIN_EMAIL=%s belongs to an existing %s account, and seeding "
                "never promotes or changes an account.\n"
                "  Choose another SOUK_ADMIN_EMAIL, or have an admin grant the role "
                "(PATCH /api/v1/users/{id} {\"role\":\"admin\"}) if that account is yours.\n",
                email, role);
        return SOUK_ECONFLICT;
    }
    snprintf(path, sizeof(path), "%s/admin-password", var != NULL && var[0] ? var : "var");
    if (given != NULL && given[0] != '\0') {
        snprintf(password, sizeof(password), "%s", given);
        const char *weak = password_weakness(password, email);
        if (weak != NULL) {
            fprintf(stderr, "users seed: SOUK_ADMIN_PASSWORD %s\n", weak);
            return SOUK_EINVAL;
        }
    } else if (saved_or_new(path, password, sizeof(password)) != 0) {
        return SOUK_EIO;
    }
    char hash[crypto_pwhash_STRBYTES], id[SOUK_ID_MAX], now[SOUK_TIME_MAX];
    int rc = password_hash_now(password, hash);
    if (rc != 0)
        return rc;
    souk_id_new(id, "usr");
    souk_time_now(now);
    /* the insert fails on a race with a registration of the same email: never an update */
    rc = souk_db_run(
        db,
        "INSERT INTO users (id, email, email_norm, name, password_hash, role, created_at,"
        " updated_at) VALUES (?, ?, ?, 'Administrator', ?, 'admin', ?, ?)",
        "ssssss", id, email, norm, hash, now, now);
    if (rc == SOUK_ECONFLICT)
        fprintf(stderr, "users seed: %s was registered meanwhile; nothing changed\n", email);
    if (rc < 0)
        return rc;
    if (given != NULL && given[0] != '\0')
        printf("users: admin account %s created (password from SOUK_ADMIN_PASSWORD)\n", email);
    else
        printf("users: admin account %s created; password %s (saved in %s)\n", email, password,
               path);
    souk_info("admin seeded", "{s:s}", "user_id", id);
    return 0;
}

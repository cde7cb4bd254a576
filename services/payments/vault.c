/* vault.c: the card vault. Card numbers are sealed with libsodium's secretbox
 * under the service key before they touch the database, and opened only in memory
 * for an authorization; the CVC is checked and dropped. Payment methods are their
 * owner's alone: anyone else gets 404. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "payments.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/json.h"
#include "souk/log.h"
#include "souk/page.h"
#include "souk/souk.h"

#define KEY_HEX_LEN      (crypto_secretbox_KEYBYTES * 2)
#define BOX_BYTES        (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + CARD_DIGITS_MAX)
#define BOX_TEXT_MAX     (BOX_BYTES * 4 / 3 + 4)
#define METHODS_PER_USER 50
#define HOLDER_MAX       100
#define EXP_YEAR_MIN     2000
#define EXP_YEAR_MAX     2100

static unsigned char key[crypto_secretbox_KEYBYTES];
static bool have_key;

int vault_key_hex(const char *hex)
{
    size_t n = 0;
    if (strlen(hex) != KEY_HEX_LEN ||
        sodium_hex2bin(key, sizeof(key), hex, KEY_HEX_LEN, NULL, &n, NULL) != 0 || n != sizeof(key))
        return SOUK_EINVAL;
    have_key = true;
    return 0;
}

/* Create the key file with O_EXCL so two instances starting at once agree on one key. */
static int key_file_create(const char *path)
{
    char hex[KEY_HEX_LEN + 2];
    unsigned char fresh[crypto_secretbox_KEYBYTES];
    randombytes_buf(fresh, sizeof(fresh));
    sodium_bin2hex(hex, sizeof(hex), fresh, sizeof(fresh));
    sodium_memzero(fresh, sizeof(fresh));
    strcat(hex, "\n");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return errno == EEXIST ? 0 : SOUK_EIO;
    bool ok = write(fd, hex, strlen(hex)) == (ssize_t)strlen(hex) && fsync(fd) == 0;
    close(fd);
    sodium_memzero(hex, sizeof(hex));
    return ok ? 0 : SOUK_EIO;
}

int vault_key_file(const char *var_dir)
{
    char dir[4096], path[4200], hex[KEY_HEX_LEN + 2];
    int rc = SOUK_EIO;
    snprintf(dir, sizeof(dir), "%s/keys", var_dir);
    snprintf(path, sizeof(path), "%s/payments.key", dir);
    mkdir(var_dir, 0755);
    mkdir(dir, 0700);
    if (key_file_create(path) != 0)
        goto out;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        goto out;
    size_t n = fread(hex, 1, sizeof(hex) - 1, f);
    fclose(f);
    hex[n] = '\0';
    hex[strcspn(hex, "\r\n")] = '\0';
    rc = vault_key_hex(hex);
    sodium_memzero(hex, sizeof(hex));
    struct stat st;
    if (rc == 0 && stat(path, &st) == 0 && (st.st_mode & 077) != 0)
        souk_warn("payments key file is readable by others", "{s:s}", "path", path);
out:
    if (rc != 0)
        souk_error("cannot load the payments key", "{s:s}", "path", path);
    return rc;
}

char *vault_seal(const char *digits)
{
    unsigned char box[BOX_BYTES];
    size_t mlen = strlen(digits);
    randombytes_buf(box, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)digits, mlen,
                          box, key);
    char *out = souk_xmalloc(BOX_TEXT_MAX);
    souk_b64url_enc(box, crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + mlen, out,
                    BOX_TEXT_MAX);
    return out;
}

int vault_open(const char *box, char *out, size_t cap)
{
    unsigned char raw[BOX_BYTES];
    long n = strlen(box) < BOX_TEXT_MAX ? souk_b64url_dec(box, raw, sizeof(raw)) : -1;
    long mlen = n - (long)(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES);
    if (!have_key || mlen < CARD_DIGITS_MIN || (size_t)mlen >= cap)
        return SOUK_EINVAL;
    if (crypto_secretbox_open_easy((unsigned char *)out, raw + crypto_secretbox_NONCEBYTES,
                                   (unsigned long long)n - crypto_secretbox_NONCEBYTES, raw,
                                   key) != 0)
        return SOUK_EAUTH;
    out[mlen] = '\0';
    return 0;
}

/* ---- POST /api/v1/payment-methods ---- */

struct card_in {
    char digits[CARD_DIGITS_MAX + 1];
    int64_t exp_month, exp_year;
    const char *holder;
};

/* Every message names the field, never its value. */
static void check_card(struct souk_check *c, json_t *card, struct card_in *in)
{
    static const char *const allowed[] = {"number", "exp_month", "exp_year", "cvc", "holder", NULL};
    const char *number = souk_json_str(c, card, "number", SOUK_REQUIRED, 1, CARD_NUMBER_MAX);
    in->exp_month = souk_json_int(c, card, "exp_month", SOUK_REQUIRED, 1, 12, 0);
    in->exp_year = souk_json_int(c, card, "exp_year", SOUK_REQUIRED, EXP_YEAR_MIN, EXP_YEAR_MAX, 0);
    const char *cvc = souk_json_str(c, card, "cvc", SOUK_REQUIRED, 1, 8);
    in->holder = souk_json_str(c, card, "holder", SOUK_OPTIONAL, 0, HOLDER_MAX);
    const char *k;
    json_t *v;
    json_object_foreach(card, k, v)
    {
        bool known = false;
        for (size_t i = 0; allowed[i] != NULL; i++)
            known = known || strcmp(k, allowed[i]) == 0;
        if (!known) /* a key could itself be a card number: never echo it */
            souk_check_fail(c, "card", "has an unknown field");
    }
    if (number != NULL) {
        int n = card_digits(number, in->digits);
        if (n < CARD_DIGITS_MIN)
            souk_check_fail(c, "card.number", "must be %d to %d digits", CARD_DIGITS_MIN,
                            CARD_DIGITS_MAX);
        else if (!card_luhn_ok(in->digits))
            souk_check_fail(c, "card.number", "is not a valid card number");
    }
    if (cvc != NULL && !card_cvc_ok(cvc))
        souk_check_fail(c, "card.cvc", "must be 3 or 4 digits");
    if (in->holder != NULL && strpbrk(in->holder, "0123456789") != NULL)
        souk_check_fail(c, "card.holder", "must not contain digits");
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (in->exp_month > 0 && in->exp_year > 0 &&
        card_expired((int)in->exp_month, (int)in->exp_year, tm.tm_mon + 1, tm.tm_year + 1900))
        souk_check_fail(c, "card.exp_year", "the card has expired");
}

static json_t *method_json(const char *id, const char *brand, const char *last4, int64_t month,
                           int64_t year, const char *holder, const char *created)
{
    return json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:s}", "id", id, "brand", brand, "last4", last4,
                     "exp_month", (json_int_t)month, "exp_year", (json_int_t)year, "holder", holder,
                     "created_at", created);
}

int pm_create(struct souk_req *r)
{
    struct souk_db *db = souk_req_db(r);
    const char *user = souk_req_identity(r)->sub;
    struct card_in in = {0};
    struct souk_check c;
    char *box = NULL;
    int status;
    static const char *const top[] = {"card", NULL};
    /* a syntax error's message would quote the text near it: a card number */
    json_t *body = souk_handler_open_secret(r, &c, top);
    if (body == NULL)
        return souk_req_status(r);
    json_t *card = souk_json_object(&c, body, "card", SOUK_REQUIRED);
    if (card != NULL)
        check_card(&c, card, &in);
    if (!souk_check_ok(&c)) {
        status = souk_problem_check(r, &c);
        goto out;
    }
    int64_t count = 0;
    int rc = souk_db_int(db, &count, "SELECT count(*) FROM payment_methods WHERE user_id = ?", "s",
                         user);
    if (rc < 0) {
        status = souk_handler_db_error(r, rc, "cannot read the payment methods");
        goto out;
    }
    if (count >= METHODS_PER_USER) {
        status = souk_problem(r, 409, "too_many_payment_methods",
                              "at most %d payment methods per account", METHODS_PER_USER);
        goto out;
    }
    char id[SOUK_ID_MAX], now[SOUK_TIME_MAX];
    souk_id_new(id, "pm");
    souk_time_now(now);
    const char *brand = card_brand(in.digits);
    const char *last4 = in.digits + strlen(in.digits) - 4;
    const char *holder = in.holder ? in.holder : "";
    box = vault_seal(in.digits);
    rc = souk_db_run(db,
                     "INSERT INTO payment_methods (id, user_id, brand, last4, exp_month,"
                     " exp_year, holder, number_box, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                     "ssssiisss", id, user, brand, last4, in.exp_month, in.exp_year, holder, box,
                     now);
    if (rc != 1) {
        status =
            souk_handler_db_error(r, rc < 0 ? rc : SOUK_EDB, "cannot store the payment method");
        goto out;
    }
    souk_info("payment method added", "{s:s,s:s,s:s}", "payment_method_id", id, "user_id", user,
              "brand", brand);
    souk_reply_json(r, method_json(id, brand, last4, in.exp_month, in.exp_year, holder, now));
    status = 201;
out:
    sodium_memzero(&in, sizeof(in));
    free(box);
    souk_check_free(&c);
    return status;
}

/* ---- GET /api/v1/payment-methods ---- */

int pm_list(struct souk_req *r)
{
    const char *user = souk_req_identity(r)->sub;
    struct souk_page pg;
    int status = souk_page_start(&pg, r, NULL, "payment_methods", "user=%s", user);
    if (status != 0)
        return status;
    struct souk_stmt *st = souk_db_query(
        souk_req_db(r),
        "SELECT id, brand, last4, exp_month, exp_year, holder, created_at FROM payment_methods"
        " WHERE user_id = ?1 AND id > coalesce(?2, '') ORDER BY id LIMIT ?3",
        "sSi", user, pg.after, pg.limit);
    return souk_page_reply(&pg, r, st, NULL, "cannot read the payment methods");
}

/* ---- DELETE /api/v1/payment-methods/{id} ---- */

int pm_delete(struct souk_req *r)
{
    const char *id = souk_req_param(r, "id");
    if (!souk_id_valid(id, "pm"))
        return souk_problem(r, 404, "not_found", "no payment method %s", "with that id");
    int n = souk_db_run(souk_req_db(r), "DELETE FROM payment_methods WHERE id = ? AND user_id = ?",
                        "ss", id, souk_req_identity(r)->sub);
    if (n < 0)
        return souk_handler_db_error(r, n, "cannot delete the payment method");
    if (n == 0)
        return souk_problem(r, 404, "not_found", "no payment method %s", id);
    souk_info("payment method deleted", "{s:s}", "payment_method_id", id);
    return 204;
}

/* mailer.c: the mail worker. It sends each pending delivery over SMTP (libcurl,
 * SOUK_SMTP_URL; login from SOUK_SMTP_USER and SOUK_SMTP_PASSWORD[_FILE]; TLS by
 * smtps:// or SOUK_SMTP_STARTTLS) or writes it as a file under the mail directory,
 * records every attempt, and retries failures with exponential backoff up to a
 * limit. The URL is logged only with its credentials masked. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"
#include "souk/backoff.h"
#include "souk/config.h"
#include "souk/log.h"
#include "souk/souk.h"

#define BATCH           20
#define POLL_MS         200
#define SMTP_TIMEOUT_MS 10000
#define RETRY_MAX_MS    600000
#define PATH_MAX_LEN    4096
#define ERR_MAX         256
#define SECRET_MAX      1024
#define DB_RETRY_MS     1000 /* the pause after the database failed us */
/* A delivery taken for sending (one at a time, just before it is sent) is not due
 * again for this long: replicas of notify share the queue, and one sends it; if that
 * one dies mid-send, another tries after this (longer than an SMTP exchange may take). */
#define CLAIM_MS (SMTP_TIMEOUT_MS + 5000)

struct mail {
    int64_t id, attempts;
    char *ntf, *to, *subject, *body;
    int64_t due_ms; /* next_attempt_ms as read: the claim moves it from this value */
};

static pthread_t thread;
static bool running, stopping;
static uint64_t nudges;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static char mail_dir[PATH_MAX_LEN];
static char smtp_password[SECRET_MAX + 1]; /* from the variable or the file */
static long use_ssl = CURLUSESSL_NONE;

void notify_mailer_nudge(void)
{
    pthread_mutex_lock(&lock);
    nudges++;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
}

/* ---- the message ---- */

static bool ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80)
            return false;
    return true;
}

/* RFC 5322 text with CRLF line ends; a non-ASCII subject is RFC 2047 encoded. */
static char *message(const struct mail *m, size_t *len)
{
    char *out = NULL, date[64];
    FILE *f = open_memstream(&out, len);
    if (f == NULL)
        souk_oom();
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    fprintf(f, "From: %s\r\nTo: <%s>\r\nSubject: ", notify_mail_from, m->to);
    if (ascii(m->subject)) {
        fputs(m->subject, f);
    } else {
        size_t n = strlen(m->subject);
        char *b64 = souk_xmalloc(sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL));
        sodium_bin2base64(b64, sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL),
                          (const unsigned char *)m->subject, n, sodium_base64_VARIANT_ORIGINAL);
        fprintf(f, "=?UTF-8?B?%s?=", b64);
        free(b64);
    }
    fprintf(f,
            "\r\nDate: %s\r\nMessage-ID: <%s@souk.local>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\nX-Souk-Notification: %s\r\n\r\n",
            date, m->ntf, m->ntf);
    for (const char *p = m->body; *p; p++) {
        if (*p == '\n')
            fputc('\r', f);
        fputc(*p, f);
    }
    fclose(f);
    return out;
}

/* ---- the two ways out ---- */

static void mkdirs(const char *dir)
{
    char tmp[PATH_MAX_LEN];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

/* Written under a temporary name and renamed, so a reader never sees half a mail
 * and a retry after a crash replaces the same file instead of adding one. */
static int write_file(const struct mail *m, const char *msg, size_t len, char *err)
{
    char tmp[PATH_MAX_LEN + 64], final[PATH_MAX_LEN + 64];
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", mail_dir, m->ntf);
    snprintf(final, sizeof(final), "%s/%s.eml", mail_dir, m->ntf);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        snprintf(err, ERR_MAX, "open mail file: %s", strerror(errno));
        return SOUK_EIO;
    }
    bool ok = fwrite(msg, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, final) != 0) {
        snprintf(err, ERR_MAX, "write mail file: %s", strerror(errno));
        unlink(tmp);
        return SOUK_EIO;
    }
    return 0;
}

struct upload {
    const char *data;
    size_t len, off;
};

static size_t read_cb(char *buf, size_t size, size_t n, void *arg)
{
    struct upload *u = arg;
    size_t want = size * n, left = u->len - u->off;
    if (want > left)
        want = left;
    memcpy(buf, u->data + u->off, want);
    u->off += want;
    return want;
}

static int send_smtp(const struct mail *m, const char *msg, size_t len, char *err)
{
    char from[256], rcpt_addr[300];
    const char *lt = strchr(notify_mail_from, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    if (lt != NULL && gt != NULL)
        snprintf(from, sizeof(from), "%.*s", (int)(gt - lt + 1), lt);
    else
        snprintf(from, sizeof(from), "<%s>", notify_mail_from);
    snprintf(rcpt_addr, sizeof(rcpt_addr), "<%s>", m->to);
    struct upload u = {msg, len, 0};
    struct curl_slist *rcpt = curl_slist_append(NULL, rcpt_addr);
    CURL *c = curl_easy_init();
    if (c == NULL || rcpt == NULL)
        souk_oom();
    curl_easy_setopt(c, CURLOPT_URL, notify_smtp_url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_USE_SSL, use_ssl);
    if (notify_smtp_user[0] != '\0') {
        curl_easy_setopt(c, CURLOPT_USERNAME, notify_smtp_user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, smtp_password);
    }
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)SMTP_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        snprintf(err, ERR_MAX, "smtp: %s", curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    curl_slist_free_all(rcpt);
    return rc == CURLE_OK ? 0 : SOUK_EIO;
}

/* ---- the worker ---- */

/* The attempt's rows (and the next one's time, or the end), in the open
 * transaction: 0, or a negative code. */
static int record_rows(struct souk_db *db, const struct mail *m, int rc, const char *err)
{
    char now[SOUK_TIME_MAX];
    souk_time_now(now);
    int64_t attempts = m->attempts + 1;
    struct souk_backoff retry = {notify_mail_retry_ms, RETRY_MAX_MS};
    int64_t delay = souk_backoff_ms(&retry, attempts);
    const char *status = rc == 0 ? "sent" : attempts >= notify_mail_attempts ? "failed" : "pending";
    if (rc != 0)
        souk_warn("mail delivery failed", "{s:s,s:I,s:s,s:s}", "notification", m->ntf, "attempts",
                  (json_int_t)attempts, "status", status, "error", err);
    if (souk_db_run(
            db, "INSERT INTO delivery_attempts (delivery_id, at, ok, error) VALUES (?, ?, ?, ?)",
            "isbS", m->id, now, rc == 0, rc == 0 ? NULL : err) < 0)
        return SOUK_EDB;
    if (souk_db_run(db,
                    "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_ms = ?,"
                    " last_error = ?, sent_at = ? WHERE id = ?",
                    "siiSSi", status, attempts, souk_wall_ms() + delay, rc == 0 ? NULL : err,
                    rc == 0 ? now : NULL, m->id) != 1)
        return SOUK_EDB;
    return 0;
}

/* The outcome of one send, until it is recorded. */
struct sent {
    bool tried; /* claimed and sent (or written): to be recorded */
    int rc;
    char err[ERR_MAX];
};

/* Record the attempts of mails [from, to) that were tried, in one transaction. 0,
 * or a negative code when it could not be written: a mail sent then may be sent
 * again (at least once); each is then made due again at once, not when our claim
 * runs out (if that write fails too, the claim's end makes it due). */
static int record(struct souk_db *db, const struct mail *m, struct sent *out, int from, int to)
{
    int w = souk_db_begin_mode(db, SOUK_TX_LOCKS); /* inserts and our deliveries' rows */
    for (int i = from; w == 0 && i < to; i++)
        if (out[i].tried)
            w = record_rows(db, &m[i], out[i].rc, out[i].err);
    if (w == 0)
        w = souk_db_commit(db);
    if (w == 0)
        return 0;
    souk_db_rollback(db);
    for (int i = from; i < to; i++) {
        if (!out[i].tried)
            continue;
        souk_error(out[i].rc == 0 ? "mail sent but not recorded: it will be sent again"
                                  : "mail attempt not recorded",
                   "{s:s,s:s}", "notification", m[i].ntf, "error", souk_strerror(w));
        souk_db_run(db,
                    "UPDATE deliveries SET next_attempt_ms = ? WHERE id = ? AND status = 'pending'",
                    "ii", souk_wall_ms(), m[i].id);
    }
    return w;
}

static void free_mail(struct mail *m)
{
    free(m->ntf);
    free(m->to);
    free(m->subject);
    free(m->body);
}

/* Up to BATCH due deliveries into out, each claimed for this replica; their count,
 * or a negative code. */
static int due(struct souk_db *db, struct mail *out)
{
    int n = 0, rc = SOUK_DONE;
    int64_t now = souk_wall_ms();
    struct souk_stmt *st = souk_db_query(
        db,
        "SELECT d.id, d.attempts, d.notification_id, d.recipient, n.subject, n.body,"
        " d.next_attempt_ms FROM deliveries d JOIN notifications n ON n.id = d.notification_id"
        " WHERE d.status = 'pending' AND d.next_attempt_ms <= ? ORDER BY d.next_attempt_ms LIMIT ?",
        "ii", now, (int64_t)BATCH);
    if (st == NULL)
        return SOUK_EDB;
    while (n < BATCH && (rc = souk_stmt_step(st)) == SOUK_ROW) {
        out[n] = (struct mail){souk_stmt_int(st, 0),
                               souk_stmt_int(st, 1),
                               souk_xstrdup(souk_stmt_text(st, 2)),
                               souk_xstrdup(souk_stmt_text(st, 3)),
                               souk_xstrdup(souk_stmt_text(st, 4)),
                               souk_xstrdup(souk_stmt_text(st, 5)),
                               souk_stmt_int(st, 6)};
        n++;
    }
    souk_stmt_done(st);
    return rc < 0 && n == 0 ? rc : n; /* what was read before an error still goes out */
}

/* Claim the n mails read for this replica, in one transaction: each one's
 * next_attempt_ms moved on from the value read, in one statement (atomic on both
 * engines); out[i].tried false when another replica claimed it first. 0, or a
 * negative code (then none is ours). */
static int claim(struct souk_db *db, const struct mail *m, struct sent *out, int n)
{
    int rc = souk_db_begin_mode(db, SOUK_TX_LOCKS); /* each statement one row, atomic */
    for (int i = 0; rc == 0 && i < n; i++) {
        int changed = souk_db_run(db,
                                  "UPDATE deliveries SET next_attempt_ms = ? WHERE id = ?"
                                  " AND status = 'pending' AND next_attempt_ms = ?",
                                  "iii", souk_wall_ms() + CLAIM_MS, m[i].id, m[i].due_ms);
        out[i] = (struct sent){.tried = changed == 1};
        rc = changed < 0 ? changed : 0;
    }
    if (rc == 0)
        rc = souk_db_commit(db);
    if (rc != 0) {
        souk_db_rollback(db);
        for (int i = 0; i < n; i++)
            out[i].tried = false;
    }
    return rc;
}

/* Send (or write) the claimed mails of a batch and record them. Files are written
 * all, then recorded in one transaction: a file written again after a crash
 * replaces itself, so a late record doubles nothing. A mail over SMTP is recorded
 * as soon as it is sent, so a crash sends at most that one again. After a failed
 * record, stop sending: each further mail would go out unrecorded and be sent again.
 * False when a record failed. */
static bool send_batch(struct souk_db *db, struct mail *batch, struct sent *out, int n)
{
    bool files = notify_smtp_url[0] == '\0';
    int from = 0, tried = 0;
    for (int i = 0; i < n; i++) {
        if (!out[i].tried)
            continue;
        tried++;
        size_t len;
        char *msg = message(&batch[i], &len);
        out[i].rc = files ? write_file(&batch[i], msg, len, out[i].err)
                          : send_smtp(&batch[i], msg, len, out[i].err);
        free(msg);
        if (!files) {
            if (record(db, batch, out, i, i + 1) != 0) {
                /* the rest were claimed: due again at once */
                for (int j = i + 1; j < n; j++)
                    if (out[j].tried)
                        souk_db_run(db,
                                    "UPDATE deliveries SET next_attempt_ms = ? WHERE id = ?"
                                    " AND status = 'pending'",
                                    "ii", souk_wall_ms(), batch[j].id);
                return false;
            }
            from = i + 1;
        }
    }
    return !files || tried == 0 || record(db, batch, out, from, n) == 0;
}

static void *mailer_main(void *arg)
{
    SOUK_UNUSED(arg);
    struct souk_db *db = souk_db_thread();
    struct mail batch[BATCH];
    struct sent out[BATCH];
    for (;;) {
        pthread_mutex_lock(&lock);
        uint64_t seen = nudges;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += POLL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!stopping && nudges == seen && pthread_cond_timedwait(&cond, &lock, &ts) == 0)
            ;
        bool stop = stopping;
        pthread_mutex_unlock(&lock);
        if (stop || db == NULL)
            break;
        int n = due(db, batch);
        if (n < 0) {
            souk_error("cannot read the mail queue", "{s:s}", "error", souk_strerror(n));
            usleep(DB_RETRY_MS * 1000);
        }
        if (n <= 0)
            continue;
        int rc = claim(db, batch, out, n);
        if (rc != 0)
            souk_error("cannot claim mails", "{s:s}", "error", souk_strerror(rc));
        bool recorded = rc == 0 && send_batch(db, batch, out, n);
        for (int i = 0; i < n; i++)
            free_mail(&batch[i]);
        if (!recorded) /* the database failed us: pause */
            usleep(DB_RETRY_MS * 1000);
    }
    return NULL;
}

/* The SMTP login and TLS settings, checked: 0, or SOUK_EINVAL with the reason
 * logged (never a secret). */
static int smtp_settings(void)
{
    static const char *const modes[] = {"off", "try", "require"};
    static const long ssl[] = {CURLUSESSL_NONE, CURLUSESSL_TRY, CURLUSESSL_ALL};
    size_t m = 0;
    while (m < SOUK_ARRAY_LEN(modes) && strcmp(notify_smtp_starttls, modes[m]) != 0)
        m++;
    if (m == SOUK_ARRAY_LEN(modes)) {
        souk_error("SOUK_SMTP_STARTTLS must be off, try or require", NULL);
        return SOUK_EINVAL;
    }
    use_ssl = ssl[m];
    if (notify_smtp_password[0] != '\0' && notify_smtp_password_file[0] != '\0') {
        souk_error("set SOUK_SMTP_PASSWORD or SOUK_SMTP_PASSWORD_FILE, not both", NULL);
        return SOUK_EINVAL;
    }
    if (notify_smtp_password_file[0] != '\0') {
        FILE *f = fopen(notify_smtp_password_file, "r");
        bool ok = f != NULL && fgets(smtp_password, sizeof(smtp_password), f) != NULL;
        if (f != NULL)
            fclose(f);
        smtp_password[strcspn(smtp_password, "\r\n")] = '\0';
        if (!ok || smtp_password[0] == '\0') {
            souk_error("cannot read the SMTP password from SOUK_SMTP_PASSWORD_FILE", "{s:s,s:s}",
                       "file", notify_smtp_password_file, "error",
                       f == NULL ? strerror(errno) : "empty");
            return SOUK_EINVAL;
        }
    } else {
        snprintf(smtp_password, sizeof(smtp_password), "%s", notify_smtp_password);
    }
    if ((notify_smtp_user[0] != '\0') != (smtp_password[0] != '\0')) {
        souk_error("SOUK_SMTP_USER and an SMTP password go together", NULL);
        return SOUK_EINVAL;
    }
    bool login = notify_smtp_user[0] != '\0' || strchr(notify_smtp_url, '@') != NULL;
    if (login && strncmp(notify_smtp_url, "smtp://", 7) == 0 && use_ssl != CURLUSESSL_ALL)
        souk_warn("the SMTP login may cross the network in clear: use smtps:// or "
                  "SOUK_SMTP_STARTTLS=require",
                  NULL);
    return 0;
}

int notify_mailer_start(void)
{
    if (notify_mail_dir[0] != '\0') {
        snprintf(mail_dir, sizeof(mail_dir), "%s", notify_mail_dir);
    } else {
        const char *var = souk_config_value("SOUK_VAR");
        snprintf(mail_dir, sizeof(mail_dir), "%s/mail", var ? var : "var");
    }
    if (notify_smtp_url[0] == '\0')
        mkdirs(mail_dir);
    else if (strncmp(notify_smtp_url, "smtp://", 7) != 0 &&
             strncmp(notify_smtp_url, "smtps://", 8) != 0) {
        souk_error("SOUK_SMTP_URL must be smtp://host:port or smtps://…", NULL);
        return SOUK_EINVAL;
    }
    if (smtp_settings() != 0)
        return SOUK_EINVAL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (pthread_create(&thread, NULL, mailer_main, NULL) != 0)
        return SOUK_ENOMEM;
    running = true;
    char shown[PATH_MAX_LEN];
    souk_info("mailer started", "{s:s,s:s,s:b}", "to",
              notify_smtp_url[0] ? souk_config_redact_url(notify_smtp_url, shown, sizeof(shown))
                                 : mail_dir,
              "starttls", notify_smtp_starttls, "login", notify_smtp_user[0] != '\0');
    return 0;
}

void notify_mailer_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    pthread_join(thread, NULL);
    running = false;
}

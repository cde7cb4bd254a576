/* db_pg.c: PostgreSQL behind the kit's database calls (the scale-out mode), on
 * libpq. One connection per thread, reopened when the server went away; named
 * prepared statements cached per connection like SQLite's; '?' placeholders
 * rewritten to $n at prepare time; errors mapped to the kit's codes by SQLSTATE. */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db_int.h"
#include "dl_int.h"
#include "souk/config.h"
#include "souk/log.h"
#include "souk/souk.h"

#define STMT_CACHE     96
#define MAX_PARAMS     100
#define ERRMSG_MAX     256
#define PASSWORD_MAX   1024
#define BACKOFF_MS     25 /* after a failed reconnect; doubled up to BACKOFF_MAX_MS */
#define BACKOFF_MAX_MS 2000
#define IDLE_CHECK_NS  (5 * 1000000ull) /* idle longer than this: did the server leave? */
/* pg_advisory_lock key of the migrations ("soukmigr"); per database, like the lock */
#define MIGRATE_LOCK "8317697424187664754"

/* Type OIDs (catalog/pg_type_d.h ships with the server's headers, not libpq's). */
enum { BOOLOID = 16, INT8OID = 20, INT2OID = 21, INT4OID = 23, TEXTOID = 25, OIDOID = 26 };
enum { FLOAT4OID = 700, FLOAT8OID = 701, NUMERICOID = 1700 };

/* libpq, loaded only when SOUK_DB is a postgres:// URL (dl_int.h): the calls this file
 * makes, each through pq.<name> */
/* clang-format off: one call a line */
#define PQ_CALLS(X)                                                                                \
    X(PQclear)                                                                                     \
    X(PQcmdStatus)                                                                                 \
    X(PQcmdTuples)                                                                                 \
    X(PQconnectdbParams)                                                                           \
    X(PQconninfoFree)                                                                              \
    X(PQconninfoParse)                                                                             \
    X(PQconsumeInput)                                                                              \
    X(PQerrorMessage)                                                                              \
    X(PQexec)                                                                                      \
    X(PQexecPrepared)                                                                              \
    X(PQfinish)                                                                                    \
    X(PQfname)                                                                                     \
    X(PQfreemem)                                                                                   \
    X(PQftype)                                                                                     \
    X(PQgetisnull)                                                                                 \
    X(PQgetlength)                                                                                 \
    X(PQgetvalue)                                                                                  \
    X(PQnfields)                                                                                   \
    X(PQnotifies)                                                                                  \
    X(PQntuples)                                                                                   \
    X(PQprepare)                                                                                   \
    X(PQresultErrorField)                                                                          \
    X(PQresultErrorMessage)                                                                        \
    X(PQresultStatus)                                                                              \
    X(PQsetNoticeReceiver)                                                                         \
    X(PQsocket)                                                                                    \
    X(PQstatus)                                                                                    \
    X(PQtransactionStatus)
/* clang-format on */
static struct {
    PQ_CALLS(SOUK__DL_SLOT)
} pq;
#define PQ_SYM(f) SOUK__DL_SYM(pq, f)
static const struct souk__dl_sym pq_syms[] = {PQ_CALLS(PQ_SYM)};
static struct souk__dl_lib pq_lib = SOUK__DL_LIB("libpq.so.5", "libpq5", pq_syms);

/* every thread's first connection comes here (pg_open); the threads of a service that
 * configured its database (souk_db_configure) find it done */
int souk__pg_load(char *why, size_t whycap) { return souk__dl_load(&pq_lib, why, whycap); }

struct pg_stmt {
    struct souk_stmt base;
    const char *key; /* the caller's pointer */
    char *sql;       /* the caller's text, for the fallback comparison and logs */
    char *pgsql;     /* what the server prepares: $n, this engine's SOUK_IF_* pieces */
    int nparams;     /* the highest $n */
    unsigned gen;    /* the session it is prepared in (0: none) */
    char name[16];
    PGresult *res; /* the rows of the last run, until SOUK_DONE or souk_stmt_done() */
    int row, nrows;
    int err; /* the last run's error, for the first step */
};

struct pg_db {
    struct souk_db base;
    PGconn *conn; /* NULL after a loss, until the next reconnect */
    char *url;
    unsigned gen;       /* bumped at every connect: prepared statements die with a session */
    unsigned next_name; /* statement names are never reused within a connection */
    bool in_tx;         /* inside a transaction, as of the server's last answer */
    bool broken;        /* the connection was lost inside a transaction: until rollback */
    bool lost_logged;   /* the outage is logged once, its end once */
    bool goodbye;       /* the server sent a FATAL message while the session was idle */
    int tx_err;         /* the first failure in the current transaction */
    int fails;          /* reconnects failed in a row */
    uint64_t retry_at;  /* no reconnect before this (souk_now_ns) */
    uint64_t used_at;   /* the last call's time (souk_now_ns) */
    int64_t changes;
    char errmsg[ERRMSG_MAX];
    struct pg_stmt cache[STMT_CACHE];
    size_t ncache, next_evict;
};

static struct pg_db *pg(struct souk_db *db) { return (struct pg_db *)db; }
static struct pg_stmt *pst(struct souk_stmt *st) { return (struct pg_stmt *)st; }

static int fail(struct pg_db *db, int code)
{
    db->base.err = code;
    if (db->in_tx && db->tx_err == 0)
        db->tx_err = code;
    souk__db_count_error(code);
    return code;
}

static void keep_errmsg(struct pg_db *db, const char *msg)
{
    /* libpq's messages end in a newline and may run to several lines: keep the first */
    snprintf(db->errmsg, sizeof(db->errmsg), "%.*s", (int)strcspn(msg, "\n"), msg);
}

/* ---- the password file ---- */

/* The first line of path, in a malloc'd buffer the caller wipes; NULL on error. */
static char *read_password(const char *path, char *why, size_t whylen)
{
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return NULL;
    }
    buf = souk_xmalloc(PASSWORD_MAX + 1);
    ssize_t n = read(fd, buf, PASSWORD_MAX + 1);
    close(fd);
    if (n < 0 || n > PASSWORD_MAX) {
        snprintf(why, whylen, "%s", n < 0 ? strerror(errno) : "longer than 1024 bytes");
        explicit_bzero(buf, PASSWORD_MAX + 1);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        snprintf(why, whylen, "empty");
        free(buf);
        return NULL;
    }
    return buf;
}

/* What libpq would refuse only at connect time: ports, numbers, sslmode. */
static bool option_ok(const char *key, const char *val)
{
    static const char *const numeric[] = {"connect_timeout",  "keepalives",
                                          "keepalives_idle",  "keepalives_interval",
                                          "keepalives_count", "tcp_user_timeout"};
    if (strcmp(key, "port") == 0) {
        for (const char *p = val; *p != '\0';) { /* "5432" or "5432,5433" (one per host) */
            char *end;
            errno = 0;
            long port = strtol(p, &end, 10);
            if (end == p || errno != 0 || port < 1 || port > 65535 || (*end != ',' && *end != '\0'))
                return false;
            p = *end == ',' ? end + 1 : end;
        }
        return true;
    }
    for (size_t i = 0; i < SOUK_ARRAY_LEN(numeric); i++) {
        if (strcmp(key, numeric[i]) == 0) {
            char *end;
            errno = 0;
            long v = strtol(val, &end, 10);
            return end != val && *end == '\0' && errno == 0 && v >= 0 && v <= 86400000;
        }
    }
    if (strcmp(key, "sslmode") == 0) {
        static const char *const modes[] = {"disable", "allow",     "prefer",
                                            "require", "verify-ca", "verify-full"};
        for (size_t i = 0; i < SOUK_ARRAY_LEN(modes); i++)
            if (strcmp(val, modes[i]) == 0)
                return true;
        return false;
    }
    return true;
}

int souk__pg_check_url(const char *name, const char *url, char *err, size_t errlen)
{
    if (souk__pg_load(err, errlen) != 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", err);
        snprintf(err, errlen, "%s is a PostgreSQL URL, which needs a library: %s", name, why);
        return SOUK_EINVAL;
    }
    char *msg = NULL;
    PQconninfoOption *opts = pq.PQconninfoParse(url, &msg);
    if (opts == NULL) {
        /* libpq quotes what it could not parse, which may be part of a password */
        bool userinfo = strchr(url, '@') != NULL;
        snprintf(err, errlen, "%s: not a valid PostgreSQL URL%s%.*s", name,
                 userinfo || msg == NULL ? "" : ": ",
                 userinfo || msg == NULL ? 0 : (int)strcspn(msg, "\n"), msg ? msg : "");
        pq.PQfreemem(msg);
        return SOUK_EINVAL;
    }
    bool has_password = false;
    const char *bad = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL && bad == NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0')
            continue;
        if (strcmp(o->keyword, "password") == 0)
            has_password = true;
        else if (!option_ok(o->keyword, o->val))
            bad = o->keyword; /* libpq checks these only when it connects */
    }
    if (bad != NULL)
        snprintf(err, errlen, "%s: the PostgreSQL URL's %s is not valid", name, bad);
    pq.PQconninfoFree(opts);
    if (bad != NULL)
        return SOUK_EINVAL;
    if (souk__pg.password_file[0] == '\0')
        return 0;
    if (has_password) {
        snprintf(err, errlen, "%s carries a password and SOUK_DB_PASSWORD_FILE is set: keep one",
                 name);
        return SOUK_EINVAL;
    }
    char why[128];
    char *pw = read_password(souk__pg.password_file, why, sizeof(why));
    if (pw == NULL) {
        snprintf(err, errlen, "SOUK_DB_PASSWORD_FILE=\"%s\": %s", souk__pg.password_file, why);
        return SOUK_EINVAL;
    }
    explicit_bzero(pw, strlen(pw));
    free(pw);
    return 0;
}

/* ---- connections ---- */

static int settle(struct pg_db *db, PGresult *res);

/* What the server says outside an answer: notices (NOTICE, WARNING: to the debug
 * log, not to stderr as libpq would) and, while the session is idle, its FATAL
 * goodbye before it closes the connection (a restart, a terminated backend). */
static void on_notice(void *arg, const PGresult *res)
{
    struct pg_db *db = arg;
    const char *severity = pq.PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = pq.PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (severity != NULL && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0)) {
        db->goodbye = true;
        keep_errmsg(db, msg != NULL ? msg : "the server closed the connection");
    } else if (souk_log_enabled(SOUK_LOG_DEBUG)) {
        souk_log(SOUK_LOG_DEBUG, "database notice", "{s:s,s:s}", "severity",
                 severity != NULL ? severity : "", "error", msg != NULL ? msg : "");
    }
}

/* Open a session. The defaults come before the URL, which may override them. */
static int connect_now(struct pg_db *db)
{
    const char *kw[16], *val[16];
    int n = 0;
#define KV(k, v) (kw[n] = (k), val[n] = (v), n++)
    KV("connect_timeout", "5");
    KV("gssencmode", "disable"); /* Debian's libpq tries Kerberos first otherwise */
    /* a server that vanished without a word (a partition) is noticed in seconds */
    KV("keepalives", "1");
    KV("keepalives_idle", "5");
    KV("keepalives_interval", "2");
    KV("keepalives_count", "3");
    KV("tcp_user_timeout", "10000");
    KV("dbname", db->url);
    char *password = NULL, why[128];
    if (souk__pg.password_file[0] != '\0') {
        password = read_password(souk__pg.password_file, why, sizeof(why));
        if (password == NULL) {
            snprintf(db->errmsg, sizeof(db->errmsg), "SOUK_DB_PASSWORD_FILE: %s", why);
            return SOUK_EUNAVAIL;
        }
        KV("password", password);
    }
    kw[n] = val[n] = NULL;
#undef KV
    PGconn *conn = pq.PQconnectdbParams(kw, val, 1);
    if (password != NULL) {
        explicit_bzero(password, strlen(password));
        free(password);
    }
    if (conn == NULL) {
        snprintf(db->errmsg, sizeof(db->errmsg), "out of memory");
        return SOUK_EUNAVAIL;
    }
    if (pq.PQstatus(conn) != CONNECTION_OK) {
        keep_errmsg(db, pq.PQerrorMessage(conn));
        pq.PQfinish(conn);
        return SOUK_EUNAVAIL;
    }
    char set[256];
    snprintf(set, sizeof(set),
             "SET statement_timeout = %lld; SET lock_timeout = %lld;"
             " SET idle_in_transaction_session_timeout = %lld",
             (long long)souk__pg.statement_timeout_ms, (long long)souk__pg.lock_timeout_ms,
             (long long)souk__pg.idle_tx_timeout_ms);
    PGresult *res = pq.PQexec(conn, set);
    bool ok = pq.PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        keep_errmsg(db, pq.PQresultErrorMessage(res));
    pq.PQclear(res);
    if (!ok) {
        pq.PQfinish(conn);
        return SOUK_EUNAVAIL;
    }
    pq.PQsetNoticeReceiver(conn, on_notice, db);
    db->conn = conn;
    db->gen++;
    db->in_tx = false;
    db->goodbye = false;
    return 0;
}

/* Did the server close the idle connection (a restart says goodbye with a FATAL
 * message, then closes)? Nothing was sent on it yet, so reconnecting is safe. */
static bool said_goodbye(struct pg_db *db)
{
    struct pollfd p = {.fd = pq.PQsocket(db->conn), .events = POLLIN};
    if (p.fd < 0 || db->goodbye)
        return true;
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (!pq.PQconsumeInput(db->conn) || pq.PQstatus(db->conn) != CONNECTION_OK)
        return true;
    PGnotify *note;
    while ((note = pq.PQnotifies(db->conn)) != NULL) /* we listen to none; drop what came */
        pq.PQfreemem(note);
    return db->goodbye; /* the FATAL came, the close is on its way */
}

static void drop_conn(struct pg_db *db)
{
    pq.PQfinish(db->conn);
    db->conn = NULL;
    if (db->in_tx)
        db->broken = true; /* the transaction died with the session */
    db->in_tx = false;
}

/* A usable session, or SOUK_EUNAVAIL (db->err set). */
static int ensure(struct pg_db *db)
{
    if (db->broken) /* the caller must roll back the transaction that was lost */
        return fail(db, SOUK_EUNAVAIL);
    uint64_t now = souk_now_ns();
    /* the goodbye check (a poll) only when the session sat idle: a request's second
     * statement does not pay for it again */
    bool fresh = now - db->used_at < IDLE_CHECK_NS;
    db->used_at = now;
    if (db->conn != NULL && pq.PQstatus(db->conn) == CONNECTION_OK &&
        (db->in_tx || fresh || !said_goodbye(db)))
        return 0;
    if (db->conn != NULL) {
        bool in_tx = db->in_tx;
        if (!db->goodbye)
            keep_errmsg(db, pq.PQerrorMessage(db->conn));
        drop_conn(db);
        if (!db->lost_logged)
            souk_warn("database connection lost", "{s:s}", "error", db->errmsg);
        db->lost_logged = true;
        if (in_tx)
            return fail(db, SOUK_EUNAVAIL);
    }
    if (db->fails > 0 && now < db->retry_at)
        return fail(db, SOUK_EUNAVAIL);
    if (connect_now(db) != 0) {
        int shift = db->fails < 7 ? db->fails : 7;
        uint64_t wait_ms = (uint64_t)BACKOFF_MS << shift;
        db->retry_at = now + (wait_ms < BACKOFF_MAX_MS ? wait_ms : BACKOFF_MAX_MS) * 1000000u;
        if (db->fails++ == 0)
            souk_error("database unreachable", "{s:s}", "error", db->errmsg);
        return fail(db, SOUK_EUNAVAIL);
    }
    if (db->fails > 0 || db->lost_logged) {
        souk_info("database reconnected", "{s:i}", "attempts", db->fails + 1);
        souk__db_count_reconnect();
    }
    db->fails = 0;
    db->lost_logged = false;
    return 0;
}

static int pg_open(struct souk_db **out, const char *url, bool lazy)
{
    char why[512];
    if (souk__pg_load(why, sizeof(why)) != 0) { /* a service checked it at start already */
        souk_error("database unusable", "{s:s}", "error", why);
        return SOUK_EDB;
    }
    struct pg_db *db = souk_xcalloc(1, sizeof(*db));
    db->base.ops = &souk__db_pg;
    db->url = souk_xstrdup(url);
    int rc = connect_now(db);
    if (rc != 0) {
        char shown[512];
        souk_error("database unreachable", "{s:s,s:s}", "url",
                   souk_config_redact_url(url, shown, sizeof(shown)), "error", db->errmsg);
        if (!lazy) {
            free(db->url);
            free(db);
            return rc;
        }
        db->fails = 1; /* the next call tries again at once */
        db->retry_at = 0;
    }
    *out = &db->base;
    return 0;
}

static void clear_result(struct pg_stmt *st)
{
    pq.PQclear(st->res);
    st->res = NULL;
    st->err = 0;
}

static void pg_close(struct souk_db *base)
{
    struct pg_db *db = pg(base);
    for (size_t i = 0; i < db->ncache; i++) {
        clear_result(&db->cache[i]);
        free(db->cache[i].sql);
        free(db->cache[i].pgsql);
    }
    pq.PQfinish(db->conn);
    free(db->url);
    free(db);
}

/* ---- results and errors ---- */

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Replace what is between double quotes by "...". */
static void scrub_quoted(char *msg, size_t cap)
{
    char out[ERRMSG_MAX];
    size_t n = 0;
    bool inside = false;
    for (const char *p = msg; *p != '\0' && n + 5 < sizeof(out); p++) {
        if (*p == '"') {
            inside = !inside;
            if (inside) {
                memcpy(out + n, "\"...", 4);
                n += 4;
                continue;
            }
        }
        if (!inside)
            out[n++] = *p;
    }
    out[n] = '\0';
    snprintf(msg, cap, "%s", out);
}

/* The kit's code for a failed call; logs what is not the caller's to handle. */
static int map_error(struct pg_db *db, const PGresult *res, const char *sql)
{
    const char *state = res != NULL ? pq.PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? pq.PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    keep_errmsg(db, msg != NULL ? msg : pq.PQerrorMessage(db->conn));
    bool lost = pq.PQstatus(db->conn) != CONNECTION_OK || state == NULL || starts(state, "08") ||
                strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
                strcmp(state, "57P03") == 0;
    if (lost) {
        if (!db->lost_logged)
            souk_warn("database connection lost", "{s:s}", "error", db->errmsg);
        db->lost_logged = true;
        drop_conn(db);
        return fail(db, SOUK_EUNAVAIL);
    }
    db->in_tx = pq.PQtransactionStatus(db->conn) != PQTRANS_IDLE;
    if (starts(state, "23")) /* integrity constraint violation: the caller's answer */
        return fail(db, SOUK_ECONFLICT);
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || /* serialization, deadlock */
        strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0)   /* lock, statement timeout */
        return fail(db, SOUK_EBUSY);
    if (strcmp(state, "25P02") == 0) /* a statement after a failed one: that one's error */
        return fail(db, db->tx_err != 0 ? db->tx_err : SOUK_EDB);
    if (strcmp(state, "25006") == 0) /* read-only: a standby, while a failover happens */
        return fail(db, SOUK_EUNAVAIL);
    /* the detail (which may show a row) stays out of logs; so do the values a data
     * exception quotes in its message (invalid input syntax for type …: "value") */
    if (starts(state, "22"))
        scrub_quoted(db->errmsg, sizeof(db->errmsg));
    souk_error("db statement failed", "{s:s,s:s,s:s}", "sqlstate", state, "error", db->errmsg,
               "sql", sql);
    return fail(db, SOUK_EDB);
}

/* 0 when res is a success (kept by the caller), else its code (res freed). */
static int settle(struct pg_db *db, PGresult *res)
{
    ExecStatusType s = res != NULL ? pq.PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_EMPTY_QUERY) {
        db->in_tx = pq.PQtransactionStatus(db->conn) != PQTRANS_IDLE;
        const char *tag = pq.PQcmdStatus(res);
        /* like sqlite3_changes(): rows written by the last INSERT, UPDATE or DELETE */
        if (starts(tag, "INSERT") || starts(tag, "UPDATE") || starts(tag, "DELETE") ||
            starts(tag, "MERGE"))
            db->changes = strtoll(pq.PQcmdTuples(res), NULL, 10);
        return 0;
    }
    return -1;
}

static int run_simple(struct pg_db *db, const char *sql)
{
    PGresult *res = pq.PQexec(db->conn, sql);
    if (settle(db, res) == 0) {
        pq.PQclear(res);
        return 0;
    }
    int rc = map_error(db, res, sql);
    pq.PQclear(res);
    return rc;
}

static int pg_exec(struct souk_db *base, const char *sql)
{
    struct pg_db *db = pg(base);
    int rc = ensure(db);
    if (rc != 0)
        return rc;
    char *variant = souk__db_variant(sql, SOUK_DB_POSTGRES);
    rc = run_simple(db, variant ? variant : sql);
    free(variant);
    if (rc == SOUK_ECONFLICT || rc == SOUK_EBUSY) /* not logged by map_error; unexpected here */
        souk_error("db exec failed", "{s:s,s:s}", "error", db->errmsg, "sql", sql);
    return rc;
}

/* ---- statements ---- */

/* sql with '?' and '?NNN' turned into $n (numbered as SQLite numbers them: a bare
 * '?' is one more than the highest so far), skipping quotes and comments. NULL when
 * a number is out of range. */
static char *rewrite(const char *sql, int *nparams)
{
    size_t len = strlen(sql);
    char *out = souk_xmalloc(len * 4 + 1), *o = out; /* "?" → "$100" at most */
    int max = 0;
    const char *p = sql;
    while (*p != '\0') {
        if (*p == '\'' || *p == '"') {
            char q = *p;
            *o++ = *p++;
            while (*p != '\0' && *p != q)
                *o++ = *p++;
            if (*p != '\0')
                *o++ = *p++;
        } else if (p[0] == '-' && p[1] == '-') {
            while (*p != '\0' && *p != '\n')
                *o++ = *p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            size_t n = end != NULL ? (size_t)(end + 2 - p) : strlen(p);
            memcpy(o, p, n);
            o += n;
            p += n;
        } else if (*p == '?') {
            long n;
            p++;
            if (*p >= '0' && *p <= '9') {
                char *end;
                n = strtol(p, &end, 10);
                p = end;
            } else {
                n = max + 1;
            }
            if (n < 1 || n > MAX_PARAMS) {
                free(out);
                return NULL;
            }
            if (n > max)
                max = (int)n;
            o += sprintf(o, "$%ld", n);
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    *nparams = max;
    return out;
}

static struct pg_stmt *lookup(struct pg_db *db, const char *sql)
{
    for (size_t i = 0; i < db->ncache; i++)
        if (db->cache[i].key == sql)
            return &db->cache[i];
    for (size_t i = 0; i < db->ncache; i++) {
        if (strcmp(db->cache[i].sql, sql) == 0) {
            db->cache[i].key = sql;
            return &db->cache[i];
        }
    }
    char *variant = souk__db_variant(sql, SOUK_DB_POSTGRES);
    int nparams = 0;
    char *pgsql = rewrite(variant ? variant : sql, &nparams);
    free(variant);
    if (pgsql == NULL) {
        souk_error("db prepare failed: a placeholder out of range", "{s:s}", "sql", sql);
        fail(db, SOUK_EINVAL);
        return NULL;
    }
    struct pg_stmt *c;
    if (db->ncache < STMT_CACHE) {
        c = &db->cache[db->ncache++];
    } else {
        /* the next one in turn that no caller is reading rows from */
        for (int tries = 0; tries < STMT_CACHE && db->cache[db->next_evict].res != NULL; tries++)
            db->next_evict = (db->next_evict + 1) % STMT_CACHE;
        c = &db->cache[db->next_evict];
        db->next_evict = (db->next_evict + 1) % STMT_CACHE;
        if (c->gen == db->gen && db->conn != NULL &&
            pq.PQtransactionStatus(db->conn) != PQTRANS_INERROR) {
            char dealloc[32];
            snprintf(dealloc, sizeof(dealloc), "DEALLOCATE %s", c->name);
            pq.PQclear(
                pq.PQexec(db->conn, dealloc)); /* on failure it stays until the session ends */
        }
        clear_result(c);
        free(c->sql);
        free(c->pgsql);
    }
    memset(c, 0, sizeof(*c));
    c->base.db = &db->base;
    c->key = sql;
    c->sql = souk_xstrdup(sql);
    c->pgsql = pgsql;
    c->nparams = nparams;
    return c;
}

/* Prepare st in this session. Strings go as "unknown" (the server takes the
 * column's type, as SQLite's affinity does), integers as int8, doubles as float8;
 * a statement with a parameter the server cannot type ("? IS NULL") is prepared
 * again with its strings (and NULLs) typed as text. Inside a
 * transaction a savepoint keeps a failed prepare from failing the transaction
 * (SQLite's does not), at two more round trips per statement and session. */
static int prepare(struct pg_db *db, struct pg_stmt *st, const char *fmt)
{
    unsigned types[MAX_PARAMS] = {0};
    for (int i = 0; fmt != NULL && fmt[i] != '\0' && i < st->nparams; i++)
        types[i] = fmt[i] == 'i' ? INT8OID : fmt[i] == 'd' ? FLOAT8OID : 0;
    bool guarded = db->in_tx;
    int rc = guarded ? run_simple(db, "SAVEPOINT souk_prepare") : 0;
    for (int attempt = 0; rc == 0; attempt++) {
        snprintf(st->name, sizeof(st->name), "s%u", ++db->next_name);
        PGresult *res = pq.PQprepare(db->conn, st->name, st->pgsql, st->nparams, types);
        if (settle(db, res) == 0) {
            pq.PQclear(res);
            st->gen = db->gen;
            return guarded ? run_simple(db, "RELEASE SAVEPOINT souk_prepare") : 0;
        }
        const char *state = res != NULL ? pq.PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
        bool untyped =
            state != NULL && (strcmp(state, "42P08") == 0 || strcmp(state, "42P18") == 0);
        if (!untyped || attempt > 0) {
            rc = map_error(db, res, st->sql);
            pq.PQclear(res);
            if (guarded && db->conn != NULL &&
                run_simple(db, "ROLLBACK TO SAVEPOINT souk_prepare") == 0)
                db->tx_err = 0; /* the transaction goes on, as SQLite's would */
            return rc;
        }
        pq.PQclear(res);
        if (guarded)
            rc = run_simple(db, "ROLLBACK TO SAVEPOINT souk_prepare");
        for (int i = 0; i < st->nparams; i++)
            if (types[i] == 0)
                types[i] = TEXTOID;
    }
    return rc;
}

static struct souk_stmt *pg_query(struct souk_db *base, const char *sql, const char *fmt,
                                  va_list ap)
{
    struct pg_db *db = pg(base);
    struct pg_stmt *st = lookup(db, sql);
    if (st == NULL)
        return NULL;
    clear_result(st);
    int n = fmt != NULL ? (int)strlen(fmt) : 0;
    if (n > st->nparams) {
        souk_error("db bind: more values than placeholders", "{s:s,s:s}", "fmt", fmt, "sql", sql);
        fail(db, SOUK_EINVAL);
        return NULL;
    }
    const char *values[MAX_PARAMS];
    char nums[MAX_PARAMS][32];
    for (int i = 0; i < st->nparams; i++) {
        values[i] = NULL; /* unbound: NULL, as in SQLite */
        if (i >= n)
            continue;
        switch (fmt[i]) {
        case 's':
        case 'S':
            values[i] = va_arg(ap, const char *);
            break;
        case 'i':
            snprintf(nums[i], sizeof(nums[i]), "%lld", (long long)va_arg(ap, int64_t));
            values[i] = nums[i];
            break;
        case 'b':
            values[i] = va_arg(ap, int) ? "1" : "0";
            break;
        case 'd':
            snprintf(nums[i], sizeof(nums[i]), "%.17g", va_arg(ap, double));
            values[i] = nums[i];
            break;
        case 'n':
            break;
        default:
            souk_error("db bind: bad format", "{s:s}", "fmt", fmt);
            fail(db, SOUK_EINVAL);
            return NULL;
        }
    }
    int rc = ensure(db);
    if (rc == 0 && st->gen != db->gen)
        rc = prepare(db, st, fmt);
    if (rc == SOUK_EDB || rc == SOUK_EINVAL) /* the statement cannot be made: bad SQL */
        return NULL;
    if (rc != 0) { /* the server away or busy: the first step says so */
        st->err = rc;
        return &st->base;
    }
    PGresult *res = pq.PQexecPrepared(db->conn, st->name, st->nparams, values, NULL, NULL, 0);
    if (settle(db, res) == 0) {
        st->res = res;
        st->row = -1;
        st->nrows = pq.PQntuples(res);
    } else {
        st->err = map_error(db, res, st->sql);
        pq.PQclear(res);
    }
    return &st->base;
}

static int pg_step(struct souk_stmt *stmt)
{
    struct pg_stmt *st = pst(stmt);
    if (st->err != 0) {
        int rc = st->err;
        st->err = 0;
        return rc;
    }
    if (st->res == NULL)
        return SOUK_DONE;
    if (++st->row < st->nrows)
        return SOUK_ROW;
    clear_result(st);
    return SOUK_DONE;
}

static void pg_done(struct souk_stmt *st) { clear_result(pst(st)); }

static bool has(struct pg_stmt *st, int col)
{
    return st->res != NULL && st->row >= 0 && st->row < st->nrows && col >= 0 &&
           col < pq.PQnfields(st->res);
}

static const char *pg_text(struct souk_stmt *stmt, int col)
{
    struct pg_stmt *st = pst(stmt);
    if (!has(st, col) || pq.PQgetisnull(st->res, st->row, col))
        return NULL;
    const char *v = pq.PQgetvalue(st->res, st->row, col);
    if (pq.PQftype(st->res, col) == BOOLOID) /* as SQLite shows a boolean: 1 or 0 */
        return v[0] == 't' ? "1" : "0";
    return v;
}

static int64_t pg_int(struct souk_stmt *stmt, int col)
{
    struct pg_stmt *st = pst(stmt);
    if (!has(st, col) || pq.PQgetisnull(st->res, st->row, col))
        return 0;
    const char *v = pq.PQgetvalue(st->res, st->row, col);
    if (pq.PQftype(st->res, col) == BOOLOID)
        return v[0] == 't';
    return strtoll(v, NULL, 10);
}

static double pg_double(struct souk_stmt *stmt, int col)
{
    struct pg_stmt *st = pst(stmt);
    if (!has(st, col) || pq.PQgetisnull(st->res, st->row, col))
        return 0;
    if (pq.PQftype(st->res, col) == BOOLOID)
        return pq.PQgetvalue(st->res, st->row, col)[0] == 't';
    return strtod(pq.PQgetvalue(st->res, st->row, col), NULL);
}

static bool pg_null(struct souk_stmt *stmt, int col)
{
    struct pg_stmt *st = pst(stmt);
    return !has(st, col) || pq.PQgetisnull(st->res, st->row, col);
}

static int pg_columns(struct souk_stmt *stmt)
{
    struct pg_stmt *st = pst(stmt);
    return st->res != NULL ? pq.PQnfields(st->res) : 0;
}

/* A NUMERIC as SQLite would have it: an integer when it is one and fits. */
static json_t *numeric_json(const char *v)
{
    char *end;
    errno = 0;
    long long i = strtoll(v, &end, 10);
    if (*end == '\0' && errno == 0)
        return json_integer(i);
    return json_real(strtod(v, NULL));
}

static json_t *pg_row_json(struct souk_stmt *stmt)
{
    struct pg_stmt *st = pst(stmt);
    json_t *o = json_object();
    int n = pg_columns(stmt);
    for (int i = 0; i < n && has(st, i); i++) {
        const char *name = pq.PQfname(st->res, i);
        size_t nlen = strlen(name);
        const char *v = pq.PQgetvalue(st->res, st->row, i);
        json_t *j;
        if (pq.PQgetisnull(st->res, st->row, i)) {
            j = json_null();
        } else {
            switch (pq.PQftype(st->res, i)) {
            case INT2OID:
            case INT4OID:
            case INT8OID:
            case OIDOID:
                j = json_integer(strtoll(v, NULL, 10));
                break;
            case BOOLOID:
                j = json_integer(v[0] == 't');
                break;
            case FLOAT4OID:
            case FLOAT8OID:
                j = json_real(strtod(v, NULL));
                break;
            case NUMERICOID:
                j = numeric_json(v);
                break;
            default:
                if (nlen > 5 && strcmp(name + nlen - 5, "_json") == 0) {
                    j = json_loads(v, JSON_DECODE_ANY, NULL);
                    char key[64];
                    snprintf(key, sizeof(key), "%.*s", (int)(nlen - 5), name);
                    json_object_set_new(o, key, j != NULL ? j : json_null());
                    continue;
                }
                j = json_stringn(v, (size_t)pq.PQgetlength(st->res, st->row, i));
                if (j == NULL)
                    j = json_null();
            }
        }
        json_object_set_new(o, name, j);
    }
    return o;
}

/* ---- transactions ---- */

static void pg_rollback(struct souk_db *base);

static int pg_begin(struct souk_db *base, enum souk_tx_mode mode)
{
    struct pg_db *db = pg(base);
    if (db->broken) /* a new unit of work: the lost transaction is given up */
        pg_rollback(base);
    if (db->in_tx) {
        souk_error("db begin: a transaction is already open", NULL);
        return fail(db, SOUK_EDB);
    }
    int rc = ensure(db);
    if (rc != 0)
        return rc;
    db->tx_err = 0;
    return run_simple(db, mode == SOUK_TX_READ ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                          : mode == SOUK_TX_LOCKS ? "BEGIN ISOLATION LEVEL READ COMMITTED"
                                                  : "BEGIN ISOLATION LEVEL SERIALIZABLE");
}

static void pg_rollback(struct souk_db *base)
{
    struct pg_db *db = pg(base);
    if (db->conn != NULL && pq.PQstatus(db->conn) == CONNECTION_OK &&
        pq.PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
        PGresult *res = pq.PQexec(db->conn, "ROLLBACK");
        pq.PQclear(res);
        if (pq.PQstatus(db->conn) != CONNECTION_OK)
            drop_conn(db);
    }
    db->in_tx = false;
    db->broken = false;
    db->tx_err = 0;
}

static int pg_commit(struct souk_db *base)
{
    struct pg_db *db = pg(base);
    int rc;
    if (db->broken || db->conn == NULL) {
        rc = fail(db, SOUK_EUNAVAIL);
    } else if (pq.PQtransactionStatus(db->conn) == PQTRANS_INERROR) {
        /* COMMIT would answer "ROLLBACK" without an error: say why it cannot commit */
        rc = db->base.err = db->tx_err != 0 ? db->tx_err : SOUK_EDB;
    } else {
        rc = run_simple(db, "COMMIT");
    }
    if (rc != 0)
        pg_rollback(base);
    db->tx_err = 0;
    return rc;
}

static int64_t pg_changes(struct souk_db *db) { return pg(db)->changes; }

static const char *pg_errmsg(struct souk_db *db) { return pg(db)->errmsg; }

static int pg_ping(struct souk_db *base)
{
    struct pg_db *db = pg(base);
    int rc = ensure(db);
    return rc != 0 ? rc : run_simple(db, "");
}

/* ---- migrations ---- */

static atomic_bool collation_checked; /* once per process */

static int pg_migrate_lock(struct souk_db *base)
{
    struct pg_db *db = pg(base);
    int rc = ensure(db);
    /* a migration may build an index for minutes; a replica waits for the one that
     * runs the migrations, however long */
    if (rc == 0)
        rc = run_simple(db, "SET statement_timeout = 0; SET lock_timeout = 0");
    if (rc == 0)
        rc = run_simple(db, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")");
    if (rc != 0 || atomic_exchange(&collation_checked, true))
        return rc;
    /* keyset pages compare text as SQLite does (bytes) only under the C collation */
    PGresult *res = pq.PQexec(db->conn, "SELECT datcollate FROM pg_database"
                                        " WHERE datname = current_database()");
    if (pq.PQresultStatus(res) == PGRES_TUPLES_OK && pq.PQntuples(res) == 1) {
        const char *coll = pq.PQgetvalue(res, 0, 0);
        if (strcmp(coll, "C") != 0 && strcmp(coll, "POSIX") != 0 && !starts(coll, "C."))
            souk_warn("the database does not sort text by code point: create it with"
                      " LC_COLLATE 'C' (docs/db.md)",
                      "{s:s}", "collation", coll);
    }
    pq.PQclear(res);
    return 0;
}

static void pg_migrate_unlock(struct souk_db *base)
{
    struct pg_db *db = pg(base);
    if (db->conn == NULL || pq.PQstatus(db->conn) != CONNECTION_OK)
        return; /* the lock went with the session */
    char set[160];
    snprintf(set, sizeof(set),
             "SELECT pg_advisory_unlock(" MIGRATE_LOCK "); SET statement_timeout = %lld;"
             " SET lock_timeout = %lld",
             (long long)souk__pg.statement_timeout_ms, (long long)souk__pg.lock_timeout_ms);
    if (run_simple(db, set) != 0)
        drop_conn(db); /* never keep a session whose lock or settings are in doubt */
}

const struct souk__db_ops souk__db_pg = {
    .engine = SOUK_DB_POSTGRES,
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .query = pg_query,
    .step = pg_step,
    .done = pg_done,
    .text = pg_text,
    .get_int = pg_int,
    .get_double = pg_double,
    .null = pg_null,
    .columns = pg_columns,
    .row_json = pg_row_json,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .changes = pg_changes,
    .errmsg = pg_errmsg,
    .ping = pg_ping,
    .migrate_lock = pg_migrate_lock,
    .migrate_unlock = pg_migrate_unlock,
};

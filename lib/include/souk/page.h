/* page.h: one way to page a list (DESIGN §4): ?page_size= (default 20, at most 100),
 * ?page_token=, keyset pages, and {"items":[…],"next_page_token":"…"|null}.
 *
 * A page token is opaque, versioned and sealed: base64url of a version byte, a tag
 * of the list and the query that made it, the keyset position (the last row's sort
 * key, as a JSON array), and a MAC over all of it, keyed with the service's page
 * secret (kept in its own database, so every replica and every restart agrees). A
 * token from another list or query, from another service, altered or made up, is a
 * 400 naming page_token: never a wrong page.
 *
 * A list keyed by its rows' ids (ULIDs: sorted by id is sorted by time) needs two
 * calls around its own query:
 *
 *     int status = souk_page_start(&pg, r, NULL, "orders", "user=%s", user);
 *     if (status != 0)
 *         return status;
 *     st = souk_db_query(db, "SELECT … WHERE user_id = ?1 AND (?2 IS NULL OR id < ?2)"
 *                            " ORDER BY id DESC LIMIT ?3", "sSi", user, pg.after, pg.limit);
 *     return souk_page_reply(&pg, r, st, row_json, "cannot read the orders");
 *
 * A list sorted by other keys, or rendered without jansson, reads pg.pos and makes
 * its token with souk_page_token(). */
#ifndef SOUK_PAGE_H
#define SOUK_PAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "souk/db.h"
#include "souk/json.h"
#include "souk/server.h"

#define SOUK_PAGE_DEFAULT      20  /* rows when page_size is absent */
#define SOUK_PAGE_MAX          100 /* the most page_size may ask for */
#define SOUK_PAGE_TOKEN_MAX    512 /* characters of a token, NUL included */
#define SOUK_PAGE_POS_MAX      4   /* values in a keyset position */
#define SOUK_PAGE_VERSION      1   /* the token format; another version is refused */
#define SOUK_PAGE_SECRET_BYTES 32

/* One value of a keyset position, typed as the db calls bind it. */
struct souk_page_value {
    char type;     /* 's' text, 'i' integer, 'd' real */
    const char *s; /* 's': owned by the request */
    int64_t i;     /* 'i' */
    double d;      /* 'd' */
};

struct souk_page {
    int64_t size;  /* rows on this page: page_size */
    int64_t limit; /* size + 1, to bind as the LIMIT: the extra row says a next page exists */
    /* where the previous page ended: npos values (0 on the first page) */
    int npos;
    struct souk_page_value pos[SOUK_PAGE_POS_MAX];
    const char *after; /* pos[0].s when the position is one text value (an id), else NULL */
    /* the list and query its tokens are bound to (for souk_page_token) */
    const char *list;
    unsigned char bind[8];
    unsigned char secret[SOUK_PAGE_SECRET_BYTES];
};

/* Read page_size and page_token for the list named list (a constant: "orders") and
 * the query given by fmt, the endpoint's filters as the token must find them again
 * ("user=%s order=%s"), written so two different queries never print the same text.
 * Call it after the endpoint's own checks in c (NULL: it has none): when c holds
 * any error, or page_size or page_token is bad, it answers 400 with all of them
 * (taking c) and returns 400; when the page secret cannot be read, the database
 * error's answer. Returns 0 with pg filled in (c emptied and freed) to run the page. */
int souk_page_start(struct souk_page *pg, struct souk_req *r, struct souk_check *c,
                    const char *list, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Answer with one page of a list keyed by id: step st (the caller's query, bound with
 * pg->after and pg->limit), render each row with row (NULL: souk_stmt_row_json), and
 * reply {"items":[…],"next_page_token":…} where the token carries the id of the
 * page's last item. A NULL st or a failed step answers souk_handler_db_error(…, what):
 * a part of a list is not the list. Returns the status. */
int souk_page_reply(struct souk_page *pg, struct souk_req *r, struct souk_stmt *st,
                    json_t *(*row)(struct souk_stmt *st), const char *what);

/* The next page's token for position key (a JSON array of 1 to SOUK_PAGE_POS_MAX
 * strings, integers or reals: the page's last row's sort key, in sort order) as a
 * new JSON string, or NULL when the position cannot be a token (logged). */
json_t *souk_page_token(const struct souk_page *pg, const json_t *key);

/* ---- the token itself, for the unit tests and lists that render their own ---- */

/* Seal key for (list, query) under secret into out (cap bytes, at most
 * SOUK_PAGE_TOKEN_MAX is ever needed). Returns 0, or SOUK_EINVAL for a key that is not
 * an array of 1 to SOUK_PAGE_POS_MAX strings, integers and reals, or SOUK_ETOOBIG. */
int souk_page_seal(const unsigned char secret[SOUK_PAGE_SECRET_BYTES], const char *list,
                   const char *query, const json_t *key, char *out, size_t cap);

/* Open token for (list, query) under secret. Returns 0 and *key (a new array the
 * caller frees); SOUK_ECONFLICT for a token of another list, query or service;
 * SOUK_EINVAL for one that is malformed, altered or of another version. */
int souk_page_open(const unsigned char secret[SOUK_PAGE_SECRET_BYTES], const char *list,
                   const char *query, const char *token, json_t **key);

/* The service's page secret: read from db, made and stored there on first use
 * (a race between replicas keeps the first one stored). 0, or the db's error. */
int souk_page_secret(struct souk_db *db, unsigned char out[SOUK_PAGE_SECRET_BYTES]);

#endif

/* search.c: free text to FTS5 queries over the catalog's two full-text tables (on
 * PostgreSQL: to tsquery text for its tsvectors, listing_pg.c), and the vocabulary
 * (search_words) that turns prefix search into an OR of known words, which FTS5
 * evaluates lazily in rowid order, so a page of results costs a page. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "listing.h"
#include "search.h"
#include "souk/log.h"
#include "souk/souk.h"

#define EXPR_MAX 16384 /* the whole FTS5 expression; words that do not fit are dropped */

static bool word_byte(unsigned char c)
{
    return c >= 0x80 || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

void search_split(const char *text, void (*fn)(void *ctx, const char *word, size_t len), void *ctx)
{
    const unsigned char *p = (const unsigned char *)text;
    while (*p != '\0') {
        while (*p != '\0' && !word_byte(*p))
            p++;
        const unsigned char *start = p;
        while (*p != '\0' && word_byte(*p))
            p++;
        if (p > start)
            fn(ctx, (const char *)start, (size_t)(p - start));
    }
}

/* ASCII letters to lower case; out holds len + 1 bytes. */
static void lower(char *out, const char *word, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = word[i];
        out[i] = (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
    }
    out[len] = '\0';
}

/* ---- the vocabulary ---- */

static uint64_t hash(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot of word: where it is, or the empty one where it goes. */
static char **vocab_slot(struct search_vocab *v, const char *word)
{
    size_t i = hash(word) & (v->cap - 1);
    while (v->slot[i] != NULL && strcmp(v->slot[i], word) != 0)
        i = (i + 1) & (v->cap - 1);
    return &v->slot[i];
}

static void vocab_put(struct search_vocab *v, const char *word)
{
    if (2 * (v->n + 1) > v->cap) { /* keep it at most half full */
        struct search_vocab grown = {souk_xcalloc(v->cap ? v->cap * 2 : 1024, sizeof(char *)),
                                     v->cap ? v->cap * 2 : 1024, 0};
        for (size_t i = 0; i < v->cap; i++)
            if (v->slot[i] != NULL)
                *vocab_slot(&grown, v->slot[i]) = v->slot[i];
        grown.n = v->n;
        free(v->slot);
        *v = grown;
    }
    char **slot = vocab_slot(v, word);
    if (*slot == NULL) {
        *slot = souk_xstrdup(word);
        v->n++;
    }
}

static void vocab_word(void *ctx, const char *word, size_t len)
{
    if (len > SEARCH_WORD_MAX)
        return;
    char buf[SEARCH_WORD_MAX + 1];
    lower(buf, word, len);
    vocab_put(ctx, buf);
}

void search_vocab_add_text(struct search_vocab *v, const char *text)
{
    search_split(text, vocab_word, v);
}

int search_vocab_write(struct search_vocab *v, struct souk_db *db)
{
    for (size_t i = 0; i < v->cap; i++) {
        if (v->slot[i] == NULL)
            continue;
        int rc =
            souk_db_run(db, "INSERT INTO search_words (word) VALUES (?) ON CONFLICT DO NOTHING",
                        "s", v->slot[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void search_vocab_free(struct search_vocab *v)
{
    for (size_t i = 0; i < v->cap; i++)
        free(v->slot[i]);
    free(v->slot);
    memset(v, 0, sizeof(*v));
}

int search_words_add(struct souk_db *db, const char *text)
{
    struct search_vocab v = {0};
    search_vocab_add_text(&v, text);
    int rc = search_vocab_write(&v, db);
    search_vocab_free(&v);
    return rc;
}

int search_words_build(struct souk_db *db)
{
    int64_t have_words = 0, have_products = 0;
    int rc = souk_db_int(db, &have_words, "SELECT EXISTS (SELECT 1 FROM search_words)", NULL);
    if (rc >= 0)
        rc = souk_db_int(db, &have_products, "SELECT EXISTS (SELECT 1 FROM products)", NULL);
    if (rc < 0 || have_words || !have_products)
        return rc < 0 ? rc : 0;
    struct search_vocab v = {0};
    if ((rc = souk_db_begin(db)) != 0)
        goto out;
    struct souk_stmt *st = souk_db_query(db, "SELECT name, description FROM products", NULL);
    if (st == NULL) {
        rc = SOUK_EDB;
        goto out;
    }
    while ((rc = souk_stmt_step(st)) == SOUK_ROW) {
        search_vocab_add_text(&v, souk_stmt_text(st, 0));
        search_vocab_add_text(&v, souk_stmt_text(st, 1));
    }
    if (rc == SOUK_DONE && (rc = search_vocab_write(&v, db)) == 0 && (rc = souk_db_commit(db)) == 0)
        souk_info("search vocabulary built", "{s:I}", "words", (json_int_t)v.n);
out:
    if (rc < 0)
        souk_db_rollback(db);
    search_vocab_free(&v);
    return rc < 0 ? rc : 0;
}

/* ---- queries ---- */

struct expr {
    struct souk_db *db;
    bool pg; /* tsquery text: 'w' | 'x', 'w':*, & (else FTS5's "w" OR "x", "w"*, AND) */
    char buf[EXPR_MAX], key[EXPR_MAX];
    size_t len, key_len;
    int words, rc;
};

static bool put(char *buf, size_t *len, const char *s, size_t n)
{
    if (*len + n + 1 > EXPR_MAX)
        return false;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
    return true;
}

static bool put_str(struct expr *e, const char *s) { return put(e->buf, &e->len, s, strlen(s)); }

/* `"word"` (PostgreSQL: `'word'`): a word holds no quote or backslash, so it is only
 * ever a phrase, never an operator. */
static bool put_phrase(struct expr *e, const char *word, size_t n, bool prefix)
{
    const char *q = e->pg ? "'" : "\"";
    return put_str(e, q) && put(e->buf, &e->len, word, n) &&
           put_str(e, prefix ? (e->pg ? "':*" : "\"*") : q);
}

/* The known words that start with word (not itself), at most SEARCH_EXPAND_MAX + 1. */
static int completions(struct expr *e, const char *word, size_t n, char (*out)[SEARCH_WORD_MAX + 1],
                       size_t *count)
{
    *count = 0;
    if (n < SEARCH_PREFIX_MIN || n > SEARCH_WORD_MAX || (unsigned char)word[n - 1] == 0xff)
        return 0;
    /* PostgreSQL takes only UTF-8 text, and the bound past a prefix that ends inside a
     * multibyte character is none: such a word matches whole words */
    if (e->pg && (unsigned char)word[n - 1] >= 0x80)
        return 0;
    char hi[SEARCH_WORD_MAX + 1];
    memcpy(hi, word, n);
    hi[n - 1] = (char)((unsigned char)hi[n - 1] + 1); /* the first string past the prefix */
    hi[n] = '\0';
    struct souk_stmt *st = souk_db_query(e->db, list_statements[L_WORDS].sql, "ssi", word, hi,
                                         (int64_t)SEARCH_EXPAND_MAX + 1);
    if (st == NULL)
        return SOUK_EDB;
    int rc;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW)
        snprintf(out[(*count)++], SEARCH_WORD_MAX + 1, "%s", souk_stmt_text(st, 0));
    return rc < 0 ? rc : 0;
}

static void expr_word(void *ctx, const char *raw, size_t n)
{
    struct expr *e = ctx;
    char word[256]; /* q is at most 200 bytes; a longer word is left out */
    if (e->rc != 0 || e->words >= SEARCH_WORDS_MAX || n >= sizeof(word))
        return;
    lower(word, raw, n);
    char more[SEARCH_EXPAND_MAX + 1][SEARCH_WORD_MAX + 1];
    size_t nmore = 0;
    e->rc = completions(e, word, n, more, &nmore);
    if (e->rc != 0)
        return;
    size_t mark = e->len;
    bool ok = put_str(e, e->words ? (e->pg ? " & (" : " AND (") : "(");
    if (nmore > SEARCH_EXPAND_MAX) { /* a very short prefix: FTS5 gathers the matches */
        ok = ok && put_phrase(e, word, n, true);
    } else {
        ok = ok && put_phrase(e, word, n, false);
        for (size_t i = 0; i < nmore; i++)
            ok = ok && put_str(e, e->pg ? " | " : " OR ") &&
                 put_phrase(e, more[i], strlen(more[i]), false);
    }
    ok = ok && put_str(e, ")");
    if (!ok) { /* too long a query: this word is left out, as the key shows */
        e->len = mark;
        e->buf[mark] = '\0';
        return;
    }
    if (e->key_len > 0)
        put(e->key, &e->key_len, " ", 1);
    put(e->key, &e->key_len, word, n);
    e->words++;
}

int search_expression(struct souk_db *db, struct souk_arena *a, const char *q, const char **expr,
                      const char **key)
{
    struct expr *e = souk_xcalloc(1, sizeof(*e));
    e->db = db;
    e->pg = souk_db_engine(db) == SOUK_DB_POSTGRES;
    search_split(q, expr_word, e);
    int rc = e->rc;
    *expr = souk_arena_strdup(a, e->buf);
    *key = souk_arena_strdup(a, e->key);
    free(e);
    return rc;
}

const char *search_category_token(struct souk_arena *a, const char *slug)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(slug);
    char *t = souk_arena_alloc(a, 2 * n + 2);
    for (size_t i = 0; i < n; i++) {
        t[2 * i] = hex[(unsigned char)slug[i] >> 4];
        t[2 * i + 1] = hex[(unsigned char)slug[i] & 15];
    }
    t[2 * n] = '0';
    t[2 * n + 1] = '\0';
    return t;
}

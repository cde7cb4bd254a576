/* search.h: free text to FTS5 queries, and the vocabulary behind prefix search.
 * A query word matches itself (stemmed by FTS5) and every known word it begins:
 * "coff" becomes ("coff" OR "coffee"), which FTS5 streams in rowid order, where the
 * prefix query "coff"* would gather every match before the first row. */
#ifndef CATALOG_SEARCH_H
#define CATALOG_SEARCH_H

#include <stdbool.h>
#include <stddef.h>

#include "souk/arena.h"
#include "souk/db.h"

#define SEARCH_WORD_MAX   64 /* longer words are searched as they are, never completed */
#define SEARCH_PREFIX_MIN 3  /* shorter words match whole words only */
#define SEARCH_EXPAND_MAX 32 /* more completions than this: FTS5's own prefix query */
#define SEARCH_WORDS_MAX  16 /* words of q beyond this are dropped */

/* Calls fn(ctx, word, len) for each word of text: a run of ASCII letters and digits or
 * of bytes >= 0x80, ASCII letters lowercased into a buffer of the callee's. The same
 * split for the vocabulary and for queries, so a query word is a word of the catalog. */
void search_split(const char *text, void (*fn)(void *ctx, const char *word, size_t len), void *ctx);

/* A set of words kept in memory (a bulk load gathers them, then writes once). */
struct search_vocab {
    char **slot;
    size_t cap, n;
};
void search_vocab_add_text(struct search_vocab *v, const char *text);
/* INSERT OR IGNORE every word into search_words; 0 or a negative code. */
int search_vocab_write(struct search_vocab *v, struct souk_db *db);
void search_vocab_free(struct search_vocab *v);

/* Add the words of text to search_words inside the caller's transaction. */
int search_words_add(struct souk_db *db, const char *text);

/* Fill search_words from every product when it is empty and products exist (a database
 * migrated from before it); one transaction. 0 or a negative code. */
int search_words_build(struct souk_db *db);

/* The FTS5 expression for q (PostgreSQL: the tsquery text, for to_tsquery('souk', …)),
 * ANDing each word with its completions, allocated in a;
 * "" when q has no words. *key gets the normalised words ("coff mug"), which is what a
 * page token is bound to. Returns 0 or a negative code (the vocabulary lookup failed). */
int search_expression(struct souk_db *db, struct souk_arena *a, const char *q, const char **expr,
                      const char **key);

/* The token the category column of the full-text tables holds for slug: hex of its bytes
 * and a final '0' (no stemmer rule ends in a digit). In a. */
const char *search_category_token(struct souk_arena *a, const char *slug);

#endif

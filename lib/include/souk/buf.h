/* buf.h: a growable byte buffer with a hard cap, for bytes that arrive in pieces
 * (a request or response body, a header being built, an encoded document). It
 * doubles as it grows, never holds more than its cap, and keeps its bytes
 * NUL-terminated so text can be read in place. Allocation failure aborts. */
#ifndef SOUK_BUF_H
#define SOUK_BUF_H

#include <stddef.h>

struct souk_buf {
    char *p;    /* NULL until the first byte; then p[len] == '\0' */
    size_t len; /* bytes held */
    size_t cap; /* bytes allocated (len + 1 at least once p is set) */
    size_t max; /* the most bytes it may hold (the NUL not counted); SIZE_MAX: no cap.
                 * Set by souk_buf_init; may be changed to any value >= len */
};

/* An empty buffer that holds at most max bytes. Allocates nothing. */
void souk_buf_init(struct souk_buf *b, size_t max);
/* Append n bytes of s: 0, or SOUK_ETOOBIG when len + n would pass max (or overflow
 * size_t); then nothing is added and what is in stays as it was. n == 0 is 0 and
 * allocates nothing. */
int souk_buf_put(struct souk_buf *b, const void *s, size_t n);
/* Make room for n more bytes in one allocation (for a length announced ahead, such
 * as Content-Length): 0, or SOUK_ETOOBIG as souk_buf_put (nothing changes). */
int souk_buf_reserve(struct souk_buf *b, size_t n);
/* Empty it; the memory is kept for the next use. */
void souk_buf_reset(struct souk_buf *b);
/* Release the memory; the buffer is empty and usable again, with the same cap. */
void souk_buf_free(struct souk_buf *b);
/* Hand the bytes over: a malloc'd NUL-terminated string the caller frees (never
 * NULL: "" when empty), *len its length when len is not NULL. The buffer is left
 * empty, owning nothing, with the same cap. */
char *souk_buf_take(struct souk_buf *b, size_t *len);

#endif

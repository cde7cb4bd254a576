/* buf.c: the growable byte buffer with a hard cap (buf.h): one implementation of
 * "append n bytes, doubling, up to a cap" for the proxy's, the gateway's and the
 * OTLP encoder's buffers. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "souk/buf.h"
#include "souk/souk.h"

#define BUF_FIRST 1024 /* the first allocation, unless a larger one is wanted */

void souk_buf_init(struct souk_buf *b, size_t max) { *b = (struct souk_buf){.max = max}; }

/* Room for need bytes and the NUL after them, in the capacity grow picks: doubled
 * from the current (or BUF_FIRST) until it fits, never past what max allows, or
 * exactly need + 1 when exact. need <= max is the caller's check. */
static void room(struct souk_buf *b, size_t need, bool exact)
{
    if (need < b->cap)
        return;
    /* need <= max and need + 1 is computed only when need < SIZE_MAX: put and reserve
     * refuse need == SIZE_MAX */
    size_t want = need + 1, limit = b->max == SIZE_MAX ? SIZE_MAX : b->max + 1, c = want;
    if (!exact) {
        c = b->cap ? b->cap : BUF_FIRST;
        while (c < want)
            c = c > SIZE_MAX / 2 ? SIZE_MAX : c * 2;
        if (c > limit)
            c = limit;
    }
    b->p = souk_xrealloc(b->p, c);
    b->cap = c;
}

/* len + n fits under max (and under SIZE_MAX, keeping a byte for the NUL). */
static bool fits(const struct souk_buf *b, size_t n)
{
    return n <= b->max - b->len && n < SIZE_MAX - b->len;
}

int souk_buf_put(struct souk_buf *b, const void *s, size_t n)
{
    if (n == 0)
        return 0;
    if (!fits(b, n))
        return SOUK_ETOOBIG;
    room(b, b->len + n, false);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int souk_buf_reserve(struct souk_buf *b, size_t n)
{
    if (!fits(b, n))
        return SOUK_ETOOBIG;
    bool fresh = b->p == NULL;
    room(b, b->len + n, true);
    if (fresh)
        b->p[0] = '\0';
    return 0;
}

void souk_buf_reset(struct souk_buf *b)
{
    b->len = 0;
    if (b->p != NULL)
        b->p[0] = '\0';
}

void souk_buf_free(struct souk_buf *b)
{
    free(b->p);
    souk_buf_init(b, b->max);
}

char *souk_buf_take(struct souk_buf *b, size_t *len)
{
    char *p = b->p;
    if (p == NULL)
        p = souk_xcalloc(1, 1);
    if (len != NULL)
        *len = b->len;
    souk_buf_init(b, b->max);
    return p;
}

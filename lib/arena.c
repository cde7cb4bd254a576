/* arena.c: chunked bump allocation for request-scoped memory. Chunks grow
 * geometrically up to a limit; a single large request gets a chunk of its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/arena.h"
#include "souk/souk.h"

#define ARENA_ALIGN     16
#define ARENA_FIRST     4096
#define ARENA_MAX_CHUNK (256 * 1024)

struct souk_arena_chunk {
    struct souk_arena_chunk *next;
    size_t size;
    _Alignas(ARENA_ALIGN) char data[];
};

void souk_arena_init(struct souk_arena *a)
{
    a->head = NULL;
    a->cur = a->end = NULL;
    a->total = 0;
}

void souk_arena_free(struct souk_arena *a)
{
    struct souk_arena_chunk *c = a->head;
    while (c != NULL) {
        struct souk_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    souk_arena_init(a);
}

void *souk_arena_alloc(struct souk_arena *a, size_t n)
{
    size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need < n)
        souk_oom();
    if ((size_t)(a->end - a->cur) < need || a->cur == NULL) {
        size_t size = a->head ? a->head->size * 2 : ARENA_FIRST;
        if (size > ARENA_MAX_CHUNK)
            size = ARENA_MAX_CHUNK;
        if (size < need)
            size = need;
        struct souk_arena_chunk *c = souk_xmalloc(sizeof(*c) + size);
        c->size = size;
        c->next = a->head;
        a->head = c;
        a->cur = c->data;
        a->end = c->data + size;
    }
    void *p = a->cur;
    a->cur += need;
    a->total += need;
    return p;
}

void *souk_arena_calloc(struct souk_arena *a, size_t n)
{
    return memset(souk_arena_alloc(a, n), 0, n);
}

char *souk_arena_strndup(struct souk_arena *a, const char *s, size_t n)
{
    char *p = souk_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *souk_arena_strdup(struct souk_arena *a, const char *s)
{
    return souk_arena_strndup(a, s, strlen(s));
}

char *souk_arena_vprintf(struct souk_arena *a, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    char *p = souk_arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

char *souk_arena_printf(struct souk_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = souk_arena_vprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

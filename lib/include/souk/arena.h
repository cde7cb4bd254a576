/* arena.h: a bump allocator for memory that lives exactly as long as one request
 * (or one job). Everything allocated from it is released at once by
 * souk_arena_free(); nothing is freed piecemeal. Allocation failure aborts. */
#ifndef SOUK_ARENA_H
#define SOUK_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct souk_arena_chunk; /* opaque: arena.c's */

struct souk_arena {
    struct souk_arena_chunk *head;
    char *cur, *end;
    size_t total; /* bytes handed out, for caps */
};

void souk_arena_init(struct souk_arena *a);
void souk_arena_free(struct souk_arena *a);             /* releases all; the arena can be reused */
void *souk_arena_alloc(struct souk_arena *a, size_t n); /* 16-byte aligned, uninitialised */
void *souk_arena_calloc(struct souk_arena *a, size_t n);
char *souk_arena_strdup(struct souk_arena *a, const char *s);
char *souk_arena_strndup(struct souk_arena *a, const char *s, size_t n);
char *souk_arena_printf(struct souk_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
char *souk_arena_vprintf(struct souk_arena *a, const char *fmt, va_list ap);

#endif

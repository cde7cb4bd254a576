/* memtrim_int.h: the kit's idle heap trimming (memtrim.c), run by lib/service.c's
 * main thread between signals. */
#ifndef SOUK_MEMTRIM_INT_H
#define SOUK_MEMTRIM_INT_H

#include <stdbool.h>
#include <stdint.h>

/* Once, before any other thread starts: arenas > 0 caps glibc's malloc arenas
 * (0: glibc's default, 8 per core); quiet_ms > 0 trims the heap after that long
 * without work, once per quiet stretch (0: never). */
void souk__memtrim_configure(int64_t arenas, int64_t quiet_ms);

/* About once a second, from the thread that called configure. */
void souk__memtrim_tick(void);

/* The decision alone, for tests: given the time and the process's CPU time now,
 * whether to trim now (and the state updated as if it did). */
bool souk__memtrim_decide(int64_t now_ms, int64_t cpu_ns);

#endif

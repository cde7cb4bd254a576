/* memtrim.c: the heap a service's work left behind goes back to the system once the
 * service is quiet. glibc keeps what every thread's arena freed; after a burst of
 * work (a seed, a load) a process idles with megabytes it no longer uses. The main
 * thread, which only waits for a signal, ticks here about once a second: after
 * enough quiet it calls malloc_trim(0) once, never on the request path. */
#include <malloc.h>
#include <time.h>

#include "memtrim_int.h"
#include "souk/souk.h"

/* More CPU than this per second (all threads) is work: probes, long polls and timers
 * of an idle service stay far below it (bench: 0.1-2 ms/s). */
#define BUSY_NS_PER_S 10000000

static int64_t quiet_needed_ms; /* 0: never trim */
static int64_t last_tick_ms;    /* when souk__memtrim_tick last looked; 0: not yet */
static int64_t last_cpu_ns;     /* the process's CPU time then */
static int64_t quiet_since_ms;  /* the first tick of the current quiet stretch */
static bool worked = true;      /* work since the last trim: start-up counts */

static int64_t process_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void souk__memtrim_configure(int64_t arenas, int64_t quiet_ms)
{
    /* before any thread allocates: a thread that finds every arena taken shares one
     * instead of creating its own (each keeps its own free memory) */
    if (arenas > 0)
        mallopt(M_ARENA_MAX, (int)arenas);
    quiet_needed_ms = quiet_ms;
    last_tick_ms = 0;
    worked = true;
}

bool souk__memtrim_decide(int64_t now_ms, int64_t cpu_ns)
{
    int64_t wall_ms = now_ms - last_tick_ms, used = cpu_ns - last_cpu_ns;
    bool first = last_tick_ms == 0;
    last_tick_ms = now_ms;
    last_cpu_ns = cpu_ns;
    if (first)
        quiet_since_ms = now_ms;
    if (first || quiet_needed_ms <= 0 || wall_ms <= 0)
        return false;
    if (used > BUSY_NS_PER_S / 1000 * wall_ms) {
        worked = true;
        quiet_since_ms = now_ms;
        return false;
    }
    if (!worked || now_ms - quiet_since_ms < quiet_needed_ms)
        return false;
    worked = false; /* once per quiet stretch: the next trim waits for more work */
    return true;
}

void souk__memtrim_tick(void)
{
    if (souk__memtrim_decide((int64_t)(souk_now_ns() / 1000000), process_cpu_ns())) {
        malloc_trim(0);
        /* the trim's own CPU is not work */
        last_cpu_ns = process_cpu_ns();
    }
}

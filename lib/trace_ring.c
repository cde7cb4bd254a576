/* trace_ring.c: the process's recent spans in one bounded ring of bytes (each record
 * a head and its parts, the oldest evicted as new ones come), read by trace id for
 * the admin's view and in order by the exporter, which keeps a cursor into it: the
 * ring is the export queue too, so a stalled collector costs evicted records (counted
 * as dropped), never memory. otlp.c encodes the records. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "souk/souk.h"
#include "trace_int.h"

static unsigned char *ring;
static size_t ring_size;
static uint64_t head, tail;         /* byte positions ever written; records live in [tail, head) */
static uint64_t head_seq, tail_seq; /* records ever written, ever evicted */
static uint64_t exp_seq, exp_pos;   /* the exporter's next record */
static bool exporting, stopped;
static uint64_t wake_at; /* pending records that wake the exporter */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

void souk__trace_ring_setup(size_t bytes)
{
    free(ring);
    ring = bytes > 0 ? souk_xmalloc(bytes) : NULL;
    ring_size = bytes;
    head = tail = head_seq = tail_seq = exp_seq = exp_pos = 0;
}

static void ring_read(uint64_t pos, void *out, size_t n)
{
    size_t at = (size_t)(pos % ring_size), first = ring_size - at < n ? ring_size - at : n;
    memcpy(out, ring + at, first);
    memcpy((unsigned char *)out + first, ring, n - first);
}

static void ring_write(uint64_t pos, const void *in, size_t n)
{
    size_t at = (size_t)(pos % ring_size), first = ring_size - at < n ? ring_size - at : n;
    memcpy(ring + at, in, first);
    memcpy(ring, (const unsigned char *)in + first, n - first);
}

static uint32_t len_at(uint64_t pos)
{
    uint32_t len;
    ring_read(pos, &len, sizeof(len));
    return len;
}

/* Called locked. */
static uint64_t pending_locked(void)
{
    return head_seq - (exp_seq > tail_seq ? exp_seq : tail_seq);
}

void souk__trace_ring_put(const void *rec, size_t len)
{
    if (len == 0 || len > ring_size)
        return;
    pthread_mutex_lock(&lock);
    while (head + len - tail > ring_size) {
        tail += len_at(tail);
        tail_seq++;
    }
    ring_write(head, rec, len);
    head += len;
    head_seq++;
    if (exporting && pending_locked() == wake_at)
        pthread_cond_signal(&cond); /* once, as the batch fills */
    pthread_mutex_unlock(&lock);
}

size_t souk__trace_ring_find(const uint8_t trace_id[16], unsigned char **out, size_t *len)
{
    size_t n = 0, used = 0, cap = 0;
    unsigned char *buf = NULL;
    pthread_mutex_lock(&lock);
    for (uint64_t pos = tail; pos < head;) {
        struct souk__span_rec h;
        ring_read(pos, &h, sizeof(h));
        if (memcmp(h.trace_id, trace_id, 16) == 0) {
            if (used + h.len > cap) {
                cap = (cap + h.len) * 2; /* at most twice what the ring holds */
                buf = souk_xrealloc(buf, cap);
            }
            ring_read(pos, buf + used, h.len);
            used += h.len;
            n++;
        }
        pos += h.len;
    }
    pthread_mutex_unlock(&lock);
    *out = buf;
    *len = used;
    return n;
}

size_t souk__trace_ring_take(unsigned char *buf, size_t cap, size_t max, size_t *len,
                             uint64_t *lost)
{
    size_t n = 0, used = 0;
    pthread_mutex_lock(&lock);
    *lost = 0;
    if (exp_seq < tail_seq) { /* overwritten before we came to them */
        *lost = tail_seq - exp_seq;
        exp_seq = tail_seq;
        exp_pos = tail;
    }
    while (exp_seq < head_seq && n < max) {
        uint32_t l = len_at(exp_pos);
        if (used + l > cap)
            break;
        ring_read(exp_pos, buf + used, l);
        used += l;
        exp_pos += l;
        exp_seq++;
        n++;
    }
    pthread_mutex_unlock(&lock);
    *len = used;
    return n;
}

uint64_t souk__trace_ring_pending(void)
{
    pthread_mutex_lock(&lock);
    uint64_t n = pending_locked();
    pthread_mutex_unlock(&lock);
    return n;
}

bool souk__trace_ring_wait(uint64_t batch, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&lock);
    while (!stopped && pending_locked() < batch && pthread_cond_timedwait(&cond, &lock, &ts) == 0)
        ;
    bool go_on = !stopped;
    pthread_mutex_unlock(&lock);
    return go_on;
}

void souk__trace_ring_stop(bool stop)
{
    pthread_mutex_lock(&lock);
    stopped = stop;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

void souk__trace_ring_export(bool on, uint64_t batch)
{
    pthread_mutex_lock(&lock);
    exporting = on;
    wake_at = batch;
    exp_seq = head_seq; /* what came before is not the exporter's */
    exp_pos = head;
    pthread_mutex_unlock(&lock);
}

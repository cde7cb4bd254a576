/* breaker.h: the one circuit breaker, for every caller that talks to a peer (the
 * client, per origin; the gateway's proxy, per instance). A state machine with no
 * I/O, no clock and no lock of its own: the caller passes the time and holds its
 * own lock around it.
 *
 *   closed ── threshold failures in a row ──▶ open ── open_ms passed, a call asks ──▶
 *   half-open (that one call is the trial) ── success ──▶ closed
 *                                          └─ failure ──▶ open again
 *
 * A refused connection counts as a failure only once the peer has answered well at
 * least once: before that the peer is still starting (a caller that starts before
 * its peer must not find its breaker open when the peer comes up), and a refusal
 * costs no time, which is what a breaker saves. */
#ifndef SOUK_BREAKER_H
#define SOUK_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum souk_breaker_state {
    SOUK_BREAKER_CLOSED,    /* calls go */
    SOUK_BREAKER_OPEN,      /* calls fail fast until open_until_ns */
    SOUK_BREAKER_HALF_OPEN, /* one trial call is under way; the others fail fast */
};

/* How a call that the breaker let through ended. */
enum souk_breaker_outcome {
    SOUK_BREAKER_OK,      /* an answer that is not the peer failing */
    SOUK_BREAKER_FAILED,  /* a 5xx, a timeout, a connection lost: counts */
    SOUK_BREAKER_REFUSED, /* no connection could be made: counts once the peer was reached */
};

struct souk_breaker {
    int threshold;   /* failures in a row that open it; >= 1 */
    int64_t open_ms; /* how long it stays open before a trial */
    /* state, changed only by the calls below */
    enum souk_breaker_state state;
    int failures;           /* counted failures in a row */
    bool reached;           /* the peer has answered with OK once */
    uint64_t open_until_ns; /* OPEN: the time (caller's clock) a trial may go */
};

/* A closed breaker that opens after threshold failures (below 1: 1) for open_ms. */
void souk_breaker_init(struct souk_breaker *b, int threshold, int64_t open_ms);

/* Would a call be let through at now? Closed, or open with its time passed and no
 * trial under way. Changes nothing (a balancer picks among the ready ones). */
bool souk_breaker_ready(const struct souk_breaker *b, uint64_t now_ns);

/* Is it failing calls fast at now (open, its time not passed)? Half-open is not:
 * its trial is under way. */
bool souk_breaker_is_open(const struct souk_breaker *b, uint64_t now_ns);

/* Ask to make a call at now: true when closed; when open with its time passed, the
 * breaker turns half-open and this call is the trial (true); false otherwise. A
 * call let through must be reported with souk_breaker_report(). */
bool souk_breaker_allow(struct souk_breaker *b, uint64_t now_ns);

/* Report how a call let through ended. Returns true when this report opened a
 * closed breaker (the caller logs that once); a failed trial opens it again
 * without saying so. */
bool souk_breaker_report(struct souk_breaker *b, enum souk_breaker_outcome outcome,
                         uint64_t now_ns);

/* The peer is known to be back (a health probe passed): an open breaker lets its
 * trial through at once instead of at the end of open_ms. */
void souk_breaker_retry_now(struct souk_breaker *b);

#endif

/* wait.c: the bounded wait of POST /api/v1/orders and of a cancellation (DESIGN
 * §2, §4): the request is suspended (no pool thread held) until the saga settles
 * the order, which answers at once from the worker, or until orders_wait_ms has
 * passed, when a timer thread answers 202 with the order still pending. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "orders.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/log.h"
#include "souk/souk.h"

#define TICK_MS       25
#define RECHECK_TICKS 20 /* every 0.5 s, a waiter's order is read again */
#define RECHECK_MAX   64

struct waiter {
    struct souk_req *r;
    char order_id[SOUK_ID_MAX];
    int64_t deadline_ms;
    int settled_status;
    struct waiter *next;
};

static struct waiter *waiters;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t timer;
static bool timer_started, stopping;

/* Answer one waiter with the order as it is now (or why it could not be read:
 * rc), and free it. */
static void answer(struct waiter *w, json_t *order, bool settled, int rc)
{
    if (order == NULL) {
        char what[SOUK_ID_MAX + 48];
        snprintf(what, sizeof(what), "cannot read the order; GET /api/v1/orders/%s", w->order_id);
        souk_req_resume(w->r, souk_handler_db_error(w->r, rc < 0 ? rc : SOUK_EDB, what));
    } else {
        char loc[SOUK_ID_MAX + 32];
        snprintf(loc, sizeof(loc), "/api/v1/orders/%s", w->order_id);
        souk_reply_header(w->r, "Location", loc);
        souk_reply_json(w->r, json_incref(order));
        souk_req_resume(w->r, settled ? w->settled_status : 202);
    }
    free(w);
}

/* Detach the waiters matching (id, or every one past its deadline when id is NULL). */
static struct waiter *detach(const char *id, int64_t now, bool all)
{
    struct waiter *out = NULL, **pp = &waiters;
    pthread_mutex_lock(&lock);
    while (*pp != NULL) {
        struct waiter *w = *pp;
        bool take = all || (id ? strcmp(w->order_id, id) == 0 : w->deadline_ms <= now);
        if (take) {
            *pp = w->next;
            w->next = out;
            out = w;
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&lock);
    return out;
}

void wait_notify(const char *order_id)
{
    pthread_mutex_lock(&lock);
    bool any = false;
    for (struct waiter *w = waiters; w != NULL && !any; w = w->next)
        any = strcmp(w->order_id, order_id) == 0;
    pthread_mutex_unlock(&lock);
    if (!any)
        return;
    bool settled = false;
    json_t *order = NULL;
    order_read(souk_db_thread(), order_id, &settled, &order);
    if (order == NULL || !settled) {
        json_decref(order);
        return;
    }
    for (struct waiter *w = detach(order_id, 0, false), *next; w != NULL; w = next) {
        next = w->next;
        answer(w, order, true, 0);
    }
    json_decref(order);
}

int wait_for_order(struct souk_req *r, const char *order_id, int settled_status)
{
    struct waiter *w = souk_xcalloc(1, sizeof(*w));
    w->r = r;
    snprintf(w->order_id, sizeof(w->order_id), "%s", order_id);
    w->deadline_ms = souk_wall_ms() + orders_wait_ms;
    w->settled_status = settled_status;
    pthread_mutex_lock(&lock);
    w->next = waiters;
    waiters = w;
    pthread_mutex_unlock(&lock);
    /* the saga may have settled before we were listed: look once ourselves (the
     * server copes with a resume that comes before the handler returns) */
    wait_notify(order_id);
    return SOUK_SUSPEND;
}

/* The saga of a waiter's order normally runs here and says when it moved; another
 * replica may have run it (this one's worker was busy past the hand-over lease), so
 * now and then the waiters' orders are read again. */
static void recheck(void)
{
    char ids[RECHECK_MAX][SOUK_ID_MAX];
    size_t n = 0;
    pthread_mutex_lock(&lock);
    for (struct waiter *w = waiters; w != NULL && n < RECHECK_MAX; w = w->next)
        snprintf(ids[n++], SOUK_ID_MAX, "%s", w->order_id);
    pthread_mutex_unlock(&lock);
    for (size_t i = 0; i < n; i++)
        wait_notify(ids[i]);
}

/* Answer the expired waiters (all of them when draining) with the order as it is. */
static void expire(bool all)
{
    for (struct waiter *w = detach(NULL, souk_wall_ms(), all), *next; w != NULL; w = next) {
        next = w->next;
        bool settled = false;
        json_t *order = NULL;
        int rc = order_read(souk_db_thread(), w->order_id, &settled, &order);
        answer(w, order, settled, rc);
        json_decref(order);
    }
}

static void *timer_main(void *arg)
{
    SOUK_UNUSED(arg);
    for (unsigned tick = 1;; tick++) {
        pthread_mutex_lock(&lock);
        bool stop = stopping;
        pthread_mutex_unlock(&lock);
        if (stop)
            break;
        if (tick % RECHECK_TICKS == 0)
            recheck();
        expire(souk_server_draining());
        usleep(TICK_MS * 1000);
    }
    expire(true);
    return NULL;
}

int wait_start(void)
{
    if (pthread_create(&timer, NULL, timer_main, NULL) != 0)
        return SOUK_ENOMEM;
    timer_started = true;
    return 0;
}

void wait_stop(void)
{
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_mutex_unlock(&lock);
    if (timer_started)
        pthread_join(timer, NULL);
    timer_started = false;
}

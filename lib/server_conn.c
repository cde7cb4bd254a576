/* server_conn.c: the connection guard (server_int.h). libmicrohttpd's timeout is
 * an idle timeout, and a client that sends one header byte every few seconds is never
 * idle: the guard gives each connection an absolute deadline for its next request's
 * headers and shuts down those past it. It also closes gracefully after an answer
 * sent before the body was read (a lingering close, as nginx does), so the client
 * reads the answer instead of a reset. One thread does both, on a short tick. And it
 * keeps each connection's peer address, worked out once when the connection opens
 * rather than for each of its requests. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_int.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/realip.h"
#include "souk/souk.h"

#define TICK_MS      200    /* deadlines are checked this often */
#define LINGER_MS    5000   /* reading a client's unwanted body after answering, at most */
#define LINGER_MAX   256    /* lingering sockets at once; past that, closed at once */
#define LINGER_BYTES 262144 /* read per wakeup and socket, so one cannot starve the rest */

struct conn {
    struct conn *prev, *next;
    int fd;
    _Atomic uint64_t deadline_ms; /* headers due by then; 0: none */
    atomic_bool linger;
    /* set when the connection opens, read by its requests (same MHD thread) */
    char peer[INET6_ADDRSTRLEN];
    bool peer_is_client; /* no trusted proxy: peer is every request's client address */
};

struct lingering {
    struct lingering *prev, *next;
    int fd;
    uint64_t until_ms;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct conn *conns;          /* every guarded connection, under mu */
static struct lingering *lingering; /* under mu; only the thread removes entries */
static size_t nlingering;
static bool running; /* under mu */
static int epfd = -1, stopfd = -1;
static pthread_t thread;
static uint64_t header_ms, idle_ms;
static struct souk_metric *closed_total;
static _Atomic long open_conns;

static uint64_t now_ms(void) { return souk_now_ns() / 1000000u; }

static struct conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

bool souk__conn_peer(struct MHD_Connection *c, const char **client)
{
    struct conn *k = conn_of(c);
    if (k == NULL || !k->peer_is_client)
        return false;
    *client = k->peer;
    return true;
}

void souk__conn_headers_done(struct MHD_Connection *c)
{
    struct conn *k = conn_of(c);
    if (k != NULL)
        atomic_store(&k->deadline_ms, 0);
}

void souk__conn_request_done(struct MHD_Connection *c)
{
    struct conn *k = conn_of(c);
    if (k != NULL)
        atomic_store(&k->deadline_ms, now_ms() + idle_ms + header_ms);
}

void souk__conn_linger(struct MHD_Connection *c)
{
    struct conn *k = conn_of(c);
    if (k != NULL)
        atomic_store(&k->linger, true);
}

/* Keep the socket open past MHD's close through a duplicate: with the answer in the
 * send buffer, send FIN after it and read what the client still sends. Closing with
 * unread data would send RST, and a reset can destroy the answer at the client. */
static void linger_start(int fd)
{
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0)
        return;
    shutdown(dup, SHUT_WR); /* MHD_USE_TURBO leaves this to us */
    struct lingering *l = souk_xcalloc(1, sizeof(*l));
    l->fd = dup;
    l->until_ms = now_ms() + LINGER_MS;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = l};
    pthread_mutex_lock(&mu);
    bool ok = running && nlingering < LINGER_MAX && epoll_ctl(epfd, EPOLL_CTL_ADD, dup, &ev) == 0;
    if (ok) {
        l->next = lingering;
        if (lingering != NULL)
            lingering->prev = l;
        lingering = l;
        nlingering++;
    }
    pthread_mutex_unlock(&mu);
    if (!ok) {
        close(dup);
        free(l);
        return;
    }
    souk_metric_inc(closed_total, "early_answer");
}

/* Under mu. Only the guard thread removes lingering sockets, so none goes twice. */
static void linger_unlink(struct lingering *l)
{
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        lingering = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    nlingering--;
}

/* Out of the epoll set first: MHD may not have closed its own descriptor of the
 * socket yet, and until the last one closes, epoll would still report it. */
static void linger_close(struct lingering *l)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, l->fd, NULL);
    close(l->fd);
    free(l);
}

static void linger_end(struct lingering *l)
{
    pthread_mutex_lock(&mu);
    linger_unlink(l);
    pthread_mutex_unlock(&mu);
    linger_close(l);
}

static void linger_read(struct lingering *l)
{
    char buf[16384];
    size_t total = 0;
    while (total < LINGER_BYTES) {
        ssize_t n = read(l->fd, buf, sizeof(buf));
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;    /* more later */
        linger_end(l); /* the client is done (EOF) or gone */
        return;
    }
}

void souk__conn_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                       enum MHD_ConnectionNotificationCode toe)
{
    SOUK_UNUSED(cls);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn *k = souk_xcalloc(1, sizeof(*k));
        k->fd = ci != NULL ? ci->connect_fd : -1;
        souk__server_peer(c, k->peer);
        k->peer_is_client = !souk_realip_trusted(souk__srv.trusted_proxies, k->peer);
        atomic_store(&k->deadline_ms, now_ms() + header_ms);
        pthread_mutex_lock(&mu);
        k->next = conns;
        if (conns != NULL)
            conns->prev = k;
        conns = k;
        pthread_mutex_unlock(&mu);
        atomic_fetch_add(&open_conns, 1);
        *socket_context = k;
        return;
    }
    struct conn *k = *socket_context;
    if (k == NULL)
        return;
    *socket_context = NULL;
    /* MHD notifies before it closes the socket: once k is out of the list, the guard
     * can no longer shut down a descriptor number that may be reused. */
    pthread_mutex_lock(&mu);
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        conns = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    pthread_mutex_unlock(&mu);
    atomic_fetch_sub(&open_conns, 1);
    if (atomic_load(&k->linger) && k->fd >= 0)
        linger_start(k->fd);
    free(k);
}

/* Shut down connections past their header deadline (MHD sees the end of input and
 * closes them), and lingering sockets past their time. */
static void tick(uint64_t now)
{
    long late = 0;
    pthread_mutex_lock(&mu);
    for (struct conn *k = conns; k != NULL; k = k->next) {
        uint64_t d = atomic_load(&k->deadline_ms);
        if (d != 0 && now >= d && k->fd >= 0) {
            atomic_store(&k->deadline_ms, 0);
            shutdown(k->fd, SHUT_RDWR);
            late++;
        }
    }
    struct lingering *expired = NULL, *next;
    for (struct lingering *l = lingering; l != NULL; l = next) {
        next = l->next;
        if (now >= l->until_ms) {
            linger_unlink(l);
            l->next = expired;
            expired = l;
        }
    }
    pthread_mutex_unlock(&mu);
    if (late > 0)
        souk_metric_add(closed_total, (double)late, "header_timeout");
    for (struct lingering *l = expired; l != NULL; l = next) {
        next = l->next;
        linger_close(l);
    }
}

static void *guard_main(void *arg)
{
    SOUK_UNUSED(arg);
    struct epoll_event ev[32];
    uint64_t next_tick = 0;
    for (;;) {
        int n = epoll_wait(epfd, ev, SOUK_ARRAY_LEN(ev), TICK_MS);
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == NULL)
                return NULL; /* stop */
            linger_read(ev[i].data.ptr);
        }
        uint64_t now = now_ms();
        if (now >= next_tick) {
            tick(now);
            next_tick = now + TICK_MS;
        }
    }
}

static double open_connections(void *arg)
{
    SOUK_UNUSED(arg);
    return (double)atomic_load(&open_conns);
}

int souk__conn_start(int64_t header_s, int64_t idle_s)
{
    header_ms = (uint64_t)header_s * 1000u;
    idle_ms = (uint64_t)idle_s * 1000u;
    closed_total = souk_metric_counter("http_connections_closed_total",
                                       "connections the server ended early: headers past "
                                       "their deadline, or answered before the body was read",
                                       "reason");
    souk_metric_gauge_fn("http_connections_open", "open connections on the public listener",
                         open_connections, NULL);
    int rc = SOUK_EIO;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epfd < 0 || stopfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, stopfd, &ev) != 0)
        goto out;
    running = true;
    if (pthread_create(&thread, NULL, guard_main, NULL) != 0) {
        running = false;
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        souk_error("connection guard did not start", "{s:s}", "error", strerror(errno));
    return rc;
}

void souk__conn_stop(void)
{
    pthread_mutex_lock(&mu);
    bool was = running;
    running = false;
    pthread_mutex_unlock(&mu);
    if (!was)
        return;
    uint64_t one = 1;
    if (write(stopfd, &one, sizeof(one)) == sizeof(one))
        pthread_join(thread, NULL);
    while (lingering != NULL)
        linger_end(lingering);
}

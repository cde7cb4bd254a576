/* client.c: souk_client_do against a stub HTTP server in this process (a thread on
 * a loopback port the kernel chooses): which calls are retried and how often, the
 * idempotency key, the whole-call timeout, a refused connection, the breaker that
 * opens after consecutive failures and then fails fast without sending. The stub
 * answers each request from a script and closes the connection. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "souk/client.h"
#include "souk/souk.h"
#include "test.h"

#define SCRIPT_MAX 16
#define HANG       -1 /* read the request, never answer (until the stub stops) */

struct stub {
    int fd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    int script[SCRIPT_MAX]; /* the status of each answer in turn; then the last again */
    size_t nscript;
    atomic_int requests;
    char last_request[4096];
};

/* The request's head and body (by Content-Length) from fd, into buf. */
static void read_request(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    char *end = NULL;
    while (len + 1 < cap && (end = strstr(buf, "\r\n\r\n")) == NULL) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        buf[len] = '\0';
    }
    const char *cl = strcasestr(buf, "Content-Length:");
    size_t want = end != NULL ? (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 15, NULL, 10) : 0) : 0;
    while (len < want && len + 1 < cap) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            return;
        len += (size_t)n;
        buf[len] = '\0';
    }
}

static void *stub_main(void *arg)
{
    struct stub *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        char req[4096];
        read_request(c, req, sizeof(req));
        int k = atomic_fetch_add(&s->requests, 1);
        snprintf(s->last_request, sizeof(s->last_request), "%s", req);
        int status = s->script[(size_t)k < s->nscript ? (size_t)k : s->nscript - 1];
        if (status == HANG) {
            while (!atomic_load(&s->stop))
                usleep(10000);
        } else {
            char out[256];
            const char *body = "{\"ok\":true}";
            int n = snprintf(out, sizeof(out),
                             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                             status, strlen(body), body);
            send(c, out, (size_t)n, MSG_NOSIGNAL);
        }
        close(c);
    }
    return NULL;
}

static struct stub *stub_start(const int *script, size_t n)
{
    struct stub *s = calloc(1, sizeof(*s));
    memcpy(s->script, script, n * sizeof(*script));
    s->nscript = n;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->fd >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(s->fd, 16), 0);
    getsockname(s->fd, (struct sockaddr *)&sa, &sl);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, stub_main, s), 0);
    return s;
}

static void stub_stop(struct stub *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    close(s->fd);
    free(s);
}

static void url_of(const struct stub *s, char *buf, size_t cap, const char *path)
{
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", s->port);
    assert_int_equal(souk_client_url(buf, cap, base, "/%s", path), 0);
}

static void test_idempotent_calls_are_retried_on_unavailable(void **state)
{
    (void)state;
    struct stub *s = stub_start((int[]){503, 502, 200}, 3);
    char url[128];
    url_of(s, url, sizeof(url), "items");
    struct souk_call call = {.method = "GET", .url = url, .retries = -1};
    struct souk_response res;
    assert_int_equal(souk_client_do(&call, &res), 0);
    assert_int_equal(res.status, 200);
    assert_true(json_is_true(json_object_get(res.json, "ok")));
    assert_int_equal(atomic_load(&s->requests), 3);
    souk_response_free(&res);
    stub_stop(s);
}

static void test_retries_stop_at_the_count_and_never_on_4xx(void **state)
{
    (void)state;
    struct stub *s = stub_start((int[]){503}, 1);
    char url[128];
    url_of(s, url, sizeof(url), "always-busy");
    struct souk_call call = {.method = "GET", .url = url, .retries = 1};
    struct souk_response res;
    assert_int_equal(souk_client_do(&call, &res), 0);
    assert_int_equal(res.status, 503); /* the last answer, as it came */
    assert_int_equal(atomic_load(&s->requests), 2);
    souk_response_free(&res);
    stub_stop(s);

    s = stub_start((int[]){404, 200}, 2);
    url_of(s, url, sizeof(url), "missing");
    call = (struct souk_call){.method = "GET", .url = url, .retries = 2};
    assert_int_equal(souk_client_do(&call, &res), 0);
    assert_int_equal(res.status, 404);
    assert_int_equal(atomic_load(&s->requests), 1);
    souk_response_free(&res);
    stub_stop(s);
}

static void test_a_post_is_retried_only_with_an_idempotency_key(void **state)
{
    (void)state;
    struct stub *s = stub_start((int[]){503, 503, 201}, 3);
    char url[128];
    url_of(s, url, sizeof(url), "orders");
    json_t *body = json_pack("{s:i}", "n", 1);
    struct souk_call call = {.method = "POST", .url = url, .body = body, .retries = 2};
    struct souk_response res;
    assert_int_equal(souk_client_do(&call, &res), 0);
    assert_int_equal(res.status, 503); /* a second POST could do it twice */
    assert_int_equal(atomic_load(&s->requests), 1);
    souk_response_free(&res);

    call.idempotency_key = "key-123";
    assert_int_equal(souk_client_do(&call, &res), 0);
    assert_int_equal(res.status, 201);
    assert_int_equal(atomic_load(&s->requests), 3);
    assert_non_null(strcasestr(s->last_request, "Idempotency-Key: key-123\r\n"));
    assert_non_null(strstr(s->last_request, "{\"n\":1}"));
    souk_response_free(&res);
    json_decref(body);
    stub_stop(s);
}

static void test_the_whole_call_times_out(void **state)
{
    (void)state;
    struct stub *s = stub_start((int[]){HANG}, 1);
    char url[128];
    url_of(s, url, sizeof(url), "slow");
    struct souk_call call = {.method = "GET", .url = url, .timeout_ms = 200, .retries = 0};
    struct souk_response res;
    uint64_t t0 = souk_now_ns();
    assert_int_equal(souk_client_do(&call, &res), SOUK_ETIMEDOUT);
    uint64_t ms = (souk_now_ns() - t0) / 1000000u;
    assert_int_equal(res.status, 0);
    assert_true(ms >= 150 && ms < 2500); /* bounded by the call's timeout, not the default */
    souk_response_free(&res);
    stub_stop(s);
}

static void test_refused_and_unsafe_calls(void **state)
{
    (void)state;
    /* a port nothing listens on: the call fails (EIO), no status */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", ntohs(sa.sin_port));
    struct souk_call call = {.method = "GET", .url = url, .retries = 0};
    struct souk_response res;
    assert_int_equal(souk_client_do(&call, &res), SOUK_EIO);
    assert_int_equal(res.status, 0);
    souk_response_free(&res);
    /* our own token before any token source is registered: nothing is sent */
    struct stub *s = stub_start((int[]){200}, 1);
    url_of(s, url, sizeof(url), "needs-a-token");
    call = (struct souk_call){.method = "GET", .url = url, .service_token = true};
    assert_int_equal(souk_client_do(&call, &res), SOUK_EUNAVAIL);
    souk_response_free(&res);
    /* a URL pasted together with a dot segment: refused, nothing sent */
    char bad[160];
    snprintf(bad, sizeof(bad), "http://127.0.0.1:%d/a/../b", s->port);
    call = (struct souk_call){.method = "GET", .url = bad};
    assert_int_equal(souk_client_do(&call, &res), SOUK_EINVAL);
    souk_response_free(&res);
    assert_int_equal(atomic_load(&s->requests), 0);
    stub_stop(s);
}

static void test_the_breaker_opens_after_failures_and_fails_fast(void **state)
{
    (void)state;
    struct stub *s = stub_start((int[]){500}, 1);
    char url[128];
    url_of(s, url, sizeof(url), "broken");
    struct souk_call call = {.method = "GET", .url = url, .retries = 0};
    struct souk_response res;
    for (int i = 0; i < 5; i++) { /* the client's threshold: 5 consecutive failures */
        assert_int_equal(souk_client_do(&call, &res), 0);
        assert_int_equal(res.status, 500);
        souk_response_free(&res);
    }
    assert_int_equal(atomic_load(&s->requests), 5);
    uint64_t t0 = souk_now_ns();
    assert_int_equal(souk_client_do(&call, &res), SOUK_EUNAVAIL);
    assert_int_equal(res.status, 0);
    assert_true((souk_now_ns() - t0) / 1000000u < 100); /* at once, nothing sent */
    assert_int_equal(atomic_load(&s->requests), 5);
    souk_response_free(&res);
    /* another origin is not affected */
    struct stub *ok = stub_start((int[]){200}, 1);
    url_of(ok, url, sizeof(url), "fine");
    call.url = url;
    assert_int_equal(souk_client_do(&call, &res), 0);
    assert_int_equal(res.status, 200);
    souk_response_free(&res);
    stub_stop(ok);
    stub_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idempotent_calls_are_retried_on_unavailable),
        cmocka_unit_test(test_retries_stop_at_the_count_and_never_on_4xx),
        cmocka_unit_test(test_a_post_is_retried_only_with_an_idempotency_key),
        cmocka_unit_test(test_the_whole_call_times_out),
        cmocka_unit_test(test_refused_and_unsafe_calls),
        cmocka_unit_test(test_the_breaker_opens_after_failures_and_fails_fast),
    };
    return cmocka_run_group_tests_name("client", tests, NULL, NULL);
}

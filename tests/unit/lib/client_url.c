/* client_url.c: tests the URL builder of lib/client.c (souk_client_url): text from
 * outside becomes one percent-encoded segment or value, dot segments and empty
 * ids are refused, the cap holds; that souk_client_do refuses, before sending
 * anything, a URL whose path holds a dot segment; and that a call to a replica that
 * refuses the connection goes to the next peer of its list, even a POST. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "souk/client.h"
#include "souk/souk.h"
#include "test.h"

#define BASE "http://127.0.0.1:8081"

struct seg_case {
    const char *arg;
    const char *want; /* NULL: refused */
};

static void test_segments(void **state)
{
    (void)state;
    static const struct seg_case cases[] = {
        {"adr_01J00000000000000000000000", BASE "/a/adr_01J00000000000000000000000/b"},
        {"../../../events?limit=20", BASE "/a/..%2F..%2F..%2Fevents%3Flimit%3D20/b"},
        {"x?wait=60", BASE "/a/x%3Fwait%3D60/b"},
        {"x#frag", BASE "/a/x%23frag/b"},
        {"a b&c=d", BASE "/a/a%20b%26c%3Dd/b"},
        {"100%", BASE "/a/100%25/b"},
        {"%2e%2e", BASE "/a/%252e%252e/b"},
        {"caf\xc3\xa9", BASE "/a/caf%C3%A9/b"},
        {"line\r\nX-Evil: 1", BASE "/a/line%0D%0AX-Evil%3A%201/b"},
        {"...", BASE "/a/.../b"}, /* not a dot segment */
        {"a.b_c-d~e", BASE "/a/a.b_c-d~e/b"},
        {"..", NULL},
        {".", NULL},
        {"", NULL},
    };
    char url[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = souk_client_url(url, sizeof(url), BASE, "/a/%s/b", cases[i].arg);
        if (cases[i].want == NULL) {
            assert_int_equal(rc, SOUK_EINVAL);
            assert_string_equal(url, "");
        } else {
            assert_int_equal(rc, 0);
            assert_string_equal(url, cases[i].want);
        }
    }
    const char *volatile missing = NULL; /* hidden from the format check */
    assert_int_equal(souk_client_url(url, sizeof(url), BASE, "/a/%s", missing), SOUK_EINVAL);
}

static void test_query_and_numbers(void **state)
{
    (void)state;
    char url[256];
    assert_int_equal(souk_client_url(url, sizeof(url), BASE,
                                     "/internal/v1/events?after=%lld&wait=%lld&limit=%lld", 42LL,
                                     20LL, -1LL),
                     0);
    assert_string_equal(url, BASE "/internal/v1/events?after=42&wait=20&limit=-1");
    /* a value cannot add a parameter; "." is a fine value after the '?' */
    assert_int_equal(
        souk_client_url(url, sizeof(url), BASE, "/p?order_id=%s&x=%s", "ord_1&admin=true", "."), 0);
    assert_string_equal(url, BASE "/p?order_id=ord_1%26admin%3Dtrue&x=.");
    assert_int_equal(souk_client_url(url, sizeof(url), BASE, "/p/100%%"), 0);
    assert_string_equal(url, BASE "/p/100%");
}

static void test_refusals(void **state)
{
    (void)state;
    char url[48];
    /* another conversion in the template is a programming error, refused */
    assert_int_equal(souk_client_url(url, sizeof(url), BASE, "/p/%d", 3), SOUK_EINVAL);
    assert_string_equal(url, "");
    /* the cap: never a cut URL */
    assert_int_equal(
        souk_client_url(url, sizeof(url), BASE, "/p/%s", "0123456789abcdefghij0123456789"),
        SOUK_ETOOBIG);
    assert_string_equal(url, "");
    assert_int_equal(souk_client_url(url, 0, BASE, "/"), SOUK_ETOOBIG);
    char exact[sizeof(BASE "/p/abc")];
    assert_int_equal(souk_client_url(exact, sizeof(exact), BASE, "/p/%s", "abc"), 0);
    assert_string_equal(exact, BASE "/p/abc");
    assert_int_equal(souk_client_url(exact, sizeof(exact) - 1, BASE, "/p/%s", "abc"), SOUK_ETOOBIG);
}

static void test_do_refuses_dot_segments(void **state)
{
    (void)state;
    /* nothing listens on port 9: had any of these been sent, the error would be
     * SOUK_EIO, not SOUK_EINVAL */
    static const char *const bad[] = {
        "http://127.0.0.1:9/internal/v1/users/u/addresses/../../../events?limit=20",
        "http://127.0.0.1:9/a/./b",
        "http://127.0.0.1:9/a/..",
        "http://127.0.0.1:9/a/%2e%2E/b",
        "http://127.0.0.1:9/a/.%2E/b",
        "http://127.0.0.1:9/a/%2e",
        "http://127.0.0.1:9/a b",
        "http://127.0.0.1:9/a\r\nX: y",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct souk_call call = {.method = "GET", .url = bad[i], .retries = 0};
        struct souk_response res;
        assert_int_equal(souk_client_do(&call, &res), SOUK_EINVAL);
        assert_int_equal(res.status, 0);
        souk_response_free(&res);
    }
    struct souk_call ok = {.method = "GET",
                           .url = "http://127.0.0.1:9/a/.../b?x=../y",
                           .timeout_ms = 500,
                           .retries = 0};
    struct souk_response res;
    assert_int_equal(souk_client_do(&ok, &res), SOUK_EIO); /* sent: refused by the port */
    souk_response_free(&res);
}

/* A one-shot HTTP server on a free loopback port: it answers one request with 200
 * and the request line it got. */
struct one_shot {
    int fd, port;
    char line[256];
};

static void *serve_one(void *arg)
{
    struct one_shot *o = arg;
    int c = accept(o->fd, NULL, NULL);
    char buf[4096];
    ssize_t n = c >= 0 ? recv(c, buf, sizeof(buf) - 1, 0) : -1;
    if (n > 0) {
        buf[n] = '\0';
        snprintf(o->line, sizeof(o->line), "%.*s", (int)strcspn(buf, "\r"), buf);
        static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                    "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
        if (send(c, reply, sizeof(reply) - 1, 0) < 0)
            o->line[0] = '\0';
    }
    if (c >= 0)
        close(c);
    return NULL;
}

static int listen_free(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void test_refused_replica_passes_the_call_on(void **state)
{
    (void)state;
    struct one_shot o = {0};
    o.fd = listen_free(&o.port);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, serve_one, &o), 0);
    /* port 9 refuses at once; the list goes on to the live one, and wraps around */
    char peers[128], url[256];
    snprintf(peers, sizeof(peers), "http://127.0.0.1:9,http://127.0.0.1:%d/", o.port);
    assert_int_equal(
        souk_client_url(url, sizeof(url), "http://127.0.0.1:9", "/a/%s?x=%s", "b", "c"), 0);
    struct souk_call call = {
        .method = "POST", .url = url, .raw_body = "{}", .timeout_ms = 2000, .peers = peers};
    struct souk_response res;
    assert_int_equal(souk_client_do(&call, &res), 0);
    assert_int_equal(res.status, 200);
    souk_response_free(&res);
    pthread_join(t, NULL);
    close(o.fd);
    assert_string_equal(o.line, "POST /a/b?x=c HTTP/1.1");
    /* every peer refusing: the call fails, each tried once, no endless loop */
    snprintf(peers, sizeof(peers), "http://127.0.0.1:9,http://127.0.0.1:%d", o.port);
    call.url = url;
    assert_int_equal(souk_client_do(&call, &res), SOUK_EIO);
    souk_response_free(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_query_and_numbers),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_do_refuses_dot_segments),
        cmocka_unit_test(test_refused_replica_passes_the_call_on),
    };
    return cmocka_run_group_tests_name("client_url", tests, NULL, NULL);
}

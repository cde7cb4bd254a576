/* Unit tests for services/gateway/uv_http.c, the libuv engine's request view over
 * http-parser: requests split across reads at every byte, pipelining, the caps (414,
 * 431, 413 by Content-Length and by a chunked body), the kit's framing rules (400,
 * 501), and the target's split into a decoded path and a raw query. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/proxy.h"
#include "uv_http.h"

static long cap_for_test = 64; /* the body cap on_head gives */
static int heads;

static long on_head(struct gw_request *q, void *arg)
{
    (void)q;
    (void)arg;
    heads++;
    return cap_for_test;
}

/* Feed all of s, in pieces of step bytes; returns the state reached. */
static enum gw_state feed_all(struct gw_request *q, const char *s, size_t step, size_t *used)
{
    size_t n = strlen(s), off = 0;
    while (off < n && q->state == GW_READING) {
        size_t k = n - off < step ? n - off : step;
        size_t u = gw_request_feed(q, s + off, k);
        off += u;
        if (u < k)
            break;
    }
    if (used != NULL)
        *used = off;
    return q->state;
}

static void test_get_split_at_every_byte(void **state)
{
    (void)state;
    const char req[] = "GET /api/v1/products?q=a%20b HTTP/1.1\r\nHost: x\r\n"
                       "Authorization: Bearer abc\r\nX-Long: one two\r\n\r\n";
    for (size_t step = 1; step <= sizeof(req); step++) {
        struct gw_request *q = calloc(1, sizeof(*q));
        gw_request_init(q, on_head, NULL);
        assert_int_equal(feed_all(q, req, step, NULL), GW_DONE);
        assert_string_equal(q->method, "GET");
        assert_string_equal(q->url, "/api/v1/products?q=a%20b");
        assert_string_equal(gw_request_header(q, "authorization"), "Bearer abc");
        assert_string_equal(gw_request_header(q, "X-LONG"), "one two");
        assert_null(gw_request_header(q, "Cookie"));
        assert_true(q->keep_alive);
        gw_request_free(q);
        free(q);
    }
}

static void test_pipelined_requests_and_bodies(void **state)
{
    (void)state;
    const char two[] = "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                       "PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    struct gw_request *q = calloc(1, sizeof(*q));
    gw_request_init(q, on_head, NULL);
    size_t used = gw_request_feed(q, two, strlen(two));
    assert_int_equal(q->state, GW_DONE);
    assert_string_equal(q->method, "POST");
    assert_string_equal(q->body.p, "hello");
    gw_request_next(q);
    size_t more = gw_request_feed(q, two + used, strlen(two) - used);
    assert_int_equal(used + more, strlen(two));
    assert_int_equal(q->state, GW_DONE);
    assert_string_equal(q->method, "PUT");
    assert_string_equal(q->url, "/b");
    assert_int_equal(q->body.len, 5);
    assert_string_equal(q->body.p, "abcde");
    gw_request_free(q);
    free(q);
}

static void expect_error(const char *req, int status, bool framing)
{
    struct gw_request *q = calloc(1, sizeof(*q));
    gw_request_init(q, on_head, NULL);
    assert_int_equal(feed_all(q, req, 7, NULL), GW_ERROR);
    if (q->error != status)
        fail_msg("%s: %d, not %d", req, q->error, status);
    assert_int_equal(q->bad_framing, framing);
    gw_request_free(q);
    free(q);
}

static void test_caps(void **state)
{
    (void)state;
    char *big = malloc(GW_URL_MAX + 64);
    snprintf(big, GW_URL_MAX + 64, "GET /%0*d HTTP/1.1\r\n\r\n", GW_URL_MAX, 0);
    expect_error(big, 414, false);
    char *hdr = malloc(GW_HEAD_MAX + 64);
    snprintf(hdr, GW_HEAD_MAX + 64, "GET / HTTP/1.1\r\nX: %0*d\r\n\r\n", GW_HEAD_MAX, 0);
    expect_error(hdr, 431, false);
    char many[GW_HEADERS_MAX * 8 + 64] = "GET / HTTP/1.1\r\n";
    for (int i = 0; i <= GW_HEADERS_MAX; i++)
        strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    expect_error(many, 431, false);
    free(big);
    free(hdr);
    expect_error("POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n", 413, false);
    char chunks[256];
    snprintf(
        chunks, sizeof(chunks),
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n%064d\r\n1\r\nx\r\n0\r\n\r\n",
        0);
    expect_error(chunks, 413, false);
}

static void test_framing(void **state)
{
    (void)state;
    expect_error("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400,
                 false);
    expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, true);
    expect_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400,
                 true);
    expect_error("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, true);
    expect_error("GARBAGE\r\n\r\n", 400, false);
}

static void test_refused_by_on_head(void **state)
{
    (void)state;
    cap_for_test = -404;
    expect_error("GET /x HTTP/1.1\r\n\r\n", 404, false);
    cap_for_test = 64;
}

static void test_split_target(void **state)
{
    (void)state;
    char path[64];
    const char *query;
    assert_int_equal(gw_split_target("/a%20b/c?x=%20y#frag", path, sizeof(path), &query), 0);
    assert_string_equal(path, "/a b/c");
    assert_string_equal(query, "x=%20y");
    assert_int_equal(gw_split_target("/plain", path, sizeof(path), &query), 0);
    assert_string_equal(query, "");
    assert_int_equal(gw_split_target("/a%2Fb", path, sizeof(path), &query), 0);
    assert_string_equal(path, "/a/b");
    /* an encoded '?' is the path's own: decoded here, encoded again on the way out */
    assert_int_equal(gw_split_target("/a%3Fb?x=1", path, sizeof(path), &query), 0);
    assert_string_equal(path, "/a?b");
    assert_string_equal(query, "x=1");
    char out[64];
    assert_true(souk_proxy_encode_path(path, query, out, sizeof(out)) > 0);
    assert_string_equal(out, "/a%3Fb?x=1");
    assert_int_equal(gw_split_target("/a%00b", path, sizeof(path), &query), 400);
    assert_int_equal(gw_split_target("/a%zz", path, sizeof(path), &query), 400);
    assert_int_equal(gw_split_target("/a%2", path, sizeof(path), &query), 400);
    assert_int_equal(gw_split_target("http://x/a", path, sizeof(path), &query), 400);
    assert_int_equal(gw_split_target("*", path, sizeof(path), &query), 400);
    char small[4];
    assert_int_equal(gw_split_target("/abcdef", small, sizeof(small), &query), 414);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_split_at_every_byte),
        cmocka_unit_test(test_pipelined_requests_and_bodies),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_refused_by_on_head),
        cmocka_unit_test(test_split_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

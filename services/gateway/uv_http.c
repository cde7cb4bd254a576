/* uv_http.c: the libuv engine's request view over http-parser (uv_http.h). The
 * parser's callbacks only copy pieces into one fixed buffer per connection (the
 * target, then name\0value\0 per header), so a request costs no allocation but its
 * body's, and every piece is capped before it is kept. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "souk/souk.h"
#include "uv_http.h"

static struct gw_request *req_of(http_parser *p) { return p->data; }

static int fail(struct gw_request *q, int status)
{
    q->state = GW_ERROR;
    q->error = status;
    return -1; /* stops the parser */
}

/* Append a piece to head; false when it would not fit (with the NUL to come). */
static bool keep(struct gw_request *q, const char *at, size_t n)
{
    if (q->head_len + n + 1 > sizeof(q->head))
        return false;
    memcpy(q->head + q->head_len, at, n);
    q->head_len += n;
    return true;
}

static void terminate(struct gw_request *q) { q->head[q->head_len++] = '\0'; }

static int on_begin(http_parser *p)
{
    struct gw_request *q = req_of(p);
    q->url = q->head;
    q->url_len = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct gw_request *q = req_of(p);
    if (q->url_len + n > GW_URL_MAX)
        return fail(q, 414);
    if (!keep(q, at, n))
        return fail(q, 431);
    q->url_len += n;
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t n)
{
    struct gw_request *q = req_of(p);
    if (q->nh == 0 || q->in_value) { /* a new header: its name starts here */
        terminate(q);                /* the target's end, or the previous value's */
        if (q->nh == GW_HEADERS_MAX)
            return fail(q, 431);
        q->h[q->nh].name = q->head + q->head_len;
        q->h[q->nh].value = "";
        q->nh++;
        q->in_value = false;
    }
    return keep(q, at, n) ? 0 : fail(q, 431);
}

static int on_value(http_parser *p, const char *at, size_t n)
{
    struct gw_request *q = req_of(p);
    if (q->nh == 0)
        return fail(q, 400);
    if (!q->in_value) { /* the name ends, the value starts */
        terminate(q);
        if (q->head_len >= sizeof(q->head))
            return fail(q, 431);
        q->h[q->nh - 1].value = q->head + q->head_len;
        q->in_value = true;
    }
    return keep(q, at, n) ? 0 : fail(q, 431);
}

/* The kit's framing rules (lib/server.c's check_framing) beyond what http-parser
 * refuses itself: Transfer-Encoding only in HTTP/1.1, "chunked" last and once, no
 * other coding (501). 0, or the status. */
static int framing(const struct gw_request *q)
{
    size_t te_headers = 0, codings = 0, chunked = 0;
    bool chunked_last = false;
    for (size_t i = 0; i < q->nh; i++) {
        if (strcasecmp(q->h[i].name, "Transfer-Encoding") != 0)
            continue;
        te_headers++;
        /* a comma-separated list; empty elements do not count (RFC 9110 §5.6.1) */
        for (const char *v = q->h[i].value; *v != '\0';) {
            size_t n = strcspn(v, ",");
            const char *b = v, *e = v + n;
            while (b < e && (*b == ' ' || *b == '\t'))
                b++;
            while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (e > b) {
                bool c = e - b == 7 && strncasecmp(b, "chunked", 7) == 0;
                codings++;
                chunked += c;
                chunked_last = c;
            }
            v += n + (v[n] == ',');
        }
    }
    if (te_headers == 0)
        return 0;
    if (q->p.http_major != 1 || q->p.http_minor != 1 || gw_request_header(q, "Content-Length"))
        return 400;
    if (!chunked_last || chunked != 1)
        return 400;
    if (codings > 1)
        return 501;
    const char *te = gw_request_header(q, "Transfer-Encoding"); /* the first */
    return strcasecmp(te, "chunked") == 0 ? 0 : 400;
}

static int on_headers(http_parser *p)
{
    struct gw_request *q = req_of(p);
    if (q->head_len >= sizeof(q->head))
        return fail(q, 431);
    terminate(q); /* the target's end, or the last value's */
    if (q->nh > 0 && !q->in_value)
        return fail(q, 400); /* a name without a value */
    int bad = framing(q);
    if (bad != 0) {
        q->bad_framing = true;
        return fail(q, bad);
    }
    q->method = http_method_str((enum http_method)p->method);
    q->keep_alive = http_should_keep_alive(p) != 0;
    const char *expect = gw_request_header(q, "Expect");
    q->expect_continue = expect != NULL && strcasecmp(expect, "100-continue") == 0;
    long cap = q->on_head != NULL ? q->on_head(q, q->arg) : 0;
    if (cap < 0)
        return fail(q, (int)-cap);
    q->body.max = (size_t)cap; /* the buffer is empty: any cap holds */
    if (p->content_length != ULLONG_MAX && p->content_length > q->body.max)
        return fail(q, 413);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct gw_request *q = req_of(p);
    if (souk_buf_put(&q->body, at, n) != 0)
        return fail(q, 413);
    return 0;
}

static int on_complete(http_parser *p)
{
    struct gw_request *q = req_of(p);
    q->state = GW_DONE;
    http_parser_pause(p, 1); /* what follows is the next request's */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

void gw_request_init(struct gw_request *q, gw_head_fn on_head, void *arg)
{
    http_parser_init(&q->p, HTTP_REQUEST);
    q->p.data = q;
    q->on_head = on_head;
    q->arg = arg;
    souk_buf_init(&q->body, 0);
    gw_request_next(q);
}

void gw_request_next(struct gw_request *q)
{
    if (q->state == GW_DONE)
        http_parser_pause(&q->p, 0);
    q->state = GW_READING;
    q->error = 0;
    q->bad_framing = false;
    q->method = NULL;
    q->url = q->head;
    q->url_len = 0;
    q->nh = 0;
    q->head_len = 0;
    q->in_value = false;
    q->expect_continue = false;
    q->keep_alive = false;
    souk_buf_reset(&q->body);
    q->body.max = 0;
}

void gw_request_free(struct gw_request *q) { souk_buf_free(&q->body); }

size_t gw_request_feed(struct gw_request *q, const char *data, size_t n)
{
    if (q->state != GW_READING)
        return 0;
    size_t used = http_parser_execute(&q->p, &settings, data, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&q->p);
    if (q->state == GW_READING && e != HPE_OK && e != HPE_PAUSED) {
        q->state = GW_ERROR;
        q->error = 400;
    }
    return used;
}

const char *gw_request_header(const struct gw_request *q, const char *name)
{
    for (size_t i = 0; i < q->nh; i++)
        if (strcasecmp(q->h[i].name, name) == 0)
            return q->h[i].value;
    return NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int gw_split_target(const char *target, char *path, size_t cap, const char **query)
{
    if (target[0] != '/')
        return 400;
    size_t o = 0;
    const char *s = target;
    for (; *s != '\0' && *s != '?' && *s != '#'; s++) {
        char c = *s;
        if (c == '%') {
            int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);
            if (lo < 0 || (hi == 0 && lo == 0))
                return 400;
            c = (char)(hi << 4 | lo);
            s += 2;
        }
        if (o + 2 >= cap)
            return 414;
        path[o++] = c;
    }
    path[o++] = '\0';
    /* the raw query after the path's NUL; a fragment (never sent by browsers) is dropped */
    *query = path + o;
    if (*s == '?') {
        size_t n = strcspn(s + 1, "#");
        if (o + n + 1 > cap)
            return 414;
        memcpy(path + o, s + 1, n);
        o += n;
    }
    path[o] = '\0';
    return 0;
}

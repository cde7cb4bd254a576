/* gw_request.c: libFuzzer driver for the gateway's libuv request view
 * (services/gateway/uv_http.c, the wrapper over http-parser, not the parser): the
 * input is fed as one connection's bytes, cut where its first byte says, requests
 * taken one after another as the engine does; what a finished request shows must
 * lie within its caps, and the target split must keep its promises. */
#include <stdlib.h>
#include <string.h>

#include "uv_http.h"

static long on_head(struct gw_request *q, void *arg)
{
    (void)arg;
    return q->nh % 7 == 6 ? -413 : 4096; /* now and then a refusal by the route */
}

static void check(const struct gw_request *q)
{
    if (q->method == NULL || q->url_len > GW_URL_MAX || q->nh > GW_HEADERS_MAX ||
        q->head_len > GW_HEAD_MAX || q->body.len > q->body.max || strlen(q->url) != q->url_len)
        abort();
    for (size_t i = 0; i < q->nh; i++)
        if (q->h[i].name < q->head || q->h[i].value < q->head ||
            q->h[i].value + strlen(q->h[i].value) >= q->head + GW_HEAD_MAX)
            abort();
    char path[GW_URL_MAX + 2];
    const char *query;
    /* the path is decoded (a %3F in it is a '?' of the path's, which the proxy encodes
     * again), the raw query right after its NUL */
    if (gw_split_target(q->url, path, sizeof(path), &query) == 0 &&
        (path[0] != '/' || query != path + strlen(path) + 1 || query > path + sizeof(path) ||
         strlen(query) >= (size_t)(path + sizeof(path) - query)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    if (n == 0)
        return 0;
    size_t step = (size_t)data[0] + 1; /* how the bytes arrive: 1 to 256 per read */
    const char *p = (const char *)data + 1;
    size_t left = n - 1;
    struct gw_request *q = calloc(1, sizeof(*q));
    gw_request_init(q, on_head, NULL);
    while (left > 0) {
        size_t k = left < step ? left : step;
        size_t used = gw_request_feed(q, p, k);
        if (q->state == GW_ERROR) {
            if (q->error < 400 || q->error > 599)
                abort();
            break;
        }
        if (q->state == GW_DONE) {
            check(q);
            gw_request_next(q);
        } else if (used != k) {
            abort(); /* reading, yet bytes left over */
        }
        p += used;
        left -= used;
    }
    gw_request_free(q);
    free(q);
    return 0;
}

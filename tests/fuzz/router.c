/* router.c: libFuzzer driver for lib/router.c. The input is "METHOD PATH"; it is
 * matched against a fixed table, and also compiled as a pattern of its own. */
#include <stdlib.h>
#include <string.h>

#include "souk/server.h"

static int h(struct souk_req *r)
{
    (void)r;
    return 200;
}

static const struct souk_route table[] = {
    {"GET", "/api/v1/products", h, SOUK_PUBLIC, NULL, 0},
    {"GET", "/api/v1/products/{id}", h, SOUK_PUBLIC, NULL, 0},
    {"PUT", "/api/v1/products/{id}/stock", h, SOUK_ADMIN, NULL, 0},
    {"GET", "/a/{x}/b/{y}", h, SOUK_PUBLIC, NULL, 0},
    {"GET", "/", h, SOUK_PUBLIC, NULL, 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    static struct souk_router *rt;
    if (rt == NULL)
        rt = souk_router_new(table);
    char *s = malloc(n + 1);
    memcpy(s, data, n);
    s[n] = '\0';
    char *sp = strchr(s, ' ');
    const char *method = "GET", *path = s;
    if (sp != NULL) {
        *sp = '\0';
        method = s;
        path = sp + 1;
    }
    struct souk_param params[SOUK_MAX_PARAMS];
    size_t np = 0;
    int i = souk_router_match(rt, method, path, params, &np);
    if (i >= 0) {
        for (size_t k = 0; k < np; k++) /* parameters lie inside the path */
            if (params[k].value < path || params[k].value + params[k].len > path + strlen(path))
                abort();
    }
    char allow[128];
    souk_router_allow(rt, path, allow, sizeof(allow));
    struct souk_route one[] = {{"GET", path, h, SOUK_PUBLIC, NULL, 0},
                               {NULL, NULL, NULL, 0, NULL, 0}};
    struct souk_router *mine = souk_router_new(one);
    if (mine != NULL) {
        souk_router_match(mine, "GET", path, params, &np);
        souk_router_free(mine);
    }
    free(s);
    return 0;
}

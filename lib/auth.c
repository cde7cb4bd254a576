/* auth.c: route access checks. Until token verification lands (issue 3), only
 * public routes are served: any other route answers 401 with a Bearer challenge. */
#include <string.h>

#include "souk/auth.h"
#include "souk/souk.h"

int souk_auth_init(const char *service)
{
    SOUK_UNUSED(service);
    return 0;
}

void souk_auth_shutdown(void)
{
}

int souk_auth_check(struct souk_req *r, const struct souk_route *route, struct souk_identity *who)
{
    memset(who, 0, sizeof(*who));
    if (route->auth == SOUK_PUBLIC || route->auth == SOUK_OPTIONAL_USER)
        return 0;
    souk_reply_header(r, "WWW-Authenticate", "Bearer realm=\"souk\"");
    return souk_problem(r, 401, "unauthorized", "a bearer token is required");
}

int souk_auth_service_token(char *out, size_t cap)
{
    SOUK_UNUSED(out);
    SOUK_UNUSED(cap);
    return SOUK_EUNAVAIL;
}

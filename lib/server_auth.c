/* server_auth.c: the access rule of a route (or a gRPC method; enum souk_auth in
 * server.h), checked before its handler runs: the bearer token is verified by the
 * verifier the auth module registered at start (server_int.h), then the role or
 * scope needed is looked for. 401 with WWW-Authenticate for a missing or invalid
 * token (RFC 6750), 403 for a valid one without the role or scope, 503 when tokens
 * cannot be checked. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "server_int.h"
#include "souk/server.h"
#include "souk/souk.h"

static _Atomic souk__verifier verifier;

/* Does the space-separated list contain scope? */
static bool has_scope(const char *list, const char *scope)
{
    size_t n = strlen(scope);
    for (const char *p = list; *p != '\0';) {
        while (*p == ' ')
            p++;
        size_t m = strcspn(p, " ");
        if (m == n && strncmp(p, scope, n) == 0)
            return true;
        p += m;
    }
    return false;
}

void souk__server_set_verifier(souk__verifier fn) { atomic_store(&verifier, fn); }

static int deny(struct souk__denial *d, int status, const char *code, const char *error,
                const char *detail)
{
    d->status = status;
    d->code = code;
    d->error = error;
    snprintf(d->detail, sizeof(d->detail), "%s", detail);
    return status;
}

int souk__access_check(enum souk_auth need, const char *scope, const char *authorization,
                       struct souk_identity *who, struct souk__denial *d)
{
    memset(who, 0, sizeof(*who));
    if (need == SOUK_PUBLIC)
        return 0;
    if (authorization == NULL)
        return need == SOUK_OPTIONAL_USER
                   ? 0
                   : deny(d, 401, "unauthorized", NULL, "a bearer token is required");
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return deny(d, 401, "invalid_token", "invalid_token", "use the Bearer scheme");
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    char why[96] = "";
    souk__verifier verify = atomic_load(&verifier);
    int rc = verify != NULL ? verify(token, who, why, sizeof(why)) : SOUK_EUNAVAIL;
    if (rc == SOUK_EUNAVAIL)
        return deny(d, 503, "auth_unavailable", NULL, "cannot check tokens now");
    if (rc != 0)
        return deny(d, 401, "invalid_token", "invalid_token", why);
    switch (need) {
    case SOUK_USER:
    case SOUK_OPTIONAL_USER:
        if (who->service)
            return deny(d, 403, "insufficient_scope", "insufficient_scope",
                        "a user token is required");
        return 0;
    case SOUK_ADMIN:
        if (who->service || !who->admin)
            return deny(d, 403, "insufficient_scope", "insufficient_scope", "an admin is required");
        return 0;
    case SOUK_SERVICE:
        if (!who->service || scope == NULL || !has_scope(who->scope, scope))
            return deny(d, 403, "insufficient_scope", "insufficient_scope",
                        "a service token with the required scope is required");
        return 0;
    default:
        return 0;
    }
}

int souk__server_check_access(struct souk_req *r, const struct souk_route *route,
                              struct souk_identity *who)
{
    const char *code = NULL;
    char challenge[384], detail[128]; /* RFC 6750 §3 */
    int status =
        souk_access_decide(route->auth, route->scope, souk_req_header(r, "Authorization"), who,
                           &code, challenge, sizeof(challenge), detail, sizeof(detail));
    if (status == 0)
        return 0;
    if (status == 503)
        souk_reply_header(r, "Retry-After", "5");
    else
        souk_reply_header(r, "WWW-Authenticate", challenge);
    return souk_problem(r, status, code, "%s", detail);
}

int souk_access_decide(enum souk_auth need, const char *scope, const char *authorization,
                       struct souk_identity *who, const char **code, char *challenge,
                       size_t challenge_cap, char *detail, size_t detail_cap)
{
    struct souk__denial d;
    int status = souk__access_check(need, scope, authorization, who, &d);
    if (status == 0)
        return 0;
    *code = d.code;
    snprintf(detail, detail_cap, "%s", d.detail);
    if (status == 503)
        snprintf(challenge, challenge_cap, "%s", "");
    else if (d.error == NULL)
        snprintf(challenge, challenge_cap, "Bearer realm=\"souk\"");
    else
        snprintf(challenge, challenge_cap,
                 "Bearer realm=\"souk\", error=\"%s\", error_description=\"%s\"", d.error,
                 d.detail);
    return status;
}

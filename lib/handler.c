/* handler.c: the opening every handler with a JSON body shares, and the one mapping
 * from a failed database step to an answer (handler.h). Kept apart from server.c:
 * both are built only from the request calls server.h exports. */
#include <stdio.h>

#include "log_int.h"
#include "souk/handler.h"
#include "souk/log.h"
#include "souk/souk.h"

#define PATH_LOG_MAX 256

json_t *souk_handler_open(struct souk_req *r, struct souk_check *c, const char *const *fields)
{
    souk_check_init(c);
    json_t *body = souk_req_json(r);
    if (body != NULL)
        souk_json_only(c, body, fields);
    return body;
}

json_t *souk_handler_open_secret(struct souk_req *r, struct souk_check *c,
                                 const char *const *fields)
{
    json_t *body = souk_handler_open(r, c, fields);
    /* the parser's message quotes the text near a syntax error: say less */
    if (body == NULL && souk_req_status(r) == 400)
        souk_problem(r, 400, "malformed_json", "the body must be a JSON object");
    return body;
}

struct souk_db_answer souk_handler_db_answer(int err)
{
    switch (err) {
    case SOUK_EBUSY: /* a lock that will be let go: soon */
        return (struct souk_db_answer){503, "busy", "1", "the database is busy; retry"};
    case SOUK_EUNAVAIL: /* a connection to make again: give it a little longer */
        return (struct souk_db_answer){503, "unavailable", "5",
                                       "the database cannot be reached; retry"};
    case SOUK_ECONFLICT:
        return (struct souk_db_answer){409, "conflict", NULL,
                                       "it conflicts with what is stored (a change made at the "
                                       "same time?)"};
    }
    return (struct souk_db_answer){500, "internal", NULL, NULL};
}

int souk_handler_db_error(struct souk_req *r, int err, const char *what)
{
    struct souk_db_answer a = souk_handler_db_answer(err);
    if (a.retry_after != NULL)
        souk_reply_header(r, "Retry-After", a.retry_after);
    if (a.why != NULL)
        souk_problem(r, a.status, a.code, "%s: %s", what, a.why);
    else
        souk_problem(r, a.status, a.code, "%s", what);

    /* the path as the access log shows it: a client may put a card number in a URL */
    char path[PATH_LOG_MAX];
    snprintf(path, sizeof(path), "%s", souk_req_path(r));
    souk__redact_digits(path);
    /* lend the line the request's context: a worker thread answering a suspended
     * request has none, a pool thread has this one already */
    const char *had_id, *had_trace;
    souk__log_get_context(&had_id, &had_trace);
    souk__log_set_context(souk_req_id(r), souk_req_traceparent(r));
    souk_log(a.status >= 500 && a.retry_after == NULL ? SOUK_LOG_ERROR : SOUK_LOG_WARN,
             "database step failed", "{s:s,s:s,s:i,s:s,s:s,s:s}", "what", what, "error",
             souk_strerror(err), "status", a.status, "code", a.code, "method", souk_req_method(r),
             "url.path", path);
    souk__log_set_context(had_id, had_trace);
    return a.status;
}

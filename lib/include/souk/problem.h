/* problem.h: RFC 9457 problem details as documents: {"type","title","status","code",
 * "detail"} with type "urn:souk:problem:<code>", and the title of each HTTP status.
 * Answering a request with one is server.h's souk_problem(); this is the document
 * alone, for the server, the gateway and the unit tests. */
#ifndef SOUK_PROBLEM_H
#define SOUK_PROBLEM_H

#include <stdarg.h>

#include <jansson.h>

/* A new problem document (the caller owns the reference): type, title, status and
 * code, plus detail when it is not NULL or "" (a detail that is not UTF-8 is
 * replaced by a note saying so). code is the stable machine string ("not_found"). */
json_t *souk_problem_json(int status, const char *code, const char *detail);

/* The same with detail formatted from fmt and ap (at most 511 bytes kept), and the
 * members of extra that the document lacks added (extra may be NULL; its reference is
 * taken either way): what souk_problem_with() and souk_rpc_problem_with() answer. */
json_t *souk_problem_vjson(int status, const char *code, json_t *extra, const char *fmt,
                           va_list ap);

/* The reason phrase of status ("Not Found"), or "Client Error"/"Server Error" for
 * one without its own. Never NULL. */
const char *souk_status_title(int status);

#endif

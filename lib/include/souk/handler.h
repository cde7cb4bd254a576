/* handler.h: what every handler does the same way: open its JSON body under a check
 * that refuses unknown fields, and turn a failed database step into the one right
 * answer (busy or unreachable: 503 with Retry-After; a constraint: 409; anything
 * else: 500), logged once with the request's context. */
#ifndef SOUK_HANDLER_H
#define SOUK_HANDLER_H

#include <jansson.h>

#include "souk/json.h"
#include "souk/server.h"

/* Open the request's body: parse it as a JSON object, start the check c, and record
 * in c an error for every member not named in fields (NULL-ended). Returns the body,
 * owned by the request, for the handler to read with souk_json_*(c, …) and to end
 * with `if (!souk_check_ok(&c)) return souk_problem_check(r, &c);`. On a body that
 * is missing, not JSON, not an object or not sent as JSON it sets the problem (400
 * or 415) and returns NULL, c started and empty: the handler returns
 * souk_req_status(r). */
json_t *souk_handler_open(struct souk_req *r, struct souk_check *c, const char *const *fields);

/* The same for a body that holds a secret (a card number): the problem for a
 * malformed body never quotes any of it. */
json_t *souk_handler_open_secret(struct souk_req *r, struct souk_check *c,
                                 const char *const *fields);

/* The answer to a failed database step, as a table can test it. */
struct souk_db_answer {
    int status;              /* 503, 409 or 500 */
    const char *code;        /* the problem's code: busy, unavailable, conflict, internal */
    const char *retry_after; /* seconds for Retry-After, or NULL for none */
    const char *why;         /* what the caller is told after "<what>: ", or NULL */
};

/* err (a negative SOUK_E* code) → its answer: SOUK_EBUSY (locked, a serialization
 * failure, a lock timeout) → 503 busy; SOUK_EUNAVAIL (the database cannot be
 * reached) → 503 unavailable, both with Retry-After; SOUK_ECONFLICT (a constraint)
 * → 409 conflict; anything else, including a non-negative err, → 500 internal. */
struct souk_db_answer souk_handler_db_answer(int err);

/* Answer the request for a database step that failed with err: set the problem
 * (detail "<what>", plus why for the 503s and the 409), the Retry-After header
 * where there is one, and log one line with the request's id and trace, even from
 * a thread that is not the request's (a worker answering a suspended request).
 * Returns the status, so a handler can `return souk_handler_db_error(r, rc, "cannot
 * read the orders");`. what says what could not be done; never a secret. A call
 * that has only a NULL statement passes SOUK_EDB. */
int souk_handler_db_error(struct souk_req *r, int err, const char *what);

#endif

/* grpc.h: gRPC beside HTTP, on the gRPC C core with protobuf-c (docs/grpc.md).
 * A service lists its RPCs in a table, as it lists its routes; souk_main() serves
 * them on SOUK_GRPC_LISTEN with the standard health service and server reflection,
 * the same auth, request ids, trace context and problem codes as HTTP, metrics per
 * RPC, and drains them on SIGTERM. The client half calls peers at grpc://host:port
 * (a comma list for replicas) with a deadline on every call, the service token and
 * the trace context. The contracts are api/proto/ (protoc-c generates their C). */
#ifndef SOUK_GRPC_H
#define SOUK_GRPC_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "souk/arena.h"
#include "souk/client.h"
#include "souk/json.h"
#include "souk/server.h"

/* ---- serving ---- */

struct souk_rpc; /* one call being served; the kit owns it */

/* A handler reads the decoded request (of the method's request type, owned by the
 * call), answers with souk_rpc_reply*() and returns 200, or returns a problem from
 * souk_rpc_problem*() — the same (HTTP status, code) pairs as HTTP handlers, which
 * the kit maps to a gRPC status (souk_grpc_status_for). Returning SOUK_RPC_LATER
 * means another thread will call souk_rpc_finish(); until then no thread waits. */
typedef int (*souk_rpc_handler)(struct souk_rpc *c, const ProtobufCMessage *request);
#define SOUK_RPC_LATER 0

struct souk_rpc_method {
    const char *path; /* "/souk.users.v1.Users/GetAddress"; NULL ends the table */
    souk_rpc_handler handler;
    enum souk_auth auth; /* as for routes: SOUK_PUBLIC, SOUK_USER, SOUK_SERVICE… */
    const char *scope;   /* for SOUK_SERVICE: the scope required */
    const ProtobufCMessageDescriptor *request, *response;
    size_t max_message; /* request bytes; 0: SOUK_GRPC_MAX_MESSAGE */
    /* The bridge: the service's own HTTP route answers the call (handler NULL).
     * "POST /internal/v1/payments/{payment_id}/capture": {field} is filled from the
     * request; a field named idempotency_key travels as the Idempotency-Key header;
     * the other fields are the JSON body (POST, PUT, PATCH; none when no field is
     * left) or the query (GET, DELETE; proto3 defaults left out, a set oneof member
     * always sent). auth and scope are the route's. docs/grpc.md "The bridge". */
    const char *rest;
};

/* One table entry from the generated names: SOUK_RPC("/souk.users.v1.Users/GetAddress",
 * get_address, SOUK_SERVICE, "users:read", souk__users__v1__get_address_request,
 * souk__users__v1__address). */
#define SOUK_RPC(path, handler, auth, scope, req, resp)                                            \
    {                                                                                              \
        (path), (handler), (auth), (scope), &req##__descriptor, &resp##__descriptor, 0, NULL       \
    }

/* One table entry answered by an HTTP route of the service (the bridge):
 * SOUK_RPC_ROUTE("/souk.users.v1.Users/GetUser", "GET /internal/v1/users/{user_id}",
 * souk__users__v1__get_user_request, souk__users__v1__user). */
#define SOUK_RPC_ROUTE(path, rest, req, resp)                                                      \
    {                                                                                              \
        (path), NULL, SOUK_PUBLIC, NULL, &req##__descriptor, &resp##__descriptor, 0, (rest)        \
    }

/* What a service serves over gRPC; set as souk_service.grpc. */
struct souk_grpc_service {
    const char *listen; /* default of SOUK_GRPC_LISTEN, "127.0.0.1:9081" */
    const struct souk_rpc_method *methods;
    /* protoc-c's descriptor set of the contracts (scripts/embed-bytes), for server
     * reflection: souk_proto_descriptors and &souk_proto_descriptors_len below for
     * the services' own contracts (the length by address, so that a table can be
     * static). NULL: only the kit's health and reflection are described. */
    const unsigned char *descriptors;
    const size_t *descriptors_len;
};

/* The descriptor set of every api/proto/souk contract (libsouk_proto.a). */
extern const unsigned char souk_proto_descriptors[];
extern const size_t souk_proto_descriptors_len;

/* ---- inside a handler ---- */

const struct souk_identity *souk_rpc_identity(struct souk_rpc *c);
const char *souk_rpc_id(struct souk_rpc *c);          /* x-request-id, ours or the caller's */
const char *souk_rpc_traceparent(struct souk_rpc *c); /* to pass on to peers */
const char *souk_rpc_method(struct souk_rpc *c);      /* the full path */
/* A request metadata value (ASCII keys, lower case) or NULL. Owned by the call. */
const char *souk_rpc_metadata(struct souk_rpc *c, const char *key);
/* Milliseconds left before the call's deadline (the caller's, capped by
 * SOUK_GRPC_DEADLINE_MS); 0 once it passed. Calls to peers inherit it. */
long souk_rpc_deadline_ms(struct souk_rpc *c);
void *souk_rpc_alloc(struct souk_rpc *c, size_t n); /* freed when the call ends */
char *souk_rpc_printf(struct souk_rpc *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
struct souk_arena *souk_rpc_arena(struct souk_rpc *c);
struct souk_db *souk_rpc_db(struct souk_rpc *c); /* the thread's connection */

/* The request as REST-shaped JSON (souk_pb_to_json): what a handler shared with
 * HTTP reads. Owned by the call. */
json_t *souk_rpc_request_json(struct souk_rpc *c);

/* Answers. reply packs resp (of the method's response type) at once: the handler
 * keeps ownership. reply_json takes a REST-shaped body (its reference) and encodes
 * it as the response type (souk_pb_from_json); a body that does not fit the type
 * is a 500 (a programming error, logged). Both return 200. */
int souk_rpc_reply(struct souk_rpc *c, const ProtobufCMessage *resp);
int souk_rpc_reply_json(struct souk_rpc *c, json_t *body);

/* Problems: the status code pairs of HTTP (404 "product_not_found"). The caller
 * sees the mapped gRPC status, the detail as its message, and in trailing metadata
 * souk-problem-code (the code) and souk-problem-bin (the RFC 9457 document as
 * JSON, with errors[] and extension members). Each returns status. */
int souk_rpc_problem(struct souk_rpc *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int souk_rpc_problem_with(struct souk_rpc *c, int status, const char *code, json_t *extra,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int souk_rpc_problem_check(struct souk_rpc *c, struct souk_check *chk); /* 400, takes errors */
/* A whole problem document (taken), e.g. from logic shared with HTTP. */
int souk_rpc_problem_json(struct souk_rpc *c, int status, json_t *problem);

/* For a handler that returned SOUK_RPC_LATER: send what was set, with this status
 * (200, or the problem's). Any thread; once. */
void souk_rpc_finish(struct souk_rpc *c, int status);

/* ---- status mapping (pure; tested as a table) ---- */

/* The gRPC status (grpc_status_code) for a problem: by code where one says more
 * than its HTTP status (idempotency_key_in_use → ABORTED, email_taken →
 * ALREADY_EXISTS), else by status (400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403
 * PERMISSION_DENIED, 404 NOT_FOUND, 409/412/428 FAILED_PRECONDITION, 413/429
 * RESOURCE_EXHAUSTED, 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED, 500 INTERNAL…). */
int souk_grpc_status_for(int http_status, const char *code);
/* The HTTP status a gRPC status stands for when no problem came with it. */
int souk_grpc_http_status(int grpc_status);
/* The kit error for a gRPC status: OK 0, NOT_FOUND SOUK_ENOTFOUND, INVALID_ARGUMENT
 * SOUK_EINVAL, FAILED_PRECONDITION/ABORTED/ALREADY_EXISTS SOUK_ECONFLICT,
 * DEADLINE_EXCEEDED SOUK_ETIMEDOUT, UNAVAILABLE SOUK_EUNAVAIL, UNAUTHENTICATED and
 * PERMISSION_DENIED SOUK_EAUTH, RESOURCE_EXHAUSTED SOUK_EBUSY, others SOUK_EIO. */
int souk_grpc_error(int grpc_status);
/* "NOT_FOUND"; "UNKNOWN" for a number out of range. */
const char *souk_grpc_status_name(int grpc_status);

/* ---- calling peers ---- */

/* Is url a gRPC peer ("grpc://host:port", or a list starting with one)? */
bool souk_grpc_url(const char *url);

struct souk_grpc_call {
    const char *method; /* "/souk.catalog.v1.CatalogInternal/Reserve" */
    const ProtobufCMessage *request;
    const ProtobufCMessageDescriptor *response_type;
    const char *bearer;          /* a token to send; NULL with service_token for ours */
    bool service_token;          /* send this service's client-credentials token */
    struct souk_req *parent;     /* an HTTP request: pass on its trace and request id */
    struct souk_rpc *rpc_parent; /* or a call: also never outlive its deadline */
    long timeout_ms;             /* the call's deadline; 0: 3000 */
    int retries;                 /* extra attempts on another replica when the call never reached a
                                  * server (UNAVAILABLE without a problem): only for idempotent
                                  * methods. 0: none. */
};

struct souk_grpc_result {
    int code;                   /* the gRPC status; OK is 0 */
    int status;                 /* HTTP equivalent: 200, or the problem's status */
    bool answered;              /* a souk server sent the status (a problem came) or OK */
    ProtobufCMessage *response; /* on OK: the decoded response (free with the result) */
    json_t *problem;            /* on error: the RFC 9457 document (sent or made up) */
    char problem_code[64];      /* "" on OK */
    char message[256];          /* the status message */
};

/* Call method on one replica of peers (a grpc:// list; channels are opened on first
 * use and kept, one per address; replicas are taken in turn and one in transient
 * failure is skipped). Returns souk_grpc_error(res->code): 0 on OK. Always call
 * souk_grpc_result_free(res) afterwards. */
int souk_grpc_call(const char *peers, const struct souk_grpc_call *call,
                   struct souk_grpc_result *res);
void souk_grpc_result_free(struct souk_grpc_result *res);

/* The same in REST terms, for code that speaks both: request is REST-shaped JSON
 * (borrowed) encoded as request_type; the answer lands in res as souk_client_do
 * leaves it: res->status the HTTP equivalent and res->json the response as JSON or
 * the problem document. Returns 0 when a server answered (any status), or
 * SOUK_ETIMEDOUT / SOUK_EUNAVAIL / SOUK_EIO when none did, SOUK_EINVAL (nothing
 * sent) when request does not fit request_type. Always souk_response_free(res). */
int souk_grpc_call_json(const char *peers, const struct souk_grpc_call *call,
                        const ProtobufCMessageDescriptor *request_type, const json_t *request,
                        struct souk_response *res);

/* ---- protobuf ⇄ JSON in REST shape (docs/grpc.md "JSON mapping") ---- */

/* m as JSON with the proto field names: every field, defaults included, as REST
 * shows them; oneof members only when set; int64 as integers, bytes as base64,
 * enums by name, maps as objects, "scalar value" messages (one oneof of
 * string_value/integer_value/number_value/bool_value) as the scalar. New reference. */
json_t *souk_pb_to_json(const ProtobufCMessage *m);
/* Encode JSON of that shape as a message of type d, into *out (malloc'd) and *len.
 * Unknown members are ignored, null is absent. Returns 0, or SOUK_EINVAL with the
 * offending field named in err (a member of the wrong type, an integer out of
 * range, bad base64, an unknown enum name). */
int souk_pb_from_json(const ProtobufCMessageDescriptor *d, const json_t *j, unsigned char **out,
                      size_t *len, char *err, size_t errcap);
/* Check wire bytes against d before unpacking: well-formed framing, every string
 * field valid UTF-8 without NUL, nesting at most 32 deep. 0 or SOUK_EINVAL (why in
 * err). The server runs it on every request; protobuf-c alone lets a string be any
 * bytes, and handlers pass strings on to JSON and SQL. */
int souk_pb_check(const ProtobufCMessageDescriptor *d, const unsigned char *data, size_t len,
                  char *err, size_t errcap);

#endif

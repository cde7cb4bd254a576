/* grpc_int.h: what the gRPC modules share (grpc_common.c: status mapping and call
 * context; grpc_server.c: serving and health; grpc_reflect.c: reflection;
 * grpc_bridge.c: RPCs answered by HTTP routes; grpc_client.c: calling peers;
 * grpc_json.c: protobuf ⇄ JSON). Not a contract. */
#ifndef SOUK_GRPC_INT_H
#define SOUK_GRPC_INT_H

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "souk/grpc.h"

#define SOUK__GRPC_REQUEST_ID_MAX  64
#define SOUK__GRPC_TRACEPARENT_LEN 55
/* trailing metadata of every error the kit sends */
#define SOUK__GRPC_PROBLEM_CODE "souk-problem-code" /* the problem's code, ASCII */
#define SOUK__GRPC_PROBLEM_DOC  "souk-problem-bin"  /* the RFC 9457 document, JSON */
#define SOUK__GRPC_REQUEST_ID   "x-request-id"
#define SOUK__GRPC_TRACEPARENT  "traceparent"

/* grpc_init(), with gRPC core's own messages (gpr_log) sent to our log as ECS lines
 * instead of its plain text on stderr. Called where grpc_init() was. */
void souk__grpc_core_init(void);

/* Is s a request id we pass on (1-64 of [A-Za-z0-9._-])? */
bool souk__grpc_request_id_ok(const char *s);
/* Our traceparent from the caller's (NULL or malformed: a new trace), with a span
 * id of our own: "00-<trace>-<span>-<flags>" into out (TRACEPARENT_LEN + 1). */
void souk__grpc_trace_context(const char *incoming, char *out);

/* A metadata value as a NUL-terminated copy in a (NULL when absent or when its
 * bytes hold a NUL). */
const char *souk__grpc_md_get(const grpc_metadata_array *md, const char *key, struct souk_arena *a);

/* The service part ("souk.users.v1.Users") and method part ("GetAddress") of a
 * path "/souk.users.v1.Users/GetAddress", copied into caps; false when the path
 * is not of that form. */
bool souk__grpc_split_path(const char *path, char *service, size_t scap, char *method, size_t mcap);

/* The kit's own descriptor set (health, reflection), for reflection. */
extern const unsigned char souk__grpc_kit_descriptors[];
extern const size_t souk__grpc_kit_descriptors_len;

/* ---- the built-in services (grpc_builtin.c), used by grpc_server.c ---- */

/* Index the descriptor sets for reflection; 0 or SOUK_EINVAL (logged). */
int souk__grpc_reflect_init(const unsigned char *set, size_t len);
void souk__grpc_reflect_free(void);
/* Full names of the services served ("souk.users.v1.Users"), for list_services
 * and the health service; kept by reference. */
void souk__grpc_set_services(const char *const *names, size_t n);
/* Answer one reflection request (serialized) with one response (malloc'd). */
int souk__grpc_reflect_answer(const unsigned char *req, size_t len, unsigned char **out,
                              size_t *outlen);
/* Health: the status of service ("" = the server): 1 SERVING, 2 NOT_SERVING, or
 * -1 when it is not one of ours. */
int souk__grpc_health(const char *service);

/* ---- the server's life, driven by the service main (service.c) ---- */

/* SOUK_GRPC_*, as svc would load them, for `<service> --help`. */
void souk__grpc_print_config(FILE *out, const struct souk_service *svc);
/* Load SOUK_GRPC_* and start serving svc->grpc (no-op when NULL). 0 or error. */
int souk__grpc_start(const struct souk_service *svc);
/* SIGTERM: health turns NOT_SERVING, new calls are refused, calls in flight go on. */
void souk__grpc_drain_begin(void);
/* Wait for calls in flight until deadline_ns (souk_now_ns clock), cancel the rest,
 * stop the server and its threads. */
void souk__grpc_drain_end(uint64_t deadline_ns);

/* ---- the bridge (grpc_bridge.c): an RPC answered by an HTTP route ---- */

/* Check m->rest against the service's routes and the request type, and take the
 * route's auth and scope into m. 0 or SOUK_EINVAL (logged). */
int souk__grpc_bridge_prepare(struct souk_rpc_method *m);
/* The handler of a bridged method: builds the request, runs the route's handler,
 * answers with its body or problem. */
int souk__grpc_bridge_call(struct souk_rpc *c, const ProtobufCMessage *in);
/* The call's table entry and client address (for the bridge). */
const struct souk_rpc_method *souk__rpc_entry(struct souk_rpc *c);
const char *souk__rpc_client(struct souk_rpc *c);

#endif

/* grpc_server.c: the gRPC server beside HTTP, on the gRPC C core. A call's life:
 * a pending request for its method completes on the completion queue → a worker
 * takes it (and posts the next request) → metadata (request id, trace context,
 * deadline) → auth → the request checked and unpacked → the handler → one batch
 * with the answer, the status and trailing metadata → completion (metrics, access
 * log, memory). Unknown methods get UNIMPLEMENTED; the standard health service and
 * server reflection are built in; SIGTERM drains (souk__grpc_drain_*). */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc_int.h"
#include "server_int.h"
#include "souk/id.h"
#include "log_int.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/souk.h"
#include "souk/trace.h"

#define REQUESTS_PER_METHOD 2    /* calls the core may hand over before a worker re-posts */
#define STREAMS_PER_CONN    1000 /* calls at once on one connection (HTTP/2's setting) */
#define PATH_MAX_           256  /* longest method path kept for logs */
#define SERVICE_MAX         128
#define NAME_MAX_           96
#define TEARDOWN_WAIT_MS    1000 /* after cancelling the stragglers */
#define HELP_AFTER_MS       2    /* a worker held by a handler this long: the next one joins */
#define HELP_TICK_MAX_MS    16   /* how often a helper looks at a worker with no handler */
#define QUIET_MS            1000 /* no call this long: helpers sleep without a timer */

#define container_of(p, type, member) ((type *)(void *)((char *)(p)-offsetof(type, member)))

enum tag_kind {
    TAG_REQUEST,     /* a registered method's call arrived */
    TAG_GENERIC,     /* a call for a method nobody registered */
    TAG_DONE,        /* a unary call's answer went out (or it was cancelled) */
    TAG_WATCH_SEND,  /* Health/Watch: a message or the status went out */
    TAG_WATCH_CLOSE, /* Health/Watch: the call ended */
    TAG_REFLECT,     /* ServerReflectionInfo: the one batch in flight completed */
    TAG_SHUTDOWN,    /* every call is over after grpc_server_shutdown_and_notify */
};

struct tag {
    enum tag_kind kind;
};

enum shape { UNARY, WATCH, REFLECT };

struct method_rt {
    struct souk_rpc_method m;
    void *handle;
    enum shape shape;
    char service[SERVICE_MAX], name[NAME_MAX_];
};

struct slot { /* one request posted for a registered method */
    struct tag tag;
    struct method_rt *mrt;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
};

struct generic_slot {
    struct tag tag;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
};

struct souk_rpc {
    struct tag tag;        /* TAG_DONE */
    struct method_rt *mrt; /* NULL: an unknown method */
    grpc_call *call;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    char path[PATH_MAX_];
    uint64_t t0, deadline_ns; /* souk_now_ns clock */
    struct souk_arena arena;
    struct souk_identity who;
    char request_id[SOUK__GRPC_REQUEST_ID_MAX + 1];
    char traceparent[SOUK__GRPC_TRACEPARENT_LEN + 1];
    char client[64];
    ProtobufCMessage *request;
    json_t *request_json;
    /* the answer */
    grpc_byte_buffer *response;
    size_t response_len;
    json_t *problem;
    int status, code;
    _Atomic bool finished;
    /* the final batch's arguments live as long as it does */
    grpc_metadata initial[1], trailing[2];
    size_t ntrailing;
    grpc_slice details;
    int cancelled;
    struct souk_span span; /* the server span (docs/tracing.md) */
};

struct stream {                     /* a Health/Watch or a ServerReflectionInfo call */
    struct tag send_tag, close_tag; /* Watch: two batches may be in flight */
    struct method_rt *mrt;
    grpc_call *call;
    grpc_metadata_array md;
    grpc_byte_buffer *in, *out;
    pthread_mutex_t lock;
    int refs; /* batches in flight (Watch) */
    bool sending, closed, finishing, started;
    int last_sent, cancelled, code;
    uint64_t t0;
    char service[SERVICE_MAX];
    char client[64];
    char request_id[SOUK__GRPC_REQUEST_ID_MAX + 1];
    char traceparent[SOUK__GRPC_TRACEPARENT_LEN + 1];
    struct stream *next; /* the watch list */
};

/* ---- state ---- */

static const struct souk_service *service;
static grpc_server *server;
static grpc_completion_queue *cq;
static struct method_rt *methods;
static size_t nmethods;
static atomic_bool stopping;
static _Atomic long inflight;
static struct tag shutdown_tag = {TAG_SHUTDOWN};
static pthread_mutex_t life_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t life_cond = PTHREAD_COND_INITIALIZER;
static bool shutdown_done;
static struct stream *watches;
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct souk_metric *m_handled, *m_seconds;
static const char **service_names;

static const char *cfg_listen;
static int64_t cfg_threads, cfg_max_message, cfg_deadline_ms;
static bool cfg_reflection;

static const struct souk_conf grpc_config[] = {
    {"SOUK_GRPC_LISTEN", SOUK_CONF_STR, NULL, 0, 256, &cfg_listen,
     "host:port for gRPC (port 0: any free one); \"off\" serves no gRPC"},
    {"SOUK_GRPC_THREADS", SOUK_CONF_INT, "2", 1, 256, &cfg_threads,
     "gRPC worker threads (one takes calls, the others while a handler holds it)"},
    {"SOUK_GRPC_MAX_MESSAGE", SOUK_CONF_INT, "65536", 1024, 67108864, &cfg_max_message,
     "request message bytes"},
    {"SOUK_GRPC_DEADLINE_MS", SOUK_CONF_INT, "30000", 100, 3600000, &cfg_deadline_ms,
     "the deadline of a call that came without one (and the cap of any)"},
    {"SOUK_GRPC_REFLECTION", SOUK_CONF_BOOL, "true", 0, 0, &cfg_reflection,
     "serve grpc.reflection.v1alpha"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* ---- small helpers ---- */

static grpc_metadata md_pair(const char *key, const void *value, size_t len)
{
    grpc_metadata m;
    memset(&m, 0, sizeof(m));
    m.key = grpc_slice_from_static_string(key);
    m.value = grpc_slice_from_copied_buffer(value, len);
    return m;
}

/* The call's payload as one contiguous slice (unref it), false when there is none. */
static bool payload_slice(grpc_byte_buffer *bb, grpc_slice *out)
{
    grpc_byte_buffer_reader r;
    if (bb == NULL || !grpc_byte_buffer_reader_init(&r, bb))
        return false;
    *out = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    return true;
}

static grpc_byte_buffer *buffer_of(const void *data, size_t len)
{
    grpc_slice s = grpc_slice_from_copied_buffer(data, len);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

/* "ipv4:127.0.0.1:5000" / "ipv6:[::1]:5000" → the address. */
static void peer_address(grpc_call *call, char *out, size_t cap)
{
    char *peer = grpc_call_get_peer(call);
    snprintf(out, cap, "-");
    if (peer != NULL) {
        const char *p =
            strncmp(peer, "ipv4:", 5) == 0 || strncmp(peer, "ipv6:", 5) == 0 ? peer + 5 : NULL;
        if (p != NULL) {
            if (*p == '[')
                p++;
            size_t n = strlen(p);
            const char *colon = strrchr(p, ':');
            if (colon != NULL)
                n = (size_t)(colon - p);
            if (n > 0 && p[n - 1] == ']')
                n--;
            if (n < cap) {
                memcpy(out, p, n);
                out[n] = '\0';
            }
        }
        gpr_free(peer);
    }
}

static void observe(struct method_rt *mrt, int code, uint64_t t0)
{
    double secs = (double)(souk_now_ns() - t0) / 1e9;
    const char *svc = mrt ? mrt->service : "unknown", *name = mrt ? mrt->name : "unknown";
    souk_metric_inc(m_handled, svc, name, souk_grpc_status_name(code));
    souk_metric_observe(m_seconds, secs, svc, name);
}

static void access_line(const char *path, const char *request_id, const char *traceparent,
                        const char *client, int code, size_t bytes, uint64_t t0)
{
    if (!souk__srv.access_log) /* SOUK_ACCESS_LOG, the kit's */
        return;
    struct souk__access a = {
        .method = "POST",
        .path = path,
        .route = path,
        .request_id = request_id,
        .traceparent = traceparent,
        .client = client,
        .status = 200, /* what HTTP/2 carried; the outcome is the gRPC status */
        .bytes = bytes,
        .duration_ns = souk_now_ns() - t0,
        .grpc_status = souk_grpc_status_name(code),
    };
    souk__log_access(&a);
}

/* The request id (the caller's when well formed, else a new one) and our trace
 * context from the call's metadata. */
static void call_context(const grpc_metadata_array *md, struct souk_arena *a, char *request_id,
                         char *traceparent)
{
    const char *rid = souk__grpc_md_get(md, SOUK__GRPC_REQUEST_ID, a);
    if (rid != NULL && souk__grpc_request_id_ok(rid)) {
        snprintf(request_id, SOUK__GRPC_REQUEST_ID_MAX + 1, "%s", rid);
    } else {
        char id[SOUK_ID_MAX];
        snprintf(request_id, SOUK__GRPC_REQUEST_ID_MAX + 1, "%s", souk_id_new(id, "req"));
    }
    souk__grpc_trace_context(souk__grpc_md_get(md, SOUK__GRPC_TRACEPARENT, a), traceparent);
}

/* ---- the call's span (docs/tracing.md) ---- */

/* A server span, a child of the caller's traceparent (else a new trace); its context
 * becomes the call's traceparent. The kit's own services (health, reflection) are
 * probed all the time and are not recorded. */
static void span_begin(struct souk_rpc *c)
{
    const char *tp = souk__grpc_md_get(&c->md, SOUK__GRPC_TRACEPARENT, &c->arena);
    const char *svc = c->mrt ? c->mrt->service : "unknown",
               *name = c->mrt ? c->mrt->name : "unknown";
    char span_name[SERVICE_MAX + NAME_MAX_ + 2]; /* cut to SOUK_SPAN_NAME_MAX by the span */
    snprintf(span_name, sizeof(span_name), "%s/%s", svc, name);
    souk_span_start_from(&c->span, SOUK_SPAN_SERVER, span_name, tp);
    if (strncmp(svc, "grpc.", 5) == 0)
        souk_span_mute(&c->span);
    snprintf(c->traceparent, sizeof(c->traceparent), "%s", souk_span_traceparent(&c->span));
    souk_span_set_str(&c->span, "rpc.system", "grpc");
    souk_span_set_str(&c->span, "rpc.service", svc);
    souk_span_set_str(&c->span, "rpc.method", name);
    souk_span_set_str(&c->span, "client.address", c->client);
}

/* semconv: a server's error is only what is its own fault */
static void span_end(struct souk_rpc *c, int code)
{
    souk_span_set_int(&c->span, "rpc.grpc.status_code", code);
    if (code == GRPC_STATUS_UNKNOWN || code == GRPC_STATUS_DEADLINE_EXCEEDED ||
        code == GRPC_STATUS_UNIMPLEMENTED || code == GRPC_STATUS_INTERNAL ||
        code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DATA_LOSS)
        souk_span_set_status(&c->span, SOUK_SPAN_ERROR, souk_grpc_status_name(code));
    souk_span_end(&c->span);
}

/* ---- posting requests ---- */

static void post_slot(struct slot *s)
{
    grpc_metadata_array_init(&s->md);
    s->call = NULL;
    s->payload = NULL;
    grpc_call_error e = grpc_server_request_registered_call(
        server, s->mrt->handle, &s->call, &s->deadline, &s->md,
        s->mrt->shape == REFLECT ? NULL : &s->payload, cq, cq, &s->tag);
    if (e != GRPC_CALL_OK) { /* shutting down */
        grpc_metadata_array_destroy(&s->md);
        free(s);
    }
}

static void post_generic(struct generic_slot *g)
{
    grpc_metadata_array_init(&g->md);
    grpc_call_details_init(&g->details);
    g->call = NULL;
    if (grpc_server_request_call(server, &g->call, &g->details, &g->md, cq, cq, &g->tag) !=
        GRPC_CALL_OK) {
        grpc_metadata_array_destroy(&g->md);
        grpc_call_details_destroy(&g->details);
        free(g);
    }
}

/* ---- the unary call ---- */

static struct souk_rpc *rpc_new(struct method_rt *mrt, grpc_call *call, grpc_metadata_array *md,
                                gpr_timespec deadline)
{
    struct souk_rpc *c = souk_xcalloc(1, sizeof(*c));
    c->tag.kind = TAG_DONE;
    c->mrt = mrt;
    c->call = call;
    c->md = *md; /* moved: the slot starts a fresh one */
    c->t0 = souk_now_ns();
    souk_arena_init(&c->arena);
    c->status = 200;
    if (mrt != NULL)
        snprintf(c->path, sizeof(c->path), "%s", mrt->m.path);
    /* the caller's deadline, capped by ours: a call always has one */
    gpr_timespec now = gpr_now(GPR_CLOCK_MONOTONIC);
    int64_t left = gpr_time_to_millis(
        gpr_time_sub(gpr_convert_clock_type(deadline, GPR_CLOCK_MONOTONIC), now));
    if (left > cfg_deadline_ms)
        left = cfg_deadline_ms;
    c->deadline_ns = c->t0 + (uint64_t)(left > 0 ? left : 0) * 1000000u;
    call_context(&c->md, &c->arena, c->request_id, c->traceparent);
    peer_address(call, c->client, sizeof(c->client));
    span_begin(c);
    atomic_fetch_add(&inflight, 1);
    return c;
}

static void rpc_free(struct souk_rpc *c)
{
    if (c->request != NULL)
        protobuf_c_message_free_unpacked(c->request, NULL);
    json_decref(c->request_json);
    json_decref(c->problem);
    if (c->payload != NULL)
        grpc_byte_buffer_destroy(c->payload);
    if (c->response != NULL)
        grpc_byte_buffer_destroy(c->response);
    for (size_t i = 0; i < c->ntrailing; i++)
        grpc_slice_unref(c->trailing[i].value);
    grpc_slice_unref(c->initial[0].value);
    grpc_slice_unref(c->details);
    grpc_metadata_array_destroy(&c->md);
    if (c->call != NULL)
        grpc_call_unref(c->call);
    souk_span_end(&c->span); /* a call that never reached on_done */
    souk_arena_free(&c->arena);
    free(c);
    atomic_fetch_sub(&inflight, 1);
}

/* ---- handler API ---- */

const struct souk_identity *souk_rpc_identity(struct souk_rpc *c) { return &c->who; }
const char *souk_rpc_id(struct souk_rpc *c) { return c->request_id; }
const char *souk_rpc_traceparent(struct souk_rpc *c) { return c->traceparent; }
const char *souk_rpc_method(struct souk_rpc *c) { return c->path; }
const struct souk_rpc_method *souk__rpc_entry(struct souk_rpc *c) { return &c->mrt->m; }
const char *souk__rpc_client(struct souk_rpc *c) { return c->client; }
struct souk_arena *souk_rpc_arena(struct souk_rpc *c) { return &c->arena; }
void *souk_rpc_alloc(struct souk_rpc *c, size_t n) { return souk_arena_alloc(&c->arena, n); }
struct souk_db *souk_rpc_db(struct souk_rpc *c)
{
    SOUK_UNUSED(c);
    return souk_db_thread();
}

const char *souk_rpc_metadata(struct souk_rpc *c, const char *key)
{
    return souk__grpc_md_get(&c->md, key, &c->arena);
}

long souk_rpc_deadline_ms(struct souk_rpc *c)
{
    uint64_t now = souk_now_ns();
    return now >= c->deadline_ns ? 0 : (long)((c->deadline_ns - now) / 1000000u);
}

char *souk_rpc_printf(struct souk_rpc *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = souk_arena_vprintf(&c->arena, fmt, ap);
    va_end(ap);
    return s;
}

json_t *souk_rpc_request_json(struct souk_rpc *c)
{
    if (c->request_json == NULL && c->request != NULL)
        c->request_json = souk_pb_to_json(c->request);
    return c->request_json;
}

/* The answer's bytes, as a slice the byte buffer takes. */
static void set_response(struct souk_rpc *c, grpc_slice s)
{
    if (c->response != NULL)
        grpc_byte_buffer_destroy(c->response);
    c->response_len = GRPC_SLICE_LENGTH(s);
    c->response = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
}

int souk_rpc_reply(struct souk_rpc *c, const ProtobufCMessage *resp)
{
    grpc_slice s = grpc_slice_malloc(protobuf_c_message_get_packed_size(resp));
    protobuf_c_message_pack(resp, GRPC_SLICE_START_PTR(s)); /* packed straight into it */
    set_response(c, s);
    return 200;
}

int souk_rpc_reply_json(struct souk_rpc *c, json_t *body)
{
    unsigned char *bytes = NULL;
    size_t len = 0;
    char err[256] = "no message type";
    int rc = c->mrt != NULL
                 ? souk_pb_from_json(c->mrt->m.response, body, &bytes, &len, err, sizeof(err))
                 : SOUK_EINVAL;
    json_decref(body);
    if (rc != 0) {
        souk_error("a reply does not fit its message type", "{s:s,s:s}", "rpc", c->path, "error",
                   err);
        return souk_rpc_problem(c, 500, "internal", "internal error");
    }
    set_response(c, grpc_slice_new(bytes, len, free));
    return 200;
}

int souk_rpc_problem_json(struct souk_rpc *c, int status, json_t *problem)
{
    json_decref(c->problem);
    c->problem = problem;
    c->status = status;
    return status;
}

int souk_rpc_problem(struct souk_rpc *c, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *p = souk_problem_vjson(status, code, NULL, fmt, ap);
    va_end(ap);
    return souk_rpc_problem_json(c, status, p);
}

int souk_rpc_problem_with(struct souk_rpc *c, int status, const char *code, json_t *extra,
                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *p = souk_problem_vjson(status, code, extra, fmt, ap);
    va_end(ap);
    return souk_rpc_problem_json(c, status, p);
}

int souk_rpc_problem_check(struct souk_rpc *c, struct souk_check *chk)
{
    json_t *p = souk_problem_json(400, "validation_failed", "the request has invalid fields");
    json_object_set_new(p, "errors", chk->errors ? chk->errors : json_array());
    chk->errors = NULL;
    return souk_rpc_problem_json(c, 400, p);
}

/* ---- answering ---- */

/* The status, its message and the trailing metadata from what the handler set. */
static void prepare_status(struct souk_rpc *c, int status)
{
    if (status < 100 || status > 599) {
        souk_error("rpc handler returned a bad status", "{s:s,s:i}", "rpc", c->path, "status",
                   status);
        souk_rpc_problem(c, 500, "internal", "internal error");
        status = 500;
    }
    if (status >= 300 && c->problem == NULL)
        souk_rpc_problem(c, status, "error", "%s", souk_status_title(status));
    c->status = status;
    if (status < 300) {
        json_decref(c->problem);
        c->problem = NULL;
        c->code = GRPC_STATUS_OK;
        c->details = grpc_empty_slice();
        if (c->response == NULL)
            set_response(c, grpc_empty_slice()); /* every field at its default */
        return;
    }
    const char *code = json_string_value(json_object_get(c->problem, "code"));
    const char *detail = json_string_value(json_object_get(c->problem, "detail"));
    c->code = souk_grpc_status_for(status, code);
    if (detail == NULL)
        detail = json_string_value(json_object_get(c->problem, "title"));
    c->details = grpc_slice_from_copied_string(detail ? detail : "");
    if (code != NULL && grpc_header_nonbin_value_is_legal(grpc_slice_from_static_string(code)))
        c->trailing[c->ntrailing++] = md_pair(SOUK__GRPC_PROBLEM_CODE, code, strlen(code));
    size_t len;
    char *doc = souk_json_dump(c->problem, &len);
    c->trailing[c->ntrailing++] = md_pair(SOUK__GRPC_PROBLEM_DOC, doc, len);
    free(doc);
    if (c->response != NULL) { /* an error carries no message */
        grpc_byte_buffer_destroy(c->response);
        c->response = NULL;
        c->response_len = 0;
    }
}

void souk_rpc_finish(struct souk_rpc *c, int status)
{
    if (atomic_exchange(&c->finished, true))
        return;
    prepare_status(c, status);
    c->initial[0] = md_pair(SOUK__GRPC_REQUEST_ID, c->request_id, strlen(c->request_id));
    grpc_op ops[4];
    memset(ops, 0, sizeof(ops));
    size_t n = 0;
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[n].data.send_initial_metadata.count = 1;
    ops[n].data.send_initial_metadata.metadata = c->initial;
    n++;
    if (c->response != NULL) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = c->response;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = (grpc_status_code)c->code;
    ops[n].data.send_status_from_server.status_details = &c->details;
    ops[n].data.send_status_from_server.trailing_metadata_count = c->ntrailing;
    ops[n].data.send_status_from_server.trailing_metadata = c->trailing;
    n++;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
    n++;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->tag, NULL);
    if (e != GRPC_CALL_OK) {
        souk_error("grpc batch refused", "{s:s,s:s}", "rpc", c->path, "error",
                   grpc_call_error_to_string(e));
        observe(c->mrt, GRPC_STATUS_INTERNAL, c->t0);
        rpc_free(c);
    }
}

static void on_done(struct souk_rpc *c)
{
    int code = c->code;
    if (c->cancelled) /* the answer never reached the caller */
        code =
            souk_now_ns() >= c->deadline_ns ? GRPC_STATUS_DEADLINE_EXCEEDED : GRPC_STATUS_CANCELLED;
    observe(c->mrt, code, c->t0);
    access_line(c->path, c->request_id, c->traceparent, c->client, code, c->response_len, c->t0);
    span_end(c, code);
    rpc_free(c);
}

/* ---- auth: the same decision as an HTTP route's (server_auth.c) ---- */

/* 0 to go on, or the status of the problem set. */
static int authorize(struct souk_rpc *c)
{
    const struct souk_rpc_method *m = &c->mrt->m;
    struct souk__denial d;
    int status = souk__access_check(
        m->auth, m->scope, souk__grpc_md_get(&c->md, "authorization", &c->arena), &c->who, &d);
    return status == 0 ? 0 : souk_rpc_problem(c, status, d.code, "%s", d.detail);
}

/* Unpack the request: 0, or the status of the problem set. */
static int decode(struct souk_rpc *c)
{
    const struct souk_rpc_method *m = &c->mrt->m;
    grpc_slice s;
    if (!payload_slice(c->payload, &s))
        return souk_rpc_problem(c, 400, "malformed_message", "a request message is required");
    size_t len = GRPC_SLICE_LENGTH(s),
           cap = m->max_message ? m->max_message : (size_t)cfg_max_message;
    const uint8_t *data = GRPC_SLICE_START_PTR(s);
    char why[160];
    int status = 0;
    if (len > cap)
        status =
            souk_rpc_problem(c, 413, "message_too_large", "the request exceeds %zu bytes", cap);
    else if (souk_pb_check(m->request, data, len, why, sizeof(why)) != 0)
        status =
            souk_rpc_problem(c, 400, "malformed_message", "not a %s: %s", m->request->name, why);
    else if ((c->request = protobuf_c_message_unpack(m->request, NULL, len, data)) == NULL)
        status = souk_rpc_problem(c, 400, "malformed_message", "not a %s", m->request->name);
    grpc_slice_unref(s);
    return status;
}

static void serve(struct souk_rpc *c)
{
    int status;
    if (souk_now_ns() >= c->deadline_ns)
        status = souk_rpc_problem(c, 504, "deadline_exceeded",
                                  "the deadline passed before the call ran");
    else if ((status = authorize(c)) == 0 && (status = decode(c)) == 0) {
        souk__log_set_context(c->request_id, c->traceparent);
        struct souk_span *prev = souk_trace_enter(&c->span);
        status = c->mrt->m.handler(c, c->request);
        souk_trace_leave(prev);
        souk__log_set_context(NULL, NULL);
        if (status == SOUK_RPC_LATER)
            return;
    }
    souk_rpc_finish(c, status);
}

/* ---- the health service ---- */

static bool serving(void)
{
    if (atomic_load(&stopping) || souk_server_draining())
        return false;
    if (service->ready != NULL && !service->ready())
        return false;
    return souk_db_thread() != NULL;
}

int souk__grpc_health(const char *name)
{
    bool known = name[0] == '\0';
    for (size_t i = 0; !known && service_names[i] != NULL; i++)
        known = strcmp(service_names[i], name) == 0;
    if (!known)
        return -1;
    return serving() ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                     : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static int health_check(struct souk_rpc *c, const ProtobufCMessage *in)
{
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)in;
    int st = souk__grpc_health(req->service);
    if (st < 0)
        return souk_rpc_problem(c, 404, "service_unknown", "no service %.128s here", req->service);
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = st;
    return souk_rpc_reply(c, &resp.base);
}

/* ---- streams: Health/Watch and ServerReflectionInfo ---- */

static struct stream *stream_new(struct method_rt *mrt, grpc_call *call, grpc_metadata_array *md)
{
    struct stream *s = souk_xcalloc(1, sizeof(*s));
    s->send_tag.kind = mrt->shape == WATCH ? TAG_WATCH_SEND : TAG_REFLECT;
    s->close_tag.kind = TAG_WATCH_CLOSE;
    s->mrt = mrt;
    s->call = call;
    s->md = *md;
    s->t0 = souk_now_ns();
    s->last_sent = -1;
    pthread_mutex_init(&s->lock, NULL);
    peer_address(call, s->client, sizeof(s->client));
    struct souk_arena a;
    souk_arena_init(&a);
    call_context(&s->md, &a, s->request_id, s->traceparent);
    souk_arena_free(&a);
    atomic_fetch_add(&inflight, 1);
    return s;
}

static void stream_free(struct stream *s)
{
    observe(s->mrt, s->cancelled ? GRPC_STATUS_CANCELLED : s->code, s->t0);
    access_line(s->mrt->m.path, s->request_id, s->traceparent, s->client,
                s->cancelled ? GRPC_STATUS_CANCELLED : s->code, 0, s->t0);
    if (s->in != NULL)
        grpc_byte_buffer_destroy(s->in);
    if (s->out != NULL)
        grpc_byte_buffer_destroy(s->out);
    grpc_metadata_array_destroy(&s->md);
    grpc_call_unref(s->call);
    pthread_mutex_destroy(&s->lock);
    free(s);
    atomic_fetch_sub(&inflight, 1);
}

static grpc_status_code start(struct stream *s, grpc_op *ops, size_t n, struct tag *t)
{
    grpc_call_error e = grpc_call_start_batch(s->call, ops, n, t, NULL);
    if (e != GRPC_CALL_OK)
        souk_error("grpc batch refused", "{s:s,s:s}", "rpc", s->mrt->m.path, "error",
                   grpc_call_error_to_string(e));
    return e == GRPC_CALL_OK ? GRPC_STATUS_OK : GRPC_STATUS_INTERNAL;
}

/* Watch: send the current status (called locked, nothing being sent). */
static void watch_send(struct stream *s, int status)
{
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = status;
    uint8_t buf[16];
    size_t n = protobuf_c_message_pack(&resp.base, buf);
    if (s->out != NULL)
        grpc_byte_buffer_destroy(s->out);
    s->out = buffer_of(buf, n);
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t k = 0;
    if (!s->started) {
        ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
        s->started = true;
    }
    ops[k].op = GRPC_OP_SEND_MESSAGE;
    ops[k++].data.send_message.send_message = s->out;
    s->last_sent = status;
    s->sending = true;
    s->refs++;
    if (start(s, ops, k, &s->send_tag) != GRPC_STATUS_OK) {
        s->sending = false;
        s->refs--;
    }
}

/* The ops that end a streaming call with code (its initial metadata first when none
 * was sent): their count, at most 2. */
static size_t status_ops(struct stream *s, grpc_op *ops, grpc_status_code code, grpc_slice *details)
{
    size_t k = 0;
    if (!s->started) {
        ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
        s->started = true;
    }
    ops[k].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[k].data.send_status_from_server.status = code;
    ops[k++].data.send_status_from_server.status_details = details;
    s->code = code;
    return k;
}

/* Watch: end the call with a status (called locked, nothing being sent). */
static void watch_finish(struct stream *s, grpc_status_code code, const char *msg)
{
    grpc_slice details = msg ? grpc_slice_from_copied_string(msg) : grpc_empty_slice();
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t k = status_ops(s, ops, code, &details);
    s->finishing = true;
    s->sending = true;
    s->refs++;
    if (start(s, ops, k, &s->send_tag) != GRPC_STATUS_OK) {
        s->sending = false;
        s->refs--;
    }
    grpc_slice_unref(details);
}

static void watch_unlist(struct stream *s)
{
    pthread_mutex_lock(&watch_lock);
    for (struct stream **p = &watches; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    pthread_mutex_unlock(&watch_lock);
}

static void watch_begin(struct stream *s, grpc_byte_buffer *payload)
{
    grpc_slice sl;
    Grpc__Health__V1__HealthCheckRequest *req = NULL;
    char why[160] = "";
    if (payload_slice(payload, &sl)) {
        if (GRPC_SLICE_LENGTH(sl) <= (size_t)cfg_max_message &&
            souk_pb_check(&grpc__health__v1__health_check_request__descriptor,
                          GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl), why, sizeof(why)) == 0)
            req = grpc__health__v1__health_check_request__unpack(NULL, GRPC_SLICE_LENGTH(sl),
                                                                 GRPC_SLICE_START_PTR(sl));
        grpc_slice_unref(sl);
    }
    grpc_byte_buffer_destroy(payload);
    /* listed before any batch can complete and free it; watches_wake() skips it until
     * it has started (the lock order is watch_lock, then a stream's lock) */
    pthread_mutex_lock(&watch_lock);
    s->next = watches;
    watches = s;
    pthread_mutex_unlock(&watch_lock);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &s->cancelled;
    pthread_mutex_lock(&s->lock);
    s->refs++;
    if (start(s, &op, 1, &s->close_tag) != GRPC_STATUS_OK) {
        s->refs--;
        pthread_mutex_unlock(&s->lock);
        grpc__health__v1__health_check_request__free_unpacked(req, NULL);
        watch_unlist(s);
        stream_free(s);
        return;
    }
    if (req == NULL) {
        watch_finish(s, GRPC_STATUS_INVALID_ARGUMENT, "not a grpc.health.v1.HealthCheckRequest");
    } else {
        snprintf(s->service, sizeof(s->service), "%s", req->service);
        int st = souk__grpc_health(s->service);
        /* the protocol: an unknown service is SERVICE_UNKNOWN, and the call stays open */
        watch_send(s, st < 0
                          ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN
                          : st);
    }
    pthread_mutex_unlock(&s->lock);
    grpc__health__v1__health_check_request__free_unpacked(req, NULL);
}

/* A Watch batch completed: send what changed, or end when draining. */
static void watch_event(struct stream *s, enum tag_kind kind)
{
    pthread_mutex_lock(&s->lock);
    s->refs--;
    if (kind == TAG_WATCH_CLOSE)
        s->closed = true;
    else
        s->sending = false;
    if (!s->closed && !s->sending && !s->finishing) {
        int st = souk__grpc_health(s->service);
        if (st < 0)
            st = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
        if (st != s->last_sent)
            watch_send(s, st);
        else if (atomic_load(&stopping))
            watch_finish(s, GRPC_STATUS_OK, NULL);
    }
    bool done = s->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (done) {
        watch_unlist(s);
        stream_free(s);
    }
}

/* Draining: every Watch learns NOT_SERVING and ends. */
static void watches_wake(void)
{
    pthread_mutex_lock(&watch_lock);
    for (struct stream *s = watches; s != NULL; s = s->next) {
        pthread_mutex_lock(&s->lock);
        if (s->started && !s->closed && !s->sending && !s->finishing) {
            if (s->last_sent !=
                GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING)
                watch_send(s, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
            else
                watch_finish(s, GRPC_STATUS_OK, NULL);
        }
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&watch_lock);
}

/* Reflection: one batch at a time: receive a request, send its answer, again; at the
 * client's half-close send OK. state: 0 receiving, 1 sending, 2 finishing. */
static void reflect_recv(struct stream *s)
{
    grpc_op ops[2];
    memset(ops, 0, sizeof(ops));
    size_t k = 0;
    if (!s->started) {
        ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
        s->started = true;
    }
    ops[k].op = GRPC_OP_RECV_MESSAGE;
    ops[k++].data.recv_message.recv_message = &s->in;
    s->refs = 0;
    if (start(s, ops, k, &s->send_tag) != GRPC_STATUS_OK)
        stream_free(s);
}

static void reflect_finish(struct stream *s, grpc_status_code code, const char *msg)
{
    grpc_slice details = grpc_slice_from_copied_string(msg ? msg : "");
    grpc_op ops[3];
    memset(ops, 0, sizeof(ops));
    size_t k = status_ops(s, ops, code, &details);
    ops[k].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[k++].data.recv_close_on_server.cancelled = &s->cancelled;
    s->refs = 2;
    if (start(s, ops, k, &s->send_tag) != GRPC_STATUS_OK)
        stream_free(s);
    grpc_slice_unref(details);
}

static void reflect_event(struct stream *s, bool ok)
{
    if (s->refs == 2) { /* the status went out */
        stream_free(s);
        return;
    }
    if (s->refs == 1) { /* an answer went out */
        if (!ok) {
            s->cancelled = 1;
            reflect_finish(s, GRPC_STATUS_CANCELLED, NULL);
        } else {
            reflect_recv(s);
        }
        return;
    }
    if (!ok || s->in == NULL) { /* the client is done (or gone) */
        reflect_finish(s, GRPC_STATUS_OK, NULL);
        return;
    }
    grpc_slice sl;
    bool have = payload_slice(s->in, &sl);
    grpc_byte_buffer_destroy(s->in);
    s->in = NULL;
    unsigned char *out = NULL;
    size_t outlen = 0;
    int rc = SOUK_EINVAL;
    if (have && GRPC_SLICE_LENGTH(sl) <= (size_t)cfg_max_message)
        rc = souk__grpc_reflect_answer(GRPC_SLICE_START_PTR(sl), GRPC_SLICE_LENGTH(sl), &out,
                                       &outlen);
    if (have)
        grpc_slice_unref(sl);
    if (rc != 0) {
        reflect_finish(s, GRPC_STATUS_INVALID_ARGUMENT,
                       "not a grpc.reflection.v1alpha.ServerReflectionRequest");
        return;
    }
    if (s->out != NULL)
        grpc_byte_buffer_destroy(s->out);
    s->out = buffer_of(out, outlen);
    free(out);
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = s->out;
    s->refs = 1;
    if (start(s, &op, 1, &s->send_tag) != GRPC_STATUS_OK)
        stream_free(s);
}

/* ---- the workers ---- */

static void on_request(struct slot *sl, bool ok)
{
    if (!ok) { /* shutting down: this request will not be matched */
        grpc_metadata_array_destroy(&sl->md);
        free(sl);
        return;
    }
    struct method_rt *mrt = sl->mrt;
    grpc_call *call = sl->call;
    grpc_metadata_array md = sl->md;
    grpc_byte_buffer *payload = sl->payload;
    gpr_timespec deadline = sl->deadline;
    if (!atomic_load(&stopping))
        post_slot(sl);
    else
        free(sl);
    if (mrt->shape == WATCH) {
        struct stream *s = stream_new(mrt, call, &md);
        watch_begin(s, payload);
        return;
    }
    if (mrt->shape == REFLECT) {
        reflect_recv(stream_new(mrt, call, &md));
        return;
    }
    struct souk_rpc *c = rpc_new(mrt, call, &md, deadline);
    c->payload = payload;
    serve(c);
}

static void on_generic(struct generic_slot *g, bool ok)
{
    if (!ok) {
        grpc_metadata_array_destroy(&g->md);
        grpc_call_details_destroy(&g->details);
        free(g);
        return;
    }
    grpc_call *call = g->call;
    grpc_metadata_array md = g->md;
    char path[PATH_MAX_];
    size_t n = GRPC_SLICE_LENGTH(g->details.method);
    snprintf(path, sizeof(path), "%.*s", (int)(n < PATH_MAX_ ? n : PATH_MAX_ - 1),
             (const char *)GRPC_SLICE_START_PTR(g->details.method));
    gpr_timespec deadline = g->details.deadline;
    grpc_call_details_destroy(&g->details);
    if (!atomic_load(&stopping))
        post_generic(g);
    else
        free(g);
    struct souk_rpc *c = rpc_new(NULL, call, &md, deadline);
    snprintf(c->path, sizeof(c->path), "%s", path);
    for (char *p = c->path; *p; p++) /* the path is the caller's: keep logs printable */
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    souk_rpc_finish(c, souk_rpc_problem(c, 501, "unimplemented", "no method %s here", c->path));
}

/* A worker. The first always waits in the queue; each other one looks at the worker
 * before it (every HELP_AFTER_MS while that one runs a handler, up to every
 * HELP_TICK_MAX_MS while it runs none) and joins the queue while that one has been
 * held by a handler for HELP_AFTER_MS or more (a slow database, a peer, a lock), until
 * it is free again; after QUIET_MS without a call it sleeps until the next one, so an
 * idle service wakes no thread. Two threads waiting in the core's queue hand its
 * poller role to each other at every completion (futex wake-ups and context switches,
 * most of a call's CPU: docs/grpc.md "Cost"); one thread does not. */
struct worker {
    pthread_t thread;
    size_t index;
    _Atomic uint64_t held_since; /* souk_now_ns when its handler began, 0 when none runs */
    _Atomic uint64_t last_call;  /* when its last handler began */
    _Atomic bool asleep;         /* the next worker sleeps until this one takes a call */
};

static struct worker *workers;
static size_t nworkers;
static atomic_bool workers_stop;
static pthread_mutex_t helper_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t helper_cond = PTHREAD_COND_INITIALIZER;

/* One completion from the queue, whatever it is. */
static void dispatch(struct worker *w, grpc_event ev)
{
    struct tag *t = ev.tag;
    switch (t->kind) {
    case TAG_REQUEST: {
        uint64_t now = souk_now_ns();
        atomic_store(&w->held_since, now);
        atomic_store(&w->last_call, now);
        if (atomic_load(&w->asleep)) { /* calls again: the next worker watches this one */
            pthread_mutex_lock(&helper_lock);
            atomic_store(&w->asleep, false);
            pthread_cond_broadcast(&helper_cond);
            pthread_mutex_unlock(&helper_lock);
        }
        on_request(container_of(t, struct slot, tag), ev.success);
        atomic_store(&w->held_since, 0);
        break;
    }
    case TAG_GENERIC:
        on_generic(container_of(t, struct generic_slot, tag), ev.success);
        break;
    case TAG_DONE:
        on_done(container_of(t, struct souk_rpc, tag));
        break;
    case TAG_WATCH_SEND:
        watch_event(container_of(t, struct stream, send_tag), TAG_WATCH_SEND);
        break;
    case TAG_WATCH_CLOSE:
        watch_event(container_of(t, struct stream, close_tag), TAG_WATCH_CLOSE);
        break;
    case TAG_REFLECT:
        reflect_event(container_of(t, struct stream, send_tag), ev.success);
        break;
    case TAG_SHUTDOWN:
        pthread_mutex_lock(&life_lock);
        shutdown_done = true;
        pthread_cond_broadcast(&life_cond);
        pthread_mutex_unlock(&life_lock);
        break;
    }
}

/* Is the worker before w held by a handler since HELP_AFTER_MS or more? */
static bool before_held(const struct worker *w, uint64_t now)
{
    uint64_t since = atomic_load(&workers[w->index - 1].held_since);
    return since != 0 && now - since >= HELP_AFTER_MS * 1000000ull;
}

/* A helper: wait until the worker before is held (true) or the end (false). */
static bool wait_held(struct worker *w)
{
    struct worker *before = &workers[w->index - 1];
    bool held = false;
    long tick_ms = HELP_AFTER_MS;
    pthread_mutex_lock(&helper_lock);
    while (!atomic_load(&workers_stop) && !(held = before_held(w, souk_now_ns()))) {
        /* look again soon while it runs a handler, less often while it has none */
        tick_ms = atomic_load(&before->held_since) != 0 ? HELP_AFTER_MS
                  : tick_ms * 2 > HELP_TICK_MAX_MS      ? HELP_TICK_MAX_MS
                                                        : tick_ms * 2;
        if (souk_now_ns() - atomic_load(&before->last_call) >= QUIET_MS * 1000000ull) {
            /* quiet: no timer until it takes a call (it clears asleep, under the lock) */
            atomic_store(&before->asleep, true);
            if (souk_now_ns() - atomic_load(&before->last_call) >= QUIET_MS * 1000000ull &&
                atomic_load(&before->held_since) == 0)
                pthread_cond_wait(&helper_cond, &helper_lock);
            atomic_store(&before->asleep, false);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += tick_ms * 1000000l;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&helper_cond, &helper_lock, &ts);
    }
    pthread_mutex_unlock(&helper_lock);
    return held;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (;;) {
        if (w->index > 0 && !wait_held(w))
            return NULL;
        for (;;) {
            gpr_timespec until =
                w->index == 0 ? gpr_inf_future(GPR_CLOCK_REALTIME)
                              : gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                             gpr_time_from_millis(HELP_AFTER_MS, GPR_TIMESPAN));
            grpc_event ev = grpc_completion_queue_next(cq, until, NULL);
            if (ev.type == GRPC_QUEUE_SHUTDOWN)
                return NULL;
            if (ev.type == GRPC_OP_COMPLETE)
                dispatch(w, ev);
            if (w->index > 0 && !before_held(w, souk_now_ns()))
                break; /* the worker before is free again: this one leaves the queue */
        }
    }
}

/* ---- start and stop ---- */

static const struct souk_rpc_method builtin[] = {
    SOUK_RPC("/grpc.health.v1.Health/Check", health_check, SOUK_PUBLIC, NULL,
             grpc__health__v1__health_check_request, grpc__health__v1__health_check_response),
    SOUK_RPC("/grpc.health.v1.Health/Watch", NULL, SOUK_PUBLIC, NULL,
             grpc__health__v1__health_check_request, grpc__health__v1__health_check_response),
};
static const char *const reflect_path =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

static int add_method(const struct souk_rpc_method *m, enum shape shape)
{
    struct method_rt *mrt = &methods[nmethods];
    mrt->m = *m;
    mrt->shape = shape;
    if (shape == UNARY && m->rest != NULL) {
        if (m->handler != NULL || souk__grpc_bridge_prepare(&mrt->m) != 0) {
            souk_error("bad bridged gRPC method", "{s:s}", "rpc", m->path ? m->path : "(null)");
            return SOUK_EINVAL;
        }
        mrt->m.handler = souk__grpc_bridge_call;
    }
    if (!souk__grpc_split_path(m->path, mrt->service, sizeof(mrt->service), mrt->name,
                               sizeof(mrt->name)) ||
        (shape == UNARY && (mrt->m.handler == NULL || m->request == NULL || m->response == NULL))) {
        souk_error("bad gRPC method", "{s:s}", "rpc", m->path ? m->path : "(null)");
        return SOUK_EINVAL;
    }
    for (size_t i = 0; i < nmethods; i++) {
        if (strcmp(methods[i].m.path, m->path) == 0) {
            souk_error("gRPC method listed twice", "{s:s}", "rpc", m->path);
            return SOUK_EINVAL;
        }
    }
    /* unary and Watch requests arrive with the call; reflection reads a stream */
    mrt->handle = grpc_server_register_method(
        server, m->path, NULL,
        shape == REFLECT ? GRPC_SRM_PAYLOAD_NONE : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    if (mrt->handle == NULL) {
        souk_error("cannot register gRPC method", "{s:s}", "rpc", m->path);
        return SOUK_EINVAL;
    }
    nmethods++;
    return 0;
}

/* The distinct service names, NULL-ended, for health and list_services. */
static int collect_services(void)
{
    service_names = souk_xcalloc(nmethods + 1, sizeof(*service_names));
    size_t n = 0;
    for (size_t i = 0; i < nmethods; i++) {
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++)
            seen = strcmp(service_names[k], methods[i].service) == 0;
        if (!seen)
            service_names[n++] = methods[i].service;
    }
    souk__grpc_set_services(service_names, n);
    return 0;
}

/* grpc_config with svc's default SOUK_GRPC_LISTEN */
static void grpc_table(const struct souk_service *svc, struct souk_conf *table)
{
    memcpy(table, grpc_config, sizeof(grpc_config));
    table[0].def = svc->grpc->listen != NULL ? svc->grpc->listen : "off";
}

void souk__grpc_print_config(FILE *out, const struct souk_service *svc)
{
    struct souk_conf table[SOUK_ARRAY_LEN(grpc_config)];
    grpc_table(svc, table);
    souk_config_print_table(out, table);
}

static int load_config(const struct souk_service *svc)
{
    struct souk_conf table[SOUK_ARRAY_LEN(grpc_config)];
    char err[512];
    grpc_table(svc, table);
    if (souk_config_load(table, err, sizeof(err)) != 0) {
        souk_log_config_error("%s", err);
        return SOUK_EINVAL;
    }
    char host[256];
    uint16_t port;
    if (strcmp(cfg_listen, "off") != 0 &&
        souk_config_split_addr(cfg_listen, host, sizeof(host), &port) != 0) {
        souk_log_config_error("SOUK_GRPC_LISTEN=\"%s\": expected host:port or off", cfg_listen);
        return SOUK_EINVAL;
    }
    return 0;
}

int souk__grpc_start(const struct souk_service *svc)
{
    if (svc->grpc == NULL)
        return 0;
    service = svc;
    if (load_config(svc) != 0)
        return SOUK_EINVAL;
    if (strcmp(cfg_listen, "off") == 0) {
        souk_info("gRPC off", "{s:s}", "variable", "SOUK_GRPC_LISTEN");
        return 0;
    }
    m_handled = souk_metric_counter("grpc_server_handled_total",
                                    "gRPC calls completed, by service, method and status code.",
                                    "service,method,code");
    m_seconds =
        souk_metric_histogram("grpc_server_handling_seconds",
                              "Time from a gRPC call's arrival to its status.", "service,method");
    souk__grpc_core_init();
    size_t n = 0, max_message = (size_t)cfg_max_message;
    while (svc->grpc->methods != NULL && svc->grpc->methods[n].path != NULL) {
        if (svc->grpc->methods[n].max_message > max_message)
            max_message = svc->grpc->methods[n].max_message;
        n++;
    }
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = (int)max_message},
        /* the core's default is unlimited: one client must not hold unbounded watches */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_CONCURRENT_STREAMS,
         .value.integer = STREAMS_PER_CONN},
    };
    grpc_channel_args cargs = {SOUK_ARRAY_LEN(args), args};
    server = grpc_server_create(&cargs, NULL);
    cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(server, cq, NULL);
    methods = souk_xcalloc(n + SOUK_ARRAY_LEN(builtin) + 1, sizeof(*methods));
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_method(&svc->grpc->methods[i], UNARY);
    if (rc == 0)
        rc = add_method(&builtin[0], UNARY);
    if (rc == 0)
        rc = add_method(&builtin[1], WATCH);
    if (rc == 0 && cfg_reflection) {
        struct souk_rpc_method r = {reflect_path, NULL, SOUK_PUBLIC, NULL, NULL, NULL, 0, NULL};
        rc = add_method(&r, REFLECT);
    }
    if (rc != 0)
        return rc;
    collect_services();
    if (cfg_reflection && (rc = souk__grpc_reflect_init(
                               svc->grpc->descriptors,
                               svc->grpc->descriptors_len ? *svc->grpc->descriptors_len : 0)) != 0)
        return rc;
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    int port = grpc_server_add_http2_port(server, cfg_listen, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0) {
        souk_error("cannot listen for gRPC", "{s:s}", "addr", cfg_listen);
        return SOUK_EIO;
    }
    grpc_server_start(server);
    for (size_t i = 0; i < nmethods; i++) {
        for (int k = 0; k < REQUESTS_PER_METHOD; k++) {
            struct slot *s = souk_xcalloc(1, sizeof(*s));
            s->tag.kind = TAG_REQUEST;
            s->mrt = &methods[i];
            post_slot(s);
        }
    }
    for (int k = 0; k < REQUESTS_PER_METHOD; k++) {
        struct generic_slot *g = souk_xcalloc(1, sizeof(*g));
        g->tag.kind = TAG_GENERIC;
        post_generic(g);
    }
    nworkers = (size_t)cfg_threads;
    workers = souk_xcalloc(nworkers, sizeof(*workers));
    for (size_t i = 0; i < nworkers; i++) {
        workers[i].index = i;
        workers[i].last_call = souk_now_ns();
    }
    for (size_t i = 0; i < nworkers; i++) {
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            souk_error("cannot start gRPC workers", NULL);
            nworkers = i;
            return SOUK_EIO;
        }
    }
    souk_info("gRPC listening", "{s:s,s:i,s:I,s:I,s:b}", "addr", cfg_listen, "grpc_port", port,
              "threads", (json_int_t)cfg_threads, "methods", (json_int_t)n, "reflection",
              cfg_reflection);
    return 0;
}

void souk__grpc_drain_begin(void)
{
    if (server == NULL)
        return;
    atomic_store(&stopping, true);
    watches_wake();
    grpc_server_shutdown_and_notify(server, cq, &shutdown_tag);
}

static bool wait_shutdown(uint64_t deadline_ns)
{
    pthread_mutex_lock(&life_lock);
    while (!shutdown_done && souk_now_ns() < deadline_ns) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000; /* look again every 10 ms: the deadline is on another clock */
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&life_cond, &life_lock, &ts);
    }
    bool done = shutdown_done;
    pthread_mutex_unlock(&life_lock);
    return done;
}

void souk__grpc_drain_end(uint64_t deadline_ns)
{
    if (server == NULL)
        return;
    if (!wait_shutdown(deadline_ns)) {
        souk_warn("gRPC drain deadline passed", "{s:I}", "inflight",
                  (json_int_t)atomic_load(&inflight));
        grpc_server_cancel_all_calls(server);
        if (!wait_shutdown(souk_now_ns() + TEARDOWN_WAIT_MS * 1000000ull)) {
            /* a handler still holds its call: the core cannot stop cleanly */
            souk_warn("gRPC calls still running at exit", "{s:I}", "inflight",
                      (json_int_t)atomic_load(&inflight));
            return;
        }
    }
    pthread_mutex_lock(&helper_lock);
    atomic_store(&workers_stop, true);
    pthread_cond_broadcast(&helper_cond);
    pthread_mutex_unlock(&helper_lock);
    grpc_completion_queue_shutdown(cq);
    for (size_t i = 0; i < nworkers; i++)
        pthread_join(workers[i].thread, NULL);
    grpc_server_destroy(server);
    grpc_completion_queue_destroy(cq);
    server = NULL;
    cq = NULL;
    souk__grpc_reflect_free();
    free(workers);
    free(methods);
    free(service_names);
    souk_info("gRPC stopped", NULL);
}

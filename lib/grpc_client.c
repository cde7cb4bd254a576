/* grpc_client.c: calling peers over gRPC. One channel per address of a peer list
 * ("grpc://host:port,grpc://host2:port"), opened on first use and kept for the
 * process; replicas taken in turn, one in transient failure skipped; a deadline on
 * every call (never past the caller's own); the service token, traceparent and
 * request id in metadata; the status and the problem from trailing metadata
 * mapped back to what the HTTP client reports. Blocking: one completion queue per
 * calling thread, plucked until the call completes. */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_int.h"
#include "souk/auth.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/souk.h"
#include "souk/trace.h"

#define TIMEOUT_DEFAULT_MS 3000
#define PEERS_MAX          64 /* distinct peer lists a process calls */
#define REPLICAS_MAX       32
#define TARGET_MAX         300
#define BACKOFF_MIN_MS     100  /* a restarted peer is found again within ~2 s, */
#define BACKOFF_MAX_MS     2000 /* not after the core's default 2 minutes */

struct peer {
    char *list;
    grpc_channel *ch[REPLICAS_MAX];
    char target[REPLICAS_MAX][TARGET_MAX];
    size_t n;
    _Atomic size_t next;
};

static struct peer *peers[PEERS_MAX];
static size_t npeers;
static pthread_mutex_t peers_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t cq_key;
static struct souk_metric *m_handled, *m_seconds;

static void cq_free(void *p)
{
    grpc_completion_queue *q = p;
    grpc_completion_queue_shutdown(q);
    while (grpc_completion_queue_pluck(q, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(q);
}

static void init(void)
{
    souk__grpc_core_init(); /* grpc_init() is reference counted: the server's own init does not
                               disturb it */
    pthread_key_create(&cq_key, cq_free);
    m_handled = souk_metric_counter("grpc_client_handled_total",
                                    "gRPC calls to peers completed, by service, method and status.",
                                    "service,method,code");
    m_seconds =
        souk_metric_histogram("grpc_client_handling_seconds",
                              "Time of a gRPC call to a peer, retries included.", "service,method");
}

static grpc_completion_queue *thread_cq(void)
{
    grpc_completion_queue *q = pthread_getspecific(cq_key);
    if (q == NULL) {
        q = grpc_completion_queue_create_for_pluck(NULL);
        pthread_setspecific(cq_key, q);
    }
    return q;
}

/* "grpc://host:port" → "dns:///host:port" (with round_robin, a name with several
 * addresses is balanced too). */
static int target_of(const char *entry, size_t n, char *out)
{
    while (n > 0 && (*entry == ' ' || *entry == '\t'))
        entry++, n--;
    while (n > 0 && (entry[n - 1] == ' ' || entry[n - 1] == '\t' || entry[n - 1] == '/'))
        n--;
    if (n <= 7 || strncmp(entry, "grpc://", 7) != 0 || n - 7 >= TARGET_MAX - 8)
        return SOUK_EINVAL;
    char hostport[TARGET_MAX - 8], host[256];
    uint16_t port;
    snprintf(hostport, sizeof(hostport), "%.*s", (int)(n - 7), entry + 7);
    if (souk_config_split_addr(hostport, host, sizeof(host), &port) != 0 || port == 0)
        return SOUK_EINVAL;
    if ((size_t)snprintf(out, TARGET_MAX, "dns:///%s", hostport) >= TARGET_MAX)
        return SOUK_EINVAL;
    return 0;
}

static struct peer *peer_open(const char *list)
{
    struct peer *p = souk_xcalloc(1, sizeof(*p));
    grpc_arg args[] = {
        {.type = GRPC_ARG_STRING, .key = GRPC_ARG_LB_POLICY_NAME, .value.string = "round_robin"},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ENABLE_RETRIES, .value.integer = 0},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
         .value.integer = BACKOFF_MIN_MS},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
         .value.integer = BACKOFF_MIN_MS},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
         .value.integer = BACKOFF_MAX_MS},
    };
    grpc_channel_args cargs = {SOUK_ARRAY_LEN(args), args};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    for (const char *s = list; *s != '\0';) {
        size_t len = strcspn(s, ",");
        if (p->n == REPLICAS_MAX || target_of(s, len, p->target[p->n]) != 0) {
            char shown[256];
            souk_warn("bad gRPC peer list", "{s:s}", "url",
                      souk_config_redact_url(list, shown, sizeof(shown)));
            p->n = 0;
            break;
        }
        p->ch[p->n] = grpc_channel_create(p->target[p->n], creds, &cargs);
        p->n++;
        s += len;
        if (*s == ',')
            s++;
    }
    grpc_channel_credentials_release(creds);
    if (p->n == 0) {
        for (size_t i = 0; i < REPLICAS_MAX; i++)
            if (p->ch[i] != NULL)
                grpc_channel_destroy(p->ch[i]);
        free(p);
        return NULL;
    }
    p->list = souk_xstrdup(list);
    return p;
}

/* The peer for this list, opened on first use; NULL when the list is malformed. */
static struct peer *peer_get(const char *list)
{
    pthread_once(&once, init);
    struct peer *p = NULL;
    pthread_mutex_lock(&peers_lock);
    for (size_t i = 0; i < npeers && p == NULL; i++)
        if (strcmp(peers[i]->list, list) == 0)
            p = peers[i];
    if (p == NULL && npeers < PEERS_MAX && (p = peer_open(list)) != NULL)
        peers[npeers++] = p;
    pthread_mutex_unlock(&peers_lock);
    return p;
}

/* The next replica in turn, passing over those in transient failure while another
 * may be better. */
static size_t pick(struct peer *p)
{
    size_t first = atomic_fetch_add(&p->next, 1);
    for (size_t k = 0; k < p->n; k++) {
        size_t i = (first + k) % p->n;
        if (grpc_channel_check_connectivity_state(p->ch[i], 1) != GRPC_CHANNEL_TRANSIENT_FAILURE)
            return i;
    }
    return first % p->n;
}

/* A channel in transient failure waits out its reconnect backoff before it tries
 * again, and a call made meanwhile fails at once with UNAVAILABLE: wait until its
 * state moves (the backoff over: connecting), at most until deadline or a backoff's
 * longest. */
static void await_reconnect(grpc_channel *ch, gpr_timespec deadline)
{
    grpc_connectivity_state s = grpc_channel_check_connectivity_state(ch, 1);
    if (s != GRPC_CHANNEL_TRANSIENT_FAILURE)
        return;
    gpr_timespec until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                      gpr_time_from_millis(BACKOFF_MAX_MS + 100, GPR_TIMESPAN));
    if (gpr_time_cmp(deadline, until) < 0)
        until = deadline;
    grpc_completion_queue *q = thread_cq();
    int tag;
    grpc_channel_watch_connectivity_state(ch, s, until, q, &tag);
    /* the watch always completes, by until at the latest */
    grpc_completion_queue_pluck(q, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
}

/* ---- one call ---- */

struct wire {
    grpc_status_code status;
    char message[256];
    json_t *problem;
    char problem_code[64];
    grpc_slice response;
    bool has_response;
};

static void read_trailing(const grpc_metadata_array *md, struct wire *w)
{
    for (size_t i = 0; i < md->count; i++) {
        const grpc_slice *k = &md->metadata[i].key, *v = &md->metadata[i].value;
        size_t kn = GRPC_SLICE_LENGTH(*k), vn = GRPC_SLICE_LENGTH(*v);
        const char *key = (const char *)GRPC_SLICE_START_PTR(*k);
        if (kn == strlen(SOUK__GRPC_PROBLEM_CODE) &&
            memcmp(key, SOUK__GRPC_PROBLEM_CODE, kn) == 0 && vn < sizeof(w->problem_code)) {
            memcpy(w->problem_code, GRPC_SLICE_START_PTR(*v), vn);
            w->problem_code[vn] = '\0';
        } else if (kn == strlen(SOUK__GRPC_PROBLEM_DOC) &&
                   memcmp(key, SOUK__GRPC_PROBLEM_DOC, kn) == 0 && w->problem == NULL) {
            json_t *doc = json_loadb((const char *)GRPC_SLICE_START_PTR(*v), vn,
                                     JSON_REJECT_DUPLICATES, NULL);
            if (json_is_object(doc))
                w->problem = doc;
            else
                json_decref(doc);
        }
    }
}

static void call_once(grpc_channel *ch, const struct souk_grpc_call *call, const unsigned char *req,
                      size_t len, grpc_metadata *md, size_t nmd, gpr_timespec deadline,
                      struct wire *w)
{
    grpc_completion_queue *q = thread_cq();
    grpc_slice method = grpc_slice_from_copied_string(call->method);
    grpc_call *c = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, q, method, NULL,
                                            deadline, NULL);
    grpc_slice_unref(method);
    grpc_slice body = grpc_slice_from_copied_buffer((const char *)req, len);
    grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&body, 1), *recv = NULL;
    grpc_slice_unref(body);
    grpc_metadata_array initial, trailing;
    grpc_metadata_array_init(&initial);
    grpc_metadata_array_init(&trailing);
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof(ops));
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = nmd;
    ops[0].data.send_initial_metadata.metadata = md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[5].data.recv_status_on_client.status = &w->status;
    ops[5].data.recv_status_on_client.status_details = &details;
    grpc_call_error e = grpc_call_start_batch(c, ops, SOUK_ARRAY_LEN(ops), c, NULL);
    if (e == GRPC_CALL_OK) {
        /* the deadline makes the core complete the batch: wait for it, not for a clock */
        grpc_event ev = grpc_completion_queue_pluck(q, c, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            w->status = GRPC_STATUS_INTERNAL;
    } else {
        w->status = GRPC_STATUS_INTERNAL;
        snprintf(w->message, sizeof(w->message), "%s", grpc_call_error_to_string(e));
    }
    if (e == GRPC_CALL_OK) {
        size_t n = GRPC_SLICE_LENGTH(details);
        snprintf(w->message, sizeof(w->message), "%.*s", (int)(n < 255 ? n : 255),
                 (const char *)GRPC_SLICE_START_PTR(details));
        read_trailing(&trailing, w);
    }
    grpc_byte_buffer_reader r;
    if (w->status == GRPC_STATUS_OK && recv != NULL && grpc_byte_buffer_reader_init(&r, recv)) {
        w->response = grpc_byte_buffer_reader_readall(&r);
        w->has_response = true;
        grpc_byte_buffer_reader_destroy(&r);
    }
    if (recv != NULL)
        grpc_byte_buffer_destroy(recv);
    grpc_byte_buffer_destroy(send);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial);
    grpc_metadata_array_destroy(&trailing);
    grpc_call_unref(c);
}

static grpc_metadata md_pair(const char *key, const char *value)
{
    grpc_metadata m;
    memset(&m, 0, sizeof(m));
    m.key = grpc_slice_from_static_string(key);
    m.value = grpc_slice_from_copied_string(value);
    return m;
}

/* Send req (encoded) to a replica of peers, retrying elsewhere when nothing answered. */
static int transport(const char *peers_list, const struct souk_grpc_call *call,
                     const unsigned char *req, size_t len, struct wire *w)
{
    memset(w, 0, sizeof(*w));
    struct peer *p = peers_list != NULL ? peer_get(peers_list) : NULL;
    if (p == NULL) {
        w->status = GRPC_STATUS_INVALID_ARGUMENT;
        snprintf(w->message, sizeof(w->message), "not a grpc:// peer list");
        return SOUK_EINVAL;
    }
    grpc_metadata md[3];
    size_t nmd = 0;
    char tp[SOUK__GRPC_TRACEPARENT_LEN + 1];
    const char *rid = NULL, *parent_tp = NULL;
    if (call->rpc_parent != NULL) {
        parent_tp = souk_rpc_traceparent(call->rpc_parent);
        rid = souk_rpc_id(call->rpc_parent);
    } else if (call->parent != NULL) {
        parent_tp = souk_req_traceparent(call->parent);
        rid = souk_req_id(call->parent);
    }
    if (souk_trace_current() != NULL) /* the call's own span (span_begin) */
        parent_tp = souk_span_traceparent(souk_trace_current());
    if (parent_tp == NULL || parent_tp[0] == '\0') {
        souk__grpc_trace_context(NULL, tp); /* a call of our own starts a trace */
        parent_tp = tp;
    }
    md[nmd++] = md_pair(SOUK__GRPC_TRACEPARENT, parent_tp);
    if (rid != NULL && souk__grpc_request_id_ok(rid))
        md[nmd++] = md_pair(SOUK__GRPC_REQUEST_ID, rid);
    char *auth = NULL;
    if (call->bearer != NULL || call->service_token) {
        auth = souk_xmalloc(SOUK_AUTH_TOKEN_MAX + 8);
        memcpy(auth, "Bearer ", 8);
        int rc = call->bearer != NULL
                     ? (snprintf(auth + 7, SOUK_AUTH_TOKEN_MAX + 1, "%s", call->bearer), 0)
                     : souk_auth_service_token(auth + 7, SOUK_AUTH_TOKEN_MAX + 1);
        if (rc == 0)
            md[nmd++] = md_pair("authorization", auth);
        /* else: sent without; the peer answers UNAUTHENTICATED, which says why */
    }
    /* The deadline counts from here: fetching this service's token (users, on a first
     * call or after expiry) has its own timeout and must not eat the call's. */
    long ms = call->timeout_ms > 0 ? call->timeout_ms : TIMEOUT_DEFAULT_MS;
    if (call->rpc_parent != NULL && souk_rpc_deadline_ms(call->rpc_parent) < ms)
        ms = souk_rpc_deadline_ms(call->rpc_parent); /* never outlive the call we serve */
    gpr_timespec deadline =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
    int attempts = 1 + (call->retries > 0 ? call->retries : 0);
    for (int a = 0; a < attempts; a++) {
        if (a > 0) {
            /* the last try reached nobody: a peer up again may still sit behind its
             * channel's reconnect backoff (a cart's first product lookup right after
             * start was a 503 now and then); let the backoff end, within the deadline */
            await_reconnect(p->ch[pick(p)], deadline);
            if (gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), deadline) >= 0)
                break; /* w still says so: UNAVAILABLE, nobody answered */
            json_decref(w->problem);
            if (w->has_response)
                grpc_slice_unref(w->response);
            memset(w, 0, sizeof(*w));
        }
        call_once(p->ch[pick(p)], call, req, len, md, nmd, deadline, w);
        bool nobody = w->status == GRPC_STATUS_UNAVAILABLE && w->problem == NULL;
        if (!nobody || gpr_time_cmp(gpr_now(GPR_CLOCK_MONOTONIC), deadline) >= 0)
            break;
    }
    for (size_t i = 0; i < nmd; i++)
        grpc_slice_unref(md[i].value);
    if (auth != NULL) {
        sodium_memzero(auth, SOUK_AUTH_TOKEN_MAX + 8);
        free(auth);
    }
    return 0;
}

/* ---- the call's span (docs/tracing.md) ---- */

/* A client span for the call, made the thread's current span while the call runs (so
 * transport() passes its context on): a child of the current span, else of the call
 * or request named as parent; a call made outside all of them passes on an unsampled
 * context. Returns the span it replaces as current. */
static struct souk_span *span_begin(const char *peers_list, const struct souk_grpc_call *call,
                                    struct souk_span *span)
{
    const struct souk_span *cur = souk_trace_current();
    const char *tp = call->rpc_parent != NULL ? souk_rpc_traceparent(call->rpc_parent)
                     : call->parent != NULL   ? souk_req_traceparent(call->parent)
                                              : NULL;
    char svc[128], name[96], host[TARGET_MAX];
    struct souk_span_ctx ctx;
    if (!souk__grpc_split_path(call->method, svc, sizeof(svc), name, sizeof(name)))
        snprintf(svc, sizeof(svc), "unknown"), snprintf(name, sizeof(name), "unknown");
    if (cur != NULL) {
        souk_span_start(span, SOUK_SPAN_CLIENT, call->method + 1, &cur->ctx, false);
    } else if (souk_trace_ctx_parse(tp, &ctx)) {
        souk_span_start(span, SOUK_SPAN_CLIENT, call->method + 1, &ctx, false);
    } else {
        memset(&ctx, 0, sizeof(ctx));
        souk_random(ctx.trace_id, sizeof(ctx.trace_id));
        souk_random(ctx.span_id, sizeof(ctx.span_id));
        souk_span_start(span, SOUK_SPAN_CLIENT, call->method + 1, &ctx, true); /* flags 00 */
    }
    if (souk_span_recording(span)) {
        souk_span_set_str(span, "rpc.system", "grpc");
        souk_span_set_str(span, "rpc.service", svc);
        souk_span_set_str(span, "rpc.method", name);
        /* the first replica of the list: the core picks among them */
        const char *p = peers_list && souk_grpc_url(peers_list) ? peers_list + 7 : "";
        snprintf(host, sizeof(host), "%.*s", (int)strcspn(p, ","), p);
        char *colon = strrchr(host, ':');
        if (colon != NULL) {
            souk_span_set_int(span, "server.port", strtol(colon + 1, NULL, 10));
            *colon = '\0';
        }
        souk_span_set_str(span, "server.address", host);
    }
    return souk_trace_enter(span);
}

static void span_end(struct souk_span *span, struct souk_span *previous, int code)
{
    souk_trace_leave(previous);
    souk_span_set_int(span, "rpc.grpc.status_code", code);
    if (code != 0) /* semconv: every status but OK is a client's error */
        souk_span_set_status(span, SOUK_SPAN_ERROR, souk_grpc_status_name(code));
    souk_span_end(span);
}

/* ---- what the caller sees ---- */

static void observe(const char *method, int code, uint64_t t0)
{
    char svc[128], name[96];
    if (!souk__grpc_split_path(method, svc, sizeof(svc), name, sizeof(name)))
        snprintf(svc, sizeof(svc), "unknown"), snprintf(name, sizeof(name), "unknown");
    souk_metric_inc(m_handled, svc, name, souk_grpc_status_name(code));
    souk_metric_observe(m_seconds, (double)(souk_now_ns() - t0) / 1e9, svc, name);
}

/* The problem and the HTTP-equivalent status of a finished call; false when no
 * server answered (nothing but a transport status). */
static bool outcome(struct wire *w, struct souk_grpc_result *res)
{
    res->code = w->status;
    snprintf(res->message, sizeof(res->message), "%s", w->message);
    snprintf(res->problem_code, sizeof(res->problem_code), "%s", w->problem_code);
    if (w->status == GRPC_STATUS_OK) {
        res->status = 200;
        res->problem_code[0] = '\0';
        return true;
    }
    json_t *st = json_object_get(w->problem, "status");
    res->status =
        json_is_integer(st) && json_integer_value(st) >= 400 && json_integer_value(st) <= 599
            ? (int)json_integer_value(st)
            : souk_grpc_http_status(w->status);
    if (w->problem != NULL) {
        res->problem = w->problem;
        w->problem = NULL;
        const char *code = json_string_value(json_object_get(res->problem, "code"));
        if (code != NULL && res->problem_code[0] == '\0')
            snprintf(res->problem_code, sizeof(res->problem_code), "%s", code);
        return true;
    }
    /* a status without our problem: from the transport (or another kind of server) */
    char code[32];
    const char *name = souk_grpc_status_name(w->status);
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < sizeof(code); i++)
        code[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    code[i] = '\0';
    if (res->problem_code[0] == '\0')
        snprintf(res->problem_code, sizeof(res->problem_code), "%s", code);
    res->problem = souk_problem_json(res->status, res->problem_code, w->message);
    /* a server said these; the others are what the core reports when none could */
    return w->status != GRPC_STATUS_UNAVAILABLE && w->status != GRPC_STATUS_DEADLINE_EXCEEDED &&
           w->status != GRPC_STATUS_CANCELLED && w->status != GRPC_STATUS_UNKNOWN &&
           w->status != GRPC_STATUS_INTERNAL;
}

/* Decode an OK answer as type; a malformed one becomes INTERNAL bad_response. */
static void decode_response(struct wire *w, const ProtobufCMessageDescriptor *type,
                            struct souk_grpc_result *res)
{
    if (w->status != GRPC_STATUS_OK || type == NULL)
        return;
    const uint8_t *data = w->has_response ? GRPC_SLICE_START_PTR(w->response) : NULL;
    size_t len = w->has_response ? GRPC_SLICE_LENGTH(w->response) : 0;
    char why[160];
    if (!w->has_response || souk_pb_check(type, data, len, why, sizeof(why)) != 0 ||
        (res->response = protobuf_c_message_unpack(type, NULL, len, data)) == NULL) {
        res->code = GRPC_STATUS_INTERNAL;
        res->status = 502;
        snprintf(res->problem_code, sizeof(res->problem_code), "bad_response");
        snprintf(res->message, sizeof(res->message), "the peer's answer is not a %s", type->name);
        res->problem = souk_problem_json(502, "bad_response", res->message);
    }
}

static void wire_free(struct wire *w)
{
    json_decref(w->problem);
    if (w->has_response)
        grpc_slice_unref(w->response);
}

int souk_grpc_call(const char *peers_list, const struct souk_grpc_call *call,
                   struct souk_grpc_result *res)
{
    memset(res, 0, sizeof(*res));
    uint64_t t0 = souk_now_ns();
    size_t n = protobuf_c_message_get_packed_size(call->request);
    uint8_t *buf = souk_xmalloc(n ? n : 1);
    protobuf_c_message_pack(call->request, buf);
    struct wire w;
    struct souk_span span, *prev = span_begin(peers_list, call, &span);
    transport(peers_list, call, buf, n, &w);
    free(buf);
    res->answered = outcome(&w, res);
    decode_response(&w, call->response_type, res);
    wire_free(&w);
    span_end(&span, prev, res->code);
    if (m_handled != NULL)
        observe(call->method, res->code, t0);
    return souk_grpc_error(res->code);
}

void souk_grpc_result_free(struct souk_grpc_result *res)
{
    if (res->response != NULL)
        protobuf_c_message_free_unpacked(res->response, NULL);
    json_decref(res->problem);
    res->response = NULL;
    res->problem = NULL;
}

int souk_grpc_call_json(const char *peers_list, const struct souk_grpc_call *call,
                        const ProtobufCMessageDescriptor *request_type, const json_t *request,
                        struct souk_response *out)
{
    memset(out, 0, sizeof(*out));
    unsigned char *buf = NULL;
    size_t n = 0;
    char err[256];
    if (call->response_type == NULL) { /* the answer could not be read back as JSON */
        souk_error("a JSON call needs its response type", "{s:s}", "rpc", call->method);
        return SOUK_EINVAL;
    }
    if (souk_pb_from_json(request_type, request, &buf, &n, err, sizeof(err)) != 0) {
        souk_warn("a request does not fit its message type", "{s:s,s:s}", "rpc", call->method,
                  "error", err);
        return SOUK_EINVAL;
    }
    uint64_t t0 = souk_now_ns();
    struct souk_grpc_result res;
    memset(&res, 0, sizeof(res));
    struct wire w;
    struct souk_span span, *prev = span_begin(peers_list, call, &span);
    int rc = transport(peers_list, call, buf, n, &w);
    free(buf);
    if (rc != 0) {
        wire_free(&w);
        span_end(&span, prev, w.status);
        return rc;
    }
    res.answered = outcome(&w, &res);
    decode_response(&w, call->response_type, &res);
    wire_free(&w);
    span_end(&span, prev, res.code);
    if (m_handled != NULL)
        observe(call->method, res.code, t0);
    if (!res.answered) {
        rc = res.code == GRPC_STATUS_DEADLINE_EXCEEDED ? SOUK_ETIMEDOUT
             : res.code == GRPC_STATUS_UNAVAILABLE     ? SOUK_EUNAVAIL
                                                       : SOUK_EIO;
        souk_grpc_result_free(&res);
        return rc;
    }
    out->status = res.status;
    if (res.code == GRPC_STATUS_OK && res.response != NULL) {
        out->json = souk_pb_to_json(res.response);
        snprintf(out->content_type, sizeof(out->content_type), "application/json");
    } else {
        out->json = json_incref(res.problem);
        snprintf(out->content_type, sizeof(out->content_type), "application/problem+json");
    }
    out->body = souk_json_dump(out->json, &out->len);
    souk_grpc_result_free(&res);
    return 0;
}

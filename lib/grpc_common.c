/* grpc_common.c: what serving and calling share: the mapping between our problem
 * codes, HTTP statuses, gRPC statuses and kit errors (one table each, tested as
 * tables), the request id and trace context rules, and metadata helpers. */
#include <dlfcn.h>
#include <grpc/status.h>
#include <grpc/support/log.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "grpc_int.h"
#include "souk/log.h"
#include "souk/souk.h"

static const char *const status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *souk_grpc_status_name(int s)
{
    return s >= 0 && (size_t)s < SOUK_ARRAY_LEN(status_names) ? status_names[s] : "UNKNOWN";
}

/* Codes whose gRPC status says more than their HTTP status would. */
static const struct {
    const char *code;
    grpc_status_code status;
} by_code[] = {
    {"idempotency_key_in_use", GRPC_STATUS_ABORTED}, /* a concurrent duplicate: retry */
    {"email_taken", GRPC_STATUS_ALREADY_EXISTS},
    {"sku_taken", GRPC_STATUS_ALREADY_EXISTS},
    {"malformed_message", GRPC_STATUS_INVALID_ARGUMENT},
    {"unimplemented", GRPC_STATUS_UNIMPLEMENTED},
    {"deadline_exceeded", GRPC_STATUS_DEADLINE_EXCEEDED},
    {"cancelled", GRPC_STATUS_CANCELLED},
};

int souk_grpc_status_for(int http, const char *code)
{
    for (size_t i = 0; code != NULL && i < SOUK_ARRAY_LEN(by_code); i++)
        if (strcmp(code, by_code[i].code) == 0)
            return by_code[i].status;
    switch (http) {
    case 200:
    case 201:
    case 202:
    case 204:
        return GRPC_STATUS_OK;
    case 400:
    case 415:
    case 422:
        return GRPC_STATUS_INVALID_ARGUMENT;
    case 401:
        return GRPC_STATUS_UNAUTHENTICATED;
    case 403:
        return GRPC_STATUS_PERMISSION_DENIED;
    case 404:
    case 410:
        return GRPC_STATUS_NOT_FOUND;
    case 405:
    case 501:
        return GRPC_STATUS_UNIMPLEMENTED;
    case 408:
    case 504:
        return GRPC_STATUS_DEADLINE_EXCEEDED;
    case 409: /* out_of_stock, illegal_transition, reservation_released…: state conflicts */
    case 412:
    case 428:
        return GRPC_STATUS_FAILED_PRECONDITION;
    case 413:
    case 429:
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case 499:
        return GRPC_STATUS_CANCELLED;
    case 502:
    case 503:
        return GRPC_STATUS_UNAVAILABLE;
    }
    if (http >= 200 && http < 300)
        return GRPC_STATUS_OK;
    if (http >= 400 && http < 500)
        return GRPC_STATUS_FAILED_PRECONDITION;
    return GRPC_STATUS_INTERNAL;
}

int souk_grpc_http_status(int s)
{
    switch (s) {
    case GRPC_STATUS_OK:
        return 200;
    case GRPC_STATUS_CANCELLED:
        return 499;
    case GRPC_STATUS_INVALID_ARGUMENT:
    case GRPC_STATUS_OUT_OF_RANGE:
        return 400;
    case GRPC_STATUS_DEADLINE_EXCEEDED:
        return 504;
    case GRPC_STATUS_NOT_FOUND:
        return 404;
    case GRPC_STATUS_ALREADY_EXISTS:
    case GRPC_STATUS_FAILED_PRECONDITION:
    case GRPC_STATUS_ABORTED:
        return 409;
    case GRPC_STATUS_PERMISSION_DENIED:
        return 403;
    case GRPC_STATUS_UNAUTHENTICATED:
        return 401;
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        return 429;
    case GRPC_STATUS_UNIMPLEMENTED:
        return 501;
    case GRPC_STATUS_UNAVAILABLE:
        return 503;
    default: /* UNKNOWN, INTERNAL, DATA_LOSS */
        return 500;
    }
}

int souk_grpc_error(int s)
{
    switch (s) {
    case GRPC_STATUS_OK:
        return 0;
    case GRPC_STATUS_NOT_FOUND:
        return SOUK_ENOTFOUND;
    case GRPC_STATUS_INVALID_ARGUMENT:
    case GRPC_STATUS_OUT_OF_RANGE:
        return SOUK_EINVAL;
    case GRPC_STATUS_ALREADY_EXISTS:
    case GRPC_STATUS_FAILED_PRECONDITION:
    case GRPC_STATUS_ABORTED:
        return SOUK_ECONFLICT;
    case GRPC_STATUS_DEADLINE_EXCEEDED:
        return SOUK_ETIMEDOUT;
    case GRPC_STATUS_UNAVAILABLE:
        return SOUK_EUNAVAIL;
    case GRPC_STATUS_UNAUTHENTICATED:
    case GRPC_STATUS_PERMISSION_DENIED:
        return SOUK_EAUTH;
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
        return SOUK_EBUSY;
    default: /* CANCELLED, UNKNOWN, UNIMPLEMENTED, INTERNAL, DATA_LOSS */
        return SOUK_EIO;
    }
}

bool souk_grpc_url(const char *url) { return url != NULL && strncmp(url, "grpc://", 7) == 0; }

/* ---- request ids and trace context: the same rules as HTTP (lib/server.c) ---- */

bool souk__grpc_request_id_ok(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n == SOUK__GRPC_REQUEST_ID_MAX ||
            !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return n > 0;
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

void souk__grpc_trace_context(const char *tp, char *out)
{
    char trace[33], flags[3] = "01", span[17];
    unsigned char rnd[16];
    if (tp != NULL && strlen(tp) == SOUK__GRPC_TRACEPARENT_LEN && strncmp(tp, "00-", 3) == 0 &&
        all_hex(tp + 3, 32) && tp[35] == '-' && all_hex(tp + 36, 16) && tp[52] == '-' &&
        all_hex(tp + 53, 2) && strncmp(tp + 3, "00000000000000000000000000000000", 32) != 0) {
        memcpy(trace, tp + 3, 32);
        memcpy(flags, tp + 53, 2);
    } else {
        souk_random(rnd, 16);
        sodium_bin2hex(trace, sizeof(trace), rnd, 16);
    }
    trace[32] = '\0';
    souk_random(rnd, 8);
    sodium_bin2hex(span, sizeof(span), rnd, 8);
    snprintf(out, SOUK__GRPC_TRACEPARENT_LEN + 1, "00-%s-%s-%s", trace, span, flags);
}

/* ---- metadata and paths ---- */

const char *souk__grpc_md_get(const grpc_metadata_array *md, const char *key, struct souk_arena *a)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < md->count; i++) {
        const grpc_slice *k = &md->metadata[i].key;
        if (GRPC_SLICE_LENGTH(*k) != klen || memcmp(GRPC_SLICE_START_PTR(*k), key, klen) != 0)
            continue;
        const grpc_slice *v = &md->metadata[i].value;
        size_t n = GRPC_SLICE_LENGTH(*v);
        if (memchr(GRPC_SLICE_START_PTR(*v), '\0', n) != NULL)
            return NULL;
        return souk_arena_strndup(a, (const char *)GRPC_SLICE_START_PTR(*v), n);
    }
    return NULL;
}

bool souk__grpc_split_path(const char *path, char *service, size_t scap, char *method, size_t mcap)
{
    if (path == NULL || path[0] != '/')
        return false;
    const char *slash = strchr(path + 1, '/');
    if (slash == NULL || slash == path + 1 || slash[1] == '\0' || strchr(slash + 1, '/') != NULL)
        return false;
    size_t sn = (size_t)(slash - path - 1), mn = strlen(slash + 1);
    if (sn >= scap || mn >= mcap)
        return false;
    memcpy(service, path + 1, sn);
    service[sn] = '\0';
    memcpy(method, slash + 1, mn + 1);
    return true;
}

/* gRPC core writes "E1130 02:00:00.123 42 chttp2_server.cc:1053] …" on stderr by
 * default: a listener it cannot bind, a broken peer. The line is ours instead, its
 * text as message, where in gRPC's sources it came from under log.origin.*. */
static void grpc_log(gpr_log_func_args *a)
{
    enum souk_log_level level = a->severity == GPR_LOG_SEVERITY_ERROR  ? SOUK_LOG_ERROR
                                : a->severity == GPR_LOG_SEVERITY_INFO ? SOUK_LOG_INFO
                                                                       : SOUK_LOG_DEBUG;
    if (!souk_log_enabled(level))
        return;
    souk_log(level, a->message != NULL ? a->message : "", "{s:s,s:s,s:i}", "log.logger", "grpc",
             "log.origin.file.name", a->file != NULL ? a->file : "", "log.origin.file.line",
             a->line);
}

/* Debian's abseil is built without NDEBUG: every absl::Mutex the core locks (several
 * per call) also walks abseil's lock graph to detect deadlocks, a few % of a call's
 * CPU on both ends (docs/grpc.md "Cost"). Turned off as a release build has it; found
 * by name, so an abseil that names it otherwise (another ABI tag) keeps its default. */
static void absl_deadlock_detection_off(void)
{
    void *sym = dlsym(RTLD_DEFAULT,
                      "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE");
    void (*set_mode)(int);
    if (sym == NULL)
        return;
    memcpy(&set_mode, &sym, sizeof(set_mode));
    set_mode(0); /* absl::OnDeadlockCycle::kIgnore */
}

void souk__grpc_core_init(void)
{
    gpr_set_log_function(grpc_log); /* before grpc_init: its first messages too */
    absl_deadlock_detection_off();
    grpc_init();
}

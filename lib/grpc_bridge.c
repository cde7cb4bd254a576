/* grpc_bridge.c: an RPC answered by the service's own HTTP route. The request
 * message, as REST JSON (grpc_json.c), becomes the route's path, query or body and
 * Idempotency-Key; the route's handler runs exactly as for HTTP (validation,
 * idempotency, problems) on a request made without libmicrohttpd (server.c); its
 * JSON answer or problem becomes the reply or the status. docs/grpc.md "The bridge"
 * says why this rather than a second set of handlers, with the measurements. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "grpc_int.h"
#include "server_int.h"
#include "souk/log.h"
#include "souk/souk.h"

#define SPEC_MAX   256 /* "POST /internal/v1/…" */
#define PATH_MAX_  1024
#define FIELDS_MAX 8
#define IDEM_FIELD "idempotency_key"

struct spec {
    char method[8];
    const char *tmpl;               /* the path template, "{field}" in it */
    const char *fields[FIELDS_MAX]; /* the path's fields, in order, pointing into buf */
    size_t nfields;
    bool body;              /* POST, PUT, PATCH: the rest is the body; else the query */
    char buf[2 * SPEC_MAX]; /* the spec, then the path fields' names */
};

/* Split "METHOD /path/{a}/x/{b}" into s; false when it is not of that form. */
static bool parse_spec(const char *rest, struct spec *s)
{
    memset(s, 0, sizeof(*s));
    if (rest == NULL || strlen(rest) >= SPEC_MAX)
        return false;
    snprintf(s->buf, sizeof(s->buf), "%s", rest);
    char *sp = strchr(s->buf, ' ');
    if (sp == NULL || (size_t)(sp - s->buf) >= sizeof(s->method) || sp[1] != '/')
        return false;
    memcpy(s->method, s->buf, (size_t)(sp - s->buf));
    s->tmpl = sp + 1;
    if (strcmp(s->method, "POST") == 0 || strcmp(s->method, "PUT") == 0 ||
        strcmp(s->method, "PATCH") == 0)
        s->body = true;
    else if (strcmp(s->method, "GET") != 0 && strcmp(s->method, "DELETE") != 0)
        return false;
    /* the field names, NUL-terminated, go into buf past the template's end */
    size_t used = strlen(s->buf) + 1;
    for (const char *p = s->tmpl; (p = strchr(p, '{')) != NULL;) {
        const char *e = strchr(p, '}');
        if (e == NULL || e == p + 1 || s->nfields == FIELDS_MAX ||
            used + (size_t)(e - p) >= sizeof(s->buf))
            return false;
        char *name = s->buf + used;
        memcpy(name, p + 1, (size_t)(e - p - 1));
        name[e - p - 1] = '\0';
        used += (size_t)(e - p);
        s->fields[s->nfields++] = name;
        p = e + 1;
    }
    return true;
}

/* The template with each {field} replaced by vals[i] into out. */
static bool fill_path(const struct spec *s, const char *const *vals, char *out, size_t cap)
{
    size_t n = 0, k = 0;
    for (const char *p = s->tmpl; *p != '\0';) {
        if (*p == '{') {
            int w = snprintf(out + n, cap - n, "%s", vals[k++]);
            if (w < 0 || (size_t)w >= cap - n)
                return false;
            n += (size_t)w;
            p = strchr(p, '}') + 1;
            continue;
        }
        if (n + 1 >= cap)
            return false;
        out[n++] = *p++;
    }
    out[n] = '\0';
    return true;
}

int souk__grpc_bridge_prepare(struct souk_rpc_method *m)
{
    struct spec s;
    if (!parse_spec(m->rest, &s)) {
        souk_error("bridge: expected \"METHOD /path/{field}\"", "{s:s,s:s}", "rpc", m->path, "rest",
                   m->rest ? m->rest : "(null)");
        return SOUK_EINVAL;
    }
    const char *sample[FIELDS_MAX];
    for (size_t i = 0; i < s.nfields; i++) {
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field_by_name(m->request, s.fields[i]);
        if (f == NULL || f->type != PROTOBUF_C_TYPE_STRING ||
            f->label == PROTOBUF_C_LABEL_REPEATED) {
            souk_error("bridge: a path field must be a string field of the request", "{s:s,s:s}",
                       "rpc", m->path, "field", s.fields[i]);
            return SOUK_EINVAL;
        }
        sample[i] = "x";
    }
    char path[PATH_MAX_];
    int idx =
        fill_path(&s, sample, path, sizeof(path)) ? souk__server_route_find(s.method, path) : -404;
    const struct souk_route *route = souk__server_route_at(idx);
    if (route == NULL) {
        souk_error("bridge: the service has no such route", "{s:s,s:s}", "rpc", m->path, "rest",
                   m->rest);
        return SOUK_EINVAL;
    }
    /* the method's access rule is the route's: one decision for both transports */
    m->auth = route->auth;
    m->scope = route->scope;
    return 0;
}

/* A query value in the form a client would send: strings as they are, numbers in
 * decimal, booleans as true/false. NULL for what a query cannot carry. */
static const char *query_value(struct souk_rpc *c, const json_t *v)
{
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v))
        return souk_rpc_printf(c, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    if (json_is_real(v))
        return souk_rpc_printf(c, "%.17g", json_real_value(v));
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    return NULL;
}

/* proto3's "not set" for a field without presence: the default value. */
static bool is_default(const json_t *v)
{
    return json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0) ||
           (json_is_integer(v) && json_integer_value(v) == 0) ||
           (json_is_real(v) && json_real_value(v) == 0) || json_is_false(v) ||
           (json_is_array(v) && json_array_size(v) == 0);
}

/* The route's answer as the call's: a 2xx body as the reply, else its problem. */
static int answer(struct souk_rpc *c, struct souk_req *r)
{
    struct souk__answer a;
    souk__server_synth_answer(r, &a);
    json_t *doc = a.json != NULL ? json_incref(a.json) : NULL;
    if (doc == NULL && a.body != NULL && a.len > 0)
        doc = json_loadb(a.body, a.len, 0, NULL); /* a rendered body (a replayed answer) */
    if (a.status < 300)
        return souk_rpc_reply_json(c, doc != NULL ? doc : json_object());
    if (!json_is_object(doc)) {
        json_decref(doc);
        doc = souk_problem_json(a.status, "error", souk_status_title(a.status));
    }
    return souk_rpc_problem_json(c, a.status, doc);
}

static void resumed(struct souk_req *r, void *arg)
{
    struct souk_rpc *c = arg;
    int status = answer(c, r);
    souk__server_synth_free(r);
    souk_rpc_finish(c, status);
}

int souk__grpc_bridge_call(struct souk_rpc *c, const ProtobufCMessage *in)
{
    const struct souk_rpc_method *m = souk__rpc_entry(c);
    struct spec s;
    struct souk_check chk;
    if (!parse_spec(m->rest, &s)) /* checked at start */
        return souk_rpc_problem(c, 500, "internal", "internal error");
    json_t *j = souk_rpc_request_json(c); /* owned by the call: ours to take fields from */
    if (!json_is_object(j))
        return souk_rpc_problem(c, 500, "internal", "internal error");
    souk_check_init(&chk);
    const char *vals[FIELDS_MAX];
    for (size_t i = 0; i < s.nfields; i++) {
        const char *v = json_string_value(json_object_get(j, s.fields[i]));
        vals[i] = v != NULL ? souk_rpc_printf(c, "%s", v) : "";
        /* a path segment: a "/" would route elsewhere, nothing would route at all */
        if (vals[i][0] == '\0')
            souk_check_fail(&chk, s.fields[i], "is required");
        else if (strchr(vals[i], '/') != NULL)
            souk_check_fail(&chk, s.fields[i], "must not contain /");
        json_object_del(j, s.fields[i]);
    }
    if (!souk_check_ok(&chk))
        return souk_rpc_problem_check(c, &chk);
    souk_check_free(&chk);
    char *path = souk_rpc_alloc(c, PATH_MAX_);
    if (!fill_path(&s, vals, path, PATH_MAX_))
        return souk_rpc_problem(c, 400, "validation_failed", "the request's ids are too long");

    struct souk__kv *headers = souk_rpc_alloc(c, 2 * sizeof(*headers));
    size_t nheaders = 0;
    const char *key = json_string_value(json_object_get(j, IDEM_FIELD));
    if (key != NULL && key[0] != '\0')
        headers[nheaders++] = (struct souk__kv){"Idempotency-Key", souk_rpc_printf(c, "%s", key)};
    json_object_del(j, IDEM_FIELD);
    const char *authz = souk_rpc_metadata(c, "authorization");
    if (authz != NULL)
        headers[nheaders++] = (struct souk__kv){"Authorization", authz};

    struct souk__kv *query = NULL;
    size_t nquery = 0;
    if (!s.body) {
        /* in the order of the .proto, which is the order REST documents them */
        const ProtobufCMessageDescriptor *d = in->descriptor;
        query = souk_rpc_alloc(c, (d->n_fields + 1) * sizeof(*query));
        for (unsigned i = 0; i < d->n_fields; i++) {
            const ProtobufCFieldDescriptor *f = &d->fields[i];
            json_t *v = json_object_get(j, f->name);
            bool presence = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
            const char *text = v != NULL ? query_value(c, v) : NULL;
            if (text != NULL && (presence || !is_default(v)))
                query[nquery++] = (struct souk__kv){f->name, text};
        }
    }

    struct souk__synth *syn = souk_rpc_alloc(c, sizeof(*syn)); /* lives as long as the call */
    *syn = (struct souk__synth){
        .method = souk_rpc_printf(c, "%s", s.method),
        .path = path,
        .query = query,
        .nquery = nquery,
        .headers = headers,
        .nheaders = nheaders,
        .body = s.body && json_object_size(j) > 0 ? j : NULL,
        .who = souk_rpc_identity(c),
        .request_id = souk_rpc_id(c),
        .traceparent = souk_rpc_traceparent(c),
        .client = souk__rpc_client(c),
        .resumed = resumed,
        .arg = c,
    };
    struct souk_req *r = NULL;
    int status = souk__server_synth_run(syn, &r);
    if (status == SOUK_SUSPEND)
        return SOUK_RPC_LATER; /* resumed() answers */
    status = answer(c, r);
    souk__server_synth_free(r);
    return status;
}

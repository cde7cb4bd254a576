/* grpc_json.c: protobuf ⇄ JSON in the shape of our REST API, driven by protobuf-c's
 * runtime descriptors (field names as in the .proto, which are the REST names), so
 * logic written for HTTP can answer gRPC and a caller can switch transports without
 * changing what it reads; and the wire check every request passes before protobuf-c
 * unpacks it (string fields must be UTF-8 without NUL). */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc_int.h"
#include "souk/souk.h"

#define MAX_DEPTH   32
#define MAX_ENCODED (16u << 20) /* a JSON body never becomes a message over 16 MiB */
#define PATH_MAX_   160

/* ---- descriptor shapes ---- */

static const void *member(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return (const char *)m + f->offset;
}

static uint32_t quantifier(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    return *(const uint32_t *)((const char *)m + f->quantifier_offset);
}

/* map<K,V> fields are repeated messages "<Field>Entry" {key = 1; value = 2;}. */
static bool is_map(const ProtobufCFieldDescriptor *f)
{
    if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED)
        return false;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    size_t n = strlen(d->name);
    return d->n_fields == 2 && n > 5 && strcmp(d->name + n - 5, "Entry") == 0 &&
           d->fields[0].id == 1 && strcmp(d->fields[0].name, "key") == 0 && d->fields[1].id == 2 &&
           strcmp(d->fields[1].name, "value") == 0;
}

static bool scalar_name(const char *n)
{
    return strcmp(n, "string_value") == 0 || strcmp(n, "integer_value") == 0 ||
           strcmp(n, "number_value") == 0 || strcmp(n, "bool_value") == 0;
}

/* A "scalar value" message (souk.catalog.v1.AttributeValue): one oneof whose
 * members are among string_value, integer_value, number_value, bool_value. Its
 * JSON form is the bare scalar, as REST shows attribute values. */
static bool is_scalar_message(const ProtobufCMessageDescriptor *d)
{
    if (d->n_fields == 0 || d->n_fields > 4)
        return false;
    for (unsigned i = 0; i < d->n_fields; i++)
        if (!(d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
            d->fields[i].quantifier_offset != d->fields[0].quantifier_offset ||
            !scalar_name(d->fields[i].name))
            return false;
    return true;
}

static const ProtobufCFieldDescriptor *field_named(const ProtobufCMessageDescriptor *d,
                                                   const char *name)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (strcmp(d->fields[i].name, name) == 0)
            return &d->fields[i];
    return NULL;
}

/* ---- protobuf → JSON ---- */

static json_t *message_json(const ProtobufCMessage *m);

/* The element of type f->type stored at p. */
static json_t *value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer((json_int_t) * (const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
        uint64_t v = *(const uint64_t *)p;
        if (v <= INT64_MAX)
            return json_integer((json_int_t)v);
        char text[24]; /* beyond a JSON integer we can hold exactly: its decimal text */
        snprintf(text, sizeof(text), "%llu", (unsigned long long)v);
        return json_string(text);
    }
    case PROTOBUF_C_TYPE_FLOAT: {
        double v = *(const float *)p;
        return isfinite(v) ? json_real(v) : json_null();
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        double v = *(const double *)p;
        return isfinite(v) ? json_real(v) : json_null();
    }
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        return ev != NULL ? json_string(ev->name) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)p;
        json_t *v = json_string(s != NULL ? s : "");
        return v != NULL ? v : json_null(); /* not UTF-8: never crash, show nothing */
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        size_t cap = sodium_base64_ENCODED_LEN(b->len, sodium_base64_VARIANT_ORIGINAL);
        char *text = souk_xmalloc(cap);
        sodium_bin2base64(text, cap, b->data, b->len, sodium_base64_VARIANT_ORIGINAL);
        json_t *v = json_string(text);
        free(text);
        return v;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)p;
        return sub != NULL ? message_json(sub) : json_null();
    }
    }
    return json_null();
}

/* A map entry's key as JSON object keys are: text. */
static char *map_key(const ProtobufCMessage *entry, char *buf, size_t cap)
{
    const ProtobufCFieldDescriptor *kf = &entry->descriptor->fields[0];
    json_t *k = value_json(kf, member(entry, kf));
    if (json_is_string(k))
        snprintf(buf, cap, "%s", json_string_value(k));
    else if (json_is_integer(k))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(k));
    else
        snprintf(buf, cap, "%s", json_is_true(k) ? "true" : "false");
    json_decref(k);
    return buf;
}

static json_t *message_json(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (is_scalar_message(d)) {
        uint32_t set = quantifier(m, &d->fields[0]);
        for (unsigned i = 0; i < d->n_fields; i++)
            if (d->fields[i].id == set)
                return value_json(&d->fields[i], member(m, &d->fields[i]));
        return json_null();
    }
    json_t *o = json_object();
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (quantifier(m, f) == f->id)
                json_object_set_new(o, f->name, value_json(f, member(m, f)));
            continue;
        }
        if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
            f->type != PROTOBUF_C_TYPE_STRING && !quantifier(m, f))
            continue; /* proto2 optional scalar without has_: absent */
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            json_object_set_new(o, f->name, value_json(f, member(m, f)));
            continue;
        }
        size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
        const char *arr = *(const char *const *)member(m, f);
        size_t size =
            f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING ? sizeof(void *)
            : f->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData)
            : f->type == PROTOBUF_C_TYPE_INT64 || f->type == PROTOBUF_C_TYPE_SINT64 ||
                    f->type == PROTOBUF_C_TYPE_SFIXED64 || f->type == PROTOBUF_C_TYPE_UINT64 ||
                    f->type == PROTOBUF_C_TYPE_FIXED64 || f->type == PROTOBUF_C_TYPE_DOUBLE
                ? 8
            : f->type == PROTOBUF_C_TYPE_BOOL ? sizeof(protobuf_c_boolean)
                                              : 4;
        if (is_map(f)) {
            json_t *map = json_object();
            for (size_t k = 0; k < n; k++) {
                const ProtobufCMessage *e = ((const ProtobufCMessage *const *)arr)[k];
                char key[256];
                const ProtobufCFieldDescriptor *vf = &e->descriptor->fields[1];
                json_object_set_new(map, map_key(e, key, sizeof(key)),
                                    value_json(vf, member(e, vf)));
            }
            json_object_set_new(o, f->name, map);
            continue;
        }
        json_t *a = json_array();
        for (size_t k = 0; k < n; k++)
            json_array_append_new(a, value_json(f, arr + k * size));
        json_object_set_new(o, f->name, a);
    }
    return o;
}

json_t *souk_pb_to_json(const ProtobufCMessage *m) { return message_json(m); }

/* ---- JSON → protobuf wire bytes ---- */

struct wbuf {
    unsigned char *p;
    size_t len, cap;
};

static int put(struct wbuf *b, const void *data, size_t n)
{
    if (b->len + n > MAX_ENCODED)
        return SOUK_ETOOBIG;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = souk_xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static int put_varint(struct wbuf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v != 0)
            tmp[n] |= 0x80;
        n++;
    } while (v != 0);
    return put(b, tmp, n);
}

static int put_le(struct wbuf *b, uint64_t v, size_t n)
{
    unsigned char tmp[8];
    for (size_t i = 0; i < n; i++)
        tmp[i] = (unsigned char)(v >> (8 * i));
    return put(b, tmp, n);
}

static int put_tag(struct wbuf *b, uint32_t id, unsigned wire)
{
    return put_varint(b, (uint64_t)id << 3 | wire);
}

static int put_bytes(struct wbuf *b, uint32_t id, const void *data, size_t n)
{
    int rc = put_tag(b, id, 2);
    if (rc == 0)
        rc = put_varint(b, n);
    return rc == 0 ? put(b, data, n) : rc;
}

struct enc {
    char *err;
    size_t errcap;
    char path[PATH_MAX_];
};

static int fail(struct enc *e, const char *fmt, const char *what)
{
    snprintf(e->err, e->errcap, "%s: %s%s", e->path[0] ? e->path : "(message)", fmt, what);
    return SOUK_EINVAL;
}

static int enc_message(struct enc *e, const ProtobufCMessageDescriptor *d, const json_t *j,
                       struct wbuf *b, int depth);

/* An integer member in [min, max]. */
static int want_int(struct enc *e, const json_t *v, long long min, long long max, long long *out)
{
    if (!json_is_integer(v))
        return fail(e, "must be an integer", "");
    long long x = json_integer_value(v);
    if (x < min || x > max)
        return fail(e, "integer out of range", "");
    *out = x;
    return 0;
}

/* One value of field f (an element, for a repeated field) as a tagged wire value. */
static int enc_value(struct enc *e, const ProtobufCFieldDescriptor *f, const json_t *v,
                     struct wbuf *b, int depth)
{
    long long x = 0;
    int rc = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
        if ((rc = want_int(e, v, INT32_MIN, INT32_MAX, &x)) == 0 &&
            (rc = put_tag(b, f->id, 0)) == 0)
            rc = put_varint(b, (uint64_t)(int64_t)x); /* negative: ten bytes, as the spec says */
        return rc;
    case PROTOBUF_C_TYPE_INT64:
        if ((rc = want_int(e, v, INT64_MIN, INT64_MAX, &x)) == 0 &&
            (rc = put_tag(b, f->id, 0)) == 0)
            rc = put_varint(b, (uint64_t)(int64_t)x);
        return rc;
    case PROTOBUF_C_TYPE_UINT32:
        if ((rc = want_int(e, v, 0, UINT32_MAX, &x)) == 0 && (rc = put_tag(b, f->id, 0)) == 0)
            rc = put_varint(b, (uint64_t)x);
        return rc;
    case PROTOBUF_C_TYPE_UINT64:
        if ((rc = want_int(e, v, 0, INT64_MAX, &x)) == 0 && (rc = put_tag(b, f->id, 0)) == 0)
            rc = put_varint(b, (uint64_t)x);
        return rc;
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SINT64:
        if ((rc = want_int(e, v, f->type == PROTOBUF_C_TYPE_SINT32 ? INT32_MIN : INT64_MIN,
                           f->type == PROTOBUF_C_TYPE_SINT32 ? INT32_MAX : INT64_MAX, &x)) == 0 &&
            (rc = put_tag(b, f->id, 0)) == 0)
            rc = put_varint(b, ((uint64_t)x << 1) ^ (uint64_t)(x >> 63)); /* zigzag */
        return rc;
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
        if ((rc = want_int(e, v, f->type == PROTOBUF_C_TYPE_SFIXED32 ? INT32_MIN : 0,
                           f->type == PROTOBUF_C_TYPE_SFIXED32 ? INT32_MAX : UINT32_MAX, &x)) ==
                0 &&
            (rc = put_tag(b, f->id, 5)) == 0)
            rc = put_le(b, (uint64_t)x, 4);
        return rc;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
        if ((rc = want_int(e, v, f->type == PROTOBUF_C_TYPE_SFIXED64 ? INT64_MIN : 0, INT64_MAX,
                           &x)) == 0 &&
            (rc = put_tag(b, f->id, 1)) == 0)
            rc = put_le(b, (uint64_t)x, 8);
        return rc;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        if (!json_is_number(v))
            return fail(e, "must be a number", "");
        double d = json_number_value(v);
        if (f->type == PROTOBUF_C_TYPE_FLOAT) {
            float fl = (float)d;
            uint32_t bits;
            memcpy(&bits, &fl, 4);
            return (rc = put_tag(b, f->id, 5)) == 0 ? put_le(b, bits, 4) : rc;
        }
        uint64_t bits;
        memcpy(&bits, &d, 8);
        return (rc = put_tag(b, f->id, 1)) == 0 ? put_le(b, bits, 8) : rc;
    }
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return fail(e, "must be true or false", "");
        return (rc = put_tag(b, f->id, 0)) == 0 ? put_varint(b, json_is_true(v) ? 1 : 0) : rc;
    case PROTOBUF_C_TYPE_ENUM: {
        if (json_is_string(v)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(v));
            if (ev == NULL)
                return fail(e, "unknown value ", json_string_value(v));
            x = ev->value;
        } else if ((rc = want_int(e, v, INT32_MIN, INT32_MAX, &x)) != 0) {
            return rc;
        }
        return (rc = put_tag(b, f->id, 0)) == 0 ? put_varint(b, (uint64_t)(int64_t)x) : rc;
    }
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(v))
            return fail(e, "must be a string", "");
        return put_bytes(b, f->id, json_string_value(v), json_string_length(v));
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(v))
            return fail(e, "must be a base64 string", "");
        size_t cap = json_string_length(v) / 4 * 3 + 3, n = 0;
        unsigned char *bin = souk_xmalloc(cap);
        if (sodium_base642bin(bin, cap, json_string_value(v), json_string_length(v), NULL, &n, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0) {
            free(bin);
            return fail(e, "must be a base64 string", "");
        }
        rc = put_bytes(b, f->id, bin, n);
        free(bin);
        return rc;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        struct wbuf sub = {0};
        rc = enc_message(e, f->descriptor, v, &sub, depth + 1);
        if (rc == 0)
            rc = put_bytes(b, f->id, sub.p, sub.len);
        free(sub.p);
        return rc;
    }
    }
    return fail(e, "unsupported field type", "");
}

/* The bare scalar of a "scalar value" message as the member that fits it. */
static int enc_scalar_message(struct enc *e, const ProtobufCMessageDescriptor *d, const json_t *j,
                              struct wbuf *b)
{
    const char *want = json_is_string(j)    ? "string_value"
                       : json_is_integer(j) ? "integer_value"
                       : json_is_real(j)    ? "number_value"
                       : json_is_boolean(j) ? "bool_value"
                                            : NULL;
    const ProtobufCFieldDescriptor *f = want != NULL ? field_named(d, want) : NULL;
    if (f == NULL && json_is_integer(j))
        f = field_named(d, "number_value");
    if (f == NULL)
        return fail(e, "must be a string, number or boolean", "");
    return enc_value(e, f, j, b, 0);
}

static int enc_map(struct enc *e, const ProtobufCFieldDescriptor *f, const json_t *obj,
                   struct wbuf *b, int depth)
{
    if (!json_is_object(obj))
        return fail(e, "must be an object", "");
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    const char *key;
    json_t *val;
    int rc = 0;
    json_object_foreach((json_t *)obj, key, val)
    {
        struct wbuf entry = {0};
        json_t *k = NULL;
        if (kf->type == PROTOBUF_C_TYPE_STRING) {
            k = json_string(key);
        } else if (kf->type == PROTOBUF_C_TYPE_BOOL) {
            k = strcmp(key, "true") == 0    ? json_true()
                : strcmp(key, "false") == 0 ? json_false()
                                            : NULL;
        } else {
            char *end = NULL;
            long long x = strtoll(key, &end, 10);
            k = end != key && *end == '\0' ? json_integer(x) : NULL;
        }
        if (k == NULL)
            rc = fail(e, "bad map key ", key);
        if (rc == 0)
            rc = enc_value(e, kf, k, &entry, depth + 1);
        if (rc == 0 && !json_is_null(val))
            rc = enc_value(e, vf, val, &entry, depth + 1);
        if (rc == 0)
            rc = put_bytes(b, f->id, entry.p, entry.len);
        json_decref(k);
        free(entry.p);
        if (rc != 0)
            break;
    }
    return rc;
}

static int enc_message(struct enc *e, const ProtobufCMessageDescriptor *d, const json_t *j,
                       struct wbuf *b, int depth)
{
    if (depth > MAX_DEPTH)
        return fail(e, "nested too deep", "");
    if (is_scalar_message(d))
        return enc_scalar_message(e, d, j, b);
    if (!json_is_object(j))
        return fail(e, "must be an object", "");
    size_t plen = strlen(e->path);
    int rc = 0;
    for (unsigned i = 0; i < d->n_fields && rc == 0; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const json_t *v = json_object_get(j, f->name);
        if (v == NULL || json_is_null(v))
            continue;
        snprintf(e->path + plen, sizeof(e->path) - plen, "%s%s", plen ? "." : "", f->name);
        if (is_map(f)) {
            rc = enc_map(e, f, v, b, depth);
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!json_is_array(v)) {
                rc = fail(e, "must be an array", "");
                break;
            }
            size_t k;
            json_t *it;
            json_array_foreach(v, k, it)
            {
                if (json_is_null(it))
                    rc = fail(e, "must not hold null", "");
                if (rc == 0)
                    rc = enc_value(e, f, it, b, depth);
                if (rc != 0)
                    break;
            }
        } else {
            rc = enc_value(e, f, v, b, depth);
        }
        e->path[plen] = '\0';
    }
    return rc;
}

int souk_pb_from_json(const ProtobufCMessageDescriptor *d, const json_t *j, unsigned char **out,
                      size_t *len, char *err, size_t errcap)
{
    char dummy[8];
    struct enc e = {err ? err : dummy, err ? errcap : sizeof(dummy), ""};
    struct wbuf b = {0};
    e.err[0] = '\0';
    int rc = enc_message(&e, d, j, &b, 0);
    if (rc == SOUK_ETOOBIG) {
        snprintf(e.err, e.errcap, "the message would exceed %u bytes", MAX_ENCODED);
        rc = SOUK_EINVAL;
    }
    if (rc != 0) {
        free(b.p);
        *out = NULL;
        *len = 0;
        return rc;
    }
    *out = b.p != NULL ? b.p : souk_xmalloc(1); /* an empty message is zero bytes */
    *len = b.len;
    return 0;
}

/* ---- the wire check ---- */

/* Strict UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF), no NUL. */
static bool utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf)
            need = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            need = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            need = 3, cp = c & 0x07;
        else
            return false;
        for (size_t k = 1; k <= need; k++) {
            if (i + k >= n || (s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += need + 1;
    }
    return true;
}

static bool get_varint(const unsigned char *p, size_t n, size_t *off, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 70; shift += 7) {
        if (*off >= n)
            return false;
        unsigned char c = p[(*off)++];
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false; /* more than ten bytes */
}

static int check(const ProtobufCMessageDescriptor *d, const unsigned char *p, size_t n, int depth,
                 char *err, size_t cap)
{
    size_t off = 0;
    if (depth > MAX_DEPTH) {
        snprintf(err, cap, "nested more than %d deep", MAX_DEPTH);
        return SOUK_EINVAL;
    }
    while (off < n) {
        uint64_t key, len;
        if (!get_varint(p, n, &off, &key) || (key >> 3) == 0 || (key >> 3) > 0x1fffffff) {
            snprintf(err, cap, "malformed field key at byte %zu", off);
            return SOUK_EINVAL;
        }
        const ProtobufCFieldDescriptor *f =
            d != NULL ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3)) : NULL;
        switch (key & 7) {
        case 0:
            if (!get_varint(p, n, &off, &len))
                goto truncated;
            break;
        case 1:
            if (n - off < 8)
                goto truncated;
            off += 8;
            break;
        case 5:
            if (n - off < 4)
                goto truncated;
            off += 4;
            break;
        case 2:
            if (!get_varint(p, n, &off, &len) || len > n - off)
                goto truncated;
            if (f != NULL && f->type == PROTOBUF_C_TYPE_STRING && !utf8_ok(p + off, len)) {
                snprintf(err, cap, "%s: not UTF-8 text (or holds NUL)", f->name);
                return SOUK_EINVAL;
            }
            if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                check(f->descriptor, p + off, len, depth + 1, err, cap) != 0)
                return SOUK_EINVAL;
            off += len;
            break;
        default: /* groups (3, 4) are not proto3; 6 and 7 do not exist */
            snprintf(err, cap, "unsupported wire type %u", (unsigned)(key & 7));
            return SOUK_EINVAL;
        }
    }
    return 0;
truncated:
    snprintf(err, cap, "truncated field at byte %zu", off);
    return SOUK_EINVAL;
}

int souk_pb_check(const ProtobufCMessageDescriptor *d, const unsigned char *data, size_t len,
                  char *err, size_t errcap)
{
    char dummy[8];
    if (err == NULL)
        err = dummy, errcap = sizeof(dummy);
    err[0] = '\0';
    return check(d, data, len, 0, err, errcap);
}

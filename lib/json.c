/* json.c: checked extraction from jansson values, gathering field-level errors
 * for one 400 response; strict parsing of query-string numbers and booleans;
 * compact encoding; base64url for opaque tokens. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/json.h"
#include "souk/souk.h"

#define CHECK_MAX_ERRORS 32

void souk_check_init(struct souk_check *c) { c->errors = NULL; }

void souk_check_free(struct souk_check *c)
{
    json_decref(c->errors);
    c->errors = NULL;
}

bool souk_check_ok(const struct souk_check *c) { return c->errors == NULL; }

void souk_check_fail(struct souk_check *c, const char *field, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->errors == NULL)
        c->errors = json_array();
    if (json_array_size(c->errors) >= CHECK_MAX_ERRORS)
        return;
    json_array_append_new(c->errors, json_pack("{s:s,s:s}", "field", field, "message", msg));
}

/* The member, or NULL when absent or null (an error recorded if required). */
static json_t *member(struct souk_check *c, json_t *obj, const char *field, int flags)
{
    json_t *v = json_is_object(obj) ? json_object_get(obj, field) : NULL;
    if (v == NULL || json_is_null(v)) {
        if (flags & SOUK_REQUIRED)
            souk_check_fail(c, field, "is required");
        return NULL;
    }
    return v;
}

const char *souk_json_str(struct souk_check *c, json_t *obj, const char *field, int flags,
                          size_t minlen, size_t maxlen)
{
    json_t *v = member(c, obj, field, flags);
    if (v == NULL)
        return NULL;
    if (!json_is_string(v)) {
        souk_check_fail(c, field, "must be a string");
        return NULL;
    }
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (memchr(s, '\0', n) != NULL) {
        souk_check_fail(c, field, "must not contain NUL");
        return NULL;
    }
    if (n < minlen || n > maxlen) {
        if (minlen == maxlen)
            souk_check_fail(c, field, "must be %zu characters", minlen);
        else
            souk_check_fail(c, field, "must be %zu to %zu characters", minlen, maxlen);
        return NULL;
    }
    return s;
}

int64_t souk_json_int(struct souk_check *c, json_t *obj, const char *field, int flags, int64_t min,
                      int64_t max, int64_t def)
{
    json_t *v = member(c, obj, field, flags);
    if (v == NULL)
        return def;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        souk_check_fail(c, field, "must be an integer from %lld to %lld", (long long)min,
                        (long long)max);
        return def;
    }
    return json_integer_value(v);
}

bool souk_json_bool(struct souk_check *c, json_t *obj, const char *field, int flags, bool def)
{
    json_t *v = member(c, obj, field, flags);
    if (v == NULL)
        return def;
    if (!json_is_boolean(v)) {
        souk_check_fail(c, field, "must be true or false");
        return def;
    }
    return json_is_true(v);
}

json_t *souk_json_object(struct souk_check *c, json_t *obj, const char *field, int flags)
{
    json_t *v = member(c, obj, field, flags);
    if (v != NULL && !json_is_object(v)) {
        souk_check_fail(c, field, "must be an object");
        return NULL;
    }
    return v;
}

json_t *souk_json_array(struct souk_check *c, json_t *obj, const char *field, int flags,
                        size_t maxlen)
{
    json_t *v = member(c, obj, field, flags);
    if (v == NULL)
        return NULL;
    if (!json_is_array(v)) {
        souk_check_fail(c, field, "must be an array");
        return NULL;
    }
    if (json_array_size(v) > maxlen) {
        souk_check_fail(c, field, "must have at most %zu items", maxlen);
        return NULL;
    }
    return v;
}

void souk_json_only(struct souk_check *c, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const char *const *a = allowed;
        while (*a != NULL && strcmp(*a, key) != 0)
            a++;
        if (*a == NULL)
            souk_check_fail(c, key, "is not a known field");
    }
}

int64_t souk_check_int_text(struct souk_check *c, const char *field, const char *text, int64_t min,
                            int64_t max, int64_t def)
{
    if (text == NULL)
        return def;
    const char *p = text;
    bool neg = false;
    if (*p == '-' && min < 0) {
        neg = true;
        p++;
    }
    /* at most 18 digits: 10^18 - 1 fits in int64 with room, and bounds are far below */
    int64_t v = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 18; p++, digits++)
        v = v * 10 + (*p - '0');
    if (digits == 0 || *p != '\0' || (neg ? -v : v) < min || (neg ? -v : v) > max) {
        souk_check_fail(c, field, "must be an integer from %lld to %lld", (long long)min,
                        (long long)max);
        return def;
    }
    return neg ? -v : v;
}

bool souk_check_bool_text(struct souk_check *c, const char *field, const char *text, bool def)
{
    if (text == NULL)
        return def;
    if (strcmp(text, "true") == 0 || strcmp(text, "1") == 0)
        return true;
    if (strcmp(text, "false") == 0 || strcmp(text, "0") == 0)
        return false;
    souk_check_fail(c, field, "must be true or false");
    return def;
}

int souk_check_enum_text(struct souk_check *c, const char *field, const char *text,
                         const char *const *choices, int def)
{
    if (text == NULL)
        return def;
    for (int i = 0; choices[i] != NULL; i++)
        if (strcmp(text, choices[i]) == 0)
            return i;
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; choices[i] != NULL && len < sizeof(list); i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "", choices[i]);
    souk_check_fail(c, field, "must be one of: %s", list);
    return def;
}

char *souk_json_dump(const json_t *v, size_t *len)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s == NULL)
        souk_oom();
    if (len != NULL)
        *len = strlen(s);
    return s;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t souk_b64url_enc(const void *in, size_t n, char *out, size_t cap)
{
    const unsigned char *p = in;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        size_t chars = (n - i >= 3) ? 4 : (n - i) + 1;
        for (size_t k = 0; k < chars; k++) {
            if (o + 1 >= cap)
                goto out;
            out[o++] = b64url[(v >> (18 - 6 * k)) & 63];
        }
    }
out:
    if (cap > 0)
        out[o] = '\0';
    return o;
}

long souk_b64url_dec(const char *in, void *out, size_t cap)
{
    unsigned char *o = out;
    size_t len = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = in; *p != '\0'; p++) {
        const char *q = strchr(b64url, *p);
        if (q == NULL)
            return -1;
        acc = (acc << 6) | (uint32_t)(q - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (len >= cap)
                return -1;
            o[len++] = (unsigned char)(acc >> bits);
        }
    }
    /* leftover bits must be zero padding of a valid encoding */
    if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)len;
}

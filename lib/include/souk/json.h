/* json.h: checked extraction from jansson values with field-level errors. A
 * souk_check gathers every problem with an input ("price_cents: must be an integer
 * from 0 to 100000000") so one 400 response can name them all. */
#ifndef SOUK_JSON_H
#define SOUK_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct souk_check {
    json_t *errors; /* array of {"field","message"}; NULL while none */
};

enum {
    SOUK_OPTIONAL = 0,
    SOUK_REQUIRED = 1,
};

void souk_check_init(struct souk_check *c);
void souk_check_free(struct souk_check *c);
bool souk_check_ok(const struct souk_check *c);
void souk_check_fail(struct souk_check *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Each getter returns the value, or the default when the field is absent (an error
 * is recorded when it is required) or invalid (an error is recorded). null counts as
 * absent. Strings must be valid UTF-8 (jansson guarantees it) without NUL and have
 * minlen..maxlen bytes; the returned pointer is owned by obj. */
const char *souk_json_str(struct souk_check *c, json_t *obj, const char *field, int flags,
                          size_t minlen, size_t maxlen);
int64_t souk_json_int(struct souk_check *c, json_t *obj, const char *field, int flags, int64_t min,
                      int64_t max, int64_t def);
bool souk_json_bool(struct souk_check *c, json_t *obj, const char *field, int flags, bool def);
/* An object or array member, type-checked; NULL when absent or wrong (recorded). */
json_t *souk_json_object(struct souk_check *c, json_t *obj, const char *field, int flags);
json_t *souk_json_array(struct souk_check *c, json_t *obj, const char *field, int flags,
                        size_t maxlen);
/* Record an error for every member of obj not listed in the NULL-ended allowed list. */
void souk_json_only(struct souk_check *c, json_t *obj, const char *const *allowed);

/* Parse text as a number in min..max for query parameters ("page_size"): strict
 * decimal, no sign unless min < 0, no spaces. Absent (NULL) gives def. */
int64_t souk_check_int_text(struct souk_check *c, const char *field, const char *text, int64_t min,
                            int64_t max, int64_t def);
/* Parse "true"/"false"/"1"/"0"; absent gives def. */
bool souk_check_bool_text(struct souk_check *c, const char *field, const char *text, bool def);
/* text must be one of the NULL-ended choices; returns its index, def when absent. */
int souk_check_enum_text(struct souk_check *c, const char *field, const char *text,
                         const char *const *choices, int def);

/* Encode compactly; the result is malloc'd (caller frees). Aborts on OOM. */
char *souk_json_dump(const json_t *v, size_t *len);

/* Base64url without padding, for opaque tokens. dec returns the length or -1. */
size_t souk_b64url_enc(const void *in, size_t n, char *out, size_t cap);
long souk_b64url_dec(const char *in, void *out, size_t cap);

#endif

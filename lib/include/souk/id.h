/* id.h: public ids: a type prefix and a ULID (48-bit millisecond time, 80 random
 * bits from libsodium, Crockford base32), e.g. "prd_01JD0Z6Y2M4W3S1V8N6QH5XK7C".
 * Time-ordered and unguessable. */
#ifndef SOUK_ID_H
#define SOUK_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SOUK_ULID_LEN 26
#define SOUK_ID_MAX   48 /* prefix (up to 15 chars, '_' included) + ULID + NUL */

/* Write "<prefix>_<ulid>" into out; prefix like "prd" (without the underscore).
 * Returns out. */
char *souk_id_new(char out[SOUK_ID_MAX], const char *prefix);
/* The same with a given time and 10 random bytes (used by generators and tests). */
char *souk_id_make(char out[SOUK_ID_MAX], const char *prefix, int64_t ms, const uint8_t rnd[10]);
/* True when s is "<prefix>_" followed by a well-formed ULID and nothing else. */
bool souk_id_valid(const char *s, const char *prefix);
/* The millisecond time inside a valid id, or -1. */
int64_t souk_id_time(const char *s);

#endif

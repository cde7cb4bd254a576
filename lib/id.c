/* id.c: prefixed ULIDs. 48 bits of milliseconds then 80 random bits, written as
 * 26 Crockford base32 characters, so ids sort by creation time. */
#include <sodium.h>
#include <string.h>

#include "souk/id.h"
#include "souk/souk.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

char *souk_id_make(char out[SOUK_ID_MAX], const char *prefix, int64_t ms, const uint8_t rnd[10])
{
    uint8_t b[16];
    size_t plen = strlen(prefix);
    if (plen > SOUK_ID_MAX - SOUK_ULID_LEN - 2)
        plen = SOUK_ID_MAX - SOUK_ULID_LEN - 2;
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)((uint64_t)ms >> (8 * (5 - i)));
    memcpy(b + 6, rnd, 10);

    memcpy(out, prefix, plen);
    out[plen] = '_';
    char *u = out + plen + 1;
    /* 128 bits as 26 characters of 5 bits: the first carries the top 3 bits. */
    for (int i = 0; i < SOUK_ULID_LEN; i++) {
        int bit = 128 - 5 * (SOUK_ULID_LEN - i); /* position of this char's first bit */
        unsigned v = 0;
        for (int k = 0; k < 5; k++, bit++) {
            v <<= 1;
            if (bit >= 0)
                v |= (b[bit / 8] >> (7 - bit % 8)) & 1;
        }
        u[i] = crockford[v];
    }
    u[SOUK_ULID_LEN] = '\0';
    return out;
}

char *souk_id_new(char out[SOUK_ID_MAX], const char *prefix)
{
    uint8_t rnd[10];
    souk_random(rnd, sizeof(rnd));
    return souk_id_make(out, prefix, souk_wall_ms(), rnd);
}

static int decode_char(char c)
{
    const char *p = strchr(crockford, c);
    return (c != '\0' && p != NULL) ? (int)(p - crockford) : -1;
}

bool souk_id_valid(const char *s, const char *prefix)
{
    size_t plen = strlen(prefix);
    if (strncmp(s, prefix, plen) != 0 || s[plen] != '_')
        return false;
    const char *u = s + plen + 1;
    if (strlen(u) != SOUK_ULID_LEN || u[0] > '7') /* 26 chars hold 130 bits: top 2 zero */
        return false;
    for (int i = 0; i < SOUK_ULID_LEN; i++)
        if (decode_char(u[i]) < 0)
            return false;
    return true;
}

int64_t souk_id_time(const char *s)
{
    const char *u = strchr(s, '_');
    if (u == NULL)
        return -1;
    u++;
    if (strlen(u) != SOUK_ULID_LEN)
        return -1;
    int64_t ms = 0;
    for (int i = 0; i < 10; i++) { /* 10 chars = 50 bits, the top 2 are zero */
        int v = decode_char(u[i]);
        if (v < 0)
            return -1;
        ms = (ms << 5) | v;
    }
    return ms;
}

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
    /* 128 bits as 26 characters of 5 bits, the last from the lowest bits: the first
     * carries the top 3 (a shift per character, not a loop per bit: ids are made per
     * request) */
    unsigned __int128 v = 0;
    for (int i = 0; i < 16; i++)
        v = v << 8 | b[i];
    for (int i = SOUK_ULID_LEN - 1; i >= 0; i--, v >>= 5)
        u[i] = crockford[(unsigned)v & 31];
    u[SOUK_ULID_LEN] = '\0';
    return out;
}

char *souk_id_new(char out[SOUK_ID_MAX], const char *prefix)
{
    uint8_t rnd[10];
    souk_random(rnd, sizeof(rnd));
    return souk_id_make(out, prefix, souk_wall_ms(), rnd);
}

/* The value of each Crockford character plus one (0: not one); crockford[] read back. */
static const unsigned char decode_table[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
    ['G'] = 17, ['H'] = 18, ['J'] = 19, ['K'] = 20, ['M'] = 21, ['N'] = 22, ['P'] = 23, ['Q'] = 24,
    ['R'] = 25, ['S'] = 26, ['T'] = 27, ['V'] = 28, ['W'] = 29, ['X'] = 30, ['Y'] = 31, ['Z'] = 32};

static int decode_char(char c) { return (int)decode_table[(unsigned char)c] - 1; }

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

/* realip.c: the client's real address from X-Forwarded-For, believed only from
 * trusted proxies (SOUK_TRUSTED_PROXIES). Addresses are compared as bytes (IPv4
 * as IPv4-mapped IPv6), so every spelling of an address is the same address. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/realip.h"
#include "souk/souk.h"

#define ENTRY_MAX 64 /* longest text of one list or header entry we look at */

struct block {
    uint8_t net[16];
    int bits; /* prefix length over the 128-bit (IPv4-mapped) form */
};

struct souk_realip {
    struct block b[SOUK_REALIP_MAX];
    size_t n;
};

/* Text to 16 bytes (IPv4 as ::ffff:a.b.c.d); *v4 tells which it was. */
static bool parse_addr(const char *s, uint8_t out[16], bool *v4)
{
    struct in_addr a4;
    if (inet_pton(AF_INET, s, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        *v4 = true;
        return true;
    }
    *v4 = false;
    return inet_pton(AF_INET6, s, out) == 1;
}

static bool in_block(const struct block *b, const uint8_t a[16])
{
    int full = b->bits / 8, rest = b->bits % 8;
    if (memcmp(a, b->net, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (b->net[full] & mask);
}

/* Copy s[0..n) trimmed of spaces into buf; false when too long or empty. */
static bool trimmed(const char *s, size_t n, char *buf, size_t cap)
{
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= cap)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return true;
}

int souk_realip_parse(const char *list, struct souk_realip **out, char *err, size_t errlen)
{
    struct souk_realip *t = souk_xcalloc(1, sizeof(*t));
    const char *p = list ? list : "";
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        char entry[ENTRY_MAX];
        if (trimmed(p, n, entry, sizeof(entry))) {
            char *slash = strchr(entry, '/');
            struct block b = {.bits = -1};
            bool v4 = false, ok;
            if (slash != NULL)
                *slash = '\0';
            ok = t->n < SOUK_REALIP_MAX && parse_addr(entry, b.net, &v4);
            if (ok && slash != NULL) {
                char *end;
                long bits = strtol(slash + 1, &end, 10);
                ok = slash[1] != '\0' && *end == '\0' && bits >= 0 && bits <= (v4 ? 32 : 128);
                b.bits = (int)bits + (v4 ? 96 : 0);
            } else if (ok) {
                b.bits = 128;
            }
            if (!ok) {
                if (slash != NULL)
                    *slash = '/';
                snprintf(err, errlen,
                         "SOUK_TRUSTED_PROXIES: \"%s\" is not an address or a CIDR block%s", entry,
                         t->n == SOUK_REALIP_MAX ? " (or one too many)" : "");
                free(t);
                return SOUK_EINVAL;
            }
            t->b[t->n++] = b;
        }
        p += n + (p[n] == ',');
    }
    *out = t;
    return 0;
}

void souk_realip_free(struct souk_realip *t) { free(t); }

static bool trusted_bytes(const struct souk_realip *t, const uint8_t a[16])
{
    for (size_t i = 0; t != NULL && i < t->n; i++)
        if (in_block(&t->b[i], a))
            return true;
    return false;
}

bool souk_realip_trusted(const struct souk_realip *t, const char *addr)
{
    uint8_t a[16];
    bool v4;
    return addr != NULL && parse_addr(addr, a, &v4) && trusted_bytes(t, a);
}

/* One X-Forwarded-For entry as an address: "a.b.c.d", "a.b.c.d:port", "::1",
 * "[::1]" or "[::1]:port". Canonical text into out; false when it is none. */
static bool entry_addr(const char *s, size_t n, uint8_t a[16], char *out, size_t cap)
{
    char buf[ENTRY_MAX];
    bool v4;
    if (!trimmed(s, n, buf, sizeof(buf)))
        return false;
    char *host = buf;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return false;
        *close = '\0';
        host = buf + 1;
    } else if (strchr(buf, '.') != NULL && strchr(buf, ':') != NULL) {
        *strchr(buf, ':') = '\0'; /* an IPv4 address with a port */
    }
    if (!parse_addr(host, a, &v4))
        return false;
    if (v4)
        return inet_ntop(AF_INET, a + 12, out, (socklen_t)cap) != NULL;
    return inet_ntop(AF_INET6, a, out, (socklen_t)cap) != NULL;
}

const char *souk_realip_resolve(const struct souk_realip *t, const char *peer, const char *xff,
                                char *out, size_t cap)
{
    uint8_t a[16];
    snprintf(out, cap, "%s", peer);
    if (xff == NULL || !souk_realip_trusted(t, peer))
        return out;
    size_t end = strlen(xff);
    while (end > 0) { /* right to left: the nearest hop first */
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        char addr[SOUK_ADDR_MAX];
        if (!entry_addr(xff + start, end - start, a, addr, sizeof(addr)))
            break;
        snprintf(out, cap, "%s", addr);
        if (!trusted_bytes(t, a))
            break;
        end = start > 0 ? start - 1 : 0;
    }
    return out;
}

/* realip.h: the client's real address behind trusted proxies. A service trusts
 * X-Forwarded-For only when the TCP peer is one of SOUK_TRUSTED_PROXIES (addresses
 * and CIDR blocks, IPv4 or IPv6); then it walks the header from the right, past
 * the proxies it trusts, to the first address it does not: the client. */
#ifndef SOUK_REALIP_H
#define SOUK_REALIP_H

#include <stdbool.h>
#include <stddef.h>

#define SOUK_REALIP_MAX 64 /* entries in a trusted list */
#define SOUK_ADDR_MAX   46 /* INET6_ADDRSTRLEN: an address as text */

struct souk_realip; /* a parsed list of trusted proxies */

/* Parse a comma-separated list ("10.0.0.0/8, 127.0.0.1, ::1, fd00::/8"; "" trusts
 * nobody). Returns 0 and *out (free with souk_realip_free), or SOUK_EINVAL with a
 * message in err naming the entry that is not an address or a CIDR block. */
int souk_realip_parse(const char *list, struct souk_realip **out, char *err, size_t errlen);
void souk_realip_free(struct souk_realip *t);

/* Is addr (text) one of the trusted? False for what is not an address. */
bool souk_realip_trusted(const struct souk_realip *t, const char *addr);

/* The client's address, in canonical text, into out (at least SOUK_ADDR_MAX):
 * the peer itself unless the peer is trusted and xff (the X-Forwarded-For value,
 * lines joined with ",") is not NULL; then the rightmost entry that is not a
 * trusted proxy, or the leftmost when all are. An entry that is not an address
 * ("unknown", garbage) ends the walk at the hop before it: what a trusted proxy
 * could not vouch for is never taken. Returns out. */
const char *souk_realip_resolve(const struct souk_realip *t, const char *peer, const char *xff,
                                char *out, size_t cap);

#endif

/* client_int.h: what the client module takes from the layers above it without naming
 * them: the source of this service's own token. Not a public contract. */
#ifndef SOUK_CLIENT_INT_H
#define SOUK_CLIENT_INT_H

#include <stddef.h>

#include "souk/client.h"

/* Copy this service's access token into out (cap bytes): 0 or a negative code. */
typedef int (*souk__token_source)(char *out, size_t cap);

/* The source of the token a call with service_token = true sends, set by the auth
 * module when it starts (the client is below auth and never calls it by name).
 * Until one is set such a call fails with SOUK_EUNAVAIL and sends nothing. */
void souk__client_set_token_source(souk__token_source fn);

#endif

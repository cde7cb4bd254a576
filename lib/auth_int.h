/* auth_int.h: what auth offers the rest of the kit only (the service main). */
#ifndef SOUK_AUTH_INT_H
#define SOUK_AUTH_INT_H

#include <stdio.h>

/* auth's configuration table (issuer, key set, this service's client), for
 * `<service> --help`. */
void souk__auth_print_config(FILE *out);

#endif

/* service.h: a service's main. souk_main() runs the service a struct souk_service
 * (server.h) describes: it loads the configuration (the kit's tables and the
 * service's), opens and migrates the database, starts the events machinery and the
 * listeners, and on SIGTERM drains in-flight requests before it stops. */
#ifndef SOUK_SERVICE_H
#define SOUK_SERVICE_H

#include "souk/server.h"

/* Run the service: `<binary>` (or `serve`) serves, `<binary> seed` seeds, `<binary>
 * migrate` migrates and exits, `<binary> config` (or --help) prints every variable
 * the service reads. Returns the process exit status: 0, 1 when it could not run,
 * 2 for a bad command line or configuration. */
int souk_main(int argc, char **argv, const struct souk_service *svc);

#endif

/* events.c: the outbox, inbox and transports of DESIGN §6. Until the event
 * machinery lands (issue 5), a service can emit nothing and consumes nothing. */
#include "souk/events.h"
#include "souk/server.h"
#include "souk/souk.h"

static const struct souk_route no_routes[] = {{NULL, NULL, NULL, 0, NULL, 0}};

int souk_event_emit(struct souk_db *db, const char *type, const char *subject, json_t *data)
{
    SOUK_UNUSED(db);
    SOUK_UNUSED(type);
    SOUK_UNUSED(subject);
    json_decref(data);
    return SOUK_EUNAVAIL;
}

int souk__events_init(const struct souk_service *svc, struct souk_db *db)
{
    SOUK_UNUSED(svc);
    SOUK_UNUSED(db);
    return 0;
}

const struct souk_route *souk__events_routes(void)
{
    return no_routes;
}

int souk__events_start(void)
{
    return 0;
}

void souk__events_stop(void)
{
}

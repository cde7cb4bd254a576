/* events_amqp.c: the "amqp" transport (placeholder until the relay lands). */
#include "events_int.h"
#include "souk/log.h"
#include "souk/souk.h"

int souk__amqp_start(void)
{
    souk_error("SOUK_EVENTS=amqp is not built yet", NULL);
    return SOUK_EUNAVAIL;
}

void souk__amqp_stop(void)
{
}

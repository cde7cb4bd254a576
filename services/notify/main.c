/* main.c: the notify service (DESIGN §1): turns the events a person should hear
 * about into in-app notifications and emails. */
#include "notify.h"
#include "souk/service.h"
#include "souk/grpc.h"
#include "souk/souk.h"

const char *notify_smtp_url, *notify_mail_dir, *notify_mail_from;
const char *notify_smtp_user, *notify_smtp_password, *notify_smtp_password_file,
    *notify_smtp_starttls;
int64_t notify_mail_attempts, notify_mail_retry_ms;

static const struct souk_conf config[] = {
    {"SOUK_SMTP_URL", SOUK_CONF_STR, "", 0, 1024, &notify_smtp_url,
     "smtp://host:port or smtps://…; empty: files under SOUK_MAIL_DIR"},
    {"SOUK_SMTP_USER", SOUK_CONF_STR, "", 0, 256, &notify_smtp_user, "SMTP login (AUTH)"},
    {"SOUK_SMTP_PASSWORD", SOUK_CONF_SECRET, "", 0, 1024, &notify_smtp_password,
     "SMTP password (or SOUK_SMTP_PASSWORD_FILE)"},
    {"SOUK_SMTP_PASSWORD_FILE", SOUK_CONF_STR, "", 0, 4096, &notify_smtp_password_file,
     "a file holding the SMTP password"},
    {"SOUK_SMTP_STARTTLS", SOUK_CONF_STR, "off", 2, 8, &notify_smtp_starttls,
     "off, try or require (smtp://: upgrade to TLS before anything is sent)"},
    {"SOUK_MAIL_DIR", SOUK_CONF_STR, "", 0, 1024, &notify_mail_dir,
     "where mails are written (default $SOUK_VAR/mail)"},
    {"SOUK_MAIL_FROM", SOUK_CONF_STR, "souk <no-reply@souk.local>", 3, 256, &notify_mail_from,
     "sender"},
    {"SOUK_MAIL_ATTEMPTS", SOUK_CONF_INT, "8", 1, 100, &notify_mail_attempts,
     "delivery attempts before giving up"},
    {"SOUK_MAIL_RETRY_MS", SOUK_CONF_INT, "1000", 10, 3600000, &notify_mail_retry_ms,
     "first retry delay (doubles)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const struct souk_route routes[] = {
    {"GET", "/api/v1/notifications", notifications_list, SOUK_USER, NULL, 0},
    {"POST", "/api/v1/notifications/{id}/read", notifications_read, SOUK_USER, NULL, 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};

static const struct souk_subscription subscriptions[] = {
    {"users", "user.registered", notify_on_event},
    {"orders", "order.confirmed", notify_on_event},
    {"orders", "order.rejected", notify_on_event},
    {"orders", "order.cancelled", notify_on_event},
    {"orders", "order.shipped", notify_on_event},
    {"payments", "payment.refunded", notify_on_event},
    {NULL, NULL, NULL},
};

/* No RPCs of its own (no service calls notify while answering): its gRPC port serves
 * the standard health service, so that every service is probed the same way. */
static const struct souk_grpc_service grpc = {.listen = "127.0.0.1:9086"};

static const struct souk_service notify = {
    .name = "notify",
    .listen = "127.0.0.1:8086",
    .routes = routes,
    .migrations = service_migrations,
    .config = config,
    .start = notify_mailer_start,
    .stop = notify_mailer_stop,
    .subscriptions = subscriptions,
    .grpc = &grpc,
};

int main(int argc, char **argv) { return souk_main(argc, argv, &notify); }

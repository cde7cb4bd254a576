/* main.c: the payments service: the card vault, the payment lifecycle behind
 * Idempotency-Keys, and the double-entry ledger (DESIGN §4, §7). */
#include <string.h>

#include "payments.h"
#include "souk/service.h"
#include "souk/db.h"
#include "souk/grpc.h"
#include "souk/log.h"
#include "souk/payments/v1/payments.pb-c.h"
#include "souk/souk.h"

#define CHARGE_SCOPE "payments:charge"
#define KEY_HEX_LEN  64

static const char *cfg_key;

static const struct souk_conf config[] = {
    {"SOUK_PAYMENTS_KEY", SOUK_CONF_STR, "", 0, KEY_HEX_LEN, &cfg_key,
     "card vault key, 64 hex digits; empty: generated into SOUK_VAR/keys/payments.key"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const struct souk_route routes[] = {
    {"POST", "/api/v1/payment-methods", pm_create, SOUK_USER, NULL, 4096},
    {"GET", "/api/v1/payment-methods", pm_list, SOUK_USER, NULL, 0},
    {"DELETE", "/api/v1/payment-methods/{id}", pm_delete, SOUK_USER, NULL, 0},
    {"GET", "/api/v1/payments", payments_list, SOUK_USER, NULL, 0},
    {"POST", "/internal/v1/payments", payments_authorize, SOUK_SERVICE, CHARGE_SCOPE, 4096},
    {"POST", "/internal/v1/payments/{id}/capture", payments_capture, SOUK_SERVICE, CHARGE_SCOPE,
     1024},
    {"POST", "/internal/v1/payments/{id}/void", payments_void, SOUK_SERVICE, CHARGE_SCOPE, 1024},
    {"POST", "/internal/v1/payments/{id}/refunds", payments_refund, SOUK_SERVICE, CHARGE_SCOPE,
     1024},
    {"GET", "/internal/v1/ledger", ledger_get, SOUK_SERVICE, CHARGE_SCOPE, 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};

/* Every RPC is answered by the route it names (the kit's bridge, docs/grpc.md); the
 * request's idempotency_key is the route's Idempotency-Key. */
static const struct souk_rpc_method rpcs[] = {
    SOUK_RPC_ROUTE("/souk.payments.v1.Payments/AuthorizePayment", "POST /internal/v1/payments",
                   souk__payments__v1__authorize_payment_request, souk__payments__v1__payment),
    SOUK_RPC_ROUTE("/souk.payments.v1.Payments/CapturePayment",
                   "POST /internal/v1/payments/{payment_id}/capture",
                   souk__payments__v1__capture_payment_request, souk__payments__v1__payment),
    SOUK_RPC_ROUTE("/souk.payments.v1.Payments/VoidPayment",
                   "POST /internal/v1/payments/{payment_id}/void",
                   souk__payments__v1__void_payment_request, souk__payments__v1__payment),
    SOUK_RPC_ROUTE("/souk.payments.v1.Payments/RefundPayment",
                   "POST /internal/v1/payments/{payment_id}/refunds",
                   souk__payments__v1__refund_payment_request, souk__payments__v1__refund),
    {NULL, NULL, 0, NULL, NULL, NULL, 0, NULL},
};

static const struct souk_grpc_service grpc = {
    .listen = "127.0.0.1:9085",
    .methods = rpcs,
    .descriptors = souk_proto_descriptors,
    .descriptors_len = &souk_proto_descriptors_len,
};

/* The vault key: configured, or (local mode only) generated once under SOUK_VAR. A
 * shared database (postgres) needs the same configured key on every replica. */
static int start(void)
{
    if (cfg_key[0] != '\0') {
        if (vault_key_hex(cfg_key) != 0) {
            souk_error("SOUK_PAYMENTS_KEY must be 64 hex digits", NULL);
            return SOUK_EINVAL;
        }
    } else if (souk_db_engine(souk_db_thread()) == SOUK_DB_POSTGRES) {
        souk_error("SOUK_PAYMENTS_KEY is required outside local mode", NULL);
        return SOUK_EINVAL;
    } else if (vault_key_file(souk_config_value("SOUK_VAR")) != 0) {
        return SOUK_EIO;
    }
    payments_total =
        souk_metric_counter("payments_total", "payment operations by outcome", "operation,outcome");
    int n = souk_idem_purge(souk_db_thread(), SOUK_IDEM_TTL_MS);
    return n < 0 ? n : 0;
}

static const struct souk_service payments = {
    .name = "payments",
    .listen = "127.0.0.1:8085",
    .routes = routes,
    .migrations = service_migrations,
    .config = config,
    .start = start,
    .publishes = true,
    .grpc = &grpc,
};

int main(int argc, char **argv) { return souk_main(argc, argv, &payments); }

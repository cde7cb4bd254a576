/* tests/unit/services/orders/machine.c: the checkout saga's state machine without a
 * server: every step against every kind of answer a peer can give (success,
 * business refusal, transient failure), the compensations they lead to, and the
 * shipping rule (the retry delay is the kit's: tests/unit/lib/backoff.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "orders.h"
#include "souk/souk.h"

/* main.c is not linked into unit tests: its configuration lives here. */
const char *orders_catalog_url, *orders_payments_url, *orders_cart_url, *orders_users_url;
const char *orders_catalog_rpc = "", *orders_payments_rpc = "", *orders_cart_rpc = "",
           *orders_users_rpc = "";
int64_t orders_wait_ms, orders_workers, orders_reservation_ttl, orders_call_timeout_ms;

static const struct {
    enum saga_step step;
    struct saga_answer a;
    const char *reason_in;
    bool retry;
    enum saga_step next;
    const char *status, *reason;
} cases[] = {
    /* reserve */
    {STEP_RESERVE, {0, 201, NULL, "held"}, NULL, false, STEP_AUTHORIZE, NULL, NULL},
    {STEP_RESERVE, {0, 200, NULL, "held"}, NULL, false, STEP_AUTHORIZE, NULL, NULL}, /* a replay */
    {STEP_RESERVE,
     {0, 409, "out_of_stock", NULL},
     NULL,
     false,
     STEP_DONE,
     "rejected",
     "out_of_stock"},
    {STEP_RESERVE,
     {0, 404, "product_not_found", NULL},
     NULL,
     false,
     STEP_DONE,
     "rejected",
     "product_unavailable"},
    {STEP_RESERVE,
     {0, 409, "reservation_mismatch", NULL},
     NULL,
     false,
     STEP_RELEASE,
     NULL,
     "reservation_failed"},
    {STEP_RESERVE, {SOUK_ETIMEDOUT, 0, NULL, NULL}, NULL, true, STEP_RESERVE, NULL, NULL},
    {STEP_RESERVE, {SOUK_EUNAVAIL, 0, NULL, NULL}, NULL, true, STEP_RESERVE, NULL, NULL},
    {STEP_RESERVE, {0, 503, "busy", NULL}, NULL, true, STEP_RESERVE, NULL, NULL},
    {STEP_RESERVE, {0, 401, NULL, NULL}, NULL, true, STEP_RESERVE, NULL, NULL},
    /* authorize */
    {STEP_AUTHORIZE, {0, 201, NULL, "authorized"}, NULL, false, STEP_COMMIT, NULL, NULL},
    {STEP_AUTHORIZE,
     {0, 201, NULL, "declined"},
     NULL,
     false,
     STEP_RELEASE,
     NULL,
     "payment_declined"},
    {STEP_AUTHORIZE, {0, 200, NULL, "weird"}, NULL, false, STEP_RELEASE, NULL, "payment_declined"},
    {STEP_AUTHORIZE, {0, 503, "processing_error", NULL}, NULL, true, STEP_AUTHORIZE, NULL, NULL},
    {STEP_AUTHORIZE,
     {0, 409, "idempotency_key_in_use", NULL},
     NULL,
     true,
     STEP_AUTHORIZE,
     NULL,
     NULL},
    {STEP_AUTHORIZE,
     {0, 404, "payment_method_not_found", NULL},
     NULL,
     false,
     STEP_RELEASE,
     NULL,
     "payment_method_invalid"},
    {STEP_AUTHORIZE,
     {0, 400, "validation_failed", NULL},
     NULL,
     false,
     STEP_RELEASE,
     NULL,
     "payment_failed"},
    {STEP_AUTHORIZE,
     {0, 409, "idempotency_key_reused", NULL},
     NULL,
     false,
     STEP_RELEASE,
     NULL,
     "payment_failed"},
    /* commit */
    {STEP_COMMIT, {0, 200, NULL, "committed"}, NULL, false, STEP_CAPTURE, NULL, NULL},
    {STEP_COMMIT,
     {0, 409, "reservation_expired", NULL},
     NULL,
     false,
     STEP_VOID,
     NULL,
     "reservation_expired"},
    {STEP_COMMIT,
     {0, 404, "reservation_not_found", NULL},
     NULL,
     false,
     STEP_VOID,
     NULL,
     "reservation_expired"},
    {STEP_COMMIT, {SOUK_EIO, 0, NULL, NULL}, NULL, true, STEP_COMMIT, NULL, NULL},
    /* capture */
    {STEP_CAPTURE, {0, 200, NULL, "captured"}, NULL, false, STEP_DONE, "confirmed", NULL},
    {STEP_CAPTURE, {0, 500, "internal", NULL}, NULL, true, STEP_CAPTURE, NULL, NULL},
    {STEP_CAPTURE,
     {0, 409, "illegal_transition", NULL},
     NULL,
     false,
     STEP_VOID,
     NULL,
     "capture_failed"},
    {STEP_RELEASE,
     {0, 409, "already_committed", NULL},
     "capture_failed",
     false,
     STEP_DONE,
     "cancelled",
     "capture_failed"},
    /* compensations keep the reason they were started with */
    {STEP_VOID,
     {0, 200, NULL, "voided"},
     "reservation_expired",
     false,
     STEP_RELEASE,
     NULL,
     "reservation_expired"},
    {STEP_VOID,
     {SOUK_ETIMEDOUT, 0, NULL, NULL},
     "reservation_expired",
     true,
     STEP_VOID,
     NULL,
     NULL},
    {STEP_RELEASE,
     {0, 200, NULL, "released"},
     "payment_declined",
     false,
     STEP_DONE,
     "rejected",
     "payment_declined"},
    {STEP_RELEASE, {0, 503, "busy", NULL}, "payment_declined", true, STEP_RELEASE, NULL, NULL},
    {STEP_RELEASE,
     {0, 409, "already_committed", NULL},
     "payment_declined",
     false,
     STEP_DONE,
     "cancelled",
     "payment_declined"},
    {STEP_REFUND,
     {0, 201, NULL, NULL},
     "cancelled_by_customer",
     false,
     STEP_DONE,
     "cancelled",
     "cancelled_by_customer"},
    {STEP_REFUND,
     {0, 400, "refund_exceeds_captured", NULL},
     "cancelled_by_customer",
     false,
     STEP_DONE,
     "cancelled",
     "cancelled_by_customer"},
    {STEP_REFUND, {0, 502, NULL, NULL}, "cancelled_by_customer", true, STEP_REFUND, NULL, NULL},
};

static void test_decide(void **state)
{
    (void)state;
    for (size_t i = 0; i < SOUK_ARRAY_LEN(cases); i++) {
        struct saga_move m;
        saga_decide(cases[i].step, &cases[i].a, cases[i].reason_in, &m);
        print_message("case %zu: %s %d %s\n", i, saga_step_name(cases[i].step), cases[i].a.http,
                      cases[i].a.code ? cases[i].a.code : "");
        assert_int_equal(m.retry, cases[i].retry);
        assert_int_equal(m.next, cases[i].next);
        if (cases[i].status == NULL)
            assert_null(m.status);
        else
            assert_string_equal(m.status, cases[i].status);
        if (!cases[i].retry) {
            if (cases[i].reason == NULL)
                assert_null(m.reason);
            else
                assert_string_equal(m.reason, cases[i].reason);
        }
        assert_int_equal(m.stock_committed,
                         cases[i].step == STEP_COMMIT && cases[i].next == STEP_CAPTURE);
    }
}

/* No path leads from a refusal to capture: the only way into STEP_CAPTURE is a
 * 2xx commit, and the only way into STEP_COMMIT is an "authorized" payment. */
static void test_no_capture_without_authorization(void **state)
{
    (void)state;
    static const int statuses[] = {0, 200, 201, 400, 401, 404, 409, 500, 503};
    static const char *const pay[] = {NULL, "authorized", "declined", "held"};
    for (int s = 0; s < STEP_COUNT; s++)
        for (size_t i = 0; i < SOUK_ARRAY_LEN(statuses); i++)
            for (size_t j = 0; j < SOUK_ARRAY_LEN(pay); j++) {
                struct saga_answer a = {statuses[i] == 0 ? SOUK_EIO : 0, statuses[i], NULL, pay[j]};
                struct saga_move m;
                saga_decide((enum saga_step)s, &a, NULL, &m);
                bool ok = statuses[i] >= 200 && statuses[i] < 300;
                if (m.next == STEP_COMMIT && s != STEP_COMMIT)
                    assert_true(s == STEP_AUTHORIZE && ok && strcmp(pay[j], "authorized") == 0);
                if (m.next == STEP_CAPTURE && s != STEP_CAPTURE)
                    assert_true(s == STEP_COMMIT && ok);
                if (m.status != NULL && strcmp(m.status, "confirmed") == 0)
                    assert_true(s == STEP_CAPTURE && ok);
            }
}

static void test_names_and_rules(void **state)
{
    (void)state;
    for (int s = 0; s < STEP_COUNT; s++)
        assert_int_equal(saga_step_parse(saga_step_name((enum saga_step)s)), s);
    assert_int_equal(saga_step_parse("nope"), -1);
    assert_int_equal(saga_step_parse(NULL), -1);
    assert_int_equal(orders_shipping_cents(0), 499);
    assert_int_equal(orders_shipping_cents(4999), 499);
    assert_int_equal(orders_shipping_cents(5000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_no_capture_without_authorization),
        cmocka_unit_test(test_names_and_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

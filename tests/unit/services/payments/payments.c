/* tests/unit/services/payments/payments.c: the payments service's rules without a
 * server: card digits, Luhn, brand, expiry and CVC; the simulated processor; the
 * payment state machine; sealing card numbers; the ledger balancing through every
 * posting and catching a broken one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "payments.h"
#include "souk/db.h"
#include "souk/souk.h"

static void test_digits(void **state)
{
    (void)state;
    char d[CARD_DIGITS_MAX + 1];
    assert_int_equal(card_digits("4242 4242-4242 4242", d), 16);
    assert_string_equal(d, "4242424242424242");
    assert_int_equal(card_digits("4242x4242", d), -1);
    assert_int_equal(card_digits("12345678901234567890", d), -1); /* 20 digits */
    assert_int_equal(card_digits("", d), 0);
}

static const struct {
    const char *number;
    bool luhn;
    const char *brand;
} cards[] = {
    {"4242424242424242", true, "visa"},
    {"4000000000000002", true, "visa"},
    {"4000000000009995", true, "visa"},
    {"4000000000000119", true, "visa"},
    {"4242424242424241", false, "visa"},
    {"5555555555554444", true, "mastercard"},
    {"2223003122003222", true, "mastercard"},
    {"378282246310005", true, "amex"},
    {"6011111111111117", true, "discover"},
    {"3056930009020004", true, "diners"},
    {"3566002020360505", true, "jcb"},
    {"6200000000000005", true, "unionpay"},
    {"9999999999999995", true, "unknown"},
    {"79927398713", true, "unknown"}, /* Luhn's own example; too short for a brand */
    {"79927398710", false, "unknown"},
};

static void test_luhn_and_brand(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cards) / sizeof(cards[0]); i++) {
        if (card_luhn_ok(cards[i].number) != cards[i].luhn)
            fail_msg("luhn(%s) should be %d", cards[i].number, cards[i].luhn);
        if (strcmp(card_brand(cards[i].number), cards[i].brand) != 0)
            fail_msg("brand(%s) = %s, want %s", cards[i].number, card_brand(cards[i].number),
                     cards[i].brand);
    }
    assert_false(card_luhn_ok(""));
    assert_false(card_luhn_ok("42a2"));
}

static void test_expiry_and_cvc(void **state)
{
    (void)state;
    assert_false(card_expired(11, 2026, 11, 2026)); /* valid through its month */
    assert_true(card_expired(10, 2026, 11, 2026));
    assert_true(card_expired(12, 2025, 1, 2026));
    assert_false(card_expired(1, 2027, 12, 2026));
    assert_true(card_cvc_ok("123"));
    assert_true(card_cvc_ok("0123"));
    assert_false(card_cvc_ok("12"));
    assert_false(card_cvc_ok("12345"));
    assert_false(card_cvc_ok("12a"));
    assert_false(card_cvc_ok(""));
}

static void test_processor(void **state)
{
    (void)state;
    const char *code;
    assert_int_equal(processor_authorize("4242424242424242", 0, &code), PROC_APPROVED);
    assert_null(code);
    assert_int_equal(processor_authorize("4000000000000002", 0, &code), PROC_DECLINED);
    assert_string_equal(code, "card_declined");
    assert_int_equal(processor_authorize("4000000000009995", 3, &code), PROC_DECLINED);
    assert_string_equal(code, "insufficient_funds");
    assert_int_equal(processor_authorize("4000000000000119", 0, &code), PROC_TRANSIENT);
    assert_string_equal(code, "processing_error");
    assert_int_equal(processor_authorize("4000000000000119", 1, &code), PROC_APPROVED);
    assert_int_equal(processor_authorize("5555555555554444", 0, &code), PROC_APPROVED);
}

static void test_state_machine(void **state)
{
    (void)state;
    static const struct {
        enum pay_status from;
        enum pay_op op;
        int64_t amount, captured, refunded;
        enum pay_verdict verdict;
        enum pay_status to;
    } t[] = {
        {PAY_AUTHORIZED, OP_CAPTURE, 0, 0, 0, PAY_OK, PAY_CAPTURED},
        {PAY_AUTHORIZED, OP_VOID, 0, 0, 0, PAY_OK, PAY_VOIDED},
        {PAY_AUTHORIZED, OP_REFUND, 100, 0, 0, PAY_ILLEGAL, PAY_AUTHORIZED},
        {PAY_CAPTURED, OP_CAPTURE, 0, 1000, 0, PAY_NOOP, PAY_CAPTURED},
        {PAY_CAPTURED, OP_VOID, 0, 1000, 0, PAY_ILLEGAL, PAY_CAPTURED},
        {PAY_CAPTURED, OP_REFUND, 400, 1000, 0, PAY_OK, PAY_PARTIALLY_REFUNDED},
        {PAY_CAPTURED, OP_REFUND, 1000, 1000, 0, PAY_OK, PAY_REFUNDED},
        {PAY_CAPTURED, OP_REFUND, 1001, 1000, 0, PAY_TOO_MUCH, PAY_CAPTURED},
        {PAY_PARTIALLY_REFUNDED, OP_REFUND, 600, 1000, 400, PAY_OK, PAY_REFUNDED},
        {PAY_PARTIALLY_REFUNDED, OP_REFUND, 601, 1000, 400, PAY_TOO_MUCH, PAY_PARTIALLY_REFUNDED},
        {PAY_PARTIALLY_REFUNDED, OP_CAPTURE, 0, 1000, 400, PAY_NOOP, PAY_PARTIALLY_REFUNDED},
        {PAY_REFUNDED, OP_REFUND, 1, 1000, 1000, PAY_TOO_MUCH, PAY_REFUNDED},
        {PAY_REFUNDED, OP_VOID, 0, 1000, 1000, PAY_ILLEGAL, PAY_REFUNDED},
        {PAY_VOIDED, OP_VOID, 0, 0, 0, PAY_NOOP, PAY_VOIDED},
        {PAY_VOIDED, OP_CAPTURE, 0, 0, 0, PAY_ILLEGAL, PAY_VOIDED},
        {PAY_VOIDED, OP_REFUND, 1, 0, 0, PAY_ILLEGAL, PAY_VOIDED},
        {PAY_DECLINED, OP_CAPTURE, 0, 0, 0, PAY_ILLEGAL, PAY_DECLINED},
        {PAY_DECLINED, OP_VOID, 0, 0, 0, PAY_ILLEGAL, PAY_DECLINED},
        {PAY_DECLINED, OP_REFUND, 1, 0, 0, PAY_ILLEGAL, PAY_DECLINED},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        enum pay_status next;
        enum pay_verdict v =
            pay_next(t[i].from, t[i].op, t[i].amount, t[i].captured, t[i].refunded, &next);
        if (v != t[i].verdict || next != t[i].to)
            fail_msg("case %zu: %s op %d gave verdict %d → %s", i, pay_status_name(t[i].from),
                     (int)t[i].op, (int)v, pay_status_name(next));
    }
    for (int s = 0; s < PAY_STATUS_COUNT; s++)
        assert_int_equal(pay_status_parse(pay_status_name((enum pay_status)s)), s);
    assert_int_equal(pay_status_parse("paid"), -1);
}

/* A sealed number opens to itself, differs every time, and holds no run of digits. */
static void test_vault(void **state)
{
    (void)state;
    char out[CARD_DIGITS_MAX + 1];
    assert_int_equal(vault_key_hex("zz"), SOUK_EINVAL);
    assert_int_equal(
        vault_key_hex("000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"), 0);
    char *a = vault_seal("4242424242424242"), *b = vault_seal("4242424242424242");
    assert_string_not_equal(a, b);
    assert_null(strstr(a, "4242"));
    assert_int_equal(vault_open(a, out, sizeof(out)), 0);
    assert_string_equal(out, "4242424242424242");
    a[5] = a[5] == 'A' ? 'B' : 'A'; /* tampered: refused */
    assert_int_not_equal(vault_open(a, out, sizeof(out)), 0);
    assert_int_not_equal(vault_open("short", out, sizeof(out)), 0);
    free(a);
    free(b);
}

static int db_setup(void **state)
{
    struct souk_db *db;
    assert_int_equal(souk_db_open(&db, "sqlite::memory:"), 0);
    assert_int_equal(souk_db_migrate(db, service_migrations), 0);
    *state = db;
    return 0;
}

static int db_teardown(void **state)
{
    souk_db_close(*state);
    return 0;
}

static void add_payment(struct souk_db *db, const char *id, const char *status, int64_t amount,
                        int64_t captured, int64_t refunded)
{
    assert_int_equal(
        souk_db_run(db,
                    "INSERT INTO payments (id, order_id, user_id,"
                    " payment_method_id, status, amount_cents, captured_cents,"
                    " refunded_cents, currency, created_at, updated_at)"
                    " VALUES (?, 'ord_1', 'usr_1', 'pm_1', ?, ?, ?, ?, 'USD', 't', 't')",
                    "ssiii", id, status, amount, captured, refunded),
        1);
}

static bool flag(json_t *report, const char *name)
{
    return json_is_true(json_object_get(report, name));
}

static int64_t balance(json_t *report, const char *account)
{
    json_t *a = json_object_get(json_object_get(report, "accounts"), account);
    return json_integer_value(json_object_get(a, "balance_cents"));
}

static void test_ledger_balances(void **state)
{
    struct souk_db *db = *state;
    /* pay_a: authorized 1000, captured, 300 refunded; pay_b: authorized 500, voided;
     * pay_c: authorized 200, still held */
    add_payment(db, "pay_a", "partially_refunded", 1000, 1000, 300);
    add_payment(db, "pay_b", "voided", 500, 0, 0);
    add_payment(db, "pay_c", "authorized", 200, 0, 0);
    assert_int_equal(ledger_post(db, "pay_a", "authorize", ACCT_CUSTOMER, ACCT_HOLDS, 1000, "USD"),
                     0);
    assert_int_equal(ledger_post(db, "pay_a", "capture", ACCT_HOLDS, ACCT_REVENUE, 1000, "USD"), 0);
    assert_int_equal(ledger_post(db, "pay_a", "refund", ACCT_REVENUE, ACCT_REFUNDS, 300, "USD"), 0);
    assert_int_equal(ledger_post(db, "pay_b", "authorize", ACCT_CUSTOMER, ACCT_HOLDS, 500, "USD"),
                     0);
    assert_int_equal(ledger_post(db, "pay_b", "void", ACCT_HOLDS, ACCT_CUSTOMER, 500, "USD"), 0);
    assert_int_equal(ledger_post(db, "pay_c", "authorize", ACCT_CUSTOMER, ACCT_HOLDS, 200, "USD"),
                     0);
    assert_int_equal(ledger_post(db, "pay_c", "capture", ACCT_HOLDS, ACCT_REVENUE, 0, "USD"),
                     SOUK_EINVAL);
    json_t *rep;
    assert_int_equal(ledger_report(db, &rep), 0);
    assert_non_null(rep);
    assert_true(flag(rep, "balanced"));
    assert_true(flag(rep, "consistent"));
    assert_int_equal(json_integer_value(json_object_get(rep, "debits_cents")), 3500);
    assert_int_equal(json_integer_value(json_object_get(rep, "credits_cents")), 3500);
    assert_int_equal(balance(rep, ACCT_CUSTOMER), -1200);
    assert_int_equal(balance(rep, ACCT_HOLDS), 200);
    assert_int_equal(balance(rep, ACCT_REVENUE), 700);
    assert_int_equal(balance(rep, ACCT_REFUNDS), 300);
    json_decref(rep);

    /* a lone line (money from nowhere) and a row that disagrees with its postings */
    assert_int_equal(
        souk_db_run(db,
                    "INSERT INTO ledger_entries (txn_id, payment_id, kind, account,"
                    " debit_cents, currency, created_at) VALUES"
                    " ('ltx_x', 'pay_c', 'capture', 'merchant_revenue', 50, 'USD', 't')",
                    ""),
        1);
    assert_int_equal(ledger_report(db, &rep), 0);
    assert_false(flag(rep, "balanced"));
    assert_false(flag(rep, "consistent"));
    json_t *bad = json_object_get(rep, "inconsistent_payments");
    assert_int_equal(json_array_size(bad), 1);
    assert_string_equal(json_string_value(json_array_get(bad, 0)), "pay_c");
    json_decref(rep);
}

/* The schema refuses what the code must never do, as a second line of defence. */
static void test_schema_invariants(void **state)
{
    struct souk_db *db = *state;
    add_payment(db, "pay_d", "captured", 1000, 1000, 0);
    assert_int_equal(
        souk_db_run(db, "UPDATE payments SET refunded_cents = 1001 WHERE id = 'pay_d'", ""),
        SOUK_ECONFLICT);
    assert_int_equal(souk_db_run(db, "UPDATE payments SET status = 'paid' WHERE id = 'pay_d'", ""),
                     SOUK_ECONFLICT);
    assert_int_equal(souk_db_run(db,
                                 "INSERT INTO ledger_entries (txn_id, payment_id, kind, account,"
                                 " debit_cents, credit_cents, currency, created_at) VALUES"
                                 " ('ltx_y', 'pay_d', 'x', 'refunds', 5, 5, 'USD', 't')",
                                 ""),
                     SOUK_ECONFLICT);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digits),
        cmocka_unit_test(test_luhn_and_brand),
        cmocka_unit_test(test_expiry_and_cvc),
        cmocka_unit_test(test_processor),
        cmocka_unit_test(test_state_machine),
        cmocka_unit_test(test_vault),
        cmocka_unit_test_setup_teardown(test_ledger_balances, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(test_schema_invariants, db_setup, db_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* payments.h: what the payments service's files share: the handlers main.c routes
 * to, the card rules and simulated processor (card.c), the vault's sealing
 * (vault.c), the payment state machine (payments.c) and the ledger (ledger.c). */
#ifndef PAYMENTS_H
#define PAYMENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "souk/idempotency.h"
#include "souk/metrics.h"
#include "souk/server.h"

#define CARD_DIGITS_MIN 12
#define CARD_DIGITS_MAX 19
#define CARD_NUMBER_MAX 32        /* digits plus spaces or dashes as typed */
#define AMOUNT_MAX      100000000 /* one million in major units, per payment */

/* ---- card.c: pure rules, no I/O ---- */

/* Copy the digits of text (spaces and dashes skipped) into out. Returns the digit
 * count, or -1 for any other character or more than CARD_DIGITS_MAX digits. */
int card_digits(const char *text, char out[CARD_DIGITS_MAX + 1]);
bool card_luhn_ok(const char *digits);
/* "visa", "mastercard", "amex", "discover", "diners", "jcb", "unionpay" or "unknown". */
const char *card_brand(const char *digits);
/* Is a card expiring at the end of (exp_month, exp_year) expired in (month, year)? */
bool card_expired(int exp_month, int exp_year, int month, int year);
bool card_cvc_ok(const char *cvc);

enum proc_outcome { PROC_APPROVED, PROC_DECLINED, PROC_TRANSIENT };
/* The simulated card processor's authorization. attempt counts the earlier attempts
 * with the same idempotency key that failed transiently (0 on the first). The card
 * 4000000000000119 fails transiently on attempt 0 and is approved from attempt 1.
 * *decline_code is set for PROC_DECLINED and PROC_TRANSIENT. */
enum proc_outcome processor_authorize(const char *digits, int64_t attempt,
                                      const char **decline_code);

/* ---- vault.c ---- */

/* Set the 32-byte secretbox key from 64 hex digits. 0 or SOUK_EINVAL. */
int vault_key_hex(const char *hex);
/* Read var_dir/keys/payments.key, creating it (0600, random) when absent. */
int vault_key_file(const char *var_dir);
/* base64url(nonce || secretbox(digits)), malloc'd. */
char *vault_seal(const char *digits);
/* Open a sealed number into out (cap >= CARD_DIGITS_MAX + 1). 0 or a negative code. */
int vault_open(const char *box, char *out, size_t cap);

int pm_create(struct souk_req *r);
int pm_list(struct souk_req *r);
int pm_delete(struct souk_req *r);

/* ---- payments.c ---- */

enum pay_status {
    PAY_AUTHORIZED,
    PAY_DECLINED,
    PAY_CAPTURED,
    PAY_PARTIALLY_REFUNDED,
    PAY_REFUNDED,
    PAY_VOIDED,
    PAY_STATUS_COUNT
};
enum pay_op { OP_CAPTURE, OP_VOID, OP_REFUND };
enum pay_verdict {
    PAY_OK,       /* apply: *next is the new status */
    PAY_NOOP,     /* already done (capture of a captured payment): answer as it is */
    PAY_ILLEGAL,  /* 409 illegal_transition */
    PAY_TOO_MUCH, /* refund above what is captured and not yet refunded: 400 */
};
const char *pay_status_name(enum pay_status s);
int pay_status_parse(const char *name); /* enum value or -1 */
/* The state machine. amount is the refund's; captured/refunded are the payment's. */
enum pay_verdict pay_next(enum pay_status s, enum pay_op op, int64_t amount, int64_t captured,
                          int64_t refunded, enum pay_status *next);

int payments_authorize(struct souk_req *r);
int payments_capture(struct souk_req *r);
int payments_void(struct souk_req *r);
int payments_refund(struct souk_req *r);
int payments_list(struct souk_req *r);

extern struct souk_metric *payments_total; /* {operation,outcome} */

/* ---- ledger.c ---- */

#define ACCT_CUSTOMER "customer_funds"
#define ACCT_HOLDS    "authorized_holds"
#define ACCT_REVENUE  "merchant_revenue"
#define ACCT_REFUNDS  "refunds"

/* Inside the caller's transaction: move amount from the credited account to the
 * debited one as one balanced posting (two lines sharing a txn id). */
int ledger_post(struct souk_db *db, const char *payment_id, const char *kind,
                const char *credit_account, const char *debit_account, int64_t amount,
                const char *currency);
/* Balances per account, totals, and every payment whose lines do not balance or do
 * not match its amounts, into *report: 0, or the database's error. */
int ledger_report(struct souk_db *db, json_t **report);
int ledger_get(struct souk_req *r);

#endif

/* ledger.c: the double-entry ledger. Every posting moves money from the credited
 * account to the debited one as two lines that balance; an account's balance is
 * its debits minus its credits (the money in it now). Accounts:
 *   customer_funds    the card holders' money (negative: what we took or hold)
 *   authorized_holds  authorized, not yet captured or voided
 *   merchant_revenue  captured and not refunded
 *   refunds           given back to card holders
 * authorize: customer_funds → authorized_holds; capture: authorized_holds →
 * merchant_revenue; void: authorized_holds → customer_funds; refund:
 * merchant_revenue → refunds. */
#include <string.h>

#include "payments.h"
#include "souk/handler.h"
#include "souk/id.h"
#include "souk/log.h"
#include "souk/souk.h"

int ledger_post(struct souk_db *db, const char *payment_id, const char *kind,
                const char *credit_account, const char *debit_account, int64_t amount,
                const char *currency)
{
    static const char sql[] =
        "INSERT INTO ledger_entries (txn_id, payment_id, kind, account, debit_cents,"
        " credit_cents, currency, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    char txn[SOUK_ID_MAX], now[SOUK_TIME_MAX];
    if (amount <= 0)
        return SOUK_EINVAL;
    souk_id_new(txn, "ltx");
    souk_time_now(now);
    int rc = souk_db_run(db, sql, "ssssiiss", txn, payment_id, kind, debit_account, amount,
                         (int64_t)0, currency, now);
    if (rc >= 0)
        rc = souk_db_run(db, sql, "ssssiiss", txn, payment_id, kind, credit_account, (int64_t)0,
                         amount, currency, now);
    return rc < 0 ? rc : 0;
}

/* Append column 0 of every row of sql to arr. */
static int collect(struct souk_db *db, const char *sql, json_t *arr)
{
    struct souk_stmt *st = souk_db_query(db, sql, "");
    if (st == NULL)
        return SOUK_EDB;
    int rc;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW)
        json_array_append_new(arr, json_string(souk_stmt_text(st, 0)));
    return rc;
}

static int accounts(struct souk_db *db, json_t *out, int64_t *debits, int64_t *credits)
{
    static const char *const names[] = {ACCT_CUSTOMER, ACCT_HOLDS, ACCT_REVENUE, ACCT_REFUNDS};
    for (size_t i = 0; i < SOUK_ARRAY_LEN(names); i++)
        json_object_set_new(
            out, names[i],
            json_pack("{s:i,s:i,s:i}", "debit_cents", 0, "credit_cents", 0, "balance_cents", 0));
    struct souk_stmt *st = souk_db_query(
        db,
        "SELECT account, sum(debit_cents), sum(credit_cents) FROM ledger_entries GROUP BY account",
        "");
    if (st == NULL)
        return SOUK_EDB;
    int rc;
    while ((rc = souk_stmt_step(st)) == SOUK_ROW) {
        int64_t d = souk_stmt_int(st, 1), c = souk_stmt_int(st, 2);
        *debits += d;
        *credits += c;
        json_object_set_new(out, souk_stmt_text(st, 0),
                            json_pack("{s:I,s:I,s:I}", "debit_cents", (json_int_t)d, "credit_cents",
                                      (json_int_t)c, "balance_cents", (json_int_t)(d - c)));
    }
    return rc;
}

/* Payments whose own lines do not balance, or whose postings do not add up to the
 * amounts on the payment row (holds = amount while authorized, revenue = captured −
 * refunded, refunds = refunded): either would mean money created or lost. */
static const char unbalanced_sql[] = "SELECT payment_id FROM ledger_entries GROUP BY payment_id"
                                     " HAVING sum(debit_cents) <> sum(credit_cents)"
                                     " UNION SELECT txn_id FROM ledger_entries GROUP BY txn_id"
                                     " HAVING sum(debit_cents) <> sum(credit_cents)";
static const char inconsistent_sql[] =
    "SELECT p.id FROM payments p LEFT JOIN ("
    "  SELECT payment_id,"
    "   sum(CASE WHEN account = 'authorized_holds' THEN debit_cents - credit_cents ELSE 0 END) AS "
    "holds,"
    "   sum(CASE WHEN account = 'merchant_revenue' THEN debit_cents - credit_cents ELSE 0 END) AS "
    "revenue,"
    "   sum(CASE WHEN account = 'refunds' THEN debit_cents - credit_cents ELSE 0 END) AS refunded"
    "  FROM ledger_entries GROUP BY payment_id) l ON l.payment_id = p.id"
    " WHERE coalesce(l.holds, 0) <> CASE WHEN p.status = 'authorized' THEN p.amount_cents ELSE 0 "
    "END"
    "  OR coalesce(l.revenue, 0) <> p.captured_cents - p.refunded_cents"
    "  OR coalesce(l.refunded, 0) <> p.refunded_cents"
    " ORDER BY p.id LIMIT 100";

int ledger_report(struct souk_db *db, json_t **report)
{
    json_t *acc = json_object(), *unbalanced = json_array(), *inconsistent = json_array();
    int64_t debits = 0, credits = 0, payments = 0;
    *report = NULL;
    /* one read transaction, so the report is a single consistent snapshot */
    int rc = souk_db_begin_mode(db, SOUK_TX_READ);
    if (rc == 0)
        rc = accounts(db, acc, &debits, &credits);
    if (rc >= 0)
        rc = collect(db, unbalanced_sql, unbalanced);
    if (rc >= 0)
        rc = collect(db, inconsistent_sql, inconsistent);
    if (rc >= 0)
        rc = souk_db_int(db, &payments, "SELECT count(*) FROM payments", "");
    souk_db_rollback(db);
    if (rc < 0)
        goto out;
    rc = 0;
    bool balanced = debits == credits && json_array_size(unbalanced) == 0;
    *report =
        json_pack("{s:b,s:b,s:I,s:I,s:O,s:O,s:O,s:I}", "balanced", balanced, "consistent",
                  json_array_size(inconsistent) == 0, "debits_cents", (json_int_t)debits,
                  "credits_cents", (json_int_t)credits, "accounts", acc, "unbalanced", unbalanced,
                  "inconsistent_payments", inconsistent, "payments", (json_int_t)payments);
out:
    json_decref(acc);
    json_decref(unbalanced);
    json_decref(inconsistent);
    return rc;
}

int ledger_get(struct souk_req *r)
{
    json_t *report;
    int rc = ledger_report(souk_req_db(r), &report);
    if (rc != 0)
        return souk_handler_db_error(r, rc, "cannot read the ledger");
    if (!json_is_true(json_object_get(report, "balanced")) ||
        !json_is_true(json_object_get(report, "consistent")))
        souk_error("ledger does not balance", "{s:O,s:O}", "unbalanced",
                   json_object_get(report, "unbalanced"), "inconsistent",
                   json_object_get(report, "inconsistent_payments"));
    souk_reply_json(r, report);
    return 200;
}

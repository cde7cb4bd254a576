/* machine.c: the checkout saga as a pure state machine (DESIGN §5): given the step
 * that ran and what the peer answered, the next step, the order's new status and
 * its reason. No I/O here, so every transition is unit-tested
 * (tests/unit/services/orders/machine.c). */
#include <string.h>

#include "orders.h"
#include "souk/souk.h"

static const char *const step_names[STEP_COUNT] = {
    [STEP_RESERVE] = "reserve", [STEP_AUTHORIZE] = "authorize", [STEP_COMMIT] = "commit",
    [STEP_CAPTURE] = "capture", [STEP_RELEASE] = "release",     [STEP_VOID] = "void",
    [STEP_REFUND] = "refund",   [STEP_DONE] = "done",
};

const char *saga_step_name(enum saga_step s) { return s < STEP_COUNT ? step_names[s] : "unknown"; }

int saga_step_parse(const char *name)
{
    for (int i = 0; name != NULL && i < STEP_COUNT; i++)
        if (strcmp(step_names[i], name) == 0)
            return i;
    return -1;
}

int64_t orders_shipping_cents(int64_t subtotal_cents)
{
    return subtotal_cents >= SHIPPING_FREE_FROM_CENTS ? 0 : SHIPPING_FLAT_CENTS;
}

static bool code_is(const struct saga_answer *a, const char *code)
{
    return a->code != NULL && strcmp(a->code, code) == 0;
}

bool saga_transient(const struct saga_answer *a)
{
    if (a->rc != 0 || a->http == 0 || a->http >= 500)
        return true;
    /* 401/403: our service token expired or the users service restarted with new
     * keys; the kit renews the token, so the same call can succeed later */
    if (a->http == 401 || a->http == 403 || a->http == 408 || a->http == 429)
        return true;
    return a->http == 409 && code_is(a, "idempotency_key_in_use");
}

static void go(struct saga_move *m, enum saga_step next, const char *status, const char *reason)
{
    m->next = next;
    m->status = status;
    m->reason = reason;
}

void saga_decide(enum saga_step step, const struct saga_answer *a, const char *reason,
                 struct saga_move *m)
{
    memset(m, 0, sizeof(*m));
    m->next = step;
    if (saga_transient(a)) {
        m->retry = true;
        return;
    }
    bool ok = a->http >= 200 && a->http < 300;
    switch (step) {
    case STEP_RESERVE:
        if (ok)
            go(m, STEP_AUTHORIZE, NULL, NULL);
        else if (code_is(a, "out_of_stock"))
            go(m, STEP_DONE, "rejected", "out_of_stock"); /* nothing was held */
        else if (a->http == 404)
            go(m, STEP_DONE, "rejected", "product_unavailable");
        else /* mismatch, released, bad request: make sure nothing stays held */
            go(m, STEP_RELEASE, NULL, "reservation_failed");
        break;
    case STEP_AUTHORIZE:
        if (ok && a->pay_status != NULL && strcmp(a->pay_status, "authorized") == 0)
            go(m, STEP_COMMIT, NULL, NULL);
        else if (ok) /* declined (or an unknown verdict: never capture it) */
            go(m, STEP_RELEASE, NULL, "payment_declined");
        else if (a->http == 404)
            go(m, STEP_RELEASE, NULL, "payment_method_invalid");
        else
            go(m, STEP_RELEASE, NULL, "payment_failed");
        break;
    case STEP_COMMIT:
        if (ok) {
            go(m, STEP_CAPTURE, NULL, NULL);
            m->stock_committed = true;
        } else { /* expired and gone, or unknown: undo the authorization */
            go(m, STEP_VOID, NULL, "reservation_expired");
        }
        break;
    case STEP_CAPTURE:
        if (ok)
            go(m, STEP_DONE, "confirmed", NULL);
        else /* cannot be captured: void the hold, then the release finds the stock
              * committed and the cancellation puts it back on hand */
            go(m, STEP_VOID, NULL, "capture_failed");
        break;
    case STEP_VOID:
        /* voided, or not voidable because never captured: either way no money moved */
        go(m, STEP_RELEASE, NULL, reason ? reason : "payment_failed");
        break;
    case STEP_RELEASE:
        if (a->http == 409 && code_is(a, "already_committed"))
            /* cannot happen in this saga (release never follows commit); if it does,
             * the cancellation event makes the catalog put the stock back */
            go(m, STEP_DONE, "cancelled", reason ? reason : "reservation_failed");
        else
            go(m, STEP_DONE, "rejected", reason ? reason : "reservation_failed");
        break;
    case STEP_REFUND:
        /* refunded, or nothing left to refund (400 refund_exceeds_captured) */
        go(m, STEP_DONE, "cancelled", reason ? reason : "cancelled");
        break;
    case STEP_DONE:
    case STEP_COUNT:
        go(m, STEP_DONE, NULL, NULL);
        break;
    }
}

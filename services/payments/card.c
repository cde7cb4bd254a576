/* card.c: card rules with no I/O (digits, Luhn, brand from the number, expiry, CVC
 * shape) and the simulated card processor driven by DESIGN §4's test cards. */
#include <string.h>

#include "payments.h"

int card_digits(const char *text, char out[CARD_DIGITS_MAX + 1])
{
    int n = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == ' ' || *p == '-')
            continue;
        if (*p < '0' || *p > '9' || n == CARD_DIGITS_MAX) {
            out[0] = '\0';
            return -1;
        }
        out[n++] = *p;
    }
    out[n] = '\0';
    return n;
}

bool card_luhn_ok(const char *digits)
{
    size_t n = strlen(digits);
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = digits[n - 1 - i] - '0';
        if (d < 0 || d > 9)
            return false;
        if (i % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    return n > 0 && sum % 10 == 0;
}

/* The number formed by the first n digits (n <= 6). */
static int prefix(const char *digits, int n)
{
    int v = 0;
    for (int i = 0; i < n && digits[i] != '\0'; i++)
        v = v * 10 + (digits[i] - '0');
    return v;
}

const char *card_brand(const char *digits)
{
    int p1 = prefix(digits, 1), p2 = prefix(digits, 2), p3 = prefix(digits, 3),
        p4 = prefix(digits, 4);
    size_t n = strlen(digits);
    if (n < CARD_DIGITS_MIN)
        return "unknown";
    if (p2 == 34 || p2 == 37)
        return "amex";
    if (p1 == 4)
        return "visa";
    if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))
        return "mastercard";
    if (p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649))
        return "discover";
    if (p2 == 36 || p2 == 38 || p2 == 39 || (p3 >= 300 && p3 <= 305))
        return "diners";
    if (p4 >= 3528 && p4 <= 3589)
        return "jcb";
    if (p2 == 62)
        return "unionpay";
    return "unknown";
}

bool card_expired(int exp_month, int exp_year, int month, int year)
{
    return exp_year < year || (exp_year == year && exp_month < month);
}

bool card_cvc_ok(const char *cvc)
{
    size_t n = strlen(cvc);
    if (n < 3 || n > 4)
        return false;
    for (size_t i = 0; i < n; i++)
        if (cvc[i] < '0' || cvc[i] > '9')
            return false;
    return true;
}

/* DESIGN §4's test cards. Any other valid card is approved. */
enum proc_outcome processor_authorize(const char *digits, int64_t attempt,
                                      const char **decline_code)
{
    *decline_code = NULL;
    if (strcmp(digits, "4000000000000002") == 0) {
        *decline_code = "card_declined";
        return PROC_DECLINED;
    }
    if (strcmp(digits, "4000000000009995") == 0) {
        *decline_code = "insufficient_funds";
        return PROC_DECLINED;
    }
    if (strcmp(digits, "4000000000000119") == 0 && attempt == 0) {
        /* the first attempt of each idempotency key fails; its retry succeeds, so a
         * caller that retries with the same key always ends definitively */
        *decline_code = "processing_error";
        return PROC_TRANSIENT;
    }
    return PROC_APPROVED;
}

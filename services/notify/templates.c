/* templates.c: the subject and text body of each notification, per event type.
 * A template names event data fields as {{field}}; {{field|money}} shows integer
 * cents with the event's currency. Unknown fields render empty, never fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify.h"
#include "souk/souk.h"

#define FIELD_MAX 64

struct tpl {
    const char *type, *subject, *body;
};

static const struct tpl templates[] = {
    {"user.registered", "Welcome to souk, {{name}}",
     "Hello {{name}},\n\nyour souk account for {{email}} is ready. Happy shopping!\n\n-- souk\n"},
    {"order.confirmed", "Your order {{order_id}} is confirmed",
     "Hello {{name}},\n\nthank you for your order {{order_id}}.\n"
     "Total charged: {{total_cents|money}}.\nWe will tell you when it ships.\n\n-- souk\n"},
    {"order.rejected", "Your order {{order_id}} could not be placed",
     "Hello {{name}},\n\nwe could not place your order {{order_id}} ({{reason}}).\n"
     "Nothing was charged.\n\n-- souk\n"},
    {"order.cancelled", "Your order {{order_id}} was cancelled",
     "Hello {{name}},\n\nyour order {{order_id}} was cancelled. Any payment is refunded.\n\n-- "
     "souk\n"},
    {"order.shipped", "Your order {{order_id}} has shipped",
     "Hello {{name}},\n\ngood news: your order {{order_id}} is on its way.\n\n-- souk\n"},
    {"payment.refunded", "A refund of {{amount_cents|money}} is on its way",
     "Hello {{name}},\n\nwe refunded {{amount_cents|money}} for order {{order_id}}.\n\n-- souk\n"},
};

static json_t *lookup(json_t *data, json_t *user, const char *key)
{
    json_t *v = json_object_get(data, key);
    return v != NULL ? v : json_object_get(user, key);
}

static void put_value(FILE *f, json_t *v, bool money, json_t *data)
{
    if (money && json_is_integer(v)) {
        long long c = json_integer_value(v);
        const char *cur = json_string_value(json_object_get(data, "currency"));
        fprintf(f, "%s%lld.%02lld %s", c < 0 ? "-" : "", llabs(c) / 100, llabs(c) % 100,
                cur ? cur : "USD");
    } else if (json_is_string(v)) {
        /* one line only: a value can never start a header or a new paragraph */
        for (const char *s = json_string_value(v); *s; s++)
            fputc(*s == '\r' || *s == '\n' ? ' ' : *s, f);
    } else if (json_is_integer(v)) {
        fprintf(f, "%lld", (long long)json_integer_value(v));
    }
}

char *notify_template_apply(const char *tpl, json_t *data, json_t *user)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (f == NULL)
        souk_oom();
    for (const char *p = tpl; *p != '\0';) {
        const char *open = strstr(p, "{{");
        const char *close = open ? strstr(open + 2, "}}") : NULL;
        if (close == NULL) {
            fputs(p, f);
            break;
        }
        fwrite(p, 1, (size_t)(open - p), f);
        char key[FIELD_MAX];
        snprintf(key, sizeof(key), "%.*s", (int)(close - open - 2), open + 2);
        char *pipe = strchr(key, '|');
        bool money = pipe != NULL && strcmp(pipe + 1, "money") == 0;
        if (pipe != NULL)
            *pipe = '\0';
        put_value(f, lookup(data, user, key), money, data);
        p = close + 2;
    }
    fclose(f);
    if (len > NOTIFY_TEXT_MAX) { /* cut on a UTF-8 boundary */
        len = NOTIFY_TEXT_MAX;
        while (len > 0 && ((unsigned char)out[len] & 0xC0) == 0x80)
            len--;
        out[len] = '\0';
    }
    return out;
}

int notify_render(const char *type, json_t *data, json_t *user, char **subject, char **body)
{
    for (size_t i = 0; i < SOUK_ARRAY_LEN(templates); i++) {
        if (strcmp(templates[i].type, type) == 0) {
            *subject = notify_template_apply(templates[i].subject, data, user);
            *body = notify_template_apply(templates[i].body, data, user);
            return 0;
        }
    }
    return SOUK_ENOTFOUND;
}

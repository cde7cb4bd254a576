/* form.c: application/x-www-form-urlencoded bodies (the token endpoint's, RFC 6749
 * §3.2) into a JSON object of strings. Kept apart from oauth.c, with no request in
 * sight, so the libFuzzer driver tests/fuzz/oauth_form.c can link it alone. */
#include <string.h>

#include "souk/arena.h"
#include "users.h"

static int hexval(char c)
{
    return c >= '0' && c <= '9'                     ? c - '0'
           : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
                                                    : -1;
}

char *oauth_form_decode(struct souk_arena *a, const char *s, size_t n)
{
    char *out = souk_arena_alloc(a, n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[k++] = ' ';
        } else if (s[i] == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return NULL;
            out[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = '\0';
    return out;
}

json_t *oauth_form_parse(struct souk_arena *a, const char *body, size_t len, const char **why)
{
    json_t *obj = json_object();
    const char *p = body, *end = body + len;
    int n = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (stop == p) {
            p = stop + 1;
            continue;
        }
        char *key = oauth_form_decode(a, p, (size_t)((eq ? eq : stop) - p));
        char *val = eq ? oauth_form_decode(a, eq + 1, (size_t)(stop - eq - 1)) : "";
        if (key == NULL || val == NULL || ++n > FORM_PARAMS_MAX || strlen(val) > FORM_PARAM_MAX) {
            *why = "malformed form body";
            goto fail;
        }
        json_t *s = json_string(val);
        if (s == NULL || json_object_get(obj, key) != NULL) {
            json_decref(s);
            *why = "a parameter is repeated or not UTF-8";
            goto fail;
        }
        json_object_set_new(obj, key, s);
        p = stop + 1;
    }
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

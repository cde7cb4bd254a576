/* text.c: libFuzzer driver for the small text parsers of untrusted input: query
 * integers and booleans, config values, base64url tokens, ids, log redaction, the
 * log's JSON escaping (whatever goes in, a valid JSON string comes out) and the
 * kafka:// events URL. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/events_int.h"
#include "souk/config.h"
#include "souk/id.h"
#include "souk/json.h"
#include "log_int.h"
#include "souk/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    char *s = malloc(n + 1);
    memcpy(s, data, n);
    s[n] = '\0';
    struct souk_check c;
    souk_check_init(&c);
    int64_t v = souk_check_int_text(&c, "page_size", s, 1, 100, 20);
    if (v < 1 || v > 100)
        abort();
    souk_check_int_text(&c, "x", s, -1000000000000LL, 1000000000000LL, 0);
    souk_check_bool_text(&c, "b", s, false);
    souk_check_free(&c);

    char err[256];
    int64_t iv;
    const char *sv;
    struct souk_conf ci = {"X", SOUK_CONF_INT, NULL, 1, 256, &iv, ""};
    if (souk_config_parse(&ci, s, err, sizeof(err)) == 0 && (iv < 1 || iv > 256))
        abort();
    struct souk_conf ca = {"X", SOUK_CONF_ADDR, NULL, 1, 0, &sv, ""};
    souk_config_parse(&ca, s, err, sizeof(err));

    char boot[64], why[256];
    const char *at = strchr(s, '@');
    if (souk__kafka_parse_url(s, boot, sizeof(boot), why, sizeof(why)) == 0) {
        if (at != NULL || strchr(boot, '@') != NULL || strlen(boot) >= sizeof(boot))
            abort(); /* credentials never reach librdkafka's bootstrap list */
    } else if (at != NULL && strncmp(s, "kafka://", 8) == 0 && at - (s + 8) >= 8) {
        char cred[256]; /* what stands before the @ is never repeated in the reason */
        snprintf(cred, sizeof(cred), "%.*s", (int)(at - (s + 8)), s + 8);
        if (strstr(why, cred) != NULL)
            abort();
    }

    unsigned char raw[512];
    long len = souk_b64url_dec(s, raw, sizeof(raw));
    if (len >= 0) { /* what decodes re-encodes to the same text */
        char back[1024];
        souk_b64url_enc(raw, (size_t)len, back, sizeof(back));
        if (n < sizeof(back) - 1 && strcmp(back, s) != 0)
            abort();
    }
    souk_id_valid(s, "prd");
    souk_id_time(s);
    char esc[1024];
    size_t e = souk__json_escape(esc, 1, sizeof(esc) - 1, s);
    esc[0] = '"', esc[e] = '"', esc[e + 1] = '\0';
    json_t *back = json_loads(esc, JSON_DECODE_ANY, NULL);
    if (!json_is_string(back))
        abort();
    json_decref(back);
    souk__redact_digits(s);
    free(s);
    return 0;
}

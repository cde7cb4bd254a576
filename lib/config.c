/* config.c: environment variables checked against a table of types, defaults
 * and bounds. The first bad value produces one message naming the variable, its
 * value and what was expected (a text value only by its length: it may be a
 * secret). Also the masking of credentials in configured URLs before they are logged. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "souk/config.h"
#include "souk/souk.h"

int souk_config_split_addr(const char *addr, char *hostbuf, size_t hostcap, uint16_t *port)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= hostcap)
        return SOUK_EINVAL;
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5)
        return SOUK_EINVAL;
    long v = 0;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return SOUK_EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535)
        return SOUK_EINVAL;
    memcpy(hostbuf, addr, (size_t)(colon - addr));
    hostbuf[colon - addr] = '\0';
    *port = (uint16_t)v;
    return 0;
}

static void put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *len + 1 < cap; i++)
        out[(*len)++] = s[i];
}

/* Is the name before '=' (s[0..n)) one of a secret? */
static bool secret_name(const char *s, size_t n)
{
    static const char *const words[] = {"pass", "pwd", "secret", "token", "key"};
    for (size_t w = 0; w < SOUK_ARRAY_LEN(words); w++) {
        size_t k = strlen(words[w]);
        for (size_t i = 0; i + k <= n; i++)
            if (strncasecmp(s + i, words[w], k) == 0)
                return true;
    }
    return false;
}

char *souk_config_redact_url(const char *url, char *out, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return out;
    const char *p = url, *scheme = strstr(url, "://");
    if (scheme != NULL) {
        /* the last '@' anywhere: a password may hold an unencoded '@', '/' or '?';
         * when the path holds one instead, more is masked than needed, never less */
        const char *host = scheme + 3, *at = strrchr(host, '@');
        put(out, cap, &len, url, (size_t)(host - url));
        if (at != NULL) {
            put(out, cap, &len, "***", 3);
            host = at;
        }
        p = host;
    }
    while (*p != '\0') {
        size_t word = strcspn(p, "=&?;# ");
        if (p[word] == '=' && secret_name(p, word)) {
            put(out, cap, &len, p, word + 1);
            put(out, cap, &len, "***", 3);
            p += word + 1;
            p += strcspn(p, "&;# ");
        } else {
            put(out, cap, &len, p, word + (p[word] != '\0'));
            p += word + (p[word] != '\0');
        }
    }
    out[len] = '\0';
    return out;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < SOUK_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return SOUK_EINVAL;
}

int souk_config_parse(const struct souk_conf *c, const char *text, char *err, size_t errlen)
{
    switch (c->type) {
    case SOUK_CONF_STR: {
        size_t n = strlen(text);
        if ((int64_t)n < c->min || (c->max > 0 && (int64_t)n > c->max)) {
            snprintf(err, errlen, "%s: length %zu is outside %lld..%lld", c->name, n,
                     (long long)c->min, (long long)c->max);
            return SOUK_EINVAL;
        }
        if (c->dst != NULL)
            *(const char **)c->dst = text;
        return 0;
    }
    case SOUK_CONF_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (errno != 0 || end == text || *end != '\0' || text[0] == ' ') {
            snprintf(err, errlen, "%s=\"%s\": not an integer", c->name, text);
            return SOUK_EINVAL;
        }
        if (v < c->min || v > c->max) {
            snprintf(err, errlen, "%s=%lld: must be from %lld to %lld", c->name, v,
                     (long long)c->min, (long long)c->max);
            return SOUK_EINVAL;
        }
        if (c->dst != NULL)
            *(int64_t *)c->dst = v;
        return 0;
    }
    case SOUK_CONF_BOOL: {
        bool b;
        if (parse_bool(text, &b) != 0) {
            snprintf(err, errlen, "%s=\"%s\": expected true or false", c->name, text);
            return SOUK_EINVAL;
        }
        if (c->dst != NULL)
            *(bool *)c->dst = b;
        return 0;
    }
    case SOUK_CONF_ADDR: {
        char host[256];
        uint16_t port;
        if (souk_config_split_addr(text, host, sizeof(host), &port) != 0 ||
            (port == 0 && c->min > 0)) {
            snprintf(err, errlen, "%s=\"%s\": expected host:port", c->name, text);
            return SOUK_EINVAL;
        }
        if (c->dst != NULL)
            *(const char **)c->dst = text;
        return 0;
    }
    }
    snprintf(err, errlen, "%s: unknown type", c->name);
    return SOUK_EINVAL;
}

int souk_config_load(const struct souk_conf *table, char *err, size_t errlen)
{
    for (const struct souk_conf *c = table; c->name != NULL; c++) {
        const char *text = getenv(c->name);
        if (text == NULL)
            text = c->def;
        if (text == NULL) {
            snprintf(err, errlen, "%s is required (%s)", c->name, c->help ? c->help : "");
            return SOUK_EINVAL;
        }
        if (souk_config_parse(c, text, err, errlen) != 0)
            return SOUK_EINVAL;
    }
    return 0;
}

/* config.c: environment variables checked against tables of types, defaults and
 * bounds. The first bad value produces one message naming the variable, its value
 * and what was expected (a text value only by its length: it may be a secret). The
 * tables loaded are kept (copied) as the process's configuration, so a variable has
 * one home, and printed by `<service> --help`. Also the masking of credentials in
 * configured URLs before they are logged or shown. The kit's only getenv is here. */
#include <errno.h>
#include <pthread.h>
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
    case SOUK_CONF_STR:
    case SOUK_CONF_SECRET: {
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

/* ---- the loaded configuration ---- */

#define TABLES_MAX 32

struct entry {
    char *name, *def; /* copies; def NULL: required */
};

/* A loaded table, known by the name of its first variable: loading a table whose
 * first variable is that one again replaces it (a copy on the stack is the same
 * table; another table naming that variable would be a second declaration). */
struct loaded {
    struct entry *e;
    size_t n;
};

static struct loaded tables[TABLES_MAX];
static size_t ntables;
static pthread_mutex_t tables_lock = PTHREAD_MUTEX_INITIALIZER;

static char *dup_or_null(const char *s) { return s != NULL ? souk_xstrdup(s) : NULL; }

static void forget(struct loaded *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->e[i].name);
        free(t->e[i].def);
    }
    free(t->e);
}

/* The entry of name in the tables loaded, but for the one at skip (-1: none). */
static const struct entry *find(const char *name, size_t skip)
{
    for (size_t t = 0; t < ntables; t++)
        for (size_t i = 0; t != skip && i < tables[t].n; i++)
            if (strcmp(tables[t].e[i].name, name) == 0)
                return &tables[t].e[i];
    return NULL;
}

/* Keep a copy of table; refuse a variable another table declares. */
static int remember(const struct souk_conf *table, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&tables_lock);
    size_t n = 0;
    while (table[n].name != NULL)
        n++;
    if (n == 0)
        goto out;
    size_t slot = 0;
    while (slot < ntables && strcmp(tables[slot].e[0].name, table[0].name) != 0)
        slot++;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (find(table[i].name, slot) != NULL) {
            snprintf(err, errlen, "%s is declared twice (in two configuration tables)",
                     table[i].name);
            rc = SOUK_EINVAL;
        }
    }
    if (rc == 0 && slot == TABLES_MAX) {
        snprintf(err, errlen, "%s: more than %d configuration tables", table[0].name, TABLES_MAX);
        rc = SOUK_EINVAL;
    }
    if (rc == 0) {
        if (slot < ntables)
            forget(&tables[slot]);
        else
            ntables++;
        struct entry *e = souk_xcalloc(n + 1, sizeof(*e));
        for (size_t i = 0; i < n; i++)
            e[i] = (struct entry){souk_xstrdup(table[i].name), dup_or_null(table[i].def)};
        tables[slot] = (struct loaded){e, n};
    }
out:
    pthread_mutex_unlock(&tables_lock);
    return rc;
}

void souk_config_reset(void)
{
    pthread_mutex_lock(&tables_lock);
    for (size_t t = 0; t < ntables; t++)
        forget(&tables[t]);
    ntables = 0;
    pthread_mutex_unlock(&tables_lock);
}

const char *souk_config_value(const char *name)
{
    pthread_mutex_lock(&tables_lock);
    const struct entry *e = find(name, (size_t)-1);
    const char *v = e == NULL ? NULL : getenv(name);
    if (e != NULL && v == NULL)
        v = e->def;
    pthread_mutex_unlock(&tables_lock);
    return v;
}

bool souk_config_declared(const char *name)
{
    pthread_mutex_lock(&tables_lock);
    bool found = find(name, (size_t)-1) != NULL;
    pthread_mutex_unlock(&tables_lock);
    return found;
}

static const char *type_name(enum souk_conf_type t)
{
    switch (t) {
    case SOUK_CONF_STR:
        return "text";
    case SOUK_CONF_INT:
        return "integer";
    case SOUK_CONF_BOOL:
        return "true or false";
    case SOUK_CONF_ADDR:
        return "host:port";
    case SOUK_CONF_SECRET:
        return "secret";
    }
    return "?";
}

/* A value as it may be shown: a secret never, a URL without its credentials. */
static const char *shown(const struct souk_conf *c, const char *v, char *buf, size_t cap)
{
    if (c->type == SOUK_CONF_SECRET)
        return v[0] != '\0' ? "***" : "";
    return c->type == SOUK_CONF_STR ? souk_config_redact_url(v, buf, cap) : v;
}

void souk_config_print_table(FILE *out, const struct souk_conf *table)
{
    char buf[1024], dbuf[1024];
    for (const struct souk_conf *c = table; c != NULL && c->name != NULL; c++) {
        const char *env = getenv(c->name);
        const char *v = env != NULL ? env : c->def;
        fprintf(out, "%c %s=%s\n", env != NULL ? '*' : ' ', c->name,
                v != NULL ? shown(c, v, buf, sizeof(buf)) : "");
        fprintf(out, "      %s [%s", c->help != NULL && c->help[0] ? c->help : "(no help)",
                type_name(c->type));
        if (c->type == SOUK_CONF_INT)
            fprintf(out, " %lld..%lld", (long long)c->min, (long long)c->max);
        else if ((c->type == SOUK_CONF_STR || c->type == SOUK_CONF_SECRET) && c->max > 0)
            fprintf(out, " of %lld..%lld bytes", (long long)c->min, (long long)c->max);
        if (c->def == NULL)
            fprintf(out, "; required");
        else if (c->def[0] == '\0')
            fprintf(out, "; default empty");
        else
            fprintf(out, "; default %s", shown(c, c->def, dbuf, sizeof(dbuf)));
        fprintf(out, "]\n");
    }
}

int souk_config_load(const struct souk_conf *table, char *err, size_t errlen)
{
    if (remember(table, err, errlen) != 0)
        return SOUK_EINVAL;
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

/* config.h: configuration from environment variables, described as a table with
 * defaults and bounds (like Redis's static_configs[]), checked once at start. The
 * first bad value stops the service with a message naming the variable. */
#ifndef SOUK_CONFIG_H
#define SOUK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum souk_conf_type {
    SOUK_CONF_STR,  /* dst: const char **; min/max bound the length */
    SOUK_CONF_INT,  /* dst: int64_t *; min/max bound the value */
    SOUK_CONF_BOOL, /* dst: bool *; 1/0, true/false, yes/no, on/off */
    SOUK_CONF_ADDR, /* dst: const char **; "host:port" with port 1..65535 (0 if min == 0) */
};

struct souk_conf {
    const char *name; /* NULL ends the table */
    enum souk_conf_type type;
    const char *def; /* default as text; NULL means required */
    int64_t min, max;
    void *dst;
    const char *help;
};

/* Load every entry of table from the environment (or its default), validating it.
 * Returns 0, or SOUK_EINVAL with a message in err naming the first bad variable. */
int souk_config_load(const struct souk_conf *table, char *err, size_t errlen);

/* Parse one value of the given type; the unit tests drive this directly. */
int souk_config_parse(const struct souk_conf *c, const char *text, char *err, size_t errlen);

/* url as it may be logged or shown: the userinfo of "scheme://user:password@host/…"
 * becomes "***", and so does the value of every "name=value" (query parameter or
 * libpq-style keyword) whose name says it is a secret (pass, pwd, secret, token,
 * key). Writes into out (truncated to cap, always terminated) and returns out.
 * Use it for every configured URL that reaches a log line or a message:
 * SOUK_DB, SOUK_EVENTS, SOUK_SMTP_URL, the peers' URLs. */
char *souk_config_redact_url(const char *url, char *out, size_t cap);

/* Split "host:port"; returns 0 or SOUK_EINVAL. host is NUL-terminated in hostbuf. */
int souk_config_split_addr(const char *addr, char *hostbuf, size_t hostcap, uint16_t *port);

#endif

/* config.h: configuration from environment variables, described as tables with
 * types, defaults, bounds and help (like Redis's static_configs[]), checked once at
 * start. The first bad value stops the service with a message naming the variable.
 * The tables loaded are the process's configuration: every variable it reads has
 * one home in one table (this module is the only reader of the environment), and
 * `<service> --help` prints them all (souk_config_print_table). */
#ifndef SOUK_CONFIG_H
#define SOUK_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum souk_conf_type {
    SOUK_CONF_STR,    /* dst: const char **; min/max bound the length */
    SOUK_CONF_INT,    /* dst: int64_t *; min/max bound the value */
    SOUK_CONF_BOOL,   /* dst: bool *; 1/0, true/false, yes/no, on/off */
    SOUK_CONF_ADDR,   /* dst: const char **; "host:port" with port 1..65535 (0 if min == 0) */
    SOUK_CONF_SECRET, /* dst: const char **; text as STR, but its value is never shown */
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
 * Returns 0, or SOUK_EINVAL with a message in err naming the first bad variable.
 * The table joins the process's configuration (copied: it may live on the stack),
 * also when a value in it is bad; loading the same table again replaces it. A
 * variable another loaded table declares already is refused (SOUK_EINVAL, "declared
 * twice"): a variable has one home, and a module that needs another's reads it with
 * souk_config_value(). */
int souk_config_load(const struct souk_conf *table, char *err, size_t errlen);

/* The text of a variable of the loaded configuration: its value in the
 * environment, else its default (NULL for a required one that is unset). NULL
 * when no loaded table declares name. Stable until its table is loaded again. */
const char *souk_config_value(const char *name);

/* Whether a loaded table declares name. */
bool souk_config_declared(const char *name);

/* Print table to out, one variable after the other: its value now (from the
 * environment, marked '*', or its default; a secret's only as "***", a URL's
 * credentials masked by souk_config_redact_url), its help, its type and bounds, its
 * default. What `<service> --help` shows. Reads, never loads. */
void souk_config_print_table(FILE *out, const struct souk_conf *table);

/* Forget the loaded configuration (for unit tests that load many tables). */
void souk_config_reset(void);

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

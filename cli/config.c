/* config.c: the supervisor's configuration: the service table and port layout,
 * SOUK_* settings from the environment, the var/ layout, the client secrets in
 * var/secrets/clients.json and the peer URLs every service is given. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"

#define SERVICE(ident, name, port, edge, scopes) {name, port - SOUK_SERVICES_PORT_BASE, edge},
const struct service services[NSERVICES] = {SOUK_SERVICES(SERVICE)};
#undef SERVICE

int config_port(const struct config *c, int svc, int replica)
{
    if (replica == 0)
        return c->port_base + services[svc].port_offset;
    return c->port_base + REPLICA_PORT_OFFSET + REPLICA_PORT_STRIDE * services[svc].port_offset +
           replica;
}

int config_admin_port(const struct config *c, int svc, int replica)
{
    return services[svc].edge ? config_port(c, svc, replica) + ADMIN_PORT_OFFSET : 0;
}

int config_grpc_port(const struct config *c, int svc, int replica)
{
    return services[svc].edge ? 0 : config_port(c, svc, replica) + GRPC_PORT_OFFSET;
}

const char *config_gateway_addr(const struct config *c) { return c->gateway_addr; }

/* The address the gateway's calls come from, as the services' SOUK_TRUSTED_PROXIES
 * wants it: numeric. A gateway listening on every address still calls its peers on
 * loopback; a host name is resolved (to its first address, which it listens on). */
static int find_gateway_addr(struct config *c)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    const char *h = c->host;
    int rc;

    if (strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0)
        return fmt(c->gateway_addr, sizeof c->gateway_addr, "%s",
                   strcmp(h, "::") == 0 ? "::1" : "127.0.0.1") < 0
                   ? -1
                   : 0;
    rc = getaddrinfo(h, NULL, &hints, &ai);
    if (rc == 0)
        rc = getnameinfo(ai->ai_addr, ai->ai_addrlen, c->gateway_addr, sizeof c->gateway_addr, NULL,
                         0, NI_NUMERICHOST);
    if (ai)
        freeaddrinfo(ai);
    if (rc != 0)
        sayf(SOUK_LOG_ERROR, "SOUK_HOST '%s': %s", h, gai_strerror(rc));
    return rc == 0 ? 0 : -1;
}

static int parse_replicas(const char *spec, int replicas[NSERVICES])
{
    char copy[URLS_MAX], *save = NULL;

    if (fmt(copy, sizeof copy, "%s", spec) < 0)
        return -1;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '='), *end;
        int svc = -1;
        long n;

        if (!eq)
            return -1;
        *eq = '\0';
        for (int i = 0; i < NSERVICES; i++)
            if (strcmp(services[i].name, item) == 0)
                svc = i;
        n = strtol(eq + 1, &end, 10);
        if (svc < 0 || *end || end == eq + 1 || n < 1 || n > MAX_REPLICAS)
            return -1;
        replicas[svc] = (int)n;
    }
    return 0;
}

static int find_bin_dir(char *out)
{
    const char *env = getenv("SOUK_BIN_DIR");
    char self[PATH_MAX];
    ssize_t n;

    if (env && *env)
        return realpath(env, out) ? 0 : -1;
    n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0)
        return -1;
    self[n] = '\0';
    if (strrchr(self, '/'))
        *strrchr(self, '/') = '\0';
    return fmt(out, PATH_MAX, "%s", self) < 0 ? -1 : 0;
}

/* An integer variable within [min, max], or def when unset; -1 with a message. */
static int env_int(const char *name, long def, long min, long max, long *out)
{
    const char *v = getenv(name);
    char *end;

    *out = def;
    if (!v || !*v)
        return 0;
    *out = strtol(v, &end, 10);
    if (*end || *out < min || *out > max) {
        sayf(SOUK_LOG_ERROR, "bad %s '%s' (want %ld..%ld)", name, v, min, max);
        return -1;
    }
    return 0;
}

int config_log_format(void)
{
    const char *v = getenv("SOUK_LOG_FORMAT");

    if (!v || !*v || strcmp(v, "text") == 0) {
        log_set_format(LOG_TEXT);
        return 0;
    }
    if (strcmp(v, "ecs") == 0) {
        log_set_format(LOG_ECS);
        return 0;
    }
    log_set_format(LOG_TEXT);
    sayf(SOUK_LOG_ERROR, "SOUK_LOG_FORMAT=\"%s\": expected text or ecs", v);
    return -1;
}

/* Everything from the environment; create makes the var/ layout first. */
int config_load(struct config *c, const char *replicas_arg, bool create)
{
    static const char *const subdirs[] = {"log", "db", "run", "mail"};
    const char *var = getenv("SOUK_VAR");
    const char *reps = getenv("SOUK_REPLICAS"), *host = getenv("SOUK_HOST");
    const char *rpc = getenv("SOUK_RPC");
    char path[PATH_MAX];
    long port_base, timeout_s;

    memset(c, 0, sizeof *c);
    c->host = host && *host ? host : "127.0.0.1";
    if (find_gateway_addr(c) < 0)
        return -1;
    if (env_int("SOUK_PORT_BASE", DEFAULT_PORT_BASE, 1, MAX_PORT_BASE, &port_base) < 0 ||
        env_int("SOUK_READY_TIMEOUT", READY_TIMEOUT_S, 1, MAX_READY_TIMEOUT_S, &timeout_s) < 0)
        return -1;
    c->port_base = (int)port_base;
    if (rpc != NULL && *rpc != '\0' && strcmp(rpc, "grpc") != 0 && strcmp(rpc, "rest") != 0) {
        sayf(SOUK_LOG_ERROR, "SOUK_RPC=\"%s\": expected grpc or rest", rpc);
        return -1;
    }
    c->rest = rpc != NULL && strcmp(rpc, "rest") == 0;
    c->ready_timeout_ms = (int)timeout_s * 1000;
    for (int i = 0; i < NSERVICES; i++)
        c->replicas[i] = 1;
    if ((reps && *reps && parse_replicas(reps, c->replicas) < 0) ||
        (replicas_arg && parse_replicas(replicas_arg, c->replicas) < 0)) {
        sayf(SOUK_LOG_ERROR, "bad replicas spec (want e.g. catalog=2,users=3; 1..%d)",
             MAX_REPLICAS);
        return -1;
    }
    if (find_bin_dir(c->bin_dir) < 0) {
        sayf(SOUK_LOG_ERROR, "cannot find the service binaries: %s", strerror(errno));
        return -1;
    }
    var = var && *var ? var : "var";
    if (create && mkdir_p(var, 0755) < 0)
        goto fail;
    if (!realpath(var, c->var_dir)) {
        c->var_dir[0] = '\0';
        if (create)
            goto fail;
        return 0; /* no var/ yet: nothing can be running */
    }
    for (size_t i = 0; create && i < sizeof subdirs / sizeof *subdirs; i++)
        if (fmt(path, sizeof path, "%s/%s", c->var_dir, subdirs[i]) < 0 || mkdir_p(path, 0755) < 0)
            goto fail;
    if (create && (fmt(path, sizeof path, "%s/secrets", c->var_dir) < 0 ||
                   mkdir_p(path, 0700) < 0 || chmod(path, 0700) < 0))
        goto fail;
    return 0;
fail:
    sayf(SOUK_LOG_ERROR, "cannot create %s: %s", var, strerror(errno));
    return -1;
}

static bool find_secret(const char *json, const char *name, char out[SECRET_HEX + 1])
{
    char key[64];
    const char *p;
    size_t n;

    if (fmt(key, sizeof key, "\"%s\"", name) < 0 || !(p = strstr(json, key)))
        return false;
    p += strlen(key);
    p += strspn(p, " \t\r\n");
    if (*p++ != ':')
        return false;
    p += strspn(p, " \t\r\n");
    if (*p++ != '"')
        return false;
    n = strspn(p, "0123456789abcdefABCDEF");
    if (n != SECRET_HEX || p[n] != '"')
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/* Reuse var/secrets/clients.json; generate whatever is missing and rewrite it. */
int config_load_secrets(struct config *c)
{
    char *json = NULL, text[FILE_MAX];
    unsigned char raw[SECRET_BYTES];
    bool dirty = false;
    size_t len = 0;
    int rc = -1;

    if (sodium_init() < 0 ||
        fmt(c->clients_file, sizeof c->clients_file, "%s/secrets/clients.json", c->var_dir) < 0)
        goto out;
    json = read_file(c->clients_file);
    for (int i = 0; i < NSERVICES; i++) {
        if (json && find_secret(json, services[i].name, c->secrets[i]))
            continue;
        randombytes_buf(raw, sizeof raw);
        sodium_bin2hex(c->secrets[i], sizeof c->secrets[i], raw, sizeof raw);
        dirty = true;
    }
    if (!dirty) {
        rc = 0;
        goto out;
    }
    for (int i = 0; i < NSERVICES; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s\"%s\":\"%s\"",
                                i ? ",\n  " : "{\n  ", services[i].name, c->secrets[i]);
    snprintf(text + len, sizeof text - len, "\n}\n");
    rc = write_atomic(c->clients_file, text, 0600);
out:
    free(json);
    return rc;
}

/* SOUK_<PEER>_URL values: every replica of each service, comma-separated; and the
 * same lists on the gRPC ports (every service but the gateway has one). */
int config_build_urls(struct config *c)
{
    for (int i = 0; i < NSERVICES; i++) {
        size_t len = 0, glen = 0;

        for (int k = 0; !services[i].edge && k < c->replicas[i]; k++) {
            int n = fmt(c->grpc_urls[i] + glen, URLS_MAX - glen, "%sgrpc://%s:%d", k ? "," : "",
                        c->host, config_grpc_port(c, i, k));
            if (n < 0)
                return -1;
            glen += (size_t)n;
        }
        for (int k = 0; k < c->replicas[i]; k++) {
            int n = fmt(c->urls[i] + len, URLS_MAX - len, "%shttp://%s:%d", k ? "," : "", c->host,
                        config_port(c, i, k));
            if (n < 0)
                return -1;
            len += (size_t)n;
        }
    }
    return 0;
}

bool config_have_binary(const struct config *c, int svc)
{
    char path[PATH_MAX];

    return fmt(path, sizeof path, "%s/%s", c->bin_dir, services[svc].name) >= 0 &&
           access(path, X_OK) == 0;
}

/* service.c: the service main (service.h): souk_main() loads the configuration,
 * opens and migrates the database, builds the route table (the service's, the event
 * feed's, the built-in /healthz, /readyz and /metrics), starts the workers and the
 * listeners (the public one, TLS when configured, the admin one and the probe one),
 * and on SIGTERM drains in-flight requests before it stops. A request's life is
 * server.c's. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth_int.h"
#include "db_int.h"
#include "events_int.h"
#include "grpc_int.h"
#include "log_int.h"
#include "memtrim_int.h"
#include "metrics_int.h"
#include "server_int.h"
#include "otlp_int.h"
#include "souk/auth.h"
#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/realip.h"
#include "souk/server.h"
#include "souk/service.h"
#include "souk/souk.h"

#define ADMIN_PORT_OFFSET 1100    /* SOUK_ADMIN_LISTEN=auto: loopback, public port + this */
#define ADMIN_MAX_CONNS   64      /* the admin listener serves probes and scrapes */
#define TLS_FILE_MAX      1048576 /* a PEM certificate chain or key */
#define TLS_PRIORITIES    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* A connection's libmicrohttpd pool: its request line and headers (more is a 431), the
 * read buffer and the answer's head. 0.9.75 clears the whole pool between requests,
 * about 6 % of a product read's CPU at 32 KiB; 16 KiB is Node's header cap, and the
 * gateway forwards at most 8 KiB per header. */
#define CONN_POOL_BYTES 16384

static const struct souk_service *service;
static struct souk_route *routes; /* the service's, the events', then the built-ins */
static size_t nroutes;
static struct souk_router *router;
static atomic_bool started;

static struct souk__listener public_l, admin_l, probe_l;
static char admin_addr[300];     /* resolved SOUK_ADMIN_LISTEN; "" for none */
static char probe_addr[300];     /* SOUK_PROBE_LISTEN; "" for none */
static char *tls_cert, *tls_key; /* PEM, read at start */

static const char *cfg_var, *cfg_listen, *cfg_db;
static int64_t cfg_threads, cfg_max_conns, cfg_conn_timeout, cfg_max_body, cfg_drain_seconds;
static int64_t cfg_max_per_ip, cfg_header_timeout, cfg_hsts_max_age;
static int64_t cfg_malloc_arenas, cfg_trim_quiet_ms;
static const char *cfg_log_level, *cfg_trusted_proxies, *cfg_admin_listen, *cfg_probe_listen,
    *cfg_tls_cert, *cfg_tls_key;
static bool cfg_access_log;
static struct souk_realip *trusted_proxies;

/* First, alone: the other defaults are made from it. */
static const struct souk_conf var_config[] = {
    {"SOUK_VAR", SOUK_CONF_STR, "var", 1, 4096, &cfg_var,
     "the directory of local state: databases, keys, mail files"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* SOUK_LISTEN, SOUK_DB, SOUK_MAX_CONNECTIONS_PER_IP and SOUK_ADMIN_LISTEN get their
 * defaults per service (kit_table()). */
static const struct souk_conf kit_config[] = {
    {"SOUK_LISTEN", SOUK_CONF_ADDR, NULL, 0, 0, &cfg_listen, "host:port to listen on"},
    {"SOUK_DB", SOUK_CONF_STR, NULL, 1, 4096, &cfg_db,
     "sqlite:PATH or postgres://… (default sqlite:$SOUK_VAR/db/<service>.db)"},
    {"SOUK_THREADS", SOUK_CONF_INT, "2", 1, 256, &cfg_threads, "HTTP worker threads"},
    {"SOUK_MAX_CONNECTIONS", SOUK_CONF_INT, "4096", 1, 1000000, &cfg_max_conns, "open connections"},
    /* 128 at the edge, 0 inside */
    {"SOUK_MAX_CONNECTIONS_PER_IP", SOUK_CONF_INT, "0", 0, 1000000, &cfg_max_per_ip,
     "open connections one client address may hold; 0 no cap"},
    {"SOUK_CONN_TIMEOUT", SOUK_CONF_INT, "60", 1, 3600, &cfg_conn_timeout,
     "seconds a connection may sit idle"},
    {"SOUK_HEADER_TIMEOUT", SOUK_CONF_INT, "10", 1, 3600, &cfg_header_timeout,
     "seconds to send a request's headers, from connect (after an answer: idle time too)"},
    /* "auto" at the edge, "" inside */
    {"SOUK_ADMIN_LISTEN", SOUK_CONF_STR, "", 0, 255, &cfg_admin_listen,
     "host:port for /metrics, /healthz, /readyz; auto: 127.0.0.1, SOUK_LISTEN's port + 1100; "
     "empty or off: none"},
    {"SOUK_PROBE_LISTEN", SOUK_CONF_STR, "", 0, 255, &cfg_probe_listen,
     "host:port answering only /healthz and /readyz, on a thread no request waits in "
     "(the gateway's probes); empty or off: none"},
    {"SOUK_TLS_CERT", SOUK_CONF_STR, "", 0, 4096, &cfg_tls_cert,
     "PEM certificate chain file: HTTPS on SOUK_LISTEN (with SOUK_TLS_KEY)"},
    {"SOUK_TLS_KEY", SOUK_CONF_STR, "", 0, 4096, &cfg_tls_key, "PEM private key file"},
    {"SOUK_HSTS_MAX_AGE", SOUK_CONF_INT, "31536000", 0, 63072000, &cfg_hsts_max_age,
     "Strict-Transport-Security max-age under TLS; 0 no header"},
    {"SOUK_MAX_BODY", SOUK_CONF_INT, "65536", 256, 16777216, &cfg_max_body, "request body bytes"},
    {"SOUK_DRAIN_SECONDS", SOUK_CONF_INT, "10", 0, 300, &cfg_drain_seconds,
     "drain time on SIGTERM"},
    {"SOUK_LOG_LEVEL", SOUK_CONF_STR, "info", 1, 8, &cfg_log_level, "debug|info|warn|error"},
    {"SOUK_ACCESS_LOG", SOUK_CONF_BOOL, "true", 0, 0, &cfg_access_log, "log every request"},
    {"SOUK_TRUSTED_PROXIES", SOUK_CONF_STR, "", 0, 4096, &cfg_trusted_proxies,
     "addresses/CIDRs whose X-Forwarded-For is believed"},
    {"SOUK_MALLOC_ARENAS", SOUK_CONF_INT, "2", 0, 1024, &cfg_malloc_arenas,
     "glibc malloc arenas the threads share; 0: glibc's default (8 per core)"},
    {"SOUK_MEMORY_TRIM_MS", SOUK_CONF_INT, "2000", 0, 3600000, &cfg_trim_quiet_ms,
     "after this long without work, freed heap goes back to the system (once); 0: never"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* ---- built-in routes ---- */

static int healthz(struct souk_req *r)
{
    souk_reply_raw(r, "application/json", "{\"status\":\"ok\"}", 15, false);
    return 200;
}

static int readyz(struct souk_req *r)
{
    bool draining = atomic_load(&souk__srv.draining);
    if (!atomic_load(&started) || draining)
        return souk_problem(r, 503, "not_ready", draining ? "draining" : "starting");
    if (service->ready != NULL && !service->ready())
        return souk_problem(r, 503, "not_ready", "a dependency is not reachable");
    /* SQLite's ping is a no-op (the file opened at start): a connection opened only
     * for it would keep the schema and a page cache in every probe-answering thread */
    bool sqlite = strncmp(cfg_db, "sqlite:", 7) == 0;
    struct souk_db *db = sqlite ? NULL : souk_db_thread();
    if (!sqlite && (db == NULL || souk_db_ping(db) != 0))
        return souk_problem(r, 503, "not_ready", "database unavailable");
    souk_reply_raw(r, "application/json", "{\"status\":\"ready\"}", 18, false);
    return 200;
}

/* For a service serving its public listener itself: the kit's part of /readyz. */
static const char *not_ready(void)
{
    if (atomic_load(&souk__srv.draining))
        return "draining";
    if (!atomic_load(&started))
        return "starting";
    if (service->ready != NULL && !service->ready())
        return "a dependency is not reachable";
    return NULL;
}

static int metrics(struct souk_req *r)
{
    size_t len;
    char *text = souk_metrics_render(&len);
    souk_reply_raw(r, "text/plain; version=0.0.4; charset=utf-8", text, len, true);
    return 200;
}

/* /metrics last: the public listener leaves it out when it lives on the admin one. */
static const struct souk_route builtin_routes[] = {
    {"GET", "/healthz", healthz, SOUK_PUBLIC, NULL, 0},
    {"GET", "/readyz", readyz, SOUK_PUBLIC, NULL, 0},
    {"GET", "/metrics", metrics, SOUK_PUBLIC, NULL, 0},
};

/* ---- start and stop ---- */

static int listen_address(const char *addr, struct sockaddr_in *sa)
{
    char host[256];
    uint16_t port;
    if (souk_config_split_addr(addr, host, sizeof(host), &port) != 0)
        return SOUK_EINVAL;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    if (strcmp(host, "localhost") == 0 || host[0] == '\0')
        strcpy(host, "127.0.0.1");
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : SOUK_EINVAL;
}

static int build_routes(const struct souk_service *svc)
{
    size_t n = 0, ne = 0, nt = 0;
    /* at the edge the trace route stays out: /internal/ is never public there */
    const struct souk_route *ev = souk__events_routes(), *tr = souk__otlp_routes(svc->edge);
    while (svc->routes != NULL && svc->routes[n].method != NULL)
        n++;
    while (ev != NULL && ev[ne].method != NULL)
        ne++;
    while (tr[nt].method != NULL)
        nt++;
    nroutes = n + ne + nt + SOUK_ARRAY_LEN(builtin_routes);
    routes = souk_xcalloc(nroutes + 1, sizeof(*routes));
    if (n > 0)
        memcpy(routes, svc->routes, n * sizeof(*routes));
    if (ne > 0)
        memcpy(routes + n, ev, ne * sizeof(*routes));
    memcpy(routes + n + ne, tr, nt * sizeof(*routes));
    memcpy(routes + n + ne + nt, builtin_routes, sizeof(builtin_routes));
    souk__srv.kit_routes_from = n; /* the kit's own routes are not traced */
    router = souk_router_new(routes);
    if (router == NULL)
        return SOUK_EINVAL;
    souk__srv.routes = routes;
    souk__srv.nroutes = nroutes;
    souk__srv.router = router;
    const char **names = souk_xcalloc(nroutes + 1, sizeof(*names));
    for (size_t i = 0; i < nroutes; i++)
        names[i] = routes[i].pattern;
    names[nroutes] = "other"; /* unmatched paths and methods */
    souk__metrics_http_init(names, nroutes + 1);
    free(names);
    return 0;
}

/* kit_config with this service's defaults into table; db_default is the buffer
 * SOUK_DB's default is made in (from SOUK_VAR, which is loaded first). */
static void kit_table(const struct souk_service *svc, struct souk_conf *table, char *db_default,
                      size_t cap)
{
    const char *var = souk_config_value("SOUK_VAR");
    snprintf(db_default, cap, "sqlite:%s/db/%s.db", var != NULL ? var : "var", svc->name);
    memcpy(table, kit_config, sizeof(kit_config));
    for (size_t i = 0; table[i].name != NULL; i++) {
        if (strcmp(table[i].name, "SOUK_LISTEN") == 0)
            table[i].def = svc->listen;
        else if (strcmp(table[i].name, "SOUK_DB") == 0)
            table[i].def = db_default;
        else if (strcmp(table[i].name, "SOUK_MAX_CONNECTIONS_PER_IP") == 0)
            table[i].def = svc->edge ? "128" : "0";
        else if (strcmp(table[i].name, "SOUK_ADMIN_LISTEN") == 0)
            table[i].def = svc->edge ? "auto" : "";
    }
}

static int load_config(const struct souk_service *svc)
{
    char err[512];
    char db_default[4096];
    struct souk_conf table[SOUK_ARRAY_LEN(kit_config)];
    if (souk_config_load(var_config, err, sizeof(err)) != 0) {
        souk_log_config_error("%s", err);
        return SOUK_EINVAL;
    }
    kit_table(svc, table, db_default, sizeof(db_default));
    if (souk_config_load(table, err, sizeof(err)) != 0 ||
        (svc->config != NULL && souk_config_load(svc->config, err, sizeof(err)) != 0)) {
        souk_log_config_error("%s", err);
        return SOUK_EINVAL;
    }
    if (souk_db_configure("SOUK_DB", cfg_db, err, sizeof(err)) != 0 ||
        souk_realip_parse(cfg_trusted_proxies, &trusted_proxies, err, sizeof(err)) != 0) {
        souk_log_config_error("%s", err);
        return SOUK_EINVAL;
    }
    souk__srv.trusted_proxies = trusted_proxies;
    souk__srv.max_body = (size_t)cfg_max_body;
    souk__srv.access_log = cfg_access_log;
    if (cfg_db == db_default) /* the default lives on our stack: keep a copy */
        cfg_db = souk_xstrdup(db_default);
    enum souk_log_level level;
    if (souk_log_level_parse(cfg_log_level, &level) != 0) {
        souk_log_config_error("SOUK_LOG_LEVEL=\"%s\": expected debug, info, warn or error",
                              cfg_log_level);
        return SOUK_EINVAL;
    }
    souk_log_init(svc->name, level);
    souk__memtrim_configure(cfg_malloc_arenas, cfg_trim_quiet_ms);
    return 0;
}

static int open_database(const struct souk_service *svc)
{
    souk_db_set_default(cfg_db);
    struct souk_db *db = souk_db_thread();
    if (db == NULL)
        return SOUK_EDB;
    int rc = souk_db_migrate(db, svc->migrations);
    return rc != 0 ? rc : souk__events_init(svc, db);
}

/* ---- listeners: the public one (TLS when configured) and the admin one ---- */

/* SOUK_ADMIN_LISTEN into admin_addr ("" for none). 0, or -1 after a message. */
static int resolve_admin(void)
{
    char host[256];
    uint16_t port;
    struct sockaddr_in sa;
    admin_addr[0] = '\0';
    if (cfg_admin_listen[0] == '\0' || strcmp(cfg_admin_listen, "off") == 0)
        return 0;
    if (strcmp(cfg_admin_listen, "auto") == 0) {
        if (souk_config_split_addr(cfg_listen, host, sizeof(host), &port) != 0 || port == 0 ||
            port > 65535 - ADMIN_PORT_OFFSET) {
            souk_log_config_error("SOUK_ADMIN_LISTEN=auto needs a SOUK_LISTEN port from 1 to %d; "
                                  "set SOUK_ADMIN_LISTEN to host:port, or off",
                                  65535 - ADMIN_PORT_OFFSET);
            return -1;
        }
        snprintf(admin_addr, sizeof(admin_addr), "127.0.0.1:%u",
                 (unsigned)port + ADMIN_PORT_OFFSET);
        return 0;
    }
    if (listen_address(cfg_admin_listen, &sa) != 0) {
        souk_log_config_error("SOUK_ADMIN_LISTEN=\"%s\": expected an IPv4 host:port, auto or off",
                              cfg_admin_listen);
        return -1;
    }
    snprintf(admin_addr, sizeof(admin_addr), "%s", cfg_admin_listen);
    return 0;
}

/* SOUK_PROBE_LISTEN into probe_addr ("" for none). 0, or -1 after a message. */
static int resolve_probe(void)
{
    struct sockaddr_in sa;
    probe_addr[0] = '\0';
    if (cfg_probe_listen[0] == '\0' || strcmp(cfg_probe_listen, "off") == 0)
        return 0;
    if (listen_address(cfg_probe_listen, &sa) != 0) {
        souk_log_config_error("SOUK_PROBE_LISTEN=\"%s\": expected an IPv4 host:port or off",
                              cfg_probe_listen);
        return -1;
    }
    snprintf(probe_addr, sizeof(probe_addr), "%s", cfg_probe_listen);
    return 0;
}

/* A whole PEM file, NUL-terminated and malloc'd, or NULL after a message. */
static char *read_pem(const char *var, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        goto fail;
    buf = souk_xmalloc(TLS_FILE_MAX + 1);
    len = fread(buf, 1, TLS_FILE_MAX + 1, f);
    if (ferror(f))
        goto fail;
    fclose(f);
    f = NULL;
    if (len == 0 || len > TLS_FILE_MAX) {
        souk_log_config_error("%s=%s: %s", var, path,
                              len == 0 ? "the file is empty" : "the file is over 1 MiB");
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
fail:
    souk_log_config_error("%s=%s: cannot read: %s", var, path, strerror(errno));
    if (f != NULL)
        fclose(f);
    free(buf);
    return NULL;
}

/* SOUK_TLS_CERT and SOUK_TLS_KEY: both or neither. 0, or -1 after a message. */
static int load_tls(void)
{
    bool cert = cfg_tls_cert[0] != '\0', key = cfg_tls_key[0] != '\0';
    if (!cert && !key)
        return 0;
    if (!cert || !key) {
        souk_log_config_error("%s is set but %s is not: TLS needs a certificate and its key",
                              cert ? "SOUK_TLS_CERT" : "SOUK_TLS_KEY",
                              cert ? "SOUK_TLS_KEY" : "SOUK_TLS_CERT");
        return -1;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        souk_log_config_error("SOUK_TLS_CERT is set but libmicrohttpd has no TLS support");
        return -1;
    }
    tls_cert = read_pem("SOUK_TLS_CERT", cfg_tls_cert);
    tls_key = tls_cert != NULL ? read_pem("SOUK_TLS_KEY", cfg_tls_key) : NULL;
    if (tls_key == NULL)
        return -1;
    if (cfg_hsts_max_age > 0)
        snprintf(souk__srv.hsts, sizeof(souk__srv.hsts), "max-age=%lld",
                 (long long)cfg_hsts_max_age);
    public_l.tls = true;
    return 0;
}

/* The admin listener's router has the built-ins; the public one everything but
 * /metrics where that is private: at the edge, or when an admin listener is set. */
static int listener_routes(const struct souk_service *svc)
{
    static struct souk_route *public_table, probe_table[3];
    admin_l.route_base = nroutes - SOUK_ARRAY_LEN(builtin_routes);
    admin_l.router = souk_router_new(routes + admin_l.route_base);
    probe_l.route_base = admin_l.route_base; /* /healthz and /readyz, the first two */
    memcpy(probe_table, routes + probe_l.route_base, 2 * sizeof(*probe_table));
    probe_l.router = souk_router_new(probe_table);
    public_l.router = router;
    if (svc->edge || admin_addr[0] != '\0') {
        public_table = souk_xcalloc(nroutes, sizeof(*public_table));
        memcpy(public_table, routes, (nroutes - 1) * sizeof(*public_table)); /* NULL-ended */
        public_l.router = souk_router_new(public_table);
    }
    return admin_l.router != NULL && probe_l.router != NULL && public_l.router != NULL
               ? 0
               : SOUK_EINVAL;
}

/* libmicrohttpd's own messages (refused connections, failed TLS handshakes…) as log
 * lines, at most MHD_LOG_PER_SECOND of them: refusing a flood of connections must not
 * turn into a flood of log lines. */
#define MHD_LOG_PER_SECOND 10
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static _Atomic uint64_t second;
    static _Atomic int in_second;
    static _Atomic long dropped;
    SOUK_UNUSED(cls);
    uint64_t now = souk_now_ns() / 1000000000u;
    if (atomic_exchange(&second, now) != now)
        atomic_store(&in_second, 0);
    if (atomic_fetch_add(&in_second, 1) >= MHD_LOG_PER_SECOND) {
        atomic_fetch_add(&dropped, 1);
        return;
    }
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\r\n")] = '\0';
    souk_warn("libmicrohttpd", "{s:s,s:I}", "error", msg, "suppressed",
              (json_int_t)atomic_exchange(&dropped, 0));
}

#define OPT(o, v, p) ((struct MHD_OptionItem){(o), (intptr_t)(v), (p)})

static int start_public(const struct sockaddr_in *sa)
{
    struct MHD_OptionItem o[16];
    size_t n = 0;
    o[n++] = OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL); /* first, to catch all */
    o[n++] = OPT(MHD_OPTION_SOCK_ADDR, 0, (void *)sa);
    o[n++] = OPT(MHD_OPTION_THREAD_POOL_SIZE, cfg_threads, NULL);
    o[n++] = OPT(MHD_OPTION_CONNECTION_LIMIT, cfg_max_conns, NULL);
    o[n++] = OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg_max_per_ip, NULL);
    o[n++] = OPT(MHD_OPTION_CONNECTION_TIMEOUT, cfg_conn_timeout, NULL);
    o[n++] = OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONN_POOL_BYTES, NULL);
    o[n++] = OPT(MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL);
    o[n++] = OPT(MHD_OPTION_NOTIFY_COMPLETED, souk__server_on_completed, NULL);
    o[n++] = OPT(MHD_OPTION_NOTIFY_CONNECTION, souk__conn_notify, NULL);
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (public_l.tls) {
        flags |= MHD_USE_TLS;
        o[n++] = OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, tls_key);
        o[n++] = OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, tls_cert);
        o[n++] = OPT(MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES);
    }
    o[n++] = OPT(MHD_OPTION_END, 0, NULL);
    public_l.daemon = MHD_start_daemon(flags, 0, NULL, NULL, souk__server_on_request, &public_l,
                                       MHD_OPTION_ARRAY, o, MHD_OPTION_END);
    if (public_l.daemon != NULL)
        return 0;
    const char *why = strerror(errno);
    if (public_l.tls) /* MHD says no more: a bad pair is the likely cause */
        souk_error("cannot serve TLS: is SOUK_TLS_CERT a PEM certificate chain and "
                   "SOUK_TLS_KEY its private key?",
                   "{s:s,s:s}", "addr", cfg_listen, "error", why);
    else
        souk_error("cannot listen", "{s:s,s:s}", "addr", cfg_listen, "error", why);
    return SOUK_EIO;
}

/* A side listener (admin or probes): one thread of its own, plain HTTP, so what
 * it serves never waits behind the public listener's requests. addr is rewritten
 * with the port the kernel chose for port 0. */
static int start_side(char *addr, size_t cap, struct souk__listener *l, const char *what)
{
    struct sockaddr_in sa;
    if (addr[0] == '\0')
        return 0;
    listen_address(addr, &sa); /* checked by resolve_admin() / resolve_probe() */
    struct MHD_OptionItem o[] = {
        OPT(MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL),
        OPT(MHD_OPTION_SOCK_ADDR, 0, &sa),
        OPT(MHD_OPTION_CONNECTION_LIMIT, ADMIN_MAX_CONNS, NULL),
        OPT(MHD_OPTION_CONNECTION_TIMEOUT, cfg_conn_timeout, NULL),
        OPT(MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONN_POOL_BYTES, NULL),
        OPT(MHD_OPTION_NOTIFY_COMPLETED, souk__server_on_completed, NULL),
        OPT(MHD_OPTION_END, 0, NULL),
    };
    l->daemon = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                                 souk__server_on_request, l, MHD_OPTION_ARRAY, o, MHD_OPTION_END);
    if (l->daemon == NULL) {
        souk_error("cannot listen", "{s:s,s:s,s:s}", "addr", addr, "listener", what, "error",
                   strerror(errno));
        return SOUK_EIO;
    }
    if (sa.sin_port == 0) { /* port 0: say which one the kernel chose */
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(l->daemon, MHD_DAEMON_INFO_BIND_PORT);
        char *colon = strrchr(addr, ':');
        if (di != NULL && colon != NULL)
            snprintf(colon + 1, cap - (size_t)(colon + 1 - addr), "%u", (unsigned)di->port);
    }
    return 0;
}

static void usage(FILE *out, const char *name)
{
    fprintf(out,
            "usage: %s [serve|migrate|seed|--help]\n"
            "  serve    run the service (default)\n"
            "  migrate  apply database migrations and exit\n"
            "  seed     apply migrations, load demo data and exit\n"
            "  --help   this, and every variable the service reads (also: config)\n",
            name);
}

/* `<service> --help`: every table the service would load, with the values the
 * environment gives now (* marks a value set there). Loads nothing but SOUK_VAR
 * (SOUK_DB's default is made from it), so a bad value does not hide the table. */
static void print_config(FILE *out, const struct souk_service *svc)
{
    char err[512], db_default[4096];
    struct souk_conf table[SOUK_ARRAY_LEN(kit_config)];
    souk_config_load(var_config, err, sizeof(err)); /* a bad one is shown as it is */
    kit_table(svc, table, db_default, sizeof(db_default));
    fprintf(out, "\nconfiguration: environment variables (* set now), [type, bounds; default]\n");
    fprintf(out, "%s:\n", svc->name);
    souk_config_print_table(out, svc->config);
    fprintf(out, "kit, service:\n");
    souk_config_print_table(out, var_config);
    souk_config_print_table(out, table);
    fprintf(out, "kit, database:\n");
    souk__db_print_config(out);
    fprintf(out, "kit, identity:\n");
    souk__auth_print_config(out);
    fprintf(out, "kit, events:\n");
    souk__events_print_config(out, svc);
    if (svc->grpc != NULL) {
        fprintf(out, "kit, gRPC:\n");
        souk__grpc_print_config(out, svc);
    }
    fprintf(out, "kit, tracing:\n");
    souk__otlp_print_config(out);
}

static void drain(void)
{
    atomic_store(&souk__srv.draining, true);
    souk_info("draining", "{s:I}", "inflight", (json_int_t)atomic_load(&souk__srv.inflight));
    uint64_t deadline = souk_now_ns() + (uint64_t)cfg_drain_seconds * 1000000000u;
    if (public_l.daemon != NULL)
        MHD_quiesce_daemon(public_l.daemon);
    else if (service->serve_drain != NULL) /* a public listener of the service's own */
        service->serve_drain(deadline);
    souk__grpc_drain_begin(); /* gRPC drains beside HTTP, within the same deadline */
    while (atomic_load(&souk__srv.inflight) > 0 && souk_now_ns() < deadline)
        usleep(10000);
    souk__grpc_drain_end(deadline);
    long left = atomic_load(&souk__srv.inflight);
    if (left > 0) {
        /* a handler still holds a suspended connection: MHD cannot stop cleanly */
        souk_warn("drain deadline passed", "{s:I}", "inflight", (json_int_t)left);
        souk__log_flush();
        souk__events_stop();
        if (service->stop != NULL)
            service->stop();
        souk__otlp_stop();
        return;
    }
    if (public_l.daemon != NULL)
        MHD_stop_daemon(public_l.daemon);
    public_l.daemon = NULL;
    if (admin_l.daemon != NULL) /* kept answering /readyz "draining" until now */
        MHD_stop_daemon(admin_l.daemon);
    admin_l.daemon = NULL;
    if (probe_l.daemon != NULL) /* the same */
        MHD_stop_daemon(probe_l.daemon);
    probe_l.daemon = NULL;
    souk__conn_stop();
    souk__events_stop();
    if (service->stop != NULL)
        service->stop();
    souk_db_stop_checkpointer();
    souk__otlp_stop(); /* last: the spans of the drain itself go out too */
    souk__log_flush();
}

int souk_main(int argc, char **argv, const struct souk_service *svc)
{
    service = svc;
    const char *cmd = argc > 1 ? argv[1] : "serve";
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "config") == 0) {
        usage(stdout, argv[0]);
        print_config(stdout, svc);
        return fflush(stdout) == 0 ? 0 : 1;
    }
    if (strcmp(cmd, "serve") != 0 && strcmp(cmd, "migrate") != 0 && strcmp(cmd, "seed") != 0) {
        usage(stderr, argv[0]);
        return 2;
    }
    /* from here every line, a refused configuration's too, is an ECS line under the
     * service's name; load_config() sets the level */
    souk_log_init(svc->name, SOUK_LOG_INFO);
    if (sodium_init() < 0) {
        souk_error("libsodium failed to initialise", NULL);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    umask(077); /* databases, keys and logs we create are ours alone */
    if (load_config(svc) != 0 || souk__otlp_init(svc->name, cfg_listen) != 0 ||
        souk__events_configure(svc) != 0)
        return 2;
    if (open_database(svc) != 0) {
        souk_error("database not ready", NULL);
        return 1;
    }
    if (build_routes(svc) != 0)
        return 1;
    if (strcmp(cmd, "migrate") == 0)
        return 0;
    if (strcmp(cmd, "seed") == 0) {
        int rc = svc->seed != NULL ? svc->seed(souk_db_thread()) : 0;
        if (rc != 0)
            souk_error("seed failed", "{s:s}", "error", souk_strerror(rc));
        return rc == 0 ? 0 : 1;
    }

    struct sockaddr_in sa;
    if (listen_address(cfg_listen, &sa) != 0) {
        souk_log_config_error("SOUK_LISTEN=\"%s\": expected an IPv4 host:port", cfg_listen);
        return 2;
    }
    if (resolve_admin() != 0 || resolve_probe() != 0 || load_tls() != 0)
        return 2;
    if (listener_routes(svc) != 0)
        return 1;
    /* SIGTERM and SIGINT are taken by sigwait() below, in this thread only. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (souk_auth_init() != 0 || souk_db_start_checkpointer() != 0)
        return 1;
    if (souk__otlp_start() != 0 || (svc->start != NULL && svc->start() != 0) ||
        souk__events_start() != 0) {
        souk_error("start failed", NULL);
        return 1;
    }
    int own = 0; /* the service serves the public listener itself */
    if (svc->serve != NULL) {
        struct souk_serve ss = {.listen = cfg_listen,
                                .threads = (int)cfg_threads,
                                .tls = public_l.tls,
                                .max_conns = (long)cfg_max_conns,
                                .max_per_ip = (long)cfg_max_per_ip,
                                .header_timeout_s = (long)cfg_header_timeout,
                                .idle_timeout_s = (long)cfg_conn_timeout,
                                .max_body = (size_t)cfg_max_body,
                                .access_log = cfg_access_log,
                                .trusted_proxies = trusted_proxies,
                                .not_ready = not_ready};
        own = svc->serve(&ss);
        if (own < 0)
            return own == SOUK_EINVAL ? 2 : 1;
    }
    if (souk__conn_start(cfg_header_timeout, cfg_conn_timeout) != 0 ||
        (own == 0 && start_public(&sa) != 0))
        return 1;
    if (start_side(admin_addr, sizeof(admin_addr), &admin_l, "admin") != 0 ||
        start_side(probe_addr, sizeof(probe_addr), &probe_l, "probe") != 0) {
        if (public_l.daemon != NULL)
            MHD_stop_daemon(public_l.daemon);
        return 1;
    }
    if (souk__grpc_start(svc) != 0) /* SOUK_GRPC_LISTEN, when the service has RPCs */
        return 1;
    atomic_store(&started, true);
    char db_shown[512]; /* a database URL may carry a password */
    souk_info("listening", "{s:s,s:s,s:s,s:b,s:I,s:s}", "addr", cfg_listen, "admin",
              admin_addr[0] != '\0' ? admin_addr : "off", "probe",
              probe_addr[0] != '\0' ? probe_addr : "off", "tls", public_l.tls, "threads",
              (json_int_t)cfg_threads, "db",
              souk_config_redact_url(cfg_db, db_shown, sizeof(db_shown)));

    /* this thread only waits for a signal: between waits it gives the heap back
     * when the service has gone quiet (memtrim.c) */
    int sig;
    const struct timespec tick = {1, 0};
    while ((sig = sigtimedwait(&sigs, NULL, &tick)) < 0)
        souk__memtrim_tick();
    souk_info("signal received", "{s:i}", "signal", sig);
    drain();
    souk_info("stopped", NULL);
    return 0;
}
/* child.c: one service process: what happens between fork and exec (session,
 * parent-death signal, log file, the per-instance environment), and the /readyz
 * probe the supervisor and `souk status` use. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"

#define TOKEN_ISSUER "users" /* the service that signs tokens and serves its key set */

/* Each URL of the comma-separated list urls with path appended, into out. */
static void each_with_path(char *out, size_t cap, const char *urls, const char *path)
{
    size_t len = 0;
    out[0] = '\0';
    for (const char *p = urls; *p != '\0' && len < cap;) {
        size_t n = strcspn(p, ",");
        int w = fmt(out + len, cap - len, "%s%.*s%s", len > 0 ? "," : "", (int)n, p, path);
        if (w < 0)
            break;
        len += (size_t)w;
        p += n + (p[n] == ',');
    }
}

/* Where every service finds the issuer's key set and token endpoint: the kit reads
 * SOUK_JWKS_URL and SOUK_TOKEN_URL and names no service itself. */
static void set_issuer_urls(const struct config *c)
{
    char buf[URLS_MAX * 2];
    for (int i = 0; i < NSERVICES; i++) {
        if (strcmp(services[i].name, TOKEN_ISSUER) != 0)
            continue;
        each_with_path(buf, sizeof buf, c->urls[i], "/.well-known/jwks.json");
        setenv("SOUK_JWKS_URL", buf, 0);
        each_with_path(buf, sizeof buf, c->urls[i], "/oauth/token");
        setenv("SOUK_TOKEN_URL", buf, 0);
    }
}

/* "SOUK_<NAME><suffix>" with the service's name in capitals. */
static int service_var(char *out, size_t size, const char *name, const char *suffix)
{
    int n = fmt(out, size, "SOUK_%s%s", name, suffix);
    for (int j = 5; j < n && name[j - 5] != '\0'; j++)
        out[j] = (char)(out[j] >= 'a' && out[j] <= 'z' ? out[j] - 'a' + 'A' : out[j]);
    return n;
}

/* SOUK_DB: the service's own database when SOUK_<NAME>_DB names one (the scale-out
 * mode: a PostgreSQL database and role per service, its password in the file
 * SOUK_<NAME>_DB_PASSWORD_FILE), else its SQLite file under var/ (all its replicas
 * share either). A password file meant for another service is never passed on. */
static void set_database(const struct config *c, const char *name)
{
    char key[96], buf[PATH_MAX + 64];
    const char *own = NULL, *password_file = NULL;

    if (service_var(key, sizeof key, name, "_DB") >= 0)
        own = getenv(key);
    if (own && *own) {
        setenv("SOUK_DB", own, 1);
        if (service_var(key, sizeof key, name, "_DB_PASSWORD_FILE") >= 0)
            password_file = getenv(key);
        if (password_file && *password_file)
            setenv("SOUK_DB_PASSWORD_FILE", password_file, 1);
        else
            unsetenv("SOUK_DB_PASSWORD_FILE");
        return;
    }
    if (fmt(buf, sizeof buf, "sqlite:%s/db/%s.db", c->var_dir, name) >= 0)
        setenv("SOUK_DB", buf, 1);
}

/*
 * In the child, between fork and exec: own session (so Ctrl-C reaches only the
 * supervisor), die with the parent, log to file, then the per-service environment.
 */
void child_exec(const struct config *c, int svc, int replica, pid_t parent, const char *log_path,
                bool own_session, const char *arg)
{
    const char *name = services[svc].name;
    char path[PATH_MAX], buf[PATH_MAX + 64], key[64];
    sigset_t none;
    int fd;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    if (own_session)
        setsid();
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
        _exit(EXIT_EXEC_FAILED);
    if (log_path) {
        fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
            _exit(EXIT_EXEC_FAILED);
        close(fd);
        log_set_format(LOG_ECS); /* the service's log is ECS: a failed exec says so there too */
        fd = open("/dev/null", O_RDONLY);
        if (fd >= 0 && fd != STDIN_FILENO) {
            dup2(fd, STDIN_FILENO);
            close(fd);
        }
    }
    /* Per instance, always set. The client id and secret are per service too:
     * one inherited from the shell would give every service the same identity. */
    setenv("SOUK_SERVICE", name, 1);
    setenv("SOUK_CLIENT_ID", name, 1);
    setenv("SOUK_CLIENT_SECRET", c->secrets[svc], 1);
    setenv("SOUK_VAR", c->var_dir, 1); /* the same directory, made absolute */
    if (fmt(buf, sizeof buf, "%s:%d", c->host, config_port(c, svc, replica)) >= 0)
        setenv("SOUK_LISTEN", buf, 1);
    set_database(c, name);
    if (fmt(buf, sizeof buf, "%d", replica) >= 0)
        setenv("SOUK_REPLICA", buf, 1);
    /* The admin listener (/metrics, /healthz, /readyz) where the layout has one, on
     * loopback whatever SOUK_HOST is; a value from the shell would put every service
     * on the same port. */
    if (services[svc].edge &&
        fmt(buf, sizeof buf, "127.0.0.1:%d", config_admin_port(c, svc, replica)) >= 0)
        setenv("SOUK_ADMIN_LISTEN", buf, 1);
    else
        unsetenv("SOUK_ADMIN_LISTEN");
    /* Behind the gateway, /healthz and /readyz also on a listener with a thread of its
     * own at the instance's port + 1100 (beside its public one, on the same host), and
     * the gateway probes there: under load a probe on the public port waits behind the
     * requests and the gateway would eject a slow instance as a dead one. */
    if (!services[svc].edge && fmt(buf, sizeof buf, "%s:%d", c->host,
                                   config_port(c, svc, replica) + ADMIN_PORT_OFFSET) >= 0)
        setenv("SOUK_PROBE_LISTEN", buf, 1);
    else
        unsetenv("SOUK_PROBE_LISTEN");
    if (services[svc].edge && fmt(buf, sizeof buf, "%d", (int)ADMIN_PORT_OFFSET) >= 0)
        setenv("SOUK_UPSTREAM_PROBE_PORT_OFFSET", buf, 0);
    /* gRPC beside HTTP on the layout's port (8081 → 9081); like the admin listener, a
     * value from the shell would put every service on the same port */
    if (!services[svc].edge &&
        fmt(buf, sizeof buf, "%s:%d", c->host, config_grpc_port(c, svc, replica)) >= 0)
        setenv("SOUK_GRPC_LISTEN", buf, 1);
    else
        unsetenv("SOUK_GRPC_LISTEN");
    /* Behind the gateway, a service takes X-Forwarded-For (the client's address, for
     * throttling) from the gateway alone. The gateway itself faces the clients: it
     * trusts nobody's X-Forwarded-For unless the user set a proxy in front of it. */
    if (!services[svc].edge)
        setenv("SOUK_TRUSTED_PROXIES", config_gateway_addr(c), 1);
    /* Shared settings: the user's own value wins. */
    setenv("SOUK_CLIENTS_FILE", c->clients_file, 0);
    for (int i = 0; i < NSERVICES; i++) {
        int n = fmt(key, sizeof key, "SOUK_%s_URL", services[i].name);
        for (int j = 0; j < n; j++)
            key[j] = (char)(key[j] >= 'a' && key[j] <= 'z' ? key[j] - 'a' + 'A' : key[j]);
        setenv(key, c->urls[i], 0);
        /* calls between services over gRPC unless SOUK_RPC=rest (the HTTP URLs stay:
         * the feed, the keys and the gateway are HTTP) */
        if (!services[i].edge && !c->rest &&
            fmt(key, sizeof key, "SOUK_%s_GRPC_URL", services[i].name) > 0) {
            for (int j = 5; key[j] != '_'; j++)
                key[j] = (char)(key[j] >= 'a' && key[j] <= 'z' ? key[j] - 'a' + 'A' : key[j]);
            setenv(key, c->grpc_urls[i], 0);
        }
    }
    set_issuer_urls(c);
    if (fmt(path, sizeof path, "%s/%s", c->bin_dir, name) >= 0)
        execl(path, path, arg, (char *)NULL);
    fmt(buf, sizeof buf, "cannot run %s: %s", path, strerror(errno));
    say(SOUK_LOG_ERROR, buf, "{s:s,s:s}", "file.path", path, "error", strerror(errno));
    _exit(EXIT_EXEC_FAILED);
}

/* GET /readyz on host:port, true on a 200 answer. */
bool child_probe_ready(const char *host, int port, int timeout_ms)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    char portstr[16], req[512], resp[16];
    size_t got = 0;
    ssize_t n;
    bool ok = false;
    int fd = -1, len;

    if (fmt(portstr, sizeof portstr, "%d", port) < 0 ||
        getaddrinfo(host, portstr, &hints, &ai) != 0)
        goto out;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
        goto out;
    len = fmt(req, sizeof req, "GET /readyz HTTP/1.0\r\nHost: %s:%d\r\n\r\n", host, port);
    if (len < 0 || send(fd, req, (size_t)len, MSG_NOSIGNAL) != len)
        goto out;
    while (got < sizeof resp - 1 && (n = recv(fd, resp + got, sizeof resp - 1 - got, 0)) > 0)
        got += (size_t)n;
    resp[got] = '\0';
    /* "HTTP/1.x 200 ..." */
    ok = got >= 12 && strncmp(resp, "HTTP/1.", 7) == 0 && strncmp(resp + 8, " 200", 4) == 0;
out:
    if (fd >= 0)
        close(fd);
    if (ai)
        freeaddrinfo(ai);
    return ok;
}

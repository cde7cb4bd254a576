/*
 * souk — the local supervisor. `souk up` starts every built service on its own
 * port, restarts crashed ones with backoff and stops them all on Ctrl-C;
 * `down`, `status` and `seed` act on a running platform. Contract: cli/README.md.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

enum {
    NSERVICES = 7,
    MAX_REPLICAS = 10, /* replica ports are base+100+10*i+k, k < 10 */
    MAX_INSTANCES = NSERVICES * MAX_REPLICAS,
    DEFAULT_PORT_BASE = 8080,
    MAX_PORT_BASE = 65535 - 200,
    REPLICA_PORT_OFFSET = 100,
    REPLICA_PORT_STRIDE = 10,
    SECRET_BYTES = 32,
    SECRET_HEX = 2 * SECRET_BYTES,
    URLS_MAX = 4096,
    FILE_MAX = 64 * 1024, /* cap on clients.json and souk.state */
    BACKOFF_MIN_MS = 100,
    BACKOFF_MAX_MS = 5000,
    BACKOFF_RESET_MS = 10000, /* up this long: the next crash starts over */
    READY_POLL_MS = 100,
    READY_TIMEOUT_MS = 30000,
    DAEMON_WAIT_MS = READY_TIMEOUT_MS + 5000,
    LOOP_PROBE_MS = 250, /* probes inside the supervisor loop stay short */
    STATUS_PROBE_MS = 1000,
    STOP_GRACE_MS = 10000,
    DOWN_WAIT_MS = 15000,
    EXIT_USAGE = 2,
    EXIT_EXEC_FAILED = 127,
};

/* In start order; port_offset places each on base+offset. */
static const struct service {
    const char *name;
    int port_offset;
} services[NSERVICES] = {
    {"users", 1},    {"catalog", 2}, {"cart", 3},    {"orders", 4},
    {"payments", 5}, {"notify", 6},  {"gateway", 0},
};

struct config {
    char bin_dir[PATH_MAX];
    char var_dir[PATH_MAX];
    char clients_file[PATH_MAX];
    const char *host;
    int port_base;
    int replicas[NSERVICES];
    char secrets[NSERVICES][SECRET_HEX + 1];
    char urls[NSERVICES][URLS_MAX];
};

struct instance {
    int svc; /* index into services[] */
    int replica;
    int port;
    pid_t pid; /* 0 while waiting for a restart */
    time_t started_at;
    long long started_ms; /* monotonic, for uptime and backoff reset */
    long long restart_at_ms;
    int backoff_ms;
    int restarts;
    bool ready;
};

struct supervisor {
    struct config *cfg;
    struct instance inst[MAX_INSTANCES];
    int ninst;
    int sigfd;
    int notify_fd; /* `up -d`: the waiting parent reads the ready line */
    long long start_ms;
    long long last_probe_ms;
    bool ready_done; /* all ready, or gave up waiting */
    bool stopping;
};

static void usage(FILE *f)
{
    fputs("usage: souk <command>\n"
          "  up [-d] [--replicas svc=n,...]  start all services and supervise them\n"
          "                                  (-d: detach, return once all are ready)\n"
          "  down                            stop a running supervisor\n"
          "  status                          show instances and their readiness\n"
          "  seed                            run `<service> seed` for every service\n"
          "  help                            this text\n"
          "environment: SOUK_VAR SOUK_BIN_DIR SOUK_HOST SOUK_PORT_BASE SOUK_REPLICAS\n",
          f);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* snprintf that reports truncation as -1 instead of cutting a path short. */
__attribute__((format(printf, 3, 4))) static int fmt(char *buf, size_t size, const char *f, ...)
{
    va_list ap;
    int n;

    va_start(ap, f);
    n = vsnprintf(buf, size, f, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

static const char *label(const struct instance *in, char *buf, size_t size)
{
    if (in->replica == 0)
        return services[in->svc].name;
    if (fmt(buf, size, "%s-%d", services[in->svc].name, in->replica) < 0)
        return services[in->svc].name;
    return buf;
}

static int service_port(const struct config *c, int svc, int replica)
{
    if (replica == 0)
        return c->port_base + services[svc].port_offset;
    return c->port_base + REPLICA_PORT_OFFSET + REPLICA_PORT_STRIDE * services[svc].port_offset +
           replica;
}

static int mkdir_p(const char *path, mode_t mode)
{
    char buf[PATH_MAX];

    if (fmt(buf, sizeof buf, "%s", path) < 0)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Whole file into a fresh NUL-terminated buffer (caller frees); NULL if absent. */
static char *read_file(const char *path)
{
    char *buf = NULL;
    ssize_t n;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        goto out;
    buf = malloc(FILE_MAX + 1);
    if (!buf)
        goto out;
    while (len < FILE_MAX && (n = read(fd, buf + len, FILE_MAX - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
out:
    if (fd >= 0)
        close(fd);
    return buf;
}

/* Replace path by text in one step: write a temp file, then rename over it. */
static int write_atomic(const char *path, const char *text, mode_t mode)
{
    char tmp[PATH_MAX];
    size_t len = strlen(text);
    int fd = -1, rc = -1;

    if (fmt(tmp, sizeof tmp, "%s.tmp", path) < 0)
        goto out;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || fchmod(fd, mode) < 0 || write(fd, text, len) != (ssize_t)len)
        goto out;
    if (close(fd) < 0) {
        fd = -1;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto out;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        fprintf(stderr, "souk: cannot write %s: %s\n", path, strerror(errno));
    return rc;
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

/* Everything from the environment; create makes the var/ layout first. */
static int load_config(struct config *c, const char *replicas_arg, bool create)
{
    static const char *const subdirs[] = {"log", "db", "run", "mail"};
    const char *var = getenv("SOUK_VAR"), *base = getenv("SOUK_PORT_BASE");
    const char *reps = getenv("SOUK_REPLICAS"), *host = getenv("SOUK_HOST");
    char path[PATH_MAX];
    char *end;
    long port_base = DEFAULT_PORT_BASE;

    memset(c, 0, sizeof *c);
    c->host = host && *host ? host : "127.0.0.1";
    if (base && *base) {
        port_base = strtol(base, &end, 10);
        if (*end || port_base < 1 || port_base > MAX_PORT_BASE) {
            fprintf(stderr, "souk: bad SOUK_PORT_BASE '%s'\n", base);
            return -1;
        }
    }
    c->port_base = (int)port_base;
    for (int i = 0; i < NSERVICES; i++)
        c->replicas[i] = 1;
    if ((reps && *reps && parse_replicas(reps, c->replicas) < 0) ||
        (replicas_arg && parse_replicas(replicas_arg, c->replicas) < 0)) {
        fprintf(stderr, "souk: bad replicas spec (want e.g. catalog=2,users=3; 1..%d)\n",
                MAX_REPLICAS);
        return -1;
    }
    if (find_bin_dir(c->bin_dir) < 0) {
        fprintf(stderr, "souk: cannot find the service binaries: %s\n", strerror(errno));
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
    fprintf(stderr, "souk: cannot create %s: %s\n", var, strerror(errno));
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
static int load_secrets(struct config *c)
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

/* SOUK_<PEER>_URL values: every replica of each service, comma-separated. */
static int build_urls(struct config *c)
{
    for (int i = 0; i < NSERVICES; i++) {
        size_t len = 0;

        for (int k = 0; k < c->replicas[i]; k++) {
            int n = fmt(c->urls[i] + len, URLS_MAX - len, "%shttp://%s:%d", k ? "," : "", c->host,
                        service_port(c, i, k));
            if (n < 0)
                return -1;
            len += (size_t)n;
        }
    }
    return 0;
}

/*
 * In the child, between fork and exec: own session (so Ctrl-C reaches only the
 * supervisor), die with the parent, log to file, then the per-service environment.
 */
static void exec_service(const struct config *c, int svc, int replica, pid_t parent,
                         const char *log_path, bool own_session, const char *arg)
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
    if (fmt(buf, sizeof buf, "%s:%d", c->host, service_port(c, svc, replica)) >= 0)
        setenv("SOUK_LISTEN", buf, 1);
    if (fmt(buf, sizeof buf, "sqlite:%s/db/%s.db", c->var_dir, name) >= 0)
        setenv("SOUK_DB", buf, 1);
    if (fmt(buf, sizeof buf, "%d", replica) >= 0)
        setenv("SOUK_REPLICA", buf, 1);
    /* Shared settings: the user's own value wins. */
    setenv("SOUK_CLIENTS_FILE", c->clients_file, 0);
    for (int i = 0; i < NSERVICES; i++) {
        int n = fmt(key, sizeof key, "SOUK_%s_URL", services[i].name);
        for (int j = 0; j < n; j++)
            key[j] = (char)(key[j] >= 'a' && key[j] <= 'z' ? key[j] - 'a' + 'A' : key[j]);
        setenv(key, c->urls[i], 0);
    }
    if (fmt(path, sizeof path, "%s/%s", c->bin_dir, name) >= 0)
        execl(path, path, arg, (char *)NULL);
    fprintf(stderr, "souk: cannot run %s: %s\n", path, strerror(errno));
    _exit(EXIT_EXEC_FAILED);
}

static bool binary_exists(const struct config *c, int svc)
{
    char path[PATH_MAX];

    return fmt(path, sizeof path, "%s/%s", c->bin_dir, services[svc].name) >= 0 &&
           access(path, X_OK) == 0;
}

/* GET /readyz on host:port, true on a 200 answer. */
static bool probe_ready(const char *host, int port, int timeout_ms)
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

static int pidfile_path(const struct config *c, char *out)
{
    return fmt(out, PATH_MAX, "%s/run/souk.pid", c->var_dir);
}

/* The pid file is also a lock, held by the live supervisor: returns an fd on
 * it (and the pid) when a supervisor holds it, -1 when none is running. */
static int open_running(const struct config *c, pid_t *pid)
{
    char path[PATH_MAX], buf[32] = "";
    int fd;

    if (!c->var_dir[0] || pidfile_path(c, path) < 0)
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_SH | LOCK_NB) == 0 || read(fd, buf, sizeof buf - 1) <= 0) {
        close(fd);
        return -1;
    }
    *pid = (pid_t)atol(buf);
    if (*pid <= 1) { /* never kill(0) or init on a garbled file */
        close(fd);
        return -1;
    }
    return fd;
}

/* Take the pid file for this process; -1 if another supervisor holds it. */
static int take_pidfile(const struct config *c)
{
    char path[PATH_MAX], buf[32];
    struct stat held, named;
    int fd = -1, len;

    if (pidfile_path(c, path) < 0)
        return -1;
    for (;;) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
            goto fail;
        /* A supervisor that just exited may have unlinked what we locked. */
        if (fstat(fd, &held) == 0 && stat(path, &named) == 0 && held.st_ino == named.st_ino)
            break;
        close(fd);
    }
    len = fmt(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || write(fd, buf, (size_t)len) != len)
        goto fail;
    return fd;
fail:
    if (errno == EWOULDBLOCK)
        fprintf(stderr, "souk: another supervisor is running for %s\n", c->var_dir);
    else
        fprintf(stderr, "souk: %s: %s\n", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* var/run/souk.state: `name replica port pid started_at_unix restarts`. */
static void write_state(const struct supervisor *s)
{
    char path[PATH_MAX], text[FILE_MAX];
    size_t len = 0;

    text[0] = '\0';
    for (int i = 0; i < s->ninst && len < sizeof text; i++) {
        const struct instance *in = &s->inst[i];
        len += (size_t)snprintf(text + len, sizeof text - len, "%s %d %d %ld %lld %d\n",
                                services[in->svc].name, in->replica, in->port, (long)in->pid,
                                (long long)in->started_at, in->restarts);
    }
    if (fmt(path, sizeof path, "%s/run/souk.state", s->cfg->var_dir) >= 0)
        write_atomic(path, text, 0644);
}

static void start_instance(struct supervisor *s, struct instance *in)
{
    char log_path[PATH_MAX], name[64];
    const char *what = label(in, name, sizeof name);
    pid_t parent = getpid(), pid;

    if (fmt(log_path, sizeof log_path, "%s/log/%s.log", s->cfg->var_dir, what) < 0)
        return;
    pid = fork();
    if (pid == 0)
        exec_service(s->cfg, in->svc, in->replica, parent, log_path, true, NULL);
    in->started_at = time(NULL);
    in->started_ms = now_ms();
    if (pid < 0) { /* treated like an instant crash: retried with backoff */
        fprintf(stderr, "souk: fork for %s: %s\n", what, strerror(errno));
        in->pid = 0;
        in->restart_at_ms = in->started_ms + in->backoff_ms;
        return;
    }
    in->pid = pid;
    printf("souk: %-12s port %d pid %ld\n", what, in->port, (long)pid);
}

static void describe_exit(int status, char *buf, size_t size)
{
    if (WIFSIGNALED(status))
        fmt(buf, size, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        fmt(buf, size, "exited with status %d", WEXITSTATUS(status));
}

static void on_exit_status(struct supervisor *s, struct instance *in, int status)
{
    char name[64], why[128];
    long long now = now_ms(), up = now - in->started_ms;

    describe_exit(status, why, sizeof why);
    in->pid = 0;
    in->ready = false;
    if (s->stopping) {
        printf("souk: %s stopped (%s)\n", label(in, name, sizeof name), why);
        return;
    }
    if (up >= BACKOFF_RESET_MS)
        in->backoff_ms = BACKOFF_MIN_MS;
    in->restart_at_ms = now + in->backoff_ms;
    printf("souk: %s %s after %.1f s; restarting in %d ms\n", label(in, name, sizeof name), why,
           up / 1000.0, in->backoff_ms);
    in->backoff_ms = in->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : in->backoff_ms * 2;
}

static void reap_children(struct supervisor *s)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        for (int i = 0; i < s->ninst; i++)
            if (s->inst[i].pid == pid)
                on_exit_status(s, &s->inst[i], status);
    write_state(s);
}

/* Drain the signalfd; returns true if a stop was asked for. */
static bool read_signals(struct supervisor *s)
{
    struct signalfd_siginfo si;
    bool stop = false;

    while (read(s->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            reap_children(s);
        else
            stop = true;
    }
    return stop;
}

static void restart_due(struct supervisor *s)
{
    long long now = now_ms();
    bool changed = false;

    for (int i = 0; i < s->ninst; i++) {
        struct instance *in = &s->inst[i];
        if (in->pid || in->restart_at_ms > now)
            continue;
        in->restarts++;
        start_instance(s, in);
        changed = true;
    }
    if (changed)
        write_state(s);
}

/* Tell a waiting `up -d` parent how it went: the ready line, or EOF for failure. */
static void notify_parent(struct supervisor *s, const char *line)
{
    if (s->notify_fd < 0)
        return;
    if (line && write(s->notify_fd, line, strlen(line)) < 0)
        perror("souk: notify");
    close(s->notify_fd);
    s->notify_fd = -1;
}

static void check_ready(struct supervisor *s)
{
    long long now = now_ms();
    char line[128], name[64];
    int waiting = 0;

    if (s->ready_done || now - s->last_probe_ms < READY_POLL_MS)
        return;
    s->last_probe_ms = now;
    for (int i = 0; i < s->ninst; i++) {
        struct instance *in = &s->inst[i];
        if (!in->ready && in->pid)
            in->ready = probe_ready(s->cfg->host, in->port, LOOP_PROBE_MS);
        waiting += !in->ready;
    }
    if (waiting == 0) {
        s->ready_done = true;
        fmt(line, sizeof line, "souk: all %d instances ready in %.2f s\n", s->ninst,
            (now_ms() - s->start_ms) / 1000.0);
        fputs(line, stdout);
        notify_parent(s, line);
    } else if (now - s->start_ms >= READY_TIMEOUT_MS) {
        s->ready_done = true;
        printf("souk: not ready after %d s:", READY_TIMEOUT_MS / 1000);
        for (int i = 0; i < s->ninst; i++)
            if (!s->inst[i].ready)
                printf(" %s", label(&s->inst[i], name, sizeof name));
        printf("\n");
        if (s->notify_fd >= 0) /* `up -d` fails: stop, then tell the parent */
            s->stopping = true;
    }
}

static int next_timeout(const struct supervisor *s)
{
    long long now = now_ms(), wait = s->ready_done ? -1 : READY_POLL_MS;

    for (int i = 0; i < s->ninst; i++) {
        long long due = s->inst[i].restart_at_ms - now;
        if (s->inst[i].pid)
            continue;
        due = due < 0 ? 0 : due;
        if (wait < 0 || due < wait)
            wait = due;
    }
    return (int)wait; /* -1: nothing to do until a signal */
}

static int alive_count(const struct supervisor *s)
{
    int n = 0;

    for (int i = 0; i < s->ninst; i++)
        n += s->inst[i].pid != 0;
    return n;
}

/* Signal an instance's whole process group (it is a session leader). */
static void kill_instance(const struct instance *in, int sig)
{
    if (in->pid > 0 && kill(-in->pid, sig) < 0)
        kill(in->pid, sig);
}

/* SIGTERM everyone, give them STOP_GRACE_MS, then SIGKILL the rest. */
static void stop_all(struct supervisor *s)
{
    long long deadline = now_ms() + STOP_GRACE_MS;
    struct pollfd p = {.fd = s->sigfd, .events = POLLIN};
    int status;

    s->stopping = true;
    printf("souk: stopping %d instances\n", alive_count(s));
    for (int i = 0; i < s->ninst; i++)
        kill_instance(&s->inst[i], SIGTERM);
    for (long long left; alive_count(s) > 0 && (left = deadline - now_ms()) > 0;)
        if (poll(&p, 1, (int)left) > 0 && read_signals(s))
            break; /* asked twice: stop waiting */
    for (int i = 0; i < s->ninst; i++) {
        struct instance *in = &s->inst[i];
        if (!in->pid)
            continue;
        kill_instance(in, SIGKILL);
        if (waitpid(in->pid, &status, 0) == in->pid)
            on_exit_status(s, in, status);
    }
}

static void plan_instances(struct supervisor *s)
{
    const struct config *c = s->cfg;
    char missing[256] = "";
    size_t len = 0;

    for (int i = 0; i < NSERVICES; i++) {
        if (!binary_exists(c, i)) {
            len += (size_t)snprintf(missing + len, sizeof missing - len, " %s", services[i].name);
            continue;
        }
        for (int k = 0; k < c->replicas[i]; k++)
            s->inst[s->ninst++] = (struct instance){.svc = i,
                                                    .replica = k,
                                                    .port = service_port(c, i, k),
                                                    .backoff_ms = BACKOFF_MIN_MS};
    }
    if (len)
        printf("souk: not built, skipped:%s (looked in %s)\n", missing, c->bin_dir);
}

static int supervise(struct config *c, int notify_fd)
{
    struct supervisor s;
    struct pollfd p = {.events = POLLIN};
    char path[PATH_MAX];
    sigset_t mask;
    int lock_fd, rc = 1;

    s = (struct supervisor){.cfg = c, .sigfd = -1, .notify_fd = notify_fd};
    lock_fd = take_pidfile(c);
    if (lock_fd < 0)
        goto out;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
        (s.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        perror("souk: signalfd");
        goto out;
    }
    p.fd = s.sigfd;
    plan_instances(&s);
    s.start_ms = now_ms();
    for (int i = 0; i < s.ninst; i++)
        start_instance(&s, &s.inst[i]);
    write_state(&s);
    while (!s.stopping) {
        if (poll(&p, 1, next_timeout(&s)) > 0 && read_signals(&s))
            break;
        restart_due(&s);
        check_ready(&s);
    }
    stop_all(&s);
    printf("souk: stopped\n");
    rc = 0;
out:
    if (s.sigfd >= 0)
        close(s.sigfd);
    if (lock_fd >= 0) {
        if (fmt(path, sizeof path, "%s/run/souk.state", c->var_dir) >= 0)
            unlink(path);
        if (pidfile_path(c, path) >= 0)
            unlink(path);
        close(lock_fd);
    }
    notify_parent(&s, NULL); /* last: a failed `up -d` returns to a clean slate */
    return rc;
}

/* `up -d`: the child becomes the supervisor; we wait for its ready line. */
static int daemonize(struct config *c)
{
    char log_path[PATH_MAX], buf[256];
    struct pollfd p = {.events = POLLIN};
    long long deadline = now_ms() + DAEMON_WAIT_MS;
    size_t got = 0;
    ssize_t n;
    int fds[2], fd;
    pid_t pid;

    if (fmt(log_path, sizeof log_path, "%s/log/souk.log", c->var_dir) < 0 ||
        pipe2(fds, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
        perror("souk: up -d");
        return 1;
    }
    if (pid == 0) {
        close(fds[0]);
        setsid();
        fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
            _exit(1);
        close(fd);
        fd = open("/dev/null", O_RDONLY);
        if (fd >= 0 && fd != STDIN_FILENO)
            dup2(fd, STDIN_FILENO);
        _exit(supervise(c, fds[1]));
    }
    close(fds[1]);
    p.fd = fds[0];
    while (got < sizeof buf - 1 && now_ms() < deadline &&
           poll(&p, 1, (int)(deadline - now_ms())) > 0 &&
           (n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    close(fds[0]);
    buf[got] = '\0';
    if (got == 0) {
        fprintf(stderr, "souk: failed to start, see %s\n", log_path);
        return 1;
    }
    printf("%ssouk: supervisor pid %ld, log %s\n", buf, (long)pid, log_path);
    return 0;
}

static int cmd_up(int argc, char **argv)
{
    struct config c;
    const char *replicas = NULL;
    bool detach = false;
    pid_t pid;
    int fd;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-d") == 0)
            detach = true;
        else if (strcmp(argv[i], "--replicas") == 0 && i + 1 < argc)
            replicas = argv[++i];
        else if (strncmp(argv[i], "--replicas=", strlen("--replicas=")) == 0)
            replicas = argv[i] + strlen("--replicas=");
        else {
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (load_config(&c, replicas, true) < 0 || load_secrets(&c) < 0 || build_urls(&c) < 0)
        return 1;
    fd = open_running(&c, &pid);
    if (fd >= 0) {
        close(fd);
        fprintf(stderr, "souk: already running (pid %ld) for %s\n", (long)pid, c.var_dir);
        return 1;
    }
    return detach ? daemonize(&c) : supervise(&c, -1);
}

static int cmd_down(void)
{
    struct config c;
    long long deadline = now_ms() + DOWN_WAIT_MS;
    pid_t pid;
    int fd, rc = 1;

    if (load_config(&c, NULL, false) < 0)
        return 1;
    fd = open_running(&c, &pid);
    if (fd < 0) {
        printf("souk: not running\n");
        return 0;
    }
    if (kill(pid, SIGTERM) < 0) {
        fprintf(stderr, "souk: cannot signal pid %ld: %s\n", (long)pid, strerror(errno));
        goto out;
    }
    /* The lock goes away only when the supervisor process is gone. */
    while (flock(fd, LOCK_SH | LOCK_NB) < 0) {
        if (now_ms() >= deadline) {
            fprintf(stderr, "souk: supervisor pid %ld still running after %d s\n", (long)pid,
                    DOWN_WAIT_MS / 1000);
            goto out;
        }
        usleep(READY_POLL_MS * 1000);
    }
    printf("souk: stopped (pid %ld)\n", (long)pid);
    rc = 0;
out:
    close(fd);
    return rc;
}

static void format_uptime(long secs, char *buf, size_t size)
{
    if (secs >= 3600)
        fmt(buf, size, "%ldh%02ldm", secs / 3600, secs % 3600 / 60);
    else if (secs >= 60)
        fmt(buf, size, "%ldm%02lds", secs / 60, secs % 60);
    else
        fmt(buf, size, "%lds", secs);
}

static int cmd_status(void)
{
    struct config c;
    char path[PATH_MAX], *state = NULL, *save = NULL, svc[32], name[48], up[32], pidstr[16];
    long pid;
    long long started;
    int fd, replica, port, restarts, rc = 1;
    pid_t sup;

    if (load_config(&c, NULL, false) < 0)
        return 1;
    fd = open_running(&c, &sup);
    if (fd < 0) {
        printf("souk: not running\n");
        goto out;
    }
    if (fmt(path, sizeof path, "%s/run/souk.state", c.var_dir) < 0 || !(state = read_file(path))) {
        fprintf(stderr, "souk: no state file in %s/run\n", c.var_dir);
        goto out;
    }
    printf("supervisor pid %ld, var %s\n", (long)sup, c.var_dir);
    printf("%-14s %-6s %-8s %-8s %-8s %s\n", "SERVICE", "PORT", "PID", "UPTIME", "RESTARTS",
           "READY");
    for (char *line = strtok_r(state, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (sscanf(line, "%31s %d %d %ld %lld %d", svc, &replica, &port, &pid, &started,
                   &restarts) != 6)
            continue;
        if (replica == 0 || fmt(name, sizeof name, "%s-%d", svc, replica) < 0)
            fmt(name, sizeof name, "%s", svc);
        fmt(up, sizeof up, "-");
        fmt(pidstr, sizeof pidstr, "-");
        if (pid > 0) {
            format_uptime((long)(time(NULL) - started), up, sizeof up);
            fmt(pidstr, sizeof pidstr, "%ld", pid);
        }
        printf("%-14s %-6d %-8s %-8s %-8d %s\n", name, port, pidstr, up, restarts,
               probe_ready(c.host, port, STATUS_PROBE_MS) ? "yes" : "no");
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(state);
    return rc;
}

/* Run `<bin> seed` for each built service, in order, with replica 0's environment. */
static int cmd_seed(void)
{
    struct config c;
    int status;
    pid_t parent = getpid(), pid;

    if (load_config(&c, NULL, true) < 0 || load_secrets(&c) < 0 || build_urls(&c) < 0)
        return 1;
    for (int i = 0; i < NSERVICES; i++) {
        if (!binary_exists(&c, i))
            continue;
        printf("souk: seeding %s\n", services[i].name);
        fflush(stdout);
        pid = fork();
        if (pid == 0)
            exec_service(&c, i, 0, parent, NULL, false, "seed");
        if (pid < 0 || waitpid(pid, &status, 0) != pid) {
            perror("souk: seed");
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char why[128];
            describe_exit(status, why, sizeof why);
            fprintf(stderr, "souk: seeding %s failed: %s\n", services[i].name, why);
            return 1;
        }
    }
    printf("souk: seed done\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "help";

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(cmd, "up") == 0)
        return cmd_up(argc - 1, argv + 1);
    if (strcmp(cmd, "down") == 0 && argc == 2)
        return cmd_down();
    if (strcmp(cmd, "status") == 0 && argc == 2)
        return cmd_status();
    if (strcmp(cmd, "seed") == 0 && argc == 2)
        return cmd_seed();
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    usage(stderr);
    return EXIT_USAGE;
}

/* supervise.c: the supervisor loop: start the services in order, each once the ones
 * before it are ready, restart the ones that exit with backoff, keep
 * var/run/souk.state current, and stop them all on a signal; and `up -d`, which
 * runs it in the background. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "souk/backoff.h"

struct instance {
    int svc; /* index into services[] */
    int replica;
    int port;
    int admin_port; /* 0: none */
    bool launched;  /* started at least once (the start goes service by service) */
    pid_t pid;      /* 0 before the start and while waiting for a restart */
    time_t started_at;
    long long started_ms; /* monotonic, for uptime and backoff reset */
    long long restart_at_ms;
    int quick_exits; /* exits in a row, each within BACKOFF_RESET_MS of its start */
    int restarts;
    bool ready;
    bool ever_ready; /* an instance that fails before this stops the start */
    off_t log_from;  /* size of its log when last started: what it wrote since */
};

struct supervisor {
    struct config *cfg;
    struct instance inst[MAX_INSTANCES];
    int ninst;
    int sigfd;
    int notify_fd; /* `up -d`: the waiting parent reads the ready line */
    long long start_ms;
    long long last_probe_ms;
    int wave;        /* the next service (index into services[]) to start */
    bool ready_done; /* all ready, or gave up waiting */
    bool stopping;
    bool failed;        /* the start failed: stop everything, exit nonzero */
    char failure[1024]; /* why, for the terminal (or the waiting `up -d`) */
};

/* How long until the next restart of in: the kit's backoff (lib/backoff.c, the one
 * this binary links) from BACKOFF_MIN_MS, doubling to BACKOFF_MAX_MS, jittered. */
static int restart_delay(struct instance *in)
{
    static const struct souk_backoff restart = {BACKOFF_MIN_MS, BACKOFF_MAX_MS};
    return (int)souk_backoff_ms(&restart, ++in->quick_exits);
}

static const char *label(const struct instance *in, char *buf, size_t size)
{
    if (in->replica == 0)
        return services[in->svc].name;
    if (fmt(buf, size, "%s-%d", services[in->svc].name, in->replica) < 0)
        return services[in->svc].name;
    return buf;
}

/* var/run/souk.state: `name replica port pid started_at_unix restarts admin_port`. */
static void write_state(const struct supervisor *s)
{
    char path[PATH_MAX], text[FILE_MAX];
    size_t len = 0;

    text[0] = '\0';
    for (int i = 0; i < s->ninst && len < sizeof text; i++) {
        const struct instance *in = &s->inst[i];
        len += (size_t)snprintf(text + len, sizeof text - len, "%s %d %d %ld %lld %d %d\n",
                                services[in->svc].name, in->replica, in->port, (long)in->pid,
                                (long long)in->started_at, in->restarts, in->admin_port);
    }
    if (fmt(path, sizeof path, "%s/run/souk.state", s->cfg->var_dir) >= 0)
        write_atomic(path, text, 0644);
}

static int log_path(const struct supervisor *s, const struct instance *in, char *out)
{
    char name[64];

    return fmt(out, PATH_MAX, "%s/log/%s.log", s->cfg->var_dir, label(in, name, sizeof name));
}

static void start_instance(struct supervisor *s, struct instance *in)
{
    char log_path_[PATH_MAX], name[64], msg[256];
    const char *what = label(in, name, sizeof name);
    pid_t parent = getpid(), pid;
    struct stat st;

    if (log_path(s, in, log_path_) < 0)
        return;
    in->log_from = stat(log_path_, &st) == 0 ? st.st_size : 0;
    pid = fork();
    if (pid == 0)
        child_exec(s->cfg, in->svc, in->replica, parent, log_path_, true, NULL);
    in->started_at = time(NULL);
    in->started_ms = now_ms();
    if (pid < 0) { /* treated like an instant crash: retried with backoff */
        const char *err = strerror(errno);
        fmt(msg, sizeof msg, "fork for %s: %s", what, err);
        say(SOUK_LOG_ERROR, msg, "{s:s,s:s}", "instance", what, "error", err);
        in->pid = 0;
        in->restart_at_ms = in->started_ms + restart_delay(in);
        return;
    }
    in->pid = pid;
    fmt(msg, sizeof msg, "%s port %d pid %ld", what, in->port, (long)pid);
    say(SOUK_LOG_INFO, msg, "{s:s,s:i,s:i}", "instance", what, "port", in->port, "pid", (int)pid);
}

/* The instance's port (or admin port) that is in the given state, or 0. */
static int port_in(const struct supervisor *s, const struct instance *in, enum port_state state)
{
    if (diagnose_port(s->cfg->host, in->port) == state)
        return in->port;
    if (in->admin_port && diagnose_port(s->cfg->host, in->admin_port) == state)
        return in->admin_port;
    return 0;
}

/* Did the instance fail only because the local end of some connection had its port
 * for a moment (ports in the kernel's ephemeral range can be)? That passes: it is
 * restarted like a crash. Another server on the port is no race. */
static bool lost_bind_race(const struct supervisor *s, const struct instance *in)
{
    char path[PATH_MAX], reason[768] = "";

    if (port_in(s, in, PORT_LISTENING))
        return false;
    if (port_in(s, in, PORT_BUSY))
        return true;
    if (log_path(s, in, path) >= 0)
        diagnose_log(path, in->log_from, reason, sizeof reason);
    return strstr(reason, strerror(EADDRINUSE)) != NULL; /* and it is gone by now */
}

/* An instance failed before it was ever ready (why: how it exited), or could not
 * be started (why NULL: another server has its port). Restarting it would only
 * fail again, so the start stops, with the reason in words. */
static void start_failed(struct supervisor *s, const struct instance *in, const char *why)
{
    char name[64], path[PATH_MAX] = "", reason[768] = "";
    const char *what = label(in, name, sizeof name);
    int taken = port_in(s, in, PORT_LISTENING);

    if (!why && !taken) /* it was taken a moment ago */
        taken = in->port;

    s->failed = s->stopping = true;
    if (taken) {
        fmt(s->failure, sizeof s->failure,
            "%s: port %d is in use — is another souk running? `souk status` "
            "(or move every port with SOUK_PORT_BASE)",
            what, taken);
        say(SOUK_LOG_ERROR, s->failure, "{s:s,s:i}", "instance", what, "port", taken);
        return;
    }
    if (log_path(s, in, path) >= 0)
        diagnose_log(path, in->log_from, reason, sizeof reason);
    fmt(s->failure, sizeof s->failure, "%s %s before it was ready%s%s; its log: %s", what, why,
        reason[0] ? ": " : "", reason, path);
    say(SOUK_LOG_ERROR, s->failure, "{s:s,s:s,s:s*}", "instance", what, "file.path", path, "error",
        reason[0] ? reason : NULL);
}

/* How an instance ended, as fields: "exit_code" or "signal" (jansson "o*": the other
 * one is left out). */
static void exit_fields(int status, json_t **code, json_t **sig)
{
    *code = WIFEXITED(status) ? json_integer(WEXITSTATUS(status)) : NULL;
    *sig = WIFSIGNALED(status) ? json_integer(WTERMSIG(status)) : NULL;
}

static void on_exit_status(struct supervisor *s, struct instance *in, int status)
{
    char name[64], why[128], path[PATH_MAX], reason[512] = "", msg[1024];
    const char *what = label(in, name, sizeof name);
    long long now = now_ms(), up = now - in->started_ms;
    int pid = (int)in->pid;
    json_t *code, *sig;

    describe_exit(status, why, sizeof why);
    in->pid = 0;
    in->ready = false;
    if (s->stopping) {
        fmt(msg, sizeof msg, "%s stopped (%s)", what, why);
        exit_fields(status, &code, &sig);
        say(SOUK_LOG_INFO, msg, "{s:s,s:i,s:o*,s:o*}", "instance", what, "pid", pid, "exit_code",
            code, "signal", sig);
        return;
    }
    if (!in->ever_ready && !s->ready_done && !lost_bind_race(s, in)) {
        start_failed(s, in, why);
        return;
    }
    if (up >= BACKOFF_RESET_MS)
        in->quick_exits = 0;
    int delay = restart_delay(in);
    in->restart_at_ms = now + delay;
    /* a service that exits by itself says why in its log; a signal says nothing there */
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0 && log_path(s, in, path) >= 0)
        diagnose_log(path, in->log_from, reason, sizeof reason);
    fmt(msg, sizeof msg, "%s %s after %.1f s%s%s; restarting in %d ms", what, why, up / 1000.0,
        reason[0] ? ": " : "", reason, delay);
    exit_fields(status, &code, &sig);
    say(SOUK_LOG_WARN, msg, "{s:s,s:i,s:o*,s:o*,s:I,s:i,s:s*}", "instance", what, "pid", pid,
        "exit_code", code, "signal", sig, "uptime_ms", (json_int_t)up, "delay_ms", delay, "error",
        reason[0] ? reason : NULL);
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

    if (s->stopping)
        return;
    for (int i = 0; i < s->ninst; i++) {
        struct instance *in = &s->inst[i];
        if (!in->launched || in->pid || in->restart_at_ms > now)
            continue;
        in->restarts++;
        start_instance(s, in);
        changed = true;
    }
    if (changed)
        write_state(s);
}

/* Tell a waiting `up -d` parent how it went: '+' and the ready line, or '-' and
 * why it failed (or nothing: EOF is a failure too). */
static void notify_parent(struct supervisor *s, char mark, const char *text)
{
    char msg[sizeof s->failure + 2];
    int n;

    if (s->notify_fd < 0)
        return;
    n = text ? fmt(msg, sizeof msg, "%c%s", mark, text) : 0;
    if (n > 0 && write(s->notify_fd, msg, (size_t)n) < 0)
        sayf(SOUK_LOG_ERROR, "notify: %s", strerror(errno));
    close(s->notify_fd);
    s->notify_fd = -1;
}

/* Start every instance of the next service in start order that has any; false
 * when none is left. Services start one after the other because each calls the
 * ones before it from its first moments (every service gets its token and the
 * JWKS from users; cart prices from catalog; orders calls them all): started
 * together, a caller that found its peer not yet listening waits out its retry
 * delay (the key set's refetch, a feed consumer's backoff), and the first requests
 * after "ready" fail. (A refused connection to a peer that never answered no longer
 * opens the caller's circuit breaker: lib/README.md, "Retries and breakers".) */
static bool start_wave(struct supervisor *s)
{
    while (s->wave < NSERVICES) {
        bool any = false;
        for (int i = 0; i < s->ninst; i++) {
            struct instance *in = &s->inst[i];
            if (in->svc != s->wave)
                continue;
            /* a port another server has: its readiness probe would find that one */
            if (port_in(s, in, PORT_LISTENING)) {
                start_failed(s, in, NULL);
                return false;
            }
            in->launched = true;
            start_instance(s, in);
            any = true;
        }
        s->wave++;
        if (any) {
            write_state(s);
            return true;
        }
    }
    return false;
}

static void check_ready(struct supervisor *s)
{
    long long now = now_ms();
    char line[128], name[64], names[512] = "";
    int waiting = 0, len = 0;

    if (s->ready_done || now - s->last_probe_ms < START_POLL_MS)
        return;
    s->last_probe_ms = now;
    for (int i = 0; i < s->ninst; i++) {
        struct instance *in = &s->inst[i];
        if (!in->ready && in->pid) {
            in->ready = child_probe_ready(s->cfg->host, in->port, LOOP_PROBE_MS);
            in->ever_ready = in->ever_ready || in->ready;
        }
        waiting += in->launched && !in->ready;
    }
    if (waiting == 0 && (start_wave(s) || s->stopping))
        return; /* the next service: its instances are probed from the next round */
    if (waiting == 0) {
        long long took = now_ms() - s->start_ms;
        s->ready_done = true;
        fmt(line, sizeof line, "all %d instances ready in %.2f s", s->ninst, took / 1000.0);
        say(SOUK_LOG_INFO, line, "{s:i,s:I}", "instances", s->ninst, "event.duration",
            (json_int_t)took * 1000000);
        notify_parent(s, '+', line);
    } else if (now - s->start_ms >= s->cfg->ready_timeout_ms) {
        for (int i = 0; len >= 0 && i < s->ninst; i++) {
            if (!s->inst[i].launched || s->inst[i].ready)
                continue;
            int n = fmt(names + len, sizeof names - (size_t)len, "%s%s", len ? " " : "",
                        label(&s->inst[i], name, sizeof name));
            len = n < 0 ? -1 : len + n;
        }
        fmt(s->failure, sizeof s->failure, "not ready after %d s: %s (logs in %s/log)",
            s->cfg->ready_timeout_ms / 1000, names, s->cfg->var_dir);
        s->ready_done = true;
        if (s->notify_fd >= 0) /* `up -d` fails: stop, then tell the parent */
            s->failed = s->stopping = true;
        /* in the foreground supervision goes on: a warning */
        say(s->failed ? SOUK_LOG_ERROR : SOUK_LOG_WARN, s->failure, "{s:s}", "not_ready", names);
        while (!s->stopping && start_wave(s)) /* the rest start anyway: supervision goes on */
            ;
    }
}

static int next_timeout(const struct supervisor *s)
{
    long long now = now_ms(), wait = s->ready_done ? -1 : START_POLL_MS;

    for (int i = 0; i < s->ninst; i++) {
        long long due = s->inst[i].restart_at_ms - now;
        if (!s->inst[i].launched || s->inst[i].pid)
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
    char msg[64];
    long long deadline = now_ms() + STOP_GRACE_MS;
    struct pollfd p = {.fd = s->sigfd, .events = POLLIN};
    int status;

    s->stopping = true;
    fmt(msg, sizeof msg, "stopping %d instances", alive_count(s));
    say(SOUK_LOG_INFO, msg, "{s:i}", "instances", alive_count(s));
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
        if (!config_have_binary(c, i)) {
            len += (size_t)snprintf(missing + len, sizeof missing - len, " %s", services[i].name);
            continue;
        }
        for (int k = 0; k < c->replicas[i]; k++)
            s->inst[s->ninst++] = (struct instance){.svc = i,
                                                    .replica = k,
                                                    .port = config_port(c, i, k),
                                                    .admin_port = config_admin_port(c, i, k)};
    }
    if (len) {
        char msg[sizeof missing + PATH_MAX + 32];
        fmt(msg, sizeof msg, "not built, skipped:%s (looked in %s)", missing, c->bin_dir);
        say(SOUK_LOG_INFO, msg, "{s:s}", "skipped", missing + 1);
    }
}

int supervise(struct config *c, int notify_fd)
{
    struct supervisor s;
    struct pollfd p = {.events = POLLIN};
    char path[PATH_MAX];
    sigset_t mask;
    int lock_fd, rc = 1;

    s = (struct supervisor){.cfg = c, .sigfd = -1, .notify_fd = notify_fd};
    lock_fd = pidfile_take(c);
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
        sayf(SOUK_LOG_ERROR, "signalfd: %s", strerror(errno));
        goto out;
    }
    p.fd = s.sigfd;
    plan_instances(&s);
    s.start_ms = now_ms();
    start_wave(&s);
    write_state(&s);
    while (!s.stopping) {
        if (poll(&p, 1, next_timeout(&s)) > 0 && read_signals(&s))
            break;
        restart_due(&s);
        check_ready(&s);
    }
    stop_all(&s);
    say(SOUK_LOG_INFO, "stopped", NULL);
    rc = s.failed ? 1 : 0;
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
    /* last: a failed `up -d` returns to a clean slate */
    notify_parent(&s, '-', s.failure[0] ? s.failure : NULL);
    return rc;
}

/* `up -d`: the child becomes the supervisor; we wait for its ready line, or for
 * why it failed. */
int daemonize(struct config *c)
{
    char log_path[PATH_MAX], buf[2048], msg[PATH_MAX + 64];
    struct pollfd p = {.events = POLLIN};
    long long deadline = now_ms() + c->ready_timeout_ms + DAEMON_GRACE_MS;
    size_t got = 0;
    ssize_t n;
    int fds[2], fd;
    pid_t pid;

    if (fmt(log_path, sizeof log_path, "%s/log/souk.log", c->var_dir) < 0 ||
        pipe2(fds, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
        sayf(SOUK_LOG_ERROR, "up -d: %s", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        close(fds[0]);
        setsid();
        fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
            _exit(1);
        close(fd);
        log_set_format(LOG_ECS); /* the file is for Filebeat as much as for a person */
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
    if (buf[0] != '+') {
        if (buf[0] == '-' && buf[1])
            say(SOUK_LOG_ERROR, buf + 1, NULL);
        fmt(msg, sizeof msg, "failed to start, see %s", log_path);
        say(SOUK_LOG_ERROR, msg, "{s:s}", "file.path", log_path);
        return 1;
    }
    say(SOUK_LOG_INFO, buf + 1, NULL);
    fmt(msg, sizeof msg, "supervisor pid %ld, log %s", (long)pid, log_path);
    say(SOUK_LOG_INFO, msg, "{s:i,s:s}", "pid", (int)pid, "file.path", log_path);
    return 0;
}

/* commands.c: the commands a person types: `up` (options, then the supervisor),
 * `down`, `status` and `seed`. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cmd_up(int argc, char **argv)
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
    if (config_load(&c, replicas, true) < 0 || config_load_secrets(&c) < 0 ||
        config_build_urls(&c) < 0)
        return 1;
    fd = pidfile_running(&c, &pid);
    if (fd >= 0) {
        close(fd);
        sayf(SOUK_LOG_ERROR, "already running (pid %ld) for %s", (long)pid, c.var_dir);
        return 1;
    }
    return detach ? daemonize(&c) : supervise(&c, -1);
}

int cmd_down(void)
{
    struct config c;
    long long deadline = now_ms() + DOWN_WAIT_MS;
    pid_t pid;
    int fd, rc = 1;

    if (config_load(&c, NULL, false) < 0)
        return 1;
    fd = pidfile_running(&c, &pid);
    if (fd < 0) {
        sayf(SOUK_LOG_INFO, "not running");
        return 0;
    }
    if (kill(pid, SIGTERM) < 0) {
        sayf(SOUK_LOG_ERROR, "cannot signal pid %ld: %s", (long)pid, strerror(errno));
        goto out;
    }
    /* The lock goes away only when the supervisor process is gone. */
    while (flock(fd, LOCK_SH | LOCK_NB) < 0) {
        if (now_ms() >= deadline) {
            sayf(SOUK_LOG_ERROR, "supervisor pid %ld still running after %d s", (long)pid,
                 DOWN_WAIT_MS / 1000);
            goto out;
        }
        usleep(READY_POLL_MS * 1000);
    }
    sayf(SOUK_LOG_INFO, "stopped (pid %ld)", (long)pid);
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

int cmd_status(void)
{
    struct config c;
    char path[PATH_MAX], *state = NULL, *save = NULL, svc[32], name[48], up[32], pidstr[16];
    char admin[16];
    long pid;
    long long started;
    int fd, replica, port, restarts, admin_port, rc = 1;
    pid_t sup;

    if (config_load(&c, NULL, false) < 0)
        return 1;
    fd = pidfile_running(&c, &sup);
    if (fd < 0) {
        sayf(SOUK_LOG_INFO, "not running");
        goto out;
    }
    if (fmt(path, sizeof path, "%s/run/souk.state", c.var_dir) < 0 || !(state = read_file(path))) {
        sayf(SOUK_LOG_ERROR, "no state file in %s/run", c.var_dir);
        goto out;
    }
    printf("supervisor pid %ld, var %s\n", (long)sup, c.var_dir);
    printf("%-14s %-6s %-8s %-8s %-8s %-5s %s\n", "SERVICE", "PORT", "PID", "UPTIME", "RESTARTS",
           "READY", "ADMIN");
    for (char *line = strtok_r(state, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (sscanf(line, "%31s %d %d %ld %lld %d %d", svc, &replica, &port, &pid, &started,
                   &restarts, &admin_port) != 7)
            continue;
        if (replica == 0 || fmt(name, sizeof name, "%s-%d", svc, replica) < 0)
            fmt(name, sizeof name, "%s", svc);
        fmt(up, sizeof up, "-");
        fmt(pidstr, sizeof pidstr, "-");
        if (pid > 0) {
            format_uptime((long)(time(NULL) - started), up, sizeof up);
            fmt(pidstr, sizeof pidstr, "%ld", pid);
        }
        fmt(admin, sizeof admin, "-");
        if (admin_port > 0)
            fmt(admin, sizeof admin, "%d", admin_port);
        printf("%-14s %-6d %-8s %-8s %-8d %-5s %s\n", name, port, pidstr, up, restarts,
               child_probe_ready(c.host, port, STATUS_PROBE_MS) ? "yes" : "no", admin);
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(state);
    return rc;
}

/* Run `<bin> seed` for each built service, in order, with replica 0's environment. */
int cmd_seed(void)
{
    struct config c;
    int status;
    pid_t parent = getpid(), pid;

    if (config_load(&c, NULL, true) < 0 || config_load_secrets(&c) < 0 || config_build_urls(&c) < 0)
        return 1;
    for (int i = 0; i < NSERVICES; i++) {
        if (!config_have_binary(&c, i))
            continue;
        sayf(SOUK_LOG_INFO, "seeding %s", services[i].name);
        fflush(stdout);
        pid = fork();
        if (pid == 0)
            child_exec(&c, i, 0, parent, NULL, false, "seed");
        if (pid < 0 || waitpid(pid, &status, 0) != pid) {
            sayf(SOUK_LOG_ERROR, "seed: %s", strerror(errno));
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char why[128];
            describe_exit(status, why, sizeof why);
            sayf(SOUK_LOG_ERROR, "seeding %s failed: %s", services[i].name, why);
            return 1;
        }
    }
    sayf(SOUK_LOG_INFO, "seed done");
    return 0;
}

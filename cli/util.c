/* util.c: the supervisor's small helpers: a monotonic clock, snprintf that refuses
 * to truncate, mkdir -p, whole-file reads with a cap, atomic file replacement. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int fmt(char *buf, size_t size, const char *f, ...)
{
    va_list ap;
    int n;

    va_start(ap, f);
    n = vsnprintf(buf, size, f, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= size ? -1 : n;
}

int mkdir_p(const char *path, mode_t mode)
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
char *read_file(const char *path)
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
int write_atomic(const char *path, const char *text, mode_t mode)
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
        sayf(SOUK_LOG_ERROR, "cannot write %s: %s", path, strerror(errno));
    return rc;
}

void describe_exit(int status, char *buf, size_t size)
{
    if (WIFSIGNALED(status))
        fmt(buf, size, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        fmt(buf, size, "exited with status %d", WEXITSTATUS(status));
}

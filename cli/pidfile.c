/* pidfile.c: var/run/souk.pid, both the supervisor's pid and a flock() held while
 * it runs: one supervisor per var directory, and a stale file never blocks. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

int pidfile_path(const struct config *c, char *out)
{
    return fmt(out, PATH_MAX, "%s/run/souk.pid", c->var_dir);
}

/* The pid file is also a lock, held by the live supervisor: returns an fd on
 * it (and the pid) when a supervisor holds it, -1 when none is running. */
int pidfile_running(const struct config *c, pid_t *pid)
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
int pidfile_take(const struct config *c)
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
        sayf(SOUK_LOG_ERROR, "another supervisor is running for %s", c->var_dir);
    else
        sayf(SOUK_LOG_ERROR, "%s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

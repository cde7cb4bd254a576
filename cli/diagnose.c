/* diagnose.c: why an instance stopped, in words for the person at the terminal:
 * its port taken by another process, or the errors it wrote to its log since it
 * was started (plain lines, and the kit's ECS JSON lines at log.level "error"). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli.h"

enum {
    PORT_CONNECT_MS = 500, /* is someone listening? loopback answers at once */
    TAIL_MAX = 16 * 1024,  /* bytes of a log looked at, from its end */
    REASON_LINES = 3,
    REASON_LINE_MAX = 300,
};

/* A socket on host:port: bound (listen false) with SO_REUSEADDR as the services
 * bind theirs, or connected (listen true); -1 when that fails, errno set. */
static int try_port(const char *host, int port, bool connect_to)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | (connect_to ? 0 : AI_PASSIVE)};
    struct addrinfo *ai = NULL;
    struct timeval tv = {0, PORT_CONNECT_MS * 1000};
    char portstr[16];
    int fd = -1, one = 1, rc = -1;

    errno = EINVAL;
    if (fmt(portstr, sizeof portstr, "%d", port) < 0 ||
        getaddrinfo(host, portstr, &hints, &ai) != 0)
        goto out;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto out;
    if (connect_to)
        rc = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0
                 ? -1
                 : connect(fd, ai->ai_addr, ai->ai_addrlen);
    else
        rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0
                 ? -1
                 : bind(fd, ai->ai_addr, ai->ai_addrlen);
out:
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    if (ai)
        freeaddrinfo(ai);
    return rc;
}

enum port_state diagnose_port(const char *host, int port)
{
    if (try_port(host, port, false) == 0 || errno != EADDRINUSE)
        return PORT_FREE;
    /* Taken: by a server (another souk), or only for now by the local end of some
     * connection, which ports in the kernel's ephemeral range can be */
    return try_port(host, port, true) == 0 ? PORT_LISTENING : PORT_BUSY;
}

/* The string value of "key":"…" in a JSON line, unescaped enough to read; false
 * when absent. Not a JSON parser: the kit writes one flat object per line. */
static bool json_field(const char *line, const char *key, char *out, size_t size)
{
    char pat[32];
    const char *p;
    size_t n = 0;

    if (fmt(pat, sizeof pat, "\"%s\":\"", key) < 0 || !(p = strstr(line, pat)))
        return false;
    for (p += strlen(pat); *p && *p != '"' && n + 1 < size; p++) {
        if (*p == '\\' && p[1])
            p++;
        out[n++] = *p;
    }
    out[n] = '\0';
    return true;
}

/* One log line as a reason, or false when it is not one (info and warn lines). */
static bool reason_of(const char *line, char *out, size_t size)
{
    char msg[REASON_LINE_MAX], err[REASON_LINE_MAX];

    if (line[0] != '{') { /* plain text: what a service prints before its log is set up */
        fmt(out, size, "%.*s", REASON_LINE_MAX, line);
        return line[0] != '\0';
    }
    if (!strstr(line, "\"log.level\":\"error\"") || !json_field(line, "message", msg, sizeof msg))
        return false;
    if (json_field(line, "error.message", err, sizeof err))
        fmt(out, size, "%s (%s)", msg, err);
    else
        fmt(out, size, "%s", msg);
    return true;
}

void diagnose_log(const char *log_path, off_t from, char *out, size_t size)
{
    char *buf = NULL, *lines[REASON_LINES] = {0}, *save = NULL;
    off_t end;
    ssize_t got;
    size_t len = 0;
    int fd = open(log_path, O_RDONLY | O_CLOEXEC), n = 0;

    out[0] = '\0';
    if (fd < 0 || (end = lseek(fd, 0, SEEK_END)) < 0)
        goto out;
    if (end - from > TAIL_MAX)
        from = end - TAIL_MAX;
    if (from > end || !(buf = malloc(TAIL_MAX + 1)))
        goto out;
    got = pread(fd, buf, (size_t)(end - from), from);
    if (got <= 0)
        goto out;
    buf[got] = '\0';
    /* keep the last REASON_LINES reasons, oldest first */
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char reason[REASON_LINE_MAX + 64];
        if (!reason_of(line, reason, sizeof reason))
            continue;
        if (n == REASON_LINES) {
            free(lines[0]);
            memmove(lines, lines + 1, sizeof lines[0] * (REASON_LINES - 1));
            n--;
        }
        lines[n++] = strdup(reason);
    }
    for (int i = 0; i < n; i++) {
        int w = lines[i] ? fmt(out + len, size - len, "%s%s", i ? "; " : "", lines[i]) : 0;
        if (w < 0)
            break;
        len += (size_t)w;
    }
out:
    for (int i = 0; i < n; i++)
        free(lines[i]);
    free(buf);
    if (fd >= 0)
        close(fd);
}

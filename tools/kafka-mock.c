/* kafka-mock.c: librdkafka's mock Kafka cluster as a process, so tests (and a laptop)
 * can run the kafka events transport without a broker. `kafka-mock [N]` starts N
 * brokers on loopback, prints the bootstrap list as its first line, and runs until
 * SIGTERM/SIGINT. It speaks the Kafka protocol to any client (kcat included) but is a
 * test double, not a durable broker: everything lives in memory and dies with it.
 *
 * Commands on stdin, one per line, each answered by one line ("ok" or "error: …"):
 *   down ID|all          disconnect the broker(s) and refuse connections (same ports)
 *   up ID|all            accept connections again
 *   topic NAME PARTS     create a topic with PARTS partitions (before anyone uses it)
 * EOF on stdin is not a stop: the cluster runs on until a signal. */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define BROKERS_MAX 9
#define LINE_MAX_   256 /* a longer command line is refused, not grown */
#define NAME_MAX_   200 /* Kafka's own limit on topic names is 249 */

static rd_kafka_mock_cluster_t *mc;
static int nbrokers;

static void reply(const char *fmt, const char *arg)
{
    printf(fmt, arg);
    putchar('\n');
    fflush(stdout);
}

/* "3" or "all" → broker id (-1: all); false when it names no broker. */
static bool broker_id(const char *s, int32_t *id)
{
    if (strcmp(s, "all") == 0) {
        *id = -1;
        return true;
    }
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 1 || v > nbrokers)
        return false;
    *id = (int32_t)v;
    return true;
}

static void command(char *line)
{
    char *save = NULL;
    char *verb = strtok_r(line, " \t", &save);
    char *a = verb ? strtok_r(NULL, " \t", &save) : NULL;
    char *b = a ? strtok_r(NULL, " \t", &save) : NULL;
    char *extra = b ? strtok_r(NULL, " \t", &save) : NULL;
    int32_t id;
    rd_kafka_resp_err_t err;
    if (verb == NULL)
        return;
    if ((strcmp(verb, "down") == 0 || strcmp(verb, "up") == 0) && a != NULL && b == NULL) {
        if (!broker_id(a, &id)) {
            reply("error: no broker %s", a);
            return;
        }
        err = verb[0] == 'd' ? rd_kafka_mock_broker_set_down(mc, id)
                             : rd_kafka_mock_broker_set_up(mc, id);
    } else if (strcmp(verb, "topic") == 0 && b != NULL && extra == NULL) {
        char *end;
        long parts = strtol(b, &end, 10);
        if (*end != '\0' || parts < 1 || parts > 1000 || strlen(a) > NAME_MAX_) {
            reply("error: %s", "usage: topic NAME PARTITIONS (1-1000)");
            return;
        }
        err = rd_kafka_mock_topic_create(mc, a, (int)parts, nbrokers < 3 ? nbrokers : 3);
    } else {
        reply("error: %s", "commands: down ID|all, up ID|all, topic NAME PARTITIONS");
        return;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        reply("error: %s", rd_kafka_err2str(err));
    else
        reply("%s", "ok");
}

int main(int argc, char **argv)
{
    int rc = 1;
    char errstr[512];
    rd_kafka_t *rk = NULL;
    nbrokers = argc > 1 ? atoi(argv[1]) : 1;
    if (argc > 2 || nbrokers < 1 || nbrokers > BROKERS_MAX) {
        fprintf(stderr,
                "usage: kafka-mock [BROKERS 1-%d]   (stdin: down|up ID|all, topic NAME N)\n",
                BROKERS_MAX);
        return 2;
    }
    /* the signals arrive through a descriptor, beside stdin */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &sigs, NULL); /* before librdkafka starts its threads */
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

    /* the mock needs a client handle for its bookkeeping; this one never connects */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        fprintf(stderr, "kafka-mock: %s\n", errstr);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "kafka-mock: %s\n", errstr);
        goto out;
    }
    mc = rd_kafka_mock_cluster_new(rk, nbrokers);
    if (mc == NULL || sfd < 0) {
        fprintf(stderr, "kafka-mock: cannot start the mock cluster\n");
        goto out;
    }
    reply("%s", rd_kafka_mock_cluster_bootstraps(mc));

    char line[LINE_MAX_ + 2];
    size_t len = 0;
    bool discarding = false; /* inside an over-long line */
    struct pollfd fds[2] = {{.fd = sfd, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
    nfds_t nfds = 2;
    for (;;) {
        if (poll(fds, nfds, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("kafka-mock: poll");
            goto out;
        }
        if (fds[0].revents & POLLIN) {
            /* a stop signal. Everything lives in memory, so there is nothing to save;
             * rd_kafka_mock_cluster_destroy would sit out its I/O thread's 1 s poll
             * (librdkafka 2.0.2), which a test suite pays on every cluster it stops */
            fflush(stdout);
            _exit(0);
        }
        if (nfds < 2 || !(fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t n = read(STDIN_FILENO, line + len, sizeof(line) - 1 - len);
        if (n <= 0) {
            nfds = 1; /* EOF: keep running, signals only */
            continue;
        }
        len += (size_t)n;
        line[len] = '\0';
        char *nl;
        while ((nl = memchr(line, '\n', len)) != NULL) {
            *nl = '\0';
            if (!discarding)
                command(line);
            discarding = false;
            size_t used = (size_t)(nl - line) + 1;
            memmove(line, nl + 1, len - used + 1);
            len -= used;
        }
        if (len >= LINE_MAX_) { /* no newline within the cap */
            if (!discarding)
                reply("error: %s", "line too long");
            discarding = true;
            len = 0;
        }
    }
    rc = 0;
out:
    if (mc != NULL)
        rd_kafka_mock_cluster_destroy(mc);
    if (rk != NULL)
        rd_kafka_destroy(rk);
    if (sfd >= 0)
        close(sfd);
    return rc;
}

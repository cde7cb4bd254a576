/*
 * souk — the local supervisor. `souk up` starts every built service on its own
 * port, restarts crashed ones with backoff and stops them all on Ctrl-C;
 * `down`, `status` and `seed` act on a running platform. Contract: cli/README.md.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

void usage(FILE *f)
{
    fputs(
        "usage: souk <command>\n"
        "  up [-d] [--replicas svc=n,...]  start all services and supervise them\n"
        "                                  (-d: detach, return once all are ready)\n"
        "  down                            stop a running supervisor\n"
        "  status                          show instances and their readiness\n"
        "  seed                            run `<service> seed` for every service\n"
        "  help                            this text\n"
        "environment: SOUK_VAR SOUK_BIN_DIR SOUK_HOST SOUK_PORT_BASE SOUK_REPLICAS\n"
        "             SOUK_READY_TIMEOUT SOUK_RPC\n"
        "             SOUK_LOG_FORMAT=text|ecs  (the terminal's lines; var/log/souk.log is ECS)\n",
        f);
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "help";

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (config_log_format() < 0)
        return EXIT_USAGE;
    if (strcmp(cmd, "up") == 0)
        return cmd_up(argc - 1, argv + 1);
    if (strcmp(cmd, "down") == 0 && argc == 2)
        return cmd_down();
    if (strcmp(cmd, "status") == 0 && argc == 2)
        return cmd_status();
    if (strcmp(cmd, "seed") == 0 && argc == 2)
        return cmd_seed();
    usage(stderr);
    return EXIT_USAGE;
}

/* cli.h: what the files of the `souk` supervisor share: its limits, the service
 * table and port layout, the configuration read from the environment, and each
 * file's entry points. The contract seen from outside is cli/README.md. */
#ifndef SOUK_CLI_H
#define SOUK_CLI_H

#include <limits.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "services.h" /* generated from services.txt: the list of services */
#include "souk/log.h" /* the kit's ECS logger: what log.c writes through */

enum {
    NSERVICES = SOUK_SERVICES_COUNT,
    MAX_REPLICAS = 10, /* replica ports are base+100+10*i+k, k < 10 */
    MAX_INSTANCES = NSERVICES * MAX_REPLICAS,
    DEFAULT_PORT_BASE = 8080,
    MAX_PORT_BASE = 65535 - 1100 - 200,
    REPLICA_PORT_OFFSET = 100,
    REPLICA_PORT_STRIDE = 10,
    /* an admin listener: its instance's port + this, on loopback (the kit's
     * SOUK_ADMIN_LISTEN=auto), clear of every port of the layout (base … base+1099:
     * services.txt keeps every port offset below 100) */
    ADMIN_PORT_OFFSET = 1100,
    /* gRPC: its instance's port + this (8081 → 9081), clear of the admin ports */
    GRPC_PORT_OFFSET = 1000,
    SECRET_BYTES = 32,
    SECRET_HEX = 2 * SECRET_BYTES,
    URLS_MAX = 4096,
    FILE_MAX = 64 * 1024, /* cap on clients.json and souk.state */
    BACKOFF_MIN_MS = 100,
    BACKOFF_MAX_MS = 5000,
    BACKOFF_RESET_MS = 10000, /* up this long: the next crash starts over */
    READY_POLL_MS = 100,
    START_POLL_MS = 20,   /* readiness probes while starting: the next service waits */
    READY_TIMEOUT_S = 30, /* default SOUK_READY_TIMEOUT */
    MAX_READY_TIMEOUT_S = 3600,
    DAEMON_GRACE_MS = 5000, /* `up -d` waits the ready timeout and this */
    LOOP_PROBE_MS = 250,    /* probes inside the supervisor loop stay short */
    STATUS_PROBE_MS = 1000,
    STOP_GRACE_MS = 10000,
    DOWN_WAIT_MS = 15000,
    EXIT_USAGE = 2,
    EXIT_EXEC_FAILED = 127,
};

/* services.txt, in start order; port_offset places each on base+offset. */
struct service {
    const char *name;
    int port_offset;
    bool edge; /* faces the clients (the gateway): an admin listener, no trusted proxy */
};
extern const struct service services[NSERVICES];

struct config {
    char bin_dir[PATH_MAX];
    char var_dir[PATH_MAX];
    char clients_file[PATH_MAX];
    const char *host;
    char gateway_addr[64]; /* numeric: what the services trust X-Forwarded-For from */
    int port_base;
    int ready_timeout_ms; /* the start gives up after this */
    int replicas[NSERVICES];
    char secrets[NSERVICES][SECRET_HEX + 1];
    char urls[NSERVICES][URLS_MAX];
    bool rest;                           /* SOUK_RPC=rest: no SOUK_<PEER>_GRPC_URL given */
    char grpc_urls[NSERVICES][URLS_MAX]; /* grpc:// lists ("" for the gateway) */
};

/* ---- util.c: small helpers ---- */

long long now_ms(void); /* monotonic */
/* snprintf that reports truncation as -1 instead of cutting a path short. */
__attribute__((format(printf, 3, 4))) int fmt(char *buf, size_t size, const char *f, ...);
int mkdir_p(const char *path, mode_t mode);
/* Whole file (up to FILE_MAX) into a fresh NUL-terminated buffer (caller frees);
 * NULL if absent. */
char *read_file(const char *path);
/* Replace path by text in one step (temp file, then rename); -1 with a message. */
int write_atomic(const char *path, const char *text, mode_t mode);
/* "exited with status 3" or "killed by signal 9 (Killed)" for a wait status. */
void describe_exit(int status, char *buf, size_t size);

/* ---- log.c: the supervisor's lines ---- */

enum log_format {
    LOG_TEXT, /* "souk: <message>" for a person: info on stdout, the rest on stderr */
    LOG_ECS,  /* one ECS JSON object per line on stderr (lib/log.c), service.name "souk" */
};
void log_set_format(enum log_format f);
enum log_format log_get_format(void);
/* One line: msg as the text (after "souk: ", or as "message"), and in ECS the extra
 * fields of fields, a jansson pack format as for souk_log() (souk/log.h: "error" is
 * error.message, a dotted key is ECS, a plain one goes under souk.), plus
 * process.pid. Keep each key's JSON type the same everywhere (tests/e2e/test_log_ecs.py).
 * A json_t given with "o" is released whatever the format. */
void say(enum souk_log_level level, const char *msg, const char *fields, ...);
/* say() with a printf-style text and no fields. */
__attribute__((format(printf, 2, 3))) void sayf(enum souk_log_level level, const char *f, ...);

/* ---- config.c: configuration and secrets ---- */

/* SOUK_LOG_FORMAT: text (the default) or ecs, set as the output's form; -1 with a
 * message on a bad value. */
int config_log_format(void);
/* Everything from the environment (replicas_arg: `--replicas`, or NULL); create
 * makes the var/ layout first. Returns 0, or -1 with a message on stderr. */
int config_load(struct config *c, const char *replicas_arg, bool create);
/* Reuse var/secrets/clients.json; generate whatever is missing and rewrite it. */
int config_load_secrets(struct config *c);
/* The SOUK_<PEER>_URL values: every replica of each service, comma-separated. */
int config_build_urls(struct config *c);
/* The port of replica k of service svc (an index into services[]). */
int config_port(const struct config *c, int svc, int replica);
/* The gRPC port of that instance, or 0 for the gateway (which has none). */
int config_grpc_port(const struct config *c, int svc, int replica);
/* The admin listener's port of that instance, or 0 when it has none. */
int config_admin_port(const struct config *c, int svc, int replica);
/* The address the services see the gateway's calls come from (SOUK_TRUSTED_PROXIES). */
const char *config_gateway_addr(const struct config *c);
bool config_have_binary(const struct config *c, int svc);

/* ---- pidfile.c: one supervisor per var directory ---- */

int pidfile_path(const struct config *c, char *out);
/* An fd on var/run/souk.pid (and the pid in it) while a supervisor holds it, or
 * -1 when none is running. */
int pidfile_running(const struct config *c, pid_t *pid);
/* Take the pid file for this process: the locked fd, or -1 (with a message) when
 * another supervisor holds it. */
int pidfile_take(const struct config *c);

/* ---- child.c: one service process ---- */

/* In a forked child: reset signals, optionally its own session, die with parent,
 * output to log_path (NULL: keep the terminal), the service's environment, then
 * exec `<bin_dir>/<service> [arg]`. Never returns. */
__attribute__((noreturn)) void child_exec(const struct config *c, int svc, int replica,
                                          pid_t parent, const char *log_path, bool own_session,
                                          const char *arg);
/* GET /readyz on host:port, true on a 200 answer within timeout_ms. */
bool child_probe_ready(const char *host, int port, int timeout_ms);

/* ---- supervise.c: the supervisor ---- */

/* Start every instance and supervise until a stop signal. notify_fd (or -1) is
 * the pipe of a waiting `up -d`. Returns the exit status. */
int supervise(struct config *c, int notify_fd);
/* `up -d`: fork the supervisor into its own session; return once it is ready. */
int daemonize(struct config *c);

/* ---- commands.c ---- */

int cmd_up(int argc, char **argv);
int cmd_down(void);
int cmd_status(void);
int cmd_seed(void);

/* ---- diagnose.c: why an instance stopped ---- */

enum port_state {
    PORT_FREE,
    PORT_LISTENING, /* a server has it: another souk, or anything else */
    PORT_BUSY,      /* the local end of a connection has it, for now */
};
/* Can a service bind host:port, and if not, who has it? */
enum port_state diagnose_port(const char *host, int port);
/* The errors the instance wrote to log_path since offset from (plain lines, and
 * the kit's ECS lines at log.level "error" as "message (error.message)"), the last
 * few joined by "; ", into out; "" when there are none. */
void diagnose_log(const char *log_path, off_t from, char *out, size_t size);

/* ---- main.c ---- */

void usage(FILE *f); /* the command summary */

#endif

/* bench/db/keyed_read.c: one keyed read through the kit's database calls
 * (souk_db_query, step, text), on SQLite and on PostgreSQL, one connection, one
 * read at a time: latency (p50, p99) and CPU per read in this process and, for
 * PostgreSQL, in its server process; and the same read on libpq alone, to see what
 * the kit adds. `make bench-db` runs it on a private cluster.
 * Usage: keyed_read URL [reads] */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "souk/db.h"
#include "souk/souk.h"

#define ROWS 10000

static double cpu_self_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* utime + stime of pid from /proc, in microseconds (0 when it cannot be read) */
static double cpu_pid_us(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* fields after the command name */
    unsigned long long ut = 0, st = 0;
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s URL [reads]\n", argv[0]);
        return 2;
    }
    int reads = argc > 2 ? atoi(argv[2]) : 20000;
    struct souk_db *db;
    if (reads <= 0 || souk_db_open(&db, argv[1]) != 0)
        return 1;
    bool pg = souk_db_engine(db) == SOUK_DB_POSTGRES;
    souk_db_exec(db, "DROP TABLE IF EXISTS bench_kv");
    souk_db_exec(db, "CREATE TABLE bench_kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)");
    souk_db_begin(db);
    for (int i = 0; i < ROWS; i++) {
        char k[32], v[128];
        snprintf(k, sizeof(k), "prd_%08d", i);
        snprintf(v, sizeof(v), "{\"name\":\"product %d\",\"price_cents\":%d}", i, 100 + i);
        souk_db_run(db, "INSERT INTO bench_kv (k, v) VALUES (?, ?)", "ss", k, v);
    }
    if (souk_db_commit(db) != 0)
        return 1;
    int64_t backend = 0;
    if (pg)
        souk_db_int(db, &backend, "SELECT pg_backend_pid()", NULL);
    uint64_t *lat = souk_xcalloc((size_t)reads, sizeof(*lat));
    static const char sql[] = "SELECT v FROM bench_kv WHERE k = ?";
    /* PostgreSQL: hint bits set and statistics made now, not by the first reads */
    souk_db_exec(db, SOUK_IF_PG("VACUUM ANALYZE bench_kv"));
    for (int warm = 0; warm < ROWS; warm++) { /* prepared, cached, every row read once */
        char k[32];
        snprintf(k, sizeof(k), "prd_%08d", warm);
        struct souk_stmt *st = souk_db_query(db, sql, "s", k);
        if (st == NULL || souk_stmt_step(st) != SOUK_ROW)
            return 1;
        souk_stmt_done(st);
    }
    double cpu0 = cpu_self_us(), srv0 = pg ? cpu_pid_us((long)backend) : 0;
    uint64_t t0 = souk_now_ns();
    size_t bytes = 0;
    for (int i = 0; i < reads; i++) {
        char k[32];
        uint32_t r;
        souk_random(&r, sizeof(r));
        snprintf(k, sizeof(k), "prd_%08u", r % ROWS);
        uint64_t s = souk_now_ns();
        struct souk_stmt *st = souk_db_query(db, sql, "s", k);
        if (st == NULL || souk_stmt_step(st) != SOUK_ROW)
            return 1;
        bytes += strlen(souk_stmt_text(st, 0));
        souk_stmt_done(st);
        lat[i] = souk_now_ns() - s;
    }
    double wall = (double)(souk_now_ns() - t0) / 1e3;
    double cpu = cpu_self_us() - cpu0, srv = pg ? cpu_pid_us((long)backend) - srv0 : 0;
    qsort(lat, (size_t)reads, sizeof(*lat), cmp);
    printf("%-10s reads %d  wall %.1f us/read  p50 %.1f us  p99 %.1f us  "
           "cpu client %.1f us/read  server %.1f us/read  total %.1f us/read  (%zu bytes)\n",
           pg ? "postgresql" : "sqlite", reads, wall / reads, (double)lat[reads / 2] / 1e3,
           (double)lat[reads * 99 / 100] / 1e3, cpu / reads, srv / reads, (cpu + srv) / reads,
           bytes);
    if (pg) {
        /* libpq alone: the same prepared read, no kit */
        PGconn *c = PQconnectdb(argv[1]);
        PGresult *res = PQprepare(c, "raw", "SELECT v FROM bench_kv WHERE k = $1", 1, NULL);
        PQclear(res);
        res = PQexec(c, "SELECT pg_backend_pid()");
        long raw_backend = strtol(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        cpu0 = cpu_self_us();
        srv0 = cpu_pid_us(raw_backend);
        t0 = souk_now_ns();
        for (int i = 0; i < reads; i++) {
            char k[32];
            uint32_t r;
            souk_random(&r, sizeof(r));
            snprintf(k, sizeof(k), "prd_%08u", r % ROWS);
            const char *vals[1] = {k};
            uint64_t s = souk_now_ns();
            res = PQexecPrepared(c, "raw", 1, vals, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
                return 1;
            bytes += strlen(PQgetvalue(res, 0, 0));
            PQclear(res);
            lat[i] = souk_now_ns() - s;
        }
        wall = (double)(souk_now_ns() - t0) / 1e3;
        cpu = cpu_self_us() - cpu0;
        srv = cpu_pid_us(raw_backend) - srv0;
        qsort(lat, (size_t)reads, sizeof(*lat), cmp);
        printf("%-10s reads %d  wall %.1f us/read  p50 %.1f us  p99 %.1f us  "
               "cpu client %.1f us/read  server %.1f us/read  total %.1f us/read\n",
               "libpq", reads, wall / reads, (double)lat[reads / 2] / 1e3,
               (double)lat[reads * 99 / 100] / 1e3, cpu / reads, srv / reads, (cpu + srv) / reads);
        PQfinish(c);
    }
    souk_db_exec(db, "DROP TABLE bench_kv");
    free(lat);
    souk_db_close(db);
    return 0;
}

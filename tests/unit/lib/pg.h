/* pg.h: a private PostgreSQL cluster for unit tests that run against both engines,
 * driven through scripts/pg (run from the repository's root, as make unit does):
 * started once per test program under a fresh /tmp directory on a free port,
 * destroyed at the end. Every failure here fails the test: nothing is skipped. */
#ifndef SOUK_TEST_PG_H
#define SOUK_TEST_PG_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char test_pg_dir[64];
static char test_pg_script[4096]; /* absolute: a test may change directory */

/* Run "scripts/pg CMD DIR ARGS" and return its first line of output (malloc'd), or
 * NULL when it failed (its output shown). */
static char *test_pg(const char *cmd, const char *args)
{
    char line[8192], out[2048] = "";
    snprintf(line, sizeof(line), "%s %s %s %s 2>&1", test_pg_script, cmd, test_pg_dir,
             args ? args : "");
    FILE *p = popen(line, "r");
    if (p == NULL)
        return NULL;
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    if (status != 0) {
        fprintf(stderr, "test: %s failed (%d): %s\n", line, status, out);
        return NULL;
    }
    out[strcspn(out, "\n")] = '\0';
    return strdup(out);
}

/* Find scripts/pg from the current directory (the repository's root). */
static void test_pg_locate(void)
{
    if (access("scripts/pg", X_OK) != 0 || realpath("scripts/pg", test_pg_script) == NULL)
        test_pg_script[0] = '\0';
}

/* Start the cluster; 0 or -1. */
static int test_pg_start(void)
{
    if (test_pg_script[0] == '\0')
        test_pg_locate();
    if (test_pg_script[0] == '\0') {
        fprintf(stderr, "test: scripts/pg not found: run from the repository's root\n");
        return -1;
    }
    snprintf(test_pg_dir, sizeof(test_pg_dir), "/tmp/souk-test-pg-XXXXXX");
    if (mkdtemp(test_pg_dir) == NULL)
        return -1;
    char *port = test_pg("start", NULL);
    free(port);
    return port != NULL ? 0 : -1;
}

/* A database and a role named name; its URL with the password (malloc'd), or NULL. */
static char *test_pg_createdb(const char *name)
{
    char args[160];
    snprintf(args, sizeof(args), "%s --with-password", name);
    return test_pg("createdb", args);
}

static void test_pg_destroy(void)
{
    if (test_pg_dir[0] != '\0')
        free(test_pg("destroy", NULL));
    test_pg_dir[0] = '\0';
}

#endif

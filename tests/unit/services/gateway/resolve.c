/* Unit tests for the upstream host names the gateway's libuv engine connects to
 * (lib/proxy.c's resolver, through souk_proxy_pick's addresses): a name resolved at
 * start into IPv4 and IPv6 addresses, an address literal (IPv6 in brackets) taken
 * as it is, a failed connection moving its address last and asking for a lookup
 * soon, the last good answer kept while lookups fail, and a new answer replacing it.
 * getaddrinfo is this file's (it interposes libc's): "svc.test" answers what the test
 * says, every other name goes to libc. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "souk/proxy.h"
#include "souk/souk.h"

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *answer[2]; /* "svc.test"'s addresses now; none: EAI_NONAME */
static atomic_int lookups;    /* of "svc.test" */

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    if (node == NULL || strcmp(node, "svc.test") != 0 ||
        (hints != NULL && (hints->ai_flags & AI_NUMERICHOST))) /* not a name to look up */
        return real(node, service, hints, res);
    struct addrinfo h = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *first = NULL, **tail = &first;
    pthread_mutex_lock(&fake_lock);
    for (size_t i = 0; i < 2 && answer[i] != NULL; i++) { /* libc's lists, chained */
        if (real(answer[i], service, &h, tail) == 0)
            while (*tail != NULL)
                tail = &(*tail)->ai_next;
    }
    pthread_mutex_unlock(&fake_lock);
    atomic_fetch_add(&lookups, 1);
    *res = first;
    return first != NULL ? 0 : EAI_NONAME;
}

static void say(const char *a, const char *b)
{
    pthread_mutex_lock(&fake_lock);
    answer[0] = a;
    answer[1] = b;
    pthread_mutex_unlock(&fake_lock);
}

static struct souk_upstream *up;

/* "10.0.0.1:8082" / "[fd00::1]:8082" */
static void text(const union souk_proxy_addr *a, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (a->sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%d", ip, ntohs(a->in6.sin6_port));
    } else {
        inet_ntop(AF_INET, &a->in4.sin_addr, ip, sizeof(ip));
        snprintf(out, cap, "%s:%d", ip, ntohs(a->in4.sin_port));
    }
}

/* The instance's addresses as pick sees them: "10.0.0.1:8082 [fd00::1]:8082" */
static void addrs_of(int index, char *out, size_t cap)
{
    struct souk_proxy_target t;
    unsigned others = ~(1u << index);
    assert_true(souk_proxy_pick(up, others, &t));
    assert_int_equal(t.index, index);
    souk_proxy_report(up, index, SOUK_PROXY_ANSWERED, 200, 0); /* no longer outstanding */
    out[0] = '\0';
    for (size_t i = 0; i < t.naddr; i++) {
        char one[64];
        text(&t.addr[i], one, sizeof(one));
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? " " : "", one);
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* After a failed connection, wait for the lookup it asks for (at most a second later). */
static void fail_and_wait_lookup(const union souk_proxy_addr *a)
{
    int before = atomic_load(&lookups);
    souk_proxy_address_failed(up, 0, a ? &a->sa : NULL);
    for (int i = 0; i < 300 && atomic_load(&lookups) == before; i++)
        sleep_ms(10);
    assert_true(atomic_load(&lookups) > before);
    sleep_ms(20); /* the lookup's answer stored after it returned */
}

static void test_names_literals_failures_and_changes(void **state)
{
    (void)state;
    char got[256];
    say("10.0.0.1", "fd00::1");
    up = souk_upstream_new("catalog", "http://svc.test:8082,http://[::1]:9/,http://127.0.0.1:7");
    assert_non_null(up);
    struct souk_proxy_conf conf = {.timeout_ms = 1000,
                                   .connect_timeout_ms = 100,
                                   .breaker_failures = 5,
                                   .breaker_open_ms = 1000,
                                   .max_response = 1024,
                                   .max_connections = 4,
                                   .threads = 1,
                                   .resolve_interval_ms = 60000}; /* only failures ask again */
    assert_int_equal(souk_proxy_start(&conf), 0);
    assert_int_equal(atomic_load(&lookups), 1); /* resolved before start returned */

    addrs_of(0, got, sizeof(got));
    assert_string_equal(got, "10.0.0.1:8082 [fd00::1]:8082");
    addrs_of(1, got, sizeof(got)); /* literals: no lookup */
    assert_string_equal(got, "[::1]:9");
    addrs_of(2, got, sizeof(got));
    assert_string_equal(got, "127.0.0.1:7");

    /* the first address refused: it goes last; the same answer keeps that order */
    struct souk_proxy_target t;
    assert_true(souk_proxy_pick(up, ~1u, &t));
    souk_proxy_report(up, 0, SOUK_PROXY_ANSWERED, 200, 0);
    fail_and_wait_lookup(&t.addr[0]);
    addrs_of(0, got, sizeof(got));
    assert_string_equal(got, "[fd00::1]:8082 10.0.0.1:8082");

    /* the name stops resolving: the last good answer is kept */
    say(NULL, NULL);
    fail_and_wait_lookup(NULL);
    addrs_of(0, got, sizeof(got));
    assert_string_equal(got, "[fd00::1]:8082 10.0.0.1:8082");

    /* the Service moved: the new answer replaces the old */
    say("10.0.0.2", NULL);
    fail_and_wait_lookup(NULL);
    addrs_of(0, got, sizeof(got));
    assert_string_equal(got, "10.0.0.2:8082");

    /* a literal never asks for a lookup */
    int before = atomic_load(&lookups);
    assert_true(souk_proxy_pick(up, ~2u, &t));
    souk_proxy_report(up, 1, SOUK_PROXY_ANSWERED, 200, 0);
    souk_proxy_address_failed(up, 1, &t.addr[0].sa);
    sleep_ms(50);
    assert_int_equal(atomic_load(&lookups), before);
    souk_proxy_stop();
}

static void test_bad_urls_are_refused(void **state)
{
    (void)state;
    assert_null(souk_upstream_new("x", "http://[::1:80"));   /* unclosed bracket */
    assert_null(souk_upstream_new("x", "http://[::1]x:80")); /* junk after it */
    assert_null(souk_upstream_new("x", "http://:80"));       /* no host */
    assert_null(souk_upstream_new("x", "http://svc.test:0"));
    assert_null(souk_upstream_new("x", "http://svc.test:70000"));
    assert_null(souk_upstream_new("x", "http://svc.test:80x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_urls_are_refused),
        cmocka_unit_test(test_names_literals_failures_and_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/unit/lib/events_kafka.c: SOUK_EVENTS=kafka://… as lib/events_kafka.c reads it:
 * the bootstrap list librdkafka gets, and for each bad URL a reason that names the
 * broker and never repeats the URL (a password could be in it). */
#include <stdio.h>
#include <string.h>

#include "../../../lib/events_int.h"
#include "souk/souk.h"
#include "test.h"

struct url_case {
    const char *url;
    const char *bootstrap; /* NULL: refused */
    const char *why;       /* a part of the reason, when refused */
};

static void test_parse_url_table(void **state)
{
    (void)state;
    static const struct url_case cases[] = {
        {"kafka://127.0.0.1:9092", "127.0.0.1:9092", NULL},
        {"kafka://kafka:9092/", "kafka:9092", NULL},
        {"kafka://a.example:9092,b.example:9093,c-1.example:1",
         "a.example:9092,b.example:9093,c-1.example:1", NULL},
        {"kafka://[::1]:9092,[fe80::1]:9093", "[::1]:9092,[fe80::1]:9093", NULL},
        {"kafka://k_0:65535", "k_0:65535", NULL},
        {"kafka://", NULL, "broker 1: the host is missing"},
        {"kafka://:9092", NULL, "broker 1: the host is missing"},
        {"kafka://kafka", NULL, "broker 1: expected host:port"},
        {"kafka://kafka:", NULL, "broker 1: the port must be"},
        {"kafka://kafka:0", NULL, "broker 1: the port must be"},
        {"kafka://kafka:65536", NULL, "broker 1: the port must be"},
        {"kafka://kafka:0009092", NULL, "broker 1: the port must be"},
        {"kafka://kafka:90x", NULL, "unexpected text after the port"},
        {"kafka://a:1,", NULL, "broker 2: the host is missing"},
        {"kafka://a:1,b", NULL, "broker 2: expected host:port"},
        {"kafka://a:1/topic", NULL, "unexpected text after the port"},
        {"kafka://a:1?acks=0", NULL, "unexpected text after the port"},
        {"kafka://a:1 b:2", NULL, "unexpected text after the port"},
        {"kafka://[zz]:1", NULL, "IPv6"},
        {"kafka://[]:1", NULL, "IPv6"},
        {"kafka://user:pw-s3cret@a:1", NULL, "credentials do not belong in the URL"},
        {"kafka://a:1,b:2@c:3", NULL, "credentials"},
        {"amqp://a:1", NULL, "kafka://"},
        {"KAFKA://a:1", NULL, "kafka://"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct url_case *c = &cases[i];
        char out[256] = "", why[256] = "";
        int rc = souk__kafka_parse_url(c->url, out, sizeof(out), why, sizeof(why));
        if (c->bootstrap != NULL) {
            if (rc != 0 || strcmp(out, c->bootstrap) != 0)
                fail_msg("case %zu \"%s\": rc %d, \"%s\" (%s)", i, c->url, rc, out, why);
            continue;
        }
        if (rc != SOUK_EINVAL || strstr(why, c->why) == NULL)
            fail_msg("case %zu \"%s\": rc %d, why \"%s\"", i, c->url, rc, why);
        if (strstr(why, "s3cret") != NULL || strstr(why, c->url) != NULL)
            fail_msg("case %zu: the reason repeats the URL: %s", i, why);
    }
}

static void test_too_many_brokers_or_too_long(void **state)
{
    (void)state;
    char url[2048] = "kafka://", out[1024], why[256];
    for (int i = 0; i < 33; i++)
        snprintf(url + strlen(url), sizeof(url) - strlen(url), "%sb%d:9092", i ? "," : "", i);
    assert_int_equal(souk__kafka_parse_url(url, out, sizeof(out), why, sizeof(why)), SOUK_EINVAL);
    assert_non_null(strstr(why, "more than 32 brokers"));
    /* 32 fit, and the output never overflows a small buffer */
    char *comma = strrchr(url, ',');
    *comma = '\0';
    assert_int_equal(souk__kafka_parse_url(url, out, sizeof(out), why, sizeof(why)), 0);
    assert_int_equal(strlen(out), strlen(url) - strlen("kafka://"));
    char small[16];
    assert_int_equal(souk__kafka_parse_url(url, small, sizeof(small), why, sizeof(why)),
                     SOUK_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url_table),
        cmocka_unit_test(test_too_many_brokers_or_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* log.c: tests lib/log.c: ECS lines (field names, order and types, the request context,
 * the access line), JSON that stays valid whatever goes in (escapes, bad UTF-8, caps),
 * and the redaction of what could be a card number. Lines are read back from stderr
 * redirected to a temporary file. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log_int.h"
#include "souk/log.h"
#include "test.h"

static int saved_stderr = -1;
static FILE *capture;

/* stderr goes to the capture file only while lines are written: cmocka reports
 * failures on stderr too, and those must reach the terminal. */
static void capture_begin(void) { assert_true(dup2(fileno(capture), STDERR_FILENO) >= 0); }
static void capture_end(void) { assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0); }

static int setup(void **state)
{
    (void)state;
    capture = tmpfile();
    saved_stderr = dup(STDERR_FILENO);
    if (capture == NULL || saved_stderr < 0)
        return -1;
    souk_log_init("catalog", SOUK_LOG_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(saved_stderr);
    fclose(capture);
    return 0;
}

/* The lines written since the last call, each parsed (duplicate keys refused). */
static size_t read_lines(json_t **out, size_t max)
{
    static long done;
    char buf[8192];
    size_t n = 0;
    fflush(capture);
    fseek(capture, done, SEEK_SET);
    while (n < max && fgets(buf, sizeof(buf), capture) != NULL) {
        json_error_t err;
        size_t len = strlen(buf);
        assert_true(len > 0 && buf[len - 1] == '\n');
        out[n] = json_loads(buf, JSON_REJECT_DUPLICATES, &err);
        if (out[n] == NULL)
            fail_msg("not one JSON object: %s (%s)", buf, err.text);
        n++;
    }
    done = ftell(capture);
    return n;
}

static json_t *one_line(void)
{
    json_t *lines[4];
    assert_int_equal(read_lines(lines, 4), 1);
    return lines[0];
}

static const char *str(json_t *line, const char *key)
{
    json_t *v = json_object_get(line, key);
    if (!json_is_string(v))
        fail_msg("%s is not a string in %s", key, json_dumps(line, 0));
    return json_string_value(v);
}

static json_int_t num(json_t *line, const char *key)
{
    json_t *v = json_object_get(line, key);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer in %s", key, json_dumps(line, 0));
    return json_integer_value(v);
}

static void test_head_in_ecs_logging_order(void **state)
{
    (void)state;
    capture_begin();
    souk_log(SOUK_LOG_WARN, "disk \"full\"", NULL);
    souk_log(SOUK_LOG_DEBUG, "below the level: not written", NULL);
    capture_end();
    json_t *line = one_line();
    static const char *const order[] = {"@timestamp",  "log.level",    "message",
                                        "ecs.version", "service.name", "event.dataset"};
    const char *key;
    json_t *v;
    size_t i = 0;
    json_object_foreach(line, key, v)
    {
        assert_true(i < sizeof(order) / sizeof(order[0]));
        assert_string_equal(key, order[i++]);
    }
    assert_int_equal(i, 6);
    assert_string_equal(str(line, "log.level"), "warn");
    assert_string_equal(str(line, "message"), "disk \"full\"");
    assert_string_equal(str(line, "ecs.version"), SOUK_ECS_VERSION);
    assert_string_equal(str(line, "service.name"), "catalog");
    assert_string_equal(str(line, "event.dataset"), "catalog");
    const char *ts = str(line, "@timestamp"); /* 2026-11-29T19:30:05.371Z */
    assert_int_equal(strlen(ts), 24);
    assert_true(ts[10] == 'T' && ts[19] == '.' && ts[23] == 'Z');
    json_decref(line);
}

static void test_field_names(void **state)
{
    (void)state;
    capture_begin();
    souk_info("mixed", "{s:s,s:s,s:i,s:s,s:s,s:i,s:s,s:I,s:s,s:s,s:{s:i},s:b,s:s}", "error", "boom",
              "url", "http://x/y", "status", 503, "code", "out_of_stock", "method", "POST", "n", 3,
              "order_id", "ord_1", "big", (json_int_t)1 << 40, "user.id", "usr_1", "trace.id",
              "mine", "nested", "a", 1, "ok", 1, "message", "theirs");
    capture_end();
    json_t *line = one_line();
    assert_string_equal(str(line, "error.message"), "boom");
    assert_string_equal(str(line, "url.full"), "http://x/y");
    assert_int_equal(num(line, "http.response.status_code"), 503);
    assert_string_equal(str(line, "error.code"), "out_of_stock");
    assert_string_equal(str(line, "http.request.method"), "POST");
    assert_int_equal(num(line, "souk.n"), 3);
    assert_string_equal(str(line, "souk.order_id"), "ord_1");
    assert_int_equal(num(line, "souk.big"), (json_int_t)1 << 40);
    assert_string_equal(str(line, "user.id"), "usr_1");       /* an ECS name as given */
    assert_string_equal(str(line, "souk.trace_id"), "mine");  /* ours moves aside */
    assert_string_equal(str(line, "message"), "mixed");       /* never overwritten */
    assert_string_equal(str(line, "souk.message"), "theirs"); /* a plain key: ours */
    assert_null(json_object_get(line, "trace.id"));           /* no context here */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(line, "souk.nested"), "a")),
                     1);
    assert_true(json_is_true(json_object_get(line, "souk.ok")));
    json_decref(line);

    /* the same plain keys with another type keep to souk.*: one type per field */
    capture_begin();
    souk_info("other types", "{s:s,s:i,s:I,s:i}", "status", "confirmed", "code", 406, "method",
              (json_int_t)40, "error", 5);
    capture_end();
    line = one_line();
    assert_string_equal(str(line, "souk.status"), "confirmed");
    assert_int_equal(num(line, "souk.code"), 406);
    assert_int_equal(num(line, "souk.method"), 40);
    assert_int_equal(num(line, "souk.error"), 5);
    assert_null(json_object_get(line, "http.response.status_code"));
    json_decref(line);

    /* fields that are not an object: the message alone */
    capture_begin();
    souk_info("bad format", "[s]", "k");
    capture_end();
    line = one_line();
    assert_string_equal(str(line, "message"), "bad format");
    assert_int_equal(json_object_size(line), 6);
    json_decref(line);
}

static void test_request_context(void **state)
{
    (void)state;
    capture_begin();
    souk__log_set_context("req_1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    souk_info("in a request", NULL);
    souk__log_set_context("req_2", "00-not-a-traceparent");
    souk_info("bad traceparent", NULL);
    souk__log_set_context(NULL, NULL);
    souk_info("outside", NULL);
    capture_end();
    json_t *lines[4];
    assert_int_equal(read_lines(lines, 4), 3);
    assert_string_equal(str(lines[0], "http.request.id"), "req_1");
    assert_string_equal(str(lines[0], "trace.id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(str(lines[0], "span.id"), "00f067aa0ba902b7");
    assert_string_equal(str(lines[1], "http.request.id"), "req_2");
    assert_null(json_object_get(lines[1], "trace.id"));
    assert_null(json_object_get(lines[2], "http.request.id"));
    assert_null(json_object_get(lines[2], "span.id"));
    for (int i = 0; i < 3; i++)
        json_decref(lines[i]);
}

static void test_access_line(void **state)
{
    (void)state;
    struct souk__access a = {
        .method = "GET",
        .path = "/api/v1/payment-methods/4242424242424242",
        .route = "/api/v1/payment-methods/{id}",
        .request_id = "req_9",
        .traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-a3ce929d0e0e4736-01",
        .client = "127.0.0.1",
        .status = 404,
        .bytes = 120,
        .duration_ns = 1500000,
    };
    capture_begin();
    souk__log_access(&a);
    a.client = "-";
    a.route = NULL;
    souk__log_access(&a);
    souk__log_flush();
    capture_end();
    json_t *lines[4];
    assert_int_equal(read_lines(lines, 4), 2);
    json_t *l = lines[0];
    assert_string_equal(str(l, "log.level"), "info");
    assert_string_equal(str(l, "message"), "GET /api/v1/payment-methods/XXXXXXXXXXXXXXXX 404");
    assert_string_equal(str(l, "event.dataset"), "catalog.access");
    assert_string_equal(str(l, "http.request.id"), "req_9");
    assert_string_equal(str(l, "trace.id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(str(l, "span.id"), "a3ce929d0e0e4736");
    assert_string_equal(str(l, "http.request.method"), "GET");
    assert_string_equal(str(l, "url.path"), "/api/v1/payment-methods/XXXXXXXXXXXXXXXX");
    assert_int_equal(num(l, "http.response.status_code"), 404);
    assert_int_equal(num(l, "http.response.body.bytes"), 120);
    assert_int_equal(num(l, "event.duration"), 1500000); /* nanoseconds */
    assert_string_equal(str(l, "client.ip"), "127.0.0.1");
    assert_string_equal(str(l, "souk.route"), "/api/v1/payment-methods/{id}");
    assert_null(json_object_get(lines[1], "client.ip")); /* "-" is no address */
    assert_null(json_object_get(lines[1], "souk.route"));
    json_decref(lines[0]);
    json_decref(lines[1]);
}

/* Whatever a client sends, each line stays one valid JSON object within its cap. */
static void test_hostile_input_stays_valid_json(void **state)
{
    (void)state;
    static char path[8192], method[600], big[6000];
    path[0] = '/';
    for (size_t i = 1; i < sizeof(path) - 1; i++)
        path[i] = (char)(i % 3 == 0 ? 0x01 : i % 3 == 1 ? 0xff : '"'); /* worst escapes */
    memset(method, 'M', sizeof(method) - 1);
    memset(big, 'x', sizeof(big) - 1);
    struct souk__access a = {.method = method,
                             .path = path,
                             .route = big,
                             .request_id = big,
                             .traceparent = big,
                             .client = big,
                             .status = 400};
    capture_begin();
    souk__log_access(&a);
    souk__log_flush();
    souk__log_set_context(big, big);
    souk_error(path, "{s:s,s:s}", "a", big, "b", path);
    souk_error("small", "{s:s}", "a", big);
    souk__log_set_context(NULL, NULL);
    capture_end();
    json_t *lines[4];
    assert_int_equal(read_lines(lines, 4), 3);
    assert_true(strlen(str(lines[0], "http.request.method")) < 40);
    assert_true(strstr(str(lines[0], "url.path"), "\xef\xbf\xbd") != NULL); /* U+FFFD */
    /* a field that is not UTF-8 fails jansson's pack: the line says the fields are lost */
    assert_non_null(strstr(str(lines[1], "souk.fields_error"), "UTF-8"));
    assert_true(json_is_true(json_object_get(lines[2], "souk.fields_truncated")));
    for (int i = 0; i < 3; i++)
        json_decref(lines[i]);
}

/* A refused configuration: one error line, the detail escaped in error.message, and
 * capped rather than cut into invalid JSON; written whatever the level. */
static void test_config_error_line(void **state)
{
    (void)state;
    char long_value[3000];
    memset(long_value, 'x', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    souk_log_init("catalog", SOUK_LOG_ERROR);
    capture_begin();
    souk_log_config_error("SOUK_LISTEN=\"%s\": expected host:port", "a\"b\\c\n\x01\xff");
    souk_log_config_error("SOUK_X=%s", long_value);
    capture_end();
    souk_log_init("catalog", SOUK_LOG_INFO);
    json_t *lines[4];
    assert_int_equal(read_lines(lines, 4), 2);
    static const char *const order[] = {"@timestamp",   "log.level",    "message",
                                        "ecs.version",  "service.name", "event.dataset",
                                        "error.message"};
    const char *key;
    json_t *v;
    size_t i = 0;
    json_object_foreach(lines[0], key, v)
    {
        assert_true(i < sizeof(order) / sizeof(order[0]));
        assert_string_equal(key, order[i++]);
    }
    assert_int_equal(i, 7);
    assert_string_equal(str(lines[0], "log.level"), "error");
    assert_string_equal(str(lines[0], "message"), "configuration error");
    assert_string_equal(str(lines[0], "service.name"), "catalog");
    assert_string_equal(str(lines[0], "error.message"),
                        "SOUK_LISTEN=\"a\"b\\c\n\x01\xef\xbf\xbd\": expected host:port");
    const char *cut = str(lines[1], "error.message");
    assert_true(strncmp(cut, "SOUK_X=xxx", 10) == 0 && strlen(cut) < sizeof(long_value));
    json_decref(lines[0]);
    json_decref(lines[1]);
}

/* Out of memory: the process says so in an ECS line under the service's name (set by
 * souk_log_init) and aborts; run in a child, its stderr a pipe. */
static void test_out_of_memory_line(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        souk_oom();
    }
    close(fds[1]);
    char buf[1024];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    assert_true(n > 0 && buf[n - 1] == '\n');
    buf[n] = '\0';
    json_error_t err;
    json_t *line = json_loads(buf, JSON_REJECT_DUPLICATES, &err);
    if (line == NULL)
        fail_msg("not one JSON object: %s (%s)", buf, err.text);
    assert_string_equal(json_object_iter_key(json_object_iter(line)), "@timestamp");
    assert_string_equal(str(line, "log.level"), "error");
    assert_string_equal(str(line, "message"), "out of memory");
    assert_string_equal(str(line, "ecs.version"), SOUK_ECS_VERSION);
    assert_string_equal(str(line, "service.name"), "catalog");
    assert_string_equal(str(line, "event.dataset"), "catalog");
    json_decref(line);
}

static void test_escape(void **state)
{
    (void)state;
    char buf[64];
    size_t n = souk__json_escape(buf, 0, sizeof(buf), "a\"b\\c\nd\x01");
    buf[n] = '\0';
    assert_string_equal(buf, "a\\\"b\\\\c\\nd\\u0001");
    /* never writes past the cap and never splits an escape */
    n = souk__json_escape(buf, 0, 4, "ab\"cd");
    buf[n] = '\0';
    assert_string_equal(buf, "ab");
}

struct utf8_case {
    const char *in, *out;
};

/* Long plain runs go 8 bytes at a time: a byte that needs care at any offset of a
 * word, and caps anywhere in a run, come out as a byte at a time would make them. */
static void test_escape_long_runs(void **state)
{
    (void)state;
    static const char *const odd[] = {"\"", "\\", "\n", "\x01", "\x7f", "\xc3\xa9", "\xff"};
    static const char *const want[] = {"\\\"",    "\\\\",     "\\n",    "\\u0001",
                                       "\\u007f", "\xc3\xa9", "\\ufffd"};
    for (size_t k = 0; k < sizeof(odd) / sizeof(odd[0]); k++) {
        for (size_t at = 0; at < 20; at++) {
            char in[64], expect[96], buf[96];
            memset(in, 'a', at);
            snprintf(in + at, sizeof(in) - at, "%s%s", odd[k], "bcdefghijklmnopq");
            memset(expect, 'a', at);
            snprintf(expect + at, sizeof(expect) - at, "%s%s", want[k], "bcdefghijklmnopq");
            size_t n = souk__json_escape(buf, 0, sizeof(buf), in);
            buf[n] = '\0';
            assert_string_equal(buf, expect);
            /* cut inside the leading run: exactly cap - 1 plain bytes */
            if (at > 2) {
                n = souk__json_escape(buf, 0, at - 1, in);
                assert_int_equal(n, at - 2);
            }
        }
    }
}

static void test_escape_keeps_utf8_and_replaces_the_rest(void **state)
{
    (void)state;
    static const struct utf8_case cases[] = {
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\x92", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\x92"},
        {"a\xffz", "a\\ufffdz"},                              /* never a UTF-8 byte */
        {"\xc0\xaf", "\\ufffd\\ufffd"},                       /* overlong '/' */
        {"\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd"},            /* a surrogate */
        {"\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd"}, /* past U+10FFFF */
        {"x\xe2\x82", "x\\ufffd\\ufffd"},                     /* cut short */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[128];
        size_t n = souk__json_escape(buf, 0, sizeof(buf), cases[i].in);
        buf[n] = '\0';
        assert_string_equal(buf, cases[i].out);
    }
    /* a sequence that does not fit is left out whole */
    char buf[8];
    size_t n = souk__json_escape(buf, 0, 6, "abcd\xe2\x82\xac");
    buf[n] = '\0';
    assert_string_equal(buf, "abcd");
}

struct redact_case {
    const char *in, *out;
};

static void test_redact(void **state)
{
    (void)state;
    static const struct redact_case cases[] = {
        {"/api/v1/payment-methods/4242424242424242", "/api/v1/payment-methods/XXXXXXXXXXXXXXXX"},
        {"/x/4242-4242-4242-4242/y", "/x/XXXXXXXXXXXXXXXXXXX/y"},
        {"/x/4242 4242 4242 4242", "/x/XXXXXXXXXXXXXXXXXXX"},
        {"/orders/123456789012", "/orders/123456789012"}, /* 12 digits: kept */
        {"/p/prd_01JD0Z6Y2M4W3S1V8N6QH5XK7C", "/p/prd_01JD0Z6Y2M4W3S1V8N6QH5XK7C"},
        {"/a-1-2-3", "/a-1-2-3"},
        {"4000000000000002", "XXXXXXXXXXXXXXXX"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[128];
        strcpy(buf, cases[i].in);
        souk__redact_digits(buf);
        assert_string_equal(buf, cases[i].out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_in_ecs_logging_order),
        cmocka_unit_test(test_field_names),
        cmocka_unit_test(test_request_context),
        cmocka_unit_test(test_access_line),
        cmocka_unit_test(test_hostile_input_stays_valid_json),
        cmocka_unit_test(test_config_error_line),
        cmocka_unit_test(test_out_of_memory_line),
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_escape_long_runs),
        cmocka_unit_test(test_escape_keeps_utf8_and_replaces_the_rest),
        cmocka_unit_test(test_redact),
    };
    return cmocka_run_group_tests_name("log", tests, setup, teardown);
}

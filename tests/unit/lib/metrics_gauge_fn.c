/* metrics_gauge_fn.c: tests the gauge callbacks of lib/metrics.c: the value is the
 * callback's at render time, and a callback may update a metric itself (a database
 * query in it fails and is counted) without deadlocking the render. */
#include <stdlib.h>
#include <string.h>

#include "souk/metrics.h"
#include "test.h"

static struct souk_metric *failures;

static double backlog(void *arg)
{
    int *calls = arg;
    (*calls)++;
    souk_metric_inc(failures, "error"); /* what a failing query in a callback does */
    return 42;
}

static void test_gauge_fn_may_count(void **state)
{
    (void)state;
    int calls = 0;
    failures = souk_metric_counter("t_failures_total", "test", "kind");
    souk_metric_gauge_fn("t_backlog", "test", backlog, &calls);
    size_t len;
    char *text = souk_metrics_render(&len);
    assert_int_equal(calls, 1);
    assert_non_null(strstr(text, "# TYPE t_backlog gauge\nt_backlog 42\n"));
    assert_non_null(strstr(text, "t_failures_total{kind=\"error\"} 1\n"));
    free(text);
    text = souk_metrics_render(&len);
    assert_int_equal(calls, 2);
    assert_non_null(strstr(text, "t_failures_total{kind=\"error\"} 2\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gauge_fn_may_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

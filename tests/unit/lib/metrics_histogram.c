/* metrics_histogram.c: tests the histogram type of lib/metrics.c: cumulative
 * buckets, +Inf, _sum and _count per label set, in the Prometheus text format. */
#include <stdlib.h>
#include <string.h>

#include "souk/metrics.h"
#include "test.h"

static void test_histogram_render(void **state)
{
    (void)state;
    struct souk_metric *h = souk_metric_histogram("t_upstream_seconds", "test", "upstream");
    souk_metric_observe(h, 0.0004, "a"); /* first bucket (0.0005) */
    souk_metric_observe(h, 0.003, "a");  /* 0.005 */
    souk_metric_observe(h, 42.0, "a");   /* only +Inf */
    souk_metric_observe(h, 0.2, "b");
    size_t len;
    char *text = souk_metrics_render(&len);
    assert_non_null(strstr(text, "# TYPE t_upstream_seconds histogram\n"));
    assert_non_null(strstr(text, "t_upstream_seconds_bucket{upstream=\"a\",le=\"0.0005\"} 1\n"));
    assert_non_null(strstr(text, "t_upstream_seconds_bucket{upstream=\"a\",le=\"0.0025\"} 1\n"));
    assert_non_null(strstr(text, "t_upstream_seconds_bucket{upstream=\"a\",le=\"0.005\"} 2\n"));
    assert_non_null(strstr(text, "t_upstream_seconds_bucket{upstream=\"a\",le=\"10\"} 2\n"));
    assert_non_null(strstr(text, "t_upstream_seconds_bucket{upstream=\"a\",le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "t_upstream_seconds_count{upstream=\"a\"} 3\n"));
    assert_non_null(strstr(text, "t_upstream_seconds_sum{upstream=\"a\"} 42.003400000\n"));
    assert_non_null(strstr(text, "t_upstream_seconds_bucket{upstream=\"b\",le=\"0.1\"} 0\n"));
    assert_non_null(strstr(text, "t_upstream_seconds_bucket{upstream=\"b\",le=\"0.25\"} 1\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_histogram_render)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

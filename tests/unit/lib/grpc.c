/* grpc.c: tests the pure parts of the gRPC modules (lib/grpc_common.c,
 * lib/grpc_json.c): the mapping of problem codes and HTTP statuses to gRPC statuses
 * and back to kit errors, method paths, request ids and trace context, the wire
 * check every request passes, and the protobuf ⇄ JSON mapping on the contracts. */
#include <stdlib.h>
#include <string.h>

#include "grpc_int.h"
#include "souk/catalog/v1/catalog.pb-c.h"
#include "souk/payments/v1/payments.pb-c.h"
#include "souk/souk.h"
#include "test.h"

static void test_status_for_problem(void **state)
{
    (void)state;
    static const struct {
        int http;
        const char *code;
        int want;
    } cases[] = {
        {200, NULL, GRPC_STATUS_OK},
        {201, NULL, GRPC_STATUS_OK},
        {400, "validation_failed", GRPC_STATUS_INVALID_ARGUMENT},
        {400, "malformed_json", GRPC_STATUS_INVALID_ARGUMENT},
        {400, "refund_exceeds_captured", GRPC_STATUS_INVALID_ARGUMENT},
        {401, "invalid_token", GRPC_STATUS_UNAUTHENTICATED},
        {403, "insufficient_scope", GRPC_STATUS_PERMISSION_DENIED},
        {404, "product_not_found", GRPC_STATUS_NOT_FOUND},
        {404, "reservation_not_found", GRPC_STATUS_NOT_FOUND},
        {409, "out_of_stock", GRPC_STATUS_FAILED_PRECONDITION},
        {409, "reservation_released", GRPC_STATUS_FAILED_PRECONDITION},
        {409, "illegal_transition", GRPC_STATUS_FAILED_PRECONDITION},
        {409, "idempotency_key_in_use", GRPC_STATUS_ABORTED},
        {409, "idempotency_key_reused", GRPC_STATUS_FAILED_PRECONDITION},
        {409, "email_taken", GRPC_STATUS_ALREADY_EXISTS},
        {412, "precondition_failed", GRPC_STATUS_FAILED_PRECONDITION},
        {413, "message_too_large", GRPC_STATUS_RESOURCE_EXHAUSTED},
        {415, "unsupported_media_type", GRPC_STATUS_INVALID_ARGUMENT},
        {428, "precondition_required", GRPC_STATUS_FAILED_PRECONDITION},
        {429, "rate_limited", GRPC_STATUS_RESOURCE_EXHAUSTED},
        {418, "teapot", GRPC_STATUS_FAILED_PRECONDITION},
        {500, "internal", GRPC_STATUS_INTERNAL},
        {501, "unimplemented", GRPC_STATUS_UNIMPLEMENTED},
        {502, "bad_response", GRPC_STATUS_UNAVAILABLE},
        {503, "unavailable", GRPC_STATUS_UNAVAILABLE},
        {503, "auth_unavailable", GRPC_STATUS_UNAVAILABLE},
        {504, "deadline_exceeded", GRPC_STATUS_DEADLINE_EXCEEDED},
        {507, "odd", GRPC_STATUS_INTERNAL},
        {400, "malformed_message", GRPC_STATUS_INVALID_ARGUMENT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = souk_grpc_status_for(cases[i].http, cases[i].code);
        if (got != cases[i].want)
            fail_msg("%d %s: %s, want %s", cases[i].http, cases[i].code, souk_grpc_status_name(got),
                     souk_grpc_status_name(cases[i].want));
    }
}

static void test_status_back_to_http_and_kit_errors(void **state)
{
    (void)state;
    static const struct {
        int status, http, err;
        const char *name;
    } cases[] = {
        {GRPC_STATUS_OK, 200, 0, "OK"},
        {GRPC_STATUS_CANCELLED, 499, SOUK_EIO, "CANCELLED"},
        {GRPC_STATUS_UNKNOWN, 500, SOUK_EIO, "UNKNOWN"},
        {GRPC_STATUS_INVALID_ARGUMENT, 400, SOUK_EINVAL, "INVALID_ARGUMENT"},
        {GRPC_STATUS_DEADLINE_EXCEEDED, 504, SOUK_ETIMEDOUT, "DEADLINE_EXCEEDED"},
        {GRPC_STATUS_NOT_FOUND, 404, SOUK_ENOTFOUND, "NOT_FOUND"},
        {GRPC_STATUS_ALREADY_EXISTS, 409, SOUK_ECONFLICT, "ALREADY_EXISTS"},
        {GRPC_STATUS_PERMISSION_DENIED, 403, SOUK_EAUTH, "PERMISSION_DENIED"},
        {GRPC_STATUS_RESOURCE_EXHAUSTED, 429, SOUK_EBUSY, "RESOURCE_EXHAUSTED"},
        {GRPC_STATUS_FAILED_PRECONDITION, 409, SOUK_ECONFLICT, "FAILED_PRECONDITION"},
        {GRPC_STATUS_ABORTED, 409, SOUK_ECONFLICT, "ABORTED"},
        {GRPC_STATUS_OUT_OF_RANGE, 400, SOUK_EINVAL, "OUT_OF_RANGE"},
        {GRPC_STATUS_UNIMPLEMENTED, 501, SOUK_EIO, "UNIMPLEMENTED"},
        {GRPC_STATUS_INTERNAL, 500, SOUK_EIO, "INTERNAL"},
        {GRPC_STATUS_UNAVAILABLE, 503, SOUK_EUNAVAIL, "UNAVAILABLE"},
        {GRPC_STATUS_DATA_LOSS, 500, SOUK_EIO, "DATA_LOSS"},
        {GRPC_STATUS_UNAUTHENTICATED, 401, SOUK_EAUTH, "UNAUTHENTICATED"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(souk_grpc_http_status(cases[i].status), cases[i].http);
        assert_int_equal(souk_grpc_error(cases[i].status), cases[i].err);
        assert_string_equal(souk_grpc_status_name(cases[i].status), cases[i].name);
        /* a status and the HTTP status it stands for agree, both ways, where they can */
        if (cases[i].status != GRPC_STATUS_UNKNOWN && cases[i].status != GRPC_STATUS_DATA_LOSS &&
            cases[i].status != GRPC_STATUS_OUT_OF_RANGE &&
            cases[i].status != GRPC_STATUS_ALREADY_EXISTS && cases[i].status != GRPC_STATUS_ABORTED)
            assert_int_equal(souk_grpc_status_for(cases[i].http, NULL), cases[i].status);
    }
    assert_string_equal(souk_grpc_status_name(17), "UNKNOWN");
    assert_string_equal(souk_grpc_status_name(-1), "UNKNOWN");
}

static void test_paths_ids_and_trace(void **state)
{
    (void)state;
    char svc[64], m[32];
    assert_true(
        souk__grpc_split_path("/souk.users.v1.Users/GetAddress", svc, sizeof(svc), m, sizeof(m)));
    assert_string_equal(svc, "souk.users.v1.Users");
    assert_string_equal(m, "GetAddress");
    static const char *const bad[] = {"", "x", "/", "//M", "/S/", "/S/M/N", "S/M", NULL};
    for (size_t i = 0; bad[i] != NULL; i++)
        assert_false(souk__grpc_split_path(bad[i], svc, sizeof(svc), m, sizeof(m)));
    assert_false(souk__grpc_split_path("/a.very.long.service.name.indeed.v1.Service/M", svc, 16, m,
                                       sizeof(m)));

    assert_true(souk__grpc_request_id_ok("req_01J0-x.y"));
    assert_false(souk__grpc_request_id_ok(""));
    assert_false(souk__grpc_request_id_ok("a b"));
    assert_false(souk__grpc_request_id_ok("a\nb"));
    char longid[80];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    assert_false(souk__grpc_request_id_ok(longid));

    char tp[SOUK__GRPC_TRACEPARENT_LEN + 1];
    souk__grpc_trace_context("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", tp);
    assert_int_equal(strlen(tp), SOUK__GRPC_TRACEPARENT_LEN);
    assert_memory_equal(tp, "00-0af7651916cd43dd8448eb211c80319c-", 36);
    assert_string_equal(tp + 52, "-00");                      /* the caller's flags */
    assert_memory_not_equal(tp + 36, "b7ad6b7169203331", 16); /* a span of our own */
    static const char *const malformed[] = {
        NULL, "", "00-zz", "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        souk__grpc_trace_context(malformed[i], tp);
        assert_int_equal(strlen(tp), SOUK__GRPC_TRACEPARENT_LEN);
        assert_memory_not_equal(tp + 3, "0af7651916cd43dd8448eb211c80319c", 32);
        assert_memory_not_equal(tp + 3, "00000000000000000000000000000000", 32);
    }
    assert_true(souk_grpc_url("grpc://127.0.0.1:9082"));
    assert_false(souk_grpc_url("http://127.0.0.1:8082"));
    assert_false(souk_grpc_url(NULL));
}

static void test_wire_check(void **state)
{
    (void)state;
    const ProtobufCMessageDescriptor *d = &souk__catalog__v1__reserve_request__descriptor;
    static const struct {
        const char *bytes;
        size_t len;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"\x0a\x03"
         "abc",
         5, true},                                /* reservation_id */
        {"\x12\x07\x0a\x03prd\x10\x02", 9, true}, /* items[0] */
        {"\x18\x05", 2, true},                    /* ttl_seconds */
        {"\x62\x02hi", 4, true},                  /* unknown field 12: skipped */
        {"\x0a\x02\xc3\xa9", 4, true},            /* "é" */
        {"\x0a\x03\xe2\x98\x83", 5, true},        /* "☃" */
        {"\x0a\x04\xf0\x9f\x98\x80", 6, true},    /* an emoji */
        {"\x0a\x01\xff", 3, false},               /* not UTF-8 */
        {"\x0a\x02\xc0\xaf", 4, false},           /* overlong "/" */
        {"\x0a\x03\xed\xa0\x80", 5, false},       /* a surrogate */
        {"\x0a\x04\xf4\x90\x80\x80", 6, false},   /* past U+10FFFF */
        {"\x0a\x02\xc3", 3, false},               /* length past the end */
        {"\x0a\x01\x00", 3, false},               /* NUL */
        {"\x12\x05\x0a\x03p\xff"
         "d",
         7, false},                      /* bad UTF-8 one level down */
        {"\x12\x03\x0a\x05p", 5, false}, /* inner length past the end */
        {"\x18", 1, false},              /* truncated varint */
        {"\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, false}, /* 11 bytes */
        {"\x1b", 1, false},                                              /* a group */
        {"\x1e", 1, false},                                              /* wire type 6 */
        {"\x00", 1, false},                                              /* field 0 */
        {"\x19\x01\x02", 3, false},                                      /* fixed64 cut short */
        {"\x1d\x01\x02\x03\x04", 5, true},                               /* fixed32 on field 3 */
    };
    char why[160];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc =
            souk_pb_check(d, (const unsigned char *)cases[i].bytes, cases[i].len, why, sizeof(why));
        if ((rc == 0) != cases[i].ok)
            fail_msg("case %zu: rc %d (%s)", i, rc, why);
        if (rc != 0)
            assert_true(why[0] != '\0');
    }
}

static json_t *roundtrip(const ProtobufCMessageDescriptor *d, const char *json_text)
{
    json_t *in = json_loads(json_text, 0, NULL);
    assert_non_null(in);
    unsigned char *bytes;
    size_t len;
    char err[256];
    if (souk_pb_from_json(d, in, &bytes, &len, err, sizeof(err)) != 0)
        fail_msg("%s: %s", json_text, err);
    assert_int_equal(souk_pb_check(d, bytes, len, err, sizeof(err)), 0);
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, bytes);
    assert_non_null(m);
    json_t *out = souk_pb_to_json(m);
    protobuf_c_message_free_unpacked(m, NULL);
    free(bytes);
    json_decref(in);
    return out;
}

static void test_json_mapping_in_rest_shape(void **state)
{
    (void)state;
    json_t *p = roundtrip(&souk__catalog__v1__product__descriptor,
                          "{\"id\":\"prd_1\",\"price_cents\":1999,\"currency\":\"USD\","
                          "\"attributes\":{\"brand\":\"Acme\",\"watts\":1200,\"ratio\":0.5,"
                          "\"cordless\":true},\"stock_available\":0,\"etag\":\"ignored\"}");
    /* every field, defaults included, as REST shows them; attribute values bare */
    assert_string_equal(json_string_value(json_object_get(p, "id")), "prd_1");
    assert_int_equal(json_integer_value(json_object_get(p, "price_cents")), 1999);
    assert_true(json_is_integer(json_object_get(p, "stock_available")));
    assert_string_equal(json_string_value(json_object_get(p, "description")), "");
    assert_null(json_object_get(p, "etag"));
    json_t *a = json_object_get(p, "attributes");
    assert_string_equal(json_string_value(json_object_get(a, "brand")), "Acme");
    assert_int_equal(json_integer_value(json_object_get(a, "watts")), 1200);
    assert_true(json_real_value(json_object_get(a, "ratio")) == 0.5);
    assert_true(json_is_true(json_object_get(a, "cordless")));
    json_decref(p);

    /* a oneof-optional field: absent stays absent (REST null), present may be "" */
    json_t *page = roundtrip(&souk__catalog__v1__list_products_response__descriptor,
                             "{\"items\":[],\"next_page_token\":null}");
    assert_null(json_object_get(page, "next_page_token"));
    assert_int_equal(json_array_size(json_object_get(page, "items")), 0);
    json_decref(page);
    page = roundtrip(&souk__catalog__v1__list_products_response__descriptor,
                     "{\"next_page_token\":\"\"}");
    assert_string_equal(json_string_value(json_object_get(page, "next_page_token")), "");
    json_decref(page);

    json_t *pay = roundtrip(&souk__payments__v1__refund__descriptor,
                            "{\"id\":\"rfd_1\",\"amount_cents\":500,\"payment\":{\"id\":\"pay_1\","
                            "\"status\":\"refunded\",\"decline_code\":null}}");
    json_t *inner = json_object_get(pay, "payment");
    assert_string_equal(json_string_value(json_object_get(inner, "status")), "refunded");
    assert_null(json_object_get(inner, "decline_code"));
    json_decref(pay);
    pay = roundtrip(&souk__payments__v1__refund__descriptor, "{}");
    assert_true(json_is_null(json_object_get(pay, "payment"))); /* an absent message is null */
    json_decref(pay);

    /* int64 beyond 2^53 stays exact */
    json_t *big =
        roundtrip(&souk__catalog__v1__product__descriptor, "{\"price_cents\":9007199254740993}");
    assert_true(json_integer_value(json_object_get(big, "price_cents")) == 9007199254740993LL);
    json_decref(big);
}

static void test_json_that_does_not_fit_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[]",
        "{\"id\":5}",
        "{\"price_cents\":\"1999\"}",
        "{\"price_cents\":19.99}",
        "{\"attributes\":[]}",
        "{\"attributes\":{\"k\":[1]}}",
        "{\"attributes\":{\"k\":{}}}",
        "{\"stock_available\":true}",
    };
    char err[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loads(bad[i], 0, NULL);
        unsigned char *out = (unsigned char *)"untouched";
        size_t len = 7;
        int rc = souk_pb_from_json(&souk__catalog__v1__product__descriptor, j, &out, &len, err,
                                   sizeof(err));
        if (rc != SOUK_EINVAL)
            fail_msg("%s: accepted", bad[i]);
        assert_null(out);
        assert_int_equal(len, 0);
        json_decref(j);
    }
    /* the error names the field, nested ones with their path */
    json_t *j = json_loads("{\"items\":[{\"product_id\":\"p\",\"quantity\":\"two\"}]}", 0, NULL);
    unsigned char *out;
    size_t len;
    assert_int_equal(souk_pb_from_json(&souk__catalog__v1__reserve_request__descriptor, j, &out,
                                       &len, err, sizeof(err)),
                     SOUK_EINVAL);
    assert_non_null(strstr(err, "items.quantity"));
    json_decref(j);
    /* int32 range */
    j = json_loads("{\"page_size\":4294967296}", 0, NULL);
    assert_int_equal(souk_pb_from_json(&souk__catalog__v1__list_products_request__descriptor, j,
                                       &out, &len, err, sizeof(err)),
                     SOUK_EINVAL);
    assert_non_null(strstr(err, "page_size"));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_for_problem),
        cmocka_unit_test(test_status_back_to_http_and_kit_errors),
        cmocka_unit_test(test_paths_ids_and_trace),
        cmocka_unit_test(test_wire_check),
        cmocka_unit_test(test_json_mapping_in_rest_shape),
        cmocka_unit_test(test_json_that_does_not_fit_is_refused),
    };
    return cmocka_run_group_tests_name("grpc", tests, NULL, NULL);
}

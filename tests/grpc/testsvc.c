/* testsvc.c: a small service that serves the test contract (test.proto) through the
 * kit's gRPC server, for tests/e2e/test_grpc.py: every auth kind, slow calls for
 * deadlines and the drain, problems for the status mapping, the kit's client (to a
 * peer), and the JSON mapping. Not part of the platform. */
#include <string.h>
#include <time.h>

#include "souk/grpc.h"
#include "souk/service.h"
#include "souk/log.h"
#include "souk/souk.h"
#include "test.pb-c.h"

extern const unsigned char souk_test_descriptors[];
extern const size_t souk_test_descriptors_len;

static const char *cfg_peer;

static const struct souk_conf config[] = {
    {"SOUK_TEST_PEER_URL", SOUK_CONF_STR, "", 0, 1024, &cfg_peer, "grpc:// peers for Relay"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* Wait sleep_ms, or until the deadline: a handler that waits should end with it.
 * Returns 0, or the status of the problem set when the deadline came first. */
static int nap(struct souk_rpc *c, int ms)
{
    if (ms <= 0)
        return 0;
    souk_info("rpc sleeping", "{s:s,s:i}", "rpc", souk_rpc_method(c), "sleep_ms", ms);
    uint64_t until = souk_now_ns() + (uint64_t)ms * 1000000u;
    while (souk_now_ns() < until && souk_rpc_deadline_ms(c) > 0)
        nanosleep(&(struct timespec){0, 5000000}, NULL);
    return souk_rpc_deadline_ms(c) == 0
               ? souk_rpc_problem(c, 504, "deadline_exceeded", "gave up at the deadline")
               : 0;
}

static int echo(struct souk_rpc *c, const ProtobufCMessage *in)
{
    const Souk__Test__V1__EchoRequest *req = (const void *)in;
    int status = nap(c, req->sleep_ms);
    if (status != 0)
        return status;
    if (req->fail_status != 0)
        return souk_rpc_problem_with(
            c, req->fail_status, req->fail_code[0] ? req->fail_code : "error",
            json_pack("{s:[{s:s,s:i}]}", "items", "product_id", "prd_x", "available", 0),
            "asked to fail with %d", req->fail_status);
    Souk__Test__V1__EchoReply out = SOUK__TEST__V1__ECHO_REPLY__INIT;
    out.text = req->text;
    out.caller = (char *)souk_rpc_identity(c)->sub;
    out.scope = (char *)souk_rpc_identity(c)->scope;
    out.request_id = (char *)souk_rpc_id(c);
    out.traceparent = (char *)souk_rpc_traceparent(c);
    out.deadline_ms = souk_rpc_deadline_ms(c);
    return souk_rpc_reply(c, &out.base);
}

static int relay(struct souk_rpc *c, const ProtobufCMessage *in)
{
    const Souk__Test__V1__RelayRequest *req = (const void *)in;
    Souk__Test__V1__EchoRequest empty = SOUK__TEST__V1__ECHO_REQUEST__INIT;
    Souk__Test__V1__RelayReply out = SOUK__TEST__V1__RELAY_REPLY__INIT;
    struct souk_grpc_call call = {
        .method = "/souk.test.v1.Test/Echo",
        .request = req->echo != NULL ? &req->echo->base : &empty.base,
        .response_type = &souk__test__v1__echo_reply__descriptor,
        .service_token = true,
        .rpc_parent = c,
        .timeout_ms = req->timeout_ms,
        .retries = req->retries,
    };
    int rc;
    if (req->json) {
        struct souk_response res;
        json_t *body = souk_pb_to_json(call.request);
        rc = souk_grpc_call_json(cfg_peer, &call, &souk__test__v1__echo_request__descriptor, body,
                                 &res);
        json_decref(body);
        out.status = res.status;
        out.answered = rc == 0;
        out.body_json = souk_rpc_printf(c, "%s", res.body ? res.body : "");
        out.problem_code = (char *)"";
        if (rc == 0 && res.status >= 400)
            out.problem_code = souk_rpc_printf(
                c, "%s", json_string_value(json_object_get(res.json, "code")) ?: "");
        out.kit_error = (char *)(rc ? souk_strerror(rc) : "");
        souk_response_free(&res);
        return souk_rpc_reply(c, &out.base);
    }
    struct souk_grpc_result res;
    rc = souk_grpc_call(cfg_peer, &call, &res);
    out.code = res.code;
    out.status = res.status;
    out.answered = res.answered;
    out.problem_code = souk_rpc_printf(c, "%s", res.problem_code);
    out.kit_error = (char *)(rc ? souk_strerror(rc) : "");
    if (res.response != NULL)
        out.reply = (Souk__Test__V1__EchoReply *)res.response;
    souk_rpc_reply(c, &out.base);
    souk_grpc_result_free(&res);
    return 200;
}

/* Through JSON and back: what a handler shared with HTTP would do. */
static int mirror(struct souk_rpc *c, const ProtobufCMessage *in)
{
    SOUK_UNUSED(in);
    return souk_rpc_reply_json(c, json_incref(souk_rpc_request_json(c)));
}

static const struct souk_rpc_method rpcs[] = {
    SOUK_RPC("/souk.test.v1.Test/Echo", echo, SOUK_SERVICE, "users:read",
             souk__test__v1__echo_request, souk__test__v1__echo_reply),
    SOUK_RPC("/souk.test.v1.Test/Whoami", echo, SOUK_USER, NULL, souk__test__v1__echo_request,
             souk__test__v1__echo_reply),
    SOUK_RPC("/souk.test.v1.Test/Ping", echo, SOUK_PUBLIC, NULL, souk__test__v1__echo_request,
             souk__test__v1__echo_reply),
    SOUK_RPC("/souk.test.v1.Test/Relay", relay, SOUK_PUBLIC, NULL, souk__test__v1__relay_request,
             souk__test__v1__relay_reply),
    SOUK_RPC("/souk.test.v1.Test/Mirror", mirror, SOUK_PUBLIC, NULL, souk__test__v1__sample,
             souk__test__v1__sample),
    {NULL, NULL, 0, NULL, NULL, NULL, 0, NULL},
};

static const struct souk_grpc_service grpc = {
    .listen = "127.0.0.1:19090",
    .methods = rpcs,
    .descriptors = souk_test_descriptors,
    .descriptors_len = &souk_test_descriptors_len,
};

static const struct souk_route routes[] = {{NULL, NULL, NULL, 0, NULL, 0}};

static const struct souk_service testsvc = {
    .name = "testsvc",
    .listen = "127.0.0.1:18090",
    .routes = routes,
    .config = config,
    .grpc = &grpc,
};

int main(int argc, char **argv) { return souk_main(argc, argv, &testsvc); }

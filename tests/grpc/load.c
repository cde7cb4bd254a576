/* load.c: a gRPC load generator on the kit's client, for the numbers in docs/grpc.md:
 *   load grpc://127.0.0.1:PORT THREADS SECONDS [method]
 * calls /souk.test.v1.Test/Ping (or the given unary method, its answer not decoded)
 * from THREADS threads, one call in flight each, and prints calls/s and errors. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "souk/grpc.h"
#include "souk/souk.h"
#include "test.pb-c.h"

extern const unsigned char souk_test_descriptors[];

static const char *const default_method = "/souk.test.v1.Test/Ping";
static const char *peer, *method = default_method;
static uint64_t until;
static atomic_long ok, failed;

static void *run(void *arg)
{
    SOUK_UNUSED(arg);
    Souk__Test__V1__EchoRequest req = SOUK__TEST__V1__ECHO_REQUEST__INIT;
    req.text = "hello";
    struct souk_grpc_call call = {
        .method = method,
        .request = &req.base,
        .response_type = &souk__test__v1__echo_reply__descriptor,
        .timeout_ms = 5000,
    };
    if (method != default_method) /* another service's: its answer is not read */
        call.response_type = NULL;
    while (souk_now_ns() < until) {
        struct souk_grpc_result res;
        if (souk_grpc_call(peer, &call, &res) == 0)
            atomic_fetch_add(&ok, 1);
        else
            atomic_fetch_add(&failed, 1);
        souk_grpc_result_free(&res);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s grpc://host:port THREADS SECONDS [method]\n", argv[0]);
        return 2;
    }
    peer = argv[1];
    int threads = atoi(argv[2]), secs = atoi(argv[3]);
    if (argc > 4)
        method = argv[4];
    if (threads < 1 || threads > 256 || secs < 1)
        return 2;
    pthread_t t[256];
    uint64_t t0 = souk_now_ns();
    until = t0 + (uint64_t)secs * 1000000000u;
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, run, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double elapsed = (double)(souk_now_ns() - t0) / 1e9;
    printf("calls %ld errors %ld seconds %.2f calls/s %.0f\n", atomic_load(&ok),
           atomic_load(&failed), elapsed, (double)atomic_load(&ok) / elapsed);
    return atomic_load(&failed) > 0 && atomic_load(&ok) == 0;
}

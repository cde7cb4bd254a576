/* grpc.c: libFuzzer driver for what a gRPC server does with untrusted bytes: the
 * first byte picks a message type of the contracts (or the reflection request),
 * the rest is the message. It runs the wire check, protobuf-c's unpack, the JSON
 * mapping both ways (which must reach a fixed point), and reflection's answer. A
 * crash, a leak or a broken invariant is a finding; a refusal is fine. */
#include <stdlib.h>
#include <string.h>

#include "../../lib/grpc_int.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "souk/cart/v1/cart.pb-c.h"
#include "souk/catalog/v1/catalog.pb-c.h"
#include "souk/payments/v1/payments.pb-c.h"
#include "souk/users/v1/users.pb-c.h"

static const ProtobufCMessageDescriptor *const types[] = {
    &grpc__reflection__v1alpha__server_reflection_request__descriptor, /* 0: also answered */
    &souk__cart__v1__get_cart_request__descriptor,
    &souk__cart__v1__clear_cart_request__descriptor,
    &souk__cart__v1__cart__descriptor,
    &souk__catalog__v1__get_product_request__descriptor,
    &souk__catalog__v1__product__descriptor,
    &souk__catalog__v1__list_products_request__descriptor,
    &souk__catalog__v1__search_products_request__descriptor,
    &souk__catalog__v1__list_products_response__descriptor,
    &souk__catalog__v1__list_categories_response__descriptor,
    &souk__catalog__v1__get_products_request__descriptor,
    &souk__catalog__v1__get_products_response__descriptor,
    &souk__catalog__v1__reserve_request__descriptor,
    &souk__catalog__v1__reservation__descriptor,
    &souk__catalog__v1__commit_reservation_request__descriptor,
    &souk__catalog__v1__release_reservation_request__descriptor,
    &souk__catalog__v1__reservation_state__descriptor,
    &souk__payments__v1__authorize_payment_request__descriptor,
    &souk__payments__v1__capture_payment_request__descriptor,
    &souk__payments__v1__void_payment_request__descriptor,
    &souk__payments__v1__refund_payment_request__descriptor,
    &souk__payments__v1__payment__descriptor,
    &souk__payments__v1__refund__descriptor,
    &souk__users__v1__get_user_request__descriptor,
    &souk__users__v1__user__descriptor,
    &souk__users__v1__get_address_request__descriptor,
    &souk__users__v1__address__descriptor,
    &grpc__health__v1__health_check_request__descriptor,
};
#define NTYPES (sizeof(types) / sizeof(types[0]))

/* JSON → message → JSON; NULL when the JSON does not fit (it always should here). */
static json_t *again(const ProtobufCMessageDescriptor *d, const json_t *j)
{
    unsigned char *bytes;
    size_t len;
    char err[256];
    if (souk_pb_from_json(d, j, &bytes, &len, err, sizeof(err)) != 0)
        return NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, bytes);
    free(bytes);
    if (m == NULL)
        return NULL;
    json_t *out = souk_pb_to_json(m);
    protobuf_c_message_free_unpacked(m, NULL);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    static int indexed;
    if (!indexed) /* reflection over the contracts, as a service indexes them */
        indexed = souk__grpc_reflect_init(souk_proto_descriptors, souk_proto_descriptors_len) == 0
                      ? 1
                      : (abort(), 0);
    if (n == 0)
        return 0;
    const ProtobufCMessageDescriptor *d = types[data[0] % NTYPES];
    data++, n--;
    char why[160];
    if (souk_pb_check(d, data, n, why, sizeof(why)) != 0)
        return 0;
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, data);
    if (m == NULL)
        return 0;
    json_t *j1 = souk_pb_to_json(m);
    protobuf_c_message_free_unpacked(m, NULL);
    json_t *j2 = again(d, j1), *j3 = j2 ? again(d, j2) : NULL;
    if (j2 == NULL || j3 == NULL || !json_equal(j2, j3))
        abort(); /* what the mapping wrote it must read, and come back to the same */
    json_decref(j1);
    json_decref(j2);
    json_decref(j3);
    if (d == types[0]) {
        unsigned char *out;
        size_t len;
        if (souk__grpc_reflect_answer(data, n, &out, &len) != 0)
            abort(); /* it passed the check and unpacked: it gets an answer */
        free(out);
    }
    return 0;
}

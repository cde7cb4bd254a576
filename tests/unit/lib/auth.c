/* auth.c: token verification's edge cases, against a key set handed in the way
 * the users service hands in its own (souk_auth_set_local_jwks): no network. Each
 * case builds one token and expects an answer and a reason; the tokens differ by
 * jti, so the verified-token cache never answers for another case. */
#include <jansson.h>
#include <rhonabwy.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "souk/auth.h"
#include "souk/server.h"
#include "souk/souk.h"
#include "test.h"

#define KID "k1"

static jwk_t *priv, *pub, *other_priv; /* other: a key the set does not hold */
static json_t *jwks;
static int serial;

static json_t *local_jwks(void) { return json_incref(jwks); }

static int setup(void **state)
{
    (void)state;
    jwk_t *other_pub = NULL;
    if (sodium_init() < 0 || r_jwk_init(&priv) != RHN_OK || r_jwk_init(&pub) != RHN_OK ||
        r_jwk_init(&other_priv) != RHN_OK || r_jwk_init(&other_pub) != RHN_OK ||
        r_jwk_generate_key_pair(priv, pub, R_KEY_TYPE_RSA, 2048, KID) != RHN_OK ||
        r_jwk_generate_key_pair(other_priv, other_pub, R_KEY_TYPE_RSA, 2048, KID) != RHN_OK)
        return -1;
    r_jwk_free(other_pub);
    r_jwk_set_property_str(pub, "alg", "RS256");
    r_jwk_set_property_str(pub, "use", "sig");
    jwks = json_pack("{s:[o]}", "keys", r_jwk_export_to_json_t(pub));
    souk_auth_set_local_jwks(local_jwks);
    return jwks != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    souk_auth_shutdown();
    r_jwk_free(priv);
    r_jwk_free(pub);
    r_jwk_free(other_priv);
    json_decref(jwks);
    return 0;
}

/* Claims valid now for the default issuer and audience, each with its own jti. */
static json_t *good_claims(void)
{
    long long now = (long long)(souk_wall_ms() / 1000);
    char jti[32];
    snprintf(jti, sizeof(jti), "jti-%d", ++serial);
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:[s]}", "iss", souk_auth_issuer(),
                     "aud", souk_auth_audience(), "sub", "usr_1", "jti", jti, "iat",
                     (json_int_t)now, "nbf", (json_int_t)now, "exp", (json_int_t)(now + 900),
                     "client_id", "web", "scope", "orders:read", "roles", "admin");
}

/* An RS256 token of claims (taken) signed with key, with header typ and kid. */
static char *sign(json_t *claims, jwk_t *key, const char *typ, const char *kid)
{
    jwt_t *jwt = NULL;
    char *out = NULL;
    if (r_jwt_init(&jwt) == RHN_OK && r_jwt_set_full_claims_json_t(jwt, claims) == RHN_OK &&
        r_jwt_set_sign_alg(jwt, R_JWA_ALG_RS256) == RHN_OK &&
        (typ == NULL || r_jwt_set_header_str_value(jwt, "typ", typ) == RHN_OK) &&
        r_jwt_set_header_str_value(jwt, "kid", kid) == RHN_OK)
        out = r_jwt_serialize_signed(jwt, key, 0);
    r_jwt_free(jwt);
    json_decref(claims);
    assert_non_null(out);
    return out;
}

static char *b64(const void *data, size_t len)
{
    size_t cap = sodium_base64_encoded_len(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *s = malloc(cap);
    sodium_bin2base64(s, cap, data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return s;
}

/* header.payload[.signature] by hand, for what no JOSE library would sign. */
static char *forge(const char *header, json_t *claims, const char *sig)
{
    char *payload = json_dumps(claims, JSON_COMPACT);
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload));
    size_t cap = strlen(h) + strlen(p) + strlen(sig) + 3;
    char *out = malloc(cap);
    snprintf(out, cap, "%s.%s.%s", h, p, sig);
    free(h);
    free(p);
    free(payload);
    json_decref(claims);
    return out;
}

/* Verify token (freed); expect rc and, when refused, a reason containing why. */
static void expect(char *token, int rc, const char *why)
{
    struct souk_identity who;
    char reason[128] = "";
    int got = souk_auth_verify(token, &who, reason, sizeof(reason));
    if (got != rc || (why != NULL && strstr(reason, why) == NULL))
        fail_msg("expected %d (%s), got %d (%s)", rc, why ? why : "", got, reason);
    if (rc == 0)
        assert_true(who.authenticated);
    else
        assert_false(who.authenticated);
    free(token);
}

static void test_a_good_token_verifies(void **state)
{
    (void)state;
    struct souk_identity who;
    char *t = sign(good_claims(), priv, "at+jwt", KID);
    assert_int_equal(souk_auth_verify(t, &who, NULL, 0), 0);
    assert_string_equal(who.sub, "usr_1");
    assert_true(who.admin);
    assert_false(who.service);
    /* again: the cache answers, with the same identity */
    memset(&who, 0, sizeof(who));
    assert_int_equal(souk_auth_verify(t, &who, NULL, 0), 0);
    assert_string_equal(who.sub, "usr_1");
    free(t);
    /* application/at+jwt is the same typ (RFC 9068) */
    expect(sign(good_claims(), priv, "application/at+jwt", KID), 0, NULL);
}

static void test_algorithms_other_than_rs256_are_refused(void **state)
{
    (void)state;
    /* alg none: unsigned, with or without an (empty) signature */
    expect(forge("{\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"" KID "\"}", good_claims(), ""),
           SOUK_EAUTH, NULL);
    /* HS256 keyed with the public key (the RS/HS confusion): refused before any key */
    json_t *claims = good_claims();
    const char *hdr = "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"" KID "\"}";
    char *payload = json_dumps(claims, JSON_COMPACT);
    char *h = b64(hdr, strlen(hdr)), *p = b64(payload, strlen(payload));
    char input[8192];
    snprintf(input, sizeof(input), "%s.%s", h, p);
    char *pem = json_dumps(jwks, JSON_COMPACT); /* what an attacker has: the public key */
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (unsigned char *)pem, strlen(pem));
    crypto_auth_hmacsha256_update(&st, (unsigned char *)input, strlen(input));
    crypto_auth_hmacsha256_final(&st, mac);
    char *sig = b64(mac, sizeof(mac));
    expect(forge(hdr, claims, sig), SOUK_EAUTH, "algorithm not allowed");
    free(sig);
    free(pem);
    free(h);
    free(p);
    free(payload);
}

static void test_header_and_key_checks(void **state)
{
    (void)state;
    expect(sign(good_claims(), priv, NULL, KID), SOUK_EAUTH, "typ must be at+jwt");
    expect(sign(good_claims(), priv, "JWT", KID), SOUK_EAUTH, "typ must be at+jwt");
    expect(sign(good_claims(), priv, "at+jwt", ""), SOUK_EAUTH, "kid missing");
    /* a kid the current set lacks: invalid, not "keys unavailable" */
    expect(sign(good_claims(), priv, "at+jwt", "k-unknown"), SOUK_EAUTH, "unknown signing key");
    /* the right kid, someone else's key */
    expect(sign(good_claims(), other_priv, "at+jwt", KID), SOUK_EAUTH, "bad signature");
}

static json_t *with(json_t *c, const char *key, json_t *v)
{
    if (v == NULL)
        json_object_del(c, key);
    else
        json_object_set_new(c, key, v);
    return c;
}

static void test_times_with_leeway(void **state)
{
    (void)state;
    json_int_t now = (json_int_t)(souk_wall_ms() / 1000);
    /* expired 10 s ago: within the 30 s leeway */
    expect(sign(with(good_claims(), "exp", json_integer(now - 10)), priv, "at+jwt", KID), 0, NULL);
    expect(sign(with(good_claims(), "exp", json_integer(now - 60)), priv, "at+jwt", KID),
           SOUK_EAUTH, "token expired");
    expect(sign(with(good_claims(), "nbf", json_integer(now + 10)), priv, "at+jwt", KID), 0, NULL);
    expect(sign(with(good_claims(), "nbf", json_integer(now + 120)), priv, "at+jwt", KID),
           SOUK_EAUTH, "not yet valid");
    expect(sign(with(good_claims(), "iat", json_integer(now + 120)), priv, "at+jwt", KID),
           SOUK_EAUTH, "not yet valid");
    expect(sign(with(good_claims(), "exp", json_string("soon")), priv, "at+jwt", KID), SOUK_EAUTH,
           "required integers");
}

static void test_issuer_audience_and_claims(void **state)
{
    (void)state;
    expect(sign(with(good_claims(), "iss", json_string("someone-else")), priv, "at+jwt", KID),
           SOUK_EAUTH, "wrong issuer");
    expect(sign(with(good_claims(), "iss", NULL), priv, "at+jwt", KID), SOUK_EAUTH, "wrong issuer");
    expect(sign(with(good_claims(), "aud", json_string("elsewhere")), priv, "at+jwt", KID),
           SOUK_EAUTH, "wrong audience");
    /* an audience list holding ours is fine */
    expect(sign(with(good_claims(), "aud", json_pack("[s,s]", "elsewhere", souk_auth_audience())),
                priv, "at+jwt", KID),
           0, NULL);
    expect(sign(with(good_claims(), "exp", NULL), priv, "at+jwt", KID), SOUK_EAUTH,
           "required integers");
    expect(sign(with(good_claims(), "iat", NULL), priv, "at+jwt", KID), SOUK_EAUTH,
           "required integers");
    expect(sign(with(good_claims(), "sub", NULL), priv, "at+jwt", KID), SOUK_EAUTH, "malformed");
    expect(sign(with(good_claims(), "jti", NULL), priv, "at+jwt", KID), SOUK_EAUTH, "malformed");
    expect(sign(with(good_claims(), "sub", json_integer(7)), priv, "at+jwt", KID), SOUK_EAUTH,
           "malformed");
    expect(sign(with(good_claims(), "roles", json_string("admin")), priv, "at+jwt", KID),
           SOUK_EAUTH, "roles must be an array");
    /* a service token: no roles, client_id == sub */
    json_t *c = with(with(good_claims(), "roles", NULL), "client_id", json_string("usr_1"));
    struct souk_identity who;
    char *t = sign(c, priv, "at+jwt", KID);
    assert_int_equal(souk_auth_verify(t, &who, NULL, 0), 0);
    assert_true(who.service);
    assert_false(who.admin);
    free(t);
}

static void test_malformed_and_oversized(void **state)
{
    (void)state;
    expect(strdup(""), SOUK_EAUTH, "malformed token");
    expect(strdup("not-a-jwt"), SOUK_EAUTH, "malformed token");
    expect(strdup("a.b.c"), SOUK_EAUTH, NULL);
    /* over SOUK_AUTH_TOKEN_MAX: refused unparsed, even though it is well signed */
    json_t *c = good_claims();
    char pad[SOUK_AUTH_TOKEN_MAX];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    json_object_set_new(c, "pad", json_string(pad));
    char *t = sign(c, priv, "at+jwt", KID);
    assert_true(strlen(t) > SOUK_AUTH_TOKEN_MAX);
    expect(t, SOUK_EAUTH, "malformed token");
    /* a well-signed token with one byte of its payload changed */
    t = sign(good_claims(), priv, "at+jwt", KID);
    char *dot = strchr(t, '.');
    dot[5] = dot[5] == 'A' ? 'B' : 'A';
    expect(t, SOUK_EAUTH, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_good_token_verifies),
        cmocka_unit_test(test_algorithms_other_than_rs256_are_refused),
        cmocka_unit_test(test_header_and_key_checks),
        cmocka_unit_test(test_times_with_leeway),
        cmocka_unit_test(test_issuer_audience_and_claims),
        cmocka_unit_test(test_malformed_and_oversized),
    };
    return cmocka_run_group_tests_name("auth", tests, setup, teardown);
}

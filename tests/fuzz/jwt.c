/* jwt.c: libFuzzer driver for the access-token verifier (lib/auth.c,
 * souk_auth_verify): base64url and JSON decoding of header and claims, the alg and
 * typ pins, the kid lookup, the RS256 signature and every claim check. The keys are
 * a fixed JWKS given in-process, as the users service does; the seed corpus holds
 * tokens signed with its private key (valid until 2100), so mutations start past
 * the signature, and forgeries (alg none, HS256, another key, wrong typ). */
#include <stdlib.h>
#include <string.h>

#include "souk/auth.h"
#include "souk/souk.h"

/* The public half of a key made for this driver; its private half signed the corpus. */
static const char jwks_text[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"z-ZsMQSG5Janoom0qiQere2w_-ll383smYdYxsNpqp2V253nKca0"
    "sM3xosKKtAal59CGzTVj77mOWQpkLNWRe3lytsYNIjENpOIYjsavtneQTDbwBVeAmhiOcrNgtDJGif9zoqId19DK"
    "ZgL9wisGYevyKBD1Gmb9-qtGKvDC2WBhwlUT4vBk_Fq9BRrkE2dtlMKNLOYsvqCLqOmmeKYjU16217d1LK_HHiXk"
    "CDXjedR5HJVfRnZuJWIDWx__j0h3bXiDBqwrsR71UmU1MFzyPcWtZG_ZvbmM_mMUoRV4cl4MQsH3A-AANOxsceRI"
    "yaEwsxZ20VoLMw4bhrC5TALsKQ\",\"e\":\"AQAB\",\"kid\":\"fuzz-1\",\"alg\":\"RS256\",\"use\""
    ":\"sig\"}]}";

static json_t *jwks(void) { return json_loads(jwks_text, 0, NULL); }

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    souk_auth_set_local_jwks(jwks);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    char *token = malloc(n + 1);
    memcpy(token, data, n);
    token[n] = '\0';
    struct souk_identity who;
    char why[96] = "";
    int rc = souk_auth_verify(token, &who, why, sizeof(why));
    if (rc == 0 &&
        (!who.authenticated || who.sub[0] == '\0' || who.token_id[0] == '\0' || who.expires <= 0))
        abort(); /* accepted: the identity is whole */
    if (rc != 0 &&
        (who.authenticated || why[0] == '\0' || (rc != SOUK_EAUTH && rc != SOUK_EUNAVAIL)))
        abort(); /* refused: nothing of the identity is left, and the reason is named */
    free(token);
    return 0;
}

/* clients.c: the OAuth clients. souk-web is the public storefront client (no
 * secret; password and refresh grants). Service clients, one per line of
 * services.txt, authenticate with the secrets in SOUK_CLIENTS_FILE
 * ({"catalog":"<hex>",…}, written by `souk up`); the scopes each may be granted come
 * from services.txt (build/gen/services.h), never from the file. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "services.h"
#include "souk/auth.h"
#include "souk/log.h"
#include "souk/souk.h"
#include "users.h"

#define CLIENTS_FILE_MAX 65536
#define CLIENTS_MAX      32
#define SECRET_MIN       16
#define SECRET_MAX       256

/* Who may be granted what (README "Service clients and scopes"). Scopes read
 * "<service>:<action>" and are checked by the route that needs them. */
#define CLIENT(ident, name, port, edge, scopes) {name, scopes, true},
static const struct oauth_client table[] = {{"souk-web", "", false}, SOUK_SERVICES(CLIENT)};
#undef CLIENT

/* The secret of each confidential client, as a hash: only compared, never shown. */
static unsigned char secret_hash[SOUK_ARRAY_LEN(table)][crypto_generichash_BYTES];
static bool has_secret[SOUK_ARRAY_LEN(table)];

int clients_load(void)
{
    if (cfg_clients_file == NULL || cfg_clients_file[0] == '\0') {
        souk_warn("SOUK_CLIENTS_FILE not set: no service client can authenticate", NULL);
        return 0;
    }
    json_error_t err;
    json_t *j = json_load_file(cfg_clients_file, JSON_REJECT_DUPLICATES, &err);
    if (!json_is_object(j)) {
        souk_error("cannot read SOUK_CLIENTS_FILE", "{s:s,s:s}", "file", cfg_clients_file, "error",
                   err.text);
        json_decref(j);
        return SOUK_EINVAL;
    }
    const char *name;
    json_t *v;
    int n = 0;
    json_object_foreach(j, name, v)
    {
        const char *secret = json_string_value(v);
        size_t i;
        for (i = 0; i < SOUK_ARRAY_LEN(table); i++)
            if (table[i].confidential && strcmp(table[i].id, name) == 0)
                break;
        if (i == SOUK_ARRAY_LEN(table)) {
            souk_warn("client in SOUK_CLIENTS_FILE has no scopes here; ignored", "{s:s}", "client",
                      name);
            continue;
        }
        if (secret == NULL || strlen(secret) < SECRET_MIN || strlen(secret) > SECRET_MAX) {
            souk_error("client secret must be 16 to 256 characters", "{s:s}", "client", name);
            continue;
        }
        if (souk_auth_placeholder_secret(secret)) { /* deploy/k8s/secrets.env as committed */
            souk_error("a client secret in SOUK_CLIENTS_FILE is a committed placeholder, not a "
                       "secret: make real ones with deploy/gen-secrets (deploy/README.md)",
                       "{s:s}", "client", name);
            json_decref(j);
            return SOUK_EINVAL;
        }
        crypto_generichash(secret_hash[i], sizeof(secret_hash[i]), (const unsigned char *)secret,
                           strlen(secret), NULL, 0);
        has_secret[i] = true;
        n++;
    }
    json_decref(j);
    souk_info("service clients loaded", "{s:i}", "clients", n);
    return 0;
}

const struct oauth_client *clients_find(const char *id)
{
    for (size_t i = 0; id != NULL && i < SOUK_ARRAY_LEN(table); i++)
        if (strcmp(table[i].id, id) == 0)
            return &table[i];
    return NULL;
}

bool clients_check_secret(const struct oauth_client *c, const char *secret)
{
    size_t i = (size_t)(c - table);
    if (i >= SOUK_ARRAY_LEN(table) || !has_secret[i] || secret == NULL ||
        strlen(secret) > SECRET_MAX)
        return false;
    unsigned char h[crypto_generichash_BYTES];
    crypto_generichash(h, sizeof(h), (const unsigned char *)secret, strlen(secret), NULL, 0);
    return sodium_memcmp(h, secret_hash[i], sizeof(h)) == 0;
}

/* main.c: the users service: accounts, credentials, the OAuth 2.0 token endpoint,
 * signing keys and their JWKS (DESIGN §4 Identity, §7). */
#include "souk/service.h"
#include "souk/auth.h"
#include "souk/grpc.h"
#include "souk/users/v1/users.pb-c.h"
#include "users.h"

int64_t cfg_access_ttl, cfg_refresh_ttl, cfg_key_rotate, cfg_hash_concurrency, cfg_hash_queue;
int64_t cfg_login_window, cfg_login_max_account, cfg_login_max_addr, cfg_login_delay_after,
    cfg_login_delay_max;
const char *cfg_clients_file, *cfg_public_url, *cfg_admin_email, *cfg_admin_password;

#define DAY            86400
#define TOKEN_BODY_MAX 8192 /* the OAuth endpoints take small forms only */

static const struct souk_conf config[] = {
    {"SOUK_ACCESS_TTL", SOUK_CONF_INT, "900", 5, DAY, &cfg_access_ttl, "access token seconds"},
    {"SOUK_REFRESH_TTL", SOUK_CONF_INT, "2592000", 60, 365 * DAY, &cfg_refresh_ttl,
     "refresh token seconds"},
    {"SOUK_KEY_ROTATE_SECONDS", SOUK_CONF_INT, "2592000", 60, 365 * DAY, &cfg_key_rotate,
     "age at which the signing key is replaced"},
    {"SOUK_HASH_CONCURRENCY", SOUK_CONF_INT, "2", 1, 64, &cfg_hash_concurrency,
     "argon2id hashes at once (worker threads)"},
    {"SOUK_HASH_QUEUE", SOUK_CONF_INT, "16", 1, 10000, &cfg_hash_queue,
     "logins (and sign-ups) waiting for a hash before 503"},
    {"SOUK_LOGIN_WINDOW", SOUK_CONF_INT, "900", 1, DAY, &cfg_login_window,
     "throttling window seconds"},
    {"SOUK_LOGIN_MAX_FAILURES", SOUK_CONF_INT, "5", 1, 1000, &cfg_login_max_account,
     "failed logins per account from one client address per window"},
    {"SOUK_LOGIN_MAX_FAILURES_ADDR", SOUK_CONF_INT, "50", 1, 1000000, &cfg_login_max_addr,
     "failed logins per client address per window"},
    {"SOUK_LOGIN_DELAY_AFTER", SOUK_CONF_INT, "10", 1, 1000000, &cfg_login_delay_after,
     "failed logins of an account (from anywhere) per window before each attempt is delayed"},
    {"SOUK_LOGIN_DELAY_MAX_MS", SOUK_CONF_INT, "10000", 0, 60000, &cfg_login_delay_max,
     "the longest such delay (1 s, doubling per failure)"},
    {"SOUK_CLIENTS_FILE", SOUK_CONF_STR, "", 0, 4096, &cfg_clients_file,
     "service client secrets (JSON)"},
    {"SOUK_PUBLIC_URL", SOUK_CONF_STR, "http://127.0.0.1:8080", 1, 1024, &cfg_public_url,
     "base URL in the discovery document"},
    {"SOUK_ADMIN_EMAIL", SOUK_CONF_STR, "admin@souk.local", 0, 320, &cfg_admin_email,
     "users seed: the admin account's email (empty: admin@souk.local)"},
    {"SOUK_ADMIN_PASSWORD", SOUK_CONF_SECRET, "", 0, 1024, &cfg_admin_password,
     "users seed: its password; empty: generated into $SOUK_VAR/admin-password"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const struct souk_route routes[] = {
    {"POST", "/api/v1/users", users_register, SOUK_PUBLIC, NULL, 0},
    {"GET", "/api/v1/users", users_admin_list, SOUK_ADMIN, NULL, 0},
    {"GET", "/api/v1/users/me", users_me_get, SOUK_USER, NULL, 0},
    {"PATCH", "/api/v1/users/me", users_me_patch, SOUK_USER, NULL, 0},
    {"GET", "/api/v1/users/me/addresses", addresses_list, SOUK_USER, NULL, 0},
    {"POST", "/api/v1/users/me/addresses", addresses_create, SOUK_USER, NULL, 0},
    {"DELETE", "/api/v1/users/me/addresses/{id}", addresses_delete, SOUK_USER, NULL, 0},
    {"PATCH", "/api/v1/users/{id}", users_admin_patch, SOUK_ADMIN, NULL, 0},
    {"POST", "/oauth/token", oauth_token, SOUK_PUBLIC, NULL, TOKEN_BODY_MAX},
    {"POST", "/oauth/revoke", oauth_revoke, SOUK_PUBLIC, NULL, TOKEN_BODY_MAX},
    {"GET", "/.well-known/jwks.json", oauth_jwks, SOUK_PUBLIC, NULL, 0},
    {"GET", "/.well-known/openid-configuration", oauth_discovery, SOUK_PUBLIC, NULL, 0},
    {"GET", "/internal/v1/users/{id}", users_internal_get, SOUK_SERVICE, "users:read", 0},
    {"GET", "/internal/v1/users/{id}/addresses/{address_id}", addresses_internal_get, SOUK_SERVICE,
     "users:read", 0},
    {NULL, NULL, NULL, 0, NULL, 0},
};

/* Every RPC is answered by the route it names (the kit's bridge, docs/grpc.md). */
static const struct souk_rpc_method rpcs[] = {
    SOUK_RPC_ROUTE("/souk.users.v1.Users/GetUser", "GET /internal/v1/users/{user_id}",
                   souk__users__v1__get_user_request, souk__users__v1__user),
    SOUK_RPC_ROUTE("/souk.users.v1.Users/GetAddress",
                   "GET /internal/v1/users/{user_id}/addresses/{address_id}",
                   souk__users__v1__get_address_request, souk__users__v1__address),
    {NULL, NULL, 0, NULL, NULL, NULL, 0, NULL},
};

static const struct souk_grpc_service grpc = {
    .listen = "127.0.0.1:9081",
    .methods = rpcs,
    .descriptors = souk_proto_descriptors,
    .descriptors_len = &souk_proto_descriptors_len,
};

static int start(void)
{
    int rc = password_init();
    if (rc == 0)
        rc = clients_load();
    if (rc == 0)
        rc = keys_init();
    return rc;
}

static void stop(void)
{
    password_stop();
    keys_free();
}

static const struct souk_service users = {
    .name = "users",
    .listen = "127.0.0.1:8081",
    .routes = routes,
    .migrations = service_migrations,
    .config = config,
    .start = start,
    .stop = stop,
    .seed = users_seed,
    .publishes = true,
    .grpc = &grpc,
};

int main(int argc, char **argv)
{
    souk_auth_set_local_jwks(keys_verify_jwks); /* verify our own tokens without HTTP */
    return souk_main(argc, argv, &users);
}

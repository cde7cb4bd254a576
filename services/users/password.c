/* password.c: password hashing with argon2id (libsodium) at OWASP's minimum
 * (19 MiB, t=2, p=1) and a semaphore so at most a few hashes run at once: each
 * takes 19 MiB and tens of milliseconds, so unbounded logins could exhaust memory. */
#include <errno.h>
#include <semaphore.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "souk/log.h"
#include "souk/souk.h"
#include "users.h"

#define HASH_OPSLIMIT     2ULL /* OWASP: t=2 with m=19 MiB */
#define HASH_MEMLIMIT     ((size_t)19 * 1024 * 1024)
#define SLOT_WAIT_SECONDS 5 /* then 503: better than queueing forever */

static sem_t slots;
static char dummy_hash[crypto_pwhash_STRBYTES];

static int take_slot(void)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += SLOT_WAIT_SECONDS;
    while (sem_timedwait(&slots, &deadline) != 0) {
        if (errno != EINTR)
            return SOUK_EBUSY;
    }
    return 0;
}

int password_init(void)
{
    if (sem_init(&slots, 0, (unsigned)cfg_hash_concurrency) != 0)
        return SOUK_EINVAL;
    char pw[32];
    randombytes_buf(pw, sizeof(pw) - 1);
    for (size_t i = 0; i < sizeof(pw) - 1; i++)
        pw[i] = (char)('a' + (unsigned char)pw[i] % 26);
    pw[sizeof(pw) - 1] = '\0';
    return password_hash(pw, dummy_hash);
}

int password_hash(const char *password, char *out)
{
    if (take_slot() != 0)
        return SOUK_EBUSY;
    int rc = crypto_pwhash_str_alg(out, password, strlen(password), HASH_OPSLIMIT, HASH_MEMLIMIT,
                                   crypto_pwhash_ALG_ARGON2ID13);
    sem_post(&slots);
    return rc == 0 ? 0 : SOUK_ENOMEM;
}

int password_verify(const char *hash, const char *password)
{
    if (take_slot() != 0)
        return SOUK_EBUSY;
    int rc = crypto_pwhash_str_verify(hash, password, strlen(password));
    sem_post(&slots);
    return rc == 0 ? 0 : SOUK_EAUTH;
}

void password_dummy_verify(const char *password) { (void)password_verify(dummy_hash, password); }

/* A few of the most common passwords of ten characters or more. */
static const char *const common[] = {
    "1234567890", "12345678910", "123456789012", "0123456789",       "qwertyuiop",
    "password12", "password123", "password1234", "passwordpassword", "iloveyou12",
    "abcdefghij", "1q2w3e4r5t",  "qwerty1234",   "qwerty12345",      "1111111111",
    "0000000000", "letmein123",  "welcome123",   "admin12345",       "changeme123",
    NULL,
};

const char *password_weakness(const char *password, const char *email)
{
    size_t n = strlen(password);
    if (n < PASSWORD_MIN)
        return "must be at least 10 characters";
    if (n > PASSWORD_MAX)
        return "must be at most 128 characters";
    size_t same = 0;
    for (size_t i = 1; i < n; i++)
        same += password[i] == password[0];
    if (same == n - 1)
        return "must not repeat one character";
    for (size_t i = 0; common[i] != NULL; i++)
        if (strcasecmp(password, common[i]) == 0)
            return "is too common";
    if (email != NULL && strcasecmp(password, email) == 0)
        return "must not be the email address";
    return NULL;
}

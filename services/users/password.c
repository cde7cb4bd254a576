/* password.c: password hashing with argon2id (libsodium) at OWASP's minimum
 * (19 MiB, t=2, p=1) on a few dedicated worker threads. A request that needs a
 * hash is suspended and queued, so a flood of sign-ups never parks an HTTP thread
 * (/healthz and /readyz always answer); when a queue is full the caller answers
 * 503 at once. Logins go before sign-ups, and a login may wait out a delay first
 * (the per-account backstop of oauth.c) without holding a worker. */
#include <pthread.h>
#include <sodium.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "souk/log.h"
#include "souk/metrics.h"
#include "souk/souk.h"
#include "users.h"

#define HASH_OPSLIMIT 2ULL /* OWASP: t=2 with m=19 MiB */
#define HASH_MEMLIMIT ((size_t)19 * 1024 * 1024)
#define WORKERS_MAX   64

/* One FIFO per kind of job, each bounded by SOUK_HASH_QUEUE. */
struct fifo {
    struct hash_job *head, *tail;
    int64_t n;
};

static struct fifo queues[HASH_KINDS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_t workers[WORKERS_MAX];
static size_t nworkers;
static bool stopping;
static char dummy_hash[crypto_pwhash_STRBYTES];
static struct souk_metric *m_refused;
static const char *const kind_names[HASH_KINDS] = {"login", "delayed_login", "signup"};

int password_hash_now(const char *password, char *out)
{
    int rc = crypto_pwhash_str_alg(out, password, strlen(password), HASH_OPSLIMIT, HASH_MEMLIMIT,
                                   crypto_pwhash_ALG_ARGON2ID13);
    return rc == 0 ? 0 : SOUK_ENOMEM;
}

int password_verify_now(const char *hash, const char *password)
{
    /* no such account: as slow as a real check, and never a match */
    bool none = hash == NULL || hash[0] == '\0';
    int rc = crypto_pwhash_str_verify(none ? dummy_hash : hash, password, strlen(password));
    return rc == 0 && !none ? 0 : SOUK_EAUTH;
}

/* The next job a worker may run now, or NULL with *wake_ms set to when a delayed
 * login comes due (0: none is waiting). Called with the lock held. */
static struct hash_job *take(int64_t now, int64_t *wake_ms)
{
    *wake_ms = 0;
    /* a delayed login that is due has waited longest: it goes first */
    struct fifo *d = &queues[HASH_DELAYED];
    for (struct hash_job **pp = &d->head, *prev = NULL; *pp != NULL;
         prev = *pp, pp = &(*pp)->next) {
        struct hash_job *j = *pp;
        if (j->not_before_ms <= now || stopping) {
            *pp = j->next;
            if (d->tail == j)
                d->tail = prev;
            d->n--;
            return j;
        }
        if (*wake_ms == 0 || j->not_before_ms < *wake_ms)
            *wake_ms = j->not_before_ms;
    }
    for (int k = HASH_LOGIN; k < HASH_KINDS; k++) {
        struct fifo *q = &queues[k];
        if (k == HASH_DELAYED || q->head == NULL)
            continue;
        struct hash_job *j = q->head;
        q->head = j->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->n--;
        return j;
    }
    return NULL;
}

static void *worker_main(void *arg)
{
    SOUK_UNUSED(arg);
    pthread_mutex_lock(&lock);
    for (;;) {
        int64_t wake_ms;
        struct hash_job *j = take(souk_wall_ms(), &wake_ms);
        if (j != NULL) {
            pthread_mutex_unlock(&lock);
            j->next = NULL;
            j->run(j); /* hashes, finishes the request and resumes it */
            pthread_mutex_lock(&lock);
            continue;
        }
        if (stopping)
            break;
        if (wake_ms == 0) {
            pthread_cond_wait(&cond, &lock);
        } else { /* the condition variable's clock is the wall clock, like wake_ms */
            struct timespec ts = {.tv_sec = wake_ms / 1000, .tv_nsec = (wake_ms % 1000) * 1000000L};
            pthread_cond_timedwait(&cond, &lock, &ts);
        }
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int password_init(void)
{
    char pw[32];
    randombytes_buf(pw, sizeof(pw) - 1);
    for (size_t i = 0; i < sizeof(pw) - 1; i++)
        pw[i] = (char)('a' + (unsigned char)pw[i] % 26);
    pw[sizeof(pw) - 1] = '\0';
    int rc = password_hash_now(pw, dummy_hash);
    if (rc != 0)
        return rc;
    m_refused =
        souk_metric_counter("souk_users_hash_queue_full_total",
                            "Requests answered 503 because the hashing queue was full.", "kind");
    nworkers =
        (size_t)cfg_hash_concurrency < WORKERS_MAX ? (size_t)cfg_hash_concurrency : WORKERS_MAX;
    for (size_t i = 0; i < nworkers; i++)
        if (pthread_create(&workers[i], NULL, worker_main, NULL) != 0) {
            nworkers = i;
            return SOUK_ENOMEM;
        }
    return 0;
}

void password_stop(void)
{
    pthread_mutex_lock(&lock);
    stopping = true; /* the workers finish what is queued (delays cut short), then end */
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    for (size_t i = 0; i < nworkers; i++)
        pthread_join(workers[i], NULL);
    nworkers = 0;
}

int password_submit(struct hash_job *job)
{
    enum hash_kind k = job->kind;
    if (k == HASH_LOGIN && job->not_before_ms > souk_wall_ms())
        k = HASH_DELAYED;
    struct fifo *q = &queues[k];
    job->next = NULL;
    pthread_mutex_lock(&lock);
    bool full = stopping || nworkers == 0 || q->n >= cfg_hash_queue;
    if (!full) {
        if (q->tail != NULL)
            q->tail->next = job;
        else
            q->head = job;
        q->tail = job;
        q->n++;
        /* every worker may be asleep until a later delay: wake them all */
        pthread_cond_broadcast(&cond);
    }
    pthread_mutex_unlock(&lock);
    if (full) {
        souk_metric_inc(m_refused, kind_names[k]);
        return SOUK_EBUSY;
    }
    return 0;
}

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

/* dl_int.h: libraries the kit loads with dlopen, only in the mode that uses them
 * (librabbitmq for SOUK_EVENTS=amqp://…, librdkafka for kafka://…, libpq for
 * PostgreSQL), so that a process in another mode maps none of them nor what they pull
 * in (OpenSSL, SASL, Kerberos: bench/profile-notes.md, "Memory"). Not a public contract. */
#ifndef SOUK_DL_INT_H
#define SOUK_DL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* One function a back-end calls: its name and the table slot its address goes to. A
 * back-end lists its calls once, as an X-macro, and gets both its table and this list:
 *   #define RMQ_CALLS(X) X(amqp_login) X(amqp_basic_publish) …
 *   static struct { RMQ_CALLS(SOUK__DL_SLOT) } rmq;
 *   #define RMQ_SYM(f) SOUK__DL_SYM(rmq, f)
 *   static const struct souk__dl_sym rmq_syms[] = {RMQ_CALLS(RMQ_SYM)};
 * and calls rmq.amqp_login(…): the slot has the header's exact type, so a call is
 * checked as a direct one would be, and the library is never named to the linker. */
struct souk__dl_sym {
    const char *name;
    void *slot; /* a function pointer of the function's own type */
};
#define SOUK__DL_SLOT(f)     __typeof__(f) *f;
#define SOUK__DL_SYM(tab, f) {#f, &(tab).f},

/* A library to load: its soname (the major version the headers are of), the Debian
 * package that ships it (for the message when it is missing), its table of calls, and
 * the first load's answer, which every later load returns. A back-end declares one:
 *   static struct souk__dl_lib rmq_lib =
 *       SOUK__DL_LIB("librabbitmq.so.4", "librabbitmq4", rmq_syms);
 */
struct souk__dl_lib {
    const char *soname;
    const char *package;
    const struct souk__dl_sym *syms;
    size_t nsyms;
    pthread_mutex_t lock; /* guards the rest */
    bool tried;
    int rc;
    char why[512];
};
#define SOUK__DL_LIB(soname, package, syms)                                                        \
    {                                                                                              \
        (soname), (package), (syms), sizeof(syms) / sizeof((syms)[0]), PTHREAD_MUTEX_INITIALIZER,  \
            false, 0, ""                                                                           \
    }

/* Open lib once and fill every slot of its table; the library then stays for the
 * process's life, and every later call, from any thread, returns the first call's
 * answer. 0; or SOUK_ENOTFOUND with why holding what failed (the library or the first
 * missing function, with dlerror()'s text), the slots then left as they were and
 * nothing kept open. The slots are written before the first answer is returned and
 * never again: a thread that got 0 may call through the table without a lock. */
int souk__dl_load(struct souk__dl_lib *lib, char *why, size_t whycap);

#endif

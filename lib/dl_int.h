/* dl_int.h: libraries the kit loads with dlopen, only in the mode that uses them
 * (librabbitmq for SOUK_EVENTS=amqp://…, librdkafka for kafka://…, libpq for
 * PostgreSQL), so that a process in another mode maps none of them nor what they pull
 * in (OpenSSL, SASL, Kerberos: bench/profile-notes.md, "Memory"). Not a public contract. */
#ifndef SOUK_DL_INT_H
#define SOUK_DL_INT_H

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

/* A library to load: its soname (the major version the headers are of) and the Debian
 * package that ships it, for the message when it is missing. */
struct souk__dl_lib {
    const char *soname;
    const char *package;
};

/* Open lib and fill every slot of syms[0..n); the library then stays for the process's
 * life. 0; or SOUK_ENOTFOUND with why holding what failed (the library or the first
 * missing function, with dlerror()'s text), the slots then left as they were and
 * nothing kept open. A back-end calls it once, at start, before its threads use the
 * table (dlerror is per thread, the slots are not guarded). */
int souk__dl_load(const struct souk__dl_lib *lib, const struct souk__dl_sym *syms, size_t n,
                  char *why, size_t whycap);

#endif

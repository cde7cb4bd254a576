/* dl.c: load a back-end's library with dlopen and fill its table of functions
 * (dl_int.h). A back-end whose mode is not chosen never loads its library, so the
 * process maps neither it nor its dependencies. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dl_int.h"
#include "souk/souk.h"

static int load(const struct souk__dl_lib *lib, char *why, size_t whycap)
{
    const struct souk__dl_sym *syms = lib->syms;
    size_t n = lib->nsyms;
    int rc = SOUK_ENOTFOUND;
    void **addr = NULL;
    /* RTLD_NOW: an incomplete library fails here, at start, not at its first call;
     * RTLD_LOCAL: its symbols stay out of the way of the other back-ends' */
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *e = dlerror();
        snprintf(why, whycap, "cannot load %s (Debian package %s): %s", lib->soname, lib->package,
                 e != NULL ? e : "not found");
        goto out;
    }
    addr = souk_xcalloc(n > 0 ? n : 1, sizeof(*addr));
    for (size_t i = 0; i < n; i++) {
        dlerror();
        addr[i] = dlsym(h, syms[i].name);
        if (addr[i] == NULL) {
            const char *e = dlerror();
            snprintf(why, whycap, "%s (Debian package %s) has no %s: %s", lib->soname, lib->package,
                     syms[i].name, e != NULL ? e : "a null address");
            goto out;
        }
    }
    /* every function is there: only now fill the table (a function pointer's bytes,
     * as POSIX has dlsym return them) and keep the library for the process's life */
    for (size_t i = 0; i < n; i++)
        memcpy(syms[i].slot, &addr[i], sizeof(addr[i]));
    h = NULL;
    rc = 0;
out:
    if (h != NULL)
        dlclose(h);
    free(addr);
    return rc;
}

int souk__dl_load(struct souk__dl_lib *lib, char *why, size_t whycap)
{
    /* dlerror's text is per thread and the slots are shared: one loader at a time,
     * and the first answer kept (a library that failed stays failed: the process
     * refuses its configuration and stops) */
    pthread_mutex_lock(&lib->lock);
    if (!lib->tried) {
        lib->rc = load(lib, lib->why, sizeof(lib->why));
        lib->tried = true;
    }
    int rc = lib->rc;
    if (rc != 0)
        snprintf(why, whycap, "%s", lib->why);
    pthread_mutex_unlock(&lib->lock);
    return rc;
}

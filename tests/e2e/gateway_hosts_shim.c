/* gateway_hosts_shim.c: preloaded (LD_PRELOAD) into a gateway by test_gateway_names.py,
 * built there with cc. Names ending in ".test" resolve to the addresses the file
 * SOUK_TEST_HOSTS lists for them ("name addr addr ..." lines), read at every lookup, so
 * a test can move a name as a cluster's DNS would; every other lookup is libc's. */
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    const char *path = getenv("SOUK_TEST_HOSTS");
    size_t n = node != NULL ? strlen(node) : 0;
    if (path == NULL || n < 5 || strcmp(node + n - 5, ".test") != 0 ||
        (hints != NULL && (hints->ai_flags & AI_NUMERICHOST)))
        return real(node, service, hints, res);
    struct addrinfo h = {.ai_family = hints ? hints->ai_family : AF_UNSPEC,
                         .ai_socktype = hints ? hints->ai_socktype : 0,
                         .ai_flags = AI_NUMERICHOST | (hints ? hints->ai_flags & AI_NUMERICSERV : 0)};
    struct addrinfo *first = NULL, **tail = &first;
    char line[512];
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        char *save = NULL, *name = strtok_r(line, " \t\n", &save);
        if (name == NULL || strcmp(name, node) != 0)
            continue;
        for (char *a = strtok_r(NULL, " \t\n", &save); a != NULL; a = strtok_r(NULL, " \t\n", &save))
            if (real(a, service, &h, tail) == 0)
                while (*tail != NULL)
                    tail = &(*tail)->ai_next;
    }
    if (f != NULL)
        fclose(f);
    *res = first;
    return first != NULL ? 0 : EAI_NONAME;
}

/* oauth_form.c: libFuzzer driver for the token endpoint's form-body parser
 * (services/users/form.c, linked alone: oauth_form_parse and oauth_form_decode).
 * An accepted body is an object of at most FORM_PARAMS_MAX strings within
 * FORM_PARAM_MAX bytes each; a refused one names why. */
#include <stdlib.h>
#include <string.h>

#include "souk/arena.h"
#include "users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    struct souk_arena a;
    souk_arena_init(&a);
    const char *why = NULL;
    json_t *form = oauth_form_parse(&a, (const char *)data, n, &why);
    if (form != NULL) {
        const char *k;
        json_t *v;
        if (json_object_size(form) > FORM_PARAMS_MAX)
            abort();
        json_object_foreach(form, k, v) if (!json_is_string(v) ||
                                            json_string_length(v) > FORM_PARAM_MAX) abort();
        json_decref(form);
    } else if (why == NULL || why[0] == '\0') {
        abort();
    }
    char *plain = oauth_form_decode(&a, (const char *)data, n);
    if (plain != NULL && strlen(plain) > n) /* decoding never grows the text */
        abort();
    souk_arena_free(&a);
    return 0;
}

/* json.c: libFuzzer driver for request bodies: parse as the server does, then run
 * the checked extraction a handler would (strings, ints, nested arrays). */
#include <stdlib.h>
#include <string.h>

#include "souk/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    json_t *v = json_loadb((const char *)data, n, JSON_REJECT_DUPLICATES, NULL);
    if (v == NULL)
        return 0;
    struct souk_check c;
    souk_check_init(&c);
    static const char *const allowed[] = {"name", "items", "quantity", NULL};
    souk_json_only(&c, v, allowed);
    souk_json_str(&c, v, "name", SOUK_REQUIRED, 1, 100);
    souk_json_int(&c, v, "quantity", SOUK_OPTIONAL, 1, 99, 1);
    souk_json_bool(&c, v, "flag", SOUK_OPTIONAL, false);
    json_t *items = souk_json_array(&c, v, "items", SOUK_OPTIONAL, 50);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        souk_json_str(&c, it, "product_id", SOUK_REQUIRED, 1, 48);
        souk_json_object(&c, it, "attributes", SOUK_OPTIONAL);
    }
    if (!souk_check_ok(&c) && json_array_size(c.errors) == 0)
        abort(); /* a failed check always names at least one field */
    free(souk_json_dump(v, NULL));
    souk_check_free(&c);
    json_decref(v);
    return 0;
}

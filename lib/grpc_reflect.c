/* grpc_reflect.c: server reflection (grpc.reflection.v1alpha) from the descriptor
 * sets protoc-c writes at build time (--descriptor_set_out, embedded by
 * scripts/embed-bytes): no descriptor is written by hand. At start the sets are
 * indexed by file name and by every symbol they define (messages, enums, services,
 * methods, nested ones too); a request names a file or a symbol and gets the
 * serialized FileDescriptorProto of that file and of everything it imports. */
#include <grpc/status.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "descriptor_view.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "grpc_int.h"
#include "souk/log.h"
#include "souk/souk.h"

#define NAME_CAP 512 /* a fully qualified name */

struct file {
    const char *name;
    const ProtobufCBinaryData *bytes; /* inside its set */
    Souk__Kit__V1__FileView *view;
};

struct symbol {
    char *name;
    size_t file;
};

static Souk__Kit__V1__FileSetView *sets[2];
static struct file *files;
static size_t nfiles;
static struct symbol *symbols;
static size_t nsymbols, symcap;
static const char *const *services;
static size_t nservices;

void souk__grpc_set_services(const char *const *names, size_t n)
{
    services = names;
    nservices = n;
}

static void add_symbol(const char *scope, const char *name, size_t file)
{
    if (nsymbols == symcap) {
        symcap = symcap ? symcap * 2 : 64;
        symbols = souk_xrealloc(symbols, symcap * sizeof(*symbols));
    }
    char full[NAME_CAP];
    snprintf(full, sizeof(full), "%s%s%s", scope, scope[0] ? "." : "", name);
    symbols[nsymbols].name = souk_xstrdup(full);
    symbols[nsymbols].file = file;
    nsymbols++;
}

static void add_message(const char *scope, const Souk__Kit__V1__MessageView *m, size_t file)
{
    char full[NAME_CAP];
    snprintf(full, sizeof(full), "%s%s%s", scope, scope[0] ? "." : "", m->name);
    add_symbol(scope, m->name, file);
    for (size_t i = 0; i < m->n_nested_type; i++)
        add_message(full, m->nested_type[i], file);
    for (size_t i = 0; i < m->n_enum_type; i++)
        add_symbol(full, m->enum_type[i]->name, file);
}

static ssize_t file_index(const char *name)
{
    for (size_t i = 0; i < nfiles; i++)
        if (strcmp(files[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

static int index_set(size_t which, const unsigned char *set, size_t len)
{
    sets[which] = souk__kit__v1__file_set_view__unpack(NULL, len, set);
    if (sets[which] == NULL)
        return SOUK_EINVAL;
    Souk__Kit__V1__FileSetView *s = sets[which];
    files = souk_xrealloc(files, (nfiles + s->n_file) * sizeof(*files));
    for (size_t i = 0; i < s->n_file; i++) {
        Souk__Kit__V1__FileView *v =
            souk__kit__v1__file_view__unpack(NULL, s->file[i].len, s->file[i].data);
        if (v == NULL)
            return SOUK_EINVAL;
        if (file_index(v->name) >= 0) { /* both sets carry it: the first one wins */
            souk__kit__v1__file_view__free_unpacked(v, NULL);
            continue;
        }
        size_t f = nfiles++;
        files[f] = (struct file){v->name, &s->file[i], v};
        for (size_t k = 0; k < v->n_message_type; k++)
            add_message(v->package, v->message_type[k], f);
        for (size_t k = 0; k < v->n_enum_type; k++)
            add_symbol(v->package, v->enum_type[k]->name, f);
        for (size_t k = 0; k < v->n_service; k++) {
            const Souk__Kit__V1__ServiceView *sv = v->service[k];
            char full[NAME_CAP];
            snprintf(full, sizeof(full), "%s%s%s", v->package, v->package[0] ? "." : "", sv->name);
            add_symbol(v->package, sv->name, f);
            for (size_t m = 0; m < sv->n_method; m++)
                add_symbol(full, sv->method[m]->name, f);
        }
    }
    return 0;
}

int souk__grpc_reflect_init(const unsigned char *set, size_t len)
{
    int rc = index_set(0, souk__grpc_kit_descriptors, souk__grpc_kit_descriptors_len);
    if (rc == 0 && set != NULL && len > 0)
        rc = index_set(1, set, len);
    if (rc != 0)
        souk_error("the descriptor set cannot be read: reflection needs protoc-c's "
                   "--descriptor_set_out",
                   NULL);
    return rc;
}

void souk__grpc_reflect_free(void)
{
    for (size_t i = 0; i < nfiles; i++)
        souk__kit__v1__file_view__free_unpacked(files[i].view, NULL);
    for (size_t i = 0; i < nsymbols; i++)
        free(symbols[i].name);
    for (size_t i = 0; i < SOUK_ARRAY_LEN(sets); i++) {
        if (sets[i] != NULL)
            souk__kit__v1__file_set_view__free_unpacked(sets[i], NULL);
        sets[i] = NULL;
    }
    free(files);
    free(symbols);
    files = NULL;
    symbols = NULL;
    nfiles = nsymbols = symcap = 0;
}

/* The file and, depth first, everything it imports, each once, into out. */
static void with_imports(size_t f, bool *seen, ProtobufCBinaryData *out, size_t *n)
{
    if (seen[f])
        return;
    seen[f] = true;
    out[(*n)++] = *files[f].bytes;
    for (size_t i = 0; i < files[f].view->n_dependency; i++) {
        ssize_t d = file_index(files[f].view->dependency[i]);
        if (d >= 0)
            with_imports((size_t)d, seen, out, n);
    }
}

int souk__grpc_reflect_answer(const unsigned char *req, size_t len, unsigned char **out,
                              size_t *outlen)
{
    if (souk_pb_check(&grpc__reflection__v1alpha__server_reflection_request__descriptor, req, len,
                      NULL, 0) != 0)
        return SOUK_EINVAL;
    Grpc__Reflection__V1alpha__ServerReflectionRequest *r =
        grpc__reflection__v1alpha__server_reflection_request__unpack(NULL, len, req);
    if (r == NULL)
        return SOUK_EINVAL;
    Grpc__Reflection__V1alpha__ServerReflectionResponse resp =
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__FileDescriptorResponse fd =
        GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ListServiceResponse ls =
        GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ExtensionNumberResponse en =
        GRPC__REFLECTION__V1ALPHA__EXTENSION_NUMBER_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ErrorResponse er = GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ServiceResponse *svc = NULL, **svcp = NULL;
    bool *seen = souk_xcalloc(nfiles + 1, sizeof(*seen));
    ProtobufCBinaryData *blobs = souk_xcalloc(nfiles + 1, sizeof(*blobs));
    ssize_t f = -1;
    char msg[NAME_CAP + 32];
    resp.valid_host = r->host;
    resp.original_request = r;
    switch (r->message_request_case) {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        f = file_index(r->file_by_filename);
        snprintf(msg, sizeof(msg), "no file %.*s", NAME_CAP, r->file_by_filename);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE: {
        const char *sym =
            r->message_request_case ==
                    GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL
                ? r->file_containing_symbol
                : r->all_extension_numbers_of_type;
        for (size_t i = 0; i < nsymbols && f < 0; i++)
            if (strcmp(symbols[i].name, sym) == 0)
                f = (ssize_t)symbols[i].file;
        snprintf(msg, sizeof(msg), "no symbol %.*s", NAME_CAP, sym);
        break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        svc = souk_xcalloc(nservices + 1, sizeof(*svc));
        svcp = souk_xcalloc(nservices + 1, sizeof(*svcp));
        for (size_t i = 0; i < nservices; i++) {
            grpc__reflection__v1alpha__service_response__init(&svc[i]);
            svc[i].name = (char *)services[i];
            svcp[i] = &svc[i];
        }
        ls.n_service = nservices;
        ls.service = svcp;
        resp.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        resp.list_services_response = &ls;
        break;
    default: /* extensions: our contracts define none */
        snprintf(msg, sizeof(msg), "no such extension");
        break;
    }
    if (resp.message_response_case ==
        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE__NOT_SET) {
        if (f >= 0 &&
            r->message_request_case ==
                GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE) {
            en.base_type_name = r->all_extension_numbers_of_type;
            resp.message_response_case =
                GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
            resp.all_extension_numbers_response = &en;
        } else if (f >= 0) {
            with_imports((size_t)f, seen, blobs, &fd.n_file_descriptor_proto);
            fd.file_descriptor_proto = blobs;
            resp.message_response_case =
                GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
            resp.file_descriptor_response = &fd;
        } else {
            er.error_code = GRPC_STATUS_NOT_FOUND;
            er.error_message = msg;
            resp.message_response_case =
                GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
            resp.error_response = &er;
        }
    }
    *outlen = protobuf_c_message_get_packed_size(&resp.base);
    *out = souk_xmalloc(*outlen ? *outlen : 1);
    protobuf_c_message_pack(&resp.base, *out);
    free(svc);
    free(svcp);
    free(seen);
    free(blobs);
    grpc__reflection__v1alpha__server_reflection_request__free_unpacked(r, NULL);
    return 0;
}

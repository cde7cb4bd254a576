/* problem.c: RFC 9457 problem documents and the HTTP status titles they carry
 * (problem.h). Pure: building an answer from a document is the server's part. */
#include <stdio.h>

#include "souk/problem.h"

const char *souk_status_title(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    }
    return status < 500 ? "Client Error" : "Server Error";
}

json_t *souk_problem_json(int status, const char *code, const char *detail)
{
    char type[128];
    snprintf(type, sizeof(type), "urn:souk:problem:%s", code);
    json_t *p = json_pack("{s:s,s:s,s:i,s:s}", "type", type, "title", souk_status_title(status),
                          "status", status, "code", code);
    if (detail != NULL && *detail != '\0') {
        json_t *d = json_string(detail);
        json_object_set_new(p, "detail", d ? d : json_string("(detail was not UTF-8)"));
    }
    return p;
}

json_t *souk_problem_vjson(int status, const char *code, json_t *extra, const char *fmt, va_list ap)
{
    char detail[512];
    vsnprintf(detail, sizeof(detail), fmt, ap);
    json_t *p = souk_problem_json(status, code, detail);
    if (json_is_object(extra))
        json_object_update_missing(p, extra);
    json_decref(extra);
    return p;
}

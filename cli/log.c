/* log.c: the supervisor's lines, in one of two forms with the same text: for a person
 * ("souk: catalog port 8082 pid 123"; info on stdout, warnings and errors on stderr),
 * or one ECS JSON object per line on stderr through the kit's logger (lib/log.c), the
 * fields the services' lines have plus process.pid. var/log/souk.log always gets ECS. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static enum log_format format = LOG_TEXT;

void log_set_format(enum log_format f)
{
    format = f;
    souk_log_init("souk", SOUK_LOG_INFO); /* the supervisor's lines are few: all of them */
}

enum log_format log_get_format(void) { return format; }

void say(enum souk_log_level level, const char *msg, const char *fields, ...)
{
    json_error_t err;
    json_t *extra = NULL;
    va_list ap;

    if (fields) { /* packed in text too: "o" arguments are the pack's to release */
        va_start(ap, fields);
        extra = json_vpack_ex(&err, 0, fields, ap);
        va_end(ap);
    }
    if (format == LOG_TEXT) {
        fprintf(level >= SOUK_LOG_WARN ? stderr : stdout, "souk: %s\n", msg);
        json_decref(extra);
        return;
    }
    if (!json_is_object(extra)) {
        json_decref(extra);
        extra = json_object();
        if (fields) /* lost fields are said, as the kit's logger does (souk.fields_error) */
            json_object_set_new(extra, "fields_error", json_string(err.text));
    }
    /* which supervisor: a restarted one appends to the same file */
    json_object_set_new(extra, "process.pid", json_integer(getpid()));
    souk_log(level, msg, "O", extra);
    json_decref(extra);
}

void sayf(enum souk_log_level level, const char *f, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, f);
    vsnprintf(msg, sizeof msg, f, ap); /* a longer one is cut: still one line */
    va_end(ap);
    say(level, msg, NULL);
}

/* notify.h: what the notify service's files share: the event handlers, the
 * templates, the mailer and the notification routes. */
#ifndef NOTIFY_H
#define NOTIFY_H

#include <jansson.h>
#include <stdint.h>

#include "souk/events.h"
#include "souk/server.h"

#define NOTIFY_TEXT_MAX 8192 /* a rendered subject or body never grows past this */

/* Configuration (main.c). */
extern const char *notify_smtp_url; /* "" : write files under notify_mail_dir */
extern const char *notify_smtp_user, *notify_smtp_password, *notify_smtp_password_file;
extern const char *notify_smtp_starttls; /* "off", "try" or "require" */
extern const char *notify_mail_dir;
extern const char *notify_mail_from;
extern int64_t notify_mail_attempts, notify_mail_retry_ms;

/* events.c: one handler for every consumed type. */
int notify_on_event(struct souk_db *db, const struct souk_event *ev);

/* templates.c: render the subject and body for an event type from data (and the
 * user's name and email in user). Returns 0, or SOUK_ENOTFOUND for a type without
 * a template. Outputs are malloc'd. */
int notify_render(const char *type, json_t *data, json_t *user, char **subject, char **body);
/* Substitute {{field}} and {{field|money}} from data, then user (tested directly). */
char *notify_template_apply(const char *tpl, json_t *data, json_t *user);

/* mailer.c */
int notify_mailer_start(void);
void notify_mailer_stop(void);
void notify_mailer_nudge(void);

/* notifications.c */
int notifications_list(struct souk_req *r);
int notifications_read(struct souk_req *r);

#endif

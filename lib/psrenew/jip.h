/* psrenew: the JIP client ("Správa dat", the guide's §5 and §6). The portal
 * is a web application, not an API: the client drives its forms through
 * libcurl, reads its pages with libxml2's HTML parser and XPath, and takes
 * every URL, form, field and label from a profile (JSON), so that a change
 * of the portal is a profile edit, not a release. */
#ifndef PSRENEW_JIP_H
#define PSRENEW_JIP_H

#include <stddef.h>

#include <jansson.h>

#include <psrenew/err.h>
#include <psrenew/http.h>
#include <psrenew/export.h>

struct ps_jip;

struct ps_jip_entry {
	char *type; /* "qualified" or "commercial" (from the profile's
		     * labels), or the portal's own text when unknown */
	char *ca;
	char *serial; /* normalised as the profile says */
};

/* Loads a profile; "${JIP_URL}" in base_url is replaced by base_url when
 * given (a test portal's address), else taken as it is. Exit 2 when the
 * profile is unreadable or lacks a key (naming it and the file). */
PS_API int ps_jip_open(const char *profile_path, const char *base_url,
		       const struct ps_http_opts *http, struct ps_jip **out,
		       struct ps_err *err);
PS_API void ps_jip_close(struct ps_jip *j);

/*
 * Logs in: method "password" (name + password), "cert" (TLS client
 * certificate, set in the http options, + name + password) or "otp" (name +
 * password + one-time code). "nia" is refused with what to do instead.
 * Wrong password, locked account: exit 5. Portal down: exit 4.
 */
PS_API int ps_jip_login(struct ps_jip *j, const char *method, const char *user,
			const char *password, const char *otp,
			struct ps_err *err);

/* The certificates registered for user (NULL: the one logged in). */
PS_API int ps_jip_list(struct ps_jip *j, const char *user,
		       struct ps_jip_entry **out, size_t *n,
		       struct ps_err *err);
PS_API void ps_jip_entries_free(struct ps_jip_entry *e, size_t n);

/*
 * Registers a serial (upper-case hex, as serial_hex) of a certificate type
 * ("qualified" / "commercial") and CA for user (NULL: oneself), then reads
 * the list back. *already is set when it was there before (success, no
 * duplicate). A session that expired is renewed once.
 */
PS_API int ps_jip_set_serial(struct ps_jip *j, const char *user,
			     const char *type, const char *ca,
			     const char *serial_hex, int *already,
			     struct ps_err *err);

/* The serial in the portal's format (profile serial_format). */
char *ps_jip_format_serial(const struct ps_jip *j, const char *serial_hex);

#endif

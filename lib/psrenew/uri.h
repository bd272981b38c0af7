/* psrenew: RFC 7512 "pkcs11:" URIs. */
#ifndef PSRENEW_URI_H
#define PSRENEW_URI_H

#include <stddef.h>

#include <psrenew/err.h>
#include <psrenew/export.h>

enum ps_obj_type {
	PS_OBJ_ANY = 0,
	PS_OBJ_CERT,
	PS_OBJ_PRIVATE,
	PS_OBJ_PUBLIC,
	PS_OBJ_SECRET,
	PS_OBJ_DATA
};

/* A parsed URI; NULL / 0 fields were not given. Strings are decoded. */
struct ps_uri {
	char *token, *manufacturer, *serial, *model;
	char *lib_manufacturer, *lib_description, *lib_version;
	char *slot_description, *slot_manufacturer;
	long slot_id; /* -1: not given */
	char *object;
	unsigned char *id;
	size_t id_len;
	int has_id;
	int type; /* enum ps_obj_type */
	char *module_path, *module_name, *pin_source;
};

/* Parses s into u (which need not be initialised). On error returns
 * PS_EXIT_USAGE with err set, and u is left empty. A "pin-value" attribute
 * is refused: a PIN in a URI ends up in argv. */
PS_API int ps_uri_parse(const char *s, struct ps_uri *u, struct ps_err *err);
PS_API void ps_uri_init(struct ps_uri *u);
PS_API void ps_uri_free(struct ps_uri *u);

/* Does the URI select anything about the token (not just objects)? */
int ps_uri_has_token_attrs(const struct ps_uri *u);

/* Percent-encodes s as an RFC 7512 attribute value and appends it. */
int ps_uri_append(char **buf, size_t *len, const char *name,
		  const unsigned char *value, size_t vlen, int all_hex);

/* Formats a token URI / an object URI (malloc'ed, NULL on ENOMEM). The
 * token strings are the trimmed CK_TOKEN_INFO fields. */
char *ps_uri_format_token(const char *model, const char *manufacturer,
			  const char *serial, const char *label);
char *ps_uri_format_object(const char *token_uri, const unsigned char *id,
			   size_t id_len, const char *label, int type);

const char *ps_obj_type_name(int type);

#endif

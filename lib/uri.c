/* psrenew: RFC 7512 "pkcs11:" URI parsing and formatting. */
#include <psrenew/uri.h>
#include <psrenew/codec.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URI_MAX 4096

static const char *const type_names[] = {
	[PS_OBJ_ANY] = "",
	[PS_OBJ_CERT] = "cert",
	[PS_OBJ_PRIVATE] = "private",
	[PS_OBJ_PUBLIC] = "public",
	[PS_OBJ_SECRET] = "secret-key",
	[PS_OBJ_DATA] = "data",
};

const char *ps_obj_type_name(int type)
{
	if (type < 0 || type > PS_OBJ_DATA)
		return "";
	return type_names[type];
}

void ps_uri_init(struct ps_uri *u)
{
	memset(u, 0, sizeof(*u));
	u->slot_id = -1;
}

void ps_uri_free(struct ps_uri *u)
{
	char **s[] = {
		&u->token,	 &u->manufacturer,     &u->serial,
		&u->model,	 &u->lib_manufacturer, &u->lib_description,
		&u->lib_version, &u->slot_description, &u->slot_manufacturer,
		&u->object,	 &u->module_path,      &u->module_name,
		&u->pin_source
	};

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		free(*s[i]);
	free(u->id);
	ps_uri_init(u);
}

int ps_uri_has_token_attrs(const struct ps_uri *u)
{
	return u->token || u->manufacturer || u->serial || u->model ||
	       u->slot_description || u->slot_manufacturer || u->slot_id >= 0;
}

/* Decodes n bytes of s into a new buffer (NUL-terminated); -1 on a bad
 * escape. */
static int pct_decode(const char *s, size_t n, unsigned char **out,
		      size_t *outlen)
{
	unsigned char *d = malloc(n + 1);
	size_t j = 0;

	if (!d)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= n) {
				free(d);
				return -1;
			}
			hi = ps_hex_digit((unsigned char)s[i + 1]);
			lo = ps_hex_digit((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0) {
				free(d);
				return -1;
			}
			d[j++] = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else {
			d[j++] = (unsigned char)s[i];
		}
	}
	d[j] = '\0';
	*out = d;
	*outlen = j;
	return 0;
}

static int parse_type(const char *v)
{
	for (int t = PS_OBJ_CERT; t <= PS_OBJ_DATA; t++)
		if (strcmp(v, type_names[t]) == 0)
			return t;
	return -1;
}

static char **string_slot(struct ps_uri *u, const char *name, int query)
{
	static const struct {
		const char *name;
		size_t off;
		int query;
	} map[] = {
		{ "token", offsetof(struct ps_uri, token), 0 },
		{ "manufacturer", offsetof(struct ps_uri, manufacturer), 0 },
		{ "serial", offsetof(struct ps_uri, serial), 0 },
		{ "model", offsetof(struct ps_uri, model), 0 },
		{ "library-manufacturer",
		  offsetof(struct ps_uri, lib_manufacturer), 0 },
		{ "library-description",
		  offsetof(struct ps_uri, lib_description), 0 },
		{ "library-version", offsetof(struct ps_uri, lib_version), 0 },
		{ "slot-description", offsetof(struct ps_uri, slot_description),
		  0 },
		{ "slot-manufacturer",
		  offsetof(struct ps_uri, slot_manufacturer), 0 },
		{ "object", offsetof(struct ps_uri, object), 0 },
		{ "module-path", offsetof(struct ps_uri, module_path), 1 },
		{ "module-name", offsetof(struct ps_uri, module_name), 1 },
		{ "pin-source", offsetof(struct ps_uri, pin_source), 1 },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].query == query && strcmp(map[i].name, name) == 0)
			return (char **)((char *)u + map[i].off);
	return NULL;
}

static int bad(struct ps_err *err, const char *uri, const char *what)
{
	if (strstr(uri, "pin-value"))
		uri = "(withheld: it holds a PIN)";
	return ps_err_set(err, PS_EXIT_USAGE, "bad-uri",
			  "a token URI looks like pkcs11:token=NAME or "
			  "pkcs11:serial=NUMBER; ps-status lists them",
			  "invalid PKCS#11 URI '%.200s': %s", uri, what);
}

/* One "name=value" attribute of length n. */
static int parse_attr(struct ps_uri *u, const char *a, size_t n, int query,
		      const char *uri, struct ps_err *err)
{
	const char *eq = memchr(a, '=', n);
	char name[32];
	unsigned char *val;
	size_t nlen, vlen;
	char **slot;

	if (!eq)
		return bad(err, uri, "attribute without '='");
	nlen = (size_t)(eq - a);
	if (nlen == 0 || nlen >= sizeof(name))
		return bad(err, uri, "unknown attribute");
	memcpy(name, a, nlen);
	name[nlen] = '\0';
	if (pct_decode(eq + 1, n - nlen - 1, &val, &vlen) < 0)
		return bad(err, uri, "bad %-escape");
	if (strcmp(name, "pin-value") == 0) {
		free(val);
		return ps_err_set(err, PS_EXIT_USAGE, "pin-in-argv",
				  "use --pin file:PATH, env:VAR or fd:N",
				  "a PIN in a URI (pin-value) is refused: "
				  "it would be visible to every user in the "
				  "process list");
	}
	if (strncmp(name, "x-", 2) == 0) { /* vendor attribute: ignored */
		free(val);
		return 0;
	}
	if (!query && strcmp(name, "id") == 0) {
		if (u->has_id)
			goto dup;
		u->id = val;
		u->id_len = vlen;
		u->has_id = 1;
		return 0;
	}
	if (strcmp(name, "id") != 0 && memchr(val, '\0', vlen)) {
		free(val);
		return bad(err, uri, "NUL byte in a text attribute");
	}
	if (!query && strcmp(name, "type") == 0) {
		int t = parse_type((char *)val);

		free(val);
		if (t < 0)
			return bad(err, uri,
				   "type must be cert, private, public, "
				   "secret-key or data");
		if (u->type)
			return bad(err, uri, "duplicate attribute 'type'");
		u->type = t;
		return 0;
	}
	if (!query && strcmp(name, "slot-id") == 0) {
		char *end;
		long v;

		errno = 0;
		v = strtol((char *)val, &end, 10);
		if (errno || *end || end == (char *)val || v < 0) {
			free(val);
			return bad(err, uri, "slot-id must be a number");
		}
		free(val);
		if (u->slot_id >= 0)
			return bad(err, uri, "duplicate attribute 'slot-id'");
		u->slot_id = v;
		return 0;
	}
	slot = string_slot(u, name, query);
	if (!slot) {
		free(val);
		return bad(err, uri, "unknown attribute");
	}
	if (*slot)
		goto dup;
	if (memchr(val, '\0', vlen)) {
		free(val);
		return bad(err, uri, "NUL byte in a text attribute");
	}
	*slot = (char *)val;
	return 0;
dup:
	free(val);
	return bad(err, uri, "duplicate attribute");
}

static int parse_list(struct ps_uri *u, const char *s, size_t n, char sep,
		      int query, const char *uri, struct ps_err *err)
{
	size_t start = 0;

	while (start < n) {
		const char *p = memchr(s + start, sep, n - start);
		size_t end = p ? (size_t)(p - s) : n;
		int rc;

		if (end > start) {
			rc = parse_attr(u, s + start, end - start, query, uri,
					err);
			if (rc)
				return rc;
		}
		start = end + 1;
	}
	return 0;
}

int ps_uri_parse(const char *s, struct ps_uri *u, struct ps_err *err)
{
	const char *path, *q;
	size_t len;
	int rc;

	ps_uri_init(u);
	if (!s)
		return bad(err, "", "empty");
	len = strlen(s);
	if (len > URI_MAX)
		return bad(err, "(too long)", "longer than 4096 bytes");
	if (strncasecmp(s, "pkcs11:", 7) != 0)
		return bad(err, s, "it must start with 'pkcs11:'");
	path = s + 7;
	q = strchr(path, '?');
	rc = parse_list(u, path, q ? (size_t)(q - path) : strlen(path), ';', 0,
			s, err);
	if (!rc && q)
		rc = parse_list(u, q + 1, strlen(q + 1), '&', 1, s, err);
	if (rc)
		ps_uri_free(u);
	return rc;
}

static int unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("-._~:[]@!$'()*+,=&", c));
}

int ps_uri_append(char **buf, size_t *len, const char *name,
		  const unsigned char *value, size_t vlen, int all_hex)
{
	size_t need = *len + strlen(name) + 2 + vlen * 3 + 1;
	char *b = realloc(*buf, need);
	size_t n = *len;
	static const char hex[] = "0123456789ABCDEF";

	if (!b)
		return -1;
	/* A separator after every attribute but right after the scheme. */
	if (n > 0 && !(n == 7 && memcmp(b, "pkcs11:", 7) == 0))
		b[n++] = ';';
	n += (size_t)snprintf(b + n, need - n, "%s=", name);
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = value[i];

		if (!all_hex && unreserved(c) && c != '&') {
			b[n++] = (char)c;
		} else {
			b[n++] = '%';
			b[n++] = hex[c >> 4];
			b[n++] = hex[c & 15];
		}
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

static int append_str(char **buf, size_t *len, const char *name, const char *v)
{
	if (!v || !*v)
		return 0;
	return ps_uri_append(buf, len, name, (const unsigned char *)v,
			     strlen(v), 0);
}

char *ps_uri_format_token(const char *model, const char *manufacturer,
			  const char *serial, const char *label)
{
	char *b = strdup("pkcs11:");
	size_t n = 7;

	if (!b)
		return NULL;
	if (append_str(&b, &n, "model", model) ||
	    append_str(&b, &n, "manufacturer", manufacturer) ||
	    append_str(&b, &n, "serial", serial) ||
	    append_str(&b, &n, "token", label)) {
		free(b);
		return NULL;
	}
	return b;
}

char *ps_uri_format_object(const char *token_uri, const unsigned char *id,
			   size_t id_len, const char *label, int type)
{
	char *b = strdup(token_uri);
	size_t n;

	if (!b)
		return NULL;
	n = strlen(b);
	if ((id_len && ps_uri_append(&b, &n, "id", id, id_len, 1)) ||
	    append_str(&b, &n, "object", label) ||
	    (type && append_str(&b, &n, "type", ps_obj_type_name(type)))) {
		free(b);
		return NULL;
	}
	return b;
}

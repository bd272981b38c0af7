/* psrenew: certificates in a CA's e-mail, found with GMime's MIME parser
 * (nested multiparts, transfer encodings, RFC 2047/2231 file names and
 * charsets are GMime's work, not ours). */
#include <psrenew/mime.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#define PART_MAX (1UL << 20)
#define URL_MAX	 2048

static const char *const cert_ext[] = { ".cer", ".crt", ".der",
					".pem", ".p7b", ".p7c" };

struct scan {
	struct ps_mime_found *f;
	int nomem;
};

/* s (n bytes) ends in a certificate file's extension. */
static int cert_name(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(cert_ext) / sizeof(*cert_ext); i++) {
		size_t k = strlen(cert_ext[i]);

		if (n > k && !strncasecmp(s + n - k, cert_ext[i], k))
			return 1;
	}
	return 0;
}

static int cert_type(GMimeObject *part)
{
	GMimeContentType *ct = g_mime_object_get_content_type(part);
	char *mt = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
	int yes = 0;

	if (mt && (!strcasecmp(mt, "application/pkix-cert") ||
		   !strcasecmp(mt, "application/x-x509-user-cert")))
		yes = 1;
	else if (mt && (!strcasecmp(mt, "application/pkcs7-mime") ||
			!strcasecmp(mt, "application/x-pkcs7-mime"))) {
		const char *st =
		    g_mime_content_type_get_parameter(ct, "smime-type");

		yes = st && !strcasecmp(st, "certs-only");
	}
	g_free(mt);
	return yes;
}

static struct ps_mime_item *add(struct scan *s, const char *what, size_t n)
{
	struct ps_mime_found *f = s->f;
	struct ps_mime_item *v;

	if (f->n >= PS_MIME_MAX_ITEMS)
		return NULL;
	v = realloc(f->items, (f->n + 1) * sizeof(*v));
	if (v) {
		f->items = v;
		v[f->n].what = strndup(what, n);
	}
	if (!v || !v[f->n].what) {
		s->nomem = 1;
		return NULL;
	}
	v[f->n].is_link = 0;
	v[f->n].data = NULL;
	v[f->n].len = 0;
	return &v[f->n++];
}

/* The decoded content of part (at most 1 MiB), into it. */
static void take_part(struct scan *s, GMimePart *part, const char *name)
{
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	GMimeStream *mem = w ? g_mime_stream_mem_new() : NULL;
	GByteArray *a = NULL;
	struct ps_mime_item *it = NULL;

	if (mem && g_mime_data_wrapper_write_to_stream(w, mem) >= 0)
		a = g_mime_stream_mem_get_byte_array((GMimeStreamMem *)mem);
	if (a && a->len > 0 && a->len <= PART_MAX)
		it = add(s, name, strlen(name));
	if (it) {
		it->data = malloc(a->len);
		if (it->data) {
			memcpy(it->data, a->data, a->len);
			it->len = a->len;
		} else {
			s->nomem = 1;
		}
	}
	if (mem)
		g_object_unref(mem);
}

static int seen_link(const struct ps_mime_found *f, const char *u, size_t n)
{
	for (size_t i = 0; i < f->n; i++)
		if (f->items[i].is_link && strlen(f->items[i].what) == n &&
		    !strncmp(f->items[i].what, u, n))
			return 1;
	return 0;
}

/* The links in text whose path ends in a certificate's extension. */
static void take_links(struct scan *s, const char *text)
{
	for (const char *p = strcasestr(text, "http"); p;
	     p = strcasestr(p, "http")) {
		size_t n, path;
		struct ps_mime_item *it = NULL;

		if (strncasecmp(p, "http://", 7) &&
		    strncasecmp(p, "https://", 8)) {
			p += 4;
			continue;
		}
		n = strcspn(p, " \t\r\n<>\"'()[]{}\\^`|");
		while (n > 0 && strchr(".,;:!", p[n - 1]))
			n--;
		path = strcspn(p, "?#");
		path = path < n ? path : n;
		if (n <= URL_MAX && cert_name(p, path) &&
		    !seen_link(s->f, p, n))
			it = add(s, p, n);
		if (it)
			it->is_link = 1;
		p += n ? n : 4;
	}
}

static void on_part(GMimeObject *parent, GMimeObject *part, gpointer data)
{
	struct scan *s = data;
	const char *name;

	(void)parent;
	if (s->nomem || !GMIME_IS_PART(part))
		return;
	name = g_mime_part_get_filename((GMimePart *)part);
	if (cert_type(part) || (name && cert_name(name, strlen(name)))) {
		take_part(s, (GMimePart *)part, name ? name : "(no name)");
	} else if (GMIME_IS_TEXT_PART(part)) {
		char *text = g_mime_text_part_get_text((GMimeTextPart *)part);

		if (text)
			take_links(s, text);
		g_free(text);
	}
}

int ps_mime_scan(const char *msg, size_t len, struct ps_mime_found *out,
		 struct ps_err *err)
{
	GMimeStream *st;
	GMimeParser *p;
	GMimeMessage *m;
	struct scan s = { out, 0 };
	const char *mid;

	memset(out, 0, sizeof(*out));
	if (!ps_gmime_ready())
		return ps_err_set(err, PS_EXIT_FAIL, "mail-message",
				  "install libgmime-3.0-0",
				  "cannot parse mail: GMime is not available");
	st = g_mime_stream_mem_new_with_buffer(msg, len);
	p = st ? g_mime_parser_new_with_stream(st) : NULL;
	m = p ? g_mime_parser_construct_message(p, NULL) : NULL;
	if (p)
		g_object_unref(p);
	if (st)
		g_object_unref(st);
	if (!m)
		return ps_err_set(err, PS_EXIT_FAIL, "mail-message", NULL,
				  "not an e-mail message");
	mid = g_mime_message_get_message_id(m);
	if (mid) {
		out->message_id = strdup(mid);
		s.nomem = !out->message_id;
	}
	g_mime_message_foreach(m, on_part, &s);
	g_object_unref(m);
	if (s.nomem) {
		ps_mime_found_free(out);
		return ps_err_nomem(err);
	}
	return 0;
}

void ps_mime_found_free(struct ps_mime_found *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->items[i].what);
		free(f->items[i].data);
	}
	free(f->items);
	free(f->message_id);
	memset(f, 0, sizeof(*f));
}

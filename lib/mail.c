/* psrenew: S/MIME-signed request messages. */
#include <psrenew/mail.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/rand.h>

#include <psrenew/http.h>

const char ps_mail_default_template[] =
    "Dobrý den,\n"
    "\n"
    "žádám o vydání následného certifikátu PostSignum.\n"
    "\n"
    "Držitel:                 {name}\n"
    "Typ certifikátu:         {type}\n"
    "Sériové číslo současného certifikátu: {serial}\n"
    "Platnost současného certifikátu do:   {not_after}\n"
    "E-mail:                  {email}\n"
    "\n"
    "Žádost o certifikát (PKCS#10) je v příloze {file}.\n"
    "Zpráva je podepsána současným certifikátem.\n"
    "\n"
    "S pozdravem\n"
    "{name}\n";

/* A growing string. */
struct buf {
	char *p;
	size_t n, cap;
	int bad;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->bad)
		return;
	if (b->n + n + 1 > b->cap) {
		size_t cap = (b->n + n + 1) * 2;
		char *p = realloc(b->p, cap);

		if (!p) {
			b->bad = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* s with every line end made CRLF. */
static void put_crlf(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\r')
			continue;
		if (*s == '\n')
			put(b, "\r\n", 2);
		else
			put(b, s, 1);
	}
}

static void put_base64(struct buf *b, const unsigned char *p, size_t n)
{
	char *s = ps_base64_encode(p, n);

	if (!s) {
		b->bad = 1;
		return;
	}
	put_crlf(b, s);
	free(s);
}

static int is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80 || *s == '\n' || *s == '\r')
			return 0;
	return 1;
}

/* RFC 2047 encoded-word (B) when s is not plain ASCII. */
static void put_word(struct buf *b, const char *s)
{
	char *enc;

	if (is_ascii(s)) {
		puts_(b, s);
		return;
	}
	enc = ps_base64_encode((const unsigned char *)s, strlen(s));
	if (!enc) {
		b->bad = 1;
		return;
	}
	puts_(b, "=?UTF-8?B?");
	for (char *q = enc; *q; q++)
		if (*q != '\n')
			put(b, q, 1);
	puts_(b, "?=");
	free(enc);
}

static void random_boundary(char *out, size_t len)
{
	unsigned char r[12];

	RAND_bytes(r, sizeof(r));
	snprintf(out, len,
		 "psrenew-%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x",
		 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
		 r[10], r[11]);
}

/* The signed content: a multipart/mixed entity, CRLF throughout. */
static void inner_entity(struct buf *b, const struct ps_mail_msg *m)
{
	char bnd[64];

	random_boundary(bnd, sizeof(bnd));
	puts_(b, "Content-Type: multipart/mixed; boundary=\"");
	puts_(b, bnd);
	puts_(b, "\"\r\n\r\n--");
	puts_(b, bnd);
	puts_(b, "\r\nContent-Type: text/plain; charset=UTF-8\r\n"
		 "Content-Transfer-Encoding: base64\r\n\r\n");
	put_base64(b, (const unsigned char *)m->body, strlen(m->body));
	puts_(b, "\r\n--");
	puts_(b, bnd);
	puts_(b, "\r\nContent-Type: ");
	puts_(b, m->attach_type);
	puts_(b, "; name=\"");
	puts_(b, m->attach_name);
	puts_(b, "\"\r\nContent-Transfer-Encoding: base64\r\n"
		 "Content-Disposition: attachment; filename=\"");
	puts_(b, m->attach_name);
	puts_(b, "\"\r\n\r\n");
	put_base64(b, m->attach, m->attach_len);
	puts_(b, "\r\n--");
	puts_(b, bnd);
	puts_(b, "--\r\n");
}

static void headers(struct buf *b, const struct ps_mail_msg *m)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	puts_(b, "From: ");
	if (m->from_name && *m->from_name) {
		put_word(b, m->from_name);
		puts_(b, " ");
	}
	puts_(b, "<");
	puts_(b, m->from);
	puts_(b, ">\r\nTo: <");
	puts_(b, m->to);
	puts_(b, ">\r\nSubject: ");
	put_word(b, m->subject);
	puts_(b, "\r\nDate: ");
	puts_(b, date);
	puts_(b, "\r\nMessage-ID: <");
	puts_(b, m->message_id);
	puts_(b, ">\r\n");
}

static int valid_header_text(const char *s)
{
	return s && !strpbrk(s, "\r\n<>\"");
}

int ps_mail_build(const struct ps_mail_msg *m, X509 *cert, EVP_PKEY *key,
		  STACK_OF(X509) * chain, char **out, size_t *len,
		  struct ps_err *err)
{
	struct buf b = { 0 }, inner = { 0 };
	int flags = CMS_DETACHED | CMS_BINARY | CMS_PARTIAL;
	CMS_ContentInfo *cms = NULL;
	BIO *data = NULL, *mem = NULL;
	char *p;
	long n;
	int rc = 0;

	*out = NULL;
	if (!valid_header_text(m->from) || !valid_header_text(m->to) ||
	    !valid_header_text(m->message_id) || strpbrk(m->subject, "\r\n") ||
	    (m->from_name && strpbrk(m->from_name, "\r\n")))
		return ps_err_set(err, PS_EXIT_USAGE, "bad-mail", NULL,
				  "an address, the subject or the sender name "
				  "holds a line break or angle bracket");
	inner_entity(&inner, m);
	headers(&b, m);
	if (inner.bad || b.bad) {
		rc = ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				"out of memory");
		goto out;
	}
	data = BIO_new_mem_buf(inner.p, (int)inner.n);
	cms = CMS_sign(NULL, NULL, chain, NULL, flags);
	if (!data || !cms ||
	    !CMS_add1_signer(cms, cert, key, EVP_sha256(), flags) ||
	    !CMS_final(cms, data, NULL, flags & ~CMS_PARTIAL)) {
		rc = ps_err_set(err, PS_EXIT_TOKEN, "token-sign",
				"check that the token is inserted",
				"cannot sign the message with the current "
				"certificate's key on the token");
		ps_err_add_openssl(err);
		goto out;
	}
	/* multipart/signed with the content as it is (already CRLF); the
	 * digest is done, so the writer must not finalise again. */
	BIO_free(data);
	data = BIO_new_mem_buf(inner.p, (int)inner.n);
	mem = BIO_new(BIO_s_mem());
	if (!data || !mem ||
	    !SMIME_write_CMS(mem, cms, data,
			     CMS_DETACHED | CMS_BINARY | CMS_REUSE_DIGEST |
				 SMIME_CRLFEOL)) {
		rc = ps_err_set(err, PS_EXIT_FAIL, "mail", NULL,
				"cannot write the S/MIME message");
		ps_err_add_openssl(err);
		goto out;
	}
	n = BIO_get_mem_data(mem, &p);
	/* OpenSSL writes the signature's base64 with bare LFs even with
	 * SMIME_CRLFEOL; SMTP wants CRLF everywhere. The signed part is
	 * CRLF already, so this changes nothing the signature covers. */
	for (long i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			put(&b, "\r", 1);
		put(&b, p + i, 1);
	}
	if (b.bad) {
		rc = ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				"out of memory");
		goto out;
	}
	*out = b.p;
	*len = b.n;
	b.p = NULL;
out:
	CMS_ContentInfo_free(cms);
	BIO_free(data);
	BIO_free(mem);
	free(b.p);
	free(inner.p);
	return rc;
}

char *ps_mail_fill(const char *tmpl, const struct ps_mail_vars *v)
{
	const struct {
		const char *key, *val;
	} map[] = {
		{ "{name}", v->name },	   { "{type}", v->type },
		{ "{serial}", v->serial }, { "{not_after}", v->not_after },
		{ "{email}", v->email },   { "{file}", v->file },
	};
	struct buf b = { 0 };

	puts_(&b, "");
	while (*tmpl) {
		size_t k = sizeof(map) / sizeof(map[0]);
		const char *key = NULL, *val = NULL;

		for (size_t i = 0; i < k && !key; i++)
			if (!strncmp(tmpl, map[i].key, strlen(map[i].key))) {
				key = map[i].key;
				val = map[i].val;
			}
		if (key) {
			puts_(&b, val ? val : "");
			tmpl += strlen(key);
		} else {
			put(&b, tmpl++, 1);
		}
	}
	if (b.bad) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* psrenew: S/MIME-signed request messages. */
#include <psrenew/mail.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <psrenew/http.h>
#include <psrenew/codec.h>

const char ps_mail_default_template[] =
    "Dobrý den,\n"
    "\n"
    "žádám o vydání následného certifikátu PostSignum.\n"
    "\n"
    "Držitel:                 {name}\n"
    "Organizace:              {organisation}\n"
    "Číslo smlouvy:           {contract_number}\n"
    "Osobní číslo:            {employee_number}\n"
    "Typ certifikátu:         {type}\n"
    "Sériové číslo současného certifikátu: {serial}\n"
    "Platnost současného certifikátu do:   {not_after}\n"
    "E-mail:                  {email}\n"
    "\n"
    "Žádost o certifikát (PKCS#10) je v příloze {file}.\n"
    "Zpráva je podepsána certifikátem držitele ({signer_type}, sériové\n"
    "číslo {signer_serial}).\n"
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

/* s with every line end (CRLF, a lone LF or a lone CR) made CRLF: the
 * canonical form of text in signed content (RFC 8551 section 3.1.1,
 * RFC 2046 section 4.1.1). */
static void put_crlf(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\r' && s[1] == '\n')
			continue;
		if (*s == '\n' || *s == '\r')
			put(b, "\r\n", 2);
		else
			put(b, s, 1);
	}
}

static void put_base64(struct buf *b, const unsigned char *p, size_t n)
{
	char *s = n ? ps_base64_encode(p, n) : strdup("");

	if (!s) {
		b->bad = 1;
		return;
	}
	put_crlf(b, s);
	free(s);
}

/* Header lines stay within RFC 5322's 78 characters (section 2.1.1);
 * an RFC 2047 encoded-word within 75 (section 2). */
#define LINE_MAX_  78
#define WORD_MAX   75
#define WORD_FRAME 12 /* "=?UTF-8?B?" and "?=" */
#define WORD_BYTES 45 /* the most one encoded-word holds */

/* Plain text a header can carry as it is: printable ASCII, not starting
 * with a space, nothing a reader could take for an encoded-word. */
static int is_plain(const char *s)
{
	if (*s == ' ' || strstr(s, "=?"))
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/* The longest run of spaces and one word in s. */
static size_t segment(const char *s)
{
	size_t n = strspn(s, " ");

	return n + strcspn(s + n, " ");
}

/* Plain s folded before a space where a line would pass 78 (RFC 5322
 * section 2.2.3: unfolding gives s back); whether every line fits. With
 * b NULL, only the answer. */
static int put_folded(struct buf *b, const char *s, size_t *col)
{
	for (size_t n; *s; s += n) {
		n = segment(s);
		if (*col + n > LINE_MAX_ && s[0] == ' ' && s[strspn(s, " ")]) {
			if (b)
				puts_(b, "\r\n");
			*col = 0;
		}
		if (b)
			put(b, s, n);
		*col += n;
		if (*col > LINE_MAX_)
			return 0;
	}
	return 1;
}

/* How many bytes of UTF-8 s (n long) the next encoded-word takes: what
 * its base64 holds in at most max characters, ending on a character's
 * first byte so that every word decodes on its own (RFC 2047 section 5). */
static size_t word_bytes(const char *s, size_t n, size_t max)
{
	size_t k = (max - WORD_FRAME) / 4 * 3;

	if (k >= n)
		return n;
	while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
		k--;
	return k ? k : (max - WORD_FRAME) / 4 * 3;
}

/* s as RFC 2047 "B" encoded-words of at most 75 characters, the header
 * folded between them (RFC 2047 section 2, RFC 5322 section 2.2.3). */
static void put_words(struct buf *b, const char *s, size_t n, size_t *col)
{
	unsigned char enc[WORD_MAX];

	if (!n)
		return;
	do {
		size_t max = LINE_MAX_ - *col < WORD_MAX ? LINE_MAX_ - *col
							 : WORD_MAX,
		       k;
		int len;

		if (max < 16) {
			puts_(b, "\r\n ");
			*col = 1;
			continue;
		}
		k = word_bytes(s, n, max);
		len = EVP_EncodeBlock(enc, (const unsigned char *)s, (int)k);
		puts_(b, "=?UTF-8?B?");
		put(b, (const char *)enc, (size_t)len);
		puts_(b, "?=");
		*col += (size_t)len + WORD_FRAME;
		s += k;
		n -= k;
		if (n) {
			puts_(b, "\r\n ");
			*col = 1;
		}
	} while (n);
}

/* An unstructured header field: Subject. */
static void put_text_header(struct buf *b, const char *name, const char *s)
{
	size_t col = strlen(name) + 2, dry = col;

	puts_(b, name);
	puts_(b, ": ");
	if (is_plain(s) && put_folded(NULL, s, &dry))
		put_folded(b, s, &col);
	else
		put_words(b, s, strlen(s), &col);
	puts_(b, "\r\n");
}

/* Whether the n bytes at s need an encoded-word in a phrase: anything
 * but printable ASCII, or what a reader could take for one. */
static int needs_words(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e ||
		    (s[i] == '=' && i + 1 < n && s[i + 1] == '?'))
			return 1;
	return 0;
}

/* atext words and single spaces: a phrase of atoms as it is. */
static int is_atoms(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != ' ' &&
		    !memchr("!#$%&'*+-/=?^_`{|}~", s[i], 19))
			return 0;
	return 1;
}

/* The space before the next word of a phrase, or a fold when the word
 * (len characters) would pass the line's 78. */
static void put_space(struct buf *b, size_t *col, size_t len)
{
	if (*col + 1 + len > LINE_MAX_) {
		puts_(b, "\r\n ");
		*col = 1;
	} else {
		puts_(b, " ");
		*col += 1;
	}
}

/* Printable ASCII words (single spaces) as atoms, or as one
 * quoted-string with " and \ escaped (RFC 5322 section 3.2.4); a word at
 * a time where the whole would not fit on a line, and a word longer than
 * a line as encoded-words. */
static void put_ascii_run(struct buf *b, const char *s, size_t n, size_t *col,
			  int lead)
{
	int atoms = is_atoms(s, n);
	size_t len = n + (atoms ? 0 : 2);
	const char *sp = memchr(s, ' ', n);

	for (size_t i = 0; i < n && !atoms; i++)
		len += s[i] == '"' || s[i] == '\\';
	if (len > (lead ? LINE_MAX_ - 1 : LINE_MAX_ - *col)) {
		if (sp) {
			put_ascii_run(b, s, (size_t)(sp - s), col, lead);
			put_ascii_run(b, sp + 1, n - (size_t)(sp - s) - 1, col,
				      1);
		} else {
			if (lead)
				put_space(b, col, 16);
			put_words(b, s, n, col);
		}
		return;
	}
	if (lead)
		put_space(b, col, len);
	*col += len;
	if (atoms) {
		put(b, s, n);
		return;
	}
	puts_(b, "\"");
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			puts_(b, "\\");
		put(b, s + i, 1);
	}
	puts_(b, "\"");
}

/* A display name (RFC 5322 section 3.4): plain ASCII as atoms or a
 * quoted-string, anything else as one RFC 2047 encoded-word where it
 * fits in one. A longer name goes as runs: plain ASCII words as atoms or
 * a quoted-string, the other words as encoded-words holding the spaces
 * between them (RFC 2047 section 5 (3)), the runs separated by a space
 * that every reader keeps, which one between two encoded-words is not
 * (RFC 2047 section 6.2). */
static void put_name(struct buf *b, const char *s, size_t *col)
{
	size_t n = strlen(s);
	int lead = 0;

	if (s[0] == ' ' || s[n - 1] == ' ' || strstr(s, "  ") ||
	    (needs_words(s, n) &&
	     *col + WORD_FRAME + (n + 2) / 3 * 4 <= LINE_MAX_ &&
	     n <= WORD_BYTES)) {
		/* one word, or spaces a phrase would not keep */
		put_words(b, s, n, col);
		return;
	}
	while (*s) {
		int enc = needs_words(s, strcspn(s, " "));
		size_t k = 0;

		/* the words of the same kind from here */
		while (s[k]) {
			size_t w = strcspn(s + k + (k > 0), " ") + (k > 0);

			if (needs_words(s + k + (k > 0), w - (k > 0)) != enc)
				break;
			k += w;
		}
		if (enc) {
			/* on a new line rather than split, when one word holds
			 * it */
			if (lead)
				put_space(b, col,
					  k > WORD_BYTES
					      ? 16
					      : WORD_FRAME + (k + 2) / 3 * 4);
			put_words(b, s, k, col);
		} else {
			put_ascii_run(b, s, k, col, lead);
		}
		lead = 1;
		s += k + (s[k] == ' ');
	}
}

/* A line "Name: value; param; param" folded before a parameter where it
 * would pass 78 characters. */
static void put_param_line(struct buf *b, const char *s, size_t n)
{
	size_t col = 0;

	while (n) {
		const char *semi = memchr(s + 1, ';', n - 1);
		size_t k = semi && (size_t)(semi - s) + 1 < n && semi[1] == ' '
			       ? (size_t)(semi - s) + 1
			       : n;

		if (col && col + k > LINE_MAX_ && s[0] == ' ') {
			puts_(b, "\r\n");
			col = 0;
		}
		put(b, s, k);
		col += k;
		s += k;
		n -= k;
	}
	puts_(b, "\r\n");
}

static void random_boundary(char *out, size_t len)
{
	unsigned char r[12];
	char hex[25];

	RAND_bytes(r, sizeof(r));
	ps_hex_to(hex, r, sizeof(r));
	snprintf(out, len, "psrenew-%s", hex);
}

/* The text canonicalised to CRLF line ends, then base64. */
static void put_text_base64(struct buf *b, const char *text)
{
	struct buf t = { 0 };

	puts_(&t, "");
	put_crlf(&t, text);
	if (t.bad)
		b->bad = 1;
	else
		put_base64(b, (const unsigned char *)t.p, t.n);
	free(t.p);
}

/* "Name: TYPE; PARAM=\"VALUE\"" folded as put_param_line does. */
static void put_param_header(struct buf *b, const char *name, const char *type,
			     const char *param, const char *value)
{
	struct buf t = { 0 };

	puts_(&t, name);
	puts_(&t, ": ");
	puts_(&t, type);
	puts_(&t, "; ");
	puts_(&t, param);
	puts_(&t, "=\"");
	puts_(&t, value);
	puts_(&t, "\"");
	if (t.bad)
		b->bad = 1;
	else
		put_param_line(b, t.p, t.n);
	free(t.p);
}

/* The signed content: a multipart/mixed entity, CRLF throughout. */
static void inner_entity(struct buf *b, const struct ps_mail_msg *m)
{
	char bnd[64];

	random_boundary(bnd, sizeof(bnd));
	put_param_header(b, "Content-Type", "multipart/mixed", "boundary", bnd);
	puts_(b, "\r\n--");
	puts_(b, bnd);
	puts_(b, "\r\nContent-Type: text/plain; charset=UTF-8\r\n"
		 "Content-Transfer-Encoding: base64\r\n\r\n");
	put_text_base64(b, m->body);
	puts_(b, "\r\n--");
	puts_(b, bnd);
	puts_(b, "\r\n");
	put_param_header(b, "Content-Type", m->attach_type, "name",
			 m->attach_name);
	puts_(b, "Content-Transfer-Encoding: base64\r\n");
	put_param_header(b, "Content-Disposition", "attachment", "filename",
			 m->attach_name);
	puts_(b, "\r\n");
	put_base64(b, m->attach, m->attach_len);
	puts_(b, "\r\n--");
	puts_(b, bnd);
	puts_(b, "--\r\n");
}

/* "<addr>" after what the line holds, on a line of its own when it would
 * pass 78 characters. */
static void put_angle_addr(struct buf *b, const char *addr, size_t col)
{
	if (col > 0 && col + strlen(addr) + 3 > LINE_MAX_)
		puts_(b, "\r\n");
	puts_(b, col > 0 ? " <" : "<");
	puts_(b, addr);
	puts_(b, ">\r\n");
}

static void headers(struct buf *b, const struct ps_mail_msg *m)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	size_t col = strlen("From: ");

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	puts_(b, "From: ");
	if (m->from_name && *m->from_name)
		put_name(b, m->from_name, &col);
	put_angle_addr(b, m->from, col > strlen("From: ") ? col : 0);
	puts_(b, "To: ");
	put_angle_addr(b, m->to, 0);
	put_text_header(b, "Subject", m->subject);
	puts_(b, "Date: ");
	puts_(b, date);
	puts_(b, "\r\nMessage-ID: <");
	puts_(b, m->message_id);
	puts_(b, ">\r\n");
}

/* OpenSSL's multipart/signed with CRLF line ends throughout: it writes
 * the signature's base64 with bare LFs even with SMIME_CRLFEOL. Its
 * header lines are folded before a parameter; the signed part is CRLF
 * already, so nothing the signature covers changes. */
static void put_smime(struct buf *b, const char *p, size_t n)
{
	int in_header = 1;

	while (n) {
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) + 1 : n, len = nl ? k - 1 : k;

		if (len && p[len - 1] == '\r')
			len--;
		if (in_header && len)
			put_param_line(b, p, len);
		else {
			put(b, p, len);
			if (nl)
				puts_(b, "\r\n");
		}
		in_header = in_header && len;
		p += k;
		n -= k;
	}
}

static int valid_header_text(const char *s)
{
	return s && !strpbrk(s, "\r\n<>\"");
}

/* The signer, SHA-256, its SMIMECapabilities (RFC 8551 section 2.5.2)
 * limited to what any S/MIME reader of today decrypts and checks:
 * AES-256-CBC, AES-128-CBC (preferred in this order), SHA-256. OpenSSL's
 * own list would offer DES, 3DES and 40/64-bit RC2 as well. No GCM: a
 * sender takes the first algorithm listed that it knows (RFC 8551 section
 * 2.7.1.1), and not every mail reader decrypts AuthEnvelopedData yet. */
static int add_signer(CMS_ContentInfo *cms, X509 *cert, EVP_PKEY *key,
		      int flags)
{
	STACK_OF(X509_ALGOR) *caps = NULL;
	CMS_SignerInfo *si = CMS_add1_signer(cms, cert, key, EVP_sha256(),
					     flags | CMS_NOSMIMECAP);
	int ok = si && CMS_add_simple_smimecap(&caps, NID_aes_256_cbc, -1) &&
		 CMS_add_simple_smimecap(&caps, NID_aes_128_cbc, -1) &&
		 CMS_add_simple_smimecap(&caps, NID_sha256, -1) &&
		 CMS_add_smimecap(si, caps);

	sk_X509_ALGOR_pop_free(caps, X509_ALGOR_free);
	return ok;
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
		rc = ps_err_nomem(err);
		goto out;
	}
	data = BIO_new_mem_buf(inner.p, (int)inner.n);
	cms = CMS_sign(NULL, NULL, chain, NULL, flags);
	if (!data || !cms || !add_signer(cms, cert, key, flags) ||
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
	put_smime(&b, p, n > 0 ? (size_t)n : 0);
	if (b.bad) {
		rc = ps_err_nomem(err);
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

/* The value of the placeholder at s, or NULL; *klen its length, 0 when
 * s is not at a placeholder. */
static const char *placeholder(const char *s, const struct ps_mail_vars *v,
			       size_t *klen)
{
	const struct {
		const char *key, *val;
	} map[] = {
		{ "{name}", v->name },
		{ "{type}", v->type },
		{ "{serial}", v->serial },
		{ "{not_after}", v->not_after },
		{ "{email}", v->email },
		{ "{file}", v->file },
		{ "{signer_serial}", v->signer_serial },
		{ "{signer_type}", v->signer_type },
		{ "{contract_number}", v->contract_number },
		{ "{organisation}", v->organisation },
		{ "{employee_number}", v->employee_number },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strncmp(s, map[i].key, strlen(map[i].key))) {
			*klen = strlen(map[i].key);
			return map[i].val;
		}
	*klen = 0;
	return NULL;
}

/* A line (n bytes) whose placeholders are all unset or empty: left out. */
static int line_unset(const char *s, size_t n, const struct ps_mail_vars *v)
{
	int known = 0, set = 0;

	for (size_t i = 0, k; i < n; i += k ? k : 1) {
		const char *val = placeholder(s + i, v, &k);

		known += k > 0;
		set += k > 0 && val && *val;
	}
	return known && !set;
}

char *ps_mail_fill(const char *tmpl, const struct ps_mail_vars *v)
{
	struct buf b = { 0 };

	puts_(&b, "");
	while (*tmpl) {
		size_t n = strcspn(tmpl, "\n"), k;
		const char *end = tmpl + n + (tmpl[n] == '\n');

		if (line_unset(tmpl, n, v)) {
			tmpl = end;
			continue;
		}
		while (tmpl < end) {
			const char *val = placeholder(tmpl, v, &k);

			if (k) {
				puts_(&b, val ? val : "");
				tmpl += k;
			} else {
				put(&b, tmpl++, 1);
			}
		}
	}
	if (b.bad) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* psrenew: a mailbox over IMAP through libcurl (lib/http.c's handle: TLS
 * always verified, its trust and time-outs). libcurl's own fetch asks for
 * BODY[], which sets \Seen (RFC 3501 section 6.4.5), so a message is read
 * with a custom "UID FETCH n BODY.PEEK[]" instead. libcurl hands every
 * IMAP response line to the header callback, the literal that carries the
 * message included, and only the first line of an untagged FETCH to the
 * write callback: the message is taken from the header lines. */
#include <psrenew/imap.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include <openssl/crypto.h>

#include <psrenew/http.h>

struct ps_imap {
	struct ps_http *h;
	CURL *c;
	char *url; /* imaps://USER@HOST[:PORT]/MAILBOX */
	char *pass;
	char where[200];
};

/* What a command's answer brings, up to max bytes. */
struct acc {
	char *p;
	size_t n, cap, max;
	int too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *v)
{
	struct acc *a = v;
	size_t len = size * n;

	if (a->too_big || a->n + len > a->max) {
		a->too_big = 1;
		return len;
	}
	if (a->n + len + 1 > a->cap) {
		size_t cap = (a->n + len + 1) * 2;
		char *q = realloc(a->p, cap);

		if (!q)
			return 0; /* libcurl stops: CURLE_WRITE_ERROR */
		a->p = q;
		a->cap = cap;
	}
	memcpy(a->p + a->n, p, len);
	a->n += len;
	a->p[a->n] = '\0';
	return len;
}

static int bad_url(const char *url, struct ps_err *err, const char *why)
{
	return ps_err_set(
	    err, PS_EXIT_USAGE, "usage",
	    "write imaps://USER@HOST[:PORT]/MAILBOX; the password "
	    "comes from --imap-pass SOURCE",
	    "bad --imap URL '%.120s': %s", url, why);
}

/* The URL with /INBOX when it names no mailbox; the user and host. */
static int parse_url(struct ps_imap *m, const char *url, struct ps_err *err)
{
	size_t skip = !strncmp(url, "imaps://", 8)  ? 8
		      : !strncmp(url, "imap://", 7) ? 7
						    : 0;
	const char *auth = url + skip, *slash, *at;

	if (!skip)
		return bad_url(url, err, "not imaps:// or imap://");
	if (strpbrk(url, ";?# \t\r\n"))
		return bad_url(url, err, "only a mailbox may follow the host");
	slash = strchr(auth, '/');
	at = memchr(auth, '@', slash ? (size_t)(slash - auth) : strlen(auth));
	if (!at || at == auth)
		return bad_url(url, err, "no USER@ before the host");
	if (memchr(auth, ':', (size_t)(at - auth)))
		return bad_url(url, err,
			       "a password in the URL would be seen by "
			       "everyone (ps, shell history)");
	snprintf(m->where, sizeof(m->where), "%.*s at %.*s",
		 (int)(at - auth > 60 ? 60 : at - auth), auth,
		 (int)(slash ? slash - at - 1 : (long)strlen(at + 1)), at + 1);
	if (asprintf(&m->url, "%s%s", url,
		     !slash || !slash[1] ? (slash ? "INBOX" : "/INBOX") : "") <
	    0) {
		m->url = NULL;
		return ps_err_nomem(err);
	}
	return 0;
}

int ps_imap_open(const char *url, const char *pass, const char *ca_bundle,
		 struct ps_imap **out, struct ps_err *err)
{
	struct ps_http_opts o = { .ca_bundle = ca_bundle,
				  .connect_timeout = 20,
				  .timeout = 300 };
	struct ps_imap *m = calloc(1, sizeof(*m));
	int rc;

	*out = NULL;
	if (!m)
		return ps_err_nomem(err);
	rc = parse_url(m, url, err);
	if (!rc) {
		m->pass = strdup(pass ? pass : "");
		if (!m->pass)
			rc = ps_err_nomem(err);
	}
	if (!rc)
		rc = ps_http_new(&o, &m->h, err);
	if (rc) {
		ps_imap_close(m);
		return rc;
	}
	m->c = ps_http_handle(m->h, "imap,imaps");
	curl_easy_setopt(m->c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	curl_easy_setopt(m->c, CURLOPT_PASSWORD, m->pass);
	*out = m;
	return 0;
}

void ps_imap_close(struct ps_imap *m)
{
	if (!m)
		return;
	/* libcurl's copy of the password goes with the handle. */
	ps_http_free(m->h);
	if (m->pass)
		OPENSSL_cleanse(m->pass, strlen(m->pass));
	free(m->pass);
	free(m->url);
	free(m);
}

const char *ps_imap_where(const struct ps_imap *m)
{
	return m->where;
}

/* One command on the mailbox; its untagged answer in body (libcurl's
 * write callback) and every response line in hdr. */
static int command(struct ps_imap *m, const char *cmd, struct acc *body,
		   struct acc *hdr, struct ps_err *err)
{
	CURLcode rc;

	curl_easy_setopt(m->c, CURLOPT_URL, m->url);
	curl_easy_setopt(m->c, CURLOPT_CUSTOMREQUEST, cmd);
	curl_easy_setopt(m->c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(m->c, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(m->c, CURLOPT_HEADERFUNCTION, on_data);
	curl_easy_setopt(m->c, CURLOPT_HEADERDATA, hdr);
	rc = curl_easy_perform(m->c);
	if (rc == CURLE_OK)
		return 0;
	/* libcurl says CURLE_LOGIN_DENIED for a SELECT the server refused */
	if (rc == CURLE_LOGIN_DENIED && strstr(ps_http_errtext(m->h), "Select"))
		return ps_err_set(err, PS_EXIT_USAGE, "imap-mailbox",
				  "check the mailbox name in --imap",
				  "%s: the server does not let %s select the "
				  "mailbox",
				  m->url, m->where);
	if (rc == CURLE_LOGIN_DENIED)
		return ps_err_set(err, PS_EXIT_REFUSED, "imap-login",
				  "check the user in --imap and the password "
				  "source (--imap-pass, or imap-pass in "
				  "[mailbox]); nothing was changed",
				  "the IMAP server refused the login of %s",
				  m->where);
	if (rc == CURLE_QUOTE_ERROR)
		return ps_err_set(
		    err, PS_EXIT_FAIL, "imap", "the server's log says why",
		    "the IMAP server (%s) refused \"%.60s\"", m->where, cmd);
	return ps_http_failed(m->h, rc, m->url, err);
}

static void acc_free(struct acc *a)
{
	free(a->p);
	memset(a, 0, sizeof(*a));
}

int ps_imap_unseen(struct ps_imap *m, unsigned long **uids, size_t *n,
		   struct ps_err *err)
{
	struct acc body = { .max = 1UL << 20 }, hdr = { .max = 1UL << 20 };
	const char *p;
	size_t cap = 0;
	int rc = command(m, "UID SEARCH UNSEEN", &body, &hdr, err);

	*uids = NULL;
	*n = 0;
	for (p = body.p; !rc && p && (p = strstr(p, "* SEARCH"));) {
		char *end;

		p += 8;
		for (unsigned long u; (u = strtoul(p, &end, 10)) && end != p;
		     p = end) {
			if (*n == cap) {
				unsigned long *v = realloc(
				    *uids, (cap = cap * 2 + 16) * sizeof(*v));

				if (!v) {
					rc = ps_err_nomem(err);
					break;
				}
				*uids = v;
			}
			(*uids)[(*n)++] = u;
		}
	}
	if (!rc && body.too_big)
		rc = ps_err_set(err, PS_EXIT_FAIL, "imap", NULL,
				"the IMAP server's answer to SEARCH is too "
				"long");
	if (rc) {
		free(*uids);
		*uids = NULL;
		*n = 0;
	}
	acc_free(&body);
	acc_free(&hdr);
	return rc;
}

/* The literal "{N}" CRLF N bytes after the first untagged FETCH line of
 * the answer a (every response line, as the server sent it). */
static const char *literal(const struct acc *a, size_t *len)
{
	const char *p = a->p, *end = a->p + a->n;

	while (p && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl && nl > p && nl[-1] == '\r' ? nl - 1 : nl;
		const char *brace;
		char *stop;
		unsigned long n;

		if (!nl)
			break;
		brace = e > p && e[-1] == '}' ? memrchr(p, '{', (size_t)(e - p))
					      : NULL;
		if (!strncmp(p, "* ", 2) &&
		    memmem(p, (size_t)(e - p), " FETCH ", 7) && brace) {
			n = strtoul(brace + 1, &stop, 10);
			if (stop == e - 1 && n <= (size_t)(end - nl - 1)) {
				*len = n;
				return nl + 1;
			}
			return NULL;
		}
		p = nl + 1;
	}
	return NULL;
}

int ps_imap_fetch(struct ps_imap *m, unsigned long uid, size_t max, char **msg,
		  size_t *len, struct ps_err *err)
{
	struct acc body = { .max = 1UL << 16 }, hdr = { .max = max + 65536 };
	char cmd[64];
	const char *lit = NULL;
	int rc;

	*msg = NULL;
	*len = 0;
	snprintf(cmd, sizeof(cmd), "UID FETCH %lu BODY.PEEK[]", uid);
	rc = command(m, cmd, &body, &hdr, err);
	if (!rc && hdr.too_big)
		rc = ps_err_set(err, PS_EXIT_FAIL, "mail-too-big", NULL,
				"message %lu of %s is larger than %zu bytes",
				uid, m->where, max);
	if (!rc)
		lit = literal(&hdr, len);
	if (!rc && !lit)
		rc = ps_err_set(err, PS_EXIT_FAIL, "imap", NULL,
				"the IMAP server (%s) sent no message %lu",
				m->where, uid);
	if (!rc)
		*msg = malloc(*len + 1);
	if (!rc && !*msg)
		rc = ps_err_nomem(err);
	if (!rc) {
		memcpy(*msg, lit, *len);
		(*msg)[*len] = '\0';
	}
	acc_free(&body);
	acc_free(&hdr);
	return rc;
}

int ps_imap_seen(struct ps_imap *m, unsigned long uid, struct ps_err *err)
{
	struct acc body = { .max = 1UL << 16 }, hdr = { .max = 1UL << 20 };
	char cmd[80];
	int rc;

	snprintf(cmd, sizeof(cmd), "UID STORE %lu +FLAGS.SILENT (\\Seen)", uid);
	rc = command(m, cmd, &body, &hdr, err);
	acc_free(&body);
	acc_free(&hdr);
	return rc;
}

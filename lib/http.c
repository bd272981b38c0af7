/* psrenew: HTTP(S) through libcurl. */
#include <psrenew/http.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define BODY_MAX (4UL << 20)

struct ps_http {
	CURL *curl;
	struct ps_http_opts o;
	char errbuf[CURL_ERROR_SIZE];
	int cookie_engine; /* started once: curl_easy_reset keeps cookies */
	/* The trust anchors (the system's and ca_bundle), read once and
	 * shared by every connection's SSL_CTX: libcurl would read the
	 * system's bundle again for each (about 0.8 MiB a connection). */
	X509_STORE *store;
	int tls12; /* TLS 1.2 or newer only (ps_http_tls12) */
	/* ps_http_parallel's multi handle, kept with its connection cache
	 * from one call to the next: a batch polled in chunks opens its
	 * connections (a TLS handshake signed on the token each) once. */
	CURLM *multi;
};

struct sink {
	struct ps_http_resp *r;
	size_t cap;
	int too_big;
};

static size_t on_body(char *p, size_t size, size_t n, void *v)
{
	struct sink *s = v;
	size_t len = size * n;

	if (s->r->len + len > BODY_MAX) {
		s->too_big = 1;
		return 0;
	}
	if (s->r->len + len + 1 > s->cap) {
		size_t cap = (s->r->len + len + 1) * 2;
		char *b = realloc(s->r->body, cap);

		if (!b)
			return 0;
		s->r->body = b;
		s->cap = cap;
	}
	memcpy(s->r->body + s->r->len, p, len);
	s->r->len += len;
	s->r->body[s->r->len] = '\0';
	return len;
}

static char *header_value(const char *line, size_t n, const char *name)
{
	size_t k = strlen(name);

	if (n <= k + 1 || strncasecmp(line, name, k) != 0 || line[k] != ':')
		return NULL;
	line += k + 1;
	n -= k + 1;
	while (n > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		n--;
	}
	while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == '\n' ||
			 line[n - 1] == ' '))
		n--;
	return strndup(line, n);
}

static size_t on_header(char *p, size_t size, size_t n, void *v)
{
	struct ps_http_resp *r = v;
	size_t len = size * n;
	char *val;

	if ((val = header_value(p, len, "Retry-After"))) {
		char *end;
		long s = strtol(val, &end, 10);

		if (end != val && *end == '\0' && s >= 0)
			r->retry_after = s;
		else if ((s = (long)curl_getdate(val, NULL)) > 0)
			r->retry_after =
			    s - (long)time(NULL) > 0 ? s - (long)time(NULL) : 0;
		free(val);
	} else if ((val = header_value(p, len, "Content-Type"))) {
		free(r->content_type);
		r->content_type = val;
	} else if ((val = header_value(p, len, "Location"))) {
		free(r->location);
		r->location = val;
	}
	return len;
}

/* Gives libcurl's SSL_CTX the trust anchors (the system's and the extra
 * CAs) and the token-held client key. */
static CURLcode on_ssl_ctx(CURL *curl, void *sslctx, void *parm)
{
	struct ps_http *h = parm;
	SSL_CTX *ctx = sslctx;

	(void)curl;
	if (!h->store) {
		h->store = X509_STORE_new();
		if (!h->store || X509_STORE_set_default_paths(h->store) != 1 ||
		    (h->o.ca_bundle &&
		     X509_STORE_load_file(h->store, h->o.ca_bundle) != 1)) {
			X509_STORE_free(h->store);
			h->store = NULL;
			return CURLE_SSL_CACERT_BADFILE;
		}
	}
	SSL_CTX_set1_cert_store(ctx, h->store);
	if (h->o.client_cert && h->o.client_key &&
	    (SSL_CTX_use_certificate(ctx, h->o.client_cert) != 1 ||
	     SSL_CTX_use_PrivateKey(ctx, h->o.client_key) != 1))
		return CURLE_SSL_CERTPROBLEM;
	return CURLE_OK;
}

int ps_http_new(const struct ps_http_opts *o, struct ps_http **out,
		struct ps_err *err)
{
	static int global_done;
	struct ps_http *h;

	*out = NULL;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return ps_err_set(err, PS_EXIT_FAIL, "http", NULL,
					  "cannot initialise libcurl");
		global_done = 1;
	}
	h = calloc(1, sizeof(*h));
	if (!h || !(h->curl = curl_easy_init())) {
		free(h);
		return ps_err_nomem(err);
	}
	h->o = *o;
	if (h->o.connect_timeout <= 0)
		h->o.connect_timeout = 20;
	if (h->o.timeout <= 0)
		h->o.timeout = 120;
	*out = h;
	return 0;
}

void ps_http_tls12(struct ps_http *h)
{
	h->tls12 = 1;
}

void ps_http_free(struct ps_http *h)
{
	if (!h)
		return;
	curl_easy_cleanup(h->curl);
	if (h->multi)
		curl_multi_cleanup(h->multi);
	X509_STORE_free(h->store);
	free(h);
}

void ps_http_resp_free(struct ps_http_resp *r)
{
	free(r->body);
	free(r->content_type);
	free(r->location);
	memset(r, 0, sizeof(*r));
}

static int curl_failure(const char *errbuf, CURLcode c, const char *url,
			struct ps_err *err)
{
	const char *why = errbuf[0] ? errbuf : curl_easy_strerror(c);

	switch (c) {
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return ps_err_set(
		    err, PS_EXIT_FAIL, "tls-untrusted",
		    "verification stays on: add the server's CA "
		    "with --ca-bundle FILE",
		    "the TLS certificate of %s does not verify: %s", url, why);
	case CURLE_SSL_CERTPROBLEM:
		return ps_err_set(err, PS_EXIT_FAIL, "tls-client", NULL,
				  "cannot use the client certificate: %s", why);
	case CURLE_SSL_CONNECT_ERROR:
		if (strstr(why, "alert") || strstr(why, "certificate"))
			return ps_err_set(err, PS_EXIT_REFUSED, "tls-refused",
					  "the server did not accept the "
					  "current certificate for TLS client "
					  "authentication (expired, revoked or "
					  "from another CA?)",
					  "%s refused the TLS connection: %s",
					  url, why);
		/* fall through */
	default:
		return ps_err_set(err, PS_EXIT_TEMP, "unreachable",
				  "it is safe to run the command again later",
				  "cannot reach %s: %s", url, why);
	}
}

/* The transport every handle of h has: the protocols, TLS verified
 * against h's trust anchors (on_ssl_ctx), h's time-outs, no signals. */
static void transport(struct ps_http *h, CURL *c, const char *protocols,
		      char *errbuf)
{
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, protocols);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, h);
	/* The trust anchors are on_ssl_ctx's store, read once per h. Without
	 * this libcurl first reads its own CA file (the system's bundle) into
	 * each new SSL_CTX: about 0.1 s of CPU for every connection. */
	curl_easy_setopt(c, CURLOPT_CAINFO, NULL);
	curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, h->o.connect_timeout);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, h->o.timeout);
}

/* Sets c up for one request of h (the caller has reset it). */
static void setup(struct ps_http *h, CURL *c, const char *method,
		  const char *url, struct curl_slist *hl, const void *body,
		  size_t len, struct sink *sink, char *errbuf)
{
	errbuf[0] = '\0';
	curl_easy_setopt(c, CURLOPT_URL, url);
	transport(h, c, "https,http", errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, sink->r);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "psrenew");
	if (h->tls12)
		curl_easy_setopt(c, CURLOPT_SSLVERSION,
				 (long)CURL_SSLVERSION_TLSv1_2);
	if (h->o.follow) {
		curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
	}
	if (hl)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)len);
	}
	if (method && strcmp(method, body ? "POST" : "GET") != 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
}

/* The answer of a finished transfer into resp, or an exit status. */
static int finish(CURL *c, CURLcode rc, const struct sink *sink,
		  const char *errbuf, const char *url,
		  struct ps_http_resp *resp, struct ps_err *err)
{
	if (sink->too_big) {
		ps_http_resp_free(resp);
		return ps_err_set(err, PS_EXIT_FAIL, "http-too-big", NULL,
				  "the answer of %s is larger than 4 MiB", url);
	}
	if (rc != CURLE_OK) {
		ps_http_resp_free(resp);
		ERR_clear_error();
		return curl_failure(errbuf, rc, url, err);
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	if (!resp->body)
		resp->body = calloc(1, 1);
	return resp->body ? 0 : PS_EXIT_FAIL;
}

static struct curl_slist *header_list(const char *const *headers)
{
	struct curl_slist *hl = NULL;

	for (size_t i = 0; headers && headers[i]; i++)
		hl = curl_slist_append(hl, headers[i]);
	return hl;
}

int ps_http_request(struct ps_http *h, const char *method, const char *url,
		    const char *const *headers, const void *body, size_t len,
		    struct ps_http_resp *resp, struct ps_err *err)
{
	struct curl_slist *hl = header_list(headers);
	struct sink sink = { resp, 0, 0 };
	CURL *c = h->curl;
	CURLcode rc;

	memset(resp, 0, sizeof(*resp));
	resp->retry_after = -1;
	curl_easy_reset(c); /* keeps the connection cache */
	setup(h, c, method, url, hl, body, len, &sink, h->errbuf);
	/* The cookie engine, started once: the cookies survive
	 * curl_easy_reset. Not with CURLOPT_COOKIEFILE "": libcurl 7.88 queues
	 * the file name in a list that curl_easy_reset drops without freeing
	 * (curl issue 10694). A cookie line starts the engine as well, and the
	 * placeholder goes again at once. */
	if (h->o.cookies && !h->cookie_engine) {
		curl_easy_setopt(
		    c, CURLOPT_COOKIELIST,
		    "Set-Cookie: psrenew=0; domain=psrenew.invalid");
		curl_easy_setopt(c, CURLOPT_COOKIELIST, "ALL");
		h->cookie_engine = 1;
	}
	rc = curl_easy_perform(c);
	curl_slist_free_all(hl);
	return finish(c, rc, &sink, h->errbuf, url, resp, err);
}

/* One connection of ps_http_parallel and the job it carries. */
struct lane {
	CURL *c;
	struct ps_http_job *job;
	struct sink sink;
	struct curl_slist *hl;
	char errbuf[CURL_ERROR_SIZE];
};

static int lane_start(struct ps_http *h, CURLM *m, struct lane *l,
		      struct ps_http_job *j)
{
	memset(&j->resp, 0, sizeof(j->resp));
	j->resp.retry_after = -1;
	ps_err_clear(&j->err);
	l->job = j;
	l->sink = (struct sink){ &j->resp, 0, 0 };
	l->hl = header_list(j->headers);
	curl_easy_reset(l->c);
	setup(h, l->c, j->method, j->url, l->hl, j->body, j->len, &l->sink,
	      l->errbuf);
	/* The smallest upload buffer (16 KiB, not 64 KiB per lane): a
	 * batch's bodies are requests of a few KiB. */
	curl_easy_setopt(l->c, CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
	curl_easy_setopt(l->c, CURLOPT_PRIVATE, l);
	if (curl_multi_add_handle(m, l->c) != CURLM_OK) {
		curl_slist_free_all(l->hl);
		l->hl = NULL;
		l->job = NULL;
		j->rc = ps_err_set(&j->err, PS_EXIT_FAIL, "http", NULL,
				   "libcurl cannot start a request");
		if (j->done)
			j->done(j, j->arg);
		return -1;
	}
	return 0;
}

int ps_http_parallel(struct ps_http *h, struct ps_http_job *jobs, size_t n,
		     int lanes)
{
	size_t k = lanes < 1 ? 1 : (size_t)lanes, next = 0, running = 0;
	int broke = 0;
	struct lane *l;
	CURLM *m;

	if (n == 0)
		return 0;
	if (k > n)
		k = n;
	l = calloc(k, sizeof(*l));
	if (!h->multi)
		h->multi = curl_multi_init();
	m = h->multi;
	for (size_t i = 0; l && m && i < k; i++)
		if (!(l[i].c = curl_easy_init()))
			break;
	if (!l || !m || !l[k - 1].c) {
		for (size_t i = 0; l && i < k; i++)
			curl_easy_cleanup(l[i].c);
		free(l);
		return -1;
	}
	/* Every lane's connection stays in the cache after the batch (by
	 * default libcurl keeps 4 per easy handle still added, and closes
	 * the oldest as the last lanes finish). */
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)k);
	for (size_t i = 0; i < k && next < n; i++)
		if (lane_start(h, m, &l[i], &jobs[next++]) == 0)
			running++;
	while (running > 0) {
		int still = 0, left = 0;
		CURLMsg *msg;

		if (curl_multi_perform(m, &still) != CURLM_OK)
			break;
		while ((msg = curl_multi_info_read(m, &left))) {
			struct lane *ln = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&ln);
			curl_multi_remove_handle(m, ln->c);
			curl_slist_free_all(ln->hl);
			ln->hl = NULL;
			ln->job->rc = finish(ln->c, msg->data.result, &ln->sink,
					     ln->errbuf, ln->job->url,
					     &ln->job->resp, &ln->job->err);
			if (ln->job->done)
				ln->job->done(ln->job, ln->job->arg);
			ln->job = NULL;
			running--;
			/* The lane's connection stays in the multi handle's
			 * cache for its next job. */
			while (next < n && !ln->job)
				if (lane_start(h, m, ln, &jobs[next++]) == 0)
					running++;
		}
		if (running > 0 &&
		    curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
			break;
	}
	for (size_t i = 0; i < k; i++) {
		if (l[i].job) { /* the loop broke off */
			broke = 1;
			curl_multi_remove_handle(m, l[i].c);
			curl_slist_free_all(l[i].hl);
			l[i].job->rc =
			    ps_err_set(&l[i].job->err, PS_EXIT_TEMP, "http",
				       NULL, "libcurl stopped the transfer");
			if (l[i].job->done)
				l[i].job->done(l[i].job, l[i].job->arg);
		}
		curl_easy_cleanup(l[i].c);
	}
	/* Jobs never started (the loop broke off) say so. */
	for (; next < n; next++) {
		jobs[next].rc =
		    ps_err_set(&jobs[next].err, PS_EXIT_TEMP, "http", NULL,
			       "libcurl stopped before this request");
		if (jobs[next].done)
			jobs[next].done(&jobs[next], jobs[next].arg);
	}
	if (broke) { /* not kept: start afresh next time */
		curl_multi_cleanup(m);
		h->multi = NULL;
	}
	free(l);
	return 0;
}

struct upload {
	const char *p;
	size_t left;
};

static size_t on_read(char *buf, size_t size, size_t n, void *v)
{
	struct upload *u = v;
	size_t len = size * n < u->left ? size * n : u->left;

	memcpy(buf, u->p, len);
	u->p += len;
	u->left -= len;
	return len;
}

int ps_http_get(const struct ps_http_opts *o, const char *url, size_t max,
		unsigned char **buf, size_t *len, struct ps_err *err)
{
	struct ps_http_opts go = *o;
	struct ps_http_resp r = { 0 };
	struct ps_http *h;
	int rc;

	*buf = NULL;
	*len = 0;
	go.follow = 1;
	rc = ps_http_new(&go, &h, err);
	if (rc)
		return rc;
	rc = ps_http_request(h, "GET", url, NULL, NULL, 0, &r, err);
	ps_http_free(h);
	if (rc)
		return rc;
	if (r.status >= 500)
		rc = ps_err_set(err, PS_EXIT_TEMP, "unreachable",
				"try again later", "%s answered HTTP %ld", url,
				r.status);
	else if (r.status < 200 || r.status > 299)
		rc = ps_err_set(err, PS_EXIT_FAIL, "http", "check the URL",
				"%s answered HTTP %ld", url, r.status);
	else if (r.len > max)
		rc = ps_err_set(err, PS_EXIT_FAIL, "http-too-big", NULL,
				"%s sent more than %zu bytes", url, max);
	if (!rc) {
		*buf = malloc(r.len + 1);
		if (!*buf)
			rc = ps_err_nomem(err);
	}
	if (!rc) {
		memcpy(*buf, r.body ? r.body : "", r.len);
		*len = r.len;
	}
	ps_http_resp_free(&r);
	return rc;
}

int ps_smtp_send(const struct ps_http_opts *o, const char *url,
		 const char *from, const char *rcpt, const char *msg,
		 size_t len, const char *user, const char *pass,
		 int tls_required, struct ps_err *err)
{
	struct ps_http *h;
	struct curl_slist *rcpts = NULL;
	struct upload up = { msg, len };
	long code = 0;
	CURLcode rc;
	int st = ps_http_new(o, &h, err);

	if (st)
		return st;
	rcpts = curl_slist_append(NULL, rcpt);
	curl_easy_setopt(h->curl, CURLOPT_URL, url);
	curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(h->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h->curl, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	curl_easy_setopt(h->curl, CURLOPT_SSL_CTX_DATA, h);
	curl_easy_setopt(h->curl, CURLOPT_USE_SSL,
			 tls_required || user ? (long)CURLUSESSL_ALL
					      : (long)CURLUSESSL_TRY);
	curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT, h->o.connect_timeout);
	curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, h->o.timeout);
	curl_easy_setopt(h->curl, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(h->curl, CURLOPT_MAIL_RCPT, rcpts);
	curl_easy_setopt(h->curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h->curl, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(h->curl, CURLOPT_READDATA, &up);
	curl_easy_setopt(h->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	if (user) {
		curl_easy_setopt(h->curl, CURLOPT_USERNAME, user);
		curl_easy_setopt(h->curl, CURLOPT_PASSWORD, pass ? pass : "");
	}
	h->errbuf[0] = '\0';
	rc = curl_easy_perform(h->curl);
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &code);
	/* libcurl keeps a copy of the password: gone with the handle. */
	curl_slist_free_all(rcpts);
	if (rc == CURLE_OK) {
		ps_http_free(h);
		return 0;
	}
	if (rc == CURLE_LOGIN_DENIED || (code >= 500 && code < 600))
		st = ps_err_set(
		    err, PS_EXIT_REFUSED, "smtp-refused",
		    "check the login (smtp-user, smtp-pass) and the "
		    "address in psrenew.conf",
		    "the mail server %s refused the message: %s "
		    "(reply %ld)",
		    url, h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc),
		    code);
	else if (code >= 400 && code < 500)
		st = ps_err_set(
		    err, PS_EXIT_TEMP, "smtp-tempfail",
		    "it is safe to send again later",
		    "the mail server %s said to try later: %s "
		    "(reply %ld)",
		    url, h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc),
		    code);
	else
		st = curl_failure(h->errbuf, rc, url, err);
	ps_http_free(h);
	return st;
}

void *ps_http_handle(struct ps_http *h, const char *protocols)
{
	CURL *c = h->curl;

	h->errbuf[0] = '\0';
	transport(h, c, protocols, h->errbuf);
	return c;
}

int ps_http_failed(struct ps_http *h, int rc, const char *url,
		   struct ps_err *err)
{
	return curl_failure(h->errbuf, (CURLcode)rc, url, err);
}

const char *ps_http_errtext(const struct ps_http *h)
{
	return h->errbuf;
}

/* psrenew: the "est://" channel: RFC 7030 simplereenroll over TLS
 * authenticated by the current certificate's key on the token.
 *   est://HOST[:PORT][/LABEL] -> https://HOST:PORT/.well-known/est[/LABEL]/
 * 200 with a PKCS#7 certs-only: issued; 202 with Retry-After: pending (the
 * same request is sent again when due, as RFC 7030 says); 4xx: rejected;
 * 5xx: temporarily unavailable. */
#include <psrenew/ca_driver.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <psrenew/certio.h>
#include <psrenew/http.h>
#include <psrenew/signer.h>
#include <psrenew/codec.h>

struct est {
	char *base; /* https://host:port/.well-known/est[/label] */
	/* The connection of the last client certificate, kept so that polls
	 * of a batch for the same certificate reuse one TLS session. */
	struct ps_http *h;
	X509 *cert;
	EVP_PKEY *key;
};

static void drop_conn(struct est *e)
{
	ps_http_free(e->h);
	X509_free(e->cert);
	EVP_PKEY_free(e->key);
	e->h = NULL;
	e->cert = NULL;
	e->key = NULL;
}

/* A connection authenticated by cert (and its key on the token). */
static int conn_for(struct ps_ca *ca, struct est *e,
		    const struct ps_ca_request *req, struct ps_err *err)
{
	struct ps_http_opts o = { .ca_bundle = ca->ca_bundle,
				  .timeout = ca->timeout };
	int rc;

	if (e->h && X509_cmp(e->cert, req->old_cert) == 0)
		return 0;
	drop_conn(e);
	rc = ps_signer_key(req->tok, req->old_key_id, req->old_key_id_len,
			   &e->key, err);
	if (rc)
		return rc;
	e->cert = req->old_cert;
	X509_up_ref(e->cert);
	o.client_cert = e->cert;
	o.client_key = e->key;
	rc = ps_http_new(&o, &e->h, err);
	if (rc)
		drop_conn(e);
	return rc;
}

static int est_open(struct ps_ca *ca, const char *rest, struct ps_err *err)
{
	struct est *e = calloc(1, sizeof(*e));
	const char *slash;
	size_t hostlen;

	/* rest is "//HOST[:PORT][/LABEL]" */
	if (!e)
		return ps_err_nomem(err);
	if (strncmp(rest, "//", 2) != 0 || !rest[2] || strchr(rest, '?') ||
	    strchr(rest, '#') || strchr(rest, ' ')) {
		free(e);
		return ps_err_set(err, PS_EXIT_USAGE, "bad-ca",
				  "write it as est://HOST[:PORT][/LABEL]",
				  "cannot parse the EST channel 'est:%.80s'",
				  rest);
	}
	rest += 2;
	slash = strchr(rest, '/');
	hostlen = slash ? (size_t)(slash - rest) : strlen(rest);
	if (hostlen == 0 || (slash && (!slash[1] || strchr(slash + 1, '/'))) ||
	    asprintf(&e->base, "https://%.*s/.well-known/est%s%s", (int)hostlen,
		     rest, slash ? "/" : "", slash ? slash + 1 : "") < 0) {
		free(e);
		return ps_err_set(err, PS_EXIT_USAGE, "bad-ca",
				  "write it as est://HOST[:PORT][/LABEL]",
				  "cannot parse the EST channel");
	}
	ca->priv = e;
	return 0;
}

static void est_close(struct ps_ca *ca)
{
	struct est *e = ca->priv;

	if (e) {
		drop_conn(e);
		free(e->base);
		free(e);
	}
}

/* The body of a 200: base64 of a DER PKCS#7 certs-only. */
static int certs_from_body(const struct ps_http_resp *r,
			   struct ps_ca_reply *reply)
{
	unsigned char *der = NULL;
	size_t len = 0;
	STACK_OF(X509) *certs = NULL;
	BIO *b = NULL;
	char *data;
	long n;
	int rc = -1;

	if (ps_base64_decode(r->body, r->len, &der, &len) == 0 &&
	    ps_certs_parse(der, len, &certs, NULL) == 0)
		b = BIO_new(BIO_s_mem());
	if (b) {
		for (int i = 0; i < sk_X509_num(certs); i++)
			PEM_write_bio_X509(b, sk_X509_value(certs, i));
		n = BIO_get_mem_data(b, &data);
		reply->certs_pem = strndup(data, (size_t)n);
		rc = reply->certs_pem ? 0 : -1;
	}
	BIO_free(b);
	sk_X509_pop_free(certs, X509_free);
	free(der);
	return rc;
}

static char *message(const struct ps_http_resp *r)
{
	char *m = NULL;
	size_t n = r->len > 300 ? 300 : r->len;

	if (asprintf(&m, "HTTP %ld: %.*s", r->status, (int)n,
		     r->body ? r->body : "") < 0)
		return NULL;
	for (char *p = m; *p; p++)
		if (*p == '\n' || *p == '\r' || (unsigned char)*p < 0x20)
			*p = ' ';
	return m;
}

static int map(const struct ps_http_resp *r, struct ps_ca_reply *reply)
{
	if (r->status == 200) {
		if (certs_from_body(r, reply) == 0) {
			reply->status = PS_CA_ISSUED;
			return 0;
		}
		reply->status = PS_CA_FAILED;
		reply->message = strdup("the EST server answered 200 without a "
					"PKCS#7 certificate");
	} else if (r->status == 202) {
		reply->status = PS_CA_PENDING;
		reply->delay = r->retry_after >= 0 ? r->retry_after : 60;
		reply->cookie = strdup("simplereenroll");
	} else if (r->status >= 500 || r->status == 429) {
		reply->status = PS_CA_UNREACHABLE;
		reply->delay = r->retry_after;
		reply->message = message(r);
	} else {
		reply->status = PS_CA_REJECTED;
		reply->message = message(r);
	}
	return 0;
}

/* The body of a simplereenroll: base64 of the request's DER. The PEM is
 * only unwrapped, down to one DER SEQUENCE: the request is the one
 * ps-renew made and verified, and decoding it as an X509_REQ (its public
 * key through OpenSSL's decoders) cost more than the rest of a poll. */
static char *csr_body(const char *csr_pem)
{
	BIO *b = csr_pem ? BIO_new_mem_buf(csr_pem, -1) : NULL;
	char *name = NULL, *header = NULL, *b64 = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	long len = 0, clen;
	int tag, cls;

	if (b && PEM_read_bio(b, &name, &header, &der, &len) == 1 &&
	    (!strcmp(name, PEM_STRING_X509_REQ) ||
	     !strcmp(name, PEM_STRING_X509_REQ_OLD)) &&
	    !header[0] && len > 0) {
		p = der;
		if (!(ASN1_get_object(&p, &clen, &tag, &cls, len) & 0x80) &&
		    tag == V_ASN1_SEQUENCE && cls == V_ASN1_UNIVERSAL &&
		    p + clen == der + len)
			b64 = ps_base64_encode(der, (size_t)len);
	}
	BIO_free(b);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(der);
	if (!b64)
		ERR_clear_error(); /* PEM_read_bio's "no start line" */
	return b64;
}

static int est_submit(struct ps_ca *ca, const struct ps_ca_request *req,
		      struct ps_ca_reply *reply, struct ps_err *err)
{
	struct est *e = ca->priv;
	const char *hdr[] = { "Content-Type: application/pkcs10",
			      "Content-Transfer-Encoding: base64", NULL };
	struct ps_http_resp r = { 0 };
	char *b64 = NULL, *url = NULL;
	int rc;

	if (!req->tok || !req->old_cert || !req->old_key_id)
		return ps_err_set(err, PS_EXIT_FAIL, "est", NULL,
				  "EST needs the current certificate and its "
				  "key on the token");
	b64 = csr_body(req->csr_pem);
	if (!b64 || asprintf(&url, "%s/simplereenroll", e->base) < 0) {
		free(b64);
		return ps_err_set(err, PS_EXIT_FAIL, "est", NULL,
				  "cannot encode the certificate request");
	}
	rc = conn_for(ca, e, req, err);
	if (!rc)
		rc = ps_http_request(e->h, "POST", url, hdr, b64, strlen(b64),
				     &r, err);
	if (!rc) {
		rc = map(&r, reply);
		ps_http_resp_free(&r);
	} else if (rc == PS_EXIT_TEMP) {
		/* Down or unreachable: an answer too, not an error. */
		reply->status = PS_CA_UNREACHABLE;
		reply->message = strdup(err->msg);
		rc = 0;
	} else if (rc == PS_EXIT_REFUSED) {
		reply->status = PS_CA_REJECTED;
		reply->message = strdup(err->msg);
		rc = 0;
	}
	if (rc)
		drop_conn(e); /* no answer: start afresh next time */
	free(b64);
	free(url);
	return rc;
}

/* Every certificate of sk must be a CA certificate that verifies to a
 * trust anchor (the bundle, else the system's store), the others of sk
 * helping as intermediates. */
static int check_cacerts(struct ps_ca *ca, STACK_OF(X509) * sk,
			 struct ps_err *err)
{
	X509_STORE *ts = X509_STORE_new();
	X509_STORE_CTX *sc = X509_STORE_CTX_new();
	int rc = 0, ok;

	ok = ts && sc &&
	     (ca->ca_bundle ? X509_STORE_load_file(ts, ca->ca_bundle)
			    : X509_STORE_set_default_paths(ts)) == 1;
	if (!ok)
		rc = ps_err_set(err, PS_EXIT_USAGE, "est",
				"--ca-bundle takes a PEM file of CA "
				"certificates",
				"cannot load the trust anchors to check the "
				"CA certificates");
	for (int i = 0; !rc && i < sk_X509_num(sk); i++) {
		X509 *x = sk_X509_value(sk, i);
		char name[256];

		X509_NAME_oneline(X509_get_subject_name(x), name, sizeof(name));
		if (X509_check_ca(x) < 1) {
			rc = ps_err_set(err, PS_EXIT_FAIL, "est", NULL,
					"the EST server's /cacerts holds %s, "
					"which is not a CA certificate",
					name);
			break;
		}
		if (!X509_STORE_CTX_init(sc, ts, x, sk) ||
		    X509_verify_cert(sc) != 1) {
			rc = ps_err_set(
			    err, PS_EXIT_FAIL, "est",
			    "add the CA's root to --ca-bundle once you have "
			    "checked it by other means (RFC 7030 4.1.1)",
			    "the CA certificate %s from /cacerts does not "
			    "verify: %s",
			    name,
			    X509_verify_cert_error_string(
				X509_STORE_CTX_get_error(sc)));
		}
		X509_STORE_CTX_cleanup(sc);
	}
	X509_STORE_CTX_free(sc);
	X509_STORE_free(ts);
	return rc;
}

static int est_cacerts(struct ps_ca *ca, char **pem, struct ps_err *err)
{
	struct est *e = ca->priv;
	struct ps_http_opts o = { .ca_bundle = ca->ca_bundle,
				  .timeout = ca->timeout };
	struct ps_http *h = NULL;
	struct ps_http_resp r = { 0 };
	struct ps_ca_reply reply = { 0 };
	unsigned char *der = NULL;
	size_t len = 0;
	STACK_OF(X509) *certs = NULL;
	char *url = NULL;
	int rc;

	if (asprintf(&url, "%s/cacerts", e->base) < 0)
		return ps_err_nomem(err);
	/* No client certificate: /cacerts is public (RFC 7030 4.1). */
	rc = ps_http_new(&o, &h, err);
	if (!rc)
		rc = ps_http_request(h, "GET", url, NULL, NULL, 0, &r, err);
	if (!rc && r.status != 200) {
		char *m = message(&r);

		rc = ps_err_set(err,
				r.status >= 500 ? PS_EXIT_TEMP : PS_EXIT_FAIL,
				"est", NULL, "GET %s: %s", url, m ? m : "?");
		free(m);
	}
	if (!rc &&
	    (ps_base64_decode(r.body, r.len, &der, &len) ||
	     ps_certs_parse(der, len, &certs, NULL) || sk_X509_num(certs) < 1))
		rc = ps_err_set(err, PS_EXIT_FAIL, "est", NULL,
				"GET %s: not a PKCS#7 with certificates", url);
	if (!rc)
		rc = check_cacerts(ca, certs, err);
	if (!rc && (certs_from_body(&r, &reply) || !reply.certs_pem))
		rc = ps_err_nomem(err);
	if (!rc) {
		*pem = reply.certs_pem;
		reply.certs_pem = NULL;
	}
	ps_ca_reply_free(&reply);
	sk_X509_pop_free(certs, X509_free);
	free(der);
	ps_http_resp_free(&r);
	ps_http_free(h);
	free(url);
	return rc;
}

/* The polls of one client certificate and where their answers go. */
struct group {
	struct ps_http_job *jobs;
	const size_t *idx;
	struct ps_ca_reply *replies;
	int *rcs;
	struct ps_err *errs;
	char *settled;
	int sent; /* the connection was there: the jobs went out */
	int lost; /* a job without an answer: drop the connection */
	void (*answered)(size_t i, void *ctx);
	void *ctx;
};

/* jobs[k]'s outcome into replies, rcs and errs[idx[k]], once; then
 * answered is told. */
static void settle(struct group *g, size_t k)
{
	struct ps_http_job *j = &g->jobs[k];
	size_t i = g->idx[k];
	struct ps_ca_reply *reply = &g->replies[i];

	if (g->settled[k])
		return;
	g->settled[k] = 1;
	/* A request that could not be encoded went without a body: its
	 * answer is not used. */
	if (g->sent && j->body) {
		g->rcs[i] = j->rc;
		g->errs[i] = j->err;
		if (!j->rc) {
			g->rcs[i] = map(&j->resp, reply);
		} else if (j->rc == PS_EXIT_TEMP) {
			reply->status = PS_CA_UNREACHABLE;
			reply->message = strdup(j->err.msg);
			g->rcs[i] = 0;
		} else if (j->rc == PS_EXIT_REFUSED) {
			reply->status = PS_CA_REJECTED;
			reply->message = strdup(j->err.msg);
			g->rcs[i] = 0;
		} else {
			g->lost = 1;
		}
		ps_http_resp_free(&j->resp);
	}
	if (g->answered)
		g->answered(i, g->ctx);
}

static void job_done(struct ps_http_job *j, void *arg)
{
	struct group *g = arg;

	settle(g, (size_t)(j - g->jobs));
}

/* The polls of reqs[idx[0..m-1]], all for one client certificate, over
 * the connections of lanes; each answer is settled as it comes. */
static void poll_group(struct ps_ca *ca, struct est *e,
		       const struct ps_ca_request *reqs, const size_t *idx,
		       size_t m, int lanes, struct ps_ca_reply *replies,
		       int *rcs, struct ps_err *errs,
		       void (*answered)(size_t i, void *ctx), void *ctx)
{
	static const char *const hdr[] = { "Content-Type: application/pkcs10",
					   "Content-Transfer-Encoding: base64",
					   NULL };
	struct group g = { .jobs = calloc(m, sizeof(*g.jobs)),
			   .idx = idx,
			   .replies = replies,
			   .rcs = rcs,
			   .errs = errs,
			   .settled = calloc(m, 1),
			   .answered = answered,
			   .ctx = ctx };
	char *url = NULL;
	int rc;

	if (!g.jobs || !g.settled ||
	    asprintf(&url, "%s/simplereenroll", e->base) < 0) {
		for (size_t k = 0; k < m; k++) {
			rcs[idx[k]] = ps_err_nomem(&errs[idx[k]]);
			if (answered)
				answered(idx[k], ctx);
		}
		free(g.jobs);
		free(g.settled);
		return;
	}
	rc = conn_for(ca, e, &reqs[idx[0]], &errs[idx[0]]);
	g.sent = !rc;
	for (size_t k = 0; k < m; k++) {
		struct ps_http_job *j = &g.jobs[k];

		j->method = "POST";
		j->url = url;
		j->headers = hdr;
		j->body = csr_body(reqs[idx[k]].csr_pem);
		j->len = j->body ? strlen(j->body) : 0;
		j->done = job_done;
		j->arg = &g;
		if (rc) {
			errs[idx[k]] = errs[idx[0]];
			rcs[idx[k]] = rc;
		} else if (!j->body) {
			rcs[idx[k]] =
			    ps_err_set(&errs[idx[k]], PS_EXIT_FAIL, "est", NULL,
				       "cannot encode the certificate request");
		}
	}
	if (!rc && ps_http_parallel(e->h, g.jobs, m, lanes) < 0)
		for (size_t k = 0; k < m; k++)
			g.jobs[k].rc = ps_err_nomem(&g.jobs[k].err);
	for (size_t k = 0; k < m; k++)
		settle(&g, k); /* those not settled yet (none went out) */
	if (rc || g.lost)
		drop_conn(e); /* no answer: start afresh next time */
	for (size_t k = 0; k < m; k++)
		free((void *)g.jobs[k].body);
	free(g.jobs);
	free(g.settled);
	free(url);
}

/* The driver's poll_many: the polls of one client certificate together,
 * over the connections of lanes (ps_ca_poll_many, lib/ca.c). */
static void est_poll_many(struct ps_ca *ca, const struct ps_ca_request *reqs,
			  size_t n, int lanes, struct ps_ca_reply *replies,
			  int *rcs, struct ps_err *errs,
			  void (*answered)(size_t i, void *ctx), void *ctx)
{
	struct est *e = ca->priv;
	size_t *idx = calloc(n ? n : 1, sizeof(*idx));
	char *done = calloc(n ? n : 1, 1);

	for (size_t i = 0; i < n && (!idx || !done); i++) {
		rcs[i] = ps_err_nomem(&errs[i]);
		if (answered)
			answered(i, ctx);
	}
	for (size_t i = 0; idx && done && i < n; i++) {
		size_t m = 0;

		if (done[i])
			continue;
		if (!reqs[i].tok || !reqs[i].old_cert || !reqs[i].old_key_id) {
			done[i] = 1;
			rcs[i] = ps_err_set(&errs[i], PS_EXIT_FAIL, "est", NULL,
					    "EST needs the current certificate "
					    "and its key on the token");
			if (answered)
				answered(i, ctx);
			continue;
		}
		/* Every request for the same client certificate. */
		for (size_t j = i; j < n; j++)
			if (!done[j] && reqs[j].tok && reqs[j].old_cert &&
			    reqs[j].old_key_id &&
			    X509_cmp(reqs[j].old_cert, reqs[i].old_cert) == 0) {
				done[j] = 1;
				idx[m++] = j;
			}
		poll_group(ca, e, reqs, idx, m, lanes, replies, rcs, errs,
			   answered, ctx);
	}
	free(idx);
	free(done);
}

static void est_idle(struct ps_ca *ca)
{
	if (ca->priv)
		drop_conn(ca->priv);
}

const struct ps_ca_driver ps_ca_est_driver = {
	.idle = est_idle,
	.prefix = "est:",
	.needs_token = 1,
	.poll_needs_token = 1,
	.open = est_open,
	.submit = est_submit,
	.poll = est_submit, /* RFC 7030: the same request, sent again */
	.poll_many = est_poll_many,
	.close = est_close,
	.cacerts = est_cacerts,
};

/* psrenew: the "cmp:" channel: a CMP key update request (RFC 4210/9480,
 * kur) protected by a signature of the current certificate's key on the
 * token, with proof of possession by the new key on the token, carried by
 * HTTP (RFC 6712) through the one libcurl wrapper.
 *   cmp://HOST[:PORT]/PATH   -> http://HOST[:PORT]/PATH
 *   cmp:https://HOST[:PORT]/PATH (or --ca-type cmp with https://...)
 *
 * Waiting across processes. OpenSSL 3.0's client keeps the transaction's
 * nonces inside OSSL_CMP_CTX and has no setter for the recipient nonce, so
 * a new process cannot simply continue. What it can do is reach the same
 * state the first process had: the cookie of a pending request holds the
 * CA's own protected answers of the transaction (the kup that said
 * "waiting", and the last pollRep). A later process starts the same
 * transaction (same transactionID), and its transfer callback hands those
 * answers back instead of sending the kur and the first pollReq, each after
 * setting the context's sender nonce to the one that answer acknowledges
 * (its recipNonce). OpenSSL validates them as it validated them the first
 * time (protection by the CA, transactionID, nonces) and so learns the
 * CA's last sender nonce. The next pollReq goes to the CA for real, with
 * the right recipNonce, and the transaction ends normally with certConf.
 */
#include <psrenew/ca_driver.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/cmp.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <psrenew/certio.h>
#include <psrenew/http.h>
#include <psrenew/keypair.h>
#include <psrenew/signer.h>
#include <psrenew/codec.h>

/* PKIBody choice numbers of RFC 4210 (OpenSSL 3.0 keeps its names for
 * them internal; OSSL_CMP_KUR is public). */
enum {
	BODY_IP = 1,
	BODY_CP = 3,
	BODY_KUP = 8,
	BODY_ERROR = 23,
	BODY_POLLREP = 26
};

#define CMP_COOKIE_PREFIX "cmp1:"
#define CMP_MSG_MAX	  (256 * 1024)

struct cmp {
	char *url;
	struct ps_http *h;
	/* The trust anchors and the untrusted chain, read once and shared
	 * read-only by every exchange (and thread) of this channel; NULL
	 * until read, or when each exchange must read its own. */
	X509_STORE *ts;
	STACK_OF(X509) * chain;
	int trust_read; /* ts and chain were tried */
};

/* One replayed answer: the DER of a message the CA sent. */
struct saved {
	unsigned char *der;
	size_t len;
};

/* The transfer callback's state for one operation. */
struct xfer {
	struct ps_ca *ca;
	struct cmp *c;
	struct saved replay[2]; /* handed back in order, then live */
	OSSL_CMP_MSG *first;	/* replay[0], decoded already */
	int nreplay, ireplay;
	struct saved last_rep;	/* the CA's certificate response ... */
	struct saved last_poll; /* ... and its last pollRep */
	int live;		/* requests really sent */
	int last_bt;		/* the body type of the last live answer */
	int rc;			/* an exit status when no answer came */
	char errmsg[600];
	char hint[600];
	char log[300]; /* OpenSSL's last CMP error line */
};

static void saved_free(struct saved *s)
{
	OPENSSL_free(s->der);
	s->der = NULL;
	s->len = 0;
}

static int msg_to_saved(const OSSL_CMP_MSG *m, struct saved *s)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;

	saved_free(s);
	if (!b || i2d_OSSL_CMP_MSG_bio(b, m) <= 0 ||
	    (n = BIO_get_mem_data(b, &data)) <= 0 ||
	    !(s->der = OPENSSL_memdup(data, (size_t)n))) {
		BIO_free(b);
		return -1;
	}
	s->len = (size_t)n;
	BIO_free(b);
	return 0;
}

/* Where a PKIMessage's extraCerts ([1], after the protection: RFC 4210,
 * 5.1) start in its DER, and the length of what comes before them (the
 * SEQUENCE's content); 0 when it has none or cannot be read. */
static int extra_certs_at(const struct saved *s, size_t *at, size_t *content)
{
	const unsigned char *p = s->der, *body, *q;
	long len, elen;
	int tag, cls;

	if (!p || s->len > CMP_MSG_MAX ||
	    ASN1_get_object(&p, &len, &tag, &cls, (long)s->len) != 0x20 ||
	    tag != V_ASN1_SEQUENCE)
		return 0;
	for (body = p; p < body + len; p += elen) {
		q = p;
		if (ASN1_get_object(&q, &elen, &tag, &cls, body + len - p) !=
		    0x20)
			return 0;
		elen += q - p;
		if (cls == V_ASN1_CONTEXT_SPECIFIC && tag == 1 &&
		    p + elen == body + len) {
			*at = (size_t)(p - s->der);
			*content = (size_t)(p - body);
			return 1;
		}
	}
	return 0;
}

/* A later message of a transaction without its extraCerts: they are
 * outside the protection, and OpenSSL's client keeps those the kup brought
 * for the rest of the transaction (so does the kup stored before it).
 * Each poll then decodes the CA's certificates once, not twice. */
static void drop_extra_certs(struct saved *s, const struct saved *kup)
{
	size_t at, content, kat, kcontent, n;
	unsigned char *der, *p;

	if (!extra_certs_at(kup, &kat, &kcontent) ||
	    !extra_certs_at(s, &at, &content))
		return;
	n = (size_t)ASN1_object_size(1, (int)content, V_ASN1_SEQUENCE);
	der = OPENSSL_malloc(n);
	if (!der)
		return;
	p = der;
	ASN1_put_object(&p, 1, (int)content, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
	memcpy(p, s->der + at - content, content);
	OPENSSL_free(s->der);
	s->der = der;
	s->len = n;
}

static OSSL_CMP_MSG *msg_from_der(const unsigned char *der, size_t len)
{
	BIO *b = BIO_new_mem_buf(der, (int)len);
	OSSL_CMP_MSG *m = b ? d2i_OSSL_CMP_MSG_bio(b, NULL) : NULL;

	BIO_free(b);
	return m;
}

static int is_cert_rep(int bt)
{
	return bt == BODY_IP || bt == BODY_CP || bt == BODY_KUP;
}

static OSSL_CMP_MSG *transfer(OSSL_CMP_CTX *ctx, const OSSL_CMP_MSG *req)
{
	struct xfer *x = OSSL_CMP_CTX_get_transfer_cb_arg(ctx);
	const char *hdr[] = { "Content-Type: application/pkixcmp", NULL };
	struct ps_http_resp r = { 0 };
	struct ps_err err = { 0 };
	OSSL_CMP_MSG *rep = NULL;
	ASN1_OCTET_STRING *nonce;
	BIO *b;
	char *data;
	long n;
	int bt, rc;

	(void)req;
	if (x->ireplay < x->nreplay) {
		struct saved *s = &x->replay[x->ireplay++];

		rep = x->ireplay == 1 && x->first
			  ? x->first
			  : msg_from_der(s->der, s->len);
		x->first = NULL;
		nonce = rep ? OSSL_CMP_HDR_get0_recipNonce(
				  OSSL_CMP_MSG_get0_header(rep))
			    : NULL;
		/* The answer acknowledges the nonce of the request the first
		 * process sent; make it the one this context expects. */
		/* What is answered from the store is never sent: only the
		 * first live request needs the token's signature. */
		if (x->ireplay == x->nreplay)
			OSSL_CMP_CTX_set_option(
			    ctx, OSSL_CMP_OPT_UNPROTECTED_SEND, 0);
		if (!nonce || !OSSL_CMP_CTX_set1_senderNonce(ctx, nonce)) {
			OSSL_CMP_MSG_free(rep);
			x->rc = PS_EXIT_FAIL;
			snprintf(x->errmsg, sizeof(x->errmsg),
				 "the stored CMP transaction is damaged");
			return NULL;
		}
		return rep;
	}
	x->live++;
	b = BIO_new(BIO_s_mem());
	if (!b || i2d_OSSL_CMP_MSG_bio(b, req) <= 0 ||
	    (n = BIO_get_mem_data(b, &data)) <= 0) {
		BIO_free(b);
		x->rc = PS_EXIT_FAIL;
		snprintf(x->errmsg, sizeof(x->errmsg),
			 "cannot encode the CMP request");
		return NULL;
	}
	rc = ps_http_request(x->c->h, "POST", x->c->url, hdr, data, (size_t)n,
			     &r, &err);
	BIO_free(b);
	if (rc) {
		x->rc = rc;
		snprintf(x->errmsg, sizeof(x->errmsg), "%s", err.msg);
		snprintf(x->hint, sizeof(x->hint), "%s", err.hint);
		return NULL;
	}
	if (r.status != 200) {
		int i = 0;

		x->rc = r.status >= 500 || r.status == 429 ? PS_EXIT_TEMP
							   : PS_EXIT_FAIL;
		i = snprintf(x->errmsg, sizeof(x->errmsg),
			     "the CMP server answered HTTP %ld: ", r.status);
		for (size_t k = 0; r.body && k < r.len && k < 200 && i >= 0 &&
				   (size_t)i + 1 < sizeof(x->errmsg);
		     k++)
			x->errmsg[i++] =
			    (unsigned char)r.body[k] < 0x20 ? ' ' : r.body[k];
		if (i >= 0 && (size_t)i < sizeof(x->errmsg))
			x->errmsg[i] = 0;
		ps_http_resp_free(&r);
		return NULL;
	}
	rep = r.len > 0 && r.len <= CMP_MSG_MAX
		  ? msg_from_der((const unsigned char *)r.body, r.len)
		  : NULL;
	ps_http_resp_free(&r);
	if (!rep) {
		x->rc = PS_EXIT_FAIL;
		snprintf(x->errmsg, sizeof(x->errmsg),
			 "the CMP server's answer is not a CMP message");
		return NULL;
	}
	/* Keep what a later process needs to come back to this point. */
	bt = OSSL_CMP_MSG_get_bodytype(rep);
	x->last_bt = bt;
	if (is_cert_rep(bt)) {
		msg_to_saved(rep, &x->last_rep);
		saved_free(&x->last_poll);
	} else if (bt == BODY_POLLREP) {
		msg_to_saved(rep, &x->last_poll);
		drop_extra_certs(&x->last_poll, x->last_rep.der
						    ? &x->last_rep
						    : &x->replay[0]);
	}
	return rep;
}

static int log_cb(const char *func, const char *file, int line,
		  OSSL_CMP_severity level, const char *msg)
{
	(void)func;
	(void)file;
	(void)line;
	(void)level;
	(void)msg;
	return 1; /* errors are taken from the error queue */
}

static const char *const fail_names[] = {
	"badAlg",
	"badMessageCheck",
	"badRequest",
	"badTime",
	"badCertId",
	"badDataFormat",
	"wrongAuthority",
	"incorrectData",
	"missingTimeStamp",
	"badPOP",
	"certRevoked",
	"certConfirmed",
	"wrongIntegrity",
	"badRecipientNonce",
	"timeNotAvailable",
	"unacceptedPolicy",
	"unacceptedExtension",
	"addInfoNotAvailable",
	"badSenderNonce",
	"badCertTemplate",
	"signerNotTrusted",
	"transactionIdInUse",
	"unsupportedVersion",
	"notAuthorized",
	"systemUnavail",
	"failedDuringProcessing",
	"duplicateCertReq",
};

/* "badPOP,badCertTemplate", or NULL when no bit is set. */
static char *fail_info_names(int bits)
{
	char buf[600] = "";
	size_t n = 0;

	for (size_t i = 0; i < sizeof(fail_names) / sizeof(*fail_names); i++)
		if (bits & (1 << i)) {
			int w = snprintf(buf + n, sizeof(buf) - n, "%s%s",
					 n ? "," : "", fail_names[i]);

			if (w < 0 || (size_t)w >= sizeof(buf) - n)
				break;
			n += (size_t)w;
		}
	return n ? strdup(buf) : NULL;
}

static char *status_text(OSSL_CMP_CTX *ctx)
{
	OSSL_CMP_PKIFREETEXT *ft = OSSL_CMP_CTX_get0_statusString(ctx);
	char buf[400] = "";
	size_t n = 0;

	for (int i = 0; i < sk_ASN1_UTF8STRING_num(ft); i++) {
		ASN1_UTF8STRING *s = sk_ASN1_UTF8STRING_value(ft, i);
		int w = snprintf(buf + n, sizeof(buf) - n, "%s%.*s",
				 n ? "; " : "", ASN1_STRING_length(s),
				 (const char *)ASN1_STRING_get0_data(s));

		if (w < 0 || (size_t)w >= sizeof(buf) - n)
			break;
		n += (size_t)w;
	}
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	return strdup(n ? buf : "no reason given");
}

/* The last OpenSSL error, for people. */
/* OpenSSL's error queue in words, the first error (the cause) first:
 * "reason (data); reason; ...", each reason once. */
static void ossl_error(char *buf, size_t len)
{
	unsigned long e;
	const char *d, *why;
	size_t used = 0;
	int flags;

	if (len)
		buf[0] = '\0';
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &d, &flags)) != 0) {
		char one[512];
		int n;

		why = ERR_reason_error_string(e);
		if (!why)
			why = "unknown OpenSSL error";
		if ((flags & ERR_TXT_STRING) && d && *d)
			snprintf(one, sizeof(one), "%s (%s)", why, d);
		else
			snprintf(one, sizeof(one), "%s", why);
		if (strstr(buf, one) || used + 3 >= len)
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? "; " : "",
			     one);
		if (n > 0)
			used =
			    (size_t)n + used < len ? used + (size_t)n : len - 1;
	}
}

static STACK_OF(X509) * bundle_certs(const char *file)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = file ? BIO_new_file(file, "r") : NULL;
	X509 *x;

	while (b && sk && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		if (!sk_X509_push(sk, x))
			X509_free(x);
	ERR_clear_error();
	BIO_free(b);
	return sk;
}

/* The trust anchors (a store) and the untrusted certificates OpenSSL's
 * CMP client builds the CA's chain from. *shareable: 1 when the store is
 * all in memory (read from a file), so that threads can share it. */
static int trust_new(struct ps_ca *ca, X509_STORE **tsp,
		     STACK_OF(X509) * *chainp, int *shareable,
		     struct ps_err *err)
{
	X509_STORE *ts = X509_STORE_new();
	STACK_OF(X509) *chain = bundle_certs(ca->ca_bundle);
	int ok, dir = 0;

	/* Without --ca-bundle, the system's CAs stand in for the chain too:
	 * OpenSSL 3.0's CMP client fails with "passed a null parameter" when
	 * it has no untrusted certificates at all. */
	if (chain && !ca->ca_bundle &&
	    access(X509_get_default_cert_file(), R_OK) == 0) {
		sk_X509_free(chain);
		chain = bundle_certs(X509_get_default_cert_file());
	}
	ok = ts && chain;
	if (ok && ca->ca_bundle)
		ok = X509_STORE_load_file(ts, ca->ca_bundle) == 1;
	else if (ok && access(X509_get_default_cert_file(), R_OK) == 0)
		/* The system's bundle as certificates in memory: OpenSSL 3.0's
		 * CMP client looks for the CA's certificate among the store's
		 * certificates and cannot use a hashed directory. */
		ok =
		    X509_STORE_load_file(ts, X509_get_default_cert_file()) == 1;
	else if (ok)
		ok = X509_STORE_set_default_paths(ts) == 1 && (dir = 1);
	if (!ok) {
		char why[200] = "";

		ossl_error(why, sizeof(why));
		X509_STORE_free(ts);
		sk_X509_pop_free(chain, X509_free);
		return ps_err_set(err, PS_EXIT_USAGE, "cmp",
				  "--ca-bundle takes a PEM file of CA "
				  "certificates",
				  "cannot load the CMP server's trust anchors "
				  "from %s: %s",
				  ca->ca_bundle ? ca->ca_bundle : "the system",
				  why);
	}
	/* Sorted now, so that lookups by many threads only read it (a
	 * lookup sorts an unsorted list; OpenSSL's CMP client reads the
	 * list without the store's lock). */
	if (X509_STORE_lock(ts)) {
		sk_X509_OBJECT_sort(X509_STORE_get0_objects(ts));
		X509_STORE_unlock(ts);
	}
	*tsp = ts;
	*chainp = chain;
	*shareable = !dir;
	return 0;
}

/* The channel's shared trust, read on first use (before any thread). */
static void trust_share(struct ps_ca *ca, struct cmp *c)
{
	int shareable = 0;

	if (c->trust_read++ ||
	    trust_new(ca, &c->ts, &c->chain, &shareable, NULL))
		return;
	if (!shareable) {
		X509_STORE_free(c->ts);
		sk_X509_pop_free(c->chain, X509_free);
		c->ts = NULL;
		c->chain = NULL;
	}
}

/* A context for this channel: trust, transport, the current certificate. */
static int ctx_new(struct ps_ca *ca, struct xfer *x,
		   const struct ps_ca_request *req, EVP_PKEY *oldkey,
		   OSSL_CMP_CTX **out, struct ps_err *err)
{
	OSSL_CMP_CTX *ctx = OSSL_CMP_CTX_new(NULL, NULL);
	X509_STORE *ts = NULL;
	STACK_OF(X509) *chain = NULL;
	int ok, shareable, rc;

	if (!ctx)
		return ps_err_nomem(err);
	if (x->c->ts && X509_STORE_up_ref(x->c->ts)) {
		ts = x->c->ts;
		chain = x->c->chain;
	} else {
		rc = trust_new(ca, &ts, &chain, &shareable, err);
		if (rc) {
			OSSL_CMP_CTX_free(ctx);
			return rc;
		}
	}
	OSSL_CMP_CTX_set_log_cb(ctx, log_cb);
	OSSL_CMP_CTX_set_log_verbosity(ctx, OSSL_CMP_LOG_ERR);
	ok = OSSL_CMP_CTX_set0_trustedStore(ctx, ts);
	if (!ok)
		X509_STORE_free(ts);
	ok = ok && OSSL_CMP_CTX_set1_untrusted(ctx, chain) &&
	     OSSL_CMP_CTX_set_transfer_cb(ctx, transfer) &&
	     OSSL_CMP_CTX_set_transfer_cb_arg(ctx, x) &&
	     OSSL_CMP_CTX_set1_cert(ctx, req->old_cert) &&
	     OSSL_CMP_CTX_set1_pkey(ctx, oldkey) &&
	     OSSL_CMP_CTX_set1_oldCert(ctx, req->old_cert) &&
	     OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_TOTAL_TIMEOUT, 0) &&
	     OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_MSG_TIMEOUT, 0);
	if (chain != x->c->chain)
		sk_X509_pop_free(chain, X509_free);
	if (!ok) {
		OSSL_CMP_CTX_free(ctx);
		return ps_err_set(err, PS_EXIT_FAIL, "cmp", NULL,
				  "cannot set up the CMP client");
	}
	*out = ctx;
	return 0;
}

/* The request's subject, extensions and public key, from its CSR. */
static int template_from_csr(OSSL_CMP_CTX *ctx, const char *csr_pem,
			     EVP_PKEY *newkey, struct ps_err *err)
{
	BIO *b = BIO_new_mem_buf(csr_pem, -1);
	X509_REQ *csr = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	X509_EXTENSIONS *exts = csr ? X509_REQ_get_extensions(csr) : NULL;
	EVP_PKEY *pub = NULL;
	int ok;

	BIO_free(b);
	ok = csr != NULL;
	if (ok && !newkey) {
		/* Only the public key: nothing is signed with it. */
		pub = X509_REQ_get_pubkey(csr);
		ok = pub && OSSL_CMP_CTX_set0_newPkey(ctx, 0, pub);
		if (!ok)
			EVP_PKEY_free(pub);
	} else if (ok) {
		ok = EVP_PKEY_up_ref(newkey) &&
		     OSSL_CMP_CTX_set0_newPkey(ctx, 1, newkey);
	}
	ok = ok &&
	     OSSL_CMP_CTX_set1_subjectName(ctx, X509_REQ_get_subject_name(csr));
	if (ok && exts && sk_X509_EXTENSION_num(exts) > 0) {
		ok = OSSL_CMP_CTX_set0_reqExtensions(ctx, exts);
		if (ok)
			exts = NULL;
	}
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(csr);
	if (!ok)
		return ps_err_set(err, PS_EXIT_FAIL, "cmp", NULL,
				  "cannot build the CMP certificate template "
				  "from the request");
	return 0;
}

/* The new key on the token: by the request's key id, else by the SHA-1
 * of the CSR's public key (psrenew's CKA_ID). */
static int csr_key(const struct ps_ca_request *req, EVP_PKEY **out,
		   struct ps_err *err)
{
	struct ps_token *tok = req->tok;
	const char *csr_pem = req->csr_pem;
	BIO *b = BIO_new_mem_buf(csr_pem, -1);
	X509_REQ *csr = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	unsigned char id[20];
	int rc;

	BIO_free(b);
	if (!csr || ps_pubkey_id(X509_REQ_get0_pubkey(csr), id)) {
		X509_REQ_free(csr);
		return ps_err_set(err, PS_EXIT_FAIL, "cmp", NULL,
				  "cannot read the stored certificate request");
	}
	X509_REQ_free(csr);
	if (req->new_key_id)
		return ps_signer_key(tok, req->new_key_id, req->new_key_id_len,
				     out, err);
	rc = ps_signer_key(tok, id, sizeof(id), out, err);
	return rc;
}

static char *b64(const struct saved *s)
{
	char *e = ps_base64_encode(s->der, s->len), *o = e;

	/* One line: drop the encoder's line breaks. */
	for (char *p = e; e && *p; p++)
		if (*p != '\n' && *p != '\r')
			*o++ = *p;
	if (o)
		*o = 0;
	return e;
}

static char *make_cookie(const struct xfer *x)
{
	char *a = b64(&x->last_rep), *p = NULL, *c = NULL;

	if (x->last_poll.der)
		p = b64(&x->last_poll);
	if (a && (!x->last_poll.der || p) &&
	    asprintf(&c, "%s%s%s%s", CMP_COOKIE_PREFIX, a, p ? " " : "",
		     p ? p : "") < 0)
		c = NULL;
	free(a);
	free(p);
	return c;
}

static int parse_cookie(const char *cookie, struct xfer *x)
{
	const char *s, *sp;
	size_t n;

	if (!cookie ||
	    strncmp(cookie, CMP_COOKIE_PREFIX, strlen(CMP_COOKIE_PREFIX)) != 0)
		return -1;
	s = cookie + strlen(CMP_COOKIE_PREFIX);
	for (int i = 0; i < 2 && *s; i++) {
		sp = strchr(s, ' ');
		n = sp ? (size_t)(sp - s) : strlen(s);
		if (ps_base64_decode(s, n, &x->replay[i].der,
				     &x->replay[i].len) ||
		    x->replay[i].len > CMP_MSG_MAX)
			return -1;
		x->nreplay = i + 1;
		s = sp ? sp + 1 : s + n;
	}
	return x->nreplay > 0 && !*s ? 0 : -1;
}

static char *certs_pem(OSSL_CMP_CTX *ctx)
{
	X509 *cert = OSSL_CMP_CTX_get0_newCert(ctx);
	STACK_OF(X509) *chain = OSSL_CMP_CTX_get1_newChain(ctx);
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out = NULL;
	long n;

	if (b && cert && PEM_write_bio_X509(b, cert)) {
		for (int i = 0; i < sk_X509_num(chain); i++)
			PEM_write_bio_X509(b, sk_X509_value(chain, i));
		n = BIO_get_mem_data(b, &data);
		out = n > 0 ? strndup(data, (size_t)n) : NULL;
	}
	BIO_free(b);
	sk_X509_pop_free(chain, X509_free);
	return out;
}

/* 1 when the CA sent a certificate whose public key is not the CSR's. */
static int other_key(OSSL_CMP_CTX *ctx, const char *csr_pem)
{
	X509 *cert = OSSL_CMP_CTX_get0_newCert(ctx);
	BIO *b = cert && csr_pem ? BIO_new_mem_buf(csr_pem, -1) : NULL;
	X509_REQ *csr = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	int other = csr && EVP_PKEY_eq(X509_get0_pubkey(cert),
				       X509_REQ_get0_pubkey(csr)) != 1;

	X509_REQ_free(csr);
	BIO_free(b);
	return other;
}

/* Runs the kur (submit: cookie NULL) or continues it (poll) over c and
 * maps what came back. oldkey: the current certificate's key when the
 * caller has it already (shared by parallel polls), else NULL. */
static int run(struct ps_ca *ca, struct cmp *c, EVP_PKEY *given,
	       const struct ps_ca_request *req, struct ps_ca_reply *reply,
	       int *broken, struct ps_err *err)
{
	struct xfer x = { .ca = ca, .c = c, .last_bt = -1 };
	OSSL_CMP_CTX *ctx = NULL;
	EVP_PKEY *oldkey = NULL, *newkey = NULL;
	int res, after = 0, rc = 0, st;
	int polling = req->cookie != NULL;

	if (!req->tok || !req->old_cert || !req->old_key_id)
		return ps_err_set(err, PS_EXIT_FAIL, "cmp", NULL,
				  "CMP needs the current certificate and its "
				  "key on the token");
	if (polling && parse_cookie(req->cookie, &x)) {
		rc = ps_err_set(err, PS_EXIT_FAIL, "cmp",
				"remove the request with ps-fetch --forget "
				"and renew again",
				"the stored CMP transaction of this request "
				"cannot be read");
		goto out;
	}
	ERR_clear_error();
	if (!c->h) {
		/* After ps_ca_set_bundle: TLS trusts the same CAs. */
		struct ps_http_opts o = { .ca_bundle = ca->ca_bundle,
					  .timeout = ca->timeout };

		rc = ps_http_new(&o, &c->h, err);
		if (rc)
			goto out;
	}
	if (c == ca->priv)
		trust_share(ca, c);
	if (given && EVP_PKEY_up_ref(given))
		oldkey = given;
	else
		rc = ps_signer_key(req->tok, req->old_key_id,
				   req->old_key_id_len, &oldkey, err);
	if (!rc && !polling)
		rc = csr_key(req, &newkey, err);
	if (!rc)
		rc = ctx_new(ca, &x, req, oldkey, &ctx, err);
	if (!rc)
		rc = template_from_csr(ctx, req->csr_pem, newkey, err);
	if (rc)
		goto out;
	if (polling) {
		OSSL_CMP_MSG *m =
		    msg_from_der(x.replay[0].der, x.replay[0].len);
		ASN1_OCTET_STRING *tid = m ? OSSL_CMP_HDR_get0_transactionID(
						 OSSL_CMP_MSG_get0_header(m))
					   : NULL;
		int ok = tid && OSSL_CMP_CTX_set1_transactionID(ctx, tid) &&
			 OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_POPO_METHOD,
						 OSSL_CRMF_POPO_NONE) &&
			 OSSL_CMP_CTX_set_option(
			     ctx, OSSL_CMP_OPT_UNPROTECTED_SEND, 1);

		x.first = m; /* the first answer to hand back */
		if (!ok) {
			rc = ps_err_set(err, PS_EXIT_FAIL, "cmp", NULL,
					"the stored CMP transaction of this "
					"request is damaged");
			goto out;
		}
		/* The replayed kup (and pollRep) bring the context back to
		 * "waiting"; then one real pollReq. */
		res = OSSL_CMP_try_certreq(ctx, OSSL_CMP_KUR, NULL, &after);
		if (res == -1 && x.live == 0)
			res = OSSL_CMP_try_certreq(ctx, OSSL_CMP_KUR, NULL,
						   &after);
		/* The stored kup stays the start of the next poll. */
		if (!x.last_rep.der) {
			x.last_rep = x.replay[0];
			x.replay[0].der = NULL;
			x.replay[0].len = 0;
		}
	} else {
		res = OSSL_CMP_try_certreq(ctx, OSSL_CMP_KUR, NULL, &after);
	}
	st = OSSL_CMP_CTX_get_status(ctx);
	if (res == 1) {
		reply->status = PS_CA_ISSUED;
		reply->certs_pem = certs_pem(ctx);
		if (!reply->certs_pem)
			reply->status = PS_CA_FAILED;
	} else if (res == -1) {
		reply->status = PS_CA_PENDING;
		reply->delay = after > 0 ? after : 60;
		reply->cookie = make_cookie(&x);
		if (!reply->cookie)
			reply->status = PS_CA_FAILED;
	} else if (res == 0 && other_key(ctx, req->csr_pem)) {
		/* Issued, but for another key: OpenSSL refused it (certConf
		 * says so to the CA). Kept, and the request asked again. */
		char why[600] = "";

		ossl_error(why, sizeof(why));
		reply->status = PS_CA_PENDING;
		reply->delay = 0;
		reply->rejected_cert =
		    ps_cert_pem(OSSL_CMP_CTX_get0_newCert(ctx));
		reply->message = strdup(
		    why[0]
			? why
			: "the certificate's public key is not the request's");
	} else if (x.rc == PS_EXIT_TEMP) {
		reply->status = PS_CA_UNREACHABLE;
		reply->message = strdup(x.errmsg); /* the cookie stays */
	} else if (x.rc == PS_EXIT_REFUSED) {
		reply->status = PS_CA_REJECTED;
		reply->message = strdup(x.errmsg);
	} else if (x.rc) {
		rc = ps_err_set(
		    err, x.rc == PS_EXIT_USAGE ? PS_EXIT_USAGE : PS_EXIT_FAIL,
		    "cmp", x.hint[0] ? x.hint : NULL, "%s", x.errmsg);
	} else if (polling && x.live > 0 && x.last_bt == BODY_ERROR) {
		/* Not an answer about the certificate: the CA no longer
		 * knows this transaction (restarted, or our last pollRep was
		 * never saved). The caller starts a new one. */
		*broken = 1;
		reply->message = status_text(ctx);
	} else if (st == OSSL_CMP_PKISTATUS_rejection) {
		reply->status = PS_CA_REJECTED;
		reply->message = status_text(ctx);
		reply->fail_info =
		    fail_info_names(OSSL_CMP_CTX_get_failInfoCode(ctx));
	} else {
		char why[600] = "";

		ossl_error(why, sizeof(why));
		rc = ps_err_set(err, PS_EXIT_FAIL, "cmp",
				"check --ca-bundle: it must hold the CA that "
				"protects the CMP server's answers",
				"the CMP exchange with %s failed: %s", c->url,
				why[0] ? why : "no valid answer");
	}
out:
	ERR_clear_error();
	OSSL_CMP_CTX_free(ctx);
	OSSL_CMP_MSG_free(x.first);
	EVP_PKEY_free(oldkey);
	EVP_PKEY_free(newkey);
	for (int i = 0; i < 2; i++)
		saved_free(&x.replay[i]);
	saved_free(&x.last_rep);
	saved_free(&x.last_poll);
	return rc;
}

static int cmp_submit(struct ps_ca *ca, const struct ps_ca_request *req,
		      struct ps_ca_reply *reply, struct ps_err *err)
{
	struct ps_ca_request r = *req;

	int broken = 0;

	r.cookie = NULL; /* a new transaction */
	return run(ca, ca->priv, NULL, &r, reply, &broken, err);
}

static int cmp_poll(struct ps_ca *ca, const struct ps_ca_request *req,
		    struct ps_ca_reply *reply, struct ps_err *err)
{
	int broken = 0, rc;

	if (!req->cookie || !*req->cookie)
		return cmp_submit(ca, req, reply, err);
	rc = run(ca, ca->priv, NULL, req, reply, &broken, err);
	if (rc || !broken)
		return rc;
	/* The same request (key, template) in a new transaction: a poll
	 * that cannot go on is not the CA's verdict on the certificate. */
	ps_ca_reply_free(reply);
	reply->delay = -1;
	reply->status = PS_CA_FAILED;
	return cmp_submit(ca, req, reply, err);
}

/*
 * Many polls at once (ps_ca_poll_many): up to lanes threads, each with a
 * connection of its own, take the continuing transactions one by one; the
 * token's keys are looked up before (libp11 hands out a session per
 * signature, and SoftHSM was initialised for OS locking). What a thread
 * cannot finish (no stored transaction, or the CA no longer knows it: a
 * new kur needs the new key looked up) is done here afterwards, one after
 * the other, as cmp_poll would.
 */
struct many {
	struct ps_ca *ca;
	const struct ps_ca_request *reqs;
	struct ps_ca_reply *replies;
	int *rcs;
	struct ps_err *errs;
	EVP_PKEY **keys; /* the current key of each threaded poll, or NULL */
	char *later;	 /* polls left to the serial pass */
	size_t n, next;
	void (*answered)(size_t i, void *ctx);
	void *ctx;
	pthread_mutex_t mu;
};

struct lane {
	struct many *m;
	struct cmp c; /* the channel's URL, a connection of its own */
	pthread_t t;
	int started;
};

static void many_answered(struct many *m, size_t i)
{
	if (!m->answered)
		return;
	pthread_mutex_lock(&m->mu);
	m->answered(i, m->ctx);
	pthread_mutex_unlock(&m->mu);
}

static void *lane_run(void *arg)
{
	struct lane *l = arg;
	struct many *m = l->m;

	for (;;) {
		size_t i;
		int broken = 0;

		pthread_mutex_lock(&m->mu);
		while (m->next < m->n && !m->keys[m->next])
			m->next++;
		i = m->next++;
		pthread_mutex_unlock(&m->mu);
		if (i >= m->n)
			return NULL;
		m->rcs[i] = run(m->ca, &l->c, m->keys[i], &m->reqs[i],
				&m->replies[i], &broken, &m->errs[i]);
		if (broken && !m->rcs[i])
			m->later[i] = 2; /* a new transaction */
		else
			many_answered(m, i);
	}
}

/* The current keys of the polls that can go to the threads (shared by
 * the polls of one certificate); the others are marked later. */
static size_t many_keys(struct many *m)
{
	size_t k = 0;

	for (size_t i = 0; i < m->n; i++) {
		const struct ps_ca_request *r = &m->reqs[i];

		m->later[i] = !r->cookie || !*r->cookie || !r->tok ||
			      !r->old_cert || !r->old_key_id;
		for (size_t j = 0; !m->later[i] && j < i && !m->keys[i]; j++)
			if (m->keys[j] && m->reqs[j].tok == r->tok &&
			    m->reqs[j].old_key_id_len == r->old_key_id_len &&
			    !memcmp(m->reqs[j].old_key_id, r->old_key_id,
				    r->old_key_id_len) &&
			    EVP_PKEY_up_ref(m->keys[j]))
				m->keys[i] = m->keys[j];
		if (!m->later[i] && !m->keys[i] &&
		    ps_signer_key(r->tok, r->old_key_id, r->old_key_id_len,
				  &m->keys[i], NULL))
			m->later[i] = 1; /* cmp_poll says why */
		k += !m->later[i];
	}
	return k;
}

static void cmp_poll_many(struct ps_ca *ca, const struct ps_ca_request *reqs,
			  size_t n, int lanes, struct ps_ca_reply *replies,
			  int *rcs, struct ps_err *errs,
			  void (*answered)(size_t i, void *ctx), void *ctx)
{
	struct cmp *c = ca->priv;
	struct many m = { .ca = ca,
			  .reqs = reqs,
			  .replies = replies,
			  .rcs = rcs,
			  .errs = errs,
			  .keys = calloc(n ? n : 1, sizeof(EVP_PKEY *)),
			  .later = calloc(n ? n : 1, 1),
			  .n = n,
			  .answered = answered,
			  .ctx = ctx,
			  .mu = PTHREAD_MUTEX_INITIALIZER };
	struct lane *l = calloc(lanes > 0 ? (size_t)lanes : 1, sizeof(*l));
	size_t k = m.keys && m.later && l ? many_keys(&m) : 0;
	int nl = 0;

	/* One trust store for the batch, read before the threads start. */
	if (k > 0)
		trust_share(ca, c);
	/* The connections are made here: libcurl is loaded on first use. */
	while (nl < lanes && (size_t)nl < k) {
		struct ps_http_opts o = { .ca_bundle = ca->ca_bundle,
					  .timeout = ca->timeout };

		l[nl].m = &m;
		l[nl].c.url = c->url;
		l[nl].c.ts = c->ts;
		l[nl].c.chain = c->chain;
		if (ps_http_new(&o, &l[nl].c.h, NULL))
			break;
		nl++;
	}
	for (int i = 1; i < nl; i++)
		l[i].started =
		    pthread_create(&l[i].t, NULL, lane_run, &l[i]) == 0;
	if (nl > 0)
		lane_run(&l[0]);
	for (int i = 0; i < nl; i++) {
		if (l[i].started)
			pthread_join(l[i].t, NULL);
		ps_http_free(l[i].c.h);
	}
	for (size_t i = 0; i < n; i++) {
		/* What no thread did, one after the other. */
		int later = !m.keys || !m.later || nl == 0 ? 1 : m.later[i];

		if (later) {
			ps_ca_reply_free(&replies[i]);
			replies[i].delay = -1;
			replies[i].status = PS_CA_FAILED;
			ps_err_clear(&errs[i]);
			rcs[i] = later == 2 ? cmp_submit(ca, &reqs[i],
							 &replies[i], &errs[i])
					    : cmp_poll(ca, &reqs[i],
						       &replies[i], &errs[i]);
			many_answered(&m, i);
		}
		if (m.keys)
			EVP_PKEY_free(m.keys[i]);
	}
	pthread_mutex_destroy(&m.mu);
	free(m.keys);
	free(m.later);
	free(l);
}

static int cmp_open(struct ps_ca *ca, const char *rest, struct ps_err *err)
{
	struct cmp *c = calloc(1, sizeof(*c));
	const char *host;
	int rc;

	if (!c)
		return ps_err_nomem(err);
	/* "//HOST[:PORT]/PATH", "http://..." or "https://..." */
	if (strncmp(rest, "//", 2) == 0)
		rc = asprintf(&c->url, "http:%s", rest);
	else if (strncmp(rest, "http://", 7) == 0 ||
		 strncmp(rest, "https://", 8) == 0)
		rc = (c->url = strdup(rest)) ? 0 : -1;
	else
		rc = -2;
	host = c->url ? strstr(c->url, "//") + 2 : NULL;
	if (rc < 0 || !host || !*host || *host == '/' ||
	    strpbrk(c->url, " ?#\r\n")) {
		free(c->url);
		free(c);
		return ps_err_set(err, PS_EXIT_USAGE, "bad-ca",
				  "write it as cmp://HOST[:PORT]/PATH, or "
				  "https://HOST[:PORT]/PATH with --ca-type cmp",
				  "cannot parse the CMP channel 'cmp:%.80s'",
				  rest);
	}
	ca->priv = c; /* the connection comes with the first request */
	return 0;
}

static void cmp_close(struct ps_ca *ca)
{
	struct cmp *c = ca->priv;

	if (c) {
		ps_http_free(c->h);
		X509_STORE_free(c->ts);
		sk_X509_pop_free(c->chain, X509_free);
		free(c->url);
		free(c);
	}
}

const struct ps_ca_driver ps_ca_cmp_driver = {
	.prefix = "cmp:",
	.needs_token = 1,
	.poll_needs_token = 1,
	.open = cmp_open,
	.submit = cmp_submit,
	.poll = cmp_poll,
	.poll_many = cmp_poll_many,
	.close = cmp_close,
};

/*
 * cmp-ca: a test CMP CA (RFC 4210 over HTTP, RFC 6712) for psrenew's tests,
 * built on OpenSSL's server API (OSSL_CMP_SRV_CTX). It really issues
 * certificates from the test PKI of tests/pki/mkpki, can make a request
 * wait for N polls, can reject, and can issue for a wrong key.
 *
 *   cmp-ca --pki DIR --state DIR [--port N]
 *
 * Listens on 127.0.0.1:N (0 or absent: a free port), writes the port to
 * STATE/port, answers POST /ANY-PATH with Content-Type application/pkixcmp,
 * each connection served by a thread of its own: many clients (or one
 * client's parallel polls) are answered at once. An HTTP/1.1 client's
 * connection stays open for its next requests (keep-alive, unless it sends
 * "Connection: close"); an HTTP/1.0 one is closed after its answer.
 * STATE/conns gets one line per connection: how many were being served
 * when it came (itself included). When STATE/delay holds a number of
 * milliseconds, every answer waits that long first (tests that need polls
 * to overlap).
 *
 * Trust: requests must be signature-protected by a certificate that chains
 * to DIR/root.crt (the old certificate for a kur), proof of possession is
 * checked by OpenSSL. Answers are protected by DIR/cmp-ra.crt/.key when
 * present, else by the issuing CA's key.
 *
 * Each new transaction (ir/cr/kur/p10cr) takes the next line of
 * STATE/answers (the last line repeats; counting starts again whenever the
 * file changes; no file: "issue"):
 *   issue           the certificate, at once
 *   wait N [S] [http500 P]
 *                   "waiting"; N pollReqs get a pollRep with checkAfter S
 *                   (default 1), the next one the certificate; with
 *                   http500 P, the P-th pollReq gets an HTTP 500 instead
 *                   (the transaction stays as it was)
 *   reject [TEXT]   rejection, failInfo badCertTemplate, statusString TEXT
 *   wrongkey        a certificate at once, but for another public key than
 *                   the template's (a CA that mixed up its requests)
 *   http500         an HTTP 500 without a CMP message
 * Issued: subject from the request's template, the template's public key
 * and extensions, keyUsage/extendedKeyUsage/certificatePolicies/qcStatements
 * copied from the old certificate (kur), signed by the CA that issued the
 * old certificate (DIR/qualified-ca or DIR/public-ca), valid -1m..+385d.
 * A transaction lives in memory: every in-flight one has its own server
 * context, keyed by transactionID, so many clients can poll at once.
 *
 * STATE/log gets one line per message: "BODYTYPE tid=HEX -> ANSWER".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/cmp.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

static const char *pki, *state;
static X509 *root, *qca, *pca, *ra_cert;
static EVP_PKEY *qkey, *pkey_, *ra_key;
static STACK_OF(X509) * chain;
static int ntrans; /* transactions started, for the answers file */
/* The list of transactions, ntrans, the answers file, the log files and
 * the connection count; a transaction's server context has its own lock. */
static pthread_mutex_t big = PTHREAD_MUTEX_INITIALIZER;
static int inflight; /* connections being served */

struct trans {
	struct trans *next;
	unsigned char tid[64];
	int tidlen;
	OSSL_CMP_SRV_CTX *srv;
	char answer[200];
	int polls_left, check_after;
	int poll500, npolls; /* the pollReq answered HTTP 500; so far */
	int busy; /* requests of it being handled (never collected) */
	pthread_mutex_t mu;
	OSSL_CMP_MSG *req; /* the certificate request, while waiting */
	X509 *issued;
	time_t used;
};
static struct trans *all;

static void die(const char *what)
{
	fprintf(stderr, "cmp-ca: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static char *path(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		die("out of memory");
	return p;
}

static X509 *load_cert(const char *name, int must)
{
	char *p = path(pki, name);
	FILE *f = fopen(p, "r");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

	if (f)
		fclose(f);
	if (!x && must)
		die(p);
	free(p);
	return x;
}

static EVP_PKEY *load_key(const char *name, int must)
{
	char *p = path(pki, name);
	FILE *f = fopen(p, "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

	if (f)
		fclose(f);
	if (!k && must)
		die(p);
	free(p);
	return k;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	char *p = path(state, "log");
	FILE *f = fopen(p, "a");
	va_list ap;

	free(p);
	if (!f)
		return;
	pthread_mutex_lock(&big);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
	pthread_mutex_unlock(&big);
}

/* Line k (1-based) of STATE/answers, the last repeating; "issue" when
 * there is no such file. */
static void answer_for(int k, char *out, size_t len)
{
	char *p = path(state, "answers");
	FILE *f = fopen(p, "r");
	char line[200];
	int n = 0;
	static char last[4096];
	char now[4096] = "";
	size_t got = f ? fread(now, 1, sizeof(now) - 1, f) : 0;

	/* Counting starts afresh whenever the file changes. */
	now[got] = 0;
	if (strcmp(now, last) != 0) {
		memcpy(last, now, sizeof(last));
		ntrans = 1;
		k = 1;
	}
	if (f)
		rewind(f);

	free(p);
	snprintf(out, len, "issue");
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (!line[0] || line[0] == '#')
			continue;
		snprintf(out, len, "%s", line);
		if (++n == k)
			break;
	}
	if (f)
		fclose(f);
}

static const char *tid_hex(const struct trans *t, char buf[130])
{
	for (int i = 0; i < t->tidlen && i < 64; i++)
		sprintf(buf + 2 * i, "%02x", t->tid[i]);
	buf[2 * (t->tidlen < 64 ? t->tidlen : 64)] = 0;
	return buf;
}

/* The template's public key: OpenSSL 3.0 has no getter, so take the
 * [6] IMPLICIT SubjectPublicKeyInfo out of the template's DER. */
static EVP_PKEY *template_key(const OSSL_CRMF_CERTTEMPLATE *tmpl)
{
	unsigned char *der = NULL;
	const unsigned char *p, *end, *q;
	long len;
	int tag, cls, n;
	EVP_PKEY *k = NULL;

	n = i2d_OSSL_CRMF_CERTTEMPLATE(tmpl, &der);
	if (n <= 0)
		return NULL;
	p = der;
	if (ASN1_get_object(&p, &len, &tag, &cls, n) & 0x80)
		goto out;
	end = p + len;
	while (p < end) {
		q = p;
		if (ASN1_get_object(&p, &len, &tag, &cls, end - p) & 0x80)
			break;
		if (cls == V_ASN1_CONTEXT_SPECIFIC && tag == 6) {
			unsigned char *spki =
			    OPENSSL_malloc((size_t)(p - q) + (size_t)len);
			const unsigned char *s = spki;

			if (!spki)
				break;
			memcpy(spki, q, (size_t)(p - q) + (size_t)len);
			spki[0] = 0x30; /* [6] constructed -> SEQUENCE */
			k = d2i_PUBKEY(NULL, &s, (p - q) + len);
			OPENSSL_free(spki);
			break;
		}
		p += len;
	}
out:
	OPENSSL_free(der);
	return k;
}

static void copy_ext(X509 *to, const X509 *from, int nid)
{
	int i = from ? X509_get_ext_by_NID(from, nid, -1) : -1;

	if (i >= 0)
		X509_add_ext(to, X509_get_ext(from, i), -1);
}

static X509 *issue(const OSSL_CRMF_MSG *crm, const X509 *old, int other)
{
	const OSSL_CRMF_CERTTEMPLATE *tmpl = OSSL_CRMF_MSG_get0_tmpl(crm);
	const X509_NAME *subj = OSSL_CRMF_CERTTEMPLATE_get0_subject(tmpl);
	X509_EXTENSIONS *exts = OSSL_CRMF_CERTTEMPLATE_get0_extensions(tmpl);
	/* other: for a key of its own, not the requester's */
	EVP_PKEY *pub = other ? EVP_RSA_gen(2048) : template_key(tmpl);
	int qualified = !old || X509_NAME_cmp(X509_get_issuer_name(old),
					      X509_get_subject_name(pca)) != 0;
	X509 *ca = qualified ? qca : pca;
	EVP_PKEY *cakey = qualified ? qkey : pkey_;
	X509 *x = X509_new();
	BIGNUM *bn = BN_new();
	X509V3_CTX v3;
	X509_EXTENSION *e;
	unsigned char rnd[16];

	if (!x || !bn || !pub || !subj)
		goto fail;
	RAND_bytes(rnd, sizeof(rnd));
	rnd[0] = (unsigned char)((rnd[0] & 0x7f) | 0x10);
	BN_bin2bn(rnd, sizeof(rnd), bn);
	if (!X509_set_version(x, 2) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_set_subject_name(x, subj) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca)) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 385L * 86400) ||
	    !X509_set_pubkey(x, pub))
		goto fail;
	for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++)
		X509_add_ext(x, sk_X509_EXTENSION_value(exts, i), -1);
	copy_ext(x, old, NID_key_usage);
	copy_ext(x, old, NID_ext_key_usage);
	copy_ext(x, old, NID_certificate_policies);
	copy_ext(x, old, NID_qcStatements);
	X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
	if (e) {
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	e = X509V3_EXT_conf_nid(NULL, &v3, NID_authority_key_identifier,
				"keyid:always");
	if (e) {
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	if (!X509_sign(x, cakey, EVP_sha256()))
		goto fail;
	BN_free(bn);
	EVP_PKEY_free(pub);
	return x;
fail:
	ERR_print_errors_fp(stderr);
	BN_free(bn);
	EVP_PKEY_free(pub);
	X509_free(x);
	return NULL;
}

static OSSL_CMP_PKISI *
cb_cert_request(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req, int certReqId,
		const OSSL_CRMF_MSG *crm, const X509_REQ *p10cr, X509 **certOut,
		STACK_OF(X509) * *chainOut, STACK_OF(X509) * *caPubs)
{
	struct trans *t = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);
	OSSL_CMP_CTX *ctx = OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv);
	STACK_OF(X509) *in = OSSL_CMP_CTX_get0_untrusted(ctx);
	const OSSL_CRMF_CERTID *oid =
	    crm ? OSSL_CRMF_MSG_get0_regCtrl_oldCertID(crm) : NULL;
	X509 *old = NULL;
	OSSL_CMP_PKISI *si = NULL;

	/* The certificate a kur updates came in extraCerts (and protected
	 * the request: OpenSSL checked that before calling us). */
	for (int i = 0; oid && i < sk_X509_num(in); i++) {
		X509 *x = sk_X509_value(in, i);

		if (ASN1_INTEGER_cmp(OSSL_CRMF_CERTID_get0_serialNumber(oid),
				     X509_get0_serialNumber(x)) == 0 &&
		    X509_NAME_cmp(OSSL_CRMF_CERTID_get0_issuer(oid),
				  X509_get_issuer_name(x)) == 0)
			old = x;
	}

	(void)certReqId;
	(void)caPubs;
	if (!crm || p10cr) {
		si = OSSL_CMP_STATUSINFO_new(
		    OSSL_CMP_PKISTATUS_rejection,
		    1 << OSSL_CMP_PKIFAILUREINFO_badRequest,
		    "this test CA takes CRMF requests only");
		goto out;
	}
	if (OSSL_CMP_MSG_get_bodytype(req) == OSSL_CMP_KUR && !old) {
		si = OSSL_CMP_STATUSINFO_new(
		    OSSL_CMP_PKISTATUS_rejection,
		    1 << OSSL_CMP_PKIFAILUREINFO_badCertId,
		    "oldCertID does not name the certificate that protects "
		    "the request");
		goto out;
	}
	if (!strncmp(t->answer, "reject", 6)) {
		const char *text = t->answer[6] ? t->answer + 7 : "";

		si = OSSL_CMP_STATUSINFO_new(
		    OSSL_CMP_PKISTATUS_rejection,
		    1 << OSSL_CMP_PKIFAILUREINFO_badCertTemplate,
		    *text ? text : "rejected by the test CA");
		goto out;
	}
	if (t->polls_left > 0 && !t->req) {
		/* First sight: wait. */
		t->req = OSSL_CMP_MSG_dup(req);
		si = OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_waiting, 0,
					     NULL);
		goto out;
	}
	*certOut = issue(crm, old, !strcmp(t->answer, "wrongkey"));
	if (!*certOut) {
		si = OSSL_CMP_STATUSINFO_new(
		    OSSL_CMP_PKISTATUS_rejection,
		    1 << OSSL_CMP_PKIFAILUREINFO_badCertTemplate,
		    "cannot issue from this template");
		goto out;
	}
	*chainOut = X509_chain_up_ref(chain);
	X509_free(t->issued);
	t->issued = X509_dup(*certOut);
	si = OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, NULL);
	{
		char *p = path(state, "issued.pem");
		FILE *f;

		pthread_mutex_lock(&big);
		f = fopen(p, "a");
		free(p);
		if (f) {
			PEM_write_X509(f, *certOut);
			fclose(f);
		}
		pthread_mutex_unlock(&big);
	}
out:
	return si;
}

static int cb_pollReq(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req,
		      int certReqId, OSSL_CMP_MSG **certReq,
		      int64_t *check_after)
{
	struct trans *t = OSSL_CMP_SRV_CTX_get0_custom_ctx(srv);

	(void)req;
	(void)certReqId;
	*certReq = NULL;
	if (!t->req)
		return 0; /* nothing is waiting */
	if (t->polls_left > 0) {
		t->polls_left--;
		*check_after = t->check_after;
		return 1;
	}
	*certReq = t->req; /* the server frees it */
	t->req = NULL;
	return 1;
}

static int cb_certConf(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req,
		       int certReqId, const ASN1_OCTET_STRING *certHash,
		       const OSSL_CMP_PKISI *si)
{
	(void)req;
	(void)srv;
	(void)certReqId;
	(void)certHash;
	(void)si;
	return 1;
}

static void cb_error(OSSL_CMP_SRV_CTX *srv, const OSSL_CMP_MSG *req,
		     const OSSL_CMP_PKISI *statusInfo,
		     const ASN1_INTEGER *errorCode,
		     const OSSL_CMP_PKIFREETEXT *errorDetails)
{
	(void)srv;
	(void)req;
	(void)statusInfo;
	(void)errorCode;
	(void)errorDetails;
}

static struct trans *trans_new(const ASN1_OCTET_STRING *tid)
{
	struct trans *t = calloc(1, sizeof(*t));
	OSSL_CMP_CTX *ctx;
	X509_STORE *ts = X509_STORE_new();
	char *w;

	if (!t || !ts || !(t->srv = OSSL_CMP_SRV_CTX_new(NULL, NULL)))
		die("out of memory");
	ctx = OSSL_CMP_SRV_CTX_get0_cmp_ctx(t->srv);
	X509_STORE_add_cert(ts, root);
	if (!OSSL_CMP_SRV_CTX_init(t->srv, t, cb_cert_request, NULL, NULL,
				   cb_error, cb_certConf, cb_pollReq) ||
	    !OSSL_CMP_CTX_set1_cert(ctx, ra_cert ? ra_cert : qca) ||
	    !OSSL_CMP_CTX_set1_pkey(ctx, ra_key ? ra_key : qkey) ||
	    !OSSL_CMP_CTX_set0_trustedStore(ctx, ts) ||
	    !OSSL_CMP_CTX_set1_untrusted(ctx, chain))
		die("cannot set up a server context");
	OSSL_CMP_CTX_set_log_verbosity(ctx, OSSL_CMP_LOG_ERR);
	t->tidlen = tid && tid->length <= 64 ? tid->length : 0;
	if (t->tidlen)
		memcpy(t->tid, tid->data, (size_t)t->tidlen);
	answer_for(++ntrans, t->answer, sizeof(t->answer));
	t->check_after = 1;
	if (!strncmp(t->answer, "wait", 4)) {
		t->polls_left = (int)strtol(t->answer + 4, &w, 10);
		if (*w)
			t->check_after = (int)strtol(w, NULL, 10);
		if (t->polls_left < 1)
			t->polls_left = 1;
		if ((w = strstr(t->answer, " http500 ")))
			t->poll500 = (int)strtol(w + 9, NULL, 10);
	}
	pthread_mutex_init(&t->mu, NULL);
	t->next = all;
	all = t;
	return t;
}

static void trans_free(struct trans *t)
{
	OSSL_CMP_SRV_CTX_free(t->srv);
	OSSL_CMP_MSG_free(t->req);
	X509_free(t->issued);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static struct trans *trans_find(const ASN1_OCTET_STRING *tid)
{
	for (struct trans *t = all; t; t = t->next)
		if (tid && t->tidlen == tid->length &&
		    !memcmp(t->tid, tid->data, (size_t)t->tidlen))
			return t;
	return NULL;
}

/* Drops transactions idle for an hour. */
static void trans_gc(void)
{
	struct trans **pp = &all;
	time_t now = time(NULL);

	while (*pp) {
		if (now - (*pp)->used > 3600 && !(*pp)->busy) {
			struct trans *t = *pp;

			*pp = t->next;
			trans_free(t);
		} else {
			pp = &(*pp)->next;
		}
	}
}

static const char *body_name(int bt)
{
	static const char *const n[] = {
		"ir",	    "ip",      "cr",	  "cp",	    "p10cr", "popdecc",
		"popdecr",  "kur",     "kup",	  "krr",    "krp",   "rr",
		"rp",	    "ccr",     "ccp",	  "ckuann", "cann",  "rann",
		"crlann",   "pkiconf", "nested",  "genm",   "genp",  "error",
		"certConf", "pollReq", "pollRep",
	};

	return bt >= 0 && bt <= 26 ? n[bt] : "?";
}

static int status_of(const OSSL_CMP_MSG *rsp, char *buf, size_t len)
{
	int bt = OSSL_CMP_MSG_get_bodytype(rsp);

	snprintf(buf, len, "%s", body_name(bt));
	return bt;
}

/* The transaction a request belongs to, marked busy (under big). */
static struct trans *trans_take(const OSSL_CMP_MSG *req, int bt, int *fresh)
{
	ASN1_OCTET_STRING *tid =
	    OSSL_CMP_HDR_get0_transactionID(OSSL_CMP_MSG_get0_header(req));
	struct trans *t;

	pthread_mutex_lock(&big);
	t = trans_find(tid);
	*fresh = bt == 0 || bt == 2 || bt == 4 || bt == 7;
	if (*fresh) {
		/* A new transaction (a resent one starts afresh). */
		if (t)
			t->tidlen = 0;
		t = trans_new(tid);
	} else if (!t) {
		/* No such transaction: answered by a fresh context, which
		 * makes OpenSSL's "no transaction ongoing" error message. */
		t = trans_new(NULL);
		ntrans--;
	}
	t->used = time(NULL);
	t->busy++;
	pthread_mutex_unlock(&big);
	return t;
}

static void trans_put(struct trans *t)
{
	pthread_mutex_lock(&big);
	t->busy--;
	pthread_mutex_unlock(&big);
}

/* One CMP request in, one CMP answer out (NULL: HTTP 500). */
static OSSL_CMP_MSG *handle(const unsigned char *der, size_t len, int *http500)
{
	BIO *b = BIO_new_mem_buf(der, (int)len);
	OSSL_CMP_MSG *req = b ? d2i_OSSL_CMP_MSG_bio(b, NULL) : NULL;
	OSSL_CMP_MSG *rsp = NULL;
	struct trans *t;
	int bt, waiting, fresh;
	char what[40], hex[130];

	BIO_free(b);
	*http500 = 0;
	if (!req) {
		logf_("garbage -> http400");
		return NULL;
	}
	bt = OSSL_CMP_MSG_get_bodytype(req);
	t = trans_take(req, bt, &fresh);
	pthread_mutex_lock(&t->mu);
	if ((fresh && !strcmp(t->answer, "http500")) ||
	    (bt == 25 && ++t->npolls == t->poll500)) {
		pthread_mutex_unlock(&t->mu);
		*http500 = 1;
		logf_("%s tid=%s -> http500", body_name(bt), tid_hex(t, hex));
		trans_put(t);
		OSSL_CMP_MSG_free(req);
		return NULL;
	}
	rsp = OSSL_CMP_SRV_process_request(t->srv, req);
	waiting = t->polls_left;
	pthread_mutex_unlock(&t->mu);
	status_of(rsp, what, sizeof(what));
	if (rsp && OSSL_CMP_MSG_get_bodytype(rsp) == 23)
		ERR_print_errors_fp(stderr);
	logf_("%s tid=%s -> %s%s%s", body_name(bt), tid_hex(t, hex),
	      rsp ? what : "none", waiting ? " waiting" : "",
	      !strncmp(t->answer, "reject", 6) ? " rejected" : "");
	trans_put(t);
	ERR_clear_error();
	OSSL_CMP_MSG_free(req);
	return rsp;
}

/* One connection's bytes read but not yet used (a request that came
 * right after another on a kept-alive connection). */
struct conn {
	int fd;
	char buf[8192];
	size_t have;
};

/* len bytes: first what is buffered, then from the socket. */
static int read_full(struct conn *c, unsigned char *out, size_t len)
{
	size_t got = c->have < len ? c->have : len;

	memcpy(out, c->buf, got);
	memmove(c->buf, c->buf + got, c->have - got);
	c->have -= got;
	while (got < len) {
		ssize_t n = read(c->fd, out + got, len - got);

		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static void write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void reply(int fd, int keep, int code, const char *ctype,
		  const void *body, size_t len)
{
	char hdr[300];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.%d %d %s\r\nContent-Type: %s\r\n"
			 "Content-Length: %zu\r\nConnection: %s\r\n\r\n",
			 keep, code, code == 200 ? "OK" : "Error", ctype, len,
			 keep ? "keep-alive" : "close");

	write_all(fd, hdr, (size_t)n);
	write_all(fd, body, len);
}

/* Milliseconds from STATE/delay, 0 without it. */
static long delay_ms(void)
{
	char *p = path(state, "delay");
	FILE *f = fopen(p, "r");
	long ms = 0;

	free(p);
	if (f) {
		if (fscanf(f, "%ld", &ms) != 1)
			ms = 0;
		fclose(f);
	}
	return ms > 0 && ms < 60000 ? ms : 0;
}

/* The request's head, up to its blank line, into head (NUL-terminated);
 * what follows it stays in c->buf. -1 when the connection ends first. */
static int read_head(struct conn *c, char *head, size_t hlen)
{
	char *end;

	for (;;) {
		ssize_t r;

		c->buf[c->have] = 0;
		if ((end = strstr(c->buf, "\r\n\r\n"))) {
			size_t n = (size_t)(end - c->buf) + 4;

			if (n > hlen)
				return -1;
			memcpy(head, c->buf, n - 2);
			head[n - 2] = 0;
			memmove(c->buf, c->buf + n, c->have - n);
			c->have -= n;
			return 0;
		}
		if (c->have >= sizeof(c->buf) - 1)
			return -1;
		r = read(c->fd, c->buf + c->have, sizeof(c->buf) - 1 - c->have);
		if (r <= 0)
			return -1;
		c->have += (size_t)r;
	}
}

/* 1 when the client keeps the connection: HTTP/1.1 without
 * "Connection: close" (RFC 9112, 9.3). */
static int keeps_alive(const char *head)
{
	const char *eol = strstr(head, "\r\n");

	if (!eol || eol - head < 8 || strncmp(eol - 8, "HTTP/1.1", 8))
		return 0;
	for (const char *l = eol + 2, *e; (e = strstr(l, "\r\n")); l = e + 2) {
		char v[100];

		snprintf(v, sizeof(v), "%.*s", (int)(e - l), l);
		if (!strncasecmp(v, "Connection:", 11) && strstr(v, "close"))
			return 0;
	}
	return 1;
}

/* One request and its answer; 1 when the connection stays open. */
static int serve_one(struct conn *c)
{
	char head[8192], *cl;
	long clen = -1, ms;
	unsigned char *body;
	OSSL_CMP_MSG *rsp;
	int http500, keep;

	if (read_head(c, head, sizeof(head)))
		return 0;
	keep = keeps_alive(head);
	if (strncmp(head, "POST ", 5) != 0) {
		reply(c->fd, 0, 405, "text/plain", "POST only\n", 10);
		return 0;
	}
	for (cl = head; (cl = strchr(cl, '\n'));) {
		cl++;
		if (!strncasecmp(cl, "Content-Length:", 15))
			clen = strtol(cl + 15, NULL, 10);
	}
	if (clen <= 0 || clen > (1 << 20)) {
		reply(c->fd, 0, 411, "text/plain", "length\n", 7);
		return 0;
	}
	body = malloc((size_t)clen);
	if (!body || read_full(c, body, (size_t)clen)) {
		free(body);
		return 0;
	}
	if ((ms = delay_ms())) {
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	rsp = handle(body, (size_t)clen, &http500);
	if (rsp) {
		BIO *b = BIO_new(BIO_s_mem());
		char *data;
		long dl;

		i2d_OSSL_CMP_MSG_bio(b, rsp);
		dl = BIO_get_mem_data(b, &data);
		reply(c->fd, keep, 200, "application/pkixcmp", data,
		      (size_t)dl);
		BIO_free(b);
		OSSL_CMP_MSG_free(rsp);
	} else if (http500) {
		reply(c->fd, keep, 500, "text/plain", "test CA: error\n", 15);
	} else {
		reply(c->fd, keep, 400, "text/plain", "not a CMP message\n",
		      18);
	}
	free(body);
	return keep;
}

static void serve(int fd)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return;
	c->fd = fd;
	/* An answer goes out in two writes (head, body): without this, on a
	 * kept-alive connection the body waits for the client's delayed ACK
	 * of the head (Nagle's algorithm, RFC 896). */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	while (serve_one(c)) {
		pthread_mutex_lock(&big);
		trans_gc();
		pthread_mutex_unlock(&big);
	}
	free(c);
}

/* One connection, on a thread of its own. */
static void *conn_run(void *arg)
{
	int c = (int)(intptr_t)arg, now;
	char *p = path(state, "conns");
	FILE *f;

	pthread_mutex_lock(&big);
	now = ++inflight;
	if ((f = fopen(p, "a"))) {
		fprintf(f, "%d\n", now);
		fclose(f);
	}
	pthread_mutex_unlock(&big);
	free(p);
	serve(c);
	close(c);
	pthread_mutex_lock(&big);
	inflight--;
	trans_gc();
	pthread_mutex_unlock(&big);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int port = 0, s, one = 1;
	char *p;
	FILE *f;
	pthread_attr_t detached;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--pki"))
			pki = argv[i + 1];
		else if (!strcmp(argv[i], "--state"))
			state = argv[i + 1];
		else if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
	}
	if (!pki || !state) {
		fprintf(stderr,
			"usage: cmp-ca --pki DIR --state DIR [--port N]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	pthread_attr_init(&detached);
	pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
	root = load_cert("root.crt", 1);
	qca = load_cert("qualified-ca.crt", 1);
	pca = load_cert("public-ca.crt", 1);
	qkey = load_key("qualified-ca.key", 1);
	pkey_ = load_key("public-ca.key", 1);
	ra_cert = load_cert("cmp-ra.crt", 0);
	ra_key = ra_cert ? load_key("cmp-ra.key", 1) : NULL;
	chain = sk_X509_new_null();
	if (!chain || !sk_X509_push(chain, qca) || !sk_X509_push(chain, pca))
		die("out of memory");
	X509_up_ref(qca);
	X509_up_ref(pca);

	s = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((unsigned short)port);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) ||
	    listen(s, 128) || getsockname(s, (struct sockaddr *)&a, &alen))
		die(strerror(errno));
	p = path(state, "port.tmp");
	f = fopen(p, "w");
	if (!f)
		die(p);
	fprintf(f, "%d\n", ntohs(a.sin_port));
	fclose(f);
	{
		char *q = path(state, "port");

		if (rename(p, q))
			die(q);
		free(q);
	}
	free(p);
	for (;;) {
		int c = accept(s, NULL, NULL);
		pthread_t th;

		if (c < 0) {
			if (errno == EINTR)
				continue;
			die(strerror(errno));
		}
		if (pthread_create(&th, &detached, conn_run,
				   (void *)(intptr_t)c) != 0) {
			serve(c);
			close(c);
		}
	}
}

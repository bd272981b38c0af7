/* libFuzzer harness "cmp-response": a CMP CA's answer as lib/ca_cmp.c hands
 * it to OpenSSL, and the stored form of a waiting transaction. This file
 * includes lib/ca_cmp.c to reach its static functions.
 *   - the input, read as the DER of a CMP message, is what the transfer
 *     callback gives back for a kur (the replay path: msg_from_der, the
 *     sender nonce taken from its recipNonce), and OpenSSL's client checks
 *     and processes it (OSSL_CMP_try_certreq) against a context set up as
 *     the channel does (a trusted CA, the current certificate and key);
 *   - the input, read as text, is a request's "cookie": parse_cookie, and
 *     make_cookie of what it read. */
#include "../../lib/ca_cmp.c"

#include <stdint.h>

#include <openssl/ec.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *ca_key, *ee_key;
static X509 *ca_cert, *ee_cert;

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer,
		       EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	if (!x || !n ||
	    !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
					(const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_version(x, 2) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(x), 7) ||
	    !X509_set_subject_name(x, n) ||
	    !X509_set_issuer_name(
		x, issuer ? X509_get_subject_name(issuer) : n) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 86400) ||
	    !X509_set_pubkey(x, key) ||
	    !X509_sign(x, issuer_key, EVP_sha256()))
		abort();
	X509_NAME_free(n);
	return x;
}

static void init(void)
{
	ca_key = EVP_EC_gen("P-256");
	ee_key = EVP_EC_gen("P-256");
	if (!ca_key || !ee_key)
		abort();
	ca_cert = make_cert("Fuzz CA", ca_key, NULL, ca_key);
	ee_cert = make_cert("Fuzz Holder", ee_key, ca_cert, ca_key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct cmp c = { .url = (char *)"http://127.0.0.1:1/" };
	struct ps_ca ca = { .priv = &c };
	struct xfer x = { .ca = &ca, .c = &c };
	OSSL_CMP_CTX *ctx;
	X509_STORE *ts;
	EVP_PKEY *pub;
	char *text, *cookie;
	int after = 0;

	if (!ready) {
		init();
		ready = 1;
	}
	if (size > CMP_MSG_MAX)
		return 0;
	/* The answer to a kur. */
	x.replay[0].der = OPENSSL_memdup(data, size ? size : 1);
	x.replay[0].len = size;
	x.nreplay = 1;
	ctx = OSSL_CMP_CTX_new(NULL, NULL);
	ts = X509_STORE_new();
	pub = ee_key;
	if (!ctx || !ts || !x.replay[0].der || !X509_STORE_add_cert(ts, ca_cert) ||
	    !OSSL_CMP_CTX_set0_trustedStore(ctx, ts) ||
	    !OSSL_CMP_CTX_set_log_cb(ctx, log_cb) ||
	    !OSSL_CMP_CTX_set_transfer_cb(ctx, transfer) ||
	    !OSSL_CMP_CTX_set_transfer_cb_arg(ctx, &x) ||
	    !OSSL_CMP_CTX_set1_cert(ctx, ee_cert) ||
	    !OSSL_CMP_CTX_set1_pkey(ctx, ee_key) ||
	    !OSSL_CMP_CTX_set1_oldCert(ctx, ee_cert) ||
	    !EVP_PKEY_up_ref(pub) || !OSSL_CMP_CTX_set0_newPkey(ctx, 0, pub))
		abort();
	OSSL_CMP_CTX_set_log_verbosity(ctx, OSSL_CMP_LOG_ERR);
	OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_POPO_METHOD,
				OSSL_CRMF_POPO_NONE);
	(void)OSSL_CMP_try_certreq(ctx, OSSL_CMP_KUR, NULL, &after);
	OSSL_CMP_CTX_free(ctx);
	saved_free(&x.replay[0]);
	saved_free(&x.last_rep);
	saved_free(&x.last_poll);
	ERR_clear_error();

	/* A stored cookie. */
	text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = 0;
	memset(&x, 0, sizeof(x));
	if (parse_cookie(text, &x) == 0) {
		if (x.nreplay < 1 || x.nreplay > 2 || !x.replay[0].der)
			abort();
		x.last_rep = x.replay[0];
		if (x.nreplay > 1)
			x.last_poll = x.replay[1];
		cookie = make_cookie(&x);
		if (!cookie || strncmp(cookie, CMP_COOKIE_PREFIX,
				       strlen(CMP_COOKIE_PREFIX)) != 0)
			abort();
		free(cookie);
		x.last_rep.der = x.last_poll.der = NULL;
	}
	{
		for (int i = 0; i < 2; i++)
			saved_free(&x.replay[i]);
	}
	free(text);
	return 0;
}

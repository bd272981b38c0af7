/* Unit tests: lib/csr.c and lib/signer.c: a request signed on the token
 * with C_Sign on psrenew's own session (ps_csr_make_token). Needs SoftHSM2
 * (softhsm2-util); a token is made in a temporary directory. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <psrenew/csr.h>
#include <psrenew/keypair.h>
#include <psrenew/token.h>

#include "softhsm.h"

static X509 *old;

/* The old certificate: a subject with UTF-8 and a subjectAltName, made
 * with a software key (only its names are copied). */
static X509 *make_old(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	assert_non_null(k);
	assert_non_null(x);
	assert_true(X509_NAME_add_entry_by_txt(
	    n, "CN", MBSTRING_UTF8, (const unsigned char *)"Jan Nov\xc3\xa1k",
	    -1, -1, 0));
	assert_true(X509_NAME_add_entry_by_txt(n, "serialNumber", MBSTRING_UTF8,
					       (const unsigned char *)"P123456",
					       -1, -1, 0));
	assert_true(X509_set_subject_name(x, n));
	assert_true(X509_set_issuer_name(x, n));
	assert_true(X509_set_version(x, 2));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 42));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_true(X509_set_pubkey(x, k));
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name,
				  "email:jan.novak@example.cz");
	assert_non_null(ext);
	assert_true(X509_add_ext(x, ext, -1));
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, k, EVP_sha256()));
	X509_NAME_free(n);
	EVP_PKEY_free(k);
	return x;
}

static int setup(void **state)
{
	(void)state;
	if (softhsm_up())
		return -1;
	old = make_old();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	X509_free(old);
	return softhsm_down();
}

static void one(const char *spec, int sig_nid)
{
	struct ps_keyspec ks;
	struct ps_keypair kp;
	struct ps_err err;
	char *pem = NULL;
	X509_REQ *req;
	BIO *b;
	const X509_ALGOR *alg;
	const ASN1_OBJECT *oid;
	const ASN1_BIT_STRING *sig;
	int ptype;
	const void *pval;
	EVP_PKEY *rpk;

	struct ps_token *tok = hsm_token();

	if (!tok)
		skip();
	ps_err_clear(&err);
	assert_int_equal(ps_keyspec_parse(spec, &ks, &err), 0);
	assert_int_equal(ps_keypair_generate(tok, &ks, "csr test", &kp, &err),
			 0);
	assert_int_equal(
	    ps_csr_make_token(old, kp.pubkey, tok, kp.priv, &pem, &err), 0);
	assert_non_null(pem);
	b = BIO_new_mem_buf(pem, -1);
	req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(req);
	/* signed by the new key, with the right algorithm */
	rpk = X509_REQ_get0_pubkey(req);
	assert_int_equal(EVP_PKEY_eq(rpk, kp.pubkey), 1);
	assert_int_equal(X509_REQ_verify(req, kp.pubkey), 1);
	X509_REQ_get0_signature(req, &sig, &alg);
	X509_ALGOR_get0(&oid, &ptype, &pval, alg);
	assert_int_equal(OBJ_obj2nid(oid), sig_nid);
	assert_int_equal(ptype, sig_nid == NID_sha256WithRSAEncryption
				    ? V_ASN1_NULL
				    : V_ASN1_UNDEF);
	/* the old certificate's subject, byte for byte, and its SAN */
	assert_int_equal(X509_NAME_cmp(X509_REQ_get_subject_name(req),
				       X509_get_subject_name(old)),
			 0);
	{
		STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);

		assert_non_null(exts);
		assert_int_equal(sk_X509_EXTENSION_num(exts), 1);
		assert_int_equal(OBJ_obj2nid(X509_EXTENSION_get_object(
				     sk_X509_EXTENSION_value(exts, 0))),
				 NID_subject_alt_name);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	}
	X509_REQ_free(req);
	free(pem);
	assert_int_equal(ps_keypair_destroy(tok, &kp, &err), 0);
	ps_keypair_free(&kp);
}

static void test_rsa2048(void **state)
{
	(void)state;
	one("rsa:2048", NID_sha256WithRSAEncryption);
}

static void test_p256(void **state)
{
	(void)state;
	one("ec:prime256v1", NID_ecdsa_with_SHA256);
}

static void test_p384(void **state)
{
	(void)state;
	one("ec:secp384r1", NID_ecdsa_with_SHA256);
}

/* The public key's handle: the token refuses to sign, no request. */
static void test_bad_handle(void **state)
{
	struct ps_keyspec ks;
	struct ps_keypair kp;
	struct ps_err err;
	char *pem = NULL;

	(void)state;
	struct ps_token *tok = hsm_token();

	if (!tok)
		skip();
	ps_err_clear(&err);
	assert_int_equal(ps_keyspec_parse("ec:prime256v1", &ks, &err), 0);
	assert_int_equal(ps_keypair_generate(tok, &ks, "csr test", &kp, &err),
			 0);
	assert_int_not_equal(
	    ps_csr_make_token(old, kp.pubkey, tok, kp.pub, &pem, &err), 0);
	assert_null(pem);
	assert_int_not_equal(err.status, 0);
	assert_string_not_equal(err.msg, "");
	assert_int_equal(ps_keypair_destroy(tok, &kp, NULL), 0);
	ps_keypair_free(&kp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsa2048),
		cmocka_unit_test(test_p256),
		cmocka_unit_test(test_p384),
		cmocka_unit_test(test_bad_handle),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

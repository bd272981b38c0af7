/* Unit tests: lib/pfx_read.c (reading and decrypting a PFX, no token). The
 * PFX files are made here with OpenSSL's PKCS12_create: modern (AES-256,
 * PBKDF2, SHA-256 MAC), as Windows exports them (3DES, SHA-1 MAC) and with
 * RC2-40 (made in a library context of its own with OpenSSL's legacy
 * provider, when it is installed, so that ps_pfx_unlock must load it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/provider.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <psrenew/pfx_read.h>

#define PASS "Z\xc3\xa1loha 2024 Zq8!" /* UTF-8, with a space */
#define NAME "Jan Nov\xc3\xa1k"
/* A round count whose DER (02 03 01 02 03) the tests find and replace. */
#define MARK_ITER 0x010203

static EVP_PKEY *rsa_key, *ca_key, *root_key, *ec_key;
static X509 *leaf, *ca, *root, *ec_leaf;
static OSSL_LIB_CTX *legacy_ctx; /* NULL: no legacy provider */
static OSSL_PROVIDER *legacy_prov[2];

static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer,
		       EVP_PKEY *issuer_key, int is_ca)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	assert_non_null(x);
	assert_non_null(name);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++));
	assert_true(
	    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
				       (const unsigned char *)cn, -1, -1, 0));
	assert_true(X509_set_subject_name(x, name));
	assert_true(X509_set_issuer_name(
	    x, issuer ? X509_get_subject_name(issuer) : name));
	X509_NAME_free(name);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -86400));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365));
	assert_true(X509_set_pubkey(x, key));
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
				is_ca ? "critical,CA:TRUE" : "CA:FALSE");
	assert_non_null(e);
	assert_true(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) >
		    0);
	return x;
}

static int group_setup(void **state)
{
	(void)state;
	rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	root_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!rsa_key || !ca_key || !root_key || !ec_key)
		return -1;
	root = make_cert("Test Root CA", root_key, NULL, NULL, 1);
	ca = make_cert("Test Qualified CA", ca_key, root, root_key, 1);
	leaf = make_cert(NAME, rsa_key, ca, ca_key, 0);
	ec_leaf = make_cert("EC holder", ec_key, ca, ca_key, 0);
	/* RC2 (Windows exports of old) lives in the legacy provider: made in
	 * a context of its own, the default one stays without it. */
	legacy_ctx = OSSL_LIB_CTX_new();
	if (legacy_ctx) {
		legacy_prov[0] = OSSL_PROVIDER_load(legacy_ctx, "default");
		legacy_prov[1] = OSSL_PROVIDER_load(legacy_ctx, "legacy");
	}
	if (!legacy_prov[0] || !legacy_prov[1]) {
		OSSL_PROVIDER_unload(legacy_prov[1]);
		OSSL_PROVIDER_unload(legacy_prov[0]);
		legacy_prov[0] = legacy_prov[1] = NULL;
		OSSL_LIB_CTX_free(legacy_ctx);
		legacy_ctx = NULL;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	X509_free(leaf);
	X509_free(ca);
	X509_free(root);
	X509_free(ec_leaf);
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(ec_key);
	OSSL_PROVIDER_unload(legacy_prov[1]);
	OSSL_PROVIDER_unload(legacy_prov[0]);
	OSSL_LIB_CTX_free(legacy_ctx);
	return 0;
}

struct spec {
	const char *pass;
	EVP_PKEY *key; /* NULL: certificates only */
	X509 *cert;
	int nid_key, nid_cert; /* PBE algorithms or ciphers (PBES2) */
	int iter;
	const EVP_MD *mac_md; /* NULL: no MAC */
	int mac_iter;
	OSSL_LIB_CTX *ctx;
};

/* As OpenSSL 3 exports by default. */
static struct spec modern(void)
{
	struct spec s = { PASS,
			  rsa_key,
			  leaf,
			  NID_aes_256_cbc,
			  NID_aes_256_cbc,
			  2048,
			  EVP_sha256(),
			  2048,
			  NULL };

	return s;
}

/* As Windows (Edge, certmgr) exports: 3DES everywhere, SHA-1 MAC. */
static struct spec windows(void)
{
	struct spec s = modern();

	s.nid_key = s.nid_cert = NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
	s.mac_md = EVP_sha1();
	return s;
}

/* The PFX s describes, as DER. The chain holds the root twice and the
 * certificate itself again: the reader keeps each CA certificate once. */
static PKCS12 *make_p12(const struct spec *s)
{
	STACK_OF(X509) *cas = sk_X509_new_null();
	PKCS12 *p12;

	assert_non_null(cas);
	assert_true(sk_X509_push(cas, ca));
	assert_true(sk_X509_push(cas, root));
	assert_true(sk_X509_push(cas, root));
	assert_true(sk_X509_push(cas, s->cert));
	p12 = PKCS12_create_ex(s->pass, NAME, s->key, s->key ? s->cert : NULL,
			       cas, s->nid_key, s->nid_cert, s->iter, -1, 0,
			       s->ctx, NULL);
	sk_X509_free(cas);
	assert_non_null(p12);
	if (s->mac_md)
		assert_true(PKCS12_set_mac(p12, s->pass, -1, NULL, 0,
					   s->mac_iter, s->mac_md));
	return p12;
}

static unsigned char *der_of(PKCS12 *p12, size_t *len)
{
	unsigned char *der = NULL;
	int n = i2d_PKCS12(p12, &der);

	assert_true(n > 0);
	*len = (size_t)n;
	return der;
}

static unsigned char *make_pfx(const struct spec *s, size_t *len)
{
	PKCS12 *p12 = make_p12(s);
	unsigned char *der = der_of(p12, len);

	PKCS12_free(p12);
	return der;
}

/* Replaces each DER INTEGER MARK_ITER by PS_PFX_MAX_ITER + 1; how many. */
static int patch_iter(unsigned char *der, size_t len)
{
	static const unsigned char from[] = { 0x02, 0x03, 0x01, 0x02, 0x03 };
	static const unsigned char to[] = { 0x02, 0x03, 0x0f, 0x42, 0x41 };
	int n = 0;

	assert_int_equal(PS_PFX_MAX_ITER + 1, 0x0f4241);
	for (size_t i = 0; i + sizeof(from) <= len; i++)
		if (!memcmp(der + i, from, sizeof(from))) {
			memcpy(der + i, to, sizeof(to));
			n++;
		}
	return n;
}

/* Loads and unlocks der with pass; the exit status. */
static int unlock(const unsigned char *der, size_t len, const char *pass,
		  struct ps_pfx *pfx, struct ps_err *err)
{
	int rc;

	ps_err_clear(err);
	rc = ps_pfx_load(der, len, pfx, err);
	if (rc)
		fail_msg("ps_pfx_load: %d %s %s", rc, err->code, err->msg);
	return ps_pfx_unlock(pfx, pass, err);
}

/* The key, its certificate, the chain (each CA certificate once, never
 * the certificate itself) and the friendlyName. */
static void check_unlocked(const struct ps_pfx *pfx, EVP_PKEY *key, X509 *x)
{
	int has_ca = 0, has_root = 0;

	assert_non_null(pfx->key);
	assert_int_equal(EVP_PKEY_eq(pfx->key, key), 1);
	assert_non_null(pfx->cert);
	assert_int_equal(X509_cmp(pfx->cert, x), 0);
	assert_non_null(pfx->chain);
	assert_int_equal(sk_X509_num(pfx->chain), 2);
	for (int i = 0; i < sk_X509_num(pfx->chain); i++) {
		has_ca |= X509_cmp(sk_X509_value(pfx->chain, i), ca) == 0;
		has_root |= X509_cmp(sk_X509_value(pfx->chain, i), root) == 0;
	}
	assert_true(has_ca && has_root);
	assert_non_null(pfx->friendly_name);
	assert_string_equal(pfx->friendly_name, NAME);
}

/* A failure: the documented status and code, nothing unlocked. */
static void check_refused(int rc, const struct ps_pfx *pfx,
			  const struct ps_err *err, int status,
			  const char *code)
{
	if (rc != status || strcmp(err->code, code) != 0)
		fail_msg("want %d %s, got %d %s: %s", status, code, rc,
			 err->code, err->msg);
	assert_int_equal(err->status, status);
	assert_true(err->msg[0] != '\0');
	assert_null(pfx->key);
	assert_null(pfx->cert);
	assert_null(pfx->chain);
	assert_null(pfx->friendly_name);
}

static void test_modern_right_password(void **state)
{
	struct spec s = modern();
	struct ps_pfx pfx;
	struct ps_err err;
	size_t len;
	unsigned char *der = make_pfx(&s, &len);

	(void)state;
	assert_int_equal(unlock(der, len, PASS, &pfx, &err), 0);
	check_unlocked(&pfx, rsa_key, leaf);
	assert_int_equal(pfx.legacy, 0);
	assert_int_equal(ps_pfx_password_empty(&pfx), 0);
	ps_pfx_free(&pfx);
	assert_null(pfx.p12);
	OPENSSL_free(der);
}

static void test_ec_key(void **state)
{
	struct spec s = modern();
	struct ps_pfx pfx;
	struct ps_err err;
	size_t len;
	unsigned char *der;

	(void)state;
	s.key = ec_key;
	s.cert = ec_leaf;
	der = make_pfx(&s, &len);
	assert_int_equal(unlock(der, len, PASS, &pfx, &err), 0);
	check_unlocked(&pfx, ec_key, ec_leaf);
	assert_true(EVP_PKEY_is_a(pfx.key, "EC"));
	ps_pfx_free(&pfx);
	OPENSSL_free(der);
}

static void test_wrong_password(void **state)
{
	struct spec s = modern();
	struct ps_pfx pfx;
	struct ps_err err;
	size_t len;
	unsigned char *der = make_pfx(&s, &len);
	int rc;

	(void)state;
	rc = unlock(der, len, "Zaloha 2024 Zq8!", &pfx, &err);
	check_refused(rc, &pfx, &err, PS_EXIT_REFUSED, "bad-password");
	assert_non_null(strstr(err.msg, "wrong password"));
	ps_pfx_free(&pfx);
	rc = unlock(der, len, "", &pfx, &err);
	check_refused(rc, &pfx, &err, PS_EXIT_REFUSED, "bad-password");
	ps_pfx_free(&pfx);
	OPENSSL_free(der);
}

/* Without a MAC a wrong password shows as a part that does not decrypt:
 * still "bad-password" (the file might be damaged, the message says). */
static void test_wrong_password_no_mac(void **state)
{
	struct spec s = modern();
	struct ps_pfx pfx;
	struct ps_err err;
	size_t len;
	unsigned char *der;
	int rc;

	(void)state;
	s.mac_md = NULL;
	der = make_pfx(&s, &len);
	rc = unlock(der, len, "wrong", &pfx, &err);
	check_refused(rc, &pfx, &err, PS_EXIT_REFUSED, "bad-password");
	assert_non_null(strstr(err.msg, "damaged"));
	ps_pfx_free(&pfx);
	assert_int_equal(unlock(der, len, PASS, &pfx, &err), 0);
	check_unlocked(&pfx, rsa_key, leaf);
	ps_pfx_free(&pfx);
	OPENSSL_free(der);
}

static void test_empty_password(void **state)
{
	struct spec s = modern();
	struct ps_pfx pfx;
	struct ps_err err;
	size_t len;
	unsigned char *der;

	(void)state;
	s.pass = "";
	der = make_pfx(&s, &len);
	ps_err_clear(&err);
	assert_int_equal(ps_pfx_load(der, len, &pfx, &err), 0);
	assert_int_equal(ps_pfx_password_empty(&pfx), 1);
	assert_int_equal(ps_pfx_unlock(&pfx, NULL, &err), 0);
	check_unlocked(&pfx, rsa_key, leaf);
	ps_pfx_free(&pfx);
	OPENSSL_free(der);
}

/* 3DES and a SHA-1 MAC are in OpenSSL's default provider. */
static void test_windows_3des(void **state)
{
	struct spec s = windows();
	struct ps_pfx pfx;
	struct ps_err err;
	size_t len;
	unsigned char *der = make_pfx(&s, &len);

	(void)state;
	assert_int_equal(unlock(der, len, PASS, &pfx, &err), 0);
	check_unlocked(&pfx, rsa_key, leaf);
	assert_int_equal(pfx.legacy, 0);
	ps_pfx_free(&pfx);
	check_refused(unlock(der, len, "wrong", &pfx, &err), &pfx, &err,
		      PS_EXIT_REFUSED, "bad-password");
	ps_pfx_free(&pfx);
	OPENSSL_free(der);
}

/* RC2-40 certificates (older Windows and openssl -legacy): the reader
 * loads OpenSSL's legacy provider itself, once per process: this test
 * runs before any other makes it load the provider (a part that does not
 * decrypt without a MAC does: a wrong password looks the same). */
static void test_legacy_rc2(void **state)
{
	struct spec s = windows();
	struct ps_pfx pfx;
	struct ps_err err;
	size_t len;
	unsigned char *der;

	(void)state;
	if (!legacy_ctx)
		skip(); /* OpenSSL's legacy provider is not installed */
	s.nid_cert = NID_pbe_WithSHA1And40BitRC2_CBC;
	s.ctx = legacy_ctx;
	der = make_pfx(&s, &len);
	check_refused(unlock(der, len, "wrong", &pfx, &err), &pfx, &err,
		      PS_EXIT_REFUSED, "bad-password");
	ps_pfx_free(&pfx);
	assert_int_equal(unlock(der, len, PASS, &pfx, &err), 0);
	check_unlocked(&pfx, rsa_key, leaf);
	assert_int_equal(pfx.legacy, 1);
	ps_pfx_free(&pfx);
	OPENSSL_free(der);
}

/* The MAC's round count is checked before anything is derived. */
static void test_mac_rounds_over_bound(void **state)
{
	struct spec s = modern();
	struct ps_pfx pfx;
	struct ps_err err;
	size_t len;
	unsigned char *der;

	(void)state;
	s.mac_iter = MARK_ITER;
	der = make_pfx(&s, &len);
	assert_int_equal(patch_iter(der, len), 1);
	ps_err_clear(&err);
	check_refused(ps_pfx_load(der, len, &pfx, &err), &pfx, &err,
		      PS_EXIT_FAIL, "bad-pfx");
	assert_null(pfx.p12);
	assert_non_null(strstr(err.msg, "1000001"));
	OPENSSL_free(der);
}

/* An encrypted part that asks for too many rounds, under a MAC that
 * verifies: refused before its key is derived. */
static void test_encryption_rounds_over_bound(void **state)
{
	struct spec s = modern();
	struct ps_pfx pfx;
	struct ps_err err;
	size_t len;
	unsigned char *der;
	const unsigned char *p;
	PKCS12 *p12;
	int rc;

	(void)state;
	s.iter = MARK_ITER;
	s.mac_md = NULL;
	der = make_pfx(&s, &len);
	assert_int_equal(patch_iter(der, len), 2); /* the key, the certs */
	p = der;
	p12 = d2i_PKCS12(NULL, &p, (long)len);
	assert_non_null(p12);
	OPENSSL_free(der);
	assert_true(PKCS12_set_mac(p12, PASS, -1, NULL, 0, 2048, EVP_sha256()));
	der = der_of(p12, &len);
	PKCS12_free(p12);
	rc = unlock(der, len, PASS, &pfx, &err);
	check_refused(rc, &pfx, &err, PS_EXIT_FAIL, "bad-pfx");
	assert_non_null(strstr(err.msg, "1000001"));
	ps_pfx_free(&pfx);
	OPENSSL_free(der);
}

static void test_no_key(void **state)
{
	struct spec s = modern();
	struct ps_pfx pfx;
	struct ps_err err;
	size_t len;
	unsigned char *der;

	(void)state;
	s.key = NULL;
	der = make_pfx(&s, &len);
	check_refused(unlock(der, len, PASS, &pfx, &err), &pfx, &err,
		      PS_EXIT_FAIL, "no-key");
	ps_pfx_free(&pfx);
	OPENSSL_free(der);
}

static void test_garbage(void **state)
{
	static const char pem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n";
	unsigned char junk[512];
	struct spec s = modern();
	struct ps_pfx pfx;
	struct ps_err err;
	size_t len;
	unsigned char *der = make_pfx(&s, &len);

	(void)state;
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (unsigned char)(i * 151 + 7);
	ps_err_clear(&err);
	check_refused(ps_pfx_load(junk, sizeof(junk), &pfx, &err), &pfx, &err,
		      PS_EXIT_FAIL, "bad-pfx");
	assert_null(pfx.p12);
	/* truncated */
	ps_err_clear(&err);
	check_refused(ps_pfx_load(der, len / 2, &pfx, &err), &pfx, &err,
		      PS_EXIT_FAIL, "bad-pfx");
	assert_null(pfx.p12);
	/* PEM text: said so */
	ps_err_clear(&err);
	check_refused(
	    ps_pfx_load((const unsigned char *)pem, strlen(pem), &pfx, &err),
	    &pfx, &err, PS_EXIT_FAIL, "bad-pfx");
	assert_non_null(strstr(err.msg, "PEM"));
	OPENSSL_free(der);
}

static void test_read_file(void **state)
{
	char path[] = "/tmp/psrenew-test-pfx.XXXXXX";
	struct spec s = modern();
	struct ps_err err;
	unsigned char *got;
	size_t len, got_len;
	unsigned char *der = make_pfx(&s, &len);
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	/* empty: exit 1 */
	ps_err_clear(&err);
	assert_int_equal(ps_pfx_read_file(path, &got, &got_len, &err),
			 PS_EXIT_FAIL);
	assert_string_equal(err.code, "bad-pfx");
	assert_null(got);
	assert_int_equal(write(fd, der, len), (ssize_t)len);
	close(fd);
	ps_err_clear(&err);
	assert_int_equal(ps_pfx_read_file(path, &got, &got_len, &err), 0);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, der, len);
	free(got);
	unlink(path);
	/* not there: exit 2 */
	ps_err_clear(&err);
	assert_int_equal(ps_pfx_read_file(path, &got, &got_len, &err),
			 PS_EXIT_USAGE);
	assert_string_equal(err.code, "no-such-file");
	OPENSSL_free(der);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_modern_right_password),
		cmocka_unit_test(test_ec_key),
		cmocka_unit_test(test_wrong_password),
		cmocka_unit_test(test_empty_password),
		cmocka_unit_test(test_windows_3des),
		/* before any other test makes the reader load the provider */
		cmocka_unit_test(test_legacy_rc2),
		cmocka_unit_test(test_wrong_password_no_mac),
		cmocka_unit_test(test_mac_rounds_over_bound),
		cmocka_unit_test(test_encryption_rounds_over_bound),
		cmocka_unit_test(test_no_key),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_read_file),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

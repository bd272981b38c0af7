/* Unit tests: the token's object index (lib/p11obj.c ps_token_index) and
 * the lookups that use it (ps_keypair_find, ps_install_cert): answers
 * from memory, kept up to date by psrenew's own changes, and right when
 * another program changes the token behind its back. On a SoftHSM2 token
 * of its own (tests/unit/softhsm.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <psrenew/install.h>
#include <psrenew/keypair.h>
#include <psrenew/p11obj.h>
#include <psrenew/token.h>

#include "softhsm.h"

static int setup(void **state)
{
	(void)state;
	return softhsm_up();
}

static int teardown(void **state)
{
	(void)state;
	return softhsm_down();
}

static void gen(struct ps_token *tok, struct ps_keypair *kp)
{
	struct ps_keyspec ks;
	struct ps_err err;

	ps_err_clear(&err);
	assert_int_equal(ps_keyspec_parse("ec:prime256v1", &ks, &err), 0);
	assert_int_equal(ps_keypair_generate(tok, &ks, "index test", kp, &err),
			 0);
}

/* A certificate for kp's public key, self-signed by a software key (the
 * install path checks only that the key matches and it has not
 * expired). */
static X509 *cert_for(const struct ps_keypair *kp)
{
	EVP_PKEY *ca = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	assert_non_null(ca);
	assert_non_null(x);
	assert_true(X509_NAME_add_entry_by_txt(
	    n, "CN", MBSTRING_UTF8, (const unsigned char *)"index test", -1, -1,
	    0));
	assert_true(X509_set_subject_name(x, n));
	assert_true(X509_set_issuer_name(x, n));
	assert_true(X509_set_version(x, 2));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 7));
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	assert_true(X509_set_pubkey(x, kp->pubkey));
	assert_true(X509_sign(x, ca, EVP_sha256()));
	X509_NAME_free(n);
	EVP_PKEY_free(ca);
	return x;
}

static long count(struct ps_token *tok, CK_OBJECT_CLASS cls,
		  const struct ps_keypair *kp)
{
	CK_OBJECT_HANDLE hs[4];

	return ps_token_index_find(tok, cls, kp->id, kp->id_len, hs, 4);
}

/* No index: lookups say so (-1); the index then holds what was there
 * before and what psrenew makes or removes afterwards. */
static void test_index_follows_own_changes(void **state)
{
	struct ps_token *tok = hsm_token();
	struct ps_keypair a, b, found;
	struct ps_err err;

	(void)state;
	if (!tok)
		skip();
	ps_err_clear(&err);
	gen(tok, &a);
	assert_int_equal(count(tok, CKO_PRIVATE_KEY, &a), -1);
	assert_int_equal(ps_token_index(tok, &err), 0);
	assert_int_equal(count(tok, CKO_PRIVATE_KEY, &a), 1);
	assert_int_equal(count(tok, CKO_PUBLIC_KEY, &a), 1);
	assert_int_equal(count(tok, CKO_CERTIFICATE, &a), 0);

	gen(tok, &b);
	assert_int_equal(count(tok, CKO_PRIVATE_KEY, &b), 1);
	assert_int_equal(count(tok, CKO_PUBLIC_KEY, &b), 1);
	assert_int_equal(ps_keypair_find(tok, b.id, b.id_len, &found, &err), 0);
	assert_int_equal(found.priv, b.priv);
	assert_int_equal(EVP_PKEY_eq(found.pubkey, b.pubkey), 1);
	ps_keypair_free(&found);

	assert_int_equal(ps_keypair_destroy(tok, &b, &err), 0);
	assert_int_equal(count(tok, CKO_PRIVATE_KEY, &b), 0);
	assert_int_equal(count(tok, CKO_PUBLIC_KEY, &b), 0);
	assert_int_not_equal(ps_keypair_find(tok, b.id, b.id_len, &found, NULL),
			     0);
	ps_keypair_free(&b);

	assert_int_equal(ps_keypair_destroy(tok, &a, &err), 0);
	ps_keypair_free(&a);
	/* a new session: the index goes (handles may not survive it) */
	tok->rw = 0;
	assert_int_equal(ps_token_open(tok, 1, &err), 0);
	assert_null(tok->index);
	tok->logged_in = 0;
	assert_int_equal(hsm_login(tok, &err), 0);
}

/* Another program changes the token after the index was made: a key it
 * made is still found (a miss is searched for), a key it removed is not
 * found (a hit is checked). */
static void test_index_behind_our_back(void **state)
{
	struct ps_token *tok = hsm_token();
	CK_FUNCTION_LIST *fl;
	struct ps_keypair a, b, found;
	struct ps_err err;

	(void)state;
	if (!tok)
		skip();
	fl = ps_module_functions(tok->mod);
	ps_err_clear(&err);
	gen(tok, &a);
	assert_int_equal(ps_token_index(tok, &err), 0);
	/* removed behind the index's back */
	assert_int_equal(fl->C_DestroyObject(tok->session, a.priv), CKR_OK);
	assert_int_equal(fl->C_DestroyObject(tok->session, a.pub), CKR_OK);
	assert_int_equal(count(tok, CKO_PRIVATE_KEY, &a), 1);
	assert_int_not_equal(ps_keypair_find(tok, a.id, a.id_len, &found, NULL),
			     0);
	assert_int_equal(count(tok, CKO_PRIVATE_KEY, &a), 0);
	ps_keypair_free(&a);

	/* made behind its back: dropped from the index, then searched */
	gen(tok, &b);
	ps_token_index_forget(tok, b.priv);
	ps_token_index_forget(tok, b.pub);
	assert_int_equal(count(tok, CKO_PRIVATE_KEY, &b), 0);
	assert_int_equal(ps_keypair_find(tok, b.id, b.id_len, &found, &err), 0);
	assert_int_equal(found.priv, b.priv);
	ps_keypair_free(&found);
	assert_int_equal(ps_keypair_destroy(tok, &b, &err), 0);
	ps_keypair_free(&b);
}

/* Installing: the certificate goes into the index; a second install of
 * the same certificate finds it there ("already"). */
static void test_install_uses_index(void **state)
{
	struct ps_token *tok = hsm_token();
	struct ps_install_opts o = { .ca_bundle = NULL };
	struct ps_install_result res;
	struct ps_keypair kp;
	struct ps_err err;
	STACK_OF(X509) *certs = sk_X509_new_null();
	X509 *x;

	(void)state;
	if (!tok)
		skip();
	ps_err_clear(&err);
	gen(tok, &kp);
	assert_int_equal(ps_token_index(tok, &err), 0);
	x = cert_for(&kp);
	assert_true(sk_X509_push(certs, x));
	assert_int_equal(
	    ps_install_cert(tok, certs, kp.id, kp.id_len, NULL, &o, &res, &err),
	    0);
	assert_int_equal(res.already, 0);
	assert_int_equal(count(tok, CKO_CERTIFICATE, &kp), 1);
	ps_install_result_free(&res);
	assert_int_equal(
	    ps_install_cert(tok, certs, kp.id, kp.id_len, NULL, &o, &res, &err),
	    0);
	assert_int_equal(res.already, 1);
	assert_int_equal(count(tok, CKO_CERTIFICATE, &kp), 1);
	assert_int_equal(ps_module_functions(tok->mod)->C_DestroyObject(
			     tok->session, res.handle),
			 CKR_OK);
	ps_token_index_forget(tok, res.handle);
	ps_install_result_free(&res);
	assert_int_equal(ps_keypair_destroy(tok, &kp, &err), 0);
	ps_keypair_free(&kp);
	sk_X509_pop_free(certs, X509_free);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_follows_own_changes),
		cmocka_unit_test(test_index_behind_our_back),
		cmocka_unit_test(test_install_uses_index),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

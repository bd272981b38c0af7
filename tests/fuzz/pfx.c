/* libFuzzer harness "pfx": a PKCS#12 (PFX) file as ps-pfx-import reads it,
 * up to the point where it would touch the token. This file includes
 * lib/pfx_read.c (to lower its bounds, below) and calls lib/pfx_store.c's
 * functions that come before the token.
 *   - ps_pfx_load and ps_pfx_password_empty;
 *   - ps_pfx_unlock with the seeds' password (which has diacritics, so the
 *     form older OpenSSL made of it is tried too) and with the empty one
 *     (no password when the file opens without one, as ps-pfx-import
 *     passes it), each on a freshly loaded file: the MAC, the decryption
 *     of every safe and bag (with the legacy provider once a file needs
 *     it), the choice of the key, its certificate and the chain, the key's
 *     consistency check;
 *   - what ps_pfx_import derives before it talks to the token: the CKA_ID
 *     (ps_pubkey_id), the label (ps_pfx_default_label), the validity
 *     warning, the key as PKCS#11 attributes (ps_pfx_key_from), which
 *     chain certificates a token that holds the leaf and the first CA
 *     certificate still lacks (ps_pfx_chain_missing), and each CA
 *     certificate's label and CKA_ID.
 * A failure must say why and leave nothing unlocked; a success must give a
 * key that matches its certificate and a chain of CA certificates, each
 * once; labels are short and hold no control characters. Anything else
 * aborts.
 *
 * The bound on key derivation rounds is lowered (PS_PFX_MAX_ITER, and with
 * it PS_PFX_MAX_ROUNDS, before lib/pfx_read.c sees them): at the real bounds an
 * input may cost seconds by design, and here the checks must be reachable
 * by a round count of two bytes and every execution must stay fast. */
#include <psrenew/pfx_read.h>
#undef PS_PFX_MAX_ITER
#define PS_PFX_MAX_ITER 1024L

#include "../../lib/pfx_read.c"

#include <psrenew/keypair.h>
#include <psrenew/pfx_store.h>

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The password of the seeds (tests/fuzz/corpus/pfx), UTF-8. */
#define FUZZ_PASS "Z\xc3\xa1loha Zq8!"

static void check_label(const char *label)
{
	size_t n = strlen(label);

	if (n > PS_PFX_MAX_LABEL)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)label[i] < 0x20 || label[i] == 0x7f)
			abort();
}

static void check_failure(const struct ps_pfx *pfx, const struct ps_err *err)
{
	if (!err->msg[0] || !err->code[0] || err->status == 0)
		abort();
	if (pfx->key || pfx->cert || pfx->chain || pfx->friendly_name)
		abort();
}

/* The PKCS#11 form of the key, as ps_pfx_import builds it. */
static void check_p11key(const struct ps_pfx *pfx)
{
	struct ps_pfx_key k;
	struct ps_err err;

	ps_err_clear(&err);
	if (ps_pfx_key_from(pfx, &k, &err) != 0) {
		if (!err.msg[0])
			abort();
		return;
	}
	if (k.ec) {
		if (!k.ec_params.n || !k.ec_point.n || !k.ec_value.n)
			abort();
	} else if (k.nrsa < 3 || k.rsa_attrs[0].type != CKA_MODULUS ||
		   k.rsa_attrs[1].type != CKA_PUBLIC_EXPONENT ||
		   !k.rsa_attrs[0].ulValueLen) {
		abort();
	}
	ps_pfx_key_free(&k);
}

/* Which chain certificates a token holding the leaf and the first CA
 * certificate lacks. */
static void check_chain_missing(const struct ps_pfx *pfx)
{
	int nchain = sk_X509_num(pfx->chain);
	struct ps_tobj objs[2];
	unsigned char *der[2] = { NULL, NULL };
	int *missing = calloc((size_t)(nchain > 0 ? nchain : 1), sizeof(int));
	unsigned long need = 0;
	size_t nobjs = 0, n;
	int ca_there = 0;

	if (!missing)
		abort();
	memset(objs, 0, sizeof(objs));
	for (int i = 0; i < 2; i++) {
		X509 *x = i == 0 ? pfx->cert : sk_X509_value(pfx->chain, 0);
		int len = x ? i2d_X509(x, &der[i]) : 0;

		if (len > 0) {
			objs[nobjs].cls = CKO_CERTIFICATE;
			objs[nobjs].value = der[i];
			objs[nobjs].value_len = (size_t)len;
			nobjs++;
			ca_there = i == 1;
		}
	}
	n = ps_pfx_chain_missing(pfx, objs, nobjs, missing, &need);
	if (ca_there && (n > (size_t)nchain - 1 || missing[0]))
		abort();
	if (nchain == 0 && (n || need))
		abort();
	OPENSSL_free(der[0]);
	OPENSSL_free(der[1]);
	free(missing);
	ERR_clear_error();
}

static void check_unlocked(const struct ps_pfx *pfx)
{
	struct ps_pfx_import_result res;
	char label[PS_PFX_MAX_LABEL + 1];
	unsigned char id[20];

	if (!pfx->key || !pfx->cert || !pfx->chain)
		abort();
	if (EVP_PKEY_eq(X509_get0_pubkey(pfx->cert), pfx->key) != 1)
		abort();
	if (!EVP_PKEY_is_a(pfx->key, "RSA") && !EVP_PKEY_is_a(pfx->key, "EC"))
		abort();
	for (int i = 0; i < sk_X509_num(pfx->chain); i++) {
		X509 *x = sk_X509_value(pfx->chain, i);

		if (X509_check_ca(x) == 0 || X509_cmp(x, pfx->cert) == 0)
			abort();
		for (int j = 0; j < i; j++)
			if (X509_cmp(x, sk_X509_value(pfx->chain, j)) == 0)
				abort();
		/* As store_ca makes them. */
		ps_pfx_default_label(label, x,
				     (const char *)X509_alias_get0(x, NULL));
		check_label(label);
		(void)ps_pubkey_id(X509_get0_pubkey(x), id);
	}
	/* As ps_pfx_import starts. */
	memset(&res, 0, sizeof(res));
	(void)ps_pubkey_id(pfx->key, res.id);
	ps_pfx_default_label(res.label, pfx->cert, pfx->friendly_name);
	check_label(res.label);
	ps_pfx_make_label(res.label, pfx->friendly_name);
	check_label(res.label);
	ps_pfx_validity_warning(pfx->cert, &res);
	(void)EVP_PKEY_get_bits(pfx->key);
	check_p11key(pfx);
	check_chain_missing(pfx);
	ERR_clear_error();
}

static void unlock(const uint8_t *data, size_t size, const char *pass)
{
	struct ps_pfx pfx;
	struct ps_err err;

	ps_err_clear(&err);
	if (ps_pfx_load(data, size, &pfx, &err) != 0)
		abort(); /* it loaded a moment ago */
	if (ps_pfx_unlock(&pfx, pass, &err) == 0)
		check_unlocked(&pfx);
	else
		check_failure(&pfx, &err);
	ps_pfx_free(&pfx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_pfx pfx;
	struct ps_err err;
	int empty;

	ps_err_clear(&err);
	if (ps_pfx_load(data, size, &pfx, &err) != 0) {
		if (!err.msg[0] || pfx.p12)
			abort();
		return 0;
	}
	empty = ps_pfx_password_empty(&pfx);
	ps_pfx_free(&pfx);
	unlock(data, size, FUZZ_PASS);
	unlock(data, size, empty ? NULL : "");
	return 0;
}

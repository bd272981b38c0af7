/* psrenew: a PFX's key, certificate and CA chain written to the token
 * (ps-pfx-import's second half), with what is there already kept. */
#include <psrenew/pfx_store.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>

#include <psrenew/cert.h>
#include <psrenew/ckr.h>
#include <psrenew/install.h>
#include <psrenew/keypair.h>
#include <psrenew/p11obj.h>
#include <psrenew/codec.h>

static const char full_hint[] =
    "this is the guide's error 621: remove an expired or superseded "
    "certificate with ps-token-clean (keep the old commercial certificate "
    "until JIP has the new one), then run ps-pfx-import again";

static void blob_clear(struct ps_pfx_blob *b)
{
	OPENSSL_clear_free(b->p, b->n);
	b->p = NULL;
	b->n = 0;
}

/* The big-endian bytes of a BIGNUM parameter of the key; -1 if absent. */
static int bn_param(const EVP_PKEY *key, const char *name, size_t pad,
		    struct ps_pfx_blob *out)
{
	BIGNUM *bn = NULL;
	size_t n;

	out->p = NULL;
	out->n = 0;
	if (!EVP_PKEY_get_bn_param(key, name, &bn)) {
		ERR_clear_error();
		return -1;
	}
	n = (size_t)BN_num_bytes(bn);
	if (pad > n)
		n = pad;
	out->p = OPENSSL_malloc(n ? n : 1);
	if (!out->p || BN_bn2binpad(bn, out->p, (int)n) < 0) {
		BN_clear_free(bn);
		blob_clear(out);
		return -1;
	}
	out->n = n;
	BN_clear_free(bn);
	return 0;
}

static const struct {
	CK_ATTRIBUTE_TYPE type;
	const char *param;
	int required;
} rsa_parts[] = {
	{ CKA_MODULUS, OSSL_PKEY_PARAM_RSA_N, 1 },
	{ CKA_PUBLIC_EXPONENT, OSSL_PKEY_PARAM_RSA_E, 1 },
	{ CKA_PRIVATE_EXPONENT, OSSL_PKEY_PARAM_RSA_D, 1 },
	{ CKA_PRIME_1, OSSL_PKEY_PARAM_RSA_FACTOR1, 0 },
	{ CKA_PRIME_2, OSSL_PKEY_PARAM_RSA_FACTOR2, 0 },
	{ CKA_EXPONENT_1, OSSL_PKEY_PARAM_RSA_EXPONENT1, 0 },
	{ CKA_EXPONENT_2, OSSL_PKEY_PARAM_RSA_EXPONENT2, 0 },
	{ CKA_COEFFICIENT, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 0 },
};
#define N_RSA_PARTS (sizeof(rsa_parts) / sizeof(rsa_parts[0]))
_Static_assert(N_RSA_PARTS == PS_PFX_RSA_PARTS, "struct ps_pfx_key's size");

void ps_pfx_key_free(struct ps_pfx_key *k)
{
	for (size_t i = 0; i < N_RSA_PARTS; i++)
		blob_clear(&k->rsa[i]);
	blob_clear(&k->ec_params);
	blob_clear(&k->ec_point);
	blob_clear(&k->ec_value);
}

static int ec_parts(const EVP_PKEY *key, X509 *leaf, struct ps_pfx_key *k)
{
	char group[64];
	const ASN1_BIT_STRING *bits;
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	unsigned char *der = NULL;
	int nid, len, rc = -1;

	if (!os ||
	    !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
					    group, sizeof(group), NULL))
		goto out;
	nid = OBJ_sn2nid(group);
	if (nid == NID_undef)
		nid = OBJ_txt2nid(group);
	len = nid == NID_undef ? -1 : i2d_ASN1_OBJECT(OBJ_nid2obj(nid), &der);
	if (len <= 0)
		goto out;
	k->ec_params.p = der;
	k->ec_params.n = (size_t)len;
	der = NULL;
	/* The point as the certificate has it (DER OCTET STRING). */
	bits = X509_get0_pubkey_bitstr(leaf);
	if (!bits ||
	    !ASN1_OCTET_STRING_set(os, ASN1_STRING_get0_data(bits),
				   ASN1_STRING_length(bits)) ||
	    (len = i2d_ASN1_OCTET_STRING(os, &der)) <= 0)
		goto out;
	k->ec_point.p = der;
	k->ec_point.n = (size_t)len;
	rc = bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY,
		      (size_t)(EVP_PKEY_get_bits(key) + 7) / 8, &k->ec_value);
out:
	ASN1_OCTET_STRING_free(os);
	ERR_clear_error();
	return rc;
}

int ps_pfx_key_from(const struct ps_pfx *pfx, struct ps_pfx_key *k,
		    struct ps_err *err)
{
	BIGNUM *extra = NULL;

	memset(k, 0, sizeof(*k));
	k->ec = EVP_PKEY_is_a(pfx->key, "EC");
	if (k->ec) {
		if (ec_parts(pfx->key, pfx->cert, k) == 0)
			return 0;
		ps_pfx_key_free(k);
		return ps_err_set(err, PS_EXIT_FAIL, "unsupported-key", NULL,
				  "the EC key in the PFX is not on a named "
				  "curve a token knows");
	}
	if (EVP_PKEY_get_bn_param(pfx->key, OSSL_PKEY_PARAM_RSA_FACTOR3,
				  &extra)) {
		BN_clear_free(extra);
		return ps_err_set(err, PS_EXIT_FAIL, "unsupported-key", NULL,
				  "the PFX holds a multi-prime RSA key; "
				  "PKCS#11 tokens take two-prime keys");
	}
	ERR_clear_error();
	for (size_t i = 0; i < N_RSA_PARTS; i++) {
		if (bn_param(pfx->key, rsa_parts[i].param, 0, &k->rsa[i]) < 0) {
			if (!rsa_parts[i].required)
				continue;
			ps_pfx_key_free(k);
			return ps_err_set(err, PS_EXIT_FAIL, "bad-pfx",
					  ps_pfx_damaged_hint,
					  "the RSA key in the PFX lacks a "
					  "component");
		}
		k->rsa_attrs[k->nrsa++] =
		    (CK_ATTRIBUTE){ rsa_parts[i].type, k->rsa[i].p,
				    (CK_ULONG)k->rsa[i].n };
	}
	return 0;
}

/* The first object matching t, or 0. */
static CK_OBJECT_HANDLE find_first(struct ps_token *tok, CK_ATTRIBUTE *t,
				   CK_ULONG n)
{
	CK_OBJECT_HANDLE h = 0;
	CK_ULONG got = 0;

	ps_p11_find(tok, t, n, &h, 1, &got);
	return got == 1 ? h : 0;
}

static int get_id(struct ps_token *tok, CK_OBJECT_HANDLE h, unsigned char *id,
		  size_t *len)
{
	CK_ATTRIBUTE a = { CKA_ID, id, 64 };

	if (ps_p11_get(tok, h, &a, 1) != CKR_OK || a.ulValueLen == 0 ||
	    a.ulValueLen > 64)
		return -1;
	*len = a.ulValueLen;
	return 0;
}

int ps_pfx_find_key(struct ps_token *tok, const struct ps_pfx_key *k,
		    struct ps_pfx_import_result *res, CK_OBJECT_HANDLE *key,
		    struct ps_err *err)
{
	CK_OBJECT_CLASS priv = CKO_PRIVATE_KEY, pub = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE by_id[] = { { CKA_CLASS, &priv, sizeof(priv) },
				 { CKA_ID, res->id, res->id_len } };
	CK_OBJECT_HANDLE h = find_first(tok, by_id, 2);
	unsigned char id[64];
	size_t len;

	if (h && !k->ec) {
		/* The same id must be the same key. */
		unsigned char *n = malloc(k->rsa[0].n + 1);
		CK_ATTRIBUTE a = { CKA_MODULUS, n, (CK_ULONG)k->rsa[0].n + 1 };
		int same = n && ps_p11_get(tok, h, &a, 1) == CKR_OK &&
			   a.ulValueLen == k->rsa[0].n &&
			   !memcmp(n, k->rsa[0].p, k->rsa[0].n);

		free(n);
		if (!same) {
			char *hex = ps_hex(res->id, res->id_len);

			ps_err_set(err, PS_EXIT_REFUSED, "id-conflict", NULL,
				   "another key on token '%s' already has "
				   "CKA_ID %s; nothing was written",
				   tok->label, hex ? hex : "?");
			free(hex);
			return PS_EXIT_REFUSED;
		}
	}
	if (h) {
		res->key_was_there = 1;
		*key = h;
		return 0;
	}
	if (!k->ec) {
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &priv, sizeof(priv) },
				     k->rsa_attrs[0] };

		h = find_first(tok, t, 2);
	} else {
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &pub, sizeof(pub) },
				     { CKA_EC_POINT, k->ec_point.p,
				       (CK_ULONG)k->ec_point.n } };
		CK_OBJECT_HANDLE ph = find_first(tok, t, 2);

		h = 0;
		if (ph && get_id(tok, ph, id, &len) == 0) {
			CK_ATTRIBUTE t2[] = { { CKA_CLASS, &priv,
						sizeof(priv) },
					      { CKA_ID, id, len } };

			h = find_first(tok, t2, 2);
		}
	}
	if (h && get_id(tok, h, id, &len) == 0) {
		memcpy(res->id, id, len);
		res->id_len = len;
		res->key_was_there = 1;
		*key = h;
	}
	return 0;
}

CK_OBJECT_HANDLE ps_pfx_find_pubkey(struct ps_token *tok,
				    const unsigned char *id, size_t len)
{
	CK_OBJECT_CLASS pub = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &pub, sizeof(pub) },
			     { CKA_ID, (void *)id, len } };

	return find_first(tok, t, 2);
}

long ps_pfx_cert_index(const struct ps_tobj *objs, size_t n, X509 *x)
{
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der);
	long at = -1;

	for (size_t i = 0; len > 0 && i < n && at < 0; i++)
		if (objs[i].value_len == (size_t)len &&
		    !memcmp(objs[i].value, der, (size_t)len))
			at = (long)i;
	OPENSSL_free(der);
	return at;
}

void ps_pfx_make_label(char *out, const char *in)
{
	size_t n = 0;

	for (; in && in[n] && n < PS_PFX_MAX_LABEL; n++)
		out[n] =
		    (unsigned char)in[n] < 0x20 || in[n] == 0x7f ? ' ' : in[n];
	/* Cut: never inside a character (in[n] continues one). */
	while (in && n > 0 && ((unsigned char)in[n] & 0xc0) == 0x80)
		n--;
	out[n] = '\0';
}

void ps_pfx_default_label(char *out, X509 *x, const char *friendly)
{
	struct ps_cert c;

	if (friendly && *friendly) {
		ps_pfx_make_label(out, friendly);
		return;
	}
	if (ps_cert_from_x509(x, &c, NULL) == 0 && c.cn) {
		ps_pfx_make_label(out, c.cn);
	} else {
		ps_pfx_make_label(out, "imported");
	}
	ps_cert_free(&c);
}

size_t ps_pfx_rollback(struct ps_token *tok, struct ps_pfx_written *w,
		       const struct ps_pfx_import_result *res,
		       struct ps_err *err)
{
	size_t left = 0, wrote = w->n;

	while (w->n > 0) {
		CK_RV rv = ps_p11_destroy(tok, w->h[w->n - 1]);

		if (rv != CKR_OK && rv != CKR_OBJECT_HANDLE_INVALID)
			left++;
		w->n--;
	}
	if (left) {
		char *hex = ps_hex(res->id, res->id_len);

		snprintf(err->hint, sizeof(err->hint),
			 "%zu object(s) written could not be removed again: "
			 "remove them with pkcs11-tool --login "
			 "--delete-object --type privkey|pubkey|cert --id %s",
			 left, hex ? hex : "?");
		free(hex);
	} else if (wrote && err->msg[0]) {
		size_t l = strlen(err->msg);

		snprintf(err->msg + l, sizeof(err->msg) - l,
			 "; nothing was left on the token");
	}
	return left;
}

static int create(struct ps_token *tok, CK_ATTRIBUTE *t, CK_ULONG n,
		  struct ps_pfx_written *w, const char *what,
		  struct ps_err *err)
{
	CK_OBJECT_HANDLE h = 0;
	struct ps_p11_write pw = { what, what, full_hint };
	int rc = ps_p11_create(tok, t, n, &h, &pw, err);

	if (!rc)
		w->h[w->n++] = h;
	return rc;
}

struct der {
	unsigned char *subject;
	int subject_len;
};

static int store_key(struct ps_token *tok, const struct ps_pfx_key *k,
		     const struct ps_pfx_import_result *res,
		     const struct der *d, struct ps_pfx_written *w,
		     struct ps_err *err)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE kt = k->ec ? CKK_EC : CKK_RSA;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE t[13 + N_RSA_PARTS] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_UNWRAP, &no, sizeof(no) },
		{ CKA_DERIVE, &no, sizeof(no) },
		{ CKA_ID, (void *)res->id, res->id_len },
		{ CKA_LABEL, (void *)res->label, strlen(res->label) },
	};
	CK_ULONG n = 11;

	t[n++] =
	    (CK_ATTRIBUTE){ CKA_SUBJECT, d->subject, (CK_ULONG)d->subject_len };
	if (k->ec) {
		t[n++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, k->ec_params.p,
					 (CK_ULONG)k->ec_params.n };
		t[n++] = (CK_ATTRIBUTE){ CKA_VALUE, k->ec_value.p,
					 (CK_ULONG)k->ec_value.n };
	} else {
		t[n++] = (CK_ATTRIBUTE){ CKA_DECRYPT, &yes, sizeof(yes) };
		for (int i = 0; i < k->nrsa; i++)
			t[n++] = k->rsa_attrs[i];
	}
	return create(tok, t, n, w, "the private key", err);
}

static int store_pubkey(struct ps_token *tok, const struct ps_pfx_key *k,
			const struct ps_pfx_import_result *res,
			const struct der *d, struct ps_pfx_written *w,
			struct ps_err *err)
{
	CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
	CK_KEY_TYPE kt = k->ec ? CKK_EC : CKK_RSA;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE t[12] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &no, sizeof(no) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
		{ CKA_WRAP, &no, sizeof(no) },
		{ CKA_ID, (void *)res->id, res->id_len },
		{ CKA_LABEL, (void *)res->label, strlen(res->label) },
		{ CKA_SUBJECT, d->subject, (CK_ULONG)d->subject_len },
	};
	CK_ULONG n = 9;

	if (k->ec) {
		t[n++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, k->ec_params.p,
					 (CK_ULONG)k->ec_params.n };
		t[n++] = (CK_ATTRIBUTE){ CKA_EC_POINT, k->ec_point.p,
					 (CK_ULONG)k->ec_point.n };
	} else {
		t[n++] = (CK_ATTRIBUTE){ CKA_ENCRYPT, &yes, sizeof(yes) };
		t[n++] = k->rsa_attrs[0]; /* modulus */
		t[n++] = k->rsa_attrs[1]; /* public exponent */
	}
	return create(tok, t, n, w, "the public key", err);
}

/* A CA certificate of the chain, as a certificate of category
 * "authority" with the CKA_ID of its public key. */
static int store_ca(struct ps_token *tok, X509 *x, struct ps_pfx_written *w,
		    struct ps_err *err)
{
	unsigned char id[20];
	char label[PS_PFX_MAX_LABEL + 1];
	struct ps_certobj o = { .id = id,
				.id_len = sizeof(id),
				.label = label,
				.authority = 1,
				.what = "a CA certificate",
				.doing = "a CA certificate" };
	CK_OBJECT_HANDLE h = 0;
	int rc = -1;

	ps_pfx_default_label(label, x, (const char *)X509_alias_get0(x, NULL));
	if (ps_pubkey_id(X509_get0_pubkey(x), id) == 0)
		rc = ps_token_write_cert(tok, x, &o, &h, err);
	if (rc < 0)
		rc = ps_err_set(err, PS_EXIT_FAIL, "bad-pfx",
				ps_pfx_damaged_hint,
				"a CA certificate in the PFX cannot be "
				"encoded");
	else if (rc == 0)
		w->h[w->n++] = h;
	else if (!strcmp(err->code, "token-full"))
		snprintf(err->hint, sizeof(err->hint), "%s", full_hint);
	ERR_clear_error();
	return rc;
}

int ps_pfx_check_mechanism(struct ps_token *tok, const struct ps_pfx *pfx,
			   int ec, struct ps_err *err)
{
	CK_MECHANISM_INFO mi;
	CK_MECHANISM_TYPE m = ec ? CKM_ECDSA : CKM_RSA_PKCS;
	const char *name = ec ? "CKM_ECDSA" : "CKM_RSA_PKCS";
	unsigned long bits = (unsigned long)EVP_PKEY_get_bits(pfx->key);
	CK_RV rv = ps_p11_mechanism(tok, m, &mi);
	const char *hint = "this is the guide's error 622: install a newer "
			   "driver (PKCS#11 module) for the token";

	if (rv != CKR_OK && rv != CKR_MECHANISM_INVALID)
		return ps_ckr_err(err, rv, tok,
				  "asking the token about a mechanism");
	if (rv == CKR_MECHANISM_INVALID)
		return ps_err_set(err, PS_EXIT_TOKEN, "mechanism-missing", hint,
				  "the token's module %s cannot sign with %s "
				  "keys (%s); nothing was written",
				  ps_module_describe(tok->mod),
				  ec ? "EC" : "RSA", name);
	if (rv == CKR_OK && (mi.flags & CKF_SIGN) && mi.ulMaxKeySize &&
	    (bits < mi.ulMinKeySize || bits > mi.ulMaxKeySize))
		return ps_err_set(err, PS_EXIT_TOKEN, "mechanism-missing", hint,
				  "the token's module %s takes %s keys of "
				  "%lu to %lu bits, not %lu; nothing was "
				  "written",
				  ps_module_describe(tok->mod),
				  ec ? "EC" : "RSA",
				  (unsigned long)mi.ulMinKeySize,
				  (unsigned long)mi.ulMaxKeySize, bits);
	return 0;
}

int ps_pfx_check_room(struct ps_token *tok, unsigned long need,
		      struct ps_err *err)
{
	unsigned long free_bytes;

	if (!need || ps_token_refresh(tok, NULL) != 0 ||
	    !ps_token_free_memory(tok, &free_bytes) || free_bytes >= need)
		return 0;
	return ps_err_set(err, PS_EXIT_TOKEN, "token-full", full_hint,
			  "token '%s' is full: %lu bytes free, the import "
			  "needs about %lu (the guide's error 621); nothing "
			  "was written",
			  tok->label, free_bytes, need);
}

void ps_pfx_validity_warning(X509 *x, struct ps_pfx_import_result *res)
{
	if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0)
		snprintf(res->warning, sizeof(res->warning),
			 "the certificate has expired; it was imported all "
			 "the same");
	else if (X509_cmp_current_time(X509_get0_notBefore(x)) >= 0)
		snprintf(res->warning, sizeof(res->warning),
			 "the certificate is not valid yet");
	ERR_clear_error();
}

size_t ps_pfx_chain_missing(const struct ps_pfx *pfx,
			    const struct ps_tobj *objs, size_t nobjs,
			    int *missing, unsigned long *need)
{
	size_t n = 0;

	for (int i = 0; i < sk_X509_num(pfx->chain); i++) {
		X509 *x = sk_X509_value(pfx->chain, i);

		missing[i] = ps_pfx_cert_index(objs, nobjs, x) < 0;
		if (missing[i]) {
			*need += (unsigned long)i2d_X509(x, NULL);
			n++;
		}
	}
	return n;
}

int ps_pfx_write_all(struct ps_token *tok, const struct ps_pfx *pfx,
		     const struct ps_pfx_import_opts *o,
		     const struct ps_pfx_key *k, const int *missing,
		     int pub_there, struct ps_pfx_import_result *res,
		     struct ps_pfx_written *w, struct ps_err *err)
{
	struct der d = { NULL, 0 };
	CK_OBJECT_HANDLE h;
	int rc = 0;

	d.subject_len =
	    i2d_X509_NAME(X509_get_subject_name(pfx->cert), &d.subject);
	if (d.subject_len <= 0)
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "cannot encode the subject");
	if (!res->key_was_there) {
		rc = store_key(tok, k, res, &d, w, err);
		res->key_added = !rc;
	}
	if (!rc && !pub_there) {
		rc = store_pubkey(tok, k, res, &d, w, err);
		res->pub_added = !rc;
	}
	if (!rc && !res->cert_was_there) {
		rc = ps_token_store_cert(tok, pfx->cert, res->id, res->id_len,
					 res->label, &h, err);
		if (!rc)
			w->h[w->n++] = h;
		else if (!strcmp(err->code, "token-full"))
			snprintf(err->hint, sizeof(err->hint), "%s", full_hint);
		res->cert_added = !rc;
	}
	for (int i = 0; !rc && o->with_chain && i < sk_X509_num(pfx->chain);
	     i++)
		if (missing[i]) {
			rc =
			    store_ca(tok, sk_X509_value(pfx->chain, i), w, err);
			res->chain_added += !rc;
		}
	OPENSSL_free(d.subject);
	return rc;
}

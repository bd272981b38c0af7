/* psrenew: key pairs generated and kept on the token. */
#include <psrenew/keypair.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <psrenew/ckr.h>
#include <psrenew/p11obj.h>

static const struct {
	const char *alias, *group;
	unsigned long bits;
	/* DER of the curve OID, for CKA_EC_PARAMS */
	unsigned char der[12];
	size_t der_len;
} curves[] = {
	{ "P-256",
	  "prime256v1",
	  256,
	  { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 },
	  10 },
	{ "P-384",
	  "secp384r1",
	  384,
	  { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 },
	  7 },
};

static const char keyspec_hint[] =
    "key types: rsa:2048, rsa:3072, rsa:4096, ec:prime256v1, ec:secp384r1";

int ps_keyspec_parse(const char *s, struct ps_keyspec *ks, struct ps_err *err)
{
	memset(ks, 0, sizeof(*ks));
	if (s && strncmp(s, "rsa:", 4) == 0) {
		if (strcmp(s + 4, "2048") && strcmp(s + 4, "3072") &&
		    strcmp(s + 4, "4096"))
			goto bad;
		ks->type = CKK_RSA;
		ks->bits = strtoul(s + 4, NULL, 10);
		return 0;
	}
	if (s && strncmp(s, "ec:", 3) == 0) {
		for (size_t i = 0; i < sizeof(curves) / sizeof(*curves); i++)
			if (strcmp(s + 3, curves[i].alias) == 0 ||
			    strcmp(s + 3, curves[i].group) == 0) {
				ks->type = CKK_EC;
				ks->bits = curves[i].bits;
				snprintf(ks->curve, sizeof(ks->curve), "%s",
					 curves[i].group);
				return 0;
			}
	}
bad:
	return ps_err_set(err, PS_EXIT_USAGE, "bad-key-type", keyspec_hint,
			  "unsupported key type '%.40s'", s ? s : "");
}

void ps_keyspec_name(const struct ps_keyspec *ks, char *buf, size_t len)
{
	if (ks->type == CKK_EC)
		snprintf(buf, len, "ec:%s", ks->curve);
	else
		snprintf(buf, len, "rsa:%lu", ks->bits);
}

/* The largest RSA key the token generates (ulMaxKeySize of
 * CKM_RSA_PKCS_KEY_PAIR_GEN); 0 when it does not say or cannot. */
static unsigned long rsa_max_bits(struct ps_token *t)
{
	CK_MECHANISM_INFO mi;

	if (ps_p11_mechanism(t, CKM_RSA_PKCS_KEY_PAIR_GEN, &mi) != CKR_OK ||
	    !(mi.flags & CKF_GENERATE_KEY_PAIR))
		return 0;
	return mi.ulMaxKeySize;
}

const char *ps_keyspec_default(struct ps_token *t, const char *current,
			       struct ps_keyspec *ks, unsigned long *max_bits)
{
	struct ps_keyspec cur;
	int have_cur = current && !ps_keyspec_parse(current, &cur, NULL);

	memset(ks, 0, sizeof(*ks));
	if (have_cur && cur.type == CKK_EC) {
		*ks = cur; /* an EC holder keeps a curve: no RSA size fits */
		*max_bits = 0;
		return "current-key";
	}
	*max_bits = rsa_max_bits(t);
	ks->type = CKK_RSA;
	ks->bits = *max_bits >= 4096 ? 4096 : 2048;
	if (have_cur && cur.bits > ks->bits) {
		ks->bits = cur.bits; /* never smaller than the current key */
		return "current-key";
	}
	return ks->bits == 4096 ? "token-4096" : "token-2048";
}

int ps_pubkey_id(EVP_PKEY *pk, unsigned char id[20])
{
	X509_PUBKEY *xpk = NULL;
	const unsigned char *bits;
	int len;

	if (!X509_PUBKEY_set(&xpk, pk) ||
	    !X509_PUBKEY_get0_param(NULL, &bits, &len, NULL, xpk)) {
		X509_PUBKEY_free(xpk);
		return -1;
	}
	SHA1(bits, (size_t)len, id);
	X509_PUBKEY_free(xpk);
	return 0;
}

static int mech_ok(struct ps_token *t, CK_MECHANISM_TYPE m, CK_FLAGS need,
		   unsigned long bits, const char *name, struct ps_err *err)
{
	CK_MECHANISM_INFO mi;
	CK_RV rv = ps_p11_mechanism(t, m, &mi);
	const char *hint =
	    "this is the guide's error 622: install a newer driver "
	    "(PKCS#11 module) for the token, or choose another key type "
	    "with --key-type";

	/* Only "no such mechanism" is the guide's 622; anything else (a
	 * removed token, a lost session) is said as it is. */
	if (rv != CKR_OK && rv != CKR_MECHANISM_INVALID)
		return ps_ckr_err(err, rv, t,
				  "asking the token about a mechanism");
	if (rv == CKR_OK && (mi.flags & need) == need &&
	    (!bits || !mi.ulMaxKeySize ||
	     (bits >= mi.ulMinKeySize && bits <= mi.ulMaxKeySize)))
		return 0;
	if (rv == CKR_OK && (mi.flags & need) == need)
		return ps_err_set(err, PS_EXIT_TOKEN, "mechanism-missing", hint,
				  "the token's module %s supports %s only for "
				  "keys of %lu to %lu bits, not %lu",
				  ps_module_describe(t->mod), name,
				  (unsigned long)mi.ulMinKeySize,
				  (unsigned long)mi.ulMaxKeySize, bits);
	return ps_err_set(err, PS_EXIT_TOKEN, "mechanism-missing", hint,
			  "the token's module %s does not support %s",
			  ps_module_describe(t->mod), name);
}

int ps_token_check_mechanisms(struct ps_token *t, const struct ps_keyspec *ks,
			      struct ps_err *err)
{
	int ec = ks->type == CKK_EC;
	int rc = mech_ok(
	    t, ec ? CKM_EC_KEY_PAIR_GEN : CKM_RSA_PKCS_KEY_PAIR_GEN,
	    CKF_GENERATE_KEY_PAIR, ks->bits,
	    ec ? "CKM_EC_KEY_PAIR_GEN" : "CKM_RSA_PKCS_KEY_PAIR_GEN", err);

	if (!rc)
		rc = mech_ok(t, ec ? CKM_ECDSA : CKM_RSA_PKCS, CKF_SIGN,
			     ks->bits, ec ? "CKM_ECDSA" : "CKM_RSA_PKCS", err);
	return rc;
}

long ps_token_room(const struct ps_token *t)
{
	unsigned long free_bytes;

	if (!ps_token_free_memory(t, &free_bytes))
		return -1;
	return (long)(free_bytes / PS_ROOM_PER_RENEWAL);
}

/* An EVP_PKEY from a key's public values as the token keeps them: v0 the
 * modulus or CKA_EC_PARAMS, v1 the exponent or CKA_EC_POINT. */
static EVP_PKEY *pubkey_from_values(CK_KEY_TYPE type, const unsigned char *a0,
				    size_t l0, const unsigned char *a1,
				    size_t l1)
{
	OSSL_PARAM_BLD *bld;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pk = NULL;
	BIGNUM *n = NULL, *e = NULL;
	ASN1_OCTET_STRING *os = NULL; /* the builder points into it */

	if (!a0 || !a1 || l0 > INT_MAX || l1 > INT_MAX)
		return NULL;
	bld = OSSL_PARAM_BLD_new();
	if (!bld)
		return NULL;
	if (type == CKK_RSA) {
		n = BN_bin2bn(a0, (int)l0, NULL);
		e = BN_bin2bn(a1, (int)l1, NULL);
		if (!n || !e || !OSSL_PARAM_BLD_push_BN(bld, "n", n) ||
		    !OSSL_PARAM_BLD_push_BN(bld, "e", e))
			goto out;
	} else {
		const char *group = NULL;
		const unsigned char *p = a1;

		for (size_t i = 0; i < sizeof(curves) / sizeof(*curves); i++)
			if (l0 == curves[i].der_len &&
			    !memcmp(a0, curves[i].der, curves[i].der_len))
				group = curves[i].group;
		/* CKA_EC_POINT is a DER OCTET STRING holding the point. */
		os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)l1);
		if (!group || !os ||
		    !OSSL_PARAM_BLD_push_utf8_string(bld, "group", group, 0) ||
		    !OSSL_PARAM_BLD_push_octet_string(
			bld, "pub", ASN1_STRING_get0_data(os),
			(size_t)ASN1_STRING_length(os)))
			goto out;
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	pctx = EVP_PKEY_CTX_new_from_name(NULL, type == CKK_EC ? "EC" : "RSA",
					  NULL);
	if (!params || !pctx || EVP_PKEY_fromdata_init(pctx) <= 0 ||
	    EVP_PKEY_fromdata(pctx, &pk, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pk = NULL;
out:
	BN_free(n);
	BN_free(e);
	ASN1_OCTET_STRING_free(os);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(pctx);
	return pk;
}

/* Reads CKA_MODULUS/CKA_PUBLIC_EXPONENT or CKA_EC_PARAMS/CKA_EC_POINT of a
 * key object into an EVP_PKEY. */
static EVP_PKEY *read_pubkey(struct ps_token *t, CK_OBJECT_HANDLE h,
			     CK_KEY_TYPE type, CK_RV *rvp)
{
	unsigned char a0[1024], a1[256];
	CK_ATTRIBUTE a[2] = {
		{ type == CKK_EC ? CKA_EC_PARAMS : CKA_MODULUS, a0,
		  sizeof(a0) },
		{ type == CKK_EC ? CKA_EC_POINT : CKA_PUBLIC_EXPONENT, a1,
		  sizeof(a1) },
	};

	*rvp = ps_p11_get(t, h, a, 2);
	if (*rvp != CKR_OK)
		return NULL;
	return pubkey_from_values(type, a0, a[0].ulValueLen, a1,
				  a[1].ulValueLen);
}

int ps_key_values_id(const struct ps_tobj *o, unsigned char id[20])
{
	EVP_PKEY *pk = pubkey_from_values(o->key_type, o->kv[0], o->kv_len[0],
					  o->kv[1], o->kv_len[1]);
	int rc;

	if (!pk)
		return 1;
	rc = ps_pubkey_id(pk, id) < 0 ? 1 : 0;
	EVP_PKEY_free(pk);
	return rc;
}

static CK_RV set_id(struct ps_token *t, CK_OBJECT_HANDLE h,
		    const unsigned char *id, size_t len)
{
	CK_ATTRIBUTE a = { CKA_ID, (void *)id, len };

	return ps_p11_set(t, h, &a, 1);
}

static CK_RV generate(struct ps_token *t, const struct ps_keyspec *ks,
		      const char *label, const unsigned char *id, size_t idlen,
		      struct ps_keypair *kp)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = ks->bits;
	CK_BYTE exp[] = { 0x01, 0x00, 0x01 };
	CK_MECHANISM mech = { ks->type == CKK_EC ? CKM_EC_KEY_PAIR_GEN
						 : CKM_RSA_PKCS_KEY_PAIR_GEN,
			      NULL, 0 };
	unsigned char ecp[12];
	size_t ecp_len = 0;
	int ec = ks->type == CKK_EC;
	int rsa = !ec;
	CK_ULONG llen = strlen(label);

	for (size_t i = 0; ec && i < sizeof(curves) / sizeof(*curves); i++)
		if (strcmp(ks->curve, curves[i].group) == 0) {
			memcpy(ecp, curves[i].der, curves[i].der_len);
			ecp_len = curves[i].der_len;
		}
	CK_ATTRIBUTE pub[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &no, sizeof(no) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
		{ CKA_ID, (void *)id, idlen },
		{ CKA_LABEL, (void *)label, llen },
		{ rsa ? CKA_ENCRYPT : CKA_DERIVE, rsa ? &yes : &no,
		  sizeof(yes) },
		{ rsa ? CKA_MODULUS_BITS : CKA_EC_PARAMS,
		  rsa ? (void *)&bits : (void *)ecp,
		  rsa ? sizeof(bits) : ecp_len },
		{ CKA_PUBLIC_EXPONENT, exp, sizeof(exp) },
	};
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_ID, (void *)id, idlen },
		{ CKA_LABEL, (void *)label, llen },
		{ rsa ? CKA_DECRYPT : CKA_DERIVE, rsa ? &yes : &no,
		  sizeof(yes) },
	};

	return ps_p11_generate_pair(t, &mech, pub, rsa ? 8 : 7, priv, 8,
				    &kp->pub, &kp->priv);
}

int ps_keypair_generate_begin(struct ps_token *t, const struct ps_keyspec *ks,
			      const char *label, const unsigned char *tmp_id,
			      size_t tmp_len, struct ps_keypair *kp,
			      struct ps_err *err)
{
	CK_RV rv;

	memset(kp, 0, sizeof(*kp));
	rv = generate(t, ks, label, tmp_id, tmp_len, kp);
	if (rv != CKR_OK) {
		memset(kp, 0, sizeof(*kp));
		return ps_ckr_err(err, rv, t, "generating the key pair");
	}
	kp->pubkey = read_pubkey(t, kp->pub, ks->type, &rv);
	if (!kp->pubkey || ps_pubkey_id(kp->pubkey, kp->id) < 0) {
		ps_keypair_destroy(t, kp, NULL);
		/* The token failed (removed, session lost): say so. */
		if (rv != CKR_OK)
			return ps_ckr_err(err, rv, t,
					  "reading back the new public key "
					  "(the key pair was removed)");
		return ps_err_set(err, PS_EXIT_TOKEN, "token-error", NULL,
				  "cannot read back the new public key from "
				  "token '%s'; the key pair was removed",
				  t->label);
	}
	kp->id_len = 20;
	return 0;
}

/* Removes a half-made key pair; what became of it, for the message. */
static const char *remove_new(struct ps_token *t, struct ps_keypair *kp)
{
	if (ps_keypair_destroy(t, kp, NULL) == 0)
		return "the key pair was removed";
	return "the key pair could not be removed now: the next ps-renew "
	       "removes it (the key generation journal names it)";
}

int ps_keypair_generate_finish(struct ps_token *t, struct ps_keypair *kp,
			       struct ps_err *err)
{
	const char *left;

	CK_RV rv = set_id(t, kp->pub, kp->id, kp->id_len);

	if (rv == CKR_OK)
		rv = set_id(t, kp->priv, kp->id, kp->id_len);
	if (rv != CKR_OK) {
		char what[160];

		left = remove_new(t, kp);
		snprintf(what, sizeof(what),
			 "setting the new key pair's id (%s)", left);
		if (rv != CKR_ATTRIBUTE_READ_ONLY &&
		    rv != CKR_ATTRIBUTE_TYPE_INVALID &&
		    rv != CKR_ATTRIBUTE_VALUE_INVALID)
			return ps_ckr_err(err, rv, t, what);
		return ps_err_set(err, PS_EXIT_TOKEN, "token-error", NULL,
				  "token '%s' does not let its key id be set; "
				  "%s",
				  t->label, left);
	}
	ps_token_index_add(t, CKO_PUBLIC_KEY, kp->id, kp->id_len, kp->pub);
	ps_token_index_add(t, CKO_PRIVATE_KEY, kp->id, kp->id_len, kp->priv);
	return 0;
}

int ps_keypair_generate(struct ps_token *t, const struct ps_keyspec *ks,
			const char *label, struct ps_keypair *kp,
			struct ps_err *err)
{
	unsigned char tmp_id[20];
	int rc;

	/* The final id depends on the public key: generate under a random
	 * id, then set the real one on both halves. */
	if (RAND_bytes(tmp_id, sizeof(tmp_id)) != 1) {
		memset(kp, 0, sizeof(*kp));
		return ps_err_set(err, PS_EXIT_FAIL, "random", NULL,
				  "no random bytes for a temporary key id");
	}
	rc = ps_keypair_generate_begin(t, ks, label, tmp_id, sizeof(tmp_id), kp,
				       err);
	if (!rc)
		rc = ps_keypair_generate_finish(t, kp, err);
	return rc;
}

int ps_keypair_destroy_id(struct ps_token *t, const unsigned char *id,
			  size_t len, struct ps_err *err)
{
	static const CK_OBJECT_CLASS classes[] = { CKO_PRIVATE_KEY,
						   CKO_PUBLIC_KEY };
	int removed = 0;

	for (size_t c = 0; c < sizeof(classes) / sizeof(*classes); c++) {
		CK_OBJECT_CLASS cls = classes[c];
		CK_ATTRIBUTE tmpl[] = { { CKA_CLASS, &cls, sizeof(cls) },
					{ CKA_ID, (void *)id, len } };
		CK_OBJECT_HANDLE h[16];
		CK_ULONG n = 0;
		CK_RV rv = ps_p11_find(t, tmpl, 2, h, 16, &n);

		for (CK_ULONG k = 0; rv == CKR_OK && k < n; k++) {
			rv = ps_p11_destroy(t, h[k]);
			if (rv == CKR_OBJECT_HANDLE_INVALID)
				rv = CKR_OK;
			removed += rv == CKR_OK;
		}
		if (rv != CKR_OK) {
			ps_ckr_err(err, rv, t,
				   "removing an unfinished key pair");
			return -1;
		}
	}
	return removed;
}

/* Object h still has this class and id (an index entry may be stale: the
 * object removed by another process, its handle reused)? */
static int still_there(struct ps_token *t, CK_OBJECT_HANDLE h,
		       CK_OBJECT_CLASS cls, const unsigned char *id, size_t len)
{
	CK_OBJECT_CLASS c = CK_UNAVAILABLE_INFORMATION;
	unsigned char buf[64];
	CK_ATTRIBUTE a[2] = { { CKA_CLASS, &c, sizeof(c) },
			      { CKA_ID, buf, sizeof(buf) } };

	if (ps_p11_get(t, h, a, 2) == CKR_OK && c == cls &&
	    a[1].ulValueLen == len && memcmp(buf, id, len) == 0)
		return 1;
	ps_token_index_forget(t, h);
	return 0;
}

static int find_one(struct ps_token *t, CK_OBJECT_CLASS cls,
		    const unsigned char *id, size_t len, CK_OBJECT_HANDLE *h,
		    CK_RV *rvp)
{
	CK_ATTRIBUTE tmpl[] = { { CKA_CLASS, &cls, sizeof(cls) },
				{ CKA_ID, (void *)id, len } };
	CK_ULONG n = 0;

	/* From the token's index when it has one; a miss is searched for
	 * (another process may have made the object since). */
	if (ps_token_index_find(t, cls, id, len, h, 1) == 1 &&
	    still_there(t, *h, cls, id, len)) {
		*rvp = CKR_OK;
		return 1;
	}
	*rvp = ps_p11_find(t, tmpl, 2, h, 1, &n);
	return *rvp == CKR_OK && n == 1;
}

/* A key object's class, type, label and (RSA) public values, in one
 * read: *pk when it shows its modulus. label: 256 bytes ("" when none). */
static CK_RV read_key_object(struct ps_token *t, CK_OBJECT_HANDLE h,
			     CK_OBJECT_CLASS *cls, CK_KEY_TYPE *type,
			     char *label, EVP_PKEY **pk)
{
	unsigned char mod[1024], exp[16];
	CK_ATTRIBUTE a[5] = {
		{ CKA_KEY_TYPE, type, sizeof(*type) },
		{ CKA_LABEL, label, 255 },
		{ CKA_MODULUS, mod, sizeof(mod) },
		{ CKA_PUBLIC_EXPONENT, exp, sizeof(exp) },
		{ CKA_CLASS, cls, sizeof(*cls) },
	};
	void *heap[5] = { NULL };
	CK_RV rv = ps_p11_get_attrs(t, h, a, 5, heap);

	if (rv == CKR_OK && a[0].ulValueLen == CK_UNAVAILABLE_INFORMATION)
		*type = CKK_RSA;
	if (rv == CKR_OK && a[4].ulValueLen == CK_UNAVAILABLE_INFORMATION)
		*cls = CK_UNAVAILABLE_INFORMATION;
	if (rv == CKR_OK && a[1].ulValueLen < 256)
		label[a[1].ulValueLen] = '\0'; /* read into it */
	else
		label[0] = '\0';
	if (rv == CKR_OK && *type == CKK_RSA && !*pk)
		*pk = pubkey_from_values(CKK_RSA, a[2].pValue, a[2].ulValueLen,
					 a[3].pValue, a[3].ulValueLen);
	for (int i = 0; i < 5; i++)
		free(heap[i]);
	return rv;
}

static CK_RV read_private(struct ps_token *t, struct ps_keypair *kp,
			  CK_KEY_TYPE *type)
{
	CK_OBJECT_CLASS cls;

	return read_key_object(t, kp->priv, &cls, type, kp->label, &kp->pubkey);
}

/* The public key in a certificate object's value. */
static EVP_PKEY *cert_pubkey(struct ps_token *t, CK_OBJECT_HANDLE cert,
			     CK_RV *rv)
{
	unsigned char buf[8192];
	CK_ATTRIBUTE v = { CKA_VALUE, buf, sizeof(buf) };
	const unsigned char *p = buf;
	EVP_PKEY *pk = NULL;
	X509 *x;

	*rv = ps_p11_get(t, cert, &v, 1);
	x = *rv == CKR_OK ? d2i_X509(NULL, &p, (long)v.ulValueLen) : NULL;
	if (x) {
		pk = X509_get_pubkey(x);
		X509_free(x);
	}
	return pk;
}

static int no_public_half(struct ps_token *t, CK_RV rv, struct ps_err *err)
{
	/* A token that failed while asking (removed, session lost) says
	 * so; only an answer without the public half is "not on token". */
	if (rv != CKR_OK)
		return ps_ckr_err(err, rv, t,
				  "reading the public half of a key");
	return ps_err_set(err, PS_EXIT_TOKEN, "token-error", NULL,
			  "the public half of key %s is not on token '%s'",
			  "(given id)", t->label);
}

static int no_such_key(struct ps_token *t, CK_RV rv, struct ps_err *err)
{
	if (rv != CKR_OK)
		return ps_ckr_err(err, rv, t, "searching for the key");
	return ps_err_set(err, PS_EXIT_USAGE, "no-such-key",
			  "list the keys with pkcs11-tool -O --login",
			  "token '%s' has no private key with this id",
			  t->label);
}

/* Object h of a search by CKA_ID, sorted into kp or certs. */
static CK_RV take_object(struct ps_token *t, CK_OBJECT_HANDLE h,
			 struct ps_keypair *kp, CK_KEY_TYPE *type,
			 CK_OBJECT_HANDLE *certs, size_t max, long *ncerts)
{
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt = CKK_RSA;
	char label[256];
	EVP_PKEY *pk = NULL;
	CK_RV rv = read_key_object(t, h, &cls, &kt, label, &pk);

	if (rv == CKR_OK && cls == CKO_PRIVATE_KEY && !kp->priv) {
		kp->priv = h;
		*type = kt;
		memcpy(kp->label, label, sizeof(label));
	} else if (rv == CKR_OK && cls == CKO_PUBLIC_KEY && !kp->pub) {
		kp->pub = h;
	} else if (rv == CKR_OK && cls == CKO_CERTIFICATE &&
		   (size_t)*ncerts < max) {
		certs[(*ncerts)++] = h;
	}
	if (pk && !kp->pubkey && (cls == CKO_PRIVATE_KEY || h == kp->pub))
		kp->pubkey = pk;
	else
		EVP_PKEY_free(pk);
	return rv == CKR_OBJECT_HANDLE_INVALID ? CKR_OK : rv;
}

int ps_keypair_find_certs(struct ps_token *t, const unsigned char *id,
			  size_t id_len, struct ps_keypair *kp,
			  CK_OBJECT_HANDLE *certs, size_t max, long *ncerts,
			  struct ps_err *err)
{
	CK_ATTRIBUTE tmpl = { CKA_ID, (void *)id, id_len };
	CK_KEY_TYPE type = CKK_RSA;
	CK_OBJECT_HANDLE h[16];
	CK_ULONG n = 0;
	CK_RV rv = CKR_OK;

	*ncerts = -1;
	if (t->index || id_len == 0 || id_len > sizeof(kp->id))
		return ps_keypair_find(t, id, id_len, kp, err);
	memset(kp, 0, sizeof(*kp));
	*ncerts = 0;
	rv = ps_p11_find(t, &tmpl, 1, h, 16, &n);
	for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++)
		rv = take_object(t, h[i], kp, &type, certs, max, ncerts);
	if (rv != CKR_OK || !kp->priv) {
		ps_keypair_free(kp);
		return no_such_key(t, rv, err);
	}
	memcpy(kp->id, id, id_len);
	kp->id_len = id_len;
	if (!kp->pubkey && kp->pub)
		kp->pubkey = read_pubkey(t, kp->pub, type, &rv);
	if (!kp->pubkey && *ncerts > 0 && rv == CKR_OK)
		kp->pubkey = cert_pubkey(t, certs[0], &rv);
	if (!kp->pubkey)
		return no_public_half(t, rv, err);
	return 0;
}

int ps_keypair_find(struct ps_token *t, const unsigned char *id, size_t id_len,
		    struct ps_keypair *kp, struct ps_err *err)
{
	CK_KEY_TYPE type = CKK_RSA;
	CK_OBJECT_HANDLE cert;
	CK_RV rv, prv;

	memset(kp, 0, sizeof(*kp));
	if (id_len == 0 || id_len > sizeof(kp->id))
		return ps_err_set(err, PS_EXIT_USAGE, "bad-key-id", NULL,
				  "a key id is 1 to 64 bytes of hex");
	if (!find_one(t, CKO_PRIVATE_KEY, id, id_len, &kp->priv, &rv))
		return no_such_key(t, rv, err);
	memcpy(kp->id, id, id_len);
	kp->id_len = id_len;
	rv = read_private(t, kp, &type);
	if (rv != CKR_OK)
		return ps_ckr_err(err, rv, t, "reading the key's type");
	prv = CKR_OK;
	if (kp->pubkey)
		kp->pub_unsought = 1;
	else if (find_one(t, CKO_PUBLIC_KEY, id, id_len, &kp->pub, &rv))
		kp->pubkey = read_pubkey(t, kp->pub, type, &prv);
	else
		prv = rv;
	if (!kp->pubkey && find_one(t, CKO_CERTIFICATE, id, id_len, &cert, &rv))
		kp->pubkey = cert_pubkey(t, cert, &rv);
	if (!kp->pubkey)
		return no_public_half(t, prv != CKR_OK ? prv : rv, err);
	return 0;
}

int ps_key_object_id(struct ps_token *t, CK_OBJECT_HANDLE h, CK_KEY_TYPE type,
		     unsigned char id[20], CK_RV *rvp)
{
	EVP_PKEY *pk = read_pubkey(t, h, type, rvp);
	int rc;

	if (!pk)
		return *rvp == CKR_OK || *rvp == CKR_ATTRIBUTE_TYPE_INVALID ||
			       *rvp == CKR_ATTRIBUTE_SENSITIVE ||
			       *rvp == CKR_BUFFER_TOO_SMALL
			   ? 1
			   : -1;
	rc = ps_pubkey_id(pk, id) < 0 ? 1 : 0;
	EVP_PKEY_free(pk);
	return rc;
}

/* The public values of a key as a token keeps them: CKA_MODULUS, or
 * CKA_EC_PARAMS (the curve's OID) and CKA_EC_POINT (a DER OCTET STRING
 * holding the point; raw_off bytes of header). */
struct pubvals {
	CK_KEY_TYPE type;
	unsigned char mod[1024], params[16], point[160];
	size_t mod_len, params_len, point_len, raw_off;
};

static int ec_values(EVP_PKEY *pk, struct pubvals *v)
{
	char group[64];
	unsigned char pt[133], *p = v->params;
	size_t len = 0;
	const ASN1_OBJECT *oid;

	if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME,
					    group, sizeof(group), NULL) ||
	    !EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pt,
					     sizeof(pt), &len) ||
	    len == 0)
		return -1;
	oid = OBJ_nid2obj(OBJ_txt2nid(group));
	if (!oid || i2d_ASN1_OBJECT(oid, NULL) > (int)sizeof(v->params))
		return -1;
	v->type = CKK_EC;
	v->params_len = (size_t)i2d_ASN1_OBJECT(oid, &p);
	v->point[0] = 0x04; /* OCTET STRING */
	if (len < 0x80) {
		v->point[1] = (unsigned char)len;
		v->raw_off = 2;
	} else {
		v->point[1] = 0x81;
		v->point[2] = (unsigned char)len;
		v->raw_off = 3;
	}
	memcpy(v->point + v->raw_off, pt, len);
	v->point_len = v->raw_off + len;
	return 0;
}

static int pub_values(EVP_PKEY *pk, struct pubvals *v)
{
	BIGNUM *n = NULL;
	int ok;

	memset(v, 0, sizeof(*v));
	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC)
		return ec_values(pk, v);
	if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA)
		return -1;
	ok = EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) &&
	     BN_num_bytes(n) <= (int)sizeof(v->mod);
	if (ok)
		v->mod_len = (size_t)BN_bn2bin(n, v->mod);
	BN_free(n);
	v->type = CKK_RSA;
	return ok ? 0 : -1;
}

/* Up to max objects of class cls with v's public values (EC: the point
 * DER-wrapped, or raw as some tokens keep it). */
static CK_RV find_by_value(struct ps_token *t, CK_OBJECT_CLASS cls,
			   const struct pubvals *v, int raw,
			   CK_OBJECT_HANDLE *h, CK_ULONG max, CK_ULONG *n)
{
	CK_KEY_TYPE type = v->type;
	size_t off = raw ? v->raw_off : 0;
	CK_ATTRIBUTE tmpl[4] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &type, sizeof(type) },
		{ CKA_MODULUS, (void *)v->mod, v->mod_len },
		{ CKA_EC_POINT, (void *)(v->point + off), v->point_len - off },
	};
	CK_RV rv;

	if (type == CKK_EC)
		tmpl[2] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, (void *)v->params,
					  v->params_len };
	rv = ps_p11_find(t, tmpl, type == CKK_EC ? 4 : 3, h, max, n);
	/* A token that does not know an attribute matches nothing. */
	if (rv == CKR_ATTRIBUTE_TYPE_INVALID ||
	    rv == CKR_ATTRIBUTE_VALUE_INVALID)
		rv = CKR_OK;
	return rv;
}

/* kp->id from object h's CKA_ID: 1 when it has one that fits. */
static int take_id(struct ps_token *t, CK_OBJECT_HANDLE h,
		   struct ps_keypair *kp, CK_RV *rvp)
{
	CK_ATTRIBUTE a = { CKA_ID, kp->id, sizeof(kp->id) };

	*rvp = ps_p11_get(t, h, &a, 1);
	if (*rvp == CKR_BUFFER_TOO_SMALL)
		*rvp = CKR_OK;
	if (*rvp != CKR_OK || a.ulValueLen == 0 ||
	    a.ulValueLen > sizeof(kp->id))
		return 0;
	kp->id_len = a.ulValueLen;
	return 1;
}

/* The first private key of h[] whose public values are want's (or do not
 * show): kp->priv and kp->id. */
static int pick_private(struct ps_token *t, const CK_OBJECT_HANDLE *h,
			CK_ULONG n, CK_KEY_TYPE type, const unsigned char *want,
			struct ps_keypair *kp, CK_RV *rvp)
{
	unsigned char id[20];

	*rvp = CKR_OK;
	for (CK_ULONG i = 0; i < n; i++) {
		int r = ps_key_object_id(t, h[i], type, id, rvp);

		if (r < 0)
			return 0;
		*rvp = CKR_OK;
		if (r == 0 && memcmp(id, want, sizeof(id)) != 0)
			continue;
		if (take_id(t, h[i], kp, rvp)) {
			kp->priv = h[i];
			return 1;
		}
		if (*rvp != CKR_OK)
			return 0;
	}
	return 0;
}

/* The private key with the CKA_ID of one of the public keys h[]. */
static int via_public(struct ps_token *t, const CK_OBJECT_HANDLE *h, CK_ULONG n,
		      struct ps_keypair *kp, CK_RV *rvp)
{
	*rvp = CKR_OK;
	for (CK_ULONG i = 0; i < n; i++) {
		if (!take_id(t, h[i], kp, rvp)) {
			if (*rvp != CKR_OK)
				return 0;
			continue;
		}
		if (find_one(t, CKO_PRIVATE_KEY, kp->id, kp->id_len, &kp->priv,
			     rvp)) {
			kp->pub = h[i];
			return 1;
		}
		if (*rvp != CKR_OK)
			return 0;
	}
	kp->id_len = 0;
	return 0;
}

int ps_keypair_find_pubkey(struct ps_token *t, EVP_PKEY *pk,
			   struct ps_keypair *kp, struct ps_err *err)
{
	struct pubvals v;
	unsigned char want[20];
	CK_OBJECT_HANDLE h[8];
	CK_ULONG n = 0;
	CK_RV rv = CKR_OK;
	int found = 0;

	memset(kp, 0, sizeof(*kp));
	if (!pk || ps_pubkey_id(pk, want) < 0 || pub_values(pk, &v) < 0)
		return ps_err_set(err, PS_EXIT_FAIL, "bad-certificate", NULL,
				  "the certificate's public key is neither "
				  "RSA nor EC on a known curve");
	/* RSA: the private key shows its modulus. */
	if (v.type == CKK_RSA) {
		rv = find_by_value(t, CKO_PRIVATE_KEY, &v, 0, h, 8, &n);
		if (rv == CKR_OK)
			found = pick_private(t, h, n, v.type, want, kp, &rv);
	}
	/* The public key object, then the private key of its CKA_ID. */
	for (int raw = 0; !found && rv == CKR_OK && raw <= (v.type == CKK_EC);
	     raw++) {
		rv = find_by_value(t, CKO_PUBLIC_KEY, &v, raw, h, 8, &n);
		if (rv == CKR_OK)
			found = via_public(t, h, n, kp, &rv);
	}
	/* Last, the CKA_ID psrenew gives: the SHA-1 of the public key. */
	if (!found && rv == CKR_OK &&
	    find_one(t, CKO_PRIVATE_KEY, want, sizeof(want), &h[0], &rv))
		found = pick_private(t, h, 1, v.type, want, kp, &rv);
	if (rv != CKR_OK)
		return ps_ckr_err(err, rv, t, "searching for the key");
	if (!found)
		return ps_err_set(err, PS_EXIT_USAGE, "no-such-key",
				  "list the keys with pkcs11-tool -O --login",
				  "token '%s' has no private key for this "
				  "public key",
				  t->label);
	if (!kp->pub &&
	    find_by_value(t, CKO_PUBLIC_KEY, &v, 0, h, 1, &n) == CKR_OK &&
	    n == 1)
		kp->pub = h[0];
	if (EVP_PKEY_up_ref(pk))
		kp->pubkey = pk;
	return 0;
}

int ps_keypair_destroy(struct ps_token *t, struct ps_keypair *kp,
		       struct ps_err *err)
{
	CK_RV rv1 = CKR_OK, rv2 = CKR_OK;

	if (kp->pub_unsought && !kp->pub &&
	    !find_one(t, CKO_PUBLIC_KEY, kp->id, kp->id_len, &kp->pub, &rv2))
		kp->pub = 0;
	if (rv2 != CKR_OK)
		return ps_ckr_err(err, rv2, t, "looking for the public key");
	kp->pub_unsought = 0;
	if (kp->priv)
		rv1 = ps_p11_destroy(t, kp->priv);
	if (kp->pub)
		rv2 = ps_p11_destroy(t, kp->pub);
	if (rv1 == CKR_OK || rv1 == CKR_OBJECT_HANDLE_INVALID)
		kp->priv = 0;
	if (rv2 == CKR_OK || rv2 == CKR_OBJECT_HANDLE_INVALID)
		kp->pub = 0;
	if (kp->priv || kp->pub)
		return ps_ckr_err(err, kp->priv ? rv1 : rv2, t,
				  "removing the new key pair");
	return 0;
}

void ps_keypair_free(struct ps_keypair *kp)
{
	EVP_PKEY_free(kp->pubkey);
	kp->pubkey = NULL;
}

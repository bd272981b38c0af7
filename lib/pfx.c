/* psrenew: PKCS#12 (PFX) files onto the token (the guide's §8). */
#include <psrenew/pfx.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#include <psrenew/cert.h>
#include <psrenew/install.h>
#include <psrenew/inventory.h>
#include <psrenew/keypair.h>
#include <psrenew/record.h>
#include <psrenew/request.h>
#include <psrenew/state.h>

static const char full_hint[] =
    "this is the guide's error 621: remove an expired or superseded "
    "certificate with ps-token-clean (keep the old commercial certificate "
    "until JIP has the new one), then run ps-pfx-import again";

static const char damaged_hint[] =
    "export the certificate again (Edge: Manage certificates, Export, "
    "\"Yes, export the private key\", the guide's §8) and copy the file "
    "whole";

static const char rounds_hint[] =
    "export the certificate again with the exporter's usual protection "
    "(Windows asks for 2000 rounds, OpenSSL for 2048, GnuTLS for 600000)";

/* --------------------------------------------------------------- reading */

int ps_pfx_read_file(const char *path, unsigned char **der, size_t *len,
		     struct ps_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	unsigned char *buf;
	size_t n = 0;
	int rc = 0;

	*der = NULL;
	*len = 0;
	if (fd < 0)
		return ps_err_set(err, PS_EXIT_USAGE, "no-such-file", NULL,
				  "cannot open %s: %s", path, strerror(errno));
	buf = malloc(PS_PFX_MAX_SIZE + 1);
	if (!buf)
		rc = ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				"out of memory");
	while (!rc && n <= PS_PFX_MAX_SIZE) {
		ssize_t r = read(fd, buf + n, PS_PFX_MAX_SIZE + 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			rc = ps_err_set(err, PS_EXIT_USAGE, "no-such-file",
					NULL, "cannot read %s: %s", path,
					strerror(errno));
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (!rc && (n == 0 || n > PS_PFX_MAX_SIZE))
		rc = ps_err_set(
		    err, PS_EXIT_FAIL, "bad-pfx", damaged_hint, "%s is %s",
		    path, n ? "larger than 1 MiB: not a PFX file" : "empty");
	if (rc) {
		free(buf);
		return rc;
	}
	*der = buf;
	*len = n;
	return 0;
}

static int bad_pfx(struct ps_err *err, const char *what)
{
	ps_err_set(err, PS_EXIT_FAIL, "bad-pfx", damaged_hint,
		   "the PFX file is damaged or truncated: %s", what);
	ERR_clear_error();
	return PS_EXIT_FAIL;
}

/* The rounds an encryption algorithm asks for (*iter; 0 when it does not
 * say: OpenSSL then fails or takes 1). -1 for PBES2 with a key derivation
 * other than PBKDF2, named in kdf: scrypt's cost (N, r and p) could keep
 * us busy for hours, and no exporter uses it. */
static int pbe_iter(const X509_ALGOR *alg, long *iter, char *kdf,
		    size_t kdf_size)
{
	const ASN1_OBJECT *obj;
	const void *pval;
	int ptype, rc = 0;

	*iter = 0;
	X509_ALGOR_get0(&obj, &ptype, &pval, alg);
	if (ptype != V_ASN1_SEQUENCE)
		return 0;
	if (OBJ_obj2nid(obj) == NID_pbes2) {
		PBE2PARAM *p2 = ASN1_TYPE_unpack_sequence(
		    ASN1_ITEM_rptr(PBE2PARAM), alg->parameter);
		PBKDF2PARAM *kdf2 = NULL;

		if (p2 && p2->keyfunc &&
		    OBJ_obj2nid(p2->keyfunc->algorithm) == NID_id_pbkdf2) {
			kdf2 = ASN1_TYPE_unpack_sequence(
			    ASN1_ITEM_rptr(PBKDF2PARAM),
			    p2->keyfunc->parameter);
		} else if (p2 && p2->keyfunc) {
			if (OBJ_obj2txt(kdf, (int)kdf_size,
					p2->keyfunc->algorithm, 0) <= 0)
				snprintf(kdf, kdf_size, "unknown");
			rc = -1;
		}
		if (kdf2)
			*iter = ASN1_INTEGER_get(kdf2->iter);
		PBKDF2PARAM_free(kdf2);
		PBE2PARAM_free(p2);
	} else {
		PBEPARAM *pb = ASN1_TYPE_unpack_sequence(
		    ASN1_ITEM_rptr(PBEPARAM), alg->parameter);

		if (pb)
			*iter = ASN1_INTEGER_get(pb->iter);
		PBEPARAM_free(pb);
	}
	ERR_clear_error();
	return rc;
}

/* One key derivation of iter rounds (ASN1_INTEGER_get: -1 for a count
 * that does not fit a long). */
static int check_iter(long iter, struct ps_err *err)
{
	if (iter < 0)
		return bad_pfx(err, "a key derivation round count in it is "
				    "negative or too large");
	if (iter > PS_PFX_MAX_ITER)
		return ps_err_set(err, PS_EXIT_FAIL, "bad-pfx", rounds_hint,
				  "the PFX file asks for %ld key derivation "
				  "rounds at once; psrenew takes at most %ld",
				  iter, PS_PFX_MAX_ITER);
	return 0;
}

/* Charges a key derivation of iter rounds to *left, what the unlock may
 * still spend (PS_PFX_MAX_ROUNDS in all). */
static int spend(long iter, long *left, struct ps_err *err)
{
	if (check_iter(iter, err))
		return PS_EXIT_FAIL;
	if (iter < 1)
		iter = 1;
	if (iter > *left)
		return ps_err_set(err, PS_EXIT_FAIL, "bad-pfx", rounds_hint,
				  "the PFX file asks for more than %ld key "
				  "derivation rounds in all (its integrity "
				  "check and each encrypted part derive a "
				  "key); psrenew takes at most that",
				  PS_PFX_MAX_ROUNDS);
	*left -= iter;
	return 0;
}

/* spend() for the key derivation of an encryption algorithm. */
static int spend_pbe(const X509_ALGOR *alg, long *left, struct ps_err *err)
{
	char kdf[64];
	long iter;

	if (pbe_iter(alg, &iter, kdf, sizeof(kdf)))
		return ps_err_set(err, PS_EXIT_FAIL, "unsupported-pfx",
				  "export it again with AES-256 or TripleDES "
				  "encryption",
				  "the PFX is encrypted with a key derivation "
				  "psrenew does not take (%s); exporters use "
				  "PBKDF2",
				  kdf);
	return spend(iter, left, err);
}

int ps_pfx_load(const unsigned char *der, size_t len, struct ps_pfx *pfx,
		struct ps_err *err)
{
	const unsigned char *p = der;
	const ASN1_INTEGER *iter = NULL;
	STACK_OF(PKCS7) * safes;

	memset(pfx, 0, sizeof(*pfx));
	if (len >= 10 && memcmp(der, "-----BEGIN", 10) == 0)
		return ps_err_set(err, PS_EXIT_FAIL, "bad-pfx",
				  "convert it to a binary PFX first, e.g. "
				  "openssl pkcs12 -export -in CERT.pem -inkey "
				  "KEY.pem -out FILE.pfx",
				  "this is a PEM text file, not a PFX "
				  "(PKCS#12) file");
	pfx->p12 = d2i_PKCS12(NULL, &p, (long)len);
	if (!pfx->p12)
		return bad_pfx(err, "it is not a PKCS#12 structure");
	if (PKCS12_mac_present(pfx->p12)) {
		PKCS12_get0_mac(NULL, NULL, NULL, &iter, pfx->p12);
		if (iter && check_iter(ASN1_INTEGER_get(iter), err))
			goto bad;
	}
	safes = PKCS12_unpack_authsafes(pfx->p12);
	if (!safes) {
		bad_pfx(err, "its contents cannot be read");
		goto bad;
	}
	sk_PKCS7_pop_free(safes, PKCS7_free);
	return 0;
bad:
	PKCS12_free(pfx->p12);
	pfx->p12 = NULL;
	return PS_EXIT_FAIL;
}

int ps_pfx_password_empty(const struct ps_pfx *pfx)
{
	int ok = PKCS12_mac_present(pfx->p12) &&
		 (PKCS12_verify_mac(pfx->p12, NULL, 0) ||
		  PKCS12_verify_mac(pfx->p12, "", 0));

	ERR_clear_error();
	return ok;
}

/* ------------------------------------------------------------ decrypting */

/* OpenSSL 3 keeps RC2 and RC4 (and PBE-SHA1-RC2-40) in its legacy
 * provider. Loading any provider turns off the default one's automatic
 * loading, so both are loaded, once per process, and unloaded at exit
 * (before OpenSSL's own clean-up, which was registered first). */
static int legacy_loaded;
static OSSL_PROVIDER *prov_default, *prov_legacy;

static void unload_legacy(void)
{
	OSSL_PROVIDER_unload(prov_legacy);
	OSSL_PROVIDER_unload(prov_default);
	prov_legacy = prov_default = NULL;
}

static int load_legacy(void)
{
	if (legacy_loaded)
		return 0;
	prov_default = OSSL_PROVIDER_load(NULL, "default");
	prov_legacy = prov_default ? OSSL_PROVIDER_load(NULL, "legacy") : NULL;
	if (!prov_legacy) {
		OSSL_PROVIDER_unload(prov_default);
		prov_default = NULL;
		ERR_clear_error();
		return -1;
	}
	legacy_loaded = 1;
	atexit(unload_legacy);
	return 0;
}

/* What the safe bags hold. */
struct bags {
	EVP_PKEY *key;
	ASN1_OCTET_STRING *key_lkid; /* its localKeyID */
	char *key_name;
	int nkeys;
	STACK_OF(X509) * certs; /* alias = friendlyName, keyid = localKeyID */
	size_t nbags;
	long *left; /* key derivation rounds the unlock may still spend */
};

static void bags_free(struct bags *b)
{
	EVP_PKEY_free(b->key);
	ASN1_OCTET_STRING_free(b->key_lkid);
	OPENSSL_free(b->key_name);
	sk_X509_pop_free(b->certs, X509_free);
	memset(b, 0, sizeof(*b));
}

enum { DECRYPT_FAILED = -1 };

static const ASN1_OCTET_STRING *bag_lkid(const PKCS12_SAFEBAG *bag)
{
	const ASN1_TYPE *t = PKCS12_SAFEBAG_get0_attr(bag, NID_localKeyID);

	return t && t->type == V_ASN1_OCTET_STRING ? t->value.octet_string
						   : NULL;
}

/* Length of the UTF-8 sequence at s (valid, shortest form), or 0. */
static size_t utf8_seq(const unsigned char *s)
{
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] < 0xe0)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] < 0xf0)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] < 0xf5)
		n = 4;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) ||
	    (n == 4 && s[0] == 0xf0 && s[1] < 0x90))
		return 0;
	return n;
}

/*
 * GnuTLS's certtool writes the UTF-8 bytes of a friendlyName as BMP
 * characters one by one ("Novák" becomes "NovÃ¡k"). When every character
 * is below U+0100 and those bytes are UTF-8 with some non-ASCII, that is
 * what happened: the bytes are the name.
 */
static char *friendly_name(PKCS12_SAFEBAG *bag)
{
	unsigned char *name = (unsigned char *)PKCS12_get_friendlyname(bag);
	size_t r, w = 0, n;
	int high = 0;

	if (!name)
		return NULL;
	for (r = 0; name[r]; r += n) {
		n = utf8_seq(name + r);
		if (n == 2 && name[r] < 0xc4)
			high = 1;
		else if (n != 1)
			return (char *)name; /* beyond U+00FF: a real name */
	}
	if (!high)
		return (char *)name;
	for (r = 0; name[r]; r += n) {
		n = utf8_seq(name + r);
		name[w++] = n == 1 ? name[r]
				   : (unsigned char)(((name[r] & 0x03) << 6) |
						     (name[r + 1] & 0x3f));
	}
	name[w] = '\0';
	for (r = 0; r < w; r += n)
		if (!(n = utf8_seq(name + r)))
			break;
	if (r == w)
		return (char *)name;
	/* Latin-1 after all: decode again, the buffer was rewritten. */
	OPENSSL_free(name);
	return PKCS12_get_friendlyname(bag);
}

static int take_key(struct bags *b, PKCS12_SAFEBAG *bag,
		    const PKCS8_PRIV_KEY_INFO *p8, struct ps_err *err)
{
	EVP_PKEY *k = EVP_PKCS82PKEY(p8);
	const ASN1_OCTET_STRING *lkid = bag_lkid(bag);

	if (!k)
		return bad_pfx(err, "its private key cannot be read");
	if (++b->nkeys > 1) {
		EVP_PKEY_free(k);
		return 0;
	}
	b->key = k;
	b->key_name = friendly_name(bag);
	if (lkid)
		b->key_lkid = ASN1_OCTET_STRING_dup(lkid);
	return 0;
}

static int take_cert(struct bags *b, PKCS12_SAFEBAG *bag, struct ps_err *err)
{
	X509 *x;
	char *name;
	const ASN1_OCTET_STRING *lkid = bag_lkid(bag);

	if (PKCS12_SAFEBAG_get_bag_nid(bag) != NID_x509Certificate)
		return 0; /* SDSI certificates: nobody uses them */
	x = PKCS12_SAFEBAG_get1_cert(bag);
	if (!x)
		return bad_pfx(err, "a certificate in it cannot be read");
	name = friendly_name(bag);
	if ((name && !X509_alias_set1(x, (unsigned char *)name, -1)) ||
	    (lkid && !X509_keyid_set1(x, ASN1_STRING_get0_data(lkid),
				      ASN1_STRING_length(lkid))) ||
	    !sk_X509_push(b->certs, x)) {
		OPENSSL_free(name);
		X509_free(x);
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "out of memory");
	}
	OPENSSL_free(name);
	return 0;
}

static int take_bags(struct bags *b, const STACK_OF(PKCS12_SAFEBAG) * bags,
		     const char *pass, int depth, struct ps_err *err);

static int take_bag(struct bags *b, PKCS12_SAFEBAG *bag, const char *pass,
		    int depth, struct ps_err *err)
{
	PKCS8_PRIV_KEY_INFO *p8;
	const X509_ALGOR *alg;
	int rc;

	if (++b->nbags > PS_PFX_MAX_BAGS)
		return bad_pfx(err, "it holds too many objects");
	switch (PKCS12_SAFEBAG_get_nid(bag)) {
	case NID_keyBag:
		return take_key(b, bag, PKCS12_SAFEBAG_get0_p8inf(bag), err);
	case NID_pkcs8ShroudedKeyBag:
		X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag), &alg, NULL);
		if (spend_pbe(alg, b->left, err))
			return PS_EXIT_FAIL;
		p8 = PKCS12_decrypt_skey(bag, pass, pass ? -1 : 0);
		if (!p8)
			return DECRYPT_FAILED;
		rc = take_key(b, bag, p8, err);
		PKCS8_PRIV_KEY_INFO_free(p8); /* wipes the key */
		return rc;
	case NID_certBag: return take_cert(b, bag, err);
	case NID_safeContentsBag:
		if (depth >= 4)
			return bad_pfx(err, "it nests too deep");
		return take_bags(b, PKCS12_SAFEBAG_get0_safes(bag), pass,
				 depth + 1, err);
	default: return 0; /* CRLs, secrets: not ours */
	}
}

static int take_bags(struct bags *b, const STACK_OF(PKCS12_SAFEBAG) * bags,
		     const char *pass, int depth, struct ps_err *err)
{
	for (int i = 0; i < sk_PKCS12_SAFEBAG_num(bags); i++) {
		int rc = take_bag(b, sk_PKCS12_SAFEBAG_value(bags, i), pass,
				  depth, err);

		if (rc)
			return rc;
	}
	return 0;
}

/* Every bag of every safe; DECRYPT_FAILED when one cannot be decrypted.
 * Each key derivation is charged to *left. */
static int decrypt_all(const struct ps_pfx *pfx, const char *pass,
		       struct bags *b, long *left, struct ps_err *err)
{
	STACK_OF(PKCS7) *safes = PKCS12_unpack_authsafes(pfx->p12);
	int rc = 0;

	memset(b, 0, sizeof(*b));
	b->left = left;
	b->certs = sk_X509_new_null();
	if (!safes || !b->certs) {
		sk_PKCS7_pop_free(safes, PKCS7_free);
		return bad_pfx(err, "its contents cannot be read");
	}
	for (int i = 0; !rc && i < sk_PKCS7_num(safes); i++) {
		PKCS7 *p7 = sk_PKCS7_value(safes, i);
		STACK_OF(PKCS12_SAFEBAG) *bags = NULL;
		int nid = OBJ_obj2nid(p7->type);

		if (nid == NID_pkcs7_data) {
			bags = PKCS12_unpack_p7data(p7);
			if (!bags)
				rc =
				    bad_pfx(err, "a part of it cannot be read");
		} else if (nid == NID_pkcs7_encrypted) {
			if (!p7->d.encrypted || !p7->d.encrypted->enc_data)
				rc = bad_pfx(err, "an encrypted part is empty");
			else
				rc = spend_pbe(
				    p7->d.encrypted->enc_data->algorithm, left,
				    err);
			if (!rc) {
				bags = PKCS12_unpack_p7encdata(p7, pass,
							       pass ? -1 : 0);
				if (!bags)
					rc = DECRYPT_FAILED;
			}
		} else {
			rc =
			    ps_err_set(err, PS_EXIT_FAIL, "unsupported-pfx",
				       "export it again with a password",
				       "the PFX is encrypted for a recipient's "
				       "public key, not with a password");
		}
		if (!rc)
			rc = take_bags(b, bags, pass, 0, err);
		sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	}
	sk_PKCS7_pop_free(safes, PKCS7_free);
	if (rc)
		bags_free(b);
	return rc;
}

/* The certificate of the key: by localKeyID (two certificates of one key:
 * the one the exporter paired), else by public key. */
static X509 *find_leaf(const struct bags *b)
{
	for (int i = 0; b->key_lkid && i < sk_X509_num(b->certs); i++) {
		X509 *x = sk_X509_value(b->certs, i);
		int len = 0;
		const unsigned char *id = X509_keyid_get0(x, &len);

		if (id && len == ASN1_STRING_length(b->key_lkid) &&
		    !memcmp(id, ASN1_STRING_get0_data(b->key_lkid),
			    (size_t)len) &&
		    EVP_PKEY_eq(X509_get0_pubkey(x), b->key) == 1)
			return x;
	}
	for (int i = 0; i < sk_X509_num(b->certs); i++) {
		X509 *x = sk_X509_value(b->certs, i);

		if (EVP_PKEY_eq(X509_get0_pubkey(x), b->key) == 1)
			return x;
	}
	ERR_clear_error();
	return NULL;
}

static int key_consistent(EVP_PKEY *key)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
	int ok = c && EVP_PKEY_pairwise_check(c) == 1;

	EVP_PKEY_CTX_free(c);
	ERR_clear_error();
	return ok;
}

/* Moves the key, its certificate and the chain out of b into pfx. */
static int pick(struct ps_pfx *pfx, struct bags *b, struct ps_err *err)
{
	struct ps_cert c;
	X509 *leaf;

	if (b->nkeys == 0)
		return ps_err_set(
		    err, PS_EXIT_FAIL, "no-key",
		    "export it again with the private key: in Edge, Export, "
		    "\"Yes, export the private key\" (the guide's §8, step 3)",
		    "the PFX holds no private key");
	if (b->nkeys > 1)
		return ps_err_set(err, PS_EXIT_FAIL, "several-keys",
				  "export one certificate per PFX file",
				  "the PFX holds %d private keys; "
				  "ps-pfx-import takes one at a time",
				  b->nkeys);
	if (!EVP_PKEY_is_a(b->key, "RSA") && !EVP_PKEY_is_a(b->key, "EC"))
		return ps_err_set(err, PS_EXIT_FAIL, "unsupported-key", NULL,
				  "the PFX holds a %s key; tokens take RSA "
				  "and EC keys",
				  EVP_PKEY_get0_type_name(b->key)
				      ? EVP_PKEY_get0_type_name(b->key)
				      : "unknown");
	/* Before key_consistent(): its primality tests cost the cube of the
	 * size (a 16384-bit key, a minute and a half). */
	if (EVP_PKEY_is_a(b->key, "RSA") &&
	    EVP_PKEY_get_bits(b->key) > PS_PFX_MAX_RSA_BITS)
		return ps_err_set(err, PS_EXIT_FAIL, "unsupported-key", NULL,
				  "the PFX holds an RSA key of %d bits; tokens "
				  "take RSA keys of at most %d bits",
				  EVP_PKEY_get_bits(b->key),
				  PS_PFX_MAX_RSA_BITS);
	leaf = find_leaf(b);
	if (!leaf && sk_X509_num(b->certs) > 0)
		return ps_err_set(err, PS_EXIT_FAIL, "key-mismatch",
				  damaged_hint,
				  "the private key in the PFX does not match "
				  "its certificate");
	if (!leaf)
		return ps_err_set(err, PS_EXIT_FAIL, "no-cert", damaged_hint,
				  "the PFX holds a private key but no "
				  "certificate");
	if (!key_consistent(b->key))
		return ps_err_set(err, PS_EXIT_FAIL, "key-mismatch",
				  damaged_hint,
				  "the private key in the PFX is damaged: its "
				  "halves do not match");
	if (ps_cert_from_x509(leaf, &c, err))
		return err->status;
	ps_cert_free(&c);
	(void)sk_X509_delete_ptr(b->certs, leaf);
	pfx->cert = leaf;
	/* The chain: CA certificates, each once, never the leaf again. */
	for (int i = 0; i < sk_X509_num(b->certs);) {
		X509 *x = sk_X509_value(b->certs, i);
		int drop = X509_check_ca(x) == 0 || X509_cmp(x, leaf) == 0;

		for (int j = 0; j < i && !drop; j++)
			drop = X509_cmp(x, sk_X509_value(b->certs, j)) == 0;
		if (drop)
			X509_free(sk_X509_delete(b->certs, i));
		else
			i++;
	}
	ERR_clear_error();
	pfx->chain = b->certs;
	b->certs = NULL;
	pfx->key = b->key;
	b->key = NULL;
	if (X509_alias_get0(leaf, NULL))
		pfx->friendly_name =
		    OPENSSL_strdup((const char *)X509_alias_get0(leaf, NULL));
	else if (b->key_name)
		pfx->friendly_name = OPENSSL_strdup(b->key_name);
	return 0;
}

/* What OpenSSL before 1.1.0 made of a non-ASCII password: each byte one
 * BMP character. Returned as the UTF-8 that encodes to the same BMP. */
static char *old_openssl_form(const char *pass)
{
	unsigned char *uni;
	int unilen;
	char *utf8;
	int ascii = 1;

	for (const char *s = pass; *s; s++)
		ascii &= (unsigned char)*s < 0x80;
	if (ascii)
		return NULL;
	uni = OPENSSL_asc2uni(pass, -1, NULL, &unilen);
	if (!uni)
		return NULL;
	utf8 = OPENSSL_uni2utf8(uni, unilen);
	OPENSSL_clear_free(uni, (size_t)unilen);
	return utf8;
}

/* 1: the MAC verifies with pass; 0: it does not (a wrong password: OpenSSL
 * says nothing then); -1: it cannot be computed (a digest the loaded
 * providers lack, or a damaged MAC); -3: it would take more rounds than
 * the unlock has left (err set). */
static int mac_ok(const struct ps_pfx *pfx, const char *pass, long *left,
		  struct ps_err *err)
{
	const ASN1_INTEGER *iter = NULL;
	int ok;

	PKCS12_get0_mac(NULL, NULL, NULL, &iter, pfx->p12);
	if (spend(iter ? ASN1_INTEGER_get(iter) : 1, left, err))
		return -3;
	ERR_clear_error();
	ok = PKCS12_verify_mac(pfx->p12, pass, pass ? -1 : 0);
	if (!ok && ERR_peek_error() != 0)
		ok = -1;
	ERR_clear_error();
	return ok;
}

/* Which password the MAC takes: pass, no password for an empty one, or
 * the old OpenSSL form; *use is NULL for "no password". 0 when one fits,
 * -2 when none does, -1 or -3 as mac_ok() for the first (-3 for any). */
static int check_mac(const struct ps_pfx *pfx, const char *pass,
		     const char **use, char **old, long *left,
		     struct ps_err *err)
{
	int r;

	*old = NULL;
	*use = pass;
	if ((r = mac_ok(pfx, pass, left, err)) != 0)
		return r > 0 ? 0 : r;
	*use = NULL;
	if (!*pass && (r = mac_ok(pfx, NULL, left, err)) > 0)
		return 0;
	if (r == -3)
		return r;
	*old = old_openssl_form(pass);
	*use = *old;
	if (*old && (r = mac_ok(pfx, *old, left, err)) > 0)
		return 0;
	return r == -3 ? r : -2;
}

static int bad_password(struct ps_err *err, int mac)
{
	return ps_err_set(err, PS_EXIT_REFUSED, "bad-password",
			  "the password is the one chosen when the "
			  "certificate was exported (the guide's §8, step 4); "
			  "give it with --pass",
			  mac ? "wrong password for the PFX file"
			      : "wrong password for the PFX file, or the file "
				"is damaged");
}

int ps_pfx_unlock(struct ps_pfx *pfx, const char *pass, struct ps_err *err)
{
	int mac = PKCS12_mac_present(pfx->p12);
	const char *use = pass ? pass : "";
	char *old = NULL;
	long left = PS_PFX_MAX_ROUNDS;
	struct bags b;
	int rc;

	rc = mac ? check_mac(pfx, pass ? pass : "", &use, &old, &left, err) : 0;
	if (rc == -1 && !legacy_loaded && load_legacy() == 0) {
		/* A MAC made with a digest only the legacy provider has is
		 * not a wrong password: try again with it. */
		pfx->legacy = 1;
		rc = check_mac(pfx, pass ? pass : "", &use, &old, &left, err);
	}
	if (rc == -3) {
		OPENSSL_clear_free(old, old ? strlen(old) : 0);
		return err->status;
	}
	if (rc == -1)
		return ps_err_set(err, PS_EXIT_FAIL, "unsupported-pfx",
				  damaged_hint,
				  "the PFX's integrity check (MAC) cannot be "
				  "computed: damaged, or an unknown algorithm");
	if (rc) {
		OPENSSL_clear_free(old, old ? strlen(old) : 0);
		return bad_password(err, 1);
	}
	rc = decrypt_all(pfx, use, &b, &left, err);
	if (rc == DECRYPT_FAILED && !mac && use && !*use)
		rc = decrypt_all(pfx, NULL, &b, &left, err);
	if (rc == DECRYPT_FAILED && !legacy_loaded && load_legacy() == 0) {
		pfx->legacy = 1;
		rc = decrypt_all(pfx, use, &b, &left, err);
	}
	OPENSSL_clear_free(old, old ? strlen(old) : 0);
	ERR_clear_error();
	if (rc == DECRYPT_FAILED && !mac)
		return bad_password(err, 0);
	if (rc == DECRYPT_FAILED)
		return ps_err_set(
		    err, PS_EXIT_FAIL, "unsupported-pfx",
		    "export it again with AES-256 or TripleDES "
		    "encryption",
		    "the PFX is encrypted with an algorithm "
		    "OpenSSL cannot decrypt, even with its legacy "
		    "provider");
	if (rc)
		return rc;
	rc = pick(pfx, &b, err);
	bags_free(&b);
	return rc;
}

void ps_pfx_free(struct ps_pfx *pfx)
{
	PKCS12_free(pfx->p12);
	EVP_PKEY_free(pfx->key);
	X509_free(pfx->cert);
	sk_X509_pop_free(pfx->chain, X509_free);
	OPENSSL_free(pfx->friendly_name);
	memset(pfx, 0, sizeof(*pfx));
}

/* ------------------------------------------------------------- the token */

/* Bytes taken from the key: freed with OPENSSL_clear_free. */
struct blob {
	unsigned char *p;
	size_t n;
};

static void blob_clear(struct blob *b)
{
	OPENSSL_clear_free(b->p, b->n);
	b->p = NULL;
	b->n = 0;
}

/* The big-endian bytes of a BIGNUM parameter of the key; -1 if absent. */
static int bn_param(const EVP_PKEY *key, const char *name, size_t pad,
		    struct blob *out)
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

/* The key as PKCS#11 wants it: the RSA components present (rsa_attrs:
 * modulus and public exponent first), or the EC curve, point and private
 * value. Every byte is wiped by p11key_free(). */
struct p11key {
	int ec;
	struct blob rsa[N_RSA_PARTS];
	struct blob ec_params, ec_point, ec_value;
	int nrsa;
	CK_ATTRIBUTE rsa_attrs[N_RSA_PARTS];
};

static void p11key_free(struct p11key *k)
{
	for (size_t i = 0; i < N_RSA_PARTS; i++)
		blob_clear(&k->rsa[i]);
	blob_clear(&k->ec_params);
	blob_clear(&k->ec_point);
	blob_clear(&k->ec_value);
}

static int ec_parts(const EVP_PKEY *key, X509 *leaf, struct p11key *k)
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

static int p11key_from(const struct ps_pfx *pfx, struct p11key *k,
		       struct ps_err *err)
{
	BIGNUM *extra = NULL;

	memset(k, 0, sizeof(*k));
	k->ec = EVP_PKEY_is_a(pfx->key, "EC");
	if (k->ec) {
		if (ec_parts(pfx->key, pfx->cert, k) == 0)
			return 0;
		p11key_free(k);
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
			p11key_free(k);
			return ps_err_set(err, PS_EXIT_FAIL, "bad-pfx",
					  damaged_hint,
					  "the RSA key in the PFX lacks a "
					  "component");
		}
		k->rsa_attrs[k->nrsa++] =
		    (CK_ATTRIBUTE){ rsa_parts[i].type, k->rsa[i].p,
				    (CK_ULONG)k->rsa[i].n };
	}
	return 0;
}

static CK_FUNCTION_LIST *fl(const struct ps_token *tok)
{
	return ps_module_functions(tok->mod);
}

/* The first object matching t, or 0. */
static CK_OBJECT_HANDLE find_first(struct ps_token *tok, CK_ATTRIBUTE *t,
				   CK_ULONG n)
{
	CK_OBJECT_HANDLE h = 0;
	CK_ULONG got = 0;

	if (fl(tok)->C_FindObjectsInit(tok->session, t, n) != CKR_OK)
		return 0;
	if (fl(tok)->C_FindObjects(tok->session, &h, 1, &got) != CKR_OK)
		got = 0;
	fl(tok)->C_FindObjectsFinal(tok->session);
	return got == 1 ? h : 0;
}

static int get_id(struct ps_token *tok, CK_OBJECT_HANDLE h, unsigned char *id,
		  size_t *len)
{
	CK_ATTRIBUTE a = { CKA_ID, id, 64 };

	if (fl(tok)->C_GetAttributeValue(tok->session, h, &a, 1) != CKR_OK ||
	    a.ulValueLen == 0 || a.ulValueLen > 64)
		return -1;
	*len = a.ulValueLen;
	return 0;
}

/* The private key already on the token: by id, else by its public part
 * (an RSA modulus, an EC point); then res->id is that key's id. */
static int find_key(struct ps_token *tok, const struct p11key *k,
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
		int same = n &&
			   fl(tok)->C_GetAttributeValue(tok->session, h, &a,
							1) == CKR_OK &&
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

/* The public key with that id, or 0. */
static CK_OBJECT_HANDLE find_pubkey(struct ps_token *tok,
				    const unsigned char *id, size_t len)
{
	CK_OBJECT_CLASS pub = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &pub, sizeof(pub) },
			     { CKA_ID, (void *)id, len } };

	return find_first(tok, t, 2);
}

/* The index of the certificate object holding x's DER, or -1. */
static long cert_index(const struct ps_tobj *objs, size_t n, X509 *x)
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

/* A label: printable, at most PS_PFX_MAX_LABEL bytes, cut at a character
 * boundary. */
static void make_label(char *out, const char *in)
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

static void default_label(char *out, X509 *x, const char *friendly)
{
	struct ps_cert c;

	if (friendly && *friendly) {
		make_label(out, friendly);
		return;
	}
	if (ps_cert_from_x509(x, &c, NULL) == 0 && c.cn) {
		make_label(out, c.cn);
	} else {
		make_label(out, "imported");
	}
	ps_cert_free(&c);
}

/* Everything written by one import, to be removed again on failure. */
struct written {
	CK_OBJECT_HANDLE h[PS_PFX_MAX_BAGS + 3];
	size_t n;
};

/* Removes what w holds; the number of objects that could not be removed. */
static size_t rollback(struct ps_token *tok, struct written *w,
		       const struct ps_pfx_import_result *res,
		       struct ps_err *err)
{
	size_t left = 0, wrote = w->n;

	while (w->n > 0) {
		CK_RV rv =
		    fl(tok)->C_DestroyObject(tok->session, w->h[w->n - 1]);

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
		  struct written *w, const char *what, struct ps_err *err)
{
	CK_OBJECT_HANDLE h = 0;
	CK_RV rv = fl(tok)->C_CreateObject(tok->session, t, n, &h);

	if (rv == CKR_DEVICE_MEMORY)
		return ps_err_set(err, PS_EXIT_TOKEN, "token-full", full_hint,
				  "token '%s' has no room for %s (the "
				  "guide's error 621)",
				  tok->label, what);
	if (rv != CKR_OK)
		return ps_ckr_err(err, rv, tok, what);
	w->h[w->n++] = h;
	return 0;
}

struct der {
	unsigned char *subject;
	int subject_len;
};

static int store_key(struct ps_token *tok, const struct p11key *k,
		     const struct ps_pfx_import_result *res,
		     const struct der *d, struct written *w, struct ps_err *err)
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

static int store_pubkey(struct ps_token *tok, const struct p11key *k,
			const struct ps_pfx_import_result *res,
			const struct der *d, struct written *w,
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

static int store_ca(struct ps_token *tok, X509 *x, struct written *w,
		    struct ps_err *err)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE ct = CKC_X_509;
	CK_ULONG cat = 2; /* authority (PKCS#11 2.40, 4.6.2) */
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	unsigned char id[20];
	unsigned char *der = NULL, *subj = NULL, *iss = NULL, *ser = NULL;
	char label[PS_PFX_MAX_LABEL + 1];
	int dl = i2d_X509(x, &der);
	int sl = i2d_X509_NAME(X509_get_subject_name(x), &subj);
	int il = i2d_X509_NAME(X509_get_issuer_name(x), &iss);
	int nl = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &ser);
	int rc;

	default_label(label, x, (const char *)X509_alias_get0(x, NULL));
	if (dl <= 0 || sl <= 0 || il <= 0 || nl <= 0 ||
	    ps_pubkey_id(X509_get0_pubkey(x), id) < 0) {
		rc = ps_err_set(err, PS_EXIT_FAIL, "bad-pfx", damaged_hint,
				"a CA certificate in the PFX cannot be "
				"encoded");
	} else {
		CK_ATTRIBUTE t[] = {
			{ CKA_CLASS, &cls, sizeof(cls) },
			{ CKA_CERTIFICATE_TYPE, &ct, sizeof(ct) },
			{ CKA_CERTIFICATE_CATEGORY, &cat, sizeof(cat) },
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_PRIVATE, &no, sizeof(no) },
			{ CKA_LABEL, label, strlen(label) },
			{ CKA_ID, id, sizeof(id) },
			{ CKA_SUBJECT, subj, (CK_ULONG)sl },
			{ CKA_ISSUER, iss, (CK_ULONG)il },
			{ CKA_SERIAL_NUMBER, ser, (CK_ULONG)nl },
			{ CKA_VALUE, der, (CK_ULONG)dl },
		};
		rc = create(tok, t, sizeof(t) / sizeof(t[0]), w,
			    "a CA certificate", err);
	}
	ERR_clear_error();
	OPENSSL_free(der);
	OPENSSL_free(subj);
	OPENSSL_free(iss);
	OPENSSL_free(ser);
	return rc;
}

/* Exit 6 (the guide's error 622) when the token cannot sign with such a
 * key: no mechanism, or not for this size. */
static int check_mechanism(struct ps_token *tok, const struct ps_pfx *pfx,
			   int ec, struct ps_err *err)
{
	CK_MECHANISM_INFO mi;
	CK_MECHANISM_TYPE m = ec ? CKM_ECDSA : CKM_RSA_PKCS;
	const char *name = ec ? "CKM_ECDSA" : "CKM_RSA_PKCS";
	unsigned long bits = (unsigned long)EVP_PKEY_get_bits(pfx->key);
	CK_RV rv = fl(tok)->C_GetMechanismInfo(tok->slot, m, &mi);
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

static int check_room(struct ps_token *tok, unsigned long need,
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

static void validity_warning(X509 *x, struct ps_pfx_import_result *res)
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

/* The chain certificates not on the token yet (indexes into pfx->chain). */
static size_t chain_missing(const struct ps_pfx *pfx,
			    const struct ps_tobj *objs, size_t nobjs,
			    int *missing, unsigned long *need)
{
	size_t n = 0;

	for (int i = 0; i < sk_X509_num(pfx->chain); i++) {
		X509 *x = sk_X509_value(pfx->chain, i);

		missing[i] = cert_index(objs, nobjs, x) < 0;
		if (missing[i]) {
			*need += (unsigned long)i2d_X509(x, NULL);
			n++;
		}
	}
	return n;
}

static int write_all(struct ps_token *tok, const struct ps_pfx *pfx,
		     const struct ps_pfx_import_opts *o, const struct p11key *k,
		     const int *missing, int pub_there,
		     struct ps_pfx_import_result *res, struct written *w,
		     struct ps_err *err)
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

/* --------------------------------------------------------------- journal */

/*
 * An import of a key onto a token is announced in the state store
 * (imports/KEYID-TOKEN.json) before its first object is written, and the
 * entry is removed once the import is done or undone. A run that finds the
 * entry knows that one before it was interrupted: it removes the
 * leftovers that run made (beyond those the token held before, counted in
 * the entry), keeps what that run wrote completely, and writes the rest;
 * should it fail, it removes those objects as its own.
 */
#define JOURNAL_SUB "imports"

struct journal {
	struct ps_state *st; /* NULL: no journal */
	char name[64];
	int lock;
	json_t *rec; /* the entry, once read or written */
	size_t before[PS_N_LEFT];
	int key_was_there, pub_was_there, cert_was_there; /* before it */
	int same_cert; /* the entry is for this certificate */
};

static void journal_close(struct journal *j)
{
	ps_state_unlock(j->lock);
	json_decref(j->rec);
	j->lock = -1;
	j->rec = NULL;
}

static int journal_flag(const json_t *rec, const char *key)
{
	return json_is_true(json_object_get(rec, key));
}

/* The certificate's SHA-256, in hex. */
static void cert_sha256(X509 *x, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	out[0] = '\0';
	if (X509_digest(x, EVP_sha256(), md, &n) && n == sizeof(md))
		for (unsigned int i = 0; i < n; i++)
			snprintf(out + 2 * i, 3, "%02x", md[i]);
	ERR_clear_error();
}

/* Takes the lock of the entry of this key on this token and reads the
 * entry, when there is one. */
static int journal_open(struct journal *j, struct ps_state *st,
			struct ps_token *tok, const unsigned char id[20],
			X509 *cert, struct ps_err *err)
{
	char who[3 * 33 + 3], lock[80], sha[65];
	unsigned char md[32];
	unsigned int n = 0;
	struct ps_err e;
	json_t *b;
	int rc;

	memset(j, 0, sizeof(*j));
	j->lock = -1;
	if (!st)
		return 0;
	j->st = st;
	/* The token: its manufacturer, model and serial, not the label
	 * (which can change). */
	snprintf(who, sizeof(who), "%s\n%s\n%s", tok->manufacturer, tok->model,
		 tok->serial);
	if (!EVP_Digest(who, strlen(who), md, &n, EVP_sha256(), NULL)) {
		ERR_clear_error();
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "out of memory");
	}
	for (int i = 0; i < 20; i++)
		snprintf(j->name + 2 * i, 3, "%02x", id[i]);
	snprintf(j->name + 40, sizeof(j->name) - 40, "-%02x%02x%02x%02x", md[0],
		 md[1], md[2], md[3]);
	snprintf(lock, sizeof(lock), "import-%s", j->name);
	rc = ps_state_lock(st, lock, 0, &j->lock, err);
	if (rc) {
		if (!strcmp(err->code, "busy"))
			snprintf(err->msg, sizeof(err->msg),
				 "another process is importing this key onto "
				 "token '%s'",
				 tok->label);
		return rc;
	}
	ps_err_clear(&e);
	if (ps_state_get(st, JOURNAL_SUB, j->name, &j->rec, &e)) {
		if (!strcmp(e.code, "no-such-request"))
			return 0;
		return ps_err_set(err, e.status, e.code,
				  "remove the file if no import of this key "
				  "is under way, then run ps-pfx-import again",
				  "cannot read %s/%s/%s.json, the record of an "
				  "interrupted import",
				  st->dir, JOURNAL_SUB, j->name);
	}
	b = json_object_get(j->rec, "leftovers_before");
	for (int k = 0; k < PS_N_LEFT; k++) {
		json_t *v = json_object_get(b, ps_left_names[k]);

		j->before[k] = json_is_integer(v) && json_integer_value(v) >= 0
				   ? (size_t)json_integer_value(v)
				   : 0;
	}
	j->key_was_there = journal_flag(j->rec, "key_was_there");
	j->pub_was_there = journal_flag(j->rec, "pub_was_there");
	j->cert_was_there = journal_flag(j->rec, "cert_was_there");
	cert_sha256(cert, sha);
	j->same_cert =
	    json_is_string(json_object_get(j->rec, "cert_sha256")) &&
	    !strcmp(json_string_value(json_object_get(j->rec, "cert_sha256")),
		    sha);
	return 0;
}

/* An interrupted import: removes what it half-wrote. */
static int journal_resume(struct journal *j, struct ps_token *tok,
			  struct ps_pfx_import_result *res, struct ps_err *err)
{
	struct ps_leftovers l;
	int rc, changed = 0;

	res->resumed = 1;
	rc = ps_token_leftovers(tok, &l, err);
	if (!rc)
		rc = ps_token_leftovers_remove(tok, &l, j->before,
					       &res->leftovers_removed, err);
	/* Fewer than there were before (someone removed them): the next
	 * interrupted run is to be counted from here. */
	for (int k = 0; !rc && k < PS_N_LEFT; k++)
		if (l.n[k] < j->before[k]) {
			j->before[k] = l.n[k];
			changed = 1;
		}
	ps_leftovers_free(&l);
	if (!rc && changed) {
		json_object_set_new(j->rec, "leftovers_before",
				    ps_leftovers_json(j->before));
		rc = ps_state_put(j->st, JOURNAL_SUB, j->name, j->rec, err);
	}
	return rc;
}

/* Before the first object is written: the entry, on disk (fsync'ed). */
static int journal_begin(struct journal *j, struct ps_token *tok,
			 const struct ps_pfx *pfx,
			 const struct ps_pfx_import_result *res, int pub_there,
			 struct ps_err *err)
{
	struct ps_leftovers l;
	char sha[65], *hex;
	json_t *r;
	int rc;

	if (!j->st || j->rec)
		return 0; /* no journal, or the entry of an interrupted run */
	rc = ps_token_leftovers(tok, &l, err);
	if (rc)
		return rc;
	for (int k = 0; k < PS_N_LEFT; k++)
		j->before[k] = l.n[k];
	ps_leftovers_free(&l);
	cert_sha256(pfx->cert, sha);
	hex = ps_hex(res->id, res->id_len);
	r = json_object();
	if (!r || !hex) {
		json_decref(r);
		free(hex);
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "out of memory");
	}
	ps_json_set_str(r, "kind", "pfx-import");
	ps_json_set_str(r, "key_id", hex);
	ps_json_set_str(r, "token", tok->uri);
	ps_json_set_str(r, "label", res->label);
	ps_json_set_str(r, "cert_sha256", sha);
	ps_json_set_time(r, "started_at", time(NULL));
	json_object_set_new(r, "leftovers_before",
			    ps_leftovers_json(j->before));
	json_object_set_new(r, "key_was_there",
			    json_boolean(res->key_was_there));
	json_object_set_new(r, "pub_was_there", json_boolean(pub_there));
	json_object_set_new(r, "cert_was_there",
			    json_boolean(res->cert_was_there));
	free(hex);
	rc = ps_state_put(j->st, JOURNAL_SUB, j->name, r, err);
	if (rc) {
		json_decref(r);
		return rc;
	}
	j->rec = r;
	j->key_was_there = res->key_was_there;
	j->pub_was_there = pub_there;
	j->cert_was_there = res->cert_was_there;
	j->same_cert = 1;
	return 0;
}

/* The import is done, or undone: the entry goes. */
static int journal_end(struct journal *j, struct ps_err *err)
{
	if (!j->st || !j->rec)
		return 0;
	return ps_state_del(j->st, JOURNAL_SUB, j->name, err);
}

/* A failed run: when everything it (and an interrupted run before it)
 * wrote is gone again, it removes what its C_CreateObject calls half-wrote
 * (a module may keep such an object when it refuses the template) and the
 * entry. */
static void journal_undo(struct journal *j, struct ps_token *tok, size_t left)
{
	struct ps_leftovers l;
	struct ps_err e;
	size_t removed = 0;

	if (!j->st || !j->rec || left)
		return;
	ps_err_clear(&e);
	if (ps_token_leftovers(tok, &l, &e) == 0) {
		if (ps_token_leftovers_remove(tok, &l, j->before, &removed,
					      &e) == 0)
			journal_end(j, &e);
		ps_leftovers_free(&l);
	}
}

/* On a run that completes an interrupted one: what that run wrote is this
 * import's, removed with the rest should this run fail. */
static void adopt(const struct journal *j, CK_OBJECT_HANDLE key,
		  CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE cert,
		  struct written *w)
{
	if (!j->rec)
		return;
	if (key && !j->key_was_there)
		w->h[w->n++] = key;
	if (pub && !j->pub_was_there)
		w->h[w->n++] = pub;
	if (cert && !j->cert_was_there && j->same_cert)
		w->h[w->n++] = cert;
}

int ps_pfx_import(struct ps_token *tok, const struct ps_pfx *pfx,
		  const struct ps_pfx_import_opts *o, struct ps_state *st,
		  struct ps_pfx_import_result *res, struct ps_err *err)
{
	struct p11key k;
	struct journal j;
	struct ps_tobj *objs = NULL;
	size_t nobjs = 0;
	struct written *w = calloc(1, sizeof(*w));
	int nchain = sk_X509_num(pfx->chain);
	int *missing =
	    calloc((size_t)(nchain > 0 ? nchain : 1), sizeof(*missing));
	unsigned long need = 0;
	CK_OBJECT_HANDLE key = 0, pub = 0, cert = 0;
	size_t nmissing = 0;
	long at;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&j, 0, sizeof(j));
	j.lock = -1;
	if (!w || !missing) {
		free(w);
		free(missing);
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "out of memory");
	}
	if (ps_pubkey_id(pfx->key, res->id) < 0) {
		free(w);
		free(missing);
		return ps_err_set(err, PS_EXIT_FAIL, "unsupported-key", NULL,
				  "cannot encode the public key of the PFX");
	}
	res->id_len = 20;
	if (o->label)
		make_label(res->label, o->label);
	else
		default_label(res->label, pfx->cert, pfx->friendly_name);
	validity_warning(pfx->cert, res);
	rc = p11key_from(pfx, &k, err);
	if (rc) {
		free(w);
		free(missing);
		return rc;
	}
	/* An interrupted import of this key first: its leftovers go. */
	rc = journal_open(&j, st, tok, res->id, pfx->cert, err);
	if (!rc && j.rec)
		rc = journal_resume(&j, tok, res, err);
	/* What is there already. */
	if (!rc)
		rc = find_key(tok, &k, res, &key, err);
	if (!rc)
		rc = ps_token_objects(tok, CKO_CERTIFICATE, &objs, &nobjs, err);
	if (rc)
		goto out;
	at = cert_index(objs, nobjs, pfx->cert);
	if (at >= 0) {
		const struct ps_tobj *c = &objs[at];

		res->cert_was_there = 1;
		cert = c->handle;
		if (!res->key_was_there && c->id_len > 0 &&
		    c->id_len <= sizeof(res->id)) {
			memcpy(res->id, c->id, c->id_len);
			res->id_len = c->id_len;
		} else if (c->id_len != res->id_len ||
			   memcmp(c->id, res->id, res->id_len) != 0) {
			snprintf(res->warning, sizeof(res->warning),
				 "the certificate was on the token already, "
				 "under another CKA_ID than its key's");
		}
	}
	pub = find_pubkey(tok, res->id, res->id_len);
	adopt(&j, key, pub, cert, w);
	if (o->with_chain) {
		nmissing = chain_missing(pfx, objs, nobjs, missing, &need);
		res->chain_was_there = (size_t)nchain - nmissing;
	}
	if (!res->key_was_there)
		need += PS_ROOM_PER_RENEWAL;
	else if (!res->cert_was_there)
		need += (unsigned long)i2d_X509(pfx->cert, NULL);
	if (!res->key_was_there)
		rc = check_mechanism(tok, pfx, k.ec, err);
	if (!rc)
		rc = check_room(tok, need, err);
	if (!rc &&
	    (!res->key_was_there || !pub || !res->cert_was_there || nmissing))
		rc = journal_begin(&j, tok, pfx, res, pub != 0, err);
	if (!rc)
		rc = write_all(tok, pfx, o, &k, missing, pub != 0, res, w, err);
	if (rc) {
		journal_undo(&j, tok, rollback(tok, w, res, err));
		res->key_added = res->pub_added = res->cert_added = 0;
		res->chain_added = 0;
	} else if (journal_end(&j, NULL) && !res->warning[0]) {
		snprintf(res->warning, sizeof(res->warning),
			 "the record of this import in %s/%s cannot be "
			 "removed",
			 st->dir, JOURNAL_SUB);
	}
	res->imported = res->key_added || res->cert_added;
	/* Completing an interrupted import: the record tells what the
	 * whole import wrote, as one run would. */
	if (!rc && j.rec && j.same_cert) {
		res->imported |= !j.key_was_there || !j.cert_was_there;
		res->cert_was_there = j.cert_was_there;
	}
out:
	journal_close(&j);
	ps_tobjs_free(objs, nobjs);
	p11key_free(&k);
	free(missing);
	free(w);
	return rc;
}

/* ---------------------------------------------------------------- record */

json_t *ps_pfx_record(struct ps_token *tok, const struct ps_pfx *pfx,
		      const struct ps_pfx_import_result *res,
		      const struct ps_config *cfg, struct ps_err *err)
{
	struct ps_inventory inv;
	json_t *r = NULL;

	if (ps_inventory_load(&tok, 1, time(NULL), &inv, err))
		return NULL;
	/* The certificate object: with the key's id, else any copy. */
	for (int pass = 0; pass < 2 && !r; pass++)
		for (size_t i = 0; i < inv.n && !r; i++)
			if ((pass || (inv.c[i].obj.id_len == res->id_len &&
				      !memcmp(inv.c[i].obj.id, res->id,
					      res->id_len))) &&
			    !X509_cmp(ps_cert_x509(&inv.c[i].cert), pfx->cert))
				r = ps_inventory_record(&inv, i, cfg);
	ps_inventory_free(&inv);
	if (!r && !err->status)
		ps_err_set(err, PS_EXIT_FAIL, "no-cert",
			   "run ps-status to see what is on the token",
			   "the imported certificate cannot be read back from "
			   "token '%s'",
			   tok->label);
	if (!r)
		return NULL;
	json_object_set_new(r, "imported", json_boolean(res->imported));
	json_object_set_new(r, "already_installed",
			    json_boolean(res->cert_was_there));
	json_object_set_new(r, "chain_imported",
			    json_integer((json_int_t)res->chain_added));
	if (res->warning[0])
		ps_json_set_str(r, "warning", res->warning);
	return r;
}

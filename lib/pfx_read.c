/* psrenew: reading and decrypting a PKCS#12 (PFX) file, with OpenSSL only
 * (ps-pfx-import's first half: nothing here talks to a token). */
#include <psrenew/pfx_read.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#include <psrenew/cert.h>

const char ps_pfx_damaged_hint[] =
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
		rc = ps_err_nomem(err);
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
		rc = ps_err_set(err, PS_EXIT_FAIL, "bad-pfx",
				ps_pfx_damaged_hint, "%s is %s", path,
				n ? "larger than 1 MiB: not a PFX file"
				  : "empty");
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
	ps_err_set(err, PS_EXIT_FAIL, "bad-pfx", ps_pfx_damaged_hint,
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
		return ps_err_nomem(err);
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
				  ps_pfx_damaged_hint,
				  "the private key in the PFX does not match "
				  "its certificate");
	if (!leaf)
		return ps_err_set(err, PS_EXIT_FAIL, "no-cert",
				  ps_pfx_damaged_hint,
				  "the PFX holds a private key but no "
				  "certificate");
	if (!key_consistent(b->key))
		return ps_err_set(err, PS_EXIT_FAIL, "key-mismatch",
				  ps_pfx_damaged_hint,
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
				  ps_pfx_damaged_hint,
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

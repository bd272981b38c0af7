/* psrenew: signing with token keys: C_Sign on psrenew's own session
 * (through p11obj.c), and EVP_PKEYs through libp11 for TLS and CMS. */
#include <psrenew/signer.h>

#include <stdlib.h>
#include <string.h>

#include <libp11.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/sha.h>

#include <psrenew/ckr.h>
#include <psrenew/p11obj.h>

struct p11 {
	PKCS11_CTX *ctx;
	PKCS11_SLOT *slots;
	unsigned int nslots;
};

static void p11_free(void *v)
{
	struct p11 *p = v;

	if (!p)
		return;
	if (p->slots)
		PKCS11_release_all_slots(p->ctx, p->slots, p->nslots);
	PKCS11_CTX_unload(p->ctx);
	PKCS11_CTX_free(p->ctx);
	free(p);
}

static struct p11 *p11_get(struct ps_module *mod, struct ps_err *err)
{
	struct p11 *p = ps_module_ext(mod);

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p || !(p->ctx = PKCS11_CTX_new())) {
		free(p);
		ps_err_nomem(err);
		return NULL;
	}
	/* Same path, same loaded module: libp11 shares our login. */
	if (PKCS11_CTX_load(p->ctx, ps_module_path(mod)) < 0 ||
	    PKCS11_enumerate_slots(p->ctx, &p->slots, &p->nslots) < 0) {
		ps_err_set(err, PS_EXIT_TOKEN, "token-error", NULL,
			   "libp11 cannot use the module %s",
			   ps_module_describe(mod));
		ps_err_add_openssl(err);
		p11_free(p);
		return NULL;
	}
	ps_module_set_ext(mod, p, p11_free);
	return p;
}

static PKCS11_SLOT *find_slot(struct p11 *p, const struct ps_token *tok)
{
	for (unsigned i = 0; i < p->nslots; i++) {
		PKCS11_TOKEN *t = p->slots[i].token;

		if (t && t->label && t->serialnr &&
		    strcmp(t->label, tok->label) == 0 &&
		    strcmp(t->serialnr, tok->serial) == 0)
			return &p->slots[i];
	}
	return NULL;
}

int ps_signer_key(struct ps_token *tok, const unsigned char *id, size_t id_len,
		  EVP_PKEY **out, struct ps_err *err)
{
	struct p11 *p = p11_get(tok->mod, err);
	PKCS11_SLOT *slot;
	PKCS11_KEY *keys = NULL;
	unsigned int nkeys = 0;

	*out = NULL;
	if (!p)
		return err ? err->status : PS_EXIT_TOKEN;
	slot = find_slot(p, tok);
	/* libp11 lists keys once per slot; a key generated later needs a
	 * fresh look at the slots. */
	for (int pass = 0; pass < 2 && !*out; pass++) {
		if (pass == 1) {
			PKCS11_release_all_slots(p->ctx, p->slots, p->nslots);
			p->slots = NULL;
			if (PKCS11_enumerate_slots(p->ctx, &p->slots,
						   &p->nslots) < 0)
				break;
			slot = find_slot(p, tok);
		}
		if (!slot ||
		    PKCS11_enumerate_keys(slot->token, &keys, &nkeys) < 0)
			continue;
		for (unsigned i = 0; i < nkeys; i++)
			if (keys[i].id_len == id_len &&
			    memcmp(keys[i].id, id, id_len) == 0) {
				*out = PKCS11_get_private_key(&keys[i]);
				break;
			}
	}
	if (!*out) {
		ps_err_set(
		    err, PS_EXIT_TOKEN, "token-error", NULL,
		    "the private key is on token '%s' but cannot be used "
		    "for signing through libp11",
		    tok->label);
		ps_err_add_openssl(err);
		return PS_EXIT_TOKEN;
	}
	return 0;
}

/* DigestInfo prefix of SHA-256 (RFC 8017, 9.2, note 1). */
static const unsigned char sha256_prefix[] = { 0x30, 0x31, 0x30, 0x0d, 0x06,
					       0x09, 0x60, 0x86, 0x48, 0x01,
					       0x65, 0x03, 0x04, 0x02, 0x01,
					       0x05, 0x00, 0x04, 0x20 };

/* r || s (each half of len / 2 bytes) as a DER Ecdsa-Sig-Value. */
static int ecdsa_der(const unsigned char *raw, size_t len, unsigned char **der,
		     size_t *der_len)
{
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, (int)(len / 2), NULL);
	BIGNUM *sv = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
	int n = -1;

	*der = NULL;
	if (s && r && sv && ECDSA_SIG_set0(s, r, sv)) {
		r = sv = NULL; /* owned by s */
		n = i2d_ECDSA_SIG(s, der);
	}
	BN_free(r);
	BN_free(sv);
	ECDSA_SIG_free(s);
	if (n <= 0)
		return -1;
	*der_len = (size_t)n;
	return 0;
}

int ps_signer_sign(struct ps_token *tok, CK_OBJECT_HANDLE priv, int pkey_type,
		   const unsigned char *tbs, size_t tbs_len,
		   unsigned char **sig, size_t *sig_len, struct ps_err *err)
{
	unsigned char in[sizeof(sha256_prefix) + SHA256_DIGEST_LENGTH];
	unsigned char *md = in + sizeof(sha256_prefix);
	unsigned char out[1024];
	CK_ULONG out_len = sizeof(out);
	CK_MECHANISM mech = { CKM_RSA_PKCS, NULL, 0 };
	CK_BYTE_PTR data = in;
	CK_ULONG data_len = sizeof(in);
	CK_RV rv;

	*sig = NULL;
	*sig_len = 0;
	if (pkey_type != EVP_PKEY_RSA && pkey_type != EVP_PKEY_EC)
		return ps_err_set(err, PS_EXIT_FAIL, "token-sign", NULL,
				  "cannot sign with this kind of key");
	memcpy(in, sha256_prefix, sizeof(sha256_prefix));
	SHA256(tbs, tbs_len, md);
	if (pkey_type == EVP_PKEY_EC) {
		mech.mechanism = CKM_ECDSA;
		data = md;
		data_len = SHA256_DIGEST_LENGTH;
	}
	rv = ps_p11_sign(tok, &mech, priv, data, data_len, out, &out_len);
	OPENSSL_cleanse(in, sizeof(in));
	if (rv != CKR_OK)
		return ps_ckr_err(err, rv, tok, "signing");
	if (pkey_type == EVP_PKEY_EC) {
		if (out_len % 2 || ecdsa_der(out, out_len, sig, sig_len) < 0)
			return ps_err_set(err, PS_EXIT_TOKEN, "token-sign",
					  NULL,
					  "the token's ECDSA signature has an "
					  "unexpected length (%lu bytes)",
					  (unsigned long)out_len);
		return 0;
	}
	*sig = OPENSSL_memdup(out, out_len);
	if (!*sig)
		return ps_err_nomem(err);
	*sig_len = out_len;
	return 0;
}

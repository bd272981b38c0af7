/* psrenew: token keys as EVP_PKEYs through libp11. */
#include <psrenew/signer.h>

#include <stdlib.h>
#include <string.h>

#include <libp11.h>
#include <openssl/err.h>

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
		ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
			   "out of memory");
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

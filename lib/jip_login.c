/* psrenew: choosing the certificate to log in to JIP with. */
#include <psrenew/jip_login.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <psrenew/inventory.h>
#include <psrenew/record.h>
#include <psrenew/signer.h>
#include <psrenew/codec.h>

/* Is the certificate one of the records of items? */
static int being_registered(const json_t *items, const char *serial_hex)
{
	size_t k;
	json_t *v;

	json_array_foreach ((json_t *)items, k, v)
		if (ps_json_str(v, "serial_hex") &&
		    !strcmp(ps_json_str(v, "serial_hex"), serial_hex))
			return 1;
	return 0;
}

/* May inv's certificate i log in? id_hex: that one; else the registered
 * one: valid, and maybe superseded by the certificate being registered
 * now. */
static int usable(const struct ps_inventory *inv, size_t i, const char *id_hex,
		  const json_t *items)
{
	const struct ps_invcert *ic = &inv->c[i];
	char *hid = ps_hex(ic->obj.id, ic->obj.id_len);
	const char *state = ps_inventory_state(inv, i);
	int ok = hid && ic->has_key == 1;

	if (ok && id_hex)
		ok = !strcasecmp(hid, id_hex);
	else if (ok)
		ok =
		    ic->cert.type == PS_CERT_COMMERCIAL &&
		    (!strcmp(state, "valid") || !strcmp(state, "superseded")) &&
		    !being_registered(items, ic->cert.serial_hex);
	free(hid);
	return ok;
}

static int choose(struct ps_jip_login_cert *lc, struct ps_token *tok,
		  const char *id_hex, const json_t *items, struct ps_err *err)
{
	struct ps_inventory inv;
	long best = -1;
	int rc = ps_inventory_load(&tok, 1, time(NULL), &inv, err);

	if (rc)
		return rc;
	for (size_t i = 0; i < inv.n; i++)
		if (usable(&inv, i, id_hex, items) &&
		    (best < 0 ||
		     inv.c[i].cert.not_before < inv.c[best].cert.not_before))
			best = (long)i;
	if (best < 0) {
		ps_inventory_free(&inv);
		return ps_err_set(
		    err, PS_EXIT_USAGE, "no-login-cert",
		    "name it with --login-cert ID (see ps-status)",
		    "no valid commercial certificate with its key "
		    "on the token to log in to JIP with");
	}
	lc->x = ps_cert_x509(&inv.c[best].cert);
	X509_up_ref(lc->x);
	rc = ps_signer_key(tok, inv.c[best].obj.id, inv.c[best].obj.id_len,
			   &lc->key, err);
	ps_inventory_free(&inv);
	return rc;
}

int ps_jip_login_cert_open(struct ps_jip_login_cert *lc, const char *id_hex,
			   const json_t *items, struct ps_err *err)
{
	struct ps_pool_module *m =
	    ps_pool_module(&lc->pool, lc->pool.module, NULL, NULL, err);
	int rc = m ? ps_tokens_require_one(m->toks, m->n, err) : err->status;

	if (!rc)
		rc = ps_token_login(m->toks[0], lc->pool.pin, err);
	return rc ? rc : choose(lc, m->toks[0], id_hex, items, err);
}

void ps_jip_login_cert_free(struct ps_jip_login_cert *lc)
{
	EVP_PKEY_free(lc->key);
	X509_free(lc->x);
	ps_pool_free(&lc->pool);
	lc->key = NULL;
	lc->x = NULL;
}

/* psrenew: PKCS#12 (PFX) files onto the token (the guide's §8): the import,
 * from an unlocked PFX (lib/pfx_read.c) to the objects written
 * (lib/pfx_store.c) under the import's journal (lib/pfx_journal.c), and its
 * record. */
#include <psrenew/pfx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>

#include <psrenew/cert.h>
#include <psrenew/inventory.h>
#include <psrenew/keypair.h>
#include <psrenew/pfx_journal.h>
#include <psrenew/pfx_store.h>
#include <psrenew/record.h>

/* On a run that completes an interrupted one: what that run wrote is this
 * import's, removed with the rest should this run fail. */
static void adopt(const struct ps_pfx_journal *j, CK_OBJECT_HANDLE key,
		  CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE cert,
		  struct ps_pfx_written *w)
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

/* The certificate objects holding x (by CKA_VALUE), appended to *objs. */
static int cert_there(struct ps_token *tok, X509 *x, struct ps_tobj **objs,
		      size_t *n, struct ps_err *err)
{
	unsigned char *der = NULL;
	int len = i2d_X509(x, &der);
	CK_ATTRIBUTE a = { CKA_VALUE, der, len > 0 ? (CK_ULONG)len : 0 };
	int rc = len > 0 ? ps_token_objects_match(tok, CKO_CERTIFICATE, &a, 1,
						  objs, n, err)
			 : ps_err_nomem(err);

	OPENSSL_free(der);
	return rc;
}

/* The certificates of the PFX (and of its chain) that are on the token
 * already: a template search each, not a read of every certificate. */
static int certs_there(struct ps_token *tok, const struct ps_pfx *pfx,
		       int chain, struct ps_tobj **objs, size_t *n,
		       struct ps_err *err)
{
	int rc = cert_there(tok, pfx->cert, objs, n, err);

	for (int i = 0; !rc && chain && i < sk_X509_num(pfx->chain); i++)
		rc =
		    cert_there(tok, sk_X509_value(pfx->chain, i), objs, n, err);
	return rc;
}

int ps_pfx_import(struct ps_token *tok, const struct ps_pfx *pfx,
		  const struct ps_pfx_import_opts *o, struct ps_state *st,
		  struct ps_pfx_import_result *res, struct ps_err *err)
{
	struct ps_pfx_key k;
	struct ps_pfx_journal j;
	struct ps_tobj *objs = NULL;
	size_t nobjs = 0;
	struct ps_pfx_written *w = calloc(1, sizeof(*w));
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
		return ps_err_nomem(err);
	}
	if (ps_pubkey_id(pfx->key, res->id) < 0) {
		free(w);
		free(missing);
		return ps_err_set(err, PS_EXIT_FAIL, "unsupported-key", NULL,
				  "cannot encode the public key of the PFX");
	}
	res->id_len = 20;
	if (o->label)
		ps_pfx_make_label(res->label, o->label);
	else
		ps_pfx_default_label(res->label, pfx->cert, pfx->friendly_name);
	ps_pfx_validity_warning(pfx->cert, res);
	rc = ps_pfx_key_from(pfx, &k, err);
	if (rc) {
		free(w);
		free(missing);
		return rc;
	}
	/* An interrupted import of this key first: its leftovers go. */
	rc = ps_pfx_journal_open(&j, st, tok, res->id, pfx->cert, err);
	if (!rc && j.rec)
		rc = ps_pfx_journal_resume(&j, tok, res, err);
	/* What is there already. */
	if (!rc)
		rc = ps_pfx_find_key(tok, &k, res, &key, err);
	if (!rc)
		rc = certs_there(tok, pfx, o->with_chain, &objs, &nobjs, err);
	if (rc)
		goto out;
	at = ps_pfx_cert_index(objs, nobjs, pfx->cert);
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
	pub = ps_pfx_find_pubkey(tok, res->id, res->id_len);
	adopt(&j, key, pub, cert, w);
	if (o->with_chain) {
		nmissing =
		    ps_pfx_chain_missing(pfx, objs, nobjs, missing, &need);
		res->chain_was_there = (size_t)nchain - nmissing;
	}
	if (!res->key_was_there)
		need += PS_ROOM_PER_RENEWAL;
	else if (!res->cert_was_there)
		need += (unsigned long)i2d_X509(pfx->cert, NULL);
	if (!res->key_was_there)
		rc = ps_pfx_check_mechanism(tok, pfx, k.ec, err);
	if (!rc)
		rc = ps_pfx_check_room(tok, need, err);
	if (!rc &&
	    (!res->key_was_there || !pub || !res->cert_was_there || nmissing))
		rc = ps_pfx_journal_begin(&j, tok, pfx, res, pub != 0, err);
	if (!rc)
		rc = ps_pfx_write_all(tok, pfx, o, &k, missing, pub != 0, res,
				      w, err);
	if (rc) {
		ps_pfx_journal_undo(&j, tok, ps_pfx_rollback(tok, w, res, err));
		res->key_added = res->pub_added = res->cert_added = 0;
		res->chain_added = 0;
	} else if (ps_pfx_journal_end(&j, NULL) && !res->warning[0]) {
		snprintf(res->warning, sizeof(res->warning),
			 "the record of this import in %s/%s cannot be "
			 "removed",
			 st->dir, PS_PFX_JOURNAL_SUB);
	}
	res->imported = res->key_added || res->cert_added;
	/* Completing an interrupted import: the record tells what the
	 * whole import wrote, as one run would. */
	if (!rc && j.rec && j.same_cert) {
		res->imported |= !j.key_was_there || !j.cert_was_there;
		res->cert_was_there = j.cert_was_there;
	}
out:
	ps_pfx_journal_close(&j);
	ps_tobjs_free(objs, nobjs);
	ps_pfx_key_free(&k);
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

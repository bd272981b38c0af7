/* psrenew: the record of a PFX import in progress (imports/ in the state
 * directory), so that a run completes or undoes an interrupted one. */
#include <psrenew/pfx_journal.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include <psrenew/record.h>
#include <psrenew/request.h>
#include <psrenew/codec.h>

void ps_pfx_journal_close(struct ps_pfx_journal *j)
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
		ps_hex_to(out, md, n);
	ERR_clear_error();
}

int ps_pfx_journal_open(struct ps_pfx_journal *j, struct ps_state *st,
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
		return ps_err_nomem(err);
	}
	ps_hex_to(j->name, id, 20);
	j->name[40] = '-';
	ps_hex_to(j->name + 41, md, 4);
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
	if (ps_state_get(st, PS_PFX_JOURNAL_SUB, j->name, &j->rec, &e)) {
		if (!strcmp(e.code, "no-such-request"))
			return 0;
		return ps_err_set(err, e.status, e.code,
				  "remove the file if no import of this key "
				  "is under way, then run ps-pfx-import again",
				  "cannot read %s/%s/%s.json, the record of an "
				  "interrupted import",
				  st->dir, PS_PFX_JOURNAL_SUB, j->name);
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

int ps_pfx_journal_resume(struct ps_pfx_journal *j, struct ps_token *tok,
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
		rc = ps_state_put(j->st, PS_PFX_JOURNAL_SUB, j->name, j->rec,
				  err);
	}
	return rc;
}

int ps_pfx_journal_begin(struct ps_pfx_journal *j, struct ps_token *tok,
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
		return ps_err_nomem(err);
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
	rc = ps_state_put(j->st, PS_PFX_JOURNAL_SUB, j->name, r, err);
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

int ps_pfx_journal_end(struct ps_pfx_journal *j, struct ps_err *err)
{
	if (!j->st || !j->rec)
		return 0;
	return ps_state_del(j->st, PS_PFX_JOURNAL_SUB, j->name, err);
}

void ps_pfx_journal_undo(struct ps_pfx_journal *j, struct ps_token *tok,
			 size_t left)
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
			ps_pfx_journal_end(j, &e);
		ps_leftovers_free(&l);
	}
}

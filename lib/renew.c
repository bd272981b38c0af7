/* psrenew: following-certificate requests. */
#include <psrenew/renew.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <psrenew/csr.h>
#include <psrenew/keypair.h>
#include <psrenew/record.h>
#include <psrenew/request.h>

static const char expired_hint[] =
    "an expired certificate cannot be renewed as a following certificate "
    "(the guide's §6): request a new one as a first-time certificate; to "
    "reach JIP meanwhile log in by name and password, OTP or NIA, or ask "
    "your local administrator";

int ps_renew_load_active(struct ps_renew *r, struct ps_err *err)
{
	char **ids;
	size_t n;
	int rc;

	r->active = json_object();
	if (!r->active)
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "out of memory");
	if (!r->st)
		return 0;
	rc = ps_state_list(r->st, &ids, &n, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		json_t *rec;
		const char *s, *sha;

		if (ps_state_load(r->st, ids[i], &rec, NULL))
			continue;
		s = ps_json_str(rec, "state");
		sha = ps_json_str(rec, "old_sha256");
		if (s && sha &&
		    (!strcmp(s, PS_REQ_UNSUBMITTED) ||
		     !strcmp(s, PS_REQ_PENDING) || !strcmp(s, PS_REQ_ISSUED)))
			json_object_set_new(r->active, sha,
					    json_string(ids[i]));
		json_decref(rec);
	}
	ps_state_list_free(ids, n);
	return 0;
}

void ps_renew_free(struct ps_renew *r)
{
	json_decref(r->active);
	r->active = NULL;
}

json_t *ps_target_error(const struct ps_err *err, const json_t *input,
			const struct ps_inventory *inv, long i)
{
	json_t *e = ps_record_error(err);

	if (!e)
		return NULL;
	if (inv && i >= 0) {
		const struct ps_invcert *ic = &inv->c[i];
		char *id = ps_hex(ic->obj.id, ic->obj.id_len);

		ps_json_set_str(e, "token", ic->tok->uri);
		ps_json_set_str(e, "serial_hex", ic->cert.serial_hex);
		ps_json_set_str(e, "type", ps_cert_type_name(ic->cert.type));
		ps_json_set_str(e, "cn", ic->cert.cn);
		ps_json_set_str(e, "id", id);
		free(id);
	} else if (input) {
		const char *keys[] = { "token", "serial_hex", "type",
				       "cn",	"id",	      "request_id" };

		for (size_t k = 0; k < sizeof(keys) / sizeof(*keys); k++)
			if (json_object_get(input, keys[k]))
				json_object_set(
				    e, keys[k],
				    json_object_get(input, keys[k]));
	}
	return e;
}

static void key_label(const struct ps_cert *c, time_t now, char *buf,
		      size_t len)
{
	struct tm tm;

	gmtime_r(&now, &tm);
	snprintf(buf, len, "%s %.60s %04d-%02d-%02d",
		 ps_cert_type_name(c->type), c->cn ? c->cn : "certificate",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

/* Checks that do not touch the token or the CA. */
static int precheck(struct ps_renew *r, const struct ps_inventory *inv,
		    size_t i, const char **resume_id, struct ps_err *err)
{
	const struct ps_invcert *ic = &inv->c[i];
	const struct ps_cert *c = &ic->cert;
	const char *active;

	*resume_id = NULL;
	if (c->not_after <= inv->now)
		return ps_err_set(err, PS_EXIT_REFUSED, "expired", expired_hint,
				  "certificate %s (%s, %s) has expired",
				  c->serial_hex, ps_cert_type_name(c->type),
				  c->cn ? c->cn : "?");
	if (c->not_before > inv->now)
		return ps_err_set(err, PS_EXIT_REFUSED, "not-yet-valid", NULL,
				  "certificate %s is not valid yet",
				  c->serial_hex);
	if (r->ca && ps_ca_needs_token(r->ca, 0) && ic->has_key == 0)
		return ps_err_set(
		    err, PS_EXIT_REFUSED, "no-current-key",
		    "this CA channel proves the request with the "
		    "current certificate's key; use a channel "
		    "that does not (helper:) or import the key "
		    "(ps-pfx-import)",
		    "the key of certificate %s is not on the token",
		    c->serial_hex);
	if (ic->superseded_by >= 0 && !r->force)
		return ps_err_set(
		    err, PS_EXIT_REFUSED, "already-renewed",
		    "use --force to renew it once more",
		    "certificate %s is already superseded by %s on "
		    "the token",
		    c->serial_hex, inv->c[ic->superseded_by].cert.serial_hex);
	active = json_string_value(json_object_get(r->active, c->sha256));
	if (active && !r->force) {
		json_t *rec = NULL;
		const char *s = NULL;

		if (r->st && !ps_state_load(r->st, active, &rec, NULL))
			s = ps_json_str(rec, "state");
		if (s && !strcmp(s, PS_REQ_UNSUBMITTED)) {
			json_decref(rec);
			*resume_id = active;
			return 0;
		}
		ps_err_set(err, PS_EXIT_REFUSED, "already-pending",
			   "pick it up with ps-fetch, or renew again with "
			   "--force",
			   "certificate %s already has request %s (%s)",
			   c->serial_hex, active, s ? s : "unknown");
		json_decref(rec);
		return PS_EXIT_REFUSED;
	}
	return 0;
}

/* Submits rec (state unsubmitted) and records the answer. kp is the new
 * key pair when this run generated it (removed again when the request
 * ends here), else NULL. */
static int submit(struct ps_renew *r, struct ps_token *tok, json_t *rec,
		  struct ps_keypair *kp, struct ps_err *err)
{
	const char *id = ps_json_str(rec, "request_id");
	struct ps_ca_request req;
	struct ps_ca_reply reply;
	struct ps_ca_auth auth;
	int rc;

	ps_request_ca_req(rec, tok, &auth, &req);
	rc = ps_ca_submit(r->ca, &req, &reply, err);
	ps_ca_auth_free(&auth);
	if (rc) {
		/* The channel could not be used at all (an untrusted server,
		 * a broken setup): the request never left, so nothing stays. */
		if (kp)
			ps_keypair_destroy(tok, kp, NULL);
		ps_state_remove(r->st, id, NULL);
		json_object_del(r->active, ps_json_str(rec, "old_sha256"));
		return rc;
	}
	ps_request_apply(rec, &reply, time(NULL));
	if (reply.status == PS_CA_REJECTED || reply.status == PS_CA_FAILED ||
	    reply.status == PS_CA_UNCONFIGURED) {
		/* The request ends here: no key pair without a future. */
		if (kp && ps_keypair_destroy(tok, kp, NULL) == 0)
			json_object_set_new(rec, "key_removed", json_true());
		if (reply.status != PS_CA_REJECTED) {
			ps_state_remove(r->st, id, NULL);
			json_object_del(r->active,
					ps_json_str(rec, "old_sha256"));
			rc = ps_err_set(
			    err,
			    reply.status == PS_CA_FAILED ? PS_EXIT_FAIL
							 : PS_EXIT_USAGE,
			    reply.status == PS_CA_FAILED ? "ca-failed"
							 : "ca-unconfigured",
			    "nothing was left behind: the new key "
			    "pair and the request were removed",
			    "the CA channel %s failed: %s",
			    ps_ca_channel(r->ca),
			    reply.message ? reply.message : "?");
			ps_ca_reply_free(&reply);
			return rc;
		}
	}
	ps_ca_reply_free(&reply);
	return ps_state_save(r->st, id, rec, err);
}

static int renew_one(struct ps_renew *r, struct ps_token *tok,
		     const struct ps_inventory *inv, size_t i, json_t **out,
		     struct ps_err *err)
{
	const struct ps_cert *c = &inv->c[i].cert;
	struct ps_keyspec ks;
	struct ps_keypair kp;
	char ksname[32], label[128], id[40], *csr = NULL;
	const char *resume_id;
	json_t *rec = NULL;
	time_t now = time(NULL);
	int rc, generated = 0;

	*out = NULL;
	rc = precheck(r, inv, i, &resume_id, err);
	if (rc)
		return rc;
	if (resume_id && !r->dry_run) {
		struct ps_keypair gen;
		unsigned char kid[64];
		size_t klen;
		int have = 0;

		rc = ps_state_load(r->st, resume_id, &rec, err);
		/* A key pair an earlier run generated for this request goes
		 * with it when the request ends here. */
		if (!rc &&
		    json_is_true(json_object_get(rec, "key_generated")) &&
		    !ps_unhex(ps_json_str(rec, "key_id"), kid, sizeof(kid),
			      &klen) &&
		    !ps_keypair_find(tok, kid, klen, &gen, NULL))
			have = 1;
		if (!rc)
			rc = submit(r, tok, rec, have ? &gen : NULL, err);
		if (have)
			ps_keypair_free(&gen);
		if (!rc)
			*out = rec;
		else
			json_decref(rec);
		return rc ? rc : ps_request_exit(*out);
	}
	if (!r->dry_run && r->ca && ps_ca_needs_token(r->ca, 0)) {
		/* The channel signs with the current key: it must be here
		 * (the inventory was read before the login, so look now). */
		struct ps_keypair cur;

		if (ps_keypair_find(tok, inv->c[i].obj.id, inv->c[i].obj.id_len,
				    &cur, NULL) != 0)
			return ps_err_set(
			    err, PS_EXIT_REFUSED, "no-current-key",
			    "this CA channel proves the request with the "
			    "current certificate's key; use a channel that "
			    "does not (helper:) or import the key "
			    "(ps-pfx-import)",
			    "the key of certificate %s is not on the token",
			    c->serial_hex);
		ps_keypair_free(&cur);
	}
	rc =
	    ps_keyspec_parse(r->key_type ? r->key_type : c->key_type, &ks, err);
	if (!rc && !r->key_id)
		rc = ps_token_check_mechanisms(tok, &ks, err);
	if (rc)
		return rc;
	ps_keyspec_name(&ks, ksname, sizeof(ksname));
	key_label(c, now, label, sizeof(label));
	if (r->dry_run) {
		rec = ps_request_new("dry-run", inv, i, r->cfg,
				     (const unsigned char *)"", 0, ksname,
				     label, NULL, r->ca, now);
		if (rec) {
			ps_request_set_state(rec, PS_REQ_PLANNED, now);
			json_object_del(rec, "request_id");
		}
		*out = rec;
		return rec ? 0 : PS_EXIT_FAIL;
	}
	if (r->key_id)
		rc = ps_keypair_find(tok, r->key_id, r->key_id_len, &kp, err);
	else if (!(rc = ps_keypair_generate(tok, &ks, label, &kp, err)))
		generated = 1;
	if (rc)
		return rc;
	/* Signed on our own session with the handle just generated or
	 * found: no libp11 key lookup (it lists every key on the token). */
	rc = ps_csr_make_token(ps_cert_x509(c), kp.pubkey, tok, kp.priv, &csr,
			       err);
	if (!rc) {
		ps_state_new_id(id, sizeof(id));
		rec = ps_request_new(id, inv, i, r->cfg, kp.id, kp.id_len,
				     ksname, label, csr, r->ca, now);
		if (!rec)
			rc = ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
					"out of memory");
		else
			json_object_set_new(rec, "key_generated",
					    json_boolean(generated));
	}
	ps_cert_x509_release(c); /* decoded for the CSR and the record */
	if (!rc)
		rc = ps_state_save(r->st, id, rec, err);
	if (rc) {
		/* Nothing recorded it: the new key pair goes again. */
		if (generated)
			ps_keypair_destroy(tok, &kp, NULL);
		goto out;
	}
	json_object_set_new(r->active, c->sha256, json_string(id));
	rc = submit(r, tok, rec, generated ? &kp : NULL, err);
	if (!rc)
		rc = ps_request_exit(rec);
out:
	free(csr);
	ps_keypair_free(&kp);
	if (rec && (rc == 0 || rc == PS_EXIT_PENDING || rc == PS_EXIT_TEMP ||
		    rc == PS_EXIT_REFUSED)) {
		*out = rec;
		return rc;
	}
	json_decref(rec);
	return rc;
}

static int by_type(const void *a, const void *b, void *v)
{
	const struct ps_inventory *inv = v;
	const size_t *x = a, *y = b;
	int tx = inv->c[*x].cert.type, ty = inv->c[*y].cert.type;

	if (tx != ty)
		return tx == PS_CERT_QUALIFIED ? -1 : 1;
	return *x < *y ? -1 : *x > *y;
}

int ps_renew_token(struct ps_renew *r, struct ps_token *tok,
		   const struct ps_inventory *inv, const size_t *idx,
		   json_t *const *inputs, size_t n, ps_emit_fn emit, void *ctx)
{
	size_t *order = malloc((n ? n : 1) * sizeof(*order));
	long room = ps_token_room(tok);
	long used = 0;
	int worst = 0, full = 0;

	if (!order)
		return PS_EXIT_FAIL;
	for (size_t k = 0; k < n; k++)
		order[k] = k;
	/* The guide: qualified first, then commercial. */
	for (size_t a = 1; a < n; a++)
		for (size_t b = a; b > 0; b--) {
			size_t x = idx[order[b - 1]], y = idx[order[b]];

			if (by_type(&y, &x, (void *)inv) >= 0)
				break;
			size_t t = order[b];
			order[b] = order[b - 1];
			order[b - 1] = t;
		}
	for (size_t k = 0; k < n; k++) {
		size_t i = idx[order[k]];
		json_t *in = inputs ? inputs[order[k]] : NULL;
		struct ps_err err;
		json_t *rec = NULL;
		int rc;

		ps_err_clear(&err);
		if (full || (room >= 0 && used >= room && !r->key_id)) {
			rc = ps_err_set(&err, PS_EXIT_TOKEN, "token-full",
					"free room first: ps-token-clean "
					"--for-room 1 (dry run, then --yes); "
					"qualified certificates were taken "
					"first, as the guide says",
					"not started: token '%s' has no room "
					"for another key pair and certificate "
					"(the guide's error 621)",
					tok->label);
		} else {
			rc = renew_one(r, tok, inv, i, &rec, &err);
			if (rec && !r->dry_run)
				used++;
			if (rc == PS_EXIT_TOKEN &&
			    !strcmp(err.code, "token-full"))
				full = 1;
		}
		if (rec) {
			if (in)
				ps_record_pass_through(rec, in);
			emit(ctx, rec);
		} else {
			json_t *e = ps_target_error(&err, in, inv, (long)i);

			if (e)
				emit(ctx, e);
			json_decref(e);
		}
		json_decref(rec);
		worst = ps_exit_worse(worst, rc);
	}
	free(order);
	return worst;
}

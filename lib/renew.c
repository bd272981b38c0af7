/* psrenew: following-certificate requests. */
#include <psrenew/renew.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include <psrenew/batch.h>
#include <psrenew/config.h>
#include <psrenew/csr.h>
#include <psrenew/keypair.h>
#include <psrenew/record.h>
#include <psrenew/request.h>
#include <psrenew/codec.h>

static const char expired_hint[] =
    "an expired certificate cannot be renewed as a following certificate "
    "(the guide's §6): request a new one as a first-time certificate; to "
    "reach JIP meanwhile log in by name and password, OTP or NIA, or ask "
    "your local administrator";

/* The keygen journal's directory in the state store (see below). */
#define KEYGEN "keygen"

static void note_damaged(struct ps_renew *r, const struct ps_state_file *f)
{
	json_t *e = ps_state_damaged_record(f);

	if (e)
		json_array_append_new(r->damaged, e);
	if (!strcmp(f->sub, "requests"))
		json_object_set_new(r->damaged_for,
				    f->for_sha256 ? f->for_sha256 : "*",
				    json_string(f->path ? f->path : f->name));
}

static int active_one(void *v, const struct ps_state_file *f)
{
	struct ps_renew *r = v;
	const char *s, *sha;

	json_object_set_new(r->seen, f->name, json_true());
	if (!f->rec) {
		note_damaged(r, f);
		return 0;
	}
	s = ps_json_str(f->rec, "state");
	sha = ps_json_str(f->rec, "old_sha256");
	if (sha && (!strcmp(s, PS_REQ_UNSUBMITTED) ||
		    !strcmp(s, PS_REQ_PENDING) || !strcmp(s, PS_REQ_ISSUED)))
		json_object_set_new(r->active, sha, json_string(f->name));
	return 0;
}

static int keygen_one(void *v, const struct ps_state_file *f)
{
	if (!f->rec)
		note_damaged(v, f);
	return 0;
}

/* Reads the requests not read yet (another run may have saved some). */
static int refresh_active(struct ps_renew *r, struct ps_err *err)
{
	return r->st ? ps_state_each(r->st, NULL, r->seen, active_one, r, err)
		     : 0;
}

int ps_renew_load_active(struct ps_renew *r, struct ps_err *err)
{
	int rc;

	r->active = json_object();
	r->seen = json_object();
	r->damaged = json_array();
	r->damaged_for = json_object();
	if (!r->active || !r->seen || !r->damaged || !r->damaged_for)
		return ps_err_nomem(err);
	if (!r->st)
		return 0;
	rc = refresh_active(r, err);
	if (!rc)
		rc = ps_state_each(r->st, KEYGEN, NULL, keygen_one, r, err);
	return rc;
}

void ps_renew_free(struct ps_renew *r)
{
	json_decref(r->active);
	json_decref(r->seen);
	json_decref(r->damaged);
	json_decref(r->damaged_for);
	r->active = r->seen = r->damaged = r->damaged_for = NULL;
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
	const char *active, *bad;

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
	bad = json_string_value(json_object_get(r->damaged_for, c->sha256));
	if (!bad)
		bad = json_string_value(json_object_get(r->damaged_for, "*"));
	if (bad)
		return ps_err_set(
		    err, PS_EXIT_REFUSED, "damaged-request",
		    "a request for it may be under way: repair the file, or "
		    "move it out of the state directory when that request is "
		    "over, then run again",
		    "not renewing certificate %s: the request file %s is "
		    "damaged and might be for it",
		    c->serial_hex, bad);
	active = json_string_value(json_object_get(r->active, c->sha256));
	if (active && !*active && !r->force)
		/* Planned earlier in this dry run: the real run would have
		 * its request by now. */
		return ps_err_set(err, PS_EXIT_REFUSED, "already-pending",
				  "each certificate is requested once: drop "
				  "the repeated record",
				  "certificate %s would already have the "
				  "request planned above",
				  c->serial_hex);
	if (active && !r->force) {
		json_t *rec = NULL;
		const char *s = NULL;
		struct ps_err e;

		ps_err_clear(&e);
		if (r->st && !ps_state_load(r->st, active, &rec, &e))
			s = ps_json_str(rec, "state");
		else if (r->st && !strcmp(e.code, "no-such-request")) {
			/* Removed meanwhile: that request never went out. */
			json_object_del(r->active, c->sha256);
			return 0;
		}
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

/* The CA issued a certificate for another key than the request's (the
 * channel refused it): exit 1, code key-mismatch. */
static int key_mismatch(const json_t *rec, struct ps_err *err)
{
	const char *m = ps_json_str(rec, "message");

	return ps_err_set(
	    err, PS_EXIT_FAIL, "key-mismatch",
	    "the CA issued a certificate that psrenew did not accept: it is "
	    "kept as rejected_cert in the request (it may need revoking); "
	    "the request stays pending with its key, ps-fetch asks again",
	    "the CA issued a certificate for another key than request %s's: "
	    "%.600s",
	    ps_json_str(rec, "request_id"), m ? m : "no reason given");
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
	int rc, mismatch;

	ps_request_ca_req(rec, tok, &auth, &req);
	rc = ps_ca_submit(r->ca, &req, &reply, err);
	ps_ca_auth_free(&auth);
	if (rc && !strcmp(err->code, "interrupted")) {
		/* Kept unsubmitted, with its key: a re-run submits it. */
		size_t len = strlen(err->msg);

		snprintf(err->msg + len, sizeof(err->msg) - len,
			 " (request %s kept)", id);
		return rc;
	}
	if (!rc) {
		rc = ps_request_check_reply(r->ca, &reply, err);
		if (rc) {
			/* The CA was reached, but what it said cannot be
			 * recorded: the request stays as saved (unsubmitted,
			 * with its key) for the next run. */
			ps_ca_reply_free(&reply);
			return rc;
		}
	} else {
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
	mismatch = reply.rejected_cert != NULL;
	ps_ca_reply_free(&reply);
	rc = ps_state_save(r->st, id, rec, err);
	if (!rc && mismatch)
		rc = key_mismatch(rec, err);
	return rc;
}

/*
 * The key generation journal (the state store's keygen/ directory). A key
 * pair exists on the token before any request names it: from
 * C_GenerateKeyPair until the request's first save. So that a crash in
 * between (kill -9, power loss) leaves nothing nobody knows of, the
 * journal entry keygen/ID.json (ID: the request id to be) is written
 * first, naming the token and the temporary CKA_ID the pair is generated
 * under, then again with the final CKA_ID once the public key is known,
 * before that id is set. The entry goes when the request is saved, or when
 * the key pair is removed again. Its lock (keygen-ID) is held meanwhile,
 * so a run at the same time never takes a live entry for a dead one.
 */
static int journal_put(struct ps_renew *r, const char *id, json_t *j,
		       struct ps_err *err)
{
	return ps_state_put(r->st, KEYGEN, id, j, err);
}

/* Generates the key pair under the journal; *jfd: its lock (-1: none). */
static int generate_journaled(struct ps_renew *r, struct ps_token *tok,
			      const struct ps_cert *c, const char *id,
			      const struct ps_keyspec *ks, const char *label,
			      struct ps_keypair *kp, int *jfd,
			      struct ps_err *err)
{
	unsigned char tmp[20];
	char lock[80], *hex;
	json_t *j;
	int rc;

	*jfd = -1;
	memset(kp, 0, sizeof(*kp));
	if (!r->st)
		return ps_keypair_generate(tok, ks, label, kp, err);
	if (RAND_bytes(tmp, sizeof(tmp)) != 1)
		return ps_err_set(err, PS_EXIT_FAIL, "random", NULL,
				  "no random bytes for a temporary key id");
	snprintf(lock, sizeof(lock), "keygen-%s", id);
	rc = ps_state_lock(r->st, lock, 1, jfd, err);
	if (rc)
		return rc;
	j = json_object();
	hex = ps_hex(tmp, sizeof(tmp));
	if (!j || !hex) {
		json_decref(j);
		free(hex);
		return ps_err_nomem(err);
	}
	ps_json_set_str(j, "token", tok->uri);
	ps_json_set_str(j, "tmp_id", hex);
	ps_json_set_str(j, "old_sha256", c->sha256);
	ps_json_set_str(j, "label", label);
	json_object_set_new(j, "started_at", json_integer(time(NULL)));
	json_object_set_new(j, "leftovers_before",
			    ps_leftovers_json(r->left_before));
	free(hex);
	rc = journal_put(r, id, j, err);
	if (!rc)
		rc = ps_keypair_generate_begin(tok, ks, label, tmp, sizeof(tmp),
					       kp, err);
	if (!rc) {
		hex = ps_hex(kp->id, kp->id_len);
		ps_json_set_str(j, "key_id", hex);
		free(hex);
		rc = journal_put(r, id, j, err);
		if (rc)
			ps_keypair_destroy(tok, kp, NULL);
	}
	if (!rc)
		rc = ps_keypair_generate_finish(tok, kp, err);
	json_decref(j);
	return rc;
}

/* The journal entry's work is over: the request that names the key pair
 * is saved (saved), or the key pair is gone (no handle left in kp). A key
 * pair that could not be removed keeps its entry for the next run. */
static void journal_end(struct ps_renew *r, const char *id, int jfd, int saved,
			const struct ps_keypair *kp)
{
	char lock[80];

	if (jfd < 0)
		return;
	if (saved || (!kp->priv && !kp->pub)) {
		ps_state_del(r->st, KEYGEN, id, NULL);
		snprintf(lock, sizeof(lock), "keygen-%s", id);
		ps_state_lock_remove(r->st, lock);
	}
	ps_state_unlock(jfd);
}

/* Removes what interrupted key generations left on tok: the key pairs
 * of journal entries whose request was never saved. */
static void recover(struct ps_renew *r, struct ps_token *tok)
{
	char **names;
	size_t n;

	if (ps_state_list_sub(r->st, KEYGEN, &names, &n, NULL))
		return;
	for (size_t i = 0; i < n; i++) {
		const char *keys[] = { "tmp_id", "key_id" };
		char lock[80];
		json_t *j = NULL, *req = NULL;
		int fd, ok = 1;

		if (strlen(names[i]) > 64 - 7)
			continue;
		snprintf(lock, sizeof(lock), "keygen-%s", names[i]);
		/* busy: a run at work on it right now */
		if (ps_state_lock(r->st, lock, 0, &fd, NULL))
			continue;
		if (ps_state_get(r->st, KEYGEN, names[i], &j, NULL) ||
		    !ps_json_str(j, "token") ||
		    strcmp(ps_json_str(j, "token"), tok->uri) != 0) {
			json_decref(j);
			ps_state_unlock(fd);
			continue;
		}
		/* Saved after all (the crash came after the save): the
		 * request owns the key pair. */
		if (ps_state_load(r->st, names[i], &req, NULL) != 0) {
			size_t keep[PS_N_LEFT], removed = 0;

			/* what C_GenerateKeyPair half-wrote, beyond what the
			 * token held before */
			ps_leftovers_from_json(
			    json_object_get(j, "leftovers_before"), keep);
			if (ps_token_leftovers_clean(tok, keep, &removed, NULL))
				ok = 0;
			r->recovered += (long)removed;
			for (size_t k = 0; k < 2; k++) {
				unsigned char id[64];
				size_t len;
				int got;

				if (ps_unhex(ps_json_str(j, keys[k]), id,
					     sizeof(id), &len) ||
				    len == 0)
					continue;
				got = ps_keypair_destroy_id(tok, id, len, NULL);
				if (got < 0)
					ok = 0;
				else
					r->recovered += got;
			}
		}
		json_decref(req);
		if (ok) {
			ps_state_del(r->st, KEYGEN, names[i], NULL);
			ps_state_lock_remove(r->st, lock);
		}
		json_decref(j);
		ps_state_unlock(fd);
	}
	ps_state_list_free(names, n);
}

/* The error record of a request saved already: with its id, and the
 * certificate the CA issued when it could not be saved (never dropped:
 * ps-fetch --cert takes it later). */
static json_t *request_error(const struct ps_err *err,
			     const struct ps_inventory *inv, size_t i,
			     const json_t *rec)
{
	json_t *e = ps_target_error(err, NULL, inv, (long)i);
	const char *s = ps_json_str(rec, "state");

	if (!e)
		return NULL;
	ps_json_set_str(e, "request_id", ps_json_str(rec, "request_id"));
	if (!strcmp(err->code, "state-write") && s &&
	    !strcmp(s, PS_REQ_ISSUED) && ps_json_str(rec, "cert")) {
		ps_json_set_str(e, "certificate", ps_json_str(rec, "cert"));
		ps_json_set_str(
		    e, "hint",
		    "the CA issued it but it could not be saved: it is in "
		    "this record's \"certificate\" (and on stderr); once the "
		    "state directory can be written again, install it with "
		    "ps-fetch --cert FILE");
	}
	return e;
}

/* Submits the unsubmitted request resume_id again (an earlier run saved
 * it, then stopped before the CA answered); *rec: the request as loaded
 * (NULL when it could not be). */
static int resume(struct ps_renew *r, struct ps_token *tok,
		  const char *resume_id, json_t **rec, struct ps_err *err)
{
	struct ps_keypair gen;
	unsigned char kid[64];
	char why[300];
	size_t klen;
	int have = 0, rc, lock = -1;

	/* ps-fetch may be at it too: one submission at a time. */
	rc = ps_state_lock(r->st, resume_id, 0, &lock, err);
	if (!rc)
		rc = ps_state_load(r->st, resume_id, rec, err);
	/* A key pair an earlier run generated for this request goes with
	 * it when the request ends here. */
	if (!rc && json_is_true(json_object_get(*rec, "key_generated")) &&
	    !ps_unhex(ps_json_str(*rec, "key_id"), kid, sizeof(kid), &klen) &&
	    !ps_keypair_find(tok, kid, klen, &gen, NULL))
		have = 1;
	/* ... and only when it is provably the request's own. */
	if (have &&
	    !ps_request_key_removable(*rec, tok, &gen, why, sizeof(why))) {
		ps_keypair_free(&gen);
		have = 0;
	}
	if (!rc)
		rc = submit(r, tok, *rec, have ? &gen : NULL, err);
	if (have)
		ps_keypair_free(&gen);
	ps_state_unlock(lock);
	return rc;
}

/* The key of a renewal and why (key_choice of psrenew(7)). */
struct key_choice {
	struct ps_keyspec ks;
	const char *why;
	unsigned long max_bits; /* the token's RSA ulMaxKeySize, 0: unknown */
};

static int choose_key(const struct ps_renew *r, struct ps_token *tok,
		      const struct ps_cert *c, struct key_choice *k,
		      struct ps_err *err)
{
	const char *env = getenv("PSRENEW_KEY_TYPE");
	const char *conf = ps_config_get(r->cfg, "defaults", "key-type");

	k->max_bits = 0;
	if (r->key_id || r->key_type) {
		k->why = r->key_id ? "existing-key" : "option";
		return ps_keyspec_parse(r->key_id ? c->key_type : r->key_type,
					&k->ks, err);
	}
	if ((env && *env) || (conf && *conf)) {
		k->why = env && *env ? "environment" : "config";
		return ps_keyspec_parse(env && *env ? env : conf, &k->ks, err);
	}
	k->why = ps_keyspec_default(tok, c->key_type, &k->ks, &k->max_bits);
	return 0;
}

/* The choice in the record. */
static void key_choice_record(const struct key_choice *k, json_t *rec)
{
	json_object_set_new(rec, "key_bits",
			    json_integer((json_int_t)k->ks.bits));
	ps_json_set_str(rec, "key_choice", k->why);
	if (k->max_bits)
		json_object_set_new(rec, "token_rsa_max_bits",
				    json_integer((json_int_t)k->max_bits));
}

/* The choice and its reason, for --verbose. */
static void key_choice_say(const struct ps_renew *r, const struct ps_cert *c,
			   const struct key_choice *k)
{
	static const char *const why[][2] = {
		{ "option", "--key-type" },
		{ "environment", "PSRENEW_KEY_TYPE" },
		{ "config", "key-type in psrenew.conf" },
		{ "existing-key", "--key: the existing key pair" },
		{ "current-key", "never smaller than the current key" },
		{ "token-4096", "the token makes RSA keys of up to" },
		{ "token-2048", "the token makes RSA keys of up to" },
	};
	char line[300], ksname[32];
	const char *text = k->why;

	if (!r->hooks || !r->hooks->info)
		return;
	for (size_t i = 0; i < sizeof(why) / sizeof(*why); i++)
		if (!strcmp(why[i][0], k->why))
			text = why[i][1];
	ps_keyspec_name(&k->ks, ksname, sizeof(ksname));
	if (!strncmp(k->why, "token-", 6) && k->max_bits)
		snprintf(line, sizeof(line),
			 "certificate %s: a %s key (%s: %s %lu bits, "
			 "CKM_RSA_PKCS_KEY_PAIR_GEN)",
			 c->serial_hex, ksname, k->why, text, k->max_bits);
	else if (!strncmp(k->why, "token-", 6))
		snprintf(line, sizeof(line),
			 "certificate %s: a %s key (%s: the token does not "
			 "say how large its RSA keys can be)",
			 c->serial_hex, ksname, k->why);
	else
		snprintf(line, sizeof(line),
			 "certificate %s: a %s key (%s: %s)", c->serial_hex,
			 ksname, k->why, text);
	r->hooks->info(r->hooks->ctx, line);
}

/* The front end's wait line around a key generation (NULL: it ends). */
static void keygen_wait(const struct ps_renew *r, const struct ps_token *tok,
			const struct ps_keyspec *ks)
{
	char what[200];

	if (!r->hooks || !r->hooks->wait)
		return;
	if (!ks) {
		r->hooks->wait(r->hooks->ctx, NULL);
		return;
	}
	if (ks->type == CKK_EC)
		snprintf(what, sizeof(what), "generating an EC %s key on %s",
			 ks->curve, tok->label);
	else
		snprintf(what, sizeof(what), "generating a %lu-bit key on %s",
			 ks->bits, tok->label);
	r->hooks->wait(r->hooks->ctx, what);
}

/*
 * Renews inv->c[i]. *clock is the certificate's lock (see renew_one):
 * released here once the request is saved, so that another run waits only
 * for that, never for the CA.
 */
static int renew_locked(struct ps_renew *r, struct ps_token *tok,
			const struct ps_inventory *inv, size_t i, int *clock,
			json_t **out, struct ps_err *err)
{
	const struct ps_cert *c = &inv->c[i].cert;
	struct ps_keyspec ks;
	struct key_choice kc;
	struct ps_keypair kp;
	char ksname[32], label[128], id[40], *csr = NULL;
	const char *resume_id;
	json_t *rec = NULL;
	time_t now = time(NULL);
	int rc, generated = 0, jfd = -1, saved = 0, idlock = -1;

	*out = NULL;
	memset(&kp, 0, sizeof(kp));
	rc = precheck(r, inv, i, &resume_id, err);
	if (rc)
		return rc;
	if (resume_id && !r->dry_run) {
		rc = resume(r, tok, resume_id, &rec, err);
		if (!rc) {
			*out = rec;
			return ps_request_exit(rec);
		}
		if (rec)
			*out = request_error(err, inv, i, rec);
		json_decref(rec);
		return rc;
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
	rc = choose_key(r, tok, c, &kc, err);
	ks = kc.ks;
	if (!rc)
		key_choice_say(r, c, &kc);
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
			key_choice_record(&kc, rec);
			json_object_del(rec, "request_id");
			json_object_set_new(r->active, c->sha256,
					    json_string(""));
		}
		*out = rec;
		return rec ? 0 : PS_EXIT_FAIL;
	}
	ps_state_new_id(id, sizeof(id));
	if (r->key_id)
		rc = ps_keypair_find(tok, r->key_id, r->key_id_len, &kp, err);
	else {
		keygen_wait(r, tok, &ks);
		rc = generate_journaled(r, tok, c, id, &ks, label, &kp, &jfd,
					err);
		keygen_wait(r, tok, NULL);
		generated = !rc;
	}
	if (rc) {
		journal_end(r, id, jfd, 0, &kp);
		ps_keypair_free(&kp);
		return rc;
	}
	/* Signed on our own session with the handle just generated or
	 * found: no libp11 key lookup (it lists every key on the token). */
	rc = ps_csr_make_token(ps_cert_x509(c), kp.pubkey, tok, kp.priv, &csr,
			       err);
	if (!rc) {
		rec = ps_request_new(id, inv, i, r->cfg, kp.id, kp.id_len,
				     ksname, label, csr, r->ca, now);
		if (!rec)
			rc = ps_err_nomem(err);
		else
			json_object_set_new(rec, "key_generated",
					    json_boolean(generated));
		if (rec)
			key_choice_record(&kc, rec);
	}
	ps_cert_x509_release(c); /* decoded for the CSR and the record */
	/* Held until the CA's answer is recorded: ps-fetch --pending, which
	 * submits unsubmitted requests, leaves this one alone meanwhile. */
	if (!rc)
		rc = ps_state_lock(r->st, id, 0, &idlock, err);
	if (!rc)
		rc = ps_state_save(r->st, id, rec, err);
	if (rc) {
		/* Nothing recorded it: the new key pair goes again. */
		if (generated)
			ps_keypair_destroy(tok, &kp, NULL);
		json_decref(rec);
		rec = NULL;
		goto out;
	}
	saved = 1;
	journal_end(r, id, jfd, 1, &kp);
	jfd = -1;
	json_object_set_new(r->active, c->sha256, json_string(id));
	json_object_set_new(r->seen, id, json_true());
	ps_state_unlock(*clock);
	*clock = -1;
	rc = submit(r, tok, rec, generated ? &kp : NULL, err);
	if (!rc)
		rc = ps_request_exit(rec);
out:
	ps_state_unlock(idlock);
	journal_end(r, id, jfd, saved, &kp);
	free(csr);
	ps_keypair_free(&kp);
	if (rec && (rc == 0 || rc == PS_EXIT_PENDING || rc == PS_EXIT_TEMP ||
		    rc == PS_EXIT_REFUSED)) {
		*out = rec;
		return rc;
	}
	if (rec)
		*out = request_error(err, inv, i, rec);
	json_decref(rec);
	return rc;
}

/*
 * One certificate, one pending request, even with runs at once (cron and
 * a person): the certificate's lock (renew-<sha256 prefix>) is held from
 * the "already pending?" check, made on the requests as they are now,
 * until the new request is saved.
 */
static int renew_one(struct ps_renew *r, struct ps_token *tok,
		     const struct ps_inventory *inv, size_t i, json_t **out,
		     struct ps_err *err)
{
	char name[64];
	int clock = -1, rc;

	*out = NULL;
	if (r->st && !r->dry_run) {
		snprintf(name, sizeof(name), "renew-%.40s",
			 inv->c[i].cert.sha256);
		rc = ps_state_lock(r->st, name, 1, &clock, err);
		if (!rc)
			rc = refresh_active(r, err);
		if (rc) {
			ps_state_unlock(clock);
			return rc;
		}
	}
	rc = renew_locked(r, tok, inv, i, &clock, out, err);
	ps_state_unlock(clock);
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
	if (r->st && !r->dry_run && tok->logged_in) {
		recover(r, tok);
		room = ps_token_room(tok);
		/* what a key generation killed half-way would add to (the
		 * journal keeps it) */
		if (!r->key_id)
			ps_token_leftover_counts(tok, r->left_before, NULL);
	}
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
		if (ps_ca_interrupted()) {
			rc = ps_err_set(
			    &err, 128 + ps_ca_interrupted(), "interrupted",
			    "run the same command again to renew it",
			    "not started: interrupted by a signal");
		} else if (full || (room >= 0 && used >= room && !r->key_id)) {
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

/* psrenew: polling and installing. */
#include <psrenew/fetch.h>
#include <psrenew/fetch_wait.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <psrenew/certio.h>
#include <psrenew/inventory.h>
#include <psrenew/keypair.h>
#include <psrenew/pool.h>
#include <psrenew/record.h>
#include <psrenew/renew.h>
#include <psrenew/request.h>
#include <psrenew/codec.h>

/* The pending records ps_fetch_unfinished has just read, for
 * ps_fetch_poll_due: it takes one as long as its file is unchanged
 * (ps_state_unchanged) instead of reading and parsing it again. */
struct loaded_rec {
	json_t *rec;
	struct ps_state_ident ident;
};

struct ps_fetch_loaded {
	json_t *index; /* request id -> position in v */
	struct loaded_rec *v;
	size_t n;
};

static void loaded_free(struct ps_fetch *f)
{
	struct ps_fetch_loaded *l = f->loaded;

	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		json_decref(l->v[i].rec);
	json_decref(l->index);
	free(l->v);
	free(l);
	f->loaded = NULL;
}

static struct loaded_rec *loaded_get(const struct ps_fetch *f, const char *id)
{
	json_t *i =
	    f->loaded && id ? json_object_get(f->loaded->index, id) : NULL;

	return i ? &f->loaded->v[json_integer_value(i)] : NULL;
}

void ps_fetch_init(struct ps_fetch *f)
{
	memset(f, 0, sizeof(*f));
	f->cas = json_object();
}

void ps_fetch_free(struct ps_fetch *f)
{
	const char *k;
	json_t *v;

	json_object_foreach (f->cas, k, v)
		ps_ca_close((struct ps_ca *)(uintptr_t)json_integer_value(v));
	json_decref(f->cas);
	json_decref(f->polled);
	f->polled = NULL;
	json_decref(f->damaged);
	f->damaged = NULL;
	loaded_free(f);
	if (f->toks)
		ps_pool_free(f->toks);
	free(f->toks);
	f->toks = NULL;
	f->cas = NULL;
}

/* The module at path with its tokens (every one: the requests say which
 * they are for), from the run's pool. */
static struct ps_pool_module *module_for(struct ps_fetch *f, const char *path,
					 struct ps_err *err)
{
	if (!f->toks) {
		f->toks = calloc(1, sizeof(*f->toks));
		if (!f->toks) {
			ps_err_nomem(err);
			return NULL;
		}
		f->toks->module = f->module;
		f->toks->pin = f->pin;
	}
	return ps_pool_module(f->toks, path, "a request file", NULL, err);
}

void ps_fetch_preload(struct ps_fetch *f)
{
	struct ps_err e = { 0 };

	if (f->module && !f->dry_run)
		(void)module_for(f, f->module, &e);
}

/* The token of a request if it is present (not logged in); *no_module
 * when its module could not be loaded (err set). */
static struct ps_token *present_token(struct ps_fetch *f, const json_t *rec,
				      int *no_module, struct ps_err *err)
{
	struct ps_pool_module *m = module_for(
	    f, f->module ? f->module : ps_json_str(rec, "module"), err);

	*no_module = !m;
	return ps_pool_find(m, ps_json_str(rec, "token"));
}

static int same(const char *want, const char *have)
{
	return !want || (have && !strcmp(want, have));
}

/* Is the request's token one that --token selects? Told by the request's
 * token URI; a selector naming a slot or library needs the token itself. */
static int selected(struct ps_fetch *f, const json_t *rec)
{
	const struct ps_uri *sel = f->sel;
	const char *uri = ps_json_str(rec, "token");
	struct ps_token *t;
	struct ps_uri u;
	int ok, no_module;

	if (!sel || !ps_uri_has_token_attrs(sel))
		return 1;
	if (!uri || ps_uri_parse(uri, &u, NULL))
		return 0;
	ok = same(sel->token, u.token) &&
	     same(sel->manufacturer, u.manufacturer) &&
	     same(sel->serial, u.serial) && same(sel->model, u.model);
	ps_uri_free(&u);
	if (ok && (sel->slot_id >= 0 || sel->slot_description ||
		   sel->slot_manufacturer || sel->lib_manufacturer ||
		   sel->lib_description || sel->lib_version))
		ok = (t = present_token(f, rec, &no_module, NULL)) &&
		     ps_token_selected(t, sel);
	return ok;
}

/* Requests of a run on one token that search for their objects, before
 * the token's objects are indexed (a search is 3 calls, 3 or 4 per
 * request; an index costs one read per object on the token). */
#define FETCH_INDEX_AFTER 8

/* The token of a request, open read-write and logged in (one login per
 * token and run: ps_token_login tries a token once). */
static struct ps_token *token_for(struct ps_fetch *f, const json_t *rec,
				  struct ps_err *err)
{
	int no_module;
	struct ps_token *t = present_token(f, rec, &no_module, err);

	if (t) {
		if (ps_pool_login(f->toks, t, 1, err))
			return NULL;
		/* Many requests for this token look their keys and
		 * certificates up from one listing (one read per object on
		 * the token); the first few search for theirs alone. */
		if (!t->index && ++t->uses > FETCH_INDEX_AFTER)
			ps_token_index(t, NULL);
		return t;
	}
	if (no_module)
		return NULL;
	ps_err_set(
	    err, PS_EXIT_TOKEN, "token-absent",
	    "insert the token and run ps-fetch again; the request is "
	    "kept",
	    "the token of request %s (%s) is not present",
	    ps_json_str(rec, "request_id") ? ps_json_str(rec, "request_id")
					   : "?",
	    ps_json_str(rec, "token_label") ? ps_json_str(rec, "token_label")
					    : "?");
	return NULL;
}

static struct ps_ca *ca_for(struct ps_fetch *f, const json_t *rec,
			    struct ps_err *err)
{
	const char *chan = ps_json_str(rec, "channel");
	json_t *v = chan ? json_object_get(f->cas, chan) : NULL;
	struct ps_ca *ca;

	if (v)
		return (struct ps_ca *)(uintptr_t)json_integer_value(v);
	if (ps_ca_open(chan, f->cfg, &ca, err))
		return NULL;
	ps_ca_set_bundle(ca, f->ca_bundle);
	json_object_set_new(f->cas, chan,
			    json_integer((json_int_t)(uintptr_t)ca));
	return ca;
}

static X509 *pem_cert(const char *pem)
{
	BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	return x;
}

/* The cert record printed once a request is installed. */
static json_t *installed_record(struct ps_fetch *f, struct ps_token *tok,
				const json_t *rec, X509 *leaf,
				const unsigned char *id, size_t id_len)
{
	struct ps_cert c;
	json_t *out;

	if (ps_cert_from_x509(leaf, &c, NULL))
		return NULL;
	out = ps_cert_record(tok, id, id_len, ps_json_str(rec, "key_label"), &c,
			     1, "valid", NULL, f->cfg, time(NULL));
	if (out) {
		ps_json_set_str(out, "request_id",
				ps_json_str(rec, "request_id"));
		json_object_set(out, "replaces_serial_hex",
				json_object_get(rec, "old_serial_hex"));
		ps_record_pass_through(out, rec);
	}
	ps_cert_free(&c);
	return out;
}

/* A failure of the token or of this host (lib/ckr.c's codes of exit
 * status 1), not of what the CA issued: the certificate is kept. */
static int local_failure(const char *code)
{
	static const char *const codes[] = { "token-rejected", "token-busy",
					     "module-error",   "pkcs11-error",
					     "no-memory",      "state-read" };

	for (size_t i = 0; i < sizeof(codes) / sizeof(*codes); i++)
		if (!strcmp(code, codes[i]))
			return 1;
	return 0;
}

/*
 * An install that was killed inside C_CreateObject can leave a half-written
 * certificate object (see "Leftovers" in token.h). Before the certificate
 * is written, the request records how many leftovers the token held
 * (INSTALL_MARK, saved); a later run that finds the mark removes the ones
 * beyond that count before it installs. The count is taken once per token
 * and run.
 */
#define INSTALL_MARK "install_leftovers_before"

static int mark_install(struct ps_fetch *f, struct ps_token *tok, json_t *rec,
			struct ps_err *err)
{
	json_t *mark = json_object_get(rec, INSTALL_MARK);
	size_t keep[PS_N_LEFT], removed = 0;
	int rc;

	if (mark) {
		/* an earlier install of this request was interrupted */
		ps_leftovers_from_json(mark, keep);
		rc = ps_token_leftovers_clean(tok, keep, &removed, err);
		if (!rc && removed)
			f->leftovers_removed += removed;
		return rc;
	}
	if (!tok->left_counted) {
		rc = ps_token_leftover_counts(tok, tok->left_n, err);
		if (rc)
			return rc;
		tok->left_counted = 1;
	}
	json_object_set_new(rec, INSTALL_MARK, ps_leftovers_json(tok->left_n));
	return ps_state_save(f->st, ps_json_str(rec, "request_id"), rec, err);
}

static int install(struct ps_fetch *f, json_t *rec, json_t **out,
		   struct ps_err *err)
{
	const char *id = ps_json_str(rec, "request_id");
	unsigned char kid[64];
	size_t klen;
	STACK_OF(X509) *certs = NULL;
	X509 *old = pem_cert(ps_json_str(rec, "old_cert"));
	struct ps_install_result res;
	struct ps_install_opts o = f->inst;
	struct ps_token *tok;
	const char *pem = ps_json_str(rec, "cert");
	const char *code = ps_json_str(rec, "code");
	int rc;

	/* A certificate refused for its type waits for --accept-type. */
	if (!pem && code && !strcmp(code, "type-mismatch"))
		pem = ps_json_str(rec, "rejected_cert");
	o.type = ps_json_str(rec, "type");
	memset(&res, 0, sizeof(res));
	if (ps_unhex(ps_json_str(rec, "key_id"), kid, sizeof(kid), &klen) ||
	    !pem) {
		X509_free(old);
		return ps_err_set(err, PS_EXIT_FAIL, "state-read", NULL,
				  "request %s lacks its key id or certificate",
				  id);
	}
	tok = token_for(f, rec, err);
	rc = tok ? 0 : err->status;
	if (!rc)
		rc = ps_certs_parse((const unsigned char *)pem, strlen(pem),
				    &certs, err);
	if (!rc)
		rc = mark_install(f, tok, rec, err);
	if (!rc)
		rc = ps_install_cert(tok, certs, kid, klen, old, &o, &res, err);
	if (rc == PS_EXIT_REFUSED && !strcmp(err->code, "type-mismatch")) {
		/* Issued, but not what was asked for: kept, with its key, for
		 * a person to decide (--accept-type); the state stays. */
		ps_json_set_str(rec, "rejected_cert", pem);
		json_object_del(rec, "cert");
		ps_json_set_str(rec, "code", err->code);
		ps_json_set_str(rec, "message", err->msg);
		ps_state_save(f->st, id, rec, NULL);
	}
	if (rc == PS_EXIT_FAIL && !local_failure(err->code)) {
		/* The CA's answer is unusable: ask it again later. */
		ps_json_set_str(rec, "rejected_cert", pem);
		json_object_del(rec, "cert");
		ps_json_set_str(rec, "message", err->msg);
		ps_request_set_state(rec, PS_REQ_PENDING, time(NULL));
		ps_state_save(f->st, id, rec, NULL);
	}
	if (!rc) {
		char *spem = ps_cert_pem(res.leaf);
		struct ps_cert c;

		json_object_del(rec, INSTALL_MARK);
		if (code && !strcmp(code, "type-mismatch")) {
			json_object_del(rec, "rejected_cert");
			json_object_del(rec, "code");
			json_object_del(rec, "message");
		}
		ps_request_set_state(rec, PS_REQ_INSTALLED, time(NULL));
		ps_json_set_time(rec, "installed_at", time(NULL));
		ps_json_set_str(rec, "cert", spem);
		if (!ps_cert_from_x509(res.leaf, &c, NULL)) {
			ps_json_set_str(rec, "new_serial_hex", c.serial_hex);
			ps_cert_free(&c);
		}
		free(spem);
		/* Lost in a crash of the system, the request is as the
		 * install mark left it: the re-run finds the certificate
		 * (docs/RELIABILITY.md, "Fewer fsyncs"). */
		rc = ps_state_save_undoable(f->st, id, rec, err);
		if (!rc) {
			*out =
			    installed_record(f, tok, rec, res.leaf, kid, klen);
			if (*out && res.warning[0])
				ps_json_set_str(*out, "warning", res.warning);
			if (*out && res.already)
				json_object_set_new(*out, "already_installed",
						    json_true());
		}
	}
	ps_install_result_free(&res);
	sk_X509_pop_free(certs, X509_free);
	X509_free(old);
	return rc;
}

/* A request the CA refused: its key pair has no future. Only a key pair
 * ps-renew generated (never one given with --key), and only when it is
 * provably the request's own and nothing uses it
 * (ps_request_key_removable); else it stays, and key_kept says why. */
static void remove_key(struct ps_fetch *f, json_t *rec)
{
	struct ps_keypair kp;
	struct ps_token *tok;
	unsigned char id[64];
	char why[300];
	size_t len;

	if (!json_is_true(json_object_get(rec, "key_generated")) ||
	    ps_unhex(ps_json_str(rec, "key_id"), id, sizeof(id), &len) ||
	    !(tok = token_for(f, rec, NULL)) ||
	    ps_keypair_find(tok, id, len, &kp, NULL))
		return;
	if (!ps_request_key_removable(rec, tok, &kp, why, sizeof(why)))
		ps_json_set_str(rec, "key_kept", why);
	else if (ps_keypair_destroy(tok, &kp, NULL) == 0)
		json_object_set_new(rec, "key_removed", json_true());
	ps_keypair_free(&kp);
}

/* Connections (and polls in flight) of ps_fetch_poll_due per channel. */
#define POLL_LANES 8
/* Due polls read, sent and recorded together, at most (memory: about
 * 7 KiB of parsed record each); an EST channel's connections stay open
 * from one chunk to the next (ps_http_parallel). */
#define POLL_CHUNK 64

static json_t *reply_json(const struct ps_ca_reply *r)
{
	json_t *o = json_object();

	json_object_set_new(o, "status", json_integer(r->status));
	json_object_set_new(o, "delay", json_integer(r->delay));
	ps_json_set_str(o, "certs_pem", r->certs_pem);
	ps_json_set_str(o, "cookie", r->cookie);
	ps_json_set_str(o, "message", r->message);
	ps_json_set_str(o, "fail_info", r->fail_info);
	return o;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The answer ps_fetch_poll_due got for rec, taken (used once): 1 with it
 * in r, 2 when ps_fetch_poll_due has recorded it already, 0: none. */
static int polled_reply(struct ps_fetch *f, const json_t *rec,
			struct ps_ca_reply *r)
{
	const char *id = ps_json_str(rec, "request_id");
	json_t *o = id && f->polled ? json_object_get(f->polled, id) : NULL;

	if (!o)
		return 0;
	if (json_is_true(o)) { /* recorded already */
		json_object_del(f->polled, id);
		return 2;
	}
	memset(r, 0, sizeof(*r));
	r->status = (int)json_integer_value(json_object_get(o, "status"));
	r->delay = (long)json_integer_value(json_object_get(o, "delay"));
	r->certs_pem = dup_or_null(ps_json_str(o, "certs_pem"));
	r->cookie = dup_or_null(ps_json_str(o, "cookie"));
	r->message = dup_or_null(ps_json_str(o, "message"));
	r->fail_info = dup_or_null(ps_json_str(o, "fail_info"));
	json_object_del(f->polled, id);
	return 1;
}

/* What ps_fetch_poll_due polls: one due, pending request of an EST
 * channel, with what its request structure points into. */
struct due_poll {
	json_t *rec;
	struct ps_state_ident ident; /* of the file rec was read from */
	struct ps_ca *ca;
	struct ps_ca_auth auth;
	struct ps_ca_request req;
};

/* The "still pending" answers of ps_fetch_poll_due, recorded in the state
 * store as they come, by several threads while the other polls are in
 * flight: each save waits for the disk three times (fsync of the file,
 * the rename, fsync of the directory), and the disk takes several at
 * once far faster than one after the other. Nothing else changes: the
 * record is locked, read, updated with ps_request_apply and saved as
 * ask_ca would, and an answer that could not be recorded so (the request
 * locked by another process, no longer pending, a failed save) is left to
 * ps_fetch_request. The threads touch the state store only. */
struct record_job {
	const char *id;
	const struct ps_ca_reply *reply;
	size_t at;		  /* index of reply in the batch */
	const struct due_poll *d; /* the record as polled (not changed) */
	int done;
};

struct recorder {
	struct ps_fetch *f;
	const char **ids; /* the request of each answer of the batch */
	const struct due_poll *d;
	const size_t *at; /* answer i is for d[at[i]] */
	const struct ps_ca_reply *replies;
	const int *rcs;
	struct record_job *jobs; /* queued: [next, n) waiting */
	size_t n, next;
	int closed; /* no more answers to come */
	pthread_mutex_t mu;
	pthread_cond_t more;
};

static void record_one(struct ps_fetch *f, struct record_job *j)
{
	json_t *rec = NULL;
	const char *s;
	int lock = -1;

	if (ps_state_lock(f->st, j->id, 0, &lock, NULL))
		return;
	/* The file polled a moment ago, unless it changed since. */
	if (j->d && j->d->rec && ps_state_unchanged(f->st, j->id, &j->d->ident))
		rec = json_deep_copy(j->d->rec);
	else if (ps_state_load(f->st, j->id, &rec, NULL))
		rec = NULL;
	if (rec && (s = ps_json_str(rec, "state")) &&
	    !strcmp(s, PS_REQ_PENDING)) {
		ps_request_apply(rec, j->reply, time(NULL));
		j->done = ps_state_save(f->st, j->id, rec, NULL) == 0;
	}
	json_decref(rec);
	ps_state_unlock(lock);
}

static void *recorder_run(void *v)
{
	struct recorder *r = v;

	for (;;) {
		size_t i;

		pthread_mutex_lock(&r->mu);
		while (r->next >= r->n && !r->closed)
			pthread_cond_wait(&r->more, &r->mu);
		if (r->next >= r->n) {
			pthread_mutex_unlock(&r->mu);
			return NULL;
		}
		i = r->next++;
		pthread_mutex_unlock(&r->mu);
		record_one(r->f, &r->jobs[i]);
	}
}

/* ps_ca_poll_many's answered: a "still pending" answer is queued. */
static void on_answered(size_t i, void *v)
{
	struct recorder *r = v;

	if (r->rcs[i] != 0 || r->replies[i].status != PS_CA_PENDING ||
	    !r->ids[i])
		return;
	pthread_mutex_lock(&r->mu);
	r->jobs[r->n++] = (struct record_job){ r->ids[i], &r->replies[i], i,
					       &r->d[r->at[i]], 0 };
	pthread_cond_signal(&r->more);
	pthread_mutex_unlock(&r->mu);
}

/* ps_ca_poll_many over reqs[0..m-1] (of the requests ids[]), the still
 * pending answers recorded on the way by up to POLL_LANES threads
 * (recorded[i] set for those); with no thread, after the polls here. */
static void poll_and_record(struct ps_fetch *f, struct ps_ca *ca,
			    const struct ps_ca_request *reqs, const char **ids,
			    const struct due_poll *d, const size_t *at,
			    size_t m, struct ps_ca_reply *replies, int *rcs,
			    struct ps_err *errs, char *recorded)
{
	struct recorder r = { .f = f,
			      .ids = ids,
			      .d = d,
			      .at = at,
			      .replies = replies,
			      .rcs = rcs,
			      .mu = PTHREAD_MUTEX_INITIALIZER,
			      .more = PTHREAD_COND_INITIALIZER };
	pthread_t t[POLL_LANES];
	size_t k = 0;

	if (!(r.jobs = calloc(m, sizeof(*r.jobs)))) {
		ps_ca_poll_many(ca, reqs, m, POLL_LANES, replies, rcs, errs,
				NULL, NULL);
		return;
	}
	while (k + 1 < POLL_LANES && k + 1 < m &&
	       pthread_create(&t[k], NULL, recorder_run, &r) == 0)
		k++;
	ps_ca_poll_many(ca, reqs, m, POLL_LANES, replies, rcs, errs,
			on_answered, &r);
	pthread_mutex_lock(&r.mu);
	r.closed = 1;
	pthread_cond_broadcast(&r.more);
	pthread_mutex_unlock(&r.mu);
	recorder_run(&r); /* this thread too, for what is left */
	for (size_t i = 0; i < k; i++)
		pthread_join(t[i], NULL);
	for (size_t q = 0; q < r.n; q++)
		if (r.jobs[q].done)
			recorded[r.jobs[q].at] = 1;
	pthread_cond_destroy(&r.more);
	pthread_mutex_destroy(&r.mu);
	free(r.jobs);
}

static int load_due(struct ps_fetch *f, const char *id, int force, time_t now,
		    struct ps_cert_memo *memo, struct due_poll *d)
{
	const char *s;
	int lock = -1;

	struct loaded_rec *l = loaded_get(f, id);

	memset(d, 0, sizeof(*d));
	if (ps_state_lock(f->st, id, 0, &lock, NULL))
		return 0;
	if (l && l->rec && ps_state_unchanged(f->st, id, &l->ident)) {
		d->rec = l->rec; /* taken: read only, and used once */
		l->rec = NULL;
		d->ident = l->ident;
	} else if (ps_state_load_ident(f->st, id, &d->rec, &d->ident, NULL)) {
		d->rec = NULL;
	}
	ps_state_unlock(lock);
	s = d->rec ? ps_json_str(d->rec, "state") : NULL;
	if (s && !strcmp(s, PS_REQ_PENDING) && selected(f, d->rec) &&
	    (force ||
	     ps_time_parse(ps_json_str(d->rec, "next_poll_at")) <= now) &&
	    (d->ca = ca_for(f, d->rec, NULL)) && ps_ca_polls_many(d->ca)) {
		struct ps_token *tok = token_for(f, d->rec, NULL);

		if (tok) {
			ps_request_ca_req_memo(d->rec, tok, &d->auth, memo,
					       &d->req);
			return 1;
		}
	}
	json_decref(d->rec);
	d->rec = NULL;
	return 0;
}

/* The polls of d[0..k-1], one batch per channel; what was not recorded
 * goes to f->polled for ps_fetch_request. */
static void poll_chunk(struct ps_fetch *f, struct due_poll *d, size_t k)
{
	for (size_t i = 0; f->polled && i < k; i++) {
		struct ps_ca *ca = d[i].ca;
		struct ps_ca_request *reqs;
		struct ps_ca_reply *replies;
		struct ps_err *errs;
		const char **rids;
		size_t *at, m = 0;
		char *recorded;
		int *rcs;

		if (!ca)
			continue; /* done with an earlier channel */
		reqs = calloc(k, sizeof(*reqs));
		replies = calloc(k, sizeof(*replies));
		errs = calloc(k, sizeof(*errs));
		rcs = calloc(k, sizeof(*rcs));
		at = calloc(k, sizeof(*at));
		rids = calloc(k, sizeof(*rids));
		recorded = calloc(k, 1);
		for (size_t j = i; reqs && replies && errs && rcs && at &&
				   rids && recorded && j < k;
		     j++)
			if (d[j].ca == ca) {
				reqs[m] = d[j].req;
				rids[m] = ps_json_str(d[j].rec, "request_id");
				at[m++] = j;
				d[j].ca = NULL;
			}
		if (m > 0) {
			poll_and_record(f, ca, reqs, rids, d, at, m, replies,
					rcs, errs, recorded);
			/* What was not recorded is for ps_fetch_request. */
			for (size_t j = 0; j < m; j++)
				if (recorded[j]) /* true: no object each */
					json_object_set_new(f->polled, rids[j],
							    json_true());
				else if (rcs[j] == 0)
					json_object_set_new(
					    f->polled, rids[j],
					    reply_json(&replies[j]));
		}
		for (size_t j = 0; replies && j < m; j++)
			ps_ca_reply_free(&replies[j]);
		free(reqs);
		free(replies);
		free(errs);
		free(rcs);
		free(at);
		free(rids);
		free(recorded);
	}
	for (size_t i = 0; i < k; i++) {
		ps_ca_auth_free(&d[i].auth);
		json_decref(d[i].rec);
	}
}

void ps_fetch_poll_due(struct ps_fetch *f, const json_t *ids, int force)
{
	size_t n = json_array_size(ids);
	struct due_poll *d;
	struct ps_cert_memo memo = { 0 };
	time_t now = time(NULL);

	/* What an earlier pass left unused (a request no longer due when
	 * ps_fetch_request came to it) is no answer for this one. */
	if (f->polled)
		json_object_clear(f->polled);
	if (f->dry_run || n < 2 ||
	    !(d = calloc(n < POLL_CHUNK ? n : POLL_CHUNK, sizeof(*d)))) {
		loaded_free(f);
		return;
	}
	if (!f->polled)
		f->polled = json_object();
	/* POLL_CHUNK requests at a time: what a chunk holds (records,
	 * requests, answers) is freed before the next is read. */
	for (size_t base = 0; f->polled && base < n; base += POLL_CHUNK) {
		size_t k = 0;

		for (size_t i = base; i < n && i < base + POLL_CHUNK; i++) {
			const char *id =
			    json_string_value(json_array_get(ids, i));

			if (id && load_due(f, id, force, now, &memo, &d[k]))
				k++;
		}
		poll_chunk(f, d, k);
	}
	ps_cert_memo_free(&memo);
	free(d);
	loaded_free(f); /* read once: a later pass reads the files again */
}

/* Asks the CA (submit again or poll) and records the answer. */
static int ask_ca(struct ps_fetch *f, json_t *rec, struct ps_err *err)
{
	struct ps_ca *ca = ca_for(f, rec, err);
	struct ps_ca_request req;
	struct ps_ca_reply reply;
	struct ps_ca_auth auth;
	struct ps_token *tok = NULL;
	int submitted = !strcmp(ps_json_str(rec, "state"), PS_REQ_PENDING);
	int rc, got, mismatch;

	if (!ca)
		return err->status;
	got = submitted ? polled_reply(f, rec, &reply) : 0;
	if (got == 2)
		return 0; /* answered and recorded by ps_fetch_poll_due */
	if (got) {
		rc = 0; /* answered by ps_fetch_poll_due a moment ago */
	} else {
		if (ps_ca_needs_token(ca, submitted) &&
		    !(tok = token_for(f, rec, err)))
			return err->status;
		ps_request_ca_req(rec, tok, &auth, &req);
		rc = submitted ? ps_ca_poll(ca, &req, &reply, err)
			       : ps_ca_submit(ca, &req, &reply, err);
		ps_ca_auth_free(&auth);
	}
	if (!rc)
		rc = ps_request_check_reply(ca, &reply, err);
	if (rc) {
		ps_ca_reply_free(&reply); /* the request stays as it was */
		return rc;
	}
	ps_request_apply(rec, &reply, time(NULL));
	mismatch = reply.rejected_cert != NULL;
	ps_ca_reply_free(&reply);
	if (!strcmp(ps_json_str(rec, "state"), PS_REQ_REJECTED))
		remove_key(f, rec);
	rc = ps_state_save(f->st, ps_json_str(rec, "request_id"), rec, err);
	if (!rc && mismatch) {
		const char *m = ps_json_str(rec, "message");

		rc = ps_err_set(
		    err, PS_EXIT_FAIL, "key-mismatch",
		    "the certificate is kept as rejected_cert in the request "
		    "(it may need revoking); the request stays pending with "
		    "its key, and is asked for again",
		    "the CA issued a certificate for another key than request "
		    "%s's: %.300s",
		    ps_json_str(rec, "request_id"), m ? m : "no reason given");
	}
	return rc;
}

/* A request installed earlier: the cert record its install printed
 * (already_installed); none (so its request record) when its token is
 * not present. */
static int installed_again(struct ps_fetch *f, const json_t *rec, json_t **out)
{
	X509 *leaf = pem_cert(ps_json_str(rec, "cert"));
	struct ps_token *tok = NULL;
	unsigned char kid[64];
	size_t klen;
	int no_module;

	if (leaf &&
	    !ps_unhex(ps_json_str(rec, "key_id"), kid, sizeof(kid), &klen))
		tok = present_token(f, rec, &no_module, NULL);
	if (tok)
		*out = installed_record(f, tok, rec, leaf, kid, klen);
	if (*out)
		json_object_set_new(*out, "already_installed", json_true());
	X509_free(leaf);
	return ps_request_exit(rec);
}

static int work(struct ps_fetch *f, json_t *rec, int force, json_t **out,
		time_t *due, struct ps_err *err)
{
	const char *s = ps_json_str(rec, "state");
	time_t now = time(NULL), next;
	int rc;

	*due = 0;
	if (!s)
		return ps_err_set(err, PS_EXIT_FAIL, "state-read", NULL,
				  "request without a state");
	if (!strcmp(s, PS_REQ_INSTALLED))
		return f->from_store ? ps_request_exit(rec)
				     : installed_again(f, rec, out);
	if (!strcmp(s, PS_REQ_REJECTED))
		return ps_request_exit(rec);
	if (!strcmp(s, PS_REQ_PENDING)) {
		next = ps_time_parse(ps_json_str(rec, "next_poll_at"));
		if (!force && next > now) {
			*due = next;
			return PS_EXIT_PENDING;
		}
	}
	if (f->dry_run) {
		*due = now;
		return strcmp(s, PS_REQ_ISSUED) ? PS_EXIT_PENDING : 0;
	}
	if (strcmp(s, PS_REQ_ISSUED) != 0) {
		rc = ask_ca(f, rec, err);
		if (rc)
			return rc;
		s = ps_json_str(rec, "state");
		if (strcmp(s, PS_REQ_ISSUED) != 0) {
			rc = ps_request_exit(rec);
			if (rc == PS_EXIT_PENDING || rc == PS_EXIT_TEMP) {
				next = ps_time_parse(
				    ps_json_str(rec, "next_poll_at"));
				*due = next > now ? next : now;
			}
			return rc;
		}
	}
	return install(f, rec, out, err);
}

int ps_fetch_request(struct ps_fetch *f, const char *id, int force,
		     json_t **out, time_t *due)
{
	struct ps_err err;
	json_t *rec = NULL;
	int lock = -1, rc;

	*out = NULL;
	*due = 0;
	ps_err_clear(&err);
	rc = ps_state_lock(f->st, id, 0, &lock, &err);
	if (!rc)
		rc = ps_state_load(f->st, id, &rec, &err);
	if (rec && !selected(f, rec)) {
		f->passed_on++; /* another token's: left as it is */
		rc = 0;
	} else if (!rc || rec) {
		int wrc = rec ? work(f, rec, force, out, due, &err) : rc;

		rc = wrc;
	}
	ps_state_unlock(lock);
	if (!*out && err.status) {
		json_t *e = ps_target_error(&err, rec, NULL, -1);
		const char *s = rec ? ps_json_str(rec, "state") : NULL;

		if (e)
			ps_json_set_str(e, "request_id", id);
		if (e && !strcmp(err.code, "state-damaged")) {
			char *path = ps_state_path(f->st, NULL, id);

			ps_json_set_str(e, "file", path);
			free(path);
		}
		/* Issued, but it could not be saved: never dropped. */
		if (e && !strcmp(err.code, "state-write") && s &&
		    !strcmp(s, PS_REQ_ISSUED) && ps_json_str(rec, "cert")) {
			ps_json_set_str(e, "certificate",
					ps_json_str(rec, "cert"));
			ps_json_set_str(
			    e, "hint",
			    "the CA issued it but it could not be saved: it is "
			    "in this record's \"certificate\" (and on stderr); "
			    "once the state directory can be written again, "
			    "install it with ps-fetch --cert FILE");
		}
		*out = e;
		if (err.status == PS_EXIT_PENDING && !*due)
			*due = time(NULL) + 1; /* busy: look again soon */
	} else if (!*out) {
		*out = json_incref(rec);
	}
	json_decref(rec);
	return rc;
}

/* What ps_fetch_unfinished gathers as ps_state_each walks the store. */
struct unfinished {
	struct ps_fetch *f;
	char **ids;
	unsigned char *cls; /* 1: unfinished, qualified; 2: other */
	size_t n, cap;
};

static int unfinished_one(void *v, const struct ps_state_file *sf)
{
	struct unfinished *u = v;
	struct ps_fetch_loaded *l = u->f->loaded;
	const char *s, *t;

	if (!sf->rec) {
		json_t *e = ps_state_damaged_record(sf);

		if (e)
			json_array_append_new(u->f->damaged, e);
		return 0;
	}
	if (!selected(u->f, sf->rec)) {
		u->f->left_alone++; /* another token's: not ours */
		return 0;
	}
	s = ps_json_str(sf->rec, "state");
	t = ps_json_str(sf->rec, "type");
	if (strcmp(s, PS_REQ_UNSUBMITTED) && strcmp(s, PS_REQ_PENDING) &&
	    strcmp(s, PS_REQ_ISSUED))
		return 0;
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 64;
		char **ids = realloc(u->ids, cap * sizeof(*ids));
		unsigned char *cls = ids ? realloc(u->cls, cap) : NULL;

		if (ids)
			u->ids = ids;
		if (!cls)
			return PS_EXIT_FAIL;
		u->cls = cls;
		u->cap = cap;
	}
	u->ids[u->n] = strdup(sf->name);
	if (!u->ids[u->n])
		return PS_EXIT_FAIL;
	u->cls[u->n++] = t && !strcmp(t, "qualified") ? 1 : 2;
	/* Kept for ps_fetch_poll_due, which takes it while the file is
	 * unchanged: the first chunk's worth (the others are read again as
	 * their chunk comes, rather than held all at once). */
	if (l && l->n < POLL_CHUNK && !strcmp(s, PS_REQ_PENDING) &&
	    json_object_set_new(l->index, sf->name,
				json_integer((json_int_t)l->n)) == 0) {
		struct loaded_rec *v2 =
		    realloc(l->v, (l->n + 1) * sizeof(*l->v));

		if (!v2) {
			json_object_del(l->index, sf->name);
			return 0;
		}
		l->v = v2;
		l->v[l->n].rec = json_incref(sf->rec);
		l->v[l->n++].ident = sf->ident;
	}
	return 0;
}

int ps_fetch_unfinished(struct ps_fetch *f, char ***ids, size_t *n,
			struct ps_err *err)
{
	struct unfinished u = { .f = f };
	char **out;
	size_t k = 0;
	int rc;

	*ids = NULL;
	*n = 0;
	f->left_alone = 0;
	f->from_store = 1;
	loaded_free(f);
	json_decref(f->damaged);
	f->damaged = json_array();
	if ((f->loaded = calloc(1, sizeof(*f->loaded)))) {
		f->loaded->index = json_object();
		if (!f->loaded->index)
			loaded_free(f); /* then without: not needed */
	}
	rc = ps_state_each(f->st, NULL, NULL, unfinished_one, &u, err);
	out = rc ? NULL : calloc(u.n ? u.n : 1, sizeof(*out));
	if (!rc && !out)
		rc = ps_err_nomem(err);
	/* The guide installs the qualified certificate first (error 621). */
	for (unsigned char c = 1; out && c <= 2; c++)
		for (size_t i = 0; i < u.n; i++)
			if (u.cls[i] == c)
				out[k++] = u.ids[i];
	if (!out)
		ps_state_list_free(u.ids, u.n);
	else
		free(u.ids);
	free(u.cls);
	if (rc) {
		if (rc == PS_EXIT_FAIL && err && !err->status)
			ps_err_nomem(err);
		return rc;
	}
	*ids = out;
	*n = k;
	return 0;
}

/* x first, then the other certificates of the input (its chain). */
static char *chain_pem(STACK_OF(X509) * certs, X509 *x)
{
	char *all = ps_cert_pem(x);

	for (int i = 0; all && i < sk_X509_num(certs); i++) {
		X509 *c = sk_X509_value(certs, i);
		char *p, *more;

		if (c == x || X509_check_ca(c) <= 0)
			continue;
		p = ps_cert_pem(c);
		more = p && asprintf(&more, "%s%s", all, p) >= 0 ? more : NULL;
		free(p);
		free(all);
		all = more;
	}
	return all;
}

/* The public key of a request's CSR is pk? */
static int csr_has_key(const json_t *rec, EVP_PKEY *pk)
{
	const char *pem = ps_json_str(rec, "csr");
	BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	X509_REQ *r = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
	int same = r && EVP_PKEY_eq(X509_REQ_get0_pubkey(r), pk) == 1;

	X509_REQ_free(r);
	BIO_free(b);
	return same;
}

/* The unfinished request waiting for this public key (its key_id the
 * SHA-1 of the key, or its CSR made with the key), or NULL. */
static json_t *request_for_key(struct ps_fetch *f, EVP_PKEY *pk)
{
	unsigned char id[20];
	char *hex;
	char **ids;
	size_t n;
	json_t *found = NULL;

	if (ps_pubkey_id(pk, id) || ps_fetch_unfinished(f, &ids, &n, NULL))
		return NULL;
	hex = ps_hex(id, sizeof(id));
	for (size_t i = 0; hex && i < n && !found; i++) {
		json_t *rec;

		if (ps_state_load(f->st, ids[i], &rec, NULL))
			continue;
		if ((ps_json_str(rec, "key_id") &&
		     !strcasecmp(ps_json_str(rec, "key_id"), hex)) ||
		    csr_has_key(rec, pk))
			found = rec;
		else
			json_decref(rec);
	}
	free(hex);
	ps_state_list_free(ids, n);
	return found;
}

/* No request: a key pair with this public key on a token of the module,
 * found by the public key itself, whatever its CKA_ID. */
static int install_on_any_token(struct ps_fetch *f, STACK_OF(X509) * certs,
				X509 *x, json_t **out, struct ps_err *err)
{
	struct ps_pool_module *m = module_for(f, f->module, err);
	struct ps_install_result res;

	if (!m)
		return err->status;
	for (size_t i = 0; i < m->n; i++) {
		struct ps_token *t = m->toks[i];
		struct ps_keypair kp;
		int rc;

		if (f->sel && !ps_token_selected(t, f->sel))
			continue; /* --token names another */
		if (ps_pool_login(f->toks, t, 1, err))
			return err->status;
		rc = ps_keypair_find_pubkey(t, X509_get0_pubkey(x), &kp, err);
		if (rc && !strcmp(err->code, "no-such-key")) {
			ps_err_clear(err);
			continue;
		}
		if (rc)
			return rc;
		rc = ps_install_cert(t, certs, kp.id, kp.id_len, NULL, &f->inst,
				     &res, err);
		if (!rc) {
			json_t *fake = json_object();

			ps_json_set_str(fake, "key_label", NULL);
			*out = installed_record(f, t, fake, res.leaf, kp.id,
						kp.id_len);
			json_decref(fake);
			if (*out && res.already)
				json_object_set_new(*out, "already_installed",
						    json_true());
			ps_install_result_free(&res);
		}
		ps_keypair_free(&kp);
		return rc;
	}
	return ps_err_set(err, PS_EXIT_FAIL, "no-such-key",
			  "a certificate can only go where its private key "
			  "is; check --module and --token",
			  "no pending request and no key on any token matches "
			  "this certificate's public key; nothing was written");
}

int ps_fetch_install_certs(struct ps_fetch *f, const unsigned char *buf,
			   size_t len, int (*emit)(void *, const json_t *),
			   void *ctx)
{
	STACK_OF(X509) * certs;
	struct ps_err err;
	int worst = 0, tried = 0;

	ps_err_clear(&err);
	if (ps_certs_parse(buf, len, &certs, &err)) {
		json_t *e = ps_record_error(&err);

		emit(ctx, e);
		json_decref(e);
		return err.status;
	}
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);
		json_t *rec, *out = NULL;
		int rc;

		if (X509_check_ca(x) > 0 && sk_X509_num(certs) > 1)
			continue; /* a CA certificate of the chain */
		tried++;
		ps_err_clear(&err);
		rec = request_for_key(f, X509_get0_pubkey(x));
		if (rec) {
			const char *id = ps_json_str(rec, "request_id");
			char *pem = chain_pem(certs, x);
			int lock;
			time_t due;

			/* Give the request its certificate (and the chain),
			 * then finish it like any issued request. */
			rc = ps_state_lock(f->st, id, 1, &lock, &err);
			if (!rc) {
				ps_request_set_state(rec, PS_REQ_ISSUED,
						     time(NULL));
				ps_json_set_str(rec, "cert", pem);
				rc = ps_state_save(f->st, id, rec, &err);
				ps_state_unlock(lock);
			}
			free(pem);
			if (!rc)
				rc = ps_fetch_request(f, id, 1, &out, &due);
			json_decref(rec);
		} else {
			rc = install_on_any_token(f, certs, x, &out, &err);
		}
		if (!out)
			out = ps_record_error(&err);
		emit(ctx, out);
		json_decref(out);
		worst = ps_exit_worse(worst, rc);
	}
	if (!tried) {
		ps_err_set(&err, PS_EXIT_FAIL, "bad-certificate", NULL,
			   "the input holds only CA certificates");
		json_t *e = ps_record_error(&err);
		emit(ctx, e);
		json_decref(e);
		worst = PS_EXIT_FAIL;
	}
	sk_X509_pop_free(certs, X509_free);
	return worst;
}

/* psrenew: the plans of a ps-token-clean run: its selections checked, every
 * token opened, logged in and planned. */
#include <psrenew/clean_plan.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ps_clean_batch_free(struct ps_clean_batch *b)
{
	struct ps_clean_opts *o = &b->o;

	for (size_t t = 0; b->plans && t < b->ntoks; t++)
		if (b->planned[t])
			ps_clean_plan_free(&b->plans[t]);
	free(b->plans);
	free(b->planned);
	for (size_t i = 0; i < o->nids; i++)
		free(o->ids[i]);
	for (size_t i = 0; i < o->nserials; i++)
		free(o->serials[i]);
	free(o->ids);
	free(o->serials);
	free(o->hits);
	json_decref(o->damaged);
	json_decref(b->jip);
	if (b->have_st)
		ps_state_close(&b->st);
}

/* --id, --serial and --jip-confirmed, checked and normalised. */
static int prepare(struct ps_clean_batch *b, const char *const *ids,
		   size_t nids, const char *const *serials, size_t nserials,
		   const char *const *jip, size_t njip, struct ps_err *err)
{
	struct ps_clean_opts *o = &b->o;

	o->ids = calloc(nids + 1, sizeof(*o->ids));
	o->serials = calloc(nserials + 1, sizeof(*o->serials));
	o->hits = calloc(nids + nserials + 1, 1);
	b->jip = json_object();
	if (!o->ids || !o->serials || !o->hits || !b->jip)
		return ps_err_nomem(err);
	for (size_t i = 0; i < nids; i++) {
		size_t len = strlen(ids[i]);

		if (len == 0 || len % 2 || len > 256 ||
		    strspn(ids[i], "0123456789abcdefABCDEF") != len)
			return ps_err_set(err, PS_EXIT_USAGE, "usage",
					  "see the ids with ps-status --json "
					  "or pkcs11-tool -O",
					  "--id wants a CKA_ID in hex, not "
					  "'%.40s'",
					  ids[i]);
		o->ids[o->nids] = strdup(ids[i]);
		if (!o->ids[o->nids++])
			return ps_err_nomem(err);
	}
	for (size_t i = 0; i < nserials; i++) {
		int rc = ps_serial_normalise(serials[i],
					     &o->serials[o->nserials], err);

		if (rc)
			return rc;
		o->nserials++;
	}
	for (size_t i = 0; i < njip; i++) {
		char *s;
		int rc = ps_serial_normalise(jip[i], &s, err);

		if (rc)
			return rc;
		json_object_set_new(b->jip, s, json_string("option"));
		free(s);
	}
	return 0;
}

int ps_clean_batch_prepare(struct ps_clean_batch *b, const char *const *ids,
			   size_t nids, const char *const *serials,
			   size_t nserials, const char *const *jip, size_t njip,
			   struct ps_err *err)
{
	int rc = prepare(b, ids, nids, serials, nserials, jip, njip, err);

	b->o.jip = b->jip;
	return rc;
}

__attribute__((format(printf, 3, 4))) static void
say(void (*fn)(void *, const char *), void *ctx, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fn(ctx, msg);
}

struct reading {
	struct ps_clean_batch *b;
	const struct ps_batch_hooks *h;
};

/* A jip record of the input confirms a serial; other records are not
 * used. */
static int take_jip(struct ps_in_loop *l, json_t *rec)
{
	struct reading *r = l->ctx;
	const char *kind = ps_json_str(rec, "kind");
	struct ps_err e;
	char *serial;

	ps_err_clear(&e);
	if (strcmp(kind, "jip") != 0) {
		say(r->h->info, r->h->ctx, "input: a '%s' record is not used",
		    kind);
	} else if (ps_jip_record_confirms(rec, &serial, &e) == 0) {
		json_object_set_new(r->b->jip, serial, json_string("stdin"));
		free(serial);
	} else {
		say(r->h->info, r->h->ctx, "input: %s", e.msg);
	}
	return 1;
}

int ps_clean_batch_read(struct ps_clean_batch *b, FILE *in,
			const struct ps_batch_hooks *h, struct ps_err *err)
{
	struct reading r = { b, h };
	struct ps_in_loop loop = { take_jip, &r, h->emit, h->ctx, 0 };
	int rc = ps_in_each(in, &loop, err);

	b->worst = ps_exit_worse(b->worst, loop.worst);
	return rc;
}

int ps_clean_batch_state(struct ps_clean_batch *b, const char *state_dir,
			 const struct ps_config *cfg, int create,
			 const struct ps_batch_hooks *h, struct ps_err *err)
{
	struct ps_err e;
	int rc;

	ps_err_clear(&e);
	rc = ps_state_open(state_dir, cfg, create ? 1 : PS_STATE_READ_ONLY,
			   &b->st, &e);
	if (!rc) {
		b->have_st = 1;
		b->o.st = &b->st;
		return 0;
	}
	if (create) {
		*err = e;
		return rc;
	}
	/* Missing: nothing pending, nothing confirmed. ("no-state-dir" once
	 * ps_state_open tells; until then its errno.) */
	if (errno != ENOENT && strcmp(e.code, "no-state-dir") != 0)
		say(h->warn, h->ctx,
		    "%s; pending requests and JIP confirmations are not known "
		    "in this dry run",
		    e.msg);
	return 0;
}

static void emit_error(struct ps_clean_batch *b, const struct ps_err *err,
		       const struct ps_token *tok, ps_emit_fn emit, void *ctx)
{
	json_t *r = ps_record_error(err);

	if (r && tok) {
		ps_json_set_str(r, "token", tok->uri);
		ps_json_set_str(r, "token_label", tok->label);
	}
	if (r)
		emit(ctx, r);
	json_decref(r);
	b->worst = ps_exit_worse(b->worst, err->status);
}

/* Opens, logs in and plans every token; nothing is changed yet. */
static int plan_all(struct ps_clean_batch *b, struct ps_token **toks,
		    const char *pin, int rw, ps_emit_fn emit, void *ctx)
{
	b->plans = calloc(b->ntoks, sizeof(*b->plans));
	b->planned = calloc(b->ntoks, sizeof(*b->planned));
	if (!b->o.damaged)
		b->o.damaged = json_array();
	if (!b->plans || !b->planned || !b->o.damaged)
		return PS_EXIT_FAIL;
	for (size_t t = 0; t < b->ntoks; t++) {
		struct ps_token *tok = toks[t];
		struct ps_err e;
		int rc;

		ps_err_clear(&e);
		rc = ps_token_open(tok, rw, &e);
		if (!rc && (ps_token_pin_source(tok, pin) ||
			    (tok->info.flags & CKF_LOGIN_REQUIRED)))
			rc = ps_token_login(tok, pin, &e);
		if (!rc) {
			json_array_clear(b->o.damaged);
			rc = ps_clean_plan_make(tok, &b->o, &b->plans[t], &e);
		}
		/* Every unreadable request file is named, not the first only.
		 */
		for (size_t k = 0; rc && k < json_array_size(b->o.damaged); k++)
			emit(ctx, json_array_get(b->o.damaged, k));
		if (rc)
			emit_error(b, &e, tok, emit, ctx);
		else
			b->planned[t] = 1;
	}
	return 0;
}

static int missed(struct ps_clean_batch *b, struct ps_err *err)
{
	const struct ps_clean_opts *o = &b->o;

	for (size_t i = 0; i < o->nids + o->nserials; i++) {
		int id = i < o->nids;

		if (o->hits[i])
			continue;
		return ps_err_set(err, PS_EXIT_USAGE, "no-such-object",
				  "see what is on the token with ps-status "
				  "--pin ... (or pkcs11-tool -O --login)",
				  "no %s on the selected token(s) has %s %s; "
				  "nothing was removed",
				  id ? "object" : "certificate",
				  id ? "CKA_ID" : "serial number",
				  id ? o->ids[i] : o->serials[i - o->nids]);
	}
	return 0;
}

int ps_clean_batch_plan(struct ps_clean_batch *b, struct ps_token **toks,
			size_t ntoks, const char *pin, int rw, ps_emit_fn emit,
			void *ctx, struct ps_err *err)
{
	int missing_ok = 0, rc;

	b->ntoks = ntoks;
	rc = plan_all(b, toks, pin, rw, emit, ctx);
	/* An id on a token that could not be read is not "missing". */
	for (size_t t = 0; !rc && t < ntoks; t++)
		if (!b->planned[t])
			missing_ok = 1;
	if (!rc && !missing_ok)
		rc = missed(b, err);
	return rc;
}

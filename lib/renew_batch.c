/* psrenew: a batch of renewals, grouped by module and token. */
#include <psrenew/renew_batch.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One module's tokens and their inventory. */
struct group {
	struct ps_pool_module *m;
	struct ps_inventory inv;
	int have_inv;
};

static void emit_error(struct ps_renew_batch *b, const struct ps_err *err,
		       const json_t *input)
{
	json_t *e = ps_target_error(err, input, NULL, -1);

	b->h.emit(b->h.ctx, e);
	json_decref(e);
}

static void group_free(struct ps_renew_batch *b, struct group *g)
{
	if (g->have_inv)
		ps_inventory_free(&g->inv);
	ps_ca_idle(b->r->ca);
	ps_pool_close(&b->pool, g->m);
	memset(g, 0, sizeof(*g));
}

/* module: the pool's, or the "module" of the input record rec (loaded
 * only when a person named it too: ps_module_allowed). ids (nids CKA_IDs
 * in hex; NULL: every certificate): what the inventory reads. */
static int group_open(struct ps_renew_batch *b, const char *module,
		      const json_t *rec, int need_one, const char *const *ids,
		      size_t nids, struct group *g, struct ps_err *err)
{
	const char *serial = rec ? ps_json_str(rec, "serial_hex") : NULL;
	const char *label = rec ? ps_json_str(rec, "token_label") : NULL;
	char what[200];
	int rc;

	memset(g, 0, sizeof(*g));
	snprintf(what, sizeof(what),
		 "the input record of certificate %s on token '%s'",
		 serial ? serial : "?", label ? label : "?");
	g->m = ps_pool_module(&b->pool, module, what, "an input record", err);
	if (!g->m)
		return err->status;
	if (b->h.info) {
		char line[300];

		snprintf(line, sizeof(line), "module: %s",
			 ps_module_describe(g->m->mod));
		b->h.info(b->h.ctx, line);
	}
	rc = need_one ? ps_tokens_require_one(g->m->toks, g->m->n, err) : 0;
	/* A real run writes: its session is read-write from the start, not
	 * opened again for the login. */
	for (size_t t = 0; !rc && !b->r->dry_run && t < g->m->n; t++)
		if (!g->m->toks[t]->have_session)
			g->m->toks[t]->rw = 1;
	if (!rc)
		rc = ps_inventory_load_ids(g->m->toks, g->m->n, time(NULL), ids,
					   nids, &g->inv, err);
	g->have_inv = !rc;
	return rc;
}

/* The whole token failed: one record per target. */
static void token_failed(struct ps_renew_batch *b, struct group *g,
			 const struct ps_err *err, const size_t *sub,
			 json_t **subin, size_t k)
{
	for (size_t j = 0; j < k; j++) {
		json_t *e =
		    ps_target_error(err, subin[j], &g->inv, (long)sub[j]);

		b->h.emit(b->h.ctx, e);
		json_decref(e);
	}
	if (k == 0)
		emit_error(b, err, NULL);
}

/* Renews one token's targets among idx[0..n) (inputs parallel, may be
 * NULL), after one login. */
static int renew_token(struct ps_renew_batch *b, struct group *g,
		       struct ps_token *tok, const size_t *idx, json_t **inputs,
		       size_t n)
{
	size_t *sub = malloc((n ? n : 1) * sizeof(*sub));
	json_t **subin = calloc(n ? n : 1, sizeof(*subin));
	size_t k = 0;
	struct ps_err err;
	int rc = 0;

	ps_err_clear(&err);
	for (size_t j = 0; sub && subin && j < n; j++)
		if (g->inv.c[idx[j]].tok == tok) {
			subin[k] = inputs ? inputs[j] : NULL;
			sub[k++] = idx[j];
		}
	if (!sub || !subin)
		rc = ps_err_nomem(&err);
	if (!rc && k > 0 && b->h.item) {
		char what[160];

		snprintf(what, sizeof(what), "token %s", tok->label);
		b->h.item(b->h.ctx, what);
	}
	if (!rc && k > 0 && !b->r->dry_run)
		rc = ps_pool_login(&b->pool, tok, 1, &err);
	if (rc)
		token_failed(b, g, &err, sub, subin, k);
	else if (k > 0) {
		b->r->hooks = &b->h;
		rc = ps_renew_token(b->r, tok, &g->inv, sub, subin, k,
				    b->h.emit, b->h.ctx);
		b->r->hooks = NULL;
	}
	free(sub);
	free(subin);
	return rc;
}

/* Renews inv targets idx[0..n), token by token. */
static int renew_targets(struct ps_renew_batch *b, struct group *g,
			 const size_t *idx, json_t **inputs, size_t n)
{
	int worst = 0;

	for (size_t t = 0; t < g->m->n; t++)
		worst = ps_exit_worse(
		    worst, renew_token(b, g, g->m->toks[t], idx, inputs, n));
	return worst;
}

static void start(struct ps_renew_batch *b, size_t n)
{
	if (b->h.start)
		b->h.start(b->h.ctx, n);
}

/* The one certificate sel names (among several matches, the valid
 * one). */
static int select_one(struct group *g, const struct ps_selector *sel,
		      size_t **idx, size_t *n, struct ps_err *err)
{
	size_t k = 0;
	int rc = ps_inventory_select(&g->inv, sel, idx, n, err);

	for (size_t i = 0; !rc && i < *n; i++)
		if (!strcmp(ps_inventory_state(&g->inv, (*idx)[i]), "valid"))
			(*idx)[k++] = (*idx)[i];
	if (!rc && k > 0)
		*n = k;
	if (!rc && *n == 0)
		rc = ps_err_set(err, PS_EXIT_USAGE, "no-such-cert",
				"see ps-status for what is on the token",
				"no certificate on token '%s' matches",
				g->m->toks[0]->label);
	if (!rc && *n > 1)
		rc = ps_err_set(err, PS_EXIT_USAGE, "ambiguous",
				"choose one with --id or --serial "
				"(see ps-status)",
				"%zu certificates match; for example %s "
				"and %s",
				*n, g->inv.c[(*idx)[0]].cert.serial_hex,
				g->inv.c[(*idx)[1]].cert.serial_hex);
	return rc;
}

int ps_renew_batch_select(struct ps_renew_batch *b,
			  const struct ps_selector *sel, long all_expiring,
			  size_t *n, struct ps_err *err)
{
	struct group g;
	size_t *idx = NULL;
	const char *ids[1] = { sel->id_hex };
	int by_id = all_expiring < 0 && sel->id_hex;
	int rc = group_open(b, b->pool.module, NULL, all_expiring < 0,
			    by_id ? ids : NULL, 1, &g, err);

	*n = 0;
	if (!rc && all_expiring >= 0) {
		idx = malloc((g.inv.n ? g.inv.n : 1) * sizeof(*idx));
		for (size_t i = 0; idx && i < g.inv.n; i++)
			if (ps_inventory_expiring(&g.inv, i, all_expiring))
				idx[(*n)++] = i;
		if (!idx)
			rc = ps_err_nomem(err);
	} else if (!rc) {
		rc = select_one(&g, sel, &idx, n, err);
	}
	if (!rc && *n > 0) {
		start(b, *n);
		rc = renew_targets(b, &g, idx, NULL, *n);
	}
	free(idx);
	group_free(b, &g);
	return rc;
}

/* Is the record's token one of the group's, or is no token selected? */
static int selected(const struct ps_renew_batch *b, const struct group *g,
		    const json_t *rec)
{
	if (!b->pool.sel || !ps_uri_has_token_attrs(b->pool.sel))
		return 1;
	return ps_pool_find(g->m, ps_json_str(rec, "token")) != NULL;
}

/* Takes out of all every record of module mod, in input order. */
static json_t *take_module(const struct ps_renew_batch *b, json_t *all,
			   const char *mod)
{
	json_t *batch = json_array();

	for (size_t i = 0; batch && i < json_array_size(all);) {
		json_t *x = json_array_get(all, i);
		const char *m = ps_json_str(x, "module");

		if (b->pool.module || (m && mod && !strcmp(m, mod)) ||
		    (!m && !mod)) {
			json_array_append(batch, x);
			json_array_remove(all, i);
		} else {
			i++;
		}
	}
	return batch;
}

/* The record's certificate is not on its token (any more). */
static int not_there(struct ps_renew_batch *b, const json_t *x)
{
	const char *serial = ps_json_str(x, "serial_hex");
	const char *label = ps_json_str(x, "token_label");
	struct ps_err e;

	if (!label)
		label = ps_json_str(x, "token");
	ps_err_set(&e, PS_EXIT_FAIL, "no-such-cert",
		   "run ps-status again: the token changed",
		   "certificate %s is not on token %s", serial ? serial : "?",
		   label ? label : "?");
	emit_error(b, &e, x);
	return PS_EXIT_FAIL;
}

/* Renews the records of batch, all of one module (group g open). */
static int renew_group(struct ps_renew_batch *b, struct group *g, json_t *batch)
{
	size_t n = 0, size = json_array_size(batch);
	size_t *idx = malloc((size + 1) * sizeof(*idx));
	json_t **inputs = calloc(size + 1, sizeof(*inputs));
	int worst = 0;

	for (size_t i = 0; idx && inputs && i < size; i++) {
		json_t *x = json_array_get(batch, i);
		long at = ps_inventory_find_record(&g->inv, x);

		if (at < 0 && !selected(b, g, x)) {
			b->h.emit(b->h.ctx, x); /* another token's */
			b->passed_on++;
		} else if (at < 0) {
			worst = ps_exit_worse(worst, not_there(b, x));
		} else {
			inputs[n] = x;
			idx[n++] = (size_t)at;
		}
	}
	if (idx && inputs)
		worst =
		    ps_exit_worse(worst, renew_targets(b, g, idx, inputs, n));
	free(idx);
	free(inputs);
	return worst;
}

/* The CKA_IDs the records name (pointing into them), or NULL when one
 * names none (then the inventory reads every certificate). */
static const char **record_ids(const json_t *batch)
{
	size_t n = json_array_size(batch);
	const char **ids = calloc(n ? n : 1, sizeof(*ids));

	for (size_t i = 0; ids && i < n; i++) {
		ids[i] = ps_json_str(json_array_get(batch, i), "id");
		if (!ids[i] || !*ids[i]) {
			free(ids);
			return NULL;
		}
	}
	return ids;
}

int ps_renew_batch_records(struct ps_renew_batch *b, json_t *recs)
{
	json_t *all = json_copy(recs);
	int worst = 0;

	start(b, json_array_size(recs));
	while (all && json_array_size(all) > 0) {
		json_t *first = json_incref(json_array_get(all, 0));
		const char *mod = b->pool.module ? b->pool.module
						 : ps_json_str(first, "module");
		json_t *batch = take_module(b, all, mod);
		struct ps_err err;
		struct group g;
		int rc = batch ? 0 : PS_EXIT_FAIL;

		const char **ids = batch ? record_ids(batch) : NULL;

		ps_err_clear(&err);
		memset(&g, 0, sizeof(g));
		if (!rc)
			rc = group_open(b, mod, first, 0, ids,
					json_array_size(batch), &g, &err);
		free(ids);
		for (size_t i = 0; rc && batch && i < json_array_size(batch);
		     i++)
			emit_error(b, &err, json_array_get(batch, i));
		if (!rc)
			rc = renew_group(b, &g, batch);
		worst = ps_exit_worse(worst, rc);
		json_decref(batch);
		json_decref(first);
		group_free(b, &g);
	}
	json_decref(all);
	return worst;
}

/* A record of stdin: a cert record is kept for renewal; any other kind is
 * an error record of its own. */
int ps_renew_take_cert(struct ps_in_loop *l, json_t *rec)
{
	const char *kind = ps_json_str(rec, "kind");
	int tok = ps_json_str(rec, "token") != NULL;
	int ser = ps_json_str(rec, "serial_hex") != NULL;
	struct ps_err e;
	json_t *er;

	if (!strcmp(kind, "cert") && tok && ser)
		return json_array_append(l->ctx, rec) == 0;
	if (!strcmp(kind, "cert")) /* say which field, never "?" */
		ps_err_set(&e, PS_EXIT_FAIL, "bad-record",
			   "a cert record of ps-status --json carries both",
			   "the cert record has no %s%s%s: it does not say "
			   "which certificate to renew",
			   tok ? "" : "\"token\" (the token's URI)",
			   tok || ser ? "" : " and no ",
			   ser ? "" : "\"serial_hex\"");
	else
		ps_err_set(&e, PS_EXIT_FAIL, "bad-record",
			   "ps-renew reads cert records (ps-status --json)",
			   "a '%s' record cannot be renewed", kind);
	er = ps_target_error(&e, rec, NULL, -1);
	l->emit(l->emit_ctx, er);
	json_decref(er);
	l->worst = ps_exit_worse(l->worst, PS_EXIT_FAIL);
	return 1;
}

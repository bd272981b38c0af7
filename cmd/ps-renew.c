/* ps-renew: request following certificates (the guide's §2, "Obnovit"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <psrenew/cli.h>
#include <psrenew/inventory.h>
#include <psrenew/progress.h>
#include <psrenew/renew.h>

enum {
	OPT_CA = 256,
	OPT_ID,
	OPT_SERIAL,
	OPT_TYPE,
	OPT_ALL_EXPIRING,
	OPT_KEY_TYPE,
	OPT_KEY,
	OPT_DRY_RUN,
	OPT_FORCE,
	OPT_CA_BUNDLE,
	OPT_CA_TYPE,
	OPT_CACERTS,
};

static const struct ps_cli_opt opts[] = {
	{ "ca", 1, OPT_CA, "CHANNEL",
	  "the CA: helper:PATH [ARGS], cmp://HOST[:PORT]/PATH, "
	  "est://HOST[:PORT][/LABEL], https://... (with --ca-type), "
	  "mail:smtp://HOST[:PORT], mail:-, or a [ca.NAME] of the "
	  "configuration" },
	{ "ca-type", 1, OPT_CA_TYPE, "cmp|est",
	  "the protocol of an https:// --ca" },
	{ "cacerts", 1, OPT_CACERTS, "FILE",
	  "EST: first fetch the CA certificates (/cacerts), check them, "
	  "write them to FILE" },
	{ "id", 1, OPT_ID, "HEX", "renew the certificate with this CKA_ID" },
	{ "serial", 1, OPT_SERIAL, "SERIAL",
	  "renew the certificate with this serial number" },
	{ "type", 1, OPT_TYPE, "TYPE", "qualified or commercial" },
	{ "all-expiring", 1, OPT_ALL_EXPIRING, "DAYS",
	  "renew every certificate expiring within DAYS on every token" },
	{ "key-type", 1, OPT_KEY_TYPE, "TYPE",
	  "rsa:2048|3072|4096, ec:prime256v1, ec:secp384r1 (default: as now)" },
	{ "key", 1, OPT_KEY, "ID", "use this existing key pair (CKA_ID, hex)" },
	{ "dry-run", 0, OPT_DRY_RUN, NULL,
	  "show what would be done; touch neither the token nor the CA" },
	{ "ca-bundle", 1, OPT_CA_BUNDLE, "FILE",
	  "CAs trusted (besides the system's) for the CA's TLS" },
	{ "force", 0, OPT_FORCE, NULL,
	  "renew even when a request is pending or a successor exists" },
	{ NULL, 0, 0, NULL, NULL },
};

struct args {
	const char *ca, *id, *serial, *key_type, *key, *ca_bundle, *ca_type;
	const char *cacerts;
	int type;
	long all_expiring;
	int dry_run, force;
};

static int on_opt(void *ctx, int key, const char *arg, struct ps_err *err)
{
	struct args *a = ctx;

	switch (key) {
	case OPT_CA: a->ca = arg; return 0;
	case OPT_ID: a->id = arg; return 0;
	case OPT_SERIAL: a->serial = arg; return 0;
	case OPT_KEY_TYPE: a->key_type = arg; return 0;
	case OPT_KEY: a->key = arg; return 0;
	case OPT_DRY_RUN: a->dry_run = 1; return 0;
	case OPT_FORCE: a->force = 1; return 0;
	case OPT_CA_BUNDLE: a->ca_bundle = arg; return 0;
	case OPT_CA_TYPE: a->ca_type = arg; return 0;
	case OPT_CACERTS: a->cacerts = arg; return 0;
	case OPT_ALL_EXPIRING:
		return ps_cli_number("all-expiring", arg, 36500,
				     &a->all_expiring, err);
	case OPT_TYPE:
		a->type = ps_cert_type_parse(arg);
		if (a->type < 0)
			return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
					  "--type is qualified or commercial");
		return 0;
	}
	return PS_EXIT_USAGE;
}

/* The batch's progress on a terminal: one item per target's record. */
static struct ps_progress progress = { .kinds = "request,error" };

/* Everything one module's tokens need: tokens, logins, inventory. */
struct group {
	struct ps_module *mod;
	struct ps_token **toks;
	size_t ntoks;
	struct ps_inventory inv;
	int have_inv;
};

static void group_free(struct group *g)
{
	if (g->have_inv)
		ps_inventory_free(&g->inv);
	ps_tokens_free(g->toks, g->ntoks);
	ps_module_close(g->mod);
	memset(g, 0, sizeof(*g));
}

/* module: cli->module, or the "module" of the input record rec (loaded
 * only when a person named it too: ps_module_allowed). */
static int group_open(struct ps_cli *cli, const char *module, const json_t *rec,
		      int need_one, struct group *g, struct ps_err *err)
{
	const char *saved = cli->module, *saved_from = cli->module_from;
	char what[200];
	int rc;

	memset(g, 0, sizeof(*g));
	if (rec && module && module != cli->module) {
		snprintf(what, sizeof(what),
			 "the input record of certificate %s on token '%s'",
			 ps_json_str(rec, "serial_hex")
			     ? ps_json_str(rec, "serial_hex")
			     : "?",
			 ps_json_str(rec, "token_label")
			     ? ps_json_str(rec, "token_label")
			     : "?");
		rc = ps_module_allowed(module, cli->module, what, err);
		if (rc)
			return rc;
		cli->module_from = "an input record";
	}
	cli->module = module;
	rc = ps_cli_tokens(cli, &g->mod, &g->toks, &g->ntoks, err);
	cli->module = saved;
	cli->module_from = saved_from;
	if (!rc && need_one)
		rc = ps_tokens_require_one(g->toks, g->ntoks, err);
	if (!rc)
		rc = ps_inventory_load(g->toks, g->ntoks, time(NULL), &g->inv,
				       err);
	g->have_inv = !rc;
	return rc;
}

/* Renews inv targets idx[0..n) (inputs parallel, may be NULL), token by
 * token, one login each. */
static int renew_targets(struct ps_cli *cli, struct ps_renew *r,
			 struct group *g, size_t *idx, json_t **inputs,
			 size_t n)
{
	int worst = 0;

	for (size_t t = 0; t < g->ntoks; t++) {
		struct ps_token *tok = g->toks[t];
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
			rc = ps_err_set(&err, PS_EXIT_FAIL, "no-memory", NULL,
					"out of memory");
		if (!rc && k > 0)
			ps_progress_item(&progress, "token %s", tok->label);
		if (!rc && k > 0 && !r->dry_run) {
			rc = ps_token_open(tok, 1, &err);
			if (!rc)
				rc = ps_token_login(tok, cli->pin, &err);
		}
		if (rc) {
			/* The whole token failed: one record per target. */
			for (size_t j = 0; j < k; j++) {
				json_t *e = ps_target_error(
				    &err, subin[j], &g->inv, (long)sub[j]);
				ps_progress_emit(&progress, e);
				json_decref(e);
			}
			if (k == 0)
				ps_cli_report(cli, &err);
			worst = ps_exit_worse(worst, rc);
		} else if (k > 0) {
			worst = ps_exit_worse(
			    worst,
			    ps_renew_token(r, tok, &g->inv, sub, subin, k,
					   ps_progress_emit, &progress));
		}
		free(sub);
		free(subin);
	}
	return worst;
}

/* --all-expiring, or --token with --id/--serial/--type. */
static int from_options(struct ps_cli *cli, struct ps_renew *r,
			const struct args *a, struct ps_err *err)
{
	struct ps_selector sel = { a->id, a->serial, a->type };
	struct group g;
	size_t *idx = NULL, n = 0, k = 0;
	int rc =
	    group_open(cli, cli->module, NULL, a->all_expiring < 0, &g, err);

	if (!rc && a->all_expiring >= 0) {
		idx = malloc((g.inv.n ? g.inv.n : 1) * sizeof(*idx));
		for (size_t i = 0; idx && i < g.inv.n; i++)
			if (ps_inventory_expiring(&g.inv, i, a->all_expiring))
				idx[n++] = i;
		if (!idx)
			rc = ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
					"out of memory");
		else if (n == 0)
			ps_cli_warn(cli, "nothing expires within %ld days",
				    a->all_expiring);
	} else if (!rc) {
		rc = ps_inventory_select(&g.inv, &sel, &idx, &n, err);
		/* Among several matches, the current ones count. */
		for (size_t i = 0; !rc && i < n; i++)
			if (!strcmp(ps_inventory_state(&g.inv, idx[i]),
				    "valid"))
				idx[k++] = idx[i];
		if (!rc && k > 0)
			n = k;
		if (!rc && n == 0)
			rc =
			    ps_err_set(err, PS_EXIT_USAGE, "no-such-cert",
				       "see ps-status for what is on the token",
				       "no certificate on token '%s' matches",
				       g.toks[0]->label);
		if (!rc && n > 1)
			rc =
			    ps_err_set(err, PS_EXIT_USAGE, "ambiguous",
				       "choose one with --id or --serial "
				       "(see ps-status)",
				       "%zu certificates match; for example %s "
				       "and %s",
				       n, g.inv.c[idx[0]].cert.serial_hex,
				       g.inv.c[idx[1]].cert.serial_hex);
	}
	if (!rc && n > 0) {
		ps_progress_start(&progress, cli, n);
		rc = renew_targets(cli, r, &g, idx, NULL, n);
	}
	free(idx);
	ps_ca_idle(r->ca);
	group_free(&g);
	return rc;
}

/* Is the record's token one of the group's, or is no token selected? */
static int selected(const struct ps_cli *cli, const struct group *g,
		    const json_t *rec)
{
	const char *uri = ps_json_str(rec, "token");

	if (!cli->token || !ps_uri_has_token_attrs(&cli->token_uri))
		return 1;
	for (size_t t = 0; uri && t < g->ntoks; t++)
		if (!strcmp(g->toks[t]->uri, uri))
			return 1;
	return 0;
}

/* cert records on stdin, grouped by module. */
static int from_stdin(struct ps_cli *cli, struct ps_renew *r,
		      struct ps_err *err)
{
	struct ps_in *in = ps_in_new(stdin);
	json_t *all = json_array(), *rec;
	size_t passed_on = 0;
	int worst = 0;

	if (!in || !all) {
		ps_in_free(in);
		json_decref(all);
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "out of memory");
	}
	while ((rec = ps_in_next(in, err)))
		json_array_append_new(all, rec);
	ps_in_free(in);
	if (err->status) {
		json_decref(all);
		return err->status;
	}
	ps_progress_start(&progress, cli, json_array_size(all));
	while (json_array_size(all) > 0) {
		const char *mod = cli->module;
		size_t n = 0, *idx, i;
		json_t **inputs;
		struct group g;
		json_t *first = json_array_get(all, 0);
		const char *kind = ps_json_str(first, "kind");
		int rc;

		if (strcmp(kind, "cert") != 0) {
			if (strcmp(kind, "error") == 0) {
				ps_cli_emit(cli, first); /* pass it on */
				worst = ps_exit_worse(
				    worst,
				    (int)json_integer_value(
					json_object_get(first, "status")));
			} else {
				struct ps_err e;

				ps_err_set(&e, PS_EXIT_FAIL, "bad-record",
					   "ps-renew reads cert records "
					   "(ps-status --json)",
					   "a '%s' record cannot be renewed",
					   kind);
				json_t *er =
				    ps_target_error(&e, first, NULL, -1);
				ps_cli_emit(cli, er);
				json_decref(er);
				worst = ps_exit_worse(worst, PS_EXIT_FAIL);
			}
			json_array_remove(all, 0);
			continue;
		}
		if (!mod)
			mod = ps_json_str(first, "module");
		/* Every cert record of this module, in input order. */
		json_t *batch = json_array();
		for (i = 0; i < json_array_size(all);) {
			json_t *x = json_array_get(all, i);
			const char *m = ps_json_str(x, "module");

			if (!strcmp(ps_json_str(x, "kind"), "cert") &&
			    (cli->module || (m && mod && !strcmp(m, mod)) ||
			     (!m && !mod))) {
				json_array_append(batch, x);
				json_array_remove(all, i);
			} else {
				i++;
			}
		}
		rc = group_open(cli, mod, first, 0, &g, err);
		if (rc) {
			for (i = 0; i < json_array_size(batch); i++) {
				json_t *e = ps_target_error(
				    err, json_array_get(batch, i), NULL, -1);
				ps_cli_emit(cli, e);
				json_decref(e);
			}
			worst = ps_exit_worse(worst, rc);
			json_decref(batch);
			ps_ca_idle(r->ca);
			group_free(&g);
			continue;
		}
		idx = malloc((json_array_size(batch) + 1) * sizeof(*idx));
		inputs = calloc(json_array_size(batch) + 1, sizeof(*inputs));
		for (i = 0; idx && inputs && i < json_array_size(batch); i++) {
			json_t *x = json_array_get(batch, i);
			long at = ps_inventory_find_record(&g.inv, x);

			if (at < 0 && !selected(cli, &g, x)) {
				ps_cli_emit(cli, x); /* another token's */
				passed_on++;
				continue;
			}
			if (at < 0) {
				struct ps_err e;
				json_t *er;

				ps_err_set(&e, PS_EXIT_FAIL, "no-such-cert",
					   "run ps-status again: the token "
					   "changed",
					   "certificate %s is not on token %s",
					   ps_json_str(x, "serial_hex")
					       ? ps_json_str(x, "serial_hex")
					       : "?",
					   ps_json_str(x, "token_label")
					       ? ps_json_str(x, "token_label")
					       : "?");
				er = ps_target_error(&e, x, NULL, -1);
				ps_cli_emit(cli, er);
				json_decref(er);
				worst = ps_exit_worse(worst, PS_EXIT_FAIL);
				continue;
			}
			inputs[n] = x;
			idx[n++] = (size_t)at;
		}
		if (idx && inputs)
			worst = ps_exit_worse(
			    worst, renew_targets(cli, r, &g, idx, inputs, n));
		free(idx);
		free(inputs);
		json_decref(batch);
		ps_ca_idle(r->ca);
		group_free(&g);
	}
	json_decref(all);
	if (passed_on)
		ps_cli_warn(cli,
			    "%zu certificate(s) of other tokens passed on as "
			    "they are, not renewed (--token selects '%s')",
			    passed_on, cli->token);
	ps_err_clear(err);
	return worst;
}

/* --cacerts FILE: fetched, checked, written whole or not at all, through
 * the state store's safe writer (never through a symlink or a file someone
 * planted beside FILE). */
static int write_cacerts(struct ps_cli *cli, struct ps_ca *ca, const char *file,
			 struct ps_err *err)
{
	char *pem = NULL;
	int rc = ps_ca_cacerts(ca, &pem, err);

	if (!rc)
		rc = ps_state_write_file(file, pem, strlen(pem), 0644, err);
	if (!rc)
		ps_cli_info(cli,
			    "the CA certificates of %s, checked, are in %s",
			    ps_ca_channel(ca), file);
	free(pem);
	return rc;
}

static int run(struct ps_cli *cli, const struct args *a, struct ps_err *err)
{
	struct ps_renew r = { .key_type = a->key_type,
			      .dry_run = a->dry_run,
			      .force = a->force,
			      .cfg = &cli->cfg };
	struct ps_state st = {
		.dir = NULL, .dirfd = -1, .reqfd = -1, .lockfd = -1
	};
	unsigned char keyid[64];
	char *ca_spec = NULL;
	int by_opts =
	    a->all_expiring >= 0 || a->id || a->serial || a->type >= 0;
	int rc = 0, damaged = 0;

	if (!by_opts && isatty(0) && !a->cacerts)
		return ps_err_set(err, PS_EXIT_USAGE, "usage",
				  "for example: ps-status --expiring 30 | "
				  "ps-renew --ca NAME",
				  "say which certificate to renew: --token URI "
				  "with --id, --serial or --type, "
				  "--all-expiring DAYS, or cert records on "
				  "stdin");
	if (a->key) {
		if (ps_unhex(a->key, keyid, sizeof(keyid), &r.key_id_len))
			return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
					  "--key wants a CKA_ID in hex");
		r.key_id = keyid;
	}
	if (!a->ca && !a->dry_run)
		rc = ps_err_set(err, PS_EXIT_USAGE, "no-ca",
				"for example --ca \"helper:/usr/lib/certmonger/"
				"local-submit -d DIR\", or --ca NAME from "
				"psrenew.conf",
				"no CA channel: give --ca");
	if (!rc && a->ca)
		rc = ps_ca_spec_typed(a->ca, a->ca_type, &ca_spec, err);
	if (!rc && ca_spec)
		rc = ps_ca_open(ca_spec, &cli->cfg, &r.ca, err);
	free(ca_spec);
	if (!rc && r.ca)
		ps_ca_set_bundle(r.ca, a->ca_bundle);
	if (!rc && r.ca && a->cacerts) {
		rc = write_cacerts(cli, r.ca, a->cacerts, err);
		if (!rc && !by_opts && isatty(0)) {
			/* Only the CA certificates were asked for. */
			ps_ca_close(r.ca);
			return 0;
		}
	}
	if (!rc && r.ca && ps_ca_uses_stdout(r.ca)) {
		/* mail:- : stdout carries the message, not records. */
		cli->out_mode = PS_OUT_NONE;
		ps_cli_warn(cli, "mail:- writes the message on stdout; the "
				 "requests are in the state store (ps-fetch "
				 "--pending --dry-run lists them)");
	}
	if (!rc && !a->dry_run)
		rc = ps_state_open(cli->state_dir, &cli->cfg, 1, &st, err);
	if (!rc) {
		r.st = a->dry_run ? NULL : &st;
		rc = ps_renew_load_active(&r, err);
	}
	/* Every unreadable file of the store, reported (exit 1 at the end);
	 * the certificates they might be for are refused one by one. */
	for (size_t k = 0; !rc && k < json_array_size(r.damaged); k++) {
		ps_cli_emit(cli, json_array_get(r.damaged, k));
		damaged = PS_EXIT_FAIL;
	}
	if (!rc)
		rc = by_opts ? from_options(cli, &r, a, err)
			     : from_stdin(cli, &r, err);
	if (!err->status)
		rc = ps_exit_worse(rc, damaged);
	ps_progress_end(&progress);
	if (r.recovered > 0)
		ps_cli_warn(cli,
			    "removed %ld key object(s) that an interrupted "
			    "run had generated but never recorded",
			    r.recovered);
	ps_renew_free(&r);
	ps_ca_close(r.ca);
	if (st.dirfd >= 0)
		ps_state_close(&st);
	return rc;
}

static int start(struct ps_cli *cli, void *args, char **operands, int n,
		 struct ps_err *err)
{
	(void)operands;
	(void)n;
	return run(cli, args, err);
}

int main(int argc, char **argv)
{
	struct ps_cli cli = {
		.prog = "ps-renew",
		.synopsis =
		    "--ca CHANNEL [--token URI (--id HEX | --serial S | "
		    "--type T) | --all-expiring DAYS] [OPTION]...",
		.summary =
		    "Request following certificates: a new key pair on "
		    "the token, a CSR with\nthe current subject, sent to "
		    "the CA; qualified before commercial.",
	};
	struct args a = { .type = -1, .all_expiring = -1 };
	int rc = ps_cli_main(&cli, argc, argv, opts, on_opt, &a, 0, start);

	/* A signal stopped a CA helper: 128 + its number, as a shell says. */
	return ps_ca_interrupted() ? 128 + ps_ca_interrupted() : rc;
}

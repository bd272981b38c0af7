/* ps-status: every certificate on every selected token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <psrenew/inventory.h>
#include <psrenew/jipconf.h>
#include <psrenew/metrics.h>
#include <psrenew/modsearch.h>

#include "common/cli.h"

struct args {
	const char *expiring_arg;
	struct ps_expiring expiring; /* max -1: all */
	int unregistered, modules;
	int metrics;		  /* --metrics: on stdout */
	const char *metrics_file; /* --metrics-file */
};

/* Logs in where a PIN source was given; notes where a login shows more.
 * A token the PIN source is not known to belong to is listed without. */
static int login_all(struct ps_cli *cli, struct ps_token **toks, size_t n,
		     struct ps_err *err)
{
	struct ps_err last; /* the latest failure, reported at the end */
	int worst = 0;

	ps_err_clear(&last);
	for (size_t i = 0; i < n; i++) {
		if (ps_token_pin_source(toks[i], cli->pin)) {
			int rc = ps_token_login(toks[i], cli->pin, err);

			if (rc && !strcmp(err->code, "pin-not-for-token")) {
				ps_cli_warn(
				    cli,
				    "not logged in to token '%s': the "
				    "PIN source is not known to belong "
				    "to it, so its private keys are not "
				    "shown; name it with --token '%s'",
				    toks[i]->label, toks[i]->uri);
			} else if (rc) {
				/* Each token has its own try: the others
				 * are still logged in to. */
				if (worst)
					ps_cli_report(cli, &last);
				worst = ps_exit_worse(worst, rc);
				last = *err;
			}
			ps_err_clear(err);
		} else if (toks[i]->info.flags & CKF_LOGIN_REQUIRED) {
			ps_cli_note(cli,
				    "not logged in to token '%s': private keys "
				    "are not shown (KEY is '-'); log in with "
				    "--pin to see them",
				    toks[i]->label);
		}
	}
	if (worst)
		*err = last;
	return worst;
}

/* --unregistered: what psrenew installed and JIP has not confirmed. */
static int unregistered(struct ps_cli *cli, const struct ps_inventory *inv,
			size_t *shown, struct ps_err *err)
{
	struct ps_state st;
	json_t *recs = json_array(), *r;
	size_t unknown = 0, i;
	int rc = ps_state_open(cli->state_dir, &cli->cfg, 0, &st, err);

	if (rc && !strcmp(err->code, "no-state-dir"))
		rc = 0; /* nothing installed yet */
	else if (!rc)
		rc = ps_jipconf_unregistered(&st, inv, &cli->cfg, recs,
					     &unknown, err);
	if (st.dirfd >= 0)
		ps_state_close(&st);
	json_array_foreach (recs, i, r) {
		if (ps_cli_emit(cli, r) < 0 && !rc)
			rc = ps_err_set(err, PS_EXIT_FAIL, "output", NULL,
					"cannot write the records");
		if (!strcmp(ps_json_str(r, "kind"), "cert"))
			(*shown)++;
	}
	json_decref(recs);
	if (unknown)
		ps_cli_warn(cli,
			    "%zu installed certificate(s) left out: not logged "
			    "in, their keys cannot be seen; log in with --pin",
			    unknown);
	if (!rc)
		ps_err_clear(err);
	return rc;
}

static int run(struct ps_cli *cli, const struct args *a, struct ps_err *err)
{
	struct ps_module *mod = NULL;
	struct ps_token **toks = NULL;
	struct ps_inventory inv;
	struct ps_out *out = ps_cli_out(cli);
	size_t ntoks = 0, shown = 0;
	int rc;

	if (!out)
		return ps_err_nomem(err);
	rc = ps_cli_tokens(cli, &mod, &toks, &ntoks, err);
	if (!rc)
		rc = login_all(cli, toks, ntoks, err);
	if (!rc)
		rc = ps_inventory_load(toks, ntoks, time(NULL), &inv, err);
	if (rc)
		goto out;
	if (a->unregistered)
		rc = unregistered(cli, &inv, &shown, err);
	for (size_t i = 0; i < inv.n && !rc && !a->unregistered; i++) {
		int fresh;
		long t = ps_inventory_threshold(&inv, i, &a->expiring, &fresh);
		json_t *r;

		if (a->expiring.max >= 0 && t < 0)
			continue;
		r = ps_inventory_record(&inv, i, &cli->cfg);
		if (r && t >= 0) {
			json_object_set_new(r, "threshold_days",
					    json_integer(t));
			json_object_set_new(r, "threshold_new",
					    json_boolean(fresh));
		}
		if (r && !ps_out_is_json(cli->out))
			ps_inventory_label_serial(toks, ntoks, r);
		if (!r || ps_out_emit(out, r) < 0)
			rc = ps_err_set(err, PS_EXIT_FAIL, "output", NULL,
					"cannot write the records");
		json_decref(r);
		shown++;
	}
	if (inv.skipped)
		ps_cli_warn(cli,
			    "%zu certificate object(s) are not X.509 "
			    "certificates and were skipped",
			    inv.skipped);
	ps_cli_info(cli, "%zu certificate(s) on %zu token(s), %zu shown", inv.n,
		    ntoks, shown);
	ps_inventory_free(&inv);
	if (!rc && a->expiring.max >= 0 && shown > 0)
		rc = PS_EXIT_PENDING;
out:
	ps_tokens_free(toks, ntoks);
	ps_module_close(mod);
	return rc;
}

/* The first error stays in err for the end; a later one is told now. */
static int merge(struct ps_cli *cli, int rc, int rc2, struct ps_err *err,
		 const struct ps_err *e2)
{
	if (!rc2)
		return rc;
	if (!rc) {
		*err = *e2;
		return rc2;
	}
	ps_cli_report(cli, e2);
	return ps_exit_worse(rc, rc2);
}

/* --metrics, --metrics-file: what the listing shows, the state store's
 * requests and confirmations, as Prometheus metrics. A run that fails
 * still writes them (psrenew_run_success 0). No login without --pin: a
 * timer must not spend PIN tries, and nothing else needs one. */
static int metrics(struct ps_cli *cli, const struct args *a, struct ps_err *err)
{
	struct ps_module *mod = NULL;
	struct ps_inventory inv;
	struct ps_state st;
	struct ps_metrics_in in = { .cfg = &cli->cfg, .now = time(NULL) };
	struct ps_err e;
	char *text = NULL;
	size_t len = 0;
	int rc, rc2;

	memset(&inv, 0, sizeof(inv));
	cli->out_mode = PS_OUT_NONE; /* stdout carries the metrics */
	rc = ps_cli_tokens(cli, &mod, &in.toks, &in.ntoks, err);
	if (!rc && cli->pin_given)
		rc = login_all(cli, in.toks, in.ntoks, err);
	if (in.toks) {
		rc2 = ps_inventory_load(in.toks, in.ntoks, in.now, &inv, &e);
		in.inv = rc2 ? NULL : &inv;
		rc = merge(cli, rc, rc2, err, &e);
	}
	rc2 = ps_state_open(cli->state_dir, &cli->cfg, PS_STATE_READ_ONLY, &st,
			    &e);
	in.st = rc2 ? NULL : &st;
	if (rc2 && !strcmp(e.code, "no-state-dir"))
		rc2 = 0; /* nothing renewed yet */
	rc = merge(cli, rc, rc2, err, &e);
	in.success = !rc;
	rc = merge(cli, rc, ps_metrics_text(&in, &text, &len, &e), err, &e);
	if (text)
		rc = merge(
		    cli, rc,
		    ps_metrics_emit(text, len, a->metrics, a->metrics_file, &e),
		    err, &e);
	free(text);
	if (in.st)
		ps_state_close(&st);
	ps_inventory_free(&inv);
	ps_tokens_free(in.toks, in.ntoks);
	ps_module_close(mod);
	return rc;
}

/* --modules: the token modules found, which one a run uses, and whether
 * a record may name each (nothing is loaded). */
static int list_modules(struct ps_cli *cli, struct ps_err *err)
{
	json_t *all = ps_modules_report(&cli->cfg, cli->module), *r;
	size_t i;
	int rc = all ? 0 : ps_err_nomem(err);

	json_array_foreach (all, i, r)
		if (!rc && ps_cli_emit(cli, r) < 0)
			rc = ps_err_set(err, PS_EXIT_FAIL, "output", NULL,
					"cannot write the records");
	ps_cli_info(cli, "%zu module(s) found; used: %s (%s)",
		    json_array_size(all),
		    cli->module ? cli->module
				: "the module PKCS11_MODULE "
				  "names, else p11-kit's proxy",
		    cli->module_from ? cli->module_from : "--module");
	json_decref(all);
	return rc;
}

static int start(struct ps_cli *cli, void *args, char **operands, int n,
		 struct ps_err *err)
{
	struct args *a = args;

	(void)operands;
	(void)n;
	if (a->expiring_arg &&
	    ps_expiring_parse(a->expiring_arg, &a->expiring, err))
		return err->status;
	if (a->modules)
		return list_modules(cli, err);
	if (a->unregistered && a->expiring.max >= 0)
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--unregistered and --expiring do not go "
				  "together");
	if ((a->metrics || a->metrics_file) &&
	    (a->unregistered || a->expiring.max >= 0))
		return ps_err_set(
		    err, PS_EXIT_USAGE, "usage", NULL,
		    "--metrics and --metrics-file go with neither "
		    "--expiring nor --unregistered");
	if (a->metrics || a->metrics_file)
		return metrics(cli, a, err);
	return run(cli, args, err);
}

int main(int argc, char **argv)
{
	struct ps_cli cli = {
		.prog = "ps-status",
		.synopsis = "[OPTION]...",
		.summary = "List every certificate on the selected PKCS#11 "
			   "tokens: type, serial, validity, key, successor.",
	};
	struct args a = { .expiring.max = -1 };
	const struct ps_opt opts[] = {
		PS_OPT_STRING("expiring", &a.expiring_arg, "DAYS[,DAYS...]",
			      "only valid, not yet renewed certificates "
			      "expiring within DAYS (the largest); each says "
			      "which threshold it crossed; exit 3 if any"),
		PS_OPT_BOOL("unregistered", &a.unregistered,
			    "only certificates psrenew installed that JIP has "
			    "not confirmed yet (for ps-jip-setserial)"),
		PS_OPT_BOOL("metrics", &a.metrics,
			    "Prometheus metrics on stdout (no login without "
			    "--pin)"),
		PS_OPT_STRING("metrics-file", &a.metrics_file, "PATH",
			      "write the metrics into PATH atomically, mode "
			      "0644 (node_exporter's textfile collector)"),
		PS_OPT_BOOL("modules", &a.modules,
			    "list the token modules found (Bit4id's, "
			    "OpenSC's), which one is used, and whether a "
			    "record may name it"),
		PS_OPT_END(),
	};

	return ps_cli_main(&cli, argc, argv, opts, &a, 0, start);
}

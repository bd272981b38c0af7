/* ps-renew: request following certificates (the guide's §2, "Obnovit"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <psrenew/inventory.h>
#include <psrenew/renew.h>
#include <psrenew/renew_batch.h>
#include <psrenew/codec.h>

#include "common/cli.h"
#include "common/progress.h"

struct args {
	const char *ca, *id, *serial, *key_type, *key, *ca_bundle, *ca_type;
	const char *cacerts, *sign_with;
	int type;
	long all_expiring;
	int dry_run, force;
};

/* The batch's progress on a terminal: one item per target's record. */
static struct ps_progress progress = { .kinds = "request,error" };

/* The batch: the pool of --module, --token and --pin. */
static void batch_init(struct ps_renew_batch *b, struct ps_cli *cli,
		       struct ps_renew *r)
{
	memset(b, 0, sizeof(*b));
	b->r = r;
	b->pool.module = cli->module;
	b->pool.module_from = cli->module_from;
	b->pool.sel = cli->token ? &cli->token_uri : NULL;
	b->pool.pin = cli->pin;
	b->h = ps_progress_hooks(&progress, cli);
}

/* --all-expiring, or --token with --id/--serial/--type. */
static int from_options(struct ps_cli *cli, struct ps_renew *r,
			const struct args *a, struct ps_err *err)
{
	struct ps_selector sel = { a->id, a->serial, a->type };
	struct ps_renew_batch b;
	size_t n;
	int rc;

	batch_init(&b, cli, r);
	rc = ps_renew_batch_select(&b, &sel, a->all_expiring, &n, err);
	if (!rc && n == 0)
		ps_cli_warn(cli, "nothing expires within %ld day%s",
			    a->all_expiring, a->all_expiring == 1 ? "" : "s");
	ps_pool_free(&b.pool);
	return rc;
}

/* cert records on stdin, grouped by module. */
static int from_stdin(struct ps_cli *cli, struct ps_renew *r,
		      struct ps_err *err)
{
	json_t *all = json_array();
	struct ps_in_loop loop = { ps_renew_take_cert, all, ps_cli_emit, cli,
				   0 };
	struct ps_renew_batch b;
	int worst;

	if (!all)
		return ps_err_nomem(err);
	if (ps_in_each(stdin, &loop, err)) {
		json_decref(all);
		return err->status;
	}
	batch_init(&b, cli, r);
	worst = ps_exit_worse(loop.worst, ps_renew_batch_records(&b, all));
	ps_pool_free(&b.pool);
	json_decref(all);
	if (b.passed_on)
		ps_cli_warn(cli,
			    "%zu certificate(s) of other tokens passed on as "
			    "they are, not renewed (--token selects '%s')",
			    b.passed_on, cli->token);
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

/* The state store; a dry run only reads it (a missing one: nothing
 * pending, st->dirfd stays -1). */
static int open_state(struct ps_cli *cli, int dry_run, struct ps_state *st,
		      struct ps_err *err)
{
	int rc = ps_state_open(cli->state_dir, &cli->cfg,
			       dry_run ? PS_STATE_READ_ONLY : 1, st, err);

	if (rc && dry_run && !strcmp(err->code, "no-state-dir")) {
		ps_err_clear(err);
		rc = 0;
	}
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
				  "say which certificate to renew: --id, "
				  "--serial or --type (--token URI picks "
				  "the token), "
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
	if (!rc && r.ca)
		rc = ps_ca_set_sign_with(r.ca, a->sign_with, err);
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
	if (!rc)
		rc = open_state(cli, a->dry_run, &st, err);
	if (!rc) {
		r.st = st.dirfd >= 0 ? &st : NULL;
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
	if (by_opts && ps_in_unread(0))
		ps_cli_warn(cli, "the records on stdin were not read: "
				 "--all-expiring, --id, --serial and --type "
				 "choose the certificates; pipe records "
				 "without them");
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
		    "--ca CHANNEL [[--token URI] (--id HEX | --serial S | "
		    "--type T) | --all-expiring DAYS] [OPTION]...",
		.summary =
		    "Request following certificates: a new key pair on "
		    "the token, a CSR with\nthe current subject, sent to "
		    "the CA; qualified before commercial.",
	};
	struct args a = { .type = -1, .all_expiring = -1 };
	const struct ps_opt opts[] = {
		PS_OPT_STRING("ca", &a.ca, "CHANNEL",
			      "the CA: helper:PATH [ARGS], "
			      "cmp://HOST[:PORT]/PATH, "
			      "est://HOST[:PORT][/LABEL], https://... (with "
			      "--ca-type), mail:smtp://HOST[:PORT], mail:-, or "
			      "a [ca.NAME] of the configuration"),
		PS_OPT_STRING("ca-type", &a.ca_type, "cmp|est",
			      "the protocol of an https:// --ca"),
		PS_OPT_STRING(
		    "cacerts", &a.cacerts, "FILE",
		    "EST: first fetch the CA certificates (/cacerts), "
		    "check them, write them to FILE"),
		PS_OPT_STRING("id", &a.id, "HEX",
			      "renew the certificate with this CKA_ID"),
		PS_OPT_STRING("serial", &a.serial, "SERIAL",
			      "renew the certificate with this serial number"),
		PS_OPT_CALLBACK("type", &a.type, ps_opt_cert_type, "TYPE",
				"qualified or commercial"),
		PS_OPT_INT("all-expiring", &a.all_expiring, 36500, "DAYS",
			   "renew every certificate expiring within DAYS on "
			   "every token"),
		PS_OPT_STRING("key-type", &a.key_type, "TYPE",
			      "rsa:2048|3072|4096, ec:prime256v1, ec:secp384r1 "
			      "(default: rsa:4096 where the token makes it, "
			      "else rsa:2048; never smaller than now)"),
		PS_OPT_STRING("key", &a.key, "ID",
			      "use this existing key pair (CKA_ID, hex)"),
		PS_OPT_BOOL("dry-run", &a.dry_run,
			    "show what would be done; touch neither the token "
			    "nor the CA"),
		PS_OPT_STRING("ca-bundle", &a.ca_bundle, "FILE",
			      "CAs trusted (besides the system's) for the CA's "
			      "TLS"),
		PS_OPT_STRING("sign-with", &a.sign_with, "SELECTOR",
			      "mail: the certificate that signs the e-mail: "
			      "qualified, current, id:HEX or serial:S "
			      "(default: the holder's qualified one)"),
		PS_OPT_BOOL("force", &a.force,
			    "renew even when a request is pending or a "
			    "successor exists"),
		PS_OPT_END(),
	};
	int rc = ps_cli_main(&cli, argc, argv, opts, &a, 0, start);

	/* A signal stopped a CA helper: 128 + its number, as a shell says. */
	return ps_ca_interrupted() ? 128 + ps_ca_interrupted() : rc;
}

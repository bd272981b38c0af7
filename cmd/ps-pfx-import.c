/* ps-pfx-import: a PFX exported from Windows onto the token (the guide's
 * §8, "Jak kopírovat certifikát z operačního systému Windows na TOKEN"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <psrenew/pfx.h>
#include <psrenew/secret.h>

#include "common/cli.h"

struct args {
	const char *pass, *label;
	int with_chain;
};

/* "PATH: message", so that a batch says which file failed. */
static void name_file(struct ps_err *err, const char *path)
{
	size_t pl = strnlen(path, 200), ml = strlen(err->msg);

	if (pl + 2 + ml >= sizeof(err->msg))
		ml = sizeof(err->msg) - pl - 3;
	memmove(err->msg + pl + 2, err->msg, ml);
	memcpy(err->msg, path, pl);
	memcpy(err->msg + pl, ": ", 2);
	err->msg[pl + 2 + ml] = '\0';
}

/* Reads, checks and decrypts the file: nothing touches the token yet. */
static int open_pfx(struct ps_cli *cli, const struct args *a, const char *path,
		    struct ps_pfx *pfx, struct ps_err *err)
{
	unsigned char *der;
	size_t len;
	char prompt[160], *pass = NULL;
	int rc = ps_pfx_read_file(path, &der, &len, err);

	if (rc)
		return rc;
	rc = ps_pfx_load(der, len, pfx, err);
	free(der);
	if (rc)
		name_file(err, path);
	if (!rc && !ps_pfx_password_empty(pfx)) {
		snprintf(prompt, sizeof(prompt), "Password for %.120s: ", path);
		rc = ps_secret_read(a->pass, prompt, &pass, err);
		if (rc && !strcmp(err->code, "no-terminal"))
			snprintf(err->hint, sizeof(err->hint),
				 "give the PFX password with --pass env:VAR, "
				 "file:PATH or fd:N");
	}
	if (!rc) {
		rc = ps_pfx_unlock(pfx, pass, err);
		if (rc)
			name_file(err, path);
	}
	ps_secret_free(pass);
	if (!rc && pfx->legacy)
		ps_cli_info(cli,
			    "%s uses legacy encryption (RC2 or 3DES, as "
			    "Windows exports); OpenSSL's legacy provider was "
			    "loaded",
			    path);
	return rc;
}

static int run(struct ps_cli *cli, const struct args *a, const char *path,
	       struct ps_err *err)
{
	struct ps_pfx pfx;
	struct ps_module *mod = NULL;
	struct ps_token **toks = NULL;
	struct ps_pfx_import_opts o = { a->label, a->with_chain };
	struct ps_pfx_import_result res;
	struct ps_state st = { NULL, -1, -1, -1, 0 };
	size_t ntoks = 0;
	json_t *rec = NULL;
	int rc;

	memset(&pfx, 0, sizeof(pfx));
	rc = open_pfx(cli, a, path, &pfx, err);

	/* The state store records the import while it writes (crash
	 * safety). */
	if (!rc)
		rc = ps_state_open(cli->state_dir, &cli->cfg, 1, &st, err);
	if (!rc)
		rc = ps_cli_tokens(cli, &mod, &toks, &ntoks, err);
	if (!rc)
		rc = ps_tokens_require_one(toks, ntoks, err);
	if (!rc)
		rc = ps_token_open(toks[0], 1, err);
	if (!rc)
		rc = ps_token_login(toks[0], cli->pin, err);
	if (!rc)
		rc = ps_pfx_import(toks[0], &pfx, &o, &st, &res, err);
	if (!rc && res.resumed)
		ps_cli_warn(cli,
			    "%s: an interrupted import of this key was "
			    "completed (%zu half-written object(s) removed)",
			    path, res.leftovers_removed);
	if (!rc)
		rec = ps_pfx_record(toks[0], &pfx, &res, &cli->cfg, err);
	if (rec) {
		ps_json_set_str(rec, "pfx_file", path);
		if (res.warning[0])
			ps_cli_warn(cli, "%s", res.warning);
		ps_cli_info(cli, "%s: %s", path,
			    res.imported ? "imported"
					 : "already on the token, nothing "
					   "written");
		if (ps_cli_emit(cli, rec) < 0)
			rc = ps_err_set(err, PS_EXIT_FAIL, "output", NULL,
					"cannot write the record");
		json_decref(rec);
	} else if (!rc) {
		rc = err->status ? err->status : PS_EXIT_FAIL;
	}
	ps_pfx_free(&pfx);
	ps_tokens_free(toks, ntoks);
	ps_module_close(mod);
	ps_state_close(&st);
	return rc;
}

static int start(struct ps_cli *cli, void *args, char **operands, int n,
		 struct ps_err *err)
{
	if (n != 1)
		return ps_err_set(
		    err, PS_EXIT_USAGE, "usage",
		    "for example: ps-pfx-import --pass prompt "
		    "certifikat.pfx",
		    n ? "one PFX file at a time (see ps-pfx-import "
			"--help)"
		      : "which PFX file? (see ps-pfx-import --help)");
	return run(cli, args, operands[0], err);
}

int main(int argc, char **argv)
{
	struct ps_cli cli = {
		.prog = "ps-pfx-import",
		.synopsis = "[OPTION]... FILE.pfx",
		.summary =
		    "Import a PFX (PKCS#12) file onto the token: the private "
		    "key (sensitive, not\nextractable), its public key, its "
		    "certificate and, with --with-chain, the CAs.",
	};
	struct args a = { NULL, NULL, 0 };
	const struct ps_opt opts[] = {
		PS_OPT_SECRET("pass", &a.pass,
			      "the PFX password: prompt (default), env:VAR, "
			      "file:PATH or fd:N"),
		PS_OPT_BOOL("with-chain", &a.with_chain,
			    "also store the CA certificates of the PFX on the "
			    "token"),
		PS_OPT_STRING("label", &a.label, "LABEL",
			      "label of key and certificate (default: the "
			      "PFX's friendlyName, else the subject's CN)"),
		PS_OPT_END(),
	};

	return ps_cli_main(&cli, argc, argv, opts, &a, -1, start);
}

/* ps-jip-setserial: register new certificates' serial numbers in JIP
 * (the guide's §5; §6 login methods; the local administrator's bulk). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <psrenew/jip_register.h>

#include "common/cli.h"
#include "common/progress.h"

struct args {
	const char *login, *user, *password, *otp, *profile, *url;
	const char *ca_bundle, *cert, *serial, *ca, *id, *login_cert;
	const char *backend, *ws_url, *ws_version, *client_cert, *client_key;
	const char *client_key_pw;
	struct ps_opt_list for_users;
	int type, verify, remove_superseded, list;
};

/* --id: the certificates with this CKA_ID on the tokens of --token. */
static int items_on_tokens(struct ps_cli *cli, const char *id, json_t *items,
			   struct ps_err *err)
{
	struct ps_module *mod;
	struct ps_token **toks;
	size_t ntoks;
	int rc = ps_cli_tokens(cli, &mod, &toks, &ntoks, err);

	if (rc)
		return rc;
	rc = ps_jip_items_on_tokens(toks, ntoks, id, &cli->cfg, items, err);
	ps_tokens_free(toks, ntoks);
	ps_module_close(mod);
	return rc;
}

/* What to register: from the options, or the cert records of stdin
 * (*upstream: the worst status of the error records there). */
static int items_from_args(struct ps_cli *cli, const struct args *a,
			   json_t *items, int *upstream, struct ps_err *err)
{
	if (a->serial)
		return ps_jip_item_serial(a->serial, a->type, a->ca, items,
					  err);
	if (a->cert)
		return ps_jip_item_file(a->cert, &cli->cfg, items, err);
	if (a->id)
		return items_on_tokens(cli, a->id, items, err);
	if (!isatty(0))
		return ps_jip_items_read(stdin, items, ps_cli_emit, cli,
					 upstream, err);
	return ps_err_set(err, PS_EXIT_USAGE, "usage",
			  "ps-status --unregistered | ps-jip-setserial, or "
			  "--cert "
			  "FILE, or --serial S --type T --ca NAME",
			  "say which certificate to register");
}

/* --backend html|ws */
static int opt_backend(const struct ps_opt *o, const char *arg,
		       struct ps_err *err)
{
	if (strcmp(arg, "html") && strcmp(arg, "ws"))
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--backend is html (the web form) or ws "
				  "(the editing web service), not %.40s",
				  arg);
	*(const char **)o->value = arg;
	return 0;
}

/* --ws-version 1.0|1.1 */
static int opt_ws_version(const struct ps_opt *o, const char *arg,
			  struct ps_err *err)
{
	if (strcmp(arg, "1.0") && strcmp(arg, "1.1"))
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--ws-version is 1.0 or 1.1, not %.40s", arg);
	*(const char **)o->value = arg;
	return 0;
}

/* --list: the tokens, when a module is known, mark the entries. */
static int list(struct ps_cli *cli, const struct ps_jip_reg *r,
		const char *const *logins, size_t n,
		const struct ps_batch_hooks *h, struct ps_err *err)
{
	struct ps_module *mod = NULL;
	struct ps_token **toks = NULL;
	size_t ntoks = 0;
	int rc;

	if ((cli->module || cli->token || getenv("PKCS11_MODULE")) &&
	    ps_cli_tokens(cli, &mod, &toks, &ntoks, err)) {
		ps_cli_warn(cli,
			    "%s: the entries are marked from the state "
			    "store only",
			    err->msg);
		ps_err_clear(err);
	}
	rc = ps_jip_list_users(r, logins, n, toks, ntoks, h, err);
	ps_tokens_free(toks, ntoks);
	ps_module_close(mod);
	return rc;
}

static int run(struct ps_cli *cli, const struct args *a, char **more, int nmore,
	       struct ps_err *err)
{
	struct ps_jip_reg r = {
		.login = a->login,
		.user = a->user,
		.password = a->password,
		.otp = a->otp,
		.for_user = a->for_users.n ? a->for_users.v[0] : NULL,
		.profile = a->profile,
		.url = a->url,
		.ca_bundle = a->ca_bundle,
		.ca = a->ca,
		.login_cert = a->login_cert,
		.cert_file = a->cert,
		.verify = a->verify,
		.backend = a->ws_url ? "ws" : a->backend,
		.ws_url = a->ws_url,
		.ws_version = a->ws_version,
		.client_cert = a->client_cert,
		.client_key = a->client_key,
		.client_key_pw = a->client_key_pw,
		.remove_superseded = a->remove_superseded,
		.pool = { .module = cli->module,
			  .module_from = cli->module_from,
			  .sel = cli->token ? &cli->token_uri : NULL,
			  .pin = cli->pin },
		.state_dir = cli->state_dir,
		.cfg = &cli->cfg,
	};
	struct ps_progress pg = { 0 };
	struct ps_batch_hooks h = ps_progress_hooks(&pg, cli);
	json_t *items = json_array();
	const char *logins[PS_OPT_LIST_MAX + 256];
	size_t n = 0;
	int rc, upstream = 0;

	for (size_t i = 0; i < a->for_users.n; i++)
		logins[n++] = a->for_users.v[i];
	for (int i = 0; i < nmore; i++)
		logins[n++] = more[i];
	if (a->ws_url && a->backend && !strcmp(a->backend, "html")) {
		json_decref(items);
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--jip-ws is the web service: not with "
				  "--backend html");
	}
	if (a->list) {
		json_decref(items);
		if (!n)
			return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
					  "--list needs --for LOGIN");
		return list(cli, &r, logins, n, &h, err);
	}
	rc = nmore > 0 || n > 1
		 ? ps_err_set(err, PS_EXIT_USAGE, "usage",
			      "give each record a \"user\" field instead",
			      "one --for and no operand without --list")
		 : 0;
	if (!rc)
		rc = items_from_args(cli, a, items, &upstream, err);
	if (!rc && json_array_size(items) == 0)
		ps_cli_warn(cli, "nothing to register: the input held no cert "
				 "record (ps-fetch prints one only for a "
				 "certificate it installs in that run; "
				 "ps-status --unregistered lists those JIP "
				 "has not confirmed)");
	else if (!rc)
		rc = ps_jip_register(&r, items, &h, err);
	json_decref(items);
	return ps_exit_worse(rc, upstream);
}

static int start(struct ps_cli *cli, void *args, char **operands, int n,
		 struct ps_err *err)
{
	struct args *a = args;

	if (!a->ca_bundle)
		a->ca_bundle = ps_config_get(&cli->cfg, "jip", "ca-bundle");
	if (n > 256)
		return ps_err_set(err, PS_EXIT_USAGE, "usage",
				  "split the users over several runs",
				  "at most 256 more logins after --for");
	return run(cli, args, operands, n, err);
}

int main(int argc, char **argv)
{
	struct ps_cli cli = {
		.prog = "ps-jip-setserial",
		.synopsis = "[--login METHOD] --user NAME [--for USER] "
			    "[--cert FILE | --serial S --type T --ca CA] "
			    "[OPTION]...\n"
			    "       ps-jip-setserial --list --for USER "
			    "[USER]... [OPTION]...",
		.summary = "Register certificates' serial numbers in the JIP "
			   "account (Czech POINT, \"Správa\ndat\"): type, CA "
			   "and serial taken from the certificate.",
	};
	struct args a = { .type = -1 };
	const struct ps_opt opts[] = {
		PS_OPT_STRING("login", &a.login, "METHOD",
			      "password (default), cert, otp; nia cannot be "
			      "scripted"),
		PS_OPT_STRING("user", &a.user, "NAME",
			      "the JIP user name to log in with"),
		PS_OPT_SECRET("password", &a.password,
			      "the JIP password: prompt, env:VAR, file:PATH or "
			      "fd:N"),
		PS_OPT_SECRET("otp", &a.otp, "the one-time code (--login otp)"),
		PS_OPT_LIST("for", &a.for_users, "USER",
			    "set the serial on USER's account (local "
			    "administrator); with --list, repeatable"),
		PS_OPT_BOOL("list", &a.list,
			    "list the certificates JIP has for the users of "
			    "--for (and the operands), marked"),
		PS_OPT_CALLBACK("backend", &a.backend, opt_backend, "html|ws",
				"the web form or the editing web service "
				"(or backend in [jip])"),
		PS_OPT_STRING("jip-ws", &a.ws_url, "URL",
			      "the editing web service of the subject "
			      "(implies --backend ws)"),
		PS_OPT_CALLBACK("ws-version", &a.ws_version, opt_ws_version,
				"1.0|1.1",
				"1.0: name and password; 1.1: a TLS client "
				"certificate"),
		PS_OPT_STRING("client-cert", &a.client_cert, "FILE",
			      "WS 1.1: the system certificate in a file"),
		PS_OPT_STRING("client-key", &a.client_key, "FILE",
			      "WS 1.1: its private key (mode 600)"),
		PS_OPT_SECRET("client-key-password", &a.client_key_pw,
			      "the passphrase of an encrypted --client-key"),
		PS_OPT_BOOL("remove-superseded", &a.remove_superseded,
			    "ws: drop the entries of the certificates the "
			    "new ones superseded"),
		PS_OPT_STRING("profile", &a.profile, "FILE",
			      "the JIP portal profile (JSON)"),
		PS_OPT_STRING("jip-url", &a.url, "URL", "the portal's address"),
		PS_OPT_STRING("ca-bundle", &a.ca_bundle, "FILE",
			      "CAs trusted (besides the system's) for the "
			      "portal's TLS (or ca-bundle in [jip])"),
		PS_OPT_STRING("cert", &a.cert, "FILE",
			      "register this certificate (PEM/DER)"),
		PS_OPT_STRING("serial", &a.serial, "SERIAL",
			      "register this serial number"),
		PS_OPT_CALLBACK("type", &a.type, ps_opt_cert_type, "TYPE",
				"with --serial: qualified or commercial"),
		PS_OPT_STRING("ca", &a.ca, "NAME",
			      "the CA as JIP lists it (default: mapped)"),
		PS_OPT_STRING("id", &a.id, "HEX",
			      "register the certificate with this CKA_ID"),
		PS_OPT_STRING("login-cert", &a.login_cert, "HEX",
			      "--login cert or WS 1.1: the CKA_ID of the "
			      "certificate to log in with"),
		PS_OPT_BOOL("verify-login", &a.verify,
			    "then log in with each new commercial certificate "
			    "to prove it"),
		PS_OPT_END(),
	};

	return ps_cli_main(&cli, argc, argv, opts, &a, -1, start);
}

/* ps-jip-setserial: register new certificates' serial numbers in JIP
 * (the guide's §5; §6 login methods; the local administrator's bulk). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <psrenew/certio.h>
#include <psrenew/inventory.h>
#include <psrenew/jip.h>
#include <psrenew/jip_login.h>
#include <psrenew/jipconf.h>
#include <psrenew/jipws.h>
#include <psrenew/secret.h>
#include <psrenew/state.h>

#include "common/cli.h"
#include "common/progress.h"

struct args {
	const char *login, *user, *password, *otp, *for_user, *profile, *url;
	const char *ca_bundle, *cert, *serial, *ca, *id, *login_cert;
	int type, verify;
};

static json_t *item_from_x509(X509 *x, const struct ps_config *cfg,
			      struct ps_err *err)
{
	struct ps_cert c;
	json_t *r;

	if (ps_cert_from_x509(x, &c, err))
		return NULL;
	r = json_object();
	ps_json_set_str(r, "kind", "cert");
	ps_json_set_str(r, "serial_hex", c.serial_hex);
	ps_json_set_str(r, "type", ps_cert_type_name(c.type));
	ps_json_set_str(r, "cn", c.cn);
	ps_json_set_str(r, "issuer", c.issuer);
	ps_json_set_str(r, "jip_ca",
			ps_cert_jip_ca(&c, cfg->jip_ca, cfg->n_jip_ca));
	ps_cert_free(&c);
	return r;
}

/* A cert record of stdin: a certificate to register. */
static int take_cert(struct ps_in_loop *l, json_t *rec)
{
	if (strcmp(ps_json_str(rec, "kind"), "cert"))
		return 0;
	return json_array_append(l->ctx, rec) == 0;
}

/* What to register: from the options, or the cert records of stdin
 * (*upstream: the worst status of the error records there). */
static int items_from_args(struct ps_cli *cli, const struct args *a,
			   json_t *items, int *upstream, struct ps_err *err)
{
	if (a->serial) {
		char *hex;
		json_t *r;
		int rc = ps_serial_normalise(a->serial, &hex, err);

		if (rc)
			return rc;
		if (a->type < 0 || !a->ca) {
			free(hex);
			return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
					  "--serial needs --type and --ca");
		}
		r = json_object();
		ps_json_set_str(r, "kind", "cert");
		ps_json_set_str(r, "serial_hex", hex);
		ps_json_set_str(r, "type", ps_cert_type_name(a->type));
		json_array_append_new(items, r);
		free(hex);
		return 0;
	}
	if (a->cert) {
		FILE *f = fopen(a->cert, "rb");
		unsigned char buf[65536];
		size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
		STACK_OF(X509) *sk = NULL;
		int rc;

		if (f)
			fclose(f);
		if (!f)
			return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
					  "cannot open %s", a->cert);
		rc = ps_certs_parse(buf, n, &sk, err);
		if (!rc) {
			json_t *r = item_from_x509(sk_X509_value(sk, 0),
						   &cli->cfg, err);

			rc = r ? 0 : err->status;
			if (r)
				json_array_append_new(items, r);
		}
		sk_X509_pop_free(sk, X509_free);
		return rc;
	}
	if (a->id) {
		struct ps_module *mod;
		struct ps_token **toks;
		struct ps_inventory inv;
		struct ps_selector sel = { a->id, NULL, -1 };
		size_t ntoks, *idx, n;
		int rc = ps_cli_tokens(cli, &mod, &toks, &ntoks, err);

		if (rc)
			return rc;
		rc = ps_inventory_load(toks, ntoks, time(NULL), &inv, err);
		if (!rc)
			rc = ps_inventory_select(&inv, &sel, &idx, &n, err);
		if (!rc) {
			if (n == 0)
				rc = ps_err_set(
				    err, PS_EXIT_USAGE, "no-such-cert", NULL,
				    "no certificate with id %s", a->id);
			for (size_t i = 0; i < n; i++)
				json_array_append_new(
				    items, ps_inventory_record(&inv, idx[i],
							       &cli->cfg));
			free(idx);
			ps_inventory_free(&inv);
		}
		ps_tokens_free(toks, ntoks);
		ps_module_close(mod);
		return rc;
	}
	if (!isatty(0)) {
		struct ps_in_loop loop = { take_cert, items, ps_cli_emit, cli,
					   0 };
		int rc = ps_in_each(stdin, &loop, err);

		*upstream = loop.worst;
		return rc;
	}
	return ps_err_set(err, PS_EXIT_USAGE, "usage",
			  "ps-status --unregistered | ps-jip-setserial, or "
			  "--cert "
			  "FILE, or --serial S --type T --ca NAME",
			  "say which certificate to register");
}

/* --login cert: the certificate id_hex, or the one ps_jip_login_cert_open
 * chooses, on the token of --module, --token and --pin. */
static int login_cert_open(struct ps_cli *cli, const char *id_hex,
			   json_t *items, struct ps_jip_login_cert *lc,
			   struct ps_err *err)
{
	memset(lc, 0, sizeof(*lc));
	lc->pool.module = cli->module;
	lc->pool.module_from = cli->module_from;
	lc->pool.sel = cli->token ? &cli->token_uri : NULL;
	lc->pool.pin = cli->pin;
	return ps_jip_login_cert_open(lc, id_hex, items, err);
}

static int read_secret(const char *src, const char *prompt, char **out,
		       struct ps_err *err)
{
	return ps_secret_read(src ? src : "prompt", prompt, out, err);
}

/* STATE_DIR/jip/SERIAL.json: what ps-token-clean needs to know. */
static void remember(struct ps_cli *cli, const json_t *rec)
{
	struct ps_err e;

	if (ps_jipconf_keep(cli->state_dir, &cli->cfg, rec, &e))
		ps_cli_warn(cli, "the confirmation was not kept: %s", e.msg);
}

static const char *default_profile(const struct ps_cli *cli)
{
	const char *p = ps_config_get(&cli->cfg, "jip", "profile");

	return p ? p : PSRENEW_DATADIR "/jip-czechpoint.json";
}

static json_t *result_record(const json_t *in, const char *user,
			     const char *type, const char *ca,
			     const char *serial, const char *result)
{
	json_t *r = ps_jipconf_new(user, type, ca, serial, result);

	if (in) {
		json_object_set(r, "token", json_object_get(in, "token"));
		json_object_set(r, "id", json_object_get(in, "id"));
		json_object_set(r, "request_id",
				json_object_get(in, "request_id"));
		json_object_set(r, "replaces_serial_hex",
				json_object_get(in, "replaces_serial_hex"));
		ps_record_pass_through(r, in);
	}
	return r;
}

/* [jip] timeout: seconds a request to the portal may take (0: http.c's
 * default, 120). */
static long jip_timeout(struct ps_cli *cli)
{
	const char *v = ps_config_get(&cli->cfg, "jip", "timeout");
	long t = v ? strtol(v, NULL, 10) : 0;

	return t > 0 ? t : 0;
}

static int verify_login(struct ps_cli *cli, const struct args *a,
			const json_t *in, const char *user, const char *pw,
			const char *otp, struct ps_err *err)
{
	struct ps_jip_login_cert lc = {
		.pool = { cli->module, cli->module_from,
			  cli->token ? &cli->token_uri : NULL, cli->pin },
	};
	struct ps_http_opts ho = { .ca_bundle = a->ca_bundle,
				   .timeout = jip_timeout(cli) };
	struct ps_jip *j = NULL;
	int rc = ps_jip_login_cert_own(&lc, in, a->cert, err);

	(void)otp;
	if (!rc) {
		ho.client_cert = lc.x;
		ho.client_key = lc.key;
		rc = ps_jip_open(
		    a->profile ? a->profile : default_profile(cli),
		    a->url ? a->url : ps_config_get(&cli->cfg, "jip", "url"),
		    &ho, &j, err);
	}
	if (!rc)
		rc = ps_jip_login(j, "cert", user, pw, NULL, err);
	ps_jip_close(j);
	ps_jip_login_cert_free(&lc);
	return rc;
}

/* [jip] backend = ws: the editing web service (jipws.h, psrenew.conf(5))
 * instead of the web form; WS 1.0 logs in with user and password, WS 1.1
 * with a certificate whose key is on the token. */
static int ws_open(struct ps_cli *cli, const struct args *a, const char *user,
		   json_t *items, struct ps_jip_login_cert *lc, char **pw,
		   struct ps_jipws **w, struct ps_err *err)
{
	const char *ver = ps_config_get(&cli->cfg, "jip", "ws-version");
	const char *sys = ps_config_get(&cli->cfg, "jip", "ws-system");
	const char *num = ps_config_get(&cli->cfg, "jip", "ws-serial");
	struct ps_jipws_opts o = {
		.url =
		    a->url ? a->url : ps_config_get(&cli->cfg, "jip", "ws-url"),
		.version = !ver || !strcmp(ver, "1.0") ? 10
			   : !strcmp(ver, "1.1")       ? 11
						       : 0,
		.caais = !sys ? -1 : !strcmp(sys, "caais"),
		.user = user,
		.serial_dec = num && !strcmp(num, "dec"),
		.http = { .ca_bundle = a->ca_bundle,
			  .timeout = jip_timeout(cli) },
	};
	int rc = 0;

	if (o.version == 11) {
		rc = login_cert_open(cli, a->login_cert, items, lc, err);
		o.http.client_cert = lc->x;
		o.http.client_key = lc->key;
	} else if (o.version == 10 && user) {
		rc = read_secret(a->password, "JIP password: ", pw, err);
		o.password = *pw;
	}
	return rc ? rc : ps_jipws_open(&o, w, err);
}

/* Registers one certificate over the web service: *already 1 when it was
 * there, 2 when skipped (a qualified certificate for CAAIS). */
static int ws_add(struct ps_cli *cli, struct ps_jipws *w, const char *who,
		  const char *type, const char *issuer, const char *serial,
		  int *already, struct ps_err *err)
{
	enum ps_jipws_result res = PS_JIPWS_SET;
	int rc = ps_jipws_add(w, who, type, issuer, serial, &res, err);

	*already = res == PS_JIPWS_ALREADY   ? 1
		   : res == PS_JIPWS_SKIPPED ? 2
					     : 0;
	if (!rc && *already == 2)
		ps_cli_warn(cli,
			    "certificate %s of %s skipped: CAAIS keeps only "
			    "commercial certificates for login",
			    serial, who);
	return rc;
}

static int run(struct ps_cli *cli, const struct args *a, struct ps_err *err)
{
	const char *method = a->login ? a->login : "password";
	const char *user =
	    a->user ? a->user : ps_config_get(&cli->cfg, "jip", "user");
	struct ps_http_opts ho = { .ca_bundle = a->ca_bundle,
				   .timeout = jip_timeout(cli) };
	struct ps_jip_login_cert lc = { 0 };
	struct ps_jip *j = NULL;
	struct ps_jipws *w = NULL;
	const char *backend = ps_config_get(&cli->cfg, "jip", "backend");
	int ws = backend && !strcmp(backend, "ws");
	char *pw = NULL, *otp = NULL;
	json_t *items = json_array(), *v;
	struct ps_progress pg = { 0 };
	size_t i;
	int rc, worst = 0, upstream = 0;

	rc = items_from_args(cli, a, items, &upstream, err);
	if (!rc && json_array_size(items) == 0) {
		ps_cli_warn(cli, "nothing to register: the input held no cert "
				 "record (ps-fetch prints one only for a "
				 "certificate it installs in that run; "
				 "ps-status --unregistered lists those JIP "
				 "has not confirmed)");
		goto out;
	}
	if (!rc && backend && !ws && strcmp(backend, "html"))
		rc = ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				"[jip] backend is html or ws");
	if (!rc && ws && a->verify)
		rc = ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				"--verify-login logs in to the web form: not "
				"with [jip] backend = ws");
	if (!rc && ws)
		rc = ws_open(cli, a, user, items, &lc, &pw, &w, err);
	if (!rc && !ws && strcmp(method, "nia") && !user)
		rc = ps_err_set(err, PS_EXIT_USAGE, "usage",
				"or user = NAME in [jip] of psrenew.conf",
				"give the JIP user name with --user");
	if (!rc && !ws && !strcmp(method, "cert")) {
		rc = login_cert_open(cli, a->login_cert, items, &lc, err);
		ho.client_cert = lc.x;
		ho.client_key = lc.key;
	}
	if (!rc && !ws)
		rc = ps_jip_open(
		    a->profile ? a->profile : default_profile(cli),
		    a->url ? a->url : ps_config_get(&cli->cfg, "jip", "url"),
		    &ho, &j, err);
	if (!rc && !ws && strcmp(method, "nia"))
		rc = read_secret(a->password, "JIP password: ", &pw, err);
	if (!rc && !ws && !strcmp(method, "otp"))
		rc = read_secret(a->otp, "JIP one-time code: ", &otp, err);
	if (!rc && !ws)
		rc = ps_jip_login(j, method, user, pw, otp, err);
	if (rc)
		goto out;
	ps_progress_start(&pg, cli, json_array_size(items));
	json_array_foreach (items, i, v) {
		const char *who = ps_json_str(v, "user")
				      ? ps_json_str(v, "user")
				      : a->for_user;
		const char *type = ps_json_str(v, "type");
		const char *ca =
		    a->ca ? a->ca : ps_json_str(v, ws ? "issuer" : "jip_ca");
		const char *serial = ps_json_str(v, "serial_hex");
		struct ps_err e;
		int already = 0, r;
		json_t *out;

		ps_err_clear(&e);
		ps_progress_item(&pg, "%s %s", type ? type : "?",
				 serial ? serial : "?");
		if (!type || !serial || !ca)
			r = ps_err_set(&e, PS_EXIT_FAIL, "jip-unknown-ca",
				       "map the issuer in [jip-ca] of "
				       "psrenew.conf, or give --ca",
				       "certificate %s: %s",
				       serial ? serial : "?",
				       !ca ? "JIP's name for its CA is unknown"
					   : "no type or serial");
		else if (ws)
			r = ws_add(cli, w, who ? who : user, type, ca, serial,
				   &already, &e);
		else
			r = ps_jip_set_serial(j, who, type, ca, serial,
					      &already, &e);
		if (!r) {
			out =
			    result_record(v, who ? who : user, type, ca, serial,
					  already == 2 ? "skipped"
					  : already    ? "already-set"
						       : "set");
			if (a->verify && !strcmp(type, "commercial")) {
				int vr = verify_login(
				    cli, a, v, who ? who : user, pw, otp, &e);

				ps_jipconf_set_verified(out, vr, &e);
				if (vr)
					r = vr;
			}
			if (already != 2)
				remember(cli, out);
			ps_cli_emit(cli, out);
			json_decref(out);
			if (r) {
				json_t *er = ps_record_error(&e);

				ps_cli_emit(cli, er);
				json_decref(er);
			}
		} else {
			json_t *er = ps_record_error(&e);

			ps_json_set_str(er, "serial_hex", serial);
			ps_json_set_str(er, "user", who ? who : user);
			ps_cli_emit(cli, er);
			json_decref(er);
		}
		worst = ps_exit_worse(worst, r);
		ps_progress_step(&pg, "%s %s: %s", type ? type : "?",
				 serial ? serial : "?", r ? "failed" : "set");
	}
	ps_progress_end(&pg);
	rc = worst;
	ps_err_clear(err);
out:
	rc = ps_exit_worse(rc, upstream);
	ps_secret_free(pw);
	ps_secret_free(otp);
	ps_jip_close(j);
	ps_jipws_close(w);
	ps_jip_login_cert_free(&lc);
	json_decref(items);
	return rc;
}

static int start(struct ps_cli *cli, void *args, char **operands, int n,
		 struct ps_err *err)
{
	struct args *a = args;

	(void)operands;
	(void)n;
	if (!a->ca_bundle)
		a->ca_bundle = ps_config_get(&cli->cfg, "jip", "ca-bundle");
	return run(cli, args, err);
}

int main(int argc, char **argv)
{
	struct ps_cli cli = {
		.prog = "ps-jip-setserial",
		.synopsis = "[--login METHOD] --user NAME [--for USER] "
			    "[--cert FILE | --serial S --type T --ca CA] "
			    "[OPTION]...",
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
		PS_OPT_STRING("for", &a.for_user, "USER",
			      "set the serial on USER's account (local "
			      "administrator)"),
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
			      "--login cert: the CKA_ID of the certificate to "
			      "log in with"),
		PS_OPT_BOOL("verify-login", &a.verify,
			    "then log in with each new commercial certificate "
			    "to prove it"),
		PS_OPT_END(),
	};

	return ps_cli_main(&cli, argc, argv, opts, &a, 0, start);
}

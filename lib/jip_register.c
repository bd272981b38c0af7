/* psrenew: certificates' serial numbers registered in JIP (the guide's §5;
 * §6 login methods; the local administrator's bulk), over the web form or
 * the editing web service. */
#include <psrenew/jip_register.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <psrenew/certio.h>
#include <psrenew/inventory.h>
#include <psrenew/jip.h>
#include <psrenew/jip_list.h>
#include <psrenew/jip_login.h>
#include <psrenew/jipconf.h>
#include <psrenew/jipws.h>
#include <psrenew/record.h>
#include <psrenew/secret.h>
#include <psrenew/state.h>

/* A login and what it holds; freed by session_close. */
struct session {
	const struct ps_jip_reg *r;
	const struct ps_batch_hooks *h;
	const char *user;
	int ws;
	struct ps_jip_login_cert lc;
	struct ps_jip *j;
	struct ps_jipws *w;
	char *pw, *otp;
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
	json_object_set_new(r, "can_login", json_boolean(c.can_login));
	ps_json_set_str(r, "jip_ca",
			ps_cert_jip_ca(&c, cfg->jip_ca, cfg->n_jip_ca));
	ps_cert_free(&c);
	return r;
}

int ps_jip_item_serial(const char *serial, int type, const char *ca,
		       json_t *items, struct ps_err *err)
{
	char *hex;
	json_t *r;
	int rc = ps_serial_normalise(serial, &hex, err);

	if (rc)
		return rc;
	if (type < 0 || !ca) {
		free(hex);
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--serial needs --type and --ca");
	}
	r = json_object();
	ps_json_set_str(r, "kind", "cert");
	ps_json_set_str(r, "serial_hex", hex);
	ps_json_set_str(r, "type", ps_cert_type_name(type));
	json_array_append_new(items, r);
	free(hex);
	return 0;
}

int ps_jip_item_file(const char *path, const struct ps_config *cfg,
		     json_t *items, struct ps_err *err)
{
	FILE *f = fopen(path, "rb");
	unsigned char buf[65536];
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;
	STACK_OF(X509) *sk = NULL;
	int rc;

	if (f)
		fclose(f);
	if (!f)
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "cannot open %s", path);
	rc = ps_certs_parse(buf, n, &sk, err);
	if (!rc) {
		json_t *r = item_from_x509(sk_X509_value(sk, 0), cfg, err);

		rc = r ? 0 : err->status;
		if (r)
			json_array_append_new(items, r);
	}
	sk_X509_pop_free(sk, X509_free);
	return rc;
}

int ps_jip_items_on_tokens(struct ps_token **toks, size_t ntoks, const char *id,
			   const struct ps_config *cfg, json_t *items,
			   struct ps_err *err)
{
	struct ps_inventory inv;
	struct ps_selector sel = { id, NULL, -1 };
	size_t *idx, n;
	int rc = ps_inventory_load(toks, ntoks, time(NULL), &inv, err);

	if (!rc)
		rc = ps_inventory_select(&inv, &sel, &idx, &n, err);
	if (!rc) {
		if (n == 0)
			rc = ps_err_set(err, PS_EXIT_USAGE, "no-such-cert",
					NULL, "no certificate with id %s", id);
		for (size_t i = 0; i < n; i++)
			json_array_append_new(
			    items, ps_inventory_record(&inv, idx[i], cfg));
		free(idx);
		ps_inventory_free(&inv);
	}
	return rc;
}

/* A cert record of the input: a certificate to register. */
static int take_cert(struct ps_in_loop *l, json_t *rec)
{
	if (strcmp(ps_json_str(rec, "kind"), "cert"))
		return 0;
	return json_array_append(l->ctx, rec) == 0;
}

int ps_jip_items_read(FILE *in, json_t *items, ps_emit_fn emit, void *ctx,
		      int *upstream, struct ps_err *err)
{
	struct ps_in_loop loop = { take_cert, items, emit, ctx, 0 };
	int rc = ps_in_each(in, &loop, err);

	*upstream = loop.worst;
	return rc;
}

/* --login cert: the certificate id_hex, or the one ps_jip_login_cert_open
 * chooses, on the token of --module, --token and --pin. */
static int login_cert_open(const struct ps_jip_reg *r, const char *id_hex,
			   const json_t *items, struct ps_jip_login_cert *lc,
			   struct ps_err *err)
{
	memset(lc, 0, sizeof(*lc));
	lc->pool.module = r->pool.module;
	lc->pool.module_from = r->pool.module_from;
	lc->pool.sel = r->pool.sel;
	lc->pool.pin = r->pool.pin;
	return ps_jip_login_cert_open(lc, id_hex, items, err);
}

static int read_secret(const char *src, const char *prompt, char **out,
		       struct ps_err *err)
{
	return ps_secret_read(src ? src : "prompt", prompt, out, err);
}

/* STATE_DIR/jip/SERIAL.json: what ps-token-clean needs to know. */
static void remember(const struct session *s, const json_t *rec)
{
	struct ps_err e;
	char why[600];

	if (!ps_jipconf_keep(s->r->state_dir, s->r->cfg, rec, &e) ||
	    !s->h->warn)
		return;
	snprintf(why, sizeof(why), "the confirmation was not kept: %s", e.msg);
	s->h->warn(s->h->ctx, why);
}

/* The profile of the configuration, else the one beside the binary
 * (BINDIR/../share/psrenew: a build tree, or an installation moved
 * elsewhere), else the installed one. */
static const char *default_profile(const struct ps_jip_reg *r)
{
	static const char rel[] = "/../share/psrenew/jip-czechpoint.json";
	static char beside[4096];
	const char *p = ps_config_get(r->cfg, "jip", "profile");
	ssize_t n;
	char *slash;

	if (p)
		return p;
	n = readlink("/proc/self/exe", beside, sizeof(beside) - sizeof(rel));
	slash = n > 0 ? memrchr(beside, '/', (size_t)n) : NULL;
	if (slash) {
		memcpy(slash, rel, sizeof(rel));
		if (access(beside, R_OK) == 0)
			return beside;
	}
	return PSRENEW_DATADIR "/jip-czechpoint.json";
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

/* An option, else its key in [jip]. */
static const char *opt(const struct ps_jip_reg *r, const char *v,
		       const char *key)
{
	return v ? v : ps_config_get(r->cfg, "jip", key);
}

/* [jip] timeout: seconds a request to the portal may take (0: http.c's
 * default, 120). */
static long jip_timeout(const struct ps_jip_reg *r)
{
	const char *v = ps_config_get(r->cfg, "jip", "timeout");
	long t = v ? strtol(v, NULL, 10) : 0;

	return t > 0 ? t : 0;
}

static int verify_login(const struct session *s, const json_t *in,
			const char *user, struct ps_err *err)
{
	const struct ps_jip_reg *r = s->r;
	struct ps_jip_login_cert lc = { .pool = r->pool };
	struct ps_http_opts ho = { .ca_bundle = r->ca_bundle,
				   .timeout = jip_timeout(r) };
	struct ps_jip *j = NULL;
	/* The new certificate's own key logs in (never another one). */
	int rc = ps_jip_login_cert_own(&lc, in, r->cert_file, err);

	if (!rc) {
		ho.client_cert = lc.x;
		ho.client_key = lc.key;
		rc = ps_jip_open(r->profile ? r->profile : default_profile(r),
				 r->url ? r->url
					: ps_config_get(r->cfg, "jip", "url"),
				 &ho, &j, err);
	}
	if (!rc)
		rc = ps_jip_login(j, "cert", user, s->pw, NULL, err);
	ps_jip_close(j);
	ps_jip_login_cert_free(&lc);
	return rc;
}

/* [jip] backend = ws: the editing web service (jipws.h, psrenew.conf(5))
 * instead of the web form; WS 1.0 logs in with user and password, WS 1.1
 * with a certificate whose key is on the token. */
static int ws_open(struct session *s, const json_t *items, struct ps_err *err)
{
	const struct ps_jip_reg *r = s->r;
	const char *ver = opt(r, r->ws_version, "ws-version");
	const char *sys = ps_config_get(r->cfg, "jip", "ws-system");
	const char *num = ps_config_get(r->cfg, "jip", "ws-serial");
	const char *cert = opt(r, r->client_cert, "ws-client-cert");
	const char *key = opt(r, r->client_key, "ws-client-key");
	struct ps_jipws_opts o = {
		.url = r->ws_url ? r->ws_url : opt(r, r->url, "ws-url"),
		.version = !ver || !strcmp(ver, "1.0") ? 10
			   : !strcmp(ver, "1.1")       ? 11
						       : 0,
		.caais = !sys ? -1 : !strcmp(sys, "caais"),
		.user = s->user,
		.serial_dec = num && !strcmp(num, "dec"),
		.http = { .ca_bundle = r->ca_bundle,
			  .timeout = jip_timeout(r) },
	};
	int rc = 0;

	if (o.version == 11 && (cert || key))
		rc = ps_jip_login_cert_files(
		    &s->lc, cert, key,
		    opt(r, r->client_key_pw, "ws-client-key-password"), err);
	else if (o.version == 11)
		rc = login_cert_open(r, r->login_cert, items, &s->lc, err);
	else if (o.version == 10 && s->user)
		rc = read_secret(r->password, "JIP password: ", &s->pw, err);
	o.http.client_cert = s->lc.x;
	o.http.client_key = s->lc.key;
	o.password = s->pw;
	return rc ? rc : ps_jipws_open(&o, &s->w, err);
}

/* The issuer of the certificate v superseded: the renewal's request in
 * the state store knows it; else the new one's (the same CA). */
static char *old_issuer(const struct session *s, const json_t *v)
{
	const char *id = ps_json_str(v, "request_id");
	struct ps_state st;
	struct ps_err e;
	json_t *q = NULL;
	char *dn = NULL;

	if (id && ps_state_valid_id(id) &&
	    !ps_state_open(s->r->state_dir, s->r->cfg, PS_STATE_READ_ONLY, &st,
			   &e)) {
		if (!ps_state_load(&st, id, &q, &e) &&
		    ps_json_str(q, "old_issuer"))
			dn = strdup(ps_json_str(q, "old_issuer"));
		json_decref(q);
		ps_state_close(&st);
	}
	if (!dn && ps_json_str(v, "issuer"))
		dn = strdup(ps_json_str(v, "issuer"));
	return dn;
}

/* Registers one certificate over the web service: *already 1 when it was
 * there, 2 when skipped (a qualified certificate for CAAIS); *removed: the
 * superseded certificate's entries that went (--remove-superseded). */
static int ws_add(const struct session *s, const json_t *v, const char *who,
		  const char *type, const char *issuer, const char *serial,
		  int *already, int *removed, struct ps_err *err)
{
	enum ps_jipws_result res = PS_JIPWS_SET;
	struct ps_jipws_item it = { type, issuer, serial, NULL, NULL };
	char *drop_issuer = NULL;
	char why[512];
	int rc;

	if (s->r->remove_superseded && ps_json_str(v, "replaces_serial_hex")) {
		it.drop_hex = ps_json_str(v, "replaces_serial_hex");
		it.drop_issuer = drop_issuer = old_issuer(s, v);
	}
	rc = ps_jipws_add(s->w, who, &it, &res, removed, err);
	free(drop_issuer);
	*already = res == PS_JIPWS_ALREADY   ? 1
		   : res == PS_JIPWS_SKIPPED ? 2
					     : 0;
	if (!rc && *already == 2 && s->h->warn) {
		snprintf(why, sizeof(why),
			 "certificate %s of %s skipped: CAAIS keeps only "
			 "commercial certificates for login",
			 serial, who);
		s->h->warn(s->h->ctx, why);
	}
	return rc;
}

/* The options checked, the login done (web form or web service). */
static int session_open(struct session *s, const json_t *items,
			struct ps_err *err)
{
	const struct ps_jip_reg *r = s->r;
	const char *method = r->login ? r->login : "password";
	const char *backend = opt(r, r->backend, "backend");
	struct ps_http_opts ho = { .ca_bundle = r->ca_bundle,
				   .timeout = jip_timeout(r) };
	int ws = backend && !strcmp(backend, "ws"), rc = 0;

	s->ws = ws;
	if (backend && !ws && strcmp(backend, "html"))
		rc = ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				"the JIP backend is html or ws, not %.40s",
				backend);
	if (!rc && !ws && r->remove_superseded)
		rc = ps_err_set(err, PS_EXIT_USAGE, "usage",
				"use the editing web service (--backend ws)",
				"--remove-superseded: not with the web form");
	if (!rc && ws && r->verify)
		rc = ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				"--verify-login logs in to the web form: not "
				"with [jip] backend = ws");
	if (!rc && ws)
		rc = ws_open(s, items, err);
	if (!rc && !ws && strcmp(method, "nia") && !s->user)
		rc = ps_err_set(err, PS_EXIT_USAGE, "usage",
				"or user = NAME in [jip] of psrenew.conf",
				"give the JIP user name with --user");
	if (!rc && !ws && !strcmp(method, "cert")) {
		rc = login_cert_open(r, r->login_cert, items, &s->lc, err);
		ho.client_cert = s->lc.x;
		ho.client_key = s->lc.key;
	}
	if (!rc && !ws)
		rc = ps_jip_open(r->profile ? r->profile : default_profile(r),
				 r->url ? r->url
					: ps_config_get(r->cfg, "jip", "url"),
				 &ho, &s->j, err);
	if (!rc && !ws && strcmp(method, "nia"))
		rc = read_secret(r->password, "JIP password: ", &s->pw, err);
	if (!rc && !ws && !strcmp(method, "otp"))
		rc = read_secret(r->otp, "JIP one-time code: ", &s->otp, err);
	if (!rc && !ws)
		rc = ps_jip_login(s->j, method, s->user, s->pw, s->otp, err);
	return rc;
}

static void session_close(struct session *s)
{
	ps_secret_free(s->pw);
	ps_secret_free(s->otp);
	ps_jip_close(s->j);
	ps_jipws_close(s->w);
	ps_jip_login_cert_free(&s->lc);
}

/* An error record; item: with the serial and the user it was about. */
static void emit_error(const struct ps_batch_hooks *h, const struct ps_err *e,
		       int item, const char *serial, const char *who)
{
	json_t *er = ps_record_error(e);

	if (item) {
		ps_json_set_str(er, "serial_hex", serial);
		ps_json_set_str(er, "user", who);
	}
	h->emit(h->ctx, er);
	json_decref(er);
}

/* A serial set: its jip record (kept unless skipped; removed: the
 * superseded certificate's entries went too), checked with a login when
 * --verify-login asks. */
static int registered(const struct session *s, const json_t *v, const char *who,
		      const char *type, const char *ca, const char *serial,
		      int already, int removed, struct ps_err *e)
{
	json_t *out = result_record(v, who, type, ca, serial,
				    already == 2 ? "skipped"
				    : already	 ? "already-set"
						 : "set");
	int r = 0;

	if (removed > 0)
		ps_json_set_str(out, "removed_serial_hex",
				ps_json_str(v, "replaces_serial_hex"));

	if (s->r->verify && !strcmp(type, "commercial")) {
		r = verify_login(s, v, who, e);
		ps_jipconf_set_verified(out, r, e);
	}
	if (already != 2)
		remember(s, out);
	s->h->emit(s->h->ctx, out);
	json_decref(out);
	if (r)
		emit_error(s->h, e, 0, NULL, NULL);
	return r;
}

int ps_jip_login_only_refuses(const json_t *item, int login_only,
			      struct ps_err *err)
{
	const char *type = ps_json_str(item, "type");
	const char *serial = ps_json_str(item, "serial_hex");

	if (!login_only || !type || strcmp(type, "commercial") ||
	    !json_is_false(json_object_get(item, "can_login")))
		return 0;
	return ps_err_set(
	    err, PS_EXIT_REFUSED, "cannot-login",
	    "register the holder's certificate that has clientAuth (a "
	    "commercial PostSignum certificate), or register this one in "
	    "JIP, which takes it",
	    "certificate %s cannot log in (its extended key usage has no "
	    "clientAuth) and CAAIS takes only certificates that log in: not "
	    "registered",
	    serial ? serial : "?");
}

/* CAAIS ([jip] ws-system = caais, a URL without the trailing slash, or WS
 * 1.1, which only CAAIS speaks) keeps only certificates that log in. */
static int login_only(const struct session *s)
{
	const char *ver = ps_config_get(s->r->cfg, "jip", "ws-version");

	return s->ws &&
	       (ps_jipws_is_caais(s->w) || (ver && !strcmp(ver, "1.1")));
}

/* One item: its serial set in JIP; the progress line says how it went. */
static int register_one(const struct session *s, const json_t *v)
{
	const struct ps_jip_reg *r = s->r;
	const char *who =
	    ps_json_str(v, "user") ? ps_json_str(v, "user") : r->for_user;
	const char *type = ps_json_str(v, "type");
	const char *ca =
	    r->ca ? r->ca : ps_json_str(v, s->ws ? "issuer" : "jip_ca");
	const char *serial = ps_json_str(v, "serial_hex");
	const char *as = who ? who : s->user;
	struct ps_err e;
	int already = 0, removed = 0, rc;

	ps_err_clear(&e);
	if (!type || !serial || !ca)
		rc = ps_err_set(&e, PS_EXIT_FAIL, "jip-unknown-ca",
				"map the issuer in [jip-ca] of "
				"psrenew.conf, or give --ca",
				"certificate %s: %s", serial ? serial : "?",
				!ca ? "JIP's name for its CA is unknown"
				    : "no type or serial");
	else if (ps_jip_login_only_refuses(v, login_only(s), &e))
		rc = e.status;
	else if (s->ws)
		rc = ws_add(s, v, as, type, ca, serial, &already, &removed, &e);
	else
		rc = ps_jip_set_serial(s->j, who, type, ca, serial, &already,
				       &e);
	if (!rc)
		rc = registered(s, v, as, type, ca, serial, already, removed,
				&e);
	else
		emit_error(s->h, &e, 1, serial, as);
	return rc;
}

/* What the progress line shows of an item: "TYPE SERIAL: RESULT". */
static json_t *step_record(const json_t *v, int rc)
{
	const char *type = ps_json_str(v, "type");
	const char *serial = ps_json_str(v, "serial_hex");
	json_t *s = json_object();

	ps_json_set_str(s, "kind", "jip");
	ps_json_set_str(s, "type", type ? type : "?");
	ps_json_set_str(s, "serial_hex", serial ? serial : "?");
	ps_json_set_str(s, "result", rc ? "failed" : "set");
	return s;
}

int ps_jip_register(const struct ps_jip_reg *r, const json_t *items,
		    const struct ps_batch_hooks *h, struct ps_err *err)
{
	struct session s = { .r = r, .h = h };
	int rc, worst = 0;
	size_t i;
	json_t *v;

	s.user = r->user ? r->user : ps_config_get(r->cfg, "jip", "user");
	rc = session_open(&s, items, err);
	if (rc) {
		session_close(&s);
		return rc;
	}
	if (h->start)
		h->start(h->ctx, json_array_size(items));
	json_array_foreach (items, i, v) {
		const char *type = ps_json_str(v, "type");
		const char *serial = ps_json_str(v, "serial_hex");
		char what[300];
		json_t *step;

		snprintf(what, sizeof(what), "%s %s", type ? type : "?",
			 serial ? serial : "?");
		if (h->item)
			h->item(h->ctx, what);
		rc = register_one(&s, v);
		worst = ps_exit_worse(worst, rc);
		step = step_record(v, rc);
		if (h->step)
			h->step(h->ctx, step);
		json_decref(step);
	}
	if (h->end)
		h->end(h->ctx);
	ps_err_clear(err);
	session_close(&s);
	return worst;
}

/* What the progress line shows of a user listed. */
static void list_step(const struct ps_batch_hooks *h, const char *login, int rc)
{
	json_t *st = json_object();

	ps_json_set_str(st, "kind", "jip");
	ps_json_set_str(st, "user", login);
	ps_json_set_str(st, "result", rc ? "failed" : "listed");
	if (h->step)
		h->step(h->ctx, st);
	json_decref(st);
}

/* --list: what JIP has for one user, each entry marked. */
static int list_one(const struct session *s, const struct ps_jip_marks *m,
		    const char *login, struct ps_err *err)
{
	struct ps_jipws_cert *c = NULL;
	struct ps_jip_entry *e = NULL;
	size_t n = 0;
	int rc = s->ws ? ps_jipws_get_user(s->w, login, &c, &n, NULL, err)
		       : ps_jip_list(s->j, login, &e, &n, err);

	for (size_t i = 0; !rc && i < n; i++) {
		json_t *rec =
		    s->ws ? ps_jip_entry_record(m, login, c[i].type,
						c[i].number, c[i].issuer, 1)
			  : ps_jip_entry_record(m, login, e[i].type,
						e[i].serial, e[i].ca, 0);

		s->h->emit(s->h->ctx, rec);
		json_decref(rec);
	}
	if (s->ws)
		ps_jipws_certs_free(c, n);
	else
		ps_jip_entries_free(e, n);
	return rc;
}

int ps_jip_list_users(const struct ps_jip_reg *r, const char *const *logins,
		      size_t n, struct ps_token **toks, size_t ntoks,
		      const struct ps_batch_hooks *h, struct ps_err *err)
{
	struct session s = { .r = r, .h = h };
	struct ps_jip_marks *m = NULL;
	int rc, worst = 0;

	s.user = opt(r, r->user, "user");
	rc = ps_jip_marks_load(toks, ntoks, r->state_dir, r->cfg, &m, err);
	if (!rc)
		rc = session_open(&s, NULL, err);
	if (!rc && h->start)
		h->start(h->ctx, n);
	for (size_t i = 0; !rc && i < n; i++) {
		struct ps_err e;
		int one;

		ps_err_clear(&e);
		if (h->item)
			h->item(h->ctx, logins[i]);
		one = list_one(&s, m, logins[i], &e);
		if (one)
			emit_error(h, &e, 1, NULL, logins[i]);
		worst = ps_exit_worse(worst, one);
		list_step(h, logins[i], one);
	}
	if (!rc && h->end)
		h->end(h->ctx);
	ps_jip_marks_free(m);
	session_close(&s);
	return rc ? rc : worst;
}

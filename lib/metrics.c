/* psrenew: Prometheus metrics (text exposition format 0.0.4) of the
 * certificates, requests and tokens ps-status sees, and of the run. */
#include <psrenew/metrics.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <psrenew/codec.h>
#include <psrenew/jipconf.h>
#include <psrenew/keypair.h>
#include <psrenew/record.h>
#include <psrenew/request.h>
#include <psrenew/version.h>

/* A certificate of the inventory, as the metrics show it. */
struct mcert {
	char *labels, *info;
	int skip;	  /* another object has the same labels: shown once */
	int renewing;	  /* an unfinished request renews it */
	int confirmed;	  /* JIP confirmed it (a confirmation in the store) */
	double installed; /* when psrenew installed it; 0: it did not */
};

struct mtok {
	char *labels, *info;
};

/* A request of the store. */
struct mreq {
	json_t *rec;
	char *labels; /* NULL: finished, no series of its own */
	char *token_serial;
};

static const char *const unfinished[] = { PS_REQ_UNSUBMITTED, PS_REQ_PENDING,
					  PS_REQ_ISSUED, NULL };
static const char *const all_states[] = { PS_REQ_UNSUBMITTED, PS_REQ_PENDING,
					  PS_REQ_ISSUED,      PS_REQ_INSTALLED,
					  PS_REQ_REJECTED,    NULL };

struct ctx {
	const struct ps_metrics_in *in;
	struct mcert *cert;
	struct mtok *tok;
	struct mreq *req;
	size_t nreq, damaged;
	int nomem;
	int rc;		   /* the first unreadable file of the store */
	struct ps_err err; /* and why */
	FILE *f;
};

/* ------------------------------------------------------------ labels */

/* The length of the valid UTF-8 sequence at s (1 to 4), or 0. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] < 0x80		   ? 1
		   : (s[0] & 0xE0) == 0xC0 ? 2
		   : (s[0] & 0xF0) == 0xE0 ? 3
		   : (s[0] & 0xF8) == 0xF0 ? 4
					   : 0;

	if (n == 2 && s[0] < 0xC2)
		return 0; /* overlong */
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	if (n == 3 &&
	    ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0)))
		return 0; /* overlong, or a surrogate */
	if (n == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || s[0] > 0xF4 ||
		       (s[0] == 0xF4 && s[1] >= 0x90)))
		return 0;
	return n;
}

/* s as the exposition format escapes it: a backslash, a newline (and in
 * a label value a double quote) escaped; bytes that are not UTF-8, which
 * Prometheus refuses, written as '?'. */
static void put_escaped(FILE *f, const char *s, int quote)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	while (*p) {
		size_t n = utf8_len(p);

		if (!n) {
			fputc('?', f);
			p++;
		} else if (*p == '\\') {
			fputs("\\\\", f);
		} else if (*p == '\n') {
			fputs("\\n", f);
		} else if (*p == '"' && quote) {
			fputs("\\\"", f);
		} else {
			fwrite(p, 1, n, f);
		}
		p += n;
	}
}

static void label(FILE *m, const char *name, const char *value)
{
	if (ftell(m) > 0)
		fputc(',', m);
	fprintf(m, "%s=\"", name);
	put_escaped(m, value, 1);
	fputc('"', m);
}

/* A label string being built: open_memstream's. */
struct lbuf {
	char *s;
	size_t len;
	FILE *m;
};

static FILE *lb_open(struct lbuf *b)
{
	b->s = NULL;
	b->len = 0;
	b->m = open_memstream(&b->s, &b->len);
	return b->m;
}

/* The labels (NULL when out of memory). */
static char *lb_close(struct lbuf *b)
{
	if (!b->m || fclose(b->m)) {
		free(b->s);
		return NULL;
	}
	return b->s;
}

static int tok_labels(const struct ps_token *t, struct mtok *mt)
{
	struct lbuf b;

	if (lb_open(&b)) {
		label(b.m, "token", t->label);
		label(b.m, "token_serial", t->serial);
	}
	mt->labels = lb_close(&b);
	if (lb_open(&b)) {
		label(b.m, "token", t->label);
		label(b.m, "token_serial", t->serial);
		label(b.m, "manufacturer", t->manufacturer);
		label(b.m, "model", t->model);
	}
	mt->info = lb_close(&b);
	return mt->labels && mt->info ? 0 : -1;
}

/* The labels every series of a certificate has. */
static void cert_base(FILE *m, const struct ps_invcert *ic,
		      const struct ps_config *cfg)
{
	const struct ps_cert *c = &ic->cert;

	label(m, "token", ic->tok->label);
	label(m, "token_serial", ic->tok->serial);
	label(m, "type", ps_cert_type_name(c->type));
	label(m, "qc_type", ps_cert_qc_type_name(c->qc_type));
	label(m, "serial_hex", c->serial_hex);
	label(m, "holder", c->cn);
	label(m, "jip_ca",
	      ps_cert_jip_ca(c, cfg ? cfg->jip_ca : NULL,
			     cfg ? cfg->n_jip_ca : 0));
}

static int cert_labels(const struct ps_inventory *inv, size_t i,
		       const struct ps_config *cfg, struct mcert *mc)
{
	const struct ps_invcert *ic = &inv->c[i];
	char *id = ps_hex(ic->obj.id, ic->obj.id_len);
	struct lbuf b;

	if (lb_open(&b))
		cert_base(b.m, ic, cfg);
	mc->labels = lb_close(&b);
	if (id && lb_open(&b)) {
		cert_base(b.m, ic, cfg);
		label(b.m, "id", id);
		label(b.m, "state", ps_inventory_state(inv, i));
		label(b.m, "key_type", ic->cert.key_type);
	}
	mc->info = id ? lb_close(&b) : NULL;
	free(id);
	return mc->labels && mc->info ? 0 : -1;
}

/* Its key is on the token: the private key when logged in, else the
 * public key object. */
static int key_here(const struct ps_invcert *ic)
{
	return ic->has_key >= 0 ? ic->has_key : ic->key_on_token;
}

/* Objects with the same labels (one certificate written twice): one
 * series, the one with its key, else the first. */
static void mark_twins(const struct ps_inventory *inv, struct mcert *mc)
{
	for (size_t i = 0; i < inv->n; i++)
		for (size_t j = 0; j < inv->n && !mc[i].skip; j++) {
			int ki = key_here(&inv->c[i]),
			    kj = key_here(&inv->c[j]);

			if (j != i && !mc[j].skip &&
			    !strcmp(mc[i].labels, mc[j].labels) &&
			    (kj > ki || (kj == ki && j < i)))
				mc[i].skip = 1;
		}
}

/* ----------------------------------------------------------- requests */

static int one_of(const char *s, const char *const *set)
{
	for (; s && *set; set++)
		if (!strcmp(s, *set))
			return 1;
	return 0;
}

static char *uri_serial(const char *uri)
{
	struct ps_uri u;
	char *s = NULL;

	if (uri && !ps_uri_parse(uri, &u, NULL)) {
		s = u.serial ? strdup(u.serial) : NULL;
		ps_uri_free(&u);
	}
	return s;
}

static char *req_labels(const json_t *r, const char *token_serial)
{
	struct lbuf b;

	if (lb_open(&b)) {
		label(b.m, "request_id", ps_json_str(r, "request_id"));
		label(b.m, "token", ps_json_str(r, "token_label"));
		label(b.m, "token_serial", token_serial);
		label(b.m, "type", ps_json_str(r, "type"));
		label(b.m, "serial_hex", ps_json_str(r, "old_serial_hex"));
		label(b.m, "holder", ps_json_str(r, "cn"));
		label(b.m, "jip_ca", ps_json_str(r, "jip_ca"));
		label(b.m, "ca", ps_json_str(r, "ca"));
	}
	return lb_close(&b);
}

static int req_one(void *v, const struct ps_state_file *f)
{
	struct ctx *c = v;
	struct mreq *grown, *q;

	if (!f->rec) {
		if (!c->damaged++) {
			c->err = f->err;
			c->rc = f->err.status ? f->err.status : PS_EXIT_FAIL;
		}
		return 0;
	}
	grown = realloc(c->req, (c->nreq + 1) * sizeof(*grown));
	if (!grown) {
		c->nomem = 1;
		return 1;
	}
	c->req = grown;
	q = &c->req[c->nreq++];
	q->rec = json_incref(f->rec);
	q->token_serial = uri_serial(ps_json_str(f->rec, "token"));
	q->labels = NULL;
	if (one_of(ps_json_str(f->rec, "state"), unfinished))
		q->labels = req_labels(f->rec, q->token_serial);
	if (one_of(ps_json_str(f->rec, "state"), unfinished) && !q->labels) {
		c->nomem = 1;
		return 1;
	}
	return 0;
}

static int same(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

/* What the store says of certificate ic: a request renewing it, the
 * request that installed it, a JIP confirmation. */
static void cert_store(const struct ctx *c, const struct ps_invcert *ic,
		       struct mcert *mc)
{
	json_t *conf = NULL;

	for (size_t k = 0; k < c->nreq; k++) {
		const json_t *r = c->req[k].rec;
		const char *old = ps_json_str(r, "old_sha256");
		double at;

		if (!same(c->req[k].token_serial, ic->tok->serial))
			continue;
		if (c->req[k].labels &&
		    (old ? same(old, ic->cert.sha256)
			 : same(ps_json_str(r, "old_serial_hex"),
				ic->cert.serial_hex)))
			mc->renewing = 1;
		if (same(ps_json_str(r, "state"), PS_REQ_INSTALLED) &&
		    same(ps_json_str(r, "new_serial_hex"),
			 ic->cert.serial_hex)) {
			at = (double)ps_time_parse(
			    ps_json_str(r, "installed_at")
				? ps_json_str(r, "installed_at")
				: "");
			if (at > 0 && (!mc->installed || at < mc->installed))
				mc->installed = at;
		}
	}
	/* A confirmation that cannot be read confirms nothing. */
	if (c->in->st) {
		ps_jipconf_load(c->in->st, ic->cert.serial_hex, ic->cert.type,
				&conf, NULL);
		mc->confirmed = conf != NULL;
		json_decref(conf);
	}
}

/* ------------------------------------------------------------- values */

enum scope { S_CERT, S_REQ, S_TOK, S_RUN };

/* A value of object i (for a state set, of its state st): 1 and *v, or 0
 * when it has none. */
typedef int (*value_fn)(const struct ctx *c, size_t i, const char *st,
			double *v);

static const struct ps_invcert *ic_of(const struct ctx *c, size_t i)
{
	return &c->in->inv->c[i];
}

static int v_one(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)c;
	(void)i;
	(void)st;
	*v = 1;
	return 1;
}

static int c_not_before(const struct ctx *c, size_t i, const char *st,
			double *v)
{
	(void)st;
	*v = (double)ic_of(c, i)->cert.not_before;
	return 1;
}

static int c_not_after(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)st;
	*v = (double)ic_of(c, i)->cert.not_after;
	return 1;
}

static int c_key(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)st;
	*v = key_here(ic_of(c, i)) > 0;
	return 1;
}

static int c_successor(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)st;
	*v = ic_of(c, i)->superseded_by >= 0;
	return 1;
}

static int c_renewing(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)st;
	*v = c->cert[i].renewing;
	return 1;
}

static int c_confirmed(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)st;
	*v = c->cert[i].confirmed;
	return 1;
}

static int c_installed(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)st;
	*v = c->cert[i].installed;
	return *v > 0;
}

/* The time of field of request i, 1 when it has one. */
static int r_time(const struct ctx *c, size_t i, const char *field, double *v)
{
	const char *s = ps_json_str(c->req[i].rec, field);
	time_t t = s ? ps_time_parse(s) : -1;

	*v = (double)t;
	return t >= 0;
}

static int r_created(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)st;
	return r_time(c, i, "created_at", v);
}

static int r_age(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)st;
	if (!r_time(c, i, "created_at", v))
		return 0;
	*v = *v > (double)c->in->now ? 0 : (double)c->in->now - *v;
	return 1;
}

static int r_next_poll(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)st;
	return r_time(c, i, "next_poll_at", v);
}

static int r_state(const struct ctx *c, size_t i, const char *st, double *v)
{
	*v = same(ps_json_str(c->req[i].rec, "state"), st);
	return 1;
}

static int t_logged_in(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)st;
	*v = c->in->toks[i]->logged_in != 0;
	return 1;
}

static int t_free(const struct ctx *c, size_t i, const char *st, double *v)
{
	unsigned long b;

	(void)st;
	if (!ps_token_free_memory(c->in->toks[i], &b))
		return 0;
	*v = (double)b;
	return 1;
}

static int t_room(const struct ctx *c, size_t i, const char *st, double *v)
{
	long n = ps_token_room(c->in->toks[i]);

	(void)st;
	*v = (double)n;
	return n >= 0;
}

static int run_time(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)i;
	(void)st;
	*v = (double)c->in->now;
	return 1;
}

static int run_success(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)i;
	(void)st;
	*v = c->in->success && !c->rc;
	return 1;
}

static int run_requests(const struct ctx *c, size_t i, const char *st,
			double *v)
{
	(void)i;
	*v = 0;
	for (size_t k = 0; k < c->nreq; k++)
		*v += same(ps_json_str(c->req[k].rec, "state"), st);
	return 1;
}

static int run_damaged(const struct ctx *c, size_t i, const char *st, double *v)
{
	(void)i;
	(void)st;
	*v = (double)c->damaged;
	return 1;
}

/* ----------------------------------------------------------- families */

struct family {
	const char *name, *type, *help;
	enum scope scope;
	int info;		   /* the info labels */
	const char *const *states; /* a state set: one series per state */
	value_fn val;
};

/* psrenew(7) and ps-status(1) list them: names are an API. */
static const struct family families[] = {
	{ "psrenew_build_info", "gauge",
	  "The psrenew version that wrote these metrics (value 1).", S_RUN, 1,
	  NULL, v_one },
	{ "psrenew_run_timestamp_seconds", "gauge",
	  "When ps-status gathered these metrics (Unix time).", S_RUN, 0, NULL,
	  run_time },
	{ "psrenew_run_success", "gauge",
	  "1 when the run read every token and the whole state store, 0 when "
	  "something failed (see the log of the run).",
	  S_RUN, 0, NULL, run_success },
	{ "psrenew_requests", "gauge",
	  "Renewal requests in the state store, by state.", S_RUN, 0,
	  all_states, run_requests },
	{ "psrenew_state_damaged_files", "gauge",
	  "Files of the state store that cannot be read (ps-fetch --pending "
	  "names them).",
	  S_RUN, 0, NULL, run_damaged },
	{ "psrenew_token_info", "gauge",
	  "A token ps-status sees (value 1): its manufacturer and model.",
	  S_TOK, 1, NULL, v_one },
	{ "psrenew_token_logged_in", "gauge",
	  "1 when the run logged in to the token (--pin), 0 when it read only "
	  "its public objects.",
	  S_TOK, 0, NULL, t_logged_in },
	{ "psrenew_token_free_memory_bytes", "gauge",
	  "Free memory the token reports (the smaller of public and private).",
	  S_TOK, 0, NULL, t_free },
	{ "psrenew_token_room_renewals", "gauge",
	  "How many renewals (a key pair and a certificate) fit in the token's "
	  "free memory.",
	  S_TOK, 0, NULL, t_room },
	{ "psrenew_certificate_info", "gauge",
	  "A certificate on a token (value 1): its CKA_ID, state and key type.",
	  S_CERT, 1, NULL, v_one },
	{ "psrenew_certificate_not_before_timestamp_seconds", "gauge",
	  "Start of the certificate's validity (Unix time).", S_CERT, 0, NULL,
	  c_not_before },
	{ "psrenew_certificate_not_after_timestamp_seconds", "gauge",
	  "End of the certificate's validity (Unix time).", S_CERT, 0, NULL,
	  c_not_after },
	{ "psrenew_certificate_key_on_token", "gauge",
	  "1 when the certificate's key is on the token (without a login: its "
	  "public key object), else 0.",
	  S_CERT, 0, NULL, c_key },
	{ "psrenew_certificate_successor_installed", "gauge",
	  "1 when a newer certificate of the same holder and type is on the "
	  "token with its key (the certificate is superseded), else 0.",
	  S_CERT, 0, NULL, c_successor },
	{ "psrenew_certificate_renewal_pending", "gauge",
	  "1 when an unfinished request of the state store renews the "
	  "certificate, else 0.",
	  S_CERT, 0, NULL, c_renewing },
	{ "psrenew_certificate_installed_timestamp_seconds", "gauge",
	  "When psrenew installed the certificate (Unix time); only "
	  "certificates a request of the state store installed.",
	  S_CERT, 0, NULL, c_installed },
	{ "psrenew_certificate_jip_confirmed", "gauge",
	  "1 when ps-jip-setserial kept JIP's confirmation of the "
	  "certificate's serial number, else 0.",
	  S_CERT, 0, NULL, c_confirmed },
	{ "psrenew_request_created_timestamp_seconds", "gauge",
	  "When the unfinished renewal request was made (Unix time).", S_REQ, 0,
	  NULL, r_created },
	{ "psrenew_request_age_seconds", "gauge",
	  "Age of the unfinished renewal request when the metrics were "
	  "gathered.",
	  S_REQ, 0, NULL, r_age },
	{ "psrenew_request_state", "gauge",
	  "The state of the unfinished renewal request: 1 for its state, 0 for "
	  "the others.",
	  S_REQ, 0, unfinished, r_state },
	{ "psrenew_request_next_poll_timestamp_seconds", "gauge",
	  "When ps-fetch --pending asks the CA about the request next (Unix "
	  "time).",
	  S_REQ, 0, NULL, r_next_poll },
};

static size_t scope_n(const struct ctx *c, enum scope s)
{
	switch (s) {
	case S_CERT: return c->in->inv ? c->in->inv->n : 0;
	case S_REQ: return c->nreq;
	case S_TOK: return c->in->ntoks;
	default: return 1;
	}
}

/* Labels of object i of fm's scope; NULL: it has no series. */
static const char *labels_of(const struct ctx *c, const struct family *fm,
			     size_t i)
{
	switch (fm->scope) {
	case S_CERT:
		if (c->cert[i].skip)
			return NULL;
		return fm->info ? c->cert[i].info : c->cert[i].labels;
	case S_REQ: return c->req[i].labels;
	case S_TOK: return fm->info ? c->tok[i].info : c->tok[i].labels;
	default: return fm->info ? "version=\"" PSRENEW_VERSION "\"" : "";
	}
}

/* Writes fm's samples (do_write 0: only counts them). */
static size_t samples(const struct ctx *c, const struct family *fm,
		      int do_write)
{
	static const char *const none[] = { "", NULL };
	size_t n = scope_n(c, fm->scope), k = 0;

	for (size_t i = 0; i < n; i++) {
		const char *lab = labels_of(c, fm, i);

		for (const char *const *s = fm->states ? fm->states : none;
		     lab && *s; s++) {
			double v;

			if (!fm->val(c, i, fm->states ? *s : NULL, &v))
				continue;
			k++;
			if (!do_write)
				continue;
			fputs(fm->name, c->f);
			if (*lab || fm->states)
				fprintf(c->f, "{%s", lab);
			if (fm->states)
				fprintf(c->f, "%sstate=\"%s\"", *lab ? "," : "",
					*s);
			fprintf(c->f, "%s %.17g\n",
				*lab || fm->states ? "}" : "", v);
		}
	}
	return k;
}

static void family_write(const struct ctx *c, const struct family *fm)
{
	if (!samples(c, fm, 0))
		return; /* no HELP and TYPE without a sample */
	fprintf(c->f, "# HELP %s ", fm->name);
	put_escaped(c->f, fm->help, 0);
	fprintf(c->f, "\n# TYPE %s %s\n", fm->name, fm->type);
	samples(c, fm, 1);
}

/* ---------------------------------------------------------------- run */

static int gather(struct ctx *c, struct ps_err *err)
{
	const struct ps_metrics_in *in = c->in;
	size_t nc = in->inv ? in->inv->n : 0;

	c->cert = calloc(nc ? nc : 1, sizeof(*c->cert));
	c->tok = calloc(in->ntoks ? in->ntoks : 1, sizeof(*c->tok));
	if (!c->cert || !c->tok)
		return ps_err_nomem(err);
	for (size_t t = 0; t < in->ntoks; t++)
		if (tok_labels(in->toks[t], &c->tok[t]))
			return ps_err_nomem(err);
	for (size_t i = 0; i < nc; i++)
		if (cert_labels(in->inv, i, in->cfg, &c->cert[i]))
			return ps_err_nomem(err);
	if (in->st) {
		struct ps_err e;
		int rc;

		ps_err_clear(&e);
		rc = ps_state_each(in->st, NULL, NULL, req_one, c, &e);
		if (c->nomem)
			return ps_err_nomem(err);
		if (rc && !c->rc) { /* the store cannot be listed */
			c->rc = rc;
			c->err = e;
		}
	}
	for (size_t i = 0; i < nc; i++)
		cert_store(c, &in->inv->c[i], &c->cert[i]);
	if (nc)
		mark_twins(in->inv, c->cert);
	return 0;
}

static void ctx_free(struct ctx *c)
{
	size_t nc = c->in->inv ? c->in->inv->n : 0;

	for (size_t i = 0; c->cert && i < nc; i++) {
		free(c->cert[i].labels);
		free(c->cert[i].info);
	}
	for (size_t t = 0; c->tok && t < c->in->ntoks; t++) {
		free(c->tok[t].labels);
		free(c->tok[t].info);
	}
	for (size_t k = 0; k < c->nreq; k++) {
		json_decref(c->req[k].rec);
		free(c->req[k].labels);
		free(c->req[k].token_serial);
	}
	free(c->cert);
	free(c->tok);
	free(c->req);
}

int ps_metrics_text(const struct ps_metrics_in *in, char **text, size_t *len,
		    struct ps_err *err)
{
	struct ps_metrics_in run = *in;
	struct ctx c;
	int rc;

	memset(&c, 0, sizeof(c));
	ps_err_clear(&c.err);
	c.in = &run;
	*text = NULL;
	*len = 0;
	rc = gather(&c, err);
	if (rc) {
		/* Out of memory: the run's own metrics only. */
		ctx_free(&c);
		memset(&c, 0, sizeof(c));
		run.inv = NULL;
		run.ntoks = 0;
		run.st = NULL;
		run.success = 0;
		c.in = &run;
	}
	c.f = open_memstream(text, len);
	if (!c.f)
		return ps_err_nomem(err);
	for (size_t k = 0; k < sizeof(families) / sizeof(families[0]); k++)
		family_write(&c, &families[k]);
	if (fclose(c.f)) {
		free(*text);
		*text = NULL;
		rc = ps_err_nomem(err);
	}
	if (!rc && c.rc) {
		*err = c.err;
		rc = c.rc;
	}
	ctx_free(&c);
	return rc;
}

int ps_metrics_emit(const char *text, size_t len, int to_stdout,
		    const char *path, struct ps_err *err)
{
	if (to_stdout &&
	    (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0))
		return ps_err_set(err, PS_EXIT_FAIL, "io",
				  "check the disk or the command reading the "
				  "output",
				  "cannot write the metrics to stdout");
	if (path)
		return ps_metrics_write_file(path, text, len, err);
	return 0;
}

int ps_metrics_write_file(const char *path, const char *text, size_t len,
			  struct ps_err *err)
{
	mode_t old = umask(022);
	int rc = ps_state_write_file(path, text, len, 0644, err);

	umask(old);
	return rc;
}

/* psrenew: the JIP client. */
#include <psrenew/jip.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <libxml/HTMLparser.h>
#include <libxml/uri.h>
#include <libxml/xpath.h>
#include <openssl/bn.h>

#include <psrenew/cert.h>

struct ps_jip {
	json_t *p;  /* the profile */
	char *path; /* its file, for messages */
	char *base; /* base URL */
	struct ps_http *h;
	/* the last login, to log in again once when the session expires */
	char *method, *user, *password, *otp;
	int relogins;
};

/* A fetched page. */
struct page {
	htmlDocPtr doc;
	xmlXPathContextPtr xp;
	char *url; /* where it came from (for relative links) */
};

static const char profile_hint[] =
    "the portal changed or the profile is wrong: fix the profile file "
    "(psrenew.conf(5), [jip] profile)";

static void page_free(struct page *pg)
{
	if (pg->xp)
		xmlXPathFreeContext(pg->xp);
	if (pg->doc)
		xmlFreeDoc(pg->doc);
	free(pg->url);
	memset(pg, 0, sizeof(*pg));
}

/* A string of the profile at a path like "login.forms.password". */
static const char *pget(const struct ps_jip *j, const char *path)
{
	char key[64];
	const char *p = path;
	json_t *v = j->p;

	while (v && *p) {
		size_t n = strcspn(p, ".");

		if (n >= sizeof(key))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		v = json_object_get(v, key);
		p += n + (p[n] == '.');
	}
	return json_string_value(v);
}

static int need(const struct ps_jip *j, const char *path, const char **out,
		struct ps_err *err)
{
	*out = pget(j, path);
	if (!*out)
		return ps_err_set(
		    err, PS_EXIT_USAGE, "jip-profile", profile_hint,
		    "the JIP profile %s has no \"%s\"", j->path, path);
	return 0;
}

static char *absolute(const char *base, const char *ref)
{
	xmlChar *u = xmlBuildURI((const xmlChar *)ref, (const xmlChar *)base);
	char *s = u ? strdup((char *)u) : NULL;

	xmlFree(u);
	return s;
}

static int parse_page(struct page *pg, const struct ps_http_resp *r,
		      const char *url, struct ps_err *err)
{
	memset(pg, 0, sizeof(*pg));
	pg->doc = htmlReadMemory(r->body, (int)r->len, url, "UTF-8",
				 HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
				     HTML_PARSE_NONET | HTML_PARSE_RECOVER);
	pg->xp = pg->doc ? xmlXPathNewContext(pg->doc) : NULL;
	pg->url = strdup(url);
	if (!pg->doc || !pg->xp || !pg->url) {
		page_free(pg);
		return ps_err_set(err, PS_EXIT_FAIL, "jip-html", NULL,
				  "cannot read the page %s", url);
	}
	return 0;
}

/* GET or POST; a page for any 2xx/3xx-followed answer. */
static int fetch(struct ps_jip *j, const char *url, const char *form,
		 struct page *pg, struct ps_err *err)
{
	const char *hdr[] = { "Content-Type: application/x-www-form-urlencoded",
			      NULL };
	struct ps_http_resp r = { 0 };
	int rc =
	    ps_http_request(j->h, form ? "POST" : "GET", url, form ? hdr : NULL,
			    form, form ? strlen(form) : 0, &r, err);

	if (rc)
		return rc;
	if (r.status >= 500 || r.status == 429) {
		rc = ps_err_set(err, PS_EXIT_TEMP, "jip-unavailable",
				"it is safe to run the command again later",
				"the JIP portal answered HTTP %ld for %s",
				r.status, url);
	} else if (r.status == 403) {
		rc = ps_err_set(err, PS_EXIT_REFUSED, "jip-forbidden",
				"a local administrator can only edit the users "
				"of their office",
				"JIP refused access to %s (HTTP 403)", url);
	} else if (r.status >= 400) {
		rc = ps_err_set(err, PS_EXIT_FAIL, "jip-http", profile_hint,
				"the JIP portal answered HTTP %ld for %s",
				r.status, url);
	} else {
		rc = parse_page(pg, &r, url, err);
	}
	ps_http_resp_free(&r);
	return rc;
}

static xmlXPathObjectPtr xpath(struct page *pg, const char *expr,
			       xmlNodePtr ctx)
{
	xmlXPathObjectPtr o;

	pg->xp->node = ctx;
	o = xmlXPathEvalExpression((const xmlChar *)expr, pg->xp);
	/* Only a non-empty node-set is an answer: a profile expression that
	 * yields a number or a string (count(...)) finds nothing. */
	if (o && (o->type != XPATH_NODESET || !o->nodesetval ||
		  o->nodesetval->nodeNr == 0)) {
		xmlXPathFreeObject(o);
		return NULL;
	}
	return o;
}

static xmlNodePtr first(struct page *pg, const char *expr, xmlNodePtr ctx)
{
	xmlXPathObjectPtr o = xpath(pg, expr, ctx);
	xmlNodePtr n = NULL;

	if (o && o->type == XPATH_NODESET)
		n = o->nodesetval->nodeTab[0];
	xmlXPathFreeObject(o);
	return n;
}

/* Normalised text of a node (whitespace collapsed, trimmed). */
static char *text_of(xmlNodePtr n)
{
	xmlChar *c = n ? xmlNodeGetContent(n) : NULL;
	char *out, *w;
	int space = 0;

	if (!c)
		return strdup("");
	out = malloc(strlen((char *)c) + 1);
	w = out;
	for (const char *r = (char *)c; out && *r; r++) {
		if (isspace((unsigned char)*r)) {
			space = w != out;
			continue;
		}
		if (space)
			*w++ = ' ';
		space = 0;
		*w++ = *r;
	}
	if (out)
		*w = '\0';
	xmlFree(c);
	return out;
}

static char *attr(xmlNodePtr n, const char *name)
{
	xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
	char *s = v ? strdup((char *)v) : NULL;

	xmlFree(v);
	return s;
}

/* application/x-www-form-urlencoded builder. */
struct form {
	char *s;
	size_t n;
};

static void form_add(struct form *f, const char *k, const char *v)
{
	char *ek = curl_easy_escape(NULL, k, 0);
	char *ev = curl_easy_escape(NULL, v ? v : "", 0);
	size_t need = (ek ? strlen(ek) : 0) + (ev ? strlen(ev) : 0) + 3;
	char *s = realloc(f->s, f->n + need);

	if (s && ek && ev) {
		f->s = s;
		f->n += (size_t)snprintf(s + f->n, need, "%s%s=%s",
					 f->n ? "&" : "", ek, ev);
	} else if (s) {
		f->s = s;
	}
	curl_free(ek);
	curl_free(ev);
}

/* The form's fields: every named input/select/textarea with its current
 * value (hidden anti-forgery tokens included), except those in skip and
 * submit buttons. */
static void form_collect(struct page *pg, xmlNodePtr form, struct form *f,
			 const char *const *skip)
{
	xmlXPathObjectPtr o =
	    xpath(pg, ".//input[@name] | .//select[@name] | .//textarea[@name]",
		  form);

	for (int i = 0; o && i < o->nodesetval->nodeNr; i++) {
		xmlNodePtr n = o->nodesetval->nodeTab[i];
		char *name = attr(n, "name"), *type = attr(n, "type"), *val;
		int skipped = 0;

		for (size_t k = 0; skip && skip[k]; k++)
			skipped |= name && !strcmp(name, skip[k]);
		if (skipped || (type && (!strcasecmp(type, "submit") ||
					 !strcasecmp(type, "button") ||
					 !strcasecmp(type, "image")))) {
			free(name);
			free(type);
			continue;
		}
		if (!strcmp((char *)n->name, "select")) {
			xmlNodePtr sel = first(pg, ".//option[@selected]", n);

			if (!sel)
				sel = first(pg, ".//option", n);
			val = sel ? attr(sel, "value") : NULL;
			if (sel && !val)
				val = text_of(sel);
		} else if (type && (!strcasecmp(type, "checkbox") ||
				    !strcasecmp(type, "radio"))) {
			char *checked = attr(n, "checked");

			val = checked ? attr(n, "value") : NULL;
			if (checked && !val)
				val = strdup("on");
			free(checked);
			if (!val) {
				free(name);
				free(type);
				continue;
			}
		} else if (!strcmp((char *)n->name, "textarea")) {
			val = text_of(n);
		} else {
			val = attr(n, "value");
		}
		form_add(f, name, val);
		free(name);
		free(type);
		free(val);
	}
	xmlXPathFreeObject(o);
}

static char *form_action(struct page *pg, xmlNodePtr form)
{
	char *a = attr(form, "action"), *abs;

	abs = absolute(pg->url, a && *a ? a : pg->url);
	free(a);
	return abs;
}

static void wipe(char **s)
{
	if (*s) {
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

int ps_jip_open(const char *profile_path, const char *base_url,
		const struct ps_http_opts *http, struct ps_jip **out,
		struct ps_err *err)
{
	struct ps_jip *j = calloc(1, sizeof(*j));
	struct ps_http_opts o = *http;
	json_error_t je;
	const char *b;
	int rc;

	*out = NULL;
	if (!j)
		return ps_err_nomem(err);
	j->path = strdup(profile_path);
	j->p = json_load_file(profile_path, JSON_REJECT_DUPLICATES, &je);
	if (!j->p || !json_is_object(j->p)) {
		char hint[600];

		snprintf(hint, sizeof(hint),
			 "the profile was looked for in %.300s: give another "
			 "with --profile or [jip] profile (psrenew.conf(5)), "
			 "or install the data files (make install)",
			 profile_path);
		ps_err_set(err, PS_EXIT_USAGE, "jip-profile", hint,
			   "cannot read the JIP profile %s: %s", profile_path,
			   j->p ? "not a JSON object" : je.text);
		ps_jip_close(j);
		return PS_EXIT_USAGE;
	}
	rc = need(j, "base_url", &b, err);
	if (rc) {
		ps_jip_close(j);
		return rc;
	}
	if (strstr(b, "${JIP_URL}") && !base_url) {
		ps_jip_close(j);
		return ps_err_set(err, PS_EXIT_USAGE, "jip-profile",
				  "give the portal's address with --jip-url",
				  "the profile %s has no address of its own",
				  profile_path);
	}
	j->base = strdup(strstr(b, "${JIP_URL}") || base_url ? base_url : b);
	o.cookies = 1;
	o.follow = 1;
	rc = ps_http_new(&o, &j->h, err);
	if (rc || !j->base) {
		ps_jip_close(j);
		return rc ? rc : PS_EXIT_FAIL;
	}
	*out = j;
	return 0;
}

void ps_jip_close(struct ps_jip *j)
{
	if (!j)
		return;
	json_decref(j->p);
	ps_http_free(j->h);
	wipe(&j->password);
	wipe(&j->otp);
	free(j->method);
	free(j->user);
	free(j->path);
	free(j->base);
	free(j);
}

static char *url_of(const struct ps_jip *j, const char *path)
{
	return absolute(j->base, path);
}

static int login_once(struct ps_jip *j, struct ps_err *err)
{
	char formkey[64], *url = NULL, *action = NULL;
	const char *lurl, *fxp, *fu, *fp, *fo = NULL, *ok;
	const char *skip[4] = { NULL };
	struct page pg = { 0 }, res = { 0 };
	struct form f = { 0 };
	xmlNodePtr form;
	int rc;

	snprintf(formkey, sizeof(formkey), "login.forms.%s", j->method);
	if ((rc = need(j, "login.url", &lurl, err)) ||
	    (rc = need(j, formkey, &fxp, err)) ||
	    (rc = need(j, "login.fields.user", &fu, err)) ||
	    (rc = need(j, "login.fields.password", &fp, err)) ||
	    (rc = need(j, "login.ok", &ok, err)) ||
	    (!strcmp(j->method, "otp") &&
	     (rc = need(j, "login.fields.otp", &fo, err))))
		return rc;
	url = url_of(j, lurl);
	rc = fetch(j, url, NULL, &pg, err);
	if (rc)
		goto out;
	form = first(&pg, fxp, NULL);
	if (!form) {
		rc = ps_err_set(err, PS_EXIT_FAIL, "jip-profile", profile_hint,
				"no login form %s on %s (profile %s)", fxp, url,
				j->path);
		goto out;
	}
	skip[0] = fu;
	skip[1] = fp;
	skip[2] = fo;
	form_collect(&pg, form, &f, skip);
	form_add(&f, fu, j->user);
	form_add(&f, fp, j->password);
	if (fo)
		form_add(&f, fo, j->otp);
	action = form_action(&pg, form);
	rc = action && f.s ? fetch(j, action, f.s, &res, err)
			   : ps_err_nomem(err);
	if (f.s)
		OPENSSL_cleanse(f.s, strlen(f.s));
	if (rc)
		goto out;
	if (!first(&res, ok, NULL)) {
		const char *exp = pget(j, "login.error");
		const char *locked = pget(j, "login.locked_text");
		xmlNodePtr e = exp ? first(&res, exp, NULL) : NULL;
		char *msg = e ? text_of(e) : NULL;

		if (msg && locked && strstr(msg, locked))
			rc = ps_err_set(err, PS_EXIT_REFUSED, "jip-locked",
					"ask your local administrator in JIP "
					"to unlock the account",
					"the JIP account %s is locked: %s",
					j->user, msg);
		else if (msg)
			rc = ps_err_set(err, PS_EXIT_REFUSED, "jip-login",
					"check the name and the password (and "
					"the certificate or one-time code)",
					"JIP refused the login of %s: %s",
					j->user, msg);
		else
			rc = ps_err_set(err, PS_EXIT_FAIL, "jip-profile",
					profile_hint,
					"after the login, %s does not show %s "
					"(profile %s)",
					res.url, ok, j->path);
		free(msg);
	}
out:
	free(f.s);
	free(url);
	free(action);
	page_free(&pg);
	page_free(&res);
	return rc;
}

int ps_jip_login(struct ps_jip *j, const char *method, const char *user,
		 const char *password, const char *otp, struct ps_err *err)
{
	if (method && !strcmp(method, "nia")) {
		const char *hint = pget(j, "login.nia_hint");

		return ps_err_set(
		    err, PS_EXIT_USAGE, "jip-nia",
		    hint ? hint
			 : "log in through NIA in a browser and "
			   "enter the serial number by hand, or ask "
			   "your local administrator",
		    "the NIA login goes through an external "
		    "identity provider and cannot be scripted");
	}
	if (!method || (strcmp(method, "password") && strcmp(method, "cert") &&
			strcmp(method, "otp")))
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--login is password, cert, otp or nia");
	if (!user || !password || (!strcmp(method, "otp") && !otp))
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "the JIP login needs a name, a password%s",
				  strcmp(method, "otp") ? "" : " and a code");
	free(j->method);
	free(j->user);
	wipe(&j->password);
	wipe(&j->otp);
	j->method = strdup(method);
	j->user = strdup(user);
	j->password = strdup(password);
	j->otp = otp ? strdup(otp) : NULL;
	return login_once(j, err);
}

/* Fetches a page; when the session has expired (the page is the login
 * page), logs in again once and fetches it again. */
static int get_page(struct ps_jip *j, const char *url, struct page *pg,
		    struct ps_err *err)
{
	const char *exp = pget(j, "session_expired");
	int rc = fetch(j, url, NULL, pg, err);

	if (rc || !exp || !first(pg, exp, NULL))
		return rc;
	page_free(pg);
	if (!j->method || j->relogins++ > 0)
		return ps_err_set(err, PS_EXIT_TEMP, "jip-session",
				  "run the command again",
				  "the JIP session expired again after a new "
				  "login");
	rc = login_once(j, err);
	return rc ? rc : fetch(j, url, NULL, pg, err);
}

static char *normal_serial(const struct ps_jip *j, const char *in);

/* The page with user's certificate list and edit form: one's own profile,
 * or (admin) the user's page from the users list. */
static int edit_page(struct ps_jip *j, const char *user, struct page *pg,
		     struct ps_err *err)
{
	const char *purl, *link;
	char *url = NULL, *href = NULL, *expr = NULL;
	struct page first_pg = { 0 };
	xmlNodePtr a;
	int rc;

	if (user) {
		const char *tmpl;
		size_t size;

		if ((rc = need(j, "admin.users_url", &purl, err)) ||
		    (rc = need(j, "admin.user_edit_link", &tmpl, err)))
			return rc;
		/* {user} in the XPath: the name as an XPath string. */
		if (strchr(user, '\'') || strchr(user, '"'))
			return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
					  "a user name with quotes");
		size = strlen(tmpl) + strlen(user) + 1;
		expr = malloc(size);
		if (!expr)
			return PS_EXIT_FAIL;
		{
			const char *p = strstr(tmpl, "{user}");

			if (p)
				snprintf(expr, size, "%.*s%s%s",
					 (int)(p - tmpl), tmpl, user, p + 6);
			else
				snprintf(expr, size, "%s", tmpl);
		}
		link = expr;
	} else {
		if ((rc = need(j, "profile.url", &purl, err)) ||
		    (rc = need(j, "profile.edit_link", &link, err)))
			return rc;
	}
	url = url_of(j, purl);
	rc = get_page(j, url, &first_pg, err);
	if (rc)
		goto out;
	a = first(&first_pg, link, NULL);
	href = a ? attr(a, "href") : NULL;
	if (!href) {
		rc = user ? ps_err_set(err, PS_EXIT_REFUSED, "jip-no-user",
				       "check the user name; a local "
				       "administrator sees only their office",
				       "JIP lists no user %s for this "
				       "administrator",
				       user)
			  : ps_err_set(err, PS_EXIT_FAIL, "jip-profile",
				       profile_hint,
				       "no link %s on %s (profile %s)", link,
				       url, j->path);
		goto out;
	}
	free(url);
	url = absolute(first_pg.url, href);
	rc = get_page(j, url, pg, err);
out:
	page_free(&first_pg);
	free(url);
	free(href);
	free(expr);
	return rc;
}

static const char *type_from_label(const struct ps_jip *j, const char *label)
{
	const char *q = pget(j, "edit.type_labels.qualified");
	const char *c = pget(j, "edit.type_labels.commercial");

	if (q && !strcasecmp(label, q))
		return "qualified";
	if (c && !strcasecmp(label, c))
		return "commercial";
	return label;
}

static int read_list(struct ps_jip *j, struct page *pg,
		     struct ps_jip_entry **out, size_t *n, struct ps_err *err)
{
	const char *rows, *ct, *cc, *cs;
	xmlXPathObjectPtr o;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = need(j, "list.rows", &rows, err)) ||
	    (rc = need(j, "list.cells.type", &ct, err)) ||
	    (rc = need(j, "list.cells.ca", &cc, err)) ||
	    (rc = need(j, "list.cells.serial", &cs, err)))
		return rc;
	o = xpath(pg, rows, NULL);
	if (!o)
		return 0; /* no certificate registered */
	*out = calloc((size_t)o->nodesetval->nodeNr + 1, sizeof(**out));
	for (int i = 0; *out && i < o->nodesetval->nodeNr; i++) {
		xmlNodePtr row = o->nodesetval->nodeTab[i];
		char *t = text_of(first(pg, ct, row));
		char *serial = text_of(first(pg, cs, row));

		if (!serial || !*serial) {
			free(t);
			free(serial);
			continue;
		}
		(*out)[*n].type = strdup(type_from_label(j, t ? t : ""));
		(*out)[*n].ca = text_of(first(pg, cc, row));
		(*out)[*n].serial = normal_serial(j, serial);
		(*n)++;
		free(t);
		free(serial);
	}
	xmlXPathFreeObject(o);
	return *out ? 0 : PS_EXIT_FAIL;
}

int ps_jip_list(struct ps_jip *j, const char *user, struct ps_jip_entry **out,
		size_t *n, struct ps_err *err)
{
	struct page pg = { 0 };
	const char *lurl = pget(j, "list.url");
	char *url;
	int rc;

	if (user || !lurl) {
		rc = edit_page(j, user, &pg, err);
	} else {
		url = url_of(j, lurl);
		rc = get_page(j, url, &pg, err);
		free(url);
	}
	if (!rc)
		rc = read_list(j, &pg, out, n, err);
	page_free(&pg);
	return rc;
}

void ps_jip_entries_free(struct ps_jip_entry *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++) {
		free(e[i].type);
		free(e[i].ca);
		free(e[i].serial);
	}
	free(e);
}

/* hex-upper / hex-lower / decimal, from whatever the portal shows. */
static char *normal_serial(const struct ps_jip *j, const char *in)
{
	const char *fmt = pget(j, "serial_format");
	char *hex = NULL, *out;

	if (fmt && !strcmp(fmt, "decimal")) {
		char buf[200];

		snprintf(buf, sizeof(buf), "dec:%s", in);
		if (ps_serial_normalise(buf, &hex, NULL))
			return strdup(in);
	} else if (ps_serial_normalise(in, &hex, NULL)) {
		return strdup(in);
	}
	out = hex; /* always compared as upper-case hex */
	return out;
}

char *ps_jip_format_serial(const struct ps_jip *j, const char *serial_hex)
{
	const char *fmt = pget(j, "serial_format");
	BIGNUM *bn = NULL;
	char *s = NULL, *d;

	if (fmt && !strcmp(fmt, "decimal")) {
		if (!BN_hex2bn(&bn, serial_hex))
			return NULL;
		d = BN_bn2dec(bn);
		s = d ? strdup(d) : NULL;
		OPENSSL_free(d);
		BN_free(bn);
		return s;
	}
	s = strdup(serial_hex);
	if (s && fmt && !strcmp(fmt, "hex-lower"))
		for (char *p = s; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	return s;
}

static int has_entry(const struct ps_jip_entry *e, size_t n, const char *type,
		     const char *ca, const char *serial)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(e[i].serial, serial) && !strcmp(e[i].type, type) &&
		    (!ca || !strcasecmp(e[i].ca, ca)))
			return 1;
	return 0;
}

/* The value of the <option> of select `name` in form whose text is label. */
static char *option_value(struct page *pg, xmlNodePtr form, const char *name,
			  const char *label)
{
	char expr[256];
	xmlXPathObjectPtr o;
	char *val = NULL;

	snprintf(expr, sizeof(expr), ".//select[@name='%s']/option", name);
	o = xpath(pg, expr, form);
	for (int i = 0; o && i < o->nodesetval->nodeNr && !val; i++) {
		char *t = text_of(o->nodesetval->nodeTab[i]);

		if (t && !strcasecmp(t, label)) {
			val = attr(o->nodesetval->nodeTab[i], "value");
			if (!val)
				val = strdup(t);
		}
		free(t);
	}
	xmlXPathFreeObject(o);
	return val;
}

static int submit_form(struct ps_jip *j, struct page *pg, const char *type,
		       const char *ca, const char *serial_hex,
		       struct ps_err *err)
{
	const char *fx, *ft, *fc, *fs, *label, *sub = pget(j, "edit.submit");
	char tkey[64], *tval = NULL, *cval = NULL, *sval = NULL, *action = NULL;
	const char *skip[4];
	struct form f = { 0 };
	struct page res = { 0 };
	xmlNodePtr form;
	int rc;

	snprintf(tkey, sizeof(tkey), "edit.type_labels.%s", type);
	if ((rc = need(j, "edit.form", &fx, err)) ||
	    (rc = need(j, "edit.fields.type", &ft, err)) ||
	    (rc = need(j, "edit.fields.ca", &fc, err)) ||
	    (rc = need(j, "edit.fields.serial", &fs, err)) ||
	    (rc = need(j, tkey, &label, err)))
		return rc;
	form = first(pg, fx, NULL);
	if (!form)
		return ps_err_set(err, PS_EXIT_FAIL, "jip-profile",
				  profile_hint,
				  "no certificate form %s on %s (profile %s)",
				  fx, pg->url, j->path);
	tval = option_value(pg, form, ft, label);
	cval = option_value(pg, form, fc, ca);
	sval = ps_jip_format_serial(j, serial_hex);
	if (!tval || !cval || !sval) {
		rc = ps_err_set(
		    err, PS_EXIT_FAIL, "jip-profile", profile_hint,
		    "the form on %s has no %s \"%s\"%s%s (profile %s)", pg->url,
		    !tval ? ft : fc, !tval ? label : ca,
		    !cval && tval ? "; the CA list may lack it" : "", "",
		    j->path);
		goto out;
	}
	skip[0] = ft;
	skip[1] = fc;
	skip[2] = fs;
	skip[3] = NULL;
	form_collect(pg, form, &f, skip);
	form_add(&f, ft, tval);
	form_add(&f, fc, cval);
	form_add(&f, fs, sval);
	if (sub)
		form_add(&f, sub, "1");
	action = form_action(pg, form);
	rc = fetch(j, action, f.s ? f.s : "", &res, err);
	if (!rc && pget(j, "session_expired") &&
	    first(&res, pget(j, "session_expired"), NULL)) {
		rc = ps_err_set(err, PS_EXIT_TEMP, "jip-session-lost", NULL,
				"the JIP session ended while saving");
	} else if (!rc) {
		const char *ex = pget(j, "edit.error");
		xmlNodePtr e = ex ? first(&res, ex, NULL) : NULL;
		char *msg = e ? text_of(e) : NULL;

		if (msg && *msg)
			rc = ps_err_set(
			    err, PS_EXIT_REFUSED, "jip-refused", NULL,
			    "JIP refused the serial number: %s", msg);
		free(msg);
	}
out:
	page_free(&res);
	free(f.s);
	free(tval);
	free(cval);
	free(sval);
	free(action);
	return rc;
}

static int set_serial(struct ps_jip *j, const char *user, const char *type,
		      const char *ca, const char *serial_hex, int *already,
		      struct ps_err *err);

int ps_jip_set_serial(struct ps_jip *j, const char *user, const char *type,
		      const char *ca, const char *serial_hex, int *already,
		      struct ps_err *err)
{
	char *norm = NULL;
	int rc;

	*already = 0;
	j->relogins = 0; /* once per certificate of a batch */
	/* As JIP keeps it: no separators, no leading zero bytes. */
	rc = ps_serial_normalise(serial_hex, &norm, err);
	if (rc)
		return rc;
	rc = set_serial(j, user, type, ca, norm, already, err);
	if (rc == PS_EXIT_TEMP && err &&
	    !strcmp(err->code, "jip-session-lost") && j->relogins == 0) {
		/* The session ended in the middle: log in again once and
		 * do this certificate again from the start. */
		j->relogins++;
		rc = login_once(j, err);
		if (!rc)
			rc = set_serial(j, user, type, ca, norm, already, err);
	}
	if (rc == PS_EXIT_TEMP && err && !strcmp(err->code, "jip-session-lost"))
		ps_err_set(err, PS_EXIT_TEMP, "jip-session",
			   "run the command again", "%s", err->msg);
	free(norm);
	return rc;
}

static int set_serial(struct ps_jip *j, const char *user, const char *type,
		      const char *ca, const char *serial_hex, int *already,
		      struct ps_err *err)
{
	struct ps_jip_entry *e = NULL;
	struct page pg = { 0 };
	size_t n = 0;
	int rc;

	rc = ps_jip_list(j, user, &e, &n, err);
	if (rc)
		return rc;
	if (has_entry(e, n, type, ca, serial_hex)) {
		*already = 1;
		ps_jip_entries_free(e, n);
		return 0;
	}
	ps_jip_entries_free(e, n);
	rc = edit_page(j, user, &pg, err);
	if (!rc)
		rc = submit_form(j, &pg, type, ca, serial_hex, err);
	page_free(&pg);
	if (rc)
		return rc;
	/* Read it back: only what JIP shows counts. */
	rc = ps_jip_list(j, user, &e, &n, err);
	if (rc)
		return rc;
	if (!has_entry(e, n, type, ca, serial_hex))
		rc = ps_err_set(err, PS_EXIT_FAIL, "jip-not-saved",
				"check the account in a browser (Můj profil › "
				"Certifikáty)",
				"after saving, JIP does not list %s %s from %s",
				type, serial_hex, ca);
	ps_jip_entries_free(e, n);
	return rc;
}

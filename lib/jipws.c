/* psrenew: the JIP/KAAS and CAAIS editing web service client (jipws.h). */
#include <psrenew/jipws.h>
#include <psrenew/codec.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>

#define NS10 "http://userportal.novell.com/ws/WS-LA-1.0"
#define NS11 "http://userportal.novell.com/ws/WS-LA-1.1"

struct ps_jipws {
	struct ps_http *h;
	char *url;
	char *auth; /* "Authorization: Basic ..." (WS 1.0), wiped */
	const char *ns;
	int caais, serial_dec, attempts;
};

static void wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* "Authorization: Basic base64(user:password)" on one line. */
static char *basic_header(const char *user, const char *pw)
{
	size_t n = strlen(user) + 1 + strlen(pw);
	char *plain = malloc(n + 1), *b64 = NULL, *hdr = NULL;
	size_t k = 0;

	if (!plain)
		return NULL;
	snprintf(plain, n + 1, "%s:%s", user, pw);
	b64 = ps_base64_encode((const unsigned char *)plain, n);
	wipe_free(plain);
	if (!b64)
		return NULL;
	for (size_t i = 0; b64[i]; i++) /* ps_base64_encode breaks lines */
		if (b64[i] != '\n')
			b64[k++] = b64[i];
	b64[k] = '\0';
	n = k + sizeof("Authorization: Basic ");
	hdr = malloc(n);
	if (hdr)
		snprintf(hdr, n, "Authorization: Basic %s", b64);
	wipe_free(b64);
	return hdr;
}

int ps_jipws_open(const struct ps_jipws_opts *o, struct ps_jipws **out,
		  struct ps_err *err)
{
	struct ps_jipws *w;
	size_t ul;
	int rc;

	*out = NULL;
	if (!o->url || strncmp(o->url, "https://", 8) != 0)
		return ps_err_set(err, PS_EXIT_USAGE, "usage",
				  "ws-url = https://.../call/SUBJECT in [jip] "
				  "of psrenew.conf",
				  "the editing web service needs its https:// "
				  "address");
	if (o->version != 10 && o->version != 11)
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "ws-version is 1.0 or 1.1");
	if (o->version == 10 && (!o->user || !o->password))
		return ps_err_set(err, PS_EXIT_USAGE, "usage",
				  "give --user NAME and --password SOURCE",
				  "WS 1.0 logs in as the local administrator");
	if (o->version == 11 && (!o->http.client_cert || !o->http.client_key))
		return ps_err_set(err, PS_EXIT_USAGE, "usage",
				  "give --login-cert ID (a key on the token)",
				  "WS 1.1 needs a TLS client certificate");
	w = calloc(1, sizeof(*w));
	if (!w)
		return ps_err_nomem(err);
	ul = strlen(o->url);
	w->url = strdup(o->url);
	w->ns = o->version == 10 ? NS10 : NS11;
	w->caais = o->caais >= 0 ? o->caais : ul > 0 && o->url[ul - 1] != '/';
	w->serial_dec = o->serial_dec;
	w->attempts = o->attempts > 0 ? o->attempts : 3;
	if (o->version == 10)
		w->auth = basic_header(o->user, o->password);
	if (!w->url || (o->version == 10 && !w->auth)) {
		ps_jipws_close(w);
		return ps_err_nomem(err);
	}
	rc = ps_http_new(&o->http, &w->h, err);
	if (rc) {
		ps_jipws_close(w);
		return rc;
	}
	ps_http_tls12(w->h); /* TLS 1.2 or 1.3 only (2-komunikace-ws.rst) */
	*out = w;
	return 0;
}

void ps_jipws_close(struct ps_jipws *w)
{
	if (!w)
		return;
	ps_http_free(w->h);
	wipe_free(w->auth);
	free(w->url);
	free(w);
}

int ps_jipws_is_caais(const struct ps_jipws *w)
{
	return w->caais;
}

void ps_jipws_certs_free(struct ps_jipws_cert *c, size_t n)
{
	for (size_t i = 0; c && i < n; i++) {
		free(c[i].type);
		free(c[i].number);
		free(c[i].issuer);
	}
	free(c);
}

/* XML --------------------------------------------------------------------- */

static xmlNodePtr child(xmlNodePtr n, const char *name)
{
	for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE &&
		    !strcmp((const char *)c->name, name))
			return c;
	return NULL;
}

static char *text(xmlNodePtr n)
{
	xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
	char *s = t ? strdup((const char *)t) : NULL;
	size_t a = 0, b;

	xmlFree(t);
	if (!s)
		return NULL;
	b = strlen(s);
	while (b > 0 && isspace((unsigned char)s[b - 1]))
		b--;
	while (a < b && isspace((unsigned char)s[a]))
		a++;
	memmove(s, s + a, b - a);
	s[b - a] = '\0';
	return s;
}

static xmlNodePtr root_of(xmlDocPtr d)
{
	for (xmlNodePtr c = d ? d->children : NULL; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE)
			return c;
	return NULL;
}

/* A request: <NAME object-id="login" xmlns="ns">, and its document. */
static xmlNodePtr new_request(struct ps_jipws *w, const char *name,
			      const char *login, xmlDocPtr *doc)
{
	xmlNodePtr r;
	xmlNsPtr ns;

	*doc = xmlNewDoc((const xmlChar *)"1.0");
	r = *doc ? xmlNewNode(NULL, (const xmlChar *)name) : NULL;
	ns = r ? xmlNewNs(r, (const xmlChar *)w->ns, NULL) : NULL;
	if (!r || !ns) {
		if (*doc)
			xmlFreeDoc(*doc);
		*doc = NULL;
		return NULL;
	}
	xmlSetNs(r, ns);
	xmlDocSetRootElement(*doc, r);
	xmlNewProp(r, (const xmlChar *)"object-id", (const xmlChar *)login);
	return r;
}

/* Answers ----------------------------------------------------------------- */

/* The exit status of an ErrorResponse code (7-chybove-zpravy.rst): rights
 * and roles are refusals, the service's trouble with CAAIS is temporary,
 * the rest (validation, processing) failures. */
static int error_status(const char *code, const char **rc)
{
	if (!strncmp(code, "CSAV-", 5) || !strcmp(code, "CURL-003") ||
	    !strncmp(code, "CCFG-", 5)) {
		*rc = "jip-ws-refused";
		return PS_EXIT_REFUSED;
	}
	if (!strncmp(code, "CLDP-", 5) || !strcmp(code, "CAPP-0000")) {
		*rc = "jip-ws-unavailable";
		return PS_EXIT_TEMP;
	}
	*rc = "jip-ws-error";
	return PS_EXIT_FAIL;
}

static int error_response(xmlNodePtr root, long status, struct ps_err *err)
{
	char *code = text(child(root, "Code"));
	char *msg = text(child(root, "Message"));
	const char *rc = NULL;
	int st = error_status(code ? code : "", &rc);

	ps_err_set(err, st, rc,
		   st == PS_EXIT_REFUSED
		       ? "the local administrator needs the rights to the "
			 "subject and its users (in CAAIS: API use allowed, "
			 "tab \"Ostatní\" of the subject)"
		   : st == PS_EXIT_TEMP
		       ? "it is safe to run the command again later"
		       : NULL,
		   "the editing web service refused the request: %.20s %.300s "
		   "(HTTP %ld)",
		   code ? code : "?", msg ? msg : "", status);
	free(code);
	free(msg);
	return st;
}

static int http_status(long status, const char *url, struct ps_err *err)
{
	if (status == 401)
		return ps_err_set(err, PS_EXIT_REFUSED, "jip-login",
				  "check the local administrator's name and "
				  "password (or the client certificate)",
				  "the editing web service %s refused the "
				  "login (HTTP 401)",
				  url);
	if (status == 403)
		return ps_err_set(err, PS_EXIT_REFUSED, "jip-forbidden",
				  "the subject must allow API use, and the "
				  "login must be its local administrator",
				  "the editing web service %s refused access "
				  "(HTTP 403)",
				  url);
	if (status >= 500 || status == 429)
		return ps_err_set(err, PS_EXIT_TEMP, "jip-unavailable",
				  "it is safe to run the command again later",
				  "the editing web service %s answered HTTP "
				  "%ld",
				  url, status);
	return ps_err_set(err, PS_EXIT_FAIL, "jip-ws-http", "check ws-url",
			  "the editing web service %s answered HTTP %ld", url,
			  status);
}

/*
 * POSTs doc and parses the answer, which must be an element named want
 * in the service's namespace. An ErrorResponse counts whatever the HTTP
 * status (200 included: 7-chybove-zpravy.rst).
 */
static int call(struct ps_jipws *w, xmlDocPtr doc, const char *want,
		xmlDocPtr *ans, struct ps_err *err)
{
	const char *hdr[] = { "Content-Type: text/xml; charset=UTF-8", w->auth,
			      NULL };
	struct ps_http_resp r = { 0 };
	xmlChar *body = NULL;
	xmlNodePtr root;
	int len = 0, rc;

	*ans = NULL;
	xmlDocDumpMemoryEnc(doc, &body, &len, "UTF-8");
	if (!body)
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "cannot build the XML request");
	rc = ps_http_request(w->h, "POST", w->url, hdr, body, (size_t)len, &r,
			     err);
	xmlFree(body);
	if (rc)
		return rc;
	*ans = xmlReadMemory(r.body, (int)r.len, NULL, "UTF-8",
			     XML_PARSE_NONET | XML_PARSE_NOERROR |
				 XML_PARSE_NOWARNING | XML_PARSE_NOBLANKS);
	root = root_of(*ans);
	if (root && !strcmp((const char *)root->name, "ErrorResponse"))
		rc = error_response(root, r.status, err);
	else if (r.status < 200 || r.status > 299)
		rc = http_status(r.status, w->url, err);
	else if (!root || strcmp((const char *)root->name, want) != 0 ||
		 !root->ns || strcmp((const char *)root->ns->href, w->ns) != 0)
		rc = ps_err_set(err, PS_EXIT_FAIL, "jip-ws-answer",
				"check ws-url and ws-version",
				"the editing web service %s did not answer "
				"with %s in %s",
				w->url, want, w->ns);
	ps_http_resp_free(&r);
	if (rc && *ans) {
		xmlFreeDoc(*ans);
		*ans = NULL;
	}
	return rc;
}

static int read_certs(xmlNodePtr list, struct ps_jipws_cert **out, size_t *n)
{
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	for (xmlNodePtr it = list ? list->children : NULL; it; it = it->next) {
		struct ps_jipws_cert *c;

		if (it->type != XML_ELEMENT_NODE ||
		    strcmp((const char *)it->name, "item") != 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 4;
			c = realloc(*out, cap * sizeof(*c));
			if (!c)
				return -1;
			*out = c;
		}
		c = &(*out)[(*n)++];
		c->type = text(child(it, "type"));
		c->number = text(child(it, "number"));
		c->issuer = text(child(it, "issuer"));
		if (!c->type || !c->number || !c->issuer)
			return -1;
	}
	return 0;
}

int ps_jipws_get_user(struct ps_jipws *w, const char *login,
		      struct ps_jipws_cert **certs, size_t *n, char **changed,
		      struct ps_err *err)
{
	xmlDocPtr req, ans;
	xmlNodePtr root;
	int rc;

	*certs = NULL;
	*n = 0;
	if (changed)
		*changed = NULL;
	if (!new_request(w, "GetUserRequest", login, &req))
		return ps_err_nomem(err);
	rc = call(w, req, "GetUserResponse", &ans, err);
	xmlFreeDoc(req);
	if (rc)
		return rc;
	root = root_of(ans);
	if (read_certs(child(root, "clientCertificate"), certs, n)) {
		ps_jipws_certs_free(*certs, *n);
		*certs = NULL;
		*n = 0;
		rc = ps_err_set(err, PS_EXIT_FAIL, "jip-ws-answer", NULL,
				"the GetUserResponse of %s has a "
				"clientCertificate item without type, "
				"number or issuer",
				login);
	} else if (changed) {
		*changed = text(child(root, "casPosledniZmeny"));
	}
	xmlFreeDoc(ans);
	return rc;
}

static int update_user(struct ps_jipws *w, const char *login,
		       const struct ps_jipws_cert *c, size_t n,
		       struct ps_err *err)
{
	xmlDocPtr req, ans;
	xmlNodePtr root = new_request(w, "UpdateUserRequest", login, &req);
	xmlNodePtr list =
	    root ? xmlNewChild(root, root->ns,
			       (const xmlChar *)"clientCertificate", NULL)
		 : NULL;
	int rc;

	for (size_t i = 0; list && i < n; i++) {
		xmlNodePtr it =
		    xmlNewChild(list, root->ns, (const xmlChar *)"item", NULL);

		if (!it ||
		    !xmlNewTextChild(it, root->ns, (const xmlChar *)"type",
				     (const xmlChar *)c[i].type) ||
		    !xmlNewTextChild(it, root->ns, (const xmlChar *)"number",
				     (const xmlChar *)c[i].number) ||
		    !xmlNewTextChild(it, root->ns, (const xmlChar *)"issuer",
				     (const xmlChar *)c[i].issuer))
			list = NULL;
	}
	if (!list) {
		if (req)
			xmlFreeDoc(req);
		return ps_err_nomem(err);
	}
	rc = call(w, req, "UpdateUserResponse", &ans, err);
	xmlFreeDoc(req);
	if (!rc)
		xmlFreeDoc(ans);
	return rc;
}

/* Comparisons ------------------------------------------------------------- */

static BIGNUM *parse_bn(const char *s, int hex)
{
	char buf[256];
	size_t k = 0;
	BIGNUM *b = NULL;

	if (hex && (!strncmp(s, "0x", 2) || !strncmp(s, "0X", 2)))
		s += 2;
	for (; *s && k + 1 < sizeof(buf); s++) {
		if (*s == ':' || *s == ' ')
			continue;
		if (hex ? !isxdigit((unsigned char)*s)
			: !isdigit((unsigned char)*s))
			return NULL;
		buf[k++] = *s;
	}
	buf[k] = '\0';
	if (*s || k == 0)
		return NULL;
	if ((hex ? BN_hex2bn(&b, buf) : BN_dec2bn(&b, buf)) != (int)k) {
		BN_free(b);
		return NULL;
	}
	return b;
}

int ps_jipws_number_equal(const char *number, const char *serial_hex)
{
	BIGNUM *want = parse_bn(serial_hex, 1);
	int eq = 0;

	for (int hex = 1; want && hex >= 0 && !eq; hex--) {
		BIGNUM *b = parse_bn(number, hex);

		eq = b && BN_cmp(b, want) == 0;
		BN_free(b);
	}
	BN_free(want);
	return eq;
}

/* One attribute of a DN, as "OID=value" with the value's case folded
 * (ASCII) and its spaces collapsed. */
struct ava {
	char *s;
};

static int ava_cmp(const void *a, const void *b)
{
	return strcmp(((const struct ava *)a)->s, ((const struct ava *)b)->s);
}

/* The canonical name of an attribute type: its OID in dotted form. */
static void type_oid(const char *t, char *out, size_t n)
{
	ASN1_OBJECT *o;

	char up[64];
	size_t k = 0;

	if (!strncasecmp(t, "OID.", 4))
		t += 4;
	for (; t[k] && k + 1 < sizeof(up); k++)
		up[k] = (char)toupper((unsigned char)t[k]);
	up[k] = '\0';
	o = OBJ_txt2obj(t, 0);
	if (!o) /* short names in any case: "cn", "Cn" */
		o = OBJ_txt2obj(up, 0);
	if (!o) {
		/* OpenSSL knows long and short names; "E" is emailAddress */
		int nid =
		    !strcasecmp(t, "E") ? NID_pkcs9_emailAddress : NID_undef;

		o = nid != NID_undef ? OBJ_nid2obj(nid) : NULL;
	}
	if (!o || OBJ_obj2txt(out, (int)n, o, 1) <= 0)
		snprintf(out, n, "%s", t);
	ASN1_OBJECT_free(o);
}

/* The next attribute of s (RFC 4514 escapes, separators ',' ';' '+'),
 * canonical, or NULL at the end; *bad on a malformed one. */
static char *next_ava(const char **s, int *bad)
{
	char type[128], oid[128], val[1024];
	size_t tn = 0, vn = 0;
	const char *p = *s;
	int quoted = 0, space = 0;
	char *out;

	while (*p == ' ' || *p == ',' || *p == ';' || *p == '+')
		p++;
	if (!*p)
		return NULL;
	while (*p && *p != '=' && tn + 1 < sizeof(type))
		type[tn++] = *p++;
	while (tn > 0 && type[tn - 1] == ' ')
		tn--;
	type[tn] = '\0';
	if (*p != '=' || tn == 0) {
		*bad = 1;
		return NULL;
	}
	for (p++; *p == ' '; p++)
		;
	for (; *p && vn + 1 < sizeof(val); p++) {
		char c = *p;

		if (c == '"') {
			quoted = !quoted;
			continue;
		}
		if (!quoted && (c == ',' || c == ';' || c == '+'))
			break;
		if (c == '\\' && p[1]) {
			if (isxdigit((unsigned char)p[1]) &&
			    isxdigit((unsigned char)p[2])) {
				c = (char)(ps_hex_digit(p[1]) << 4 |
					   ps_hex_digit(p[2]));
				p += 2;
			} else {
				c = *++p;
			}
		} else if (c == ' ' || c == '\t') {
			space = vn > 0;
			continue;
		}
		if (space)
			val[vn++] = ' ';
		space = 0;
		if (vn + 1 < sizeof(val))
			val[vn++] = (char)tolower((unsigned char)c);
	}
	val[vn] = '\0';
	if (vn + 1 >= sizeof(val))
		*bad = 1; /* too long to compare */
	*s = p;
	type_oid(type, oid, sizeof(oid));
	out = malloc(strlen(oid) + vn + 2);
	if (out)
		snprintf(out, strlen(oid) + vn + 2, "%s=%s", oid, val);
	else
		*bad = 1;
	return out;
}

/* The canonical attributes of a DN, sorted; -1 when malformed. */
static int dn_avas(const char *dn, struct ava **out, size_t *n)
{
	size_t cap = 0;
	int bad = 0;
	char *s;

	*out = NULL;
	*n = 0;
	for (s = next_ava(&dn, &bad); s; s = next_ava(&dn, &bad)) {
		if (*n == cap) {
			struct ava *a;

			cap = cap ? cap * 2 : 8;
			a = realloc(*out, cap * sizeof(*a));
			if (!a) {
				free(s);
				bad = 1;
				break;
			}
			*out = a;
		}
		(*out)[(*n)++].s = s;
	}
	if (*n > 1)
		qsort(*out, *n, sizeof(**out), ava_cmp);
	return bad || *n == 0 ? -1 : 0;
}

static void avas_free(struct ava *a, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(a[i].s);
	free(a);
}

int ps_jipws_dn_equal(const char *a, const char *b)
{
	struct ava *x = NULL, *y = NULL;
	size_t nx = 0, ny = 0;
	int eq = dn_avas(a, &x, &nx) == 0;

	eq = dn_avas(b, &y, &ny) == 0 && eq && nx == ny;
	for (size_t i = 0; eq && i < nx; i++)
		eq = !strcmp(x[i].s, y[i].s);
	avas_free(x, nx);
	avas_free(y, ny);
	return eq;
}

/* The read-modify-write ------------------------------------------------- */

static const char *ws_type(const char *type)
{
	if (!strcmp(type, "commercial"))
		return "V";
	if (!strcmp(type, "qualified"))
		return "Q";
	return NULL;
}

static int has_cert(const struct ps_jipws_cert *c, size_t n, const char *t,
		    const char *issuer, const char *serial_hex)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(c[i].type, t) &&
		    ps_jipws_number_equal(c[i].number, serial_hex) &&
		    ps_jipws_dn_equal(c[i].issuer, issuer))
			return 1;
	return 0;
}

int ps_jipws_cert_is(const struct ps_jipws_cert *c, const char *type,
		     const char *issuer, const char *serial_hex)
{
	const char *t = type ? ws_type(type) : NULL;

	return t && issuer && serial_hex &&
	       has_cert(c, 1, t, issuer, serial_hex);
}

/* An entry of the superseded certificate: to leave out. */
static int dropped(const struct ps_jipws_cert *c, const char *t,
		   const struct ps_jipws_item *it)
{
	return it->drop_hex && it->drop_issuer &&
	       has_cert(c, 1, t, it->drop_issuer, it->drop_hex) &&
	       !has_cert(c, 1, t, it->issuer, it->serial_hex);
}

/* The issuer as the documentation's examples write it: RFC 4514's order
 * with ", " between the attributes ("CN=..., O=..., C=CZ"). */
static char *issuer_text(const char *dn)
{
	size_t n = strlen(dn), k = 0;
	char *s = malloc(2 * n + 1);

	for (size_t i = 0; s && i < n; i++) {
		s[k++] = dn[i];
		if (dn[i] == '\\' && i + 1 < n)
			s[k++] = dn[++i];
		else if (dn[i] == ',' && i + 1 < n && dn[i + 1] != ' ')
			s[k++] = ' ';
	}
	if (s)
		s[k] = '\0';
	return s;
}

static char *number_text(const struct ps_jipws *w, const char *serial_hex)
{
	BIGNUM *b = parse_bn(serial_hex, 1);
	char *o = b ? (w->serial_dec ? BN_bn2dec(b) : BN_bn2hex(b)) : NULL;
	/* BN_bn2hex writes whole bytes: no leading zero, as JIP lists them */
	char *s = o ? strdup(o[0] == '0' && o[1] ? o + 1 : o) : NULL;

	OPENSSL_free(o);
	BN_free(b);
	return s;
}

/* The list read, without the superseded certificate's entries, plus
 * the new entry unless it is there (the list is set as a whole:
 * 3-metody-edit-1.rst, "Aktualizace údajů"). *nl: its length. */
static int with_new(const struct ps_jipws *w, const struct ps_jipws_cert *c,
		    size_t n, const char *t, const struct ps_jipws_item *it,
		    struct ps_jipws_cert **out, size_t *nl)
{
	struct ps_jipws_cert *l = calloc(n + 1, sizeof(*l));
	int bad = !l;
	size_t k = 0;

	for (size_t i = 0; !bad && i < n; i++, k++) {
		if (dropped(&c[i], t, it)) {
			k--;
			continue;
		}
		l[k].type = strdup(c[i].type);
		l[k].number = strdup(c[i].number);
		l[k].issuer = strdup(c[i].issuer);
		bad = !l[k].type || !l[k].number || !l[k].issuer;
	}
	if (!bad && !has_cert(c, n, t, it->issuer, it->serial_hex)) {
		l[k].type = strdup(t);
		l[k].number = number_text(w, it->serial_hex);
		l[k].issuer = issuer_text(it->issuer);
		bad = !l[k].type || !l[k].number || !l[k].issuer;
		k++;
	}
	*out = l;
	*nl = l ? k : 0;
	return bad ? -1 : 0;
}

/* How many entries of c are the superseded certificate's. */
static int n_dropped(const struct ps_jipws_cert *c, size_t n, const char *t,
		     const struct ps_jipws_item *it)
{
	int k = 0;

	for (size_t i = 0; i < n; i++)
		k += dropped(&c[i], t, it);
	return k;
}

static int same_list(const struct ps_jipws_cert *a, size_t na,
		     const struct ps_jipws_cert *b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].type, b[i].type) ||
		    strcmp(a[i].number, b[i].number) ||
		    strcmp(a[i].issuer, b[i].issuer))
			return 0;
	return 1;
}

/* After the update: the new entry there, the superseded ones gone. */
static int check_back(struct ps_jipws *w, const char *login, const char *t,
		      const struct ps_jipws_item *it, struct ps_err *err)
{
	struct ps_jipws_cert *c = NULL;
	size_t n = 0;
	int rc = ps_jipws_get_user(w, login, &c, &n, NULL, err);

	if (!rc && (!has_cert(c, n, t, it->issuer, it->serial_hex) ||
		    n_dropped(c, n, t, it) > 0))
		rc = ps_err_set(err, PS_EXIT_FAIL, "jip-ws-not-visible",
				"check the user's certificates in the web "
				"form; running the command again is safe",
				"the editing web service accepted the "
				"certificates of %s but does not show the "
				"change",
				login);
	ps_jipws_certs_free(c, n);
	return rc;
}

/* One round: read, read again (same casPosledniZmeny), write, read back.
 * -1: the user changed between the reads (start again). */
static int round_once(struct ps_jipws *w, const char *login, const char *t,
		      const struct ps_jipws_item *it, enum ps_jipws_result *res,
		      int *removed, struct ps_err *err)
{
	struct ps_jipws_cert *c = NULL, *c2 = NULL, *l = NULL;
	size_t n = 0, n2 = 0, nl = 0;
	char *when = NULL, *when2 = NULL;
	int rc = ps_jipws_get_user(w, login, &c, &n, &when, err);
	int there = !rc && has_cert(c, n, t, it->issuer, it->serial_hex);

	*res = there ? PS_JIPWS_ALREADY : PS_JIPWS_SET;
	if (rc || (there && n_dropped(c, n, t, it) == 0))
		goto out;
	if (with_new(w, c, n, t, it, &l, &nl))
		rc = ps_err_nomem(err);
	/* The service has no conditional update: read again right before
	 * writing, and start again when casPosledniZmeny moved. */
	if (!rc)
		rc = ps_jipws_get_user(w, login, &c2, &n2, &when2, err);
	if (!rc && ((when && when2 && strcmp(when, when2) != 0) ||
		    !same_list(c, n, c2, n2))) {
		rc = -1;
		goto out;
	}
	if (!rc)
		rc = update_user(w, login, l, nl, err);
	if (!rc)
		rc = check_back(w, login, t, it, err);
	if (!rc)
		*removed = n_dropped(c, n, t, it);
out:
	ps_jipws_certs_free(c, n);
	ps_jipws_certs_free(c2, n2);
	ps_jipws_certs_free(l, n + 1);
	free(when);
	free(when2);
	return rc;
}

int ps_jipws_add(struct ps_jipws *w, const char *login,
		 const struct ps_jipws_item *it, enum ps_jipws_result *res,
		 int *removed, struct ps_err *err)
{
	const char *t = it->type ? ws_type(it->type) : NULL;
	int rc = -1;

	*removed = 0;
	if (!t || !it->issuer || !it->serial_hex || !login)
		return ps_err_set(err, PS_EXIT_FAIL, "jip-ws-input",
				  "ps-fetch's cert records carry type, "
				  "issuer and serial",
				  "certificate %s: no type, issuer, serial or "
				  "user to register",
				  it->serial_hex ? it->serial_hex : "?");
	if (w->caais && !strcmp(t, "Q")) {
		/* CAAIS keeps commercial certificates only (the
		 * clientCertificate of CreateUser, 3-metody-edit-1.rst). */
		*res = PS_JIPWS_SKIPPED;
		return 0;
	}
	for (int i = 0; i < w->attempts && rc < 0; i++)
		rc = round_once(w, login, t, it, res, removed, err);
	if (rc < 0)
		rc = ps_err_set(err, PS_EXIT_TEMP, "jip-ws-conflict",
				"someone else edits the user now: run the "
				"command again later",
				"the certificates of %s changed between two "
				"reads %d times; nothing was written",
				login, w->attempts);
	return rc;
}

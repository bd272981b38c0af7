/* psrenew: certificates on tokens, paired with keys and successors. */
#include <psrenew/inventory.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509.h>

#include <psrenew/keypair.h>
#include <psrenew/p11obj.h>
#include <psrenew/record.h>
#include <psrenew/codec.h>

/* The key objects of one token, for pairing by CKA_ID. */
struct keyset {
	struct ps_tobj *priv, *pub;
	size_t npriv, npub;
};

static int same_id(const struct ps_tobj *a, const struct ps_tobj *b)
{
	return a->id_len && a->id_len == b->id_len &&
	       memcmp(a->id, b->id, a->id_len) == 0;
}

/* Key object o holds the certificate's public key: 1 yes, 0 another key,
 * -1 it does not show its public values (an EC private key). The values
 * came with the listing's one read of the object. */
static int holds_key(const struct ps_tobj *o, const struct ps_cert *c)
{
	unsigned char id[20];

	if (ps_key_values_id(o, id))
		return -1;
	return memcmp(id, c->key_id, sizeof(id)) == 0;
}

/* A public key object with the certificate's CKA_ID and public key: 1;
 * 0 when those with its CKA_ID hold other keys; -1 when there is none. */
static int pub_here(const struct keyset *ks, const struct ps_invcert *ic)
{
	int r = -1;

	for (size_t i = 0; i < ks->npub; i++)
		if (same_id(&ks->pub[i], &ic->obj)) {
			r = holds_key(&ks->pub[i], &ic->cert);
			if (r != 0)
				return 1;
		}
	return r;
}

/* A private key with the certificate's CKA_ID and public key; where the
 * private key does not show it (EC), its public key object says, if the
 * token has one. */
static int priv_here(const struct keyset *ks, const struct ps_invcert *ic)
{
	for (size_t i = 0; i < ks->npriv; i++) {
		int r;

		if (!same_id(&ks->priv[i], &ic->obj))
			continue;
		r = holds_key(&ks->priv[i], &ic->cert);
		if (r < 0)
			r = pub_here(ks, ic) != 0;
		if (r)
			return 1;
	}
	return 0;
}

static void keyset_free(struct keyset *ks)
{
	ps_tobjs_free(ks->priv, ks->npriv);
	ps_tobjs_free(ks->pub, ks->npub);
}

/* Parses certs[0..ncerts) into new entries of inv (their members move
 * there; the objects that are not X.509 are counted and freed). No key
 * is known yet: has_key -1, key_on_token 0. */
static int add_certs(struct ps_token *tok, struct ps_inventory *inv,
		     struct ps_tobj *certs, size_t ncerts, struct ps_err *err)
{
	struct ps_invcert *grown =
	    realloc(inv->c, (inv->n + ncerts + 1) * sizeof(*grown));

	if (!grown) {
		ps_tobjs_free(certs, ncerts);
		return ps_err_nomem(err);
	}
	inv->c = grown;
	for (size_t i = 0; i < ncerts; i++) {
		struct ps_invcert *ic = &inv->c[inv->n];

		memset(ic, 0, sizeof(*ic));
		if (ps_cert_from_der(certs[i].value, certs[i].value_len,
				     &ic->cert, NULL) != 0) {
			inv->skipped++;
			free(certs[i].id);
			free(certs[i].label);
			free(certs[i].value);
			continue;
		}
		ic->tok = tok;
		ic->obj = certs[i];
		/* ic->cert keeps the DER now: drop this copy. */
		free(ic->obj.value);
		ic->obj.value = NULL;
		ic->obj.value_len = 0;
		ic->has_key = -1;
		ic->superseded_by = -1;
		inv->n++;
	}
	free(certs); /* the members moved into inv */
	return 0;
}

/* has_key and key_on_token of entry ic from the keys in ks. */
static void pair_keys(struct ps_token *tok, struct ps_invcert *ic,
		      const struct keyset *ks)
{
	ic->has_key = tok->logged_in ? priv_here(ks, ic) : -1;
	ic->key_on_token = tok->logged_in ? ic->has_key : pub_here(ks, ic) == 1;
}

static int load_token(struct ps_token *tok, struct ps_inventory *inv,
		      struct ps_err *err)
{
	struct ps_tobj *certs = NULL;
	struct keyset ks = { NULL, NULL, 0, 0 };
	size_t ncerts = 0, first = inv->n;
	int rc = ps_token_objects(tok, CKO_CERTIFICATE, &certs, &ncerts, err);

	if (!rc && tok->logged_in)
		rc = ps_token_objects(tok, CKO_PRIVATE_KEY, &ks.priv, &ks.npriv,
				      err);
	if (!rc)
		rc = ps_token_objects(tok, CKO_PUBLIC_KEY, &ks.pub, &ks.npub,
				      err);
	if (rc) {
		ps_tobjs_free(certs, ncerts);
		keyset_free(&ks);
		return rc;
	}
	rc = add_certs(tok, inv, certs, ncerts, err);
	for (size_t i = first; !rc && i < inv->n; i++)
		pair_keys(tok, &inv->c[i], &ks);
	keyset_free(&ks);
	return rc;
}

/* The certificates with this CKA_ID (or CKA_SUBJECT), appended to
 * *certs unless there already. */
static int certs_where(struct ps_token *tok, CK_ATTRIBUTE_TYPE type,
		       const void *v, size_t len, struct ps_tobj **certs,
		       size_t *n, struct ps_err *err)
{
	CK_ATTRIBUTE a = { type, (void *)v, len };

	return ps_token_objects_match(tok, CKO_CERTIFICATE, &a, 1, certs, n,
				      err);
}

/* The targets (CKA_IDs ids) on tok, and the certificates of their holders
 * found by the targets' CKA_SUBJECT. */
static int target_certs(struct ps_token *tok, const char *const *ids,
			size_t nids, struct ps_tobj **certs, size_t *n,
			struct ps_err *err)
{
	size_t ntargets;
	int rc = 0;

	for (size_t i = 0; !rc && i < nids; i++) {
		unsigned char id[256];
		size_t len;

		if (!ps_unhex(ids[i], id, sizeof(id), &len) && len > 0)
			rc = certs_where(tok, CKA_ID, id, len, certs, n, err);
	}
	ntargets = *n;
	for (size_t i = 0; !rc && i < ntargets; i++) {
		const unsigned char *p = (*certs)[i].value;
		X509 *x =
		    p ? d2i_X509(NULL, &p, (long)(*certs)[i].value_len) : NULL;
		unsigned char *der = NULL;
		int len = x ? i2d_X509_NAME(X509_get_subject_name(x), &der) : 0;

		if (len > 0)
			rc = certs_where(tok, CKA_SUBJECT, der, (size_t)len,
					 certs, n, err);
		OPENSSL_free(der);
		X509_free(x);
	}
	return rc;
}

static int is_target(const struct ps_invcert *ic, const char *const *ids,
		     size_t nids)
{
	char *hid = ps_hex(ic->obj.id, ic->obj.id_len);
	int yes = 0;

	for (size_t i = 0; hid && i < nids && !yes; i++)
		yes = !strcasecmp(hid, ids[i]);
	free(hid);
	return yes;
}

/* Is b newer than a: started later, or in the same second and ends later
 * (a CA that issues at once: a renewal within the second of its
 * predecessor, as a test CA's can be)? */
static int newer(const struct ps_cert *b, const struct ps_cert *a)
{
	return b->not_before > a->not_before ||
	       (b->not_before == a->not_before && b->not_after > a->not_after);
}

/* Could inv->c[j] supersede a target among inv->c[from..)? Only then its
 * key is looked for. */
static int may_supersede(const struct ps_inventory *inv, size_t from, size_t j,
			 const char *const *ids, size_t nids)
{
	const struct ps_invcert *b = &inv->c[j];

	if (b->cert.not_after <= inv->now)
		return 0;
	for (size_t i = from; i < inv->n; i++) {
		const struct ps_invcert *a = &inv->c[i];

		if (i != j && newer(&b->cert, &a->cert) &&
		    ps_cert_same_holder(&a->cert, &b->cert) &&
		    is_target(a, ids, nids))
			return 1;
	}
	return 0;
}

/* The keys with entry ic's CKA_ID, and what they say of it. */
static int keys_of(struct ps_token *tok, struct ps_invcert *ic,
		   struct ps_err *err)
{
	struct keyset ks = { NULL, NULL, 0, 0 };
	CK_ATTRIBUTE a = { CKA_ID, ic->obj.id, ic->obj.id_len };
	int rc = 0;

	if (tok->logged_in)
		rc = ps_token_objects_match(tok, CKO_PRIVATE_KEY, &a, 1,
					    &ks.priv, &ks.npriv, err);
	if (!rc)
		rc = ps_token_objects_match(tok, CKO_PUBLIC_KEY, &a, 1, &ks.pub,
					    &ks.npub, err);
	if (!rc)
		pair_keys(tok, ic, &ks);
	keyset_free(&ks);
	return rc;
}

static int load_token_ids(struct ps_token *tok, struct ps_inventory *inv,
			  const char *const *ids, size_t nids,
			  struct ps_err *err)
{
	struct ps_tobj *certs = NULL;
	size_t ncerts = 0, first = inv->n;
	int rc = target_certs(tok, ids, nids, &certs, &ncerts, err);

	if (rc) {
		ps_tobjs_free(certs, ncerts);
		return rc;
	}
	rc = add_certs(tok, inv, certs, ncerts, err);
	for (size_t j = first; !rc && j < inv->n; j++)
		if (inv->c[j].obj.id_len &&
		    may_supersede(inv, first, j, ids, nids))
			rc = keys_of(tok, &inv->c[j], err);
	return rc;
}

static int cmp_cert(const void *pa, const void *pb)
{
	const struct ps_invcert *a = pa, *b = pb;
	int r;

	if (a->tok != b->tok)
		return a->tok < b->tok ? -1 : 1;
	if (a->cert.type != b->cert.type)
		return a->cert.type == PS_CERT_QUALIFIED ? -1 : 1;
	r = strcmp(a->cert.cn ? a->cert.cn : "", b->cert.cn ? b->cert.cn : "");
	if (r)
		return r;
	if (a->cert.not_after != b->cert.not_after)
		return a->cert.not_after < b->cert.not_after ? -1 : 1;
	return strcmp(a->cert.serial_hex, b->cert.serial_hex);
}

/* For each certificate: the newest valid certificate of the same holder and
 * type on the same token that is newer (see newer()) and has its key
 * there, if any. A certificate without its key (written alone by another tool)
 * can sign nothing: it supersedes nothing. */
static void link_successors(struct ps_inventory *inv)
{
	for (size_t i = 0; i < inv->n; i++) {
		const struct ps_invcert *a = &inv->c[i];
		long best = -1;

		for (size_t j = 0; j < inv->n; j++) {
			const struct ps_invcert *b = &inv->c[j];

			if (j == i || b->tok != a->tok || !b->key_on_token ||
			    b->cert.not_after <= inv->now ||
			    !newer(&b->cert, &a->cert) ||
			    !ps_cert_same_holder(&a->cert, &b->cert))
				continue;
			if (best < 0 || newer(&b->cert, &inv->c[best].cert))
				best = (long)j;
		}
		inv->c[i].superseded_by = best;
	}
}

int ps_inventory_load(struct ps_token **toks, size_t ntoks, time_t now,
		      struct ps_inventory *inv, struct ps_err *err)
{
	return ps_inventory_load_ids(toks, ntoks, now, NULL, 0, inv, err);
}

int ps_inventory_load_ids(struct ps_token **toks, size_t ntoks, time_t now,
			  const char *const *ids, size_t nids,
			  struct ps_inventory *inv, struct ps_err *err)
{
	memset(inv, 0, sizeof(*inv));
	inv->now = now;
	for (size_t t = 0; t < ntoks; t++) {
		int rc = ids ? load_token_ids(toks[t], inv, ids, nids, err)
			     : load_token(toks[t], inv, err);

		if (rc) {
			ps_inventory_free(inv);
			return rc;
		}
	}
	if (inv->n > 1)
		qsort(inv->c, inv->n, sizeof(*inv->c), cmp_cert);
	link_successors(inv);
	return 0;
}

/* A copy of o's CKA_ID and label (the value is not needed after the
 * parse, which add_certs does from the copy's value). */
static int tobj_copy(struct ps_tobj *to, const struct ps_tobj *o)
{
	CK_ATTRIBUTE id = { CKA_ID, o->id, o->id_len };
	CK_ATTRIBUTE label = { CKA_LABEL, o->label,
			       o->label ? strlen(o->label) : 0 };
	CK_ATTRIBUTE value = { CKA_VALUE, o->value, o->value_len };

	memset(to, 0, sizeof(*to));
	to->handle = o->handle;
	to->cls = o->cls;
	if (!o->id)
		id.ulValueLen = CK_UNAVAILABLE_INFORMATION;
	if (!o->label)
		label.ulValueLen = CK_UNAVAILABLE_INFORMATION;
	if (!o->value)
		value.ulValueLen = CK_UNAVAILABLE_INFORMATION;
	return ps_attr_dup(&id, &to->id, &to->id_len) ||
		       ps_attr_dup(&label, (unsigned char **)&to->label,
				   NULL) ||
		       ps_attr_dup(&value, &to->value, &to->value_len)
		   ? -1
		   : 0;
}

int ps_inventory_from_objects(struct ps_token *tok, time_t now,
			      const struct ps_tobj *certs, size_t ncerts,
			      struct ps_tobj *priv, size_t npriv,
			      struct ps_tobj *pub, size_t npub,
			      struct ps_inventory *inv, struct ps_err *err)
{
	struct keyset ks = { priv, pub, npriv, npub };
	struct ps_tobj *copy = calloc(ncerts + 1, sizeof(*copy));
	size_t k = 0;
	int rc = copy ? 0 : ps_err_nomem(err);

	memset(inv, 0, sizeof(*inv));
	inv->now = now;
	for (; !rc && k < ncerts; k++)
		if (tobj_copy(&copy[k], &certs[k]) < 0)
			rc = ps_err_nomem(err);
	if (rc) {
		ps_tobjs_free(copy, k + (copy != NULL));
		return rc;
	}
	rc = add_certs(tok, inv, copy, ncerts, err);
	for (size_t i = 0; !rc && i < inv->n; i++)
		pair_keys(tok, &inv->c[i], &ks);
	if (rc) {
		ps_inventory_free(inv);
		return rc;
	}
	if (inv->n > 1)
		qsort(inv->c, inv->n, sizeof(*inv->c), cmp_cert);
	link_successors(inv);
	return 0;
}

void ps_inventory_free(struct ps_inventory *inv)
{
	for (size_t i = 0; i < inv->n; i++) {
		ps_cert_free(&inv->c[i].cert);
		free(inv->c[i].obj.id);
		free(inv->c[i].obj.label);
		free(inv->c[i].obj.value);
	}
	free(inv->c);
	memset(inv, 0, sizeof(*inv));
}

const char *ps_inventory_state(const struct ps_inventory *inv, size_t i)
{
	const struct ps_cert *c = &inv->c[i].cert;

	if (c->not_after <= inv->now)
		return "expired";
	if (c->not_before > inv->now)
		return "not-yet-valid";
	if (inv->c[i].superseded_by >= 0)
		return "superseded";
	return "valid";
}

int ps_inventory_expiring(const struct ps_inventory *inv, size_t i, long days)
{
	const struct ps_cert *c = &inv->c[i].cert;

	return c->not_after > inv->now && c->not_before <= inv->now &&
	       inv->c[i].superseded_by < 0 &&
	       difftime(c->not_after, inv->now) <= (double)days * 86400.0;
}

int ps_expiring_parse(const char *s, struct ps_expiring *e, struct ps_err *err)
{
	const char *p = s ? s : "";

	memset(e, 0, sizeof(*e));
	e->max = -1;
	while (*p) {
		char *end;
		long d = strtol(p, &end, 10);

		if (end == p || d < 0 || d > 36500 || (*end && *end != ',') ||
		    (*end == ',' && !end[1]) ||
		    e->n == sizeof(e->days) / sizeof(*e->days))
			return ps_err_set(
			    err, PS_EXIT_USAGE, "usage",
			    "for example --expiring 30 or --expiring 30,21,7",
			    "--expiring takes up to 8 numbers of days "
			    "(0 to 36500), comma-separated, not '%.40s'",
			    s);
		e->days[e->n++] = d;
		e->max = d > e->max ? d : e->max;
		p = *end ? end + 1 : end;
	}
	if (!e->n)
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--expiring needs a number of days");
	return 0;
}

long ps_inventory_threshold(const struct ps_inventory *inv, size_t i,
			    const struct ps_expiring *e, int *fresh)
{
	long t = -1;

	for (size_t k = 0; k < e->n; k++)
		if ((t < 0 || e->days[k] < t) &&
		    ps_inventory_expiring(inv, i, e->days[k]))
			t = e->days[k];
	*fresh = t >= 0 && !ps_inventory_expiring(inv, i, t - 1);
	return t;
}

static json_t *has_key_json(int has_key)
{
	return has_key < 0 ? json_null() : json_boolean(has_key);
}

json_t *ps_cert_record(const struct ps_token *tok, const unsigned char *id,
		       size_t id_len, const char *label,
		       const struct ps_cert *c, int has_key, const char *state,
		       const char *superseded_by, const struct ps_config *cfg,
		       time_t now)
{
	json_t *r = json_object();
	char nb[32], na[32];
	char *hid = ps_hex(id, id_len);
	char *uri =
	    ps_uri_format_object(tok->uri, id, id_len, NULL, PS_OBJ_CERT);

	if (!r || !hid || !uri) {
		json_decref(r);
		free(hid);
		free(uri);
		return NULL;
	}
	ps_time_iso(c->not_before, nb, sizeof(nb));
	ps_time_iso(c->not_after, na, sizeof(na));
	ps_json_set_str(r, "kind", "cert");
	ps_json_set_str(r, "module", ps_module_path(tok->mod));
	ps_json_set_str(r, "token", tok->uri);
	ps_json_set_str(r, "token_label", tok->label);
	ps_json_set_str(r, "uri", uri);
	ps_json_set_str(r, "id", hid);
	ps_json_set_str(r, "label", label);
	ps_json_set_str(r, "subject", c->subject);
	ps_json_set_str(r, "cn", c->cn);
	ps_json_set_str(r, "email", c->email);
	ps_json_set_str(r, "issuer", c->issuer);
	ps_json_set_str(r, "serial_hex", c->serial_hex);
	ps_json_set_str(r, "serial_dec", c->serial_dec);
	ps_json_set_str(r, "type", ps_cert_type_name(c->type));
	ps_json_set_str(r, "qc_type", ps_cert_qc_type_name(c->qc_type));
	json_object_set_new(r, "can_login", json_boolean(c->can_login));
	ps_json_set_str(r, "holder_id", c->holder_id);
	ps_json_set_str(r, "jip_ca",
			ps_cert_jip_ca(c, cfg ? cfg->jip_ca : NULL,
				       cfg ? cfg->n_jip_ca : 0));
	ps_json_set_str(r, "not_before", nb);
	ps_json_set_str(r, "not_after", na);
	json_object_set_new(r, "days_left",
			    json_integer(ps_cert_days_left(c, now)));
	ps_json_set_str(r, "state", state);
	json_object_set_new(r, "has_key", has_key_json(has_key));
	ps_json_set_str(r, "superseded_by", superseded_by);
	ps_json_set_str(r, "key_type", c->key_type);
	ps_json_set_str(r, "sha256", c->sha256);
	free(hid);
	free(uri);
	return r;
}

json_t *ps_inventory_record(const struct ps_inventory *inv, size_t i,
			    const struct ps_config *cfg)
{
	const struct ps_invcert *ic = &inv->c[i];

	return ps_cert_record(
	    ic->tok, ic->obj.id, ic->obj.id_len, ic->obj.label, &ic->cert,
	    ic->has_key, ps_inventory_state(inv, i),
	    ic->superseded_by >= 0 ? inv->c[ic->superseded_by].cert.serial_hex
				   : NULL,
	    cfg, inv->now);
}

int ps_inventory_select(const struct ps_inventory *inv,
			const struct ps_selector *sel, size_t **idx, size_t *n,
			struct ps_err *err)
{
	char *serial = NULL;
	size_t *v = malloc((inv->n ? inv->n : 1) * sizeof(*v));
	size_t k = 0;
	int rc = 0;

	*idx = NULL;
	*n = 0;
	if (!v)
		return ps_err_nomem(err);
	if (sel->serial &&
	    (rc = ps_serial_normalise(sel->serial, &serial, err))) {
		free(v);
		return rc;
	}
	for (size_t i = 0; i < inv->n; i++) {
		const struct ps_invcert *ic = &inv->c[i];
		char *id = ps_hex(ic->obj.id, ic->obj.id_len);
		int ok = id != NULL;

		if (ok && sel->id_hex)
			ok = strcasecmp(sel->id_hex, id) == 0;
		if (ok && serial)
			ok = strcmp(serial, ic->cert.serial_hex) == 0;
		if (ok && sel->type >= 0)
			ok = ic->cert.type == sel->type;
		free(id);
		if (ok)
			v[k++] = i;
	}
	free(serial);
	*idx = v;
	*n = k;
	return 0;
}

long ps_inventory_find_record(const struct ps_inventory *inv, const json_t *rec)
{
	const char *tok = ps_json_str(rec, "token");
	const char *id = ps_json_str(rec, "id");
	const char *serial = ps_json_str(rec, "serial_hex");

	if (!tok || !serial)
		return -1;
	for (size_t i = 0; i < inv->n; i++) {
		const struct ps_invcert *ic = &inv->c[i];
		char *hid;
		int ok;

		if (strcmp(ic->tok->uri, tok) ||
		    strcmp(ic->cert.serial_hex, serial))
			continue;
		hid = ps_hex(ic->obj.id, ic->obj.id_len);
		ok = hid && (!id || strcasecmp(hid, id) == 0);
		free(hid);
		if (ok)
			return (long)i;
	}
	return -1;
}

void ps_inventory_label_serial(struct ps_token **toks, size_t n, json_t *r)
{
	const char *uri = ps_json_str(r, "token");
	const struct ps_token *t = NULL;
	size_t same = 0;

	for (size_t i = 0; uri && i < n; i++)
		if (!strcmp(toks[i]->uri, uri))
			t = toks[i];
	for (size_t i = 0; t && i < n; i++)
		same += !strcmp(toks[i]->label, t->label);
	if (same > 1)
		json_object_set_new(
		    r, "token_label",
		    json_sprintf("%s (serial %s)", t->label, t->serial));
}

/* psrenew: the PKCS#11 object layer: finding, reading, creating and
 * destroying objects, key pairs and signatures, the object index and the
 * leftovers of interrupted writes. */
#include <psrenew/p11obj.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <psrenew/ckr.h>

/* The calls ------------------------------------------------------------ */

/* One C_FindObjectsInit ... C_FindObjectsFinal: C_FindObjects into *hs
 * (room for cap) once, or (all) until the token has no more, *hs grown. */
static CK_RV search(struct ps_token *tok, CK_ATTRIBUTE *t, CK_ULONG n,
		    CK_OBJECT_HANDLE **hs, CK_ULONG cap, int all,
		    CK_ULONG *count)
{
	CK_FUNCTION_LIST *fl = ps_module_functions(tok->mod);
	CK_ULONG got = 0, want = 0;
	CK_RV rv = fl->C_FindObjectsInit(tok->session, t, n);

	*count = 0;
	if (rv != CKR_OK)
		return rv;
	do {
		if (all && *count == cap) {
			CK_OBJECT_HANDLE *nh;

			cap = cap ? cap * 2 : 256;
			nh = realloc(*hs, cap * sizeof(*nh));
			if (!nh) {
				rv = CKR_HOST_MEMORY;
				break;
			}
			*hs = nh;
		}
		want = cap - *count;
		rv = fl->C_FindObjects(tok->session, *hs + *count, want, &got);
		if (rv != CKR_OK)
			break;
		*count += got;
		/* Fewer than asked for: the search is over (NSS reads the
		 * end of a search the same way), no call to hear "0". */
	} while (all && got == want);
	fl->C_FindObjectsFinal(tok->session);
	if (rv != CKR_OK)
		*count = 0;
	return rv;
}

CK_RV ps_p11_find(struct ps_token *tok, CK_ATTRIBUTE *t, CK_ULONG n,
		  CK_OBJECT_HANDLE *hs, CK_ULONG max, CK_ULONG *count)
{
	return search(tok, t, n, &hs, max, 0, count);
}

CK_RV ps_p11_find_all(struct ps_token *tok, CK_ATTRIBUTE *t, CK_ULONG n,
		      CK_OBJECT_HANDLE **hs, CK_ULONG *count)
{
	CK_RV rv;

	*hs = NULL;
	rv = search(tok, t, n, hs, 0, 1, count);
	if (rv != CKR_OK) {
		free(*hs);
		*hs = NULL;
	}
	return rv;
}

CK_RV ps_p11_get(struct ps_token *tok, CK_OBJECT_HANDLE h, CK_ATTRIBUTE *a,
		 CK_ULONG n)
{
	return ps_module_functions(tok->mod)->C_GetAttributeValue(tok->session,
								  h, a, n);
}

/* The object lacks the attribute, or will not show it. */
static int attr_unshown(CK_RV rv)
{
	return rv == CKR_ATTRIBUTE_TYPE_INVALID ||
	       rv == CKR_ATTRIBUTE_SENSITIVE;
}

CK_RV ps_p11_get_attrs(struct ps_token *tok, CK_OBJECT_HANDLE h,
		       CK_ATTRIBUTE *a, CK_ULONG n, void **heap)
{
	CK_ATTRIBUTE sub[PS_P11_MAX_ATTRS];
	CK_ULONG at[PS_P11_MAX_ATTRS], k = 0, m = 0;
	CK_RV rv = ps_p11_get(tok, h, a, n);

	if (rv == CKR_OK || attr_unshown(rv))
		return CKR_OK;
	if (rv != CKR_BUFFER_TOO_SMALL)
		return rv;
	/* PKCS#11 2.40, 5.7: every attribute is processed; one whose buffer
	 * was too small (or that the object lacks or hides) comes back with
	 * CK_UNAVAILABLE_INFORMATION. Ask those lengths, then read them. */
	for (CK_ULONG i = 0; i < n && k < PS_P11_MAX_ATTRS; i++)
		if (a[i].pValue &&
		    a[i].ulValueLen == CK_UNAVAILABLE_INFORMATION) {
			sub[k] = (CK_ATTRIBUTE){ a[i].type, NULL, 0 };
			at[k++] = i;
		}
	rv = ps_p11_get(tok, h, sub, k);
	if (rv != CKR_OK && !attr_unshown(rv))
		return rv;
	for (CK_ULONG j = 0; j < k; j++) {
		CK_ULONG len = sub[j].ulValueLen;

		a[at[j]].ulValueLen = CK_UNAVAILABLE_INFORMATION;
		if (len == CK_UNAVAILABLE_INFORMATION || len > (1UL << 20))
			continue; /* lacking, hidden, or beyond reason */
		heap[at[j]] = malloc(len ? len : 1);
		if (!heap[at[j]])
			return CKR_HOST_MEMORY;
		sub[m] = (CK_ATTRIBUTE){ sub[j].type, heap[at[j]], len };
		at[m++] = at[j];
	}
	rv = m ? ps_p11_get(tok, h, sub, m) : CKR_OK;
	if (rv != CKR_OK && !attr_unshown(rv))
		return rv;
	for (CK_ULONG j = 0; j < m; j++) {
		a[at[j]].pValue = sub[j].pValue;
		a[at[j]].ulValueLen = sub[j].ulValueLen;
	}
	return CKR_OK;
}

CK_RV ps_p11_set(struct ps_token *tok, CK_OBJECT_HANDLE h, CK_ATTRIBUTE *a,
		 CK_ULONG n)
{
	/* A write (and the one after every key generation, its CKA_ID): the
	 * token's free memory may have changed. */
	tok->info_fresh = 0;
	return ps_module_functions(tok->mod)->C_SetAttributeValue(tok->session,
								  h, a, n);
}

int ps_p11_create(struct ps_token *tok, CK_ATTRIBUTE *t, CK_ULONG n,
		  CK_OBJECT_HANDLE *h, const struct ps_p11_write *w,
		  struct ps_err *err)
{
	CK_RV rv = ps_module_functions(tok->mod)->C_CreateObject(tok->session,
								 t, n, h);

	tok->info_fresh = 0; /* the free memory changed (or may have) */

	if (rv == CKR_OK)
		return 0;
	if (rv == CKR_DEVICE_MEMORY)
		return ps_err_set(err, PS_EXIT_TOKEN, "token-full",
				  w->full_hint,
				  "token '%s' has no room for %s (the "
				  "guide's error 621)",
				  tok->label, w->what);
	return ps_ckr_err(err, rv, tok, w->doing ? w->doing : w->what);
}

CK_RV ps_p11_destroy(struct ps_token *tok, CK_OBJECT_HANDLE h)
{
	CK_RV rv =
	    ps_module_functions(tok->mod)->C_DestroyObject(tok->session, h);

	tok->info_fresh = 0;

	if (rv == CKR_OK || rv == CKR_OBJECT_HANDLE_INVALID)
		ps_token_index_forget(tok, h);
	return rv;
}

CK_RV ps_p11_generate_pair(struct ps_token *tok, CK_MECHANISM *mech,
			   CK_ATTRIBUTE *pub, CK_ULONG npub, CK_ATTRIBUTE *priv,
			   CK_ULONG npriv, CK_OBJECT_HANDLE *hpub,
			   CK_OBJECT_HANDLE *hpriv)
{
	return ps_module_functions(tok->mod)->C_GenerateKeyPair(
	    tok->session, mech, pub, npub, priv, npriv, hpub, hpriv);
}

CK_RV ps_p11_mechanism(struct ps_token *tok, CK_MECHANISM_TYPE m,
		       CK_MECHANISM_INFO *mi)
{
	return ps_module_functions(tok->mod)->C_GetMechanismInfo(tok->slot, m,
								 mi);
}

CK_RV ps_p11_sign(struct ps_token *tok, CK_MECHANISM *mech,
		  CK_OBJECT_HANDLE key, unsigned char *data, CK_ULONG len,
		  unsigned char *out, CK_ULONG *out_len)
{
	CK_FUNCTION_LIST *fl = ps_module_functions(tok->mod);
	CK_RV rv = fl->C_SignInit(tok->session, mech, key);

	if (rv == CKR_OK)
		rv = fl->C_Sign(tok->session, data, len, out, out_len);
	return rv;
}

/* Objects ---------------------------------------------------------------- */

void ps_tobjs_free(struct ps_tobj *o, size_t n)
{
	for (size_t i = 0; o && i < n; i++) {
		free(o[i].id);
		free(o[i].label);
		free(o[i].value);
		free(o[i].kv[0]);
		free(o[i].kv[1]);
	}
	free(o);
}

/* Every object the session sees: one search. */
static int find_handles(struct ps_token *t, CK_OBJECT_HANDLE **out, CK_ULONG *n,
			struct ps_err *err)
{
	CK_RV rv = ps_p11_find_all(t, NULL, 0, out, n);

	if (rv == CKR_HOST_MEMORY)
		return ps_err_nomem(err);
	if (rv != CKR_OK)
		return ps_ckr_err(err, rv, t, "searching the token");
	return 0;
}

/* Fills o from one C_GetAttributeValue (ps_p11_get_attrs): CKA_ID,
 * CKA_LABEL and, for a certificate, CKA_VALUE; for a key, CKA_KEY_TYPE and
 * the public values it shows. */
static CK_RV read_attrs(struct ps_token *t, struct ps_tobj *o,
			unsigned char *scratch, size_t scratch_len)
{
	unsigned char id[128], mod[1024], exp[16], par[64], pt[160];
	char label[256];
	int cert = o->cls == CKO_CERTIFICATE;
	CK_ATTRIBUTE a[7] = {
		{ CKA_ID, id, sizeof(id) },
		{ CKA_LABEL, label, sizeof(label) },
		{ CKA_VALUE, scratch, scratch_len },
		{ CKA_MODULUS, mod, sizeof(mod) },
		{ CKA_PUBLIC_EXPONENT, exp, sizeof(exp) },
		{ CKA_EC_PARAMS, par, sizeof(par) },
		{ CKA_EC_POINT, pt, sizeof(pt) },
	};
	void *heap[7] = { NULL };
	CK_RV rv;

	if (!cert)
		a[2] = (CK_ATTRIBUTE){ CKA_KEY_TYPE, &o->key_type,
				       sizeof(o->key_type) };
	rv = ps_p11_get_attrs(t, o->handle, a, cert ? 3 : 7, heap);
	if (rv == CKR_OK && !cert &&
	    a[2].ulValueLen == CK_UNAVAILABLE_INFORMATION)
		o->key_type = CK_UNAVAILABLE_INFORMATION;
	if (rv == CKR_OK &&
	    (ps_attr_dup(&a[0], &o->id, &o->id_len) ||
	     ps_attr_dup(&a[1], (unsigned char **)&o->label, NULL) ||
	     (cert && ps_attr_dup(&a[2], &o->value, &o->value_len))))
		rv = CKR_HOST_MEMORY;
	/* The public values: RSA's modulus and exponent, or EC's curve and
	 * point (a private key shows no point). */
	for (int k = 0; rv == CKR_OK && !cert && k < 2; k++) {
		CK_ATTRIBUTE *v = &a[(o->key_type == CKK_EC ? 5 : 3) + k];

		if ((o->key_type == CKK_RSA || o->key_type == CKK_EC) &&
		    ps_attr_dup(v, &o->kv[k], &o->kv_len[k]))
			rv = CKR_HOST_MEMORY;
	}
	for (int i = 0; i < 7; i++)
		free(heap[i]);
	return rv;
}

int ps_attr_dup(const CK_ATTRIBUTE *a, unsigned char **out, size_t *len)
{
	if (a->ulValueLen == CK_UNAVAILABLE_INFORMATION || !a->pValue)
		return 0;
	*out = malloc(a->ulValueLen + 1);
	if (!*out)
		return -1;
	memcpy(*out, a->pValue, a->ulValueLen);
	(*out)[a->ulValueLen] = '\0'; /* a label is a C string */
	if (len)
		*len = a->ulValueLen;
	return 0;
}

int ps_token_objects_match(struct ps_token *t, CK_OBJECT_CLASS cls,
			   CK_ATTRIBUTE *extra, CK_ULONG nextra,
			   struct ps_tobj **objs, size_t *n, struct ps_err *err)
{
	CK_ATTRIBUTE tmpl[8] = { { CKA_CLASS, &cls, sizeof(cls) } };
	CK_OBJECT_HANDLE *h = NULL;
	CK_ULONG count = 0;
	struct ps_tobj *o;
	unsigned char *scratch = NULL;
	const size_t scratch_len = 16384;
	CK_RV rv;
	int rc = ps_token_open(t, t->rw, err);

	if (rc)
		return rc;
	for (CK_ULONG i = 0; i < nextra && i < 7; i++)
		tmpl[i + 1] = extra[i];
	rv =
	    ps_p11_find_all(t, tmpl, 1 + (nextra < 7 ? nextra : 7), &h, &count);
	if (rv == CKR_HOST_MEMORY)
		return ps_err_nomem(err);
	if (rv != CKR_OK)
		return ps_ckr_err(err, rv, t, "searching the token");
	/* What the caller has read already is not read again. */
	for (CK_ULONG i = 0; i < count;) {
		size_t j = 0;

		while (j < *n && (*objs)[j].handle != h[i])
			j++;
		if (j < *n)
			h[i] = h[--count];
		else
			i++;
	}
	o = realloc(*objs, (*n + count + 1) * sizeof(*o));
	if (cls == CKO_CERTIFICATE)
		scratch = malloc(scratch_len);
	if (o)
		*objs = o;
	if (!o || (cls == CKO_CERTIFICATE && !scratch)) {
		free(h);
		free(scratch);
		return ps_err_nomem(err);
	}
	for (CK_ULONG i = 0; i < count; i++) {
		struct ps_tobj *x = &o[*n];

		memset(x, 0, sizeof(*x));
		x->handle = h[i];
		x->cls = cls;
		rv = read_attrs(t, x, scratch, scratch_len);
		if (rv == CKR_OK) {
			(*n)++;
			continue;
		}
		free(x->id);
		free(x->label);
		free(x->value);
		free(x->kv[0]);
		free(x->kv[1]);
		if (rv == CKR_OBJECT_HANDLE_INVALID)
			continue; /* deleted meanwhile by another process */
		free(h);
		free(scratch);
		return ps_ckr_err(err, rv, t, "reading an object");
	}
	free(h);
	free(scratch);
	return 0;
}

int ps_token_objects(struct ps_token *t, CK_OBJECT_CLASS cls,
		     struct ps_tobj **out, size_t *n, struct ps_err *err)
{
	int rc;

	*out = NULL;
	*n = 0;
	rc = ps_token_objects_match(t, cls, NULL, 0, out, n, err);
	if (rc) {
		ps_tobjs_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
	return rc;
}

/* The object index ---------------------------------------------------- */

struct ps_objindex_ent {
	CK_OBJECT_HANDLE h;
	CK_OBJECT_CLASS cls;
	size_t id_len;
	unsigned char id[64]; /* longer ids are not indexed (nor looked up) */
};

struct ps_objindex {
	struct ps_objindex_ent *e;
	size_t n, cap;
};

static void index_free(struct ps_objindex *x)
{
	free(x->e);
	free(x);
}

void ps_token_index_drop(struct ps_token *t)
{
	if (t->index)
		index_free(t->index);
	t->index = NULL;
}

static int index_put(struct ps_objindex *x, CK_OBJECT_CLASS cls,
		     const unsigned char *id, size_t id_len, CK_OBJECT_HANDLE h)
{
	struct ps_objindex_ent *e;

	if (id_len > sizeof(e->id))
		return 0;
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 256;

		e = realloc(x->e, cap * sizeof(*e));
		if (!e)
			return -1;
		x->e = e;
		x->cap = cap;
	}
	e = &x->e[x->n++];
	e->h = h;
	e->cls = cls;
	e->id_len = id_len;
	memcpy(e->id, id, id_len);
	return 0;
}

int ps_token_index(struct ps_token *t, struct ps_err *err)
{
	CK_OBJECT_HANDLE *h = NULL;
	CK_ULONG count = 0;
	struct ps_objindex *x;
	int rc;

	ps_token_index_drop(t);
	rc = ps_token_open(t, t->rw, err);
	if (!rc)
		rc = find_handles(t, &h, &count, err);
	if (rc)
		return rc;
	x = calloc(1, sizeof(*x));
	if (!x)
		goto nomem;
	for (CK_ULONG i = 0; i < count; i++) {
		CK_OBJECT_CLASS cls;
		unsigned char id[64];
		CK_ATTRIBUTE a[2] = { { CKA_CLASS, &cls, sizeof(cls) },
				      { CKA_ID, id, sizeof(id) } };
		CK_RV rv = ps_p11_get(t, h[i], a, 2);

		/* Gone meanwhile, no id, or an id longer than any psrenew
		 * looks up: not indexed. */
		if (rv != CKR_OK)
			continue;
		if (index_put(x, cls, id, a[1].ulValueLen, h[i]) < 0)
			goto nomem;
	}
	free(h);
	t->index = x;
	t->index_free = index_free;
	return 0;
nomem:
	free(h);
	if (x)
		free(x->e);
	free(x);
	return ps_err_nomem(err);
}

long ps_token_index_find(const struct ps_token *t, CK_OBJECT_CLASS cls,
			 const unsigned char *id, size_t id_len,
			 CK_OBJECT_HANDLE *hs, size_t max)
{
	const struct ps_objindex *x = t->index;
	size_t k = 0;

	if (!x)
		return -1;
	for (size_t i = 0; i < x->n && k < max; i++)
		if (x->e[i].cls == cls && x->e[i].id_len == id_len &&
		    memcmp(x->e[i].id, id, id_len) == 0)
			hs[k++] = x->e[i].h;
	return (long)k;
}

void ps_token_index_add(struct ps_token *t, CK_OBJECT_CLASS cls,
			const unsigned char *id, size_t id_len,
			CK_OBJECT_HANDLE h)
{
	/* Without memory the index would lie by omission: drop it. */
	if (t->index && index_put(t->index, cls, id, id_len, h) < 0)
		ps_token_index_drop(t);
}

void ps_token_index_forget(struct ps_token *t, CK_OBJECT_HANDLE h)
{
	struct ps_objindex *x = t->index;

	for (size_t i = 0; x && i < x->n;) {
		if (x->e[i].h == h)
			x->e[i] = x->e[--x->n];
		else
			i++;
	}
}
/* ------------------------------------------------------------- leftovers */

/*
 * What a C_CreateObject that never returned (the process killed, the power
 * cut) can leave on the token. SoftHSM's file store, for one, creates the
 * object's file, adds the default attributes one at a time and writes the
 * caller's template last, in one go: killed in between, the token holds an
 * object without a class, or a key or certificate with neither CKA_ID nor
 * its value (modulus, curve, DER). No object a C_CreateObject finished
 * looks like that; such an object is of no use to anyone.
 */

const char *const ps_left_names[PS_N_LEFT] = { "no-class", "privkey", "pubkey",
					       "cert" };

void ps_leftovers_free(struct ps_leftovers *l)
{
	for (int i = 0; i < PS_N_LEFT; i++)
		free(l->h[i]);
	memset(l, 0, sizeof(*l));
}

/* The object lacks the attribute (or will not say). */
static int attr_missing(CK_RV rv)
{
	return rv == CKR_ATTRIBUTE_TYPE_INVALID ||
	       rv == CKR_ATTRIBUTE_VALUE_INVALID ||
	       rv == CKR_ATTRIBUTE_SENSITIVE;
}

/* *kind: the kind of leftover h is, or -1 for a complete object. */
static CK_RV leftover_kind(struct ps_token *tok, CK_OBJECT_HANDLE h, int *kind)
{
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
	CK_ATTRIBUTE a[2] = { { CKA_CLASS, &cls, sizeof(cls) },
			      { CKA_ID, NULL, 0 } };
	CK_ATTRIBUTE t = { CKA_KEY_TYPE, &kt, sizeof(kt) };
	CK_ATTRIBUTE v = { CKA_VALUE, NULL, 0 };
	CK_RV rv = ps_p11_get(tok, h, a, 2);

	*kind = -1;
	if (rv == CKR_OK && a[1].ulValueLen != 0)
		return CKR_OK; /* it has an id */
	if (rv != CKR_OK && !attr_missing(rv))
		return rv;
	if (rv != CKR_OK) {
		/* Which one is missing? */
		rv = ps_p11_get(tok, h, a, 1);
		if (attr_missing(rv))
			*kind = PS_LEFT_NOCLASS;
		if (rv != CKR_OK)
			return attr_missing(rv) ? CKR_OK : rv;
	}
	if (cls == CKO_CERTIFICATE) {
		*kind = PS_LEFT_CERT;
	} else if (cls == CKO_PRIVATE_KEY || cls == CKO_PUBLIC_KEY) {
		*kind =
		    cls == CKO_PRIVATE_KEY ? PS_LEFT_PRIVKEY : PS_LEFT_PUBKEY;
		rv = ps_p11_get(tok, h, &t, 1);
		if (rv != CKR_OK)
			return attr_missing(rv) ? CKR_OK : rv; /* no type */
		if (kt == CKK_RSA)
			v.type = CKA_MODULUS;
		else if (kt == CKK_EC)
			v.type = CKA_EC_PARAMS;
		else
			*kind = -1; /* a kind of key psrenew never writes */
	}
	if (*kind < 0)
		return CKR_OK;
	rv = ps_p11_get(tok, h, &v, 1);
	if (rv == CKR_OK && v.ulValueLen != 0 &&
	    v.ulValueLen != CK_UNAVAILABLE_INFORMATION)
		*kind = -1; /* it has its value */
	return attr_missing(rv) ? CKR_OK : rv;
}

static int cmp_handle(const void *a, const void *b)
{
	CK_OBJECT_HANDLE x = *(const CK_OBJECT_HANDLE *)a;
	CK_OBJECT_HANDLE y = *(const CK_OBJECT_HANDLE *)b;

	return x < y ? -1 : x > y;
}

/*
 * The objects that may be leftovers, from two searches and no attribute
 * read: every object, less those with CKA_TOKEN true. A finished token
 * object has CKA_TOKEN true (it is on the token because of it); what an
 * interrupted write leaves has no CKA_TOKEN yet, or its default, false
 * (SoftHSM's file store writes the caller's template last, see above).
 * The candidates, usually none, are then read one by one.
 */
static CK_RV candidates(struct ps_token *tok, CK_OBJECT_HANDLE **h,
			CK_ULONG *count)
{
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE t = { CKA_TOKEN, &yes, sizeof(yes) };
	CK_OBJECT_HANDLE *whole = NULL;
	CK_ULONG nwhole = 0, k = 0;
	CK_RV rv = ps_p11_find_all(tok, NULL, 0, h, count);

	if (rv == CKR_OK)
		rv = ps_p11_find_all(tok, &t, 1, &whole, &nwhole);
	if (rv != CKR_OK) {
		free(*h);
		*h = NULL;
		*count = 0;
		return rv;
	}
	qsort(whole, nwhole, sizeof(*whole), cmp_handle);
	for (CK_ULONG i = 0; i < *count; i++)
		if (!bsearch(&(*h)[i], whole, nwhole, sizeof(*whole),
			     cmp_handle))
			(*h)[k++] = (*h)[i];
	*count = k;
	free(whole);
	return CKR_OK;
}

/* Every leftover on the token, by kind. */
int ps_token_leftovers(struct ps_token *tok, struct ps_leftovers *l,
		       struct ps_err *err)
{
	CK_OBJECT_HANDLE *h = NULL;
	CK_ULONG count = 0;
	CK_RV rv = candidates(tok, &h, &count);

	memset(l, 0, sizeof(*l));
	for (int k = 0; rv == CKR_OK && k < PS_N_LEFT; k++) {
		l->h[k] = calloc(count ? count : 1, sizeof(*h));
		if (!l->h[k])
			rv = CKR_HOST_MEMORY;
	}
	for (CK_ULONG i = 0; rv == CKR_OK && i < count; i++) {
		int kind;

		rv = leftover_kind(tok, h[i], &kind);
		if (rv == CKR_OBJECT_HANDLE_INVALID)
			rv = CKR_OK; /* removed meanwhile */
		else if (rv == CKR_OK && kind >= 0)
			l->h[kind][l->n[kind]++] = h[i];
	}
	free(h);
	if (rv == CKR_OK)
		return 0;
	ps_leftovers_free(l);
	if (rv == CKR_HOST_MEMORY)
		return ps_err_nomem(err);
	return ps_ckr_err(err, rv, tok, "looking for half-written objects");
}

/* Removes, of each kind, the leftovers beyond keep[kind]: those an
 * interrupted run of this import left. */
int ps_token_leftovers_remove(struct ps_token *tok,
			      const struct ps_leftovers *l, const size_t *keep,
			      size_t *removed, struct ps_err *err)
{
	for (int k = 0; k < PS_N_LEFT; k++)
		for (size_t i = keep[k]; i < l->n[k]; i++) {
			CK_RV rv = ps_p11_destroy(tok, l->h[k][i]);

			if (rv != CKR_OK && rv != CKR_OBJECT_HANDLE_INVALID)
				return ps_ckr_err(err, rv, tok,
						  "removing a half-written "
						  "object");
			(*removed)++;
		}
	return 0;
}

json_t *ps_leftovers_json(const size_t *n)
{
	json_t *o = json_object();

	for (int k = 0; o && k < PS_N_LEFT; k++)
		json_object_set_new(o, ps_left_names[k],
				    json_integer((json_int_t)n[k]));
	return o;
}

void ps_leftovers_from_json(const json_t *o, size_t *n)
{
	for (int k = 0; k < PS_N_LEFT; k++) {
		json_t *v = json_object_get(o, ps_left_names[k]);

		n[k] = json_is_integer(v) && json_integer_value(v) >= 0
			   ? (size_t)json_integer_value(v)
			   : 0;
	}
}

int ps_token_leftover_counts(struct ps_token *tok, size_t *n,
			     struct ps_err *err)
{
	struct ps_leftovers l;
	int rc = ps_token_leftovers(tok, &l, err);

	for (int k = 0; k < PS_N_LEFT; k++)
		n[k] = rc ? 0 : l.n[k];
	if (!rc)
		ps_leftovers_free(&l);
	return rc;
}

int ps_token_leftovers_clean(struct ps_token *tok, const size_t *keep,
			     size_t *removed, struct ps_err *err)
{
	struct ps_leftovers l;
	int rc = ps_token_leftovers(tok, &l, err);

	if (!rc) {
		rc = ps_token_leftovers_remove(tok, &l, keep, removed, err);
		ps_leftovers_free(&l);
	}
	return rc;
}

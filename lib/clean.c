/* psrenew: clearing room on a token (the guide's §7) without losing what
 * is still needed: the safety rules, the copies, the removal. */
#include <psrenew/clean.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509.h>

#include <psrenew/ckr.h>
#include <psrenew/jipconf.h>
#include <psrenew/keypair.h>
#include <psrenew/p11obj.h>
#include <psrenew/record.h>
#include <psrenew/request.h>
#include <psrenew/codec.h>

#define DER_MAX (1 << 20)

static const char *const reason_names[] = {
	"expired",	 "superseded", "valid",
	"not-yet-valid", "orphan-key", "pending-key",
};

const char *ps_clean_reason_name(int reason)
{
	if (reason < 0 ||
	    (size_t)reason >= sizeof(reason_names) / sizeof(*reason_names))
		return "unknown";
	return reason_names[reason];
}

static int id_eq(const unsigned char *a, size_t al, const unsigned char *b,
		 size_t bl)
{
	return al > 0 && al == bl && memcmp(a, b, al) == 0;
}

static int valid_now(const struct ps_cert *c, time_t now)
{
	return c->not_before <= now && c->not_after > now;
}

static int nomem(struct ps_err *err)
{
	return ps_err_nomem(err);
}

/* The copies of removed certificates (blobs of the state store) ------- */

/* Copies a certificate to STATE_DIR/removed/<SERIAL_HEX>.der (or, when a
 * different certificate with that serial is there already, to
 * <SERIAL_HEX>.<SHA-256 prefix>.der). *path is malloc'ed. */
static int keep_copy(struct ps_state *st, const struct ps_cert *c,
		     const unsigned char *der, size_t len, char **path,
		     struct ps_err *err)
{
	char name[2][200], hint[600];
	const char *const names[2] = { name[0], name[1] };
	struct ps_err e;
	size_t k;

	*path = NULL;
	snprintf(name[0], sizeof(name[0]), "%.120s.der", c->serial_hex);
	snprintf(name[1], sizeof(name[1]), "%.120s.%.16s.der", c->serial_hex,
		 c->sha256);
	ps_err_clear(&e);
	if (ps_state_blob_keep(st, "removed", names, 2, der, len, &k, &e)) {
		snprintf(hint, sizeof(hint), "%s%snothing was removed", e.hint,
			 e.hint[0] ? "; " : "");
		return ps_err_set(err, e.status, e.code, hint,
				  "cannot keep a copy of certificate %s: %s",
				  c->serial_hex, e.msg);
	}
	if (asprintf(path, "%s/removed/%s", st->dir, name[k]) < 0) {
		*path = NULL;
		return nomem(err);
	}
	return 0;
}

/* Reading the token ------------------------------------------------------ */

static int count_objects(struct ps_token *tok, size_t *n, struct ps_err *err)
{
	CK_OBJECT_HANDLE *h = NULL;
	CK_ULONG got = 0;
	CK_RV rv = ps_p11_find_all(tok, NULL, 0, &h, &got);

	free(h);
	*n = got;
	if (rv != CKR_OK)
		return ps_ckr_err(err, rv, tok, "searching the token");
	return 0;
}

static int known(CK_ULONG v)
{
	return v != CK_UNAVAILABLE_INFORMATION;
}

/* Bytes one object takes: what is used over the number of objects, when
 * the token says; else a third of a renewal (a key pair and a
 * certificate). */
static unsigned long per_object(const struct ps_token *tok, size_t nobjects)
{
	CK_ULONG tot = tok->info.ulTotalPublicMemory;
	CK_ULONG fr = tok->info.ulFreePublicMemory;

	if (!known(tot) || !known(fr)) {
		tot = tok->info.ulTotalPrivateMemory;
		fr = tok->info.ulFreePrivateMemory;
	}
	if (known(tot) && known(fr) && tot > fr && nobjects > 0 &&
	    (tot - fr) / nobjects > 0)
		return (unsigned long)((tot - fr) / nobjects);
	return PS_ROOM_PER_RENEWAL / 3;
}

/* The certificate's DER as the token holds it (malloc'ed). */
static CK_RV read_der(struct ps_token *tok, CK_OBJECT_HANDLE h,
		      unsigned char **der, size_t *len)
{
	CK_ATTRIBUTE a = { CKA_VALUE, NULL, 0 };
	CK_RV rv = ps_p11_get(tok, h, &a, 1);

	*der = NULL;
	if (rv != CKR_OK)
		return rv;
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen == 0 ||
	    a.ulValueLen > DER_MAX)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	a.pValue = *der = malloc(a.ulValueLen);
	if (!*der)
		return CKR_HOST_MEMORY;
	rv = ps_p11_get(tok, h, &a, 1);
	if (rv != CKR_OK) {
		free(*der);
		*der = NULL;
		return rv;
	}
	*len = a.ulValueLen;
	return CKR_OK;
}

struct pending_ctx {
	const struct ps_token *tok;
	json_t *pending;
	struct ps_err *err;
	json_t *damaged; /* the unreadable files after the first */
	int seen;	 /* an unreadable file was met */
};

static int pending_one(void *v, const struct ps_state_file *f)
{
	struct pending_ctx *c = v;
	const char *s, *key, *t;
	char *lower;

	if (!f->rec) {
		/* Each one is reported: the first as the error, the others as
		 * records; the walk goes on so that none is left unsaid. */
		if (c->seen) {
			json_t *e = ps_state_damaged_record(f);

			if (e && c->damaged)
				json_array_append(c->damaged, e);
			json_decref(e);
			return 0;
		}
		c->seen = 1;
		*c->err = f->err;
		snprintf(c->err->hint, sizeof(c->err->hint),
			 "ps-token-clean removes nothing while it cannot tell "
			 "which keys requests wait on: repair or move away "
			 "the file");
		return 0;
	}
	s = ps_json_str(f->rec, "state");
	key = ps_json_str(f->rec, "key_id");
	t = ps_json_str(f->rec, "token");
	if (s && key && (!t || !strcmp(t, c->tok->uri)) &&
	    strcmp(s, PS_REQ_INSTALLED) != 0 &&
	    !(!strcmp(s, PS_REQ_REJECTED) &&
	      json_object_get(f->rec, "key_kept"))) {
		lower = strdup(key);
		for (char *ch = lower; ch && *ch; ch++)
			if (*ch >= 'A' && *ch <= 'F')
				*ch = (char)(*ch - 'A' + 'a');
		if (lower)
			json_object_set_new(c->pending, lower,
					    json_string(f->name));
		free(lower);
	}
	return 0;
}

/* Which request of the store names which key: key_id (lower case hex) ->
 * request id, for requests on this token that are not installed: a key
 * pair a pending, issued (its certificate refused, say) or rejected
 * request names is for a person to decide on, never a cleanup candidate.
 * Not a rejected request's key_kept one: ps-fetch found that key pair is
 * not the request's own (the normal rules keep it). A damaged request file
 * stops it (exit 1): it might name any key. */
static int load_pending(struct ps_state *st, const struct ps_token *tok,
			json_t *pending, json_t *damaged, struct ps_err *err)
{
	struct pending_ctx c = { tok, pending, err, damaged, 0 };
	int rc;

	if (!st)
		return 0;
	rc = ps_state_each(st, NULL, NULL, pending_one, &c, err);
	return rc ? rc : c.seen ? err->status : 0;
}

/* Grouping ------------------------------------------------------------- */

/* Points item at every key with its id (private first); marks them used. */
static int collect_keys(struct ps_clean_plan *p, struct ps_clean_item *it,
			unsigned char *used)
{
	size_t n = 0, k = 0;

	for (size_t i = 0; i < p->npriv + p->npub; i++) {
		const struct ps_tobj *o =
		    i < p->npriv ? &p->priv[i] : &p->pub[i - p->npriv];

		n += id_eq(o->id, o->id_len, it->id, it->id_len);
	}
	if (n == 0)
		return 0;
	it->keys = calloc(n, sizeof(*it->keys));
	if (!it->keys)
		return -1;
	for (size_t i = 0; i < p->npriv + p->npub; i++) {
		const struct ps_tobj *o =
		    i < p->npriv ? &p->priv[i] : &p->pub[i - p->npriv];

		if (id_eq(o->id, o->id_len, it->id, it->id_len)) {
			it->keys[k++] = o;
			used[i] = 1;
		}
	}
	it->nkeys = k;
	return 0;
}

static int is_cert_id(const struct ps_clean_plan *p, const struct ps_tobj *o)
{
	for (size_t i = 0; i < p->ncertobjs; i++)
		if (id_eq(p->certobjs[i].id, p->certobjs[i].id_len, o->id,
			  o->id_len))
			return 1;
	return 0;
}

static int build_items(struct ps_clean_plan *p, const json_t *pending)
{
	size_t nk = p->npriv + p->npub;
	unsigned char *used = calloc(nk ? nk : 1, 1);

	p->items = calloc(p->inv.n + nk + 1, sizeof(*p->items));
	if (!used || !p->items) {
		free(used);
		return -1;
	}
	for (size_t i = 0; i < p->inv.n; i++) {
		struct ps_clean_item *it = &p->items[p->n++];
		const char *st = ps_inventory_state(&p->inv, i);

		it->cert = (long)i;
		it->id = p->inv.c[i].obj.id;
		it->id_len = p->inv.c[i].obj.id_len;
		if (!strcmp(st, "expired"))
			it->reason = PS_CLEAN_R_EXPIRED;
		else if (!strcmp(st, "superseded"))
			it->reason = PS_CLEAN_R_SUPERSEDED;
		else if (!strcmp(st, "not-yet-valid"))
			it->reason = PS_CLEAN_R_NOT_YET_VALID;
		else
			it->reason = PS_CLEAN_R_VALID;
		if (collect_keys(p, it, used) < 0)
			goto fail;
	}
	for (size_t i = 0; i < nk; i++) {
		const struct ps_tobj *o =
		    i < p->npriv ? &p->priv[i] : &p->pub[i - p->npriv];
		struct ps_clean_item *it;

		/* A key without CKA_ID pairs with nothing; one whose
		 * certificate is not X.509 belongs to it: both stay. */
		if (used[i] || o->id_len == 0 || is_cert_id(p, o))
			continue;
		it = &p->items[p->n++];
		it->cert = -1;
		it->id = o->id;
		it->id_len = o->id_len;
		it->reason = PS_CLEAN_R_ORPHAN_KEY;
		if (collect_keys(p, it, used) < 0)
			goto fail;
	}
	for (size_t i = 0; i < p->n; i++) {
		struct ps_clean_item *it = &p->items[i];
		const char *req;

		it->id_hex = ps_hex(it->id, it->id_len);
		if (!it->id_hex)
			goto fail;
		req = json_string_value(json_object_get(pending, it->id_hex));
		it->request_id = req ? strdup(req) : NULL;
		if (req && !it->request_id)
			goto fail;
		if (req && it->cert < 0)
			it->reason = PS_CLEAN_R_PENDING_KEY;
	}
	free(used);
	return 0;
fail:
	free(used);
	return -1;
}

/* Selection and the safety rules --------------------------------------- */

/* ps_state_blob_each's fn for removed_before: 1 when the copy's public
 * key has the id ctx points to. */
static int copy_has_key(void *ctx, const char *name, const unsigned char *der,
			size_t len)
{
	const unsigned char *q = der;
	X509 *x = d2i_X509(NULL, &q, (long)len);
	unsigned char id[20];
	int found;

	(void)name;
	if (!x)
		return 0;
	found = ps_pubkey_id(X509_get0_pubkey(x), id) == 0 &&
		!memcmp(id, ctx, sizeof(id));
	X509_free(x);
	return found;
}

/* 1 when a certificate kept in STATE_DIR/removed has the public key whose
 * id is it's: an earlier removal took the certificate and was stopped
 * (the token failed, the process was killed) before its key pair. */
static int removed_before(struct ps_state *st, const struct ps_clean_item *it)
{
	if (!st || it->id_len != 20)
		return 0;
	return ps_state_blob_each(st, "removed", 16384, copy_has_key,
				  (void *)it->id) == 1;
}

/* The state of request id (a copy), or NULL when it cannot be read. */
static char *request_state(const struct ps_clean_opts *o, const char *id)
{
	json_t *rec = NULL;
	const char *s = NULL;
	char *copy;

	if (o->st && !ps_state_load(o->st, id, &rec, NULL))
		s = ps_json_str(rec, "state");
	copy = s ? strdup(s) : NULL;
	json_decref(rec);
	return copy;
}

/* 1 when request id waits on the CA (unsubmitted or pending). */
static int awaiting_ca(const struct ps_clean_opts *o, const char *id)
{
	char *s = request_state(o, id);
	int r =
	    s && (!strcmp(s, PS_REQ_PENDING) || !strcmp(s, PS_REQ_UNSUBMITTED));

	free(s);
	return r;
}

static void select_items(struct ps_clean_plan *p, const struct ps_clean_opts *o)
{
	unsigned sel = o->select;

	if (!sel && !o->nids && !o->nserials)
		sel = PS_CLEAN_EXPIRED | PS_CLEAN_SUPERSEDED;
	for (size_t i = 0; i < p->n; i++) {
		struct ps_clean_item *it = &p->items[i];
		int r = it->reason;
		const char *serial =
		    it->cert >= 0 ? p->inv.c[it->cert].cert.serial_hex : NULL;

		it->selected =
		    (r == PS_CLEAN_R_EXPIRED && (sel & PS_CLEAN_EXPIRED)) ||
		    (r == PS_CLEAN_R_SUPERSEDED &&
		     (sel & PS_CLEAN_SUPERSEDED)) ||
		    /* The key pair of a request the CA has not answered yet
		     * is no orphan: --orphans leaves it alone (--id names
		     * it); an issued or rejected one's waits on a person. */
		    ((r == PS_CLEAN_R_ORPHAN_KEY ||
		      (r == PS_CLEAN_R_PENDING_KEY &&
		       !awaiting_ca(o, it->request_id))) &&
		     (sel & PS_CLEAN_ORPHANS)) ||
		    (r == PS_CLEAN_R_ORPHAN_KEY &&
		     (sel & (PS_CLEAN_EXPIRED | PS_CLEAN_SUPERSEDED)) &&
		     removed_before(o->st, it));
		for (size_t k = 0; k < o->nids; k++)
			if (!strcasecmp(o->ids[k], it->id_hex)) {
				it->selected = 1;
				if (o->hits)
					o->hits[k] = 1;
			}
		for (size_t k = 0; serial && k < o->nserials; k++)
			if (!strcmp(o->serials[k], serial)) {
				it->selected = 1;
				if (o->hits)
					o->hits[o->nids + k] = 1;
			}
	}
}

static const char *cn_of(const struct ps_cert *c)
{
	return c->cn ? c->cn : "?";
}

/* The guide's §7 POZOR: the old commercial certificate stays until JIP has
 * the new one. 0 when that is confirmed (or the rule does not apply). */
static int check_jip(struct ps_clean_plan *p, const struct ps_clean_opts *o,
		     struct ps_clean_item *it)
{
	const struct ps_cert *a = &p->inv.c[it->cert].cert;
	const char *successor = NULL;
	char note[300] = "";

	if (a->type != PS_CERT_COMMERCIAL || !valid_now(a, o->now))
		return 0;
	for (size_t j = 0; j < p->inv.n; j++) {
		const struct ps_cert *b = &p->inv.c[j].cert;
		const char *how;
		struct ps_err e;
		json_t *conf = NULL;

		if ((long)j == it->cert || !valid_now(b, o->now) ||
		    !p->inv.c[j].key_on_token ||
		    b->not_before <= a->not_before ||
		    !ps_cert_same_holder(a, b))
			continue;
		if (!successor || (long)j == p->inv.c[it->cert].superseded_by)
			successor = b->serial_hex;
		how = json_string_value(json_object_get(o->jip, b->serial_hex));
		ps_err_clear(&e);
		if (!how &&
		    ps_jipconf_load(o->st, b->serial_hex, PS_CERT_COMMERCIAL,
				    &conf, &e) &&
		    !note[0])
			snprintf(note, sizeof(note), " (%.200s)", e.msg);
		if (conf)
			how = "state";
		json_decref(conf);
		if (how) {
			it->jip_confirmation = strdup(how);
			it->jip_serial = strdup(b->serial_hex);
			return 0;
		}
	}
	if (!successor)
		return 0;
	ps_err_set(&it->why, PS_EXIT_REFUSED, "refused-jip-unconfirmed",
		   "register the new serial in JIP first (ps-jip-setserial), "
		   "then pipe its jip record in, or give --jip-confirmed "
		   "SERIAL once JIP shows it",
		   "keeping old commercial certificate %s of %s: JIP has not "
		   "confirmed its successor %s yet, and you log in to JIP with "
		   "the old one (the guide's §7)%s",
		   a->serial_hex, cn_of(a), successor, note);
	return -1;
}

static void judge_cert(struct ps_clean_plan *p, const struct ps_clean_opts *o,
		       struct ps_clean_item *it)
{
	const struct ps_cert *c = &p->inv.c[it->cert].cert;
	char until[32];

	ps_time_iso(c->not_after, until, sizeof(until));
	it->action = PS_CLEAN_REFUSE;
	if ((it->reason == PS_CLEAN_R_VALID ||
	     it->reason == PS_CLEAN_R_NOT_YET_VALID) &&
	    !o->force_valid) {
		ps_err_set(&it->why, PS_EXIT_REFUSED, "refused-valid",
			   "nothing supersedes it; removing it is "
			   "irreversible: only with --force-valid and --yes "
			   "(or a confirmation on the terminal)",
			   "keeping %s certificate %s of %s: it is %s (until "
			   "%s)",
			   ps_cert_type_name(c->type), c->serial_hex, cn_of(c),
			   it->reason == PS_CLEAN_R_VALID ? "valid"
							  : "not valid yet",
			   until);
		return;
	}
	if (check_jip(p, o, it) < 0)
		return;
	if (it->request_id && !o->keep_keys && it->nkeys > 0) {
		ps_err_set(&it->why, PS_EXIT_REFUSED, "refused-pending-key",
			   "finish the request first (ps-fetch), or remove "
			   "the certificate alone with --keep-keys",
			   "keeping certificate %s of %s and its key: "
			   "request %s waits on that key",
			   c->serial_hex, cn_of(c), it->request_id);
		return;
	}
	it->action = PS_CLEAN_REMOVE;
}

/* What to do about request id's key pair, by the request's state. */
static void pending_hint(const struct ps_clean_opts *o, const char *id,
			 char *buf, size_t len)
{
	char *s = request_state(o, id);

	if (s && !strcmp(s, PS_REQ_ISSUED))
		snprintf(buf, len,
			 "the CA issued its certificate, which is not "
			 "installed yet: ps-fetch %s installs it beside the "
			 "key",
			 id);
	else if (s && !strcmp(s, PS_REQ_REJECTED))
		snprintf(buf, len,
			 "the request was rejected: see ps-fetch(1) before "
			 "removing its key pair");
	else
		snprintf(buf, len,
			 "the CA has not issued its certificate yet: "
			 "ps-fetch --pending installs it beside the key "
			 "once issued");
	free(s);
}

static void apply_rules(struct ps_clean_plan *p, const struct ps_clean_opts *o)
{
	for (size_t i = 0; i < p->n; i++) {
		struct ps_clean_item *it = &p->items[i];

		if (!it->selected) {
			it->action = PS_CLEAN_KEEP;
		} else if (it->cert >= 0) {
			judge_cert(p, o, it);
		} else if (it->reason == PS_CLEAN_R_PENDING_KEY) {
			char hint[256];

			it->action = PS_CLEAN_REFUSE;
			pending_hint(o, it->request_id, hint, sizeof(hint));
			ps_err_set(&it->why, PS_EXIT_REFUSED,
				   "refused-pending-key", hint,
				   "keeping key pair %s: request %s waits on "
				   "it",
				   it->id_hex, it->request_id);
		} else {
			it->action = PS_CLEAN_REMOVE;
		}
	}
}

/* The item whose certificate is inv index j, or NULL. */
static struct ps_clean_item *item_of(struct ps_clean_plan *p, size_t j)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->items[i].cert == (long)j)
			return &p->items[i];
	return NULL;
}

/* Never the last valid certificate of a holder and type: when the plan
 * would remove every one, the newest stays. Only certificates with their
 * key on the token count: one written alone can sign nothing. */
static void keep_last_valid(struct ps_clean_plan *p, time_t now)
{
	size_t i = 0;

	while (i < p->n) {
		struct ps_clean_item *it = &p->items[i], *newest = it;
		const struct ps_cert *a;
		int kept = 0;
		char until[32];

		i++;
		if (it->action != PS_CLEAN_REMOVE || it->cert < 0)
			continue;
		a = &p->inv.c[it->cert].cert;
		if (!valid_now(a, now))
			continue;
		for (size_t j = 0; j < p->inv.n && !kept; j++) {
			const struct ps_cert *b = &p->inv.c[j].cert;
			struct ps_clean_item *bi;

			if ((long)j == it->cert || !valid_now(b, now) ||
			    !p->inv.c[j].key_on_token ||
			    !ps_cert_same_holder(a, b))
				continue;
			bi = item_of(p, j);
			if (!bi || bi->action != PS_CLEAN_REMOVE)
				kept = 1;
			else if (b->not_before >
				 p->inv.c[newest->cert].cert.not_before)
				newest = bi;
		}
		if (kept)
			continue;
		a = &p->inv.c[newest->cert].cert;
		ps_time_iso(a->not_after, until, sizeof(until));
		newest->action = PS_CLEAN_REFUSE;
		ps_err_set(&newest->why, PS_EXIT_REFUSED, "refused-last-valid",
			   "renew it first (ps-renew), then remove the old "
			   "one once the new one is installed",
			   "keeping %s certificate %s of %s: it is the last "
			   "valid one of its type on the token (until %s)",
			   ps_cert_type_name(a->type), a->serial_hex, cn_of(a),
			   until);
		i = 0; /* look again: the plan changed */
	}
}

/* Keys two certificates share go with the last of them to be removed, and
 * stay while either stays. */
static void shared_keys(struct ps_clean_plan *p, const struct ps_clean_opts *o)
{
	for (size_t i = 0; i < p->n; i++) {
		struct ps_clean_item *it = &p->items[i];

		if (it->cert < 0 || it->action != PS_CLEAN_REMOVE)
			continue;
		it->keys_stay = o->keep_keys;
		for (size_t j = 0; j < p->n && !it->keys_stay; j++) {
			const struct ps_clean_item *b = &p->items[j];

			if (j == i || b->cert < 0 ||
			    !id_eq(b->id, b->id_len, it->id, it->id_len))
				continue;
			if (b->action != PS_CLEAN_REMOVE || j > i)
				it->keys_stay = 1;
		}
	}
}

static size_t item_objects(const struct ps_clean_item *it)
{
	return (it->cert >= 0 ? 1 : 0) + (it->keys_stay ? 0 : it->nkeys);
}

/* Older first: certificates by not_after, then key pairs alone. */
static int by_age(const void *pa, const void *pb, void *v)
{
	const struct ps_clean_plan *p = v;
	const struct ps_clean_item *a = &p->items[*(const size_t *)pa];
	const struct ps_clean_item *b = &p->items[*(const size_t *)pb];
	time_t ta, tb;

	if ((a->cert < 0) != (b->cert < 0))
		return a->cert < 0 ? 1 : -1;
	if (a->cert >= 0) {
		ta = p->inv.c[a->cert].cert.not_after;
		tb = p->inv.c[b->cert].cert.not_after;
		if (ta != tb)
			return ta < tb ? -1 : 1;
	}
	return *(const size_t *)pa < *(const size_t *)pb ? -1 : 1;
}

/* --for-room N: the oldest removable groups, only as many as it takes. */
static void plan_room(struct ps_clean_plan *p, const struct ps_clean_opts *o)
{
	unsigned long need = (unsigned long)o->for_room * PS_ROOM_PER_RENEWAL;
	unsigned long est = p->free_before;
	size_t objs = 0, need_objs = (size_t)o->for_room * 3;

	for (size_t i = 0; i < p->n; i++) {
		if (p->items[i].action == PS_CLEAN_REFUSE) {
			p->items[i].action = PS_CLEAN_KEEP;
			p->quiet_refusals++;
		}
		if (p->items[i].action == PS_CLEAN_REMOVE)
			p->order[p->norder++] = i;
	}
	if (p->norder > 1)
		qsort_r(p->order, p->norder, sizeof(*p->order), by_age, p);
	while (p->nchosen < p->norder &&
	       (p->have_free ? est < need : objs < need_objs)) {
		size_t k = item_objects(&p->items[p->order[p->nchosen++]]);

		objs += k;
		est += (unsigned long)k * p->per_object;
	}
	if (p->have_free ? est < need : objs < need_objs) {
		ps_err_set(&p->room_err, PS_EXIT_TOKEN, "token-full",
			   p->quiet_refusals
			       ? "safety rules keep other certificates (see "
				 "a run without --for-room); renew fewer at "
				 "a time, or back up an old certificate as a "
				 "PFX file and remove it"
			       : "renew fewer at a time, or back up an old "
				 "certificate as a PFX file and remove it",
			   "removing every removable object (%zu) would not "
			   "make room for %ld renewal(s) on token '%s'; "
			   "nothing was removed",
			   objs, o->for_room, p->tok->label);
		p->nchosen = 0;
	}
	for (size_t k = p->nchosen; k < p->norder; k++)
		p->items[p->order[k]].action = PS_CLEAN_KEEP;
}

int ps_clean_plan_make(struct ps_token *tok, const struct ps_clean_opts *o,
		       struct ps_clean_plan *p, struct ps_err *err)
{
	json_t *pending = json_object();
	int rc;

	memset(p, 0, sizeof(*p));
	p->tok = tok;
	if (!pending)
		return nomem(err);
	rc = ps_token_open(tok, tok->rw, err);
	if (!rc && !tok->logged_in && (tok->info.flags & CKF_LOGIN_REQUIRED))
		rc = ps_err_set(err, PS_EXIT_TOKEN, "login-required",
				"give the PIN with --pin (prompt, env:VAR, "
				"file:PATH, fd:N or pinpad)",
				"token '%s' shows its keys only after a login",
				tok->label);
	if (!rc)
		rc = ps_token_refresh(tok, err);
	if (!rc)
		rc = ps_token_objects(tok, CKO_CERTIFICATE, &p->certobjs,
				      &p->ncertobjs, err);
	if (!rc)
		rc = ps_token_objects(tok, CKO_PRIVATE_KEY, &p->priv, &p->npriv,
				      err);
	if (!rc)
		rc = ps_token_objects(tok, CKO_PUBLIC_KEY, &p->pub, &p->npub,
				      err);
	/* The inventory from the same listing: each object read once. */
	if (!rc)
		rc = ps_inventory_from_objects(tok, o->now, p->certobjs,
					       p->ncertobjs, p->priv, p->npriv,
					       p->pub, p->npub, &p->inv, err);
	if (!rc)
		rc = count_objects(tok, &p->nobjects, err);
	if (!rc)
		rc = load_pending(o->st, tok, pending, o->damaged, err);
	if (!rc && build_items(p, pending) < 0)
		rc = nomem(err);
	json_decref(pending);
	if (rc) {
		ps_clean_plan_free(p);
		return rc;
	}
	p->have_free = ps_token_free_memory(tok, &p->free_before);
	p->per_object = per_object(tok, p->nobjects);
	select_items(p, o);
	apply_rules(p, o);
	keep_last_valid(p, o->now);
	shared_keys(p, o);
	p->order = calloc(p->n + 1, sizeof(*p->order));
	if (!p->order) {
		ps_clean_plan_free(p);
		return nomem(err);
	}
	if (o->for_room >= 0) {
		plan_room(p, o);
	} else {
		for (size_t i = 0; i < p->n; i++)
			if (p->items[i].action == PS_CLEAN_REMOVE)
				p->order[p->norder++] = i;
		p->nchosen = p->norder;
	}
	return 0;
}

void ps_clean_plan_free(struct ps_clean_plan *p)
{
	for (size_t i = 0; p->items && i < p->n; i++) {
		free(p->items[i].keys);
		free(p->items[i].id_hex);
		free(p->items[i].request_id);
		free(p->items[i].jip_confirmation);
		free(p->items[i].jip_serial);
	}
	free(p->items);
	free(p->order);
	ps_inventory_free(&p->inv);
	ps_tobjs_free(p->certobjs, p->ncertobjs);
	ps_tobjs_free(p->priv, p->npriv);
	ps_tobjs_free(p->pub, p->npub);
	memset(p, 0, sizeof(*p));
}

size_t ps_clean_planned(const struct ps_clean_plan *p, size_t *valid)
{
	size_t n = 0;

	if (valid)
		*valid = 0;
	for (size_t k = 0; k < p->nchosen; k++) {
		const struct ps_clean_item *it = &p->items[p->order[k]];

		n += item_objects(it);
		if (valid && (it->reason == PS_CLEAN_R_VALID ||
			      it->reason == PS_CLEAN_R_NOT_YET_VALID))
			(*valid)++;
	}
	return n;
}

size_t ps_clean_refused(const struct ps_clean_plan *p)
{
	size_t n = 0;

	for (size_t i = 0; i < p->n; i++)
		n += p->items[i].action == PS_CLEAN_REFUSE;
	return n;
}

/* Records ---------------------------------------------------------------- */

static const char *class_name(CK_OBJECT_CLASS cls)
{
	return cls == CKO_CERTIFICATE	? "cert"
	       : cls == CKO_PRIVATE_KEY ? "private"
					: "public";
}

/* The fields every record about an item carries. */
static void item_fields(json_t *r, const struct ps_clean_plan *p,
			const struct ps_clean_item *it)
{
	const struct ps_invcert *ic =
	    it->cert >= 0 ? &p->inv.c[it->cert] : NULL;
	char na[32];

	ps_json_set_str(r, "module", ps_module_path(p->tok->mod));
	ps_json_set_str(r, "token", p->tok->uri);
	ps_json_set_str(r, "token_label", p->tok->label);
	ps_json_set_str(r, "id", it->id_hex);
	ps_json_set_str(r, "reason", ps_clean_reason_name(it->reason));
	ps_json_set_str(r, "serial_hex", ic ? ic->cert.serial_hex : NULL);
	ps_json_set_str(r, "serial_dec", ic ? ic->cert.serial_dec : NULL);
	ps_json_set_str(r, "type",
			ic ? ps_cert_type_name(ic->cert.type) : NULL);
	ps_json_set_str(r, "cn", ic ? ic->cert.cn : NULL);
	ps_json_set_str(r, "subject", ic ? ic->cert.subject : NULL);
	if (ic)
		ps_time_iso(ic->cert.not_after, na, sizeof(na));
	ps_json_set_str(r, "not_after", ic ? na : NULL);
	ps_json_set_str(r, "superseded_by",
			ic && ic->superseded_by >= 0
			    ? p->inv.c[ic->superseded_by].cert.serial_hex
			    : NULL);
	if (it->request_id)
		ps_json_set_str(r, "request_id", it->request_id);
	if (it->jip_confirmation) {
		ps_json_set_str(r, "jip_confirmation", it->jip_confirmation);
		ps_json_set_str(r, "jip_serial_hex", it->jip_serial);
	}
}

static json_t *object_record(const struct ps_clean_plan *p,
			     const struct ps_clean_item *it, int dry_run,
			     CK_OBJECT_CLASS cls, const char *label)
{
	json_t *r = json_object();
	int type = cls == CKO_CERTIFICATE   ? PS_OBJ_CERT
		   : cls == CKO_PRIVATE_KEY ? PS_OBJ_PRIVATE
					    : PS_OBJ_PUBLIC;
	char *uri =
	    ps_uri_format_object(p->tok->uri, it->id, it->id_len, NULL, type);

	if (!r || !uri) {
		json_decref(r);
		free(uri);
		return NULL;
	}
	ps_json_set_str(r, "kind", dry_run ? "removable" : "removed");
	json_object_set_new(r, "dry_run", json_boolean(dry_run));
	item_fields(r, p, it);
	ps_json_set_str(r, "uri", uri);
	ps_json_set_str(r, "label", label);
	ps_json_set_str(r, "class", class_name(cls));
	free(uri);
	return r;
}

static json_t *item_error(const struct ps_clean_plan *p,
			  const struct ps_clean_item *it,
			  const struct ps_err *why)
{
	json_t *r = ps_record_error(why);
	CK_OBJECT_CLASS cls = it->cert >= 0 ? CKO_CERTIFICATE
			      : it->nkeys   ? it->keys[0]->cls
					    : CKO_PRIVATE_KEY;
	const char *label = it->cert >= 0 ? p->inv.c[it->cert].obj.label
			    : it->nkeys	  ? it->keys[0]->label
					  : NULL;

	if (!r)
		return NULL;
	item_fields(r, p, it);
	ps_json_set_str(r, "label", label);
	ps_json_set_str(r, "class", class_name(cls));
	return r;
}

static int emit_new(ps_emit_fn emit, void *ctx, json_t *r)
{
	if (!r)
		return PS_EXIT_FAIL;
	emit(ctx, r);
	json_decref(r);
	return 0;
}

/* Removing --------------------------------------------------------------- */

static int destroy(struct ps_token *tok, CK_OBJECT_HANDLE h, const char *what,
		   struct ps_err *err)
{
	CK_RV rv = ps_p11_destroy(tok, h);

	if (rv == CKR_OK)
		return 0;
	return ps_ckr_err(err, rv, tok, what);
}

/* Removes one group: the certificate (after keeping its copy), then its
 * keys. One record per object removed, an error record when something
 * fails. */
static int remove_item(struct ps_clean_plan *p, const struct ps_clean_opts *o,
		       struct ps_clean_item *it, ps_emit_fn emit, void *ctx,
		       size_t *removed)
{
	struct ps_err err;
	int worst = 0;

	ps_err_clear(&err);
	if (it->cert >= 0) {
		struct ps_invcert *ic = &p->inv.c[it->cert];
		unsigned char *der = NULL;
		size_t len = 0;
		char *path = NULL;
		json_t *r;
		CK_RV rv;
		int rc;

		rv = o->st ? read_der(p->tok, ic->obj.handle, &der, &len)
			   : CKR_OK;
		if (!o->st)
			rc = ps_err_set(&err, PS_EXIT_FAIL, "state-write", NULL,
					"no state directory for the copy of "
					"certificate %s",
					ic->cert.serial_hex);
		else if (rv != CKR_OK)
			rc = ps_ckr_err(&err, rv, p->tok,
					"reading the certificate");
		else
			rc = keep_copy(o->st, &ic->cert, der, len, &path, &err);
		free(der);
		if (!rc)
			rc = destroy(p->tok, ic->obj.handle,
				     "removing the certificate", &err);
		if (rc) {
			free(path);
			emit_new(emit, ctx, item_error(p, it, &err));
			return rc;
		}
		(*removed)++;
		r = object_record(p, it, 0, CKO_CERTIFICATE, ic->obj.label);
		if (r) {
			ps_json_set_str(r, "backup", path);
			ps_json_set_time(r, "removed_at", time(NULL));
		}
		free(path);
		emit_new(emit, ctx, r);
	}
	for (size_t k = 0; !it->keys_stay && k < it->nkeys; k++) {
		const struct ps_tobj *key = it->keys[k];
		json_t *r;

		ps_err_clear(&err);
		if (destroy(p->tok, key->handle,
			    key->cls == CKO_PRIVATE_KEY
				? "removing the private key"
				: "removing the public key",
			    &err)) {
			emit_new(emit, ctx, item_error(p, it, &err));
			worst = ps_exit_worse(worst, err.status);
			continue;
		}
		(*removed)++;
		r = object_record(p, it, 0, key->cls, key->label);
		if (r)
			ps_json_set_time(r, "removed_at", time(NULL));
		emit_new(emit, ctx, r);
	}
	return worst;
}

/* The dry run's records for one group. */
static void show_item(const struct ps_clean_plan *p,
		      const struct ps_clean_item *it, ps_emit_fn emit,
		      void *ctx)
{
	if (it->cert >= 0)
		emit_new(emit, ctx,
			 object_record(p, it, 1, CKO_CERTIFICATE,
				       p->inv.c[it->cert].obj.label));
	for (size_t k = 0; !it->keys_stay && k < it->nkeys; k++)
		emit_new(emit, ctx,
			 object_record(p, it, 1, it->keys[k]->cls,
				       it->keys[k]->label));
}

static long room_of(unsigned long bytes)
{
	return (long)(bytes / PS_ROOM_PER_RENEWAL);
}

/* Is there room for o->for_room renewals now? -1 when the token does not
 * say. */
static int room_now(struct ps_clean_plan *p, const struct ps_clean_opts *o)
{
	unsigned long bytes;

	if (ps_token_refresh(p->tok, NULL) ||
	    !ps_token_free_memory(p->tok, &bytes))
		return -1;
	return room_of(bytes) >= o->for_room;
}

static json_t *space_record(struct ps_clean_plan *p,
			    const struct ps_clean_opts *o, int dry_run,
			    size_t objects, size_t refused)
{
	json_t *r = json_object();
	unsigned long after = 0;
	int have_after = 0;

	if (!r)
		return NULL;
	if (dry_run) {
		have_after = p->have_free;
		after = p->free_before + (unsigned long)objects * p->per_object;
	} else {
		have_after = !ps_token_refresh(p->tok, NULL) &&
			     ps_token_free_memory(p->tok, &after);
	}
	ps_json_set_str(r, "kind", "space");
	json_object_set_new(r, "dry_run", json_boolean(dry_run));
	ps_json_set_str(r, "module", ps_module_path(p->tok->mod));
	ps_json_set_str(r, "token", p->tok->uri);
	ps_json_set_str(r, "token_label", p->tok->label);
	json_object_set_new(r, "objects", json_integer((json_int_t)objects));
	json_object_set_new(r, "refused", json_integer((json_int_t)refused));
	json_object_set_new(r, "free_before",
			    p->have_free
				? json_integer((json_int_t)p->free_before)
				: json_null());
	json_object_set_new(r, "free_after",
			    have_after ? json_integer((json_int_t)after)
				       : json_null());
	json_object_set_new(r, "room_before",
			    p->have_free ? json_integer(room_of(p->free_before))
					 : json_null());
	json_object_set_new(r, "room_after",
			    have_after ? json_integer(room_of(after))
				       : json_null());
	json_object_set_new(r, "estimated", json_boolean(dry_run));
	if (o->for_room >= 0)
		json_object_set_new(r, "for_room", json_integer(o->for_room));
	return r;
}

int ps_clean_run(struct ps_clean_plan *p, const struct ps_clean_opts *o,
		 int dry_run, ps_emit_fn emit, void *ctx)
{
	size_t refused = 0, removed = 0, planned = ps_clean_planned(p, NULL);
	int worst = 0;

	for (size_t i = 0; i < p->n; i++) {
		const struct ps_clean_item *it = &p->items[i];

		if (it->action != PS_CLEAN_REFUSE)
			continue;
		refused++;
		emit_new(emit, ctx, item_error(p, it, &it->why));
		worst = ps_exit_worse(worst, it->why.status);
	}
	if (p->room_err.status) {
		emit_new(emit, ctx, space_record(p, o, dry_run, 0, refused));
		emit_new(emit, ctx, ps_record_error(&p->room_err));
		return ps_exit_worse(worst, p->room_err.status);
	}
	for (size_t k = 0; k < p->nchosen; k++) {
		struct ps_clean_item *it = &p->items[p->order[k]];

		if (dry_run) {
			show_item(p, it, emit, ctx);
			continue;
		}
		/* --for-room: what was shown, and not more; stop as soon as
		 * the token says there is room. */
		if (o->for_room >= 0 && room_now(p, o) == 1)
			break;
		worst = ps_exit_worse(
		    worst, remove_item(p, o, it, emit, ctx, &removed));
	}
	emit_new(
	    emit, ctx,
	    space_record(p, o, dry_run, dry_run ? planned : removed, refused));
	if (!dry_run && o->for_room >= 0 && room_now(p, o) == 0) {
		struct ps_err e;

		ps_err_set(&e, PS_EXIT_TOKEN, "token-full",
			   "back up an old certificate as a PFX file and "
			   "remove it, or renew fewer at a time",
			   "token '%s' still has no room for %ld renewal(s) "
			   "after removing %zu object(s)",
			   p->tok->label, o->for_room, removed);
		emit_new(emit, ctx, ps_record_error(&e));
		worst = ps_exit_worse(worst, PS_EXIT_TOKEN);
	}
	return worst;
}

/* psrenew: the certificates JIP has for a user, marked from the tokens and
 * the state store (jip_list.h). */
#include <psrenew/jip_list.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <psrenew/codec.h>
#include <psrenew/inventory.h>
#include <psrenew/jipws.h>
#include <psrenew/record.h>
#include <psrenew/state.h>

struct ps_jip_marks {
	struct ps_inventory inv;
	int have_inv;
	json_t *renewed; /* the installed requests: old_* of each */
	const struct ps_config *cfg;
	time_t now;
};

/* A request whose certificate is installed: its old one is superseded. */
static int take_request(void *ctx, const struct ps_state_file *f)
{
	struct ps_jip_marks *m = ctx;
	const char *st = f->rec ? ps_json_str(f->rec, "state") : NULL;

	if (st && !strcmp(st, "installed") &&
	    ps_json_str(f->rec, "old_serial_hex"))
		json_array_append(m->renewed, f->rec);
	return 0;
}

int ps_jip_marks_load(struct ps_token **toks, size_t ntoks,
		      const char *state_dir, const struct ps_config *cfg,
		      struct ps_jip_marks **out, struct ps_err *err)
{
	struct ps_jip_marks *m = calloc(1, sizeof(*m));
	struct ps_state st;
	int rc = 0;

	*out = NULL;
	if (!m)
		return ps_err_nomem(err);
	m->cfg = cfg;
	m->now = time(NULL);
	m->renewed = json_array();
	if (ntoks > 0) {
		rc = ps_inventory_load(toks, ntoks, m->now, &m->inv, err);
		m->have_inv = !rc;
	}
	if (!rc &&
	    !ps_state_open(state_dir, cfg, PS_STATE_READ_ONLY, &st, err)) {
		rc = ps_state_each(&st, NULL, NULL, take_request, m, err);
		ps_state_close(&st);
	} else if (!rc) {
		ps_err_clear(err); /* no store: nothing renewed here */
	}
	if (rc) {
		ps_jip_marks_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void ps_jip_marks_free(struct ps_jip_marks *m)
{
	if (!m)
		return;
	if (m->have_inv)
		ps_inventory_free(&m->inv);
	json_decref(m->renewed);
	free(m);
}

/* What JIP lists, as compared. */
struct entry {
	const char *type; /* qualified / commercial */
	const char *number, *ca;
	int dn;
};

static int same(const struct entry *e, const char *type, const char *serial_hex,
		const char *issuer, const char *jip_ca)
{
	if (!type || !serial_hex || strcmp(e->type, type) != 0 ||
	    !ps_jipws_number_equal(e->number, serial_hex))
		return 0;
	if (e->dn)
		return issuer && ps_jipws_dn_equal(e->ca, issuer);
	return jip_ca && !strcmp(e->ca, jip_ca);
}

static const char *mark_of(const char *inv_state)
{
	if (!strcmp(inv_state, "superseded") || !strcmp(inv_state, "expired"))
		return inv_state;
	return "on-this-token";
}

/* The certificate on a token that the entry names: its mark and facts. */
static int from_tokens(const struct ps_jip_marks *m, const struct entry *e,
		       json_t *r)
{
	for (size_t i = 0; m->have_inv && i < m->inv.n; i++) {
		const struct ps_invcert *c = &m->inv.c[i];
		const char *ca =
		    ps_cert_jip_ca(&c->cert, m->cfg->jip_ca, m->cfg->n_jip_ca);
		json_t *full;

		if (!same(e, ps_cert_type_name(c->cert.type),
			  c->cert.serial_hex, c->cert.issuer, ca))
			continue;
		full = ps_inventory_record(&m->inv, i, m->cfg);
		ps_json_set_str(r, "mark",
				mark_of(ps_inventory_state(&m->inv, i)));
		ps_json_set_str(r, "serial_hex", c->cert.serial_hex);
		json_object_set(r, "not_after",
				json_object_get(full, "not_after"));
		json_object_set(r, "superseded_by",
				json_object_get(full, "superseded_by"));
		json_object_set(r, "token_label",
				json_object_get(full, "token_label"));
		json_decref(full);
		return 1;
	}
	return 0;
}

/* A certificate a renewal here replaced (the state store). */
static int from_state(const struct ps_jip_marks *m, const struct entry *e,
		      json_t *r)
{
	size_t i;
	json_t *q;

	json_array_foreach (m->renewed, i, q) {
		const char *na = ps_json_str(q, "old_not_after");
		time_t t = na ? ps_time_parse(na) : (time_t)-1;

		if (!same(e, ps_json_str(q, "type"),
			  ps_json_str(q, "old_serial_hex"),
			  ps_json_str(q, "old_issuer"),
			  ps_json_str(q, "jip_ca")))
			continue;
		ps_json_set_str(r, "mark",
				t != (time_t)-1 && t < m->now ? "expired"
							      : "superseded");
		ps_json_set_str(r, "serial_hex",
				ps_json_str(q, "old_serial_hex"));
		ps_json_set_str(r, "not_after", na);
		ps_json_set_str(r, "superseded_by",
				ps_json_str(q, "new_serial_hex"));
		return 1;
	}
	return 0;
}

static const char *type_name(const char *t)
{
	if (!strcmp(t, "V"))
		return "commercial";
	if (!strcmp(t, "Q"))
		return "qualified";
	return t;
}

json_t *ps_jip_entry_record(const struct ps_jip_marks *m, const char *user,
			    const char *type, const char *number,
			    const char *ca, int dn)
{
	struct entry e = { type_name(type), number, ca, dn };
	json_t *r = json_object();

	ps_json_set_str(r, "kind", "jip-entry");
	ps_json_set_str(r, "user", user);
	ps_json_set_str(r, "type", e.type);
	ps_json_set_str(r, "number", number);
	ps_json_set_str(r, "ca", ca);
	if (!from_tokens(m, &e, r) && !from_state(m, &e, r)) {
		ps_json_set_str(r, "mark", "unknown");
		json_object_set_new(r, "serial_hex", json_null());
	}
	return r;
}

/* psrenew: the JIP confirmations in the state store (jip/SERIAL_HEX.json):
 * the writer (ps-jip-setserial) and the readers (ps-token-clean, ps-status
 * --unregistered, a jip record on stdin). */
#include <psrenew/jipconf.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <psrenew/certio.h>
#include <psrenew/clean.h>
#include <psrenew/record.h>
#include <psrenew/request.h>

static int confirming_result(const char *res)
{
	return res && (!strcmp(res, "set") || !strcmp(res, "already-set"));
}

json_t *ps_jipconf_new(const char *user, const char *type, const char *ca,
		       const char *serial_hex, const char *result)
{
	json_t *r = json_object();
	char now[32];

	if (!r)
		return NULL;
	ps_time_iso(time(NULL), now, sizeof(now));
	ps_json_set_str(r, "kind", "jip");
	ps_json_set_str(r, "user", user);
	ps_json_set_str(r, "serial_hex", serial_hex);
	ps_json_set_str(r, "type", type);
	ps_json_set_str(r, "ca", ca);
	ps_json_set_str(r, "result", result);
	ps_json_set_str(r, "confirmed_at", now);
	return r;
}

void ps_jipconf_set_verified(json_t *rec, int rc, const struct ps_err *e)
{
	json_object_set_new(rec, "login_verified",
			    !rc			    ? json_true()
			    : rc == PS_EXIT_REFUSED ? json_false()
						    : json_null());
	if (rc)
		ps_json_set_str(rec, "login_verify_reason",
				e && e->msg[0] ? e->msg : "not verified");
}

/* 0 unless r says its --verify-login failed or could not be done: then
 * err says so (exit 1, "jip-login-unverified"). */
static int verified(const json_t *r, const char *serial, struct ps_err *err)
{
	const json_t *v = json_object_get(r, "login_verified");
	const char *why = ps_json_str(r, "login_verify_reason");

	if (!v || json_is_true(v))
		return 0;
	return ps_err_set(err, PS_EXIT_FAIL, "jip-login-unverified",
			  "make the login with the new certificate work, "
			  "then run ps-jip-setserial --verify-login again",
			  "JIP has serial %.80s, but the login with it was %s "
			  "(%.200s)",
			  serial, json_is_false(v) ? "refused" : "not verified",
			  why ? why : "no reason given");
}

int ps_jipconf_keep(const char *state_dir, const struct ps_config *cfg,
		    const json_t *rec, struct ps_err *err)
{
	struct ps_state st;
	int rc = ps_state_open(state_dir, cfg, 1, &st, err);

	if (!rc)
		rc = ps_state_put(&st, "jip", ps_json_str(rec, "serial_hex"),
				  rec, err);
	if (st.dirfd >= 0)
		ps_state_close(&st);
	return rc;
}

int ps_jip_record_confirms(const json_t *rec, char **serial_hex,
			   struct ps_err *err)
{
	const char *kind = ps_json_str(rec, "kind");
	const char *serial = ps_json_str(rec, "serial_hex");
	const char *res = ps_json_str(rec, "result");
	const char *type = ps_json_str(rec, "type");

	*serial_hex = NULL;
	if (!kind || strcmp(kind, "jip") != 0)
		return ps_err_set(err, PS_EXIT_FAIL, "bad-record", NULL,
				  "not a jip record");
	if (!serial)
		return ps_err_set(err, PS_EXIT_FAIL, "bad-record", NULL,
				  "a jip record without serial_hex");
	if (!confirming_result(res))
		return ps_err_set(err, PS_EXIT_FAIL, "jip-unconfirmed", NULL,
				  "JIP did not confirm serial %.80s (result "
				  "%.40s)",
				  serial, res ? res : "missing");
	if (type && strcmp(type, "commercial") != 0)
		return ps_err_set(err, PS_EXIT_FAIL, "jip-unconfirmed", NULL,
				  "serial %.80s is registered as %.40s, not "
				  "commercial",
				  serial, type);
	if (verified(rec, serial, err))
		return PS_EXIT_FAIL;
	return ps_serial_normalise(serial, serial_hex, err);
}

/* Is r the confirmation of serial_hex as a certificate of type tname? */
static int confirms(const json_t *r, const char *serial_hex, const char *tname)
{
	const char *kind = ps_json_str(r, "kind");
	const char *serial = ps_json_str(r, "serial_hex");
	const char *when = ps_json_str(r, "confirmed_at");
	const char *type = ps_json_str(r, "type");
	char *norm = NULL;
	int ok;

	ok = kind && !strcmp(kind, "jip") && serial &&
	     !ps_serial_normalise(serial, &norm, NULL) &&
	     !strcmp(norm, serial_hex) && when && ps_time_parse(when) >= 0 &&
	     type && !strcmp(type, tname) &&
	     (!json_object_get(r, "result") ||
	      confirming_result(ps_json_str(r, "result")));
	free(norm);
	return ok;
}

int ps_jipconf_load(struct ps_state *st, const char *serial_hex, int type,
		    json_t **rec, struct ps_err *err)
{
	const char *tname = ps_cert_type_name(type);
	struct ps_err e;
	json_t *r = NULL;

	*rec = NULL;
	if (!st || !serial_hex || !*serial_hex || strlen(serial_hex) > 64 ||
	    strspn(serial_hex, "0123456789ABCDEF") != strlen(serial_hex))
		return 0;
	ps_err_clear(&e);
	if (ps_state_get(st, "jip", serial_hex, &r, &e)) {
		if (!strcmp(e.code, "no-such-request"))
			return 0; /* no file: not confirmed */
		if (err)
			*err = e;
		return e.status;
	}
	if (confirms(r, serial_hex, tname) && verified(r, serial_hex, err)) {
		json_decref(r);
		return PS_EXIT_FAIL;
	}
	if (!confirms(r, serial_hex, tname)) {
		json_decref(r);
		return ps_err_set(err, PS_EXIT_FAIL, "state-read", NULL,
				  "%s/jip/%s.json is not a JIP confirmation "
				  "of a %s certificate %s",
				  st->dir, serial_hex, tname, serial_hex);
	}
	*rec = r;
	return 0;
}

/* What ps_jipconf_unregistered gathers as ps_state_each walks the store. */
struct unreg {
	struct ps_state *st;
	const struct ps_inventory *inv;
	const struct ps_config *cfg;
	json_t *out;
	size_t *unknown_keys;
	int rc;
};

/* The inventory's certificate whose SHA-256 is that of the first
 * certificate of pem, or -1. */
static long cert_of(const struct ps_inventory *inv, const char *pem)
{
	STACK_OF(X509) *sk = NULL;
	struct ps_cert c;
	long at = -1;

	if (!pem ||
	    ps_certs_parse((const unsigned char *)pem, strlen(pem), &sk, NULL))
		return -1;
	if (!ps_cert_from_x509(sk_X509_value(sk, 0), &c, NULL)) {
		for (size_t i = 0; at < 0 && i < inv->n; i++)
			if (!strcmp(inv->c[i].cert.sha256, c.sha256))
				at = (long)i;
		ps_cert_free(&c);
	}
	sk_X509_pop_free(sk, X509_free);
	return at;
}

static int unreg_one(void *v, const struct ps_state_file *f)
{
	struct unreg *u = v;
	const struct ps_invcert *ic;
	const char *s;
	json_t *conf = NULL, *r;
	long i;

	if (!f->rec) {
		json_array_append_new(u->out, ps_state_damaged_record(f));
		u->rc = PS_EXIT_FAIL;
		return 0;
	}
	s = ps_json_str(f->rec, "state");
	if (!s || strcmp(s, PS_REQ_INSTALLED) != 0)
		return 0;
	i = cert_of(u->inv, ps_json_str(f->rec, "cert"));
	if (i < 0)
		return 0; /* not on these tokens (any more) */
	ic = &u->inv->c[i];
	if (strcmp(ps_inventory_state(u->inv, (size_t)i), "valid") != 0 ||
	    ic->has_key == 0)
		return 0;
	/* A confirmation that cannot be read confirms nothing. */
	ps_jipconf_load(u->st, ic->cert.serial_hex, ic->cert.type, &conf, NULL);
	if (conf) {
		json_decref(conf);
		return 0;
	}
	if (ic->has_key < 0) {
		(*u->unknown_keys)++; /* not logged in: its key is unknown */
		return 0;
	}
	r = ps_inventory_record(u->inv, (size_t)i, u->cfg);
	if (!r)
		return 0;
	ps_json_set_str(r, "request_id", ps_json_str(f->rec, "request_id"));
	json_object_set(r, "replaces_serial_hex",
			json_object_get(f->rec, "old_serial_hex"));
	ps_record_pass_through(r, f->rec);
	json_array_append_new(u->out, r);
	return 0;
}

int ps_jipconf_unregistered(struct ps_state *st, const struct ps_inventory *inv,
			    const struct ps_config *cfg, json_t *out,
			    size_t *unknown_keys, struct ps_err *err)
{
	struct unreg u = { st, inv, cfg, out, unknown_keys, 0 };
	int rc;

	*unknown_keys = 0;
	rc = ps_state_each(st, NULL, NULL, unreg_one, &u, err);
	return rc ? rc : u.rc;
}

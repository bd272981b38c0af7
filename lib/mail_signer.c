/* psrenew: the signer of the renewal e-mail. PostSignum's signed-e-mail
 * procedure asks for the applicant's qualified certificate, so by default
 * the holder's valid qualified certificate on the same token signs, else
 * the certificate being renewed (ps-renew(1), --sign-with). */
#include <psrenew/mail_signer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/objects.h>

#include <psrenew/cert.h>
#include <psrenew/inventory.h>

static const char hint[] =
    "--sign-with qualified, current, id:HEX or serial:SERIAL; ps-status "
    "lists the certificates on the token";

/* The same person: the same subject serialNumber (PostSignum's P...)
 * when both carry one, else the same subject. */
static int same_holder(X509 *a, X509 *b)
{
	char sa[128], sb[128];

	if (X509_NAME_get_text_by_NID(X509_get_subject_name(a),
				      NID_serialNumber, sa, sizeof(sa)) > 0 &&
	    X509_NAME_get_text_by_NID(X509_get_subject_name(b),
				      NID_serialNumber, sb, sizeof(sb)) > 0)
		return strcmp(sa, sb) == 0;
	return X509_NAME_cmp(X509_get_subject_name(a),
			     X509_get_subject_name(b)) == 0;
}

/* Valid now (a superseded one still is) with its private key on the
 * token. */
static int usable(const struct ps_inventory *inv, size_t i)
{
	const char *st = ps_inventory_state(inv, i);

	return inv->c[i].has_key == 1 && inv->c[i].key_on_token &&
	       (!strcmp(st, "valid") || !strcmp(st, "superseded"));
}

static int take(X509 *x, const unsigned char *id, size_t id_len,
		struct ps_mail_signer *out, struct ps_err *err)
{
	BIGNUM *bn =
	    x ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL) : NULL;
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	BN_free(bn);
	if (!hex || id_len > sizeof(out->id)) {
		OPENSSL_free(hex);
		return ps_err_set(err, PS_EXIT_FAIL, "mail", NULL,
				  "cannot read the signer's serial and id");
	}
	snprintf(out->serial_hex, sizeof(out->serial_hex), "%s", hex);
	OPENSSL_free(hex);
	X509_up_ref(x);
	out->cert = x;
	memcpy(out->id, id, id_len);
	out->id_len = id_len;
	out->qualified = ps_cert_is_qualified(x);
	return 0;
}

/* The holder's usable qualified certificate that lasts longest, or -1. */
static long qualified_of(const struct ps_inventory *inv, X509 *cur)
{
	long best = -1;

	for (size_t i = 0; i < inv->n; i++) {
		const struct ps_cert *c = &inv->c[i].cert;
		X509 *x;

		if (c->type != PS_CERT_QUALIFIED || !usable(inv, i))
			continue;
		x = ps_cert_x509(c);
		if (!x || !same_holder(x, cur))
			continue;
		if (best < 0 || c->not_after > inv->c[best].cert.not_after)
			best = (long)i;
	}
	return best;
}

/* The certificate sel names (id:HEX, serial:S, or a bare CKA_ID, else
 * serial), or -1 with err set. */
static long named(const struct ps_inventory *inv, const char *sel,
		  struct ps_err *err)
{
	struct ps_selector s = { NULL, NULL, -1 };
	size_t *idx = NULL, n = 0;
	long found = -1;

	if (!strncmp(sel, "id:", 3))
		s.id_hex = sel + 3;
	else if (!strncmp(sel, "serial:", 7))
		s.serial = sel + 7;
	else
		s.id_hex = sel;
	if (ps_inventory_select(inv, &s, &idx, &n, err))
		return -1;
	if (n == 0 && s.id_hex == sel) {
		free(idx);
		s.id_hex = NULL;
		s.serial = sel;
		if (ps_inventory_select(inv, &s, &idx, &n, err))
			return -1;
	}
	for (size_t k = 0; k < n && found < 0; k++)
		if (usable(inv, idx[k]))
			found = (long)idx[k];
	free(idx);
	if (found < 0)
		ps_err_set(err, PS_EXIT_USAGE, "no-signer", hint,
			   n ? "the certificate --sign-with %.80s names is "
			       "not valid now or its key is not on the token"
			     : "no certificate on the token matches "
			       "--sign-with %.80s",
			   sel);
	return found;
}

int ps_mail_signer_pick(struct ps_token *tok, X509 *cur,
			const unsigned char *cur_id, size_t cur_id_len,
			const char *sel, struct ps_mail_signer *out,
			struct ps_err *err)
{
	struct ps_inventory inv;
	long i;
	int rc;

	memset(out, 0, sizeof(*out));
	if (sel && !strcasecmp(sel, "current"))
		return take(cur, cur_id, cur_id_len, out, err);
	rc = ps_inventory_load(&tok, 1, time(NULL), &inv, err);
	if (rc)
		return rc;
	if (!sel || !strcasecmp(sel, "qualified"))
		i = qualified_of(&inv, cur);
	else
		i = named(&inv, sel, err);
	if (i >= 0)
		rc = take(ps_cert_x509(&inv.c[i].cert), inv.c[i].obj.id,
			  inv.c[i].obj.id_len, out, err);
	else if (!sel)
		rc = take(cur, cur_id, cur_id_len, out, err);
	else if (err->status)
		rc = err->status;
	else
		rc = ps_err_set(err, PS_EXIT_USAGE, "no-signer", hint,
				"the token holds no valid qualified "
				"certificate of this holder with its key to "
				"sign the e-mail");
	ps_inventory_free(&inv);
	return rc;
}

void ps_mail_signer_free(struct ps_mail_signer *s)
{
	X509_free(s->cert);
	s->cert = NULL;
}

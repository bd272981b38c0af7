/* psrenew: request records. */
#include <psrenew/request.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/pem.h>

#include <psrenew/certio.h>
#include <psrenew/keypair.h>
#include <psrenew/record.h>
#include <psrenew/codec.h>

void ps_json_set_time(json_t *o, const char *key, time_t t)
{
	char buf[32];

	ps_time_iso(t, buf, sizeof(buf));
	ps_json_set_str(o, key, buf);
}

void ps_request_set_state(json_t *rec, const char *state, time_t now)
{
	ps_json_set_str(rec, "state", state);
	ps_json_set_time(rec, "updated_at", now);
}

json_t *ps_request_new(const char *id, const struct ps_inventory *inv, size_t i,
		       const struct ps_config *cfg, const unsigned char *key_id,
		       size_t key_id_len, const char *key_type,
		       const char *key_label, const char *csr_pem,
		       const struct ps_ca *ca, time_t now)
{
	const struct ps_invcert *ic = &inv->c[i];
	json_t *old = ps_inventory_record(inv, i, cfg);
	json_t *r = json_object();
	char *kid = ps_hex(key_id, key_id_len);
	char *old_pem = ps_cert_pem(ps_cert_x509(&ic->cert));

	if (!old || !r || !kid || !old_pem) {
		json_decref(old);
		json_decref(r);
		free(kid);
		free(old_pem);
		return NULL;
	}
	ps_json_set_str(r, "kind", "request");
	ps_json_set_str(r, "request_id", id);
	ps_request_set_state(r, PS_REQ_UNSUBMITTED, now);
	ps_json_set_str(r, "ca", ca ? ps_ca_name(ca) : NULL);
	ps_json_set_str(r, "channel", ca ? ps_ca_channel(ca) : NULL);
	ps_json_set_str(r, "module", ps_module_path(ic->tok->mod));
	ps_json_set_str(r, "token", ic->tok->uri);
	ps_json_set_str(r, "token_label", ic->tok->label);
	ps_json_set_str(r, "key_id", kid);
	ps_json_set_str(r, "key_type", key_type);
	ps_json_set_str(r, "key_label", key_label);
	json_object_set(r, "type", json_object_get(old, "type"));
	json_object_set(r, "subject", json_object_get(old, "subject"));
	json_object_set(r, "cn", json_object_get(old, "cn"));
	json_object_set(r, "email", json_object_get(old, "email"));
	json_object_set(r, "jip_ca", json_object_get(old, "jip_ca"));
	json_object_set(r, "old_id", json_object_get(old, "id"));
	json_object_set(r, "old_serial_hex",
			json_object_get(old, "serial_hex"));
	json_object_set(r, "old_serial_dec",
			json_object_get(old, "serial_dec"));
	json_object_set(r, "old_issuer", json_object_get(old, "issuer"));
	json_object_set(r, "old_not_after", json_object_get(old, "not_after"));
	json_object_set(r, "old_sha256", json_object_get(old, "sha256"));
	ps_json_set_str(r, "old_cert", old_pem);
	ps_json_set_str(r, "csr", csr_pem);
	ps_json_set_time(r, "created_at", now);
	json_object_set_new(r, "polls", json_integer(0));
	json_decref(old);
	free(kid);
	free(old_pem);
	return r;
}

void ps_request_apply(json_t *rec, const struct ps_ca_reply *reply, time_t now)
{
	long polls = (long)json_integer_value(json_object_get(rec, "polls"));

	if (reply->message)
		ps_json_set_str(rec, "message", reply->message);
	else
		json_object_del(rec, "message");
	switch (reply->status) {
	case PS_CA_ISSUED:
		ps_request_set_state(rec, PS_REQ_ISSUED, now);
		ps_json_set_str(rec, "cert", reply->certs_pem);
		json_object_del(rec, "next_poll_at");
		break;
	case PS_CA_PENDING:
		if (!json_object_get(rec, "submitted_at"))
			ps_json_set_time(rec, "submitted_at", now);
		ps_request_set_state(rec, PS_REQ_PENDING, now);
		ps_json_set_str(rec, "cookie", reply->cookie);
		ps_json_set_time(rec, "next_poll_at",
				 now + (reply->delay > 0 ? reply->delay : 0));
		break;
	case PS_CA_REJECTED:
		ps_request_set_state(rec, PS_REQ_REJECTED, now);
		if (reply->fail_info)
			ps_json_set_str(rec, "fail_info", reply->fail_info);
		json_object_del(rec, "next_poll_at");
		break;
	default: /* unreachable, unconfigured, failed: state unchanged */
		ps_json_set_time(rec, "updated_at", now);
		break;
	}
	if (reply->rejected_cert)
		ps_json_set_str(rec, "rejected_cert", reply->rejected_cert);
	if (reply->status == PS_CA_ISSUED &&
	    !json_object_get(rec, "submitted_at"))
		ps_json_set_time(rec, "submitted_at", now);
	json_object_set_new(rec, "polls", json_integer(polls + 1));
	ps_json_set_str(rec, "ca_answer", ps_ca_status_name(reply->status));
}

int ps_request_check_reply(const struct ps_ca *ca,
			   const struct ps_ca_reply *reply, struct ps_err *err)
{
	const char *pem = reply->certs_pem;
	STACK_OF(X509) *certs = NULL;
	struct ps_err e;
	char code[16];
	size_t n;

	if (reply->status != PS_CA_ISSUED)
		return 0;
	ps_err_clear(&e);
	if (pem && *pem &&
	    !ps_certs_parse((const unsigned char *)pem, strlen(pem), &certs,
			    &e)) {
		sk_X509_pop_free(certs, X509_free);
		return 0;
	}
	/* The channel's name as the code: "helper", "est", "cmp", "mail". */
	n = strcspn(ps_ca_channel(ca), ":");
	snprintf(code, sizeof(code), "%.*s", (int)(n < 15 ? n : 15),
		 ps_ca_channel(ca));
	return ps_err_set(err, PS_EXIT_FAIL, code,
			  "nothing was recorded or installed: the request "
			  "stays as it was; check the CA (helper) and run "
			  "again",
			  "the CA (%s) said \"issued\" but its answer holds "
			  "no certificate%s%.200s",
			  ps_ca_channel(ca), e.msg[0] ? ": " : "", e.msg);
}

void ps_ca_auth_free(struct ps_ca_auth *auth)
{
	X509_free(auth->cert);
	auth->cert = NULL;
}

void ps_cert_memo_free(struct ps_cert_memo *memo)
{
	free(memo->pem);
	X509_free(memo->cert);
	memo->pem = NULL;
	memo->cert = NULL;
}

/* The certificate of pem (a reference of the caller's), from memo when
 * it holds the same. */
static X509 *cert_of(const char *pem, struct ps_cert_memo *memo)
{
	BIO *b;
	X509 *x;

	if (memo && memo->pem && !strcmp(memo->pem, pem)) {
		X509_up_ref(memo->cert);
		return memo->cert;
	}
	b = BIO_new_mem_buf(pem, -1);
	x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (x && memo) {
		char *copy = strdup(pem);

		if (copy) {
			ps_cert_memo_free(memo);
			memo->pem = copy;
			memo->cert = x;
			X509_up_ref(x);
		}
	}
	return x;
}

static void fill_auth(const json_t *rec, struct ps_token *tok,
		      struct ps_ca_auth *auth, struct ps_cert_memo *memo,
		      struct ps_ca_request *out)
{
	const char *pem = ps_json_str(rec, "old_cert");
	size_t n = 0;

	memset(auth, 0, sizeof(*auth));
	if (!tok || !pem ||
	    ps_unhex(ps_json_str(rec, "old_id"), auth->id, sizeof(auth->id),
		     &n))
		return;
	auth->cert = cert_of(pem, memo);
	if (!auth->cert)
		return;
	out->tok = tok;
	out->old_cert = auth->cert;
	out->old_key_id = auth->id;
	out->old_key_id_len = n;
	if (ps_unhex(ps_json_str(rec, "key_id"), auth->new_id,
		     sizeof(auth->new_id), &n) == 0) {
		out->new_key_id = auth->new_id;
		out->new_key_id_len = n;
	}
}

void ps_request_ca_req(const json_t *rec, struct ps_token *tok,
		       struct ps_ca_auth *auth, struct ps_ca_request *out)
{
	ps_request_ca_req_memo(rec, tok, auth, NULL, out);
}

void ps_request_ca_req_memo(const json_t *rec, struct ps_token *tok,
			    struct ps_ca_auth *auth, struct ps_cert_memo *memo,
			    struct ps_ca_request *out)
{
	const char *kt = ps_json_str(rec, "key_type");

	memset(out, 0, sizeof(*out));
	if (auth)
		fill_auth(rec, tok, auth, memo, out);
	out->csr_pem = ps_json_str(rec, "csr");
	out->old_cert_pem = ps_json_str(rec, "old_cert");
	out->subject = ps_json_str(rec, "subject");
	out->email = ps_json_str(rec, "email");
	out->key_type = kt && strncmp(kt, "ec:", 3) == 0 ? "EC" : "RSA";
	out->cookie = ps_json_str(rec, "cookie");
}

/* The public key of a PEM CSR (csr) or certificate, or NULL. */
static EVP_PKEY *pem_pubkey(const char *pem, int csr)
{
	BIO *b = pem ? BIO_new_mem_buf(pem, -1) : NULL;
	EVP_PKEY *pk = NULL;

	if (b && csr) {
		X509_REQ *r = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);

		pk = r ? X509_REQ_get_pubkey(r) : NULL;
		X509_REQ_free(r);
	} else if (b) {
		X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

		pk = x ? X509_get_pubkey(x) : NULL;
		X509_free(x);
	}
	BIO_free(b);
	return pk;
}

/* A certificate on tok with kp's CKA_ID or public key: 1 (its serial in
 * serial), 0 none, -1 the token could not be read. */
static int cert_uses(struct ps_token *tok, const struct ps_keypair *kp,
		     char *serial, size_t len)
{
	struct ps_tobj *certs;
	unsigned char kid[20];
	size_t n;
	int found = 0;

	if (ps_pubkey_id(kp->pubkey, kid) < 0 ||
	    ps_token_objects(tok, CKO_CERTIFICATE, &certs, &n, NULL))
		return -1;
	for (size_t i = 0; i < n && !found; i++) {
		struct ps_cert c;
		int parsed = !ps_cert_from_der(certs[i].value,
					       certs[i].value_len, &c, NULL);

		found = (certs[i].id_len == kp->id_len &&
			 !memcmp(certs[i].id, kp->id, kp->id_len)) ||
			(parsed && !memcmp(c.key_id, kid, sizeof(kid)));
		if (found)
			snprintf(serial, len, "%s",
				 parsed ? c.serial_hex : "(not X.509)");
		if (parsed)
			ps_cert_free(&c);
	}
	ps_tobjs_free(certs, n);
	return found;
}

/* cert_uses, its answer also kept in *uses (for the caller's next test). */
static int cert_uses_into(struct ps_token *tok, const struct ps_keypair *kp,
			  char *serial, size_t len, int *uses)
{
	*uses = cert_uses(tok, kp, serial, len);
	return *uses;
}

int ps_request_key_removable(const json_t *rec, struct ps_token *tok,
			     const struct ps_keypair *kp, char *why, size_t len)
{
	EVP_PKEY *csr = pem_pubkey(ps_json_str(rec, "csr"), 1);
	EVP_PKEY *old = pem_pubkey(ps_json_str(rec, "old_cert"), 0);
	const char *old_id = ps_json_str(rec, "old_id");
	const char *old_serial = ps_json_str(rec, "old_serial_hex");
	char *hex = ps_hex(kp->id, kp->id_len);
	char serial[80] = "";
	int uses = 0, ok = 0;

	if (!hex || !kp->pubkey || !csr)
		snprintf(why, len,
			 "the request's CSR cannot be read, so its key pair "
			 "cannot be told apart from others");
	else if (EVP_PKEY_eq(csr, kp->pubkey) != 1)
		snprintf(why, len,
			 "key pair %s is not the one the request's CSR was "
			 "made with",
			 hex);
	else if ((old && EVP_PKEY_eq(old, kp->pubkey) == 1) ||
		 (old_id && !strcasecmp(old_id, hex)))
		snprintf(why, len,
			 "key pair %s is the key of certificate %s, the one "
			 "being renewed",
			 hex, old_serial ? old_serial : "?");
	else if (cert_uses_into(tok, kp, serial, sizeof(serial), &uses) > 0)
		snprintf(why, len,
			 "certificate %s on the token uses key pair %s", serial,
			 hex);
	else if (uses < 0)
		snprintf(why, len,
			 "the token's certificates could not be read to check "
			 "that none uses key pair %s",
			 hex);
	else
		ok = 1;
	EVP_PKEY_free(csr);
	EVP_PKEY_free(old);
	free(hex);
	return ok;
}

int ps_request_exit(const json_t *rec)
{
	const char *s = ps_json_str(rec, "state");
	const char *a = ps_json_str(rec, "ca_answer");

	if (!s)
		return PS_EXIT_FAIL;
	if (!strcmp(s, PS_REQ_ISSUED) || !strcmp(s, PS_REQ_INSTALLED) ||
	    !strcmp(s, PS_REQ_PLANNED))
		return PS_EXIT_OK;
	if (!strcmp(s, PS_REQ_REJECTED))
		return PS_EXIT_REFUSED;
	if (a && !strcmp(a, "unreachable"))
		return PS_EXIT_TEMP;
	if (a && !strcmp(a, "unconfigured"))
		return PS_EXIT_USAGE;
	if (a && !strcmp(a, "failed"))
		return PS_EXIT_FAIL;
	return PS_EXIT_PENDING;
}

/* psrenew: the request record: what ps-renew writes, ps-fetch finishes,
 * and the state store keeps (psrenew(7)). */
#ifndef PSRENEW_REQUEST_H
#define PSRENEW_REQUEST_H

#include <time.h>

#include <jansson.h>

#include <psrenew/ca.h>
#include <psrenew/inventory.h>
#include <psrenew/codec.h> /* ps_time_iso, ps_time_parse */

/*
 * Request states:
 *   planned      --dry-run only
 *   unsubmitted  key and CSR ready, the CA not reached yet
 *   pending      the CA has it
 *   issued       the certificate is here, not installed yet
 *   installed    on the token
 *   rejected     the CA said no
 */
#define PS_REQ_PLANNED	   "planned"
#define PS_REQ_UNSUBMITTED "unsubmitted"
#define PS_REQ_PENDING	   "pending"
#define PS_REQ_ISSUED	   "issued"
#define PS_REQ_INSTALLED   "installed"
#define PS_REQ_REJECTED	   "rejected"

/* A new request record for renewing inv->c[i] with the new key. */
json_t *ps_request_new(const char *id, const struct ps_inventory *inv, size_t i,
		       const struct ps_config *cfg, const unsigned char *key_id,
		       size_t key_id_len, const char *key_type,
		       const char *key_label, const char *csr_pem,
		       const struct ps_ca *ca, time_t now);

/* Records what the CA answered: state, cookie, next_poll_at, message,
 * cert, updated_at. */
void ps_request_apply(json_t *rec, const struct ps_ca_reply *reply, time_t now);
/* Every CA answer is checked before it changes a request: an "issued"
 * answer must hold a certificate. Exit 1 (code: the channel's kind,
 * "helper" for helper:) when it does not. */
int ps_request_check_reply(const struct ps_ca *ca,
			   const struct ps_ca_reply *reply, struct ps_err *err);
/* What a channel needs to authenticate as the current certificate. */
struct ps_ca_auth {
	X509 *cert;
	unsigned char id[64];
	unsigned char new_id[64];
};

/* The CA's view of a record (strings borrowed from rec). With tok, the
 * current certificate and its key id are filled in from the record, in
 * auth (release with ps_ca_auth_free). */
void ps_request_ca_req(const json_t *rec, struct ps_token *tok,
		       struct ps_ca_auth *auth, struct ps_ca_request *out);
/* The current certificate last decoded by ps_request_ca_req_memo, kept
 * for the next record: requests renewing the same certificate share one
 * X509 (decoding it, public key included, costs more than a poll). */
struct ps_cert_memo {
	char *pem;
	X509 *cert;
};
/* ps_request_ca_req, taking the certificate from memo when its PEM is the
 * same (and keeping it there otherwise). */
void ps_request_ca_req_memo(const json_t *rec, struct ps_token *tok,
			    struct ps_ca_auth *auth, struct ps_cert_memo *memo,
			    struct ps_ca_request *out);
void ps_cert_memo_free(struct ps_cert_memo *memo);
void ps_ca_auth_free(struct ps_ca_auth *auth);
struct ps_keypair;
/*
 * May the key pair kp, which the request rec names (key_id), go now that
 * the request ended without a certificate (the CA rejected it)? Only when
 * its public key is the CSR's, it is not the key of the certificate being
 * renewed, and no certificate on tok uses it (by CKA_ID or public key).
 * 1: it may; 0: it stays, and why (len bytes) says why, for people and
 * the record's key_kept.
 */
int ps_request_key_removable(const json_t *rec, struct ps_token *tok,
			     const struct ps_keypair *kp, char *why,
			     size_t len);
/* The exit status a record in this state means. */
int ps_request_exit(const json_t *rec);
/* Sets "state" and "updated_at". */
void ps_request_set_state(json_t *rec, const char *state, time_t now);
void ps_json_set_time(json_t *o, const char *key, time_t t);

#endif

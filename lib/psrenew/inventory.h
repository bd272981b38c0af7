/* psrenew: every certificate on a set of tokens, with its key and its
 * successor. What ps-status prints and what the other tools decide on. */
#ifndef PSRENEW_INVENTORY_H
#define PSRENEW_INVENTORY_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include <psrenew/cert.h>
#include <psrenew/config.h>
#include <psrenew/token.h>
#include <psrenew/export.h>

struct ps_invcert {
	struct ps_token *tok; /* borrowed */
	struct ps_tobj obj;   /* the certificate object */
	struct ps_cert cert;
	int has_key;	    /* 1 yes, 0 no, -1 unknown (not logged in) */
	int key_on_token;   /* its private key (without a login: its public
			       key object) is on the token, by CKA_ID and
			       checked by public key where the token shows
			       it: only such a certificate supersedes */
	long superseded_by; /* index of the newer certificate, or -1 */
};

struct ps_inventory {
	struct ps_invcert *c;
	size_t n;
	time_t now;
	size_t skipped; /* certificate objects that are not X.509 */
};

/*
 * Reads the certificates (and the key ids) of every token: one object
 * search per class and one attribute read per object (a key's public
 * values come with it, to check that it holds the certificate's key).
 * Sorted by token, then qualified before commercial, then holder, then
 * not_after. A certificate is superseded only by a newer valid one of
 * the same holder and type whose key is on the token (key_on_token).
 */
PS_API int ps_inventory_load(struct ps_token **toks, size_t ntoks, time_t now,
			     struct ps_inventory *inv, struct ps_err *err);
/*
 * The same for work on named certificates (ps-renew --id, cert records):
 * on each token only the certificates whose CKA_ID is one of ids[0..nids)
 * (hex; the targets) and those of the targets' holders, found by their
 * CKA_SUBJECT (the subject's DER as the target has it): a few template
 * searches and one read per certificate found, whatever else the token
 * holds. Keys are looked for (by CKA_ID) only for a certificate that
 * could supersede a target; has_key is -1 (unknown) for the others. ids
 * NULL: ps_inventory_load.
 */
int ps_inventory_load_ids(struct ps_token **toks, size_t ntoks, time_t now,
			  const char *const *ids, size_t nids,
			  struct ps_inventory *inv, struct ps_err *err);
/* The inventory of one token from objects its caller listed already
 * (ps_token_objects: certificates, and private and public keys): no call
 * to the token. The objects stay the caller's. */
int ps_inventory_from_objects(struct ps_token *tok, time_t now,
			      const struct ps_tobj *certs, size_t ncerts,
			      struct ps_tobj *priv, size_t npriv,
			      struct ps_tobj *pub, size_t npub,
			      struct ps_inventory *inv, struct ps_err *err);
PS_API void ps_inventory_free(struct ps_inventory *inv);

/* "valid", "expired", "not-yet-valid" or "superseded". */
PS_API const char *ps_inventory_state(const struct ps_inventory *inv, size_t i);
/* Valid now, not superseded, and expiring within days. */
PS_API int ps_inventory_expiring(const struct ps_inventory *inv, size_t i,
				 long days);

/* --expiring 30,21,7: the reminder thresholds, in days. */
struct ps_expiring {
	long days[8];
	size_t n;
	long max; /* the largest */
};
/* Parses "30" or "30,21,7" (exit 2 when it is not that). */
int ps_expiring_parse(const char *s, struct ps_expiring *e, struct ps_err *err);
/* The threshold certificate i has crossed: the smallest of e within
 * which it expires (as ps_inventory_expiring); -1 when none. *fresh: it
 * crossed it within the last 24 hours (a daily reminder tells it once). */
/* For a table: where two of toks share the label of record r's token,
 * r's token_label gets the token's serial ("TokenME (serial 0123)"), so
 * that their rows are told apart. */
void ps_inventory_label_serial(struct ps_token **toks, size_t n, json_t *r);

long ps_inventory_threshold(const struct ps_inventory *inv, size_t i,
			    const struct ps_expiring *e, int *fresh);

/* A cert record (psrenew(7)) for any certificate on a token; has_key:
 * 1, 0 or -1 (unknown). */
json_t *ps_cert_record(const struct ps_token *tok, const unsigned char *id,
		       size_t id_len, const char *label,
		       const struct ps_cert *c, int has_key, const char *state,
		       const char *superseded_by, const struct ps_config *cfg,
		       time_t now);
/* The cert record of inv->c[i]. */
PS_API json_t *ps_inventory_record(const struct ps_inventory *inv, size_t i,
				   const struct ps_config *cfg);

/* Selects certificates by CKA_ID (hex), serial (as people type it) and
 * type (-1: any). */
struct ps_selector {
	const char *id_hex;
	const char *serial;
	int type;
};
/* The indexes of the matching certificates (malloc'ed, *n may be 0). */
PS_API int ps_inventory_select(const struct ps_inventory *inv,
			       const struct ps_selector *sel, size_t **idx,
			       size_t *n, struct ps_err *err);
/* The certificate a cert record names (token, id, serial_hex), or -1. */
PS_API long ps_inventory_find_record(const struct ps_inventory *inv,
				     const json_t *rec);

#endif

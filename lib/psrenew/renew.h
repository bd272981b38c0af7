/* psrenew: renewing certificates as following certificates (the guide's
 * §2): key pair on the token, CSR, submission, pending state. */
#ifndef PSRENEW_RENEW_H
#define PSRENEW_RENEW_H

#include <jansson.h>

#include <psrenew/ca.h>
#include <psrenew/inventory.h>
#include <psrenew/record.h>
#include <psrenew/state.h>
#include <psrenew/export.h>

struct ps_batch_hooks;

struct ps_renew {
	struct ps_ca *ca;	     /* NULL only with dry_run */
	const char *key_type;	     /* NULL: the current certificate's */
	const unsigned char *key_id; /* an existing key pair (--key) */
	size_t key_id_len;
	int dry_run, force;
	const struct ps_config *cfg;
	struct ps_state *st;
	json_t *active; /* old_sha256 -> id of an unfinished request */
	json_t *seen;	/* request ids read into active (a set) */
	/* Unreadable files of the store: their error records (to report)
	 * and old_sha256 (or "*": might be for any certificate) -> file. */
	json_t *damaged, *damaged_for;
	/* key objects removed that an interrupted run had generated (the
	 * state store's keygen/ journal; see renew.c) */
	long recovered;
	size_t left_before[PS_N_LEFT]; /* leftovers on the token, see token.h */
	/* the front end's notes (--verbose) and wait line; may be NULL */
	const struct ps_batch_hooks *hooks;
};

/* Reads the unfinished requests of the store into r->active, and what
 * is unreadable in it (requests, keygen journal) into r->damaged: a
 * certificate a damaged request file might be for is not renewed. */
PS_API int ps_renew_load_active(struct ps_renew *r, struct ps_err *err);
PS_API void ps_renew_free(struct ps_renew *r);

/*
 * Renews the certificates inv->c[idx[k]] (all on tok), qualified first.
 * When the token reports room for fewer renewals than asked, the first
 * ones are done and the rest reported as token-full (exit 6): a token is
 * never left with a key that has no room for its certificate. inputs[k]
 * (may be NULL) is the record the target came from; its unknown fields are
 * passed through. Emits one record per target; returns the worst status.
 */
PS_API int ps_renew_token(struct ps_renew *r, struct ps_token *tok,
			  const struct ps_inventory *inv, const size_t *idx,
			  json_t *const *inputs, size_t n, ps_emit_fn emit,
			  void *ctx);

/* An error record about one target (error + token, serial, id). */
PS_API json_t *ps_target_error(const struct ps_err *err, const json_t *input,
			       const struct ps_inventory *inv, long i);

#endif

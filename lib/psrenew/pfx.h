/* psrenew: PKCS#12 (PFX) files onto the token: the guide's §8, "Jak
 * kopírovat certifikát z operačního systému Windows na TOKEN". */
#ifndef PSRENEW_PFX_H
#define PSRENEW_PFX_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include <psrenew/config.h>
#include <psrenew/err.h>
#include <psrenew/pfx_read.h>
#include <psrenew/state.h>
#include <psrenew/token.h>
#include <psrenew/export.h>

struct ps_pfx_import_opts {
	const char *label; /* NULL: the friendlyName, else the subject CN */
	int with_chain;	   /* also the CA certificates */
};

struct ps_pfx_import_result {
	unsigned char id[64]; /* CKA_ID of key and certificate */
	size_t id_len;
	char label[PS_PFX_MAX_LABEL + 1];
	int key_added, pub_added, cert_added;
	int key_was_there, cert_was_there;
	size_t chain_added, chain_was_there;
	int imported; /* the key or the certificate was written */
	int resumed;  /* an interrupted import of the key was completed */
	size_t leftovers_removed; /* half-written objects it left, removed */
	char warning[256];
};

/*
 * Imports the unlocked PFX onto tok (read-write session, logged in): the
 * private key (private, sensitive, not extractable, sign, and decrypt for
 * RSA), its public key and its certificate with CKA_ID = ps_pubkey_id(), and
 * with o->with_chain the CA certificates as public authority certificates.
 * What is already on the token is kept, never duplicated. Checks the room
 * first (exit 6 "token-full", the guide's error 621); when a later object
 * cannot be stored, everything this call wrote is removed again.
 *
 * With st, the import is recorded in st (imports/KEYID-TOKEN.json, under a
 * lock: exit 3 "busy" while another process imports the key onto the
 * token) before the first object is written, and the record is removed
 * when the import is done or undone. A call that finds the record completes
 * the interrupted import: it removes the half-written objects that import
 * left (objects without a class, keys and certificates with neither
 * CKA_ID nor value, beyond as many as the token held before it), keeps
 * what it wrote whole, writes the rest, and on failure removes both.
 */
PS_API int ps_pfx_import(struct ps_token *tok, const struct ps_pfx *pfx,
			 const struct ps_pfx_import_opts *o,
			 struct ps_state *st, struct ps_pfx_import_result *res,
			 struct ps_err *err);

/* The cert record (psrenew(7), as ps-status prints it) of the imported
 * certificate, plus "imported", "already_installed" and, with the chain,
 * "chain_imported". NULL when it cannot be built (err set). */
PS_API json_t *ps_pfx_record(struct ps_token *tok, const struct ps_pfx *pfx,
			     const struct ps_pfx_import_result *res,
			     const struct ps_config *cfg, struct ps_err *err);

#endif

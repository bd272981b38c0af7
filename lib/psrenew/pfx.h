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
#include <psrenew/state.h>
#include <psrenew/token.h>
#include <psrenew/export.h>

/* Bounds on untrusted input. One key derivation (the MAC's, each
 * encrypted part's, each shrouded key's) costs about a second per million
 * rounds; exporters ask for 2000 (Windows), 2048 (OpenSSL) or 600000
 * (GnuTLS). PS_PFX_MAX_ROUNDS bounds all the derivations of one
 * ps_pfx_unlock(): the MAC with each form of the password, every encrypted
 * part and key, the retries. */
#define PS_PFX_MAX_SIZE	    (1UL << 20)		  /* bytes of a PFX file */
#define PS_PFX_MAX_ITER	    1000000L		  /* rounds of one derivation */
#define PS_PFX_MAX_ROUNDS   (4 * PS_PFX_MAX_ITER) /* rounds of all of them */
#define PS_PFX_MAX_BAGS	    256			  /* safe bags in one file */
#define PS_PFX_MAX_LABEL    128			  /* bytes of a label we make */
#define PS_PFX_MAX_RSA_BITS 8192		  /* bits of an RSA key */

struct ps_pfx {
	PKCS12 *p12;
	/* Set by ps_pfx_unlock(): */
	EVP_PKEY *key;
	X509 *cert;		/* the key's certificate */
	STACK_OF(X509) * chain; /* its CA certificates, each once */
	char *friendly_name;	/* the certificate's (else the key's), UTF-8 */
	int legacy;		/* needed OpenSSL's legacy provider */
};

/* Reads a PFX file (at most PS_PFX_MAX_SIZE bytes): exit 2 when it cannot be
 * opened, exit 1 when it is empty or too large. */
PS_API int ps_pfx_read_file(const char *path, unsigned char **der, size_t *len,
			    struct ps_err *err);

/* Parses the outer structure; exit 1 "bad-pfx" when the bytes are not a
 * PKCS#12 file (truncated, damaged, another format) or the MAC asks for
 * more than PS_PFX_MAX_ITER rounds. Nothing is decrypted. */
PS_API int ps_pfx_load(const unsigned char *der, size_t len, struct ps_pfx *pfx,
		       struct ps_err *err);

/* 1 when the file opens with an empty password (no need to ask for one).
 * At most two MAC derivations (of at most PS_PFX_MAX_ITER rounds). */
PS_API int ps_pfx_password_empty(const struct ps_pfx *pfx);

/*
 * Checks the password and decrypts: the private key, its certificate (by
 * localKeyID, else by public key), the other certificates and the
 * friendlyName. Legacy encryption (RC2-40, 3DES: Windows exports) loads
 * OpenSSL's legacy provider when the default provider cannot decrypt.
 * Exit 5 "bad-password"; exit 1 for a damaged file, a missing key or
 * certificate, a key that does not match its certificate, an RSA key of
 * more than PS_PFX_MAX_RSA_BITS, or an unsupported algorithm (a PBES2 key
 * derivation other than PBKDF2, such as scrypt: its cost has no bound we
 * could check). Exit 1 "bad-pfx" when one key derivation asks for more
 * than PS_PFX_MAX_ITER rounds, or all of them together for more than
 * PS_PFX_MAX_ROUNDS: nothing then takes more than a few seconds.
 */
PS_API int ps_pfx_unlock(struct ps_pfx *pfx, const char *pass,
			 struct ps_err *err);
PS_API void ps_pfx_free(struct ps_pfx *pfx);

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

/* psrenew: the record of a PFX import in progress, for lib/pfx.c. */
#ifndef PSRENEW_PFX_JOURNAL_H
#define PSRENEW_PFX_JOURNAL_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/x509.h>

#include <psrenew/err.h>
#include <psrenew/pfx.h>
#include <psrenew/state.h>
#include <psrenew/token.h>

/*
 * An import of a key onto a token is announced in the state store
 * (imports/KEYID-TOKEN.json) before its first object is written, and the
 * entry is removed once the import is done or undone. A run that finds the
 * entry knows that one before it was interrupted: it removes the
 * leftovers that run made (beyond those the token held before, counted in
 * the entry), keeps what that run wrote completely, and writes the rest;
 * should it fail, it removes those objects as its own.
 */
#define PS_PFX_JOURNAL_SUB "imports"

struct ps_pfx_journal {
	struct ps_state *st; /* NULL: no journal */
	char name[64];
	int lock;
	json_t *rec; /* the entry, once read or written */
	size_t before[PS_N_LEFT];
	int key_was_there, pub_was_there, cert_was_there; /* before it */
	int same_cert; /* the entry is for this certificate */
};

/* Takes the lock of the entry of this key on this token and reads the
 * entry, when there is one. No st: no journal (every call does nothing). */
int ps_pfx_journal_open(struct ps_pfx_journal *j, struct ps_state *st,
			struct ps_token *tok, const unsigned char id[20],
			X509 *cert, struct ps_err *err);

/* An interrupted import: removes what it half-wrote. */
int ps_pfx_journal_resume(struct ps_pfx_journal *j, struct ps_token *tok,
			  struct ps_pfx_import_result *res, struct ps_err *err);

/* Before the first object is written: the entry, on disk (fsync'ed). */
int ps_pfx_journal_begin(struct ps_pfx_journal *j, struct ps_token *tok,
			 const struct ps_pfx *pfx,
			 const struct ps_pfx_import_result *res, int pub_there,
			 struct ps_err *err);

/* The import is done, or undone: the entry goes. */
int ps_pfx_journal_end(struct ps_pfx_journal *j, struct ps_err *err);

/* A failed run: when everything it (and an interrupted run before it)
 * wrote is gone again, it removes what its C_CreateObject calls half-wrote
 * (a module may keep such an object when it refuses the template) and the
 * entry. */
void ps_pfx_journal_undo(struct ps_pfx_journal *j, struct ps_token *tok,
			 size_t left);

/* Lets the lock go and forgets the entry. */
void ps_pfx_journal_close(struct ps_pfx_journal *j);

#endif

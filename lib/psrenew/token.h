/* psrenew: PKCS#11 tokens: module loading, token selection, login, objects. */
#ifndef PSRENEW_TOKEN_H
#define PSRENEW_TOKEN_H

#include <stddef.h>

#include <jansson.h>
#include <p11-kit/pkcs11.h>

#include <psrenew/err.h>
#include <psrenew/uri.h>
#include <psrenew/export.h>

struct ps_module;
struct ps_objindex;

/* One token present in a slot of a loaded module. */
/* The kinds of leftovers (see "Leftovers" below). */
enum {
	PS_LEFT_NOCLASS,
	PS_LEFT_PRIVKEY,
	PS_LEFT_PUBKEY,
	PS_LEFT_CERT,
	PS_N_LEFT
};

struct ps_token {
	struct ps_module *mod;
	CK_SLOT_ID slot;
	CK_TOKEN_INFO info;
	char label[33], manufacturer[33], model[17], serial[17];
	char *uri; /* pkcs11:model=...;manufacturer=...;serial=...;token=... */
	CK_SESSION_HANDLE session;
	int have_session, rw, logged_in;
	struct ps_objindex *index; /* see ps_token_index(); NULL: none */
	/* Frees index: set by the object layer that builds it (p11obj.c), so
	 * that closing a token needs nothing from the layer above. */
	void (*index_free)(struct ps_objindex *index);
	unsigned uses;	   /* requests that looked objects up (see ps-fetch) */
	int info_fresh;	   /* info read, and no object created, changed or
			      destroyed since (see ps_p11_set) */
	long long info_ms; /* when info was read (CLOCK_MONOTONIC, ms) */
	int left_counted;  /* left_n holds the leftovers counted */
	size_t left_n[PS_N_LEFT]; /* see "Leftovers" below */
};

/* An object read from a token. Strings are NUL-terminated copies. */
struct ps_tobj {
	CK_OBJECT_HANDLE handle;
	CK_OBJECT_CLASS cls;
	unsigned char *id;
	size_t id_len;
	char *label;
	unsigned char *value; /* CKA_VALUE of certificates */
	size_t value_len;
	CK_KEY_TYPE key_type; /* keys only */
	/* Keys: the public values the object shows (RSA: CKA_MODULUS and
	 * CKA_PUBLIC_EXPONENT; EC: CKA_EC_PARAMS and CKA_EC_POINT), read in
	 * the same call; NULL when it shows none. */
	unsigned char *kv[2];
	size_t kv_len[2];
};

/*
 * Loads a PKCS#11 module: path, else the URI's module-path, else
 * $PKCS11_MODULE, else p11-kit's proxy module (every module registered with
 * p11-kit). path_or_null may be NULL.
 */
PS_API int ps_module_open(const char *path_or_null, const struct ps_uri *uri,
			  struct ps_module **out, struct ps_err *err);
/* The same; from says where path_or_null came from, for messages (NULL:
 * "--module"). */
int ps_module_open_from(const char *path_or_null, const char *from,
			const struct ps_uri *uri, struct ps_module **out,
			struct ps_err *err);
/*
 * May a module named by data (the "module" of an input record or of a
 * request file; what names it, for the message) be loaded? Only a module a
 * person named is: configured (--module or the configuration's "module =",
 * may be NULL), $PKCS11_MODULE, or p11-kit's proxy (the modules registered
 * with p11-kit). 0 when it may; else exit 2 (untrusted-module), and nothing
 * was loaded.
 */
int ps_module_allowed(const char *path, const char *configured,
		      const char *what, struct ps_err *err);
PS_API void ps_module_close(struct ps_module *mod);
const char *ps_module_path(const struct ps_module *mod);
/* "SoftHSM 2.6 (Implementation of PKCS11), /usr/lib/softhsm/libsofthsm2.so" */
PS_API const char *ps_module_describe(const struct ps_module *mod);
/* One extension pointer per module, released before the module closes. */
void *ps_module_ext(const struct ps_module *mod);
void ps_module_set_ext(struct ps_module *mod, void *ext,
		       void (*ext_free)(void *));

/*
 * Every token present that matches the URI's token attributes (all tokens
 * when sel is NULL or selects none). Exit 6 when there is none.
 */
PS_API int ps_tokens_find(struct ps_module *mod, const struct ps_uri *sel,
			  struct ps_token ***out, size_t *n,
			  struct ps_err *err);
PS_API void ps_tokens_free(struct ps_token **toks, size_t n);
/* For actions: exactly one token, else exit 2 listing the candidates. */
PS_API int ps_tokens_require_one(struct ps_token **toks, size_t n,
				 struct ps_err *err);

PS_API int ps_token_open(struct ps_token *tok, int rw, struct ps_err *err);
int ps_token_refresh(struct ps_token *tok, struct ps_err *err);
/*
 * Logs in as the user. pin_source: a secret source (see secret.h) or
 * "pinpad"; NULL means: pin pad when the reader has one, else prompt.
 * At most one C_Login per token and process: after a failure, any later
 * call for the same token (same module and token identity, through any
 * struct ps_token) returns the same error without a try; after a success
 * it only notes that the session is logged in. Refused before any try
 * (psrenew(7), "PIN tries"): a locked PIN (pin-locked, 6), "pinpad" on a
 * reader without one (no-pinpad, 6), an unattended source (env:, file:,
 * fd:) not known to belong to the token (pin-not-for-token, 2; see
 * ps_token_pin_rules), an unattended source on the final try
 * (pin-final-try, 6), an empty PIN (pin-empty, 2).
 */
PS_API int ps_token_login(struct ps_token *tok, const char *pin_source,
			  struct ps_err *err);
/*
 * What ps_token_login needs to know to give a PIN source only to its own
 * token, set once by the front end: sel, the --token selector (or the
 * configuration's; NULL: none), and the [token.NAME] sections of cfg
 * (uri = a token URI, pin = its source), checked here (exit 2 when bad).
 * An unattended source goes only to a token of its own section, the
 * token sel selects, or, without a selector, the only token the process
 * has seen. pin_given: the source was given on the command line, and
 * wins over the sections. sel must live until ps_token_pin_rules_clear.
 */
struct ps_config;
int ps_token_pin_rules(const struct ps_config *cfg, const struct ps_uri *sel,
		       int pin_given, struct ps_err *err);
void ps_token_pin_rules_clear(void);
/* The source ps_token_login would use for tok (NULL: none configured). */
const char *ps_token_pin_source(const struct ps_token *tok,
				const char *pin_source);
/* Does tok match every token and module attribute of sel? */
int ps_token_selected(const struct ps_token *tok, const struct ps_uri *sel);
/* 1 and the free bytes when the token reports its free memory, else 0. */
int ps_token_free_memory(const struct ps_token *tok, unsigned long *bytes);
/* Does the token have private objects we cannot see without a login? */
int ps_token_login_would_show_more(const struct ps_token *tok);

/*
 * Every object of class cls: one C_FindObjects pass, then one
 * C_GetAttributeValue per object (CKA_ID, CKA_LABEL, and CKA_VALUE for
 * certificates or CKA_KEY_TYPE and the public values for keys; a second
 * and third only for an attribute longer than its buffer).
 */
int ps_token_objects(struct ps_token *tok, CK_OBJECT_CLASS cls,
		     struct ps_tobj **out, size_t *n, struct ps_err *err);
/* The same for the objects of class cls that also match extra (up to 7
 * attributes, say CKA_ID or CKA_SUBJECT), appended to *objs (*n of them;
 * one already there, by handle, is neither read nor added again; on an
 * error what was read stays there for the caller to free). */
int ps_token_objects_match(struct ps_token *tok, CK_OBJECT_CLASS cls,
			   CK_ATTRIBUTE *extra, CK_ULONG nextra,
			   struct ps_tobj **objs, size_t *n,
			   struct ps_err *err);
void ps_tobjs_free(struct ps_tobj *objs, size_t n);

/*
 * An index of the token's objects by class and CKA_ID, for work that
 * looks many objects up (ps-fetch --pending installing hundreds of
 * certificates): one C_FindObjects pass over every object the session
 * sees (log in first, so the private keys are in it) and one
 * C_GetAttributeValue per object, instead of a C_FindObjectsInit per
 * lookup (SoftHSM re-reads its whole object store for each). Objects
 * psrenew itself creates or destroys (ps_keypair_generate,
 * ps_token_store_cert, ps_keypair_destroy) are added and removed; the
 * index goes when the session is closed or reopened. Callers check a hit
 * (the handle still reads back) and search the token on a miss where
 * another process could have made the object meanwhile.
 */
int ps_token_index(struct ps_token *tok, struct ps_err *err);
/* Up to max handles of class cls with this CKA_ID into hs: the number
 * found, or -1 when the token has no index. */
long ps_token_index_find(const struct ps_token *tok, CK_OBJECT_CLASS cls,
			 const unsigned char *id, size_t id_len,
			 CK_OBJECT_HANDLE *hs, size_t max);
void ps_token_index_add(struct ps_token *tok, CK_OBJECT_CLASS cls,
			const unsigned char *id, size_t id_len,
			CK_OBJECT_HANDLE h);
void ps_token_index_forget(struct ps_token *tok, CK_OBJECT_HANDLE h);

/*
 * Leftovers: what a C_CreateObject or C_GenerateKeyPair that never returned
 * (the process killed, the power cut) can leave on a token. SoftHSM's file
 * store, for one, creates the object's file, adds default attributes one
 * at a time and writes the caller's template last: killed in between, the
 * token holds an object without a class, or a key or certificate with
 * neither CKA_ID nor its value. No finished object looks like that. A
 * writer counts them before it writes (ps_token_leftover_counts) and keeps
 * the counts where a later run finds them (the state store); that run
 * removes the ones beyond the counts (ps_token_leftovers_clean), which the
 * interrupted writer made.
 */
extern const char *const ps_left_names[PS_N_LEFT];
struct ps_leftovers {
	CK_OBJECT_HANDLE *h[PS_N_LEFT];
	size_t n[PS_N_LEFT];
};
int ps_token_leftovers(struct ps_token *tok, struct ps_leftovers *l,
		       struct ps_err *err);
/* Removes, of each kind k, the leftovers beyond keep[k]; adds the number
 * removed to *removed. */
int ps_token_leftovers_remove(struct ps_token *tok,
			      const struct ps_leftovers *l, const size_t *keep,
			      size_t *removed, struct ps_err *err);
void ps_leftovers_free(struct ps_leftovers *l);
/* n[PS_N_LEFT]: the count of each kind. */
int ps_token_leftover_counts(struct ps_token *tok, size_t *n,
			     struct ps_err *err);
int ps_token_leftovers_clean(struct ps_token *tok, const size_t *keep,
			     size_t *removed, struct ps_err *err);
/* The counts as {"no-class": N, "privkey": N, ...}, and back (missing: 0). */
json_t *ps_leftovers_json(const size_t *n);
void ps_leftovers_from_json(const json_t *o, size_t *n);

#endif

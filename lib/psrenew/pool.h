/* psrenew: a pool of tokens: each PKCS#11 module loaded once with its
 * tokens, each token logged in to once, everything closed together. */
#ifndef PSRENEW_POOL_H
#define PSRENEW_POOL_H

#include <stddef.h>

#include <psrenew/err.h>
#include <psrenew/token.h>
#include <psrenew/uri.h>

/* One module of the pool and the tokens found on it. */
struct ps_pool_module {
	char *path; /* as named ("": the default module) */
	struct ps_module *mod;
	struct ps_token **toks;
	size_t n;
};

struct ps_pool {
	const char *module;	  /* the module a person named (NULL: none) */
	const char *module_from;  /* where, for messages (NULL: --module) */
	const struct ps_uri *sel; /* the tokens to find (NULL: every one) */
	const char *pin;	  /* the PIN source of the logins */
	struct ps_pool_module *m;
	size_t n;
};

/*
 * The module at path (NULL: p->module's default) with its tokens, loaded
 * on first use. A module other than p->module is one that data named
 * (what: "a request file", say; from: where, for messages): it is loaded
 * only when ps_module_allowed lets it. NULL (err set) when it cannot be.
 */
struct ps_pool_module *ps_pool_module(struct ps_pool *p, const char *path,
				      const char *what, const char *from,
				      struct ps_err *err);

/* The token of m with this URI, or NULL. */
struct ps_token *ps_pool_find(const struct ps_pool_module *m, const char *uri);

/* Opens tok (read-write with rw) and logs in with p->pin: a token is
 * tried once per run (ps_token_login). */
int ps_pool_login(const struct ps_pool *p, struct ps_token *tok, int rw,
		  struct ps_err *err);

/* Closes m's module and tokens now (the next ps_pool_module loads it
 * again), or every module of the pool. */
void ps_pool_close(struct ps_pool *p, struct ps_pool_module *m);
void ps_pool_free(struct ps_pool *p);

#endif

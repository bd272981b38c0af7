/* psrenew: finishing requests (the guide's §3 and §4): poll the CA when
 * due, install what it issued, move the request to "installed". */
#ifndef PSRENEW_FETCH_H
#define PSRENEW_FETCH_H

#include <time.h>

#include <jansson.h>

#include <psrenew/ca.h>
#include <psrenew/install.h>
#include <psrenew/state.h>
#include <psrenew/token.h>
#include <psrenew/export.h>

struct ps_pool;		/* modules and tokens opened on demand */
struct ps_fetch_loaded; /* pending records ps_fetch_unfinished read */

struct ps_fetch {
	const struct ps_config *cfg;
	struct ps_state *st;
	struct ps_install_opts inst;
	const char *module;    /* overrides the request's module */
	const char *pin;       /* PIN source for installing */
	const char *ca_bundle; /* extra trust for the CA TLS */
	int dry_run;	       /* say what is due, change nothing */
	/* the ids came from ps_fetch_unfinished (--pending): a request another
	 * run finished meanwhile is not printed again as a cert record */
	int from_store;
	struct ps_pool *toks;
	json_t *cas;	/* channel spec -> opened ps_ca (as integer) */
	json_t *polled; /* request id -> CA answer from ps_fetch_poll_due
			 * (true: it recorded the answer already) */
	size_t leftovers_removed; /* half-written objects of killed runs */
	struct ps_fetch_loaded *loaded;

	/* --token: only the requests of the tokens it selects (NULL: all) */
	const struct ps_uri *sel;
	size_t left_alone; /* by the last ps_fetch_unfinished: of others */
	size_t passed_on;  /* requests of other tokens, not worked on */
	/* Error records of the unreadable request files ps_fetch_unfinished
	 * met (reported by the caller: exit 1). */
	json_t *damaged;
};

PS_API void ps_fetch_init(struct ps_fetch *f);
PS_API void ps_fetch_free(struct ps_fetch *f);

/*
 * Works on request id: under its lock, submits it again if the CA was
 * never reached, polls it when due (or always with force), installs an
 * issued certificate. *out is what to print: a cert record once installed,
 * else the request record, or an error record. *due is when it should be
 * looked at again (0: finished). Returns the item's exit status. A request
 * of a token f->sel does not select is not worked on: *out is its record
 * as it is, the status 0, and f->passed_on counts it.
 */
PS_API int ps_fetch_request(struct ps_fetch *f, const char *id, int force,
			    json_t **out, time_t *due);

/*
 * Polls at once the requests of ids (an array of request ids) that are
 * pending and due (all pending ones with force) at an EST channel:
 * several polls in flight over several connections (lib/ca_est.c) instead
 * of one after the other. A "still pending" answer is recorded here
 * (under the request's lock, as ps_fetch_request would, several saves at
 * once); the other answers are kept, and ps_fetch_request records each as
 * if it had polled itself. Requests it did not poll are polled by
 * ps_fetch_request as before. Call it before a pass of ps_fetch_request
 * over the same ids.
 */
PS_API void ps_fetch_poll_due(struct ps_fetch *f, const json_t *ids, int force);

/* Unfinished requests of the store (unsubmitted, pending, issued) of the
 * tokens f->sel selects; f->left_alone counts the others. The unreadable
 * files go to f->damaged (the last call's). */
PS_API int ps_fetch_unfinished(struct ps_fetch *f, char ***ids, size_t *n,
			       struct ps_err *err);

/*
 * Installs certificates that came by another route (mail, web): each
 * certificate whose key is the key of an unfinished request finishes that
 * request; otherwise a key pair with that public key on any token of
 * module gets it. One record per certificate.
 */
PS_API int ps_fetch_install_certs(struct ps_fetch *f, const unsigned char *buf,
				  size_t len,
				  int (*emit)(void *, const json_t *),
				  void *ctx);

#endif

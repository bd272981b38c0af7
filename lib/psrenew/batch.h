/* psrenew: what the library tells a front end as a batch goes: records,
 * progress, notes for people (the library prints nothing itself). */
#ifndef PSRENEW_BATCH_H
#define PSRENEW_BATCH_H

#include <stddef.h>

#include <jansson.h>

#include <psrenew/record.h>

/* Filled by the front end; every hook but emit may be NULL. */
struct ps_batch_hooks {
	ps_emit_fn emit;			    /* every record */
	void (*start)(void *ctx, size_t n);	    /* a pass of n items */
	void (*item)(void *ctx, const char *what);  /* working on this */
	void (*step)(void *ctx, const json_t *rec); /* one item done */
	void (*end)(void *ctx);			    /* the pass is over */
	void (*info)(void *ctx, const char *what);  /* for --verbose */
	void (*warn)(void *ctx, const char *what);  /* always shown */
	/* a long wait on the token begins (what: "generating a 4096-bit key
	 * on TokenME") or, with NULL, ends */
	void (*wait)(void *ctx, const char *what);
	void *ctx;
};

#endif

/* psrenew: the plans of a ps-token-clean run: --id, --serial and
 * --jip-confirmed checked, every token opened, logged in and planned. */
#ifndef PSRENEW_CLEAN_PLAN_H
#define PSRENEW_CLEAN_PLAN_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include <psrenew/batch.h>
#include <psrenew/clean.h>
#include <psrenew/record.h>

struct ps_clean_batch {
	struct ps_clean_opts o; /* ids, serials, hits and jip filled by
				   ps_clean_batch_prepare, the rest by the
				   caller */
	json_t *jip;		/* serial_hex -> "option" or "stdin" */
	struct ps_clean_plan *plans;
	int *planned; /* plans[t] was made */
	size_t ntoks;
	struct ps_state st;
	int have_st;
	int worst; /* the worst status of the tokens not planned and of the
		      error records of the input */
};

/*
 * --id (CKA_IDs in hex), --serial and --jip-confirmed (serial numbers),
 * checked and normalised into b->o and b->jip. Exit 2 for a bad one.
 */
int ps_clean_batch_prepare(struct ps_clean_batch *b, const char *const *ids,
			   size_t nids, const char *const *serials,
			   size_t nserials, const char *const *jip, size_t njip,
			   struct ps_err *err);

/*
 * Reads the records of in: a jip record confirms a serial (into b->jip),
 * an error record goes on through h->emit and counts in b->worst, others
 * are not used (h->info says so). Returns 0, or the status of bad input.
 */
int ps_clean_batch_read(struct ps_clean_batch *b, FILE *in,
			const struct ps_batch_hooks *h, struct ps_err *err);

/*
 * The state store (b->o.st): created when something may be removed (the
 * copies go there); a dry run (create 0) only reads it, and a missing one
 * is empty (h->warn when it cannot be read for another reason).
 */
int ps_clean_batch_state(struct ps_clean_batch *b, const char *state_dir,
			 const struct ps_config *cfg, int create,
			 const struct ps_batch_hooks *h, struct ps_err *err);

/*
 * Opens (read-write when rw), logs in (with pin, a PIN source) and plans
 * every token; nothing is changed yet. A token that cannot be planned
 * gives an error record through emit (with its token and token_label) and
 * counts in b->worst. Then, when every token was planned, an --id or
 * --serial that matched nothing is exit 2 "no-such-object".
 */
int ps_clean_batch_plan(struct ps_clean_batch *b, struct ps_token **toks,
			size_t ntoks, const char *pin, int rw, ps_emit_fn emit,
			void *ctx, struct ps_err *err);

void ps_clean_batch_free(struct ps_clean_batch *b);

#endif

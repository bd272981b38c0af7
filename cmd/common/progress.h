/* psrenew: the progress of a batch, for people at a terminal: one line on
 * standard error, redrawn in place ("\r"); nothing at all when standard
 * error is not a terminal, with --quiet, or for a single item. Of the
 * tools of a pipeline sharing the terminal, one draws at a time: the one
 * holding an advisory lock (flock(2)) on the terminal; before a message or
 * a prompt, the line on the screen is ended, whoever drew it. */
#ifndef PSRENEW_PROGRESS_H
#define PSRENEW_PROGRESS_H

#include <stddef.h>

#include <jansson.h>

#include <psrenew/batch.h>

struct ps_cli;

struct ps_progress {
	struct ps_cli *cli;
	size_t done, total;
	int on;		   /* drawing */
	size_t shown;	   /* columns of the line on the screen (0: none) */
	const char *kinds; /* ps_progress_emit: the record kinds that are
			      items, comma-separated */
};

/*
 * Starts a batch of total items for cli's binary. It is drawn when total
 * is at least 2, standard error is a terminal and cli is not --quiet.
 */
void ps_progress_start(struct ps_progress *p, struct ps_cli *cli, size_t total);

/* The item being worked on now (done + 1 of total): "prog: [3/200] TEXT". */
void ps_progress_item(struct ps_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One item finished: "prog: [3/200] TEXT". */
void ps_progress_step(struct ps_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears the line; the batch is over. */
void ps_progress_end(struct ps_progress *p);

/* Clears the line of the batch under way, if any, before another message
 * goes to standard error; the next item draws it again. When another tool
 * of the pipeline is drawing on the terminal, clears its line. */
void ps_progress_clear(void);

/* Makes every message (ps_cli_*) and PIN prompt clear the line first:
 * called once by ps_cli_main. */
void ps_progress_init(void);

/*
 * An emit callback (ps_emit_fn) with ctx a struct ps_progress: passes rec
 * on to ps_cli_emit, and counts it as one finished item when its kind is
 * one of p->kinds.
 */
int ps_progress_emit(void *ctx, const json_t *rec);

/* What a record says in a progress line: "Jan Novák qualified 0A1B...:
 * pending" (a static buffer). */
const char *ps_progress_text(const json_t *rec);

/*
 * The hooks through which the library tells a batch (lib's batch.h), bound
 * to p and cli: records through ps_progress_emit, the passes and items as
 * p's line, notes as ps_cli_info.
 */
struct ps_batch_hooks ps_progress_hooks(struct ps_progress *p,
					struct ps_cli *cli);

#endif

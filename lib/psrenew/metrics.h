/* psrenew: Prometheus metrics of the tokens, the state store and the run
 * (ps-status --metrics), for node_exporter's textfile collector. */
#ifndef PSRENEW_METRICS_H
#define PSRENEW_METRICS_H

#include <stddef.h>
#include <time.h>

#include <psrenew/config.h>
#include <psrenew/err.h>
#include <psrenew/inventory.h>
#include <psrenew/state.h>
#include <psrenew/token.h>

/* What a run gathered; any part may be missing (n 0, NULL) when it could
 * not be read: the metrics say what there is, and success says whether
 * that is everything. */
struct ps_metrics_in {
	struct ps_token **toks; /* the tokens found */
	size_t ntoks;
	const struct ps_inventory *inv; /* their certificates; may be NULL */
	struct ps_state *st;		/* the state store; may be NULL */
	const struct ps_config *cfg;	/* for jip_ca; may be NULL */
	time_t now;
	int success; /* everything above was read without an error */
};

/*
 * The Prometheus text exposition format 0.0.4 of in (psrenew(7),
 * "METRICS"): *text malloc'ed and NUL-terminated, *len its length.
 * Reads the state store's requests and JIP confirmations. Returns 0, or
 * an exit status when a file of the store cannot be read (err says
 * which; *text is still written, with psrenew_run_success 0). *text is
 * NULL only when out of memory.
 */
int ps_metrics_text(const struct ps_metrics_in *in, char **text, size_t *len,
		    struct ps_err *err);

/* The metrics on stdout when to_stdout, and into path when not NULL. */
int ps_metrics_emit(const char *text, size_t len, int to_stdout,
		    const char *path, struct ps_err *err);

/* Writes text into path through the state store's safe writer, mode 0644
 * whatever the umask (node_exporter runs as another user). */
int ps_metrics_write_file(const char *path, const char *text, size_t len,
			  struct ps_err *err);

#endif

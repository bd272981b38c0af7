/* psrenew: renewing a batch: the targets grouped by module and token, one
 * login per token, every target its own record. */
#ifndef PSRENEW_RENEW_BATCH_H
#define PSRENEW_RENEW_BATCH_H

#include <stddef.h>

#include <jansson.h>

#include <psrenew/batch.h>
#include <psrenew/inventory.h>
#include <psrenew/pool.h>
#include <psrenew/record.h>
#include <psrenew/renew.h>

struct ps_renew_batch {
	struct ps_renew *r;
	struct ps_pool pool; /* module, module_from, sel and pin set */
	struct ps_batch_hooks h;
	size_t passed_on; /* cert records of tokens sel does not select */
};

/*
 * Renews the targets --token (pool.sel) with sel names (exactly one,
 * among several matches the valid one), or with all_expiring >= 0 every
 * certificate expiring within all_expiring days on the selected tokens
 * (*n: how many; none is no error). Returns the worst status.
 */
int ps_renew_batch_select(struct ps_renew_batch *b,
			  const struct ps_selector *sel, long all_expiring,
			  size_t *n, struct ps_err *err);

/* Renews the cert records of recs (an array), grouped by module: the
 * records of tokens pool.sel does not select are passed on (counted in
 * passed_on). Returns the worst status. */
int ps_renew_batch_records(struct ps_renew_batch *b, json_t *recs);

/* ps_in_each's handler for ps-renew: a cert record of stdin goes into the
 * array l->ctx for renewal; any other kind is an error record of its own
 * (bad-record). */
int ps_renew_take_cert(struct ps_in_loop *l, json_t *rec);

#endif

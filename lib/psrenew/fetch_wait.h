/* psrenew: fetching a batch of requests, and with --wait polling again,
 * with backoff, until each is finished or the time is up. */
#ifndef PSRENEW_FETCH_WAIT_H
#define PSRENEW_FETCH_WAIT_H

#include <jansson.h>

#include <psrenew/batch.h>
#include <psrenew/fetch.h>

/*
 * Works on every request of ids (an array of request ids): the due EST
 * polls together (ps_fetch_poll_due), then ps_fetch_request each. With
 * wait >= 0 it passes again over the unfinished ones until each is
 * finished or wait seconds have passed, sleeping until the earliest is
 * due but at least a backoff (2 s, doubled each pass, at most 5 min).
 * force: poll even requests that are not due (the first pass only). A
 * request's record goes to h->emit once it is finished or on the last
 * pass; each pass is one progress pass of h. Returns the worst status of
 * the last pass.
 */
int ps_fetch_all(struct ps_fetch *f, const json_t *ids, long wait, int force,
		 const struct ps_batch_hooks *h);

/*
 * Loads f->module (when set) and lists its tokens now, before the records
 * arrive: behind `ps-renew | ps-fetch` the module's start (SoftHSM reads
 * every object of its tokens) overlaps ps-renew's run instead of following
 * it. No login. A module that cannot be loaded is told when a request
 * needs it, as without this call.
 */
void ps_fetch_preload(struct ps_fetch *f);

#endif

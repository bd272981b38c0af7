/* psrenew: the est:// channel's batch of polls (lib/ca_est.c). */
#ifndef PSRENEW_CA_EST_H
#define PSRENEW_CA_EST_H

#include <psrenew/ca.h>

/*
 * Polls n pending requests of the EST channel ca at once: up to lanes
 * requests in flight, each over its own TLS connection (authenticated by
 * the request's current certificate, as one poll is; the connections of
 * one certificate carry its requests one after the other). replies[i]
 * and rcs[i] are what ps_ca_poll gives for reqs[i]; errs[i] is set when
 * rcs[i] is not 0. answered (when not NULL) is called with i and ctx as
 * soon as replies[i], rcs[i] and errs[i] are final, once for every i,
 * while other polls may still be in flight. -1 when ca is not an EST
 * channel (and answered is not called).
 */
int ps_est_poll_many(struct ps_ca *ca, const struct ps_ca_request *reqs,
		     size_t n, int lanes, struct ps_ca_reply *replies, int *rcs,
		     struct ps_err *errs, void (*answered)(size_t i, void *ctx),
		     void *ctx);

#endif

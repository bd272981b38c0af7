/* psrenew: what JIP has for a user, each certificate marked from what is
 * known here (the tokens, the state store): ps-jip-setserial --list. */
#ifndef PSRENEW_JIP_LIST_H
#define PSRENEW_JIP_LIST_H

#include <stddef.h>

#include <jansson.h>

#include <psrenew/config.h>
#include <psrenew/err.h>
#include <psrenew/token.h>

struct ps_jip_marks;

/* Reads the certificates of toks (ntoks may be 0) and the renewals of the
 * state store (a missing store is an empty one). */
int ps_jip_marks_load(struct ps_token **toks, size_t ntoks,
		      const char *state_dir, const struct ps_config *cfg,
		      struct ps_jip_marks **out, struct ps_err *err);
void ps_jip_marks_free(struct ps_jip_marks *m);

/*
 * The jip-entry record of one certificate JIP lists for user: type ("V",
 * "Q" of the web service, or qualified / commercial), number (as JIP has
 * it), ca (the issuer's DN when dn is set, else JIP's name of the CA),
 * and its mark: on-this-token, superseded, expired or unknown.
 */
json_t *ps_jip_entry_record(const struct ps_jip_marks *m, const char *user,
			    const char *type, const char *number,
			    const char *ca, int dn);

#endif

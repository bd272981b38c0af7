/* psrenew: the JIP confirmations: what ps-jip-setserial keeps of each
 * serial JIP confirmed, and how the other tools read it back. */
#ifndef PSRENEW_JIPCONF_H
#define PSRENEW_JIPCONF_H

#include <jansson.h>

#include <psrenew/cert.h>
#include <psrenew/config.h>
#include <psrenew/err.h>
#include <psrenew/inventory.h>
#include <psrenew/state.h>

/*
 * The jip record of a serial JIP confirmed (psrenew(7)): kind "jip", user,
 * serial_hex, type ("qualified" or "commercial"), ca (JIP's name for it),
 * result ("set" or "already-set") and confirmed_at (now). NULL when out
 * of memory.
 */
json_t *ps_jipconf_new(const char *user, const char *type, const char *ca,
		       const char *serial_hex, const char *result);

/*
 * --verify-login's outcome in the jip record rec: login_verified true (rc
 * 0), false (rc 5: JIP or its TLS refused the new certificate), else null;
 * when not true, login_verify_reason is e's message.
 */
void ps_jipconf_set_verified(json_t *rec, int rc, const struct ps_err *e);

/* Keeps a jip record as STATE_DIR/jip/<SERIAL_HEX>.json, the state
 * directory opened (made when missing) as ps_state_open does with
 * state_dir and cfg. */
int ps_jipconf_keep(const char *state_dir, const struct ps_config *cfg,
		    const json_t *rec, struct ps_err *err);

/*
 * The confirmation kept for serial_hex (upper-case hex), a certificate of
 * type (enum ps_cert_type): *rec is the record, or NULL when there is none.
 * Returns 0, or an exit status (err says why) when a file is there but is
 * not a confirmation of a certificate of that type, or its --verify-login
 * failed (login_verified false or null: "jip-login-unverified"), or it
 * cannot be read safely.
 */
int ps_jipconf_load(struct ps_state *st, const char *serial_hex, int type,
		    json_t **rec, struct ps_err *err);

/*
 * ps-status --unregistered: appends to the array out the cert record of
 * every certificate psrenew installed (a request in state "installed")
 * that is on a token of inv with its key, valid (not superseded, not
 * expired, not in the future), and has no confirmation of its type: the
 * fields of ps-status, plus request_id, replaces_serial_hex and the
 * request's own fields, as ps-fetch prints when it installs. An unreadable
 * request file gives an error record there and exit 1 (err untouched);
 * err says why when the store cannot be listed. *unknown_keys counts the
 * certificates left out because the token was not logged in (their key cannot
 * be seen).
 */
int ps_jipconf_unregistered(struct ps_state *st, const struct ps_inventory *inv,
			    const struct ps_config *cfg, json_t *out,
			    size_t *unknown_keys, struct ps_err *err);

#endif

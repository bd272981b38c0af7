/* psrenew: certificates' serial numbers registered in JIP: what to
 * register, the login to the web form or the editing web service, and
 * each serial set and its confirmation kept (jipconf.h). */
#ifndef PSRENEW_JIP_REGISTER_H
#define PSRENEW_JIP_REGISTER_H

#include <stdio.h>

#include <jansson.h>

#include <psrenew/batch.h>
#include <psrenew/config.h>
#include <psrenew/err.h>
#include <psrenew/pool.h>
#include <psrenew/token.h>

/* What ps-jip-setserial was told; NULL for what it was not. */
struct ps_jip_reg {
	const char *login;	    /* password (default), cert, otp, nia */
	const char *user;	    /* else user in [jip] */
	const char *password, *otp; /* secret sources (NULL: prompt) */
	const char *for_user;	    /* the account when a record has none */
	const char *profile, *url;  /* else [jip] and the default profile */
	const char *ca_bundle;	    /* the portal's TLS trust */
	const char *ca;		    /* JIP's name for the CA of every item */
	const char *login_cert;	    /* the CKA_ID to log in with */
	int verify;		    /* --verify-login */
	const char *backend;	    /* html or ws, else [jip] backend */
	const char *ws_url;	    /* --jip-ws, else --jip-url or ws-url */
	const char *ws_version;	    /* 1.0 or 1.1, else [jip] ws-version */
	const char *client_cert;    /* WS 1.1: a certificate file ... */
	const char *client_key;	    /* ... and its key file ... */
	const char *client_key_pw;  /* ... and its passphrase's source */
	int remove_superseded;	    /* --remove-superseded (ws) */
	const char *cert_file;	    /* --cert: its key proves the login */
	struct ps_pool pool;	    /* module, module_from, sel and pin of
				       the token a login certificate is on */
	const char *state_dir;	    /* where confirmations are kept */
	const struct ps_config *cfg;
};

/* --serial S --type T --ca NAME: one cert record to register (exit 2
 * without type (-1) or ca). */
int ps_jip_item_serial(const char *serial, int type, const char *ca,
		       json_t *items, struct ps_err *err);

/* --cert FILE: the first certificate of a PEM or DER file. */
int ps_jip_item_file(const char *path, const struct ps_config *cfg,
		     json_t *items, struct ps_err *err);

/* --id HEX: the certificates with this CKA_ID on toks (exit 2
 * "no-such-cert" when none has it). */
int ps_jip_items_on_tokens(struct ps_token **toks, size_t ntoks, const char *id,
			   const struct ps_config *cfg, json_t *items,
			   struct ps_err *err);

/* The cert records of in; other records go on through emit, and
 * *upstream is the worst status of the error records there. */
int ps_jip_items_read(FILE *in, json_t *items, ps_emit_fn emit, void *ctx,
		      int *upstream, struct ps_err *err);

/* Exit 5 (cannot-login, err set) when item, a cert record, is a commercial
 * certificate that cannot log in (can_login false: no clientAuth) and the
 * target keeps only login certificates (login_only: CAAIS); else 0. */
int ps_jip_login_only_refuses(const json_t *item, int login_only,
			      struct ps_err *err);

/*
 * Logs in ([jip] backend: html, the web form, or ws, the editing web
 * service) and registers each record of items: a jip record per serial
 * (kept under state_dir for ps-token-clean, unless skipped), or an error
 * record, through h; one progress pass over the items. Returns the worst
 * status (err set when the login or the options failed).
 */
int ps_jip_register(const struct ps_jip_reg *r, const json_t *items,
		    const struct ps_batch_hooks *h, struct ps_err *err);

/*
 * --list: logs in as ps_jip_register does and emits, through h, a
 * jip-entry record (psrenew(7)) per certificate JIP has for each of the
 * n logins, marked from toks (may be NULL) and the state store; an error
 * record for a user that failed. Returns the worst status.
 */
int ps_jip_list_users(const struct ps_jip_reg *r, const char *const *logins,
		      size_t n, struct ps_token **toks, size_t ntoks,
		      const struct ps_batch_hooks *h, struct ps_err *err);

#endif

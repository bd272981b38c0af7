/* psrenew: room on a full token, made safely (the guide's §7, error 621):
 * every certificate and key classified, the safety rules applied, a copy of
 * each certificate kept before anything is removed. */
#ifndef PSRENEW_CLEAN_H
#define PSRENEW_CLEAN_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include <psrenew/config.h>
#include <psrenew/err.h>
#include <psrenew/inventory.h>
#include <psrenew/renew.h>
#include <psrenew/state.h>
#include <psrenew/token.h>
#include <psrenew/export.h>

/* Categories a run selects (ps_clean_opts.select). */
#define PS_CLEAN_EXPIRED    1U
#define PS_CLEAN_SUPERSEDED 2U
#define PS_CLEAN_ORPHANS    4U

/* What a group of objects sharing one CKA_ID is ("reason" in records). */
enum ps_clean_reason {
	PS_CLEAN_R_EXPIRED = 0,	  /* the certificate has expired */
	PS_CLEAN_R_SUPERSEDED,	  /* a newer valid one of its holder and type */
	PS_CLEAN_R_VALID,	  /* valid, nothing supersedes it */
	PS_CLEAN_R_NOT_YET_VALID, /* not valid yet */
	PS_CLEAN_R_ORPHAN_KEY, /* a key pair without certificate or request */
	PS_CLEAN_R_PENDING_KEY /* a key pair a pending request waits on */
};

enum ps_clean_action {
	PS_CLEAN_KEEP = 0, /* not selected, or not needed (--for-room) */
	PS_CLEAN_REMOVE,   /* passes every safety rule */
	PS_CLEAN_REFUSE	   /* selected, but a safety rule says no (why) */
};

struct ps_clean_opts {
	unsigned select; /* PS_CLEAN_*; 0 and no ids/serials: expired and
			    superseded */
	char **ids;	 /* --id: CKA_IDs, hex */
	size_t nids;
	char **serials; /* --serial: normalised serial numbers */
	size_t nserials;
	unsigned char *hits; /* set per id, then per serial, when it matched
				(nids + nserials entries; may be NULL) */
	int force_valid;     /* valid certificates may be removed too */
	int keep_keys;	     /* remove certificates only */
	long for_room;	     /* renewals to make room for; -1 not asked */
	struct ps_state *st; /* pending requests, JIP confirmations, the
				copies of removed certificates; may be NULL
				for a dry run */
	const json_t *jip;   /* serial_hex -> how it was confirmed in JIP
				("stdin", "option"); may be NULL */
	const struct ps_config *cfg;
	time_t now;
	json_t *damaged; /* when not NULL: ps_clean_plan_make appends the error
			    records of the unreadable request files after the
			    first one (which is its error) */
};

/* One group: a certificate and its key pair, or a key pair alone. */
struct ps_clean_item {
	long cert;		     /* index in plan->inv.c, or -1 */
	const struct ps_tobj **keys; /* private and public keys, same CKA_ID */
	size_t nkeys;
	const unsigned char *id; /* borrowed from the certificate or a key */
	size_t id_len;
	char *id_hex;
	int reason;		/* enum ps_clean_reason */
	int selected;		/* a selector asked for it */
	int action;		/* enum ps_clean_action */
	int keys_stay;		/* --keep-keys, or another certificate
				   that stays uses the key */
	char *request_id;	/* the pending request on its key */
	char *jip_confirmation; /* how the successor was confirmed */
	char *jip_serial;	/* ... and which serial */
	struct ps_err why;	/* PS_CLEAN_REFUSE: the rule */
};

struct ps_clean_plan {
	struct ps_token *tok; /* borrowed */
	struct ps_inventory inv;
	struct ps_tobj *priv, *pub, *certobjs;
	size_t npriv, npub, ncertobjs;
	size_t nobjects; /* every object the token showed */
	struct ps_clean_item *items;
	size_t n;
	size_t *order;		/* removable items, oldest first */
	size_t norder, nchosen; /* --for-room: the first nchosen are planned */
	int have_free;		/* the token tells its free memory */
	unsigned long free_before, per_object;
	struct ps_err room_err; /* --for-room: not enough room (token-full) */
	size_t quiet_refusals;	/* --for-room: refusals not reported */
};

/*
 * Reads the token (logged in, to see the keys), the pending requests and
 * the JIP confirmations, classifies every certificate and key pair, and
 * applies the safety rules to what o selects. Changes nothing.
 */
PS_API int ps_clean_plan_make(struct ps_token *tok,
			      const struct ps_clean_opts *o,
			      struct ps_clean_plan *p, struct ps_err *err);
PS_API void ps_clean_plan_free(struct ps_clean_plan *p);

/* Objects the plan removes; *valid: valid certificates among them. */
PS_API size_t ps_clean_planned(const struct ps_clean_plan *p, size_t *valid);
PS_API size_t ps_clean_refused(const struct ps_clean_plan *p);

/*
 * Carries the plan out (or, with dry_run, only says what it would do):
 * one record per object (kind "removed", or "removable" in a dry run), an
 * error record per refusal, then one "space" record for the token. Every
 * certificate is copied to STATE_DIR/removed/<SERIAL_HEX>.der before it is
 * removed. Returns the worst exit status.
 */
PS_API int ps_clean_run(struct ps_clean_plan *p, const struct ps_clean_opts *o,
			int dry_run, ps_emit_fn emit, void *ctx);

PS_API const char *ps_clean_reason_name(int reason);

/*
 * A "jip" record confirming that JIP has a certificate: kind "jip",
 * serial_hex, result "set" or "already-set", type (when given)
 * "commercial", and login_verified, when there, true. *serial_hex
 * (malloc'ed, normalised) names it. Exit 1 with err set when the record
 * confirms nothing (a failed --verify-login: "jip-login-unverified").
 * (lib/jipconf.c, with the confirmations ps-jip-setserial keeps.)
 */
PS_API int ps_jip_record_confirms(const json_t *rec, char **serial_hex,
				  struct ps_err *err);

#endif

/* psrenew: CA channels behind one interface: submit a request, poll it. */
#ifndef PSRENEW_CA_H
#define PSRENEW_CA_H

#include <stddef.h>

#include <jansson.h>
#include <openssl/x509.h>

#include <psrenew/config.h>
#include <psrenew/err.h>
#include <psrenew/token.h>
#include <psrenew/export.h>

enum ps_ca_status {
	PS_CA_ISSUED = 0,
	PS_CA_PENDING,
	PS_CA_REJECTED,
	PS_CA_UNREACHABLE,
	PS_CA_UNCONFIGURED,
	PS_CA_FAILED /* the channel itself misbehaved */
};

/* What a channel gets: the request record's facts. */
struct ps_ca_request {
	const char *csr_pem;
	const char *old_cert_pem;
	const char *subject;
	const char *email;
	const char *key_type; /* "RSA" or "EC" */
	const char *cookie;   /* poll only */
	/* The current certificate and its key on the token (logged in), for
	 * channels that authenticate with them (EST, CMP, mail). */
	struct ps_token *tok;
	X509 *old_cert;
	const unsigned char *old_key_id;
	size_t old_key_id_len;
	/* The new key pair's CKA_ID (CMP's proof of possession). */
	const unsigned char *new_key_id;
	size_t new_key_id_len;
};

struct ps_ca_reply {
	int status;	 /* enum ps_ca_status */
	char *certs_pem; /* issued: the certificate (and chain), PEM */
	char *cookie;	 /* pending: what the next poll needs */
	long delay;	 /* pending: seconds until the next poll, -1 none */
	char *message;	 /* the CA's words, for people */
	char *fail_info; /* rejected: the CA's reasons as names (CMP) */
	/* A certificate the CA issued that the channel refused (for another
	 * key than the request's), PEM; the status is then "pending" (ask
	 * again) and message says why. */
	char *rejected_cert;
};

struct ps_ca;

/*
 * Opens a channel from a spec: "helper:PATH [ARGS]" (certmonger's external
 * CA helper interface), or the name of a [ca.NAME] section of the
 * configuration whose "channel" key holds such a spec. Exit 2 when it is
 * neither.
 */
PS_API int ps_ca_open(const char *spec, const struct ps_config *cfg,
		      struct ps_ca **out, struct ps_err *err);
PS_API void ps_ca_close(struct ps_ca *ca);
/* The resolved channel spec, stored with each request. */
const char *ps_ca_channel(const struct ps_ca *ca);
/* The name given (a config name or the spec itself). */
const char *ps_ca_name(const struct ps_ca *ca);

/* 0 with reply filled (whatever the CA said), or an exit status when the
 * channel could not be used at all. */
int ps_ca_submit(struct ps_ca *ca, const struct ps_ca_request *req,
		 struct ps_ca_reply *reply, struct ps_err *err);
int ps_ca_poll(struct ps_ca *ca, const struct ps_ca_request *req,
	       struct ps_ca_reply *reply, struct ps_err *err);
void ps_ca_reply_free(struct ps_ca_reply *reply);
const char *ps_ca_status_name(int status);

/*
 * Polls n pending requests of channel ca at once: replies[i], rcs[i] and
 * errs[i] are what ps_ca_poll gives for reqs[i] (errs[i] set when rcs[i]
 * is not 0). answered (when not NULL) is called with i and ctx as soon
 * as they are final, once for every i, maybe while other polls are still
 * in flight. A channel that can (EST: up to lanes requests in flight, each
 * over its own TLS connection authenticated by the request's current
 * certificate) polls them together; any other polls them one after the
 * other.
 */
void ps_ca_poll_many(struct ps_ca *ca, const struct ps_ca_request *reqs,
		     size_t n, int lanes, struct ps_ca_reply *replies, int *rcs,
		     struct ps_err *errs, void (*answered)(size_t i, void *ctx),
		     void *ctx);
/* 1 when the channel polls many requests together (ps_ca_poll_many is
 * then worth gathering them for), 0 when it polls one after the other. */
int ps_ca_polls_many(const struct ps_ca *ca);
/* 1 when the channel writes on stdout (mail:- prints the message). */
int ps_ca_uses_stdout(const struct ps_ca *ca);

/* CAs trusted in addition to the system's, for this channel's TLS and
 * response protection (--ca-bundle, or ca-bundle in [ca.NAME]). */
PS_API void ps_ca_set_bundle(struct ps_ca *ca, const char *file);
/* The certificate that signs the mail: channel's e-mail (--sign-with:
 * qualified, current, id:HEX, serial:S; NULL: sign-with in [ca.NAME], or
 * the holder's qualified one, see mail_signer.h). Exit 2 for another
 * channel. sel must outlive ca. */
int ps_ca_set_sign_with(struct ps_ca *ca, const char *sel, struct ps_err *err);
/* Lets go of connections that hold token keys: call it before the
 * tokens (modules) the channel used are closed. */
void ps_ca_idle(struct ps_ca *ca);
/*
 * Fetches the CA certificates the channel's server publishes (EST:
 * /.well-known/est/cacerts, RFC 7030 4.1) over verified TLS and checks
 * them: at least one, every one a CA certificate, and every one verifies
 * to a trust anchor of --ca-bundle (or the system's store). *pem gets them
 * (malloc'ed). Exit 2 when the channel has no such thing, 4 when the
 * server cannot be reached, 1 when they do not check.
 */
int ps_ca_cacerts(struct ps_ca *ca, char **pem, struct ps_err *err);
/* The signal (SIGINT or SIGTERM) that stopped a CA helper of this process,
 * 0 when none did. From then on no helper starts: the channel answers with
 * an "interrupted" error whose status is 128 + the signal. */
int ps_ca_interrupted(void);
/* Does this channel need the current key on a logged-in token to submit
 * (poll == 0) or to poll (poll == 1)? */
int ps_ca_needs_token(const struct ps_ca *ca, int poll);

/*
 * The channel for --ca SPEC with --ca-type TYPE ("cmp", "est" or NULL):
 * "https://..." with a type becomes "TYPE:https://..."; otherwise SPEC as
 * given. *out is malloc'ed. Exit 2 when the type is unknown or does not
 * fit the spec.
 */
int ps_ca_spec_typed(const char *spec, const char *type, char **out,
		     struct ps_err *err);

#endif

/* psrenew: picking issued certificates up from a mailbox (a Maildir or
 * an IMAP folder): the CA's e-mail brings them as attachments or links. */
#ifndef PSRENEW_MAILBOX_H
#define PSRENEW_MAILBOX_H

#include <stddef.h>

#include <jansson.h>

#include <psrenew/fetch.h>

struct ps_mailbox_opts {
	const char *maildir;   /* a Maildir, or */
	const char *imap_url;  /* imaps://USER@HOST[:PORT]/MAILBOX */
	const char *imap_pass; /* its password's source (NULL: imap-pass in
				  [mailbox], else prompt) */
	const char *ca_bundle; /* trust for IMAP and links (NULL: ca-bundle
				  in [mailbox]) */
};

struct ps_mailbox_stats {
	size_t messages;  /* unseen messages read */
	size_t handled;	  /* marked as read: their certificates are on */
	size_t installed; /* certificates installed */
	size_t left;	  /* left alone: nothing for a pending request */
};

/* The most bytes of one message (a larger one is left alone). */
#define PS_MAILBOX_MSG_MAX (32UL << 20)

/*
 * Reads the unseen messages of the mailbox (Maildir: new/, and cur/
 * without the S flag; IMAP: UNSEEN, read with BODY.PEEK), takes their
 * certificate attachments and the certificates behind their links
 * (lib/mime.c; links downloaded over verified TLS or http), and installs
 * every certificate whose public key is an unfinished request's, as
 * ps_fetch_install_certs does (one cert record each, with message_id and
 * cert_source). A message is marked as read (Maildir: moved to cur/ with
 * the S flag; IMAP: \Seen) only when it brought a certificate of a
 * request and every such certificate is now installed (this run, or
 * before); any other message is left as it was. With f->dry_run nothing
 * is installed or marked. Returns the worst status of the items: 0, or 3
 * when unfinished requests are left; the mailbox itself unreadable is
 * exit 2 (bad Maildir, mailbox name), 4 (server down) or 5 (login
 * refused), with err set.
 */
int ps_mailbox_fetch(struct ps_fetch *f, const struct ps_mailbox_opts *o,
		     int (*emit)(void *, const json_t *), void *ctx,
		     struct ps_mailbox_stats *stats, struct ps_err *err);

#endif

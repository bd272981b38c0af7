/* psrenew: a mailbox over IMAP (RFC 3501) through libcurl: the unseen
 * messages, each read without setting \Seen, and \Seen set on those that
 * were handled. */
#ifndef PSRENEW_IMAP_H
#define PSRENEW_IMAP_H

#include <stddef.h>

#include <psrenew/err.h>

struct ps_imap;

/*
 * Checks url: imaps://USER@HOST[:PORT][/MAILBOX] (TLS from the start) or
 * imap://USER@HOST[:PORT][/MAILBOX] (STARTTLS required); the mailbox
 * defaults to INBOX; a password in the URL is refused (exit 2), so is
 * anything after the mailbox. pass (the secret, not its source) and
 * ca_bundle (CAs trusted besides the system's; may be NULL) are kept for
 * the connection, which opens with the first command.
 */
int ps_imap_open(const char *url, const char *pass, const char *ca_bundle,
		 struct ps_imap **out, struct ps_err *err);
void ps_imap_close(struct ps_imap *m);
/* The user and server, for messages ("jnovak at imap.example.cz"). */
const char *ps_imap_where(const struct ps_imap *m);

/*
 * UIDs of the unseen messages (UID SEARCH UNSEEN; malloc'ed, *n may be
 * 0). A refused login is exit 5 (code "imap-login"), a server that cannot
 * be reached 4, a mailbox that cannot be selected 2.
 */
int ps_imap_unseen(struct ps_imap *m, unsigned long **uids, size_t *n,
		   struct ps_err *err);
/* Message uid (UID FETCH BODY.PEEK[]: \Seen stays as it was), at most
 * max bytes, into *msg (malloc'ed, NUL-terminated). */
int ps_imap_fetch(struct ps_imap *m, unsigned long uid, size_t max, char **msg,
		  size_t *len, struct ps_err *err);
/* Sets \Seen on message uid (UID STORE +FLAGS.SILENT). */
int ps_imap_seen(struct ps_imap *m, unsigned long uid, struct ps_err *err);

#endif

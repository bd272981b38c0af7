/* psrenew: what a CA's e-mail brings (certificate attachments, links to
 * certificates), found by parsing the message with GMime. */
#ifndef PSRENEW_MIME_H
#define PSRENEW_MIME_H

#include <stddef.h>

#include <psrenew/err.h>

struct ps_mime_item {
	char *what;	     /* the attachment's name, or the link's URL */
	int is_link;	     /* 1: what is a URL to download */
	unsigned char *data; /* an attachment's decoded bytes */
	size_t len;
};

struct ps_mime_found {
	char *message_id; /* without angle brackets; may be NULL */
	struct ps_mime_item *items;
	size_t n;
};

/* The most attachments and links taken from one message. */
#define PS_MIME_MAX_ITEMS 16

/*
 * Parses the message msg (len bytes, RFC 5322 and MIME, any line ends)
 * and lists, in order, every certificate attachment (types
 * application/pkix-cert, application/x-x509-user-cert,
 * application/pkcs7-mime with smime-type=certs-only, or a file name
 * ending in .cer .crt .der .pem .p7b .p7c; at most 1 MiB each) and every
 * http:// or https:// link in a text part whose path ends in one of those
 * (each once). Exit 1 (code "mail-message") when it is not a message or
 * GMime cannot be loaded.
 */
int ps_mime_scan(const char *msg, size_t len, struct ps_mime_found *out,
		 struct ps_err *err);
void ps_mime_found_free(struct ps_mime_found *f);

/* 1 when GMime is loaded and initialised (lib/lazy_gmime.c), else 0. */
int ps_gmime_ready(void);

#endif

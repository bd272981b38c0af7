/* psrenew: the renewal request as an S/MIME-signed e-mail (RFC 5322,
 * RFC 8551): multipart/signed, detached CMS SignedData with SHA-256 and
 * signing-time, over a multipart/mixed with a text body and the PKCS#10
 * request attached. Built with OpenSSL's CMS and S/MIME API. */
#ifndef PSRENEW_MAIL_H
#define PSRENEW_MAIL_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <psrenew/err.h>

struct ps_mail_msg {
	const char *from_name; /* display name (UTF-8), may be NULL */
	const char *from;      /* address */
	const char *to;	       /* address */
	const char *subject;   /* UTF-8 */
	const char *body;      /* UTF-8 text, any line ends (signed as CRLF) */
	const char *attach_name;
	const char *attach_type;
	const unsigned char *attach;
	size_t attach_len;
	const char *message_id; /* without the angle brackets */
};

/* The signed message with CRLF line ends (malloc'ed), header lines folded
 * to 78 characters, a non-ASCII subject or name as RFC 2047 encoded-words,
 * a name with specials quoted. cert and key sign it; chain (may be NULL)
 * is included in the SignedData. */
int ps_mail_build(const struct ps_mail_msg *m, X509 *cert, EVP_PKEY *key,
		  STACK_OF(X509) * chain, char **out, size_t *len,
		  struct ps_err *err);

/* A template with {name}, {type}, {serial}, {not_after}, {email}, {file},
 * {signer_serial}, {signer_type}, {contract_number}, {organisation} and
 * {employee_number} filled in (unknown {...} are kept as they are). A line
 * whose placeholders are all unset or empty is left out. */
struct ps_mail_vars {
	const char *name, *type, *serial, *not_after, *email, *file;
	const char *signer_serial, *signer_type;
	const char *contract_number, *organisation, *employee_number;
};
char *ps_mail_fill(const char *tmpl, const struct ps_mail_vars *v);

/* The default Czech text of the request. */
extern const char ps_mail_default_template[];

#endif

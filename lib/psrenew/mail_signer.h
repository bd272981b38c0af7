/* psrenew: which certificate on the token signs the renewal e-mail. */
#ifndef PSRENEW_MAIL_SIGNER_H
#define PSRENEW_MAIL_SIGNER_H

#include <stddef.h>

#include <openssl/x509.h>

#include <psrenew/err.h>
#include <psrenew/token.h>

struct ps_mail_signer {
	X509 *cert;	      /* a reference: X509_free it */
	unsigned char id[64]; /* its key's CKA_ID */
	size_t id_len;
	int qualified;	     /* the signer is a qualified certificate */
	char serial_hex[80]; /* its serial, for the text and the record */
};

/*
 * Chooses the signer of the e-mail that renews cur (whose key is cur_id
 * on tok, logged in). sel (--sign-with, or sign-with in [ca.NAME]):
 *   NULL          the holder's valid qualified certificate with its key on
 *                 tok, else cur itself;
 *   "qualified"   that qualified certificate, or exit 2 when there is none;
 *   "current"     cur itself;
 *   "id:HEX", "serial:S", or a bare HEX (a CKA_ID, else a serial number):
 *                 that certificate, which must be valid now and have its key
 *                 on tok (exit 2 otherwise).
 * The holder is the same when both subjects carry the same serialNumber
 * (PostSignum's P... number), else when the subjects are equal.
 */
int ps_mail_signer_pick(struct ps_token *tok, X509 *cur,
			const unsigned char *cur_id, size_t cur_id_len,
			const char *sel, struct ps_mail_signer *out,
			struct ps_err *err);
void ps_mail_signer_free(struct ps_mail_signer *s);

#endif

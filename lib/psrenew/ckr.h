/* psrenew: PKCS#11 return codes as one-line messages and exit statuses. */
#ifndef PSRENEW_CKR_H
#define PSRENEW_CKR_H

#include <p11-kit/pkcs11.h>

#include <psrenew/err.h>

struct ps_token;

/* Maps a CKR_* code to err: status, stable code, message, hint. */
int ps_ckr_err(struct ps_err *err, CK_RV rv, const struct ps_token *tok,
	       const char *what);
const char *ps_ckr_name(CK_RV rv);

#endif

/* psrenew: the PKCS#10 request for a following certificate. */
#ifndef PSRENEW_CSR_H
#define PSRENEW_CSR_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <psrenew/err.h>
#include <psrenew/token.h>

/*
 * A request whose subject is the old certificate's subject byte for byte
 * and whose subjectAltName is copied, for public key pub, signed (SHA-256)
 * by sign (the new key on the token). Verified with pub before it is
 * returned. *pem is malloc'ed.
 */
int ps_csr_make(X509 *old, EVP_PKEY *pub, EVP_PKEY *sign, char **pem,
		struct ps_err *err);

/*
 * The same request, signed by the private key object priv on tok's own
 * session with C_Sign (ps_signer_sign): no libp11 key lookup. pub is the
 * public half (RSA or EC); the signature is verified with it.
 */
int ps_csr_make_token(X509 *old, EVP_PKEY *pub, struct ps_token *tok,
		      CK_OBJECT_HANDLE priv, char **pem, struct ps_err *err);

#endif

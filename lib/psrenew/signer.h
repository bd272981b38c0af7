/* psrenew: signing with a private key that stays on the token: directly
 * with C_Sign (CSRs), or as an OpenSSL EVP_PKEY through libp11 (CMS
 * messages, TLS handshakes). */
#ifndef PSRENEW_SIGNER_H
#define PSRENEW_SIGNER_H

#include <openssl/evp.h>

#include <psrenew/token.h>

/*
 * The private key with this CKA_ID on tok, as an EVP_PKEY whose operations
 * run on the token. The token must be logged in. One libp11 context per
 * module is kept until the module closes. Free the key with EVP_PKEY_free.
 */
int ps_signer_key(struct ps_token *tok, const unsigned char *id, size_t id_len,
		  EVP_PKEY **out, struct ps_err *err);

/*
 * Signs tbs with SHA-256 using the private key object priv on tok's own
 * session (C_SignInit/C_Sign, no libp11): CKM_RSA_PKCS over the DigestInfo
 * for pkey_type EVP_PKEY_RSA, CKM_ECDSA over the digest for EVP_PKEY_EC.
 * *sig (OPENSSL_malloc'ed) is the signature as X.509 carries it: the RSA
 * signature block, or a DER Ecdsa-Sig-Value. The token must be logged in.
 */
int ps_signer_sign(struct ps_token *tok, CK_OBJECT_HANDLE priv, int pkey_type,
		   const unsigned char *tbs, size_t tbs_len,
		   unsigned char **sig, size_t *sig_len, struct ps_err *err);

#endif

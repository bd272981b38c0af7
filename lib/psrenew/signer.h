/* psrenew: an OpenSSL EVP_PKEY for a private key that stays on the token
 * (libp11), for signing CSRs, CMS messages and TLS handshakes. */
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

#endif

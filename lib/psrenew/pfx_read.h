/* psrenew: reading and decrypting a PKCS#12 (PFX) file, with OpenSSL only:
 * the first half of ps-pfx-import, before the token. */
#ifndef PSRENEW_PFX_READ_H
#define PSRENEW_PFX_READ_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include <psrenew/err.h>
#include <psrenew/export.h>

/* Bounds on untrusted input. One key derivation (the MAC's, each
 * encrypted part's, each shrouded key's) costs about a second per million
 * rounds; exporters ask for 2000 (Windows), 2048 (OpenSSL) or 600000
 * (GnuTLS). PS_PFX_MAX_ROUNDS bounds all the derivations of one
 * ps_pfx_unlock(): the MAC with each form of the password, every encrypted
 * part and key, the retries. */
#define PS_PFX_MAX_SIZE	    (1UL << 20)		  /* bytes of a PFX file */
#define PS_PFX_MAX_ITER	    1000000L		  /* rounds of one derivation */
#define PS_PFX_MAX_ROUNDS   (4 * PS_PFX_MAX_ITER) /* rounds of all of them */
#define PS_PFX_MAX_BAGS	    256			  /* safe bags in one file */
#define PS_PFX_MAX_LABEL    128			  /* bytes of a label we make */
#define PS_PFX_MAX_RSA_BITS 8192		  /* bits of an RSA key */

struct ps_pfx {
	PKCS12 *p12;
	/* Set by ps_pfx_unlock(): */
	EVP_PKEY *key;
	X509 *cert;		/* the key's certificate */
	STACK_OF(X509) * chain; /* its CA certificates, each once */
	char *friendly_name;	/* the certificate's (else the key's), UTF-8 */
	int legacy;		/* needed OpenSSL's legacy provider */
};

/* Reads a PFX file (at most PS_PFX_MAX_SIZE bytes): exit 2 when it cannot be
 * opened, exit 1 when it is empty or too large. */
PS_API int ps_pfx_read_file(const char *path, unsigned char **der, size_t *len,
			    struct ps_err *err);

/* Parses the outer structure; exit 1 "bad-pfx" when the bytes are not a
 * PKCS#12 file (truncated, damaged, another format) or the MAC asks for
 * more than PS_PFX_MAX_ITER rounds. Nothing is decrypted. */
PS_API int ps_pfx_load(const unsigned char *der, size_t len, struct ps_pfx *pfx,
		       struct ps_err *err);

/* 1 when the file opens with an empty password (no need to ask for one).
 * At most two MAC derivations (of at most PS_PFX_MAX_ITER rounds). */
PS_API int ps_pfx_password_empty(const struct ps_pfx *pfx);

/*
 * Checks the password and decrypts: the private key, its certificate (by
 * localKeyID, else by public key), the other certificates and the
 * friendlyName. Legacy encryption (RC2-40, 3DES: Windows exports) loads
 * OpenSSL's legacy provider when the default provider cannot decrypt.
 * Exit 5 "bad-password"; exit 1 for a damaged file, a missing key or
 * certificate, a key that does not match its certificate, an RSA key of
 * more than PS_PFX_MAX_RSA_BITS, or an unsupported algorithm (a PBES2 key
 * derivation other than PBKDF2, such as scrypt: its cost has no bound we
 * could check). Exit 1 "bad-pfx" when one key derivation asks for more
 * than PS_PFX_MAX_ITER rounds, or all of them together for more than
 * PS_PFX_MAX_ROUNDS: nothing then takes more than a few seconds.
 */
PS_API int ps_pfx_unlock(struct ps_pfx *pfx, const char *pass,
			 struct ps_err *err);
PS_API void ps_pfx_free(struct ps_pfx *pfx);

#endif

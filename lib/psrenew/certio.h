/* psrenew: certificates as they arrive: PEM (any number of CERTIFICATE or
 * PKCS7 blocks), DER, or a DER PKCS#7 certs-only bundle. */
#ifndef PSRENEW_CERTIO_H
#define PSRENEW_CERTIO_H

#include <stddef.h>

#include <openssl/x509.h>

#include <psrenew/err.h>

/* Every certificate in buf (at most 1 MiB), in order. Exit 1 when there is
 * none. */
int ps_certs_parse(const unsigned char *buf, size_t len, STACK_OF(X509) * *out,
		   struct ps_err *err);
/* PEM of one certificate (malloc'ed). */
char *ps_cert_pem(X509 *x);

#endif

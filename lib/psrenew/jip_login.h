/* psrenew: the certificate a JIP login by certificate (--login cert) uses,
 * and its key on the token. */
#ifndef PSRENEW_JIP_LOGIN_H
#define PSRENEW_JIP_LOGIN_H

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <psrenew/err.h>
#include <psrenew/pool.h>

struct ps_jip_login_cert {
	struct ps_pool pool; /* module, module_from, sel and pin set */
	X509 *x;
	EVP_PKEY *key; /* on the token, logged in */
};

/*
 * Chooses on the one token lc->pool selects, logged in: the certificate
 * with CKA_ID id_hex, or without one the earliest issued valid (or
 * superseded) commercial certificate with its key that no record of items (an
 * array, may be NULL: the certificates being registered now) names. Returns 0
 * or an exit status (no-login-cert when there is none).
 */
int ps_jip_login_cert_open(struct ps_jip_login_cert *lc, const char *id_hex,
			   const json_t *items, struct ps_err *err);
/*
 * --verify-login: the certificate being registered and its own key. The
 * certificate is the first of cert_file, or without it the one on the
 * tokens lc->pool selects whose serial is item's serial_hex (and SHA-256
 * its sha256, when given). Its key is found on those tokens (each logged
 * in) by the certificate's public key, whatever its CKA_ID. Exit 1
 * "verify-no-cert" when no token has the certificate, "verify-no-key" when
 * none has its key; a token problem gives its own status.
 */
int ps_jip_login_cert_own(struct ps_jip_login_cert *lc, const json_t *item,
			  const char *cert_file, struct ps_err *err);
/*
 * A certificate and its private key in files (PEM or DER; the first
 * certificate of cert_path): the administrator's system certificate for
 * WS 1.1. The key file is refused as other secret files are (exit 2
 * "secret-unsafe": another owner, or group or others may read it); an
 * encrypted key's passphrase comes from pw_source (NULL: prompt). Exit 2
 * "client-key" when the key cannot be read or is not the certificate's.
 */
int ps_jip_login_cert_files(struct ps_jip_login_cert *lc, const char *cert_path,
			    const char *key_path, const char *pw_source,
			    struct ps_err *err);
void ps_jip_login_cert_free(struct ps_jip_login_cert *lc);

#endif

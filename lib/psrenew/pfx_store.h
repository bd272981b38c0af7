/* psrenew: a PFX's key, certificate and CA chain written to the token, for
 * lib/pfx.c (and the fuzz harness, which checks what comes before the
 * token). */
#ifndef PSRENEW_PFX_STORE_H
#define PSRENEW_PFX_STORE_H

#include <stddef.h>

#include <openssl/x509.h>

#include <psrenew/err.h>
#include <psrenew/pfx.h>
#include <psrenew/token.h>

/* The hint of a "bad-pfx" error: how to export the file again (defined
 * in lib/pfx_read.c, which says it most). */
extern const char ps_pfx_damaged_hint[];

/* Bytes taken from the key: freed with OPENSSL_clear_free. */
struct ps_pfx_blob {
	unsigned char *p;
	size_t n;
};

/* The RSA components PKCS#11 takes: modulus, public and private exponent,
 * the two primes, the two CRT exponents and the coefficient. */
#define PS_PFX_RSA_PARTS 8

/* The key as PKCS#11 wants it: the RSA components present (rsa_attrs:
 * modulus and public exponent first), or the EC curve, point and private
 * value. Every byte is wiped by ps_pfx_key_free(). */
struct ps_pfx_key {
	int ec;
	struct ps_pfx_blob rsa[PS_PFX_RSA_PARTS];
	struct ps_pfx_blob ec_params, ec_point, ec_value;
	int nrsa;
	CK_ATTRIBUTE rsa_attrs[PS_PFX_RSA_PARTS];
};

/* Everything written by one import, to be removed again on failure. */
struct ps_pfx_written {
	CK_OBJECT_HANDLE h[PS_PFX_MAX_BAGS + 3];
	size_t n;
};

/* The unlocked key of pfx as PKCS#11 attributes; exit 1
 * "unsupported-key" for an EC key on no named curve or a multi-prime RSA
 * key, "bad-pfx" for an RSA key without a required component. */
int ps_pfx_key_from(const struct ps_pfx *pfx, struct ps_pfx_key *k,
		    struct ps_err *err);
void ps_pfx_key_free(struct ps_pfx_key *k);

/* A label: printable, at most PS_PFX_MAX_LABEL bytes, cut at a character
 * boundary. */
void ps_pfx_make_label(char *out, const char *in);

/* The label of x: friendly, else x's subject CN, else "imported". */
void ps_pfx_default_label(char *out, X509 *x, const char *friendly);

/* res->warning when x has expired or is not valid yet. */
void ps_pfx_validity_warning(X509 *x, struct ps_pfx_import_result *res);

/* The private key already on the token: by id, else by its public part
 * (an RSA modulus, an EC point); then res->id is that key's id. Exit 5
 * "id-conflict" when another key has res->id. */
int ps_pfx_find_key(struct ps_token *tok, const struct ps_pfx_key *k,
		    struct ps_pfx_import_result *res, CK_OBJECT_HANDLE *key,
		    struct ps_err *err);

/* The public key with that id, or 0. */
CK_OBJECT_HANDLE ps_pfx_find_pubkey(struct ps_token *tok,
				    const unsigned char *id, size_t len);

/* The index of the certificate object holding x's DER, or -1. */
long ps_pfx_cert_index(const struct ps_tobj *objs, size_t n, X509 *x);

/* The chain certificates not on the token yet (indexes into pfx->chain):
 * missing[i] for each, their bytes added to *need; returns their number. */
size_t ps_pfx_chain_missing(const struct ps_pfx *pfx,
			    const struct ps_tobj *objs, size_t nobjs,
			    int *missing, unsigned long *need);

/* Exit 6 (the guide's error 622) when the token cannot sign with such a
 * key: no mechanism, or not for this size. */
int ps_pfx_check_mechanism(struct ps_token *tok, const struct ps_pfx *pfx,
			   int ec, struct ps_err *err);

/* Exit 6 "token-full" when the token says it has less than need bytes
 * free. */
int ps_pfx_check_room(struct ps_token *tok, unsigned long need,
		      struct ps_err *err);

/* Writes what is not on the token yet: the private key (unless
 * res->key_was_there), the public key (unless pub_there), the certificate
 * (unless res->cert_was_there) and with o->with_chain the CA certificates
 * marked in missing; each object written is added to w. */
int ps_pfx_write_all(struct ps_token *tok, const struct ps_pfx *pfx,
		     const struct ps_pfx_import_opts *o,
		     const struct ps_pfx_key *k, const int *missing,
		     int pub_there, struct ps_pfx_import_result *res,
		     struct ps_pfx_written *w, struct ps_err *err);

/* Removes what w holds; the number of objects that could not be removed
 * (err->hint then says how to remove them). */
size_t ps_pfx_rollback(struct ps_token *tok, struct ps_pfx_written *w,
		       const struct ps_pfx_import_result *res,
		       struct ps_err *err);

#endif

/* psrenew: facts about a certificate, as JIP and the guide need them. */
#ifndef PSRENEW_CERT_H
#define PSRENEW_CERT_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include <psrenew/err.h>
#include <psrenew/export.h>

enum ps_cert_type { PS_CERT_COMMERCIAL = 0, PS_CERT_QUALIFIED = 1 };

/* The QcType statement (ETSI EN 319 412-5): for a person's signature, an
 * organisation's seal, or a website; none. */
enum ps_qc_type { PS_QC_NONE = 0, PS_QC_ESIGN, PS_QC_ESEAL, PS_QC_WEB };

/* Maps an issuer to the name JIP's "Certifikační autorita" list shows. */
struct ps_jip_ca_map {
	const char *pattern; /* fnmatch(3) pattern over the issuer's CN */
	const char *name;
};

struct ps_cert {
	/* The decoded certificate: ps_cert_from_x509 sets it; after
	 * ps_cert_from_der it is NULL until ps_cert_x509() decodes it. */
	X509 *x509;
	unsigned char *der; /* the certificate's DER */
	size_t der_len;
	X509_NAME *subject_name; /* for ps_cert_same_holder */
	char *serial_hex;	 /* upper case, no separators */
	char *serial_dec;
	char *subject;	 /* RFC 2253, UTF-8 */
	char *issuer;	 /* RFC 2253, UTF-8 */
	char *cn;	 /* subject CN, UTF-8 (may be NULL) */
	char *issuer_cn; /* may be NULL */
	char *email;	 /* first rfc822Name or emailAddress (may be NULL) */
	int type;	 /* enum ps_cert_type */
	time_t not_before, not_after;
	char key_type[32];	  /* "rsa:2048", "ec:prime256v1" */
	unsigned char key_id[20]; /* SHA-1 of the public key bits */
	char sha256[65];	  /* fingerprint, lower-case hex */
	int qc_type;		  /* enum ps_qc_type */
	int can_login;	 /* clientAuth in the EKU, or no EKU: logs in */
	char *holder_id; /* subject serialNumber ("P564839"; may be NULL) */
};

/*
 * Parses a DER certificate. Exit 1 with err set when it is not one. The
 * facts are read without decoding the public key (OpenSSL 3 decodes it
 * through its provider decoders, most of the cost of d2i_X509): the key
 * type comes from the algorithm and the key bits. c->x509 stays NULL;
 * ps_cert_x509() decodes it when needed.
 */
PS_API int ps_cert_from_der(const unsigned char *der, size_t len,
			    struct ps_cert *c, struct ps_err *err);
/* c's certificate as an X509 (decoded once, owned by c), or NULL. */
PS_API X509 *ps_cert_x509(const struct ps_cert *c);
/* Frees that X509 again when c still has its DER (batches: one X509 at a
 * time instead of one per certificate worked on). */
void ps_cert_x509_release(const struct ps_cert *c);
/* Takes a reference to x509. */
PS_API int ps_cert_from_x509(X509 *x509, struct ps_cert *c, struct ps_err *err);
PS_API void ps_cert_free(struct ps_cert *c);

/* Qualified when the QCStatements extension carries QcCompliance. */
int ps_cert_is_qualified(const X509 *x509);
PS_API const char *ps_cert_type_name(int type);
/* "esign", "eseal", "web"; NULL for PS_QC_NONE. */
const char *ps_cert_qc_type_name(int qc_type);
PS_API int ps_cert_type_parse(const char *s); /* -1 if neither */

/* The JIP CA name: the first map entry whose pattern matches the issuer CN,
 * then the built-in defaults; NULL when nothing matches. */
PS_API const char *ps_cert_jip_ca(const struct ps_cert *c,
				  const struct ps_jip_ca_map *map, size_t n);

/* Whole days left until not_after (negative when expired). */
PS_API long ps_cert_days_left(const struct ps_cert *c, time_t now);
/* Same subject (DER) and type. */
int ps_cert_same_holder(const struct ps_cert *a, const struct ps_cert *b);

/*
 * Normalises a serial number as people type it ("0a:1b 2c", "0x0A1B2C",
 * "0A1B2C") into upper-case hex without separators or leading "0x".
 * Decimal input is taken as decimal only with the prefix "dec:".
 */
PS_API int ps_serial_normalise(const char *in, char **hex, struct ps_err *err);

#endif

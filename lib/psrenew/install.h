/* psrenew: putting an issued certificate on the token beside its key
 * (the guide's §4, "Instalovat certifikát"), after checking it. */
#ifndef PSRENEW_INSTALL_H
#define PSRENEW_INSTALL_H

#include <openssl/x509.h>

#include <psrenew/token.h>

struct ps_install_opts {
	const char *ca_bundle; /* verify the chain against it when set */
	int lenient_subject;   /* same attributes in another order/encoding */
	const char *type;      /* "qualified" or "commercial": the request's
				  type, which the certificate must have
				  (QcCompliance); NULL: any */
	int accept_type;       /* install one of another type all the same */
};

struct ps_install_result {
	X509 *leaf;	   /* the installed certificate (owned) */
	int already;	   /* it was already on the token */
	char warning[256]; /* set when the subject matched leniently */
	CK_OBJECT_HANDLE handle;
};

/*
 * From certs (what the CA sent: the certificate and maybe its chain), takes
 * the one whose public key is the key pair key_id on tok, and checks it:
 * same subject as old (when given), not expired, the chain when a CA
 * bundle is set, and the type when o->type is set (else exit 5
 * "type-mismatch"). Then stores it as a certificate object with the key's
 * CKA_ID and label, CKA_SUBJECT, CKA_ISSUER and CKA_SERIAL_NUMBER. A
 * certificate already there is success (res->already). Nothing is written
 * when a check fails (exit 1); a full token is exit 6.
 */
int ps_install_cert(struct ps_token *tok, STACK_OF(X509) * certs,
		    const unsigned char *key_id, size_t key_id_len, X509 *old,
		    const struct ps_install_opts *o,
		    struct ps_install_result *res, struct ps_err *err);
void ps_install_result_free(struct ps_install_result *res);

/* A certificate object as ps_token_write_cert() writes it. */
struct ps_certobj {
	const unsigned char *id; /* CKA_ID */
	size_t id_len;
	const char *label; /* CKA_LABEL */
	int authority;	   /* CKA_CERTIFICATE_CATEGORY 2: a CA certificate */
	const char *what;  /* the object in messages: "the certificate" */
	const char *doing; /* before a PKCS#11 error: "storing ..." */
};

/*
 * The one writer of certificate objects: x as a public token object with
 * CKA_CERTIFICATE_TYPE X.509, o's CKA_ID and CKA_LABEL (and category),
 * CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER and CKA_VALUE; *h is the new
 * object. CKR_DEVICE_MEMORY is exit 6 "token-full". -1 (err untouched)
 * when x cannot be encoded.
 */
int ps_token_write_cert(struct ps_token *tok, X509 *x,
			const struct ps_certobj *o, CK_OBJECT_HANDLE *h,
			struct ps_err *err);

/* Stores a certificate object (public, CKA_ID, CKA_LABEL, CKA_SUBJECT,
 * CKA_ISSUER, CKA_SERIAL_NUMBER, CKA_VALUE). A token that says it has no
 * room, or answers CKR_DEVICE_MEMORY, is exit 6 "token-full". */
int ps_token_store_cert(struct ps_token *tok, X509 *leaf,
			const unsigned char *id, size_t id_len,
			const char *label, CK_OBJECT_HANDLE *h,
			struct ps_err *err);

/* Subjects equal as DER (1), equal as sets of attributes (2), or not (0). */
int ps_names_match(const X509_NAME *a, const X509_NAME *b);

#endif

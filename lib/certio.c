/* psrenew: reading certificates in the forms CAs send them. */
#include <psrenew/certio.h>

#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#define IN_MAX (1 << 20)

static int push_p7(PKCS7 *p7, STACK_OF(X509) * sk)
{
	STACK_OF(X509) *certs = NULL;

	if (p7 && OBJ_obj2nid(p7->type) == NID_pkcs7_signed && p7->d.sign)
		certs = p7->d.sign->cert;
	for (int i = 0; certs && i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);

		if (!X509_up_ref(x))
			return -1;
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			return -1;
		}
	}
	return 0;
}

static int push_der(const unsigned char *der, long len, int is_p7,
		    STACK_OF(X509) * sk)
{
	const unsigned char *p = der;
	int rc = -1;

	if (!is_p7) {
		X509 *x = d2i_X509(NULL, &p, len);

		if (x && p == der + len && sk_X509_push(sk, x))
			return 0;
		X509_free(x);
		return -1;
	} else {
		PKCS7 *p7 = d2i_PKCS7(NULL, &p, len);

		if (p7 && p == der + len)
			rc = push_p7(p7, sk);
		PKCS7_free(p7);
	}
	return rc;
}

static int parse_pem(const unsigned char *buf, size_t len, STACK_OF(X509) * sk)
{
	BIO *b = BIO_new_mem_buf(buf, (int)len);
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long dlen = 0;
	int rc = 0;

	if (!b)
		return -1;
	while (PEM_read_bio(b, &name, &header, &data, &dlen) == 1) {
		if (strcmp(name, PEM_STRING_X509) == 0 ||
		    strcmp(name, PEM_STRING_X509_OLD) == 0)
			rc = push_der(data, dlen, 0, sk);
		else if (strcmp(name, PEM_STRING_PKCS7) == 0)
			rc = push_der(data, dlen, 1, sk);
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		if (rc)
			break;
	}
	ERR_clear_error(); /* PEM_read_bio ends with "no start line" */
	BIO_free(b);
	return rc;
}

int ps_certs_parse(const unsigned char *buf, size_t len, STACK_OF(X509) * *out,
		   struct ps_err *err)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	size_t skip = 0;
	int rc;

	*out = NULL;
	if (!sk)
		return ps_err_nomem(err);
	if (len > IN_MAX) {
		sk_X509_free(sk);
		return ps_err_set(err, PS_EXIT_FAIL, "bad-certificate", NULL,
				  "certificate input larger than 1 MiB");
	}
	while (skip < len && strchr(" \t\r\n", buf[skip]))
		skip++;
	if (len - skip >= 10 && memcmp(buf + skip, "-----BEGIN", 10) == 0)
		rc = parse_pem(buf, len, sk);
	else
		rc = push_der(buf, (long)len, 0, sk) == 0
			 ? 0
			 : push_der(buf, (long)len, 1, sk);
	ERR_clear_error();
	if (rc || sk_X509_num(sk) == 0) {
		sk_X509_pop_free(sk, X509_free);
		return ps_err_set(err, PS_EXIT_FAIL, "bad-certificate",
				  "give a PEM or DER certificate, or a PKCS#7 "
				  "certs-only bundle",
				  "no certificate found in the input");
	}
	*out = sk;
	return 0;
}

char *ps_cert_pem(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s = NULL;
	long n;

	if (b && PEM_write_bio_X509(b, x)) {
		n = BIO_get_mem_data(b, &data);
		s = strndup(data, (size_t)n);
	}
	BIO_free(b);
	return s;
}

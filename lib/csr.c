/* psrenew: PKCS#10 requests for following certificates. */
#include <psrenew/csr.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

static int copy_san(X509 *old, X509_REQ *req)
{
	int idx = X509_get_ext_by_NID(old, NID_subject_alt_name, -1);
	STACK_OF(X509_EXTENSION) * exts;
	X509_EXTENSION *ext;
	int ok;

	if (idx < 0)
		return 1;
	exts = sk_X509_EXTENSION_new_null();
	ext = X509_EXTENSION_dup(X509_get_ext(old, idx));
	ok = exts && ext && sk_X509_EXTENSION_push(exts, ext) &&
	     X509_REQ_add_extensions(req, exts);
	if (!ok || !exts)
		X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	return ok;
}

static char *to_pem(X509_REQ *req)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s = NULL;
	long n;

	if (b && PEM_write_bio_X509_REQ(b, req)) {
		n = BIO_get_mem_data(b, &data);
		s = strndup(data, (size_t)n);
	}
	BIO_free(b);
	return s;
}

int ps_csr_make(X509 *old, EVP_PKEY *pub, EVP_PKEY *sign, char **pem,
		struct ps_err *err)
{
	X509_REQ *req = X509_REQ_new();
	int rc = 0;

	*pem = NULL;
	if (!req || !X509_REQ_set_version(req, 0) ||
	    !X509_REQ_set_subject_name(req, X509_get_subject_name(old)) ||
	    !X509_REQ_set_pubkey(req, pub) || !copy_san(old, req)) {
		rc = ps_err_set(err, PS_EXIT_FAIL, "csr", NULL,
				"cannot build the certificate request");
		goto out;
	}
	if (X509_REQ_sign(req, sign, EVP_sha256()) <= 0) {
		rc = ps_err_set(
		    err, PS_EXIT_TOKEN, "token-sign",
		    "check that the token is still inserted and "
		    "the PIN session is open",
		    "the token did not sign the certificate request");
		goto out;
	}
	if (X509_REQ_verify(req, pub) != 1) {
		rc = ps_err_set(err, PS_EXIT_TOKEN, "token-sign", NULL,
				"the token's signature on the request does not "
				"verify with the new public key");
		goto out;
	}
	*pem = to_pem(req);
	if (!*pem)
		rc = ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				"out of memory");
out:
	if (rc)
		ps_err_add_openssl(err);
	X509_REQ_free(req);
	return rc;
}

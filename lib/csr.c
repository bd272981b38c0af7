/* psrenew: PKCS#10 requests for following certificates. */
#include <psrenew/csr.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <psrenew/signer.h>

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

static X509_REQ *build(X509 *old, EVP_PKEY *pub)
{
	X509_REQ *req = X509_REQ_new();

	if (!req || !X509_REQ_set_version(req, 0) ||
	    !X509_REQ_set_subject_name(req, X509_get_subject_name(old)) ||
	    !X509_REQ_set_pubkey(req, pub) || !copy_san(old, req)) {
		X509_REQ_free(req);
		return NULL;
	}
	return req;
}

/* Checks the token's signature with pub and writes the PEM. */
static int finish(X509_REQ *req, EVP_PKEY *pub, char **pem, struct ps_err *err)
{
	if (X509_REQ_verify(req, pub) != 1)
		return ps_err_set(err, PS_EXIT_TOKEN, "token-sign", NULL,
				  "the token's signature on the request does "
				  "not verify with the new public key");
	*pem = to_pem(req);
	if (!*pem)
		return ps_err_nomem(err);
	return 0;
}

static int build_err(struct ps_err *err)
{
	return ps_err_set(err, PS_EXIT_FAIL, "csr", NULL,
			  "cannot build the certificate request");
}

static int sign_err(struct ps_err *err)
{
	return ps_err_set(err, PS_EXIT_TOKEN, "token-sign",
			  "check that the token is still inserted and "
			  "the PIN session is open",
			  "the token did not sign the certificate request");
}

int ps_csr_make(X509 *old, EVP_PKEY *pub, EVP_PKEY *sign, char **pem,
		struct ps_err *err)
{
	X509_REQ *req = build(old, pub);
	int rc;

	*pem = NULL;
	if (!req)
		rc = build_err(err);
	else if (X509_REQ_sign(req, sign, EVP_sha256()) <= 0)
		rc = sign_err(err);
	else
		rc = finish(req, pub, pem, err);
	if (rc)
		ps_err_add_openssl(err);
	X509_REQ_free(req);
	return rc;
}

int ps_csr_make_token(X509 *old, EVP_PKEY *pub, struct ps_token *tok,
		      CK_OBJECT_HANDLE priv, char **pem, struct ps_err *err)
{
	X509_REQ *req = build(old, pub);
	int type = EVP_PKEY_get_base_id(pub), rsa = type == EVP_PKEY_RSA;
	X509_ALGOR *alg = X509_ALGOR_new();
	ASN1_BIT_STRING *bits = ASN1_BIT_STRING_new();
	unsigned char *tbs = NULL, *sig = NULL;
	size_t sig_len = 0;
	int tbs_len = -1, rc;

	*pem = NULL;
	if (req)
		tbs_len = i2d_re_X509_REQ_tbs(req, &tbs);
	if (!req || !alg || !bits || tbs_len <= 0 ||
	    (type != EVP_PKEY_RSA && type != EVP_PKEY_EC) ||
	    !X509_ALGOR_set0(alg,
			     OBJ_nid2obj(rsa ? NID_sha256WithRSAEncryption
					     : NID_ecdsa_with_SHA256),
			     rsa ? V_ASN1_NULL : V_ASN1_UNDEF, NULL) ||
	    !X509_REQ_set1_signature_algo(req, alg)) {
		rc = build_err(err);
		goto out;
	}
	rc = ps_signer_sign(tok, priv, type, tbs, (size_t)tbs_len, &sig,
			    &sig_len, err);
	if (rc)
		goto out;
	if (!ASN1_BIT_STRING_set(bits, sig, (int)sig_len)) {
		rc = build_err(err);
		goto out;
	}
	/* No unused bits in the last byte (as ASN1_item_sign sets it). */
	bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	X509_REQ_set0_signature(req, bits);
	bits = NULL;
	rc = finish(req, pub, pem, err);
out:
	if (rc)
		ps_err_add_openssl(err);
	OPENSSL_free(tbs);
	OPENSSL_free(sig);
	ASN1_BIT_STRING_free(bits);
	X509_ALGOR_free(alg);
	X509_REQ_free(req);
	return rc;
}

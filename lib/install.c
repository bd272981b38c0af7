/* psrenew: certificate installation. */
#include <psrenew/install.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#include <psrenew/cert.h>
#include <psrenew/keypair.h>
#include <psrenew/p11obj.h>

static const char full_hint[] =
    "this is the guide's error 621: free room with ps-token-clean "
    "--for-room 1, then run ps-fetch again; the request is kept";

void ps_install_result_free(struct ps_install_result *res)
{
	X509_free(res->leaf);
	memset(res, 0, sizeof(*res));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The attributes of a name as sorted "nid=UTF-8 value" strings. */
static char **name_set(const X509_NAME *n, int *count)
{
	int k = X509_NAME_entry_count(n);
	char **v = calloc((size_t)(k > 0 ? k : 1), sizeof(*v));

	*count = 0;
	for (int i = 0; v && i < k; i++) {
		const X509_NAME_ENTRY *e = X509_NAME_get_entry(n, i);
		unsigned char *u = NULL;
		int len = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(e));

		if (len < 0 ||
		    asprintf(&v[i], "%d=%.*s",
			     OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)), len,
			     (char *)u) < 0)
			v[i] = NULL;
		OPENSSL_free(u);
		if (!v[i])
			break;
		(*count)++;
	}
	if (v && *count == k)
		qsort(v, (size_t)k, sizeof(*v), cmp_str);
	return v;
}

int ps_names_match(const X509_NAME *a, const X509_NAME *b)
{
	const unsigned char *da, *db;
	size_t la, lb;
	char **sa, **sb;
	int na, nb, same;

	if (X509_NAME_get0_der(a, &da, &la) &&
	    X509_NAME_get0_der(b, &db, &lb) && la == lb &&
	    memcmp(da, db, la) == 0)
		return 1;
	sa = name_set(a, &na);
	sb = name_set(b, &nb);
	same = sa && sb && na == nb && na == X509_NAME_entry_count(a) &&
	       nb == X509_NAME_entry_count(b);
	for (int i = 0; same && i < na; i++)
		same = strcmp(sa[i], sb[i]) == 0;
	for (int i = 0; sa && i < na; i++)
		free(sa[i]);
	for (int i = 0; sb && i < nb; i++)
		free(sb[i]);
	free(sa);
	free(sb);
	return same ? 2 : 0;
}

static int verify_chain(X509 *leaf, STACK_OF(X509) * certs, const char *bundle,
			struct ps_err *err)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int rc = 0;

	if (!store || !ctx || !X509_STORE_load_file(store, bundle)) {
		rc = ps_err_set(err, PS_EXIT_USAGE, "bad-ca-bundle", NULL,
				"cannot read the CA bundle %s", bundle);
		ps_err_add_openssl(err);
	} else if (!X509_STORE_CTX_init(ctx, store, leaf, certs) ||
		   X509_verify_cert(ctx) != 1) {
		rc =
		    ps_err_set(err, PS_EXIT_FAIL, "bad-chain",
			       "check --ca-bundle: it must hold the CA that "
			       "issues your certificates",
			       "the issued certificate does not verify against "
			       "%s: %s",
			       bundle,
			       X509_verify_cert_error_string(
				   X509_STORE_CTX_get_error(ctx)));
	}
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

static X509 *pick_leaf(STACK_OF(X509) * certs, EVP_PKEY *pub)
{
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);

		if (EVP_PKEY_eq(X509_get0_pubkey(x), pub) == 1)
			return x;
	}
	return NULL;
}

/* A certificate of another type than the request's (a CA that left out
 * QcCompliance, or added it) is installed only when asked for. */
static int check_type(X509 *leaf, const struct ps_install_opts *o,
		      struct ps_install_result *res, struct ps_err *err)
{
	const char *got =
	    ps_cert_type_name(ps_cert_is_qualified(leaf) ? PS_CERT_QUALIFIED
							 : PS_CERT_COMMERCIAL);

	if (!o->type || !strcmp(o->type, got))
		return 0;
	if (o->accept_type) {
		if (!res->warning[0])
			snprintf(res->warning, sizeof(res->warning),
				 "installed a %s certificate for a %s request "
				 "(--accept-type)",
				 got, o->type);
		return 0;
	}
	return ps_err_set(err, PS_EXIT_REFUSED, "type-mismatch",
			  "ask the CA for a certificate of the right type; "
			  "to install this one all the same, run ps-fetch "
			  "--accept-type with the request id",
			  "the CA issued a %s certificate for a %s request; "
			  "it was not installed, the request keeps it "
			  "(rejected_cert) and its key",
			  got, o->type);
}

static int check(X509 *leaf, STACK_OF(X509) * certs, X509 *old,
		 const struct ps_install_opts *o, struct ps_install_result *res,
		 struct ps_err *err)
{
	int m;

	if (old) {
		m = ps_names_match(X509_get_subject_name(leaf),
				   X509_get_subject_name(old));
		if (m == 0 || (m == 2 && !o->lenient_subject))
			return ps_err_set(
			    err, PS_EXIT_FAIL, "subject-mismatch",
			    m == 2 ? "the attributes are the same in another "
				     "order or encoding: accept it with "
				     "--lenient-subject"
				   : "the CA issued a certificate for someone "
				     "else; nothing was installed",
			    "the issued certificate's subject differs from "
			    "the current certificate's");
		if (m == 2)
			snprintf(
			    res->warning, sizeof(res->warning),
			    "the subject differs from the current one only "
			    "in order or encoding (--lenient-subject)");
	}
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0)
		return ps_err_set(err, PS_EXIT_FAIL, "cert-expired", NULL,
				  "the issued certificate has already expired");
	m = o->ca_bundle ? verify_chain(leaf, certs, o->ca_bundle, err) : 0;
	if (m)
		return m;
	return check_type(leaf, o, res, err);
}

/* A certificate object with this id and exactly this DER? hs[0..known):
 * the ones with this id, when known (-1: look). */
static int already_there(struct ps_token *tok, const unsigned char *id,
			 size_t id_len, const unsigned char *der, int len,
			 CK_OBJECT_HANDLE *hs, long known, CK_OBJECT_HANDLE *h)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) },
			     { CKA_ID, (void *)id, id_len } };
	CK_ULONG n = 0;
	long k = known >= 0 ? known
			    : ps_token_index_find(tok, cls, id, id_len, hs, 16);
	int found = 0;

	/* With an index, a miss is believed: a certificate is installed
	 * under its request's lock, and this process's own installs are in
	 * the index. */
	if (k >= 0)
		n = (CK_ULONG)k;
	else
		ps_p11_find(tok, t, 2, hs, 16, &n);
	for (CK_ULONG i = 0; i < n && !found; i++) {
		unsigned char *buf = malloc((size_t)len);
		CK_ATTRIBUTE v = { CKA_VALUE, buf, (CK_ULONG)len };

		if (buf && ps_p11_get(tok, hs[i], &v, 1) == CKR_OK &&
		    v.ulValueLen == (CK_ULONG)len &&
		    !memcmp(buf, der, (size_t)len)) {
			found = 1;
			*h = hs[i];
		}
		free(buf);
	}
	return found;
}

int ps_token_write_cert(struct ps_token *tok, X509 *x,
			const struct ps_certobj *o, CK_OBJECT_HANDLE *h,
			struct ps_err *err)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE ct = CKC_X_509;
	CK_ULONG cat = 2; /* authority (PKCS#11 2.40, 4.6.2) */
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	unsigned char *der = NULL, *subj = NULL, *iss = NULL, *ser = NULL;
	int dl = i2d_X509(x, &der);
	int sl = i2d_X509_NAME(X509_get_subject_name(x), &subj);
	int il = i2d_X509_NAME(X509_get_issuer_name(x), &iss);
	int nl = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &ser);
	CK_ATTRIBUTE t[11];
	CK_ULONG n = 0;
	struct ps_p11_write w = { o->what, o->doing, full_hint };
	int rc = -1;

	if (dl <= 0 || sl <= 0 || il <= 0 || nl <= 0)
		goto out;
	t[n++] = (CK_ATTRIBUTE){ CKA_CLASS, &cls, sizeof(cls) };
	t[n++] = (CK_ATTRIBUTE){ CKA_CERTIFICATE_TYPE, &ct, sizeof(ct) };
	if (o->authority)
		t[n++] = (CK_ATTRIBUTE){ CKA_CERTIFICATE_CATEGORY, &cat,
					 sizeof(cat) };
	t[n++] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof(yes) };
	t[n++] = (CK_ATTRIBUTE){ CKA_PRIVATE, &no, sizeof(no) };
	t[n++] =
	    (CK_ATTRIBUTE){ CKA_LABEL, (void *)o->label, strlen(o->label) };
	t[n++] = (CK_ATTRIBUTE){ CKA_ID, (void *)o->id, o->id_len };
	t[n++] = (CK_ATTRIBUTE){ CKA_SUBJECT, subj, (CK_ULONG)sl };
	t[n++] = (CK_ATTRIBUTE){ CKA_ISSUER, iss, (CK_ULONG)il };
	t[n++] = (CK_ATTRIBUTE){ CKA_SERIAL_NUMBER, ser, (CK_ULONG)nl };
	t[n++] = (CK_ATTRIBUTE){ CKA_VALUE, der, (CK_ULONG)dl };
	rc = ps_p11_create(tok, t, n, h, &w, err);
out:
	OPENSSL_free(der);
	OPENSSL_free(subj);
	OPENSSL_free(iss);
	OPENSSL_free(ser);
	return rc;
}

int ps_token_store_cert(struct ps_token *tok, X509 *leaf,
			const unsigned char *id, size_t id_len,
			const char *label, CK_OBJECT_HANDLE *h,
			struct ps_err *err)
{
	struct ps_certobj o = { .id = id,
				.id_len = id_len,
				.label = label,
				.what = "the certificate",
				.doing = "storing the certificate" };
	int dl = i2d_X509(leaf, NULL);
	unsigned long free_bytes;
	int rc;

	/* The free memory as it is now: read again unless nothing was
	 * written since the token information was last read. */
	if (dl > 0 && (tok->info_fresh || ps_token_refresh(tok, NULL) == 0) &&
	    ps_token_free_memory(tok, &free_bytes) &&
	    free_bytes < (unsigned long)dl)
		return ps_err_set(err, PS_EXIT_TOKEN, "token-full", full_hint,
				  "token '%s' is full: %lu bytes free, the "
				  "certificate needs %d (the guide's error "
				  "621)",
				  tok->label, free_bytes, dl);
	rc = dl > 0 ? ps_token_write_cert(tok, leaf, &o, h, err) : -1;
	if (rc < 0)
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "cannot encode the certificate");
	if (rc == 0)
		ps_token_index_add(tok, CKO_CERTIFICATE, id, id_len, *h);
	return rc;
}

int ps_install_cert(struct ps_token *tok, STACK_OF(X509) * certs,
		    const unsigned char *key_id, size_t key_id_len, X509 *old,
		    const struct ps_install_opts *o,
		    struct ps_install_result *res, struct ps_err *err)
{
	struct ps_keypair kp;
	CK_OBJECT_HANDLE hs[16];
	long known;
	unsigned char *der = NULL;
	X509 *leaf;
	int rc, len;

	memset(res, 0, sizeof(*res));
	/* The key and the certificates already under its id: one search. */
	rc = ps_keypair_find_certs(tok, key_id, key_id_len, &kp, hs, 16, &known,
				   err);
	if (rc)
		return rc;
	leaf = pick_leaf(certs, kp.pubkey);
	if (!leaf) {
		ps_keypair_free(&kp);
		return ps_err_set(err, PS_EXIT_FAIL, "key-mismatch",
				  "the CA answered with a certificate for "
				  "another key; nothing was installed",
				  "no certificate in the answer has the public "
				  "key of the new key pair on token '%s'",
				  tok->label);
	}
	rc = check(leaf, certs, old, o, res, err);
	if (!rc) {
		len = i2d_X509(leaf, &der);
		if (len > 0 && already_there(tok, key_id, key_id_len, der, len,
					     hs, known, &res->handle)) {
			res->already = 1;
		} else {
			rc = ps_token_store_cert(tok, leaf, key_id, key_id_len,
						 kp.label, &res->handle, err);
		}
		OPENSSL_free(der);
	}
	if (!rc && X509_up_ref(leaf))
		res->leaf = leaf;
	ps_keypair_free(&kp);
	return rc;
}

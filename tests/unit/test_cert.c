/* Unit tests: lib/cert.c (certificate facts). The certificates are made
 * here with OpenSSL, so every expected value is known. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <psrenew/cert.h>
#include <psrenew/codec.h>

#define T_NB ((time_t)1700000000) /* 2023-11-14T22:13:20Z */
#define T_NA ((time_t)1731536000) /* 2024-11-13T22:13:20Z */

/* id-etsi-qcs-QcCompliance 0.4.0.1862.1.1, QcSSCD 0.4.0.1862.1.4,
 * QcType 0.4.0.1862.1.6 with id-etsi-qct-esign 0.4.0.1862.1.6.1. */
#define OID_QCC	   0x06, 0x06, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x01
#define OID_SSCD   0x06, 0x06, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x04
#define OID_QCTYPE 0x06, 0x06, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x06
#define OID_ESIGN  0x06, 0x07, 0x04, 0x00, 0x8e, 0x46, 0x01, 0x06, 0x01

/* SEQUENCE { SEQUENCE { QcCompliance } } */
static const unsigned char qc_compliance[] = { 0x30, 0x0a, 0x30, 0x08,
					       OID_QCC };
/* SEQUENCE { SEQUENCE { QcSSCD } } */
static const unsigned char qc_sscd_only[] = { 0x30, 0x0a, 0x30, 0x08,
					      OID_SSCD };
/* SEQUENCE { { QcType { esign } }, { QcSSCD }, { QcCompliance } }: the
 * compliance statement last, after one with statementInfo. */
static const unsigned char qc_full[] = {
	0x30,	   0x29, 0x30, 0x13,	 OID_QCTYPE, 0x30, 0x09,
	OID_ESIGN, 0x30, 0x08, OID_SSCD, 0x30,	     0x08, OID_QCC,
};
/* Not a SEQUENCE OF SEQUENCE at all. */
static const unsigned char qc_garbage[] = { 0x04, 0x03, 0x01, 0x02, 0x03 };
/* A statement whose first element is not an OID, then an INTEGER. */
static const unsigned char qc_odd[] = { 0x30, 0x08, 0x30, 0x03, 0x02,
					0x01, 0x01, 0x02, 0x01, 0x05 };

static EVP_PKEY *rsa_key, *ec_key, *ec_key2;

struct spec {
	const char *serial_hex;
	const char *cn;	      /* subject CN (UTF-8) or NULL */
	const char *sn;	      /* subject serialNumber or NULL */
	const char *dn_email; /* subject emailAddress or NULL */
	const char *san;      /* subjectAltName, openssl conf syntax, or NULL */
	const char *issuer_cn;
	EVP_PKEY *key;
	time_t nb, na;
	const unsigned char *qc;
	size_t qc_len;
};

static void add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(e);
	assert_true(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
}

static void add_qc(X509 *x, const unsigned char *der, size_t len)
{
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *e;

	assert_non_null(os);
	assert_true(ASN1_OCTET_STRING_set(os, der, (int)len));
	e = X509_EXTENSION_create_by_NID(NULL, NID_qcStatements, 0, os);
	assert_non_null(e);
	assert_true(X509_add_ext(x, e, -1));
	X509_EXTENSION_free(e);
	ASN1_OCTET_STRING_free(os);
}

static X509 *make_cert(const struct spec *s)
{
	X509 *x = X509_new();
	X509_NAME *subj, *iss;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *serial;

	assert_non_null(x);
	assert_true(X509_set_version(x, X509_VERSION_3));
	assert_true(BN_hex2bn(&bn, s->serial_hex ? s->serial_hex : "0A1B"));
	serial = BN_to_ASN1_INTEGER(bn, NULL);
	assert_non_null(serial);
	assert_true(X509_set_serialNumber(x, serial));
	ASN1_INTEGER_free(serial);
	BN_free(bn);

	subj = X509_NAME_new();
	assert_true(X509_NAME_add_entry_by_txt(
	    subj, "C", MBSTRING_UTF8, (const unsigned char *)"CZ", -1, -1, 0));
	if (s->cn)
		assert_true(X509_NAME_add_entry_by_NID(
		    subj, NID_commonName, MBSTRING_UTF8,
		    (const unsigned char *)s->cn, -1, -1, 0));
	if (s->sn)
		assert_true(X509_NAME_add_entry_by_NID(
		    subj, NID_serialNumber, MBSTRING_UTF8,
		    (const unsigned char *)s->sn, -1, -1, 0));
	if (s->dn_email)
		assert_true(X509_NAME_add_entry_by_NID(
		    subj, NID_pkcs9_emailAddress, MBSTRING_UTF8,
		    (const unsigned char *)s->dn_email, -1, -1, 0));
	assert_true(X509_set_subject_name(x, subj));
	X509_NAME_free(subj);

	iss = X509_NAME_new();
	assert_true(X509_NAME_add_entry_by_txt(
	    iss, "C", MBSTRING_UTF8, (const unsigned char *)"CZ", -1, -1, 0));
	assert_true(X509_NAME_add_entry_by_txt(
	    iss, "O", MBSTRING_UTF8,
	    (const unsigned char *)"\xc4\x8c"
				   "esk\xc3\xa1 po\xc5\xa1ta, s.p.",
	    -1, -1, 0));
	if (s->issuer_cn)
		assert_true(X509_NAME_add_entry_by_NID(
		    iss, NID_commonName, MBSTRING_UTF8,
		    (const unsigned char *)s->issuer_cn, -1, -1, 0));
	assert_true(X509_set_issuer_name(x, iss));
	X509_NAME_free(iss);

	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), s->nb));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), s->na));
	assert_true(X509_set_pubkey(x, s->key));
	add_ext(x, NID_subject_key_identifier, "hash");
	if (s->san)
		add_ext(x, NID_subject_alt_name, s->san);
	if (s->qc)
		add_qc(x, s->qc, s->qc_len);
	assert_true(X509_sign(x, s->key, EVP_sha256()) > 0);
	return x;
}

/* The default: Jan Novák's qualified certificate from PostSignum. */
static struct spec jan(void)
{
	struct spec s = {
		.serial_hex = "0A1B",
		.cn = "Jan Nov\xc3\xa1k",
		.sn = "P123456",
		.san = "DNS:www.example.cz,email:jan.novak@example.cz,"
		       "email:second@example.cz",
		.issuer_cn = "PostSignum Qualified CA 4",
		.key = rsa_key,
		.nb = T_NB,
		.na = T_NA,
		.qc = qc_compliance,
		.qc_len = sizeof(qc_compliance),
	};

	return s;
}

static unsigned char *der_of(X509 *x, size_t *len)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);

	assert_true(n > 0);
	*len = (size_t)n;
	return der;
}

/* Parses the certificate s describes, through DER. */
static void cert_of(const struct spec *s, struct ps_cert *c)
{
	X509 *x = make_cert(s);
	size_t len;
	unsigned char *der = der_of(x, &len);
	struct ps_err err;
	int rc;

	ps_err_clear(&err);
	rc = ps_cert_from_der(der, len, c, &err);
	OPENSSL_free(der);
	X509_free(x);
	if (rc)
		fail_msg("ps_cert_from_der: %d %s %s", rc, err.code, err.msg);
}

static int group_setup(void **state)
{
	(void)state;
	rsa_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ec_key2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	return rsa_key && ec_key && ec_key2 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	EVP_PKEY_free(rsa_key);
	EVP_PKEY_free(ec_key);
	EVP_PKEY_free(ec_key2);
	return 0;
}

/* ---- the hand-made DER is what it claims to be ------------------------- */

static void test_qc_der_oids(void **state)
{
	static const unsigned char want_qcc[] = { OID_QCC };
	static const unsigned char want_sscd[] = { OID_SSCD };
	unsigned char *der = NULL;
	ASN1_OBJECT *o;
	int n;

	(void)state;
	o = OBJ_txt2obj("0.4.0.1862.1.1", 1);
	n = i2d_ASN1_OBJECT(o, &der);
	assert_int_equal(n, sizeof(want_qcc));
	assert_memory_equal(der, want_qcc, sizeof(want_qcc));
	OPENSSL_free(der);
	ASN1_OBJECT_free(o);

	der = NULL;
	o = OBJ_txt2obj("0.4.0.1862.1.4", 1);
	n = i2d_ASN1_OBJECT(o, &der);
	assert_int_equal(n, sizeof(want_sscd));
	assert_memory_equal(der, want_sscd, sizeof(want_sscd));
	OPENSSL_free(der);
	ASN1_OBJECT_free(o);

	/* The full statement list parses as DER, with nothing left over. */
	const unsigned char *p = qc_full;
	STACK_OF(ASN1_TYPE) *st =
	    d2i_ASN1_SEQUENCE_ANY(NULL, &p, sizeof(qc_full));

	assert_non_null(st);
	assert_int_equal(sk_ASN1_TYPE_num(st), 3);
	assert_ptr_equal(p, qc_full + sizeof(qc_full));
	sk_ASN1_TYPE_pop_free(st, ASN1_TYPE_free);
}

/* ---- fields ------------------------------------------------------------ */

static void test_fields_rsa_qualified(void **state)
{
	struct spec s = jan();
	struct ps_cert c;

	(void)state;
	cert_of(&s, &c);
	/* read without decoding the key: the X509 only on demand */
	assert_null(c.x509);
	assert_non_null(ps_cert_x509(&c));
	assert_ptr_equal(ps_cert_x509(&c), c.x509);
	ps_cert_x509_release(&c); /* and again on demand */
	assert_null(c.x509);
	assert_non_null(ps_cert_x509(&c));
	assert_string_equal(c.serial_hex, "0A1B");
	assert_string_equal(c.serial_dec, "2587");
	assert_string_equal(c.subject,
			    "serialNumber=P123456,CN=Jan Nov\xc3\xa1k,C=CZ");
	assert_null(strstr(c.subject, "\\C3"));
	assert_string_equal(c.issuer, "CN=PostSignum Qualified CA 4,"
				      "O=\xc4\x8c"
				      "esk\xc3\xa1 po\xc5\xa1ta\\, s.p.,C=CZ");
	assert_string_equal(c.cn, "Jan Nov\xc3\xa1k");
	assert_string_equal(c.issuer_cn, "PostSignum Qualified CA 4");
	assert_string_equal(c.email, "jan.novak@example.cz");
	assert_int_equal(c.type, PS_CERT_QUALIFIED);
	assert_int_equal(c.not_before, T_NB);
	assert_int_equal(c.not_after, T_NA);
	assert_string_equal(c.key_type, "rsa:2048");
	ps_cert_free(&c);
	assert_null(c.x509);
	assert_null(c.subject);
	ps_cert_free(&c); /* zeroed: harmless */
	ps_cert_free(NULL);
}

/* ps_cert_from_der (key not decoded) and ps_cert_from_x509 (decoded)
 * find the same facts. */
static void agree(EVP_PKEY *key, const char *key_type)
{
	struct spec s = jan();
	struct ps_cert a, b;
	struct ps_err err;
	unsigned char *der;
	size_t len;
	X509 *x;

	s.key = key;
	x = make_cert(&s);
	der = der_of(x, &len);
	assert_int_equal(ps_cert_from_der(der, len, &a, &err), 0);
	assert_int_equal(ps_cert_from_x509(x, &b, &err), 0);
	OPENSSL_free(der);
	X509_free(x);
	assert_string_equal(a.key_type, key_type);
	assert_string_equal(a.key_type, b.key_type);
	assert_memory_equal(a.key_id, b.key_id, sizeof(a.key_id));
	assert_string_equal(a.sha256, b.sha256);
	assert_string_equal(a.serial_hex, b.serial_hex);
	assert_string_equal(a.serial_dec, b.serial_dec);
	assert_string_equal(a.subject, b.subject);
	assert_string_equal(a.issuer, b.issuer);
	assert_string_equal(a.cn, b.cn);
	assert_string_equal(a.issuer_cn, b.issuer_cn);
	assert_string_equal(a.email, b.email);
	assert_int_equal(a.type, b.type);
	assert_int_equal(a.not_before, b.not_before);
	assert_int_equal(a.not_after, b.not_after);
	assert_int_equal(a.der_len, b.der_len);
	assert_memory_equal(a.der, b.der, a.der_len);
	assert_true(ps_cert_same_holder(&a, &b));
	ps_cert_free(&a);
	ps_cert_free(&b);
}

static void test_der_and_x509_agree(void **state)
{
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *rsa3k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);

	(void)state;
	assert_non_null(p384);
	assert_non_null(rsa3k);
	agree(rsa_key, "rsa:2048");
	agree(rsa3k, "rsa:3072");
	agree(ec_key, "ec:prime256v1");
	agree(p384, "ec:secp384r1");
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa3k);
}

static void test_fields_ec_commercial(void **state)
{
	struct spec s = jan();
	struct ps_cert c;

	(void)state;
	s.key = ec_key;
	s.qc = NULL;
	s.serial_hex = "8fedcba987654321"; /* high bit: DER adds 00 */
	s.issuer_cn = "PostSignum Public CA 4";
	cert_of(&s, &c);
	assert_string_equal(c.serial_hex, "8FEDCBA987654321");
	assert_string_equal(c.serial_dec, "10371169445885592353");
	assert_string_equal(c.key_type, "ec:prime256v1");
	assert_int_equal(c.type, PS_CERT_COMMERCIAL);
	assert_string_equal(c.issuer_cn, "PostSignum Public CA 4");
	ps_cert_free(&c);
}

static void test_serials(void **state)
{
	static const struct {
		const char *in, *hex, *dec;
	} t[] = {
		{ "0A1B", "0A1B", "2587" },
		{ "01", "01", "1" },
		{ "0", "00", "0" },
		{ "FF", "FF", "255" },
		{ "100", "0100", "256" },
		{ "7a3f00c1d2e3f4051627384950617283",
		  "7A3F00C1D2E3F4051627384950617283",
		  "162492945544150226462665870474226004611" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct spec s = jan();
		struct ps_cert c;

		s.serial_hex = t[i].in;
		s.key = ec_key;
		cert_of(&s, &c);
		assert_string_equal(c.serial_hex, t[i].hex);
		assert_string_equal(c.serial_dec, t[i].dec);
		ps_cert_free(&c);
	}
}

static void hex_of(const unsigned char *md, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static void check_key_id_and_sha256(EVP_PKEY *key)
{
	struct spec s = jan();
	struct ps_cert c;
	X509 *x;
	unsigned char *der = NULL, *kder = NULL;
	unsigned char md[SHA256_DIGEST_LENGTH], kid[SHA_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];
	const ASN1_OCTET_STRING *skid;
	size_t len;
	int klen;
	struct ps_err err;

	s.key = key;
	x = make_cert(&s);
	der = der_of(x, &len);
	assert_int_equal(ps_cert_from_der(der, len, &c, &err), 0);

	/* key_id: SHA-1 of the subjectPublicKey bits, which for RSA is the
	 * PKCS#1 RSAPublicKey and for EC the point (i2d_PublicKey). */
	klen = i2d_PublicKey(key, &kder);
	assert_true(klen > 0);
	SHA1(kder, (size_t)klen, kid);
	assert_memory_equal(c.key_id, kid, sizeof(kid));
	OPENSSL_free(kder);
	/* ...which is what OpenSSL puts in subjectKeyIdentifier "hash". */
	skid = X509_get0_subject_key_id(x);
	assert_non_null(skid);
	assert_int_equal(ASN1_STRING_length(skid), 20);
	assert_memory_equal(c.key_id, ASN1_STRING_get0_data(skid), 20);

	/* sha256: of the whole DER, lower-case hex. */
	SHA256(der, len, md);
	hex_of(md, sizeof(md), hex);
	assert_string_equal(c.sha256, hex);
	assert_int_equal(strlen(c.sha256), 64);

	ps_cert_free(&c);
	OPENSSL_free(der);
	X509_free(x);
}

static void test_key_id_and_sha256(void **state)
{
	(void)state;
	check_key_id_and_sha256(rsa_key);
	check_key_id_and_sha256(ec_key);
}

static void test_from_x509_takes_reference(void **state)
{
	struct spec s = jan();
	X509 *x;
	struct ps_cert c;
	struct ps_err err;
	unsigned int mdlen;
	unsigned char md[32];
	char hex[65];

	(void)state;
	s.key = ec_key;
	x = make_cert(&s);
	assert_int_equal(ps_cert_from_x509(x, &c, &err), 0);
	assert_ptr_equal(c.x509, x);
	assert_true(X509_digest(x, EVP_sha256(), md, &mdlen));
	hex_of(md, mdlen, hex);
	X509_free(x); /* ours; c keeps its own reference */
	assert_string_equal(c.sha256, hex);
	assert_string_equal(c.cn, "Jan Nov\xc3\xa1k");
	assert_non_null(X509_get_subject_name(c.x509));
	assert_int_equal(c.not_after, T_NA);
	assert_int_equal(c.type, PS_CERT_QUALIFIED);
	ps_cert_free(&c);
}

static void test_generalized_time(void **state)
{
	struct spec s = jan();
	struct ps_cert c;
	char buf[32];

	(void)state;
	/* After 2049: GeneralizedTime. */
	s.key = ec_key;
	s.na = (time_t)2556144000; /* 2051-01-01T00:00:00Z */
	cert_of(&s, &c);
	assert_int_equal(c.not_after, (time_t)2556144000);
	assert_int_equal(c.not_before, T_NB);
	ps_time_iso(c.not_after, buf, sizeof(buf));
	assert_string_equal(buf, "2051-01-01T00:00:00Z");
	ps_cert_free(&c);
}

static void test_email_sources(void **state)
{
	struct spec s = jan();
	struct ps_cert c;

	(void)state;
	s.key = ec_key;
	/* No SAN: the subject's emailAddress. */
	s.san = NULL;
	s.dn_email = "jan@dn.example.cz";
	cert_of(&s, &c);
	assert_string_equal(c.email, "jan@dn.example.cz");
	ps_cert_free(&c);

	/* SAN rfc822Name wins over emailAddress. */
	s.san = "email:jan@san.example.cz";
	cert_of(&s, &c);
	assert_string_equal(c.email, "jan@san.example.cz");
	ps_cert_free(&c);

	/* SAN without an rfc822Name: the emailAddress. */
	s.san = "DNS:example.cz";
	cert_of(&s, &c);
	assert_string_equal(c.email, "jan@dn.example.cz");
	ps_cert_free(&c);

	/* None at all. */
	s.dn_email = NULL;
	cert_of(&s, &c);
	assert_null(c.email);
	ps_cert_free(&c);
}

static void test_no_cn(void **state)
{
	struct spec s = jan();
	struct ps_cert c;

	(void)state;
	s.key = ec_key;
	s.cn = NULL;
	s.issuer_cn = NULL;
	cert_of(&s, &c);
	assert_null(c.cn);
	assert_null(c.issuer_cn);
	assert_string_equal(c.subject, "serialNumber=P123456,C=CZ");
	/* No issuer CN: none of the built-in patterns matches. */
	assert_null(ps_cert_jip_ca(&c, NULL, 0));
	ps_cert_free(&c);
}

/* ---- qualified or commercial ------------------------------------------- */

static int type_of(const unsigned char *qc, size_t len)
{
	struct spec s = jan();
	struct ps_cert c;
	X509 *x;
	int t, q;

	s.key = ec_key;
	s.qc = qc;
	s.qc_len = len;
	x = make_cert(&s);
	q = ps_cert_is_qualified(x);
	cert_of(&s, &c);
	t = c.type;
	ps_cert_free(&c);
	X509_free(x);
	assert_int_equal(q ? PS_CERT_QUALIFIED : PS_CERT_COMMERCIAL, t);
	return t;
}

static void test_qualified(void **state)
{
	(void)state;
	assert_int_equal(type_of(qc_compliance, sizeof(qc_compliance)),
			 PS_CERT_QUALIFIED);
	assert_int_equal(type_of(qc_full, sizeof(qc_full)), PS_CERT_QUALIFIED);
	assert_int_equal(type_of(NULL, 0), PS_CERT_COMMERCIAL);
	assert_int_equal(type_of(qc_sscd_only, sizeof(qc_sscd_only)),
			 PS_CERT_COMMERCIAL);
	/* Malformed statements: commercial, no crash. */
	assert_int_equal(type_of(qc_garbage, sizeof(qc_garbage)),
			 PS_CERT_COMMERCIAL);
	assert_int_equal(type_of(qc_odd, sizeof(qc_odd)), PS_CERT_COMMERCIAL);
	assert_int_equal(type_of(qc_compliance, 5), PS_CERT_COMMERCIAL);
}

static void test_type_names(void **state)
{
	(void)state;
	assert_string_equal(ps_cert_type_name(PS_CERT_QUALIFIED), "qualified");
	assert_string_equal(ps_cert_type_name(PS_CERT_COMMERCIAL),
			    "commercial");
	assert_int_equal(ps_cert_type_parse("qualified"), PS_CERT_QUALIFIED);
	assert_int_equal(ps_cert_type_parse("commercial"), PS_CERT_COMMERCIAL);
	assert_int_equal(ps_cert_type_parse("Qualified"), -1);
	assert_int_equal(ps_cert_type_parse(""), -1);
	assert_int_equal(ps_cert_type_parse(NULL), -1);
}

/* ---- bad DER --------------------------------------------------------------
 */

static void assert_bad_der(const unsigned char *der, size_t len)
{
	struct ps_cert c;
	struct ps_err err;

	memset(&c, 0x5a, sizeof(c));
	ps_err_clear(&err);
	assert_int_equal(ps_cert_from_der(der, len, &c, &err), PS_EXIT_FAIL);
	assert_int_equal(err.status, PS_EXIT_FAIL);
	assert_string_equal(err.code, "bad-certificate");
	assert_true(err.msg[0] != '\0');
	assert_null(c.x509);
	assert_null(c.serial_hex);
	assert_null(c.subject);
	ps_cert_free(&c); /* harmless */
}

static void test_bad_der(void **state)
{
	struct spec s = jan();
	X509 *x;
	unsigned char *der, *more;
	size_t len;
	static const unsigned char garbage[] = "this is not a certificate";
	static const unsigned char empty_seq[] = { 0x30, 0x00 };

	(void)state;
	s.key = ec_key;
	x = make_cert(&s);
	der = der_of(x, &len);

	assert_bad_der(garbage, sizeof(garbage));
	assert_bad_der(empty_seq, sizeof(empty_seq));
	assert_bad_der(der, 0);
	assert_bad_der(NULL, 0);
	assert_bad_der(NULL, 100);
	/* Truncated. */
	assert_bad_der(der, len - 1);
	assert_bad_der(der, len / 2);
	assert_bad_der(der, 4);
	/* Trailing bytes. */
	more = malloc(len + 3);
	assert_non_null(more);
	memcpy(more, der, len);
	memcpy(more + len, "\x00\x00\x01", 3);
	assert_bad_der(more, len + 1);
	assert_bad_der(more, len + 3);
	/* The exact length is fine. */
	{
		struct ps_cert c;
		struct ps_err err;

		assert_int_equal(ps_cert_from_der(more, len, &c, &err), 0);
		assert_string_equal(c.serial_hex, "0A1B");
		ps_cert_free(&c);
	}
	/* A certificate followed by a second one is still not one. */
	{
		unsigned char *two = realloc(more, 2 * len);

		assert_non_null(two);
		more = two;
	}
	memcpy(more + len, der, len);
	assert_bad_der(more, 2 * len);

	/* A flipped byte in the middle of the TBS length. */
	more[1] ^= 0x01;
	assert_bad_der(more, len);

	free(more);
	OPENSSL_free(der);
	X509_free(x);
}

/* ---- JIP CA names ------------------------------------------------------ */

static void test_jip_ca(void **state)
{
	static const struct ps_jip_ca_map map[] = {
		{ "PostSignum Qualified CA [34]", "PostSignum QCA" },
		{ "PostSignum*", "PostSignum (config)" },
		{ "Test CA ?", "Testovac\xc3\xad" },
	};
	static const struct {
		const char *issuer_cn;
		const char *with_map;
		const char *defaults;
	} t[] = {
		{ "PostSignum Qualified CA 4", "PostSignum QCA", "PostSignum" },
		{ "PostSignum Qualified CA 3", "PostSignum QCA", "PostSignum" },
		{ "PostSignum Qualified CA 2", "PostSignum (config)",
		  "PostSignum" },
		{ "PostSignum Public CA 4", "PostSignum (config)",
		  "PostSignum" },
		{ "I.CA Qualified 2 CA/RSA 02/2016", "I.CA", "I.CA" },
		{ "eIdentity Qualified CA", "eIdentity", "eIdentity" },
		{ "Test CA 7", "Testovac\xc3\xad", NULL },
		{ "Test CA 77", NULL, NULL },
		{ "Some Other CA", NULL, NULL },
		{ "postsignum qualified ca 4", NULL, NULL },
		{ "XPostSignum", NULL, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct ps_cert c;
		const char *got;

		memset(&c, 0, sizeof(c));
		c.issuer_cn = (char *)t[i].issuer_cn;
		got = ps_cert_jip_ca(&c, map, sizeof(map) / sizeof(map[0]));
		if (t[i].with_map)
			assert_string_equal(got, t[i].with_map);
		else if (got)
			fail_msg("%s: %s with the map", t[i].issuer_cn, got);
		got = ps_cert_jip_ca(&c, NULL, 0);
		if (t[i].defaults)
			assert_string_equal(got, t[i].defaults);
		else if (got)
			fail_msg("%s: %s by default", t[i].issuer_cn, got);
		/* n == 0: the map is not looked at. */
		got = ps_cert_jip_ca(&c, map, 0);
		if (t[i].defaults)
			assert_string_equal(got, t[i].defaults);
		else
			assert_null(got);
	}
}

static void test_jip_ca_from_cert(void **state)
{
	struct spec s = jan();
	struct ps_cert c;
	static const struct ps_jip_ca_map first[] = {
		{ "*", "Any" },
		{ "PostSignum*", "Never reached" },
	};

	(void)state;
	s.key = ec_key;
	cert_of(&s, &c);
	assert_string_equal(ps_cert_jip_ca(&c, NULL, 0), "PostSignum");
	assert_string_equal(ps_cert_jip_ca(&c, first, 2), "Any");
	assert_string_equal(ps_cert_jip_ca(&c, first + 1, 1), "Never reached");
	ps_cert_free(&c);
}

/* ---- days left, holders, times ------------------------------------------ */

static void test_days_left(void **state)
{
	static const struct {
		long delta; /* not_after - now */
		long days;
	} t[] = {
		{ 0, 0 },
		{ 1, 0 },
		{ 86399, 0 },
		{ 86400, 1 },
		{ 86401, 1 },
		{ 30L * 86400 + 5, 30 },
		{ 365L * 86400 - 1, 364 },
		{ -1, -1 },
		{ -86399, -1 },
		{ -86400, -1 },
		{ -86401, -2 },
		{ -10L * 86400, -10 },
		{ -10L * 86400 - 1, -11 },
	};
	struct ps_cert c;
	const time_t now = (time_t)1750000000;

	(void)state;
	memset(&c, 0, sizeof(c));
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		c.not_after = now + t[i].delta;
		if (ps_cert_days_left(&c, now) != t[i].days)
			fail_msg("not_after = now %+ld s: %ld days, want %ld",
				 t[i].delta, ps_cert_days_left(&c, now),
				 t[i].days);
	}
}

static void test_days_left_real_cert(void **state)
{
	X509 *x;
	struct spec s = jan();
	struct ps_cert c;
	struct ps_err err;
	time_t now;

	(void)state;
	s.key = ec_key;
	x = make_cert(&s);
	/* Valid for 30 days and 100 s from now. */
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	assert_non_null(
	    X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400 + 100));
	assert_true(X509_sign(x, ec_key, EVP_sha256()) > 0);
	assert_int_equal(ps_cert_from_x509(x, &c, &err), 0);
	now = time(NULL);
	assert_in_range(c.not_after - now, 30L * 86400, 30L * 86400 + 100);
	assert_int_equal(ps_cert_days_left(&c, now), 30);
	assert_int_equal(ps_cert_days_left(&c, c.not_after + 1), -1);
	assert_int_equal(ps_cert_days_left(&c, c.not_before), 30);
	ps_cert_free(&c);
	X509_free(x);
}

static void test_same_holder(void **state)
{
	struct spec s = jan();
	struct ps_cert a, b, com, other, other_sn;

	(void)state;
	s.key = rsa_key;
	cert_of(&s, &a);
	/* A renewal: new key, new serial, new dates, same subject. */
	s.key = ec_key2;
	s.serial_hex = "7F00";
	s.nb = T_NA - 86400;
	s.na = T_NA + 365L * 86400;
	s.san = "email:new@example.cz";
	cert_of(&s, &b);
	s.qc = NULL;
	cert_of(&s, &com);
	s.qc = qc_compliance;
	s.cn = "Jana Nov\xc3\xa1kov\xc3\xa1";
	cert_of(&s, &other);
	s.cn = "Jan Nov\xc3\xa1k";
	s.sn = "P654321";
	cert_of(&s, &other_sn);

	assert_true(ps_cert_same_holder(&a, &b));
	assert_true(ps_cert_same_holder(&b, &a));
	assert_true(ps_cert_same_holder(&a, &a));
	assert_false(ps_cert_same_holder(&a, &com)); /* other type */
	assert_false(ps_cert_same_holder(&com, &a));
	assert_false(ps_cert_same_holder(&a, &other));
	assert_false(ps_cert_same_holder(&a, &other_sn));

	ps_cert_free(&a);
	ps_cert_free(&b);
	ps_cert_free(&com);
	ps_cert_free(&other);
	ps_cert_free(&other_sn);
}

static void test_time_iso(void **state)
{
	char buf[32];
	char tiny[5];

	(void)state;
	ps_time_iso(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	ps_time_iso(T_NB, buf, sizeof(buf));
	assert_string_equal(buf, "2023-11-14T22:13:20Z");
	ps_time_iso((time_t)4102444800, buf, sizeof(buf));
	assert_string_equal(buf, "2100-01-01T00:00:00Z");
	/* 21 bytes is enough. */
	ps_time_iso(T_NA, buf, 21);
	assert_string_equal(buf, "2024-11-13T22:13:20Z");
	/* Too small: something short and terminated, no overflow. */
	memset(tiny, 'X', sizeof(tiny));
	ps_time_iso(T_NA, tiny, sizeof(tiny));
	assert_non_null(memchr(tiny, '\0', sizeof(tiny)));
}

/* ---- serial numbers as people type them -------------------------------- */

static void test_serial_normalise(void **state)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "0a:1b 2c", "0A1B2C" },
		{ "0x0a1b", "0A1B" },
		{ "0X0A1B", "0A1B" },
		{ "A1B", "0A1B" },
		{ "a1b", "0A1B" },
		{ "0A1B2C", "0A1B2C" },
		{ "0a-1b-2c", "0A1B2C" },
		{ "dec:2571", "0A0B" },
		{ "dec:2587", "0A1B" },
		{ "dec:255", "FF" },
		{ "dec:256", "0100" },
		{ "dec:0", "00" },
		{ "dec:10371169445885592353", "8FEDCBA987654321" },
		{ "7", "07" },
		{ "2571", "2571" }, /* hex unless "dec:" */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *hex = (char *)"junk";
		struct ps_err err;
		int rc;

		ps_err_clear(&err);
		rc = ps_serial_normalise(t[i].in, &hex, &err);
		if (rc)
			fail_msg("'%s': %d %s", t[i].in, rc, err.msg);
		assert_non_null(hex);
		assert_string_equal(hex, t[i].out);
		free(hex);
	}
}

static void test_serial_normalise_errors(void **state)
{
	char long_in[301];
	char max_in[257];
	const char *bad[] = { "",	"xyz",	   "0x",     ":",      " : ",
			      "dec:",	"dec:12a", "dec:-5", "dec: 5", "0A1G",
			      "0x0x12", "12_34",   long_in };

	(void)state;
	memset(long_in, 'a', 300);
	long_in[300] = '\0';
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *hex = (char *)"junk";
		struct ps_err err;

		ps_err_clear(&err);
		if (ps_serial_normalise(bad[i], &hex, &err) != PS_EXIT_USAGE)
			fail_msg("'%.40s' was accepted", bad[i]);
		assert_null(hex);
		assert_string_equal(err.code, "bad-serial");
		assert_true(err.hint[0] != '\0');
	}
	{
		char *hex = (char *)"junk";
		struct ps_err err;

		assert_int_equal(ps_serial_normalise(NULL, &hex, &err),
				 PS_EXIT_USAGE);
		assert_null(hex);
	}
	/* 256 characters is the limit. */
	memset(max_in, 'b', 256);
	max_in[256] = '\0';
	{
		char *hex = NULL;
		struct ps_err err;

		assert_int_equal(ps_serial_normalise(max_in, &hex, &err), 0);
		assert_int_equal(strlen(hex), 256);
		assert_int_equal(hex[0], 'B');
		assert_int_equal(hex[255], 'B');
		free(hex);
	}
}

/* ps_serial_normalise exists so that what people type can be compared with
 * serial_hex (the inventory selects certificates with strcmp). Every common
 * spelling of a certificate's serial must therefore give its serial_hex:
 * GnuTLS certtool, Firefox and Windows show the DER bytes of the INTEGER,
 * with the 00 byte that keeps a serial whose high bit is set positive. */
static void test_serial_normalise_matches_cert(void **state)
{
	static const struct {
		const char *cert_serial;
		const char *typed[6];
	} t[] = {
		{ "8FEDCBA987654321",
		  { "8f:ed:cb:a9:87:65:43:21", "0x8FEDCBA987654321",
		    "dec:10371169445885592353", "00:8f:ed:cb:a9:87:65:43:21",
		    "00 8f ed cb a9 87 65 43 21", "008FEDCBA987654321" } },
		{ "0A1B",
		  { "0a:1b", "A1B", "dec:2587", "0x0a1b", "00:0a:1b",
		    "000A1B" } },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct spec s = jan();
		struct ps_cert c;

		s.key = ec_key;
		s.serial_hex = t[i].cert_serial;
		cert_of(&s, &c);
		for (size_t j = 0; j < 6; j++) {
			char *hex = NULL;
			struct ps_err err;
			int same;

			assert_int_equal(
			    ps_serial_normalise(t[i].typed[j], &hex, &err), 0);
			same = strcmp(hex, c.serial_hex) == 0;
			if (!same) {
				char msg[200];

				snprintf(msg, sizeof(msg),
					 "'%s' -> '%s', serial_hex '%s'",
					 t[i].typed[j], hex, c.serial_hex);
				free(hex);
				ps_cert_free(&c);
				fail_msg("%s", msg);
			}
			free(hex);
		}
		ps_cert_free(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qc_der_oids),
		cmocka_unit_test(test_fields_rsa_qualified),
		cmocka_unit_test(test_der_and_x509_agree),
		cmocka_unit_test(test_fields_ec_commercial),
		cmocka_unit_test(test_serials),
		cmocka_unit_test(test_key_id_and_sha256),
		cmocka_unit_test(test_from_x509_takes_reference),
		cmocka_unit_test(test_generalized_time),
		cmocka_unit_test(test_email_sources),
		cmocka_unit_test(test_no_cn),
		cmocka_unit_test(test_qualified),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_bad_der),
		cmocka_unit_test(test_jip_ca),
		cmocka_unit_test(test_jip_ca_from_cert),
		cmocka_unit_test(test_days_left),
		cmocka_unit_test(test_days_left_real_cert),
		cmocka_unit_test(test_same_holder),
		cmocka_unit_test(test_time_iso),
		cmocka_unit_test(test_serial_normalise),
		cmocka_unit_test(test_serial_normalise_errors),
		cmocka_unit_test(test_serial_normalise_matches_cert),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

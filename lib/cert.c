/* psrenew: certificate facts. */
#include <psrenew/cert.h>
#include <psrenew/codec.h>

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/asn1t.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

/* id-etsi-qcs-QcCompliance and id-etsi-qcs-QcType, and the QcType values
 * id-etsi-qct-esign, -eseal and -web (ETSI EN 319 412-5, 4.2.1, 4.2.3) */
#define OID_QC_COMPLIANCE "0.4.0.1862.1.1"
#define OID_QC_TYPE	  "0.4.0.1862.1.6"
static const char *const qct_oid[] = { "0.4.0.1862.1.6.1", "0.4.0.1862.1.6.2",
				       "0.4.0.1862.1.6.3" };
static const char *const qct_name[] = { "esign", "eseal", "web" };

/* QCStatement ::= SEQUENCE { statementId OBJECT IDENTIFIER,
 *     statementInfo ANY DEFINED BY statementId OPTIONAL }
 * QCStatements ::= SEQUENCE OF QCStatement (RFC 3739, 3.2.6): read as
 * OpenSSL's SEQUENCE OF ANY, each element with the template below
 * (QcType ::= SEQUENCE OF OBJECT IDENTIFIER, ETSI EN 319 412-5, has the
 * shape of ExtKeyUsageSyntax: read with OpenSSL's EXTENDED_KEY_USAGE) */
typedef struct {
	ASN1_OBJECT *id;
	ASN1_TYPE *info;
} PS_QCSTMT;

ASN1_SEQUENCE(PS_QCSTMT) = {
	ASN1_SIMPLE(PS_QCSTMT, id, ASN1_OBJECT),
	ASN1_OPT(PS_QCSTMT, info, ASN1_ANY),
} static_ASN1_SEQUENCE_END(PS_QCSTMT)

/* Built-in issuer -> JIP CA names; the config's [jip-ca] comes first.
 * "DEMO PostSignum ...": PostSignum's public demo hierarchy (DEMO
 * PostSignum Root QCA 4, DEMO PostSignum Qualified CA 5), which its test
 * services issue from. */
static const struct ps_jip_ca_map default_jip_ca[] = {
	{ "PostSignum*", "PostSignum" },
	{ "DEMO PostSignum*", "PostSignum" },
	{ "I.CA*", "I.CA" },
	{ "eIdentity*", "eIdentity" },
};

static char *name_utf8(const X509_NAME *name)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s = NULL;
	long n;

	if (!b)
		return NULL;
	if (X509_NAME_print_ex(b, name, 0,
			       XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_get_mem_data(b, &data);
		s = strndup(data, (size_t)n);
	}
	BIO_free(b);
	return s;
}

static char *name_entry_utf8(const X509_NAME *name, int nid)
{
	int i = X509_NAME_get_index_by_NID(name, nid, -1);
	unsigned char *u = NULL;
	char *s;
	int n;

	if (i < 0)
		return NULL;
	n = ASN1_STRING_to_UTF8(
	    &u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n < 0)
		return NULL;
	s = strndup((char *)u, (size_t)n);
	OPENSSL_free(u);
	return s;
}

static char *first_email(const STACK_OF(X509_EXTENSION) * exts,
			 const X509_NAME *subject)
{
	GENERAL_NAMES *gens =
	    X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	char *s = NULL;

	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && !s; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type == GEN_EMAIL)
			s = strndup(
			    (const char *)ASN1_STRING_get0_data(
				g->d.rfc822Name),
			    (size_t)ASN1_STRING_length(g->d.rfc822Name));
	}
	GENERAL_NAMES_free(gens);
	if (!s)
		s = name_entry_utf8(subject, NID_pkcs9_emailAddress);
	return s;
}

static int oid_is(const ASN1_OBJECT *o, const char *txt)
{
	ASN1_OBJECT *t = OBJ_txt2obj(txt, 1);
	int same = t && o && OBJ_cmp(o, t) == 0;

	ASN1_OBJECT_free(t);
	return same;
}

/* The first QcType value that names esign, eseal or web. */
static int qc_type_of(const ASN1_TYPE *info)
{
	const unsigned char *p;
	EXTENDED_KEY_USAGE *oids;
	int type = PS_QC_NONE;

	if (!info || info->type != V_ASN1_SEQUENCE)
		return PS_QC_NONE;
	p = ASN1_STRING_get0_data(info->value.sequence);
	oids = d2i_EXTENDED_KEY_USAGE(NULL, &p,
				      ASN1_STRING_length(info->value.sequence));
	for (int i = 0; oids && i < sk_ASN1_OBJECT_num(oids) && !type; i++)
		for (int k = 0; k < 3 && !type; k++)
			if (oid_is(sk_ASN1_OBJECT_value(oids, i), qct_oid[k]))
				type = PS_QC_ESIGN + k;
	EXTENDED_KEY_USAGE_free(oids);
	return type;
}

/* QcCompliance present (the return) and the QcType (*qc_type). */
static int qc_statements(const STACK_OF(X509_EXTENSION) * exts, int *qc_type)
{
	int idx = X509v3_get_ext_by_NID(exts, NID_qcStatements, -1);
	const ASN1_OCTET_STRING *os;
	const unsigned char *p;
	STACK_OF(ASN1_TYPE) * st;
	int found = 0;

	*qc_type = PS_QC_NONE;
	if (idx < 0)
		return 0;
	os = X509_EXTENSION_get_data(X509v3_get_ext(exts, idx));
	p = ASN1_STRING_get0_data(os);
	st = d2i_ASN1_SEQUENCE_ANY(NULL, &p, ASN1_STRING_length(os));
	for (int i = 0; st && i < sk_ASN1_TYPE_num(st); i++) {
		const ASN1_TYPE *t = sk_ASN1_TYPE_value(st, i);
		PS_QCSTMT *s = NULL;

		if (t->type == V_ASN1_SEQUENCE) {
			/* a SEQUENCE keeps its whole DER, tag included */
			const unsigned char *q =
			    ASN1_STRING_get0_data(t->value.sequence);

			s = (PS_QCSTMT *)ASN1_item_d2i(
			    NULL, &q, ASN1_STRING_length(t->value.sequence),
			    ASN1_ITEM_rptr(PS_QCSTMT));
		}
		if (s && oid_is(s->id, OID_QC_COMPLIANCE))
			found = 1;
		else if (s && oid_is(s->id, OID_QC_TYPE) && !*qc_type)
			*qc_type = qc_type_of(s->info);
		ASN1_item_free((ASN1_VALUE *)s, ASN1_ITEM_rptr(PS_QCSTMT));
	}
	sk_ASN1_TYPE_pop_free(st, ASN1_TYPE_free);
	return found;
}

static int qualified(const STACK_OF(X509_EXTENSION) * exts)
{
	int qc_type;

	return qc_statements(exts, &qc_type);
}

/* Can it log in (TLS client authentication): clientAuth in its extended
 * key usage, or no extended key usage at all (RFC 5280, 4.2.1.12). */
static int login_capable(const STACK_OF(X509_EXTENSION) * exts)
{
	int crit = 0;
	EXTENDED_KEY_USAGE *eku =
	    X509V3_get_d2i(exts, NID_ext_key_usage, &crit, NULL);
	int ok = 0;

	if (!eku)
		return crit == -1; /* -1: absent; else unreadable or twice */
	for (int i = 0; i < sk_ASN1_OBJECT_num(eku) && !ok; i++)
		ok = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku, i)) ==
		     NID_client_auth;
	EXTENDED_KEY_USAGE_free(eku);
	return ok;
}

const char *ps_cert_qc_type_name(int qc_type)
{
	return qc_type >= PS_QC_ESIGN && qc_type <= PS_QC_WEB
		   ? qct_name[qc_type - PS_QC_ESIGN]
		   : NULL;
}

int ps_cert_is_qualified(const X509 *x509)
{
	return x509 ? qualified(X509_get0_extensions(x509)) : 0;
}

const char *ps_cert_type_name(int type)
{
	return type == PS_CERT_QUALIFIED ? "qualified" : "commercial";
}

int ps_cert_type_parse(const char *s)
{
	if (s && strcmp(s, "qualified") == 0)
		return PS_CERT_QUALIFIED;
	if (s && strcmp(s, "commercial") == 0)
		return PS_CERT_COMMERCIAL;
	return -1;
}

static int asn1_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm))
		return -1;
	*out = timegm(&tm);
	return 0;
}

/* A certificate as ps_cert_from_der reads it: X.509's own structure
 * (RFC 5280, 4.1) with the SubjectPublicKeyInfo left as an algorithm and
 * a BIT STRING, so that the key is not decoded. */
typedef struct {
	X509_ALGOR *alg;
	ASN1_BIT_STRING *key;
} PS_SPKI;

ASN1_SEQUENCE(PS_SPKI) = {
	ASN1_SIMPLE(PS_SPKI, alg, X509_ALGOR),
	ASN1_SIMPLE(PS_SPKI, key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(PS_SPKI)

typedef struct {
	ASN1_INTEGER *version;
	ASN1_INTEGER *serial;
	X509_ALGOR *signature;
	X509_NAME *issuer;
	X509_VAL *validity;
	X509_NAME *subject;
	PS_SPKI *spki;
	ASN1_BIT_STRING *issuer_uid;
	ASN1_BIT_STRING *subject_uid;
	STACK_OF(X509_EXTENSION) * exts;
} PS_TBS;

ASN1_SEQUENCE(PS_TBS) = {
	ASN1_EXP_OPT(PS_TBS, version, ASN1_INTEGER, 0),
	ASN1_SIMPLE(PS_TBS, serial, ASN1_INTEGER),
	ASN1_SIMPLE(PS_TBS, signature, X509_ALGOR),
	ASN1_SIMPLE(PS_TBS, issuer, X509_NAME),
	ASN1_SIMPLE(PS_TBS, validity, X509_VAL),
	ASN1_SIMPLE(PS_TBS, subject, X509_NAME),
	ASN1_SIMPLE(PS_TBS, spki, PS_SPKI),
	ASN1_IMP_OPT(PS_TBS, issuer_uid, ASN1_BIT_STRING, 1),
	ASN1_IMP_OPT(PS_TBS, subject_uid, ASN1_BIT_STRING, 2),
	ASN1_EXP_SEQUENCE_OF_OPT(PS_TBS, exts, X509_EXTENSION, 3),
} static_ASN1_SEQUENCE_END(PS_TBS)

typedef struct {
	PS_TBS *tbs;
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *sig;
} PS_X509;

ASN1_SEQUENCE(PS_X509) = {
	ASN1_SIMPLE(PS_X509, tbs, PS_TBS),
	ASN1_SIMPLE(PS_X509, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(PS_X509, sig, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(PS_X509)

/* Key type and id from a decoded key (certificates from ps_cert_from_x509). */
static void key_facts(X509 *x, struct ps_cert *c)
{
	EVP_PKEY *pk = X509_get0_pubkey(x);
	const ASN1_BIT_STRING *bits = X509_get0_pubkey_bitstr(x);
	char curve[24];
	size_t clen = 0;

	snprintf(c->key_type, sizeof(c->key_type), "unknown");
	if (pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA)
		snprintf(c->key_type, sizeof(c->key_type), "rsa:%d",
			 EVP_PKEY_get_bits(pk));
	else if (pk && EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC &&
		 EVP_PKEY_get_utf8_string_param(pk, "group", curve,
						sizeof(curve), &clen))
		snprintf(c->key_type, sizeof(c->key_type), "ec:%s", curve);
	if (bits)
		SHA1(ASN1_STRING_get0_data(bits),
		     (size_t)ASN1_STRING_length(bits), c->key_id);
}

/* The same from the algorithm and the key bits, nothing decoded but the
 * RSA modulus's length: "rsa:BITS" for rsaEncryption, "ec:CURVE" for
 * id-ecPublicKey with a named curve (OpenSSL's short name, as
 * EVP_PKEY_get_utf8_string_param reports it), else "unknown". */
static void key_facts_raw(const PS_SPKI *k, struct ps_cert *c)
{
	const ASN1_OBJECT *oid;
	const void *pval;
	int ptype, nid;
	const unsigned char *bits = ASN1_STRING_get0_data(k->key);
	int len = ASN1_STRING_length(k->key);

	snprintf(c->key_type, sizeof(c->key_type), "unknown");
	X509_ALGOR_get0(&oid, &ptype, &pval, k->alg);
	nid = OBJ_obj2nid(oid);
	if (nid == NID_rsaEncryption) {
		/* RSAPublicKey ::= SEQUENCE { modulus INTEGER, ... } */
		const unsigned char *p = bits;
		STACK_OF(ASN1_TYPE) *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
		const ASN1_TYPE *n = seq && sk_ASN1_TYPE_num(seq) == 2
					 ? sk_ASN1_TYPE_value(seq, 0)
					 : NULL;
		BIGNUM *bn = n && n->type == V_ASN1_INTEGER
				 ? ASN1_INTEGER_to_BN(n->value.integer, NULL)
				 : NULL;

		if (bn && !BN_is_negative(bn))
			snprintf(c->key_type, sizeof(c->key_type), "rsa:%d",
				 BN_num_bits(bn));
		BN_free(bn);
		sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	} else if (nid == NID_X9_62_id_ecPublicKey && ptype == V_ASN1_OBJECT) {
		int curve = OBJ_obj2nid(pval);
		const char *sn = curve != NID_undef ? OBJ_nid2sn(curve) : NULL;

		if (sn)
			snprintf(c->key_type, sizeof(c->key_type), "ec:%s", sn);
	}
	SHA1(bits, (size_t)len, c->key_id);
}

/* Everything but the key facts and the fingerprint. */
static int fill(struct ps_cert *c, const ASN1_INTEGER *serial,
		const X509_NAME *subject, const X509_NAME *issuer,
		const ASN1_TIME *nb, const ASN1_TIME *na,
		const STACK_OF(X509_EXTENSION) * exts, struct ps_err *err)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);

	if (bn) {
		char *h = BN_bn2hex(bn), *d = BN_bn2dec(bn);

		c->serial_hex = h ? strdup(strcmp(h, "0") ? h : "00") : NULL;
		c->serial_dec = d ? strdup(d) : NULL;
		OPENSSL_free(h);
		OPENSSL_free(d);
		BN_free(bn);
	}
	c->subject = name_utf8(subject);
	c->issuer = name_utf8(issuer);
	c->cn = name_entry_utf8(subject, NID_commonName);
	c->issuer_cn = name_entry_utf8(issuer, NID_commonName);
	c->email = first_email(exts, subject);
	c->type = qc_statements(exts, &c->qc_type) ? PS_CERT_QUALIFIED
						   : PS_CERT_COMMERCIAL;
	c->can_login = login_capable(exts);
	c->holder_id = name_entry_utf8(subject, NID_serialNumber);
	if (!c->serial_hex || !c->serial_dec || !c->subject || !c->issuer ||
	    !c->subject_name || !c->der || asn1_time(nb, &c->not_before) ||
	    asn1_time(na, &c->not_after)) {
		ps_cert_free(c);
		return ps_err_set(err, PS_EXIT_FAIL, "bad-certificate", NULL,
				  "the certificate has an unreadable serial, "
				  "name or validity");
	}
	return 0;
}

int ps_cert_from_x509(X509 *x, struct ps_cert *c, struct ps_err *err)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	unsigned char *der = NULL;
	int len, rc;

	memset(c, 0, sizeof(*c));
	if (!X509_up_ref(x))
		return ps_err_nomem(err);
	c->x509 = x;
	len = i2d_X509(x, &der);
	if (len > 0 && (c->der = malloc((size_t)len))) {
		memcpy(c->der, der, (size_t)len);
		c->der_len = (size_t)len;
	}
	OPENSSL_free(der);
	c->subject_name = X509_NAME_dup(X509_get_subject_name(x));
	rc = fill(c, X509_get0_serialNumber(x), X509_get_subject_name(x),
		  X509_get_issuer_name(x), X509_get0_notBefore(x),
		  X509_get0_notAfter(x), X509_get0_extensions(x), err);
	if (rc)
		return rc;
	key_facts(x, c);
	if (X509_digest(x, EVP_sha256(), md, &mdlen) && mdlen == 32)
		ps_hex_to(c->sha256, md, sizeof(md));
	return 0;
}

int ps_cert_from_der(const unsigned char *der, size_t len, struct ps_cert *c,
		     struct ps_err *err)
{
	const unsigned char *p = der;
	PS_X509 *x = NULL;
	unsigned char md[32];
	int rc;

	memset(c, 0, sizeof(*c));
	if (der && len > 0 && len <= 1 << 20)
		x = (PS_X509 *)ASN1_item_d2i(NULL, &p, (long)len,
					     ASN1_ITEM_rptr(PS_X509));
	if (x && p != der + len) { /* trailing bytes */
		ASN1_item_free((ASN1_VALUE *)x, ASN1_ITEM_rptr(PS_X509));
		x = NULL;
	}
	if (!x) {
		ps_err_add_openssl(NULL);
		return ps_err_set(err, PS_EXIT_FAIL, "bad-certificate", NULL,
				  "not a DER certificate");
	}
	c->der = malloc(len);
	if (c->der) {
		memcpy(c->der, der, len);
		c->der_len = len;
	}
	/* The subject moves into c. */
	c->subject_name = x->tbs->subject;
	x->tbs->subject = NULL;
	rc = fill(c, x->tbs->serial, c->subject_name, x->tbs->issuer,
		  x->tbs->validity->notBefore, x->tbs->validity->notAfter,
		  x->tbs->exts, err);
	if (!rc) {
		key_facts_raw(x->tbs->spki, c);
		SHA256(der, len, md);
		ps_hex_to(c->sha256, md, sizeof(md));
	}
	ASN1_item_free((ASN1_VALUE *)x, ASN1_ITEM_rptr(PS_X509));
	return rc;
}

X509 *ps_cert_x509(const struct ps_cert *c)
{
	/* A cache: c is always one of the caller's own, writable structs. */
	struct ps_cert *w = (struct ps_cert *)c;
	const unsigned char *p = c->der;

	if (!c->x509 && c->der)
		w->x509 = d2i_X509(NULL, &p, (long)c->der_len);
	return c->x509;
}

void ps_cert_x509_release(const struct ps_cert *c)
{
	struct ps_cert *w = (struct ps_cert *)c; /* as in ps_cert_x509 */

	if (c->x509 && c->der) {
		X509_free(w->x509);
		w->x509 = NULL;
	}
}

void ps_cert_free(struct ps_cert *c)
{
	if (!c)
		return;
	X509_free(c->x509);
	free(c->der);
	X509_NAME_free(c->subject_name);
	free(c->serial_hex);
	free(c->serial_dec);
	free(c->subject);
	free(c->issuer);
	free(c->cn);
	free(c->issuer_cn);
	free(c->email);
	free(c->holder_id);
	memset(c, 0, sizeof(*c));
}

const char *ps_cert_jip_ca(const struct ps_cert *c,
			   const struct ps_jip_ca_map *map, size_t n)
{
	const char *cn = c->issuer_cn ? c->issuer_cn : "";

	for (size_t i = 0; map && i < n; i++)
		if (fnmatch(map[i].pattern, cn, 0) == 0)
			return map[i].name;
	for (size_t i = 0; i < sizeof(default_jip_ca) / sizeof(*default_jip_ca);
	     i++)
		if (fnmatch(default_jip_ca[i].pattern, cn, 0) == 0)
			return default_jip_ca[i].name;
	return NULL;
}

long ps_cert_days_left(const struct ps_cert *c, time_t now)
{
	double d = difftime(c->not_after, now) / 86400.0;

	return d >= 0 ? (long)d : -(long)(-d + 0.999999);
}

int ps_cert_same_holder(const struct ps_cert *a, const struct ps_cert *b)
{
	return a->type == b->type &&
	       X509_NAME_cmp(a->subject_name, b->subject_name) == 0;
}

int ps_serial_normalise(const char *in, char **hex, struct ps_err *err)
{
	static const char hint[] =
	    "give the serial in hex (0A1B2C, 0a:1b:2c) or as dec:NUMBER";
	size_t n = in ? strlen(in) : 0, j = 0;
	char *out;

	*hex = NULL;
	if (n == 0 || n > 256)
		return ps_err_set(err, PS_EXIT_USAGE, "bad-serial", hint,
				  "empty or overlong serial number");
	if (strncmp(in, "dec:", 4) == 0) {
		BIGNUM *bn = NULL;
		char *h;

		if (strspn(in + 4, "0123456789") != n - 4 || n == 4 ||
		    !BN_dec2bn(&bn, in + 4))
			return ps_err_set(err, PS_EXIT_USAGE, "bad-serial",
					  hint, "'%s' is not a decimal number",
					  in);
		h = BN_bn2hex(bn);
		BN_free(bn);
		if (!h)
			return ps_err_nomem(err);
		*hex = strdup(strcmp(h, "0") ? h : "00");
		OPENSSL_free(h);
		return *hex ? 0 : PS_EXIT_FAIL;
	}
	if (strncasecmp(in, "0x", 2) == 0)
		in += 2;
	out = malloc(n + 2);
	if (!out)
		return ps_err_nomem(err);
	for (const char *p = in; *p; p++) {
		if (*p == ':' || *p == ' ' || *p == '-')
			continue;
		if (!isxdigit((unsigned char)*p)) {
			free(out);
			return ps_err_set(
			    err, PS_EXIT_USAGE, "bad-serial", hint,
			    "'%.80s' is not a hex serial number", in);
		}
		out[j++] = (char)toupper((unsigned char)*p);
	}
	out[j] = '\0';
	if (j == 0) {
		free(out);
		return ps_err_set(err, PS_EXIT_USAGE, "bad-serial", hint,
				  "empty serial number");
	}
	if (j % 2) { /* "A1B" -> "0A1B", as openssl prints it */
		memmove(out + 1, out, j + 1);
		out[0] = '0';
		j++;
	}
	/* Whole leading zero bytes go, as in serial_hex: "000A1B" -> "0A1B". */
	while (j > 2 && out[0] == '0' && out[1] == '0') {
		memmove(out, out + 2, j - 1);
		j -= 2;
	}
	*hex = out;
	return 0;
}

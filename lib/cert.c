/* psrenew: certificate facts. */
#include <psrenew/cert.h>

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

/* id-etsi-qcs-QcCompliance (ETSI EN 319 412-5) */
#define OID_QC_COMPLIANCE "0.4.0.1862.1.1"

/* Built-in issuer -> JIP CA names; the config's [jip-ca] comes first. */
static const struct ps_jip_ca_map default_jip_ca[] = {
	{ "PostSignum*", "PostSignum" },
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

static char *first_email(X509 *x)
{
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
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
		s = name_entry_utf8(X509_get_subject_name(x),
				    NID_pkcs9_emailAddress);
	return s;
}

int ps_cert_is_qualified(const X509 *x509)
{
	int idx = X509_get_ext_by_NID(x509, NID_qcStatements, -1);
	const ASN1_OCTET_STRING *os;
	const unsigned char *p;
	STACK_OF(ASN1_TYPE) * stmts;
	ASN1_OBJECT *qcc;
	int found = 0;

	if (idx < 0)
		return 0;
	os = X509_EXTENSION_get_data(X509_get_ext(x509, idx));
	p = ASN1_STRING_get0_data(os);
	stmts = d2i_ASN1_SEQUENCE_ANY(NULL, &p, ASN1_STRING_length(os));
	qcc = OBJ_txt2obj(OID_QC_COMPLIANCE, 1);
	for (int i = 0; stmts && qcc && i < sk_ASN1_TYPE_num(stmts) && !found;
	     i++) {
		const ASN1_TYPE *t = sk_ASN1_TYPE_value(stmts, i);
		STACK_OF(ASN1_TYPE) * st;
		const ASN1_TYPE *id;

		if (t->type != V_ASN1_SEQUENCE)
			continue;
		p = ASN1_STRING_get0_data(t->value.sequence);
		st = d2i_ASN1_SEQUENCE_ANY(
		    NULL, &p, ASN1_STRING_length(t->value.sequence));
		id = st && sk_ASN1_TYPE_num(st) > 0 ? sk_ASN1_TYPE_value(st, 0)
						    : NULL;
		if (id && id->type == V_ASN1_OBJECT &&
		    OBJ_cmp(id->value.object, qcc) == 0)
			found = 1;
		sk_ASN1_TYPE_pop_free(st, ASN1_TYPE_free);
	}
	sk_ASN1_TYPE_pop_free(stmts, ASN1_TYPE_free);
	ASN1_OBJECT_free(qcc);
	return found;
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

int ps_cert_from_x509(X509 *x, struct ps_cert *c, struct ps_err *err)
{
	BIGNUM *bn;
	unsigned char md[32];
	unsigned int mdlen = 0;

	memset(c, 0, sizeof(*c));
	if (!X509_up_ref(x))
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "out of memory");
	c->x509 = x;
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	if (bn) {
		char *h = BN_bn2hex(bn), *d = BN_bn2dec(bn);

		c->serial_hex = h ? strdup(strcmp(h, "0") ? h : "00") : NULL;
		c->serial_dec = d ? strdup(d) : NULL;
		OPENSSL_free(h);
		OPENSSL_free(d);
		BN_free(bn);
	}
	c->subject = name_utf8(X509_get_subject_name(x));
	c->issuer = name_utf8(X509_get_issuer_name(x));
	c->cn = name_entry_utf8(X509_get_subject_name(x), NID_commonName);
	c->issuer_cn = name_entry_utf8(X509_get_issuer_name(x), NID_commonName);
	c->email = first_email(x);
	c->type =
	    ps_cert_is_qualified(x) ? PS_CERT_QUALIFIED : PS_CERT_COMMERCIAL;
	if (!c->serial_hex || !c->serial_dec || !c->subject || !c->issuer ||
	    asn1_time(X509_get0_notBefore(x), &c->not_before) ||
	    asn1_time(X509_get0_notAfter(x), &c->not_after)) {
		ps_cert_free(c);
		return ps_err_set(err, PS_EXIT_FAIL, "bad-certificate", NULL,
				  "the certificate has an unreadable serial, "
				  "name or validity");
	}
	key_facts(x, c);
	if (X509_digest(x, EVP_sha256(), md, &mdlen) && mdlen == 32)
		for (unsigned i = 0; i < 32; i++)
			snprintf(c->sha256 + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int ps_cert_from_der(const unsigned char *der, size_t len, struct ps_cert *c,
		     struct ps_err *err)
{
	const unsigned char *p = der;
	X509 *x = NULL;
	int rc;

	memset(c, 0, sizeof(*c));
	if (der && len > 0 && len <= 1 << 20)
		x = d2i_X509(NULL, &p, (long)len);
	if (x && p != der + len) { /* trailing bytes */
		X509_free(x);
		x = NULL;
	}
	if (!x) {
		ps_err_add_openssl(NULL);
		return ps_err_set(err, PS_EXIT_FAIL, "bad-certificate", NULL,
				  "not a DER certificate");
	}
	rc = ps_cert_from_x509(x, c, err);
	X509_free(x);
	return rc;
}

void ps_cert_free(struct ps_cert *c)
{
	if (!c)
		return;
	X509_free(c->x509);
	free(c->serial_hex);
	free(c->serial_dec);
	free(c->subject);
	free(c->issuer);
	free(c->cn);
	free(c->issuer_cn);
	free(c->email);
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
	       X509_NAME_cmp(X509_get_subject_name(a->x509),
			     X509_get_subject_name(b->x509)) == 0;
}

void ps_time_iso(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "?");
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
			return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
					  "out of memory");
		*hex = strdup(strcmp(h, "0") ? h : "00");
		OPENSSL_free(h);
		return *hex ? 0 : PS_EXIT_FAIL;
	}
	if (strncasecmp(in, "0x", 2) == 0)
		in += 2;
	out = malloc(n + 2);
	if (!out)
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "out of memory");
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

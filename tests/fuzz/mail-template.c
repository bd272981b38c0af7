/* libFuzzer harness "mail-template": the text of the request e-mail
 * (ps_mail_fill) with the input as the template ([mail] template in
 * psrenew.conf(5)); once with every value set, once with none. The filled
 * text is then the subject, the sender's display name and the body of a
 * signed message (ps_mail_build), whose header lines must stay within 78
 * characters and encoded-words within 75, CRLF throughout. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <psrenew/mail.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A throwaway signer, made once. */
static void signer(X509 **cert, EVP_PKEY **key)
{
	static X509 *x;
	static EVP_PKEY *k;

	if (!x) {
		k = EVP_EC_gen("P-256");
		x = X509_new();
		if (!k || !x || !X509_set_version(x, 2) ||
		    !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
		    !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
		    !X509_gmtime_adj(X509_getm_notAfter(x), 86400) ||
		    !X509_set_pubkey(x, k) || !X509_sign(x, k, EVP_sha256()))
			abort();
	}
	*cert = x;
	*key = k;
}

/* The header lines (to the first empty line) within 78 characters, the
 * encoded-words within 75, no line end but CRLF in the whole message. */
static void check_message(const char *m, size_t n)
{
	const char *end = strstr(m, "\r\n\r\n"), *p;

	if (!end || strlen(m) != n)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((m[i] == '\n' && (i == 0 || m[i - 1] != '\r')) ||
		    (m[i] == '\r' && m[i + 1] != '\n'))
			abort();
	for (p = m; p < end; p = strstr(p, "\r\n") + 2)
		if (strstr(p, "\r\n") - p > 78)
			abort();
	for (p = m; (p = strstr(p, "=?UTF-8?B?")) && p < end; p++)
		if (strstr(p + 10, "?=") + 2 - p > 75)
			abort();
}

static void build(const char *text)
{
	struct ps_mail_msg m = {
		.from_name = text,
		.from = "jan.novak@example.cz",
		.to = "podatelna.postsignum@cpost.cz",
		.subject = text,
		.body = text,
		.attach_name = "zadost-4A658256A534ECDDE51C8748AA310266.req",
		.attach_type = "application/pkcs10",
		.attach = (const unsigned char *)"0",
		.attach_len = 1,
		.message_id = "psrenew.1@example.cz",
	};
	struct ps_err err = { 0 };
	X509 *cert;
	EVP_PKEY *key;
	char *out = NULL;
	size_t len = 0;

	signer(&cert, &key);
	if (ps_mail_build(&m, cert, key, NULL, &out, &len, &err) == 0)
		check_message(out, len);
	else if (!strpbrk(text, "\r\n"))
		abort(); /* only a line break in them is refused */
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct ps_mail_vars all = {
		.name = "Jan Novák",
		.type = "kvalifikovaný",
		.serial = "4A658256A534ECDDE51C8748AA310266",
		.not_after = "2026-12-04T03:43:17Z",
		.email = "jan.novak@example.cz",
		.file = "zadost-4A658256A534ECDDE51C8748AA310266.req",
	};
	static const struct ps_mail_vars none = { 0 };
	char *tmpl = malloc(size + 1), *out;

	if (!tmpl)
		abort();
	memcpy(tmpl, data, size);
	tmpl[size] = '\0';
	out = ps_mail_fill(tmpl, &all);
	if (!out)
		abort();
	if (strlen(out) <= 1024)
		build(out);
	free(out);
	out = ps_mail_fill(tmpl, &none);
	/* No values: only the {...} placeholders go, nothing is added. */
	if (!out || strlen(out) > strlen(tmpl))
		abort();
	free(out);
	free(tmpl);
	return 0;
}

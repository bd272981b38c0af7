/* libFuzzer harness "certs": certificates as CAs and users hand them in --
 * PEM (CERTIFICATE and PKCS7 blocks), DER, DER PKCS#7 certs-only
 * (ps_certs_parse) -- and the facts psrenew derives from each one
 * (ps_cert_from_x509: serial, names, e-mail, type, key, fingerprint; the
 * JIP CA name; days left; PEM again). The input is also tried as one DER
 * certificate (ps_cert_from_der), as ps-status reads CKA_VALUE. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/x509.h>

#include <psrenew/cert.h>
#include <psrenew/certio.h>
#include <psrenew/codec.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void facts(struct ps_cert *c)
{
	char when[32];

	ps_cert_jip_ca(c, NULL, 0);
	ps_cert_days_left(c, (time_t)1764547200); /* 2025-12-01 */
	ps_cert_is_qualified(ps_cert_x509(c));
	ps_cert_type_name(c->type);
	ps_time_iso(c->not_after, when, sizeof(when));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	STACK_OF(X509) *sk = NULL;
	struct ps_cert first, c;
	struct ps_err err;

	ps_err_clear(&err);
	if (ps_cert_from_der(data, size, &c, &err) == 0) {
		facts(&c);
		ps_cert_free(&c);
	} else if (!err.msg[0]) {
		abort();
	}
	ps_err_clear(&err);
	if (ps_certs_parse(data, size, &sk, &err) != 0) {
		if (sk || !err.msg[0])
			abort();
		return 0;
	}
	if (sk_X509_num(sk) < 1)
		abort();
	for (int i = 0; i < sk_X509_num(sk); i++) {
		X509 *x = sk_X509_value(sk, i);
		char *pem;

		if (ps_cert_from_x509(x, i ? &c : &first, &err) != 0) {
			if (!err.msg[0])
				abort();
			if (i == 0)
				goto out;
			continue;
		}
		facts(i ? &c : &first);
		if (i) {
			ps_cert_same_holder(&first, &c);
			ps_cert_free(&c);
		}
		pem = ps_cert_pem(x);
		free(pem);
	}
	ps_cert_free(&first);
out:
	sk_X509_pop_free(sk, X509_free);
	return 0;
}

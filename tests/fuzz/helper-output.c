/* libFuzzer harness "helper-output": what a certmonger CA helper prints on
 * stdout, and its exit status, as ca_helper.c maps them into a CA reply
 * (map_status, static: this file includes lib/ca_helper.c to reach it).
 * Input: the first byte is the exit status (0-255), the rest the output.
 * The output reaches map_status as collect() leaves it: NUL-terminated
 * (and possibly holding NUL bytes of its own). An issued reply's
 * certificates are then read as ps-fetch reads them. */
#include "../../lib/ca_helper.c"

#include <stdint.h>

#include <psrenew/certio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_ca_reply r;
	char *out;

	if (size < 1)
		return 0;
	out = malloc(size);
	if (!out)
		abort();
	memcpy(out, data + 1, size - 1);
	out[size - 1] = '\0';
	memset(&r, 0, sizeof(r));
	r.delay = -1;
	r.status = PS_CA_FAILED;
	map_status(data[0], out, &r);
	ps_ca_status_name(r.status);
	if (r.status == PS_CA_PENDING &&
	    (r.delay < -1 || r.delay > 30L * 86400))
		abort();
	if (r.status == PS_CA_ISSUED && r.certs_pem) {
		STACK_OF(X509) *sk = NULL;

		if (ps_certs_parse((const unsigned char *)r.certs_pem,
				   strlen(r.certs_pem), &sk, NULL) == 0)
			sk_X509_pop_free(sk, X509_free);
	}
	ps_ca_reply_free(&r);
	free(out);
	return 0;
}

/* libFuzzer harness "est-body": the body of an EST server's answer
 * (RFC 7030), as ca_est.c maps it into a CA reply. This file includes
 * lib/ca_est.c to reach its static functions. The input is the body of a
 * 200 (base64 of a DER PKCS#7 certs-only: certs_from_body) and then of the
 * other statuses the channel knows (202, 429, 4xx, 5xx: map, message). */
#include "../../lib/ca_est.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = { 200, 202, 400, 404, 429, 500, 503 };
	struct ps_http_resp r;
	struct ps_ca_reply reply;
	char *body = malloc(size + 1);

	if (!body)
		abort();
	memcpy(body, data, size);
	body[size] = '\0';
	memset(&r, 0, sizeof(r));
	r.body = body;
	r.len = size;
	r.content_type = (char *)"application/pkcs7-mime; smime-type=certs-only";
	r.retry_after = -1;
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		memset(&reply, 0, sizeof(reply));
		reply.delay = -1;
		reply.status = PS_CA_FAILED;
		r.status = statuses[i];
		r.retry_after = i % 2 ? 120 : -1;
		map(&r, &reply);
		if (reply.status == PS_CA_ISSUED &&
		    (!reply.certs_pem ||
		     !strstr(reply.certs_pem, "-----BEGIN CERTIFICATE-----")))
			abort();
		ps_ca_reply_free(&reply);
	}
	free(body);
	return 0;
}

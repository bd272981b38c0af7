/* libFuzzer harness "mail-template": the text of the request e-mail
 * (ps_mail_fill) with the input as the template ([mail] template in
 * psrenew.conf(5)); once with every value set, once with none. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <psrenew/mail.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	free(out);
	out = ps_mail_fill(tmpl, &none);
	/* No values: only the {...} placeholders go, nothing is added. */
	if (!out || strlen(out) > strlen(tmpl))
		abort();
	free(out);
	free(tmpl);
	return 0;
}

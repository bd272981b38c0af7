/* libFuzzer harness "serial": serial numbers as people type them
 * (ps_serial_normalise). A result must be non-empty upper-case hex of even
 * length, and normalising it again must give it back unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <psrenew/cert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *hex = NULL, *again = NULL;
	struct ps_err err;
	size_t n;

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	ps_err_clear(&err);
	if (ps_serial_normalise(s, &hex, &err) != 0) {
		if (hex || !err.msg[0])
			abort();
		free(s);
		return 0;
	}
	n = strlen(hex);
	if (n == 0 || n % 2 || strspn(hex, "0123456789ABCDEF") != n) {
		fprintf(stderr, "serial '%s' normalised to '%s'\n", s, hex);
		abort();
	}
	if (ps_serial_normalise(hex, &again, &err) != 0 ||
	    strcmp(hex, again) != 0) {
		fprintf(stderr, "serial '%s' -> '%s' -> '%s'\n", s, hex,
			again ? again : "(refused)");
		abort();
	}
	free(again);
	free(hex);
	free(s);
	return 0;
}

/* libFuzzer harness "secret": a PIN or password read from "fd:N"
 * (ps_secret_read), N being a pipe that holds the input. The result must be
 * one line of at most PS_SECRET_MAX bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <psrenew/secret.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char source[32], *secret = NULL;
	struct ps_err err;
	size_t off = 0;
	int p[2];

	/* A pipe holds 64 KiB; -max_len keeps inputs far below that, so
	 * writing everything before reading cannot block. */
	if (size > 60000)
		return 0;
	if (pipe(p) < 0)
		abort();
	while (off < size) {
		ssize_t w = write(p[1], data + off, size - off);

		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	close(p[1]);
	snprintf(source, sizeof(source), "fd:%d", p[0]);
	ps_err_clear(&err);
	if (ps_secret_read(source, NULL, &secret, &err) == 0) {
		size_t n = strlen(secret);

		if (n > PS_SECRET_MAX || memchr(secret, '\n', n))
			abort();
		ps_secret_free(secret);
	} else if (secret || !err.msg[0]) {
		abort();
	}
	close(p[0]);
	return 0;
}

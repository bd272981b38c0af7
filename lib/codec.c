/* psrenew: codecs - hex, base64 and ISO 8601 UTC times. */
#include <psrenew/codec.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/evp.h>

void ps_hex_to(char *out, const unsigned char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[n * 2] = '\0';
}

char *ps_hex(const unsigned char *p, size_t n)
{
	char *s = malloc(n * 2 + 1);

	if (s)
		ps_hex_to(s, p, n);
	return s;
}

int ps_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ps_unhex(const char *hex, unsigned char *out, size_t cap, size_t *len)
{
	size_t n = hex ? strlen(hex) : 0;

	if (n == 0 || n % 2 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = ps_hex_digit(hex[2 * i]),
		    lo = ps_hex_digit(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	*len = n / 2;
	return 0;
}

int ps_base64_decode(const char *in, size_t len, unsigned char **out,
		     size_t *outlen)
{
	char *clean = malloc(len + 1);
	size_t k = 0;
	BIO *b64, *mem;
	int n;

	*out = NULL;
	if (!clean)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (isspace((unsigned char)in[i]))
			continue;
		if (!isalnum((unsigned char)in[i]) && !strchr("+/=", in[i])) {
			free(clean);
			return -1;
		}
		clean[k++] = in[i];
	}
	*out = malloc(k + 1);
	mem = BIO_new_mem_buf(clean, (int)k);
	b64 = BIO_new(BIO_f_base64());
	if (!*out || !mem || !b64 || k == 0) {
		BIO_free(mem);
		BIO_free(b64);
		free(clean);
		free(*out);
		*out = NULL;
		return -1;
	}
	BIO_set_flags(b64, BIO_FLAGS_BASE64_NO_NL);
	BIO_push(b64, mem);
	n = BIO_read(b64, *out, (int)k);
	BIO_free_all(b64);
	free(clean);
	if (n <= 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	*outlen = (size_t)n;
	return 0;
}

char *ps_base64_encode(const unsigned char *in, size_t len)
{
	BIO *b64 = BIO_new(BIO_f_base64()), *mem = BIO_new(BIO_s_mem());
	BUF_MEM *bm;
	char *s = NULL;

	if (!b64 || !mem) {
		BIO_free(b64);
		BIO_free(mem);
		return NULL;
	}
	BIO_push(b64, mem);
	if (BIO_write(b64, in, (int)len) == (int)len && BIO_flush(b64) == 1) {
		BIO_get_mem_ptr(mem, &bm);
		/* Nothing to encode leaves the BIO without a buffer. */
		s = bm->length ? strndup(bm->data, bm->length) : strdup("");
	}
	BIO_free_all(b64);
	return s;
}

void ps_time_iso(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) ||
	    !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "?");
}

time_t ps_time_parse(const char *s)
{
	struct tm tm;
	char *end;

	memset(&tm, 0, sizeof(tm));
	if (!s)
		return -1;
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return -1;
	return timegm(&tm);
}

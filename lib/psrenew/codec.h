/* psrenew: codecs - hex, base64 and ISO 8601 UTC times (internal). */
#ifndef PSRENEW_CODEC_H
#define PSRENEW_CODEC_H

#include <stddef.h>
#include <time.h>

/* Hex of a byte string, lower case (malloc'ed). */
char *ps_hex(const unsigned char *p, size_t n);
/* The same into out, which holds 2 * n + 1 characters. */
void ps_hex_to(char *out, const unsigned char *p, size_t n);
/* The value of one hex digit (either case), -1 when c is none. */
int ps_hex_digit(int c);
/* The bytes of a hex string (either case, no separators) into out (cap
 * bytes); -1 when it is empty, odd, too long or not hex. */
int ps_unhex(const char *hex, unsigned char *out, size_t cap, size_t *len);

/* Base64 (any line breaks) to bytes; -1 on bad input. */
int ps_base64_decode(const char *in, size_t len, unsigned char **out,
		     size_t *outlen);
/* Bytes to base64 with 64-column lines. */
char *ps_base64_encode(const unsigned char *in, size_t len);

/* "2026-12-04T10:00:00Z" into buf (at least 21 bytes); "?" when t has no
 * such form. */
void ps_time_iso(time_t t, char *buf, size_t len);
/* Parses an ISO 8601 UTC time written by ps_time_iso; -1 on error. */
time_t ps_time_parse(const char *s);

#endif

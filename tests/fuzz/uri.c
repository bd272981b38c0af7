/* libFuzzer harness "uri": RFC 7512 pkcs11: URIs (ps_uri_parse). A URI that
 * parses is formatted back as psrenew writes token and object URIs in its
 * records (ps_uri_format_token, ps_uri_format_object) and parsed again:
 * that must succeed and give the same token and object attributes, or the
 * harness aborts. (Attributes that formatting does not write -- library-*,
 * slot-*, query attributes -- are not compared; an empty value is the same
 * as an absent one, since formatting leaves empty values out.) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <psrenew/uri.h>

#define URI_MAX 4096 /* lib/uri.c */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static void check(const char *in, const char *out, const struct ps_uri *u,
		  const struct ps_uri *v, int with_object)
{
	const char *bad = NULL;

	if (!same(u->token, v->token))
		bad = "token";
	else if (!same(u->manufacturer, v->manufacturer))
		bad = "manufacturer";
	else if (!same(u->serial, v->serial))
		bad = "serial";
	else if (!same(u->model, v->model))
		bad = "model";
	else if (with_object && !same(u->object, v->object))
		bad = "object";
	else if (with_object && u->type != v->type)
		bad = "type";
	else if (with_object && (u->id_len != v->id_len ||
				 (u->id_len && (!v->has_id ||
						memcmp(u->id, v->id, u->id_len)))))
		bad = "id";
	if (bad) {
		fprintf(stderr, "uri round trip changed %s: '%s' -> '%s'\n",
			bad, in, out);
		abort();
	}
}

static void round_trip(const char *in, const char *out,
		       const struct ps_uri *u, int with_object)
{
	struct ps_uri v;
	struct ps_err err;

	/* The parser refuses more than URI_MAX bytes: a URI that only got
	 * that long by %-escaping a long input is not a round-trip failure
	 * (token fields are 32 bytes at most). */
	if (strlen(out) > URI_MAX)
		return;
	ps_err_clear(&err);
	if (ps_uri_parse(out, &v, &err) != 0) {
		fprintf(stderr,
			"uri round trip failed: '%s' -> '%s' is refused: %s\n",
			in, out, err.msg);
		abort();
	}
	check(in, out, u, &v, with_object);
	ps_uri_free(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *tok, *obj;
	struct ps_uri u;
	struct ps_err err;

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	ps_err_clear(&err);
	if (ps_uri_parse(s, &u, &err) != 0) {
		if (!err.msg[0])
			abort();
		free(s);
		return 0;
	}
	ps_uri_has_token_attrs(&u);
	tok = ps_uri_format_token(u.model, u.manufacturer, u.serial, u.token);
	if (!tok)
		abort();
	obj = ps_uri_format_object(tok, u.id, u.id_len, u.object, u.type);
	if (!obj)
		abort();
	round_trip(s, tok, &u, 0);
	round_trip(s, obj, &u, 1);
	free(tok);
	free(obj);
	ps_uri_free(&u);
	free(s);
	return 0;
}

/* Unit tests: lib/uri.c (RFC 7512 "pkcs11:" URIs). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <psrenew/uri.h>

/* Every field of u is empty, as after ps_uri_init(). */
static void assert_uri_empty(const struct ps_uri *u)
{
	assert_null(u->token);
	assert_null(u->manufacturer);
	assert_null(u->serial);
	assert_null(u->model);
	assert_null(u->lib_manufacturer);
	assert_null(u->lib_description);
	assert_null(u->lib_version);
	assert_null(u->slot_description);
	assert_null(u->slot_manufacturer);
	assert_int_equal(u->slot_id, -1);
	assert_null(u->object);
	assert_null(u->id);
	assert_int_equal(u->id_len, 0);
	assert_int_equal(u->has_id, 0);
	assert_int_equal(u->type, PS_OBJ_ANY);
	assert_null(u->module_path);
	assert_null(u->module_name);
	assert_null(u->pin_source);
}

/* Parses s, which must be refused as a usage error with the given code. */
static void assert_refused(const char *s, const char *code)
{
	struct ps_uri u;
	struct ps_err err;

	memset(&u, 0x5a, sizeof(u)); /* need not be initialised */
	ps_err_clear(&err);
	if (ps_uri_parse(s, &u, &err) != PS_EXIT_USAGE)
		fail_msg("'%.100s' was not refused", s ? s : "(null)");
	assert_int_equal(err.status, PS_EXIT_USAGE);
	assert_string_equal(err.code, code);
	assert_true(err.msg[0] != '\0');
	assert_uri_empty(&u);
	ps_uri_free(&u); /* harmless on an empty URI */
}

static void parse_ok(const char *s, struct ps_uri *u)
{
	struct ps_err err;
	int rc;

	memset(u, 0xa5, sizeof(*u));
	ps_err_clear(&err);
	rc = ps_uri_parse(s, u, &err);
	if (rc != 0)
		fail_msg("'%s' refused: %d %s: %s", s, rc, err.code, err.msg);
}

/* ---- RFC 7512 section 3 examples ------------------------------------- */

static void test_rfc_empty(void **state)
{
	struct ps_uri u;

	(void)state;
	parse_ok("pkcs11:", &u);
	assert_uri_empty(&u);
	assert_false(ps_uri_has_token_attrs(&u));
	ps_uri_free(&u);
}

static void test_rfc_object_type(void **state)
{
	struct ps_uri u;

	(void)state;
	parse_ok("pkcs11:object=my-pubkey;type=public", &u);
	assert_string_equal(u.object, "my-pubkey");
	assert_int_equal(u.type, PS_OBJ_PUBLIC);
	assert_null(u.token);
	assert_int_equal(u.has_id, 0);
	ps_uri_free(&u);

	parse_ok("pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
		 &u);
	assert_string_equal(u.object, "my-key");
	assert_int_equal(u.type, PS_OBJ_PRIVATE);
	assert_string_equal(u.pin_source, "file:/etc/token");
	ps_uri_free(&u);
}

static void test_rfc_full_token(void **state)
{
	static const unsigned char id[] = { 0x69, 0x95, 0x3e, 0x5c,
					    0xf4, 0xbd, 0xec, 0x91 };
	struct ps_uri u;

	(void)state;
	parse_ok("pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;"
		 "manufacturer=Snake%20Oil,%20Inc.;"
		 "model=1.0;"
		 "object=my-certificate;"
		 "type=cert;"
		 "id=%69%95%3E%5C%F4%BD%EC%91;"
		 "serial="
		 "?pin-source=file:/etc/token_pin",
		 &u);
	assert_string_equal(u.token, "The Software PKCS#11 Softtoken");
	assert_string_equal(u.manufacturer, "Snake Oil, Inc.");
	assert_string_equal(u.model, "1.0");
	assert_string_equal(u.object, "my-certificate");
	assert_int_equal(u.type, PS_OBJ_CERT);
	assert_int_equal(u.has_id, 1);
	assert_int_equal(u.id_len, sizeof(id));
	assert_memory_equal(u.id, id, sizeof(id));
	assert_non_null(u.serial);
	assert_string_equal(u.serial, "");
	assert_string_equal(u.pin_source, "file:/etc/token_pin");
	assert_null(u.module_path);
	assert_int_equal(u.slot_id, -1);
	assert_true(ps_uri_has_token_attrs(&u));
	ps_uri_free(&u);
}

static void test_rfc_module(void **state)
{
	struct ps_uri u;

	(void)state;
	parse_ok("pkcs11:object=my-sign-key;type=private?module-name=mypkcs11",
		 &u);
	assert_string_equal(u.module_name, "mypkcs11");
	assert_null(u.module_path);
	ps_uri_free(&u);

	parse_ok("pkcs11:object=my-sign-key;type=private"
		 "?module-path=/mnt/libmypkcs11.so.1",
		 &u);
	assert_string_equal(u.module_path, "/mnt/libmypkcs11.so.1");
	assert_null(u.module_name);
	ps_uri_free(&u);

	/* Both query attributes, '&'-separated, %-escapes decoded. */
	parse_ok("pkcs11:token=T?module-path=/usr/lib/x86_64-linux-gnu/"
		 "opensc%2Dpkcs11.so&pin-source=file:/run/pin%20file",
		 &u);
	assert_string_equal(u.token, "T");
	assert_string_equal(u.module_path,
			    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so");
	assert_string_equal(u.pin_source, "file:/run/pin file");
	ps_uri_free(&u);
}

static void test_rfc_slot_and_library(void **state)
{
	struct ps_uri u;

	(void)state;
	parse_ok("pkcs11:slot-description=Sun%20Metaslot", &u);
	assert_string_equal(u.slot_description, "Sun Metaslot");
	assert_true(ps_uri_has_token_attrs(&u));
	ps_uri_free(&u);

	parse_ok("pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;"
		 "library-description=Soft%20Token%20Library;"
		 "library-version=1.23",
		 &u);
	assert_string_equal(u.lib_manufacturer, "Snake Oil, Inc.");
	assert_string_equal(u.lib_description, "Soft Token Library");
	assert_string_equal(u.lib_version, "1.23");
	assert_false(ps_uri_has_token_attrs(&u));
	ps_uri_free(&u);

	parse_ok("pkcs11:slot-manufacturer=Acme;slot-id=7", &u);
	assert_string_equal(u.slot_manufacturer, "Acme");
	assert_int_equal(u.slot_id, 7);
	ps_uri_free(&u);

	parse_ok("pkcs11:slot-id=0", &u);
	assert_int_equal(u.slot_id, 0);
	assert_true(ps_uri_has_token_attrs(&u));
	ps_uri_free(&u);
}

static void test_rfc_escapes(void **state)
{
	struct ps_uri u;

	(void)state;
	parse_ok("pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;"
		 "object=my-certificate;type=cert",
		 &u);
	assert_string_equal(u.token, "A name with a substring %;");
	ps_uri_free(&u);

	parse_ok("pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20"
		 "%C3%A1;object=my-certificate;type=cert",
		 &u);
	assert_string_equal(u.token,
			    "Name with a small A with acute: \xc3\xa1");
	ps_uri_free(&u);

	/* Lower-case hex digits, and an escape right at the very end. */
	parse_ok("pkcs11:token=Nov%c3%a1k;serial=%41", &u);
	assert_string_equal(u.token, "Nov\xc3\xa1k");
	assert_string_equal(u.serial, "A");
	ps_uri_free(&u);

	/* An escaped separator is data, not a separator. */
	parse_ok("pkcs11:object=a%3Btype=cert", &u);
	assert_string_equal(u.object, "a;type=cert");
	assert_int_equal(u.type, PS_OBJ_ANY);
	ps_uri_free(&u);

	/* A literal '=' in a value is fine: only the first one splits. */
	parse_ok("pkcs11:object=a=b", &u);
	assert_string_equal(u.object, "a=b");
	ps_uri_free(&u);

	/* id bytes may be anything, NUL included. */
	parse_ok("pkcs11:id=%00%FFa", &u);
	assert_int_equal(u.has_id, 1);
	assert_int_equal(u.id_len, 3);
	assert_memory_equal(u.id, "\x00\xff" "a", 3);
	ps_uri_free(&u);

	/* An empty id is given (has_id) but empty. */
	parse_ok("pkcs11:id=", &u);
	assert_int_equal(u.has_id, 1);
	assert_int_equal(u.id_len, 0);
	ps_uri_free(&u);
}

static void test_types(void **state)
{
	static const struct {
		const char *uri;
		int type;
	} t[] = {
		{ "pkcs11:type=cert", PS_OBJ_CERT },
		{ "pkcs11:type=private", PS_OBJ_PRIVATE },
		{ "pkcs11:type=public", PS_OBJ_PUBLIC },
		{ "pkcs11:type=secret-key", PS_OBJ_SECRET },
		{ "pkcs11:type=data", PS_OBJ_DATA },
		{ "pkcs11:type=%63ert", PS_OBJ_CERT },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct ps_uri u;

		parse_ok(t[i].uri, &u);
		assert_int_equal(u.type, t[i].type);
		assert_false(ps_uri_has_token_attrs(&u));
		ps_uri_free(&u);
	}
	assert_string_equal(ps_obj_type_name(PS_OBJ_ANY), "");
	assert_string_equal(ps_obj_type_name(PS_OBJ_CERT), "cert");
	assert_string_equal(ps_obj_type_name(PS_OBJ_PRIVATE), "private");
	assert_string_equal(ps_obj_type_name(PS_OBJ_PUBLIC), "public");
	assert_string_equal(ps_obj_type_name(PS_OBJ_SECRET), "secret-key");
	assert_string_equal(ps_obj_type_name(PS_OBJ_DATA), "data");
	assert_string_equal(ps_obj_type_name(-1), "");
	assert_string_equal(ps_obj_type_name(PS_OBJ_DATA + 1), "");
}

static void test_vendor_attrs_ignored(void **state)
{
	struct ps_uri u;

	(void)state;
	parse_ok("pkcs11:token=my-token;object=my-certificate;type=cert;"
		 "x-vend-aaa=value-a"
		 "?pin-source=file:/etc/token_pin&x-vend-bbb=value-b",
		 &u);
	assert_string_equal(u.token, "my-token");
	assert_string_equal(u.object, "my-certificate");
	assert_int_equal(u.type, PS_OBJ_CERT);
	assert_string_equal(u.pin_source, "file:/etc/token_pin");
	ps_uri_free(&u);

	/* Repeated vendor attributes are not duplicates of anything. */
	parse_ok("pkcs11:x-a=1;x-a=2;token=t", &u);
	assert_string_equal(u.token, "t");
	ps_uri_free(&u);
}

static void test_scheme_case_and_separators(void **state)
{
	struct ps_uri u;

	(void)state;
	/* URI schemes are case-insensitive (RFC 3986 3.1). */
	parse_ok("PKCS11:token=T", &u);
	assert_string_equal(u.token, "T");
	ps_uri_free(&u);

	/* Empty components between separators are skipped. */
	parse_ok("pkcs11:;token=T;;object=O;?&module-name=m&", &u);
	assert_string_equal(u.token, "T");
	assert_string_equal(u.object, "O");
	assert_string_equal(u.module_name, "m");
	ps_uri_free(&u);
}

static void test_has_token_attrs(void **state)
{
	static const struct {
		const char *uri;
		int want;
	} t[] = {
		{ "pkcs11:", 0 },
		{ "pkcs11:object=o;type=cert;id=%01", 0 },
		{ "pkcs11:library-manufacturer=L;library-version=1", 0 },
		{ "pkcs11:?module-path=/x.so&pin-source=env:PIN", 0 },
		{ "pkcs11:token=T", 1 },
		{ "pkcs11:manufacturer=M", 1 },
		{ "pkcs11:serial=S", 1 },
		{ "pkcs11:model=M", 1 },
		{ "pkcs11:slot-description=D", 1 },
		{ "pkcs11:slot-manufacturer=M", 1 },
		{ "pkcs11:slot-id=3", 1 },
		{ "pkcs11:token=", 1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct ps_uri u;

		parse_ok(t[i].uri, &u);
		if (!!ps_uri_has_token_attrs(&u) != t[i].want)
			fail_msg("ps_uri_has_token_attrs(%s) != %d", t[i].uri,
				 t[i].want);
		ps_uri_free(&u);
	}
}

/* ---- errors ------------------------------------------------------------- */

static void test_err_prefix(void **state)
{
	(void)state;
	assert_refused("token=T", "bad-uri");
	assert_refused("pkcs11", "bad-uri");
	assert_refused("pkcs1:token=T", "bad-uri");
	assert_refused(" pkcs11:token=T", "bad-uri");
	assert_refused("", "bad-uri");
	assert_refused(NULL, "bad-uri");
}

static void test_err_unknown_attr(void **state)
{
	(void)state;
	assert_refused("pkcs11:foo=bar", "bad-uri");
	assert_refused("pkcs11:token=T;Token=U", "bad-uri"); /* case */
	assert_refused("pkcs11:token=a?foo=bar", "bad-uri");
	/* Query attributes in the path and path attributes in the query. */
	assert_refused("pkcs11:module-path=/x.so", "bad-uri");
	assert_refused("pkcs11:pin-source=file:/p", "bad-uri");
	assert_refused("pkcs11:?token=T", "bad-uri");
	assert_refused("pkcs11:?id=%01", "bad-uri");
	assert_refused("pkcs11:?type=cert", "bad-uri");
	assert_refused("pkcs11:?slot-id=1", "bad-uri");
	/* No '=' or no name. */
	assert_refused("pkcs11:token", "bad-uri");
	assert_refused("pkcs11:=T", "bad-uri");
	assert_refused("pkcs11:token=T;object", "bad-uri");
	/* A very long name does not overflow anything. */
	assert_refused("pkcs11:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		       "aaaaaaaaaaaaaaaaaaaa=1",
		       "bad-uri");
	/* A name that starts like a known one. */
	assert_refused("pkcs11:tokens=T", "bad-uri");
}

static void test_err_bad_escape(void **state)
{
	(void)state;
	assert_refused("pkcs11:token=%zz", "bad-uri");
	assert_refused("pkcs11:token=%G0", "bad-uri");
	assert_refused("pkcs11:token=%0g", "bad-uri");
	assert_refused("pkcs11:token=%", "bad-uri");
	assert_refused("pkcs11:token=%4", "bad-uri");   /* truncated, at end */
	assert_refused("pkcs11:token=ab%4", "bad-uri"); /* truncated, at end */
	assert_refused("pkcs11:token=%4;object=o", "bad-uri");
	assert_refused("pkcs11:id=%4", "bad-uri");
	assert_refused("pkcs11:id=%01%0", "bad-uri");
	assert_refused("pkcs11:token=T?pin-source=file:%2", "bad-uri");
	assert_refused("pkcs11:x-vendor=%q1", "bad-uri");
	/* A NUL byte cannot be in a text attribute. */
	assert_refused("pkcs11:token=a%00b", "bad-uri");
}

static void test_err_duplicate(void **state)
{
	(void)state;
	assert_refused("pkcs11:token=a;token=a", "bad-uri");
	assert_refused("pkcs11:token=a;object=o;token=b", "bad-uri");
	assert_refused("pkcs11:token=;token=b", "bad-uri");
	assert_refused("pkcs11:serial=1;serial=2", "bad-uri");
	assert_refused("pkcs11:id=%01;id=%02", "bad-uri");
	assert_refused("pkcs11:id=;id=%02", "bad-uri");
	assert_refused("pkcs11:type=cert;type=cert", "bad-uri");
	assert_refused("pkcs11:type=cert;type=private", "bad-uri");
	assert_refused("pkcs11:slot-id=1;slot-id=1", "bad-uri");
	assert_refused("pkcs11:slot-id=0;slot-id=2", "bad-uri");
	assert_refused("pkcs11:?module-path=/a&module-path=/b", "bad-uri");
	assert_refused("pkcs11:?pin-source=env:A&pin-source=env:B", "bad-uri");
}

static void test_err_bad_type(void **state)
{
	(void)state;
	assert_refused("pkcs11:type=certificate", "bad-uri");
	assert_refused("pkcs11:type=CERT", "bad-uri");
	assert_refused("pkcs11:type=", "bad-uri");
	assert_refused("pkcs11:type=secret", "bad-uri");
}

/* A %00 cannot hide in type or slot-id either: "cert\0junk" is not
 * "cert", and "1\0" is not a number (text attributes already refuse NUL). */
static void test_err_nul_in_type_and_slot_id(void **state)
{
	(void)state;
	assert_refused("pkcs11:type=cert%00", "bad-uri");
	assert_refused("pkcs11:type=cert%00junk", "bad-uri");
	assert_refused("pkcs11:slot-id=1%00", "bad-uri");
	assert_refused("pkcs11:slot-id=1%002", "bad-uri");
}

static void test_err_bad_slot_id(void **state)
{
	(void)state;
	assert_refused("pkcs11:slot-id=abc", "bad-uri");
	assert_refused("pkcs11:slot-id=", "bad-uri");
	assert_refused("pkcs11:slot-id=1x", "bad-uri");
	assert_refused("pkcs11:slot-id=-1", "bad-uri");
	assert_refused("pkcs11:slot-id=0x10", "bad-uri");
	assert_refused("pkcs11:slot-id=1.5", "bad-uri");
	assert_refused("pkcs11:slot-id=99999999999999999999999999", "bad-uri");
}

static char *uri_of_length(size_t len)
{
	char *s = malloc(len + 1);

	assert_non_null(s);
	memcpy(s, "pkcs11:token=", 13);
	memset(s + 13, 'a', len - 13);
	s[len] = '\0';
	return s;
}

static void test_err_overlong(void **state)
{
	struct ps_uri u;
	struct ps_err err;
	char *s;

	(void)state;
	s = uri_of_length(4097);
	assert_refused(s, "bad-uri");
	/* The message does not carry 4 KiB of URI. */
	ps_err_clear(&err);
	assert_int_equal(ps_uri_parse(s, &u, &err), PS_EXIT_USAGE);
	assert_null(strstr(err.msg, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	free(s);

	s = uri_of_length(100000);
	assert_refused(s, "bad-uri");
	free(s);

	/* 4096 bytes is still fine. */
	s = uri_of_length(4096);
	parse_ok(s, &u);
	assert_int_equal(strlen(u.token), 4096 - 13);
	ps_uri_free(&u);
	free(s);
}

static void test_err_pin_value(void **state)
{
	struct ps_uri u;
	struct ps_err err;

	(void)state;
	assert_refused("pkcs11:token=T?pin-value=1234", "pin-in-argv");
	assert_refused("pkcs11:token=Software%20PKCS%2311%20softtoken;"
		       "manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin",
		       "pin-in-argv");
	assert_refused("pkcs11:?pin-source=env:X&pin-value=1234",
		       "pin-in-argv");
	assert_refused("pkcs11:?pin-value=", "pin-in-argv");

	/* The PIN itself is never echoed in the message or the hint. */
	ps_err_clear(&err);
	assert_int_equal(ps_uri_parse("pkcs11:token=T?pin-value=S3cr3t9876",
				      &u, &err),
			 PS_EXIT_USAGE);
	assert_null(strstr(err.msg, "S3cr3t9876"));
	assert_null(strstr(err.hint, "S3cr3t9876"));
}

/* GnuTLS and old p11-kit documentation put pin-value in the path
 * ("pkcs11:token=T;pin-value=1234"). It is a PIN in argv all the same: it
 * must be refused as such, and the PIN must not be copied into the error
 * message (which ends up on stderr, in logs and in JSON error records). */
/* A label that merely contains "pin-value=" is text, not a PIN attribute:
 * it must round-trip (found by the uri fuzzer). */
static void test_label_mentioning_pin_value(void **state)
{
	struct ps_uri u;
	struct ps_err err;
	char *tok = ps_uri_format_token("m", "x", "1", "t");
	char *obj;

	(void)state;
	assert_non_null(tok);
	obj = ps_uri_format_object(tok, (const unsigned char *)"\x01", 1,
				   "pin-value=1234", PS_OBJ_CERT);
	assert_non_null(obj);
	ps_err_clear(&err);
	assert_int_equal(ps_uri_parse(obj, &u, &err), 0);
	assert_string_equal(u.object, "pin-value=1234");
	ps_uri_free(&u);
	free(obj);
	free(tok);
}

static void test_err_pin_value_in_path(void **state)
{
	struct ps_uri u;
	struct ps_err err;

	(void)state;
	ps_err_clear(&err);
	assert_int_equal(ps_uri_parse("pkcs11:token=T;pin-value=S3cr3t9876",
				      &u, &err),
			 PS_EXIT_USAGE);
	assert_uri_empty(&u);
	assert_null(strstr(err.msg, "S3cr3t9876"));
	assert_null(strstr(err.hint, "S3cr3t9876"));
	assert_string_equal(err.code, "pin-in-argv");
}

/* ---- formatting and round trips ----------------------------------------- */

static void test_format_token_exact(void **state)
{
	char *s;

	(void)state;
	s = ps_uri_format_token("PKCS#15 emulated", "OpenSC Project",
				"0123ABCD", "Jan Nov\xc3\xa1k");
	assert_non_null(s);
	assert_string_equal(s, "pkcs11:model=PKCS%2315%20emulated;"
			       "manufacturer=OpenSC%20Project;serial=0123ABCD;"
			       "token=Jan%20Nov%C3%A1k");
	free(s);

	/* Empty and NULL fields are left out. */
	s = ps_uri_format_token(NULL, "", "42", NULL);
	assert_non_null(s);
	assert_string_equal(s, "pkcs11:serial=42");
	free(s);

	s = ps_uri_format_token(NULL, NULL, NULL, NULL);
	assert_non_null(s);
	assert_string_equal(s, "pkcs11:");
	free(s);

	/* Separators and '%' are escaped. */
	s = ps_uri_format_token(NULL, NULL, NULL, "a;b?c%d/e&f#g");
	assert_non_null(s);
	assert_string_equal(s, "pkcs11:token=a%3Bb%3Fc%25d%2Fe%26f%23g");
	free(s);
}

static void test_format_object_exact(void **state)
{
	static const unsigned char id[] = { 0x0a, 0x1b, 'A', 0x00, 0xff };
	char *s;

	(void)state;
	s = ps_uri_format_object("pkcs11:token=T", id, sizeof(id), "a;b",
				 PS_OBJ_PRIVATE);
	assert_non_null(s);
	/* Every id byte as %XX, letters included. */
	assert_string_equal(s, "pkcs11:token=T;id=%0A%1B%41%00%FF;"
			       "object=a%3Bb;type=private");
	free(s);

	s = ps_uri_format_object("pkcs11:", id, 2, NULL, PS_OBJ_CERT);
	assert_non_null(s);
	assert_string_equal(s, "pkcs11:id=%0A%1B;type=cert");
	free(s);

	s = ps_uri_format_object("pkcs11:serial=1", NULL, 0, "", PS_OBJ_ANY);
	assert_non_null(s);
	assert_string_equal(s, "pkcs11:serial=1");
	free(s);
}

static void check_token_round_trip(const char *model, const char *manuf,
				   const char *serial, const char *label)
{
	struct ps_uri u;
	char *s = ps_uri_format_token(model, manuf, serial, label);

	assert_non_null(s);
	assert_null(strchr(s, ' '));
	assert_null(strchr(s + 7, '?'));
	parse_ok(s, &u);
	assert_string_equal(u.model, model);
	assert_string_equal(u.manufacturer, manuf);
	assert_string_equal(u.serial, serial);
	assert_string_equal(u.token, label);
	assert_int_equal(u.has_id, 0);
	assert_int_equal(u.type, PS_OBJ_ANY);
	ps_uri_free(&u);
	free(s);
}

static void test_round_trip_token(void **state)
{
	char all[256];
	size_t n = 0;

	(void)state;
	check_token_round_trip("PKCS#15 emulated", "OpenSC Project", "1234",
			       "Jan Nov\xc3\xa1k");
	check_token_round_trip("m", "a;b", "100%", "label with spaces");
	check_token_round_trip("x?y", "p&q=r", "%41", "%%;;==");
	check_token_round_trip("(model)", "[m]@!$'*+,", "~.:_-",
			       "\xe2\x98\x83 Sn\xc4\x9bhul\xc3\xa1k");
	check_token_round_trip("a/b\\c", "#", "\"quoted\"", "tab\there");
	/* Every byte from 1 to 255 in one label. */
	for (int c = 1; c < 256; c++)
		all[n++] = (char)c;
	all[n] = '\0';
	check_token_round_trip("M", "Mf", "S", all);
}

/* Allocations of a test that are released by its teardown, so that a
 * failing assertion (which leaves the test early) does not leak. */
static char *kept[8];
static struct ps_uri kept_uri;

static char *keep(char *p)
{
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		if (!kept[i])
			return kept[i] = p;
	fail_msg("keep: too many");
	return p;
}

static int release_kept(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		free(kept[i]);
		kept[i] = NULL;
	}
	ps_uri_free(&kept_uri);
	return 0;
}

/* ':' is left unescaped, and ps_uri_append decides whether a ';' is needed
 * by looking at the last character ("pkcs11:" ends in ':'), so a value that
 * itself ends in ':' must still be followed by a separator. */
static void test_round_trip_value_ending_in_colon(void **state)
{
	struct ps_uri *u = &kept_uri;
	char *s, *o;

	(void)state;
	s = keep(ps_uri_format_token(NULL, "ACME:", "1234", "Nov\xc3\xa1k:"));
	assert_non_null(s);
	parse_ok(s, u);
	assert_string_equal(u->manufacturer, "ACME:");
	assert_string_equal(u->serial, "1234");
	assert_string_equal(u->token, "Nov\xc3\xa1k:");
	ps_uri_free(u);

	o = keep(ps_uri_format_object(s, (const unsigned char *)"\x01", 1,
				      "key:", PS_OBJ_PRIVATE));
	assert_non_null(o);
	parse_ok(o, u);
	assert_string_equal(u->token, "Nov\xc3\xa1k:");
	assert_int_equal(u->has_id, 1);
	assert_int_equal(u->id_len, 1);
	assert_string_equal(u->object, "key:");
	assert_int_equal(u->type, PS_OBJ_PRIVATE);
}

static void test_round_trip_object(void **state)
{
	unsigned char id[256];
	struct ps_uri u;
	char *tok, *s;

	(void)state;
	for (int i = 0; i < 256; i++)
		id[i] = (unsigned char)(255 - i);
	tok = ps_uri_format_token("PKCS#15", "Maker; Inc.", "00A1",
				  "Nov\xc3\xa1k 100% ; token");
	assert_non_null(tok);

	for (int type = PS_OBJ_ANY; type <= PS_OBJ_DATA; type++) {
		s = ps_uri_format_object(tok, id, sizeof(id),
					 "Podpis; Nov\xc3\xa1k %", type);
		assert_non_null(s);
		assert_true(strncmp(s, tok, strlen(tok)) == 0);
		parse_ok(s, &u);
		assert_string_equal(u.token, "Nov\xc3\xa1k 100% ; token");
		assert_string_equal(u.manufacturer, "Maker; Inc.");
		assert_string_equal(u.serial, "00A1");
		assert_string_equal(u.model, "PKCS#15");
		assert_string_equal(u.object, "Podpis; Nov\xc3\xa1k %");
		assert_int_equal(u.has_id, 1);
		assert_int_equal(u.id_len, sizeof(id));
		assert_memory_equal(u.id, id, sizeof(id));
		assert_int_equal(u.type, type);
		ps_uri_free(&u);
		free(s);
	}
	free(tok);

	/* A one-byte id. */
	s = ps_uri_format_object("pkcs11:", (const unsigned char *)"\x01", 1,
				 NULL, PS_OBJ_PUBLIC);
	assert_non_null(s);
	parse_ok(s, &u);
	assert_int_equal(u.id_len, 1);
	assert_int_equal(u.id[0], 1);
	assert_int_equal(u.type, PS_OBJ_PUBLIC);
	assert_false(ps_uri_has_token_attrs(&u));
	ps_uri_free(&u);
	free(s);
}

static void test_append(void **state)
{
	char *b = NULL;
	size_t n = 0;

	(void)state;
	/* From nothing: no separator first. */
	assert_int_equal(ps_uri_append(&b, &n, "id",
				       (const unsigned char *)"\x01\xab", 2, 1),
			 0);
	assert_non_null(b);
	assert_string_equal(b, "id=%01%AB");
	assert_int_equal(n, strlen(b));
	/* Then ';'-separated. */
	assert_int_equal(ps_uri_append(&b, &n, "object",
				       (const unsigned char *)"a b", 3, 0),
			 0);
	assert_string_equal(b, "id=%01%AB;object=a%20b");
	assert_int_equal(n, strlen(b));
	/* all_hex escapes even unreserved characters. */
	assert_int_equal(ps_uri_append(&b, &n, "x-t",
				       (const unsigned char *)"Az", 2, 1),
			 0);
	assert_string_equal(b, "id=%01%AB;object=a%20b;x-t=%41%7A");
	assert_int_equal(n, strlen(b));
	free(b);

	/* After "pkcs11:" no separator either. */
	b = strdup("pkcs11:");
	n = 7;
	assert_int_equal(ps_uri_append(&b, &n, "token",
				       (const unsigned char *)"T", 1, 0),
			 0);
	assert_string_equal(b, "pkcs11:token=T");
	assert_int_equal(n, strlen(b));
	free(b);
}

/* ps_uri_append takes a length, so a value may hold a NUL byte: it must be
 * escaped as %00 like any other reserved byte, never copied raw (a raw NUL
 * cuts the URI short for every string function that reads it). */
static void test_append_nul_byte(void **state)
{
	size_t n = 0;

	(void)state;
	assert_int_equal(ps_uri_append(&kept[0], &n, "object",
				       (const unsigned char *)"a\0b", 3, 0),
			 0);
	assert_non_null(kept[0]);
	assert_int_equal(strlen(kept[0]), n);
	assert_string_equal(kept[0], "object=a%00b");
}

static void test_free_twice(void **state)
{
	struct ps_uri u;

	(void)state;
	parse_ok("pkcs11:token=T;id=%01;object=o?module-path=/m", &u);
	ps_uri_free(&u);
	assert_uri_empty(&u);
	ps_uri_free(&u); /* fields were reset: no double free */
	ps_uri_init(&u);
	assert_uri_empty(&u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_empty),
		cmocka_unit_test(test_rfc_object_type),
		cmocka_unit_test(test_rfc_full_token),
		cmocka_unit_test(test_rfc_module),
		cmocka_unit_test(test_rfc_slot_and_library),
		cmocka_unit_test(test_rfc_escapes),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_vendor_attrs_ignored),
		cmocka_unit_test(test_scheme_case_and_separators),
		cmocka_unit_test(test_has_token_attrs),
		cmocka_unit_test(test_err_prefix),
		cmocka_unit_test(test_err_unknown_attr),
		cmocka_unit_test(test_err_bad_escape),
		cmocka_unit_test(test_err_duplicate),
		cmocka_unit_test(test_err_bad_type),
		cmocka_unit_test(test_err_nul_in_type_and_slot_id),
		cmocka_unit_test(test_err_bad_slot_id),
		cmocka_unit_test(test_err_overlong),
		cmocka_unit_test(test_err_pin_value),
		cmocka_unit_test(test_err_pin_value_in_path),
		cmocka_unit_test(test_label_mentioning_pin_value),
		cmocka_unit_test(test_format_token_exact),
		cmocka_unit_test(test_format_object_exact),
		cmocka_unit_test(test_round_trip_token),
		cmocka_unit_test_teardown(test_round_trip_value_ending_in_colon,
					  release_kept),
		cmocka_unit_test(test_round_trip_object),
		cmocka_unit_test(test_append),
		cmocka_unit_test_teardown(test_append_nul_byte, release_kept),
		cmocka_unit_test(test_free_twice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

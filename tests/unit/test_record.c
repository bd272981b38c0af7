/* Unit tests: lib/record.c (JSON Lines records and the human table). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <psrenew/record.h>

/* An output stream in memory; its text is in buf after fflush/fclose. */
struct mem {
	FILE *f;
	char *buf;
	size_t len;
};

static struct mem out;
static json_t *objs[8];
static struct ps_in *in;
static FILE *inf;

static void mem_open(void)
{
	out.buf = NULL;
	out.len = 0;
	out.f = open_memstream(&out.buf, &out.len);
	assert_non_null(out.f);
}

/* Releases whatever a test left, even when it failed half-way. */
static int cleanup(void **state)
{
	(void)state;
	if (out.f)
		fclose(out.f);
	free(out.buf);
	memset(&out, 0, sizeof(out));
	for (size_t i = 0; i < sizeof(objs) / sizeof(objs[0]); i++) {
		json_decref(objs[i]);
		objs[i] = NULL;
	}
	ps_in_free(in);
	in = NULL;
	if (inf)
		fclose(inf);
	inf = NULL;
	return 0;
}

static json_t *obj(size_t slot, const char *text)
{
	json_error_t je;

	objs[slot] = json_loads(text, JSON_ALLOW_NUL, &je);
	if (!objs[slot])
		fail_msg("bad test JSON %s: %s", text, je.text);
	return objs[slot];
}

/* ---- JSON output -------------------------------------------------------- */

static void test_json_lines(void **state)
{
	struct ps_out *o;
	json_t *a, *b;
	const char *want_a =
		"{\"kind\":\"cert\",\"serial_hex\":\"0A1B\","
		"\"cn\":\"Jan Nov\xc3\xa1k\",\"days_left\":30,\"has_key\":true,"
		"\"extra\":{\"a\":[1,2],\"s\":\"x y\"}}\n";
	const char *want_b = "{\"kind\":\"token\",\"label\":\"x\"}\n";

	(void)state;
	mem_open();
	a = obj(0, "{\"kind\": \"cert\", \"serial_hex\": \"0A1B\","
		   " \"cn\": \"Jan Nov\xc3\xa1k\", \"days_left\": 30,"
		   " \"has_key\": true, \"extra\": {\"a\": [1, 2],"
		   " \"s\": \"x y\"}}");
	b = json_object();
	objs[1] = b;
	ps_json_set_str(b, "kind", "token");
	ps_json_set_str(b, "label", "x");

	o = ps_out_new(out.f, PS_OUT_JSON);
	assert_non_null(o);
	assert_true(ps_out_is_json(o));
	assert_int_equal(ps_out_emit(o, a), 0);
	/* Written at once, before ps_out_finish(). */
	assert_int_equal(fflush(out.f), 0);
	assert_string_equal(out.buf, want_a);
	assert_int_equal(ps_out_emit(o, b), 0);
	assert_int_equal(ps_out_finish(o), 0);
	assert_int_equal(fflush(out.f), 0);
	assert_int_equal(out.len, strlen(want_a) + strlen(want_b));
	assert_memory_equal(out.buf, want_a, strlen(want_a));
	assert_string_equal(out.buf + strlen(want_a), want_b);
	/* The record is borrowed: still ours. */
	assert_int_equal(a->refcount, 1);
}

static void test_json_lines_parse_back(void **state)
{
	struct ps_out *o;
	char *line, *save = NULL;
	int n = 0;

	(void)state;
	mem_open();
	o = ps_out_new(out.f, PS_OUT_JSON);
	assert_non_null(o);
	/* Strings with newlines and quotes still give one line each. */
	obj(0, "{\"kind\":\"cert\",\"cn\":\"a\\nb\\\"c\",\"z\":null}");
	obj(1, "{\"kind\":\"error\",\"code\":\"x\",\"status\":1}");
	obj(2, "{\"kind\":\"token\",\"label\":\"\\u0000x\"}");
	for (int i = 0; i < 3; i++)
		assert_int_equal(ps_out_emit(o, objs[i]), 0);
	assert_int_equal(ps_out_finish(o), 0);
	assert_int_equal(fclose(out.f), 0);
	out.f = NULL;

	for (line = strtok_r(out.buf, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save), n++) {
		json_error_t je;
		json_t *r = json_loads(line, JSON_ALLOW_NUL, &je);
		void *it;

		assert_non_null(r);
		assert_true(json_is_object(r));
		assert_true(json_equal(r, objs[n]));
		/* "kind" comes first. */
		it = json_object_iter(r);
		assert_string_equal(json_object_iter_key(it), "kind");
		/* Compact: no ": " or ", " outside strings. */
		assert_null(strstr(line, "\": "));
		json_decref(r);
	}
	assert_int_equal(n, 3);
}

static void test_auto_mode_on_a_pipe(void **state)
{
	struct ps_out *o;

	(void)state;
	mem_open();
	o = ps_out_new(out.f, PS_OUT_AUTO); /* not a terminal: JSON */
	assert_non_null(o);
	assert_true(ps_out_is_json(o));
	assert_int_equal(ps_out_finish(o), 0);
	o = ps_out_new(out.f, PS_OUT_HUMAN);
	assert_non_null(o);
	assert_false(ps_out_is_json(o));
	assert_int_equal(ps_out_finish(o), 0);
	assert_int_equal(ps_out_finish(NULL), 0);
	assert_int_equal(fflush(out.f), 0);
	assert_int_equal(out.len, 0);
}

static void test_write_errors(void **state)
{
	struct ps_out *o;
	FILE *f;

	(void)state;
	obj(0, "{\"kind\":\"token\",\"label\":\"x\"}");
	/* A stream that cannot be written. */
	f = fopen("/dev/null", "r");
	assert_non_null(f);
	o = ps_out_new(f, PS_OUT_JSON);
	assert_non_null(o);
	assert_int_equal(ps_out_emit(o, objs[0]), -1);
	assert_int_equal(ps_out_finish(o), -1);
	fclose(f);

	/* A full disk. */
	f = fopen("/dev/full", "w");
	if (f) {
		o = ps_out_new(f, PS_OUT_JSON);
		assert_non_null(o);
		assert_int_equal(ps_out_emit(o, objs[0]), -1);
		assert_int_equal(ps_out_finish(o), -1);
		fclose(f);

		f = fopen("/dev/full", "w");
		assert_non_null(f);
		o = ps_out_new(f, PS_OUT_HUMAN);
		assert_non_null(o);
		obj(1, "{\"kind\":\"cert\",\"cn\":\"x\"}");
		assert_int_equal(ps_out_emit(o, objs[1]), 0); /* kept */
		assert_int_equal(ps_out_finish(o), -1);
		fclose(f);
	}
}

/* ---- the human table ---------------------------------------------------- */

/* Display column (code points) at which the last needle starts in line. */
static long display_col(const char *line, const char *needle)
{
	const char *p = NULL;
	long col = 0;

	for (const char *q = strstr(line, needle); q; q = strstr(q + 1, needle))
		p = q;
	if (!p)
		return -1;
	for (const char *s = line; s < p; s++)
		col += ((unsigned char)*s & 0xC0) != 0x80;
	return col;
}

static void test_human_table(void **state)
{
	struct ps_out *o;
	char *l1, *l2, *l3, *end;

	(void)state;
	mem_open();
	o = ps_out_new(out.f, PS_OUT_HUMAN);
	assert_non_null(o);
	assert_false(ps_out_is_json(o));
	obj(0, "{\"kind\":\"cert\",\"token_label\":\"Jan Nov\xc3\xa1k\","
	       "\"type\":\"qualified\",\"serial_hex\":\"0A1B\","
	       "\"not_after\":\"2024-11-13T22:13:20Z\",\"days_left\":30,"
	       "\"has_key\":true,\"state\":\"valid\","
	       "\"cn\":\"Jan Nov\xc3\xa1k\",\"extra\":\"not shown\"}");
	obj(1, "{\"kind\":\"cert\",\"token_label\":\"Token 2\","
	       "\"type\":\"commercial\",\"serial_hex\":\"0102030405\","
	       "\"days_left\":-3,\"has_key\":false,\"state\":\"expired\","
	       "\"cn\":\"Petr Dvo\xc5\x99\xc3\xa1k\"}");
	/* Errors go to stderr in human mode: not in the table. */
	obj(2, "{\"kind\":\"error\",\"code\":\"token-full\",\"status\":6,"
	       "\"message\":\"SECRET-NOT-HERE\"}");
	/* A kind without a layout: printed at once as key=value. */
	obj(3, "{\"kind\":\"token\",\"label\":\"Plain\",\"count\":3,"
	       "\"ok\":true,\"none\":null,\"list\":[1,2]}");
	assert_int_equal(ps_out_emit(o, objs[0]), 0);
	assert_int_equal(ps_out_emit(o, objs[1]), 0);
	assert_int_equal(ps_out_emit(o, objs[2]), 0);
	assert_int_equal(ps_out_emit(o, objs[3]), 0);
	assert_int_equal(ps_out_finish(o), 0);
	assert_int_equal(fflush(out.f), 0);

	assert_null(strstr(out.buf, "SECRET-NOT-HERE"));
	assert_null(strstr(out.buf, "not shown"));

	/* Every column starts at the same display column on every line,
	 * even after "Novák" (6 bytes, 5 columns). */
	l1 = strchr(out.buf, '\n');
	assert_non_null(l1);
	l1++; /* the header */
	l2 = strchr(l1, '\n');
	assert_non_null(l2);
	*l2++ = '\0';
	l3 = strchr(l2, '\n');
	assert_non_null(l3);
	*l3++ = '\0';
	end = strchr(l3, '\n');
	assert_non_null(end);
	*end = '\0';
	assert_int_equal(display_col(l1, "TYPE"), display_col(l2, "qualified"));
	assert_int_equal(display_col(l1, "TYPE"), display_col(l3, "commercial"));
	assert_int_equal(display_col(l1, "SERIAL"), display_col(l2, "0A1B"));
	assert_int_equal(display_col(l1, "SERIAL"), display_col(l3, "0102"));
	assert_int_equal(display_col(l1, "NOT AFTER"), display_col(l2, "2024"));
	assert_int_equal(display_col(l1, "DAYS"), display_col(l2, "30"));
	assert_int_equal(display_col(l1, "DAYS"), display_col(l3, "-3"));
	assert_int_equal(display_col(l1, "KEY"), display_col(l2, "yes"));
	assert_int_equal(display_col(l1, "KEY"), display_col(l3, "no "));
	assert_int_equal(display_col(l1, "STATE"), display_col(l2, "valid"));
	assert_int_equal(display_col(l1, "HOLDER"), display_col(l2, "Jan Nov"));
	assert_int_equal(display_col(l1, "HOLDER"), display_col(l3, "Petr"));
	/* No trailing blanks. */
	assert_int_not_equal(l1[strlen(l1) - 1], ' ');
	assert_int_not_equal(l2[strlen(l2) - 1], ' ');
	assert_int_not_equal(l3[strlen(l3) - 1], ' ');
}

static void test_human_table_exact(void **state)
{
	struct ps_out *o;
	const char *want =
		"token: label=Plain count=3 ok=yes none=- list=[1,2]\n"
		"TOKEN      TYPE        SERIAL      NOT AFTER             DAYS"
		"  KEY  STATE    HOLDER\n"
		"Jan Nov\xc3\xa1k  qualified   0A1B        "
		"2024-11-13T22:13:20Z  30    yes  valid    Jan Nov\xc3\xa1k\n"
		"Token 2    commercial  0102030405  -                     -3  "
		"  no   expired  Petr Dvo\xc5\x99\xc3\xa1k\n";

	(void)state;
	mem_open();
	o = ps_out_new(out.f, PS_OUT_HUMAN);
	assert_non_null(o);
	obj(0, "{\"kind\":\"cert\",\"token_label\":\"Jan Nov\xc3\xa1k\","
	       "\"type\":\"qualified\",\"serial_hex\":\"0A1B\","
	       "\"not_after\":\"2024-11-13T22:13:20Z\",\"days_left\":30,"
	       "\"has_key\":true,\"state\":\"valid\","
	       "\"cn\":\"Jan Nov\xc3\xa1k\"}");
	obj(1, "{\"kind\":\"cert\",\"token_label\":\"Token 2\","
	       "\"type\":\"commercial\",\"serial_hex\":\"0102030405\","
	       "\"days_left\":-3,\"has_key\":false,\"state\":\"expired\","
	       "\"cn\":\"Petr Dvo\xc5\x99\xc3\xa1k\"}");
	obj(2, "{\"kind\":\"token\",\"label\":\"Plain\",\"count\":3,"
	       "\"ok\":true,\"none\":null,\"list\":[1,2]}");
	for (int i = 0; i < 3; i++)
		assert_int_equal(ps_out_emit(o, objs[i]), 0);
	assert_int_equal(ps_out_finish(o), 0);
	assert_int_equal(fflush(out.f), 0);
	assert_string_equal(out.buf, want);
}

/* ---- error records ---------------------------------------------------- */

static void test_record_error(void **state)
{
	struct ps_err err;
	json_t *r;
	const char *key;
	json_t *v;
	static const char *const keys[] = { "kind", "code", "status",
					    "message", "hint" };
	size_t i = 0;

	(void)state;
	ps_err_set(&err, PS_EXIT_TOKEN, "token-full", "delete an old key",
		   "token \"Jan Nov\xc3\xa1k\" is full");
	r = ps_record_error(&err);
	objs[0] = r;
	assert_non_null(r);
	assert_int_equal(json_object_size(r), 5);
	assert_string_equal(ps_json_str(r, "kind"), "error");
	assert_string_equal(ps_json_str(r, "code"), "token-full");
	assert_true(json_is_integer(json_object_get(r, "status")));
	assert_int_equal(json_integer_value(json_object_get(r, "status")), 6);
	assert_string_equal(ps_json_str(r, "message"),
			    "token \"Jan Nov\xc3\xa1k\" is full");
	assert_string_equal(ps_json_str(r, "hint"), "delete an old key");
	/* In that order, "kind" first. */
	json_object_foreach(r, key, v) {
		(void)v;
		assert_string_equal(key, keys[i++]);
	}

	/* No hint: no "hint" field; no code: "error". */
	ps_err_clear(&err);
	err.status = PS_EXIT_FAIL;
	snprintf(err.msg, sizeof(err.msg), "boom");
	r = ps_record_error(&err);
	objs[1] = r;
	assert_non_null(r);
	assert_string_equal(ps_json_str(r, "kind"), "error");
	assert_string_equal(ps_json_str(r, "code"), "error");
	assert_int_equal(json_integer_value(json_object_get(r, "status")), 1);
	assert_string_equal(ps_json_str(r, "message"), "boom");
	assert_null(json_object_get(r, "hint"));

	/* A message that is not UTF-8 (a token label) is still a string. */
	ps_err_set(&err, PS_EXIT_TOKEN, "x", NULL, "label Nov\xe1k");
	r = ps_record_error(&err);
	objs[2] = r;
	assert_non_null(r);
	assert_true(json_is_string(json_object_get(r, "message")));
}

/* ---- reading records -------------------------------------------------- */

static void in_open(const char *text)
{
	inf = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(inf);
	in = ps_in_new(inf);
	assert_non_null(in);
}

static void test_in_lines(void **state)
{
	struct ps_err err;
	json_t *r;

	(void)state;
	in_open("{\"kind\":\"a\",\"n\":1}\n"
		"\n"
		"   \n"
		"{\"kind\":\"b\"}\r\n"
		"\t \r\n"
		"  {\"kind\": \"c\", \"x\": [1, {\"y\": null}]}  ");
	ps_err_clear(&err);
	r = objs[0] = ps_in_next(in, &err);
	assert_non_null(r);
	assert_string_equal(ps_json_str(r, "kind"), "a");
	assert_int_equal(json_integer_value(json_object_get(r, "n")), 1);
	r = objs[1] = ps_in_next(in, &err);
	assert_non_null(r);
	assert_string_equal(ps_json_str(r, "kind"), "b");
	r = objs[2] = ps_in_next(in, &err);
	assert_non_null(r);
	assert_string_equal(ps_json_str(r, "kind"), "c");
	assert_true(json_is_array(json_object_get(r, "x")));
	/* The end: NULL, err untouched. */
	assert_null(ps_in_next(in, &err));
	assert_int_equal(err.status, 0);
	assert_string_equal(err.code, "");
	assert_string_equal(err.msg, "");
	assert_null(ps_in_next(in, &err));
	assert_int_equal(err.status, 0);
}

static void test_in_empty(void **state)
{
	struct ps_err err;

	(void)state;
	in_open("\n\n \n");
	ps_err_clear(&err);
	assert_null(ps_in_next(in, &err));
	assert_int_equal(err.status, 0);
	ps_in_free(in);
	fclose(inf);
	in = NULL;
	inf = fopen("/dev/null", "r");
	assert_non_null(inf);
	in = ps_in_new(inf);
	assert_null(ps_in_next(in, &err));
	assert_int_equal(err.status, 0);
	ps_in_free(NULL);
}

/* The text must give one good record "ok", then fail on line bad_line. */
static void check_bad(const char *text, unsigned bad_line, const char *in_msg)
{
	struct ps_err err;
	char want[32];

	in_open(text);
	ps_err_clear(&err);
	objs[0] = ps_in_next(in, &err);
	assert_non_null(objs[0]);
	assert_string_equal(ps_json_str(objs[0], "kind"), "ok");
	assert_null(ps_in_next(in, &err));
	assert_int_equal(err.status, PS_EXIT_FAIL);
	assert_string_equal(err.code, "bad-record");
	snprintf(want, sizeof(want), "line %u ", bad_line);
	if (!strstr(err.msg, want))
		fail_msg("'%s' does not name %s", err.msg, want);
	if (in_msg && !strstr(err.msg, in_msg))
		fail_msg("'%s' does not say '%s'", err.msg, in_msg);
	cleanup(NULL);
}

static void test_in_bad_records(void **state)
{
	(void)state;
	/* Not objects. */
	check_bad("{\"kind\":\"ok\"}\n[1,2]\n", 2, NULL);
	check_bad("{\"kind\":\"ok\"}\n\"kind\"\n", 2, NULL);
	check_bad("{\"kind\":\"ok\"}\n\n42\n", 3, NULL);
	check_bad("{\"kind\":\"ok\"}\nnull\n", 2, NULL);
	/* No string "kind". */
	check_bad("{\"kind\":\"ok\"}\n{\"x\":1}\n", 2, "kind");
	check_bad("{\"kind\":\"ok\"}\n{}\n", 2, "kind");
	check_bad("{\"kind\":\"ok\"}\n{\"kind\":1}\n", 2, "kind");
	check_bad("{\"kind\":\"ok\"}\n{\"kind\":null}\n", 2, "kind");
	check_bad("{\"kind\":\"ok\"}\n{\"Kind\":\"a\"}\n", 2, "kind");
	/* Invalid JSON. */
	check_bad("{\"kind\":\"ok\"}\n\n\n{\"kind\":\n{\"kind\":\"b\"}\n", 4,
		  NULL);
	check_bad("{\"kind\":\"ok\"}\n{\"kind\":\"a\",}\n", 2, NULL);
	check_bad("{\"kind\":\"ok\"}\n{'kind':'a'}\n", 2, NULL);
	check_bad("{\"kind\":\"ok\"}\n{\"kind\":\"a\"} x\n", 2, NULL);
	/* Two records on one line. */
	check_bad("{\"kind\":\"ok\"}\n{\"kind\":\"a\"}{\"kind\":\"b\"}\n", 2,
		  NULL);
	/* A record split over two lines. */
	check_bad("{\"kind\":\"ok\"}\n{\"kind\":\n\"a\"}\n", 2, NULL);
	/* Not UTF-8. */
	check_bad("{\"kind\":\"ok\"}\n{\"kind\":\"Nov\xe1k\"}\n", 2, NULL);
	/* Duplicate keys. */
	check_bad("{\"kind\":\"ok\"}\n{\"kind\":\"a\",\"kind\":\"b\"}\n", 2,
		  NULL);
	check_bad("{\"kind\":\"ok\"}\n{\"kind\":\"a\",\"x\":1,\"x\":1}\n", 2,
		  NULL);
}

static void test_in_hint(void **state)
{
	struct ps_err err;

	(void)state;
	in_open("not json\n");
	ps_err_clear(&err);
	assert_null(ps_in_next(in, &err));
	assert_int_equal(err.status, PS_EXIT_FAIL);
	assert_non_null(strstr(err.msg, "line 1"));
	assert_true(err.hint[0] != '\0');
}

static void test_in_long_lines(void **state)
{
	const size_t big = 2u << 20; /* 2 MiB */
	struct ps_err err;
	char *x;

	(void)state;
	inf = tmpfile();
	assert_non_null(inf);
	/* Line 1: just under 1 MiB, fine. Line 2: 2 MiB. Line 3: fine. */
	x = malloc(big);
	assert_non_null(x);
	memset(x, 'x', big);
	fprintf(inf, "{\"kind\":\"ok\",\"x\":\"%.*s\"}\n", 1000000, x);
	fprintf(inf, "{\"kind\":\"big\",\"x\":\"%.*s\"}\n", (int)big, x);
	fprintf(inf, "{\"kind\":\"after\"}\n");
	free(x);
	rewind(inf);
	in = ps_in_new(inf);
	assert_non_null(in);

	ps_err_clear(&err);
	objs[0] = ps_in_next(in, &err);
	assert_non_null(objs[0]);
	assert_string_equal(ps_json_str(objs[0], "kind"), "ok");
	assert_int_equal(strlen(ps_json_str(objs[0], "x")), 1000000);

	assert_null(ps_in_next(in, &err));
	assert_int_equal(err.status, PS_EXIT_FAIL);
	assert_string_equal(err.code, "bad-record");
	assert_non_null(strstr(err.msg, "line 2"));
	assert_non_null(strstr(err.msg, "1 MiB"));
}

static void test_in_long_line_no_newline(void **state)
{
	const size_t big = (1u << 20) + 10;
	struct ps_err err;
	char *x;

	(void)state;
	inf = tmpfile();
	assert_non_null(inf);
	x = malloc(big);
	assert_non_null(x);
	memset(x, ' ', big); /* blanks: still too long, not "blank" */
	assert_int_equal(fwrite(x, 1, big, inf), big);
	free(x);
	rewind(inf);
	in = ps_in_new(inf);
	assert_non_null(in);
	ps_err_clear(&err);
	assert_null(ps_in_next(in, &err));
	assert_int_equal(err.status, PS_EXIT_FAIL);
	assert_non_null(strstr(err.msg, "line 1"));
}

/* ---- pass-through and helpers ---------------------------------------- */

static void test_pass_through(void **state)
{
	json_t *dst, *src, *src_copy;

	(void)state;
	dst = obj(0, "{\"kind\":\"cert\",\"state\":\"renewed\","
		     "\"user\":null,\"serial_hex\":\"0B\"}");
	src = obj(1, "{\"kind\":\"token\",\"state\":\"valid\","
		     "\"user\":\"jnovak\",\"x-custom\":{\"a\":[1,2]},"
		     "\"office\":\"Brno\",\"serial_hex\":\"0A\","
		     "\"cn\":\"Jan Nov\u00e1k\",\"days_left\":3,"
		     "\"message\":\"m\"}");
	src_copy = objs[2] = json_deep_copy(src);
	assert_int_equal(ps_record_pass_through(dst, src), 0);
	/* dst's own values stay, a null one too. */
	assert_string_equal(ps_json_str(dst, "kind"), "cert");
	assert_string_equal(ps_json_str(dst, "state"), "renewed");
	assert_string_equal(ps_json_str(dst, "serial_hex"), "0B");
	assert_true(json_is_null(json_object_get(dst, "user")));
	/* Fields psrenew does not define are copied. */
	assert_string_equal(ps_json_str(dst, "office"), "Brno");
	assert_true(json_equal(json_object_get(dst, "x-custom"),
			       json_object_get(src, "x-custom")));
	/* Fields psrenew defines describe src only: not copied even when
	 * dst lacks them. */
	assert_null(json_object_get(dst, "cn"));
	assert_null(json_object_get(dst, "days_left"));
	assert_null(json_object_get(dst, "message"));
	assert_int_equal(json_object_size(dst), 6);
	/* src is unchanged. */
	assert_true(json_equal(src, src_copy));

	/* Into an empty object: only the foreign fields. */
	objs[3] = json_object();
	assert_int_equal(ps_record_pass_through(objs[3], src), 0);
	assert_int_equal(json_object_size(objs[3]), 3);
	assert_string_equal(ps_json_str(objs[3], "user"), "jnovak");
	assert_string_equal(ps_json_str(objs[3], "office"), "Brno");
	assert_non_null(json_object_get(objs[3], "x-custom"));
	/* From an empty object: nothing. */
	objs[4] = json_object();
	assert_int_equal(ps_record_pass_through(dst, objs[4]), 0);
	assert_int_equal(json_object_size(dst), 6);
}

static int valid_utf8_json_string(const json_t *v)
{
	const char *s = json_string_value(v);
	json_t *back;
	char *dump;
	int ok;

	if (!s)
		return 0;
	dump = json_dumps(v, JSON_ENCODE_ANY);
	if (!dump)
		return 0;
	back = json_loads(dump, JSON_DECODE_ANY, NULL);
	ok = back && json_equal(back, v);
	json_decref(back);
	free(dump);
	return ok;
}

static void test_set_str(void **state)
{
	json_t *o;
	const char *s;

	(void)state;
	o = objs[0] = json_object();
	assert_int_equal(ps_json_set_str(o, "ok", "Nov\xc3\xa1k"), 0);
	assert_string_equal(ps_json_str(o, "ok"), "Nov\xc3\xa1k");

	/* Latin-1 "Novák": not UTF-8. */
	assert_int_equal(ps_json_set_str(o, "latin1", "Nov\xe1k"), 0);
	assert_true(valid_utf8_json_string(json_object_get(o, "latin1")));
	s = ps_json_str(o, "latin1");
	assert_non_null(s);
	assert_true(strncmp(s, "Nov", 3) == 0); /* ASCII is kept */
	assert_int_equal(s[strlen(s) - 1], 'k');
	assert_null(strchr(s, 0xe1));

	/* Truncated and overlong sequences, a lone continuation byte. */
	assert_int_equal(ps_json_set_str(o, "trunc", "abc\xc3"), 0);
	assert_true(valid_utf8_json_string(json_object_get(o, "trunc")));
	assert_true(strncmp(ps_json_str(o, "trunc"), "abc", 3) == 0);
	assert_int_equal(ps_json_set_str(o, "overlong", "\xc0\xaf/x"), 0);
	assert_true(valid_utf8_json_string(json_object_get(o, "overlong")));
	assert_int_equal(ps_json_set_str(o, "cont", "\x80"), 0);
	assert_true(valid_utf8_json_string(json_object_get(o, "cont")));
	assert_int_equal(ps_json_set_str(o, "surrogate", "\xed\xa0\x80"), 0);
	assert_true(valid_utf8_json_string(json_object_get(o, "surrogate")));

	/* NULL: a JSON null. */
	assert_int_equal(ps_json_set_str(o, "none", NULL), 0);
	assert_true(json_is_null(json_object_get(o, "none")));
	assert_null(ps_json_str(o, "none"));

	/* Replacing a value. */
	assert_int_equal(ps_json_set_str(o, "ok", "again"), 0);
	assert_string_equal(ps_json_str(o, "ok"), "again");

	/* The object dumps as valid JSON. */
	char *dump = json_dumps(o, JSON_COMPACT);

	assert_non_null(dump);
	objs[1] = json_loads(dump, 0, NULL);
	free(dump);
	assert_non_null(objs[1]);
	assert_true(json_equal(objs[1], o));

	/* ps_json_str on other types and missing keys. */
	json_object_set_new(o, "n", json_integer(1));
	assert_null(ps_json_str(o, "n"));
	assert_null(ps_json_str(o, "missing"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_json_lines, cleanup),
		cmocka_unit_test_teardown(test_json_lines_parse_back, cleanup),
		cmocka_unit_test_teardown(test_auto_mode_on_a_pipe, cleanup),
		cmocka_unit_test_teardown(test_write_errors, cleanup),
		cmocka_unit_test_teardown(test_human_table, cleanup),
		cmocka_unit_test_teardown(test_human_table_exact, cleanup),
		cmocka_unit_test_teardown(test_record_error, cleanup),
		cmocka_unit_test_teardown(test_in_lines, cleanup),
		cmocka_unit_test_teardown(test_in_empty, cleanup),
		cmocka_unit_test_teardown(test_in_bad_records, cleanup),
		cmocka_unit_test_teardown(test_in_hint, cleanup),
		cmocka_unit_test_teardown(test_in_long_lines, cleanup),
		cmocka_unit_test_teardown(test_in_long_line_no_newline,
					  cleanup),
		cmocka_unit_test_teardown(test_pass_through, cleanup),
		cmocka_unit_test_teardown(test_set_str, cleanup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

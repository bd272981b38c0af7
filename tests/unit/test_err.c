/* Unit tests: lib/err.c (exit statuses, ps_err_set). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include <psrenew/err.h>

/* From the most severe to the least (psrenew(7)). */
static const int order[] = { PS_EXIT_USAGE,   PS_EXIT_FAIL,    PS_EXIT_TOKEN,
			     PS_EXIT_REFUSED, PS_EXIT_TEMP,    PS_EXIT_PENDING,
			     PS_EXIT_OK };
#define NORDER (sizeof(order) / sizeof(order[0]))

static void test_exit_values(void **state)
{
	(void)state;
	/* The numbers are an interface: scripts test them. */
	assert_int_equal(PS_EXIT_OK, 0);
	assert_int_equal(PS_EXIT_FAIL, 1);
	assert_int_equal(PS_EXIT_USAGE, 2);
	assert_int_equal(PS_EXIT_PENDING, 3);
	assert_int_equal(PS_EXIT_TEMP, 4);
	assert_int_equal(PS_EXIT_REFUSED, 5);
	assert_int_equal(PS_EXIT_TOKEN, 6);
}

static void test_worse_order(void **state)
{
	(void)state;
	for (size_t i = 0; i < NORDER; i++)
		for (size_t j = 0; j < NORDER; j++) {
			int want = order[i < j ? i : j];

			assert_int_equal(ps_exit_worse(order[i], order[j]),
					 want);
		}
}

static void test_worse_commutative(void **state)
{
	(void)state;
	for (int a = 0; a <= PS_EXIT_TOKEN; a++)
		for (int b = 0; b <= PS_EXIT_TOKEN; b++)
			assert_int_equal(ps_exit_worse(a, b),
					 ps_exit_worse(b, a));
}

static void test_worse_chain(void **state)
{
	(void)state;
	/* Spot checks that read like the documentation. */
	assert_int_equal(ps_exit_worse(2, 1), 2);
	assert_int_equal(ps_exit_worse(1, 6), 1);
	assert_int_equal(ps_exit_worse(6, 5), 6);
	assert_int_equal(ps_exit_worse(5, 4), 5);
	assert_int_equal(ps_exit_worse(4, 3), 4);
	assert_int_equal(ps_exit_worse(3, 0), 3);
	assert_int_equal(ps_exit_worse(0, 0), 0);
	assert_int_equal(ps_exit_worse(0, 3), 3);
	assert_int_equal(ps_exit_worse(6, 2), 2);

	/* Folding a batch. */
	int st = PS_EXIT_OK;
	const int batch[] = { 0, 3, 0, 5, 4, 0 };

	for (size_t i = 0; i < sizeof(batch) / sizeof(batch[0]); i++)
		st = ps_exit_worse(st, batch[i]);
	assert_int_equal(st, PS_EXIT_REFUSED);
}

static void test_worse_unknown_status(void **state)
{
	(void)state;
	/* An unknown status is never taken as "done". */
	assert_int_not_equal(ps_exit_worse(0, 99), 0);
	assert_int_not_equal(ps_exit_worse(99, 0), 0);
	assert_int_not_equal(ps_exit_worse(0, -1), 0);
	/* ...and never hides a usage error. */
	assert_int_equal(ps_exit_worse(99, PS_EXIT_USAGE), PS_EXIT_USAGE);
	assert_int_equal(ps_exit_worse(PS_EXIT_USAGE, 99), PS_EXIT_USAGE);
}

static void test_set_fields(void **state)
{
	struct ps_err err;

	(void)state;
	memset(&err, 0x55, sizeof(err));
	ps_err_clear(&err);
	assert_int_equal(err.status, 0);
	assert_string_equal(err.code, "");
	assert_string_equal(err.msg, "");
	assert_string_equal(err.hint, "");

	assert_int_equal(ps_err_set(&err, PS_EXIT_TOKEN, "token-full",
				    "delete an old key", "token %s has %d free",
				    "Jan", 0),
			 PS_EXIT_TOKEN);
	assert_int_equal(err.status, PS_EXIT_TOKEN);
	assert_string_equal(err.code, "token-full");
	assert_string_equal(err.msg, "token Jan has 0 free");
	assert_string_equal(err.hint, "delete an old key");

	/* NULL code and NULL hint; an earlier hint does not survive. */
	assert_int_equal(ps_err_set(&err, PS_EXIT_FAIL, NULL, NULL, "x"),
			 PS_EXIT_FAIL);
	assert_int_equal(err.status, PS_EXIT_FAIL);
	assert_string_equal(err.code, "error");
	assert_string_equal(err.msg, "x");
	assert_string_equal(err.hint, "");

	ps_err_clear(NULL); /* no crash */
}

static void test_set_null_err(void **state)
{
	(void)state;
	assert_int_equal(ps_err_set(NULL, PS_EXIT_USAGE, "usage", "h", "%s",
				    "m"),
			 PS_EXIT_USAGE);
	assert_int_equal(ps_err_set(NULL, PS_EXIT_OK, NULL, NULL, "m"), 0);
}

static void test_set_truncates(void **state)
{
	struct ps_err err;
	char big[4000];
	char code[100];

	(void)state;
	memset(big, 'm', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memset(code, 'c', sizeof(code) - 1);
	code[sizeof(code) - 1] = '\0';

	/* Canaries on both sides of the struct. */
	struct {
		char before[64];
		struct ps_err e;
		char after[64];
	} box;

	memset(&box, 'Z', sizeof(box));
	assert_int_equal(ps_err_set(&box.e, PS_EXIT_FAIL, code, big,
				    "%s|%s", big, big),
			 PS_EXIT_FAIL);
	assert_int_equal(strlen(box.e.code), sizeof(box.e.code) - 1);
	assert_int_equal(strlen(box.e.msg), sizeof(box.e.msg) - 1);
	assert_int_equal(strlen(box.e.hint), sizeof(box.e.hint) - 1);
	assert_memory_equal(box.e.msg, big, sizeof(box.e.msg) - 1);
	assert_memory_equal(box.e.code, code, sizeof(box.e.code) - 1);
	for (size_t i = 0; i < sizeof(box.before); i++) {
		assert_int_equal(box.before[i], 'Z');
		assert_int_equal(box.after[i], 'Z');
	}

	/* A message of exactly sizeof(msg) - 1 characters fits whole. */
	big[sizeof(err.msg) - 1] = '\0';
	ps_err_set(&err, PS_EXIT_FAIL, "c", NULL, "%s", big);
	assert_string_equal(err.msg, big);
}

static void test_add_openssl(void **state)
{
	struct ps_err err;

	(void)state;
	ERR_clear_error();
	ps_err_set(&err, PS_EXIT_FAIL, "c", NULL, "base");
	ps_err_add_openssl(&err); /* empty queue: nothing added */
	assert_string_equal(err.msg, "base");

	/* Put an error on the queue: an unknown digest. */
	assert_null(EVP_MD_fetch(NULL, "no-such-digest", NULL));
	assert_int_not_equal(ERR_peek_error(), 0);
	ps_err_add_openssl(&err);
	assert_true(strncmp(err.msg, "base (", 6) == 0);
	assert_int_equal(err.msg[strlen(err.msg) - 1], ')');
	assert_int_equal(ERR_peek_error(), 0); /* queue cleared */

	/* A full message stays NUL-terminated. */
	char big[600];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ps_err_set(&err, PS_EXIT_FAIL, "c", NULL, "%s", big);
	assert_null(EVP_MD_fetch(NULL, "no-such-digest", NULL));
	ps_err_add_openssl(&err);
	assert_int_equal(strlen(err.msg), sizeof(err.msg) - 1);

	/* NULL err: just clears the queue. */
	assert_null(EVP_MD_fetch(NULL, "no-such-digest", NULL));
	ps_err_add_openssl(NULL);
	assert_int_equal(ERR_peek_error(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_values),
		cmocka_unit_test(test_worse_order),
		cmocka_unit_test(test_worse_commutative),
		cmocka_unit_test(test_worse_chain),
		cmocka_unit_test(test_worse_unknown_status),
		cmocka_unit_test(test_set_fields),
		cmocka_unit_test(test_set_null_err),
		cmocka_unit_test(test_set_truncates),
		cmocka_unit_test(test_add_openssl),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

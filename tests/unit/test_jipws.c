/* Unit tests: lib/jipws.c, the editing web service's comparisons (numbers
 * in decimal or hexadecimal, issuers as DNs). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <psrenew/jipws.h>

static void test_number(void **state)
{
	(void)state;
	assert_true(ps_jipws_number_equal("0A0B", "0A0B"));
	assert_true(ps_jipws_number_equal("a0b", "0A0B"));
	assert_true(ps_jipws_number_equal("0x0a0b", "0A0B"));
	assert_true(ps_jipws_number_equal("0a:0b", "0A0B"));
	assert_true(ps_jipws_number_equal("2571", "0A0B")); /* decimal */
	assert_true(ps_jipws_number_equal("CAFE", "00CAFE"));
	assert_false(ps_jipws_number_equal("0A0C", "0A0B"));
	assert_false(ps_jipws_number_equal("2572", "0A0B"));
	assert_false(ps_jipws_number_equal("", "0A0B"));
	assert_false(ps_jipws_number_equal("0A0B-", "0A0B"));
	assert_false(ps_jipws_number_equal("zz", "0A0B"));
}

static void test_dn(void **state)
{
	const char *a = "CN=PostSignum Qualified CA 4,O=Česká pošta\\, s.p.,"
			"organizationIdentifier=NTRCZ-47114983,C=CZ";

	(void)state;
	assert_true(ps_jipws_dn_equal(a, a));
	/* spaces, case of types and ASCII values, X.500 order, OID. form */
	assert_true(ps_jipws_dn_equal(
	    a, "C=CZ, OID.2.5.4.97=NTRCZ-47114983, O=\"Česká pošta, s.p.\", "
	       "cn=postsignum  qualified CA 4"));
	assert_true(ps_jipws_dn_equal(a, "CN=PostSignum Qualified CA 4, "
					 "O=Česká pošta\\2C s.p., "
					 "2.5.4.97=NTRCZ-47114983, C=CZ"));
	assert_false(ps_jipws_dn_equal(a,
				       "CN=PostSignum Qualified CA 5,O=Česká "
				       "pošta\\, s.p.,organizationIdentifier="
				       "NTRCZ-47114983,C=CZ"));
	/* an attribute more or less is another issuer */
	assert_false(ps_jipws_dn_equal(a,
				       "CN=PostSignum Qualified CA 4,O=Česká "
				       "pošta\\, s.p.,C=CZ"));
	assert_false(ps_jipws_dn_equal("CN=x,C=CZ", "CN=x,O=y,C=CZ"));
	assert_false(ps_jipws_dn_equal("", ""));
	assert_false(ps_jipws_dn_equal("no DN", "no DN"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_number),
		cmocka_unit_test(test_dn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

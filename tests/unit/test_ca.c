/* Unit tests: lib/ca.c (a channel's configuration, its driver, many polls
 * at once or one after the other). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <psrenew/ca.h>
#include <psrenew/ca_driver.h>
#include <psrenew/config.h>

static char tmpdir[64], helper[128], conf[128];
static struct ps_config cfg;

static int put(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		return -1;
	return chmod(path, mode);
}

static int group_setup(void **state)
{
	char text[512];
	struct ps_err err;

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/psrenew-test-ca.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	/* A certmonger helper whose CA cannot be reached (exit 3), saying
	 * which operation and cookie it was given. */
	snprintf(helper, sizeof(helper), "%s/helper", tmpdir);
	if (put(helper,
		"#!/bin/sh\necho \"down $CERTMONGER_OPERATION "
		"$CERTMONGER_CA_COOKIE\"\nexit 3\n",
		0700))
		return -1;
	snprintf(conf, sizeof(conf), "%s/psrenew.conf", tmpdir);
	snprintf(text, sizeof(text),
		 "[ca.web]\nchannel = https://est.example:8443\ntype = est\n"
		 "timeout = 42\nca-bundle = /etc/ssl/extra.pem\n"
		 "[ca.slow]\nchannel = helper:%s\ntimeout = 7\n"
		 "[ca.none]\ntimeout = 9\n",
		 helper);
	if (put(conf, text, 0600))
		return -1;
	return ps_config_load(conf, &cfg, &err) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	ps_config_free(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* A [ca.NAME] with an https:// channel and a type: the typed channel,
 * named as configured, with the section's time-out and ca-bundle. */
static void test_named_https_channel(void **state)
{
	struct ps_ca *ca = NULL;
	struct ps_err err;

	(void)state;
	assert_int_equal(ps_ca_open("web", &cfg, &ca, &err), 0);
	assert_string_equal(ps_ca_channel(ca), "est://est.example:8443");
	assert_string_equal(ps_ca_name(ca), "web");
	assert_string_equal(ca->section, "ca.web");
	assert_int_equal(ca->timeout, 42);
	assert_string_equal(ca->ca_bundle, "/etc/ssl/extra.pem");
	assert_int_equal(ps_ca_polls_many(ca), 1);
	ps_ca_close(ca);
}

static void test_named_helper_channel(void **state)
{
	struct ps_ca *ca = NULL;
	struct ps_err err;

	(void)state;
	assert_int_equal(ps_ca_open("slow", &cfg, &ca, &err), 0);
	assert_int_equal(ca->timeout, 7);
	assert_null(ca->ca_bundle);
	assert_int_equal(ps_ca_polls_many(ca), 0);
	ps_ca_close(ca);
	/* a time-out that is no number of seconds: refused when the file is
	 * read, naming the file, the line and the key */
	{
		char bad[sizeof(tmpdir) + 16];
		struct ps_config c2;

		snprintf(bad, sizeof(bad), "%s/bad.conf", tmpdir);
		assert_int_equal(
		    put(bad, "[ca.bad]\nchannel = helper:/bin/true\ntimeout = -5\n",
			0600),
		    0);
		assert_int_equal(ps_config_load(bad, &c2, &err), 2);
		assert_string_equal(err.code, "bad-config");
		assert_non_null(strstr(err.msg, "bad.conf"));
		assert_non_null(strstr(err.msg, "line 3"));
		assert_non_null(strstr(err.msg, "timeout"));
	}
}

/* A spec given as such: no section, the defaults. */
static void test_spec_as_given(void **state)
{
	struct ps_ca *ca = NULL;
	struct ps_err err;
	char spec[160];

	(void)state;
	snprintf(spec, sizeof(spec), "helper:%s", helper);
	assert_int_equal(ps_ca_open(spec, &cfg, &ca, &err), 0);
	assert_string_equal(ps_ca_channel(ca), spec);
	assert_string_equal(ca->section, "");
	assert_int_equal(ca->timeout, 300);
	ps_ca_close(ca);
}

static void test_unknown_channels(void **state)
{
	struct ps_ca *ca = (struct ps_ca *)1;
	struct ps_err err;

	(void)state;
	assert_int_equal(ps_ca_open("none", &cfg, &ca, &err), 2);
	assert_null(ca);
	assert_string_equal(err.code, "no-ca");
	assert_int_equal(ps_ca_open("ftp://ca.example", &cfg, &ca, &err), 2);
	assert_non_null(strstr(err.msg, "unknown CA channel"));
	assert_int_equal(ps_ca_open("", &cfg, &ca, &err), 2);
	assert_int_equal(ps_ca_open("nosuch", NULL, &ca, &err), 2);
}

static size_t order[4], n_answered;

static void answered(size_t i, void *ctx)
{
	assert_ptr_equal(ctx, &n_answered);
	order[n_answered++] = i;
}

/* A channel without a poll_many of its own: one poll after the other,
 * each answered as it comes. */
static void test_poll_many_fallback(void **state)
{
	struct ps_ca *ca = NULL;
	struct ps_err err, errs[3];
	struct ps_ca_request reqs[3] = { { .cookie = "c0" },
					 { .cookie = "c1" },
					 { .cookie = "c2" } };
	struct ps_ca_reply replies[3];
	int rcs[3] = { -1, -1, -1 };

	(void)state;
	assert_int_equal(ps_ca_open("slow", &cfg, &ca, &err), 0);
	n_answered = 0;
	ps_ca_poll_many(ca, reqs, 3, 8, replies, rcs, errs, answered,
			&n_answered);
	assert_int_equal(n_answered, 3);
	for (size_t i = 0; i < 3; i++) {
		char want[32];

		snprintf(want, sizeof(want), "down POLL c%zu", i);
		assert_int_equal(order[i], i);
		assert_int_equal(rcs[i], 0);
		assert_int_equal(replies[i].status, PS_CA_UNREACHABLE);
		assert_string_equal(replies[i].message, want);
		ps_ca_reply_free(&replies[i]);
	}
	ps_ca_close(ca);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_named_https_channel),
		cmocka_unit_test(test_named_helper_channel),
		cmocka_unit_test(test_spec_as_given),
		cmocka_unit_test(test_unknown_channels),
		cmocka_unit_test(test_poll_many_fallback),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

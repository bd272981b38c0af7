/* Unit tests: lib/secret.c (PIN and password sources). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <psrenew/secret.h>

extern char **environ;

static char tmpdir[64];
static char *secret; /* released by the teardown, even after a failure */

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/psrenew-test-secret.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static int release(void **state)
{
	(void)state;
	ps_secret_free(secret);
	secret = NULL;
	return 0;
}

/* Writes len bytes of data to a new file in tmpdir; returns "file:PATH". */
static char *file_source(const char *name, const char *data, size_t len)
{
	static char src[256];
	char path[200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	/* a secret file others may read is refused: 0600 as documented */
	assert_int_equal(chmod(path, 0600), 0);
	snprintf(src, sizeof(src), "file:%s", path);
	return src;
}

static int read_ok(const char *source)
{
	struct ps_err err;
	int rc;

	ps_err_clear(&err);
	ps_secret_free(secret);
	secret = (char *)"junk";
	rc = ps_secret_read(source, NULL, &secret, &err);
	if (rc)
		fail_msg("'%s': %d %s: %s", source, rc, err.code, err.msg);
	assert_non_null(secret);
	return rc;
}

/* Reads from source, which must fail with status and code. */
static void read_fails(const char *source, int status, const char *code,
		       struct ps_err *err)
{
	char *out = (char *)"junk";
	int rc;

	ps_err_clear(err);
	rc = ps_secret_read(source, NULL, &out, err);
	if (rc != status)
		fail_msg("'%.60s': status %d (%s), want %d", source, rc,
			 err->code, status);
	assert_null(out);
	assert_int_equal(err->status, status);
	assert_string_equal(err->code, code);
	assert_true(err->msg[0] != '\0');
}

static int in_environ(const char *name)
{
	size_t n = strlen(name);

	for (char **e = environ; *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return 1;
	return 0;
}

/* ---- env: --------------------------------------------------------------- */

static void test_env(void **state)
{
	(void)state;
	assert_int_equal(setenv("PSRENEW_TEST_PIN", "12 34\xc3\xa1", 1), 0);
	assert_true(in_environ("PSRENEW_TEST_PIN"));
	read_ok("env:PSRENEW_TEST_PIN");
	assert_string_equal(secret, "12 34\xc3\xa1");
	/* Gone from the environment: children never see it. */
	assert_null(getenv("PSRENEW_TEST_PIN"));
	assert_false(in_environ("PSRENEW_TEST_PIN"));
	/* Other variables stay. */
	assert_non_null(getenv("PATH"));

	/* A second read finds nothing. */
	struct ps_err err;

	read_fails("env:PSRENEW_TEST_PIN", PS_EXIT_USAGE, "secret-unset",
		   &err);
	assert_non_null(strstr(err.msg, "PSRENEW_TEST_PIN"));
}

static void test_env_edge(void **state)
{
	struct ps_err err;
	char big[PS_SECRET_MAX + 2];

	(void)state;
	/* Empty value: an empty secret, not an error. */
	assert_int_equal(setenv("PSRENEW_TEST_PIN", "", 1), 0);
	read_ok("env:PSRENEW_TEST_PIN");
	assert_string_equal(secret, "");
	assert_null(getenv("PSRENEW_TEST_PIN"));

	/* The whole value, newlines included (it is not a line). */
	assert_int_equal(setenv("PSRENEW_TEST_PIN", "a\nb", 1), 0);
	read_ok("env:PSRENEW_TEST_PIN");
	assert_string_equal(secret, "a\nb");

	/* PS_SECRET_MAX bytes fit; one more does not. */
	memset(big, 'p', PS_SECRET_MAX);
	big[PS_SECRET_MAX] = '\0';
	assert_int_equal(setenv("PSRENEW_TEST_PIN", big, 1), 0);
	read_ok("env:PSRENEW_TEST_PIN");
	assert_int_equal(strlen(secret), PS_SECRET_MAX);
	assert_string_equal(secret, big);

	big[PS_SECRET_MAX] = 'p';
	big[PS_SECRET_MAX + 1] = '\0';
	assert_int_equal(setenv("PSRENEW_TEST_PIN", big, 1), 0);
	read_fails("env:PSRENEW_TEST_PIN", PS_EXIT_USAGE, "secret-too-long",
		   &err);
	assert_null(strstr(err.msg, "pppppppp"));
	unsetenv("PSRENEW_TEST_PIN");

	read_fails("env:PSRENEW_TEST_NEVER_SET", PS_EXIT_USAGE,
		   "secret-unset", &err);
	read_fails("env:", PS_EXIT_USAGE, "secret-unset", &err);
}

/* ---- file: -------------------------------------------------------------- */

static void test_file(void **state)
{
	(void)state;
	read_ok(file_source("lf", "1234\nsecond line\n", 17));
	assert_string_equal(secret, "1234");
	read_ok(file_source("crlf", "1234\r\nsecond\r\n", 14));
	assert_string_equal(secret, "1234");
	read_ok(file_source("nonl", "5678", 4));
	assert_string_equal(secret, "5678");
	read_ok(file_source("cr-at-eof", "5678\r", 5));
	assert_string_equal(secret, "5678");
	read_ok(file_source("empty", "", 0));
	assert_string_equal(secret, "");
	read_ok(file_source("emptyline", "\nnext\n", 6));
	assert_string_equal(secret, "");
	/* Only the line end is taken off: inner CR and spaces are kept. */
	read_ok(file_source("inner", " a\rb \n", 6));
	assert_string_equal(secret, " a\rb ");
	read_ok(file_source("utf8", "Nov\xc3\xa1k\n", 7));
	assert_string_equal(secret, "Nov\xc3\xa1k");
}

static void test_file_errors(void **state)
{
	struct ps_err err;
	char src[256];
	char big[3000];

	(void)state;
	snprintf(src, sizeof(src), "file:%s/missing", tmpdir);
	read_fails(src, PS_EXIT_USAGE, "secret-unreadable", &err);
	assert_non_null(strstr(err.msg, "missing"));
	assert_true(err.hint[0] != '\0');

	/* A directory is not a secret file. */
	snprintf(src, sizeof(src), "file:%s", tmpdir);
	read_fails(src, PS_EXIT_USAGE, "secret-unreadable", &err);

	read_fails("file:", PS_EXIT_USAGE, "secret-unreadable", &err);

	/* Far too long, with and without a newline. */
	memset(big, 's', sizeof(big));
	read_fails(file_source("big", big, sizeof(big)), PS_EXIT_USAGE,
		   "secret-too-long", &err);
	big[PS_SECRET_MAX + 1] = '\n';
	read_fails(file_source("big2", big, sizeof(big)), PS_EXIT_USAGE,
		   "secret-too-long", &err);
	/* The secret is not echoed. */
	assert_null(strstr(err.msg, "ssssssss"));
}

/* ---- fd: ---------------------------------------------------------------- */

static void test_fd_pipe(void **state)
{
	int p[2];
	char src[32];
	char rest[16];
	ssize_t n;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "pipe-pin\r\nrest", 14), 14);
	assert_int_equal(close(p[1]), 0);
	snprintf(src, sizeof(src), "fd:%d", p[0]);
	read_ok(src);
	assert_string_equal(secret, "pipe-pin");
	/* Only the first line was consumed. */
	n = read(p[0], rest, sizeof(rest));
	assert_int_equal(n, 4);
	assert_memory_equal(rest, "rest", 4);
	close(p[0]);

	/* An empty pipe at EOF: an empty secret. */
	assert_int_equal(pipe(p), 0);
	close(p[1]);
	snprintf(src, sizeof(src), "fd:%d", p[0]);
	read_ok(src);
	assert_string_equal(secret, "");
	close(p[0]);
}

static void test_fd_errors(void **state)
{
	struct ps_err err;
	int p[2];
	char src[32];
	char big[PS_SECRET_MAX + 100];

	(void)state;
	read_fails("fd:", PS_EXIT_USAGE, "bad-secret-source", &err);
	read_fails("fd:abc", PS_EXIT_USAGE, "bad-secret-source", &err);
	read_fails("fd:3x", PS_EXIT_USAGE, "bad-secret-source", &err);
	read_fails("fd:-1", PS_EXIT_USAGE, "bad-secret-source", &err);
	read_fails("fd:99999999999999999999", PS_EXIT_USAGE,
		   "bad-secret-source", &err);
	/* A closed descriptor. */
	read_fails("fd:987", PS_EXIT_USAGE, "secret-unreadable", &err);

	/* Overlong through a pipe. */
	assert_int_equal(pipe(p), 0);
	memset(big, 'q', sizeof(big));
	assert_int_equal(write(p[1], big, sizeof(big)), (ssize_t)sizeof(big));
	close(p[1]);
	snprintf(src, sizeof(src), "fd:%d", p[0]);
	read_fails(src, PS_EXIT_USAGE, "secret-too-long", &err);
	close(p[0]);
}

/* The limit is PS_SECRET_MAX bytes whatever the source: env: takes a
 * secret of exactly PS_SECRET_MAX bytes, so file: and fd: must too (the
 * message for a refused one says "longer than 1024 bytes"). */
static void test_max_length_same_for_all_sources(void **state)
{
	char big[PS_SECRET_MAX + 2];
	char src[32];
	int p[2];

	(void)state;
	memset(big, 'm', PS_SECRET_MAX);
	big[PS_SECRET_MAX] = '\n';
	big[PS_SECRET_MAX + 1] = '\0';

	/* PS_SECRET_MAX - 1: accepted everywhere. */
	read_ok(file_source("max-1", big + 1, PS_SECRET_MAX));
	assert_int_equal(strlen(secret), PS_SECRET_MAX - 1);

	/* PS_SECRET_MAX from the environment: accepted. */
	big[PS_SECRET_MAX] = '\0';
	assert_int_equal(setenv("PSRENEW_TEST_PIN", big, 1), 0);
	read_ok("env:PSRENEW_TEST_PIN");
	assert_int_equal(strlen(secret), PS_SECRET_MAX);
	big[PS_SECRET_MAX] = '\n';

	/* PS_SECRET_MAX from a file, with its newline. */
	read_ok(file_source("max", big, PS_SECRET_MAX + 1));
	assert_int_equal(strlen(secret), PS_SECRET_MAX);

	/* PS_SECRET_MAX from a pipe. */
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], big, PS_SECRET_MAX + 1),
			 PS_SECRET_MAX + 1);
	close(p[1]);
	snprintf(src, sizeof(src), "fd:%d", p[0]);
	read_ok(src);
	close(p[0]);
	assert_int_equal(strlen(secret), PS_SECRET_MAX);
}

/* ---- refused sources ---------------------------------------------------- */

static void test_pass_refused(void **state)
{
	struct ps_err err;

	(void)state;
	read_fails("pass:x", PS_EXIT_USAGE, "secret-in-argv", &err);
	read_fails("pass:Hunter2-4711", PS_EXIT_USAGE, "secret-in-argv", &err);
	assert_null(strstr(err.msg, "Hunter2-4711"));
	assert_null(strstr(err.hint, "Hunter2-4711"));
	read_fails("pass:", PS_EXIT_USAGE, "secret-in-argv", &err);
}

static void test_unknown_source_not_echoed(void **state)
{
	static const char *const bad[] = {
		"4711",	   "Hunter2-4711", "Env:PIN", "ENV:PIN", "stdin",
		"file",	   "env",	   "fd",      "-",	 "",
		"prompt:", "Prompt",	   " env:PIN", "passphrase",
		"pas:4711", "4711\n",
	};
	/* Typed-in PINs and passwords: none may appear in the message. */
	static const char *const secrets[] = {
		"4711", "Hunter2-4711", "Xq7#Zr9!Pw", "passphrase", "pas:4711",
		"0000", "correct horse battery staple",
	};
	struct ps_err err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		read_fails(bad[i], PS_EXIT_USAGE, "bad-secret-source", &err);
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		read_fails(secrets[i], PS_EXIT_USAGE, "bad-secret-source",
			   &err);
		if (strstr(err.msg, secrets[i]) || strstr(err.hint, secrets[i]))
			fail_msg("'%s' is echoed: %s / %s", secrets[i],
				 err.msg, err.hint);
		ps_err_clear(&err);
		assert_int_equal(ps_secret_check_source(secrets[i], &err),
				 PS_EXIT_USAGE);
		assert_null(strstr(err.msg, secrets[i]));
		assert_null(strstr(err.hint, secrets[i]));
	}
	/* Not even a piece of it. */
	read_fails("Xq7#Zr9!Pw", PS_EXIT_USAGE, "bad-secret-source", &err);
	assert_null(strstr(err.msg, "Xq7"));
	assert_null(strstr(err.msg, "Zr9"));
	assert_null(strstr(err.hint, "Xq7"));
}

static void test_check_source(void **state)
{
	static const char *const good[] = { "prompt", "env:PIN", "env:",
					    "file:/etc/pin", "file:",
					    "fd:3", "fd:x" };
	struct ps_err err;

	(void)state;
	assert_int_equal(ps_secret_check_source(NULL, &err), 0);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (ps_secret_check_source(good[i], &err) != 0)
			fail_msg("'%s' refused", good[i]);

	ps_err_clear(&err);
	assert_int_equal(ps_secret_check_source("pass:1234", &err),
			 PS_EXIT_USAGE);
	assert_string_equal(err.code, "secret-in-argv");
	assert_null(strstr(err.msg, "1234"));

	ps_err_clear(&err);
	assert_int_equal(ps_secret_check_source("1234", &err), PS_EXIT_USAGE);
	assert_string_equal(err.code, "bad-secret-source");
	assert_null(strstr(err.msg, "1234"));

	/* err may be NULL. */
	assert_int_equal(ps_secret_check_source("1234", NULL), PS_EXIT_USAGE);
	assert_int_equal(ps_secret_check_source("env:X", NULL), 0);

	/* Checking reads nothing: the variable is still there. */
	assert_int_equal(setenv("PSRENEW_TEST_PIN", "x", 1), 0);
	assert_int_equal(ps_secret_check_source("env:PSRENEW_TEST_PIN", &err),
			 0);
	assert_string_equal(getenv("PSRENEW_TEST_PIN"), "x");
	unsetenv("PSRENEW_TEST_PIN");
}

/* "prompt" without a controlling terminal: a usage error, not a hang. */
static void test_prompt_without_terminal(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct ps_err err;
		char *out = (char *)"junk";
		int rc;

		setsid(); /* no controlling terminal any more */
		rc = ps_secret_read(NULL, "PIN: ", &out, &err);
		if (rc == PS_EXIT_USAGE && !out &&
		    strcmp(err.code, "no-terminal") == 0) {
			rc = ps_secret_read("prompt", NULL, &out, &err);
			_exit(rc == PS_EXIT_USAGE && !out ? 0 : 20);
		}
		_exit(10 + (rc & 7));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_wipe_and_free(void **state)
{
	char *s;

	(void)state;
	ps_secret_free(NULL);
	assert_int_equal(setenv("PSRENEW_TEST_PIN", "to-wipe", 1), 0);
	assert_int_equal(ps_secret_read("env:PSRENEW_TEST_PIN", NULL, &s,
					NULL),
			 0);
	assert_string_equal(s, "to-wipe");
	ps_secret_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_env, release),
		cmocka_unit_test_teardown(test_env_edge, release),
		cmocka_unit_test_teardown(test_file, release),
		cmocka_unit_test_teardown(test_file_errors, release),
		cmocka_unit_test_teardown(test_fd_pipe, release),
		cmocka_unit_test_teardown(test_fd_errors, release),
		cmocka_unit_test_teardown(test_max_length_same_for_all_sources,
					  release),
		cmocka_unit_test(test_pass_refused),
		cmocka_unit_test(test_unknown_source_not_echoed),
		cmocka_unit_test(test_check_source),
		cmocka_unit_test(test_prompt_without_terminal),
		cmocka_unit_test(test_wipe_and_free),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

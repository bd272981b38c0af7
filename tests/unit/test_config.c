/* Unit tests: lib/config.c (psrenew.conf(5)). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <psrenew/cert.h>
#include <psrenew/config.h>

static char tmpdir[64];
static char *saved_home, *saved_xdg, *saved_env;
static struct ps_config cfg; /* freed by the teardown, even on failure */

static char *dup_env(const char *name)
{
	const char *v = getenv(name);

	return v ? strdup(v) : NULL;
}

static void restore_env(const char *name, const char *v)
{
	if (v)
		setenv(name, v, 1);
	else
		unsetenv(name);
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/psrenew-test-config.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	saved_home = dup_env("HOME");
	saved_xdg = dup_env("XDG_CONFIG_HOME");
	saved_env = dup_env("PSRENEW_CONFIG");
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	restore_env("HOME", saved_home);
	restore_env("XDG_CONFIG_HOME", saved_xdg);
	restore_env("PSRENEW_CONFIG", saved_env);
	free(saved_home);
	free(saved_xdg);
	free(saved_env);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Each test starts with no configuration in sight. */
static int setup(void **state)
{
	char d[128];

	(void)state;
	snprintf(d, sizeof(d), "%s/empty-home", tmpdir);
	mkdir(d, 0700);
	setenv("HOME", d, 1);
	setenv("XDG_CONFIG_HOME", d, 1);
	unsetenv("PSRENEW_CONFIG");
	memset(&cfg, 0, sizeof(cfg));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	ps_config_free(&cfg);
	return 0;
}

/* Writes text to tmpdir/name (directories made as needed); returns the
 * path in a static buffer. */
static const char *write_file(const char *name, const char *text)
{
	static char path[256];
	char cmd[400];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
	assert_int_equal(system(cmd), 0);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char example[] =
	"; psrenew.conf(5) example\n"
	"# another comment\n"
	"[defaults]\n"
	"module = /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so\n"
	"token = pkcs11:token=TokenME\n"
	"; a PIN SOURCE, never the PIN itself\n"
	"pin = file:/etc/psrenew/tokenme.pin\n"
	"module = /usr/lib/softhsm/libsofthsm2.so\n"
	"\n"
	"[jip-ca]\n"
	"PostSignum Qualified CA* = PostSignum QCA\n"
	"Test CA ? = Testovac\xc3\xad CA\n"
	"PostSignum* = PostSignum (any)\n"
	"\n"
	"[other]\n"
	"token = not a default\n"
	"\n"
	"[defaults]\n"
	"state-dir = /var/lib/psrenew\n";

static void test_load_file(void **state)
{
	const char *path = write_file("example.conf", example);
	struct ps_err err;

	(void)state;
	ps_err_clear(&err);
	assert_int_equal(ps_config_load(path, &cfg, &err), 0);
	assert_int_equal(err.status, 0);
	assert_non_null(cfg.path);
	assert_string_equal(cfg.path, path);
	assert_int_equal(cfg.n, 9);

	/* The last value wins. */
	assert_string_equal(ps_config_get(&cfg, "defaults", "module"),
			    "/usr/lib/softhsm/libsofthsm2.so");
	assert_string_equal(ps_config_get(&cfg, "defaults", "token"),
			    "pkcs11:token=TokenME");
	assert_string_equal(ps_config_get(&cfg, "defaults", "pin"),
			    "file:/etc/psrenew/tokenme.pin");
	/* A section may come back later in the file. */
	assert_string_equal(ps_config_get(&cfg, "defaults", "state-dir"),
			    "/var/lib/psrenew");
	assert_string_equal(ps_config_get(&cfg, "other", "token"),
			    "not a default");
	/* Not there. */
	assert_null(ps_config_get(&cfg, "defaults", "missing"));
	assert_null(ps_config_get(&cfg, "nosuch", "module"));
	assert_null(ps_config_get(&cfg, "Defaults", "module"));

	/* [jip-ca] in file order. */
	assert_int_equal(cfg.n_jip_ca, 3);
	assert_non_null(cfg.jip_ca);
	assert_string_equal(cfg.jip_ca[0].pattern, "PostSignum Qualified CA*");
	assert_string_equal(cfg.jip_ca[0].name, "PostSignum QCA");
	assert_string_equal(cfg.jip_ca[1].pattern, "Test CA ?");
	assert_string_equal(cfg.jip_ca[1].name, "Testovac\xc3\xad CA");
	assert_string_equal(cfg.jip_ca[2].pattern, "PostSignum*");
	assert_string_equal(cfg.jip_ca[2].name, "PostSignum (any)");
}

static void test_jip_ca_map_in_use(void **state)
{
	const char *path = write_file("example.conf", example);
	struct ps_err err;
	struct ps_cert c;

	(void)state;
	assert_int_equal(ps_config_load(path, &cfg, &err), 0);
	memset(&c, 0, sizeof(c));
	c.issuer_cn = (char *)"PostSignum Qualified CA 4";
	assert_string_equal(ps_cert_jip_ca(&c, cfg.jip_ca, cfg.n_jip_ca),
			    "PostSignum QCA");
	c.issuer_cn = (char *)"PostSignum Public CA 4";
	assert_string_equal(ps_cert_jip_ca(&c, cfg.jip_ca, cfg.n_jip_ca),
			    "PostSignum (any)");
	c.issuer_cn = (char *)"Test CA 1";
	assert_string_equal(ps_cert_jip_ca(&c, cfg.jip_ca, cfg.n_jip_ca),
			    "Testovac\xc3\xad CA");
	/* Then the built-in defaults. */
	c.issuer_cn = (char *)"I.CA Qualified 2 CA/RSA 02/2016";
	assert_string_equal(ps_cert_jip_ca(&c, cfg.jip_ca, cfg.n_jip_ca),
			    "I.CA");
	c.issuer_cn = (char *)"Nobody CA";
	assert_null(ps_cert_jip_ca(&c, cfg.jip_ca, cfg.n_jip_ca));
}

static void test_empty_and_no_jip_ca(void **state)
{
	struct ps_err err;
	const char *path;

	(void)state;
	path = write_file("empty.conf", "");
	assert_int_equal(ps_config_load(path, &cfg, &err), 0);
	assert_string_equal(cfg.path, path);
	assert_int_equal(cfg.n, 0);
	assert_int_equal(cfg.n_jip_ca, 0);
	assert_null(cfg.jip_ca);
	assert_null(ps_config_get(&cfg, "defaults", "module"));
	ps_config_free(&cfg);

	path = write_file("comments.conf", "; only\n# comments\n\n[defaults]\n");
	assert_int_equal(ps_config_load(path, &cfg, &err), 0);
	assert_int_equal(cfg.n, 0);
	ps_config_free(&cfg);

	/* An empty value is a value. */
	path = write_file("emptyval.conf", "[defaults]\ntoken =\n");
	assert_int_equal(ps_config_load(path, &cfg, &err), 0);
	assert_non_null(ps_config_get(&cfg, "defaults", "token"));
	assert_string_equal(ps_config_get(&cfg, "defaults", "token"), "");
}

static void check_syntax_error(const char *name, const char *text,
			       int line)
{
	struct ps_err err;
	const char *path = write_file(name, text);
	char want[32];

	ps_err_clear(&err);
	memset(&cfg, 0x5a, sizeof(cfg));
	assert_int_equal(ps_config_load(path, &cfg, &err), PS_EXIT_USAGE);
	assert_int_equal(err.status, PS_EXIT_USAGE);
	assert_string_equal(err.code, "bad-config");
	if (!strstr(err.msg, path))
		fail_msg("'%s' does not name the file", err.msg);
	snprintf(want, sizeof(want), "line %d", line);
	if (!strstr(err.msg, want))
		fail_msg("'%s' does not name %s", err.msg, want);
	assert_true(err.hint[0] != '\0');
	/* Nothing is left allocated. */
	assert_null(cfg.path);
	assert_null(cfg.e);
	assert_int_equal(cfg.n, 0);
	assert_null(cfg.jip_ca);
	assert_int_equal(cfg.n_jip_ca, 0);
}

static void test_syntax_errors(void **state)
{
	(void)state;
	check_syntax_error("bad1.conf",
			   "[defaults]\nmodule = /x.so\nthis line is bad\n"
			   "token = t\n",
			   3);
	check_syntax_error("bad2.conf", "[defaults\nmodule = /x.so\n", 1);
	check_syntax_error("bad3.conf",
			   "; c\n\n[defaults]\nmodule = /x.so\n\n\n"
			   "[jip-ca]\nPostSignum*\n",
			   8);
	/* Only the first error is named. */
	check_syntax_error("bad4.conf", "[a]\nx = 1\nbad\nworse\n", 3);
}

/* psrenew.conf(5): "Lines are limited to 200 bytes." A longer line must not
 * be cut silently: here a long token URI would become a shorter token URI
 * (another token!) plus a bogus key made of the rest of the line. Either
 * the line is taken whole, or it is refused naming line 2. */
static void test_long_line_not_truncated(void **state)
{
	static const char uri[] =
		"pkcs11:model=PKCS%2315%20emulated;"
		"manufacturer=OpenSC%20Project;serial=0123456789ABCDEF;"
		"token=Jan%20Nov%C3%A1k%20%28Podpisov%C3%BD%20certifik%C3%A1t"
		"%29;object=Jan%20Nov%C3%A1k%20-%20kvalifikovan%C3%BD;"
		"type=cert;id=%01%02";
	char text[512];
	const char *path;
	struct ps_err err;
	int rc;

	(void)state;
	assert_true(strlen(uri) > 200);
	snprintf(text, sizeof(text), "[defaults]\ntoken = %s\n", uri);
	path = write_file("long.conf", text);
	ps_err_clear(&err);
	rc = ps_config_load(path, &cfg, &err);
	if (rc == 0) {
		assert_string_equal(ps_config_get(&cfg, "defaults", "token"),
				    uri);
		assert_int_equal(cfg.n, 1);
	} else {
		assert_int_equal(rc, PS_EXIT_USAGE);
		assert_non_null(strstr(err.msg, "line 2"));
	}
}

static void test_missing_explicit_path(void **state)
{
	struct ps_err err;
	char path[200];

	(void)state;
	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	ps_err_clear(&err);
	assert_int_equal(ps_config_load(path, &cfg, &err), PS_EXIT_USAGE);
	assert_int_equal(err.status, PS_EXIT_USAGE);
	assert_string_equal(err.code, "bad-config");
	assert_non_null(strstr(err.msg, path));
	assert_null(cfg.path);
	assert_int_equal(cfg.n, 0);
}

/* --config naming a directory (a slip for .../psrenew.conf) is not a
 * configuration file: it must be refused like a missing one, not read as an
 * empty configuration (fopen() of a directory succeeds on Linux; the read
 * fails with EISDIR, which inih reports as end of file). */
static void test_directory_as_path(void **state)
{
	struct ps_err err;

	(void)state;
	ps_err_clear(&err);
	assert_int_equal(ps_config_load(tmpdir, &cfg, &err), PS_EXIT_USAGE);
	assert_string_equal(err.code, "bad-config");
	assert_non_null(strstr(err.msg, tmpdir));
	assert_null(cfg.path);
}

static const char *etc_default(void)
{
	return access("/etc/psrenew/psrenew.conf", F_OK) == 0
		       ? "/etc/psrenew/psrenew.conf"
		       : NULL;
}

static void test_no_default_file(void **state)
{
	struct ps_err err;
	const char *etc = etc_default();

	(void)state;
	/* HOME and XDG_CONFIG_HOME point to an empty directory. */
	ps_err_clear(&err);
	assert_int_equal(ps_config_load(NULL, &cfg, &err), 0);
	assert_int_equal(err.status, 0);
	if (etc) {
		assert_string_equal(cfg.path, etc);
	} else {
		assert_null(cfg.path);
		assert_int_equal(cfg.n, 0);
		assert_null(ps_config_get(&cfg, "defaults", "module"));
	}
	ps_config_free(&cfg);

	/* Neither set at all. */
	unsetenv("HOME");
	unsetenv("XDG_CONFIG_HOME");
	assert_int_equal(ps_config_load(NULL, &cfg, &err), 0);
	if (!etc)
		assert_null(cfg.path);
	ps_config_free(&cfg);

	/* An empty PSRENEW_CONFIG counts as unset. */
	setenv("PSRENEW_CONFIG", "", 1);
	assert_int_equal(ps_config_load(NULL, &cfg, &err), 0);
	if (!etc)
		assert_null(cfg.path);
}

static void test_xdg_and_home(void **state)
{
	struct ps_err err;
	char dir[200];
	const char *path;

	(void)state;
	/* $XDG_CONFIG_HOME/psrenew/psrenew.conf */
	path = write_file("xdg/psrenew/psrenew.conf",
			  "[defaults]\nmodule = /from/xdg.so\n");
	snprintf(dir, sizeof(dir), "%s/xdg", tmpdir);
	setenv("XDG_CONFIG_HOME", dir, 1);
	assert_int_equal(ps_config_load(NULL, &cfg, &err), 0);
	assert_non_null(cfg.path);
	assert_string_equal(cfg.path, path);
	assert_string_equal(ps_config_get(&cfg, "defaults", "module"),
			    "/from/xdg.so");
	ps_config_free(&cfg);

	/* ~/.config/psrenew/psrenew.conf when XDG_CONFIG_HOME is unset or
	 * empty. */
	path = write_file("home/.config/psrenew/psrenew.conf",
			  "[defaults]\nmodule = /from/home.so\n");
	snprintf(dir, sizeof(dir), "%s/home", tmpdir);
	setenv("HOME", dir, 1);
	unsetenv("XDG_CONFIG_HOME");
	assert_int_equal(ps_config_load(NULL, &cfg, &err), 0);
	assert_non_null(cfg.path);
	assert_string_equal(cfg.path, path);
	assert_string_equal(ps_config_get(&cfg, "defaults", "module"),
			    "/from/home.so");
	ps_config_free(&cfg);

	setenv("XDG_CONFIG_HOME", "", 1);
	assert_int_equal(ps_config_load(NULL, &cfg, &err), 0);
	assert_non_null(cfg.path);
	assert_string_equal(cfg.path, path);
	ps_config_free(&cfg);

	/* XDG_CONFIG_HOME wins over HOME. */
	snprintf(dir, sizeof(dir), "%s/xdg", tmpdir);
	setenv("XDG_CONFIG_HOME", dir, 1);
	assert_int_equal(ps_config_load(NULL, &cfg, &err), 0);
	assert_string_equal(ps_config_get(&cfg, "defaults", "module"),
			    "/from/xdg.so");
}

static void test_psrenew_config_env(void **state)
{
	struct ps_err err;
	char dir[200];
	char missing[200];
	char env_path[256];
	const char *path;

	(void)state;
	/* A user file exists too: $PSRENEW_CONFIG comes first. */
	write_file("xdg2/psrenew/psrenew.conf",
		   "[defaults]\nmodule = /from/xdg.so\n");
	snprintf(dir, sizeof(dir), "%s/xdg2", tmpdir);
	setenv("XDG_CONFIG_HOME", dir, 1);
	path = write_file("env.conf", "[defaults]\nmodule = /from/env.so\n");
	snprintf(env_path, sizeof(env_path), "%s", path);
	setenv("PSRENEW_CONFIG", env_path, 1);
	ps_err_clear(&err);
	assert_int_equal(ps_config_load(NULL, &cfg, &err), 0);
	assert_non_null(cfg.path);
	assert_string_equal(cfg.path, env_path);
	assert_string_equal(ps_config_get(&cfg, "defaults", "module"),
			    "/from/env.so");
	ps_config_free(&cfg);

	/* An explicit path (--config) comes before $PSRENEW_CONFIG. */
	path = write_file("explicit.conf",
			  "[defaults]\nmodule = /from/explicit.so\n");
	assert_int_equal(ps_config_load(path, &cfg, &err), 0);
	assert_string_equal(cfg.path, path);
	assert_string_equal(ps_config_get(&cfg, "defaults", "module"),
			    "/from/explicit.so");
	ps_config_free(&cfg);

	/* $PSRENEW_CONFIG naming a missing file is an error. */
	snprintf(missing, sizeof(missing), "%s/nope.conf", tmpdir);
	setenv("PSRENEW_CONFIG", missing, 1);
	ps_err_clear(&err);
	assert_int_equal(ps_config_load(NULL, &cfg, &err), PS_EXIT_USAGE);
	assert_string_equal(err.code, "bad-config");
	assert_non_null(strstr(err.msg, missing));
	assert_null(cfg.path);

	/* And a syntax error in it names it. */
	path = write_file("envbad.conf", "[defaults]\nnonsense\n");
	snprintf(env_path, sizeof(env_path), "%s", path);
	setenv("PSRENEW_CONFIG", env_path, 1);
	ps_err_clear(&err);
	assert_int_equal(ps_config_load(NULL, &cfg, &err), PS_EXIT_USAGE);
	assert_non_null(strstr(err.msg, env_path));
	assert_non_null(strstr(err.msg, "line 2"));
}

static void test_free_and_get_on_empty(void **state)
{
	struct ps_config z;

	(void)state;
	memset(&z, 0, sizeof(z));
	assert_null(ps_config_get(&z, "defaults", "module"));
	ps_config_free(&z);
	ps_config_free(&z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_load_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_jip_ca_map_in_use, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_empty_and_no_jip_ca, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_syntax_errors, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_long_line_not_truncated,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_explicit_path,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_as_path, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_no_default_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_xdg_and_home, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_psrenew_config_env, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_free_and_get_on_empty,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

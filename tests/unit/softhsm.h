/* Unit tests: a SoftHSM2 token of their own, in a temporary directory
 * (include after cmocka.h). softhsm_up() makes it, opens a read-write
 * session and logs in; it returns 0 without a token (and sets nothing)
 * when SoftHSM2 or softhsm2-util is missing: tests then skip(). */
#ifndef PSRENEW_TEST_SOFTHSM_H
#define PSRENEW_TEST_SOFTHSM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <psrenew/token.h>

static char hsm_dir[] = "/tmp/psrenew-test-hsm.XXXXXX";
static struct ps_module *hsm_mod;
static struct ps_token **hsm_toks;
static size_t hsm_ntoks;

static const char *hsm_module_path(void)
{
	const char *m = getenv("PSRENEW_SOFTHSM_MODULE");

	return m && *m ? m : "/usr/lib/softhsm/libsofthsm2.so";
}

/* The token, logged in; NULL when the tests skip. */
static struct ps_token *hsm_token(void)
{
	return hsm_mod && hsm_ntoks == 1 ? hsm_toks[0] : NULL;
}

/* Logs in (again): the env: source wipes the variable once read. */
static int hsm_login(struct ps_token *tok, struct ps_err *err)
{
	setenv("PSRENEW_TEST_PIN", "1234", 1);
	return ps_token_login(tok, "env:PSRENEW_TEST_PIN", err);
}

static int softhsm_up(void)
{
	char conf[128], tokdir[128];
	struct ps_err err;
	FILE *f;

	if (access(hsm_module_path(), R_OK) != 0 ||
	    system("command -v softhsm2-util >/dev/null 2>&1") != 0)
		return 0;
	if (!mkdtemp(hsm_dir))
		return -1;
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", hsm_dir);
	snprintf(tokdir, sizeof(tokdir), "%s/tokens", hsm_dir);
	if (mkdir(tokdir, 0700) != 0 || !(f = fopen(conf, "w")))
		return -1;
	fprintf(f,
		"directories.tokendir = %s\n"
		"objectstore.backend = file\nlog.level = ERROR\n",
		tokdir);
	fclose(f);
	setenv("SOFTHSM2_CONF", conf, 1);
	if (system("softhsm2-util --init-token --free --label unit-test "
		   "--so-pin 12345678 --pin 1234 >/dev/null 2>&1") != 0)
		return -1;
	ps_err_clear(&err);
	if (ps_module_open(hsm_module_path(), NULL, &hsm_mod, &err) ||
	    ps_tokens_find(hsm_mod, NULL, &hsm_toks, &hsm_ntoks, &err) ||
	    hsm_ntoks != 1 || ps_token_open(hsm_toks[0], 1, &err) ||
	    hsm_login(hsm_toks[0], &err)) {
		fprintf(stderr, "# token set-up: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int softhsm_down(void)
{
	char cmd[128];

	if (hsm_toks)
		ps_tokens_free(hsm_toks, hsm_ntoks);
	if (hsm_mod)
		ps_module_close(hsm_mod);
	hsm_toks = NULL;
	hsm_mod = NULL;
	if (strchr(hsm_dir, 'X') == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", hsm_dir);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

#endif

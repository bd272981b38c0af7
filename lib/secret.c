/* psrenew: PIN and password sources; wiping. */
#include <psrenew/secret.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

static const char source_hint[] =
    "a secret source is prompt, env:VAR, file:PATH or fd:N";

void ps_secret_protect_process(void)
{
	struct rlimit rl = { 0, 0 };

	setrlimit(RLIMIT_CORE, &rl);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* The environment variables a secret was read from (env:VAR), kept out of
 * the environment of the programs we start (a CA helper). */
static char secret_env[8][64];

static void note_env(const char *name)
{
	for (size_t i = 0; i < sizeof(secret_env) / sizeof(*secret_env); i++)
		if (!secret_env[i][0] || !strcmp(secret_env[i], name)) {
			snprintf(secret_env[i], sizeof(secret_env[i]), "%s",
				 name);
			return;
		}
}

int ps_secret_env_entry(const char *entry)
{
	for (size_t i = 0; i < sizeof(secret_env) / sizeof(*secret_env); i++) {
		size_t n = strlen(secret_env[i]);

		if (n && !strncmp(entry, secret_env[i], n) && entry[n] == '=')
			return 1;
	}
	return 0;
}

static char *secret_alloc(void)
{
	char *s = calloc(1, PS_SECRET_MAX + 1);

	if (s)
		mlock(s, PS_SECRET_MAX + 1); /* best effort: may be limited */
	return s;
}

void ps_secret_free(char *secret)
{
	if (!secret)
		return;
	OPENSSL_cleanse(secret, PS_SECRET_MAX + 1);
	munlock(secret, PS_SECRET_MAX + 1);
	free(secret);
}

int ps_secret_check_source(const char *source, struct ps_err *err)
{
	if (!source || strcmp(source, "prompt") == 0 ||
	    strncmp(source, "env:", 4) == 0 ||
	    strncmp(source, "file:", 5) == 0 || strncmp(source, "fd:", 3) == 0)
		return 0;
	if (strncmp(source, "pass:", 5) == 0)
		return ps_err_set(err, PS_EXIT_USAGE, "secret-in-argv",
				  source_hint,
				  "'pass:' is refused: a secret on the command "
				  "line is visible to every user");
	/* Never echo it: it may be the secret itself, typed in by mistake. */
	if (!strchr(source, ':'))
		return ps_err_set(err, PS_EXIT_USAGE, "bad-secret-source",
				  source_hint,
				  "a PIN or password is never given as such "
				  "(on the command line or in a file): use "
				  "prompt, env:, file: or fd:");
	return ps_err_set(err, PS_EXIT_USAGE, "bad-secret-source", source_hint,
			  "unknown secret source (not prompt, env:, file: "
			  "or fd:)");
}

/* Reads one line (at most PS_SECRET_MAX bytes) from fd into s. */
static int read_line(int fd, char *s, const char *what, struct ps_err *err)
{
	size_t n = 0;
	char c;

	for (;;) {
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return ps_err_set(err, PS_EXIT_USAGE,
					  "secret-unreadable", source_hint,
					  "cannot read %s: %s", what,
					  strerror(errno));
		if (r == 0 || c == '\n')
			break;
		if (n == PS_SECRET_MAX) {
			OPENSSL_cleanse(&c, 1);
			return ps_err_set(err, PS_EXIT_USAGE, "secret-too-long",
					  NULL,
					  "the secret from %s is longer than "
					  "%d bytes",
					  what, PS_SECRET_MAX);
		}
		s[n++] = c;
	}
	OPENSSL_cleanse(&c, 1);
	if (n > 0 && s[n - 1] == '\r')
		n--;
	s[n] = '\0';
	return 0;
}

/* What ends a line drawn on the terminal before a prompt (a front end's
 * progress line): the prompt starts a line of its own. */
static void (*before_prompt)(void);

void ps_secret_set_before_prompt(void (*fn)(void))
{
	before_prompt = fn;
}

static int read_prompt(const char *text, char *s, struct ps_err *err)
{
	struct termios old, noecho;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	int rc;

	if (fd < 0 && strncmp(text, "PIN", 3) == 0)
		return ps_err_set(err, PS_EXIT_USAGE, "no-terminal",
				  "give it with --pin env:VAR, file:PATH or "
				  "fd:N",
				  "a PIN is needed but there is no terminal to "
				  "ask on");
	if (fd < 0) /* not a PIN: say which secret, from its prompt */
		return ps_err_set(err, PS_EXIT_USAGE, "no-terminal",
				  "give it as env:VAR, file:PATH or fd:N",
				  "a secret is needed (%.*s) but there is no "
				  "terminal to ask on",
				  (int)strcspn(text, ":"), text);
	if (before_prompt)
		before_prompt();
	if (tcgetattr(fd, &old) == 0) {
		noecho = old;
		noecho.c_lflag &= (tcflag_t)~ECHO;
		tcsetattr(fd, TCSAFLUSH, &noecho);
	}
	if (write(fd, text, strlen(text)) < 0) {
		/* nothing sensible to do: the read below still works */
	}
	rc = read_line(fd, s, "the terminal", err);
	tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0) {
		/* as above */
	}
	close(fd);
	return rc;
}

/* path as one shell word. */
static void shell_word(const char *path, char *out, size_t cap)
{
	size_t n = 0;

	if (strspn(path, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			 "0123456789_./-+=:@%,") == strlen(path)) {
		snprintf(out, cap, "%s", path);
		return;
	}
	for (const char *p = path; *p && n + 5 < cap; p++) {
		if (n == 0)
			out[n++] = '\'';
		if (*p == '\'') {
			memcpy(out + n, "'\\''", 4);
			n += 4;
		} else {
			out[n++] = *p;
		}
	}
	out[n++] = '\'';
	out[n] = '\0';
}

int ps_file_check_safe(int fd, const char *path, int secret, struct ps_err *err)
{
	const char *code = secret ? "secret-unsafe" : "config-unsafe";
	const char *what =
	    secret ? "the secret file" : "the configuration file";
	mode_t bad = secret ? 077 : 022;
	char word[600], hint[800];
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	shell_word(path, word, sizeof(word));
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		struct passwd *pw = getpwuid(geteuid());
		char who[64];

		if (pw)
			snprintf(who, sizeof(who), "%s", pw->pw_name);
		else
			snprintf(who, sizeof(who), "%u", (unsigned)geteuid());
		snprintf(hint, sizeof(hint),
			 "if its content is yours, run: chown %s %s "
			 "(and check it first)",
			 who, word);
		return ps_err_set(err, PS_EXIT_USAGE, code, hint,
				  "%s %s belongs to another user (uid %u), "
				  "who could change what psrenew reads: "
				  "refused",
				  what, path, (unsigned)st.st_uid);
	}
	if (st.st_mode & bad) {
		snprintf(hint, sizeof(hint), "run: chmod %s %s",
			 secret ? "600" : "go-w", word);
		return ps_err_set(
		    err, PS_EXIT_USAGE, code, hint,
		    "%s %s may be %s by %s (mode %04o): refused", what, path,
		    st.st_mode & 022 ? "written" : "read",
		    st.st_mode & (secret ? 070 : 020) ? "its group"
						      : "other users",
		    (unsigned)(st.st_mode & 07777));
	}
	return 0;
}

static int read_file(const char *path, char *s, struct ps_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	int rc;

	if (fd < 0)
		return ps_err_set(err, PS_EXIT_USAGE, "secret-unreadable",
				  source_hint, "cannot open secret file %s: %s",
				  path, strerror(errno));
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) &&
	    !S_ISFIFO(st.st_mode)) {
		close(fd);
		return ps_err_set(err, PS_EXIT_USAGE, "secret-unreadable",
				  source_hint,
				  "secret file %s is not a regular file", path);
	}
	rc = ps_file_check_safe(fd, path, 1, err);
	if (rc) {
		close(fd);
		return rc;
	}
	rc = read_line(fd, s, path, err);
	close(fd);
	return rc;
}

static int read_fd(const char *num, char *s, struct ps_err *err)
{
	char *end;
	long fd;

	errno = 0;
	fd = strtol(num, &end, 10);
	if (errno || *end || end == num || fd < 0 || fd > INT_MAX)
		return ps_err_set(err, PS_EXIT_USAGE, "bad-secret-source",
				  source_hint, "fd:%.20s is not a descriptor",
				  num);
	return read_line((int)fd, s, "the file descriptor", err);
}

int ps_secret_read(const char *source, const char *prompt_text, char **out,
		   struct ps_err *err)
{
	char *s;
	int rc;

	*out = NULL;
	rc = ps_secret_check_source(source, err);
	if (rc)
		return rc;
	s = secret_alloc();
	if (!s)
		return ps_err_nomem(err);
	if (!source || strcmp(source, "prompt") == 0) {
		rc = read_prompt(prompt_text ? prompt_text : "PIN: ", s, err);
	} else if (strncmp(source, "env:", 4) == 0) {
		const char *v = getenv(source + 4);

		note_env(source + 4);

		if (!source[4])
			rc = ps_err_set(err, PS_EXIT_USAGE, "secret-unset",
					source_hint,
					"'env:' names no variable: give "
					"env:VAR");
		else if (!v)
			rc = ps_err_set(
			    err, PS_EXIT_USAGE, "secret-unset", source_hint,
			    "environment variable %.100s is not set",
			    source + 4);
		else if (strlen(v) > PS_SECRET_MAX) {
			OPENSSL_cleanse((char *)v, strlen(v));
			unsetenv(source + 4);
			rc = ps_err_set(err, PS_EXIT_USAGE, "secret-too-long",
					NULL, "the secret is too long");
		} else {
			memcpy(s, v, strlen(v) + 1);
			/* Wipe the value in place too: /proc/PID/environ
			 * shows the original block. */
			OPENSSL_cleanse((char *)v, strlen(v));
			unsetenv(source + 4);
		}
	} else if (!strcmp(source, "file:")) {
		rc = ps_err_set(err, PS_EXIT_USAGE, "secret-unreadable",
				source_hint,
				"'file:' names no file: give file:PATH");
	} else if (strncmp(source, "file:", 5) == 0) {
		rc = read_file(source + 5, s, err);
	} else {
		rc = read_fd(source + 3, s, err);
	}
	if (rc) {
		ps_secret_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

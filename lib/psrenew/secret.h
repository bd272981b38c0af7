/* psrenew: PIN and password sources. A secret never comes from argv. */
#ifndef PSRENEW_SECRET_H
#define PSRENEW_SECRET_H

#include <psrenew/err.h>

#define PS_SECRET_MAX 1024

/*
 * Reads a secret from SOURCE, which is one of (openssl -passin syntax):
 *   prompt      ask on the terminal with echo off (the default when NULL)
 *   env:VAR     the environment variable VAR (removed from the environment
 *               afterwards so that child processes never see it)
 *   file:PATH   the first line of PATH
 *   fd:N        the first line read from file descriptor N
 * "pass:..." is refused: it would put the secret in the process list.
 * prompt_text is shown for "prompt". On success *out is a NUL-terminated
 * buffer to release with ps_secret_free().
 */
int ps_secret_read(const char *source, const char *prompt_text, char **out,
		   struct ps_err *err);

/* Wipes and frees a secret (NULL is fine). */
void ps_secret_free(char *secret);

/* fn is called before a prompt is written to the terminal (a front end
 * erases its progress line there); NULL: nothing. */
void ps_secret_set_before_prompt(void (*fn)(void));

/* 1 when ENTRY ("NAME=value", from environ) is a variable a secret was
 * read from (env:NAME): programs we start do not get it. */
int ps_secret_env_entry(const char *entry);

/*
 * As OpenSSH does for keys: refuses (exit 2, "secret-unsafe" when secret is
 * set, else "config-unsafe") an opened regular file (fd, named path) that
 * another user owns (root excepted) or that group or others may write, and
 * for a secret also one they may read; the hint is the chmod or chown to
 * run. Pipes and devices (/dev/null, <(...)) are not checked.
 */
int ps_file_check_safe(int fd, const char *path, int secret,
		       struct ps_err *err);

/* Checks the syntax of a source without reading it. */
int ps_secret_check_source(const char *source, struct ps_err *err);

/* No core dumps and no ptrace from other processes of the same user: called
 * once by every binary before any secret is read. */
void ps_secret_protect_process(void);

#endif

/* psrenew: errors and exit statuses shared by every binary. */
#ifndef PSRENEW_ERR_H
#define PSRENEW_ERR_H

#include <stdarg.h>

#include <psrenew/export.h>

/* Exit statuses: the same meaning in every binary (psrenew(7)). */
enum ps_exit {
	PS_EXIT_OK = 0,	     /* done */
	PS_EXIT_FAIL = 1,    /* failed: bug, bad data, unexpected answer */
	PS_EXIT_USAGE = 2,   /* usage or configuration error */
	PS_EXIT_PENDING = 3, /* not done yet / something expires soon */
	PS_EXIT_TEMP = 4,    /* temporary failure: retry later */
	PS_EXIT_REFUSED = 5, /* refused by the CA, JIP or a safety rule */
	PS_EXIT_TOKEN = 6    /* token problem: full, absent, PIN, mechanism */
};

/*
 * One error: the exit status it maps to, a short stable code for records
 * ("token-full", "pin-incorrect", ...), a one-line message for people and an
 * optional hint saying what to do next.
 */
struct ps_err {
	int status;
	char code[40];
	char msg[512];
	char hint[512];
};

PS_API void ps_err_clear(struct ps_err *err);

/* Sets err (if not NULL) and returns status, so callers can write
 * "return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL, "...");". */
PS_API int ps_err_set(struct ps_err *err, int status, const char *code,
		      const char *hint, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The one out-of-memory error: status 1, code "no-memory", message "out of
 * memory"; returns PS_EXIT_FAIL. */
int ps_err_nomem(struct ps_err *err);

/* Appends the first OpenSSL error on the queue (if any) to err->msg and
 * clears the queue. */
void ps_err_add_openssl(struct ps_err *err);

/* The more severe of two exit statuses (for batches): usage > failed >
 * token > refused > temporary > pending > done. */
PS_API int ps_exit_worse(int a, int b);

#endif

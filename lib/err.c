/* psrenew: errors and exit statuses. */
#include <psrenew/err.h>

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

void ps_err_clear(struct ps_err *err)
{
	if (err)
		memset(err, 0, sizeof(*err));
}

int ps_err_set(struct ps_err *err, int status, const char *code,
	       const char *hint, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return status;
	err->status = status;
	snprintf(err->code, sizeof(err->code), "%s", code ? code : "error");
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	snprintf(err->hint, sizeof(err->hint), "%s", hint ? hint : "");
	return status;
}

int ps_err_nomem(struct ps_err *err)
{
	return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
			  "out of memory");
}

void ps_err_add_openssl(struct ps_err *err)
{
	unsigned long e = ERR_peek_error();
	char buf[256];
	size_t len;

	if (err && e) {
		ERR_error_string_n(e, buf, sizeof(buf));
		len = strlen(err->msg);
		snprintf(err->msg + len, sizeof(err->msg) - len, " (%s)", buf);
	}
	ERR_clear_error();
}

static int severity(int status)
{
	/* Index = exit status; larger = more severe. */
	static const int rank[] = { 0, 5, 6, 1, 2, 3, 4 };

	if (status < 0 || status > PS_EXIT_TOKEN)
		return 5;
	return rank[status];
}

int ps_exit_worse(int a, int b)
{
	/* A status outside the table counts as "failed". */
	if (a < 0 || a > PS_EXIT_TOKEN)
		a = PS_EXIT_FAIL;
	if (b < 0 || b > PS_EXIT_TOKEN)
		b = PS_EXIT_FAIL;
	return severity(a) >= severity(b) ? a : b;
}

/* psrenew: the one libcurl wrapper: TLS always verified (extra CAs added,
 * never verification off), client authentication with a key that stays on
 * the token, timeouts, proxies from the environment, connection reuse,
 * bounded answers. */
#ifndef PSRENEW_HTTP_H
#define PSRENEW_HTTP_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <psrenew/err.h>

struct ps_http_opts {
	const char *ca_bundle; /* CAs trusted in addition to the system's */
	long connect_timeout;  /* seconds (default 20) */
	long timeout;	       /* seconds for a whole request (default 120) */
	X509 *client_cert;     /* TLS client authentication, with ... */
	EVP_PKEY *client_key;  /* ... this key (a token key from signer.h) */
	int cookies;	       /* keep cookies in memory (JIP) */
	int follow;	       /* follow redirects */
};

struct ps_http_resp {
	long status;
	char *body; /* NUL-terminated; at most 4 MiB */
	size_t len;
	char *content_type;
	long retry_after; /* seconds, -1 when absent */
	char *location;
};

struct ps_http;

int ps_http_new(const struct ps_http_opts *o, struct ps_http **out,
		struct ps_err *err);
void ps_http_free(struct ps_http *h);
/* From now on h speaks TLS 1.2 or newer only (https:// URLs). */
void ps_http_tls12(struct ps_http *h);

/*
 * One request. headers: NULL-terminated "Name: value" strings (may be
 * NULL). body may be NULL (GET). Returns 0 with resp filled whatever the
 * HTTP status, or an exit status when no answer came: 4 (temporary: down,
 * timeout, reset), 1 (the server's TLS certificate does not verify), 5
 * (the server refused our TLS client certificate).
 */
int ps_http_request(struct ps_http *h, const char *method, const char *url,
		    const char *const *headers, const void *body, size_t len,
		    struct ps_http_resp *resp, struct ps_err *err);
void ps_http_resp_free(struct ps_http_resp *r);

/* One request of ps_http_parallel: what to send, and its outcome as
 * ps_http_request gives it (rc, and resp or err). */
struct ps_http_job {
	const char *method, *url;
	const char *const *headers;
	const void *body;
	size_t len;
	struct ps_http_resp resp; /* out */
	int rc;			  /* out */
	struct ps_err err;	  /* out */
	/* When set: called with arg as soon as this job's outcome is set
	 * (from within ps_http_parallel, while other jobs are in flight),
	 * once for every job unless ps_http_parallel returns -1. */
	void (*done)(struct ps_http_job *job, void *arg);
	void *arg;
};

/*
 * Runs n requests with h's options (trust, client certificate and key),
 * up to lanes of them at once over as many connections (libcurl multi);
 * a connection carries its lane's next request. Returns -1 when the
 * batch could not start at all (out of memory), else 0 with every job's
 * outcome set. Cookies and redirects are not for batches.
 */
int ps_http_parallel(struct ps_http *h, struct ps_http_job *jobs, size_t n,
		     int lanes);

/*
 * GETs url (http or https, TLS verified, redirects followed) into *buf
 * (malloc'ed, at most max bytes, *len of them). 0 with a 2xx answer; 4
 * when the server cannot be reached or answers 5xx (temporary), 1 for any
 * other answer, a body larger than max or an unverified TLS certificate.
 */
int ps_http_get(const struct ps_http_opts *o, const char *url, size_t max,
		unsigned char **buf, size_t *len, struct ps_err *err);

/*
 * Sends one message by SMTP (smtp:// with STARTTLS when offered, required
 * when tls_required or a login is given; smtps:// with TLS from the start).
 * user/pass may be NULL. 0 when the server accepted it; 5 when it refused
 * (bad login, rejected recipient: its reply in err), 4 when it was down or
 * answered "try later".
 */
int ps_smtp_send(const struct ps_http_opts *o, const char *url,
		 const char *from, const char *rcpt, const char *msg,
		 size_t len, const char *user, const char *pass,
		 int tls_required, struct ps_err *err);

/*
 * h's libcurl handle (a CURL *), set up for protocols (as
 * CURLOPT_PROTOCOLS_STR takes them, "imap,imaps") with h's trust (the
 * system's CAs and ca_bundle, always verified) and time-outs: for a
 * protocol this file has no function for (IMAP, lib/imap.c). The caller
 * sets the rest; the handle goes with ps_http_free.
 */
void *ps_http_handle(struct ps_http *h, const char *protocols);
/* The exit status and error of a transfer of that handle that failed with
 * libcurl's code rc: 1 an untrusted server, 4 unreachable, 5 refused. */
int ps_http_failed(struct ps_http *h, int rc, const char *url,
		   struct ps_err *err);
/* libcurl's words on the last failure of that handle ("" when none). */
const char *ps_http_errtext(const struct ps_http *h);

#endif

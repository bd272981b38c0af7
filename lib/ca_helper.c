/* psrenew: the "helper:" channel: certmonger's external CA helper
 * interface. Any certmonger helper works unchanged:
 *   environment: CERTMONGER_OPERATION (SUBMIT or POLL), CERTMONGER_CSR,
 *   CERTMONGER_CERTIFICATE, CERTMONGER_CA_COOKIE, CERTMONGER_REQ_SUBJECT,
 *   CERTMONGER_REQ_EMAIL, CERTMONGER_KEY_TYPE, CERTMONGER_CA_NICKNAME,
 *   CERTMONGER_CA_PROFILE;
 *   exit status: 0 issued (certificate on stdout), 1 wait (cookie on
 *   stdout), 2 rejected, 3 unreachable, 4 under-configured (message on
 *   stdout), 5 wait (delay in seconds, newline, cookie). */
#include <psrenew/ca.h>
#include <psrenew/secret.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <wordexp.h>

#define OUT_MAX (1 << 20)

struct helper {
	wordexp_t we;
};

static int helper_open(struct ps_ca *ca, const char *rest, struct ps_err *err)
{
	struct helper *h = calloc(1, sizeof(*h));
	int rc;

	if (!h)
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "out of memory");
	/* Shell-like words, without command substitution. */
	rc = wordexp(rest, &h->we, WRDE_NOCMD);
	if (rc != 0 || h->we.we_wordc == 0) {
		if (rc == 0)
			wordfree(&h->we);
		free(h);
		return ps_err_set(err, PS_EXIT_USAGE, "bad-ca",
				  "write it as helper:/path/to/helper [ARGS]",
				  "cannot parse the helper command '%.80s'",
				  rest);
	}
	if (access(h->we.we_wordv[0], X_OK) != 0) {
		ps_err_set(err, PS_EXIT_USAGE, "bad-ca",
			   "certmonger's helpers live in /usr/lib/certmonger "
			   "(package certmonger)",
			   "the CA helper %s is not an executable file: %s",
			   h->we.we_wordv[0], strerror(errno));
		wordfree(&h->we);
		free(h);
		return PS_EXIT_USAGE;
	}
	ca->priv = h;
	return 0;
}

static void helper_close(struct ps_ca *ca)
{
	struct helper *h = ca->priv;

	if (h) {
		wordfree(&h->we);
		free(h);
	}
}

extern char **environ;

/* The helper's environment: ours without CERTMONGER_*, plus the request's
 * facts. Built before fork() so that the child only calls execve(). */
static char **helper_env(struct ps_ca *ca, const char *op,
			 const struct ps_ca_request *req)
{
	const char *profile =
	    ca->section[0] && ca->cfg
		? ps_config_get(ca->cfg, ca->section, "profile")
		: NULL;
	const char *vars[][2] = {
		{ "CERTMONGER_OPERATION", op },
		{ "CERTMONGER_CSR", req->csr_pem ? req->csr_pem : "" },
		{ "CERTMONGER_CERTIFICATE", req->old_cert_pem },
		{ "CERTMONGER_REQ_SUBJECT", req->subject },
		{ "CERTMONGER_REQ_EMAIL", req->email },
		{ "CERTMONGER_KEY_TYPE", req->key_type },
		{ "CERTMONGER_CA_COOKIE", req->cookie },
		{ "CERTMONGER_CA_PROFILE", profile },
		{ "CERTMONGER_CA_NICKNAME", ca->name },
	};
	size_t nv = sizeof(vars) / sizeof(vars[0]), ne = 0, k = 0;
	char **env;

	while (environ && environ[ne])
		ne++;
	env = calloc(ne + nv + 1, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < ne; i++)
		if (strncmp(environ[i], "CERTMONGER_", 11) != 0 &&
		    !ps_secret_env_entry(environ[i]))
			env[k++] = strdup(environ[i]);
	for (size_t i = 0; i < nv; i++)
		if (vars[i][1] &&
		    asprintf(&env[k++], "%s=%s", vars[i][0], vars[i][1]) < 0)
			env[--k] = NULL;
	return env;
}

static void env_free(char **env)
{
	for (size_t i = 0; env && env[i]; i++)
		free(env[i]);
	free(env);
}

static void child(char *const argv[], char *const env[], int out)
{
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (devnull >= 0)
		dup2(devnull, 0);
	dup2(out, 1);
	/* A group of its own: a helper stopped at the timeout goes with
	 * whatever it started. */
	setpgid(0, 0);
	execve(argv[0], argv, env);
	_exit(127);
}

/* Reads the child's stdout until EOF, the size bound or the deadline. */
static int collect(int fd, char **buf, size_t *len, time_t deadline)
{
	size_t cap = 4096;
	char *b = malloc(cap);

	*len = 0;
	if (!b)
		return -1;
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		long left = (long)(deadline - time(NULL));
		ssize_t r;
		int pr;

		if (left <= 0)
			goto fail;
		pr = poll(&p, 1, (int)(left > 60 ? 60000 : left * 1000));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			goto fail;
		if (pr == 0)
			continue;
		if (*len + 4096 > cap) {
			char *nb;

			if (cap >= OUT_MAX)
				goto fail;
			nb = realloc(b, cap *= 2);
			if (!nb)
				goto fail;
			b = nb;
		}
		r = read(fd, b + *len, cap - *len - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		*len += (size_t)r;
	}
	b[*len] = '\0';
	*buf = b;
	return 0;
fail:
	free(b);
	return -1;
}

static char *trimmed(const char *s)
{
	size_t n = strlen(s);

	while (n > 0 &&
	       (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		n--;
	return strndup(s, n);
}

static void map_status(int code, char *out, struct ps_ca_reply *r)
{
	char *nl;

	switch (code) {
	case 0:
		r->status = PS_CA_ISSUED;
		r->certs_pem = strdup(out);
		break;
	case 1:
		r->status = PS_CA_PENDING;
		r->cookie = trimmed(out);
		break;
	case 5:
		r->status = PS_CA_PENDING;
		r->delay = strtol(out, &nl, 10);
		if (r->delay < 0 || r->delay > 30L * 86400)
			r->delay = -1;
		nl = strchr(out, '\n');
		r->cookie = trimmed(nl ? nl + 1 : "");
		break;
	case 2:
		r->status = PS_CA_REJECTED;
		r->message = trimmed(out);
		break;
	case 3:
		r->status = PS_CA_UNREACHABLE;
		r->message = trimmed(out);
		break;
	case 4:
		r->status = PS_CA_UNCONFIGURED;
		r->message = trimmed(out);
		break;
	default:
		r->status = PS_CA_FAILED;
		if (asprintf(&r->message,
			     "the CA helper exited with status %d%s%.200s",
			     code, *out ? ": " : "", out) < 0)
			r->message = NULL;
		break;
	}
}

static int run(struct ps_ca *ca, const char *op,
	       const struct ps_ca_request *req, struct ps_ca_reply *reply,
	       struct ps_err *err)
{
	struct helper *h = ca->priv;
	int fds[2], status = 0;
	char *out = NULL;
	size_t len;
	pid_t pid;
	int got;

	char **env = helper_env(ca, op, req);

	if (!env || pipe2(fds, O_CLOEXEC) < 0) {
		env_free(env);
		return ps_err_set(err, PS_EXIT_FAIL, "helper", NULL,
				  "cannot prepare the CA helper: %s",
				  strerror(errno));
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		child(h->we.we_wordv, env, fds[1]);
	env_free(env);
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		return ps_err_set(err, PS_EXIT_FAIL, "helper", NULL,
				  "cannot start the CA helper: %s",
				  strerror(errno));
	}
	got = collect(fds[0], &out, &len, time(NULL) + ca->timeout);
	close(fds[0]);
	if (got < 0 && kill(-pid, SIGKILL) < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (got < 0) {
		reply->status = PS_CA_UNREACHABLE;
		if (asprintf(&reply->message,
			     "the CA helper %s gave no answer within %ld s (or "
			     "more than 1 MiB) and was stopped",
			     h->we.we_wordv[0], ca->timeout) < 0)
			reply->message = NULL;
		return 0;
	}
	if (WIFEXITED(status))
		map_status(WEXITSTATUS(status), out, reply);
	else {
		reply->status = PS_CA_FAILED;
		if (asprintf(&reply->message,
			     "the CA helper %s was killed by "
			     "signal %d",
			     h->we.we_wordv[0], WTERMSIG(status)) < 0)
			reply->message = NULL;
	}
	free(out);
	return 0;
}

static int helper_submit(struct ps_ca *ca, const struct ps_ca_request *req,
			 struct ps_ca_reply *reply, struct ps_err *err)
{
	return run(ca, "SUBMIT", req, reply, err);
}

static int helper_poll(struct ps_ca *ca, const struct ps_ca_request *req,
		       struct ps_ca_reply *reply, struct ps_err *err)
{
	return run(ca, req->cookie ? "POLL" : "SUBMIT", req, reply, err);
}

const struct ps_ca_driver ps_ca_helper_driver = {
	.prefix = "helper:",
	.open = helper_open,
	.submit = helper_submit,
	.poll = helper_poll,
	.close = helper_close,
};

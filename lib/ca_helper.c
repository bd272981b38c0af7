/* psrenew: the "helper:" channel: certmonger's external CA helper
 * interface. Any certmonger helper works unchanged:
 *   environment: CERTMONGER_OPERATION (SUBMIT or POLL), CERTMONGER_CSR,
 *   CERTMONGER_CERTIFICATE, CERTMONGER_CA_COOKIE, CERTMONGER_REQ_SUBJECT,
 *   CERTMONGER_REQ_EMAIL, CERTMONGER_KEY_TYPE, CERTMONGER_CA_NICKNAME,
 *   CERTMONGER_CA_PROFILE;
 *   exit status: 0 issued (certificate on stdout), 1 wait (cookie on
 *   stdout), 2 rejected, 3 unreachable, 4 under-configured (message on
 *   stdout), 5 wait (delay in seconds, newline, cookie). */
#include <psrenew/ca_driver.h>
#include <psrenew/secret.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <wordexp.h>

#define OUT_MAX (1 << 20)

/*
 * SIGINT and SIGTERM while a helper runs: the handler sends SIGTERM to the
 * process group of every running helper (each has its own group, so what a
 * helper started goes too) and wakes the thread waiting for it, which then
 * makes sure of the group (SIGKILL after a grace), reaps the helper and
 * reports the interruption; no helper starts afterwards. Outside a helper
 * the signal does what it did before (the state store is crash-safe).
 */
#define SLOTS	 8
#define GRACE_MS 2000

static volatile sig_atomic_t interrupted; /* the signal, 0: none */
static volatile sig_atomic_t starting;	  /* helpers being started or run */
static volatile sig_atomic_t groups[SLOTS];
static int wake[2] = { -1, -1 }; /* written by the handler, never read */
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;

struct helper {
	wordexp_t we;
};

static void on_signal(int sig)
{
	int saved = errno;

	if (!starting) {
		signal(sig, SIG_DFL);
		raise(sig);
		errno = saved;
		return;
	}
	interrupted = sig;
	for (int i = 0; i < SLOTS; i++)
		if (groups[i] > 0)
			kill(-(pid_t)groups[i], SIGTERM);
	if (write(wake[1], "x", 1) < 0) {
		/* full: already awake */
	}
	errno = saved;
}

/* Installs the handler for SIGINT and SIGTERM where they are not ignored
 * (nohup, a background job) or caught already. */
static void catch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM };
	struct sigaction sa, old;

	pthread_mutex_lock(&slots_mu);
	if (wake[0] < 0 && pipe2(wake, O_CLOEXEC | O_NONBLOCK) == 0) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			if (sigaction(sigs[i], NULL, &old) == 0 &&
			    old.sa_handler == SIG_DFL)
				sigaction(sigs[i], &sa, NULL);
	}
	pthread_mutex_unlock(&slots_mu);
}

int ps_ca_interrupted(void)
{
	return interrupted;
}

/* A slot for the helper about to start (-1: none free; it runs
 * unguarded then, as before). */
static int slot_take(void)
{
	int slot = -1;

	pthread_mutex_lock(&slots_mu);
	for (int i = 0; i < SLOTS && slot < 0; i++)
		if (groups[i] == 0) {
			groups[i] = -1; /* taken, no group yet */
			slot = i;
		}
	if (slot >= 0)
		starting = starting + 1;
	pthread_mutex_unlock(&slots_mu);
	return slot;
}

static void slot_give(int slot)
{
	if (slot < 0)
		return;
	pthread_mutex_lock(&slots_mu);
	groups[slot] = 0;
	starting = starting - 1;
	pthread_mutex_unlock(&slots_mu);
}

/* SIGTERM to the helper's group, SIGKILL to what is left of it after the
 * grace; the helper itself reaped. */
static void stop_group(pid_t pid, int *status)
{
	int reaped = 0;

	kill(-pid, SIGTERM);
	for (int ms = 0; ms < GRACE_MS; ms += 20) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		if (!reaped && waitpid(pid, status, WNOHANG) == pid)
			reaped = 1;
		if (reaped && kill(-pid, 0) < 0 && errno == ESRCH)
			return;
		nanosleep(&ts, NULL);
	}
	kill(-pid, SIGKILL);
	while (!reaped && waitpid(pid, status, 0) < 0 && errno == EINTR)
		;
}

static int interrupted_err(const struct ps_ca *ca, const char *op,
			   const struct ps_ca_request *req, int started,
			   struct ps_err *err)
{
	const struct helper *h = ca->priv;
	int sig = interrupted;

	return ps_err_set(
	    err, 128 + sig, "interrupted",
	    "nothing was lost: run the same command again to finish it",
	    "interrupted by %s %s the CA helper %s %s the request for %s%s",
	    sig == SIGINT ? "SIGINT" : "SIGTERM", started ? "while" : "before",
	    h->we.we_wordv[0], strcmp(op, "POLL") ? "submitted" : "polled",
	    req->subject ? req->subject : "the certificate",
	    started ? "; the helper and what it started were stopped" : "");
}

static int helper_open(struct ps_ca *ca, const char *rest, struct ps_err *err)
{
	struct helper *h = calloc(1, sizeof(*h));
	int rc;

	if (!h)
		return ps_err_nomem(err);
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
	catch_signals();
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

/* Reads the child's stdout until EOF, the size bound or the deadline
 * (-1), or a signal (-2). */
static int collect(int fd, char **buf, size_t *len, time_t deadline)
{
	size_t cap = 4096;
	char *b = malloc(cap);

	*len = 0;
	if (!b)
		return -1;
	for (;;) {
		struct pollfd p[2] = { { fd, POLLIN, 0 },
				       { wake[0], POLLIN, 0 } };
		long left = (long)(deadline - time(NULL));
		ssize_t r;
		int pr;

		if (interrupted)
			goto stopped;
		if (left <= 0)
			goto fail;
		pr = poll(p, wake[0] >= 0 ? 2 : 1,
			  (int)(left > 60 ? 60000 : left * 1000));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			goto fail;
		if (pr > 0 && p[1].revents && !interrupted) {
			char junk[16]; /* a child's, before its execve */

			while (read(wake[0], junk, sizeof(junk)) > 0)
				;
		}
		if (pr == 0 || !p[0].revents)
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
stopped:
	free(b);
	return -2;
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
	int got, slot;

	if (interrupted)
		return interrupted_err(ca, op, req, 0, err);
	char **env = helper_env(ca, op, req);

	if (!env || pipe2(fds, O_CLOEXEC) < 0) {
		env_free(env);
		return ps_err_set(err, PS_EXIT_FAIL, "helper", NULL,
				  "cannot prepare the CA helper: %s",
				  strerror(errno));
	}
	fflush(NULL);
	slot = slot_take();
	pid = fork();
	if (pid == 0)
		child(h->we.we_wordv, env, fds[1]);
	env_free(env);
	close(fds[1]);
	if (pid < 0) {
		slot_give(slot);
		close(fds[0]);
		return ps_err_set(err, PS_EXIT_FAIL, "helper", NULL,
				  "cannot start the CA helper: %s",
				  strerror(errno));
	}
	/* Its group now, whoever of the two comes first. */
	setpgid(pid, pid);
	if (slot >= 0)
		groups[slot] = pid;
	got = collect(fds[0], &out, &len, time(NULL) + ca->timeout);
	close(fds[0]);
	if (got == -2 || interrupted) {
		stop_group(pid, &status);
		slot_give(slot);
		free(out);
		return interrupted_err(ca, op, req, 1, err);
	}
	if (got < 0 && kill(-pid, SIGKILL) < 0)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	slot_give(slot);
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

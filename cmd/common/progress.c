/* psrenew: the progress of a batch on a terminal. */
#include "progress.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <psrenew/secret.h>

#include "cli.h"

/* The batch whose line is on the screen, for ps_progress_clear. */
static struct ps_progress *active;

/* The terminal of stderr opened anew (an open file of our own: flock(2)
 * locks held through the descriptor a pipeline's tools inherit would be
 * shared by all of them); -2: not opened yet, -1: none. */
static int tty_fd = -2;
static int drawing; /* this process holds the terminal's lock */

static int tty_lock_fd(void)
{
	const char *name;

	if (tty_fd == -2) {
		name = isatty(STDERR_FILENO) ? ttyname(STDERR_FILENO) : NULL;
		tty_fd =
		    name ? open(name, O_RDONLY | O_NOCTTY | O_CLOEXEC) : -1;
	}
	return tty_fd;
}

/* May this process draw now: no other tool of the pipeline is drawing on
 * the terminal (a terminal that cannot be locked: as before, yes). */
static int may_draw(void)
{
	int fd = tty_lock_fd();

	if (!drawing)
		drawing = fd < 0 || flock(fd, LOCK_EX | LOCK_NB) == 0;
	return drawing;
}

static void stop_drawing(void)
{
	if (drawing && tty_fd >= 0)
		flock(tty_fd, LOCK_UN);
	drawing = 0;
}

/* Is another tool of the pipeline drawing on the terminal now? */
static int other_draws(void)
{
	int fd = tty_lock_fd();

	if (drawing || fd < 0)
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		return 0;
	}
	return 1;
}

static size_t columns(void)
{
	struct winsize ws;
	const char *env = getenv("COLUMNS");

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (env && atoi(env) > 0)
		return (size_t)atoi(env);
	return 80;
}

/* Cuts s to at most max characters (UTF-8), never inside one; returns
 * how many characters are left. */
static size_t cut(char *s, size_t max)
{
	size_t n = 0, i;

	for (i = 0; s[i]; i++) {
		if (((unsigned char)s[i] & 0xC0) == 0x80)
			continue; /* a continuation byte */
		if (n == max)
			break;
		n++;
	}
	s[i] = '\0';
	return n;
}

static void erase(struct ps_progress *p)
{
	if (!p->shown)
		return;
	fprintf(stderr, "\r%*s\r", (int)p->shown, "");
	fflush(stderr);
	p->shown = 0;
}

__attribute__((format(printf, 3, 0))) static void
draw(struct ps_progress *p, size_t n, const char *fmt, va_list ap)
{
	char line[512], what[384];
	size_t len, width = columns();

	if (!may_draw())
		return; /* another tool's line is there */
	vsnprintf(what, sizeof(what), fmt, ap);
	for (char *c = what; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' '; /* the line stays one line */
	snprintf(line, sizeof(line), "%s: [%zu/%zu] %s", p->cli->prog, n,
		 p->total, what);
	len = cut(line, width > 1 ? width - 1 : 1);
	fprintf(stderr, "\r%s", line);
	if (len < p->shown)
		fprintf(stderr, "%*s\r%s", (int)(p->shown - len), "", line);
	fflush(stderr);
	p->shown = len;
	active = p;
}

void ps_progress_start(struct ps_progress *p, struct ps_cli *cli, size_t total)
{
	const char *kinds = p->kinds;

	memset(p, 0, sizeof(*p));
	p->cli = cli;
	p->kinds = kinds;
	p->total = total;
	p->on = total >= 2 && !cli->quiet && isatty(STDERR_FILENO);
}

void ps_progress_item(struct ps_progress *p, const char *fmt, ...)
{
	va_list ap;

	if (!p || !p->on)
		return;
	va_start(ap, fmt);
	draw(p, p->done + 1 <= p->total ? p->done + 1 : p->total, fmt, ap);
	va_end(ap);
}

void ps_progress_step(struct ps_progress *p, const char *fmt, ...)
{
	va_list ap;

	if (!p)
		return;
	if (p->done < p->total)
		p->done++;
	if (!p->on)
		return;
	va_start(ap, fmt);
	draw(p, p->done, fmt, ap);
	va_end(ap);
}

void ps_progress_end(struct ps_progress *p)
{
	if (!p)
		return;
	erase(p);
	p->on = 0;
	if (active == p)
		active = NULL;
	stop_drawing();
}

void ps_progress_clear(void)
{
	if (active && active->shown)
		erase(active);
	else if (other_draws()) /* its line: whole width, as draw() cuts */
		fprintf(stderr, "\r%*s\r", (int)columns() - 1, "");
}

void ps_progress_init(void)
{
	ps_cli_set_line_clear(ps_progress_clear);
	ps_secret_set_before_prompt(ps_progress_clear);
}

static int is_item(const char *kinds, const char *kind)
{
	size_t n = strlen(kind);

	for (const char *k = kinds; k && *k;) {
		const char *end = strchr(k, ',');
		size_t len = end ? (size_t)(end - k) : strlen(k);

		if (len == n && strncmp(k, kind, n) == 0)
			return 1;
		k = end ? end + 1 : NULL;
	}
	return 0;
}

int ps_progress_emit(void *ctx, const json_t *rec)
{
	struct ps_progress *p = ctx;
	const char *kind = ps_json_str(rec, "kind");
	int rc = ps_cli_emit(p->cli, rec);

	if (kind && is_item(p->kinds, kind))
		ps_progress_step(p, "%s", ps_progress_text(rec));
	return rc;
}

const char *ps_progress_text(const json_t *rec)
{
	static char text[256];
	const char *cn = ps_json_str(rec, "cn");
	const char *type = ps_json_str(rec, "type");
	const char *cls = ps_json_str(rec, "class");
	const char *state = ps_json_str(rec, "state");
	const char *kind = ps_json_str(rec, "kind");
	const char *id = ps_json_str(rec, "serial_hex");
	const char *obj = !cls			    ? NULL
			  : !strcmp(cls, "cert")    ? "certificate"
			  : !strcmp(cls, "private") ? "private key"
			  : !strcmp(cls, "public")  ? "public key"
						    : cls;
	size_t n = 0;

	if (!id)
		id = ps_json_str(rec, "request_id");
	if (kind && strcmp(kind, "error") == 0)
		state = ps_json_str(rec, "code");
	else if (kind && strcmp(kind, "jip") == 0)
		state = ps_json_str(rec, "result");
	else if (!state || !kind ||
		 (strcmp(kind, "cert") && strcmp(kind, "request")))
		state = kind;
	text[0] = '\0';
	for (const char *w[] = { cn, type, obj, id }, **x = w; x < w + 4; x++)
		if (*x && n < sizeof(text))
			n += (size_t)snprintf(text + n, sizeof(text) - n,
					      "%s%s", n ? " " : "", *x);
	if (n < sizeof(text))
		snprintf(text + n, sizeof(text) - n, ": %s",
			 state ? state : "done");
	return text;
}

static void hook_start(void *ctx, size_t n)
{
	struct ps_progress *p = ctx;

	ps_progress_start(p, p->cli, n);
}

static void hook_item(void *ctx, const char *what)
{
	ps_progress_item(ctx, "%s", what);
}

static void hook_step(void *ctx, const json_t *rec)
{
	ps_progress_step(ctx, "%s", rec ? ps_progress_text(rec) : "done");
}

static void hook_end(void *ctx)
{
	ps_progress_end(ctx);
}

static void hook_info(void *ctx, const char *what)
{
	struct ps_progress *p = ctx;

	ps_cli_info(p->cli, "%s", what);
}

static void hook_warn(void *ctx, const char *what)
{
	struct ps_progress *p = ctx;

	ps_cli_warn(p->cli, "%s", what);
}

/* The wait line: "prog: generating a 4096-bit key on TokenME: 1 min 12 s",
 * redrawn every second by a thread of its own while the main thread waits
 * in the module (a TokenME takes minutes for an RSA-4096 key). */
static struct {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int running, stop;
	char what[256];
	const char *prog;
	struct timespec t0;
	size_t shown;
} waitline = { .mu = PTHREAD_MUTEX_INITIALIZER,
	       .cv = PTHREAD_COND_INITIALIZER };

static void wait_draw(long secs)
{
	char line[400], t[40];
	size_t len;

	if (secs < 60)
		snprintf(t, sizeof(t), "%ld s", secs);
	else if (secs < 3600)
		snprintf(t, sizeof(t), "%ld min %ld s", secs / 60, secs % 60);
	else
		snprintf(t, sizeof(t), "%ld h %ld min", secs / 3600,
			 secs / 60 % 60);
	snprintf(line, sizeof(line), "%s: %s: %s", waitline.prog, waitline.what,
		 t);
	len = cut(line, columns() > 1 ? columns() - 1 : 1);
	fprintf(stderr, "\r%s", line);
	if (len < waitline.shown)
		fprintf(stderr, "%*s\r%s", (int)(waitline.shown - len), "",
			line);
	fflush(stderr);
	waitline.shown = len;
}

static void *wait_thread(void *arg)
{
	struct timespec now, next;

	(void)arg;
	pthread_mutex_lock(&waitline.mu);
	next = waitline.t0;
	while (!waitline.stop) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		wait_draw((long)(now.tv_sec - waitline.t0.tv_sec) -
			  (now.tv_nsec < waitline.t0.tv_nsec));
		next.tv_sec++;
		while (!waitline.stop &&
		       pthread_cond_timedwait(&waitline.cv, &waitline.mu,
					      &next) == 0)
			;
	}
	pthread_mutex_unlock(&waitline.mu);
	return NULL;
}

static void wait_begin(struct ps_progress *p, const char *what)
{
	pthread_condattr_t ca;

	if (waitline.running || p->cli->quiet || !isatty(STDERR_FILENO))
		return;
	ps_progress_clear();
	snprintf(waitline.what, sizeof(waitline.what), "%s", what);
	for (char *c = waitline.what; *c; c++)
		if ((unsigned char)*c < 0x20)
			*c = ' ';
	waitline.prog = p->cli->prog;
	waitline.stop = 0;
	waitline.shown = 0;
	/* the timed waits count on the monotonic clock */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_destroy(&waitline.cv);
	pthread_cond_init(&waitline.cv, &ca);
	pthread_condattr_destroy(&ca);
	clock_gettime(CLOCK_MONOTONIC, &waitline.t0);
	waitline.running =
	    pthread_create(&waitline.th, NULL, wait_thread, NULL) == 0;
}

static void wait_end(void)
{
	if (!waitline.running)
		return;
	pthread_mutex_lock(&waitline.mu);
	waitline.stop = 1;
	pthread_cond_signal(&waitline.cv);
	pthread_mutex_unlock(&waitline.mu);
	pthread_join(waitline.th, NULL);
	waitline.running = 0;
	if (waitline.shown) {
		fprintf(stderr, "\r%*s\r", (int)waitline.shown, "");
		fflush(stderr);
	}
}

static void hook_wait(void *ctx, const char *what)
{
	if (what)
		wait_begin(ctx, what);
	else
		wait_end();
}

struct ps_batch_hooks ps_progress_hooks(struct ps_progress *p,
					struct ps_cli *cli)
{
	struct ps_batch_hooks h = {
		.emit = ps_progress_emit,
		.start = hook_start,
		.item = hook_item,
		.step = hook_step,
		.end = hook_end,
		.info = hook_info,
		.warn = hook_warn,
		.wait = hook_wait,
		.ctx = p,
	};

	p->cli = cli;
	return h;
}

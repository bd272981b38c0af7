/* psrenew: common options and messages of every binary. */
#include "cli.h"
#include "progress.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <psrenew/cert.h>
#include <psrenew/modsearch.h>
#include <psrenew/secret.h>
#include <psrenew/version.h>

/* The common options' table, bound to cli (callbacks get cli). */
#define N_COMMON 12

static int opt_quiet(const struct ps_opt *o, const char *arg,
		     struct ps_err *err)
{
	struct ps_cli *cli = o->value;

	(void)arg;
	(void)err;
	cli->quiet = 1;
	cli->verbose = 0;
	return 0;
}

static int opt_verbose(const struct ps_opt *o, const char *arg,
		       struct ps_err *err)
{
	struct ps_cli *cli = o->value;

	(void)arg;
	(void)err;
	cli->verbose++;
	cli->quiet = 0;
	return 0;
}

static void print_opts(FILE *f, const struct ps_opt *o)
{
	for (; o && o->kind != PS_OPT_END; o++) {
		char left[64];

		char sn[8] = "    ";

		if (!o->help)
			continue;
		if (o->short_name)
			snprintf(sn, sizeof(sn), "-%c, ", (char)o->short_name);
		if (o->arg && o->optional)
			snprintf(left, sizeof(left), "%s--%s[=%s]", sn, o->name,
				 o->arg);
		else if (o->arg)
			snprintf(left, sizeof(left), "%s--%s %s", sn, o->name,
				 o->arg);
		else
			snprintf(left, sizeof(left), "%s--%s", sn, o->name);
		fprintf(f, "  %-26s %s\n", left, o->help);
	}
}

static void common_table(struct ps_cli *cli, struct ps_opt *t);

static int opt_help(const struct ps_opt *o, const char *arg, struct ps_err *err)
{
	struct ps_cli *cli = o->value;
	struct ps_opt common[N_COMMON + 1];

	(void)arg;
	(void)err;
	common_table(cli, common);
	printf("Usage: %s %s\n%s\n\n", cli->prog, cli->synopsis, cli->summary);
	if (cli->opts && cli->opts->kind != PS_OPT_END) {
		printf("Options:\n");
		print_opts(stdout, cli->opts);
		printf("\n");
	}
	printf("Common options:\n");
	print_opts(stdout, common);
	printf("\nExit status: 0 done, 1 failed, 2 usage, 3 pending/expiring, "
	       "4 temporary failure,\n5 refused, 6 token problem. See %s(1) "
	       "and psrenew(7).\n",
	       cli->prog);
	cli->done = 1;
	return 0;
}

static int opt_version(const struct ps_opt *o, const char *arg,
		       struct ps_err *err)
{
	struct ps_cli *cli = o->value;

	(void)arg;
	(void)err;
	printf("%s (psrenew) %s\n", cli->prog, PSRENEW_VERSION);
	cli->done = 1;
	return 0;
}

/* --completion-helper: every option the completions offer, one a line,
 * as git's --git-completion-helper (the hidden ones left out). */
static int opt_completion(const struct ps_opt *o, const char *arg,
			  struct ps_err *err)
{
	struct ps_cli *cli = o->value;
	struct ps_opt common[N_COMMON + 1];

	(void)arg;
	(void)err;
	common_table(cli, common);
	for (const struct ps_opt *t = cli->opts; t && t->kind; t++)
		if (t->help)
			printf("--%s\n", t->name);
	for (const struct ps_opt *t = common; t->kind; t++)
		if (t->help)
			printf("--%s\n", t->name);
	cli->done = 1;
	return 0;
}

static void common_table(struct ps_cli *cli, struct ps_opt *t)
{
	const struct ps_opt common[N_COMMON + 1] = {
		PS_OPT_STRING("module", &cli->module, "PATH",
			      "PKCS#11 module (default: psrenew.conf's, "
			      "$PKCS11_MODULE, a token module found, else "
			      "p11-kit's proxy)"),
		PS_OPT_STRING("token", &cli->token, "URI",
			      "token to use, as a pkcs11: URI (default: every "
			      "token)"),
		PS_OPT_STRING("pin", &cli->pin, "SOURCE",
			      "PIN source: prompt, env:VAR, file:PATH, fd:N or "
			      "pinpad"),
		PS_OPT_SET("json", &cli->out_mode, PS_OUT_JSON,
			   "JSON Lines on stdout, even on a terminal"),
		PS_OPT_SET("human", &cli->out_mode, PS_OUT_HUMAN,
			   "a table on stdout, even into a pipe"),
		PS_OPT_FLAG_CB("quiet", 'q', cli, opt_quiet,
			       "only errors on stderr"),
		PS_OPT_FLAG_CB("verbose", 'v', cli, opt_verbose,
			       "say more on stderr"),
		PS_OPT_STRING("state-dir", &cli->state_dir, "DIR",
			      "where pending requests are kept"),
		PS_OPT_STRING("config", &cli->config, "FILE",
			      "configuration file (psrenew.conf(5))"),
		PS_OPT_FLAG_CB("help", 'h', cli, opt_help,
			       "show this help and exit"),
		PS_OPT_FLAG_CB("version", 'V', cli, opt_version,
			       "show the version and exit"),
		PS_OPT_CALLBACK("completion-helper", cli, opt_completion, NULL,
				NULL),
		PS_OPT_END(),
	};

	memcpy(t, common, sizeof(common));
}

static size_t count_opts(const struct ps_opt *o)
{
	size_t n = 0;

	while (o && o[n].kind != PS_OPT_END)
		n++;
	return n;
}

/* getopt_long's view of the tables: option k of all is val 256 + k. */
static struct option *build_longopts(const struct ps_opt *all, size_t n,
				     char *shorts, size_t cap)
{
	struct option *lo = calloc(n + 1, sizeof(*lo));
	size_t ns = 0;

	for (size_t k = 0; lo && k < n; k++) {
		lo[k] = (struct option){ all[k].name,
					 !all[k].arg	   ? 0
					 : all[k].optional ? 2
							   : 1,
					 NULL, 256 + (int)k };
		if (all[k].short_name && ns + 1 < cap)
			shorts[ns++] = (char)all[k].short_name;
	}
	shorts[ns] = '\0';
	return lo;
}

static int list_add(const struct ps_opt *o, const char *arg, struct ps_err *err)
{
	struct ps_opt_list *l = o->value;

	if (l->n >= PS_OPT_LIST_MAX)
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--%s: at most %d", o->name, PS_OPT_LIST_MAX);
	l->v[l->n++] = arg;
	return 0;
}

/* What option o does with its variable, given arg. */
static int apply(const struct ps_opt *o, const char *arg, struct ps_err *err)
{
	switch (o->kind) {
	case PS_OPT_BOOL: *(int *)o->value = (int)o->val; return 0;
	case PS_OPT_BIT: *(unsigned *)o->value |= (unsigned)o->val; return 0;
	case PS_OPT_STRING: *(const char **)o->value = arg; return 0;
	case PS_OPT_COUNT: ++*(int *)o->value; return 0;
	case PS_OPT_LIST: return list_add(o, arg, err);
	case PS_OPT_CALLBACK: return o->cb(o, arg, err);
	case PS_OPT_INT:
		if (o->optional)
			*(long *)o->value = o->dflt;
		if (!arg && o->optional)
			return 0;
		return ps_cli_number(o->name, arg, o->val, o->value, err);
	case PS_OPT_END: break;
	}
	return PS_EXIT_USAGE;
}

int ps_opt_secret(const struct ps_opt *o, const char *arg, struct ps_err *err)
{
	*(const char **)o->value = arg;
	return ps_secret_check_source(arg, err);
}

int ps_opt_cert_type(const struct ps_opt *o, const char *arg,
		     struct ps_err *err)
{
	int *type = o->value;

	*type = ps_cert_type_parse(arg);
	if (*type < 0)
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--type is qualified or commercial");
	return 0;
}

/* A mistyped key or section is ignored by the reader: say so. */
static void warn_unknown(const struct ps_cli *cli)
{
	const struct ps_config *c = &cli->cfg;

	for (size_t i = 0; i < c->n; i++)
		if (!ps_config_known(c->e[i].section, c->e[i].key))
			ps_cli_warn(cli,
				    "%s, line %d: unknown key '%s' in [%s], "
				    "ignored (see psrenew.conf(5))",
				    c->path, c->e[i].line, c->e[i].key,
				    c->e[i].section);
}

/* No module named (--module, the URI, PKCS11_MODULE, the configuration):
 * the known token modules, found (lib/modsearch.c). */
static void search_module(struct ps_cli *cli)
{
	static struct ps_module_found found;
	const char *env = getenv("PKCS11_MODULE");

	if (cli->module || (env && *env) ||
	    (cli->token && cli->token_uri.module_path))
		return;
	cli->module = ps_module_default(&cli->cfg, &found, &cli->module_from);
	if (!cli->module)
		cli->module_from = NULL;
}

static int apply_defaults(struct ps_cli *cli, struct ps_err *err)
{
	const struct ps_config *c = &cli->cfg;
	const char *v;

	if (!cli->module) {
		cli->module = ps_config_get(c, "defaults", "module");
		if (cli->module)
			cli->module_from = "the configuration";
	}
	if (!cli->token)
		cli->token = ps_config_get(c, "defaults", "token");
	cli->pin_given = cli->pin != NULL;
	if (!cli->pin)
		cli->pin = ps_config_get(c, "defaults", "pin");
	if (!cli->state_dir)
		cli->state_dir = ps_config_get(c, "defaults", "state-dir");
	v = cli->pin;
	if (v && strcmp(v, "pinpad") != 0 && ps_secret_check_source(v, err))
		return err->status;
	if (cli->token && ps_uri_parse(cli->token, &cli->token_uri, err))
		return err->status;
	search_module(cli);
	return ps_token_pin_rules(c, cli->token ? &cli->token_uri : NULL,
				  cli->pin_given, err);
}

/* The binary's options, then the common ones, in one table (freed by
 * the caller). */
static struct ps_opt *all_opts(struct ps_cli *cli, const struct ps_opt *opts,
			       size_t *n)
{
	size_t ne = count_opts(opts);
	struct ps_opt *all = calloc(ne + N_COMMON + 1, sizeof(*all));

	if (!all)
		return NULL;
	if (ne)
		memcpy(all, opts, ne * sizeof(*all));
	common_table(cli, all + ne);
	*n = ne + N_COMMON;
	return all;
}

/* getopt_long said ':': the option (optopt: its val, or its letter)
 * has no argument. */
static int missing_arg(const struct ps_cli *cli, const struct ps_opt *all,
		       size_t n, const char *word, struct ps_err *err)
{
	const struct ps_opt *o = NULL;

	if (optopt >= 256 && (size_t)(optopt - 256) < n)
		o = &all[optopt - 256];
	for (size_t i = 0; !o && i < n; i++)
		if (all[i].short_name && all[i].short_name == optopt)
			o = &all[i];
	if (!o || !o->arg)
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "%s needs an argument (see %s --help)", word,
				  cli->prog);
	return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
			  "--%s needs an argument: --%s %s (see %s --help)",
			  o->name, o->name, o->arg, cli->prog);
}

static int parse_opts(struct ps_cli *cli, int argc, char **argv,
		      const struct ps_opt *all, size_t n, struct ps_err *err)
{
	char shorts[16] = ":"; /* ':' first: a missing argument is ':' */
	struct option *lo =
	    build_longopts(all, n, shorts + 1, sizeof(shorts) - 1);
	int c = lo ? getopt_long(argc, argv, shorts, lo, NULL) : -1;
	int rc = lo ? 0 : ps_err_nomem(err);

	for (; !rc && !cli->done && c != -1;
	     c = getopt_long(argc, argv, shorts, lo, NULL)) {
		size_t k = n;

		if (c >= 256 && (size_t)(c - 256) < n)
			k = (size_t)(c - 256);
		for (size_t i = 0; k == n && c > 0 && c < 256 && i < n; i++)
			if (all[i].short_name == c)
				k = i;
		if (c == ':')
			rc = missing_arg(cli, all, n, argv[optind - 1], err);
		else if (k == n)
			rc = ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
					"unknown option: %s (see %s --help)",
					argv[optind - 1], cli->prog);
		else
			rc = apply(&all[k], optarg, err);
	}
	free(lo);
	return rc;
}

int ps_cli_parse(struct ps_cli *cli, int argc, char **argv,
		 const struct ps_opt *opts, int *first_arg, struct ps_err *err)
{
	struct ps_opt *all;
	size_t n = 0;
	int rc;

	ps_secret_protect_process();
	ps_uri_init(&cli->token_uri);
	cli->opts = opts;
	all = all_opts(cli, opts, &n);
	if (!all)
		return ps_err_nomem(err);
	opterr = 0;
	optind = 1;
	rc = parse_opts(cli, argc, argv, all, n, err);
	free(all);
	*first_arg = optind;
	if (rc || cli->done)
		return rc;
	rc = ps_config_load(cli->config, &cli->cfg, err);
	if (!rc)
		warn_unknown(cli);
	if (!rc)
		rc = apply_defaults(cli, err);
	return rc;
}

static void clear_line(void);

int ps_cli_main(struct ps_cli *cli, int argc, char **argv,
		const struct ps_opt *opts, void *args, int max_operands,
		ps_cli_run run)
{
	struct ps_err err;
	int first = argc, rc;

	ps_err_clear(&err);
	ps_progress_init();
	rc = ps_cli_parse(cli, argc, argv, opts, &first, &err);
	if (!rc && !cli->done && max_operands >= 0 &&
	    argc - first > max_operands)
		rc = ps_err_set(&err, PS_EXIT_USAGE, "usage", NULL,
				"unexpected argument '%s' (see %s --help)",
				argv[first + max_operands], cli->prog);
	if (!rc && !cli->done)
		rc = run(cli, args, argv + first, argc - first, &err);
	if (rc && err.status)
		ps_cli_report(cli, &err);
	errno = 0;
	clear_line(); /* the table may go to the terminal */
	if (ps_out_finish(cli->out) < 0) {
		int e = errno;

		cli->out = NULL; /* no record: stdout is what failed */
		cli->out_failed = 1;
		ps_err_set(&err, PS_EXIT_FAIL, "io",
			   "check the disk or the command reading the output",
			   "cannot write the output to stdout: %s",
			   e ? strerror(e) : "a write failed");
		ps_cli_report(cli, &err);
		if (!rc)
			rc = PS_EXIT_FAIL;
	}
	cli->out = NULL;
	ps_cli_free(cli);
	return rc;
}

void ps_cli_free(struct ps_cli *cli)
{
	ps_token_pin_rules_clear();
	ps_config_free(&cli->cfg);
	ps_uri_free(&cli->token_uri);
}

struct ps_out *ps_cli_out(struct ps_cli *cli)
{
	if (!cli->out)
		cli->out = ps_out_new(stdout, cli->out_mode);
	return cli->out;
}

/* What erases a progress line before a message or a record is written
 * (ps_progress_init sets it: cli.c knows nothing of progress lines). */
static void (*line_clear)(void);

void ps_cli_set_line_clear(void (*fn)(void))
{
	line_clear = fn;
}

static void clear_line(void)
{
	if (line_clear)
		line_clear();
}

int ps_cli_report(struct ps_cli *cli, const struct ps_err *err)
{
	clear_line();
	fprintf(stderr, "%s: %s\n", cli->prog,
		err->msg[0] ? err->msg : "failed");
	if (err->hint[0] && !cli->quiet)
		fprintf(stderr, "%s: hint: %s\n", cli->prog, err->hint);
	if (!cli->out_failed && ps_cli_out(cli) && ps_out_is_json(cli->out)) {
		json_t *r = ps_record_error(err);

		if (r)
			ps_out_emit(cli->out, r);
		json_decref(r);
	}
	return err->status ? err->status : PS_EXIT_FAIL;
}

int ps_cli_emit(void *ctx, const json_t *rec)
{
	struct ps_cli *cli = ctx;
	const char *kind = ps_json_str(rec, "kind");

	if ((kind && !strcmp(kind, "error")) || isatty(STDOUT_FILENO))
		clear_line(); /* stderr, or stdout the same terminal */
	if (kind && strcmp(kind, "error") == 0) {
		const char *msg = ps_json_str(rec, "message");
		const char *hint = ps_json_str(rec, "hint");

		const char *cert = ps_json_str(rec, "certificate");

		fprintf(stderr, "%s: %s\n", cli->prog, msg ? msg : "failed");
		if (hint && !cli->quiet)
			fprintf(stderr, "%s: hint: %s\n", cli->prog, hint);
		/* An issued certificate that could not be saved: never lost,
		 * even without the records. */
		if (cert)
			fprintf(stderr, "%s", cert);
	}
	if (ps_cli_out(cli) && ps_out_emit(cli->out, rec) < 0)
		return -1;
	return 0;
}

/* "prog: message" on stderr, on a line of its own. */
static void say(const struct ps_cli *cli, const char *fmt, va_list ap)
{
	clear_line();
	fprintf(stderr, "%s: ", cli->prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void ps_cli_warn(const struct ps_cli *cli, const char *fmt, ...)
{
	va_list ap;

	if (cli->quiet)
		return;
	va_start(ap, fmt);
	say(cli, fmt, ap);
	va_end(ap);
}

void ps_cli_info(const struct ps_cli *cli, const char *fmt, ...)
{
	va_list ap;

	if (!cli->verbose)
		return;
	va_start(ap, fmt);
	say(cli, fmt, ap);
	va_end(ap);
}

void ps_cli_note(const struct ps_cli *cli, const char *fmt, ...)
{
	va_list ap;

	if (cli->quiet || (!cli->verbose && !isatty(STDOUT_FILENO)))
		return;
	va_start(ap, fmt);
	say(cli, fmt, ap);
	va_end(ap);
}

int ps_cli_tokens(struct ps_cli *cli, struct ps_module **mod,
		  struct ps_token ***toks, size_t *n, struct ps_err *err)
{
	const struct ps_uri *sel = cli->token ? &cli->token_uri : NULL;
	int rc =
	    ps_module_open_from(cli->module, cli->module_from, sel, mod, err);

	if (rc)
		return rc;
	ps_cli_info(cli, "module: %s%s%s", ps_module_describe(*mod),
		    cli->module_from ? ", from " : "",
		    cli->module_from ? cli->module_from : "");
	rc = ps_tokens_find(*mod, sel, toks, n, err);
	if (rc) {
		ps_module_close(*mod);
		*mod = NULL;
	}
	return rc;
}

int ps_cli_number(const char *opt, const char *arg, long max, long *out,
		  struct ps_err *err)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg ? arg : "", &end, 10);
	if (errno || !arg || end == arg || *end || v < 0 || v > max)
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--%s wants a number from 0 to %ld, not "
				  "'%.40s'",
				  opt, max, arg ? arg : "");
	*out = v;
	return 0;
}

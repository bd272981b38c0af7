/* psrenew: common options and messages of every binary. */
#include <psrenew/cli.h>

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <psrenew/progress.h>
#include <psrenew/secret.h>
#include <psrenew/version.h>

enum {
	OPT_MODULE = 1,
	OPT_TOKEN,
	OPT_PIN,
	OPT_JSON,
	OPT_HUMAN,
	OPT_QUIET,
	OPT_VERBOSE,
	OPT_HELP,
	OPT_VERSION,
	OPT_STATE_DIR,
	OPT_CONFIG,
};

static const struct ps_cli_opt common_opts[] = {
	{ "module", 1, OPT_MODULE, "PATH",
	  "PKCS#11 module (default: $PKCS11_MODULE, else p11-kit's proxy)" },
	{ "token", 1, OPT_TOKEN, "URI",
	  "token to use, as a pkcs11: URI (default: every token)" },
	{ "pin", 1, OPT_PIN, "SOURCE",
	  "PIN source: prompt, env:VAR, file:PATH, fd:N or pinpad" },
	{ "json", 0, OPT_JSON, NULL,
	  "JSON Lines on stdout, even on a terminal" },
	{ "human", 0, OPT_HUMAN, NULL, "a table on stdout, even into a pipe" },
	{ "quiet", 0, OPT_QUIET, NULL, "only errors on stderr" },
	{ "verbose", 0, OPT_VERBOSE, NULL, "say more on stderr" },
	{ "state-dir", 1, OPT_STATE_DIR, "DIR",
	  "where pending requests are kept" },
	{ "config", 1, OPT_CONFIG, "FILE",
	  "configuration file (psrenew.conf(5))" },
	{ "help", 0, OPT_HELP, NULL, "show this help and exit" },
	{ "version", 0, OPT_VERSION, NULL, "show the version and exit" },
	{ NULL, 0, 0, NULL, NULL },
};

static size_t count_opts(const struct ps_cli_opt *o)
{
	size_t n = 0;

	while (o && o[n].name)
		n++;
	return n;
}

static void print_opts(FILE *f, const struct ps_cli_opt *o)
{
	for (; o && o->name; o++) {
		char left[64];

		if (o->has_arg == 1)
			snprintf(left, sizeof(left), "--%s %s", o->name,
				 o->arg);
		else if (o->has_arg == 2)
			snprintf(left, sizeof(left), "--%s[=%s]", o->name,
				 o->arg);
		else
			snprintf(left, sizeof(left), "--%s", o->name);
		fprintf(f, "  %-26s %s\n", left, o->help);
	}
}

static void help(const struct ps_cli *cli, const struct ps_cli_opt *extra)
{
	printf("Usage: %s %s\n%s\n\n", cli->prog, cli->synopsis, cli->summary);
	if (count_opts(extra)) {
		printf("Options:\n");
		print_opts(stdout, extra);
		printf("\n");
	}
	printf("Common options:\n");
	print_opts(stdout, common_opts);
	printf("\nExit status: 0 done, 1 failed, 2 usage, 3 pending/expiring, "
	       "4 temporary failure,\n5 refused, 6 token problem. See %s(1) "
	       "and psrenew(7).\n",
	       cli->prog);
}

static int build_longopts(const struct ps_cli_opt *extra, struct option **out)
{
	size_t ne = count_opts(extra), nc = count_opts(common_opts), k = 0;
	struct option *lo = calloc(ne + nc + 1, sizeof(*lo));

	if (!lo)
		return -1;
	for (size_t i = 0; i < nc; i++, k++)
		lo[k] = (struct option){ common_opts[i].name,
					 common_opts[i].has_arg, NULL,
					 common_opts[i].key };
	for (size_t i = 0; i < ne; i++, k++)
		lo[k] = (struct option){ extra[i].name, extra[i].has_arg, NULL,
					 extra[i].key };
	*out = lo;
	return 0;
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
	return ps_token_pin_rules(c, cli->token ? &cli->token_uri : NULL,
				  cli->pin_given, err);
}

static int common_opt(struct ps_cli *cli, int key, const char *arg)
{
	switch (key) {
	case OPT_MODULE: cli->module = arg; break;
	case OPT_TOKEN: cli->token = arg; break;
	case OPT_PIN: cli->pin = arg; break;
	case OPT_JSON: cli->out_mode = PS_OUT_JSON; break;
	case OPT_HUMAN: cli->out_mode = PS_OUT_HUMAN; break;
	case OPT_QUIET:
		cli->quiet = 1;
		cli->verbose = 0;
		break;
	case OPT_VERBOSE:
		cli->verbose++;
		cli->quiet = 0;
		break;
	case OPT_STATE_DIR: cli->state_dir = arg; break;
	case OPT_CONFIG: cli->config = arg; break;
	default: return 0;
	}
	return 1;
}

int ps_cli_parse(struct ps_cli *cli, int argc, char **argv,
		 const struct ps_cli_opt *extra, ps_cli_handler handler,
		 void *ctx, int *first_arg, struct ps_err *err)
{
	struct option *lo;
	int c, rc = 0;

	ps_secret_protect_process();
	ps_uri_init(&cli->token_uri);
	if (build_longopts(extra, &lo) < 0)
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "out of memory");
	opterr = 0;
	optind = 1;
	while (!rc && (c = getopt_long(argc, argv, "hVqv", lo, NULL)) != -1) {
		if (c == 'h' || c == OPT_HELP) {
			help(cli, extra);
			cli->done = 1;
			break;
		}
		if (c == 'V' || c == OPT_VERSION) {
			printf("%s (psrenew) %s\n", cli->prog, PSRENEW_VERSION);
			cli->done = 1;
			break;
		}
		if (c == 'q')
			c = OPT_QUIET;
		if (c == 'v')
			c = OPT_VERBOSE;
		if (c == '?' || c == ':') {
			rc = ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
					"unknown option or missing "
					"argument: %s (see %s --help)",
					argv[optind - 1], cli->prog);
			break;
		}
		if (common_opt(cli, c, optarg))
			continue;
		rc = handler ? handler(ctx, c, optarg, err) : PS_EXIT_USAGE;
	}
	free(lo);
	*first_arg = optind;
	if (rc || cli->done)
		return rc;
	rc = ps_config_load(cli->config, &cli->cfg, err);
	if (!rc)
		rc = apply_defaults(cli, err);
	return rc;
}

int ps_cli_main(struct ps_cli *cli, int argc, char **argv,
		const struct ps_cli_opt *opts, ps_cli_handler on_opt,
		void *args, int max_operands, ps_cli_run run)
{
	struct ps_err err;
	int first = argc, rc;

	ps_err_clear(&err);
	rc = ps_cli_parse(cli, argc, argv, opts, on_opt, args, &first, &err);
	if (!rc && !cli->done && max_operands >= 0 &&
	    argc - first > max_operands)
		rc = ps_err_set(&err, PS_EXIT_USAGE, "usage", NULL,
				"unexpected argument '%s' (see %s --help)",
				argv[first + max_operands], cli->prog);
	if (!rc && !cli->done)
		rc = run(cli, args, argv + first, argc - first, &err);
	if (rc && err.status)
		ps_cli_report(cli, &err);
	if (ps_out_finish(cli->out) < 0 && !rc)
		rc = PS_EXIT_FAIL;
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

int ps_cli_report(struct ps_cli *cli, const struct ps_err *err)
{
	ps_progress_clear();
	fprintf(stderr, "%s: %s\n", cli->prog,
		err->msg[0] ? err->msg : "failed");
	if (err->hint[0] && !cli->quiet)
		fprintf(stderr, "%s: hint: %s\n", cli->prog, err->hint);
	if (ps_cli_out(cli) && ps_out_is_json(cli->out)) {
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

	ps_progress_clear(); /* stdout may be the same terminal */
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

void ps_cli_warn(const struct ps_cli *cli, const char *fmt, ...)
{
	va_list ap;

	if (cli->quiet)
		return;
	ps_progress_clear();
	fprintf(stderr, "%s: ", cli->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void ps_cli_info(const struct ps_cli *cli, const char *fmt, ...)
{
	va_list ap;

	if (!cli->verbose)
		return;
	ps_progress_clear();
	fprintf(stderr, "%s: ", cli->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int ps_cli_tokens(struct ps_cli *cli, struct ps_module **mod,
		  struct ps_token ***toks, size_t *n, struct ps_err *err)
{
	const struct ps_uri *sel = cli->token ? &cli->token_uri : NULL;
	int rc =
	    ps_module_open_from(cli->module, cli->module_from, sel, mod, err);

	if (rc)
		return rc;
	ps_cli_info(cli, "module: %s", ps_module_describe(*mod));
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

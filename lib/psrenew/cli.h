/* psrenew: what every binary shares: options, messages, token opening. */
#ifndef PSRENEW_CLI_H
#define PSRENEW_CLI_H

#include <psrenew/config.h>
#include <psrenew/err.h>
#include <psrenew/record.h>
#include <psrenew/token.h>
#include <psrenew/uri.h>

/* One option of a binary: documented once, here, for --help. */
struct ps_cli_opt {
	const char *name; /* long name without "--" */
	int has_arg;	  /* 0, 1 (required) or 2 (optional, --name=ARG) */
	int key;	  /* value passed to the handler (>= 256) */
	const char *arg;  /* argument name for --help */
	const char *help;
};

struct ps_cli {
	const char *prog;     /* "ps-status" */
	const char *synopsis; /* "[OPTION]..." */
	const char *summary;  /* one line: what the binary does */
	const char *module, *token, *pin, *state_dir, *config;
	int out_mode; /* enum ps_out_mode */
	int quiet, verbose;
	int done; /* --help or --version was handled */
	struct ps_config cfg;
	struct ps_uri token_uri;
	struct ps_out *out;
	int pin_given; /* --pin was on the command line */
	/* Where module came from, for messages (NULL: --module). */
	const char *module_from;
};

typedef int (*ps_cli_handler)(void *ctx, int key, const char *arg,
			      struct ps_err *err);

/*
 * Parses the common options (--module, --token, --pin, --json, --human,
 * --quiet, --verbose, --help, --version, --state-dir, --config) and the
 * binary's own (extra, terminated by a zero entry; each one goes to handler),
 * reads the configuration, and applies its [defaults]. *first_arg is the
 * index of the first operand. Returns 0 or an exit status (err set).
 * After --help/--version, cli->done is set and 0 returned.
 */
int ps_cli_parse(struct ps_cli *cli, int argc, char **argv,
		 const struct ps_cli_opt *extra, ps_cli_handler handler,
		 void *ctx, int *first_arg, struct ps_err *err);
void ps_cli_free(struct ps_cli *cli);

/* What a binary does once its options are parsed: operands are what the
 * command line left (n of them). */
typedef int (*ps_cli_run)(struct ps_cli *cli, void *args, char **operands,
			  int n, struct ps_err *err);

/*
 * Every binary's main: parses the options, refuses more than max_operands
 * operands (-1: any), runs, tells the error (stderr, and an error record in
 * JSON mode), finishes the output. Returns the exit status.
 */
int ps_cli_main(struct ps_cli *cli, int argc, char **argv,
		const struct ps_cli_opt *opts, ps_cli_handler on_opt,
		void *args, int max_operands, ps_cli_run run);

/* Opens the output (stdout) in the selected mode. */
struct ps_out *ps_cli_out(struct ps_cli *cli);

/* Prints err for people on stderr ("prog: message" and "prog: hint") and,
 * in JSON mode, as an error record on stdout. Returns err->status. */
int ps_cli_report(struct ps_cli *cli, const struct ps_err *err);
void ps_cli_warn(const struct ps_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ps_cli_info(const struct ps_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Writes a record; an error record is also told on stderr. Returns 0. */
int ps_cli_emit(void *cli, const json_t *rec);

/* Loads the module and finds the tokens selected by --token. */
int ps_cli_tokens(struct ps_cli *cli, struct ps_module **mod,
		  struct ps_token ***toks, size_t *n, struct ps_err *err);

/* Parses a non-negative decimal option value. */
int ps_cli_number(const char *opt, const char *arg, long max, long *out,
		  struct ps_err *err);

#endif

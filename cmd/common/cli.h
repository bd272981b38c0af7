/* psrenew: what every binary shares: options, messages, token opening. */
#ifndef PSRENEW_CLI_H
#define PSRENEW_CLI_H

#include <psrenew/config.h>
#include <psrenew/err.h>
#include <psrenew/record.h>
#include <psrenew/token.h>
#include <psrenew/uri.h>

/*
 * Options as data (as git's parse-options): each option is bound to its
 * variable with a kind that says what it does with it. One table per
 * binary, plus the common options; --help, --completion-helper and the
 * parser all read the same tables.
 */
enum ps_opt_kind {
	PS_OPT_END = 0,
	PS_OPT_BOOL,	 /* int *: set to val (1 unless given) */
	PS_OPT_BIT,	 /* unsigned *: val or-ed in */
	PS_OPT_STRING,	 /* const char **: the argument */
	PS_OPT_INT,	 /* long *: a number from 0 to val */
	PS_OPT_COUNT,	 /* int *: one more each time */
	PS_OPT_LIST,	 /* struct ps_opt_list *: repeatable, each kept */
	PS_OPT_CALLBACK, /* cb(o, arg, err) */
};

struct ps_opt;
typedef int (*ps_opt_cb)(const struct ps_opt *o, const char *arg,
			 struct ps_err *err);

struct ps_opt {
	enum ps_opt_kind kind;
	const char *name; /* long name without "--" */
	int short_name;	  /* -x as well (0: none) */
	void *value;	  /* the variable (CALLBACK: the callback's) */
	const char *arg;  /* its argument's name in --help (NULL: none) */
	const char *help; /* NULL: not in --help */
	long val;	  /* BOOL, BIT: the value set; INT: the largest */
	int optional;	  /* the argument may be left out: --name[=ARG] */
	long dflt;	  /* INT: the value when it is left out */
	ps_opt_cb cb;
};

#define PS_OPT_LIST_MAX 64
struct ps_opt_list {
	const char *v[PS_OPT_LIST_MAX];
	size_t n;
};

#define PS_OPT_BOOL(n, var, h)                                                 \
	{                                                                      \
		.kind = PS_OPT_BOOL, .name = (n), .value = (var), .help = (h), \
		.val = 1                                                       \
	}
#define PS_OPT_SET(n, var, x, h)                                               \
	{                                                                      \
		.kind = PS_OPT_BOOL, .name = (n), .value = (var), .help = (h), \
		.val = (x)                                                     \
	}
#define PS_OPT_BIT(n, var, bit, h)                                             \
	{                                                                      \
		.kind = PS_OPT_BIT, .name = (n), .value = (var), .help = (h),  \
		.val = (bit)                                                   \
	}
#define PS_OPT_STRING(n, var, a, h)                                            \
	{                                                                      \
		.kind = PS_OPT_STRING, .name = (n), .value = (var),            \
		.arg = (a), .help = (h)                                        \
	}
#define PS_OPT_INT(n, var, max, a, h)                                          \
	{                                                                      \
		.kind = PS_OPT_INT, .name = (n), .value = (var), .arg = (a),   \
		.help = (h), .val = (max)                                      \
	}
#define PS_OPT_INT_OPTARG(n, var, max, d, a, h)                                \
	{                                                                      \
		.kind = PS_OPT_INT, .name = (n), .value = (var), .arg = (a),   \
		.help = (h), .val = (max), .optional = 1, .dflt = (d)          \
	}
#define PS_OPT_LIST(n, var, a, h)                                              \
	{                                                                      \
		.kind = PS_OPT_LIST, .name = (n), .value = (var), .arg = (a),  \
		.help = (h)                                                    \
	}
#define PS_OPT_CALLBACK(n, var, fn, a, h)                                      \
	{                                                                      \
		.kind = PS_OPT_CALLBACK, .name = (n), .value = (var),          \
		.arg = (a), .help = (h), .cb = (fn)                            \
	}
/* A flag with a short name too (-q, -v, -h, -V) whose callback acts. */
#define PS_OPT_FLAG_CB(n, c, var, fn, h)                                       \
	{                                                                      \
		.kind = PS_OPT_CALLBACK, .name = (n), .short_name = (c),       \
		.value = (var), .help = (h), .cb = (fn)                        \
	}
/* A secret source (prompt, env:VAR, file:PATH, fd:N), checked. */
#define PS_OPT_SECRET(n, var, h)                                               \
	PS_OPT_CALLBACK(n, var, ps_opt_secret, "SOURCE", h)
#define PS_OPT_END()                                                           \
	{                                                                      \
		.kind = PS_OPT_END                                             \
	}

/* Callbacks: a secret source into a const char *; a certificate type
 * ("qualified" or "commercial") into an int. */
int ps_opt_secret(const struct ps_opt *o, const char *arg, struct ps_err *err);
int ps_opt_cert_type(const struct ps_opt *o, const char *arg,
		     struct ps_err *err);

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
	int out_failed; /* stdout could not be written: no more records */
	int pin_given;	/* --pin was on the command line */
	/* Where module came from, for messages (NULL: --module). */
	const char *module_from;
	const struct ps_opt *opts; /* the binary's own options */
};

/*
 * Parses the common options (--module, --token, --pin, --json, --human,
 * --quiet, --verbose, --help, --version, --state-dir, --config,
 * --completion-helper) and the binary's own (opts, ended by PS_OPT_END()),
 * reads the configuration, and applies its [defaults]. *first_arg is the
 * index of the first operand. Returns 0 or an exit status (err set).
 * After --help, --version or --completion-helper, cli->done is set and 0
 * returned.
 */
int ps_cli_parse(struct ps_cli *cli, int argc, char **argv,
		 const struct ps_opt *opts, int *first_arg, struct ps_err *err);
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
		const struct ps_opt *opts, void *args, int max_operands,
		ps_cli_run run);

/* Opens the output (stdout) in the selected mode. */
struct ps_out *ps_cli_out(struct ps_cli *cli);

/* Prints err for people on stderr ("prog: message" and "prog: hint") and,
 * in JSON mode, as an error record on stdout. Returns err->status. */
int ps_cli_report(struct ps_cli *cli, const struct ps_err *err);
/* fn erases whatever a progress line left on the terminal; called before
 * every message and record (NULL: nothing to erase). */
void ps_cli_set_line_clear(void (*fn)(void));
void ps_cli_warn(const struct ps_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ps_cli_info(const struct ps_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A note about the output for the person reading it (no fault: "not logged
 * in, KEY is '-'"): on stderr when stdout is a terminal or with --verbose,
 * never with --quiet; cron, whose output goes to a file or a mail, gets
 * none (psrenew(7), DESCRIPTION). */
void ps_cli_note(const struct ps_cli *cli, const char *fmt, ...)
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

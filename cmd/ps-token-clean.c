/* ps-token-clean: make room on a full token, safely (the guide's §7, error
 * 621). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <psrenew/clean_plan.h>

#include "common/cli.h"
#include "common/progress.h"

struct args {
	int yes, dry_run, force_valid, keep_keys;
	unsigned select;
	long for_room;
	struct ps_opt_list ids, serials, jip;
};

/* Everything a run holds; freed by ctx_free. */
struct ctx {
	struct ps_cli *cli;
	struct ps_clean_batch b; /* the options and the plans */
	struct ps_module *mod;
	struct ps_token **toks;
	size_t ntoks;
	json_t *space; /* the last space record */
	int worst;
};

static void ctx_free(struct ctx *c)
{
	ps_clean_batch_free(&c->b);
	json_decref(c->space);
	ps_tokens_free(c->toks, c->ntoks);
	ps_module_close(c->mod);
}

/* The removals of a token, on a terminal. */
static struct ps_progress progress = { .kinds = "removed" };

/* Records go out as they are (the table layouts are in lib/record.c); the
 * space record is kept for the summary line. */
static int emit(void *ctx, const json_t *rec)
{
	struct ctx *c = ctx;
	const char *kind = ps_json_str(rec, "kind");

	if (kind && !strcmp(kind, "space")) {
		json_decref(c->space);
		c->space = json_deep_copy(rec);
	}
	if (progress.cli)
		return ps_progress_emit(&progress, rec);
	return ps_cli_emit(c->cli, rec);
}

static void info(void *ctx, const char *what)
{
	ps_cli_info(((struct ctx *)ctx)->cli, "%s", what);
}

static void warn(void *ctx, const char *what)
{
	ps_cli_warn(((struct ctx *)ctx)->cli, "%s", what);
}

static int ask(const char *question)
{
	FILE *tty = fopen("/dev/tty", "r+");
	char line[32];
	int yes;

	if (!tty)
		return 0;
	fputs(question, tty);
	fflush(tty);
	yes = fgets(line, sizeof(line), tty) &&
	      (line[0] == 'y' || line[0] == 'Y');
	fclose(tty);
	return yes;
}

/* Shows the plan on the terminal and asks. */
static int confirm(const struct ps_clean_plan *p, size_t objects, size_t valid)
{
	FILE *tty = fopen("/dev/tty", "w");
	char q[200];

	if (!tty)
		return 0;
	fprintf(tty, "Token '%s':\n", p->tok->label);
	for (size_t k = 0; k < p->nchosen; k++) {
		const struct ps_clean_item *it = &p->items[p->order[k]];
		const struct ps_invcert *ic =
		    it->cert >= 0 ? &p->inv.c[it->cert] : NULL;

		if (ic)
			fprintf(tty, "  certificate %s (%s, %s), %s%s\n",
				ic->cert.serial_hex,
				ps_cert_type_name(ic->cert.type),
				ic->cert.cn ? ic->cert.cn : "?",
				ps_clean_reason_name(it->reason),
				it->keys_stay || !it->nkeys
				    ? ""
				    : ", with its key pair");
		else
			fprintf(tty, "  key pair %s (%s)\n", it->id_hex,
				ps_clean_reason_name(it->reason));
	}
	if (valid)
		fprintf(tty,
			"WARNING: %zu of them valid certificate(s); removing "
			"is irreversible.\n",
			valid);
	fclose(tty);
	snprintf(q, sizeof(q), "Remove %zu objects from token %s? [y/N] ",
		 objects, p->tok->label);
	return ask(q);
}

/* One line for people per token, from its space record. */
static void summary(struct ctx *c, const struct ps_token *tok, int dry)
{
	const json_t *sp = c->space;
	long long n = json_integer_value(json_object_get(sp, "objects"));
	const json_t *fb = json_object_get(sp, "free_before");
	const json_t *fa = json_object_get(sp, "free_after");
	const json_t *ra = json_object_get(sp, "room_after");

	if (dry && n > 0)
		ps_cli_warn(c->cli,
			    "token '%s': dry run, %lld object(s) would be "
			    "removed; nothing was (add --yes to remove them)",
			    tok->label, n);
	else if (n > 0)
		ps_cli_warn(c->cli, "token '%s': %lld object(s) removed",
			    tok->label, n);
	else
		ps_cli_warn(c->cli, "token '%s': nothing removed", tok->label);
	if (json_is_integer(fb) && json_is_integer(fa) && n > 0)
		ps_cli_warn(c->cli,
			    "token '%s': free memory %lld -> %lld bytes%s, "
			    "room for %lld renewal(s)",
			    tok->label, (long long)json_integer_value(fb),
			    (long long)json_integer_value(fa),
			    dry ? " (estimated)" : "",
			    (long long)json_integer_value(ra));
	else if (json_is_integer(fb))
		ps_cli_warn(c->cli,
			    "token '%s': free memory %lld bytes, room for "
			    "%lld renewal(s)",
			    tok->label, (long long)json_integer_value(fb),
			    (long long)json_integer_value(ra));
}

static int run(struct ps_cli *cli, const struct args *a, struct ps_err *err)
{
	struct ctx c;
	int interactive = !a->yes && !a->dry_run && isatty(0) && isatty(1);
	int may_remove = (a->yes && !a->dry_run) || interactive;
	struct ps_clean_opts *o = &c.b.o;
	struct ps_batch_hooks h = {
		.emit = emit, .info = info, .warn = warn, .ctx = &c
	};
	int rc;

	memset(&c, 0, sizeof(c));
	c.cli = cli;
	o->select = a->select;
	o->force_valid = a->force_valid;
	o->keep_keys = a->keep_keys;
	o->for_room = a->for_room;
	o->cfg = &cli->cfg;
	o->now = time(NULL);
	rc = ps_clean_batch_prepare(&c.b, a->ids.v, a->ids.n, a->serials.v,
				    a->serials.n, a->jip.v, a->jip.n, err);
	if (!rc && !isatty(0))
		rc = ps_clean_batch_read(&c.b, stdin, &h, err);
	if (!rc)
		rc = ps_clean_batch_state(&c.b, cli->state_dir, &cli->cfg,
					  may_remove, &h, err);
	if (!rc)
		rc = ps_cli_tokens(cli, &c.mod, &c.toks, &c.ntoks, err);
	if (!rc)
		rc = ps_clean_batch_plan(&c.b, c.toks, c.ntoks, cli->pin,
					 may_remove, emit, &c, err);
	c.worst = ps_exit_worse(c.worst, c.b.worst);
	for (size_t t = 0; !rc && t < c.ntoks; t++) {
		struct ps_clean_plan *p = &c.b.plans[t];
		size_t valid, objects;
		int dry = !may_remove;

		if (!c.b.planned[t])
			continue;
		objects = ps_clean_planned(p, &valid);
		if (interactive && objects > 0 && !p->room_err.status)
			dry = !confirm(p, objects, valid);
		if (a->for_room >= 0 && !p->have_free)
			ps_cli_warn(cli,
				    "token '%s' does not report its free "
				    "memory: taking the oldest objects, three "
				    "per renewal",
				    p->tok->label);
		ps_progress_start(&progress, cli, dry ? 0 : objects);
		c.worst =
		    ps_exit_worse(c.worst, ps_clean_run(p, o, dry, emit, &c));
		ps_progress_end(&progress);
		summary(&c, p->tok, dry);
	}
	if (!rc)
		rc = c.worst;
	else if (!err->status)
		ps_err_set(err, rc, "no-memory", NULL, "out of memory");
	ctx_free(&c);
	return rc;
}

static int start(struct ps_cli *cli, void *args, char **operands, int n,
		 struct ps_err *err)
{
	const struct args *a = args;

	(void)operands;
	(void)n;
	if (a->yes && a->dry_run)
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--yes and --dry-run contradict each other");
	return run(cli, args, err);
}

int main(int argc, char **argv)
{
	struct ps_cli cli = {
		.prog = "ps-token-clean",
		.synopsis = "[--expired] [--superseded] [--orphans] [--id HEX] "
			    "[--serial SERIAL] [--for-room N] [--yes] "
			    "[OPTION]...",
		.summary = "Make room on a full token (the guide's error 621): "
			   "remove expired and superseded\ncertificates with "
			   "their keys, safely; a dry run unless --yes.",
	};
	struct args a = { .for_room = -1 };
	const struct ps_opt opts[] = {
		PS_OPT_BOOL("yes", &a.yes,
			    "remove (default: a dry run, or a question on a "
			    "terminal)"),
		PS_OPT_BOOL("dry-run", &a.dry_run,
			    "only say what would be removed; never ask"),
		PS_OPT_BIT("expired", &a.select, PS_CLEAN_EXPIRED,
			   "select expired certificates"),
		PS_OPT_BIT("superseded", &a.select, PS_CLEAN_SUPERSEDED,
			   "select certificates a newer one of the same holder "
			   "and type supersedes"),
		PS_OPT_BIT("orphans", &a.select, PS_CLEAN_ORPHANS,
			   "select key pairs with no certificate and no "
			   "pending request"),
		PS_OPT_LIST("id", &a.ids, "HEX",
			    "select the objects with this CKA_ID (repeatable)"),
		PS_OPT_LIST("serial", &a.serials, "SERIAL",
			    "select the certificate with this serial number "
			    "(repeatable)"),
		PS_OPT_BOOL("force-valid", &a.force_valid,
			    "valid certificates may go too (with --yes or a "
			    "confirmation)"),
		PS_OPT_BOOL("keep-keys", &a.keep_keys,
			    "remove certificates only, keep their key pairs"),
		PS_OPT_INT("for-room", &a.for_room, 1000, "N",
			   "remove only the oldest objects it takes to make "
			   "room for N renewals"),
		PS_OPT_LIST(
		    "jip-confirmed", &a.jip, "SERIAL",
		    "JIP has this (new commercial) certificate's serial "
		    "(repeatable)"),
		PS_OPT_END(),
	};

	return ps_cli_main(&cli, argc, argv, opts, &a, 0, start);
}

/* ps-token-clean: make room on a full token, safely (the guide's §7, error
 * 621). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <psrenew/clean.h>

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
	struct ps_clean_opts o;
	struct ps_state st;
	int have_st;
	json_t *jip;
	struct ps_module *mod;
	struct ps_token **toks;
	size_t ntoks;
	struct ps_clean_plan *plans;
	int *planned;  /* plans[t] was made */
	json_t *space; /* the last space record */
	int worst;
};

static void ctx_free(struct ctx *c)
{
	for (size_t t = 0; c->plans && t < c->ntoks; t++)
		if (c->planned[t])
			ps_clean_plan_free(&c->plans[t]);
	free(c->plans);
	free(c->planned);
	for (size_t i = 0; i < c->o.nids; i++)
		free(c->o.ids[i]);
	for (size_t i = 0; i < c->o.nserials; i++)
		free(c->o.serials[i]);
	free(c->o.ids);
	free(c->o.serials);
	free(c->o.hits);
	json_decref(c->jip);
	json_decref(c->space);
	ps_tokens_free(c->toks, c->ntoks);
	ps_module_close(c->mod);
	if (c->have_st)
		ps_state_close(&c->st);
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

static int emit_error(struct ctx *c, const struct ps_err *err,
		      const struct ps_token *tok)
{
	json_t *r = ps_record_error(err);

	if (r && tok) {
		ps_json_set_str(r, "token", tok->uri);
		ps_json_set_str(r, "token_label", tok->label);
	}
	if (r)
		emit(c, r);
	json_decref(r);
	c->worst = ps_exit_worse(c->worst, err->status);
	return err->status;
}

/* --id, --serial and --jip-confirmed, checked and normalised. */
static int prepare(struct ctx *c, const struct args *a, struct ps_err *err)
{
	struct ps_clean_opts *o = &c->o;

	o->ids = calloc(a->ids.n + 1, sizeof(*o->ids));
	o->serials = calloc(a->serials.n + 1, sizeof(*o->serials));
	o->hits = calloc(a->ids.n + a->serials.n + 1, 1);
	c->jip = json_object();
	if (!o->ids || !o->serials || !o->hits || !c->jip)
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "out of memory");
	for (size_t i = 0; i < a->ids.n; i++) {
		size_t len = strlen(a->ids.v[i]);

		if (len == 0 || len % 2 || len > 256 ||
		    strspn(a->ids.v[i], "0123456789abcdefABCDEF") != len)
			return ps_err_set(err, PS_EXIT_USAGE, "usage",
					  "see the ids with ps-status --json "
					  "or pkcs11-tool -O",
					  "--id wants a CKA_ID in hex, not "
					  "'%.40s'",
					  a->ids.v[i]);
		o->ids[o->nids] = strdup(a->ids.v[i]);
		if (!o->ids[o->nids++])
			return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
					  "out of memory");
	}
	for (size_t i = 0; i < a->serials.n; i++) {
		int rc = ps_serial_normalise(a->serials.v[i],
					     &o->serials[o->nserials], err);

		if (rc)
			return rc;
		o->nserials++;
	}
	for (size_t i = 0; i < a->jip.n; i++) {
		char *s;
		int rc = ps_serial_normalise(a->jip.v[i], &s, err);

		if (rc)
			return rc;
		json_object_set_new(c->jip, s, json_string("option"));
		free(s);
	}
	return 0;
}

/* A jip record of stdin confirms a serial; other records are not used. */
static int take_jip(struct ps_in_loop *l, json_t *rec)
{
	struct ctx *c = l->ctx;
	const char *kind = ps_json_str(rec, "kind");
	struct ps_err e;
	char *serial;

	ps_err_clear(&e);
	if (strcmp(kind, "jip") != 0) {
		ps_cli_info(c->cli, "input: a '%s' record is not used", kind);
	} else if (ps_jip_record_confirms(rec, &serial, &e) == 0) {
		json_object_set_new(c->jip, serial, json_string("stdin"));
		free(serial);
	} else {
		ps_cli_info(c->cli, "input: %s", e.msg);
	}
	return 1;
}

/* jip records on stdin confirm serials; error records are passed on. */
static int read_stdin(struct ctx *c, struct ps_err *err)
{
	struct ps_in_loop loop = { take_jip, c, emit, c, 0 };
	int rc = ps_in_each(stdin, &loop, err);

	c->worst = ps_exit_worse(c->worst, loop.worst);
	return rc;
}

/* The state store: created when something may be removed (the copies go
 * there); a dry run only reads it, and a missing one is empty. */
static int open_state(struct ctx *c, int create, struct ps_err *err)
{
	struct ps_err e;
	int rc;

	ps_err_clear(&e);
	rc = ps_state_open(c->cli->state_dir, &c->cli->cfg, create, &c->st, &e);
	if (!rc) {
		c->have_st = 1;
		c->o.st = &c->st;
		return 0;
	}
	if (create) {
		*err = e;
		return rc;
	}
	/* Missing: nothing pending, nothing confirmed. ("no-state-dir" once
	 * ps_state_open tells; until then its errno.) */
	if (errno != ENOENT && strcmp(e.code, "no-state-dir") != 0)
		ps_cli_warn(c->cli,
			    "%s; pending requests and JIP confirmations "
			    "are not known in this dry run",
			    e.msg);
	return 0;
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

/* Opens, logs in and plans every token; nothing is changed yet. */
static int plan_all(struct ctx *c, int rw)
{
	c->plans = calloc(c->ntoks, sizeof(*c->plans));
	c->planned = calloc(c->ntoks, sizeof(*c->planned));
	if (!c->plans || !c->planned)
		return PS_EXIT_FAIL;
	for (size_t t = 0; t < c->ntoks; t++) {
		struct ps_token *tok = c->toks[t];
		struct ps_err e;
		int rc;

		ps_err_clear(&e);
		rc = ps_token_open(tok, rw, &e);
		if (!rc && (ps_token_pin_source(tok, c->cli->pin) ||
			    (tok->info.flags & CKF_LOGIN_REQUIRED)))
			rc = ps_token_login(tok, c->cli->pin, &e);
		if (!rc)
			rc = ps_clean_plan_make(tok, &c->o, &c->plans[t], &e);
		if (rc)
			emit_error(c, &e, tok);
		else
			c->planned[t] = 1;
	}
	return 0;
}

static int missed(struct ctx *c, struct ps_err *err)
{
	for (size_t i = 0; i < c->o.nids + c->o.nserials; i++) {
		int id = i < c->o.nids;

		if (c->o.hits[i])
			continue;
		return ps_err_set(err, PS_EXIT_USAGE, "no-such-object",
				  "see what is on the token with ps-status "
				  "--pin ... (or pkcs11-tool -O --login)",
				  "no %s on the selected token(s) has %s %s; "
				  "nothing was removed",
				  id ? "object" : "certificate",
				  id ? "CKA_ID" : "serial number",
				  id ? c->o.ids[i]
				     : c->o.serials[i - c->o.nids]);
	}
	return 0;
}

static int run(struct ps_cli *cli, const struct args *a, struct ps_err *err)
{
	struct ctx c;
	int interactive = !a->yes && !a->dry_run && isatty(0) && isatty(1);
	int may_remove = (a->yes && !a->dry_run) || interactive;
	int missing_ok = 0, rc;

	memset(&c, 0, sizeof(c));
	c.cli = cli;
	c.o.select = a->select;
	c.o.force_valid = a->force_valid;
	c.o.keep_keys = a->keep_keys;
	c.o.for_room = a->for_room;
	c.o.cfg = &cli->cfg;
	c.o.now = time(NULL);
	rc = prepare(&c, a, err);
	c.o.jip = c.jip;
	if (!rc && !isatty(0))
		rc = read_stdin(&c, err);
	if (!rc)
		rc = open_state(&c, may_remove, err);
	if (!rc)
		rc = ps_cli_tokens(cli, &c.mod, &c.toks, &c.ntoks, err);
	if (!rc)
		rc = plan_all(&c, may_remove);
	/* An id on a token that could not be read is not "missing". */
	for (size_t t = 0; !rc && t < c.ntoks; t++)
		if (!c.planned[t])
			missing_ok = 1;
	if (!rc && !missing_ok)
		rc = missed(&c, err);
	for (size_t t = 0; !rc && t < c.ntoks; t++) {
		struct ps_clean_plan *p = &c.plans[t];
		size_t valid, objects;
		int dry = !may_remove;

		if (!c.planned[t])
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
		c.worst = ps_exit_worse(c.worst,
					ps_clean_run(p, &c.o, dry, emit, &c));
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

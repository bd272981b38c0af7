/* ps-fetch: pick up issued certificates and install them (the guide's §3
 * and §4, "Stažení certifikátu", "Instalovat certifikát"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <psrenew/fetch.h>
#include <psrenew/fetch_wait.h>
#include <psrenew/http.h>
#include <psrenew/mailbox.h>

#include "common/cli.h"
#include "common/progress.h"

struct args {
	int pending, dry_run, now, lenient, accept_type;
	long wait; /* -1: no waiting */
	const char *cert, *ca_bundle;
	const char *maildir, *imap, *imap_pass; /* mailbox pick-up */
};

/* Reads all of FILE or stdin (at most 1 MiB). */
static int slurp(const char *path, unsigned char **buf, size_t *len,
		 struct ps_err *err)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	size_t cap = 1 << 20;

	*buf = NULL;
	if (!f)
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "cannot open %s", path);
	*buf = malloc(cap + 1);
	*len = *buf ? fread(*buf, 1, cap + 1, f) : 0;
	if (f != stdin)
		fclose(f);
	if (!*buf || *len > cap) {
		free(*buf);
		*buf = NULL;
		return ps_err_set(err, PS_EXIT_FAIL, "bad-certificate", NULL,
				  "%s is empty or larger than 1 MiB", path);
	}
	return 0;
}

/* --cert URL: an http(s) download (TLS verified, --ca-bundle trusted). */
static int download(const char *url, const char *ca_bundle, unsigned char **buf,
		    size_t *len, struct ps_err *err)
{
	struct ps_http_opts o = { .ca_bundle = ca_bundle,
				  .connect_timeout = 20,
				  .timeout = 120 };

	return ps_http_get(&o, url, 1 << 20, buf, len, err);
}

static int is_url(const char *s)
{
	return !strncmp(s, "http://", 7) || !strncmp(s, "https://", 8);
}

/* A request record of stdin: its id is worked on. */
static int take_request(struct ps_in_loop *l, json_t *rec)
{
	const char *id = ps_json_str(rec, "request_id");

	if (strcmp(ps_json_str(rec, "kind"), "request") || !id)
		return 0;
	return json_array_append_new(l->ctx, json_string(id)) == 0;
}

/* The request ids to work on: operands, stdin records, or --pending;
 * *upstream: the worst status of the error records on stdin. */
static int targets(struct ps_cli *cli, struct ps_fetch *f, const struct args *a,
		   char **operands, int n, json_t *ids, int *upstream,
		   struct ps_err *err)
{
	if (a->pending) {
		char **v;
		size_t nv;
		int rc = ps_fetch_unfinished(f, &v, &nv, err);

		for (size_t i = 0; !rc && i < nv; i++)
			json_array_append_new(ids, json_string(v[i]));
		ps_state_list_free(v, nv);
		return rc;
	}
	if (n > 0) {
		for (int i = 0; i < n; i++)
			json_array_append_new(ids, json_string(operands[i]));
		return 0;
	}
	if (!isatty(0)) {
		struct ps_in_loop loop = { take_request, ids, ps_cli_emit, cli,
					   0 };
		int rc;

		ps_fetch_preload(f); /* while the records are on their way */
		rc = ps_in_each(stdin, &loop, err);

		*upstream = loop.worst;
		return rc;
	}
	return ps_err_set(err, PS_EXIT_USAGE, "usage",
			  "ps-fetch --pending (cron), ps-fetch REQUEST-ID, "
			  "ps-renew ... | ps-fetch, or ps-fetch --cert FILE",
			  "say which requests to fetch");
}

/* The requests, polled (again with --wait) and installed. */
static int fetch_all(struct ps_cli *cli, struct ps_fetch *f,
		     const struct args *a, json_t *ids)
{
	struct ps_progress pg = { 0 };
	struct ps_batch_hooks h = ps_progress_hooks(&pg, cli);

	return ps_fetch_all(f, ids, a->wait,
			    a->now || (!a->pending && a->wait < 0), &h);
}

/* --maildir DIR or --imap URL: the certificates that came by mail. */
static int from_mailbox(struct ps_cli *cli, struct ps_fetch *f,
			const struct args *a, struct ps_err *err)
{
	struct ps_mailbox_opts o = { a->maildir, a->imap, a->imap_pass,
				     a->ca_bundle };
	struct ps_mailbox_stats s = { 0 };
	int rc = ps_mailbox_fetch(f, &o, ps_cli_emit, cli, &s, err);

	if (!err->status)
		ps_cli_info(cli,
			    "%zu unread message(s): %zu %s as read, %zu "
			    "left as they were; %zu certificate(s) installed",
			    s.messages, s.handled,
			    a->dry_run ? "would be marked" : "marked", s.left,
			    s.installed);
	return rc;
}

static int run(struct ps_cli *cli, void *args, char **operands, int n,
	       struct ps_err *err)
{
	const struct args *a = args;
	struct ps_fetch f;
	struct ps_state st;
	json_t *ids;
	int rc;

	if (!!a->cert + !!a->maildir + !!a->imap + a->pending > 1 ||
	    (a->imap_pass && !a->imap))
		return ps_err_set(err, PS_EXIT_USAGE, "usage", NULL,
				  "--cert, --maildir, --imap and --pending "
				  "exclude each other; --imap-pass goes with "
				  "--imap");
	ids = json_array();
	ps_fetch_init(&f);
	f.cfg = &cli->cfg;
	f.module = cli->module;
	f.pin = cli->pin;
	f.sel = cli->token ? &cli->token_uri : NULL;
	f.dry_run = a->dry_run;
	f.inst.ca_bundle = a->ca_bundle;
	f.ca_bundle = a->ca_bundle;
	f.inst.lenient_subject = a->lenient;
	f.inst.accept_type = a->accept_type;
	rc = ps_state_open(cli->state_dir, &cli->cfg,
			   a->dry_run ? PS_STATE_READ_ONLY : 1, &st, err);
	if (rc) {
		json_decref(ids);
		ps_fetch_free(&f);
		return rc;
	}
	f.st = &st;
	if (a->maildir || a->imap) {
		rc = from_mailbox(cli, &f, a, err);
	} else if (a->cert) {
		unsigned char *buf;
		size_t len = 0;

		rc = is_url(a->cert)
			 ? download(a->cert, a->ca_bundle, &buf, &len, err)
			 : slurp(a->cert, &buf, &len, err);
		if (!rc) {
			rc = ps_fetch_install_certs(&f, buf, len, ps_cli_emit,
						    cli);
			free(buf);
		}
	} else {
		int upstream = 0;

		rc = targets(cli, &f, a, operands, n, ids, &upstream, err);
		if (!rc)
			rc =
			    ps_exit_worse(fetch_all(cli, &f, a, ids), upstream);
	}
	json_decref(ids);
	if (f.passed_on)
		ps_cli_warn(cli,
			    "%zu request(s) of other tokens passed on as they "
			    "are, not worked on (--token selects '%s')",
			    f.passed_on, cli->token);
	if (a->pending && f.left_alone)
		ps_cli_info(cli,
			    "%zu unfinished request(s) of other tokens left "
			    "alone (--token selects '%s')",
			    f.left_alone, cli->token);
	/* The unreadable request files met on the way: each reported, and
	 * the run fails (the other requests were done). */
	for (size_t k = 0; k < json_array_size(f.damaged); k++) {
		ps_cli_emit(cli, json_array_get(f.damaged, k));
		if (!err->status)
			rc = ps_exit_worse(rc, PS_EXIT_FAIL);
	}
	if (f.leftovers_removed)
		ps_cli_warn(cli,
			    "removed %zu half-written object(s) that an "
			    "interrupted install had left on the token",
			    f.leftovers_removed);
	ps_fetch_free(&f);
	ps_state_close(&st);
	return rc;
}

int main(int argc, char **argv)
{
	struct ps_cli cli = {
		.prog = "ps-fetch",
		.synopsis =
		    "[--pending | REQUEST-ID... | --cert FILE | --maildir DIR "
		    "| --imap URL] [--wait[=S]] "
		    "[OPTION]...",
		.summary =
		    "Poll the CA for requested certificates, verify what it "
		    "issued and install it\non the token beside its key.",
	};
	struct args a = { .wait = -1 };
	const struct ps_opt opts[] = {
		PS_OPT_BOOL("pending", &a.pending,
			    "every unfinished request in the state store (for "
			    "cron)"),
		PS_OPT_INT_OPTARG("wait", &a.wait, 30L * 86400, 3600, "SECONDS",
				  "keep polling until issued, refused or "
				  "SECONDS pass (3600)"),
		PS_OPT_STRING("cert", &a.cert, "FILE",
			      "install a certificate that came by mail or web "
			      "(FILE, - or URL)"),
		PS_OPT_STRING("maildir", &a.maildir, "DIR",
			      "install the certificates the unread mail of "
			      "this Maildir brings"),
		PS_OPT_STRING("imap", &a.imap, "URL",
			      "the same from an IMAP folder: "
			      "imaps://USER@HOST[:PORT]/INBOX"),
		PS_OPT_STRING("imap-pass", &a.imap_pass, "SOURCE",
			      "the IMAP password's source: prompt, env:VAR, "
			      "file:PATH, fd:N"),
		PS_OPT_STRING("ca-bundle", &a.ca_bundle, "FILE",
			      "verify the issued certificate's chain against "
			      "these CAs"),
		PS_OPT_BOOL("lenient-subject", &a.lenient,
			    "accept a subject that differs only in attribute "
			    "order or encoding"),
		PS_OPT_BOOL("accept-type", &a.accept_type,
			    "install a certificate of another type than the "
			    "request's"),
		PS_OPT_BOOL("now", &a.now,
			    "poll even when the CA asked to wait longer"),
		PS_OPT_BOOL("dry-run", &a.dry_run,
			    "show what is due; change nothing"),
		PS_OPT_END(),
	};
	int rc = ps_cli_main(&cli, argc, argv, opts, &a, -1, run);

	/* A signal stopped a CA helper: 128 + its number, as a shell says. */
	return ps_ca_interrupted() ? 128 + ps_ca_interrupted() : rc;
}

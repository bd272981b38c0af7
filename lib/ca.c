/* psrenew: CA channel selection: the configuration of a channel, its
 * driver, and what every channel offers through it. */
#include <psrenew/ca.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <psrenew/ca_driver.h>

/* The drivers, each defined in its own file (lib/ca_*.c) and named only
 * here. */
extern const struct ps_ca_driver ps_ca_helper_driver;
extern const struct ps_ca_driver ps_ca_est_driver;
extern const struct ps_ca_driver ps_ca_mail_driver;
extern const struct ps_ca_driver ps_ca_cmp_driver;

static const struct ps_ca_driver *const drivers[] = {
	&ps_ca_helper_driver,
	&ps_ca_est_driver,
	&ps_ca_mail_driver,
	&ps_ca_cmp_driver,
};

static const char ca_hint[] =
    "--ca takes helper:PATH [ARGS] (a certmonger CA helper), "
    "est://HOST[:PORT][/LABEL] (RFC 7030), cmp://HOST[:PORT]/PATH "
    "(RFC 4210 key update), https://... with --ca-type cmp|est, "
    "mail:smtp://HOST[:PORT] or "
    "mail:- (PostSignum's e-mail route), or the name of a [ca.NAME] "
    "section in psrenew.conf";

const char *ps_ca_status_name(int s)
{
	static const char *const names[] = { "issued",	     "pending",
					     "rejected",     "unreachable",
					     "unconfigured", "failed" };

	return s >= 0 && s <= PS_CA_FAILED ? names[s] : "failed";
}

/* What a spec and the configuration say about a channel. */
struct ca_conf {
	char *chan;	       /* the channel spec (malloc'ed) */
	char section[80];      /* "ca.NAME" when named in the configuration */
	long timeout;	       /* seconds */
	const char *ca_bundle; /* the section's ca-bundle, or NULL */
};

static int nomem(struct ps_err *err)
{
	return ps_err_nomem(err);
}

static int is_web(const char *s)
{
	return strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0;
}

/* The channel of spec: the spec itself, or the channel of its [ca.NAME]
 * section (an https:// one typed by the section's "type"), with the
 * section's time-out and ca-bundle. */
static int conf_resolve(const char *spec, const struct ps_config *cfg,
			struct ca_conf *c, struct ps_err *err)
{
	const char *chan = spec, *v;

	memset(c, 0, sizeof(*c));
	c->timeout = 300;
	if (!spec || !*spec)
		return ps_err_set(err, PS_EXIT_USAGE, "no-ca", ca_hint,
				  "no CA channel: give --ca");
	if (strchr(spec, ':')) {
		c->chan = strdup(spec);
		return c->chan ? 0 : nomem(err);
	}
	snprintf(c->section, sizeof(c->section), "ca.%s", spec);
	chan = cfg ? ps_config_get(cfg, c->section, "channel") : NULL;
	if (!chan)
		return ps_err_set(err, PS_EXIT_USAGE, "no-ca", ca_hint,
				  "no CA channel named '%.40s' (no "
				  "[%s] with a channel in %s)",
				  spec, c->section,
				  cfg && cfg->path ? cfg->path
						   : "the configuration");
	v = ps_config_get(cfg, c->section, "timeout");
	if (v && strtol(v, NULL, 10) > 0)
		c->timeout = strtol(v, NULL, 10);
	c->ca_bundle = ps_config_get(cfg, c->section, "ca-bundle");
	/* [ca.NAME] channel = https://..., type = cmp|est */
	if (is_web(chan) && !ps_config_get(cfg, c->section, "type"))
		return ps_err_set(
		    err, PS_EXIT_USAGE, "usage",
		    "add type = cmp or type = est to the section",
		    "%s, line %d, [%s] channel: %.80s does not say "
		    "which protocol to speak",
		    cfg->path, ps_config_line(cfg, c->section, "channel"),
		    c->section, chan);
	if (is_web(chan) &&
	    ps_ca_spec_typed(chan, ps_config_get(cfg, c->section, "type"),
			     &c->chan, err))
		return ps_config_blame(cfg, c->section, "channel", err);
	if (is_web(chan))
		return 0;
	c->chan = strdup(chan);
	return c->chan ? 0 : nomem(err);
}

/* The driver of a channel spec (by its prefix), or NULL. */
static const struct ps_ca_driver *driver_find(const char *chan)
{
	for (size_t i = 0; i < sizeof(drivers) / sizeof(*drivers); i++)
		if (!strncmp(chan, drivers[i]->prefix,
			     strlen(drivers[i]->prefix)))
			return drivers[i];
	return NULL;
}

int ps_ca_open(const char *spec, const struct ps_config *cfg,
	       struct ps_ca **out, struct ps_err *err)
{
	const struct ps_ca_driver *drv;
	struct ps_ca *ca;
	struct ca_conf c;
	int rc;

	*out = NULL;
	rc = conf_resolve(spec, cfg, &c, err);
	drv = rc ? NULL : driver_find(c.chan);
	if (!rc && !drv) {
		ps_err_set(err, PS_EXIT_USAGE, "no-ca", ca_hint,
			   "unknown CA channel '%.60s'", c.chan);
		rc = ps_config_blame(cfg, c.section, "channel", err);
	}
	ca = rc ? NULL : calloc(1, sizeof(*ca));
	if (!rc && ca)
		ca->name = strdup(spec);
	if (!rc && (!ca || !ca->name))
		rc = nomem(err);
	if (rc) {
		ps_ca_close(ca);
		free(c.chan);
		return rc;
	}
	ca->channel = c.chan;
	ca->cfg = cfg;
	memcpy(ca->section, c.section, sizeof(ca->section));
	ca->timeout = c.timeout;
	ca->ca_bundle = c.ca_bundle;
	rc = drv->open(ca, c.chan + strlen(drv->prefix), err);
	if (rc) {
		ps_ca_close(ca);
		return rc;
	}
	ca->drv = drv;
	*out = ca;
	return 0;
}

void ps_ca_idle(struct ps_ca *ca)
{
	if (ca && ca->drv && ca->drv->idle)
		ca->drv->idle(ca);
}

void ps_ca_close(struct ps_ca *ca)
{
	if (!ca)
		return;
	ps_ca_idle(ca);
	if (ca->drv && ca->drv->close)
		ca->drv->close(ca);
	free(ca->name);
	free(ca->channel);
	free(ca);
}

void ps_ca_set_bundle(struct ps_ca *ca, const char *file)
{
	if (file)
		ca->ca_bundle = file;
}

int ps_ca_set_sign_with(struct ps_ca *ca, const char *sel, struct ps_err *err)
{
	if (!sel)
		return 0;
	if (strcmp(ca->drv->prefix, "mail:") != 0)
		return ps_err_set(err, PS_EXIT_USAGE, "usage",
				  "drop --sign-with, or use a mail: channel",
				  "--sign-with chooses who signs the renewal "
				  "e-mail; the channel %.200s sends none",
				  ca->channel);
	ca->sign_with = sel;
	return 0;
}

int ps_ca_needs_token(const struct ps_ca *ca, int poll)
{
	return poll ? ca->drv->poll_needs_token : ca->drv->needs_token;
}

const char *ps_ca_channel(const struct ps_ca *ca)
{
	return ca->channel;
}

const char *ps_ca_name(const struct ps_ca *ca)
{
	return ca->name;
}

static void reply_init(struct ps_ca_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->delay = -1;
	r->status = PS_CA_FAILED;
}

int ps_ca_submit(struct ps_ca *ca, const struct ps_ca_request *req,
		 struct ps_ca_reply *reply, struct ps_err *err)
{
	reply_init(reply);
	return ca->drv->submit(ca, req, reply, err);
}

int ps_ca_poll(struct ps_ca *ca, const struct ps_ca_request *req,
	       struct ps_ca_reply *reply, struct ps_err *err)
{
	reply_init(reply);
	return ca->drv->poll(ca, req, reply, err);
}

void ps_ca_poll_many(struct ps_ca *ca, const struct ps_ca_request *reqs,
		     size_t n, int lanes, struct ps_ca_reply *replies, int *rcs,
		     struct ps_err *errs, void (*answered)(size_t i, void *ctx),
		     void *ctx)
{
	for (size_t i = 0; i < n; i++) {
		reply_init(&replies[i]);
		ps_err_clear(&errs[i]);
		rcs[i] = 0;
	}
	if (ca->drv->poll_many) {
		ca->drv->poll_many(ca, reqs, n, lanes, replies, rcs, errs,
				   answered, ctx);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		rcs[i] = ps_ca_poll(ca, &reqs[i], &replies[i], &errs[i]);
		if (answered)
			answered(i, ctx);
	}
}

int ps_ca_polls_many(const struct ps_ca *ca)
{
	return ca->drv->poll_many != NULL;
}

int ps_ca_uses_stdout(const struct ps_ca *ca)
{
	return ca->uses_stdout;
}

void ps_ca_reply_free(struct ps_ca_reply *r)
{
	free(r->certs_pem);
	free(r->cookie);
	free(r->message);
	free(r->fail_info);
	free(r->rejected_cert);
	memset(r, 0, sizeof(*r));
}

int ps_ca_spec_typed(const char *spec, const char *type, char **out,
		     struct ps_err *err)
{
	int web;

	*out = NULL;
	if (!spec)
		return 0;
	web = strncmp(spec, "https://", 8) == 0 ||
	      strncmp(spec, "http://", 7) == 0;
	if (type && strcmp(type, "cmp") != 0 && strcmp(type, "est") != 0)
		return ps_err_set(err, PS_EXIT_USAGE, "usage",
				  "--ca-type takes cmp or est",
				  "unknown --ca-type '%.40s'", type);
	if (type && !web)
		return ps_err_set(err, PS_EXIT_USAGE, "usage",
				  "--ca-type goes with an https:// URL; "
				  "cmp:// and est:// name their protocol",
				  "--ca-type %s needs --ca https://...", type);
	if (web && !type)
		return ps_err_set(err, PS_EXIT_USAGE, "usage",
				  "add --ca-type cmp or --ca-type est",
				  "--ca %.80s does not say which protocol to "
				  "speak",
				  spec);
	if (!web)
		*out = strdup(spec);
	else if (!strcmp(type, "cmp")) {
		if (asprintf(out, "cmp:%s", spec) < 0)
			*out = NULL;
	} else {
		/* https://HOST[:PORT][/.well-known/est][/LABEL] */
		const char *h = strstr(spec, "//") + 2, *sl = strchr(h, '/');
		const char *wk = "/.well-known/est";
		const char *label = NULL;

		if (strncmp(spec, "https://", 8) != 0)
			return ps_err_set(err, PS_EXIT_USAGE, "usage",
					  "EST runs over TLS: use https://",
					  "EST needs https://, not %.80s",
					  spec);
		if (sl && strncmp(sl, wk, strlen(wk)) == 0)
			label = sl + strlen(wk);
		else if (sl && sl[1])
			return ps_err_set(
			    err, PS_EXIT_USAGE, "usage",
			    "write it as https://HOST[:PORT][/.well-known/"
			    "est[/LABEL]]",
			    "an EST URL's path is /.well-known/est[/LABEL]: "
			    "%.80s",
			    spec);
		if (label && *label == '/')
			label++;
		if (asprintf(out, "est://%.*s%s%s",
			     (int)(sl ? (size_t)(sl - h) : strlen(h)), h,
			     label && *label ? "/" : "",
			     label && *label ? label : "") < 0)
			*out = NULL;
	}
	if (!*out)
		return ps_err_nomem(err);
	return 0;
}

int ps_ca_cacerts(struct ps_ca *ca, char **pem, struct ps_err *err)
{
	*pem = NULL;
	if (!ca->drv->cacerts)
		return ps_err_set(err, PS_EXIT_USAGE, "usage",
				  "only est:// channels publish CA "
				  "certificates",
				  "the CA channel %s has no CA certificates to "
				  "fetch",
				  ca->channel);
	return ca->drv->cacerts(ca, pem, err);
}

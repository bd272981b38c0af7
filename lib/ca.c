/* psrenew: CA channel selection. */
#include <psrenew/ca.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int ps_ca_open(const char *spec, const struct ps_config *cfg,
	       struct ps_ca **out, struct ps_err *err)
{
	struct ps_ca *ca;
	const char *chan = spec;
	char section[80] = "";
	const char *v;
	int rc;

	*out = NULL;
	if (!spec || !*spec)
		return ps_err_set(err, PS_EXIT_USAGE, "no-ca", ca_hint,
				  "no CA channel: give --ca");
	if (!strchr(spec, ':')) {
		snprintf(section, sizeof(section), "ca.%s", spec);
		chan = cfg ? ps_config_get(cfg, section, "channel") : NULL;
		if (!chan)
			return ps_err_set(
			    err, PS_EXIT_USAGE, "no-ca", ca_hint,
			    "no CA channel named '%.40s' (no "
			    "[%s] with a channel in %s)",
			    spec, section,
			    cfg && cfg->path ? cfg->path : "the configuration");
	}
	if (section[0] && (strncmp(chan, "https://", 8) == 0 ||
			   strncmp(chan, "http://", 7) == 0)) {
		/* [ca.NAME] channel = https://..., type = cmp|est */
		char *typed = NULL;

		rc = ps_ca_spec_typed(chan, ps_config_get(cfg, section, "type"),
				      &typed, err);
		if (rc)
			return rc;
		rc = ps_ca_open(typed, cfg, out, err);
		if (!rc) {
			/* Named as configured, with the section's settings. */
			free((*out)->name);
			(*out)->name = strdup(spec);
			snprintf((*out)->section, sizeof((*out)->section), "%s",
				 section);
			v = ps_config_get(cfg, section, "timeout");
			if (v && strtol(v, NULL, 10) > 0)
				(*out)->timeout = strtol(v, NULL, 10);
			v = ps_config_get(cfg, section, "ca-bundle");
			if (v)
				(*out)->ca_bundle = v;
		}
		free(typed);
		return rc;
	}
	for (size_t i = 0; i < sizeof(drivers) / sizeof(*drivers); i++) {
		size_t n = strlen(drivers[i]->prefix);

		if (strncmp(chan, drivers[i]->prefix, n) != 0)
			continue;
		ca = calloc(1, sizeof(*ca));
		if (!ca || !(ca->name = strdup(spec)) ||
		    !(ca->channel = strdup(chan))) {
			ps_ca_close(ca);
			return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
					  "out of memory");
		}
		ca->drv = drivers[i];
		ca->cfg = cfg;
		snprintf(ca->section, sizeof(ca->section), "%s", section);
		ca->timeout = 300;
		v = section[0] && cfg ? ps_config_get(cfg, section, "timeout")
				      : NULL;
		if (v)
			ca->timeout =
			    strtol(v, NULL, 10) > 0 ? strtol(v, NULL, 10) : 300;
		v = section[0] && cfg ? ps_config_get(cfg, section, "ca-bundle")
				      : NULL;
		ca->ca_bundle = v;
		rc = ca->drv->open(ca, chan + n, err);
		if (rc) {
			ca->drv = NULL;
			ps_ca_close(ca);
			return rc;
		}
		*out = ca;
		return 0;
	}
	return ps_err_set(err, PS_EXIT_USAGE, "no-ca", ca_hint,
			  "unknown CA channel '%.60s'", chan);
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
		return ps_err_set(err, PS_EXIT_FAIL, "no-memory", NULL,
				  "out of memory");
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

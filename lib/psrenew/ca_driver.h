/* psrenew: what a CA channel's driver implements (lib/ca_*.c), behind ca.h. */
#ifndef PSRENEW_CA_DRIVER_H
#define PSRENEW_CA_DRIVER_H

#include <psrenew/ca.h>

/*
 * One driver per file, private to it: lib/ca.c reaches them through its
 * table of drivers (by the channel's prefix) and nobody else names one.
 */
struct ps_ca_driver {
	const char *prefix;   /* "helper:" */
	int needs_token;      /* submit authenticates with the current key */
	int poll_needs_token; /* so does a poll */
	int (*open)(struct ps_ca *ca, const char *rest, struct ps_err *err);
	int (*submit)(struct ps_ca *ca, const struct ps_ca_request *req,
		      struct ps_ca_reply *reply, struct ps_err *err);
	int (*poll)(struct ps_ca *ca, const struct ps_ca_request *req,
		    struct ps_ca_reply *reply, struct ps_err *err);
	/* Optional: many polls at once, as ps_ca_poll_many says (replies,
	 * rcs and errs come initialised; answered may be called from the
	 * driver's own threads, one call at a time). NULL: ca.c polls one
	 * after the other. */
	void (*poll_many)(struct ps_ca *ca, const struct ps_ca_request *reqs,
			  size_t n, int lanes, struct ps_ca_reply *replies,
			  int *rcs, struct ps_err *errs,
			  void (*answered)(size_t i, void *ctx), void *ctx);
	void (*close)(struct ps_ca *ca);
	/* Drops what holds token keys (before the tokens close). */
	void (*idle)(struct ps_ca *ca);
	/* The CA's certificates as the server publishes them (EST /cacerts),
	 * PEM; NULL when the protocol has no such thing. */
	int (*cacerts)(struct ps_ca *ca, char **pem, struct ps_err *err);
};

/* An open channel: what ca.c resolved from the spec and the
 * configuration, and the driver's own state (priv). */
struct ps_ca {
	const struct ps_ca_driver *drv;
	char *name, *channel;
	const struct ps_config *cfg;
	char section[80];      /* "ca.NAME" when named in the configuration */
	long timeout;	       /* seconds */
	const char *ca_bundle; /* extra trust for TLS (and CA responses) */
	int uses_stdout;       /* mail:- writes the message on stdout */
	const char *sign_with; /* mail: the signer (--sign-with), or NULL */
	void *priv;
};

#endif

/* psrenew: the JIP/KAAS and CAAIS editing web service ("editační webové
 * služby", namespace http://userportal.novell.com/ws/WS-LA-1.0 and -1.1):
 * plain XML over HTTPS POST, one endpoint per subject. Internal: the
 * second backend of ps-jip-setserial, next to the web form of jip.h.
 *
 * Facts from the CAAIS integration documentation (api-idm/editacni-ws:
 * 2-komunikace-ws.rst, 3-metody-edit-1.rst, 7-chybove-zpravy.rst and the
 * schemas ws-10.xsd, ws-11-1.xsd) and the JIP/KAAS connector of BCV
 * solutions (Connection.java, Messages.properties). */
#ifndef PSRENEW_JIPWS_H
#define PSRENEW_JIPWS_H

#include <stddef.h>

#include <psrenew/err.h>
#include <psrenew/http.h>

struct ps_jipws;

struct ps_jipws_opts {
	const char *url;  /* the subject's endpoint: JIP's end with '/' */
	int version;	  /* 10 (HTTP Basic) or 11 (TLS client certificate) */
	int caais;	  /* 1 CAAIS, 0 JIP, -1: CAAIS when url has no
			   * trailing '/' (2-komunikace-ws.rst) */
	const char *user; /* WS 1.0: the local administrator ... */
	const char *password;	  /* ... and the password (copied, wiped) */
	int serial_dec;		  /* write new numbers in decimal, not hex */
	int attempts;		  /* read-modify-write rounds (default 3) */
	struct ps_http_opts http; /* trust; 1.1: client_cert, client_key */
};

/* One clientCertificate item as the service has it. */
struct ps_jipws_cert {
	char *type;   /* "V" commercial, "Q" qualified */
	char *number; /* decimal or hexadecimal */
	char *issuer; /* a DN string, "CN=..., O=..., C=CZ" */
};

enum ps_jipws_result {
	PS_JIPWS_SET,	  /* added, and read back */
	PS_JIPWS_ALREADY, /* an equal entry was there */
	PS_JIPWS_SKIPPED  /* a qualified certificate for CAAIS */
};

/* One connection (kept alive) for every call of the handle. Exit 2 for a
 * missing URL, user or password, a bad version. */
int ps_jipws_open(const struct ps_jipws_opts *o, struct ps_jipws **out,
		  struct ps_err *err);
void ps_jipws_close(struct ps_jipws *w);
int ps_jipws_is_caais(const struct ps_jipws *w);

/* GetUser: the user's certificates and casPosledniZmeny (may be NULL). */
int ps_jipws_get_user(struct ps_jipws *w, const char *login,
		      struct ps_jipws_cert **certs, size_t *n, char **changed,
		      struct ps_err *err);
void ps_jipws_certs_free(struct ps_jipws_cert *c, size_t n);

/* A certificate to add, and the one it superseded (drop_hex NULL: none). */
struct ps_jipws_item {
	const char *type;	 /* "qualified" or "commercial" */
	const char *issuer;	 /* the issuer's DN */
	const char *serial_hex;	 /* upper-case hex */
	const char *drop_hex;	 /* the superseded certificate's serial ... */
	const char *drop_issuer; /* ... and issuer: its entries go */
};

/*
 * Adds a certificate to login's clientCertificate list: GetUser, unless an
 * equal entry is there (numbers compared as integers, issuers as DNs) a
 * second GetUser that must show the same casPosledniZmeny (else the round
 * starts again, at most attempts times: exit 4), UpdateUser with the
 * whole list, GetUser that must show the entry (else exit 1,
 * "jip-ws-not-visible"). With drop_hex, the same UpdateUser leaves out the
 * entries of the superseded certificate (same type), and only one that
 * also carries the new entry: *removed is how many went (an equal new
 * entry already there with such entries still makes the update). Errors:
 * ErrorResponse with any HTTP status (its code in the message; exit 5 for
 * rights, 4 for the service's own trouble, else 1), HTTP 401 exit 5
 * "jip-login", service down exit 4.
 */
int ps_jipws_add(struct ps_jipws *w, const char *login,
		 const struct ps_jipws_item *it, enum ps_jipws_result *res,
		 int *removed, struct ps_err *err);

/* 1 when entry c is the certificate of type ("qualified"/"commercial"),
 * issuer DN and serial serial_hex. */
int ps_jipws_cert_is(const struct ps_jipws_cert *c, const char *type,
		     const char *issuer, const char *serial_hex);

/* 1 when two DN strings name the same issuer (attribute types by OID,
 * values without case and extra spaces, in any order), else 0. */
int ps_jipws_dn_equal(const char *a, const char *b);
/* 1 when number (decimal or hexadecimal, optional 0x or colons) can be
 * the serial serial_hex, else 0. */
int ps_jipws_number_equal(const char *number, const char *serial_hex);

#endif

/* psrenew: libcurl, libxml2 and libp11 loaded when first used.
 *
 * Most runs need none of them (ps-status, ps-renew and ps-fetch with a
 * helper: CA), yet linking them costs every process about 20 ms of CPU
 * and 7 MiB of RSS at start-up: 40 more shared objects (Kerberos, LDAP,
 * ssh2, ICU, ...) mapped, relocated and initialised. -Wl,--as-needed
 * cannot drop them, since libpsrenew does call them. So libpsrenew is not
 * linked with them: this file defines the few functions of theirs that
 * lib/ calls (http.c and jip.c: libcurl, its easy and multi interfaces; jip.c
 * and jipws.c: libxml2; signer.c: libp11), with their own names and prototypes,
 * hidden (not exported, so a program that links the real libraries is not
 * affected). The first call dlopens the library by its Debian 12 soname and
 * forwards to the real function; without the library the calls fail the way the
 * library reports failure (NULL, CURLE_FAILED_INIT, -1), with one message on
 * stderr naming the library.
 *
 * A new function from these libraries in lib/ needs a forwarder here; the
 * link fails (-Wl,--no-undefined) until it has one.
 */
#define CURL_DISABLE_TYPECHECK 1
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <libp11.h>
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/uri.h>
#include <libxml/xpath.h>

#define HIDDEN __attribute__((visibility("hidden")))

enum { L_CURL, L_XML, L_P11, L_N };

static const char *const sonames[L_N] = { "libcurl.so.4", "libxml2.so.2",
					  "libp11.so.3" };
static void *handles[L_N];
static int failed[L_N];

/* The real function name in library lib, or NULL (said once). */
static void *sym(int lib, const char *name)
{
	void *f;

	if (!handles[lib] && !failed[lib]) {
		handles[lib] = dlopen(sonames[lib], RTLD_LAZY | RTLD_LOCAL);
		if (!handles[lib]) {
			failed[lib] = 1;
			fprintf(stderr, "psrenew: cannot load %s: %s\n",
				sonames[lib], dlerror());
		}
	}
	if (!handles[lib])
		return NULL;
	f = dlsym(handles[lib], name);
	if (!f)
		fprintf(stderr, "psrenew: %s has no %s\n", sonames[lib], name);
	return f;
}

/* Looks the real function up once: a static pointer per forwarder (the
 * address dlsym returns is copied into it, as dlsym(3) describes). */
#define REAL(lib, name)                                                        \
	static __typeof__(&name) real_;                                        \
	if (!real_) {                                                          \
		void *p_ = sym(lib, #name);                                    \
		memcpy(&real_, &p_, sizeof(p_));                               \
	}

/* libcurl ---------------------------------------------------------------- */

HIDDEN CURLcode curl_global_init(long flags)
{
	REAL(L_CURL, curl_global_init);
	return real_ ? real_(flags) : CURLE_FAILED_INIT;
}

HIDDEN CURL *curl_easy_init(void)
{
	REAL(L_CURL, curl_easy_init);
	return real_ ? real_() : NULL;
}

/* The argument's type follows from the option number, as in libcurl's
 * own curl_easy_setopt (CURLOPTTYPE_*). */
HIDDEN CURLcode curl_easy_setopt(CURL *c, CURLoption opt, ...)
{
	va_list ap;
	CURLcode rc;

	REAL(L_CURL, curl_easy_setopt);
	if (!real_)
		return CURLE_FAILED_INIT;
	va_start(ap, opt);
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		rc = real_(c, opt, va_arg(ap, long));
	else if (opt < CURLOPTTYPE_OFF_T)
		rc = real_(c, opt, va_arg(ap, void *));
	else if (opt < CURLOPTTYPE_BLOB)
		rc = real_(c, opt, va_arg(ap, curl_off_t));
	else
		rc = real_(c, opt, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

/* Every curl_easy_getinfo takes a pointer to the result. */
HIDDEN CURLcode curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
	va_list ap;
	CURLcode rc;

	REAL(L_CURL, curl_easy_getinfo);
	if (!real_)
		return CURLE_FAILED_INIT;
	va_start(ap, info);
	rc = real_(c, info, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

HIDDEN CURLcode curl_easy_perform(CURL *c)
{
	REAL(L_CURL, curl_easy_perform);
	return real_ ? real_(c) : CURLE_FAILED_INIT;
}

HIDDEN void curl_easy_cleanup(CURL *c)
{
	REAL(L_CURL, curl_easy_cleanup);
	if (real_)
		real_(c);
}

HIDDEN void curl_easy_reset(CURL *c)
{
	REAL(L_CURL, curl_easy_reset);
	if (real_)
		real_(c);
}

HIDDEN const char *curl_easy_strerror(CURLcode code)
{
	REAL(L_CURL, curl_easy_strerror);
	return real_ ? real_(code) : "libcurl is not available";
}

HIDDEN char *curl_easy_escape(CURL *c, const char *s, int len)
{
	REAL(L_CURL, curl_easy_escape);
	return real_ ? real_(c, s, len) : NULL;
}

HIDDEN void curl_free(void *p)
{
	REAL(L_CURL, curl_free);
	if (real_)
		real_(p);
}

HIDDEN time_t curl_getdate(const char *s, const time_t *unused)
{
	REAL(L_CURL, curl_getdate);
	return real_ ? real_(s, unused) : (time_t)-1;
}

HIDDEN struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
	REAL(L_CURL, curl_slist_append);
	return real_ ? real_(l, s) : NULL;
}

HIDDEN void curl_slist_free_all(struct curl_slist *l)
{
	REAL(L_CURL, curl_slist_free_all);
	if (real_)
		real_(l);
}

HIDDEN CURLM *curl_multi_init(void)
{
	REAL(L_CURL, curl_multi_init);
	return real_ ? real_() : NULL;
}

/* The one multi option lib/ sets takes a long (CURLMOPT_MAXCONNECTS). */
HIDDEN CURLMcode curl_multi_setopt(CURLM *m, CURLMoption opt, ...)
{
	va_list ap;
	CURLMcode rc;

	REAL(L_CURL, curl_multi_setopt);
	if (!real_)
		return CURLM_INTERNAL_ERROR;
	va_start(ap, opt);
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		rc = real_(m, opt, va_arg(ap, long));
	else
		rc = real_(m, opt, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

HIDDEN CURLMcode curl_multi_add_handle(CURLM *m, CURL *c)
{
	REAL(L_CURL, curl_multi_add_handle);
	return real_ ? real_(m, c) : CURLM_INTERNAL_ERROR;
}

HIDDEN CURLMcode curl_multi_remove_handle(CURLM *m, CURL *c)
{
	REAL(L_CURL, curl_multi_remove_handle);
	return real_ ? real_(m, c) : CURLM_INTERNAL_ERROR;
}

HIDDEN CURLMcode curl_multi_perform(CURLM *m, int *running)
{
	REAL(L_CURL, curl_multi_perform);
	return real_ ? real_(m, running) : CURLM_INTERNAL_ERROR;
}

HIDDEN CURLMcode curl_multi_poll(CURLM *m, struct curl_waitfd extra[],
				 unsigned int n, int timeout_ms, int *numfds)
{
	REAL(L_CURL, curl_multi_poll);
	return real_ ? real_(m, extra, n, timeout_ms, numfds)
		     : CURLM_INTERNAL_ERROR;
}

HIDDEN CURLMsg *curl_multi_info_read(CURLM *m, int *left)
{
	REAL(L_CURL, curl_multi_info_read);
	return real_ ? real_(m, left) : NULL;
}

HIDDEN CURLMcode curl_multi_cleanup(CURLM *m)
{
	REAL(L_CURL, curl_multi_cleanup);
	return real_ ? real_(m) : CURLM_INTERNAL_ERROR;
}

/* libxml2 ---------------------------------------------------------------- */

/* libxml2's xmlFree is a variable (a function pointer): ours is set from
 * the real one when libxml2 is loaded, before anything it returned can
 * be freed. */
HIDDEN xmlFreeFunc xmlFree;

static void *xml_sym(const char *name)
{
	void *f = sym(L_XML, name);
	xmlFreeFunc *real_free;

	if (f && !xmlFree && (real_free = sym(L_XML, "xmlFree")) != NULL)
		xmlFree = *real_free;
	return f;
}

#define REAL_XML(name)                                                         \
	static __typeof__(&name) real_;                                        \
	if (!real_) {                                                          \
		void *p_ = xml_sym(#name);                                     \
		memcpy(&real_, &p_, sizeof(p_));                               \
	}

HIDDEN htmlDocPtr htmlReadMemory(const char *buf, int size, const char *url,
				 const char *encoding, int options)
{
	REAL_XML(htmlReadMemory);
	return real_ ? real_(buf, size, url, encoding, options) : NULL;
}

HIDDEN xmlChar *xmlBuildURI(const xmlChar *uri, const xmlChar *base)
{
	REAL_XML(xmlBuildURI);
	return real_ ? real_(uri, base) : NULL;
}

HIDDEN void xmlFreeDoc(xmlDocPtr doc)
{
	REAL_XML(xmlFreeDoc);
	if (real_)
		real_(doc);
}

HIDDEN xmlChar *xmlGetProp(const xmlNode *node, const xmlChar *name)
{
	REAL_XML(xmlGetProp);
	return real_ ? real_(node, name) : NULL;
}

HIDDEN xmlChar *xmlNodeGetContent(const xmlNode *node)
{
	REAL_XML(xmlNodeGetContent);
	return real_ ? real_(node) : NULL;
}

HIDDEN xmlXPathContextPtr xmlXPathNewContext(xmlDocPtr doc)
{
	REAL_XML(xmlXPathNewContext);
	return real_ ? real_(doc) : NULL;
}

HIDDEN void xmlXPathFreeContext(xmlXPathContextPtr ctx)
{
	REAL_XML(xmlXPathFreeContext);
	if (real_)
		real_(ctx);
}

HIDDEN xmlXPathObjectPtr xmlXPathEvalExpression(const xmlChar *expr,
						xmlXPathContextPtr ctx)
{
	REAL_XML(xmlXPathEvalExpression);
	return real_ ? real_(expr, ctx) : NULL;
}

HIDDEN void xmlXPathFreeObject(xmlXPathObjectPtr obj)
{
	REAL_XML(xmlXPathFreeObject);
	if (real_)
		real_(obj);
}

/* jipws.c: the editing web service's XML, built and read as a tree. */

HIDDEN xmlDocPtr xmlReadMemory(const char *buf, int size, const char *url,
			       const char *encoding, int options)
{
	REAL_XML(xmlReadMemory);
	return real_ ? real_(buf, size, url, encoding, options) : NULL;
}

HIDDEN xmlDocPtr xmlNewDoc(const xmlChar *version)
{
	REAL_XML(xmlNewDoc);
	return real_ ? real_(version) : NULL;
}

HIDDEN xmlNodePtr xmlNewNode(xmlNsPtr ns, const xmlChar *name)
{
	REAL_XML(xmlNewNode);
	return real_ ? real_(ns, name) : NULL;
}

HIDDEN xmlNsPtr xmlNewNs(xmlNodePtr node, const xmlChar *href,
			 const xmlChar *prefix)
{
	REAL_XML(xmlNewNs);
	return real_ ? real_(node, href, prefix) : NULL;
}

HIDDEN void xmlSetNs(xmlNodePtr node, xmlNsPtr ns)
{
	REAL_XML(xmlSetNs);
	if (real_)
		real_(node, ns);
}

HIDDEN xmlNodePtr xmlDocSetRootElement(xmlDocPtr doc, xmlNodePtr root)
{
	REAL_XML(xmlDocSetRootElement);
	return real_ ? real_(doc, root) : NULL;
}

HIDDEN xmlAttrPtr xmlNewProp(xmlNodePtr node, const xmlChar *name,
			     const xmlChar *value)
{
	REAL_XML(xmlNewProp);
	return real_ ? real_(node, name, value) : NULL;
}

HIDDEN xmlNodePtr xmlNewChild(xmlNodePtr parent, xmlNsPtr ns,
			      const xmlChar *name, const xmlChar *content)
{
	REAL_XML(xmlNewChild);
	return real_ ? real_(parent, ns, name, content) : NULL;
}

HIDDEN xmlNodePtr xmlNewTextChild(xmlNodePtr parent, xmlNsPtr ns,
				  const xmlChar *name, const xmlChar *content)
{
	REAL_XML(xmlNewTextChild);
	return real_ ? real_(parent, ns, name, content) : NULL;
}

HIDDEN void xmlDocDumpMemoryEnc(xmlDocPtr doc, xmlChar **mem, int *size,
				const char *encoding)
{
	REAL_XML(xmlDocDumpMemoryEnc);
	if (real_)
		real_(doc, mem, size, encoding);
	else {
		*mem = NULL;
		*size = 0;
	}
}

/* libp11 ----------------------------------------------------------------- */

HIDDEN PKCS11_CTX *PKCS11_CTX_new(void)
{
	REAL(L_P11, PKCS11_CTX_new);
	return real_ ? real_() : NULL;
}

HIDDEN int PKCS11_CTX_load(PKCS11_CTX *ctx, const char *ident)
{
	REAL(L_P11, PKCS11_CTX_load);
	return real_ ? real_(ctx, ident) : -1;
}

HIDDEN void PKCS11_CTX_unload(PKCS11_CTX *ctx)
{
	REAL(L_P11, PKCS11_CTX_unload);
	if (real_)
		real_(ctx);
}

HIDDEN void PKCS11_CTX_free(PKCS11_CTX *ctx)
{
	REAL(L_P11, PKCS11_CTX_free);
	if (real_)
		real_(ctx);
}

HIDDEN int PKCS11_enumerate_slots(PKCS11_CTX *ctx, PKCS11_SLOT **slots,
				  unsigned int *n)
{
	REAL(L_P11, PKCS11_enumerate_slots);
	return real_ ? real_(ctx, slots, n) : -1;
}

HIDDEN void PKCS11_release_all_slots(PKCS11_CTX *ctx, PKCS11_SLOT *slots,
				     unsigned int n)
{
	REAL(L_P11, PKCS11_release_all_slots);
	if (real_)
		real_(ctx, slots, n);
}

HIDDEN int PKCS11_enumerate_keys(PKCS11_TOKEN *tok, PKCS11_KEY **keys,
				 unsigned int *n)
{
	REAL(L_P11, PKCS11_enumerate_keys);
	return real_ ? real_(tok, keys, n) : -1;
}

HIDDEN EVP_PKEY *PKCS11_get_private_key(PKCS11_KEY *key)
{
	REAL(L_P11, PKCS11_get_private_key);
	return real_ ? real_(key) : NULL;
}

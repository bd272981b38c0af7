/* The memory floor of ps-fetch --pending (make bench, scenario 4): one
 * process that loads the PKCS#11 module, finds the token by its label,
 * logs in, lists every object of the token in one C_FindObjects pass and
 * reads the CKA_ID of each: what the module itself keeps in memory for the
 * token's objects (SoftHSM holds them all), without anything of psrenew,
 * libcurl, libp11 or TLS. Its peak RSS, next to ps-fetch's on the same
 * token, is the ratio scenario 4 states.
 * Usage: rssfloor MODULE TOKEN_LABEL PIN_FILE (prints the object count)
 *
 * Built with -DWITH_LIBP11 (rssfloor-p11): the same, then libp11 on the
 * same loaded module lists the token's private keys (PKCS11_enumerate_keys,
 * libp11 0.4.12's only way to a key), as ps-fetch does to find its TLS
 * client key; it prints the key count too. Its peak RSS less the floor's
 * is what that list costs.
 *
 * Built with -DWITH_CURL (rssfloor-curl): the same as the floor, then one
 * HTTPS GET through libcurl (DESIGN's transport: libcurl4-openssl, with the
 * libraries it pulls in) to URL, trusting CA_FILE only, with an optional
 * curl "--resolve" entry: the floor of any EST client built as DESIGN
 * says, before anything of its own.
 * Usage: rssfloor-curl MODULE TOKEN_LABEL PIN_FILE URL CA_FILE [RESOLVE] */
#define _POSIX_C_SOURCE 200809L
#define FLOOR_NAME "rssfloor"
#include "floor.h"
#ifdef WITH_LIBP11
#include <libp11.h>
#endif
#ifdef WITH_CURL
#include <curl/curl.h>

static size_t discard(char *p, size_t size, size_t n, void *u)
{
	(void)p;
	(void)u;
	return size * n;
}

/* One HTTPS GET; exits unless the answer is 200. */
static void https_get(const char *url, const char *ca_file, const char *resolve)
{
	struct curl_slist *r = resolve ? curl_slist_append(NULL, resolve) : NULL;
	CURL *e;
	long code = 0;
	CURLcode rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	e = curl_easy_init();
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
	curl_easy_setopt(e, CURLOPT_RESOLVE, r);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK || code != 200) {
		fprintf(stderr, "rssfloor: GET %s: %s, HTTP %ld\n", url, curl_easy_strerror(rc),
			code);
		exit(1);
	}
	curl_easy_cleanup(e);
	curl_slist_free_all(r);
	curl_global_cleanup();
}
#endif

int main(int argc, char **argv)
{
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE h[256];
	CK_ULONG got, total = 0;

#ifdef WITH_CURL
	if (argc < 6) {
		fprintf(stderr, "usage: rssfloor-curl MODULE TOKEN_LABEL PIN_FILE URL CA_FILE "
				"[RESOLVE]\n");
		return 2;
	}
#endif
	if (argc < 4) {
		fprintf(stderr, "usage: rssfloor MODULE TOKEN_LABEL PIN_FILE\n");
		return 2;
	}
	s = floor_open(argv[1], argv[2], argv[3]);
	check(f->C_FindObjectsInit(s, NULL, 0), "C_FindObjectsInit");
	do {
		check(f->C_FindObjects(s, h, 256, &got), "C_FindObjects");
		for (CK_ULONG i = 0; i < got; i++) {
			CK_BYTE id[64];
			CK_ATTRIBUTE a = { CKA_ID, id, sizeof(id) };

			f->C_GetAttributeValue(s, h[i], &a, 1);
		}
		total += got;
	} while (got > 0);
	check(f->C_FindObjectsFinal(s), "C_FindObjectsFinal");
	printf("%lu\n", (unsigned long)total);
#ifdef WITH_LIBP11
	{
		/* Same path, same loaded module: libp11 shares the login. */
		PKCS11_CTX *ctx = PKCS11_CTX_new();
		PKCS11_SLOT *slots = NULL, *slot;
		PKCS11_KEY *keys = NULL;
		unsigned int nslots = 0, nkeys = 0;

		if (!ctx || PKCS11_CTX_load(ctx, argv[1]) < 0 ||
		    PKCS11_enumerate_slots(ctx, &slots, &nslots) < 0) {
			fprintf(stderr, "rssfloor: libp11 cannot use %s\n", argv[1]);
			return 1;
		}
		slot = PKCS11_find_token(ctx, slots, nslots);
		while (slot && strcmp(slot->token->label, argv[2]) != 0)
			slot = PKCS11_find_next_token(ctx, slots, nslots, slot);
		if (!slot || PKCS11_enumerate_keys(slot->token, &keys, &nkeys) < 0) {
			fprintf(stderr, "rssfloor: libp11 lists no keys\n");
			return 1;
		}
		printf("%u\n", nkeys); /* kept to the end, as ps-fetch does */
	}
#endif
#ifdef WITH_CURL
	https_get(argv[4], argv[5], argc > 6 ? argv[6] : NULL);
#endif
	f->C_Logout(s);
	f->C_CloseSession(s);
	f->C_Finalize(NULL);
	return 0;
}

/* The floor of polling waiting CMP requests (make bench, scenario "cmp"):
 * what any client of the same CA cannot avoid per poll. One signature on
 * the token (an RSA pollReq's protection, RFC 4210 5.1.3.3) and one HTTP
 * exchange over up to 8 kept-open connections; the request sent is one
 * made beforehand (the peer's genm, which the test CA answers with a signed
 * message, as it answers a pollReq). No CMP encoding, no check of the
 * answer's protection, no state.
 *   cmpfloor MODULE LABEL PIN_FILE KEY_ID_HEX URL REQUEST.der N
 * prints the number of HTTP 200 answers. */
#define _POSIX_C_SOURCE 200809L
#define FLOOR_NAME "cmpfloor"
#include <curl/curl.h>

#include "floor.h"

#define LANES 8

static CK_SESSION_HANDLE s;
static CK_OBJECT_HANDLE key;

/* The private key with the CKA_ID id_hex, on the logged-in session. */
static void find_key(const char *id_hex)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_BYTE id[64];
	CK_ULONG idlen = 0, got = 0;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_ID, id, 0 } };

	for (unsigned int b; idlen < sizeof(id) && sscanf(id_hex + 2 * idlen, "%2x", &b) == 1;)
		id[idlen++] = (CK_BYTE)b;
	t[1].ulValueLen = idlen;
	check(f->C_FindObjectsInit(s, t, 2), "C_FindObjectsInit");
	check(f->C_FindObjects(s, &key, 1, &got), "C_FindObjects");
	check(f->C_FindObjectsFinal(s), "C_FindObjectsFinal");
	if (got != 1)
		floor_die("no private key with the CKA_ID ", id_hex);
}

/* The poll's protection: one signature on the token. */
static void sign_one(void)
{
	CK_MECHANISM m = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	CK_BYTE tbs[32] = { 0 }, sig[512];
	CK_ULONG slen = sizeof(sig);

	check(f->C_SignInit(s, &m, key), "C_SignInit");
	check(f->C_Sign(s, tbs, sizeof(tbs), sig, &slen), "C_Sign");
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
	(void)p;
	(void)u;
	return size * n;
}

static CURL *lane(CURL *e, const char *url, const char *body, long len, struct curl_slist *h)
{
	if (!e) {
		e = curl_easy_init();
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, len);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	}
	sign_one();
	return e;
}

int main(int argc, char **argv)
{
	static char body[65536];
	struct curl_slist *h = NULL;
	CURLM *m;
	FILE *rf;
	long len, n, sent = 0, ok = 0;
	int running = 1;

	if (argc != 8 || (n = atol(argv[7])) <= 0) {
		fprintf(stderr, "usage: cmpfloor MODULE LABEL PIN_FILE KEY_ID_HEX URL REQUEST.der N\n");
		return 2;
	}
	rf = fopen(argv[6], "rb");
	if (!rf)
		floor_die("cannot read ", argv[6]);
	len = (long)fread(body, 1, sizeof(body), rf);
	fclose(rf);
	s = floor_open(argv[1], argv[2], argv[3]);
	find_key(argv[4]);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	h = curl_slist_append(h, "Content-Type: application/pkixcmp");
	m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)LANES);
	/* Each lane has one handle, signed and sent again when its answer is in;
	 * a handle keeps its connection open between exchanges. */
	for (int i = 0; i < LANES && sent < n; i++, sent++)
		curl_multi_add_handle(m, lane(NULL, argv[5], body, len, h));
	while (running) {
		CURLMsg *msg;
		int left;

		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left))) {
			long code = 0;
			CURL *e = msg->easy_handle;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
			ok += msg->data.result == CURLE_OK && code == 200;
			curl_multi_remove_handle(m, e);
			if (sent < n) {
				sent++;
				curl_multi_add_handle(m, lane(e, argv[5], body, len, h));
				running = 1;
			} else {
				curl_easy_cleanup(e);
			}
		}
		if (running)
			curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	printf("%ld\n", ok);
	curl_multi_cleanup(m);
	curl_slist_free_all(h);
	curl_global_cleanup();
	f->C_CloseSession(s);
	f->C_Finalize(NULL);
	return ok == n ? 0 : 1;
}

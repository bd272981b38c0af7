/* psrenew: a program of a third party, built against the installed
 * libpsrenew with pkg-config (tests/cli/install.bats): the version, the
 * facts of a certificate, an error record written and read back; with
 * -DWITH_CURL it calls the real libcurl too.
 * Usage: public-api CERT.der */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <psrenew/psrenew.h>
#ifdef WITH_CURL
#include <curl/curl.h>
#endif

#if PSRENEW_VERSION_NUM < 0x000100
#error "PSRENEW_VERSION_NUM is not a number"
#endif

static unsigned char *slurp(const char *path, size_t *len)
{
	static unsigned char buf[65536];
	FILE *f = fopen(path, "rb");

	if (!f)
		return NULL;
	*len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return buf;
}

static int cert_facts(const char *path)
{
	struct ps_cert c;
	struct ps_err err;
	size_t len = 0;
	unsigned char *der = slurp(path, &len);

	if (!der || ps_cert_from_der(der, len, &c, &err)) {
		fprintf(stderr, "%s: not a certificate\n", path);
		return 1;
	}
	printf("cert %s %s %s %ld\n", c.cn ? c.cn : "-",
	       ps_cert_type_name(c.type), c.key_type,
	       ps_cert_days_left(&c, time(NULL)));
	ps_cert_free(&c);
	return 0;
}

static int record_round_trip(void)
{
	struct ps_err err;
	FILE *f = tmpfile();
	struct ps_out *o = f ? ps_out_new(f, PS_OUT_JSON) : NULL;
	struct ps_in *in;
	json_t *rec, *back;
	int rc;

	if (!o)
		return 1;
	ps_err_set(&err, PS_EXIT_TOKEN, "token-full", "remove something",
		   "no room on %s", "the token");
	rec = ps_record_error(&err);
	if (!rec || ps_out_emit(o, rec) || ps_out_finish(o))
		return 1;
	rewind(f);
	in = ps_in_new(f);
	back = in ? ps_in_next(in, &err) : NULL;
	rc = !back || !json_equal(rec, back);
	if (back)
		printf("record %s %s %lld\n",
		       json_string_value(json_object_get(back, "kind")),
		       json_string_value(json_object_get(back, "code")),
		       (long long)json_integer_value(
			   json_object_get(back, "status")));
	json_decref(rec);
	json_decref(back);
	ps_in_free(in);
	fclose(f);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 2 || strcmp(ps_version(), PSRENEW_VERSION) != 0)
		return 2;
	printf("version %s\n", ps_version());
	if (cert_facts(argv[1]) || record_round_trip())
		return 1;
#ifdef WITH_CURL
	{
		CURL *h = curl_easy_init();

		if (!h)
			return 1;
		curl_easy_cleanup(h);
		printf("curl %s\n", curl_version_info(CURLVERSION_NOW)->version);
	}
#endif
	return 0;
}

/* libFuzzer harness "config": psrenew.conf(5) read by ps_config_load from a
 * file holding the input (a memfd, reached through /proc/self/fd/N, so no
 * temporary file is left behind). On success every entry must be found
 * again by ps_config_get, and the [jip-ca] map is matched against an issuer
 * (fnmatch(3) patterns from the file). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <psrenew/cert.h>
#include <psrenew/config.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct ps_config cfg;
	struct ps_err err;
	struct ps_cert cert;
	size_t off = 0;
	int rc;

	if (fd < 0) {
		fd = memfd_create("psrenew-fuzz-config", MFD_CLOEXEC);
		if (fd < 0)
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) < 0)
		abort();
	while (off < size) {
		ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);

		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	ps_err_clear(&err);
	rc = ps_config_load(path, &cfg, &err);
	if (rc) {
		/* A refused file is a usage error with a message. */
		if (!err.msg[0] || rc != err.status)
			abort();
		return 0;
	}
	for (size_t i = 0; i < cfg.n; i++)
		if (!ps_config_get(&cfg, cfg.e[i].section, cfg.e[i].key))
			abort();
	ps_config_get(&cfg, "jip", "profile");
	memset(&cert, 0, sizeof(cert));
	cert.issuer_cn = (char *)"PostSignum Qualified CA 4";
	ps_cert_jip_ca(&cert, cfg.jip_ca, cfg.n_jip_ca);
	ps_config_free(&cfg);
	return 0;
}

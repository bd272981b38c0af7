/* Unit tests: the state store (lib/state.c): the atomic writer (content,
 * mode, never through a symlink, no temporary file left), exclusive locks,
 * damaged files reported by ps_state_each, and the writer for a path
 * outside the store. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <psrenew/state.h>

struct fx {
	char dir[64];
	struct ps_state st;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct ps_err err;

	if (!f)
		return -1;
	umask(022);
	snprintf(f->dir, sizeof(f->dir), "/tmp/psrenew-test-state.XXXXXX");
	ps_err_clear(&err);
	if (!mkdtemp(f->dir) || ps_state_open(f->dir, NULL, 1, &f->st, &err)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	ps_state_close(&f->st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	free(f);
	return system(cmd) == 0 ? 0 : -1;
}

/* The whole file dir/name (NUL-terminated; the caller frees), or NULL. */
static char *slurp(const char *dir, const char *name)
{
	char path[256], *buf = calloc(1, 4096);
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "r");
	if (!fp || !buf) {
		if (fp)
			fclose(fp);
		free(buf);
		return NULL;
	}
	n = fread(buf, 1, 4095, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Entries of dir whose name ends in ".tmp". */
static int temp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		n += l > 4 && !strcmp(e->d_name + l - 4, ".tmp");
	}
	closedir(d);
	return n;
}

static mode_t mode_of(const char *dir, const char *name)
{
	char path[256];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(lstat(path, &sb), 0);
	return sb.st_mode;
}

/* ps_state_write_at: the content, the mode asked for, no temporary file;
 * a second write replaces the first whole. */
static void test_write_at_content_mode(void **state)
{
	struct fx *f = *state;
	char *got;
	int dfd = open(f->dir, O_RDONLY | O_DIRECTORY);

	assert_true(dfd >= 0);
	assert_int_equal(
	    ps_state_write_at(dfd, "out.pem", "first, longer\n", 14, 0640), 0);
	assert_int_equal(ps_state_write_at(dfd, "out.pem", "second\n", 7, 0640),
			 0);
	got = slurp(f->dir, "out.pem");
	assert_string_equal(got, "second\n");
	free(got);
	assert_int_equal(mode_of(f->dir, "out.pem") & 07777, 0640);
	assert_true(S_ISREG(mode_of(f->dir, "out.pem")));
	assert_int_equal(temp_files(f->dir), 0);
	/* names that are not one file of dfd */
	assert_int_equal(ps_state_write_at(dfd, "../x", "x", 1, 0600), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(ps_state_write_at(dfd, "..", "x", 1, 0600), -1);
	close(dfd);
}

/* ps_state_save: a request file of mode 0600 holding the record, nothing
 * else left in requests/. */
static void test_save_mode_and_temp(void **state)
{
	struct fx *f = *state;
	char req[128], *got;
	json_t *rec =
	    json_pack("{s:s, s:s}", "state", "pending", "key_id", "ab12");
	json_t *back = NULL;
	struct ps_err err;

	ps_err_clear(&err);
	assert_int_equal(ps_state_save(&f->st, "r1", rec, &err), 0);
	snprintf(req, sizeof(req), "%s/requests", f->dir);
	assert_int_equal(mode_of(req, "r1.json") & 07777, 0600);
	assert_int_equal(temp_files(req), 0);
	got = slurp(req, "r1.json");
	assert_string_equal(got,
			    "{\"key_id\":\"ab12\",\"state\":\"pending\"}\n");
	free(got);
	assert_int_equal(ps_state_load(&f->st, "r1", &back, &err), 0);
	assert_true(json_equal(back, rec));
	json_decref(back);
	json_decref(rec);
}

/* A symlink planted at the name is replaced, never written through; the
 * store reads no request through a symlink either. */
static void test_symlink_not_followed(void **state)
{
	struct fx *f = *state;
	char victim[256], link[256], *got;
	json_t *rec = json_pack("{s:s}", "state", "pending"), *back = NULL;
	struct ps_err err;
	int dfd = open(f->dir, O_RDONLY | O_DIRECTORY);

	assert_true(dfd >= 0);
	write_text(f->dir, "victim", "precious\n");
	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	assert_int_equal(symlinkat(victim, dfd, "out.pem"), 0);
	assert_int_equal(ps_state_write_at(dfd, "out.pem", "new\n", 4, 0600),
			 0);
	got = slurp(f->dir, "victim");
	assert_string_equal(got, "precious\n");
	free(got);
	assert_true(S_ISREG(mode_of(f->dir, "out.pem")));
	got = slurp(f->dir, "out.pem");
	assert_string_equal(got, "new\n");
	free(got);

	/* requests/r2.json -> victim: refused as damaged, victim unchanged */
	snprintf(link, sizeof(link), "%s/requests/r2.json", f->dir);
	assert_int_equal(symlink(victim, link), 0);
	ps_err_clear(&err);
	assert_int_equal(ps_state_load(&f->st, "r2", &back, &err),
			 PS_EXIT_FAIL);
	assert_null(back);
	assert_string_equal(err.code, "state-damaged");
	assert_non_null(strstr(err.msg, "symlink"));
	got = slurp(f->dir, "victim");
	assert_string_equal(got, "precious\n");
	free(got);
	json_decref(rec);
	close(dfd);
}

/* A state directory that is a symlink is refused. */
static void test_state_dir_symlink_refused(void **state)
{
	struct fx *f = *state;
	char link[128];
	struct ps_state st;
	struct ps_err err;

	snprintf(link, sizeof(link), "%s/link", f->dir);
	assert_int_equal(symlink(f->dir, link), 0);
	ps_err_clear(&err);
	assert_int_equal(ps_state_open(link, NULL, 0, &st, &err),
			 PS_EXIT_USAGE);
	assert_string_equal(err.code, "bad-state-dir");
}

/* A write that fails (the name is a directory: the rename fails) leaves
 * the name as it was and no temporary file. */
static void test_failed_write_leaves_no_temp(void **state)
{
	struct fx *f = *state;
	char sub[128];
	int dfd = open(f->dir, O_RDONLY | O_DIRECTORY);

	assert_true(dfd >= 0);
	snprintf(sub, sizeof(sub), "%s/adir", f->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_text(sub, "inside", "x");
	assert_int_equal(ps_state_write_at(dfd, "adir", "data", 4, 0600), -1);
	assert_true(S_ISDIR(mode_of(f->dir, "adir")));
	assert_int_equal(temp_files(f->dir), 0);
	close(dfd);
}

/* Two opens of the store: a lock one holds is busy (exit 3) for the
 * other, free again once released. */
static void test_lock_exclusive(void **state)
{
	struct fx *f = *state;
	struct ps_state other;
	struct ps_err err;
	int a = -1, b = -1;

	ps_err_clear(&err);
	assert_int_equal(ps_state_open(f->dir, NULL, 0, &other, &err), 0);
	assert_int_equal(ps_state_lock(&f->st, "r1", 0, &a, &err), 0);
	assert_int_equal(ps_state_lock(&other, "r1", 0, &b, &err),
			 PS_EXIT_PENDING);
	assert_string_equal(err.code, "busy");
	assert_int_equal(b, -1);
	/* another name is not held */
	ps_err_clear(&err);
	assert_int_equal(ps_state_lock(&other, "r2", 0, &b, &err), 0);
	ps_state_unlock(b);
	ps_state_unlock(a);
	assert_int_equal(ps_state_lock(&other, "r1", 0, &b, &err), 0);
	ps_state_unlock(b);
	/* not a name */
	assert_int_equal(ps_state_lock(&other, "../x", 0, &b, &err),
			 PS_EXIT_USAGE);
	ps_state_close(&other);
}

struct seen {
	int n, damaged;
	char names[4][32];
	char codes[4][48];
	char for_sha[4][70];
	int has_path[4];
};

static int collect(void *ctx, const struct ps_state_file *file)
{
	struct seen *s = ctx;

	if (s->n >= 4)
		return 99;
	snprintf(s->names[s->n], sizeof(s->names[0]), "%s", file->name);
	if (!file->rec) {
		s->damaged++;
		snprintf(s->codes[s->n], sizeof(s->codes[0]), "%s",
			 file->err.code);
		snprintf(s->for_sha[s->n], sizeof(s->for_sha[0]), "%s",
			 file->for_sha256 ? file->for_sha256 : "");
		s->has_path[s->n] =
		    file->path && strstr(file->path, file->name);
	}
	s->n++;
	return 0;
}

/* ps_state_each hands every file to the reader, the damaged ones too
 * (rec NULL, code "state-damaged", the path, the certificate a damaged
 * record names), in name order. */
static void test_each_reports_damaged(void **state)
{
	struct fx *f = *state;
	char req[128];
	json_t *rec = json_pack("{s:s}", "state", "pending");
	struct seen s;
	struct ps_err err;

	memset(&s, 0, sizeof(s));
	ps_err_clear(&err);
	assert_int_equal(ps_state_save(&f->st, "b-good", rec, &err), 0);
	snprintf(req, sizeof(req), "%s/requests", f->dir);
	write_text(req, "a-trunc.json", "{\"state\": \"pend");
	write_text(req, "c-nostate.json", "{\"old_sha256\": \"00ff\"}");
	assert_int_equal(ps_state_each(&f->st, NULL, NULL, collect, &s, &err),
			 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.damaged, 2);
	assert_string_equal(s.names[0], "a-trunc");
	assert_string_equal(s.codes[0], "state-damaged");
	assert_true(s.has_path[0]);
	assert_string_equal(s.for_sha[0], "");
	assert_string_equal(s.names[1], "b-good");
	assert_string_equal(s.names[2], "c-nostate");
	assert_string_equal(s.codes[2], "state-damaged");
	assert_string_equal(s.for_sha[2], "00ff");
	json_decref(rec);
}

/* ps_state_write_file: a path outside the store, written whole with its
 * mode; a directory that is not there is exit 1, code "io". */
static void test_write_file_outside(void **state)
{
	struct fx *f = *state;
	char out[128], path[160], *got;
	struct ps_err err;

	snprintf(out, sizeof(out), "%s/elsewhere", f->dir);
	assert_int_equal(mkdir(out, 0755), 0);
	snprintf(path, sizeof(path), "%s/cacerts.pem", out);
	ps_err_clear(&err);
	assert_int_equal(ps_state_write_file(path, "PEM\n", 4, 0644, &err), 0);
	got = slurp(out, "cacerts.pem");
	assert_string_equal(got, "PEM\n");
	free(got);
	assert_int_equal(mode_of(out, "cacerts.pem") & 07777, 0644);
	assert_int_equal(temp_files(out), 0);
	snprintf(path, sizeof(path), "%s/missing/cacerts.pem", out);
	assert_int_equal(ps_state_write_file(path, "PEM\n", 4, 0644, &err),
			 PS_EXIT_FAIL);
	assert_string_equal(err.code, "io");
	assert_non_null(strstr(err.msg, "missing/cacerts.pem"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_write_at_content_mode,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_save_mode_and_temp, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_symlink_not_followed,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_dir_symlink_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_failed_write_leaves_no_temp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_exclusive, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_each_reports_damaged,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_file_outside, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

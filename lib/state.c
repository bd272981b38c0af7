/* psrenew: the state store: one JSON file per request, the records and
 * blobs of its sub-directories, and the safe writer for every file. */
#include <psrenew/state.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include <psrenew/record.h>

#define REC_MAX (1 << 20)

static const char dir_hint[] =
    "the state directory must be a real directory owned by you with mode "
    "0700; choose another with --state-dir or PSRENEW_STATE_DIR";

static char *default_dir(const struct ps_config *cfg)
{
	const char *v =
	    cfg ? ps_config_get(cfg, "defaults", "state-dir") : NULL;
	const char *home = getenv("HOME");
	char *p = NULL;

	if (v && *v)
		return strdup(v);
	v = getenv("PSRENEW_STATE_DIR");
	if (v && *v)
		return strdup(v);
	v = getenv("XDG_STATE_HOME");
	if (v && *v)
		return asprintf(&p, "%s/psrenew", v) < 0 ? NULL : p;
	if (geteuid() == 0)
		return strdup("/var/lib/psrenew");
	if (home && *home)
		return asprintf(&p, "%s/.local/state/psrenew", home) < 0 ? NULL
									 : p;
	return NULL;
}

/* mkdir -p with mode 0700 for what it creates. */
static int mkdirs(const char *path)
{
	char *p = strdup(path);
	int rc = 0;

	if (!p)
		return -1;
	for (char *s = p + 1; *s && !rc; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST)
			rc = -1;
		*s = '/';
	}
	if (!rc && mkdir(p, 0700) < 0 && errno != EEXIST)
		rc = -1;
	free(p);
	return rc;
}

static int safe_dir(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
	       st.st_uid == geteuid() && (st.st_mode & 022) == 0;
}

static int open_sub(int dirfd, const char *name, int create)
{
	int fd;

	if (create && mkdirat(dirfd, name, 0700) == 0)
		fsync(dirfd);
	else if (create && errno != EEXIST)
		return -1;
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0 && !safe_dir(fd)) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

/* Why dirfd/name cannot be a state directory, for a message ("is a
 * symlink", "has mode 0775, wants 0700", ...); e: the errno of opening it. */
static void why_not_dir(int dirfd, const char *name, int e, char *buf,
			size_t len)
{
	struct stat sb;

	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		snprintf(buf, len, "%s", strerror(errno));
	else if (S_ISLNK(sb.st_mode))
		snprintf(buf, len, "it is a symlink, not a directory");
	else if (!S_ISDIR(sb.st_mode))
		snprintf(buf, len, "it is not a directory");
	else if (sb.st_uid != geteuid())
		snprintf(buf, len, "it is owned by uid %ld, not by you",
			 (long)sb.st_uid);
	else if (sb.st_mode & 022)
		snprintf(buf, len,
			 "it has mode %04o, wants 0700 (not writable by "
			 "group or others)",
			 (unsigned)(sb.st_mode & 07777));
	else
		snprintf(buf, len, "%s", strerror(e));
}

/* requests/ and locks/: made when missing, unless the store is read-only
 * (then a missing one stays -1: nothing in it). */
static int open_subs(struct ps_state *st, struct ps_err *err)
{
	static const char *const names[] = { "requests", "locks" };
	int *fds[] = { &st->reqfd, &st->lockfd };
	char why[128];

	for (size_t i = 0; i < 2; i++) {
		*fds[i] = open_sub(st->dirfd, names[i], !st->read_only);
		if (*fds[i] >= 0 || (st->read_only && errno == ENOENT))
			continue;
		why_not_dir(st->dirfd, names[i], errno, why, sizeof(why));
		return ps_err_set(err, PS_EXIT_USAGE, "bad-state-dir", dir_hint,
				  "refusing %s/%s: %s", st->dir, names[i], why);
	}
	return 0;
}

int ps_state_open(const char *dir_opt, const struct ps_config *cfg, int create,
		  struct ps_state *st, struct ps_err *err)
{
	char why[128];

	memset(st, 0, sizeof(*st));
	st->dirfd = st->reqfd = st->lockfd = -1;
	st->read_only = create == PS_STATE_READ_ONLY;
	if (st->read_only)
		create = 0;
	st->dir = dir_opt ? strdup(dir_opt) : default_dir(cfg);
	if (!st->dir)
		return ps_err_set(err, PS_EXIT_USAGE, "bad-state-dir", dir_hint,
				  "no state directory: set HOME, "
				  "PSRENEW_STATE_DIR or --state-dir");
	if (create && mkdirs(st->dir) < 0) {
		ps_err_set(err, PS_EXIT_USAGE, "bad-state-dir", dir_hint,
			   "cannot create the state directory %s: %s", st->dir,
			   strerror(errno));
		goto fail;
	}
	st->dirfd =
	    open(st->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (st->dirfd < 0 && errno == ENOENT && !create) {
		ps_err_set(err, PS_EXIT_USAGE, "no-state-dir", dir_hint,
			   "the state directory %s does not exist", st->dir);
		goto fail;
	}
	if (st->dirfd < 0 || !safe_dir(st->dirfd)) {
		why_not_dir(AT_FDCWD, st->dir, errno, why, sizeof(why));
		ps_err_set(err, PS_EXIT_USAGE, "bad-state-dir", dir_hint,
			   "refusing the state directory %s: %s", st->dir, why);
		goto fail;
	}
	if (open_subs(st, err))
		goto fail;
	return 0;
fail:
	ps_state_close(st);
	return PS_EXIT_USAGE;
}

void ps_state_close(struct ps_state *st)
{
	if (st->reqfd >= 0)
		close(st->reqfd);
	if (st->lockfd >= 0)
		close(st->lockfd);
	if (st->dirfd >= 0)
		close(st->dirfd);
	free(st->dir);
	memset(st, 0, sizeof(*st));
	st->dirfd = st->reqfd = st->lockfd = -1;
}

void ps_state_new_id(char *buf, size_t len)
{
	unsigned char r[4] = { 0 };
	time_t now = time(NULL);
	struct tm tm;

	RAND_bytes(r, sizeof(r));
	gmtime_r(&now, &tm);
	snprintf(buf, len, "%04d%02d%02d-%02d%02d%02d-%02x%02x%02x%02x",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, r[0], r[1], r[2], r[3]);
}

int ps_state_valid_id(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	if (n == 0 || n > 64 || id[0] == '.')
		return 0;
	return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			  "0123456789._-") == n;
}

static int bad_id(struct ps_err *err, const char *id)
{
	return ps_err_set(err, PS_EXIT_USAGE, "bad-request-id", NULL,
			  "'%.70s' is not a request id", id ? id : "");
}

static int write_all(int fd, const void *data, size_t n)
{
	const char *s = data;

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Writes dfd/name atomically: a temporary file ".TMPBASE.PID.RANDOM.tmp"
 * created with O_EXCL|O_NOFOLLOW (mode), written, fsync'ed, renamed over
 * name, then the directory fsync'ed unless !sync_dir (the rename may then
 * be lost in a crash of the system, never half done). -1 with errno set;
 * the temporary file is gone again. */
static int write_at_sync(int dfd, const char *name, const char *tmpbase,
			 const void *data, size_t len, mode_t mode,
			 int sync_dir)
{
	char tmp[300];
	unsigned char r[4] = { 0 };
	int fd, e = 0;

	RAND_bytes(r, sizeof(r));
	snprintf(tmp, sizeof(tmp), ".%.200s.%ld.%02x%02x%02x%02x.tmp", tmpbase,
		 (long)getpid(), r[0], r[1], r[2], r[3]);
	fd = openat(dfd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0)
		e = errno ? errno : EIO;
	if (close(fd) < 0 && !e)
		e = errno;
	if (!e && renameat(dfd, tmp, dfd, name) < 0)
		e = errno;
	if (e) {
		unlinkat(dfd, tmp, 0);
		errno = e;
		return -1;
	}
	if (sync_dir)
		fsync(dfd);
	return 0;
}

static int write_at(int dfd, const char *name, const char *tmpbase,
		    const void *data, size_t len, mode_t mode)
{
	return write_at_sync(dfd, name, tmpbase, data, len, mode, 1);
}

int ps_state_write_at(int dfd, const char *name, const void *data, size_t len,
		      mode_t mode)
{
	if (!name || !*name || strchr(name, '/') || !strcmp(name, ".") ||
	    !strcmp(name, "..")) {
		errno = EINVAL;
		return -1;
	}
	return write_at(dfd, name, name, data, len, mode);
}

int ps_state_write_file(const char *path, const void *data, size_t len,
			mode_t mode, struct ps_err *err)
{
	const char *slash = path ? strrchr(path, '/') : NULL;
	const char *name = slash ? slash + 1 : path;
	char *dir = slash ? strndup(path, (size_t)(slash - path)) : NULL;
	int dfd, rc, e;

	if (!path || (slash && !dir))
		return ps_err_nomem(err);
	dfd = open(!slash	   ? "."
		   : slash == path ? "/"
				   : dir,
		   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	rc = dfd < 0 ? -1 : ps_state_write_at(dfd, name, data, len, mode);
	e = errno;
	if (dfd >= 0)
		close(dfd);
	if (rc < 0)
		return ps_err_set(err, PS_EXIT_FAIL, "io",
				  "check the directory's free space and "
				  "permissions; the file was left as it was",
				  "cannot write %s: %s", path, strerror(e));
	return 0;
}

static int save_in_sync(struct ps_state *st, int dfd, const char *sub,
			const char *id, const json_t *rec, int sync_dir,
			struct ps_err *err)
{
	char name[80];
	char *text, *line;
	int rc, e;

	if (!ps_state_valid_id(id))
		return bad_id(err, id);
	text = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return ps_err_nomem(err);
	snprintf(name, sizeof(name), "%s.json", id);
	line = asprintf(&line, "%s\n", text) < 0 ? NULL : line;
	free(text);
	if (!line)
		return ps_err_nomem(err);
	rc = write_at_sync(dfd, name, id, line, strlen(line), 0600, sync_dir);
	e = errno;
	free(line);
	if (rc)
		return ps_err_set(err, PS_EXIT_FAIL, "state-write",
				  "check the free space and permissions of the "
				  "state directory",
				  "cannot save %s %s in %s/%s: %s",
				  strcmp(sub, "requests") ? "record"
							  : "request",
				  id, st->dir, sub, strerror(e));
	return 0;
}

static int save_in(struct ps_state *st, int dfd, const char *sub,
		   const char *id, const json_t *rec, struct ps_err *err)
{
	return save_in_sync(st, dfd, sub, id, rec, 1, err);
}

int ps_state_save(struct ps_state *st, const char *id, const json_t *rec,
		  struct ps_err *err)
{
	return save_in(st, st->reqfd, "requests", id, rec, err);
}

int ps_state_save_undoable(struct ps_state *st, const char *id,
			   const json_t *rec, struct ps_err *err)
{
	return save_in_sync(st, st->reqfd, "requests", id, rec, 0, err);
}

static void ident_of(const struct stat *sb, struct ps_state_ident *ident)
{
	memset(ident, 0, sizeof(*ident));
	ident->dev = sb->st_dev;
	ident->ino = sb->st_ino;
	ident->size = sb->st_size;
	ident->mtime = sb->st_mtim;
	ident->ctime = sb->st_ctim;
}

static const char damaged_hint[] =
    "look at the file: repair it, or move it out of the state directory "
    "when its request is over; until then nothing is done for a "
    "certificate it might be for";

/* A request record: an object with a known "state". */
static const char *bad_request(const json_t *rec)
{
	static const char *const states[] = { "unsubmitted", "pending",
					      "issued", "installed",
					      "rejected" };
	const char *s = json_string_value(json_object_get(rec, "state"));

	if (!s)
		return "it has no \"state\"";
	for (size_t i = 0; i < sizeof(states) / sizeof(*states); i++)
		if (!strcmp(s, states[i]))
			return NULL;
	return "its \"state\" is unknown";
}

/* Reads and parses dfd/NAME.json into *rec. On a damaged file (a
 * symlink, not a regular file, too big, not a JSON object, for a request
 * no known state) *raw gets what parsed (or NULL) and the error says
 * which file and why (code "state-damaged"). */
static int load_raw(struct ps_state *st, int dfd, const char *sub,
		    const char *id, json_t **rec, json_t **raw,
		    struct ps_state_ident *ident, struct ps_err *err)
{
	char name[80], *buf;
	const char *why = NULL;
	struct stat sb;
	json_error_t je;
	ssize_t got = 0;
	int fd, e;

	*rec = NULL;
	if (raw)
		*raw = NULL;
	if (!ps_state_valid_id(id))
		return bad_id(err, id);
	snprintf(name, sizeof(name), "%s.json", id);
	/* O_NONBLOCK: a FIFO planted there must not hang the reader. */
	fd = dfd < 0 ? -1
		     : openat(dfd, name,
			      O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && (errno == ENOENT || dfd < 0))
		return ps_err_set(err, PS_EXIT_FAIL, "no-such-request",
				  "list the pending requests with "
				  "ps-fetch --pending --dry-run",
				  "no %s %s in %s/%s",
				  strcmp(sub, "requests") ? "record"
							  : "request",
				  id, st->dir, sub);
	e = fd < 0 ? errno : 0;
	if (fd < 0 && e != ELOOP)
		return ps_err_set(err, PS_EXIT_FAIL, "state-read", NULL,
				  "cannot read %s/%s/%s: %s", st->dir, sub,
				  name, strerror(e));
	if (fd < 0)
		why = "it is a symlink";
	else if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
		why = "it is not a regular file";
	else if (sb.st_size > REC_MAX)
		why = "it is larger than 1 MiB";
	if (why) {
		if (fd >= 0)
			close(fd);
		return ps_err_set(err, PS_EXIT_FAIL, "state-damaged",
				  damaged_hint, "refusing %s/%s/%s: %s",
				  st->dir, sub, name, why);
	}
	if (ident)
		ident_of(&sb, ident);
	buf = malloc((size_t)sb.st_size + 1);
	while (buf && got < sb.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)(sb.st_size - got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
	}
	close(fd);
	if (!buf)
		return ps_err_nomem(err);
	*rec = json_loadb(buf, (size_t)got, 0, &je);
	free(buf);
	if (!*rec || !json_is_object(*rec))
		why = "it is not a JSON object (truncated?)";
	else if (!strcmp(sub, "requests"))
		why = bad_request(*rec);
	if (why) {
		if (raw && json_is_object(*rec))
			*raw = *rec;
		else
			json_decref(*rec);
		*rec = NULL;
		return ps_err_set(err, PS_EXIT_FAIL, "state-damaged",
				  damaged_hint,
				  "the file %s/%s/%s is damaged: %s", st->dir,
				  sub, name, why);
	}
	return 0;
}

static int load_in(struct ps_state *st, int dfd, const char *sub,
		   const char *id, json_t **rec, struct ps_state_ident *ident,
		   struct ps_err *err)
{
	return load_raw(st, dfd, sub, id, rec, NULL, ident, err);
}

int ps_state_load(struct ps_state *st, const char *id, json_t **rec,
		  struct ps_err *err)
{
	return load_in(st, st->reqfd, "requests", id, rec, NULL, err);
}

int ps_state_load_ident(struct ps_state *st, const char *id, json_t **rec,
			struct ps_state_ident *ident, struct ps_err *err)
{
	return load_in(st, st->reqfd, "requests", id, rec, ident, err);
}

int ps_state_unchanged(struct ps_state *st, const char *id,
		       const struct ps_state_ident *ident)
{
	char name[80];
	struct stat sb;
	struct ps_state_ident now;

	if (!ps_state_valid_id(id))
		return 0;
	snprintf(name, sizeof(name), "%s.json", id);
	if (fstatat(st->reqfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISREG(sb.st_mode))
		return 0;
	ident_of(&sb, &now);
	return now.dev == ident->dev && now.ino == ident->ino &&
	       now.size == ident->size &&
	       now.mtime.tv_sec == ident->mtime.tv_sec &&
	       now.mtime.tv_nsec == ident->mtime.tv_nsec &&
	       now.ctime.tv_sec == ident->ctime.tv_sec &&
	       now.ctime.tv_nsec == ident->ctime.tv_nsec;
}

static int sub_fd(struct ps_state *st, const char *sub, struct ps_err *err)
{
	int fd;

	if (!ps_state_valid_id(sub)) {
		bad_id(err, sub);
		return -1;
	}
	fd = open_sub(st->dirfd, sub, !st->read_only);
	if (fd < 0 && st->read_only && errno == ENOENT) {
		/* Read-only: a sub-directory not made yet holds nothing. */
		ps_err_set(err, PS_EXIT_FAIL, "no-such-request", NULL,
			   "no %s/%s", st->dir, sub);
		return -2;
	}
	if (fd < 0)
		ps_err_set(err, PS_EXIT_USAGE, "bad-state-dir", dir_hint,
			   "refusing %s/%s: %s", st->dir, sub, strerror(errno));
	return fd;
}

int ps_state_put(struct ps_state *st, const char *sub, const char *name,
		 const json_t *rec, struct ps_err *err)
{
	int fd = sub_fd(st, sub, err), rc;

	if (fd < 0)
		return err ? err->status : PS_EXIT_USAGE;
	rc = save_in(st, fd, sub, name, rec, err);
	close(fd);
	return rc;
}

int ps_state_get(struct ps_state *st, const char *sub, const char *name,
		 json_t **rec, struct ps_err *err)
{
	int fd = sub_fd(st, sub, err), rc;

	*rec = NULL;
	if (fd < 0)
		return err ? err->status : PS_EXIT_USAGE;
	rc = load_in(st, fd, sub, name, rec, NULL, err);
	close(fd);
	return rc;
}

/* 1 when file is a temporary file save_in() made for name.json:
 * a dot, the name, the pid, eight random characters and ".tmp". */
static int temp_of(const char *file, const char *name)
{
	size_t n = strlen(name), d;

	if (file[0] != '.' || strncmp(file + 1, name, n) || file[n + 1] != '.')
		return 0;
	file += n + 2;
	d = strspn(file, "0123456789");
	if (d == 0 || file[d] != '.' ||
	    strspn(file + d + 1, "0123456789abcdef") != 8)
		return 0;
	return !strcmp(file + d + 9, ".tmp");
}

int ps_state_del(struct ps_state *st, const char *sub, const char *name,
		 struct ps_err *err)
{
	char file[80];
	int fd = sub_fd(st, sub, err), dup_fd, rc = 0;
	DIR *d;
	struct dirent *de;

	if (fd < 0)
		return err ? err->status : PS_EXIT_USAGE;
	if (!ps_state_valid_id(name)) {
		close(fd);
		return bad_id(err, name);
	}
	snprintf(file, sizeof(file), "%s.json", name);
	if (unlinkat(fd, file, 0) < 0 && errno != ENOENT)
		rc = ps_err_set(err, PS_EXIT_FAIL, "state-write", NULL,
				"cannot remove %s/%s/%s: %s", st->dir, sub,
				file, strerror(errno));
	/* What a save killed before its rename left. */
	dup_fd = dup(fd);
	d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d && dup_fd >= 0)
		close(dup_fd);
	for (de = d ? readdir(d) : NULL; de; de = readdir(d))
		if (temp_of(de->d_name, name))
			unlinkat(fd, de->d_name, 0);
	if (d)
		closedir(d);
	fsync(fd);
	close(fd);
	return rc;
}

int ps_state_remove(struct ps_state *st, const char *id, struct ps_err *err)
{
	char name[80];

	if (!ps_state_valid_id(id))
		return bad_id(err, id);
	snprintf(name, sizeof(name), "%s.json", id);
	if (unlinkat(st->reqfd, name, 0) < 0 && errno != ENOENT)
		return ps_err_set(err, PS_EXIT_FAIL, "state-write", NULL,
				  "cannot remove request %s: %s", id,
				  strerror(errno));
	fsync(st->reqfd);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names NAME of dfd's NAME.json files, sorted; dfd stays open. */
static int list_in(struct ps_state *st, int dfd, const char *sub, char ***ids,
		   size_t *n, struct ps_err *err)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	char **v = NULL;
	size_t k = 0, cap = 0;

	*ids = NULL;
	*n = 0;
	if (dfd < 0 && st->read_only)
		return 0; /* not made yet: empty */
	if (!d) {
		if (fd >= 0)
			close(fd);
		return ps_err_set(err, PS_EXIT_FAIL, "state-read", NULL,
				  "cannot list %s/%s: %s", st->dir, sub,
				  strerror(errno));
	}
	for (de = readdir(d); de; de = readdir(d)) {
		size_t len = strlen(de->d_name);
		char *id;

		if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		id = strndup(de->d_name, len - 5);
		if (!id || !ps_state_valid_id(id)) {
			free(id);
			continue;
		}
		if (k == cap) {
			char **nv =
			    realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*v));
			if (!nv) {
				free(id);
				break;
			}
			v = nv;
		}
		v[k++] = id;
	}
	closedir(d);
	if (k > 1)
		qsort(v, k, sizeof(*v), cmp_str);
	*ids = v;
	*n = k;
	return 0;
}

int ps_state_list(struct ps_state *st, char ***ids, size_t *n,
		  struct ps_err *err)
{
	return list_in(st, st->reqfd, "requests", ids, n, err);
}

int ps_state_list_sub(struct ps_state *st, const char *sub, char ***ids,
		      size_t *n, struct ps_err *err)
{
	int fd = sub_fd(st, sub, err), rc;

	*ids = NULL;
	*n = 0;
	if (fd == -2) {
		ps_err_clear(err);
		return 0;
	}
	if (fd < 0)
		return err ? err->status : PS_EXIT_USAGE;
	rc = list_in(st, fd, sub, ids, n, err);
	close(fd);
	return rc;
}

int ps_state_each(struct ps_state *st, const char *sub, const json_t *skip,
		  ps_state_each_fn fn, void *ctx, struct ps_err *err)
{
	char **names;
	size_t n;
	int dfd = -1, rc;

	if (!sub || !strcmp(sub, "requests")) {
		sub = "requests";
		rc = list_in(st, st->reqfd, sub, &names, &n, err);
	} else {
		dfd = sub_fd(st, sub, err);
		if (dfd == -2) {
			ps_err_clear(err);
			return 0;
		}
		if (dfd < 0)
			return err ? err->status : PS_EXIT_USAGE;
		rc = list_in(st, dfd, sub, &names, &n, err);
	}
	for (size_t i = 0; !rc && i < n; i++) {
		struct ps_state_file f;
		json_t *raw = NULL;
		char *path = NULL;

		if (json_object_get(skip, names[i]))
			continue;
		memset(&f, 0, sizeof(f));
		f.sub = sub;
		f.name = names[i];
		if (load_raw(st, dfd >= 0 ? dfd : st->reqfd, sub, names[i],
			     &f.rec, &raw, &f.ident, &f.err) &&
		    !strcmp(f.err.code, "no-such-request"))
			continue; /* gone meanwhile: finished */
		if (!f.rec) {
			path = ps_state_path(st, sub, names[i]);
			f.path = path;
			f.for_sha256 = json_string_value(
			    json_object_get(raw, "old_sha256"));
		}
		rc = fn(ctx, &f);
		json_decref(f.rec);
		json_decref(raw);
		free(path);
	}
	ps_state_list_free(names, n);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

char *ps_state_path(const struct ps_state *st, const char *sub,
		    const char *name)
{
	char *p = NULL;

	return asprintf(&p, "%s/%s/%s.json", st->dir, sub ? sub : "requests",
			name) < 0
		   ? NULL
		   : p;
}

json_t *ps_state_damaged_record(const struct ps_state_file *f)
{
	json_t *r = ps_record_error(&f->err);

	if (!r)
		return NULL;
	ps_json_set_str(r, "file", f->path);
	if (!strcmp(f->sub, "requests"))
		ps_json_set_str(r, "request_id", f->name);
	return r;
}

void ps_state_list_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

int ps_state_lock(struct ps_state *st, const char *name, int wait, int *fd,
		  struct ps_err *err)
{
	char file[90];

	*fd = -1;
	if (!ps_state_valid_id(name))
		return bad_id(err, name);
	if (st->read_only)
		return 0; /* it only reads: what it reads is saved whole */
	snprintf(file, sizeof(file), "%s.lock", name);
	*fd = openat(st->lockfd, file,
		     O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd < 0)
		return ps_err_set(err, PS_EXIT_FAIL, "state-lock", NULL,
				  "cannot open lock %s/locks/%s: %s", st->dir,
				  file, strerror(errno));
	while (flock(*fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		int e = errno;

		if (e == EINTR)
			continue;
		close(*fd);
		*fd = -1;
		errno = e;
		if (e == EWOULDBLOCK)
			return ps_err_set(err, PS_EXIT_PENDING, "busy", NULL,
					  "%s is being worked on by another "
					  "process",
					  name);
		return ps_err_set(err, PS_EXIT_FAIL, "state-lock", NULL,
				  "cannot lock %s: %s", name, strerror(errno));
	}
	return 0;
}

void ps_state_lock_remove(struct ps_state *st, const char *name)
{
	char file[90];

	if (!ps_state_valid_id(name))
		return;
	snprintf(file, sizeof(file), "%s.lock", name);
	unlinkat(st->lockfd, file, 0);
}

void ps_state_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* Blobs ------------------------------------------------------------------ */

/* Reads a regular file of ours of at most max bytes, never through a
 * symlink. 1 read, 0 missing, -1 error (errno). */
static int read_small(int dfd, const char *name, size_t max,
		      unsigned char **buf, size_t *len)
{
	struct stat sb;
	size_t got = 0;
	int fd =
	    openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	*buf = NULL;
	*len = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    (size_t)sb.st_size > max || sb.st_uid != geteuid()) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	*buf = malloc((size_t)sb.st_size + 1);
	while (*buf && got < (size_t)sb.st_size) {
		ssize_t r = read(fd, *buf + got, (size_t)sb.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!*buf || got != (size_t)sb.st_size) {
		errno = *buf ? EIO : ENOMEM;
		free(*buf);
		*buf = NULL;
		return -1;
	}
	*len = got;
	return 1;
}

/* 1 when dfd/name holds exactly data, 0 when it is missing, -1 when it
 * holds something else (or is not a file of ours). */
static int same_blob(int dfd, const char *name, const void *data, size_t len)
{
	unsigned char *buf;
	size_t got;
	int rc = read_small(dfd, name, len, &buf, &got);

	if (rc <= 0)
		return rc == 0 ? 0 : -1;
	rc = got == len && memcmp(buf, data, len) == 0 ? 1 : -1;
	free(buf);
	return rc;
}

int ps_state_blob_keep(struct ps_state *st, const char *sub,
		       const char *const *names, size_t n, const void *data,
		       size_t len, size_t *which, struct ps_err *err)
{
	int fd = ps_state_valid_id(sub) ? open_sub(st->dirfd, sub, 1) : -1;
	int same = -1, e = 0;
	size_t k;

	if (fd < 0)
		return ps_err_set(err, PS_EXIT_FAIL, "state-write",
				  "the state directory must be yours, mode "
				  "0700",
				  "cannot use %s/%s: %s", st->dir, sub,
				  strerror(errno));
	for (k = 0; k < n && same < 0; k++)
		same = ps_state_valid_id(names[k])
			   ? same_blob(fd, names[k], data, len)
			   : -1;
	if (same == 0 &&
	    ps_state_write_at(fd, names[k - 1], data, len, 0600) < 0)
		e = errno;
	close(fd);
	if (same < 0)
		return ps_err_set(err, PS_EXIT_FAIL, "state-write", NULL,
				  "cannot keep it in %s/%s: other files have "
				  "its name",
				  st->dir, sub);
	if (e)
		return ps_err_set(err, PS_EXIT_FAIL, "state-write",
				  "check the free space and permissions of "
				  "the state directory",
				  "cannot write %s/%s/%s: %s", st->dir, sub,
				  names[k - 1], strerror(e));
	*which = k - 1;
	return 0;
}

int ps_state_blob_get(struct ps_state *st, const char *sub, const char *name,
		      size_t max, unsigned char **buf, size_t *len)
{
	int fd, rc;

	*buf = NULL;
	*len = 0;
	if (!ps_state_valid_id(sub) || !ps_state_valid_id(name)) {
		errno = EINVAL;
		return -1;
	}
	fd = open_sub(st->dirfd, sub, 0);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	rc = read_small(fd, name, max, buf, len);
	close(fd);
	return rc;
}

int ps_state_blob_each(struct ps_state *st, const char *sub, size_t max,
		       ps_state_blob_fn fn, void *ctx)
{
	int fd = ps_state_valid_id(sub) ? open_sub(st->dirfd, sub, 0) : -1;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	for (de = readdir(d); de; de = readdir(d)) {
		char **v = names;

		if (!ps_state_valid_id(de->d_name))
			continue; /* ".", "..", temporary files */
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			v = realloc(names, cap * sizeof(*names));
		}
		if (!v)
			break;
		names = v;
		names[n] = strdup(de->d_name);
		if (names[n])
			n++;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n && !rc; i++) {
		unsigned char *buf;
		size_t len;

		if (read_small(dirfd(d), names[i], max, &buf, &len) == 1)
			rc = fn(ctx, names[i], buf, len);
		free(buf);
	}
	closedir(d);
	ps_state_list_free(names, n);
	return rc;
}

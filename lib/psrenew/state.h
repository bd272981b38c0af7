/* psrenew: pending requests on disk, crash-safe. */
#ifndef PSRENEW_STATE_H
#define PSRENEW_STATE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include <psrenew/config.h>
#include <psrenew/err.h>
#include <psrenew/export.h>

struct ps_state {
	char *dir;
	int dirfd, reqfd, lockfd;
	int read_only; /* opened with PS_STATE_READ_ONLY */
};

/* ps_state_open's create for a dry run: an existing directory, nothing
 * made in it (missing sub-directories read as empty), no lock taken. */
#define PS_STATE_READ_ONLY (-1)

/*
 * Opens (creating with mode 0700 when create is set) the state directory:
 * dir_opt, else the config's [defaults] state-dir, else $PSRENEW_STATE_DIR,
 * else $XDG_STATE_HOME/psrenew, else ~/.local/state/psrenew (root:
 * /var/lib/psrenew). A directory that is a symlink, not ours, or writable by
 * others is refused (exit 2); a missing one without create is "no-state-dir".
 */
PS_API int ps_state_open(const char *dir_opt, const struct ps_config *cfg,
			 int create, struct ps_state *st, struct ps_err *err);
PS_API void ps_state_close(struct ps_state *st);

/* A new request id: "YYYYMMDD-HHMMSS-" and 8 random hex digits. buf: at
 * least 32 bytes. */
void ps_state_new_id(char *buf, size_t len);
/* Ids are [A-Za-z0-9._-], 1 to 64 bytes, not starting with a dot. */
int ps_state_valid_id(const char *id);

/* Atomically replaces request id with rec: temp file (0600), fsync,
 * rename, fsync of the directory. Never follows symlinks. */
int ps_state_save(struct ps_state *st, const char *id, const json_t *rec,
		  struct ps_err *err);
/* The same without the fsync of the directory: for a save whose loss in
 * a crash of the system (the file as it was before, never half written)
 * a re-run repairs, as docs/RELIABILITY.md argues for each caller. */
int ps_state_save_undoable(struct ps_state *st, const char *id,
			   const json_t *rec, struct ps_err *err);
/* Exit 1 when missing (code "no-such-request"), damaged (code
 * "state-damaged": a symlink, not a regular file, not a JSON object, no
 * known "state"; the message names the file) or unreadable ("state-read"). */
int ps_state_load(struct ps_state *st, const char *id, json_t **rec,
		  struct ps_err *err);
int ps_state_remove(struct ps_state *st, const char *id, struct ps_err *err);

/* What tells one content of a request file from another: every save
 * replaces the file (another inode, another ctime), a change in place
 * moves its times. */
struct ps_state_ident {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};
/* ps_state_load, and the ident of the file it read. */
int ps_state_load_ident(struct ps_state *st, const char *id, json_t **rec,
			struct ps_state_ident *ident, struct ps_err *err);
/* 1 when request id's file is still the one of ident (a record read
 * then is still current), else 0. */
int ps_state_unchanged(struct ps_state *st, const char *id,
		       const struct ps_state_ident *ident);

/* Other records of the store, in sub-directories created on demand with
 * the same care: "jip" holds the serials confirmed in JIP
 * (jip/SERIAL_HEX.json, lib/jipconf.c: written by ps-jip-setserial, read
 * by ps-token-clean and ps-status --unregistered); "keygen" the key generations
 * under way (ps-renew's journal, see lib/renew.c); "imports" the PFX imports
 * under way (ps-pfx-import's, see lib/pfx_journal.c). */
int ps_state_put(struct ps_state *st, const char *sub, const char *name,
		 const json_t *rec, struct ps_err *err);
int ps_state_get(struct ps_state *st, const char *sub, const char *name,
		 json_t **rec, struct ps_err *err);
/* Removes sub/name.json (missing is no error) and the temporary files an
 * interrupted ps_state_put() of it left. */
int ps_state_del(struct ps_state *st, const char *sub, const char *name,
		 struct ps_err *err);
/* Every request id, sorted. */
int ps_state_list(struct ps_state *st, char ***ids, size_t *n,
		  struct ps_err *err);
/* Every name in sub-directory sub, sorted (ps_state_del removes one). */
int ps_state_list_sub(struct ps_state *st, const char *sub, char ***ids,
		      size_t *n, struct ps_err *err);
PS_API void ps_state_list_free(char **ids, size_t n);

/* One file of the store, as ps_state_each read it. */
struct ps_state_file {
	const char *sub;  /* "requests" or the sub-directory */
	const char *name; /* NAME of NAME.json: the request id */
	json_t *rec;	  /* the record (borrowed); NULL: unreadable */
	struct ps_state_ident ident;
	/* When rec is NULL: why (code "state-damaged" or "state-read", the
	 * message naming the file), the file's path, and the "old_sha256"
	 * it names when it is JSON that tells (NULL: it might be for any
	 * certificate). */
	struct ps_err err;
	const char *path;
	const char *for_sha256;
};
typedef int (*ps_state_each_fn)(void *ctx, const struct ps_state_file *f);
/*
 * Reads every file of sub (NULL: the requests) in name order and hands each
 * to fn, the readable and the unreadable ones: the one place that lists the
 * store, so that every reader reports a damaged file instead of skipping
 * it. A file removed meanwhile is skipped, and so is every name in skip (a
 * JSON object used as a set; may be NULL). A non-zero return of fn stops
 * the walk and is returned.
 */
int ps_state_each(struct ps_state *st, const char *sub, const json_t *skip,
		  ps_state_each_fn fn, void *ctx, struct ps_err *err);
/* The error record of an unreadable file f: code, message, hint, "file"
 * and, for a request, "request_id". */
json_t *ps_state_damaged_record(const struct ps_state_file *f);
/* "DIR/SUB/NAME.json" (malloc'ed; sub NULL: the requests). */
char *ps_state_path(const struct ps_state *st, const char *sub,
		    const char *name);

/*
 * The state store's safe writer, for any file psrenew writes: dfd/name is
 * replaced atomically by data (a temporary file with a name of its own
 * created with O_CREAT|O_EXCL|O_NOFOLLOW and mode in the same directory,
 * written, fsync'ed, renamed over name, the directory fsync'ed). Never
 * writes through a symlink. -1 with errno set.
 */
int ps_state_write_at(int dfd, const char *name, const void *data, size_t len,
		      mode_t mode);
/* The same for a path (its directory is opened as given); exit 1, code
 * "io", when it fails, the file left as it was. */
int ps_state_write_file(const char *path, const void *data, size_t len,
			mode_t mode, struct ps_err *err);

/*
 * Blobs: files of bytes, not records, in a sub-directory sub of the store
 * (made and checked as the store's own), such as the copies of the
 * certificates ps-token-clean removed, "removed/SERIAL_HEX.der". Names
 * are ids ([A-Za-z0-9._-], not starting with a dot).
 *
 * ps_state_blob_keep keeps data under the first of names[0..n-1] that
 * holds exactly data already or is free (then written with the safe
 * writer, mode 0600); *which says which. Exit 1, code "state-write", when
 * sub cannot be used, the write fails, or every name holds something
 * else; nothing is changed then.
 */
int ps_state_blob_keep(struct ps_state *st, const char *sub,
		       const char *const *names, size_t n, const void *data,
		       size_t len, size_t *which, struct ps_err *err);
/* Reads sub/name, a regular file of ours of at most max bytes (never
 * through a symlink): 1 with *buf (malloc'ed) and *len, 0 when it is
 * missing, -1 (errno) when it cannot be read. */
int ps_state_blob_get(struct ps_state *st, const char *sub, const char *name,
		      size_t max, unsigned char **buf, size_t *len);
/* Hands every blob of sub that ps_state_blob_get reads (at most max bytes)
 * to fn, in name order; a non-zero return of fn stops the walk and is
 * returned. A missing sub holds none. */
typedef int (*ps_state_blob_fn)(void *ctx, const char *name,
				const unsigned char *data, size_t len);
int ps_state_blob_each(struct ps_state *st, const char *sub, size_t max,
		       ps_state_blob_fn fn, void *ctx);

/*
 * An exclusive lock named name (a request id or "cert-<sha256>"). With
 * wait == 0 a lock held by another process gives exit 3 (code "busy").
 * *fd is released with ps_state_unlock.
 */
int ps_state_lock(struct ps_state *st, const char *name, int wait, int *fd,
		  struct ps_err *err);
void ps_state_unlock(int fd);
/* Removes the file of lock name (held by the caller, whose work is over:
 * a later ps_state_lock of the name makes a new one). */
void ps_state_lock_remove(struct ps_state *st, const char *name);

#endif

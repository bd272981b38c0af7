/* psrenew: records. JSON Lines on stdout for programs, a table for people. */
#ifndef PSRENEW_RECORD_H
#define PSRENEW_RECORD_H

#include <stdio.h>

#include <jansson.h>

#include <psrenew/err.h>
#include <psrenew/export.h>

enum ps_out_mode { PS_OUT_AUTO = 0, PS_OUT_JSON, PS_OUT_HUMAN, PS_OUT_NONE };

struct ps_out;

/* AUTO: a table when f is a terminal, JSON Lines otherwise. */
PS_API struct ps_out *ps_out_new(FILE *f, int mode);
PS_API int ps_out_is_json(const struct ps_out *o);
/* Writes one record (borrowed). JSON records are written and flushed at
 * once; table rows are kept until ps_out_finish(). Returns 0 or -1 when the
 * output cannot be written. */
PS_API int ps_out_emit(struct ps_out *o, const json_t *rec);
/* Prints the table (human mode) and frees o. Returns -1 on a write error
 * (errno: the first one). */
PS_API int ps_out_finish(struct ps_out *o);

/* {"kind":"error","code":...,"status":N,"message":...,"hint":...} */
PS_API json_t *ps_record_error(const struct ps_err *err);

/* Reading records from a stream: one JSON object per line, each with a
 * string "kind". Lines are bounded (1 MiB); blank lines are skipped. */
struct ps_in;
PS_API struct ps_in *ps_in_new(FILE *f);
PS_API void ps_in_free(struct ps_in *in);
/* The next record (new reference), or NULL at the end (err untouched) or on
 * bad input (exit 1, err names the line). */
PS_API json_t *ps_in_next(struct ps_in *in, struct ps_err *err);

/* Where a record goes: written, or handed to whatever prints them. */
typedef int (*ps_emit_fn)(void *ctx, const json_t *rec);

/*
 * The stdin loop of every binary that reads records. take gets each record
 * that is not an error record (borrowed: json_incref to keep it) and
 * returns 1 when it used it, 0 when it is not its kind: then the record is
 * passed on through emit unchanged. Upstream error records are passed on
 * and their status folded into worst (the most severe wins, as in a batch;
 * one without a status counts as failed).
 */
struct ps_in_loop {
	int (*take)(struct ps_in_loop *l, json_t *rec);
	void *ctx;	 /* the binary's, for take */
	ps_emit_fn emit; /* where passed-on records go */
	void *emit_ctx;
	int worst; /* 0, or the worst status of the error records */
};

/* Reads every record of f through l. Returns 0, or the status of bad input
 * (err names the line; the records before it were handled). */
int ps_in_each(FILE *f, struct ps_in_loop *l, struct ps_err *err);
/* 1 when input waits on fd (a file not read to its end, or a pipe or socket
 * with data now): records that the options made a run ignore. Never
 * blocks: a pipe nobody writes to is left alone. */
int ps_in_unread(int fd);

/* Copies into dst every field of src that psrenew does not define and dst
 * lacks (a "user" or "office" field an administrator added, say). */
PS_API int ps_record_pass_through(json_t *dst, const json_t *src);

/* Helpers that keep record building short. */
int ps_json_set_str(json_t *o, const char *key, const char *value);
const char *ps_json_str(const json_t *o, const char *key);

#endif

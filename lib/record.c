/* psrenew: JSON Lines records (jansson) and the human table. */
#include <psrenew/record.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_BYTES (1 << 20)

struct column {
	const char *head;
	const char *field;
};

/* Table layout per record kind; other kinds are printed as key=value. */
static const struct column cert_cols[] = {
	{ "TOKEN", "token_label" },
	{ "TYPE", "type" },
	{ "SERIAL", "serial_hex" },
	{ "NOT AFTER", "not_after" },
	{ "DAYS", "days_left" },
	{ "KEY", "has_key" },
	{ "STATE", "state" },
	{ "HOLDER", "cn" },
	{ NULL, NULL },
};

/* Cert records of seals (QcType eseal): an organisation's, not a
 * person's; shown in a table of their own, after the personal ones. */
static const struct column seal_cols[] = {
	{ "TOKEN", "token_label" }, { "TYPE", "type" },
	{ "SERIAL", "serial_hex" }, { "NOT AFTER", "not_after" },
	{ "DAYS", "days_left" },    { "KEY", "has_key" },
	{ "STATE", "state" },	    { "SEAL", "cn" },
	{ "ID", "holder_id" },	    { NULL, NULL },
};

/* ps-status --modules */
static const struct column module_cols[] = {
	{ "MODULE", "name" },	  { "VENDOR", "vendor" }, { "USED", "used" },
	{ "ALLOWED", "allowed" }, { "PATH", "path" },	  { NULL, NULL },
};

static const struct column request_cols[] = {
	{ "REQUEST", "request_id" },
	{ "STATE", "state" },
	{ "TYPE", "type" },
	{ "HOLDER", "cn" },
	{ "TOKEN", "token_label" },
	{ "REPLACES", "old_serial_hex" },
	{ "CA", "ca_answer" },
	{ "NEXT POLL", "next_poll_at" },
	{ NULL, NULL },
};

/* ps-token-clean: what is (or would be) removed, and the room it makes. */
static const struct column removed_cols[] = {
	{ "TOKEN", "token_label" },
	{ "CLASS", "class" },
	{ "REASON", "reason" },
	{ "TYPE", "type" },
	{ "SERIAL", "serial_hex" },
	{ "HOLDER", "cn" },
	{ "LABEL", "label" },
	{ "ID", "id" },
	{ NULL, NULL },
};

static const struct column space_cols[] = {
	{ "TOKEN", "token_label" },	{ "OBJECTS", "objects" },
	{ "REFUSED", "refused" },	{ "FREE BEFORE", "free_before" },
	{ "FREE AFTER", "free_after" }, { "ROOM BEFORE", "room_before" },
	{ "ROOM AFTER", "room_after" }, { NULL, NULL },
};

/* ps-jip-setserial: a serial registered, and (--list) what JIP has. */
static const struct column jip_cols[] = {
	{ "USER", "user" },
	{ "TYPE", "type" },
	{ "SERIAL", "serial_hex" },
	{ "RESULT", "result" },
	{ "REMOVED", "removed_serial_hex" },
	{ "LOGIN", "login_verified" },
	{ "CA", "ca" },
	{ NULL, NULL },
};

static const struct column jip_entry_cols[] = {
	{ "USER", "user" },
	{ "TYPE", "type" },
	{ "NUMBER", "number" },
	{ "MARK", "mark" },
	{ "NOT AFTER", "not_after" },
	{ "TOKEN", "token_label" },
	{ "CA", "ca" },
	{ NULL, NULL },
};

static const struct {
	const char *kind;
	const struct column *cols;
} layouts[] = {
	{ "cert", cert_cols },		 { "seal", seal_cols },
	{ "request", request_cols },	 { "module", module_cols },
	{ "removed", removed_cols },	 { "removable", removed_cols },
	{ "space", space_cols },	 { "jip", jip_cols },
	{ "jip-entry", jip_entry_cols },
};

struct row {
	char **cells;
};

struct table {
	const char *kind;
	const struct column *cols;
	size_t ncols;
	struct row *rows;
	size_t nrows, cap;
};

struct ps_out {
	FILE *f;
	int json;
	int none;   /* stdout belongs to something else (mail:-) */
	int failed; /* 0, or the errno of the first failed write */
	struct table *tables;
	size_t ntables;
};

struct ps_out *ps_out_new(FILE *f, int mode)
{
	struct ps_out *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->f = f;
	o->none = mode == PS_OUT_NONE;
	if (mode == PS_OUT_AUTO)
		o->json = !isatty(fileno(f));
	else
		o->json = mode == PS_OUT_JSON;
	return o;
}

int ps_out_is_json(const struct ps_out *o)
{
	return o->json;
}

/* Display width of a UTF-8 string: code points (good enough for Czech). */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xC0) != 0x80;
	return w;
}

static char *cell_text(const json_t *v)
{
	char *s = NULL;

	if (!v || json_is_null(v))
		return strdup("-");
	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_true(v))
		return strdup("yes");
	if (json_is_false(v))
		return strdup("no");
	if (json_is_integer(v)) {
		if (asprintf(&s, "%lld", (long long)json_integer_value(v)) < 0)
			return NULL;
		return s;
	}
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static struct table *table_for(struct ps_out *o, const char *kind)
{
	struct table *t;

	for (size_t i = 0; i < o->ntables; i++)
		if (strcmp(o->tables[i].kind, kind) == 0)
			return &o->tables[i];
	for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
		if (strcmp(layouts[i].kind, kind) != 0)
			continue;
		t = realloc(o->tables, (o->ntables + 1) * sizeof(*t));
		if (!t)
			return NULL;
		o->tables = t;
		t = &o->tables[o->ntables++];
		memset(t, 0, sizeof(*t));
		t->kind = layouts[i].kind;
		t->cols = layouts[i].cols;
		while (t->cols[t->ncols].head)
			t->ncols++;
		return t;
	}
	return NULL;
}

static int add_row(struct table *t, const json_t *rec)
{
	struct row r;

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 32;
		struct row *nr = realloc(t->rows, cap * sizeof(*nr));

		if (!nr)
			return -1;
		t->rows = nr;
		t->cap = cap;
	}
	r.cells = calloc(t->ncols, sizeof(char *));
	if (!r.cells)
		return -1;
	for (size_t c = 0; c < t->ncols; c++)
		r.cells[c] = cell_text(json_object_get(rec, t->cols[c].field));
	t->rows[t->nrows++] = r;
	return 0;
}

/* A record of a kind without a table layout: "kind: key=value ...". */
static int print_plain(FILE *f, const json_t *rec)
{
	const char *key;
	json_t *v;

	fprintf(f, "%s:",
		ps_json_str(rec, "kind") ? ps_json_str(rec, "kind") : "record");
	json_object_foreach ((json_t *)rec, key, v) {
		char *s;

		if (strcmp(key, "kind") == 0)
			continue;
		s = cell_text(v);
		fprintf(f, " %s=%s", key, s ? s : "?");
		free(s);
	}
	return fputc('\n', f) == EOF ? -1 : 0;
}

int ps_out_emit(struct ps_out *o, const json_t *rec)
{
	const char *kind = ps_json_str(rec, "kind");
	struct table *t;

	if (o->none)
		return 0;
	if (o->json) {
		if (json_dumpf(rec, o->f, JSON_COMPACT) < 0 ||
		    fputc('\n', o->f) == EOF || fflush(o->f) == EOF)
			o->failed = o->failed ? o->failed : errno ? errno : EIO;
		return o->failed ? -1 : 0;
	}
	if (kind && strcmp(kind, "error") == 0)
		return 0; /* errors go to stderr in human mode */
	if (kind && !strcmp(kind, "cert") &&
	    !strcmp(ps_json_str(rec, "qc_type") ? ps_json_str(rec, "qc_type")
						: "",
		    "eseal"))
		kind = "seal";
	t = kind ? table_for(o, kind) : NULL;
	if (!t)
		return print_plain(o->f, rec);
	return add_row(t, rec);
}

static void print_table(FILE *f, const struct table *t)
{
	size_t w[16] = { 0 };

	for (size_t c = 0; c < t->ncols && c < 16; c++) {
		w[c] = width(t->cols[c].head);
		for (size_t r = 0; r < t->nrows; r++)
			if (t->rows[r].cells[c] &&
			    width(t->rows[r].cells[c]) > w[c])
				w[c] = width(t->rows[r].cells[c]);
	}
	for (size_t c = 0; c < t->ncols; c++)
		fprintf(f, "%s%-*s", c ? "  " : "",
			c + 1 < t->ncols ? (int)w[c] : 0, t->cols[c].head);
	fputc('\n', f);
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s =
			    t->rows[r].cells[c] ? t->rows[r].cells[c] : "?";
			size_t pad = w[c] - width(s);

			fprintf(f, "%s%s", c ? "  " : "", s);
			if (c + 1 < t->ncols)
				fprintf(f, "%*s", (int)pad, "");
		}
		fputc('\n', f);
	}
}

int ps_out_finish(struct ps_out *o)
{
	int rc;

	if (!o)
		return 0;
	/* seals after everything else, a blank line between */
	for (size_t i = 0; i < o->ntables && !o->json; i++)
		if (strcmp(o->tables[i].kind, "seal"))
			print_table(o->f, &o->tables[i]);
	for (size_t i = 0; i < o->ntables && !o->json; i++)
		if (!strcmp(o->tables[i].kind, "seal")) {
			if (o->ntables > 1)
				fputc('\n', o->f);
			print_table(o->f, &o->tables[i]);
		}
	for (size_t i = 0; i < o->ntables; i++) {
		struct table *t = &o->tables[i];

		for (size_t r = 0; r < t->nrows; r++) {
			for (size_t c = 0; c < t->ncols; c++)
				free(t->rows[r].cells[c]);
			free(t->rows[r].cells);
		}
		free(t->rows);
	}
	free(o->tables);
	if ((fflush(o->f) == EOF || ferror(o->f)) && !o->failed)
		o->failed = errno ? errno : EIO;
	rc = o->failed ? -1 : 0;
	errno = o->failed; /* why, for the message */
	free(o);
	return rc;
}

json_t *ps_record_error(const struct ps_err *err)
{
	json_t *r = json_object();

	if (!r)
		return NULL;
	ps_json_set_str(r, "kind", "error");
	ps_json_set_str(r, "code", err->code[0] ? err->code : "error");
	json_object_set_new(r, "status", json_integer(err->status));
	ps_json_set_str(r, "message", err->msg);
	if (err->hint[0])
		ps_json_set_str(r, "hint", err->hint);
	return r;
}

struct ps_in {
	FILE *f;
	char *line;
	size_t cap;
	unsigned long lineno;
};

struct ps_in *ps_in_new(FILE *f)
{
	struct ps_in *in = calloc(1, sizeof(*in));

	if (in)
		in->f = f;
	return in;
}

void ps_in_free(struct ps_in *in)
{
	if (!in)
		return;
	free(in->line);
	free(in);
}

/* Reads one line of at most LINE_MAX_BYTES; 1 = got one, 0 = end, -1 =
 * too long. */
static int read_bounded_line(struct ps_in *in, size_t *len)
{
	int c = getc(in->f);
	size_t n = 0;

	for (; c != EOF && c != '\n'; c = getc(in->f)) {
		if (n + 1 >= in->cap) {
			size_t cap = in->cap ? in->cap * 2 : 4096;
			char *l;

			if (cap > LINE_MAX_BYTES + 1)
				return -1;
			l = realloc(in->line, cap);
			if (!l)
				return -1;
			in->line = l;
			in->cap = cap;
		}
		in->line[n++] = (char)c;
	}
	if (c == EOF && n == 0)
		return 0;
	if (!in->line) {
		in->line = malloc(1);
		if (!in->line)
			return -1;
		in->cap = 1;
	}
	in->line[n] = '\0';
	*len = n;
	return 1;
}

json_t *ps_in_next(struct ps_in *in, struct ps_err *err)
{
	for (;;) {
		json_error_t je;
		json_t *rec;
		size_t len = 0;
		int rc = read_bounded_line(in, &len);

		if (rc == 0)
			return NULL;
		in->lineno++;
		if (rc < 0) {
			ps_err_set(err, PS_EXIT_FAIL, "bad-record", NULL,
				   "input line %lu is longer than 1 MiB",
				   in->lineno);
			return NULL;
		}
		if (strspn(in->line, " \t\r") == len)
			continue;
		if (memchr(in->line, '\0', len)) {
			ps_err_set(
			    err, PS_EXIT_FAIL, "bad-record",
			    "the input must be records of another "
			    "psrenew tool (JSON Lines, see psrenew(7))",
			    "input line %lu has a NUL byte: binary data, "
			    "not a record",
			    in->lineno);
			return NULL;
		}
		rec = json_loadb(in->line, len, JSON_REJECT_DUPLICATES, &je);
		if (!rec || !json_is_object(rec) ||
		    !json_is_string(json_object_get(rec, "kind"))) {
			ps_err_set(
			    err, PS_EXIT_FAIL, "bad-record",
			    "the input must be records of another psrenew "
			    "tool (JSON Lines, see psrenew(7))",
			    "input line %lu is not a record: %s", in->lineno,
			    rec ? "no \"kind\"" : je.text);
			json_decref(rec);
			return NULL;
		}
		return rec;
	}
}

/* The status an upstream error record stands for: its "status", or
 * "failed" when it has none that psrenew(7) defines. */
static int upstream_status(const json_t *rec)
{
	json_t *st = json_object_get(rec, "status");

	if (!json_is_integer(st) || json_integer_value(st) <= 0 ||
	    json_integer_value(st) > PS_EXIT_TOKEN)
		return PS_EXIT_FAIL;
	return (int)json_integer_value(st);
}

int ps_in_each(FILE *f, struct ps_in_loop *l, struct ps_err *err)
{
	struct ps_in *in = ps_in_new(f);
	json_t *rec = in ? ps_in_next(in, err) : NULL;

	if (!in)
		return ps_err_nomem(err);
	for (; rec; rec = ps_in_next(in, err)) {
		if (!strcmp(ps_json_str(rec, "kind"), "error")) {
			l->emit(l->emit_ctx, rec);
			l->worst =
			    ps_exit_worse(l->worst, upstream_status(rec));
		} else if (!l->take || !l->take(l, rec)) {
			l->emit(l->emit_ctx, rec); /* not its: passed on */
		}
		json_decref(rec);
	}
	ps_in_free(in);
	return err->status;
}

/* Fields psrenew(7) defines for some record kind: they describe the record
 * they are in, so they are never carried over into another record. */
static const char *const suite_fields[] = {
	"kind",
	"module",
	"token",
	"token_label",
	"uri",
	"id",
	"label",
	"subject",
	"cn",
	"email",
	"issuer",
	"serial_hex",
	"serial_dec",
	"type",
	"jip_ca",
	"not_before",
	"not_after",
	"days_left",
	"state",
	"has_key",
	"superseded_by",
	"key_type",
	"sha256",
	"request_id",
	"ca",
	"channel",
	"key_id",
	"key_label",
	"old_id",
	"old_serial_hex",
	"old_serial_dec",
	"old_issuer",
	"old_not_after",
	"old_sha256",
	"old_cert",
	"csr",
	"cert",
	"cookie",
	"created_at",
	"updated_at",
	"submitted_at",
	"next_poll_at",
	"polls",
	"ca_answer",
	"key_removed",
	"key_kept",
	"code",
	"status",
	"message",
	"hint",
	"replaces_serial_hex",
	"installed_at",
	"new_serial_hex",
	"rejected_cert",
	"already_installed",
	"warning",
	"request_id",
	"key_generated",
	"login_verified",
	"confirmed_at",
	"result",
	"dry_run",
	"class",
	"reason",
	"backup",
	"removed_at",
	"jip_confirmation",
	"jip_serial_hex",
	"objects",
	"refused",
	"free_before",
	"free_after",
	"room_before",
	"room_after",
	"estimated",
	"for_room",
	"removed_serial_hex",
	"number",
	"mark",
};

static int suite_field(const char *key)
{
	for (size_t i = 0; i < sizeof(suite_fields) / sizeof(*suite_fields);
	     i++)
		if (strcmp(key, suite_fields[i]) == 0)
			return 1;
	return 0;
}

int ps_record_pass_through(json_t *dst, const json_t *src)
{
	const char *key;
	json_t *v;

	json_object_foreach ((json_t *)src, key, v) {
		if (!suite_field(key) && !json_object_get(dst, key) &&
		    json_object_set(dst, key, v) < 0)
			return -1;
	}
	return 0;
}

int ps_json_set_str(json_t *o, const char *key, const char *value)
{
	json_t *v;
	char *copy;

	if (!value)
		return json_object_set_new(o, key, json_null());
	v = json_string(value);
	if (v)
		return json_object_set_new(o, key, v);
	/* Not UTF-8 (a token label, say): keep ASCII, mark the rest. */
	copy = strdup(value);
	if (!copy)
		return -1;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(copy);
	free(copy);
	return json_object_set_new(o, key, v);
}

const char *ps_json_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

int ps_in_unread(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct stat sb;
	char c;

	if (isatty(fd) || fstat(fd, &sb) < 0)
		return 0;
	if (S_ISREG(sb.st_mode))
		return sb.st_size > lseek(fd, 0, SEEK_CUR);
	if (!S_ISFIFO(sb.st_mode) && !S_ISSOCK(sb.st_mode))
		return 0;
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) &&
	       read(fd, &c, 1) == 1;
}

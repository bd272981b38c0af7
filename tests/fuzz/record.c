/* libFuzzer harness "record": JSON Lines records on stdin (ps_in_next), as
 * every psrenew tool that reads a pipe sees them. Reads every record of the
 * input until the end or the first bad line, passes its unknown fields
 * through into a new record and writes it both as JSON and as a table row,
 * as the next tool of a pipeline would. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <psrenew/err.h>
#include <psrenew/record.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *sink;
	struct ps_out *json_out, *table_out;
	struct ps_in *in;
	struct ps_err err;
	json_t *rec;
	FILE *f;

	if (!sink && !(sink = fopen("/dev/null", "w")))
		abort();
	if (size == 0)
		return 0; /* fmemopen refuses an empty buffer */
	f = fmemopen((void *)data, size, "r");
	if (!f)
		abort();
	in = ps_in_new(f);
	json_out = ps_out_new(sink, PS_OUT_JSON);
	table_out = ps_out_new(sink, PS_OUT_HUMAN);
	if (!in || !json_out || !table_out)
		abort();
	ps_err_clear(&err);
	while ((rec = ps_in_next(in, &err)) != NULL) {
		json_t *next = json_object();

		if (!next)
			abort();
		json_object_set_new(next, "kind", json_string("cert"));
		ps_record_pass_through(next, rec);
		ps_out_emit(json_out, rec);
		ps_out_emit(table_out, rec);
		ps_out_emit(table_out, next);
		json_decref(next);
		json_decref(rec);
	}
	if (err.status) {
		/* A bad line: a clear error, which is a record too. */
		json_t *e = ps_record_error(&err);

		if (!err.msg[0] || !e)
			abort();
		ps_out_emit(json_out, e);
		json_decref(e);
	}
	ps_out_finish(json_out);
	ps_out_finish(table_out);
	ps_in_free(in);
	fclose(f);
	return 0;
}

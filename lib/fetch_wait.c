/* psrenew: a batch of requests fetched, polled again until done. */
#include <psrenew/fetch_wait.h>

#include <stdio.h>
#include <time.h>
#include <unistd.h>

/* The longest sleep between two passes, and the first. */
#define BACKOFF_MAX   300
#define BACKOFF_FIRST 2

/* One pass over cur: the unfinished requests to look at again go to left,
 * *next is when the earliest is due. Returns the pass's worst status. */
static int one_pass(struct ps_fetch *f, const json_t *cur, json_t *left,
		    time_t deadline, long wait, int force, time_t *next,
		    const struct ps_batch_hooks *h)
{
	int worst = 0;
	size_t i;
	json_t *v;

	if (h->start)
		h->start(h->ctx, json_array_size(cur));
	ps_fetch_poll_due(f, cur, force);
	json_array_foreach (cur, i, v) {
		json_t *out;
		time_t due;
		int rc, last;

		if (h->item) {
			char what[200];

			snprintf(what, sizeof(what), "request %s",
				 json_string_value(v));
			h->item(h->ctx, what);
		}
		rc = ps_fetch_request(f, json_string_value(v), force, &out,
				      &due);
		if (out && ps_json_str(out, "key_kept") && h->warn) {
			char why[600];

			snprintf(
			    why, sizeof(why),
			    "request %s: its key pair stays on the token: %s",
			    json_string_value(v), ps_json_str(out, "key_kept"));
			h->warn(h->ctx, why);
		}
		last = !due || wait < 0 || time(NULL) >= deadline;
		if (h->step)
			h->step(h->ctx, out);
		if (!last) {
			json_array_append(left, v);
			if (!*next || due < *next)
				*next = due;
		} else if (out) {
			h->emit(h->ctx, out);
		}
		json_decref(out);
		worst = ps_exit_worse(worst, rc);
	}
	if (h->end)
		h->end(h->ctx);
	return worst;
}

/* How long to sleep before the next pass: until next is due, at least
 * backoff, never past the deadline. */
static long sleep_for(time_t next, long backoff, time_t deadline)
{
	long s = (long)(next - time(NULL));

	if (s < backoff)
		s = backoff;
	if (time(NULL) + s > deadline)
		s = (long)(deadline - time(NULL));
	return s;
}

int ps_fetch_all(struct ps_fetch *f, const json_t *ids, long wait, int force,
		 const struct ps_batch_hooks *h)
{
	time_t deadline = wait >= 0 ? time(NULL) + wait : 0;
	long backoff = BACKOFF_FIRST;
	json_t *cur = json_incref((json_t *)ids);

	for (;;) {
		json_t *left = json_array();
		time_t next = 0;
		int worst =
		    one_pass(f, cur, left, deadline, wait, force, &next, h);
		long s;

		json_decref(cur);
		cur = left;
		if (json_array_size(cur) == 0 || ps_ca_interrupted()) {
			json_decref(cur);
			return worst;
		}
		s = sleep_for(next, backoff, deadline);
		backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
		if (h->info) {
			char what[120];

			snprintf(what, sizeof(what),
				 "%zu request(s) pending; next look in %ld s",
				 json_array_size(cur), s);
			h->info(h->ctx, what);
		}
		if (s > 0)
			sleep((unsigned)s);
		force = 0;
	}
}

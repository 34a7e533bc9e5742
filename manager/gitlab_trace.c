/*
 * A job's log and state towards GitLab: GitLab Runner's network/trace.go
 * (clientJobTrace) as a state machine on the event loop instead of a
 * goroutine.  The executor appends bytes; this file decides when to send
 * them and what each answer means.  See gitlab.h for the contract.
 *
 *   ACKING     the first PUT running (the two-phase commit's ack) is in
 *              flight.  Its answer is reported as GITLAB_TRACE_ACK.
 *   RUNNING    every interval one tick: a PATCH of at most patch_limit
 *              bytes from the acknowledged offset if there is anything
 *              new, else a keep-alive PUT running (with checksum and size)
 *              when no PATCH or PUT succeeded for the force-send interval.
 *              202 moves the offset; 416 moves it to GitLab's; 403 or
 *              Job-Status canceled/failed aborts (GITLAB_TRACE_ABORT,
 *              ticking stops); Job-Status canceling is reported once
 *              (GITLAB_TRACE_CANCEL); X-GitLab-Trace-Update-Interval
 *              changes the interval.
 *   FINISHING  finish() was called: the interval goes back to the default,
 *              the rest of the log goes out in patches back to back, then
 *              the final PUT.  200 → DONE ok; abort → DONE abort; 202 →
 *              wait the interval and repeat (log first); 412 → offset 0,
 *              wait, repeat; a failure (transport error, 5xx after the
 *              client's retries, 416 without progress) counts one round and
 *              waits a backoff from 1 s doubling to 60 min; after
 *              final_retry_limit rounds → DONE failed.
 *   DONE       nothing more is sent.
 *
 * One request at a time; a timer drives ticks and waits.  Callbacks may
 * free the trace: every emission checks whether it did.
 */
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "err.h"
#include "gitlab.h"
#include "gitlab_int.h"
#include "log.h"
#include "xmalloc.h"

#define MAX_ACCEPTED_ROUNDS 1000	/* 202s: GitLab gives up after 5 min */
#define MAX_RANGE_ROUNDS 10

enum phase { P_ACKING, P_RUNNING, P_FINISHING, P_DONE };

struct gitlab_trace {
	struct gitlab *gl;
	struct gitlab_runner *r;
	int64_t job_id;
	char *token;			/* secret */
	struct gitlab_trace_opts o;
	gitlab_trace_cb cb;
	void *arg;

	struct sbuf buf;		/* everything kept */
	uint32_t crc;
	int limited;			/* the limit notice is in */
	size_t sent;			/* acknowledged by GitLab */

	enum phase phase;
	int64_t interval_ms;
	int64_t last_ok_ms;		/* last PATCH or PUT that succeeded */
	struct gitlab_req *req;		/* in flight, or NULL */
	struct event *timer;
	int timer_job;			/* what the timer does next */

	int cancel_seen;
	int aborted;
	int ack_aborted;		/* no final update at all */
	int skip_patches;		/* finishing after a patch abort */
	enum gitlab_state final_state;
	char *final_reason;
	int final_exit;
	int failures;			/* final rounds failed */
	int accepted_rounds;
	int range_rounds;

	int in_cb;
	int freed;
};

enum { TJ_TICK, TJ_FINISH_STEP, TJ_DONE_ABORTED };

static void send_patch(struct gitlab_trace *t);
static void send_touch(struct gitlab_trace *t);
static void finish_step(struct gitlab_trace *t);

static void
really_free(struct gitlab_trace *t)
{
	event_free(t->timer);
	log_remove_secret(t->token);	/* the job is over */
	freezero_str(t->token);
	free(t->final_reason);
	if (t->buf.buf != NULL)
		explicit_bzero(t->buf.buf, t->buf.len);
	sbuf_release(&t->buf);
	free(t);
}

void
gitlab_trace_free(struct gitlab_trace *t)
{
	if (t == NULL || t->freed)
		return;
	t->freed = 1;
	gitlab_req_cancel(t->req);
	t->req = NULL;
	evtimer_del(t->timer);
	gitlab_runner_del_trace(t->r, t);
	if (t->in_cb == 0)
		really_free(t);
}

/* Tell the owner; 1 when the trace is gone afterwards. */
static int
emit(struct gitlab_trace *t, enum gitlab_trace_event ev,
    const struct gitlab_result *res)
{
	t->in_cb++;
	t->cb(t, ev, res, t->arg);
	t->in_cb--;
	if (t->freed) {
		if (t->in_cb == 0)
			really_free(t);
		return 1;
	}
	return 0;
}

static void
arm(struct gitlab_trace *t, int job, int64_t ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	t->timer_job = job;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	evtimer_add(t->timer, &tv);
}

/* What every answer may say: the interval, a cancel request.  1 if the
 * owner freed the trace on the cancel event. */
static int
note(struct gitlab_trace *t, const struct gitlab_result *res)
{
	if (res->update_interval_ms > 0)
		t->interval_ms = res->update_interval_ms;
	if (res->cancel_requested && !t->cancel_seen &&
	    t->phase == P_RUNNING) {
		t->cancel_seen = 1;
		return emit(t, GITLAB_TRACE_CANCEL, res);
	}
	return 0;
}

static void
done(struct gitlab_trace *t, enum gitlab_outcome outcome,
    const struct gitlab_result *res)
{
	struct gitlab_result copy;

	t->phase = P_DONE;
	evtimer_del(t->timer);
	if (res != NULL) {
		copy = *res;
		copy.outcome = outcome;
		copy.job = NULL;
		res = &copy;
	}
	(void)emit(t, GITLAB_TRACE_DONE, res);
}

/* A failed final round: wait a backoff, or give up. */
static void
final_fail(struct gitlab_trace *t, const struct gitlab_result *res)
{
	int64_t wait;

	t->failures++;
	if (t->failures >= t->o.final_retry_limit) {
		done(t, GITLAB_FAILED, res);
		return;
	}
	wait = gitlab_backoff_ms(t->failures - 1, t->o.final_backoff_min_ms,
	    t->o.final_backoff_max_ms, gitlab_rand01(t->gl));
	arm(t, TJ_FINISH_STEP, wait);
}

static void
do_abort(struct gitlab_trace *t, const struct gitlab_result *res)
{
	if (t->aborted)
		return;
	t->aborted = 1;
	evtimer_del(t->timer);
	(void)emit(t, GITLAB_TRACE_ABORT, res);
}

static void
ack_done(struct gitlab_req *req, struct gitlab_result *res, void *arg)
{
	struct gitlab_trace *t = arg;

	(void)req;
	t->req = NULL;
	if (res->update_interval_ms > 0)
		t->interval_ms = res->update_interval_ms;
	if (res->cancel_requested)
		t->cancel_seen = 1;	/* the ACK event carries it */
	if (res->outcome == GITLAB_ABORT)
		t->aborted = t->ack_aborted = 1;
	else if (res->outcome == GITLAB_OK)
		t->last_ok_ms = gitlab_mono_ms();
	if (t->phase == P_ACKING)
		t->phase = P_RUNNING;
	if (emit(t, GITLAB_TRACE_ACK, res))
		return;
	if (t->phase == P_FINISHING && t->ack_aborted)
		done(t, GITLAB_ABORT, NULL);
	else if (t->phase == P_FINISHING)
		finish_step(t);
	else if (t->phase == P_RUNNING && !t->aborted)
		arm(t, TJ_TICK, t->interval_ms);
}

static void
patch_done(struct gitlab_req *req, struct gitlab_result *res, void *arg)
{
	struct gitlab_trace *t = arg;

	(void)req;
	t->req = NULL;
	if (note(t, res))
		return;
	if (res->outcome == GITLAB_OK || res->outcome == GITLAB_RANGE) {
		int64_t off = res->offset;

		if (off < 0)
			off = 0;
		if ((uint64_t)off > t->buf.len)
			off = (int64_t)t->buf.len;	/* GitLab has more? */
		t->sent = (size_t)off;
		t->last_ok_ms = gitlab_mono_ms();
	}
	if (t->phase == P_FINISHING) {
		switch (res->outcome) {
		case GITLAB_OK:
			finish_step(t);
			return;
		case GITLAB_RANGE:
			if (++t->range_rounds > MAX_RANGE_ROUNDS) {
				t->range_rounds = 0;
				final_fail(t, res);
			} else {
				arm(t, TJ_FINISH_STEP, t->interval_ms);
			}
			return;
		case GITLAB_ABORT:
		case GITLAB_NOT_FOUND:
			t->skip_patches = 1;	/* straight to the final PUT */
			finish_step(t);
			return;
		default:
			final_fail(t, res);
			return;
		}
	}
	if (res->outcome == GITLAB_ABORT) {
		do_abort(t, res);
		return;
	}
	arm(t, TJ_TICK, t->interval_ms);
}

static void
touch_done(struct gitlab_req *req, struct gitlab_result *res, void *arg)
{
	struct gitlab_trace *t = arg;

	(void)req;
	t->req = NULL;
	if (note(t, res))
		return;
	if (res->outcome == GITLAB_OK)
		t->last_ok_ms = gitlab_mono_ms();
	if (t->phase == P_FINISHING) {
		finish_step(t);
		return;
	}
	/* Transport errors do not abort here (GitLab Runner's do): a
	 * blip must not kill running jobs; the next tick tries again. */
	if (res->outcome == GITLAB_ABORT) {
		do_abort(t, res);
		return;
	}
	arm(t, TJ_TICK, t->interval_ms);
}

static void
final_done(struct gitlab_req *req, struct gitlab_result *res, void *arg)
{
	struct gitlab_trace *t = arg;

	(void)req;
	t->req = NULL;
	if (res->update_interval_ms > 0)
		t->interval_ms = res->update_interval_ms;
	/* A 200 recorded the state, whatever Job-Status says: a final
	 * "failed" comes back with Job-Status failed, which GitLab Runner
	 * files under abort (its loop ends the same way). */
	if (res->status == 200) {
		done(t, GITLAB_OK, res);
		return;
	}
	switch (res->outcome) {
	case GITLAB_OK:
		done(t, GITLAB_OK, res);
		return;
	case GITLAB_ABORT:
		done(t, GITLAB_ABORT, res);
		return;
	case GITLAB_ACCEPTED:
		if (++t->accepted_rounds > MAX_ACCEPTED_ROUNDS) {
			done(t, GITLAB_FAILED, res);
			return;
		}
		arm(t, TJ_FINISH_STEP, t->interval_ms);
		return;
	case GITLAB_RESET:
		t->sent = 0;
		t->skip_patches = 0;
		arm(t, TJ_FINISH_STEP, t->interval_ms);
		return;
	default:
		final_fail(t, res);
		return;
	}
}

static void
send_patch(struct gitlab_trace *t)
{
	size_t n = t->buf.len - t->sent;

	if (n > t->o.patch_limit)
		n = t->o.patch_limit;
	t->req = gitlab_patch_trace(t->r, t->job_id, t->token,
	    t->buf.buf + t->sent, n, (int64_t)t->sent, t->o.debug_trace,
	    patch_done, t);
}

static void
send_put(struct gitlab_trace *t, enum gitlab_state st, const char *reason,
    int exit_code, int with_output, gitlab_cb cb)
{
	struct gitlab_update u;

	memset(&u, 0, sizeof(u));
	u.state = st;
	u.failure_reason = reason;
	u.exit_code = exit_code;
	u.with_output = with_output;
	u.crc32 = t->crc;
	u.bytesize = t->buf.len;
	t->req = gitlab_update_job(t->r, t->job_id, t->token, &u, cb, t);
}

static void
send_touch(struct gitlab_trace *t)
{
	send_put(t, GITLAB_RUNNING, NULL, 0, 1, touch_done);
}

static void
tick(struct gitlab_trace *t)
{
	if (t->req != NULL || t->phase != P_RUNNING || t->aborted)
		return;
	if (t->sent < t->buf.len)
		send_patch(t);
	else if (gitlab_mono_ms() - t->last_ok_ms >= t->o.force_send_interval_ms)
		send_touch(t);
	else
		arm(t, TJ_TICK, t->interval_ms);
}

static void
finish_step(struct gitlab_trace *t)
{
	if (t->req != NULL || t->phase != P_FINISHING)
		return;
	if (!t->skip_patches && t->sent < t->buf.len) {
		send_patch(t);
		return;
	}
	send_put(t, t->final_state, t->final_reason, t->final_exit, 1,
	    final_done);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gitlab_trace *t = arg;
	struct gitlab *gl = t->gl;

	(void)fd;
	(void)what;
	gitlab_enter(gl);
	if (t->timer_job == TJ_FINISH_STEP)
		finish_step(t);
	else if (t->timer_job == TJ_DONE_ABORTED)
		done(t, GITLAB_ABORT, NULL);
	else
		tick(t);
	gitlab_leave(gl);
}

struct gitlab_trace *
gitlab_trace_new(struct gitlab_runner *r, int64_t job_id,
    const char *job_token, const struct gitlab_trace_opts *opts,
    gitlab_trace_cb cb, void *arg)
{
	struct gitlab_trace *t = xcalloc(1, sizeof(*t));

	t->gl = gitlab_runner_client(r);
	t->r = r;
	t->job_id = job_id;
	t->token = xstrdup(job_token != NULL ? job_token : "");
	log_add_secret(t->token);
	if (opts != NULL)
		t->o = *opts;
	if (t->o.output_limit == 0)
		t->o.output_limit = GITLAB_OUTPUT_LIMIT;
	if (t->o.patch_limit == 0 || t->o.patch_limit > GITLAB_PATCH_LIMIT)
		t->o.patch_limit = GITLAB_PATCH_LIMIT;
	if (t->o.update_interval_ms <= 0)
		t->o.update_interval_ms = GITLAB_UPDATE_INTERVAL_MS;
	if (t->o.force_send_interval_ms <= 0)
		t->o.force_send_interval_ms = GITLAB_FORCE_SEND_INTERVAL_MS;
	if (t->o.final_retry_limit <= 0)
		t->o.final_retry_limit = GITLAB_FINAL_RETRY_LIMIT;
	if (t->o.final_backoff_min_ms <= 0)
		t->o.final_backoff_min_ms = GITLAB_FINAL_BACKOFF_MIN_MS;
	if (t->o.final_backoff_max_ms <= 0)
		t->o.final_backoff_max_ms = GITLAB_FINAL_BACKOFF_MAX_MS;
	t->cb = cb;
	t->arg = arg;
	t->interval_ms = t->o.update_interval_ms;
	sbuf_init(&t->buf);
	t->timer = evtimer_new(gitlab_evbase(t->gl), on_timer, t);
	if (t->timer == NULL)
		abort();
	gitlab_runner_add_trace(r, t);
	t->phase = P_ACKING;
	t->last_ok_ms = gitlab_mono_ms();
	send_put(t, GITLAB_RUNNING, NULL, 0, 0, ack_done);
	return t;
}

/*
 * Go's truncateSafeUTF8: drop up to 4 trailing bytes while the last rune
 * of p[:cap] does not decode (utf8.DecodeLastRune gives RuneError, 1).
 */
static int
last_rune_bad(const unsigned char *p, size_t n)
{
	size_t st, len, i;
	unsigned char c;

	if (n == 0)
		return 0;
	if (p[n - 1] < 0x80)
		return 0;
	/* Find the start of the last sequence within 4 bytes. */
	st = n - 1;
	while (st > 0 && n - st < 4 && (p[st] & 0xc0) == 0x80)
		st--;
	c = p[st];
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 1;
	if (n - st != len)
		return 1;
	for (i = 1; i < len; i++)
		if ((p[st + i] & 0xc0) != 0x80)
			return 1;
	if ((c == 0xe0 && p[st + 1] < 0xa0) || (c == 0xed && p[st + 1] > 0x9f) ||
	    (c == 0xf0 && p[st + 1] < 0x90) || (c == 0xf4 && p[st + 1] > 0x8f))
		return 1;
	return 0;
}

static void
keep(struct gitlab_trace *t, const void *p, size_t n)
{
	sbuf_add(&t->buf, p, n);
	t->crc = gitlab_crc32(t->crc, p, n);
}

size_t
gitlab_trace_append(struct gitlab_trace *t, const void *data, size_t len)
{
	size_t room, n;
	char *notice;
	int i;

	if (t->phase >= P_FINISHING || t->limited || len == 0)
		return 0;
	room = t->buf.len < t->o.output_limit ?
	    t->o.output_limit - t->buf.len : 0;
	if (len < room) {
		keep(t, data, len);
		return len;
	}
	/* At or over the limit (Go: len(p) >= capacity). */
	n = room;
	for (i = 0; i < 4 && last_rune_bad(data, n); i++)
		n--;
	keep(t, data, n);
	notice = xasprintf("\n\033[33;1mJob's log exceeded limit of %zu bytes.\n"
	    "Job execution will continue but no more output will be "
	    "collected.\033[0;m\n", t->o.output_limit);
	keep(t, notice, strlen(notice));
	free(notice);
	t->limited = 1;
	return n;
}

void
gitlab_trace_finish(struct gitlab_trace *t, enum gitlab_state state,
    const char *failure_reason, int exit_code)
{
	if (t->phase >= P_FINISHING)
		return;
	t->phase = P_FINISHING;
	t->final_state = state;
	t->final_reason = failure_reason != NULL ? xstrdup(failure_reason) :
	    NULL;
	t->final_exit = exit_code;
	t->interval_ms = t->o.update_interval_ms;
	/* After an abort the final PUT is still tried, without patches
	 * (GitLab Runner: "each step stops silently on abort"). */
	if (t->aborted)
		t->skip_patches = 1;
	evtimer_del(t->timer);
	if (t->req == NULL && t->ack_aborted)
		arm(t, TJ_DONE_ABORTED, 0);	/* from the loop, not here */
	else if (t->req == NULL)
		arm(t, TJ_FINISH_STEP, 0);
	/* else the answer in flight continues into finish_step */
}

uint32_t
gitlab_trace_crc32(const struct gitlab_trace *t)
{
	return t->crc;
}

uint64_t
gitlab_trace_size(const struct gitlab_trace *t)
{
	return t->buf.len;
}

uint64_t
gitlab_trace_sent(const struct gitlab_trace *t)
{
	return t->sent;
}

int64_t
gitlab_trace_interval_ms(const struct gitlab_trace *t)
{
	return t->interval_ms;
}

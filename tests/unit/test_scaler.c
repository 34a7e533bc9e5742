/*
 * The scaler core against a fake plugin and a fake clock: one test per
 * taskscaler rule (idle_count, scale_factor, max_instances, max_use_count,
 * idle_time, policies across DST, reservation throttling, unexpected
 * removal, ready failures and back-off, partial Increase/Decrease, preemptive
 * mode, acquire timeouts, heartbeats, the scale throttle, shutdown, state
 * storage).  The driver fx_run() plays the glue: Update when due, decide,
 * carry out every action at once, decide again after feeding results.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "scaler.h"
#include "xmalloc.h"

#define NS	INT64_C(1000000000)
#define SEC(x)	((int64_t)(x) * NS)
#define MINS(x)	(SEC(x) * 60)
#define T0	(INT64_C(1767571200) * NS)	/* 2026-01-05T00:00:00Z, Monday */

enum { PS_UP, PS_DELETING, PS_STUCK, PS_TIMEOUT };

struct pinst {
	char id[32];
	int64_t created;
	int state;
	int refuse;		/* refuse every Decrease of it */
};

struct logent {
	int64_t t;
	char id[32];
	int reason;
	int64_t n;
};

struct fx {
	struct config_autoscaler as;
	struct config_policy pol[4];
	char *periods[4][2];
	struct scaler *s;
	struct scaler_actions a;
	int64_t now;
	int64_t max_total;		/* most instances listed at once */

	/* the fake plugin */
	struct pinst p[2048];
	size_t np;
	int next_id;
	int64_t boot;			/* creating -> running after this */
	int64_t increase_short;		/* one Increase gives this many fewer */
	int accept_max;			/* one Decrease accepts at most; -1 all */
	int keep_listing;		/* accepted deletions stay listed running */
	int listing_deleting;		/* accepted deletions listed deleting */
	int ready_fail;			/* fail this many ready checks */
	int hb_fail;			/* heartbeats fail */

	/* what happened */
	struct logent inc[256];
	size_t ninc;
	struct logent dec[512];
	size_t ndec;
	int64_t ready_fail_at[16];
	size_t nready_fail;
	scaler_key granted[64];
	size_t ngranted;
	scaler_key timed_out[64];
	int64_t timed_out_at[64];
	size_t ntimed_out;
	scaler_key cancelled[64];
	size_t ncancelled;
	char lost_id[32];
	char lost_slots[64];
	int64_t lost_used;
	size_t nlost;
	int scaling_changes;
	int shutdown_done;
};

static void
fx_init(struct fx *f)
{
	memset(f, 0, sizeof(*f));
	f->as.capacity_per_instance = 1;
	f->as.instance_acquire_timeout_ns = MINS(15);
	f->as.update_interval_ns = MINS(1);
	f->as.update_interval_when_expecting_ns = SEC(2);
	f->as.deletion_retry_interval_ns = MINS(1);
	f->as.shutdown_deletion_interval_ns = SEC(10);
	f->as.shutdown_deletion_retries = 3;
	f->as.failure_threshold = 3;
	f->as.reservation_throttling = TRI_UNSET;
	f->as.scale_throttle.limit = -1;
	for (int k = 0; k < 4; k++) {
		f->periods[k][0] = "* * * * *";
		f->pol[k].periods.v = f->periods[k];
		f->pol[k].periods.n = 1;
		f->pol[k].timezone = "UTC";
		f->pol[k].idle_time_ns = MINS(5);
		f->pol[k].preemptive_mode = TRI_UNSET;
		f->pol[k].line = 10 + k;
	}
	f->as.policy = f->pol;
	f->as.npolicy = 1;
	f->accept_max = -1;
	f->now = T0;
	scaler_actions_init(&f->a);
}

static void
fx_start(struct fx *f)
{
	char err[200];

	f->s = scaler_new(&f->as, err, sizeof(err));
	if (f->s == NULL)
		fail_msg("scaler_new: %s", err);
}

static void
fx_done(struct fx *f)
{
	scaler_actions_release(&f->a);
	scaler_free(f->s);
}

static struct pinst *
p_find(struct fx *f, const char *id)
{
	for (size_t k = 0; k < f->np; k++)
		if (strcmp(f->p[k].id, id) == 0)
			return &f->p[k];
	return NULL;
}

static void
p_remove(struct fx *f, const char *id)
{
	struct pinst *q = p_find(f, id);

	assert_non_null(q);
	*q = f->p[--f->np];
}

static void
fx_update(struct fx *f)
{
	struct scaler_report r[2048];

	for (size_t k = 0; k < f->np; k++) {
		r[k].id = f->p[k].id;
		if (f->p[k].state == PS_DELETING)
			r[k].state = SCALER_P_DELETING;
		else if (f->p[k].state == PS_STUCK)
			r[k].state = SCALER_P_RUNNING;
		else if (f->p[k].state == PS_TIMEOUT)
			r[k].state = SCALER_P_TIMEOUT;
		else
			r[k].state = f->now >= f->p[k].created + f->boot ?
			    SCALER_P_RUNNING : SCALER_P_CREATING;
	}
	assert_int_equal(scaler_update(f->s, f->now, r, f->np), 0);
}

/* Carry out the actions; returns nonzero when results were fed back. */
static int
fx_apply(struct fx *f)
{
	struct scaler_actions *a = &f->a;
	int fed = 0;

	if (a->scaling_change)
		f->scaling_changes++;
	if (a->increase > 0) {
		int64_t got = a->increase - f->increase_short;

		got = got < 0 ? 0 : got;
		f->increase_short = 0;
		for (int64_t k = 0; k < got; k++) {
			struct pinst *q = &f->p[f->np++];

			assert_true(f->np < 2048);
			memset(q, 0, sizeof(*q));
			snprintf(q->id, sizeof(q->id), "i-%d", f->next_id++);
			q->created = f->now;
		}
		assert_true(f->ninc < 256);
		f->inc[f->ninc].t = f->now;
		f->inc[f->ninc].n = a->increase;
		f->ninc++;
		scaler_increase_result(f->s, f->now, a->increase, got);
		fed = 1;
	}
	if (a->ndecrease > 0) {
		const char *req[512], *ok[512];
		size_t nok = 0;
		int budget = f->accept_max;

		assert_true(a->ndecrease <= 512);
		for (size_t k = 0; k < a->ndecrease; k++) {
			struct pinst *q = p_find(f, a->decrease[k].id);

			req[k] = a->decrease[k].id;
			assert_true(f->ndec < 512);
			f->dec[f->ndec].t = f->now;
			snprintf(f->dec[f->ndec].id, sizeof(f->dec[0].id), "%s",
			    a->decrease[k].id);
			f->dec[f->ndec].reason = a->decrease[k].reason;
			f->ndec++;
			if (q == NULL) {
				ok[nok++] = req[k];	/* already gone */
				continue;
			}
			if (q->refuse || budget == 0)
				continue;
			if (budget > 0)
				budget--;
			ok[nok++] = req[k];
			if (f->keep_listing)
				q->state = PS_STUCK;
			else if (f->listing_deleting)
				q->state = PS_DELETING;
			else
				q->state = -1;	/* removed below */
		}
		f->accept_max = -1;
		scaler_decrease_result(f->s, f->now, req, a->ndecrease, ok, nok);
		for (size_t k = f->np; k-- > 0;)
			if (f->p[k].state == -1)
				f->p[k] = f->p[--f->np];
		fed = 1;
	}
	for (size_t k = 0; k < a->nready_checks; k++) {
		int ok = f->ready_fail == 0;

		if (!ok) {
			f->ready_fail--;
			f->ready_fail_at[f->nready_fail++] = f->now;
		}
		assert_int_equal(scaler_ready_result(f->s, f->now,
		    a->ready_checks[k], ok), 0);
		fed = 1;
	}
	for (size_t k = 0; k < a->nheartbeats; k++) {
		assert_int_equal(scaler_heartbeat_result(f->s, f->now,
		    a->heartbeats[k], !f->hb_fail), 0);
		fed = 1;
	}
	for (size_t k = 0; k < a->ngranted; k++)
		f->granted[f->ngranted++] = a->granted[k].key;
	for (size_t k = 0; k < a->ntimed_out; k++) {
		f->timed_out_at[f->ntimed_out] = f->now;
		f->timed_out[f->ntimed_out++] = a->timed_out[k];
	}
	for (size_t k = 0; k < a->ncancelled; k++)
		f->cancelled[f->ncancelled++] = a->cancelled[k].key;
	for (size_t k = 0; k < a->nlost; k++) {
		snprintf(f->lost_id, sizeof(f->lost_id), "%s", a->lost[k].instance);
		snprintf(f->lost_slots, sizeof(f->lost_slots), "%s",
		    a->lost[k].slots);
		f->lost_used = a->lost[k].used;
		f->nlost++;
	}
	if (a->shutdown_done)
		f->shutdown_done = 1;
	if ((int64_t)f->np > f->max_total)
		f->max_total = (int64_t)f->np;
	if (f->as.max_instances > 0)
		assert_true((int64_t)f->np <= f->as.max_instances);
	return fed;
}

/* Play the glue until `until` (inclusive). */
static void
fx_run(struct fx *f, int64_t until)
{
	int same = 0;

	for (;;) {
		int64_t next;

		if (f->now >= f->a.next_update)
			fx_update(f);
		scaler_decide(f->s, f->now, &f->a);
		if (fx_apply(f)) {
			assert_true(++same < 100);
			continue;
		}
		if (f->now >= until || f->shutdown_done)
			break;
		next = f->a.wakeup < f->a.next_update ? f->a.wakeup :
		    f->a.next_update;
		if (next <= f->now) {
			assert_true(++same < 100);
			continue;
		}
		same = 0;
		f->now = next < until ? next : until;
	}
}

static scaler_key
must_reserve(struct fx *f)
{
	scaler_key k = 0;

	assert_int_equal(scaler_reserve(f->s, f->now, &k), 0);
	assert_true(k != 0);
	return k;
}

static int
granted(const struct fx *f, scaler_key k)
{
	for (size_t i = 0; i < f->ngranted; i++)
		if (f->granted[i] == k)
			return 1;
	return 0;
}

static size_t
n_reason(const struct fx *f, int reason)
{
	size_t n = 0;

	for (size_t k = 0; k < f->ndec; k++)
		n += f->dec[k].reason == reason;
	return n;
}

/* ---- tests ---- */

static void
test_idle_count_keeps_idle(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	const struct scaler_metrics *m;
	const char *inst;
	scaler_key k;
	int slot;

	(void)state;
	fx_init(f);
	f->pol[0].idle_count = 5;
	f->boot = SEC(30);
	fx_start(f);
	fx_run(f, T0 + MINS(10));
	assert_int_equal(f->np, 5);
	m = scaler_metrics(f->s);
	assert_int_equal(m->tasks[SCALER_TASK_IDLE], 5);
	assert_int_equal(m->desired_instances, 5);
	fx_run(f, T0 + MINS(120));
	assert_int_equal(f->np, 5);
	assert_int_equal(f->ndec, 0);

	/* Preemptive (idle_count > 0): the job gets a ready slot at once. */
	k = must_reserve(f);
	assert_int_equal(scaler_acquire(f->s, f->now, k, &inst, &slot), 0);
	assert_int_equal(slot, 0);
	fx_run(f, f->now + MINS(5));
	assert_int_equal(f->np, 6);
	assert_int_equal(m->tasks[SCALER_TASK_IDLE], 5);
	assert_int_equal(m->tasks[SCALER_TASK_ACQUIRED], 1);
	assert_int_equal(scaler_release(f->s, f->now, k), 0);
	fx_run(f, f->now + MINS(30));
	assert_int_equal(f->np, 5);
	assert_int_equal(n_reason(f, SCALER_REASON_IDLE_TIME), 1);
	/* 6 created, listed at the next poll (<= 2 s), running after the
	 * 30 s boot, one gone. */
	assert_int_equal(m->creation_time.count, 6);
	assert_int_equal(m->creation_time.counts[0] +
	    m->creation_time.counts[1], 6);	/* <= 5 s */
	assert_true(m->creation_time.sum <= 6 * 2.0);
	assert_int_equal(m->is_running_time.count, 6);
	assert_true(m->is_running_time.sum >= 6 * 30.0);
	assert_int_equal(m->readiness_time.count, 6);
	assert_int_equal(m->life_duration.count, 1);
	assert_int_equal(m->deletion_time.count, 1);
	assert_int_equal(m->instance_operations_total[SCALER_IOP_CREATE], 6);
	assert_int_equal(m->instance_operations_total[SCALER_IOP_DELETE], 1);
	assert_int_equal(m->scale_operations_up_total, 6);
	assert_int_equal(m->scale_operations_down_total, 1);
	assert_int_equal(m->task_operations_total[SCALER_TOP_ACQUIRE], 1);
	assert_int_equal(m->task_operations_total[SCALER_TOP_RELEASE], 1);
	assert_int_equal(m->instances[SCALER_P_RUNNING], 5);
	assert_int_equal(m->max_tasks_per_instance, 1);
	fx_done(f);
	free(f);
}

/* n jobs acquired, pending until instances come; returns instances. */
static size_t
factor_case(double factor, int64_t limit, int64_t idle_count)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	scaler_key k[10];
	size_t n;

	fx_init(f);
	f->pol[0].scale_factor = factor;
	f->pol[0].scale_factor_limit = limit;
	f->pol[0].idle_count = idle_count;
	f->pol[0].preemptive_mode = TRI_FALSE;
	f->boot = SEC(30);
	fx_start(f);
	fx_run(f, T0);
	for (int i = 0; i < 10; i++) {
		k[i] = must_reserve(f);
		assert_int_equal(scaler_acquire(f->s, f->now, k[i], NULL, NULL),
		    FL_ERR_AGAIN);
	}
	fx_run(f, T0 + MINS(3));
	for (int i = 0; i < 10; i++)
		assert_true(granted(f, k[i]));
	n = f->np;
	assert_int_equal(scaler_metrics(f->s)->desired_instances, (int64_t)n);
	assert_int_equal(scaler_metrics(f->s)->tasks[SCALER_TASK_ACQUIRED], 10);
	fx_done(f);
	free(f);
	return n;
}

static void
test_scale_factor(void **state)
{
	(void)state;
	assert_int_equal(factor_case(0.5, 0, 0), 15);	/* 10 + ceil(5) */
	assert_int_equal(factor_case(0.5, 3, 0), 13);	/* capped at 3 */
	assert_int_equal(factor_case(0.1, 0, 2), 12);	/* idle_count floor */
	assert_int_equal(factor_case(0.25, 0, 0), 13);	/* ceil(2.5) */
	assert_int_equal(factor_case(0, 0, 0), 10);
}

static void
test_max_instances_burst(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	int ok = 0, full = 0;
	int64_t asked = 0;
	scaler_key keys[1000];

	(void)state;
	fx_init(f);
	f->as.max_instances = 10;
	f->as.capacity_per_instance = 2;
	f->pol[0].preemptive_mode = TRI_FALSE;
	f->boot = SEC(20);
	fx_start(f);
	fx_run(f, T0);
	/* 1,000 reservations with decisions in between, Increase results
	 * applied as they come: never more than 10 instances asked for. */
	for (int i = 0; i < 1000; i++) {
		int r = scaler_reserve(f->s, f->now, &keys[ok]);

		if (r == 0) {
			assert_int_equal(scaler_acquire(f->s, f->now, keys[ok],
			    NULL, NULL), FL_ERR_AGAIN);
			ok++;
		} else {
			assert_int_equal(r, SCALER_ERR_NO_CAPACITY);
			full++;
		}
		if (i % 7 == 0) {
			scaler_decide(f->s, f->now, &f->a);
			asked += f->a.increase;
			fx_apply(f);
		}
	}
	assert_int_equal(ok, 20);
	assert_int_equal(full, 980);
	assert_true(asked <= 10);
	assert_int_equal(scaler_metrics(f->s)->
	    task_operations_total[SCALER_TOP_RESERVE_IOP_FAILURE], 980);
	fx_run(f, T0 + MINS(5));
	assert_int_equal(f->max_total, 10);
	assert_int_equal(f->ngranted, 20);

	/* Deleting instances count too: free them all, let them expire
	 * while the plugin takes its time to delete. */
	for (int i = 0; i < ok; i++)
		assert_int_equal(scaler_release(f->s, f->now, keys[i]), 0);
	f->listing_deleting = 1;
	fx_run(f, f->now + MINS(6));
	assert_int_equal(n_reason(f, SCALER_REASON_IDLE_TIME), 10);
	assert_int_equal(f->np, 10);	/* all still listed as deleting */
	for (int i = 0; i < 3; i++) {
		scaler_key k;

		assert_int_equal(scaler_reserve(f->s, f->now, &k),
		    SCALER_ERR_NO_CAPACITY);
	}
	fx_run(f, f->now + MINS(1));
	assert_int_equal(f->np, 10);
	/* The plugin finishes: room again. */
	f->np = 0;
	fx_run(f, f->now + MINS(1));
	keys[0] = must_reserve(f);
	scaler_acquire(f->s, f->now, keys[0], NULL, NULL);
	fx_run(f, f->now + MINS(1));
	assert_int_equal(f->np, 1);
	fx_done(f);
	free(f);
}

static void
test_max_use_count_one(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char used[5][32];

	(void)state;
	fx_init(f);
	f->as.max_use_count = 1;
	f->boot = SEC(45);
	fx_start(f);
	fx_run(f, T0);
	for (int j = 0; j < 5; j++) {
		const char *inst;
		scaler_key k = must_reserve(f);
		int slot;

		assert_int_equal(scaler_acquire(f->s, f->now, k, &inst, &slot),
		    FL_ERR_AGAIN);
		fx_run(f, f->now + MINS(2));
		assert_true(granted(f, k));
		assert_int_equal(scaler_acquire(f->s, f->now, k, &inst, &slot), 0);
		snprintf(used[j], sizeof(used[j]), "%s", inst);
		for (int i = 0; i < j; i++)
			assert_string_not_equal(used[i], used[j]);
		assert_int_equal(f->np, 1);
		assert_int_equal(scaler_release(f->s, f->now, k), 0);
		fx_run(f, f->now + SEC(1));
		/* Deleted right after the job. */
		assert_int_equal(f->np, 0);
		assert_string_equal(f->dec[f->ndec - 1].id, used[j]);
		assert_int_equal(f->dec[f->ndec - 1].reason,
		    SCALER_REASON_MAX_USE_COUNT);
		fx_run(f, f->now + MINS(10));
	}
	assert_int_equal(f->next_id, 5);	/* creations == jobs */
	assert_int_equal(scaler_metrics(f->s)->
	    removals_total[SCALER_REASON_MAX_USE_COUNT], 5);
	fx_done(f);
	free(f);
}

static void
test_idle_time_expiry(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	scaler_key k;
	int64_t released;

	(void)state;
	fx_init(f);
	f->pol[0].idle_time_ns = MINS(10);
	fx_start(f);
	fx_run(f, T0);
	k = must_reserve(f);
	scaler_acquire(f->s, f->now, k, NULL, NULL);
	fx_run(f, T0 + MINS(1));
	assert_true(granted(f, k));
	fx_run(f, T0 + MINS(4));
	released = f->now;
	assert_int_equal(scaler_release(f->s, f->now, k), 0);
	fx_run(f, released + MINS(10) - SEC(1));
	assert_int_equal(f->np, 1);
	assert_int_equal(f->ndec, 0);
	fx_run(f, released + MINS(10) + SEC(1));
	assert_int_equal(f->np, 0);
	assert_int_equal(f->ndec, 1);
	assert_int_equal(f->dec[0].reason, SCALER_REASON_IDLE_TIME);
	assert_true(f->dec[0].t == released + MINS(10));	/* on the dot */
	fx_done(f);
	free(f);
}

static void
test_policy_dst(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct scaler_policy_view v;
	int64_t t29 = INT64_C(1774744200) * NS;	/* 2026-03-29T00:30:00Z */
	int64_t t28 = INT64_C(1774657800) * NS;	/* 2026-03-28T00:30:00Z */

	(void)state;
	fx_init(f);
	f->as.npolicy = 2;
	f->pol[1].periods.v[0] = "* 3-5 * * *";
	f->pol[1].timezone = "Europe/Berlin";
	f->pol[1].idle_count = 2;
	f->now = t29;
	fx_start(f);

	/* The day before: CET, 03:00 local is 02:00 UTC. */
	scaler_policy(f->s, t28 + MINS(89), &v);
	assert_int_equal(v.index, 0);
	scaler_policy(f->s, t28 + MINS(90), &v);
	assert_int_equal(v.index, 1);
	assert_int_equal(v.idle_count, 2);
	/* 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00 UTC. */
	scaler_policy(f->s, t29 + MINS(30) - SEC(1), &v);
	assert_int_equal(v.index, 0);
	scaler_policy(f->s, t29 + MINS(30), &v);
	assert_int_equal(v.index, 1);
	scaler_policy(f->s, t29 + MINS(30 + 180) - SEC(1), &v);
	assert_int_equal(v.index, 1);
	scaler_policy(f->s, t29 + MINS(30 + 180), &v);	/* 06:00 CEST */
	assert_int_equal(v.index, 0);

	/* Driven: the scale-up happens at 01:00:00 UTC exactly (the wake-up
	 * lands on the boundary), and the instances go again after it. */
	fx_run(f, t29 + MINS(29));
	assert_int_equal(f->ninc, 0);
	assert_true(f->a.wakeup <= t29 + MINS(30));
	fx_run(f, t29 + MINS(31));
	assert_int_equal(f->ninc, 1);
	assert_true(f->inc[0].t == t29 + MINS(30));
	assert_int_equal(f->inc[0].n, 2);
	assert_int_equal(f->a.capacity.policy, 1);
	fx_run(f, t29 + MINS(30 + 180 + 6));
	assert_int_equal(f->np, 0);
	assert_int_equal(n_reason(f, SCALER_REASON_IDLE_TIME), 2);
	assert_true(f->dec[0].t == t29 + MINS(30 + 180));
	fx_done(f);
	free(f);
}

/* Four workers long-poll: every 50 s each gives its reservation back and
 * takes a new one.  Returns the instances left after two hours. */
static size_t
throttling_case(enum tribool throttling, enum tribool preemptive)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	scaler_key k[4];
	int held[4] = { 0, 0, 0, 0 };
	size_t n;

	fx_init(f);
	f->as.reservation_throttling = throttling;
	f->pol[0].preemptive_mode = TRI_FALSE;
	fx_start(f);
	fx_run(f, T0);
	for (int i = 0; i < 4; i++) {
		k[i] = must_reserve(f);
		scaler_acquire(f->s, f->now, k[i], NULL, NULL);
	}
	fx_run(f, T0 + MINS(2));
	assert_int_equal(f->np, 4);
	f->pol[0].preemptive_mode = preemptive;
	{
		char err[200];

		assert_int_equal(scaler_set_policies(f->s, f->pol, 1, err,
		    sizeof(err)), 0);
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(scaler_release(f->s, f->now, k[i]), 0);
	for (int cycle = 0; cycle < 144; cycle++) {
		for (int i = 0; i < 4; i++)
			if (held[i])
				assert_int_equal(scaler_unreserve(f->s, f->now,
				    k[i]), 0);
		for (int i = 0; i < 4; i++)
			held[i] = scaler_reserve(f->s, f->now, &k[i]) == 0;
		fx_run(f, f->now + SEC(50));
	}
	n = f->np;
	fx_done(f);
	free(f);
	return n;
}

static void
test_reservation_throttling(void **state)
{
	(void)state;
	/* Preemptive: reservations hold slots; throttling leaves one
	 * instance's worth free, so the fleet shrinks to one. */
	assert_int_equal(throttling_case(TRI_UNSET, TRI_TRUE), 1);
	assert_int_equal(throttling_case(TRI_FALSE, TRI_TRUE), 4);
	/* Not preemptive: polling holds nothing; every idle one goes. */
	assert_int_equal(throttling_case(TRI_UNSET, TRI_FALSE), 0);
}

static void
test_unexpected_removal(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	const char *inst;
	char id[32];
	scaler_key k;
	int slot;

	(void)state;
	fx_init(f);
	f->as.capacity_per_instance = 2;
	fx_start(f);
	fx_run(f, T0);
	k = must_reserve(f);
	scaler_acquire(f->s, f->now, k, NULL, NULL);
	fx_run(f, T0 + MINS(1));
	assert_int_equal(scaler_acquire(f->s, f->now, k, &inst, &slot), 0);
	snprintf(id, sizeof(id), "%s", inst);
	p_remove(f, id);	/* gone behind our back */
	fx_run(f, T0 + MINS(3));
	assert_int_equal(f->nlost, 1);
	assert_string_equal(f->lost_id, id);
	assert_string_equal(f->lost_slots, "map[0:true 1:false]");
	assert_int_equal(f->lost_used, 1);
	assert_int_equal(f->ncancelled, 1);
	assert_true(f->cancelled[0] == k);
	assert_int_equal(scaler_release(f->s, f->now, k), FL_ERR_NOTFOUND);
	assert_int_equal(scaler_instance(f->s, id, &(struct scaler_instance_info){ 0 }),
	    FL_ERR_NOTFOUND);
	assert_int_equal(scaler_metrics(f->s)->
	    internal_operations_total[SCALER_INT_UNEXPECTED_REMOVAL], 1);
	assert_int_equal(scaler_metrics(f->s)->tasks[SCALER_TASK_ACQUIRED], 0);
	fx_done(f);
	free(f);
}

static size_t
n_dec_id(const struct fx *f, const char *id, int reason)
{
	size_t n = 0;

	for (size_t k = 0; k < f->ndec; k++)
		n += strcmp(f->dec[k].id, id) == 0 && f->dec[k].reason == reason;
	return n;
}

static int64_t
inc_after(const struct fx *f, int64_t t)
{
	for (size_t k = 0; k < f->ninc; k++)
		if (f->inc[k].t >= t)
			return f->inc[k].t;
	return -1;
}

static void
test_ready_failure_backoff(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct scaler_instance_info ii;
	scaler_key k;

	(void)state;
	fx_init(f);
	f->as.instance_ready_command = "cloud-init status --wait";
	f->pol[0].idle_count = 1;
	f->ready_fail = 3;
	fx_start(f);
	fx_run(f, T0 + MINS(5));
	assert_int_equal(f->nready_fail, 3);
	assert_int_equal(n_reason(f, SCALER_REASON_NOT_READY), 3);
	/* 10 s, 20 s, 40 s after each failure. */
	assert_true(inc_after(f, f->ready_fail_at[0] + 1) ==
	    f->ready_fail_at[0] + SEC(10));
	assert_true(inc_after(f, f->ready_fail_at[1] + 1) ==
	    f->ready_fail_at[1] + SEC(20));
	assert_true(inc_after(f, f->ready_fail_at[2] + 1) ==
	    f->ready_fail_at[2] + SEC(40));
	assert_int_equal(f->np, 1);
	assert_int_equal(scaler_instance_at(f->s, 0, &ii), 0);
	assert_int_equal(ii.state, SCALER_READY);
	assert_int_equal(scaler_metrics(f->s)->
	    task_operations_total[SCALER_TOP_READY_FAILURE], 3);

	/* A success reset the back-off: the next failure waits 10 s. */
	f->ready_fail = 1;
	k = must_reserve(f);
	assert_int_equal(scaler_acquire(f->s, f->now, k, NULL, NULL), 0);
	fx_run(f, f->now + MINS(2));
	assert_int_equal(f->nready_fail, 4);
	assert_true(inc_after(f, f->ready_fail_at[3] + 1) ==
	    f->ready_fail_at[3] + SEC(10));
	assert_int_equal(f->np, 2);
	fx_done(f);
	free(f);
}

static void
test_partial_increase(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	(void)state;
	fx_init(f);
	f->pol[0].idle_count = 3;
	f->increase_short = 2;
	fx_start(f);
	fx_run(f, T0 + MINS(1));
	assert_int_equal(f->ninc, 2);
	assert_int_equal(f->inc[0].n, 3);
	assert_true(f->inc[0].t == T0);
	assert_int_equal(f->inc[1].n, 2);	/* the rest, after back-off */
	assert_true(f->inc[1].t == T0 + SEC(10));
	assert_int_equal(f->np, 3);
	assert_int_equal(scaler_metrics(f->s)->
	    instance_operations_total[SCALER_IOP_CREATE_ERROR], 2);
	fx_done(f);
	free(f);
}

static void
test_partial_decrease(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char err[100];
	int64_t td;
	size_t first = 0, again = 0;

	(void)state;
	fx_init(f);
	f->pol[0].idle_count = 3;
	fx_start(f);
	fx_run(f, T0 + MINS(1));
	assert_int_equal(f->np, 3);
	f->pol[0].idle_count = 0;
	assert_int_equal(scaler_set_policies(f->s, f->pol, 1, err, sizeof(err)), 0);
	f->accept_max = 1;
	fx_run(f, T0 + MINS(7));
	assert_true(f->ndec >= 5);
	td = f->dec[0].t;
	for (size_t k = 0; k < f->ndec; k++) {
		first += f->dec[k].t == td;
		again += f->dec[k].t == td + MINS(1);
	}
	assert_int_equal(first, 3);
	assert_int_equal(again, 2);	/* refused ones, deletion_retry_interval later */
	assert_int_equal(f->np, 0);
	assert_int_equal(scaler_instance_count(f->s), 0);

	/* Accepted, but the plugin keeps it running: asked again after
	 * deletion_retry_interval. */
	f->pol[0].idle_count = 1;
	assert_int_equal(scaler_set_policies(f->s, f->pol, 1, err, sizeof(err)), 0);
	fx_run(f, f->now + MINS(1));
	assert_int_equal(f->np, 1);
	f->pol[0].idle_count = 0;
	assert_int_equal(scaler_set_policies(f->s, f->pol, 1, err, sizeof(err)), 0);
	f->keep_listing = 1;
	f->ndec = 0;
	while (f->ndec == 0)
		fx_run(f, f->now + SEC(1));
	assert_int_equal(f->ndec, 1);
	td = f->dec[0].t;
	fx_run(f, td + MINS(1) - SEC(1));
	assert_int_equal(f->ndec, 1);
	assert_int_equal(f->np, 1);	/* still listed, running */
	f->keep_listing = 0;
	fx_run(f, td + MINS(1) + SEC(10));
	assert_int_equal(f->ndec, 2);
	assert_true(f->dec[1].t == td + MINS(1));
	assert_int_equal(f->np, 0);
	fx_done(f);
	free(f);
}

/*
 * Not preemptive (idle_count 0): a reservation is no demand and holds no
 * slot, so a runner that keeps polling neither makes an instance appear
 * nor keeps an idle one alive; the job it brings is demand once acquired.
 */
static void
test_polling_reservation_no_demand(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	scaler_key k, poll;
	int64_t released;

	(void)state;
	fx_init(f);
	f->pol[0].idle_time_ns = MINS(1);
	fx_start(f);
	poll = must_reserve(f);
	fx_run(f, T0 + MINS(2));
	assert_int_equal(f->ninc, 0);		/* a poll is no demand */
	assert_int_equal(scaler_unreserve(f->s, f->now, poll), 0);
	k = must_reserve(f);
	assert_int_equal(scaler_acquire(f->s, f->now, k, NULL, NULL),
	    FL_ERR_AGAIN);			/* pending: no slot yet */
	fx_run(f, f->now + SEC(30));
	assert_true(granted(f, k));		/* the job is demand */
	assert_int_equal(f->np, 1);
	released = f->now;
	assert_int_equal(scaler_release(f->s, f->now, k), 0);
	poll = must_reserve(f);			/* polling again */
	fx_run(f, released + MINS(1) + SEC(5));
	assert_int_equal(f->np, 0);		/* idle_time still applies */
	assert_int_equal(n_reason(f, SCALER_REASON_IDLE_TIME), 1);
	assert_int_equal(scaler_unreserve(f->s, f->now, poll), 0);
	fx_run(f, f->now + MINS(2));
	assert_int_equal(f->ninc, 1);		/* and nothing came back */
	fx_done(f);
	free(f);
}

static void
test_preemptive(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	const struct scaler_metrics *m;
	const char *inst;
	scaler_key k, k2;
	int slot;

	(void)state;
	/* Preemptive (default with idle_count 1): only with a ready slot. */
	fx_init(f);
	f->pol[0].idle_count = 1;
	f->boot = SEC(30);
	fx_start(f);
	m = scaler_metrics(f->s);
	assert_int_equal(scaler_reserve(f->s, f->now, &k),
	    SCALER_ERR_NO_CAPACITY_NOW);
	assert_int_equal(m->task_operations_total[SCALER_TOP_RESERVE_AVAILABLE_FAILURE], 1);
	fx_run(f, T0 + MINS(1));
	k = must_reserve(f);
	assert_int_equal(scaler_acquire(f->s, f->now, k, &inst, &slot), 0);
	assert_string_equal(inst, "i-0");
	assert_int_equal(scaler_reserve(f->s, f->now, &k2),
	    SCALER_ERR_NO_CAPACITY_NOW);
	fx_done(f);

	/* Not preemptive: potential capacity is enough. */
	fx_init(f);
	fx_start(f);
	m = scaler_metrics(f->s);
	k = must_reserve(f);
	assert_int_equal(scaler_acquire(f->s, f->now, k, &inst, &slot),
	    FL_ERR_AGAIN);
	fx_run(f, T0 + MINS(1));
	assert_true(granted(f, k));
	assert_int_equal(scaler_acquire(f->s, f->now, k, &inst, &slot), 0);
	fx_done(f);

	/* max_instances spoken for: no capacity at all, either mode. */
	for (int pre = 0; pre < 2; pre++) {
		fx_init(f);
		f->as.max_instances = 1;
		f->pol[0].preemptive_mode = pre ? TRI_TRUE : TRI_FALSE;
		f->pol[0].idle_count = pre;
		fx_start(f);
		m = scaler_metrics(f->s);
		fx_run(f, T0 + MINS(1));
		if (!pre) {
			k = must_reserve(f);
			scaler_acquire(f->s, f->now, k, NULL, NULL);
			fx_run(f, T0 + MINS(2));
		} else {
			k = must_reserve(f);
			assert_int_equal(scaler_acquire(f->s, f->now, k, NULL,
			    NULL), 0);
		}
		assert_int_equal(scaler_reserve(f->s, f->now, &k2),
		    SCALER_ERR_NO_CAPACITY);
		assert_int_equal(m->task_operations_total[SCALER_TOP_RESERVE_IOP_FAILURE], 1);
		/* A freed slot is available again. */
		assert_int_equal(scaler_release(f->s, f->now, k), 0);
		k2 = must_reserve(f);
		assert_int_equal(scaler_unreserve(f->s, f->now, k2), 0);
		assert_int_equal(scaler_unreserve(f->s, f->now, k2), FL_ERR_NOTFOUND);
		fx_done(f);
	}
	free(f);
}

static void
test_acquire_timeout(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	scaler_key k;
	int64_t t;

	(void)state;
	fx_init(f);
	f->as.instance_acquire_timeout_ns = MINS(5);
	f->boot = SEC(86400);
	fx_start(f);
	fx_run(f, T0);
	k = must_reserve(f);
	t = f->now;
	assert_int_equal(scaler_acquire(f->s, f->now, k, NULL, NULL), FL_ERR_AGAIN);
	assert_int_equal(scaler_acquire(f->s, f->now, k, NULL, NULL), FL_ERR_AGAIN);
	fx_run(f, t + MINS(5) - SEC(1));
	assert_int_equal(f->ntimed_out, 0);
	assert_int_equal(scaler_metrics(f->s)->tasks[SCALER_TASK_PENDING], 1);
	fx_run(f, t + MINS(5) + SEC(1));
	assert_int_equal(f->ntimed_out, 1);
	assert_true(f->timed_out[0] == k);
	assert_true(f->timed_out_at[0] == t + MINS(5));
	assert_int_equal(scaler_acquire(f->s, f->now, k, NULL, NULL),
	    FL_ERR_NOTFOUND);
	assert_int_equal(scaler_metrics(f->s)->
	    task_operations_total[SCALER_TOP_ACQUIRE_TIMEOUT], 1);
	assert_int_equal(scaler_metrics(f->s)->tasks[SCALER_TASK_PENDING], 0);
	fx_done(f);
	free(f);
}

static void
test_heartbeat_threshold(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct scaler_instance_info ii;
	int64_t ready;
	scaler_key k;

	(void)state;
	fx_init(f);
	f->pol[0].idle_count = 1;
	fx_start(f);
	fx_run(f, T0 + SEC(10));
	assert_int_equal(scaler_instance(f->s, "i-0", &ii), 0);
	assert_int_equal(ii.state, SCALER_READY);
	ready = ii.ready_at;
	f->hb_fail = 1;
	fx_run(f, ready + MINS(2) + SEC(30));
	assert_int_equal(scaler_instance(f->s, "i-0", &ii), 0);
	assert_int_equal(ii.heartbeat_failures, 2);
	assert_int_equal(ii.reason, SCALER_REASON_NONE);
	fx_run(f, ready + MINS(3) + SEC(1));
	assert_int_equal(n_reason(f, SCALER_REASON_UNHEALTHY), 1);
	assert_string_equal(f->dec[0].id, "i-0");
	assert_true(f->dec[0].t == ready + MINS(3));

	/* With a job on it, an unhealthy instance drains first. */
	f->hb_fail = 0;
	fx_run(f, f->now + MINS(1));
	k = must_reserve(f);
	assert_int_equal(scaler_acquire(f->s, f->now, k, NULL, NULL), 0);
	assert_int_equal(scaler_instance(f->s, "i-1", &ii), 0);
	assert_int_equal(ii.acquired, 1);
	f->hb_fail = 1;
	fx_run(f, f->now + MINS(5));
	assert_int_equal(scaler_instance(f->s, "i-1", &ii), 0);
	assert_int_equal(ii.reason, SCALER_REASON_UNHEALTHY);
	assert_int_equal(ii.state, SCALER_READY);	/* draining */
	assert_int_equal(n_dec_id(f, "i-1", SCALER_REASON_UNHEALTHY), 0);
	assert_true(scaler_metrics(f->s)->tasks[SCALER_TASK_UNHEALTHY] >= 1);
	f->hb_fail = 0;
	assert_int_equal(scaler_release(f->s, f->now, k), 0);
	fx_run(f, f->now + SEC(5));
	assert_int_equal(n_dec_id(f, "i-1", SCALER_REASON_UNHEALTHY), 1);
	assert_int_equal(scaler_instance(f->s, "i-1", &ii), FL_ERR_NOTFOUND);
	fx_done(f);
	free(f);
}

static int64_t
inc_total_by(const struct fx *f, int64_t t)
{
	int64_t n = 0;

	for (size_t k = 0; k < f->ninc; k++)
		if (f->inc[k].t <= t)
			n += f->inc[k].n;
	return n;
}

static void
test_scale_throttle(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	(void)state;
	/* limit 2/s, burst 5: 5 at once, then one every half second. */
	fx_init(f);
	f->as.scale_throttle.limit = 2;
	f->as.scale_throttle.burst = 5;
	f->pol[0].idle_count = 20;
	fx_start(f);
	fx_run(f, T0 + SEC(5));
	assert_int_equal(inc_total_by(f, T0), 5);
	assert_int_equal(inc_total_by(f, T0 + SEC(1) / 2 - 1), 5);
	assert_int_equal(inc_total_by(f, T0 + SEC(1) / 2), 6);
	assert_int_equal(inc_total_by(f, T0 + SEC(5)), 15);
	fx_run(f, T0 + SEC(10));
	assert_int_equal(inc_total_by(f, T0 + SEC(10)), 20);
	fx_done(f);

	/* limit 0: 100/s, burst max_instances. */
	fx_init(f);
	f->as.scale_throttle.limit = 0;
	f->as.max_instances = 30;
	f->pol[0].idle_count = 50;
	fx_start(f);
	fx_run(f, T0);
	assert_int_equal(f->inc[0].n, 30);
	fx_done(f);

	fx_init(f);
	f->as.scale_throttle.limit = 0;
	f->pol[0].idle_count = 150;
	fx_start(f);
	fx_run(f, T0);
	assert_int_equal(f->inc[0].n, 100);	/* burst = limit = 100 */
	fx_run(f, T0 + SEC(1) / 10);
	assert_int_equal(inc_total_by(f, T0 + SEC(1) / 10), 110);
	fx_done(f);

	/* -1: unlimited. */
	fx_init(f);
	f->as.scale_throttle.limit = -1;
	f->pol[0].idle_count = 1000;
	fx_start(f);
	fx_run(f, T0);
	assert_int_equal(f->inc[0].n, 1000);
	fx_done(f);
	free(f);
}

static void
test_shutdown(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	int64_t t;
	size_t stuck = 0;
	scaler_key k;

	(void)state;
	fx_init(f);
	f->pol[0].idle_count = 3;
	fx_start(f);
	fx_run(f, T0 + MINS(1));
	assert_int_equal(f->np, 3);
	p_find(f, "i-1")->refuse = 1;
	t = f->now;
	scaler_shutdown(f->s, f->now, 1, &f->a);
	assert_int_equal(f->a.ndecrease, 3);
	fx_apply(f);
	fx_run(f, t + MINS(5));
	assert_int_equal(f->shutdown_done, 1);
	for (size_t i = 0; i < f->ndec; i++)
		stuck += strcmp(f->dec[i].id, "i-1") == 0;
	assert_int_equal(stuck, 1 + 3);	/* first try and 3 retries */
	assert_int_equal(f->np, 1);
	assert_int_equal(n_reason(f, SCALER_REASON_SHUTDOWN), 6);
	assert_int_equal(scaler_reserve(f->s, f->now, &k), FL_ERR_CLOSED);
	fx_done(f);

	/* Without delete_instances: done at once, nothing removed. */
	fx_init(f);
	f->pol[0].idle_count = 2;
	fx_start(f);
	fx_run(f, T0 + MINS(1));
	scaler_shutdown(f->s, f->now, 0, &f->a);
	assert_int_equal(f->a.shutdown_done, 1);
	assert_int_equal(f->a.ndecrease, 0);
	fx_done(f);
	free(f);
}

static void
test_restore(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct scaler_restored r[3] = {
		{ "r-1", 2, T0 - MINS(60), 0 },
		{ "r-2", 1, T0 - MINS(60), 1 },
		{ "r-3", 0, T0 - MINS(60), 0 },
	};
	struct scaler_instance_info ii;
	const char *inst;
	scaler_key k;

	(void)state;
	fx_init(f);
	f->as.max_use_count = 3;
	fx_start(f);
	assert_int_equal(scaler_restore(f->s, f->now, r, 3), 0);
	assert_int_equal(scaler_restore(f->s, f->now, r, 1), FL_ERR_EXISTS);
	snprintf(f->p[0].id, sizeof(f->p[0].id), "r-1");
	snprintf(f->p[1].id, sizeof(f->p[1].id), "r-2");
	snprintf(f->p[2].id, sizeof(f->p[2].id), "p-1");
	f->p[0].created = f->p[1].created = f->p[2].created = T0 - MINS(60);
	f->np = 3;
	fx_run(f, T0 + SEC(30));
	assert_int_equal(scaler_instance(f->s, "r-1", &ii), 0);
	assert_int_equal(ii.state, SCALER_READY);
	assert_int_equal(ii.cause, SCALER_CAUSE_RESTORED);
	assert_int_equal(ii.use_count, 2);
	assert_int_equal(scaler_instance(f->s, "r-3", &ii), FL_ERR_NOTFOUND);
	assert_int_equal(n_reason(f, SCALER_REASON_NOT_READY), 2);	/* r-2, p-1 */
	assert_int_equal(f->np, 1);
	assert_int_equal(f->ninc, 0);
	/* One use left on r-1. */
	k = must_reserve(f);
	assert_int_equal(scaler_acquire(f->s, f->now, k, &inst, NULL), 0);
	assert_string_equal(inst, "r-1");
	assert_int_equal(scaler_release(f->s, f->now, k), 0);
	fx_run(f, f->now + SEC(5));
	assert_int_equal(n_reason(f, SCALER_REASON_MAX_USE_COUNT), 1);
	assert_int_equal(f->np, 0);
	fx_done(f);
	free(f);
}

/* Many ids in and out: the table keeps finding the right ones. */
static void
test_many_instances(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct scaler_report *r = xcalloc(6000, sizeof(*r));
	char (*ids)[16] = xcalloc(6000, 16);
	struct scaler_instance_info ii;
	size_t n = 0;

	(void)state;
	fx_init(f);
	fx_start(f);
	for (int i = 0; i < 6000; i++) {
		snprintf(ids[i], 16, "vm-%d", i * 7919 % 100003);
		r[i].id = ids[i];
		r[i].state = SCALER_P_RUNNING;
	}
	assert_int_equal(scaler_update(f->s, f->now, r, 6000), 0);
	assert_int_equal(scaler_instance_count(f->s), 6000);
	for (int i = 0; i < 6000; i++)
		if (i % 3 != 0)
			r[n++] = r[i];
	assert_int_equal(scaler_update(f->s, f->now + SEC(1), r, n), 0);
	assert_int_equal(scaler_instance_count(f->s), n);
	for (int i = 0; i < 6000; i++) {
		int rc = scaler_instance(f->s, ids[i], &ii);

		if (i % 3 == 0) {
			assert_int_equal(rc, FL_ERR_NOTFOUND);
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(ii.id, ids[i]);
			assert_int_equal(ii.cause, SCALER_CAUSE_PREEXISTING);
		}
	}
	/* A duplicate line is refused, the rest applied. */
	r[1] = r[0];
	assert_int_equal(scaler_update(f->s, f->now + SEC(2), r, n),
	    FL_ERR_INVAL);
	assert_int_equal(scaler_instance_count(f->s), n - 1);
	free(r);
	free(ids);
	fx_done(f);
	free(f);
}

static void
test_scaling_change_event(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	scaler_key k;

	(void)state;
	fx_init(f);
	f->as.capacity_per_instance = 4;
	f->as.max_instances = 7;
	f->pol[0].idle_count = 2;
	f->pol[0].scale_factor = 1.5;
	f->pol[0].scale_factor_limit = 9;
	fx_start(f);
	fx_update(f);
	scaler_decide(f->s, f->now, &f->a);
	assert_int_equal(f->a.scaling_change, 1);
	assert_int_equal(f->a.capacity.desired, 1);
	assert_int_equal(f->a.capacity.capacity_per_instance, 4);
	assert_int_equal(f->a.capacity.max_instance_count, 7);
	assert_int_equal(f->a.capacity.idle_count, 2);
	assert_true(f->a.capacity.scale_factor == 1.5);
	assert_int_equal(f->a.capacity.scale_factor_limit, 9);
	fx_apply(f);
	scaler_decide(f->s, f->now, &f->a);
	assert_int_equal(f->a.scaling_change, 0);
	f->now += SEC(3);
	fx_update(f);
	scaler_decide(f->s, f->now, &f->a);
	assert_int_equal(f->a.scaling_change, 0);
	k = must_reserve(f);
	assert_int_equal(scaler_acquire(f->s, f->now, k, NULL, NULL), 0);
	scaler_decide(f->s, f->now, &f->a);
	/* in use 1, idle target max(2, ceil(1.5)) = 2: 3 slots, 1 instance */
	assert_int_equal(f->a.scaling_change, 0);
	assert_int_equal(f->a.capacity.acquired, 1);
	for (int i = 0; i < 3; i++) {
		k = must_reserve(f);
		assert_int_equal(scaler_acquire(f->s, f->now, k, NULL, NULL), 0);
	}
	scaler_decide(f->s, f->now, &f->a);
	/* in use 4, target 6: 10 slots = 3 instances */
	assert_int_equal(f->a.scaling_change, 1);
	assert_int_equal(f->a.capacity.desired, 3);
	assert_int_equal(f->a.increase, 2);
	assert_int_equal(f->a.capacity.instance_count, 1);
	fx_apply(f);
	fx_done(f);
	free(f);
}


/* The plugin lists new instances before our Increase call returned. */
static void
test_increase_overtaken(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct scaler_instance_info ii;
	const struct scaler_metrics *m;

	(void)state;
	fx_init(f);
	f->pol[0].idle_count = 2;
	fx_start(f);
	m = scaler_metrics(f->s);
	fx_update(f);
	scaler_decide(f->s, f->now, &f->a);
	assert_int_equal(f->a.increase, 2);
	for (int i = 0; i < 2; i++) {
		snprintf(f->p[i].id, sizeof(f->p[i].id), "i-%d", i);
		f->p[i].created = f->now;
	}
	f->np = 2;
	f->now += SEC(1);
	fx_update(f);		/* before scaler_increase_result() */
	assert_int_equal(scaler_instance(f->s, "i-0", &ii), 0);
	assert_int_equal(ii.cause, SCALER_CAUSE_NEW);
	assert_int_equal(ii.reason, SCALER_REASON_NONE);
	assert_int_equal(m->internal_operations_total[SCALER_INT_PREEXISTING], 0);
	scaler_decide(f->s, f->now, &f->a);
	assert_int_equal(f->a.increase, 0);	/* not asked twice */
	scaler_increase_result(f->s, f->now, 2, 2);
	scaler_decide(f->s, f->now, &f->a);
	assert_int_equal(f->a.increase, 0);
	assert_int_equal(f->a.capacity.instance_count, 2);
	assert_int_equal(m->instances[SCALER_P_COUNT], 0);	/* requested */
	f->next_id = 2;
	fx_run(f, f->now + MINS(10));
	assert_int_equal(f->np, 2);
	assert_int_equal(f->ndec, 0);
	fx_done(f);
	free(f);
}

/* A plugin "timeout" is removed; a "deleting" we did not ask for takes
 * no work and is reported lost when it goes. */
static void
test_plugin_timeout_and_deleting(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	struct scaler_instance_info ii;
	scaler_key k;

	(void)state;
	fx_init(f);
	f->pol[0].idle_count = 2;
	f->pol[0].preemptive_mode = TRI_TRUE;
	fx_start(f);
	fx_run(f, T0 + MINS(1));
	assert_int_equal(f->np, 2);
	p_find(f, "i-0")->state = PS_TIMEOUT;
	p_find(f, "i-1")->state = PS_DELETING;
	f->now += SEC(60);
	fx_update(f);
	assert_int_equal(scaler_instance(f->s, "i-0", &ii), 0);
	assert_int_equal(ii.reason, SCALER_REASON_TIMEOUT);
	assert_int_equal(scaler_instance(f->s, "i-1", &ii), 0);
	assert_int_equal(ii.state, SCALER_DELETING);
	/* Neither takes a job. */
	assert_int_equal(scaler_reserve(f->s, f->now, &k),
	    SCALER_ERR_NO_CAPACITY_NOW);
	scaler_decide(f->s, f->now, &f->a);
	assert_int_equal(f->a.ndecrease, 1);
	assert_string_equal(f->a.decrease[0].id, "i-0");
	assert_int_equal(f->a.decrease[0].reason, SCALER_REASON_TIMEOUT);
	assert_int_equal(f->a.increase, 2);	/* replacements */
	fx_apply(f);
	p_remove(f, "i-1");
	fx_run(f, f->now + MINS(1));
	assert_int_equal(f->nlost, 1);
	assert_string_equal(f->lost_id, "i-1");
	assert_int_equal(f->np, 2);
	k = must_reserve(f);
	assert_int_equal(scaler_acquire(f->s, f->now, k, NULL, NULL), 0);
	fx_done(f);
	free(f);
}

/* update_interval normally, update_interval_when_expecting while
 * instances come or go. */
static void
test_update_intervals(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));

	(void)state;
	fx_init(f);
	f->pol[0].idle_count = 1;
	f->boot = SEC(9);
	fx_start(f);
	scaler_decide(f->s, f->now, &f->a);
	assert_true(f->a.next_update == f->now);	/* never polled */
	assert_int_equal(f->a.increase, 0);		/* nor scaled */
	fx_update(f);
	scaler_decide(f->s, f->now, &f->a);
	assert_int_equal(f->a.increase, 1);
	fx_apply(f);
	scaler_decide(f->s, f->now, &f->a);
	assert_true(f->a.next_update == f->now + SEC(2));
	fx_run(f, T0 + SEC(8));
	assert_true(f->a.next_update == T0 + SEC(10));
	fx_run(f, T0 + SEC(10));
	assert_true(f->a.next_update == T0 + SEC(70));	/* ready: calm */
	fx_done(f);
	free(f);
}

static void
test_bad_policy(void **state)
{
	struct fx *f = xcalloc(1, sizeof(*f));
	char err[200];

	(void)state;
	fx_init(f);
	f->pol[0].timezone = "Mars/Olympus_Mons";
	assert_null(scaler_new(&f->as, err, sizeof(err)));
	assert_non_null(strstr(err, "Mars/Olympus_Mons"));
	f->pol[0].timezone = NULL;	/* the system's zone */
	f->periods[0][0] = "61 * * * *";
	assert_null(scaler_new(&f->as, err, sizeof(err)));
	assert_non_null(strstr(err, "61 * * * *"));
	f->periods[0][0] = "* * * * *";
	fx_start(f);
	f->periods[0][0] = "bad";
	assert_int_equal(scaler_set_policies(f->s, f->pol, 1, err, sizeof(err)),
	    FL_ERR_INVAL);
	fx_done(f);
	free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_count_keeps_idle),
		cmocka_unit_test(test_scale_factor),
		cmocka_unit_test(test_max_instances_burst),
		cmocka_unit_test(test_max_use_count_one),
		cmocka_unit_test(test_idle_time_expiry),
		cmocka_unit_test(test_policy_dst),
		cmocka_unit_test(test_reservation_throttling),
		cmocka_unit_test(test_unexpected_removal),
		cmocka_unit_test(test_ready_failure_backoff),
		cmocka_unit_test(test_partial_increase),
		cmocka_unit_test(test_partial_decrease),
		cmocka_unit_test(test_preemptive),
		cmocka_unit_test(test_polling_reservation_no_demand),
		cmocka_unit_test(test_acquire_timeout),
		cmocka_unit_test(test_heartbeat_threshold),
		cmocka_unit_test(test_scale_throttle),
		cmocka_unit_test(test_shutdown),
		cmocka_unit_test(test_restore),
		cmocka_unit_test(test_many_instances),
		cmocka_unit_test(test_scaling_change_event),
		cmocka_unit_test(test_increase_overtaken),
		cmocka_unit_test(test_plugin_timeout_and_deleting),
		cmocka_unit_test(test_update_intervals),
		cmocka_unit_test(test_bad_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * scaler_bench: how long one scaler decision takes over a large fleet, and
 * what an instance costs in memory.  Builds 10,000 ready instances of 10
 * slots each, puts jobs on half the slots, then times scaler_decide():
 * with the full walk over every instance forced (scaler_invalidate()), and
 * with nothing due (the common case).  Also times a reserve / acquire /
 * release round trip.  Prints medians; exits 1 if the full-walk median is
 * not under 1 ms.
 *
 *	build/tests/scaler_bench [instances] [rounds]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scaler.h"
#include "xmalloc.h"

#define NS INT64_C(1000000000)

static int64_t
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static int
cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static double
median_us(int64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp64);
	return (double)v[n / 2] / 1e3;
}

static double
p90_us(int64_t *v, size_t n)
{
	return (double)v[n * 9 / 10] / 1e3;
}

int
main(int argc, char **argv)
{
	size_t ninst = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
	size_t rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 2001;
	struct config_autoscaler as;
	struct config_policy pol;
	char *period = "* * * * *";
	struct scaler_actions a;
	struct scaler_report *rep;
	char (*ids)[24];
	scaler_key *keys;
	int64_t *t_full, *t_fast, *t_job, now = INT64_C(1767571200) * NS;
	struct scaler *s;
	struct mallinfo2 m0, m1;
	size_t njobs;
	double full, fast, job;
	char err[200];

	if (ninst == 0 || rounds == 0)
		return 2;
	memset(&as, 0, sizeof(as));
	memset(&pol, 0, sizeof(pol));
	as.capacity_per_instance = 10;
	as.scale_throttle.limit = -1;
	as.reservation_throttling = TRI_FALSE;
	pol.periods.v = &period;
	pol.periods.n = 1;
	pol.timezone = "UTC";
	pol.idle_count = (int64_t)ninst * 10;	/* keep them all */
	pol.idle_time_ns = 300 * NS;
	pol.preemptive_mode = TRI_FALSE;
	as.policy = &pol;
	as.npolicy = 1;

	rep = xcalloc(ninst, sizeof(*rep));
	ids = xcalloc(ninst, sizeof(*ids));
	for (size_t i = 0; i < ninst; i++) {
		snprintf(ids[i], sizeof(ids[i]), "i-%08zx-bench", i * 2654435761u);
		rep[i].id = ids[i];
		rep[i].state = SCALER_P_RUNNING;
	}
	t_full = xcalloc(rounds, sizeof(*t_full));
	t_fast = xcalloc(rounds, sizeof(*t_fast));
	t_job = xcalloc(rounds, sizeof(*t_job));
	njobs = ninst * 5;
	keys = xcalloc(njobs, sizeof(*keys));

	m0 = mallinfo2();
	s = scaler_new(&as, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "scaler_bench: %s\n", err);
		return 1;
	}
	scaler_actions_init(&a);
	scaler_update(s, now, NULL, 0);
	scaler_decide(s, now, &a);
	scaler_increase_result(s, now, a.increase, a.increase);
	now += 2 * NS;
	scaler_update(s, now, rep, ninst);
	scaler_decide(s, now, &a);
	m1 = mallinfo2();
	if (scaler_instance_count(s) != ninst) {
		fprintf(stderr, "scaler_bench: %zu instances, wanted %zu\n",
		    scaler_instance_count(s), ninst);
		return 1;
	}

	/* Half the slots busy. */
	for (size_t j = 0; j < njobs; j++) {
		if (scaler_reserve(s, now, &keys[j]) != 0 ||
		    scaler_acquire(s, now, keys[j], NULL, NULL) != 0) {
			fprintf(stderr, "scaler_bench: job %zu got no slot\n", j);
			return 1;
		}
	}
	for (size_t k = 0; k < a.nheartbeats; k++)
		scaler_heartbeat_result(s, now, a.heartbeats[k], 1);
	scaler_decide(s, now, &a);

	for (size_t r = 0; r < rounds; r++) {
		int64_t t0;

		now += NS / 1000;
		scaler_invalidate(s);
		t0 = mono();
		scaler_decide(s, now, &a);
		t_full[r] = mono() - t0;

		now += NS / 1000;
		t0 = mono();
		scaler_decide(s, now, &a);
		t_fast[r] = mono() - t0;

		t0 = mono();
		scaler_release(s, now, keys[r % njobs]);
		scaler_reserve(s, now, &keys[r % njobs]);
		scaler_acquire(s, now, keys[r % njobs], NULL, NULL);
		t_job[r] = mono() - t0;
	}
	/* median_us() sorts, so it goes before p90_us(). */
	full = median_us(t_full, rounds);
	fast = median_us(t_fast, rounds);
	job = median_us(t_job, rounds);
	printf("scaler_bench: %zu instances x 10 slots, %zu jobs, %zu rounds\n",
	    ninst, njobs, rounds);
	printf("decide, full walk:    median %.1f us, p90 %.1f us\n", full,
	    p90_us(t_full, rounds));
	printf("decide, nothing due:  median %.3f us, p90 %.3f us\n", fast,
	    p90_us(t_fast, rounds));
	printf("release+reserve+acquire: median %.3f us, p90 %.3f us\n", job,
	    p90_us(t_job, rounds));
	if (m1.uordblks > m0.uordblks)
		printf("memory: %.0f bytes per instance (table, record, slots, "
		    "id)\n", (double)(m1.uordblks - m0.uordblks) /
		    (double)ninst);
	else
		printf("memory: not measurable here (mallinfo2 does not see "
		    "this allocator, e.g. under ASan)\n");

	scaler_actions_release(&a);
	scaler_free(s);
	free(rep);
	free(ids);
	free(keys);
	free(t_full);
	free(t_fast);
	free(t_job);
	return full < 1000.0 ? 0 : 1;
}

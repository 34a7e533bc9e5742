/*
 * bench_update: the round trip of one Update through the plugin host, as
 * the scaler will make it every poll: the owner's plugin_host_update() on
 * the event loop, the request to the plugin process over its socket, the
 * plugin listing its instances, the answer decoded into plain structs and
 * delivered to the callback on the loop.  The plugin is the fake plugin
 * (build/tests/fake_plugin, next to this program) holding N instances.
 *
 *   build/tests/bench_update [-n calls] [-i instances]
 *
 * Prints one line:
 *   update_1000: median X ms p95 Y ms (goal: median < 2 ms)
 * and exits 0 if every call succeeded (the goal is reported, not
 * enforced).
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "err.h"
#include "log.h"
#include "plugin_host.h"

static struct event_base *base;
static int ready, failed, done, ok;
static size_t got;
static int64_t t_done;

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
loop_until(const int *flag, int ms)
{
	int64_t end = now_ns() + (int64_t)ms * 1000000;

	while (!*flag && now_ns() < end) {
		struct timeval tv = { 1, 0 };

		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	return *flag ? 0 : -1;
}

static void
on_ready(void *arg, struct plugin_host *h, const struct plugin_info *info,
    const struct plugin_status *ust, const struct plugin_instances *inst)
{
	(void)arg;
	(void)h;
	(void)info;
	(void)ust;
	(void)inst;
	ready = 1;
}

static void
on_failed(void *arg, struct plugin_host *h, const char *reason)
{
	(void)arg;
	(void)h;
	fprintf(stderr, "bench_update: plugin failed: %s\n", reason);
	failed = ready = 1;
}

static void
on_increase(void *arg, const struct plugin_status *st, int64_t n,
    const char *perr)
{
	(void)arg;
	(void)perr;
	ok = st->rc == 0;
	got = (size_t)n;
	done = 1;
}

static void
on_update(void *arg, const struct plugin_status *st,
    const struct plugin_instances *inst)
{
	(void)arg;
	t_done = now_ns();
	ok = st->rc == 0;
	if (!ok)
		fprintf(stderr, "bench_update: %s\n", st->msg);
	got = inst != NULL ? inst->n : 0;
	done = 1;
}

static void
on_stop(void *arg, struct plugin_host *h, const struct plugin_stop_result *r)
{
	(void)arg;
	(void)h;
	(void)r;
	done = 1;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
	struct plugin_host_opts o;
	struct plugin_host *h;
	char exe[PATH_MAX], fake[PATH_MAX + 32], err[512], *slash;
	int64_t *t, t0;
	int ncalls = 500, ninst = 1000, c, i, rc = 1;
	ssize_t n;

	while ((c = getopt(argc, argv, "n:i:")) != -1) {
		switch (c) {
		case 'n':
			ncalls = atoi(optarg);
			break;
		case 'i':
			ninst = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: bench_update [-n calls] "
			    "[-i instances]\n");
			return 2;
		}
	}
	if (ncalls < 1 || ninst < 1)
		return 2;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return 1;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	*slash = '\0';
	snprintf(fake, sizeof(fake), "%s/fake_plugin", exe);

	log_set_level(LOG_ERROR);
	setenv("FAKE_PLUGIN_SCENARIO", "ok", 1);
	setenv("FAKE_PLUGIN_CREATE_MS", "0", 1);
	unsetenv("FAKE_PLUGIN_STATE_DIR");
	base = event_base_new();
	memset(&o, 0, sizeof(o));
	o.path = fake;
	o.name = "bench";
	o.max_failures = 1;
	o.cbs.on_ready = on_ready;
	o.cbs.on_failed = on_failed;
	h = plugin_host_new(base, &o, err, sizeof(err));
	if (h == NULL || plugin_host_start(h, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_update: %s\n", err);
		goto out;
	}
	if (loop_until(&ready, 30000) != 0 || failed)
		goto out;
	done = 0;
	if (plugin_host_increase(h, ninst, on_increase, NULL) != 0 ||
	    loop_until(&done, 30000) != 0 || !ok || got != (size_t)ninst) {
		fprintf(stderr, "bench_update: Increase(%d) failed\n", ninst);
		goto out;
	}
	t = calloc((size_t)ncalls, sizeof(*t));
	for (i = -20; i < ncalls; i++) {	/* 20 warm-up calls */
		done = 0;
		t0 = now_ns();
		if (plugin_host_update(h, on_update, NULL) != 0 ||
		    loop_until(&done, 30000) != 0 || !ok ||
		    got != (size_t)ninst) {
			fprintf(stderr, "bench_update: Update failed (%zu "
			    "instances)\n", got);
			break;
		}
		if (i >= 0)
			t[i] = t_done - t0;
	}
	if (i == ncalls) {
		qsort(t, (size_t)ncalls, sizeof(*t), cmp_i64);
		printf("update_%d: median %.3f ms p95 %.3f ms (goal: median "
		    "< 2 ms)\n", ninst, t[ncalls / 2] / 1e6,
		    t[(size_t)ncalls * 95 / 100] / 1e6);
		rc = 0;
	}
	free(t);
	done = 0;
	if (plugin_host_stop(h, on_stop, NULL) == 0)
		(void)loop_until(&done, 30000);
out:
	plugin_host_free(h);
	event_base_free(base);
	log_release();
	return rc;
}

/*
 * Unit tests of the fleet glue against the fake plugin
 * (tests/helpers/fake_plugin.c, build/tests/fake_plugin next to this
 * program's directory): no SSH here (no instance_ready_command), that is
 * tests/integration/fleet.sh's part with the real plugin.  Each test runs
 * a fleet from a config text on its own loop with bounded waits and stops
 * it.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config.h"
#include "err.h"
#include "fleet.h"
#include "log.h"
#include "xmalloc.h"

static struct event_base *base;
static char fake[PATH_MAX];

static struct config *cfg;
static struct fleet *fl;
static int stopped, nlost, ngrant_hook, stop_in_hook, nremoving;
static char removing_id[64];
static int acq_ev[3];
static int ci_calls, ci_rc;
static char ci_user[64];

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
loop_until(int (*pred)(void), int64_t ms)
{
	int64_t end = now_ms() + ms;

	for (;;) {
		struct timeval tv = { 0, 20000 };

		if (pred != NULL && pred())
			return 0;
		if (now_ms() >= end)
			return pred == NULL ? 0 : -1;
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
}

static size_t
nstate(enum scaler_istate st)
{
	struct scaler *s = fleet_scaler(fl);
	size_t n = 0;

	for (size_t i = 0; i < scaler_instance_count(s); i++) {
		struct scaler_instance_info in;

		if (scaler_instance_at(s, i, &in) == 0 && in.state == st)
			n++;
	}
	return n;
}

static int two_ready(void) { return nstate(SCALER_READY) == 2; }
static int one_ready(void) { return nstate(SCALER_READY) == 1; }
static int is_stopped(void) { return stopped; }
static int removing_told(void) { return nremoving > 0; }
static int ci_done(void) { return ci_calls > 0; }
static int timed_out(void) { return acq_ev[FLEET_ACQ_TIMED_OUT] > 0; }

static void
on_stopped(void *arg, struct fleet *f)
{
	(void)arg;
	(void)f;
	stopped = 1;
}

static void
hook_lost(void *arg, struct fleet *f, const char *instance)
{
	(void)arg;
	(void)f;
	(void)instance;
	nlost++;
}

static void
hook_removing(void *arg, struct fleet *f, const char *instance)
{
	(void)arg;
	(void)f;
	nremoving++;
	snprintf(removing_id, sizeof(removing_id), "%s", instance);
	/* Told before the plugin is asked: the instance is still listed. */
	assert_true(nstate(SCALER_READY) + nstate(SCALER_REMOVING) >= 1);
}

static void
hook_granted(void *arg, struct fleet *f, scaler_key key, const char *inst,
    int slot)
{
	(void)arg;
	(void)f;
	(void)key;
	(void)inst;
	(void)slot;
	ngrant_hook++;
	if (stop_in_hook)	/* inside the decision pass */
		assert_int_equal(fleet_stop(f, 1, on_stopped, NULL), 0);
}

static void
acq_cb(void *arg, enum fleet_acq_event ev, scaler_key key,
    const char *instance, int slot)
{
	(void)arg;
	(void)key;
	(void)instance;
	(void)slot;
	acq_ev[ev]++;
}

static void
ci_cb(void *arg, int rc, const char *msg, const struct plugin_connect_info *ci)
{
	(void)arg;
	(void)msg;
	ci_calls++;
	ci_rc = rc;
	if (rc == 0)
		snprintf(ci_user, sizeof(ci_user), "%s", ci->username);
}

/* A fleet for the runner in toml (with PLUGIN replaced by the fake). */
static void
start_fleet(const char *extra_autoscaler, const char *policy)
{
	struct config_diags d = { 0 };
	struct fleet_hooks h = { 0 };
	char err[512];
	char *text;
	int rc;

	text = xasprintf(
	    "[[runners]]\n"
	    "  name = \"t\"\n  url = \"http://127.0.0.1:1\"\n"
	    "  token = \"glrt-unittesttoken\"\n"
	    "  executor = \"docker-autoscaler\"\n"
	    "  [runners.autoscaler]\n"
	    "    plugin = \"%s\"\n"
	    "    capacity_per_instance = 1\n"
	    "    update_interval = \"1s\"\n"
	    "    update_interval_when_expecting = \"100ms\"\n"
	    "    shutdown_deletion_interval = \"1s\"\n"
	    "%s"
	    "    [[runners.autoscaler.policy]]\n%s",
	    fake, extra_autoscaler, policy);
	rc = config_load_buf("test.toml", text, strlen(text), &cfg, &d);
	for (size_t i = 0; i < d.n; i++)
		print_message("%s\n", d.v[i].msg);
	config_diags_release(&d);
	free(text);
	assert_int_equal(rc, 0);
	h.on_lost = hook_lost;
	h.on_removing = hook_removing;
	h.on_granted = hook_granted;
	fl = fleet_new(base, &cfg->runners[0], &h, err, sizeof(err));
	if (fl == NULL)
		print_message("fleet_new: %s\n", err);
	assert_non_null(fl);
	assert_int_equal(fleet_start(fl, err, sizeof(err)), 0);
	stopped = nlost = ngrant_hook = nremoving = 0;
	removing_id[0] = '\0';
	memset(acq_ev, 0, sizeof(acq_ev));
	ci_calls = 0;
	ci_user[0] = '\0';
}

static void
stop_fleet(int del)
{
	assert_int_equal(fleet_stop(fl, del, on_stopped, NULL), 0);
	assert_int_equal(fleet_stop(fl, del, on_stopped, NULL), FL_ERR_AGAIN);
	assert_int_equal(loop_until(is_stopped, 30000), 0);
	assert_int_equal(plugin_host_state(fleet_plugin_host(fl)),
	    PLUGIN_HOST_STOPPED);
	if (del)	/* every instance seen gone before the plugin stopped */
		assert_int_equal(scaler_instance_count(fleet_scaler(fl)), 0);
	fleet_free(fl);
	fl = NULL;
	config_free(cfg);
	cfg = NULL;
}

/* idle_count 2: two ready instances; a grant, async; ConnectInfo async,
 * cached the second time; deletion on stop empties the table. */
static void
test_idle_and_grant(void **state)
{
	scaler_key k;

	(void)state;
	start_fleet("", "      idle_count = 2\n      idle_time = \"1m\"\n");
	assert_int_equal(loop_until(two_ready, 15000), 0);
	assert_int_equal(scaler_instance_count(fleet_scaler(fl)), 2);

	assert_int_equal(fleet_reserve(fl, &k), 0);
	assert_int_equal(fleet_acquire(fl, k, acq_cb, NULL), 0);
	assert_int_equal(fleet_acquire(fl, k, acq_cb, NULL), FL_ERR_EXISTS);
	assert_int_equal(acq_ev[FLEET_ACQ_GRANTED], 0);	/* never inline */
	loop_until(NULL, 100);
	assert_int_equal(acq_ev[FLEET_ACQ_GRANTED], 1);
	assert_int_equal(ngrant_hook, 1);

	/* ConnectInfo from the plugin, then from the cache: both async. */
	for (int i = 0; i < 2; i++) {
		struct scaler_instance_info in;

		assert_int_equal(scaler_instance_at(fleet_scaler(fl), 0, &in), 0);
		ci_calls = 0;
		assert_int_equal(fleet_connect_info(fl, in.id, ci_cb, NULL), 0);
		assert_int_equal(ci_calls, 0);
		assert_int_equal(loop_until(ci_done, 5000), 0);
		assert_int_equal(ci_rc, 0);
		assert_string_equal(ci_user, "fake");
	}
	ci_calls = 0;
	assert_int_equal(fleet_connect_info(fl, "no-such", ci_cb, NULL), 0);
	assert_int_equal(loop_until(ci_done, 5000), 0);
	assert_int_not_equal(ci_rc, 0);

	assert_int_equal(fleet_release(fl, k), 0);
	assert_int_equal(fleet_release(fl, k), FL_ERR_NOTFOUND);
	assert_int_equal(nlost, 0);
	stop_fleet(1);
}

/* fleet_stop() from a hook, inside the decision pass (the shutdown must
 * wait for the pass to end: ASan tells if it does not). */
static void
test_stop_from_hook(void **state)
{
	scaler_key k;

	(void)state;
	start_fleet("", "      idle_count = 1\n      idle_time = \"1m\"\n");
	assert_int_equal(loop_until(one_ready, 8000), 0);
	stop_in_hook = 1;
	assert_int_equal(fleet_reserve(fl, &k), 0);
	assert_int_equal(fleet_acquire(fl, k, acq_cb, NULL), 0);
	assert_int_equal(loop_until(is_stopped, 30000), 0);
	stop_in_hook = 0;
	assert_int_equal(ngrant_hook, 1);
	/* The grant was told to the hook and to the callback. */
	assert_int_equal(acq_ev[FLEET_ACQ_GRANTED], 1);
	assert_int_equal(scaler_instance_count(fleet_scaler(fl)), 0);
	fleet_free(fl);
	fl = NULL;
	config_free(cfg);
	cfg = NULL;
}

/* A pending acquisition is told TIMED_OUT when the fleet stops; with
 * delete_instances the instance that was coming is removed. */
static void
test_stop_times_out_pending(void **state)
{
	scaler_key k;
	int rc;

	(void)state;
	start_fleet("    max_instances = 1\n",
	    "      idle_count = 0\n      idle_time = \"1m\"\n");
	loop_until(NULL, 300);		/* the first Update */
	rc = fleet_reserve(fl, &k);
	assert_int_equal(rc, 0);
	rc = fleet_acquire(fl, k, acq_cb, NULL);
	assert_int_equal(rc, 0);
	/* No ready instance yet: the acquisition waits (the fake's
	 * instances stay "creating" 100 ms). */
	assert_int_equal(acq_ev[FLEET_ACQ_GRANTED], 0);
	assert_int_equal(fleet_stop(fl, 1, on_stopped, NULL), 0);
	assert_int_equal(loop_until(timed_out, 5000), 0);
	assert_int_equal(acq_ev[FLEET_ACQ_GRANTED], 0);
	assert_int_equal(fleet_acquire(fl, k, acq_cb, NULL), FL_ERR_CLOSED);
	assert_int_equal(loop_until(is_stopped, 30000), 0);
	assert_int_equal(scaler_instance_count(fleet_scaler(fl)), 0);
	fleet_free(fl);
	fl = NULL;
	config_free(cfg);
	cfg = NULL;
}

/*
 * The plugin dies inside the first Increase, after creating its
 * instances: the Increase is reported failed, the restart's instance
 * list (on_restart) brings them in, and no more are made than idle_count
 * asks for.
 */
static void
test_restart_reconciles(void **state)
{
	char dir[] = "/tmp/test_fleet.XXXXXX";
	char cmd[128];

	(void)state;
	assert_non_null(mkdtemp(dir));
	setenv("FAKE_PLUGIN_STATE_DIR", dir, 1);
	setenv("FAKE_PLUGIN_SCENARIO", "crash-in-increase", 1);
	start_fleet("", "      idle_count = 1\n      idle_time = \"1m\"\n");
	assert_int_equal(loop_until(one_ready, 8000), 0);
	assert_true(plugin_host_restarts(fleet_plugin_host(fl)) >= 1);
	loop_until(NULL, 1500);		/* a few Updates more */
	assert_int_equal(scaler_instance_count(fleet_scaler(fl)), 1);
	assert_int_equal(nstate(SCALER_READY), 1);
	/* Adopted as the Increase's answer, not removed as pre-existing. */
	assert_int_equal(scaler_metrics(fleet_scaler(fl))->
	    removals_total[SCALER_REASON_NOT_READY], 0);
	assert_int_equal(scaler_metrics(fleet_scaler(fl))->
	    internal_operations_total[SCALER_INT_PREEXISTING], 0);
	stop_fleet(1);
	unsetenv("FAKE_PLUGIN_SCENARIO");
	unsetenv("FAKE_PLUGIN_STATE_DIR");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

static int
setup(void **state)
{
	char exe[PATH_MAX], *slash;
	ssize_t n;

	(void)state;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	*slash = '\0';
	if ((size_t)snprintf(fake, sizeof(fake), "%s/../fake_plugin", exe) >=
	    sizeof(fake))
		return -1;
	if (access(fake, X_OK) != 0) {
		fprintf(stderr, "no %s: build it (make)\n", fake);
		return -1;
	}
	base = event_base_new();
	log_set_level(getenv("TEST_LOG_DEBUG") != NULL ? LOG_DEBUG : LOG_ERROR);
	unsetenv("FAKE_PLUGIN_STATE_DIR");
	unsetenv("FAKE_PLUGIN_SCENARIO");
	setenv("FAKE_PLUGIN_CREATE_MS", "100", 1);
	setenv("FAKE_PLUGIN_DELETE_MS", "100", 1);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	event_base_free(base);
	log_release();
	return 0;
}

/* max_use_count 1: the instance a job used is removed, and the owner is
 * told before the plugin is asked (to close its connection quietly). */
static void
test_used_up_removing_hook(void **state)
{
	struct scaler_instance_info in;
	char used[64];
	scaler_key k;

	(void)state;
	start_fleet("    max_use_count = 1\n",
	    "      idle_count = 1\n      idle_time = \"1m\"\n");
	assert_int_equal(loop_until(one_ready, 8000), 0);
	assert_int_equal(scaler_instance_at(fleet_scaler(fl), 0, &in), 0);
	snprintf(used, sizeof(used), "%s", in.id);
	assert_int_equal(fleet_reserve(fl, &k), 0);
	assert_int_equal(fleet_acquire(fl, k, acq_cb, NULL), 0);
	loop_until(NULL, 100);
	assert_int_equal(acq_ev[FLEET_ACQ_GRANTED], 1);
	assert_int_equal(nremoving, 0);
	assert_int_equal(fleet_release(fl, k), 0);
	assert_int_equal(loop_until(removing_told, 5000), 0);
	assert_string_equal(removing_id, used);
	assert_int_equal(nlost, 0);
	stop_fleet(1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_and_grant),
		cmocka_unit_test(test_stop_times_out_pending),
		cmocka_unit_test(test_restart_reconciles),
		cmocka_unit_test(test_stop_from_hook),
		cmocka_unit_test(test_used_up_removing_hook),
	};

	/* TEST_FILTER=test_idle_and_grant: run only the matching tests. */
	if (getenv("TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}

/*
 * fleet_probe: runs one fleet (manager/fleet.c) for the first runner of a
 * config file against a real plugin, for tests/integration/fleet.sh.
 * Commands run in order; each prints what it saw as lines on stdout the
 * test greps; logs (info, or debug with -d) go to stderr.
 *
 *   fleet_probe [-d] CONFIG COMMAND...
 *
 *   start               start the plugin
 *   wait-ready N SECS   until N instances are ready: "ready N ms T"
 *   wait-count N SECS   until the scaler knows exactly N instances
 *                       (any state): "count N ms T"
 *   run SECS            just run the loop for SECS
 *   acquire SECS        reserve (retrying while no capacity) and acquire;
 *                       "granted ID slot N ms T"
 *   release             release the held job: "released rc R"
 *   wait-gone SECS      until the instance of the last grant is not
 *                       known any more: "gone ID ms T"
 *   kill-sshd STATEDIR  SIGKILL the sshd of the held job's instance
 *                       (STATEDIR/instances/ID/sshd.pid, checked against
 *                       its command line): "killed ID pid P"
 *   wait-cancelled SECS until the held job is cancelled (its callback
 *                       and the on_cancelled hook): "cancelled ID ms T"
 *   idle N              policies replaced: the first one with idle_count N
 *                       (fleet_set_policies): "idle N"
 *   show                one line per known instance:
 *                       "instance ID use N state S"
 *   wait-id-gone ID SECS until instance ID is known (the first Update)
 *                       and then not known any more: "gone ID ms T"
 *   stop [delete]       fleet_stop; "stopped ms T"
 *
 * The fleet gets CONFIG as its config_path (state_storage's default dir).
 *
 * Exit 0 when every command did what it should, 1 with
 * "fleet_probe: error: ..." otherwise (the fleet is then stopped with
 * deletion, so no sshd is left behind by a failed run).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "err.h"
#include "fleet.h"
#include "log.h"
#include "xmalloc.h"

static struct event_base *base;
static struct fleet *fleet;
static struct config *cfg;

static scaler_key held;
static char held_inst[256];
static int granted, timed_out, cancelled_cb, cancelled_hook, stopped;
static int lost_count;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
on_stopped(void *arg, struct fleet *f)
{
	(void)arg;
	(void)f;
	stopped = 1;
}

/* Run the loop for up to ms, or until pred() says yes; 0 or -1. */
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

static int is_stopped(void) { return stopped; }

static void __attribute__((format(printf, 1, 2), noreturn))
die(const char *fmt, ...)
{
	va_list ap;

	printf("fleet_probe: error: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (fleet != NULL && fleet_stop(fleet, 1, on_stopped, NULL) == 0)
		loop_until(is_stopped, 60000);
	fleet_free(fleet);
	config_free(cfg);
	event_base_free(base);
	log_release();
	exit(1);
}

static size_t
count_state(enum scaler_istate st)
{
	struct scaler *s = fleet_scaler(fleet);
	size_t n = 0;

	for (size_t i = 0; i < scaler_instance_count(s); i++) {
		struct scaler_instance_info in;

		if (scaler_instance_at(s, i, &in) == 0 && in.state == st)
			n++;
	}
	return n;
}

static size_t want;
static int ready_n(void) { return count_state(SCALER_READY) == want; }
static int count_n(void) { return scaler_instance_count(fleet_scaler(fleet)) == want; }
static int is_granted(void) { return granted || timed_out; }
static int is_cancelled(void) { return cancelled_cb && cancelled_hook; }

static int
is_gone(void)
{
	struct scaler_instance_info in;

	return scaler_instance(fleet_scaler(fleet), held_inst, &in) ==
	    FL_ERR_NOTFOUND;
}

static int is_known(void) { return !is_gone(); }

static void
acq_cb(void *arg, enum fleet_acq_event ev, scaler_key key,
    const char *instance, int slot)
{
	(void)arg;
	if (key != held)
		return;
	switch (ev) {
	case FLEET_ACQ_GRANTED:
		snprintf(held_inst, sizeof(held_inst), "%s", instance);
		granted = 1;
		(void)slot;
		break;
	case FLEET_ACQ_TIMED_OUT:
		timed_out = 1;
		break;
	case FLEET_ACQ_CANCELLED:
		cancelled_cb = 1;
		break;
	}
}

static void
hook_cancelled(void *arg, struct fleet *f, scaler_key key,
    const char *instance, int slot)
{
	(void)arg;
	(void)f;
	(void)slot;
	if (key == held && strcmp(instance, held_inst) == 0)
		cancelled_hook = 1;
}

static void
hook_lost(void *arg, struct fleet *f, const char *instance)
{
	(void)arg;
	(void)f;
	(void)instance;
	lost_count++;
}

static long
num(const char *s)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0)
		die("bad number %s", s);
	return v;
}

/* SIGKILL the sshd of instance id, read from its pid file. */
static void
kill_sshd(const char *state_dir, const char *id)
{
	char path[1024], cmd[4096], conf[1024];
	FILE *fp;
	long pid = -1;
	size_t n;

	snprintf(path, sizeof(path), "%s/instances/%s/sshd.pid", state_dir, id);
	fp = fopen(path, "r");
	if (fp == NULL || fscanf(fp, "%ld", &pid) != 1 || pid <= 1)
		die("cannot read %s", path);
	fclose(fp);
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	fp = fopen(path, "r");
	if (fp == NULL)
		die("sshd %ld of %s not running", pid, id);
	n = fread(cmd, 1, sizeof(cmd) - 1, fp);
	fclose(fp);
	for (size_t i = 0; i < n; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	cmd[n] = '\0';
	snprintf(conf, sizeof(conf), "%s/instances/%s/sshd_config", state_dir,
	    id);
	if (strstr(cmd, conf) == NULL)
		die("pid %ld is not the sshd of %s: %s", pid, id, cmd);
	if (kill((pid_t)pid, SIGKILL) != 0)
		die("kill %ld: %s", pid, strerror(errno));
	printf("killed %s pid %ld\n", id, pid);
}

int
main(int argc, char **argv)
{
	struct config_diags diags = { 0 };
	struct fleet_hooks hooks = { 0 };
	char err[1024];
	int ai = 1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_INFO);
	log_set_format(LOG_FORMAT_TEXT);
	if (ai < argc && strcmp(argv[ai], "-d") == 0) {
		log_set_level(LOG_DEBUG);
		ai++;
	}
	if (argc - ai < 1) {
		fprintf(stderr, "usage: fleet_probe [-d] CONFIG COMMAND...\n");
		return 2;
	}
	if (config_load(argv[ai], &cfg, &diags) != 0 || cfg->nrunners < 1) {
		for (size_t i = 0; i < diags.n; i++)
			printf("# %s\n", diags.v[i].msg);
		config_diags_release(&diags);
		config_free(cfg);
		cfg = NULL;
		die("cannot load %s", argv[ai]);
	}
	config_diags_release(&diags);
	ai++;
	base = event_base_new();
	hooks.on_cancelled = hook_cancelled;
	hooks.on_lost = hook_lost;
	hooks.config_path = argv[ai - 1];
	fleet = fleet_new(base, &cfg->runners[0], &hooks, err, sizeof(err));
	if (fleet == NULL)
		die("fleet_new: %s", err);

	while (ai < argc) {
		const char *c = argv[ai++];
		int64_t t0 = now_ms();

#define ARG() (ai < argc ? argv[ai++] : (die("%s: argument missing", c), ""))
		if (strcmp(c, "start") == 0) {
			if (fleet_start(fleet, err, sizeof(err)) != 0)
				die("start: %s", err);
			printf("started\n");
		} else if (strcmp(c, "wait-ready") == 0) {
			want = (size_t)num(ARG());
			if (loop_until(ready_n, num(ARG()) * 1000) != 0)
				die("wait-ready: %zu ready, %zu known",
				    count_state(SCALER_READY),
				    scaler_instance_count(fleet_scaler(fleet)));
			printf("ready %zu ms %" PRId64 "\n", want, now_ms() - t0);
		} else if (strcmp(c, "wait-count") == 0) {
			want = (size_t)num(ARG());
			if (loop_until(count_n, num(ARG()) * 1000) != 0)
				die("wait-count: %zu known",
				    scaler_instance_count(fleet_scaler(fleet)));
			printf("count %zu ms %" PRId64 "\n", want, now_ms() - t0);
		} else if (strcmp(c, "run") == 0) {
			loop_until(NULL, num(ARG()) * 1000);
		} else if (strcmp(c, "acquire") == 0) {
			int64_t end = now_ms() + num(ARG()) * 1000;
			int rc;

			granted = timed_out = cancelled_cb = cancelled_hook = 0;
			while ((rc = fleet_reserve(fleet, &held)) != 0) {
				if (now_ms() >= end)
					die("reserve: %s", err_str(rc));
				loop_until(NULL, 100);
			}
			rc = fleet_acquire(fleet, held, acq_cb, NULL);
			if (rc != 0)
				die("acquire: %s", err_str(rc));
			if (loop_until(is_granted, end - now_ms()) != 0 ||
			    !granted)
				die("acquire: not granted%s",
				    timed_out ? " (timed out)" : "");
			printf("granted %s ms %" PRId64 "\n", held_inst,
			    now_ms() - t0);
		} else if (strcmp(c, "release") == 0) {
			printf("released rc %d\n", fleet_release(fleet, held));
		} else if (strcmp(c, "wait-gone") == 0) {
			if (loop_until(is_gone, num(ARG()) * 1000) != 0)
				die("wait-gone: %s still known", held_inst);
			printf("gone %s ms %" PRId64 "\n", held_inst,
			    now_ms() - t0);
		} else if (strcmp(c, "show") == 0) {
			struct scaler *s = fleet_scaler(fleet);

			for (size_t i = 0; i < scaler_instance_count(s); i++) {
				struct scaler_instance_info in;

				if (scaler_instance_at(s, i, &in) == 0)
					printf("instance %s use %" PRId64
					    " state %d\n", in.id, in.use_count,
					    (int)in.state);
			}
		} else if (strcmp(c, "wait-id-gone") == 0) {
			int64_t end;

			snprintf(held_inst, sizeof(held_inst), "%s", ARG());
			end = now_ms() + num(ARG()) * 1000;
			if (loop_until(is_known, end - now_ms()) != 0)
				die("wait-id-gone: %s never known", held_inst);
			if (loop_until(is_gone, end - now_ms()) != 0)
				die("wait-id-gone: %s still known", held_inst);
			printf("gone %s ms %" PRId64 "\n", held_inst,
			    now_ms() - t0);
		} else if (strcmp(c, "kill-sshd") == 0) {
			kill_sshd(ARG(), held_inst);
		} else if (strcmp(c, "wait-cancelled") == 0) {
			if (loop_until(is_cancelled, num(ARG()) * 1000) != 0)
				die("wait-cancelled: callback %d hook %d lost %d",
				    cancelled_cb, cancelled_hook, lost_count);
			printf("cancelled %s ms %" PRId64 "\n", held_inst,
			    now_ms() - t0);
		} else if (strcmp(c, "idle") == 0) {
			const struct config_autoscaler *as =
			    &cfg->runners[0].autoscaler;
			struct config_policy p;

			if (as->npolicy < 1)
				die("idle: the config has no policy");
			p = as->policy[0];
			p.idle_count = num(ARG());
			if (fleet_set_policies(fleet, &p, 1, err,
			    sizeof(err)) != 0)
				die("idle: %s", err);
			printf("idle %" PRId64 "\n", p.idle_count);
		} else if (strcmp(c, "stop") == 0) {
			int del = ai < argc && strcmp(argv[ai], "delete") == 0;

			if (del)
				ai++;
			if (fleet_stop(fleet, del, on_stopped, NULL) != 0)
				die("stop: already stopping");
			if (loop_until(is_stopped, 120000) != 0)
				die("stop: not stopped after 120 s");
			printf("stopped ms %" PRId64 "\n", now_ms() - t0);
		} else {
			die("unknown command %s", c);
		}
#undef ARG
	}
	if (!stopped) {
		if (fleet_stop(fleet, 0, on_stopped, NULL) == 0)
			loop_until(is_stopped, 60000);
	}
	fleet_free(fleet);
	config_free(cfg);
	event_base_free(base);
	log_release();
	return 0;
}

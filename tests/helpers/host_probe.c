/*
 * host_probe: drives one plugin_host from the command line, for
 * tests/integration/plugin_host.sh (things a shell does better: kill -9 of
 * the manager itself, reading its log as another process would).
 *
 *   host_probe [-j] [-t handshake_ms] [-m max_failures] [-b backoff_ms]
 *              [-s stop_grace_ms] [-k kill_grace_ms] [-T deadline_ms]
 *              PLUGIN COMMAND...
 *
 * PLUGIN is resolved with plugin_resolve().  Commands, run in order:
 *   start          start; wait until ready (exit 1 if it fails for good)
 *   update         print "instances N" then "ID STATE" lines
 *   update?        the same, but a failure is printed, not fatal
 *   increase N     Increase(N); print "increased N"
 *   wait-running N poll Update until N instances are running
 *   pid            print "pid N" (the plugin's)
 *   hold           print "pid N" and wait forever (kill me)
 *   stop           stop; print "stopped how=self|term|kill|none"
 * Logs go to stderr (-j: json format).  Exit 0 when every command
 * worked, 1 with "host_probe: error: ..." otherwise.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
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
static struct plugin_host *host;
static int deadline_ms = 30000;

static int done, failed, ready, settled;	/* settled: ready or failed */
static char fail_msg[1024];
static int64_t increased;
static size_t nrunning, ninst;
static enum plugin_exit_how stop_how;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the loop until *flag or the deadline; 0 or -1 (timed out). */
static int
loop_until(const int *flag, int ms)
{
	int64_t end = now_ms() + ms;

	while (!*flag) {
		struct timeval tv = { 0, 50000 };

		if (now_ms() >= end)
			return -1;
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	return 0;
}

static void __attribute__((format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "host_probe: error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stdout);
	plugin_host_free(host);
	event_base_free(base);
	exit(1);
}

static void
on_ready(void *arg, struct plugin_host *h, const struct plugin_info *info,
    const struct plugin_status *ust, const struct plugin_instances *inst)
{
	(void)arg;
	(void)h;
	(void)ust;
	printf("ready id=%s version=%s instances=%zu\n", info->id,
	    info->version, inst != NULL ? inst->n : 0);
	fflush(stdout);
	ready = 1;
	settled = 1;
}

static void
on_failed(void *arg, struct plugin_host *h, const char *reason)
{
	(void)arg;
	(void)h;
	snprintf(fail_msg, sizeof(fail_msg), "%s", reason);
	failed = 1;
	settled = 1;
}

static void
on_update(void *arg, const struct plugin_status *st,
    const struct plugin_instances *inst)
{
	int print = *(int *)arg;

	done = 1;
	if (st->rc != 0) {
		snprintf(fail_msg, sizeof(fail_msg), "%s", st->msg);
		failed = 1;
		return;
	}
	ninst = inst->n;
	nrunning = 0;
	for (size_t i = 0; i < inst->n; i++) {
		if (inst->v[i].state == PLUGIN_I_RUNNING)
			nrunning++;
	}
	if (print) {
		printf("instances %zu\n", inst->n);
		for (size_t i = 0; i < inst->n; i++)
			printf("%s %s\n", inst->v[i].id,
			    plugin_istate_name(inst->v[i].state));
	}
}

static void
on_increase(void *arg, const struct plugin_status *st, int64_t succeeded,
    const char *perr)
{
	(void)arg;
	(void)perr;
	done = 1;
	if (st->rc != 0) {
		snprintf(fail_msg, sizeof(fail_msg), "%s", st->msg);
		failed = 1;
		return;
	}
	increased = succeeded;
}

static void
on_stop(void *arg, struct plugin_host *h, const struct plugin_stop_result *r)
{
	(void)arg;
	(void)h;
	stop_how = r->how;
	done = 1;
}

static void
update(int print, int may_fail)
{
	int rc;

	done = failed = 0;
	if ((rc = plugin_host_update(host, on_update, &print)) != 0)
		die("update: %s", err_str(rc));
	if (loop_until(&done, deadline_ms) != 0)
		die("update: %s", "timed out");
	if (failed && may_fail)
		printf("update failed: %s\n", fail_msg);
	else if (failed)
		die("update: %s", fail_msg);
}

int
main(int argc, char **argv)
{
	struct plugin_host_opts o;
	char err[1024], *path;
	int c, i;

	memset(&o, 0, sizeof(o));
	while ((c = getopt(argc, argv, "jt:m:b:s:k:T:")) != -1) {
		switch (c) {
		case 'j':
			log_set_format(LOG_FORMAT_JSON);
			break;
		case 't':
			o.handshake_timeout_ms = atoi(optarg);
			break;
		case 'm':
			o.max_failures = atoi(optarg);
			break;
		case 'b':
			o.backoff_base_ms = atoi(optarg);
			break;
		case 's':
			o.stop_grace_ms = atoi(optarg);
			break;
		case 'k':
			o.kill_grace_ms = atoi(optarg);
			break;
		case 'T':
			deadline_ms = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: host_probe [-j] [-t ms] [-m n] "
			    "[-b ms] [-s ms] [-k ms] [-T ms] PLUGIN CMD...\n");
			return 2;
		}
	}
	if (optind >= argc)
		return 2;
	log_set_level(LOG_DEBUG);
	if (plugin_resolve(argv[optind], &path, err, sizeof(err)) != 0) {
		fprintf(stderr, "host_probe: error: %s\n", err);
		return 1;
	}
	base = event_base_new();
	o.path = path;
	o.name = "probe";
	o.cbs.on_ready = on_ready;
	o.cbs.on_restart = on_ready;
	o.cbs.on_failed = on_failed;
	host = plugin_host_new(base, &o, err, sizeof(err));
	free(path);
	if (host == NULL)
		die("%s", err);
	for (i = optind + 1; i < argc; i++) {
		const char *cmd = argv[i];

		if (strcmp(cmd, "start") == 0) {
			if (plugin_host_start(host, err, sizeof(err)) != 0)
				die("%s", err);
			ready = failed = settled = 0;
			if (loop_until(&settled, deadline_ms) != 0)
				die("start: %s", "timed out");
			if (failed)
				die("start: %s", fail_msg);
		} else if (strcmp(cmd, "update") == 0) {
			update(1, 0);
		} else if (strcmp(cmd, "update?") == 0) {
			update(1, 1);
		} else if (strcmp(cmd, "increase") == 0 && i + 1 < argc) {
			int rc;

			done = failed = 0;
			rc = plugin_host_increase(host, atoll(argv[++i]),
			    on_increase, NULL);
			if (rc != 0)
				die("increase: %s", err_str(rc));
			if (loop_until(&done, deadline_ms) != 0)
				die("increase: %s", "timed out");
			if (failed)
				die("increase: %s", fail_msg);
			printf("increased %lld\n", (long long)increased);
		} else if (strcmp(cmd, "wait-running") == 0 && i + 1 < argc) {
			size_t want = (size_t)atol(argv[++i]);
			int64_t end = now_ms() + deadline_ms;

			for (;;) {
				int tick = 0;

				update(0, 0);
				if (nrunning >= want)
					break;
				if (now_ms() >= end)
					die("wait-running: %s", "timed out");
				/* 100 ms between polls */
				(void)loop_until(&tick, 100);
			}
			printf("running %zu\n", nrunning);
		} else if (strcmp(cmd, "pid") == 0) {
			printf("pid %ld\n", (long)plugin_host_pid(host));
		} else if (strcmp(cmd, "hold") == 0) {
			int never = 0;

			printf("pid %ld\n", (long)plugin_host_pid(host));
			fflush(stdout);
			for (;;)
				(void)loop_until(&never, 1000000);
		} else if (strcmp(cmd, "stop") == 0) {
			static const char *const how[] = {
				"none", "self", "term", "kill"
			};

			done = 0;
			plugin_host_stop(host, on_stop, NULL);
			if (loop_until(&done, deadline_ms) != 0)
				die("stop: %s", "timed out");
			printf("stopped how=%s\n", how[stop_how]);
		} else {
			die("unknown command %s", cmd);
		}
		fflush(stdout);
	}
	plugin_host_free(host);
	event_base_free(base);
	log_release();
	return 0;
}

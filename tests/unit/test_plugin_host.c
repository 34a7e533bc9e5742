/*
 * Unit tests of the plugin host against the fake plugin
 * (tests/helpers/fake_plugin.c, found next to this program's directory:
 * build/tests/fake_plugin for build/tests/unit/test_plugin_host), one
 * scenario per test, with short deadlines and back-offs so the whole
 * program runs in a few seconds.  Every test ends with no process of its
 * own left: the host is stopped or freed, and the plugin's pid is checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "child.h"
#include "err.h"
#include "log.h"
#include "plugin_host.h"
#include "xmalloc.h"

static struct event_base *base;
static char fake[PATH_MAX];
static char state_dir[64];

/* What the callbacks saw. */
struct seen {
	int ready, restarted, failed, stopped;
	char reason[1024];
	struct plugin_status ust;
	size_t ninst;
	char ids[16][64];
	struct plugin_stop_result stop;
	/* one call at a time */
	int done;
	struct plugin_status st;
	int64_t succeeded;
	size_t nrunning, ndeleting, ncreating, n;
	struct plugin_connect_info *ci;
	int phases[4];
	char phase_err[4][512];
};

static struct seen seen;
/* The host of the running test, freed by the per-test teardown if an
 * assertion left it behind (so one failure does not cascade). */
static struct plugin_host *cur_host;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
loop_until(const int *flag, int ms)
{
	int64_t end = now_ms() + ms;

	while (!*flag && now_ms() < end) {
		struct timeval tv = { 0, 20000 };

		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	return *flag ? 0 : -1;
}

/* Run the loop until *counter reaches n (10 s at most); 0 or -1. */
static int
wait_count(const int *counter, int n)
{
	int64_t end = now_ms() + 10000;

	while (*counter < n && now_ms() < end) {
		struct timeval tv = { 0, 20000 };

		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	return *counter >= n ? 0 : -1;
}

static void
spin(int ms)
{
	int never = 0;

	(void)loop_until(&never, ms);
}

static void
record_instances(const struct plugin_instances *inst)
{
	seen.ninst = inst != NULL ? inst->n : 0;
	for (size_t i = 0; inst != NULL && i < inst->n && i < 16; i++)
		snprintf(seen.ids[i], sizeof(seen.ids[i]), "%s",
		    inst->v[i].id);
}

static void
on_ready(void *arg, struct plugin_host *h, const struct plugin_info *info,
    const struct plugin_status *ust, const struct plugin_instances *inst)
{
	(void)arg;
	(void)h;
	assert_non_null(info);
	assert_string_equal(info->id, "fake/group");
	seen.ready++;
	seen.ust = *ust;
	record_instances(inst);
}

static void
on_restart(void *arg, struct plugin_host *h, const struct plugin_info *info,
    const struct plugin_status *ust, const struct plugin_instances *inst)
{
	(void)arg;
	(void)info;
	/* Calls are accepted from here on. */
	assert_int_equal(plugin_host_state(h), PLUGIN_HOST_READY);
	seen.restarted++;
	seen.ust = *ust;
	record_instances(inst);
}

static void
on_failed(void *arg, struct plugin_host *h, const char *reason)
{
	(void)arg;
	assert_int_equal(plugin_host_state(h), PLUGIN_HOST_FAILED);
	seen.failed++;
	snprintf(seen.reason, sizeof(seen.reason), "%s", reason);
}

static void
on_phase(void *arg, struct plugin_host *h, enum plugin_phase p,
    int64_t elapsed, const char *error)
{
	(void)arg;
	(void)h;
	assert_true(elapsed >= 0);
	seen.phases[p]++;
	if (error != NULL)
		snprintf(seen.phase_err[p], sizeof(seen.phase_err[p]), "%s",
		    error);
}

static void
on_stop(void *arg, struct plugin_host *h, const struct plugin_stop_result *r)
{
	(void)arg;
	assert_int_equal(plugin_host_state(h), PLUGIN_HOST_STOPPED);
	seen.stop = *r;
	seen.stopped = 1;
}

static void
on_update(void *arg, const struct plugin_status *st,
    const struct plugin_instances *inst)
{
	(void)arg;
	seen.done = 1;
	seen.st = *st;
	seen.n = seen.nrunning = seen.ndeleting = seen.ncreating = 0;
	if (inst == NULL)
		return;
	seen.n = inst->n;
	for (size_t i = 0; i < inst->n; i++) {
		if (inst->v[i].state == PLUGIN_I_RUNNING)
			seen.nrunning++;
		else if (inst->v[i].state == PLUGIN_I_DELETING)
			seen.ndeleting++;
		else if (inst->v[i].state == PLUGIN_I_CREATING)
			seen.ncreating++;
		assert_true(inst->v[i].cause != NULL);
	}
	record_instances(inst);
}

static void
on_increase(void *arg, const struct plugin_status *st, int64_t succeeded,
    const char *perr)
{
	(void)arg;
	assert_non_null(perr);
	seen.done = 1;
	seen.st = *st;
	seen.succeeded = succeeded;
}

static void
on_decrease(void *arg, const struct plugin_status *st, char *const *ids,
    size_t n, const char *perr)
{
	(void)arg;
	(void)ids;
	(void)perr;
	seen.done = 1;
	seen.st = *st;
	seen.succeeded = (int64_t)n;
}

static void
on_connect_info(void *arg, const struct plugin_status *st,
    const struct plugin_connect_info *ci)
{
	(void)arg;
	seen.done = 1;
	seen.st = *st;
	seen.ci = plugin_connect_info_dup(ci);
}

static void
on_done(void *arg, const struct plugin_status *st)
{
	(void)arg;
	seen.done = 1;
	seen.st = *st;
}

/* ----------------------------------------------------------- fixture */

static struct plugin_host *
new_host(const char *scenario, struct plugin_host_opts *extra)
{
	struct plugin_host_opts o;
	struct plugin_host *h;
	char err[512];

	if (extra != NULL)
		o = *extra;
	else
		memset(&o, 0, sizeof(o));
	if (o.path == NULL)
		o.path = fake;
	o.name = "fake";
	if (o.handshake_timeout_ms == 0)
		o.handshake_timeout_ms = 5000;
	if (o.backoff_base_ms == 0)
		o.backoff_base_ms = 50;
	if (o.backoff_max_ms == 0)
		o.backoff_max_ms = 200;
	if (o.stop_grace_ms == 0)
		o.stop_grace_ms = 1000;
	if (o.kill_grace_ms == 0)
		o.kill_grace_ms = 1000;
	o.cbs.on_ready = on_ready;
	o.cbs.on_restart = on_restart;
	o.cbs.on_failed = on_failed;
	o.cbs.on_phase = on_phase;
	setenv("FAKE_PLUGIN_SCENARIO", scenario, 1);
	memset(&seen, 0, sizeof(seen));
	h = plugin_host_new(base, &o, err, sizeof(err));
	if (h == NULL)
		fail_msg("plugin_host_new: %s", err);
	cur_host = h;
	return h;
}

static void
start_ready(struct plugin_host *h)
{
	char err[512];

	assert_int_equal(plugin_host_start(h, err, sizeof(err)), 0);
	assert_int_equal(plugin_host_state(h), PLUGIN_HOST_STARTING);
	assert_int_equal(loop_until(&seen.ready, 10000), 0);
	assert_int_equal(plugin_host_state(h), PLUGIN_HOST_READY);
	assert_true(plugin_host_pid(h) > 0);
}

static void
free_host(struct plugin_host *h)
{
	plugin_host_free(h);
	if (h == cur_host)
		cur_host = NULL;
}

static int
test_teardown(void **state)
{
	(void)state;
	if (cur_host != NULL) {
		plugin_host_free(cur_host);
		cur_host = NULL;
	}
	return 0;
}

/* Is pid gone (or an unreaped zombie of someone else)? */
static int
gone(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fp = fopen(path, "r");
	if (fp == NULL)
		return 1;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' && p[2] == 'Z';
}

static void
stop_host(struct plugin_host *h, enum plugin_exit_how want)
{
	pid_t pid = plugin_host_pid(h);
	char dir[256];

	snprintf(dir, sizeof(dir), "%s", plugin_host_socket_dir(h) != NULL ?
	    plugin_host_socket_dir(h) : "");
	seen.stopped = 0;
	assert_int_equal(plugin_host_stop(h, on_stop, NULL), 0);
	assert_int_equal(seen.stopped, 0);	/* never from inside stop() */
	assert_int_equal(loop_until(&seen.stopped, 15000), 0);
	assert_int_equal(seen.stop.how, want);
	assert_int_equal(plugin_host_pid(h), -1);
	if (pid > 0)
		assert_true(gone(pid));
	if (dir[0] != '\0')
		assert_int_equal(access(dir, F_OK), -1);
	free_host(h);
	assert_int_equal(child_count(), 0);
}

static void
update(struct plugin_host *h)
{
	seen.done = 0;
	assert_int_equal(plugin_host_update(h, on_update, NULL), 0);
	assert_int_equal(loop_until(&seen.done, 10000), 0);
}

static void
increase(struct plugin_host *h, int64_t n)
{
	seen.done = 0;
	assert_int_equal(plugin_host_increase(h, n, on_increase, NULL), 0);
	assert_int_equal(loop_until(&seen.done, 10000), 0);
}

static void
wait_running(struct plugin_host *h, size_t want)
{
	int64_t end = now_ms() + 10000;

	for (;;) {
		update(h);
		assert_int_equal(seen.st.rc, 0);
		if (seen.nrunning == want)
			return;
		assert_true(now_ms() < end);
		spin(50);
	}
}

static void
fresh_state_dir(void)
{
	char cmd[128];

	if (state_dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", state_dir);
		assert_int_equal(system(cmd), 0);
	}
	snprintf(state_dir, sizeof(state_dir), "/tmp/test_plugin_host.XXXXXX");
	assert_non_null(mkdtemp(state_dir));
	setenv("FAKE_PLUGIN_STATE_DIR", state_dir, 1);
}

/* Log lines go to a memory file while capturing. */
static int log_fd = -1;

static void
capture_logs(void)
{
	log_fd = memfd_create("log", MFD_CLOEXEC);
	assert_true(log_fd >= 0);
	log_set_format(LOG_FORMAT_JSON);
	log_set_fd(log_fd);
}

static char *
captured(void)
{
	struct stat st;
	char *s;

	assert_int_equal(fstat(log_fd, &st), 0);
	s = xmalloc((size_t)st.st_size + 1);
	assert_int_equal(pread(log_fd, s, (size_t)st.st_size, 0), st.st_size);
	s[st.st_size] = '\0';
	return s;
}

static void
uncapture_logs(void)
{
	log_set_fd(2);
	log_set_format(LOG_FORMAT_RUNNER);
	close(log_fd);
	log_fd = -1;
}

/* A log line (JSON) holding every one of the given snippets. */
static int
has_line(const char *log, ...)
{
	const char *p = log, *s;
	va_list ap;

	while (*p != '\0') {
		const char *e = strchr(p, '\n');
		size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
		char *line = xstrndup(p, len);
		int all = 1;

		va_start(ap, log);
		while ((s = va_arg(ap, const char *)) != NULL) {
			if (strstr(line, s) == NULL)
				all = 0;
		}
		va_end(ap);
		free(line);
		if (all)
			return 1;
		p += len + (e != NULL);
	}
	return 0;
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
	log_set_level(LOG_ERROR);	/* keep the TAP output readable */
	unsetenv("FAKE_PLUGIN_STATE_DIR");
	setenv("FAKE_PLUGIN_CREATE_MS", "100", 1);
	setenv("FAKE_PLUGIN_DELETE_MS", "100", 1);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	if (state_dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", state_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", state_dir);
	}
	event_base_free(base);
	log_release();
	return 0;
}

/* ----------------------------------------------------------- tests */

static void
test_binary_name(void **state)
{
	static const struct {
		const char *ref, *want;
	} cases[] = {
		{ "aws", "fleeting-plugin-aws" },
		{ "googlecloud", "fleeting-plugin-googlecompute" },
		{ "googlecompute", "fleeting-plugin-googlecompute" },
		{ "azure", "fleeting-plugin-azure" },
		{ "local", "fleeting-plugin-local" },
		{ "hetzner", "fleeting-plugin-hetzner" },
		{ "fleeting-plugin-aws", "fleeting-plugin-aws" },
		{ "aws:0.5.0", "fleeting-plugin-aws" },
		{ "registry.gitlab.com/gitlab-org/fleeting/plugins/aws:1",
		    "fleeting-plugin-aws" },
		{ "gitlab-org/fleeting/plugins/googlecloud",
		    "fleeting-plugin-googlecompute" },
		{ "", NULL }, { ":1.0", NULL }, { "x/", NULL }, { "..", NULL },
	};
	char *got;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		got = plugin_binary_name(cases[i].ref);
		if (cases[i].want == NULL) {
			assert_null(got);
		} else {
			assert_non_null(got);
			assert_string_equal(got, cases[i].want);
		}
		free(got);
	}
}

static void
touch_exec(const char *dir, const char *name, mode_t mode)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	close(fd);
	chmod(path, mode);
}

static void
test_resolve(void **state)
{
	char d1[] = "/tmp/tph1.XXXXXX", d2[] = "/tmp/tph2.XXXXXX";
	char want[256], err[1024], pathenv[128], cmd[128], *path;
	const char *dirs[2];

	(void)state;
	assert_non_null(mkdtemp(d1));
	assert_non_null(mkdtemp(d2));
	touch_exec(d1, "fleeting-plugin-aws", 0755);
	touch_exec(d1, "fleeting-plugin-googlecompute", 0755);
	touch_exec(d1, "fleeting-plugin-noexec", 0644);
	touch_exec(d2, "fleeting-plugin-noexec", 0755);
	touch_exec(d2, "fleeting-plugin-onpath", 0755);
	dirs[0] = d1;
	dirs[1] = "/nonexistent-dir";
	snprintf(pathenv, sizeof(pathenv), "/nonexistent-bin:%s", d2);

	assert_int_equal(plugin_resolve_in("aws", dirs, 2, pathenv, &path,
	    err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/fleeting-plugin-aws", d1);
	assert_string_equal(path, want);
	free(path);
	assert_int_equal(plugin_resolve_in("googlecloud", dirs, 2, pathenv,
	    &path, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/fleeting-plugin-googlecompute", d1);
	assert_string_equal(path, want);
	free(path);
	/* Not executable in the first directory: the next one wins. */
	assert_int_equal(plugin_resolve_in("fleeting-plugin-noexec", dirs, 2,
	    pathenv, &path, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/fleeting-plugin-noexec", d2);
	assert_string_equal(path, want);
	free(path);
	assert_int_equal(plugin_resolve_in("onpath", dirs, 2, pathenv, &path,
	    err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/fleeting-plugin-onpath", d2);
	assert_string_equal(path, want);
	free(path);
	/* Absolute and ./ paths as they are, even when absent. */
	assert_int_equal(plugin_resolve_in("/opt/x/plugin", dirs, 2, pathenv,
	    &path, err, sizeof(err)), 0);
	assert_string_equal(path, "/opt/x/plugin");
	free(path);
	assert_int_equal(plugin_resolve_in("./plugin", dirs, 2, pathenv,
	    &path, err, sizeof(err)), 0);
	assert_string_equal(path, "./plugin");
	free(path);
	/* Not found: every place is named. */
	assert_int_equal(plugin_resolve_in("azure", dirs, 2, pathenv, &path,
	    err, sizeof(err)), FL_ERR_NOTFOUND);
	assert_null(path);
	assert_non_null(strstr(err, "fleeting-plugin-azure"));
	assert_non_null(strstr(err, d1));
	assert_non_null(strstr(err, "/nonexistent-dir"));
	assert_non_null(strstr(err, "/nonexistent-bin"));
	assert_non_null(strstr(err, d2));
	assert_int_equal(plugin_resolve_in("", dirs, 2, pathenv, &path, err,
	    sizeof(err)), FL_ERR_INVAL);
	/* The default places include this program's own directory. */
	assert_int_equal(plugin_resolve("fake_plugin", &path, err,
	    sizeof(err)), FL_ERR_NOTFOUND);
	assert_non_null(strstr(err, "/usr/lib/flotilla/plugins"));
	snprintf(cmd, sizeof(cmd), "rm -rf %s %s", d1, d2);
	assert_int_equal(system(cmd), 0);
}

static void
test_missing_binary(void **state)
{
	struct plugin_host_opts o;
	struct plugin_host *h;
	char err[512];

	(void)state;
	memset(&o, 0, sizeof(o));
	o.path = "/nonexistent/fleeting-plugin-x";
	h = new_host("ok", &o);
	assert_int_equal(plugin_host_start(h, err, sizeof(err)),
	    FL_ERR_NOTFOUND);
	assert_string_equal(err, "cannot run /nonexistent/fleeting-plugin-x: "
	    "No such file or directory");
	assert_int_equal(plugin_host_state(h), PLUGIN_HOST_NEW);
	assert_int_equal(plugin_host_pid(h), -1);
	assert_string_equal(plugin_host_last_error(h), err);
	/* Calls before any start: closed, not "try again". */
	assert_int_equal(plugin_host_update(h, on_update, NULL), FL_ERR_CLOSED);
	free_host(h);
	assert_int_equal(child_count(), 0);
}

static void
test_unreadable_key(void **state)
{
	struct plugin_host_opts o;
	struct config_connector cc;
	char err[512];

	(void)state;
	memset(&o, 0, sizeof(o));
	memset(&cc, 0, sizeof(cc));
	cc.key_path = "/nonexistent/id_ed25519";
	o.path = fake;
	o.connector = &cc;
	assert_null(plugin_host_new(base, &o, err, sizeof(err)));
	assert_string_equal(err, "reading instance group connector key: "
	    "/nonexistent/id_ed25519: No such file or directory");
}

static void
test_lifecycle(void **state)
{
	struct plugin_host *h;
	const char *ids[2];
	char id0[64], id1[64];

	(void)state;
	unsetenv("FAKE_PLUGIN_STATE_DIR");
	h = new_host("ok", NULL);
	assert_int_equal(plugin_host_state(h), PLUGIN_HOST_NEW);
	start_ready(h);
	assert_int_equal(seen.ust.rc, 0);
	assert_int_equal(seen.ninst, 0);
	for (int p = 0; p < 4; p++) {
		assert_int_equal(seen.phases[p], 1);
		assert_string_equal(seen.phase_err[p], "");
	}
	assert_non_null(plugin_host_info(h));
	assert_int_equal(plugin_host_info(h)->max_size, 1000000);
	assert_string_equal(plugin_host_info(h)->version, "0.0.1-fake");

	increase(h, 2);
	assert_int_equal(seen.st.rc, 0);
	assert_int_equal(seen.succeeded, 2);
	update(h);
	assert_int_equal(seen.n, 2);
	wait_running(h, 2);
	snprintf(id0, sizeof(id0), "%s", seen.ids[0]);
	snprintf(id1, sizeof(id1), "%s", seen.ids[1]);

	seen.done = 0;
	assert_int_equal(plugin_host_connect_info(h, id0, on_connect_info,
	    NULL), 0);
	assert_int_equal(loop_until(&seen.done, 5000), 0);
	assert_int_equal(seen.st.rc, 0);
	assert_non_null(seen.ci);
	assert_string_equal(seen.ci->id, id0);
	assert_string_equal(seen.ci->protocol, "ssh");
	assert_int_equal(seen.ci->port, 22);
	assert_string_equal(seen.ci->username, "fake");
	assert_string_equal(seen.ci->internal_addr, "127.0.0.1");
	assert_int_equal(seen.ci->key_len, strlen("-----BEGIN FAKE KEY-----\n"));
	assert_memory_equal(seen.ci->key, "-----BEGIN FAKE KEY-----\n",
	    seen.ci->key_len);
	plugin_connect_info_free(seen.ci);
	seen.ci = NULL;

	seen.done = 0;
	assert_int_equal(plugin_host_heartbeat(h, id1, on_done, NULL), 0);
	assert_int_equal(loop_until(&seen.done, 5000), 0);
	assert_int_equal(seen.st.rc, 0);
	seen.done = 0;
	assert_int_equal(plugin_host_heartbeat(h, "nope", on_done, NULL), 0);
	assert_int_equal(loop_until(&seen.done, 5000), 0);
	assert_int_equal(seen.st.code, RPC_NOT_FOUND);
	assert_int_equal(seen.st.rc, FL_ERR_NOTFOUND);
	assert_non_null(strstr(seen.st.msg, "no instance nope"));

	ids[0] = id0;
	ids[1] = id1;
	seen.done = 0;
	assert_int_equal(plugin_host_decrease(h, ids, 2, on_decrease, NULL),
	    0);
	assert_int_equal(loop_until(&seen.done, 5000), 0);
	assert_int_equal(seen.st.rc, 0);
	assert_int_equal(seen.succeeded, 2);
	update(h);
	assert_int_equal(seen.ndeleting, 2);
	for (int64_t end = now_ms() + 5000; seen.n > 0 && now_ms() < end;) {
		spin(50);
		update(h);
	}
	assert_int_equal(seen.n, 0);

	/* Argument checks. */
	assert_int_equal(plugin_host_increase(h, 0, on_increase, NULL),
	    FL_ERR_INVAL);
	assert_int_equal(plugin_host_update(h, NULL, NULL), FL_ERR_INVAL);
	stop_host(h, PLUGIN_EXIT_SELF);
	assert_int_equal(seen.stop.shutdown.rc, 0);
	assert_true(WIFEXITED(seen.stop.status));
}

static void
test_calls_while_starting(void **state)
{
	struct plugin_host *h;
	char err[256];

	(void)state;
	h = new_host("ok", NULL);
	assert_int_equal(plugin_host_start(h, err, sizeof(err)), 0);
	/* Not queued: refused until ready. */
	assert_int_equal(plugin_host_update(h, on_update, NULL), FL_ERR_AGAIN);
	assert_int_equal(plugin_host_increase(h, 1, on_increase, NULL),
	    FL_ERR_AGAIN);
	assert_int_equal(plugin_host_start(h, err, sizeof(err)), FL_ERR_INVAL);
	assert_int_equal(loop_until(&seen.ready, 10000), 0);
	stop_host(h, PLUGIN_EXIT_SELF);
}

static void
test_crash_at_start(void **state)
{
	struct plugin_host_opts o;
	struct plugin_host *h;
	char err[256], *log;
	int64_t t0;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.max_failures = 3;
	o.backoff_base_ms = 100;
	h = new_host("crash-at-start", &o);
	capture_logs();
	log_set_level(LOG_INFO);
	t0 = now_ms();
	assert_int_equal(plugin_host_start(h, err, sizeof(err)), 0);
	assert_int_equal(loop_until(&seen.failed, 10000), 0);
	/* Two back-offs: 100 ms, then 200 ms. */
	assert_true(now_ms() - t0 >= 300);
	assert_int_equal(seen.ready, 0);
	assert_int_equal(plugin_host_failures(h), 3);
	assert_string_equal(seen.reason, "plugin exited during the handshake "
	    "(exit_code=3)");
	assert_string_equal(plugin_host_last_error(h), seen.reason);
	assert_string_equal(seen.phase_err[PLUGIN_PHASE_HANDSHAKE],
	    seen.reason);
	assert_int_equal(seen.phases[PLUGIN_PHASE_HANDSHAKE], 3);
	assert_int_equal(plugin_host_pid(h), -1);
	log = captured();
	log_set_level(LOG_ERROR);
	uncapture_logs();
	assert_true(has_line(log, "\"msg\":\"plugin exited\"",
	    "\"exit_code\":\"3\"", "\"level\":\"error\"", "\"plugin\":\"fake\"",
	    NULL));
	assert_true(has_line(log, "\"msg\":\"restarting plugin\"",
	    "\"in\":\"200ms\"", "\"failures\":\"2\"", NULL));
	assert_true(has_line(log, "giving up after 3 consecutive failures",
	    NULL));
	free(log);
	assert_int_equal(plugin_host_update(h, on_update, NULL), FL_ERR_CLOSED);
	/* A failed host can be stopped (nothing runs) and freed. */
	stop_host(h, PLUGIN_EXIT_NONE);
}

static void
test_kill9_restart(void **state)
{
	struct plugin_host *h;
	char before[2][64];
	pid_t pid1, pid2;

	(void)state;
	fresh_state_dir();
	h = new_host("ok", NULL);
	start_ready(h);
	increase(h, 2);
	wait_running(h, 2);
	snprintf(before[0], sizeof(before[0]), "%s", seen.ids[0]);
	snprintf(before[1], sizeof(before[1]), "%s", seen.ids[1]);
	pid1 = plugin_host_pid(h);
	assert_int_equal(kill(pid1, SIGKILL), 0);
	/* The loop learns of it; until the restart is done calls are
	 * refused with FL_ERR_AGAIN. */
	while (plugin_host_state(h) == PLUGIN_HOST_READY)
		spin(10);
	assert_int_equal(plugin_host_update(h, on_update, NULL), FL_ERR_AGAIN);
	assert_int_equal(loop_until(&seen.restarted, 10000), 0);
	assert_true(gone(pid1));
	pid2 = plugin_host_pid(h);
	assert_true(pid2 > 0 && pid2 != pid1);
	assert_int_equal(plugin_host_restarts(h), 1);
	assert_int_equal(seen.ready, 1);	/* on_ready only once */
	assert_string_equal(plugin_host_last_error(h),
	    "plugin exited (signal=KILL)");
	/* The restart's own Update brought the instances back. */
	assert_int_equal(seen.ust.rc, 0);
	assert_int_equal(seen.ninst, 2);
	assert_string_equal(seen.ids[0], before[0]);
	assert_string_equal(seen.ids[1], before[1]);
	/* The owner wanted 3: it asks for 3 - 2, not 3. */
	increase(h, 3 - (int64_t)seen.ninst);
	assert_int_equal(seen.succeeded, 1);
	wait_running(h, 3);
	assert_int_equal(seen.n, 3);
	stop_host(h, PLUGIN_EXIT_SELF);
}

static void
test_crash_in_increase(void **state)
{
	struct plugin_host *h;
	int want = 1;

	(void)state;
	fresh_state_dir();
	h = new_host("crash-in-increase", NULL);
	start_ready(h);
	/* The plugin creates the instance, then dies before answering. */
	increase(h, want);
	assert_int_equal(seen.st.rc, FL_ERR_CLOSED);
	assert_true(seen.succeeded == 0);
	assert_int_equal(loop_until(&seen.restarted, 10000), 0);
	/* The instance is there after all: nothing to ask for again. */
	assert_int_equal(seen.ninst, 1);
	assert_true((int)seen.ninst >= want);
	wait_running(h, 1);
	assert_int_equal(seen.n, 1);
	stop_host(h, PLUGIN_EXIT_SELF);
}

static void
test_crash_after_calls(void **state)
{
	struct plugin_host *h;

	(void)state;
	fresh_state_dir();
	/* Init and the first Update are calls 1 and 2. */
	h = new_host("crash-after:3", NULL);
	start_ready(h);
	update(h);
	assert_int_equal(seen.st.rc, 0);
	update(h);
	/* Failed, whether gRPC saw the connection break (UNAVAILABLE) or
	 * the reap came first (-1, "plugin exited"). */
	assert_int_equal(seen.st.rc, FL_ERR_CLOSED);
	assert_true(seen.st.code == -1 || seen.st.code == RPC_UNAVAILABLE);
	assert_true(strncmp(seen.st.msg, "Update: plugin ", 15) == 0);
	assert_int_equal(loop_until(&seen.restarted, 10000), 0);
	update(h);
	assert_int_equal(seen.st.rc, 0);
	stop_host(h, PLUGIN_EXIT_SELF);
}

static void
test_stable_resets_tally(void **state)
{
	struct plugin_host_opts o;
	struct plugin_host *h;

	(void)state;
	unsetenv("FAKE_PLUGIN_STATE_DIR");
	memset(&o, 0, sizeof(o));
	o.max_failures = 2;
	o.stable_ms = 100;
	h = new_host("ok", &o);
	start_ready(h);
	for (int round = 1; round <= 3; round++) {
		spin(200);	/* longer than stable_ms */
		assert_int_equal(kill(plugin_host_pid(h), SIGKILL), 0);
		assert_int_equal(wait_count(&seen.restarted, round), 0);
		assert_int_equal(plugin_host_failures(h), 1);
	}
	/* A quick crash after the last (a quick one): the tally reaches 2,
	 * and the host gives up. */
	assert_int_equal(kill(plugin_host_pid(h), SIGKILL), 0);
	assert_int_equal(loop_until(&seen.failed, 10000), 0);
	assert_int_equal(plugin_host_failures(h), 2);
	assert_int_equal(plugin_host_state(h), PLUGIN_HOST_FAILED);
	stop_host(h, PLUGIN_EXIT_NONE);
}

static void
fail_scenario(const char *scenario, int handshake_ms, const char *want1,
    const char *want2)
{
	struct plugin_host_opts o;
	struct plugin_host *h;
	char err[256];
	pid_t pid;

	memset(&o, 0, sizeof(o));
	o.max_failures = 1;
	o.handshake_timeout_ms = handshake_ms;
	h = new_host(scenario, &o);
	assert_int_equal(plugin_host_start(h, err, sizeof(err)), 0);
	pid = plugin_host_pid(h);
	assert_int_equal(loop_until(&seen.failed, 10000), 0);
	if (strstr(seen.reason, want1) == NULL ||
	    (want2 != NULL && strstr(seen.reason, want2) == NULL))
		fail_msg("%s: reason \"%s\" lacks \"%s\" / \"%s\"", scenario,
		    seen.reason, want1, want2 ? want2 : "");
	assert_int_equal(seen.ready, 0);
	assert_true(gone(pid));
	assert_int_equal(plugin_host_pid(h), -1);
	free_host(h);
	assert_int_equal(child_count(), 0);
}

static void
test_hang_handshake(void **state)
{
	int64_t t0 = now_ms();

	(void)state;
	fail_scenario("hang-handshake", 300, "handshake: deadline exceeded",
	    "within 300ms");
	assert_true(now_ms() - t0 >= 300);
	assert_string_equal(seen.phase_err[PLUGIN_PHASE_HANDSHAKE],
	    seen.reason);
}

static void
test_garbage_stdout(void **state)
{
	(void)state;
	fail_scenario("garbage-stdout", 5000, "garbage on stdout",
	    "4096 bytes");
}

static void
test_garbage_line(void **state)
{
	(void)state;
	fail_scenario("garbage-line", 5000, "handshake: handshake line has 1 "
	    "fields", "hello, I am not a handshake");
}

static void
test_wrong_version(void **state)
{
	(void)state;
	fail_scenario("wrong-version", 5000, "plugin speaks application "
	    "protocol version \"99\"", "this manager speaks 1");
}

static void
test_init_rejected(void **state)
{
	struct plugin_host_opts o;
	struct plugin_host *h;
	char err[256];

	(void)state;
	memset(&o, 0, sizeof(o));
	o.max_failures = 1;
	o.plugin_config_json = "{\"fail_init\": true}";
	h = new_host("ok", &o);
	assert_int_equal(plugin_host_start(h, err, sizeof(err)), 0);
	assert_int_equal(loop_until(&seen.failed, 10000), 0);
	assert_string_equal(seen.reason, "Init: the plugin rejected its "
	    "configuration: fail_init is set");
	assert_int_equal(seen.phases[PLUGIN_PHASE_HANDSHAKE], 1);
	assert_string_equal(seen.phase_err[PLUGIN_PHASE_HANDSHAKE], "");
	assert_string_equal(seen.phase_err[PLUGIN_PHASE_INIT], seen.reason);
	free_host(h);
}

static void
test_oversize(void **state)
{
	struct plugin_host *h;
	pid_t pid;

	(void)state;
	unsetenv("FAKE_PLUGIN_STATE_DIR");
	h = new_host("oversize", NULL);
	start_ready(h);
	pid = plugin_host_pid(h);
	/* The first Update failed: reported, not a reason to restart. */
	assert_int_equal(seen.ust.rc, FL_ERR_TOOBIG);
	update(h);
	assert_int_equal(seen.st.rc, FL_ERR_TOOBIG);
	assert_int_equal(seen.st.code, RPC_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(seen.st.msg, "over the 16777216-byte message "
	    "limit"));
	/* The connection survives: other calls work on the same process. */
	seen.done = 0;
	assert_int_equal(plugin_host_heartbeat(h, "x", on_done, NULL), 0);
	assert_int_equal(loop_until(&seen.done, 5000), 0);
	assert_int_equal(seen.st.code, RPC_NOT_FOUND);
	increase(h, 1);
	assert_int_equal(seen.st.rc, 0);
	assert_int_equal(plugin_host_state(h), PLUGIN_HOST_READY);
	assert_int_equal(plugin_host_pid(h), pid);
	assert_int_equal(plugin_host_restarts(h), 0);
	stop_host(h, PLUGIN_EXIT_SELF);
}

static void
test_ignore_sigterm(void **state)
{
	struct plugin_host_opts o;
	struct plugin_host *h;
	int64_t t0;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.stop_grace_ms = 200;
	o.kill_grace_ms = 300;
	h = new_host("ignore-sigterm", &o);
	start_ready(h);
	t0 = now_ms();
	stop_host(h, PLUGIN_EXIT_KILL);
	assert_true(now_ms() - t0 >= 500);
	assert_int_equal(seen.stop.shutdown.rc, 0);
	assert_true(WIFSIGNALED(seen.stop.status));
	assert_int_equal(WTERMSIG(seen.stop.status), SIGKILL);
}

static void
test_stop_while_starting(void **state)
{
	struct plugin_host_opts o;
	struct plugin_host *h;
	char err[256];

	(void)state;
	memset(&o, 0, sizeof(o));
	o.handshake_timeout_ms = 10000;
	h = new_host("hang-handshake", &o);
	assert_int_equal(plugin_host_start(h, err, sizeof(err)), 0);
	spin(100);
	/* SIGTERM at once (the fake exits on it). */
	stop_host(h, PLUGIN_EXIT_TERM);
	assert_int_equal(seen.stop.shutdown.rc, FL_ERR_AGAIN);
	assert_int_equal(seen.ready + seen.failed, 0);
}

static void
test_stop_during_backoff(void **state)
{
	struct plugin_host_opts o;
	struct plugin_host *h;
	char err[256];

	(void)state;
	memset(&o, 0, sizeof(o));
	o.backoff_base_ms = 5000;
	h = new_host("crash-at-start", &o);
	assert_int_equal(plugin_host_start(h, err, sizeof(err)), 0);
	while (plugin_host_state(h) != PLUGIN_HOST_BACKOFF)
		spin(10);
	stop_host(h, PLUGIN_EXIT_NONE);
}

static void
test_free_while_running(void **state)
{
	struct plugin_host *h;
	pid_t pid;

	(void)state;
	unsetenv("FAKE_PLUGIN_STATE_DIR");
	h = new_host("ok", NULL);
	start_ready(h);
	pid = plugin_host_pid(h);
	/* A call in flight is dropped without its callback. */
	seen.done = 0;
	assert_int_equal(plugin_host_update(h, on_update, NULL), 0);
	free_host(h);
	assert_true(gone(pid));
	assert_int_equal(child_count(), 0);
	spin(50);
	assert_int_equal(seen.done, 0);
}

static void
test_plugin_logs(void **state)
{
	struct plugin_host *h;
	char *log;

	(void)state;
	unsetenv("FAKE_PLUGIN_STATE_DIR");
	capture_logs();
	log_set_level(LOG_DEBUG);
	h = new_host("ok", NULL);
	start_ready(h);
	update(h);
	stop_host(h, PLUGIN_EXIT_SELF);
	log = captured();
	log_set_level(LOG_ERROR);
	uncapture_logs();
	/* hclog JSON: level, message, @module and the other keys. */
	assert_true(has_line(log, "\"msg\":\"fake plugin starting\"",
	    "\"level\":\"info\"", "\"module\":\"fake-plugin\"",
	    "\"scenario\":\"ok\"", "\"plugin\":\"fake\"",
	    "\"subsystem\":\"fleeting-plugin\"", NULL));
	assert_true(has_line(log, "\"msg\":\"call\"", "\"level\":\"debug\"",
	    "\"method\":\"Update\"", "\"plugin\":\"fake\"", NULL));
	/* Plain lines: as text at info, or at a [TAG]'s level. */
	assert_true(has_line(log, "\"msg\":\"plain text line from the fake "
	    "plugin\"", "\"level\":\"info\"", "\"plugin\":\"fake\"", NULL));
	assert_true(has_line(log, "\"msg\":\"a tagged warning from the fake "
	    "plugin\"", "\"level\":\"warning\"", NULL));
	/* stdout after the handshake. */
	assert_true(has_line(log, "\"msg\":\"fake plugin: a line on stdout "
	    "after the handshake\"", "\"stream\":\"stdout\"",
	    "\"plugin\":\"fake\"", NULL));
	/* The host's own lines. */
	assert_true(has_line(log, "\"msg\":\"plugin started\"", "\"pid\"",
	    NULL));
	assert_true(has_line(log, "\"msg\":\"plugin exited\"",
	    "\"exit_code\":\"0\"", NULL));
	free(log);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_binary_name, test_teardown),
		cmocka_unit_test_teardown(test_resolve, test_teardown),
		cmocka_unit_test_teardown(test_missing_binary, test_teardown),
		cmocka_unit_test_teardown(test_unreadable_key, test_teardown),
		cmocka_unit_test_teardown(test_lifecycle, test_teardown),
		cmocka_unit_test_teardown(test_calls_while_starting, test_teardown),
		cmocka_unit_test_teardown(test_crash_at_start, test_teardown),
		cmocka_unit_test_teardown(test_kill9_restart, test_teardown),
		cmocka_unit_test_teardown(test_crash_in_increase, test_teardown),
		cmocka_unit_test_teardown(test_crash_after_calls, test_teardown),
		cmocka_unit_test_teardown(test_stable_resets_tally, test_teardown),
		cmocka_unit_test_teardown(test_hang_handshake, test_teardown),
		cmocka_unit_test_teardown(test_garbage_stdout, test_teardown),
		cmocka_unit_test_teardown(test_garbage_line, test_teardown),
		cmocka_unit_test_teardown(test_wrong_version, test_teardown),
		cmocka_unit_test_teardown(test_init_rejected, test_teardown),
		cmocka_unit_test_teardown(test_oversize, test_teardown),
		cmocka_unit_test_teardown(test_ignore_sigterm, test_teardown),
		cmocka_unit_test_teardown(test_stop_while_starting, test_teardown),
		cmocka_unit_test_teardown(test_stop_during_backoff, test_teardown),
		cmocka_unit_test_teardown(test_free_while_running, test_teardown),
		cmocka_unit_test_teardown(test_plugin_logs, test_teardown),
	};

	/* TEST_FILTER=test_oversize: run only the matching tests. */
	if (getenv("TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, setup, teardown);
}

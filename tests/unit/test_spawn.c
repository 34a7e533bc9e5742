/*
 * Unit tests of spawn_start (the one way to start a child) and the
 * SIGCHLD registry (child.c), with real processes (/bin/sh).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "child.h"
#include "err.h"
#include "spawn.h"
#include "xmalloc.h"

static struct event_base *base;

struct exit_rec {
	int done;
	pid_t pid;
	int status;
};

static void
on_exit_cb(void *arg, pid_t pid, int status)
{
	struct exit_rec *r = arg;

	r->done = 1;
	r->pid = pid;
	r->status = status;
}

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

/* Read a non-blocking fd to EOF (bounded), into a string to free. */
static char *
slurp(int fd)
{
	struct sbuf sb;
	char buf[4096];
	int64_t end = now_ms() + 5000;
	ssize_t n;

	sbuf_init(&sb);
	while (now_ms() < end) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			sbuf_add(&sb, buf, (size_t)n);
			continue;
		}
		if (n == 0)
			break;
		if (errno == EAGAIN)
			usleep(5000);
		else if (errno != EINTR)
			break;
	}
	return sbuf_detach(&sb, NULL);
}

/* Run /bin/sh -c script; collect stdout, stderr and the exit status. */
static void
run_sh(const char *script, char **envp, char **out, char **err, int *status)
{
	char *argv[] = { "sh", "-c", (char *)script, NULL };
	struct spawn_opts o;
	struct spawn_child c;
	struct exit_rec r = { 0, 0, 0 };
	char msg[256];

	memset(&o, 0, sizeof(o));
	o.path = "/bin/sh";
	o.argv = argv;
	o.envp = envp;
	o.new_pgrp = 1;
	o.pdeathsig = SIGKILL;
	assert_int_equal(spawn_start(&o, &c, msg, sizeof(msg)), 0);
	assert_true(c.pid > 0);
	assert_int_equal(child_watch(c.pid, on_exit_cb, &r), 0);
	/* Non-blocking, close-on-exec parent ends. */
	assert_true(fcntl(c.out_fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(c.err_fd, F_GETFD) & FD_CLOEXEC);
	*out = slurp(c.out_fd);
	*err = slurp(c.err_fd);
	close(c.out_fd);
	close(c.err_fd);
	assert_int_equal(loop_until(&r.done, 5000), 0);
	assert_int_equal(r.pid, c.pid);
	*status = r.status;
}

static int
setup(void **state)
{
	(void)state;
	base = event_base_new();
	return child_init(base);
}

static int
teardown(void **state)
{
	(void)state;
	child_release();
	event_base_free(base);
	return 0;
}

static void
test_output_and_status(void **state)
{
	char *out, *err, buf[32];
	int st;

	(void)state;
	run_sh("echo out; echo err >&2; exit 7", NULL, &out, &err, &st);
	assert_string_equal(out, "out\n");
	assert_string_equal(err, "err\n");
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 7);
	assert_string_equal(child_status_str(st, buf, sizeof(buf)),
	    "exit_code=7");
	free(out);
	free(err);
	assert_int_equal(child_count(), 0);
}

static void
test_stdin_is_devnull(void **state)
{
	char *out, *err;
	int st;

	(void)state;
	run_sh("cat; echo done", NULL, &out, &err, &st);
	assert_string_equal(out, "done\n");
	free(out);
	free(err);
}

static void
test_missing_binary(void **state)
{
	char *argv[] = { "nope", NULL };
	struct spawn_opts o;
	struct spawn_child c;
	char msg[256];
	int rc;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.path = "/nonexistent/fleeting-plugin-nope";
	o.argv = argv;
	rc = spawn_start(&o, &c, msg, sizeof(msg));
	assert_int_equal(rc, FL_ERR_NOTFOUND);
	assert_string_equal(msg, "cannot run /nonexistent/fleeting-plugin-nope:"
	    " No such file or directory");
	assert_int_equal(c.pid, -1);
	assert_int_equal(c.out_fd, -1);
	/* The failed child was reaped already. */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void
test_not_executable(void **state)
{
	char path[] = "/tmp/test_spawn.XXXXXX", *argv[] = { "x", NULL };
	struct spawn_opts o;
	struct spawn_child c;
	char msg[256];
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	chmod(path, 0600);
	memset(&o, 0, sizeof(o));
	o.path = path;
	o.argv = argv;
	if (geteuid() != 0) {
		assert_int_equal(spawn_start(&o, &c, msg, sizeof(msg)),
		    FL_ERR_IO);
		assert_non_null(strstr(msg, "Permission denied"));
	} else {
		/* root may execute anything with an x bit: none here. */
		assert_int_equal(spawn_start(&o, &c, msg, sizeof(msg)),
		    FL_ERR_IO);
		assert_non_null(strstr(msg, "cannot run"));
	}
	unlink(path);
	assert_null(argv[1]);
}

static void
test_no_fd_leak(void **state)
{
	char *out, *err;
	int st, fd;

	(void)state;
	/* A descriptor of ours without close-on-exec must not leak. */
	fd = open("/dev/null", O_RDONLY);
	assert_true(fd > 2);
	run_sh("ls /proc/self/fd | sort -n | tr '\\n' ' '", NULL, &out, &err,
	    &st);
	/* 0 1 2, and the one ls itself opened to read the directory. */
	assert_string_equal(out, "0 1 2 3 ");
	close(fd);
	free(out);
	free(err);
}

static void
test_environment(void **state)
{
	char *set[] = { "FL_TEST_A=new", "FL_TEST_B=b=c" }, **env, *out, *err;
	int st;

	(void)state;
	setenv("FL_TEST_A", "old", 1);
	setenv("FL_TEST_KEEP", "kept", 1);
	env = spawn_env_new(set, 2);
	run_sh("echo \"$FL_TEST_A $FL_TEST_B $FL_TEST_KEEP\"; "
	    "env | grep -c '^FL_TEST_A='", env, &out, &err, &st);
	assert_string_equal(out, "new b=c kept\n1\n");
	spawn_env_free(env);
	free(out);
	free(err);
	unsetenv("FL_TEST_A");
	unsetenv("FL_TEST_KEEP");
}

static void
test_signals_reset(void **state)
{
	char *out, *err;
	int st;

	(void)state;
	/* Ignored in the manager, default again in the child. */
	signal(SIGUSR1, SIG_IGN);
	run_sh("kill -USR1 $$; echo survived", NULL, &out, &err, &st);
	signal(SIGUSR1, SIG_DFL);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGUSR1);
	assert_string_equal(out, "");
	free(out);
	free(err);
}

static void
test_process_group(void **state)
{
	char *argv[] = { "sleep", "10", NULL };
	struct spawn_opts o;
	struct spawn_child c;
	struct exit_rec r = { 0, 0, 0 };
	char msg[256], buf[32];

	(void)state;
	memset(&o, 0, sizeof(o));
	o.path = "/bin/sleep";
	o.argv = argv;
	o.new_pgrp = 1;
	assert_int_equal(spawn_start(&o, &c, msg, sizeof(msg)), 0);
	assert_int_equal(child_watch(c.pid, on_exit_cb, &r), 0);
	assert_int_equal(child_watch(c.pid, on_exit_cb, &r), FL_ERR_EXISTS);
	/* setpgid happened before exec, so it shows at once. */
	assert_int_equal(getpgid(c.pid), c.pid);
	assert_true(getpgid(c.pid) != getpgrp());
	assert_int_equal(kill(-c.pid, SIGTERM), 0);
	assert_int_equal(loop_until(&r.done, 5000), 0);
	assert_true(WIFSIGNALED(r.status));
	assert_string_equal(child_status_str(r.status, buf, sizeof(buf)),
	    "signal=TERM");
	close(c.out_fd);
	close(c.err_fd);
}

/* Is pid gone (or a zombie nobody reaps)? */
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
test_pdeathsig(void **state)
{
	int p[2];
	pid_t mid, grandchild = -1;
	int64_t end;

	(void)state;
	/*
	 * A middle process (standing in for the manager) spawns a child
	 * with PDEATHSIG=SIGKILL, reports its pid, and dies by SIGKILL
	 * itself: the child must follow.
	 */
	assert_int_equal(pipe(p), 0);
	mid = fork();
	assert_true(mid >= 0);
	if (mid == 0) {
		char *argv[] = { "sleep", "30", NULL };
		struct spawn_opts o;
		struct spawn_child c;
		char msg[256];

		close(p[0]);
		memset(&o, 0, sizeof(o));
		o.path = "/bin/sleep";
		o.argv = argv;
		o.new_pgrp = 1;
		o.pdeathsig = SIGKILL;
		if (spawn_start(&o, &c, msg, sizeof(msg)) != 0)
			_exit(1);
		if (write(p[1], &c.pid, sizeof(c.pid)) != sizeof(c.pid))
			_exit(1);
		raise(SIGKILL);
		_exit(1);
	}
	close(p[1]);
	assert_int_equal(read(p[0], &grandchild, sizeof(grandchild)),
	    sizeof(grandchild));
	close(p[0]);
	while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
		;
	end = now_ms() + 5000;
	while (!gone(grandchild) && now_ms() < end)
		usleep(10000);
	assert_true(gone(grandchild));
}

static void
test_unwatched_reaped(void **state)
{
	char *argv[] = { "true", NULL };
	struct spawn_opts o;
	struct spawn_child c;
	char msg[256];
	int64_t end;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.path = "/bin/true";
	o.argv = argv;
	assert_int_equal(spawn_start(&o, &c, msg, sizeof(msg)), 0);
	close(c.out_fd);
	close(c.err_fd);
	/* Nobody watches it: the reaping loop still collects it. */
	end = now_ms() + 5000;
	while (now_ms() < end) {
		child_reap();
		if (waitpid(c.pid, NULL, WNOHANG) < 0 && errno == ECHILD)
			break;
		usleep(10000);
	}
	assert_int_equal(waitpid(c.pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void
test_registry_refs(void **state)
{
	struct event_base *other = event_base_new();

	(void)state;
	/* Another base while one is in use is refused; the same is fine. */
	assert_int_equal(child_init(other), FL_ERR_INVAL);
	assert_int_equal(child_init(base), 0);
	child_release();
	assert_int_equal(child_watch(0, on_exit_cb, NULL), FL_ERR_INVAL);
	event_base_free(other);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_output_and_status),
		cmocka_unit_test(test_stdin_is_devnull),
		cmocka_unit_test(test_missing_binary),
		cmocka_unit_test(test_not_executable),
		cmocka_unit_test(test_no_fd_leak),
		cmocka_unit_test(test_environment),
		cmocka_unit_test(test_signals_reset),
		cmocka_unit_test(test_process_group),
		cmocka_unit_test(test_pdeathsig),
		cmocka_unit_test(test_unwatched_reaped),
		cmocka_unit_test(test_registry_refs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

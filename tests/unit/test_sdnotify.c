/*
 * sdnotify: a unix datagram socket in a temporary directory, and one in
 * the abstract namespace, receive exactly the datagrams systemd expects
 * (READY=1, STOPPING=1, RELOADING=1 with MONOTONIC_USEC, STATUS=,
 * WATCHDOG=1); no NOTIFY_SOCKET means no-op; bad addresses are refused;
 * WATCHDOG_USEC/WATCHDOG_PID are honoured.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "sdnotify.h"

struct rx {
	char dir[64];
	char path[128];
	char env[128];		/* the NOTIFY_SOCKET value */
	int fd;
};

static int
rx_open_path(struct rx *r)
{
	struct sockaddr_un sun;

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "/tmp/sdnotify-test.XXXXXX");
	if (mkdtemp(r->dir) == NULL)
		return -1;
	snprintf(r->path, sizeof(r->path), "%s/notify", r->dir);
	snprintf(r->env, sizeof(r->env), "%s", r->path);
	r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, r->path, strlen(r->path) + 1);
	return bind(r->fd, (struct sockaddr *)&sun, sizeof(sun));
}

static int
rx_open_abstract(struct rx *r)
{
	struct sockaddr_un sun;
	size_t n;

	memset(r, 0, sizeof(*r));
	snprintf(r->env, sizeof(r->env), "@flotilla-sdnotify-test-%ld-%ld",
	    (long)getpid(), (long)time(NULL));
	n = strlen(r->env);
	r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path + 1, r->env + 1, n - 1);
	return bind(r->fd, (struct sockaddr *)&sun,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
}

static void
rx_close(struct rx *r)
{
	close(r->fd);
	if (r->path[0] != '\0')
		unlink(r->path);
	if (r->dir[0] != '\0')
		rmdir(r->dir);
}

/* The next datagram, or "" if none is waiting. */
static const char *
rx_next(struct rx *r)
{
	static char buf[4096];
	ssize_t n = recv(r->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void
test_path_socket(void **state)
{
	struct rx r;
	const char *m;
	unsigned long long t;

	(void)state;
	assert_int_equal(rx_open_path(&r), 0);
	setenv("NOTIFY_SOCKET", r.env, 1);
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");

	assert_int_equal(sdnotify_ready(NULL), 1);
	assert_string_equal(rx_next(&r), "READY=1");
	assert_int_equal(sdnotify_ready("2 runners"), 1);
	assert_string_equal(rx_next(&r), "READY=1\nSTATUS=2 runners");
	assert_int_equal(sdnotify_stopping(), 1);
	assert_string_equal(rx_next(&r), "STOPPING=1");
	assert_int_equal(sdnotify_reloading(123456789), 1);
	assert_string_equal(rx_next(&r), "RELOADING=1\nMONOTONIC_USEC=123456789");
	/* 0: the clock now, which is after boot. */
	assert_int_equal(sdnotify_reloading(0), 1);
	m = rx_next(&r);
	assert_int_equal(sscanf(m, "RELOADING=1\nMONOTONIC_USEC=%llu", &t), 1);
	assert_true(t > 0);
	assert_int_equal(sdnotify_status("line1\nline2"), 1);
	assert_string_equal(rx_next(&r), "STATUS=line1 line2");
	assert_int_equal(sdnotifyf("EXTEND_TIMEOUT_USEC=%d", 5000000), 1);
	assert_string_equal(rx_next(&r), "EXTEND_TIMEOUT_USEC=5000000");
	/* No watchdog configured: nothing sent. */
	assert_int_equal(sdnotify_watchdog(), 0);
	assert_string_equal(rx_next(&r), "");

	/* Nobody listening any more: an IO error, not a crash. */
	rx_close(&r);
	assert_int_equal(sdnotify("READY=1"), FL_ERR_IO);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_abstract_socket(void **state)
{
	struct rx r;

	(void)state;
	assert_int_equal(rx_open_abstract(&r), 0);
	setenv("NOTIFY_SOCKET", r.env, 1);
	assert_int_equal(sdnotify_ready(NULL), 1);
	assert_string_equal(rx_next(&r), "READY=1");
	assert_int_equal(sdnotify_send(r.env, "STOPPING=1"), 1);
	assert_string_equal(rx_next(&r), "STOPPING=1");
	rx_close(&r);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_unset_and_invalid(void **state)
{
	char longp[200];

	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(sdnotify_ready(NULL), 0);
	assert_int_equal(sdnotify_stopping(), 0);
	assert_int_equal(sdnotify_reloading(0), 0);
	assert_int_equal(sdnotify_status("x"), 0);
	assert_int_equal(sdnotifyf("A=%d", 1), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(sdnotify_ready(NULL), 0);

	assert_int_equal(sdnotify_send("relative/path", "READY=1"), FL_ERR_INVAL);
	assert_int_equal(sdnotify_send("vsock:2:1234", "READY=1"), FL_ERR_INVAL);
	assert_int_equal(sdnotify_send("@", "READY=1"), FL_ERR_INVAL);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(sdnotify_send(longp, "READY=1"), FL_ERR_INVAL);
	assert_int_equal(sdnotify_send("/nonexistent/flotilla/notify",
	    "READY=1"), FL_ERR_IO);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_watchdog(void **state)
{
	struct rx r;
	char pid[32];

	(void)state;
	assert_int_equal(rx_open_path(&r), 0);
	setenv("NOTIFY_SOCKET", r.env, 1);

	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_true(sdnotify_watchdog_usec() == 30000000);
	assert_int_equal(sdnotify_watchdog(), 1);
	assert_string_equal(rx_next(&r), "WATCHDOG=1");

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_true(sdnotify_watchdog_usec() == 30000000);
	/* Meant for another process. */
	setenv("WATCHDOG_PID", "1", 1);
	assert_true(sdnotify_watchdog_usec() == 0);
	assert_int_equal(sdnotify_watchdog(), 0);
	assert_string_equal(rx_next(&r), "");
	unsetenv("WATCHDOG_PID");
	/* Malformed or zero. */
	setenv("WATCHDOG_USEC", "30s", 1);
	assert_true(sdnotify_watchdog_usec() == 0);
	setenv("WATCHDOG_USEC", "0", 1);
	assert_true(sdnotify_watchdog_usec() == 0);
	setenv("WATCHDOG_USEC", "-5", 1);
	assert_true(sdnotify_watchdog_usec() == 0);
	unsetenv("WATCHDOG_USEC");
	assert_true(sdnotify_watchdog_usec() == 0);

	rx_close(&r);
	unsetenv("NOTIFY_SOCKET");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_socket),
		cmocka_unit_test(test_abstract_socket),
		cmocka_unit_test(test_unset_and_invalid),
		cmocka_unit_test(test_watchdog),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

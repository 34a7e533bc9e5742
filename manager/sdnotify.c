/*
 * sd_notify over a plain unix datagram socket (see sdnotify.h).  A fresh
 * socket per message: notifications are rare (start, reload, stop, and a
 * watchdog ping every few seconds at most), and this keeps no fd open in
 * the daemon or its children.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "sdnotify.h"
#include "xmalloc.h"

int
sdnotify_send(const char *addr, const char *msg)
{
	struct sockaddr_un sun;
	socklen_t slen;
	size_t alen, mlen;
	ssize_t n;
	int fd, saved;

	if (addr == NULL || *addr == '\0')
		return 0;
	if (msg == NULL)
		return FL_ERR_INVAL;
	alen = strlen(addr);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (addr[0] == '@') {
		/* Abstract: a leading NUL, no terminator, length counts. */
		if (alen < 2 || alen > sizeof(sun.sun_path))
			return FL_ERR_INVAL;
		memcpy(sun.sun_path + 1, addr + 1, alen - 1);
		slen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + alen);
	} else if (addr[0] == '/') {
		if (alen >= sizeof(sun.sun_path))
			return FL_ERR_INVAL;
		memcpy(sun.sun_path, addr, alen);
		slen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		    alen + 1);
	} else {
		return FL_ERR_INVAL;	/* vsock: and relative paths */
	}

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return FL_ERR_IO;
	mlen = strlen(msg);
	do {
		n = sendto(fd, msg, mlen, MSG_NOSIGNAL,
		    (const struct sockaddr *)&sun, slen);
	} while (n < 0 && errno == EINTR);
	saved = errno;
	close(fd);
	if (n < 0) {
		errno = saved;
		return FL_ERR_IO;
	}
	return (size_t)n == mlen ? 1 : FL_ERR_IO;
}

int
sdnotify(const char *msg)
{
	return sdnotify_send(getenv("NOTIFY_SOCKET"), msg);
}

int
sdnotifyf(const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int rc;

	if (getenv("NOTIFY_SOCKET") == NULL)
		return 0;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return FL_ERR_NOMEM;
	rc = sdnotify(msg);
	free(msg);
	return rc;
}

/* STATUS= value: newlines would start new assignments. */
static char *
status_value(const char *text)
{
	char *s = xstrdup(text != NULL ? text : "");

	for (char *p = s; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return s;
}

int
sdnotify_ready(const char *status)
{
	char *s;
	int rc;

	if (status == NULL)
		return sdnotify("READY=1");
	s = status_value(status);
	rc = sdnotifyf("READY=1\nSTATUS=%s", s);
	free(s);
	return rc;
}

int
sdnotify_stopping(void)
{
	return sdnotify("STOPPING=1");
}

int
sdnotify_reloading(uint64_t monotonic_usec)
{
	if (monotonic_usec == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		monotonic_usec = (uint64_t)ts.tv_sec * 1000000 +
		    (uint64_t)ts.tv_nsec / 1000;
	}
	return sdnotifyf("RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)monotonic_usec);
}

int
sdnotify_status(const char *text)
{
	char *s = status_value(text);
	int rc = sdnotifyf("STATUS=%s", s);

	free(s);
	return rc;
}

/* A decimal number filling the whole of s, > 0. */
static int
parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0)
		return -1;
	*out = v;
	return 0;
}

uint64_t
sdnotify_watchdog_usec(void)
{
	const char *pid = getenv("WATCHDOG_PID");
	uint64_t usec, p;

	if (parse_u64(getenv("WATCHDOG_USEC"), &usec) != 0)
		return 0;
	if (pid != NULL) {
		if (parse_u64(pid, &p) != 0 || p != (uint64_t)getpid())
			return 0;
	}
	return usec;
}

int
sdnotify_watchdog(void)
{
	if (sdnotify_watchdog_usec() == 0)
		return 0;
	return sdnotify("WATCHDOG=1");
}

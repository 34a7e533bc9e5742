/*
 * A service container (a database, a registry) is "up" when its ports
 * accept TCP connections; GitLab Runner checks that from a short-lived
 * container of the helper image before the job's script runs, so that the
 * script does not race the service's start.  The executor bounds the wait
 * (wait_for_services_timeout); --timeout is there for use by hand.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "duration.h"
#include "healthcheck.h"
#include "log.h"

extern char **environ;

#define MAX_PORTS 64
#define CONNECT_TIMEOUT_MS 1000

static int
parse_port(const char *s)
{
	char *end;
	long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
		return -1;
	return (int)v;
}

size_t
healthcheck_ports(char *const *env, int *ports, size_t max)
{
	static const char pre[] = "WAIT_FOR_SERVICE_", suf[] = "_TCP_PORT",
	    legacy[] = "WAIT_FOR_SERVICE_TCP_PORT";
	const size_t plen = sizeof(pre) - 1, slen = sizeof(suf) - 1;
	size_t n = 0;

	for (size_t i = 0; env[i] != NULL && n < max; i++) {
		const char *e = env[i], *eq = strchr(e, '=');
		size_t klen;
		int ok, port, dup = 0;

		if (eq == NULL)
			continue;
		klen = (size_t)(eq - e);
		if (klen == sizeof(legacy) - 1 && strncmp(e, legacy, klen) == 0) {
			ok = 1;
		} else if (klen > plen + slen && strncmp(e, pre, plen) == 0 &&
		    strncmp(eq - slen, suf, slen) == 0) {
			/* WAIT_FOR_SERVICE_<digits>_TCP_PORT */
			ok = 1;
			for (const char *d = e + plen; d < eq - slen && ok; d++)
				ok = *d >= '0' && *d <= '9';
		} else {
			ok = 0;
		}
		if (!ok || (port = parse_port(eq + 1)) < 0)
			continue;
		for (size_t k = 0; k < n; k++)
			dup |= ports[k] == port;
		if (!dup)
			ports[n++] = port;
	}
	return n;
}

/* One connection attempt to host:port, bounded in time: 1 answered, 0 not. */
static int
try_connect(const char *host, int port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char serv[8];
	int ok = 0;

	snprintf(serv, sizeof(serv), "%d", port);
	if (getaddrinfo(host, serv, &hints, &res) != 0)
		return 0;
	for (ai = res; ai != NULL && !ok; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);

		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			ok = 1;
		} else if (errno == EINPROGRESS) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int err = 0;
			socklen_t len = sizeof(err);

			if (poll(&p, 1, CONNECT_TIMEOUT_MS) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
			    err == 0)
				ok = 1;
		}
		close(fd);
	}
	freeaddrinfo(res);
	return ok;
}

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * DURATION_SEC + ts.tv_nsec;
}

static const struct option hc_opts[] = {
	{ "timeout", required_argument, NULL, 'T' },
	{ NULL, 0, NULL, 0 }
};

int
healthcheck_main(int argc, char **argv)
{
	int ports[MAX_PORTS], done[MAX_PORTS] = { 0 };
	int64_t timeout_ns = 0, start;
	const char *host;
	size_t n, left;
	int c;

	while ((c = getopt_long(argc, argv, "", hc_opts, NULL)) != -1) {
		if (c != 'T' || duration_parse(optarg, &timeout_ns) < 0 ||
		    timeout_ns < 0)
			log_fatal("health-check: usage: health-check [--timeout DURATION]");
	}
	if (optind < argc)
		log_fatal("health-check: unexpected argument %s", argv[optind]);
	host = getenv("WAIT_FOR_SERVICE_TCP_ADDR");
	n = healthcheck_ports(environ, ports, MAX_PORTS);
	if (host == NULL || host[0] == '\0' || n == 0)
		log_fatal("No HOST or PORT found");

	for (size_t i = 0; i < n; i++)
		log_info("waiting for TCP connection to %s:%d...", host, ports[i]);
	start = now_ns();
	for (left = n;;) {
		for (size_t i = 0; i < n; i++) {
			if (!done[i] && try_connect(host, ports[i])) {
				done[i] = 1;
				left--;
				log_info("%s:%d is up", host, ports[i]);
			}
		}
		if (left == 0)
			return 0;
		if (timeout_ns > 0 && now_ns() - start >= timeout_ns) {
			char d[DURATION_STRLEN];

			duration_format(timeout_ns, d, sizeof(d));
			log_error("service at %s did not answer on every port within %s",
			    host, d);
			return 1;
		}
		sleep(1);
	}
}

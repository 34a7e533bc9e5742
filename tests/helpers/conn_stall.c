/*
 * conn_stall: a stream of manager/connector.c held at its flow-control
 * limits, for tests/integration/connector.sh.  A stalled stream must cost
 * nothing: the connector sleeps until the SSH window opens or the caller
 * drains, and afterwards every byte arrives, in order.  The probe is its
 * own peer: it listens on a unix socket (sshd runs on this machine, so
 * its direct-streamlocal channel connects back to us), and it measures
 * its own CPU time (getrusage) while the stream is stuck.
 *
 *   conn_stall -a ADDR -k KEYFILE [-b BYTES] [-s SECS] [-m PCT] up|down DIR
 *
 *   up    the caller writes BYTES (default 8 MiB) into the stream at once;
 *         the server side accepts and does not read for SECS (default 2),
 *         so the channel's window closes with the connector's pair end at
 *         its high-water mark and the rest queued behind it; then the
 *         server reads everything and checks it
 *   down  the server side writes BYTES; the caller does not read for SECS
 *         (its bufferevent's EV_READ disabled), so the connector stops at
 *         CONN_STREAM_HIGH_WATER; then it reads to EOF and checks
 *
 * Prints "key value" lines: "stalled_queued N" (bytes still held back on
 * the sending side when the measurement starts), "stalled_cpu_s X" (CPU
 * time, getrusage), "stalled_busy_s B" (time running or runnable, from
 * /proc/self/schedstat: a spinning loop on a loaded machine gets less
 * CPU but is runnable throughout), "stalled_wall_s Y",
 * "stalled_busy_pct P" (the larger of X and B against Y), then
 * "received N intact|corrupt" and "secs_after_stall T".  Exit 0 when P is
 * under PCT (default 20) and every byte arrived intact; 1 otherwise; 2
 * for usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <libssh2.h>

#include "connector.h"
#include "err.h"
#include "xmalloc.h"

#define PERIOD		251
/* Time for the stream to reach its stall before measuring. */
#define SETTLE_MS	700

static struct event_base *base;
static struct conn *conn;
static int result = 1;
static int up;				/* direction: caller to server */
static uint64_t want = 8 * 1024 * 1024;
static int stall_secs = 2;
static double max_pct = 20;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static int lfd = -1;
static struct event *accept_ev;
static struct event *phase_ev;
static struct bufferevent *srv;		/* the server's accepted socket */
static struct bufferevent *cli;		/* the connector's stream */
static int phase;			/* 0 settle, 1 measure, 2 drain */
static double cpu0, busy0, wall0, drain_t0;
static uint64_t got;			/* checked by the receiving side */
static int corrupt;
static int stream_ready, srv_ready;

static unsigned char pattern[PERIOD + 65536];

static void
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/*
 * Seconds the process ran or waited to run (/proc/self/schedstat: on a
 * loaded machine a spinning loop gets less CPU, but it is runnable all
 * the time); -1 when the kernel does not say.
 */
static double
busy_s(void)
{
	unsigned long long run, wait;
	FILE *f = fopen("/proc/self/schedstat", "r");
	int n;

	if (f == NULL)
		return -1;
	n = fscanf(f, "%llu %llu", &run, &wait);
	fclose(f);
	return n == 2 ? (double)(run + wait) / 1e9 : -1;
}

static void
finish(int rc)
{
	result = rc;
	event_base_loopexit(base, NULL);
}

/* Queue the pattern's first n bytes on out. */
static void
add_pattern(struct evbuffer *out, uint64_t n)
{
	uint64_t off = 0;

	while (off < n) {
		size_t k = 65536, ph = (size_t)(off % PERIOD);

		if (n - off < k)
			k = (size_t)(n - off);
		evbuffer_add(out, pattern + ph, k);
		off += k;
	}
}

/* Check and drop what arrived in in. */
static void
take(struct evbuffer *in)
{
	struct evbuffer_iovec v[16];
	int i, n;

	while (evbuffer_get_length(in) > 0) {
		size_t took = 0;

		n = evbuffer_peek(in, -1, NULL, v, 16);
		if (n > 16)
			n = 16;
		for (i = 0; i < n; i++) {
			const unsigned char *p = v[i].iov_base;
			size_t len = v[i].iov_len, j;

			for (j = 0; j < len && !corrupt; j++)
				if (p[j] != (got + j) % PERIOD)
					corrupt = 1;
			got += len;
			took += len;
		}
		evbuffer_drain(in, took);
	}
}

static int cpu_ok;

/* The receiving side has everything (or EOF): report and stop. */
static void
done(void)
{
	say("received %" PRIu64 " %s", got, corrupt ? "corrupt" : "intact");
	say("secs_after_stall %.3f", now_s() - drain_t0);
	finish(!corrupt && got == want && cpu_ok ? 0 : 1);
}

/* The receiving side's read callback (server for up, caller for down). */
static void
recv_read(struct bufferevent *bev, void *arg)
{
	(void)arg;
	take(bufferevent_get_input(bev));
	if (up && got >= want)
		done();
}

static void
recv_event(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if ((what & BEV_EVENT_EOF) && !up && phase == 2) {
		take(bufferevent_get_input(bev));
		done();
		return;
	}
	say("unexpected event 0x%x on the %s side (received %" PRIu64 ")",
	    what, bev == srv ? "server" : "caller", got);
	finish(1);
}

static void
srv_write(struct bufferevent *bev, void *arg)
{
	(void)arg;
	/* down: everything sent; closing gives the caller EOF. */
	if (!up && phase == 2 &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
		bufferevent_free(srv);
		srv = NULL;
	}
}

/*
 * Bytes the sending side still holds.  up: none are visible here (the
 * caller's filter hands everything to the connector's pair at once), but
 * the server has read nothing and a unix socket holds far less than the
 * 8 MiB sent, so the stream is stuck by construction; the count after
 * the stall proves nothing was lost.  down: the server's unsent output.
 */
static size_t
held_back(void)
{
	if (up)
		return (size_t)want;
	return srv ? evbuffer_get_length(bufferevent_get_output(srv)) : 0;
}

static void
phase_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timeval tv = { stall_secs, 0 };
	double cpu, busy, wall, pct;

	(void)fd;
	(void)what;
	(void)arg;
	if (phase == 0) {
		say("stalled_queued %zu", held_back());
		cpu0 = cpu_s();
		busy0 = busy_s();
		wall0 = now_s();
		phase = 1;
		evtimer_add(phase_ev, &tv);
		return;
	}
	cpu = cpu_s() - cpu0;
	busy = busy_s();
	busy = busy >= 0 && busy0 >= 0 ? busy - busy0 : cpu;
	wall = now_s() - wall0;
	pct = 100 * (busy > cpu ? busy : cpu) / wall;
	say("stalled_queued_end %zu", held_back());
	say("stalled_cpu_s %.3f", cpu);
	say("stalled_busy_s %.3f", busy);
	say("stalled_wall_s %.3f", wall);
	say("stalled_busy_pct %.1f", pct);
	cpu_ok = pct < max_pct && held_back() > 0;
	if (held_back() == 0)
		say("no stall: nothing was held back");
	/* Let the receiving side go. */
	phase = 2;
	drain_t0 = now_s();
	if (up) {
		bufferevent_setcb(srv, recv_read, NULL, recv_event, NULL);
		bufferevent_enable(srv, EV_READ);
	} else {
		bufferevent_setcb(cli, recv_read, NULL, recv_event, NULL);
		bufferevent_enable(cli, EV_READ);
	}
}

/* Both ends exist: fill the sending side, wait for the stall. */
static void
maybe_start(void)
{
	struct timeval tv = { 0, SETTLE_MS * 1000 };

	if (!stream_ready || !srv_ready)
		return;
	if (up)
		add_pattern(bufferevent_get_output(cli), want);
	else
		add_pattern(bufferevent_get_output(srv), want);
	evtimer_add(phase_ev, &tv);
}

static void
accept_cb(evutil_socket_t fd, short what, void *arg)
{
	int s;

	(void)what;
	(void)arg;
	s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (s < 0)
		return;
	if (srv != NULL) {
		close(s);
		return;
	}
	srv = bufferevent_socket_new(base, s, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(srv, NULL, srv_write, recv_event, NULL);
	bufferevent_enable(srv, EV_WRITE);	/* up: not reading yet */
	srv_ready = 1;
	maybe_start();
}

static void
stream_cb(void *arg, int err, const char *errmsg, struct bufferevent *bev)
{
	(void)arg;
	if (err != 0) {
		say("stream_error %s", errmsg);
		finish(1);
		return;
	}
	cli = bev;
	/* down: the caller does not read yet. */
	bufferevent_setcb(cli, NULL, NULL, recv_event, NULL);
	bufferevent_enable(cli, EV_WRITE);
	stream_ready = 1;
	maybe_start();
}

static void
state_cb(void *arg, enum conn_state st, int err, const char *msg)
{
	(void)arg;
	(void)err;
	if (st == CONN_CONNECTING)
		return;
	if (st == CONN_DOWN) {
		say("down %s", msg);
		finish(1);
		return;
	}
	if (conn_open_stream(conn, sock_path, stream_cb, NULL) == NULL) {
		say("conn_open_stream refused");
		finish(1);
	}
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	say("deadline: received %" PRIu64 " of %" PRIu64, got, want);
	finish(1);
}

static int
listen_on(const char *dir)
{
	struct sockaddr_un sa;
	int n;

	n = snprintf(sock_path, sizeof(sock_path), "%s/stall.sock", dir);
	if (n < 0 || (size_t)n >= sizeof(sock_path))
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, sock_path, (size_t)n + 1);
	unlink(sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 4) < 0)
		return -1;
	return 0;
}

int
main(int argc, char **argv)
{
	struct conn_params p;
	struct event *dl;
	struct timeval tv = { 60, 0 };
	char *key = NULL;
	size_t key_len = 0, i;
	int ch, err;

	memset(&p, 0, sizeof(p));
	p.instance_id = "stall";
	p.cred.username = "root";
	while ((ch = getopt(argc, argv, "a:k:b:s:m:")) != -1) {
		switch (ch) {
		case 'a':
			p.internal_addr = optarg;
			break;
		case 'k':
			freezero(key, key_len);
			key = NULL;
			if (conn_read_key_file(optarg, &key, &key_len) < 0) {
				fprintf(stderr, "conn_stall: cannot read key\n");
				return 2;
			}
			break;
		case 'b':
			want = strtoull(optarg, NULL, 10);
			break;
		case 's':
			stall_secs = atoi(optarg);
			break;
		case 'm':
			max_pct = atof(optarg);
			break;
		default:
			return 2;
		}
	}
	if (argc - optind != 2 || key == NULL || want == 0 ||
	    (strcmp(argv[optind], "up") != 0 &&
	    strcmp(argv[optind], "down") != 0)) {
		fprintf(stderr, "usage: conn_stall -a ADDR -k KEY [-b BYTES] "
		    "[-s SECS] [-m PCT] up|down DIR\n");
		freezero(key, key_len);
		return 2;
	}
	up = strcmp(argv[optind], "up") == 0;
	p.cred.key = key;
	p.cred.key_len = key_len;
	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)(i % PERIOD);
	if (listen_on(argv[optind + 1]) < 0) {
		fprintf(stderr, "conn_stall: cannot listen in %s: %s\n",
		    argv[optind + 1], strerror(errno));
		freezero(key, key_len);
		return 2;
	}

	base = event_base_new();
	dl = evtimer_new(base, deadline_cb, NULL);
	evtimer_add(dl, &tv);
	phase_ev = evtimer_new(base, phase_cb, NULL);
	accept_ev = event_new(base, lfd, EV_READ | EV_PERSIST, accept_cb, NULL);
	event_add(accept_ev, NULL);
	conn = conn_new(base, &p, state_cb, NULL, &err);
	if (conn == NULL) {
		fprintf(stderr, "conn_stall: conn_new: %s\n", err_str(err));
		return 2;
	}
	event_base_dispatch(base);

	conn_free(conn);
	if (cli != NULL)
		bufferevent_free(cli);
	if (srv != NULL)
		bufferevent_free(srv);
	/* Deferred bufferevent callbacks still queued hold references:
	 * let them run (to no callback) so the frees complete. */
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_free(accept_ev);
	event_free(phase_ev);
	event_free(dl);
	event_base_free(base);
	close(lfd);
	unlink(sock_path);
	freezero(key, key_len);
	libssh2_exit();
	return result;
}

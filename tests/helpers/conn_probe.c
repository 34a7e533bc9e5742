/*
 * conn_probe: drives manager/connector.c against a real sshd for
 * tests/integration/connector.sh, one scenario per command, and prints
 * what happened as "key value" lines the test greps.  Exit 0 when the
 * scenario did what it should, 1 otherwise, 2 for usage errors.
 *
 *   conn_probe [options] COMMAND [ARGS]
 *
 *   -a ADDR   instance address (host, host:port, [v6]:port)
 *   -p PORT   port when ADDR has none (default 22)
 *   -u USER   user (default root)
 *   -k FILE   private key file (read here, given to the connector in
 *             memory: never on a command line)
 *   -P FILE   file whose first line is the password
 *   -i ID     instance id (default "probe")
 *   -f FP     pinned host key fingerprint
 *   -K SECS   keepalive interval (-1: none; default the connector's)
 *   -t SECS   whole connect timeout      -n N  attempts
 *   -A N      authentication failures    -T SECS  give up (default 120)
 *   -R SECS   conn_run timeout (default 30)
 *   -v        print state changes on stderr
 *
 * Commands:
 *   connect            connect; "up FP attempts N ms T"
 *   run CMD [STDIN]    conn_run; "status N", "stdout ...", "stderr ..."
 *   exec-stream CMD    an exec stream: "data ..." (what came before EOF),
 *                      then from its exit callback "exit_status N" and
 *                      "exit_stderr ..."
 *   ping N PATH [BAD]  N concurrent streams to a Docker socket, each
 *                      GET /_ping kept alive and all held open until every
 *                      one has its answer (then closed by freeing the
 *                      bufferevent), plus 4 with Connection: close read to
 *                      EOF; with BAD one more stream to a wrong path,
 *                      which must fail alone
 *   ping-exec N CMD    the same through N exec streams running CMD
 *                      (docker system dial-stdio)
 *   sink PATH BYTES    read BYTES from the pattern server at PATH on the
 *                      instance, check them, print MB/s
 *   source PATH BYTES  write BYTES to it, check its count, print MB/s
 *   sink-exec BYTES    the pattern through an exec stream (a shell loop
 *                      is too slow: "head -c BYTES /dev/zero", zeros)
 *   sink-local PATH BYTES / source-local PATH BYTES
 *                      the same against a local unix socket (an ssh -L
 *                      forward), no connector involved: the baseline
 *   abort PATH BYTES   a sink that, 10 MB in, queues a run and another
 *                      stream and then frees the conn from inside the
 *                      read callback: the stream must see EOF, and no
 *                      callback of the conn may come afterwards
 *   hold PATH          GET /events through the Docker socket, print
 *                      "holding", wait for EOF, print "eof_ms" (wall
 *                      clock) and how the conn went down
 *   idle SECS          connected and idle for SECS: "idle_bytes_out N"
 *   hostkey-change     connect, print "up FP", read a line from stdin,
 *                      reconnect (after the test replaced the host key),
 *                      expect a host key error
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define PATTERN_PERIOD	251
#define MAX_STREAMS	256

static struct event_base *base;
static struct conn *conn;
static int verbose;
static int64_t run_timeout_ns = 30 * CONN_NS_PER_SEC;
static int result = 1;
static int64_t t_start;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
finish(int rc)
{
	result = rc;
	event_base_loopexit(base, NULL);
}

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

/* The pattern: byte i of a stream is i % 251. */
static unsigned char pattern[PATTERN_PERIOD + 65536];

static void
pattern_init(void)
{
	size_t i;

	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)(i % PATTERN_PERIOD);
}

/* Check n bytes at stream offset off against the pattern. */
static int
pattern_check(const unsigned char *p, size_t n, uint64_t off)
{
	while (n > 0) {
		size_t k = n < 65536 ? n : 65536;
		size_t ph = (size_t)(off % PATTERN_PERIOD);

		if (memcmp(p, pattern + ph, k) != 0)
			return -1;
		p += k;
		n -= k;
		off += k;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */

static const char *cmd;
static char **args;
static int nargs;

/* connect, idle, hostkey-change */
static int hk_stage;
static uint64_t idle_out0;
static struct event *idle_ev;
static struct event *stdin_ev;

static void start_scenario(void);

static void
idle_done(evutil_socket_t fd, short what, void *arg)
{
	struct conn_stats st;

	(void)fd;
	(void)what;
	(void)arg;
	conn_get_stats(conn, &st);
	say("idle_bytes_out %" PRIu64, st.bytes_out - idle_out0);
	finish(0);
}

static void
stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];

	(void)what;
	(void)arg;
	if (read(fd, buf, sizeof(buf)) <= 0) {
		say("stdin closed");
		finish(1);
		return;
	}
	event_del(stdin_ev);
	hk_stage = 2;
	if (conn_state(conn) == CONN_UP) {
		/* The old connection should be gone; make a new conn with the
		 * pin, as a restarted manager would... no: reconnect this
		 * one, which keeps the pin in memory. */
		say("still up");
		finish(1);
		return;
	}
	if (conn_reconnect(conn) != 0) {
		say("reconnect refused");
		finish(1);
	}
}

static void
state_cb(void *arg, enum conn_state st, int err, const char *msg)
{
	struct conn_stats stats;

	(void)arg;
	if (conn == NULL) {
		say("state callback after conn_free!");
		abort();
	}
	conn_get_stats(conn, &stats);
	if (verbose)
		fprintf(stderr, "state %s err %d attempts %" PRIu64 ": %s\n",
		    st == CONN_UP ? "up" : st == CONN_DOWN ? "down" :
		    "connecting", err, stats.attempts, msg ? msg : "");
	if (st == CONN_CONNECTING)
		return;
	if (st == CONN_DOWN) {
		say("down_failure %d", (int)conn_failure(conn));
		say("down_err %s", err_str(err));
		say("down_attempts %" PRIu64, stats.attempts);
		say("down_ms %" PRId64, now_ms() - t_start);
		say("down_wall_ms %" PRId64, wall_ms());
		say("down_msg %s", msg);
		if (strcmp(cmd, "hostkey-change") == 0 && hk_stage == 1) {
			say("lost while waiting");
			return;		/* expected: the test stopped sshd */
		}
		if (strcmp(cmd, "hostkey-change") == 0 && hk_stage == 2) {
			finish(conn_failure(conn) == CONN_FAIL_HOSTKEY &&
			    err == FL_ERR_PROTO ? 0 : 1);
			return;
		}
		if (strcmp(cmd, "hold") == 0)
			return;		/* the stream's EOF finishes */
		finish(strcmp(cmd, "connect") == 0 && nargs > 0 &&
		    strcmp(args[0], "expect-down") == 0 ? 0 : 1);
		return;
	}
	say("up %s attempts %" PRIu64 " ms %" PRId64,
	    conn_host_key_fingerprint(conn), stats.attempts,
	    now_ms() - t_start);
	if (strcmp(cmd, "hostkey-change") == 0) {
		if (hk_stage == 0) {
			hk_stage = 1;
			stdin_ev = event_new(base, 0, EV_READ | EV_PERSIST,
			    stdin_cb, NULL);
			event_add(stdin_ev, NULL);
			say("waiting");
			return;
		}
		say("reconnected despite the new key");
		finish(1);
		return;
	}
	if (strcmp(cmd, "connect") == 0) {
		finish(nargs > 0 && strcmp(args[0], "expect-down") == 0);
		return;
	}
	if (strcmp(cmd, "idle") == 0) {
		struct timeval tv = { nargs ? atoi(args[0]) : 5, 0 };

		idle_out0 = stats.bytes_out;
		idle_ev = evtimer_new(base, idle_done, NULL);
		evtimer_add(idle_ev, &tv);
		return;
	}
}

/* run */
static void
run_cb(void *arg, const struct conn_run_result *r)
{
	(void)arg;
	if (r->err) {
		say("run_error %s: %s", err_str(r->err), r->errmsg);
		finish(1);
		return;
	}
	say("status %d", r->exit_status);
	if (r->exit_signal)
		say("signal %s", r->exit_signal);
	say("stdout %s", r->out);
	say("stdout_len %zu", r->out_len);
	say("stdout_truncated %d", r->out_truncated);
	say("stderr %s", r->err_out);
	finish(0);
}

/* ping and ping-exec */
struct pinger {
	int idx;
	int keepalive;		/* we close after the response */
	int bad;		/* must fail to open */
	struct bufferevent *bev;
	struct evbuffer *got;
	int answered;
	int done;
};

static struct pinger pingers[MAX_STREAMS + 1];
#define NCLOSE 4
static int nping, nkeep, ping_ok, ping_answered, ping_failed_ok, ping_done;
static int ping_reported;
static int ping_expect_bad;
static uint64_t peak_active;
static struct event *poll_ev;

static void ping_check_all(void);

static void
poll_closed(evutil_socket_t fd, short what, void *arg)
{
	struct conn_stats st;
	struct timeval tv = { 0, 20000 };

	(void)fd;
	(void)what;
	(void)arg;
	conn_get_stats(conn, &st);
	if (st.channels_active == 0) {
		say("channels_closed ok opened %" PRIu64 " failed %" PRIu64,
		    st.channels_opened, st.channels_failed);
		finish(ping_ok == nping && ping_failed_ok == ping_expect_bad ?
		    0 : 1);
		return;
	}
	evtimer_add(poll_ev, &tv);
}

static void
ping_check_all(void)
{
	int i;

	if (ping_done < nping + ping_expect_bad || ping_reported)
		return;
	ping_reported = 1;
	say("ping ok %d/%d", ping_ok, nping);
	say("peak_active %" PRIu64, peak_active);
	/* Wait for every channel to be closed cleanly. */
	for (i = 0; i < nping; i++)
		if (pingers[i].bev != NULL) {
			bufferevent_free(pingers[i].bev);
			pingers[i].bev = NULL;
		}
	poll_ev = evtimer_new(base, poll_closed, NULL);
	poll_closed(-1, 0, NULL);
}

static void
pinger_answered(struct pinger *p)
{
	int i;

	p->answered = 1;
	if (!p->keepalive)
		return;
	ping_answered++;
	if (ping_answered < nkeep)
		return;
	{
		struct conn_stats st;

		conn_get_stats(conn, &st);
		say("active_when_all_answered %" PRIu64, st.channels_active);
	}
	/* Every keep-alive stream is still open here: all channels at
	 * once.  Now close them (freeing the bufferevent). */
	for (i = 0; i < nping; i++) {
		struct pinger *q = &pingers[i];

		if (q->keepalive && q->bev != NULL && !q->done) {
			bufferevent_free(q->bev);
			q->bev = NULL;
			q->done = 1;
			ping_ok++;
			ping_done++;
		}
	}
	ping_check_all();
}

static int
response_ok(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	const char *s = (const char *)evbuffer_pullup(b, -1);

	if (n < 12 || s == NULL || strncmp(s, "HTTP/1.1 200 ", 13) != 0)
		return 0;
	return memmem(s, n, "\r\n\r\nOK", 6) != NULL;
}

static void
pinger_read(struct bufferevent *bev, void *arg)
{
	struct pinger *p = arg;
	struct conn_stats st;

	evbuffer_add_buffer(p->got, bufferevent_get_input(bev));
	conn_get_stats(conn, &st);
	if (st.channels_active > peak_active)
		peak_active = st.channels_active;
	if (p->keepalive && !p->answered && response_ok(p->got))
		pinger_answered(p);
}

static void
pinger_event(struct bufferevent *bev, short what, void *arg)
{
	struct pinger *p = arg;

	(void)bev;
	if (!(what & BEV_EVENT_EOF) || p->done)
		return;
	evbuffer_add_buffer(p->got, bufferevent_get_input(bev));
	p->done = 1;
	ping_done++;
	if (response_ok(p->got)) {
		ping_ok++;
	} else {
		say("stream %d: EOF without the answer (%zu bytes)", p->idx,
		    evbuffer_get_length(p->got));
	}
	bufferevent_free(p->bev);
	p->bev = NULL;
	ping_check_all();
}

static void
pinger_open(void *arg, int err, const char *errmsg, struct bufferevent *bev)
{
	struct pinger *p = arg;

	if (p->bad) {
		p->done = 1;
		ping_done++;
		if (err != 0 && bev == NULL) {
			say("bad_stream %s: %s", err_str(err), errmsg);
			ping_failed_ok++;
		} else {
			say("bad stream opened?");
			if (bev)
				bufferevent_free(bev);
		}
		ping_check_all();
		return;
	}
	if (err != 0) {
		say("stream %d failed: %s", p->idx, errmsg);
		p->done = 1;
		ping_done++;
		if (!p->answered)
			pinger_answered(p);
		ping_check_all();
		return;
	}
	p->bev = bev;
	bufferevent_setcb(bev, pinger_read, NULL, pinger_event, p);
	bufferevent_enable(bev, EV_READ);
	bufferevent_write(bev, "GET /_ping HTTP/1.1\r\nHost: docker\r\n", 35);
	if (!p->keepalive)
		bufferevent_write(bev, "Connection: close\r\n", 19);
	bufferevent_write(bev, "\r\n", 2);
}

static void
pinger_exit(void *arg, const struct conn_run_result *r)
{
	struct pinger *p = arg;

	if (verbose || r->exit_status != 0)
		fprintf(stderr, "exec stream %d: status %d err %d stderr %s\n",
		    p->idx, r->exit_status, r->err, r->err_out);
}

static int
start_ping(int exec)
{
	int i;

	if (nargs < 2)
		return -1;
	nkeep = atoi(args[0]);
	if (nkeep < 1 || nkeep + NCLOSE > MAX_STREAMS)
		return -1;
	nping = nkeep + NCLOSE;
	for (i = 0; i < nping; i++) {
		struct pinger *p = &pingers[i];
		struct conn_req *r;

		p->idx = i;
		p->keepalive = i < nkeep;
		p->got = evbuffer_new();
		if (exec)
			r = conn_open_exec_stream(conn, args[1], pinger_open,
			    pinger_exit, p);
		else
			r = conn_open_stream(conn, args[1], pinger_open, p);
		if (r == NULL)
			return -1;
	}
	if (nargs > 2) {
		struct pinger *p = &pingers[nping];

		p->bad = 1;
		p->idx = nping;
		p->got = evbuffer_new();
		ping_expect_bad = 1;
		if (conn_open_stream(conn, args[2], pinger_open, p) == NULL)
			return -1;
	}
	return 0;
}

/* sink, source (through the connector or a local socket) */
static struct bufferevent *xbev;
static uint64_t xbytes, xwant, xsent;
static int64_t xt0;
static int xsource;
static int xzero;		/* sink-exec: zeros, not the pattern */
static struct evbuffer *xreply;
static int xabort;		/* free the conn mid-stream */

static void
never_run(void *arg, const struct conn_run_result *r)
{
	(void)arg;
	(void)r;
	say("callback after conn_free!");
	abort();
}

static void
never_stream(void *arg, int err, const char *errmsg, struct bufferevent *bev)
{
	(void)arg;
	(void)err;
	(void)errmsg;
	(void)bev;
	say("stream callback after conn_free!");
	abort();
}

static void
x_report(void)
{
	double secs = (double)(now_ms() - xt0) / 1000.0;

	if (secs <= 0)
		secs = 0.001;
	say("bytes %" PRIu64 " secs %.3f MBps %.1f", xsource ? xsent : xbytes,
	    secs, (double)(xsource ? xsent : xbytes) / 1e6 / secs);
}

static void
x_fill(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	/* Keep 4 MiB queued; the pattern continues from xsent. */
	while (xsent < xwant && evbuffer_get_length(out) < 4 * 1024 * 1024) {
		size_t k = 65536, ph = (size_t)(xsent % PATTERN_PERIOD);

		if (xwant - xsent < k)
			k = (size_t)(xwant - xsent);
		evbuffer_add(out, pattern + ph, k);
		xsent += k;
	}
}

static void
x_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_iovec v[16];
	int i, n;

	(void)arg;
	if (xsource) {
		evbuffer_add_buffer(xreply, in);
		return;
	}
	while (evbuffer_get_length(in) > 0) {
		size_t took = 0;

		n = evbuffer_peek(in, -1, NULL, v, 16);
		if (n > 16)
			n = 16;
		for (i = 0; i < n; i++) {
			const unsigned char *p = v[i].iov_base;

			if (xzero) {
				size_t j;

				for (j = 0; j < v[i].iov_len; j++)
					if (p[j] != 0)
						break;
				if (j != v[i].iov_len) {
					say("corrupt at %" PRIu64, xbytes + j);
					finish(1);
					return;
				}
			} else if (pattern_check(p, v[i].iov_len, xbytes) < 0) {
				say("corrupt near %" PRIu64, xbytes);
				finish(1);
				return;
			}
			xbytes += v[i].iov_len;
			took += v[i].iov_len;
		}
		evbuffer_drain(in, took);
		if (xabort && conn != NULL && xbytes >= 10000000) {
			conn_run(conn, "sleep 5", NULL, 0, 0, never_run, NULL);
			conn_open_stream(conn, args[0], never_stream, NULL);
			conn_free(conn);
			conn = NULL;
			say("freed at %" PRIu64, xbytes);
		}
	}
}

static void
x_write(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (xsource)
		x_fill(bev);
}

static void
x_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)arg;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (!(what & BEV_EVENT_EOF)) {
		say("stream error 0x%x", what);
		finish(1);
		return;
	}
	if (xsource) {
		char want[64];
		const char *got;

		evbuffer_add_buffer(xreply, bufferevent_get_input(xbev));
		x_report();
		snprintf(want, sizeof(want), "got %" PRIu64 " ok\n", xwant);
		got = (const char *)evbuffer_pullup(xreply, -1);
		say("reply %.*s", (int)evbuffer_get_length(xreply) -
		    (evbuffer_get_length(xreply) > 0), got ? got : "");
		finish(got && evbuffer_get_length(xreply) == strlen(want) &&
		    memcmp(got, want, strlen(want)) == 0 ? 0 : 1);
		return;
	}
	x_read(xbev, NULL);
	x_report();
	if (xabort) {
		say("eof after free %s", conn == NULL ? "yes" : "no");
		finish(conn == NULL && xbytes < xwant ? 0 : 1);
		return;
	}
	finish(xbytes == xwant ? 0 : 1);
}

static void
x_start(struct bufferevent *bev)
{
	char line[64];

	xbev = bev;
	xt0 = now_ms();
	bufferevent_setcb(bev, x_read, x_write, x_event, NULL);
	bufferevent_setwatermark(bev, EV_WRITE, 1024 * 1024, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (xzero)
		return;
	snprintf(line, sizeof(line), "%s %" PRIu64 "\n",
	    xsource ? "recv" : "send", xwant);
	bufferevent_write(bev, line, strlen(line));
	if (xsource)
		x_fill(bev);
}

static void
x_open(void *arg, int err, const char *errmsg, struct bufferevent *bev)
{
	(void)arg;
	if (err != 0) {
		say("open failed: %s", errmsg);
		finish(1);
		return;
	}
	x_start(bev);
}

static void
x_exit(void *arg, const struct conn_run_result *r)
{
	(void)arg;
	if (verbose)
		fprintf(stderr, "exec exit %d %s\n", r->exit_status, r->err_out);
}

/* A local unix socket with a bufferevent: the ssh -L baseline. */
static int
x_local(const char *path)
{
	struct sockaddr_un sun;
	struct bufferevent *bev;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_set_max_single_read(bev, 256 * 1024);
	bufferevent_set_max_single_write(bev, 256 * 1024);
	if (bufferevent_socket_connect(bev, (struct sockaddr *)&sun,
	    sizeof(sun)) < 0)
		return -1;
	x_start(bev);
	return 0;
}

/* hold */
static struct bufferevent *hbev;
static int holding;

static void
hold_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	(void)arg;
	if (!holding && evbuffer_search(in, "\r\n\r\n", 4, NULL).pos >= 0) {
		holding = 1;
		say("holding");
	}
}

static void
hold_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)arg;
	if (what & BEV_EVENT_EOF) {
		say("eof_ms %" PRId64, wall_ms());
		finish(holding ? 0 : 1);
	}
}

static void
hold_open(void *arg, int err, const char *errmsg, struct bufferevent *bev)
{
	(void)arg;
	if (err != 0) {
		say("open failed: %s", errmsg);
		finish(1);
		return;
	}
	hbev = bev;
	bufferevent_setcb(bev, hold_read, NULL, hold_event, NULL);
	bufferevent_enable(bev, EV_READ);
	bufferevent_write(bev, "GET /events HTTP/1.1\r\nHost: docker\r\n\r\n",
	    38);
}

/* exec-stream */
static struct bufferevent *esbev;
static struct evbuffer *esdata;
static int es_eof, es_exited;

static void
es_read(struct bufferevent *bev, void *arg)
{
	(void)arg;
	evbuffer_add_buffer(esdata, bufferevent_get_input(bev));
}

static void
es_event(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if (!(what & BEV_EVENT_EOF))
		return;
	evbuffer_add_buffer(esdata, bufferevent_get_input(bev));
	say("data %.*s", (int)evbuffer_get_length(esdata),
	    (const char *)evbuffer_pullup(esdata, -1));
	es_eof = 1;
	/* Free on EOF, as a caller would: the exit status still comes. */
	bufferevent_free(esbev);
	esbev = NULL;
	if (es_exited)
		finish(0);
}

static void
es_open(void *arg, int err, const char *errmsg, struct bufferevent *bev)
{
	(void)arg;
	if (err != 0) {
		say("open failed: %s", errmsg);
		finish(1);
		return;
	}
	esbev = bev;
	esdata = evbuffer_new();
	bufferevent_setcb(bev, es_read, NULL, es_event, NULL);
	bufferevent_enable(bev, EV_READ);
}

static void
es_exit(void *arg, const struct conn_run_result *r)
{
	(void)arg;
	say("exit_status %d", r->exit_status);
	say("exit_stderr %s", r->err_out);
	es_exited = 1;
	if (es_eof)
		finish(0);
}

static void
start_scenario(void)
{
	if (strcmp(cmd, "run") == 0) {
		if (nargs < 1 || conn_run(conn, args[0], nargs > 1 ? args[1] :
		    NULL, nargs > 1 ? strlen(args[1]) : 0,
		    run_timeout_ns, run_cb, NULL) == NULL)
			goto usage;
	} else if (strcmp(cmd, "ping") == 0) {
		if (start_ping(0) < 0)
			goto usage;
	} else if (strcmp(cmd, "ping-exec") == 0) {
		if (start_ping(1) < 0)
			goto usage;
	} else if (strcmp(cmd, "sink") == 0 || strcmp(cmd, "source") == 0 ||
	    strcmp(cmd, "abort") == 0) {
		if (nargs < 2)
			goto usage;
		xsource = cmd[1] == 'o';
		xabort = cmd[0] == 'a';
		xwant = strtoull(args[1], NULL, 10);
		xreply = evbuffer_new();
		if (conn_open_stream(conn, args[0], x_open, NULL) == NULL)
			goto usage;
	} else if (strcmp(cmd, "sink-exec") == 0) {
		char *c;

		if (nargs < 1)
			goto usage;
		xwant = strtoull(args[0], NULL, 10);
		xzero = 1;
		c = xasprintf("head -c %" PRIu64 " /dev/zero", xwant);
		if (conn_open_exec_stream(conn, c, x_open, x_exit, NULL) ==
		    NULL)
			goto usage;
		free(c);
	} else if (strcmp(cmd, "exec-stream") == 0) {
		if (nargs < 1 || conn_open_exec_stream(conn, args[0], es_open,
		    es_exit, NULL) == NULL)
			goto usage;
	} else if (strcmp(cmd, "hold") == 0) {
		if (nargs < 1 || conn_open_stream(conn, args[0], hold_open,
		    NULL) == NULL)
			goto usage;
	} else if (strcmp(cmd, "connect") != 0 && strcmp(cmd, "idle") != 0 &&
	    strcmp(cmd, "hostkey-change") != 0) {
		goto usage;
	}
	return;
usage:
	fprintf(stderr, "conn_probe: bad command or arguments\n");
	exit(2);
}

static void
deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	say("probe timed out (state %d: %s)", conn ? (int)conn_state(conn) :
	    -1, conn ? conn_error(conn) : "");
	finish(1);
}

static char *
read_line_file(const char *path)
{
	char *key = NULL;
	size_t len = 0;

	if (conn_read_key_file(path, &key, &len) < 0)
		return NULL;
	key[strcspn(key, "\r\n")] = '\0';
	return key;
}

int
main(int argc, char **argv)
{
	struct conn_params p;
	struct event *dl;
	struct timeval tv = { 120, 0 };
	char *key = NULL, *password = NULL;
	size_t key_len = 0;
	int ch, err, i;

	memset(&p, 0, sizeof(p));
	p.instance_id = "probe";
	p.cred.username = "root";
	while ((ch = getopt(argc, argv, "a:p:u:k:P:i:f:K:t:n:A:T:R:v")) != -1) {
		switch (ch) {
		case 'a':
			p.internal_addr = optarg;
			break;
		case 'p':
			p.port = atoi(optarg);
			break;
		case 'u':
			p.cred.username = optarg;
			break;
		case 'k':
			freezero(key, key_len);
			key = NULL;
			if (conn_read_key_file(optarg, &key, &key_len) < 0) {
				fprintf(stderr, "conn_probe: cannot read key\n");
				return 2;
			}
			break;
		case 'P':
			freezero_str(password);
			password = read_line_file(optarg);
			if (password == NULL) {
				fprintf(stderr, "conn_probe: no password\n");
				return 2;
			}
			break;
		case 'i':
			p.instance_id = optarg;
			break;
		case 'f':
			p.pinned_fingerprint = optarg;
			break;
		case 'K':
			p.keepalive_ns = atoll(optarg) < 0 ? -1 :
			    atoll(optarg) * CONN_NS_PER_SEC;
			break;
		case 't':
			p.timeout_ns = atoll(optarg) * CONN_NS_PER_SEC;
			break;
		case 'n':
			p.max_attempts = atoi(optarg);
			break;
		case 'A':
			p.max_auth_failures = atoi(optarg);
			break;
		case 'T':
			tv.tv_sec = atoi(optarg);
			break;
		case 'R':
			run_timeout_ns = atoll(optarg) * CONN_NS_PER_SEC;
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: conn_probe [options] COMMAND [ARGS]\n");
		return 2;
	}
	cmd = argv[optind];
	args = argv + optind + 1;
	nargs = argc - optind - 1;
	p.cred.key = key;
	p.cred.key_len = key_len;
	p.cred.password = password;
	pattern_init();

	base = event_base_new();
	dl = evtimer_new(base, deadline, NULL);
	evtimer_add(dl, &tv);
	t_start = now_ms();
	if (strcmp(cmd, "sink-local") == 0 || strcmp(cmd, "source-local") == 0) {
		if (nargs < 2)
			return 2;
		xsource = cmd[1] == 'o';
		xwant = strtoull(args[1], NULL, 10);
		xreply = evbuffer_new();
		if (x_local(args[0]) < 0) {
			fprintf(stderr, "conn_probe: bad socket path\n");
			return 2;
		}
	} else {
		conn = conn_new(base, &p, state_cb, NULL, &err);
		if (conn == NULL) {
			fprintf(stderr, "conn_probe: conn_new: %s\n",
			    err_str(err));
			return 2;
		}
		start_scenario();
	}
	event_base_dispatch(base);

	/* Everything freed, so that ASan's leak check means something. */
	conn_free(conn);
	if (xbev != NULL)
		bufferevent_free(xbev);
	if (hbev != NULL)
		bufferevent_free(hbev);
	for (i = 0; i <= MAX_STREAMS; i++) {
		if (pingers[i].bev != NULL)
			bufferevent_free(pingers[i].bev);
		if (pingers[i].got != NULL)
			evbuffer_free(pingers[i].got);
	}
	if (xreply != NULL)
		evbuffer_free(xreply);
	if (esbev != NULL)
		bufferevent_free(esbev);
	if (esdata != NULL)
		evbuffer_free(esdata);
	if (idle_ev)
		event_free(idle_ev);
	if (stdin_ev)
		event_free(stdin_ev);
	if (poll_ev)
		event_free(poll_ev);
	event_free(dl);
	event_base_free(base);
	freezero(key, key_len);
	freezero_str(password);
	libssh2_exit();
	return result;
}

/*
 * tunnel_probe: the Docker client through manager/tunnel.c over a real SSH
 * connection (or, with -L, straight to a local unix socket: the baseline
 * of the benchmarks), for tests/integration/tunnel.sh and bench/tunnel.sh.
 * Prints key=value lines; exit 0 when the scenario behaved, 1 otherwise
 * (with "error: ..."), 2 for usage errors.
 *
 *   tunnel_probe [options] COMMAND [ARGS]
 *
 *   -a ADDR   instance address          -p PORT  its port
 *   -k FILE   private key file (read here, passed in memory), user root
 *   -s PATH   the Docker socket on the instance (default: the connector's)
 *   -x        reach Docker with "docker system dial-stdio" instead
 *   -L PATH   no SSH: dial the local unix socket PATH (an ssh -L forward,
 *             or the engine's own socket)
 *
 *   ping                 ping (version negotiation) and GET /version
 *   output IMAGE BYTES [BLOCK]
 *                        a container writing BYTES zero bytes (head -c,
 *                        or dd with BLOCK-byte writes), attached,
 *                        started, waited for, removed: every byte counted
 *                        and checked; MB/s of the stream
 *   slow IMAGE BYTES     the same on a raw tunnel connection whose reader
 *                        stops for 2 s mid-stream: the memory held
 *                        meanwhile (rss_growth_kb) and then every byte
 *   stdin IMAGE BYTES    "cat" in a container fed BYTES of a pattern on
 *                        stdin, then stdin closed: cat must exit 0 and
 *                        its output equal the input
 *   badpath              a ping that must fail cleanly (use -s with a
 *                        wrong path)
 *   many N ROUNDS        ROUNDS times N concurrent GET /version
 *   bench-ping N         N sequential pings on a kept-alive connection:
 *                        median_us=...
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <libssh2.h>

#include "connector.h"
#include "docker.h"
#include "err.h"
#include "tunnel.h"
#include "xmalloc.h"

static struct event_base *base;
static struct docker *dk;
static struct conn *conn;
static struct tunnel *tun;
static int conn_up, conn_down;

struct wres {
	int done;
	int err;
	int status;
	char *msg;
	char *id;
	char *api;
	int exit_code;
	int attached;
	uint64_t bytes;		/* stdout bytes */
	uint64_t bad;		/* bytes that were not as expected */
	uint64_t errbytes;
	int64_t t_first, t_last;
	struct sbuf keep;	/* stdout kept (stdin scenario) */
	int keep_on;
};

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
wres_init(struct wres *w)
{
	memset(w, 0, sizeof(*w));
	sbuf_init(&w->keep);
}

static void
wres_release(struct wres *w)
{
	free(w->msg);
	free(w->id);
	free(w->api);
	sbuf_release(&w->keep);
}

static void
wcb(void *arg, const struct docker_result *res)
{
	struct wres *w = arg;

	w->done = 1;
	w->err = res->err;
	w->status = res->status;
	w->msg = xstrdup(res->msg);
	w->id = res->id ? xstrdup(res->id) : NULL;
	w->api = res->api_version ? xstrdup(res->api_version) : NULL;
	w->exit_code = res->exit_code;
}

/* Output expected to be zero bytes (or kept, for stdin). */
static void
chunk_cb(void *arg, int stream, const char *data, size_t len)
{
	struct wres *w = arg;
	size_t i;

	if (stream == DOCKER_ATTACHED) {
		w->attached = 1;
		return;
	}
	if (stream == 2) {
		w->errbytes += len;
		return;
	}
	if (w->t_first == 0)
		w->t_first = now_ns();
	w->t_last = now_ns();
	if (w->keep_on) {
		sbuf_add(&w->keep, data, len);
	} else {
		for (i = 0; i < len; i++)
			if (data[i] != 0)
				w->bad++;
	}
	w->bytes += len;
}

static void
await(struct wres *w)
{
	while (!w->done)
		event_base_loop(base, EVLOOP_ONCE);
}

static int
fail(const char *what, const struct wres *w)
{
	printf("error: %s: %s (%s, status %d)\n", what, w->msg ? w->msg : "",
	    err_str(w->err), w->status);
	if (tun != NULL && tunnel_error(tun)[0] != '\0')
		printf("tunnel_error=%s\n", tunnel_error(tun));
	return 1;
}

static long
rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = strtol(line + 6, NULL, 10);
	fclose(f);
	return kb;
}

static char *
create(const char *image, const char *script, int with_stdin)
{
	json_t *body = json_pack("{s:s, s:[s,s,s], s:b, s:b, s:b, s:b, s:b, "
	    "s:b, s:{s:s}, s:{s:s}}", "Image", image, "Cmd", "sh", "-c",
	    script, "Tty", 0, "AttachStdin", with_stdin, "AttachStdout", 1,
	    "AttachStderr", 1, "OpenStdin", with_stdin, "StdinOnce",
	    with_stdin, "Labels", "flotilla.test", "tunnel_probe",
	    "HostConfig", "NetworkMode", "host");
	struct wres w;
	char *id = NULL;

	wres_init(&w);
	docker_container_create(dk, NULL, body, wcb, &w);
	await(&w);
	json_decref(body);
	if (w.err != 0 || w.id == NULL)
		fail("create", &w);
	else
		id = xstrdup(w.id);
	wres_release(&w);
	return id;
}

static void
remove_container(const char *id)
{
	struct wres w;

	wres_init(&w);
	docker_container_remove(dk, id, 1, 1, wcb, &w);
	await(&w);
	if (w.err != 0)
		fail("remove", &w);
	else
		printf("removed=1\n");
	wres_release(&w);
}

static int
cmd_ping(void)
{
	struct wres w, v;
	int rc = 0;

	wres_init(&w);
	wres_init(&v);
	docker_ping(dk, wcb, &w);
	await(&w);
	if (w.err != 0)
		rc = fail("ping", &w);
	else
		printf("api=%s\n", w.api ? w.api : "");
	docker_version(dk, wcb, &v);
	await(&v);
	if (v.err != 0)
		rc = fail("version", &v);
	else
		printf("version_ok=1\n");
	wres_release(&w);
	wres_release(&v);
	return rc;
}

static int
cmd_badpath(void)
{
	struct wres w;
	int rc = 1;

	wres_init(&w);
	docker_ping(dk, wcb, &w);
	await(&w);
	if (w.err != 0) {
		printf("failed_cleanly=1\nerr=%s\nmsg=%s\ntunnel_error=%s\n",
		    err_str(w.err), w.msg, tun ? tunnel_error(tun) : "");
		rc = 0;
	} else {
		printf("error: ping through a wrong path succeeded\n");
	}
	wres_release(&w);
	return rc;
}

static int
cmd_output(const char *image, unsigned long long n, unsigned long long bs)
{
	char script[128];
	struct wres att, st, wt;
	int64_t t0;
	char *id;
	int rc = 0;

	if (bs > 0 && n % bs == 0)
		snprintf(script, sizeof(script),
		    "dd if=/dev/zero bs=%llu count=%llu 2>/dev/null", bs, n / bs);
	else
		snprintf(script, sizeof(script), "head -c %llu /dev/zero", n);
	if ((id = create(image, script, 0)) == NULL)
		return 1;
	wres_init(&att);
	wres_init(&st);
	wres_init(&wt);
	t0 = now_ns();
	docker_container_attach(dk, id, 0, chunk_cb, wcb, &att);
	while (!att.attached && !att.done)
		event_base_loop(base, EVLOOP_ONCE);
	if (att.done) {
		rc = fail("attach", &att);
		goto out;
	}
	docker_container_start(dk, id, wcb, &st);
	await(&st);
	if (st.err != 0) {
		rc = fail("start", &st);
		goto out;
	}
	await(&att);
	docker_container_wait(dk, id, "not-running", wcb, &wt);
	await(&wt);
	if (att.err != 0 || wt.err != 0)
		rc = fail(att.err ? "attach" : "wait", att.err ? &att : &wt);
	printf("bytes=%llu\nbad=%llu\nexit=%d\n", (unsigned long long)att.bytes,
	    (unsigned long long)att.bad, wt.exit_code);
	if (att.bytes > 0) {
		double s = (double)(att.t_last - att.t_first) / 1e9;

		printf("total_ms=%.1f\nstream_ms=%.1f\nMBps=%.1f\n",
		    (double)(now_ns() - t0) / 1e6, s * 1e3,
		    s > 0 ? (double)att.bytes / 1e6 / s : 0.0);
	}
	printf("maxrss_kb=%ld\n", rss_kb());
	if (att.bytes != n || att.bad != 0 || wt.exit_code != 0)
		rc = 1;
out:
	remove_container(id);
	free(id);
	wres_release(&att);
	wres_release(&st);
	wres_release(&wt);
	return rc;
}

static int
cmd_stdin(const char *image, size_t n)
{
	struct wres att, st, wt;
	struct docker_req *ar;
	unsigned char *in = xmalloc(n ? n : 1);
	size_t i;
	char *id;
	int rc = 0;

	for (i = 0; i < n; i++)
		in[i] = (unsigned char)('a' + (i * 7 + i / 251) % 26);
	if ((id = create(image, "cat", 1)) == NULL) {
		free(in);
		return 1;
	}
	wres_init(&att);
	wres_init(&st);
	wres_init(&wt);
	att.keep_on = 1;
	ar = docker_container_attach(dk, id, DOCKER_STREAM_STDIN, chunk_cb,
	    wcb, &att);
	docker_stream_write(ar, in, n);
	while (!att.attached && !att.done)
		event_base_loop(base, EVLOOP_ONCE);
	if (att.done) {
		rc = fail("attach", &att);
		goto out;
	}
	if (docker_stream_close_stdin(ar) < 0) {
		printf("error: close stdin refused\n");
		rc = 1;
		goto out;
	}
	docker_container_start(dk, id, wcb, &st);
	await(&st);
	if (st.err != 0) {
		rc = fail("start", &st);
		goto out;
	}
	await(&att);
	docker_container_wait(dk, id, "not-running", wcb, &wt);
	await(&wt);
	if (att.err != 0)
		rc = fail("attach", &att);
	printf("stdin_bytes=%zu\nout_bytes=%zu\nsame=%d\nexit=%d\n", n,
	    att.keep.len, att.keep.len == n &&
	    (n == 0 || memcmp(att.keep.buf, in, n) == 0), wt.exit_code);
	if (att.keep.len != n || (n > 0 && memcmp(att.keep.buf, in, n) != 0) ||
	    wt.exit_code != 0)
		rc = 1;
out:
	remove_container(id);
	free(id);
	free(in);
	wres_release(&att);
	wres_release(&st);
	wres_release(&wt);
	return rc;
}

/* --- slow: a raw hijacked attach whose reader pauses ------------------- */

static uint64_t raw_bytes;
static int raw_eof;

static void
raw_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	(void)arg;
	raw_bytes += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
}

static void
raw_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		raw_eof = 1;
}

static void
run_for(int64_t ms)
{
	int64_t end = now_ns() + ms * 1000000;
	struct timeval tv = { 0, 20000 };

	while (now_ns() < end) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static int
cmd_slow(const char *image, unsigned long long n)
{
	char script[128], err[256];
	struct bufferevent *bev;
	struct wres st, wt;
	long before, during;
	char *id;
	int rc = 0;

	if (tun == NULL) {
		printf("error: slow needs the tunnel\n");
		return 2;
	}
	snprintf(script, sizeof(script), "head -c %llu /dev/zero", n);
	if ((id = create(image, script, 0)) == NULL)
		return 1;
	bev = tunnel_dial(base, tun, err, sizeof(err));
	if (bev == NULL) {
		printf("error: dial: %s\n", err);
		free(id);
		return 1;
	}
	bufferevent_setcb(bev, raw_read_cb, NULL, raw_event_cb, NULL);
	bufferevent_enable(bev, EV_WRITE);	/* not reading yet */
	evbuffer_add_printf(bufferevent_get_output(bev),
	    "POST /containers/%s/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
	    "Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
	    "Content-Length: 0\r\n\r\n", id);
	run_for(300);
	wres_init(&st);
	wres_init(&wt);
	before = rss_kb();
	docker_container_start(dk, id, wcb, &st);
	await(&st);
	if (st.err != 0) {
		rc = fail("start", &st);
		goto out;
	}
	run_for(2000);		/* the container writes; nobody reads */
	during = rss_kb();
	printf("paused_bytes=%llu\nrss_growth_kb=%ld\n",
	    (unsigned long long)raw_bytes, during - before);
	bufferevent_enable(bev, EV_READ);
	while (!raw_eof)
		event_base_loop(base, EVLOOP_ONCE);
	printf("raw_bytes=%llu\n", (unsigned long long)raw_bytes);
	docker_container_wait(dk, id, "not-running", wcb, &wt);
	await(&wt);
	/* The head, the frame headers (8 per frame) and the payload. */
	if (raw_bytes < n || raw_bytes > n + n / 100 + 4096 || wt.exit_code)
		rc = 1;
out:
	tunnel_close(tun, bev);
	remove_container(id);
	free(id);
	wres_release(&st);
	wres_release(&wt);
	return rc;
}

static int
cmd_many(int n, int rounds)
{
	struct wres *v = xcalloc((size_t)n, sizeof(*v));
	int r, i, good = 0;

	for (r = 0; r < rounds; r++) {
		for (i = 0; i < n; i++) {
			wres_init(&v[i]);
			docker_version(dk, wcb, &v[i]);
		}
		for (i = 0; i < n; i++) {
			await(&v[i]);
			if (v[i].err == 0)
				good++;
			else if (good >= 0)
				fail("version", &v[i]);
			wres_release(&v[i]);
		}
	}
	printf("good=%d of %d\n", good, n * rounds);
	if (tun != NULL) {
		struct tunnel_stats s;

		tunnel_get_stats(tun, &s);
		printf("dials=%llu\nactive=%llu\n", s.dials, s.active);
	}
	free(v);
	return good == n * rounds ? 0 : 1;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int
cmd_bench_ping(int n)
{
	int64_t *v = xcalloc((size_t)n, sizeof(*v));
	int i;

	for (i = -20; i < n; i++) {
		struct wres w;
		int64_t t0 = now_ns();

		wres_init(&w);
		docker_ping(dk, wcb, &w);
		await(&w);
		if (w.err != 0) {
			fail("ping", &w);
			wres_release(&w);
			free(v);
			return 1;
		}
		if (i >= 0)
			v[i] = now_ns() - t0;
		wres_release(&w);
	}
	qsort(v, (size_t)n, sizeof(*v), cmp_i64);
	printf("n=%d median_us=%.1f p90_us=%.1f\n", n, v[n / 2] / 1000.0,
	    v[n * 9 / 10] / 1000.0);
	free(v);
	return 0;
}

static void
state_cb(void *arg, enum conn_state state, int err, const char *msg)
{
	(void)arg;
	(void)err;
	if (state == CONN_UP)
		conn_up = 1;
	else if (state == CONN_DOWN) {
		conn_down = 1;
		fprintf(stderr, "tunnel_probe: connection down: %s\n", msg);
	}
}

int
main(int argc, char **argv)
{
	struct conn_params p;
	const char *local = NULL, *sock = NULL, *cmd;
	char *key = NULL;
	size_t key_len = 0;
	int ch, err, xflag = 0, rc = 2, nargs;
	char **args;

	memset(&p, 0, sizeof(p));
	p.instance_id = "tunnel-probe";
	p.cred.username = "root";
	while ((ch = getopt(argc, argv, "a:p:k:s:xL:")) != -1) {
		switch (ch) {
		case 'a':
			p.internal_addr = optarg;
			break;
		case 'p':
			p.port = atoi(optarg);
			break;
		case 'k':
			if (conn_read_key_file(optarg, &key, &key_len) < 0) {
				fprintf(stderr, "tunnel_probe: cannot read key\n");
				return 2;
			}
			break;
		case 's':
			sock = optarg;
			break;
		case 'x':
			xflag = 1;
			break;
		case 'L':
			local = optarg;
			break;
		default:
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: tunnel_probe [options] COMMAND\n");
		return 2;
	}
	cmd = argv[optind];
	args = argv + optind + 1;
	nargs = argc - optind - 1;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (local != NULL) {
		dk = docker_new(base, docker_dial_unix, (void *)local);
	} else {
		p.cred.key = key;
		p.cred.key_len = key_len;
		conn = conn_new(base, &p, state_cb, NULL, &err);
		if (conn == NULL) {
			fprintf(stderr, "tunnel_probe: conn_new: %s\n",
			    err_str(err));
			return 2;
		}
		while (!conn_up && !conn_down)
			event_base_loop(base, EVLOOP_ONCE);
		if (!conn_up) {
			printf("error: no SSH connection\n");
			conn_free(conn);
			event_base_free(base);
			freezero(key, key_len);
			return 1;
		}
		tun = tunnel_new(conn, sock, xflag);
		dk = tunnel_docker_new(base, tun);
	}

	if (strcmp(cmd, "ping") == 0)
		rc = cmd_ping();
	else if (strcmp(cmd, "badpath") == 0)
		rc = cmd_badpath();
	else if (strcmp(cmd, "output") == 0 && (nargs == 2 || nargs == 3))
		rc = cmd_output(args[0], strtoull(args[1], NULL, 10),
		    nargs == 3 ? strtoull(args[2], NULL, 10) : 0);
	else if (strcmp(cmd, "slow") == 0 && nargs == 2)
		rc = cmd_slow(args[0], strtoull(args[1], NULL, 10));
	else if (strcmp(cmd, "stdin") == 0 && nargs == 2)
		rc = cmd_stdin(args[0], (size_t)strtoull(args[1], NULL, 10));
	else if (strcmp(cmd, "many") == 0 && nargs == 2)
		rc = cmd_many(atoi(args[0]), atoi(args[1]));
	else if (strcmp(cmd, "bench-ping") == 0 && nargs == 1)
		rc = cmd_bench_ping(atoi(args[0]));
	else
		fprintf(stderr, "tunnel_probe: unknown command %s\n", cmd);

	/* Everything freed, in the documented order, for ASan. */
	docker_free(dk);
	tunnel_free(tun);
	conn_free(conn);
	/* Let the loop run what the frees queued. */
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
	freezero(key, key_len);
	libssh2_exit();
	return rc;
}

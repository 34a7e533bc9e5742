/*
 * docker.c against a scripted fake engine on socketpairs, in one event
 * loop: version negotiation (capped, missing header, failing), keep-alive
 * reuse and the stale-connection retry, Connection: close, error bodies,
 * errors inside streams, frames split across 1-byte chunks, the body cap,
 * malformed responses, deadlines, cancellation and docker_free from inside
 * callbacks, and callbacks never running inside the call that started the
 * request.  Run it under ASan too: the re-entrancy cases are about memory.
 */
#include <sys/socket.h>

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "docker.h"
#include "err.h"
#include "xmalloc.h"

enum action { SEND, SEND_CLOSE, CLOSE, HANG };

struct reply {
	const char *data;
	size_t len;		/* 0: strlen */
	enum action action;
};

struct fake;
typedef struct reply (*responder)(struct fake *f, const char *line,
    int nth_on_conn);

struct fake {
	struct event_base *base;
	responder respond;
	int dials;
	int fail_dial;
	char lines[64][256];
	int nlines;
	struct bufferevent *srv[64];
	int served[64];
	int nsrv;
	struct sbuf big;	/* a large body for the cap test */
	int pair;		/* dial bufferevent pairs, not sockets */
	int pair_opts;
	int closes, shutdowns;
	int echo[64];		/* hijacked with stdin: echo at EOF */
	struct sbuf echobuf[64];
};

static struct fake F;

static void
srv_read(struct bufferevent *bev, void *arg)
{
	int idx = (int)(intptr_t)arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (F.echo[idx]) {
		size_t n = evbuffer_get_length(in);
		char *tmp = xmalloc(n + 1);

		evbuffer_remove(in, tmp, n);
		sbuf_add(&F.echobuf[idx], tmp, n);
		free(tmp);
		return;
	}
	for (;;) {
		struct evbuffer_ptr p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		size_t headlen, clen = 0;
		char *head, *cl, *nl;
		struct reply r;

		if (p.pos < 0)
			return;
		headlen = (size_t)p.pos + 4;
		head = xmalloc(headlen + 1);
		evbuffer_copyout(in, head, headlen);
		head[headlen] = '\0';
		if ((cl = strcasestr(head, "Content-Length: ")) != NULL)
			clen = strtoul(cl + 16, NULL, 10);
		if (evbuffer_get_length(in) < headlen + clen) {
			free(head);
			return;
		}
		evbuffer_drain(in, headlen + clen);
		nl = strstr(head, "\r\n");
		*nl = '\0';
		if (F.nlines < 64)
			snprintf(F.lines[F.nlines++], 256, "%s", head);
		r = F.respond(&F, head, F.served[idx]++);
		free(head);
		if (r.action == HANG)
			return;
		if (r.action == CLOSE) {
			if (F.pair)
				bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
			bufferevent_free(bev);
			F.srv[idx] = NULL;
			return;
		}
		if (r.action == SEND_CLOSE && F.pair) {
			bufferevent_write(bev, r.data, r.len ? r.len :
			    strlen(r.data));
			bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
			return;
		}
		if (strstr(F.lines[F.nlines - 1], "stdin=1") != NULL) {
			/* 101, then echo stdin back once it ends. */
			bufferevent_write(bev, r.data, r.len ? r.len :
			    strlen(r.data));
			F.echo[idx] = 1;
			return;
		}
		if (r.action == SEND_CLOSE) {
			/* Written at once (fits the socket buffer), then EOF. */
			size_t len = r.len ? r.len : strlen(r.data);

			assert_int_equal(write(bufferevent_getfd(bev), r.data,
			    len), (ssize_t)len);
			bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
			shutdown(bufferevent_getfd(bev), SHUT_WR);
			return;
		}
		bufferevent_write(bev, r.data, r.len ? r.len : strlen(r.data));
	}
}

/* The engine's side sees stdin end: answer with it as one stdout frame. */
static void
srv_event(struct bufferevent *bev, short what, void *arg)
{
	int idx = (int)(intptr_t)arg;
	unsigned char h[8] = { 1, 0, 0, 0, 0, 0, 0, 0 };
	size_t n = F.echobuf[idx].len;

	if (!(what & BEV_EVENT_EOF) || !F.echo[idx])
		return;
	h[6] = (unsigned char)(n >> 8);
	h[7] = (unsigned char)n;
	F.echo[idx] = 0;
	if (F.pair) {
		bufferevent_write(bev, h, 8);
		bufferevent_write(bev, F.echobuf[idx].buf, n);
		bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
	} else {
		/* Sockets: small enough to write at once, then EOF. */
		int fd = bufferevent_getfd(bev);

		assert_int_equal(write(fd, h, 8), 8);
		assert_int_equal(write(fd, F.echobuf[idx].buf, n), (ssize_t)n);
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		shutdown(fd, SHUT_WR);
	}
}

static struct bufferevent *
pair_dial(struct event_base *base, void *arg, char *err, size_t errlen)
{
	struct bufferevent *p[2];

	(void)arg;
	(void)err;
	(void)errlen;
	F.dials++;
	assert_int_equal(bufferevent_pair_new(base, F.pair_opts, p), 0);
	assert_true(F.nsrv < 64);
	F.srv[F.nsrv] = p[1];
	sbuf_init(&F.echobuf[F.nsrv]);
	bufferevent_setcb(p[1], srv_read, NULL, srv_event,
	    (void *)(intptr_t)F.nsrv);
	bufferevent_enable(p[1], EV_READ | EV_WRITE);
	F.nsrv++;
	return p[0];
}

/* The transport hooks a connector gives: close, and half-close as EOF. */
static void
pair_close(void *arg, struct bufferevent *bev)
{
	(void)arg;
	F.closes++;
	bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
	bufferevent_free(bev);
}

static int
pair_shutdown(void *arg, struct bufferevent *bev)
{
	(void)arg;
	F.shutdowns++;
	return bufferevent_flush(bev, EV_WRITE, BEV_FINISHED);
}

static struct bufferevent *
fake_dial(struct event_base *base, void *arg, char *err, size_t errlen)
{
	int sv[2];
	struct bufferevent *c, *s;

	(void)arg;
	F.dials++;
	if (F.fail_dial) {
		snprintf(err, errlen, "no route to the instance");
		return NULL;
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv), 0);
	c = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
	s = bufferevent_socket_new(base, sv[1], BEV_OPT_CLOSE_ON_FREE);
	assert_true(F.nsrv < 64);
	F.srv[F.nsrv] = s;
	sbuf_init(&F.echobuf[F.nsrv]);
	bufferevent_setcb(s, srv_read, NULL, srv_event,
	    (void *)(intptr_t)F.nsrv);
	bufferevent_enable(s, EV_READ | EV_WRITE);
	F.nsrv++;
	return c;
}

static int
setup(void **state)
{
	(void)state;
	memset(&F, 0, sizeof(F));
	sbuf_init(&F.big);
	F.base = event_base_new();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	for (int i = 0; i < F.nsrv; i++) {
		if (F.srv[i] != NULL)
			bufferevent_free(F.srv[i]);
		sbuf_release(&F.echobuf[i]);
	}
	/* Let deferred callbacks run: they hold the last references. */
	for (int i = 0; i < 5; i++)
		event_base_loop(F.base, EVLOOP_NONBLOCK);
	event_base_free(F.base);
	sbuf_release(&F.big);
	return 0;
}

/* --- results ------------------------------------------------------------ */

struct res {
	int done;
	int err, status, exit_code;
	char msg[512], api[16], id[64];
	int has_json;
	struct sbuf out, errout;
	int progress;
	struct docker *free_in_cb;	/* docker_free from the callback */
	struct docker_req *cancel_in_chunk;
};

static void
res_init(struct res *r)
{
	memset(r, 0, sizeof(*r));
	sbuf_init(&r->out);
	sbuf_init(&r->errout);
}

static void
res_release(struct res *r)
{
	sbuf_release(&r->out);
	sbuf_release(&r->errout);
}

static void
cb(void *arg, const struct docker_result *res)
{
	struct res *r = arg;

	assert_false(r->done);
	r->done = 1;
	r->err = res->err;
	r->status = res->status;
	r->exit_code = res->exit_code;
	snprintf(r->msg, sizeof(r->msg), "%s", res->msg);
	snprintf(r->api, sizeof(r->api), "%s",
	    res->api_version ? res->api_version : "");
	snprintf(r->id, sizeof(r->id), "%s", res->id ? res->id : "");
	r->has_json = res->json != NULL;
	if (r->free_in_cb != NULL)
		docker_free(r->free_in_cb);
}

static void
chunk(void *arg, int stream, const char *data, size_t len)
{
	struct res *r = arg;

	if (stream == DOCKER_ATTACHED)
		return;
	sbuf_add(stream == 2 ? &r->errout : &r->out, data, len);
	if (r->cancel_in_chunk != NULL) {
		docker_cancel(r->cancel_in_chunk);
		r->cancel_in_chunk = NULL;
	}
}

static void
progress(void *arg, json_t *msg)
{
	struct res *r = arg;

	(void)msg;
	r->progress++;
}

static void
await(struct res *r)
{
	while (!r->done)
		event_base_loop(F.base, EVLOOP_ONCE);
}

/* Run the loop for ms milliseconds. */
static void
spin(int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(F.base, &tv);
	event_base_dispatch(F.base);
}

/* --- responders ---------------------------------------------------------- */

#define PING_141 "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n" \
	"Content-Type: text/plain\r\n\r\nOK"
#define JSON_OK(body) "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" \
	"Content-Length: " #body "\r\n\r\n"

static struct reply
r_basic(struct fake *f, const char *line, int nth)
{
	(void)f;
	(void)nth;
	if (strstr(line, "/_ping"))
		return (struct reply){ PING_141, 0, SEND };
	if (strstr(line, "/images/missing/json"))
		return (struct reply){ "HTTP/1.1 404 Not Found\r\n"
		    "Content-Type: application/json\r\nContent-Length: 36\r\n"
		    "\r\n{\"message\":\"No such image: missing\"}", 0, SEND };
	if (strstr(line, "/images/text/json"))
		return (struct reply){ "HTTP/1.1 500 Internal Server Error\r\n"
		    "Content-Length: 12\r\n\r\nplain text\r\n", 0, SEND };
	if (strstr(line, "/containers/create"))
		return (struct reply){ "HTTP/1.1 201 Created\r\nContent-Type: "
		    "application/json\r\nContent-Length: 30\r\n\r\n"
		    "{\"Id\":\"abc123\",\"Warnings\":[]}\n", 0, SEND };
	if (strstr(line, "/wait"))
		return (struct reply){ "HTTP/1.1 200 OK\r\nContent-Type: "
		    "application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "2c\r\n{\"Error\":{\"Message\":\"oom\"},\"StatusCode\":-1}\n\r\n"
		    "0\r\n\r\n", 0, SEND };
	if (strstr(line, "/start"))
		return (struct reply){ "HTTP/1.1 304 Not Modified\r\n\r\n", 0,
		    SEND };
	if (strstr(line, "/close"))
		return (struct reply){ "HTTP/1.1 200 OK\r\nConnection: close\r\n"
		    "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n"
		    "{}", 0, SEND_CLOSE };
	return (struct reply){ JSON_OK(2) "{}", 0, SEND };
}

static void
test_negotiation_and_reuse(void **state)
{
	struct docker *d;
	struct res a, b, c;

	(void)state;
	F.respond = r_basic;
	d = docker_new(F.base, fake_dial, NULL);
	res_init(&a);
	res_init(&b);
	res_init(&c);
	docker_image_inspect(d, "img", cb, &a);
	{
		json_t *body = json_pack("{s:s}", "Image", "x");

		docker_container_create(d, "n", body, cb, &b);
		json_decref(body);
	}
	/* Never inside the call. */
	assert_false(a.done);
	await(&a);
	await(&b);
	assert_int_equal(a.err, 0);
	assert_true(a.has_json);
	assert_int_equal(b.err, 0);
	assert_string_equal(b.id, "abc123");
	assert_string_equal(docker_api_version(d), "1.41");
	/* One ping, then both requests versioned. */
	assert_string_equal(F.lines[0], "GET /_ping HTTP/1.1");
	/* (the two waited for it; their arrival order is the kernel's) */
	assert_true(strcmp(F.lines[1], "GET /v1.41/images/img/json HTTP/1.1")
	    == 0 || strcmp(F.lines[2], "GET /v1.41/images/img/json HTTP/1.1")
	    == 0);
	assert_true(strcmp(F.lines[1], "POST /v1.41/containers/create?name=n "
	    "HTTP/1.1") == 0 || strcmp(F.lines[2], "POST /v1.41/containers/"
	    "create?name=n HTTP/1.1") == 0);
	/* Sequential requests reuse the idle connections. */
	for (int i = 0; i < 5; i++) {
		struct res x;

		res_init(&x);
		docker_container_inspect(d, "c", cb, &x);
		await(&x);
		assert_int_equal(x.err, 0);
		res_release(&x);
	}
	assert_true(F.dials <= 2);
	/* Connection: close is honoured: the next request dials. */
	docker_request(d, "GET", "/close", NULL, cb, &c);
	await(&c);
	assert_int_equal(c.err, 0);
	{
		int before = F.dials;
		struct res x;

		spin(20);
		res_init(&x);
		docker_container_inspect(d, "c", cb, &x);
		await(&x);
		assert_int_equal(x.err, 0);
		/* At most the closed one was replaced. */
		assert_true(F.dials <= before + 1);
		res_release(&x);
	}
	docker_free(d);
	res_release(&a);
	res_release(&b);
	res_release(&c);
}

static void
test_errors(void **state)
{
	struct docker *d;
	struct res a, b, c, e;

	(void)state;
	F.respond = r_basic;
	d = docker_new(F.base, fake_dial, NULL);
	res_init(&a);
	res_init(&b);
	res_init(&c);
	res_init(&e);
	docker_image_inspect(d, "missing", cb, &a);
	docker_image_inspect(d, "text", cb, &b);
	docker_container_wait(d, "c", NULL, cb, &c);
	docker_container_start(d, "c", cb, &e);
	await(&a);
	await(&b);
	await(&c);
	await(&e);
	assert_int_equal(a.err, FL_ERR_NOTFOUND);
	assert_int_equal(a.status, 404);
	assert_string_equal(a.msg, "No such image: missing");
	assert_int_equal(b.err, FL_ERR_IO);
	assert_string_equal(b.msg, "plain text");
	assert_int_equal(c.err, FL_ERR_IO);
	assert_int_equal(c.exit_code, -1);
	assert_string_equal(c.msg, "oom");
	assert_int_equal(e.err, 0);	/* 304: already started */
	assert_int_equal(e.status, 304);
	docker_free(d);
	res_release(&a);
	res_release(&b);
	res_release(&c);
	res_release(&e);
}

static struct reply
r_version(struct fake *f, const char *line, int nth)
{
	static int which;

	(void)f;
	(void)nth;
	if (strstr(line, "/_ping")) {
		switch (which++) {
		case 0:
			return (struct reply){ "HTTP/1.1 200 OK\r\nApi-Version: "
			    "1.40\r\nContent-Length: 0\r\n\r\n", 0, SEND };
		case 1:
			return (struct reply){ "HTTP/1.1 200 OK\r\nApi-Version: "
			    "1.45\r\nContent-Length: 0\r\n\r\n", 0, SEND };
		default:
			return (struct reply){ "HTTP/1.1 200 OK\r\n"
			    "Content-Length: 0\r\n\r\n", 0, SEND };
		}
	}
	return (struct reply){ JSON_OK(2) "{}", 0, SEND };
}

static void
test_version_cap(void **state)
{
	static const char *const want[] = { "1.40", "1.41", "1.24" };

	(void)state;
	F.respond = r_version;
	for (int i = 0; i < 3; i++) {
		struct docker *d = docker_new(F.base, fake_dial, NULL);
		struct res a;
		char line[128];

		res_init(&a);
		docker_version(d, cb, &a);
		await(&a);
		assert_int_equal(a.err, 0);
		assert_string_equal(docker_api_version(d), want[i]);
		snprintf(line, sizeof(line), "GET /v%s/version HTTP/1.1",
		    want[i]);
		assert_string_equal(F.lines[F.nlines - 1], line);
		docker_free(d);
		res_release(&a);
	}
	/* A pinned version: no ping at all. */
	{
		struct docker *d = docker_new(F.base, fake_dial, NULL);
		struct res a;
		int n = F.nlines;

		assert_int_equal(docker_set_api_version(d, "1.43"), 0);
		assert_int_equal(docker_set_api_version(d, "2.0"), FL_ERR_INVAL);
		assert_int_equal(docker_set_api_version(d, "1."), FL_ERR_INVAL);
		res_init(&a);
		docker_version(d, cb, &a);
		await(&a);
		assert_int_equal(F.nlines, n + 1);
		assert_string_equal(F.lines[n], "GET /v1.43/version HTTP/1.1");
		docker_free(d);
		res_release(&a);
	}
}

/* The second request on a connection finds it closed: retried once
 * (GET) on a fresh connection, or failed (POST). */
static struct reply
r_stale(struct fake *f, const char *line, int nth)
{
	(void)f;
	if (strstr(line, "/_ping"))
		return (struct reply){ PING_141, 0, SEND };
	if (nth >= 1)
		return (struct reply){ NULL, 0, CLOSE };
	return (struct reply){ JSON_OK(2) "{}", 0, SEND };
}

static void
test_stale_retry(void **state)
{
	struct docker *d;
	struct res a, b;

	(void)state;
	F.respond = r_stale;
	d = docker_new(F.base, fake_dial, NULL);
	docker_set_max_idle(d, 1);
	res_init(&a);
	res_init(&b);
	docker_container_inspect(d, "x", cb, &a);	/* ping, then GET */
	await(&a);
	assert_int_equal(a.err, 0);
	res_release(&a);
	res_init(&a);
	docker_container_inspect(d, "x", cb, &a);	/* reused: retried */
	await(&a);
	assert_int_equal(a.err, 0);
	docker_container_kill(d, "x", NULL, cb, &b);	/* reused: POST fails */
	await(&b);
	assert_int_equal(b.err, FL_ERR_CLOSED);
	assert_string_equal(b.msg, "POST /v1.41/containers/x/kill?signal="
	    "SIGKILL: connection closed");
	docker_free(d);
	res_release(&a);
	res_release(&b);
}

static struct reply
r_streams(struct fake *f, const char *line, int nth)
{
	(void)nth;
	if (strstr(line, "/_ping"))
		return (struct reply){ PING_141, 0, SEND };
	if (strstr(line, "/images/create"))
		return (struct reply){ "HTTP/1.1 200 OK\r\nContent-Type: "
		    "application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "24\r\n{\"status\":\"Pulling from library/x\"}\n\r\n"
		    "5\r\n{\"sta\r\n"
		    "14\r\ntus\":\"Downloading\"}\n\r\n"
		    "49\r\n{\"errorDetail\":{\"message\":\"manifest unknown\"},"
		    "\"error\":\"manifest unknown\"}\r\n"
		    "0\r\n\r\n", 0, SEND };
	if (strstr(line, "/logs")) {
		/* Frames cut into 1-byte chunks: stdout "ab", stderr "c". */
		static const char frames[] = "\x01\0\0\0\0\0\0\x02" "ab"
		    "\x02\0\0\0\0\0\0\x01" "c";
		static char resp[1024];
		size_t o = 0;

		o += (size_t)snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n");
		for (size_t i = 0; i < sizeof(frames) - 1; i++) {
			memcpy(resp + o, "1\r\n", 3);
			o += 3;
			resp[o++] = frames[i];
			memcpy(resp + o, "\r\n", 2);
			o += 2;
		}
		memcpy(resp + o, "0\r\n\r\n", 5);
		o += 5;
		return (struct reply){ resp, o, SEND };
	}
	if (strstr(line, "/attach") && strstr(line, "stdin=1"))
		return (struct reply){ "HTTP/1.1 101 UPGRADED\r\nConnection: "
		    "Upgrade\r\nUpgrade: tcp\r\n\r\n", 0, SEND };
	if (strstr(line, "/attach")) {
		static const char up[] = "HTTP/1.1 101 UPGRADED\r\nContent-Type: "
		    "application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
		    "Upgrade: tcp\r\n\r\n\x01\0\0\0\0\0\0\x03out"
		    "\x03\0\0\0\0\0\0\x05" "boom!";

		return (struct reply){ up, sizeof(up) - 1, SEND_CLOSE };
	}
	if (strstr(line, "/big")) {
		sbuf_reset(&f->big);
		sbuf_addf(&f->big, "HTTP/1.1 200 OK\r\nContent-Type: "
		    "application/json\r\nContent-Length: %u\r\n\r\n",
		    DOCKER_MAX_BODY + 1);
		return (struct reply){ f->big.buf, f->big.len, SEND };
	}
	if (strstr(line, "/garbage"))
		return (struct reply){ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n", 0, SEND };
	if (strstr(line, "/badjson"))
		return (struct reply){ JSON_OK(3) "{x}", 0, SEND };
	if (strstr(line, "/truncated"))
		return (struct reply){ JSON_OK(10) "{}", 0, SEND_CLOSE };
	return (struct reply){ JSON_OK(2) "{}", 0, SEND };
}

static void
test_streams(void **state)
{
	struct docker *d;
	struct res p, l, a;

	(void)state;
	F.respond = r_streams;
	d = docker_new(F.base, fake_dial, NULL);
	res_init(&p);
	res_init(&l);
	res_init(&a);
	docker_image_pull(d, "x", "c2VjcmV0", progress, cb, &p);
	docker_container_logs(d, "c", DOCKER_STREAM_FOLLOW, chunk, cb, &l);
	docker_container_attach(d, "c", 0, chunk, cb, &a);
	await(&p);
	await(&l);
	await(&a);
	/* The pull's error inside a 200 stream; three messages seen. */
	assert_int_equal(p.err, FL_ERR_IO);
	assert_int_equal(p.status, 200);
	assert_string_equal(p.msg, "manifest unknown");
	assert_int_equal(p.progress, 3);
	/* Frames across 1-byte chunks. */
	assert_int_equal(l.err, 0);
	assert_int_equal(l.out.len, 2);
	assert_memory_equal(l.out.buf, "ab", 2);
	assert_int_equal(l.errout.len, 1);
	/* A hijacked stream with a system-error frame. */
	assert_int_equal(a.err, FL_ERR_IO);
	assert_string_equal(a.msg, "boom!");
	assert_int_equal(a.out.len, 3);
	/* The request lines: pull defaults to :latest. */
	for (int i = 0; i < F.nlines; i++)
		if (strstr(F.lines[i], "/images/create"))
			assert_string_equal(F.lines[i], "POST /v1.41/images/"
			    "create?fromImage=x&tag=latest HTTP/1.1");
	docker_free(d);
	res_release(&p);
	res_release(&l);
	res_release(&a);
}

static void
test_bad_responses(void **state)
{
	struct docker *d;
	struct res a, b, c, e;

	(void)state;
	F.respond = r_streams;
	d = docker_new(F.base, fake_dial, NULL);
	res_init(&a);
	res_init(&b);
	res_init(&c);
	res_init(&e);
	docker_request(d, "GET", "/big", NULL, cb, &a);
	docker_request(d, "GET", "/garbage", NULL, cb, &b);
	docker_request(d, "GET", "/badjson", NULL, cb, &c);
	docker_request(d, "GET", "/truncated", NULL, cb, &e);
	await(&a);
	await(&b);
	await(&c);
	await(&e);
	assert_int_equal(a.err, FL_ERR_TOOBIG);
	assert_int_equal(b.err, FL_ERR_PROTO);
	assert_string_equal(b.msg, "GET /v1.41/garbage: malformed response "
	    "(protocol error)");
	assert_int_equal(c.err, FL_ERR_PROTO);
	assert_int_equal(e.err, FL_ERR_CLOSED);
	assert_string_equal(e.msg, "GET /v1.41/truncated: connection closed");
	docker_free(d);
	res_release(&a);
	res_release(&b);
	res_release(&c);
	res_release(&e);
}

static struct reply
r_hang(struct fake *f, const char *line, int nth)
{
	(void)f;
	(void)nth;
	if (strstr(line, "/_ping"))
		return (struct reply){ PING_141, 0, SEND };
	if (strstr(line, "/hang") || strstr(line, "/logs"))
		return (struct reply){ NULL, 0, HANG };
	return (struct reply){ JSON_OK(2) "{}", 0, SEND };
}

static void
test_timeout_and_cancel(void **state)
{
	struct docker *d;
	struct res a, b, c, l;
	struct docker_req *r;

	(void)state;
	F.respond = r_hang;
	d = docker_new(F.base, fake_dial, NULL);
	docker_set_timeout(d, 150);
	res_init(&a);
	res_init(&b);
	res_init(&c);
	res_init(&l);
	docker_request(d, "GET", "/hang", NULL, cb, &a);
	r = docker_request(d, "GET", "/hang", NULL, cb, &b);
	docker_req_set_timeout(r, 0);
	docker_request(d, "GET", "/fine", NULL, cb, &c);
	/* A stream without deadline, cancelled before anything came. */
	r = docker_container_logs(d, "c", DOCKER_STREAM_FOLLOW, chunk, cb, &l);
	await(&c);
	assert_int_equal(c.err, 0);
	await(&a);
	assert_int_equal(a.err, FL_ERR_TIMEOUT);
	assert_string_equal(a.msg, "GET /v1.41/hang: timeout after 150 ms");
	docker_cancel(r);
	spin(200);
	assert_false(b.done);
	assert_false(l.done);
	docker_free(d);
	spin(20);
	assert_false(b.done);
	res_release(&a);
	res_release(&b);
	res_release(&c);
	res_release(&l);
}

static void
test_free_in_callback(void **state)
{
	struct docker *d;
	struct res a, b, c;

	(void)state;
	F.respond = r_hang;
	d = docker_new(F.base, fake_dial, NULL);
	res_init(&a);
	res_init(&b);
	res_init(&c);
	docker_request(d, "GET", "/hang", NULL, cb, &b);
	docker_container_logs(d, "c", DOCKER_STREAM_FOLLOW, chunk, cb, &c);
	a.free_in_cb = d;	/* frees the client with b and c in flight */
	docker_request(d, "GET", "/fine", NULL, cb, &a);
	await(&a);
	assert_int_equal(a.err, 0);
	spin(50);
	assert_false(b.done);
	assert_false(c.done);
	res_release(&a);
	res_release(&b);
	res_release(&c);
	/* And docker_free(NULL) is a no-op. */
	docker_free(NULL);
}

static void
test_cancel_in_chunk(void **state)
{
	struct docker *d;
	struct res l, after;
	struct docker_req *r;

	(void)state;
	F.respond = r_streams;
	d = docker_new(F.base, fake_dial, NULL);
	res_init(&l);
	res_init(&after);
	r = docker_container_logs(d, "c", DOCKER_STREAM_FOLLOW, chunk, cb, &l);
	l.cancel_in_chunk = r;
	/* Another request completes while the cancelled one is gone. */
	docker_container_inspect(d, "c", cb, &after);
	await(&after);
	spin(50);
	assert_false(l.done);
	assert_int_equal(l.out.len, 1);	/* the first byte, then cancelled */
	docker_free(d);
	res_release(&l);
	res_release(&after);
}

static void
test_dial_failure(void **state)
{
	struct docker *d;
	struct res a, b;

	(void)state;
	F.respond = r_basic;
	F.fail_dial = 1;
	d = docker_new(F.base, fake_dial, NULL);
	res_init(&a);
	res_init(&b);
	docker_ping(d, cb, &a);
	docker_container_inspect(d, "x", cb, &b);
	assert_false(a.done);
	await(&a);
	await(&b);
	assert_int_equal(a.err, FL_ERR_IO);
	assert_string_equal(a.msg, "GET /_ping: dial: no route to the instance");
	assert_string_equal(b.msg, "GET /containers/x/json: API version "
	    "negotiation: GET /_ping: dial: no route to the instance");
	/* Once the transport works again, negotiation is retried. */
	F.fail_dial = 0;
	res_release(&b);
	res_init(&b);
	docker_container_inspect(d, "x", cb, &b);
	await(&b);
	assert_int_equal(b.err, 0);
	/* Invalid input fails through the callback, not inside the call. */
	res_release(&a);
	res_init(&a);
	docker_request(d, "GET", "no-slash", NULL, cb, &a);
	assert_false(a.done);
	await(&a);
	assert_int_equal(a.err, FL_ERR_INVAL);
	docker_free(d);
	res_release(&a);
	res_release(&b);
}

/*
 * The connector's case: bufferevent pairs (with and without deferred
 * callbacks, where the engine's side answers inside our own writes), the
 * close and half-close hooks, attach with stdin echoed back after EOF.
 */
static void
run_pair(int opts)
{
	struct docker *d;
	struct res a, l, at, c, p;
	struct docker_req *r;

	F.respond = r_streams;
	F.pair = 1;
	F.pair_opts = opts;
	d = docker_new(F.base, pair_dial, NULL);
	docker_set_transport(d, pair_close, pair_shutdown);
	res_init(&a);
	res_init(&l);
	res_init(&at);
	res_init(&c);
	res_init(&p);
	docker_container_inspect(d, "x", cb, &a);
	docker_container_logs(d, "c", DOCKER_STREAM_FOLLOW, chunk, cb, &l);
	r = docker_container_attach(d, "c", DOCKER_STREAM_STDIN, chunk, cb,
	    &at);
	assert_int_equal(docker_stream_write(r, "echo ", 5), 0);
	assert_int_equal(docker_stream_close_stdin(r), 0);
	assert_int_equal(docker_stream_write(r, "late", 4), FL_ERR_INVAL);
	docker_request(d, "GET", "/truncated", NULL, cb, &c);
	docker_image_pull(d, "x", NULL, progress, cb, &p);
	await(&a);
	await(&l);
	await(&at);
	await(&c);
	await(&p);
	assert_int_equal(a.err, 0);
	assert_int_equal(l.err, 0);
	assert_memory_equal(l.out.buf, "ab", 2);
	assert_int_equal(at.err, 0);
	assert_int_equal(at.out.len, 5);
	assert_memory_equal(at.out.buf, "echo ", 5);
	assert_int_equal(F.shutdowns, 1);
	assert_int_equal(c.err, FL_ERR_CLOSED);
	assert_int_equal(p.err, FL_ERR_IO);
	assert_int_equal(p.progress, 3);
	/* Sequential requests on the pool. */
	for (int i = 0; i < 10; i++) {
		struct res x;

		res_init(&x);
		docker_container_inspect(d, "c", cb, &x);
		await(&x);
		assert_int_equal(x.err, 0);
		res_release(&x);
	}
	docker_free(d);
	/* Every connection went back through the close hook. */
	assert_int_equal(F.closes, F.dials);
	res_release(&a);
	res_release(&l);
	res_release(&at);
	res_release(&c);
	res_release(&p);
}

static void
test_pair_deferred(void **state)
{
	(void)state;
	run_pair(BEV_OPT_DEFER_CALLBACKS);
}

static void
test_pair_immediate(void **state)
{
	(void)state;
	run_pair(0);
}

/* Attach with stdin over a real socket: shutdown(2) ends stdin. */
static void
test_attach_stdin_socket(void **state)
{
	struct docker *d;
	struct res at;
	struct docker_req *r;

	(void)state;
	F.respond = r_streams;
	d = docker_new(F.base, fake_dial, NULL);
	res_init(&at);
	r = docker_container_attach(d, "c", DOCKER_STREAM_STDIN, chunk, cb,
	    &at);
	docker_stream_write(r, "script\n", 7);
	docker_stream_close_stdin(r);
	await(&at);
	assert_int_equal(at.err, 0);
	assert_int_equal(at.out.len, 7);
	assert_memory_equal(at.out.buf, "script\n", 7);
	docker_free(d);
	res_release(&at);
}

static void
test_helpers(void **state)
{
	const char *labels[] = { "com.gitlab.gitlab-runner.managed=true", "a" };
	char *s;

	(void)state;
	s = docker_escape("registry:5000/a b&c=d", 0);
	assert_string_equal(s, "registry%3A5000%2Fa%20b%26c%3Dd");
	free(s);
	s = docker_escape("registry:5000/a b@sha256:1", 1);
	assert_string_equal(s, "registry:5000/a%20b@sha256:1");
	free(s);
	s = docker_label_filters(labels, 2);
	assert_string_equal(s, "{\"label\":{\"a\":true,"
	    "\"com.gitlab.gitlab-runner.managed=true\":true}}");
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_negotiation_and_reuse,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_cap, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stale_retry, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_streams, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_responses, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout_and_cancel, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_in_callback, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel_in_chunk, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dial_failure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pair_deferred, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pair_immediate, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_attach_stdin_socket, setup,
		    teardown),
		cmocka_unit_test(test_helpers),
	};

	signal(SIGPIPE, SIG_IGN);	/* as the manager does */
	return cmocka_run_group_tests(tests, NULL, NULL);
}

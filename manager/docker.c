/*
 * The Docker Engine API client: HTTP/1.1 requests over bufferevents that a
 * dial function provides, on the manager's event loop.  See docker.h for
 * the contract; http1.c parses the responses and dockerframe.c takes the
 * container output streams apart.
 *
 * Life of a request:
 *
 *   req_new      allocate, arm the deadline, activate the `kick` event:
 *                nothing happens inside the caller's call, so a callback
 *                can never run before the operation's function returned.
 *   kick         versioned and no version yet: wait in d->waiting while
 *                one internal GET /_ping negotiates; else send.
 *   send         take an idle connection or dial one; write the head and
 *                the body (a file is pumped by the write callback, 64 KiB
 *                at a time).
 *   input        the response is fed to http1; body pieces go to the
 *                request's mode: BUFFER (JSON answer, capped), JSONLINES
 *                (pull/load progress), FRAMES (multiplexed output), RAW.
 *                101 Switching Protocols (attach): the rest of the
 *                connection's bytes are the stream.
 *   complete     the connection goes back to the idle pool (keep-alive,
 *                response and request complete) or is closed; the
 *                callback runs; the request is freed.
 *
 * A stale idle connection (closed by the peer while idle; over SSH the
 * tunnel may go away) that fails before any response byte is retried once
 * on a new connection for idempotent methods.
 *
 * Re-entrancy.  User callbacks may call anything, docker_free included.
 * Every entry from libevent runs between enter() and leave(); while inside
 * (d->busy > 0) nothing is freed: cancelled or finished requests and
 * closed connections go to graveyards, emptied by the outermost leave(),
 * which also frees d itself if docker_free was called meanwhile.  After a
 * user callback returns, the code checks r->dead / d->dying and stops.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "docker.h"
#include "dockerframe.h"
#include "err.h"
#include "http1.h"
#include "xmalloc.h"

#ifndef FL_VERSION
#define FL_VERSION "0.0.0"
#endif

#define FILE_CHUNK (64 * 1024)
/* A file body waits while this much of it is still in the transport: a
 * bufferevent pair (the tunnel) moves our output to its partner's input
 * at once, so our own output length says nothing; the partner's does. */
#define FILE_PENDING_MAX (4 * FILE_CHUNK)
#define FILE_RETRY_US 2000

enum mode { M_BUFFER, M_JSONLINES, M_FRAMES, M_RAW };
enum op { OP_GENERIC, OP_PING, OP_CREATE, OP_WAIT };
enum rstate { R_NEW, R_WAITVER, R_ACTIVE, R_DEAD };
enum vstate { V_NONE, V_PINGING, V_DONE, V_PINNED };
enum cwhere { C_BUSY, C_IDLE, C_GRAVE };

struct docker_conn {
	struct docker *d;
	struct bufferevent *bev;
	struct docker_req *req;		/* NULL when idle */
	enum cwhere where;
	int reused;			/* has served a request */
	int reading;			/* inside conn_process */
	TAILQ_ENTRY(docker_conn) link;
};

struct docker_req {
	struct docker *d;
	TAILQ_ENTRY(docker_req) link;	/* d->reqs, waiting or grave */
	enum rstate state;
	int dead;
	enum op op;
	enum mode mode;
	int flags;			/* DOCKER_STREAM_* */
	int hijack;
	int idempotent;
	int internal;			/* the negotiating ping */
	int versioned;
	char *method;
	char *path;			/* unversioned, query included */
	char *target;			/* what was sent */
	char *auth;			/* secret */
	const char *ctype;		/* request Content-Type */
	char *body;
	size_t body_len;
	int fd;				/* file body, or -1 */
	uint64_t file_left;
	struct event *file_ev;		/* retry a held-back file body */
	int body_done;			/* whole request written */
	struct docker_conn *conn;
	struct http1_resp resp;
	int resp_live;
	size_t resp_bytes;
	int errbody;			/* collecting an error body */
	struct dockerframe demux;
	struct sbuf buf;		/* body, or the current JSON line */
	char *stream_err;
	int upgraded;
	struct evbuffer *stdin_q;
	int stdin_close;		/* 1 wanted, 2 done */
	int retried;
	docker_cb cb;
	docker_chunk_cb chunk;
	docker_progress_cb progress;
	void *arg;
	struct event *kick;
	struct event *timer;
	int64_t timeout_ms;
	int fail_err;			/* deferred failure for kick */
	char *fail_msg;
	/* The result's storage. */
	char *msg;
	json_t *json;
};

TAILQ_HEAD(reqlist, docker_req);
TAILQ_HEAD(connlist, docker_conn);

struct docker {
	struct event_base *base;
	docker_dial_fn dial;
	docker_close_fn close;
	docker_shutdown_fn shut;
	void *arg;
	char version[16];
	enum vstate vstate;
	struct reqlist reqs;		/* R_NEW and R_ACTIVE */
	struct reqlist waiting;		/* R_WAITVER */
	struct reqlist grave;		/* R_DEAD, freed by leave() */
	struct connlist busy, idle, cgrave;
	unsigned nidle, max_idle;
	int64_t timeout_ms;
	int busy_depth;
	int dying;
};

static void req_send(struct docker_req *r);

/* r was finished or cancelled, or the client is being freed. */
static int
gone(struct docker_req *r)
{
	return r->dead || r->d->dying;
}
static void conn_process(struct docker_conn *c);
static void req_input(struct docker_req *r, const char *data, size_t len,
    size_t *used);
static void req_done(struct docker_req *r);

/* --- Entry, exit, graveyards ------------------------------------------- */

static void
conn_destroy(struct docker_conn *c)
{
	struct docker *d = c->d;

	if (c->bev != NULL) {
		if (d->close != NULL)
			d->close(d->arg, c->bev);
		else
			bufferevent_free(c->bev);
	}
	free(c);
}

static void
req_destroy(struct docker_req *r)
{
	if (r->kick != NULL)
		event_free(r->kick);
	if (r->file_ev != NULL)
		event_free(r->file_ev);
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->resp_live)
		http1_resp_release(&r->resp);
	if (r->fd >= 0)
		close(r->fd);
	if (r->stdin_q != NULL)
		evbuffer_free(r->stdin_q);
	freezero_str(r->auth);
	free(r->method);
	free(r->path);
	free(r->target);
	free(r->body);
	free(r->stream_err);
	free(r->fail_msg);
	free(r->msg);
	json_decref(r->json);
	sbuf_release(&r->buf);
	free(r);
}

static void
destroy(struct docker *d)
{
	struct docker_req *r;
	struct docker_conn *c;

	while ((r = TAILQ_FIRST(&d->grave)) != NULL) {
		TAILQ_REMOVE(&d->grave, r, link);
		req_destroy(r);
	}
	while ((c = TAILQ_FIRST(&d->cgrave)) != NULL) {
		TAILQ_REMOVE(&d->cgrave, c, link);
		conn_destroy(c);
	}
	free(d);
}

static void
enter(struct docker *d)
{
	d->busy_depth++;
}

/* Leave an entry; the outermost one empties the graveyards. */
static void
leave(struct docker *d)
{
	struct docker_req *r;
	struct docker_conn *c;

	if (--d->busy_depth > 0)
		return;
	if (d->dying) {
		destroy(d);
		return;
	}
	while ((r = TAILQ_FIRST(&d->grave)) != NULL) {
		TAILQ_REMOVE(&d->grave, r, link);
		req_destroy(r);
	}
	while ((c = TAILQ_FIRST(&d->cgrave)) != NULL) {
		TAILQ_REMOVE(&d->cgrave, c, link);
		conn_destroy(c);
	}
}

/* Take c out of service: no more callbacks; freed now or by leave(). */
static void
conn_close(struct docker_conn *c)
{
	struct docker *d = c->d;

	if (c->where == C_GRAVE)
		return;
	if (c->where == C_IDLE) {
		TAILQ_REMOVE(&d->idle, c, link);
		d->nidle--;
	} else {
		TAILQ_REMOVE(&d->busy, c, link);
	}
	if (c->req != NULL && c->req->conn == c)
		c->req->conn = NULL;
	c->req = NULL;
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	c->where = C_GRAVE;
	if (d->busy_depth > 0) {
		TAILQ_INSERT_TAIL(&d->cgrave, c, link);
		return;
	}
	conn_destroy(c);
}

/* A connection whose request completed cleanly: keep it for reuse. */
static void
conn_release(struct docker_conn *c)
{
	struct docker *d = c->d;

	if (c->req != NULL && c->req->conn == c)
		c->req->conn = NULL;
	c->req = NULL;
	/* Bytes after the response (none expected) are dealt with by
	 * conn_process, which still has to drain what it fed. */
	if (d->dying || d->nidle >= d->max_idle) {
		conn_close(c);
		return;
	}
	TAILQ_REMOVE(&d->busy, c, link);
	c->where = C_IDLE;
	c->reused = 1;
	TAILQ_INSERT_HEAD(&d->idle, c, link);
	d->nidle++;
}

/* Remove r from service (lists, events, connection); freed later/now. */
static void
req_bury(struct docker_req *r, int keep_conn)
{
	struct docker *d = r->d;

	if (r->state == R_DEAD)
		return;
	if (r->state == R_WAITVER)
		TAILQ_REMOVE(&d->waiting, r, link);
	else
		TAILQ_REMOVE(&d->reqs, r, link);
	r->state = R_DEAD;
	r->dead = 1;
	event_del(r->kick);
	event_del(r->timer);
	if (r->conn != NULL) {
		if (keep_conn)
			conn_release(r->conn);
		else
			conn_close(r->conn);
		r->conn = NULL;
	}
	if (d->busy_depth > 0) {
		TAILQ_INSERT_TAIL(&d->grave, r, link);
		return;
	}
	req_destroy(r);
}

/* --- Results ----------------------------------------------------------- */

/*
 * Finish r with res: free its connection (pooled when keep_conn), call
 * the callback, bury r.  Only ever called inside enter/leave.
 */
static void
req_complete(struct docker_req *r, struct docker_result *res, int keep_conn)
{
	docker_cb cb = r->cb;
	void *arg = r->arg;

	if (r->dead)
		return;
	enter(r->d);
	/* Bury first (r stays allocated until leave): the callback may
	 * start a request that reuses the connection at once. */
	req_bury(r, keep_conn);
	if (res->msg == NULL)
		res->msg = "";
	if (cb != NULL)
		cb(arg, res);
	leave(r->d);
}

static const char *
version_prefix(struct docker *d, char *buf, size_t len)
{
	if (d->vstate == V_DONE || d->vstate == V_PINNED)
		snprintf(buf, len, "/v%s", d->version);
	else
		buf[0] = '\0';
	return buf;
}

/* Fail r with a transport-level error: "METHOD path: reason". */
static void
req_fail(struct docker_req *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
req_fail(struct docker_req *r, int err, const char *fmt, ...)
{
	struct docker_result res;
	char pfx[24];
	va_list ap;
	struct sbuf sb;

	if (r->dead)
		return;
	sbuf_init(&sb);
	if (r->target != NULL)
		sbuf_addf(&sb, "%s %s: ", r->method, r->target);
	else
		sbuf_addf(&sb, "%s %s%s: ", r->method,
		    r->versioned ? version_prefix(r->d, pfx, sizeof(pfx)) : "",
		    r->path);
	va_start(ap, fmt);
	sbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	free(r->msg);
	r->msg = sbuf_detach(&sb, NULL);
	memset(&res, 0, sizeof(res));
	res.err = err;
	res.status = r->resp_live && http1_resp_have_head(&r->resp) ?
	    r->resp.status : 0;
	res.msg = r->msg;
	req_complete(r, &res, 0);
}

/* --- Version negotiation ---------------------------------------------- */

/* "1.NN" → NN, or -1. */
static int
parse_version(const char *s)
{
	int minor = 0, digits = 0;

	if (s == NULL || strncmp(s, "1.", 2) != 0)
		return -1;
	for (s += 2; *s >= '0' && *s <= '9' && digits < 4; s++, digits++)
		minor = minor * 10 + (*s - '0');
	return digits > 0 && *s == '\0' ? minor : -1;
}

/* The engine's API-Version header is known: the version to use. */
static void
negotiated(struct docker *d, const char *server)
{
	int max = parse_version(DOCKER_API_MAX), v = parse_version(server);

	if (d->vstate == V_PINNED)
		return;
	if (v < 0)
		v = 24;		/* no header: moby's fallback, 1.24 */
	if (v > max)
		v = max;
	snprintf(d->version, sizeof(d->version), "1.%d", v);
	d->vstate = V_DONE;
}

/* Start the requests that waited for the version. */
static void
flush_waiting(struct docker *d)
{
	struct docker_req *r;

	if (d->vstate != V_DONE && d->vstate != V_PINNED)
		return;
	while (!d->dying && (r = TAILQ_FIRST(&d->waiting)) != NULL) {
		TAILQ_REMOVE(&d->waiting, r, link);
		r->state = R_ACTIVE;
		TAILQ_INSERT_TAIL(&d->reqs, r, link);
		req_send(r);
	}
}

static void
negotiation_done(void *arg, const struct docker_result *res)
{
	struct docker *d = arg;
	struct docker_req *r;

	if (res->err == 0)
		return;		/* req_done() flushes the waiting list */
	if (d->vstate == V_PINGING)
		d->vstate = V_NONE;
	while (!d->dying && (r = TAILQ_FIRST(&d->waiting)) != NULL)
		req_fail(r, res->err, "API version negotiation: %s",
		    res->msg);
}

/* --- Request construction -------------------------------------------- */

static void kick_cb(evutil_socket_t fd, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

static struct docker_req *
req_new(struct docker *d, const char *method, char *path, enum op op,
    enum mode mode, int long_running, docker_cb cb, void *arg)
{
	struct docker_req *r = xcalloc(1, sizeof(*r));

	r->d = d;
	r->method = xstrdup(method);
	r->path = path;
	r->op = op;
	r->mode = mode;
	r->versioned = 1;
	r->fd = -1;
	r->cb = cb;
	r->arg = arg;
	r->idempotent = strcmp(method, "GET") == 0 ||
	    strcmp(method, "HEAD") == 0 || strcmp(method, "DELETE") == 0;
	sbuf_init(&r->buf);
	dockerframe_init(&r->demux, 0);
	r->kick = event_new(d->base, -1, 0, kick_cb, r);
	r->timer = evtimer_new(d->base, timer_cb, r);
	r->state = R_NEW;
	TAILQ_INSERT_TAIL(&d->reqs, r, link);
	docker_req_set_timeout(r, long_running ? 0 : d->timeout_ms);
	event_active(r->kick, EV_TIMEOUT, 1);
	return r;
}

/* Fail r from the loop (never inside the caller's call). */
static void
req_defer_fail(struct docker_req *r, int err, const char *msg)
{
	r->fail_err = err;
	free(r->fail_msg);
	r->fail_msg = xstrdup(msg);
}

static void
set_json_body(struct docker_req *r, json_t *body)
{
	if (body == NULL)
		return;
	r->body = json_dumps(body, JSON_COMPACT);
	if (r->body == NULL) {
		req_defer_fail(r, FL_ERR_INVAL, "body is not valid JSON");
		return;
	}
	r->body_len = strlen(r->body);
	r->ctype = "application/json";
}

void
docker_req_set_timeout(struct docker_req *r, int64_t ms)
{
	struct timeval tv;

	if (r == NULL || r->dead)
		return;
	r->timeout_ms = ms;
	event_del(r->timer);
	if (ms <= 0)
		return;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);
}

/* --- Sending ------------------------------------------------------------ */

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);

static struct docker_conn *
conn_get(struct docker *d, char *err, size_t errlen)
{
	struct docker_conn *c;
	struct bufferevent *bev;

	if ((c = TAILQ_FIRST(&d->idle)) != NULL) {
		TAILQ_REMOVE(&d->idle, c, link);
		d->nidle--;
		c->where = C_BUSY;
		TAILQ_INSERT_TAIL(&d->busy, c, link);
		return c;
	}
	err[0] = '\0';
	if ((bev = d->dial(d->base, d->arg, err, errlen)) == NULL) {
		if (err[0] == '\0')
			snprintf(err, errlen, "failed");
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->d = d;
	c->bev = bev;
	c->where = C_BUSY;
	TAILQ_INSERT_TAIL(&d->busy, c, link);
	bufferevent_setcb(bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return c;
}

/* evbuffer_add_reference's cleanup: wipe and free a request head. */
static void
wipe_cleanup(const void *data, size_t len, void *arg)
{
	(void)arg;
	freezero((void *)(uintptr_t)data, len);
}

static int pump_file(struct docker_req *r);

/* Bytes of our output not yet taken by the other side of the transport. */
static size_t
transport_pending(struct bufferevent *bev)
{
	struct bufferevent *partner = bufferevent_pair_get_partner(bev);
	size_t n = evbuffer_get_length(bufferevent_get_output(bev));

	if (partner != NULL)
		n += evbuffer_get_length(bufferevent_get_input(partner));
	return n;
}

static void
file_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct docker_req *r = arg;
	struct docker *d = r->d;

	(void)fd;
	(void)what;
	enter(d);
	if (!r->dead && r->fd >= 0 && r->conn != NULL)
		(void)pump_file(r);
	leave(d);
}

/* Queue the next piece of a file body; 0, or fails r. */
static int
pump_file(struct docker_req *r)
{
	char buf[FILE_CHUNK];
	size_t want;
	ssize_t n;

	if (r->file_left > 0 &&
	    transport_pending(r->conn->bev) >= FILE_PENDING_MAX) {
		struct timeval tv = { 0, FILE_RETRY_US };

		if (r->file_ev == NULL)
			r->file_ev = evtimer_new(r->d->base, file_retry_cb, r);
		evtimer_add(r->file_ev, &tv);
		return 0;
	}
	while (r->file_left > 0 && evbuffer_get_length(
	    bufferevent_get_output(r->conn->bev)) < FILE_CHUNK &&
	    transport_pending(r->conn->bev) < FILE_PENDING_MAX) {
		want = r->file_left < sizeof(buf) ? (size_t)r->file_left :
		    sizeof(buf);
		n = read(r->fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			req_fail(r, FL_ERR_IO, "reading the body: %s",
			    n < 0 ? strerror(errno) : "file shrank");
			return -1;
		}
		r->file_left -= (uint64_t)n;
		if (r->file_left == 0) {
			close(r->fd);
			r->fd = -1;
			r->body_done = 1;
		}
		bufferevent_write(r->conn->bev, buf, (size_t)n);
		if (gone(r) || r->conn == NULL)
			return 0;	/* answered already (pair transport) */
	}
	if (r->file_left > 0 &&
	    transport_pending(r->conn->bev) >= FILE_PENDING_MAX) {
		struct timeval tv = { 0, FILE_RETRY_US };

		if (r->file_ev == NULL)
			r->file_ev = evtimer_new(r->d->base, file_retry_cb, r);
		evtimer_add(r->file_ev, &tv);
	}
	return 0;
}

static void
req_send(struct docker_req *r)
{
	struct docker *d = r->d;
	struct http1_header h[6];
	size_t nh = 0, hlen;
	struct sbuf head;
	struct evbuffer *out;
	char *hbuf;
	char pfx[24], err[256];
	int64_t clen = -1;
	struct docker_conn *c;

	free(r->target);
	r->target = xasprintf("%s%s", r->versioned ?
	    version_prefix(d, pfx, sizeof(pfx)) : "", r->path);
	if ((c = conn_get(d, err, sizeof(err))) == NULL) {
		req_fail(r, FL_ERR_IO, "dial: %s", err);
		return;
	}
	r->conn = c;
	c->req = r;
	r->state = R_ACTIVE;

	if (r->resp_live)
		http1_resp_release(&r->resp);
	http1_resp_init(&r->resp, 0,
	    strcmp(r->method, "HEAD") == 0 ? HTTP1_HEAD_REQUEST : 0);
	r->resp_live = 1;
	r->resp_bytes = 0;

	h[nh].name = "User-Agent";
	h[nh++].value = "flotilla/" FL_VERSION;
	if (r->ctype != NULL) {
		h[nh].name = "Content-Type";
		h[nh++].value = r->ctype;
	}
	if (r->auth != NULL) {
		h[nh].name = "X-Registry-Auth";
		h[nh++].value = r->auth;
	}
	if (r->hijack) {
		h[nh].name = "Connection";
		h[nh++].value = "Upgrade";
		h[nh].name = "Upgrade";
		h[nh++].value = "tcp";
	}
	if (r->fd >= 0)
		clen = (int64_t)r->file_left;
	else if (r->body != NULL || strcmp(r->method, "POST") == 0 ||
	    strcmp(r->method, "PUT") == 0)
		clen = (int64_t)r->body_len;

	sbuf_init(&head);
	if (http1_write_request(&head, r->method, r->target, "docker", h, nh,
	    clen) < 0) {
		sbuf_release(&head);
		req_fail(r, FL_ERR_INVAL, "invalid request");
		return;
	}
	/*
	 * One write for head and body: with a pair transport the engine's
	 * side may answer inside bufferevent_write, completing r at once, so
	 * nothing of r or c is touched after it but through gone().  The
	 * head goes by reference and is wiped when libevent lets go of it
	 * (it may hold X-Registry-Auth).
	 */
	out = evbuffer_new();
	hlen = head.len;
	hbuf = sbuf_detach(&head, NULL);
	evbuffer_add_reference(out, hbuf, hlen, wipe_cleanup, NULL);
	if (r->fd < 0) {
		if (r->body_len > 0)
			evbuffer_add(out, r->body, r->body_len);
		r->body_done = 1;
	}
	bufferevent_write_buffer(c->bev, out);
	evbuffer_free(out);
	if (r->fd >= 0 && !gone(r) && r->conn == c)
		(void)pump_file(r);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct docker_req *r = arg;
	struct docker *d = r->d;

	(void)fd;
	(void)what;
	enter(d);
	if (r->fail_err != 0) {
		struct docker_result res;

		memset(&res, 0, sizeof(res));
		res.err = r->fail_err;
		r->msg = r->fail_msg;
		r->fail_msg = NULL;
		res.msg = r->msg;
		req_complete(r, &res, 0);
	} else if (r->versioned && d->vstate != V_DONE &&
	    d->vstate != V_PINNED) {
		TAILQ_REMOVE(&d->reqs, r, link);
		r->state = R_WAITVER;
		TAILQ_INSERT_TAIL(&d->waiting, r, link);
		if (d->vstate == V_NONE) {
			struct docker_req *p;

			d->vstate = V_PINGING;
			p = req_new(d, "GET", xstrdup("/_ping"), OP_PING,
			    M_BUFFER, 0, negotiation_done, d);
			p->versioned = 0;
			p->internal = 1;
		}
	} else {
		req_send(r);
	}
	leave(d);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct docker_req *r = arg;
	struct docker *d = r->d;

	(void)fd;
	(void)what;
	enter(d);
	req_fail(r, FL_ERR_TIMEOUT, "timeout after %lld ms",
	    (long long)r->timeout_ms);
	leave(d);
}

/* --- Receiving ---------------------------------------------------------- */

/* Error text of a >= 400 answer: Docker's "message", else the body. */
static void
error_result(struct docker_req *r, struct docker_result *res)
{
	json_t *j = NULL, *m;
	int st = r->resp.status;

	res->status = st;
	res->err = st == 404 ? FL_ERR_NOTFOUND : st == 409 ? FL_ERR_EXISTS :
	    st < 500 ? FL_ERR_INVAL : FL_ERR_IO;
	if (r->buf.len > 0)
		j = json_loadb(r->buf.buf, r->buf.len, 0, NULL);
	free(r->msg);
	if (j != NULL && (m = json_object_get(j, "message")) != NULL &&
	    json_is_string(m)) {
		r->msg = xstrdup(json_string_value(m));
	} else if (r->buf.len > 0) {
		size_t n = r->buf.len;

		while (n > 0 && (r->buf.buf[n - 1] == '\n' ||
		    r->buf.buf[n - 1] == '\r' || r->buf.buf[n - 1] == ' '))
			n--;
		r->msg = xstrndup(r->buf.buf, n);
	} else {
		r->msg = xasprintf("HTTP %d %s", st, r->resp.reason);
	}
	json_decref(j);
	res->msg = r->msg;
}

/* Note the first error of a stream (a pull's "error", a syserr frame). */
static void
stream_error(struct docker_req *r, const char *text, size_t len)
{
	if (r->stream_err != NULL)
		return;
	if (len > 4096)
		len = 4096;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	r->stream_err = xstrndup(text, len);
}

/* One line of a JSON message stream. */
static void
json_line(struct docker_req *r, const char *line, size_t len)
{
	json_t *j, *e, *m;
	size_t i;

	for (i = 0; i < len && strchr(" \t\r\n", line[i]) != NULL; i++)
		;
	if (i == len)
		return;
	if ((j = json_loadb(line, len, 0, NULL)) == NULL) {
		static const char bad[] = "malformed JSON message in the "
		    "stream";

		stream_error(r, bad, sizeof(bad) - 1);
		return;
	}
	if ((e = json_object_get(j, "errorDetail")) != NULL &&
	    (m = json_object_get(e, "message")) != NULL &&
	    json_is_string(m))
		stream_error(r, json_string_value(m),
		    json_string_length(m));
	else if ((e = json_object_get(j, "error")) != NULL &&
	    json_is_string(e))
		stream_error(r, json_string_value(e), json_string_length(e));
	if (r->progress != NULL)
		r->progress(r->arg, j);
	json_decref(j);
}

/* Multiplexed or raw container output. */
static void
stream_input(struct docker_req *r, const char *data, size_t len)
{
	if (r->mode == M_RAW) {
		if (r->chunk != NULL)
			r->chunk(r->arg, DOCKERFRAME_STDOUT, data, len);
		return;
	}
	while (len > 0 && !gone(r)) {
		size_t used, dlen;
		const char *p;
		int stream, rc;

		rc = dockerframe_feed(&r->demux, data, len, &used, &stream, &p,
		    &dlen);
		data += used;
		len -= used;
		if (rc < 0) {
			req_fail(r, FL_ERR_PROTO, "malformed output stream "
			    "(%s)", err_str(rc));
			return;
		}
		if (rc == 0)
			break;
		if (stream == DOCKERFRAME_SYSERR)
			stream_error(r, p, dlen);
		else if (r->chunk != NULL)
			r->chunk(r->arg, stream, p, dlen);
	}
}

static void
body_input(struct docker_req *r, const char *data, size_t len)
{
	if (r->errbody) {
		if (r->buf.len < DOCKER_MAX_ERROR_BODY) {
			size_t n = DOCKER_MAX_ERROR_BODY - r->buf.len;

			sbuf_add(&r->buf, data, len < n ? len : n);
		}
		return;
	}
	switch (r->mode) {
	case M_BUFFER:
		if (len > DOCKER_MAX_BODY - r->buf.len) {
			req_fail(r, FL_ERR_TOOBIG, "response over %u bytes",
			    DOCKER_MAX_BODY);
			return;
		}
		sbuf_add(&r->buf, data, len);
		return;
	case M_JSONLINES:
		while (len > 0 && !gone(r)) {
			const char *nl = memchr(data, '\n', len);
			size_t n = nl ? (size_t)(nl - data) + 1 : len;

			if (n > DOCKER_MAX_LINE - r->buf.len) {
				req_fail(r, FL_ERR_TOOBIG, "JSON message over "
				    "%u bytes", DOCKER_MAX_LINE);
				return;
			}
			if (nl == NULL) {
				sbuf_add(&r->buf, data, n);
				return;
			}
			if (r->buf.len > 0) {
				sbuf_add(&r->buf, data, n);
				json_line(r, r->buf.buf, r->buf.len);
				sbuf_reset(&r->buf);
			} else {
				json_line(r, data, n);
			}
			data += n;
			len -= n;
		}
		return;
	case M_FRAMES:
	case M_RAW:
		stream_input(r, data, len);
		return;
	}
}

static void
on_head(struct docker_req *r)
{
	const char *ct = http1_resp_header(&r->resp, "Content-Type");

	if (r->resp.status >= 400) {
		r->errbody = 1;
		return;
	}
	if (r->mode == M_BUFFER && r->resp.framing == HTTP1_FRAMING_LENGTH &&
	    r->resp.content_length > DOCKER_MAX_BODY) {
		req_fail(r, FL_ERR_TOOBIG, "response of %llu bytes, over %u",
		    (unsigned long long)r->resp.content_length,
		    DOCKER_MAX_BODY);
		return;
	}
	if (r->mode == M_FRAMES && (r->flags & DOCKER_STREAM_TTY))
		r->mode = M_RAW;
	if (ct != NULL && r->mode == M_RAW &&
	    strcasecmp(ct, "application/vnd.docker.multiplexed-stream") == 0)
		r->mode = M_FRAMES;
}

/* The response (or the hijacked stream) ended: build the result. */
static void
req_done(struct docker_req *r)
{
	struct docker_result res;
	int keep;
	json_t *v;

	memset(&res, 0, sizeof(res));
	res.status = r->resp.status;
	keep = !r->upgraded && r->resp.keepalive && r->body_done &&
	    r->conn != NULL;

	if (r->errbody) {
		error_result(r, &res);
		req_complete(r, &res, keep);
		return;
	}
	if (r->mode == M_JSONLINES && r->buf.len > 0) {
		json_line(r, r->buf.buf, r->buf.len);
		sbuf_reset(&r->buf);
		if (gone(r))
			return;
	}
	if ((r->mode == M_FRAMES) && dockerframe_end(&r->demux) != 0) {
		req_fail(r, FL_ERR_CLOSED, "output stream ended inside a "
		    "frame");
		return;
	}
	if (r->stream_err != NULL) {
		res.err = FL_ERR_IO;
		res.msg = r->stream_err;
		req_complete(r, &res, keep);
		return;
	}
	if (r->mode == M_BUFFER && r->buf.len > 0) {
		const char *ct = http1_resp_header(&r->resp, "Content-Type");

		if (ct != NULL && strstr(ct, "json") != NULL) {
			r->json = json_loadb(r->buf.buf, r->buf.len,
			    JSON_DECODE_ANY, NULL);
			if (r->json == NULL) {
				req_fail(r, FL_ERR_PROTO, "malformed JSON in "
				    "the response");
				return;
			}
		}
	}
	res.json = r->json;
	switch (r->op) {
	case OP_PING:
		negotiated(r->d, http1_resp_header(&r->resp, "API-Version"));
		res.api_version = r->d->version;
		/* Complete first: the waiting requests can then reuse this
		 * connection instead of dialling their own. */
		{
			struct docker *d = r->d;

			enter(d);
			req_complete(r, &res, keep);
			if (!d->dying)
				flush_waiting(d);
			leave(d);
		}
		return;
	case OP_CREATE:
		if ((v = json_object_get(r->json, "Id")) != NULL &&
		    json_is_string(v))
			res.id = json_string_value(v);
		break;
	case OP_WAIT:
		if ((v = json_object_get(r->json, "StatusCode")) != NULL &&
		    json_is_integer(v))
			res.exit_code =
			    (int32_t)(uint32_t)json_integer_value(v);
		if ((v = json_object_get(r->json, "Error")) != NULL &&
		    (v = json_object_get(v, "Message")) != NULL &&
		    json_is_string(v) && json_string_length(v) > 0) {
			res.err = FL_ERR_IO;
			res.msg = json_string_value(v);
		}
		break;
	default:
		break;
	}
	req_complete(r, &res, keep);
}

static void
on_upgrade(struct docker_req *r)
{
	struct bufferevent *bev = r->conn->bev;

	r->upgraded = 1;
	if (r->chunk != NULL) {
		r->chunk(r->arg, DOCKER_ATTACHED, NULL, 0);
		if (gone(r) || r->conn == NULL)
			return;
		bev = r->conn->bev;
	}
	if (r->stdin_q != NULL && evbuffer_get_length(r->stdin_q) > 0)
		bufferevent_write_buffer(bev, r->stdin_q);
	if (r->stdin_close == 1 &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_write_cb(bev, r->conn);
}

static void
req_input(struct docker_req *r, const char *data, size_t len, size_t *used)
{
	size_t off = 0;

	*used = 0;
	if (r->upgraded) {
		*used = len;
		stream_input(r, data, len);
		return;
	}
	while (!gone(r)) {
		struct http1_event ev;
		size_t u;
		int rc;

		rc = http1_resp_feed(&r->resp, data + off, len - off, &u, &ev);
		off += u;
		r->resp_bytes += u;
		*used = off;
		if (rc < 0) {
			req_fail(r, rc, "malformed response (%s)",
			    err_str(rc));
			return;
		}
		switch (ev.type) {
		case HTTP1_EV_NONE:
			return;
		case HTTP1_EV_HEAD:
			on_head(r);
			break;
		case HTTP1_EV_BODY:
			body_input(r, ev.data, ev.len);
			break;
		case HTTP1_EV_DONE:
			req_done(r);
			return;
		case HTTP1_EV_UPGRADE:
			if (!r->hijack) {
				req_fail(r, FL_ERR_PROTO, "unexpected "
				    "101 Switching Protocols");
				return;
			}
			on_upgrade(r);
			if (gone(r))
				return;
			*used = len;
			stream_input(r, data + off, len - off);
			return;
		}
	}
}

static void
conn_process(struct docker_conn *c)
{
	struct docker *d = c->d;
	struct evbuffer *in = bufferevent_get_input(c->bev);

	if (c->reading)
		return;		/* the outer loop carries on */
	c->reading = 1;
	while (c->where != C_GRAVE && !d->dying) {
		char buf[16384];
		struct docker_req *r = c->req;
		size_t used = 0;
		ev_ssize_t n;

		if (evbuffer_get_length(in) == 0)
			break;
		if (r == NULL) {
			/* Bytes nobody asked for on an idle connection. */
			conn_close(c);
			break;
		}
		/*
		 * A copy, not a pointer into `in`: with a pair transport the
		 * other side can append to `in` while we parse.
		 */
		if ((n = evbuffer_copyout(in, buf, sizeof(buf))) <= 0)
			break;
		req_input(r, buf, (size_t)n, &used);
		evbuffer_drain(in, used);
		if (used == 0 && c->req == r)
			break;
	}
	c->reading = 0;
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct docker_conn *c = arg;
	struct docker *d = c->d;

	(void)bev;
	enter(d);
	conn_process(c);
	leave(d);
}

static void
do_shutdown(struct docker_req *r)
{
	struct docker *d = r->d;
	struct bufferevent *bev = r->conn->bev;
	int rc;

	r->stdin_close = 2;
	if (d->shut != NULL) {
		rc = d->shut(d->arg, bev);
	} else {
		evutil_socket_t fd = bufferevent_getfd(bev);

		rc = fd >= 0 ? shutdown(fd, SHUT_WR) : -1;
	}
	if (rc < 0)
		req_fail(r, FL_ERR_IO, "closing stdin failed");
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct docker_conn *c = arg;
	struct docker *d = c->d;
	struct docker_req *r = c->req;

	(void)bev;
	enter(d);
	if (r != NULL && !r->dead) {
		if (r->fd >= 0)
			(void)pump_file(r);
		else if (r->upgraded && r->stdin_close == 1 &&
		    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			do_shutdown(r);
	}
	leave(d);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct docker_conn *c = arg;
	struct docker *d = c->d;
	struct docker_req *r;
	int eno = EVUTIL_SOCKET_ERROR();

	(void)bev;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	enter(d);
	conn_process(c);	/* whatever arrived before the end */
	if (c->where == C_GRAVE || d->dying) {
		leave(d);
		return;
	}
	if ((r = c->req) == NULL) {
		conn_close(c);		/* an idle connection went away */
		leave(d);
		return;
	}
	if (r->upgraded) {
		req_done(r);
	} else if (r->resp_live && r->resp.framing == HTTP1_FRAMING_CLOSE &&
	    http1_resp_have_head(&r->resp) && !(what & BEV_EVENT_ERROR)) {
		struct http1_event ev;

		r->resp.keepalive = 0;
		if (http1_resp_eof(&r->resp, &ev) == 0 &&
		    ev.type == HTTP1_EV_DONE)
			req_done(r);
		else
			req_fail(r, FL_ERR_CLOSED, "connection closed");
	} else if (c->reused && r->resp_bytes == 0 && r->idempotent &&
	    !r->retried && r->fd < 0) {
		/* A stale keep-alive connection: once more on a new one. */
		r->retried = 1;
		conn_close(c);
		r->conn = NULL;
		req_send(r);
	} else if ((what & BEV_EVENT_ERROR) && eno != 0) {
		req_fail(r, FL_ERR_CLOSED, "connection error: %s",
		    evutil_socket_error_to_string(eno));
	} else {
		req_fail(r, FL_ERR_CLOSED, "connection closed");
	}
	leave(d);
}

/* --- Public: lifecycle ------------------------------------------------- */

struct docker *
docker_new(struct event_base *base, docker_dial_fn dial, void *arg)
{
	struct docker *d = xcalloc(1, sizeof(*d));

	d->base = base;
	d->dial = dial;
	d->arg = arg;
	d->vstate = V_NONE;
	d->max_idle = 4;
	d->timeout_ms = DOCKER_DEFAULT_TIMEOUT_MS;
	TAILQ_INIT(&d->reqs);
	TAILQ_INIT(&d->waiting);
	TAILQ_INIT(&d->grave);
	TAILQ_INIT(&d->busy);
	TAILQ_INIT(&d->idle);
	TAILQ_INIT(&d->cgrave);
	return d;
}

void
docker_free(struct docker *d)
{
	struct docker_req *r;
	struct docker_conn *c;

	if (d == NULL || d->dying)
		return;
	/* Everything to the graveyards, then free them (now or in leave). */
	d->busy_depth++;
	d->dying = 1;
	while ((r = TAILQ_FIRST(&d->reqs)) != NULL)
		req_bury(r, 0);
	while ((r = TAILQ_FIRST(&d->waiting)) != NULL)
		req_bury(r, 0);
	while ((c = TAILQ_FIRST(&d->busy)) != NULL)
		conn_close(c);
	while ((c = TAILQ_FIRST(&d->idle)) != NULL)
		conn_close(c);
	leave(d);
}

void
docker_set_transport(struct docker *d, docker_close_fn close_fn,
    docker_shutdown_fn shutdown_write)
{
	d->close = close_fn;
	d->shut = shutdown_write;
}

int
docker_set_api_version(struct docker *d, const char *version)
{
	if (parse_version(version) < 0 ||
	    strlen(version) >= sizeof(d->version))
		return FL_ERR_INVAL;
	snprintf(d->version, sizeof(d->version), "%s", version);
	d->vstate = V_PINNED;
	return 0;
}

const char *
docker_api_version(const struct docker *d)
{
	return d->vstate == V_DONE || d->vstate == V_PINNED ? d->version :
	    NULL;
}

void
docker_set_timeout(struct docker *d, int64_t ms)
{
	d->timeout_ms = ms > 0 ? ms : 0;
}

void
docker_set_max_idle(struct docker *d, unsigned n)
{
	d->max_idle = n;
	while (d->nidle > n)
		conn_close(TAILQ_LAST(&d->idle, connlist));
}

void
docker_cancel(struct docker_req *r)
{
	if (r == NULL || r->dead)
		return;
	req_bury(r, 0);
}

struct bufferevent *
docker_dial_unix(struct event_base *base, void *arg, char *err,
    size_t errlen)
{
	const char *path = arg;
	struct sockaddr_un sun;
	struct bufferevent *bev;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EINTR)
			continue;
		snprintf(err, errlen, "connect %s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (evutil_make_socket_nonblocking(fd) < 0 ||
	    (bev = bufferevent_socket_new(base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		snprintf(err, errlen, "bufferevent: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	return bev;
}

/* --- Public: helpers ----------------------------------------------------- */

char *
docker_escape(const char *s, int path)
{
	static const char hex[] = "0123456789ABCDEF";
	struct sbuf sb;

	sbuf_init(&sb);
	sbuf_add(&sb, "", 0);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~' ||
		    (path && (c == '/' || c == ':' || c == '@'))) {
			sbuf_addch(&sb, c);
		} else {
			sbuf_addch(&sb, '%');
			sbuf_addch(&sb, hex[c >> 4]);
			sbuf_addch(&sb, hex[c & 15]);
		}
	}
	return sbuf_detach(&sb, NULL);
}

char *
docker_label_filters(const char *const *labels, size_t n)
{
	json_t *root = json_object(), *set = json_object();
	char *s;

	for (size_t i = 0; i < n; i++)
		json_object_set_new(set, labels[i], json_true());
	json_object_set_new(root, "label", set);
	s = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(root);
	if (s == NULL)
		s = xstrdup("{}");
	return s;
}

/* pre + escaped name + post (the name may hold '/' and ':'). */
static char *
path_with(const char *pre, const char *name, const char *post)
{
	char *en = docker_escape(name ? name : "", 1), *p;

	p = xasprintf("%s%s%s", pre, en, post);
	free(en);
	return p;
}

/* --- Public: operations -------------------------------------------------- */

struct docker_req *
docker_ping(struct docker *d, docker_cb cb, void *arg)
{
	struct docker_req *r;

	r = req_new(d, "GET", xstrdup("/_ping"), OP_PING, M_BUFFER, 0, cb,
	    arg);
	r->versioned = 0;
	return r;
}

struct docker_req *
docker_version(struct docker *d, docker_cb cb, void *arg)
{
	return req_new(d, "GET", xstrdup("/version"), OP_GENERIC, M_BUFFER, 0,
	    cb, arg);
}

struct docker_req *
docker_request(struct docker *d, const char *method, const char *path,
    json_t *body, docker_cb cb, void *arg)
{
	struct docker_req *r;

	r = req_new(d, method, xstrdup(path), OP_GENERIC, M_BUFFER, 0, cb,
	    arg);
	if (path[0] != '/')
		req_defer_fail(r, FL_ERR_INVAL, "path must start with '/'");
	set_json_body(r, body);
	return r;
}

struct docker_req *
docker_image_inspect(struct docker *d, const char *name, docker_cb cb,
    void *arg)
{
	return req_new(d, "GET", path_with("/images/", name, "/json"),
	    OP_GENERIC, M_BUFFER, 0, cb, arg);
}

struct docker_req *
docker_image_pull(struct docker *d, const char *ref, const char *auth,
    docker_progress_cb progress, docker_cb cb, void *arg)
{
	return docker_image_pull_platform(d, ref, NULL, auth, progress, cb,
	    arg);
}

/* "&platform=P" for a path, or "" (heap). */
static char *
platform_query(const char *platform)
{
	char *ep, *q;

	if (platform == NULL || platform[0] == '\0')
		return xstrdup("");
	ep = docker_escape(platform, 0);
	q = xasprintf("&platform=%s", ep);
	free(ep);
	return q;
}

struct docker_req *
docker_image_pull_platform(struct docker *d, const char *ref,
    const char *platform, const char *auth, docker_progress_cb progress,
    docker_cb cb, void *arg)
{
	const char *at = strchr(ref, '@'), *slash, *colon;
	char *name, *tag, *en, *et, *path;
	struct docker_req *r;

	if (at != NULL) {
		name = xstrndup(ref, (size_t)(at - ref));
		tag = xstrdup(at + 1);
	} else {
		slash = strrchr(ref, '/');
		colon = strrchr(ref, ':');
		if (colon != NULL && (slash == NULL || colon > slash)) {
			name = xstrndup(ref, (size_t)(colon - ref));
			tag = xstrdup(colon + 1);
		} else {
			name = xstrdup(ref);
			tag = xstrdup("latest");
		}
	}
	en = docker_escape(name, 0);
	et = docker_escape(tag, 0);
	{
		char *pq = platform_query(platform);

		path = xasprintf("/images/create?fromImage=%s&tag=%s%s", en,
		    et, pq);
		free(pq);
	}
	free(en);
	free(et);
	r = req_new(d, "POST", path, OP_GENERIC, M_JSONLINES, 1, cb, arg);
	r->progress = progress;
	if (auth != NULL && auth[0] != '\0')
		r->auth = xstrdup(auth);
	if (name[0] == '\0' || tag[0] == '\0')
		req_defer_fail(r, FL_ERR_INVAL, "invalid image reference");
	free(name);
	free(tag);
	return r;
}

struct docker_req *
docker_image_load(struct docker *d, const char *path,
    docker_progress_cb progress, docker_cb cb, void *arg)
{
	struct docker_req *r;
	struct stat st;

	r = req_new(d, "POST", xstrdup("/images/load?quiet=1"), OP_GENERIC,
	    M_JSONLINES, 1, cb, arg);
	r->progress = progress;
	r->ctype = "application/x-tar";
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0 || fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		char *m = xasprintf("%s: %s", path, r->fd < 0 ?
		    strerror(errno) : "not a regular file");

		req_defer_fail(r, FL_ERR_IO, m);
		free(m);
		if (r->fd >= 0)
			close(r->fd);
		r->fd = -1;
		return r;
	}
	r->file_left = (uint64_t)st.st_size;
	if (r->file_left == 0) {
		close(r->fd);
		r->fd = -1;
	}
	return r;
}

struct docker_req *
docker_container_create(struct docker *d, const char *name, json_t *body,
    docker_cb cb, void *arg)
{
	return docker_container_create_platform(d, name, NULL, body, cb, arg);
}

struct docker_req *
docker_container_create_platform(struct docker *d, const char *name,
    const char *platform, json_t *body, docker_cb cb, void *arg)
{
	struct docker_req *r;
	char *path, *pq = platform_query(platform);

	if (name != NULL && name[0] != '\0') {
		char *en = docker_escape(name, 0);

		path = xasprintf("/containers/create?name=%s%s", en, pq);
		free(en);
	} else if (*pq != '\0') {
		path = xasprintf("/containers/create?%s", pq + 1);
	} else {
		path = xstrdup("/containers/create");
	}
	free(pq);
	r = req_new(d, "POST", path, OP_CREATE, M_BUFFER, 0, cb, arg);
	set_json_body(r, body);
	return r;
}

struct docker_req *
docker_container_start(struct docker *d, const char *id, docker_cb cb,
    void *arg)
{
	return req_new(d, "POST", path_with("/containers/", id, "/start"),
	    OP_GENERIC, M_BUFFER, 0, cb, arg);
}

struct docker_req *
docker_container_logs(struct docker *d, const char *id, int flags,
    docker_chunk_cb chunk, docker_cb cb, void *arg)
{
	char *base = path_with("/containers/", id, "/logs"), *path;
	struct docker_req *r;

	path = xasprintf("%s?stdout=1&stderr=1%s%s", base,
	    flags & DOCKER_STREAM_FOLLOW ? "&follow=1" : "",
	    flags & DOCKER_STREAM_TIMESTAMPS ? "&timestamps=1" : "");
	free(base);
	r = req_new(d, "GET", path, OP_GENERIC,
	    flags & DOCKER_STREAM_TTY ? M_RAW : M_FRAMES, 1, cb, arg);
	r->flags = flags;
	r->chunk = chunk;
	return r;
}

struct docker_req *
docker_container_attach(struct docker *d, const char *id, int flags,
    docker_chunk_cb chunk, docker_cb cb, void *arg)
{
	char *base = path_with("/containers/", id, "/attach"), *path;
	struct docker_req *r;

	path = xasprintf("%s?stream=1&stdout=1&stderr=1%s", base,
	    flags & DOCKER_STREAM_STDIN ? "&stdin=1" : "");
	free(base);
	r = req_new(d, "POST", path, OP_GENERIC,
	    flags & DOCKER_STREAM_TTY ? M_RAW : M_FRAMES, 1, cb, arg);
	r->flags = flags;
	r->chunk = chunk;
	r->hijack = 1;
	r->ctype = "text/plain";
	if (flags & DOCKER_STREAM_STDIN)
		r->stdin_q = evbuffer_new();
	return r;
}

int
docker_stream_write(struct docker_req *r, const void *data, size_t len)
{
	if (r == NULL || r->dead || r->stdin_q == NULL || r->stdin_close)
		return FL_ERR_INVAL;
	if (r->upgraded && r->conn != NULL)
		bufferevent_write(r->conn->bev, data, len);
	else
		evbuffer_add(r->stdin_q, data, len);
	return 0;
}

int
docker_stream_close_stdin(struct docker_req *r)
{
	if (r == NULL || r->dead || r->stdin_q == NULL)
		return FL_ERR_INVAL;
	if (r->stdin_close)
		return 0;
	if (r->d->shut == NULL && r->conn != NULL &&
	    bufferevent_getfd(r->conn->bev) < 0)
		return FL_ERR_INVAL;
	r->stdin_close = 1;
	/* Done from the write callback once the queue is out (or at the
	 * upgrade); activate it in case nothing is pending. */
	if (r->upgraded && r->conn != NULL)
		bufferevent_trigger(r->conn->bev, EV_WRITE,
		    BEV_TRIG_DEFER_CALLBACKS);
	return 0;
}

struct docker_req *
docker_container_wait(struct docker *d, const char *id, const char *cond,
    docker_cb cb, void *arg)
{
	char *base = path_with("/containers/", id, "/wait"), *ec, *path;

	ec = docker_escape(cond ? cond : "not-running", 0);
	path = xasprintf("%s?condition=%s", base, ec);
	free(base);
	free(ec);
	return req_new(d, "POST", path, OP_WAIT, M_BUFFER, 1, cb, arg);
}

struct docker_req *
docker_container_kill(struct docker *d, const char *id, const char *signal,
    docker_cb cb, void *arg)
{
	char *base = path_with("/containers/", id, "/kill"), *es, *path;

	es = docker_escape(signal ? signal : "SIGKILL", 0);
	path = xasprintf("%s?signal=%s", base, es);
	free(base);
	free(es);
	return req_new(d, "POST", path, OP_GENERIC, M_BUFFER, 0, cb, arg);
}

struct docker_req *
docker_container_stop(struct docker *d, const char *id, int timeout_s,
    docker_cb cb, void *arg)
{
	char *base = path_with("/containers/", id, "/stop"), *path;
	struct docker_req *r;

	if (timeout_s >= 0)
		path = xasprintf("%s?t=%d", base, timeout_s);
	else
		path = xstrdup(base);
	free(base);
	r = req_new(d, "POST", path, OP_GENERIC, M_BUFFER, 0, cb, arg);
	/* The daemon waits up to the grace period before answering. */
	if (timeout_s >= 0 && r->timeout_ms > 0)
		docker_req_set_timeout(r, r->timeout_ms +
		    (int64_t)timeout_s * 1000);
	return r;
}

struct docker_req *
docker_container_remove(struct docker *d, const char *id, int force,
    int volumes, docker_cb cb, void *arg)
{
	char *base = path_with("/containers/", id, ""), *path;

	path = xasprintf("%s?force=%d&v=%d", base, force ? 1 : 0,
	    volumes ? 1 : 0);
	free(base);
	return req_new(d, "DELETE", path, OP_GENERIC, M_BUFFER, 0, cb, arg);
}

struct docker_req *
docker_container_inspect(struct docker *d, const char *id, docker_cb cb,
    void *arg)
{
	return req_new(d, "GET", path_with("/containers/", id, "/json"),
	    OP_GENERIC, M_BUFFER, 0, cb, arg);
}

struct docker_req *
docker_container_put_archive(struct docker *d, const char *id,
    const char *dir, const void *tar, size_t len, docker_cb cb, void *arg)
{
	char *base = path_with("/containers/", id, "/archive"), *ep, *path;
	struct docker_req *r;

	ep = docker_escape(dir, 0);
	path = xasprintf("%s?path=%s", base, ep);
	free(base);
	free(ep);
	r = req_new(d, "PUT", path, OP_GENERIC, M_BUFFER, 0, cb, arg);
	r->ctype = "application/x-tar";
	r->body = xmalloc(len + 1);
	memcpy(r->body, tar, len);
	r->body_len = len;
	return r;
}

struct docker_req *
docker_container_get_archive(struct docker *d, const char *id,
    const char *dir, docker_chunk_cb chunk, docker_cb cb, void *arg)
{
	char *base = path_with("/containers/", id, "/archive"), *ep, *path;
	struct docker_req *r;

	ep = docker_escape(dir, 0);
	path = xasprintf("%s?path=%s", base, ep);
	free(base);
	free(ep);
	r = req_new(d, "GET", path, OP_GENERIC, M_RAW, 1, cb, arg);
	r->chunk = chunk;
	return r;
}

static struct docker_req *
list(struct docker *d, const char *what, const char *const *labels,
    size_t n, docker_cb cb, void *arg)
{
	char *path;

	if (n > 0) {
		char *f = docker_label_filters(labels, n);
		char *ef = docker_escape(f, 0);

		path = xasprintf("%s%cfilters=%s", what,
		    strchr(what, '?') ? '&' : '?', ef);
		free(f);
		free(ef);
	} else {
		path = xstrdup(what);
	}
	return req_new(d, "GET", path, OP_GENERIC, M_BUFFER, 0, cb, arg);
}

struct docker_req *
docker_container_list(struct docker *d, const char *const *labels, size_t n,
    docker_cb cb, void *arg)
{
	return list(d, "/containers/json?all=1", labels, n, cb, arg);
}

struct docker_req *
docker_volume_list(struct docker *d, const char *const *labels, size_t n,
    docker_cb cb, void *arg)
{
	return list(d, "/volumes", labels, n, cb, arg);
}

struct docker_req *
docker_network_list(struct docker *d, const char *const *labels, size_t n,
    docker_cb cb, void *arg)
{
	return list(d, "/networks", labels, n, cb, arg);
}

struct docker_req *
docker_volume_create(struct docker *d, json_t *body, docker_cb cb, void *arg)
{
	struct docker_req *r;

	r = req_new(d, "POST", xstrdup("/volumes/create"), OP_GENERIC,
	    M_BUFFER, 0, cb, arg);
	set_json_body(r, body);
	return r;
}

struct docker_req *
docker_volume_remove(struct docker *d, const char *name, int force,
    docker_cb cb, void *arg)
{
	char *base = path_with("/volumes/", name, ""), *path;

	path = xasprintf("%s%s", base, force ? "?force=1" : "");
	free(base);
	return req_new(d, "DELETE", path, OP_GENERIC, M_BUFFER, 0, cb, arg);
}

struct docker_req *
docker_network_create(struct docker *d, json_t *body, docker_cb cb,
    void *arg)
{
	struct docker_req *r;

	r = req_new(d, "POST", xstrdup("/networks/create"), OP_CREATE,
	    M_BUFFER, 0, cb, arg);
	set_json_body(r, body);
	return r;
}

struct docker_req *
docker_network_remove(struct docker *d, const char *id, docker_cb cb,
    void *arg)
{
	return req_new(d, "DELETE", path_with("/networks/", id, ""), OP_GENERIC,
	    M_BUFFER, 0, cb, arg);
}

struct docker_req *
docker_network_connect(struct docker *d, const char *id,
    const char *container, docker_cb cb, void *arg)
{
	struct docker_req *r;
	json_t *body = json_pack("{s:s}", "Container", container);

	r = req_new(d, "POST", path_with("/networks/", id, "/connect"),
	    OP_GENERIC, M_BUFFER, 0, cb, arg);
	set_json_body(r, body);
	json_decref(body);
	return r;
}

struct docker_req *
docker_network_disconnect(struct docker *d, const char *id,
    const char *container, int force, docker_cb cb, void *arg)
{
	struct docker_req *r;
	json_t *body = json_pack("{s:s,s:b}", "Container", container, "Force",
	    force);

	r = req_new(d, "POST", path_with("/networks/", id, "/disconnect"),
	    OP_GENERIC, M_BUFFER, 0, cb, arg);
	set_json_body(r, body);
	json_decref(body);
	return r;
}

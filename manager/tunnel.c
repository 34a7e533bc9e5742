/*
 * Docker over the SSH connector (see tunnel.h): why it exists is that the
 * Docker client dials synchronously and the connector opens channels
 * asynchronously; a link bridges the two with a bufferevent pair and a
 * relay that moves whole evbuffer chains.
 *
 * A link, and who touches what:
 *
 *   Docker client ── outer ═pair═ inner ── relay ── chan (connector's)
 *
 *   outer   pair end handed to the Docker client; the client owns it and
 *           gives it back through tunnel_close().
 *   inner   our pair end.  Its input holds what the client wrote (a read
 *           high-water mark stops the pair at TUNNEL_HIGH_WATER, and the
 *           rest waits in the client's output); its output what is on the
 *           way to the client.
 *   chan    the connector's stream bufferevent, NULL until the channel is
 *           open.  Its output is a filter over a pair end of the
 *           connector's: what waits for the channel is in both.
 *
 * relay() moves inner's input to chan's output while less than the high
 * water mark waits for the channel, and chan's input to inner's output
 * while less than that waits for the client (inner's output plus outer's
 * input).  Data left in chan's input holds the connector back (it stops
 * reading the channel, and the SSH window stops dockerd).  relay() runs
 * from the deferred bufferevent callbacks of inner and chan, and from a
 * "kick" event activated by evbuffer callbacks that see the far buffers
 * drain (outer's input read by the client, the connector's pair output
 * taken by the connector), which must not run relay() themselves: they
 * fire inside the other module's code.
 *
 * EOFs: chan's EOF (or error) reaches the client as inner's
 * BEV_FINISHED flush once chan's input is all handed over; the client's
 * half-close (tunnel_shutdown: outer's BEV_FINISHED flush) reaches inner
 * as EOF and goes on to chan as its BEV_FINISHED flush once inner's input
 * is all written.  After chan's EOF what the client writes is dropped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "connector.h"
#include "docker.h"
#include "tunnel.h"
#include "xmalloc.h"

/*
 * What may wait for the channel, the connector's own pair buffers
 * included: below CONN_STREAM_HIGH_WATER, so the connector's end never
 * sits at its read high-water mark.  That end full with the channel's
 * window closed used to make the loop spin (libevent 2.1 calls a read
 * callback again while its input stays at the mark; found with a
 * container that is fed stdin before it starts; see the report of issue
 * 5); the connector now stops reading there (connector.c,
 * stream_throttle()), so this limit only bounds what the tunnel queues.
 */
#define TUNNEL_UP_MAX	(CONN_STREAM_HIGH_WATER / 2)

struct link {
	TAILQ_ENTRY(link) entry;
	struct tunnel *t;
	struct bufferevent *outer;	/* the client's */
	struct bufferevent *inner;
	struct bufferevent *chan;	/* NULL until open */
	struct conn_req *req;		/* the pending open */
	struct event *kick;
	struct evbuffer_cb_entry *outer_cb;
	struct evbuffer *chan_wbuf;	/* what waits for the channel */
	struct evbuffer_cb_entry *chan_cb;
	struct bufferevent *conn_end;	/* the connector's pair end */
	struct evbuffer_cb_entry *conn_end_cb;
	int inner_eof;			/* the client half-closed */
	int chan_eof;			/* the channel ended */
	int eof_to_chan;
	int eof_to_client;
};

TAILQ_HEAD(linklist, link);

struct tunnel {
	struct conn *c;
	char *path;			/* socket path on the instance */
	char *command;			/* dial-stdio command, or NULL */
	struct linklist links;
	char err[256];
	struct tunnel_stats st;
};

static void relay(struct link *l);

static size_t
waiting_for_chan(const struct link *l)
{
	struct evbuffer *out = bufferevent_get_output(l->chan);
	struct bufferevent *u = bufferevent_get_underlying(l->chan);
	struct bufferevent *conn_end;
	size_t n = evbuffer_get_length(out);

	if (u != NULL) {
		n += evbuffer_get_length(bufferevent_get_output(u));
		conn_end = bufferevent_pair_get_partner(u);
		if (conn_end != NULL)
			n += evbuffer_get_length(
			    bufferevent_get_input(conn_end));
	}
	return n;
}

static size_t
waiting_for_client(const struct link *l)
{
	struct bufferevent *partner = bufferevent_pair_get_partner(l->inner);
	size_t n = evbuffer_get_length(bufferevent_get_output(l->inner));

	if (partner != NULL)
		n += evbuffer_get_length(bufferevent_get_input(partner));
	return n;
}

static void
relay(struct link *l)
{
	struct tunnel *t = l->t;
	struct evbuffer *in = bufferevent_get_input(l->inner);
	size_t n, w;

	if (l->chan == NULL)
		return;

	/* Client to channel. */
	if ((n = evbuffer_get_length(in)) > 0) {
		if (l->chan_eof) {
			evbuffer_drain(in, n);	/* nobody to read it */
		} else if ((w = waiting_for_chan(l)) < TUNNEL_UP_MAX) {
			if (n > TUNNEL_UP_MAX - w)
				n = TUNNEL_UP_MAX - w;
			n = (size_t)evbuffer_remove_buffer(in,
			    bufferevent_get_output(l->chan), n);
			t->st.bytes_up += n;
		}
	}
	if (l->inner_eof && !l->eof_to_chan && !l->chan_eof &&
	    evbuffer_get_length(in) == 0) {
		l->eof_to_chan = 1;
		bufferevent_flush(l->chan, EV_WRITE, BEV_FINISHED);
	}

	/* Channel to client. */
	in = bufferevent_get_input(l->chan);
	if ((n = evbuffer_get_length(in)) > 0 &&
	    waiting_for_client(l) < TUNNEL_HIGH_WATER) {
		evbuffer_add_buffer(bufferevent_get_output(l->inner), in);
		t->st.bytes_down += n;
	}
	if (l->chan_eof && !l->eof_to_client &&
	    evbuffer_get_length(in) == 0) {
		l->eof_to_client = 1;
		bufferevent_flush(l->inner, EV_WRITE, BEV_FINISHED);
	}
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	relay(arg);
}

/* A far buffer drained (inside another module's call): relay later. */
static void
drained_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct link *l = arg;

	(void)buf;
	if (info->n_deleted > 0)
		event_active(l->kick, EV_TIMEOUT, 0);
}

static void
inner_rw_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	relay(arg);
}

static void
inner_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct link *l = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		l->inner_eof = 1;
	relay(l);
}

static void
chan_rw_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	relay(arg);
}

static void
chan_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct link *l = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		l->chan_eof = 1;
	relay(l);
}

static void
opened_cb(void *arg, int err, const char *errmsg, struct bufferevent *bev)
{
	struct link *l = arg;
	struct tunnel *t = l->t;
	struct bufferevent *u;

	l->req = NULL;		/* this was the request's final callback */
	if (err < 0 || bev == NULL) {
		t->st.open_failures++;
		snprintf(t->err, sizeof(t->err), "%s",
		    errmsg != NULL ? errmsg : "channel open failed");
		l->chan_eof = 1;
		l->eof_to_client = 1;
		/* The client's event callback reads errno (deferred
		 * callbacks keep it). */
		errno = ECONNREFUSED;
		bufferevent_trigger_event(l->outer,
		    BEV_EVENT_ERROR | BEV_EVENT_READING, 0);
		return;
	}
	l->chan = bev;
	bufferevent_setcb(bev, chan_rw_cb, chan_rw_cb, chan_event_cb, l);
	u = bufferevent_get_underlying(bev);
	l->chan_wbuf = bufferevent_get_output(u != NULL ? u : bev);
	l->chan_cb = evbuffer_add_cb(l->chan_wbuf, drained_cb, l);
	if (u != NULL && (l->conn_end = bufferevent_pair_get_partner(u)) !=
	    NULL)
		l->conn_end_cb = evbuffer_add_cb(
		    bufferevent_get_input(l->conn_end), drained_cb, l);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	relay(l);
}

/*
 * Free a link.  The client's end: freed when the client gave it back
 * (close), else given EOF and left to the client.
 */
static void
link_free(struct link *l, int client_gave_back)
{
	struct tunnel *t = l->t;

	TAILQ_REMOVE(&t->links, l, entry);
	t->st.active--;
	if (l->req != NULL)
		conn_req_cancel(l->req);
	if (l->chan != NULL) {
		struct bufferevent *u = bufferevent_get_underlying(l->chan);

		if (l->chan_cb != NULL)
			evbuffer_remove_cb_entry(l->chan_wbuf, l->chan_cb);
		/* The connector frees its end when the channel closes; the
		 * pair unlinks it then, and its buffer goes with it. */
		if (l->conn_end_cb != NULL && u != NULL &&
		    bufferevent_pair_get_partner(u) == l->conn_end)
			evbuffer_remove_cb_entry(
			    bufferevent_get_input(l->conn_end),
			    l->conn_end_cb);
		/* The connector sends what was written, EOF, close. */
		bufferevent_free(l->chan);
	}
	evbuffer_remove_cb_entry(bufferevent_get_input(l->outer),
	    l->outer_cb);
	if (client_gave_back) {
		bufferevent_free(l->outer);
	} else if (!l->eof_to_client) {
		bufferevent_flush(l->inner, EV_WRITE, BEV_FINISHED);
	}
	bufferevent_free(l->inner);
	event_free(l->kick);
	free(l);
}

struct tunnel *
tunnel_new(struct conn *c, const char *socket_path, int use_dial_stdio)
{
	struct tunnel *t = xcalloc(1, sizeof(*t));

	t->c = c;
	t->path = xstrdup(socket_path != NULL ? socket_path :
	    CONN_DOCKER_SOCKET);
	if (use_dial_stdio) {
		char *host = socket_path != NULL ?
		    xasprintf("unix://%s", socket_path) : NULL;

		t->command = conn_dial_stdio_command(host);
		free(host);
	}
	TAILQ_INIT(&t->links);
	return t;
}

void
tunnel_free(struct tunnel *t)
{
	struct link *l;

	if (t == NULL)
		return;
	while ((l = TAILQ_FIRST(&t->links)) != NULL)
		link_free(l, 0);
	free(t->path);
	free(t->command);
	free(t);
}

struct bufferevent *
tunnel_dial(struct event_base *base, void *arg, char *err, size_t errlen)
{
	struct tunnel *t = arg;
	struct bufferevent *pair[2];
	struct link *l;

	if (bufferevent_pair_new(base, BEV_OPT_DEFER_CALLBACKS, pair) < 0) {
		snprintf(err, errlen, "tunnel: no bufferevent pair");
		return NULL;
	}
	l = xcalloc(1, sizeof(*l));
	l->t = t;
	l->outer = pair[0];
	l->inner = pair[1];
	l->kick = event_new(base, -1, 0, kick_cb, l);
	if (t->command != NULL)
		l->req = conn_open_exec_stream(t->c, t->command, opened_cb,
		    NULL, l);
	else
		l->req = conn_open_stream(t->c, t->path, opened_cb, l);
	if (l->kick == NULL || l->req == NULL) {
		snprintf(err, errlen, "tunnel: %s",
		    l->kick == NULL ? "no event" :
		    "the SSH connection refused a channel request");
		if (l->req != NULL)
			conn_req_cancel(l->req);
		if (l->kick != NULL)
			event_free(l->kick);
		bufferevent_free(pair[0]);
		bufferevent_free(pair[1]);
		free(l);
		return NULL;
	}
	bufferevent_setcb(l->inner, inner_rw_cb, inner_rw_cb, inner_event_cb,
	    l);
	bufferevent_enable(l->inner, EV_READ | EV_WRITE);
	l->outer_cb = evbuffer_add_cb(bufferevent_get_input(l->outer),
	    drained_cb, l);
	TAILQ_INSERT_TAIL(&t->links, l, entry);
	t->st.dials++;
	t->st.active++;
	return l->outer;
}

void
tunnel_close(void *arg, struct bufferevent *bev)
{
	struct tunnel *t = arg;
	struct link *l;

	TAILQ_FOREACH(l, &t->links, entry) {
		if (l->outer == bev) {
			link_free(l, 1);
			return;
		}
	}
	bufferevent_free(bev);
}

int
tunnel_shutdown(void *arg, struct bufferevent *bev)
{
	(void)arg;
	return bufferevent_flush(bev, EV_WRITE, BEV_FINISHED) < 0 ? -1 : 0;
}

struct docker *
tunnel_docker_new(struct event_base *base, struct tunnel *t)
{
	struct docker *d = docker_new(base, tunnel_dial, t);

	docker_set_transport(d, tunnel_close, tunnel_shutdown);
	return d;
}

const char *
tunnel_error(const struct tunnel *t)
{
	return t->err;
}

void
tunnel_get_stats(const struct tunnel *t, struct tunnel_stats *st)
{
	*st = t->st;
}

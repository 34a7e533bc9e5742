/*
 * Shared connections to instances for the run loop (see instconn.h).
 *
 * An entry goes: ConnectInfo asked of the fleet → SSH connecting →
 * up (tunnel and Docker client made, waiters served) → idle (no user:
 * a timer closes it) or down (the SSH connection died: the entry leaves
 * the lookup list and is freed when its last user lets go).  Waiters are
 * served from their own zero-delay event, so no callback runs inside
 * instconn_get().
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "connector.h"
#include "docker.h"
#include "err.h"
#include "fleet.h"
#include "instconn.h"
#include "log.h"
#include "tunnel.h"
#include "xmalloc.h"

enum ic_state { IC_INFO, IC_CONNECTING, IC_UP, IC_DOWN };

struct instconn_wait {
	struct instconn_wait *next;
	struct instconn *ic;
	struct event *ev;
	instconn_cb cb;
	void *arg;
	int err;
	char msg[256];
};

struct instconn {
	struct instconn *next;
	struct instconn_pool *pool;
	char *id;
	enum ic_state state;
	int listed;		/* in pool->list (else a zombie) */
	int refs;		/* jobs using it */
	int waiting_info;	/* a fleet_connect_info callback is due */
	struct conn *conn;
	struct tunnel *tunnel;
	struct docker *docker;
	struct event *idle;
	struct instconn_wait *waiters;
	char why[256];
};

struct instconn_pool {
	struct event_base *base;
	struct fleet *fleet;
	const struct config_runner *rc;
	struct instconn *list;		/* looked up by id */
	struct instconn *zombies;	/* down or dropped, still in use */
	char *socket_path;
	int dial_stdio;
};

static void ic_destroy(struct instconn *ic);

static void
unlink_from(struct instconn **head, struct instconn *ic)
{
	for (struct instconn **pp = head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == ic) {
			*pp = ic->next;
			ic->next = NULL;
			return;
		}
	}
}

/* Take ic out of the lookup list; it lives on while used. */
static void
detach(struct instconn *ic)
{
	struct instconn_pool *p = ic->pool;

	if (!ic->listed)
		return;
	unlink_from(&p->list, ic);
	ic->listed = 0;
	ic->next = p->zombies;
	p->zombies = ic;
}

static void
wait_fire(evutil_socket_t fd, short what, void *arg)
{
	struct instconn_wait *w = arg;
	struct instconn *ic = w->ic;

	(void)fd;
	(void)what;
	for (struct instconn_wait **pp = &ic->waiters; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	event_free(w->ev);
	if (w->err == 0) {
		ic->refs++;
		if (ic->idle != NULL)
			evtimer_del(ic->idle);
		w->cb(w->arg, 0, NULL, ic);
	} else {
		w->cb(w->arg, w->err, w->msg, NULL);
	}
	free(w);
}

/* Answer every waiter (from their events). */
static void
serve_waiters(struct instconn *ic, int err, const char *msg)
{
	struct timeval tv = { 0, 0 };

	for (struct instconn_wait *w = ic->waiters; w != NULL; w = w->next) {
		if (evtimer_pending(w->ev, NULL))
			continue;
		w->err = err;
		snprintf(w->msg, sizeof(w->msg), "%s", msg != NULL ? msg : "");
		evtimer_add(w->ev, &tv);
	}
}

static void
idle_fire(evutil_socket_t fd, short what, void *arg)
{
	struct instconn *ic = arg;

	(void)fd;
	(void)what;
	if (ic->refs == 0 && ic->waiters == NULL && !ic->waiting_info) {
		log_debug("closing the idle connection to instance %s", ic->id);
		ic_destroy(ic);
	}
}

static void
go_down(struct instconn *ic, int err, const char *msg)
{
	ic->state = IC_DOWN;
	snprintf(ic->why, sizeof(ic->why), "%s", msg != NULL ? msg : "");
	serve_waiters(ic, err, ic->why);
	detach(ic);
}

static void
conn_state_changed(void *arg, enum conn_state state, int err, const char *msg)
{
	struct instconn *ic = arg;
	struct instconn_pool *p = ic->pool;

	switch (state) {
	case CONN_UP:
		fleet_pin(p->fleet, ic->id, conn_host_key_fingerprint(ic->conn));
		if (ic->tunnel == NULL) {
			ic->tunnel = tunnel_new(ic->conn, p->socket_path,
			    p->dial_stdio);
			ic->docker = tunnel_docker_new(p->base, ic->tunnel);
		}
		ic->state = IC_UP;
		log_debug("connected to instance %s (%s)", ic->id,
		    conn_host_key_fingerprint(ic->conn));
		serve_waiters(ic, 0, NULL);
		break;
	case CONN_CONNECTING:
		if (err < 0)
			log_debug("instance %s: %s", ic->id, msg);
		break;
	case CONN_DOWN:
	default:
		log_warn("connection to instance %s lost: %s", ic->id,
		    msg != NULL ? msg : err_str(err));
		go_down(ic, err < 0 ? err : FL_ERR_CLOSED,
		    msg != NULL ? msg : "connection closed");
		if (ic->refs == 0 && ic->waiters == NULL) {
			/* Not from inside the connector's callback: later. */
			struct timeval tv = { 0, 0 };

			evtimer_add(ic->idle, &tv);
		}
		break;
	}
}

static void
got_info(void *arg, int rc, const char *msg,
    const struct plugin_connect_info *ci)
{
	struct instconn *ic = arg;
	char why[256];

	ic->waiting_info = 0;
	if (ic->state == IC_DOWN) {	/* dropped meanwhile */
		if (ic->refs == 0 && ic->waiters == NULL)
			ic_destroy(ic);
		return;
	}
	if (rc != 0 || ci == NULL) {
		snprintf(why, sizeof(why), "connect info of instance %s: %s",
		    ic->id, msg != NULL ? msg : err_str(rc));
		go_down(ic, rc != 0 ? rc : FL_ERR_PROTO, why);
		return;
	}
	ic->conn = fleet_connect(ic->pool->fleet, ic->id, ci,
	    conn_state_changed, ic, why, sizeof(why));
	if (ic->conn == NULL) {
		go_down(ic, FL_ERR_INVAL, why);
		return;
	}
	ic->state = IC_CONNECTING;
}

struct instconn_pool *
instconn_pool_new(struct event_base *base, struct fleet *f,
    const struct config_runner *rc)
{
	struct instconn_pool *p = xcalloc(1, sizeof(*p));

	p->base = base;
	p->fleet = f;
	p->rc = rc;
	if (conn_docker_socket_path(rc->docker.host, &p->socket_path) != 0)
		p->socket_path = NULL;	/* tcp:// host: the default socket */
	p->dial_stdio = config_feature_flag(rc,
	    "FF_USE_DOCKER_AUTOSCALER_DIAL_STDIO", 0);
	return p;
}

static void
ic_destroy(struct instconn *ic)
{
	struct instconn_pool *p = ic->pool;

	if (ic->listed)
		unlink_from(&p->list, ic);
	else
		unlink_from(&p->zombies, ic);
	while (ic->waiters != NULL) {
		struct instconn_wait *w = ic->waiters;

		ic->waiters = w->next;
		event_free(w->ev);
		free(w);
	}
	docker_free(ic->docker);
	tunnel_free(ic->tunnel);
	conn_free(ic->conn);
	if (ic->idle != NULL)
		event_free(ic->idle);
	free(ic->id);
	free(ic);
}

void
instconn_pool_free(struct instconn_pool *p)
{
	if (p == NULL)
		return;
	while (p->list != NULL)
		ic_destroy(p->list);
	while (p->zombies != NULL)
		ic_destroy(p->zombies);
	free(p->socket_path);
	free(p);
}

struct instconn_wait *
instconn_get(struct instconn_pool *p, const char *id, instconn_cb cb,
    void *arg)
{
	struct instconn *ic;
	struct instconn_wait *w;
	int rc;

	for (ic = p->list; ic != NULL; ic = ic->next)
		if (strcmp(ic->id, id) == 0)
			break;
	if (ic == NULL) {
		ic = xcalloc(1, sizeof(*ic));
		ic->pool = p;
		ic->id = xstrdup(id);
		ic->state = IC_INFO;
		ic->idle = evtimer_new(p->base, idle_fire, ic);
		ic->listed = 1;
		ic->next = p->list;
		p->list = ic;
		rc = fleet_connect_info(p->fleet, id, got_info, ic);
		if (rc != 0) {
			char why[128];

			snprintf(why, sizeof(why),
			    "connect info of instance %s: %s", id, err_str(rc));
			go_down(ic, rc, why);
		} else {
			ic->waiting_info = 1;
		}
	}
	w = xcalloc(1, sizeof(*w));
	w->ic = ic;
	w->cb = cb;
	w->arg = arg;
	w->ev = evtimer_new(p->base, wait_fire, w);
	w->next = ic->waiters;
	ic->waiters = w;
	if (ic->state == IC_UP)
		serve_waiters(ic, 0, NULL);
	else if (ic->state == IC_DOWN)
		serve_waiters(ic, FL_ERR_CLOSED, ic->why);
	return w;
}

void
instconn_wait_cancel(struct instconn_wait *w)
{
	struct instconn *ic;

	if (w == NULL)
		return;
	ic = w->ic;
	for (struct instconn_wait **pp = &ic->waiters; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	event_free(w->ev);
	free(w);
	if (ic->refs == 0 && ic->waiters == NULL && !ic->waiting_info) {
		struct timeval tv = { 0, 0 };

		if (ic->state == IC_DOWN)
			evtimer_add(ic->idle, &tv);
	}
}

struct docker *
instconn_docker(struct instconn *ic)
{
	return ic->docker;
}

const char *
instconn_id(const struct instconn *ic)
{
	return ic->id;
}

int
instconn_broken(const struct instconn *ic)
{
	return ic->state == IC_DOWN;
}

void
instconn_put(struct instconn *ic)
{
	struct timeval tv;

	if (ic == NULL)
		return;
	if (ic->refs > 0)
		ic->refs--;
	if (ic->refs > 0 || ic->waiters != NULL)
		return;
	if (ic->state == IC_DOWN) {
		tv.tv_sec = 0;
		tv.tv_usec = 0;
	} else {
		tv.tv_sec = INSTCONN_IDLE_NS / 1000000000;
		tv.tv_usec = 0;
	}
	evtimer_add(ic->idle, &tv);
}

void
instconn_drop(struct instconn_pool *p, const char *id)
{
	struct instconn *ic;

	for (ic = p->list; ic != NULL; ic = ic->next)
		if (strcmp(ic->id, id) == 0)
			break;
	if (ic == NULL)
		return;
	if (ic->state != IC_DOWN) {
		ic->state = IC_DOWN;
		snprintf(ic->why, sizeof(ic->why), "instance %s is gone", id);
		serve_waiters(ic, FL_ERR_CLOSED, ic->why);
	}
	detach(ic);
	if (ic->refs == 0 && ic->waiters == NULL && !ic->waiting_info) {
		struct timeval tv = { 0, 0 };

		evtimer_add(ic->idle, &tv);
	}
}

int
instconn_count(const struct instconn_pool *p)
{
	int n = 0;

	for (const struct instconn *ic = p->list; ic != NULL; ic = ic->next)
		if (ic->state == IC_UP)
			n++;
	return n;
}

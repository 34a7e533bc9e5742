/*
 * The fleet glue: drives one runner's plugin host from the scaler core's
 * decisions on the libevent loop (see fleet.h for the contract).
 *
 * The decision pass.  Inputs never decide inline: they record what came
 * (scaler_update(), scaler_*_result(), a job call) and kick the one timer
 * to fire at once.  The timer's callback is the pass: scaler_decide(),
 * then the actions in order (lost and cancelled jobs, timed-out and
 * granted ones, the capacity log line, Update, Increase, Decrease, ready
 * checks, Heartbeats), then the owner's on_change hook, then the timer is
 * re-armed to the scaler's wakeup (or at once when something kicked it
 * during the pass).  A wakeup already past, which happens when what is
 * due waits for a call in flight, is re-armed FLEET_MIN_SLEEP later: the
 * call's answer kicks the pass anyway.
 *
 * A ready check: ConnectInfo from the plugin (cached), an SSH connection
 * (conn_new) with its credentials, conn_run(instance_ready_command, 5
 * min), exit status 0 = ready.  Every failure on the way is "not ready",
 * logged with its reason.
 *
 * Stopping: scaler_shutdown() and passes as usual until the scaler says
 * shutdown_done, then plugin_host_stop(), then the owner's callback.
 *
 * State storage: each pass ends with a digest of the instance table
 * (order-independent: a sum of one FNV-1a hash per instance over id,
 * state, use count and whether it has jobs); when it differs from the
 * last saved one a save is scheduled on save_timer, at once or when
 * FLEET_SAVE_INTERVAL_NS has passed since the last save.  The save
 * itself reads the table as it is then, so changes coalesce.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "connector.h"
#include "err.h"
#include "fleet.h"
#include "log.h"
#include "state_store.h"
#include "xmalloc.h"

#define FLEET_MIN_SLEEP_NS	(INT64_C(100) * 1000000)
#define FLEET_MAX_SLEEP_NS	(INT64_C(3600) * 1000000000)
#define NS			INT64_C(1000000000)

struct acq {
	struct acq *next;
	scaler_key key;
	fleet_acquire_fn cb;
	void *arg;
	int granted;
	int deliver;		/* granted at fleet_acquire(): tell in a pass */
	char *instance;
	int slot;
};

struct rcheck {
	struct rcheck *next;
	struct fleet *f;
	char *id;
	struct conn *conn;
	struct conn_req *req;
};

struct hb {
	struct hb *next;
	struct fleet *f;
	char *id;
};

struct cireq {
	struct cireq *next;
	struct fleet *f;
	char *id;
	fleet_connect_info_fn cb;
	void *arg;
	int cached;		/* answer from the cache in the next pass */
	int inflight;		/* plugin call out */
};

/* The host key first seen on an instance, required of every later
 * connection to it (ready check and jobs alike) for the instance's life. */
struct pin {
	struct pin *next;
	char *id;
	char fp[CONN_FINGERPRINT_MAX];
};

struct cicache {
	struct cicache *next;
	struct plugin_connect_info *ci;
};

enum fleet_phase { FLEET_NEW, FLEET_RUNNING, FLEET_STOPPING,
	FLEET_STOPPING_PLUGIN, FLEET_STOPPED };

struct fleet {
	struct event_base *base;
	const struct config_runner *rc;
	const struct config_autoscaler *as;
	struct fleet_hooks hooks;
	struct scaler *s;
	struct plugin_host *host;
	struct event *timer;
	struct scaler_actions act;
	char runner_short[9];
	char *plugin_path;
	char *plugin_json;
	char *static_key;	/* connector_config key_path, read once */
	size_t static_key_len;

	enum fleet_phase phase;
	int in_pass, rekick;
	int update_inflight;
	int64_t update_due;		/* an earlier pass's next_update */
	int64_t increase_inflight;	/* requested, 0: none */
	int64_t increase_queued;
	int64_t increase_held;		/* cut short by a crash: see on_increase */
	char **dec_inflight;		/* ids of the Decrease out */
	size_t ndec_inflight;
	char **dec_queued;
	size_t ndec_queued;

	struct acq *acqs;
	struct rcheck *rchecks;
	struct hb *hbs;
	struct cireq *cireqs;
	struct cicache *cache;
	struct pin *pins;		/* host keys seen, per instance */

	int stop_delete, shutdown_pending;
	fleet_stop_fn stop_cb;
	void *stop_arg;

	char *config_path;		/* hooks.config_path, copied */
	struct state_store *store;	/* NULL: no state storage */
	struct event *save_timer;
	uint64_t saved_digest;
	int saved_valid;		/* saved_digest is what is on disk */
	int64_t last_save;		/* fleet_now() of the last save */
};

int64_t
fleet_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static void
kick(struct fleet *f)
{
	struct timeval tv = { 0, 0 };

	if (f->in_pass) {
		f->rekick = 1;
		return;
	}
	evtimer_add(f->timer, &tv);
}

static void
strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ------------------------------------------------------- ConnectInfo cache */

static struct cicache *
cache_find(struct fleet *f, const char *id)
{
	for (struct cicache *c = f->cache; c != NULL; c = c->next)
		if (strcmp(c->ci->id, id) == 0)
			return c;
	return NULL;
}

static void
cache_drop(struct fleet *f, const char *id)
{
	for (struct cicache **pp = &f->cache; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->ci->id, id) == 0) {
			struct cicache *c = *pp;

			*pp = c->next;
			plugin_connect_info_free(c->ci);
			free(c);
			return;
		}
	}
}

/* A cached answer that has not expired (a minute of margin). */
static const struct plugin_connect_info *
cache_get(struct fleet *f, const char *id)
{
	struct cicache *c = cache_find(f, id);

	if (c == NULL)
		return NULL;
	if (c->ci->expires_unix_ns != 0 &&
	    c->ci->expires_unix_ns - 60 * NS <= fleet_now()) {
		cache_drop(f, id);
		return NULL;
	}
	return c->ci;
}

static void
cache_put(struct fleet *f, const char *id, const struct plugin_connect_info *ci)
{
	struct cicache *c;

	cache_drop(f, id);
	c = xcalloc(1, sizeof(*c));
	c->ci = plugin_connect_info_dup(ci);
	free(c->ci->id);
	c->ci->id = xstrdup(id);
	c->next = f->cache;
	f->cache = c;
}

/* ----------------------------------------------------------------- Update */

/* An Increase cut short by a crash, told once the restart list is in. */
static void
report_held_increase(struct fleet *f)
{
	if (f->increase_held > 0) {
		scaler_increase_result(f->s, fleet_now(), f->increase_held, 0);
		f->increase_held = 0;
	}
}

static enum scaler_pstate
pstate(enum plugin_istate st)
{
	switch (st) {
	case PLUGIN_I_CREATING:
		return SCALER_P_CREATING;
	case PLUGIN_I_RUNNING:
		return SCALER_P_RUNNING;
	case PLUGIN_I_DELETING:
		return SCALER_P_DELETING;
	case PLUGIN_I_TIMEOUT:
		return SCALER_P_TIMEOUT;
	case PLUGIN_I_DELETED:
		break;
	}
	return SCALER_P_DELETED;
}

/* Feed an instance list to the scaler; forget cached ConnectInfo of
 * instances no longer running. */
static void
feed(struct fleet *f, const struct plugin_instances *inst)
{
	struct scaler_report *r;
	size_t n = inst != NULL ? inst->n : 0;

	r = xcalloc(n + 1, sizeof(*r));
	for (size_t i = 0; i < n; i++) {
		r[i].id = inst->v[i].id;
		r[i].state = pstate(inst->v[i].state);
	}
	scaler_update(f->s, fleet_now(), r, n);
	free(r);
	for (struct cicache **pp = &f->cache; *pp != NULL;) {
		int keep = 0;

		for (size_t i = 0; i < n; i++)
			if (strcmp(inst->v[i].id, (*pp)->ci->id) == 0 &&
			    inst->v[i].state == PLUGIN_I_RUNNING)
				keep = 1;
		if (keep) {
			pp = &(*pp)->next;
		} else {
			struct cicache *c = *pp;

			*pp = c->next;
			plugin_connect_info_free(c->ci);
			free(c);
		}
	}
}

static void
on_update(void *arg, const struct plugin_status *st,
    const struct plugin_instances *inst)
{
	struct fleet *f = arg;

	f->update_inflight = 0;
	f->update_due = INT64_MAX;
	if (st->rc == 0) {
		feed(f, inst);
		report_held_increase(f);
	} else {
		struct log_field fl[] = { { "error", st->msg } };

		log_warnf(fl, 1, "plugin Update failed");
		scaler_update_failed(f->s, fleet_now());
	}
	kick(f);
}

static void
on_host_ready(void *arg, struct plugin_host *h, const struct plugin_info *info,
    const struct plugin_status *ust, const struct plugin_instances *inst)
{
	struct fleet *f = arg;

	(void)h;
	(void)info;
	if (ust != NULL && ust->rc == 0 && inst != NULL) {
		feed(f, inst);
		f->update_due = INT64_MAX;
	}
	report_held_increase(f);
	kick(f);
}

static void
on_host_failed(void *arg, struct plugin_host *h, const char *reason)
{
	struct fleet *f = arg;
	struct log_field fl[] = { { "reason", reason },
		{ "plugin", plugin_host_name(h) } };

	log_errorf(fl, 2, "plugin failed for good");
	report_held_increase(f);
	if (f->hooks.on_plugin_failed != NULL)
		f->hooks.on_plugin_failed(f->hooks.arg, f, reason);
	kick(f);
}

/* --------------------------------------------------------------- Increase */

static void send_increase(struct fleet *f);

static void
on_increase(void *arg, const struct plugin_status *st, int64_t succeeded,
    const char *partial_error)
{
	struct fleet *f = arg;
	int64_t req = f->increase_inflight;

	f->increase_inflight = 0;
	if (st->rc == FL_ERR_CLOSED && f->phase == FLEET_RUNNING &&
	    plugin_host_state(f->host) != PLUGIN_HOST_FAILED) {
		/*
		 * The plugin died (or its socket closed) during the call:
		 * what it did create shows in the next instance list (the
		 * restart's, or the next Update's).  Report the failure only
		 * after that list is fed, so those instances answer this
		 * Increase instead of being taken for pre-existing ones and
		 * removed.
		 */
		struct log_field fl[] = { { "error", st->msg } };

		log_warnf(fl, 1, "plugin Increase(%" PRId64 ") cut short", req);
		f->increase_held += req;
		send_increase(f);
		kick(f);
		return;
	}
	if (st->rc != 0) {
		struct log_field fl[] = { { "error", st->msg } };

		log_warnf(fl, 1, "plugin Increase(%" PRId64 ") failed", req);
		succeeded = 0;
	} else if (succeeded < req) {
		struct log_field fl[] = { { "error", partial_error != NULL ?
		    partial_error : "" } };

		log_warnf(fl, 1, "plugin Increase(%" PRId64 ") made %" PRId64,
		    req, succeeded);
	}
	scaler_increase_result(f->s, fleet_now(), req, succeeded);
	send_increase(f);
	kick(f);
}

static void
send_increase(struct fleet *f)
{
	int64_t n = f->increase_queued;
	int rc;

	if (n <= 0 || f->increase_inflight > 0)
		return;
	f->increase_queued = 0;
	rc = plugin_host_increase(f->host, n, on_increase, f);
	if (rc != 0) {
		log_debug("Increase(%" PRId64 ") not sent: %s", n, err_str(rc));
		scaler_increase_result(f->s, fleet_now(), n, 0);
		kick(f);
		return;
	}
	f->increase_inflight = n;
}

/* --------------------------------------------------------------- Decrease */

static void send_decrease(struct fleet *f);

static void
on_decrease(void *arg, const struct plugin_status *st, char *const *succeeded,
    size_t nsucceeded, const char *partial_error)
{
	struct fleet *f = arg;

	if (st->rc != 0) {
		struct log_field fl[] = { { "error", st->msg } };

		log_warnf(fl, 1, "plugin Decrease failed");
		nsucceeded = 0;
	} else if (partial_error != NULL && *partial_error != '\0') {
		struct log_field fl[] = { { "error", partial_error } };

		log_warnf(fl, 1, "plugin Decrease partly failed");
	}
	scaler_decrease_result(f->s, fleet_now(),
	    (const char *const *)f->dec_inflight, f->ndec_inflight,
	    (const char *const *)succeeded, nsucceeded);
	strv_free(f->dec_inflight, f->ndec_inflight);
	f->dec_inflight = NULL;
	f->ndec_inflight = 0;
	send_decrease(f);
	kick(f);
}

static void
send_decrease(struct fleet *f)
{
	int rc;

	if (f->ndec_queued == 0 || f->dec_inflight != NULL)
		return;
	f->dec_inflight = f->dec_queued;
	f->ndec_inflight = f->ndec_queued;
	f->dec_queued = NULL;
	f->ndec_queued = 0;
	rc = plugin_host_decrease(f->host, (const char *const *)f->dec_inflight,
	    f->ndec_inflight, on_decrease, f);
	if (rc != 0) {
		log_debug("Decrease of %zu not sent: %s", f->ndec_inflight,
		    err_str(rc));
		scaler_decrease_result(f->s, fleet_now(),
		    (const char *const *)f->dec_inflight, f->ndec_inflight,
		    NULL, 0);
		strv_free(f->dec_inflight, f->ndec_inflight);
		f->dec_inflight = NULL;
		f->ndec_inflight = 0;
		kick(f);
	}
}

/* ----------------------------------------------------------- ready checks */

static void
rcheck_end(struct rcheck *r, int ok, const char *reason)
{
	struct fleet *f = r->f;
	struct log_field fl[] = { { "instance", r->id },
		{ "reason", reason != NULL ? reason : "" } };

	if (ok)
		log_infof(fl, 1, "instance ready command passed");
	else
		log_errorf(fl, 2, "instance ready command failed");
	scaler_ready_result(f->s, fleet_now(), r->id, ok);
	if (f->hooks.on_ready_check != NULL)
		f->hooks.on_ready_check(f->hooks.arg, f, r->id, ok, reason);
	for (struct rcheck **pp = &f->rchecks; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	conn_free(r->conn);
	free(r->id);
	free(r);
	kick(f);
}

static void
rcheck_ran(void *arg, const struct conn_run_result *res)
{
	struct rcheck *r = arg;
	char why[512];

	r->req = NULL;
	if (res->err != 0) {
		snprintf(why, sizeof(why), "%s", res->errmsg != NULL ?
		    res->errmsg : err_str(res->err));
		rcheck_end(r, 0, why);
	} else if (res->exit_status != 0) {
		if (res->exit_status < 0)
			snprintf(why, sizeof(why), "killed by signal %s",
			    res->exit_signal != NULL ? res->exit_signal : "?");
		else
			snprintf(why, sizeof(why), "exit status %d%s%.200s",
			    res->exit_status,
			    res->err_len > 0 ? ": " : "",
			    res->err_out != NULL ? res->err_out : "");
		why[strcspn(why, "\n")] = '\0';	/* first line of stderr */
		rcheck_end(r, 0, why);
	} else {
		fleet_pin(r->f, r->id, conn_host_key_fingerprint(r->conn));
		rcheck_end(r, 1, NULL);
	}
}

static struct pin *
pin_find(struct fleet *f, const char *id)
{
	for (struct pin *p = f->pins; p != NULL; p = p->next)
		if (strcmp(p->id, id) == 0)
			return p;
	return NULL;
}

/* Forget the pins of instances the scaler no longer knows. */
static void
pin_prune(struct fleet *f)
{
	struct scaler_instance_info v;

	for (struct pin **pp = &f->pins; *pp != NULL;) {
		struct pin *p = *pp;

		if (scaler_instance(f->s, p->id, &v) != 0) {
			*pp = p->next;
			free(p->id);
			free(p);
		} else {
			pp = &p->next;
		}
	}
}

void
fleet_pin(struct fleet *f, const char *id, const char *fingerprint)
{
	struct pin *p;

	if (fingerprint == NULL || *fingerprint == '\0' ||
	    strlen(fingerprint) >= CONN_FINGERPRINT_MAX)
		return;
	pin_prune(f);
	if ((p = pin_find(f, id)) == NULL) {
		p = xcalloc(1, sizeof(*p));
		p->id = xstrdup(id);
		p->next = f->pins;
		f->pins = p;
	}
	snprintf(p->fp, sizeof(p->fp), "%s", fingerprint);
}

/* Connect params from ConnectInfo and [runners.autoscaler.connector_config]. */
struct conn *
fleet_connect(struct fleet *f, const char *id,
    const struct plugin_connect_info *ci, conn_state_cb cb, void *arg,
    char *why, size_t whylen)
{
	const struct config_connector *cc = &f->as->connector_config;
	struct conn_params p;
	struct pin *pin;
	struct conn *c;
	int err = 0;

	memset(&p, 0, sizeof(p));
	p.instance_id = id;
	p.internal_addr = ci->internal_addr;
	p.external_addr = ci->external_addr;
	p.use_external_addr = cc->use_external_addr;
	p.port = ci->port;
	p.cred.username = ci->username;
	p.cred.key = (const char *)ci->key;
	p.cred.key_len = ci->key_len;
	p.cred.password = ci->password != NULL && *ci->password != '\0' ?
	    ci->password : NULL;
	p.cred.expires_ns = ci->expires_unix_ns;
	if (cc->use_static_credentials) {
		if (cc->username != NULL && *cc->username != '\0')
			p.cred.username = cc->username;
		if (cc->password != NULL && *cc->password != '\0')
			p.cred.password = cc->password;
		if (f->static_key != NULL) {
			p.cred.key = f->static_key;
			p.cred.key_len = f->static_key_len;
		}
	}
	p.keepalive_ns = ci->keepalive_ns;
	p.timeout_ns = ci->timeout_ns;
	if ((pin = pin_find(f, id)) != NULL)
		p.pinned_fingerprint = pin->fp;
	if (p.cred.key_len == 0)
		p.cred.key = NULL;
	c = conn_new(f->base, &p, cb, arg, &err);
	if (c == NULL)
		snprintf(why, whylen, "cannot connect: %s", err_str(err));
	return c;
}

static void
rcheck_start_run(struct rcheck *r, const struct plugin_connect_info *ci)
{
	char why[256];

	r->conn = fleet_connect(r->f, r->id, ci, NULL, NULL, why, sizeof(why));
	if (r->conn == NULL) {
		rcheck_end(r, 0, why);
		return;
	}
	r->req = conn_run(r->conn, r->f->as->instance_ready_command, NULL, 0,
	    FLEET_READY_TIMEOUT_NS, rcheck_ran, r);
	if (r->req == NULL)
		rcheck_end(r, 0, "cannot run the command");
}

static void
rcheck_ci(void *arg, const struct plugin_status *st,
    const struct plugin_connect_info *ci)
{
	struct rcheck *r = arg;
	char why[RPC_MSG_MAX + 32];

	if (st->rc != 0 || ci == NULL) {
		snprintf(why, sizeof(why), "ConnectInfo: %s", st->msg);
		rcheck_end(r, 0, why);
		return;
	}
	cache_put(r->f, r->id, ci);
	rcheck_start_run(r, ci);
}

/* Called from a pass only (rcheck_end kicks, which is deferred then). */
static void
rcheck_start(struct fleet *f, const char *id)
{
	const struct plugin_connect_info *ci;
	struct rcheck *r;
	int rc;

	if (f->as->instance_ready_command == NULL ||
	    *f->as->instance_ready_command == '\0') {
		scaler_ready_result(f->s, fleet_now(), id, 1);
		return;
	}
	r = xcalloc(1, sizeof(*r));
	r->f = f;
	r->id = xstrdup(id);
	r->next = f->rchecks;
	f->rchecks = r;
	ci = cache_get(f, id);
	if (ci != NULL) {
		rcheck_start_run(r, ci);
		return;
	}
	rc = plugin_host_connect_info(f->host, id, rcheck_ci, r);
	if (rc != 0) {
		char why[128];

		snprintf(why, sizeof(why), "ConnectInfo: %s", err_str(rc));
		rcheck_end(r, 0, why);
	}
}

/* -------------------------------------------------------------- Heartbeat */

static void
hb_unlink(struct fleet *f, struct hb *b)
{
	for (struct hb **pp = &f->hbs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	}
	free(b->id);
	free(b);
}

static void
on_heartbeat(void *arg, const struct plugin_status *st)
{
	struct hb *b = arg;
	struct fleet *f = b->f;
	int ok = st->rc == 0 || st->code == RPC_UNIMPLEMENTED;

	if (!ok) {
		struct log_field fl[] = { { "instance", b->id },
			{ "error", st->msg } };

		log_warnf(fl, 2, "instance heartbeat failed");
	}
	scaler_heartbeat_result(f->s, fleet_now(), b->id, ok);
	hb_unlink(f, b);
	kick(f);
}

static void
hb_start(struct fleet *f, const char *id)
{
	struct hb *b = xcalloc(1, sizeof(*b));
	int rc;

	b->f = f;
	b->id = xstrdup(id);
	b->next = f->hbs;
	f->hbs = b;
	rc = plugin_host_heartbeat(f->host, id, on_heartbeat, b);
	if (rc != 0) {
		/* Not the instance's fault: count it healthy. */
		scaler_heartbeat_result(f->s, fleet_now(), id,
		    rc == FL_ERR_AGAIN || rc == FL_ERR_CLOSED);
		hb_unlink(f, b);
	}
}

/* ------------------------------------------------------------ ConnectInfo */

static void
cireq_free(struct fleet *f, struct cireq *q)
{
	for (struct cireq **pp = &f->cireqs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	}
	free(q->id);
	free(q);
}

static void
on_ci(void *arg, const struct plugin_status *st,
    const struct plugin_connect_info *ci)
{
	struct cireq *q = arg;
	struct fleet *f = q->f;

	if (st->rc == 0 && ci != NULL) {
		cache_put(f, q->id, ci);
		q->cb(q->arg, 0, "", ci);
	} else {
		q->cb(q->arg, st->rc != 0 ? st->rc : FL_ERR_PROTO, st->msg, NULL);
	}
	cireq_free(f, q);
}

int
fleet_connect_info(struct fleet *f, const char *instance_id,
    fleet_connect_info_fn cb, void *arg)
{
	struct cireq *q;
	int rc;

	if (instance_id == NULL || cb == NULL)
		return FL_ERR_INVAL;
	if (f->phase != FLEET_RUNNING && f->phase != FLEET_STOPPING)
		return FL_ERR_CLOSED;
	q = xcalloc(1, sizeof(*q));
	q->f = f;
	q->id = xstrdup(instance_id);
	q->cb = cb;
	q->arg = arg;
	if (cache_get(f, instance_id) != NULL) {
		q->cached = 1;
		q->next = f->cireqs;
		f->cireqs = q;
		kick(f);
		return 0;
	}
	rc = plugin_host_connect_info(f->host, instance_id, on_ci, q);
	if (rc != 0) {
		free(q->id);
		free(q);
		return rc;
	}
	q->inflight = 1;
	q->next = f->cireqs;
	f->cireqs = q;
	return 0;
}

/* Answer the requests the cache can answer (from a pass). */
static void
cireq_deliver(struct fleet *f)
{
	struct cireq *q;

again:
	for (q = f->cireqs; q != NULL; q = q->next) {
		const struct plugin_connect_info *ci;

		if (!q->cached)
			continue;
		ci = cache_get(f, q->id);
		if (ci != NULL) {
			struct plugin_connect_info *copy =
			    plugin_connect_info_dup(ci);

			q->cb(q->arg, 0, "", copy);
			plugin_connect_info_free(copy);
		} else {
			q->cb(q->arg, FL_ERR_NOTFOUND,
			    "instance gone or its connect info expired", NULL);
		}
		cireq_free(f, q);
		goto again;	/* the callback may have changed the list */
	}
}

/* --------------------------------------------------------------- the jobs */

static struct acq *
acq_find(struct fleet *f, scaler_key key)
{
	for (struct acq *a = f->acqs; a != NULL; a = a->next)
		if (a->key == key)
			return a;
	return NULL;
}

static void
acq_remove(struct fleet *f, struct acq *a)
{
	for (struct acq **pp = &f->acqs; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	}
	free(a->instance);
	free(a);
}

int
fleet_reserve(struct fleet *f, scaler_key *key)
{
	int rc = scaler_reserve(f->s, fleet_now(), key);

	kick(f);
	return rc;
}

int
fleet_unreserve(struct fleet *f, scaler_key key)
{
	int rc = scaler_unreserve(f->s, fleet_now(), key);

	kick(f);
	return rc;
}

int
fleet_acquire(struct fleet *f, scaler_key key, fleet_acquire_fn cb, void *arg)
{
	const char *inst = NULL;
	struct acq *a;
	int slot = -1, rc;

	if (cb == NULL)
		return FL_ERR_INVAL;
	if (f->phase != FLEET_RUNNING)
		return FL_ERR_CLOSED;
	if (acq_find(f, key) != NULL)
		return FL_ERR_EXISTS;
	rc = scaler_acquire(f->s, fleet_now(), key, &inst, &slot);
	if (rc != 0 && rc != FL_ERR_AGAIN)
		return rc;
	a = xcalloc(1, sizeof(*a));
	a->key = key;
	a->cb = cb;
	a->arg = arg;
	if (rc == 0) {
		a->granted = 1;
		a->deliver = 1;
		a->instance = xstrdup(inst);
		a->slot = slot;
	}
	a->next = f->acqs;
	f->acqs = a;
	kick(f);
	return 0;
}

int
fleet_release(struct fleet *f, scaler_key key)
{
	struct acq *a = acq_find(f, key);
	int rc;

	if (a != NULL)
		acq_remove(f, a);
	rc = scaler_release(f->s, fleet_now(), key);
	kick(f);
	return rc;
}

/* Grants made inside fleet_acquire(), told from the pass. */
static void
acq_deliver(struct fleet *f)
{
	struct acq *a;

again:
	for (a = f->acqs; a != NULL; a = a->next) {
		if (!a->deliver)
			continue;
		a->deliver = 0;
		if (f->hooks.on_granted != NULL)
			f->hooks.on_granted(f->hooks.arg, f, a->key,
			    a->instance, a->slot);
		/* The hook may have released it. */
		if ((a = acq_find(f, a->key)) != NULL)
			a->cb(a->arg, FLEET_ACQ_GRANTED, a->key, a->instance,
			    a->slot);
		goto again;
	}
}

/* ------------------------------------------------------------- the pass */

static void
log_lost(struct fleet *f, const struct scaler_lost *l)
{
	char muc[24], used[24];
	struct log_field fl[] = {
		{ "instance", l->instance },
		{ "max-use-count", muc },
		{ "slots", l->slots },
		{ "used", used },
		{ "runner", f->runner_short },
		{ "subsystem", "taskscaler" },
	};

	snprintf(muc, sizeof(muc), "%" PRId64, l->max_use_count);
	snprintf(used, sizeof(used), "%" PRId64, l->used);
	log_errorf(fl, 6, "instance unexpectedly removed");
}

static void
log_capacity(struct fleet *f, const struct scaler_capacity *c)
{
	char v[11][32];
	struct log_field fl[] = {
		{ "instance_count", v[0] },
		{ "max_instance_count", v[1] },
		{ "acquired", v[2] },
		{ "unavailable_capacity", v[3] },
		{ "pending", v[4] },
		{ "reserved", v[5] },
		{ "idle_count", v[6] },
		{ "scale_factor", v[7] },
		{ "scale_factor_limit", v[8] },
		{ "capacity_per_instance", v[9] },
		{ "runner", f->runner_short },
		{ "subsystem", "taskscaler" },
	};

	snprintf(v[0], 32, "%" PRId64, c->instance_count);
	snprintf(v[1], 32, "%" PRId64, c->max_instance_count);
	snprintf(v[2], 32, "%" PRId64, c->acquired);
	snprintf(v[3], 32, "%" PRId64, c->unavailable_capacity);
	snprintf(v[4], 32, "%" PRId64, c->pending);
	snprintf(v[5], 32, "%" PRId64, c->reserved);
	snprintf(v[6], 32, "%" PRId64, c->idle_count);
	snprintf(v[7], 32, "%g", c->scale_factor);
	snprintf(v[8], 32, "%" PRId64, c->scale_factor_limit);
	snprintf(v[9], 32, "%" PRId64, c->capacity_per_instance);
	log_infof(fl, 12, "required scaling change");
}

static void plugin_stopped(void *arg, struct plugin_host *h,
    const struct plugin_stop_result *r);
static void begin_shutdown(struct fleet *f);

static void
apply(struct fleet *f, int64_t now, struct scaler_actions *act)
{
	enum plugin_host_state hs = plugin_host_state(f->host);

	for (size_t i = 0; i < act->nlost; i++) {
		log_lost(f, &act->lost[i]);
		cache_drop(f, act->lost[i].instance);
		if (f->hooks.on_lost != NULL)
			f->hooks.on_lost(f->hooks.arg, f, act->lost[i].instance);
	}
	for (size_t i = 0; i < act->ncancelled; i++) {
		const struct scaler_cancel *c = &act->cancelled[i];
		struct acq *a;

		if (f->hooks.on_cancelled != NULL)
			f->hooks.on_cancelled(f->hooks.arg, f, c->key,
			    c->instance, c->slot);
		if ((a = acq_find(f, c->key)) != NULL) {
			fleet_acquire_fn cb = a->cb;
			void *arg = a->arg;

			acq_remove(f, a);
			cb(arg, FLEET_ACQ_CANCELLED, c->key, c->instance,
			    c->slot);
		}
	}
	for (size_t i = 0; i < act->ntimed_out; i++) {
		scaler_key k = act->timed_out[i];
		struct acq *a;

		if (f->hooks.on_timed_out != NULL)
			f->hooks.on_timed_out(f->hooks.arg, f, k);
		if ((a = acq_find(f, k)) != NULL) {
			fleet_acquire_fn cb = a->cb;
			void *arg = a->arg;

			acq_remove(f, a);
			cb(arg, FLEET_ACQ_TIMED_OUT, k, NULL, -1);
		}
	}
	for (size_t i = 0; i < act->ngranted; i++) {
		const struct scaler_grant *g = &act->granted[i];
		struct acq *a;

		if (f->hooks.on_granted != NULL)
			f->hooks.on_granted(f->hooks.arg, f, g->key,
			    g->instance, g->slot);
		if ((a = acq_find(f, g->key)) != NULL && !a->granted) {
			a->granted = 1;
			a->deliver = 0;
			free(a->instance);
			a->instance = xstrdup(g->instance);
			a->slot = g->slot;
			a->cb(a->arg, FLEET_ACQ_GRANTED, g->key, g->instance,
			    g->slot);
		}
	}
	acq_deliver(f);
	if (act->scaling_change)
		log_capacity(f, &act->capacity);

	/*
	 * An Update is due when this decision or an earlier one said so: a
	 * shutdown poll moves next_update on in the very decision that was
	 * due, and the Update it wanted would never go out.
	 */
	if (act->next_update < f->update_due)
		f->update_due = act->next_update;
	if (!f->update_inflight && now >= f->update_due &&
	    hs == PLUGIN_HOST_READY) {
		if (plugin_host_update(f->host, on_update, f) == 0) {
			f->update_inflight = 1;
			f->update_due = INT64_MAX;
		}
	}
	if (act->increase > 0) {
		f->increase_queued += act->increase;
		send_increase(f);
	}
	if (act->ndecrease > 0) {
		f->dec_queued = xreallocarray(f->dec_queued,
		    f->ndec_queued + act->ndecrease, sizeof(char *));
		for (size_t i = 0; i < act->ndecrease; i++) {
			struct log_field fl[] = {
				{ "instance", act->decrease[i].id },
				{ "reason", scaler_reason_name(
				    act->decrease[i].reason) },
				{ "subsystem", "taskscaler" } };

			log_infof(fl, 3, "removing instance");
			if (f->hooks.on_removing != NULL)
				f->hooks.on_removing(f->hooks.arg, f,
				    act->decrease[i].id);
			f->dec_queued[f->ndec_queued++] =
			    xstrdup(act->decrease[i].id);
		}
		send_decrease(f);
	}
	for (size_t i = 0; i < act->nready_checks; i++)
		rcheck_start(f, act->ready_checks[i]);
	for (size_t i = 0; i < act->nheartbeats; i++)
		hb_start(f, act->heartbeats[i]);
	cireq_deliver(f);
}

static void
arm(struct fleet *f, int64_t now, int64_t wakeup)
{
	int64_t d;
	struct timeval tv;

	if (f->phase == FLEET_STOPPING_PLUGIN || f->phase == FLEET_STOPPED)
		return;
	if (f->update_due < wakeup)
		wakeup = f->update_due;
	d = wakeup == INT64_MAX ? FLEET_MAX_SLEEP_NS : wakeup - now;
	if (d < FLEET_MIN_SLEEP_NS)
		d = FLEET_MIN_SLEEP_NS;
	if (d > FLEET_MAX_SLEEP_NS)
		d = FLEET_MAX_SLEEP_NS;
	tv.tv_sec = d / NS;
	tv.tv_usec = (d % NS) / 1000;
	evtimer_add(f->timer, &tv);
}

/* ------------------------------------------------------- state storage */

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* What of the table is stored, as one number (see the top). */
static uint64_t
table_digest(const struct scaler *s)
{
	size_t n = scaler_instance_count(s);
	uint64_t sum = n;

	for (size_t i = 0; i < n; i++) {
		struct scaler_instance_info ii;
		uint64_t h = UINT64_C(0xcbf29ce484222325);
		int v[2];

		if (scaler_instance_at(s, i, &ii) != 0)
			continue;
		h = fnv(h, ii.id, strlen(ii.id) + 1);
		v[0] = (int)ii.state;
		v[1] = ii.acquired > 0;
		h = fnv(h, v, sizeof(v));
		h = fnv(h, &ii.use_count, sizeof(ii.use_count));
		h = fnv(h, &ii.created_at, sizeof(ii.created_at));
		sum += h;
	}
	return sum;
}

/* Save the whole table now (connect details from the cache). */
static void
store_save(struct fleet *f)
{
	size_t n = scaler_instance_count(f->s), k = 0;
	struct state_record *recs;
	uint64_t d = table_digest(f->s);
	int rc;

	if (f->store == NULL)
		return;
	recs = xcalloc(n + 1, sizeof(*recs));
	for (size_t i = 0; i < n; i++) {
		struct scaler_instance_info ii;
		struct cicache *c;

		if (scaler_instance_at(f->s, i, &ii) != 0)
			continue;
		state_store_record_from_instance(&recs[k], &ii);
		c = cache_find(f, ii.id);
		if (c != NULL)
			state_store_record_set_connect(&recs[k], c->ci);
		k++;
	}
	rc = state_store_save(f->store, recs, k);
	state_store_records_free(recs, k);
	f->last_save = fleet_now();
	if (rc != 0) {
		struct log_field fl[] = { { "path", state_store_path(f->store) },
			{ "error", err_str(rc) } };

		f->saved_valid = 0;
		log_errorf(fl, 2, "saving the state storage failed");
		return;
	}
	f->saved_digest = d;
	f->saved_valid = 1;
	log_debug("state storage saved: %zu instances", k);
}

static void
save_fire(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	store_save(arg);
}

/* After a pass: schedule a save when the table changed since the last. */
static void
store_note(struct fleet *f, int64_t now)
{
	int64_t d;
	struct timeval tv;

	if (f->store == NULL || evtimer_pending(f->save_timer, NULL))
		return;
	if (f->saved_valid && table_digest(f->s) == f->saved_digest)
		return;
	d = f->last_save + FLEET_SAVE_INTERVAL_NS - now;
	if (d < 0)
		d = 0;
	tv.tv_sec = d / NS;
	tv.tv_usec = (d % NS) / 1000;
	evtimer_add(f->save_timer, &tv);
}

/* Open, load and restore (fleet_start()); failures are logged only. */
static void
store_open(struct fleet *f)
{
	const struct config_state_storage *ss = &f->as->state_storage;
	struct state_record *recs = NULL;
	struct scaler_restored *r;
	char err[512];
	char *dir;
	size_t n = 0;
	int rc;

	dir = state_store_dir(ss, f->config_path);
	f->store = state_store_open(dir, f->rc->token, err, sizeof(err));
	if (f->store == NULL) {
		struct log_field fl[] = { { "dir", dir }, { "error", err } };

		log_errorf(fl, 2, "state storage unusable; running without it "
		    "(instances found at the next start are removed)");
		free(dir);
		return;
	}
	free(dir);
	f->save_timer = evtimer_new(f->base, save_fire, f);
	if (f->save_timer == NULL) {
		log_error("evtimer_new failed; running without state storage");
		state_store_free(f->store);
		f->store = NULL;
		return;
	}
	rc = state_store_load(f->store, &recs, &n, err, sizeof(err));
	if (rc != 0) {
		struct log_field fl[] = { { "path", state_store_path(f->store) },
			{ "error", err } };

		log_errorf(fl, 2,
		    "state storage not loaded; starting from an empty set");
		return;
	}
	r = state_store_restored(recs, n);
	if (n > 0 && scaler_restore(f->s, fleet_now(), r, n) != 0)
		log_warn("state storage: duplicate instance ids skipped");
	free(r);
	state_store_records_free(recs, n);
	/* What is on disk is what was loaded: no save until a change. */
	f->saved_digest = table_digest(f->s);
	f->saved_valid = 1;
	{
		struct log_field fl[] = { { "path", state_store_path(f->store) } };

		log_infof(fl, 1, "state storage loaded: %zu instances", n);
	}
}

static void
pass(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;
	int64_t now = fleet_now();

	(void)fd;
	(void)what;
	if (f->phase != FLEET_RUNNING && f->phase != FLEET_STOPPING)
		return;
	f->in_pass = 1;
	f->rekick = 0;
	scaler_decide(f->s, now, &f->act);
	apply(f, now, &f->act);
	if (f->phase == FLEET_STOPPING && (f->act.shutdown_done ||
	    plugin_host_state(f->host) == PLUGIN_HOST_FAILED)) {
		f->phase = FLEET_STOPPING_PLUGIN;
		log_info("fleet shutdown done; stopping the plugin");
		if (plugin_host_stop(f->host, plugin_stopped, f) != 0)
			log_warn("plugin already stopping");
	}
	store_note(f, now);
	if (f->hooks.on_change != NULL)
		f->hooks.on_change(f->hooks.arg, f);
	f->in_pass = 0;
	if (f->shutdown_pending) {
		begin_shutdown(f);	/* fleet_stop() from a hook */
		return;
	}
	if (f->rekick && (f->phase == FLEET_RUNNING ||
	    f->phase == FLEET_STOPPING))
		kick(f);
	else
		arm(f, now, f->act.wakeup);
}

/* ------------------------------------------------------------ lifecycle */

struct fleet *
fleet_new(struct event_base *base, const struct config_runner *rc,
    const struct fleet_hooks *hooks, char *err, size_t errlen)
{
	const struct config_autoscaler *as = &rc->autoscaler;
	struct plugin_host_opts o;
	struct fleet *f;
	char *path = NULL;

	if (as->plugin == NULL || *as->plugin == '\0') {
		snprintf(err, errlen, "runner %s: no autoscaler plugin",
		    rc->name != NULL ? rc->name : "");
		return NULL;
	}
	if (plugin_resolve(as->plugin, &path, err, errlen) != 0)
		return NULL;
	f = xcalloc(1, sizeof(*f));
	f->base = base;
	f->rc = rc;
	f->as = as;
	f->plugin_path = path;
	if (hooks != NULL) {
		f->hooks = *hooks;
		if (hooks->config_path != NULL)
			f->config_path = xstrdup(hooks->config_path);
	}
	f->hooks.config_path = NULL;
	log_short_token(rc->token, f->runner_short);
	scaler_actions_init(&f->act);
	f->s = scaler_new(as, err, errlen);
	if (f->s == NULL)
		goto fail;
	if (as->connector_config.use_static_credentials &&
	    as->connector_config.key_path != NULL &&
	    *as->connector_config.key_path != '\0') {
		int r = conn_read_key_file(as->connector_config.key_path,
		    &f->static_key, &f->static_key_len);

		if (r != 0) {
			snprintf(err, errlen, "connector_config key_path %s: %s",
			    as->connector_config.key_path, err_str(r));
			goto fail;
		}
	}
	f->plugin_json = config_plugin_json(as);
	memset(&o, 0, sizeof(o));
	o.path = path;
	o.plugin_config_json = f->plugin_json;
	o.connector = &as->connector_config;
	o.cbs.on_ready = on_host_ready;
	o.cbs.on_restart = on_host_ready;
	o.cbs.on_failed = on_host_failed;
	o.cb_arg = f;
	f->host = plugin_host_new(base, &o, err, errlen);
	if (f->host == NULL)
		goto fail;
	f->update_due = INT64_MAX;
	f->timer = evtimer_new(base, pass, f);
	if (f->timer == NULL) {
		snprintf(err, errlen, "evtimer_new failed");
		goto fail;
	}
	return f;
fail:
	fleet_free(f);
	return NULL;
}

int
fleet_start(struct fleet *f, char *err, size_t errlen)
{
	int rc;

	if (f->phase != FLEET_NEW) {
		snprintf(err, errlen, "fleet already started");
		return FL_ERR_INVAL;
	}
	if (f->as->state_storage.enabled && f->store == NULL)
		store_open(f);
	rc = plugin_host_start(f->host, err, errlen);
	if (rc != 0)
		return rc;
	f->phase = FLEET_RUNNING;
	kick(f);
	return 0;
}

static void
plugin_stopped(void *arg, struct plugin_host *h,
    const struct plugin_stop_result *r)
{
	struct fleet *f = arg;

	(void)h;
	(void)r;
	f->phase = FLEET_STOPPED;
	evtimer_del(f->timer);
	if (f->store != NULL) {
		evtimer_del(f->save_timer);
		store_save(f);		/* the final set */
	}
	if (f->stop_cb != NULL)
		f->stop_cb(f->stop_arg, f);
}

/*
 * scaler_shutdown() and its own actions (Decrease of everything, pending
 * acquisitions timed out), applied as a pass would.  Never inside a pass:
 * it replaces f->act, which the pass is reading.
 */
static void
begin_shutdown(struct fleet *f)
{
	int64_t now = fleet_now();

	f->shutdown_pending = 0;
	report_held_increase(f);
	scaler_shutdown(f->s, now, f->stop_delete, &f->act);
	f->in_pass = 1;
	apply(f, now, &f->act);
	f->in_pass = 0;
	kick(f);
}

int
fleet_stop(struct fleet *f, int delete_instances, fleet_stop_fn cb, void *arg)
{
	if (f->phase == FLEET_STOPPING || f->phase == FLEET_STOPPING_PLUGIN ||
	    f->phase == FLEET_STOPPED)
		return FL_ERR_AGAIN;
	f->stop_cb = cb;
	f->stop_arg = arg;
	if (f->phase == FLEET_NEW) {
		f->phase = FLEET_STOPPING_PLUGIN;
		if (plugin_host_stop(f->host, plugin_stopped, f) != 0)
			return FL_ERR_AGAIN;
		return 0;
	}
	f->phase = FLEET_STOPPING;
	f->stop_delete = delete_instances;
	if (f->in_pass)
		f->shutdown_pending = 1;	/* a hook: after the pass */
	else
		begin_shutdown(f);
	return 0;
}

void
fleet_free(struct fleet *f)
{
	if (f == NULL)
		return;
	/* Calls in flight are dropped without callbacks. */
	plugin_host_free(f->host);
	if (f->timer != NULL)
		event_free(f->timer);
	if (f->save_timer != NULL)
		event_free(f->save_timer);
	state_store_free(f->store);
	free(f->config_path);
	while (f->rchecks != NULL) {
		struct rcheck *r = f->rchecks;

		f->rchecks = r->next;
		conn_free(r->conn);
		free(r->id);
		free(r);
	}
	while (f->hbs != NULL) {
		struct hb *b = f->hbs;

		f->hbs = b->next;
		free(b->id);
		free(b);
	}
	while (f->cireqs != NULL) {
		struct cireq *q = f->cireqs;

		f->cireqs = q->next;
		free(q->id);
		free(q);
	}
	while (f->cache != NULL) {
		struct cicache *c = f->cache;

		f->cache = c->next;
		plugin_connect_info_free(c->ci);
		free(c);
	}
	while (f->acqs != NULL)
		acq_remove(f, f->acqs);
	while (f->pins != NULL) {
		struct pin *p = f->pins;

		f->pins = p->next;
		free(p->id);
		free(p);
	}
	strv_free(f->dec_inflight, f->ndec_inflight);
	strv_free(f->dec_queued, f->ndec_queued);
	scaler_actions_release(&f->act);
	scaler_free(f->s);
	if (f->static_key != NULL)
		freezero(f->static_key, f->static_key_len);
	free(f->plugin_json);
	free(f->plugin_path);
	free(f);
}

int
fleet_set_policies(struct fleet *f, const struct config_policy *p, size_t n,
    char *err, size_t errlen)
{
	int rc = scaler_set_policies(f->s, p, n, err, errlen);

	kick(f);
	return rc;
}

struct scaler *
fleet_scaler(struct fleet *f)
{
	return f->s;
}

struct plugin_host *
fleet_plugin_host(struct fleet *f)
{
	return f->host;
}

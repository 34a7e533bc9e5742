/*
 * A fleeting plugin, supervised (see plugin_host.h for the contract).
 *
 * Supervision state machine (enum plugin_host_state):
 *
 *            start()                 handshake, health, Init, Update ok
 *   NEW ------------> STARTING ---------------------------------> READY
 *    ^                 |  ^ |                                       |
 *    |   failure:      |  | | stop()                  process exits |
 *    |   exit, bad line| backoff timer                (crash)       |
 *    |   deadline,     v  | v                                       |
 *    |   Init error  BACKOFF <--------------------------------------+
 *    |                 |         (failures < max_failures)
 *    |                 | failures >= max_failures
 *    |                 v
 *    |              FAILED  (on_failed; start() tries again from zero)
 *    |
 *    |  stop() from any state:
 *    |    READY:    InstanceGroup.Shutdown (30 s), controller Shutdown (2 s),
 *    |              wait stop_grace (2 s) for the exit, SIGTERM the process
 *    |              group, wait kill_grace (5 s), SIGKILL the group;
 *    |    STARTING: SIGTERM at once, then SIGKILL after kill_grace;
 *    |    others:   no process.
 *    +-- STOPPED <-- STOPPING  once the process is reaped and its pipes
 *                              closed; the socket directory is removed;
 *                              then the stop callback (deferred).
 *
 * Failures and back-off: every failed start and every crash adds one to a
 * tally of consecutive failures; the delay before the next start is
 * backoff_base (1 s) doubled per failure, at most backoff_max (1 min).
 * A plugin that was READY for stable_ms (1 min) before crashing starts a
 * new tally (the crash counts as the first).  At max_failures (10) the
 * host gives up: FAILED, on_failed(reason).  With the defaults that is
 * about 4.3 minutes of a plugin that never comes up.
 *
 * Inside STARTING (enum start_phase): HANDSHAKE reads the first stdout
 * line (deadline handshake_timeout, at most HANDSHAKE_LINE_MAX bytes:
 * more without a newline is "garbage on stdout"), HEALTH asks
 * grpc.health.v1 Check("plugin"), INIT sends Init, SYNC sends an Update;
 * READY follows with on_ready (first time) or on_restart (after a crash)
 * carrying that Update's instances, so the owner reconciles before any of
 * its calls can reach the new process (calls fail with FL_ERR_AGAIN until
 * then).  A failure in any phase kills the process group (SIGKILL); the
 * reap then moves the host to BACKOFF or FAILED.  The process's end is
 * always learnt from the reap (child.h), never from a closed pipe.
 *
 * The process: own process group, PDEATHSIG=SIGKILL, environment = ours +
 * the cookie, PLUGIN_PROTOCOL_VERSIONS and PLUGIN_UNIX_SOCKET_DIR (a 0700
 * directory of ours).  Its stderr lines are hclog-parsed and re-logged
 * with subsystem=fleeting-plugin plugin=NAME; stdout lines after the
 * handshake are re-logged at info with stream=stdout; both rate-limited
 * together.  After the leader is reaped the rest of its group is killed
 * (no orphans), the pipes are drained and closed, stale sockets removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "child.h"
#include "err.h"
#include "handshake.h"
#include "hclog.h"
#include "log.h"
#include "plugin_host.h"
#include "proto/controller.pb-c.h"
#include "proto/controller.rpc.h"
#include "proto/fleeting.pb-c.h"
#include "proto/fleeting.rpc.h"
#include "proto/health.pb-c.h"
#include "proto/health.rpc.h"
#include "spawn.h"
#include "xmalloc.h"

/* The generated names are long; these are the ones used here. */
typedef Flotilla__Fleeting__V1__ConnectorConfig pb_connector;
typedef Flotilla__Fleeting__V1__InitRequest pb_init_req;
typedef Flotilla__Fleeting__V1__InitResponse pb_init_resp;
typedef Flotilla__Fleeting__V1__UpdateRequest pb_update_req;
typedef Flotilla__Fleeting__V1__UpdateResponse pb_update_resp;
typedef Flotilla__Fleeting__V1__IncreaseRequest pb_increase_req;
typedef Flotilla__Fleeting__V1__IncreaseResponse pb_increase_resp;
typedef Flotilla__Fleeting__V1__DecreaseRequest pb_decrease_req;
typedef Flotilla__Fleeting__V1__DecreaseResponse pb_decrease_resp;
typedef Flotilla__Fleeting__V1__ConnectInfoRequest pb_ci_req;
typedef Flotilla__Fleeting__V1__ConnectInfoResponse pb_ci_resp;
typedef Flotilla__Fleeting__V1__HeartbeatRequest pb_hb_req;
typedef Flotilla__Fleeting__V1__ShutdownRequest pb_shutdown_req;
typedef Grpc__Health__V1__HealthCheckRequest pb_health_req;
typedef Grpc__Health__V1__HealthCheckResponse pb_health_resp;

#define PLUGIN_SUBSYSTEM "fleeting-plugin"
#define DRAIN_MAX (1024 * 1024)	/* bytes read from a pipe after the exit */

enum start_phase {
	SP_NONE,
	SP_HANDSHAKE,
	SP_HEALTH,
	SP_INIT,
	SP_SYNC,
	SP_DONE,
	SP_FAILED	/* killed; waiting for the reap */
};

enum stop_phase {
	ST_NONE,
	ST_SHUTDOWN,	/* InstanceGroup.Shutdown in flight */
	ST_CONTROLLER,	/* controller Shutdown in flight */
	ST_WAIT,	/* waiting stop_grace for the exit */
	ST_TERM,	/* SIGTERM sent; waiting kill_grace */
	ST_KILL		/* SIGKILL sent */
};

enum call_kind {
	CALL_UPDATE,
	CALL_INCREASE,
	CALL_DECREASE,
	CALL_CONNECT_INFO,
	CALL_HEARTBEAT,
	CALL_SHUTDOWN
};

static const char *const call_names[] = {
	"Update", "Increase", "Decrease", "ConnectInfo", "Heartbeat", "Shutdown"
};

/* An owner's call in flight. */
struct pcall {
	struct plugin_host *h;
	enum call_kind kind;
	struct rpc_pending *p;
	union {
		plugin_update_fn update;
		plugin_increase_fn increase;
		plugin_decrease_fn decrease;
		plugin_connect_info_fn connect_info;
		plugin_done_fn done;
	} cb;
	void *arg;
	int timeout_ms;
	struct pcall *prev, *next;
};

struct plugin_host {
	struct event_base *base;
	char *path;
	char *name;
	char *config_json;
	/* Init's settings, copied out of the config. */
	char *c_os, *c_arch, *c_protocol, *c_username, *c_password;
	uint8_t *c_key;
	size_t c_key_len;
	int64_t c_port, c_keepalive_ns, c_timeout_ns;
	int c_static, c_external;

	char *sock_parent;
	int handshake_timeout_ms, init_timeout_ms, call_timeout_ms;
	int backoff_base_ms, backoff_max_ms, stable_ms, max_failures;
	int stop_grace_ms, kill_grace_ms;
	size_t max_msg;
	struct plugin_host_cbs cbs;
	void *cb_arg;

	enum plugin_host_state state;
	char *sockdir;
	char last_error[1024];
	unsigned failures;
	unsigned restarts;
	int ever_ready;
	int64_t ready_at;

	/* The process of this run; pid -1 when there is none. */
	pid_t pid;
	int out_fd, err_fd;
	struct event *out_ev, *err_ev;
	struct hclog_linebuf out_lb, err_lb;
	struct hclog_state hcst;
	struct hclog_ratelimit rl;
	char hs[HANDSHAKE_LINE_MAX + 1];
	size_t hslen;

	enum start_phase sp;
	int64_t phase_t0;
	char *start_error;
	struct rpc_client *cl;
	struct rpc_pending *ipend;	/* our own call in flight */
	struct plugin_info info;
	int have_info;

	enum stop_phase stp;
	int stop_requested;
	plugin_stop_fn stop_cb;
	void *stop_arg;
	struct plugin_stop_result stop_res;

	struct event *hs_timer, *backoff_timer, *stop_timer, *defer_ev;
	struct pcall *calls;
};

static void after_failure(struct plugin_host *h, const char *reason,
    int was_ready);
static void do_spawn_retry(struct plugin_host *h);

/* ----------------------------------------------------------- helpers */

static int64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timeval
ms_tv(int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	return tv;
}

static void
timer_in(struct event *ev, int ms)
{
	struct timeval tv = ms_tv(ms);

	evtimer_add(ev, &tv);
}

/* "1m0s", "2s", "250ms": for messages. */
static const char *
ms_str(int ms, char *buf, size_t len)
{
	if (ms % 1000 != 0 || ms == 0)
		snprintf(buf, len, "%dms", ms);
	else if (ms >= 60000 && ms % 60000 == 0)
		snprintf(buf, len, "%dm0s", ms / 60000);
	else if (ms >= 60000)
		snprintf(buf, len, "%dm%ds", ms / 60000, ms % 60000 / 1000);
	else
		snprintf(buf, len, "%ds", ms / 1000);
	return buf;
}

/* Log a line of ours with plugin=NAME (and up to 4 more fields). */
static void __attribute__((format(printf, 5, 6)))
hlog(struct plugin_host *h, enum log_level lvl, const struct log_field *extra,
    size_t nextra, const char *fmt, ...)
{
	struct log_field f[5];
	va_list ap;
	char *msg;
	size_t n = 0;

	f[n].key = "plugin";
	f[n++].value = h->name;
	for (size_t i = 0; i < nextra && n < 5; i++)
		f[n++] = extra[i];
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	log_emit(lvl, NULL, f, n, "%s", msg != NULL ? msg : fmt);
	free(msg);
}

static char *
dup_or_empty(const char *s)
{
	return xstrdup(s != NULL ? s : "");
}

/* snprintf that truncates silently (messages may be cut). */
static void __attribute__((format(printf, 3, 4)))
msgf(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(dst, len, fmt, ap);
	va_end(ap);
}

static void
set_state(struct plugin_host *h, enum plugin_host_state to)
{
	enum plugin_host_state from = h->state;

	if (from == to)
		return;
	h->state = to;
	if (h->cbs.on_state != NULL)
		h->cbs.on_state(h->cb_arg, h, from, to);
}

const char *
plugin_host_state_name(enum plugin_host_state s)
{
	static const char *const names[] = {
		"new", "starting", "ready", "backoff", "stopping", "stopped",
		"failed"
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ?
	    names[s] : "?";
}

const char *
plugin_phase_name(enum plugin_phase p)
{
	static const char *const names[] = {
		"handshake", "health", "init", "update"
	};

	return (unsigned)p < sizeof(names) / sizeof(names[0]) ?
	    names[p] : "?";
}

const char *
plugin_istate_name(enum plugin_istate s)
{
	static const char *const names[] = {
		"?", "creating", "running", "deleting", "deleted", "timeout"
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ?
	    names[s] : "?";
}

static int
phase_of(enum start_phase sp, enum plugin_phase *out)
{
	switch (sp) {
	case SP_HANDSHAKE:
		*out = PLUGIN_PHASE_HANDSHAKE;
		return 0;
	case SP_HEALTH:
		*out = PLUGIN_PHASE_HEALTH;
		return 0;
	case SP_INIT:
		*out = PLUGIN_PHASE_INIT;
		return 0;
	case SP_SYNC:
		*out = PLUGIN_PHASE_SYNC;
		return 0;
	default:
		return -1;
	}
}

/* The current start phase ended (error NULL: well); the next begins. */
static void
phase_done(struct plugin_host *h, const char *error)
{
	enum plugin_phase p;
	int64_t now = mono_ns();

	if (h->cbs.on_phase != NULL && phase_of(h->sp, &p) == 0)
		h->cbs.on_phase(h->cb_arg, h, p, now - h->phase_t0, error);
	h->phase_t0 = now;
}

static void
info_release(struct plugin_info *in)
{
	free(in->id);
	free(in->version);
	free(in->build_info);
	for (size_t i = 0; i < in->ncapabilities; i++)
		free(in->capabilities[i]);
	free(in->capabilities);
	memset(in, 0, sizeof(*in));
}

static void
instances_release(struct plugin_instances *in)
{
	for (size_t i = 0; i < in->n; i++) {
		free(in->v[i].id);
		free(in->v[i].cause);
	}
	free(in->v);
	in->v = NULL;
	in->n = 0;
}

/* A printable excerpt of peer bytes for an error message. */
static void
excerpt(char *out, size_t outlen, const char *p, size_t n)
{
	size_t i, j = 0;

	for (i = 0; i < n && j + 5 < outlen; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			out[j++] = (char)c;
		} else {
			snprintf(out + j, outlen - j, "\\x%02x", c);
			j += 4;
		}
	}
	if (i < n && j + 4 < outlen) {
		memcpy(out + j, "...", 3);
		j += 3;
	}
	out[j] = '\0';
}

/* ----------------------------------------------------------- statuses */

static void __attribute__((format(printf, 4, 5)))
status_local(struct plugin_status *ps, int rc, int code, const char *fmt, ...)
{
	va_list ap;

	ps->rc = rc;
	ps->code = code;
	va_start(ap, fmt);
	(void)vsnprintf(ps->msg, sizeof(ps->msg), fmt, ap);
	va_end(ap);
}

/* A gRPC status as the owner sees it, with a message that says what
 * happened in words. */
static void
status_from_rpc(struct plugin_host *h, struct plugin_status *ps,
    const struct rpc_status *st, const char *what, int timeout_ms)
{
	char d[32];

	ps->code = st->code;
	ps->rc = rpc_code_to_err(st->code);
	switch (st->code) {
	case RPC_OK:
		ps->msg[0] = '\0';
		break;
	case RPC_DEADLINE_EXCEEDED:
		msgf(ps->msg, sizeof(ps->msg), "%s: no answer within %s "
		    "(deadline exceeded)", what, ms_str(timeout_ms, d,
		    sizeof(d)));
		break;
	case RPC_RESOURCE_EXHAUSTED:
		if (strstr(st->message, "larger than") != NULL ||
		    strncmp(st->message, "response:", 9) == 0)
			msgf(ps->msg, sizeof(ps->msg), "%s: the plugin's "
			    "answer is over the %zu-byte message limit (%s)",
			    what, h->max_msg, st->message);
		else
			msgf(ps->msg, sizeof(ps->msg), "%s: %s: %s", what,
			    rpc_code_name(st->code), st->message);
		break;
	case RPC_UNAVAILABLE:
		msgf(ps->msg, sizeof(ps->msg), "%s: plugin unavailable: "
		    "%s", what, st->message);
		break;
	default:
		msgf(ps->msg, sizeof(ps->msg), "%s: %s: %s", what,
		    rpc_code_name(st->code), st->message);
		break;
	}
}

/* ----------------------------------------------------------- decoding */

static int
decode_instances(const uint8_t *buf, size_t len, struct plugin_instances *out)
{
	pb_update_resp *r;
	size_t i, n = 0;

	out->v = NULL;
	out->n = 0;
	r = flotilla__fleeting__v1__update_response__unpack(NULL, len, buf);
	if (r == NULL)
		return FL_ERR_PROTO;
	out->v = xcalloc(r->n_instances ? r->n_instances : 1,
	    sizeof(*out->v));
	for (i = 0; i < r->n_instances; i++) {
		const Flotilla__Fleeting__V1__Instance *in = r->instances[i];

		if (in->id == NULL || in->id[0] == '\0' ||
		    (int)in->state < PLUGIN_I_CREATING ||
		    (int)in->state > PLUGIN_I_TIMEOUT)
			continue;	/* fleeting.proto: ignored */
		out->v[n].id = xstrdup(in->id);
		out->v[n].state = (enum plugin_istate)in->state;
		out->v[n].cause = dup_or_empty(in->cause);
		n++;
	}
	out->n = n;
	flotilla__fleeting__v1__update_response__free_unpacked(r, NULL);
	return 0;
}

static int
decode_info(const uint8_t *buf, size_t len, struct plugin_info *out)
{
	pb_init_resp *r;
	const Flotilla__Fleeting__V1__ProviderInfo *pi;

	r = flotilla__fleeting__v1__init_response__unpack(NULL, len, buf);
	if (r == NULL)
		return FL_ERR_PROTO;
	pi = r->provider_info;
	memset(out, 0, sizeof(*out));
	if (pi != NULL) {
		out->id = dup_or_empty(pi->id);
		out->max_size = pi->max_size;
		out->version = dup_or_empty(pi->version);
		out->build_info = dup_or_empty(pi->build_info);
		out->ncapabilities = pi->n_capabilities;
		out->capabilities = xcalloc(pi->n_capabilities + 1,
		    sizeof(char *));
		for (size_t i = 0; i < pi->n_capabilities; i++)
			out->capabilities[i] = dup_or_empty(pi->capabilities[i]);
	}
	flotilla__fleeting__v1__init_response__free_unpacked(r, NULL);
	return pi != NULL ? 0 : FL_ERR_PROTO;
}

static char *
dup_bytes(const uint8_t *p, size_t n)
{
	char *s = xmalloc(n + 1);

	if (n > 0)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

struct plugin_connect_info *
plugin_connect_info_dup(const struct plugin_connect_info *ci)
{
	struct plugin_connect_info *c;

	if (ci == NULL)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	*c = *ci;
	c->id = dup_or_empty(ci->id);
	c->os = dup_or_empty(ci->os);
	c->arch = dup_or_empty(ci->arch);
	c->protocol = dup_or_empty(ci->protocol);
	c->username = dup_or_empty(ci->username);
	c->password = dup_or_empty(ci->password);
	c->key = (uint8_t *)dup_bytes(ci->key, ci->key_len);
	c->external_addr = dup_or_empty(ci->external_addr);
	c->internal_addr = dup_or_empty(ci->internal_addr);
	return c;
}

static void
connect_info_release(struct plugin_connect_info *c)
{
	free(c->id);
	free(c->os);
	free(c->arch);
	free(c->protocol);
	free(c->username);
	freezero_str(c->password);
	if (c->key != NULL)
		freezero(c->key, c->key_len + 1);
	free(c->external_addr);
	free(c->internal_addr);
	memset(c, 0, sizeof(*c));
}

void
plugin_connect_info_free(struct plugin_connect_info *ci)
{
	if (ci == NULL)
		return;
	connect_info_release(ci);
	free(ci);
}

static int
decode_connect_info(const uint8_t *buf, size_t len,
    struct plugin_connect_info *c)
{
	pb_ci_resp *r;
	const pb_connector *cc;

	memset(c, 0, sizeof(*c));
	r = flotilla__fleeting__v1__connect_info_response__unpack(NULL, len,
	    buf);
	if (r == NULL)
		return FL_ERR_PROTO;
	cc = r->connector;
	c->id = dup_or_empty(r->id);
	c->external_addr = dup_or_empty(r->external_addr);
	c->internal_addr = dup_or_empty(r->internal_addr);
	c->expires_unix_ns = r->expires_unix_ns;
	c->os = dup_or_empty(cc != NULL ? cc->os : NULL);
	c->arch = dup_or_empty(cc != NULL ? cc->arch : NULL);
	c->protocol = dup_or_empty(cc != NULL ? cc->protocol : NULL);
	c->username = dup_or_empty(cc != NULL ? cc->username : NULL);
	c->password = dup_or_empty(cc != NULL ? cc->password : NULL);
	if (cc != NULL) {
		c->port = cc->protocol_port;
		c->key = (uint8_t *)dup_bytes(cc->key.data, cc->key.len);
		c->key_len = cc->key.len;
		c->use_static_credentials = cc->use_static_credentials;
		c->keepalive_ns = cc->keepalive_ns;
		c->timeout_ns = cc->timeout_ns;
	} else {
		c->key = (uint8_t *)dup_bytes(NULL, 0);
	}
	/* The answer held secrets: wipe protobuf-c's copies too. */
	if (cc != NULL && cc->password != NULL)
		explicit_bzero(cc->password, strlen(cc->password));
	if (cc != NULL && cc->key.data != NULL)
		explicit_bzero(cc->key.data, cc->key.len);
	flotilla__fleeting__v1__connect_info_response__free_unpacked(r, NULL);
	return 0;
}

/* ----------------------------------------------------------- output */

/* One line of plugin output into our log. */
static void
relog(struct plugin_host *h, int is_stdout, const char *line, size_t len)
{
	struct hclog_entry e;
	struct log_field *f;
	uint64_t dropped = 0;
	size_t n;

	if (!hclog_ratelimit_take(&h->rl, mono_ns(), &dropped))
		return;
	if (dropped > 0) {
		struct log_field df[2] = {
			{ "subsystem", PLUGIN_SUBSYSTEM }, { "plugin", h->name }
		};

		log_emit(LOG_WARN, NULL, df, 2, "%llu lines of plugin output "
		    "dropped (more than %d a second)",
		    (unsigned long long)dropped, PLUGIN_LOG_RATE);
	}
	if (is_stdout) {
		struct log_field sf[3] = {
			{ "subsystem", PLUGIN_SUBSYSTEM }, { "plugin", h->name },
			{ "stream", "stdout" }
		};

		log_emit(LOG_INFO, NULL, sf, 3, "%.*s", (int)len, line);
		return;
	}
	hclog_parse(&h->hcst, line, len, &e);
	n = e.nfields;
	f = xcalloc(n + 2, sizeof(*f));
	if (n > 0)
		memcpy(f, e.fields, n * sizeof(*f));
	/* Ours last: duplicates resolve to the last, so a plugin cannot
	 * pass itself off as another. */
	f[n].key = "subsystem";
	f[n++].value = PLUGIN_SUBSYSTEM;
	f[n].key = "plugin";
	f[n++].value = h->name;
	log_emit(e.level, NULL, f, n, "%s", e.message);
	free(f);
	hclog_entry_release(&e);
}

static void
out_line(void *arg, const char *line, size_t len)
{
	relog(arg, 1, line, len);
}

static void
err_line(void *arg, const char *line, size_t len)
{
	relog(arg, 0, line, len);
}

static void start_fail(struct plugin_host *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void handshake_line(struct plugin_host *h, const char *line,
    size_t len);

/* Bytes from the plugin's stdout. */
static void
out_data(struct plugin_host *h, const char *p, size_t n)
{
	if (h->sp == SP_HANDSHAKE) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl != NULL ? (size_t)(nl - p) + 1 : n;

		if (h->hslen + take > HANDSHAKE_LINE_MAX) {
			char ex[64];

			excerpt(ex, sizeof(ex), h->hslen > 0 ? h->hs : p,
			    h->hslen > 0 ? h->hslen : n);
			start_fail(h, "garbage on stdout: no handshake line in "
			    "the first %d bytes (starts \"%s\")",
			    HANDSHAKE_LINE_MAX, ex);
			return;
		}
		memcpy(h->hs + h->hslen, p, take);
		h->hslen += take;
		if (nl == NULL)
			return;
		h->hs[h->hslen] = '\0';
		handshake_line(h, h->hs, h->hslen);
		p += take;
		n -= take;
	}
	/* Before a good handshake, or after a failed one: not output. */
	if (h->sp == SP_HANDSHAKE || h->sp == SP_FAILED || n == 0)
		return;
	hclog_linebuf_feed(&h->out_lb, p, n, out_line, h);
}

static void
close_stream(struct plugin_host *h, int is_stdout)
{
	int *fd = is_stdout ? &h->out_fd : &h->err_fd;
	struct event **ev = is_stdout ? &h->out_ev : &h->err_ev;

	if (*ev != NULL)
		event_free(*ev);
	*ev = NULL;
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	if (is_stdout) {
		if (h->sp != SP_HANDSHAKE && h->sp != SP_FAILED)
			hclog_linebuf_flush(&h->out_lb, out_line, h);
		h->out_lb.len = 0;
	} else {
		hclog_linebuf_flush(&h->err_lb, err_line, h);
	}
}

/*
 * Read what a pipe has.  limit bounds the bytes read in this call (so a
 * flooding plugin cannot hold the loop).  Returns 1 at EOF (the stream is
 * closed), else 0.
 */
static int
read_stream(struct plugin_host *h, int is_stdout, size_t limit)
{
	char buf[16384];
	size_t total = 0;
	ssize_t n;

	while (total < limit) {
		int fd = is_stdout ? h->out_fd : h->err_fd;

		if (fd < 0)
			return 1;
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			close_stream(h, is_stdout);
			return 1;
		}
		total += (size_t)n;
		if (is_stdout)
			out_data(h, buf, (size_t)n);
		else
			hclog_linebuf_feed(&h->err_lb, buf, (size_t)n,
			    err_line, h);
	}
	return 0;
}

static void
on_stdout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	/* The end of the process is learnt from the reap, not from EOF. */
	read_stream(arg, 1, 256 * 1024);
}

static void
on_stderr(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	read_stream(arg, 0, 256 * 1024);
}

/* ----------------------------------------------------------- process */

/* Remove the sockets a finished plugin left in our directory. */
static void
clean_sockdir(struct plugin_host *h)
{
	struct dirent *de;
	DIR *d;
	int dfd;

	if (h->sockdir == NULL || (d = opendir(h->sockdir)) == NULL)
		return;
	dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		(void)unlinkat(dfd, de->d_name, 0);
	}
	closedir(d);
}

static void
remove_sockdir(struct plugin_host *h)
{
	if (h->sockdir == NULL)
		return;
	clean_sockdir(h);
	if (rmdir(h->sockdir) != 0 && errno != ENOENT)
		hlog(h, LOG_WARN, NULL, 0, "cannot remove %s: %s", h->sockdir,
		    strerror(errno));
	free(h->sockdir);
	h->sockdir = NULL;
}

static int
make_sockdir(struct plugin_host *h, char *err, size_t errlen)
{
	char *tmpl;

	if (h->sockdir != NULL)
		return 0;
	tmpl = xasprintf("%s/flotilla-plugin-XXXXXX", h->sock_parent);
	/* The plugin adds "/plugin<digits>.sock"-like names: keep room. */
	if (strlen(tmpl) > 80) {
		snprintf(err, errlen, "socket directory %s: path too long for "
		    "a unix socket (set TMPDIR to a shorter directory)", tmpl);
		free(tmpl);
		return FL_ERR_RANGE;
	}
	if (mkdtemp(tmpl) == NULL) {
		snprintf(err, errlen, "cannot create a socket directory in "
		    "%s: %s", h->sock_parent, strerror(errno));
		free(tmpl);
		return FL_ERR_IO;
	}
	h->sockdir = tmpl;
	return 0;
}

/* Signal the process group (and the leader, should it have left it). */
static void
signal_group(struct plugin_host *h, int sig)
{
	if (h->pid <= 0)
		return;
	(void)kill(-h->pid, sig);
	(void)kill(h->pid, sig);
}

/*
 * The process is gone (reaped): drop everything that belonged to it.
 * Returns the owner's calls in flight, unlinked, for the caller to fail
 * once the state is updated.
 */
static struct pcall *
teardown(struct plugin_host *h)
{
	struct pcall *calls = h->calls;

	h->calls = NULL;
	if (h->cl != NULL)
		rpc_client_free(h->cl);	/* cancels every pending call */
	h->cl = NULL;
	h->ipend = NULL;
	/* Whatever is still in the pipes, then close them.  The process is
	 * gone: a handshake line now would be moot. */
	if (h->sp == SP_HANDSHAKE)
		h->sp = SP_FAILED;
	if (h->out_fd >= 0 && !read_stream(h, 1, DRAIN_MAX))
		close_stream(h, 1);
	if (h->err_fd >= 0 && !read_stream(h, 0, DRAIN_MAX))
		close_stream(h, 0);
	hclog_linebuf_release(&h->out_lb);
	hclog_linebuf_release(&h->err_lb);
	if (h->rl.dropped > 0) {
		struct log_field df[2] = {
			{ "subsystem", PLUGIN_SUBSYSTEM }, { "plugin", h->name }
		};

		log_emit(LOG_WARN, NULL, df, 2, "%llu lines of plugin output "
		    "dropped (more than %d a second)",
		    (unsigned long long)h->rl.dropped, PLUGIN_LOG_RATE);
		h->rl.dropped = 0;
	}
	if (h->hs_timer != NULL)
		evtimer_del(h->hs_timer);
	if (h->stop_timer != NULL)
		evtimer_del(h->stop_timer);
	clean_sockdir(h);
	h->pid = -1;
	h->sp = SP_NONE;
	h->stp = ST_NONE;
	free(h->start_error);
	h->start_error = NULL;
	return calls;
}

static void fail_calls(struct pcall *calls, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void on_child_exit(void *arg, pid_t pid, int status);
static void on_handshake_timeout(evutil_socket_t fd, short what, void *arg);

/* Start a process.  0, or an error with a message (nothing running). */
static int
spawn_plugin(struct plugin_host *h, char *err, size_t errlen)
{
	struct spawn_opts so;
	struct spawn_child sc;
	char *set[3], *argv[2], **env;
	char pidbuf[16];
	int rc;

	if ((rc = make_sockdir(h, err, errlen)) != 0)
		return rc;
	clean_sockdir(h);
	set[0] = xasprintf("%s=%s", PLUGIN_COOKIE_KEY, PLUGIN_COOKIE_VALUE);
	set[1] = xasprintf("%s=%d", PLUGIN_VERSIONS_ENV, PLUGIN_APP_VERSION);
	set[2] = xasprintf("%s=%s", PLUGIN_SOCKET_DIR_ENV, h->sockdir);
	env = spawn_env_new(set, 3);
	for (int i = 0; i < 3; i++)
		free(set[i]);
	argv[0] = h->path;
	argv[1] = NULL;
	memset(&so, 0, sizeof(so));
	so.path = h->path;
	so.argv = argv;
	so.envp = env;
	so.new_pgrp = 1;
	so.pdeathsig = SIGKILL;
	rc = spawn_start(&so, &sc, err, errlen);
	spawn_env_free(env);
	if (rc != 0)
		return rc;
	if (child_watch(sc.pid, on_child_exit, h) != 0) {
		/* Cannot happen (fresh pid, initialised registry). */
		kill(sc.pid, SIGKILL);
		while (waitpid(sc.pid, NULL, 0) < 0 && errno == EINTR)
			;
		close(sc.out_fd);
		close(sc.err_fd);
		snprintf(err, errlen, "cannot watch pid %ld", (long)sc.pid);
		return FL_ERR_INTERNAL;
	}
	h->pid = sc.pid;
	h->out_fd = sc.out_fd;
	h->err_fd = sc.err_fd;
	h->out_ev = event_new(h->base, h->out_fd, EV_READ | EV_PERSIST,
	    on_stdout, h);
	h->err_ev = event_new(h->base, h->err_fd, EV_READ | EV_PERSIST,
	    on_stderr, h);
	event_add(h->out_ev, NULL);
	event_add(h->err_ev, NULL);
	hclog_linebuf_init(&h->out_lb, HCLOG_LINE_MAX);
	hclog_linebuf_init(&h->err_lb, HCLOG_LINE_MAX);
	memset(&h->hcst, 0, sizeof(h->hcst));
	hclog_ratelimit_init(&h->rl, PLUGIN_LOG_RATE, PLUGIN_LOG_BURST);
	h->hslen = 0;
	h->sp = SP_HANDSHAKE;
	h->stp = ST_NONE;
	h->phase_t0 = mono_ns();
	timer_in(h->hs_timer, h->handshake_timeout_ms);
	snprintf(pidbuf, sizeof(pidbuf), "%ld", (long)h->pid);
	{
		struct log_field f[2] = { { "pid", pidbuf },
			{ "path", h->path } };

		hlog(h, LOG_INFO, f, 2, "plugin started");
	}
	set_state(h, PLUGIN_HOST_STARTING);
	return 0;
}

/*
 * A start failed (bad handshake, deadline, Init error...): note why, kill
 * the process group, and wait for the reap to move on.  The first reason
 * wins.
 */
static void
start_fail(struct plugin_host *h, const char *fmt, ...)
{
	char reason[sizeof(h->last_error)];
	va_list ap;

	if (h->sp == SP_FAILED || h->start_error != NULL)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	phase_done(h, reason);
	h->start_error = xstrdup(reason);
	h->sp = SP_FAILED;
	evtimer_del(h->hs_timer);
	{
		struct log_field f[1] = { { "reason", reason } };

		hlog(h, LOG_ERROR, f, 1, "plugin start failed");
	}
	if (h->cl != NULL)
		rpc_client_free(h->cl);
	h->cl = NULL;
	h->ipend = NULL;
	signal_group(h, SIGKILL);
}

/* ----------------------------------------------------------- start-up */

static void on_health_done(void *arg, const struct rpc_status *st,
    const uint8_t *resp, size_t len);
static void on_init_done(void *arg, const struct rpc_status *st,
    const uint8_t *resp, size_t len);
static void on_sync_done(void *arg, const struct rpc_status *st,
    const uint8_t *resp, size_t len);

static void
handshake_line(struct plugin_host *h, const char *line, size_t len)
{
	struct handshake hs;
	char err[256], ex[96], versions[16];
	uint8_t *buf;
	size_t n;
	pb_health_req req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;

	if (h->state != PLUGIN_HOST_STARTING) {
		h->sp = SP_FAILED;	/* being stopped: do not connect */
		return;
	}
	snprintf(versions, sizeof(versions), "%d", PLUGIN_APP_VERSION);
	if (handshake_parse(line, len, versions, &hs, err, sizeof(err)) != 0) {
		excerpt(ex, sizeof(ex), line, len > 0 && line[len - 1] == '\n' ?
		    len - 1 : len);
		start_fail(h, "handshake: %s (line \"%s\")", err, ex);
		return;
	}
	evtimer_del(h->hs_timer);
	phase_done(h, NULL);
	h->cl = rpc_client_new(hs.address, h->max_msg, h->base, err,
	    sizeof(err));
	if (h->cl == NULL) {
		h->sp = SP_HEALTH;
		start_fail(h, "cannot connect to %s: %s", hs.address, err);
		return;
	}
	h->sp = SP_HEALTH;
	req.service = (char *)"plugin";
	n = grpc__health__v1__health_check_request__get_packed_size(&req);
	buf = xmalloc(n + 1);
	grpc__health__v1__health_check_request__pack(&req, buf);
	h->ipend = rpc_call_async(h->cl, HEALTH_RPC_CHECK, buf, n,
	    h->call_timeout_ms > 0 ? h->call_timeout_ms :
	    PLUGIN_DEADLINE_HEALTH_MS, on_health_done, h);
	free(buf);
}

static void
on_handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct plugin_host *h = arg;
	char d[32];

	(void)fd;
	(void)what;
	if (h->sp != SP_HANDSHAKE)
		return;
	start_fail(h, "handshake: deadline exceeded: no handshake line on "
	    "stdout within %s", ms_str(h->handshake_timeout_ms, d, sizeof(d)));
}

static void
send_init(struct plugin_host *h)
{
	pb_init_req req = FLOTILLA__FLEETING__V1__INIT_REQUEST__INIT;
	pb_connector cc = FLOTILLA__FLEETING__V1__CONNECTOR_CONFIG__INIT;
	uint8_t *buf;
	size_t n;

	req.plugin_config.data = (uint8_t *)h->config_json;
	req.plugin_config.len = strlen(h->config_json);
	cc.os = h->c_os;
	cc.arch = h->c_arch;
	cc.protocol = h->c_protocol;
	cc.protocol_port = (int32_t)h->c_port;
	cc.username = h->c_username;
	cc.password = h->c_password;
	cc.key.data = h->c_key;
	cc.key.len = h->c_key_len;
	cc.use_static_credentials = h->c_static;
	cc.keepalive_ns = h->c_keepalive_ns;
	cc.timeout_ns = h->c_timeout_ns;
	cc.use_external_addr = h->c_external;
	req.settings = &cc;
	n = flotilla__fleeting__v1__init_request__get_packed_size(&req);
	buf = xmalloc(n + 1);
	flotilla__fleeting__v1__init_request__pack(&req, buf);
	h->sp = SP_INIT;
	h->ipend = rpc_call_async(h->cl, FLEETING_RPC_INIT, buf, n,
	    h->init_timeout_ms, on_init_done, h);
	freezero(buf, n + 1);	/* it carries the key and password */
}

static void
on_health_done(void *arg, const struct rpc_status *st, const uint8_t *resp,
    size_t len)
{
	struct plugin_host *h = arg;
	struct plugin_status ps;
	pb_health_resp *r;
	int serving;

	h->ipend = NULL;
	if (h->state != PLUGIN_HOST_STARTING || h->sp != SP_HEALTH)
		return;
	if (st->code != RPC_OK) {
		status_from_rpc(h, &ps, st, "health check",
		    PLUGIN_DEADLINE_HEALTH_MS);
		start_fail(h, "%s", ps.msg);
		return;
	}
	r = grpc__health__v1__health_check_response__unpack(NULL, len, resp);
	if (r == NULL) {
		start_fail(h, "health check: malformed answer");
		return;
	}
	serving = r->status ==
	    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	grpc__health__v1__health_check_response__free_unpacked(r, NULL);
	if (!serving) {
		start_fail(h, "health check: the plugin is not serving");
		return;
	}
	phase_done(h, NULL);
	send_init(h);
}

static void
send_sync_update(struct plugin_host *h)
{
	h->sp = SP_SYNC;
	/* UpdateRequest is empty: zero bytes on the wire. */
	h->ipend = rpc_call_async(h->cl, FLEETING_RPC_UPDATE, "", 0,
	    h->call_timeout_ms > 0 ? h->call_timeout_ms :
	    PLUGIN_DEADLINE_UPDATE_MS, on_sync_done, h);
}

static void
on_init_done(void *arg, const struct rpc_status *st, const uint8_t *resp,
    size_t len)
{
	struct plugin_host *h = arg;
	struct plugin_status ps;
	struct plugin_info info;

	h->ipend = NULL;
	if (h->state != PLUGIN_HOST_STARTING || h->sp != SP_INIT)
		return;
	if (st->code == RPC_INVALID_ARGUMENT) {
		start_fail(h, "Init: the plugin rejected its configuration: %s",
		    st->message);
		return;
	}
	if (st->code != RPC_OK) {
		status_from_rpc(h, &ps, st, "Init", h->init_timeout_ms);
		start_fail(h, "%s", ps.msg);
		return;
	}
	if (decode_info(resp, len, &info) != 0) {
		info_release(&info);
		start_fail(h, "Init: malformed InitResponse (no provider_info)");
		return;
	}
	info_release(&h->info);
	h->info = info;
	h->have_info = 1;
	{
		char max[24];
		struct log_field f[3] = { { "id", info.id },
			{ "version", info.version }, { "max_size", max } };

		snprintf(max, sizeof(max), "%lld", (long long)info.max_size);
		hlog(h, LOG_INFO, f, 3, "plugin initialised");
	}
	phase_done(h, NULL);
	send_sync_update(h);
}

static void
on_sync_done(void *arg, const struct rpc_status *st, const uint8_t *resp,
    size_t len)
{
	struct plugin_host *h = arg;
	struct plugin_instances inst = { NULL, 0 };
	struct plugin_status ps;
	int restarted, ok;

	h->ipend = NULL;
	if (h->state != PLUGIN_HOST_STARTING || h->sp != SP_SYNC)
		return;
	status_from_rpc(h, &ps, st, "Update", h->call_timeout_ms > 0 ?
	    h->call_timeout_ms : PLUGIN_DEADLINE_UPDATE_MS);
	ok = st->code == RPC_OK;
	if (ok && decode_instances(resp, len, &inst) != 0) {
		status_local(&ps, FL_ERR_PROTO, RPC_INTERNAL,
		    "Update: malformed UpdateResponse from the plugin");
		ok = 0;
	}
	/* Not a reason to restart: the cloud may be briefly unreachable. */
	phase_done(h, ok ? NULL : ps.msg);
	if (!ok)
		hlog(h, LOG_WARN, NULL, 0, "first Update failed: %s", ps.msg);
	h->sp = SP_DONE;
	restarted = h->ever_ready;
	h->ever_ready = 1;
	h->ready_at = mono_ns();
	if (restarted)
		h->restarts++;
	hlog(h, LOG_INFO, NULL, 0, restarted ? "plugin ready again "
	    "(restarted)" : "plugin ready");
	set_state(h, PLUGIN_HOST_READY);
	if (restarted && h->cbs.on_restart != NULL)
		h->cbs.on_restart(h->cb_arg, h, &h->info, &ps,
		    ok ? &inst : NULL);
	else if (!restarted && h->cbs.on_ready != NULL)
		h->cbs.on_ready(h->cb_arg, h, &h->info, &ps, ok ? &inst : NULL);
	instances_release(&inst);
}

/* ----------------------------------------------------------- failures */

static void
on_backoff(evutil_socket_t fd, short what, void *arg)
{
	struct plugin_host *h = arg;

	(void)fd;
	(void)what;
	if (h->state != PLUGIN_HOST_BACKOFF)
		return;
	do_spawn_retry(h);
}

static void
do_spawn_retry(struct plugin_host *h)
{
	char err[512];

	if (spawn_plugin(h, err, sizeof(err)) != 0) {
		struct log_field f[1] = { { "reason", err } };

		hlog(h, LOG_ERROR, f, 1, "plugin start failed");
		after_failure(h, err, 0);
	}
}

/* A failed start or a crash: back off, or give up. */
static void
after_failure(struct plugin_host *h, const char *reason, int was_ready)
{
	int delay;
	char d[32], nb[16];

	snprintf(h->last_error, sizeof(h->last_error), "%s", reason);
	if (was_ready && mono_ns() - h->ready_at >=
	    (int64_t)h->stable_ms * 1000000)
		h->failures = 0;
	h->failures++;
	if ((int)h->failures >= h->max_failures) {
		struct log_field f[1] = { { "reason", reason } };

		hlog(h, LOG_ERROR, f, 1, "plugin failed: giving up after %u "
		    "consecutive failures", h->failures);
		set_state(h, PLUGIN_HOST_FAILED);
		if (h->cbs.on_failed != NULL)
			h->cbs.on_failed(h->cb_arg, h, reason);
		return;
	}
	delay = h->backoff_base_ms;
	for (unsigned i = 1; i < h->failures && delay < h->backoff_max_ms; i++)
		delay *= 2;
	if (delay > h->backoff_max_ms)
		delay = h->backoff_max_ms;
	snprintf(nb, sizeof(nb), "%u", h->failures);
	{
		struct log_field f[2] = { { "in", ms_str(delay, d, sizeof(d)) },
			{ "failures", nb } };

		hlog(h, LOG_WARN, f, 2, "restarting plugin");
	}
	set_state(h, PLUGIN_HOST_BACKOFF);
	timer_in(h->backoff_timer, delay);
}


/* ----------------------------------------------------------- calls */

static void
call_unlink(struct plugin_host *h, struct pcall *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else if (h->calls == c)
		h->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Run c's callback: decode resp (NULL unless the status is OK). */
static void
call_deliver(struct pcall *c, struct plugin_status *ps, const uint8_t *resp,
    size_t len)
{
	switch (c->kind) {
	case CALL_UPDATE: {
		struct plugin_instances inst = { NULL, 0 };

		if (resp != NULL && decode_instances(resp, len, &inst) != 0)
			status_local(ps, FL_ERR_PROTO, RPC_INTERNAL, "Update: "
			    "malformed UpdateResponse from the plugin");
		c->cb.update(c->arg, ps, ps->rc == 0 ? &inst : NULL);
		instances_release(&inst);
		break;
	}
	case CALL_INCREASE: {
		pb_increase_resp *r = NULL;

		if (resp != NULL && (r = flotilla__fleeting__v1__increase_response__unpack(
		    NULL, len, resp)) == NULL)
			status_local(ps, FL_ERR_PROTO, RPC_INTERNAL, "Increase: "
			    "malformed IncreaseResponse from the plugin");
		c->cb.increase(c->arg, ps, r != NULL ? r->succeeded : 0,
		    r != NULL && r->error != NULL ? r->error : "");
		if (r != NULL)
			flotilla__fleeting__v1__increase_response__free_unpacked(
			    r, NULL);
		break;
	}
	case CALL_DECREASE: {
		pb_decrease_resp *r = NULL;

		if (resp != NULL && (r = flotilla__fleeting__v1__decrease_response__unpack(
		    NULL, len, resp)) == NULL)
			status_local(ps, FL_ERR_PROTO, RPC_INTERNAL, "Decrease: "
			    "malformed DecreaseResponse from the plugin");
		c->cb.decrease(c->arg, ps, r != NULL ? r->succeeded : NULL,
		    r != NULL ? r->n_succeeded : 0,
		    r != NULL && r->error != NULL ? r->error : "");
		if (r != NULL)
			flotilla__fleeting__v1__decrease_response__free_unpacked(
			    r, NULL);
		break;
	}
	case CALL_CONNECT_INFO: {
		struct plugin_connect_info ci;
		int have = 0;

		if (resp != NULL) {
			if (decode_connect_info(resp, len, &ci) != 0)
				status_local(ps, FL_ERR_PROTO, RPC_INTERNAL,
				    "ConnectInfo: malformed ConnectInfoResponse "
				    "from the plugin");
			else
				have = 1;
		}
		c->cb.connect_info(c->arg, ps, have ? &ci : NULL);
		if (have)
			connect_info_release(&ci);
		break;
	}
	case CALL_HEARTBEAT:
	case CALL_SHUTDOWN:
		c->cb.done(c->arg, ps);
		break;
	}
}

static void
fail_calls(struct pcall *calls, const char *fmt, ...)
{
	struct plugin_status ps;
	struct pcall *c, *next;
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	for (c = calls; c != NULL; c = next) {
		next = c->next;
		status_local(&ps, FL_ERR_CLOSED, -1, "%s: %s",
		    call_names[c->kind], why);
		call_deliver(c, &ps, NULL, 0);
		free(c);
	}
}

static void
on_call_done(void *arg, const struct rpc_status *st, const uint8_t *resp,
    size_t len)
{
	struct pcall *c = arg;
	struct plugin_host *h = c->h;
	struct plugin_status ps;

	call_unlink(h, c);
	status_from_rpc(h, &ps, st, call_names[c->kind], c->timeout_ms);
	if (st->code == RPC_RESOURCE_EXHAUSTED)
		hlog(h, LOG_WARN, NULL, 0, "%s", ps.msg);
	/* After the callback h may be gone (stop callbacks aside, the owner
	 * must not free it here, but it may stop it): touch only c. */
	call_deliver(c, &ps, st->code == RPC_OK ? resp : NULL, len);
	free(c);
}

static int
call_check(const struct plugin_host *h)
{
	switch (h->state) {
	case PLUGIN_HOST_READY:
		return h->cl != NULL ? 0 : FL_ERR_AGAIN;
	case PLUGIN_HOST_STARTING:
	case PLUGIN_HOST_BACKOFF:
		return FL_ERR_AGAIN;
	default:
		return FL_ERR_CLOSED;
	}
}

static int
call_start(struct plugin_host *h, const struct pcall *tmpl,
    const char *method, const void *req, size_t reqlen, int deadline_ms)
{
	struct pcall *c;

	c = xcalloc(1, sizeof(*c));
	*c = *tmpl;
	c->h = h;
	c->timeout_ms = h->call_timeout_ms > 0 ? h->call_timeout_ms :
	    deadline_ms;
	c->p = rpc_call_async(h->cl, method, req, reqlen, c->timeout_ms,
	    on_call_done, c);
	if (c->p == NULL) {
		free(c);
		return FL_ERR_INTERNAL;
	}
	c->prev = NULL;
	c->next = h->calls;
	if (h->calls != NULL)
		h->calls->prev = c;
	h->calls = c;
	return 0;
}

int
plugin_host_update(struct plugin_host *h, plugin_update_fn cb, void *arg)
{
	struct pcall t;
	int rc;

	if (h == NULL || cb == NULL)
		return FL_ERR_INVAL;
	if ((rc = call_check(h)) != 0)
		return rc;
	memset(&t, 0, sizeof(t));
	t.kind = CALL_UPDATE;
	t.cb.update = cb;
	t.arg = arg;
	return call_start(h, &t, FLEETING_RPC_UPDATE, "", 0,
	    PLUGIN_DEADLINE_UPDATE_MS);
}

int
plugin_host_increase(struct plugin_host *h, int64_t delta,
    plugin_increase_fn cb, void *arg)
{
	pb_increase_req req = FLOTILLA__FLEETING__V1__INCREASE_REQUEST__INIT;
	uint8_t buf[16];
	struct pcall t;
	size_t n;
	int rc;

	if (h == NULL || cb == NULL || delta < 1)
		return FL_ERR_INVAL;
	if ((rc = call_check(h)) != 0)
		return rc;
	req.delta = delta;
	n = flotilla__fleeting__v1__increase_request__pack(&req, buf);
	memset(&t, 0, sizeof(t));
	t.kind = CALL_INCREASE;
	t.cb.increase = cb;
	t.arg = arg;
	return call_start(h, &t, FLEETING_RPC_INCREASE, buf, n,
	    PLUGIN_DEADLINE_INCREASE_MS);
}

int
plugin_host_decrease(struct plugin_host *h, const char *const *ids,
    size_t nids, plugin_decrease_fn cb, void *arg)
{
	pb_decrease_req req = FLOTILLA__FLEETING__V1__DECREASE_REQUEST__INIT;
	struct pcall t;
	uint8_t *buf;
	size_t n;
	int rc;

	if (h == NULL || cb == NULL || (nids > 0 && ids == NULL))
		return FL_ERR_INVAL;
	for (size_t i = 0; i < nids; i++) {
		if (ids[i] == NULL)
			return FL_ERR_INVAL;
	}
	if ((rc = call_check(h)) != 0)
		return rc;
	req.n_ids = nids;
	req.ids = (char **)ids;
	n = flotilla__fleeting__v1__decrease_request__get_packed_size(&req);
	buf = xmalloc(n + 1);
	flotilla__fleeting__v1__decrease_request__pack(&req, buf);
	memset(&t, 0, sizeof(t));
	t.kind = CALL_DECREASE;
	t.cb.decrease = cb;
	t.arg = arg;
	rc = call_start(h, &t, FLEETING_RPC_DECREASE, buf, n,
	    PLUGIN_DEADLINE_DECREASE_MS);
	free(buf);
	return rc;
}

/* ConnectInfo and Heartbeat take one id. */
static int
id_call(struct plugin_host *h, const struct pcall *t, const char *method,
    const char *id, int deadline_ms)
{
	pb_ci_req req = FLOTILLA__FLEETING__V1__CONNECT_INFO_REQUEST__INIT;
	uint8_t *buf;
	size_t n;
	int rc;

	/* ConnectInfoRequest and HeartbeatRequest are both {string id = 1}:
	 * the same bytes. */
	req.id = (char *)id;
	n = flotilla__fleeting__v1__connect_info_request__get_packed_size(&req);
	buf = xmalloc(n + 1);
	flotilla__fleeting__v1__connect_info_request__pack(&req, buf);
	rc = call_start(h, t, method, buf, n, deadline_ms);
	free(buf);
	return rc;
}

int
plugin_host_connect_info(struct plugin_host *h, const char *id,
    plugin_connect_info_fn cb, void *arg)
{
	struct pcall t;
	int rc;

	if (h == NULL || cb == NULL || id == NULL)
		return FL_ERR_INVAL;
	if ((rc = call_check(h)) != 0)
		return rc;
	memset(&t, 0, sizeof(t));
	t.kind = CALL_CONNECT_INFO;
	t.cb.connect_info = cb;
	t.arg = arg;
	return id_call(h, &t, FLEETING_RPC_CONNECT_INFO, id,
	    PLUGIN_DEADLINE_CONNECT_INFO_MS);
}

int
plugin_host_heartbeat(struct plugin_host *h, const char *id,
    plugin_done_fn cb, void *arg)
{
	struct pcall t;
	int rc;

	if (h == NULL || cb == NULL || id == NULL)
		return FL_ERR_INVAL;
	if ((rc = call_check(h)) != 0)
		return rc;
	memset(&t, 0, sizeof(t));
	t.kind = CALL_HEARTBEAT;
	t.cb.done = cb;
	t.arg = arg;
	return id_call(h, &t, FLEETING_RPC_HEARTBEAT, id,
	    PLUGIN_DEADLINE_HEARTBEAT_MS);
}

int
plugin_host_shutdown(struct plugin_host *h, plugin_done_fn cb, void *arg)
{
	struct pcall t;
	int rc;

	if (h == NULL || cb == NULL)
		return FL_ERR_INVAL;
	if ((rc = call_check(h)) != 0)
		return rc;
	memset(&t, 0, sizeof(t));
	t.kind = CALL_SHUTDOWN;
	t.cb.done = cb;
	t.arg = arg;
	return call_start(h, &t, FLEETING_RPC_SHUTDOWN, "", 0,
	    PLUGIN_DEADLINE_SHUTDOWN_MS);
}

/* ----------------------------------------------------------- the end */

static void
on_defer(evutil_socket_t fd, short what, void *arg)
{
	struct plugin_host *h = arg;
	plugin_stop_fn cb = h->stop_cb;

	(void)fd;
	(void)what;
	h->stop_cb = NULL;
	if (cb != NULL)
		cb(h->stop_arg, h, &h->stop_res);	/* may free h: last */
}

static void
finish_stop(struct plugin_host *h, enum plugin_exit_how how, int status)
{
	struct pcall *calls = teardown(h);
	struct timeval zero = { 0, 0 };

	h->stop_res.how = how;
	h->stop_res.status = status;
	remove_sockdir(h);
	set_state(h, PLUGIN_HOST_STOPPED);
	fail_calls(calls, "plugin stopped");
	evtimer_add(h->defer_ev, &zero);
}

static void
on_child_exit(void *arg, pid_t pid, int status)
{
	struct plugin_host *h = arg;
	char reason[sizeof(h->last_error)], code[16], stbuf[32];
	struct log_field f[2];
	enum log_level lvl;
	struct pcall *calls;
	enum plugin_exit_how how;
	enum plugin_phase ph;
	int had_error = h->start_error != NULL;

	/*
	 * Whatever is left of its process group goes too: no orphans.  The
	 * group id outlives the leader while members remain; an empty group
	 * makes this ESRCH (a new group with the same id in the microseconds
	 * since the reap would need the pid recycled as a group leader).
	 */
	(void)kill(-pid, SIGKILL);
	snprintf(code, sizeof(code), "%ld", (long)pid);
	f[0].key = "pid";
	f[0].value = code;
	if (WIFEXITED(status)) {
		snprintf(stbuf, sizeof(stbuf), "%d", WEXITSTATUS(status));
		f[1].key = "exit_code";
	} else if (WIFSIGNALED(status)) {
		const char *s = sigabbrev_np(WTERMSIG(status));

		snprintf(stbuf, sizeof(stbuf), "%s", s != NULL ? s : "?");
		f[1].key = "signal";
	} else {
		snprintf(stbuf, sizeof(stbuf), "0x%x", (unsigned)status);
		f[1].key = "status";
	}
	f[1].value = stbuf;
	if (h->state == PLUGIN_HOST_STOPPING)
		lvl = WIFEXITED(status) && WEXITSTATUS(status) == 0 ?
		    LOG_INFO : LOG_WARN;
	else
		lvl = had_error ? LOG_INFO : LOG_ERROR;
	hlog(h, lvl, f, 2, "plugin exited");

	switch (h->state) {
	case PLUGIN_HOST_STOPPING:
		switch (h->stp) {
		case ST_TERM:
			how = PLUGIN_EXIT_TERM;
			break;
		case ST_KILL:
			how = PLUGIN_EXIT_KILL;
			break;
		default:
			how = PLUGIN_EXIT_SELF;
			break;
		}
		finish_stop(h, how, status);
		break;
	case PLUGIN_HOST_STARTING:
		if (had_error) {
			snprintf(reason, sizeof(reason), "%s", h->start_error);
		} else {
			if (phase_of(h->sp, &ph) != 0)
				ph = PLUGIN_PHASE_HANDSHAKE;
			snprintf(reason, sizeof(reason), "plugin exited during "
			    "the %s (%s=%s)", plugin_phase_name(ph), f[1].key,
			    stbuf);
			phase_done(h, reason);
		}
		calls = teardown(h);
		after_failure(h, reason, 0);
		fail_calls(calls, "%s", reason);
		break;
	case PLUGIN_HOST_READY:
		snprintf(reason, sizeof(reason), "plugin exited (%s=%s)",
		    f[1].key, stbuf);
		calls = teardown(h);
		after_failure(h, reason, 1);
		fail_calls(calls, "%s", reason);
		break;
	default:
		calls = teardown(h);
		fail_calls(calls, "plugin exited");
		break;
	}
}

static void
on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
	struct plugin_host *h = arg;
	char d[32];

	(void)fd;
	(void)what;
	if (h->state != PLUGIN_HOST_STOPPING || h->pid <= 0)
		return;
	switch (h->stp) {
	case ST_WAIT:
		hlog(h, LOG_WARN, NULL, 0, "plugin failed to exit gracefully "
		    "within %s: sending SIGTERM", ms_str(h->stop_grace_ms, d,
		    sizeof(d)));
		signal_group(h, SIGTERM);
		h->stp = ST_TERM;
		timer_in(h->stop_timer, h->kill_grace_ms);
		break;
	case ST_TERM:
		hlog(h, LOG_ERROR, NULL, 0, "plugin did not exit within %s of "
		    "SIGTERM: killing it", ms_str(h->kill_grace_ms, d,
		    sizeof(d)));
		signal_group(h, SIGKILL);
		h->stp = ST_KILL;
		timer_in(h->stop_timer, h->kill_grace_ms);
		break;
	case ST_KILL:
		hlog(h, LOG_ERROR, NULL, 0, "plugin still not reaped after "
		    "SIGKILL; waiting");
		signal_group(h, SIGKILL);
		timer_in(h->stop_timer, h->kill_grace_ms);
		break;
	default:
		break;
	}
}

/*
 * Nothing more to say to the plugin: close our connection (as go-plugin's
 * Kill() does; a server with a stream still open to us, such as an
 * oversize answer we refused, may otherwise wait for us to read it before
 * it can stop), then give the process stop_grace to exit.
 */
static void
stop_wait_exit(struct plugin_host *h)
{
	struct pcall *calls = h->calls;

	h->calls = NULL;
	if (h->cl != NULL)
		rpc_client_free(h->cl);	/* we may be in its callback: fine */
	h->cl = NULL;
	h->ipend = NULL;
	h->stp = ST_WAIT;
	timer_in(h->stop_timer, h->stop_grace_ms);
	fail_calls(calls, "plugin stopping");
}

static void
on_controller_done(void *arg, const struct rpc_status *st,
    const uint8_t *resp, size_t len)
{
	struct plugin_host *h = arg;

	(void)resp;
	(void)len;
	h->ipend = NULL;
	if (h->state != PLUGIN_HOST_STOPPING || h->stp != ST_CONTROLLER)
		return;
	if (st->code != RPC_OK)
		hlog(h, LOG_DEBUG, NULL, 0, "controller Shutdown: %s: %s",
		    rpc_code_name(st->code), st->message);
	stop_wait_exit(h);
}

static void
send_controller_shutdown(struct plugin_host *h)
{
	h->stp = ST_CONTROLLER;
	/* plugin.Empty is empty: zero bytes. */
	h->ipend = rpc_call_async(h->cl, CONTROLLER_RPC_SHUTDOWN, "", 0,
	    PLUGIN_DEADLINE_CONTROLLER_MS, on_controller_done, h);
	if (h->ipend == NULL)
		stop_wait_exit(h);
}

static void
on_stop_shutdown_done(void *arg, const struct rpc_status *st,
    const uint8_t *resp, size_t len)
{
	struct plugin_host *h = arg;

	(void)resp;
	(void)len;
	h->ipend = NULL;
	if (h->state != PLUGIN_HOST_STOPPING || h->stp != ST_SHUTDOWN)
		return;
	status_from_rpc(h, &h->stop_res.shutdown, st, "Shutdown",
	    h->call_timeout_ms > 0 ? h->call_timeout_ms :
	    PLUGIN_DEADLINE_SHUTDOWN_MS);
	if (st->code != RPC_OK)
		hlog(h, LOG_WARN, NULL, 0, "%s", h->stop_res.shutdown.msg);
	send_controller_shutdown(h);
}

int
plugin_host_stop(struct plugin_host *h, plugin_stop_fn cb, void *arg)
{
	enum plugin_host_state prev;

	if (h == NULL)
		return FL_ERR_INVAL;
	if (h->state == PLUGIN_HOST_STOPPING)
		return FL_ERR_AGAIN;
	h->stop_cb = cb;
	h->stop_arg = arg;
	memset(&h->stop_res, 0, sizeof(h->stop_res));
	status_local(&h->stop_res.shutdown, FL_ERR_AGAIN, -1,
	    "Shutdown: not called (the plugin was not ready)");
	evtimer_del(h->backoff_timer);
	prev = h->state;
	if (h->pid <= 0) {
		finish_stop(h, PLUGIN_EXIT_NONE, 0);
		return 0;
	}
	hlog(h, LOG_INFO, NULL, 0, "stopping plugin");
	set_state(h, PLUGIN_HOST_STOPPING);
	if (prev == PLUGIN_HOST_READY && h->cl != NULL) {
		h->stp = ST_SHUTDOWN;
		h->ipend = rpc_call_async(h->cl, FLEETING_RPC_SHUTDOWN, "", 0,
		    h->call_timeout_ms > 0 ? h->call_timeout_ms :
		    PLUGIN_DEADLINE_SHUTDOWN_MS, on_stop_shutdown_done, h);
		if (h->ipend == NULL)
			send_controller_shutdown(h);
	} else if (h->sp == SP_FAILED) {
		h->stp = ST_KILL;	/* killed already; the reap is coming */
		timer_in(h->stop_timer, h->kill_grace_ms);
	} else {
		/* Mid-start: nothing to say to it. */
		evtimer_del(h->hs_timer);
		if (h->cl != NULL)
			rpc_client_free(h->cl);
		h->cl = NULL;
		h->ipend = NULL;
		h->sp = SP_FAILED;
		signal_group(h, SIGTERM);
		h->stp = ST_TERM;
		timer_in(h->stop_timer, h->kill_grace_ms);
	}
	return 0;
}

/* ----------------------------------------------------------- life */

static int
read_key(const char *path, uint8_t **out, size_t *len, char *err,
    size_t errlen)
{
	struct sbuf sb;
	char buf[4096];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "reading instance group connector key: "
		    "%s: %s", path, strerror(errno));
		return FL_ERR_IO;
	}
	sbuf_init(&sb);
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		sbuf_add(&sb, buf, (size_t)n);
		if (sb.len > 1024 * 1024) {
			n = -1;
			errno = EFBIG;
			break;
		}
	}
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "reading instance group connector key: "
		    "%s: %s", path, strerror(errno));
		freezero(sb.buf, sb.cap);
		return FL_ERR_IO;
	}
	*len = sb.len;
	*out = (uint8_t *)sb.buf;	/* NUL-terminated; cap >= len + 1 */
	return 0;
}

static char *
opt_str(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

struct plugin_host *
plugin_host_new(struct event_base *base, const struct plugin_host_opts *o,
    char *err, size_t errlen)
{
	struct plugin_host *h;
	const char *tmp, *slash;

	if (base == NULL || o == NULL || o->path == NULL ||
	    o->path[0] == '\0') {
		snprintf(err, errlen, "plugin host: no plugin path");
		return NULL;
	}
	if (child_init(base) != 0) {
		snprintf(err, errlen, "plugin host: cannot watch children on "
		    "this event loop");
		return NULL;
	}
	h = xcalloc(1, sizeof(*h));
	h->base = base;
	h->path = xstrdup(o->path);
	slash = strrchr(o->path, '/');
	h->name = xstrdup(o->name != NULL && o->name[0] != '\0' ? o->name :
	    slash != NULL ? slash + 1 : o->path);
	h->config_json = xstrdup(o->plugin_config_json != NULL ?
	    o->plugin_config_json : "{}");
	if (o->connector != NULL) {
		const struct config_connector *c = o->connector;

		h->c_os = opt_str(c->os);
		h->c_arch = opt_str(c->arch);
		h->c_protocol = opt_str(c->protocol);
		h->c_username = opt_str(c->username);
		h->c_password = opt_str(c->password);
		h->c_port = c->protocol_port;
		h->c_keepalive_ns = c->keepalive_ns;
		h->c_timeout_ns = c->timeout_ns;
		h->c_static = c->use_static_credentials;
		h->c_external = c->use_external_addr;
		if (c->key_path != NULL && c->key_path[0] != '\0' &&
		    read_key(c->key_path, &h->c_key, &h->c_key_len, err,
		    errlen) != 0) {
			h->pid = -1;
			h->out_fd = h->err_fd = -1;
			plugin_host_free(h);
			return NULL;
		}
	}
	tmp = getenv("TMPDIR");
	h->sock_parent = xstrdup(o->socket_parent != NULL ? o->socket_parent :
	    tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
#define DEF(field, dflt) (o->field > 0 ? o->field : (dflt))
	h->handshake_timeout_ms = DEF(handshake_timeout_ms,
	    PLUGIN_HANDSHAKE_TIMEOUT_MS);
	h->call_timeout_ms = o->call_timeout_ms > 0 ? o->call_timeout_ms : 0;
	h->init_timeout_ms = DEF(init_timeout_ms, h->call_timeout_ms > 0 ?
	    h->call_timeout_ms : PLUGIN_DEADLINE_INIT_MS);
	h->backoff_base_ms = DEF(backoff_base_ms, PLUGIN_BACKOFF_BASE_MS);
	h->backoff_max_ms = DEF(backoff_max_ms, PLUGIN_BACKOFF_MAX_MS);
	h->stable_ms = DEF(stable_ms, PLUGIN_STABLE_MS);
	h->max_failures = DEF(max_failures, PLUGIN_MAX_FAILURES);
	h->stop_grace_ms = DEF(stop_grace_ms, PLUGIN_STOP_GRACE_MS);
	h->kill_grace_ms = DEF(kill_grace_ms, PLUGIN_KILL_GRACE_MS);
#undef DEF
	h->max_msg = o->max_msg_bytes > 0 ? o->max_msg_bytes : PLUGIN_MAX_MSG;
	if (h->max_msg > RPC_MAX_MSG_LIMIT)
		h->max_msg = RPC_MAX_MSG_LIMIT;
	h->cbs = o->cbs;
	h->cb_arg = o->cb_arg;
	h->state = PLUGIN_HOST_NEW;
	h->pid = -1;
	h->out_fd = h->err_fd = -1;
	h->hs_timer = evtimer_new(base, on_handshake_timeout, h);
	h->backoff_timer = evtimer_new(base, on_backoff, h);
	h->stop_timer = evtimer_new(base, on_stop_timer, h);
	h->defer_ev = evtimer_new(base, on_defer, h);
	if (h->hs_timer == NULL || h->backoff_timer == NULL ||
	    h->stop_timer == NULL || h->defer_ev == NULL) {
		snprintf(err, errlen, "plugin host: cannot create timers");
		plugin_host_free(h);
		return NULL;
	}
	return h;
}

int
plugin_host_start(struct plugin_host *h, char *err, size_t errlen)
{
	int rc;

	if (h == NULL)
		return FL_ERR_INVAL;
	if (h->state != PLUGIN_HOST_NEW && h->state != PLUGIN_HOST_STOPPED &&
	    h->state != PLUGIN_HOST_FAILED) {
		snprintf(err, errlen, "plugin %s is already %s", h->name,
		    plugin_host_state_name(h->state));
		return FL_ERR_INVAL;
	}
	h->failures = 0;
	rc = spawn_plugin(h, err, errlen);
	if (rc != 0)
		snprintf(h->last_error, sizeof(h->last_error), "%s", err);
	return rc;
}

void
plugin_host_free(struct plugin_host *h)
{
	struct pcall *calls, *c, *next;
	int status;

	if (h == NULL)
		return;
	if (h->pid > 0) {
		child_unwatch(h->pid);
		signal_group(h, SIGKILL);
		while (waitpid(h->pid, &status, 0) < 0 && errno == EINTR)
			;
		(void)kill(-h->pid, SIGKILL);
	}
	h->sp = SP_FAILED;	/* what is left on stdout is not a handshake */
	calls = teardown(h);
	for (c = calls; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	remove_sockdir(h);
	if (h->hs_timer != NULL)
		event_free(h->hs_timer);
	if (h->backoff_timer != NULL)
		event_free(h->backoff_timer);
	if (h->stop_timer != NULL)
		event_free(h->stop_timer);
	if (h->defer_ev != NULL)
		event_free(h->defer_ev);
	info_release(&h->info);
	free(h->path);
	free(h->name);
	free(h->config_json);
	free(h->c_os);
	free(h->c_arch);
	free(h->c_protocol);
	free(h->c_username);
	freezero_str(h->c_password);
	if (h->c_key != NULL)
		freezero(h->c_key, h->c_key_len);
	free(h->sock_parent);
	free(h);
	child_release();
}

enum plugin_host_state
plugin_host_state(const struct plugin_host *h)
{
	return h->state;
}

pid_t
plugin_host_pid(const struct plugin_host *h)
{
	return h->pid;
}

const struct plugin_info *
plugin_host_info(const struct plugin_host *h)
{
	return h->have_info ? &h->info : NULL;
}

const char *
plugin_host_last_error(const struct plugin_host *h)
{
	return h->last_error;
}

unsigned
plugin_host_restarts(const struct plugin_host *h)
{
	return h->restarts;
}

unsigned
plugin_host_failures(const struct plugin_host *h)
{
	return h->failures;
}

const char *
plugin_host_socket_dir(const struct plugin_host *h)
{
	return h->sockdir;
}

const char *
plugin_host_name(const struct plugin_host *h)
{
	return h->name;
}

/* ----------------------------------------------------------- resolving */

char *
plugin_binary_name(const char *ref)
{
	static const struct {
		const char *alias;
		const char *bin;
	} aliases[] = {
		{ "aws", "fleeting-plugin-aws" },
		{ "googlecloud", "fleeting-plugin-googlecompute" },
		{ "googlecompute", "fleeting-plugin-googlecompute" },
		{ "azure", "fleeting-plugin-azure" },
		{ "local", "fleeting-plugin-local" },
	};
	const char *s, *e;
	char *name, *out;
	size_t n;

	if (ref == NULL)
		return NULL;
	/* "[registry/]repository/NAME[:constraint]" -> NAME */
	s = strrchr(ref, '/');
	s = s != NULL ? s + 1 : ref;
	e = strchr(s, ':');
	n = e != NULL ? (size_t)(e - s) : strlen(s);
	if (n == 0 || (n <= 2 && s[0] == '.'))
		return NULL;
	name = xstrndup(s, n);
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (strcmp(name, aliases[i].alias) == 0) {
			free(name);
			return xstrdup(aliases[i].bin);
		}
	}
	if (strncmp(name, "fleeting-plugin-", 16) == 0 && name[16] != '\0')
		return name;
	out = xasprintf("fleeting-plugin-%s", name);
	free(name);
	return out;
}

static int
executable_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	    access(path, X_OK) == 0;
}

int
plugin_resolve_in(const char *ref, const char *const *dirs, size_t ndirs,
    const char *pathenv, char **path, char *err, size_t errlen)
{
	struct sbuf looked;
	char *bin, *cand;
	const char *p, *e;

	*path = NULL;
	if (ref == NULL || ref[0] == '\0') {
		snprintf(err, errlen, "no plugin configured ([runners."
		    "autoscaler] plugin is empty)");
		return FL_ERR_INVAL;
	}
	if (ref[0] == '/' || strncmp(ref, "./", 2) == 0 ||
	    strncmp(ref, "../", 3) == 0 ||
	    (strchr(ref, '/') != NULL && executable_file(ref))) {
		*path = xstrdup(ref);
		return 0;
	}
	bin = plugin_binary_name(ref);
	if (bin == NULL) {
		snprintf(err, errlen, "plugin \"%s\": not a plugin name", ref);
		return FL_ERR_INVAL;
	}
	sbuf_init(&looked);
	for (size_t i = 0; i < ndirs; i++) {
		if (dirs[i] == NULL || dirs[i][0] == '\0')
			continue;
		cand = xasprintf("%s/%s", dirs[i], bin);
		if (executable_file(cand)) {
			*path = cand;
			free(bin);
			sbuf_release(&looked);
			return 0;
		}
		free(cand);
		sbuf_addf(&looked, "%s%s", looked.len ? ", " : "", dirs[i]);
	}
	for (p = pathenv; p != NULL && *p != '\0'; p = *e ? e + 1 : e) {
		size_t n;

		e = strchr(p, ':');
		if (e == NULL)
			e = p + strlen(p);
		n = (size_t)(e - p);
		cand = n == 0 ? xasprintf("./%s", bin) :
		    xasprintf("%.*s/%s", (int)n, p, bin);
		if (executable_file(cand)) {
			*path = cand;
			free(bin);
			sbuf_release(&looked);
			return 0;
		}
		free(cand);
		sbuf_addf(&looked, "%s%.*s", looked.len ? ", " : "",
		    n == 0 ? 1 : (int)n, n == 0 ? "." : p);
	}
	snprintf(err, errlen, "plugin \"%s\": no executable %s in %s", ref,
	    bin, looked.len ? looked.buf : "(nowhere: no directories)");
	free(bin);
	sbuf_release(&looked);
	return FL_ERR_NOTFOUND;
}

int
plugin_resolve(const char *ref, char **path, char *err, size_t errlen)
{
	char exe[PATH_MAX], *slash, *fpp, *tok, *save = NULL;
	const char *dirs[32];
	size_t nd = 0;
	ssize_t n;
	int rc;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash != NULL && slash != exe) {
			*slash = '\0';
			dirs[nd++] = exe;
		}
	}
	dirs[nd++] = "/usr/lib/flotilla/plugins";
	fpp = getenv("FLEETING_PLUGIN_PATH") != NULL ?
	    xstrdup(getenv("FLEETING_PLUGIN_PATH")) : NULL;
	for (tok = fpp != NULL ? strtok_r(fpp, ":", &save) : NULL;
	    tok != NULL && nd < sizeof(dirs) / sizeof(dirs[0]);
	    tok = strtok_r(NULL, ":", &save))
		dirs[nd++] = tok;
	rc = plugin_resolve_in(ref, dirs, nd, getenv("PATH"), path, err,
	    errlen);
	free(fpp);
	return rc;
}

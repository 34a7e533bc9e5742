/*
 * The plugin SDK (see plugin_sdk.h): the process life cycle a go-plugin
 * host expects, and the InstanceGroup service on lib/rpc, so that a
 * provider plugin is only its cloud calls.
 *
 * Each InstanceGroup handler has the same shape: unpack the request
 * (protobuf-c) completely or answer INVALID_ARGUMENT, check the bounds,
 * take the init lock (shared; Init takes it exclusive), answer UNKNOWN
 * "not initialised" before a successful Init, call the plugin, map its
 * result to a status, pack the response.  Nothing here prints: lines go
 * through lib/log, which plugin_serve sets to hclog JSON on stderr.
 *
 * Stopping.  A handler must not stop the server it runs on (lib/rpc), so
 * plugin.GRPCController/Shutdown only writes a byte to a pipe and answers;
 * plugin_serve's main thread, which waits on that pipe and on a signalfd
 * for SIGTERM, then shuts the server down and returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "duration.h"
#include "err.h"
#include "handshake.h"
#include "log.h"
#include "plugin_sdk.h"
#include "proto/controller.pb-c.h"
#include "proto/controller.rpc.h"
#include "proto/fleeting.pb-c.h"
#include "proto/fleeting.rpc.h"
#include "proto/health.pb-c.h"
#include "proto/health.rpc.h"
#include "rpc.h"
#include "xmalloc.h"

/* One served method: the handler and its server (lib/rpc's arg). */
struct method {
	struct plugin_server *ps;
	rpc_handler_fn fn;
};

#define NMETHODS 9

struct plugin_server {
	const struct plugin_def *def;
	struct rpc_server *srv;
	int stop_pipe[2];
	struct method methods[NMETHODS];
	size_t nmethods;

	/* Init exclusive, every other InstanceGroup call shared. */
	pthread_rwlock_t init_lock;
	bool initialised;		/* under init_lock */
	struct plugin_connector settings;	/* Init's, for ConnectInfo */

	pthread_mutex_t lock;		/* the fields below */
	pthread_cond_t idle;		/* active dropped to 0 */
	unsigned active;		/* handlers running */
	bool shutdown_ran;
	bool stop_requested;
};

/* ------------------------------------------------------- connectors */

void
plugin_set_str(char **field, const char *value)
{
	char *copy = value != NULL ? xstrdup(value) : NULL;

	free(*field);
	*field = copy;
}

void
plugin_set_key(struct plugin_connector *c, const void *key, size_t len)
{
	uint8_t *copy = NULL;

	if (key != NULL && len > 0) {
		copy = xmalloc(len);
		memcpy(copy, key, len);
	}
	freezero(c->key, c->key_len);
	c->key = copy;
	c->key_len = copy != NULL ? len : 0;
}

void
plugin_connector_copy(struct plugin_connector *dst,
    const struct plugin_connector *src)
{
	*dst = *src;
	dst->os = src->os != NULL ? xstrdup(src->os) : NULL;
	dst->arch = src->arch != NULL ? xstrdup(src->arch) : NULL;
	dst->protocol = src->protocol != NULL ? xstrdup(src->protocol) : NULL;
	dst->username = src->username != NULL ? xstrdup(src->username) : NULL;
	dst->password = src->password != NULL ? xstrdup(src->password) : NULL;
	dst->key = NULL;
	dst->key_len = 0;
	plugin_set_key(dst, src->key, src->key_len);
}

void
plugin_connector_release(struct plugin_connector *c)
{
	if (c == NULL)
		return;
	free(c->os);
	free(c->arch);
	free(c->protocol);
	free(c->username);
	freezero_str(c->password);
	freezero(c->key, c->key_len);
	memset(c, 0, sizeof(*c));
}

/* The proto message's view of c: pointers into c, nothing allocated. */
static void
connector_to_pb(const struct plugin_connector *c,
    Flotilla__Fleeting__V1__ConnectorConfig *pb)
{
	flotilla__fleeting__v1__connector_config__init(pb);
	pb->os = c->os != NULL ? c->os : "";
	pb->arch = c->arch != NULL ? c->arch : "";
	pb->protocol = c->protocol != NULL ? c->protocol : "";
	pb->protocol_port = c->protocol_port;
	pb->username = c->username != NULL ? c->username : "";
	pb->password = c->password != NULL ? c->password : "";
	pb->key.data = c->key;
	pb->key.len = c->key != NULL ? c->key_len : 0;
	pb->use_static_credentials = c->use_static_credentials;
	pb->keepalive_ns = c->keepalive_ns;
	pb->timeout_ns = c->timeout_ns;
	pb->use_external_addr = c->use_external_addr;
}

/* A copy of a received ConnectorConfig ("" strings become NULL). */
static void
connector_from_pb(const Flotilla__Fleeting__V1__ConnectorConfig *pb,
    struct plugin_connector *c)
{
	memset(c, 0, sizeof(*c));
	if (pb == NULL)
		return;
	if (pb->os != NULL && pb->os[0] != '\0')
		c->os = xstrdup(pb->os);
	if (pb->arch != NULL && pb->arch[0] != '\0')
		c->arch = xstrdup(pb->arch);
	if (pb->protocol != NULL && pb->protocol[0] != '\0')
		c->protocol = xstrdup(pb->protocol);
	if (pb->username != NULL && pb->username[0] != '\0')
		c->username = xstrdup(pb->username);
	if (pb->password != NULL && pb->password[0] != '\0')
		c->password = xstrdup(pb->password);
	plugin_set_key(c, pb->key.data, pb->key.len);
	c->protocol_port = pb->protocol_port;
	c->use_static_credentials = pb->use_static_credentials;
	c->keepalive_ns = pb->keepalive_ns;
	c->timeout_ns = pb->timeout_ns;
	c->use_external_addr = pb->use_external_addr;
}

/* Wipe the secrets of an unpacked ConnectorConfig before it is freed. */
static void
connector_pb_wipe(Flotilla__Fleeting__V1__ConnectorConfig *pb)
{
	if (pb == NULL)
		return;
	if (pb->password != NULL && pb->password[0] != '\0')
		explicit_bzero(pb->password, strlen(pb->password));
	if (pb->key.data != NULL)
		explicit_bzero(pb->key.data, pb->key.len);
}

/* ------------------------------------------------------------ helpers */

/* Append message m packed to resp. */
static void
pack_into(struct sbuf *resp, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = xmalloc(n > 0 ? n : 1);

	protobuf_c_message_pack(m, buf);
	sbuf_add(resp, buf, n);
	freezero(buf, n);
}

/* The gRPC status for a callback's result, with err as the message. */
static int
rc_status(int rc, const char *err, const char *what, struct rpc_status *st)
{
	int code;

	switch (rc) {
	case PLUGIN_BAD_CONFIG: code = RPC_INVALID_ARGUMENT; break;
	case PLUGIN_NOT_FOUND: code = RPC_NOT_FOUND; break;
	case PLUGIN_UNHEALTHY: code = RPC_FAILED_PRECONDITION; break;
	default: code = RPC_UNKNOWN; break;
	}
	if (err[0] == '\0')
		return rpc_status_set(st, code, "%s failed", what);
	return rpc_status_set(st, code, "%s", err);
}

/* An instance id from the manager: non-empty, bounded, printable. */
static int
check_id(const char *id, const char *what, struct rpc_status *st)
{
	size_t n = id != NULL ? strlen(id) : 0;

	if (n == 0)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "%s: empty instance id", what);
	if (n > PLUGIN_ID_MAX)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "%s: instance id longer than %d bytes", what,
		    PLUGIN_ID_MAX);
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)id[i] < 0x20 || id[i] == 0x7f)
			return rpc_status_set(st, RPC_INVALID_ARGUMENT,
			    "%s: control character in instance id", what);
	}
	return RPC_OK;
}

/*
 * Take the init lock shared and check that Init succeeded; RPC_OK with
 * the lock held, else the status (lock not held).
 */
static int
enter(struct plugin_server *ps, struct rpc_status *st)
{
	pthread_rwlock_rdlock(&ps->init_lock);
	if (ps->initialised)
		return RPC_OK;
	pthread_rwlock_unlock(&ps->init_lock);
	return rpc_status_set(st, RPC_UNKNOWN, "not initialised");
}

static void
leave(struct plugin_server *ps)
{
	pthread_rwlock_unlock(&ps->init_lock);
}

/* --------------------------------------------------------- InstanceGroup */

static int
h_init(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	struct plugin_server *ps = arg;
	const struct plugin_def *def = ps->def;
	Flotilla__Fleeting__V1__InitRequest *rq;
	Flotilla__Fleeting__V1__InitResponse out =
	    FLOTILLA__FLEETING__V1__INIT_RESPONSE__INIT;
	Flotilla__Fleeting__V1__ProviderInfo pi =
	    FLOTILLA__FLEETING__V1__PROVIDER_INFO__INIT;
	struct plugin_provider_info info;
	struct plugin_connector settings;
	json_t *config = NULL;
	json_error_t jerr;
	char err[PLUGIN_ERR_MAX] = "", *build = NULL;
	size_t ncap = 0;
	int rc, code = RPC_OK;

	rq = flotilla__fleeting__v1__init_request__unpack(NULL, reqlen, req);
	if (rq == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "malformed InitRequest");
	if (rq->plugin_config.len == 0) {
		config = json_object();
	} else {
		config = json_loadb((const char *)rq->plugin_config.data,
		    rq->plugin_config.len, JSON_REJECT_DUPLICATES, &jerr);
		if (config == NULL) {
			code = rpc_status_set(st, RPC_INVALID_ARGUMENT,
			    "plugin_config: invalid JSON: %s (line %d)",
			    jerr.text, jerr.line);
		} else if (!json_is_object(config)) {
			code = rpc_status_set(st, RPC_INVALID_ARGUMENT,
			    "plugin_config: not a JSON object");
		}
	}
	connector_from_pb(rq->settings, &settings);
	connector_pb_wipe(rq->settings);
	flotilla__fleeting__v1__init_request__free_unpacked(rq, NULL);
	if (code != RPC_OK)
		goto out;
	if (settings.password != NULL)
		log_add_secret(settings.password);

	pthread_rwlock_wrlock(&ps->init_lock);
	if (ps->initialised) {
		pthread_rwlock_unlock(&ps->init_lock);
		code = rpc_status_set(st, RPC_UNKNOWN, "already initialised");
		goto out;
	}
	memset(&info, 0, sizeof(info));
	rc = def->ops->init(def->arg, config, &settings, &info, err,
	    sizeof(err));
	if (rc != PLUGIN_OK) {
		pthread_rwlock_unlock(&ps->init_lock);
		code = rc_status(rc, err, "init", st);
		log_error("init failed: %s", st->message);
		goto out;
	}
	ps->initialised = true;
	ps->settings = settings;
	memset(&settings, 0, sizeof(settings));	/* now ps's */
	pthread_rwlock_unlock(&ps->init_lock);

	info.id[sizeof(info.id) - 1] = '\0';
	pi.id = info.id;
	pi.max_size = info.max_size;
	pi.version = (char *)(def->version != NULL ? def->version : "");
	build = xasprintf("%s %s (revision %s)", def->name,
	    def->version != NULL ? def->version : "",
	    def->revision != NULL && def->revision[0] != '\0' ?
	    def->revision : "unknown");
	pi.build_info = build;
	if (info.capabilities != NULL) {
		while (info.capabilities[ncap] != NULL)
			ncap++;
	}
	pi.n_capabilities = ncap;
	pi.capabilities = (char **)info.capabilities;
	out.provider_info = &pi;
	pack_into(resp, &out.base);
	{
		char maxs[32];
		const struct log_field f[] = {
			{ "group", info.id },
			{ "max_size", maxs },
		};

		(void)snprintf(maxs, sizeof(maxs), "%lld",
		    (long long)info.max_size);
		log_infof(f, 2, "initialised");
	}
out:
	free(build);
	plugin_connector_release(&settings);
	json_decref(config);
	return code;
}

struct update_acc {
	Flotilla__Fleeting__V1__Instance **v;
	size_t n, cap;
};

static const char *
state_name(enum plugin_state s)
{
	switch (s) {
	case PLUGIN_STATE_CREATING: return "creating";
	case PLUGIN_STATE_RUNNING: return "running";
	case PLUGIN_STATE_DELETING: return "deleting";
	case PLUGIN_STATE_DELETED: return "deleted";
	case PLUGIN_STATE_TIMEOUT: return "timeout";
	}
	return "?";
}

static void
update_emit(void *emit_arg, const char *id, enum plugin_state state,
    const char *cause)
{
	struct update_acc *acc = emit_arg;
	Flotilla__Fleeting__V1__Instance *in;
	struct rpc_status st;

	if (check_id(id, "update", &st) != RPC_OK ||
	    state < PLUGIN_STATE_CREATING || state > PLUGIN_STATE_TIMEOUT) {
		log_warn("update: plugin reported an invalid instance "
		    "(id \"%.64s\", state %d): left out", id != NULL ? id : "",
		    (int)state);
		return;
	}
	if (acc->n == acc->cap) {
		acc->cap = acc->cap ? 2 * acc->cap : 16;
		acc->v = xreallocarray(acc->v, acc->cap, sizeof(*acc->v));
	}
	in = xmalloc(sizeof(*in));
	flotilla__fleeting__v1__instance__init(in);
	in->id = xstrdup(id);
	in->state = (Flotilla__Fleeting__V1__InstanceState)state;
	in->cause = xstrdup(cause != NULL ? cause : "");
	acc->v[acc->n++] = in;
	log_debug("update: %s %s", id, state_name(state));
}

static int
h_update(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	struct plugin_server *ps = arg;
	Flotilla__Fleeting__V1__UpdateRequest *rq;
	Flotilla__Fleeting__V1__UpdateResponse out =
	    FLOTILLA__FLEETING__V1__UPDATE_RESPONSE__INIT;
	struct update_acc acc = { 0 };
	char err[PLUGIN_ERR_MAX] = "";
	int rc, code = RPC_OK;

	rq = flotilla__fleeting__v1__update_request__unpack(NULL, reqlen, req);
	if (rq == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "malformed UpdateRequest");
	flotilla__fleeting__v1__update_request__free_unpacked(rq, NULL);
	if ((code = enter(ps, st)) != RPC_OK)
		return code;
	rc = ps->def->ops->update(ps->def->arg, update_emit, &acc, err,
	    sizeof(err));
	leave(ps);
	if (rc != PLUGIN_OK) {
		code = rc_status(rc, err, "update", st);
	} else {
		out.n_instances = acc.n;
		out.instances = acc.v;
		pack_into(resp, &out.base);
	}
	for (size_t i = 0; i < acc.n; i++) {
		free(acc.v[i]->id);
		free(acc.v[i]->cause);
		free(acc.v[i]);
	}
	free(acc.v);
	return code;
}

static int
h_increase(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	struct plugin_server *ps = arg;
	Flotilla__Fleeting__V1__IncreaseRequest *rq;
	Flotilla__Fleeting__V1__IncreaseResponse out =
	    FLOTILLA__FLEETING__V1__INCREASE_RESPONSE__INIT;
	char err[PLUGIN_ERR_MAX] = "";
	int64_t delta, succeeded = 0;
	int rc, code;

	rq = flotilla__fleeting__v1__increase_request__unpack(NULL, reqlen,
	    req);
	if (rq == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "malformed IncreaseRequest");
	delta = rq->delta;
	flotilla__fleeting__v1__increase_request__free_unpacked(rq, NULL);
	if (delta < 1 || delta > PLUGIN_MAX_DELTA)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "increase: delta %lld out of range 1..%d",
		    (long long)delta, PLUGIN_MAX_DELTA);
	if ((code = enter(ps, st)) != RPC_OK)
		return code;
	rc = ps->def->ops->increase(ps->def->arg, delta, &succeeded, err,
	    sizeof(err));
	leave(ps);
	if (succeeded < 0)
		succeeded = 0;
	if (succeeded > delta)
		succeeded = delta;
	if (rc != PLUGIN_OK && succeeded == 0)
		return rc_status(rc, err, "increase", st);
	if (rc != PLUGIN_OK && err[0] == '\0')
		(void)snprintf(err, sizeof(err), "increase failed");
	out.succeeded = succeeded;
	out.error = succeeded < delta || rc != PLUGIN_OK ? err : "";
	pack_into(resp, &out.base);
	log_info("increase: %lld of %lld requested%s%s", (long long)succeeded,
	    (long long)delta, out.error[0] != '\0' ? ": " : "", out.error);
	return RPC_OK;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
h_decrease(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	struct plugin_server *ps = arg;
	Flotilla__Fleeting__V1__DecreaseRequest *rq;
	Flotilla__Fleeting__V1__DecreaseResponse out =
	    FLOTILLA__FLEETING__V1__DECREASE_RESPONSE__INIT;
	char err[PLUGIN_ERR_MAX] = "", **sorted = NULL, **done = NULL;
	bool *ok = NULL;
	size_t n, i, nok = 0;
	int rc, code = RPC_OK;

	rq = flotilla__fleeting__v1__decrease_request__unpack(NULL, reqlen,
	    req);
	if (rq == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "malformed DecreaseRequest");
	n = rq->n_ids;
	if (n > PLUGIN_MAX_IDS) {
		code = rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "decrease: %zu ids, at most %d", n, PLUGIN_MAX_IDS);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((code = check_id(rq->ids[i], "decrease", st)) != RPC_OK)
			goto out;
	}
	if (n > 1) {
		sorted = xcalloc(n, sizeof(*sorted));
		memcpy(sorted, rq->ids, n * sizeof(*sorted));
		qsort(sorted, n, sizeof(*sorted), str_cmp);
		for (i = 1; i < n; i++) {
			if (strcmp(sorted[i - 1], sorted[i]) == 0) {
				code = rpc_status_set(st, RPC_INVALID_ARGUMENT,
				    "decrease: instance id %s given twice",
				    sorted[i]);
				goto out;
			}
		}
	}
	if ((code = enter(ps, st)) != RPC_OK)
		goto out;
	if (n == 0) {
		/* Nothing to do (fleeting's nil, nil). */
		leave(ps);
		pack_into(resp, &out.base);
		goto out;
	}
	ok = xcalloc(n, sizeof(*ok));
	rc = ps->def->ops->decrease(ps->def->arg, (const char *const *)rq->ids,
	    n, ok, err, sizeof(err));
	leave(ps);
	done = xcalloc(n, sizeof(*done));
	for (i = 0; i < n; i++) {
		if (ok[i])
			done[nok++] = rq->ids[i];
	}
	if (rc != PLUGIN_OK && nok == 0) {
		code = rc_status(rc, err, "decrease", st);
		goto out;
	}
	if (rc != PLUGIN_OK && err[0] == '\0')
		(void)snprintf(err, sizeof(err), "decrease failed");
	out.n_succeeded = nok;
	out.succeeded = done;
	out.error = nok < n || rc != PLUGIN_OK ? err : "";
	pack_into(resp, &out.base);
	log_info("decrease: %zu of %zu accepted%s%s", nok, n,
	    out.error[0] != '\0' ? ": " : "", out.error);
out:
	free(done);
	free(ok);
	free(sorted);
	flotilla__fleeting__v1__decrease_request__free_unpacked(rq, NULL);
	return code;
}

static int
h_connect_info(void *arg, const uint8_t *req, size_t reqlen,
    struct sbuf *resp, struct rpc_status *st)
{
	struct plugin_server *ps = arg;
	Flotilla__Fleeting__V1__ConnectInfoRequest *rq;
	Flotilla__Fleeting__V1__ConnectInfoResponse out =
	    FLOTILLA__FLEETING__V1__CONNECT_INFO_RESPONSE__INIT;
	Flotilla__Fleeting__V1__ConnectorConfig cc;
	struct plugin_connect_info ci;
	char err[PLUGIN_ERR_MAX] = "";
	int rc, code;

	rq = flotilla__fleeting__v1__connect_info_request__unpack(NULL, reqlen,
	    req);
	if (rq == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "malformed ConnectInfoRequest");
	if ((code = check_id(rq->id, "connect_info", st)) != RPC_OK)
		goto out;
	if ((code = enter(ps, st)) != RPC_OK)
		goto out;
	memset(&ci, 0, sizeof(ci));
	plugin_connector_copy(&ci.connector, &ps->settings);
	rc = ps->def->ops->connect_info(ps->def->arg, rq->id, &ci, err,
	    sizeof(err));
	leave(ps);
	if (rc != PLUGIN_OK) {
		code = rc_status(rc, err, "connect_info", st);
	} else {
		connector_to_pb(&ci.connector, &cc);
		out.id = rq->id;
		out.connector = &cc;
		out.external_addr = ci.external_addr != NULL ?
		    ci.external_addr : "";
		out.internal_addr = ci.internal_addr != NULL ?
		    ci.internal_addr : "";
		out.expires_unix_ns = ci.expires_unix_ns;
		pack_into(resp, &out.base);
	}
	plugin_connector_release(&ci.connector);
	free(ci.external_addr);
	free(ci.internal_addr);
out:
	flotilla__fleeting__v1__connect_info_request__free_unpacked(rq, NULL);
	return code;
}

static int
h_heartbeat(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	struct plugin_server *ps = arg;
	Flotilla__Fleeting__V1__HeartbeatRequest *rq;
	Flotilla__Fleeting__V1__HeartbeatResponse out =
	    FLOTILLA__FLEETING__V1__HEARTBEAT_RESPONSE__INIT;
	char err[PLUGIN_ERR_MAX] = "";
	int rc, code;

	rq = flotilla__fleeting__v1__heartbeat_request__unpack(NULL, reqlen,
	    req);
	if (rq == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "malformed HeartbeatRequest");
	if ((code = check_id(rq->id, "heartbeat", st)) != RPC_OK)
		goto out;
	if ((code = enter(ps, st)) != RPC_OK)
		goto out;
	rc = ps->def->ops->heartbeat(ps->def->arg, rq->id, err, sizeof(err));
	leave(ps);
	if (rc != PLUGIN_OK)
		code = rc_status(rc, err, "heartbeat", st);
	else
		pack_into(resp, &out.base);
out:
	flotilla__fleeting__v1__heartbeat_request__free_unpacked(rq, NULL);
	return code;
}

/* Run ops->shutdown once (under the init lock, held shared by the caller). */
static int
run_shutdown(struct plugin_server *ps, char *err, size_t errlen)
{
	pthread_mutex_lock(&ps->lock);
	if (ps->shutdown_ran) {
		pthread_mutex_unlock(&ps->lock);
		return PLUGIN_OK;
	}
	ps->shutdown_ran = true;
	pthread_mutex_unlock(&ps->lock);
	if (ps->def->ops->shutdown == NULL)
		return PLUGIN_OK;
	return ps->def->ops->shutdown(ps->def->arg, err, errlen);
}

static int
h_shutdown(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	struct plugin_server *ps = arg;
	Flotilla__Fleeting__V1__ShutdownRequest *rq;
	Flotilla__Fleeting__V1__ShutdownResponse out =
	    FLOTILLA__FLEETING__V1__SHUTDOWN_RESPONSE__INIT;
	char err[PLUGIN_ERR_MAX] = "";
	int rc, code;

	rq = flotilla__fleeting__v1__shutdown_request__unpack(NULL, reqlen,
	    req);
	if (rq == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "malformed ShutdownRequest");
	flotilla__fleeting__v1__shutdown_request__free_unpacked(rq, NULL);
	if ((code = enter(ps, st)) != RPC_OK)
		return code;
	rc = run_shutdown(ps, err, sizeof(err));
	leave(ps);
	if (rc != PLUGIN_OK)
		return rc_status(rc, err, "shutdown", st);
	pack_into(resp, &out.base);
	log_info("instance group shut down");
	return RPC_OK;
}

/* ------------------------------------------------ health and controller */

static int
h_health(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	Grpc__Health__V1__HealthCheckRequest *rq;
	Grpc__Health__V1__HealthCheckResponse out =
	    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	int code = RPC_OK;

	(void)arg;
	rq = grpc__health__v1__health_check_request__unpack(NULL, reqlen, req);
	if (rq == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "malformed HealthCheckRequest");
	log_debug("health check of \"%.64s\"", rq->service);
	if (strcmp(rq->service, "") == 0 || strcmp(rq->service, "plugin") == 0) {
		out.status =
		    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
		pack_into(resp, &out.base);
	} else {
		/* What the standard health server's Check answers. */
		code = rpc_status_set(st, RPC_NOT_FOUND, "unknown service");
	}
	grpc__health__v1__health_check_request__free_unpacked(rq, NULL);
	return code;
}

static int
h_controller_shutdown(void *arg, const uint8_t *req, size_t reqlen,
    struct sbuf *resp, struct rpc_status *st)
{
	struct plugin_server *ps = arg;
	Plugin__Empty *rq;
	Plugin__Empty out = PLUGIN__EMPTY__INIT;
	bool first;

	rq = plugin__empty__unpack(NULL, reqlen, req);
	if (rq == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "malformed Empty");
	plugin__empty__free_unpacked(rq, NULL);
	pthread_mutex_lock(&ps->lock);
	first = !ps->stop_requested;
	ps->stop_requested = true;
	pthread_mutex_unlock(&ps->lock);
	if (first) {
		log_info("controller shutdown requested");
		/* The pipe is empty and has room: one byte cannot fail. */
		while (write(ps->stop_pipe[1], "x", 1) < 0 && errno == EINTR)
			;
	}
	pack_into(resp, &out.base);
	return RPC_OK;
}

/* ------------------------------------------------------------ the server */

/*
 * Every method goes through here, so that stopping can wait for the
 * handlers that run (see plugin_server_free).
 */
static int
dispatch(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	struct method *m = arg;
	struct plugin_server *ps = m->ps;
	int rc;

	pthread_mutex_lock(&ps->lock);
	ps->active++;
	pthread_mutex_unlock(&ps->lock);
	rc = m->fn(ps, req, reqlen, resp, st);
	pthread_mutex_lock(&ps->lock);
	if (--ps->active == 0)
		pthread_cond_broadcast(&ps->idle);
	pthread_mutex_unlock(&ps->lock);
	return rc;
}

static int
add(struct plugin_server *ps, const char *path, rpc_handler_fn fn)
{
	struct method *m;

	if (ps->nmethods == NMETHODS)
		return FL_ERR_INTERNAL;
	m = &ps->methods[ps->nmethods++];
	m->ps = ps;
	m->fn = fn;
	return rpc_server_add_method(ps->srv, path, dispatch, m);
}

struct plugin_server *
plugin_server_new(const struct plugin_def *def, const char *sock_path,
    char *err, size_t errlen)
{
	struct plugin_server *ps;
	const struct plugin_ops *o = def != NULL ? def->ops : NULL;
	unsigned threads;
	int rc = 0;

	if (o == NULL || def->name == NULL || o->init == NULL ||
	    o->update == NULL || o->increase == NULL || o->decrease == NULL ||
	    o->connect_info == NULL) {
		(void)snprintf(err, errlen, "plugin definition lacks a name or "
		    "a required callback");
		return NULL;
	}
	ps = xcalloc(1, sizeof(*ps));
	ps->def = def;
	ps->stop_pipe[0] = ps->stop_pipe[1] = -1;
	pthread_rwlock_init(&ps->init_lock, NULL);
	pthread_mutex_init(&ps->lock, NULL);
	pthread_cond_init(&ps->idle, NULL);
	if (pipe2(ps->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		(void)snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	ps->srv = rpc_server_new(sock_path, PLUGIN_MAX_MSG, err, errlen);
	if (ps->srv == NULL)
		goto fail;
	threads = def->threads != 0 ? def->threads : PLUGIN_DEFAULT_THREADS;
	rc |= rpc_server_set_threads(ps->srv, threads);
	rc |= add(ps, FLEETING_RPC_INIT, h_init);
	rc |= add(ps, FLEETING_RPC_UPDATE, h_update);
	rc |= add(ps, FLEETING_RPC_INCREASE, h_increase);
	rc |= add(ps, FLEETING_RPC_DECREASE, h_decrease);
	rc |= add(ps, FLEETING_RPC_CONNECT_INFO, h_connect_info);
	/* No heartbeat callback: the method is absent (UNIMPLEMENTED). */
	if (o->heartbeat != NULL)
		rc |= add(ps, FLEETING_RPC_HEARTBEAT, h_heartbeat);
	rc |= add(ps, FLEETING_RPC_SHUTDOWN, h_shutdown);
	rc |= add(ps, HEALTH_RPC_CHECK, h_health);
	rc |= add(ps, CONTROLLER_RPC_SHUTDOWN, h_controller_shutdown);
	if (rc != 0) {
		(void)snprintf(err, errlen, "registering methods failed "
		    "(threads %u)", threads);
		goto fail;
	}
	if (rpc_server_start(ps->srv) != 0) {
		(void)snprintf(err, errlen, "starting the server failed");
		goto fail;
	}
	return ps;
fail:
	rpc_server_free(ps->srv);
	if (ps->stop_pipe[0] >= 0)
		close(ps->stop_pipe[0]);
	if (ps->stop_pipe[1] >= 0)
		close(ps->stop_pipe[1]);
	pthread_rwlock_destroy(&ps->init_lock);
	pthread_mutex_destroy(&ps->lock);
	pthread_cond_destroy(&ps->idle);
	free(ps);
	return NULL;
}

int
plugin_server_stop_fd(const struct plugin_server *ps)
{
	return ps->stop_pipe[0];
}

void
plugin_server_free(struct plugin_server *ps, bool run_sd)
{
	char err[PLUGIN_ERR_MAX] = "";

	if (ps == NULL)
		return;
	/*
	 * gRPC's own graceful shutdown also waits for the clients to close
	 * their connections, which a manager that has just called
	 * GRPCController/Shutdown need not do.  So wait (1 s at most) for
	 * the handlers running now, give their answers 100 ms to leave, and
	 * then cut whatever is still connected.
	 */
	{
		struct timespec until;
		unsigned left;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_mutex_lock(&ps->lock);
		while (ps->active > 0 && pthread_cond_timedwait(&ps->idle,
		    &ps->lock, &until) != ETIMEDOUT)
			;
		left = ps->active;
		pthread_mutex_unlock(&ps->lock);
		if (left > 0)
			log_warn("stopping with %u calls still running: they "
			    "are cancelled", left);
	}
	(void)rpc_server_shutdown(ps->srv, 100);
	rpc_server_free(ps->srv);
	if (run_sd && ps->initialised &&
	    run_shutdown(ps, err, sizeof(err)) != PLUGIN_OK)
		log_error("shutdown: %s", err[0] != '\0' ? err : "failed");
	if (ps->def->ops->release != NULL)
		ps->def->ops->release(ps->def->arg);
	plugin_connector_release(&ps->settings);
	close(ps->stop_pipe[0]);
	close(ps->stop_pipe[1]);
	pthread_rwlock_destroy(&ps->init_lock);
	pthread_mutex_destroy(&ps->lock);
	pthread_cond_destroy(&ps->idle);
	free(ps);
}

/* ------------------------------------------------------- plugin_config */

/* The JSON type's name, for messages. */
static const char *
json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

/* config[key], NULL when absent or null. */
static const json_t *
cfg_get(const json_t *config, const char *key)
{
	const json_t *v = config != NULL ?
	    json_object_get(config, key) : NULL;

	return v != NULL && !json_is_null(v) ? v : NULL;
}

int
plugin_config_check_keys(const json_t *config, const char *const *known,
    char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	if (config == NULL)
		return 0;
	if (!json_is_object(config)) {
		(void)snprintf(err, errlen, "plugin_config is not an object");
		return FL_ERR_INVAL;
	}
	json_object_foreach((json_t *)config, key, v) {
		size_t i;

		for (i = 0; known[i] != NULL; i++) {
			if (strcmp(known[i], key) == 0)
				break;
		}
		if (known[i] == NULL) {
			(void)snprintf(err, errlen,
			    "unknown key %s in plugin_config", key);
			return FL_ERR_INVAL;
		}
	}
	return 0;
}

int
plugin_config_string(const json_t *config, const char *key, const char *def,
    char **out, char *err, size_t errlen)
{
	const json_t *v = cfg_get(config, key);

	if (v == NULL) {
		*out = def != NULL ? xstrdup(def) : NULL;
		return 0;
	}
	if (!json_is_string(v)) {
		(void)snprintf(err, errlen, "%s: want a string, not %s", key,
		    json_kind(v));
		return FL_ERR_INVAL;
	}
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		(void)snprintf(err, errlen, "%s: NUL byte in string", key);
		return FL_ERR_INVAL;
	}
	*out = xstrdup(json_string_value(v));
	return 0;
}

int
plugin_config_int(const json_t *config, const char *key, int64_t def,
    int64_t min, int64_t max, int64_t *out, char *err, size_t errlen)
{
	const json_t *v = cfg_get(config, key);
	int64_t x;

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v)) {
		(void)snprintf(err, errlen, "%s: want an integer, not %s", key,
		    json_kind(v));
		return FL_ERR_INVAL;
	}
	x = (int64_t)json_integer_value(v);
	if (x < min || x > max) {
		(void)snprintf(err, errlen, "%s: %lld is out of range %lld..%lld",
		    key, (long long)x, (long long)min, (long long)max);
		return FL_ERR_INVAL;
	}
	*out = x;
	return 0;
}

int
plugin_config_bool(const json_t *config, const char *key, bool def,
    bool *out, char *err, size_t errlen)
{
	const json_t *v = cfg_get(config, key);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (!json_is_boolean(v)) {
		(void)snprintf(err, errlen, "%s: want true or false, not %s",
		    key, json_kind(v));
		return FL_ERR_INVAL;
	}
	*out = json_is_true(v);
	return 0;
}

int
plugin_config_duration(const json_t *config, const char *key, int64_t def,
    int64_t *out_ns, char *err, size_t errlen)
{
	const json_t *v = cfg_get(config, key);
	int64_t ns;

	if (v == NULL) {
		*out_ns = def;
		return 0;
	}
	if (json_is_integer(v)) {
		ns = (int64_t)json_integer_value(v);
	} else if (json_is_string(v)) {
		if (duration_parse(json_string_value(v), &ns) != 0) {
			(void)snprintf(err, errlen, "%s: \"%.64s\" is not a "
			    "duration (such as \"30s\" or \"1m30s\")", key,
			    json_string_value(v));
			return FL_ERR_INVAL;
		}
	} else {
		(void)snprintf(err, errlen, "%s: want a duration string, not %s",
		    key, json_kind(v));
		return FL_ERR_INVAL;
	}
	if (ns < 0) {
		(void)snprintf(err, errlen, "%s: negative duration", key);
		return FL_ERR_INVAL;
	}
	*out_ns = ns;
	return 0;
}

/* --------------------------------------------------------- the process */

static void
grpc_log(int level, const char *msg)
{
	if (level >= 2)
		log_error("grpc: %s", msg);
	else
		log_debug("grpc: %s", msg);
}

/* Go's names for the machine, as in --version's "OS/Arch". */
static const char *
go_arch(const char *machine)
{
	static const struct { const char *uname, *go; } map[] = {
		{ "x86_64", "amd64" }, { "aarch64", "arm64" },
		{ "armv7l", "arm" }, { "armv6l", "arm" }, { "i686", "386" },
		{ "i386", "386" }, { "ppc64le", "ppc64le" },
		{ "s390x", "s390x" }, { "riscv64", "riscv64" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(machine, map[i].uname) == 0)
			return map[i].go;
	}
	return machine;
}

static void
print_version(const struct plugin_def *def)
{
	struct utsname u;
	const char *arch = "unknown";

	if (uname(&u) == 0)
		arch = go_arch(u.machine);
	printf("Name:         %s\n", def->name);
	printf("Version:      %s\n", def->version != NULL ? def->version : "");
	printf("Git revision: %s\n", def->revision != NULL &&
	    def->revision[0] != '\0' ? def->revision : "unknown");
	printf("OS/Arch:      linux/%s\n", arch);
	printf("Protocol:     core %d, app %d (flotilla.fleeting.v1)\n",
	    PLUGIN_CORE_VERSION, PLUGIN_APP_VERSION);
}

static void
print_usage(const struct plugin_def *def, FILE *f)
{
	fprintf(f, "usage: %s [--version | --help]\n\n"
	    "%s is a fleeting plugin: flotilla starts it and speaks gRPC to "
	    "it over a\nunix socket (see proto/README.md).  It is not meant "
	    "to be run by hand.\n", def->name, def->name);
	if (def->help != NULL)
		fprintf(f, "\n%s", def->help);
}

/* Write the whole line to fd 1; 0 or -1. */
static int
write_stdout(const char *s, size_t n)
{
	while (n > 0) {
		ssize_t r = write(STDOUT_FILENO, s, n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * The socket's path: DIR/plugin<8 hex digits> (go-plugin names its socket
 * "plugin" plus random digits).  0 or -1 (too long).
 */
static int
socket_path(const char *dir, char *buf, size_t len)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
	if (snprintf(buf, len, "%s/plugin%08x", dir, r) >= (int)len)
		return -1;
	return buf[0] == '/' && strlen(buf) <= 107 ? 0 : -1;
}

int64_t
plugin_call_remaining_ms(void)
{
	return rpc_handler_remaining_ms();
}

int
plugin_serve(const struct plugin_def *def, int argc, char **argv)
{
	struct plugin_server *ps = NULL;
	struct handshake hs;
	struct sigaction sa;
	sigset_t set;
	struct pollfd pfd[2];
	char err[512], line[HANDSHAKE_LINE_MAX], sock[128], tmpl[128];
	char privdir[128] = "";
	const char *cookie, *versions, *dir, *lvl;
	enum log_level level = LOG_INFO;
	int app, sfd = -1, status = 1, sig = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0 ||
		    strcmp(argv[i], "-version") == 0 ||
		    strcmp(argv[i], "-v") == 0) {
			print_version(def);
			return 0;
		}
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			print_usage(def, stdout);
			return 0;
		}
		fprintf(stderr, "%s: unknown argument %s\n", def->name, argv[i]);
		print_usage(def, stderr);
		return 2;
	}

	cookie = getenv(PLUGIN_COOKIE_KEY);
	if (cookie == NULL || strcmp(cookie, PLUGIN_COOKIE_VALUE) != 0) {
		fprintf(stderr, "This binary is a plugin. These are not meant "
		    "to be executed directly.\nPlease execute the program that "
		    "consumes these plugins, which will\nload any plugins "
		    "automatically\n");
		return 1;
	}

	log_set_format(LOG_FORMAT_HCLOG);
	log_set_module(def->name);
	lvl = getenv(PLUGIN_LOG_LEVEL_ENV);
	if (lvl != NULL && lvl[0] != '\0' && log_level_parse(lvl, &level) != 0)
		log_warn("%s=%s is not a log level; using info",
		    PLUGIN_LOG_LEVEL_ENV, lvl);
	log_set_level(level);

	versions = getenv(PLUGIN_VERSIONS_ENV);
	if (versions == NULL || versions[0] == '\0') {
		app = PLUGIN_APP_VERSION;
	} else if ((app = handshake_negotiate(versions,
	    PLUGIN_APP_VERSION)) == 0) {
		log_error("Incompatible API version with plugin. Plugin "
		    "version: %d, Client versions: %s", PLUGIN_APP_VERSION,
		    versions);
		goto out;
	}

	/*
	 * Signals, before any thread exists so that every thread inherits
	 * the mask: SIGTERM is only read from the signalfd; interrupts and
	 * hang-ups sent to the manager's process group are not ours.
	 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}

	dir = getenv(PLUGIN_SOCKET_DIR_ENV);
	if (dir == NULL || dir[0] == '\0') {
		const char *tmp = getenv("TMPDIR");

		if (tmp == NULL || tmp[0] != '/')
			tmp = "/tmp";
		if (snprintf(tmpl, sizeof(tmpl), "%s/plugin-XXXXXX", tmp) >=
		    (int)sizeof(tmpl) || mkdtemp(tmpl) == NULL) {
			log_error("cannot make a socket directory in %s: %s",
			    tmp, strerror(errno));
			goto out;
		}
		memcpy(privdir, tmpl, sizeof(privdir));
		dir = privdir;
	}
	if (socket_path(dir, sock, sizeof(sock)) != 0) {
		log_error("socket path in %s: not absolute or too long", dir);
		goto out;
	}

	rpc_set_log_handler(grpc_log);
	ps = plugin_server_new(def, sock, err, sizeof(err));
	if (ps == NULL) {
		log_error("cannot serve on %s: %s", sock, err);
		goto out;
	}

	memset(&hs, 0, sizeof(hs));
	hs.core = PLUGIN_CORE_VERSION;
	hs.app = app;
	memcpy(hs.network, "unix", 5);
	memcpy(hs.address, sock, strlen(sock) + 1);
	memcpy(hs.protocol, "grpc", 5);
	if (handshake_format(&hs, line, sizeof(line)) != 0 ||
	    write_stdout(line, strlen(line)) != 0) {
		log_error("cannot write the handshake line: %s", strerror(errno));
		goto out;
	}
	/* From now on stdout is stderr. */
	fflush(stdout);
	if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		log_warn("dup2: %s", strerror(errno));
	{
		char v[16];
		const struct log_field f[] = {
			{ "address", sock },
			{ "version", def->version != NULL ? def->version : "" },
			{ "protocol", v },
		};

		(void)snprintf(v, sizeof(v), "%d", app);
		log_infof(f, 3, "plugin serving");
	}

	pfd[0].fd = plugin_server_stop_fd(ps);
	pfd[0].events = POLLIN;
	pfd[1].fd = sfd;
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("poll: %s", strerror(errno));
			goto out;
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				sig = (int)si.ssi_signo;
				log_info("SIGTERM: stopping");
				break;
			}
		}
		if (pfd[0].revents & POLLIN)
			break;
	}
	status = 0;
out:
	plugin_server_free(ps, sig == SIGTERM);
	if (privdir[0] != '\0')
		(void)rmdir(privdir);
	if (sfd >= 0)
		close(sfd);
	if (status == 0)
		log_info("plugin exited");
	log_release();
	return status;
}

/*
 * Unit tests for lib/plugin_sdk: a fake instance group (in memory, behind
 * a mutex) served by plugin_server_new on a socket in a fresh temporary
 * directory and called with lib/rpc's client and real protobuf-c
 * messages, so what is checked is what a manager sees: the status codes
 * of the contract (UNKNOWN before Init, INVALID_ARGUMENT for bad input,
 * NOT_FOUND, FAILED_PRECONDITION, UNIMPLEMENTED without a heartbeat,
 * RESOURCE_EXHAUSTED over 16 MiB), the fields of every answer, partial
 * success, Init serialised against other calls, health, the controller's
 * Shutdown and the plugin_config helpers.
 *
 * plugin_serve itself (arguments, cookie, version negotiation, handshake
 * line, SIGINT ignored, SIGTERM) runs in a child: this program re-executes
 * itself as "test_plugin_sdk serve [ARGS]" so that the child starts with
 * a clean gRPC library and its own signal dispositions.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "handshake.h"
#include "plugin_sdk.h"
#include "proto/controller.pb-c.h"
#include "proto/controller.rpc.h"
#include "proto/fleeting.pb-c.h"
#include "proto/fleeting.rpc.h"
#include "proto/health.pb-c.h"
#include "proto/health.rpc.h"
#include "rpc.h"
#include "xmalloc.h"

static char self_exe[4096];

/* ------------------------------------------------------ the fake group */

#define FAKE_MAX 3

struct fake {
	pthread_mutex_t mu;
	int64_t max_size;
	int next;
	char ids[16][32];
	int states[16];
	int n;
	int init_calls, shutdown_calls, release_calls;
	int init_delay_ms;
	volatile int in_init;
};

static struct fake fk;

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
fake_init(void *arg, const json_t *config,
    const struct plugin_connector *settings,
    struct plugin_provider_info *info, char *err, size_t errlen)
{
	static const char *const keys[] = { "name", "max_size", "boot",
	    "fail", NULL };
	static const char *const caps[] = { "test_cap", NULL };
	struct fake *f = arg;
	char *name = NULL;
	int64_t max, boot;
	bool fail;

	f->in_init = 1;
	f->init_calls++;
	if (f->init_delay_ms > 0)
		sleep_ms(f->init_delay_ms);
	f->in_init = 0;
	if (plugin_config_check_keys(config, keys, err, errlen) != 0 ||
	    plugin_config_int(config, "max_size", FAKE_MAX, 1, 16, &max, err,
	    errlen) != 0 ||
	    plugin_config_duration(config, "boot", 0, &boot, err, errlen) != 0 ||
	    plugin_config_bool(config, "fail", false, &fail, err, errlen) != 0 ||
	    plugin_config_string(config, "name", "fake", &name, err,
	    errlen) != 0)
		return PLUGIN_BAD_CONFIG;
	if (fail) {
		free(name);
		(void)snprintf(err, errlen, "cloud said no");
		return PLUGIN_FAILED;
	}
	/* The settings arrive as sent. */
	if (settings->username == NULL ||
	    strcmp(settings->username, "core") != 0 ||
	    settings->key_len != 4 || memcmp(settings->key, "KEY\0", 4) != 0) {
		free(name);
		(void)snprintf(err, errlen, "settings not as sent");
		return PLUGIN_FAILED;
	}
	f->max_size = max;
	(void)snprintf(info->id, sizeof(info->id), "fake/%s", name);
	info->max_size = max;
	info->capabilities = caps;
	free(name);
	return PLUGIN_OK;
}

static int
fake_update(void *arg, plugin_emit_fn emit, void *emit_arg, char *err,
    size_t errlen)
{
	struct fake *f = arg;

	(void)err;
	(void)errlen;
	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < f->n; i++)
		emit(emit_arg, f->ids[i], (enum plugin_state)f->states[i],
		    f->states[i] == PLUGIN_STATE_TIMEOUT ? "boot failed" : NULL);
	/* Invalid reports are left out by the SDK. */
	emit(emit_arg, "", PLUGIN_STATE_RUNNING, NULL);
	emit(emit_arg, "bad-state", (enum plugin_state)42, NULL);
	pthread_mutex_unlock(&f->mu);
	return PLUGIN_OK;
}

static int
fake_increase(void *arg, int64_t delta, int64_t *succeeded, char *err,
    size_t errlen)
{
	struct fake *f = arg;
	int rc = PLUGIN_OK;

	pthread_mutex_lock(&f->mu);
	for (int64_t i = 0; i < delta; i++) {
		if (f->n >= f->max_size) {
			(void)snprintf(err, errlen, "max_size %lld reached",
			    (long long)f->max_size);
			rc = PLUGIN_FAILED;
			break;
		}
		(void)snprintf(f->ids[f->n], sizeof(f->ids[0]), "fake-%d",
		    ++f->next);
		f->states[f->n++] = PLUGIN_STATE_CREATING;
		(*succeeded)++;
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

static int
find(struct fake *f, const char *id)
{
	for (int i = 0; i < f->n; i++) {
		if (strcmp(f->ids[i], id) == 0)
			return i;
	}
	return -1;
}

static int
fake_decrease(void *arg, const char *const *ids, size_t n, bool *succeeded,
    char *err, size_t errlen)
{
	struct fake *f = arg;
	int rc = PLUGIN_OK;

	pthread_mutex_lock(&f->mu);
	for (size_t i = 0; i < n; i++) {
		int k = find(f, ids[i]);

		if (strncmp(ids[i], "stuck", 5) == 0) {
			(void)snprintf(err, errlen, "%s: cannot delete", ids[i]);
			rc = PLUGIN_FAILED;
			continue;
		}
		if (k >= 0)
			f->states[k] = PLUGIN_STATE_DELETING;
		succeeded[i] = true;	/* gone ones count as deleted */
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

static int
fake_connect_info(void *arg, const char *id, struct plugin_connect_info *out,
    char *err, size_t errlen)
{
	struct fake *f = arg;
	int k;

	if (strcmp(id, "sick") == 0) {
		(void)snprintf(err, errlen, "instance sick is unhealthy");
		return PLUGIN_UNHEALTHY;
	}
	pthread_mutex_lock(&f->mu);
	k = find(f, id);
	pthread_mutex_unlock(&f->mu);
	if (k < 0) {
		(void)snprintf(err, errlen, "no instance %s", id);
		return PLUGIN_NOT_FOUND;
	}
	plugin_set_str(&out->connector.os, "linux");
	plugin_set_str(&out->connector.protocol, "ssh");
	out->connector.protocol_port = 2222;
	plugin_set_key(&out->connector, "PEM", 3);
	out->internal_addr = xstrdup("127.0.0.9:2222");
	out->external_addr = xstrdup("127.0.0.9:2222");
	out->expires_unix_ns = 42;
	return PLUGIN_OK;
}

static int
fake_heartbeat(void *arg, const char *id, char *err, size_t errlen)
{
	struct fake *f = arg;
	int k;

	if (strcmp(id, "sick") == 0) {
		(void)snprintf(err, errlen, "sshd is not running");
		return PLUGIN_UNHEALTHY;
	}
	pthread_mutex_lock(&f->mu);
	k = find(f, id);
	pthread_mutex_unlock(&f->mu);
	return k >= 0 ? PLUGIN_OK : PLUGIN_NOT_FOUND;
}

static int
fake_shutdown(void *arg, char *err, size_t errlen)
{
	struct fake *f = arg;
	const char *marker = getenv("FAKE_MARKER");

	(void)err;
	(void)errlen;
	f->shutdown_calls++;
	if (marker != NULL) {
		int fd = open(marker, O_WRONLY | O_CREAT | O_APPEND, 0600);

		if (fd >= 0) {
			(void)!write(fd, "shutdown\n", 9);
			close(fd);
		}
	}
	return PLUGIN_OK;
}

static void
fake_release(void *arg)
{
	struct fake *f = arg;

	f->release_calls++;
}

static const struct plugin_ops fake_ops = {
	.init = fake_init,
	.update = fake_update,
	.increase = fake_increase,
	.decrease = fake_decrease,
	.connect_info = fake_connect_info,
	.heartbeat = fake_heartbeat,
	.shutdown = fake_shutdown,
	.release = fake_release,
};

static const struct plugin_ops fake_ops_nohb = {
	.init = fake_init,
	.update = fake_update,
	.increase = fake_increase,
	.decrease = fake_decrease,
	.connect_info = fake_connect_info,
};

static const struct plugin_def fake_def = {
	.name = "fleeting-plugin-fake",
	.version = "9.8.7",
	.revision = "abc123",
	.help = "plugin_config keys: name, max_size, boot, fail\n",
	.ops = &fake_ops,
	.arg = &fk,
	.threads = 4,
};

static const struct plugin_def fake_def_nohb = {
	.name = "fleeting-plugin-fake",
	.version = "9.8.7",
	.ops = &fake_ops_nohb,
	.arg = &fk,
};

/* ------------------------------------------------------------ fixture */

struct fixture {
	char dir[64];
	char path[128];
	struct plugin_server *ps;
	struct rpc_client *cl;
};

static void
fake_reset(void)
{
	pthread_mutex_destroy(&fk.mu);
	memset(&fk, 0, sizeof(fk));
	pthread_mutex_init(&fk.mu, NULL);
}

static int
setup_with(void **state, const struct plugin_def *def)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char err[256];

	fake_reset();
	memcpy(f->dir, "/tmp/test_psdk.XXXXXX", 22);
	if (mkdtemp(f->dir) == NULL)
		return -1;
	(void)snprintf(f->path, sizeof(f->path), "%s/plugin.sock", f->dir);
	f->ps = plugin_server_new(def, f->path, err, sizeof(err));
	if (f->ps == NULL) {
		fprintf(stderr, "plugin_server_new: %s\n", err);
		return -1;
	}
	f->cl = rpc_client_new(f->path, PLUGIN_MAX_MSG, NULL, err, sizeof(err));
	if (f->cl == NULL)
		return -1;
	*state = f;
	return 0;
}

static int
setup(void **state)
{
	return setup_with(state, &fake_def);
}

static int
setup_nohb(void **state)
{
	return setup_with(state, &fake_def_nohb);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	rpc_client_free(f->cl);
	plugin_server_free(f->ps, false);
	(void)rmdir(f->dir);
	free(f);
	return 0;
}

/* Call method with message m (NULL: empty); the response in resp. */
static int
call(struct fixture *f, const char *method, const ProtobufCMessage *m,
    struct sbuf *resp, struct rpc_status *st)
{
	size_t n = m != NULL ? protobuf_c_message_get_packed_size(m) : 0;
	uint8_t *buf = xmalloc(n + 1);
	int rc;

	if (m != NULL)
		protobuf_c_message_pack(m, buf);
	sbuf_reset(resp);
	rc = rpc_call(f->cl, method, buf, n, 5000, resp, st);
	free(buf);
	(void)rc;
	return st->code;
}

/* Init with plugin_config json (NULL: none) and the test's settings. */
static int
do_init(struct fixture *f, const char *json, struct rpc_status *st,
    Flotilla__Fleeting__V1__InitResponse **out)
{
	Flotilla__Fleeting__V1__InitRequest rq =
	    FLOTILLA__FLEETING__V1__INIT_REQUEST__INIT;
	Flotilla__Fleeting__V1__ConnectorConfig cc =
	    FLOTILLA__FLEETING__V1__CONNECTOR_CONFIG__INIT;
	struct sbuf resp;
	int code;

	cc.username = "core";
	cc.key.data = (uint8_t *)"KEY\0";
	cc.key.len = 4;
	cc.use_static_credentials = 1;
	cc.timeout_ns = 7;
	rq.settings = &cc;
	if (json != NULL) {
		rq.plugin_config.data = (uint8_t *)json;
		rq.plugin_config.len = strlen(json);
	}
	sbuf_init(&resp);
	code = call(f, FLEETING_RPC_INIT, &rq.base, &resp, st);
	if (out != NULL)
		*out = code == RPC_OK ?
		    flotilla__fleeting__v1__init_response__unpack(NULL,
		    resp.len, (uint8_t *)resp.buf) : NULL;
	sbuf_release(&resp);
	return code;
}

static int
do_increase(struct fixture *f, int64_t delta, struct rpc_status *st,
    int64_t *succeeded, char *errbuf, size_t errlen)
{
	Flotilla__Fleeting__V1__IncreaseRequest rq =
	    FLOTILLA__FLEETING__V1__INCREASE_REQUEST__INIT;
	Flotilla__Fleeting__V1__IncreaseResponse *r;
	struct sbuf resp;
	int code;

	rq.delta = delta;
	sbuf_init(&resp);
	code = call(f, FLEETING_RPC_INCREASE, &rq.base, &resp, st);
	if (code == RPC_OK) {
		r = flotilla__fleeting__v1__increase_response__unpack(NULL,
		    resp.len, (uint8_t *)resp.buf);
		assert_non_null(r);
		*succeeded = r->succeeded;
		(void)snprintf(errbuf, errlen, "%s", r->error);
		flotilla__fleeting__v1__increase_response__free_unpacked(r,
		    NULL);
	}
	sbuf_release(&resp);
	return code;
}

/* Update: the instances as "id=state" joined by spaces, into buf. */
static int
do_update(struct fixture *f, struct rpc_status *st, char *buf, size_t len)
{
	Flotilla__Fleeting__V1__UpdateRequest rq =
	    FLOTILLA__FLEETING__V1__UPDATE_REQUEST__INIT;
	Flotilla__Fleeting__V1__UpdateResponse *r;
	struct sbuf resp, out;
	int code;

	sbuf_init(&resp);
	sbuf_init(&out);
	code = call(f, FLEETING_RPC_UPDATE, &rq.base, &resp, st);
	if (code == RPC_OK) {
		r = flotilla__fleeting__v1__update_response__unpack(NULL,
		    resp.len, (uint8_t *)resp.buf);
		assert_non_null(r);
		for (size_t i = 0; i < r->n_instances; i++)
			sbuf_addf(&out, "%s%s=%d%s%s", i ? " " : "",
			    r->instances[i]->id, (int)r->instances[i]->state,
			    r->instances[i]->cause[0] ? ":" : "",
			    r->instances[i]->cause);
		flotilla__fleeting__v1__update_response__free_unpacked(r, NULL);
	}
	(void)snprintf(buf, len, "%s", out.buf);
	sbuf_release(&out);
	sbuf_release(&resp);
	return code;
}

/* Decrease ids; the succeeded ids joined by spaces into buf. */
static int
do_decrease(struct fixture *f, const char **ids, size_t n,
    struct rpc_status *st, char *buf, size_t len, char *errbuf, size_t elen)
{
	Flotilla__Fleeting__V1__DecreaseRequest rq =
	    FLOTILLA__FLEETING__V1__DECREASE_REQUEST__INIT;
	Flotilla__Fleeting__V1__DecreaseResponse *r;
	struct sbuf resp, out;
	int code;

	rq.n_ids = n;
	rq.ids = (char **)ids;
	sbuf_init(&resp);
	sbuf_init(&out);
	code = call(f, FLEETING_RPC_DECREASE, &rq.base, &resp, st);
	if (code == RPC_OK) {
		r = flotilla__fleeting__v1__decrease_response__unpack(NULL,
		    resp.len, (uint8_t *)resp.buf);
		assert_non_null(r);
		for (size_t i = 0; i < r->n_succeeded; i++)
			sbuf_addf(&out, "%s%s", i ? " " : "", r->succeeded[i]);
		(void)snprintf(errbuf, elen, "%s", r->error);
		flotilla__fleeting__v1__decrease_response__free_unpacked(r,
		    NULL);
	}
	(void)snprintf(buf, len, "%s", out.buf);
	sbuf_release(&out);
	sbuf_release(&resp);
	return code;
}

static int
do_by_id(struct fixture *f, const char *method, const char *id,
    struct rpc_status *st, struct sbuf *resp)
{
	Flotilla__Fleeting__V1__ConnectInfoRequest rq =
	    FLOTILLA__FLEETING__V1__CONNECT_INFO_REQUEST__INIT;

	/* HeartbeatRequest has the same shape (string id = 1). */
	rq.id = (char *)id;
	return call(f, method, &rq.base, resp, st);
}

static int
do_health(struct fixture *f, const char *service, struct rpc_status *st,
    int *status)
{
	Grpc__Health__V1__HealthCheckRequest rq =
	    GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	Grpc__Health__V1__HealthCheckResponse *r;
	struct sbuf resp;
	int code;

	rq.service = (char *)service;
	sbuf_init(&resp);
	code = call(f, HEALTH_RPC_CHECK, &rq.base, &resp, st);
	*status = -1;
	if (code == RPC_OK) {
		r = grpc__health__v1__health_check_response__unpack(NULL,
		    resp.len, (uint8_t *)resp.buf);
		assert_non_null(r);
		*status = (int)r->status;
		grpc__health__v1__health_check_response__free_unpacked(r, NULL);
	}
	sbuf_release(&resp);
	return code;
}

/* -------------------------------------------------------------- tests */

static void
test_before_init(void **state)
{
	struct fixture *f = *state;
	struct rpc_status st;
	struct sbuf resp;
	char buf[256], e[256];
	int64_t n = 0;
	int hs;

	sbuf_init(&resp);
	assert_int_equal(do_update(f, &st, buf, sizeof(buf)), RPC_UNKNOWN);
	assert_string_equal(st.message, "not initialised");
	assert_int_equal(do_increase(f, 1, &st, &n, e, sizeof(e)), RPC_UNKNOWN);
	assert_string_equal(st.message, "not initialised");
	{
		const char *ids[] = { "fake-1" };

		assert_int_equal(do_decrease(f, ids, 1, &st, buf, sizeof(buf),
		    e, sizeof(e)), RPC_UNKNOWN);
	}
	assert_int_equal(do_by_id(f, FLEETING_RPC_CONNECT_INFO, "fake-1", &st,
	    &resp), RPC_UNKNOWN);
	assert_int_equal(do_by_id(f, FLEETING_RPC_HEARTBEAT, "fake-1", &st,
	    &resp), RPC_UNKNOWN);
	assert_int_equal(call(f, FLEETING_RPC_SHUTDOWN, NULL, &resp, &st),
	    RPC_UNKNOWN);
	assert_string_equal(st.message, "not initialised");
	assert_int_equal(fk.shutdown_calls, 0);

	/* Health does not depend on Init. */
	assert_int_equal(do_health(f, "", &st, &hs), RPC_OK);
	assert_int_equal(hs,
	    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	assert_int_equal(do_health(f, "plugin", &st, &hs), RPC_OK);
	assert_int_equal(hs,
	    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
	assert_int_equal(do_health(f, "other", &st, &hs), RPC_NOT_FOUND);
	/* Garbage where a message should be. */
	assert_int_equal(rpc_call(f->cl, HEALTH_RPC_CHECK, "\xff\xff\xff", 3,
	    5000, &resp, &st), FL_ERR_INVAL);
	assert_int_equal(st.code, RPC_INVALID_ARGUMENT);
	sbuf_release(&resp);
}

static void
test_init(void **state)
{
	struct fixture *f = *state;
	struct rpc_status st;
	Flotilla__Fleeting__V1__InitResponse *r;

	assert_int_equal(do_init(f, "{\"name\":\"a\",\"colour\":1}", &st, NULL),
	    RPC_INVALID_ARGUMENT);
	assert_string_equal(st.message, "unknown key colour in plugin_config");
	assert_int_equal(do_init(f, "{\"max_size\":\"3\"}", &st, NULL),
	    RPC_INVALID_ARGUMENT);
	assert_string_equal(st.message,
	    "max_size: want an integer, not a string");
	assert_int_equal(do_init(f, "{\"max_size\":99}", &st, NULL),
	    RPC_INVALID_ARGUMENT);
	assert_string_equal(st.message, "max_size: 99 is out of range 1..16");
	assert_int_equal(do_init(f, "{\"boot\":\"5 seconds\"}", &st, NULL),
	    RPC_INVALID_ARGUMENT);
	assert_int_equal(do_init(f, "{\"boot\":true}", &st, NULL),
	    RPC_INVALID_ARGUMENT);
	assert_int_equal(do_init(f, "{\"fail\":\"yes\"}", &st, NULL),
	    RPC_INVALID_ARGUMENT);
	assert_int_equal(do_init(f, "{\"name\":", &st, NULL),
	    RPC_INVALID_ARGUMENT);
	assert_non_null(strstr(st.message, "plugin_config: invalid JSON"));
	assert_int_equal(do_init(f, "[1,2]", &st, NULL), RPC_INVALID_ARGUMENT);
	assert_string_equal(st.message, "plugin_config: not a JSON object");
	assert_int_equal(do_init(f, "{\"name\":\"a\",\"name\":\"b\"}", &st,
	    NULL), RPC_INVALID_ARGUMENT);
	/* A plugin error is UNKNOWN with its text; Init may be retried. */
	assert_int_equal(do_init(f, "{\"fail\":true}", &st, NULL), RPC_UNKNOWN);
	assert_string_equal(st.message, "cloud said no");
	assert_int_equal(do_update(f, &st, (char[8]){ 0 }, 8), RPC_UNKNOWN);

	assert_int_equal(do_init(f, "{\"name\":\"grp\",\"max_size\":3,"
	    "\"boot\":\"1m30s\"}", &st, &r), RPC_OK);
	assert_non_null(r);
	assert_non_null(r->provider_info);
	assert_string_equal(r->provider_info->id, "fake/grp");
	assert_int_equal(r->provider_info->max_size, 3);
	assert_string_equal(r->provider_info->version, "9.8.7");
	assert_string_equal(r->provider_info->build_info,
	    "fleeting-plugin-fake 9.8.7 (revision abc123)");
	assert_int_equal(r->provider_info->n_capabilities, 1);
	assert_string_equal(r->provider_info->capabilities[0], "test_cap");
	flotilla__fleeting__v1__init_response__free_unpacked(r, NULL);

	/* Once only. */
	assert_int_equal(do_init(f, NULL, &st, NULL), RPC_UNKNOWN);
	assert_string_equal(st.message, "already initialised");
}

static void
test_empty_config(void **state)
{
	struct fixture *f = *state;
	struct rpc_status st;
	Flotilla__Fleeting__V1__InitResponse *r;

	/* No plugin_config at all: an empty object, defaults apply. */
	assert_int_equal(do_init(f, NULL, &st, &r), RPC_OK);
	assert_string_equal(r->provider_info->id, "fake/fake");
	assert_int_equal(r->provider_info->max_size, FAKE_MAX);
	flotilla__fleeting__v1__init_response__free_unpacked(r, NULL);
}

static void
test_group_calls(void **state)
{
	struct fixture *f = *state;
	struct rpc_status st;
	struct sbuf resp;
	char buf[512], e[256];
	int64_t n;

	sbuf_init(&resp);
	assert_int_equal(do_init(f, "{\"max_size\":3}", &st, NULL), RPC_OK);

	assert_int_equal(do_update(f, &st, buf, sizeof(buf)), RPC_OK);
	assert_string_equal(buf, "");
	assert_int_equal(do_increase(f, 2, &st, &n, e, sizeof(e)), RPC_OK);
	assert_int_equal(n, 2);
	assert_string_equal(e, "");
	/* Partial success: OK, fewer, and why. */
	assert_int_equal(do_increase(f, 5, &st, &n, e, sizeof(e)), RPC_OK);
	assert_int_equal(n, 1);
	assert_string_equal(e, "max_size 3 reached");
	/* Nothing at all: the call fails. */
	assert_int_equal(do_increase(f, 1, &st, &n, e, sizeof(e)), RPC_UNKNOWN);
	assert_string_equal(st.message, "max_size 3 reached");
	assert_int_equal(do_increase(f, 0, &st, &n, e, sizeof(e)),
	    RPC_INVALID_ARGUMENT);
	assert_int_equal(do_increase(f, -4, &st, &n, e, sizeof(e)),
	    RPC_INVALID_ARGUMENT);
	assert_int_equal(do_increase(f, PLUGIN_MAX_DELTA + 1, &st, &n, e,
	    sizeof(e)), RPC_INVALID_ARGUMENT);

	pthread_mutex_lock(&fk.mu);
	fk.states[1] = PLUGIN_STATE_RUNNING;
	fk.states[2] = PLUGIN_STATE_TIMEOUT;
	pthread_mutex_unlock(&fk.mu);
	assert_int_equal(do_update(f, &st, buf, sizeof(buf)), RPC_OK);
	assert_string_equal(buf, "fake-1=1 fake-2=2 fake-3=5:boot failed");

	/* Decrease: validation first, the plugin not called. */
	{
		const char *dup[] = { "fake-1", "fake-2", "fake-1" };
		const char *empty[] = { "fake-1", "" };
		const char *ctl[] = { "fake\n1" };
		char longid[PLUGIN_ID_MAX + 2];
		const char *lng[] = { longid };

		memset(longid, 'x', sizeof(longid) - 1);
		longid[sizeof(longid) - 1] = '\0';
		assert_int_equal(do_decrease(f, dup, 3, &st, buf, sizeof(buf),
		    e, sizeof(e)), RPC_INVALID_ARGUMENT);
		assert_string_equal(st.message,
		    "decrease: instance id fake-1 given twice");
		assert_int_equal(do_decrease(f, empty, 2, &st, buf,
		    sizeof(buf), e, sizeof(e)), RPC_INVALID_ARGUMENT);
		assert_string_equal(st.message, "decrease: empty instance id");
		assert_int_equal(do_decrease(f, ctl, 1, &st, buf,
		    sizeof(buf), e, sizeof(e)), RPC_INVALID_ARGUMENT);
		assert_int_equal(do_decrease(f, lng, 1, &st, buf,
		    sizeof(buf), e, sizeof(e)), RPC_INVALID_ARGUMENT);
	}
	{
		size_t many = PLUGIN_MAX_IDS + 1;
		const char **ids = xcalloc(many, sizeof(*ids));
		char (*names)[16] = xcalloc(many, sizeof(*names));

		for (size_t i = 0; i < many; i++) {
			(void)snprintf(names[i], sizeof(names[i]), "i-%zu", i);
			ids[i] = names[i];
		}
		assert_int_equal(do_decrease(f, ids, many, &st, buf,
		    sizeof(buf), e, sizeof(e)), RPC_INVALID_ARGUMENT);
		assert_non_null(strstr(st.message, "at most 10000"));
		/* At the limit it is fine. */
		assert_int_equal(do_decrease(f, ids, many - 1, &st, buf,
		    sizeof(buf), e, sizeof(e)), RPC_OK);
		free(names);
		free(ids);
	}
	/* An empty list: OK, nothing. */
	assert_int_equal(do_decrease(f, NULL, 0, &st, buf, sizeof(buf), e,
	    sizeof(e)), RPC_OK);
	assert_string_equal(buf, "");
	{
		const char *ids[] = { "fake-1", "gone-7" };
		const char *part[] = { "stuck-1", "fake-2" };
		const char *none[] = { "stuck-1" };

		assert_int_equal(do_decrease(f, ids, 2, &st, buf, sizeof(buf),
		    e, sizeof(e)), RPC_OK);
		assert_string_equal(buf, "fake-1 gone-7");
		assert_string_equal(e, "");
		assert_int_equal(do_decrease(f, part, 2, &st, buf, sizeof(buf),
		    e, sizeof(e)), RPC_OK);
		assert_string_equal(buf, "fake-2");
		assert_string_equal(e, "stuck-1: cannot delete");
		assert_int_equal(do_decrease(f, none, 1, &st, buf, sizeof(buf),
		    e, sizeof(e)), RPC_UNKNOWN);
		assert_string_equal(st.message, "stuck-1: cannot delete");
	}
	assert_int_equal(do_update(f, &st, buf, sizeof(buf)), RPC_OK);
	assert_string_equal(buf, "fake-1=3 fake-2=3 fake-3=5:boot failed");

	/* ConnectInfo: Init's settings, then what the plugin set. */
	{
		Flotilla__Fleeting__V1__ConnectInfoResponse *r;

		assert_int_equal(do_by_id(f, FLEETING_RPC_CONNECT_INFO, "fake-3",
		    &st, &resp), RPC_OK);
		r = flotilla__fleeting__v1__connect_info_response__unpack(NULL,
		    resp.len, (uint8_t *)resp.buf);
		assert_non_null(r);
		assert_string_equal(r->id, "fake-3");
		assert_string_equal(r->internal_addr, "127.0.0.9:2222");
		assert_string_equal(r->external_addr, "127.0.0.9:2222");
		assert_int_equal(r->expires_unix_ns, 42);
		assert_string_equal(r->connector->os, "linux");
		assert_string_equal(r->connector->arch, "");
		assert_string_equal(r->connector->protocol, "ssh");
		assert_int_equal(r->connector->protocol_port, 2222);
		assert_string_equal(r->connector->username, "core");
		assert_int_equal(r->connector->key.len, 3);
		assert_memory_equal(r->connector->key.data, "PEM", 3);
		assert_true(r->connector->use_static_credentials);
		assert_int_equal(r->connector->timeout_ns, 7);
		flotilla__fleeting__v1__connect_info_response__free_unpacked(r,
		    NULL);
	}
	assert_int_equal(do_by_id(f, FLEETING_RPC_CONNECT_INFO, "nope", &st,
	    &resp), RPC_NOT_FOUND);
	assert_string_equal(st.message, "no instance nope");
	assert_int_equal(do_by_id(f, FLEETING_RPC_CONNECT_INFO, "sick", &st,
	    &resp), RPC_FAILED_PRECONDITION);
	assert_string_equal(st.message, "instance sick is unhealthy");
	assert_int_equal(do_by_id(f, FLEETING_RPC_CONNECT_INFO, "", &st,
	    &resp), RPC_INVALID_ARGUMENT);

	assert_int_equal(do_by_id(f, FLEETING_RPC_HEARTBEAT, "fake-3", &st,
	    &resp), RPC_OK);
	assert_int_equal(do_by_id(f, FLEETING_RPC_HEARTBEAT, "nope", &st,
	    &resp), RPC_NOT_FOUND);
	assert_int_equal(do_by_id(f, FLEETING_RPC_HEARTBEAT, "sick", &st,
	    &resp), RPC_FAILED_PRECONDITION);
	assert_string_equal(st.message, "sshd is not running");
	assert_int_equal(do_by_id(f, FLEETING_RPC_HEARTBEAT, "", &st,
	    &resp), RPC_INVALID_ARGUMENT);

	/* Shutdown runs the callback once, however often it is called. */
	assert_int_equal(call(f, FLEETING_RPC_SHUTDOWN, NULL, &resp, &st),
	    RPC_OK);
	assert_int_equal(call(f, FLEETING_RPC_SHUTDOWN, NULL, &resp, &st),
	    RPC_OK);
	assert_int_equal(fk.shutdown_calls, 1);
	sbuf_release(&resp);
}

static void
test_no_heartbeat(void **state)
{
	struct fixture *f = *state;
	struct rpc_status st;
	struct sbuf resp;

	sbuf_init(&resp);
	assert_int_equal(do_by_id(f, FLEETING_RPC_HEARTBEAT, "x", &st, &resp),
	    RPC_UNIMPLEMENTED);
	assert_int_equal(do_init(f, NULL, &st, NULL), RPC_OK);
	assert_int_equal(do_by_id(f, FLEETING_RPC_HEARTBEAT, "x", &st, &resp),
	    RPC_UNIMPLEMENTED);
	/* No shutdown callback: OK. */
	assert_int_equal(call(f, FLEETING_RPC_SHUTDOWN, NULL, &resp, &st),
	    RPC_OK);
	sbuf_release(&resp);
}

struct init_thread {
	struct fixture *f;
	int code;
};

static void *
init_thread(void *arg)
{
	struct init_thread *t = arg;
	struct rpc_status st;

	t->code = do_init(t->f, NULL, &st, NULL);
	return NULL;
}

/* Calls made while Init runs wait for it, then see it done. */
static void
test_init_serialised(void **state)
{
	struct fixture *f = *state;
	struct init_thread t = { f, -1 };
	struct rpc_status st;
	pthread_t th;
	char buf[64], e[64];
	int64_t t0, n = 0;

	fk.init_delay_ms = 400;
	assert_int_equal(pthread_create(&th, NULL, init_thread, &t), 0);
	t0 = now_ms();
	while (!fk.in_init && now_ms() - t0 < 5000)
		sleep_ms(5);
	assert_true(fk.in_init);
	t0 = now_ms();
	assert_int_equal(do_increase(f, 1, &st, &n, e, sizeof(e)), RPC_OK);
	assert_true(now_ms() - t0 >= 250);
	assert_int_equal(n, 1);
	assert_int_equal(do_update(f, &st, buf, sizeof(buf)), RPC_OK);
	assert_string_equal(buf, "fake-1=1");
	pthread_join(th, NULL);
	assert_int_equal(t.code, RPC_OK);
	assert_int_equal(fk.init_calls, 1);
}

static void
test_controller_shutdown(void **state)
{
	struct fixture *f = *state;
	struct rpc_status st;
	struct sbuf resp;
	struct pollfd pfd;
	Plugin__Empty e = PLUGIN__EMPTY__INIT;

	sbuf_init(&resp);
	pfd.fd = plugin_server_stop_fd(f->ps);
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 0), 0);
	assert_int_equal(do_init(f, NULL, &st, NULL), RPC_OK);
	assert_int_equal(call(f, CONTROLLER_RPC_SHUTDOWN, &e.base, &resp, &st),
	    RPC_OK);
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	/* What plugin_serve does next. */
	rpc_client_free(f->cl);
	f->cl = NULL;
	plugin_server_free(f->ps, true);
	f->ps = NULL;
	assert_int_equal(fk.shutdown_calls, 1);
	assert_int_equal(fk.release_calls, 1);
	assert_int_equal(access(f->path, F_OK), -1);
	sbuf_release(&resp);
}

static void
test_config_helpers(void **state)
{
	json_t *c = json_loads("{\"s\":\"x\",\"i\":5,\"r\":1.5,\"b\":false,"
	    "\"d\":\"1m30s\",\"dn\":1000,\"neg\":\"-1s\",\"n\":null,"
	    "\"o\":{},\"a\":[]}", 0, NULL);
	char err[256], *s;
	int64_t v;
	bool b;
	const char *const all[] = { "s", "i", "r", "b", "d", "dn", "neg", "n",
	    "o", "a", NULL };
	const char *const some[] = { "s", NULL };

	(void)state;
	assert_non_null(c);
	assert_int_equal(plugin_config_check_keys(c, all, err, sizeof(err)), 0);
	assert_int_equal(plugin_config_check_keys(c, some, err, sizeof(err)),
	    FL_ERR_INVAL);
	assert_non_null(strstr(err, "in plugin_config"));

	assert_int_equal(plugin_config_string(c, "s", NULL, &s, err,
	    sizeof(err)), 0);
	assert_string_equal(s, "x");
	free(s);
	assert_int_equal(plugin_config_string(c, "missing", NULL, &s, err,
	    sizeof(err)), 0);
	assert_null(s);
	assert_int_equal(plugin_config_string(c, "n", "dflt", &s, err,
	    sizeof(err)), 0);
	assert_string_equal(s, "dflt");
	free(s);
	assert_int_equal(plugin_config_string(c, "i", NULL, &s, err,
	    sizeof(err)), FL_ERR_INVAL);
	assert_string_equal(err, "i: want a string, not an integer");

	assert_int_equal(plugin_config_int(c, "i", 0, 1, 10, &v, err,
	    sizeof(err)), 0);
	assert_int_equal(v, 5);
	assert_int_equal(plugin_config_int(c, "i", 0, 6, 10, &v, err,
	    sizeof(err)), FL_ERR_INVAL);
	assert_int_equal(plugin_config_int(c, "r", 0, 0, 10, &v, err,
	    sizeof(err)), FL_ERR_INVAL);
	assert_string_equal(err, "r: want an integer, not a number");
	assert_int_equal(plugin_config_int(c, "missing", 7, 0, 10, &v, err,
	    sizeof(err)), 0);
	assert_int_equal(v, 7);

	assert_int_equal(plugin_config_bool(c, "b", true, &b, err,
	    sizeof(err)), 0);
	assert_false(b);
	assert_int_equal(plugin_config_bool(c, "s", true, &b, err,
	    sizeof(err)), FL_ERR_INVAL);
	assert_int_equal(plugin_config_bool(c, "missing", true, &b, err,
	    sizeof(err)), 0);
	assert_true(b);

	assert_int_equal(plugin_config_duration(c, "d", 0, &v, err,
	    sizeof(err)), 0);
	assert_int_equal(v, INT64_C(90000000000));
	assert_int_equal(plugin_config_duration(c, "dn", 0, &v, err,
	    sizeof(err)), 0);
	assert_int_equal(v, 1000);
	assert_int_equal(plugin_config_duration(c, "neg", 0, &v, err,
	    sizeof(err)), FL_ERR_INVAL);
	assert_int_equal(plugin_config_duration(c, "s", 0, &v, err,
	    sizeof(err)), FL_ERR_INVAL);
	assert_int_equal(plugin_config_duration(c, "o", 0, &v, err,
	    sizeof(err)), FL_ERR_INVAL);
	assert_string_equal(err, "o: want a duration string, not an object");
	assert_int_equal(plugin_config_duration(c, "missing", 3, &v, err,
	    sizeof(err)), 0);
	assert_int_equal(v, 3);
	json_decref(c);
}

static void
test_connector_helpers(void **state)
{
	struct plugin_connector a, b;

	(void)state;
	memset(&a, 0, sizeof(a));
	plugin_set_str(&a.username, "root");
	plugin_set_str(&a.password, "hunter22");
	plugin_set_key(&a, "KEY", 3);
	a.protocol_port = 22;
	plugin_connector_copy(&b, &a);
	plugin_set_str(&a.username, NULL);
	plugin_set_key(&a, NULL, 0);
	assert_null(a.username);
	assert_null(a.key);
	assert_int_equal(a.key_len, 0);
	assert_string_equal(b.username, "root");
	assert_string_equal(b.password, "hunter22");
	assert_int_equal(b.key_len, 3);
	assert_memory_equal(b.key, "KEY", 3);
	assert_int_equal(b.protocol_port, 22);
	plugin_connector_release(&a);
	plugin_connector_release(&b);
	assert_null(b.password);
	plugin_connector_release(NULL);
}

/* ------------------------------------------------ plugin_serve, in a child */

struct child {
	pid_t pid;
	int out;	/* its stdout */
	int err;	/* its stderr */
};

/* Start "self serve ARGS..." with env (NULL-terminated "K=V" list). */
static void
child_start(struct child *c, const char *const *args, const char *const *env)
{
	int po[2], pe[2];
	const char *argv[8];
	size_t n = 0;

	argv[n++] = self_exe;
	argv[n++] = "serve";
	for (size_t i = 0; args != NULL && args[i] != NULL && n < 7; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	assert_int_equal(pipe2(po, O_CLOEXEC), 0);
	assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
	c->pid = fork();
	assert_true(c->pid >= 0);
	if (c->pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execve(self_exe, (char **)argv, (char **)env);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	c->out = po[0];
	c->err = pe[0];
}

/* Read fd to EOF (or for at most ms), into a heap string. */
static char *
read_all(int fd, int ms)
{
	struct sbuf sb;
	char buf[4096];
	int64_t end = now_ms() + ms;

	sbuf_init(&sb);
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		int left = (int)(end - now_ms());
		ssize_t r;

		if (left <= 0 || poll(&p, 1, left) <= 0)
			break;
		r = read(fd, buf, sizeof(buf));
		if (r <= 0)
			break;
		sbuf_add(&sb, buf, (size_t)r);
	}
	return sbuf_detach(&sb, NULL);
}

/* Read one line from fd (the handshake) within ms. */
static char *
read_line(int fd, int ms)
{
	struct sbuf sb;
	char ch;
	int64_t end = now_ms() + ms;

	sbuf_init(&sb);
	while (now_ms() < end) {
		struct pollfd p = { fd, POLLIN, 0 };

		if (poll(&p, 1, (int)(end - now_ms())) <= 0)
			break;
		if (read(fd, &ch, 1) != 1)
			break;
		sbuf_addch(&sb, ch);
		if (ch == '\n')
			break;
	}
	return sbuf_detach(&sb, NULL);
}

static int
child_wait(struct child *c, int ms)
{
	int64_t end = now_ms() + ms;
	int status;

	while (now_ms() < end) {
		pid_t r = waitpid(c->pid, &status, WNOHANG);

		if (r == c->pid) {
			close(c->out);
			close(c->err);
			return WIFEXITED(status) ? WEXITSTATUS(status) :
			    128 + WTERMSIG(status);
		}
		sleep_ms(10);
	}
	kill(c->pid, SIGKILL);
	waitpid(c->pid, &status, 0);
	close(c->out);
	close(c->err);
	return -1;
}

#define COOKIE PLUGIN_COOKIE_KEY "=" PLUGIN_COOKIE_VALUE

static void
test_serve_args_and_cookie(void **state)
{
	struct child c;
	char *out, *err;
	const char *noenv[] = { NULL };
	const char *cookie_only[] = { COOKIE, PLUGIN_VERSIONS_ENV "=2,3",
	    NULL };

	(void)state;
	child_start(&c, (const char *[]){ "--version", NULL }, noenv);
	out = read_all(c.out, 5000);
	assert_int_equal(child_wait(&c, 5000), 0);
	assert_non_null(strstr(out, "fleeting-plugin-fake"));
	assert_non_null(strstr(out, "9.8.7"));
	assert_non_null(strstr(out, "abc123"));
	free(out);

	child_start(&c, (const char *[]){ "--help", NULL }, noenv);
	out = read_all(c.out, 5000);
	assert_int_equal(child_wait(&c, 5000), 0);
	assert_non_null(strstr(out, "plugin_config keys"));
	free(out);

	child_start(&c, (const char *[]){ "--bogus", NULL }, noenv);
	err = read_all(c.err, 5000);
	assert_int_equal(child_wait(&c, 5000), 2);
	assert_non_null(strstr(err, "unknown argument --bogus"));
	free(err);

	/* No cookie: go-plugin's message, exit 1, nothing on stdout. */
	child_start(&c, NULL, noenv);
	err = read_all(c.err, 5000);
	out = read_all(c.out, 100);
	assert_int_equal(child_wait(&c, 5000), 1);
	assert_non_null(strstr(err, "This binary is a plugin. These are not "
	    "meant to be executed directly."));
	assert_string_equal(out, "");
	free(out);
	free(err);

	/* No common protocol version. */
	child_start(&c, NULL, cookie_only);
	err = read_all(c.err, 5000);
	out = read_all(c.out, 100);
	assert_int_equal(child_wait(&c, 5000), 1);
	assert_non_null(strstr(err, "\"@level\":\"error\""));
	assert_non_null(strstr(err, "Incompatible API version"));
	assert_string_equal(out, "");
	free(out);
	free(err);
}

/* A child serving; returns its socket path parsed from the handshake. */
static void
serve_child(struct child *c, const char *dir, const char *marker,
    struct handshake *hs)
{
	char envdir[256], envmark[256], perr[256], *line;
	const char *env[] = { COOKIE, PLUGIN_VERSIONS_ENV "=1", envdir,
	    envmark, "FLOTILLA_PLUGIN_LOG_LEVEL=debug", NULL };

	(void)snprintf(envdir, sizeof(envdir), "%s=%s", PLUGIN_SOCKET_DIR_ENV,
	    dir);
	(void)snprintf(envmark, sizeof(envmark), "FAKE_MARKER=%s", marker);
	child_start(c, NULL, env);
	line = read_line(c->out, 10000);
	if (handshake_parse(line, strlen(line), "1", hs, perr,
	    sizeof(perr)) != 0)
		fail_msg("handshake line \"%s\": %s", line, perr);
	assert_true(strncmp(hs->address, dir, strlen(dir)) == 0);
	free(line);
}

static void
test_serve_controller_and_signals(void **state)
{
	struct child c;
	struct handshake hs;
	struct fixture f;
	struct rpc_status st;
	struct sbuf resp;
	char dir[] = "/tmp/test_psdk_serve.XXXXXX", marker[128], err[256];
	char *log, *rest;
	Plugin__Empty e = PLUGIN__EMPTY__INIT;
	int hstat;

	(void)state;
	assert_non_null(mkdtemp(dir));
	(void)snprintf(marker, sizeof(marker), "%s/marker", dir);
	sbuf_init(&resp);

	/* 1. Controller Shutdown: exit 0, socket gone, no group shutdown. */
	serve_child(&c, dir, marker, &hs);
	memset(&f, 0, sizeof(f));
	f.cl = rpc_client_new(hs.address, 0, NULL, err, sizeof(err));
	assert_non_null(f.cl);
	assert_int_equal(do_health(&f, "plugin", &st, &hstat), RPC_OK);
	assert_int_equal(do_init(&f, NULL, &st, NULL), RPC_OK);
	/* SIGINT and SIGHUP are ignored. */
	kill(c.pid, SIGINT);
	kill(c.pid, SIGHUP);
	sleep_ms(100);
	assert_int_equal(do_health(&f, "", &st, &hstat), RPC_OK);
	assert_int_equal(call(&f, CONTROLLER_RPC_SHUTDOWN, &e.base, &resp, &st),
	    RPC_OK);
	log = read_all(c.err, 5000);
	rest = read_all(c.out, 100);
	assert_int_equal(child_wait(&c, 2000), 0);
	rpc_client_free(f.cl);
	assert_int_equal(access(hs.address, F_OK), -1);
	assert_int_equal(access(marker, F_OK), -1);
	/* hclog lines on stderr; nothing more on stdout. */
	assert_non_null(strstr(log, "\"@module\":\"fleeting-plugin-fake\""));
	assert_non_null(strstr(log, "\"@message\":\"plugin serving\""));
	assert_non_null(strstr(log, "\"@level\":\"debug\""));
	assert_string_equal(rest, "");
	free(log);
	free(rest);

	/* 2. SIGTERM after Init: the group's shutdown runs, exit 0. */
	serve_child(&c, dir, marker, &hs);
	f.cl = rpc_client_new(hs.address, 0, NULL, err, sizeof(err));
	assert_non_null(f.cl);
	assert_int_equal(do_init(&f, NULL, &st, NULL), RPC_OK);
	rpc_client_free(f.cl);
	kill(c.pid, SIGTERM);
	log = read_all(c.err, 5000);
	assert_int_equal(child_wait(&c, 2000), 0);
	assert_int_equal(access(hs.address, F_OK), -1);
	assert_int_equal(access(marker, F_OK), 0);
	assert_non_null(strstr(log, "SIGTERM"));
	free(log);
	unlink(marker);

	/* 3. No PLUGIN_UNIX_SOCKET_DIR: a private 0700 directory, removed. */
	{
		char tmpenv[300], *line, perr[256];
		const char *env[] = { COOKIE, tmpenv, NULL };
		struct stat sb;
		char *slash;

		(void)snprintf(tmpenv, sizeof(tmpenv), "TMPDIR=%s", dir);
		child_start(&c, NULL, env);
		line = read_line(c.out, 10000);
		assert_int_equal(handshake_parse(line, strlen(line), NULL, &hs,
		    perr, sizeof(perr)), 0);
		free(line);
		slash = strrchr(hs.address, '/');
		assert_non_null(slash);
		*slash = '\0';
		assert_int_equal(stat(hs.address, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0700);
		assert_true(strncmp(hs.address, dir, strlen(dir)) == 0);
		kill(c.pid, SIGTERM);
		assert_int_equal(child_wait(&c, 5000), 0);
		assert_int_equal(access(hs.address, F_OK), -1);
		/* Not initialised: the group's shutdown did not run. */
		assert_int_equal(access(marker, F_OK), -1);
	}
	sbuf_release(&resp);
	assert_int_equal(rmdir(dir), 0);
}

/*
 * The 16 MiB limit, against a plugin_serve child: in one process, lib/rpc's
 * server takes 10 s to shut down after a large request from a client of
 * the same process (the gRPC core's connection lingers), which a plugin
 * never sees since its manager is another process.
 */
static void
test_serve_message_limit(void **state)
{
	struct child c;
	struct handshake hs;
	struct fixture f;
	struct rpc_status st;
	struct sbuf resp;
	char dir[] = "/tmp/test_psdk_big.XXXXXX", marker[128], err[256];
	Plugin__Empty e = PLUGIN__EMPTY__INIT;
	size_t n = PLUGIN_MAX_MSG + 1024;
	uint8_t *big = xcalloc(1, n);
	int64_t t0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	(void)snprintf(marker, sizeof(marker), "%s/marker", dir);
	sbuf_init(&resp);
	serve_child(&c, dir, marker, &hs);
	memset(&f, 0, sizeof(f));
	f.cl = rpc_client_new(hs.address, 0, NULL, err, sizeof(err));
	assert_non_null(f.cl);
	assert_int_equal(do_init(&f, NULL, &st, NULL), RPC_OK);
	/* Up to the limit the SDK sees it (and finds zeros malformed). */
	assert_int_not_equal(rpc_call(f.cl, FLEETING_RPC_UPDATE, big,
	    PLUGIN_MAX_MSG - 64, 10000, &resp, &st), 0);
	assert_int_equal(st.code, RPC_INVALID_ARGUMENT);
	assert_string_equal(st.message, "malformed UpdateRequest");
	/* Over it, gRPC refuses it. */
	assert_int_not_equal(rpc_call(f.cl, FLEETING_RPC_UPDATE, big, n, 10000,
	    &resp, &st), 0);
	assert_int_equal(st.code, RPC_RESOURCE_EXHAUSTED);
	assert_int_equal(do_update(&f, &st, (char[64]){ 0 }, 64), RPC_OK);
	t0 = now_ms();
	assert_int_equal(call(&f, CONTROLLER_RPC_SHUTDOWN, &e.base, &resp, &st),
	    RPC_OK);
	assert_int_equal(child_wait(&c, 2000), 0);
	assert_true(now_ms() - t0 < 2000);
	rpc_client_free(f.cl);
	free(big);
	sbuf_release(&resp);
	assert_int_equal(rmdir(dir), 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serve_args_and_cookie),
		cmocka_unit_test(test_serve_controller_and_signals),
		cmocka_unit_test(test_config_helpers),
		cmocka_unit_test(test_connector_helpers),
		cmocka_unit_test_setup_teardown(test_before_init, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_init, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_config, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_group_calls, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_heartbeat, setup_nohb,
		    teardown),
		cmocka_unit_test_setup_teardown(test_init_serialised, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_controller_shutdown, setup,
		    teardown),
		/* Last: see the comment above it. */
		cmocka_unit_test(test_serve_message_limit),
	};
	ssize_t n;

	if (argc >= 2 && strcmp(argv[1], "serve") == 0) {
		pthread_mutex_init(&fk.mu, NULL);
		return plugin_serve(&fake_def, argc - 1, argv + 1);
	}
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		return 1;
	self_exe[n] = '\0';
	pthread_mutex_init(&fk.mu, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

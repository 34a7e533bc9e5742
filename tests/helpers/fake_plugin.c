/*
 * fake_plugin: a fleeting plugin for the plugin host's tests, written
 * directly on lib/rpc and lib/handshake (not on the plugin SDK, so that
 * the host is tested against an independent implementation).  It behaves
 * as the scenario in $FAKE_PLUGIN_SCENARIO says:
 *
 *   ok (default)       a working in-memory instance group: Increase makes
 *                      instances that are "creating" for
 *                      $FAKE_PLUGIN_CREATE_MS (200) then "running";
 *                      Decrease makes them "deleting" for
 *                      $FAKE_PLUGIN_DELETE_MS (200), then they are gone
 *   crash-at-start     exit 3 before the handshake
 *   hang-handshake     never print the handshake line
 *   garbage-stdout     print 100 KB without a newline instead of the line
 *   garbage-line       print a line that is not a handshake
 *   oversize           every Update answer is $FAKE_PLUGIN_OVERSIZE_BYTES
 *                      (17 MiB) long; the rest works
 *   wrong-version      hand-shake with application version 99
 *   ignore-sigterm     ignore SIGTERM and controller Shutdown
 *   crash-after:N      die by SIGKILL when InstanceGroup call N+1 arrives
 *                      (also "crash-after=N", "crash-after N")
 *   crash-in-increase  the first Increase creates its instances, saves
 *                      them, then dies by SIGKILL before answering
 *
 * The crash-after and crash-in-increase crashes happen once per state
 * directory (a marker file), so the restarted plugin keeps running.
 *
 * With $FAKE_PLUGIN_STATE_DIR the instances live in a file there (like a
 * cloud: a restarted fake still has them), else in memory only.  It logs
 * hclog JSON lines and some plain lines on stderr, and one line on stdout
 * after the handshake.  Plugin config: a JSON object; "fail_init": true
 * makes Init fail with INVALID_ARGUMENT, "max_size" sets ProviderInfo's.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "err.h"
#include "handshake.h"
#include "proto/controller.rpc.h"
#include "proto/fleeting.pb-c.h"
#include "proto/fleeting.rpc.h"
#include "proto/health.pb-c.h"
#include "proto/health.rpc.h"
#include "rpc.h"
#include "xmalloc.h"

struct inst {
	char *id;
	int64_t created;	/* CLOCK_REALTIME ns */
	int64_t deleted;	/* 0: not being deleted */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct inst *insts;
static size_t ninsts, capinsts;
static unsigned long next_seq = 1;
static unsigned long ncalls;
static int initialised;
static int64_t max_size = 1000000;

static const char *scenario = "ok";
static long crash_after = -1;
static const char *state_dir;
static int64_t create_ns = 200 * INT64_C(1000000);
static int64_t delete_ns = 200 * INT64_C(1000000);
static size_t oversize_bytes = 17u * 1024 * 1024;
static int ignore_term;

static int64_t
real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One hclog JSON line on stderr: level, message, then key/value pairs
 * (NULL-terminated). */
static void
hlog(const char *level, const char *msg, ...)
{
	json_t *o = json_object();
	struct timespec ts;
	struct tm tm;
	char tbuf[64];
	const char *k, *v;
	va_list ap;
	char *s;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(tbuf, sizeof(tbuf), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
	json_object_set_new(o, "@level", json_string(level));
	json_object_set_new(o, "@message", json_string(msg));
	json_object_set_new(o, "@module", json_string("fake-plugin"));
	json_object_set_new(o, "@timestamp", json_string(tbuf));
	va_start(ap, msg);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		json_object_set_new(o, k, json_string(v));
	}
	va_end(ap);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		return;
	pthread_mutex_lock(&log_mu);
	dprintf(2, "%s\n", s);
	pthread_mutex_unlock(&log_mu);
	free(s);
}

static void
plain(const char *line)
{
	pthread_mutex_lock(&log_mu);
	dprintf(2, "%s\n", line);
	pthread_mutex_unlock(&log_mu);
}

/* ----------------------------------------------------------- state */

static char *
state_path(const char *name)
{
	return xasprintf("%s/%s", state_dir, name);
}

static void
save(void)
{
	char *path, *tmp;
	FILE *fp;

	if (state_dir == NULL)
		return;
	path = state_path("instances");
	tmp = state_path("instances.tmp");
	fp = fopen(tmp, "w");
	if (fp == NULL) {
		free(path);
		free(tmp);
		return;
	}
	fprintf(fp, "next %lu\n", next_seq);
	for (size_t i = 0; i < ninsts; i++)
		fprintf(fp, "%s %lld %lld\n", insts[i].id,
		    (long long)insts[i].created, (long long)insts[i].deleted);
	fflush(fp);
	fsync(fileno(fp));
	fclose(fp);
	rename(tmp, path);
	free(path);
	free(tmp);
}

static void
add_inst(const char *id, int64_t created, int64_t deleted)
{
	if (ninsts == capinsts) {
		capinsts = capinsts ? capinsts * 2 : 64;
		insts = xreallocarray(insts, capinsts, sizeof(*insts));
	}
	insts[ninsts].id = xstrdup(id);
	insts[ninsts].created = created;
	insts[ninsts].deleted = deleted;
	ninsts++;
}

static void
load(void)
{
	char *path, id[256];
	long long c, d;
	FILE *fp;

	if (state_dir == NULL)
		return;
	path = state_path("instances");
	fp = fopen(path, "r");
	free(path);
	if (fp == NULL)
		return;
	if (fscanf(fp, "next %lu\n", &next_seq) != 1)
		next_seq = 1;
	while (fscanf(fp, "%255s %lld %lld\n", id, &c, &d) == 3)
		add_inst(id, c, d);
	fclose(fp);
}

static void
free_state(void)
{
	for (size_t i = 0; i < ninsts; i++)
		free(insts[i].id);
	free(insts);
	insts = NULL;
	ninsts = capinsts = 0;
}

static struct inst *
find(const char *id)
{
	for (size_t i = 0; i < ninsts; i++) {
		if (strcmp(insts[i].id, id) == 0)
			return &insts[i];
	}
	return NULL;
}

/* Forget instances whose deletion has finished; 1 if any went. */
static int
prune(int64_t now)
{
	size_t i, j = 0;
	int changed = 0;

	for (i = 0; i < ninsts; i++) {
		if (insts[i].deleted != 0 && now - insts[i].deleted >=
		    delete_ns) {
			free(insts[i].id);
			changed = 1;
			continue;
		}
		insts[j++] = insts[i];
	}
	ninsts = j;
	return changed;
}

/* A crash that happens once per state directory. */
static int
crash_once(const char *what)
{
	char *marker;
	int fd;

	if (state_dir == NULL)
		return 1;
	marker = xasprintf("%s/crashed-%s", state_dir, what);
	fd = open(marker, O_WRONLY | O_CREAT | O_EXCL, 0600);
	free(marker);
	if (fd < 0)
		return 0;	/* crashed before */
	close(fd);
	return 1;
}

/* Count an InstanceGroup call; die as the scenario says. */
static void
count_call(const char *method)
{
	unsigned long n;

	pthread_mutex_lock(&mu);
	n = ++ncalls;
	pthread_mutex_unlock(&mu);
	hlog("debug", "call", "method", method, NULL);
	if (crash_after >= 0 && n > (unsigned long)crash_after &&
	    crash_once("after")) {
		plain("fake plugin: crashing now (crash-after)");
		raise(SIGKILL);
	}
}

static int
reply(struct sbuf *resp, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = xmalloc(n + 1);

	protobuf_c_message_pack(m, buf);
	sbuf_add(resp, buf, n);
	free(buf);
	return RPC_OK;
}

/* ----------------------------------------------------------- methods */

static int
h_init(void *arg, const uint8_t *req, size_t len, struct sbuf *resp,
    struct rpc_status *st)
{
	Flotilla__Fleeting__V1__InitRequest *r;
	Flotilla__Fleeting__V1__InitResponse out =
	    FLOTILLA__FLEETING__V1__INIT_RESPONSE__INIT;
	Flotilla__Fleeting__V1__ProviderInfo pi =
	    FLOTILLA__FLEETING__V1__PROVIDER_INFO__INIT;
	json_error_t jerr;
	json_t *cfg, *v;
	int rc;

	(void)arg;
	count_call("Init");
	r = flotilla__fleeting__v1__init_request__unpack(NULL, len, req);
	if (r == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "bad request");
	cfg = json_loadb((const char *)r->plugin_config.data,
	    r->plugin_config.len, 0, &jerr);
	flotilla__fleeting__v1__init_request__free_unpacked(r, NULL);
	if (cfg == NULL || !json_is_object(cfg)) {
		json_decref(cfg);
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "plugin_config is not a JSON object");
	}
	if (json_is_true(json_object_get(cfg, "fail_init"))) {
		json_decref(cfg);
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "fail_init is set");
	}
	if ((v = json_object_get(cfg, "max_size")) != NULL &&
	    json_is_integer(v))
		max_size = json_integer_value(v);
	json_decref(cfg);
	pthread_mutex_lock(&mu);
	initialised = 1;
	pthread_mutex_unlock(&mu);
	pi.id = (char *)"fake/group";
	pi.max_size = max_size;
	pi.version = (char *)"0.0.1-fake";
	pi.build_info = (char *)"tests/helpers/fake_plugin.c";
	out.provider_info = &pi;
	rc = reply(resp, &out.base);
	hlog("info", "initialised", "scenario", scenario, NULL);
	return rc;
}

static int
need_init(struct rpc_status *st)
{
	int ok;

	pthread_mutex_lock(&mu);
	ok = initialised;
	pthread_mutex_unlock(&mu);
	return ok ? 0 : rpc_status_set(st, RPC_UNKNOWN, "not initialised");
}

static int
h_update(void *arg, const uint8_t *req, size_t len, struct sbuf *resp,
    struct rpc_status *st)
{
	Flotilla__Fleeting__V1__UpdateResponse out =
	    FLOTILLA__FLEETING__V1__UPDATE_RESPONSE__INIT;
	Flotilla__Fleeting__V1__Instance *iv, **ip;
	int64_t now = real_ns();
	char *big = NULL;
	size_t i, n;
	int rc;

	(void)arg;
	(void)req;
	(void)len;
	count_call("Update");
	if (need_init(st) != 0)
		return st->code;
	pthread_mutex_lock(&mu);
	if (prune(now))
		save();
	n = ninsts;
	iv = xcalloc(n + 1, sizeof(*iv));
	ip = xcalloc(n + 1, sizeof(*ip));
	for (i = 0; i < n; i++) {
		flotilla__fleeting__v1__instance__init(&iv[i]);
		iv[i].id = xstrdup(insts[i].id);
		if (insts[i].deleted != 0) {
			iv[i].state = FLOTILLA__FLEETING__V1__INSTANCE_STATE__INSTANCE_STATE_DELETING;
			iv[i].cause = xstrdup("cloud status STOPPING");
		} else if (now - insts[i].created < create_ns) {
			iv[i].state = FLOTILLA__FLEETING__V1__INSTANCE_STATE__INSTANCE_STATE_CREATING;
			iv[i].cause = xstrdup("cloud status PROVISIONING");
		} else {
			iv[i].state = FLOTILLA__FLEETING__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING;
			iv[i].cause = xstrdup("cloud status RUNNING");
		}
		ip[i] = &iv[i];
	}
	pthread_mutex_unlock(&mu);
	if (strcmp(scenario, "oversize") == 0) {
		/* One more instance whose cause is too long to accept. */
		flotilla__fleeting__v1__instance__init(&iv[n]);
		big = xmalloc(oversize_bytes + 1);
		memset(big, 'x', oversize_bytes);
		big[oversize_bytes] = '\0';
		iv[n].id = xstrdup("fake-oversize");
		iv[n].state = FLOTILLA__FLEETING__V1__INSTANCE_STATE__INSTANCE_STATE_RUNNING;
		iv[n].cause = big;
		ip[n] = &iv[n];
		n++;
	}
	out.n_instances = n;
	out.instances = ip;
	rc = reply(resp, &out.base);
	for (i = 0; i < n; i++) {
		free(iv[i].id);
		free(iv[i].cause);
	}
	free(iv);
	free(ip);
	return rc;
}

static int
h_increase(void *arg, const uint8_t *req, size_t len, struct sbuf *resp,
    struct rpc_status *st)
{
	Flotilla__Fleeting__V1__IncreaseRequest *r;
	Flotilla__Fleeting__V1__IncreaseResponse out =
	    FLOTILLA__FLEETING__V1__INCREASE_RESPONSE__INIT;
	int64_t delta, now = real_ns();
	char id[64], nb[24];

	(void)arg;
	count_call("Increase");
	if (need_init(st) != 0)
		return st->code;
	r = flotilla__fleeting__v1__increase_request__unpack(NULL, len, req);
	if (r == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "bad request");
	delta = r->delta;
	flotilla__fleeting__v1__increase_request__free_unpacked(r, NULL);
	if (delta < 1 || delta > 100000)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "delta %lld out of range", (long long)delta);
	pthread_mutex_lock(&mu);
	for (int64_t i = 0; i < delta; i++) {
		snprintf(id, sizeof(id), "fake-%010lu", next_seq++);
		add_inst(id, now, 0);
	}
	save();
	pthread_mutex_unlock(&mu);
	snprintf(nb, sizeof(nb), "%lld", (long long)delta);
	hlog("info", "instances requested", "delta", nb, NULL);
	if (strcmp(scenario, "crash-in-increase") == 0 &&
	    crash_once("increase")) {
		plain("fake plugin: crashing in Increase after creating");
		raise(SIGKILL);
	}
	out.succeeded = delta;
	return reply(resp, &out.base);
}

static int
h_decrease(void *arg, const uint8_t *req, size_t len, struct sbuf *resp,
    struct rpc_status *st)
{
	Flotilla__Fleeting__V1__DecreaseRequest *r;
	Flotilla__Fleeting__V1__DecreaseResponse out =
	    FLOTILLA__FLEETING__V1__DECREASE_RESPONSE__INIT;
	int64_t now = real_ns();
	struct inst *in;
	int rc;

	(void)arg;
	count_call("Decrease");
	if (need_init(st) != 0)
		return st->code;
	r = flotilla__fleeting__v1__decrease_request__unpack(NULL, len, req);
	if (r == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "bad request");
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < r->n_ids; i++) {
		in = find(r->ids[i]);
		if (in != NULL && in->deleted == 0)
			in->deleted = now;
	}
	save();
	pthread_mutex_unlock(&mu);
	/* Gone or going: all accepted. */
	out.n_succeeded = r->n_ids;
	out.succeeded = r->ids;
	rc = reply(resp, &out.base);
	flotilla__fleeting__v1__decrease_request__free_unpacked(r, NULL);
	return rc;
}

/* ConnectInfoRequest and HeartbeatRequest: {string id = 1}. */
static char *
req_id(const uint8_t *req, size_t len)
{
	Flotilla__Fleeting__V1__ConnectInfoRequest *r;
	char *id;

	r = flotilla__fleeting__v1__connect_info_request__unpack(NULL, len,
	    req);
	if (r == NULL)
		return NULL;
	id = xstrdup(r->id);
	flotilla__fleeting__v1__connect_info_request__free_unpacked(r, NULL);
	return id;
}

static int
known(const char *id)
{
	struct inst *in;
	int ok;

	pthread_mutex_lock(&mu);
	in = find(id);
	ok = in != NULL && in->deleted == 0;
	pthread_mutex_unlock(&mu);
	return ok;
}

static int
h_connect_info(void *arg, const uint8_t *req, size_t len, struct sbuf *resp,
    struct rpc_status *st)
{
	Flotilla__Fleeting__V1__ConnectInfoResponse out =
	    FLOTILLA__FLEETING__V1__CONNECT_INFO_RESPONSE__INIT;
	Flotilla__Fleeting__V1__ConnectorConfig cc =
	    FLOTILLA__FLEETING__V1__CONNECTOR_CONFIG__INIT;
	char *id;
	int rc;

	(void)arg;
	count_call("ConnectInfo");
	if (need_init(st) != 0)
		return st->code;
	if ((id = req_id(req, len)) == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "bad request");
	if (!known(id)) {
		rc = rpc_status_set(st, RPC_NOT_FOUND, "no instance %s", id);
		free(id);
		return rc;
	}
	cc.os = (char *)"linux";
	cc.arch = (char *)"amd64";
	cc.protocol = (char *)"ssh";
	cc.protocol_port = 22;
	cc.username = (char *)"fake";
	cc.key.data = (uint8_t *)"-----BEGIN FAKE KEY-----\n";
	cc.key.len = strlen((const char *)cc.key.data);
	cc.use_static_credentials = 1;
	out.id = id;
	out.connector = &cc;
	out.external_addr = (char *)"192.0.2.1";
	out.internal_addr = (char *)"127.0.0.1";
	rc = reply(resp, &out.base);
	free(id);
	return rc;
}

static int
h_heartbeat(void *arg, const uint8_t *req, size_t len, struct sbuf *resp,
    struct rpc_status *st)
{
	Flotilla__Fleeting__V1__HeartbeatResponse out =
	    FLOTILLA__FLEETING__V1__HEARTBEAT_RESPONSE__INIT;
	char *id;
	int rc;

	(void)arg;
	count_call("Heartbeat");
	if (need_init(st) != 0)
		return st->code;
	if ((id = req_id(req, len)) == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "bad request");
	rc = known(id) ? reply(resp, &out.base) :
	    rpc_status_set(st, RPC_NOT_FOUND, "no instance %s", id);
	free(id);
	return rc;
}

static int
h_shutdown(void *arg, const uint8_t *req, size_t len, struct sbuf *resp,
    struct rpc_status *st)
{
	Flotilla__Fleeting__V1__ShutdownResponse out =
	    FLOTILLA__FLEETING__V1__SHUTDOWN_RESPONSE__INIT;

	(void)arg;
	(void)req;
	(void)len;
	(void)st;
	count_call("Shutdown");
	hlog("info", "shutdown requested", NULL);
	return reply(resp, &out.base);
}

static int
h_health(void *arg, const uint8_t *req, size_t len, struct sbuf *resp,
    struct rpc_status *st)
{
	Grpc__Health__V1__HealthCheckRequest *r;
	Grpc__Health__V1__HealthCheckResponse out =
	    GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	int ok;

	(void)arg;
	r = grpc__health__v1__health_check_request__unpack(NULL, len, req);
	if (r == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "bad request");
	ok = r->service[0] == '\0' || strcmp(r->service, "plugin") == 0;
	grpc__health__v1__health_check_request__free_unpacked(r, NULL);
	if (!ok)
		return rpc_status_set(st, RPC_NOT_FOUND, "unknown service");
	out.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
	return reply(resp, &out.base);
}

static int
h_controller(void *arg, const uint8_t *req, size_t len, struct sbuf *resp,
    struct rpc_status *st)
{
	(void)arg;
	(void)req;
	(void)len;
	(void)resp;	/* plugin.Empty: no bytes */
	(void)st;
	hlog("info", "controller shutdown", NULL);
	if (!ignore_term)
		kill(getpid(), SIGUSR1);	/* main thread stops us */
	return RPC_OK;
}

/* ----------------------------------------------------------- main */

static void
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void
parse_scenario(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return;
	scenario = s;
	if (strncmp(s, "crash-after", 11) == 0) {
		const char *n = s + 11;

		if (*n == ':' || *n == '=' || *n == ' ')
			n++;
		crash_after = strtol(n, NULL, 10);
		scenario = "crash-after";
	}
}

static int64_t
env_ms(const char *name, int64_t dflt)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? strtoll(v, NULL, 10) *
	    INT64_C(1000000) : dflt;
}

/* Wait for one of the signals in set. */
static void
wait_for(const sigset_t *set)
{
	int sig;

	while (sigwait(set, &sig) != 0)
		;
}

int
main(void)
{
	const char *cookie = getenv(PLUGIN_COOKIE_KEY), *dir, *v;
	struct rpc_server *srv;
	struct handshake hs;
	sigset_t set;
	char err[256], line[HANDSHAKE_LINE_MAX + 1], path[128];
	int app;

	if (cookie == NULL || strcmp(cookie, PLUGIN_COOKIE_VALUE) != 0) {
		fprintf(stderr, "This binary is a plugin. These are not meant "
		    "to be executed directly. Please execute the program that "
		    "consumes these plugins, which will load any plugins "
		    "automatically\n");
		return 1;
	}
	parse_scenario(getenv("FAKE_PLUGIN_SCENARIO"));
	state_dir = getenv("FAKE_PLUGIN_STATE_DIR");
	if (state_dir != NULL && state_dir[0] == '\0')
		state_dir = NULL;
	create_ns = env_ms("FAKE_PLUGIN_CREATE_MS", create_ns);
	delete_ns = env_ms("FAKE_PLUGIN_DELETE_MS", delete_ns);
	if ((v = getenv("FAKE_PLUGIN_OVERSIZE_BYTES")) != NULL)
		oversize_bytes = (size_t)strtoull(v, NULL, 10);
	ignore_term = strcmp(scenario, "ignore-sigterm") == 0;

	hlog("info", "fake plugin starting", "scenario", scenario, NULL);
	plain("plain text line from the fake plugin");
	plain("[WARN] a tagged warning from the fake plugin");

	if (strcmp(scenario, "crash-at-start") == 0) {
		hlog("error", "crashing at start as asked", NULL);
		return 3;
	}

	/* go-plugin plugins ignore SIGINT; the main thread takes SIGTERM
	 * and SIGUSR1 (controller Shutdown) through sigwait. */
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (ignore_term)
		signal(SIGTERM, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (!ignore_term)
		sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (strcmp(scenario, "hang-handshake") == 0) {
		hlog("info", "hanging in the handshake", NULL);
		wait_for(&set);
		return 0;
	}
	if (strcmp(scenario, "garbage-stdout") == 0) {
		char *junk = xmalloc(100 * 1024);

		memset(junk, 'J', 100 * 1024);
		write_all(1, junk, 100 * 1024);
		free(junk);
		wait_for(&set);
		return 0;
	}
	if (strcmp(scenario, "garbage-line") == 0) {
		write_all(1, "hello, I am not a handshake\n", 28);
		wait_for(&set);
		return 0;
	}

	app = handshake_negotiate(getenv(PLUGIN_VERSIONS_ENV), 1);
	if (app == 0) {
		fprintf(stderr, "fake plugin: no common protocol version in "
		    "%s=%s\n", PLUGIN_VERSIONS_ENV,
		    getenv(PLUGIN_VERSIONS_ENV) ? getenv(PLUGIN_VERSIONS_ENV) :
		    "");
		return 1;
	}
	if (strcmp(scenario, "wrong-version") == 0)
		app = 99;
	dir = getenv(PLUGIN_SOCKET_DIR_ENV);
	if (dir == NULL || dir[0] == '\0')
		dir = "/tmp";
	if ((size_t)snprintf(path, sizeof(path), "%s/plugin%ld.sock", dir,
	    (long)getpid()) >= sizeof(hs.address)) {
		fprintf(stderr, "fake plugin: socket path too long\n");
		return 1;
	}
	load();
	srv = rpc_server_new(path, RPC_MAX_MSG_LIMIT, err, sizeof(err));
	if (srv == NULL) {
		fprintf(stderr, "fake plugin: %s\n", err);
		return 1;
	}
	rpc_server_add_method(srv, FLEETING_RPC_INIT, h_init, NULL);
	rpc_server_add_method(srv, FLEETING_RPC_UPDATE, h_update, NULL);
	rpc_server_add_method(srv, FLEETING_RPC_INCREASE, h_increase, NULL);
	rpc_server_add_method(srv, FLEETING_RPC_DECREASE, h_decrease, NULL);
	rpc_server_add_method(srv, FLEETING_RPC_CONNECT_INFO, h_connect_info,
	    NULL);
	rpc_server_add_method(srv, FLEETING_RPC_HEARTBEAT, h_heartbeat, NULL);
	rpc_server_add_method(srv, FLEETING_RPC_SHUTDOWN, h_shutdown, NULL);
	rpc_server_add_method(srv, HEALTH_RPC_CHECK, h_health, NULL);
	rpc_server_add_method(srv, CONTROLLER_RPC_SHUTDOWN, h_controller,
	    NULL);
	if (rpc_server_start(srv) != 0) {
		fprintf(stderr, "fake plugin: cannot start the server\n");
		rpc_server_free(srv);
		return 1;
	}
	memset(&hs, 0, sizeof(hs));
	hs.core = PLUGIN_CORE_VERSION;
	hs.app = app;
	memcpy(hs.network, "unix", 5);
	memcpy(hs.address, path, strlen(path) + 1);	/* checked above */
	memcpy(hs.protocol, "grpc", 5);
	if (handshake_format(&hs, line, sizeof(line)) != 0) {
		rpc_server_free(srv);
		return 1;
	}
	write_all(1, line, strlen(line));
	{
		static const char msg[] = "fake plugin: a line on stdout after "
		    "the handshake\n";

		write_all(1, msg, sizeof(msg) - 1);
	}
	hlog("info", "serving", "socket", path, NULL);

	wait_for(&set);
	hlog("info", "stopping", NULL);
	rpc_server_shutdown(srv, 1000);
	if (strcmp(scenario, "oversize") == 0) {
		/*
		 * XXX gRPC 1.51 (Debian 12): after an answer the client
		 * refused, a gRPC executor thread may sit in epoll_wait for
		 * up to 10 s and grpc_shutdown() (in rpc_server_free) joins
		 * it.  The host's tests are about the host: leave at once.
		 */
		_exit(0);
	}
	rpc_server_free(srv);
	free_state();
	return 0;
}

/*
 * Unit tests for lib/rpc: a server and a client in one process over a unix
 * socket in a fresh temporary directory.  Real protobuf-c messages from
 * proto/fleeting.proto go through the transport; statuses, deadlines, size
 * limits, the libevent hand-off, cancellation and shutdown are checked for
 * what the caller sees.  Every test frees everything, so ASan's leak check
 * covers the module.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "err.h"
#include "proto/fleeting.pb-c.h"
#include "proto/fleeting.rpc.h"
#include "proto/health.rpc.h"
#include "rpc.h"
#include "xmalloc.h"

#define M_ECHO "/test.Echo/Echo"
#define M_SLOW "/test.Echo/Slow"
#define M_BIG "/test.Echo/Big"
#define M_FAIL "/test.Echo/Fail"
#define M_ERRNO "/test.Echo/Errno"
#define M_LEFT "/test.Echo/Left"

struct fixture {
	char dir[64];
	char path[128];
	struct rpc_server *srv;
	struct rpc_client *cl;
	struct event_base *base;
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- handlers */

static int
h_echo(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	(void)arg;
	(void)st;
	sbuf_add(resp, req, reqlen);
	return RPC_OK;
}

/* Answers rpc_handler_remaining_ms() in decimal. */
static int
h_left(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	(void)arg;
	(void)req;
	(void)reqlen;
	(void)st;
	sbuf_addf(resp, "%lld", (long long)rpc_handler_remaining_ms());
	return RPC_OK;
}

/* Sleeps the number of milliseconds in arg (an int), then echoes. */
static int
h_slow(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	int *ms = arg;

	(void)st;
	sleep_ms(*ms);
	sbuf_add(resp, req, reqlen);
	return RPC_OK;
}

/* Answers with arg (a size_t) bytes of 'x'. */
static int
h_big(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	size_t *n = arg, i;

	(void)req;
	(void)reqlen;
	(void)st;
	for (i = 0; i < *n; i++)
		sbuf_addch(resp, 'x');
	return RPC_OK;
}

static int
h_fail(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	(void)arg;
	sbuf_adds(resp, "ignored");
	return rpc_status_set(st, RPC_FAILED_PRECONDITION,
	    "instance %.*s unhealthy", (int)reqlen, (const char *)req);
}

static int
h_flerr(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	(void)arg;
	(void)req;
	(void)reqlen;
	(void)resp;
	(void)st;
	return FL_ERR_NOTFOUND;
}

static const char test_key[] = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "AAAA\0binary\n-----END OPENSSH PRIVATE KEY-----\n";

/* ConnectInfo over real protobuf: echoes the id, fills connect details. */
static int
h_connect_info(void *arg, const uint8_t *req, size_t reqlen,
    struct sbuf *resp, struct rpc_status *st)
{
	Flotilla__Fleeting__V1__ConnectInfoRequest *in;
	Flotilla__Fleeting__V1__ConnectInfoResponse out =
	    FLOTILLA__FLEETING__V1__CONNECT_INFO_RESPONSE__INIT;
	Flotilla__Fleeting__V1__ConnectorConfig cc =
	    FLOTILLA__FLEETING__V1__CONNECTOR_CONFIG__INIT;
	uint8_t *buf;
	size_t n;

	(void)arg;
	in = flotilla__fleeting__v1__connect_info_request__unpack(NULL, reqlen,
	    req);
	if (in == NULL)
		return rpc_status_set(st, RPC_INVALID_ARGUMENT, "bad request");
	if (strcmp(in->id, "i-0001") != 0) {
		flotilla__fleeting__v1__connect_info_request__free_unpacked(in,
		    NULL);
		return rpc_status_set(st, RPC_NOT_FOUND, "no such instance");
	}
	cc.os = "linux";
	cc.arch = "arm64";
	cc.protocol = "ssh";
	cc.protocol_port = 2222;
	cc.username = "core";
	cc.key.data = (uint8_t *)test_key;
	cc.key.len = sizeof test_key - 1;
	cc.use_static_credentials = 1;
	cc.timeout_ns = 10000000000LL;
	out.id = in->id;
	out.connector = &cc;
	out.external_addr = "203.0.113.7:22";
	out.internal_addr = "10.0.0.7";
	out.expires_unix_ns = 1767225600000000000LL;
	n = flotilla__fleeting__v1__connect_info_response__get_packed_size(&out);
	buf = xmalloc(n);
	flotilla__fleeting__v1__connect_info_response__pack(&out, buf);
	sbuf_add(resp, buf, n);
	free(buf);
	flotilla__fleeting__v1__connect_info_request__free_unpacked(in, NULL);
	return RPC_OK;
}

/* ---- fixture */

static int slow_ms = 600;
static size_t big_n = 2048;

static struct rpc_server *
start_server(struct fixture *f, size_t max, unsigned nthreads)
{
	char err[256];
	struct rpc_server *srv;

	srv = rpc_server_new(f->path, max, err, sizeof err);
	if (srv == NULL)
		fail_msg("rpc_server_new: %s", err);
	assert_int_equal(rpc_server_add_method(srv, M_ECHO, h_echo, NULL), 0);
	assert_int_equal(rpc_server_add_method(srv, M_SLOW, h_slow, &slow_ms),
	    0);
	assert_int_equal(rpc_server_add_method(srv, M_BIG, h_big, &big_n), 0);
	assert_int_equal(rpc_server_add_method(srv, M_FAIL, h_fail, NULL), 0);
	assert_int_equal(rpc_server_add_method(srv, M_LEFT, h_left, NULL), 0);
	assert_int_equal(rpc_server_add_method(srv, M_ERRNO, h_flerr, NULL),
	    0);
	assert_int_equal(rpc_server_add_method(srv, FLEETING_RPC_CONNECT_INFO,
	    h_connect_info, NULL), 0);
	if (nthreads != 0)
		assert_int_equal(rpc_server_set_threads(srv, nthreads), 0);
	assert_int_equal(rpc_server_start(srv), 0);
	return srv;
}

static struct rpc_client *
new_client(struct fixture *f, size_t max)
{
	char err[256];
	struct rpc_client *cl;

	cl = rpc_client_new(f->path, max, f->base, err, sizeof err);
	if (cl == NULL)
		fail_msg("rpc_client_new: %s", err);
	return cl;
}

static int
setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof *f);

	snprintf(f->dir, sizeof f->dir, "/tmp/test_rpc.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/plugin.sock", f->dir);
	f->base = event_base_new();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	int rc;

	rpc_client_free(f->cl);
	rpc_server_free(f->srv);
	event_base_free(f->base);
	/* Fails if the socket file was left behind. */
	rc = rmdir(f->dir);
	free(f);
	return rc;
}

/* Run the loop until *flag becomes non-zero or ms pass. */
static void
loop_until(struct event_base *base, const int *flag, int ms)
{
	int64_t end = now_ms() + ms;
	struct timeval tv = { 0, 10000 };

	while (!*flag && now_ms() < end) {
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
}

/* ---- tests */

static void
test_protobuf_roundtrip(void **state)
{
	struct fixture *f = *state;
	Flotilla__Fleeting__V1__ConnectInfoRequest req =
	    FLOTILLA__FLEETING__V1__CONNECT_INFO_REQUEST__INIT;
	Flotilla__Fleeting__V1__ConnectInfoResponse *out;
	struct rpc_status st;
	struct sbuf resp;
	uint8_t buf[64];
	size_t n;

	f->srv = start_server(f, 0, 0);
	f->cl = new_client(f, 0);
	req.id = "i-0001";
	n = flotilla__fleeting__v1__connect_info_request__get_packed_size(&req);
	assert_true(n <= sizeof buf);
	flotilla__fleeting__v1__connect_info_request__pack(&req, buf);

	sbuf_init(&resp);
	assert_int_equal(rpc_call(f->cl, FLEETING_RPC_CONNECT_INFO, buf, n,
	    5000, &resp, &st), 0);
	assert_int_equal(st.code, RPC_OK);
	assert_string_equal(st.message, "");
	out = flotilla__fleeting__v1__connect_info_response__unpack(NULL,
	    resp.len, (const uint8_t *)resp.buf);
	assert_non_null(out);
	assert_string_equal(out->id, "i-0001");
	assert_non_null(out->connector);
	assert_string_equal(out->connector->os, "linux");
	assert_string_equal(out->connector->arch, "arm64");
	assert_string_equal(out->connector->protocol, "ssh");
	assert_int_equal(out->connector->protocol_port, 2222);
	assert_string_equal(out->connector->username, "core");
	assert_string_equal(out->connector->password, "");
	assert_int_equal(out->connector->key.len, sizeof test_key - 1);
	assert_memory_equal(out->connector->key.data, test_key,
	    sizeof test_key - 1);
	assert_true(out->connector->use_static_credentials);
	assert_true(out->connector->timeout_ns == 10000000000LL);
	assert_string_equal(out->external_addr, "203.0.113.7:22");
	assert_string_equal(out->internal_addr, "10.0.0.7");
	assert_true(out->expires_unix_ns == 1767225600000000000LL);
	flotilla__fleeting__v1__connect_info_response__free_unpacked(out, NULL);

	/* The handler's own status travels back too. */
	req.id = "i-9999";
	n = flotilla__fleeting__v1__connect_info_request__get_packed_size(&req);
	flotilla__fleeting__v1__connect_info_request__pack(&req, buf);
	assert_int_equal(rpc_call(f->cl, FLEETING_RPC_CONNECT_INFO, buf, n,
	    5000, &resp, &st), FL_ERR_NOTFOUND);
	assert_int_equal(st.code, RPC_NOT_FOUND);
	assert_string_equal(st.message, "no such instance");
	assert_int_equal(resp.len, 0);

	/* Garbage is refused by the handler's unpack, not the transport. */
	assert_int_equal(rpc_call(f->cl, FLEETING_RPC_CONNECT_INFO,
	    "\xff\xff\xff", 3, 5000, &resp, &st), FL_ERR_INVAL);
	assert_int_equal(st.code, RPC_INVALID_ARGUMENT);
	sbuf_release(&resp);
}

static void
test_echo_and_empty(void **state)
{
	struct fixture *f = *state;
	struct rpc_status st;
	struct sbuf resp;

	f->srv = start_server(f, 0, 0);
	f->cl = new_client(f, 0);
	sbuf_init(&resp);
	assert_int_equal(rpc_call(f->cl, M_ECHO, "hello", 5, 5000, &resp,
	    &st), 0);
	assert_int_equal(resp.len, 5);
	assert_memory_equal(resp.buf, "hello", 5);
	/* An empty message (e.g. UpdateRequest{}) is a valid request. */
	assert_int_equal(rpc_call(f->cl, M_ECHO, NULL, 0, 5000, &resp, &st), 0);
	assert_int_equal(resp.len, 0);
	/* NULL resp and st are allowed. */
	assert_int_equal(rpc_call(f->cl, M_ECHO, "x", 1, 5000, NULL, NULL), 0);
	sbuf_release(&resp);
}

static void
test_error_status(void **state)
{
	struct fixture *f = *state;
	struct rpc_status st;
	struct sbuf resp;

	f->srv = start_server(f, 0, 0);
	f->cl = new_client(f, 0);
	sbuf_init(&resp);
	assert_int_equal(rpc_call(f->cl, M_FAIL, "i-42", 4, 5000, &resp, &st),
	    FL_ERR_PROTO);
	assert_int_equal(st.code, RPC_FAILED_PRECONDITION);
	assert_string_equal(st.message, "instance i-42 unhealthy");
	assert_int_equal(resp.len, 0);

	/* A negative FL_ERR_* from a handler becomes UNKNOWN + err_str. */
	assert_int_equal(rpc_call(f->cl, M_ERRNO, "", 0, 5000, &resp, &st),
	    FL_ERR_PROTO);
	assert_int_equal(st.code, RPC_UNKNOWN);
	assert_string_equal(st.message, err_str(FL_ERR_NOTFOUND));
	sbuf_release(&resp);
}

static void
test_unimplemented(void **state)
{
	struct fixture *f = *state;
	struct rpc_status st;

	f->srv = start_server(f, 0, 0);
	f->cl = new_client(f, 0);
	assert_int_equal(rpc_call(f->cl, FLEETING_RPC_HEARTBEAT, "", 0, 5000,
	    NULL, &st), FL_ERR_NOTFOUND);
	assert_int_equal(st.code, RPC_UNIMPLEMENTED);
	assert_non_null(strstr(st.message, FLEETING_RPC_HEARTBEAT));
	assert_int_equal(rpc_call(f->cl, HEALTH_RPC_CHECK, "", 0, 5000, NULL,
	    &st), FL_ERR_NOTFOUND);
	assert_int_equal(st.code, RPC_UNIMPLEMENTED);
}

static void
test_deadline(void **state)
{
	struct fixture *f = *state;
	struct rpc_status st;
	int64_t t0, dt;

	f->srv = start_server(f, 0, 0);
	f->cl = new_client(f, 0);
	slow_ms = 600;
	t0 = now_ms();
	assert_int_equal(rpc_call(f->cl, M_SLOW, "z", 1, 100, NULL, &st),
	    FL_ERR_TIMEOUT);
	dt = now_ms() - t0;
	assert_int_equal(st.code, RPC_DEADLINE_EXCEEDED);
	assert_true(dt >= 90);
	assert_true(dt < 550);
	/* The server is still usable afterwards. */
	assert_int_equal(rpc_call(f->cl, M_ECHO, "ok", 2, 5000, NULL, &st), 0);
}

/* A handler knows the time left before the caller's deadline. */
static void
test_handler_deadline(void **state)
{
	struct fixture *f = *state;
	struct rpc_status st;
	struct sbuf resp;
	long long left;

	f->srv = start_server(f, 0, 0);
	f->cl = new_client(f, 0);
	sbuf_init(&resp);
	assert_int_equal(rpc_call(f->cl, M_LEFT, "", 0, 5000, &resp, &st), 0);
	left = strtoll(resp.buf, NULL, 10);
	assert_true(left > 3000);
	assert_true(left <= 5500);	/* grpc-timeout is rounded up */
	sbuf_reset(&resp);
	assert_int_equal(rpc_call(f->cl, M_LEFT, "", 0, 0, &resp, &st), 0);
	assert_string_equal(resp.buf, "-1");
	/* Not inside a handler: none. */
	assert_int_equal(rpc_handler_remaining_ms(), -1);
	sbuf_release(&resp);
}

static void
test_oversize(void **state)
{
	struct fixture *f = *state;
	struct rpc_client *small;
	struct rpc_status st;
	struct sbuf resp;
	char *big;

	/* Server takes at most 1024 bytes; the client would accept more. */
	f->srv = start_server(f, 1024, 0);
	f->cl = new_client(f, 0);
	big = xcalloc(1, 4096);
	sbuf_init(&resp);
	assert_int_equal(rpc_call(f->cl, M_ECHO, big, 4096, 5000, &resp, &st),
	    FL_ERR_TOOBIG);
	assert_int_equal(st.code, RPC_RESOURCE_EXHAUSTED);
	assert_int_equal(rpc_call(f->cl, M_ECHO, big, 1000, 5000, &resp, &st),
	    0);
	assert_int_equal(resp.len, 1000);

	/* A handler's response over the server's limit is not sent. */
	big_n = 2048;
	assert_int_equal(rpc_call(f->cl, M_BIG, "", 0, 5000, &resp, &st),
	    FL_ERR_TOOBIG);
	assert_int_equal(st.code, RPC_RESOURCE_EXHAUSTED);
	assert_int_equal(resp.len, 0);

	/* A client with a smaller limit refuses a response over it. */
	small = new_client(f, 512);
	big_n = 800;
	assert_int_equal(rpc_call(small, M_BIG, "", 0, 5000, &resp, &st),
	    FL_ERR_TOOBIG);
	assert_int_equal(st.code, RPC_RESOURCE_EXHAUSTED);
	big_n = 500;
	assert_int_equal(rpc_call(small, M_BIG, "", 0, 5000, &resp, &st), 0);
	assert_int_equal(resp.len, 500);
	rpc_client_free(small);
	sbuf_release(&resp);
	free(big);
}

struct result {
	int done;
	int code;
	char message[RPC_MSG_MAX];
	char data[64];
	size_t len;
	pthread_t thread;
	int *counter;
};

static int all_done;

static void
on_done(void *arg, const struct rpc_status *st, const uint8_t *resp,
    size_t resplen)
{
	struct result *r = arg;

	r->done++;
	r->code = st->code;
	snprintf(r->message, sizeof r->message, "%s", st->message);
	r->len = resplen;
	if (resplen <= sizeof r->data)
		memcpy(r->data, resp, resplen);
	r->thread = pthread_self();
	if (r->counter != NULL && ++*r->counter == 100)
		all_done = 1;
}

static void
test_async_on_loop(void **state)
{
	struct fixture *f = *state;
	struct result r = { 0 }, bad = { 0 };

	f->srv = start_server(f, 0, 0);
	f->cl = new_client(f, 0);
	assert_non_null(rpc_call_async(f->cl, M_ECHO, "ping", 4, 5000, on_done,
	    &r));
	/* Invalid method: still delivered on the loop, never inline. */
	assert_non_null(rpc_call_async(f->cl, "nonsense", "", 0, 5000, on_done,
	    &bad));
	assert_int_equal(bad.done, 0);
	loop_until(f->base, &r.done, 5000);
	loop_until(f->base, &bad.done, 5000);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.code, RPC_OK);
	assert_int_equal(r.len, 4);
	assert_memory_equal(r.data, "ping", 4);
	assert_true(pthread_equal(r.thread, pthread_self()));
	assert_int_equal(bad.done, 1);
	assert_int_equal(bad.code, RPC_INVALID_ARGUMENT);
	assert_true(pthread_equal(bad.thread, pthread_self()));

	/* A client without a loop has no async calls. */
	{
		char err[128];
		struct rpc_client *nb = rpc_client_new(f->path, 0, NULL, err,
		    sizeof err);

		assert_non_null(nb);
		assert_null(rpc_call_async(nb, M_ECHO, "", 0, 1000, on_done,
		    &r));
		rpc_client_free(nb);
	}
}

static void
test_async_100(void **state)
{
	struct fixture *f = *state;
	struct result *r;
	char msg[32];
	int i, count = 0;

	f->srv = start_server(f, 0, 4);
	f->cl = new_client(f, 0);
	r = xcalloc(100, sizeof *r);
	slow_ms = 5;
	all_done = 0;
	for (i = 0; i < 100; i++) {
		snprintf(msg, sizeof msg, "call-%d", i);
		r[i].counter = &count;
		assert_non_null(rpc_call_async(f->cl, i % 2 ? M_ECHO : M_SLOW,
		    msg, strlen(msg), 10000, on_done, &r[i]));
	}
	loop_until(f->base, &all_done, 20000);
	assert_int_equal(count, 100);
	for (i = 0; i < 100; i++) {
		snprintf(msg, sizeof msg, "call-%d", i);
		assert_int_equal(r[i].done, 1);
		assert_int_equal(r[i].code, RPC_OK);
		assert_int_equal(r[i].len, strlen(msg));
		assert_memory_equal(r[i].data, msg, r[i].len);
	}
	free(r);
}

/* rpc_call from several threads at once on one client. */
struct caller {
	struct rpc_client *cl;
	int id;
	int failures;
};

static void *
caller_thread(void *arg)
{
	struct caller *c = arg;
	struct rpc_status st;
	struct sbuf resp;
	char msg[32];
	int i;

	sbuf_init(&resp);
	for (i = 0; i < 25; i++) {
		snprintf(msg, sizeof msg, "t%d-%d", c->id, i);
		if (rpc_call(c->cl, M_ECHO, msg, strlen(msg), 5000, &resp,
		    &st) != 0 || resp.len != strlen(msg) ||
		    memcmp(resp.buf, msg, resp.len) != 0)
			c->failures++;
	}
	sbuf_release(&resp);
	return NULL;
}

static void
test_blocking_threads(void **state)
{
	struct fixture *f = *state;
	struct caller c[4];
	pthread_t t[4];
	int i;

	f->srv = start_server(f, 0, 2);
	f->cl = new_client(f, 0);
	for (i = 0; i < 4; i++) {
		c[i].cl = f->cl;
		c[i].id = i;
		c[i].failures = 0;
		assert_int_equal(pthread_create(&t[i], NULL, caller_thread,
		    &c[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(c[i].failures, 0);
	}
}

/* Handlers run concurrently: "update" waits until "connect" has run. */
static volatile int connect_ran;

static int
h_wait_for_connect(void *arg, const uint8_t *req, size_t reqlen,
    struct sbuf *resp, struct rpc_status *st)
{
	int64_t end = now_ms() + 3000;

	(void)arg;
	(void)req;
	(void)reqlen;
	(void)resp;
	while (!__atomic_load_n(&connect_ran, __ATOMIC_ACQUIRE)) {
		if (now_ms() > end)
			return rpc_status_set(st, RPC_ABORTED, "serialised");
		sleep_ms(5);
	}
	return RPC_OK;
}

static int
h_connect(void *arg, const uint8_t *req, size_t reqlen, struct sbuf *resp,
    struct rpc_status *st)
{
	(void)arg;
	(void)req;
	(void)reqlen;
	(void)resp;
	(void)st;
	__atomic_store_n(&connect_ran, 1, __ATOMIC_RELEASE);
	return RPC_OK;
}

static void
test_concurrent_handlers(void **state)
{
	struct fixture *f = *state;
	struct result upd = { 0 }, con = { 0 };
	char err[128];

	f->srv = rpc_server_new(f->path, 0, err, sizeof err);
	assert_non_null(f->srv);
	assert_int_equal(rpc_server_add_method(f->srv, FLEETING_RPC_UPDATE,
	    h_wait_for_connect, NULL), 0);
	assert_int_equal(rpc_server_add_method(f->srv,
	    FLEETING_RPC_CONNECT_INFO, h_connect, NULL), 0);
	assert_int_equal(rpc_server_add_method(f->srv,
	    FLEETING_RPC_CONNECT_INFO, h_connect, NULL), FL_ERR_EXISTS);
	assert_int_equal(rpc_server_set_threads(f->srv, 0), FL_ERR_INVAL);
	assert_int_equal(rpc_server_start(f->srv), 0);
	assert_int_equal(rpc_server_start(f->srv), FL_ERR_INVAL);
	assert_int_equal(rpc_server_add_method(f->srv, M_ECHO, h_echo, NULL),
	    FL_ERR_INVAL);
	f->cl = new_client(f, 0);
	connect_ran = 0;
	assert_non_null(rpc_call_async(f->cl, FLEETING_RPC_UPDATE, "", 0,
	    10000, on_done, &upd));
	sleep_ms(50);
	assert_non_null(rpc_call_async(f->cl, FLEETING_RPC_CONNECT_INFO, "", 0,
	    10000, on_done, &con));
	loop_until(f->base, &upd.done, 8000);
	loop_until(f->base, &con.done, 8000);
	assert_int_equal(con.code, RPC_OK);
	assert_int_equal(upd.code, RPC_OK);
}

static void
test_cancel_and_free_pending(void **state)
{
	struct fixture *f = *state;
	struct result a = { 0 }, b = { 0 }, c = { 0 };
	struct rpc_pending *p;
	int never = 0;

	slow_ms = 300;
	f->srv = start_server(f, 0, 0);
	f->cl = new_client(f, 0);
	p = rpc_call_async(f->cl, M_SLOW, "a", 1, 5000, on_done, &a);
	assert_non_null(p);
	rpc_call_cancel(p);
	rpc_call_cancel(NULL);
	/* A call cancelled after it finished but before delivery. */
	p = rpc_call_async(f->cl, M_ECHO, "b", 1, 5000, on_done, &b);
	sleep_ms(200);
	rpc_call_cancel(p);
	loop_until(f->base, &never, 500);
	assert_int_equal(a.done, 0);
	assert_int_equal(b.done, 0);

	/* Freeing the client with a call in flight: no callback, no leak. */
	assert_non_null(rpc_call_async(f->cl, M_SLOW, "c", 1, 5000, on_done,
	    &c));
	sleep_ms(20);
	rpc_client_free(f->cl);
	f->cl = NULL;
	loop_until(f->base, &never, 100);
	assert_int_equal(c.done, 0);
}

/* A callback that frees the client while more completions are queued. */
struct freer {
	struct rpc_client **cl;
	int calls;
};

static void
on_done_free(void *arg, const struct rpc_status *st, const uint8_t *resp,
    size_t resplen)
{
	struct freer *fr = arg;

	(void)st;
	(void)resp;
	(void)resplen;
	fr->calls++;
	rpc_client_free(*fr->cl);
	*fr->cl = NULL;
}

static void
test_free_from_callback(void **state)
{
	struct fixture *f = *state;
	struct freer fr = { &f->cl, 0 };
	int i, never = 0;

	f->srv = start_server(f, 0, 0);
	f->cl = new_client(f, 0);
	for (i = 0; i < 5; i++)
		assert_non_null(rpc_call_async(f->cl, M_ECHO, "x", 1, 5000,
		    on_done_free, &fr));
	/* Let all five finish so they are delivered in one batch. */
	sleep_ms(200);
	loop_until(f->base, &never, 300);
	assert_int_equal(fr.calls, 1);
	assert_null(f->cl);
}

struct blocking_call {
	struct rpc_client *cl;
	int rc;
	struct rpc_status st;
	int64_t ms;
};

static void *
blocking_call_thread(void *arg)
{
	struct blocking_call *bc = arg;
	int64_t t0 = now_ms();

	bc->rc = rpc_call(bc->cl, M_SLOW, "s", 1, 10000, NULL, &bc->st);
	bc->ms = now_ms() - t0;
	return NULL;
}

static void
test_server_shutdown_pending(void **state)
{
	struct fixture *f = *state;
	struct blocking_call bc = { 0 };
	struct result r = { 0 };
	struct rpc_status st;
	pthread_t t;

	slow_ms = 800;
	f->srv = start_server(f, 0, 0);
	f->cl = new_client(f, 0);
	bc.cl = f->cl;
	assert_int_equal(pthread_create(&t, NULL, blocking_call_thread, &bc),
	    0);
	assert_non_null(rpc_call_async(f->cl, M_SLOW, "a", 1, 10000, on_done,
	    &r));
	sleep_ms(150);	/* both calls are inside the handler now */
	assert_int_equal(rpc_server_shutdown(f->srv, 50), FL_ERR_TIMEOUT);
	assert_int_equal(rpc_server_shutdown(f->srv, 50), 0);
	pthread_join(t, NULL);
	assert_int_not_equal(bc.st.code, RPC_OK);
	assert_true(bc.rc < 0);
	/* Failed when the server cancelled, well before the handler's end. */
	assert_true(bc.ms < 700);
	loop_until(f->base, &r.done, 5000);
	assert_int_equal(r.done, 1);
	assert_int_not_equal(r.code, RPC_OK);
	/* The socket is gone: new calls fail as unavailable. */
	assert_int_equal(rpc_call(f->cl, M_ECHO, "x", 1, 2000, NULL, &st),
	    FL_ERR_CLOSED);
	assert_int_equal(st.code, RPC_UNAVAILABLE);
}

static void
test_graceful_shutdown(void **state)
{
	struct fixture *f = *state;
	struct result r = { 0 };

	slow_ms = 200;
	f->srv = start_server(f, 0, 0);
	f->cl = new_client(f, 0);
	assert_non_null(rpc_call_async(f->cl, M_SLOW, "g", 1, 10000, on_done,
	    &r));
	sleep_ms(100);
	/* The call in progress is allowed to finish. */
	assert_int_equal(rpc_server_shutdown(f->srv, 5000), 0);
	loop_until(f->base, &r.done, 5000);
	assert_int_equal(r.code, RPC_OK);
	assert_int_equal(r.len, 1);
}

static void
test_no_server(void **state)
{
	struct fixture *f = *state;
	struct rpc_status st;

	f->cl = new_client(f, 0);
	assert_int_equal(rpc_call(f->cl, M_ECHO, "x", 1, 2000, NULL, &st),
	    FL_ERR_CLOSED);
	assert_int_equal(st.code, RPC_UNAVAILABLE);
}

/* A socket file left by a dead plugin is replaced, not an error. */
static void
test_stale_socket(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_un sun;
	struct stat sb;
	int fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	assert_true(strlen(f->path) < sizeof sun.sun_path);
	memcpy(sun.sun_path, f->path, strlen(f->path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	close(fd);
	assert_int_equal(lstat(f->path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));

	f->srv = start_server(f, 0, 1);
	f->cl = new_client(f, 0);
	assert_int_equal(rpc_call(f->cl, M_ECHO, "s", 1, 5000, NULL, NULL), 0);
}

static void
test_bad_arguments(void **state)
{
	struct fixture *f = *state;
	char err[256], longpath[200], file[160];
	struct rpc_status st;
	FILE *fp;

	memset(longpath, 'a', sizeof longpath - 1);
	longpath[0] = '/';
	longpath[sizeof longpath - 1] = '\0';
	err[0] = '\0';
	assert_null(rpc_server_new(longpath, 0, err, sizeof err));
	assert_non_null(strstr(err, "too long"));
	assert_null(rpc_client_new("", 0, NULL, err, sizeof err));
	assert_null(rpc_server_new(f->path, RPC_MAX_MSG_LIMIT + 1, err,
	    sizeof err));

	/* Refuses to bind over something that is not a socket. */
	snprintf(file, sizeof file, "%s/regular", f->dir);
	fp = fopen(file, "w");
	assert_non_null(fp);
	fclose(fp);
	assert_null(rpc_server_new(file, 0, err, sizeof err));
	assert_non_null(strstr(err, "not a socket"));
	assert_int_equal(unlink(file), 0);

	/* A directory that does not exist: the bind fails. */
	snprintf(file, sizeof file, "%s/missing/s.sock", f->dir);
	assert_null(rpc_server_new(file, 0, err, sizeof err));
	assert_non_null(strstr(err, "No such file or directory"));

	/* A server that never starts is freed cleanly, socket removed. */
	f->srv = rpc_server_new(f->path, 0, err, sizeof err);
	assert_non_null(f->srv);
	assert_int_equal(rpc_server_add_method(f->srv, "noslash", h_echo,
	    NULL), FL_ERR_INVAL);
	assert_int_equal(rpc_server_add_method(f->srv, "/a.B/", h_echo,
	    NULL), FL_ERR_INVAL);
	assert_int_equal(rpc_server_add_method(f->srv, "/a.B/C/D", h_echo,
	    NULL), FL_ERR_INVAL);
	assert_int_equal(rpc_server_add_method(f->srv, "/a.B/C D", h_echo,
	    NULL), FL_ERR_INVAL);
	assert_int_equal(rpc_server_add_method(f->srv, M_ECHO, NULL, NULL),
	    FL_ERR_INVAL);
	rpc_server_free(f->srv);
	f->srv = NULL;

	f->cl = new_client(f, 0);
	assert_int_equal(rpc_call(f->cl, "bad", "", 0, 1000, NULL, &st),
	    FL_ERR_INVAL);
	assert_int_equal(st.code, RPC_INVALID_ARGUMENT);
	assert_int_equal(rpc_call(NULL, M_ECHO, "", 0, 1000, NULL, &st),
	    FL_ERR_INVAL);
	rpc_server_free(NULL);
	rpc_client_free(NULL);
}

static void
test_codes(void **state)
{
	struct rpc_status st;
	char longmsg[2 * RPC_MSG_MAX];

	(void)state;
	assert_string_equal(rpc_code_name(RPC_OK), "OK");
	assert_string_equal(rpc_code_name(RPC_UNAUTHENTICATED),
	    "UNAUTHENTICATED");
	assert_string_equal(rpc_code_name(RPC_FAILED_PRECONDITION),
	    "FAILED_PRECONDITION");
	assert_string_equal(rpc_code_name(17), "?");
	assert_string_equal(rpc_code_name(-1), "?");
	assert_int_equal(rpc_code_to_err(RPC_OK), 0);
	assert_int_equal(rpc_code_to_err(RPC_DEADLINE_EXCEEDED),
	    FL_ERR_TIMEOUT);
	assert_int_equal(rpc_code_to_err(RPC_UNAVAILABLE), FL_ERR_CLOSED);
	assert_int_equal(rpc_code_to_err(RPC_UNKNOWN), FL_ERR_PROTO);
	memset(longmsg, 'm', sizeof longmsg - 1);
	longmsg[sizeof longmsg - 1] = '\0';
	assert_int_equal(rpc_status_set(&st, RPC_ABORTED, "%s", longmsg),
	    RPC_ABORTED);
	assert_int_equal(strlen(st.message), RPC_MSG_MAX - 1);
	assert_int_equal(rpc_status_set(&st, RPC_OK, NULL), RPC_OK);
	assert_string_equal(st.message, "");
}

/* gRPC's own diagnostics, kept off the test output. */
static int grpc_log_lines;

static void
test_log(int level, const char *msg)
{
	(void)level;
	(void)msg;
	__atomic_add_fetch(&grpc_log_lines, 1, __ATOMIC_RELAXED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codes),
		cmocka_unit_test_setup_teardown(test_protobuf_roundtrip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_echo_and_empty, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_error_status, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unimplemented, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_handler_deadline, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_oversize, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_async_on_loop, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_async_100, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_blocking_threads, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_handlers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cancel_and_free_pending,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_from_callback, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_server_shutdown_pending,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_graceful_shutdown, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_no_server, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stale_socket, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_arguments, setup,
		    teardown),
	};

	rpc_set_log_handler(test_log);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

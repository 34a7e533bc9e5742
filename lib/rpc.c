/*
 * Unary gRPC over a unix socket on the gRPC C core (see rpc.h for the
 * contract).  The C core is completion-queue driven: every operation is
 * started with a tag and finishes as an event on a queue that some thread
 * must be waiting on.  This file owns those threads and turns the events
 * into two simple shapes: a handler call on the server, a finished call
 * (blocking or handed to libevent) on the client.
 *
 * Server call, one struct srv_call per call, tag = the struct:
 *
 *   REQUESTED  grpc_server_request_call() is waiting for a new call.  On
 *              arrival: request a replacement, start RECV_MESSAGE.
 *   RECEIVING  the request message arrived (or the call died).  Run the
 *              handler on this pool thread, then start one batch with
 *              initial metadata, the response (if OK), the status and
 *              RECV_CLOSE_ON_SERVER.
 *   ANSWERING  that batch finished: free everything.
 *
 * Server shutdown: set `stopping` (under the mutex, so no new request is
 * made after it), grpc_server_shutdown_and_notify(); the core fails the
 * outstanding requests and posts our shutdown tag once its own calls are
 * done.  That may be before our handlers have returned (a call the client
 * cancelled is done for the core) or before a worker has picked up a call
 * that was already queued, and both would still start a batch on the
 * queue; so we also count every srv_call in existence (`nlive`) and wait
 * for the tag and nlive == 0.  Past the deadline
 * grpc_server_cancel_all_calls() hurries the calls along.  Only then is
 * the queue shut down and the pool joined.
 *
 * Client call, one struct rpc_pending per call, a single batch (send
 * metadata, message, half-close; receive metadata, message, status) whose
 * completion the client thread turns into a status and response bytes.  A
 * blocking caller is woken by the condition variable; an asynchronous call
 * is appended to `done` and the eventfd is written; the loop's event then
 * runs the callbacks (cl_dispatch).  The mutex guards the in-flight list,
 * the done queue and each call's grpc_call pointer (which the client thread
 * clears before it drops the call, so rpc_call_cancel never touches a freed
 * call).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>

#include "err.h"
#include "rpc.h"
#include "xmalloc.h"

#define RPC_MAX_THREADS 64
#define RPC_METHOD_MAX 255

/* ------------------------------------------------------------- common */

static const char *const code_names[] = {
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
	"OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE",
	"DATA_LOSS", "UNAUTHENTICATED",
};

const char *
rpc_code_name(int code)
{
	if (code < 0 || code > RPC_UNAUTHENTICATED)
		return "?";
	return code_names[code];
}

int
rpc_status_set(struct rpc_status *st, int code, const char *fmt, ...)
{
	va_list ap;

	if (st == NULL)
		return code;
	st->code = code;
	st->message[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		/* Truncation is the documented behaviour. */
		(void)vsnprintf(st->message, sizeof st->message, fmt, ap);
		va_end(ap);
	}
	return code;
}

int
rpc_code_to_err(int code)
{
	switch (code) {
	case RPC_OK:
		return 0;
	case RPC_DEADLINE_EXCEEDED:
		return FL_ERR_TIMEOUT;
	case RPC_UNAVAILABLE:
	case RPC_CANCELLED:
		return FL_ERR_CLOSED;
	case RPC_RESOURCE_EXHAUSTED:
		return FL_ERR_TOOBIG;
	case RPC_INVALID_ARGUMENT:
		return FL_ERR_INVAL;
	case RPC_NOT_FOUND:
	case RPC_UNIMPLEMENTED:
		return FL_ERR_NOTFOUND;
	case RPC_ALREADY_EXISTS:
		return FL_ERR_EXISTS;
	default:
		return FL_ERR_PROTO;
	}
}

static rpc_log_fn log_handler;

static void
log_bridge(gpr_log_func_args *a)
{
	rpc_log_fn fn = __atomic_load_n(&log_handler, __ATOMIC_ACQUIRE);
	int level;

	if (fn == NULL || a == NULL || a->message == NULL)
		return;
	switch (a->severity) {
	case GPR_LOG_SEVERITY_DEBUG:
		level = 0;
		break;
	case GPR_LOG_SEVERITY_INFO:
		level = 1;
		break;
	default:
		level = 2;
		break;
	}
	fn(level, a->message);
}

void
rpc_set_log_handler(rpc_log_fn fn)
{
	__atomic_store_n(&log_handler, fn, __ATOMIC_RELEASE);
	gpr_set_log_function(log_bridge);
}

static void
errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	/* A truncated message is still a message. */
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A socket path that fits sockaddr_un, as "unix:PATH"; NULL if unusable. */
static char *
make_target(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	size_t n;

	if (path == NULL || path[0] == '\0') {
		errf(err, errlen, "empty socket path");
		return NULL;
	}
	n = strlen(path);
	if (n >= sizeof sun.sun_path) {
		errf(err, errlen, "socket path too long (%zu bytes, at most %zu)",
		    n, sizeof sun.sun_path - 1);
		return NULL;
	}
	return xasprintf("unix:%s", path);
}

/* 0 = default; values above the ceiling are refused (0 returned). */
static size_t
norm_max(size_t max, char *err, size_t errlen)
{
	if (max == 0)
		return RPC_DEFAULT_MAX_MSG;
	if (max > RPC_MAX_MSG_LIMIT) {
		errf(err, errlen, "max message size %zu over limit %u", max,
		    RPC_MAX_MSG_LIMIT);
		return 0;
	}
	return max;
}

/* "/package.Service/Method": printable, two non-empty segments. */
static int
method_ok(const char *m)
{
	const char *slash;
	size_t i, n;

	if (m == NULL || m[0] != '/')
		return 0;
	n = strlen(m);
	if (n < 4 || n > RPC_METHOD_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (m[i] <= ' ' || m[i] > '~')
			return 0;
	slash = strchr(m + 1, '/');
	if (slash == NULL || slash == m + 1 || slash[1] == '\0' ||
	    strchr(slash + 1, '/') != NULL)
		return 0;
	return 1;
}

/* The caller's deadline of the call this thread's handler serves. */
static _Thread_local gpr_timespec handler_deadline;
static _Thread_local int handler_has_deadline;

int64_t
rpc_handler_remaining_ms(void)
{
	gpr_timespec d, now;

	if (!handler_has_deadline)
		return -1;
	d = gpr_convert_clock_type(handler_deadline, GPR_CLOCK_MONOTONIC);
	if (gpr_time_cmp(d, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0)
		return -1;
	now = gpr_now(GPR_CLOCK_MONOTONIC);
	if (gpr_time_cmp(d, now) <= 0)
		return 0;
	return gpr_time_to_millis(gpr_time_sub(d, now));
}

static gpr_timespec
deadline_after(int timeout_ms)
{
	if (timeout_ms <= 0)
		return gpr_inf_future(GPR_CLOCK_MONOTONIC);
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
	    gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

/* Copy peer text into a status message: bounded, control bytes as '?'. */
static void
copy_text(char *dst, size_t dstlen, const void *src, size_t n)
{
	const unsigned char *s = src;
	size_t i;

	if (n > dstlen - 1)
		n = dstlen - 1;
	for (i = 0; i < n; i++)
		dst[i] = (s[i] < ' ' || s[i] == 0x7f) && s[i] != '\t' ?
		    '?' : (char)s[i];
	dst[n] = '\0';
}

static grpc_byte_buffer *
bb_new(const void *p, size_t n)
{
	grpc_slice s;
	grpc_byte_buffer *bb;

	s = n == 0 ? grpc_empty_slice() :
	    grpc_slice_from_copied_buffer(p, n);
	bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

/* Append a received message to out, at most max bytes: 0 or FL_ERR_*. */
static int
bb_read(grpc_byte_buffer *bb, size_t max, struct sbuf *out)
{
	grpc_byte_buffer_reader r;
	grpc_slice s;
	int rc = 0;

	if (grpc_byte_buffer_length(bb) > max)
		return FL_ERR_TOOBIG;
	if (!grpc_byte_buffer_reader_init(&r, bb))
		return FL_ERR_PROTO;
	while (grpc_byte_buffer_reader_next(&r, &s)) {
		size_t n = GRPC_SLICE_LENGTH(s);

		if (rc == 0 && n > max - out->len)
			rc = FL_ERR_TOOBIG;
		if (rc == 0)
			sbuf_add(out, GRPC_SLICE_START_PTR(s), n);
		grpc_slice_unref(s);
	}
	grpc_byte_buffer_reader_destroy(&r);
	return rc;
}

/* Release a buffer that may have held secrets (credentials, keys). */
static void
sbuf_wipe(struct sbuf *sb)
{
	if (sb->buf != NULL)
		freezero(sb->buf, sb->cap);
	sb->buf = NULL;
	sb->len = sb->cap = 0;
}

/*
 * Threads of this module take no asynchronous signals: those belong to the
 * process's main loop.
 */
static int
spawn(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int e;

	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGABRT);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return e;
}

static void
channel_args(grpc_arg *a, grpc_channel_args *args, size_t max)
{
	memset(a, 0, sizeof *a);
	a->type = GRPC_ARG_INTEGER;
	a->key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
	a->value.integer = (int)max;
	args->num_args = 1;
	args->args = a;
}

/* ------------------------------------------------------------- server */

struct rpc_method {
	char *path;
	size_t pathlen;
	rpc_handler_fn fn;
	void *arg;
};

enum srv_state { SRV_NEW, SRV_RUNNING, SRV_STOPPED };

struct rpc_server {
	grpc_server *server;
	grpc_completion_queue *cq;
	char *path;
	size_t max_msg;
	struct rpc_method *methods;
	size_t nmethods;
	unsigned nthreads;
	pthread_t *threads;
	unsigned nstarted;
	enum srv_state state;

	pthread_mutex_t mu;
	pthread_cond_t cv;	/* shutdown_done or nlive changed */
	int stopping;		/* no new grpc_server_request_call */
	int shutdown_done;	/* the shutdown tag arrived */
	unsigned nlive;		/* srv_calls requested and not yet freed */
	char shutdown_tag;	/* its address is the tag */
};

enum srv_phase { SC_REQUESTED, SC_RECEIVING, SC_ANSWERING };

struct srv_call {
	struct rpc_server *srv;
	enum srv_phase phase;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
	grpc_byte_buffer *req;
	grpc_byte_buffer *resp;
	grpc_slice status_details;
	int cancelled;
	int counted;		/* included in srv->nlive */
};

static void
srv_call_free(struct srv_call *sc)
{
	struct rpc_server *srv = sc->srv;
	int counted = sc->counted;

	if (sc->req != NULL)
		grpc_byte_buffer_destroy(sc->req);
	if (sc->resp != NULL)
		grpc_byte_buffer_destroy(sc->resp);
	grpc_slice_unref(sc->status_details);
	grpc_call_details_destroy(&sc->details);
	grpc_metadata_array_destroy(&sc->md);
	if (sc->call != NULL)
		grpc_call_unref(sc->call);
	free(sc);
	if (counted) {
		pthread_mutex_lock(&srv->mu);
		if (--srv->nlive == 0)
			pthread_cond_broadcast(&srv->cv);
		pthread_mutex_unlock(&srv->mu);
	}
}

/* Ask the core for one more incoming call, unless shutting down. */
static void
srv_request(struct rpc_server *srv)
{
	struct srv_call *sc;
	grpc_call_error e;

	sc = xcalloc(1, sizeof *sc);
	sc->srv = srv;
	sc->phase = SC_REQUESTED;
	sc->status_details = grpc_empty_slice();
	grpc_call_details_init(&sc->details);
	grpc_metadata_array_init(&sc->md);
	pthread_mutex_lock(&srv->mu);
	if (srv->stopping)
		e = GRPC_CALL_ERROR;
	else
		e = grpc_server_request_call(srv->server, &sc->call,
		    &sc->details, &sc->md, srv->cq, srv->cq, sc);
	if (e == GRPC_CALL_OK) {
		sc->counted = 1;
		srv->nlive++;
	}
	pthread_mutex_unlock(&srv->mu);
	if (e != GRPC_CALL_OK)
		srv_call_free(sc);
}

static const struct rpc_method *
srv_find(const struct rpc_server *srv, grpc_slice method)
{
	size_t i, n = GRPC_SLICE_LENGTH(method);

	for (i = 0; i < srv->nmethods; i++)
		if (srv->methods[i].pathlen == n &&
		    memcmp(srv->methods[i].path, GRPC_SLICE_START_PTR(method),
		    n) == 0)
			return &srv->methods[i];
	return NULL;
}

/* Run the handler (or refuse the call) and fill *st and resp. */
static void
srv_handle(struct srv_call *sc, int ok, struct sbuf *resp,
    struct rpc_status *st)
{
	struct rpc_server *srv = sc->srv;
	const struct rpc_method *m;
	struct sbuf req;
	char name[128];
	int code, rc;

	rpc_status_set(st, RPC_OK, NULL);
	if (!ok) {
		rpc_status_set(st, RPC_CANCELLED, "call ended early");
		return;
	}
	m = srv_find(srv, sc->details.method);
	if (m == NULL) {
		copy_text(name, sizeof name,
		    GRPC_SLICE_START_PTR(sc->details.method),
		    GRPC_SLICE_LENGTH(sc->details.method));
		rpc_status_set(st, RPC_UNIMPLEMENTED, "unknown method %s", name);
		return;
	}
	if (sc->req == NULL) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT,
		    "no request message");
		return;
	}
	sbuf_init(&req);
	rc = bb_read(sc->req, srv->max_msg, &req);
	if (rc != 0) {
		sbuf_wipe(&req);
		rpc_status_set(st, rc == FL_ERR_TOOBIG ?
		    RPC_RESOURCE_EXHAUSTED : RPC_INTERNAL,
		    "request: %s", err_str(rc));
		return;
	}
	handler_deadline = sc->details.deadline;
	handler_has_deadline = 1;
	code = m->fn(m->arg, (const uint8_t *)req.buf, req.len, resp, st);
	handler_has_deadline = 0;
	sbuf_wipe(&req);
	if (code < 0) {
		if (st->message[0] == '\0')
			rpc_status_set(st, RPC_UNKNOWN, "%s", err_str(code));
		code = RPC_UNKNOWN;
	} else if (code > RPC_UNAUTHENTICATED) {
		rpc_status_set(st, RPC_INTERNAL,
		    "handler returned invalid status %d", code);
		code = RPC_INTERNAL;
	}
	st->code = code;
	if (code == RPC_OK) {
		st->message[0] = '\0';
		if (resp->len > srv->max_msg)
			rpc_status_set(st, RPC_RESOURCE_EXHAUSTED,
			    "response of %zu bytes over limit %zu", resp->len,
			    srv->max_msg);
	}
}

/* The request has arrived: handle it and send the answer. */
static void
srv_answer(struct srv_call *sc, int ok)
{
	struct rpc_status st;
	struct sbuf resp;
	grpc_op ops[4];
	size_t n = 0;

	sbuf_init(&resp);
	srv_handle(sc, ok, &resp, &st);

	memset(ops, 0, sizeof ops);
	ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	n++;
	if (st.code == RPC_OK) {
		sc->resp = bb_new(resp.buf, resp.len);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = sc->resp;
		n++;
	}
	sbuf_wipe(&resp);
	sc->status_details = grpc_slice_from_copied_string(st.message);
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status =
	    (grpc_status_code)st.code;
	ops[n].data.send_status_from_server.status_details =
	    &sc->status_details;
	n++;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n].data.recv_close_on_server.cancelled = &sc->cancelled;
	n++;
	sc->phase = SC_ANSWERING;
	if (grpc_call_start_batch(sc->call, ops, n, sc, NULL) != GRPC_CALL_OK)
		srv_call_free(sc);
}

static void
srv_step(struct srv_call *sc, int ok)
{
	grpc_op op;

	switch (sc->phase) {
	case SC_REQUESTED:
		if (!ok) {
			/* Shutdown failed the request: no call came. */
			srv_call_free(sc);
			return;
		}
		srv_request(sc->srv);
		memset(&op, 0, sizeof op);
		op.op = GRPC_OP_RECV_MESSAGE;
		op.data.recv_message.recv_message = &sc->req;
		sc->phase = SC_RECEIVING;
		if (grpc_call_start_batch(sc->call, &op, 1, sc, NULL) !=
		    GRPC_CALL_OK)
			srv_call_free(sc);
		return;
	case SC_RECEIVING:
		srv_answer(sc, ok);
		return;
	case SC_ANSWERING:
		srv_call_free(sc);
		return;
	}
}

static void *
srv_thread(void *arg)
{
	struct rpc_server *srv = arg;
	grpc_event ev;

	for (;;) {
		ev = grpc_completion_queue_next(srv->cq,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		if (ev.tag == &srv->shutdown_tag) {
			pthread_mutex_lock(&srv->mu);
			srv->shutdown_done = 1;
			pthread_cond_broadcast(&srv->cv);
			pthread_mutex_unlock(&srv->mu);
			continue;
		}
		srv_step(ev.tag, ev.success);
	}
	return NULL;
}

/*
 * Shut down a server whose pool is not running (never started, or no
 * thread could be created): the core still needs the shutdown handshake
 * before grpc_server_destroy, so drive the queue on this thread.
 */
static void
srv_stop_unstarted(struct rpc_server *srv)
{
	grpc_event ev;

	pthread_mutex_lock(&srv->mu);
	srv->stopping = 1;
	pthread_mutex_unlock(&srv->mu);
	grpc_server_shutdown_and_notify(srv->server, srv->cq,
	    &srv->shutdown_tag);
	grpc_server_cancel_all_calls(srv->server);
	while (!srv->shutdown_done || srv->nlive > 0) {
		ev = grpc_completion_queue_next(srv->cq,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			continue;
		if (ev.tag == &srv->shutdown_tag)
			srv->shutdown_done = 1;
		else
			srv_step(ev.tag, ev.success);
	}
	grpc_completion_queue_shutdown(srv->cq);
	do {
		ev = grpc_completion_queue_next(srv->cq,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	} while (ev.type != GRPC_QUEUE_SHUTDOWN);
	srv->state = SRV_STOPPED;
}

static void
srv_destroy(struct rpc_server *srv)
{
	size_t i;

	grpc_server_destroy(srv->server);
	grpc_completion_queue_destroy(srv->cq);
	for (i = 0; i < srv->nmethods; i++)
		free(srv->methods[i].path);
	free(srv->methods);
	free(srv->threads);
	free(srv->path);
	pthread_cond_destroy(&srv->cv);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
	grpc_shutdown();
}

/*
 * 0 if the directory part of path is a directory, else an errno value: a
 * clear message here beats gRPC's bind error, which only goes to its log.
 */
static int
check_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	struct stat sb;
	char *dir;
	int rc = 0;

	if (slash == NULL)
		return 0;
	dir = slash == path ? xstrdup("/") : xstrndup(path,
	    (size_t)(slash - path));
	if (stat(dir, &sb) != 0)
		rc = errno;
	else if (!S_ISDIR(sb.st_mode))
		rc = ENOTDIR;
	free(dir);
	return rc;
}

struct rpc_server *
rpc_server_new(const char *unix_path, size_t max_msg_bytes, char *err,
    size_t errlen)
{
	struct rpc_server *srv;
	grpc_server_credentials *creds;
	pthread_condattr_t ca;
	grpc_channel_args args;
	grpc_arg arg;
	struct stat sb;
	char *target;
	size_t max;
	int port, rc;

	if ((max = norm_max(max_msg_bytes, err, errlen)) == 0)
		return NULL;
	if ((target = make_target(unix_path, err, errlen)) == NULL)
		return NULL;
	if (lstat(unix_path, &sb) == 0 && !S_ISSOCK(sb.st_mode)) {
		errf(err, errlen, "%s exists and is not a socket", unix_path);
		free(target);
		return NULL;
	}
	if ((rc = check_dir(unix_path)) != 0) {
		errf(err, errlen, "directory of %s: %s", unix_path,
		    strerror(rc));
		free(target);
		return NULL;
	}

	grpc_init();
	srv = xcalloc(1, sizeof *srv);
	srv->path = xstrdup(unix_path);
	srv->max_msg = max;
	srv->nthreads = 4;
	srv->state = SRV_NEW;
	pthread_mutex_init(&srv->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->cv, &ca);
	pthread_condattr_destroy(&ca);

	channel_args(&arg, &args, max);
	srv->server = grpc_server_create(&args, NULL);
	srv->cq = grpc_completion_queue_create_for_next(NULL);
	grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
	creds = grpc_insecure_server_credentials_create();
	port = grpc_server_add_http2_port(srv->server, target, creds);
	grpc_server_credentials_release(creds);
	free(target);
	if (port == 0) {
		errf(err, errlen, "cannot listen on %s", unix_path);
		srv_stop_unstarted(srv);
		/* Not ours to remove: the bind failed. */
		srv_destroy(srv);
		return NULL;
	}
	return srv;
}

int
rpc_server_add_method(struct rpc_server *srv, const char *method,
    rpc_handler_fn fn, void *arg)
{
	struct rpc_method *m;
	size_t i;

	if (srv == NULL || srv->state != SRV_NEW || fn == NULL ||
	    !method_ok(method))
		return FL_ERR_INVAL;
	for (i = 0; i < srv->nmethods; i++)
		if (strcmp(srv->methods[i].path, method) == 0)
			return FL_ERR_EXISTS;
	srv->methods = xreallocarray(srv->methods, srv->nmethods + 1,
	    sizeof *srv->methods);
	m = &srv->methods[srv->nmethods++];
	m->path = xstrdup(method);
	m->pathlen = strlen(method);
	m->fn = fn;
	m->arg = arg;
	return 0;
}

int
rpc_server_set_threads(struct rpc_server *srv, unsigned nthreads)
{
	if (srv == NULL || srv->state != SRV_NEW || nthreads == 0 ||
	    nthreads > RPC_MAX_THREADS)
		return FL_ERR_INVAL;
	srv->nthreads = nthreads;
	return 0;
}

int
rpc_server_start(struct rpc_server *srv)
{
	unsigned i;

	if (srv == NULL || srv->state != SRV_NEW)
		return FL_ERR_INVAL;
	grpc_server_start(srv->server);
	srv->state = SRV_RUNNING;
	/* One waiting request per thread, so bursts are accepted at once. */
	for (i = 0; i < srv->nthreads; i++)
		srv_request(srv);
	srv->threads = xcalloc(srv->nthreads, sizeof *srv->threads);
	for (i = 0; i < srv->nthreads; i++) {
		if (spawn(&srv->threads[i], srv_thread, srv) != 0)
			break;
		srv->nstarted++;
	}
	if (srv->nstarted == 0) {
		/* Nobody drives the queue: undo on this thread. */
		free(srv->threads);
		srv->threads = NULL;
		srv->state = SRV_NEW;
		srv_stop_unstarted(srv);
		return FL_ERR_INTERNAL;
	}
	return 0;
}

int
rpc_server_shutdown(struct rpc_server *srv, int timeout_ms)
{
	struct timespec until;
	unsigned i;
	int rc = 0;

	if (srv == NULL || srv->state == SRV_STOPPED)
		return 0;
	if (srv->state == SRV_NEW) {
		srv_stop_unstarted(srv);
		return 0;
	}
	pthread_mutex_lock(&srv->mu);
	srv->stopping = 1;
	pthread_mutex_unlock(&srv->mu);
	grpc_server_shutdown_and_notify(srv->server, srv->cq,
	    &srv->shutdown_tag);

	clock_gettime(CLOCK_MONOTONIC, &until);
	if (timeout_ms > 0) {
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&srv->mu);
	while (!(srv->shutdown_done && srv->nlive == 0) &&
	    pthread_cond_timedwait(&srv->cv, &srv->mu, &until) != ETIMEDOUT)
		;
	if (!(srv->shutdown_done && srv->nlive == 0)) {
		pthread_mutex_unlock(&srv->mu);
		grpc_server_cancel_all_calls(srv->server);
		rc = FL_ERR_TIMEOUT;
		pthread_mutex_lock(&srv->mu);
		while (!(srv->shutdown_done && srv->nlive == 0))
			pthread_cond_wait(&srv->cv, &srv->mu);
	}
	pthread_mutex_unlock(&srv->mu);

	grpc_completion_queue_shutdown(srv->cq);
	for (i = 0; i < srv->nstarted; i++)
		pthread_join(srv->threads[i], NULL);
	srv->state = SRV_STOPPED;
	return rc;
}

void
rpc_server_free(struct rpc_server *srv)
{
	struct stat sb;

	if (srv == NULL)
		return;
	rpc_server_shutdown(srv, 0);
	/* gRPC normally removes the socket itself; make sure. */
	if (lstat(srv->path, &sb) == 0 && S_ISSOCK(sb.st_mode))
		(void)unlink(srv->path);
	srv_destroy(srv);
}

/* ------------------------------------------------------------- client */

struct rpc_pending {
	struct rpc_client *cl;
	struct rpc_pending *prev, *next; /* in flight, or queued for loop */
	grpc_call *call;		/* NULL once finished (under mu) */
	grpc_byte_buffer *send_bb;
	grpc_byte_buffer *recv_bb;
	grpc_metadata_array md_initial;
	grpc_metadata_array md_trailing;
	grpc_status_code status;
	grpc_slice details;

	struct rpc_status st;
	struct sbuf resp;

	int sync;		/* a blocking rpc_call waits on it */
	int done;		/* sync: finished (under mu) */
	int cancelled;		/* async: do not run cb */
	rpc_done_fn cb;
	void *arg;
};

struct rpc_client {
	grpc_channel *ch;
	grpc_completion_queue *cq;
	pthread_t thread;
	size_t max_msg;
	struct event_base *base;
	struct event *ev;
	int efd;

	pthread_mutex_t mu;
	pthread_cond_t cv;		/* some sync call finished */
	struct rpc_pending *inflight;	/* started, not finished */
	struct rpc_pending *done_head;	/* finished async calls, FIFO */
	struct rpc_pending *done_tail;
	/* Loop thread only: */
	struct rpc_pending *dispatch;	/* taken from done, being delivered */
	int *alive;			/* cl_dispatch's flag, cleared by free */
};

static void
pending_free(struct rpc_pending *p)
{
	sbuf_wipe(&p->resp);
	free(p);
}

static void
poke(struct rpc_client *cl)
{
	uint64_t one = 1;
	ssize_t n;

	/* The counter only saturates after 2^64 - 2 writes: never. */
	do
		n = write(cl->efd, &one, sizeof one);
	while (n < 0 && errno == EINTR);
}

/* Append a finished async call to the loop's queue; the caller holds mu. */
static void
pending_queue_done(struct rpc_client *cl, struct rpc_pending *p)
{
	p->next = NULL;
	if (cl->done_tail != NULL)
		cl->done_tail->next = p;
	else
		cl->done_head = p;
	cl->done_tail = p;
}

static void
pending_fail_local(struct rpc_client *cl, struct rpc_pending *p, int code,
    const char *msg)
{
	rpc_status_set(&p->st, code, "%s", msg);
	if (p->sync) {
		p->done = 1;
		return;
	}
	pthread_mutex_lock(&cl->mu);
	pending_queue_done(cl, p);
	pthread_mutex_unlock(&cl->mu);
	poke(cl);
}

static void
pending_unlink(struct rpc_client *cl, struct rpc_pending *p)
{
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		cl->inflight = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
}

/* Start p as one batch; failures before the start are finished locally. */
static void
cl_start(struct rpc_client *cl, struct rpc_pending *p, const char *method,
    const void *req, size_t reqlen, int timeout_ms)
{
	grpc_slice mslice;
	grpc_call_error e;
	grpc_op ops[6];

	p->cl = cl;
	p->details = grpc_empty_slice();
	if (!method_ok(method)) {
		pending_fail_local(cl, p, RPC_INVALID_ARGUMENT,
		    "invalid method path");
		return;
	}
	if (reqlen > 0 && req == NULL) {
		pending_fail_local(cl, p, RPC_INVALID_ARGUMENT,
		    "NULL request");
		return;
	}
	mslice = grpc_slice_from_copied_string(method);
	p->call = grpc_channel_create_call(cl->ch, NULL,
	    GRPC_PROPAGATE_DEFAULTS, cl->cq, mslice, NULL,
	    deadline_after(timeout_ms), NULL);
	grpc_slice_unref(mslice);
	if (p->call == NULL) {
		pending_fail_local(cl, p, RPC_INTERNAL, "cannot create call");
		return;
	}
	grpc_metadata_array_init(&p->md_initial);
	grpc_metadata_array_init(&p->md_trailing);
	p->send_bb = bb_new(req, reqlen);

	memset(ops, 0, sizeof ops);
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = p->send_bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata =
	    &p->md_initial;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &p->recv_bb;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &p->md_trailing;
	ops[5].data.recv_status_on_client.status = &p->status;
	ops[5].data.recv_status_on_client.status_details = &p->details;

	/* Listed before the start: its completion may come at once. */
	pthread_mutex_lock(&cl->mu);
	p->prev = NULL;
	p->next = cl->inflight;
	if (cl->inflight != NULL)
		cl->inflight->prev = p;
	cl->inflight = p;
	pthread_mutex_unlock(&cl->mu);
	e = grpc_call_start_batch(p->call, ops, 6, p, NULL);
	if (e != GRPC_CALL_OK) {
		char msg[128];

		pthread_mutex_lock(&cl->mu);
		pending_unlink(cl, p);
		pthread_mutex_unlock(&cl->mu);
		snprintf(msg, sizeof msg, "cannot start call: %s",
		    grpc_call_error_to_string(e));
		grpc_byte_buffer_destroy(p->send_bb);
		p->send_bb = NULL;
		grpc_metadata_array_destroy(&p->md_initial);
		grpc_metadata_array_destroy(&p->md_trailing);
		grpc_call_unref(p->call);
		p->call = NULL;
		pending_fail_local(cl, p, RPC_INTERNAL, msg);
	}
}

/* Client thread: a call's batch completed. */
static void
cl_finish(struct rpc_client *cl, struct rpc_pending *p, int ok)
{
	grpc_call *call;
	int rc, wake_loop = 0;

	if (!ok) {
		rpc_status_set(&p->st, RPC_INTERNAL, "call failed");
	} else {
		p->st.code = (int)p->status;
		copy_text(p->st.message, sizeof p->st.message,
		    GRPC_SLICE_START_PTR(p->details),
		    GRPC_SLICE_LENGTH(p->details));
		if (p->st.code < 0 || p->st.code > RPC_UNAUTHENTICATED)
			rpc_status_set(&p->st, RPC_UNKNOWN,
			    "invalid status %d", (int)p->status);
	}
	if (p->st.code == RPC_OK) {
		if (p->recv_bb == NULL)
			rpc_status_set(&p->st, RPC_INTERNAL,
			    "OK status without a response message");
		else if ((rc = bb_read(p->recv_bb, cl->max_msg,
		    &p->resp)) != 0) {
			sbuf_wipe(&p->resp);
			sbuf_init(&p->resp);
			rpc_status_set(&p->st, rc == FL_ERR_TOOBIG ?
			    RPC_RESOURCE_EXHAUSTED : RPC_INTERNAL,
			    "response: %s", err_str(rc));
		}
	}
	if (p->recv_bb != NULL)
		grpc_byte_buffer_destroy(p->recv_bb);
	p->recv_bb = NULL;
	grpc_byte_buffer_destroy(p->send_bb);
	p->send_bb = NULL;
	grpc_slice_unref(p->details);
	p->details = grpc_empty_slice();
	grpc_metadata_array_destroy(&p->md_initial);
	grpc_metadata_array_destroy(&p->md_trailing);

	pthread_mutex_lock(&cl->mu);
	call = p->call;
	p->call = NULL;
	pending_unlink(cl, p);
	if (p->sync) {
		/* From here on p belongs to the waiting thread. */
		p->done = 1;
		pthread_cond_broadcast(&cl->cv);
	} else {
		pending_queue_done(cl, p);
		wake_loop = 1;
	}
	pthread_mutex_unlock(&cl->mu);
	grpc_call_unref(call);
	if (wake_loop)
		poke(cl);
}

static void *
cl_thread(void *arg)
{
	struct rpc_client *cl = arg;
	grpc_event ev;

	for (;;) {
		ev = grpc_completion_queue_next(cl->cq,
		    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE)
			cl_finish(cl, ev.tag, ev.success);
	}
	return NULL;
}

/* Loop thread: run the callbacks of finished async calls, in order. */
static void
cl_dispatch(evutil_socket_t fd, short what, void *arg)
{
	struct rpc_client *cl = arg;
	struct rpc_pending *p;
	uint64_t count;
	int alive = 1;

	(void)what;
	/* Non-blocking; a failed read (EAGAIN) changes nothing below. */
	if (read(fd, &count, sizeof count) < 0)
		count = 0;
	pthread_mutex_lock(&cl->mu);
	cl->dispatch = cl->done_head;
	cl->done_head = cl->done_tail = NULL;
	pthread_mutex_unlock(&cl->mu);

	cl->alive = &alive;
	while ((p = cl->dispatch) != NULL) {
		cl->dispatch = p->next;
		if (!p->cancelled)
			p->cb(p->arg, &p->st, (const uint8_t *)p->resp.buf,
			    p->resp.len);
		pending_free(p);
		if (!alive)
			return;	/* the callback freed the client */
	}
	cl->alive = NULL;
}

struct rpc_client *
rpc_client_new(const char *unix_path, size_t max_msg_bytes,
    struct event_base *base, char *err, size_t errlen)
{
	struct rpc_client *cl;
	grpc_channel_credentials *creds;
	grpc_channel_args args;
	grpc_arg arg;
	char *target;
	size_t max;

	if ((max = norm_max(max_msg_bytes, err, errlen)) == 0)
		return NULL;
	if ((target = make_target(unix_path, err, errlen)) == NULL)
		return NULL;

	cl = xcalloc(1, sizeof *cl);
	cl->max_msg = max;
	cl->base = base;
	cl->efd = -1;
	if (base != NULL) {
		cl->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (cl->efd < 0) {
			errf(err, errlen, "eventfd: %s", strerror(errno));
			free(target);
			free(cl);
			return NULL;
		}
		cl->ev = event_new(base, cl->efd, EV_READ | EV_PERSIST,
		    cl_dispatch, cl);
		if (cl->ev == NULL || event_add(cl->ev, NULL) != 0) {
			errf(err, errlen, "cannot add event to loop");
			if (cl->ev != NULL)
				event_free(cl->ev);
			close(cl->efd);
			free(target);
			free(cl);
			return NULL;
		}
	}
	pthread_mutex_init(&cl->mu, NULL);
	pthread_cond_init(&cl->cv, NULL);

	grpc_init();
	channel_args(&arg, &args, max);
	creds = grpc_insecure_credentials_create();
	cl->ch = grpc_channel_create(target, creds, &args);
	grpc_channel_credentials_release(creds);
	free(target);
	cl->cq = grpc_completion_queue_create_for_next(NULL);
	if (spawn(&cl->thread, cl_thread, cl) != 0) {
		errf(err, errlen, "cannot start client thread");
		grpc_channel_destroy(cl->ch);
		grpc_completion_queue_shutdown(cl->cq);
		grpc_completion_queue_destroy(cl->cq);
		if (cl->ev != NULL)
			event_free(cl->ev);
		if (cl->efd >= 0)
			close(cl->efd);
		pthread_cond_destroy(&cl->cv);
		pthread_mutex_destroy(&cl->mu);
		free(cl);
		grpc_shutdown();
		return NULL;
	}
	return cl;
}

int
rpc_call(struct rpc_client *cl, const char *method, const void *req,
    size_t reqlen, int timeout_ms, struct sbuf *resp, struct rpc_status *st)
{
	struct rpc_pending *p;
	int code;

	if (cl == NULL) {
		rpc_status_set(st, RPC_INVALID_ARGUMENT, "no client");
		return FL_ERR_INVAL;
	}
	p = xcalloc(1, sizeof *p);
	p->sync = 1;
	sbuf_init(&p->resp);
	cl_start(cl, p, method, req, reqlen, timeout_ms);
	pthread_mutex_lock(&cl->mu);
	while (!p->done)
		pthread_cond_wait(&cl->cv, &cl->mu);
	pthread_mutex_unlock(&cl->mu);

	code = p->st.code;
	if (st != NULL)
		*st = p->st;
	if (resp != NULL) {
		/* Hand our buffer over rather than copying the response. */
		sbuf_wipe(resp);
		*resp = p->resp;
		sbuf_init(&p->resp);
	}
	pending_free(p);
	return rpc_code_to_err(code);
}

struct rpc_pending *
rpc_call_async(struct rpc_client *cl, const char *method, const void *req,
    size_t reqlen, int timeout_ms, rpc_done_fn cb, void *arg)
{
	struct rpc_pending *p;

	if (cl == NULL || cl->base == NULL || cb == NULL)
		return NULL;
	p = xcalloc(1, sizeof *p);
	p->cb = cb;
	p->arg = arg;
	sbuf_init(&p->resp);
	cl_start(cl, p, method, req, reqlen, timeout_ms);
	return p;
}

void
rpc_call_cancel(struct rpc_pending *p)
{
	struct rpc_client *cl;

	if (p == NULL)
		return;
	cl = p->cl;
	pthread_mutex_lock(&cl->mu);
	p->cancelled = 1;
	if (p->call != NULL)
		grpc_call_cancel(p->call, NULL);
	pthread_mutex_unlock(&cl->mu);
}

static void
pending_free_list(struct rpc_pending *p)
{
	struct rpc_pending *next;

	for (; p != NULL; p = next) {
		next = p->next;
		pending_free(p);
	}
}

void
rpc_client_free(struct rpc_client *cl)
{
	struct rpc_pending *p;

	if (cl == NULL)
		return;
	pthread_mutex_lock(&cl->mu);
	for (p = cl->inflight; p != NULL; p = p->next) {
		p->cancelled = 1;
		if (p->call != NULL)
			grpc_call_cancel(p->call, NULL);
	}
	pthread_mutex_unlock(&cl->mu);
	/*
	 * The cancelled batches still complete on the queue; the thread
	 * finishes them (onto the done queue) before it sees the shutdown.
	 */
	grpc_channel_destroy(cl->ch);
	grpc_completion_queue_shutdown(cl->cq);
	pthread_join(cl->thread, NULL);
	grpc_completion_queue_destroy(cl->cq);

	pending_free_list(cl->done_head);
	pending_free_list(cl->dispatch);
	if (cl->alive != NULL)
		*cl->alive = 0;
	if (cl->ev != NULL)
		event_free(cl->ev);
	if (cl->efd >= 0)
		close(cl->efd);
	pthread_cond_destroy(&cl->cv);
	pthread_mutex_destroy(&cl->mu);
	free(cl);
	grpc_shutdown();
}

/*
 * Unary gRPC over a unix socket, from plain C, on the gRPC C core.
 *
 * Plugins are child processes serving gRPC on a private unix socket (the
 * go-plugin model); the manager is the client.  This module is the whole
 * transport: it moves opaque request and response bytes for a method path
 * such as "/flotilla.fleeting.v1.InstanceGroup/Init" and reports a gRPC
 * status.  Packing and unpacking messages (protobuf-c, the generated
 * proto/NAME.pb-c.h) and the meaning of each method are the caller's.  Only
 * unary calls exist; streaming methods are not supported.
 *
 * Transport: plain HTTP/2 on the socket, no TLS (the socket lives in a
 * private directory, as go-plugin does without AutoMTLS).  The address is
 * passed as a file system path; the module builds "unix:PATH" itself.  The
 * path must fit a sockaddr_un (at most 107 bytes).
 *
 * Threads.  The gRPC C core makes progress only while some thread waits on
 * a completion queue, so both sides own threads that do nothing else:
 *
 *  - server: a small pool (rpc_server_set_threads, default 4) all driving
 *    the server's queue.  A handler runs on the pool thread that received
 *    the request and may block (cloud HTTP calls); up to pool-size calls
 *    are handled concurrently, further calls wait in gRPC until a thread is
 *    free (or until their deadline passes).
 *  - client: one thread driving the client's queue.  It never runs caller
 *    code.  Blocking calls (rpc_call) wake the calling thread through a
 *    condition variable.  Asynchronous calls (rpc_call_async) are handed to
 *    the libevent loop through ONE channel: the finished call is put on a
 *    mutex-protected queue and an eventfd is written; an event on the
 *    client's event_base, watching that eventfd, runs the callbacks on the
 *    loop thread.  The gRPC threads never touch libevent or caller state.
 *
 * Library lifetime.  Every rpc_server_new/rpc_client_new calls grpc_init()
 * and the matching rpc_server_free/rpc_client_free calls grpc_shutdown()
 * (gRPC counts the references; the last grpc_shutdown tears the core down
 * synchronously on our threads).  Callers never call grpc_init themselves.
 *
 * Errors are returned, never printed: functions return 0 or a negative
 * FL_ERR_* code; constructors fill a caller buffer with a message.  gRPC's
 * own diagnostics go to stderr unless rpc_set_log_handler() routes them.
 */
#ifndef FL_RPC_H
#define FL_RPC_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct sbuf;

/* gRPC status codes (same numbers as the wire and grpc/status.h). */
enum rpc_code {
	RPC_OK = 0,
	RPC_CANCELLED = 1,
	RPC_UNKNOWN = 2,
	RPC_INVALID_ARGUMENT = 3,
	RPC_DEADLINE_EXCEEDED = 4,
	RPC_NOT_FOUND = 5,
	RPC_ALREADY_EXISTS = 6,
	RPC_PERMISSION_DENIED = 7,
	RPC_RESOURCE_EXHAUSTED = 8,
	RPC_FAILED_PRECONDITION = 9,
	RPC_ABORTED = 10,
	RPC_OUT_OF_RANGE = 11,
	RPC_UNIMPLEMENTED = 12,
	RPC_INTERNAL = 13,
	RPC_UNAVAILABLE = 14,
	RPC_DATA_LOSS = 15,
	RPC_UNAUTHENTICATED = 16
};

/* Longest status message kept (longer ones are truncated), with its NUL. */
#define RPC_MSG_MAX 1024

/* Default and ceiling for max_msg_bytes. */
#define RPC_DEFAULT_MAX_MSG (4u * 1024 * 1024)
#define RPC_MAX_MSG_LIMIT (64u * 1024 * 1024)

/*
 * A call's outcome: a gRPC code and its message ("" for none).  A plain
 * value; nothing to free.
 */
struct rpc_status {
	int code;
	char message[RPC_MSG_MAX];
};

/* "OK", "UNAVAILABLE", ...; "?" for a number outside 0..16. */
const char *rpc_code_name(int code);

/*
 * Set st to code and a printf-style message (truncated to RPC_MSG_MAX - 1)
 * and return code, so a handler can `return rpc_status_set(st, ...);`.
 * fmt may be NULL for an empty message.
 */
int rpc_status_set(struct rpc_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The FL_ERR_* value rpc_call returns for a gRPC code: 0 for OK,
 * FL_ERR_TIMEOUT for DEADLINE_EXCEEDED, FL_ERR_CLOSED for UNAVAILABLE and
 * CANCELLED, FL_ERR_TOOBIG for RESOURCE_EXHAUSTED, FL_ERR_INVAL for
 * INVALID_ARGUMENT, FL_ERR_NOTFOUND for NOT_FOUND and UNIMPLEMENTED,
 * FL_ERR_EXISTS for ALREADY_EXISTS, FL_ERR_PROTO for anything else (the
 * peer reported a failure).  Lossy: callers that care read st->code.
 */
int rpc_code_to_err(int code);

/*
 * Route gRPC's internal diagnostics (gpr_log: by default gRPC prints them
 * on stderr, those at or above $GRPC_VERBOSITY, default ERROR) to fn, with
 * level 0 debug, 1 info, 2 error, and the message text.  fn may run on any
 * thread, concurrently, and must not call into this module.  After a call
 * with NULL they are dropped (gRPC's printer cannot be restored).
 * Process-wide; call once at start-up, before creating servers or clients.
 */
typedef void (*rpc_log_fn)(int level, const char *msg);
void rpc_set_log_handler(rpc_log_fn fn);

/* ---------------------------------------------------------------- server */

/*
 * A method handler.  req/reqlen is the request message (not NUL-terminated,
 * valid during the call).  On success append the response message to resp
 * (an initialised, empty sbuf owned by the server) and return RPC_OK.  On
 * failure return a non-zero gRPC code, usually through rpc_status_set(st,
 * code, "message"); resp is then ignored.  A negative FL_ERR_* return is
 * answered as UNKNOWN with st's message (or err_str() when it is empty); any
 * other value outside 0..16 as INTERNAL.
 *
 * Runs on a server pool thread, possibly concurrently with other handlers
 * (also of the same method): arg must be safe for that.  May block, but
 * every handler must return eventually: shutdown waits for them.  Must not
 * call rpc_server_shutdown or rpc_server_free (a Shutdown method should
 * signal another thread to do it).  A handler learns the caller's
 * deadline with rpc_handler_remaining_ms(); it is not told that the call
 * was cancelled, and its answer to a cancelled call is dropped.
 */
typedef int (*rpc_handler_fn)(void *arg, const uint8_t *req, size_t reqlen,
    struct sbuf *resp, struct rpc_status *st);

/*
 * From inside a handler: milliseconds left before the caller's deadline
 * (0 once past it), or -1 when the call has none or the thread is not
 * running a handler.
 */
int64_t rpc_handler_remaining_ms(void);

/*
 * Create a server bound to unix_path (created by bind: it must not exist,
 * except as a stale socket, which gRPC replaces).  Requests larger than
 * max_msg_bytes (0 = RPC_DEFAULT_MAX_MSG; at most RPC_MAX_MSG_LIMIT) are
 * answered RESOURCE_EXHAUSTED by gRPC, and a handler's response larger than
 * that is answered RESOURCE_EXHAUSTED instead of being sent.  The socket is
 * listening when this returns (accepted connections are served after
 * rpc_server_start).  The socket gets the process umask's permissions:
 * put it in a private (0700) directory, as go-plugin does.  On failure
 * returns NULL with a message in err.
 */
struct rpc_server *rpc_server_new(const char *unix_path, size_t max_msg_bytes,
    char *err, size_t errlen);

/*
 * Serve method (a full path "/package.Service/Method") with fn(arg, ...).
 * Before rpc_server_start only.  Unknown methods are answered
 * UNIMPLEMENTED.  0, FL_ERR_INVAL (bad path, NULL fn, server started) or
 * FL_ERR_EXISTS (method already added).
 */
int rpc_server_add_method(struct rpc_server *srv, const char *method,
    rpc_handler_fn fn, void *arg);

/* Pool size (1..64, default 4), before rpc_server_start.  0 or FL_ERR_INVAL. */
int rpc_server_set_threads(struct rpc_server *srv, unsigned nthreads);

/*
 * Start the pool threads and begin answering calls.  Once only.  0,
 * FL_ERR_INVAL (started before) or FL_ERR_INTERNAL (thread creation).
 */
int rpc_server_start(struct rpc_server *srv);

/*
 * Stop accepting calls, let the calls in progress finish for up to
 * timeout_ms (0: not at all), then cancel the rest (their clients see
 * CANCELLED or UNAVAILABLE at once), wait for every handler to return and
 * stop the threads.  Returns 0 if everything finished in time, FL_ERR_TIMEOUT
 * if calls had to be cancelled (the server is stopped either way).  Call
 * from one thread that is not a handler; later calls return 0 at once.
 */
int rpc_server_shutdown(struct rpc_server *srv, int timeout_ms);

/*
 * Shut down (with timeout 0) if still running, free everything and remove
 * the socket file.  NULL is a no-op.
 */
void rpc_server_free(struct rpc_server *srv);

/* ---------------------------------------------------------------- client */

/*
 * Create a client for the server at unix_path.  Responses larger than
 * max_msg_bytes (0 = RPC_DEFAULT_MAX_MSG; at most RPC_MAX_MSG_LIMIT) fail
 * with RESOURCE_EXHAUSTED.  base is the loop on which rpc_call_async
 * delivers completions (NULL: only blocking calls); the client adds one
 * persistent read event on it, so call this on the loop's thread (or before
 * the loop runs).  No connection is made until the first call; a server
 * that is not there makes calls fail with UNAVAILABLE.  On failure returns
 * NULL with a message in err.
 */
struct rpc_client *rpc_client_new(const char *unix_path, size_t max_msg_bytes,
    struct event_base *base, char *err, size_t errlen);

/*
 * A blocking unary call; safe from any thread, concurrently.  timeout_ms
 * bounds the whole call (> 0; <= 0 means no deadline).  resp (initialised
 * by the caller) is reset and receives the response bytes when the status
 * is OK.  st receives the status: the server's, or one made locally
 * (DEADLINE_EXCEEDED; UNAVAILABLE when nothing listens on the socket or the
 * connection broke; INVALID_ARGUMENT for a bad method path).  Returns 0
 * for OK, else rpc_code_to_err(st->code).  Blocks the calling thread: not
 * for the loop thread of a daemon (use rpc_call_async).
 */
int rpc_call(struct rpc_client *cl, const char *method, const void *req,
    size_t reqlen, int timeout_ms, struct sbuf *resp, struct rpc_status *st);

/*
 * Completion of an asynchronous call, run on the loop thread of the
 * client's event_base.  st is the status as for rpc_call; resp/resplen the
 * response bytes (empty unless OK), valid only during the callback (the
 * module wipes them afterwards: they may hold secrets).  The callback may
 * start new calls, cancel other pending calls and free the client.
 */
typedef void (*rpc_done_fn)(void *arg, const struct rpc_status *st,
    const uint8_t *resp, size_t resplen);

/* A call in flight; valid until its callback has run or it is cancelled. */
struct rpc_pending;

/*
 * Start a unary call whose completion is delivered by cb(arg, ...) on the
 * loop thread, exactly once, never from inside rpc_call_async itself (local
 * failures such as a bad method path are delivered the same way).  Call on
 * the loop thread.  timeout_ms as for rpc_call.  req is copied.  Returns
 * the pending call, or NULL (nothing started, cb never runs) if cl has no
 * event_base or cb is NULL.
 */
struct rpc_pending *rpc_call_async(struct rpc_client *cl, const char *method,
    const void *req, size_t reqlen, int timeout_ms, rpc_done_fn cb, void *arg);

/*
 * Cancel a pending call: its callback will not run, and p must not be used
 * again.  Call on the loop thread, before p's callback has run.  The
 * server sees the call cancelled.  NULL is a no-op.
 */
void rpc_call_cancel(struct rpc_pending *p);

/*
 * Cancel every pending call (their callbacks do not run), close the
 * connection, stop the thread and free everything.  Call on the loop
 * thread (it may be from a callback), and not while another thread is
 * inside rpc_call on this client.  NULL is a no-op.
 */
void rpc_client_free(struct rpc_client *cl);

#endif

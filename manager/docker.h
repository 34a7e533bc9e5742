/*
 * A Docker Engine API client on the manager's event loop.
 *
 * The engine is reached over whatever the caller provides: a dial
 * function returns a new connected (or connecting) bufferevent whenever
 * the client needs a connection.  For docker-autoscaler it is one end of a
 * bufferevent pair tunnelled over an SSH channel to the instance's
 * /var/run/docker.sock (connector.c); in tests it is a unix socket to a
 * private dockerd (docker_dial_unix).  The client never looks below the
 * bufferevent, except to half-close a hijacked attach stream (see
 * docker_set_transport).
 *
 * HTTP/1.1 (http1.c) with keep-alive: a finished request leaves its
 * connection in an idle pool for the next one; long requests (pull, logs,
 * wait, attach) hold their own connection until they end, so any number
 * run in parallel, each on its own connection.
 *
 * API version: the first request pings the engine (GET /_ping) and uses
 * the lower of its API-Version header and DOCKER_API_MAX ("1.41", Debian
 * 12's docker.io 20.10); every path is then prefixed with /v1.xx.
 * docker_set_api_version() pins a version instead (DOCKER_API_VERSION).
 *
 * Asynchronous throughout: each operation returns a request handle (never
 * NULL) and later calls its callback exactly once, from the event loop,
 * never from inside the call that started it; unless the request is
 * cancelled (docker_cancel) or the client freed (docker_free), in which
 * case the callback is not called at all.  The handle is valid until the
 * callback returns or until docker_cancel.  Calling docker_cancel,
 * docker_free or any other operation from inside a callback is safe.
 *
 * Errors: res->err is 0 or a negative FL_ERR_* code; res->status the HTTP
 * status (0 when no response came); res->msg a text:
 *  - the engine answered >= 400: Docker's {"message": ...} text as is (the
 *    docker CLI prints it after "Error response from daemon: "); err is
 *    FL_ERR_NOTFOUND for 404, FL_ERR_EXISTS for 409, FL_ERR_INVAL for
 *    other 4xx, FL_ERR_IO for 5xx;
 *  - the transport failed: "<METHOD> <path>: <reason>", the reason being
 *    "connection closed" (EOF, as Go's "ssh tunnel: EOF"), "dial: ...",
 *    "timeout after N ms", "malformed response" ...
 *  - an error inside a stream (a pull's {"error": ...}, Docker's
 *    system-error frame): that text, err FL_ERR_IO, status 200.
 * Response bodies are capped (DOCKER_MAX_BODY; JSON lines DOCKER_MAX_LINE;
 * stream frames DOCKERFRAME_DEFAULT_MAX): over the cap is FL_ERR_TOOBIG and
 * the connection is dropped.
 *
 * Timeouts: every request has one deadline covering everything from the
 * call to the callback; by default DOCKER_DEFAULT_TIMEOUT_MS for short
 * requests and none for the long ones (pull, load, logs with follow,
 * attach, wait).  docker_req_set_timeout() changes it for one request,
 * docker_set_timeout() the default.
 *
 * Secrets: an X-Registry-Auth value is never in a message; the client's
 * copies are wiped (the request head is handed to libevent by reference
 * and wiped when libevent releases it).
 *
 * The process must ignore SIGPIPE: libevent writes to sockets with
 * write(2), and an engine that hangs up would otherwise kill the daemon.
 */
#ifndef FL_DOCKER_H
#define FL_DOCKER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct bufferevent;
struct event_base;
struct docker;
struct docker_req;

#define DOCKER_API_MAX "1.41"
#define DOCKER_DEFAULT_TIMEOUT_MS (120 * 1000)
#define DOCKER_MAX_BODY (16u * 1024 * 1024)
#define DOCKER_MAX_LINE (1024u * 1024)
#define DOCKER_MAX_ERROR_BODY (64u * 1024)

/*
 * Make a new connection to the engine: a bufferevent on base that is
 * connected, or connecting and will report its failure as
 * BEV_EVENT_ERROR/EOF to the callbacks the client sets.  NULL on an
 * immediate failure, with a reason in err (no secrets).  The client owns
 * the bufferevent; it hands it back through the close hook (or
 * bufferevent_free when none is set).  A pair end should be created with
 * BEV_OPT_DEFER_CALLBACKS.
 */
typedef struct bufferevent *(*docker_dial_fn)(struct event_base *base,
    void *arg, char *err, size_t errlen);
/* Give a connection back (the client is done with it). */
typedef void (*docker_close_fn)(void *arg, struct bufferevent *bev);
/* Half-close: no more bytes will be written (attach stdin EOF).  0/-1. */
typedef int (*docker_shutdown_fn)(void *arg, struct bufferevent *bev);

struct docker_result {
	int err;		/* 0 or FL_ERR_* */
	int status;		/* HTTP status, 0 if none */
	const char *msg;	/* "" on success */
	json_t *json;		/* parsed JSON body or NULL; borrowed */
	const char *id;		/* create: the new object's "Id" */
	int exit_code;		/* wait: "StatusCode" (signed 32-bit) */
	const char *api_version;/* ping: the version now in use */
};

/* The callback of every operation.  res and what it points to are
 * borrowed: valid during the call only. */
typedef void (*docker_cb)(void *arg, const struct docker_result *res);
/*
 * A piece of container output: stream 1 stdout, 2 stderr (0 stdin).  For
 * attach, one first call with stream DOCKER_ATTACHED (data NULL, len 0)
 * says the stream is hijacked: the time to start the container.
 */
#define DOCKER_ATTACHED (-1)
typedef void (*docker_chunk_cb)(void *arg, int stream, const char *data,
    size_t len);
/* One JSON message of a pull or load progress stream (borrowed). */
typedef void (*docker_progress_cb)(void *arg, json_t *msg);

/* Never NULL.  dial must not be NULL; arg goes to the transport hooks. */
struct docker *docker_new(struct event_base *base, docker_dial_fn dial,
    void *arg);
/*
 * Cancel every request (no callbacks), close every connection, free d.
 * Safe at any time, also from inside one of d's callbacks.  NULL is a
 * no-op.
 */
void docker_free(struct docker *d);

/* Optional hooks (NULL: bufferevent_free; shutdown(2) on the fd). */
void docker_set_transport(struct docker *d, docker_close_fn close,
    docker_shutdown_fn shutdown_write);
/* Pin the API version ("1.41"): no negotiation.  FL_ERR_INVAL if bad. */
int docker_set_api_version(struct docker *d, const char *version);
/* The version in use, or NULL before negotiation. */
const char *docker_api_version(const struct docker *d);
/* Default deadline of short requests (ms; 0: none). */
void docker_set_timeout(struct docker *d, int64_t ms);
/* Idle connections kept for reuse (default 4; 0: none). */
void docker_set_max_idle(struct docker *d, unsigned n);

/* Deadline of one request from now (ms; 0: none). */
void docker_req_set_timeout(struct docker_req *r, int64_t ms);
/* Stop a request: its callback will not be called; r becomes invalid. */
void docker_cancel(struct docker_req *r);

/*
 * A unix-socket dialer: arg is the socket's path (a const char * that
 * outlives the client).  connect(2) is immediate on a unix socket, so
 * errors ("connect /x/docker.sock: No such file or directory") are
 * synchronous.
 */
struct bufferevent *docker_dial_unix(struct event_base *base, void *arg,
    char *err, size_t errlen);

/* --- Operations.  Names are container or object ids or names. --- */

/* GET /_ping (unversioned); negotiates the version (res->api_version). */
struct docker_req *docker_ping(struct docker *d, docker_cb cb, void *arg);
/* GET /version */
struct docker_req *docker_version(struct docker *d, docker_cb cb, void *arg);
/*
 * Any request: method, path relative to the version prefix ("/info",
 * query included, already escaped), optional JSON body (not stolen).
 * The JSON answer is res->json.
 */
struct docker_req *docker_request(struct docker *d, const char *method,
    const char *path, json_t *body, docker_cb cb, void *arg);

/* GET /images/{name}/json: 404 is FL_ERR_NOTFOUND. */
struct docker_req *docker_image_inspect(struct docker *d, const char *name,
    docker_cb cb, void *arg);
/*
 * POST /images/create?fromImage=&tag=: ref is "name[:tag]" or
 * "name@digest" (no tag: latest).  auth: an X-Registry-Auth value or
 * NULL (copied, wiped after use).  progress (may be NULL) sees each JSON
 * message; the first {"error": ...} in the stream fails the request.
 */
struct docker_req *docker_image_pull(struct docker *d, const char *ref,
    const char *auth, docker_progress_cb progress, docker_cb cb, void *arg);
/* The same for platform ("os[/arch[/variant]]"; NULL or "": the engine's):
 * &platform= on the request. */
struct docker_req *docker_image_pull_platform(struct docker *d,
    const char *ref, const char *platform, const char *auth,
    docker_progress_cb progress, docker_cb cb, void *arg);
/*
 * POST /images/load?quiet=1 with the tar file at path as the body,
 * streamed from disk.  The file is opened at once; a failure to open is
 * reported through cb.
 */
struct docker_req *docker_image_load(struct docker *d, const char *path,
    docker_progress_cb progress, docker_cb cb, void *arg);

/* POST /containers/create?name= with body (not stolen); res->id. */
struct docker_req *docker_container_create(struct docker *d,
    const char *name, json_t *body, docker_cb cb, void *arg);
/* The same with &platform= (NULL or "": none). */
struct docker_req *docker_container_create_platform(struct docker *d,
    const char *name, const char *platform, json_t *body, docker_cb cb,
    void *arg);
/* POST /containers/{id}/start (304 "already started" is success). */
struct docker_req *docker_container_start(struct docker *d, const char *id,
    docker_cb cb, void *arg);

/* Flags for logs and attach. */
#define DOCKER_STREAM_FOLLOW	0x01	/* logs: follow */
#define DOCKER_STREAM_TIMESTAMPS 0x02	/* logs: timestamps=1 */
#define DOCKER_STREAM_TTY	0x04	/* the container has a TTY: raw */
#define DOCKER_STREAM_STDIN	0x08	/* attach: stdin=1 */

/*
 * GET /containers/{id}/logs?stdout=1&stderr=1[&follow=1][&timestamps=1]:
 * output through chunk (stdout and stderr apart, unless TTY); cb at the
 * end of the stream.
 */
struct docker_req *docker_container_logs(struct docker *d, const char *id,
    int flags, docker_chunk_cb chunk, docker_cb cb, void *arg);
/*
 * POST /containers/{id}/attach?stream=1&stdout=1&stderr=1[&stdin=1],
 * hijacked (Upgrade: tcp).  chunk gets DOCKER_ATTACHED once the stream is
 * established, then the output; cb when the stream ends (the container
 * exited).  Attach before start so nothing is lost; with
 * DOCKER_STREAM_STDIN write with docker_stream_write and end with
 * docker_stream_close_stdin.
 */
struct docker_req *docker_container_attach(struct docker *d, const char *id,
    int flags, docker_chunk_cb chunk, docker_cb cb, void *arg);
/*
 * Queue bytes for the container's stdin (attach with DOCKER_STREAM_STDIN).
 * Before the upgrade they wait in the client.  0, or FL_ERR_INVAL.
 */
int docker_stream_write(struct docker_req *r, const void *data, size_t len);
/*
 * Half-close stdin once the queued bytes are written.  FL_ERR_INVAL when
 * the transport cannot half-close (no shutdown hook and no fd).
 */
int docker_stream_close_stdin(struct docker_req *r);

/*
 * POST /containers/{id}/wait?condition= ("not-running", "next-exit",
 * "removed"; NULL: not-running); res->exit_code.  A non-empty "Error"
 * makes err FL_ERR_IO with its message (exit_code still set).
 */
struct docker_req *docker_container_wait(struct docker *d, const char *id,
    const char *condition, docker_cb cb, void *arg);
/* POST /containers/{id}/kill?signal= (NULL: SIGKILL). */
struct docker_req *docker_container_kill(struct docker *d, const char *id,
    const char *signal, docker_cb cb, void *arg);
/* POST /containers/{id}/stop[?t=]; timeout_s < 0: the daemon default. */
struct docker_req *docker_container_stop(struct docker *d, const char *id,
    int timeout_s, docker_cb cb, void *arg);
/* DELETE /containers/{id}?force=&v= */
struct docker_req *docker_container_remove(struct docker *d, const char *id,
    int force, int volumes, docker_cb cb, void *arg);
/* GET /containers/{id}/json */
struct docker_req *docker_container_inspect(struct docker *d, const char *id,
    docker_cb cb, void *arg);
/*
 * PUT /containers/{id}/archive?path= with a tar archive from memory
 * (copied) extracted under path.
 */
struct docker_req *docker_container_put_archive(struct docker *d,
    const char *id, const char *path, const void *tar, size_t len,
    docker_cb cb, void *arg);
/* GET /containers/{id}/archive?path=: the tar through chunk (stream 1). */
struct docker_req *docker_container_get_archive(struct docker *d,
    const char *id, const char *path, docker_chunk_cb chunk, docker_cb cb,
    void *arg);

/*
 * Lists filtered by labels ("key" or "key=value", all must match; n 0:
 * everything): GET /containers/json?all=1, /volumes, /networks.  The
 * answer is res->json (containers and networks: an array; volumes: an
 * object with "Volumes").
 */
struct docker_req *docker_container_list(struct docker *d,
    const char *const *labels, size_t n, docker_cb cb, void *arg);
struct docker_req *docker_volume_list(struct docker *d,
    const char *const *labels, size_t n, docker_cb cb, void *arg);
struct docker_req *docker_network_list(struct docker *d,
    const char *const *labels, size_t n, docker_cb cb, void *arg);

/* POST /volumes/create with body {Name, Driver, DriverOpts, Labels}. */
struct docker_req *docker_volume_create(struct docker *d, json_t *body,
    docker_cb cb, void *arg);
/* DELETE /volumes/{name}[?force=1] */
struct docker_req *docker_volume_remove(struct docker *d, const char *name,
    int force, docker_cb cb, void *arg);
/* POST /networks/create with body {Name, Driver, Labels, ...}; res->id. */
struct docker_req *docker_network_create(struct docker *d, json_t *body,
    docker_cb cb, void *arg);
/* DELETE /networks/{id} */
struct docker_req *docker_network_remove(struct docker *d, const char *id,
    docker_cb cb, void *arg);
/* POST /networks/{id}/connect {"Container": container} */
struct docker_req *docker_network_connect(struct docker *d, const char *id,
    const char *container, docker_cb cb, void *arg);
/* POST /networks/{id}/disconnect {"Container": container, "Force": force} */
struct docker_req *docker_network_disconnect(struct docker *d,
    const char *id, const char *container, int force, docker_cb cb,
    void *arg);

/*
 * Percent-encode s for a query value (unreserved characters kept) or, with
 * path set, for a path (also '/', ':' and '@' kept).  Caller frees.
 */
char *docker_escape(const char *s, int path);
/* The filters query value for labels: {"label":{"k=v":true,...}}. */
char *docker_label_filters(const char *const *labels, size_t n);

#endif

/*
 * The SSH connector: how the manager reaches an instance.  One SSH
 * connection per instance (struct conn), shared by every job on it; over
 * it, byte streams to the instance's Docker socket (direct-streamlocal
 * channels, or an exec channel running "docker system dial-stdio") and
 * commands with collected output (instance_ready_command, heartbeats).
 *
 * Everything runs on the caller's libevent loop, libssh2 non-blocking: no
 * call here blocks, and no callback is ever made from inside a call to
 * this module; callbacks come from the loop.
 *
 * Security: the host key is trusted on first use and pinned for the
 * instance's life (conn_host_key_fingerprint() lets the caller persist the
 * pin, conn_params.pinned_fingerprint restores it); a different key for the
 * same instance is a hard error, never retried.  Keys and passwords are
 * copied, never logged, and wiped (explicit_bzero) when freed or replaced.
 */
#ifndef FL_CONNECTOR_H
#define FL_CONNECTOR_H

#include <stddef.h>
#include <stdint.h>

struct bufferevent;
struct event_base;
struct evdns_base;

struct conn;
struct conn_req;

#define CONN_NS_PER_SEC			INT64_C(1000000000)
#define CONN_DEFAULT_PORT		22
/* The whole connect (every attempt and backoff): fleeting's default. */
#define CONN_DEFAULT_TIMEOUT_NS		(600 * CONN_NS_PER_SEC)
/* One attempt: TCP connect, SSH handshake and authentication. */
#define CONN_DEFAULT_ATTEMPT_TIMEOUT_NS	(30 * CONN_NS_PER_SEC)
#define CONN_DEFAULT_KEEPALIVE_NS	(30 * CONN_NS_PER_SEC)
/* Attempts in all ("after retrying 30 times", as GitLab Runner says). */
#define CONN_DEFAULT_MAX_ATTEMPTS	30
/* Authentication failures before giving up (cloud-init may still be
 * installing the key when sshd first answers). */
#define CONN_DEFAULT_MAX_AUTH_FAILURES	5
/* Backoff between attempts: 1 s, doubling, at most 5 s. */
#define CONN_BACKOFF_FIRST_NS		(1 * CONN_NS_PER_SEC)
#define CONN_BACKOFF_MAX_NS		(5 * CONN_NS_PER_SEC)
/* conn_run keeps at most this much of stdout and of stderr. */
#define CONN_RUN_OUTPUT_MAX		(1024 * 1024)
/* An exec stream keeps at most this much of its stderr. */
#define CONN_STREAM_STDERR_MAX		(64 * 1024)
/* A stream stops reading its channel while this much is waiting for the
 * caller to read it (so the SSH window stops the sender). */
#define CONN_STREAM_HIGH_WATER		(1024 * 1024)
/* Channel flow control asked of the server. */
#define CONN_CHANNEL_WINDOW		(4 * 1024 * 1024)
#define CONN_CHANNEL_PACKET		(32 * 1024)
#define CONN_DOCKER_SOCKET		"/var/run/docker.sock"
#define CONN_DIAL_STDIO_COMMAND		"docker system dial-stdio"
/* "SHA256:" and 43 characters of unpadded base64, as ssh-keygen -l. */
#define CONN_FINGERPRINT_MAX		64
/* Longest socket path or command accepted. */
#define CONN_TARGET_MAX			4096

enum conn_state {
	CONN_CONNECTING,	/* attempts in progress (or backing off) */
	CONN_UP,		/* authenticated; channels can be opened */
	CONN_DOWN		/* failed or lost; conn_reconnect() or free */
};

/* Why the last attempt, or the connection, failed. */
enum conn_failure {
	CONN_FAIL_NONE = 0,
	CONN_FAIL_NET,		/* refused, reset, unreachable, timed out,
				 * handshake broken: retried */
	CONN_FAIL_AUTH,		/* server refused the credentials: retried
				 * max_auth_failures times */
	CONN_FAIL_HOSTKEY,	/* host key differs from the pinned one */
	CONN_FAIL_FATAL		/* bad address or key, expired credentials,
				 * deadline: not retried */
};

struct conn_credentials {
	const char *username;		/* required */
	/* Private key, PEM or OpenSSH format, unencrypted; NULL: none.
	 * ed25519 and ECDSA keys work against current OpenSSH; RSA keys do
	 * not (libssh2 1.10 signs with ssh-rsa/SHA-1 only). */
	const char *key;
	size_t key_len;
	const char *password;		/* NULL: none */
	/* Wall-clock time (Unix ns) after which these may no longer work
	 * (fleeting's ConnectInfo.Expires); 0: never.  Attempts are not
	 * started with expired credentials: the connect fails with
	 * FL_ERR_TIMEOUT so the caller refreshes them. */
	int64_t expires_ns;
};

/*
 * Callback for state changes: CONN_UP (err 0), CONN_DOWN (err < 0, msg
 * says why; conn_failure() classifies it), and CONN_CONNECTING with err < 0
 * after each failed attempt that will be retried (msg says which attempt
 * failed how; for the caller's log).  The callback may call any function
 * here, conn_free() included.
 */
typedef void (*conn_state_cb)(void *arg, enum conn_state state, int err,
    const char *msg);

struct conn_params {
	const char *instance_id;	/* required: names the pinned key */
	/* "host", "host:port", "[v6addr]", "[v6addr]:port" or a bare IPv6
	 * address.  A port in the address wins over .port. */
	const char *internal_addr;
	const char *external_addr;
	int use_external_addr;		/* see conn_pick_addr() */
	int port;			/* 0: 22 */
	struct conn_credentials cred;
	/* The pin from an earlier connection ("SHA256:..."); NULL or "":
	 * trust the first key seen. */
	const char *pinned_fingerprint;
	int64_t keepalive_ns;		/* 0: default; < 0: none */
	int64_t timeout_ns;		/* 0: default */
	int64_t attempt_timeout_ns;	/* 0: default */
	int max_attempts;		/* 0: default */
	int max_auth_failures;		/* 0: default */
	/* For a host name that is not a numeric address; NULL: the conn
	 * makes its own resolver (from /etc/resolv.conf, /etc/hosts) when
	 * it needs one.  Only the first address found is tried. */
	struct evdns_base *dns;
};

/*
 * Create the connection and start connecting at once (the first attempt
 * starts from the loop).  The params are copied.  Returns NULL (and *err set, when err is not NULL) only for
 * invalid params: FL_ERR_INVAL (no instance id, no username, no
 * credentials, bad pinned fingerprint) or FL_ERR_PARSE (unusable address).
 * cb may be NULL.
 */
struct conn *conn_new(struct event_base *base, const struct conn_params *p,
    conn_state_cb cb, void *arg, int *err);

/*
 * Free at any moment, from anywhere (a callback of this conn included).
 * No callback of the conn or of its requests is made afterwards.  Streams
 * the caller still holds get EOF (their own bufferevent callbacks may see
 * it after this returns; the caller still frees those bufferevents).
 * NULL is a no-op.
 */
void conn_free(struct conn *c);

/* Replace the credentials used by later attempts and reconnects (the
 * current connection, if up, is kept).  Old secrets are wiped. */
int conn_set_credentials(struct conn *c, const struct conn_credentials *cr);

/* Start connecting again after CONN_DOWN, with fresh attempt counts.
 * FL_ERR_INVAL unless the state is CONN_DOWN. */
int conn_reconnect(struct conn *c);

enum conn_state conn_state(const struct conn *c);
enum conn_failure conn_failure(const struct conn *c);
/* Why the conn is down, or why the last attempt failed; "" if neither. */
const char *conn_error(const struct conn *c);
/* The pinned host key's fingerprint, "SHA256:..."; NULL until known. */
const char *conn_host_key_fingerprint(const struct conn *c);
/* "host:port" being dialled. */
const char *conn_address(const struct conn *c);

struct conn_stats {
	uint64_t attempts;		/* in the current connect */
	uint64_t bytes_in;		/* from the server, SSH framing included */
	uint64_t bytes_out;
	uint64_t channels_opened;	/* over the conn's life */
	uint64_t channels_failed;
	uint64_t channels_active;
};
void conn_get_stats(const struct conn *c, struct conn_stats *st);

/*
 * Requests.  Each returns a handle, valid until its final callback has
 * returned or until conn_req_cancel() or conn_free(); NULL only for
 * invalid arguments (empty or over CONN_TARGET_MAX, or c being freed).
 * Requests made while connecting wait for CONN_UP; made while down, or
 * pending when the conn goes down, they fail with FL_ERR_CLOSED.
 * Callbacks are never made from inside these calls.
 */

/*
 * A stream's result: err 0 and bev, or err < 0, errmsg and bev NULL (the
 * channel could not be opened: FL_ERR_IO with libssh2's text for the
 * server's reason code, e.g. "Channel open failure (connect failed)" for
 * a missing socket; or FL_ERR_CLOSED).  For conn_open_stream() this is
 * the final callback.
 *
 * bev belongs to the caller, already enabled for writing; the caller sets
 * its callbacks, enables EV_READ and frees it.  Bytes written to it go to
 * the channel; the channel's bytes arrive in its input.  The remote end
 * closing, or the connection dying, shows as BEV_EVENT_EOF.  Freeing bev
 * closes the channel (what was written is sent first, then EOF, then
 * close); bufferevent_flush(bev, EV_WRITE, BEV_FINISHED) half-closes it
 * (EOF to the remote, reading goes on).  bev is a pass-through filter over
 * one end of a bufferevent pair: the filter is how the connector learns
 * that the caller freed it.
 */
typedef void (*conn_stream_cb)(void *arg, int err, const char *errmsg,
    struct bufferevent *bev);

struct conn_run_result {
	int err;		/* 0: the command ran (see exit_status) */
	const char *errmsg;	/* NULL when err is 0 */
	/* The command's status, or -1 (killed by a signal: exit_signal
	 * names it, without "SIG"; or unknown). */
	int exit_status;
	const char *exit_signal;
	const char *out;	/* NUL-terminated; NULL for exec streams */
	size_t out_len;
	int out_truncated;	/* more than CONN_RUN_OUTPUT_MAX came */
	const char *err_out;	/* stderr, NUL-terminated */
	size_t err_len;
	int err_truncated;
};
/* The pointers in r are valid during the callback only. */
typedef void (*conn_run_cb)(void *arg, const struct conn_run_result *r);

/*
 * A direct-streamlocal@openssh.com channel to the unix socket at
 * socket_path on the instance (sshd's AllowStreamLocalForwarding).
 */
struct conn_req *conn_open_stream(struct conn *c, const char *socket_path,
    conn_stream_cb cb, void *arg);

/*
 * An exec channel running command (through the user's shell) whose stdin
 * and stdout are the stream: the fallback to reach Docker with
 * "docker system dial-stdio".  cb as for conn_open_stream(); then, if
 * exit_cb is not NULL, exit_cb once the command's channel is closed, with
 * its status and stderr (at most CONN_STREAM_STDERR_MAX), out NULL.  The
 * status is -1 when the caller closed the stream first, or when the
 * command, its output closed, had not exited 10 s later.  exit_cb is the
 * final callback when given.  The remote closing its output shows as EOF
 * on the stream; what the caller writes after that is dropped.
 */
struct conn_req *conn_open_exec_stream(struct conn *c, const char *command,
    conn_stream_cb cb, conn_run_cb exit_cb, void *arg);

/*
 * Run command (through the user's shell), feed it stdin_data (copied; may
 * be NULL) then EOF, collect stdout and stderr (CONN_RUN_OUTPUT_MAX each,
 * the rest counted as truncated) and the exit status.  timeout_ns <= 0:
 * none (it counts from this call, waiting for the connection included).
 * On timeout the callback comes at once with FL_ERR_TIMEOUT and the output
 * so far; the channel is closed behind it.  The command itself is not
 * signalled (libssh2 1.10 cannot): sshd ends the channel when it exits,
 * and a channel still open 20 s later is left to libssh2 until the
 * connection goes.
 */
struct conn_req *conn_run(struct conn *c, const char *command,
    const void *stdin_data, size_t stdin_len, int64_t timeout_ns,
    conn_run_cb cb, void *arg);

/*
 * No more callbacks for this request; the handle is invalid afterwards.
 * A pending open or a run is abandoned (its channel closed); an open
 * stream the caller holds is not affected (free the bufferevent).
 */
void conn_req_cancel(struct conn_req *r);

/*
 * Pure helpers, exported for the tests and the caller.
 */

/*
 * Split "host", "host:port", "[v6]", "[v6]:port" or a bare IPv6 address
 * into *host (malloc'd, brackets removed) and *port (default_port when the
 * address has none).  FL_ERR_PARSE for "", "host:", "[::1", a port that is
 * not 1..65535, a host with spaces or control characters.
 */
int conn_parse_addr(const char *addr, int default_port, char **host,
    int *port);

/*
 * The address to dial: external when use_external and external is not
 * empty, else internal; when the chosen one is empty, the other (a plugin
 * that returns one address has it used regardless).  NULL if both empty.
 */
const char *conn_pick_addr(const char *internal, const char *external,
    int use_external);

/*
 * The direct-streamlocal@openssh.com channel-open payload (OpenSSH
 * PROTOCOL 2.4): string socket path, string reserved (""), uint32
 * reserved (0).  Writes it to buf (cap bytes) and returns its length, or
 * returns the length needed (buf untouched) when cap is too small.
 */
size_t conn_streamlocal_msg(const char *socket_path, unsigned char *buf,
    size_t cap);

/* The pause before attempt n + 1 after attempt n (1-based) failed. */
int64_t conn_backoff_ns(int n);

/*
 * Whether another attempt follows one that failed with kind, after
 * attempts attempts in all and auth_failures of them authentication
 * failures.
 */
int conn_should_retry(enum conn_failure kind, int attempts,
    int auth_failures, int max_attempts, int max_auth_failures);

/* "SHA256:" and the unpadded base64 of a 32-byte hash, as OpenSSH
 * prints it; out has CONN_FINGERPRINT_MAX bytes. */
void conn_fingerprint_format(const unsigned char hash[32],
    char out[CONN_FINGERPRINT_MAX]);

/*
 * The Docker socket path on the instance for [runners.docker] host:
 * NULL or "" gives CONN_DOCKER_SOCKET; "unix:///p" gives "/p".
 * FL_ERR_INVAL for any other scheme (tcp://, npipe://) or an empty path.
 * *path is malloc'd.
 */
int conn_docker_socket_path(const char *docker_host, char **path);

/*
 * The dial-stdio command line for [runners.docker] host: NULL or "" gives
 * CONN_DIAL_STDIO_COMMAND, else "docker -H '<host>' system dial-stdio"
 * with the host quoted for a POSIX shell.  malloc'd.
 */
char *conn_dial_stdio_command(const char *docker_host);

/*
 * Read a private key file for conn_credentials.key (the key_path of the
 * config): at most 64 KiB.  *key is malloc'd (NUL-terminated); wipe it
 * with freezero().  FL_ERR_NOTFOUND, FL_ERR_IO, FL_ERR_TOOBIG.
 */
int conn_read_key_file(const char *path, char **key, size_t *len);

#endif

/*
 * The SSH connector (see connector.h): one libssh2 session per instance on
 * the manager's libevent loop, channels multiplexed over it, each exposed
 * to the caller as a bufferevent or as a command's collected output.
 *
 * Why the session's I/O goes through buffers and not the socket: libssh2
 * 1.10 keeps a single partly-sent packet per session, and until it is
 * flushed it refuses every other packet with LIBSSH2_ERROR_BAD_USE
 * (transport.c, send_existing()); keepalive_send() even drops its own
 * EAGAIN.  With many channels on one non-blocking session that turns a
 * full socket buffer into spurious channel errors.  So libssh2 gets send
 * and recv callbacks on the evbuffers of a socket bufferevent: a send
 * always completes (the bytes join the output buffer, which the
 * bufferevent writes when the socket is writable), and a recv takes what
 * the input buffer holds or says EAGAIN.  libssh2's block directions are
 * then always "inbound": the loop waits for the bufferevent's read
 * callback and nothing spins.  Output is bounded by this file instead:
 * channel writes stop while the socket's output buffer is above
 * SOCK_OUT_HIGH and resume from the write callback.
 *
 * A stream's bytes from the caller wait in our end of its bufferevent
 * pair, read high-water mark CONN_STREAM_HIGH_WATER.  libevent 2.1 calls
 * a read callback again at every loop turn while it leaves the input at
 * that mark, so when nothing can leave it (the channel's window closed,
 * or the socket's output full) our end stops reading until the channel
 * moves again (stream_throttle()): a stalled stream costs no CPU, and
 * what the caller writes meanwhile waits in its own pair end.
 *
 * Other libssh2 1.10 limits this file works around or inherits (checked
 * in its source at tag libssh2-1.10.0):
 *   - one channel open at a time per session (session->open_state): opens
 *     are queued;
 *   - replies to our keepalives would be queued on the session forever:
 *     keepalives ask for none, and TCP_USER_TIMEOUT notices a dead peer;
 *   - XXX each server-initiated rekey with curve25519/ECDH leaks the old
 *     host key blob (kex.c), some 51 bytes per rekey (OpenSSH rekeys after
 *     1-4 GB);
 *   - XXX RSA user keys are signed with ssh-rsa/SHA-1 only, which OpenSSH
 *     8.8+ refuses: use ed25519 or ECDSA keys;
 *   - XXX no channel signals: a timed-out command is not killed;
 *   - the channel-open failure text is libssh2's for the reason code (the
 *     server's own description is dropped);
 *   - EVP_Cipher is called once per 16-byte block, which bounds
 *     throughput well below OpenSSH's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <libssh2.h>

#include "connector.h"
#include "err.h"
#include "xmalloc.h"

#define STREAMLOCAL		"direct-streamlocal@openssh.com"
/* The socket's output buffer: stop channel writes above, resume below. */
#define SOCK_OUT_HIGH		(1024 * 1024)
#define SOCK_OUT_LOW		(256 * 1024)
/* Stop reading the socket when this much is waiting for libssh2. */
#define SOCK_IN_HIGH		(8 * 1024 * 1024)
#define SOCK_IO_CHUNK		(256 * 1024)
/* Bytes moved in one pump before yielding to the loop. */
#define PUMP_BUDGET		(4 * 1024 * 1024)
#define READ_CHUNK		(64 * 1024)
#define KEY_FILE_MAX		(64 * 1024)
/* Bounds on closing a channel (see begin_close()). */
#define CLOSE_WAIT_NS		(10 * CONN_NS_PER_SEC)

/*
 * The connection's state machine.
 *
 *   PH_IDLE ──conn_new/conn_reconnect──▶ PH_BACKOFF (0 s) ──▶ PH_TCP
 *   PH_TCP        bufferevent connect (DNS first for a name); TCP_NODELAY,
 *                 then a libssh2 session with our send/recv callbacks
 *                 ──connected──▶ PH_HANDSHAKE
 *   PH_HANDSHAKE  libssh2_session_handshake() until it stops saying
 *                 EAGAIN; then the host key's SHA256 fingerprint is
 *                 pinned (first use) or compared with the pin
 *                 ──▶ PH_AUTH
 *   PH_AUTH       public key from memory, then password, each until it
 *                 stops saying EAGAIN ──▶ PH_UP (state callback CONN_UP)
 *   PH_UP         channels (below); keepalive timer.  Socket EOF or error,
 *                 or a session-level libssh2 error ──▶ PH_IDLE, every
 *                 request failed or its stream given EOF, CONN_DOWN.
 *
 * A failed attempt (any phase before PH_UP, or its attempt timer firing)
 * tears the socket and session down and, if conn_should_retry() allows,
 * goes to PH_BACKOFF for conn_backoff_ns() and then PH_TCP again
 * (CONN_CONNECTING with the error is reported); otherwise PH_IDLE and
 * CONN_DOWN.  A deadline timer bounds the whole connect.  Every libssh2
 * call is made from pump(), which runs from the loop when the socket has
 * input, its output drained, a caller's bufferevent moved data, a
 * request arrived or a timer fired; it redoes every call that said EAGAIN
 * with the same arguments, as libssh2 requires.
 *
 * A request's channel:
 *
 *   RS_QUEUED    waits for PH_UP and for its turn: libssh2 keeps one
 *                channel-open in progress per session, so opens go one
 *                at a time, in order
 *   RS_OPENING   libssh2_channel_open_ex() (direct-streamlocal with the
 *                socket path, or "session"); failure ends the request
 *   RS_STARTING  libssh2_channel_process_startup("exec") (session only)
 *   RS_OPEN      bytes flow both ways (pump_data); a stream only once
 *                the caller has its bufferevent (an EOF before would
 *                reach no callback)
 *   RS_CLOSING   our EOF, then (session channels, after the remote EOF)
 *                the remote close that follows the exit status, then
 *                libssh2_channel_close() and _free(); sshd answers a
 *                close only when the command has exited, so each wait is
 *                bounded (begin_close()) and then the channel is left to
 *                libssh2 until the session goes
 *   RS_DONE      the final callback is queued; then the request is freed
 *
 * Callbacks to the caller are queued as notes and delivered when the loop
 * callback that produced them is done with the conn (conn_leave()), so
 * the caller may call anything, conn_free() included, from a callback.
 */
enum phase {
	PH_IDLE,
	PH_BACKOFF,
	PH_TCP,
	PH_HANDSHAKE,
	PH_AUTH,
	PH_UP
};

enum req_kind { RQ_STREAM, RQ_EXEC_STREAM, RQ_RUN };

enum req_step {
	RS_QUEUED,
	RS_OPENING,
	RS_STARTING,
	RS_OPEN,
	RS_CLOSING,
	RS_DONE
};

enum auth_step { AUTH_KEY, AUTH_PASSWORD };

/*
 * Shared between a stream and the filter bufferevent the caller holds:
 * the filter's free_context callback frees it, and tells the request (if
 * it still exists) that the caller closed the stream.
 */
struct watch {
	struct conn_req *req;
};

enum note_kind { NOTE_STATE, NOTE_OPENED, NOTE_FINAL };

struct note {
	TAILQ_ENTRY(note) link;
	enum note_kind kind;
	struct conn_req *req;		/* NOTE_OPENED, NOTE_FINAL */
	enum conn_state state;		/* NOTE_STATE */
	int err;
	char *msg;
};

struct conn_req {
	TAILQ_ENTRY(conn_req) link;	/* in c->reqs until RS_DONE */
	struct conn *c;
	enum req_kind kind;
	enum req_step step;
	char *target;			/* socket path or command */
	unsigned char *openmsg;		/* streamlocal payload */
	size_t openmsg_len;
	LIBSSH2_CHANNEL *ch;
	int cancelled;
	int listed;			/* in c->reqs */
	int notes;			/* notes queued for it */

	conn_stream_cb stream_cb;
	conn_run_cb run_cb;		/* run result, or exec stream exit */
	void *arg;

	/* Streams. */
	struct bufferevent *ours;	/* pair end pumped here */
	struct bufferevent *user;	/* filter given to the caller */
	struct watch *watch;
	struct evbuffer_cb_entry *user_in_cb;
	int committed;			/* NOTE_OPENED queued, not delivered */
	int handed;			/* the caller has the bufferevent */
	int user_closed;		/* the caller freed it */
	int user_eof;			/* the caller half-closed it */
	int eof_delivered;

	int remote_eof;
	int eof_sent;
	int wait_close;			/* wait for the remote close first */

	/* Runs (and the exec stream's stderr). */
	unsigned char *stdin_data;
	size_t stdin_len;
	size_t stdin_off;
	struct sbuf out;
	struct sbuf err;
	int out_truncated;
	int err_truncated;
	size_t err_max;
	struct event *timer;		/* run timeout */
	struct event *close_ev;		/* close deadline */
	int final_queued;		/* final note queued or delivered */
	int status_unknown;		/* gave up waiting for it */
	int exit_status;
	char *exit_signal;

	int final_stream;		/* final note: stream_cb with error */
	int result;			/* 0 or FL_ERR_* */
	char *errmsg;
};

struct conn {
	struct event_base *base;
	struct evdns_base *dns;
	struct evdns_base *own_dns;
	char *id;
	char *host;
	int port;
	char *hostport;
	char *user;
	char *key;
	size_t key_len;
	char *password;
	int64_t expires_ns;
	int64_t keepalive_ns;
	int64_t timeout_ns;
	int64_t attempt_timeout_ns;
	int max_attempts;
	int max_auth_failures;
	char fp[CONN_FINGERPRINT_MAX];

	conn_state_cb state_cb;
	void *arg;

	enum phase phase;
	enum auth_step auth_step;
	int attempts;
	int auth_failures;
	enum conn_failure failure;
	char *error;

	struct bufferevent *sock;
	LIBSSH2_SESSION *ssh;
	int io_dead;			/* send/recv callbacks fail */
	int sock_eof;

	struct event *pump_ev;
	struct event *retry_ev;
	struct event *attempt_ev;
	struct event *deadline_ev;
	struct event *keepalive_ev;

	TAILQ_HEAD(, conn_req) reqs;
	struct conn_req *opening;
	TAILQ_HEAD(, note) notes;
	int depth;			/* loop callbacks in progress */
	int doomed;			/* conn_free() called inside one */

	struct conn_stats stats;
	unsigned char scratch[READ_CHUNK];
};

/* ------------------------------------------------------------------ */
/* Pure helpers                                                        */

static int
valid_host(const char *h, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)h[i];

		if (ch <= ' ' || ch == 0x7f || ch == '[' || ch == ']' ||
		    ch == '/' || ch == '@')
			return 0;
	}
	return 1;
}

static int
parse_port(const char *s, int *port)
{
	long v;
	char *end;

	if (*s < '0' || *s > '9')
		return FL_ERR_PARSE;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1 || v > 65535)
		return FL_ERR_PARSE;
	*port = (int)v;
	return 0;
}

int
conn_parse_addr(const char *addr, int default_port, char **host, int *port)
{
	const char *colon, *close, *h;
	size_t hlen;
	int p = default_port;

	if (addr == NULL || *addr == '\0')
		return FL_ERR_PARSE;
	if (addr[0] == '[') {
		close = strchr(addr, ']');
		if (close == NULL)
			return FL_ERR_PARSE;
		h = addr + 1;
		hlen = (size_t)(close - h);
		if (hlen == 0 || memchr(h, ':', hlen) == NULL)
			return FL_ERR_PARSE;
		if (close[1] == ':') {
			if (parse_port(close + 2, &p) < 0)
				return FL_ERR_PARSE;
		} else if (close[1] != '\0') {
			return FL_ERR_PARSE;
		}
	} else {
		colon = strchr(addr, ':');
		h = addr;
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			/* Two colons or more: a bare IPv6 address. */
			struct in6_addr a6;

			if (inet_pton(AF_INET6, addr, &a6) != 1)
				return FL_ERR_PARSE;
			hlen = strlen(addr);
		} else if (colon != NULL) {
			hlen = (size_t)(colon - addr);
			if (parse_port(colon + 1, &p) < 0)
				return FL_ERR_PARSE;
		} else {
			hlen = strlen(addr);
		}
	}
	if (!valid_host(h, hlen) || p < 1 || p > 65535)
		return FL_ERR_PARSE;
	*host = xstrndup(h, hlen);
	*port = p;
	return 0;
}

const char *
conn_pick_addr(const char *internal, const char *external, int use_external)
{
	int has_int = internal != NULL && *internal != '\0';
	int has_ext = external != NULL && *external != '\0';

	if (use_external && has_ext)
		return external;
	if (has_int)
		return internal;
	if (has_ext)
		return external;
	return NULL;
}

static void
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

size_t
conn_streamlocal_msg(const char *socket_path, unsigned char *buf, size_t cap)
{
	size_t n = strlen(socket_path);
	size_t need = 4 + n + 4 + 4;

	if (buf == NULL || cap < need)
		return need;
	put_u32(buf, (uint32_t)n);
	memcpy(buf + 4, socket_path, n);
	put_u32(buf + 4 + n, 0);	/* reserved string: empty */
	put_u32(buf + 8 + n, 0);	/* reserved uint32 */
	return need;
}

int64_t
conn_backoff_ns(int n)
{
	int64_t d = CONN_BACKOFF_FIRST_NS;
	int i;

	for (i = 1; i < n && d < CONN_BACKOFF_MAX_NS; i++)
		d *= 2;
	return d < CONN_BACKOFF_MAX_NS ? d : CONN_BACKOFF_MAX_NS;
}

int
conn_should_retry(enum conn_failure kind, int attempts, int auth_failures,
    int max_attempts, int max_auth_failures)
{
	if (attempts >= max_attempts)
		return 0;
	switch (kind) {
	case CONN_FAIL_NET:
		return 1;
	case CONN_FAIL_AUTH:
		return auth_failures < max_auth_failures;
	case CONN_FAIL_NONE:
	case CONN_FAIL_HOSTKEY:
	case CONN_FAIL_FATAL:
		break;
	}
	return 0;
}

void
conn_fingerprint_format(const unsigned char hash[32],
    char out[CONN_FINGERPRINT_MAX])
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;
	uint32_t v;

	memcpy(out, "SHA256:", 7);
	o = 7;
	for (i = 0; i + 3 <= 32; i += 3) {
		v = (uint32_t)hash[i] << 16 | (uint32_t)hash[i + 1] << 8 |
		    hash[i + 2];
		out[o++] = b64[(v >> 18) & 63];
		out[o++] = b64[(v >> 12) & 63];
		out[o++] = b64[(v >> 6) & 63];
		out[o++] = b64[v & 63];
	}
	/* 32 = 30 + 2: two bytes left, three characters, no padding. */
	v = (uint32_t)hash[30] << 16 | (uint32_t)hash[31] << 8;
	out[o++] = b64[(v >> 18) & 63];
	out[o++] = b64[(v >> 12) & 63];
	out[o++] = b64[(v >> 6) & 63];
	out[o] = '\0';
}

int
conn_docker_socket_path(const char *docker_host, char **path)
{
	if (docker_host == NULL || *docker_host == '\0') {
		*path = xstrdup(CONN_DOCKER_SOCKET);
		return 0;
	}
	if (strncmp(docker_host, "unix://", 7) != 0)
		return FL_ERR_INVAL;
	if (docker_host[7] != '/' || strlen(docker_host + 7) > CONN_TARGET_MAX)
		return FL_ERR_INVAL;
	*path = xstrdup(docker_host + 7);
	return 0;
}

char *
conn_dial_stdio_command(const char *docker_host)
{
	struct sbuf sb;
	const char *p;

	if (docker_host == NULL || *docker_host == '\0')
		return xstrdup(CONN_DIAL_STDIO_COMMAND);
	sbuf_init(&sb);
	sbuf_adds(&sb, "docker -H '");
	for (p = docker_host; *p != '\0'; p++) {
		if (*p == '\'')
			sbuf_adds(&sb, "'\\''");
		else
			sbuf_addch(&sb, *p);
	}
	sbuf_adds(&sb, "' system dial-stdio");
	return sbuf_detach(&sb, NULL);
}

int
conn_read_key_file(const char *path, char **key, size_t *len)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? FL_ERR_NOTFOUND : FL_ERR_IO;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return FL_ERR_IO;
	}
	if (st.st_size > KEY_FILE_MAX) {
		close(fd);
		return FL_ERR_TOOBIG;
	}
	buf = xmalloc(KEY_FILE_MAX + 1);
	for (;;) {
		n = read(fd, buf + got, KEY_FILE_MAX + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got > KEY_FILE_MAX)
			break;
	}
	close(fd);
	if (n < 0 || got > KEY_FILE_MAX) {
		freezero(buf, KEY_FILE_MAX + 1);
		return n < 0 ? FL_ERR_IO : FL_ERR_TOOBIG;
	}
	buf[got] = '\0';
	*key = buf;
	*len = got;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Small utilities                                                     */

static char *
vfmt(const char *fmt, va_list ap)
{
	struct sbuf sb;

	sbuf_init(&sb);
	sbuf_vaddf(&sb, fmt, ap);
	return sbuf_detach(&sb, NULL);
}

static void
set_tv(struct timeval *tv, int64_t ns)
{
	if (ns < 0)
		ns = 0;
	tv->tv_sec = (time_t)(ns / CONN_NS_PER_SEC);
	tv->tv_usec = (suseconds_t)(ns % CONN_NS_PER_SEC / 1000);
}

static void
arm(struct event *ev, int64_t ns)
{
	struct timeval tv;

	set_tv(&tv, ns);
	evtimer_add(ev, &tv);
}

static int64_t
wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * CONN_NS_PER_SEC + ts.tv_nsec;
}

/* libssh2's last error text, or fallback. */
static const char *
ssh_msg(struct conn *c, const char *fallback)
{
	char *m = NULL;
	int len = 0;

	if (c->ssh == NULL)
		return fallback;
	libssh2_session_last_error(c->ssh, &m, &len, 0);
	return m != NULL && *m != '\0' ? m : fallback;
}

/* Errors after which the session as a whole is unusable. */
static int
session_fatal(int rc)
{
	switch (rc) {
	case LIBSSH2_ERROR_CHANNEL_OUTOFORDER:
	case LIBSSH2_ERROR_CHANNEL_FAILURE:
	case LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED:
	case LIBSSH2_ERROR_CHANNEL_UNKNOWN:
	case LIBSSH2_ERROR_CHANNEL_WINDOW_EXCEEDED:
	case LIBSSH2_ERROR_CHANNEL_PACKET_EXCEEDED:
	case LIBSSH2_ERROR_CHANNEL_CLOSED:
	case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
	case LIBSSH2_ERROR_REQUEST_DENIED:
	case LIBSSH2_ERROR_CHANNEL_WINDOW_FULL:
	case LIBSSH2_ERROR_INVAL:
	case LIBSSH2_ERROR_BAD_USE:
	case LIBSSH2_ERROR_BUFFER_TOO_SMALL:
	case LIBSSH2_ERROR_EAGAIN:
		return 0;
	default:
		return rc < 0;
	}
}

static size_t
sock_out_len(struct conn *c)
{
	return c->sock ? evbuffer_get_length(bufferevent_get_output(c->sock)) : 0;
}

static void schedule(struct conn *c);

/* ------------------------------------------------------------------ */
/* Notes and re-entrancy                                               */

static void
note_state(struct conn *c, enum conn_state st, int err, const char *msg)
{
	struct note *n = xcalloc(1, sizeof(*n));

	n->kind = NOTE_STATE;
	n->state = st;
	n->err = err;
	n->msg = msg ? xstrdup(msg) : NULL;
	TAILQ_INSERT_TAIL(&c->notes, n, link);
	schedule(c);
}

static void
note_req(struct conn *c, struct conn_req *r, enum note_kind kind)
{
	struct note *n = xcalloc(1, sizeof(*n));

	n->kind = kind;
	n->req = r;
	r->notes++;
	TAILQ_INSERT_TAIL(&c->notes, n, link);
	schedule(c);
}

static void req_free(struct conn_req *r);
static void req_detach_stream(struct conn_req *r, int give_eof);
static void destroy(struct conn *c);

static void
conn_enter(struct conn *c)
{
	c->depth++;
}

static void
deliver(struct conn *c, struct note *n)
{
	struct conn_req *r = n->req;
	struct conn_run_result res;

	switch (n->kind) {
	case NOTE_STATE:
		if (c->state_cb)
			c->state_cb(c->arg, n->state, n->err, n->msg);
		break;
	case NOTE_OPENED:
		r->committed = 0;
		r->handed = 1;
		schedule(c);	/* data may be waiting for the caller */
		if (r->stream_cb)
			r->stream_cb(r->arg, 0, NULL, r->user);
		break;
	case NOTE_FINAL:
		if (r->final_stream) {
			if (r->stream_cb)
				r->stream_cb(r->arg, r->result, r->errmsg, NULL);
			break;
		}
		memset(&res, 0, sizeof(res));
		res.err = r->result;
		res.errmsg = r->result ? r->errmsg : NULL;
		res.exit_status = r->exit_status;
		res.exit_signal = r->exit_signal;
		if (r->kind == RQ_RUN) {
			res.out = r->out.buf;
			res.out_len = r->out.len;
			res.out_truncated = r->out_truncated;
		}
		res.err_out = r->err.buf;
		res.err_len = r->err.len;
		res.err_truncated = r->err_truncated;
		if (r->run_cb)
			r->run_cb(r->arg, &res);
		break;
	}
}

/*
 * Leave a loop callback: deliver the queued notes (the outermost callback
 * only), then carry out a conn_free() made meanwhile.
 */
static void
conn_leave(struct conn *c)
{
	struct note *n;
	struct conn_req *r;

	if (c->depth == 1) {
		while (!c->doomed && (n = TAILQ_FIRST(&c->notes)) != NULL) {
			TAILQ_REMOVE(&c->notes, n, link);
			r = n->req;
			deliver(c, n);
			if (r != NULL) {
				r->notes--;
				if (r->step == RS_DONE && r->notes == 0 &&
				    !r->listed)
					req_free(r);
			}
			free(n->msg);
			free(n);
		}
	}
	c->depth--;
	if (c->doomed && c->depth == 0)
		destroy(c);
}

/* ------------------------------------------------------------------ */
/* Transport                                                           */

static ssize_t
ssh_send_cb(libssh2_socket_t fd, const void *buf, size_t len, int flags,
    void **abstract)
{
	struct conn *c = *abstract;

	(void)fd;
	(void)flags;
	if (c->io_dead || c->sock == NULL)
		return -EPIPE;
	if (evbuffer_add(bufferevent_get_output(c->sock), buf, len) < 0)
		return -ENOMEM;
	c->stats.bytes_out += len;
	return (ssize_t)len;
}

static ssize_t
ssh_recv_cb(libssh2_socket_t fd, void *buf, size_t len, int flags,
    void **abstract)
{
	struct conn *c = *abstract;
	int n;

	(void)fd;
	(void)flags;
	if (c->io_dead || c->sock == NULL)
		return -ECONNRESET;
	if (len > INT_MAX)
		len = INT_MAX;
	n = evbuffer_remove(bufferevent_get_input(c->sock), buf, len);
	if (n > 0) {
		c->stats.bytes_in += (uint64_t)n;
		return n;
	}
	if (c->sock_eof)
		return 0;
	return -EAGAIN;
}

/*
 * Drop the socket and the session.  polite: say goodbye to the server
 * first (one best-effort write).  The requests' channels must already be
 * forgotten (the session frees them).
 */
static void
teardown_transport(struct conn *c, int polite)
{
	if (c->ssh != NULL) {
		if (polite && c->phase == PH_UP && !c->io_dead &&
		    c->sock != NULL) {
			libssh2_session_disconnect(c->ssh, "closed by flotilla");
			evbuffer_write(bufferevent_get_output(c->sock),
			    bufferevent_getfd(c->sock));
		}
		/* Closing channels would wait for the server: make I/O fail
		 * so that libssh2_session_free() cannot say EAGAIN. */
		c->io_dead = 1;
		libssh2_session_free(c->ssh);
		c->ssh = NULL;
	}
	if (c->sock != NULL) {
		bufferevent_free(c->sock);
		c->sock = NULL;
	}
	c->io_dead = 0;
	c->sock_eof = 0;
	evtimer_del(c->keepalive_ev);
	evtimer_del(c->attempt_ev);
}

static void req_finish(struct conn *c, struct conn_req *r, int err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void req_done(struct conn *c, struct conn_req *r);

/* Every request fails (or its stream gets EOF): the session is gone. */
static void
fail_requests(struct conn *c, const char *why)
{
	struct conn_req *r;

	c->opening = NULL;
	while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
		/* The channel goes with the session (req_done forgets it). */
		if (r->result == 0) {
			r->result = FL_ERR_CLOSED;
			r->errmsg = xasprintf("connection lost: %s", why);
		}
		r->exit_status = -1;
		req_done(c, r);
	}
}

static void
set_error(struct conn *c, enum conn_failure kind, const char *msg)
{
	c->failure = kind;
	free(c->error);
	c->error = xstrdup(msg);
}

/* The conn is down: requests fail, CONN_DOWN is reported. */
static void
go_down(struct conn *c, enum conn_failure kind, int err, const char *msg)
{
	set_error(c, kind, msg);
	fail_requests(c, msg);
	teardown_transport(c, 0);
	evtimer_del(c->retry_ev);
	evtimer_del(c->deadline_ev);
	c->phase = PH_IDLE;
	note_state(c, CONN_DOWN, err, msg);
}

static void go_down_f(struct conn *c, enum conn_failure kind, int err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
go_down_f(struct conn *c, enum conn_failure kind, int err, const char *fmt,
    ...)
{
	va_list ap;
	char *m;

	va_start(ap, fmt);
	m = vfmt(fmt, ap);
	va_end(ap);
	go_down(c, kind, err, m);
	free(m);
}

static void attempt_failed(struct conn *c, enum conn_failure kind, int err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* An attempt failed: back off and retry, or give up. */
static void
attempt_failed(struct conn *c, enum conn_failure kind, int err,
    const char *fmt, ...)
{
	va_list ap;
	char *m, *full;
	int64_t d;

	va_start(ap, fmt);
	m = vfmt(fmt, ap);
	va_end(ap);
	teardown_transport(c, 0);
	if (kind == CONN_FAIL_AUTH)
		c->auth_failures++;
	set_error(c, kind, m);
	if (!conn_should_retry(kind, c->attempts, c->auth_failures,
	    c->max_attempts, c->max_auth_failures)) {
		if (kind == CONN_FAIL_NET || kind == CONN_FAIL_AUTH)
			full = xasprintf("dial ssh %s: after %d attempt%s: %s",
			    c->hostport, c->attempts,
			    c->attempts == 1 ? "" : "s", m);
		else
			full = xasprintf("dial ssh %s: %s", c->hostport, m);
		go_down(c, kind, err, full);
		free(full);
		free(m);
		return;
	}
	d = conn_backoff_ns(c->attempts);
	full = xasprintf("dial ssh %s: attempt %d/%d failed: %s; retrying in "
	    "%lld ms", c->hostport, c->attempts, c->max_attempts, m,
	    (long long)(d / 1000000));
	c->phase = PH_BACKOFF;
	arm(c->retry_ev, d);
	note_state(c, CONN_CONNECTING, err, full);
	free(full);
	free(m);
}

static void pump(struct conn *c);
static void lost(struct conn *c, const char *what);

static void
sock_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	conn_enter(c);
	pump(c);
	conn_leave(c);
}

static void
sock_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	conn_enter(c);
	pump(c);
	conn_leave(c);
}

static void
start_session(struct conn *c)
{
	int one = 1;
	evutil_socket_t fd = bufferevent_getfd(c->sock);

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (c->keepalive_ns > 0) {
		/* Unacknowledged data (a keepalive) fails the socket after
		 * three intervals: a vanished host is noticed. */
		int64_t ms = c->keepalive_ns / 1000000 * 3 + 10000;
		unsigned int t = ms > UINT_MAX ? UINT_MAX : (unsigned int)ms;

		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &t, sizeof(t));
	}
	bufferevent_set_max_single_read(c->sock, SOCK_IO_CHUNK);
	bufferevent_set_max_single_write(c->sock, SOCK_IO_CHUNK);
	bufferevent_setwatermark(c->sock, EV_READ, 0, SOCK_IN_HIGH);
	bufferevent_setwatermark(c->sock, EV_WRITE, SOCK_OUT_LOW, 0);
	bufferevent_enable(c->sock, EV_READ | EV_WRITE);

	c->ssh = libssh2_session_init_ex(NULL, NULL, NULL, c);
	if (c->ssh == NULL) {
		attempt_failed(c, CONN_FAIL_FATAL, FL_ERR_NOMEM,
		    "libssh2 session: out of memory");
		return;
	}
	libssh2_session_set_blocking(c->ssh, 0);
	libssh2_session_callback_set(c->ssh, LIBSSH2_CALLBACK_SEND,
	    (void *)ssh_send_cb);
	libssh2_session_callback_set(c->ssh, LIBSSH2_CALLBACK_RECV,
	    (void *)ssh_recv_cb);
	c->phase = PH_HANDSHAKE;
	pump(c);
}

static void
sock_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	int e;

	(void)bev;
	conn_enter(c);
	if (what & BEV_EVENT_CONNECTED) {
		if (c->phase == PH_TCP)
			start_session(c);
		conn_leave(c);
		return;
	}
	e = EVUTIL_SOCKET_ERROR();
	if (c->phase == PH_TCP) {
		int dnserr = bufferevent_socket_get_dns_error(c->sock);

		if (dnserr != 0)
			attempt_failed(c, CONN_FAIL_NET, FL_ERR_IO,
			    "lookup %s: %s", c->host, evutil_gai_strerror(dnserr));
		else
			attempt_failed(c, CONN_FAIL_NET, FL_ERR_IO,
			    "dial tcp: %s", (what & BEV_EVENT_EOF) ?
			    "connection closed" : evutil_socket_error_to_string(e));
		conn_leave(c);
		return;
	}
	/* Let libssh2 take what is left (the last channel data, a
	 * disconnect message) before the session goes. */
	c->sock_eof = 1;
	pump(c);
	if (c->sock != NULL && c->phase >= PH_HANDSHAKE) {
		const char *why = (what & BEV_EVENT_EOF) ?
		    "connection closed by the server" :
		    evutil_socket_error_to_string(e);

		if (c->phase == PH_UP)
			go_down_f(c, CONN_FAIL_NET, FL_ERR_CLOSED,
			    "ssh %s: %s", c->hostport, why);
		else
			attempt_failed(c, CONN_FAIL_NET, FL_ERR_IO,
			    "ssh: handshake failed: %s", why);
	}
	conn_leave(c);
}

/* Start one attempt: TCP connect to the chosen address. */
static void
start_attempt(struct conn *c)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	int rc;

	if (c->expires_ns > 0 && wall_ns() >= c->expires_ns) {
		go_down_f(c, CONN_FAIL_FATAL, FL_ERR_TIMEOUT,
		    "dial ssh %s: credentials expired; refresh the connect "
		    "info", c->hostport);
		return;
	}
	c->attempts++;
	c->stats.attempts = (uint64_t)c->attempts;
	c->phase = PH_TCP;
	c->auth_step = c->key ? AUTH_KEY : AUTH_PASSWORD;
	arm(c->attempt_ev, c->attempt_timeout_ns);
	c->sock = bufferevent_socket_new(c->base, -1,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (c->sock == NULL) {
		attempt_failed(c, CONN_FAIL_FATAL, FL_ERR_NOMEM,
		    "socket: out of memory");
		return;
	}
	bufferevent_setcb(c->sock, sock_read_cb, sock_write_cb,
	    sock_event_cb, c);
	if (evutil_parse_sockaddr_port(c->hostport, (struct sockaddr *)&ss,
	    &sslen) == 0) {
		rc = bufferevent_socket_connect(c->sock,
		    (struct sockaddr *)&ss, sslen);
	} else {
		struct evdns_base *dns = c->dns;

		if (dns == NULL) {
			if (c->own_dns == NULL)
				c->own_dns = evdns_base_new(c->base,
				    EVDNS_BASE_INITIALIZE_NAMESERVERS);
			dns = c->own_dns;
		}
		if (dns == NULL) {
			attempt_failed(c, CONN_FAIL_NET, FL_ERR_IO,
			    "lookup %s: no resolver", c->host);
			return;
		}
		rc = bufferevent_socket_connect_hostname(c->sock, dns,
		    AF_UNSPEC, c->host, c->port);
	}
	if (rc < 0)
		attempt_failed(c, CONN_FAIL_NET, FL_ERR_IO, "dial tcp: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	conn_enter(c);
	if (c->phase == PH_BACKOFF)
		start_attempt(c);
	conn_leave(c);
}

static void
attempt_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	conn_enter(c);
	if (c->phase == PH_TCP || c->phase == PH_HANDSHAKE ||
	    c->phase == PH_AUTH)
		attempt_failed(c, CONN_FAIL_NET, FL_ERR_TIMEOUT,
		    "attempt timed out after %lld ms",
		    (long long)(c->attempt_timeout_ns / 1000000));
	conn_leave(c);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	conn_enter(c);
	if (c->phase != PH_UP && c->phase != PH_IDLE)
		go_down_f(c, CONN_FAIL_FATAL, FL_ERR_TIMEOUT,
		    "dial ssh %s: timed out after %lld s and %d attempt%s%s%s",
		    c->hostport, (long long)(c->timeout_ns / CONN_NS_PER_SEC),
		    c->attempts, c->attempts == 1 ? "" : "s",
		    c->error ? ": " : "", c->error ? c->error : "");
	conn_leave(c);
}

static void
keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int next = 0, rc;

	(void)fd;
	(void)what;
	conn_enter(c);
	if (c->phase == PH_UP && c->ssh != NULL) {
		rc = libssh2_keepalive_send(c->ssh, &next);
		if (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN) {
			lost(c, "keepalive");
		} else {
			if (next < 1)
				next = 1;
			arm(c->keepalive_ev, (int64_t)next * CONN_NS_PER_SEC);
		}
	}
	conn_leave(c);
}

/* ------------------------------------------------------------------ */
/* Handshake and authentication                                        */

static int
check_host_key(struct conn *c)
{
	const char *h;
	char fp[CONN_FINGERPRINT_MAX];

	h = libssh2_hostkey_hash(c->ssh, LIBSSH2_HOSTKEY_HASH_SHA256);
	if (h == NULL) {
		attempt_failed(c, CONN_FAIL_HOSTKEY, FL_ERR_PROTO,
		    "ssh: no SHA256 host key hash for instance %s", c->id);
		return -1;
	}
	conn_fingerprint_format((const unsigned char *)h, fp);
	if (c->fp[0] == '\0') {
		memcpy(c->fp, fp, sizeof(fp));
		return 0;
	}
	if (strcmp(c->fp, fp) != 0) {
		attempt_failed(c, CONN_FAIL_HOSTKEY, FL_ERR_PROTO,
		    "ssh: host key of instance %s changed: pinned %s, offered "
		    "%s", c->id, c->fp, fp);
		return -1;
	}
	return 0;
}

static void
now_up(struct conn *c)
{
	c->phase = PH_UP;
	evtimer_del(c->attempt_ev);
	evtimer_del(c->deadline_ev);
	free(c->error);
	c->error = NULL;
	c->failure = CONN_FAIL_NONE;
	if (c->keepalive_ns > 0) {
		int64_t s = c->keepalive_ns / CONN_NS_PER_SEC;

		if (s < 1)
			s = 1;
		/* No reply wanted: libssh2 1.10 would queue every reply on
		 * the session forever.  A dead peer shows as the socket
		 * failing (TCP_USER_TIMEOUT). */
		libssh2_keepalive_config(c->ssh, 0, (unsigned)s);
		arm(c->keepalive_ev, s * CONN_NS_PER_SEC);
	}
	note_state(c, CONN_UP, 0, NULL);
}

/*
 * Whether a private key is RSA: PEM "RSA PRIVATE KEY", or "ssh-rsa" or
 * the rsaEncryption OID near the start of an OpenSSH or PKCS#8 body.
 * Only for a hint in error messages.
 */
static int
key_is_rsa(const char *key, size_t len)
{
	static const unsigned char oid[] = {
		0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01
	};
	unsigned char bin[192];
	const char *p, *end = key + len;
	size_t n = 0;
	uint32_t acc = 0;
	int bits = 0, rsa;

	if (memmem(key, len, "BEGIN RSA PRIVATE KEY", 21) != NULL)
		return 1;
	p = memchr(key, '\n', len);	/* past the BEGIN line */
	if (p == NULL)
		return 0;
	for (; p < end && n < sizeof(bin) && *p != '-'; p++) {
		int v;

		if (*p >= 'A' && *p <= 'Z')
			v = *p - 'A';
		else if (*p >= 'a' && *p <= 'z')
			v = *p - 'a' + 26;
		else if (*p >= '0' && *p <= '9')
			v = *p - '0' + 52;
		else if (*p == '+')
			v = 62;
		else if (*p == '/')
			v = 63;
		else
			continue;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			bin[n++] = (unsigned char)(acc >> bits);
		}
	}
	rsa = memmem(bin, n, "ssh-rsa", 7) != NULL ||
	    memmem(bin, n, oid, sizeof(oid)) != NULL;
	explicit_bzero(bin, sizeof(bin));
	return rsa;
}

/*
 * Errors of libssh2_userauth_publickey_frommemory() that mean the key
 * itself could not be used (it is parsed before anything is sent).
 */
static int
key_error(int rc)
{
	switch (rc) {
	case LIBSSH2_ERROR_FILE:
	case LIBSSH2_ERROR_PROTO:
	case LIBSSH2_ERROR_OUT_OF_BOUNDARY:
	case LIBSSH2_ERROR_METHOD_NOT_SUPPORTED:
	case LIBSSH2_ERROR_INVAL:
	case LIBSSH2_ERROR_KEYFILE_AUTH_FAILED:
		return 1;
	default:
		return 0;
	}
}

/* Returns 1 when done (up or failed), 0 on EAGAIN. */
static int
pump_auth(struct conn *c)
{
	int rc;

	for (;;) {
		if (c->auth_step == AUTH_KEY) {
			rc = libssh2_userauth_publickey_frommemory(c->ssh,
			    c->user, strlen(c->user), NULL, 0, c->key,
			    c->key_len, "");
		} else {
			rc = libssh2_userauth_password_ex(c->ssh, c->user,
			    (unsigned)strlen(c->user), c->password,
			    (unsigned)strlen(c->password), NULL);
		}
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return 0;
		if (rc == 0) {
			now_up(c);
			return 1;
		}
		if (c->auth_step == AUTH_KEY && c->password != NULL &&
		    (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED ||
		    rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED ||
		    key_error(rc))) {
			c->auth_step = AUTH_PASSWORD;	/* then the password */
			continue;
		}
		break;
	}
	if (c->auth_step == AUTH_KEY && key_error(rc)) {
		attempt_failed(c, CONN_FAIL_FATAL, FL_ERR_INVAL,
		    "ssh: private key unusable: %s", ssh_msg(c, "bad key"));
	} else if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED ||
	    rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED ||
	    rc == LIBSSH2_ERROR_METHOD_NONE) {
		int rsa = c->auth_step == AUTH_KEY && key_is_rsa(c->key,
		    c->key_len);

		attempt_failed(c, CONN_FAIL_AUTH, FL_ERR_INVAL,
		    "ssh: unable to authenticate as %s (%s): %s%s", c->user,
		    c->auth_step == AUTH_KEY ? "publickey" : "password",
		    ssh_msg(c, "refused"), rsa ? " (an RSA key: libssh2 1.10 "
		    "signs with ssh-rsa/SHA-1 only, which OpenSSH 8.8 and "
		    "later refuse by default; use an ed25519 or ECDSA key)" :
		    "");
	} else if (rc == LIBSSH2_ERROR_PASSWORD_EXPIRED) {
		attempt_failed(c, CONN_FAIL_FATAL, FL_ERR_INVAL,
		    "ssh: password of %s expired", c->user);
	} else {
		attempt_failed(c, CONN_FAIL_NET, FL_ERR_IO,
		    "ssh: authentication: %s", ssh_msg(c, "failed"));
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */

static void
user_in_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct watch *w = arg;

	(void)buf;
	/* The caller read some of its input: a paused channel may go on. */
	if (info->n_deleted > 0 && w->req != NULL)
		schedule(w->req->c);
}

static void
watch_free_cb(void *arg)
{
	struct watch *w = arg;

	if (w->req != NULL) {
		w->req->user_closed = 1;
		w->req->user = NULL;
		w->req->user_in_cb = NULL;
		w->req->watch = NULL;
		schedule(w->req->c);
	}
	free(w);
}

static void
ours_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn_req *r = arg;

	(void)bev;
	schedule(r->c);
}

static void
ours_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn_req *r = arg;

	(void)bev;
	schedule(r->c);		/* the caller took what we had queued */
}

static void
ours_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn_req *r = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF)
		r->user_eof = 1;	/* the caller half-closed */
	schedule(r->c);
}

/* Make the bufferevent pair and the caller's filter for an open stream. */
static int
stream_attach(struct conn_req *r)
{
	struct bufferevent *pair[2];

	if (bufferevent_pair_new(r->c->base, BEV_OPT_DEFER_CALLBACKS,
	    pair) < 0)
		return FL_ERR_NOMEM;
	r->watch = xcalloc(1, sizeof(*r->watch));
	r->user = bufferevent_filter_new(pair[1], NULL, NULL,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, watch_free_cb,
	    r->watch);
	if (r->user == NULL) {
		free(r->watch);
		r->watch = NULL;
		bufferevent_free(pair[0]);
		bufferevent_free(pair[1]);
		return FL_ERR_NOMEM;
	}
	r->watch->req = r;
	r->ours = pair[0];
	bufferevent_setcb(r->ours, ours_read_cb, ours_write_cb, ours_event_cb,
	    r);
	/* What the caller writes waits in its own output beyond this. */
	bufferevent_setwatermark(r->ours, EV_READ, 0, CONN_STREAM_HIGH_WATER);
	bufferevent_enable(r->ours, EV_READ | EV_WRITE);
	bufferevent_enable(r->user, EV_WRITE);
	r->user_in_cb = evbuffer_add_cb(bufferevent_get_input(r->user),
	    user_in_cb, r->watch);
	return 0;
}

/*
 * The stream is over for the connector: give the caller EOF if asked, let
 * go of our pair end; the caller's bufferevent lives on until freed.
 */
static void
req_detach_stream(struct conn_req *r, int give_eof)
{
	if (r->ours == NULL)
		return;
	if (give_eof && !r->eof_delivered && !r->user_closed &&
	    bufferevent_pair_get_partner(r->ours) != NULL) {
		bufferevent_flush(r->ours, EV_WRITE, BEV_FINISHED);
		r->eof_delivered = 1;
	}
	bufferevent_free(r->ours);
	r->ours = NULL;
	if (r->watch != NULL) {
		r->watch->req = NULL;	/* freed by the filter's free */
		r->watch = NULL;
	}
	if (r->user != NULL && r->user_in_cb != NULL)
		evbuffer_remove_cb_entry(bufferevent_get_input(r->user),
		    r->user_in_cb);
	r->user_in_cb = NULL;
	if (!r->handed && r->user != NULL)
		bufferevent_free(r->user);	/* never given out */
	r->user = NULL;
}

static void
req_free(struct conn_req *r)
{
	req_detach_stream(r, 1);
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->close_ev != NULL)
		event_free(r->close_ev);
	free(r->target);
	free(r->openmsg);
	freezero(r->stdin_data, r->stdin_len);
	sbuf_release(&r->out);
	sbuf_release(&r->err);
	free(r->exit_signal);
	free(r->errmsg);
	free(r);
}

static void
remove_notes(struct conn *c, struct conn_req *r)
{
	struct note *n, *next;

	for (n = TAILQ_FIRST(&c->notes); n != NULL; n = next) {
		next = TAILQ_NEXT(n, link);
		if (n->req != r)
			continue;
		TAILQ_REMOVE(&c->notes, n, link);
		r->notes--;
		free(n->msg);
		free(n);
	}
}

/*
 * Whether r's final callback is still owed, and which one (sets
 * r->final_stream: the stream callback with an error, for a stream the
 * caller never got).
 */
static int
want_final(struct conn_req *r)
{
	if (r->cancelled || r->final_queued)
		return 0;
	if (!r->handed && r->kind != RQ_RUN) {
		r->final_stream = 1;
		return r->stream_cb != NULL;
	}
	return r->kind != RQ_STREAM && r->run_cb != NULL;
}

/*
 * The request is finished: out of the list, its channel forgotten (closed
 * and freed already, or left to libssh2 until the session goes), its
 * stream detached (EOF to the caller), its final note queued if someone
 * waits for it, else freed.  The caller must not touch r afterwards.
 */
static void
req_done(struct conn *c, struct conn_req *r)
{
	if (c->opening == r)
		c->opening = NULL;
	if (r->listed) {
		TAILQ_REMOVE(&c->reqs, r, link);
		r->listed = 0;
	}
	if (r->ch != NULL) {
		c->stats.channels_active--;
		r->ch = NULL;
	}
	r->step = RS_DONE;
	if (r->timer != NULL)
		evtimer_del(r->timer);
	if (r->close_ev != NULL)
		evtimer_del(r->close_ev);
	if (r->committed) {
		/* The stream dies before the caller got it: report an
		 * error instead (an EOF now would reach no callback). */
		struct note *n;

		TAILQ_FOREACH(n, &c->notes, link)
			if (n->req == r && n->kind == NOTE_OPENED)
				break;
		if (n != NULL) {
			TAILQ_REMOVE(&c->notes, n, link);
			r->notes--;
			free(n);
		}
		r->committed = 0;
		if (r->result == 0) {
			r->result = FL_ERR_CLOSED;
			r->errmsg = xasprintf("%s: closed at once", r->target);
		}
	}
	req_detach_stream(r, 1);
	if (want_final(r)) {
		r->final_queued = 1;
		note_req(c, r, NOTE_FINAL);
	} else if (r->notes == 0) {
		req_free(r);
	}
}

static void close_timeout_cb(evutil_socket_t fd, short what, void *arg);

/*
 * Start closing r's channel.  wait: wait for the remote close first (the
 * exit status comes before it).  sshd answers a close only once the
 * command has exited, so the whole close is bounded: CLOSE_WAIT_NS for
 * the exit status, as much again for the close; then the channel is left
 * to libssh2 (freed with the session) and the request ends.
 */
static void
begin_close(struct conn *c, struct conn_req *r, int wait)
{
	r->wait_close = wait;
	r->step = RS_CLOSING;
	/* Nothing more goes to the channel: see stream_throttle(). */
	if (r->ours != NULL)
		bufferevent_disable(r->ours, EV_READ);
	if (r->close_ev == NULL)
		r->close_ev = evtimer_new(c->base, close_timeout_cb, r);
	arm(r->close_ev, CLOSE_WAIT_NS);
	schedule(c);
}

static void
close_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn_req *r = arg;
	struct conn *c = r->c;

	(void)fd;
	(void)what;
	conn_enter(c);
	if (r->step == RS_CLOSING) {
		if (r->wait_close) {
			r->wait_close = 0;	/* no exit status: close */
			r->status_unknown = 1;
			arm(r->close_ev, CLOSE_WAIT_NS);
			pump(c);
		} else {
			r->exit_status = -1;	/* abandon the channel */
			req_done(c, r);
		}
	}
	conn_leave(c);
}

/*
 * End a request with an error; its channel (if any) is closed.  An open
 * in progress is finished first (libssh2 has one per session): pump_open
 * closes the channel when r->result is set.  A run's callback comes at
 * once, without waiting for the channel to close.
 */
static void
req_finish(struct conn *c, struct conn_req *r, int err, const char *fmt, ...)
{
	va_list ap;

	if (r->result == 0) {
		r->result = err;
		free(r->errmsg);
		va_start(ap, fmt);
		r->errmsg = vfmt(fmt, ap);
		va_end(ap);
	}
	if (r->step == RS_OPENING && c->opening == r)
		return;
	if (r->ch == NULL) {
		req_done(c, r);
		return;
	}
	if (r->kind == RQ_RUN && want_final(r)) {
		r->exit_status = -1;
		r->final_queued = 1;
		note_req(c, r, NOTE_FINAL);
	}
	begin_close(c, r, 0);
}

static void
run_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn_req *r = arg;
	struct conn *c = r->c;

	(void)fd;
	(void)what;
	conn_enter(c);
	if (r->step != RS_DONE && r->step != RS_CLOSING) {
		r->exit_status = -1;
		req_finish(c, r, FL_ERR_TIMEOUT, "run %s: timed out",
		    r->target);
		pump(c);
	}
	conn_leave(c);
}

/* Bytes of a stream waiting for the caller to read them. */
static size_t
pending_to_user(struct conn_req *r)
{
	struct bufferevent *partner;
	size_t n = evbuffer_get_length(bufferevent_get_output(r->ours));

	partner = bufferevent_pair_get_partner(r->ours);
	if (partner != NULL)
		n += evbuffer_get_length(bufferevent_get_input(partner));
	if (r->user != NULL)
		n += evbuffer_get_length(bufferevent_get_input(r->user));
	return n;
}

/* Append to a bounded buffer; returns 1 if something was cut. */
static int
add_bounded(struct sbuf *sb, size_t max, const void *p, size_t n)
{
	size_t room = sb->len < max ? max - sb->len : 0;

	sbuf_add(sb, p, n < room ? n : room);
	return n > room;
}

/* The session broke while up (what: the operation that noticed). */
static void
lost(struct conn *c, const char *what)
{
	if (c->sock_eof)
		go_down_f(c, CONN_FAIL_NET, FL_ERR_CLOSED,
		    "ssh %s: connection closed by the server", c->hostport);
	else
		go_down_f(c, CONN_FAIL_NET, FL_ERR_CLOSED, "ssh %s: %s: %s",
		    c->hostport, what, ssh_msg(c, "session error"));
}

/* A channel-level libssh2 error on r; 1 if the session died instead. */
static int
chan_error(struct conn *c, struct conn_req *r, int rc, const char *what)
{
	if (session_fatal((int)rc)) {
		lost(c, what);
		return 1;
	}
	r->remote_eof = 1;
	req_finish(c, r, FL_ERR_IO, "%s %s: %s", what, r->target,
	    ssh_msg(c, "channel error"));
	return 0;
}

/*
 * Whether ours reads from the caller.  libevent 2.1 runs a bufferevent's
 * read callback again, from the loop, after every run that leaves its
 * input at or above the read high-water mark with EV_READ on
 * (bufferevent_inbuf_wm_check(): for readers that wait for more before
 * they drain).  With ours at CONN_STREAM_HIGH_WATER and nothing leaving
 * it (the channel's window closed, or the socket's output full) that is
 * ours_read_cb and a pump() at every loop turn: the loop spins until the
 * window opens.  So a stream that sent nothing in a pump with ours at its
 * mark stops reading (more from the caller could not be taken anyway; it
 * waits in the caller's pair end, as it would at the mark).  What unblocks
 * the channel calls pump() itself (a WINDOW_ADJUST through sock_read_cb,
 * the socket draining through sock_write_cb), and the first bytes that
 * pump sends turn reading back on: be_pair_enable() pulls what the caller
 * queued meanwhile and the read callback follows.
 */
static void
stream_throttle(struct conn_req *r, int sent)
{
	int on;

	if (r->ours == NULL)
		return;
	on = (bufferevent_get_enabled(r->ours) & EV_READ) != 0;
	if (!sent && evbuffer_get_length(bufferevent_get_input(r->ours)) >=
	    CONN_STREAM_HIGH_WATER) {
		if (on)
			bufferevent_disable(r->ours, EV_READ);
	} else if (!on) {
		bufferevent_enable(r->ours, EV_READ);
	}
}

/*
 * Move bytes both ways on an open channel.  Returns 1 if anything
 * happened.  May finish r or take the whole conn down (check c->phase).
 */
static int
pump_data(struct conn *c, struct conn_req *r, size_t *budget)
{
	int progress = 0, sent = 0;
	ssize_t n;

	if (r->ours != NULL && !r->user_closed &&
	    bufferevent_pair_get_partner(r->ours) == NULL) {
		r->user_closed = 1;	/* freed; the watch may not know yet */
		progress = 1;
	}

	/* Remote to local: stdout, or the stream. */
	while (!r->remote_eof && *budget > 0) {
		if (r->kind == RQ_RUN || (r->ours == NULL || r->user_closed)) {
			n = libssh2_channel_read(r->ch, (char *)c->scratch,
			    sizeof(c->scratch));
			if (n > 0 && r->kind == RQ_RUN &&
			    add_bounded(&r->out, CONN_RUN_OUTPUT_MAX,
			    c->scratch, (size_t)n))
				r->out_truncated = 1;
		} else {
			struct evbuffer *out = bufferevent_get_output(r->ours);
			struct evbuffer_iovec v;

			if (pending_to_user(r) >= CONN_STREAM_HIGH_WATER)
				break;	/* the window stops the sender */
			if (evbuffer_reserve_space(out, READ_CHUNK, &v, 1) < 1)
				break;
			n = libssh2_channel_read(r->ch, v.iov_base,
			    v.iov_len < READ_CHUNK ? v.iov_len : READ_CHUNK);
			if (n > 0) {
				v.iov_len = (size_t)n;
				evbuffer_commit_space(out, &v, 1);
			}
		}
		if (n == LIBSSH2_ERROR_EAGAIN)
			break;
		if (n < 0) {
			chan_error(c, r, (int)n, "read");
			return 1;
		}
		if (n == 0) {
			if (libssh2_channel_eof(r->ch) == 1) {
				r->remote_eof = 1;
				progress = 1;
			}
			break;
		}
		progress = 1;
		*budget -= (size_t)n < *budget ? (size_t)n : *budget;
	}

	/* Stderr of session channels: always drained, since unread data
	 * would keep its share of the window. */
	while (r->kind != RQ_STREAM) {
		n = libssh2_channel_read_stderr(r->ch, (char *)c->scratch,
		    sizeof(c->scratch));
		if (n == LIBSSH2_ERROR_EAGAIN || n == 0)
			break;
		if (n < 0) {
			chan_error(c, r, (int)n, "read stderr");
			return 1;
		}
		if (add_bounded(&r->err, r->err_max, c->scratch, (size_t)n))
			r->err_truncated = 1;
		progress = 1;
	}

	/* Local to remote. */
	if (r->remote_eof && r->kind != RQ_STREAM) {
		/* The command is done with its input. */
		r->stdin_off = r->stdin_len;
	}
	while (!r->eof_sent && !r->remote_eof && *budget > 0 &&
	    sock_out_len(c) < SOCK_OUT_HIGH) {
		const unsigned char *p;
		size_t len;

		if (r->kind == RQ_RUN) {
			p = r->stdin_data + r->stdin_off;
			len = r->stdin_len - r->stdin_off;
		} else if (r->ours != NULL) {
			struct evbuffer_iovec v;
			struct evbuffer *in = bufferevent_get_input(r->ours);

			if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
				break;
			p = v.iov_base;
			len = v.iov_len;
		} else {
			break;
		}
		if (len == 0)
			break;
		if (len > CONN_CHANNEL_PACKET)
			len = CONN_CHANNEL_PACKET;
		n = libssh2_channel_write(r->ch, (const char *)p, len);
		if (n == LIBSSH2_ERROR_EAGAIN || n == 0)
			break;	/* window full: a WINDOW_ADJUST will come */
		if (n < 0) {
			chan_error(c, r, (int)n, "write");
			return 1;
		}
		if (r->kind == RQ_RUN)
			r->stdin_off += (size_t)n;
		else
			evbuffer_drain(bufferevent_get_input(r->ours),
			    (size_t)n);
		progress = 1;
		sent = 1;
		*budget -= (size_t)n < *budget ? (size_t)n : *budget;
	}
	stream_throttle(r, sent);

	/* EOF to the remote when our side has nothing more. */
	if (!r->eof_sent) {
		int done;

		if (r->kind == RQ_RUN)
			done = r->stdin_off >= r->stdin_len;
		else if (r->remote_eof)
			done = 1;	/* half-open streams are not kept */
		else
			done = (r->user_closed || r->user_eof) &&
			    (r->ours == NULL || evbuffer_get_length(
			    bufferevent_get_input(r->ours)) == 0);
		if (done) {
			int rc = libssh2_channel_send_eof(r->ch);

			if (rc == 0 || (rc < 0 && !session_fatal(rc) &&
			    rc != LIBSSH2_ERROR_EAGAIN)) {
				r->eof_sent = 1;
				progress = 1;
			} else if (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN) {
				chan_error(c, r, rc, "eof");
				return 1;
			}
		}
	}

	/* EOF to the caller once everything read was handed over. */
	if (r->remote_eof && r->ours != NULL && !r->eof_delivered &&
	    !r->user_closed) {
		if (bufferevent_pair_get_partner(r->ours) != NULL)
			bufferevent_flush(r->ours, EV_WRITE, BEV_FINISHED);
		r->eof_delivered = 1;
		progress = 1;
	}

	/* Done both ways, or the caller let go: close. */
	if ((r->remote_eof && r->eof_sent) ||
	    (r->user_closed && r->eof_sent)) {
		begin_close(c, r, r->kind != RQ_STREAM && r->remote_eof &&
		    !r->user_closed);
		progress = 1;
	}
	return progress;
}

/* Close r's channel: our EOF, the remote's close, free.  1 on progress. */
static int
pump_close(struct conn *c, struct conn_req *r)
{
	int rc;

	if (!r->eof_sent) {
		rc = libssh2_channel_send_eof(r->ch);
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return 0;
		if (rc < 0 && session_fatal(rc)) {
			chan_error(c, r, rc, "eof");
			return 1;
		}
		r->eof_sent = 1;
	}
	if (r->wait_close) {
		/* The exit status comes before the remote's close. */
		rc = libssh2_channel_wait_closed(r->ch);
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return 0;
		if (rc < 0 && session_fatal(rc)) {
			chan_error(c, r, rc, "close");
			return 1;
		}
		r->wait_close = 0;
	}
	rc = libssh2_channel_close(r->ch);
	if (rc == LIBSSH2_ERROR_EAGAIN)
		return 0;
	if (rc < 0 && session_fatal(rc)) {
		chan_error(c, r, rc, "close");
		return 1;
	}
	if (r->kind != RQ_STREAM) {
		char *sig = NULL;
		size_t siglen = 0;

		if (r->result == 0 && r->remote_eof && !r->status_unknown) {
			/* (libssh2 says 0 when no status came.) */
			r->exit_status = libssh2_channel_get_exit_status(r->ch);
			if (libssh2_channel_get_exit_signal(r->ch, &sig,
			    &siglen, NULL, NULL, NULL, NULL) == 0 &&
			    sig != NULL) {
				r->exit_signal = xstrndup(sig, siglen);
				r->exit_status = -1;
			}
			if (sig != NULL)
				libssh2_free(c->ssh, sig);
		} else {
			r->exit_status = -1;
		}
	}
	rc = libssh2_channel_free(r->ch);
	if (rc == LIBSSH2_ERROR_EAGAIN)
		return 0;	/* not expected once closed */
	req_done(c, r);
	return 1;
}

/* The channel-open in progress.  1 on progress. */
static int
pump_open(struct conn *c, struct conn_req *r)
{
	LIBSSH2_CHANNEL *ch;
	int rc;

	if (r->kind == RQ_STREAM)
		ch = libssh2_channel_open_ex(c->ssh, STREAMLOCAL,
		    sizeof(STREAMLOCAL) - 1, CONN_CHANNEL_WINDOW,
		    CONN_CHANNEL_PACKET, (const char *)r->openmsg,
		    (unsigned)r->openmsg_len);
	else
		ch = libssh2_channel_open_ex(c->ssh, "session",
		    sizeof("session") - 1, CONN_CHANNEL_WINDOW,
		    CONN_CHANNEL_PACKET, NULL, 0);
	if (ch == NULL) {
		rc = libssh2_session_last_errno(c->ssh);
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return 0;
		c->opening = NULL;
		if (session_fatal(rc)) {
			lost(c, "open channel");
			return 1;
		}
		c->stats.channels_failed++;
		req_finish(c, r, FL_ERR_IO, "open %s %s: %s",
		    r->kind == RQ_STREAM ? STREAMLOCAL : "session",
		    r->target, ssh_msg(c, "channel open failed"));
		return 1;
	}
	c->opening = NULL;
	r->ch = ch;
	c->stats.channels_opened++;
	c->stats.channels_active++;
	if (r->cancelled || r->result != 0) {
		/* Cancelled or timed out while the open was in flight. */
		if (r->kind == RQ_RUN && want_final(r)) {
			r->final_queued = 1;
			note_req(c, r, NOTE_FINAL);
		}
		begin_close(c, r, 0);
		return 1;
	}
	if (r->kind != RQ_STREAM) {
		r->step = RS_STARTING;
		return 1;
	}
	if (stream_attach(r) < 0) {
		req_finish(c, r, FL_ERR_NOMEM, "stream: out of memory");
		return 1;
	}
	r->step = RS_OPEN;
	r->committed = 1;
	note_req(c, r, NOTE_OPENED);
	return 1;
}

static int
pump_start(struct conn *c, struct conn_req *r)
{
	int rc;

	rc = libssh2_channel_process_startup(r->ch, "exec",
	    sizeof("exec") - 1, r->target, (unsigned)strlen(r->target));
	if (rc == LIBSSH2_ERROR_EAGAIN)
		return 0;
	if (rc < 0) {
		if (session_fatal(rc)) {
			lost(c, "exec");
			return 1;
		}
		c->stats.channels_failed++;
		req_finish(c, r, FL_ERR_IO, "exec %s: %s", r->target,
		    ssh_msg(c, "request denied"));
		return 1;
	}
	if (r->kind == RQ_EXEC_STREAM) {
		if (stream_attach(r) < 0) {
			req_finish(c, r, FL_ERR_NOMEM, "stream: out of memory");
			return 1;
		}
		r->committed = 1;
		note_req(c, r, NOTE_OPENED);
	}
	r->step = RS_OPEN;
	return 1;
}

static void
pump_up(struct conn *c)
{
	size_t budget = PUMP_BUDGET;
	struct conn_req *r, *next;
	int pass, progress = 0;

	for (pass = 0; pass < 64; pass++) {
		progress = 0;
		if (c->opening == NULL) {
			TAILQ_FOREACH(r, &c->reqs, link) {
				if (r->step == RS_QUEUED) {
					r->step = RS_OPENING;
					c->opening = r;
					break;
				}
			}
		}
		if (c->opening != NULL)
			progress |= pump_open(c, c->opening);
		if (c->phase != PH_UP)
			return;
		for (r = TAILQ_FIRST(&c->reqs); r != NULL; r = next) {
			next = TAILQ_NEXT(r, link);
			switch (r->step) {
			case RS_STARTING:
				progress |= pump_start(c, r);
				break;
			case RS_OPEN:
				/* A stream waits until the caller has it (and
				 * its callbacks): an EOF before would be lost. */
				if (!r->committed)
					progress |= pump_data(c, r, &budget);
				break;
			case RS_CLOSING:
				progress |= pump_close(c, r);
				break;
			default:
				break;
			}
			if (c->phase != PH_UP)
				return;
		}
		if (!progress || budget == 0)
			break;
	}
	if (progress) {
		/* Budget spent with work left: go on at the next loop turn. */
		event_active(c->pump_ev, EV_TIMEOUT, 1);
	}
}

/*
 * Drive the connection as far as it goes without waiting.  The only
 * waiting libssh2 does here is for input (see the top of the file):
 * libssh2_session_block_directions() says INBOUND and the socket's read
 * callback brings us back.
 */
static void
pump(struct conn *c)
{
	int rc;

	if (c->phase == PH_HANDSHAKE) {
		rc = libssh2_session_handshake(c->ssh,
		    bufferevent_getfd(c->sock));
		if (rc == LIBSSH2_ERROR_EAGAIN)
			return;
		if (rc < 0) {
			attempt_failed(c, CONN_FAIL_NET, FL_ERR_PROTO,
			    "ssh: handshake failed: %s",
			    ssh_msg(c, "error"));
			return;
		}
		if (check_host_key(c) < 0)
			return;
		c->phase = PH_AUTH;
	}
	if (c->phase == PH_AUTH) {
		if (!pump_auth(c))
			return;
	}
	if (c->phase == PH_UP)
		pump_up(c);
}

static void
pump_ev_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	conn_enter(c);
	pump(c);
	conn_leave(c);
}

/* Run pump() soon, from the loop. */
static void
schedule(struct conn *c)
{
	event_active(c->pump_ev, EV_TIMEOUT, 1);
}

static struct conn_req *
req_new(struct conn *c, enum req_kind kind, const char *target)
{
	struct conn_req *r;
	size_t n;

	if (c == NULL || c->doomed || target == NULL)
		return NULL;
	n = strlen(target);
	if (n == 0 || n > CONN_TARGET_MAX)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	r->c = c;
	r->kind = kind;
	r->step = RS_QUEUED;
	r->target = xstrdup(target);
	r->err_max = kind == RQ_RUN ? CONN_RUN_OUTPUT_MAX :
	    CONN_STREAM_STDERR_MAX;
	sbuf_init(&r->out);
	sbuf_init(&r->err);
	return r;
}

/* Queue a new request, or fail it at once (from the loop) if down. */
static void
req_submit(struct conn *c, struct conn_req *r)
{
	if (c->phase == PH_IDLE) {
		r->result = FL_ERR_CLOSED;
		r->exit_status = -1;
		r->errmsg = xasprintf("ssh %s: not connected%s%s", c->hostport,
		    c->error ? ": " : "", c->error ? c->error : "");
		req_done(c, r);
		return;
	}
	TAILQ_INSERT_TAIL(&c->reqs, r, link);
	r->listed = 1;
	schedule(c);
}

struct conn_req *
conn_open_stream(struct conn *c, const char *socket_path, conn_stream_cb cb,
    void *arg)
{
	struct conn_req *r = req_new(c, RQ_STREAM, socket_path);

	if (r == NULL)
		return NULL;
	r->stream_cb = cb;
	r->arg = arg;
	r->openmsg_len = conn_streamlocal_msg(socket_path, NULL, 0);
	r->openmsg = xmalloc(r->openmsg_len);
	conn_streamlocal_msg(socket_path, r->openmsg, r->openmsg_len);
	req_submit(c, r);
	return r;
}

struct conn_req *
conn_open_exec_stream(struct conn *c, const char *command, conn_stream_cb cb,
    conn_run_cb exit_cb, void *arg)
{
	struct conn_req *r = req_new(c, RQ_EXEC_STREAM, command);

	if (r == NULL)
		return NULL;
	r->stream_cb = cb;
	r->run_cb = exit_cb;
	r->arg = arg;
	req_submit(c, r);
	return r;
}

struct conn_req *
conn_run(struct conn *c, const char *command, const void *stdin_data,
    size_t stdin_len, int64_t timeout_ns, conn_run_cb cb, void *arg)
{
	struct conn_req *r = req_new(c, RQ_RUN, command);

	if (r == NULL)
		return NULL;
	r->run_cb = cb;
	r->arg = arg;
	if (stdin_data != NULL && stdin_len > 0) {
		r->stdin_data = xmalloc(stdin_len);
		memcpy(r->stdin_data, stdin_data, stdin_len);
		r->stdin_len = stdin_len;
	}
	if (timeout_ns > 0) {
		r->timer = evtimer_new(c->base, run_timeout_cb, r);
		arm(r->timer, timeout_ns);
	}
	req_submit(c, r);
	return r;
}

void
conn_req_cancel(struct conn_req *r)
{
	struct conn *c;

	if (r == NULL)
		return;
	c = r->c;
	r->cancelled = 1;
	r->stream_cb = NULL;
	r->run_cb = NULL;
	remove_notes(c, r);
	if (r->step == RS_DONE) {
		if (r->notes == 0 && !r->listed)
			req_free(r);
		return;
	}
	if (r->timer != NULL)
		evtimer_del(r->timer);
	if (r->step == RS_QUEUED) {
		req_done(c, r);		/* frees it: nobody waits */
		return;
	}
	if (r->committed) {
		/* Its stream was never handed over: close it. */
		r->committed = 0;
		r->user_closed = 1;
	}
	/* RS_OPENING finishes the open first (pump_open then closes);
	 * an open stream the caller holds goes on. */
	if (r->step == RS_STARTING || (r->step == RS_OPEN &&
	    (r->kind == RQ_RUN || r->user_closed)))
		begin_close(c, r, 0);
	schedule(c);
}

/* ------------------------------------------------------------------ */
/* The conn                                                            */

static void
wipe_credentials(struct conn *c)
{
	freezero(c->key, c->key_len);
	c->key = NULL;
	c->key_len = 0;
	freezero_str(c->password);
	c->password = NULL;
	free(c->user);
	c->user = NULL;
}

static int
take_credentials(struct conn *c, const struct conn_credentials *cr)
{
	if (cr == NULL || cr->username == NULL || *cr->username == '\0')
		return FL_ERR_INVAL;
	if ((cr->key == NULL || cr->key_len == 0) && cr->password == NULL)
		return FL_ERR_INVAL;
	wipe_credentials(c);
	c->user = xstrdup(cr->username);
	if (cr->key != NULL && cr->key_len > 0) {
		c->key = xmalloc(cr->key_len + 1);
		memcpy(c->key, cr->key, cr->key_len);
		c->key[cr->key_len] = '\0';
		c->key_len = cr->key_len;
	}
	if (cr->password != NULL)
		c->password = xstrdup(cr->password);
	c->expires_ns = cr->expires_ns;
	return 0;
}

static int
valid_fingerprint(const char *fp)
{
	size_t i, n = strlen(fp);

	if (n != 7 + 43 || strncmp(fp, "SHA256:", 7) != 0)
		return 0;
	for (i = 7; i < n; i++) {
		char ch = fp[i];

		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '+' || ch == '/'))
			return 0;
	}
	return 1;
}

struct conn *
conn_new(struct event_base *base, const struct conn_params *p,
    conn_state_cb cb, void *arg, int *err)
{
	struct conn *c;
	const char *addr;
	int rc;

	if (err != NULL)
		*err = FL_ERR_INVAL;
	if (base == NULL || p == NULL || p->instance_id == NULL ||
	    *p->instance_id == '\0')
		return NULL;
	if (p->pinned_fingerprint != NULL && *p->pinned_fingerprint != '\0' &&
	    !valid_fingerprint(p->pinned_fingerprint))
		return NULL;
	if (p->port < 0 || p->port > 65535)
		return NULL;
	addr = conn_pick_addr(p->internal_addr, p->external_addr,
	    p->use_external_addr);
	c = xcalloc(1, sizeof(*c));
	if (take_credentials(c, &p->cred) < 0) {
		free(c);
		return NULL;
	}
	rc = addr ? conn_parse_addr(addr, p->port ? p->port :
	    CONN_DEFAULT_PORT, &c->host, &c->port) : FL_ERR_PARSE;
	if (rc < 0) {
		wipe_credentials(c);
		free(c);
		if (err != NULL)
			*err = FL_ERR_PARSE;
		return NULL;
	}
	c->base = base;
	c->dns = p->dns;
	c->id = xstrdup(p->instance_id);
	c->hostport = strchr(c->host, ':') ?
	    xasprintf("[%s]:%d", c->host, c->port) :
	    xasprintf("%s:%d", c->host, c->port);
	if (p->pinned_fingerprint != NULL)
		snprintf(c->fp, sizeof(c->fp), "%s", p->pinned_fingerprint);
	c->keepalive_ns = p->keepalive_ns ? p->keepalive_ns :
	    CONN_DEFAULT_KEEPALIVE_NS;
	c->timeout_ns = p->timeout_ns > 0 ? p->timeout_ns :
	    CONN_DEFAULT_TIMEOUT_NS;
	c->attempt_timeout_ns = p->attempt_timeout_ns > 0 ?
	    p->attempt_timeout_ns : CONN_DEFAULT_ATTEMPT_TIMEOUT_NS;
	c->max_attempts = p->max_attempts > 0 ? p->max_attempts :
	    CONN_DEFAULT_MAX_ATTEMPTS;
	c->max_auth_failures = p->max_auth_failures > 0 ?
	    p->max_auth_failures : CONN_DEFAULT_MAX_AUTH_FAILURES;
	c->state_cb = cb;
	c->arg = arg;
	TAILQ_INIT(&c->reqs);
	TAILQ_INIT(&c->notes);
	c->pump_ev = event_new(base, -1, 0, pump_ev_cb, c);
	c->retry_ev = evtimer_new(base, retry_cb, c);
	c->attempt_ev = evtimer_new(base, attempt_timeout_cb, c);
	c->deadline_ev = evtimer_new(base, deadline_cb, c);
	c->keepalive_ev = evtimer_new(base, keepalive_cb, c);
	if (!c->pump_ev || !c->retry_ev || !c->attempt_ev ||
	    !c->deadline_ev || !c->keepalive_ev) {
		destroy(c);
		if (err != NULL)
			*err = FL_ERR_NOMEM;
		return NULL;
	}
	/* Started from the loop like everything else, so that even a
	 * failure at once is reported by a callback, not during conn_new. */
	c->phase = PH_BACKOFF;
	c->attempts = 0;
	c->auth_failures = 0;
	arm(c->deadline_ev, c->timeout_ns);
	arm(c->retry_ev, 0);
	if (err != NULL)
		*err = 0;
	return c;
}

static void
destroy(struct conn *c)
{
	struct conn_req *r;
	struct note *n;

	/* Undelivered notes go; a request that only waited for its note
	 * goes with it (a stream never handed over is freed unseen). */
	while ((n = TAILQ_FIRST(&c->notes)) != NULL) {
		TAILQ_REMOVE(&c->notes, n, link);
		r = n->req;
		if (r != NULL) {
			r->notes--;
			if (n->kind == NOTE_OPENED)
				r->committed = 0;
			if (r->notes == 0 && !r->listed)
				req_free(r);
		}
		free(n->msg);
		free(n);
	}
	/* Live requests: their streams get EOF; their channels go with the
	 * session below. */
	while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
		TAILQ_REMOVE(&c->reqs, r, link);
		r->listed = 0;
		r->ch = NULL;
		req_free(r);
	}
	c->opening = NULL;
	teardown_transport(c, 1);
	if (c->own_dns != NULL)
		evdns_base_free(c->own_dns, 1);
	if (c->pump_ev)
		event_free(c->pump_ev);
	if (c->retry_ev)
		event_free(c->retry_ev);
	if (c->attempt_ev)
		event_free(c->attempt_ev);
	if (c->deadline_ev)
		event_free(c->deadline_ev);
	if (c->keepalive_ev)
		event_free(c->keepalive_ev);
	wipe_credentials(c);
	free(c->id);
	free(c->host);
	free(c->hostport);
	free(c->error);
	free(c);
}

void
conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	if (c->depth > 0) {
		c->doomed = 1;	/* conn_leave() destroys it */
		return;
	}
	destroy(c);
}

int
conn_set_credentials(struct conn *c, const struct conn_credentials *cr)
{
	return take_credentials(c, cr);
}

int
conn_reconnect(struct conn *c)
{
	if (c == NULL || c->doomed || c->phase != PH_IDLE)
		return FL_ERR_INVAL;
	free(c->error);
	c->error = NULL;
	c->phase = PH_BACKOFF;
	c->attempts = 0;
	c->auth_failures = 0;
	c->failure = CONN_FAIL_NONE;
	arm(c->deadline_ev, c->timeout_ns);
	arm(c->retry_ev, 0);
	return 0;
}

enum conn_state
conn_state(const struct conn *c)
{
	switch (c->phase) {
	case PH_UP:
		return CONN_UP;
	case PH_IDLE:
		return CONN_DOWN;
	default:
		return CONN_CONNECTING;
	}
}

enum conn_failure
conn_failure(const struct conn *c)
{
	return c->failure;
}

const char *
conn_error(const struct conn *c)
{
	return c->error ? c->error : "";
}

const char *
conn_host_key_fingerprint(const struct conn *c)
{
	return c->fp[0] ? c->fp : NULL;
}

const char *
conn_address(const struct conn *c)
{
	return c->hostport;
}

void
conn_get_stats(const struct conn *c, struct conn_stats *st)
{
	*st = c->stats;
}

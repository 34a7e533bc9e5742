/*
 * A strict, incremental HTTP/1.1 response parser and a request writer, for
 * the Docker Engine API client (docker.c).  Pure: no sockets, no clock, no
 * allocation beyond the response head, so it can be fuzzed and unit-tested
 * on byte strings.
 *
 * The peer is a Docker daemon reached through an SSH tunnel on a cloud
 * instance we do not fully trust, so everything it sends is checked: the
 * head (status line and header fields) is bounded (64 KiB by default) and
 * at most HTTP1_MAX_HEADERS fields; Content-Length and chunk sizes are
 * parsed with overflow checks; chunk-size lines (with their extensions)
 * are bounded; malformed input is an error for that connection, never a
 * crash.  Bodies are never buffered here: they are handed out as pointers
 * into the caller's input, so their size limits are the caller's.
 *
 * Usage: feed bytes as they arrive; each call consumes some of them and
 * reports at most one event:
 *
 *   HTTP1_EV_NONE     everything given was consumed, nothing to report:
 *                     feed more input when it arrives
 *   HTTP1_EV_HEAD     the final response head is complete: status,
 *                     headers and framing are readable in the struct
 *   HTTP1_EV_BODY     ev.data/ev.len: the next piece of the body (a
 *                     pointer into the caller's buffer, valid as long as
 *                     that buffer is)
 *   HTTP1_EV_DONE     the response is complete; bytes after it belong to
 *                     the next response (keep-alive) or are an error
 *   HTTP1_EV_UPGRADE  "101 Switching Protocols": the connection now
 *                     carries another protocol; the bytes after the head
 *                     are that protocol's (Docker's hijacked attach)
 *
 * Call http1_resp_feed() in a loop until it returns HTTP1_EV_NONE (or DONE
 * or UPGRADE); it may report an event without consuming input (DONE right
 * after the HEAD of a response without body), so call it once more even
 * when no input is left.  Interim 1xx responses (100 Continue) are skipped.
 * At EOF call http1_resp_eof(): a body delimited by the connection's close
 * completes there, anything else is a truncated response.
 *
 * Strictness: HTTP/1.0 and 1.1 only; lines end in CRLF (a bare LF is
 * accepted, as RFC 9112 allows, a bare CR is not); no obsolete line
 * folding; no white space before a field's colon; no control characters in
 * field values; Transfer-Encoding must be exactly "chunked" and never
 * comes with Content-Length; several Content-Length values must agree.
 */
#ifndef FL_HTTP1_H
#define FL_HTTP1_H

#include <stddef.h>
#include <stdint.h>

struct sbuf;

#define HTTP1_DEFAULT_MAX_HEAD	(64 * 1024)
#define HTTP1_MAX_HEADERS	128
/* A chunk-size line with its extensions, CRLF included. */
#define HTTP1_MAX_CHUNK_LINE	4096
/* Interim (1xx) responses skipped before the final one. */
#define HTTP1_MAX_INTERIM	16
/* Largest Content-Length or chunk size accepted (the caller caps bodies). */
#define HTTP1_MAX_LENGTH	((uint64_t)1 << 62)

/* Flags for http1_resp_init(). */
#define HTTP1_HEAD_REQUEST	0x1	/* the request was HEAD: no body */

enum http1_ev {
	HTTP1_EV_NONE = 0,
	HTTP1_EV_HEAD,
	HTTP1_EV_BODY,
	HTTP1_EV_DONE,
	HTTP1_EV_UPGRADE
};

struct http1_event {
	enum http1_ev type;
	const char *data;	/* HTTP1_EV_BODY only */
	size_t len;
};

/* How the body ends. */
enum http1_framing {
	HTTP1_FRAMING_NONE = 0,	/* no body (HEAD, 204, 304, length 0) */
	HTTP1_FRAMING_LENGTH,	/* Content-Length bytes */
	HTTP1_FRAMING_CHUNKED,	/* chunked transfer coding */
	HTTP1_FRAMING_CLOSE	/* until the connection closes */
};

struct http1_header {
	const char *name;
	const char *value;	/* optional white space trimmed */
};

struct http1_resp {
	/* Readable once HTTP1_EV_HEAD (or UPGRADE) was reported. */
	int status;			/* 100..999 */
	int minor;			/* HTTP/1.<minor> */
	const char *reason;		/* "" when absent */
	struct http1_header *headers;	/* in arrival order */
	size_t nheaders;
	enum http1_framing framing;
	uint64_t content_length;	/* HTTP1_FRAMING_LENGTH */
	int keepalive;			/* the connection can be reused */

	/* Private. */
	int state_;
	int flags_;
	int interim_;
	size_t max_head_;
	char *head_;
	size_t headlen_, headcap_, linestart_;
	uint64_t left_;
	char line_[HTTP1_MAX_CHUNK_LINE];
	size_t linelen_;
};

/*
 * Prepare r for one response.  max_head bounds the status line plus the
 * header fields (and, separately, the trailer fields); 0 means
 * HTTP1_DEFAULT_MAX_HEAD.  flags: HTTP1_HEAD_REQUEST or 0.
 */
void http1_resp_init(struct http1_resp *r, size_t max_head, int flags);
/* Free what r holds.  The header pointers become invalid. */
void http1_resp_release(struct http1_resp *r);

/*
 * Consume up to len bytes of buf; *used gets how many were consumed and
 * *ev the event (see above).  Returns 0, or a negative FL_ERR_* code on
 * malformed input (FL_ERR_PROTO), an oversize head or chunk line
 * (FL_ERR_TOOBIG), or a call after DONE/UPGRADE/error (FL_ERR_INVAL).
 * After an error the response (and its connection) is unusable.
 */
int http1_resp_feed(struct http1_resp *r, const char *buf, size_t len,
    size_t *used, struct http1_event *ev);

/*
 * The peer closed the connection.  Returns 0 and sets *ev to
 * HTTP1_EV_DONE when that ends a body delimited by close, or
 * FL_ERR_CLOSED when the response was incomplete (no head yet, or a body
 * that is shorter than announced), or FL_ERR_INVAL when already done.
 */
int http1_resp_eof(struct http1_resp *r, struct http1_event *ev);

/* 1 when the head is complete (HEAD was reported). */
int http1_resp_have_head(const struct http1_resp *r);

/* The first header field called name (case-insensitive), or NULL. */
const char *http1_resp_header(const struct http1_resp *r, const char *name);

/*
 * 1 if the comma-separated list in every field called name contains token
 * (case-insensitive), as in "Connection: keep-alive, Upgrade".
 */
int http1_resp_has_token(const struct http1_resp *r, const char *name,
    const char *token);

/*
 * Append a request head to out: "METHOD TARGET HTTP/1.1", "Host: host",
 * the given fields, then "Content-Length: N" when content_length >= 0, and
 * the empty line.  The body (if any) is the caller's to send.  method must
 * be a token, target an origin-form path ("/..." without spaces or
 * control characters), names tokens, values free of CR, LF and NUL.
 * Returns 0, or FL_ERR_INVAL with out unchanged.
 */
int http1_write_request(struct sbuf *out, const char *method,
    const char *target, const char *host, const struct http1_header *hdrs,
    size_t nhdrs, int64_t content_length);

#endif

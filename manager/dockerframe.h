/*
 * Docker's multiplexed stream framing, taken apart incrementally.
 *
 * A container without a TTY has its stdout and stderr sent over one
 * connection (attach, logs, exec) as frames:
 *
 *   [stream: 1 byte][0 0 0][size: uint32 big-endian][size bytes of payload]
 *
 * stream 0 is stdin, 1 stdout, 2 stderr, and 3 "system error" (the daemon's
 * own error text, e.g. when it cannot read the container's log).  Frames
 * arrive split across arbitrary read boundaries; payload is handed out as
 * soon as it arrives, as pointers into the caller's input, so nothing is
 * buffered and memory stays bounded.  A frame header with another stream
 * byte, non-zero padding or a size over the maximum is an error (the
 * stream is not what it claims to be).  Pure: no I/O.
 */
#ifndef FL_DOCKERFRAME_H
#define FL_DOCKERFRAME_H

#include <stddef.h>
#include <stdint.h>

#define DOCKERFRAME_DEFAULT_MAX	(16u * 1024 * 1024)

enum dockerframe_stream {
	DOCKERFRAME_STDIN = 0,
	DOCKERFRAME_STDOUT = 1,
	DOCKERFRAME_STDERR = 2,
	DOCKERFRAME_SYSERR = 3
};

struct dockerframe {
	uint32_t max;		/* largest frame accepted */
	uint8_t hdr[8];
	size_t hdrlen;		/* header bytes collected */
	int stream;		/* current frame's stream */
	uint32_t left;		/* payload bytes still due */
	int failed;
};

/* Prepare d; max 0 means DOCKERFRAME_DEFAULT_MAX. */
void dockerframe_init(struct dockerframe *d, uint32_t max);

/*
 * Consume up to len bytes of buf.  Returns 1 with *stream, *data and *dlen
 * set to the next piece of payload (data points into buf; a frame may come
 * in several pieces), 0 when all of buf was consumed without payload to
 * report, or FL_ERR_PROTO / FL_ERR_TOOBIG for a bad header (after which
 * every call fails).  *used gets the bytes consumed; call again with the
 * rest until it returns 0.
 */
int dockerframe_feed(struct dockerframe *d, const void *buf, size_t len,
    size_t *used, int *stream, const char **data, size_t *dlen);

/*
 * The stream ended: 0 at a frame boundary, FL_ERR_CLOSED inside a frame
 * (truncated), or the earlier error.
 */
int dockerframe_end(const struct dockerframe *d);

#endif

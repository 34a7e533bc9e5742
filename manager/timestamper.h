/*
 * The job log's timestamper (FF_TIMESTAMPS, on by default as in GitLab
 * Runner 18.7+): the last layer before the trace buffer, after masking.
 * Every line of a stream gets the header
 *
 *   YYYY-MM-DDTHH:MM:SS.uuuuuuZ <stream 2 hex><O|E><' '|'+'>
 *
 * (UTC, microseconds; stream 00 for the runner's own messages, 01 for the
 * job's output; O stdout, E stderr; '+' continues the previous line).  A
 * line ends at '\n'.  A write with '\r' but no '\n' (a progress bar) is
 * emitted at once with a '\n' added, and the next line is a continuation;
 * so is a line that outgrows TSTAMP_BUF_MAX.  Otherwise a partial line
 * waits for more, and tstamp_close() ends it.  GitLab's format
 * (common/buildlogger/internal/timestamper), so that GitLab shows the times.
 *
 * Pure: the caller passes the clock and collects the output in an sbuf.
 */
#ifndef FL_TIMESTAMPER_H
#define FL_TIMESTAMPER_H

#include <stddef.h>
#include <stdint.h>

#include "xmalloc.h"

#define TSTAMP_BUF_MAX		(8 * 1024)
/* The header's length: 28 for the time and its space, 4 for the rest. */
#define TSTAMP_HEADER_LEN	32

enum tstamp_type { TSTAMP_STDOUT = 'O', TSTAMP_STDERR = 'E' };

/* One stream's state (embedded: tstamp_init / tstamp_release). */
struct tstamp {
	uint8_t stream;
	char type;
	char flag;		/* ' ' or '+' for the next header */
	struct sbuf buf;	/* a partial line, header included */
};

void tstamp_init(struct tstamp *t, uint8_t stream, enum tstamp_type type);
void tstamp_release(struct tstamp *t);

/* Append len bytes of (masked) log to out, with headers; now_us is the
 * wall clock in microseconds since the epoch. */
void tstamp_write(struct tstamp *t, const void *data, size_t len,
    int64_t now_us, struct sbuf *out);

/* End a partial line, if any (with a '\n'). */
void tstamp_close(struct tstamp *t, struct sbuf *out);

/* The header for now_us into buf (TSTAMP_HEADER_LEN bytes, no NUL;
 * flag ' ' or '+'). */
void tstamp_header(char *buf, int64_t now_us, uint8_t stream, char type,
    char flag);

/* The wall clock in microseconds. */
int64_t tstamp_now_us(void);

#endif

/*
 * What a plugin writes on stderr (and on stdout after the handshake),
 * turned into log entries: the pure parts of the plugin host's output
 * handling, tested without processes.
 *
 *  - hclog_linebuf: cuts a byte stream into lines, at most `max` bytes
 *    each (a longer line is delivered in pieces), so a plugin cannot make
 *    the manager buffer without bound.
 *  - hclog_parse: one line -> level, message, fields.  A line that is a
 *    JSON object is HashiCorp hclog's JSON (go-plugin's format):
 *    "@level", "@message" and "@timestamp" are taken out, every other key
 *    becomes a field ("@module" as "module", "@caller" as "caller", any
 *    other leading '@' dropped); non-string values are written as compact
 *    JSON.  Any other line is plain text: a "[TRACE]" "[DEBUG]" "[INFO]"
 *    "[WARN]" "[ERROR]" prefix selects the level (and is removed), else
 *    the level is info.  As go-plugin does, a line starting "panic: " or
 *    "fatal error: " is an error and switches the stream into panic mode,
 *    in which every later untagged text line is an error too (a Go crash
 *    dump).
 *  - hclog_ratelimit: a token bucket (rate lines a second, burst), telling
 *    how many lines were dropped before the next one let through.
 */
#ifndef FL_HCLOG_H
#define FL_HCLOG_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define HCLOG_LINE_MAX		65536	/* longer lines come in pieces */
#define HCLOG_MAX_FIELDS	32	/* further JSON keys are dropped */
#define HCLOG_KEY_MAX		64	/* longer keys are cut */

/* ----------------------------------------------------------- lines */

/* Called with each line (no '\n', no trailing '\r'); line is not
 * NUL-terminated and valid during the call. */
typedef void (*hclog_line_fn)(void *arg, const char *line, size_t len);

struct hclog_linebuf {
	char *buf;
	size_t len;
	size_t max;
};

/* max: the longest line delivered whole (0: HCLOG_LINE_MAX). */
void hclog_linebuf_init(struct hclog_linebuf *lb, size_t max);
void hclog_linebuf_release(struct hclog_linebuf *lb);
/* Feed bytes; fn runs for each complete line and each max-sized piece. */
void hclog_linebuf_feed(struct hclog_linebuf *lb, const void *data, size_t n,
    hclog_line_fn fn, void *arg);
/* End of stream: deliver a last unterminated line, if any. */
void hclog_linebuf_flush(struct hclog_linebuf *lb, hclog_line_fn fn,
    void *arg);

/* ----------------------------------------------------------- parsing */

struct hclog_state {
	int panic;	/* a Go panic was seen: untagged text is an error */
};

struct hclog_entry {
	enum log_level level;
	char *message;		/* never NULL */
	char *timestamp;	/* "@timestamp" as written, or NULL */
	struct log_field *fields;	/* keys and values owned */
	size_t nfields;
	int json;		/* the line was hclog JSON */
};

/*
 * Parse one line (without its newline).  Never fails: what is not hclog
 * JSON is text.  Release out with hclog_entry_release().  st may be NULL
 * (no panic mode).
 */
void hclog_parse(struct hclog_state *st, const char *line, size_t len,
    struct hclog_entry *out);
void hclog_entry_release(struct hclog_entry *e);

/* hclog's level names ("trace" is debug; unknown: -1). */
int hclog_level_parse(const char *s, enum log_level *out);

/* ----------------------------------------------------------- rate */

struct hclog_ratelimit {
	double tokens;
	double rate;		/* tokens a second */
	double burst;		/* bucket size */
	int64_t last_ns;	/* time of the last refill; 0: never */
	uint64_t dropped;	/* lines refused since the last one taken */
};

void hclog_ratelimit_init(struct hclog_ratelimit *rl, double rate,
    double burst);
/*
 * May a line go out at now_ns (a monotonic clock)?  1: yes, and
 * *dropped_before is the number of lines refused since the previous one
 * let through (report them first); 0: no (counted as dropped).
 */
int hclog_ratelimit_take(struct hclog_ratelimit *rl, int64_t now_ns,
    uint64_t *dropped_before);

#endif

/*
 * Logging in GitLab Runner's levels and formats (see log.h).
 *
 * The manager's operators already read, grep and ship GitLab Runner's
 * logs, so flotilla writes the same three shapes: logrus's TextFormatter
 * and JSONFormatter, and the runner's own "runner" formatter.  Plugins
 * write a fourth, hclog's JSON, which is what go-plugin hosts (and our
 * manager) parse on a plugin's stderr.  Everything a
 * line needs is built in memory and handed to one write(2) under a mutex,
 * so lines from the event loop and from gRPC threads never interleave.
 * Registered secrets are masked on the raw strings before any escaping,
 * and one line never exceeds LOG_LINE_MAX bytes: the longest parts are cut
 * first and the cut is marked.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "xmalloc.h"

#define MASK_TEXT "[MASKED]"
#define TRUNC_MARK "...[truncated]"
/* The runner formatter pads the message to 50 columns minus the prefix. */
#define RUNNER_WIDTH 50

/* ANSI sequences of GitLab Runner's helpers/ansi_colors.go. */
#define ANSI_BOLD_RED "\033[31;1m"
#define ANSI_BOLD_WHITE "\033[37;1m"
#define ANSI_YELLOW "\033[0;33m"
#define ANSI_RESET "\033[0;m"

/*
 * Settings and secrets.  log_level is also read without the lock (a
 * relaxed atomic load) so that filtered lines cost one comparison.
 */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_level = LOG_INFO;
static enum log_format log_format = LOG_FORMAT_RUNNER;
static int log_fd = STDERR_FILENO;
static int log_color = -1;	/* -1: not yet asked isatty() */
static void (*log_clock)(struct timespec *ts);
static char **log_secrets;
static size_t log_nsecrets;
static char *log_module;	/* hclog's @module; NULL for none */

static const char *const level_names[] = {
	[LOG_PANIC] = "panic",
	[LOG_FATAL] = "fatal",
	[LOG_ERROR] = "error",
	[LOG_WARN] = "warning",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

static const char *const format_names[] = {
	[LOG_FORMAT_RUNNER] = "runner",
	[LOG_FORMAT_TEXT] = "text",
	[LOG_FORMAT_JSON] = "json",
	[LOG_FORMAT_HCLOG] = "hclog",
};

/* hclog's level names (it has no fatal or panic). */
static const char *const hclog_level_names[] = {
	[LOG_PANIC] = "error",
	[LOG_FATAL] = "error",
	[LOG_ERROR] = "error",
	[LOG_WARN] = "warn",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

/* Both JSON formats escape and assemble alike. */
static int
is_json(enum log_format f)
{
	return f == LOG_FORMAT_JSON || f == LOG_FORMAT_HCLOG;
}

int
log_level_parse(const char *s, enum log_level *out)
{
	size_t i;

	if (s == NULL)
		return FL_ERR_INVAL;
	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	/* logrus accepts both spellings, and "trace" which we lack. */
	if (strcasecmp(s, "warn") == 0) {
		*out = LOG_WARN;
		return 0;
	}
	if (strcasecmp(s, "trace") == 0) {
		*out = LOG_DEBUG;
		return 0;
	}
	return FL_ERR_INVAL;
}

const char *
log_level_name(enum log_level lvl)
{
	if ((unsigned)lvl > LOG_DEBUG)
		return "unknown";
	return level_names[lvl];
}

int
log_format_parse(const char *s, enum log_format *out)
{
	size_t i;

	if (s == NULL)
		return FL_ERR_INVAL;
	/* hclog is the plugins' format, not one a person chooses. */
	for (i = 0; i <= LOG_FORMAT_JSON; i++) {
		if (strcmp(s, format_names[i]) == 0) {
			*out = (enum log_format)i;
			return 0;
		}
	}
	return FL_ERR_INVAL;
}

const char *
log_format_name(enum log_format fmt)
{
	if ((unsigned)fmt > LOG_FORMAT_HCLOG)
		return "unknown";
	return format_names[fmt];
}

void
log_set_level(enum log_level lvl)
{
	if ((unsigned)lvl > LOG_DEBUG)
		lvl = LOG_DEBUG;
	__atomic_store_n(&log_level, (int)lvl, __ATOMIC_RELAXED);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)__atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

void
log_set_format(enum log_format fmt)
{
	if ((unsigned)fmt > LOG_FORMAT_HCLOG)
		fmt = LOG_FORMAT_RUNNER;
	pthread_mutex_lock(&log_lock);
	log_format = fmt;
	pthread_mutex_unlock(&log_lock);
}

void
log_set_module(const char *name)
{
	char *copy = name != NULL && name[0] != '\0' ? xstrdup(name) : NULL;

	pthread_mutex_lock(&log_lock);
	free(log_module);
	log_module = copy;
	pthread_mutex_unlock(&log_lock);
}

void
log_set_fd(int fd)
{
	pthread_mutex_lock(&log_lock);
	log_fd = fd;
	log_color = -1;
	pthread_mutex_unlock(&log_lock);
}

void
log_set_clock(void (*now)(struct timespec *ts))
{
	pthread_mutex_lock(&log_lock);
	log_clock = now;
	pthread_mutex_unlock(&log_lock);
}

void
log_add_secret(const char *s)
{
	size_t i;

	if (s == NULL || strlen(s) < LOG_SECRET_MIN)
		return;
	pthread_mutex_lock(&log_lock);
	for (i = 0; i < log_nsecrets; i++) {
		if (strcmp(log_secrets[i], s) == 0)
			goto out;
	}
	log_secrets = xreallocarray(log_secrets, log_nsecrets + 1,
	    sizeof(*log_secrets));
	log_secrets[log_nsecrets++] = xstrdup(s);
out:
	pthread_mutex_unlock(&log_lock);
}

void
log_remove_secret(const char *s)
{
	size_t i;

	if (s == NULL)
		return;
	pthread_mutex_lock(&log_lock);
	for (i = 0; i < log_nsecrets; i++) {
		if (strcmp(log_secrets[i], s) == 0) {
			freezero_str(log_secrets[i]);
			log_secrets[i] = log_secrets[--log_nsecrets];
			break;
		}
	}
	pthread_mutex_unlock(&log_lock);
}

void
log_clear_secrets(void)
{
	size_t i;

	pthread_mutex_lock(&log_lock);
	for (i = 0; i < log_nsecrets; i++)
		freezero_str(log_secrets[i]);
	free(log_secrets);
	log_secrets = NULL;
	log_nsecrets = 0;
	pthread_mutex_unlock(&log_lock);
}

void
log_release(void)
{
	log_clear_secrets();
	log_set_module(NULL);
}

/*
 * GitLab Runner's helpers.ShortenToken: strip the runner authentication
 * token prefix ("glrt-", optionally followed by a partition "t1_".."t3_",
 * or the partition alone, or "glrtr-"), then a job token prefix "glcbt-",
 * then a registration token prefix "GR" plus 7 hex digits, in that order;
 * keep what is left up to 8 characters (upstream now keeps 9; out[] is 9).
 */
static int
is_partition(const char *p)
{
	return p[0] == 't' && p[1] >= '1' && p[1] <= '3' && p[2] == '_';
}

static int
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	    (c >= 'A' && c <= 'F');
}

char *
log_short_token(const char *token, char out[static 9])
{
	const char *p = token != NULL ? token : "";
	size_t n;
	int i;

	if (strncmp(p, "glrt-", 5) == 0) {
		p += 5;
		if (is_partition(p))
			p += 3;
	} else if (is_partition(p)) {
		p += 3;
	} else if (strncmp(p, "glrtr-", 6) == 0) {
		p += 6;
	}
	if (strncmp(p, "glcbt-", 6) == 0)
		p += 6;
	if (p[0] == 'G' && p[1] == 'R') {
		for (i = 2; i < 9 && is_hex(p[i]); i++)
			;
		if (i == 9)
			p += 9;
	}
	n = strnlen(p, 8);
	memcpy(out, p, n);
	out[n] = '\0';
	return out;
}

/*
 * Masking.  Every occurrence of every secret is marked in a coverage map
 * (overlapping occurrences included), then each maximal run of covered
 * bytes is written as one "[MASKED]".  So overlapping or adjacent secrets
 * leak no fragment, whatever order they were registered in.  Caller holds
 * log_lock.
 */
static void
mask_into(struct sbuf *sb, const char *s, size_t n)
{
	unsigned char *cov = NULL;
	size_t i, j, slen, done;
	const char *hit, *p;

	for (i = 0; i < log_nsecrets; i++) {
		slen = strlen(log_secrets[i]);
		done = 0;	/* cov[0..done) already set for this secret */
		p = s;
		while ((size_t)(s + n - p) >= slen &&
		    (hit = memmem(p, (size_t)(s + n - p), log_secrets[i],
		    slen)) != NULL) {
			size_t at = (size_t)(hit - s);
			size_t from = at > done ? at : done;

			if (cov == NULL)
				cov = xcalloc(n, 1);
			memset(cov + from, 1, at + slen - from);
			done = at + slen;
			p = hit + 1;
		}
	}
	if (cov == NULL) {
		sbuf_add(sb, s, n);
		return;
	}
	for (i = 0; i < n; i = j) {
		if (cov[i]) {
			for (j = i; j < n && cov[j]; j++)
				;
			sbuf_adds(sb, MASK_TEXT);
		} else {
			for (j = i; j < n && !cov[j]; j++)
				;
			sbuf_add(sb, s + i, j - i);
		}
	}
	free(cov);
}

/*
 * Strict UTF-8 decoding as Go's utf8.DecodeRune does it: no overlong
 * forms, no surrogates, nothing above U+10FFFF.  Returns the length of the
 * sequence at s and stores the code point, or returns 1 and stores
 * UINT32_MAX for a byte that does not start a valid sequence.
 */
static size_t
utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c;
	size_t len, i;

	*cp = UINT32_MAX;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		c = s[0] & 0x07;
	} else {
		return 1;
	}
	if (n < len)
		return 1;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 1;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 1;
	*cp = c;
	return len;
}

/*
 * Approximation of Go's !unicode.IsPrint for non-ASCII code points, the
 * ones that make strconv.Quote (logrus text values) write \u escapes: C1
 * controls, spaces other than U+0020, invisible format characters
 * (including the bidirectional overrides) and private use.  Go also
 * escapes unassigned code points; we print those as they are.
 */
static int
nonprint(uint32_t c)
{
	return (c >= 0x80 && c <= 0xa0) || c == 0xad || c == 0x61c ||
	    c == 0x180e || c == 0x1680 || (c >= 0x2000 && c <= 0x200f) ||
	    (c >= 0x2028 && c <= 0x202f) || (c >= 0x205f && c <= 0x206f) ||
	    c == 0x3000 || (c >= 0xe000 && c <= 0xf8ff) || c == 0xfeff ||
	    (c >= 0xfff9 && c <= 0xfffb) || c == 0xfffe || c == 0xffff ||
	    c >= 0xf0000;
}

/*
 * The escaped form of one unit (a code point or an invalid byte) at s,
 * written to out (at least 11 bytes).  Returns the length written and
 * sets *used to the input bytes consumed.
 *   runner: control characters but tab, invalid bytes and non-printable
 *           code points escaped Go-style, so one call stays one line and
 *           peer text cannot drive the terminal; quotes and backslashes
 *           as they are.
 *   text:   the inside of Go's %q (logrus's quoting).
 *   json:   Go's encoding/json with HTML escaping, as logrus's
 *           JSONFormatter; invalid bytes become \ufffd.
 */
static size_t
esc_unit(enum log_format f, const char *s, size_t n, char *out, size_t *used)
{
	uint32_t c;
	size_t len = utf8_decode((const unsigned char *)s, n, &c);
	unsigned char b = (unsigned char)s[0];
	const char *shortesc = NULL;
	int r;

	*used = len;
	if (is_json(f)) {
		if (c == UINT32_MAX)
			return (size_t)snprintf(out, 11, "\\ufffd");
		switch (c) {
		case '"': shortesc = "\\\""; break;
		case '\\': shortesc = "\\\\"; break;
		case '\n': shortesc = "\\n"; break;
		case '\r': shortesc = "\\r"; break;
		case '\t': shortesc = "\\t"; break;
		default: break;
		}
		if (shortesc != NULL) {
			memcpy(out, shortesc, 2);
			return 2;
		}
		if (c < 0x20 || c == '<' || c == '>' || c == '&' ||
		    c == 0x2028 || c == 0x2029)
			return (size_t)snprintf(out, 11, "\\u%04x", (unsigned)c);
		memcpy(out, s, len);
		return len;
	}

	if (c == UINT32_MAX)
		return (size_t)snprintf(out, 11, "\\x%02x", b);
	if (f == LOG_FORMAT_TEXT && (c == '"' || c == '\\')) {
		out[0] = '\\';
		out[1] = (char)c;
		return 2;
	}
	switch (c) {
	case '\a': shortesc = "\\a"; break;
	case '\b': shortesc = "\\b"; break;
	case '\f': shortesc = "\\f"; break;
	case '\n': shortesc = "\\n"; break;
	case '\r': shortesc = "\\r"; break;
	case '\t': shortesc = f == LOG_FORMAT_TEXT ? "\\t" : NULL; break;
	case '\v': shortesc = "\\v"; break;
	default: break;
	}
	if (shortesc != NULL) {
		memcpy(out, shortesc, 2);
		return 2;
	}
	if ((c < 0x20 && c != '\t') || c == 0x7f)
		return (size_t)snprintf(out, 11, "\\x%02x", b);
	if (c >= 0x80 && nonprint(c)) {
		r = c < 0x10000 ? snprintf(out, 11, "\\u%04x", (unsigned)c) :
		    snprintf(out, 11, "\\U%08x", (unsigned)c);
		return (size_t)r;
	}
	memcpy(out, s, len);
	return len;
}

/* logrus's TextFormatter quotes a value with any byte outside this set. */
static int
text_needs_quote(const char *s, size_t n)
{
	size_t i;
	unsigned char c;

	if (n == 0)
		return 1;	/* logrus would print key=; we print key="" */
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '/' || c == '@' || c == '^' || c == '+'))
			return 1;
	}
	return 0;
}

/*
 * Append the escaped value s[0..n) in format f, quoted as the format
 * wants.  With limit SIZE_MAX the whole value is written; otherwise the
 * value is cut so that the result (quotes and TRUNC_MARK included) takes
 * at most limit bytes when limit allows the marker at all.
 */
static void
esc_value(struct sbuf *sb, enum log_format f, const char *s, size_t n,
    size_t limit)
{
	int cut = limit != SIZE_MAX;
	int quote = is_json(f) ||
	    (f == LOG_FORMAT_TEXT && (cut || text_needs_quote(s, n)));
	size_t start = sb->len, room, used, len, i;
	char unit[11];

	room = limit;
	if (cut) {
		size_t reserve = strlen(TRUNC_MARK) + (quote ? 2 : 0);

		room = limit > reserve ? limit - reserve : 0;
	}
	if (quote)
		sbuf_addch(sb, '"');
	for (i = 0; i < n; i += used) {
		len = esc_unit(f, s + i, n - i, unit, &used);
		if (cut && sb->len - start - (quote ? 1 : 0) + len > room)
			break;
		sbuf_add(sb, unit, len);
	}
	if (cut)
		sbuf_adds(sb, TRUNC_MARK);
	if (quote)
		sbuf_addch(sb, '"');
}

/* Keys are the caller's constants: JSON-escaped, else control-escaped. */
static void
esc_key(struct sbuf *sb, enum log_format f, const char *key)
{
	size_t n = strlen(key), i, used, len;
	char unit[11];

	for (i = 0; i < n; i += used) {
		len = esc_unit(is_json(f) ? f : LOG_FORMAT_RUNNER,
		    key + i, n - i, unit, &used);
		sbuf_add(sb, unit, len);
	}
}

/* RFC 3339 with nanoseconds as Go's time.RFC3339Nano: zeros trimmed. */
static void
format_time(char *buf, size_t size, const struct timespec *ts)
{
	struct tm tm;
	char frac[16] = "", zone[32] = "Z";
	long off, ns = ts->tv_nsec;
	int i;

	if (localtime_r(&ts->tv_sec, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	if (ns > 0 && ns < 1000000000L) {
		(void)snprintf(frac, sizeof(frac), ".%09ld", ns);
		for (i = 9; i > 0 && frac[i] == '0'; i--)
			frac[i] = '\0';
	}
	off = tm.tm_gmtoff / 60;
	if (off != 0)
		(void)snprintf(zone, sizeof(zone), "%c%02ld:%02ld",
		    off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
	if (snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d%s%s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, frac, zone) >= (int)size)
		buf[size - 1] = '\0';
}

/* hclog's "2006-01-02T15:04:05.000000Z07:00": always six digits. */
static void
format_time_hclog(char *buf, size_t size, const struct timespec *ts)
{
	struct tm tm;
	char zone[32] = "Z";
	long off;

	if (localtime_r(&ts->tv_sec, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	off = tm.tm_gmtoff / 60;
	if (off != 0)
		(void)snprintf(zone, sizeof(zone), "%c%02ld:%02ld",
		    off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
	if (snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld%s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (ts->tv_nsec % 1000000000L) / 1000,
	    zone) >= (int)size)
		buf[size - 1] = '\0';
}

/* Is key one of the fixed keys of format f (then a field is renamed)? */
static int
fixed_key(enum log_format f, const char *key)
{
	if (f == LOG_FORMAT_HCLOG)
		return strcmp(key, "@level") == 0 ||
		    strcmp(key, "@message") == 0 ||
		    strcmp(key, "@module") == 0 ||
		    strcmp(key, "@timestamp") == 0;
	if (f == LOG_FORMAT_RUNNER)
		return 0;
	return strcmp(key, "time") == 0 || strcmp(key, "level") == 0 ||
	    strcmp(key, "msg") == 0;
}

/*
 * One key/value of a line.  For text and json the fixed keys (time,
 * level, msg) are entries too; fields named like them are renamed
 * "fields.<key>" as logrus does.  esc holds the escaped value as written.
 */
struct entry {
	const char *key;	/* NULL for the runner format's message */
	int prefixed;		/* key written as "fields." + key */
	int fixed;		/* text format: written first, in order */
	size_t order;		/* tie-break: later duplicate keys win */
	int owned;		/* val is ours to free */
	const char *val;
	size_t vlen;
	struct sbuf esc;
};

static int
entry_keycmp(const struct entry *a, const struct entry *b)
{
	const char *ka = a->key, *kb = b->key;

	if (a->prefixed != b->prefixed) {
		/* Compare "fields.<x>" with a plain key byte-wise. */
		int r = a->prefixed ? strncmp("fields.", kb, 7) :
		    strncmp(ka, "fields.", 7);

		if (r != 0)
			return r;
		if (a->prefixed)
			kb += strnlen(kb, 7);
		else
			ka += strnlen(ka, 7);
	}
	return strcmp(ka, kb);
}

static int
entry_cmp(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	int r;

	if (a->fixed != b->fixed)
		return a->fixed ? -1 : 1;
	if (!a->fixed) {
		r = entry_keycmp(a, b);
		if (r != 0)
			return r;
	}
	return a->order < b->order ? -1 : a->order > b->order;
}

struct line {
	enum log_format fmt;
	enum log_level lvl;
	int color;
	struct entry *msg;	/* runner: the message; else inside ents */
	struct entry *ents;
	size_t nents;
};

/* Code points in s (for the runner's padding, as Go's %-*s counts). */
static size_t
count_runes(const char *s, size_t n)
{
	size_t i, r = 0;

	for (i = 0; i < n; i++)
		r += ((unsigned char)s[i] & 0xc0) != 0x80;
	return r;
}

static void
assemble(struct sbuf *out, const struct line *ln)
{
	size_t i, w, runes;
	const char *color = "", *reset = "", *prefix = "";

	sbuf_reset(out);
	if (ln->fmt == LOG_FORMAT_RUNNER) {
		switch (ln->lvl) {
		case LOG_DEBUG: color = ANSI_BOLD_WHITE; break;
		case LOG_INFO: break;
		case LOG_WARN: color = ANSI_YELLOW; prefix = "WARNING: "; break;
		case LOG_ERROR: color = ANSI_BOLD_RED; prefix = "ERROR: "; break;
		case LOG_FATAL: color = ANSI_BOLD_RED; prefix = "FATAL: "; break;
		case LOG_PANIC: color = ANSI_BOLD_RED; prefix = "PANIC: "; break;
		}
		if (ln->color)
			reset = ANSI_RESET;
		else
			color = "";
		sbuf_adds(out, color);
		sbuf_adds(out, prefix);
		sbuf_add(out, ln->msg->esc.buf, ln->msg->esc.len);
		w = RUNNER_WIDTH - strlen(prefix);
		runes = count_runes(ln->msg->esc.buf, ln->msg->esc.len);
		for (; runes < w; runes++)
			sbuf_addch(out, ' ');
		sbuf_adds(out, reset);
		sbuf_addch(out, ' ');
		for (i = 0; i < ln->nents; i++) {
			sbuf_addch(out, ' ');
			sbuf_adds(out, color);
			if (ln->ents[i].prefixed)
				sbuf_adds(out, "fields.");
			esc_key(out, ln->fmt, ln->ents[i].key);
			sbuf_adds(out, reset);
			sbuf_addch(out, '=');
			sbuf_add(out, ln->ents[i].esc.buf, ln->ents[i].esc.len);
		}
	} else {
		if (is_json(ln->fmt))
			sbuf_addch(out, '{');
		for (i = 0; i < ln->nents; i++) {
			const struct entry *e = &ln->ents[i];

			if (i > 0)
				sbuf_addch(out, is_json(ln->fmt) ?
				    ',' : ' ');
			if (is_json(ln->fmt))
				sbuf_addch(out, '"');
			if (e->prefixed)
				sbuf_adds(out, "fields.");
			esc_key(out, ln->fmt, e->key);
			sbuf_adds(out, is_json(ln->fmt) ? "\":" : "=");
			sbuf_add(out, e->esc.buf, e->esc.len);
		}
		if (is_json(ln->fmt))
			sbuf_addch(out, '}');
	}
	sbuf_addch(out, '\n');
}

static int
size_cmp(const void *pa, const void *pb)
{
	size_t a = *(const size_t *)pa, b = *(const size_t *)pb;

	return a < b ? -1 : a > b;
}

/*
 * The line is over LOG_LINE_MAX: find the largest L such that cutting
 * every value longer than L down to L makes the line fit, and re-escape
 * those values with limit L.  Short values stay whole, so one huge field
 * does not eat the message.
 */
static void
shrink(struct sbuf *out, struct line *ln)
{
	size_t nv = ln->nents + (ln->fmt == LOG_FORMAT_RUNNER);
	struct entry **v = xcalloc(nv, sizeof(*v));
	size_t *sizes = xcalloc(nv, sizeof(*sizes));
	size_t i, k, sum = 0, fixed, budget, lim = SIZE_MAX;

	for (i = 0; i < ln->nents; i++)
		v[i] = &ln->ents[i];
	if (ln->fmt == LOG_FORMAT_RUNNER)
		v[nv - 1] = ln->msg;
	for (i = 0; i < nv; i++) {
		sizes[i] = v[i]->esc.len;
		sum += sizes[i];
	}
	fixed = out->len - sum;
	/* Slack for the runner's padding, which grows as the message shrinks. */
	budget = fixed + RUNNER_WIDTH < LOG_LINE_MAX ?
	    LOG_LINE_MAX - fixed - RUNNER_WIDTH : 0;
	qsort(sizes, nv, sizeof(*sizes), size_cmp);
	for (i = 0, k = nv; i < nv; i++, k--) {
		if (sizes[i] > budget / k) {
			lim = budget / k;
			break;
		}
		budget -= sizes[i];
	}
	for (i = 0; i < nv; i++) {
		if (v[i]->esc.len <= lim)
			continue;
		sbuf_reset(&v[i]->esc);
		esc_value(&v[i]->esc, ln->fmt, v[i]->val, v[i]->vlen, lim);
	}
	assemble(out, ln);
	free(sizes);
	free(v);
}

static void
write_all(int fd, const char *p, size_t n)
{
	ssize_t r;

	while (n > 0) {
		r = write(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return;		/* nowhere to report it */
		}
		p += r;
		n -= (size_t)r;
	}
}

static void
real_clock(struct timespec *ts)
{
	if (clock_gettime(CLOCK_REALTIME, ts) != 0) {
		ts->tv_sec = time(NULL);
		ts->tv_nsec = 0;
	}
}

/* Format the message into a heap buffer of the exact size. */
static char *
format_message(size_t *lenp, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static char *
format_message(size_t *lenp, const char *fmt, va_list ap)
{
	size_t size = 256;
	char *buf = xmalloc(size);
	va_list cp;
	int n;

	va_copy(cp, ap);
	n = vsnprintf(buf, size, fmt, cp);
	va_end(cp);
	if (n < 0) {
		buf[0] = '\0';
		n = 0;
	} else if ((size_t)n >= size) {
		free(buf);
		size = (size_t)n + 1;
		buf = xmalloc(size);
		va_copy(cp, ap);
		n = vsnprintf(buf, size, fmt, cp);
		va_end(cp);
		if (n < 0) {
			buf[0] = '\0';
			n = 0;
		}
	}
	*lenp = (size_t)n;
	return buf;
}

static void
log_vemit(enum log_level lvl, const char *func, const struct log_field *fields,
    size_t nfields, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static void
log_vemit(enum log_level lvl, const char *func, const struct log_field *fields,
    size_t nfields, const char *fmt, va_list ap)
{
	struct sbuf out, masked;
	struct entry *ents, *e, msgent;
	struct line ln;
	struct timespec ts;
	char tbuf[64], *raw;
	size_t rawlen, i, n = 0, k;
	int cur, debug;

	/* The cheap filter, before any formatting. */
	cur = __atomic_load_n(&log_level, __ATOMIC_RELAXED);
	if ((unsigned)lvl > (unsigned)cur)
		return;
	debug = cur >= LOG_DEBUG && func != NULL;
	raw = format_message(&rawlen, fmt, ap);

	pthread_mutex_lock(&log_lock);
	if (log_color < 0)
		log_color = isatty(log_fd) == 1;
	(log_clock != NULL ? log_clock : real_clock)(&ts);
	memset(&ln, 0, sizeof(ln));
	ln.fmt = log_format;
	ln.lvl = lvl;
	ln.color = log_color;
	ents = xcalloc(nfields + 5, sizeof(*ents));

	/* The message, masked; the unmasked text is wiped at once. */
	memset(&msgent, 0, sizeof(msgent));
	sbuf_init(&masked);
	mask_into(&masked, raw, rawlen);
	freezero(raw, rawlen);
	msgent.key = "msg";
	msgent.owned = 1;
	msgent.val = sbuf_detach(&masked, &msgent.vlen);
	if (ln.fmt == LOG_FORMAT_RUNNER) {
		ln.msg = &msgent;
	} else if (ln.fmt == LOG_FORMAT_HCLOG) {
		format_time_hclog(tbuf, sizeof(tbuf), &ts);
		ents[n].key = "@timestamp";
		ents[n].val = tbuf;
		ents[n].order = n;
		n++;
		ents[n].key = "@level";
		ents[n].val = hclog_level_names[(unsigned)lvl <= LOG_DEBUG ?
		    lvl : LOG_ERROR];
		ents[n].order = n;
		n++;
		if (log_module != NULL) {
			/* Valid while the lock is held, i.e. until written. */
			ents[n].key = "@module";
			ents[n].val = log_module;
			ents[n].order = n;
			n++;
		}
		ents[n] = msgent;
		ents[n].key = "@message";
		ents[n].order = n;
		n++;
		msgent.owned = 0;	/* ents[] frees it now */
		for (i = 0; i < n; i++) {
			if (!ents[i].owned)
				ents[i].vlen = strlen(ents[i].val);
		}
	} else {
		format_time(tbuf, sizeof(tbuf), &ts);
		ents[n].key = "time";
		ents[n].val = tbuf;
		ents[n].order = n;
		n++;
		ents[n].key = "level";
		ents[n].val = log_level_name(lvl);
		ents[n].order = n;
		n++;
		/* logrus's text format leaves out an empty message. */
		if (ln.fmt == LOG_FORMAT_JSON || msgent.vlen > 0) {
			ents[n] = msgent;
			ents[n].order = n;
			n++;
			msgent.owned = 0;	/* ents[] frees it now */
		}
		for (i = 0; i < n; i++) {
			ents[i].fixed = ln.fmt == LOG_FORMAT_TEXT;
			if (!ents[i].owned)
				ents[i].vlen = strlen(ents[i].val);
		}
	}
	if (debug) {
		ents[n].key = "func";
		ents[n].val = func;
		ents[n].vlen = strlen(func);
		ents[n].order = n;
		n++;
	}
	for (i = 0; i < nfields; i++) {
		const char *key = fields[i].key, *val = fields[i].value;

		if (key == NULL)
			continue;
		e = &ents[n];
		e->key = key;
		e->order = n;
		e->prefixed = (debug && strcmp(key, "func") == 0) ||
		    fixed_key(ln.fmt, key);
		sbuf_init(&masked);
		if (val != NULL)
			mask_into(&masked, val, strlen(val));
		e->val = sbuf_detach(&masked, &e->vlen);
		e->owned = 1;
		n++;
	}
	/*
	 * Sort (text: time, level, msg first) and drop duplicate keys, the
	 * last one given winning, as when logrus fills its Fields map.
	 */
	qsort(ents, n, sizeof(*ents), entry_cmp);
	for (i = 0, k = 0; i < n; i++) {
		if (i + 1 < n && !ents[i].fixed && !ents[i + 1].fixed &&
		    entry_keycmp(&ents[i], &ents[i + 1]) == 0) {
			if (ents[i].owned)
				free((char *)ents[i].val);
			continue;
		}
		ents[k++] = ents[i];
	}
	n = k;
	ln.ents = ents;
	ln.nents = n;

	for (i = 0; i < n; i++) {
		sbuf_init(&ents[i].esc);
		esc_value(&ents[i].esc, ln.fmt, ents[i].val, ents[i].vlen,
		    SIZE_MAX);
	}
	if (ln.msg != NULL) {
		sbuf_init(&msgent.esc);
		esc_value(&msgent.esc, ln.fmt, msgent.val, msgent.vlen,
		    SIZE_MAX);
	}
	sbuf_init(&out);
	assemble(&out, &ln);
	if (out.len > LOG_LINE_MAX)
		shrink(&out, &ln);
	write_all(log_fd, out.buf, out.len);
	pthread_mutex_unlock(&log_lock);

	sbuf_release(&out);
	for (i = 0; i < n; i++) {
		sbuf_release(&ents[i].esc);
		if (ents[i].owned)
			free((char *)ents[i].val);
	}
	if (ln.msg != NULL)
		sbuf_release(&msgent.esc);
	if (msgent.owned)
		free((char *)msgent.val);
	free(ents);
}

void
log_emit(enum log_level lvl, const char *func, const struct log_field *fields,
    size_t nfields, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(lvl, func, fields, nfields, fmt, ap);
	va_end(ap);
}

void
log_fatal_exit(const char *func, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_FATAL, func, NULL, 0, fmt, ap);
	va_end(ap);
	log_release();
	exit(1);
}

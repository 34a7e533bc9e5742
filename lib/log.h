/*
 * Logging on stderr in GitLab Runner's levels and formats.
 *
 * Formats: "text" (logrus text: time="..." level=info msg="..." key=value),
 * "json" (one object a line, keys sorted as logrus sorts them), and
 * "runner" (the default: a human line, "Message   key=value", coloured when
 * stderr is a terminal).  Secrets registered with log_add_secret() are
 * replaced by "[MASKED]" wherever they appear in a message or a field, as a
 * last line of defence; callers still shorten tokens with log_short_token().
 */
#ifndef FL_LOG_H
#define FL_LOG_H

#include <stddef.h>

struct timespec;

/*
 * The exact output, as GitLab Runner's logrus formatters write it:
 *
 *   runner  "<PREFIX><message padded to 50 - len(PREFIX)> " then " key=value"
 *           per field, keys sorted.  PREFIX is "WARNING: ", "ERROR: ",
 *           "FATAL: " or "PANIC: " (none at info and debug).  ANSI colours
 *           as the runner's, only when the output fd is a terminal.
 *           Values are not quoted; control characters (but tab), invalid
 *           UTF-8 bytes and invisible code points are written as Go
 *           escapes (\n, \x1b, \u202e) so a line stays one line.
 *   text    time="<RFC 3339>" level=<name> msg="..." then key=value, keys
 *           sorted; a value is quoted as Go's %q when it is empty or has
 *           a byte outside [A-Za-z0-9-._/@^+]; an empty message is left out.
 *   json    {"<key>":"<value>",...} with every key (fields, "level",
 *           "msg", "time") sorted byte-wise; Go's encoding/json escaping
 *           (\" \\ \n \r \t, \u00XX, <>& as \u003c.., \u2028/9) and
 *           each invalid UTF-8 byte as \ufffd.  Field values are strings.
 *   hclog   HashiCorp hclog's JSON, which plugins write on stderr for the
 *           manager (go-plugin parses it): {"@level":"info","@message":
 *           "...","@module":"NAME","@timestamp":"<time>",...fields} with
 *           every key sorted byte-wise and json's escaping.  Levels are
 *           hclog's names: "debug", "info", "warn", "error" (fatal and
 *           panic are written as "error").  The time has exactly six
 *           fractional digits (hclog's "2006-01-02T15:04:05.000000Z07:00").
 *           "@module" is log_set_module()'s name, left out when none is
 *           set.  Fields named "@level", "@message", "@module" or
 *           "@timestamp" are written as "fields.<name>"; at debug level
 *           the caller's function is the field "func" as in the others.
 *           Not accepted by log_format_parse (not a manager format).
 *
 * In text and json a field named "time", "level" or "msg" is written as
 * "fields.<name>" (logrus's rule).  Duplicate field keys: the last wins.
 * Times are RFC 3339 with nanoseconds, trailing zeros trimmed (Go's
 * RFC3339Nano), local offset or "Z" for UTC.  The level names written are
 * those of log_level_name(): warnings say "warning".
 *
 * When the configured level is debug, every line also carries the
 * caller's function as a field func=... (a caller's own field "func" then
 * becomes "fields.func"); at info and above it does not.
 *
 * A line (newline included) never exceeds LOG_LINE_MAX bytes: the longest
 * values (message included) are cut first, at a character boundary, and
 * end in "...[truncated]".
 *
 * Thread-safe: settings and secrets are behind one mutex and each line
 * goes out in one write(2) under it, so lines of several threads never
 * interleave.  Not async-signal-safe (it allocates and locks): not for
 * signal handlers, nor for a child between fork() and exec().
 *
 * LOG_PANIC lines are only written (prefix "PANIC: "); nothing aborts.
 */
#define LOG_LINE_MAX 65536
/* Shorter secrets are ignored: masking "ab" would mask half the log. */
#define LOG_SECRET_MIN 4

enum log_level {
	LOG_PANIC = 0,
	LOG_FATAL,
	LOG_ERROR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG
};

enum log_format {
	LOG_FORMAT_RUNNER = 0,
	LOG_FORMAT_TEXT,
	LOG_FORMAT_JSON,
	LOG_FORMAT_HCLOG	/* plugins: see above */
};

struct log_field {
	const char *key;
	const char *value;
};

/*
 * Parse "debug", "info", "warn"/"warning", ...; 0 or FL_ERR_INVAL.
 * Case-insensitive as logrus.ParseLevel; "trace" (which logrus has and we
 * do not) is taken as debug.  log_level_name(LOG_WARN) is "warning".
 */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);
/* Parse "runner", "text", "json" (not "hclog"); 0 or FL_ERR_INVAL. */
int log_format_parse(const char *s, enum log_format *out);
const char *log_format_name(enum log_format fmt);

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
void log_set_format(enum log_format fmt);
/*
 * The hclog format's "@module" (a plugin's name); a copy is kept.  NULL or
 * "" leaves the key out.  Other formats ignore it.
 */
void log_set_module(const char *name);
/* Send output to fd instead of stderr (tests).  The caller keeps the fd;
 * whether it is a terminal (colours) is asked again after each call. */
void log_set_fd(int fd);
/*
 * Test hook: take the time of each line from now() instead of
 * clock_gettime(CLOCK_REALTIME).  NULL restores the real clock.  now() is
 * called with the log lock held: it must not log.
 */
void log_set_clock(void (*now)(struct timespec *ts));

/*
 * Never print s: any occurrence in later log lines (message and field
 * values, not keys) becomes [MASKED]; overlapping or adjacent occurrences
 * become one [MASKED].  A copy is kept; NULL, duplicates and strings
 * shorter than LOG_SECRET_MIN are ignored.
 */
void log_add_secret(const char *s);
/* Forget every secret, wiping the copies (explicit_bzero) first. */
/* Forget one secret (a job token once its job is over); wiped. */
void log_remove_secret(const char *s);
void log_clear_secrets(void);
/*
 * Wipe and free everything the module holds (at exit, so leak checkers
 * see nothing).  Logging still works afterwards, without secrets.
 */
void log_release(void);

/*
 * GitLab Runner's short form of a token for logs: known prefixes such as
 * "glrt-" dropped and at most 8 characters kept.  Writes into out (size
 * at least 9) and returns it.
 *
 * Prefixes, stripped in this order as helpers.ShortenToken does: "glrt-"
 * with an optional partition "t1_".."t3_" (or the partition alone) or
 * "glrtr-"; then "glcbt-"; then "GR" and 7 hex digits ("GR1348941").
 * What is left is cut to 8 characters; a shorter rest is kept whole
 * (so a token of 8 characters or less, once stripped, is returned as
 * is).  NULL gives "".  Upstream now keeps 9 characters; 8 is our limit.
 */
char *log_short_token(const char *token, char out[static 9]);

/* The one entry point; use the macros below. */
void log_emit(enum log_level lvl, const char *func,
    const struct log_field *fields, size_t nfields, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define log_debug(...) log_emit(LOG_DEBUG, __func__, NULL, 0, __VA_ARGS__)
#define log_info(...) log_emit(LOG_INFO, __func__, NULL, 0, __VA_ARGS__)
#define log_warn(...) log_emit(LOG_WARN, __func__, NULL, 0, __VA_ARGS__)
#define log_error(...) log_emit(LOG_ERROR, __func__, NULL, 0, __VA_ARGS__)
/* With fields: log_infof(fields, nfields, fmt, ...). */
#define log_debugf(f, n, ...) log_emit(LOG_DEBUG, __func__, f, n, __VA_ARGS__)
#define log_infof(f, n, ...) log_emit(LOG_INFO, __func__, f, n, __VA_ARGS__)
#define log_warnf(f, n, ...) log_emit(LOG_WARN, __func__, f, n, __VA_ARGS__)
#define log_errorf(f, n, ...) log_emit(LOG_ERROR, __func__, f, n, __VA_ARGS__)
/*
 * Logs at fatal level and exits 1: start-up errors and broken invariants.
 * Secrets are wiped (log_release) before exit(3).
 */
void log_fatal_exit(const char *func, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
#define log_fatal(...) log_fatal_exit(__func__, __VA_ARGS__)

#endif

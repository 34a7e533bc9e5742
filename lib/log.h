/*
 * Logging on stderr in GitLab Runner's levels and formats.
 *
 * Formats: "text" (logrus text: time="..." level=info msg="..." key=value),
 * "json" (one object a line: level, msg, time, then the fields), and
 * "runner" (the default: a human line, "Message   key=value", coloured when
 * stderr is a terminal).  Secrets registered with log_add_secret() are
 * replaced by "[MASKED]" wherever they appear in a message or a field, as a
 * last line of defence; callers still shorten tokens with log_short_token().
 */
#ifndef FL_LOG_H
#define FL_LOG_H

#include <stddef.h>

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
	LOG_FORMAT_JSON
};

struct log_field {
	const char *key;
	const char *value;
};

/* Parse "debug", "info", "warn"/"warning", ...; 0 or FL_ERR_INVAL. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);
/* Parse "runner", "text", "json"; 0 or FL_ERR_INVAL. */
int log_format_parse(const char *s, enum log_format *out);
const char *log_format_name(enum log_format fmt);

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
void log_set_format(enum log_format fmt);
/* Send output to fd instead of stderr (tests). */
void log_set_fd(int fd);

/* Never print s: any occurrence in later log lines becomes [MASKED]. */
void log_add_secret(const char *s);
void log_clear_secrets(void);

/*
 * GitLab Runner's short form of a token for logs: known prefixes such as
 * "glrt-" dropped and at most 8 characters kept.  Writes into out (size
 * at least 9) and returns it.
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
/* Logs at fatal level and exits 1: start-up errors and broken invariants. */
void log_fatal_exit(const char *func, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
#define log_fatal(...) log_fatal_exit(__func__, __VA_ARGS__)

#endif

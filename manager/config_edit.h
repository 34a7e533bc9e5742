/*
 * Editing config.toml as text, for register, verify --delete and
 * unregister: a runner is appended as a new [[runners]] entry, or one
 * entry is cut out, and every other byte of the file stays as the user
 * wrote it (comments, order, blank lines, quoting).  GitLab Runner
 * re-serialises the whole file instead and so loses comments; flotilla
 * never re-serialises a file it did not write.
 *
 * The functions here are pure (text in, text out) except
 * config_edit_write_file.  They expect text that lib/toml accepted; they
 * refuse (FL_ERR_INVAL with a reason) a layout they cannot edit safely:
 * runners written as an inline array, or a [runners.x] table separated
 * from its [[runners]] header by another table.
 */
#ifndef FL_CONFIG_EDIT_H
#define FL_CONFIG_EDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "toml.h"
#include "xmalloc.h"

/* What register writes into a new file. */
#define CONFIG_EDIT_NEW_FILE "concurrent = 1\ncheck_interval = 0\n"

/* The bytes [start, end) of one [[runners]] entry. */
struct config_edit_span {
	size_t start;	/* start of its first line: the comment lines right
			 * above the header (no blank line between) count */
	size_t end;	/* start of the next top-level table (minus the
			 * comment lines right above it), or the end */
	int line;	/* line of the [[runners]] header, 1-based */
};

/*
 * The entries, in file order (the order of config->runners).  Returns 0
 * and *spans (free it) and *n, FL_ERR_PARSE when text is not TOML, or
 * FL_ERR_INVAL when the layout cannot be edited; err says why.
 */
int config_edit_runners(const char *text, size_t len,
    struct config_edit_span **spans, size_t *n, char *err, size_t errlen);

/*
 * text without entry idx, into out (appended).  When the entry runs to
 * the end of the file, the blank lines before it go too.  Errors as
 * config_edit_runners, FL_ERR_NOTFOUND for an index out of range.
 */
int config_edit_remove_runner(const char *text, size_t len, size_t idx,
    struct sbuf *out, char *err, size_t errlen);

/*
 * text followed by entry, into out: a newline is added when text does
 * not end with one, and a blank line between them when text is not
 * empty and does not already end with one.
 */
void config_edit_append(const char *text, size_t len, const char *entry,
    struct sbuf *out);

/* A new runner entry.  Unset: NULL strings, negative numbers. */
struct config_edit_runner {
	const char *name;
	const char *url;
	int64_t id;			/* written always (GitLab: 0 if none) */
	const char *token;		/* secret */
	int64_t token_obtained_at;	/* seconds since the epoch, UTC */
	const char *token_expires_at;	/* as GitLab sent it; written as a
					 * TOML datetime, the zero time
					 * 0001-01-01T00:00:00Z when NULL,
					 * empty or not a date-time */
	const char *executor;
	const char *tls_ca_file;
	const char *tls_cert_file;
	const char *tls_key_file;
	int64_t limit;
	int64_t request_concurrency;
	const char *docker_image;
	const char *const *docker_volumes;	/* NULL-terminated, or NULL */
	const char *autoscaler_plugin;
	int64_t capacity_per_instance;
	int64_t max_use_count;
	int64_t max_instances;
	/* A template's one [[runners]] table (register --template-config):
	 * its keys fill in what the above leaves unset, as GitLab Runner's
	 * mergo.Merge; its token is never taken. */
	const struct toml_table *tmpl;
};

/*
 * The entry's text: "[[runners]]\n  name = ...\n" then its sub-tables
 * ("  [runners.docker]\n    image = ...\n"), in GitLab Runner's
 * indentation.  Returns a string to free with freezero_str (it holds
 * the token).
 */
char *config_edit_runner_text(const struct config_edit_runner *r);

/* A TOML date-time written as GitLab's expiry, or the zero time, into
 * out (at least 40 bytes). */
void config_edit_datetime(const char *s, char *out, size_t outlen);

/*
 * Replace path's contents atomically: a temporary file beside it,
 * written, fsync'd, renamed over path, the directory fsync'd.  A missing
 * parent directory is made (mode 0700); a new file gets mode new_mode,
 * an existing one keeps its mode; a symbolic link is followed (its
 * target is replaced).  Returns 0 or FL_ERR_IO with the reason in err.
 */
int config_edit_write_file(const char *path, const char *buf, size_t len,
    mode_t new_mode, char *err, size_t errlen);

/*
 * Read a whole file.  Returns 0 and *buf (NUL-terminated; free it),
 * FL_ERR_NOTFOUND when it does not exist, FL_ERR_IO otherwise (errno
 * set), FL_ERR_TOOBIG over 16 MiB.
 */
int config_edit_read_file(const char *path, char **buf, size_t *len);

#endif

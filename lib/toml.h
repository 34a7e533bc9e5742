/*
 * A complete TOML 1.0.0 parser, written for flotilla because Debian packages
 * no C TOML library.  It parses a whole document into a tree or rejects it
 * with the line and column of the first error; it never prints.
 *
 * Every value and every key remembers the line and column where it starts,
 * so that the config layer can report "FILE:LINE: key: reason" for values
 * that are valid TOML but wrong for flotilla.
 */
#ifndef FL_TOML_H
#define FL_TOML_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * How deep the tree may be: the root is level 0, its values level 1, ...
 * Deeper input (nested arrays, inline tables, long dotted keys or headers)
 * is rejected, so that no recursion over a tree can exhaust the stack.
 */
#define TOML_MAX_DEPTH	128

/*
 * Notes on the parser's output: lines count LF (CRLF is one newline);
 * columns count bytes from the start of the line, so a tab or a UTF-8
 * sequence advances by its byte length.  Multi-line strings have CRLF
 * normalised to LF.  Tables are made only by toml_parse(), which keeps a
 * private hash index beside each; toml_get() on a table built by hand
 * (flags 0) scans it linearly.  Input over INT_MAX bytes is refused.
 */

enum toml_type {
	TOML_STRING,
	TOML_INTEGER,
	TOML_FLOAT,
	TOML_BOOL,
	TOML_DATETIME,		/* offset date-time */
	TOML_DATETIME_LOCAL,
	TOML_DATE_LOCAL,
	TOML_TIME_LOCAL,
	TOML_ARRAY,
	TOML_TABLE
};

/* Broken-down date and time; fields a type does not have are zero. */
struct toml_datetime {
	int year, month, day;
	int hour, minute, second;
	int nanosecond;		/* fraction of the second, truncated to ns */
	int frac_digits;	/* digits of the fraction as written (0 = none) */
	int offset_minutes;	/* TOML_DATETIME only; 0 for Z */
	int offset_z;		/* TOML_DATETIME: 1 when written as Z */
};

struct toml_table;

struct toml_value {
	enum toml_type type;
	int line, col;		/* 1-based position where the value starts */
	union {
		struct {
			char *ptr;	/* NUL-terminated; may contain NUL (use len) */
			size_t len;
		} str;
		int64_t integer;
		double flt;
		int boolean;
		struct toml_datetime dt;
		struct {
			struct toml_value **items;
			size_t len;
		} arr;
		struct toml_table *table;
	} u;
};

/* One key of a table, in the order the document defines them. */
struct toml_kv {
	char *key;		/* the bare key (one segment), NUL-terminated */
	size_t keylen;
	int line, col;		/* where the key was written */
	struct toml_value *val;
};

struct toml_table {
	struct toml_kv *kvs;
	size_t len;
	size_t cap;
	int line, col;		/* header or first key that made the table */
	unsigned flags;		/* parser bookkeeping, opaque to callers */
};

struct toml_error {
	int line, col;		/* 1-based; 0 when not tied to a position */
	char msg[200];
};

/*
 * Parse len bytes of TOML.  Returns the root table, to be freed with
 * toml_free(), or NULL with *err filled in (err may be NULL).  The input
 * need not be NUL-terminated; a NUL byte in it is an error.
 */
struct toml_table *toml_parse(const char *buf, size_t len,
    struct toml_error *err);

/* Read and parse a whole file; on error *err says why (including IO). */
struct toml_table *toml_parse_file(const char *path, struct toml_error *err);

void toml_free(struct toml_table *t);

/* The value of key in t, or NULL.  Does not descend into dotted paths. */
const struct toml_value *toml_get(const struct toml_table *t, const char *key);
/* The kv of key in t (for its position), or NULL. */
const struct toml_kv *toml_get_kv(const struct toml_table *t, const char *key);

/* Name of a type for messages: "string", "integer", "array", ... */
const char *toml_type_name(enum toml_type type);

/*
 * Writers used by the config dump and by tests: a basic string with every
 * character escaped as TOML requires, a key (bare when possible, quoted
 * otherwise), and a datetime in RFC 3339 form with a 'T'.
 */
void toml_write_string(FILE *fp, const char *s, size_t len);
void toml_write_key(FILE *fp, const char *key, size_t len);
void toml_write_datetime(FILE *fp, enum toml_type type,
    const struct toml_datetime *dt);
/*
 * A float that reads back as the same double (shortest of %.15g..%.17g,
 * always with a '.' or an exponent; inf, -inf, nan, -nan).
 */
void toml_write_float(FILE *fp, double d);
/*
 * Any value in TOML's one-line forms: arrays as [a, b], tables as inline
 * tables { k = v }.  Parsing "x = " plus the output gives the value back.
 */
void toml_write_value(FILE *fp, const struct toml_value *v);

#endif

/*
 * The TOML parser beyond what toml-test checks (that runs as the
 * integration test toml_test.sh): positions of keys, values and tables,
 * the line and column of errors, lookups, the writers round-tripping
 * awkward strings, keys, datetimes and whole values, a large table, and
 * deep nesting rejected cleanly.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "toml.h"
#include "xmalloc.h"

static struct toml_table *
parse_ok(const char *doc)
{
	struct toml_error err;
	struct toml_table *t = toml_parse(doc, strlen(doc), &err);

	if (t == NULL)
		fail_msg("parse failed at %d:%d: %s\n--- input:\n%s", err.line,
		    err.col, err.msg, doc);
	return t;
}

/* Parse must fail at line:col with msg containing want. */
static void
parse_bad(const char *doc, size_t len, int line, int col, const char *want)
{
	struct toml_error err;
	struct toml_table *t = toml_parse(doc, len, &err);

	if (t != NULL) {
		toml_free(t);
		fail_msg("accepted: %s", doc);
	}
	if (err.line != line || err.col != col || strstr(err.msg, want) == NULL)
		fail_msg("input %s\nwant %d:%d: ...%s...\ngot  %d:%d: %s", doc,
		    line, col, want, err.line, err.col, err.msg);
}

static const struct toml_value *
get(const struct toml_table *t, const char *key, enum toml_type type)
{
	const struct toml_value *v = toml_get(t, key);

	if (v == NULL)
		fail_msg("no key %s", key);
	if (v->type != type)
		fail_msg("key %s is a %s, not a %s", key,
		    toml_type_name(v->type), toml_type_name(type));
	return v;
}

static const struct toml_table *
subtable(const struct toml_table *t, const char *key)
{
	return get(t, key, TOML_TABLE)->u.table;
}

static void
test_positions(void **state)
{
	const char *doc =
	    "# comment\n"			/* 1 */
	    "title = \"x\"\n"			/* 2 */
	    "  n =   42 # answer\n"		/* 3 */
	    "a.b.c = true\n"			/* 4 */
	    "\n"				/* 5 */
	    "[srv.alpha]\n"			/* 6 */
	    "ip = [ 1,\n"			/* 7 */
	    "       2 ]\n"			/* 8 */
	    "[srv]\n"				/* 9 */
	    "\t\"quoted key\" = { x = 1 }\n"	/* 10 */
	    "[[runners]]\n"			/* 11 */
	    "name = 'one'\n"			/* 12 */
	    "[[runners]]\n"			/* 13 */
	    "name = '''two'''\n";		/* 14 */
	struct toml_table *t = parse_ok(doc);
	const struct toml_kv *kv;
	const struct toml_table *a, *srv, *alpha;
	const struct toml_value *v;

	(void)state;
	assert_int_equal(t->len, 5);	/* title n a srv runners */
	kv = toml_get_kv(t, "title");
	assert_non_null(kv);
	assert_int_equal(kv->line, 2);
	assert_int_equal(kv->col, 1);
	assert_int_equal(kv->val->line, 2);
	assert_int_equal(kv->val->col, 9);
	assert_string_equal(kv->val->u.str.ptr, "x");

	kv = toml_get_kv(t, "n");
	assert_int_equal(kv->line, 3);
	assert_int_equal(kv->col, 3);
	assert_int_equal(kv->val->col, 9);
	assert_int_equal(kv->val->u.integer, 42);

	/* Dotted keys: each part where it is written. */
	kv = toml_get_kv(t, "a");
	assert_int_equal(kv->line, 4);
	assert_int_equal(kv->col, 1);
	a = kv->val->u.table;
	assert_int_equal(a->line, 4);
	assert_int_equal(a->col, 1);
	kv = toml_get_kv(a, "b");
	assert_int_equal(kv->col, 3);
	kv = toml_get_kv(kv->val->u.table, "c");
	assert_int_equal(kv->line, 4);
	assert_int_equal(kv->col, 5);
	assert_int_equal(kv->val->col, 9);
	assert_true(kv->val->u.boolean);

	/* [srv] is made implicitly at line 6, then defined at line 9. */
	srv = subtable(t, "srv");
	assert_int_equal(srv->line, 9);
	assert_int_equal(srv->col, 1);
	alpha = subtable(srv, "alpha");
	assert_int_equal(alpha->line, 6);
	v = get(alpha, "ip", TOML_ARRAY);
	assert_int_equal(v->line, 7);
	assert_int_equal(v->col, 6);
	assert_int_equal(v->u.arr.len, 2);
	assert_int_equal(v->u.arr.items[0]->line, 7);
	assert_int_equal(v->u.arr.items[0]->col, 8);
	assert_int_equal(v->u.arr.items[1]->line, 8);
	assert_int_equal(v->u.arr.items[1]->col, 8);
	kv = toml_get_kv(srv, "quoted key");
	assert_non_null(kv);
	assert_int_equal(kv->line, 10);
	assert_int_equal(kv->col, 2);
	assert_int_equal(kv->val->u.table->line, 10);
	assert_int_equal(kv->val->u.table->col, 17);
	assert_int_equal(toml_get_kv(kv->val->u.table, "x")->col, 19);

	v = get(t, "runners", TOML_ARRAY);
	assert_int_equal(v->line, 11);
	assert_int_equal(v->u.arr.len, 2);
	assert_int_equal(v->u.arr.items[0]->u.table->line, 11);
	assert_int_equal(v->u.arr.items[1]->u.table->line, 13);
	kv = toml_get_kv(v->u.arr.items[1]->u.table, "name");
	assert_int_equal(kv->line, 14);
	assert_string_equal(kv->val->u.str.ptr, "two");

	/* The key order is the document's. */
	assert_string_equal(t->kvs[0].key, "title");
	assert_string_equal(t->kvs[4].key, "runners");
	toml_free(t);
}

static void
test_crlf_and_bom(void **state)
{
	const char *doc = "\xef\xbb\xbf" "a = 1\r\n"
	    "s = \"\"\"\r\none\r\ntwo\"\"\"\r\n"
	    "b = 'x' # c\r\n";
	struct toml_table *t = parse_ok(doc);
	const struct toml_kv *kv;

	(void)state;
	assert_int_equal(get(t, "a", TOML_INTEGER)->u.integer, 1);
	assert_string_equal(get(t, "s", TOML_STRING)->u.str.ptr, "one\ntwo");
	kv = toml_get_kv(t, "b");
	assert_int_equal(kv->line, 5);
	assert_int_equal(kv->val->col, 5);
	toml_free(t);
	parse_bad("a = 1\rb = 2\n", 12, 1, 6, "carriage return");
}

static void
test_scalars(void **state)
{
	const char *doc =
	    "min = -9_223_372_036_854_775_808\n"
	    "max = +9223372036854775807\n"
	    "hex = 0xDEAD_beef\n"
	    "oct = 0o755\n"
	    "bin = 0b1101\n"
	    "zero = -0\n"
	    "f1 = 6.626e-34\n"
	    "f2 = -1_000.000_1\n"
	    "f3 = -inf\n"
	    "f4 = nan\n"
	    "f5 = 1E+2\n"
	    "nul = \"a\\u0000b\"\n"
	    "uni = \"\\u00e9\\U0001F600\"\n"
	    "lit = 'C:\\path\\'\n"
	    "ml = \"\"\"\\\n    joined \\\n    here\"\"\"\n"
	    "q5 = \"\"\"\"\"x\"\"\"\"\"\n"
	    "odt = 1979-05-27 07:32:00.999999999999-07:30\n"
	    "ldt = 1979-05-27t07:32:00\n"
	    "ld = 2024-02-29\n"
	    "lt = 23:59:60.5\n"
	    "z = 1979-05-27T07:32:00z\n";
	struct toml_table *t = parse_ok(doc);
	const struct toml_value *v;

	(void)state;
	assert_true(get(t, "min", TOML_INTEGER)->u.integer == INT64_MIN);
	assert_true(get(t, "max", TOML_INTEGER)->u.integer == INT64_MAX);
	assert_int_equal(get(t, "hex", TOML_INTEGER)->u.integer, 0xdeadbeef);
	assert_int_equal(get(t, "oct", TOML_INTEGER)->u.integer, 0755);
	assert_int_equal(get(t, "bin", TOML_INTEGER)->u.integer, 13);
	assert_int_equal(get(t, "zero", TOML_INTEGER)->u.integer, 0);
	assert_true(get(t, "f1", TOML_FLOAT)->u.flt == 6.626e-34);
	assert_true(get(t, "f2", TOML_FLOAT)->u.flt == -1000.0001);
	assert_true(isinf(get(t, "f3", TOML_FLOAT)->u.flt));
	assert_true(get(t, "f3", TOML_FLOAT)->u.flt < 0);
	assert_true(isnan(get(t, "f4", TOML_FLOAT)->u.flt));
	assert_true(get(t, "f5", TOML_FLOAT)->u.flt == 100.0);
	v = get(t, "nul", TOML_STRING);
	assert_int_equal(v->u.str.len, 3);
	assert_memory_equal(v->u.str.ptr, "a\0b", 4);
	assert_string_equal(get(t, "uni", TOML_STRING)->u.str.ptr,
	    "\xc3\xa9\xf0\x9f\x98\x80");
	assert_string_equal(get(t, "lit", TOML_STRING)->u.str.ptr,
	    "C:\\path\\");
	assert_string_equal(get(t, "ml", TOML_STRING)->u.str.ptr,
	    "joined here");
	assert_string_equal(get(t, "q5", TOML_STRING)->u.str.ptr,
	    "\"\"x\"\"");

	v = get(t, "odt", TOML_DATETIME);
	assert_int_equal(v->u.dt.year, 1979);
	assert_int_equal(v->u.dt.month, 5);
	assert_int_equal(v->u.dt.day, 27);
	assert_int_equal(v->u.dt.hour, 7);
	assert_int_equal(v->u.dt.minute, 32);
	assert_int_equal(v->u.dt.second, 0);
	assert_int_equal(v->u.dt.nanosecond, 999999999);
	assert_int_equal(v->u.dt.frac_digits, 12);
	assert_int_equal(v->u.dt.offset_minutes, -450);
	assert_int_equal(v->u.dt.offset_z, 0);
	v = get(t, "ldt", TOML_DATETIME_LOCAL);
	assert_int_equal(v->u.dt.frac_digits, 0);
	v = get(t, "ld", TOML_DATE_LOCAL);
	assert_int_equal(v->u.dt.day, 29);
	assert_int_equal(v->u.dt.hour, 0);
	v = get(t, "lt", TOML_TIME_LOCAL);
	assert_int_equal(v->u.dt.second, 60);
	assert_int_equal(v->u.dt.nanosecond, 500000000);
	assert_int_equal(v->u.dt.year, 0);
	v = get(t, "z", TOML_DATETIME);
	assert_int_equal(v->u.dt.offset_z, 1);
	toml_free(t);
}

static const struct {
	const char *doc;
	int line, col;
	const char *msg;
} bad[] = {
	{ "a = 1\nb = 2\na = 3\n", 3, 1, "duplicate key 'a' (first defined "
	    "at line 1)" },
	{ "x = \"abc\n", 1, 5, "unterminated string" },
	{ "x = '''\nabc\n", 1, 5, "unterminated string" },
	{ "[t]\nkey \"v\"\n", 2, 5, "expected '=' after key" },
	{ "k = 1 2\n", 1, 7, "expected end of line" },
	{ "k = 99999999999999999999\n", 1, 5, "64 bits" },
	{ "k = -9223372036854775809\n", 1, 5, "64 bits" },
	{ "k = 0x8000000000000000\n", 1, 5, "64 bits" },
	{ "k = 1e999\n", 1, 5, "out of range" },
	{ "k = 0123\n", 1, 5, "leading zeros" },
	{ "k = \"\\q\"\n", 1, 6, "invalid escape '\\q'" },
	{ "k = \"\\uD800\"\n", 1, 6, "not a Unicode scalar" },
	{ "k = 2023-02-29\n", 1, 5, "date out of range" },
	{ "k = 1900-02-29T00:00:00Z\n", 1, 5, "date out of range" },
	{ "k = 12:00:61\n", 1, 5, "time out of range" },
	{ "k = {a = 1,}\n", 1, 12, "trailing comma" },
	{ "k = {a = 1\n}\n", 1, 11, "one line" },
	{ "k = [1 2]\n", 1, 8, "expected ',' or ']'" },
	{ "k = hello\n", 1, 5, "must be quoted" },
	{ "k =\n", 1, 4, "missing value" },
	{ "[a]\nx = 1\n[a]\n", 3, 1, "table [a] already defined at line 1" },
	{ "[a]\nb.c = 1\n[a.b]\n", 3, 1, "table [a.b] already defined" },
	{ "a = {b = 1}\n[a.c]\n", 2, 2, "inline table 'a'" },
	{ "a = {}\na.b = 1\n", 2, 1, "inline table 'a'" },
	{ "a = [1]\n[[a]]\n", 2, 1, "already an array (line 1)" },
	{ "[[a]]\n[a]\n", 2, 1, "already an array of tables" },
	{ "a = 1\na.b = 2\n", 2, 1, "key 'a' is already an integer" },
	{ "[x.y]\n[x]\ny.z = 1\n", 3, 1, "dotted key" },
	{ "a = \"\xff\"\n", 1, 6, "invalid UTF-8" },
	{ "a = \"\xc0\x80\"\n", 1, 6, "invalid UTF-8" },	/* overlong */
	{ "a = \"\xed\xa0\x80\"\n", 1, 6, "invalid UTF-8" },	/* surrogate */
	{ "\n\n  # x\x7f\n", 3, 6, "control character 0x7f" },
	{ "k = \"a\tb\x01\"\n", 1, 9, "control character 0x01" },
	{ "\"\"\"k\"\"\" = 1\n", 1, 1, "multi-line string cannot be a key" },
	{ "k = \"\"\"a\\ b\"\"\"\n", 1, 9, "backslash followed by whitespace" },
	{ "k = '''a''''''\n", 1, 9, "too many quotes" },
};

static void
test_errors(void **state)
{
	struct toml_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		parse_bad(bad[i].doc, strlen(bad[i].doc), bad[i].line,
		    bad[i].col, bad[i].msg);
	parse_bad("a = 1\nb = \"x\0y\"\n", 15, 2, 7, "NUL");
	/* The input need not be NUL-terminated: only len bytes count. */
	parse_bad("a = 1\nb = 2", 9, 2, 4, "missing value");
	/* err may be NULL. */
	assert_null(toml_parse("=", 1, NULL));
	/* A successful parse leaves err cleared. */
	toml_free(toml_parse("", 0, &err));
	assert_int_equal(err.line, 0);
	assert_string_equal(err.msg, "");
}

static void
test_redefinitions_allowed(void **state)
{
	/* Cases that look like redefinitions but are TOML 1.0.0. */
	static const char *docs[] = {
		"[a.b.c]\n[a]\nx = 1\n",
		"[a]\nb.c = 1\n[a.b.d]\ne = 2\n",
		"[[a]]\n[a.b]\n[[a]]\n[a.b]\n",
		"[[a.b]]\n[[a.b]]\n[a]\nc = 1\n",
		"[a.b]\n[a]\nc.d = 1\n",
		"x = {a.b = 1, a.c = 2}\n",
		"a = [[], [1, 'x', {b = []}], ]\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		toml_free(parse_ok(docs[i]));
}

static void
test_lookup(void **state)
{
	struct toml_table *t = parse_ok("a.b = 1\n\"a.b\" = 2\n\"\" = 3\n");

	(void)state;
	assert_int_equal(get(t, "a.b", TOML_INTEGER)->u.integer, 2);
	assert_int_equal(get(t, "", TOML_INTEGER)->u.integer, 3);
	assert_int_equal(get(subtable(t, "a"), "b", TOML_INTEGER)->u.integer,
	    1);
	assert_null(toml_get(t, "b"));
	assert_null(toml_get_kv(t, "A"));
	assert_null(toml_get(NULL, "a"));
	assert_null(toml_get(t, NULL));
	assert_string_equal(toml_type_name(TOML_DATETIME_LOCAL),
	    "local date-time");
	assert_string_equal(toml_type_name(TOML_TABLE), "table");
	toml_free(t);
	toml_free(NULL);
}

/* What a writer printed, as a malloc'd string. */
struct mem {
	char *buf;
	size_t len;
	FILE *fp;
};

static void
mem_open(struct mem *m)
{
	m->buf = NULL;
	m->len = 0;
	m->fp = open_memstream(&m->buf, &m->len);
	assert_non_null(m->fp);
}

static void
mem_close(struct mem *m)
{
	assert_int_equal(fclose(m->fp), 0);
}

/* Parse "k = " + text and return the value of k (t to be freed). */
static const struct toml_value *
reparse(const char *text, size_t len, struct toml_table **t)
{
	struct toml_error err;
	char *doc = xasprintf("k = %.*s\n", (int)len, text);

	*t = toml_parse(doc, strlen(doc), &err);
	if (*t == NULL)
		fail_msg("written text does not parse: %s: %d:%d: %s", doc,
		    err.line, err.col, err.msg);
	free(doc);
	return toml_get(*t, "k");
}

static void
test_write_string(void **state)
{
	static const struct {
		const char *s;
		size_t len;
	} cases[] = {
		{ "", 0 },
		{ "plain", 5 },
		{ "\"quoted\" and 'single'", 21 },
		{ "back\\slash\\", 11 },
		{ "\"\"\"", 3 },
		{ "tab\tnl\ncr\rff\fbs\b", 17 },
		{ "nul\0in the middle", 17 },
		{ "\x01\x02\x1b\x1f\x7f", 5 },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf", 18 },
		{ "#not a comment = [x]", 20 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct toml_table *t;
		const struct toml_value *v;
		struct mem m;

		mem_open(&m);
		toml_write_string(m.fp, cases[i].s, cases[i].len);
		mem_close(&m);
		v = reparse(m.buf, m.len, &t);
		assert_int_equal(v->type, TOML_STRING);
		assert_int_equal(v->u.str.len, cases[i].len);
		assert_memory_equal(v->u.str.ptr, cases[i].s, cases[i].len);
		toml_free(t);
		free(m.buf);
	}
	/* Every byte value alone: invalid UTF-8 comes back as U+FFFD. */
	for (int c = 0; c < 256; c++) {
		char s[1] = { (char)c };
		struct toml_table *t;
		const struct toml_value *v;
		struct mem m;

		mem_open(&m);
		toml_write_string(m.fp, s, 1);
		mem_close(&m);
		v = reparse(m.buf, m.len, &t);
		if (c < 0x80) {
			assert_int_equal(v->u.str.len, 1);
			assert_int_equal((unsigned char)v->u.str.ptr[0], c);
		} else
			assert_string_equal(v->u.str.ptr, "\xef\xbf\xbd");
		toml_free(t);
		free(m.buf);
	}
}

static void
test_write_key(void **state)
{
	static const struct {
		const char *key;
		size_t len;
		const char *want;
	} cases[] = {
		{ "bare_key-1", 10, "bare_key-1" },
		{ "", 0, "\"\"" },
		{ "a.b", 3, "\"a.b\"" },
		{ "with space", 10, "\"with space\"" },
		{ "\xc3\xa9", 2, "\"\xc3\xa9\"" },
		{ "q\"\\", 3, "\"q\\\"\\\\\"" },
		{ "n\0l", 3, "\"n\\u0000l\"" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct toml_error err;
		struct toml_table *t;
		struct mem m;

		mem_open(&m);
		toml_write_key(m.fp, cases[i].key, cases[i].len);
		fputs(" = 1\n", m.fp);
		mem_close(&m);
		assert_int_equal(m.len, strlen(cases[i].want) + 5);
		assert_memory_equal(m.buf, cases[i].want, strlen(cases[i].want));
		t = toml_parse(m.buf, m.len, &err);
		assert_non_null(t);
		assert_int_equal(t->len, 1);
		assert_int_equal(t->kvs[0].keylen, cases[i].len);
		assert_memory_equal(t->kvs[0].key, cases[i].key, cases[i].len);
		toml_free(t);
		free(m.buf);
	}
}

static void
test_write_datetime(void **state)
{
	static const char *cases[][2] = {
		{ "1979-05-27T07:32:00Z", "1979-05-27T07:32:00Z" },
		{ "1979-05-27 07:32:00z", "1979-05-27T07:32:00Z" },
		{ "1979-05-27T00:32:00.999999-07:00",
		    "1979-05-27T00:32:00.999999-07:00" },
		{ "1979-05-27T00:32:00.5+05:45", "1979-05-27T00:32:00.5+05:45" },
		{ "1979-05-27T00:32:00-00:00", "1979-05-27T00:32:00+00:00" },
		{ "0001-01-01T00:00:00.0000000001",
		    "0001-01-01T00:00:00.000000000" },
		{ "9999-12-31", "9999-12-31" },
		{ "00:00:00", "00:00:00" },
		{ "23:59:60.120", "23:59:60.120" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct toml_table *t, *t2;
		const struct toml_value *v, *v2;
		struct mem m;

		v = reparse(cases[i][0], strlen(cases[i][0]), &t);
		mem_open(&m);
		toml_write_datetime(m.fp, v->type, &v->u.dt);
		mem_close(&m);
		assert_string_equal(m.buf, cases[i][1]);
		v2 = reparse(m.buf, m.len, &t2);
		assert_int_equal(v2->type, v->type);
		assert_memory_equal(&v2->u.dt, &v->u.dt, offsetof(struct
		    toml_datetime, frac_digits));
		assert_int_equal(v2->u.dt.offset_minutes, v->u.dt.offset_minutes);
		toml_free(t);
		toml_free(t2);
		free(m.buf);
	}
	/* Built by hand, without frac_digits: as many digits as needed. */
	{
		struct toml_datetime dt = { .hour = 1, .minute = 2, .second = 3,
		    .nanosecond = 120000000 };
		struct mem m;

		mem_open(&m);
		toml_write_datetime(m.fp, TOML_TIME_LOCAL, &dt);
		mem_close(&m);
		assert_string_equal(m.buf, "01:02:03.12");
		free(m.buf);
	}
}

/* Deep equality of two values; floats by bits except nan. */
static int
same_value(const struct toml_value *a, const struct toml_value *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case TOML_STRING:
		return a->u.str.len == b->u.str.len &&
		    memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
	case TOML_INTEGER:
		return a->u.integer == b->u.integer;
	case TOML_FLOAT:
		if (isnan(a->u.flt))
			return isnan(b->u.flt);
		return memcmp(&a->u.flt, &b->u.flt, sizeof(double)) == 0;
	case TOML_BOOL:
		return a->u.boolean == b->u.boolean;
	case TOML_DATETIME:
	case TOML_DATETIME_LOCAL:
	case TOML_DATE_LOCAL:
	case TOML_TIME_LOCAL:
		return memcmp(&a->u.dt, &b->u.dt, offsetof(struct toml_datetime,
		    frac_digits)) == 0 &&
		    a->u.dt.offset_minutes == b->u.dt.offset_minutes;
	case TOML_ARRAY:
		if (a->u.arr.len != b->u.arr.len)
			return 0;
		for (size_t i = 0; i < a->u.arr.len; i++)
			if (!same_value(a->u.arr.items[i], b->u.arr.items[i]))
				return 0;
		return 1;
	case TOML_TABLE: {
		const struct toml_table *ta = a->u.table, *tb = b->u.table;

		if (ta->len != tb->len)
			return 0;
		for (size_t i = 0; i < ta->len; i++)
			if (ta->kvs[i].keylen != tb->kvs[i].keylen ||
			    memcmp(ta->kvs[i].key, tb->kvs[i].key,
			    ta->kvs[i].keylen) != 0 ||
			    !same_value(ta->kvs[i].val, tb->kvs[i].val))
				return 0;
		return 1;
	}
	}
	return 0;
}

static void
test_write_value(void **state)
{
	const char *doc =
	    "i = -9223372036854775808\n"
	    "f = [0.1, 1e300, -0.0, 5e-324, 1.7976931348623157e308, 3.0, "
	    "inf, -inf, nan, 123456789012345678.0]\n"
	    "b = [true, false]\n"
	    "d = [1979-05-27T07:32:00.123Z, 1979-05-27T07:32:00, 1979-05-27, "
	    "07:32:00.5]\n"
	    "s = \"x\\u0000\\\"'\\n\"\n"
	    "e = [[], {}]\n"
	    "[t]\n"
	    "\"odd key\" = {a.b = [1, {c = 'd'}]}\n"
	    "[[t.aot]]\n"
	    "x = 1\n"
	    "[[t.aot]]\n";
	struct toml_table *t = parse_ok(doc);

	(void)state;
	for (size_t i = 0; i < t->len; i++) {
		struct toml_table *t2;
		const struct toml_value *v;
		struct mem m;

		mem_open(&m);
		toml_write_value(m.fp, t->kvs[i].val);
		mem_close(&m);
		v = reparse(m.buf, m.len, &t2);
		if (!same_value(t->kvs[i].val, v))
			fail_msg("%s did not round-trip: %s", t->kvs[i].key,
			    m.buf);
		toml_free(t2);
		free(m.buf);
	}
	toml_free(t);
}

static void
test_large_table(void **state)
{
	enum { N = 100000 };
	struct sbuf sb;
	struct toml_table *t;
	struct toml_error err;
	struct timespec t0, t1;
	double secs;
	char key[32];

	(void)state;
	sbuf_init(&sb);
	for (int i = 0; i < N; i++)
		sbuf_addf(&sb, "key%d = %d\n", i, i);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	t = toml_parse(sb.buf, sb.len, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_non_null(t);
	assert_int_equal(t->len, N);
	for (int i = 0; i < N; i += 997) {
		const struct toml_kv *kv;

		(void)snprintf(key, sizeof(key), "key%d", i);
		kv = toml_get_kv(t, key);
		assert_non_null(kv);
		assert_int_equal(kv->val->u.integer, i);
		assert_int_equal(kv->line, i + 1);
	}
	assert_null(toml_get(t, "key100000"));
	toml_free(t);
	/* Quadratic lookups would take minutes; hashed, well under 5 s. */
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (secs > 5)
		fail_msg("%d keys took %.2f s", N, secs);

	/* A duplicate at the end is still found. */
	sbuf_addf(&sb, "key%d = 0\n", N / 2);
	parse_bad(sb.buf, sb.len, N + 1, 1, "first defined at line 50001");
	sbuf_release(&sb);
}

static void
test_deep_nesting(void **state)
{
	struct sbuf sb;
	struct toml_error err;
	struct toml_table *t;

	(void)state;
	/* TOML_MAX_DEPTH levels are fine: a is level 1, its items 2, ... */
	sbuf_init(&sb);
	sbuf_adds(&sb, "a = ");
	for (int i = 0; i < TOML_MAX_DEPTH; i++)
		sbuf_addch(&sb, '[');
	for (int i = 0; i < TOML_MAX_DEPTH; i++)
		sbuf_addch(&sb, ']');
	t = toml_parse(sb.buf, sb.len, &err);
	assert_non_null(t);
	toml_free(t);
	/* One more is not, and the error points at the bracket too many. */
	sbuf_reset(&sb);
	sbuf_adds(&sb, "a = ");
	for (int i = 0; i <= TOML_MAX_DEPTH; i++)
		sbuf_addch(&sb, '[');
	for (int i = 0; i <= TOML_MAX_DEPTH; i++)
		sbuf_addch(&sb, ']');
	parse_bad(sb.buf, sb.len, 1, 5 + TOML_MAX_DEPTH, "nesting");

	/* A million brackets or braces: rejected early, no stack blow-up. */
	sbuf_reset(&sb);
	sbuf_adds(&sb, "a = ");
	for (int i = 0; i < 1000000; i++)
		sbuf_addch(&sb, '[');
	parse_bad(sb.buf, sb.len, 1, 5 + TOML_MAX_DEPTH, "nesting");
	sbuf_reset(&sb);
	sbuf_adds(&sb, "a = ");
	for (int i = 0; i < 100000; i++)
		sbuf_adds(&sb, "{b=");
	t = toml_parse(sb.buf, sb.len, &err);
	assert_null(t);
	assert_non_null(strstr(err.msg, "nesting"));

	/* Dotted keys and headers count too. */
	sbuf_reset(&sb);
	for (int i = 0; i < 2 * TOML_MAX_DEPTH; i++)
		sbuf_adds(&sb, i ? ".k" : "k");
	sbuf_adds(&sb, " = 1\n");
	t = toml_parse(sb.buf, sb.len, &err);
	assert_null(t);
	assert_non_null(strstr(err.msg, "parts"));
	sbuf_reset(&sb);
	sbuf_adds(&sb, "[k");
	for (int i = 1; i < TOML_MAX_DEPTH; i++)
		sbuf_adds(&sb, ".k");
	sbuf_adds(&sb, "]\nx = {}\n");
	parse_bad(sb.buf, sb.len, 2, 5, "nesting");
	sbuf_release(&sb);
}

static void
test_parse_file(void **state)
{
	char path[] = "/tmp/test_toml.XXXXXX";
	struct toml_error err;
	struct toml_table *t;
	FILE *fp;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	fputs("[runners.docker]\nimage = \"alpine\"\n", fp);
	assert_int_equal(fclose(fp), 0);
	t = toml_parse_file(path, &err);
	assert_non_null(t);
	assert_string_equal(get(subtable(subtable(t, "runners"), "docker"),
	    "image", TOML_STRING)->u.str.ptr, "alpine");
	toml_free(t);

	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("a = 1\nb = [\n", fp);
	assert_int_equal(fclose(fp), 0);
	assert_null(toml_parse_file(path, &err));
	assert_int_equal(err.line, 3);
	unlink(path);

	assert_null(toml_parse_file(path, &err));
	assert_int_equal(err.line, 0);
	assert_non_null(strstr(err.msg, "No such file"));
	assert_null(toml_parse_file("/", &err));
	assert_int_equal(err.line, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_positions),
		cmocka_unit_test(test_crlf_and_bom),
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_redefinitions_allowed),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_write_string),
		cmocka_unit_test(test_write_key),
		cmocka_unit_test(test_write_datetime),
		cmocka_unit_test(test_write_value),
		cmocka_unit_test(test_large_table),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_parse_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

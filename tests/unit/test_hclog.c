/* Unit tests of plugin output handling: lines, hclog parsing, rate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hclog.h"
#include "xmalloc.h"

static const char *
field(const struct hclog_entry *e, const char *key)
{
	for (size_t i = 0; i < e->nfields; i++) {
		if (strcmp(e->fields[i].key, key) == 0)
			return e->fields[i].value;
	}
	return NULL;
}

static void
parse(struct hclog_state *st, const char *line, struct hclog_entry *e)
{
	hclog_parse(st, line, strlen(line), e);
}

static void
test_json(void **state)
{
	struct hclog_entry e;

	(void)state;
	parse(NULL, "{\"@level\":\"warn\",\"@message\":\"disk full\","
	    "\"@module\":\"aws\",\"@timestamp\":\"2024-01-02T03:04:05.000006Z\","
	    "\"@caller\":\"x.go:12\",\"group\":\"aws/eu/asg\",\"count\":3,"
	    "\"ok\":true,\"nested\":{\"a\":[1,2]},\"nothing\":null}", &e);
	assert_true(e.json);
	assert_int_equal(e.level, LOG_WARN);
	assert_string_equal(e.message, "disk full");
	assert_string_equal(e.timestamp, "2024-01-02T03:04:05.000006Z");
	assert_string_equal(field(&e, "module"), "aws");
	assert_string_equal(field(&e, "caller"), "x.go:12");
	assert_string_equal(field(&e, "group"), "aws/eu/asg");
	assert_string_equal(field(&e, "count"), "3");
	assert_string_equal(field(&e, "ok"), "true");
	assert_string_equal(field(&e, "nested"), "{\"a\":[1,2]}");
	assert_string_equal(field(&e, "nothing"), "null");
	assert_null(field(&e, "@level"));
	assert_null(field(&e, "level"));
	assert_int_equal(e.nfields, 7);
	hclog_entry_release(&e);
}

static void
test_json_levels(void **state)
{
	static const struct {
		const char *lvl;
		enum log_level want;
	} cases[] = {
		{ "trace", LOG_DEBUG }, { "debug", LOG_DEBUG },
		{ "info", LOG_INFO }, { "warn", LOG_WARN },
		{ "WARNING", LOG_WARN }, { "error", LOG_ERROR },
		{ "bogus", LOG_INFO }, { "", LOG_INFO },
	};
	struct hclog_entry e;
	char line[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(line, sizeof(line), "{\"@level\":\"%s\","
		    "\"@message\":\"m\"}", cases[i].lvl);
		parse(NULL, line, &e);
		assert_true(e.json);
		assert_int_equal(e.level, cases[i].want);
		hclog_entry_release(&e);
	}
	/* No @level, no @message; a non-string level. */
	parse(NULL, "{\"k\":\"v\"}", &e);
	assert_true(e.json);
	assert_int_equal(e.level, LOG_INFO);
	assert_string_equal(e.message, "");
	assert_string_equal(field(&e, "k"), "v");
	hclog_entry_release(&e);
	parse(NULL, "  {\"@level\":3,\"@message\":42}", &e);
	assert_true(e.json);
	assert_int_equal(e.level, LOG_INFO);
	assert_string_equal(e.message, "42");
	hclog_entry_release(&e);
}

static void
test_text(void **state)
{
	struct hclog_state st = { 0 };
	struct hclog_entry e;

	(void)state;
	parse(&st, "just some words", &e);
	assert_false(e.json);
	assert_int_equal(e.level, LOG_INFO);
	assert_string_equal(e.message, "just some words");
	assert_int_equal(e.nfields, 0);
	hclog_entry_release(&e);

	parse(&st, "[DEBUG] details here", &e);
	assert_int_equal(e.level, LOG_DEBUG);
	assert_string_equal(e.message, "details here");
	hclog_entry_release(&e);
	parse(&st, "[TRACE]x", &e);
	assert_int_equal(e.level, LOG_DEBUG);
	assert_string_equal(e.message, "x");
	hclog_entry_release(&e);
	parse(&st, "[WARN]  careful", &e);
	assert_int_equal(e.level, LOG_WARN);
	assert_string_equal(e.message, "careful");
	hclog_entry_release(&e);
	parse(&st, "[ERROR] broken", &e);
	assert_int_equal(e.level, LOG_ERROR);
	hclog_entry_release(&e);
	parse(&st, "[INFO] fine", &e);
	assert_int_equal(e.level, LOG_INFO);
	hclog_entry_release(&e);

	/* Broken JSON and non-object JSON are text. */
	parse(&st, "{\"@level\":\"error\",", &e);
	assert_false(e.json);
	assert_int_equal(e.level, LOG_INFO);
	assert_string_equal(e.message, "{\"@level\":\"error\",");
	hclog_entry_release(&e);
	parse(&st, "[1,2,3]", &e);
	assert_false(e.json);
	hclog_entry_release(&e);
	parse(&st, "{\"a\":1} trailing", &e);
	assert_false(e.json);
	hclog_entry_release(&e);
	parse(&st, "", &e);
	assert_false(e.json);
	assert_string_equal(e.message, "");
	hclog_entry_release(&e);
	assert_int_equal(st.panic, 0);
}

static void
test_panic_mode(void **state)
{
	struct hclog_state st = { 0 };
	struct hclog_entry e;

	(void)state;
	parse(&st, "panic: runtime error: index out of range", &e);
	assert_int_equal(e.level, LOG_ERROR);
	hclog_entry_release(&e);
	assert_int_equal(st.panic, 1);
	parse(&st, "goroutine 1 [running]:", &e);
	assert_int_equal(e.level, LOG_ERROR);
	hclog_entry_release(&e);
	/* Tagged lines and JSON keep their own level. */
	parse(&st, "[DEBUG] still tagged", &e);
	assert_int_equal(e.level, LOG_DEBUG);
	hclog_entry_release(&e);
	parse(&st, "{\"@level\":\"info\",\"@message\":\"j\"}", &e);
	assert_int_equal(e.level, LOG_INFO);
	hclog_entry_release(&e);

	memset(&st, 0, sizeof(st));
	parse(&st, "fatal error: concurrent map writes", &e);
	assert_int_equal(e.level, LOG_ERROR);
	hclog_entry_release(&e);
	assert_int_equal(st.panic, 1);
	/* Without a state there is no panic mode. */
	parse(NULL, "panic: x", &e);
	assert_int_equal(e.level, LOG_ERROR);
	hclog_entry_release(&e);
	parse(NULL, "after", &e);
	assert_int_equal(e.level, LOG_INFO);
	hclog_entry_release(&e);
}

static void
test_keys(void **state)
{
	struct hclog_entry e;
	struct sbuf sb;

	(void)state;
	parse(NULL, "{\"we ird\\nkey=\":\"v\",\"@\":\"empty\","
	    "\"\":\"none\"}", &e);
	assert_true(e.json);
	assert_string_equal(field(&e, "we_ird_key_"), "v");
	assert_string_equal(field(&e, "_"), "empty");
	hclog_entry_release(&e);

	/* A long key is cut; more keys than the cap are dropped. */
	sbuf_init(&sb);
	sbuf_adds(&sb, "{\"");
	for (int i = 0; i < 200; i++)
		sbuf_addch(&sb, 'k');
	sbuf_adds(&sb, "\":1");
	for (int i = 0; i < 100; i++)
		sbuf_addf(&sb, ",\"f%d\":%d", i, i);
	sbuf_adds(&sb, "}");
	parse(NULL, sb.buf, &e);
	assert_true(e.json);
	assert_int_equal(e.nfields, HCLOG_MAX_FIELDS);
	for (size_t i = 0; i < e.nfields; i++)
		assert_true(strlen(e.fields[i].key) <= HCLOG_KEY_MAX);
	hclog_entry_release(&e);
	sbuf_release(&sb);
}

struct lines {
	char *v[16];
	size_t n;
};

static void
collect(void *arg, const char *line, size_t len)
{
	struct lines *l = arg;

	assert_true(l->n < 16);
	l->v[l->n++] = xstrndup(line, len);
}

static void
lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

static void
test_linebuf(void **state)
{
	struct hclog_linebuf lb;
	struct lines l = { { 0 }, 0 };

	(void)state;
	hclog_linebuf_init(&lb, 8);
	hclog_linebuf_feed(&lb, "ab", 2, collect, &l);
	assert_int_equal(l.n, 0);
	hclog_linebuf_feed(&lb, "c\r\nde\n\nf", 8, collect, &l);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0], "abc");
	assert_string_equal(l.v[1], "de");
	assert_string_equal(l.v[2], "");
	lines_free(&l);
	/* "f" is pending; an over-long line comes in pieces of 8. */
	hclog_linebuf_feed(&lb, "0123456789abcdefXY\nz", 20, collect, &l);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0], "f0123456");
	assert_string_equal(l.v[1], "789abcde");
	assert_string_equal(l.v[2], "fXY");
	lines_free(&l);
	hclog_linebuf_flush(&lb, collect, &l);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0], "z");
	lines_free(&l);
	hclog_linebuf_flush(&lb, collect, &l);
	assert_int_equal(l.n, 0);
	hclog_linebuf_release(&lb);

	hclog_linebuf_init(&lb, 0);
	assert_int_equal(lb.max, HCLOG_LINE_MAX);
	hclog_linebuf_release(&lb);
}

static void
test_ratelimit(void **state)
{
	struct hclog_ratelimit rl;
	uint64_t dropped = 99;
	int64_t t = 1000000000;
	int ok = 0;

	(void)state;
	hclog_ratelimit_init(&rl, 10, 5);
	for (int i = 0; i < 8; i++)
		ok += hclog_ratelimit_take(&rl, t, &dropped);
	assert_int_equal(ok, 5);
	assert_int_equal(dropped, 0);
	assert_int_equal(rl.dropped, 3);
	/* 100 ms later one token is back: the 3 dropped are reported. */
	t += 100000000;
	assert_int_equal(hclog_ratelimit_take(&rl, t, &dropped), 1);
	assert_int_equal(dropped, 3);
	assert_int_equal(hclog_ratelimit_take(&rl, t, &dropped), 0);
	/* A long pause refills to the burst, not more. */
	t += 60LL * 1000000000;
	ok = 0;
	for (int i = 0; i < 20; i++)
		ok += hclog_ratelimit_take(&rl, t, &dropped);
	assert_int_equal(ok, 5);
	/* A clock going backwards adds nothing. */
	assert_int_equal(hclog_ratelimit_take(&rl, t - 1000000000, &dropped),
	    0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_json_levels),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_panic_mode),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_linebuf),
		cmocka_unit_test(test_ratelimit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

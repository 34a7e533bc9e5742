/*
 * Unit tests for lib/log.c: the exact bytes of each format (the plugins'
 * hclog JSON included) with a fixed clock and time zone, escaping,
 * masking of secrets, level filtering,
 * line truncation, short tokens, colours on a terminal, log_fatal's exit,
 * and whole lines when two threads log at once.  Output is captured
 * through log_set_fd() on an unlinked temporary file opened O_APPEND.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "log.h"
#include "xmalloc.h"

/* 2026-11-28T02:21:58Z */
#define T0 1795832518

static int cap_fd = -1;
static long clock_nsec;
static int clock_calls;

static void
fixed_clock(struct timespec *ts)
{
	ts->tv_sec = T0;
	ts->tv_nsec = clock_nsec;
	clock_calls++;
}

static void
set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

static int
setup(void **state)
{
	char path[] = "/tmp/test_log.XXXXXX";

	(void)state;
	cap_fd = mkstemp(path);
	if (cap_fd < 0)
		return -1;
	unlink(path);
	if (fcntl(cap_fd, F_SETFL, O_APPEND) != 0)
		return -1;
	set_tz("UTC");
	clock_nsec = 0;
	clock_calls = 0;
	log_set_fd(cap_fd);
	log_set_clock(fixed_clock);
	log_set_level(LOG_INFO);
	log_set_format(LOG_FORMAT_RUNNER);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	log_set_fd(STDERR_FILENO);
	log_set_clock(NULL);
	log_set_level(LOG_INFO);
	log_set_format(LOG_FORMAT_RUNNER);
	log_release();
	close(cap_fd);
	cap_fd = -1;
	return 0;
}

/* Everything logged since the last call, as a heap string; then empty. */
static char *
take(size_t *lenp)
{
	struct stat st;
	char *buf;
	size_t off = 0;
	ssize_t r;

	assert_int_equal(fstat(cap_fd, &st), 0);
	buf = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		r = pread(cap_fd, buf + off, (size_t)st.st_size - off,
		    (off_t)off);
		assert_true(r > 0);
		off += (size_t)r;
	}
	buf[off] = '\0';
	assert_int_equal(ftruncate(cap_fd, 0), 0);
	if (lenp != NULL)
		*lenp = off;
	return buf;
}

static void
expect_out(const char *want)
{
	char *got = take(NULL);

	assert_string_equal(got, want);
	free(got);
}

/*
 * Append the runner format's line for an ASCII message: prefix, message
 * padded to 50 columns minus the prefix, a space, then fields (each
 * " key=value") and the newline.
 */
static void
runner_line(struct sbuf *sb, const char *prefix, const char *msg,
    const char *fields)
{
	sbuf_addf(sb, "%s%-*s %s\n", prefix, (int)(50 - strlen(prefix)), msg,
	    fields);
}

static void
expect_runner(const char *prefix, const char *msg, const char *fields)
{
	struct sbuf sb;

	sbuf_init(&sb);
	runner_line(&sb, prefix, msg, fields);
	expect_out(sb.buf);
	sbuf_release(&sb);
}

static const struct log_field start_fields[] = {
	{ "max_builds", "10" },
	{ "builds", "0" },
};

#define START_MSG "Starting multi-runner from /etc/gitlab-runner/config.toml..."

static void
test_level_and_format_names(void **state)
{
	enum log_level l;
	enum log_format f;

	(void)state;
	assert_int_equal(log_level_parse("debug", &l), 0);
	assert_int_equal(l, LOG_DEBUG);
	assert_int_equal(log_level_parse("warn", &l), 0);
	assert_int_equal(l, LOG_WARN);
	assert_int_equal(log_level_parse("Warning", &l), 0);
	assert_int_equal(l, LOG_WARN);
	assert_int_equal(log_level_parse("PANIC", &l), 0);
	assert_int_equal(l, LOG_PANIC);
	assert_int_equal(log_level_parse("fatal", &l), 0);
	assert_int_equal(l, LOG_FATAL);
	assert_int_equal(log_level_parse("error", &l), 0);
	assert_int_equal(l, LOG_ERROR);
	assert_int_equal(log_level_parse("info", &l), 0);
	assert_int_equal(l, LOG_INFO);
	assert_int_equal(log_level_parse("trace", &l), 0);
	assert_int_equal(l, LOG_DEBUG);
	assert_int_equal(log_level_parse("verbose", &l), FL_ERR_INVAL);
	assert_int_equal(log_level_parse("", &l), FL_ERR_INVAL);
	assert_int_equal(log_level_parse(NULL, &l), FL_ERR_INVAL);
	assert_string_equal(log_level_name(LOG_WARN), "warning");
	assert_string_equal(log_level_name(LOG_PANIC), "panic");
	assert_string_equal(log_level_name(LOG_DEBUG), "debug");
	assert_string_equal(log_level_name((enum log_level)42), "unknown");

	assert_int_equal(log_format_parse("runner", &f), 0);
	assert_int_equal(f, LOG_FORMAT_RUNNER);
	assert_int_equal(log_format_parse("text", &f), 0);
	assert_int_equal(f, LOG_FORMAT_TEXT);
	assert_int_equal(log_format_parse("json", &f), 0);
	assert_int_equal(f, LOG_FORMAT_JSON);
	assert_int_equal(log_format_parse("JSON", &f), FL_ERR_INVAL);
	assert_int_equal(log_format_parse("logfmt", &f), FL_ERR_INVAL);
	assert_string_equal(log_format_name(LOG_FORMAT_TEXT), "text");

	log_set_level(LOG_DEBUG);
	assert_int_equal(log_get_level(), LOG_DEBUG);
}

static void
test_runner_format(void **state)
{
	(void)state;
	log_infof(start_fields, 2, "Starting multi-runner from %s...",
	    "/etc/gitlab-runner/config.toml");
	expect_out(START_MSG "  builds=0 max_builds=10\n");

	/* Short messages are padded to 50 columns minus the prefix. */
	log_info("Short");
	expect_out("Short" "                                             "
	    " \n");	/* 5 + 45 = 50, then the space */
	log_warn("Careful %d", 1);
	expect_out("WARNING: Careful 1" "                                "
	    " \n");	/* 9 + 9 + 32 = 50 */
	log_error("Broken");
	expect_runner("ERROR: ", "Broken", "");
	log_emit(LOG_PANIC, __func__, NULL, 0, "Gone");
	expect_runner("PANIC: ", "Gone", "");
	log_emit(LOG_FATAL, __func__, NULL, 0, "Dead");
	expect_runner("FATAL: ", "Dead", "");
	log_set_level(LOG_DEBUG);
	log_emit(LOG_DEBUG, NULL, NULL, 0, "Noisy");
	expect_runner("", "Noisy", "");
	log_set_level(LOG_INFO);
	/* Padding counts characters, not bytes: 2 + 48 = 50. */
	log_info("h\xc3\xa9");
	expect_out("h\xc3\xa9" "                                                "
	    " \n");

	/* Values as they are; control characters escaped Go-style. */
	{
		const struct log_field f[] = {
			{ "path", "/a b/\"c\"" },
			{ "bad", "x\ny\x1b[31m\xff" },
			{ "tab", "a\tb" },
		};

		log_infof(f, 3, "line1\nline2\r\x7f \xe2\x80\xae");
	}
	expect_runner("", "line1\\nline2\\r\\x7f \\u202e",
	    " bad=x\\ny\\x1b[31m\\xff path=/a b/\"c\" tab=a\tb");
}

static void
test_text_format(void **state)
{
	(void)state;
	log_set_format(LOG_FORMAT_TEXT);
	log_infof(start_fields, 2, START_MSG);
	expect_out("time=\"2026-11-28T02:21:58Z\" level=info msg=\""
	    START_MSG "\" builds=0 max_builds=10\n");

	log_warn("disk_full");
	expect_out("time=\"2026-11-28T02:21:58Z\" level=warning "
	    "msg=disk_full\n");

	/* logrus leaves out an empty message. */
	log_error("%s", "");
	expect_out("time=\"2026-11-28T02:21:58Z\" level=error\n");

	{
		const struct log_field f[] = {
			{ "safe", "a-b.c_d/e@f^g+h09" },
			{ "empty", "" },
			{ "space", "a b" },
			{ "quote", "say \"hi\" \\o/" },
			{ "eq", "a=b" },
			{ "ctl", "l1\nl2\t\x1b\x7f\a" },
			{ "bad", "\xff\xc0\xaf" },
			{ "utf8", "h\xc3\xa9 \xf0\x9f\x98\x80" },
			{ "bidi", "\xe2\x80\xae\xc2\xa0" },
			{ "null", NULL },
		};

		log_infof(f, 10, "fields");
	}
	expect_out("time=\"2026-11-28T02:21:58Z\" level=info msg=fields "
	    "bad=\"\\xff\\xc0\\xaf\" bidi=\"\\u202e\\u00a0\" "
	    "ctl=\"l1\\nl2\\t\\x1b\\x7f\\a\" empty=\"\" eq=\"a=b\" "
	    "null=\"\" quote=\"say \\\"hi\\\" \\\\o/\" "
	    "safe=a-b.c_d/e@f^g+h09 space=\"a b\" "
	    "utf8=\"h\xc3\xa9 \xf0\x9f\x98\x80\"\n");

	/* Clashing keys are renamed; duplicates: the last wins. */
	{
		const struct log_field f[] = {
			{ "zeta", "1" },
			{ "msg", "x" },
			{ "k", "first" },
			{ "level", "y" },
			{ "a", "2" },
			{ "k", "second" },
			{ NULL, "ignored" },
		};

		log_infof(f, 7, "hi");
	}
	expect_out("time=\"2026-11-28T02:21:58Z\" level=info msg=hi a=2 "
	    "fields.level=y fields.msg=x k=second zeta=1\n");
}

static void
test_json_format(void **state)
{
	(void)state;
	log_set_format(LOG_FORMAT_JSON);
	log_infof(start_fields, 2, START_MSG);
	expect_out("{\"builds\":\"0\",\"level\":\"info\",\"max_builds\":\"10\","
	    "\"msg\":\"" START_MSG "\",\"time\":\"2026-11-28T02:21:58Z\"}\n");

	log_warn("%s", "");
	expect_out("{\"level\":\"warning\",\"msg\":\"\","
	    "\"time\":\"2026-11-28T02:21:58Z\"}\n");

	/* Escaping: quotes, backslash, controls, HTML, bad UTF-8. */
	log_error("q\" b\\ n\n r\r t\t a\a z\x01 del\x7f <b>&");
	expect_out("{\"level\":\"error\",\"msg\":\"q\\\" b\\\\ n\\n r\\r "
	    "t\\t a\\u0007 z\\u0001 del\x7f \\u003cb\\u003e\\u0026\","
	    "\"time\":\"2026-11-28T02:21:58Z\"}\n");
	{
		const struct log_field f[] = {
			{ "invalid", "\xff\xfe" },
			{ "overlong", "\xc0\xaf" },
			{ "surrogate", "\xed\xa0\x80" },
			{ "cut", "\xe2\x82x" },
			{ "toobig", "\xf4\x90\x80\x80" },
			{ "valid", "h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" },
			{ "sep", "a\xe2\x80\xa8" "b\xe2\x80\xa9" },
			{ "k\"ey", "v" },
			{ "time", "fake" },
		};

		log_infof(f, 9, "m");
	}
	expect_out("{\"cut\":\"\\ufffd\\ufffdx\",\"fields.time\":\"fake\","
	    "\"invalid\":\"\\ufffd\\ufffd\",\"k\\\"ey\":\"v\","
	    "\"level\":\"info\",\"msg\":\"m\","
	    "\"overlong\":\"\\ufffd\\ufffd\","
	    "\"sep\":\"a\\u2028b\\u2029\","
	    "\"surrogate\":\"\\ufffd\\ufffd\\ufffd\","
	    "\"time\":\"2026-11-28T02:21:58Z\","
	    "\"toobig\":\"\\ufffd\\ufffd\\ufffd\\ufffd\","
	    "\"valid\":\"h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}\n");
}

/* The plugins' hclog JSON: @-keys, hclog level names, six-digit times. */
static void
test_hclog_format(void **state)
{
	enum log_format f;

	(void)state;
	assert_int_equal(log_format_parse("hclog", &f), FL_ERR_INVAL);
	assert_string_equal(log_format_name(LOG_FORMAT_HCLOG), "hclog");
	log_set_format(LOG_FORMAT_HCLOG);
	clock_nsec = 123456789;
	log_infof(start_fields, 2, "plugin \"x\" <ready>");
	expect_out("{\"@level\":\"info\",\"@message\":\"plugin \\\"x\\\" "
	    "\\u003cready\\u003e\",\"@timestamp\":"
	    "\"2026-11-28T02:21:58.123456Z\",\"builds\":\"0\","
	    "\"max_builds\":\"10\"}\n");

	log_set_module("fleeting-plugin-local");
	clock_nsec = 0;
	log_warn("w");
	expect_out("{\"@level\":\"warn\",\"@message\":\"w\","
	    "\"@module\":\"fleeting-plugin-local\","
	    "\"@timestamp\":\"2026-11-28T02:21:58.000000Z\"}\n");
	log_error("e");
	expect_out("{\"@level\":\"error\",\"@message\":\"e\","
	    "\"@module\":\"fleeting-plugin-local\","
	    "\"@timestamp\":\"2026-11-28T02:21:58.000000Z\"}\n");
	log_emit(LOG_FATAL, NULL, NULL, 0, "f");
	expect_out("{\"@level\":\"error\",\"@message\":\"f\","
	    "\"@module\":\"fleeting-plugin-local\","
	    "\"@timestamp\":\"2026-11-28T02:21:58.000000Z\"}\n");

	/* Fields named like the fixed keys; "msg" is an ordinary field here. */
	{
		const struct log_field fl[] = {
			{ "@message", "fake" },
			{ "msg", "plain" },
			{ "id", "local-1" },
		};

		log_infof(fl, 3, "m");
	}
	expect_out("{\"@level\":\"info\",\"@message\":\"m\","
	    "\"@module\":\"fleeting-plugin-local\","
	    "\"@timestamp\":\"2026-11-28T02:21:58.000000Z\","
	    "\"fields.@message\":\"fake\",\"id\":\"local-1\","
	    "\"msg\":\"plain\"}\n");

	/* Debug: hclog's level name and the caller as "func". */
	log_set_level(LOG_DEBUG);
	log_debug("d");
	expect_out("{\"@level\":\"debug\",\"@message\":\"d\","
	    "\"@module\":\"fleeting-plugin-local\","
	    "\"@timestamp\":\"2026-11-28T02:21:58.000000Z\","
	    "\"func\":\"test_hclog_format\"}\n");
	log_set_level(LOG_INFO);

	/* A local offset; secrets masked as everywhere. */
	set_tz("XYZ-05:30");
	log_add_secret("s3cr3t-value");
	log_set_module(NULL);
	log_info("key s3cr3t-value");
	expect_out("{\"@level\":\"info\",\"@message\":\"key [MASKED]\","
	    "\"@timestamp\":\"2026-11-28T07:51:58.000000+05:30\"}\n");
	set_tz("UTC");
	log_set_module("");
	log_info("x");
	expect_out("{\"@level\":\"info\",\"@message\":\"x\","
	    "\"@timestamp\":\"2026-11-28T02:21:58.000000Z\"}\n");
}

static void
test_time(void **state)
{
	(void)state;
	log_set_format(LOG_FORMAT_TEXT);
	clock_nsec = 123000000;
	log_info("t");
	expect_out("time=\"2026-11-28T02:21:58.123Z\" level=info msg=t\n");
	clock_nsec = 1;
	log_info("t");
	expect_out("time=\"2026-11-28T02:21:58.000000001Z\" level=info "
	    "msg=t\n");
	clock_nsec = 0;
	set_tz("XYZ-05:30");
	log_info("t");
	expect_out("time=\"2026-11-28T07:51:58+05:30\" level=info msg=t\n");
	set_tz("ABC+03");
	log_set_format(LOG_FORMAT_JSON);
	log_info("t");
	expect_out("{\"level\":\"info\",\"msg\":\"t\","
	    "\"time\":\"2026-11-27T23:21:58-03:00\"}\n");
	set_tz("UTC");

	/* The real clock: today's date in the expected shape. */
	{
		char *got, want[32];
		time_t now = time(NULL);
		struct tm tm;

		log_set_clock(NULL);
		log_info("t");
		got = take(NULL);
		gmtime_r(&now, &tm);
		strftime(want, sizeof(want), "%Y-%m-%dT", &tm);
		assert_non_null(strstr(got, want));
		assert_non_null(strstr(got, "Z\"}\n"));
		free(got);
		log_set_clock(fixed_clock);
	}
}

static void
test_func_at_debug(void **state)
{
	const struct log_field f[] = { { "builds", "1" }, { "func", "mine" } };

	(void)state;
	/* At info, no func even for lines that pass. */
	log_infof(f, 1, "Checking");
	expect_runner("", "Checking", " builds=1");

	log_set_level(LOG_DEBUG);
	log_infof(f, 2, "Checking");
	expect_runner("", "Checking",
	    " builds=1 fields.func=mine func=test_func_at_debug");
	log_debug("Feeding runners");
	expect_runner("", "Feeding runners", " func=test_func_at_debug");

	log_set_format(LOG_FORMAT_TEXT);
	log_debugf(f, 2, "d");
	expect_out("time=\"2026-11-28T02:21:58Z\" level=debug msg=d "
	    "builds=1 fields.func=mine func=test_func_at_debug\n");
	log_set_format(LOG_FORMAT_JSON);
	log_debug("d");
	expect_out("{\"func\":\"test_func_at_debug\",\"level\":\"debug\","
	    "\"msg\":\"d\",\"time\":\"2026-11-28T02:21:58Z\"}\n");
	/* A NULL func is simply left out. */
	log_emit(LOG_DEBUG, NULL, NULL, 0, "d");
	expect_out("{\"level\":\"debug\",\"msg\":\"d\","
	    "\"time\":\"2026-11-28T02:21:58Z\"}\n");
}

static void
test_level_filter(void **state)
{
	size_t len;
	char *got;

	(void)state;
	log_set_level(LOG_WARN);
	log_debug("no");
	log_info("no");
	assert_int_equal(clock_calls, 0);	/* dropped before any work */
	got = take(&len);
	assert_int_equal(len, 0);
	free(got);
	log_warn("w");
	log_error("e");
	assert_int_equal(clock_calls, 2);
	{
		struct sbuf sb;

		sbuf_init(&sb);
		runner_line(&sb, "WARNING: ", "w", "");
		runner_line(&sb, "ERROR: ", "e", "");
		expect_out(sb.buf);
		sbuf_release(&sb);
	}

	log_set_level(LOG_PANIC);
	log_error("no");
	log_emit(LOG_FATAL, __func__, NULL, 0, "no");
	log_emit(LOG_PANIC, __func__, NULL, 0, "p");
	expect_runner("PANIC: ", "p", "");
	/* Out-of-range levels are never written. */
	log_set_level(LOG_DEBUG);
	log_emit((enum log_level)9, __func__, NULL, 0, "bogus");
	log_emit((enum log_level)-1, __func__, NULL, 0, "bogus");
	got = take(&len);
	assert_int_equal(len, 0);
	free(got);
}

static void
test_secrets(void **state)
{
	const struct log_field f[] = {
		{ "auth", "Bearer s3cr3t-token" },
		{ "s3cr3t-token", "keys are not masked" },
	};

	(void)state;
	log_add_secret("s3cr3t-token");
	log_add_secret("s3cr3t-token");	/* duplicate: ignored */
	log_add_secret("abc");		/* too short: ignored */
	log_add_secret("");
	log_add_secret(NULL);
	log_infof(f, 2, "token %s and abc, twice s3cr3t-tokens3cr3t-token.",
	    "s3cr3t-token");
	expect_runner("", "token [MASKED] and abc, twice [MASKED].",
	    " auth=Bearer [MASKED] s3cr3t-token=keys are not masked");

	/* Overlapping secrets leave no fragment whichever order. */
	log_add_secret("ef123456");
	log_add_secret("abcdef12");
	log_set_format(LOG_FORMAT_JSON);
	log_info("xxabcdef123456yy ef123456abcdef12 abcdef1");
	expect_out("{\"level\":\"info\",\"msg\":\"xx[MASKED]yy [MASKED] "
	    "abcdef1\",\"time\":\"2026-11-28T02:21:58Z\"}\n");

	/* Masked before escaping, in text too. */
	log_add_secret("p\"w\nd");
	log_set_format(LOG_FORMAT_TEXT);
	{
		const struct log_field g[] = { { "pw", "<p\"w\nd>" } };

		log_infof(g, 1, "p\"w\nd");
	}
	expect_out("time=\"2026-11-28T02:21:58Z\" level=info msg=\"[MASKED]\" "
	    "pw=\"<[MASKED]>\"\n");

	/* One secret forgotten, the others still masked. */
	log_remove_secret("ef123456");
	log_remove_secret("never-added");
	log_info("ef123456 s3cr3t-token");
	expect_out("time=\"2026-11-28T02:21:58Z\" level=info "
	    "msg=\"ef123456 [MASKED]\"\n");

	log_clear_secrets();
	log_info("s3cr3t-token");
	expect_out("time=\"2026-11-28T02:21:58Z\" level=info "
	    "msg=s3cr3t-token\n");
	log_clear_secrets();	/* twice is fine */
}

static void
test_short_token(void **state)
{
	char out[9];
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "glrt-t1_0123456789abcdef", "01234567" },
		{ "glrt-t3_ab", "ab" },
		{ "glrt-abcdefghijkl", "abcdefgh" },
		{ "glrt-t4_abcdefgh", "t4_abcde" },
		{ "glrtr-zyxwvutsrq", "zyxwvuts" },
		{ "t2_ABCDEFGHIJ", "ABCDEFGH" },
		{ "glcbt-64_QWERTYUIOP", "64_QWERT" },
		{ "GR1348941abcdefghijkl", "abcdefgh" },
		{ "GR13489a1Zbcdefghijkl", "Zbcdefgh" },
		{ "GR134894xyzxyzxyz", "GR134894" },
		{ "glpat-1234567890", "glpat-12" },
		{ "plain1234567890", "plain123" },
		{ "exactly8", "exactly8" },
		{ "short", "short" },
		{ "glrt-ab", "ab" },
		{ "glrt-", "" },
		{ "", "" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(out, 'X', sizeof(out));
		assert_ptr_equal(log_short_token(cases[i].in, out), out);
		assert_string_equal(out, cases[i].want);
	}
	assert_string_equal(log_short_token(NULL, out), "");
}

/* True when s[0..n) is all c. */
static int
all_of(const char *s, size_t n, char c)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] != c)
			return 0;
	return 1;
}

static void
test_truncation(void **state)
{
	size_t n = 100000, len, body;
	char *big = xmalloc(n + 1), *got, *p;

	(void)state;
	/* Runner: one huge message. */
	memset(big, 'a', n);
	big[n] = '\0';
	log_info("%s", big);
	got = take(&len);
	assert_true(len <= LOG_LINE_MAX);
	assert_true(len > LOG_LINE_MAX - 200);
	p = strstr(got, "...[truncated] \n");
	assert_non_null(p);
	assert_int_equal((size_t)(p - got) + strlen("...[truncated] \n"), len);
	assert_true(all_of(got, (size_t)(p - got), 'a'));
	free(got);

	/* Multibyte: cut on a character boundary. */
	for (len = 0; len + 2 <= n; len += 2)
		memcpy(big + len, "\xc3\xa9", 2);
	big[len] = '\0';
	log_info("%s", big);
	got = take(&len);
	assert_true(len <= LOG_LINE_MAX);
	p = strstr(got, "...[truncated] \n");
	assert_non_null(p);
	assert_int_equal((p - got) % 2, 0);
	free(got);

	/* JSON: each \u0001 escape stays whole; small fields survive. */
	memset(big, 1, n);
	big[n] = '\0';
	log_set_format(LOG_FORMAT_JSON);
	{
		const struct log_field f[] = { { "id", "42" } };

		log_infof(f, 1, "%s", big);
	}
	got = take(&len);
	assert_true(len <= LOG_LINE_MAX);
	assert_true(len > LOG_LINE_MAX - 200);
	assert_memory_equal(got, "{\"id\":\"42\",\"level\":\"info\",\"msg\":\"",
	    strlen("{\"id\":\"42\",\"level\":\"info\",\"msg\":\""));
	p = strstr(got, "...[truncated]\",\"time\":\"2026-11-28T02:21:58Z\"}\n");
	assert_non_null(p);
	assert_int_equal(p + strlen("...[truncated]\",\"time\":"
	    "\"2026-11-28T02:21:58Z\"}\n") - got, (ptrdiff_t)len);
	body = (size_t)(p - got) - strlen("{\"id\":\"42\",\"level\":\"info\","
	    "\"msg\":\"");
	assert_int_equal(body % 6, 0);
	assert_memory_equal(p - 6, "\\u0001", 6);
	free(got);

	/* Text: a huge field is cut, the modest message stays whole. */
	memset(big, 'b', n);
	big[n] = '\0';
	log_set_format(LOG_FORMAT_TEXT);
	{
		const struct log_field f[] = { { "out", big }, { "rc", "1" } };
		char msg[2001];

		memset(msg, 'm', 2000);
		msg[2000] = '\0';
		log_infof(f, 2, "%s", msg);
		got = take(&len);
		assert_true(len <= LOG_LINE_MAX);
		p = strstr(got, " msg=");
		assert_non_null(p);
		assert_true(all_of(p + 5, 2000, 'm'));
		assert_memory_equal(p + 2005, " out=\"bbbb", 10);
		assert_non_null(strstr(got, "b...[truncated]\" rc=1\n"));
		free(got);
	}

	/* Exactly at the limit: not cut. */
	log_set_format(LOG_FORMAT_RUNNER);
	big[LOG_LINE_MAX - 2] = '\0';
	log_info("%s", big);
	got = take(&len);
	assert_int_equal(len, LOG_LINE_MAX);
	assert_null(strstr(got, "[truncated]"));
	free(got);
	big[LOG_LINE_MAX - 2] = 'b';
	big[LOG_LINE_MAX - 1] = '\0';
	log_info("%s", big);
	got = take(&len);
	assert_true(len <= LOG_LINE_MAX);
	assert_non_null(strstr(got, "[truncated]"));
	free(got);
	free(big);
}

/* Colours only on a terminal: run the runner format into a pty. */
static void
test_colors_on_tty(void **state)
{
	int mfd, sfd;
	char name[128], buf[512];
	struct termios tio;
	struct pollfd pfd;
	size_t off = 0;
	ssize_t r;
	const struct log_field f[] = { { "key", "value" } };
	struct sbuf want;

	(void)state;
	/* GitLab Runner's colours: the reset follows even uncoloured info. */
	sbuf_init(&want);
	sbuf_addf(&want, "\033[0;33mWARNING: %-41s\033[0;m  "
	    "\033[0;33mkey\033[0;m=value\n", "Careful");
	sbuf_addf(&want, "%-50s\033[0;m  key\033[0;m=value\n", "Plain");
	sbuf_addf(&want, "\033[31;1mERROR: %-43s\033[0;m \n", "x");
	sbuf_addf(&want, "\033[37;1m%-50s\033[0;m \n", "d");

	mfd = posix_openpt(O_RDWR | O_NOCTTY);
	if (mfd < 0 || grantpt(mfd) != 0 || unlockpt(mfd) != 0 ||
	    ptsname_r(mfd, name, sizeof(name)) != 0) {
		if (mfd >= 0)
			close(mfd);
		sbuf_release(&want);
		skip();
	}
	sfd = open(name, O_RDWR | O_NOCTTY);
	assert_true(sfd >= 0);
	assert_int_equal(tcgetattr(sfd, &tio), 0);
	cfmakeraw(&tio);
	assert_int_equal(tcsetattr(sfd, TCSANOW, &tio), 0);

	log_set_fd(sfd);
	log_warnf(f, 1, "Careful");
	log_infof(f, 1, "Plain");
	log_error("x");
	log_set_level(LOG_DEBUG);
	log_emit(LOG_DEBUG, NULL, NULL, 0, "d");
	log_set_level(LOG_INFO);
	log_set_fd(cap_fd);

	pfd.fd = mfd;
	pfd.events = POLLIN;
	while (off < want.len && poll(&pfd, 1, 2000) == 1) {
		r = read(mfd, buf + off, sizeof(buf) - 1 - off);
		if (r <= 0)
			break;
		off += (size_t)r;
	}
	buf[off] = '\0';
	assert_string_equal(buf, want.buf);
	sbuf_release(&want);
	close(sfd);
	close(mfd);

	/* The capture file is no terminal: no colours. */
	log_warn("x");
	expect_runner("WARNING: ", "x", "");
}

static void
test_fatal_exits(void **state)
{
	int p[2], status;
	pid_t pid;
	char buf[256];
	size_t off = 0;
	ssize_t r;

	(void)state;
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		log_set_fd(p[1]);
		log_add_secret("hunter22");
		log_fatal("cannot start: %s", "hunter22");
	}
	close(p[1]);
	while ((r = read(p[0], buf + off, sizeof(buf) - 1 - off)) > 0)
		off += (size_t)r;
	buf[off] = '\0';
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_string_equal(buf,
	    "FATAL: cannot start: [MASKED]" "                     "
	    " \n");	/* 7 + 22 + 21 = 50 */
}

/*
 * Two threads log 1000 JSON lines each while a third adds and clears
 * secrets; every line must come out whole and exactly once.
 */
#define NLINES 1000
#define PAYLOAD_LEN 300

static char payload[PAYLOAD_LEN + 1];
static volatile int stop_churn;

static void *
logger_thread(void *arg)
{
	const char *name = arg;
	char seq[16];
	int i;

	for (i = 0; i < NLINES; i++) {
		struct log_field f[] = { { "thread", name }, { "seq", seq } };

		snprintf(seq, sizeof(seq), "%d", i);
		log_infof(f, 2, "line %d from %s %s", i, name, payload);
	}
	return NULL;
}

static void *
churn_thread(void *arg)
{
	(void)arg;
	while (!stop_churn) {
		log_add_secret("zzzz-never-logged");
		log_add_secret("qqqq-never-logged");
		log_clear_secrets();
	}
	return NULL;
}

static void
test_threads(void **state)
{
	pthread_t a, b, c;
	char *got, *line, *nl, want[1024];
	int seen[2][NLINES], i, t, nlines = 0;
	size_t len;

	(void)state;
	for (i = 0; i < PAYLOAD_LEN; i++)
		payload[i] = (char)('a' + i % 26);
	payload[PAYLOAD_LEN] = '\0';
	memset(seen, 0, sizeof(seen));
	log_set_format(LOG_FORMAT_JSON);
	stop_churn = 0;
	assert_int_equal(pthread_create(&c, NULL, churn_thread, NULL), 0);
	assert_int_equal(pthread_create(&a, NULL, logger_thread, "A"), 0);
	assert_int_equal(pthread_create(&b, NULL, logger_thread, "B"), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	stop_churn = 1;
	pthread_join(c, NULL);

	got = take(&len);
	for (line = got; *line != '\0'; line = nl + 1) {
		char name[2];
		int seq;

		nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		assert_int_equal(sscanf(line, "{\"level\":\"info\",\"msg\":"
		    "\"line %d from %1[AB] ", &seq, name), 2);
		assert_true(seq >= 0 && seq < NLINES);
		snprintf(want, sizeof(want), "{\"level\":\"info\",\"msg\":"
		    "\"line %d from %s %s\",\"seq\":\"%d\",\"thread\":\"%s\","
		    "\"time\":\"2026-11-28T02:21:58Z\"}", seq, name, payload,
		    seq, name);
		assert_string_equal(line, want);
		t = name[0] - 'A';
		assert_int_equal(seen[t][seq], 0);
		seen[t][seq] = 1;
		nlines++;
	}
	assert_int_equal(nlines, 2 * NLINES);
	free(got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_level_and_format_names,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_runner_format, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_text_format, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_json_format, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_hclog_format, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_func_at_debug, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_level_filter, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_secrets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_short_token, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_truncation, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_colors_on_tty, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fatal_exits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * joblog: the exact bytes of section markers (collapsed or not, with and
 * without a header) and of coloured runner lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "joblog.h"
#include "xmalloc.h"

static void
test_sections(void **state)
{
	struct sbuf sb;

	(void)state;
	sbuf_init(&sb);
	joblog_section_start(&sb, 1700000000, "get_sources",
	    "Getting source from Git repository", 0);
	assert_string_equal(sb.buf,
	    "section_start:1700000000:get_sources\r\033[0K"
	    "\033[36;1mGetting source from Git repository\033[0;m\n");
	sbuf_reset(&sb);
	joblog_section_start(&sb, 5, "step_script", NULL, 1);
	assert_string_equal(sb.buf,
	    "section_start:5:step_script[collapsed=true]\r\033[0K");
	sbuf_reset(&sb);
	joblog_section_end(&sb, INT64_C(1700000123), "step_script");
	assert_string_equal(sb.buf,
	    "section_end:1700000123:step_script\r\033[0K");
	sbuf_reset(&sb);
	/* Appends. */
	sbuf_adds(&sb, "x");
	joblog_section_end(&sb, 0, "a");
	assert_string_equal(sb.buf, "xsection_end:0:a\r\033[0K");
	sbuf_release(&sb);
}

static void
test_lines(void **state)
{
	struct sbuf sb;

	(void)state;
	sbuf_init(&sb);
	joblog_line(&sb, JOBLOG_PLAIN, "Running with flotilla %s", "0.1");
	assert_string_equal(sb.buf, "Running with flotilla 0.1\n");
	sbuf_reset(&sb);
	joblog_line(&sb, JOBLOG_NOTICE, "Job succeeded");
	assert_string_equal(sb.buf, "\033[32;1mJob succeeded\033[0;m\n");
	sbuf_reset(&sb);
	joblog_line(&sb, JOBLOG_WARNING, "WARNING: %d things\n", 3);
	assert_string_equal(sb.buf, "\033[0;33mWARNING: 3 things\033[0;m\n");
	sbuf_reset(&sb);
	joblog_line(&sb, JOBLOG_ERROR, "ERROR: Job failed: exit code %d", 3);
	assert_string_equal(sb.buf,
	    "\033[31;1mERROR: Job failed: exit code 3\033[0;m\n");
	sbuf_reset(&sb);
	joblog_line(&sb, JOBLOG_PLAIN, "%s", "");
	assert_string_equal(sb.buf, "\n");
	assert_string_equal(joblog_color(JOBLOG_PLAIN), "");
	sbuf_release(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

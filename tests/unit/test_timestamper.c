/*
 * manager/timestamper: GitLab's job log line headers, byte for byte, and
 * the splitting of lines across writes, carriage returns and long lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "timestamper.h"
#include "xmalloc.h"

/* 2019-11-04T11:12:13.123456Z */
#define T0	(INT64_C(1572865933) * 1000000 + 123456)
#define H0	"2019-11-04T11:12:13.123456Z "

static void
expect_out(struct sbuf *out, const char *want)
{
	sbuf_addch(out, '\0');
	assert_string_equal(out->buf, want);
	sbuf_reset(out);
}

static void
test_header(void **state)
{
	char h[TSTAMP_HEADER_LEN + 1];

	(void)state;
	tstamp_header(h, T0, 1, 'O', ' ');
	h[TSTAMP_HEADER_LEN] = '\0';
	assert_string_equal(h, H0 "01O ");
	tstamp_header(h, T0 + 1, 0x1f, 'E', '+');
	assert_memory_equal(h, "2019-11-04T11:12:13.123457Z 1fE+", 32);
	/* the first microsecond of a year */
	tstamp_header(h, INT64_C(1704067200) * 1000000 + 7, 0, 'O', ' ');
	assert_memory_equal(h, "2024-01-01T00:00:00.000007Z 00O ", 32);
}

static void
test_lines(void **state)
{
	struct tstamp t;
	struct sbuf out;

	(void)state;
	sbuf_init(&out);
	tstamp_init(&t, 1, TSTAMP_STDOUT);
	/* two whole lines in one write */
	tstamp_write(&t, "a\nbb\n", 5, T0, &out);
	expect_out(&out, H0 "01O a\n" H0 "01O bb\n");
	/* a partial line waits, keeps its first time, ends later */
	tstamp_write(&t, "par", 3, T0, &out);
	expect_out(&out, "");
	tstamp_write(&t, "tial\nnext", 9, T0 + 1000000, &out);
	expect_out(&out, H0 "01O partial\n");
	tstamp_close(&t, &out);
	expect_out(&out, "2019-11-04T11:12:14.123456Z 01O next\n");
	tstamp_close(&t, &out);
	expect_out(&out, "");
	tstamp_release(&t);
	sbuf_release(&out);
}

static void
test_carriage_return(void **state)
{
	struct tstamp t;
	struct sbuf out;

	(void)state;
	sbuf_init(&out);
	tstamp_init(&t, 1, TSTAMP_STDERR);
	/* a progress bar goes out whole, the next line continues it */
	tstamp_write(&t, "10%\r", 4, T0, &out);
	expect_out(&out, H0 "01E 10%\r\n");
	tstamp_write(&t, "50%\r", 4, T0, &out);
	expect_out(&out, H0 "01E+50%\r\n");
	tstamp_write(&t, "done\n", 5, T0, &out);
	expect_out(&out, H0 "01E+done\n");
	tstamp_write(&t, "x\n", 2, T0, &out);
	expect_out(&out, H0 "01E x\n");
	tstamp_release(&t);
	sbuf_release(&out);
}

static void
test_long_line(void **state)
{
	struct tstamp t;
	struct sbuf out;
	char *big = xmalloc(TSTAMP_BUF_MAX + 10);

	(void)state;
	memset(big, 'x', TSTAMP_BUF_MAX + 10);
	sbuf_init(&out);
	tstamp_init(&t, 0, TSTAMP_STDOUT);
	tstamp_write(&t, big, 100, T0, &out);
	assert_int_equal(out.len, 0);
	/* over the buffer: out now, with a newline, then continued */
	tstamp_write(&t, big, TSTAMP_BUF_MAX, T0, &out);
	assert_int_equal(out.len, TSTAMP_HEADER_LEN + 100 + TSTAMP_BUF_MAX + 1);
	assert_memory_equal(out.buf, H0 "00O x", 33);
	assert_int_equal(out.buf[out.len - 1], '\n');
	sbuf_reset(&out);
	tstamp_write(&t, "end\n", 4, T0, &out);
	expect_out(&out, H0 "00O+end\n");
	tstamp_release(&t);
	sbuf_release(&out);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_carriage_return),
		cmocka_unit_test(test_long_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

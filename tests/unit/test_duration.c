/*
 * Go duration syntax: tables of what time.ParseDuration accepts and
 * rejects and what Duration.String() prints (values as Go's own tests
 * and the runner's documentation use them), plus a round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "duration.h"
#include "err.h"

#define NS	DURATION_NS
#define US	DURATION_US
#define MS	DURATION_MS
#define SEC	DURATION_SEC
#define MIN	DURATION_MIN
#define HOUR	DURATION_HOUR

static const struct {
	const char *in;
	int64_t want;
} good[] = {
	{ "0", 0 },
	{ "-0", 0 },
	{ "+0", 0 },
	{ "5s", 5 * SEC },
	{ "30s", 30 * SEC },
	{ "1478s", 1478 * SEC },
	{ "-5s", -5 * SEC },
	{ "+5s", 5 * SEC },
	{ "5.0s", 5 * SEC },
	{ "5.6s", 5 * SEC + 600 * MS },
	{ "5.s", 5 * SEC },
	{ ".5s", 500 * MS },
	{ "1.0s", SEC },
	{ "1.00s", SEC },
	{ "1.004s", SEC + 4 * MS },
	{ "1.0040s", SEC + 4 * MS },
	{ "100.00100s", 100 * SEC + MS },
	{ "10ns", 10 * NS },
	{ "11us", 11 * US },
	{ "12\xc2\xb5s", 12 * US },	/* U+00B5 */
	{ "12\xce\xbcs", 12 * US },	/* U+03BC */
	{ "13ms", 13 * MS },
	{ "14s", 14 * SEC },
	{ "15m", 15 * MIN },
	{ "16h", 16 * HOUR },
	{ "1h30m", HOUR + 30 * MIN },
	{ "1.5h", HOUR + 30 * MIN },
	{ "-1.5h", -(HOUR + 30 * MIN) },
	{ "1h0m0.5s", HOUR + 500 * MS },
	{ "3h30m", 3 * HOUR + 30 * MIN },
	{ "10.5s4m", 4 * MIN + 10 * SEC + 500 * MS },
	{ "-2m3.4s", -(2 * MIN + 3 * SEC + 400 * MS) },
	{ "1h2m3s4ms5us6ns",
	  HOUR + 2 * MIN + 3 * SEC + 4 * MS + 5 * US + 6 * NS },
	{ "39h9m14.425s", 39 * HOUR + 9 * MIN + 14 * SEC + 425 * MS },
	{ "52763797000ns", INT64_C(52763797000) },
	{ "0.3333333333333333333h", 20 * MIN },
	{ "9007199254740993ns", (INT64_C(1) << 53) + 1 },
	{ "9223372036854775807ns", INT64_MAX },
	{ "9223372036854775.807us", INT64_MAX },
	{ "9223372036s854ms775us807ns", INT64_MAX },
	{ "-9223372036854775808ns", INT64_MIN },
	{ "-9223372036854775.808us", INT64_MIN },
	{ "-9223372036s854ms775us808ns", INT64_MIN },
	{ "-2562047h47m16.854775808s", INT64_MIN },
	{ "0.100000000000000000000h", 6 * MIN },
	{ "0.830103483285477580700h",
	  49 * MIN + 48 * SEC + 372539827 * NS },
	{ "15m", 15 * MIN },		/* instance_acquire_timeout default */
	{ "2s", 2 * SEC },		/* update_interval_when_expecting */
	{ "20m0s", 20 * MIN },
	{ "1.5\xc2\xb5s", 1500 * NS },
	{ "0.000000001s", 1 },
	{ "0.0000000009s", 0 },		/* below a nanosecond: truncated */
	{ "0s", 0 },
	{ "00s", 0 },
	{ "0h0m0s", 0 },
};

static const struct {
	const char *in;
	int want;
} bad[] = {
	{ "", FL_ERR_PARSE },
	{ "3", FL_ERR_PARSE },
	{ "10", FL_ERR_PARSE },
	{ "00", FL_ERR_PARSE },
	{ "-", FL_ERR_PARSE },
	{ "+", FL_ERR_PARSE },
	{ "s", FL_ERR_PARSE },
	{ ".", FL_ERR_PARSE },
	{ "-.", FL_ERR_PARSE },
	{ ".s", FL_ERR_PARSE },
	{ "+.s", FL_ERR_PARSE },
	{ "1d", FL_ERR_PARSE },
	{ "1H", FL_ERR_PARSE },
	{ "1 h", FL_ERR_PARSE },
	{ " 1h", FL_ERR_PARSE },
	{ "1h ", FL_ERR_PARSE },
	{ "1h30", FL_ERR_PARSE },
	{ "--1s", FL_ERR_PARSE },
	{ "1s-1s", FL_ERR_PARSE },
	{ "1..5s", FL_ERR_PARSE },
	{ "1.5.5s", FL_ERR_PARSE },
	{ "1e3s", FL_ERR_PARSE },
	{ "\x85\x85", FL_ERR_PARSE },
	{ "\xff" "ff", FL_ERR_PARSE },
	{ "hello \xff" "ff world", FL_ERR_PARSE },
	{ "1\xc2s", FL_ERR_PARSE },
	{ "9223372036854775808ns", FL_ERR_RANGE },
	{ "9223372036854775.808us", FL_ERR_RANGE },
	{ "9223372036854ms775us808ns", FL_ERR_RANGE },
	{ "-9223372036854775809ns", FL_ERR_RANGE },
	{ "2562048h", FL_ERR_RANGE },
	{ "99999999999999999999s", FL_ERR_RANGE },
	{ "106751d", FL_ERR_PARSE },
};

static void
test_parse_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int64_t ns = 12345;
		int r = duration_parse(good[i].in, &ns);

		if (r != 0 || ns != good[i].want)
			fail_msg("duration_parse(\"%s\") = %d, %lld; want %lld",
			    good[i].in, r, (long long)ns,
			    (long long)good[i].want);
	}
}

static void
test_parse_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t ns = 12345;
		int r = duration_parse(bad[i].in, &ns);

		if (r != bad[i].want || ns != 12345)
			fail_msg("duration_parse(\"%s\") = %d (ns %lld); want %d",
			    bad[i].in, r, (long long)ns, bad[i].want);
	}
	assert_int_equal(duration_parse(NULL, &(int64_t){ 0 }), FL_ERR_PARSE);
}

static const struct {
	int64_t in;
	const char *want;
} fmts[] = {
	{ 0, "0s" },
	{ 1, "1ns" },
	{ -1, "-1ns" },
	{ 999, "999ns" },
	{ US, "1\xc2\xb5s" },
	{ 1100, "1.1\xc2\xb5s" },
	{ 2200 * US, "2.2ms" },
	{ 500 * MS, "500ms" },
	{ 3300 * MS, "3.3s" },
	{ 1500 * MS, "1.5s" },
	{ 4 * MIN + 5 * SEC, "4m5s" },
	{ 4 * MIN + 5001 * MS, "4m5.001s" },
	{ 5 * HOUR + 6 * MIN + 7001 * MS, "5h6m7.001s" },
	{ 8 * MIN + 1, "8m0.000000001s" },
	{ 20 * MIN, "20m0s" },
	{ HOUR + 30 * MIN, "1h30m0s" },
	{ HOUR, "1h0m0s" },
	{ HOUR + 1, "1h0m0.000000001s" },
	{ 60 * SEC, "1m0s" },
	{ SEC, "1s" },
	{ -(2 * MIN + 3500 * MS), "-2m3.5s" },
	{ -500 * MS, "-500ms" },
	{ INT64_MAX, "2562047h47m16.854775807s" },
	{ INT64_MIN, "-2562047h47m16.854775808s" },
};

static void
test_format(void **state)
{
	char buf[DURATION_STRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		duration_format(fmts[i].in, buf, sizeof(buf));
		if (strcmp(buf, fmts[i].want) != 0)
			fail_msg("duration_format(%lld) = \"%s\"; want \"%s\"",
			    (long long)fmts[i].in, buf, fmts[i].want);
	}
}

static void
test_format_truncates(void **state)
{
	char buf[8];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	duration_format(HOUR + 30 * MIN, buf, 5);
	assert_string_equal(buf, "1h30");
	assert_int_equal(buf[5], 'x');
	duration_format(HOUR, buf, 1);
	assert_string_equal(buf, "");
	buf[0] = 'x';
	duration_format(HOUR, buf, 0);		/* nothing written */
	assert_int_equal(buf[0], 'x');
	/* The longest output fits in 26 bytes. */
	char exact[26];
	duration_format(INT64_MIN, exact, sizeof(exact));
	assert_string_equal(exact, "-2562047h47m16.854775808s");
}

/* Whatever we print, we read back to the same value. */
static void
test_round_trip(void **state)
{
	char buf[DURATION_STRLEN];
	uint64_t x = 88172645463325252ull;

	(void)state;
	for (int i = 0; i < 200000; i++) {
		int64_t v, back = 0;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* Spread over all magnitudes, not just huge values. */
		v = (int64_t)(x >> (x % 64));
		if (x & 1)
			v = -v;
		duration_format(v, buf, sizeof(buf));
		if (duration_parse(buf, &back) != 0 || back != v)
			fail_msg("round trip of %lld via \"%s\" gave %lld",
			    (long long)v, buf, (long long)back);
	}
	for (int64_t v = -2 * SEC; v <= 2 * SEC; v += 999999) {
		int64_t back = 0;

		duration_format(v, buf, sizeof(buf));
		assert_int_equal(duration_parse(buf, &back), 0);
		assert_int_equal(back, v);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_truncates),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

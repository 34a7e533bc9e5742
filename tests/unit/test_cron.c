/*
 * Policy periods: parsing (names, steps, lists, day-of-week 7, errors),
 * minute matching with the day-of-month/day-of-week rule, and evaluation
 * in a real zone across the 2026 DST changes, including
 * cron_next_change() checked against a minute-by-minute scan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cron.h"
#include "err.h"
#include "tz.h"

static time_t
utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm = { 0 };

	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return timegm(&tm);
}

static struct cron *
parse(const char *expr)
{
	char err[200];
	struct cron *c = cron_parse(expr, err, sizeof(err));

	if (c == NULL)
		fail_msg("cron_parse(\"%s\"): %s", expr, err);
	return c;
}

/* A broken-down time from a date and time (wday and yday filled in). */
static struct tm
at(int y, int mo, int d, int h, int mi)
{
	struct tm tm = { 0 };
	time_t t = utc(y, mo, d, h, mi, 0);

	assert_non_null(gmtime_r(&t, &tm));
	return tm;
}

static const struct {
	const char *expr;
	int y, mo, d, h, mi;
	int want;
} matches[] = {
	{ "* * * * *", 2026, 3, 29, 2, 30, 1 },
	{ "* * * * *", 2000, 2, 29, 23, 59, 1 },
	/* 2026-03-27 is a Friday, 2026-03-28 a Saturday. */
	{ "* 8-15 * * mon-fri", 2026, 3, 27, 8, 0, 1 },
	{ "* 8-15 * * mon-fri", 2026, 3, 27, 15, 59, 1 },
	{ "* 8-15 * * mon-fri", 2026, 3, 27, 16, 0, 0 },
	{ "* 8-15 * * mon-fri", 2026, 3, 27, 7, 59, 0 },
	{ "* 8-15 * * mon-fri", 2026, 3, 28, 10, 0, 0 },
	{ "* 8-15 * * MON-FRI", 2026, 3, 23, 12, 0, 1 },
	{ "1 * * * *", 2026, 3, 27, 12, 1, 1 },
	{ "1 * * * *", 2026, 3, 27, 12, 2, 0 },
	{ "1 * * * *", 2026, 3, 27, 12, 0, 0 },
	{ "*/15 * * * *", 2026, 1, 1, 0, 45, 1 },
	{ "*/15 * * * *", 2026, 1, 1, 0, 44, 0 },
	{ "5/20 * * * *", 2026, 1, 1, 0, 25, 1 },
	{ "5/20 * * * *", 2026, 1, 1, 0, 45, 1 },
	{ "5/20 * * * *", 2026, 1, 1, 0, 0, 0 },
	{ "10-30/10 * * * *", 2026, 1, 1, 0, 30, 1 },
	{ "10-30/10 * * * *", 2026, 1, 1, 0, 40, 0 },
	{ "10-30/10 * * * *", 2026, 1, 1, 0, 15, 0 },
	{ "0,30 9,17 * * *", 2026, 1, 1, 17, 30, 1 },
	{ "0,30 9,17 * * *", 2026, 1, 1, 10, 30, 0 },
	{ "0-5,50-59 * * * *", 2026, 1, 1, 10, 55, 1 },
	{ "0-5,50-59 * * * *", 2026, 1, 1, 10, 6, 0 },
	{ "* */6 * * *", 2026, 1, 1, 18, 0, 1 },
	{ "* */6 * * *", 2026, 1, 1, 19, 0, 0 },
	/* 2026-03-29 is a Sunday. */
	{ "* * * * 0", 2026, 3, 29, 12, 0, 1 },
	{ "* * * * 7", 2026, 3, 29, 12, 0, 1 },
	{ "* * * * 7", 2026, 3, 28, 12, 0, 0 },
	{ "* * * * 5-7", 2026, 3, 29, 12, 0, 1 },
	{ "* * * * 5-7", 2026, 3, 27, 12, 0, 1 },
	{ "* * * * 5-7", 2026, 3, 26, 12, 0, 0 },
	{ "* * * * 0-7", 2026, 3, 26, 12, 0, 1 },
	{ "* * * * SUN", 2026, 3, 29, 12, 0, 1 },
	{ "* * * * sun,Sat", 2026, 3, 28, 12, 0, 1 },
	{ "* * * * sun,Sat", 2026, 3, 27, 12, 0, 0 },
	{ "* * * * 1/2", 2026, 3, 25, 12, 0, 1 },	/* Wednesday */
	{ "* * * * 1/2", 2026, 3, 29, 12, 0, 0 },	/* Sunday: 1,3,5 */
	{ "* * * * */2", 2026, 3, 28, 12, 0, 1 },	/* Saturday */
	{ "* * * jan-mar,DEC *", 2026, 3, 31, 12, 0, 1 },
	{ "* * * jan-mar,DEC *", 2026, 12, 1, 12, 0, 1 },
	{ "* * * jan-mar,DEC *", 2026, 4, 1, 12, 0, 0 },
	{ "* * * 4 *", 2026, 4, 1, 12, 0, 1 },
	{ "* * * feb/3 *", 2026, 5, 1, 12, 0, 1 },	/* feb,may,aug,nov */
	{ "* * * feb/3 *", 2026, 6, 1, 12, 0, 0 },
	/* Day of month alone; 31 only in long months. */
	{ "* * 1 * *", 2026, 4, 1, 0, 0, 1 },
	{ "* * 1 * *", 2026, 4, 2, 0, 0, 0 },
	{ "* * 31 * *", 2026, 3, 31, 0, 0, 1 },
	{ "* * 29 2 *", 2028, 2, 29, 0, 0, 1 },
	/*
	 * Both day fields restricted: either matches.  2026-03-13 is a
	 * Friday, 2026-03-20 a Friday, 2026-02-13 a Friday too.
	 */
	{ "* * 13 * fri", 2026, 3, 13, 0, 0, 1 },
	{ "* * 13 * fri", 2026, 3, 20, 0, 0, 1 },	/* Friday */
	{ "* * 13 * fri", 2026, 4, 13, 0, 0, 1 },	/* Monday 13th */
	{ "* * 13 * fri", 2026, 4, 14, 0, 0, 0 },	/* Tuesday 14th */
	{ "* * 1-7 * mon", 2026, 4, 20, 0, 0, 1 },	/* any Monday */
	/* A step makes the field restricted (robfig: "* /2" is not "*"). */
	{ "* * */2 * 1", 2026, 3, 30, 0, 0, 1 },	/* Monday 30th */
	{ "* * */2 * 1", 2026, 3, 31, 0, 0, 1 },	/* odd day */
	{ "* * */2 * 1", 2026, 4, 1, 0, 0, 1 },		/* odd day */
	{ "* * */2 * 1", 2026, 4, 2, 0, 0, 0 },		/* Thursday 2nd */
	/* One "*" field: both must match, so the other decides. */
	{ "* * * * 1", 2026, 3, 30, 0, 0, 1 },
	{ "* * * * 1", 2026, 3, 31, 0, 0, 0 },
	{ "* * */1 * 1", 2026, 3, 31, 0, 0, 0 },
	{ "* * ? * 1", 2026, 3, 31, 0, 0, 0 },
	{ "* * ? * 1", 2026, 3, 30, 0, 0, 1 },
	{ "* * 13 * *", 2026, 3, 20, 0, 0, 0 },
	{ "* * 13 * ?", 2026, 3, 13, 0, 0, 1 },
	{ "* * 1,*/5 * 1", 2026, 3, 30, 0, 0, 1 },
	{ "* * 5,* * 1", 2026, 3, 31, 0, 0, 0 },	/* "*" in the list */
	/* Blanks around and between fields. */
	{ "  0\t12  *  *   *  ", 2026, 1, 1, 12, 0, 1 },
	{ "59 23 31 12 *", 2026, 12, 31, 23, 59, 1 },
	{ "59 23 31 12 *", 2026, 12, 31, 23, 58, 0 },
};

static void
test_matches(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(matches) / sizeof(matches[0]); i++) {
		struct cron *c = parse(matches[i].expr);
		struct tm tm = at(matches[i].y, matches[i].mo, matches[i].d,
		    matches[i].h, matches[i].mi);

		if (cron_matches(c, &tm) != matches[i].want)
			fail_msg("\"%s\" at %04d-%02d-%02d %02d:%02d (wday %d): "
			    "want %d", matches[i].expr, matches[i].y,
			    matches[i].mo, matches[i].d, matches[i].h,
			    matches[i].mi, tm.tm_wday, matches[i].want);
		cron_free(c);
	}
}

/* Every minute of a week against an independent reading of the fields. */
static void
test_week_scan(void **state)
{
	struct cron *c = parse("*/20 8-15 * * mon-fri");
	time_t t0 = utc(2026, 3, 23, 0, 0, 0);	/* a Monday */
	int n = 0;

	(void)state;
	for (time_t t = t0; t < t0 + 7 * 86400; t += 60) {
		struct tm tm;
		int want;

		assert_non_null(gmtime_r(&t, &tm));
		want = tm.tm_min % 20 == 0 && tm.tm_hour >= 8 &&
		    tm.tm_hour <= 15 && tm.tm_wday >= 1 && tm.tm_wday <= 5;
		assert_int_equal(cron_matches(c, &tm), want);
		n += want;
	}
	assert_int_equal(n, 5 * 8 * 3);
	/* Seconds do not matter; nonsense fields never match. */
	struct tm tm = at(2026, 3, 23, 8, 20);
	tm.tm_sec = 59;
	assert_true(cron_matches(c, &tm));
	tm.tm_hour = 99;
	assert_false(cron_matches(c, &tm));
	tm = at(2026, 3, 23, 8, 20);
	tm.tm_wday = -1;
	assert_false(cron_matches(c, &tm));
	tm = at(2026, 3, 23, 8, 20);
	tm.tm_mon = 12;
	assert_false(cron_matches(c, &tm));
	cron_free(c);
	cron_free(NULL);
}

static const struct {
	const char *expr;
	const char *err;
} errors[] = {
	{ "", "expected 5 fields (minute hour day-of-month month day-of-week), got 0" },
	{ "   ", "expected 5 fields (minute hour day-of-month month day-of-week), got 0" },
	{ "* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4" },
	{ "* * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 6" },
	{ "60 * * * *", "minute: value 60 out of range 0-59" },
	{ "* 24 * * *", "hour: value 24 out of range 0-23" },
	{ "* * 0 * *", "day-of-month: value 0 out of range 1-31" },
	{ "* * 32 * *", "day-of-month: value 32 out of range 1-31" },
	{ "* * * 0 *", "month: value 0 out of range 1-12" },
	{ "* * * 13 *", "month: value 13 out of range 1-12" },
	{ "* * * * 8", "day-of-week: value 8 out of range 0-7" },
	{ "* * * * 1-8", "day-of-week: value 8 out of range 0-7" },
	{ "99999999999 * * * *", "minute: value 99999999999 out of range 0-59" },
	{ "5-1 * * * *", "minute: range 5-1 is reversed" },
	{ "* * * * fri-mon", "day-of-week: range 5-1 is reversed" },
	{ "*/0 * * * *", "minute: step must be positive" },
	{ "1-5/0 * * * *", "minute: step must be positive" },
	{ "*/9999999 * * * *", "minute: step too large" },
	{ "1/ * * * *", "minute: missing step after '/'" },
	{ "1,,2 * * * *", "minute: empty list item" },
	{ ",1 * * * *", "minute: empty list item" },
	{ "* 1, * * *", "hour: empty list item" },
	{ "1-2-3 * * * *", "minute: unexpected character '-'" },
	{ "1/2/3 * * * *", "minute: unexpected character '/'" },
	{ "-1 * * * *", "minute: unexpected character '-'" },
	{ "*5 * * * *", "minute: unexpected character '5'" },
	{ "*/x * * * *", "minute: missing step after '/'" },
	{ "1x * * * *", "minute: unexpected character 'x'" },
	{ "* * * * mon-", "day-of-week: missing value" },
	{ "* * * * monday", "day-of-week: unknown name \"monday\"" },
	{ "* * * foo *", "month: unknown name \"foo\"" },
	{ "* * * * jan", "day-of-week: unknown name \"jan\"" },
	{ "jan * * * *", "minute: names are not allowed here: \"jan\"" },
	{ "* * mon * *", "day-of-month: names are not allowed here: \"mon\"" },
	{ "* * * * *\n", "day-of-week: unexpected character '\\x0a'" },
	{ "* * * * 1;", "day-of-week: unexpected character ';'" },
	{ "@hourly", "expected 5 fields (minute hour day-of-month month day-of-week), got 1" },
};

static void
test_errors(void **state)
{
	char err[200];

	(void)state;
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		struct cron *c = cron_parse(errors[i].expr, err, sizeof(err));

		if (c != NULL)
			fail_msg("cron_parse(\"%s\") accepted", errors[i].expr);
		if (strcmp(err, errors[i].err) != 0)
			fail_msg("cron_parse(\"%s\"): \"%s\"; want \"%s\"",
			    errors[i].expr, err, errors[i].err);
	}
	assert_null(cron_parse(NULL, err, sizeof(err)));
	assert_null(cron_parse("61 * * * *", NULL, 0));
	assert_null(cron_parse("61 * * * *", err, 8));
	assert_string_equal(err, "minute:");
}

/* The brief's example, in Europe/Berlin, at UTC instants around DST. */
static void
test_berlin_policy(void **state)
{
	char err[200];
	struct tz *z = tz_load("Europe/Berlin", err, sizeof(err));
	struct cron *c = parse("* 8-15 * * mon-fri");
	time_t next = 0;

	(void)state;
	assert_non_null(z);
	/* Friday 2026-03-27, CET (UTC+1). */
	assert_int_equal(cron_active(c, z, utc(2026, 3, 27, 6, 59, 59)), 0);
	assert_int_equal(cron_active(c, z, utc(2026, 3, 27, 7, 0, 0)), 1);
	assert_int_equal(cron_active(c, z, utc(2026, 3, 27, 14, 59, 59)), 1);
	assert_int_equal(cron_active(c, z, utc(2026, 3, 27, 15, 0, 0)), 0);
	/* Monday 2026-03-30, CEST (UTC+2) since Sunday. */
	assert_int_equal(cron_active(c, z, utc(2026, 3, 30, 5, 59, 59)), 0);
	assert_int_equal(cron_active(c, z, utc(2026, 3, 30, 6, 0, 0)), 1);
	assert_int_equal(cron_active(c, z, utc(2026, 3, 30, 13, 59, 59)), 1);
	assert_int_equal(cron_active(c, z, utc(2026, 3, 30, 14, 0, 0)), 0);
	/* The same UTC hour is inside on Friday and outside on Monday. */
	assert_int_equal(cron_active(c, z, utc(2026, 3, 27, 14, 30, 0)), 1);
	assert_int_equal(cron_active(c, z, utc(2026, 3, 30, 14, 30, 0)), 0);

	/* The changes, one after the other, over the weekend of the switch. */
	assert_int_equal(cron_next_change(c, z, utc(2026, 3, 27, 12, 0, 0),
	    utc(2026, 4, 30, 0, 0, 0), &next), 1);
	assert_int_equal(next, utc(2026, 3, 27, 15, 0, 0));
	assert_int_equal(cron_next_change(c, z, next,
	    utc(2026, 4, 30, 0, 0, 0), &next), 1);
	assert_int_equal(next, utc(2026, 3, 30, 6, 0, 0));
	assert_int_equal(cron_next_change(c, z, next,
	    utc(2026, 4, 30, 0, 0, 0), &next), 1);
	assert_int_equal(next, utc(2026, 3, 30, 14, 0, 0));
	/* Back to CET in October: Monday 2026-10-26 starts at 07:00Z. */
	assert_int_equal(cron_next_change(c, z, utc(2026, 10, 23, 15, 0, 0),
	    utc(2026, 11, 30, 0, 0, 0), &next), 1);
	assert_int_equal(next, utc(2026, 10, 26, 7, 0, 0));
	/* until is inclusive; nothing before it gives 0. */
	assert_int_equal(cron_next_change(c, z, utc(2026, 3, 27, 12, 0, 0),
	    utc(2026, 3, 27, 15, 0, 0), &next), 1);
	assert_int_equal(next, utc(2026, 3, 27, 15, 0, 0));
	next = 42;
	assert_int_equal(cron_next_change(c, z, utc(2026, 3, 27, 12, 0, 0),
	    utc(2026, 3, 27, 14, 59, 59), &next), 0);
	assert_int_equal(next, 42);
	cron_free(c);

	/* Never changes. */
	c = parse("* * * * *");
	assert_int_equal(cron_next_change(c, z, utc(2026, 1, 1, 0, 0, 0),
	    utc(2027, 1, 1, 0, 0, 0), &next), 0);
	cron_free(c);
	/* A period in the hour that does not exist on the spring day. */
	c = parse("30 2 * * *");
	assert_int_equal(cron_next_change(c, z, utc(2026, 3, 28, 2, 0, 0),
	    utc(2026, 4, 1, 0, 0, 0), &next), 1);
	assert_int_equal(next, utc(2026, 3, 30, 0, 30, 0));	/* 02:30 CEST */
	cron_free(c);
	/* Out of range instants are reported, not guessed. */
	c = parse("* * * * *");
	assert_int_equal(cron_active(c, z, TZ_TIME_LIMIT + 1), FL_ERR_RANGE);
	assert_int_equal(cron_next_change(c, z, 0, INT64_MAX, &next), 0);
	cron_free(c);
	c = parse("0 0 1 1 *");
	assert_int_equal(cron_next_change(c, z, TZ_TIME_LIMIT + 1, INT64_MAX,
	    &next), 0);
	assert_int_equal(cron_next_change(c, z, -TZ_TIME_LIMIT - 1, 0, &next),
	    FL_ERR_RANGE);
	/* A far start and an unbounded end: no overflow, next New Year. */
	{
		struct tm tm;

		assert_int_equal(cron_next_change(c, z, -((time_t)1 << 50),
		    INT64_MAX, &next), 1);
		assert_int_equal(tz_localtime(z, next, &tm), 0);
		assert_int_equal(tm.tm_mon, 0);
		assert_int_equal(tm.tm_mday, 1);
		assert_int_equal(tm.tm_hour, 0);
		assert_int_equal(tm.tm_min, 0);
		assert_int_equal(tm.tm_sec, 0);
		assert_true(next > -((time_t)1 << 50));
		assert_true(next - 367 * 86400 < -((time_t)1 << 50));
	}
	cron_free(c);
	tz_free(z);
}

/* The first local minute boundary after from where the value differs. */
static time_t
brute_next(const struct cron *c, const struct tz *z, time_t from,
    time_t until)
{
	int v0 = cron_active(c, z, from);

	for (time_t t = from - from % 60 + 60; t <= until; t += 60)
		if (cron_active(c, z, t) != v0)
			return t;
	return -1;
}

/*
 * cron_next_change() against a scan of every minute, through both 2026
 * DST changes, in zones with whole-hour, half-hour and 45-minute offsets
 * and a half-hour DST (Lord Howe).
 */
static void
test_next_change_scan(void **state)
{
	static const char *const zones[] = {
		"Europe/Berlin", "America/New_York", "Australia/Sydney",
		"Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham", "UTC",
	};
	static const char *const exprs[] = {
		"* 8-15 * * mon-fri", "*/7 */5 * * *", "0 0 13 * fri",
		"30 2 * * *", "* 2 * * sun", "* * * * *", "0-29 * 1-7 * 1",
		"59 23 31 12 *", "* 1-3 * * *", "15-44 * * * 0",
		"* * 29-31 * *",
	};
	static const int windows[][2] = {	/* month, day of a 40-day start */
		{ 3, 10 }, { 9, 25 }, { 12, 20 },
	};
	char err[200];
	int checked = 0;

	(void)state;
	for (size_t zi = 0; zi < sizeof(zones) / sizeof(zones[0]); zi++) {
		struct tz *z = tz_load(zones[zi], err, sizeof(err));

		assert_non_null(z);
		for (size_t ei = 0; ei < sizeof(exprs) / sizeof(exprs[0]); ei++) {
			struct cron *c = parse(exprs[ei]);

			for (size_t wi = 0; wi < 3; wi++) {
				time_t t = utc(2026, windows[wi][0],
				    windows[wi][1], 0, 0, 17);
				time_t until = t + 40 * 86400;

				for (;;) {
					time_t next = 0, want;
					int r = cron_next_change(c, z, t, until, &next);

					want = brute_next(c, z, t, until);
					if (r < 0 || (r == 1) != (want >= 0) ||
					    (r == 1 && next != want))
						fail_msg("%s \"%s\" from %lld: got %d %lld, "
						    "want %lld", zones[zi], exprs[ei],
						    (long long)t, r, (long long)next,
						    (long long)want);
					checked++;
					if (r == 0)
						break;
					/* Alternate exact and mid-minute starts. */
					t = checked % 2 ? next : next + 29;
				}
			}
			cron_free(c);
		}
		tz_free(z);
	}
	print_message("# %d next-change results checked\n", checked);
	assert_true(checked > 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches),
		cmocka_unit_test(test_week_scan),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_berlin_policy),
		cmocka_unit_test(test_next_change_scan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

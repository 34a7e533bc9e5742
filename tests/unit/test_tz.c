/*
 * The TZif reader against known facts (2026 DST changes in both
 * hemispheres, far-future footer rules, UTC), against glibc (which this
 * test alone may drive through TZ and tzset) over sweeps of instants and
 * every installed zone, and against damaged input.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "err.h"
#include "tz.h"

/* Seconds since the epoch of a UTC date and time (test-side, via glibc). */
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

static struct tz *
load(const char *name)
{
	char err[256];
	struct tz *z = tz_load(name, err, sizeof(err));

	if (z == NULL)
		fail_msg("tz_load(%s): %s", name, err);
	return z;
}

/* Assert the local time of t in z, as "YYYY-MM-DD HH:MM:SS ZONE +off dst". */
static void
expect(const struct tz *z, time_t t, const char *want, long gmtoff, int isdst)
{
	struct tm tm;
	char got[96];

	assert_int_equal(tz_localtime(z, t, &tm), 0);
	(void)snprintf(got, sizeof(got), "%04d-%02d-%02d %02d:%02d:%02d %s",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, tm.tm_zone);
	if (strcmp(got, want) != 0 || tm.tm_gmtoff != gmtoff ||
	    tm.tm_isdst != isdst)
		fail_msg("%s at %lld: got \"%s\" off %ld dst %d; want \"%s\" "
		    "off %ld dst %d", tz_name(z), (long long)t, got,
		    tm.tm_gmtoff, tm.tm_isdst, want, gmtoff, isdst);
}

static void
test_berlin_2026(void **state)
{
	struct tz *z = load("Europe/Berlin");
	struct tm tm;

	(void)state;
	assert_string_equal(tz_name(z), "Europe/Berlin");
	expect(z, utc(2026, 3, 29, 0, 59, 59), "2026-03-29 01:59:59 CET", 3600, 0);
	expect(z, utc(2026, 3, 29, 1, 0, 0), "2026-03-29 03:00:00 CEST", 7200, 1);
	expect(z, utc(2026, 10, 25, 0, 59, 59), "2026-10-25 02:59:59 CEST", 7200, 1);
	expect(z, utc(2026, 10, 25, 1, 0, 0), "2026-10-25 02:00:00 CET", 3600, 0);
	expect(z, utc(2026, 1, 1, 0, 0, 0), "2026-01-01 01:00:00 CET", 3600, 0);
	expect(z, utc(2025, 12, 31, 23, 0, 0), "2026-01-01 00:00:00 CET", 3600, 0);

	assert_int_equal(tz_localtime(z, utc(2026, 3, 29, 1, 0, 0), &tm), 0);
	assert_int_equal(tm.tm_wday, 0);		/* a Sunday */
	assert_int_equal(tm.tm_yday, 31 + 28 + 28);
	tz_free(z);
}

static void
test_new_york_2026(void **state)
{
	struct tz *z = load("America/New_York");

	(void)state;
	/* Second Sunday of March, first Sunday of November, at 02:00. */
	expect(z, utc(2026, 3, 8, 6, 59, 59), "2026-03-08 01:59:59 EST", -18000, 0);
	expect(z, utc(2026, 3, 8, 7, 0, 0), "2026-03-08 03:00:00 EDT", -14400, 1);
	expect(z, utc(2026, 11, 1, 5, 59, 59), "2026-11-01 01:59:59 EDT", -14400, 1);
	expect(z, utc(2026, 11, 1, 6, 0, 0), "2026-11-01 01:00:00 EST", -18000, 0);
	/* New Year in UTC is still the old year in New York. */
	expect(z, utc(2027, 1, 1, 3, 0, 0), "2026-12-31 22:00:00 EST", -18000, 0);
	tz_free(z);
}

static void
test_sydney_2026(void **state)
{
	struct tz *z = load("Australia/Sydney");

	(void)state;
	/* DST ends on the first Sunday of April at 03:00 AEDT ... */
	expect(z, utc(2026, 4, 4, 15, 59, 59), "2026-04-05 02:59:59 AEDT", 39600, 1);
	expect(z, utc(2026, 4, 4, 16, 0, 0), "2026-04-05 02:00:00 AEST", 36000, 0);
	/* ... and starts on the first Sunday of October at 02:00 AEST. */
	expect(z, utc(2026, 10, 3, 15, 59, 59), "2026-10-04 01:59:59 AEST", 36000, 0);
	expect(z, utc(2026, 10, 3, 16, 0, 0), "2026-10-04 03:00:00 AEDT", 39600, 1);
	/* Southern summer spans the new year. */
	expect(z, utc(2026, 12, 31, 13, 0, 0), "2027-01-01 00:00:00 AEDT", 39600, 1);
	tz_free(z);
}

static void
test_far_future(void **state)
{
	struct tz *z = load("Europe/Berlin");
	struct tz *ny = load("America/New_York");

	(void)state;
	/* Beyond 2037 only the footer rule speaks. */
	expect(z, utc(2100, 1, 15, 12, 0, 0), "2100-01-15 13:00:00 CET", 3600, 0);
	expect(z, utc(2100, 7, 1, 12, 0, 0), "2100-07-01 14:00:00 CEST", 7200, 1);
	/* Last Sunday of March 2100 is the 28th (2100 is not a leap year). */
	expect(z, utc(2100, 3, 28, 0, 59, 59), "2100-03-28 01:59:59 CET", 3600, 0);
	expect(z, utc(2100, 3, 28, 1, 0, 0), "2100-03-28 03:00:00 CEST", 7200, 1);
	/* Second Sunday of March 2100 is the 14th. */
	expect(ny, utc(2100, 3, 14, 6, 59, 59), "2100-03-14 01:59:59 EST", -18000, 0);
	expect(ny, utc(2100, 3, 14, 7, 0, 0), "2100-03-14 03:00:00 EDT", -14400, 1);
	expect(z, utc(9999, 12, 31, 23, 59, 59), "10000-01-01 00:59:59 CET", 3600, 0);
	tz_free(ny);
	tz_free(z);
}

static void
test_utc(void **state)
{
	struct tz *z = load("UTC");
	struct tz *b = tz_utc();
	struct tm tm;

	(void)state;
	expect(z, 0, "1970-01-01 00:00:00 UTC", 0, 0);
	expect(z, utc(2026, 6, 1, 12, 34, 56), "2026-06-01 12:34:56 UTC", 0, 0);
	expect(b, -1, "1969-12-31 23:59:59 UTC", 0, 0);
	expect(b, utc(2000, 2, 29, 0, 0, 0), "2000-02-29 00:00:00 UTC", 0, 0);
	assert_int_equal(tz_localtime(b, 0, &tm), 0);
	assert_int_equal(tm.tm_wday, 4);		/* Thursday */
	assert_int_equal(tm.tm_yday, 0);
	assert_int_equal(tz_localtime(b, TZ_TIME_LIMIT + 1, &tm), FL_ERR_RANGE);
	assert_int_equal(tz_localtime(b, -TZ_TIME_LIMIT - 1, &tm), FL_ERR_RANGE);
	assert_int_equal(tz_localtime(b, TZ_TIME_LIMIT, &tm), 0);
	assert_int_equal(tz_localtime(b, -TZ_TIME_LIMIT, &tm), 0);
	assert_int_equal(tz_localtime(NULL, 0, &tm), FL_ERR_INVAL);
	tz_free(z);
	tz_free(b);

	z = load("Etc/UTC");
	tz_free(z);
	z = load("Local");	/* whatever the system says, it loads */
	assert_string_equal(tz_name(z), "Local");
	tz_free(z);
	z = load("");
	assert_string_equal(tz_name(z), "Local");
	tz_free(z);
	tz_free(NULL);
}

static void
test_bad_names(void **state)
{
	static const char *const invalid[] = {
		"../etc/passwd", "/etc/localtime", "Europe/../UTC", "..",
		"Europe/Berlin\n", "Europe Berlin", "zone.tab", "tzdata.zi",
		"Europe/Berlin;rm", "Europe\\Berlin", "UTC\xc2\xb5",
	};
	static const char *const unknown[] = {
		"Europe/Berln", "Foo/Bar", "Europe", "leapseconds", "Mars/Olympus",
		"Europe/Berlin/x",
	};
	char err[256], want[128], longname[400];

	(void)state;
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		err[0] = '\0';
		if (tz_load(invalid[i], err, sizeof(err)) != NULL)
			fail_msg("tz_load accepted \"%s\"", invalid[i]);
		if (strncmp(err, "invalid time zone name", 22) != 0)
			fail_msg("tz_load(\"%s\"): %s", invalid[i], err);
	}
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		if (tz_load(unknown[i], err, sizeof(err)) != NULL)
			fail_msg("tz_load accepted \"%s\"", unknown[i]);
		(void)snprintf(want, sizeof(want), "unknown time zone %s", unknown[i]);
		assert_string_equal(err, want);
	}
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_null(tz_load(longname, err, sizeof(err)));
	assert_non_null(strstr(err, "invalid time zone name"));
	/* A tiny error buffer is still terminated. */
	assert_null(tz_load("Nowhere", err, 5));
	assert_string_equal(err, "unkn");
	assert_null(tz_load("Nowhere", NULL, 0));
}

/* glibc as the oracle: TZ set to a zone name or a POSIX string. */
static void
glibc_zone(const char *tzval)
{
	setenv("TZ", tzval, 1);
	tzset();
}

static int mismatches;

static void
compare_at(const struct tz *z, const char *label, time_t t)
{
	struct tm a, b;

	assert_int_equal(tz_localtime(z, t, &a), 0);
	assert_non_null(localtime_r(&t, &b));
	if (a.tm_sec != b.tm_sec || a.tm_min != b.tm_min ||
	    a.tm_hour != b.tm_hour || a.tm_mday != b.tm_mday ||
	    a.tm_mon != b.tm_mon || a.tm_year != b.tm_year ||
	    a.tm_wday != b.tm_wday || a.tm_yday != b.tm_yday ||
	    a.tm_isdst != b.tm_isdst || a.tm_gmtoff != b.tm_gmtoff ||
	    strcmp(a.tm_zone, b.tm_zone) != 0) {
		if (mismatches++ < 10)
			print_error("%s at %lld: ours %04d-%02d-%02d %02d:%02d:%02d "
			    "%s %ld %d, glibc %04d-%02d-%02d %02d:%02d:%02d %s %ld %d\n",
			    label, (long long)t, a.tm_year + 1900, a.tm_mon + 1,
			    a.tm_mday, a.tm_hour, a.tm_min, a.tm_sec, a.tm_zone,
			    a.tm_gmtoff, a.tm_isdst, b.tm_year + 1900, b.tm_mon + 1,
			    b.tm_mday, b.tm_hour, b.tm_min, b.tm_sec, b.tm_zone,
			    b.tm_gmtoff, b.tm_isdst);
	}
}

static const char *const sweep_zones[] = {
	"Europe/Berlin", "America/New_York", "Australia/Sydney",
	"Australia/Lord_Howe", "Asia/Kolkata", "America/Sao_Paulo",
	"Africa/Casablanca", "Pacific/Chatham", "America/Santiago",
	"America/Nuuk", "Asia/Jerusalem", "Pacific/Apia", "Antarctica/Troll",
	"America/St_Johns", "Europe/Dublin", "Asia/Tehran", "UTC",
	"Etc/GMT+5", "America/Scoresbysund", "Europe/London", "Asia/Tokyo",
	"Pacific/Kiritimati", "America/Los_Angeles", "Europe/Moscow",
};

/*
 * Sweep 1901..2300 in steps of a little over three days, and 2025..2026
 * every 15 minutes, in zones chosen for their oddities: half-hour and
 * 45-minute offsets, negative DST (Dublin), rule times of 24:00, -1:00 and
 * 26:00 (Santiago, Nuuk, Jerusalem), a 2-hour DST (Troll), the dateline.
 */
static void
test_glibc_sweep(void **state)
{
	(void)state;
	mismatches = 0;
	for (size_t i = 0; i < sizeof(sweep_zones) / sizeof(sweep_zones[0]); i++) {
		struct tz *z = load(sweep_zones[i]);
		time_t end = utc(2300, 1, 1, 0, 0, 0);

		glibc_zone(sweep_zones[i]);
		for (time_t t = utc(1901, 12, 14, 0, 0, 0); t < end;
		    t += 3 * 86400 + 3607)
			compare_at(z, sweep_zones[i], t);
		end = utc(2027, 1, 1, 0, 0, 0);
		for (time_t t = utc(2025, 1, 1, 0, 0, 0); t < end; t += 900)
			compare_at(z, sweep_zones[i], t);
		tz_free(z);
	}
	unsetenv("TZ");
	tzset();
	assert_int_equal(mismatches, 0);
}

/*
 * Every TZif file installed (except right/, whose leap seconds glibc
 * applies and we do not) loads and agrees with glibc on a sample of
 * instants from 1970 to 2200.
 */
static int zones_seen;
static size_t zoneinfo_prefix;

static int
visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	const char *name = path + zoneinfo_prefix;
	unsigned char magic[4];
	char err[256];
	struct tz *z;
	int fd;

	(void)st;
	(void)ftw;
	if (flag != FTW_F || strncmp(name, "right/", 6) == 0)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (read(fd, magic, 4) != 4 || memcmp(magic, "TZif", 4) != 0) {
		close(fd);
		return 0;
	}
	close(fd);
	z = tz_load(name, err, sizeof(err));
	if (z == NULL) {
		print_error("%s: %s\n", name, err);
		mismatches++;
		return 0;
	}
	zones_seen++;
	glibc_zone(name);
	for (time_t t = 0; t < utc(2200, 1, 1, 0, 0, 0); t += 86400 * 29 + 7207)
		compare_at(z, name, t);
	tz_free(z);
	return 0;
}

static void
test_all_zones(void **state)
{
	(void)state;
	mismatches = 0;
	zones_seen = 0;
	zoneinfo_prefix = strlen(TZ_DIR) + 1;
	assert_int_equal(nftw(TZ_DIR, visit, 16, FTW_PHYS), 0);
	unsetenv("TZ");
	tzset();
	print_message("# %d zones compared with glibc\n", zones_seen);
	assert_true(zones_seen > 300);
	assert_int_equal(mismatches, 0);
}

/*
 * A version-2 TZif file with no transitions, one type and the given
 * footer: all instants then follow the footer, which glibc can read as a
 * TZ value directly.
 */
static size_t
make_tzif(unsigned char *buf, size_t cap, const char *footer, char version)
{
	size_t n = 0, flen = strlen(footer);
	/* isut, isstd, leap, time, type, char counts */
	static const uint32_t counts[6] = { 0, 0, 0, 0, 1, 4 };

	assert_true(cap > 2 * (44 + 10) + flen + 2);
	for (int pass = 0; pass < 2; pass++) {
		memcpy(buf + n, "TZif", 4);
		buf[n + 4] = (unsigned char)version;
		memset(buf + n + 5, 0, 15);
		n += 20;
		for (int i = 0; i < 6; i++) {
			buf[n++] = (unsigned char)(counts[i] >> 24);
			buf[n++] = (unsigned char)(counts[i] >> 16);
			buf[n++] = (unsigned char)(counts[i] >> 8);
			buf[n++] = (unsigned char)counts[i];
		}
		/* One type: offset 0, not DST, abbreviation "XXX". */
		memset(buf + n, 0, 6);
		n += 6;
		memcpy(buf + n, "XXX", 4);
		n += 4;
		if (version == 0)
			return n;
	}
	buf[n++] = '\n';
	memcpy(buf + n, footer, flen);
	n += flen;
	buf[n++] = '\n';
	return n;
}

static void
test_footer_rules(void **state)
{
	static const char *const rules[] = {
		"CET-1CEST,M3.5.0,M10.5.0/3",
		"EST5EDT,M3.2.0,M11.1.0",
		"AEST-10AEDT,M10.1.0,M4.1.0/3",
		"<-04>4<-03>,M9.1.6/24,M4.1.6/24",
		"<-02>2<-01>,M3.5.0/-1,M10.5.0/0",
		"IST-2IDT,M3.4.4/26,M10.5.0",
		"IST-1GMT0,M10.5.0,M3.5.0/1",
		"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
		"<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",
		"NZST-12NZDT,J270,J97",		/* Julian days, no Feb 29 */
		"XST3XDT,59/2,300/1",		/* zero-based days */
		"XST3XDT,J60,J61",
		"<+00>0<+02>-2,M3.5.0/1,M10.5.0/3",
		"HST10",
		"<-0330>3:30",
		"AAA-5:45:30BBB-6:15,M5.5.3/12:30:15,M8.1.2/-3:20",
	};
	unsigned char buf[512];
	char err[128];

	(void)state;
	mismatches = 0;
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		size_t n = make_tzif(buf, sizeof(buf), rules[i], '3');
		struct tz *z = tz_parse(buf, n, err, sizeof(err));

		if (z == NULL)
			fail_msg("footer \"%s\": %s", rules[i], err);
		int before = mismatches;

		glibc_zone(rules[i]);
		for (time_t t = utc(1999, 12, 1, 0, 0, 0);
		    t < utc(2031, 2, 1, 0, 0, 0); t += 3607)
			compare_at(z, rules[i], t);
		if (mismatches != before)
			print_error("footer \"%s\": %d mismatches\n", rules[i],
			    mismatches - before);
		tz_free(z);
	}
	unsetenv("TZ");
	tzset();
	assert_int_equal(mismatches, 0);
}

/*
 * Where glibc is not the reference: DST all year (RFC 8536 section 3.3.1
 * gives "EST5EDT,0/0,J365/25" as its example; tzcode agrees, glibc shows
 * standard time for an hour at each new year), and a DST zone without
 * dates (tzcode's and Go's default US rules, where glibc consults
 * posixrules).
 */
static void
test_footer_special(void **state)
{
	unsigned char buf[512];
	char err[128];
	size_t n;
	struct tz *z;

	(void)state;
	n = make_tzif(buf, sizeof(buf), "EST5EDT,0/0,J365/25", '3');
	z = tz_parse(buf, n, err, sizeof(err));
	assert_non_null(z);
	for (time_t t = utc(1999, 12, 1, 0, 0, 0); t < utc(2031, 2, 1, 0, 0, 0);
	    t += 1800) {
		struct tm tm;

		assert_int_equal(tz_localtime(z, t, &tm), 0);
		assert_int_equal(tm.tm_gmtoff, -4 * 3600);
		assert_int_equal(tm.tm_isdst, 1);
		assert_string_equal(tm.tm_zone, "EDT");
	}
	expect(z, utc(2000, 1, 1, 0, 0, 0), "1999-12-31 20:00:00 EDT", -14400, 1);
	tz_free(z);

	n = make_tzif(buf, sizeof(buf), "WART4WARST,J1/0,J365/25", '3');
	z = tz_parse(buf, n, err, sizeof(err));
	assert_non_null(z);
	expect(z, utc(2000, 1, 1, 0, 0, 0), "1999-12-31 21:00:00 WARST", -10800, 1);
	expect(z, utc(2001, 1, 1, 3, 0, 0), "2001-01-01 00:00:00 WARST", -10800, 1);
	expect(z, utc(2004, 2, 29, 3, 0, 0), "2004-02-29 00:00:00 WARST", -10800, 1);
	tz_free(z);

	n = make_tzif(buf, sizeof(buf), "EST5EDT", '2');
	z = tz_parse(buf, n, err, sizeof(err));
	assert_non_null(z);
	expect(z, utc(2026, 3, 8, 6, 59, 59), "2026-03-08 01:59:59 EST", -18000, 0);
	expect(z, utc(2026, 3, 8, 7, 0, 0), "2026-03-08 03:00:00 EDT", -14400, 1);
	expect(z, utc(2026, 11, 1, 5, 59, 59), "2026-11-01 01:59:59 EDT", -14400, 1);
	expect(z, utc(2026, 11, 1, 6, 0, 0), "2026-11-01 01:00:00 EST", -18000, 0);
	tz_free(z);
}

static void
test_bad_footers(void **state)
{
	static const char *const rules[] = {
		"CE-1", "CET", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0",
		"CET-1CEST,M3.6.0,M10.5.0", "CET-1CEST,M3.5.7,M10.5.0",
		"CET-1CEST,M3.0.0,M10.5.0", "CET-1CEST,J0,J10", "CET-1CEST,J366,J10",
		"CET-1CEST,366,10", "CET-1CEST,M3.5.0/168,M10.5.0",
		"CET-25", "CET-1CEST,M3.5.0,M10.5.0,", "CET-1 ", "<CET-1",
		"<C T>-1", "<CE>-1", "CET-1:60", "CET-1CEST,M3.5.0/,M10.5.0",
		"CET-1CEST;M3.5.0,M10.5.0", "CET-1CEST,M3.5.0,M10.5.0x",
		"CET1234", "1CET", "CET-1\x01",
		"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG0",
	};
	unsigned char buf[512];
	char err[128];

	(void)state;
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		size_t n = make_tzif(buf, sizeof(buf), rules[i], '2');
		struct tz *z = tz_parse(buf, n, err, sizeof(err));

		if (z != NULL)
			fail_msg("footer \"%s\" accepted", rules[i]);
		assert_string_equal(err, "bad TZ string in footer");
	}
}

static unsigned char *
slurp(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = malloc(65536);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, 65536, f);
	fclose(f);
	assert_true(n > 0 && n < 65536);
	*lenp = n;
	return buf;
}

static void
test_parse_errors(void **state)
{
	unsigned char buf[512];
	char err[128];
	size_t n;
	struct tz *z;

	(void)state;
	/* Version 1, and the same with junk after it. */
	n = make_tzif(buf, sizeof(buf), "", 0);
	z = tz_parse(buf, n, err, sizeof(err));
	assert_non_null(z);
	expect(z, 1000000000, "2001-09-09 01:46:40 XXX", 0, 0);
	tz_free(z);
	buf[n] = 'x';
	assert_null(tz_parse(buf, n + 1, err, sizeof(err)));
	assert_string_equal(err, "trailing data");

	/* An empty footer: the last type forever. */
	n = make_tzif(buf, sizeof(buf), "", '2');
	z = tz_parse(buf, n, err, sizeof(err));
	assert_non_null(z);
	tz_free(z);

	n = make_tzif(buf, sizeof(buf), "UTC0", '2');
	assert_null(tz_parse(buf, n - 1, err, sizeof(err)));
	assert_string_equal(err, "unterminated footer");
	buf[n] = '\n';
	assert_null(tz_parse(buf, n + 1, err, sizeof(err)));
	assert_string_equal(err, "trailing data after footer");

	n = make_tzif(buf, sizeof(buf), "UTC0", '1');
	assert_null(tz_parse(buf, n, err, sizeof(err)));
	assert_non_null(strstr(err, "version"));

	n = make_tzif(buf, sizeof(buf), "UTC0", '2');
	buf[0] = 'X';
	assert_null(tz_parse(buf, n, err, sizeof(err)));
	assert_string_equal(err, "not a TZif file");

	/* Type count 0 and abbreviation index out of range. */
	n = make_tzif(buf, sizeof(buf), "UTC0", '2');
	buf[54 + 39] = 0;
	assert_null(tz_parse(buf, n, err, sizeof(err)));
	assert_non_null(strstr(err, "type count"));
	n = make_tzif(buf, sizeof(buf), "UTC0", '2');
	buf[54 + 44 + 5] = 4;
	assert_null(tz_parse(buf, n, err, sizeof(err)));
	assert_string_equal(err, "bad abbreviation index");
	/* Abbreviation without its NUL. */
	n = make_tzif(buf, sizeof(buf), "UTC0", '2');
	buf[54 + 44 + 6 + 3] = 'X';
	assert_null(tz_parse(buf, n, err, sizeof(err)));
	assert_string_equal(err, "bad abbreviation index");
	/* A huge count cannot make us read past the end. */
	n = make_tzif(buf, sizeof(buf), "UTC0", '2');
	memset(buf + 54 + 32, 0xff, 4);
	assert_null(tz_parse(buf, n, err, sizeof(err)));
	assert_string_equal(err, "truncated data block");
	/* Offset out of range. */
	n = make_tzif(buf, sizeof(buf), "UTC0", '2');
	buf[54 + 44] = 0x80;
	assert_null(tz_parse(buf, n, err, sizeof(err)));
	assert_non_null(strstr(err, "UTC offset"));

	assert_null(tz_parse(NULL, 0, err, sizeof(err)));
	assert_null(tz_parse(buf, 0, err, sizeof(err)));
	assert_string_equal(err, "truncated header");
}

/* Every prefix of a real file is refused; every single-byte change is
 * survived (accepted or refused), and an accepted one still converts. */
static void
test_damaged_file(void **state)
{
	size_t len;
	unsigned char *buf = slurp(TZ_DIR "/Europe/Berlin", &len);
	unsigned char *copy = malloc(len);
	char err[128];
	struct tm tm;

	(void)state;
	assert_non_null(copy);
	for (size_t n = 0; n < len; n++) {
		memcpy(copy, buf, n);	/* an exact-size copy for ASan */
		struct tz *z = tz_parse(copy, n, err, sizeof(err));

		if (z != NULL)
			fail_msg("prefix of %zu/%zu bytes accepted", n, len);
	}
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			struct tz *z;

			memcpy(copy, buf, len);
			copy[i] ^= (unsigned char)(1u << bit);
			z = tz_parse(copy, len, err, sizeof(err));
			if (z == NULL)
				continue;
			for (time_t t = -((time_t)1 << 40); t < (time_t)1 << 40;
			    t += (time_t)1 << 34)
				assert_int_equal(tz_localtime(z, t, &tm), 0);
			tz_free(z);
		}
	}
	free(copy);
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_berlin_2026),
		cmocka_unit_test(test_new_york_2026),
		cmocka_unit_test(test_sydney_2026),
		cmocka_unit_test(test_far_future),
		cmocka_unit_test(test_utc),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_glibc_sweep),
		cmocka_unit_test(test_all_zones),
		cmocka_unit_test(test_footer_rules),
		cmocka_unit_test(test_footer_special),
		cmocka_unit_test(test_bad_footers),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_damaged_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

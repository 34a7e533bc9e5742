/*
 * Policy periods (see cron.h).  An expression is parsed once into one bit
 * set per field, so matching a minute is five bit tests; the zone is a
 * separate object (tz.h) so evaluating a policy never depends on the
 * process's TZ.  Syntax and the day-of-month/day-of-week rule follow
 * robfig/cron, which the Go schedulers behind GitLab Runner use, with
 * day-of-week 7 also accepted as Sunday as in Vixie cron.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"
#include "err.h"
#include "tz.h"
#include "xmalloc.h"

enum { F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

struct field_def {
	const char *name;
	int min, max;		/* values accepted in the text */
	int span_max;		/* end of "*" and of "N/step" */
	const char *const *names;	/* 3-letter names for min.., or NULL */
};

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec", NULL
};
static const char *const dow_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

static const struct field_def fields[F_COUNT] = {
	{ "minute", 0, 59, 59, NULL },
	{ "hour", 0, 23, 23, NULL },
	{ "day-of-month", 1, 31, 31, NULL },
	{ "month", 1, 12, 12, month_names },
	{ "day-of-week", 0, 7, 6, dow_names },
};

struct cron {
	uint64_t bits[F_COUNT];	/* bit v set: value v allowed */
	bool dom_star, dow_star;	/* field unrestricted (for the day rule) */
};

#define ALL_BITS(lo, hi) \
	((((hi) == 63 ? 0 : (UINT64_C(1) << ((hi) + 1))) - 1) & \
	    ~((UINT64_C(1) << (lo)) - 1))

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Error text "FIELD: why", or just "why" when fd is NULL. */
static void __attribute__((format(printf, 4, 5)))
seterr(char *err, size_t errlen, const struct field_def *fd,
    const char *fmt, ...)
{
	char why[160];
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (fd != NULL)
		(void)snprintf(err, errlen, "%s: %s", fd->name, why);
	else
		(void)snprintf(err, errlen, "%s", why);
}

/* "unexpected character 'x'" (or '\xNN' for what would not print). */
static void
bad_char(char *err, size_t errlen, const struct field_def *fd, char ch)
{
	if (ch > ' ' && ch < 0x7f)
		seterr(err, errlen, fd, "unexpected character '%c'", ch);
	else
		seterr(err, errlen, fd, "unexpected character '\\x%02x'",
		    (unsigned)(unsigned char)ch);
}

/*
 * Read one value (digits, or a 3-letter name where the field has names)
 * from [*pp, end).  Returns 0 or -1 with the error set.
 */
static int
parse_value(const char **pp, const char *end, const struct field_def *fd,
    int *out, char *err, size_t errlen)
{
	const char *p = *pp;
	long v = 0;
	int ndig = 0;

	if (p < end && is_alpha(*p)) {
		const char *s = p;
		char word[4];
		size_t n;

		while (p < end && is_alpha(*p))
			p++;
		n = (size_t)(p - s);
		if (fd->names == NULL) {
			seterr(err, errlen, fd, "names are not allowed here: \"%.*s\"",
			    (int)(n > 20 ? 20 : n), s);
			return -1;
		}
		if (n == 3) {
			for (size_t i = 0; i < n; i++)
				word[i] = (char)(s[i] | 0x20);	/* ASCII lower */
			word[3] = '\0';
			for (int i = 0; fd->names[i] != NULL; i++) {
				if (strcmp(word, fd->names[i]) == 0) {
					*out = fd->min + i;
					*pp = p;
					return 0;
				}
			}
		}
		seterr(err, errlen, fd, "unknown name \"%.*s\"",
		    (int)(n > 20 ? 20 : n), s);
		return -1;
	}
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (ndig < 6)
			v = v * 10 + (*p - '0');
		ndig++;
	}
	if (ndig == 0) {
		if (p < end)
			bad_char(err, errlen, fd, *p);
		else
			seterr(err, errlen, fd, "missing value");
		return -1;
	}
	if (ndig > 6) {
		seterr(err, errlen, fd, "value %.*s out of range %d-%d",
		    ndig > 30 ? 30 : ndig, p - ndig, fd->min, fd->max);
		return -1;
	}
	*out = (int)v;
	*pp = p;
	return 0;
}

/*
 * Parse one list item of [p, end) into *bits; *star is set when the item
 * leaves the field unrestricted ("*", "?", "* /1").
 */
static int
parse_item(const char *p, const char *end, const struct field_def *fd,
    uint64_t *bits, bool *star, char *err, size_t errlen)
{
	int lo, hi, step = 1;
	bool is_star = false, single = false;

	if (p == end) {
		seterr(err, errlen, fd, "empty list item");
		return -1;
	}
	if (*p == '*' || *p == '?') {
		is_star = true;
		lo = fd->min;
		hi = fd->span_max;
		p++;
	} else {
		if (parse_value(&p, end, fd, &lo, err, errlen) < 0)
			return -1;
		hi = lo;
		single = true;
		if (p < end && *p == '-') {
			p++;
			if (parse_value(&p, end, fd, &hi, err, errlen) < 0)
				return -1;
			single = false;
		}
	}
	if (p < end && *p == '/') {
		const char *s = ++p;
		long v = 0;

		for (; p < end && *p >= '0' && *p <= '9'; p++)
			if (v <= 1000000)
				v = v * 10 + (*p - '0');
		if (p == s) {
			seterr(err, errlen, fd, "missing step after '/'");
			return -1;
		}
		if (v == 0) {
			seterr(err, errlen, fd, "step must be positive");
			return -1;
		}
		if (v > 1000000) {
			seterr(err, errlen, fd, "step too large");
			return -1;
		}
		step = (int)v;
		/* robfig/cron: "N/step" runs from N to the field's end. */
		if (single)
			hi = lo > fd->span_max ? lo : fd->span_max;
	}
	if (p < end) {
		bad_char(err, errlen, fd, *p);
		return -1;
	}
	if (lo < fd->min || lo > fd->max) {
		seterr(err, errlen, fd, "value %d out of range %d-%d",
		    lo, fd->min, fd->max);
		return -1;
	}
	if (hi < fd->min || hi > fd->max) {
		seterr(err, errlen, fd, "value %d out of range %d-%d",
		    hi, fd->min, fd->max);
		return -1;
	}
	if (lo > hi) {
		seterr(err, errlen, fd, "range %d-%d is reversed", lo, hi);
		return -1;
	}
	for (int v = lo; v <= hi; v += step)
		*bits |= UINT64_C(1) << v;
	if (is_star && step == 1)
		*star = true;
	return 0;
}

struct cron *
cron_parse(const char *expr, char *err, size_t errlen)
{
	struct cron c;
	const char *p = expr;
	const char *fstart[F_COUNT], *fend[F_COUNT];
	bool star[F_COUNT] = { false };
	int n = 0;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (expr == NULL) {
		seterr(err, errlen, NULL, "empty expression");
		return NULL;
	}
	memset(&c, 0, sizeof(c));
	/* Split into fields first, so a wrong count is the error given. */
	for (;;) {
		while (is_blank(*p))
			p++;
		if (*p == '\0')
			break;
		if (n < F_COUNT)
			fstart[n] = p;
		while (*p != '\0' && !is_blank(*p))
			p++;
		if (n < F_COUNT)
			fend[n] = p;
		n++;
	}
	if (n != F_COUNT) {
		seterr(err, errlen, NULL, "expected 5 fields (minute hour "
		    "day-of-month month day-of-week), got %d", n);
		return NULL;
	}
	for (int i = 0; i < F_COUNT; i++) {
		const char *item = fstart[i];

		/* The field is [fstart, fend): a comma-separated list. */
		for (const char *q = item;; q++) {
			if (q == fend[i] || *q == ',') {
				if (parse_item(item, q, &fields[i], &c.bits[i],
				    &star[i], err, errlen) < 0)
					return NULL;
				if (q == fend[i])
					break;
				item = q + 1;
			}
		}
	}
	/* Day-of-week 7 is Sunday. */
	if (c.bits[F_DOW] & (UINT64_C(1) << 7))
		c.bits[F_DOW] = (c.bits[F_DOW] & ~(UINT64_C(1) << 7)) | 1;
	c.dom_star = star[F_DOM];
	c.dow_star = star[F_DOW];

	struct cron *r = xmalloc(sizeof(*r));
	*r = c;
	return r;
}

void
cron_free(struct cron *c)
{
	free(c);
}

static bool
bit(uint64_t set, int v)
{
	return v >= 0 && v < 64 && (set & (UINT64_C(1) << v)) != 0;
}

/* The day part of a match: month, then the day-of-month/day-of-week rule. */
static bool
day_matches(const struct cron *c, const struct tm *tm)
{
	bool dom, dow;

	if (tm->tm_mon < 0 || tm->tm_mon > 11 || !bit(c->bits[F_MON], tm->tm_mon + 1))
		return false;
	dom = tm->tm_mday >= 1 && tm->tm_mday <= 31 && bit(c->bits[F_DOM], tm->tm_mday);
	dow = tm->tm_wday >= 0 && tm->tm_wday <= 6 && bit(c->bits[F_DOW], tm->tm_wday);
	/*
	 * Standard cron: with both day fields restricted, either may match;
	 * when one of them is "*", both must (so the "*" one is moot).
	 */
	if (c->dom_star || c->dow_star)
		return dom && dow;
	return dom || dow;
}

static bool
hour_matches(const struct cron *c, const struct tm *tm)
{
	return tm->tm_hour >= 0 && tm->tm_hour <= 23 && bit(c->bits[F_HOUR], tm->tm_hour);
}

static bool
minute_matches(const struct cron *c, const struct tm *tm)
{
	return tm->tm_min >= 0 && tm->tm_min <= 59 && bit(c->bits[F_MIN], tm->tm_min);
}

int
cron_matches(const struct cron *c, const struct tm *local)
{
	return day_matches(c, local) && hour_matches(c, local) &&
	    minute_matches(c, local);
}

int
cron_active(const struct cron *c, const struct tz *z, time_t t)
{
	struct tm tm;
	int r = tz_localtime(z, t, &tm);

	if (r < 0)
		return r;
	return cron_matches(c, &tm);
}

/*
 * The search in cron_next_change(): from a probe instant whose local time
 * is known, the value cannot change before the end of the current local
 * day (when the day does not match, or every minute of it does), or hour
 * (when the hour does not match, or every minute of it does), or else
 * minute.  Such a jump assumes the UTC offset stays the same; when the
 * offset at the landing point differs, a zone transition lies in between
 * and the walk falls back to single minutes until past it.
 */
int
cron_next_change(const struct cron *c, const struct tz *z, time_t from,
    time_t until, time_t *next)
{
	const uint64_t all_min = ALL_BITS(0, 59), all_hour = ALL_BITS(0, 23);
	bool whole_hour = (c->bits[F_MIN] & all_min) == all_min;
	bool whole_day = whole_hour && (c->bits[F_HOUR] & all_hour) == all_hour;
	struct tm tm;
	time_t t = from;
	int cur = -1, r;

	/* "* * * * *" and the like: nothing to search for. */
	if (whole_day && (c->bits[F_MON] & ALL_BITS(1, 12)) == ALL_BITS(1, 12) &&
	    (c->bits[F_DOM] & ALL_BITS(1, 31)) == ALL_BITS(1, 31) &&
	    (c->bits[F_DOW] & ALL_BITS(0, 6)) == ALL_BITS(0, 6))
		return 0;
	if (until > TZ_TIME_LIMIT)
		until = TZ_TIME_LIMIT;	/* keeps until - t from overflowing */
	while (t <= until) {
		long into_min, into_hour, into_day, jump;
		int now;

		if ((r = tz_localtime(z, t, &tm)) < 0)
			return r;
		now = cron_matches(c, &tm);
		if (cur < 0) {
			cur = now;
		} else if (now != cur) {
			*next = t;
			return 1;
		}
		into_min = tm.tm_sec;
		into_hour = tm.tm_min * 60L + into_min;
		into_day = tm.tm_hour * 3600L + into_hour;
		if (!day_matches(c, &tm) || whole_day)
			jump = 86400 - into_day;
		else if (!hour_matches(c, &tm) || whole_hour)
			jump = 3600 - into_hour;
		else
			jump = 60 - into_min;
		if (jump > 60) {
			struct tm land;

			if (until - t < jump)
				return 0;	/* nothing can change before until */
			if ((r = tz_localtime(z, t + jump, &land)) < 0)
				return r;
			if (land.tm_gmtoff != tm.tm_gmtoff)
				jump = 60 - into_min;
		}
		if (until - t < jump)
			return 0;
		t += jump;
	}
	return 0;
}

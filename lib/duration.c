/*
 * Go's duration syntax (see duration.h).  GitLab Runner users write these
 * strings in config.toml and expect the exact Go behaviour: which inputs
 * are accepted, how fractions round, where overflow starts, and how a value
 * prints.  The arithmetic below mirrors Go's time package step by step
 * (unsigned accumulation up to 2^63, fractions through a double), so edge
 * cases such as "1.0000000000000000001h" land on the same nanosecond.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "duration.h"
#include "err.h"

#define TWO63	(UINT64_C(1) << 63)

struct unit {
	const char *name;
	uint64_t ns;
};

static const struct unit units[] = {
	{ "ns", 1 },
	{ "us", 1000 },
	{ "\xc2\xb5s", 1000 },		/* U+00B5 micro sign */
	{ "\xce\xbcs", 1000 },		/* U+03BC Greek small letter mu */
	{ "ms", 1000000 },
	{ "s", 1000000000 },
	{ "m", UINT64_C(60) * 1000000000 },
	{ "h", UINT64_C(3600) * 1000000000 },
};

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Consume [0-9]* into *x.  Returns false on overflow past 2^63, which is
 * where Go gives up too (2^63 itself is still needed for the minimum).
 */
static bool
leading_int(const char **sp, uint64_t *x)
{
	const char *s = *sp;
	uint64_t v = 0;

	for (; is_digit(*s); s++) {
		if (v > TWO63 / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > TWO63)
			return false;
	}
	*x = v;
	*sp = s;
	return true;
}

/*
 * Consume the digits after a decimal point into *x with *scale = 10^n for
 * the n digits kept; digits past the precision of uint64 are skipped, not
 * an error.
 */
static void
leading_fraction(const char **sp, uint64_t *x, double *scale)
{
	const char *s = *sp;
	uint64_t v = 0;
	double sc = 1;
	bool overflow = false;

	for (; is_digit(*s); s++) {
		uint64_t y;

		if (overflow)
			continue;
		if (v > (TWO63 - 1) / 10) {
			overflow = true;
			continue;
		}
		y = v * 10 + (uint64_t)(*s - '0');
		if (y > TWO63) {
			overflow = true;
			continue;
		}
		v = y;
		sc *= 10;
	}
	*x = v;
	*scale = sc;
	*sp = s;
}

static const struct unit *
find_unit(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strlen(units[i].name) == n && memcmp(units[i].name, s, n) == 0)
			return &units[i];
	return NULL;
}

int
duration_parse(const char *s, int64_t *ns)
{
	uint64_t d = 0;
	bool neg = false;

	if (s == NULL)
		return FL_ERR_PARSE;
	if (*s == '-' || *s == '+') {
		neg = *s == '-';
		s++;
	}
	if (strcmp(s, "0") == 0) {
		*ns = 0;
		return 0;
	}
	if (*s == '\0')
		return FL_ERR_PARSE;

	while (*s != '\0') {
		const struct unit *u;
		const char *start, *ustart;
		uint64_t v, f = 0;
		double scale = 1;
		bool pre, post = false;

		if (!(*s == '.' || is_digit(*s)))
			return FL_ERR_PARSE;
		start = s;
		if (!leading_int(&s, &v))
			return FL_ERR_RANGE;
		pre = s != start;
		if (*s == '.') {
			s++;
			start = s;
			leading_fraction(&s, &f, &scale);
			post = s != start;
		}
		if (!pre && !post)
			return FL_ERR_PARSE;	/* ".s", "-." */

		ustart = s;
		while (*s != '\0' && *s != '.' && !is_digit(*s))
			s++;
		if (s == ustart)
			return FL_ERR_PARSE;	/* missing unit */
		u = find_unit(ustart, (size_t)(s - ustart));
		if (u == NULL)
			return FL_ERR_PARSE;	/* unknown unit */

		if (v > TWO63 / u->ns)
			return FL_ERR_RANGE;
		v *= u->ns;
		if (f > 0) {
			/* A double is exact to the nanosecond up to hours. */
			v += (uint64_t)((double)f * ((double)u->ns / scale));
			if (v > TWO63)
				return FL_ERR_RANGE;
		}
		d += v;
		if (d > TWO63)
			return FL_ERR_RANGE;
	}
	if (neg) {
		*ns = d == TWO63 ? INT64_MIN : -(int64_t)d;
		return 0;
	}
	if (d > TWO63 - 1)
		return FL_ERR_RANGE;
	*ns = (int64_t)d;
	return 0;
}

/*
 * Write the fraction v / 10^prec (".25") right-aligned ending before
 * buf[*w], without trailing zeros and without the point when it is zero.
 * Returns v / 10^prec.
 */
static uint64_t
fmt_frac(char *buf, size_t *w, uint64_t v, int prec)
{
	bool print = false;

	for (int i = 0; i < prec; i++) {
		uint64_t digit = v % 10;

		print = print || digit != 0;
		if (print)
			buf[--*w] = (char)('0' + digit);
		v /= 10;
	}
	if (print)
		buf[--*w] = '.';
	return v;
}

/* Write v in decimal right-aligned ending before buf[*w]. */
static void
fmt_int(char *buf, size_t *w, uint64_t v)
{
	if (v == 0) {
		buf[--*w] = '0';
		return;
	}
	for (; v > 0; v /= 10)
		buf[--*w] = (char)('0' + v % 10);
}

void
duration_format(int64_t ns, char *out, size_t len)
{
	char buf[32];
	size_t w = sizeof(buf), n;
	uint64_t u = (uint64_t)ns;
	bool neg = ns < 0;

	if (neg)
		u = 0 - u;

	if (u < (uint64_t)DURATION_SEC) {
		int prec;

		/* Below a second: the largest of ns, µs, ms that fits. */
		buf[--w] = 's';
		if (u == 0) {
			buf[--w] = '0';
			goto done;
		} else if (u < (uint64_t)DURATION_US) {
			prec = 0;
			buf[--w] = 'n';
		} else if (u < (uint64_t)DURATION_MS) {
			prec = 3;
			buf[--w] = '\xb5';		/* U+00B5 in UTF-8 */
			buf[--w] = '\xc2';
		} else {
			prec = 6;
			buf[--w] = 'm';
		}
		u = fmt_frac(buf, &w, u, prec);
		fmt_int(buf, &w, u);
	} else {
		buf[--w] = 's';
		u = fmt_frac(buf, &w, u, 9);
		/* Seconds, then minutes and hours only when non-zero. */
		fmt_int(buf, &w, u % 60);
		u /= 60;
		if (u > 0) {
			buf[--w] = 'm';
			fmt_int(buf, &w, u % 60);
			u /= 60;
			/* Stop at hours: days differ in length. */
			if (u > 0) {
				buf[--w] = 'h';
				fmt_int(buf, &w, u);
			}
		}
	}
	if (neg)
		buf[--w] = '-';
done:
	if (len == 0)
		return;
	n = sizeof(buf) - w;
	if (n > len - 1)
		n = len - 1;
	memcpy(out, buf + w, n);
	out[n] = '\0';
}

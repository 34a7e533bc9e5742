/*
 * A TZif reader (RFC 8536) so that policy periods can be evaluated in any
 * IANA zone without setting TZ and calling tzset(), which is process-wide
 * and not safe to flip back and forth in a daemon.
 *
 * A TZif file is a header of six counts and a data block of transition
 * times, per-transition type indices, local time types (UTC offset, DST
 * flag, abbreviation index), abbreviation characters, leap-second records
 * and two flag arrays.  Version 1 has only that block, with 32-bit times.
 * Versions 2 and later repeat header and block with 64-bit times and end
 * with a footer, "\n" POSIX-TZ-string "\n", which describes local time
 * after the last transition; Debian's "slim" files rely on it from 2007
 * on, and every file does after 2037.  The file is outside input: every
 * count is checked against the bytes that remain before it is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "tz.h"
#include "xmalloc.h"

#define HEADER_LEN	44
#define MAX_TYPES	256	/* type indices are one byte */
#define MAX_ABBR	31	/* longest footer abbreviation kept */
#define MAX_UTOFF	93599	/* 25:59:59, RFC 8536 section 3.2 */
#define MAX_NAME	255
#define SECS_PER_DAY	86400

struct tz_type {
	int32_t utoff;		/* seconds east of UTC */
	bool isdst;
	const char *abbr;	/* into tz->abbrs or the rule's names */
};

/* One end of a daylight-saving period in a POSIX TZ rule. */
struct rule_date {
	char kind;		/* 'J' (Jn, no Feb 29), 'D' (n, 0-based), 'M' */
	int n;			/* day for J and D */
	int mon, week, wday;	/* Mm.w.d */
	int32_t secs;		/* local time of day, -167h..167h */
};

/* The footer "std offset [dst [offset] [,start[/time],end[/time]]]". */
struct rule {
	struct tz_type std, dst;
	bool has_dst;
	struct rule_date start, end;
	char std_name[MAX_ABBR + 1], dst_name[MAX_ABBR + 1];
};

struct tz {
	char *name;
	size_t ntrans;
	int64_t *trans;		/* ascending UTC instants */
	uint8_t *trans_type;	/* index into types for each transition */
	size_t ntypes;
	struct tz_type *types;
	char *abbrs;		/* charcnt bytes, NUL-terminated strings */
	bool has_rule;		/* non-empty footer */
	struct rule rule;
};

static void __attribute__((format(printf, 3, 4)))
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Calendar arithmetic on the proleptic Gregorian calendar, in days. */

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static bool
is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int64_t y, int m)
{
	static const int len[12] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};

	return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/*
 * Days from 1970-01-01 to y-m-d.  Counts in 400-year eras of 146097 days
 * with years starting on March 1, so the leap day ends its year.
 */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	if (m <= 2)
		y--;
	era = floor_div(y, 400);
	yoe = y - era * 400;				/* 0..399 */
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;	/* 0..365 */
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;	/* 0..146096 */
	return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil(). */
static void
civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
	int64_t z = days + 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;			/* 0..146096 */
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);	/* 0..365 */
	int64_t mp = (5 * doy + 2) / 153;		/* 0..11, from March */

	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* The POSIX TZ string of the footer. */

struct cursor {
	const char *p, *end;
};

static bool
at(const struct cursor *c, char ch)
{
	return c->p < c->end && *c->p == ch;
}

static bool
is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool
is_alpha(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* An unsigned number of 1 to maxdig digits, at most max. */
static int
get_num(struct cursor *c, int maxdig, int max, int *out)
{
	int v = 0, n = 0;

	while (c->p < c->end && is_digit(*c->p)) {
		if (++n > maxdig)
			return -1;
		v = v * 10 + (*c->p++ - '0');
	}
	if (n == 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

/* An abbreviation: three or more letters, or <...> of [A-Za-z0-9+-]. */
static int
get_name(struct cursor *c, char *name)
{
	size_t n = 0;

	if (at(c, '<')) {
		c->p++;
		while (c->p < c->end && *c->p != '>') {
			char ch = *c->p;

			if (!is_alpha(ch) && !is_digit(ch) && ch != '+' && ch != '-')
				return -1;
			if (n == MAX_ABBR)
				return -1;
			name[n++] = ch;
			c->p++;
		}
		if (!at(c, '>'))
			return -1;
		c->p++;
	} else {
		while (c->p < c->end && is_alpha(*c->p)) {
			if (n == MAX_ABBR)
				return -1;
			name[n++] = *c->p++;
		}
	}
	if (n < 3)
		return -1;
	name[n] = '\0';
	return 0;
}

/* [+-]hh[:mm[:ss]] in seconds, hours at most maxh. */
static int
get_secs(struct cursor *c, int maxh, int32_t *out)
{
	int sign = 1, h, m = 0, s = 0;

	if (at(c, '+') || at(c, '-'))
		sign = *c->p++ == '-' ? -1 : 1;
	if (get_num(c, 3, maxh, &h) < 0)
		return -1;
	if (at(c, ':')) {
		c->p++;
		if (get_num(c, 2, 59, &m) < 0)
			return -1;
		if (at(c, ':')) {
			c->p++;
			if (get_num(c, 2, 59, &s) < 0)
				return -1;
		}
	}
	*out = sign * (h * 3600 + m * 60 + s);
	return 0;
}

/* Jn, n or Mm.w.d, then an optional /time (default 02:00:00). */
static int
get_rule_date(struct cursor *c, struct rule_date *r)
{
	memset(r, 0, sizeof(*r));
	if (at(c, 'J')) {
		c->p++;
		r->kind = 'J';
		if (get_num(c, 3, 365, &r->n) < 0 || r->n < 1)
			return -1;
	} else if (at(c, 'M')) {
		c->p++;
		r->kind = 'M';
		if (get_num(c, 2, 12, &r->mon) < 0 || r->mon < 1)
			return -1;
		if (!at(c, '.'))
			return -1;
		c->p++;
		if (get_num(c, 1, 5, &r->week) < 0 || r->week < 1)
			return -1;
		if (!at(c, '.'))
			return -1;
		c->p++;
		if (get_num(c, 1, 6, &r->wday) < 0)
			return -1;
	} else {
		r->kind = 'D';
		if (get_num(c, 3, 365, &r->n) < 0)
			return -1;
	}
	r->secs = 2 * 3600;
	if (at(c, '/')) {
		c->p++;
		/* RFC 8536 extends POSIX's 0..24 to -167..167 hours. */
		if (get_secs(c, 167, &r->secs) < 0)
			return -1;
	}
	return 0;
}

static int
parse_rule(const char *s, size_t len, struct rule *r)
{
	struct cursor c = { s, s + len };
	int32_t off;

	memset(r, 0, sizeof(*r));
	if (get_name(&c, r->std_name) < 0 || get_secs(&c, 24, &off) < 0)
		return -1;
	/* POSIX offsets are west of Greenwich; ours are east. */
	r->std.utoff = -off;
	r->std.abbr = r->std_name;
	if (c.p == c.end)
		return 0;
	if (get_name(&c, r->dst_name) < 0)
		return -1;
	r->has_dst = true;
	r->dst.isdst = true;
	r->dst.abbr = r->dst_name;
	r->dst.utoff = r->std.utoff + 3600;
	if (c.p < c.end && *c.p != ',') {
		if (get_secs(&c, 24, &off) < 0)
			return -1;
		r->dst.utoff = -off;
	}
	if (c.p == c.end) {
		/* No dates: tzcode's default, the US rules of 2007. */
		r->start = (struct rule_date){ 'M', 0, 3, 2, 0, 7200 };
		r->end = (struct rule_date){ 'M', 0, 11, 1, 0, 7200 };
		return 0;
	}
	if (!at(&c, ','))
		return -1;
	c.p++;
	if (get_rule_date(&c, &r->start) < 0 || !at(&c, ','))
		return -1;
	c.p++;
	if (get_rule_date(&c, &r->end) < 0 || c.p != c.end)
		return -1;
	return 0;
}

/* Day of year (0-based, may reach 365) on which d falls in year y. */
static int64_t
rule_yday(const struct rule_date *d, int64_t y)
{
	int64_t first;
	int day, wday1;

	switch (d->kind) {
	case 'J':
		return d->n - 1 + (is_leap(y) && d->n >= 60 ? 1 : 0);
	case 'D':
		return d->n;
	default:
		first = days_from_civil(y, d->mon, 1);
		/* 1970-01-01 was a Thursday (4). */
		wday1 = (int)(first + 4 - floor_div(first + 4, 7) * 7);
		day = (d->wday - wday1 + 7) % 7 + 7 * (d->week - 1);
		while (day >= month_days(y, d->mon))
			day -= 7;
		return first - days_from_civil(y, 1, 1) + day;
	}
}

/*
 * The footer's local time type at t.  For the local standard year y of t
 * and its neighbours, each year gives a start of DST (given in standard
 * time) and an end (given in daylight time); the latest of these six
 * instants not after t decides.  Looking at the neighbours handles rules
 * whose times run past the year's end (times up to 167h), and a tie
 * between one year's end and the next year's start goes to the later year,
 * which makes "0/0,J365/25" daylight time all year as intended.
 */
static const struct tz_type *
rule_lookup(const struct rule *r, int64_t t)
{
	int64_t y, best_t = 0, first_t = 0;
	int m, d, best = -1, first = -1;

	if (!r->has_dst)
		return &r->std;
	civil_from_days(floor_div(t + r->std.utoff, SECS_PER_DAY), &y, &m, &d);
	for (int i = 0; i < 6; i++) {
		int64_t yy = y - 1 + i / 2;
		int64_t base = days_from_civil(yy, 1, 1);
		const struct rule_date *rd = i % 2 == 0 ? &r->start : &r->end;
		int32_t off = i % 2 == 0 ? r->std.utoff : r->dst.utoff;
		int64_t when = (base + rule_yday(rd, yy)) * SECS_PER_DAY +
		    rd->secs - off;

		/* Events come in (year, start-before-end) order: >= keeps
		 * the later one on ties. */
		if (when <= t && (best < 0 || when >= best_t)) {
			best = i;
			best_t = when;
		}
		if (first < 0 || when < first_t) {
			first = i;
			first_t = when;
		}
	}
	if (best < 0)	/* before every event: the state the first one ends */
		return first % 2 == 0 ? &r->std : &r->dst;
	return best % 2 == 0 ? &r->dst : &r->std;
}

/* The TZif data. */

struct reader {
	const unsigned char *p;
	size_t left;
};

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int64_t
be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct header {
	char version;		/* 0, '2', '3', '4', ... */
	uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static int
read_header(struct reader *r, struct header *h, char *err, size_t errlen)
{
	const unsigned char *p = r->p;

	if (r->left < HEADER_LEN) {
		seterr(err, errlen, "truncated header");
		return -1;
	}
	if (memcmp(p, "TZif", 4) != 0) {
		seterr(err, errlen, "not a TZif file");
		return -1;
	}
	h->version = (char)p[4];
	if (h->version != 0 && (h->version < '2' || h->version > '9')) {
		seterr(err, errlen, "unsupported TZif version byte 0x%02x",
		    (unsigned)p[4]);
		return -1;
	}
	h->isutcnt = be32(p + 20);
	h->isstdcnt = be32(p + 24);
	h->leapcnt = be32(p + 28);
	h->timecnt = be32(p + 32);
	h->typecnt = be32(p + 36);
	h->charcnt = be32(p + 40);
	r->p += HEADER_LEN;
	r->left -= HEADER_LEN;
	if (h->typecnt == 0 || h->typecnt > MAX_TYPES) {
		seterr(err, errlen, "bad type count %u", h->typecnt);
		return -1;
	}
	if (h->charcnt == 0) {
		seterr(err, errlen, "no abbreviation characters");
		return -1;
	}
	if ((h->isstdcnt != 0 && h->isstdcnt != h->typecnt) ||
	    (h->isutcnt != 0 && h->isutcnt != h->typecnt)) {
		seterr(err, errlen, "bad standard/UT indicator count");
		return -1;
	}
	return 0;
}

/* Bytes in a data block with tsize-byte times (4 or 8); fits in 64 bits. */
static uint64_t
block_len(const struct header *h, unsigned tsize)
{
	return (uint64_t)h->timecnt * tsize + h->timecnt +
	    (uint64_t)h->typecnt * 6 + h->charcnt +
	    (uint64_t)h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

/*
 * Read and check a data block into z.  The caller has checked that
 * block_len() bytes remain.
 */
static int
read_block(struct reader *r, const struct header *h, unsigned tsize,
    struct tz *z, char *err, size_t errlen)
{
	const unsigned char *times = r->p;
	const unsigned char *idx = times + (size_t)h->timecnt * tsize;
	const unsigned char *types = idx + h->timecnt;
	const unsigned char *chars = types + (size_t)h->typecnt * 6;
	const unsigned char *leaps = chars + h->charcnt;
	const unsigned char *isstd = leaps + (size_t)h->leapcnt * (tsize + 4);
	const unsigned char *isut = isstd + h->isstdcnt;

	z->ntrans = h->timecnt;
	z->trans = xreallocarray(NULL, h->timecnt ? h->timecnt : 1, sizeof(int64_t));
	z->trans_type = xmalloc(h->timecnt ? h->timecnt : 1);
	for (size_t i = 0; i < h->timecnt; i++) {
		const unsigned char *p = times + i * tsize;

		z->trans[i] = tsize == 8 ? be64(p) : (int32_t)be32(p);
		if (i > 0 && z->trans[i] <= z->trans[i - 1]) {
			seterr(err, errlen, "transition times not ascending");
			return -1;
		}
		if (idx[i] >= h->typecnt) {
			seterr(err, errlen, "transition type %u out of range",
			    idx[i]);
			return -1;
		}
		z->trans_type[i] = idx[i];
	}

	/* Abbreviations: keep the characters with a guard NUL. */
	z->abbrs = xmalloc((size_t)h->charcnt + 1);
	memcpy(z->abbrs, chars, h->charcnt);
	z->abbrs[h->charcnt] = '\0';

	z->ntypes = h->typecnt;
	z->types = xcalloc(h->typecnt, sizeof(*z->types));
	for (size_t i = 0; i < h->typecnt; i++) {
		const unsigned char *p = types + i * 6;
		int32_t utoff = (int32_t)be32(p);
		unsigned desig = p[5];

		if (utoff < -MAX_UTOFF || utoff > MAX_UTOFF) {
			seterr(err, errlen, "UTC offset %d out of range",
			    (int)utoff);
			return -1;
		}
		if (p[4] > 1) {
			seterr(err, errlen, "bad DST flag");
			return -1;
		}
		if (desig >= h->charcnt ||
		    memchr(chars + desig, '\0', h->charcnt - desig) == NULL) {
			seterr(err, errlen, "bad abbreviation index");
			return -1;
		}
		z->types[i].utoff = utoff;
		z->types[i].isdst = p[4];
		z->types[i].abbr = z->abbrs + desig;
	}

	/* Leap-second records: checked for order, then ignored. */
	for (size_t i = 1; i < h->leapcnt; i++) {
		const unsigned char *p = leaps + i * (tsize + 4);
		const unsigned char *q = p - (tsize + 4);
		int64_t a = tsize == 8 ? be64(q) : (int32_t)be32(q);
		int64_t b = tsize == 8 ? be64(p) : (int32_t)be32(p);

		if (b <= a) {
			seterr(err, errlen, "leap seconds not ascending");
			return -1;
		}
	}
	for (size_t i = 0; i < h->isstdcnt; i++) {
		if (isstd[i] > 1 || (h->isutcnt && isut[i] > isstd[i])) {
			seterr(err, errlen, "bad standard/UT indicator");
			return -1;
		}
	}
	for (size_t i = 0; i < h->isutcnt; i++) {
		if (isut[i] > 1 || (isut[i] && !h->isstdcnt)) {
			seterr(err, errlen, "bad standard/UT indicator");
			return -1;
		}
	}
	r->p = isut + h->isutcnt;
	r->left -= (size_t)block_len(h, tsize);
	return 0;
}

static struct tz *
tz_new(const char *name)
{
	struct tz *z = xcalloc(1, sizeof(*z));

	z->name = xstrdup(name);
	return z;
}

struct tz *
tz_parse(const unsigned char *buf, size_t len, char *err, size_t errlen)
{
	struct reader r = { buf, len };
	struct header h1, h2;
	struct tz *z;
	const unsigned char *nl;
	unsigned tsize = 4;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (buf == NULL) {
		seterr(err, errlen, "no data");
		return NULL;
	}
	if (read_header(&r, &h1, err, errlen) < 0)
		return NULL;
	if (block_len(&h1, 4) > r.left) {
		seterr(err, errlen, "truncated data block");
		return NULL;
	}
	if (h1.version != 0) {
		/* Skip the 32-bit block; the 64-bit one says it all. */
		r.p += block_len(&h1, 4);
		r.left -= (size_t)block_len(&h1, 4);
		if (read_header(&r, &h2, err, errlen) < 0)
			return NULL;
		if (h2.version != h1.version) {
			seterr(err, errlen, "version mismatch between headers");
			return NULL;
		}
		if (block_len(&h2, 8) > r.left) {
			seterr(err, errlen, "truncated data block");
			return NULL;
		}
		h1 = h2;
		tsize = 8;
	}

	z = tz_new("");
	if (read_block(&r, &h1, tsize, z, err, errlen) < 0)
		goto fail;

	if (tsize == 8) {
		/* Footer: "\n" TZ string "\n", nothing after. */
		if (r.left < 2 || r.p[0] != '\n') {
			seterr(err, errlen, "missing footer");
			goto fail;
		}
		nl = memchr(r.p + 1, '\n', r.left - 1);
		if (nl == NULL) {
			seterr(err, errlen, "unterminated footer");
			goto fail;
		}
		if ((size_t)(nl - r.p) + 1 != r.left) {
			seterr(err, errlen, "trailing data after footer");
			goto fail;
		}
		if (nl > r.p + 1) {
			if (parse_rule((const char *)r.p + 1,
			    (size_t)(nl - r.p - 1), &z->rule) < 0) {
				seterr(err, errlen, "bad TZ string in footer");
				goto fail;
			}
			z->has_rule = true;
		}
	} else if (r.left != 0) {
		seterr(err, errlen, "trailing data");
		goto fail;
	}
	return z;
fail:
	tz_free(z);
	return NULL;
}

struct tz *
tz_utc(void)
{
	struct tz *z = tz_new("UTC");

	z->abbrs = xstrdup("UTC");
	z->ntypes = 1;
	z->types = xcalloc(1, sizeof(*z->types));
	z->types[0].abbr = z->abbrs;
	return z;
}

void
tz_free(struct tz *z)
{
	if (z == NULL)
		return;
	free(z->name);
	free(z->trans);
	free(z->trans_type);
	free(z->types);
	free(z->abbrs);
	free(z);
}

const char *
tz_name(const struct tz *z)
{
	return z->name;
}

static bool
valid_name(const char *name)
{
	size_t n = strlen(name);

	if (n > MAX_NAME || name[0] == '/')
		return false;
	for (const char *p = name; *p != '\0'; p++) {
		char ch = *p;

		if (!is_alpha(ch) && !is_digit(ch) && ch != '/' && ch != '_' &&
		    ch != '+' && ch != '-')
			return false;
	}
	/* Unreachable with '.' refused above; kept as the rule itself. */
	return strstr(name, "..") == NULL;
}

/*
 * Read a whole regular file of at most TZ_MAX_FILE bytes.  Returns 0,
 * FL_ERR_NOTFOUND (no such file, or not a regular file), FL_ERR_TOOBIG,
 * or FL_ERR_IO with errno set.
 */
static int
read_file(const char *path, unsigned char **bufp, size_t *lenp)
{
	struct stat st;
	unsigned char *buf;
	size_t len = 0;
	int fd, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ENOTDIR ? FL_ERR_NOTFOUND :
		    FL_ERR_IO;
	if (fstat(fd, &st) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return FL_ERR_IO;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return FL_ERR_NOTFOUND;
	}
	if (st.st_size > TZ_MAX_FILE) {
		close(fd);
		return FL_ERR_TOOBIG;
	}
	/* One spare byte shows a file that grew since fstat. */
	buf = xmalloc((size_t)st.st_size + 1);
	for (;;) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			saved = errno;
			free(buf);
			close(fd);
			errno = saved;
			return FL_ERR_IO;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > (size_t)st.st_size) {
			free(buf);
			close(fd);
			return FL_ERR_TOOBIG;
		}
	}
	close(fd);
	*bufp = buf;
	*lenp = len;
	return 0;
}

struct tz *
tz_load(const char *name, char *err, size_t errlen)
{
	char path[sizeof(TZ_DIR) + MAX_NAME + 2];
	char why[128];
	unsigned char *buf;
	size_t len;
	struct tz *z;
	bool local = false;
	int r;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (name == NULL || name[0] == '\0' || strcmp(name, "Local") == 0) {
		local = true;
		name = "Local";
		(void)snprintf(path, sizeof(path), "%s", TZ_LOCALTIME);
	} else if (!valid_name(name)) {
		seterr(err, errlen, "invalid time zone name \"%.*s\"",
		    (int)strnlen(name, 64), name);
		return NULL;
	} else {
		/* Cannot truncate: the name is at most MAX_NAME bytes. */
		(void)snprintf(path, sizeof(path), "%s/%s", TZ_DIR, name);
	}

	r = read_file(path, &buf, &len);
	if (r == FL_ERR_NOTFOUND &&
	    (local || strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)) {
		z = tz_utc();
		free(z->name);
		z->name = xstrdup(name);
		return z;
	}
	if (r == FL_ERR_NOTFOUND) {
		seterr(err, errlen, "unknown time zone %s", name);
		return NULL;
	}
	if (r == FL_ERR_TOOBIG) {
		seterr(err, errlen, "time zone %s: %s is too large", name, path);
		return NULL;
	}
	if (r < 0) {
		seterr(err, errlen, "time zone %s: %s: %s", name, path,
		    strerror(errno));
		return NULL;
	}
	if (len < 4 || memcmp(buf, "TZif", 4) != 0) {
		free(buf);
		seterr(err, errlen, "unknown time zone %s", name);
		return NULL;
	}
	z = tz_parse(buf, len, why, sizeof(why));
	free(buf);
	if (z == NULL) {
		seterr(err, errlen, "time zone %s: %s: %s", name, path, why);
		return NULL;
	}
	free(z->name);
	z->name = xstrdup(name);
	return z;
}

/* Fill *out from the UTC instant t and the local time type ty. */
static void
fill_tm(int64_t t, const struct tz_type *ty, struct tm *out)
{
	int64_t local = t + ty->utoff;
	int64_t days = floor_div(local, SECS_PER_DAY);
	int64_t sod = local - days * SECS_PER_DAY;
	int64_t y;
	int m, d;

	civil_from_days(days, &y, &m, &d);
	memset(out, 0, sizeof(*out));
	out->tm_sec = (int)(sod % 60);
	out->tm_min = (int)(sod / 60 % 60);
	out->tm_hour = (int)(sod / 3600);
	out->tm_mday = d;
	out->tm_mon = m - 1;
	out->tm_year = (int)(y - 1900);
	out->tm_wday = (int)(days + 4 - floor_div(days + 4, 7) * 7);
	out->tm_yday = (int)(days - days_from_civil(y, 1, 1));
	out->tm_isdst = ty->isdst;
	out->tm_gmtoff = ty->utoff;
	out->tm_zone = ty->abbr;
}

int
tz_localtime(const struct tz *z, time_t t, struct tm *out)
{
	const struct tz_type *ty;

	if (z == NULL || out == NULL)
		return FL_ERR_INVAL;
	if (t > TZ_TIME_LIMIT || t < -TZ_TIME_LIMIT)
		return FL_ERR_RANGE;
	if (z->ntrans == 0 || t < z->trans[0]) {
		/* RFC 8536: before the first transition, type 0. */
		ty = z->ntrans == 0 && z->has_rule ?
		    rule_lookup(&z->rule, t) : &z->types[0];
	} else {
		size_t lo = 0, hi = z->ntrans;	/* trans[lo] <= t < trans[hi] */

		while (hi - lo > 1) {
			size_t mid = lo + (hi - lo) / 2;

			if (z->trans[mid] <= t)
				lo = mid;
			else
				hi = mid;
		}
		if (lo == z->ntrans - 1 && z->has_rule)
			ty = rule_lookup(&z->rule, t);
		else
			ty = &z->types[z->trans_type[lo]];
	}
	fill_tm(t, ty, out);
	return 0;
}

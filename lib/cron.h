/*
 * Autoscaler policy periods: 5-field unix cron expressions read as sets of
 * minutes ("* 8-15 * * mon-fri" is every minute of 08:00-15:59 on
 * weekdays), the way taskscaler's cron helper "contains" a time.  Matching
 * is over a broken-down local time; the zone comes from tz.h, so nothing
 * here looks at the process's TZ.
 */
#ifndef FL_CRON_H
#define FL_CRON_H

#include <stddef.h>
#include <time.h>

struct cron;
struct tz;

/*
 * Parse "minute hour day-of-month month day-of-week", fields separated by
 * spaces or tabs (leading and trailing blanks allowed):
 *   minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec,
 *   day of week 0-7 (0 and 7 are Sunday) or sun-sat; names are
 *   case-insensitive.
 * Each field is a comma-separated list of items: "*", "N", "N-M", "* /S"
 * (without the blank), "N-M/S", or "N/S" meaning N to the field's maximum
 * in steps of S (as robfig/cron reads it; the maximum of day-of-week is 6
 * there, so "1/2" is mon,wed,fri).  "?" is accepted as "*" as robfig/cron
 * does.  Out-of-range values, reversed ranges, step 0, empty items, a
 * field count other than 5 and trailing garbage are errors.
 *
 * Returns a new struct cron (free with cron_free), or NULL with a message
 * such as "day-of-week: value 8 out of range 0-7" in err (always
 * NUL-terminated when errlen > 0).
 */
struct cron *cron_parse(const char *expr, char *err, size_t errlen);

/* Free c; NULL is a no-op. */
void cron_free(struct cron *c);

/*
 * Does the minute containing the local time *local belong to the period?
 * Reads tm_min, tm_hour, tm_mday, tm_mon and tm_wday (tm_sec is ignored);
 * out-of-range fields never match.
 *
 * Day rule (standard cron, and robfig/cron's, which Go schedulers use):
 * when both day-of-month and day-of-week are restricted (neither is a bare
 * "*"), a day matches if EITHER matches ("0 0 13 * fri" is every 13th and
 * every Friday); otherwise both must.  A field counts as unrestricted when
 * one of its items is "*", "?" or "* /1".
 */
int cron_matches(const struct cron *c, const struct tm *local);

/*
 * cron_matches() at the UTC instant t seen in zone z.  Returns 1 or 0, or a
 * negative FL_ERR_* code when t is outside what tz_localtime() handles.
 */
int cron_active(const struct cron *c, const struct tz *z, time_t t);

/*
 * Find the first instant after `from`, and no later than `until`, at which
 * cron_active() changes value.  Changes only happen at local minute
 * boundaries, so *next is always the first second of a local minute.
 * Returns 1 with *next set, 0 when the value does not change before
 * `until`, or a negative FL_ERR_* code.  The search walks whole local days
 * and hours where the expression allows and minutes otherwise, so a year's
 * window costs at most a few hundred thousand steps (about 0.1 s).
 * `until` beyond TZ_TIME_LIMIT is taken as TZ_TIME_LIMIT.  Assumes, as
 * holds for every zone since the 1970s, that UTC offsets change by whole
 * minutes; around older LMT transitions *next may be late by under a
 * minute.
 */
int cron_next_change(const struct cron *c, const struct tz *z, time_t from,
    time_t until, time_t *next);

#endif

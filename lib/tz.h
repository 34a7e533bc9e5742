/*
 * Time zones for policy evaluation, read from the compiled TZif files of
 * the system's tzdata (RFC 8536, versions 1 to 4) into a private object.
 * Converting an instant never touches the process-wide TZ variable or
 * tzset(), so one process can evaluate policies in many zones at once and
 * tests can use any zone they like.
 */
#ifndef FL_TZ_H
#define FL_TZ_H

#include <stddef.h>
#include <time.h>

#define TZ_DIR		"/usr/share/zoneinfo"
#define TZ_LOCALTIME	"/etc/localtime"

/* Largest TZif file tz_load() reads (real ones are a few KiB). */
#define TZ_MAX_FILE	(1024 * 1024)

/* tz_localtime() handles instants within this many seconds of 1970. */
#define TZ_TIME_LIMIT	((time_t)1 << 52)

struct tz;

/*
 * Load the IANA zone `name` ("Europe/Berlin", "America/New_York", "UTC")
 * from TZ_DIR.  "Local" or "" (or NULL) means the system zone,
 * TZ_LOCALTIME, or UTC when that file is absent.  "UTC" works even without
 * tzdata.  Names must consist of [A-Za-z0-9/_+-], must not start with '/'
 * and are at most 255 bytes (so ".." cannot appear).
 *
 * Returns a new zone (free with tz_free), or NULL with a message in err
 * (always NUL-terminated when errlen > 0): "unknown time zone NAME" when
 * the file is missing or is not TZif, "invalid time zone name ..." for a
 * name refused as above, "time zone NAME: ..." for an unreadable or
 * malformed file.
 */
struct tz *tz_load(const char *name, char *err, size_t errlen);

/*
 * Parse the TZif file held in buf[0..len) (not NUL-terminated; nothing is
 * kept pointing into it).  Every count and length is checked against the
 * data; anything malformed, truncated, or followed by trailing bytes is
 * rejected.  Leap-second records are checked and ignored (instants are
 * POSIX time).  The zone's name is "".
 *
 * Returns a new zone, or NULL with the reason in err.
 */
struct tz *tz_parse(const unsigned char *buf, size_t len, char *err,
    size_t errlen);

/* A new zone for UTC, without any file. */
struct tz *tz_utc(void);

/* Free z; NULL is a no-op. */
void tz_free(struct tz *z);

/* The name the zone was loaded by ("Local" for the system zone). */
const char *tz_name(const struct tz *z);

/*
 * Convert the UTC instant t to local time in zone z, filling every field
 * of *out including tm_wday, tm_yday, tm_isdst (0 or 1), tm_gmtoff
 * (seconds east of UTC) and tm_zone (the abbreviation such as "CEST"; it
 * points into z and lives as long as z).  Instants after the file's last
 * transition follow its POSIX TZ footer rule.
 *
 * Returns 0, or FL_ERR_RANGE when |t| > TZ_TIME_LIMIT, or FL_ERR_INVAL for
 * a NULL argument.
 */
int tz_localtime(const struct tz *z, time_t t, struct tm *out);

#endif

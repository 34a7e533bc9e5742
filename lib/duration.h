/*
 * Durations as GitLab Runner's config.toml writes them: Go's
 * time.ParseDuration syntax ("1h30m", "1.5s", "500ms") read into signed
 * 64-bit nanoseconds, and Go's Duration.String() to print them back, so a
 * dumped config reads exactly like the one the runner would write.
 */
#ifndef FL_DURATION_H
#define FL_DURATION_H

#include <stddef.h>
#include <stdint.h>

#define DURATION_NS	INT64_C(1)
#define DURATION_US	INT64_C(1000)
#define DURATION_MS	INT64_C(1000000)
#define DURATION_SEC	INT64_C(1000000000)
#define DURATION_MIN	(60 * DURATION_SEC)
#define DURATION_HOUR	(60 * DURATION_MIN)

/*
 * Buffer size that always holds duration_format() output: the longest
 * string is "-2562047h47m16.854775808s" (25 bytes and the NUL).
 */
#define DURATION_STRLEN	40

/*
 * Parse s as Go's time.ParseDuration does: an optional sign, then one or
 * more decimal numbers, each with an optional fraction and a mandatory unit
 * ("ns", "us", "µs" as U+00B5 or U+03BC, "ms", "s", "m", "h"), with nothing
 * between them.  "0" (optionally signed) is the only unit-less form.
 * Fractions below a nanosecond are truncated, as in Go.
 *
 * Returns 0 and stores *ns, FL_ERR_RANGE when the value does not fit in
 * int64 nanoseconds (about 292 years), FL_ERR_PARSE for any other malformed
 * input (including "" and a number without unit).  *ns is untouched on error.
 */
int duration_parse(const char *s, int64_t *ns);

/*
 * Write ns as Go's Duration.String() does ("1h30m0s", "1.5s", "500ms",
 * "1µs" with U+00B5, "0s", "-2m3.5s") into buf, always NUL-terminated;
 * output longer than len - 1 bytes is cut short.  Use DURATION_STRLEN.
 */
void duration_format(int64_t ns, char *buf, size_t len);

#endif

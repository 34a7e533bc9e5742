/*
 * libFuzzer target for policy periods: cron_parse() on arbitrary text,
 * then matching and a bounded next-change search (UTC, three days) for
 * whatever expression was accepted.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct tz *utc;
	char err[200], *expr;
	struct cron *c;
	time_t next;

	if (size > 512)
		return 0;
	if (utc == NULL)
		utc = tz_utc();
	expr = malloc(size + 1);
	if (expr == NULL)
		return 0;
	memcpy(expr, data, size);
	expr[size] = '\0';
	c = cron_parse(expr, err, sizeof(err));
	free(expr);
	if (c == NULL) {
		if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0')
			__builtin_trap();
		return 0;
	}
	for (time_t t = 1767225600; t < 1767225600 + 86400 * 8; t += 3607) {
		struct tm tm;

		if (tz_localtime(utc, t, &tm) == 0)
			(void)cron_matches(c, &tm);
	}
	if (cron_next_change(c, utc, 1767225600, 1767225600 + 3 * 86400,
	    &next) == 1 && (next <= 1767225600 || next % 60 != 0))
		__builtin_trap();
	cron_free(c);
	return 0;
}

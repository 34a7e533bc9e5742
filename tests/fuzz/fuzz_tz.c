/*
 * libFuzzer target for the TZif reader: tz_parse() on arbitrary bytes,
 * then conversions of instants across the whole supported range through
 * whatever zone was accepted (transition table and footer rule alike).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const time_t fixed[] = {
		0, -1, 1, 2147483647, -2147483648LL, 4102444800LL,
		-TZ_TIME_LIMIT, TZ_TIME_LIMIT, TZ_TIME_LIMIT + 1,
		-((time_t)1 << 59), (time_t)1 << 40,
	};
	char err[128];
	struct tz *z = tz_parse(data, size, err, sizeof(err));
	struct tm tm;

	if (z == NULL) {
		if (memchr(err, '\0', sizeof(err)) == NULL)
			__builtin_trap();
		return 0;
	}
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		int r = tz_localtime(z, fixed[i], &tm);

		if (r == 0 && (tm.tm_zone == NULL || tm.tm_mon < 0 ||
		    tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
		    tm.tm_hour > 23 || tm.tm_wday > 6 || tm.tm_yday > 365))
			__builtin_trap();
	}
	/* A year of instants in 2026 and some around 2100, in big steps. */
	for (time_t t = 1767225600; t < 1767225600 + 366 * 86400; t += 86400 * 7 + 3593)
		(void)tz_localtime(z, t, &tm);
	for (time_t t = 4102444800LL; t < 4102444800LL + 366 * 86400; t += 86400 * 11)
		(void)tz_localtime(z, t, &tm);
	tz_free(z);
	return 0;
}

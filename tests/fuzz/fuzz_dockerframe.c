/*
 * libFuzzer target for Docker's stream frame demuxer: the first byte picks
 * the piece size and the frame maximum, the rest is the stream.  Checks
 * that payload pieces lie inside the input, are non-empty, carry a known
 * stream, and that the total payload never exceeds the input.
 */
#include <stddef.h>
#include <stdint.h>

#include "dockerframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dockerframe d;
	const uint8_t *in, *end;
	size_t step, total = 0;

	if (size < 1)
		return 0;
	step = (size_t)(data[0] & 0x3f) + 1;
	dockerframe_init(&d, data[0] & 0x40 ? 64 : 0);
	in = data + 1;
	end = data + size;
	while (in < end) {
		size_t n = (size_t)(end - in) < step ? (size_t)(end - in) : step;
		const uint8_t *p = in;

		while (p < in + n) {
			size_t used, dlen;
			const char *payload;
			int stream, rc;

			rc = dockerframe_feed(&d, p, (size_t)(in + n - p), &used,
			    &stream, &payload, &dlen);
			if (used > (size_t)(in + n - p))
				__builtin_trap();
			p += used;
			if (rc < 0)
				return 0;
			if (rc == 0)
				break;
			if (stream < 0 || stream > 3 || dlen == 0 ||
			    (const uint8_t *)payload < data ||
			    (const uint8_t *)payload + dlen > end)
				__builtin_trap();
			total += dlen;
		}
		if (p != in + n)
			__builtin_trap();
		in += n;
	}
	if (total > size)
		__builtin_trap();
	(void)dockerframe_end(&d);
	return 0;
}

/*
 * libFuzzer target for the job log's timestamper (container output is
 * outside input).  The first byte chooses how the rest is split into
 * writes.  Checks, whatever the split: every output line starts with a
 * well-formed header; taking the headers off (and the newlines the
 * timestamper added: after a '+' comes a continuation) gives back the
 * input plus at most the newlines it adds; nothing is held after close.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "timestamper.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
header_ok(const char *h)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddddddZ 01O";

	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == 'd') {
			if (h[i] < '0' || h[i] > '9')
				return 0;
		} else if (h[i] != shape[i]) {
			return 0;
		}
	}
	return h[31] == ' ' || h[31] == '+';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tstamp t;
	struct sbuf out, body;
	size_t step, off = 0, i = 0;
	int64_t now = INT64_C(1700000000) * 1000000;

	if (size < 1)
		return 0;
	step = (size_t)data[0] % 64 + 1;
	data++;
	size--;
	sbuf_init(&out);
	sbuf_init(&body);
	tstamp_init(&t, 1, TSTAMP_STDOUT);
	while (off < size) {
		size_t n = size - off < step ? size - off : step;

		/* vary the write sizes with the data itself */
		if (n > 1 && (data[off] & 1))
			n = n / 2;
		tstamp_write(&t, data + off, n, now + (int64_t)off, &out);
		off += n;
	}
	tstamp_close(&t, &out);
	if (t.buf.len != 0)
		abort();	/* nothing held after close */
	/* every line: a header, then its text */
	while (i < out.len) {
		const char *nl = memchr(out.buf + i, '\n', out.len - i);
		size_t end;

		if (nl == NULL)
			abort();	/* output always ends lines */
		end = (size_t)(nl - out.buf);
		if (end - i < TSTAMP_HEADER_LEN || !header_ok(out.buf + i))
			abort();
		sbuf_add(&body, out.buf + i + TSTAMP_HEADER_LEN,
		    end + 1 - i - TSTAMP_HEADER_LEN);
		i = end + 1;
	}
	/* the body is the input with newlines added, never anything else */
	{
		size_t a = 0, b = 0;

		while (a < size && b < body.len) {
			if ((char)data[a] == body.buf[b]) {
				a++;
				b++;
			} else if (body.buf[b] == '\n') {
				b++;
			} else {
				abort();
			}
		}
		if (a != size)
			abort();
		for (; b < body.len; b++)
			if (body.buf[b] != '\n')
				abort();
	}
	tstamp_release(&t);
	sbuf_release(&out);
	sbuf_release(&body);
	return 0;
}

/*
 * libFuzzer target for the HTTP/1.1 response parser: the first byte picks
 * the feeding pattern (piece size, HEAD request, EOF at the end); the rest
 * is one or more responses on a keep-alive connection.  Checks that every
 * call consumes no more than it was given, that body pieces point inside
 * the input, and that the parser never reports an event after an error.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http1_resp r;
	const char *in, *end;
	size_t step;
	int flags, eof, responses = 0;

	if (size < 1 || size > 256 * 1024)
		return 0;
	step = (size_t)(data[0] & 0x1f) + 1;
	if (data[0] & 0x20)
		step = (size_t)-1;	/* all at once */
	flags = data[0] & 0x40 ? HTTP1_HEAD_REQUEST : 0;
	eof = data[0] & 0x80;
	in = (const char *)data + 1;
	end = (const char *)data + size;

	http1_resp_init(&r, (data[0] & 0x10) ? 256 : 0, flags);
	while (in < end && responses < 8) {
		size_t n = (size_t)(end - in) < step ? (size_t)(end - in) : step;
		const char *p = in;
		int finished = 0, failed = 0;

		for (;;) {
			struct http1_event ev;
			size_t used;
			int rc = http1_resp_feed(&r, p, n - (size_t)(p - in),
			    &used, &ev);

			if (used > n - (size_t)(p - in))
				__builtin_trap();
			p += used;
			if (rc < 0) {
				if (ev.type != HTTP1_EV_NONE)
					__builtin_trap();
				failed = 1;
				break;
			}
			if (ev.type == HTTP1_EV_BODY &&
			    (ev.data < (const char *)data || ev.data + ev.len >
			    end || ev.len == 0))
				__builtin_trap();
			if (ev.type == HTTP1_EV_HEAD &&
			    (r.status < 100 || r.status > 999))
				__builtin_trap();
			if (ev.type == HTTP1_EV_NONE)
				break;
			if (ev.type == HTTP1_EV_DONE ||
			    ev.type == HTTP1_EV_UPGRADE) {
				finished = ev.type;
				break;
			}
		}
		in = p;
		if (failed || finished == HTTP1_EV_UPGRADE)
			break;
		if (finished == HTTP1_EV_DONE) {
			/* The next response on the connection. */
			http1_resp_release(&r);
			http1_resp_init(&r, 0, flags);
			responses++;
			continue;
		}
		if (in >= end && eof) {
			struct http1_event ev;

			(void)http1_resp_eof(&r, &ev);
			(void)http1_resp_header(&r, "Content-Type");
		}
	}
	http1_resp_release(&r);
	return 0;
}

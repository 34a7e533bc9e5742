/*
 * dockerframe: Docker's 8-byte-header stream frames taken apart across
 * every possible chunk boundary, empty frames, the system-error stream,
 * and the headers that must be refused (unknown stream, non-zero padding,
 * a size over the maximum), plus truncation at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dockerframe.h"
#include "err.h"
#include "xmalloc.h"

static void
frame(struct sbuf *sb, int stream, const char *data, size_t len)
{
	unsigned char h[8] = { (unsigned char)stream, 0, 0, 0,
	    (unsigned char)(len >> 24), (unsigned char)(len >> 16),
	    (unsigned char)(len >> 8), (unsigned char)len };

	sbuf_add(sb, h, 8);
	sbuf_add(sb, data, len);
}

/* Demux in pieces of `step`; out[stream] collects; returns rc. */
static int
demux(const char *in, size_t len, size_t step, uint32_t max,
    struct sbuf out[4], int *end)
{
	struct dockerframe d;
	size_t off = 0;

	dockerframe_init(&d, max);
	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		const char *p = in + off;

		while (n > 0) {
			size_t used, dlen;
			const char *data;
			int stream, rc;

			rc = dockerframe_feed(&d, p, n, &used, &stream, &data,
			    &dlen);
			if (rc < 0)
				return rc;
			assert_true(used <= n);
			p += used;
			n -= used;
			off += used;
			if (rc == 0) {
				assert_int_equal(n, 0);
				break;
			}
			assert_true(stream >= 0 && stream <= 3);
			assert_true(dlen > 0);
			sbuf_add(&out[stream], data, dlen);
		}
	}
	*end = dockerframe_end(&d);
	return 0;
}

static void
test_split_everywhere(void **state)
{
	struct sbuf in;
	char big[70000];

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	sbuf_init(&in);
	frame(&in, 1, "out\n", 4);
	frame(&in, 2, "err\n", 4);
	frame(&in, 1, "", 0);
	frame(&in, 2, big, sizeof(big));
	frame(&in, 1, "tail", 4);
	frame(&in, 0, "in", 2);
	for (size_t step = 1; step <= 20; step++) {
		struct sbuf out[4];
		int end, rc;

		for (int k = 0; k < 4; k++)
			sbuf_init(&out[k]);
		rc = demux(in.buf, in.len, step == 20 ? in.len : step, 0, out,
		    &end);
		assert_int_equal(rc, 0);
		assert_int_equal(end, 0);
		assert_int_equal(out[1].len, 8);
		assert_memory_equal(out[1].buf, "out\ntail", 8);
		assert_int_equal(out[2].len, 4 + sizeof(big));
		assert_memory_equal(out[2].buf, "err\n", 4);
		assert_memory_equal(out[2].buf + 4, big, sizeof(big));
		assert_int_equal(out[0].len, 2);
		assert_int_equal(out[3].len, 0);
		for (int k = 0; k < 4; k++)
			sbuf_release(&out[k]);
	}
	sbuf_release(&in);
}

static void
test_syserr_and_truncation(void **state)
{
	struct sbuf in, out[4];
	int end;

	(void)state;
	sbuf_init(&in);
	for (int k = 0; k < 4; k++)
		sbuf_init(&out[k]);
	frame(&in, 3, "Error grabbing logs", 19);
	assert_int_equal(demux(in.buf, in.len, 5, 0, out, &end), 0);
	assert_int_equal(end, 0);
	assert_int_equal(out[3].len, 19);
	/* Cut inside the header, then inside the payload. */
	assert_int_equal(demux(in.buf, 5, 5, 0, out, &end), 0);
	assert_int_equal(end, FL_ERR_CLOSED);
	assert_int_equal(demux(in.buf, 10, 3, 0, out, &end), 0);
	assert_int_equal(end, FL_ERR_CLOSED);
	for (int k = 0; k < 4; k++)
		sbuf_release(&out[k]);
	sbuf_release(&in);
}

static void
test_bad_headers(void **state)
{
	static const unsigned char bad_stream[] = { 4, 0, 0, 0, 0, 0, 0, 1, 'x' };
	static const unsigned char bad_pad[] = { 1, 0, 1, 0, 0, 0, 0, 1, 'x' };
	static const unsigned char text[] = "HTTP/1.1 200 OK\r\n";
	static const unsigned char huge[] = { 1, 0, 0, 0, 0x01, 0, 0, 1 };
	static const unsigned char maxed[] = { 2, 0, 0, 0, 0, 0, 0x10, 0 };
	struct sbuf out[4];
	struct dockerframe d;
	size_t used, dlen;
	const char *data;
	int end, stream;

	(void)state;
	for (int k = 0; k < 4; k++)
		sbuf_init(&out[k]);
	assert_int_equal(demux((const char *)bad_stream, sizeof(bad_stream), 1,
	    0, out, &end), FL_ERR_PROTO);
	assert_int_equal(demux((const char *)bad_pad, sizeof(bad_pad), 3, 0,
	    out, &end), FL_ERR_PROTO);
	assert_int_equal(demux((const char *)text, sizeof(text) - 1, 100, 0,
	    out, &end), FL_ERR_PROTO);
	/* 16 MiB + 1 over the default maximum; 4096 over a small one. */
	assert_int_equal(demux((const char *)huge, sizeof(huge), 8, 0, out,
	    &end), FL_ERR_TOOBIG);
	assert_int_equal(demux((const char *)maxed, sizeof(maxed), 8, 4095,
	    out, &end), FL_ERR_TOOBIG);
	assert_int_equal(demux((const char *)maxed, sizeof(maxed), 8, 4096,
	    out, &end), 0);
	assert_int_equal(end, FL_ERR_CLOSED);
	/* After an error, every call fails and so does the end. */
	dockerframe_init(&d, 0);
	assert_int_equal(dockerframe_feed(&d, bad_stream, sizeof(bad_stream),
	    &used, &stream, &data, &dlen), FL_ERR_PROTO);
	assert_int_equal(used, 8);
	assert_int_equal(dockerframe_feed(&d, "x", 1, &used, &stream, &data,
	    &dlen), FL_ERR_PROTO);
	assert_int_equal(dockerframe_end(&d), FL_ERR_PROTO);
	for (int k = 0; k < 4; k++)
		sbuf_release(&out[k]);
}

static void
test_empty_input(void **state)
{
	struct dockerframe d;
	size_t used, dlen;
	const char *data;
	int stream;

	(void)state;
	dockerframe_init(&d, 0);
	assert_int_equal(dockerframe_feed(&d, "", 0, &used, &stream, &data,
	    &dlen), 0);
	assert_int_equal(used, 0);
	assert_int_equal(dockerframe_end(&d), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_syserr_and_truncation),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_empty_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

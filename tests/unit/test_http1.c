/*
 * http1: responses parsed from byte strings fed in every split (one byte
 * at a time, two, seven, all at once), the framings (Content-Length,
 * chunked with extensions and trailers, close-delimited, none), interim
 * and upgrade responses, keep-alive, and the malformed inputs that must be
 * refused; plus the request writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "err.h"
#include "http1.h"
#include "xmalloc.h"

struct outcome {
	int rc;			/* first error, or 0 */
	int heads, done, upgrade;
	int status;
	size_t consumed;	/* bytes used up to DONE/UPGRADE */
	struct sbuf body;
	int keepalive;
	enum http1_framing framing;
	char ctype[128];
};

/* Feed in pieces of `step` bytes (0: all at once); eof at the end. */
static void
run(const char *in, size_t len, size_t step, int flags, int eof,
    struct outcome *o)
{
	struct http1_resp r;
	size_t off = 0;

	memset(o, 0, sizeof(*o));
	sbuf_init(&o->body);
	http1_resp_init(&r, 0, flags);
	while (!o->done && !o->upgrade && o->rc == 0) {
		size_t n = step == 0 ? len - off :
		    (len - off < step ? len - off : step);
		const char *p = in + off;
		size_t left = n;

		for (;;) {
			struct http1_event ev;
			size_t used;
			int rc = http1_resp_feed(&r, p, left, &used, &ev);

			p += used;
			left -= used;
			off += used;
			if (rc < 0) {
				o->rc = rc;
				break;
			}
			if (ev.type == HTTP1_EV_NONE)
				break;
			if (ev.type == HTTP1_EV_HEAD) {
				const char *ct;

				o->heads++;
				o->status = r.status;
				o->keepalive = r.keepalive;
				o->framing = r.framing;
				ct = http1_resp_header(&r, "content-type");
				snprintf(o->ctype, sizeof(o->ctype), "%s",
				    ct ? ct : "");
			} else if (ev.type == HTTP1_EV_BODY) {
				assert_true(ev.len > 0);
				sbuf_add(&o->body, ev.data, ev.len);
			} else if (ev.type == HTTP1_EV_DONE) {
				o->done = 1;
				o->keepalive = r.keepalive;
				break;
			} else if (ev.type == HTTP1_EV_UPGRADE) {
				o->upgrade = 1;
				o->status = r.status;
				break;
			}
		}
		o->consumed = off;
		if (o->rc || o->done || o->upgrade)
			break;
		assert_int_equal(left, 0);
		if (off == len) {
			struct http1_event ev;

			if (eof) {
				int rc = http1_resp_eof(&r, &ev);

				if (rc < 0)
					o->rc = rc;
				else if (ev.type == HTTP1_EV_DONE)
					o->done = 1;
			}
			break;
		}
	}
	http1_resp_release(&r);
}

static const size_t steps[] = { 1, 2, 3, 7, 64, 0 };

/* The same outcome in every split. */
static void
check_all(const char *in, int flags, int eof, int want_rc, int want_status,
    const char *want_body, int want_keep)
{
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct outcome o;

		run(in, strlen(in), steps[i], flags, eof, &o);
		if (o.rc != want_rc)
			fail_msg("step %zu: rc %d, want %d for %s", steps[i],
			    o.rc, want_rc, in);
		if (want_rc == 0) {
			assert_true(o.done);
			assert_int_equal(o.status, want_status);
			assert_int_equal(o.body.len, strlen(want_body));
			assert_memory_equal(o.body.buf ? o.body.buf : "",
			    want_body, o.body.len);
			assert_int_equal(o.keepalive, want_keep);
		}
		sbuf_release(&o.body);
	}
}

static void
test_content_length(void **state)
{
	(void)state;
	check_all("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: 13\r\n\r\n{\"a\": \"bcd\"}\n", 0, 0, 0, 200,
	    "{\"a\": \"bcd\"}\n", 1);
	/* Bare LF line ends, no reason phrase, empty value. */
	check_all("HTTP/1.1 404\nX-Empty:\nContent-Length: 2\n\nno", 0, 0, 0,
	    404, "no", 1);
	/* Repeated identical lengths are fine. */
	check_all("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: "
	    "3, 3\r\n\r\nabc", 0, 0, 0, 200, "abc", 1);
	/* Zero length: no body, done at once. */
	check_all("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 0, 0, 0,
	    201, "", 1);
}

static void
test_chunked(void **state)
{
	(void)state;
	check_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n1;ext=1;q=\"a \\\" b\" ; name\r\n \r\n"
	    "A\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n", 0, 0, 0, 200,
	    "hello 0123456789", 1);
	/* Upper-case hex, bare LF, Transfer-Encoding in odd case. */
	check_all("HTTP/1.1 200 OK\ntransfer-encoding: Chunked\n\n"
	    "1f\n0123456789012345678901234567890\n0\n\n", 0, 0, 0, 200,
	    "0123456789012345678901234567890", 1);
	/* Docker's wait: chunked JSON. */
	check_all("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n1e\r\n{\"Error\":null,\"StatusCode\""
	    ":3}\n\r\n0\r\n\r\n", 0, 0, 0, 200,
	    "{\"Error\":null,\"StatusCode\":3}\n", 1);
}

static void
test_close_delimited(void **state)
{
	(void)state;
	check_all("HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\nstream bytes", 0,
	    1, 0, 200, "stream bytes", 0);
	/* Truncated bodies are errors at EOF. */
	check_all("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 0, 1,
	    FL_ERR_CLOSED, 0, "", 0);
	check_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n"
	    "hel", 0, 1, FL_ERR_CLOSED, 0, "", 0);
	check_all("HTTP/1.1 200 OK\r\nContent-Len", 0, 1, FL_ERR_CLOSED, 0, "",
	    0);
	check_all("", 0, 1, FL_ERR_CLOSED, 0, "", 0);
}

static void
test_keepalive(void **state)
{
	(void)state;
	check_all("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1"
	    "\r\n\r\nx", 0, 0, 0, 200, "x", 0);
	check_all("HTTP/1.1 200 OK\r\nConnection: foo, CLOSE\r\n"
	    "Content-Length: 1\r\n\r\nx", 0, 0, 0, 200, "x", 0);
	check_all("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 0, 0, 0, 200,
	    "x", 0);
	check_all("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"
	    "Content-Length: 1\r\n\r\nx", 0, 0, 0, 200, "x", 1);
}

static void
test_no_body(void **state)
{
	struct outcome o;
	const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";

	(void)state;
	/* A HEAD request's answer announces a body that does not come. */
	check_all(in, HTTP1_HEAD_REQUEST, 0, 0, 200, "", 1);
	check_all("HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", 0, 0, 0, 204,
	    "", 1);
	check_all("HTTP/1.1 304 Not Modified\r\n\r\n", 0, 0, 0, 304, "", 1);
	/* The bytes after a response are left to the caller. */
	run("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200", 38, 0, 0, 0, &o);
	assert_true(o.done);
	assert_int_equal(o.consumed, 27);
	sbuf_release(&o.body);
}

static void
test_interim_and_upgrade(void **state)
{
	struct outcome o;
	const char *up = "HTTP/1.1 101 UPGRADED\r\nContent-Type: "
	    "application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
	    "Upgrade: tcp\r\n\r\n\x01\0\0\0\0\0\0\x02hi";
	size_t uplen = strlen(up) + 9;	/* strlen stops at the first NUL */
	size_t headlen = (size_t)(strstr(up, "\r\n\r\n") + 4 - up);

	(void)state;
	check_all("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n"
	    "X: y\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0,
	    0, 200, "ok", 1);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		run(up, uplen, steps[i], 0, 0, &o);
		assert_int_equal(o.rc, 0);
		assert_true(o.upgrade);
		assert_int_equal(o.status, 101);
		assert_int_equal(o.consumed, headlen);
		assert_int_equal(o.heads, 0);
		sbuf_release(&o.body);
	}
	/* Too many interim responses. */
	{
		struct sbuf sb;

		sbuf_init(&sb);
		for (int i = 0; i < HTTP1_MAX_INTERIM + 1; i++)
			sbuf_adds(&sb, "HTTP/1.1 100 Continue\r\n\r\n");
		sbuf_adds(&sb, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
		check_all(sb.buf, 0, 0, FL_ERR_PROTO, 0, "", 0);
		sbuf_release(&sb);
	}
}

static void
test_malformed(void **state)
{
	static const char *const bad[] = {
		"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.2 200 OK\r\n\r\n",
		"http/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 20 OK\r\n\r\n",
		"HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 099 OK\r\n\r\n",
		"HTTP/1.1  200 OK\r\n\r\n",
		"HTTP/1.1 200OK\r\n\r\n",
		"HTTP/1.1 200 O\x01K\r\n\r\n",
		"\r\nHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nName : x\r\n\r\n",
		"HTTP/1.1 200 OK\r\n: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",
		"HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",
		"HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: "
		    "chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1,\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;x\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "1;a=\"x\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1 x\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
		    "bad trailer\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\ra\r\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_all(bad[i], 0, 1, FL_ERR_PROTO, 0, "", 0);
}

static void
test_nul_byte(void **state)
{
	static const char in[] = "HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n";
	struct outcome o;

	(void)state;
	run(in, sizeof(in) - 1, 0, 0, 1, &o);
	assert_int_equal(o.rc, FL_ERR_PROTO);
	sbuf_release(&o.body);
}

static void
test_limits(void **state)
{
	struct sbuf sb;

	(void)state;
	/* A head over 64 KiB. */
	sbuf_init(&sb);
	sbuf_adds(&sb, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 2000; i++)
		sbuf_addf(&sb, "X-Header-%04d: %s\r\n", i,
		    "0123456789012345678901234567890123456789");
	sbuf_adds(&sb, "\r\n");
	check_all(sb.buf, 0, 1, FL_ERR_TOOBIG, 0, "", 0);
	sbuf_release(&sb);
	/* More fields than HTTP1_MAX_HEADERS, though small. */
	sbuf_init(&sb);
	sbuf_adds(&sb, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < HTTP1_MAX_HEADERS + 1; i++)
		sbuf_addf(&sb, "X%d: y\r\n", i);
	sbuf_adds(&sb, "Content-Length: 0\r\n\r\n");
	check_all(sb.buf, 0, 1, FL_ERR_TOOBIG, 0, "", 0);
	sbuf_release(&sb);
	/* Exactly HTTP1_MAX_HEADERS is fine. */
	sbuf_init(&sb);
	sbuf_adds(&sb, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < HTTP1_MAX_HEADERS - 1; i++)
		sbuf_addf(&sb, "X%d: y\r\n", i);
	sbuf_adds(&sb, "Content-Length: 0\r\n\r\n");
	check_all(sb.buf, 0, 0, 0, 200, "", 1);
	sbuf_release(&sb);
	/* Lengths past 2^62, chunk sizes that overflow, long chunk lines. */
	check_all("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n"
	    "\r\n", 0, 1, FL_ERR_TOOBIG, 0, "", 0);
	check_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "fffffffffffffffff\r\n", 0, 1, FL_ERR_TOOBIG, 0, "", 0);
	sbuf_init(&sb);
	sbuf_adds(&sb, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1");
	for (int i = 0; i < HTTP1_MAX_CHUNK_LINE; i++)
		sbuf_adds(&sb, ";a");
	sbuf_adds(&sb, "\r\nx\r\n0\r\n\r\n");
	check_all(sb.buf, 0, 1, FL_ERR_TOOBIG, 0, "", 0);
	sbuf_release(&sb);
	/* A large announced length is fine: the body is not buffered. */
	{
		struct outcome o;
		const char *in = "HTTP/1.1 200 OK\r\nContent-Length: "
		    "4611686018427387904\r\n\r\nabc";

		run(in, strlen(in), 0, 0, 0, &o);
		assert_int_equal(o.rc, 0);
		assert_int_equal(o.framing, HTTP1_FRAMING_LENGTH);
		assert_int_equal(o.body.len, 3);
		sbuf_release(&o.body);
	}
}

static void
test_small_max_head(void **state)
{
	struct http1_resp r;
	struct http1_event ev;
	size_t used;
	const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

	(void)state;
	http1_resp_init(&r, 20, 0);
	assert_int_equal(http1_resp_feed(&r, in, strlen(in), &used, &ev),
	    FL_ERR_TOOBIG);
	/* Every later call fails too. */
	assert_int_equal(http1_resp_feed(&r, in, strlen(in), &used, &ev),
	    FL_ERR_INVAL);
	http1_resp_release(&r);
	http1_resp_release(NULL);
}

static void
test_headers_api(void **state)
{
	struct http1_resp r;
	struct http1_event ev;
	size_t used;
	const char *in = "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\n"
	    "Connection: keep-alive ,Upgrade\r\nX:   padded  \t\r\n"
	    "Content-Length: 0\r\n\r\n";

	(void)state;
	http1_resp_init(&r, 0, 0);
	assert_int_equal(http1_resp_feed(&r, in, strlen(in), &used, &ev), 0);
	assert_int_equal(ev.type, HTTP1_EV_HEAD);
	assert_int_equal(used, strlen(in));
	assert_true(http1_resp_have_head(&r));
	assert_string_equal(http1_resp_header(&r, "API-VERSION"), "1.41");
	assert_string_equal(http1_resp_header(&r, "x"), "padded");
	assert_null(http1_resp_header(&r, "missing"));
	assert_true(http1_resp_has_token(&r, "connection", "upgrade"));
	assert_true(http1_resp_has_token(&r, "connection", "Keep-Alive"));
	assert_false(http1_resp_has_token(&r, "connection", "close"));
	assert_string_equal(r.reason, "OK");
	assert_int_equal(r.nheaders, 4);
	assert_int_equal(http1_resp_feed(&r, "", 0, &used, &ev), 0);
	assert_int_equal(ev.type, HTTP1_EV_DONE);
	assert_int_equal(http1_resp_eof(&r, &ev), FL_ERR_INVAL);
	http1_resp_release(&r);
}

static void
test_write_request(void **state)
{
	struct sbuf sb;
	struct http1_header h[] = {
		{ "User-Agent", "flotilla/1" },
		{ "X-Registry-Auth", "eyJ1c2VybmFtZSI6ImEifQ==" },
	};
	struct http1_header bad[] = { { "Bad Name", "x" } };
	struct http1_header badv[] = { { "X", "a\r\nInjected: 1" } };

	(void)state;
	sbuf_init(&sb);
	assert_int_equal(http1_write_request(&sb, "POST",
	    "/v1.41/containers/create?name=x", "docker", h, 2, 12), 0);
	assert_string_equal(sb.buf, "POST /v1.41/containers/create?name=x "
	    "HTTP/1.1\r\nHost: docker\r\nUser-Agent: flotilla/1\r\n"
	    "X-Registry-Auth: eyJ1c2VybmFtZSI6ImEifQ==\r\n"
	    "Content-Length: 12\r\n\r\n");
	sbuf_reset(&sb);
	assert_int_equal(http1_write_request(&sb, "GET", "/_ping", "docker",
	    NULL, 0, -1), 0);
	assert_string_equal(sb.buf, "GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n");
	sbuf_reset(&sb);
	assert_int_equal(http1_write_request(&sb, "GET", "/a b", "docker",
	    NULL, 0, -1), FL_ERR_INVAL);
	assert_int_equal(http1_write_request(&sb, "GET", "noslash", "docker",
	    NULL, 0, -1), FL_ERR_INVAL);
	assert_int_equal(http1_write_request(&sb, "GE T", "/", "docker",
	    NULL, 0, -1), FL_ERR_INVAL);
	assert_int_equal(http1_write_request(&sb, "GET", "/", "docker", bad, 1,
	    -1), FL_ERR_INVAL);
	assert_int_equal(http1_write_request(&sb, "GET", "/", "docker", badv,
	    1, -1), FL_ERR_INVAL);
	assert_int_equal(http1_write_request(&sb, "GET", "/\n", "docker",
	    NULL, 0, -1), FL_ERR_INVAL);
	assert_int_equal(sb.len, 0);
	sbuf_release(&sb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_close_delimited),
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_no_body),
		cmocka_unit_test(test_interim_and_upgrade),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_small_max_head),
		cmocka_unit_test(test_headers_api),
		cmocka_unit_test(test_write_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

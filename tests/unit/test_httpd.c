/*
 * httpd: listen_address parsing (GitLab Runner's forms, default port,
 * refusals), the /debug/jobs/list line, state names, and one in-process
 * round trip on 127.0.0.1:0 with libevent's HTTP client on the same
 * event base (the endpoints in depth are tests/integration/httpd.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "err.h"
#include "httpd.h"
#include "metrics.h"
#include "xmalloc.h"

static void
test_parse_address(void **state)
{
	static const struct {
		const char *in;
		int rc;
		const char *host;
		int port;
	} cases[] = {
		{ "127.0.0.1:9252", 0, "127.0.0.1", 9252 },
		{ ":9252", 0, "", 9252 },
		{ ":0", 0, "", 0 },
		{ "localhost", 0, "localhost", HTTPD_DEFAULT_PORT },
		{ "0.0.0.0", 0, "0.0.0.0", HTTPD_DEFAULT_PORT },
		{ "[::1]:80", 0, "::1", 80 },
		{ "[::]", 0, "::", HTTPD_DEFAULT_PORT },
		{ "[fe80::1%eth0]:9000", 0, "fe80::1%eth0", 9000 },
		{ "host:65535", 0, "host", 65535 },
		{ "host:65536", FL_ERR_PARSE, NULL, 0 },
		{ "host:", FL_ERR_PARSE, NULL, 0 },
		{ "host:http", FL_ERR_PARSE, NULL, 0 },
		{ "host:-1", FL_ERR_PARSE, NULL, 0 },
		{ "host:000009252", FL_ERR_PARSE, NULL, 0 },
		{ "::1", FL_ERR_PARSE, NULL, 0 },	/* v6 wants brackets */
		{ "[::1", FL_ERR_PARSE, NULL, 0 },
		{ "[::1]x", FL_ERR_PARSE, NULL, 0 },
		{ "[]:80", FL_ERR_PARSE, NULL, 0 },
		{ "", FL_ERR_PARSE, NULL, 0 },
		{ "a b:80", FL_ERR_PARSE, NULL, 0 },
		{ "http://x:80", FL_ERR_PARSE, NULL, 0 },
	};
	char host[64];
	int port;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = httpd_parse_address(cases[i].in, host, sizeof(host),
		    &port);

		if (rc != cases[i].rc)
			print_error("%s: %d\n", cases[i].in, rc);
		assert_int_equal(rc, cases[i].rc);
		if (rc == 0) {
			assert_string_equal(host, cases[i].host);
			assert_int_equal(port, cases[i].port);
		}
	}
	assert_int_equal(httpd_parse_address("averyveryverylonghostname:1",
	    host, 8, &port), FL_ERR_TOOBIG);
}

static void
test_job_line(void **state)
{
	struct sbuf out;

	(void)state;
	sbuf_init(&out);
	httpd_job_line(&out, "https://gl.example/g/p/-/jobs/7", "running",
	    "step_script", "running_script", INT64_C(3723000000000));
	httpd_job_line(&out, NULL, NULL, NULL, NULL, 0);
	assert_string_equal(out.buf,
	    "url=https://gl.example/g/p/-/jobs/7 state=running stage=step_script"
	    " executor_stage=running_script duration=1h2m3s\n"
	    "url= state= stage= executor_stage= duration=0s\n");
	sbuf_release(&out);
	assert_string_equal(httpd_state_name(HTTPD_STARTING), "starting");
	assert_string_equal(httpd_state_name(HTTPD_RUNNING), "running");
	assert_string_equal(httpd_state_name(HTTPD_GRACEFUL_SHUTDOWN),
	    "graceful-shutdown");
	assert_string_equal(httpd_state_name(HTTPD_FORCEFUL_SHUTDOWN),
	    "forceful-shutdown");
}

struct fetch {
	int code;
	struct sbuf body;
	char ctype[128];
	int pending;
	struct event_base *base;
};

static void
on_done(struct evhttp_request *req, void *arg)
{
	struct fetch *f = arg;

	if (req != NULL) {
		struct evbuffer *b = evhttp_request_get_input_buffer(req);
		const char *ct = evhttp_find_header(
		    evhttp_request_get_input_headers(req), "Content-Type");
		size_t n = evbuffer_get_length(b);

		f->code = evhttp_request_get_response_code(req);
		sbuf_add(&f->body, evbuffer_pullup(b, -1), n);
		snprintf(f->ctype, sizeof(f->ctype), "%s", ct ? ct : "");
	}
	if (--f->pending == 0)
		event_base_loopexit(f->base, NULL);
}

static void
fetch(struct event_base *base, struct evhttp_connection *c,
    enum evhttp_cmd_type cmd, const char *path, struct fetch *f)
{
	struct evhttp_request *req;
	struct timeval tv = { 10, 0 };

	sbuf_reset(&f->body);
	f->code = 0;
	f->ctype[0] = '\0';
	f->pending = 1;
	f->base = base;
	req = evhttp_request_new(on_done, f);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "x");
	assert_int_equal(evhttp_make_request(c, req, cmd, path), 0);
	event_base_loopexit(base, &tv);		/* a bound, should it hang */
	event_base_dispatch(base);
}

static void
jobs(void *arg, struct sbuf *out)
{
	(void)arg;
	httpd_job_line(out, "u", "running", "s", "e", 1500000000);
}

static void
test_round_trip(void **state)
{
	struct event_base *base = event_base_new();
	struct metrics *m = metrics_new();
	struct httpd *h, *h2;
	struct httpd_hooks hooks = { m, jobs, NULL };
	struct evhttp_connection *c;
	struct fetch f;
	char err[256], addr[64];

	(void)state;
	metrics_set(metrics_gauge(m, "probe_gauge", "A gauge.", NULL, 0),
	    NULL, 3);
	h = httpd_new(base, "127.0.0.1:0", err, sizeof(err));
	assert_non_null(h);
	assert_true(httpd_port(h) > 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", httpd_port(h));
	assert_string_equal(httpd_address(h), addr);

	memset(&f, 0, sizeof(f));
	sbuf_init(&f.body);
	c = evhttp_connection_base_new(base, NULL, "127.0.0.1",
	    (unsigned short)httpd_port(h));

	/* Before hooks: an empty exposition. */
	fetch(base, c, EVHTTP_REQ_GET, "/metrics", &f);
	assert_int_equal(f.code, 200);
	assert_string_equal(f.body.buf, "");
	httpd_set_hooks(h, &hooks);
	fetch(base, c, EVHTTP_REQ_GET, "/metrics?x=1", &f);
	assert_int_equal(f.code, 200);
	assert_string_equal(f.ctype, METRICS_CONTENT_TYPE);
	assert_string_equal(f.body.buf,
	    "# HELP probe_gauge A gauge.\n# TYPE probe_gauge gauge\nprobe_gauge 3\n");
	fetch(base, c, EVHTTP_REQ_GET, "/debug/jobs/list", &f);
	assert_string_equal(f.body.buf,
	    "url=u state=running stage=s executor_stage=e duration=1.5s\n");
	fetch(base, c, EVHTTP_REQ_GET, "/health/ready", &f);
	assert_int_equal(f.code, 503);
	httpd_set_state(h, HTTPD_RUNNING);
	fetch(base, c, EVHTTP_REQ_GET, "/health/ready", &f);
	assert_int_equal(f.code, 200);
	assert_string_equal(f.body.buf, "ready\n");
	fetch(base, c, EVHTTP_REQ_PUT, "/metrics", &f);
	assert_int_equal(f.code, 405);
	fetch(base, c, EVHTTP_REQ_GET, "/", &f);
	assert_int_equal(f.code, 404);

	/* The same port again: a clear error, no crash. */
	h2 = httpd_new(base, addr, err, sizeof(err));
	assert_null(h2);
	assert_non_null(strstr(err, "Address already in use"));
	assert_null(httpd_new(base, "nonsense:port", err, sizeof(err)));
	assert_non_null(strstr(err, "invalid address"));

	evhttp_connection_free(c);
	sbuf_release(&f.body);
	httpd_free(h);
	httpd_free(NULL);
	metrics_free(m);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_address),
		cmocka_unit_test(test_job_line),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

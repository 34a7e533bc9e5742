/*
 * The connector's pure parts (address parsing and choice, the
 * direct-streamlocal channel-open payload, the retry schedule and policy,
 * fingerprints, Docker host helpers, key files) and, on a loopback port
 * nothing listens on, the connect/fail/callback machinery: a refused
 * connect ends in CONN_DOWN after the configured attempts, requests fail
 * cleanly, conn_free() works from inside a callback.  The real sshd tests
 * are in tests/integration/connector.sh.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "connector.h"
#include "err.h"
#include "xmalloc.h"

static void
test_parse_addr_good(void **state)
{
	static const struct {
		const char *in;
		const char *host;
		int port;
	} t[] = {
		{ "10.0.0.1", "10.0.0.1", 22 },
		{ "10.0.0.1:2222", "10.0.0.1", 2222 },
		{ "host.example.com", "host.example.com", 22 },
		{ "host.example.com:22", "host.example.com", 22 },
		{ "[::1]:2222", "::1", 2222 },
		{ "[::1]", "::1", 22 },
		{ "::1", "::1", 22 },
		{ "2001:db8::5", "2001:db8::5", 22 },
		{ "[2001:db8::5]:65535", "2001:db8::5", 65535 },
		{ "h:1", "h", 1 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *host = NULL;
		int port = 0;

		assert_int_equal(conn_parse_addr(t[i].in, 22, &host, &port), 0);
		assert_string_equal(host, t[i].host);
		assert_int_equal(port, t[i].port);
		free(host);
	}
}

static void
test_parse_addr_default_port(void **state)
{
	char *host = NULL;
	int port = 0;

	(void)state;
	assert_int_equal(conn_parse_addr("1.2.3.4", 2200, &host, &port), 0);
	assert_int_equal(port, 2200);
	free(host);
	assert_int_equal(conn_parse_addr("1.2.3.4:23", 2200, &host, &port), 0);
	assert_int_equal(port, 23);
	free(host);
}

static void
test_parse_addr_bad(void **state)
{
	static const char *bad[] = {
		"", "host:", ":22", "[::1", "[::1]x", "[::1]:", "[]:22",
		"host:0", "host:65536", "host:abc", "host:-1", "host:+22",
		"a b", "a\tb", "[1.2.3.4]", "host:22:33", "user@host",
		"host/x", "[::1]:99999", "fe80::1%eth0:22",
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *host = NULL;
		int port = 0;

		if (conn_parse_addr(bad[i], 22, &host, &port) != FL_ERR_PARSE)
			fail_msg("accepted \"%s\" as %s:%d", bad[i], host,
			    port);
		assert_null(host);
	}
	assert_int_equal(conn_parse_addr(NULL, 22, &(char *){ NULL },
	    &(int){ 0 }), FL_ERR_PARSE);
}

static void
test_pick_addr(void **state)
{
	(void)state;
	assert_string_equal(conn_pick_addr("10.0.0.1", "1.2.3.4", 0),
	    "10.0.0.1");
	assert_string_equal(conn_pick_addr("10.0.0.1", "1.2.3.4", 1),
	    "1.2.3.4");
	/* Empty external: internal, even when external is wanted. */
	assert_string_equal(conn_pick_addr("10.0.0.1", "", 1), "10.0.0.1");
	assert_string_equal(conn_pick_addr("10.0.0.1", NULL, 1), "10.0.0.1");
	/* Only an external address: used regardless. */
	assert_string_equal(conn_pick_addr("", "1.2.3.4", 0), "1.2.3.4");
	assert_string_equal(conn_pick_addr(NULL, "1.2.3.4", 0), "1.2.3.4");
	assert_null(conn_pick_addr("", "", 1));
	assert_null(conn_pick_addr(NULL, NULL, 0));
}

static void
test_streamlocal_msg(void **state)
{
	static const char path[] = "/var/run/docker.sock";
	unsigned char want[4 + 20 + 4 + 4] = { 0, 0, 0, 20 };
	unsigned char buf[64];
	size_t n;

	(void)state;
	memcpy(want + 4, path, 20);	/* then string "" and uint32 0 */
	n = conn_streamlocal_msg(path, NULL, 0);
	assert_int_equal(n, sizeof(want));
	memset(buf, 0xaa, sizeof(buf));
	assert_int_equal(conn_streamlocal_msg(path, buf, 10), sizeof(want));
	assert_int_equal(buf[0], 0xaa);		/* untouched when short */
	n = conn_streamlocal_msg(path, buf, sizeof(buf));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(buf[n], 0xaa);

	/* A 300-byte path: the length is big-endian over four bytes. */
	{
		char longp[301];

		memset(longp, 'p', 300);
		longp[0] = '/';
		longp[300] = '\0';
		n = conn_streamlocal_msg(longp, buf, sizeof(buf));
		assert_int_equal(n, 312);
		{
			unsigned char *big = xmalloc(n);

			assert_int_equal(conn_streamlocal_msg(longp, big, n), n);
			assert_int_equal(big[0], 0);
			assert_int_equal(big[1], 0);
			assert_int_equal(big[2], 1);
			assert_int_equal(big[3], 300 - 256);
			assert_memory_equal(big + 4, longp, 300);
			assert_memory_equal(big + 304, "\0\0\0\0\0\0\0\0", 8);
			free(big);
		}
	}
}

static void
test_backoff(void **state)
{
	const int64_t s = CONN_NS_PER_SEC;
	int64_t total = 0;
	int n;

	(void)state;
	assert_int_equal(conn_backoff_ns(1), 1 * s);
	assert_int_equal(conn_backoff_ns(2), 2 * s);
	assert_int_equal(conn_backoff_ns(3), 4 * s);
	assert_int_equal(conn_backoff_ns(4), 5 * s);
	assert_int_equal(conn_backoff_ns(5), 5 * s);
	assert_int_equal(conn_backoff_ns(1000), 5 * s);
	assert_int_equal(conn_backoff_ns(0), 1 * s);
	/* 30 attempts: 29 pauses, 1 + 2 + 4 + 26 * 5 = 137 s. */
	for (n = 1; n < CONN_DEFAULT_MAX_ATTEMPTS; n++) {
		assert_true(conn_backoff_ns(n) >= conn_backoff_ns(n > 1 ? n - 1 : 1));
		total += conn_backoff_ns(n);
	}
	assert_int_equal(total, 137 * s);
}

static void
test_should_retry(void **state)
{
	(void)state;
	/* Network failures: until the attempts run out. */
	assert_true(conn_should_retry(CONN_FAIL_NET, 1, 0, 30, 5));
	assert_true(conn_should_retry(CONN_FAIL_NET, 29, 0, 30, 5));
	assert_false(conn_should_retry(CONN_FAIL_NET, 30, 0, 30, 5));
	/* Authentication failures: a few times only. */
	assert_true(conn_should_retry(CONN_FAIL_AUTH, 1, 1, 30, 5));
	assert_true(conn_should_retry(CONN_FAIL_AUTH, 10, 4, 30, 5));
	assert_false(conn_should_retry(CONN_FAIL_AUTH, 10, 5, 30, 5));
	assert_false(conn_should_retry(CONN_FAIL_AUTH, 30, 1, 30, 5));
	/* A changed host key and fatal errors: never. */
	assert_false(conn_should_retry(CONN_FAIL_HOSTKEY, 1, 0, 30, 5));
	assert_false(conn_should_retry(CONN_FAIL_FATAL, 1, 0, 30, 5));
	assert_false(conn_should_retry(CONN_FAIL_NONE, 1, 0, 30, 5));
}

static void
test_fingerprint(void **state)
{
	/* SHA256 of "": OpenSSH-style base64, no padding. */
	static const unsigned char empty[32] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
		0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
		0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
		0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
	};
	unsigned char h[32];
	char out[CONN_FINGERPRINT_MAX];
	int i;

	(void)state;
	conn_fingerprint_format(empty, out);
	assert_string_equal(out,
	    "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
	memset(h, 0xff, sizeof(h));
	conn_fingerprint_format(h, out);
	assert_string_equal(out,
	    "SHA256://////////////////////////////////////////8");
	for (i = 0; i < 32; i++)
		h[i] = (unsigned char)i;
	conn_fingerprint_format(h, out);
	assert_string_equal(out,
	    "SHA256:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8");
	assert_int_equal(strlen(out), 50);
}

static void
test_docker_socket_path(void **state)
{
	char *p = NULL;

	(void)state;
	assert_int_equal(conn_docker_socket_path(NULL, &p), 0);
	assert_string_equal(p, "/var/run/docker.sock");
	free(p);
	assert_int_equal(conn_docker_socket_path("", &p), 0);
	assert_string_equal(p, "/var/run/docker.sock");
	free(p);
	assert_int_equal(conn_docker_socket_path("unix:///run/user/1000/d.sock",
	    &p), 0);
	assert_string_equal(p, "/run/user/1000/d.sock");
	free(p);
	p = NULL;
	assert_int_equal(conn_docker_socket_path("tcp://10.0.0.1:2375", &p),
	    FL_ERR_INVAL);
	assert_int_equal(conn_docker_socket_path("npipe:////./pipe/docker",
	    &p), FL_ERR_INVAL);
	assert_int_equal(conn_docker_socket_path("unix://", &p), FL_ERR_INVAL);
	assert_int_equal(conn_docker_socket_path("unix://rel.sock", &p),
	    FL_ERR_INVAL);
	assert_null(p);
}

static void
test_dial_stdio_command(void **state)
{
	char *s;

	(void)state;
	s = conn_dial_stdio_command(NULL);
	assert_string_equal(s, "docker system dial-stdio");
	free(s);
	s = conn_dial_stdio_command("unix:///run/d.sock");
	assert_string_equal(s, "docker -H 'unix:///run/d.sock' system dial-stdio");
	free(s);
	s = conn_dial_stdio_command("unix:///a b'c;rm");
	assert_string_equal(s,
	    "docker -H 'unix:///a b'\\''c;rm' system dial-stdio");
	free(s);
}

static void
test_read_key_file(void **state)
{
	char path[] = "/tmp/flotilla-test-key-XXXXXX";
	char *key = NULL;
	size_t len = 0;
	int fd;
	char *big;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "-----BEGIN KEY-----\nabc\n", 24), 24);
	close(fd);
	assert_int_equal(conn_read_key_file(path, &key, &len), 0);
	assert_int_equal(len, 24);
	assert_string_equal(key, "-----BEGIN KEY-----\nabc\n");
	freezero(key, len);

	big = xcalloc(1, 70000);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, big, 70000), 70000);
	close(fd);
	free(big);
	assert_int_equal(conn_read_key_file(path, &key, &len), FL_ERR_TOOBIG);
	unlink(path);
	assert_int_equal(conn_read_key_file(path, &key, &len),
	    FL_ERR_NOTFOUND);
}

static const char fake_key[] = "not a real key";

static void
base_params(struct conn_params *p)
{
	memset(p, 0, sizeof(*p));
	p->instance_id = "i-1";
	p->internal_addr = "127.0.0.1:1";
	p->cred.username = "root";
	p->cred.key = fake_key;
	p->cred.key_len = sizeof(fake_key) - 1;
}

static void
test_new_invalid(void **state)
{
	struct event_base *base = event_base_new();
	struct conn_params p;
	struct conn *c;
	int err = 0;

	(void)state;
	base_params(&p);
	p.instance_id = NULL;
	assert_null(conn_new(base, &p, NULL, NULL, &err));
	assert_int_equal(err, FL_ERR_INVAL);

	base_params(&p);
	p.cred.key = NULL;
	p.cred.key_len = 0;
	assert_null(conn_new(base, &p, NULL, NULL, &err));
	assert_int_equal(err, FL_ERR_INVAL);

	base_params(&p);
	p.cred.username = "";
	assert_null(conn_new(base, &p, NULL, NULL, &err));
	assert_int_equal(err, FL_ERR_INVAL);

	base_params(&p);
	p.pinned_fingerprint = "MD5:aa:bb";
	assert_null(conn_new(base, &p, NULL, NULL, &err));
	assert_int_equal(err, FL_ERR_INVAL);

	base_params(&p);
	p.internal_addr = "[::1";
	assert_null(conn_new(base, &p, NULL, NULL, &err));
	assert_int_equal(err, FL_ERR_PARSE);

	base_params(&p);
	p.internal_addr = "";
	p.external_addr = NULL;
	assert_null(conn_new(base, &p, NULL, NULL, &err));
	assert_int_equal(err, FL_ERR_PARSE);

	/* Valid: created, connecting, the pin kept, freed unused. */
	base_params(&p);
	p.external_addr = "[::1]:2222";
	p.use_external_addr = 1;
	p.pinned_fingerprint =
	    "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
	c = conn_new(base, &p, NULL, NULL, &err);
	assert_non_null(c);
	assert_int_equal(err, 0);
	assert_int_equal(conn_state(c), CONN_CONNECTING);
	assert_string_equal(conn_address(c), "[::1]:2222");
	assert_string_equal(conn_host_key_fingerprint(c),
	    "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
	assert_null(conn_open_stream(c, "", NULL, NULL));
	conn_free(c);
	conn_free(NULL);
	event_base_free(base);
}

/* A refused connect, with requests waiting, freed from its callback. */
struct refused {
	struct event_base *base;
	struct conn *c;
	int downs;
	int connecting;
	int stream_err;
	int run_err;
	int run_status;
	int cancelled_called;
	char msg[512];
};

static void
refused_state(void *arg, enum conn_state st, int err, const char *msg)
{
	struct refused *t = arg;

	if (st == CONN_CONNECTING) {
		t->connecting++;
		assert_true(err < 0);
		return;
	}
	assert_int_equal(st, CONN_DOWN);
	assert_int_equal(err, FL_ERR_IO);
	t->downs++;
	snprintf(t->msg, sizeof(t->msg), "%s", msg);
	assert_int_equal(conn_state(t->c), CONN_DOWN);
	assert_int_equal(conn_failure(t->c), CONN_FAIL_NET);
	/* Freeing from inside the callback is allowed. */
	conn_free(t->c);
	t->c = NULL;
}

static void
refused_stream(void *arg, int err, const char *errmsg, struct bufferevent *bev)
{
	struct refused *t = arg;

	assert_null(bev);
	assert_non_null(errmsg);
	t->stream_err = err;
}

static void
refused_run(void *arg, const struct conn_run_result *r)
{
	struct refused *t = arg;

	t->run_err = r->err;
	t->run_status = r->exit_status;
}

static void
never_called(void *arg, const struct conn_run_result *r)
{
	struct refused *t = arg;

	(void)r;
	t->cancelled_called = 1;
}

static void
test_refused(void **state)
{
	struct refused t;
	struct conn_params p;
	struct conn_req *r;
	int err;

	(void)state;
	memset(&t, 0, sizeof(t));
	t.base = event_base_new();
	base_params(&p);
	p.max_attempts = 2;	/* one retry: a 1 s pause */
	t.c = conn_new(t.base, &p, refused_state, &t, &err);
	assert_non_null(t.c);
	assert_non_null(conn_open_stream(t.c, "/var/run/docker.sock",
	    refused_stream, &t));
	assert_non_null(conn_run(t.c, "true", "x", 1, 0, refused_run, &t));
	r = conn_run(t.c, "true", NULL, 0, 0, never_called, &t);
	assert_non_null(r);
	conn_req_cancel(r);
	event_base_dispatch(t.base);
	assert_int_equal(t.downs, 1);
	assert_int_equal(t.connecting, 1);
	assert_null(t.c);
	/* The requests failed before the state callback freed the conn. */
	assert_int_equal(t.stream_err, FL_ERR_CLOSED);
	assert_int_equal(t.run_err, FL_ERR_CLOSED);
	assert_int_equal(t.run_status, -1);
	assert_false(t.cancelled_called);
	assert_non_null(strstr(t.msg, "after 2 attempts"));
	assert_non_null(strstr(t.msg, "127.0.0.1:1"));
	event_base_free(t.base);
}

/* Requests on a down conn fail from the loop, never inside the call. */
struct downreq {
	struct conn *c;
	int state_calls;
	int run_calls;
	int in_call;
};

static void
downreq_run(void *arg, const struct conn_run_result *r)
{
	struct downreq *t = arg;

	assert_false(t->in_call);
	assert_int_equal(r->err, FL_ERR_CLOSED);
	t->run_calls++;
}

static void
downreq_state(void *arg, enum conn_state st, int err, const char *msg)
{
	struct downreq *t = arg;

	(void)err;
	(void)msg;
	t->state_calls++;
	if (st != CONN_DOWN)
		return;
	t->in_call = 1;
	assert_non_null(conn_run(t->c, "true", NULL, 0, 0, downreq_run, t));
	t->in_call = 0;
}

static void
test_request_when_down(void **state)
{
	struct event_base *base = event_base_new();
	struct conn_params p;
	struct downreq t;

	(void)state;
	memset(&t, 0, sizeof(t));
	base_params(&p);
	p.max_attempts = 1;
	t.c = conn_new(base, &p, downreq_state, &t, NULL);
	assert_non_null(t.c);
	event_base_dispatch(base);
	assert_int_equal(t.state_calls, 1);
	assert_int_equal(t.run_calls, 1);
	assert_int_equal(conn_state(t.c), CONN_DOWN);
	assert_int_equal(conn_reconnect(t.c), 0);
	assert_int_equal(conn_state(t.c), CONN_CONNECTING);
	assert_int_equal(conn_reconnect(t.c), FL_ERR_INVAL);
	event_base_dispatch(base);
	assert_int_equal(t.state_calls, 2);
	conn_free(t.c);
	event_base_free(base);
}

/* Expired credentials: no attempt is made. */
static void
expired_state(void *arg, enum conn_state st, int err, const char *msg)
{
	int *calls = arg;

	assert_int_equal(st, CONN_DOWN);
	assert_int_equal(err, FL_ERR_TIMEOUT);
	assert_non_null(strstr(msg, "expired"));
	(*calls)++;
}

static void
test_expired(void **state)
{
	struct event_base *base = event_base_new();
	struct conn_params p;
	struct conn_credentials cr;
	struct conn *c;
	int calls = 0;

	(void)state;
	base_params(&p);
	p.cred.expires_ns = 1;	/* 1970 */
	c = conn_new(base, &p, expired_state, &calls, NULL);
	assert_non_null(c);
	event_base_dispatch(base);
	assert_int_equal(calls, 1);
	assert_int_equal(conn_failure(c), CONN_FAIL_FATAL);
	memset(&cr, 0, sizeof(cr));
	assert_int_equal(conn_set_credentials(c, &cr), FL_ERR_INVAL);
	cr.username = "root";
	cr.password = "secret-password";
	assert_int_equal(conn_set_credentials(c, &cr), 0);
	conn_free(c);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_addr_good),
		cmocka_unit_test(test_parse_addr_default_port),
		cmocka_unit_test(test_parse_addr_bad),
		cmocka_unit_test(test_pick_addr),
		cmocka_unit_test(test_streamlocal_msg),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_should_retry),
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_docker_socket_path),
		cmocka_unit_test(test_dial_stdio_command),
		cmocka_unit_test(test_read_key_file),
		cmocka_unit_test(test_new_invalid),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_request_when_down),
		cmocka_unit_test(test_expired),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

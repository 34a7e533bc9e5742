/*
 * executor: the pure helpers (short token, unique name, MD5, image name,
 * RAM units) and the state machine's edges that need no engine: an
 * unreachable Docker socket (runner_system_failure, the trace's header and
 * error line, done once), abort and cancel before anything ran, a job
 * without an image, a refused image (allowed_images), and exec_free before
 * the loop ran (no callback).  The real runs are in
 * tests/integration/executor.sh.
 */
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

#include "config.h"
#include "docker.h"
#include "err.h"
#include "executor.h"
#include "gitlab.h"
#include "toml.h"
#include "xmalloc.h"

static void
test_short_token(void **state)
{
	char out[16];

	(void)state;
	exec_short_token("glrt-t1_abcdefghijklmn", out, sizeof(out));
	assert_string_equal(out, "abcdefghi");
	exec_short_token("glrt-abcdefghijklmn", out, sizeof(out));
	assert_string_equal(out, "abcdefghi");
	exec_short_token("glrtr-xyz", out, sizeof(out));
	assert_string_equal(out, "xyz");
	exec_short_token("0123456789abcdef", out, sizeof(out));
	assert_string_equal(out, "012345678");
	exec_short_token("t12_abcdefghijk", out, sizeof(out));
	assert_string_equal(out, "abcdefghi");
	exec_short_token("tx_abcdefghijk", out, sizeof(out));
	assert_string_equal(out, "tx_abcdef");
	exec_short_token(NULL, out, sizeof(out));
	assert_string_equal(out, "");
	exec_short_token("glrt-abcdefghijk", out, 4);
	assert_string_equal(out, "abc");
}

static void
test_unique_md5(void **state)
{
	char md5[33], *u, *u2;

	(void)state;
	exec_md5_hex("/cache", md5);
	/* md5("/cache") */
	assert_string_equal(md5, "3c3f060a0374fc8bc39395164f415a70");
	exec_md5_hex("", md5);
	assert_string_equal(md5, "d41d8cd98f00b204e9800998ecf8427e");
	u = exec_unique_name("tok", "s_0123456789ab", 42, 0);
	assert_int_equal(strlen(u), strlen("runner-") + 16);
	assert_memory_equal(u, "runner-", 7);
	u2 = exec_unique_name("tok", "s_0123456789ab", 42, 1);
	assert_string_not_equal(u, u2);
	free(u2);
	u2 = exec_unique_name("tok", "s_0123456789ab", 42, 0);
	assert_string_equal(u, u2);
	free(u);
	free(u2);
}

static void
test_image_name(void **state)
{
	static const char *const c[][2] = {
		{ "alpine", "alpine" }, { "alpine:3.19", "alpine" },
		{ "registry:5000/a/b:1", "registry:5000/a/b" },
		{ "registry:5000/a/b", "registry:5000/a/b" },
		{ "a/b@sha256:abcd", "a/b" },
		{ "a/b:1@sha256:abcd", "a/b" },
	};
	size_t i;
	char *s;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		s = exec_image_name_only(c[i][0]);
		assert_string_equal(s, c[i][1]);
		free(s);
	}
}

static void
test_ram(void **state)
{
	(void)state;
	assert_int_equal(exec_parse_ram("100"), 100);
	assert_int_equal(exec_parse_ram("128m"), 128LL * 1024 * 1024);
	assert_int_equal(exec_parse_ram("1g"), 1024LL * 1024 * 1024);
	assert_int_equal(exec_parse_ram("1.5k"), 1536);
	assert_int_equal(exec_parse_ram("2MB"), 2LL * 1024 * 1024);
	assert_int_equal(exec_parse_ram(""), -1);
	assert_int_equal(exec_parse_ram(NULL), -1);
	assert_int_equal(exec_parse_ram("12x"), -1);
	assert_int_equal(exec_parse_ram("-1"), -1);
}

/* [runners.docker.ulimit] as docker's Ulimits. */
static void
test_ulimits(void **state)
{
	static const char good[] = "nofile = \"1024:2048\"\nrtprio = \"99\"\n";
	static const char *const bad[] = {
		"nofiles = \"1\"\n",		/* no such limit */
		"nofile = \"2048:1024\"\n",	/* soft above hard */
		"nofile = \"x\"\n",
		"nofile = \"1:\"\n",
		"nofile = 5\n",		/* not a string */
	};
	struct toml_table *t;
	json_t *a;
	char err[256], *dump;

	(void)state;
	t = toml_parse(good, strlen(good), NULL);
	assert_non_null(t);
	a = exec_ulimits_json(t, err, sizeof(err));
	assert_non_null(a);
	dump = json_dumps(a, JSON_COMPACT);
	assert_string_equal(dump, "[{\"Name\":\"nofile\",\"Soft\":1024,"
	    "\"Hard\":2048},{\"Name\":\"rtprio\",\"Soft\":99,\"Hard\":99}]");
	free(dump);
	json_decref(a);
	toml_free(t);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		t = toml_parse(bad[i], strlen(bad[i]), NULL);
		assert_non_null(t);
		err[0] = '\0';
		assert_null(exec_ulimits_json(t, err, sizeof(err)));
		assert_non_null(strstr(err, "ulimit: "));
		toml_free(t);
	}
}

/* [runners.docker] gpus as the docker CLI reads --gpus. */
static void
test_gpus(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "all", "{\"Driver\":\"\",\"Count\":-1,"
		  "\"Capabilities\":[[\"gpu\"]]}" },
		{ "2", "{\"Driver\":\"\",\"Count\":2,"
		  "\"Capabilities\":[[\"gpu\"]]}" },
		{ "device=0,2", "{\"Driver\":\"\",\"Count\":0,"
		  "\"DeviceIDs\":[\"0\",\"2\"],\"Capabilities\":[[\"gpu\"]]}" },
		{ "count=1,driver=nvidia,capabilities=compute",
		  "{\"Driver\":\"nvidia\",\"Count\":1,"
		  "\"Capabilities\":[[\"compute\"]]}" },
	};
	static const char *const bad[] = { "", "0", "some", "all,2",
	    "device=", "driver=nvidia" };
	char err[256], *dump;
	json_t *o;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		o = exec_gpus_json(cases[i].in, err, sizeof(err));
		assert_non_null(o);
		dump = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		assert_string_equal(dump, cases[i].out);
		free(dump);
		json_decref(o);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_null(exec_gpus_json(bad[i], err, sizeof(err)));
		assert_non_null(strstr(err, "gpus: "));
	}
}

/* security_opt: a seccomp profile file is inlined, others pass. */
static void
test_security_opts(void **state)
{
	char path[] = "/tmp/test_executor_seccomp.XXXXXX", *dump, err[256];
	char bad[] = "/tmp/test_executor_seccomp_bad.XXXXXX";
	const char *opts[4];
	json_t *a;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{ \"defaultAction\": \"SCMP_ACT_ALLOW\",\n"
	    "  \"syscalls\": [] }\n", 56), 56);
	close(fd);
	fd = mkstemp(bad);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{ nope", 6), 6);
	close(fd);

	opts[0] = "no-new-privileges";
	opts[1] = NULL;
	{
		char *o = xasprintf("seccomp=%s", path);

		opts[1] = o;
		opts[2] = "seccomp=unconfined";
		a = exec_security_opts(opts, 3, err, sizeof(err));
		assert_non_null(a);
		dump = json_dumps(a, JSON_COMPACT);
		assert_string_equal(dump, "[\"no-new-privileges\",\"seccomp="
		    "{\\\"defaultAction\\\":\\\"SCMP_ACT_ALLOW\\\",\\\"syscalls\\\":[]}\","
		    "\"seccomp=unconfined\"]");
		free(dump);
		json_decref(a);
		free(o);
	}
	{
		char *o = xasprintf("seccomp:%s", bad);

		opts[0] = o;
		assert_null(exec_security_opts(opts, 1, err, sizeof(err)));
		assert_non_null(strstr(err, "security_opt: seccomp profile"));
		free(o);
	}
	opts[0] = "seccomp=/nonexistent/profile.json";
	assert_null(exec_security_opts(opts, 1, err, sizeof(err)));
	unlink(path);
	unlink(bad);
}

/* ---- the state machine without an engine ---- */

struct run {
	struct event_base *base;
	struct docker *dk;
	struct config *cfg;
	struct gitlab_job *job;
	struct sbuf trace;
	int done;
	struct exec_result res;
	char reason[64];
};

static const char cfg_text[] =
    "[[runners]]\n"
    "  name = \"unit\"\n"
    "  url = \"http://127.0.0.1:1/\"\n"
    "  token = \"glrt-t1_abcdefghijklmnop\"\n"
    "  executor = \"docker-autoscaler\"\n"
    "  [runners.docker]\n"
    "    image = \"busybox\"\n"
    "    allowed_images = [\"busybox\", \"alpine:*\"]\n"
    "  [runners.autoscaler]\n"
    "    plugin = \"x\"\n";

static void
out_cb(void *arg, const void *data, size_t len)
{
	struct run *r = arg;

	sbuf_add(&r->trace, data, len);
}

static void
done_cb(void *arg, const struct exec_result *res)
{
	struct run *r = arg;

	r->done++;
	r->res = *res;
	snprintf(r->reason, sizeof(r->reason), "%s",
	    res->failure_reason != NULL ? res->failure_reason : "");
	event_base_loopexit(r->base, NULL);
}

static void
run_setup(struct run *r, const char *image)
{
	struct config_diags d;
	char err[256], *js;

	memset(r, 0, sizeof(*r));
	sbuf_init(&r->trace);
	memset(&d, 0, sizeof(d));
	assert_int_equal(config_load_buf("unit.toml", cfg_text,
	    strlen(cfg_text), &r->cfg, &d), 0);
	config_diags_release(&d);
	js = xasprintf("{\"id\": 7, \"token\": \"glcbt-secrettoken\","
	    "\"image\": {\"name\": \"%s\"},"
	    "\"job_info\": {\"project_id\": 3, \"project_full_path\": \"g/p\"},"
	    "\"git_info\": {\"repo_url\": \"http://x/g/p.git\"},"
	    "\"variables\": [{\"key\": \"S\", \"value\": \"hush-hush\","
	    "\"masked\": true}],"
	    "\"steps\": [{\"name\": \"script\", \"script\": [\"true\"]}]}",
	    image);
	assert_int_equal(gitlab_job_parse(js, strlen(js), &r->job, err,
	    sizeof(err)), 0);
	free(js);
	r->base = event_base_new();
	r->dk = docker_new(r->base, docker_dial_unix,
	    (void *)"/nonexistent/flotilla-test/docker.sock");
	docker_set_timeout(r->dk, 2000);
}

static struct exec *
run_start(struct run *r)
{
	struct exec_params p;

	memset(&p, 0, sizeof(p));
	p.base = r->base;
	p.docker = r->dk;
	p.rc = &r->cfg->runners[0];
	p.job = r->job;
	p.runner_url = "http://127.0.0.1:1/";
	p.short_token = "abcdefghi";
	p.system_id = "s_0123456789ab";
	p.hostname = "unit-host";
	return exec_start(&p, out_cb, done_cb, r);
}

static void
run_teardown(struct run *r, struct exec *e)
{
	exec_free(e);
	docker_free(r->dk);
	event_base_free(r->base);
	gitlab_job_free(r->job);
	config_free(r->cfg);
	sbuf_release(&r->trace);
}

static int
trace_has(struct run *r, const char *s)
{
	return r->trace.buf != NULL && strstr(r->trace.buf, s) != NULL;
}

static void
test_no_engine(void **state)
{
	struct run r;
	struct exec *e;

	(void)state;
	run_setup(&r, "busybox");
	e = run_start(&r);
	assert_int_equal(r.done, 0);		/* never from inside start */
	event_base_dispatch(r.base);
	assert_int_equal(r.done, 1);
	assert_int_equal(r.res.state, GITLAB_FAILED_STATE);
	assert_string_equal(r.reason, "runner_system_failure");
	assert_true(trace_has(&r, "Running with flotilla "));
	assert_true(trace_has(&r, "  on unit abcdefghi, system ID: "
	    "s_0123456789ab"));
	/* features.trace_sections is false: headers, no markers. */
	assert_false(trace_has(&r, "section_start:"));
	assert_true(trace_has(&r, "Preparing the \"docker-autoscaler\" "
	    "executor"));
	assert_true(trace_has(&r, "Cannot connect to the Docker daemon"));
	assert_true(trace_has(&r, "ERROR: Job failed (system failure)"));
	assert_false(trace_has(&r, "glcbt-secrettoken"));
	run_teardown(&r, e);
}

static void
test_refused_image(void **state)
{
	struct run r;
	struct exec *e;

	(void)state;
	run_setup(&r, "evil/image:1");
	e = run_start(&r);
	event_base_dispatch(r.base);
	/* The engine is unreachable, so the ping fails first: the image is
	 * checked once the engine answers.  Here: a system failure. */
	assert_int_equal(r.done, 1);
	assert_string_equal(r.reason, "runner_system_failure");
	run_teardown(&r, e);
}

static void
test_abort_before_begin(void **state)
{
	struct run r;
	struct exec *e;

	(void)state;
	run_setup(&r, "busybox");
	e = run_start(&r);
	exec_abort(e, "runner_interrupted");
	assert_int_equal(r.done, 0);
	event_base_dispatch(r.base);
	assert_int_equal(r.done, 1);
	assert_string_equal(r.reason, "runner_interrupted");
	assert_true(trace_has(&r, "ERROR: Job failed: aborted: "
	    "runner_interrupted"));
	exec_abort(e, "x");			/* ignored once done */
	exec_cancel(e);
	run_teardown(&r, e);
}

static void
cancel_soon(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	exec_cancel(arg);
}

static void
test_cancel_while_preparing(void **state)
{
	struct run r;
	struct exec *e;
	struct event *ev;

	(void)state;
	run_setup(&r, "busybox");
	e = run_start(&r);
	/* begin_cb runs first (a zero timer added before this one). */
	ev = evtimer_new(r.base, cancel_soon, e);
	{
		struct timeval tv = { 0, 0 };

		evtimer_add(ev, &tv);
	}
	event_base_dispatch(r.base);
	assert_int_equal(r.done, 1);
	/* Either the ping failed first or the cancel won: both end once. */
	assert_true(strcmp(r.reason, "job_canceled") == 0 ||
	    strcmp(r.reason, "runner_system_failure") == 0);
	event_free(ev);
	run_teardown(&r, e);
}

static void
test_free_before_loop(void **state)
{
	struct run r;
	struct exec *e;

	(void)state;
	run_setup(&r, "busybox");
	e = run_start(&r);
	exec_free(e);
	event_base_loop(r.base, EVLOOP_NONBLOCK);
	assert_int_equal(r.done, 0);
	assert_int_equal(r.trace.len, 0);
	run_teardown(&r, NULL);
	exec_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_short_token),
		cmocka_unit_test(test_unique_md5),
		cmocka_unit_test(test_image_name),
		cmocka_unit_test(test_ram),
		cmocka_unit_test(test_ulimits),
		cmocka_unit_test(test_gpus),
		cmocka_unit_test(test_security_opts),
		cmocka_unit_test(test_no_engine),
		cmocka_unit_test(test_refused_image),
		cmocka_unit_test(test_abort_before_begin),
		cmocka_unit_test(test_cancel_while_preparing),
		cmocka_unit_test(test_free_before_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

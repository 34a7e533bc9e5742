/*
 * metrics: the exposition text byte for byte (ordering, label escaping,
 * UTF-8 repair, HELP escaping, number formatting, histogram buckets with
 * +Inf/_sum/_count), the registry's refusals (bad names, clashing
 * re-registrations, negative counter increments), collectors merging into
 * one family, the GitLab Runner families and the fleeting_* renderer, and
 * the /proc/self/stat parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "err.h"
#include "metrics.h"
#include "xmalloc.h"

#define L(...)	((const char *const[]){ __VA_ARGS__ })

/* Render m and compare with want, printing both on a mismatch. */
static void
expect_render(struct metrics *m, const char *want, int want_rc)
{
	struct sbuf out;
	int rc;

	sbuf_init(&out);
	rc = metrics_render(m, &out);
	if (strcmp(out.buf, want) != 0)
		print_error("--- got\n%s--- want\n%s---\n", out.buf, want);
	assert_string_equal(out.buf, want);
	assert_int_equal(rc, want_rc);
	sbuf_release(&out);
}

static int
contains(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

static void
test_counter_gauge_order(void **state)
{
	struct metrics *m = metrics_new();
	struct metrics_family *c, *g, *z;

	(void)state;
	c = metrics_counter(m, "b_total", "B things.", L("runner", "code"), 2);
	g = metrics_gauge(m, "a_gauge", "A gauge.", L("x"), 1);
	z = metrics_gauge(m, "c_plain", "No labels.", NULL, 0);
	assert_non_null(c);
	assert_non_null(g);
	assert_non_null(z);
	/* Inserted out of order: output is sorted by label values. */
	assert_int_equal(metrics_add(c, L("r2", "200"), 3), 0);
	assert_int_equal(metrics_inc(c, L("r1", "500")), 0);
	assert_int_equal(metrics_inc(c, L("r1", "200")), 0);
	assert_int_equal(metrics_inc(c, L("r1", "200")), 0);
	assert_int_equal(metrics_set(g, L("y"), -2.5), 0);
	assert_int_equal(metrics_set(g, L(NULL), 7), 0);	/* NULL is "" */
	assert_int_equal(metrics_set(z, NULL, 42), 0);
	/* A family without series is not written. */
	assert_non_null(metrics_gauge(m, "d_empty", "Nothing.", NULL, 0));
	expect_render(m,
	    "# HELP a_gauge A gauge.\n"
	    "# TYPE a_gauge gauge\n"
	    "a_gauge{x=\"\"} 7\n"
	    "a_gauge{x=\"y\"} -2.5\n"
	    "# HELP b_total B things.\n"
	    "# TYPE b_total counter\n"
	    "b_total{runner=\"r1\",code=\"200\"} 2\n"
	    "b_total{runner=\"r1\",code=\"500\"} 1\n"
	    "b_total{runner=\"r2\",code=\"200\"} 3\n"
	    "# HELP c_plain No labels.\n"
	    "# TYPE c_plain gauge\n"
	    "c_plain 42\n", 0);
	assert_int_equal(metrics_family_size(c), 3);
	metrics_free(m);
}

static void
test_escaping(void **state)
{
	struct metrics *m = metrics_new();
	struct metrics_family *g;

	(void)state;
	g = metrics_gauge(m, "esc", "Help with \\ backslash,\nnewline and \"quotes\".",
	    L("v"), 1);
	metrics_set(g, L("a\\b\"c\nd"), 1);
	metrics_set(g, L("caf\xc3\xa9 \xe2\x82\xac"), 2);	/* valid UTF-8 */
	metrics_set(g, L("bad\xff\xc3(x\xed\xa0\x80"), 3);	/* invalid */
	expect_render(m,
	    "# HELP esc Help with \\\\ backslash,\\nnewline and \"quotes\".\n"
	    "# TYPE esc gauge\n"
	    "esc{v=\"a\\\\b\\\"c\\nd\"} 1\n"
	    "esc{v=\"bad\xef\xbf\xbd\xef\xbf\xbd(x\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"} 3\n"
	    "esc{v=\"caf\xc3\xa9 \xe2\x82\xac\"} 2\n", 0);
	metrics_free(m);
}

static void
test_values(void **state)
{
	static const struct { double v; const char *s; } cases[] = {
		{ 0, "0" }, { -0.0, "0" }, { 1, "1" }, { -3, "-3" },
		{ 0.1, "0.1" }, { 2.5, "2.5" }, { 1.0 / 3, "0.3333333333333333" },
		{ 9007199254740992.0, "9007199254740992" },
		{ 123456789012.0, "123456789012" }, { 1e15, "1e+15" },
		{ 1e-7, "1e-07" }, { 18446744073709551615.0,
		    "1.8446744073709552e+19" },
	};
	struct sbuf out;

	(void)state;
	sbuf_init(&out);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sbuf_reset(&out);
		metrics_format_value(&out, cases[i].v);
		assert_string_equal(out.buf, cases[i].s);
		/* Round trip. */
		assert_true(strtod(out.buf, NULL) == cases[i].v);
	}
	sbuf_reset(&out);
	metrics_format_value(&out, NAN);
	assert_string_equal(out.buf, "NaN");
	sbuf_reset(&out);
	metrics_format_value(&out, INFINITY);
	assert_string_equal(out.buf, "+Inf");
	sbuf_reset(&out);
	metrics_format_value(&out, -INFINITY);
	assert_string_equal(out.buf, "-Inf");
	sbuf_release(&out);
}

static void
test_histogram(void **state)
{
	static const double b[] = { 0.1, 1, 10 };
	struct metrics *m = metrics_new();
	struct metrics_family *h;
	struct metrics_series *s;

	(void)state;
	h = metrics_histogram(m, "lat_seconds", "Latency.", L("ep"), 1, b, 3);
	assert_non_null(h);
	s = metrics_series(h, L("x"));
	assert_int_equal(metrics_series_observe(s, 0.05), 0);
	assert_int_equal(metrics_series_observe(s, 0.1), 0);	/* le is <= */
	assert_int_equal(metrics_series_observe(s, 5), 0);
	assert_int_equal(metrics_series_observe(s, 100), 0);
	assert_int_equal(metrics_observe(h, L("a"), 1), 0);
	assert_true(metrics_series_value(s) == 4);
	/* Counter operations on a histogram are refused. */
	assert_int_equal(metrics_add(h, L("x"), 1), FL_ERR_INVAL);
	assert_int_equal(metrics_set(h, L("x"), 1), FL_ERR_INVAL);
	expect_render(m,
	    "# HELP lat_seconds Latency.\n"
	    "# TYPE lat_seconds histogram\n"
	    "lat_seconds_bucket{ep=\"a\",le=\"0.1\"} 0\n"
	    "lat_seconds_bucket{ep=\"a\",le=\"1\"} 1\n"
	    "lat_seconds_bucket{ep=\"a\",le=\"10\"} 1\n"
	    "lat_seconds_bucket{ep=\"a\",le=\"+Inf\"} 1\n"
	    "lat_seconds_sum{ep=\"a\"} 1\n"
	    "lat_seconds_count{ep=\"a\"} 1\n"
	    "lat_seconds_bucket{ep=\"x\",le=\"0.1\"} 2\n"
	    "lat_seconds_bucket{ep=\"x\",le=\"1\"} 2\n"
	    "lat_seconds_bucket{ep=\"x\",le=\"10\"} 3\n"
	    "lat_seconds_bucket{ep=\"x\",le=\"+Inf\"} 4\n"
	    "lat_seconds_sum{ep=\"x\"} 105.15\n"
	    "lat_seconds_count{ep=\"x\"} 4\n", 0);
	metrics_free(m);
}

static void
test_histogram_nolabels_and_load(void **state)
{
	static const double b[] = { 1 };
	static const double own[] = { 5, 50 };
	static const double bad[] = { 50, 5 };
	static const uint64_t counts[] = { 2, 0, 1 };
	struct metrics *m = metrics_new();
	struct metrics_family *h;

	(void)state;
	h = metrics_histogram(m, "h", "H.", NULL, 0, b, 1);
	metrics_observe(h, NULL, 0.5);
	expect_render(m,
	    "# HELP h H.\n# TYPE h histogram\n"
	    "h_bucket{le=\"1\"} 1\n"
	    "h_bucket{le=\"+Inf\"} 1\n"
	    "h_sum 0.5\n"
	    "h_count 1\n", 0);
	/* Loaded counts bring their own bounds. */
	assert_int_equal(metrics_histogram_load(h, NULL, own, 2, counts, 70), 0);
	expect_render(m,
	    "# HELP h H.\n# TYPE h histogram\n"
	    "h_bucket{le=\"5\"} 2\n"
	    "h_bucket{le=\"50\"} 2\n"
	    "h_bucket{le=\"+Inf\"} 3\n"
	    "h_sum 70\n"
	    "h_count 3\n", 0);
	assert_int_equal(metrics_histogram_load(h, NULL, bad, 2, counts, 0),
	    FL_ERR_INVAL);
	metrics_free(m);
}

static void
test_refusals(void **state)
{
	static const double b[] = { 1, 2 };
	static const double bad[] = { 2, 1 };
	struct metrics *m = metrics_new();
	struct metrics_family *c;

	(void)state;
	assert_null(metrics_counter(m, "1abc", "", NULL, 0));
	assert_null(metrics_counter(m, "a-b", "", NULL, 0));
	assert_null(metrics_counter(m, "", "", NULL, 0));
	assert_null(metrics_counter(m, "ok", "", L("__reserved"), 1));
	assert_null(metrics_counter(m, "ok", "", L("a:b"), 1));
	assert_null(metrics_counter(m, "ok", "", L("x", "x"), 2));
	assert_null(metrics_histogram(m, "hh", "", L("le"), 1, b, 2));
	assert_null(metrics_histogram(m, "hh", "", NULL, 0, bad, 2));
	assert_non_null(metrics_counter(m, "ns:sub_total", "", L("_x1"), 1));

	c = metrics_counter(m, "c_total", "C.", L("a"), 1);
	assert_non_null(c);
	/* The same definition answers the same family; others clash. */
	assert_ptr_equal(metrics_counter(m, "c_total", "other help", L("a"), 1), c);
	assert_null(metrics_gauge(m, "c_total", "C.", L("a"), 1));
	assert_null(metrics_counter(m, "c_total", "C.", L("b"), 1));
	assert_null(metrics_counter(m, "c_total", "C.", NULL, 0));

	assert_int_equal(metrics_add(c, L("x"), -1), FL_ERR_INVAL);
	assert_int_equal(metrics_add(c, L("x"), NAN), FL_ERR_INVAL);
	assert_int_equal(metrics_set(c, L("x"), 5), 0);	/* mirrored count */
	assert_true(metrics_series_value(metrics_series(c, L("x"))) == 5);
	/* NULL families are ignored. */
	assert_int_equal(metrics_inc(NULL, L("x")), FL_ERR_INVAL);
	assert_null(metrics_series(NULL, NULL));
	metrics_reset(NULL);
	metrics_free(NULL);
	metrics_free(m);
}

static void
test_remove_reset(void **state)
{
	struct metrics *m = metrics_new();
	struct metrics_family *g = metrics_gauge(m, "g", "G.", L("k"), 1);

	(void)state;
	metrics_set(g, L("a"), 1);
	metrics_set(g, L("b"), 2);
	metrics_set(g, L("c"), 3);
	assert_int_equal(metrics_remove(g, L("b")), 0);
	assert_int_equal(metrics_remove(g, L("b")), FL_ERR_NOTFOUND);
	expect_render(m, "# HELP g G.\n# TYPE g gauge\n"
	    "g{k=\"a\"} 1\ng{k=\"c\"} 3\n", 0);
	metrics_reset(g);
	assert_int_equal(metrics_family_size(g), 0);
	expect_render(m, "", 0);
	metrics_free(m);
}

/* ---- collectors ---- */

static void
collect_a(struct metrics *scratch, void *arg)
{
	const char *who = arg;

	metrics_set(metrics_gauge(scratch, "shared", "Shared.", L("who"), 1),
	    &who, 1);
}

static void
collect_clash(struct metrics *scratch, void *arg)
{
	(void)arg;
	metrics_set(metrics_gauge(scratch, "main_one", "Clash.", NULL, 0),
	    NULL, 9);
}

static void
test_collectors(void **state)
{
	struct metrics *m = metrics_new();

	(void)state;
	metrics_set(metrics_gauge(m, "main_one", "Main.", NULL, 0), NULL, 1);
	metrics_add_collector(m, collect_a, "two");
	metrics_add_collector(m, collect_a, "one");
	/* Two collectors, one family: a single HELP/TYPE block. */
	expect_render(m,
	    "# HELP main_one Main.\n# TYPE main_one gauge\nmain_one 1\n"
	    "# HELP shared Shared.\n# TYPE shared gauge\n"
	    "shared{who=\"one\"} 1\nshared{who=\"two\"} 1\n", 0);
	/* A collector may not shadow a family of the main registry. */
	metrics_add_collector(m, collect_clash, NULL);
	expect_render(m,
	    "# HELP main_one Main.\n# TYPE main_one gauge\nmain_one 1\n"
	    "# HELP shared Shared.\n# TYPE shared gauge\n"
	    "shared{who=\"one\"} 1\nshared{who=\"two\"} 1\n", FL_ERR_EXISTS);
	metrics_remove_collector(m, collect_clash, NULL);
	metrics_remove_collector(m, collect_a, "two");
	expect_render(m,
	    "# HELP main_one Main.\n# TYPE main_one gauge\nmain_one 1\n"
	    "# HELP shared Shared.\n# TYPE shared gauge\n"
	    "shared{who=\"one\"} 1\n", 0);
	metrics_free(m);
}

/* ---- GitLab Runner families ---- */

static void
test_runner_families(void **state)
{
	struct metrics *m = metrics_new();
	struct metrics_runner rm;
	struct metrics_version v = { "flotilla", "0.1.0", "abc123", "main",
	    "gcc 12", "2026-01-01T00:00:00Z", "linux", "amd64" };
	struct metrics_runner_id id = { "t_abc123", "fleet-1", "s_0123456789ab" };
	struct metrics_runner_id id2 = { "t_other", "fleet-2", "s_x" };
	struct sbuf out;

	(void)state;
	assert_int_equal(metrics_runner_init(&rm, m, &v), 0);
	metrics_runner_add(&rm, &id, 10, 2);
	metrics_runner_add(&rm, &id2, 0, 1);
	metrics_set(rm.concurrent, NULL, 4);
	metrics_inc(rm.jobs_total, L(id.runner, id.runner_name, id.system_id));
	metrics_inc(rm.failed_jobs_total, L(id.runner, id.runner_name,
	    "script_failure", "traditional"));
	metrics_observe(rm.job_duration_seconds, L(id.runner, id.runner_name,
	    id.system_id, "traditional"), 42);
	metrics_inc(rm.api_request_statuses_total, L(id.runner, id.system_id,
	    "request_job", "204", "post"));
	metrics_inc(rm.errors_total, L(metrics_error_level("warn")));
	metrics_runner_set_state(&rm, "running");

	sbuf_init(&out);
	assert_int_equal(metrics_render(m, &out), 0);
	assert_true(contains(out.buf, "# TYPE gitlab_runner_concurrent gauge\n"
	    "gitlab_runner_concurrent 4\n"));
	assert_true(contains(out.buf, "gitlab_runner_jobs{runner=\"t_abc123\","
	    "runner_name=\"fleet-1\",system_id=\"s_0123456789ab\",state=\"idle\","
	    "stage=\"idle\",executor_stage=\"idle\"} 0\n"));
	assert_true(contains(out.buf, "gitlab_runner_limit{runner=\"t_abc123\","
	    "runner_name=\"fleet-1\",system_id=\"s_0123456789ab\"} 10\n"));
	assert_true(contains(out.buf, "gitlab_runner_request_concurrency_hard_limit"
	    "{runner=\"t_abc123\",system_id=\"s_0123456789ab\"} 2\n"));
	assert_true(contains(out.buf, "gitlab_runner_request_concurrency_exceeded_total"
	    "{runner=\"t_other\",system_id=\"s_x\"} 0\n"));
	assert_true(contains(out.buf, "gitlab_runner_failed_jobs_total{runner="
	    "\"t_abc123\",runner_name=\"fleet-1\",failure_reason=\"script_failure\","
	    "mode=\"traditional\"} 1\n"));
	assert_true(contains(out.buf, "gitlab_runner_job_duration_seconds_bucket{"
	    "runner=\"t_abc123\",runner_name=\"fleet-1\",system_id=\"s_0123456789ab\","
	    "mode=\"traditional\",le=\"60\"} 1\n"));
	assert_true(contains(out.buf, "gitlab_runner_job_duration_seconds_bucket{"
	    "runner=\"t_abc123\",runner_name=\"fleet-1\",system_id=\"s_0123456789ab\","
	    "mode=\"traditional\",le=\"36000\"} 1\n"));
	assert_true(contains(out.buf, "gitlab_runner_api_request_statuses_total{"
	    "runner=\"t_abc123\",system_id=\"s_0123456789ab\",endpoint=\"request_job\","
	    "status=\"204\",method=\"post\"} 1\n"));
	assert_true(contains(out.buf, "# TYPE gitlab_runner_errors_total counter\n"
	    "gitlab_runner_errors_total{level=\"error\"} 0\n"
	    "gitlab_runner_errors_total{level=\"fatal\"} 0\n"
	    "gitlab_runner_errors_total{level=\"panic\"} 0\n"
	    "gitlab_runner_errors_total{level=\"warning\"} 1\n"));
	assert_true(contains(out.buf, "gitlab_runner_version_info{name=\"flotilla\","
	    "version=\"0.1.0\",revision=\"abc123\",branch=\"main\",go_version="
	    "\"gcc 12\",built_at=\"2026-01-01T00:00:00Z\",os=\"linux\","
	    "architecture=\"amd64\"} 1\n"));
	assert_true(contains(out.buf, "# TYPE gitlab_runner_process_state_info gauge\n"
	    "gitlab_runner_process_state_info{state=\"running\"} 1\n# HELP"));
	/* Empty families are left out (no API duration observed). */
	assert_false(contains(out.buf, "gitlab_runner_api_request_duration_seconds"));

	/* A runner removed on reload takes its series along. */
	metrics_runner_remove(&rm, &id);
	sbuf_reset(&out);
	metrics_render(m, &out);
	assert_false(contains(out.buf, "t_abc123"));
	assert_true(contains(out.buf, "runner=\"t_other\""));
	sbuf_release(&out);

	/* Defining them twice in one registry is fine (same definitions). */
	assert_int_equal(metrics_runner_init(&rm, m, NULL), 0);
	metrics_free(m);

	m = metrics_new();
	metrics_counter(m, "gitlab_runner_jobs", "clash", NULL, 0);
	assert_int_equal(metrics_runner_init(&rm, m, NULL), FL_ERR_EXISTS);
	metrics_free(m);

	assert_string_equal(metrics_status_class(204), "2xx");
	assert_string_equal(metrics_status_class(599), "5xx");
	assert_string_equal(metrics_status_class(600), "unknown");
	assert_string_equal(metrics_status_class(-1), "unknown");
	assert_string_equal(metrics_error_level("panic"), "panic");
	assert_null(metrics_error_level("info"));
}

/* ---- fleeting_* ---- */

static void
test_fleet(void **state)
{
	double b1[] = { 1, 10 }, b2[] = { 5 };
	uint64_t c1[] = { 1, 2, 3 }, c2[] = { 4, 0 };
	struct scaler_metrics s1, s2;
	struct metrics_fleet fl[2];
	struct metrics *m = metrics_new();
	struct sbuf out;
	const char *p, *q;

	(void)state;
	memset(&s1, 0, sizeof(s1));
	memset(&s2, 0, sizeof(s2));
	s1.instances[SCALER_P_RUNNING] = 3;
	s1.instances[SCALER_P_COUNT] = 1;		/* requested */
	s1.max_instances = 4;
	s1.tasks[SCALER_TASK_ACQUIRED] = 5;
	s1.task_operations_total[SCALER_TOP_RESERVE_IOP_FAILURE] = 7;
	s1.scale_operations_up_total = 6;
	s1.removals_total[SCALER_REASON_MAX_USE_COUNT] = 2;
	s1.desired_instances = 4;
	s1.creation_time = (struct scaler_histogram){ b1, 2, c1, 33.5, 6 };
	s1.readiness_time = (struct scaler_histogram){ b1, 2, c1, 12, 6 };
	s2.max_instances = 9;
	s2.creation_time = (struct scaler_histogram){ b2, 1, c2, 8, 4 };
	fl[0] = (struct metrics_fleet){ &s1, { "t_a", "one", "s_1" } };
	fl[1] = (struct metrics_fleet){ &s2, { "t_b", "two", "s_2" } };

	/* Two calls (as two collectors would) merge into one family each. */
	metrics_fleet_collect(m, &fl[0], 1);
	metrics_fleet_collect(m, &fl[1], 1);
	sbuf_init(&out);
	assert_int_equal(metrics_render(m, &out), 0);
	assert_true(contains(out.buf, "# TYPE fleeting_provisioner_max_instances gauge\n"
	    "fleeting_provisioner_max_instances{runner=\"t_a\",runner_name=\"one\","
	    "system_id=\"s_1\"} 4\n"
	    "fleeting_provisioner_max_instances{runner=\"t_b\",runner_name=\"two\","
	    "system_id=\"s_2\"} 9\n"));
	assert_true(contains(out.buf, "fleeting_provisioner_instances{runner=\"t_a\","
	    "runner_name=\"one\",system_id=\"s_1\",state=\"requested\"} 1\n"));
	assert_true(contains(out.buf, "fleeting_provisioner_instances{runner=\"t_a\","
	    "runner_name=\"one\",system_id=\"s_1\",state=\"running\"} 3\n"));
	assert_true(contains(out.buf, "fleeting_taskscaler_tasks{runner=\"t_a\","
	    "runner_name=\"one\",system_id=\"s_1\",state=\"acquired\"} 5\n"));
	assert_true(contains(out.buf, "fleeting_taskscaler_task_operations_total{"
	    "runner=\"t_a\",runner_name=\"one\",system_id=\"s_1\",operation="
	    "\"reserve_iop_capacity_failure\"} 7\n"));
	assert_true(contains(out.buf, "fleeting_taskscaler_scale_operations_total{"
	    "runner=\"t_a\",runner_name=\"one\",system_id=\"s_1\",operation=\"up\"} 6\n"));
	assert_true(contains(out.buf, "fleeting_taskscaler_instance_removals_total{"
	    "runner=\"t_a\",runner_name=\"one\",system_id=\"s_1\",reason="
	    "\"max_use_count\"} 2\n"));
	assert_false(contains(out.buf, "reason=\"none\""));
	assert_true(contains(out.buf, "fleeting_taskscaler_desired_instances{"
	    "runner=\"t_a\",runner_name=\"one\",system_id=\"s_1\"} 4\n"));
	/* Each fleet's histogram keeps its own buckets. */
	assert_true(contains(out.buf,
	    "fleeting_provisioner_instance_creation_time_seconds_bucket{runner=\"t_a\","
	    "runner_name=\"one\",system_id=\"s_1\",le=\"1\"} 1\n"
	    "fleeting_provisioner_instance_creation_time_seconds_bucket{runner=\"t_a\","
	    "runner_name=\"one\",system_id=\"s_1\",le=\"10\"} 3\n"
	    "fleeting_provisioner_instance_creation_time_seconds_bucket{runner=\"t_a\","
	    "runner_name=\"one\",system_id=\"s_1\",le=\"+Inf\"} 6\n"
	    "fleeting_provisioner_instance_creation_time_seconds_sum{runner=\"t_a\","
	    "runner_name=\"one\",system_id=\"s_1\"} 33.5\n"
	    "fleeting_provisioner_instance_creation_time_seconds_count{runner=\"t_a\","
	    "runner_name=\"one\",system_id=\"s_1\"} 6\n"
	    "fleeting_provisioner_instance_creation_time_seconds_bucket{runner=\"t_b\","
	    "runner_name=\"two\",system_id=\"s_2\",le=\"5\"} 4\n"));
	assert_true(contains(out.buf,
	    "fleeting_taskscaler_task_instance_readiness_time_seconds_count{"
	    "runner=\"t_a\",runner_name=\"one\",system_id=\"s_1\"} 6\n"));
	/* One HELP per family although two fleets wrote it. */
	p = strstr(out.buf, "# HELP fleeting_taskscaler_tasks ");
	assert_non_null(p);
	q = strstr(p + 1, "# HELP fleeting_taskscaler_tasks ");
	assert_null(q);
	/* A histogram without counts (never initialised) is left out. */
	assert_false(contains(out.buf,
	    "fleeting_provisioner_instance_deletion_time_seconds_bucket"));
	sbuf_release(&out);
	metrics_free(m);
}

/* ---- process ---- */

static void
test_proc_stat(void **state)
{
	/* A command name with spaces and parentheses. */
	const char *stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 500 0 0 0 "
	    "150 50 0 0 20 0 3 0 1000 104857600 2560 18446744073709551615 "
	    "1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
	struct metrics_proc p;
	struct metrics *m = metrics_new();
	struct sbuf out;

	(void)state;
	assert_int_equal(metrics_parse_proc_stat(stat, 1700000000, 100, 4096, &p), 0);
	assert_true(p.cpu_seconds == 2.0);
	assert_true(p.start_time_seconds == 1700000010.0);
	assert_true(p.virtual_memory_bytes == 104857600.0);
	assert_true(p.resident_memory_bytes == 2560.0 * 4096);
	assert_int_equal(metrics_parse_proc_stat("4242 (x) S 1 2", 0, 100, 4096,
	    &p), FL_ERR_PARSE);
	assert_int_equal(metrics_parse_proc_stat("no paren", 0, 100, 4096, &p),
	    FL_ERR_PARSE);

	/* The live collector finds this process. */
	metrics_add_collector(m, metrics_process_collect, NULL);
	sbuf_init(&out);
	assert_int_equal(metrics_render(m, &out), 0);
	assert_true(contains(out.buf, "# TYPE process_cpu_seconds_total counter\n"));
	assert_true(contains(out.buf, "# TYPE process_resident_memory_bytes gauge\n"));
	assert_true(contains(out.buf, "# TYPE process_open_fds gauge\n"));
	assert_true(contains(out.buf, "# TYPE process_start_time_seconds gauge\n"));
	assert_true(contains(out.buf, "\nprocess_max_fds "));
	sbuf_release(&out);
	metrics_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter_gauge_order),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_histogram_nolabels_and_load),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_remove_reset),
		cmocka_unit_test(test_collectors),
		cmocka_unit_test(test_runner_families),
		cmocka_unit_test(test_fleet),
		cmocka_unit_test(test_proc_stat),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

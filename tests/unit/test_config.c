/* Unit tests of the config model: defaults, conversions, diagnostics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static struct config *
load(const char *text, struct config_diags *d)
{
	struct config *cfg = NULL;

	config_load_buf("t.toml", text, strlen(text), &cfg, d);
	return cfg;
}

static int
has_diag(const struct config_diags *d, const char *needle)
{
	for (size_t i = 0; i < d->n; i++)
		if (strstr(d->v[i].msg, needle) != NULL)
			return 1;
	return 0;
}

#define MINIMAL \
	"[[runners]]\n" \
	"url = \"https://gitlab.example.com\"\n" \
	"token = \"glrt-abcdefghijkl\"\n" \
	"executor = \"docker-autoscaler\"\n" \
	"[runners.autoscaler]\n" \
	"plugin = \"local\"\n"

static void
test_defaults(void **state)
{
	struct config_diags d;
	struct config *cfg = load(MINIMAL, &d);
	const struct config_runner *r;
	const struct config_autoscaler *as;

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(d.n, 0);
	assert_int_equal(cfg->concurrent, 1);
	assert_int_equal(cfg->check_interval, 3);
	assert_string_equal(cfg->log_level, "info");
	assert_string_equal(cfg->log_format, "runner");
	assert_int_equal(cfg->shutdown_timeout, 30);
	assert_int_equal(cfg->nrunners, 1);
	r = &cfg->runners[0];
	assert_int_equal(r->line, 1);
	assert_int_equal(r->request_concurrency, 1);
	assert_int_equal(r->output_limit, 4096);
	assert_string_equal(r->builds_dir, "/builds");
	assert_string_equal(r->shell, "bash");
	assert_int_equal(r->docker.pull_policy.n, 1);
	assert_string_equal(r->docker.pull_policy.v[0], "always");
	assert_int_equal(r->docker.wait_for_services_timeout, 30);
	as = &r->autoscaler;
	assert_int_equal(as->line, 5);
	assert_int_equal(as->capacity_per_instance, 1);
	assert_int_equal(as->max_use_count, 0);
	assert_int_equal(as->instance_acquire_timeout_ns, 15LL * 60 * 1000000000);
	assert_int_equal(as->update_interval_ns, 60LL * 1000000000);
	assert_int_equal(as->update_interval_when_expecting_ns, 2LL * 1000000000);
	assert_int_equal(as->deletion_retry_interval_ns, 60LL * 1000000000);
	assert_int_equal(as->shutdown_deletion_interval_ns, 10LL * 1000000000);
	assert_int_equal(as->shutdown_deletion_retries, 3);
	assert_int_equal(as->failure_threshold, 3);
	assert_true(config_reservation_throttling(as));
	assert_int_equal(as->npolicy, 0);
	config_free(cfg);
	config_diags_release(&d);
}

static void
test_policy(void **state)
{
	struct config_diags d;
	struct config *cfg = load(MINIMAL
	    "[[runners.autoscaler.policy]]\n"
	    "idle_count = 5\n"
	    "idle_time = \"20m0s\"\n"
	    "[[runners.autoscaler.policy]]\n"
	    "periods = [\"* 8-15 * * mon-fri\", \"*/5 * * * sat\"]\n"
	    "timezone = \"Europe/Berlin\"\n"
	    "idle_time = 600000000000\n"
	    "scale_factor = 1\n"
	    "scale_factor_limit = 10\n"
	    "preemptive_mode = false\n", &d);
	const struct config_autoscaler *as;

	(void)state;
	assert_non_null(cfg);
	as = &cfg->runners[0].autoscaler;
	assert_int_equal(as->npolicy, 2);
	assert_int_equal(as->policy[0].line, 7);
	assert_int_equal(as->policy[0].idle_count, 5);
	assert_int_equal(as->policy[0].idle_time_ns, 1200LL * 1000000000);
	assert_int_equal(as->policy[0].periods.n, 1);
	assert_string_equal(as->policy[0].periods.v[0], "* * * * *");
	assert_null(as->policy[0].timezone);
	assert_true(config_policy_preemptive(&as->policy[0]));
	assert_int_equal(as->policy[1].periods.n, 2);
	assert_string_equal(as->policy[1].timezone, "Europe/Berlin");
	assert_int_equal(as->policy[1].idle_time_ns, 600LL * 1000000000);
	assert_true(as->policy[1].scale_factor == 1.0);
	assert_false(config_policy_preemptive(&as->policy[1]));
	config_free(cfg);
	config_diags_release(&d);
}

static void
test_plugin_json(void **state)
{
	struct config_diags d;
	struct config *cfg = load(MINIMAL
	    "[runners.autoscaler.plugin_config]\n"
	    "name = \"asg\"\n"
	    "max = 3\n"
	    "ratio = 0.5\n"
	    "tags = [\"a\", \"b\"]\n"
	    "nested = { x = true }\n", &d);
	char *json;

	(void)state;
	assert_non_null(cfg);
	json = config_plugin_json(&cfg->runners[0].autoscaler);
	assert_string_equal(json, "{\"max\":3,\"name\":\"asg\",\"nested\":"
	    "{\"x\":true},\"ratio\":0.5,\"tags\":[\"a\",\"b\"]}");
	free(json);
	config_free(cfg);
	config_diags_release(&d);

	cfg = load(MINIMAL, &d);
	json = config_plugin_json(&cfg->runners[0].autoscaler);
	assert_string_equal(json, "{}");
	free(json);
	config_free(cfg);
	config_diags_release(&d);
}

static void
test_pull_policy_forms(void **state)
{
	struct config_diags d;
	struct config *cfg = load(MINIMAL
	    "[runners.docker]\n"
	    "pull_policy = [\"if-not-present\", \"never\"]\n", &d);

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(cfg->runners[0].docker.pull_policy.n, 2);
	assert_string_equal(cfg->runners[0].docker.pull_policy.v[1], "never");
	config_free(cfg);
	config_diags_release(&d);

	cfg = load(MINIMAL "[runners.docker]\npull_policy = \"never\"\n", &d);
	assert_non_null(cfg);
	assert_int_equal(cfg->runners[0].docker.pull_policy.n, 1);
	assert_string_equal(cfg->runners[0].docker.pull_policy.v[0], "never");
	config_free(cfg);
	config_diags_release(&d);
}

/* Every problem is reported in one pass, each with its own line. */
static void
test_all_errors_listed(void **state)
{
	struct config_diags d;
	struct config *cfg = load(
	    "concurrent = 0\n"
	    "bogus = 1\n"
	    "[[runners]]\n"
	    "executor = \"docker-autoscaler\"\n"
	    "[runners.autoscaler]\n"
	    "capacity_per_instance = 0\n"
	    "[[runners.autoscaler.policy]]\n"
	    "idle_time = \"soon\"\n", &d);

	(void)state;
	assert_null(cfg);
	assert_int_equal(d.nerrors, 6);
	assert_true(has_diag(&d, "t.toml:1: concurrent: 0 must be at least 1"));
	assert_true(has_diag(&d, "t.toml:2: warning: unknown key 'bogus'"));
	assert_true(has_diag(&d, "t.toml:3: runners.url: missing"));
	assert_true(has_diag(&d, "t.toml:3: runners.token: missing"));
	assert_true(has_diag(&d, "t.toml:5: runners.autoscaler.plugin:"));
	assert_true(has_diag(&d, "t.toml:6: runners.autoscaler."
	    "capacity_per_instance: 0 must be at least 1"));
	assert_true(has_diag(&d, "t.toml:8: runners.autoscaler.policy."
	    "idle_time: invalid duration \"soon\""));
	config_diags_release(&d);
}

static void
test_syntax_error(void **state)
{
	struct config_diags d;
	struct config *cfg = load("concurrent = 1\n[runners\n", &d);

	(void)state;
	assert_null(cfg);
	assert_int_equal(d.nerrors, 1);
	assert_int_equal(d.v[0].line, 2);
	assert_true(strncmp(d.v[0].msg, "t.toml:2: ", 10) == 0);
	config_diags_release(&d);
}

static void
test_dump_round_trip(void **state)
{
	struct config_diags d;
	struct config *cfg = load(
	    "concurrent = 4\nlisten_address = \"127.0.0.1:9252\"\n"
	    "[[runners]]\n"
	    "url = \"https://gitlab.example.com\"\n"
	    "token = \"glrt-abcdefghijkl\"\n"
	    "executor = \"docker-autoscaler\"\n"
	    "environment = [\"A=1\", \"B=two words\"]\n"
	    "token_obtained_at = 2024-05-01T10:00:00Z\n"
	    "[runners.feature_flags]\nFF_X = true\n"
	    "[runners.docker]\nimage = \"busybox\"\n"
	    "volumes = [\"/cache\"]\n"
	    "[[runners.docker.services]]\nname = \"redis\"\nalias = \"r\"\n"
	    "[runners.autoscaler]\nplugin = \"local\"\n"
	    "[runners.autoscaler.plugin_config]\nname = \"x\\ty\"\n"
	    "deep = { a = [1, 2], b = { c = \"d\" } }\n"
	    "[runners.autoscaler.plugin_config.sub]\nk = 1.5\n"
	    "[[runners.autoscaler.policy]]\nidle_count = 2\n"
	    "scale_factor = 0.25\n", &d);
	char *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	struct config *cfg2;
	FILE *fp;

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(d.n, 0);
	fp = open_memstream(&a, &alen);
	config_dump(cfg, fp, 1);
	fclose(fp);
	config_diags_release(&d);
	config_load_buf("t.toml", a, alen, &cfg2, &d);
	for (size_t i = 0; i < d.n; i++)
		fprintf(stderr, "%s\n", d.v[i].msg);
	assert_non_null(cfg2);
	assert_int_equal(d.n, 0);
	fp = open_memstream(&b, &blen);
	config_dump(cfg2, fp, 1);
	fclose(fp);
	assert_string_equal(a, b);
	assert_non_null(strstr(a, "token = \"glrt-abcdefghijkl\"\n"));
	assert_non_null(strstr(a, "scale_factor = 0.25\n"));
	assert_non_null(strstr(a, "[[runners.docker.services]]\nname = \"redis\"\n"));
	assert_non_null(strstr(a, "token_obtained_at = 2024-05-01T10:00:00Z\n"));
	free(b);
	b = NULL;
	fp = open_memstream(&b, &blen);
	config_dump(cfg2, fp, 0);
	fclose(fp);
	assert_null(strstr(b, "glrt-abcdefghijkl"));
	assert_non_null(strstr(b, "token = \"[MASKED]\"\n"));
	free(a);
	free(b);
	config_free(cfg);
	config_free(cfg2);
	config_diags_release(&d);
}

static void
test_default_path(void **state)
{
	char *p = config_default_path();

	(void)state;
	assert_non_null(strstr(p, "config.toml"));
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_plugin_json),
		cmocka_unit_test(test_pull_policy_forms),
		cmocka_unit_test(test_all_errors_listed),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_dump_round_trip),
		cmocka_unit_test(test_default_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

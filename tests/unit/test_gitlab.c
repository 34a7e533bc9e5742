/*
 * gitlab: the pure parts of the GitLab client (base URL, $VAR expansion,
 * the job payload parser and its refusals, Retry-After and
 * RateLimit-ResetTime, the backoff schedule, CRC-32, Range, the JSON
 * bodies, the failure reason mapper) and, on a loop with no server, the
 * request contract: refusals and connection errors come back from the
 * loop, never inside the call; cancelled requests never call back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "err.h"
#include "gitlab.h"
#include "xmalloc.h"

/* ---- base URL ---- */

static void
check_url(const char *in, const char *want)
{
	char *out = NULL;
	int rc = gitlab_base_url(in, &out);

	if (want == NULL) {
		assert_int_equal(rc, FL_ERR_INVAL);
		assert_null(out);
	} else {
		assert_int_equal(rc, 0);
		assert_string_equal(out, want);
		free(out);
	}
}

static void
test_base_url(void **state)
{
	(void)state;
	check_url("https://gitlab.com", "https://gitlab.com/api/v4/");
	check_url("https://gitlab.com/", "https://gitlab.com/api/v4/");
	check_url("https://gitlab.com///", "https://gitlab.com/api/v4/");
	check_url("https://gitlab.com/ci", "https://gitlab.com/api/v4/");
	check_url("https://gitlab.com/ci/", "https://gitlab.com/api/v4/");
	/* One "/ci" only, after the slashes (Go: TrimRight then TrimSuffix). */
	check_url("https://gitlab.com/ci/ci", "https://gitlab.com/ci/api/v4/");
	check_url("https://gitlab.com/ci//", "https://gitlab.com/api/v4/");
	check_url("http://10.0.0.1:8080/gitlab/",
	    "http://10.0.0.1:8080/gitlab/api/v4/");
	check_url("HTTPS://Example.org", "HTTPS://Example.org/api/v4/");
	check_url("https://x/cid", "https://x/cid/api/v4/");
	check_url("ftp://gitlab.com", NULL);
	check_url("gitlab.com", NULL);
	check_url("https://", NULL);
	check_url("https:///path", NULL);
	check_url("https://a b", NULL);
	check_url("https://a\nb", NULL);
	check_url("", NULL);
	check_url(NULL, NULL);
}

/* ---- env expansion ---- */

static const char *
lookup(const char *name, void *arg)
{
	(void)arg;
	if (strcmp(name, "HOST") == 0)
		return "gitlab.example.com";
	if (strcmp(name, "TOK") == 0)
		return "glrt-abc";
	if (strcmp(name, "A B") == 0)
		return "spaced";
	if (strcmp(name, "1") == 0)
		return "one";
	if (strcmp(name, "EMPTY") == 0)
		return "";
	return NULL;
}

static void
check_exp(const char *in, const char *want)
{
	char *out = gitlab_expand_env(in, lookup, NULL);

	assert_string_equal(out, want);
	free(out);
}

static void
test_expand_env(void **state)
{
	(void)state;
	check_exp("plain", "plain");
	check_exp("", "");
	check_exp("https://$HOST/", "https://gitlab.example.com/");
	check_exp("https://${HOST}/x", "https://gitlab.example.com/x");
	check_exp("$TOK", "glrt-abc");
	check_exp("${TOK}", "glrt-abc");
	check_exp("a${TOK}b$TOK.c", "aglrt-abcbglrt-abc.c");
	check_exp("$UNSET", "");
	check_exp("x${UNSET}y", "xy");
	check_exp("$EMPTY.", ".");
	check_exp("${A B}", "spaced");
	/* Specials: one character. */
	check_exp("$1x", "onex");
	check_exp("${1}", "one");
	check_exp("$$", "");		/* getenv("$") is unset */
	/* A "$" with no name stays. */
	check_exp("cost: $", "cost: $");
	check_exp("a $ b", "a $ b");
	check_exp("$/", "$/");
	check_exp("50$%", "50$%");
	/* Bad syntax is eaten: "${" with no "}", and "${}". */
	check_exp("a${b", "ab");
	check_exp("a${}b", "ab");
	/* Names stop at the first non [A-Za-z0-9_]. */
	check_exp("$HOST-x", "gitlab.example.com-x");
	check_exp("$HOSTx", "");
	/* NULL lookup: getenv. */
	setenv("FL_TEST_GITLAB_VAR", "v1", 1);
	{
		char *o = gitlab_expand_env("<$FL_TEST_GITLAB_VAR>", NULL, NULL);

		assert_string_equal(o, "<v1>");
		free(o);
	}
}

/* ---- job payloads ---- */

static const char full_job[] =
    "{\"id\": 4242, \"token\": \"glcbt-tok\", \"allow_git_fetch\": true,"
    " \"job_info\": {\"name\": \"build\", \"stage\": \"test\","
    "   \"project_id\": 7, \"project_name\": \"p\", \"pipeline_id\": 9,"
    "   \"time_in_queue_seconds\": 1.5},"
    " \"git_info\": {\"repo_url\": \"https://x:glcbt-tok@h/p.git\","
    "   \"ref\": \"main\", \"sha\": \"abc\", \"before_sha\": \"000\","
    "   \"ref_type\": \"branch\", \"refspecs\": [\"+refs/heads/*:refs/remotes/origin/*\"],"
    "   \"depth\": 20, \"protected\": true},"
    " \"runner_info\": {\"timeout\": 3600},"
    " \"variables\": [{\"key\": \"A\", \"value\": \"1\", \"public\": true},"
    "   {\"key\": \"S\", \"value\": \"sec\", \"masked\": true, \"raw\": true},"
    "   {\"key\": \"F\", \"value\": \"file content\", \"file\": true},"
    "   {\"key\": \"A\", \"value\": \"2\"}],"
    " \"steps\": [{\"name\": \"script\", \"script\": [\"echo 1\", \"echo 2\"],"
    "   \"timeout\": 3600, \"when\": \"on_success\", \"allow_failure\": false},"
    "   {\"name\": \"after_script\", \"script\": [\"echo bye\"], \"timeout\": 300,"
    "   \"when\": \"always\", \"allow_failure\": true}],"
    " \"image\": {\"name\": \"debian:12\", \"entrypoint\": [\"/bin/sh\", \"-c\"],"
    "   \"pull_policy\": [\"always\", \"if-not-present\"],"
    "   \"ports\": [{\"number\": 80, \"protocol\": \"http\", \"name\": \"web\"}],"
    "   \"executor_opts\": {\"docker\": {\"platform\": \"linux/arm64\", \"user\": 1000}}},"
    " \"services\": [{\"name\": \"postgres:16\", \"alias\": \"db, pg  sql\","
    "   \"command\": [\"postgres\"], \"entrypoint\": null,"
    "   \"variables\": [{\"key\": \"PW\", \"value\": \"x\"}],"
    "   \"executor_opts\": {\"docker\": {\"user\": \"nobody\"}}},"
    "   {\"name\": \"redis\"}],"
    " \"artifacts\": [{\"name\": \"out\", \"untracked\": true, \"paths\": [\"a\", \"b\"],"
    "   \"exclude\": [\"a/tmp\"], \"when\": \"always\", \"artifact_type\": \"junit\","
    "   \"artifact_format\": \"gzip\", \"expire_in\": \"1 day\"}],"
    " \"cache\": [{\"key\": \"k\", \"untracked\": false, \"policy\": \"pull\","
    "   \"paths\": [\"vendor\"], \"when\": \"on_success\", \"fallback_keys\": [\"k0\", \"k1\"]}],"
    " \"credentials\": [{\"type\": \"registry\", \"url\": \"r.example\","
    "   \"username\": \"u\", \"password\": \"pw\"}],"
    " \"dependencies\": [{\"id\": 41, \"token\": \"glcbt-dep\", \"name\": \"compile\","
    "   \"artifacts_file\": {\"filename\": \"artifacts.zip\", \"size\": 1024}},"
    "   {\"id\": 40, \"token\": \"t\", \"name\": \"none\", \"artifacts_file\": null}],"
    " \"features\": {\"trace_sections\": true, \"token_mask_prefixes\": [\"glpat-\"],"
    "   \"failure_reasons\": [\"script_failure\", \"job_canceled\"]},"
    " \"hooks\": [{\"name\": \"pre_get_sources_script\", \"script\": [\"echo pre\"]}],"
    " \"future_key\": {\"x\": [1, {\"y\": null}]}}";

static struct gitlab_job *
parse_ok(const char *s)
{
	struct gitlab_job *j = NULL;
	char err[256];
	int rc = gitlab_job_parse(s, strlen(s), &j, err, sizeof(err));

	if (rc != 0)
		fail_msg("parse failed: %s", err);
	assert_non_null(j);
	return j;
}

static void
test_job_full(void **state)
{
	struct gitlab_job *j = parse_ok(full_job);

	(void)state;
	assert_int_equal(j->id, 4242);
	assert_string_equal(j->token, "glcbt-tok");
	assert_true(j->allow_git_fetch);
	assert_string_equal(j->job_info.name, "build");
	assert_string_equal(j->job_info.stage, "test");
	assert_int_equal(j->job_info.project_id, 7);
	assert_int_equal(j->job_info.pipeline_id, 9);
	assert_string_equal(j->git_info.ref, "main");
	assert_string_equal(j->git_info.sha, "abc");
	assert_string_equal(j->git_info.before_sha, "000");
	assert_string_equal(j->git_info.ref_type, "branch");
	assert_int_equal(j->git_info.refspecs.n, 1);
	assert_int_equal(j->git_info.depth, 20);
	assert_int_equal(j->git_info.protected, 1);
	assert_string_equal(j->git_info.repo_object_format, "");
	assert_int_equal(j->timeout, 3600);
	assert_int_equal(gitlab_job_timeout(j), 3600);

	assert_int_equal(j->variables.n, 4);
	assert_string_equal(j->variables.v[1].key, "S");
	assert_true(j->variables.v[1].masked);
	assert_true(j->variables.v[1].raw);
	assert_false(j->variables.v[1].public);
	assert_true(j->variables.v[2].file);
	assert_true(j->variables.v[0].public);
	assert_string_equal(gitlab_job_variable(j, "A"), "2");	/* last wins */
	assert_null(gitlab_job_variable(j, "NOPE"));

	assert_int_equal(j->nsteps, 2);
	assert_string_equal(j->steps[0].name, "script");
	assert_int_equal(j->steps[0].script.n, 2);
	assert_string_equal(j->steps[0].script.v[1], "echo 2");
	assert_int_equal(j->steps[0].timeout, 3600);
	assert_string_equal(j->steps[1].when, "always");
	assert_true(j->steps[1].allow_failure);

	assert_string_equal(j->image.name, "debian:12");
	assert_int_equal(j->image.entrypoint.n, 2);
	assert_int_equal(j->image.pull_policy.n, 2);
	assert_string_equal(j->image.pull_policy.v[1], "if-not-present");
	assert_int_equal(j->image.nports, 1);
	assert_int_equal(j->image.ports[0].number, 80);
	assert_string_equal(j->image.docker_platform, "linux/arm64");
	assert_string_equal(j->image.docker_user, "1000");
	assert_null(j->unsupported);

	assert_int_equal(j->nservices, 2);
	assert_string_equal(j->services[0].alias, "db, pg  sql");
	assert_int_equal(j->services[0].aliases.n, 3);
	assert_string_equal(j->services[0].aliases.v[0], "db");
	assert_string_equal(j->services[0].aliases.v[1], "pg");
	assert_string_equal(j->services[0].aliases.v[2], "sql");
	assert_int_equal(j->services[0].entrypoint.n, 0);
	assert_int_equal(j->services[0].variables.n, 1);
	assert_string_equal(j->services[0].docker_user, "nobody");
	assert_string_equal(j->services[1].name, "redis");
	assert_int_equal(j->services[1].aliases.n, 0);
	assert_string_equal(j->services[1].alias, "");

	assert_int_equal(j->nartifacts, 1);
	assert_true(j->artifacts[0].untracked);
	assert_int_equal(j->artifacts[0].paths.n, 2);
	assert_string_equal(j->artifacts[0].exclude.v[0], "a/tmp");
	assert_string_equal(j->artifacts[0].artifact_type, "junit");
	assert_string_equal(j->artifacts[0].artifact_format, "gzip");
	assert_string_equal(j->artifacts[0].expire_in, "1 day");
	assert_string_equal(j->artifacts[0].when, "always");

	assert_int_equal(j->ncaches, 1);
	assert_string_equal(j->caches[0].policy, "pull");
	assert_int_equal(j->caches[0].fallback_keys.n, 2);

	assert_int_equal(j->ncredentials, 1);
	assert_string_equal(j->credentials[0].password, "pw");
	assert_int_equal(j->ndependencies, 2);
	assert_int_equal(j->dependencies[0].id, 41);
	assert_string_equal(j->dependencies[0].artifacts_filename,
	    "artifacts.zip");
	assert_int_equal(j->dependencies[0].artifacts_size, 1024);
	assert_string_equal(j->dependencies[1].artifacts_filename, "");

	assert_true(j->trace_sections);
	assert_int_equal(j->token_mask_prefixes.n, 1);
	assert_int_equal(j->failure_reasons.n, 2);
	assert_int_equal(j->nhooks, 1);
	assert_string_equal(j->hooks[0].script.v[0], "echo pre");
	assert_non_null(json_object_get(j->json, "future_key"));
	gitlab_job_free(j);
}

static void
test_job_minimal_and_nulls(void **state)
{
	struct gitlab_job *j;

	(void)state;
	j = parse_ok("{\"id\": 1, \"token\": \"t\"}");
	assert_int_equal(gitlab_job_timeout(j), GITLAB_DEFAULT_JOB_TIMEOUT);
	assert_string_equal(j->image.name, "");
	assert_int_equal(j->nsteps, 0);
	assert_int_equal(j->variables.n, 0);
	assert_int_equal(j->git_info.protected, -1);
	gitlab_job_free(j);

	/* null is Go's zero value everywhere, null elements included. */
	j = parse_ok("{\"id\": 2, \"token\": \"t\", \"image\": null,"
	    " \"variables\": null, \"steps\": [null, {\"name\": null,"
	    " \"script\": [null, \"x\"], \"timeout\": null}],"
	    " \"git_info\": {\"depth\": null, \"refspecs\": null},"
	    " \"services\": null, \"features\": null, \"job_info\": null}");
	assert_int_equal(j->nsteps, 2);
	assert_string_equal(j->steps[0].name, "");
	assert_int_equal(j->steps[1].script.n, 2);
	assert_string_equal(j->steps[1].script.v[0], "");
	assert_int_equal(j->git_info.depth, 0);
	gitlab_job_free(j);
}

static void
test_job_unsupported_opts(void **state)
{
	struct gitlab_job *j;

	(void)state;
	j = parse_ok("{\"id\": 3, \"token\": \"t\", \"image\": {\"name\": \"a\","
	    " \"executor_opts\": {\"docker\": {\"platform\": \"p\","
	    " \"privileged\": true}}}}");
	assert_non_null(j->unsupported);
	assert_non_null(strstr(j->unsupported, "image.executor_opts.docker"));
	assert_non_null(strstr(j->unsupported, "privileged"));
	gitlab_job_free(j);

	j = parse_ok("{\"id\": 3, \"token\": \"t\", \"services\": [{\"name\":"
	    " \"s\", \"executor_opts\": {\"podman\": {}}}]}");
	assert_non_null(j->unsupported);
	assert_non_null(strstr(j->unsupported, "services[0].executor_opts"));
	gitlab_job_free(j);

	j = parse_ok("{\"id\": 3, \"token\": \"t\", \"image\": {\"name\": \"a\","
	    " \"executor_opts\": {\"kubernetes\": {\"user\": \"1\"}}}}");
	assert_null(j->unsupported);
	gitlab_job_free(j);
}

static void
bad_job(const char *s, const char *want)
{
	struct gitlab_job *j = (struct gitlab_job *)1;
	char err[256];
	int rc = gitlab_job_parse(s, strlen(s), &j, err, sizeof(err));

	assert_int_equal(rc, FL_ERR_PARSE);
	assert_null(j);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
	/* Never a value in the message. */
	assert_null(strstr(err, "s3cret"));
}

static void
test_job_malformed(void **state)
{
	(void)state;
	bad_job("", "malformed JSON");
	bad_job("{", "malformed JSON");
	bad_job("{\"id\": 1, \"token\": \"t\"} x", "malformed JSON");
	bad_job("[]", "job: not an object");
	bad_job("null", "job: not an object");
	bad_job("\"str\"", "job: not an object");
	bad_job("17", "job: not an object");
	bad_job("{\"token\": \"t\"}", "id: missing or not an integer");
	bad_job("{\"id\": \"1\", \"token\": \"t\"}", "id: missing or not an integer");
	bad_job("{\"id\": 1.5, \"token\": \"t\"}", "id: missing or not an integer");
	bad_job("{\"id\": 0, \"token\": \"t\"}", "id: not positive");
	bad_job("{\"id\": -4, \"token\": \"t\"}", "id: not positive");
	bad_job("{\"id\": 1}", "token: missing or empty");
	bad_job("{\"id\": 1, \"token\": \"\"}", "token: missing or empty");
	bad_job("{\"id\": 1, \"token\": 5}", "token: not a string");
	bad_job("{\"id\": 1, \"token\": \"t\", \"allow_git_fetch\": \"yes\"}",
	    "allow_git_fetch: not a boolean");
	bad_job("{\"id\": 1, \"token\": \"t\", \"git_info\": {\"depth\": \"1\"}}",
	    "git_info.depth: not an integer");
	bad_job("{\"id\": 1, \"token\": \"t\", \"git_info\": {\"depth\": 1e2}}",
	    "git_info.depth: not an integer");
	bad_job("{\"id\": 1, \"token\": \"t\", \"git_info\": []}",
	    "git_info: not an object");
	bad_job("{\"id\": 1, \"token\": \"t\", \"git_info\": {\"protected\": 1}}",
	    "git_info.protected: not a boolean");
	bad_job("{\"id\": 1, \"token\": \"t\", \"variables\": {}}",
	    "variables: not an array");
	bad_job("{\"id\": 1, \"token\": \"t\", \"variables\": [3]}",
	    "variables[0]: not an object");
	bad_job("{\"id\": 1, \"token\": \"t\", \"variables\": [{\"key\": \"K\","
	    " \"value\": 7}]}", "variables[0].value: not a string");
	bad_job("{\"id\": 1, \"token\": \"t\", \"variables\": [{\"key\": \"K\","
	    " \"value\": \"s3cret\", \"masked\": \"true\"}]}",
	    "variables[0].masked: not a boolean");
	bad_job("{\"id\": 1, \"token\": \"t\", \"steps\": [{\"script\": \"echo\"}]}",
	    "steps[0].script: not an array");
	bad_job("{\"id\": 1, \"token\": \"t\", \"steps\": [{\"script\": [1]}]}",
	    "steps[0].script[0]: not a string");
	bad_job("{\"id\": 1, \"token\": \"t\", \"image\": \"alpine\"}",
	    "image: not an object");
	bad_job("{\"id\": 1, \"token\": \"t\", \"services\": [{}, {\"entrypoint\":"
	    " [\"a\", {}]}]}", "services[1].entrypoint[1]: not a string");
	bad_job("{\"id\": 1, \"token\": \"t\", \"image\": {\"ports\": [{\"number\":"
	    " \"80\"}]}}", "image.ports[0].number: not an integer");
	bad_job("{\"id\": 1, \"token\": \"t\", \"artifacts\": [{\"paths\": \"a\"}]}",
	    "artifacts[0].paths: not an array");
	bad_job("{\"id\": 1, \"token\": \"t\", \"cache\": [{\"untracked\": 0}]}",
	    "cache[0].untracked: not a boolean");
	bad_job("{\"id\": 1, \"token\": \"t\", \"dependencies\": [{\"artifacts_file\":"
	    " {\"size\": \"1\"}}]}", "dependencies[0].artifacts_file.size: not an integer");
	bad_job("{\"id\": 1, \"token\": \"t\", \"runner_info\": {\"timeout\": \"1h\"}}",
	    "runner_info.timeout: not an integer");
	bad_job("{\"id\": 1, \"token\": \"t\", \"features\": {\"failure_reasons\":"
	    " [true]}}", "features.failure_reasons[0]: not a string");
	bad_job("{\"id\": 1, \"token\": \"t\", \"credentials\": [{\"password\": 1}]}",
	    "credentials[0].password: not a string");
	bad_job("{\"id\": 1, \"token\": \"t\", \"image\": {\"executor_opts\": []}}",
	    "image.executor_opts: not an object");
	bad_job("{\"id\": 1, \"token\": \"t\", \"image\": {\"name\": \"a\\u0000b\"}}",
	    "malformed JSON");
	bad_job("{\"id\": 99999999999999999999, \"token\": \"t\"}",
	    "malformed JSON");
}

static void
test_job_too_big(void **state)
{
	struct gitlab_job *j = NULL;
	char err[128];

	(void)state;
	assert_int_equal(gitlab_job_parse("{}", (size_t)GITLAB_MAX_BODY + 1, &j,
	    err, sizeof(err)), FL_ERR_TOOBIG);
	assert_null(j);
	gitlab_job_free(NULL);
}

static void
test_failure_reason(void **state)
{
	struct gitlab_job *j = parse_ok(full_job);	/* lists job_canceled */

	(void)state;
	assert_string_equal(gitlab_failure_reason(NULL, NULL), "script_failure");
	assert_string_equal(gitlab_failure_reason(NULL, ""), "script_failure");
	assert_string_equal(gitlab_failure_reason(NULL, "runner_system_failure"),
	    "runner_system_failure");
	assert_string_equal(gitlab_failure_reason(NULL, "job_execution_timeout"),
	    "job_execution_timeout");
	assert_string_equal(gitlab_failure_reason(NULL, "image_pull_failure"),
	    "runner_system_failure");
	assert_string_equal(gitlab_failure_reason(NULL,
	    "runner_configuration_error"), "script_failure");
	assert_string_equal(gitlab_failure_reason(NULL,
	    "runner_external_dependency_failure"), "runner_system_failure");
	assert_string_equal(gitlab_failure_reason(NULL, "job_canceled"),
	    "unknown_failure");
	assert_string_equal(gitlab_failure_reason(j, "job_canceled"),
	    "job_canceled");
	assert_string_equal(gitlab_failure_reason(j, "runner_interrupted"),
	    "unknown_failure");
	gitlab_job_free(j);
}

/* ---- retries ---- */

static void
test_retry_after(void **state)
{
	int64_t v;

	(void)state;
	assert_int_equal(gitlab_parse_retry_after("2", &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(gitlab_parse_retry_after("+7", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(gitlab_parse_retry_after("-1", &v), 0);
	assert_int_equal(v, -1);
	assert_int_equal(gitlab_parse_retry_after("", &v), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_retry_after("1.5", &v), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_retry_after(" 1", &v), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_retry_after(
	    "Wed, 21 Oct 2015 07:28:00 GMT", &v), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_retry_after(NULL, &v), FL_ERR_PARSE);
}

static void
test_http_date(void **state)
{
	int64_t t;

	(void)state;
	assert_int_equal(gitlab_parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT",
	    &t), 0);
	assert_int_equal(t, 1445412480);
	assert_int_equal(gitlab_parse_http_date("Thu, 01 Jan 1970 00:00:00 UTC",
	    &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(gitlab_parse_http_date("Sun, 29 Feb 2032 23:59:59 GMT",
	    &t), 0);
	assert_int_equal(t, 1961711999);
	assert_int_equal(gitlab_parse_http_date("Wed, 21 Oct 2015 07:28:00",
	    &t), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_http_date("Wed, 21 Foo 2015 07:28:00 GMT",
	    &t), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_http_date("Xyz, 21 Oct 2015 07:28:00 GMT",
	    &t), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_http_date("Wed, 1 Oct 2015 07:28:00 GMT",
	    &t), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_http_date("Wed, 21 Oct 2015 25:28:00 GMT",
	    &t), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_http_date("Wed, 21 Oct 2015 07:28:00 +0100",
	    &t), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_http_date("1445412480", &t), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_http_date(NULL, &t), FL_ERR_PARSE);
}

static void
test_retry_wait(void **state)
{
	int64_t now = 1445412480LL * 1000;

	(void)state;
	/* RateLimit-ResetTime first, if in the future. */
	assert_int_equal(gitlab_retry_wait_ms("Wed, 21 Oct 2015 07:28:05 GMT",
	    "30", now), 5000);
	assert_int_equal(gitlab_retry_wait_ms("Wed, 21 Oct 2015 07:28:05 GMT",
	    NULL, now + 500), 4500);
	/* In the past or unparsable: Retry-After. */
	assert_int_equal(gitlab_retry_wait_ms("Wed, 21 Oct 2015 07:27:00 GMT",
	    "3", now), 3000);
	assert_int_equal(gitlab_retry_wait_ms("garbage", "3", now), 3000);
	/* Neither usable: -1 (backoff). */
	assert_int_equal(gitlab_retry_wait_ms(NULL, NULL, now), -1);
	assert_int_equal(gitlab_retry_wait_ms("", "", now), -1);
	assert_int_equal(gitlab_retry_wait_ms(NULL, "0", now), -1);
	assert_int_equal(gitlab_retry_wait_ms(NULL, "-5", now), -1);
	assert_int_equal(gitlab_retry_wait_ms(NULL, "soon", now), -1);
	/* Capped at an hour. */
	assert_int_equal(gitlab_retry_wait_ms(NULL, "999999", now),
	    60LL * 60 * 1000);
}

static void
test_backoff(void **state)
{
	static const int64_t want[] = {
		100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200,
		60000, 60000, 60000
	};
	int i;

	(void)state;
	for (i = 0; i < (int)(sizeof(want) / sizeof(want[0])); i++)
		assert_int_equal(gitlab_backoff_ms(i, 100, 60000, -1), want[i]);
	assert_int_equal(gitlab_backoff_ms(1000, 100, 60000, -1), 60000);
	/* Jitter: between the minimum and the step's value. */
	assert_int_equal(gitlab_backoff_ms(0, 100, 60000, 0.99), 100);
	assert_int_equal(gitlab_backoff_ms(3, 100, 60000, 0.0), 100);
	assert_int_equal(gitlab_backoff_ms(3, 100, 60000, 0.5), 450);
	assert_true(gitlab_backoff_ms(3, 100, 60000, 0.999) <= 800);
	assert_true(gitlab_backoff_ms(20, 100, 60000, 0.999) <= 60000);
	assert_true(gitlab_backoff_ms(20, 100, 60000, 0.999) > 59000);
	/* The final update's schedule: 1 s to 60 min. */
	assert_int_equal(gitlab_backoff_ms(0, 1000, 3600000, -1), 1000);
	assert_int_equal(gitlab_backoff_ms(9, 1000, 3600000, -1), 512000);
	assert_int_equal(gitlab_backoff_ms(12, 1000, 3600000, -1), 3600000);
}

static void
test_retryable(void **state)
{
	static const long yes[] = { 408, 429, 500, 502, 503, 504, 512, 599, 999 };
	static const long no[] = { 0, 200, 201, 202, 204, 400, 403, 404, 409,
		412, 416, 422, 501, 505, 511 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_true(gitlab_retryable_status(yes[i]));
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(gitlab_retryable_status(no[i]));
}

/* ---- small parsers ---- */

static void
test_crc32(void **state)
{
	const char *s = "123456789";
	uint32_t c;

	(void)state;
	assert_int_equal(gitlab_crc32(0, "", 0), 0);
	assert_int_equal(gitlab_crc32(0, s, 9), 0xCBF43926u);
	c = gitlab_crc32(0, s, 4);
	c = gitlab_crc32(c, s + 4, 5);
	assert_int_equal(c, 0xCBF43926u);
	assert_int_equal(gitlab_crc32(0, "a", 1), 0xE8B7BE43u);
}

static void
test_range(void **state)
{
	int64_t a, b;

	(void)state;
	assert_int_equal(gitlab_parse_range("0-123", &a, &b), 0);
	assert_int_equal(a, 0);
	assert_int_equal(b, 123);
	assert_int_equal(gitlab_parse_range("5-0", &a, &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(gitlab_parse_range("0-9223372036854775807", &a, &b), 0);
	assert_int_equal(b, INT64_MAX);
	assert_int_equal(gitlab_parse_range("0-9223372036854775808", &a, &b),
	    FL_ERR_PARSE);	/* over int64 */
	assert_int_equal(gitlab_parse_range("0-99999999999999999999", &a, &b),
	    FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_range("", &a, &b), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_range("0-", &a, &b), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_range("-5", &a, &b), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_range("0-5-6", &a, &b), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_range("bytes 0-5", &a, &b), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_range("0-+5", &a, &b), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_range("0-5x", &a, &b), FL_ERR_PARSE);
	assert_int_equal(gitlab_parse_range(NULL, &a, &b), FL_ERR_PARSE);
}

static void
test_status_and_interval(void **state)
{
	(void)state;
	assert_int_equal(gitlab_job_status_parse(NULL), GITLAB_JS_NONE);
	assert_int_equal(gitlab_job_status_parse(""), GITLAB_JS_NONE);
	assert_int_equal(gitlab_job_status_parse("running"), GITLAB_JS_RUNNING);
	assert_int_equal(gitlab_job_status_parse("canceling"),
	    GITLAB_JS_CANCELING);
	assert_int_equal(gitlab_job_status_parse("canceled"), GITLAB_JS_CANCELED);
	assert_int_equal(gitlab_job_status_parse("failed"), GITLAB_JS_FAILED);
	assert_int_equal(gitlab_job_status_parse("success"), GITLAB_JS_OTHER);
	assert_int_equal(gitlab_parse_update_interval("3"), 3000);
	assert_int_equal(gitlab_parse_update_interval("60"), 60000);
	assert_int_equal(gitlab_parse_update_interval("0"), 0);
	assert_int_equal(gitlab_parse_update_interval("-3"), 0);
	assert_int_equal(gitlab_parse_update_interval("3s"), 0);
	assert_int_equal(gitlab_parse_update_interval(NULL), 0);
	assert_int_equal(gitlab_parse_update_interval("100000"),
	    GITLAB_MAX_UPDATE_INTERVAL_MS);
}

/* ---- bodies ---- */

static void
test_info_json(void **state)
{
	const char *off[] = { "vault_secrets", "job_inputs", NULL };
	json_t *i = gitlab_info_json("docker-autoscaler", NULL, " 0 ", NULL);
	json_t *f = json_object_get(i, "features");

	(void)state;
	assert_string_equal(json_string_value(json_object_get(i, "executor")),
	    "docker-autoscaler");
	assert_string_equal(json_string_value(json_object_get(i, "shell")),
	    "bash");
	assert_string_equal(json_string_value(json_object_get(i, "platform")),
	    "linux");
	assert_string_equal(json_string_value(json_object_get(i, "name")),
	    GITLAB_INFO_NAME);
	assert_non_null(json_object_get(i, "architecture"));
	assert_string_equal(json_string_value(json_object_get(
	    json_object_get(i, "config"), "gpus")), " 0 ");
	assert_int_equal(json_object_size(f), 31);
	assert_true(json_is_true(json_object_get(f, "two_phase_job_commit")));
	assert_true(json_is_true(json_object_get(f, "cancel_gracefully")));
	assert_true(json_is_true(json_object_get(f, "trace_checksum")));
	assert_true(json_is_true(json_object_get(f, "multi_build_steps")));
	assert_true(json_is_true(json_object_get(f, "service_multiple_aliases")));
	assert_true(json_is_false(json_object_get(f, "shared")));
	assert_true(json_is_false(json_object_get(f, "proxy")));
	assert_true(json_is_true(json_object_get(f, "vault_secrets")));
	json_decref(i);

	i = gitlab_info_json("docker", "sh", "", off);
	f = json_object_get(i, "features");
	assert_string_equal(json_string_value(json_object_get(i, "shell")), "sh");
	assert_true(json_is_false(json_object_get(f, "vault_secrets")));
	assert_true(json_is_false(json_object_get(f, "job_inputs")));
	assert_true(json_is_true(json_object_get(f, "artifacts")));
	json_decref(i);
}

static void
test_update_json(void **state)
{
	struct gitlab_update u;
	json_t *o, *out;

	(void)state;
	memset(&u, 0, sizeof(u));
	u.state = GITLAB_RUNNING;
	o = gitlab_update_json(json_object(), "jt", &u);
	assert_string_equal(json_string_value(json_object_get(o, "state")),
	    "running");
	assert_string_equal(json_string_value(json_object_get(o, "token")), "jt");
	out = json_object_get(o, "output");
	assert_true(json_is_object(out));
	assert_int_equal(json_object_size(out), 0);	/* "output": {} */
	assert_null(json_object_get(o, "checksum"));
	assert_null(json_object_get(o, "exit_code"));
	assert_null(json_object_get(o, "failure_reason"));
	assert_non_null(json_object_get(o, "info"));
	json_decref(o);

	u.state = GITLAB_FAILED_STATE;
	u.failure_reason = "script_failure";
	u.exit_code = 42;
	u.with_output = 1;
	u.crc32 = 0x1a2b;
	u.bytesize = 12345;
	o = gitlab_update_json(json_object(), "jt", &u);
	out = json_object_get(o, "output");
	assert_string_equal(json_string_value(json_object_get(o, "state")),
	    "failed");
	assert_string_equal(json_string_value(json_object_get(out, "checksum")),
	    "crc32:00001a2b");
	assert_string_equal(json_string_value(json_object_get(o, "checksum")),
	    "crc32:00001a2b");
	assert_int_equal(json_integer_value(json_object_get(out, "bytesize")),
	    12345);
	assert_int_equal(json_integer_value(json_object_get(o, "exit_code")), 42);
	assert_string_equal(json_string_value(json_object_get(o,
	    "failure_reason")), "script_failure");
	json_decref(o);

	/* A reason is only sent with failed; a zero size is left out. */
	u.state = GITLAB_SUCCESS;
	u.exit_code = 0;
	u.bytesize = 0;
	o = gitlab_update_json(json_object(), "jt", &u);
	assert_null(json_object_get(o, "failure_reason"));
	assert_null(json_object_get(json_object_get(o, "output"), "bytesize"));
	assert_non_null(json_object_get(json_object_get(o, "output"),
	    "checksum"));
	json_decref(o);
}

/* ---- the request contract, on a loop, no server ---- */

struct got {
	int calls;
	struct gitlab_result res;
	char msg[256];
	struct gitlab *free_me;
};

static void
got_cb(struct gitlab_req *req, struct gitlab_result *res, void *arg)
{
	struct got *g = arg;

	(void)req;
	g->calls++;
	g->res = *res;
	snprintf(g->msg, sizeof(g->msg), "%s", res->msg);
	g->res.msg = g->msg;
	gitlab_job_free(res->job);
	if (g->free_me != NULL)
		gitlab_free(g->free_me);	/* allowed from a callback */
}

static struct gitlab_runner *
mk_runner(struct gitlab *gl, const char *url)
{
	struct gitlab_runner_conf c;
	struct gitlab_runner *r = NULL;
	char *err = NULL;

	memset(&c, 0, sizeof(c));
	c.url = url;
	c.token = "glrt-unit-test-token";
	c.executor = "docker-autoscaler";
	c.system_id = "s_000000000000";
	assert_int_equal(gitlab_runner_new(gl, &c, &r, &err), 0);
	assert_null(err);
	return r;
}

static void
test_runner_new_errors(void **state)
{
	struct event_base *base = event_base_new();
	struct gitlab *gl = gitlab_new(base, NULL);
	struct gitlab_runner_conf c;
	struct gitlab_runner *r = NULL;
	char *err = NULL;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.url = "https://gitlab.example.com";
	c.token = "";
	assert_int_equal(gitlab_runner_new(gl, &c, &r, &err), FL_ERR_INVAL);
	assert_non_null(strstr(err, "token"));
	free(err);
	c.token = "$FL_TEST_SURELY_UNSET_VAR";	/* expands to "" */
	assert_int_equal(gitlab_runner_new(gl, &c, &r, &err), FL_ERR_INVAL);
	free(err);
	c.token = "glrt-x";
	c.url = "ftp://user:pa55word@h/";
	assert_int_equal(gitlab_runner_new(gl, &c, &r, &err), FL_ERR_INVAL);
	assert_null(strstr(err, "pa55word"));
	free(err);
	c.url = "https://gitlab.example.com";
	c.tls_ca_file = "/nonexistent/ca.pem";
	assert_int_equal(gitlab_runner_new(gl, &c, &r, &err), FL_ERR_INVAL);
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));
	free(err);
	c.tls_ca_file = NULL;
	c.tls_cert_file = "/etc/hostname";
	assert_int_equal(gitlab_runner_new(gl, &c, &r, &err), FL_ERR_INVAL);
	free(err);
	c.tls_cert_file = NULL;
	assert_int_equal(gitlab_runner_new(gl, &c, &r, &err), 0);
	assert_string_equal(gitlab_runner_base_url(r),
	    "https://gitlab.example.com/api/v4/");
	assert_string_equal(gitlab_runner_last_update(r), "");
	gitlab_free(gl);	/* frees the runner too */
	event_base_free(base);
}

static void
test_refusal_from_loop(void **state)
{
	struct event_base *base = event_base_new();
	struct gitlab *gl = gitlab_new(base, NULL);
	struct gitlab_runner *r = mk_runner(gl, "http://127.0.0.1:1/");
	struct gitlab_req *req;
	struct got g1, g2, g3;

	(void)state;
	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	memset(&g3, 0, sizeof(g3));
	gitlab_patch_trace(r, 1, "jt", "", 0, 0, 0, got_cb, &g1);
	gitlab_patch_trace(r, 1, "", "x", 1, 0, 0, got_cb, &g2);
	req = gitlab_patch_trace(r, 1, "jt", "x", 1, -1, 0, got_cb, &g3);
	assert_int_equal(g1.calls, 0);	/* never inside the call */
	gitlab_req_cancel(req);
	gitlab_req_cancel(NULL);
	event_base_dispatch(base);
	assert_int_equal(g1.calls, 1);
	assert_int_equal(g1.res.outcome, GITLAB_FAILED);
	assert_int_equal(g1.res.err, FL_ERR_INVAL);
	assert_int_equal(g1.res.status, 0);
	assert_int_equal(g2.calls, 1);
	assert_non_null(strstr(g2.msg, "no job token"));
	assert_int_equal(g3.calls, 0);	/* cancelled: no callback */
	gitlab_free(gl);
	event_base_free(base);
}

static void
test_connection_refused_retried(void **state)
{
	struct event_base *base = event_base_new();
	struct gitlab_opts o = { .max_attempts = 3, .backoff_min_ms = 5,
		.backoff_max_ms = 20 };
	struct gitlab *gl = gitlab_new(base, &o);
	struct gitlab_runner *r = mk_runner(gl, "http://127.0.0.1:1/");
	struct got g;

	(void)state;
	memset(&g, 0, sizeof(g));
	g.free_me = gl;		/* and free everything from the callback */
	gitlab_request_job(r, got_cb, &g);
	gitlab_verify(r, got_cb, &g);	/* cancelled by that free */
	event_base_dispatch(base);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.res.outcome, GITLAB_FAILED);
	assert_int_equal(g.res.err, FL_ERR_IO);
	assert_int_equal(g.res.attempts, 3);
	assert_int_equal(g.res.healthy, 0);
	assert_non_null(strstr(g.msg, "POST "));
	assert_null(strstr(g.msg, "glrt-unit-test-token"));
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base_url),
		cmocka_unit_test(test_expand_env),
		cmocka_unit_test(test_job_full),
		cmocka_unit_test(test_job_minimal_and_nulls),
		cmocka_unit_test(test_job_unsupported_opts),
		cmocka_unit_test(test_job_malformed),
		cmocka_unit_test(test_job_too_big),
		cmocka_unit_test(test_failure_reason),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_http_date),
		cmocka_unit_test(test_retry_wait),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_retryable),
		cmocka_unit_test(test_crc32),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_status_and_interval),
		cmocka_unit_test(test_info_json),
		cmocka_unit_test(test_update_json),
		cmocka_unit_test(test_runner_new_errors),
		cmocka_unit_test(test_refusal_from_loop),
		cmocka_unit_test(test_connection_refused_retried),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

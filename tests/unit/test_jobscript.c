/*
 * jobscript: the per-stage shell scripts.  Besides looking at the text
 * (quoting, which stages GitLab would skip, the paths), most cases RUN the
 * scripts with busybox sh in a temporary directory that stands in for /
 * (builds_dir and cache_dir point into it), with a stub flotilla-helper
 * that logs its argv and which token it was given, and a local git
 * repository reached through file:// for get_sources.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "config.h"
#include "err.h"
#include "gitlab.h"
#include "jobscript.h"
#include "toml.h"
#include "xmalloc.h"

#define BUSYBOX "/bin/busybox"

static char tmpdir[256];		/* the stand-in for / */
static char builds[300], cache[300], stub[300], stublog[300], home[300];

static const char base_json[] =
    "{\"id\": 4242, \"token\": \"glcbt-64_jobtoken4242\","
    " \"allow_git_fetch\": false,"
    " \"job_info\": {\"name\": \"build\", \"stage\": \"test\","
    "   \"project_id\": 7, \"project_name\": \"flotilla\","
    "   \"project_full_path\": \"ci/flotilla\", \"pipeline_id\": 99},"
    " \"git_info\": {\"repo_url\": \"https://gitlab-ci-token:"
    "glcbt-64_jobtoken4242@gitlab.example.com/ci/flotilla.git\","
    "   \"ref\": \"main\", \"sha\": \"0123456789abcdef0123456789abcdef01234567\","
    "   \"ref_type\": \"branch\","
    "   \"refspecs\": [\"+refs/heads/*:refs/remotes/origin/*\"], \"depth\": 20},"
    " \"runner_info\": {\"timeout\": 3600},"
    " \"variables\": [{\"key\": \"CI_JOB_ID\", \"value\": \"4242\","
    "   \"public\": true}],"
    " \"steps\": [{\"name\": \"script\", \"script\": [\"echo hello\"],"
    "   \"when\": \"on_success\"}],"
    " \"image\": {\"name\": \"busybox:latest\"},"
    " \"features\": {\"trace_sections\": true}}";

/* The base job with the keys of extra (a JSON object) replaced. */
static struct gitlab_job *
mkjob(const char *extra)
{
	json_error_t je;
	json_t *base = json_loads(base_json, 0, &je), *x;
	struct gitlab_job *job = NULL;
	char err[256], *s;

	assert_non_null(base);
	if (extra != NULL) {
		x = json_loads(extra, 0, &je);
		if (x == NULL)
			fail_msg("bad test JSON: %s: %s", je.text, extra);
		json_object_update(base, x);
		json_decref(x);
	}
	s = json_dumps(base, 0);
	json_decref(base);
	if (gitlab_job_parse(s, strlen(s), &job, err, sizeof(err)) != 0)
		fail_msg("job: %s", err);
	free(s);
	return job;
}

static void
rc_init(struct config_runner *rc)
{
	memset(rc, 0, sizeof(*rc));
	rc->url = (char *)"http://127.0.0.1:8080/";
	rc->builds_dir = builds;
	rc->cache_dir = cache;
}

static void
ctx_init(struct jobscript_ctx *c, const struct gitlab_job *job,
    const struct config_runner *rc)
{
	memset(c, 0, sizeof(*c));
	c->job = job;
	c->rc = rc;
	c->short_token = "abcdefghi";
	c->hostname = "manager-1";
	c->helper_path = stub;
}

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "rb");
	struct sbuf sb;
	char buf[4096];
	size_t n;

	sbuf_init(&sb);
	if (fp == NULL)
		return sbuf_detach(&sb, NULL);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		sbuf_add(&sb, buf, n);
	fclose(fp);
	return sbuf_detach(&sb, NULL);
}

static void
spit(const char *path, const char *data, mode_t mode)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	fputs(data, fp);
	fclose(fp);
	chmod(path, mode);
}

/*
 * Run script with busybox sh (stdin = the script, as in a container),
 * cwd tmpdir; *out gets stdout+stderr.  Returns the exit status.
 */
static int
run_sh(const char *script, char **out)
{
	char in_path[400], out_path[400];
	char path_env[700], home_env[400];
	pid_t pid;
	int st;

	snprintf(in_path, sizeof(in_path), "%s/script.in", tmpdir);
	snprintf(out_path, sizeof(out_path), "%s/script.out", tmpdir);
	spit(in_path, script, 0600);
	snprintf(path_env, sizeof(path_env), "PATH=%s/bin:/usr/bin:/bin",
	    tmpdir);
	snprintf(home_env, sizeof(home_env), "HOME=%s", home);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *const argv[] = { (char *)"sh", NULL };
		char *const envp[] = { path_env, home_env,
		    (char *)"GIT_CONFIG_NOSYSTEM=1", (char *)"LC_ALL=C", NULL };
		int fi = open(in_path, O_RDONLY), fo = open(out_path,
		    O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fi < 0 || fo < 0 || chdir(tmpdir) != 0)
			_exit(127);
		dup2(fi, 0);
		dup2(fo, 1);
		dup2(fo, 2);
		execve(BUSYBOX, argv, envp);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	*out = slurp(out_path);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Build stage st, run it, return the exit status; the output in *out. */
static int
run_stage(const struct jobscript_ctx *c, enum jobscript_stage st, char **out)
{
	int skip = -1, r;
	char *s = jobscript_build(c, st, &skip);

	if (s == NULL)
		fail_msg("stage %s skipped", jobscript_stage_name(st));
	assert_int_equal(skip, 0);
	r = run_sh(s, out);
	freezero_str(s);
	return r;
}

static void
contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("missing %s in:\n%s", needle, hay);
}

static void
lacks(const char *hay, const char *needle)
{
	if (strstr(hay, needle) != NULL)
		fail_msg("unexpected %s in:\n%s", needle, hay);
}

static int
setup(void **state)
{
	char cmd[1200];

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_jobscript.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(builds, sizeof(builds), "%s/builds", tmpdir);
	snprintf(cache, sizeof(cache), "%s/cache", tmpdir);
	snprintf(home, sizeof(home), "%s/home", tmpdir);
	snprintf(stub, sizeof(stub), "%s/bin/flotilla-helper", tmpdir);
	snprintf(stublog, sizeof(stublog), "%s/helper.log", tmpdir);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/bin' '%s'", tmpdir, home);
	if (system(cmd) != 0)
		return -1;
	/* The stub helper: logs argv, the cwd and the token it was given;
	 * cache-extractor fails when the file is missing, cache-archiver
	 * writes the paths' names into the file. */
	snprintf(cmd, sizeof(cmd),
	    "#!" BUSYBOX " sh\n"
	    "log='%s'\n"
	    "[ \"$1\" = --version ] && exit 0\n"
	    "printf 'ARGV %%s\\n' \"$*\" >> \"$log\"\n"
	    "printf 'PWD %%s\\n' \"$PWD\" >> \"$log\"\n"
	    "printf 'TOKEN %%s\\n' \"${FLOTILLA_HELPER_TOKEN:-none}\" >> \"$log\"\n"
	    "case \"$1\" in\n"
	    "cache-extractor) [ -f \"$3\" ] || { echo 'WARNING: cache not "
	    "found' >&2; exit 1; }; exit 0;;\n"
	    "cache-archiver) mkdir -p \"$(dirname \"$3\")\"; echo \"$*\" > "
	    "\"$3\"; exit 0;;\n"
	    "esac\n"
	    "exit 0\n", stublog);
	spit(stub, cmd, 0755);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[400];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- quoting ---- */

static void
test_quote_roundtrip(void **state)
{
	char all[256];
	const char *hostile[] = { "", "'", "''", "a'b\"c", "$HOME `id` $(id)",
	    "\\n \\\\ \\'", "line1\nline2\n", "€ 😀 \xff\xfe", "%s %n %%",
	    "-n", "-e \\c", "'\\''", "x\r\ty", NULL };

	(void)state;
	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	for (int k = -1; hostile[k + 1] != NULL || k == -1; k++) {
		const char *v = k < 0 ? all : hostile[k];
		struct sbuf sb;
		char *out;

		sbuf_init(&sb);
		sbuf_adds(&sb, "printf '%s' ");
		jobscript_quote(&sb, v);
		sbuf_adds(&sb, "\n");
		assert_int_equal(run_sh(sb.buf, &out), 0);
		assert_int_equal(strlen(out), strlen(v));
		assert_memory_equal(out, v, strlen(v));
		free(out);
		sbuf_release(&sb);
	}
}

/* ---- names, headers, containers ---- */

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(jobscript_stage_name(JS_GET_SOURCES),
	    "get_sources");
	assert_string_equal(jobscript_stage_name(JS_STEP_SCRIPT),
	    "step_script");
	assert_string_equal(jobscript_stage_name(
	    JS_UPLOAD_ARTIFACTS_ON_SUCCESS), "upload_artifacts_on_success");
	assert_string_equal(jobscript_stage_name(JS_CLEANUP_FILE_VARIABLES),
	    "cleanup_file_variables");
	assert_string_equal(jobscript_stage_header(JS_STEP_SCRIPT, NULL),
	    "Executing \"step_script\" stage of the job script");
	assert_string_equal(jobscript_stage_header(JS_GET_SOURCES, NULL),
	    "Getting source from Git repository");
	assert_string_equal(jobscript_stage_header(JS_ARCHIVE_CACHE_ON_FAILURE,
	    NULL), "Saving cache for failed job");
	assert_true(jobscript_stage_in_build(JS_STEP_SCRIPT));
	assert_true(jobscript_stage_in_build(JS_AFTER_SCRIPT));
	assert_false(jobscript_stage_in_build(JS_GET_SOURCES));
	assert_false(jobscript_stage_in_build(JS_PREPARE_SCRIPT));
	assert_false(jobscript_stage_in_build(JS_CLEANUP_FILE_VARIABLES));
	contains(jobscript_shell_detect(), "exec /bin/sh");
	contains(jobscript_shell_detect(), "shell not found");
}

static void
test_shell_detect_runs(void **state)
{
	char *out;
	struct sbuf sb;

	(void)state;
	/* sh -c DETECT with a script on stdin: the exec'ed shell reads it. */
	sbuf_init(&sb);
	sbuf_adds(&sb, "printf 'echo detected-$((1+2))\\n' | sh -c ");
	jobscript_quote(&sb, jobscript_shell_detect());
	sbuf_adds(&sb, "\n");
	assert_int_equal(run_sh(sb.buf, &out), 0);
	contains(out, "detected-3");
	free(out);
	sbuf_release(&sb);
}

/* ---- paths ---- */

static void
test_paths(void **state)
{
	struct config_runner rc;
	struct jobscript_ctx c;
	struct jobscript_paths p;
	struct gitlab_job *job;
	struct toml_table *t;
	char want[600];

	(void)state;
	/* Defaults: /builds, /cache. */
	job = mkjob(NULL);
	ctx_init(&c, job, NULL);
	assert_int_equal(jobscript_paths(&c, &p), 0);
	assert_string_equal(p.builds_dir, "/builds");
	assert_string_equal(p.project_dir, "/builds/ci/flotilla");
	assert_string_equal(p.tmp_dir, "/builds/ci/flotilla.tmp");
	assert_string_equal(p.cache_dir, "/cache/ci/flotilla");
	jobscript_paths_release(&p);
	gitlab_job_free(job);

	/* Configured dirs; a repo_url path with escapes, "..", no ".git". */
	rc_init(&rc);
	job = mkjob("{\"git_info\": {\"repo_url\": "
	    "\"http://h:1/a%20b/./c\", \"sha\": \"abc\"}}");
	ctx_init(&c, job, &rc);
	assert_int_equal(jobscript_paths(&c, &p), 0);
	snprintf(want, sizeof(want), "%s/a b/c", builds);
	assert_string_equal(p.project_dir, want);
	snprintf(want, sizeof(want), "%s/a b/c", cache);
	assert_string_equal(p.cache_dir, want);
	jobscript_paths_release(&p);
	gitlab_job_free(job);

	/* No host, or ".." in the path: project-<id>. */
	job = mkjob("{\"git_info\": {\"repo_url\": \"file:///srv/x.git\"}}");
	ctx_init(&c, job, NULL);
	assert_int_equal(jobscript_paths(&c, &p), 0);
	assert_string_equal(p.project_dir, "/builds/project-7");
	jobscript_paths_release(&p);
	gitlab_job_free(job);
	job = mkjob("{\"git_info\": {\"repo_url\": \"https://h/a/..x/b\"}}");
	ctx_init(&c, job, NULL);
	assert_int_equal(jobscript_paths(&c, &p), 0);
	assert_string_equal(p.project_dir, "/builds/project-7");
	jobscript_paths_release(&p);
	gitlab_job_free(job);

	/* GIT_STRATEGY=empty: "-empty", for the cache dir too. */
	job = mkjob("{\"variables\": [{\"key\": \"GIT_STRATEGY\", "
	    "\"value\": \"empty\"}]}");
	ctx_init(&c, job, NULL);
	assert_int_equal(jobscript_paths(&c, &p), 0);
	assert_string_equal(p.project_dir, "/builds/ci/flotilla-empty");
	assert_string_equal(p.cache_dir, "/cache/ci/flotilla-empty");
	jobscript_paths_release(&p);
	gitlab_job_free(job);

	/* GIT_CLONE_PATH inside the builds dir (expanded), outside, and
	 * with custom_build_dir disabled. */
	job = mkjob("{\"variables\": [{\"key\": \"GIT_CLONE_PATH\", "
	    "\"value\": \"$CI_BUILDS_DIR/my/./dir/\"}]}");
	ctx_init(&c, job, NULL);
	assert_int_equal(jobscript_paths(&c, &p), 0);
	assert_string_equal(p.project_dir, "/builds/my/dir");
	assert_string_equal(p.tmp_dir, "/builds/my/dir.tmp");
	jobscript_paths_release(&p);
	gitlab_job_free(job);
	job = mkjob("{\"variables\": [{\"key\": \"GIT_CLONE_PATH\", "
	    "\"value\": \"/builds/../etc\"}]}");
	ctx_init(&c, job, NULL);
	assert_int_equal(jobscript_paths(&c, &p), FL_ERR_INVAL);
	assert_null(p.project_dir);
	{
		int skip;
		char *s = jobscript_build(&c, JS_STEP_SCRIPT, &skip), *out;

		assert_non_null(s);
		assert_int_equal(run_sh(s, &out), 1);
		contains(out, "has to be within");
		free(out);
		freezero_str(s);
	}
	gitlab_job_free(job);
	rc_init(&rc);
	t = toml_parse("enabled = false", 15, NULL);
	assert_non_null(t);
	rc.custom_build_dir = t;
	job = mkjob("{\"variables\": [{\"key\": \"GIT_CLONE_PATH\", "
	    "\"value\": \"/builds/x\"}]}");
	ctx_init(&c, job, &rc);
	assert_int_equal(jobscript_paths(&c, &p), FL_ERR_INVAL);
	gitlab_job_free(job);
	toml_free(t);
}

/* ---- which stages run ---- */

static int
skipped(const struct jobscript_ctx *c, enum jobscript_stage st)
{
	int skip = -1;
	char *s = jobscript_build(c, st, &skip);

	if (s == NULL)
		assert_int_equal(skip, 1);
	else
		assert_int_equal(skip, 0);
	freezero_str(s);
	return s == NULL;
}

static void
test_skips(void **state)
{
	struct jobscript_ctx c;
	struct gitlab_job *job;

	(void)state;
	/* A job with nothing but a script. */
	job = mkjob(NULL);
	ctx_init(&c, job, NULL);
	assert_false(skipped(&c, JS_PREPARE_SCRIPT));
	assert_false(skipped(&c, JS_GET_SOURCES));
	assert_true(skipped(&c, JS_RESTORE_CACHE));
	assert_true(skipped(&c, JS_DOWNLOAD_ARTIFACTS));
	assert_false(skipped(&c, JS_STEP_SCRIPT));
	assert_true(skipped(&c, JS_AFTER_SCRIPT));
	assert_true(skipped(&c, JS_ARCHIVE_CACHE));
	assert_true(skipped(&c, JS_ARCHIVE_CACHE_ON_FAILURE));
	assert_true(skipped(&c, JS_UPLOAD_ARTIFACTS_ON_SUCCESS));
	assert_true(skipped(&c, JS_UPLOAD_ARTIFACTS_ON_FAILURE));
	assert_false(skipped(&c, JS_CLEANUP_FILE_VARIABLES));
	{
		int skip = 0;

		assert_null(jobscript_build_step(&c, "release", &skip));
		assert_int_equal(skip, 1);
		assert_null(jobscript_build(&c, JS_NSTAGES, &skip));
		assert_int_equal(skip, 0);
	}
	gitlab_job_free(job);

	/* Everything on success only; empty after_script; a dependency
	 * without artifacts; a cache without paths. */
	job = mkjob("{\"steps\": [{\"name\": \"script\", \"script\": []},"
	    " {\"name\": \"after_script\", \"script\": []}],"
	    " \"cache\": [{\"key\": \"k\", \"paths\": [\"vendor/\"]},"
	    "   {\"key\": \"nopaths\", \"paths\": []}],"
	    " \"artifacts\": [{\"paths\": [\"out/\"]}],"
	    " \"dependencies\": [{\"id\": 1, \"token\": \"t\", \"name\": \"a\","
	    "   \"artifacts_file\": {\"filename\": \"\", \"size\": 0}}]}");
	ctx_init(&c, job, NULL);
	c.runner_url = "http://gitlab.test/";
	assert_false(skipped(&c, JS_STEP_SCRIPT));	/* empty, still runs */
	assert_true(skipped(&c, JS_AFTER_SCRIPT));
	assert_true(skipped(&c, JS_DOWNLOAD_ARTIFACTS));
	assert_false(skipped(&c, JS_RESTORE_CACHE));
	assert_false(skipped(&c, JS_ARCHIVE_CACHE));
	assert_true(skipped(&c, JS_ARCHIVE_CACHE_ON_FAILURE));
	assert_false(skipped(&c, JS_UPLOAD_ARTIFACTS_ON_SUCCESS));
	assert_true(skipped(&c, JS_UPLOAD_ARTIFACTS_ON_FAILURE));
	/* No runner URL: no uploads (GitLab needs Runner.URL). */
	c.runner_url = "";
	assert_true(skipped(&c, JS_UPLOAD_ARTIFACTS_ON_SUCCESS));
	gitlab_job_free(job);

	/* on_failure and always. */
	job = mkjob("{\"cache\": [{\"key\": \"k\", \"untracked\": true,"
	    "   \"when\": \"on_failure\"}],"
	    " \"artifacts\": [{\"exclude\": [\"x\"], \"when\": \"always\"}],"
	    " \"dependencies\": [{\"id\": 1, \"token\": \"t\", \"name\": \"a\","
	    "   \"artifacts_file\": {\"filename\": \"a.zip\", \"size\": 1}}]}");
	ctx_init(&c, job, NULL);
	c.runner_url = "http://gitlab.test/";
	assert_true(skipped(&c, JS_ARCHIVE_CACHE));
	assert_false(skipped(&c, JS_ARCHIVE_CACHE_ON_FAILURE));
	assert_false(skipped(&c, JS_UPLOAD_ARTIFACTS_ON_SUCCESS));
	assert_false(skipped(&c, JS_UPLOAD_ARTIFACTS_ON_FAILURE));
	assert_false(skipped(&c, JS_DOWNLOAD_ARTIFACTS));
	gitlab_job_free(job);
}

/* ---- the script stages, run ---- */

static void
test_step_script_runs(void **state)
{
	struct config_runner rc;
	struct jobscript_ctx c;
	struct gitlab_job *job;
	char *out, path[1200], *s;
	int skip;

	(void)state;
	rc_init(&rc);
	rc.pre_build_script = (char *)"echo pre-build";
	rc.post_build_script = (char *)"echo post-build";
	job = mkjob("{\"steps\": [{\"name\": \"script\", \"script\": ["
	    "\"echo one\", \"  \", \"for i in 1 2; do\\n  echo loop-$i\\ndone\","
	    "\"echo \\\"quoted 'single' $CI_JOB_ID\\\"\","
	    "\"printf '%s\\\\n' 'it''s'\"]}]}");
	ctx_init(&c, job, &rc);
	assert_int_equal(run_stage(&c, JS_PREPARE_SCRIPT, &out), 0);
	contains(out, "Running on ");
	contains(out, " via manager-1...");
	free(out);
	/* the project dir must exist for the cd */
	snprintf(path, sizeof(path), "mkdir -p '%s/ci/flotilla'", builds);
	assert_int_equal(system(path), 0);
	assert_int_equal(run_stage(&c, JS_STEP_SCRIPT, &out), 0);
	contains(out, "\033[32;1m$ echo pre-build\033[0;m\npre-build\n");
	contains(out, "\033[32;1m$ echo one\033[0;m\none\n");
	contains(out, "\033[32;1m$ for i in 1 2; do # collapsed multi-line "
	    "command\033[0;m\nloop-1\nloop-2\n");
	contains(out, "quoted 'single' 4242\n");
	contains(out, "its\n");
	contains(out, "post-build\n");
	free(out);

	/* exit 3: the stage ends with 3, nothing after runs. */
	gitlab_job_free(job);
	job = mkjob("{\"steps\": [{\"name\": \"script\", \"script\": ["
	    "\"echo before\", \"exit 3\", \"echo after\"]},"
	    "{\"name\": \"release\", \"script\": [\"echo release $CI_JOB_ID\"]}]}");
	ctx_init(&c, job, &rc);
	assert_int_equal(run_stage(&c, JS_STEP_SCRIPT, &out), 3);
	contains(out, "before\n");
	lacks(out, "after\n");
	lacks(out, "post-build");
	free(out);
	/* a failing command (not exit): its status ends the stage */
	gitlab_job_free(job);
	job = mkjob("{\"steps\": [{\"name\": \"script\", \"script\": ["
	    "\"sh -c 'exit 7' | cat\", \"echo after\"]},"
	    "{\"name\": \"release\", \"script\": [\"echo release $CI_JOB_ID\"]}]}");
	ctx_init(&c, job, &rc);
	assert_int_equal(run_stage(&c, JS_STEP_SCRIPT, &out), 7);	/* pipefail */
	lacks(out, "after\n");
	free(out);
	/* another step: step_release, its lines expanded by the runner */
	s = jobscript_build_step(&c, "release", &skip);
	assert_non_null(s);
	contains(s, "echo release 4242");
	assert_int_equal(run_sh(s, &out), 0);
	contains(out, "release 4242\n");
	free(out);
	freezero_str(s);
	gitlab_job_free(job);
}

static void
test_variables_run(void **state)
{
	struct config_runner rc;
	struct jobscript_ctx c;
	struct gitlab_job *job;
	char *out, *content, path[1200], *env_list[] = {
	    (char *)"FROM_CONFIG=cfg-$CI_JOB_ID", (char *)"NOEQUALS",
	    (char *)"BAD-NAME=x" };
	const char hostile[] = "a'b\"c $HOME `id` $(id) \\\\ \\n €😀\n"
	    "line2 '\\'' %s";
	json_t *vars;
	size_t n;

	(void)state;
	rc_init(&rc);
	rc.environment.v = env_list;
	rc.environment.n = 3;
	snprintf(path, sizeof(path), "mkdir -p '%s/ci/flotilla'", builds);
	assert_int_equal(system(path), 0);
	/* the script: dump the variables */
	{
		json_t *x = json_loads("{\"steps\": [{\"name\": \"script\", "
		    "\"script\": [\"printf '%s' \\\"$HOSTILE\\\" > hostile.out\","
		    "\"echo \\\"REF=$REF\\\"\", \"echo \\\"RAWV=$RAWV\\\"\","
		    "\"echo \\\"KC=$KUBECONFIG\\\"\", \"cp \\\"$KUBECONFIG\\\" kc.out\","
		    "\"echo \\\"FC=$FROM_CONFIG DUP=$DUP\\\"\","
		    "\"echo \\\"TOKEN=$CI_JOB_TOKEN URL=$CI_SERVER_URL\\\"\","
		    "\"echo \\\"DIRS=$CI_BUILDS_DIR $CI_PROJECT_DIR $PWD\\\"\","
		    "\"echo \\\"STATUS=$CI_JOB_STATUS SHORT=$CI_RUNNER_SHORT_TOKEN "
		    "SERVER=$CI_SERVER DISP=$CI_DISPOSABLE_ENVIRONMENT\\\"\","
		    "\"echo \\\"IMAGE=$CI_JOB_IMAGE TIMEOUT=$CI_JOB_TIMEOUT\\\"\","
		    "\"printf '%s' \\\"$NOTRAW\\\" > notraw.out\","
		    "\"echo 'A=from step' >> \\\"$GITLAB_ENV\\\"\","
		    "\"echo 'B=b=c d' >> \\\"$GITLAB_ENV\\\"\"]},"
		    "{\"name\": \"after_script\", \"script\": ["
		    "\"echo \\\"after: $CI_JOB_STATUS A=$A B=$B\\\"\", \"false\","
		    "\"echo not-reached\"]}]}", 0, NULL);
		json_t *b = json_loads(base_json, 0, NULL);
		char *s, err[200];

		vars = json_pack("[{s:s,s:s,s:b},{s:s,s:s},{s:s,s:s,s:b},"
		    "{s:s,s:s,s:b,s:b},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]",
		    "key", "HOSTILE", "value", hostile, "raw", 1,
		    "key", "REF", "value",
		    "ref=$HOSTILE_NOPE:${CI_JOB_ID}:$$:$KUBECONFIG",
		    "key", "RAWV", "value", "$CI_JOB_ID", "raw", 1,
		    "key", "KUBECONFIG", "value", hostile, "file", 1, "raw", 1,
		    "key", "CI_JOB_ID", "value", "4242",
		    "key", "DUP", "value", "first",
		    "key", "DUP", "value", "second",
		    "key", "NOTRAW", "value", hostile);
		json_object_update(b, x);
		json_object_set_new(b, "variables", vars);
		json_decref(x);
		s = json_dumps(b, 0);
		json_decref(b);
		assert_int_equal(gitlab_job_parse(s, strlen(s), &job, err,
		    sizeof(err)), 0);
		free(s);
	}
	ctx_init(&c, job, &rc);
	c.runner_url = "http://gitlab.test/";
	assert_int_equal(run_stage(&c, JS_STEP_SCRIPT, &out), 0);
	snprintf(path, sizeof(path), "%s/ci/flotilla/hostile.out", builds);
	content = slurp(path);
	if (strcmp(content, hostile) != 0)
		fail_msg("hostile: [%s]\n%s", content, out);
	assert_string_equal(content, hostile);
	free(content);
	/* the file variable: written byte-exact, the variable its path */
	snprintf(path, sizeof(path), "%s/ci/flotilla/kc.out", builds);
	content = slurp(path);
	assert_string_equal(content, hostile);
	free(content);
	snprintf(path, sizeof(path), "KC=%s/ci/flotilla.tmp/KUBECONFIG\n",
	    builds);
	contains(out, path);
	snprintf(path, sizeof(path), "REF=ref=:4242:$:%s/ci/flotilla.tmp/"
	    "KUBECONFIG\n", builds);
	contains(out, path);
	contains(out, "RAWV=$CI_JOB_ID\n");
	contains(out, "FC=cfg-4242 DUP=second\n");
	contains(out, "TOKEN=glcbt-64_jobtoken4242 URL=http://gitlab.test\n");
	snprintf(path, sizeof(path), "DIRS=%s %s/ci/flotilla %s/ci/flotilla\n",
	    builds, builds, builds);
	contains(out, path);
	contains(out, "STATUS=running SHORT=abcdefghi SERVER=yes DISP=true\n");
	contains(out, "IMAGE=busybox:latest TIMEOUT=3600\n");
	free(out);
	/* not raw: $HOME (no such job variable) expanded away, like GitLab */
	snprintf(path, sizeof(path), "%s/ci/flotilla/notraw.out", builds);
	content = slurp(path);
	assert_string_equal(content, "a'b\"c  `id` $(id) \\\\ \\n €😀\n"
	    "line2 '\\'' %s");
	free(content);

	/* after_script: CI_JOB_STATUS from the ctx, GITLAB_ENV from the
	 * step, stops at the first failure (exit status kept; whether it
	 * counts is the executor's: AFTER_SCRIPT_IGNORE_ERRORS). */
	c.job_status = "failed";
	assert_int_equal(run_stage(&c, JS_AFTER_SCRIPT, &out), 1);
	contains(out, "Running after script...");
	contains(out, "after: failed A=from step B=b=c d\n");
	lacks(out, "not-reached");
	free(out);
	assert_true(jobscript_after_script_ignore_errors(&c));

	/* the container Env: the same list */
	{
		char **env = jobscript_env(&c, &n);
		int found = 0;

		assert_non_null(env);
		for (size_t i = 0; i < n; i++) {
			if (strncmp(env[i], "KUBECONFIG=", 11) == 0) {
				contains(env[i], "/ci/flotilla.tmp/KUBECONFIG");
				found++;
			}
			if (strcmp(env[i], "CI_JOB_STATUS=failed") == 0)
				found++;
		}
		assert_int_equal(found, 2);
		jobscript_env_free(env, n);
	}

	/* cleanup: the file variable, GITLAB_ENV and the ext config go */
	snprintf(path, sizeof(path), "%s/ci/flotilla.tmp/KUBECONFIG", builds);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(run_stage(&c, JS_CLEANUP_FILE_VARIABLES, &out), 0);
	free(out);
	assert_int_not_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/ci/flotilla.tmp/gitlab_runner_env",
	    builds);
	assert_int_not_equal(access(path, F_OK), 0);
	gitlab_job_free(job);
}

static void
test_after_script_settings(void **state)
{
	struct jobscript_ctx c;
	struct gitlab_job *job;

	(void)state;
	job = mkjob("{\"variables\": [{\"key\": \"AFTER_SCRIPT_IGNORE_ERRORS\","
	    " \"value\": \"false\"}, {\"key\": \"GET_SOURCES_ATTEMPTS\","
	    " \"value\": \"3\"}, {\"key\": \"RESTORE_CACHE_ATTEMPTS\","
	    " \"value\": \"99\"}]}");
	ctx_init(&c, job, NULL);
	assert_false(jobscript_after_script_ignore_errors(&c));
	assert_int_equal(jobscript_attempts(&c, JS_GET_SOURCES), 3);
	assert_int_equal(jobscript_attempts(&c, JS_RESTORE_CACHE), 10);
	assert_int_equal(jobscript_attempts(&c, JS_DOWNLOAD_ARTIFACTS), 1);
	assert_int_equal(jobscript_attempts(&c, JS_STEP_SCRIPT), 1);
	gitlab_job_free(job);
}

static void
test_cache_keys(void **state)
{
	char *k;

	(void)state;
	k = jobscript_sanitize_cache_key("build/main");
	assert_string_equal(k, "build/main");
	free(k);
	k = jobscript_sanitize_cache_key("..%2F..%2fetc%2e%2E\\x/ ");
	assert_string_equal(k, "etc../x");
	free(k);
	k = jobscript_sanitize_cache_key("a/b \t/ / ");
	assert_string_equal(k, "a/b");
	free(k);
	assert_null(jobscript_sanitize_cache_key("../../ "));
	k = jobscript_sanitize_cache_key("../.. / ");	/* ".. " is a name */
	assert_string_equal(k, "..");
	free(k);
	assert_null(jobscript_sanitize_cache_key(""));
	k = jobscript_sanitize_cache_key("key\xc2\xa0");	/* NBSP */
	assert_string_equal(k, "key");
	free(k);
}

static void
test_cache_run(void **state)
{
	struct config_runner rc;
	struct jobscript_ctx c;
	struct gitlab_job *job;
	char *out, *log, path[1200];

	(void)state;
	rc_init(&rc);
	job = mkjob("{\"variables\": [{\"key\": \"BRANCH\", \"value\": \"dev\"},"
	    " {\"key\": \"CACHE_FALLBACK_KEY\", \"value\": \"global\"}],"
	    " \"cache\": [{\"key\": \"deps-$BRANCH\", \"paths\": [\"vendor/\", "
	    "\"it's here\"], \"policy\": \"pull-push\", \"when\": \"on_success\","
	    " \"fallback_keys\": [\"deps-default\", \"../x\"]},"
	    " {\"key\": \"\", \"paths\": [\"p\"], \"policy\": \"pull\"},"
	    " {\"key\": \"pushonly\", \"paths\": [\"q\"], \"policy\": \"push\"}]}");
	ctx_init(&c, job, &rc);
	snprintf(path, sizeof(path), "mkdir -p '%s/ci/flotilla'; rm -f '%s'",
	    builds, stublog);
	assert_int_equal(system(path), 0);

	/* nothing cached yet: every key tried, warnings, still success */
	assert_int_equal(run_stage(&c, JS_RESTORE_CACHE, &out), 0);
	contains(out, "Checking cache for deps-dev...");
	contains(out, "Checking cache for deps-default...");
	contains(out, "cache key \"../x\" sanitized to \"x\"");
	contains(out, "Checking cache for x...");
	contains(out, "Checking cache for global...");
	contains(out, "WARNING: cache not found");
	contains(out, "Failed to extract cache");
	contains(out, "Checking cache for build/main...");	/* default key */
	contains(out, "Not downloading cache pushonly due to policy");
	free(out);
	log = slurp(stublog);
	snprintf(path, sizeof(path), "ARGV cache-extractor --file "
	    "%s/ci/flotilla/deps-dev/cache.zip\nPWD %s/ci/flotilla\n", cache,
	    builds);
	contains(log, path);
	snprintf(path, sizeof(path), "--file %s/ci/flotilla/build/main/"
	    "cache.zip", cache);
	contains(log, path);
	free(log);

	/* archive: pull-push and push write, pull does not */
	snprintf(path, sizeof(path), "rm -f '%s'", stublog);
	assert_int_equal(system(path), 0);
	assert_int_equal(run_stage(&c, JS_ARCHIVE_CACHE, &out), 0);
	contains(out, "Creating cache deps-dev...");
	contains(out, "Created cache");
	contains(out, "Not uploading cache build/main due to policy");
	contains(out, "Creating cache pushonly...");
	free(out);
	log = slurp(stublog);
	snprintf(path, sizeof(path), "ARGV cache-archiver --file "
	    "%s/ci/flotilla/deps-dev/cache.zip --path vendor/ --path it's here\n",
	    cache);
	contains(log, path);
	free(log);

	/* now the first key is there */
	assert_int_equal(run_stage(&c, JS_RESTORE_CACHE, &out), 0);
	contains(out, "Successfully extracted cache");
	free(out);
	gitlab_job_free(job);

	/* an unknown policy fails the stage */
	job = mkjob("{\"cache\": [{\"key\": \"k\", \"paths\": [\"p\"],"
	    " \"policy\": \"sometimes\"}]}");
	ctx_init(&c, job, &rc);
	assert_int_equal(run_stage(&c, JS_RESTORE_CACHE, &out), 1);
	contains(out, "unknown cache policy sometimes for k");
	free(out);
	gitlab_job_free(job);
}

static void
test_artifacts_run(void **state)
{
	struct config_runner rc;
	struct jobscript_ctx c;
	struct gitlab_job *job;
	char *out, *log, path[1200], *s;
	int skip;

	(void)state;
	rc_init(&rc);
	job = mkjob("{\"dependencies\": ["
	    "{\"id\": 11, \"token\": \"dep-token-11\", \"name\": \"compile\","
	    "  \"artifacts_file\": {\"filename\": \"artifacts.zip\", \"size\": 1}},"
	    "{\"id\": 12, \"token\": \"dep-token-12\", \"name\": \"none\","
	    "  \"artifacts_file\": {\"filename\": \"\", \"size\": 0}}],"
	    " \"artifacts\": [{\"name\": \"out put\", \"paths\": [\"build/\","
	    "  \"*.log\"], \"exclude\": [\"build/tmp\"], \"untracked\": true,"
	    "  \"when\": \"on_success\", \"expire_in\": \"1 week\","
	    "  \"artifact_type\": \"archive\", \"artifact_format\": \"zip\"},"
	    " {\"paths\": [\"report.xml\"], \"when\": \"always\","
	    "  \"artifact_type\": \"junit\", \"artifact_format\": \"gzip\"},"
	    " {\"paths\": [\"fail.log\"], \"when\": \"on_failure\"}]}");
	ctx_init(&c, job, &rc);
	c.runner_url = "http://gitlab.test:8080/";
	snprintf(path, sizeof(path), "mkdir -p '%s/ci/flotilla'; rm -f '%s'",
	    builds, stublog);
	assert_int_equal(system(path), 0);
	assert_int_equal(run_stage(&c, JS_DOWNLOAD_ARTIFACTS, &out), 0);
	contains(out, "Downloading artifacts for compile (11)...");
	lacks(out, "(12)");
	free(out);
	log = slurp(stublog);
	contains(log, "ARGV artifacts-downloader --url http://gitlab.test:8080/ "
	    "--id 11\n");
	contains(log, "TOKEN dep-token-11\n");
	lacks(log, "dep-token-12");
	lacks(log, "--token");
	free(log);
	/* the token is not in argv: set for that one command */
	s = jobscript_build(&c, JS_DOWNLOAD_ARTIFACTS, &skip);
	contains(s, "FLOTILLA_HELPER_TOKEN='\\''dep-token-11'\\'' ");
	freezero_str(s);

	snprintf(path, sizeof(path), "rm -f '%s'", stublog);
	assert_int_equal(system(path), 0);
	assert_int_equal(run_stage(&c, JS_UPLOAD_ARTIFACTS_ON_SUCCESS, &out), 0);
	contains(out, "Uploading artifacts...");
	free(out);
	log = slurp(stublog);
	contains(log, "ARGV artifacts-uploader --url http://gitlab.test:8080/ "
	    "--id 4242 --path build/ --path *.log --exclude build/tmp "
	    "--untracked --name out put --expire-in 1 week --artifact-format zip"
	    " --artifact-type archive\n");
	contains(log, "ARGV artifacts-uploader --url http://gitlab.test:8080/ "
	    "--id 4242 --path report.xml --artifact-format gzip --artifact-type "
	    "junit\n");
	contains(log, "TOKEN glcbt-64_jobtoken4242\n");
	lacks(log, "fail.log");
	free(log);
	snprintf(path, sizeof(path), "rm -f '%s'", stublog);
	assert_int_equal(system(path), 0);
	assert_int_equal(run_stage(&c, JS_UPLOAD_ARTIFACTS_ON_FAILURE, &out), 0);
	free(out);
	log = slurp(stublog);
	contains(log, "--path report.xml");
	contains(log, "--path fail.log");
	lacks(log, "build/");
	free(log);

	/* a helper that is missing: a warning, no failure */
	c.helper_path = "/nonexistent/flotilla-helper";
	assert_int_equal(run_stage(&c, JS_UPLOAD_ARTIFACTS_ON_SUCCESS, &out), 0);
	contains(out, "Missing /nonexistent/flotilla-helper. Uploading "
	    "artifacts is disabled.");
	free(out);
	gitlab_job_free(job);
}

/* ---- get_sources with a local repository ---- */

static int
have_git(void)
{
	return system("git --version >/dev/null 2>&1") == 0;
}

static void
test_get_sources_run(void **state)
{
	struct config_runner rc;
	struct jobscript_ctx c;
	struct gitlab_job *job;
	char cmd[2000], sha[64], *out, *cfg, *extra;
	FILE *fp;

	(void)state;
	if (!have_git())
		skip();
	snprintf(cmd, sizeof(cmd),
	    "set -e; export HOME='%s' GIT_CONFIG_NOSYSTEM=1; cd '%s';"
	    "git init -q -b main src; cd src;"
	    "git config user.email t@t; git config user.name t;"
	    "echo one > f; git add f; git commit -q -m one;"
	    "git rev-parse HEAD > ../sha1;"
	    "echo two > f; git commit -q -am two;"
	    "git rev-parse HEAD > ../sha2", home, tmpdir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/sha1", tmpdir);
	fp = fopen(cmd, "r");
	assert_non_null(fp);
	assert_non_null(fgets(sha, sizeof(sha), fp));
	fclose(fp);
	sha[40] = '\0';

	rc_init(&rc);
	extra = xasprintf("{\"git_info\": {\"repo_url\": \"file://%s/src\","
	    " \"ref\": \"main\", \"sha\": \"%s\", \"ref_type\": \"branch\","
	    " \"refspecs\": [\"+refs/heads/*:refs/remotes/origin/*\"],"
	    " \"depth\": 0},"
	    " \"hooks\": [{\"name\": \"pre_get_sources_script\","
	    "   \"script\": [\"echo job-pre-hook\"]},"
	    "  {\"name\": \"post_get_sources_script\","
	    "   \"script\": [\"echo job-post-hook; git log -1 --format=%%s\"]}]}",
	    tmpdir, sha);
	job = mkjob(extra);
	free(extra);
	rc.pre_get_sources_script = (char *)"echo config-pre-hook";
	rc.post_get_sources_script = (char *)"echo config-post-hook";
	ctx_init(&c, job, &rc);
	assert_int_equal(run_stage(&c, JS_GET_SOURCES, &out), 0);
	contains(out, "$ echo config-pre-hook\033[0;m\nconfig-pre-hook\n");
	contains(out, "job-pre-hook\n");
	contains(out, "Fetching changes...");
	contains(out, "Initialized empty Git repository");
	contains(out, "Created fresh repository.");
	{
		char want[200];

		snprintf(want, sizeof(want), "Checking out %.8s as detached HEAD "
		    "(ref is main)...", sha);
		contains(out, want);
	}
	contains(out, "Skipping Git submodules setup");
	contains(out, "job-post-hook\none\n");	/* the first commit */
	contains(out, "config-post-hook\n");
	/* the hooks in GitLab's order */
	assert_true(strstr(out, "config-pre-hook") < strstr(out, "job-pre-hook"));
	assert_true(strstr(out, "job-post-hook") < strstr(out,
	    "config-post-hook"));
	free(out);
	snprintf(cmd, sizeof(cmd), "%s/project-7/f", builds);
	out = slurp(cmd);
	assert_string_equal(out, "one\n");
	free(out);
	/* the token never lands in the repository's config */
	snprintf(cmd, sizeof(cmd), "%s/project-7/.git/config", builds);
	cfg = slurp(cmd);
	lacks(cfg, "glcbt-64_jobtoken4242");
	contains(cfg, ".gitlab-runner.ext.conf");
	free(cfg);
	snprintf(cmd, sizeof(cmd), "%s/project-7.tmp/.gitlab-runner.ext.conf",
	    builds);
	cfg = slurp(cmd);
	contains(cfg, "gitlab-ci-token:glcbt-64_jobtoken4242@127.0.0.1:8080");
	free(cfg);

	/* again, with fetch: the existing repository is reused */
	gitlab_job_free(job);
	extra = xasprintf("{\"allow_git_fetch\": true, \"git_info\": "
	    "{\"repo_url\": \"file://%s/src\", \"ref\": \"main\","
	    " \"sha\": \"%s\", \"refspecs\": [\"+refs/heads/*:refs/remotes/"
	    "origin/*\"], \"depth\": 1}, \"variables\": [{\"key\": "
	    "\"GIT_CLEAN_FLAGS\", \"value\": \"none\"}]}", tmpdir, sha);
	job = mkjob(extra);
	free(extra);
	ctx_init(&c, job, &rc);
	snprintf(cmd, sizeof(cmd), "touch '%s/project-7/untracked'", builds);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(run_stage(&c, JS_GET_SOURCES, &out), 0);
	contains(out, "Fetching changes with git depth set to 1...");
	contains(out, "Reinitialized existing Git repository");
	free(out);
	snprintf(cmd, sizeof(cmd), "%s/project-7/untracked", builds);
	assert_int_equal(access(cmd, F_OK), 0);	/* GIT_CLEAN_FLAGS=none */

	/* cleanup removes the ext config with the token */
	assert_int_equal(run_stage(&c, JS_CLEANUP_FILE_VARIABLES, &out), 0);
	free(out);
	snprintf(cmd, sizeof(cmd), "%s/project-7.tmp/.gitlab-runner.ext.conf",
	    builds);
	assert_int_not_equal(access(cmd, F_OK), 0);

	/* GIT_STRATEGY=none: no git, no hooks; empty: a fresh empty dir */
	gitlab_job_free(job);
	job = mkjob("{\"variables\": [{\"key\": \"GIT_STRATEGY\", \"value\":"
	    " \"none\"}], \"git_info\": {\"repo_url\": \"file:///nonexistent\","
	    " \"sha\": \"abc\"}, \"hooks\": [{\"name\": \"pre_get_sources_script\","
	    " \"script\": [\"echo hook\"]}]}");
	ctx_init(&c, job, &rc);
	assert_int_equal(run_stage(&c, JS_GET_SOURCES, &out), 0);
	contains(out, "Skipping Git repository setup");
	contains(out, "Skipping Git checkout");
	lacks(out, "hook");
	free(out);
	gitlab_job_free(job);
	job = mkjob("{\"variables\": [{\"key\": \"GIT_STRATEGY\", \"value\":"
	    " \"empty\"}], \"git_info\": {\"repo_url\": \"file:///nonexistent\","
	    " \"sha\": \"abc\"}}");
	ctx_init(&c, job, &rc);
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/project-7-empty/d'; touch "
	    "'%s/project-7-empty/d/x'", builds, builds);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(run_stage(&c, JS_GET_SOURCES, &out), 0);
	contains(out, "creating an empty build directory");
	free(out);
	snprintf(cmd, sizeof(cmd), "%s/project-7-empty/d", builds);
	assert_int_not_equal(access(cmd, F_OK), 0);
	gitlab_job_free(job);

	/* an unknown submodule strategy fails the stage */
	job = mkjob("{\"variables\": [{\"key\": \"GIT_SUBMODULE_STRATEGY\","
	    " \"value\": \"sometimes\"}]}");
	ctx_init(&c, job, &rc);
	assert_int_equal(run_stage(&c, JS_GET_SOURCES, &out), 1);
	contains(out, "unknown GIT_SUBMODULE_STRATEGY");
	free(out);
	gitlab_job_free(job);
}

/* The script text: token only where GitLab has it, the ext config. */
static void
test_get_sources_text(void **state)
{
	struct config_runner rc;
	struct jobscript_ctx c;
	struct gitlab_job *job;
	char *s;
	int skip;

	(void)state;
	rc_init(&rc);
	rc.clone_url = (char *)"https://clone.example.com:8443";
	job = mkjob("{\"variables\": [{\"key\": \"CI_PROJECT_PATH\", \"value\":"
	    " \"grp/proj\"}, {\"key\": \"GIT_SUBMODULE_STRATEGY\", \"value\":"
	    " \"recursive\"}, {\"key\": \"GIT_SUBMODULE_DEPTH\", \"value\": \"3\"},"
	    " {\"key\": \"GIT_SUBMODULE_UPDATE_FLAGS\", \"value\": \"--remote "
	    "--jobs 4\"}]}");
	ctx_init(&c, job, &rc);
	s = jobscript_build(&c, JS_GET_SOURCES, &skip);
	assert_non_null(s);
	/* the clone_url host, the project path, no token in the remote */
	contains(s, "git remote add origin '\\''https://clone.example.com:8443/"
	    "grp/proj.git'\\''");
	contains(s, "url.https://gitlab-ci-token:glcbt-64_jobtoken4242@"
	    "clone.example.com:8443/grp/proj.git.insteadOf");
	contains(s, "Fetching changes with git depth set to 20...");
	contains(s, "fetch origin --no-recurse-submodules '\\''+refs/heads/*:"
	    "refs/remotes/origin/*'\\'' --depth 20 '\\''--prune'\\'' "
	    "'\\''--quiet'\\''");
	contains(s, "Updating/initializing submodules recursively with git "
	    "depth set to 3...");
	contains(s, "submodule update --init --recursive --depth 3 "
	    "'\\''--remote'\\'' '\\''--jobs'\\'' '\\''4'\\''");
	contains(s, "git -c \"include.path=$GLR_EXT_GIT_CONFIG_PATH\" submodule "
	    "foreach --recursive git fetch origin");	/* --remote retry */
	contains(s, "'\\''url=https://clone.example.com:8443'\\'' '\\''username="
	    "gitlab-ci-token'\\'' | git credential reject || true");
	contains(s, "http.userAgent=flotilla ");
	contains(s, "set -o pipefail");
	contains(s, "\ntrap 'exit 1' TERM\n");
	contains(s, "\n( trap 'exit 1' TERM; eval '");
	contains(s, "' ) < /dev/null\nexit 0\n");
	/* no TLS data: no CI_SERVER_TLS_* and no ssl git config */
	lacks(s, "CI_SERVER_TLS_");
	lacks(s, "sslCAInfo");
	freezero_str(s);

	/* the runner's CA: a file variable git trusts for the host; a
	 * client certificate without its key is not passed */
	c.tls_ca_chain = "-----BEGIN CERTIFICATE-----\nMIIBtest\n"
	    "-----END CERTIFICATE-----\n";
	c.tls_auth_cert = "-----BEGIN CERTIFICATE-----\nMIIBcert\n";
	s = jobscript_build(&c, JS_GET_SOURCES, &skip);
	assert_non_null(s);
	contains(s, "CI_SERVER_TLS_CA_FILE");
	contains(s, "MIIBtest");
	contains(s, "'\\''config'\\'' '\\''--global'\\'' '\\''http.https://"
	    "clone.example.com:8443.sslCAInfo'\\'' \"$CI_SERVER_TLS_CA_FILE\"\n");
	lacks(s, "sslCert");
	lacks(s, "MIIBcert");
	freezero_str(s);
	/* with the key: both, and git presents them */
	c.tls_auth_key = "-----BEGIN PRIVATE KEY-----\nMIIBkey\n";
	s = jobscript_build(&c, JS_GET_SOURCES, &skip);
	contains(s, "8443.sslCert'\\'' \"$CI_SERVER_TLS_CERT_FILE\"\n");
	contains(s, "8443.sslKey'\\'' \"$CI_SERVER_TLS_KEY_FILE\"\n");
	contains(s, "MIIBkey");
	freezero_str(s);
	c.tls_ca_chain = c.tls_auth_cert = c.tls_auth_key = NULL;
	gitlab_job_free(job);

	/* CI_DEBUG_TRACE: xtrace, unless the runner disables it */
	job = mkjob("{\"variables\": [{\"key\": \"CI_DEBUG_TRACE\", \"value\":"
	    " \"true\"}]}");
	ctx_init(&c, job, &rc);
	s = jobscript_build(&c, JS_STEP_SCRIPT, &skip);
	contains(s, "set -o xtrace\n");
	freezero_str(s);
	rc.debug_trace_disabled = 1;
	s = jobscript_build(&c, JS_STEP_SCRIPT, &skip);
	lacks(s, "xtrace");
	freezero_str(s);
	gitlab_job_free(job);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quote_roundtrip),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_shell_detect_runs),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_skips),
		cmocka_unit_test(test_step_script_runs),
		cmocka_unit_test(test_variables_run),
		cmocka_unit_test(test_after_script_settings),
		cmocka_unit_test(test_cache_keys),
		cmocka_unit_test(test_cache_run),
		cmocka_unit_test(test_artifacts_run),
		cmocka_unit_test(test_get_sources_run),
		cmocka_unit_test(test_get_sources_text),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

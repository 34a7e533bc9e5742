/*
 * The shell scripts of a GitLab job's stages under the Docker executor:
 * what GitLab Runner's bash shell writer (shells/bash.go, shells/
 * abstract.go) generates, as POSIX sh so that busybox images run them too.
 *
 * Each stage's script goes to the container's stdin (never argv, never a
 * file).  Its shape is GitLab's: an outer wrapper (TERM trap, pipefail
 * where the shell has it, errexit, the body eval'ed in a subshell with
 * stdin from /dev/null, "exit 0") around a body that exports the job's
 * variables (file variables written under <project dir>.tmp, GITLAB_ENV
 * read back between stages) and then does the stage's work: git for
 * get_sources, flotilla-helper (contract E of the job-execution APIs) for
 * cache and artifacts, the user's lines for the script steps.
 *
 * Everything here is pure: strings in, strings out; the job, the runner's
 * config and the executor's facts come in through struct jobscript_ctx.
 * Scripts hold secrets (the job token, variable values): free them with
 * freezero_str().
 */
#ifndef FL_JOBSCRIPT_H
#define FL_JOBSCRIPT_H

#include <stddef.h>

struct gitlab_job;
struct config_runner;

enum jobscript_stage {
	JS_PREPARE_SCRIPT, JS_GET_SOURCES, JS_RESTORE_CACHE,
	JS_DOWNLOAD_ARTIFACTS, JS_STEP_SCRIPT, JS_AFTER_SCRIPT,
	JS_ARCHIVE_CACHE, JS_ARCHIVE_CACHE_ON_FAILURE,
	JS_UPLOAD_ARTIFACTS_ON_SUCCESS, JS_UPLOAD_ARTIFACTS_ON_FAILURE,
	JS_CLEANUP_FILE_VARIABLES, JS_NSTAGES
};

struct jobscript_ctx {
	const struct gitlab_job *job;
	const struct config_runner *rc;	/* hooks, builds_dir, cache_dir,
					 * environment, clone_url, FF;
					 * NULL: defaults */
	const char *runner_url;		/* artifacts API base: rc->url form;
					 * NULL: rc->url */
	const char *short_token;	/* CI_RUNNER_SHORT_TOKEN */
	const char *hostname;		/* "Running on $(hostname) via X" */
	const char *helper_path;	/* NULL: "/usr/bin/flotilla-helper" */
	const char *job_status;		/* CI_JOB_STATUS: "success", "failed",
					 * "canceled"; NULL: "running" */
	/* GitLab's TLS data of the runner (PEM text; NULL: none): the CA
	 * chain becomes the file variable CI_SERVER_TLS_CA_FILE, the client
	 * certificate and key (both or neither) CI_SERVER_TLS_CERT_FILE and
	 * CI_SERVER_TLS_KEY_FILE; get_sources points git at them. */
	const char *tls_ca_chain;
	const char *tls_auth_cert;
	const char *tls_auth_key;
};

/*
 * Paths GitLab derives (reference §2.2 item 5): builds dir "/builds" (or
 * rc->builds_dir), the project dir "<builds>/<namespace>/<project>" (the
 * path of repo_url without ".git"; "project-<id>" when it has none;
 * "-empty" added with GIT_STRATEGY=empty; GIT_CLONE_PATH when inside the
 * builds dir and [runners.custom_build_dir] enabled is not false), its
 * ".tmp" sibling, and the cache dir "<rc->cache_dir or /cache>/<same
 * project part>".  Strings owned by the struct.  Returns 0, or
 * FL_ERR_INVAL (empty builds_dir or cache_dir, GIT_CLONE_PATH not
 * allowed or outside the builds dir): p is then all NULL.
 */
struct jobscript_paths {
	char *builds_dir, *project_dir, *tmp_dir, *cache_dir;
};
int jobscript_paths(const struct jobscript_ctx *c, struct jobscript_paths *p);
void jobscript_paths_release(struct jobscript_paths *p);

/*
 * The script for stage st, NUL-terminated; the caller frees it with
 * freezero_str (it holds secrets).  NULL with *skip = 1 when GitLab would
 * skip the stage (no cache with paths, no dependency with artifacts, no
 * after_script lines, no artifact for this outcome, no "script" step ...):
 * then no section either.  When GitLab would fail the stage while writing
 * the script (unknown cache policy, GIT_SUBMODULE_STRATEGY or
 * GIT_CLONE_PATH refused), the script prints the error in red and exits 1.
 * NULL with *skip = 0 only for an invalid st.
 */
char *jobscript_build(const struct jobscript_ctx *c, enum jobscript_stage st,
    int *skip);

/*
 * A user step other than after_script by its name ("script" is what
 * JS_STEP_SCRIPT builds; "release" and others run after it as stages
 * "step_<name>", in the job's order, stopping at the first failure).
 * Same contract as jobscript_build; *skip = 1 when the job has no such
 * step.
 */
char *jobscript_build_step(const struct jobscript_ctx *c, const char *step,
    int *skip);

/* "get_sources", "step_script", "upload_artifacts_on_success"... */
const char *jobscript_stage_name(enum jobscript_stage st);
/* "Getting source from Git repository", "Executing \"step_script\" stage
 * of the job script"...; c may be NULL. */
const char *jobscript_stage_header(enum jobscript_stage st,
    const struct jobscript_ctx *c);
/* Which container: 1 build container, 0 helper container. */
int jobscript_stage_in_build(enum jobscript_stage st);
/* The build (and helper) container's Cmd: the shell-detect script for
 * ["sh","-c", this]; a static string. */
const char *jobscript_shell_detect(void);

/*
 * Every variable the scripts export, as "KEY=value" (expanded like
 * GitLab; a file variable as KEY=<tmp>/KEY), in GitLab's order (later
 * entries win): the container Env GitLab Runner sets.  *n gets the count;
 * free with jobscript_env_free (wipes).  NULL with *n = 0 when the paths
 * cannot be derived.
 */
char **jobscript_env(const struct jobscript_ctx *c, size_t *n);
void jobscript_env_free(char **env, size_t n);

/* AFTER_SCRIPT_IGNORE_ERRORS (default true): an after_script failure is
 * only a warning ("after_script failed, but job will continue
 * unaffected: ..."); the script itself still exits with the code. */
int jobscript_after_script_ignore_errors(const struct jobscript_ctx *c);

/* GET_SOURCES_ATTEMPTS, RESTORE_CACHE_ATTEMPTS, ARTIFACT_DOWNLOAD_ATTEMPTS
 * for those stages (1 to 10, default 1); 1 for the others. */
int jobscript_attempts(const struct jobscript_ctx *c, enum jobscript_stage st);

/* Append s to out in POSIX sh single quotes ('it'\''s'); any byte. */
struct sbuf;
void jobscript_quote(struct sbuf *out, const char *s);

/* GitLab's cache key sanitising (cache/cachekey.Sanitize): "%2f"/"%2F"
 * and "\\" become "/", "%2e"/"%2E" ".", ".." resolved inside a virtual
 * root, trailing white space of the last segments dropped.  Returns a new
 * string, or NULL when nothing is left ("" gives NULL too). */
char *jobscript_sanitize_cache_key(const char *key);

#endif

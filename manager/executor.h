/*
 * One GitLab job run in containers on one Docker engine, as GitLab Runner's
 * Docker executor runs it (reference runner-jobs-docker.md §2.1-§2.11).
 *
 * The executor is a state machine on the caller's event loop; every Docker
 * call goes through `struct docker` (docker.h) and is asynchronous.  In
 * order:
 *
 *  1. the trace header ("Running with flotilla ..."), then the
 *     prepare_executor section: API negotiation (docker_ping), the helper
 *     image (present, else docker_image_load of helper_image_tar, or a pull
 *     when [runners.docker] helper_image is set), the build image under the
 *     effective pull policy (pullpolicy.h) and allowed_images, registry
 *     credentials (dockerauth.h), the per-build network (FF_NETWORK_PER_
 *     BUILD without network_mode), volumes (build dir, /cache, configured
 *     ones), services (created, started, aliased, health-checked by a wait
 *     container running `flotilla-helper health-check`);
 *  2. the stages of §2.1 (jobscript.h builds each script): the helper
 *     ("predefined") container for prepare_script, get_sources,
 *     restore_cache, download_artifacts, archive_cache*, upload_artifacts*
 *     and cleanup_file_variables; the build container for step_script and
 *     after_script.  Each container is created the first time a stage needs
 *     it and started again for each later one: attach (before start), the
 *     script written to stdin then stdin half-closed, the output demuxed
 *     into the trace, the exit code from /wait;
 *  3. cleanup: every container it created removed (force, v=1 unless
 *     volume_keep), the temporary volumes, the per-build network;
 *  4. the final line ("Job succeeded" / "ERROR: Job failed: ..."), then
 *     the done callback.
 *
 * Every byte given to the output callback went through the executor's
 * jobmask (masked variables, the job token, token prefixes, URL secrets),
 * the executor's own messages included.  The output limit is the trace
 * sender's business (gitlab_trace_append), not the executor's.
 *
 * Results (GitLab Runner's failure reasons, unmapped: pass failure_reason
 * through gitlab_failure_reason() before sending it):
 *   success;  script_failure + exit_code (a stage's non-zero exit);
 *   job_execution_timeout (the job's timeout, or the script step's);
 *   job_canceled (exec_cancel); image_pull_failure; runner_configuration_
 *   error (pull policy, allowed images/services, services_limit);
 *   runner_system_failure (Docker or transport errors); or the reason given
 *   to exec_abort.
 *
 * Callbacks are never called from inside exec_start, exec_cancel or
 * exec_abort.  exec_free may be called from inside the done callback.
 */
#ifndef FL_EXECUTOR_H
#define FL_EXECUTOR_H

#include <stddef.h>

#include <jansson.h>

#include "gitlab.h"

struct toml_table;
struct config_runner;

struct event_base;
struct docker;
struct config_runner;
struct exec;

struct exec_params {
	struct event_base *base;
	struct docker *docker;		/* connected to the instance's engine */
	const struct config_runner *rc;
	const struct gitlab_job *job;	/* stays valid until done */
	const char *runner_url;		/* rc->url, $VAR expanded */
	const char *short_token;	/* 9 chars; labels, names */
	const char *system_id;
	const char *instance_id;	/* for the trace; may be NULL */
	const char *hostname;		/* the manager's host name */
	const char *helper_image;	/* image ref; NULL: built-in name
					 * "flotilla-helper:<VERSION>" */
	const char *helper_image_tar;	/* docker-save tar to load when the
					 * image is missing; NULL: none */
	int concurrent_id;		/* 0.. per-runner slot number */
	/* The runner's TLS files towards GitLab (gitlab_runner_tls_files;
	 * NULL: none): read at start for the jobs' CI_SERVER_TLS_* file
	 * variables. */
	const char *tls_ca_file;
	const char *tls_cert_file;
	const char *tls_key_file;
	/* GitLab's preparation retries: this is attempt prepare_attempt
	 * (0 the first: it writes the job's header and opens the
	 * prepare_executor section; a later one goes on in that section) of
	 * prepare_tries (0: 1).  elapsed_s: seconds of the job's timeout
	 * already spent by earlier attempts. */
	int prepare_attempt;
	int prepare_tries;
	int64_t elapsed_s;
};

struct exec_result {
	enum gitlab_state state;	/* GITLAB_SUCCESS / GITLAB_FAILED_STATE */
	const char *failure_reason;	/* NULL on success; else
		script_failure, job_execution_timeout, runner_system_failure,
		image_pull_failure, job_canceled ... (map with
		gitlab_failure_reason before sending) */
	int exit_code;			/* script_failure's code, else 0 */
	/* Preparing failed for a system reason with tries left: nothing of
	 * the job ran, everything was cleaned up, and the trace says
	 * "Will be retried in 3s ...".  The caller starts the executor again
	 * (with prepare_attempt + 1) after EXEC_PREPARE_RETRY_S seconds;
	 * state is then GITLAB_FAILED_STATE, for a caller that cannot. */
	int retry;
};

/* GitLab Runner's PreparationRetries and PreparationRetryInterval. */
#define EXEC_PREPARE_TRIES	3
#define EXEC_PREPARE_RETRY_S	3

/* Everything for the trace: header lines, section markers, container
 * output; ALREADY masked (the executor owns a jobmask). */
typedef void (*exec_output_fn)(void *arg, const void *data, size_t len);
/* Once, after cleanup (every container, temporary volume and network
 * it created removed).  r valid during the call. */
typedef void (*exec_done_fn)(void *arg, const struct exec_result *r);

/*
 * Start running p->job.  p's strings are copied; p->rc, p->job and
 * p->docker are borrowed and must outlive the executor.  Never NULL.
 */
struct exec *exec_start(const struct exec_params *p, exec_output_fn out,
    exec_done_fn done, void *arg);
/* Graceful cancel (Job-Status: canceling): the running script stage is
 * stopped, after_script runs (CI_JOB_STATUS=canceled), then the on-
 * failure stages; result failed/job_canceled.  Before the user script has
 * started, the job stops at once (cleanup, job_canceled). */
void exec_cancel(struct exec *e);
/* Abort now (SIGTERM, GitLab abort, instance lost): stop containers,
 * clean up, done with failed and `reason` (e.g. runner_system_failure). */
void exec_abort(struct exec *e, const char *reason);
/* Free; if not done yet, abort without callbacks (best-effort cleanup
 * requests may still be fired). NULL no-op. */
void exec_free(struct exec *e);

/* ---- pure helpers (exposed for tests) ---- */

/* The first 9 characters of a runner token after GitLab's prefixes
 * (glrt-, glrtr-, glcbt-, "t1_"-style partition prefixes): into out
 * (room for 10).  */
void exec_short_token(const char *token, char *out, size_t outlen);
/* "runner-" + the first 16 hex digits of SHA-256 over
 * "<token>-<system_id>-<project_id>-<concurrent_id>"; caller frees. */
char *exec_unique_name(const char *token, const char *system_id,
    long long project_id, int concurrent_id);
/* Lower-case hex MD5 of s into out (33 bytes). */
void exec_md5_hex(const char *s, char out[33]);
/* Image reference without tag or digest ("a/b:1" -> "a/b"); caller
 * frees. */
char *exec_image_name_only(const char *ref);
/* Docker's RAM units ("128m", "1g", "512k", "100"): bytes, or -1. */
long long exec_parse_ram(const char *s);

/*
 * FF_TIMESTAMPS for a job: the runner's [runners.feature_flags] when set
 * there, else the job's variable (Go's ParseBool), else on (GitLab Runner
 * 18.7+).  Timestamped lines are described in timestamper.h.
 */
int exec_timestamps_on(const struct config_runner *rc,
    const struct gitlab_job *job);

/*
 * [runners.docker.ulimit] as HostConfig.Ulimits: each NAME = "SOFT[:HARD]"
 * (HARD defaults to SOFT), NAME one of Linux's rlimits as docker names
 * them (nofile, nproc, core, ...).  NULL with the reason in err for a bad
 * entry; an empty array for none.
 */
json_t *exec_ulimits_json(const struct toml_table *t, char *err,
    size_t errlen);

/*
 * The docker CLI's --gpus value ("all", a count, "device=ID[,ID...]",
 * with optional ",capabilities=CAP" ... parts) as one HostConfig
 * DeviceRequests entry; NULL with the reason in err.
 */
json_t *exec_gpus_json(const char *gpus, char *err, size_t errlen);

/*
 * [runners.docker] security_opt as HostConfig.SecurityOpt: a
 * "seccomp=FILE" (or "seccomp:FILE") entry gets the profile's JSON
 * inlined, read on the manager's host as the docker CLI does ("unconfined"
 * and "builtin" stay).  NULL with the reason in err for an unreadable or
 * malformed profile.
 */
json_t *exec_security_opts(const char *const *opts, size_t n, char *err,
    size_t errlen);

#endif

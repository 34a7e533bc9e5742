/*
 * GitLab's runner API (api/v4) on the manager's event loop: verify, job
 * requests (long polling), job state updates, incremental trace patches,
 * unregistering a runner manager; and a per-job trace sender that keeps
 * GitLab up to date the way GitLab Runner's network/trace.go does.
 *
 * Transport: one libcurl multi handle driven by libevent through the
 * multi-socket API (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION), so
 * nothing here ever blocks the loop; libcurl's threaded resolver does the
 * DNS work.  The multi handle keeps the connection cache: connections are
 * reused across requests and runners, one connection per request in flight
 * (HTTP/1.1, as GitLab Runner's Go client without HTTP/2; a long-polling
 * jobs/request holds its own).  Connections live at most
 * connection_max_age (CURLOPT_MAXLIFETIME_CONN) and idle at most
 * min(connection_max_age, 118 s) (CURLOPT_MAXAGE_CONN).  TLS 1.2 at least,
 * the system CA store plus a runner's tls-ca-file, a client certificate
 * from tls-cert-file/tls-key-file.  Proxies come from the environment, as
 * libcurl reads them.  Dial timeout 30 s; each attempt has an overall
 * deadline (default 10 min, GitLab Runner's response-header timeout; a
 * jobs/request long poll lasts about 50 s).
 *
 * Every request carries User-Agent "flotilla <version> (<rev>; C; linux/
 * <arch>)" (the shape of GitLab Runner's), a fresh X-Request-Id (a random
 * UUID without dashes), Content-Type for a body and Accept:
 * application/json where JSON comes back.  Runner endpoints send the
 * runner token in the JSON body and in RUNNER-TOKEN; job endpoints send
 * the job token in JOB-TOKEN (and in the body of PUT).  Tokens never go
 * in a URL, an argv or a message; registered with log_add_secret().
 *
 * Retries (GitLab Runner's retry_requester.go): statuses 408, 429, 500,
 * 502, 503, 504 and >= 512, and transient connection errors (refused,
 * reset, timeout, TLS handshake cut; flotilla's addition: Go does not
 * retry those), up to 5 attempts in all.  The wait is RateLimit-ResetTime
 * (an RFC 1123 date) minus now if positive, else Retry-After (seconds) if
 * positive, else exponential backoff from 100 ms doubling up to 60 s, with
 * jitter (uniform between the minimum and the step's value).  The same
 * request body is sent again on each attempt.  After the last attempt the
 * last answer is interpreted as below.
 *
 * Asynchronous throughout: each operation returns a handle (never NULL)
 * and later calls its callback exactly once, from the event loop, never
 * from inside the call that started it; unless the request is cancelled
 * (gitlab_req_cancel) or its runner or the client is freed first, in which
 * case the callback is not called at all.  The handle is valid until the
 * callback returns.  Calling anything (freeing included) from inside a
 * callback is safe.
 *
 * The module never logs: an observer (gitlab_set_observer) is told about
 * every attempt, for logs and metrics; no secrets are in what it gets.
 */
#ifndef FL_GITLAB_H
#define FL_GITLAB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct event_base;
struct config_runner;
struct gitlab;
struct gitlab_runner;
struct gitlab_req;
struct gitlab_trace;

/* Limits and defaults (GitLab Runner's common/consts.go where it has one). */
#define GITLAB_PATCH_LIMIT (1024 * 1024)	/* DefaultTracePatchLimit */
#define GITLAB_MAX_BODY (32u * 1024 * 1024)	/* a response body; a job */
#define GITLAB_ATTEMPTS 5
#define GITLAB_BACKOFF_MIN_MS 100
#define GITLAB_BACKOFF_MAX_MS 60000
#define GITLAB_CONNECT_TIMEOUT_MS 30000
#define GITLAB_REQUEST_TIMEOUT_MS (10 * 60 * 1000)
#define GITLAB_CONN_MAX_AGE_NS (15LL * 60 * 1000000000)
#define GITLAB_UPDATE_INTERVAL_MS 3000		/* DefaultUpdateInterval */
#define GITLAB_MAX_UPDATE_INTERVAL_MS (15 * 60 * 1000)
#define GITLAB_FORCE_SEND_INTERVAL_MS 30000	/* keep-alive PUT */
#define GITLAB_FINAL_RETRY_LIMIT 10
#define GITLAB_FINAL_BACKOFF_MIN_MS 1000
#define GITLAB_FINAL_BACKOFF_MAX_MS (60 * 60 * 1000)
#define GITLAB_OUTPUT_LIMIT (4 * 1024 * 1024)	/* output_limit 4096 KiB */
#define GITLAB_DEFAULT_JOB_TIMEOUT 7200		/* seconds */
/* What info.name says; version and revision are FL_VERSION, FL_GIT_REV. */
#define GITLAB_INFO_NAME "flotilla"

/* ---- the client ---- */

struct gitlab_opts {
	int64_t connection_max_age_ns;	/* 0: GITLAB_CONN_MAX_AGE_NS */
	int64_t connect_timeout_ms;	/* 0: GITLAB_CONNECT_TIMEOUT_MS */
	int64_t request_timeout_ms;	/* 0: GITLAB_REQUEST_TIMEOUT_MS */
	int64_t backoff_min_ms;		/* 0: GITLAB_BACKOFF_MIN_MS */
	int64_t backoff_max_ms;		/* 0: GITLAB_BACKOFF_MAX_MS */
	int max_attempts;		/* 0: GITLAB_ATTEMPTS */
};

/*
 * The client on base; opts NULL for the defaults (config's
 * connection_max_age goes in connection_max_age_ns).  NULL only when
 * libcurl cannot be initialised.  Free with gitlab_free(), which cancels
 * every request (no callbacks) and frees the runners and traces left.
 */
struct gitlab *gitlab_new(struct event_base *base,
    const struct gitlab_opts *opts);
void gitlab_free(struct gitlab *gl);

/* What the observer hears after each attempt (strings valid during it). */
struct gitlab_attempt {
	const char *runner;	/* the runner's name, or its short token */
	const char *method;
	const char *path;	/* below /api/v4/, query included */
	int attempt;		/* 1.. */
	long status;		/* 0: no response */
	const char *error;	/* transport error text, or NULL */
	int64_t elapsed_ms;
	int new_connection;	/* 0: an existing connection was reused */
	int64_t retry_in_ms;	/* -1: no retry follows */
	const char *request_id;	/* ours */
	const char *correlation_id;	/* the response's X-Request-Id */
};
typedef void (*gitlab_observer_fn)(const struct gitlab_attempt *a,
    void *arg);
void gitlab_set_observer(struct gitlab *gl, gitlab_observer_fn fn,
    void *arg);

/* ---- runners: one [[runners]] entry's credentials and identity ---- */

struct gitlab_runner_conf {
	const char *name;		/* for the observer; NULL: short token */
	const char *url;		/* as configured; $VAR expanded */
	const char *token;		/* idem; secret */
	const char *tls_ca_file;	/* NULL: system CAs only */
	const char *tls_cert_file;	/* with tls_key_file: client cert */
	const char *tls_key_file;
	/* Where <host>.crt (tls-ca-file), <host>.auth.crt and <host>.auth.key
	 * (tls-cert-file, tls-key-file) are looked for when those are unset,
	 * host being the url's without port: GitLab Runner's certs/ folder
	 * beside config.toml.  NULL: no lookup. */
	const char *certs_dir;
	const char *executor;		/* info.executor: "docker-autoscaler" */
	const char *shell;		/* NULL or "": "bash" */
	const char *gpus;		/* info.config.gpus; NULL: "" */
	const char *system_id;		/* s_xxxxxxxxxxxx; NULL: not sent */
	/* info.features to send as false although listed as true below;
	 * NULL-terminated, or NULL. */
	const char *const *features_off;
};

/*
 * Fill c from a config.toml [[runners]] entry; the strings stay rc's.
 * certs_dir is left NULL (see gitlab_certs_dir).
 */
void gitlab_runner_conf_from_config(struct gitlab_runner_conf *c,
    const struct config_runner *rc, const char *system_id);

/* "<directory of config_path>/certs" (heap), or NULL for a NULL path. */
char *gitlab_certs_dir(const char *config_path);

/*
 * The TLS files a runner uses (configured, or found in certs_dir), each
 * NULL when none: for the jobs' CI_SERVER_TLS_* variables.
 */
void gitlab_runner_tls_files(const struct gitlab_runner *r, const char **ca,
    const char **cert, const char **key);

/*
 * A runner on gl.  The url and token are $VAR-expanded from the
 * environment (gitlab_expand_env), the URL normalised
 * (gitlab_base_url); the tokens are registered with log_add_secret.
 * Returns 0, or FL_ERR_INVAL with a message in *errmsg (free it; no
 * secrets in it): empty token, bad URL, unreadable TLS file.
 * Free with gitlab_runner_free(): cancels its requests and frees its
 * traces, with no callbacks.
 */
int gitlab_runner_new(struct gitlab *gl, const struct gitlab_runner_conf *c,
    struct gitlab_runner **out, char **errmsg);
void gitlab_runner_free(struct gitlab_runner *r);
/* ".../api/v4/" */
const char *gitlab_runner_base_url(const struct gitlab_runner *r);
/* The last X-GitLab-Last-Update seen on any answer, "" if none. */
const char *gitlab_runner_last_update(const struct gitlab_runner *r);

/* ---- results ---- */

/* What an answer means (GitLab Runner's interpretation, per operation). */
enum gitlab_outcome {
	GITLAB_OK = 0,		/* verify 200, job 201, update 200, patch
				 * 202, unregister 204 */
	GITLAB_NO_JOB,		/* jobs/request 204 */
	GITLAB_ACCEPTED,	/* update 202: not completed, wait the
				 * interval, send the trace, PUT again */
	GITLAB_RANGE,		/* patch 416: resume at res->offset */
	GITLAB_RESET,		/* update 412: send the whole trace again */
	GITLAB_ABORT,		/* 403 on job endpoints, Job-Status canceled
				 * or failed, update 404: stop the job */
	GITLAB_NOT_FOUND,	/* patch 404; unregister 404 */
	GITLAB_FORBIDDEN,	/* runner endpoints 403 */
	GITLAB_FAILED		/* anything else, a transport error, or a
				 * malformed answer; see err and status */
};

/* The Job-Status header. */
enum gitlab_job_status {
	GITLAB_JS_NONE = 0,	/* absent */
	GITLAB_JS_OTHER,	/* pending, success, ... */
	GITLAB_JS_RUNNING,
	GITLAB_JS_CANCELING,
	GITLAB_JS_CANCELED,
	GITLAB_JS_FAILED
};

struct gitlab_job;

struct gitlab_result {
	enum gitlab_outcome outcome;
	int err;		/* 0 or FL_ERR_*: FL_ERR_IO transport,
				 * FL_ERR_TIMEOUT, FL_ERR_PROTO bad answer
				 * (201 not JSON), FL_ERR_PARSE bad job,
				 * FL_ERR_TOOBIG, FL_ERR_INVAL bad call */
	long status;		/* HTTP status of the last attempt; 0 none */
	int attempts;
	const char *msg;	/* "POST jobs/request: 502 ..."; no secrets */
	const char *correlation_id;	/* the answer's X-Request-Id or "" */
	/* jobs/request: whether the answer counts as healthy for
	 * unhealthy_requests_limit (403, transport errors, 201 without
	 * JSON or with a malformed job are not). */
	int healthy;
	enum gitlab_job_status job_status;
	int cancel_requested;	/* Job-Status: canceling */
	int64_t update_interval_ms;	/* X-GitLab-Trace-Update-Interval,
					 * capped; 0 when absent or invalid */
	int64_t offset;		/* patch: 202 the end sent, 416 the Range
				 * end; -1 when unknown */
	/* jobs/request 201: the job, the callback's to keep (or free with
	 * gitlab_job_free); NULL otherwise. */
	struct gitlab_job *job;
	/* verify 200 with a JSON body: */
	int64_t runner_id;
	const char *token_expires_at;	/* "" when absent */
	/* register 201: the new runner's authentication token (a secret,
	 * registered with log_add_secret; wiped after the callback: copy
	 * it); NULL otherwise.  runner_id and token_expires_at as above. */
	const char *token;
};

typedef void (*gitlab_cb)(struct gitlab_req *req, struct gitlab_result *res,
    void *arg);

/* Cancel a request: no callback.  NULL, or after the callback: no-op. */
void gitlab_req_cancel(struct gitlab_req *req);

/* ---- operations ---- */

/* POST runners/verify {token, system_id, info}: OK, FORBIDDEN (removed),
 * FAILED (422 orphaned, ...). */
struct gitlab_req *gitlab_verify(struct gitlab_runner *r, gitlab_cb cb,
    void *arg);

/* DELETE runners/managers {token, system_id}: OK (204), FORBIDDEN,
 * NOT_FOUND (no such manager), FAILED. */
struct gitlab_req *gitlab_unregister_manager(struct gitlab_runner *r,
    gitlab_cb cb, void *arg);

/* DELETE runners {token}: deletes the whole runner (GitLab Runner does
 * this for legacy tokens; for glrt- tokens it deletes only its manager,
 * gitlab_unregister_manager).  OK (204), FORBIDDEN (403), NOT_FOUND,
 * FAILED. */
struct gitlab_req *gitlab_unregister_runner(struct gitlab_runner *r,
    gitlab_cb cb, void *arg);

/* What a legacy registration asks for (GitLab Runner's
 * RegisterRunnerParameters); strings NULL or "" are left out. */
struct gitlab_register {
	const char *description;	/* the runner's name */
	const char *maintenance_note;
	const char *tag_list;		/* "a,b" */
	int run_untagged;
	int locked;
	const char *access_level;	/* not_protected, ref_protected */
	int64_t maximum_timeout;	/* seconds; 0: left out */
	int paused;
};

/*
 * POST runners {description, maintenance_note, tag_list, run_untagged,
 * locked, access_level, maximum_timeout, paused, info, token}: register
 * a runner with the registration token r was made with.  OK (201 JSON
 * with a token: res->token, runner_id, token_expires_at), FORBIDDEN
 * (403: bad registration token), FAILED (410 registration disabled,
 * 201 without JSON or token: FL_ERR_PROTO, ...).  p is copied.
 */
struct gitlab_req *gitlab_register_runner(struct gitlab_runner *r,
    const struct gitlab_register *p, gitlab_cb cb, void *arg);

/*
 * POST jobs/request {info, token, system_id, last_update}: OK with
 * res->job (201, application/json, a valid job), NO_JOB (204),
 * FORBIDDEN (403), FAILED otherwise (409 conflict, 422 orphaned, 429
 * after retries, 503, transport error, 201 without JSON or with a
 * malformed job: err FL_ERR_PROTO / FL_ERR_PARSE, msg says why).  May
 * take about 50 s when GitLab long-polls.  The job's token is
 * registered with log_add_secret.
 */
struct gitlab_req *gitlab_request_job(struct gitlab_runner *r, gitlab_cb cb,
    void *arg);

enum gitlab_state { GITLAB_RUNNING, GITLAB_SUCCESS, GITLAB_FAILED_STATE };

struct gitlab_update {
	enum gitlab_state state;
	const char *failure_reason;	/* failed only; NULL: left out */
	int exit_code;			/* left out when 0 */
	int with_output;		/* send checksum and bytesize */
	uint32_t crc32;
	uint64_t bytesize;
};

/*
 * PUT jobs/:id {info, token, state, failure_reason, checksum, output
 * {checksum, bytesize}, exit_code}, JOB-TOKEN.  "output" is always there
 * (empty without with_output).  Outcomes in GitLab Runner's order:
 * Job-Status canceled/failed or 403 → ABORT; 200 → OK; 202 → ACCEPTED;
 * 412 → RESET; 404 → ABORT; else FAILED (transport errors included:
 * GitLab Runner aborts on those, flotilla leaves the choice to the
 * caller: err is set).  cancel_requested and update_interval_ms are
 * filled from the headers whatever the outcome.
 */
struct gitlab_req *gitlab_update_job(struct gitlab_runner *r, int64_t job_id,
    const char *job_token, const struct gitlab_update *u, gitlab_cb cb,
    void *arg);

/*
 * PATCH jobs/:id/trace?debug_trace=<bool>, Content-Range "start-end"
 * (inclusive), text/plain, JOB-TOKEN.  len must be 1..GITLAB_PATCH_LIMIT
 * (else FAILED with FL_ERR_INVAL).  Outcomes: Job-Status canceled/failed
 * or 403 → ABORT; 202 → OK, offset = offset + len; 404 → NOT_FOUND;
 * 416 → RANGE, offset from the Range header's end (FAILED if it has
 * none); else FAILED (transport errors included, as GitLab Runner).
 * The bytes are copied.
 */
struct gitlab_req *gitlab_patch_trace(struct gitlab_runner *r, int64_t job_id,
    const char *job_token, const void *data, size_t len, int64_t offset,
    int debug_trace, gitlab_cb cb, void *arg);

/* ---- the trace sender: one per job ---- */

enum gitlab_trace_event {
	GITLAB_TRACE_ACK,	/* the first PUT running answered; res says
				 * how: OK; cancel_requested (GitLab Runner
				 * then finishes at once with failed,
				 * job_canceled, and runs nothing); ABORT
				 * (no ABORT event follows; finish() then
				 * sends nothing: DONE with res NULL) */
	GITLAB_TRACE_CANCEL,	/* Job-Status canceling first seen */
	GITLAB_TRACE_ABORT,	/* abort: stop the job; no more patches */
	GITLAB_TRACE_DONE	/* after finish: res->outcome OK (final
				 * state taken), ABORT, or FAILED (gave up
				 * after the retry limit) */
};

/* res is NULL for DONE after an aborted ack, else the answer behind
 * the event.  Freeing the trace from here is allowed. */
typedef void (*gitlab_trace_cb)(struct gitlab_trace *t,
    enum gitlab_trace_event ev, const struct gitlab_result *res, void *arg);

struct gitlab_trace_opts {
	size_t output_limit;		/* bytes; 0: GITLAB_OUTPUT_LIMIT */
	size_t patch_limit;		/* 0: GITLAB_PATCH_LIMIT (max too) */
	int debug_trace;		/* ?debug_trace=true */
	int64_t update_interval_ms;	/* 0: GITLAB_UPDATE_INTERVAL_MS */
	int64_t force_send_interval_ms;	/* 0: 30 s */
	int final_retry_limit;		/* 0: GITLAB_FINAL_RETRY_LIMIT */
	int64_t final_backoff_min_ms;	/* 0: 1 s */
	int64_t final_backoff_max_ms;	/* 0: 60 min */
};

/*
 * Start reporting job_id: sends the acknowledging PUT running at once
 * (GITLAB_TRACE_ACK follows), then every update interval one PATCH of
 * at most patch_limit new bytes, and a keep-alive PUT running with
 * checksum and size when nothing succeeded for the force-send interval.
 * X-GitLab-Trace-Update-Interval changes the interval (capped at 15
 * min); a 416 resumes from GitLab's offset.  One request at a time.
 * opts NULL: defaults.  The token is copied (and wiped on free).
 */
struct gitlab_trace *gitlab_trace_new(struct gitlab_runner *r, int64_t job_id,
    const char *job_token, const struct gitlab_trace_opts *opts,
    gitlab_trace_cb cb, void *arg);

/*
 * Add job output (already masked).  Bytes over output_limit are dropped
 * (cut at a UTF-8 boundary) and GitLab Runner's notice "Job's log
 * exceeded limit of N bytes. ..." is added once.  Ignored after finish.
 * Returns the bytes kept.
 */
size_t gitlab_trace_append(struct gitlab_trace *t, const void *data,
    size_t len);

/*
 * The job is over: send every byte left (patches back to back), then the
 * final PUT (state, failure_reason, exit_code, checksum, bytesize); 202
 * waits the interval and repeats; 412 sends the whole trace again; a
 * failure (transport errors included) retries with backoff from 1 s to
 * 60 min, up to final_retry_limit failed rounds.  GITLAB_TRACE_DONE
 * follows.  After an abort the final PUT is still sent once, without
 * patches (GitLab Runner does the same); after an aborted ack nothing is
 * sent and DONE (ABORT, res NULL) comes from the loop.  Call once; later
 * calls are ignored.
 */
void gitlab_trace_finish(struct gitlab_trace *t, enum gitlab_state state,
    const char *failure_reason, int exit_code);

/* CRC-32 and size of everything kept so far; bytes acknowledged. */
uint32_t gitlab_trace_crc32(const struct gitlab_trace *t);
uint64_t gitlab_trace_size(const struct gitlab_trace *t);
uint64_t gitlab_trace_sent(const struct gitlab_trace *t);
/* The current update interval. */
int64_t gitlab_trace_interval_ms(const struct gitlab_trace *t);
/* Cancels the request in flight; no more callbacks.  NULL: no-op. */
void gitlab_trace_free(struct gitlab_trace *t);

/* ---- the job payload ---- */

struct gitlab_strv {
	char **v;
	size_t n;
};

struct gitlab_variable {
	char *key;
	char *value;		/* secret */
	int public;
	int masked;
	int file;
	int raw;
};

struct gitlab_variables {
	struct gitlab_variable *v;
	size_t n;
};

struct gitlab_step {
	char *name;		/* "script", "after_script", "release" ... */
	struct gitlab_strv script;
	int64_t timeout;	/* seconds; 0: none */
	char *when;		/* "on_success", "on_failure", "always" */
	int allow_failure;
};

struct gitlab_port {
	int64_t number;
	char *protocol;
	char *name;
};

/* The job image or one service. */
struct gitlab_image {
	char *name;
	char *alias;		/* as sent */
	struct gitlab_strv aliases;	/* alias split at spaces and commas */
	struct gitlab_strv command;
	struct gitlab_strv entrypoint;
	struct gitlab_strv pull_policy;	/* always, if-not-present, never */
	struct gitlab_variables variables;
	struct gitlab_port *ports;
	size_t nports;
	char *docker_platform;	/* executor_opts.docker.platform */
	char *docker_user;	/* executor_opts.docker.user */
};

struct gitlab_artifact {
	char *name;
	int untracked;
	struct gitlab_strv paths;
	struct gitlab_strv exclude;
	char *when;
	char *expire_in;
	char *artifact_type;
	char *artifact_format;
};

struct gitlab_cache {
	char *key;
	int untracked;
	char *policy;		/* pull-push, pull, push */
	struct gitlab_strv paths;
	char *when;
	struct gitlab_strv fallback_keys;
};

struct gitlab_dependency {
	int64_t id;
	char *token;		/* secret */
	char *name;
	char *artifacts_filename;	/* "" when none */
	int64_t artifacts_size;
};

struct gitlab_credential {
	char *type;		/* "registry" */
	char *url;
	char *username;
	char *password;		/* secret */
};

struct gitlab_hook {
	char *name;
	struct gitlab_strv script;
};

/*
 * One job as jobs/request returns it.  Every string is non-NULL ("" when
 * absent or null); lists may be empty.  Only the fields flotilla uses are
 * broken out; json holds the whole payload.
 */
struct gitlab_job {
	int64_t id;
	char *token;		/* secret */
	int allow_git_fetch;
	struct {
		char *name;
		char *stage;
		int64_t project_id;
		char *project_name;
		char *project_full_path;
		int64_t pipeline_id;
	} job_info;
	struct {
		char *repo_url;	/* secret: holds the job token */
		char *repo_object_format;
		char *ref;
		char *sha;
		char *before_sha;
		char *ref_type;	/* branch, tag */
		struct gitlab_strv refspecs;
		int64_t depth;	/* 0: full */
		int protected;	/* -1: null or absent */
	} git_info;
	int64_t timeout;	/* runner_info.timeout; 0: absent */
	char *runner_uuid;
	struct gitlab_variables variables;
	struct gitlab_step *steps;
	size_t nsteps;
	struct gitlab_image image;
	struct gitlab_image *services;
	size_t nservices;
	struct gitlab_artifact *artifacts;
	size_t nartifacts;
	struct gitlab_cache *caches;
	size_t ncaches;
	struct gitlab_credential *credentials;
	size_t ncredentials;
	struct gitlab_dependency *dependencies;
	size_t ndependencies;
	struct gitlab_hook *hooks;
	size_t nhooks;
	int trace_sections;		/* features.trace_sections */
	struct gitlab_strv token_mask_prefixes;
	struct gitlab_strv failure_reasons;
	/* Why GitLab Runner would refuse the job (unknown executor_opts
	 * keys): fail it with runner_system_failure.  NULL when fine. */
	char *unsupported;
	json_t *json;		/* the whole payload */
};

/*
 * Parse a job payload.  Types are checked as Go's encoding/json checks
 * them (null is the zero value; unknown keys are ignored; a wrong type
 * anywhere rejects the whole job); id must be a positive integer and
 * token a non-empty string.  Returns 0 and *out, or FL_ERR_PARSE with
 * "git_info.depth: not an integer"-like text in err (no values quoted),
 * FL_ERR_TOOBIG over GITLAB_MAX_BODY.
 */
int gitlab_job_parse(const char *buf, size_t len, struct gitlab_job **out,
    char *err, size_t errlen);
/* Wipes the secrets (in json too).  NULL: no-op. */
void gitlab_job_free(struct gitlab_job *job);
/* runner_info.timeout, or GITLAB_DEFAULT_JOB_TIMEOUT when 0. */
int64_t gitlab_job_timeout(const struct gitlab_job *job);
/* The variable's value, or NULL. */
const char *gitlab_job_variable(const struct gitlab_job *job, const char *key);

/*
 * GitLab Runner's failure reason mapper: "" or NULL → script_failure;
 * a reason the job lists in features.failure_reasons, or one of
 * script_failure, runner_system_failure, job_execution_timeout → itself;
 * image_pull_failure and runner_external_dependency_failure →
 * runner_system_failure; runner_configuration_error → script_failure;
 * anything else → unknown_failure.  job may be NULL.
 */
const char *gitlab_failure_reason(const struct gitlab_job *job,
    const char *reason);

/* ---- pure helpers (exposed for tests) ---- */

/*
 * GitLab Runner's base URL: trailing "/" stripped, then one trailing
 * "/ci", then "/api/v4/" appended.  Only http:// and https:// (any
 * case), with a host, no spaces or control characters.  Returns 0 and
 * *out (free it) or FL_ERR_INVAL.
 */
int gitlab_base_url(const char *url, char **out);

/*
 * Go's os.ExpandEnv: $NAME (letters, digits, _), ${ANYTHING}, and the
 * one-character specials ($1, $*, ${#} ...) are replaced by lookup(name)
 * (NULL: unset, expands to ""); a "$" not followed by a name stays; a
 * bad "${" or "${}" is dropped.  lookup NULL: getenv.  Returns a new
 * string.
 */
char *gitlab_expand_env(const char *s,
    const char *(*lookup)(const char *name, void *arg), void *arg);

/* CRC-32/IEEE, chainable: crc = gitlab_crc32(crc, p, n), from 0. */
uint32_t gitlab_crc32(uint32_t crc, const void *p, size_t n);

/* "a-b", two decimal integers >= 0, a <= b not required. 0 or FL_ERR_PARSE. */
int gitlab_parse_range(const char *s, int64_t *start, int64_t *end);

/* Retry-After as Go's strconv.Atoi: 0 and *secs, or FL_ERR_PARSE. */
int gitlab_parse_retry_after(const char *s, int64_t *secs);
/* An RFC 1123 date ("Mon, 02 Jan 2006 15:04:05 GMT"; any zone letters
 * are taken as UTC) to seconds since the epoch; 0 or FL_ERR_PARSE. */
int gitlab_parse_http_date(const char *s, int64_t *epoch);
/*
 * The wait before the next attempt, from the answer's headers (either
 * NULL): RateLimit-ResetTime minus now_ms if > 0, else Retry-After if
 * > 0, else -1 (use the backoff).
 */
int64_t gitlab_retry_wait_ms(const char *ratelimit_reset,
    const char *retry_after, int64_t now_ms);
/*
 * Backoff of the n-th call (0-based): min*2^n capped at max; with
 * jitter rnd in [0,1): min + rnd * (that - min).  rnd < 0: no jitter.
 */
int64_t gitlab_backoff_ms(int n, int64_t min_ms, int64_t max_ms, double rnd);
/* 408, 429, 500, 502, 503, 504 or >= 512. */
int gitlab_retryable_status(long status);
enum gitlab_job_status gitlab_job_status_parse(const char *s);
/* X-GitLab-Trace-Update-Interval: seconds > 0 → ms, capped at 15 min;
 * else 0. */
int64_t gitlab_parse_update_interval(const char *s);

/*
 * The JSON bodies, for tests: the info object for executor/shell/gpus
 * with features_off applied; a PUT jobs/:id body (info is taken).
 */
json_t *gitlab_info_json(const char *executor, const char *shell,
    const char *gpus, const char *const *features_off);
json_t *gitlab_update_json(json_t *info, const char *token,
    const struct gitlab_update *u);
/* The POST runners body (info is taken; token may be NULL). */
json_t *gitlab_register_json(json_t *info, const char *token,
    const struct gitlab_register *p);

#endif
